/* SPDX-License-Identifier: MIT */
/*
 * A node at a new address while its server runs (issue 12). runtime.c starts this beside the server when the
 * address watch (netwatch.c) saw the address kvinit announces change.
 *
 * The server takes the new address live (CONFIG SET cluster-announce-ip); its peers do not learn it from its
 * pings. A node's address is only updated where someone MEETs it there (a handshake that reaches a node already
 * known updates its address), or by gossip from a node that reaches it, and a peer that flagged it fail keeps
 * trying the old address for good. So every peer is asked to MEET it at the new address, again each round, until
 * each one sees it there without a fail flag. Then heal.c meets the peers by their names, in case they moved too.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define ROUND_MS	   100
#define PEER_TIMEOUT_MS	   500
#define READDRESS_MAX_PEER 1000

struct peers_scan {
	struct cluster_addr *addrs;
	size_t n;
};

static int scan_peers(const struct cluster_line *l, void *userdata)
{
	struct peers_scan *s = userdata;
	struct cluster_addr *a = &s->addrs[s->n];

	if (l->myself || l->handshake || s->n == READDRESS_MAX_PEER)
		return 0;
	if (cluster_addr_split(l->addr, a->host, sizeof(a->host), &a->port) && *a->host)
		s->n++;
	return 0;
}

/* This node's line (its address as it announces it now) and its peers, from its own CLUSTER NODES. */
static int read_self(struct node_conn *self, struct cluster_self_view *ret_view, struct peers_scan *ret_peers,
		     struct init_error *err)
{
	redisReply *rep = node_command(self, "CLUSTER NODES");
	int r;

	if (!rep || rep->type != REDIS_REPLY_STRING) {
		r = init_error_set(err, -EIO, "CLUSTER NODES: %s", rep && rep->str ? rep->str : self->errstr);
		freeReplyObject(rep);
		return r;
	}
	r = cluster_view_self(rep->str, ret_view, err);
	cluster_tls_learn_nodes(rep->str);
	ret_peers->n = 0;
	if (r == 0)
		r = cluster_each_line(rep->str, scan_peers, ret_peers, err);
	freeReplyObject(rep);
	return r;
}

/* 1 when the peer sees this node as it is now; else asks it to MEET the node at its address, and returns 0. */
static int tell_peer(const struct cluster_addr *peer, const struct secrets_value *pw, const struct cluster_line *me,
		     const char *ip, const char *port, const char *bus)
{
	const char *argv[] = {"CLUSTER", "MEET", ip, port, bus};
	struct init_error err = {{0}};
	struct node_conn *ctx;
	redisReply *rep;
	char why[512];
	int r = 0;

	if (cluster_connect(peer->host, peer->port, pw, PEER_TIMEOUT_MS, &ctx, &err) < 0) {
		log_debug("new address: %s", err.msg);
		return 0;
	}
	rep = node_command(ctx, "CLUSTER NODES");
	if (rep && rep->type == REDIS_REPLY_STRING)
		r = cluster_view_check_peer(rep->str, me, why, sizeof(why), &err);
	freeReplyObject(rep);
	if (r != 1) {
		rep = node_command_argv(ctx, 5, argv, NULL);
		log_debug("new address: peer '%s:%u' %s: CLUSTER MEET %s %s %s: %s", peer->host, peer->port,
			  r == 0 ? why : "did not say", ip, port, bus,
			  rep && rep->str ? rep->str
			  : rep		  ? "OK"
					  : ctx->errstr);
		freeReplyObject(rep);
		r = 0;
	}
	node_conn_free(ctx);
	return r;
}

static int readdress(struct node_conn *self, const struct node_options *o, const struct secrets_value *pw,
		     const char *ip, unsigned bus_port, uint64_t deadline)
{
	_cleanup_free_ struct cluster_addr *addrs = calloc(READDRESS_MAX_PEER, sizeof(*addrs));
	_cleanup_free_ struct cluster_self_view *v = calloc(1, sizeof(*v));
	_cleanup_free_ bool *done = calloc(READDRESS_MAX_PEER, sizeof(*done));
	const char *set[] = {"CONFIG", "SET", "cluster-announce-ip", ip};
	struct peers_scan peers = {.addrs = addrs};
	struct init_error err = {{0}};
	uint64_t t0 = init_now_usec();
	char port[8], bus[8];
	redisReply *rep;
	unsigned left;
	int r;

	if (!addrs || !v || !done) {
		log_error("new address: out of memory");
		return -ENOMEM;
	}
	rep = node_command_argv(self, 4, set, NULL);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		log_error("new address: CONFIG SET cluster-announce-ip '%s': %s", ip, rep ? rep->str : self->errstr);
		freeReplyObject(rep);
		return -EREMOTEIO;
	}
	freeReplyObject(rep);
	(void)snprintf(port, sizeof(port), "%u", o->announce_port ? (unsigned)o->announce_port : node_client_port(o));
	(void)snprintf(bus, sizeof(bus), "%u", o->announce_bus_port ? (unsigned)o->announce_bus_port : bus_port);
	for (;;) {
		r = read_self(self, v, &peers, &err);
		if (r < 0) {
			log_error("new address: %s", err.msg);
			return r;
		}
		/* what the peers should see, whether or not the server's own line shows it yet */
		(void)snprintf(v->self.addr, sizeof(v->self.addr), "%s:%s@%s", ip, port, bus);
		left = 0;
		for (size_t i = 0; i < peers.n; i++)
			if (!done[i])
				left += !(done[i] = tell_peer(&addrs[i], pw, &v->self, ip, port, bus) == 1);
		if (!left) {
			log_info("new address: every peer (%zu) sees this node at '%s' again (%.0f ms)", peers.n, ip,
				 (double)(init_now_usec() - t0) / 1000.0);
			return 0;
		}
		if (init_now_usec() >= deadline) {
			log_warn("new address: %u of %zu peers still do not see this node at '%s' after %.0f s", left,
				 peers.n, ip, (double)(init_now_usec() - t0) / 1e6);
			return -ETIMEDOUT;
		}
		init_sleep_ms(ROUND_MS);
	}
}

int node_readdress_run(const struct node_options *o, const struct secrets_value *pw, const char *ip, unsigned bus_port)
{
	uint64_t deadline = init_now_usec() + (uint64_t)o->init_timeout * USEC_PER_MSEC;
	struct cluster_peer self = {0};
	struct init_error err = {{0}};
	int r;

	node_probe_host(o->bind, self.addr.host, sizeof(self.addr.host));
	self.addr.port = node_client_port(o);
	r = cluster_connect_all(&self, 1, pw, deadline, &err);
	if (r < 0) {
		log_error("new address: %s", err.msg);
		return r;
	}
	r = readdress(self.ctx, o, pw, ip, bus_port, deadline);
	cluster_peer_close(&self);
	if (r == 0 && *o->nodes)
		r = node_heal_run(o, pw);
	return r;
}
