/* SPDX-License-Identifier: MIT */
/*
 * Replication mode: the settings that must agree, Bitnami's names, and the rendered config of a primary and a
 * replica (golden files under tests/golden, UPDATE_GOLDEN=1 rewrites them).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "node.h"
#include "replication.h"
#include "golden.h"

static const char *const hashes[] = {"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8"};

/* The options env gives; 0, or the load's code with its message in err. */
static int load(struct node_config *c, char **env, struct init_error *err)
{
	int argind, r;

	assert_int_equal(node_config_defaults(c, err), 0);
	r = init_config_load(&c->core, 0, NULL, &argind, env, err);
	return r;
}

static void render_case(const char *golden, char **env, const char *replicaof_host, unsigned replicaof_port)
{
	struct node_server server = {
		.server_bin = "/usr/bin/redis-server", .flavor = NODE_REDIS, .version = NODE_VERSION(7, 0, 15)};
	struct node_config c;
	struct init_error err;
	struct node_render_input in;
	char *text = NULL;

	if (load(&c, env, &err) != 0)
		fail_msg("config: %s", err.msg);
	if (node_replication_check_settings(&c.opt, &err) != 0)
		fail_msg("settings: %s", err.msg);
	in = (struct node_render_input){
		.opt = &c.opt,
		.source = c.source,
		.server = &server,
		.pass_hashes = hashes,
		.n_hashes = 1,
		.masterauth = "p\"a s\\s'word",
		.replicaof_host = replicaof_host,
		.replicaof_port = replicaof_port,
	};
	if (node_render(&in, &text, &err) != 0)
		fail_msg("%s: %s", golden, err.msg);
	compare_golden(golden, text);
	free(text);
	node_config_free(&c);
}

static void test_render_replica(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",
		       "REDIS_CLUSTER_ENABLED=no",
		       "REDIS_REPLICATION_MODE=replica",
		       "REDIS_PRIMARY_HOST=redis-primary",
		       "REDIS_PRIMARY_PORT_NUMBER=6390",
		       "REDIS_PORT_NUMBER=6391",
		       "REDIS_REPLICA_IP=redis-replica-1",
		       "REDIS_REPLICA_PORT=16391",
		       "REDIS_SENTINEL_NODES=sentinel-1:26379 sentinel-2:26380,sentinel-3:26381",
		       NULL};

	(void)state;
	render_case("render-replica.conf", env, "redis-primary", 6390);
}

static void test_render_primary(void **state)
{
	/* Bitnami's names: master is a primary; it announces itself too, a failover may make it a replica */
	char *env[] = {"KVINIT_CONFIG=/dev/null",   "REDIS_CLUSTER_ENABLED=no",	    "REDIS_REPLICATION_MODE=master",
		       "REDIS_REPLICA_IP=10.0.0.5", "REDIS_SENTINEL_HOST=sentinel", NULL};

	(void)state;
	render_case("render-primary.conf", env, NULL, 0);
}

static void test_modes(void **state)
{
	static const struct {
		const char *value;
		enum node_replication want;
	} cases[] = {
		{"none", NODE_REPL_NONE},	{"primary", NODE_REPL_PRIMARY}, {"master", NODE_REPL_PRIMARY},
		{"replica", NODE_REPL_REPLICA}, {"slave", NODE_REPL_REPLICA},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char var[64];
		char *env[] = {"KVINIT_CONFIG=/dev/null", var, NULL};
		struct node_config c;
		struct init_error err;

		(void)snprintf(var, sizeof(var), "REDIS_REPLICATION_MODE=%s", cases[i].value);
		assert_int_equal(load(&c, env, &err), 0);
		assert_int_equal(node_replication(&c.opt), cases[i].want);
		node_config_free(&c);
	}
}

/* Bitnami's variable names reach the same options. */
static void test_bitnami_aliases(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",	   "REDIS_MASTER_HOST=primary.example",
		       "REDIS_MASTER_PORT_NUMBER=6390",	   "REDIS_SENTINEL_HOST=sentinel",
		       "REDIS_SENTINEL_MASTER_NAME=cache", NULL};
	char *clash[] = {"KVINIT_CONFIG=/dev/null", "REDIS_MASTER_HOST=a", "REDIS_PRIMARY_HOST=b", NULL};
	struct node_config c;
	struct init_error err;

	(void)state;
	assert_int_equal(load(&c, env, &err), 0);
	assert_string_equal(c.opt.primary_host, "primary.example");
	assert_int_equal(c.opt.primary_port, 6390);
	assert_string_equal(c.opt.sentinel_nodes, "sentinel");
	assert_string_equal(c.opt.master_set, "cache");
	node_config_free(&c);
	assert_int_equal(load(&c, clash, &err), -EINVAL);
	assert_string_equal(err.msg,
			    "REDIS_PRIMARY_HOST and REDIS_MASTER_HOST are both set, to different values: set only "
			    "REDIS_PRIMARY_HOST");
	node_config_free(&c);
}

static void expect_refused(char **env, const char *want)
{
	struct node_config c;
	struct init_error err = {.msg = ""};
	int r = load(&c, env, &err);

	if (r == 0)
		r = node_replication_check_settings(&c.opt, &err);
	assert_int_equal(r, -EINVAL);
	assert_string_equal(err.msg, want);
	node_config_free(&c);
}

static void test_refused(void **state)
{
	char *cluster[] = {"KVINIT_CONFIG=/dev/null", "REDIS_REPLICATION_MODE=replica", "REDIS_PRIMARY_HOST=p", NULL};
	char *no_host[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ENABLED=no", "REDIS_REPLICATION_MODE=slave", NULL};
	char *flags[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ENABLED=no", "REDIS_REPLICATION_MODE=primary",
			 "REDIS_EXTRA_FLAGS=--maxmemory 1gb --replica-announce-ip 1.2.3.4", NULL};
	char *sentinels[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ENABLED=no", "REDIS_REPLICATION_MODE=primary",
			     "REDIS_SENTINEL_NODES=s1:26379 s1:26379", NULL};
	char *mode[] = {"KVINIT_CONFIG=/dev/null", "REDIS_REPLICATION_MODE=leader", NULL};
	char *host[] = {"KVINIT_CONFIG=/dev/null", "REDIS_PRIMARY_HOST=under_score", NULL};
	char *set[] = {"KVINIT_CONFIG=/dev/null", "REDIS_MASTER_SET=my master", NULL};

	(void)state;
	expect_refused(cluster, "REDIS_REPLICATION_MODE='replica': needs REDIS_CLUSTER_ENABLED=no (a cluster node's "
				"role comes from the cluster)");
	expect_refused(no_host, "REDIS_REPLICATION_MODE='slave': needs REDIS_PRIMARY_HOST (alias REDIS_MASTER_HOST), "
				"the primary to replicate from");
	expect_refused(flags, "REDIS_EXTRA_FLAGS='--maxmemory 1gb --replica-announce-ip 1.2.3.4': "
			      "'--replica-announce-ip' is set by kvinit itself in replication mode: use "
			      "REDIS_PRIMARY_HOST, REDIS_REPLICA_IP or REDIS_REPLICA_PORT");
	expect_refused(sentinels, "REDIS_SENTINEL_NODES: entry 's1:26379': same host and port as entry 1 's1:26379'");
	expect_refused(mode, "REDIS_REPLICATION_MODE='leader': must be one of none, primary, replica, master or slave");
	expect_refused(host,
		       "REDIS_PRIMARY_HOST='under_score': must be an IPv4 or IPv6 address or a hostname (RFC 1123)");
	expect_refused(set, "REDIS_MASTER_SET='my master': must be 1 to 64 letters, digits, '.', '_' or '-'");
}

/*
 * With TLS the Sentinels name a node by its TLS port (replicas announce it with tls-replication): a node that finds
 * itself named there is the primary, whatever REDIS_PORT_NUMBER says.
 */
static void test_is_me_by_tls_port(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",	 "REDIS_CLUSTER_ENABLED=no",
		       "REDIS_REPLICATION_MODE=primary", "REDIS_REPLICA_IP=me.example",
		       "REDIS_PORT_NUMBER=6379",	 "REDIS_TLS_ENABLED=yes",
		       "REDIS_TLS_PORT_NUMBER=6390",	 NULL};
	struct cluster_addr tls = {.host = "me.example", .port = 6390}, other = {.host = "me.example", .port = 6391};
	struct node_config c;
	struct init_error err;

	(void)state;
	assert_int_equal(load(&c, env, &err), 0);
	assert_true(node_replication_is_me(&c.opt, &tls));
	assert_false(node_replication_is_me(&c.opt, &other));
	node_config_free(&c);
}

/* A lone server (no mode) renders as before, whatever the replication settings say. */
static void test_no_mode_no_change(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ENABLED=no", "REDIS_REPLICA_IP=10.0.0.5",
		       "REDIS_PRIMARY_HOST=p", NULL};
	struct node_server server = {
		.server_bin = "/usr/bin/redis-server", .flavor = NODE_REDIS, .version = NODE_VERSION(7, 0, 15)};
	struct node_config c;
	struct init_error err;
	struct node_render_input in;
	char *text = NULL;

	(void)state;
	assert_int_equal(load(&c, env, &err), 0);
	in = (struct node_render_input){.opt = &c.opt, .source = c.source, .server = &server};
	assert_int_equal(node_render(&in, &text, &err), 0);
	assert_null(strstr(text, "replica"));
	free(text);
	node_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render_replica),
		cmocka_unit_test(test_render_primary),
		cmocka_unit_test(test_modes),
		cmocka_unit_test(test_bitnami_aliases),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_no_mode_no_change),
		cmocka_unit_test(test_is_me_by_tls_port),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
