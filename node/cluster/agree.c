/* SPDX-License-Identifier: MIT */
/*
 * Whether every node sees the same cluster: the last thing cluster-init waits for before "cluster ok". A node's
 * cluster_state:ok says only that it sees every slot served; a replica that was just attached is still a master
 * with no slots to the nodes that have not heard from it yet, and a client or a failover asks any of them.
 * Each node's own line is what it is (a role change travels from the node itself, in the header of its cluster bus
 * messages, never second hand in gossip), so every other node's line about it must say the same; a node outside
 * REDIS_NODES must look the same to every node as to the first one. Pure: the texts cluster_inspect read.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

/* What makes a line no settled view: a link still being set up, or a failure (suspected or agreed). */
static const char *const unsettled_flags[] = {"handshake", "noaddr", "fail?", "fail"};

struct agree_scan {
	const struct cluster_peer *peers;
	size_t n, viewer;
	const struct cluster_line *self; /* n: each peer's own line (id "" where it has none) */
	struct cluster_line *extra;	 /* nodes outside the peers, as the first viewer sees them */
	size_t n_extra, cap_extra, extra_seen;
	bool *listed; /* n: the peers this viewer lists */
	bool *stale;  /* n * n: [viewer * n + j] when the viewer's line about peer j is not j's own word */
	char *why;
	size_t size;
	bool differ;
};

/* Records a disagreement; the first one is the one in words. */
__attribute__((format(printf, 3, 4))) static void disagree(struct agree_scan *s, int peer, const char *fmt, ...)
{
	va_list ap;

	if (peer >= 0)
		s->stale[s->viewer * s->n + (size_t)peer] = true;
	if (s->differ)
		return;
	s->differ = true;
	va_start(ap, fmt);
	/* clang-tidy 14 loses track of va_start (as in init/log.c) */
	(void)vsnprintf(s->why, s->size, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
}

/* A node for messages: its REDIS_NODES name when it is a peer, else its address as the line gives it. */
static void node_name(const struct agree_scan *s, const char *id, const char *addr, char *buf, size_t size)
{
	int j = cluster_find_peer(s->peers, s->n, id);

	if (j >= 0)
		cluster_peer_name(&s->peers[j], buf, size);
	else if (addr && *addr)
		(void)snprintf(buf, size, "%.*s", (int)strcspn(addr, "@,"), addr);
	else
		(void)snprintf(buf, size, "%.40s", id);
}

/* "a master with slots '0-5460'" or "a replica of '10.0.0.1:7000'" */
static void role_words(const struct agree_scan *s, const struct cluster_line *l, char *buf, size_t size)
{
	char name[CLUSTER_HOST_MAX + 16], ranges[48];

	if (l->is_master) {
		cluster_format_ranges(&l->slots, ranges, sizeof(ranges));
		(void)snprintf(buf, size, "a master with slots '%s'", ranges);
		return;
	}
	node_name(s, l->master, NULL, name, sizeof(name));
	(void)snprintf(buf, size, "a replica of '%s'", name);
}

static bool same_role(const struct cluster_line *a, const struct cluster_line *b)
{
	if (a->is_master != b->is_master)
		return false;
	if (a->is_master)
		return memcmp(&a->slots, &b->slots, sizeof(a->slots)) == 0;
	return strcmp(a->master, b->master) == 0;
}

static const struct cluster_line *find_extra(const struct agree_scan *s, const char *id)
{
	for (size_t k = 0; k < s->n_extra; k++)
		if (strcmp(s->extra[k].id, id) == 0)
			return &s->extra[k];
	return NULL;
}

static int add_extra(struct agree_scan *s, const struct cluster_line *l)
{
	if (s->n_extra == s->cap_extra) {
		size_t cap = s->cap_extra ? s->cap_extra * 2 : 8;
		struct cluster_line *grown = realloc(s->extra, cap * sizeof(*grown));

		if (!grown)
			return -ENOMEM;
		s->extra = grown;
		s->cap_extra = cap;
	}
	s->extra[s->n_extra++] = *l;
	return 0;
}

static int scan_view(const struct cluster_line *l, void *userdata)
{
	struct agree_scan *s = userdata;
	char viewer[CLUSTER_HOST_MAX + 16], subject[CLUSTER_HOST_MAX + 16], viewer_0[CLUSTER_HOST_MAX + 16];
	char seen[CLUSTER_HOST_MAX + 80], truth[CLUSTER_HOST_MAX + 80];
	const struct cluster_line *ref;
	int j = cluster_find_peer(s->peers, s->n, l->id);

	cluster_peer_name(&s->peers[s->viewer], viewer, sizeof(viewer));
	node_name(s, l->id, l->addr, subject, sizeof(subject));
	for (size_t f = 0; f < sizeof(unsettled_flags) / sizeof(unsettled_flags[0]); f++)
		if (cluster_has_flag(l->flags, unsettled_flags[f]))
			disagree(s, j, "'%s' flags '%s' '%s'", viewer, subject, unsettled_flags[f]);
	if (j >= 0) {
		s->listed[j] = true;
		ref = &s->self[j];
		if (!ref->id[0])
			return 0; /* said below, once for the peer */
	} else {
		s->extra_seen++;
		ref = find_extra(s, l->id);
		if (!ref && s->viewer == 0)
			return add_extra(s, l);
		if (!ref) {
			cluster_peer_name(&s->peers[0], viewer_0, sizeof(viewer_0));
			disagree(s, -1, "'%s' knows '%s', which '%s' does not", viewer, subject, viewer_0);
			return 0;
		}
	}
	if (same_role(l, ref))
		return 0;
	role_words(s, l, seen, sizeof(seen));
	role_words(s, ref, truth, sizeof(truth));
	if (j >= 0) {
		disagree(s, j, "'%s' sees '%s' as %s; it says it is %s", viewer, subject, seen, truth);
		return 0;
	}
	cluster_peer_name(&s->peers[0], viewer_0, sizeof(viewer_0));
	disagree(s, -1, "'%s' sees '%s' as %s; '%s' sees it as %s", viewer, subject, seen, viewer_0, truth);
	return 0;
}

static int scan_own(const struct cluster_line *l, void *userdata)
{
	struct cluster_line *self = userdata;

	if (!l->myself)
		return 0;
	*self = *l;
	return 1;
}

int cluster_views_agree(const struct cluster_peer *peers, size_t n, bool *ret_stale, char *why, size_t size,
			struct init_error *err)
{
	_cleanup_free_ struct cluster_line *self = calloc(n ? n : 1, sizeof(*self));
	_cleanup_free_ bool *listed = calloc(n ? n : 1, sizeof(*listed));
	_cleanup_free_ bool *stale = calloc(n ? n * n : 1, sizeof(*stale));
	struct agree_scan s = {.peers = peers, .n = n, .self = self, .stale = stale, .why = why, .size = size};
	char name[CLUSTER_HOST_MAX + 16], other[CLUSTER_HOST_MAX + 16];
	int r = 0;

	if (!self || !listed || !stale)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t j = 0; j < n && r >= 0; j++)
		r = cluster_peer_each_line(&peers[j], scan_own, &self[j], err);
	for (size_t i = 0; i < n && r >= 0; i++) {
		s.viewer = i;
		s.listed = listed;
		s.extra_seen = 0;
		memset(listed, 0, n * sizeof(*listed));
		cluster_peer_name(&peers[i], name, sizeof(name));
		if (!self[i].id[0]) {
			disagree(&s, -1, "'%s' does not list itself", name);
			continue;
		}
		r = cluster_peer_each_line(&peers[i], scan_view, &s, err);
		for (size_t j = 0; j < n && r >= 0; j++) {
			if (listed[j])
				continue;
			cluster_peer_name(&peers[j], other, sizeof(other));
			disagree(&s, (int)j, "'%s' does not know '%s' yet", name, other);
		}
		if (r < 0 || s.extra_seen == s.n_extra)
			continue;
		cluster_peer_name(&peers[0], other, sizeof(other));
		disagree(&s, -1, "'%s' knows %zu node%s outside REDIS_NODES, '%s' knows %zu", name, s.extra_seen,
			 s.extra_seen == 1 ? "" : "s", other, s.n_extra);
	}
	free(s.extra);
	if (r == -ENOMEM)
		return init_error_set(err, -ENOMEM, "out of memory");
	if (r < 0)
		return r;
	if (ret_stale)
		memcpy(ret_stale, stale, n * n * sizeof(*stale));
	if (!s.differ && size)
		why[0] = '\0';
	return !s.differ;
}

/* Whether a knows b by b's id (a handshake line has a made-up id, so a node still being met is not known). */
static bool knows(const struct cluster_peer *a, const struct cluster_peer *b)
{
	return b->id[0] && a->nodes_text && strstr(a->nodes_text, b->id);
}

bool cluster_meet_wanted(const struct cluster_peer *peers, size_t i, size_t j)
{
	if (i == j || knows(&peers[i], &peers[j]))
		return false;
	return i < j || knows(&peers[j], &peers[i]);
}

long long cluster_formation_timeout_next(long long current, long long configured, uint64_t waited_ms)
{
	if (current <= 0 || current >= configured || waited_ms < (uint64_t)current * CLUSTER_FORMATION_PATIENCE)
		return current;
	return current < configured / 2 ? current * 2 : configured;
}
