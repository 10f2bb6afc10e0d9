/* SPDX-License-Identifier: MIT */
/* REDIS_NODES parsing and the cluster plan: roles, slot ranges as redis-cli makes them, spread over machines. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "cluster.h"

#define M (-1) /* in an expected plan: a master; any other value is a replica's master */

/* ---- cluster_parse_nodes ---- */

struct want_addr {
	const char *host;
	unsigned port;
};

static void parse_ok(const char *list, unsigned default_port, const struct want_addr *want, size_t n_want)
{
	struct cluster_addr *nodes = NULL;
	struct init_error err = {{0}};
	size_t n = 0;

	if (cluster_parse_nodes(list, "REDIS_NODES", default_port, &nodes, &n, &err) != 0)
		fail_msg("'%s': %s", list, err.msg);
	assert_int_equal(n, n_want);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(nodes[i].host, want[i].host);
		assert_int_equal(nodes[i].port, want[i].port);
	}
	free(nodes);
}

static void parse_refused(const char *list, const char *var, unsigned default_port, const char *msg)
{
	struct cluster_addr sentinel, *nodes = &sentinel;
	struct init_error err = {{0}};
	size_t n = 42;

	assert_int_equal(cluster_parse_nodes(list, var, default_port, &nodes, &n, &err), -EINVAL);
	assert_string_equal(err.msg, msg);
	/* ret_ out-parameters are written only on success */
	assert_ptr_equal(nodes, &sentinel);
	assert_int_equal(n, 42);
}

static void test_parse_separators(void **state)
{
	static const struct want_addr four[] = {{"a", 6379}, {"b", 6379}, {"c", 6379}, {"d", 6379}};

	(void)state;
	parse_ok("a", 6379, four, 1);
	parse_ok("a b c d", 6379, four, 4);
	parse_ok("a,b,c,d", 6379, four, 4);
	parse_ok("a;b;c;d", 6379, four, 4);
	parse_ok("a,b c;d", 6379, four, 4);
	parse_ok("  ,;a b,  c ;; d ,; ", 6379, four, 4);
	parse_ok("a ,;, b,,,c;;;d", 6379, four, 4);
	parse_ok("a\tb\nc\r\nd\n", 6379, four, 4);
}

static void test_parse_ports(void **state)
{
	static const struct want_addr want[] = {
		{"redis-node-0", 6379}, {"redis-node-1", 6380}, {"redis-node-2", 6381}, {"redis-node-3", 7000},
		{"10.0.0.1", 1},	{"10.0.0.2", 65535},	{"10.0.0.3", 7000},	{"h", 80}};

	(void)state;
	parse_ok("redis-node-0:6379,redis-node-1:6380 redis-node-2:6381;redis-node-3 10.0.0.1:1 10.0.0.2:65535 "
		 "10.0.0.3 h:0080",
		 7000, want, 8);
}

static void test_parse_ipv6(void **state)
{
	static const struct want_addr want[] = {{"::1", 7000},	   {"fd00::5", 6379},	      {"fd00::5", 6380},
						{"fd00::6", 6379}, {"::ffff:10.0.0.1", 6379}, {"fe80::1:2", 6379}};

	(void)state;
	parse_ok("[::1]:7000 fd00::5 [fd00::5]:6380 [fd00::6] ::ffff:10.0.0.1 fe80::1:2", 6379, want, 6);
}

static void test_parse_hostnames(void **state)
{
	static const struct want_addr want[] = {{"redis-node-0.redis-headless.default.svc.cluster.local", 6379},
						{"a-b.c-d", 6380},
						{"node1", 6379},
						{"0a.example", 1}};

	(void)state;
	parse_ok("redis-node-0.redis-headless.default.svc.cluster.local a-b.c-d:6380 node1 0a.example:1", 6379, want,
		 4);
}

static void test_parse_refusals(void **state)
{
	static const struct {
		const char *list, *msg;
	} cases[] = {
		{"",
		 "REDIS_NODES: no nodes: list them as host, host:port or [ipv6]:port, separated by spaces, commas or "
		 "semicolons"},
		{"  , ;", "REDIS_NODES: no nodes: list them as host, host:port or [ipv6]:port, separated by spaces, "
			  "commas or semicolons"},
		{"host:", "REDIS_NODES: entry 'host:': port must be a whole number from 1 to 65535"},
		{":6379", "REDIS_NODES: entry ':6379': the host is empty"},
		{"host:0", "REDIS_NODES: entry 'host:0': port must be a whole number from 1 to 65535"},
		{"host:65536", "REDIS_NODES: entry 'host:65536': port must be a whole number from 1 to 65535"},
		{"host:12x", "REDIS_NODES: entry 'host:12x': port must be a whole number from 1 to 65535"},
		{"host:+1", "REDIS_NODES: entry 'host:+1': port must be a whole number from 1 to 65535"},
		{"host:-1", "REDIS_NODES: entry 'host:-1': port must be a whole number from 1 to 65535"},
		{"host:0x10", "REDIS_NODES: entry 'host:0x10': port must be a whole number from 1 to 65535"},
		{"host:99999999999999999999",
		 "REDIS_NODES: entry 'host:99999999999999999999': port must be a whole number from 1 to 65535"},
		{"bad_host:1",
		 "REDIS_NODES: entry 'bad_host:1': the host must be an IP address or an RFC 1123 hostname"},
		{"-bad:1", "REDIS_NODES: entry '-bad:1': the host must be an IP address or an RFC 1123 hostname"},
		{"bad-:1", "REDIS_NODES: entry 'bad-:1': the host must be an IP address or an RFC 1123 hostname"},
		{"a..b", "REDIS_NODES: entry 'a..b': the host must be an IP address or an RFC 1123 hostname"},
		{"[::1", "REDIS_NODES: entry '[::1': '[' must be closed by ']'"},
		{"[::1]x", "REDIS_NODES: entry '[::1]x': only ':port' may follow ']'"},
		{"[::1]:", "REDIS_NODES: entry '[::1]:': port must be a whole number from 1 to 65535"},
		{"[::1]:0", "REDIS_NODES: entry '[::1]:0': port must be a whole number from 1 to 65535"},
		{"[nothost]:1", "REDIS_NODES: entry '[nothost]:1': only an IPv6 address goes in brackets"},
		{"[10.0.0.1]:1", "REDIS_NODES: entry '[10.0.0.1]:1': only an IPv6 address goes in brackets"},
		{"[fd00::zz]", "REDIS_NODES: entry '[fd00::zz]': only an IPv6 address goes in brackets"},
		{"[]:1", "REDIS_NODES: entry '[]:1': the host is empty"},
		{"a:b:c",
		 "REDIS_NODES: entry 'a:b:c': a host with two or more ':' must be an IPv6 address; write one with "
		 "a port as [address]:port"},
		{"fd00::5::1", "REDIS_NODES: entry 'fd00::5::1': a host with two or more ':' must be an IPv6 address; "
			       "write one with a port as [address]:port"},
		{"a\001b", "REDIS_NODES: entry 'a?b': the host must be an IP address or an RFC 1123 hostname"},
		/* the first bad entry in list order is the one named */
		{"good:1 bad:0 worse_:1", "REDIS_NODES: entry 'bad:0': port must be a whole number from 1 to 65535"},
		{"a:1,a:1", "REDIS_NODES: entry 'a:1': same host and port as entry 1 'a:1'"},
		{"a,a:6379", "REDIS_NODES: entry 'a:6379': same host and port as entry 1 'a'"},
		{"x Redis-0 redis-0", "REDIS_NODES: entry 'redis-0': same host and port as entry 2 'Redis-0'"},
		{"h:080 h:80", "REDIS_NODES: entry 'h:80': same host and port as entry 1 'h:080'"},
		{"[::1]:7000 [0:0::1]:7000",
		 "REDIS_NODES: entry '[0:0::1]:7000': same host and port as entry 1 '[::1]:7000'"},
		{"[fd00::5]:6379 fd00::5",
		 "REDIS_NODES: entry 'fd00::5': same host and port as entry 1 '[fd00::5]:6379'"},
		{"10.0.0.1 10.0.0.1:6379",
		 "REDIS_NODES: entry '10.0.0.1:6379': same host and port as entry 1 '10.0.0.1'"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_refused(cases[i].list, "REDIS_NODES", 6379, cases[i].msg);
	parse_refused("a:0", "NODES", 6379, "NODES: entry 'a:0': port must be a whole number from 1 to 65535");
	parse_refused(NULL, "NODES", 6379,
		      "NODES: no nodes: list them as host, host:port or [ipv6]:port, separated by spaces, commas or "
		      "semicolons");
	parse_refused("a", "NODES", 0, "NODES: default port 0 is not from 1 to 65535");
	parse_refused("a", "NODES", 65536, "NODES: default port 65536 is not from 1 to 65535");
}

static void test_parse_not_duplicates(void **state)
{
	static const struct want_addr want[] = {{"a", 1}, {"a", 2}, {"b", 1}, {"::1", 1}, {"::2", 1}, {"127.0.0.1", 1}};

	(void)state;
	parse_ok("a:1 a:2 b:1 [::1]:1 [::2]:1 127.0.0.1:1", 6379, want, 6);
}

static void test_parse_long_entry(void **state)
{
	char list[400], msg[512];

	(void)state;
	memset(list, 'a', 300);
	list[300] = '\0';
	(void)snprintf(msg, sizeof(msg),
		       "REDIS_NODES: entry '%.64s...': the host must be an IP address or an RFC 1123 hostname", list);
	parse_refused(list, "REDIS_NODES", 6379, msg);
}

static void test_parse_limit(void **state)
{
	struct cluster_addr *nodes = NULL;
	struct init_error err = {{0}};
	char *list = malloc(1001 * sizeof("n1000 "));
	size_t len = 0, n = 0;

	(void)state;
	assert_non_null(list);
	for (int i = 0; i < 1000; i++)
		len += (size_t)sprintf(list + len, "n%d ", i);
	assert_int_equal(cluster_parse_nodes(list, "REDIS_NODES", 6379, &nodes, &n, &err), 0);
	assert_int_equal(n, 1000);
	assert_string_equal(nodes[999].host, "n999");
	free(nodes);
	(void)sprintf(list + len, "n1000");
	parse_refused(list, "REDIS_NODES", 6379,
		      "REDIS_NODES: entry 'n1000': more than 1000 entries: a cluster has at most 1000 nodes");
	free(list);
}

/* ---- cluster_plan ---- */

/*
 * redis-cli.c, clusterManagerCommandCreate: single-precision floats, each end rounded with lround; (long)(x + 0.5)
 * is lround for x >= 0, without libm.
 */
static void reference_slots(size_t masters, unsigned *first, unsigned *last)
{
	float slots_per_node = CLUSTER_SLOTS / (float)masters, cursor = 0.0f;
	long start = 0;

	for (size_t j = 0; j < masters; j++) {
		float end_f = cursor + slots_per_node - 1;
		long end = (long)((double)end_f + 0.5);

		if (end > CLUSTER_SLOTS || j == masters - 1)
			end = CLUSTER_SLOTS - 1;
		if (end < start)
			end = start;
		first[j] = (unsigned)start;
		last[j] = (unsigned)end;
		start = end + 1;
		cursor += slots_per_node;
	}
}

/* What every plan must be: masters own themselves, every slot has one owner, replicas spread evenly. */
static void check_plan(const struct cluster_plan_entry *plan, size_t n, unsigned replicas, int masters)
{
	static unsigned char owned[CLUSTER_SLOTS];
	size_t count[1000] = {0}, min = SIZE_MAX, max = 0;
	unsigned next = 0;
	int seen = 0;

	assert_true(n <= 1000);
	memset(owned, 0, sizeof(owned));
	for (size_t i = 0; i < n; i++) {
		if (plan[i].role == CLUSTER_MASTER) {
			assert_int_equal(plan[i].master, i);
			/* in list order the ranges follow each other */
			assert_int_equal(plan[i].first, next);
			assert_true(plan[i].first <= plan[i].last);
			assert_true(plan[i].last < CLUSTER_SLOTS);
			for (unsigned s = plan[i].first; s <= plan[i].last; s++)
				owned[s]++;
			next = plan[i].last + 1;
			seen++;
			continue;
		}
		assert_int_equal(plan[i].role, CLUSTER_REPLICA);
		assert_true(plan[i].master < n);
		assert_int_equal(plan[plan[i].master].role, CLUSTER_MASTER);
		count[plan[i].master]++;
	}
	assert_int_equal(seen, masters);
	for (size_t s = 0; s < CLUSTER_SLOTS; s++)
		assert_int_equal(owned[s], 1);
	for (size_t i = 0; i < n; i++) {
		if (plan[i].role != CLUSTER_MASTER)
			continue;
		min = count[i] < min ? count[i] : min;
		max = count[i] > max ? count[i] : max;
	}
	assert_true(min >= replicas);
	assert_true(max - min <= 1);
}

static int plan(size_t n, const char *const *keys, unsigned replicas, struct cluster_plan_entry *ret, size_t *same_host)
{
	struct init_error err = {{0}};
	int r = cluster_plan(n, keys, NULL, replicas, ret, same_host, &err);

	if (r < 0)
		fail_msg("%zu nodes, %u replicas: %s", n, replicas, err.msg);
	check_plan(ret, n, replicas, r);
	return r;
}

/* want[i] is M for a master, else the index of node i's master. */
static void assert_roles(const struct cluster_plan_entry *got, const int *want, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (want[i] == M) {
			assert_int_equal(got[i].role, CLUSTER_MASTER);
			continue;
		}
		assert_int_equal(got[i].role, CLUSTER_REPLICA);
		assert_int_equal(got[i].master, (size_t)want[i]);
	}
}

static const char *const distinct[] = {"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9", "h10", "h11"};

static void test_plan_shapes(void **state)
{
	static const struct {
		size_t n;
		unsigned replicas;
		int masters;
		int roles[9];
	} cases[] = {
		{1, 0, 1, {M}},
		{2, 1, 1, {M, 0}},
		{3, 0, 3, {M, M, M}},
		{3, 1, 1, {M, 0, 0}},
		{3, 2, 1, {M, 0, 0}},
		{4, 0, 4, {M, M, M, M}},
		{4, 1, 2, {M, M, 0, 1}},
		{5, 0, 5, {M, M, M, M, M}},
		{5, 1, 2, {M, M, 0, 1, 0}},
		{5, 2, 1, {M, 0, 0, 0, 0}},
		{6, 0, 6, {M, M, M, M, M, M}},
		{6, 1, 3, {M, M, M, 0, 1, 2}},
		{6, 2, 2, {M, M, 0, 1, 0, 1}},
		{7, 0, 7, {M, M, M, M, M, M, M}},
		{7, 1, 3, {M, M, M, 0, 1, 2, 0}},
		{7, 2, 2, {M, M, 0, 1, 0, 1, 0}},
		{9, 0, 9, {M, M, M, M, M, M, M, M, M}},
		{9, 1, 4, {M, M, M, M, 0, 1, 2, 3, 0}},
		{9, 2, 3, {M, M, M, 0, 1, 2, 0, 1, 2}},
	};
	struct cluster_plan_entry ret[9];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		size_t same_host = 99;

		assert_int_equal(plan(cases[i].n, distinct, cases[i].replicas, ret, &same_host), cases[i].masters);
		assert_roles(ret, cases[i].roles, cases[i].n);
		assert_int_equal(same_host, 0);
	}
}

static void test_plan_slots(void **state)
{
	struct cluster_plan_entry ret[6];

	(void)state;
	assert_int_equal(plan(3, distinct, 0, ret, NULL), 3);
	assert_int_equal(ret[0].first, 0);
	assert_int_equal(ret[0].last, 5460);
	assert_int_equal(ret[1].first, 5461);
	assert_int_equal(ret[1].last, 10922);
	assert_int_equal(ret[2].first, 10923);
	assert_int_equal(ret[2].last, 16383);

	assert_int_equal(plan(6, distinct, 1, ret, NULL), 3);
	assert_int_equal(ret[2].first, 10923);
	assert_int_equal(ret[2].last, 16383);

	assert_int_equal(plan(6, distinct, 0, ret, NULL), 6);
	{
		static const unsigned want[6][2] = {{0, 2730},	   {2731, 5460},   {5461, 8191},
						    {8192, 10922}, {10923, 13652}, {13653, 16383}};

		for (size_t i = 0; i < 6; i++) {
			assert_int_equal(ret[i].first, want[i][0]);
			assert_int_equal(ret[i].last, want[i][1]);
		}
	}

	assert_int_equal(plan(1, distinct, 0, ret, NULL), 1);
	assert_int_equal(ret[0].first, 0);
	assert_int_equal(ret[0].last, 16383);

	assert_int_equal(plan(4, distinct, 1, ret, NULL), 2);
	assert_int_equal(ret[0].last, 8191);
	assert_int_equal(ret[1].first, 8192);
}

/* Every master count from 1 to 1000 against redis-cli's own arithmetic. */
static void test_plan_slots_match_redis_cli(void **state)
{
	struct cluster_plan_entry *ret = calloc(1000, sizeof(*ret));
	unsigned first[1000], last[1000];

	(void)state;
	assert_non_null(ret);
	for (size_t m = 1; m <= 1000; m++) {
		size_t j = 0;

		assert_int_equal(plan(m, NULL, 0, ret, NULL), (int)m);
		reference_slots(m, first, last);
		for (size_t i = 0; i < m; i++, j++) {
			if (ret[i].first != first[j] || ret[i].last != last[j])
				fail_msg("%zu masters, master %zu: %u-%u, redis-cli %u-%u", m, j, ret[i].first,
					 ret[i].last, first[j], last[j]);
		}
	}
	free(ret);
}

/*
 * Where floats and doubles round apart. The 78-master ranges are what redis-cli 7.0.15 printed for 78 empty nodes
 * ("Master[67] -> Slots 14073 - 14283"); the others come from the same arithmetic done outside C (float32 steps).
 * In doubles the first range of each pair would end one slot earlier or later.
 */
static void test_plan_slots_float_cases(void **state)
{
	static const struct {
		size_t masters, master;
		unsigned first, last;
	} cases[] = {
		{78, 66, 13863, 14072},	  {78, 67, 14073, 14283},   {78, 68, 14284, 14493},  {78, 77, 16174, 16383},
		{87, 72, 13559, 13747},	  {87, 73, 13748, 13935},   {102, 97, 15581, 15741}, {102, 98, 15742, 15901},
		{125, 117, 15335, 15466}, {125, 118, 15467, 15597}, {500, 221, 7242, 7274},  {500, 222, 7275, 7306},
		{500, 333, 10912, 10943}, {500, 334, 10944, 10976}, {1000, 305, 4997, 5012}, {1000, 306, 5013, 5029},
	};
	struct cluster_plan_entry *ret = calloc(1000, sizeof(*ret));

	(void)state;
	assert_non_null(ret);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(plan(cases[i].masters, NULL, 0, ret, NULL), (int)cases[i].masters);
		if (ret[cases[i].master].first != cases[i].first || ret[cases[i].master].last != cases[i].last)
			fail_msg("%zu masters, master %zu: %u-%u, want %u-%u", cases[i].masters, cases[i].master,
				 ret[cases[i].master].first, ret[cases[i].master].last, cases[i].first, cases[i].last);
	}
	free(ret);
}

static void test_plan_refusals(void **state)
{
	static const struct {
		size_t n;
		unsigned replicas;
		const char *msg;
	} cases[] = {
		{2, 2, "2 nodes cannot hold 1 master with 2 replicas: need at least 3 nodes"},
		{1, 1, "1 node cannot hold 1 master with 1 replica: need at least 2 nodes"},
		{0, 0, "0 nodes cannot hold 1 master with 0 replicas: need at least 1 node"},
		{5, 4294967295U,
		 "5 nodes cannot hold 1 master with 4294967295 replicas: need at least 4294967296 nodes"},
		{16385, 0, "16385 masters cannot share 16384 slots: use more replicas"},
	};
	struct cluster_plan_entry ret[4], before[4];

	(void)state;
	memset(ret, 0xab, sizeof(ret));
	memcpy(before, ret, sizeof(ret));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct init_error err = {{0}};
		size_t same_host = 77;

		assert_int_equal(cluster_plan(cases[i].n, distinct, NULL, cases[i].replicas, ret, &same_host, &err),
				 -EINVAL);
		assert_string_equal(err.msg, cases[i].msg);
		assert_int_equal(same_host, 77);
		assert_memory_equal(ret, before, sizeof(ret));
	}
}

static void test_plan_three_machines(void **state)
{
	static const char *const keys[] = {"A", "A", "B", "B", "C", "C"};
	/* handed out in list order, C's master would keep node 5 on C: the replicas trade masters instead */
	static const int want[] = {M, 4, M, 0, M, 2};
	struct cluster_plan_entry ret[6];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(6, keys, 1, ret, &same_host), 3);
	assert_roles(ret, want, 6);
	assert_int_equal(same_host, 0);
	for (size_t i = 0; i < 6; i++)
		if (ret[i].role == CLUSTER_REPLICA)
			assert_string_not_equal(keys[i], keys[ret[i].master]);
}

static void test_plan_one_machine(void **state)
{
	static const char *const keys[] = {"A", "A", "A", "A", "A", "A"};
	static const int want[] = {M, M, M, 0, 1, 2};
	struct cluster_plan_entry ret[6];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(6, keys, 1, ret, &same_host), 3);
	assert_roles(ret, want, 6);
	assert_int_equal(same_host, 3);
}

static void test_plan_two_machines(void **state)
{
	static const char *const keys[] = {"A", "A", "B", "B"};
	static const int want[] = {M, 2, M, 0};
	struct cluster_plan_entry ret[4];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(4, keys, 1, ret, &same_host), 2);
	assert_roles(ret, want, 4);
	assert_int_equal(same_host, 0);
}

/* The left-over node goes to the lowest master with the fewest replicas that is on another machine. */
static void test_plan_leftover_other_machine(void **state)
{
	static const char *const keys[] = {"A", "B", "A", "B", "A"};
	static const int want[] = {M, M, 1, 0, 1};
	struct cluster_plan_entry ret[5];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(5, keys, 1, ret, &same_host), 2);
	assert_roles(ret, want, 5);
	assert_int_equal(same_host, 0);
}

/* Beyond one master per machine, masters keep spreading: losing one machine must not lose most of them. */
static void test_plan_masters_balanced(void **state)
{
	static const char *const keys[] = {"A", "A", "A", "A", "B", "B", "B", "B", "C", "C", "C", "C"};
	static const int want[] = {M, M, 8, 9, M, M, 0, 1, M, M, 4, 5};
	struct cluster_plan_entry ret[12];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(12, keys, 1, ret, &same_host), 6);
	assert_roles(ret, want, 12);
	assert_int_equal(same_host, 0);
}

/* A list in an order that interleaves machines, and more machines than masters. */
static void test_plan_spread_order(void **state)
{
	static const char *const keys[] = {"A", "B", "A", "C", "B", "D", "A"};
	static const int want[] = {M, M, 1, M, 0, 3, 1};
	struct cluster_plan_entry ret[7];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(7, keys, 1, ret, &same_host), 3);
	assert_roles(ret, want, 7);
	assert_int_equal(same_host, 0);
}

static void test_plan_unknown_machines(void **state)
{
	static const char *const keys[] = {"A", NULL, "A", NULL};
	static const int want[] = {M, M, 1, 0};
	struct cluster_plan_entry ret[4];
	size_t same_host = 99;

	(void)state;
	/* a NULL key is a machine of its own */
	assert_int_equal(plan(4, keys, 1, ret, &same_host), 2);
	assert_roles(ret, want, 4);
	assert_int_equal(same_host, 0);
	assert_int_equal(plan(4, NULL, 1, ret, &same_host), 2);
	assert_int_equal(same_host, 0);
}

static void test_plan_deterministic(void **state)
{
	static const char *const keys[] = {"10.0.0.1", "10.0.0.2", "10.0.0.1", "10.0.0.3", "10.0.0.2",
					   "10.0.0.1", "10.0.0.3", "10.0.0.3", "10.0.0.1", "10.0.0.2"};
	struct cluster_plan_entry a[10], b[10];
	size_t same_a = 99, same_b = 98;

	(void)state;
	for (unsigned replicas = 0; replicas < 4; replicas++) {
		int masters = plan(10, keys, replicas, a, &same_a);

		assert_int_equal(plan(10, keys, replicas, b, &same_b), masters);
		assert_int_equal(same_a, same_b);
		for (size_t i = 0; i < 10; i++) {
			assert_int_equal(a[i].role, b[i].role);
			assert_int_equal(a[i].master, b[i].master);
			if (a[i].role == CLUSTER_MASTER) {
				assert_int_equal(a[i].first, b[i].first);
				assert_int_equal(a[i].last, b[i].last);
			}
		}
	}
}

static void test_plan_no_replicas(void **state)
{
	static const char *const keys[] = {"A", "A", "A", "B", "B"};
	struct cluster_plan_entry ret[5];
	size_t same_host = 99;

	(void)state;
	assert_int_equal(plan(5, keys, 0, ret, &same_host), 5);
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(ret[i].role, CLUSTER_MASTER);
	assert_int_equal(same_host, 0);
}

/* cluster_plan with zones, checked like plan(). */
static int plan_zones(size_t n, const char *const *keys, const char *const *zones, unsigned replicas,
		      struct cluster_plan_entry *ret)
{
	struct init_error err = {{0}};
	int r = cluster_plan(n, keys, zones, replicas, ret, NULL, &err);

	if (r < 0)
		fail_msg("%zu nodes, %u replicas: %s", n, replicas, err.msg);
	check_plan(ret, n, replicas, r);
	return r;
}

/* The integration test's layout: one host, zones a b c a b c; every replica goes to another zone. */
static void test_plan_zones_one_host(void **state)
{
	static const char *const host[] = {"h", "h", "h", "h", "h", "h"};
	static const char *const zones[] = {"a", "b", "c", "a", "b", "c"};
	static const int want[] = {M, M, M, 2, 0, 1};
	struct cluster_plan_entry got[6];

	(void)state;
	assert_int_equal(plan_zones(6, host, zones, 1, got), 3);
	assert_roles(got, want, 6);
}

/* Another zone comes before another host: node 3 shares node 0's host but not its zone; node 2 the reverse. */
static void test_plan_zone_before_host(void **state)
{
	static const char *const hosts[] = {"A", "C", "B", "A"};
	static const char *const zones[] = {"z1", "z2", "z1", "z2"};
	static const int want[] = {M, M, 1, 0};
	static const int want_no_zones[] = {M, M, 0, 1};
	struct cluster_plan_entry got[4];

	(void)state;
	assert_int_equal(plan_zones(4, hosts, zones, 1, got), 2);
	assert_roles(got, want, 4);
	assert_int_equal(plan_zones(4, hosts, NULL, 1, got), 2);
	assert_roles(got, want_no_zones, 4);
}

/* Masters spread over zones first: zones a a b b on four hosts make nodes 0 and 2 the masters, not 0 and 1. */
static void test_plan_masters_over_zones(void **state)
{
	static const char *const zones[] = {"a", "a", "b", "b"};
	static const int want[] = {M, 2, M, 0};
	struct cluster_plan_entry got[4];

	(void)state;
	assert_int_equal(plan_zones(4, distinct, zones, 1, got), 2);
	assert_roles(got, want, 4);
}

/* Unknown zones (NULL or "") change nothing: the same plan as without zones, for every shape up to 12 nodes. */
static void test_plan_unknown_zones(void **state)
{
	static const char *const machines[] = {"A", "A", "B", "B", "C", "C", "A", "B", "C", "A", "B", "C"};
	static const char *const empty[12] = {"", NULL, "", NULL, "", NULL, "", NULL, "", NULL, "", NULL};
	struct cluster_plan_entry a[12], b[12];

	(void)state;
	for (size_t n = 2; n <= 12; n++) {
		for (unsigned replicas = 0; replicas <= 2 && n >= replicas + 1; replicas++) {
			assert_int_equal(plan_zones(n, machines, NULL, replicas, a),
					 plan_zones(n, machines, empty, replicas, b));
			assert_memory_equal(a, b, n * sizeof(a[0]));
		}
	}
}

/* One known zone among unknown ones tells nothing apart: no zone is "another" unless both are known. */
static void test_plan_partly_known_zones(void **state)
{
	static const char *const host[] = {"h", "h", "h", "h"};
	static const char *const zones[] = {"a", NULL, "", "a"};
	static const int want[] = {M, M, 0, 1};
	struct cluster_plan_entry got[4];

	(void)state;
	assert_int_equal(plan_zones(4, host, zones, 1, got), 2);
	assert_roles(got, want, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_separators),
		cmocka_unit_test(test_parse_ports),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_hostnames),
		cmocka_unit_test(test_parse_refusals),
		cmocka_unit_test(test_parse_not_duplicates),
		cmocka_unit_test(test_parse_long_entry),
		cmocka_unit_test(test_parse_limit),
		cmocka_unit_test(test_plan_shapes),
		cmocka_unit_test(test_plan_slots),
		cmocka_unit_test(test_plan_slots_match_redis_cli),
		cmocka_unit_test(test_plan_slots_float_cases),
		cmocka_unit_test(test_plan_refusals),
		cmocka_unit_test(test_plan_three_machines),
		cmocka_unit_test(test_plan_one_machine),
		cmocka_unit_test(test_plan_two_machines),
		cmocka_unit_test(test_plan_leftover_other_machine),
		cmocka_unit_test(test_plan_masters_balanced),
		cmocka_unit_test(test_plan_spread_order),
		cmocka_unit_test(test_plan_unknown_machines),
		cmocka_unit_test(test_plan_deterministic),
		cmocka_unit_test(test_plan_no_replicas),
		cmocka_unit_test(test_plan_zones_one_host),
		cmocka_unit_test(test_plan_zone_before_host),
		cmocka_unit_test(test_plan_masters_over_zones),
		cmocka_unit_test(test_plan_unknown_zones),
		cmocka_unit_test(test_plan_partly_known_zones),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
