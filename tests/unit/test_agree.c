/* SPDX-License-Identifier: MIT */
/*
 * Whether every node sees the same cluster (node/cluster/agree.c), on CLUSTER NODES texts written by hand: the
 * views of a fresh 3 + 3 cluster, and each way one view can lag behind (a replica still a master, another master,
 * old slots, a node not known yet, a handshake, a suspected failure, a node outside REDIS_NODES).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "cluster.h"

#define N 6

/* 3 masters (nodes 0-2, slots as redis-cli hands them out) and 3 replicas (3 of 0, 4 of 1, 5 of 2). */
static const int master_of[N] = {-1, -1, -1, 0, 1, 2};
static const char *const slots_of[N] = {"0-5460", "5461-10922", "10923-16383", "", "", ""};

static struct cluster_peer peers[N];

static void node_id(size_t i, char *buf)
{
	(void)snprintf(buf, CLUSTER_ID_LEN + 1, "%040zx", i + 0xe1a0);
}

/* Node j's line as `viewer` sees it, as a server writes it. */
static size_t append_line(char *buf, size_t len, size_t j, size_t viewer)
{
	char id[CLUSTER_ID_LEN + 1], master[CLUSTER_ID_LEN + 1] = "-";

	node_id(j, id);
	if (master_of[j] >= 0)
		node_id((size_t)master_of[j], master);
	return len + (size_t)sprintf(buf + len, "%s 127.0.0.1:%zu@%zu %s%s %s 0 1764120000%03zu %zu connected%s%s\n",
				     id, 7000 + j, 17000 + j, j == viewer ? "myself," : "",
				     master_of[j] < 0 ? "master" : "slave", master, j,
				     j < 3 ? j + 1 : (size_t)master_of[j] + 1, *slots_of[j] ? " " : "", slots_of[j]);
}

/* Every node's CLUSTER NODES after the cluster settled. */
static int setup(void **state)
{
	(void)state;
	memset(peers, 0, sizeof(peers));
	for (size_t i = 0; i < N; i++) {
		struct cluster_peer *p = &peers[i];
		size_t len = 0;

		p->nodes_text = calloc(1, 4096);
		assert_non_null(p->nodes_text);
		(void)snprintf(p->addr.host, sizeof(p->addr.host), "127.0.0.1");
		p->addr.port = 7000 + (unsigned)i;
		(void)snprintf(p->ip, sizeof(p->ip), "127.0.0.1");
		node_id(i, p->id);
		for (size_t k = 0; k < N; k++)
			len = append_line(p->nodes_text, len, (i + k) % N, i); /* each node lists in its own order */
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (size_t i = 0; i < N; i++) {
		free(peers[i].nodes_text);
		peers[i].nodes_text = NULL;
	}
	return 0;
}

/* In node i's CLUSTER NODES, the line that contains `anchor`: its first `from` becomes `to` ("" drops the line). */
static void edit(size_t i, const char *anchor, const char *from, const char *to)
{
	char *text = peers[i].nodes_text, *line = strstr(text, anchor), *at, *end, *out;

	assert_non_null(line);
	while (line > text && line[-1] != '\n')
		line--;
	end = strchr(line, '\n') + 1;
	out = calloc(1, strlen(text) + strlen(to) + 1);
	assert_non_null(out);
	if (!*from) {
		(void)sprintf(out, "%.*s%s", (int)(line - text), text, end);
	} else {
		at = strstr(line, from);
		assert_true(at && at < end);
		(void)sprintf(out, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
	}
	free(text);
	peers[i].nodes_text = out;
}

/* Adds a line to node i's CLUSTER NODES. */
static void add_line(size_t i, const char *line)
{
	char *out = calloc(1, strlen(peers[i].nodes_text) + strlen(line) + 2);

	assert_non_null(out);
	(void)sprintf(out, "%s%s\n", peers[i].nodes_text, line);
	free(peers[i].nodes_text);
	peers[i].nodes_text = out;
}

/* Runs the check; *ret_why gets the reason, and stale the pairs. */
static int agree(char *why, size_t size, bool *stale)
{
	struct init_error err = {{0}};
	int r = cluster_views_agree(peers, N, stale, why, size, &err);

	if (r < 0)
		print_message("%s\n", err.msg);
	return r;
}

static size_t count_stale(const bool *stale)
{
	size_t c = 0;

	for (size_t k = 0; k < N * N; k++)
		c += stale[k];
	return c;
}

static void test_settled(void **state)
{
	bool stale[N * N];
	char why[256] = "x";

	(void)state;
	assert_int_equal(agree(why, sizeof(why), stale), 1);
	assert_string_equal(why, "");
	assert_int_equal(count_stale(stale), 0);
	/* why and stale may be left out */
	assert_int_equal(cluster_views_agree(peers, N, NULL, why, sizeof(why), NULL), 1);
}

/* What issue 13 saw: right after the REPLICATEs, node 1 still lists a replica as a master. */
static void test_replica_still_master(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(1, "127.0.0.1:7003@", "slave 000000000000000000000000000000000000e1a0", "master -");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7001' sees '127.0.0.1:7003' as a master with slots '-'; it says it is a "
				 "replica of '127.0.0.1:7000'");
	assert_true(stale[1 * N + 3]);
	assert_int_equal(count_stale(stale), 1);
}

static void test_other_master(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(5, "127.0.0.1:7004@", "000000000000000000000000000000000000e1a1",
	     "000000000000000000000000000000000000e1a2");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7005' sees '127.0.0.1:7004' as a replica of '127.0.0.1:7002'; it says it "
				 "is a replica of '127.0.0.1:7001'");
	assert_true(stale[5 * N + 4]);
	assert_int_equal(count_stale(stale), 1);
}

/* A master seen with old slots, and, on another node, a replica that still sees its master as one (a failover). */
static void test_slots(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(4, "127.0.0.1:7002@", "10923-16383", "10924-16383");
	edit(0, "127.0.0.1:7001@", "5461-10922", "5461-10922 10923");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7000' sees '127.0.0.1:7001' as a master with slots '5461-10923'; it says "
				 "it is a master with slots '5461-10922'");
	assert_true(stale[0 * N + 1]);
	assert_true(stale[4 * N + 2]);
	assert_int_equal(count_stale(stale), 2);
}

static void test_not_known(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(2, "127.0.0.1:7005@", "", "");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7002' does not know '127.0.0.1:7005' yet");
	assert_true(stale[2 * N + 5]);
	assert_int_equal(count_stale(stale), 1);
}

static void test_flags(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(3, "127.0.0.1:7001@", "master", "master,fail?");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7003' flags '127.0.0.1:7001' 'fail?'");
	assert_true(stale[3 * N + 1]);
	teardown(state);
	setup(state);

	edit(4, "127.0.0.1:7000@", "master", "master,fail");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7004' flags '127.0.0.1:7000' 'fail'");
	teardown(state);
	setup(state);

	/* a MEET to a known address leaves a handshake line (a random id) until the PONG comes back */
	add_line(2, "d1f6b8fc1b1e4c6c2f9d06f57d4d8cfd2b7cbc11 127.0.0.1:7004@17004 handshake - 1764120000000 0 0 "
		    "connected");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7002' flags '127.0.0.1:7004' 'handshake'");
	assert_int_equal(count_stale(stale), 0);
	teardown(state);
	setup(state);

	edit(0, "127.0.0.1:7005@", "slave", "slave,noaddr");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7000' flags '127.0.0.1:7005' 'noaddr'");
	teardown(state);
	setup(state);

	/* other flags are no disagreement */
	edit(0, "127.0.0.1:7005@", "slave", "slave,nofailover");
	for (size_t i = 1; i < N; i++)
		edit(i, "127.0.0.1:7005@", "slave", "slave,nofailover");
	assert_int_equal(agree(why, sizeof(why), stale), 1);
}

/* A node outside REDIS_NODES counts when every node sees it alike. */
static void test_outside(void **state)
{
	static const char line[] = "00000000000000000000000000000000000000ff 127.0.0.1:7009@17009 slave "
				   "000000000000000000000000000000000000e1a0 0 1764120000000 1 connected";
	bool stale[N * N];
	char why[256];

	(void)state;
	for (size_t i = 0; i < N; i++)
		add_line(i, line);
	assert_int_equal(agree(why, sizeof(why), stale), 1);

	edit(3, "127.0.0.1:7009@", "000000000000000000000000000000000000e1a0",
	     "000000000000000000000000000000000000e1a1");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7003' sees '127.0.0.1:7009' as a replica of '127.0.0.1:7001'; "
				 "'127.0.0.1:7000' sees it as a replica of '127.0.0.1:7000'");
	assert_int_equal(count_stale(stale), 0);

	edit(3, "127.0.0.1:7009@", "", "");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7003' knows 0 nodes outside REDIS_NODES, '127.0.0.1:7000' knows 1");
	teardown(state);
	setup(state);

	add_line(4, line);
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7004' knows '127.0.0.1:7009', which '127.0.0.1:7000' does not");
}

static void test_bad_text(void **state)
{
	bool stale[N * N];
	char why[256];

	(void)state;
	edit(2, "myself", "", "");
	assert_int_equal(agree(why, sizeof(why), stale), 0);
	assert_string_equal(why, "'127.0.0.1:7002' does not list itself");
	add_line(1, "not a cluster nodes line");
	{
		struct init_error err = {{0}};

		assert_int_equal(cluster_views_agree(peers, N, stale, why, sizeof(why), &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "127.0.0.1:7001"));
	}
}

/* Node i knows only itself, a fresh master. */
static void alone(size_t i)
{
	(void)snprintf(peers[i].nodes_text, 4096, "%s 127.0.0.1:%zu@%zu myself,master - 0 0 0 connected\n", peers[i].id,
		       7000 + i, 17000 + i);
}

/*
 * Who MEETs whom in a formation: a settled cluster needs no MEET; fresh nodes (each knowing only itself) make one
 * MEET a pair, from the one listed first; a node that others know but that knows nobody (its nodes.conf lost) is
 * met by nobody and MEETs each of them itself; a peer with no id yet is met.
 */
static void test_meet_wanted(void **state)
{
	size_t count = 0;

	(void)state;
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < N; j++)
			assert_false(cluster_meet_wanted(peers, i, j));
	for (size_t i = 0; i < N; i++)
		alone(i);
	for (size_t i = 0; i < N; i++)
		for (size_t j = 0; j < N; j++) {
			assert_int_equal(cluster_meet_wanted(peers, i, j), i < j);
			count += cluster_meet_wanted(peers, i, j);
		}
	assert_int_equal(count, N * (N - 1) / 2);

	teardown(state);
	setup(state);
	alone(4); /* node 4 knows nobody; the others know it */
	for (size_t j = 0; j < N; j++) {
		assert_int_equal(cluster_meet_wanted(peers, 4, j), j != 4);
		assert_false(cluster_meet_wanted(peers, j, 4));
	}
	peers[2].id[0] = '\0';
	assert_true(cluster_meet_wanted(peers, 3, 2));
	assert_false(cluster_meet_wanted(peers, 2, 2));
}

/* The formation's timeout: kept for PATIENCE times itself, then doubled up to the configured one, never above it. */
static void test_formation_timeout(void **state)
{
	(void)state;
	assert_int_equal(cluster_formation_timeout_next(500, 5000, 0), 500);
	assert_int_equal(cluster_formation_timeout_next(500, 5000, 500 * CLUSTER_FORMATION_PATIENCE - 1), 500);
	assert_int_equal(cluster_formation_timeout_next(500, 5000, 500 * CLUSTER_FORMATION_PATIENCE), 1000);
	assert_int_equal(cluster_formation_timeout_next(2000, 5000, 60000), 4000);
	assert_int_equal(cluster_formation_timeout_next(4000, 5000, 60000), 5000);
	assert_int_equal(cluster_formation_timeout_next(5000, 5000, 60000), 5000);
	assert_int_equal(cluster_formation_timeout_next(500, 700, 60000), 700);
	/* a configured timeout at or below the formation's is never raised */
	assert_int_equal(cluster_formation_timeout_next(300, 300, 60000), 300);
	assert_int_equal(cluster_formation_timeout_next(500, 500, 60000), 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_settled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_replica_still_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_master, setup, teardown),
		cmocka_unit_test_setup_teardown(test_slots, setup, teardown),
		cmocka_unit_test_setup_teardown(test_not_known, setup, teardown),
		cmocka_unit_test_setup_teardown(test_flags, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outside, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_text, setup, teardown),
		cmocka_unit_test_setup_teardown(test_meet_wanted, setup, teardown),
		cmocka_unit_test(test_formation_timeout),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
