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
#include <time.h>

#include "cluster.h"

static char *info_replication(redisContext *ctx)
{
	redisReply *rep = redisCommand(ctx, "INFO replication");
	char *text = rep && rep->type == REDIS_REPLY_STRING ? strdup(rep->str) : NULL;

	freeReplyObject(rep);
	return text;
}

struct own_slots {
	unsigned n;
};

static int scan_own(const struct cluster_line *l, void *userdata)
{
	if (!l->myself)
		return 0;
	((struct own_slots *)userdata)->n = l->is_master ? l->nslots : 0;
	return 1;
}

/*
 * The online replica with the greatest replication offset, from the master's INFO replication:
 * "slave0:ip=10.0.0.5,port=6379,state=online,offset=1234,lag=0".
 */
static bool best_replica(const char *info, char *ip, size_t ip_size, unsigned *ret_port)
{
	long long best = -1;

	for (const char *p = strstr(info, "\nslave"); p; p = strstr(p + 1, "\nslave")) {
		char rip[64], state[16];
		unsigned port;
		long long offset;

		if (sscanf(p, "\nslave%*u:ip=%63[^,],port=%u,state=%15[^,],offset=%lld", rip, &port, state, &offset) !=
		    4)
			continue;
		if (strcmp(state, "online") != 0 || offset <= best)
			continue;
		best = offset;
		(void)snprintf(ip, ip_size, "%s", rip);
		*ret_port = port;
	}
	return best >= 0;
}

void node_failover_on_stop(const struct node_options *o, const struct secrets_value *pw, uint64_t deadline_usec)
{
	uint64_t t0 = init_now_usec(), until;
	char host[64], why[256], replica_ip[64], role[16];
	struct own_slots own = {0};
	redisContext *self = NULL, *replica = NULL;
	redisReply *rep = NULL;
	_cleanup_free_ char *info = NULL;
	unsigned replica_port = 0;

	if (!o->cluster_enabled || !o->failover_timeout)
		return;
	until = t0 + (uint64_t)o->failover_timeout * USEC_PER_MSEC;
	/* leave the server at least a second of the grace period to stop after the handover */
	if (deadline_usec > USEC_PER_SEC && until > deadline_usec - USEC_PER_SEC)
		until = deadline_usec - USEC_PER_SEC;
	if (until <= t0)
		return;

	node_probe_host(o->bind, host, sizeof(host));
	self = cluster_connect(host, (unsigned)o->port, pw, 1000, why, sizeof(why));
	if (!self)
		goto skip;
	rep = redisCommand(self, "CLUSTER NODES");
	if (rep && rep->type == REDIS_REPLY_STRING)
		(void)cluster_each_line(rep->str, scan_own, &own);
	freeReplyObject(rep);
	rep = NULL;
	info = info_replication(self);
	if (!own.n || !info) {
		log_debug("failover: this node serves no slots, nothing to hand over");
		goto out;
	}
	/* A replica still in its first sync comes online within moments: wait for it, inside the timeout. */
	while (!best_replica(info, replica_ip, sizeof(replica_ip), &replica_port)) {
		struct timespec ms = {.tv_nsec = 20 * 1000000L};

		if (!strstr(info, "\nslave0:") || init_now_usec() >= until) {
			log_warn(
				"failover: this master has no replica online: its slots are unserved until it is back");
			goto out;
		}
		(void)nanosleep(&ms, NULL);
		free(info);
		info = info_replication(self);
		if (!info)
			goto out;
	}
	replica = cluster_connect(replica_ip, replica_port, pw, 1000, why, sizeof(why));
	if (!replica)
		goto skip;
	rep = redisCommand(replica, "CLUSTER FAILOVER");
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		(void)snprintf(why, sizeof(why), "CLUSTER FAILOVER on %s:%u: %s", replica_ip, replica_port,
			       rep ? rep->str : replica->errstr);
		goto skip;
	}
	log_info("failover: asked replica %s:%u to take over %u slots", replica_ip, replica_port, own.n);

	/* Done when this node calls itself a replica: the replica has the slots and the epoch that says so. */
	for (;;) {
		struct timespec ms = {.tv_nsec = 10 * 1000000L};

		free(info);
		info = info_replication(self);
		if (info && cluster_info_field(info, "role", role, sizeof(role)) && strcmp(role, "slave") == 0) {
			log_info("failover: %s:%u took over in %.0f ms", replica_ip, replica_port,
				 (double)(init_now_usec() - t0) / 1000.0);
			goto out;
		}
		if (init_now_usec() >= until) {
			log_warn("failover: %s:%u did not take over within %.0f ms, stopping anyway", replica_ip,
				 replica_port, (double)(until - t0) / 1000.0);
			goto out;
		}
		(void)nanosleep(&ms, NULL);
	}
skip:
	log_warn("failover: %s, stopping without a handover", why);
out:
	freeReplyObject(rep);
	if (replica)
		redisFree(replica);
	if (self)
		redisFree(self);
}
