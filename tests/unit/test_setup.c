/* SPDX-License-Identifier: MIT */
/*
 * The node's start-up: the settings that must agree, and the server's environment without REDIS_PASSWORD (nor
 * REDIS_TLS_KEY_FILE_PASS).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "node.h"

#define UNTOUCHED 4242U

static struct node_options cluster_options(int64_t port, int64_t bus_port)
{
	return (struct node_options){.port = port, .bus_port = bus_port, .cluster_enabled = true, .nodes = ""};
}

static void expect_bus_port(const struct node_options *o, unsigned want)
{
	struct init_error err = {.msg = ""};
	unsigned bus = UNTOUCHED;

	assert_int_equal(node_setup_check_settings(o, &bus, &err), 0);
	assert_int_equal(bus, want);
}

static void expect_refused(const struct node_options *o, const char *want)
{
	struct init_error err = {.msg = ""};
	unsigned bus = UNTOUCHED;

	assert_int_equal(node_setup_check_settings(o, &bus, &err), -EINVAL);
	assert_int_equal(bus, UNTOUCHED);
	assert_string_equal(err.msg, want);
}

static void test_bus_port(void **state)
{
	struct node_options o = cluster_options(6379, 0);

	(void)state;
	expect_bus_port(&o, 16379);
	o = cluster_options(7000, 17500);
	expect_bus_port(&o, 17500);
	o = cluster_options(55535, 0);
	expect_bus_port(&o, 65535);
	o = cluster_options(55536, 0);
	expect_refused(&o,
		       "REDIS_PORT_NUMBER='55536': the cluster bus port would be 65536: set REDIS_CLUSTER_BUS_PORT");
	o = cluster_options(60000, 7000);
	expect_bus_port(&o, 7000);
	o = cluster_options(7000, 7000);
	expect_refused(&o, "REDIS_CLUSTER_BUS_PORT='7000': must differ from REDIS_PORT_NUMBER");
	/* without a cluster there is no bus: nothing to refuse */
	o = cluster_options(60000, 0);
	o.cluster_enabled = false;
	expect_bus_port(&o, 70000);
}

/* Issue 14: with TLS the cluster bus is the TLS port + 10000, as the server computes it with tls-cluster. */
static void test_tls_bus_port(void **state)
{
	struct node_options o = cluster_options(6380, 0);

	(void)state;
	o.tls_enabled = true;
	o.tls_port = 6379;
	o.tls_cert_file = "/tls/tls.crt";
	o.tls_key_file = "/tls/tls.key";
	o.tls_ca_file = "/tls/ca.crt";
	o.tls_ca_dir = "";
	o.extra_flags = "";
	expect_bus_port(&o, 16379);
	/* the plain port, open on a port of its own, may not be the bus */
	o.port = 16379;
	expect_refused(&o, "REDIS_CLUSTER_BUS_PORT='16379': must differ from REDIS_PORT_NUMBER");
	o.port = 6379;
	o.tls_port = 55536;
	expect_refused(
		&o, "REDIS_TLS_PORT_NUMBER='55536': the cluster bus port would be 65536: set REDIS_CLUSTER_BUS_PORT");
	o.tls_port = 7000;
	o.bus_port = 7000;
	expect_refused(&o, "REDIS_CLUSTER_BUS_PORT='7000': must differ from REDIS_TLS_PORT_NUMBER");
	/* the files are the TLS settings' own check */
	o.bus_port = 0;
	o.tls_ca_file = "";
	expect_refused(&o, "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CA_FILE or REDIS_TLS_CA_DIR, the CA that peers and "
			   "clients are verified against");
}

static void test_creator_needs_a_cluster_and_nodes(void **state)
{
	static const char *const want = "REDIS_CLUSTER_CREATOR=yes needs REDIS_CLUSTER_ENABLED=yes and REDIS_NODES, "
					"the nodes to form the cluster from";
	struct node_options o = cluster_options(6379, 0);

	(void)state;
	o.creator = true;
	expect_refused(&o, want);
	o.nodes = "redis-node-0 redis-node-1 redis-node-2";
	expect_bus_port(&o, 16379);
	o.cluster_enabled = false;
	expect_refused(&o, want);
}

static void test_child_environment_drops_the_password(void **state)
{
	char a[] = "A=1", password[] = "REDIS_PASSWORD=s3cr3t", file[] = "REDIS_PASSWORD_FILE=/run/secrets/x",
	     b[] = "B=", other[] = "REDIS_PASSWORDX=kept";
	char *envp[] = {a, password, file, b, other, NULL};
	static const char wiped[sizeof(password)] = "REDIS_PASSWORD=";
	struct init_error err = {.msg = ""};
	char **env = NULL;

	(void)state;
	assert_int_equal(node_setup_child_environment(envp, &env, &err), 0);
	assert_non_null(env);
	assert_ptr_equal(env[0], a);
	assert_ptr_equal(env[1], file);
	assert_ptr_equal(env[2], b);
	assert_ptr_equal(env[3], other);
	assert_null(env[4]);
	/* the value is gone from the memory the variables were handed over in, too */
	assert_memory_equal(password, wiped, sizeof(password));
	assert_ptr_equal(envp[1], password);
	free(env);
}

/* Issue 14: the key's passphrase is the server's through its config only, like the password. */
static void test_child_environment_drops_the_key_passphrase(void **state)
{
	char a[] = "A=1", pass[] = "REDIS_TLS_KEY_FILE_PASS=p a s s", file[] = "REDIS_TLS_KEY_FILE=/tls/tls.key";
	char *envp[] = {a, pass, file, NULL};
	static const char wiped[sizeof(pass)] = "REDIS_TLS_KEY_FILE_PASS=";
	struct init_error err = {.msg = ""};
	char **env = NULL;

	(void)state;
	assert_int_equal(node_setup_child_environment(envp, &env, &err), 0);
	assert_ptr_equal(env[0], a);
	assert_ptr_equal(env[1], file);
	assert_null(env[2]);
	assert_memory_equal(pass, wiped, sizeof(pass));
	free(env);
}

static void test_child_environment_empty(void **state)
{
	char *envp[] = {NULL};
	struct init_error err = {.msg = ""};
	char **env = NULL;

	(void)state;
	assert_int_equal(node_setup_child_environment(envp, &env, &err), 0);
	assert_non_null(env);
	assert_null(env[0]);
	free(env);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bus_port),
		cmocka_unit_test(test_tls_bus_port),
		cmocka_unit_test(test_child_environment_drops_the_key_passphrase),
		cmocka_unit_test(test_creator_needs_a_cluster_and_nodes),
		cmocka_unit_test(test_child_environment_drops_the_password),
		cmocka_unit_test(test_child_environment_empty),
	};

	return cmocka_run_group_tests_name("setup", tests, NULL, NULL);
}
