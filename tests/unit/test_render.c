/* SPDX-License-Identifier: MIT */
/* Rendering of the server config, compared with golden files under tests/golden (UPDATE_GOLDEN=1 rewrites them). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "node.h"

#include "../ref_splitargs.h"
#include "golden.h"

static const char *const hashes[] = {"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
				     "6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e"};

struct fixture {
	struct node_config c;
	struct node_server server;
	struct node_render_input in;
};

static void fixture_init(struct fixture *fx, char **env, unsigned version, enum node_flavor flavor)
{
	struct init_error err;
	int argind;

	assert_int_equal(node_config_defaults(&fx->c, &err), 0);
	if (init_config_load(&fx->c.core, 0, NULL, &argind, env, &err) != 0)
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
	node_config_free(&fx.c);
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
		       "REDIS_EXTRA_FLAGS=--maxmemory 100mb --save 900 1 --notify-keyspace-events Ex "
		       "--repl-diskless-sync-delay 2",
		       "REDIS_BIND=127.0.0.1 -::1",
		       "REDIS_CLUSTER_AVAILABILITY_ZONE=eu-west-1a",
		       NULL};

	/* the user's repl-diskless-sync-delay comes after kvinit's 0, so it wins */

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
	node_config_free(&fx.c);
}

static void test_version_gated_asked(void **state)
{
	char *e1[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_ANNOUNCE_HOSTNAME=node-0", NULL};
	char *e2[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_BUS_PORT=17000", NULL};
	char *e3[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE=ip", NULL};
	char *e4[] = {"KVINIT_CONFIG=/dev/null", "REDIS_CLUSTER_AVAILABILITY_ZONE=zone-a", NULL};

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
	expect_refusal(e4, NODE_VERSION(8, 0, 2),
		       "REDIS_CLUSTER_AVAILABILITY_ZONE='zone-a': needs the directive availability-zone (Valkey 8.0 "
		       "and later), which Redis 8.0.2 does not know: unset it");
}

/* The renderer's own guard, for a value that did not come through the option check. */
static int render_extra_flags(const char *flags, char **ret_text, struct init_error *err)
{
	struct fixture fx;
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL};
	int r;

	fixture_init(&fx, env, NODE_VERSION(7, 0, 15), NODE_REDIS);
	free(fx.c.opt.extra_flags);
	fx.c.opt.extra_flags = strdup(flags);
	assert_non_null(fx.c.opt.extra_flags);
	r = node_render(&fx.in, ret_text, err);
	node_config_free(&fx.c);
	return r;
}

/* Issue 17: whatever blanks surround REDIS_EXTRA_FLAGS, each directive is a line of its own. */
static void test_extra_flags_lines(void **state)
{
	struct init_error err;
	char *text = NULL;
	const char *block;

	(void)state;
	assert_int_equal(render_extra_flags("  --maxmemory 100mb   --save 900 1  ", &text, &err), 0);
	block = strstr(text, "# REDIS_EXTRA_FLAGS\n");
	assert_non_null(block);
	if (strncmp(block, "# REDIS_EXTRA_FLAGS\nmaxmemory 100mb\nsave 900 1\nuser default ", 60) != 0)
		fail_msg("extra flags not one directive a line:\n%s", block);
	free(text);

	/* values before any directive are refused, never glued onto kvinit's own ACL line */
	text = NULL;
	assert_int_equal(render_extra_flags(" user evil on nopass +@all allkeys nopass", &text, &err), -EINVAL);
	assert_null(text);
	assert_string_equal(err.msg, "REDIS_EXTRA_FLAGS=' user evil on nopass +@all allkeys nopass': must be "
				     "redis-server flags, each '--directive' followed by its values");
}

/* ---- decoding the rendered file as the server does (ref_splitargs.h) ---- */

/* The arguments of the line of text that starts with "name ", decoded; fails the test when it does not decode. */
static int decode_directive(const char *text, const char *name, struct ref_arg *args, int max)
{
	size_t n = strlen(name);
	const char *pos = text;
	char *line;
	int argc;

	while (ref_config_next_line(&pos, &line) > 0) {
		argc = ref_split_args(line, args, max);
		if (argc < 0)
			fail_msg("a line the server cannot read: %.120s...", line);
		if (strncmp(line, name, n) == 0 && line[n] == ' ') {
			free(line);
			return argc;
		}
		ref_args_free(args, argc);
		free(line);
	}
	fail_msg("no '%s' line", name);
	return -1;
}

static void assert_decodes_to(const char *text, const char *name, const char *value, size_t len)
{
	struct ref_arg args[64];
	int argc = decode_directive(text, name, args, 64);

	assert_int_equal(argc, 2);
	if (args[1].len != len || memcmp(args[1].data, value, len) != 0)
		fail_msg("%s: %zu bytes rendered, %zu decoded back%s", name, len, args[1].len,
			 args[1].len == len ? " but different" : "");
	for (int i = 0; i < argc; i++)
		free(args[i].data);
}

/*
 * Issue 17: the longest values that pass the checks, each byte one that needs escaping, are rendered whole: a
 * password of 4096 bytes (the limit; masterauth), a data dir of 4095, a 2000-byte --save value.
 */
static void test_long_values_decode_back(void **state)
{
	static const char escaped[] = "\"\\'\x01\t\x7f\xff #";
	static char password[INIT_VALUE_MAX + 1], dir[4096], flags[2048], env_dir[4200], env_flags[2100];
	char *env[] = {"KVINIT_CONFIG=/dev/null", env_dir, env_flags, NULL};
	struct fixture fx;
	struct init_error err;
	char *text = NULL;

	(void)state;
	for (size_t i = 0; i < INIT_VALUE_MAX; i++)
		password[i] = escaped[i % (sizeof(escaped) - 1)];
	/* what the option checks let through: no control characters, '#' and '"' included */
	dir[0] = '/';
	for (size_t i = 1; i < sizeof(dir) - 1; i++)
		dir[i] = "\"\\'\xff #"[i % 6];
	for (size_t i = 0; i < 2000; i++)
		flags[i] = "\"\\'\xff#"[i % 5];
	(void)snprintf(env_dir, sizeof(env_dir), "REDIS_DATA_DIR=%s", dir);
	(void)snprintf(env_flags, sizeof(env_flags), "REDIS_EXTRA_FLAGS=--save %s", flags);

	fixture_init(&fx, env, NODE_VERSION(7, 0, 15), NODE_REDIS);
	fx.in.masterauth = password;
	if (node_render(&fx.in, &text, &err) != 0)
		fail_msg("%s", err.msg);
	assert_decodes_to(text, "masterauth", password, strlen(password));
	assert_decodes_to(text, "dir", dir, strlen(dir));
	assert_decodes_to(text, "save", flags, strlen(flags));

	/* a password of '"' only: the example of the issue */
	free(text);
	text = NULL;
	memset(password, '"', INIT_VALUE_MAX);
	if (node_render(&fx.in, &text, &err) != 0)
		fail_msg("%s", err.msg);
	assert_decodes_to(text, "masterauth", password, INIT_VALUE_MAX);
	free(text);
	node_config_free(&fx.c);
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

/* Issue 14: TLS on the port Bitnami defaults both ports to: the plain port is off, every link is TLS. */
static void test_tls(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",
		       "REDIS_TLS_ENABLED=yes",
		       "REDIS_TLS_CERT_FILE=/run/secrets/tls/tls.crt",
		       "REDIS_TLS_KEY_FILE=/run/secrets/tls/tls.key",
		       "REDIS_TLS_KEY_FILE_PASS=key pass",
		       "REDIS_TLS_CA_FILE=/run/secrets/tls/ca.crt",
		       "REDIS_TLS_DH_PARAMS_FILE=/run/secrets/tls/dh.pem",
		       "REDIS_TLS_AUTH_CLIENTS=optional",
		       "REDIS_CLUSTER_ANNOUNCE_PORT=30379",
		       NULL};

	(void)state;
	render_case("render-tls.conf", env, NODE_VERSION(7, 0, 15), NODE_REDIS, announce);
}

/*
 * The plain port kept on a port of its own; Redis 6.2 has no cluster-announce-tls-port and announces the TLS port
 * with cluster-announce-port; the cluster bus is the TLS port + 10000.
 */
static void test_tls_plain_port_redis_6_2(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",
		       "REDIS_TLS_ENABLED=yes",
		       "REDIS_PORT_NUMBER=6380",
		       "REDIS_TLS_PORT_NUMBER=6379",
		       "REDIS_TLS_CERT_FILE=/tls/tls.crt",
		       "REDIS_TLS_KEY_FILE=/tls/tls.key",
		       "REDIS_TLS_CA_DIR=/etc/ssl/kvinit-ca",
		       "REDIS_CLUSTER_ANNOUNCE_PORT=30379",
		       NULL};

	(void)state;
	render_case("render-tls-plain-redis-6.2.conf", env, NODE_VERSION(6, 2, 14), NODE_REDIS, announce);
}

/* A standalone node: no tls-cluster; `kvinit render` hides the key's passphrase like the password. */
static void test_tls_standalone_redacted(void **state)
{
	char *env[] = {"KVINIT_CONFIG=/dev/null",
		       "REDIS_CLUSTER_ENABLED=no",
		       "REDIS_TLS_ENABLED=yes",
		       "REDIS_TLS_CERT_FILE=/tls/tls.crt",
		       "REDIS_TLS_KEY_FILE=/tls/tls.key",
		       "REDIS_TLS_KEY_FILE_PASS=key pass",
		       "REDIS_TLS_CA_FILE=/tls/ca.crt",
		       "REDIS_TLS_AUTH_CLIENTS=no",
		       NULL};

	(void)state;
	render_case("render-tls-standalone-redacted.conf", env, NODE_VERSION(8, 0, 2), NODE_VALKEY, redact);
}

/* node_write_config_value into a string of its own (the previous one freed). */
static void quote(const char *value, char **buf)
{
	size_t len;
	FILE *f;

	free(*buf);
	*buf = NULL;
	f = open_memstream(buf, &len);
	assert_non_null(f);
	node_write_config_value(f, value);
	assert_int_equal(fclose(f), 0);
}

static void test_quote(void **state)
{
	char *buf = NULL;

	(void)state;
	quote("plain-value_1.2:3/4@5", &buf);
	assert_string_equal(buf, "plain-value_1.2:3/4@5");
	quote("", &buf);
	assert_string_equal(buf, "\"\"");
	quote("a b", &buf);
	assert_string_equal(buf, "\"a b\"");
	quote("x\"y\\z'", &buf);
	assert_string_equal(buf, "\"x\\x22y\\x5cz\\x27\"");
	quote("1.2.3.4\nrequirepass x", &buf);
	assert_string_equal(buf, "\"1.2.3.4\\x0arequirepass x\"");
	quote("\xc3\xa9", &buf);
	assert_string_equal(buf, "\"\\xc3\\xa9\"");
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_cluster_default),
		cmocka_unit_test(test_standalone),
		cmocka_unit_test(test_announce_ip),
		cmocka_unit_test(test_hostname_endpoint),
		cmocka_unit_test(test_version_gated),
		cmocka_unit_test(test_version_gated_asked),
		cmocka_unit_test(test_redacted),
		cmocka_unit_test(test_quote),
		cmocka_unit_test(test_extra_flags_lines),
		cmocka_unit_test(test_long_values_decode_back),
		cmocka_unit_test(test_tls),
		cmocka_unit_test(test_tls_plain_port_redis_6_2),
		cmocka_unit_test(test_tls_standalone_redacted),
	};

	return cmocka_run_group_tests_name("render", tests, NULL, NULL);
}
