/* SPDX-License-Identifier: MIT */
/*
 * Self-healing addresses. A node that comes back with a new IP fixes its own line of nodes.conf before the server
 * starts (node.c), but its peers' lines still hold their old addresses, and when every node of a cluster moved
 * (all containers recreated, every pod rescheduled) nobody can reach anybody. So once the server is up, this
 * resolves every name of REDIS_NODES and meets each one at its current address, until the server knows every
 * name's current address. Redis itself does the rest: a handshake that reaches a node it already knows updates that
 * node's address, and gossip spreads it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

static bool resolve(const char *host, char *ip, size_t size)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	bool ok;

	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	if (res->ai_family == AF_INET6)
		ok = inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, ip,
			       (socklen_t)size);
	else
		ok = inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, ip, (socklen_t)size);
	freeaddrinfo(res);
	return ok;
}

/*
 * Meets every listed node whose name resolves to an address the server does not know; returns how many names
 * are not known at their current address (met now, or not resolvable yet).
 */
static unsigned meet_moved(redisContext *self, const struct node_addr *nodes, size_t n, const struct heal_scan *h,
			   unsigned *ret_met)
{
	unsigned missing = 0;

	for (size_t i = 0; i < n; i++) {
		char ip[INET6_ADDRSTRLEN], addr[INET6_ADDRSTRLEN + 8], port[8];
		const char *argv[] = {"CLUSTER", "MEET", ip, port};
		bool known = false;
		redisReply *rep;

		if (!resolve(nodes[i].host, ip, sizeof(ip))) {
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
		rep = redisCommandArgv(self, 4, argv, NULL);
		if (rep && rep->type != REDIS_REPLY_ERROR) {
			log_debug("heal: met %s at %s", nodes[i].host, addr);
			(*ret_met)++;
		}
		freeReplyObject(rep);
	}
	return missing;
}

int node_heal_run(const struct node_options *o, const struct secrets_value *pw)
{
	uint64_t t0 = init_now_usec(), deadline = t0 + (uint64_t)o->init_timeout * USEC_PER_MSEC;
	struct cluster_peer self = {0};
	struct node_addr *nodes = NULL;
	struct init_error err;
	struct heal_scan *h = NULL;
	unsigned met = 0, rounds = 0, missing;
	size_t n = 0;
	int code = 1;

	if (node_parse_nodes(o->nodes, "REDIS_NODES", (unsigned)o->port, &nodes, &n, &err) < 0) {
		log_error("heal: %s", err.msg);
		return 1;
	}
	h = calloc(1, sizeof(*h));
	if (!h)
		goto out;
	node_probe_host(o->bind, self.addr.host, sizeof(self.addr.host));
	self.addr.port = (unsigned)o->port;
	if (cluster_connect_all(&self, 1, pw, deadline, &err) < 0) {
		log_error("heal: %s", err.msg);
		goto out;
	}
	for (;; rounds++) {
		struct timespec pause = {.tv_nsec = (rounds < 20 ? 100 : 500) * 1000000L};
		redisReply *rep = redisCommand(self.ctx, "CLUSTER NODES");

		*h = (struct heal_scan){0};
		if (rep && rep->type == REDIS_REPLY_STRING)
			(void)cluster_each_line(rep->str, scan_peers, h);
		freeReplyObject(rep);
		if (!rep) {
			log_error("heal: lost the server: %s", self.ctx->errstr);
			goto out;
		}
		if (!h->known) {
			code = 0; /* a node in no cluster yet: forming it is cluster-init's work */
			goto out;
		}
		missing = meet_moved(self.ctx, nodes, n, h, &met);
		if (!missing) {
			if (met)
				log_info("heal: every node of REDIS_NODES is known at its current address again (%.0f "
					 "ms)",
					 (double)(init_now_usec() - t0) / 1000.0);
			code = 0;
			goto out;
		}
		if (init_now_usec() >= deadline) {
			log_warn(
				"heal: %u node(s) of REDIS_NODES still not known at their current address after %.0f s",
				missing, (double)(init_now_usec() - t0) / 1e6);
			goto out;
		}
		(void)nanosleep(&pause, NULL);
	}
out:
	free(h);
	free(nodes);
	cluster_peer_close(&self);
	return code;
}
