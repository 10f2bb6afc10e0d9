/* SPDX-License-Identifier: MIT */
/* Rendering of the server config, compared with golden files under tests/golden (UPDATE_GOLDEN=1 rewrites them). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "node.h"

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

static const char *const hashes[] = {"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
				     "6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e"};

struct fixture {
	struct init_config c;
	struct node_server server;
	struct node_render_input in;
};

static void fixture_init(struct fixture *fx, char **env, unsigned version, enum node_flavor flavor)
{
	struct init_error err;
	int argind;

	assert_int_equal(init_config_defaults(&fx->c, &err), 0);
	if (init_config_load(&fx->c, 0, NULL, &argind, env, &err) != 0)
		fail_msg("config: %s", err.msg);
	fx->server = (struct node_server){.server_bin = "/usr/bin/redis-server", .flavor = flavor, .version = version};
	fx->in = (struct node_render_input){
		.opt = &fx->c.opt,
		.source = fx->c.source,
		.server = &fx->server,
		.base_config_present = true,
		.pass_hashes = hashes,
		.n_hashes = 1,
		.masterauth = "password",
	};
}

static void compare_golden(const char *name, const char *text)
{
	char path[256], want[16384];
	size_t n;
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, name);
	if (getenv("UPDATE_GOLDEN")) {
		const char *ci = getenv("CI");

		if (ci && strcmp(ci, "true") == 0)
			fail_msg("UPDATE_GOLDEN is refused when CI=true: a CI run never rewrites %s", path);
		f = fopen(path, "w");
		assert_non_null(f);
		(void)fputs(text, f);
		assert_int_equal(fclose(f), 0);
	}
	f = fopen(path, "r");
	if (!f)
		fail_msg("golden file %s missing (run with UPDATE_GOLDEN=1 once)", path);
	n = fread(want, 1, sizeof(want) - 1, f);
	want[n] = '\0';
	(void)fclose(f);
	if (strcmp(want, text) != 0)
		fail_msg("%s differs:\n--- want\n%s--- got\n%s", path, want, text);
}

static void render_case(const char *golden, char **env, unsigned version, enum node_flavor flavor,
			void (*tweak)(struct fixture *))
{
	struct fixture fx;
	struct init_error err;
	char *text = NULL;

	fixture_init(&fx, env, version, flavor);
	if (tweak)
		tweak(&fx);
	if (node_render(&fx.in, &text, &err) != 0)
		fail_msg("%s: %s", golden, err.msg);
	compare_golden(golden, text);
	free(text);
	init_config_free(&fx.c);
}

static void test_cluster_default(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL};

	(void)state;
	render_case("render-cluster.conf", env, NODE_VERSION(7, 0, 15), NODE_REDIS, NULL);
}

static void no_base(struct fixture *fx)
{
	fx->in.base_config_present = false;
	fx->in.n_hashes = 0;
	fx->in.masterauth = NULL;
}

static void test_standalone(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ENABLED=no", "REDIS_AOF_ENABLED=no",
		       "REDIS_DATA_DIR=/var/lib/my data", NULL};

	(void)state;
	render_case("render-standalone-nopass.conf", env, NODE_VERSION(7, 0, 15), NODE_REDIS, no_base);
}

static void announce(struct fixture *fx)
{
	fx->in.announce_ip = "172.19.0.60";
}

static void test_announce_ip(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",	    "REDIS_PORT_NUMBER=6380",
		       "REDIS_CLUSTER_ANNOUNCE_PORT=16380", "REDIS_CLUSTER_ANNOUNCE_BUS_PORT=26380",
		       "REDIS_CLUSTER_NODE_TIMEOUT=3000",   NULL};

	(void)state;
	render_case("render-announce-ip.conf", env, NODE_VERSION(7, 0, 15), NODE_REDIS, announce);
}

static void two_passwords(struct fixture *fx)
{
	fx->in.n_hashes = 2;
	fx->in.masterauth = "p\"a s\\s'w\xc3\xa9rd#x";
}

static void test_hostname_endpoint(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",
		       "REDIS_CLUSTER_ANNOUNCE_HOSTNAME=redis-node-0.example",
		       "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE=hostname",
		       "REDIS_EXTRA_FLAGS=--maxmemory 100mb --save 900 1 --notify-keyspace-events Ex",
		       "REDIS_BIND=127.0.0.1 -::1",
		       NULL};

	(void)state;
	render_case("render-hostname-valkey.conf", env, NODE_VERSION(8, 0, 1), NODE_VALKEY, two_passwords);
}

static void test_version_gated(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL};

	(void)state;
	/* 6.2: no cluster-port, no preferred endpoint type, but channel rules */
	render_case("render-redis-6.2.conf", env, NODE_VERSION(6, 2, 14), NODE_REDIS, NULL);
	/* 6.0: not even channel rules */
	render_case("render-redis-6.0.conf", env, NODE_VERSION(6, 0, 20), NODE_REDIS, NULL);
}

static void expect_refusal(char **env, unsigned version, const char *want)
{
	struct fixture fx;
	struct init_error err;
	char *text = NULL;

	fixture_init(&fx, env, version, NODE_REDIS);
	assert_int_equal(node_render(&fx.in, &text, &err), -ENOTSUP);
	assert_null(text);
	if (strcmp(err.msg, want) != 0)
		fail_msg("got '%s', want '%s'", err.msg, want);
	init_config_free(&fx.c);
}

static void test_version_gated_asked(void **state)
{
	char *e1[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ANNOUNCE_HOSTNAME=node-0", NULL};
	char *e2[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_BUS_PORT=17000", NULL};
	char *e3[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE=ip", NULL};

	(void)state;
	expect_refusal(
		e1, NODE_VERSION(6, 2, 14),
		"REDIS_CLUSTER_ANNOUNCE_HOSTNAME needs cluster-announce-hostname, which Redis 6.2.14 does not know");
	expect_refusal(e2, NODE_VERSION(6, 2, 14),
		       "REDIS_CLUSTER_BUS_PORT needs cluster-port, which Redis 6.2.14 does not know");
	expect_refusal(
		e3, NODE_VERSION(6, 2, 14),
		"REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE needs cluster-preferred-endpoint-type, which Redis 6.2.14 "
		"does not know");
}

static void redact(struct fixture *fx)
{
	fx->in.redact = true;
	fx->in.n_hashes = 2;
}

static void test_redacted(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL};

	(void)state;
	render_case("render-redacted.conf", env, NODE_VERSION(7, 0, 15), NODE_REDIS, redact);
}

static void test_quote(void **state)
{
	char buf[128];

	(void)state;
	node_quote_config_value("plain-value_1.2:3/4@5", buf, sizeof(buf));
	assert_string_equal(buf, "plain-value_1.2:3/4@5");
	node_quote_config_value("", buf, sizeof(buf));
	assert_string_equal(buf, "\"\"");
	node_quote_config_value("a b", buf, sizeof(buf));
	assert_string_equal(buf, "\"a b\"");
	node_quote_config_value("x\"y\\z'", buf, sizeof(buf));
	assert_string_equal(buf, "\"x\\x22y\\x5cz\\x27\"");
	node_quote_config_value("1.2.3.4\nrequirepass x", buf, sizeof(buf));
	assert_string_equal(buf, "\"1.2.3.4\\x0arequirepass x\"");
	node_quote_config_value("\xc3\xa9", buf, sizeof(buf));
	assert_string_equal(buf, "\"\\xc3\\xa9\"");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cluster_default), cmocka_unit_test(test_standalone),
		cmocka_unit_test(test_announce_ip),	cmocka_unit_test(test_hostname_endpoint),
		cmocka_unit_test(test_version_gated),	cmocka_unit_test(test_version_gated_asked),
		cmocka_unit_test(test_redacted),	cmocka_unit_test(test_quote),
	};

	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
