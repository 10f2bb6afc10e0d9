/* SPDX-License-Identifier: MIT */
/*
 * The reshaping plan (node/cluster/reshape.c) on clusters built by hand: masters added and removed with 0, 1 and 2
 * replicas, zones and machines, both in one run; every plan is checked for even shares, the theoretical minimum
 * of slots moved and moves that are valid in order; refusals.
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

#define MAX_NODES 32
#define NONE	  (-1)
#define NEW	  (-2) /* a spec's master: a new empty node */

/* A node: where it is, whom it replicates (NONE: a master, NEW: a new node), its slots, whether listed. */
struct spec {
	const char *host, *zone;
	int master;
	unsigned first, last; /* first > last: none */
	bool unlisted, failed;
};

struct world {
	struct cluster_shape_node nodes[MAX_NODES];
	size_t n;
	struct cluster_reshape plan;
};

static void build(struct world *w, const struct spec *s, size_t n)
{
	assert_true(n <= MAX_NODES);
	memset(w, 0, sizeof(*w));
	w->n = n;
	for (size_t i = 0; i < n; i++) {
		struct cluster_shape_node *node = &w->nodes[i];

		(void)snprintf(node->id, sizeof(node->id), "%040zx", i + 0xabc0);
		(void)snprintf(node->addr.host, sizeof(node->addr.host), "%s", s[i].host);
		node->addr.port = 7000 + (unsigned)i;
		(void)snprintf(node->host, sizeof(node->host), "%s", s[i].host);
		(void)snprintf(node->zone, sizeof(node->zone), "%s", s[i].zone ? s[i].zone : "");
		node->master = s[i].master >= 0 ? s[i].master : -1;
		node->member = s[i].master != NEW;
		node->wanted = !s[i].unlisted;
		node->failed = s[i].failed;
		for (unsigned slot = s[i].first; slot <= s[i].last && s[i].first <= s[i].last; slot++)
			cluster_slots_add(&node->slots, slot);
		node->nslots = cluster_slots_count(&node->slots);
	}
}

/* Masters 0..m-1 on hosts 10.0.0.1.., with redis-cli's ranges (cluster_plan's), into s. */
static void masters(struct spec *s, size_t m)
{
	struct cluster_plan_entry plan[MAX_NODES];
	struct init_error err = {{0}};

	assert_int_equal(cluster_plan(m, NULL, NULL, 0, plan, NULL, &err), (int)m);
	for (size_t i = 0; i < m; i++)
		s[i] = (struct spec){.master = NONE, .first = plan[i].first, .last = plan[i].last};
}

static const char *const HOSTS[] = {"10.0.0.1",	 "10.0.0.2",  "10.0.0.3",  "10.0.0.4",	"10.0.0.5",  "10.0.0.6",
				    "10.0.0.7",	 "10.0.0.8",  "10.0.0.9",  "10.0.0.10", "10.0.0.11", "10.0.0.12",
				    "10.0.0.13", "10.0.0.14", "10.0.0.15", "10.0.0.16", "10.0.0.17", "10.0.0.18"};

static void own_hosts(struct spec *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!s[i].host)
			s[i].host = HOSTS[i];
}

static int plan(struct world *w, unsigned replicas, bool rebalance, bool allow_remove, struct init_error *err)
{
	struct cluster_reshape_options o = {.replicas = replicas, .rebalance = rebalance, .allow_remove = allow_remove};

	return cluster_reshape_plan(w->nodes, w->n, &o, &w->plan, err);
}

static void plan_ok(struct world *w, unsigned replicas, bool rebalance, bool allow_remove)
{
	struct init_error err = {{0}};

	if (plan(w, replicas, rebalance, allow_remove, &err) != 0)
		fail_msg("%s", err.msg);
}

/* Who holds each slot once the moves are applied in order; each move's slots must be its source's then. */
static void apply_moves(const struct world *w, size_t *owner)
{
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		owner[s] = SIZE_MAX;
	for (size_t i = 0; i < w->n; i++)
		for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
			if (w->nodes[i].master < 0 && w->nodes[i].member && cluster_slots_has(&w->nodes[i].slots, s))
				owner[s] = i;
	for (size_t k = 0; k < w->plan.n_moves; k++) {
		const struct cluster_move *mv = &w->plan.moves[k];

		assert_true(mv->first <= mv->last && mv->last < CLUSTER_SLOTS);
		assert_true(mv->from != mv->to);
		if (k)
			assert_true(w->plan.moves[k - 1].last < mv->first);
		for (unsigned s = mv->first; s <= mv->last; s++) {
			assert_int_equal(owner[s], mv->from);
			owner[s] = mv->to;
		}
	}
}

/* The fewest slots that can move: the removed masters' and each master's excess over an even share. */
static unsigned minimum_moved(const struct world *w)
{
	size_t m = 0, fuller = 0;
	unsigned share, extra, moved = 0;

	for (size_t i = 0; i < w->n; i++)
		m += w->plan.nodes[i].step == CLUSTER_STEP_MASTER ||
		     (w->nodes[i].master < 0 && w->nodes[i].member && w->nodes[i].nslots &&
		      w->plan.nodes[i].step != CLUSTER_STEP_REMOVE);
	share = CLUSTER_SLOTS / (unsigned)m;
	extra = CLUSTER_SLOTS % (unsigned)m;
	for (size_t i = 0; i < w->n; i++) {
		const struct cluster_shape_node *node = &w->nodes[i];

		if (node->master >= 0 || !node->member || !node->nslots)
			continue;
		if (w->plan.nodes[i].step == CLUSTER_STEP_REMOVE) {
			moved += node->nslots;
		} else if (node->nslots > share) {
			moved += node->nslots - share;
			fuller++;
		}
	}
	return moved - (unsigned)(fuller < extra ? fuller : extra);
}

/* Runs of slots a node holds once the moves are done. */
static unsigned ranges_of(const size_t *owner, size_t node)
{
	unsigned runs = 0;

	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		runs += owner[s] == node && (s == 0 || owner[s - 1] != node);
	return runs;
}

/* Every master at 16384 / masters or one more, removed nodes at none, and the minimum moved. */
static void check_even(const struct world *w, size_t *owner)
{
	size_t m = w->plan.masters_after;
	unsigned share = CLUSTER_SLOTS / (unsigned)m, held[MAX_NODES] = {0}, total = 0;
	size_t masters_seen = 0;

	apply_moves(w, owner);
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
		assert_true(owner[s] < w->n);
		held[owner[s]]++;
	}
	for (size_t i = 0; i < w->n; i++) {
		if (!held[i])
			continue;
		masters_seen++;
		assert_true(held[i] == share || held[i] == share + 1);
		assert_int_equal(w->plan.nodes[i].slots_after, held[i]);
		assert_int_not_equal(w->plan.nodes[i].step, CLUSTER_STEP_REMOVE);
		total += held[i];
	}
	assert_int_equal(masters_seen, m);
	assert_int_equal(total, CLUSTER_SLOTS);
	assert_int_equal(w->plan.slots_moved, minimum_moved(w));
}

static void unbuild(struct world *w)
{
	cluster_reshape_free(&w->plan);
}

#define EMPTY                                                                                                          \
	{                                                                                                              \
		.master = NEW, .first = 1, .last = 0                                                                   \
	}
#define REPLICA_OF(m)                                                                                                  \
	{                                                                                                              \
		.master = (m), .first = 1, .last = 0                                                                   \
	}

/* ---- masters added ---- */

static void test_three_to_four_masters(void **state)
{
	struct spec s[4] = {{0}, {0}, {0}, EMPTY};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 4);
	build(&w, s, 4);
	plan_ok(&w, 0, false, false);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_MASTER);
	assert_int_equal(w.plan.new_masters, 1);
	assert_int_equal(w.plan.masters_before, 3);
	assert_int_equal(w.plan.masters_after, 4);
	check_even(&w, owner);
	/* 1365 + 1366 + 1365: each old master gives its top slots, one range each */
	assert_int_equal(w.plan.slots_moved, 4096);
	assert_int_equal(w.plan.n_moves, 3);
	for (size_t k = 0; k < 3; k++) {
		assert_int_equal(w.plan.moves[k].from, k);
		assert_int_equal(w.plan.moves[k].to, 3);
		assert_int_equal(w.plan.moves[k].last, s[k].last);
	}
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(ranges_of(owner, i), 1);
	unbuild(&w);
}

static void test_three_to_five_masters(void **state)
{
	struct spec s[5] = {{0}, {0}, {0}, EMPTY, EMPTY};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 5);
	build(&w, s, 5);
	plan_ok(&w, 0, false, false);
	assert_int_equal(w.plan.new_masters, 2);
	check_even(&w, owner);
	for (size_t i = 0; i < 5; i++)
		assert_true(ranges_of(owner, i) <= 2);
	unbuild(&w);
}

/* 3 masters and 3 replicas, 2 new nodes, replicas 1: one new master, and its replica is the other new node. */
static void test_six_to_eight_with_replicas(void **state)
{
	struct spec s[8] = {{0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), EMPTY, EMPTY};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 8);
	build(&w, s, 8);
	plan_ok(&w, 1, false, false);
	assert_int_equal(w.plan.nodes[6].step, CLUSTER_STEP_MASTER);
	assert_int_equal(w.plan.nodes[7].step, CLUSTER_STEP_REPLICATE);
	assert_int_equal(w.plan.nodes[7].master, 6);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(w.plan.nodes[i].step, CLUSTER_STEP_KEEP);
	assert_int_equal(w.plan.attached, 1);
	assert_int_equal(w.plan.repointed, 0);
	assert_true(cluster_reshape_needed(&w.plan));
	check_even(&w, owner);
	unbuild(&w);
}

/* 9 nodes with replicas 2 and 3 new ones: a fourth master with both others as its replicas. */
static void test_replicas_two(void **state)
{
	struct spec s[12] = {{0},	    {0},	   {0},		  REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2),
			     REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), EMPTY,	 EMPTY,		EMPTY};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 12);
	build(&w, s, 12);
	plan_ok(&w, 2, false, false);
	assert_int_equal(w.plan.nodes[9].step, CLUSTER_STEP_MASTER);
	for (size_t i = 10; i < 12; i++) {
		assert_int_equal(w.plan.nodes[i].step, CLUSTER_STEP_REPLICATE);
		assert_int_equal(w.plan.nodes[i].master, 9);
	}
	check_even(&w, owner);
	unbuild(&w);
}

/* One new node, replicas 1 on 6 nodes: 7 / 2 = 3 masters, so it is a replica and no slot moves (EXTEND's job). */
static void test_one_new_node_is_a_replica(void **state)
{
	struct spec s[7] = {{0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), EMPTY};
	struct world w;

	(void)state;
	masters(s, 3);
	own_hosts(s, 7);
	build(&w, s, 7);
	plan_ok(&w, 1, false, false);
	assert_int_equal(w.plan.nodes[6].step, CLUSTER_STEP_REPLICATE);
	assert_int_equal(w.plan.n_moves, 0);
	assert_int_equal(w.plan.attached, 1);
	assert_false(cluster_reshape_needed(&w.plan));
	unbuild(&w);
}

/* ---- masters removed ---- */

static void test_four_to_three_masters(void **state)
{
	struct spec s[4];
	struct world w;
	struct init_error err = {{0}};
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 4);
	own_hosts(s, 4);
	s[3].unlisted = true;
	build(&w, s, 4);
	assert_int_equal(plan(&w, 0, false, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'10.0.0.4:7003' (master, 4096 slots)"));
	assert_non_null(strstr(err.msg, "REDIS_CLUSTER_ALLOW_REMOVE=yes"));
	assert_null(strchr(err.msg, '\n'));
	plan_ok(&w, 0, false, true);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_REMOVE);
	assert_int_equal(w.plan.removed, 1);
	assert_int_equal(w.plan.masters_after, 3);
	check_even(&w, owner);
	assert_int_equal(w.plan.slots_moved, 4096);
	for (size_t i = 0; i < 3; i++)
		assert_true(ranges_of(owner, i) <= 2);
	unbuild(&w);
}

static void test_five_to_three_masters(void **state)
{
	struct spec s[5];
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 5);
	own_hosts(s, 5);
	s[1].unlisted = true;
	s[4].unlisted = true;
	build(&w, s, 5);
	plan_ok(&w, 0, false, true);
	assert_int_equal(w.plan.removed, 2);
	check_even(&w, owner);
	assert_int_equal(ranges_of(owner, 1), 0);
	assert_int_equal(ranges_of(owner, 4), 0);
	unbuild(&w);
}

/* Out and back: 3 -> 4 -> 3 masters ends with one range each, as it began. */
static void test_round_trip_is_contiguous(void **state)
{
	struct spec s[4] = {{0}, {0}, {0}, EMPTY};
	struct world w, back;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 4);
	build(&w, s, 4);
	plan_ok(&w, 0, false, false);
	check_even(&w, owner);
	/* the 4-master cluster the plan made, with node 3 to go */
	build(&back, s, 4);
	for (size_t i = 0; i < 4; i++) {
		memset(&back.nodes[i].slots, 0, sizeof(back.nodes[i].slots));
		for (unsigned slot = 0; slot < CLUSTER_SLOTS; slot++)
			if (owner[slot] == i)
				cluster_slots_add(&back.nodes[i].slots, slot);
		back.nodes[i].nslots = cluster_slots_count(&back.nodes[i].slots);
		back.nodes[i].member = true;
	}
	back.nodes[3].wanted = false;
	plan_ok(&back, 0, false, true);
	check_even(&back, owner);
	assert_int_equal(back.plan.slots_moved, 4096);
	/* D gave 4096-5460, 9557-10922 and 15019-16383; 10922 and 16383 go with the ranges next to them */
	assert_int_equal(back.plan.n_moves, 4);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(ranges_of(owner, i), 1);
	unbuild(&w);
	unbuild(&back);
}

/* 8 nodes (4 + 4) back to 6: the fourth master and its replica go; nothing is re-pointed. */
static void test_eight_to_six_with_replicas(void **state)
{
	struct spec s[8] = {{0}, {0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), REPLICA_OF(3)};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 4);
	own_hosts(s, 8);
	s[3].unlisted = true;
	s[7].unlisted = true;
	build(&w, s, 8);
	plan_ok(&w, 1, false, true);
	assert_int_equal(w.plan.removed, 2);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_REMOVE);
	assert_int_equal(w.plan.nodes[7].step, CLUSTER_STEP_REMOVE);
	assert_int_equal(w.plan.repointed, 0);
	check_even(&w, owner);
	unbuild(&w);
}

/* A removed master's listed replica goes to the master with the fewest replicas. */
static void test_replica_of_removed_master_is_repointed(void **state)
{
	struct spec s[7] = {{0}, {0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(3)};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 4);
	own_hosts(s, 7);
	s[3].unlisted = true;
	build(&w, s, 7);
	plan_ok(&w, 1, false, true);
	assert_int_equal(w.plan.nodes[6].step, CLUSTER_STEP_REPLICATE);
	assert_int_equal(w.plan.nodes[6].master, 2);
	assert_int_equal(w.plan.repointed, 1);
	check_even(&w, owner);
	unbuild(&w);
}

/* Removing only a replica moves nothing. */
static void test_remove_a_replica(void **state)
{
	struct spec s[4] = {{0}, {0}, {0}, REPLICA_OF(1)};
	struct world w;

	(void)state;
	masters(s, 3);
	own_hosts(s, 4);
	s[3].unlisted = true;
	build(&w, s, 4);
	plan_ok(&w, 1, false, true);
	assert_int_equal(w.plan.removed, 1);
	assert_int_equal(w.plan.n_moves, 0);
	assert_true(cluster_reshape_needed(&w.plan));
	unbuild(&w);
}

/* ---- both in one run ---- */

static void test_add_and_remove_in_one_run(void **state)
{
	struct spec s[4] = {{0}, {0}, {0}, EMPTY};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 4);
	s[2].unlisted = true;
	build(&w, s, 4);
	plan_ok(&w, 0, false, true);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_MASTER);
	assert_int_equal(w.plan.nodes[2].step, CLUSTER_STEP_REMOVE);
	check_even(&w, owner);
	/* exactly the removed master's slots, in one move to the new one */
	assert_int_equal(w.plan.slots_moved, 5461);
	assert_int_equal(w.plan.n_moves, 1);
	assert_int_equal(w.plan.moves[0].from, 2);
	assert_int_equal(w.plan.moves[0].to, 3);
	unbuild(&w);
}

/* ---- zones and machines ---- */

/* The new master is the new node in a zone without masters; the other, in a zone with one, replicates it. */
static void test_new_master_spreads_zones(void **state)
{
	struct spec s[8] = {{0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), EMPTY, EMPTY};
	static const char *const zones[8] = {"a", "b", "c", "b", "c", "a", "a", "d"};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	masters(s, 3);
	own_hosts(s, 8);
	for (size_t i = 0; i < 8; i++)
		s[i].zone = zones[i];
	build(&w, s, 8);
	plan_ok(&w, 1, false, false);
	assert_int_equal(w.plan.nodes[7].step, CLUSTER_STEP_MASTER);
	assert_int_equal(w.plan.nodes[6].step, CLUSTER_STEP_REPLICATE);
	assert_int_equal(w.plan.nodes[6].master, 7);
	check_even(&w, owner);
	unbuild(&w);
}

/* Without zones, machines: the new master goes to the machine without one. */
static void test_new_master_spreads_machines(void **state)
{
	struct spec s[8] = {{0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), REPLICA_OF(2), EMPTY, EMPTY};
	static const char *const hosts[8] = {"h1", "h2", "h3", "h2", "h3", "h1", "h1", "h4"};
	struct world w;

	(void)state;
	masters(s, 3);
	for (size_t i = 0; i < 8; i++)
		s[i].host = hosts[i];
	build(&w, s, 8);
	plan_ok(&w, 1, false, false);
	assert_int_equal(w.plan.nodes[7].step, CLUSTER_STEP_MASTER);
	assert_int_equal(w.plan.nodes[6].master, 7);
	unbuild(&w);
}

/* Among masters with the fewest replicas, the one in another zone than the new replica. */
static void test_replica_prefers_another_zone(void **state)
{
	struct spec s[7] = {{0}, {0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), EMPTY};
	static const char *const zones[7] = {"a", "b", "a", "b", "b", "a", "a"};
	struct world w;

	(void)state;
	masters(s, 4);
	own_hosts(s, 7);
	for (size_t i = 0; i < 7; i++)
		s[i].zone = zones[i];
	build(&w, s, 7);
	/* 7 nodes, replicas 1: 3 masters wanted, 4 stay; masters 2 (zone a) and 3 (zone b) have none */
	plan_ok(&w, 1, false, false);
	assert_int_equal(w.plan.nodes[6].step, CLUSTER_STEP_REPLICATE);
	assert_int_equal(w.plan.nodes[6].master, 3);
	assert_int_equal(w.plan.n_moves, 0);
	unbuild(&w);
}

/* ---- rebalancing ---- */

static void test_rebalance_only_when_asked(void **state)
{
	struct spec s[3] = {{.master = NONE, .first = 0, .last = 6000},
			    {.master = NONE, .first = 6001, .last = 10000},
			    {.master = NONE, .first = 10001, .last = 16383}};
	struct world w;
	size_t owner[CLUSTER_SLOTS];

	(void)state;
	own_hosts(s, 3);
	build(&w, s, 3);
	plan_ok(&w, 0, false, false);
	assert_int_equal(w.plan.n_moves, 0);
	assert_true(w.plan.uneven);
	assert_int_equal(w.plan.imbalance_pct, 27); /* 4000 of 5461.3 */
	assert_false(cluster_reshape_needed(&w.plan));
	unbuild(&w);

	build(&w, s, 3);
	plan_ok(&w, 0, true, false);
	assert_false(w.plan.uneven);
	check_even(&w, owner);
	/* the middle master takes its neighbours' edges: one range each still */
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(ranges_of(owner, i), 1);
	assert_int_equal(w.plan.n_moves, 2);
	unbuild(&w);
}

/* Within 2% of even, REDIS_CLUSTER_REBALANCE=yes moves nothing. */
static void test_rebalance_threshold(void **state)
{
	struct spec s[3] = {{.master = NONE, .first = 0, .last = 5500},
			    {.master = NONE, .first = 5501, .last = 10922},
			    {.master = NONE, .first = 10923, .last = 16383}};
	struct world w;

	(void)state;
	own_hosts(s, 3);
	build(&w, s, 3);
	plan_ok(&w, 0, true, false);
	assert_int_equal(w.plan.n_moves, 0);
	assert_false(w.plan.uneven);
	assert_false(cluster_reshape_needed(&w.plan));
	unbuild(&w);
}

/* ---- refusals and leftovers ---- */

static void test_failed_master_with_slots_is_not_removed(void **state)
{
	struct spec s[4];
	struct world w;
	struct init_error err = {{0}};

	(void)state;
	masters(s, 4);
	own_hosts(s, 4);
	s[2].unlisted = true;
	s[2].failed = true;
	build(&w, s, 4);
	assert_int_equal(plan(&w, 0, false, true, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "'10.0.0.3:7002'"));
	assert_non_null(strstr(err.msg, "only copy"));
}

/* A dead unlisted node without slots is no reason to refuse: left alone, or forgotten when removal is allowed. */
static void test_failed_node_without_slots(void **state)
{
	struct spec s[4] = {{0}, {0}, {0}, REPLICA_OF(0)};
	struct world w;

	(void)state;
	masters(s, 3);
	own_hosts(s, 4);
	s[3].unlisted = true;
	s[3].failed = true;
	build(&w, s, 4);
	plan_ok(&w, 0, false, false);
	assert_int_equal(w.plan.left_alone, 1);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_KEEP);
	assert_false(cluster_reshape_needed(&w.plan));
	unbuild(&w);
	build(&w, s, 4);
	plan_ok(&w, 0, false, true);
	assert_int_equal(w.plan.left_alone, 0);
	assert_int_equal(w.plan.nodes[3].step, CLUSTER_STEP_REMOVE);
	unbuild(&w);
}

static void test_no_master_left(void **state)
{
	struct spec s[2] = {{.master = NONE, .first = 0, .last = 16383}, REPLICA_OF(0)};
	struct world w;
	struct init_error err = {{0}};

	(void)state;
	own_hosts(s, 2);
	s[0].unlisted = true;
	build(&w, s, 2);
	assert_int_equal(plan(&w, 0, false, true, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "no master would be left"));
}

static void test_unserved_slot_is_refused(void **state)
{
	struct spec s[3] = {
		{.master = NONE, .first = 0, .last = 8000}, {.master = NONE, .first = 8002, .last = 16383}, EMPTY};
	struct world w;
	struct init_error err = {{0}};

	(void)state;
	own_hosts(s, 3);
	build(&w, s, 3);
	assert_int_equal(plan(&w, 0, false, false, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "slot 8001"));
}

/* The same input, the same plan. */
static void test_deterministic(void **state)
{
	struct spec s[10] = {{0}, {0}, {0}, {0}, {0}, REPLICA_OF(0), REPLICA_OF(1), EMPTY, EMPTY, EMPTY};
	struct world a, b;

	(void)state;
	masters(s, 5);
	own_hosts(s, 10);
	s[1].unlisted = true;
	build(&a, s, 10);
	build(&b, s, 10);
	plan_ok(&a, 0, false, true);
	plan_ok(&b, 0, false, true);
	assert_int_equal(a.plan.n_moves, b.plan.n_moves);
	assert_memory_equal(a.plan.moves, b.plan.moves, a.plan.n_moves * sizeof(*a.plan.moves));
	assert_memory_equal(a.plan.nodes, b.plan.nodes, 10 * sizeof(*a.plan.nodes));
	unbuild(&a);
	unbuild(&b);
}

/* Many shapes: every plan even, minimal and valid. */
static void test_many_shapes(void **state)
{
	(void)state;
	for (size_t before = 1; before <= 8; before++) {
		for (size_t added = 0; added <= 4; added++) {
			for (size_t gone = 0; gone < before; gone++) {
				struct spec s[MAX_NODES];
				struct world w;
				size_t owner[CLUSTER_SLOTS];

				memset(s, 0, sizeof(s));
				masters(s, before);
				for (size_t k = 0; k < added; k++)
					s[before + k] = (struct spec)EMPTY;
				own_hosts(s, before + added);
				for (size_t k = 0; k < gone; k++)
					s[(k * 3 + 1) % before].unlisted = true;
				build(&w, s, before + added);
				if (added == 0 && gone == 0) {
					plan_ok(&w, 0, false, true);
					assert_int_equal(w.plan.n_moves, 0);
				} else if (plan(&w, 0, false, true, &(struct init_error){{0}}) == 0) {
					check_even(&w, owner);
				} else {
					/* only when every master goes and nothing new comes */
					assert_int_equal(added, 0);
					continue;
				}
				unbuild(&w);
			}
		}
	}
}

/* ---- the shape from the peers ---- */

static void test_shape_from_peers(void **state)
{
	static const char text[] =
		"0000000000000000000000000000000000000001 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-8191\n"
		"0000000000000000000000000000000000000002 10.0.0.2:6379@16379 master - 0 0 2 connected 8192-16383\n"
		"0000000000000000000000000000000000000003 10.0.0.3:6379@16379 slave "
		"0000000000000000000000000000000000000001 0 0 1 connected\n"
		"0000000000000000000000000000000000000004 10.0.0.4:6379@16379 master,fail - 0 0 4 connected\n"
		"0000000000000000000000000000000000000005 10.0.0.5:6379@16379 slave "
		"0000000000000000000000000000000000000002 0 0 2 connected\n";
	struct cluster_peer peers[2];
	bool member[2] = {true, true};
	struct cluster_shape_node *nodes = NULL;
	struct init_error err = {{0}};
	size_t n = 0, live = 0;

	(void)state;
	memset(peers, 0, sizeof(peers));
	for (size_t i = 0; i < 2; i++) {
		(void)snprintf(peers[i].addr.host, sizeof(peers[i].addr.host), "10.0.0.%zu", i + 1);
		peers[i].addr.port = 6379;
		(void)snprintf(peers[i].ip, sizeof(peers[i].ip), "10.0.0.%zu", i + 1);
		(void)snprintf(peers[i].id, sizeof(peers[i].id), "%040zu", i + 1);
		peers[i].is_master = true;
		peers[i].nodes_text = (char *)text;
	}
	(void)snprintf(peers[1].zone, sizeof(peers[1].zone), "z2");
	if (cluster_shape_from_peers(peers, 2, member, &nodes, &n, &live, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(n, 5);
	assert_int_equal(live, 4);
	assert_true(nodes[0].wanted && nodes[0].member && nodes[0].nslots == 8192);
	assert_string_equal(nodes[1].zone, "z2");
	/* unlisted: the live ones in CLUSTER NODES order, then the failed one */
	assert_string_equal(nodes[2].id, "0000000000000000000000000000000000000003");
	assert_false(nodes[2].wanted);
	assert_int_equal(nodes[2].master, 0);
	assert_string_equal(nodes[2].addr.host, "10.0.0.3");
	assert_int_equal(nodes[2].addr.port, 6379);
	assert_int_equal(nodes[3].master, 1);
	assert_string_equal(nodes[4].id, "0000000000000000000000000000000000000004");
	assert_true(nodes[4].failed);
	free(nodes);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_to_four_masters),
		cmocka_unit_test(test_three_to_five_masters),
		cmocka_unit_test(test_six_to_eight_with_replicas),
		cmocka_unit_test(test_replicas_two),
		cmocka_unit_test(test_one_new_node_is_a_replica),
		cmocka_unit_test(test_four_to_three_masters),
		cmocka_unit_test(test_five_to_three_masters),
		cmocka_unit_test(test_round_trip_is_contiguous),
		cmocka_unit_test(test_eight_to_six_with_replicas),
		cmocka_unit_test(test_replica_of_removed_master_is_repointed),
		cmocka_unit_test(test_remove_a_replica),
		cmocka_unit_test(test_add_and_remove_in_one_run),
		cmocka_unit_test(test_new_master_spreads_zones),
		cmocka_unit_test(test_new_master_spreads_machines),
		cmocka_unit_test(test_replica_prefers_another_zone),
		cmocka_unit_test(test_rebalance_only_when_asked),
		cmocka_unit_test(test_rebalance_threshold),
		cmocka_unit_test(test_failed_master_with_slots_is_not_removed),
		cmocka_unit_test(test_failed_node_without_slots),
		cmocka_unit_test(test_no_master_left),
		cmocka_unit_test(test_unserved_slot_is_refused),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_many_shapes),
		cmocka_unit_test(test_shape_from_peers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
