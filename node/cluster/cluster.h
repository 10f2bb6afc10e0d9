/* SPDX-License-Identifier: MIT */
/* Inside node/: talking to many nodes at once (cluster.c), for cluster-init and failover. */
#ifndef KVINIT_NODE_CLUSTER_H
#define KVINIT_NODE_CLUSTER_H

#include <hiredis.h>
#include <netinet/in.h>
#include <stdint.h>

#include "node.h"
#include "secrets.h"

struct cluster_peer {
	struct node_addr addr;	   /* as listed in REDIS_NODES */
	char ip[INET6_ADDRSTRLEN]; /* what the name resolved to */
	redisContext *ctx;	   /* NULL until it answered PING */
	char why[192];		   /* why it did not, for progress lines */
	/* what inspection found */
	char id[41];
	char meet_ip[INET6_ADDRSTRLEN]; /* the address and ports other nodes reach it at (announced, else real) */
	unsigned meet_port, meet_bus;
	unsigned known_nodes;
	unsigned slots_assigned; /* in the whole cluster as this node sees it */
	unsigned own_slots;	 /* served by this node */
	bool is_master;
	char master_id[41]; /* a replica's master, from its own line */
	long long keys;
	unsigned long long epoch;
	long long node_timeout;
	char *nodes_text; /* its CLUSTER NODES */
};

struct cluster_line {
	char id[41], addr[128], flags[128], master[41], link[16];
	unsigned long long epoch;
	uint64_t slots[NODE_SLOTS / 64];
	unsigned nslots;
	bool myself, is_master, handshake;
};

void cluster_peer_close(struct cluster_peer *p);
void cluster_peers_free(struct cluster_peer *peers, size_t n);
redisContext *cluster_connect(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
			      char *why, size_t size);
void cluster_peer_name(const struct cluster_peer *p, char *buf, size_t size);
int cluster_connect_all(struct cluster_peer *peers, size_t n, const struct secrets_value *pw, uint64_t deadline_usec,
			struct init_error *err);
/* Sends argv to every peer (or those with which[i]) at once, then reads every reply; returns how many failed. */
int cluster_send_all(struct cluster_peer *peers, size_t n, const bool *which, redisReply **replies, int argc,
		     const char **argv);
void cluster_free_replies(redisReply **replies, size_t n);
bool cluster_info_field(const char *text, const char *field, char *buf, size_t size);
int cluster_parse_line(const char *line, struct cluster_line *ret);
bool cluster_has_flag(const char *flags, const char *flag);
int cluster_each_line(const char *text, int (*fn)(const struct cluster_line *l, void *userdata), void *userdata);
void cluster_format_ranges(const uint64_t *slots, char *buf, size_t size);

#endif
