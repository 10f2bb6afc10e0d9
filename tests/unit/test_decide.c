/* SPDX-License-Identifier: MIT */
/*
 * cluster-init's decisions (node/cluster/decide.c), on nodes built by hand: form, extend, leave alone or refuse;
 * which master a new replica gets; what a formation still has to do; when its waits are over.
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

#define MAX_NODES 12
#define NONE	  (-1)

/* A node as the test sees it: where it is, whom it replicates (NONE: a master) and the slots it serves. */
struct spec {
	const char *ip;
	int master;
	unsigned first, last; /* first > last: none */
};

struct world {
	struct cluster_peer peers[MAX_NODES];
	size_t n;
};

static void node_id(size_t i, char *buf)
{
	(void)snprintf(buf, CLUSTER_ID_LEN + 1, "%040zx", i + 0xabc0);
}

/* Node j's line as node `self` sees it. */
static size_t append_line(char *buf, size_t len, const struct spec *s, size_t j, size_t self)
{
	char id[CLUSTER_ID_LEN + 1], master[CLUSTER_ID_LEN + 1] = "-";

	node_id(j, id);
	if (s[j].master != NONE)
		node_id((size_t)s[j].master, master);
	len += (size_t)sprintf(buf + len, "%s %s:%zu@%zu %s%s %s 0 0 %zu connected", id, s[j].ip, 7000 + j, 17000 + j,
			       j == self ? "myself," : "", s[j].master == NONE ? "master" : "slave", master, j + 1);
	if (s[j].first <= s[j].last)
		len += (size_t)sprintf(buf + len, s[j].first == s[j].last ? " %u" : " %u-%u", s[j].first, s[j].last);
	buf[len++] = '\n';
	buf[len] = '\0';
	return len;
}

/*
 * n nodes; those with knows[i] (all when NULL) know each other, every other one knows only itself. The peers are
 * filled as cluster_inspect would fill them.
 */
static void build(struct world *w, const struct spec *s, size_t n, const bool *knows)
{
	assert_true(n <= MAX_NODES);
	memset(w, 0, sizeof(*w));
	w->n = n;
	for (size_t i = 0; i < n; i++) {
		struct cluster_peer *p = &w->peers[i];
		char *text = calloc(1, 4096);
		size_t len = 0;

		assert_non_null(text);
		(void)snprintf(p->addr.host, sizeof(p->addr.host), "%s", s[i].ip);
		p->addr.port = 7000 + (unsigned)i;
		(void)snprintf(p->ip, sizeof(p->ip), "%s", s[i].ip);
		(void)snprintf(p->meet_ip, sizeof(p->meet_ip), "%s", s[i].ip);
		p->meet_port = p->addr.port;
		p->meet_bus = p->addr.port + 10000;
		node_id(i, p->id);
		for (size_t j = 0; j < n; j++) {
			bool together = (!knows || (knows[i] && knows[j]));

			if (j == i || together) {
				len = append_line(text, len, s, j, i);
				p->known_nodes++;
			}
		}
		p->nodes_text = text;
		p->is_master = s[i].master == NONE;
		p->own_slots = s[i].first <= s[i].last ? s[i].last - s[i].first + 1 : 0;
		if (s[i].master != NONE)
			node_id((size_t)s[i].master, p->master_id);
		p->epoch = p->known_nodes > 1 ? i + 1 : 0;
		p->node_timeout = 15000;
	}
}

/* In p's CLUSTER NODES, the first `from` after `anchor` becomes `to`. */
static void edit(struct cluster_peer *p, const char *anchor, const char *from, const char *to)
{
	char *at = strstr(p->nodes_text, anchor), *text;
	size_t len = strlen(p->nodes_text) + strlen(to) + 1;

	assert_non_null(at);
	at = strstr(at, from);
	assert_non_null(at);
	text = malloc(len);
	assert_non_null(text);
	(void)snprintf(text, len, "%.*s%s%s", (int)(at - p->nodes_text), p->nodes_text, to, at + strlen(from));
	free(p->nodes_text);
	p->nodes_text = text;
}

static void unbuild(struct world *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->peers[i].nodes_text);
}

#define EMPTY(ip)                                                                                                      \
	{                                                                                                              \
		ip, NONE, 1, 0                                                                                         \
	}
#define MASTER(ip, a, b)                                                                                               \
	{                                                                                                              \
		ip, NONE, a, b                                                                                         \
	}
#define REPLICA(ip, master)                                                                                            \
	{                                                                                                              \
		ip, master, 1, 0                                                                                       \
	}

static const struct spec three_masters_three_replicas[] = {
	MASTER("10.0.0.1", 0, 5460), MASTER("10.0.0.2", 5461, 10922), MASTER("10.0.0.3", 10923, 16383),
	REPLICA("10.0.0.2", 0),	     REPLICA("10.0.0.3", 1),	      REPLICA("10.0.0.1", 2),
};

/* With the plan for one replica per master, as cluster-init computes it from the nodes' addresses. */
static int decide(struct world *w, struct cluster_decision *d, bool *member, struct init_error *err)
{
	struct cluster_plan_entry plan[MAX_NODES];
	const char *hosts[MAX_NODES];
	struct init_error plan_err = {{0}};
	int masters;

	for (size_t i = 0; i < w->n; i++)
		hosts[i] = w->peers[i].ip;
	masters = cluster_plan(w->n, hosts, NULL, 1, plan, NULL, &plan_err);
	return cluster_decide(w->peers, w->n, masters > 0 ? plan : NULL, d, member, err);
}

static void test_decide_form(void **state)
{
	static const struct spec empty[] = {EMPTY("10.0.0.1"), EMPTY("10.0.0.2"), EMPTY("10.0.0.3"),
					    EMPTY("10.0.0.4"), EMPTY("10.0.0.5"), EMPTY("10.0.0.6")};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, empty, 6, (const bool[]){false, false, false, false, false, false});
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORM);
	assert_false(d.replicas_attached);
	assert_int_equal(cluster_slots_count(&d.served), 0);
	unbuild(&w);
}

/* An init that died midway: some slots served, nodes met, no replica yet. The plan finishes it. */
static void test_decide_finish(void **state)
{
	static const struct spec half[] = {MASTER("10.0.0.1", 0, 5460), MASTER("10.0.0.2", 5461, 10922),
					   EMPTY("10.0.0.3"), EMPTY("10.0.0.4")};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, half, 4, NULL);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORM);
	assert_false(d.replicas_attached);
	assert_int_equal(cluster_slots_count(&d.served), 10923);
	assert_true(cluster_slots_has(&d.served, 10922));
	assert_false(cluster_slots_has(&d.served, 10923));
	unbuild(&w);

	/* replicas attached already: the node timeout is not lowered again */
	{
		static const struct spec with_replica[] = {MASTER("10.0.0.1", 0, 10922), REPLICA("10.0.0.2", 0),
							   EMPTY("10.0.0.3")};

		build(&w, with_replica, 3, NULL);
		assert_int_equal(decide(&w, &d, member, &err), 0);
		assert_int_equal(d.action, CLUSTER_FORM);
		assert_true(d.replicas_attached);
		unbuild(&w);
	}
}

/*
 * Another init (or one that died) handed out the planned slots and has not sent the MEETs yet: masters that serve
 * slots but do not know each other are a formation of this plan to finish, not two clusters.
 */
static void test_decide_finish_before_meet(void **state)
{
	static const struct spec slots_only[] = {
		MASTER("10.0.0.1", 0, 5460),
		MASTER("10.0.0.2", 5461, 10922),
		MASTER("10.0.0.3", 10923, 16383),
		EMPTY("10.0.0.4"),
		EMPTY("10.0.0.5"),
		EMPTY("10.0.0.6"),
	};
	static const struct spec partly[] = {
		MASTER("10.0.0.1", 0, 100), MASTER("10.0.0.2", 5461, 10922),
		EMPTY("10.0.0.3"),	    EMPTY("10.0.0.4"),
		EMPTY("10.0.0.5"),	    EMPTY("10.0.0.6"),
	};
	static const bool alone[] = {false, false, false, false, false, false};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, slots_only, 6, alone);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORM);
	assert_int_equal(cluster_slots_count(&d.served), CLUSTER_SLOTS);
	unbuild(&w);

	/* two masters met already, the third not yet */
	build(&w, slots_only, 6, (const bool[]){true, true, false, false, false, false});
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORM);
	unbuild(&w);

	build(&w, partly, 6, alone);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORM);
	assert_int_equal(cluster_slots_count(&d.served), 101 + 5462);
	unbuild(&w);
}

static void test_decide_formed(void **state)
{
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, three_masters_three_replicas, 6, NULL);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_FORMED);
	for (size_t i = 0; i < 6; i++)
		assert_true(member[i]);
	unbuild(&w);
}

static void test_decide_extend(void **state)
{
	static const struct spec grown[] = {
		MASTER("10.0.0.1", 0, 5460),
		MASTER("10.0.0.2", 5461, 10922),
		MASTER("10.0.0.3", 10923, 16383),
		REPLICA("10.0.0.2", 0),
		REPLICA("10.0.0.3", 1),
		REPLICA("10.0.0.1", 2),
		EMPTY("10.0.0.7"),
		EMPTY("10.0.0.8"),
	};
	static const bool knows[] = {true, true, true, true, true, true, false, false};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, grown, 8, knows);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_EXTEND);
	for (size_t i = 0; i < 8; i++)
		assert_int_equal(member[i], i < 6);
	unbuild(&w);
}

/* An empty master inside the cluster is what an init that died before attaching its replicas leaves. */
static void test_decide_extend_empty_master(void **state)
{
	static const struct spec left[] = {MASTER("10.0.0.1", 0, 5460), MASTER("10.0.0.2", 5461, 10922),
					   MASTER("10.0.0.3", 10923, 16383), EMPTY("10.0.0.4")};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, left, 4, NULL);
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_EXTEND);
	assert_true(member[0] && member[1] && member[2]);
	assert_false(member[3]);
	unbuild(&w);
}

/* A lone node that serves every slot is a formed, if small, cluster: keys and all. */
static void test_decide_single_node_cluster(void **state)
{
	static const struct spec one[] = {MASTER("10.0.0.1", 0, 16383), EMPTY("10.0.0.2")};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	struct world w;

	(void)state;
	build(&w, one, 2, (const bool[]){false, false});
	w.peers[0].keys = 10;
	assert_int_equal(decide(&w, &d, member, &err), 0);
	assert_int_equal(d.action, CLUSTER_EXTEND);
	assert_true(member[0]);
	assert_false(member[1]);
	unbuild(&w);
}

static void expect_refusal(struct world *w, const char *want)
{
	struct init_error err = {{0}};
	struct cluster_decision d = {.action = CLUSTER_FORMED};
	bool member[MAX_NODES] = {true};

	assert_int_equal(decide(w, &d, member, &err), -EINVAL);
	assert_string_equal(err.msg, want);
	assert_int_equal(d.action, CLUSTER_FORMED); /* never written on failure */
	assert_true(member[0]);
}

static void test_decide_refusals(void **state)
{
	static const struct spec empty3[] = {EMPTY("10.0.0.1"), EMPTY("10.0.0.2"), EMPTY("10.0.0.3")};
	static const struct spec two[] = {MASTER("10.0.0.1", 0, 16383), MASTER("10.0.0.2", 0, 16383)};
	static const struct spec outsider[] = {MASTER("10.0.0.1", 0, 8191), MASTER("10.0.0.2", 8192, 16383),
					       MASTER("10.0.0.3", 1, 0)};
	struct world w;

	(void)state;
	build(&w, empty3, 3, (const bool[]){false, false, false});
	w.peers[1].keys = 1;
	expect_refusal(&w, "10.0.0.2:7001 holds keys but is in no cluster: empty it (FLUSHALL) or leave it out");
	unbuild(&w);

	build(&w, two, 2, (const bool[]){false, false});
	expect_refusal(&w, "10.0.0.1:7000 and 10.0.0.2:7001 belong to two different clusters: refusing to merge them");
	unbuild(&w);

	/* a node that has met others but is not in the formed cluster */
	build(&w, outsider, 3, (const bool[]){true, true, false});
	w.peers[2].known_nodes = 2;
	expect_refusal(&w, "10.0.0.3:7002 is neither part of the formed cluster nor an empty node");
	unbuild(&w);
}

/*
 * A cluster with keys that does not serve every slot (a master and its replica lost, their nodes back empty) is no
 * formation in progress: keys only come in once every slot is served. Forming it by the plan would hand slots out
 * over data, so cluster-init (and a REDIS_CLUSTER_CREATOR node) refuses (issue 12).
 */
static void test_decide_no_formation_over_keys(void **state)
{
	static const struct spec half[] = {MASTER("10.0.0.1", 0, 5460), MASTER("10.0.0.2", 5461, 10922),
					   EMPTY("10.0.0.3"), EMPTY("10.0.0.4")};
	struct world w;

	(void)state;
	build(&w, half, 4, NULL);
	w.peers[1].keys = 42;
	expect_refusal(&w, "10.0.0.2:7001 holds keys, and the cluster does not serve every slot: cluster-init forms no "
			   "cluster over data; give the unserved slots a master (redis-cli --cluster fix) or empty it");
	unbuild(&w);
}

/* Slots the plan does not give those nodes: two clusters after all. */
static void test_decide_two_clusters_off_plan(void **state)
{
	static const struct spec off_range[] = {
		MASTER("10.0.0.1", 0, 5460),
		MASTER("10.0.0.2", 5000, 10922),
		MASTER("10.0.0.3", 10923, 16383),
		EMPTY("10.0.0.4"),
		EMPTY("10.0.0.5"),
		EMPTY("10.0.0.6"),
	};
	static const struct spec on_replica[] = {
		MASTER("10.0.0.1", 0, 5460), MASTER("10.0.0.2", 5461, 10922), MASTER("10.0.0.3", 10923, 16383),
		MASTER("10.0.0.4", 1, 0),    MASTER("10.0.0.5", 1, 0),	      MASTER("10.0.0.6", 16000, 16000),
	};
	static const bool alone[] = {false, false, false, false, false, false};
	struct world w;

	(void)state;
	build(&w, off_range, 6, alone);
	expect_refusal(&w, "10.0.0.1:7000 and 10.0.0.2:7001 belong to two different clusters: refusing to merge them");
	unbuild(&w);
	build(&w, on_replica, 6, alone);
	expect_refusal(&w, "10.0.0.1:7000 and 10.0.0.2:7001 belong to two different clusters: refusing to merge them");
	unbuild(&w);
}

/* What a node says about the cluster is checked: a line that does not parse fails the decision, naming the node. */
static void test_decide_bad_nodes_text(void **state)
{
	static const struct spec empty2[] = {EMPTY("10.0.0.1"), EMPTY("10.0.0.2")};
	struct init_error err = {{0}};
	struct cluster_decision d;
	bool member[MAX_NODES];
	char *bad;
	struct world w;

	(void)state;
	build(&w, empty2, 2, (const bool[]){false, false});
	bad = w.peers[1].nodes_text;
	bad[0] = 'X';
	assert_int_equal(decide(&w, &d, member, &err), -EBADMSG);
	assert_non_null(strstr(err.msg, "10.0.0.2:7001: CLUSTER NODES line 1 ("));
	assert_non_null(strstr(err.msg, "): node id 'X"));
	unbuild(&w);
}

/* ---- which master a new replica gets ---- */

static void choose(struct world *w, const bool *member, char (*master)[CLUSTER_ID_LEN + 1])
{
	struct init_error err = {{0}};

	if (cluster_choose_masters(w->peers, w->n, member, master, &err) != 0)
		fail_msg("%s", err.msg);
}

static void assert_master(const char *got, size_t want)
{
	char id[CLUSTER_ID_LEN + 1];

	node_id(want, id);
	assert_string_equal(got, id);
}

/* Hosts compared by prefix took 10.0.0.12 for 10.0.0.1. */
static void test_choose_other_host_by_address(void **state)
{
	static const struct spec s[] = {MASTER("10.0.0.12", 0, 8191), MASTER("10.0.0.2", 8192, 16383),
					REPLICA("10.0.0.3", 1), EMPTY("10.0.0.1")};
	static const bool member[] = {true, true, true, false};
	char master[4][CLUSTER_ID_LEN + 1];
	struct world w;

	(void)state;
	build(&w, s, 4, member);
	choose(&w, member, master);
	/* both masters are on other hosts than 10.0.0.1: the one without a replica */
	assert_master(master[3], 0);
	assert_string_equal(master[0], "");
	unbuild(&w);
}

static void test_choose_prefers_other_host(void **state)
{
	static const struct spec s[] = {
		MASTER("10.0.0.1", 0, 8191),
		MASTER("10.0.0.2", 8192, 16383),
		REPLICA("10.0.0.3", 1),
		EMPTY("10.0.0.1"),
	};
	static const bool member[] = {true, true, true, false};
	char master[4][CLUSTER_ID_LEN + 1];
	struct world w;

	(void)state;
	build(&w, s, 4, member);
	choose(&w, member, master);
	/* master 0 has fewer replicas, but it is on the new node's host */
	assert_master(master[3], 1);
	unbuild(&w);
}

static void test_choose_fewest_replicas_and_counts(void **state)
{
	static const struct spec s[] = {
		MASTER("10.0.0.1", 0, 5460),
		MASTER("10.0.0.2", 5461, 10922),
		MASTER("10.0.0.3", 10923, 16383),
		REPLICA("10.0.0.4", 0),
		EMPTY("10.0.0.5"),
		EMPTY("10.0.0.6"),
		EMPTY("10.0.0.7"),
	};
	static const bool member[] = {true, true, true, true, false, false, false};
	char master[7][CLUSTER_ID_LEN + 1];
	struct world w;

	(void)state;
	build(&w, s, 7, member);
	choose(&w, member, master);
	/* each choice counts for the next: masters 1 and 2 first, then master 0 ties with them at one replica */
	assert_master(master[4], 1);
	assert_master(master[5], 2);
	assert_master(master[6], 0);
	unbuild(&w);
}

/* Another zone before another host and before fewer replicas: zones are set on the peers as inspect reads them. */
static void test_choose_prefers_other_zone(void **state)
{
	static const struct spec s[] = {
		MASTER("10.0.0.1", 0, 8191), MASTER("10.0.0.2", 8192, 16383), REPLICA("10.0.0.3", 0), EMPTY("10.0.0.4"),
		EMPTY("10.0.0.5"),
	};
	static const bool member[] = {true, true, true, false, false};
	char master[5][CLUSTER_ID_LEN + 1];
	struct world w;

	(void)state;
	build(&w, s, 5, member);
	(void)snprintf(w.peers[0].zone, sizeof(w.peers[0].zone), "%s", "a");
	(void)snprintf(w.peers[1].zone, sizeof(w.peers[1].zone), "%s", "b");
	(void)snprintf(w.peers[3].zone, sizeof(w.peers[3].zone), "%s", "b");
	choose(&w, member, master);
	/* node 3 (zone b): master 1 has fewer replicas but shares its zone; master 0 is in zone a */
	assert_master(master[3], 0);
	/* node 4 (no zone): no zone is another; the master with the fewest replicas */
	assert_master(master[4], 1);
	unbuild(&w);
}

/* Ties go to the lowest slot, wherever the master's line is and wherever its slots start. */
static void test_choose_lowest_slot(void **state)
{
	static const struct spec s[] = {
		MASTER("10.0.0.2", 5461, 10922),
		MASTER("10.0.0.3", 10923, 16383),
		MASTER("10.0.0.1", 0, 5460),
		EMPTY("10.0.0.4"),
	};
	static const bool member[] = {true, true, true, false};
	char master[4][CLUSTER_ID_LEN + 1];
	struct world w;

	(void)state;
	build(&w, s, 4, member);
	choose(&w, member, master);
	assert_master(master[3], 2);
	unbuild(&w);
}

static void test_choose_no_master(void **state)
{
	static const struct spec s[] = {MASTER("10.0.0.1", 1, 0), EMPTY("10.0.0.2")};
	static const bool member[] = {true, false};
	char master[2][CLUSTER_ID_LEN + 1] = {"untouched", "untouched"};
	struct init_error err = {{0}};
	struct world w;

	(void)state;
	build(&w, s, 2, member);
	assert_int_equal(cluster_choose_masters(w.peers, w.n, member, master, &err), -EINVAL);
	assert_string_equal(err.msg, "the formed cluster has no master with slots");
	assert_string_equal(master[1], "untouched");
	unbuild(&w);
}

/* ---- forming ---- */

static void test_formation_timeouts(void **state)
{
	struct cluster_peer peers[4] = {0};
	long long original[4], fast[4];

	(void)state;
	peers[0].node_timeout = 15000;
	peers[1].node_timeout = CLUSTER_FORMATION_TIMEOUT_MS; /* left there by an init that died */
	peers[2].node_timeout = 200;
	peers[3].node_timeout = 5000;
	cluster_formation_timeouts(peers, 4, 7000, original, fast);
	assert_int_equal(original[0], 15000);
	assert_int_equal(fast[0], 500);
	assert_int_equal(original[1], 7000);
	assert_int_equal(fast[1], 500);
	assert_int_equal(original[2], 200);
	assert_int_equal(fast[2], 200);
	assert_int_equal(original[3], 5000);
	assert_int_equal(fast[3], 500);
}

static void test_config_epoch(void **state)
{
	struct cluster_peer peers[3] = {0};

	(void)state;
	peers[0].known_nodes = 1;
	peers[1].known_nodes = 3;
	peers[2].known_nodes = 1;
	peers[2].epoch = 4;
	assert_int_equal(cluster_config_epoch(peers, 0), 1);
	assert_int_equal(cluster_config_epoch(peers, 1), 0);
	assert_int_equal(cluster_config_epoch(peers, 2), 0);
}

static void test_next_unserved(void **state)
{
	struct cluster_slots served = {{0}};
	unsigned from = 50, a = 0, b = 0;

	(void)state;
	for (unsigned s = 0; s <= 99; s++)
		cluster_slots_add(&served, s);
	for (unsigned s = 200; s <= 299; s++)
		cluster_slots_add(&served, s);
	assert_true(cluster_next_unserved(&served, &from, 350, &a, &b));
	assert_int_equal(a, 100);
	assert_int_equal(b, 199);
	assert_true(cluster_next_unserved(&served, &from, 350, &a, &b));
	assert_int_equal(a, 300);
	assert_int_equal(b, 350);
	assert_false(cluster_next_unserved(&served, &from, 350, &a, &b));

	from = 0;
	assert_true(cluster_next_unserved(&served, &from, 16383, &a, &b));
	assert_int_equal(a, 100);
	assert_true(cluster_next_unserved(&served, &from, 16383, &a, &b));
	assert_int_equal(a, 300);
	assert_int_equal(b, 16383);
	assert_false(cluster_next_unserved(&served, &from, 16383, &a, &b));

	from = 0;
	assert_false(cluster_next_unserved(&served, &from, 99, &a, &b));
}

static void test_replicate_target(void **state)
{
	static const struct spec s[] = {MASTER("10.0.0.1", 0, 16383), REPLICA("10.0.0.2", 0), EMPTY("10.0.0.3"),
					MASTER("10.0.0.4", 0, 0)};
	const struct cluster_plan_entry plan[] = {
		{.role = CLUSTER_MASTER, .master = 0, .first = 0, .last = 16383},
		{.role = CLUSTER_REPLICA, .master = 0},
		{.role = CLUSTER_REPLICA, .master = 0},
		{.role = CLUSTER_REPLICA, .master = 0},
	};
	struct world w;

	(void)state;
	build(&w, s, 4, (const bool[]){true, true, false, false});
	assert_null(cluster_replicate_target(w.peers, plan, 0)); /* a master of the plan */
	assert_null(cluster_replicate_target(w.peers, plan, 1)); /* a replica of it already */
	assert_string_equal(cluster_replicate_target(w.peers, plan, 2), w.peers[0].id);
	assert_null(cluster_replicate_target(w.peers, plan, 3)); /* serves slots: never made a replica */
	unbuild(&w);
}

/* ---- waiting ---- */

static void test_all_known(void **state)
{
	struct init_error err = {{0}};
	struct world w;

	(void)state;
	build(&w, three_masters_three_replicas, 6, NULL);
	assert_int_equal(cluster_all_known(w.peers, w.n, &err), 1);
	/* a node still in handshake with another does not know it yet */
	edit(&w.peers[0], "10.0.0.2:7001", "master", "master,handshake");
	assert_int_equal(cluster_all_known(w.peers, w.n, &err), 0);
	unbuild(&w);

	build(&w, three_masters_three_replicas, 6, (const bool[]){true, true, true, true, true, false});
	assert_int_equal(cluster_all_known(w.peers, w.n, &err), 0);
	unbuild(&w);
}

static void test_slots_agree(void **state)
{
	static const bool masters[] = {true, true, true, false, false, false};
	struct init_error err = {{0}};
	struct world w;

	(void)state;
	build(&w, three_masters_three_replicas, 6, NULL);
	assert_int_equal(cluster_slots_agree(w.peers, w.n, NULL, &err), 1);
	assert_int_equal(cluster_slots_agree(w.peers, w.n, masters, &err), 1);
	/* node 5 still sees master 2 as failed: its slots are unserved there, and node 5 is no master */
	edit(&w.peers[5], "10.0.0.3:7002", "master", "master,fail");
	assert_int_equal(cluster_slots_agree(w.peers, w.n, NULL, &err), 0);
	assert_int_equal(cluster_slots_agree(w.peers, w.n, masters, &err), 1);
	unbuild(&w);

	/* node 4 sees slot 16383 at master 1 (an old view): they do not agree */
	build(&w, three_masters_three_replicas, 6, NULL);
	edit(&w.peers[4], "10.0.0.2:7001", " 5461-10922", " 5461-10922 16383");
	edit(&w.peers[4], "10.0.0.3:7002", " 10923-16383", " 10923-16382");
	assert_int_equal(cluster_slots_agree(w.peers, w.n, NULL, &err), 0);
	unbuild(&w);

	/* not every slot served */
	{
		static const struct spec s[] = {MASTER("10.0.0.1", 0, 8191), MASTER("10.0.0.2", 8192, 16382)};

		build(&w, s, 2, NULL);
		assert_int_equal(cluster_slots_agree(w.peers, w.n, NULL, &err), 0);
		unbuild(&w);
	}
}

static void test_reply_kind(void **state)
{
	(void)state;
	assert_int_equal(cluster_reply_kind("ERR Slot 5 is already busy"), CLUSTER_REPLY_DONE_BEFORE);
	assert_int_equal(cluster_reply_kind("ERR The user can assign a config epoch only when the node does not know "
					    "any other node."),
			 CLUSTER_REPLY_HARMLESS);
	assert_int_equal(cluster_reply_kind("ERR Node config epoch is already non-zero"), CLUSTER_REPLY_DONE_BEFORE);
	assert_int_equal(cluster_reply_kind("ERR Invalid node address specified: 10.0.0.1:0"), CLUSTER_REPLY_FAILED);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decide_form),
		cmocka_unit_test(test_decide_finish),
		cmocka_unit_test(test_decide_finish_before_meet),
		cmocka_unit_test(test_decide_two_clusters_off_plan),
		cmocka_unit_test(test_decide_formed),
		cmocka_unit_test(test_decide_extend),
		cmocka_unit_test(test_decide_extend_empty_master),
		cmocka_unit_test(test_decide_single_node_cluster),
		cmocka_unit_test(test_decide_refusals),
		cmocka_unit_test(test_decide_no_formation_over_keys),
		cmocka_unit_test(test_decide_bad_nodes_text),
		cmocka_unit_test(test_choose_other_host_by_address),
		cmocka_unit_test(test_choose_prefers_other_host),
		cmocka_unit_test(test_choose_prefers_other_zone),
		cmocka_unit_test(test_choose_fewest_replicas_and_counts),
		cmocka_unit_test(test_choose_lowest_slot),
		cmocka_unit_test(test_choose_no_master),
		cmocka_unit_test(test_formation_timeouts),
		cmocka_unit_test(test_config_epoch),
		cmocka_unit_test(test_next_unserved),
		cmocka_unit_test(test_replicate_target),
		cmocka_unit_test(test_all_known),
		cmocka_unit_test(test_slots_agree),
		cmocka_unit_test(test_reply_kind),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
