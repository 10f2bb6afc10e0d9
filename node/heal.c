/* SPDX-License-Identifier: MIT */
/*
 * Self-healing addresses. A node that comes back with a new IP fixes its own line of nodes.conf before the server
 * starts (node.c), but its peers' lines still hold their old addresses, and when every node of a cluster moved
 * (all containers recreated, every pod rescheduled) nobody can reach anybody. So once the server is up, this
 * resolves every name of REDIS_NODES and meets each one at its current address, until the server knows every
 * name's current address. Redis itself does the rest: a handshake that reaches a node it already knows updates that
 * node's address, and gossip spreads it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

struct heal_scan {
	unsigned known;				/* peers, handshakes excluded */
	char addrs[1024][INET6_ADDRSTRLEN + 8]; /* "ip:port" of every node it knows, itself included */
	unsigned n_addrs;
};

/*
 * What the server knows: its peers and the addresses it has for them. (Not whether the links are up: a link that
 * is still connecting, to an address that is gone, reads "connected" too.)
 */
static int scan_peers(const struct cluster_line *l, void *userdata)
{
	struct heal_scan *h = userdata;

	if (l->handshake)
		return 0;
	if (!l->myself)
		h->known++;
	/* "ip:port@cport[,hostname]" -> "ip:port" */
	if (h->n_addrs < sizeof(h->addrs) / sizeof(h->addrs[0]))
		(void)snprintf(h->addrs[h->n_addrs++], sizeof(h->addrs[0]), "%.*s", (int)strcspn(l->addr, "@"),
			       l->addr);
	return 0;
}

/*
 * Meets every listed node whose name resolves to an address the server does not know; returns how many names
 * are not known at their current address (met now, or not resolvable yet).
 */
static unsigned meet_moved(struct node_conn *self, const struct cluster_addr *nodes, size_t n,
			   const struct heal_scan *h, unsigned *ret_met)
{
	unsigned missing = 0;

	for (size_t i = 0; i < n; i++) {
		char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 8], port[8];
		const char *argv[] = {"CLUSTER", "MEET", ip, port};
		struct init_error err = {{0}};
		bool known = false;
		redisReply *rep;

		if (cluster_resolve(nodes[i].host, ip, sizeof(ip), &err) < 0) {
			missing++; /* not resolvable yet: its container may still be starting */
			continue;
		}
		(void)snprintf(addr, sizeof(addr), "%s:%u", ip, nodes[i].port);
		for (unsigned j = 0; j < h->n_addrs && !known; j++)
			known = strcmp(h->addrs[j], addr) == 0;
		if (known)
			continue;
		missing++;
		(void)snprintf(port, sizeof(port), "%u", nodes[i].port);
		rep = node_command_argv(self, 4, argv, NULL);
		if (rep && rep->type != REDIS_REPLY_ERROR) {
			log_debug("heal: met '%s' at '%s'", nodes[i].host, addr);
			(*ret_met)++;
		}
		freeReplyObject(rep);
	}
	return missing;
}

/* Until every name of REDIS_NODES is known at its current address, or init_timeout; logs what it gives up on. */
static int heal(const struct node_options *o, const struct secrets_value *pw, const struct cluster_addr *nodes,
		size_t n, struct heal_scan *h)
{
	uint64_t t0 = init_now_usec(), deadline = t0 + (uint64_t)o->init_timeout * USEC_PER_MSEC;
	struct cluster_peer self = {0};
	struct init_error err = {{0}};
	unsigned met = 0, missing;
	int r;

	node_probe_host(o->bind, self.addr.host, sizeof(self.addr.host));
	self.addr.port = node_client_port(o);
	r = cluster_connect_all(&self, 1, pw, deadline, &err);
	if (r < 0) {
		log_error("heal: %s", err.msg);
		return r;
	}
	for (unsigned round = 0;; round++) {
		redisReply *rep = node_command(self.ctx, "CLUSTER NODES");

		*h = (struct heal_scan){0};
		r = rep ? 0 : init_error_set(&err, -EIO, "lost the server: %s", self.ctx->errstr);
		if (rep && rep->type == REDIS_REPLY_STRING)
			r = cluster_each_line(rep->str, scan_peers, h, &err);
		freeReplyObject(rep);
		if (r < 0) {
			log_error("heal: %s", err.msg);
			break;
		}
		if (!h->known)
			break; /* a node in no cluster yet: forming it is cluster-init's work */
		missing = meet_moved(self.ctx, nodes, n, h, &met);
		if (!missing) {
			if (met)
				log_info("heal: every node of REDIS_NODES is known at its current address again (%.0f "
					 "ms)",
					 (double)(init_now_usec() - t0) / 1000.0);
			break;
		}
		if (init_now_usec() >= deadline) {
			log_warn(
				"heal: %u node(s) of REDIS_NODES still not known at their current address after %.0f s",
				missing, (double)(init_now_usec() - t0) / 1e6);
			r = -ETIMEDOUT;
			break;
		}
		init_sleep_ms(round < 20 ? 100 : 500);
	}
	cluster_peer_close(&self);
	return r;
}

int node_heal_run(const struct node_options *o, const struct secrets_value *pw)
{
	_cleanup_free_ struct cluster_addr *nodes = NULL;
	_cleanup_free_ struct heal_scan *h = calloc(1, sizeof(*h));
	struct init_error err = {{0}};
	size_t n = 0;
	int r;

	if (!h) {
		log_error("heal: out of memory");
		return -ENOMEM;
	}
	r = cluster_parse_nodes(o->nodes, "REDIS_NODES", node_client_port(o), &nodes, &n, &err);
	if (r < 0) {
		log_error("heal: %s", err.msg);
		return r;
	}
	return heal(o, pw, nodes, n, h);
}
