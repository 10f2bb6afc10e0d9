/* SPDX-License-Identifier: MIT */
/*
 * Every decision cluster-init takes, as functions of what cluster_inspect found (the peers and their CLUSTER NODES
 * texts) with no I/O, so the unit tests build the peers by hand: form the cluster, extend it, leave it alone or
 * refuse; which master each new replica gets; what a formation still has to do; when a wait is over.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

/* Who serves each slot, as one node sees it: an index into the peers, UNKNOWN_OWNER, or NO_OWNER. */
#define NO_OWNER      0xffffU
#define UNKNOWN_OWNER (NO_OWNER - 1)

/* Union-find over the peers: nodes that know each other are in one cluster. */
static size_t uf_find(size_t *parent, size_t i)
{
	while (parent[i] != i)
		i = parent[i] = parent[parent[i]];
	return i;
}

struct knows_scan {
	const struct cluster_peer *peers;
	size_t n, self;
	size_t *parent;		      /* NULL: only count */
	struct cluster_slots *served; /* NULL: do not collect */
	unsigned known;		      /* peers seen, handshakes excluded */
	bool any_replica;
};

static int scan_knows(const struct cluster_line *l, void *userdata)
{
	struct knows_scan *k = userdata;
	int j;

	if (l->handshake)
		return 0;
	if (!l->is_master)
		k->any_replica = true;
	j = cluster_find_peer(k->peers, k->n, l->id);
	if (j >= 0) {
		k->known++;
		if (k->parent)
			k->parent[uf_find(k->parent, k->self)] = uf_find(k->parent, (size_t)j);
	}
	if (k->served && l->is_master)
		cluster_slots_merge(k->served, &l->slots);
	return 0;
}

/* A master's lowest slot (CLUSTER_SLOTS for none): the tie-break between equal candidates. */
static unsigned lowest_slot(const struct cluster_line *l)
{
	for (unsigned w = 0; w < CLUSTER_SLOTS / 64; w++)
		if (l->slots.bits[w])
			return w * 64 + (unsigned)__builtin_ctzll(l->slots.bits[w]);
	return CLUSTER_SLOTS;
}

/* A master's highest slot (0 for none). */
static unsigned highest_slot(const struct cluster_line *l)
{
	for (unsigned w = CLUSTER_SLOTS / 64; w-- > 0;)
		if (l->slots.bits[w])
			return w * 64 + 63 - (unsigned)__builtin_clzll(l->slots.bits[w]);
	return 0;
}

struct plan_scan {
	const struct cluster_peer *peers;
	size_t n;
	const struct cluster_plan_entry *plan;
	bool off_plan;
};

static int scan_plan(const struct cluster_line *l, void *userdata)
{
	struct plan_scan *s = userdata;
	int j;

	if (!l->is_master || !l->nslots)
		return 0;
	j = cluster_find_peer(s->peers, s->n, l->id);
	s->off_plan = j < 0 || s->plan[j].role != CLUSTER_MASTER || lowest_slot(l) < s->plan[j].first ||
		      highest_slot(l) > s->plan[j].last;
	return s->off_plan;
}

/*
 * Whether every slot any node reports served is served by a master of the plan, within its planned range: 1 yes,
 * 0 no, or -EBADMSG. That is what an init leaves between handing out the slots and the MEETs, and what a second
 * init started at the same time sees.
 */
static int within_plan(const struct cluster_peer *peers, size_t n, const struct cluster_plan_entry *plan,
		       struct init_error *err)
{
	struct plan_scan s = {.peers = peers, .n = n, .plan = plan};

	if (!plan)
		return 0;
	for (size_t i = 0; i < n && !s.off_plan; i++) {
		int r = cluster_peer_each_line(&peers[i], scan_plan, &s, err);

		if (r < 0)
			return r;
	}
	return !s.off_plan;
}

/* The one line of a refusal: "<node> <why>". */
static int refuse(struct init_error *err, const char *node, const char *why)
{
	return init_error_set(err, -EINVAL, "%.200s %s", node, why);
}

int cluster_decide(const struct cluster_peer *peers, size_t n, const struct cluster_plan_entry *plan,
		   struct cluster_decision *ret, bool *ret_member, struct init_error *err)
{
	_cleanup_free_ size_t *parent = NULL;
	_cleanup_free_ struct cluster_slots *served = NULL; /* by cluster (union-find root) */
	_cleanup_free_ bool *member = NULL;
	_cleanup_free_ struct cluster_decision *d = NULL;
	char name[CLUSTER_HOST_MAX + 16], other[2 * CLUSTER_HOST_MAX + 40];
	int full = -1, with_slots = -1, r;
	bool split = false;

	if (!n)
		return init_error_set(err, -EINVAL, "no nodes");
	parent = calloc(n, sizeof(*parent));
	served = calloc(n, sizeof(*served));
	member = calloc(n, sizeof(*member));
	d = calloc(1, sizeof(*d));
	if (!parent || !served || !member || !d)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		parent[i] = i;
	for (size_t i = 0; i < n; i++) {
		struct knows_scan k = {.peers = peers, .n = n, .self = i, .parent = parent, .served = &d->served};

		r = cluster_peer_each_line(&peers[i], scan_knows, &k, err);
		if (r < 0)
			return r;
		d->replicas_attached = d->replicas_attached || k.any_replica;
	}
	for (size_t i = 0; i < n; i++) {
		struct knows_scan k = {.peers = peers, .n = n, .self = i, .served = &served[uf_find(parent, i)]};

		r = cluster_peer_each_line(&peers[i], scan_knows, &k, err);
		if (r < 0)
			return r;
	}
	/*
	 * A node alone with keys is someone's data, not a cluster to join (at start it even claims the slots its keys
	 * hash to). Only a node that serves all 16384 slots by itself is a formed, if small, cluster.
	 */
	for (size_t i = 0; i < n; i++) {
		cluster_peer_name(&peers[i], name, sizeof(name));
		if (peers[i].keys > 0 && peers[i].known_nodes <= 1 &&
		    cluster_slots_count(&served[uf_find(parent, i)]) != CLUSTER_SLOTS)
			return refuse(err, name,
				      "holds keys but is in no cluster: empty it (FLUSHALL) or leave it out");
	}
	for (size_t i = 0; i < n; i++) {
		size_t root = uf_find(parent, i);
		unsigned covered = cluster_slots_count(&served[root]);

		if (!covered)
			continue;
		if (!split && with_slots >= 0 && uf_find(parent, (size_t)with_slots) != root) {
			split = true;
			cluster_peer_name(&peers[with_slots], other, sizeof(other));
			cluster_peer_name(&peers[i], name, sizeof(name));
			(void)snprintf(other + strlen(other), sizeof(other) - strlen(other), " and %.200s", name);
		}
		with_slots = (int)i;
		if (covered == CLUSTER_SLOTS)
			full = (int)root;
	}
	/* nodes with slots that do not know each other: a formation of this plan before its MEETs, or two clusters */
	if (split) {
		r = full < 0 ? within_plan(peers, n, plan, err) : 0;
		if (r < 0)
			return r;
		if (!r)
			return refuse(err, other, "belong to two different clusters: refusing to merge them");
	}

	if (full < 0) {
		/*
		 * Keys come in only once every slot is served: a cluster with keys and unserved slots lost a master
		 * (and its replicas), and forming it by the plan would hand slots out over data.
		 */
		for (size_t i = 0; i < n; i++) {
			if (peers[i].keys <= 0)
				continue;
			cluster_peer_name(&peers[i], name, sizeof(name));
			return refuse(
				err, name,
				"holds keys, and the cluster does not serve every slot: cluster-init forms no cluster "
				"over data; give the unserved slots a master (redis-cli --cluster fix) or empty it");
		}
		d->action = CLUSTER_FORM;
	} else {
		/*
		 * To attach as replicas: empty nodes outside the cluster, and empty masters inside it (what an init
		 * that died before attaching its replicas leaves behind).
		 */
		d->action = CLUSTER_FORMED;
		for (size_t i = 0; i < n; i++) {
			const struct cluster_peer *p = &peers[i];
			bool inside = uf_find(parent, i) == (size_t)full;

			member[i] = inside && !(p->is_master && !p->own_slots && !p->keys);
			if (!member[i])
				d->action = CLUSTER_EXTEND;
			if (inside)
				continue;
			cluster_peer_name(p, name, sizeof(name));
			if (p->known_nodes > 1 || p->own_slots || p->keys)
				return refuse(err, name, "is neither part of the formed cluster nor an empty node");
		}
	}
	*ret = *d;
	memcpy(ret_member, member, n * sizeof(*member));
	return 0;
}

/* ---- extending a formed cluster ---- */

struct lines_scan {
	struct cluster_line *lines;
	size_t n, max;
};

static int scan_lines(const struct cluster_line *l, void *userdata)
{
	struct lines_scan *m = userdata;

	if (m->n < m->max && !l->handshake)
		m->lines[m->n++] = *l;
	return 0;
}

/* The master for new node p: see cluster_choose_masters. NULL when there is no master with slots. */
static const struct cluster_line *choose_master(const struct lines_scan *ls, const struct cluster_peer *peers, size_t n,
						const struct cluster_peer *p)
{
	const struct cluster_line *best = NULL;
	unsigned best_count = 0, best_low = CLUSTER_SLOTS, best_far = 0;

	for (size_t a = 0; a < ls->n; a++) {
		const struct cluster_line *m = &ls->lines[a];
		unsigned count = 0, low, far;
		int k;

		if (!m->is_master || !m->nslots)
			continue;
		for (size_t b = 0; b < ls->n; b++)
			count += strcmp(ls->lines[b].master, m->id) == 0;
		/* as plan.c's distance: 2 in another zone (both known), 1 on another host, 0 on the same */
		k = cluster_find_peer(peers, n, m->id);
		if (k >= 0 && *peers[k].zone && *p->zone && strcmp(peers[k].zone, p->zone) != 0)
			far = 2;
		else
			far = cluster_line_host_is(m, p->meet_ip) ? 0 : 1;
		low = lowest_slot(m);
		if (!best || far > best_far ||
		    (far == best_far && (count < best_count || (count == best_count && low < best_low)))) {
			best = m;
			best_count = count;
			best_low = low;
			best_far = far;
		}
	}
	return best;
}

int cluster_choose_masters(const struct cluster_peer *peers, size_t n, const bool *member,
			   char (*ret_master)[CLUSTER_ID_LEN + 1], struct init_error *err)
{
	_cleanup_free_ char(*chosen)[CLUSTER_ID_LEN + 1] = calloc(n, sizeof(*chosen));
	_cleanup_free_ struct cluster_line *lines = NULL;
	struct lines_scan ls = {0};
	const char *text;
	size_t first = 0;
	int r;

	while (first < n && !member[first])
		first++;
	if (first == n)
		return init_error_set(err, -EINVAL, "no node is in the formed cluster");
	/* room for every line of its CLUSTER NODES and one more for each new replica */
	text = peers[first].nodes_text ? peers[first].nodes_text : "";
	ls.max = n + 1;
	for (const char *p = strchr(text, '\n'); p; p = strchr(p + 1, '\n'))
		ls.max++;
	lines = calloc(ls.max, sizeof(*lines));
	ls.lines = lines;
	if (!chosen || !lines)
		return init_error_set(err, -ENOMEM, "out of memory");
	r = cluster_peer_each_line(&peers[first], scan_lines, &ls, err);
	if (r < 0)
		return r;

	for (size_t i = 0; i < n; i++) {
		const struct cluster_line *best;
		struct cluster_line *added;

		if (member[i])
			continue;
		best = choose_master(&ls, peers, n, &peers[i]);
		if (!best)
			return init_error_set(err, -EINVAL, "the formed cluster has no master with slots");
		memcpy(chosen[i], best->id, sizeof(chosen[i]));
		/* counted, so the next new node goes elsewhere */
		if (ls.n < ls.max) {
			added = &ls.lines[ls.n++];
			*added = (struct cluster_line){.is_master = false};
			memcpy(added->master, chosen[i], sizeof(added->master));
			(void)snprintf(added->id, sizeof(added->id), "%s", peers[i].id);
		}
	}
	memcpy(ret_master, chosen, n * sizeof(*chosen));
	return 0;
}

/* ---- forming ---- */

void cluster_formation_timeouts(const struct cluster_peer *peers, size_t n, long long configured,
				long long *ret_original, long long *ret_fast)
{
	for (size_t i = 0; i < n; i++) {
		long long original =
			peers[i].node_timeout == CLUSTER_FORMATION_TIMEOUT_MS ? configured : peers[i].node_timeout;

		ret_original[i] = original;
		ret_fast[i] = original < CLUSTER_FORMATION_TIMEOUT_MS ? original : CLUSTER_FORMATION_TIMEOUT_MS;
	}
}

/* Only a node that knows nobody and has no epoch yet takes one; the others have theirs from the cluster. */
unsigned long long cluster_config_epoch(const struct cluster_peer *peers, size_t i)
{
	return peers[i].known_nodes > 1 || peers[i].epoch ? 0 : (unsigned long long)i + 1;
}

bool cluster_next_unserved(const struct cluster_slots *served, unsigned *from, unsigned last, unsigned *ret_first,
			   unsigned *ret_last)
{
	for (unsigned s = *from; s <= last && s < CLUSTER_SLOTS; s++) {
		unsigned e = s;

		if (cluster_slots_has(served, s))
			continue;
		while (e + 1 <= last && e + 1 < CLUSTER_SLOTS && !cluster_slots_has(served, e + 1))
			e++;
		*from = e + 1;
		*ret_first = s;
		*ret_last = e;
		return true;
	}
	*from = last + 1;
	return false;
}

/* A replica of that master already, by its own word (another replica of it may exist too): nothing to do. */
const char *cluster_replicate_target(const struct cluster_peer *peers, const struct cluster_plan_entry *plan, size_t i)
{
	const char *id = peers[plan[i].master].id;

	if (plan[i].role != CLUSTER_REPLICA || peers[i].own_slots || strcmp(peers[i].master_id, id) == 0)
		return NULL;
	return id;
}

/* ---- waiting ---- */

int cluster_all_known(const struct cluster_peer *peers, size_t n, struct init_error *err)
{
	for (size_t i = 0; i < n; i++) {
		struct knows_scan k = {.peers = peers, .n = n, .self = i};
		int r = cluster_peer_each_line(&peers[i], scan_knows, &k, err);

		if (r < 0)
			return r;
		if (k.known != n)
			return 0;
	}
	return 1;
}

struct map_scan {
	const struct cluster_peer *peers;
	size_t n;
	uint16_t owner[CLUSTER_SLOTS];
	unsigned covered;
};

static int scan_map(const struct cluster_line *l, void *userdata)
{
	struct map_scan *m = userdata;
	int who = cluster_find_peer(m->peers, m->n, l->id);

	if (!l->is_master || !l->nslots || l->failed)
		return 0;
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++) {
		if (!cluster_slots_has(&l->slots, s))
			continue;
		m->covered += m->owner[s] == NO_OWNER;
		m->owner[s] = who < 0 ? UNKNOWN_OWNER : (uint16_t)who;
	}
	return 0;
}

/*
 * (Who replicates whom travels by gossip for a second or two more; each node's own word on its role is
 * authoritative at once, and that is what the shape at the end shows.)
 */
int cluster_slots_agree(const struct cluster_peer *peers, size_t n, const bool *which, struct init_error *err)
{
	_cleanup_free_ struct map_scan *first = calloc(1, sizeof(*first));
	_cleanup_free_ struct map_scan *cur = calloc(1, sizeof(*cur));
	bool have_first = false;

	if (!first || !cur)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		struct map_scan *m = have_first ? cur : first;
		int r;

		if (which && !which[i])
			continue;
		*m = (struct map_scan){.peers = peers, .n = n};
		memset(m->owner, 0xff, sizeof(m->owner));
		r = cluster_peer_each_line(&peers[i], scan_map, m, err);
		if (r < 0)
			return r;
		if (m->covered != CLUSTER_SLOTS ||
		    (have_first && memcmp(first->owner, m->owner, sizeof(m->owner)) != 0))
			return 0;
		have_first = true;
	}
	return 1;
}

enum cluster_reply_kind cluster_reply_kind(const char *error)
{
	/* another init (or an earlier run) got there first: "... is already busy", "... already knows ..." */
	if (strstr(error, "already"))
		return CLUSTER_REPLY_DONE_BEFORE;
	/* SET-CONFIG-EPOCH on a node that has met others, or that has an epoch: the cluster gave it one */
	if (strstr(error, "config epoch") || strstr(error, "does not know any other node"))
		return CLUSTER_REPLY_HARMLESS;
	return CLUSTER_REPLY_FAILED;
}
