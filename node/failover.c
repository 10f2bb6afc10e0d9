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
 * A replica writes its first AOF right after a full sync, and a server asked to stop meanwhile refuses ("Writing
 * initial AOF, can't exit") and runs on until the grace period ends in SIGKILL. Now that a replica syncs at once
 * (render.c), a stop soon after a start meets that window (seen on Redis 7.0: SIGTERM 110 ms after the sync, killed
 * 8 s later): wait, until `until`, for a rewrite in progress to end. A rewrite is over in milliseconds on the
 * empty data set of a new replica; one that outlasts `until` ends as before.
 */
static void wait_aof_rewrite(redisContext *self, uint64_t until)
{
	char value[8];

	for (;;) {
		redisReply *rep = redisCommand(self, "INFO persistence");
		bool busy = rep && rep->type == REDIS_REPLY_STRING &&
			    cluster_info_field(rep->str, "aof_rewrite_in_progress", value, sizeof(value)) &&
			    strcmp(value, "1") == 0;

		freeReplyObject(rep);
		if (!busy || init_now_usec() >= until)
			return;
		init_sleep_ms(WAIT_TAKEOVER_MS);
	}
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
		wait_aof_rewrite(self, until);
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
