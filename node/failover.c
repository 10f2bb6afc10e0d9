/* SPDX-License-Identifier: MIT */
/*
 * The node role's stop hook: a master that owns slots hands them to its best replica before its server stops.
 * A plain SIGTERM leaves the slots unserved until the cluster notices the master is gone (cluster-node-timeout, 5 s
 * by default, and Redis 7.0 first waits for its replicas); CLUSTER FAILOVER on the replica makes it take over in
 * tens of milliseconds, without losing an acknowledged write: the master pauses its clients until the replica has
 * caught up.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define WAIT_REPLICA_MS	 20
#define WAIT_TAKEOVER_MS 10

static char *info_replication(redisContext *ctx)
{
	redisReply *rep = redisCommand(ctx, "INFO replication");
	char *text = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;

	freeReplyObject(rep);
	return text;
}

static int scan_own(const struct cluster_line *l, void *userdata)
{
	if (!l->myself)
		return 0;
	*(unsigned *)userdata = l->is_master ? l->nslots : 0;
	return 1;
}

/* The slots this node serves by its own word, 0 when it cannot say. */
static unsigned own_slots(redisContext *self)
{
	redisReply *rep = redisCommand(self, "CLUSTER NODES");
	struct init_error err = {{0}};
	unsigned n = 0;

	if (rep && rep->type == REDIS_REPLY_STRING && cluster_each_line(rep->str, scan_own, &n, &err) < 0)
		log_warn("failover: CLUSTER NODES %s, ignoring", err.msg);
	freeReplyObject(rep);
	return n;
}

/*
 * The online replica with the greatest replication offset, from the master's INFO replication. -EAGAIN while it
 * has replicas but none online (one in its first sync comes online within moments), -ENOENT when it has none.
 */
static int best_replica(const char *info, struct cluster_replica *ret)
{
	struct cluster_replica replicas[64];
	size_t n = cluster_info_replicas(info, replicas, sizeof(replicas) / sizeof(replicas[0]));
	const struct cluster_replica *best = NULL;

	for (size_t i = 0; i < n; i++)
		if (replicas[i].online && replicas[i].offset >= 0 && (!best || replicas[i].offset > best->offset))
			best = &replicas[i];
	if (!best)
		return n ? -EAGAIN : -ENOENT;
	*ret = *best;
	return 0;
}

void node_failover_on_stop(const struct node_options *o, const struct secrets_value *pw, uint64_t deadline_usec)
{
	uint64_t t0 = init_now_usec(), until;
	char host[64], role[16];
	struct init_error why = {{0}};
	struct cluster_replica replica = {0};
	redisContext *self = NULL, *to = NULL;
	redisReply *rep = NULL;
	_cleanup_free_ char *info = NULL;
	unsigned own;
	int r;

	if (!o->cluster_enabled || !o->failover_timeout)
		return;
	until = t0 + (uint64_t)o->failover_timeout * USEC_PER_MSEC;
	/* leave the server at least a second of the grace period to stop after the handover */
	if (deadline_usec > USEC_PER_SEC && until > deadline_usec - USEC_PER_SEC)
		until = deadline_usec - USEC_PER_SEC;
	if (until <= t0)
		return;

	node_probe_host(o->bind, host, sizeof(host));
	if (cluster_connect(host, (unsigned)o->port, pw, 1000, &self, &why) < 0)
		goto skip;
	own = own_slots(self);
	info = info_replication(self);
	if (!own || !info) {
		log_debug("failover: this node serves no slots, nothing to hand over");
		goto out;
	}
	while ((r = best_replica(info, &replica)) < 0) {
		if (r == -ENOENT || init_now_usec() >= until) {
			log_warn(
				"failover: this master has no replica online: its slots are unserved until it is back");
			goto out;
		}
		init_sleep_ms(WAIT_REPLICA_MS);
		free(info);
		info = info_replication(self);
		if (!info)
			goto out;
	}
	if (cluster_connect(replica.ip, replica.port, pw, 1000, &to, &why) < 0)
		goto skip;
	rep = redisCommand(to, "CLUSTER FAILOVER");
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		(void)init_error_set(&why, -EREMOTEIO, "CLUSTER FAILOVER on %s:%u: %s", replica.ip, replica.port,
				     rep ? rep->str : to->errstr);
		goto skip;
	}
	log_info("failover: asked replica '%s:%u' to take over %u slots", replica.ip, replica.port, own);

	/* Done when this node calls itself a replica: the replica has the slots and the epoch that says so. */
	for (;;) {
		free(info);
		info = info_replication(self);
		if (info && cluster_info_field(info, "role", role, sizeof(role)) && strcmp(role, "slave") == 0) {
			log_info("failover: '%s:%u' took over in %.0f ms", replica.ip, replica.port,
				 (double)(init_now_usec() - t0) / 1000.0);
			goto out;
		}
		if (init_now_usec() >= until) {
			log_warn("failover: '%s:%u' did not take over within %.0f ms, stopping anyway", replica.ip,
				 replica.port, (double)(until - t0) / 1000.0);
			goto out;
		}
		init_sleep_ms(WAIT_TAKEOVER_MS);
	}
skip:
	log_warn("failover: %s, stopping without a handover", why.msg);
out:
	freeReplyObject(rep);
	if (to)
		redisFree(to);
	if (self)
		redisFree(self);
}
