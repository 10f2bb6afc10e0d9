/* SPDX-License-Identifier: MIT */
/*
 * Whether a node is what its peers see (`kvinit health --ready`, issue 12): what it says of itself, which peers to
 * ask about it, and whether a peer's CLUSTER NODES agrees. A node's own cluster_state:ok is not enough: a node that
 * came back at a new address reaches its peers while they still try the old one and flag it fail for good.
 * Pure: texts in, answers out; health.c does the asking.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

bool cluster_addr_split(const char *addr, char *ret_host, size_t size, unsigned *ret_port)
{
	size_t len = strcspn(addr, "@,");
	const char *colon = memrchr(addr, ':', len);
	unsigned long port = 0;

	if (!colon || (size_t)(colon - addr) >= size)
		return false;
	for (const char *p = colon + 1; p < addr + len; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			return false;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (colon + 1 == addr + len || port > 65535)
		return false;
	memcpy(ret_host, addr, (size_t)(colon - addr));
	ret_host[colon - addr] = '\0';
	*ret_port = (unsigned)port;
	return true;
}

struct self_scan {
	struct cluster_self_view *view;
	bool found;
};

static int scan_self(const struct cluster_line *l, void *userdata)
{
	struct self_scan *s = userdata;

	if (l->myself) {
		s->view->self = *l;
		s->found = true;
	}
	return 0;
}

/* rank 0: this replica's master; 1: a master with slots; 2: any other peer. */
struct ask_scan {
	struct cluster_self_view *view;
	int rank;
};

static int scan_ask(const struct cluster_line *l, void *userdata)
{
	struct ask_scan *s = userdata;
	struct cluster_self_view *v = s->view;
	const struct cluster_line *self = &v->self;
	struct cluster_addr *a;
	int rank;

	if (l->myself || l->handshake || l->failed || cluster_has_flag(l->flags, "fail?") ||
	    strcmp(l->link, "connected") != 0 || v->n_ask == CLUSTER_VIEW_ASK_MAX)
		return 0;
	if (!self->is_master && strcmp(self->master, l->id) == 0)
		rank = 0;
	else if (l->is_master && l->nslots)
		rank = 1;
	else
		rank = 2;
	if (rank != s->rank)
		return 0;
	a = &v->ask[v->n_ask];
	if (!cluster_addr_split(l->addr, a->host, sizeof(a->host), &a->port) || !*a->host)
		return 0;
	v->n_ask++;
	return 0;
}

int cluster_view_self(const char *nodes_text, struct cluster_self_view *ret, struct init_error *err)
{
	struct cluster_self_view *v = calloc(1, sizeof(*v));
	struct self_scan s = {.view = v};
	int r;

	if (!v)
		return init_error_set(err, -ENOMEM, "out of memory");
	r = cluster_each_line(nodes_text, scan_self, &s, err);
	if (r == 0 && !s.found)
		r = init_error_set(err, -ENOENT, "no line says 'myself'");
	for (int rank = 0; r == 0 && rank < 3; rank++) {
		struct ask_scan a = {.view = v, .rank = rank};

		r = cluster_each_line(nodes_text, scan_ask, &a, err);
	}
	if (r == 0)
		*ret = *v;
	free(v);
	return r;
}

struct peer_scan {
	const struct cluster_line *self;
	char *why;
	size_t size;
	bool found, agrees;
};

static int scan_peer(const struct cluster_line *l, void *userdata)
{
	struct peer_scan *s = userdata;
	size_t mine = strcspn(s->self->addr, ","), theirs = strcspn(l->addr, ",");

	if (strcmp(l->id, s->self->id) != 0)
		return 0;
	s->found = true;
	if (cluster_has_flag(l->flags, "fail") || cluster_has_flag(l->flags, "fail?")) {
		(void)snprintf(s->why, s->size, "flags this node '%s'",
			       cluster_has_flag(l->flags, "fail") ? "fail" : "fail?");
		return 1;
	}
	/* "ip:port@cport": the hostname after ',' travels by gossip on its own */
	if (mine != theirs || strncmp(s->self->addr, l->addr, mine) != 0) {
		(void)snprintf(s->why, s->size, "has this node at '%.*s', it announces '%.*s'", (int)theirs, l->addr,
			       (int)mine, s->self->addr);
		return 1;
	}
	s->agrees = true;
	return 1;
}

int cluster_view_check_peer(const char *peer_nodes_text, const struct cluster_line *self, char *why, size_t size,
			    struct init_error *err)
{
	struct peer_scan s = {.self = self, .why = why, .size = size};
	int r = cluster_each_line(peer_nodes_text, scan_peer, &s, err);

	if (r < 0)
		return r;
	if (!s.found)
		(void)snprintf(why, size, "does not know this node");
	return s.agrees;
}
