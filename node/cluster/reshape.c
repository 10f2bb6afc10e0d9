/* SPDX-License-Identifier: MIT */
/*
 * Reshaping a formed cluster to REDIS_NODES, with no I/O: which new nodes become masters and which attach as
 * replicas, which slots move from which master to which, which nodes go. reshape_apply.c carries the plan out and
 * migrate.c moves the slots; the unit tests call these functions on clusters built by hand.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define NO_NODE		0xffffU /* in a slot map: no node (indices fit in 16 bits: see MAX_SHAPE_NODES) */
#define MAX_SHAPE_NODES (NO_NODE - 1)

/* ---- the shape, from the peers ---- */

struct shape_scan {
	const struct cluster_peer *peers;
	size_t n;
	struct cluster_shape_node *nodes;
	char (*master_of)[CLUSTER_ID_LEN + 1]; /* each node's master id, resolved to an index at the end */
	size_t count, max;
	bool failed_pass; /* the second pass over the text adds the failed unlisted nodes */
};

static int scan_shape_line(const struct cluster_line *l, void *userdata)
{
	struct shape_scan *sc = userdata;
	bool failed = l->failed || cluster_has_flag(l->flags, "noaddr");
	struct cluster_shape_node *node;
	int j;

	if (cluster_has_flag(l->flags, "handshake"))
		return 0;
	j = cluster_find_peer(sc->peers, sc->n, l->id);
	if (j >= 0) {
		if (sc->failed_pass)
			return 0;
		node = &sc->nodes[j];
	} else {
		if (failed != sc->failed_pass || sc->count == sc->max)
			return 0;
		node = &sc->nodes[sc->count];
		*node = (struct cluster_shape_node){.master = -1, .member = true, .failed = failed};
		memcpy(node->id, l->id, sizeof(node->id));
		if (!cluster_addr_split(l->addr, node->addr.host, sizeof(node->addr.host), &node->addr.port))
			node->failed = true;
		(void)snprintf(node->host, sizeof(node->host), "%s", node->addr.host);
		(void)snprintf(sc->master_of[sc->count], sizeof(sc->master_of[0]), "%s", l->master);
		sc->count++;
	}
	if (l->is_master) {
		node->slots = l->slots;
		node->nslots = l->nslots;
	}
	return 0;
}

int cluster_shape_from_peers(const struct cluster_peer *peers, size_t n, const bool *member,
			     struct cluster_shape_node **ret, size_t *ret_n, size_t *ret_live, struct init_error *err)
{
	_cleanup_free_ struct cluster_shape_node *nodes = NULL;
	_cleanup_free_ char(*master_of)[CLUSTER_ID_LEN + 1] = NULL;
	struct shape_scan sc = {.peers = peers, .n = n};
	size_t first = 0, max = n, live;
	int r;

	while (first < n && !member[first])
		first++;
	if (first == n)
		return init_error_set(err, -EINVAL, "no node is in the formed cluster");
	for (const char *p = peers[first].nodes_text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "")
		max++;
	if (max > MAX_SHAPE_NODES)
		return init_error_set(err, -EINVAL, "%zu nodes: more than kvinit reshapes (%u)", max,
				      (unsigned)MAX_SHAPE_NODES);
	nodes = calloc(max, sizeof(*nodes));
	master_of = calloc(max, sizeof(*master_of));
	if (!nodes || !master_of)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct cluster_shape_node *node = &nodes[i];

		*node = (struct cluster_shape_node){.addr = peers[i].addr, .master = -1, .wanted = true};
		memcpy(node->id, peers[i].id, sizeof(node->id));
		(void)snprintf(node->host, sizeof(node->host), "%s", peers[i].ip);
		(void)snprintf(node->zone, sizeof(node->zone), "%s", peers[i].zone);
		/* its own word on whom it replicates is authoritative at once; the slots are the cluster's view */
		(void)snprintf(master_of[i], sizeof(master_of[i]), "%s", peers[i].is_master ? "" : peers[i].master_id);
	}
	sc.nodes = nodes;
	sc.master_of = master_of;
	sc.count = n;
	sc.max = max;
	r = cluster_peer_each_line(&peers[first], scan_shape_line, &sc, err);
	live = sc.count;
	sc.failed_pass = true;
	if (r == 0)
		r = cluster_peer_each_line(&peers[first], scan_shape_line, &sc, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sc.count; i++) {
		/* an empty master inside the cluster is a new node still (what a run that died after MEET leaves) */
		if (i < n)
			nodes[i].member = member[i] && (*master_of[i] || nodes[i].nslots);
		if (!*master_of[i])
			continue;
		for (size_t j = 0; j < sc.count; j++)
			if (strcmp(nodes[j].id, master_of[i]) == 0)
				nodes[i].master = (int)j;
		/* a replica of a master nobody knows: as good as new where listed, a stranger to drop where not */
		if (i < n && nodes[i].master < 0)
			nodes[i].member = false;
	}
	*ret = nodes;
	nodes = NULL;
	*ret_n = sc.count;
	if (ret_live)
		*ret_live = live;
	return 0;
}

/* ---- the plan ---- */

struct reshaper {
	const struct cluster_shape_node *nodes;
	size_t n;
	const struct cluster_reshape_options *o;
	struct cluster_reshape_node *out;
	bool *final;		/* a master once the plan is done */
	size_t *machine, *zone; /* the lowest index on the same machine, in the same zone: one id for each */
	unsigned *count;	/* slots held now, as the plan moves them */
	unsigned *target;	/* a final master's share */
	unsigned *give;		/* slots a source still gives away */
	unsigned *need;		/* slots a receiver still needs to reach its share */
	bool *may_take_one;	/* a master at the lower share that may take one of the slots left over */
	uint16_t owner[CLUSTER_SLOTS], moved_from[CLUSTER_SLOTS];
	unsigned top[MAX_SHAPE_NODES]; /* sources: the highest slot that may still be theirs, plus 1 */
};

static bool member(const struct cluster_shape_node *node)
{
	return node->member && (node->master >= 0 || node->nslots);
}

static bool removed(const struct reshaper *rs, size_t i)
{
	return rs->out[i].step == CLUSTER_STEP_REMOVE;
}

static bool kept_master(const struct cluster_shape_node *node)
{
	return node->wanted && member(node) && node->master < 0 && node->nslots;
}

/* As plan.c's distance: 2 in other zones (both known), 1 on other machines, 0 on the same machine. */
static unsigned distance(const struct cluster_shape_node *a, const struct cluster_shape_node *b)
{
	if (*a->zone && *b->zone && strcmp(a->zone, b->zone) != 0)
		return 2;
	return a == b || (*a->host && strcmp(a->host, b->host) == 0) ? 0 : 1;
}

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* "'host:port' (master, N slots), 'host:port' (replica)" for the refusal line, cut at a whole entry. */
static void list_nodes(const struct reshaper *rs, const bool *which, char *buf, size_t size)
{
	size_t len = 0, shown = 0, total = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];
		char entry[CLUSTER_HOST_MAX + 64];

		if (!which[i])
			continue;
		total++;
		(void)snprintf(entry, sizeof(entry), strchr(node->addr.host, ':') ? "'[%s]:%u' (%s" : "'%s:%u' (%s",
			       node->addr.host, node->addr.port, node->master >= 0 ? "replica" : "master");
		if (node->master < 0)
			(void)snprintf(entry + strlen(entry), sizeof(entry) - strlen(entry), ", %u slot%s",
				       node->nslots, plural(node->nslots));
		if (len + strlen(entry) + 16 >= size)
			continue;
		len += (size_t)snprintf(buf + len, size - len, "%s%s)", shown++ ? ", " : "", entry);
	}
	if (shown < total)
		(void)snprintf(buf + len, size - len, " and %zu more", total - shown);
}

/* Which nodes go; the refusals: removal not allowed, the last copy of slots. */
static int plan_removals(struct reshaper *rs, struct cluster_reshape *p, struct init_error *err)
{
	_cleanup_free_ bool *refused = calloc(rs->n, sizeof(*refused));
	char list[1024];
	size_t n_refused = 0;

	if (!refused)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];

		if (node->wanted)
			continue;
		/* a dead node without slots harms nothing: left alone unless removal is allowed */
		if (node->failed && !node->nslots && !rs->o->allow_remove) {
			p->left_alone++;
			continue;
		}
		rs->out[i].step = CLUSTER_STEP_REMOVE;
		refused[i] = true;
		n_refused++;
	}
	if (n_refused && !rs->o->allow_remove) {
		list_nodes(rs, refused, list, sizeof(list));
		return init_error_set(
			err, -EINVAL,
			"refusing to remove %zu node%s that %s in the cluster but not in REDIS_NODES: %s; "
			"set REDIS_CLUSTER_ALLOW_REMOVE=yes to move %s slots to the other masters and "
			"remove %s, or list %s in REDIS_NODES",
			n_refused, plural(n_refused), n_refused == 1 ? "is" : "are", list,
			n_refused == 1 ? "its" : "their", n_refused == 1 ? "it" : "them",
			n_refused == 1 ? "it" : "them");
	}
	memset(refused, 0, rs->n * sizeof(*refused));
	n_refused = 0;
	for (size_t i = 0; i < rs->n; i++) {
		if (removed(rs, i) && rs->nodes[i].failed && rs->nodes[i].nslots) {
			refused[i] = true;
			n_refused++;
		}
	}
	if (n_refused) {
		list_nodes(rs, refused, list, sizeof(list));
		return init_error_set(err, -EINVAL,
				      "refusing to remove %s: %s failed and %s the only copy of %s slots' data; bring "
				      "%s back, or give the slots a master (redis-cli --cluster fix) first",
				      list, n_refused == 1 ? "it is" : "they are", n_refused == 1 ? "holds" : "hold",
				      n_refused == 1 ? "its" : "their", n_refused == 1 ? "it" : "them");
	}
	p->removed = 0;
	for (size_t i = 0; i < rs->n; i++)
		p->removed += removed(rs, i);
	return 0;
}

/*
 * The new masters: listed nodes / (replicas + 1) masters in all, each time the new node (first in list order) whose
 * zone, then machine, has the fewest masters so far, as cluster_plan picks them.
 */
static int plan_masters(struct reshaper *rs, struct cluster_reshape *p, struct init_error *err)
{
	_cleanup_free_ size_t *in_zone = calloc(rs->n, sizeof(*in_zone));
	_cleanup_free_ size_t *on_machine = calloc(rs->n, sizeof(*on_machine));
	size_t wanted = 0, kept = 0, fresh = 0, masters, add;

	if (!in_zone || !on_machine)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];

		for (rs->machine[i] = 0; rs->machine[i] < i; rs->machine[i]++)
			if (*node->host && strcmp(rs->nodes[rs->machine[i]].host, node->host) == 0)
				break;
		for (rs->zone[i] = 0; strcmp(rs->nodes[rs->zone[i]].zone, node->zone) != 0; rs->zone[i]++)
			;
		wanted += node->wanted;
		fresh += node->wanted && !member(node);
		if (kept_master(node)) {
			rs->final[i] = true;
			kept++;
			in_zone[rs->zone[i]]++;
			on_machine[rs->machine[i]]++;
		}
		if (member(node) && node->master < 0 && node->nslots)
			p->masters_before++;
	}
	masters = wanted / ((size_t)rs->o->replicas + 1);
	if (!masters)
		masters = 1;
	add = masters > kept ? masters - kept : 0;
	if (add > fresh)
		add = fresh;
	if (!kept && !add)
		return init_error_set(
			err, -EINVAL,
			"no master would be left: REDIS_NODES lists no master of the cluster and no empty "
			"node to become one");
	if (kept + add > CLUSTER_SLOTS)
		return init_error_set(err, -EINVAL, "%zu masters cannot share %d slots: use more replicas", kept + add,
				      CLUSTER_SLOTS);
	for (size_t k = 0; k < add; k++) {
		size_t best = rs->n, best_count = 0;

		for (size_t i = 0; i < rs->n; i++) {
			size_t c = in_zone[rs->zone[i]] * (rs->n + 1) + on_machine[rs->machine[i]];

			if (!rs->nodes[i].wanted || member(&rs->nodes[i]) || rs->final[i] ||
			    (best < rs->n && c >= best_count))
				continue;
			best = i;
			best_count = c;
		}
		rs->final[best] = true;
		rs->out[best].step = CLUSTER_STEP_MASTER;
		in_zone[rs->zone[best]]++;
		on_machine[rs->machine[best]]++;
	}
	p->new_masters = add;
	p->masters_after = kept + add;
	return 0;
}

/* Moves one slot in the plan; moved_from keeps where it was before the plan. */
static void give_slot(struct reshaper *rs, unsigned slot, size_t to)
{
	size_t from = rs->owner[slot];

	if (rs->moved_from[slot] == NO_NODE)
		rs->moved_from[slot] = (uint16_t)from;
	rs->owner[slot] = (uint16_t)to;
	rs->count[from]--;
	rs->count[to]++;
	rs->give[from]--;
	if (rs->need[to])
		rs->need[to]--;
}

static bool gives(const struct reshaper *rs, unsigned slot)
{
	return rs->owner[slot] != NO_NODE && rs->give[rs->owner[slot]];
}

/*
 * A receiver takes its neighbours' excess first: the slots right below and above each of its ranges, as far as the
 * neighbour gives and it needs. Repeated until nothing changes, since a range that grew has new neighbours.
 */
static void take_neighbours(struct reshaper *rs)
{
	bool changed = true;

	while (changed) {
		changed = false;
		for (size_t to = 0; to < rs->n; to++) {
			for (unsigned s = 0; s < CLUSTER_SLOTS && rs->need[to]; s++) {
				if (rs->owner[s] != to)
					continue;
				if (s > 0 && rs->owner[s - 1] != to && gives(rs, s - 1)) {
					uint16_t src = rs->owner[s - 1];

					for (unsigned x = s;
					     x-- > 0 && rs->need[to] && rs->owner[x] == src && rs->give[src];) {
						give_slot(rs, x, to);
						changed = true;
					}
				}
				if (s + 1 < CLUSTER_SLOTS && rs->owner[s + 1] != to && gives(rs, s + 1)) {
					uint16_t src = rs->owner[s + 1];

					for (unsigned x = s + 1;
					     x < CLUSTER_SLOTS && rs->need[to] && rs->owner[x] == src && rs->give[src];
					     x++) {
						give_slot(rs, x, to);
						changed = true;
					}
				}
			}
		}
	}
}

/* A source's highest slot that is still its own (its top cursor only goes down: a source never gains one). */
static unsigned next_top(struct reshaper *rs, size_t from)
{
	while (rs->top[from] > 0 && rs->owner[rs->top[from] - 1] != from)
		rs->top[from]--;
	return rs->top[from] - 1;
}

/* The shares: 16384 / masters each, one more for the first masters that hold more than that now. */
static void plan_targets(struct reshaper *rs, size_t masters)
{
	unsigned share = CLUSTER_SLOTS / (unsigned)masters, extra = CLUSTER_SLOTS % (unsigned)masters;

	for (size_t i = 0; i < rs->n; i++)
		rs->target[i] = rs->final[i] ? share : 0;
	/* the extra slots stay where they are, with the fullest masters (lowest index first), as far as they go */
	for (; extra; extra--) {
		size_t best = rs->n;

		for (size_t i = 0; i < rs->n; i++)
			if (rs->final[i] && rs->target[i] == share && rs->count[i] > share &&
			    (best == rs->n || rs->count[i] > rs->count[best]))
				best = i;
		if (best == rs->n)
			break;
		rs->target[best] = share + 1;
	}
	for (size_t i = 0; i < rs->n; i++) {
		rs->give[i] = rs->count[i] > rs->target[i] ? rs->count[i] - rs->target[i] : 0;
		rs->need[i] = rs->count[i] < rs->target[i] ? rs->target[i] - rs->count[i] : 0;
		/* `extra` left: that many masters at the lower share take one of the slots left over */
		rs->may_take_one[i] = extra && rs->final[i] && rs->target[i] == share;
	}
}

static int even_out(struct reshaper *rs, size_t masters, struct init_error *err)
{
	for (size_t i = 0; i < rs->n; i++)
		rs->top[i] = CLUSTER_SLOTS;
	plan_targets(rs, masters);
	take_neighbours(rs);
	/* the rest: each receiver in index order from each source's top slots, sources in index order */
	for (size_t to = 0; to < rs->n; to++)
		for (size_t from = 0; from < rs->n && rs->need[to]; from++)
			while (rs->need[to] && rs->give[from])
				give_slot(rs, next_top(rs, from), to);
	/* slots left over: to a master at the lower share next to them, else the first one */
	for (size_t from = 0; from < rs->n; from++) {
		while (rs->give[from]) {
			unsigned s = next_top(rs, from);
			size_t to = rs->n;

			for (size_t i = 0; i < rs->n && to == rs->n; i++)
				if (rs->may_take_one[i] && ((s > 0 && rs->owner[s - 1] == i) ||
							    (s + 1 < CLUSTER_SLOTS && rs->owner[s + 1] == i)))
					to = i;
			for (size_t i = 0; i < rs->n && to == rs->n; i++)
				if (rs->may_take_one[i])
					to = i;
			if (to == rs->n)
				return init_error_set(err, -EINVAL, "slot %u has no master to go to", s);
			rs->may_take_one[to] = false;
			give_slot(rs, s, to);
		}
	}
	return 0;
}

/* The most a master is off an even share, in percent of that share, as redis-cli --cluster rebalance measures it. */
static unsigned imbalance_pct(const struct reshaper *rs, size_t masters)
{
	unsigned long worst = 0;

	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];
		unsigned long held = (unsigned long)node->nslots * masters, off;

		if (!member(node) || node->master >= 0 || !node->nslots)
			continue;
		off = held > CLUSTER_SLOTS ? held - CLUSTER_SLOTS : CLUSTER_SLOTS - held;
		if (off > worst)
			worst = off;
	}
	return (unsigned)((worst * 100 + CLUSTER_SLOTS - 1) / CLUSTER_SLOTS);
}

/* The slots that move, as ranges with one source and one target each, ascending. */
static int collect_moves(const struct reshaper *rs, struct cluster_reshape *p, struct init_error *err)
{
	size_t count = 0;

	for (int pass = 0; pass < 2; pass++) {
		count = 0;
		for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
			unsigned e = s;

			if (rs->moved_from[s] == NO_NODE)
				continue;
			while (e + 1 < CLUSTER_SLOTS && rs->moved_from[e + 1] == rs->moved_from[s] &&
			       rs->owner[e + 1] == rs->owner[s])
				e++;
			if (pass)
				p->moves[count] = (struct cluster_move){
					.first = s, .last = e, .from = rs->moved_from[s], .to = rs->owner[s]};
			else
				p->slots_moved += e - s + 1;
			count++;
			s = e;
		}
		if (!pass && count) {
			p->moves = calloc(count, sizeof(*p->moves));
			if (!p->moves)
				return init_error_set(err, -ENOMEM, "out of memory");
		}
	}
	p->n_moves = count;
	return 0;
}

/* Slots: who holds which now; the moves when masters change, or when uneven and REDIS_CLUSTER_REBALANCE=yes. */
static int plan_slots(struct reshaper *rs, struct cluster_reshape *p, struct init_error *err)
{
	bool change = p->new_masters > 0, imbalanced;
	int res;

	memset(rs->owner, 0xff, sizeof(rs->owner));
	memset(rs->moved_from, 0xff, sizeof(rs->moved_from));
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];

		if (!member(node) || node->master >= 0)
			continue;
		for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
			if (cluster_slots_has(&node->slots, s))
				rs->owner[s] = (uint16_t)i;
		rs->count[i] = node->nslots;
		change = change || (removed(rs, i) && node->nslots);
	}
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		if (rs->owner[s] == NO_NODE)
			return init_error_set(err, -EINVAL,
					      "slot %u is served by no master: give it one first (redis-cli --cluster "
					      "fix)",
					      s);
	p->imbalance_pct = imbalance_pct(rs, p->masters_before);
	imbalanced = p->imbalance_pct > CLUSTER_REBALANCE_THRESHOLD_PCT;
	if (!change && !(imbalanced && rs->o->rebalance)) {
		p->uneven = imbalanced;
		return 0;
	}
	res = even_out(rs, p->masters_after, err);
	if (res == 0)
		res = collect_moves(rs, p, err);
	return res;
}

/* A master's lowest slot once the moves are done (CLUSTER_SLOTS for none): the last tie-break for a replica. */
static unsigned lowest_after(const struct reshaper *rs, size_t m)
{
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		if (rs->owner[s] == m)
			return s;
	return CLUSTER_SLOTS;
}

/*
 * The new replicas, and the listed replicas of removed masters, in list order: each to the master with the fewest
 * replicas, then the farthest, then the lowest slot. Fewest first, unlike cluster_choose_masters: a new master must
 * not stay without a replica because an old one is farther.
 */
static int plan_replicas(struct reshaper *rs, struct cluster_reshape *p, struct init_error *err)
{
	_cleanup_free_ size_t *replicas = calloc(rs->n, sizeof(*replicas));
	_cleanup_free_ unsigned *low = calloc(rs->n, sizeof(*low));

	if (!replicas || !low)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];

		if (rs->final[i])
			low[i] = lowest_after(rs, i);
		if (node->wanted && member(node) && node->master >= 0 && rs->final[node->master])
			replicas[node->master]++;
	}
	for (size_t i = 0; i < rs->n; i++) {
		const struct cluster_shape_node *node = &rs->nodes[i];
		size_t best = rs->n;

		if (!node->wanted || rs->final[i] || (member(node) && node->master >= 0 && rs->final[node->master]))
			continue;
		for (size_t m = 0; m < rs->n; m++) {
			if (!rs->final[m])
				continue;
			if (best == rs->n || replicas[m] < replicas[best] ||
			    (replicas[m] == replicas[best] &&
			     (distance(node, &rs->nodes[m]) > distance(node, &rs->nodes[best]) ||
			      (distance(node, &rs->nodes[m]) == distance(node, &rs->nodes[best]) &&
			       low[m] < low[best]))))
				best = m;
		}
		if (best == rs->n)
			return init_error_set(err, -EINVAL, "no master for a replica");
		rs->out[i] = (struct cluster_reshape_node){.step = CLUSTER_STEP_REPLICATE, .master = best};
		replicas[best]++;
		if (member(node))
			p->repointed++;
		else
			p->attached++;
	}
	return 0;
}

int cluster_reshape_plan(const struct cluster_shape_node *nodes, size_t n, const struct cluster_reshape_options *o,
			 struct cluster_reshape *ret, struct init_error *err)
{
	_cleanup_free_ struct reshaper *rs = NULL;
	_cleanup_free_ bool *final = NULL, *may_take_one = NULL;
	_cleanup_free_ size_t *machine = NULL, *zone = NULL;
	_cleanup_free_ unsigned *count = NULL, *target = NULL, *give = NULL, *need = NULL;
	struct cluster_reshape p = {0};
	int res;

	if (!n || n > MAX_SHAPE_NODES)
		return init_error_set(err, -EINVAL, "%zu nodes: kvinit reshapes 1 to %u", n, (unsigned)MAX_SHAPE_NODES);
	for (size_t i = 0; i < n; i++)
		if (nodes[i].master >= (int)n || (nodes[i].master >= 0 && nodes[i].master == (int)i))
			return init_error_set(err, -EINVAL, "node %zu: its master %d is not another node", i,
					      nodes[i].master);
	rs = calloc(1, sizeof(*rs));
	final = calloc(n, sizeof(*final));
	may_take_one = calloc(n, sizeof(*may_take_one));
	machine = calloc(n, sizeof(*machine));
	zone = calloc(n, sizeof(*zone));
	count = calloc(n, sizeof(*count));
	target = calloc(n, sizeof(*target));
	give = calloc(n, sizeof(*give));
	need = calloc(n, sizeof(*need));
	p.nodes = calloc(n, sizeof(*p.nodes));
	if (!rs || !final || !may_take_one || !machine || !zone || !count || !target || !give || !need || !p.nodes) {
		free(p.nodes);
		return init_error_set(err, -ENOMEM, "out of memory");
	}
	*rs = (struct reshaper){
		.nodes = nodes,
		.n = n,
		.o = o,
		.out = p.nodes,
		.final = final,
		.machine = machine,
		.zone = zone,
		.count = count,
		.target = target,
		.give = give,
		.need = need,
		.may_take_one = may_take_one,
	};
	res = plan_removals(rs, &p, err);
	if (res == 0)
		res = plan_masters(rs, &p, err);
	if (res == 0)
		res = plan_slots(rs, &p, err);
	if (res == 0)
		res = plan_replicas(rs, &p, err);
	if (res < 0) {
		cluster_reshape_free(&p);
		return res;
	}
	for (size_t i = 0; i < n; i++)
		p.nodes[i].slots_after = final[i] ? count[i] : 0;
	*ret = p;
	return 0;
}

bool cluster_reshape_needed(const struct cluster_reshape *p)
{
	return p->new_masters || p->n_moves || p->repointed || p->removed;
}

void cluster_reshape_free(struct cluster_reshape *p)
{
	free(p->nodes);
	free(p->moves);
	*p = (struct cluster_reshape){0};
}
