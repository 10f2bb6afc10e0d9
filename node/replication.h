/* SPDX-License-Identifier: MIT */
/* Inside node/: what replication.c (start-up, health) and replication_stop.c (the handover) share. */
#ifndef KVINIT_NODE_REPLICATION_H
#define KVINIT_NODE_REPLICATION_H

#include "cluster.h"

/* Connects to a Sentinel with the first of pws it takes: the context, or NULL with the reason in why. */
struct node_conn *node_sentinel_connect(const struct cluster_addr *a, const struct secrets_set *pws, char *why,
					size_t size);
/*
 * Asks every Sentinel once which primary it names for REDIS_MASTER_SET: 1 with the one most of them name, 0 when
 * none names one (-ENOMEM); *ret_answered is how many answered at all (knowing the set or not).
 */
int node_sentinels_ask(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
		       const struct secrets_set *pws, struct cluster_addr *ret, size_t *ret_answered);
/* Whether a is this node: its REDIS_REPLICA_IP, or an address of this host. */
bool node_replication_is_me(const struct node_options *o, const struct cluster_addr *a);

#endif
