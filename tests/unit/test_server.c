/* SPDX-License-Identifier: MIT */
/* The server's `--version` line: which server it is, its version as a number that compares like (major, minor, patch).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "node.h"

static void parse_ok(const char *line, enum node_flavor want_flavor, unsigned want_version)
{
	enum node_flavor flavor = NODE_REDIS;
	unsigned version = 0;

	if (node_server_parse_version(line, &flavor, &version) != 0)
		fail_msg("refused '%s'", line);
	assert_int_equal(flavor, want_flavor);
	assert_int_equal(version, want_version);
}

static void parse_refused(const char *line)
{
	enum node_flavor flavor = NODE_VALKEY;
	unsigned version = 42;

	if (node_server_parse_version(line, &flavor, &version) != -EBADMSG)
		fail_msg("took '%s'", line);
	assert_int_equal(flavor, NODE_VALKEY);
	assert_int_equal(version, 42);
}

static void test_releases(void **state)
{
	(void)state;
	parse_ok("Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=c4ab8a2bb4e9e8ed",
		 NODE_REDIS, NODE_VERSION(7, 0, 15));
	parse_ok("Redis server v=6.0.0 sha=00000000:0 malloc=libc bits=64 build=1", NODE_REDIS, NODE_VERSION(6, 0, 0));
	parse_ok("Valkey server v=8.0.1 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", NODE_VALKEY,
		 NODE_VERSION(8, 0, 1));
	parse_ok("Redis server v=7.2.4", NODE_REDIS, NODE_VERSION(7, 2, 4));
}

/* Release candidates and unstable builds report parts far above 99. */
static void test_prereleases(void **state)
{
	(void)state;
	parse_ok("Redis server v=7.1.240 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", NODE_REDIS,
		 NODE_VERSION(7, 1, 240)); /* 7.2-rc1 */
	parse_ok("Redis server v=7.9.224 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", NODE_REDIS,
		 NODE_VERSION(7, 9, 224)); /* 8.0-M01 */
	parse_ok("Valkey server v=7.9.240 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", NODE_VALKEY,
		 NODE_VERSION(7, 9, 240)); /* 8.0.0-rc1 */
	parse_ok("Valkey server v=255.255.255 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=1", NODE_VALKEY,
		 NODE_VERSION(255, 255, 255)); /* unstable */
	parse_ok("Redis server v=999.999.999", NODE_REDIS, NODE_VERSION(999, 999, 999));
}

/* The number orders versions as the tuples do, whatever the size of a part. */
static void test_order(void **state)
{
	static const unsigned ordered[][3] = {
		{5, 99, 99}, {6, 0, 0},	 {6, 2, 14},  {7, 0, 0},       {7, 0, 15},
		{7, 1, 240}, {7, 2, 0},	 {7, 9, 224}, {7, 9, 240},     {8, 0, 0},
		{8, 0, 1},   {99, 0, 0}, {100, 0, 0}, {255, 255, 255}, {999, 999, 999},
	};
	size_t n = sizeof(ordered) / sizeof(ordered[0]);

	(void)state;
	for (size_t i = 0; i + 1 < n; i++)
		assert_true(NODE_VERSION(ordered[i][0], ordered[i][1], ordered[i][2]) <
			    NODE_VERSION(ordered[i + 1][0], ordered[i + 1][1], ordered[i + 1][2]));
}

static void test_refused(void **state)
{
	static const char *const lines[] = {
		"",
		"KeyDB server v=6.3.4 sha=00000000:0",
		"redis server v=7.0.15",
		"Redis server",
		"Redis server v=7.0",
		"Redis server v=7.0.",
		"Redis server v=7..0",
		"Redis server v=7.0.x",
		"Redis server v=-7.0.0",
		"Redis server v=+7.0.0",
		"Redis server v= 7.0.0",
		"Redis server v=7.0.15x",
		"Redis server v=1000.0.0",
		"Redis server v=7.1000.0",
		"Redis server v=7.0.1000",
		"Redis server v=99999999999999999999.0.0",
	};

	(void)state;
	for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++)
		parse_refused(lines[i]);
}

/* A release candidate knows what its release knows. */
static void test_knows(void **state)
{
	struct node_server rc = {.flavor = NODE_REDIS, .version = NODE_VERSION(7, 1, 240)};
	struct node_server old = {.flavor = NODE_REDIS, .version = NODE_VERSION(6, 2, 14)};
	struct node_server unstable = {.flavor = NODE_VALKEY, .version = NODE_VERSION(255, 255, 255)};
	char buf[48];

	(void)state;
	assert_true(node_server_knows(&rc, NODE_DIR_CLUSTER_PORT));
	assert_false(node_server_knows(&old, NODE_DIR_CLUSTER_PORT));
	assert_true(node_server_knows(&old, NODE_DIR_ACL_CHANNELS));
	assert_true(node_server_knows(&unstable, NODE_DIR_ANNOUNCE_HOSTNAME));
	node_server_describe(&rc, buf, sizeof(buf));
	assert_string_equal(buf, "Redis 7.1.240");
	node_server_describe(&unstable, buf, sizeof(buf));
	assert_string_equal(buf, "Valkey 255.255.255");
	node_server_describe(&old, buf, sizeof(buf));
	assert_string_equal(buf, "Redis 6.2.14");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_releases), cmocka_unit_test(test_prereleases), cmocka_unit_test(test_order),
		cmocka_unit_test(test_refused),	 cmocka_unit_test(test_knows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
