/* SPDX-License-Identifier: MIT */
/* The options table: defaults, precedence, validation, INI errors, --help. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "init.h"
#include "node.h"

static char ini_path[64];

static void write_ini(const char *text)
{
	FILE *f = fopen(ini_path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	int fd;

	(void)state;
	strcpy(ini_path, "/tmp/kvinit-test-XXXXXX");
	fd = mkstemp(ini_path);
	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(ini_path);
	return 0;
}

/* Loads the core's options from argv-like flags and an envp; the INI file is the one the env names, if any. */
static int load(struct init_config *c, struct init_error *err, char **argv, int argc, char **envp, int *argind)
{
	int r = init_config_defaults(c, err);

	assert_int_equal(r, 0);
	return init_config_load(c, argc, argv, argind, envp, err);
}

/* The same with the node's table on top, as every role of kvinit reads them. */
static int load_node(struct node_config *c, struct init_error *err, char **envp)
{
	int argind, r = node_config_defaults(c, err);

	assert_int_equal(r, 0);
	return init_config_load(&c->core, 0, NULL, &argind, envp, err);
}

static void test_defaults(void **state)
{
	struct init_config c;
	struct init_error err;
	char *env[] = {"KVINIT_CONFIG=/nonexistent-but-named", NULL};
	char *noenv[] = {NULL};
	int argind;

	(void)state;
	/* the default file may be missing */
	assert_int_equal(load(&c, &err, NULL, 0, noenv, &argind), 0);
	assert_string_equal(c.opt.user, "");
	assert_int_equal(c.opt.restart, INIT_RESTART_NO);
	assert_int_equal(c.opt.backoff_max, 30000);
	assert_int_equal(c.opt.backoff_reset, 60000);
	assert_int_equal(c.opt.max_restarts, 10);
	assert_int_equal(c.opt.stop_grace, 8000);
	assert_false(c.opt.kill_group);
	assert_true(c.opt.seccomp);
	assert_int_equal(c.opt.log_level, INIT_LOG_INFO);
	assert_int_equal(c.source[INIT_OPT_stop_grace], INIT_SRC_DEFAULT);
	init_config_free(&c);

	/* a named file must exist */
	assert_int_not_equal(load(&c, &err, NULL, 0, env, &argind), 0);
	assert_non_null(strstr(err.msg, "cannot open config file '/nonexistent-but-named'"));
	init_config_free(&c);
}

static void test_precedence(void **state)
{
	struct init_config c;
	struct init_error err;
	char cfg[96], *argv[] = {"--stop-grace", "3s", "--", "cmd"};
	char *env[] = {cfg, "KVINIT_STOP_GRACE=2s", "KVINIT_BACKOFF_MAX=7s", "KVINIT_LOG_LEVEL=", NULL};
	int argind;

	(void)state;
	snprintf(cfg, sizeof(cfg), "KVINIT_CONFIG=%s", ini_path);
	write_ini("; comment\n[kvinit]\nstop-grace = 1s\nbackoff-max = 6s\nmax-restarts = 4\nlog-level = debug\n");

	assert_int_equal(load(&c, &err, argv, 4, env, &argind), 0);
	assert_int_equal(argind, 3);
	assert_int_equal(c.opt.stop_grace, 3000);	   /* flag */
	assert_int_equal(c.opt.backoff_max, 7000);	   /* env over INI */
	assert_int_equal(c.opt.max_restarts, 4);	   /* INI over default */
	assert_int_equal(c.opt.log_level, INIT_LOG_DEBUG); /* empty env counts as unset */
	assert_int_equal(c.source[INIT_OPT_stop_grace], INIT_SRC_FLAG);
	assert_int_equal(c.source[INIT_OPT_backoff_max], INIT_SRC_ENV);
	assert_int_equal(c.source[INIT_OPT_max_restarts], INIT_SRC_INI);
	init_config_free(&c);
}

static void test_role_default(void **state)
{
	struct init_config c;
	struct init_error err;
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL},
	     *env2[] = {"KVINIT_CONFIG=/dev/null", "KVINIT_RESTART=no", NULL};
	int argind;

	(void)state;
	assert_int_equal(init_config_defaults(&c, &err), 0);
	assert_int_equal(init_config_set_default(&c, INIT_OPT_restart, "on-failure", &err), 0);
	assert_int_equal(init_config_load(&c, 0, NULL, &argind, env, &err), 0);
	assert_int_equal(c.opt.restart, INIT_RESTART_ON_FAILURE);
	init_config_free(&c);

	assert_int_equal(init_config_defaults(&c, &err), 0);
	assert_int_equal(init_config_set_default(&c, INIT_OPT_restart, "on-failure", &err), 0);
	assert_int_equal(init_config_load(&c, 0, NULL, &argind, env2, &err), 0);
	assert_int_equal(c.opt.restart, INIT_RESTART_NO);
	init_config_free(&c);
}

struct bad_case {
	const char *env, *expect;
};

static void test_bad_values(void **state)
{
	static const struct bad_case cases[] = {
		{"KVINIT_RESTART=sometimes", "KVINIT_RESTART='sometimes': must be one of no, on-failure or always"},
		{"KVINIT_STOP_GRACE=-1", "KVINIT_STOP_GRACE='-1': must be a duration from 0ms to 1h"},
		{"KVINIT_STOP_GRACE=2h", "KVINIT_STOP_GRACE='2h': must be a duration"},
		{"KVINIT_STOP_GRACE=5 s", "must be a duration"},
		{"KVINIT_STOP_GRACE=99999999999999999999s", "must be a duration"},
		{"KVINIT_MAX_RESTARTS=0x10", "KVINIT_MAX_RESTARTS='0x10': must be a whole number from 0 to 1000000"},
		{"KVINIT_MAX_RESTARTS=1000001", "must be a whole number"},
		{"KVINIT_MAX_RESTARTS= 5", "must be a whole number"},
		{"KVINIT_KILL_GROUP=maybe", "KVINIT_KILL_GROUP='maybe': must be yes or no"},
		{"KVINIT_USER=root\nrequirepass x", "KVINIT_USER='root\\x0arequirepass x': must not contain control"},
		{"KVINIT_USER=Bad User", "KVINIT_USER='Bad User': must be a user name or uid[:gid]"},
		{"KVINIT_USER=12:", "must be a user name or uid[:gid]"},
		{"KVINIT_USER=:12", "must be a user name or uid[:gid]"},
		{"KVINIT_USER=1a", "must be a user name or uid[:gid]"},
		{"KVINIT_LOG_FORMAT=xml", "KVINIT_LOG_FORMAT='xml': must be one of text or json"},
		{"KVINIT_LOG_LEVEL=info\x1b[2J", "must not contain control characters"},
	};
	struct init_config c;
	struct init_error err;
	int argind;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *env[] = {"KVINIT_CONFIG=/dev/null", (char *)cases[i].env, NULL};

		assert_int_not_equal(load(&c, &err, NULL, 0, env, &argind), 0);
		if (!strstr(err.msg, cases[i].expect))
			fail_msg("%s: got '%s', want '%s'", cases[i].env, err.msg, cases[i].expect);
		init_config_free(&c);
	}
}

static void test_good_values(void **state)
{
	static const char *const good[] = {
		"KVINIT_USER=redis",	 "KVINIT_USER=999",	    "KVINIT_USER=999:999",   "KVINIT_USER=_svc-1",
		"KVINIT_STOP_GRACE=0",	 "KVINIT_STOP_GRACE=500ms", "KVINIT_STOP_GRACE=2m",  "KVINIT_STOP_GRACE=1h",
		"KVINIT_KILL_GROUP=YES", "KVINIT_KILL_GROUP=off",   "KVINIT_MAX_RESTARTS=0", "KVINIT_MAX_RESTARTS=010",
	};
	struct init_config c;
	struct init_error err;
	int argind;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *env[] = {"KVINIT_CONFIG=/dev/null", (char *)good[i], NULL};

		if (load(&c, &err, NULL, 0, env, &argind) != 0)
			fail_msg("%s refused: %s", good[i], err.msg);
		init_config_free(&c);
	}
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", "KVINIT_MAX_RESTARTS=010", NULL};

		assert_int_equal(load(&c, &err, NULL, 0, env, &argind), 0);
		assert_int_equal(c.opt.max_restarts, 10); /* decimal, never octal */
		init_config_free(&c);
	}
}

static void expect_ini_error(const char *text, const char *expect)
{
	struct init_config c;
	struct init_error err;
	char cfg[96], *env[] = {cfg, NULL};
	int argind;

	snprintf(cfg, sizeof(cfg), "KVINIT_CONFIG=%s", ini_path);
	write_ini(text);
	assert_int_not_equal(load(&c, &err, NULL, 0, env, &argind), 0);
	if (!strstr(err.msg, expect) || strncmp(err.msg, ini_path, strlen(ini_path)) != 0)
		fail_msg("ini %s: got '%s', want '%s'", text, err.msg, expect);
	init_config_free(&c);
}

static void test_ini_errors(void **state)
{
	char long_line[400];

	(void)state;
	expect_ini_error("[kvinit]\nrestart = no\nfoo = 1\n", ":3: unknown key 'foo' in section [kvinit]");
	expect_ini_error("[kvinit]\n\n[nope]\n", ":3: unknown section 'nope'");
	expect_ini_error("restart = no\n", ":1: 'restart' is outside a section");
	expect_ini_error("[kvinit]\nrestart = sometimes\n", ":2: restart='sometimes': must be one of");
	expect_ini_error("[kvinit]\njust words\n", ":2: not a 'key = value' line");
	snprintf(long_line, sizeof(long_line), "[kvinit]\nuser = %0300d\n", 1);
	expect_ini_error(long_line, ":2: line longer than");
}

static void test_flags(void **state)
{
	struct init_config c;
	struct init_error err;
	char *env[] = {"KVINIT_CONFIG=/dev/null", NULL};
	char *a1[] = {"--kill-group", "yes", "--restart=always", "cmd", "--restart=no"};
	char *a2[] = {"--bogus", "cmd"};
	char *a3[] = {"--restart"};
	char *a4[] = {"--help"};
	char *a5[] = {"--seccomp"};
	int argind;

	(void)state;
	assert_int_equal(load(&c, &err, a1, 5, env, &argind), 0);
	assert_true(c.opt.kill_group);
	assert_int_equal(c.opt.restart, INIT_RESTART_ALWAYS); /* flags stop at the command */
	assert_int_equal(argind, 3);
	init_config_free(&c);

	assert_int_not_equal(load(&c, &err, a2, 2, env, &argind), 0);
	assert_string_equal(err.msg, "unknown option '--bogus' (see kvinit --help)");
	init_config_free(&c);

	assert_int_not_equal(load(&c, &err, a3, 1, env, &argind), 0);
	assert_string_equal(err.msg, "option '--restart' needs a value");
	init_config_free(&c);

	assert_int_equal(load(&c, &err, a4, 1, env, &argind), -ECANCELED);
	init_config_free(&c);

	/* a boolean needs its value like any flag */
	assert_int_not_equal(load(&c, &err, a5, 1, env, &argind), 0);
	assert_string_equal(err.msg, "option '--seccomp' needs a value");
	init_config_free(&c);
}

static void test_help_lists_every_option(void **state)
{
	static const char *const envs[] = {"KVINIT_USER",	   "KVINIT_RESTART",	  "KVINIT_BACKOFF_MAX",
					   "KVINIT_BACKOFF_RESET", "KVINIT_MAX_RESTARTS", "KVINIT_STOP_GRACE",
					   "KVINIT_KILL_GROUP",	   "KVINIT_SECCOMP",	  "KVINIT_LOG_LEVEL",
					   "KVINIT_LOG_FORMAT",	   "KVINIT_CONFIG"};
	char buf[8192] = {0};
	FILE *f = fmemopen(buf, sizeof(buf) - 1, "w");
	struct init_config c;
	struct init_error err;

	(void)state;
	assert_non_null(f);
	assert_int_equal(init_config_defaults(&c, &err), 0);
	init_config_help(&c, f);
	init_config_free(&c);
	fclose(f);
	for (size_t i = 0; i < sizeof(envs) / sizeof(envs[0]); i++)
		if (!strstr(buf, envs[i]))
			fail_msg("--help lacks %s", envs[i]);
	assert_non_null(strstr(buf, "--stop-grace"));
	assert_non_null(strstr(buf, "default '8s'"));
}

static void test_env_file_and_alias(void **state)
{
	struct node_config c;
	struct init_error err;
	char file_env[96], *noenv[] = {NULL};

	(void)state;
	write_ini("6380\n");
	(void)snprintf(file_env, sizeof(file_env), "REDIS_PORT_NUMBER_FILE=%s", ini_path);
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", file_env, NULL};

		assert_int_equal(load_node(&c, &err, env), 0);
		assert_int_equal(c.opt.port, 6380); /* one trailing newline stripped */
		assert_int_equal(c.source[NODE_OPT_port], INIT_SRC_ENV);
		node_config_free(&c);
	}
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", file_env, "REDIS_PORT_NUMBER=6379", NULL};

		assert_int_not_equal(load_node(&c, &err, env), 0);
		assert_string_equal(err.msg, "REDIS_PORT_NUMBER and REDIS_PORT_NUMBER_FILE are both set: set only one");
		node_config_free(&c);
	}
	write_ini("70000\n");
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", file_env, NULL};

		assert_int_not_equal(load_node(&c, &err, env), 0);
		assert_non_null(strstr(err.msg, "REDIS_PORT_NUMBER (from REDIS_PORT_NUMBER_FILE="));
		assert_non_null(strstr(err.msg, "='70000': must be a whole number from 1 to 65535"));
		node_config_free(&c);
	}
	write_ini("");
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", file_env, NULL};

		assert_int_not_equal(load_node(&c, &err, env), 0);
		assert_non_null(strstr(err.msg, "REDIS_PORT_NUMBER_FILE='"));
		assert_non_null(strstr(err.msg, "': is empty"));
		node_config_free(&c);
	}
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", "REDIS_PORT=7001", NULL};

		assert_int_equal(load_node(&c, &err, env), 0);
		assert_int_equal(c.opt.port, 7001);
		node_config_free(&c);
	}
	{
		char *env[] = {"KVINIT_CONFIG=/dev/null", "REDIS_PORT=7001", "REDIS_PORT_NUMBER=7002", NULL};

		assert_int_not_equal(load_node(&c, &err, env), 0);
		assert_string_equal(err.msg, "REDIS_PORT_NUMBER and REDIS_PORT are both set, to different values: set "
					     "only REDIS_PORT_NUMBER");
		node_config_free(&c);
	}
	assert_int_equal(load_node(&c, &err, noenv), 0);
	assert_int_equal(c.opt.port, 6379);
	node_config_free(&c);
}

static void test_node_values(void **state)
{
	static const struct bad_case bad[] = {
		{"REDIS_CLUSTER_ANNOUNCE_IP=1.2.3.4\nrequirepass x", "must not contain control characters"},
		{"REDIS_CLUSTER_ANNOUNCE_IP=1.2.3",
		 "REDIS_CLUSTER_ANNOUNCE_IP='1.2.3': must be an IPv4 or IPv6 address"},
		{"REDIS_CLUSTER_ANNOUNCE_IP=host.example", "must be an IPv4 or IPv6 address"},
		{"REDIS_CLUSTER_ANNOUNCE_HOSTNAME=-bad.example", "must be a hostname (RFC 1123"},
		{"REDIS_CLUSTER_ANNOUNCE_HOSTNAME=a..b", "must be a hostname"},
		{"REDIS_CLUSTER_ANNOUNCE_HOSTNAME=under_score", "must be a hostname"},
		{"REDIS_CLUSTER_AVAILABILITY_ZONE=eu west",
		 "REDIS_CLUSTER_AVAILABILITY_ZONE='eu west': must be empty or "
		 "up to 64 printable ASCII characters without blanks"},
		{"REDIS_CLUSTER_AVAILABILITY_ZONE=z\xc3\xa9", "must be empty or up to 64 printable ASCII"},
		{"REDIS_CLUSTER_AVAILABILITY_ZONE=zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz",
		 "must be empty or up to 64 printable ASCII"},
		{"REDIS_CLUSTER_AVAILABILITY_ZONE=a\tb", "must not contain control characters"},
		{"REDIS_PORT_NUMBER=0", "REDIS_PORT_NUMBER='0': must be a whole number from 1 to 65535"},
		{"REDIS_PORT_NUMBER=65536", "must be a whole number from 1 to 65535"},
		{"REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE=dns", "must be one of ip, hostname or unknown-endpoint"},
		{"REDIS_DATA_DIR=data", "REDIS_DATA_DIR='data': must be an absolute path"},
		{"REDIS_BIND=0.0.0.0 nope", "must be addresses separated by spaces"},
		{"REDIS_EXTRA_FLAGS=--port 1", "REDIS_EXTRA_FLAGS='--port 1': '--port' is set by kvinit itself"},
		{"REDIS_EXTRA_FLAGS=--requirepass x", "'--requirepass' is set by kvinit itself"},
		{"REDIS_EXTRA_FLAGS=maxmemory 1mb", "must be redis-server flags"},
		{"REDIS_EXTRA_FLAGS=--maxmemory", "must be redis-server flags"},
		{"REDIS_EXTRA_FLAGS=--MaxMemory 1", "must be redis-server flags"},
		{"REDIS_CLUSTER_NODE_TIMEOUT=50", "must be a whole number from 100 to 3600000"},
		/* issue 17: one rule for REDIS_NODES, the option layer's: spaces, commas or semicolons, no control
		   chars */
		{"REDIS_NODES=node-0:6379\tnode-1:6379", "REDIS_NODES='node-0:6379\\x09node-1:6379': must not contain "
							 "control characters"},
		{"REDIS_CLUSTER_NODES=node-0\nnode-1",
		 "REDIS_CLUSTER_NODES='node-0\\x0anode-1': must not contain control"},
		/* issue 17: a leading blank hid the first token from the check, and this became a passwordless user */
		{"REDIS_EXTRA_FLAGS= user evil on nopass +@all allkeys nopass",
		 "REDIS_EXTRA_FLAGS=' user evil on nopass +@all allkeys nopass': must be redis-server flags"},
		{"REDIS_EXTRA_FLAGS=  maxmemory 1mb", "must be redis-server flags"},
		{"REDIS_EXTRA_FLAGS= --user evil on", "'--user' is set by kvinit itself"},
		{"REDIS_EXTRA_FLAGS=--maxmemory 1mb  --logfile /data/log", "'--logfile' is set by kvinit itself"},
		{"REDIS_EXTRA_FLAGS=--availability-zone a", "'--availability-zone' is set by kvinit itself"},
	};
	static const char *const good[] = {
		"REDIS_CLUSTER_ANNOUNCE_IP=172.19.0.60",
		"REDIS_CLUSTER_ANNOUNCE_IP=fd00::5",
		"REDIS_CLUSTER_ANNOUNCE_HOSTNAME=redis-node-0.redis.default.svc.cluster.local",
		"REDIS_CLUSTER_ANNOUNCE_HOSTNAME=Shubhams-MacBook-Pro.local",
		"REDIS_BIND=127.0.0.1 -::1",
		"REDIS_BIND=* -::*",
		"REDIS_EXTRA_FLAGS=--maxmemory 100mb --maxmemory-policy allkeys-lru",
		"REDIS_EXTRA_FLAGS=--save 900 1 --save 300 10",
		"REDIS_EXTRA_FLAGS=  --maxmemory 100mb   --save 900 1  ",
		"REDIS_PORT_NUMBER=7001",
		"REDIS_CLUSTER_AVAILABILITY_ZONE=eu-west-1a",
		"REDIS_CLUSTER_AVAILABILITY_ZONE=zone_b/rack:3",
		"REDIS_NODES=node-0:6379, node-1:6379;node-2 [fd00::1]:6380",
	};
	struct node_config c;
	struct init_error err;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char *env[] = {"KVINIT_CONFIG=/dev/null", (char *)bad[i].env, NULL};

		assert_int_not_equal(load_node(&c, &err, env), 0);
		if (!strstr(err.msg, bad[i].expect))
			fail_msg("%s: got '%s', want '%s'", bad[i].env, err.msg, bad[i].expect);
		node_config_free(&c);
	}
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *env[] = {"KVINIT_CONFIG=/dev/null", (char *)good[i], NULL};

		if (load_node(&c, &err, env) != 0)
			fail_msg("%s refused: %s", good[i], err.msg);
		node_config_free(&c);
	}
}

/* Issue 17: KVINIT_CONFIG is read like a secret: a regular file, bounded, never blocking, no NUL byte. */
static void test_config_not_a_text_file(void **state)
{
	static const struct {
		const char *env;
		int code;
		const char *expect;
	} cases[] = {
		{"KVINIT_CONFIG=/dev/zero", -EINVAL, "KVINIT_CONFIG='/dev/zero': is not a regular file"},
		{"KVINIT_CONFIG=/", -EINVAL, "KVINIT_CONFIG='/': is not a regular file"},
		{"KVINIT_CONFIG=/proc/self/mem", -EIO, "cannot open config file '/proc/self/mem': Input/output error"},
	};
	struct init_config c;
	struct init_error err;
	char cfg[96], *env[] = {cfg, NULL}, big[64];
	FILE *f;
	int argind;

	(void)state;
	(void)alarm(5);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *e[] = {(char *)cases[i].env, NULL};

		assert_int_equal(load(&c, &err, NULL, 0, e, &argind), cases[i].code);
		if (strcmp(err.msg, cases[i].expect) != 0)
			fail_msg("%s: got '%s', want '%s'", cases[i].env, err.msg, cases[i].expect);
		init_config_free(&c);
	}

	/* port = 70\0 00 was read as 70 */
	snprintf(cfg, sizeof(cfg), "KVINIT_CONFIG=%s", ini_path);
	f = fopen(ini_path, "w");
	assert_non_null(f);
	assert_int_equal(fwrite("[kvinit]\n\nmax-restarts = 70\0 00\n", 1, 33, f), 33);
	fclose(f);
	assert_int_equal(load(&c, &err, NULL, 0, env, &argind), -EINVAL);
	assert_string_equal(err.msg + strlen(err.msg) - strlen("': line 3 contains a NUL byte"),
			    "': line 3 contains a NUL byte");
	assert_int_equal(strncmp(err.msg, "KVINIT_CONFIG='", 15), 0);
	init_config_free(&c);

	/* a FIFO without a writer: refused at once (the alarm turns a hang into a failure) */
	assert_int_equal(unlink(ini_path), 0);
	assert_int_equal(mkfifo(ini_path, 0600), 0);
	assert_int_equal(load(&c, &err, NULL, 0, env, &argind), -EINVAL);
	assert_non_null(strstr(err.msg, "': is not a regular file"));
	init_config_free(&c);
	(void)alarm(0);

	/* more than 1 MiB */
	assert_int_equal(unlink(ini_path), 0);
	f = fopen(ini_path, "w");
	assert_non_null(f);
	memset(big, ';', sizeof(big));
	big[sizeof(big) - 1] = '\n';
	for (size_t n = 0; n <= 1024 * 1024; n += sizeof(big))
		assert_int_equal(fwrite(big, 1, sizeof(big), f), sizeof(big));
	fclose(f);
	assert_int_equal(load(&c, &err, NULL, 0, env, &argind), -EINVAL);
	assert_non_null(strstr(err.msg, "': is larger than 1 MiB"));
	init_config_free(&c);
}

/* A 128 KB config path: shown by its start and length, so the reason still ends the message. */
static void test_long_path_keeps_the_reason(void **state)
{
	static char env_config[140000], env_file[140000];
	char *env[] = {env_config, NULL}, *env2[] = {"KVINIT_CONFIG=/dev/null", env_file, NULL};
	struct init_config c;
	struct node_config nc;
	struct init_error err;
	size_t n;
	int argind;

	(void)state;
	n = (size_t)snprintf(env_config, sizeof(env_config), "KVINIT_CONFIG=/nonexistent/");
	memset(env_config + n, 'd', 128000);
	assert_int_not_equal(load(&c, &err, NULL, 0, env, &argind), 0);
	assert_non_null(strstr(err.msg, "cannot open config file '/nonexistent/ddd"));
	assert_non_null(strstr(err.msg, "... (128013 bytes)': "));
	assert_non_null(strstr(err.msg, strerror(ENAMETOOLONG)));
	init_config_free(&c);

	n = (size_t)snprintf(env_file, sizeof(env_file), "REDIS_PORT_NUMBER_FILE=/nonexistent/");
	memset(env_file + n, 'd', 128000);
	assert_int_not_equal(load_node(&nc, &err, env2), 0);
	assert_non_null(strstr(err.msg, "REDIS_PORT_NUMBER_FILE='/nonexistent/ddd"));
	assert_non_null(strstr(err.msg, "... (128013 bytes)': "));
	node_config_free(&nc);
}

/* Every variable, flag and INI key names one option: the core's and the node's tables never share one. */
static void test_tables_are_disjoint(void **state)
{
	struct node_config c;
	struct init_error err;
	const struct init_option_table *core, *node;

	(void)state;
	assert_int_equal(node_config_defaults(&c, &err), 0);
	assert_int_equal(c.core.n_sets, 2);
	core = c.core.sets[0].table;
	node = c.core.sets[1].table;
	assert_int_equal(core->n, INIT_OPT__COUNT);
	assert_int_equal(node->n, NODE_OPT__COUNT);
	for (size_t i = 0; i < core->n; i++) {
		for (size_t k = 0; k < node->n; k++) {
			assert_string_not_equal(core->opts[i].env, node->opts[k].env);
			assert_string_not_equal(core->opts[i].key, node->opts[k].key);
		}
	}
	node_config_free(&c);
}

/* The node's options in the INI file: its own sections, and [kvinit] shared with the core. */
static void test_node_ini(void **state)
{
	struct node_config c;
	struct init_error err;
	char cfg[96], *env[] = {cfg, NULL};

	(void)state;
	snprintf(cfg, sizeof(cfg), "KVINIT_CONFIG=%s", ini_path);
	write_ini("[kvinit]\nstop-grace = 2s\nsecret-poll = 1s\n[node]\nport = 7000\n[cluster]\nreplicas = 2\n");
	assert_int_equal(load_node(&c, &err, env), 0);
	assert_int_equal(c.core.opt.stop_grace, 2000);
	assert_int_equal(c.opt.secret_poll, 1000);
	assert_int_equal(c.opt.port, 7000);
	assert_int_equal(c.opt.replicas, 2);
	assert_int_equal(c.source[NODE_OPT_port], INIT_SRC_INI);
	node_config_free(&c);

	write_ini("port = 7000\n");
	assert_int_not_equal(load_node(&c, &err, env), 0);
	assert_non_null(strstr(
		err.msg,
		":1: 'port' is outside a section (options go under [kvinit], [node], [cluster], [replication] or "
		"[sentinel])"));
	node_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
		cmocka_unit_test_setup_teardown(test_precedence, setup, teardown),
		cmocka_unit_test(test_role_default),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_good_values),
		cmocka_unit_test_setup_teardown(test_ini_errors, setup, teardown),
		cmocka_unit_test(test_flags),
		cmocka_unit_test(test_help_lists_every_option),
		cmocka_unit_test_setup_teardown(test_env_file_and_alias, setup, teardown),
		cmocka_unit_test(test_node_values),
		cmocka_unit_test(test_tables_are_disjoint),
		cmocka_unit_test_setup_teardown(test_node_ini, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_not_a_text_file, setup, teardown),
		cmocka_unit_test(test_long_path_keeps_the_reason),
	};

	return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
