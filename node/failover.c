/* SPDX-License-Identifier: MIT */
/*
 * The node role's stop hook: a master that owns slots hands them to its best replica before its server stops.
 * A plain SIGTERM leaves the slots unserved until the cluster notices the master is gone (cluster-node-timeout, 5 s
 * by default, and Redis 7.0 first waits for its replicas); CLUSTER FAILOVER on the replica makes it take over in
 * tens of milliseconds, without losing an acknowledged write: the master pauses its clients until the replica has
 * caught up.
 *
 * Valkey 9.0 can hand over by itself on SIGTERM (`shutdown-on-sigterm failover`, SHUTDOWN FAILOVER); kvinit keeps
 * its own there too, because it is the faster. Measured on one cluster of Valkey 9.1.2 on loopback (10 runs of
 * tests/integration/test_servers.py::test_stop_gap_of_the_servers_own_failover), the longest write gap of a
 * master's stop was 41-87 ms with this handover and 211-1101 ms with the server's: that server first waits, its
 * writes paused, until its replica reports it has everything (403 of 495 ms in one run), saves, names the replica
 * and exits, and its clients meet a closed connection until the replica has won its election; here the paused
 * clients get a MOVED as soon as the replica has the slots. Whoever wants the server's own sets
 * KVINIT_FAILOVER_TIMEOUT=0 and `--shutdown-on-sigterm failover`. The test fails the day the server's is faster.
 *
 * The same handover serves a master that crashes again and again (issue 12): kvinit restarts a crashed server at
 * once, faster than the cluster notices, and then ever more slowly, so a crash-looping master kept coming back as
 * the owner of its slots and they took no writes while it was down. Restarted after a second crash within
 * KVINIT_BACKOFF_RESET, it hands them over as soon as it answers, and goes on, crashing or not, as a replica.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define WAIT_REPLICA_MS	 20
#define WAIT_TAKEOVER_MS 10

static char *info_replication(struct node_conn *ctx)
{
	redisReply *rep = node_command(ctx, "INFO replication");
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

/* This node's id, and its replicas as the cluster knows them (not flagged failed). */
struct replicas_scan {
	char id[CLUSTER_ID_LEN + 1];
	struct cluster_addr addr[16];
	unsigned n;
};

static int scan_replicas(const struct cluster_line *l, void *userdata)
{
	struct replicas_scan *s = userdata;
	struct cluster_addr *a = &s->addr[s->n];

	if (l->myself)
		memcpy(s->id, l->id, sizeof(s->id));
	else if (!l->is_master && !l->failed && *s->id && strcmp(l->master, s->id) == 0 &&
		 s->n < sizeof(s->addr) / sizeof(s->addr[0]) &&
		 cluster_addr_split(l->addr, a->host, sizeof(a->host), &a->port) && *a->host)
		s->n++;
	return 0;
}

static void list_replicas(struct node_conn *self, struct replicas_scan *ret)
{
	redisReply *rep = node_command(self, "CLUSTER NODES");
	struct init_error err = {{0}};

	*ret = (struct replicas_scan){.n = 0};
	if (rep && rep->type == REDIS_REPLY_STRING) {
		cluster_tls_learn_nodes(rep->str);
		/* two passes: a replica's line may come before the myself line */
		(void)cluster_each_line(rep->str, scan_replicas, ret, &err);
		ret->n = 0;
		(void)cluster_each_line(rep->str, scan_replicas, ret, &err);
	}
	freeReplyObject(rep);
}

/*
 * A replica retries its lost master once a second; told to replicate it (again), it connects at once and asks for
 * its copy, which the master sends at once (render.c: repl-diskless-sync-delay 0). Replicas the restarted master
 * lists online are left alone.
 */
static void nudge_replicas(struct node_conn *self, const struct secrets_value *pw, const struct replicas_scan *listed)
{
	struct cluster_replica connected[16];
	_cleanup_free_ char *info = info_replication(self);
	size_t n = info ? cluster_info_replicas(info, connected, sizeof(connected) / sizeof(connected[0])) : 0;

	for (unsigned i = 0; i < listed->n; i++) {
		const struct cluster_addr *a = &listed->addr[i];
		struct init_error err = {{0}};
		bool known = false;
		struct node_conn *ctx;

		for (size_t j = 0; j < n && !known; j++)
			known = connected[j].online && connected[j].port == a->port &&
				strcmp(connected[j].ip, a->host) == 0;
		if (known || cluster_connect(a->host, a->port, pw, 500, &ctx, &err) < 0)
			continue;
		freeReplyObject(node_command(ctx, "CLUSTER REPLICATE %s", listed->id));
		node_conn_free(ctx);
	}
}

/* The slots this node serves by its own word, 0 when it cannot say. */
static unsigned own_slots(struct node_conn *self)
{
	redisReply *rep = node_command(self, "CLUSTER NODES");
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
static void wait_aof_rewrite(struct node_conn *self, uint64_t until)
{
	char value[8];

	for (;;) {
		redisReply *rep = node_command(self, "INFO persistence");
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

/* How a handover goes: what happens without one, as the end of a log line; whether to wait for replicas. */
struct outcome {
	const char *no_replica, *no_handover, *no_takeover;
	/* a restarted server: its replicas connect again within a second (their retry period), wait for them */
	bool replicas_return;
};

static const struct outcome on_stop = {
	"its slots are unserved until it is back",
	"stopping without a handover",
	"stopping anyway",
	false,
};
static const struct outcome on_crash_loop = {
	"it stays the master of its slots",
	"it stays the master of its slots",
	"it stays the master of its slots",
	true,
};

/*
 * CLUSTER FAILOVER on the replica. Until retry_until (0: once) an error reply is asked again: a replica of a
 * restarted master copies it before its cluster link to it is back, and refuses until then ("Master is down or
 * failed").
 */
static int ask_takeover(const struct cluster_replica *replica, const struct secrets_value *pw, uint64_t retry_until,
			struct init_error *why)
{
	struct node_conn *to;
	redisReply *rep;
	int r;

	r = cluster_connect(replica->ip, replica->port, pw, 1000, &to, why);
	if (r < 0)
		return r;
	for (;;) {
		bool answered;

		rep = node_command(to, "CLUSTER FAILOVER");
		answered = rep != NULL;
		r = answered && rep->type != REDIS_REPLY_ERROR
			    ? 0
			    : init_error_set(why, -EREMOTEIO, "CLUSTER FAILOVER on %s:%u: %s", replica->ip,
					     replica->port, answered ? rep->str : to->errstr);
		freeReplyObject(rep);
		if (r == 0 || !answered || init_now_usec() >= retry_until)
			break;
		init_sleep_ms(WAIT_REPLICA_MS);
	}
	node_conn_free(to);
	return r;
}

/*
 * Hands the slots of the master at self (own of them) to its best replica: waits until until for one to be online,
 * asks it to take over (CLUSTER FAILOVER: the master pauses its clients until the replica has caught up, so no
 * acknowledged write is lost) and waits, KVINIT_FAILOVER_TIMEOUT at most, until this node calls itself a replica.
 * Logs what it did; 0 when the replica took over, else -errno.
 */
static int hand_over(struct node_conn *self, const struct node_options *o, const struct secrets_value *pw, unsigned own,
		     uint64_t t0, uint64_t until, const struct outcome *m)
{
	struct init_error why = {{0}};
	struct cluster_replica replica = {0};
	_cleanup_free_ char *info = info_replication(self);
	uint64_t done_by, retry_until;
	char role[16];
	int r;

	if (!info) {
		log_warn("failover: no answer to INFO replication, %s", m->no_handover);
		return -EIO;
	}
	while ((r = best_replica(info, &replica)) < 0) {
		if ((r == -ENOENT && !m->replicas_return) || init_now_usec() >= until) {
			log_warn("failover: this master has no replica online: %s", m->no_replica);
			return r == -ENOENT ? r : -ETIMEDOUT;
		}
		init_sleep_ms(WAIT_REPLICA_MS);
		free(info);
		info = info_replication(self);
		if (!info)
			return -EIO;
	}
	/*
	 * A replica whose cluster link to this master is being made again (the cluster cron restores a dropped link
	 * within 100 ms) refuses with "Master is down or failed": ask again for a second, or until the deadline when
	 * the replicas are still coming back.
	 */
	retry_until = init_now_usec() + USEC_PER_SEC;
	cluster_tls_learn_peers(self);
	r = ask_takeover(&replica, pw, m->replicas_return || until < retry_until ? until : retry_until, &why);
	if (r < 0) {
		log_warn("failover: %s, %s", why.msg, m->no_handover);
		return r;
	}
	log_info("failover: asked replica '%s:%u' to take over %u slots", replica.ip, replica.port, own);
	done_by = init_now_usec() + (uint64_t)o->failover_timeout * USEC_PER_MSEC;
	if (done_by > until)
		done_by = until;

	/* Done when this node calls itself a replica: the replica has the slots and the epoch that says so. */
	for (;;) {
		free(info);
		info = info_replication(self);
		if (info && cluster_info_field(info, "role", role, sizeof(role)) && strcmp(role, "slave") == 0) {
			log_info("failover: '%s:%u' took over in %.0f ms", replica.ip, replica.port,
				 (double)(init_now_usec() - t0) / 1000.0);
			return 0;
		}
		if (init_now_usec() >= done_by) {
			log_warn("failover: '%s:%u' did not take over within %.0f ms, %s", replica.ip, replica.port,
				 (double)(done_by - t0) / 1000.0, m->no_takeover);
			return -ETIMEDOUT;
		}
		init_sleep_ms(WAIT_TAKEOVER_MS);
	}
}

uint64_t node_failover_until(const struct node_options *o, uint64_t t0, uint64_t deadline_usec)
{
	uint64_t until = t0 + (uint64_t)o->failover_timeout * USEC_PER_MSEC;

	/* leave the server at least a second of the grace period to stop after the handover */
	if (deadline_usec > USEC_PER_SEC && until > deadline_usec - USEC_PER_SEC)
		until = deadline_usec - USEC_PER_SEC;
	return until;
}

void node_failover_on_stop(const struct node_options *o, const struct secrets_value *pw, uint64_t deadline_usec)
{
	uint64_t t0 = init_now_usec(), until;
	char host[64];
	struct init_error why = {{0}};
	struct node_conn *self = NULL;
	unsigned own;

	if (!o->cluster_enabled || !o->failover_timeout)
		return;
	until = node_failover_until(o, t0, deadline_usec);
	if (until <= t0)
		return;

	node_probe_host(o->bind, host, sizeof(host));
	if (cluster_connect(host, node_client_port(o), pw, 1000, &self, &why) < 0) {
		log_warn("failover: %s, stopping without a handover", why.msg);
		return;
	}
	own = own_slots(self);
	if (own)
		(void)hand_over(self, o, pw, own, t0, until, &on_stop);
	else {
		log_debug("failover: this node serves no slots, nothing to hand over");
		wait_aof_rewrite(self, until);
	}
	node_conn_free(self);
}

/* The server at host:port once it answers PING with PONG (not -LOADING), or NULL at the deadline. */
static struct node_conn *wait_answer(const char *host, unsigned port, const struct secrets_value *pw, uint64_t until)
{
	for (;;) {
		struct init_error err = {{0}};
		struct node_conn *ctx;
		redisReply *rep;
		bool up;

		if (cluster_connect(host, port, pw, 1000, &ctx, &err) == 0) {
			rep = node_command(ctx, "PING");
			up = rep && rep->type == REDIS_REPLY_STATUS;
			freeReplyObject(rep);
			if (up)
				return ctx;
			node_conn_free(ctx);
		}
		if (init_now_usec() >= until) {
			log_warn("failover: the restarted server does not answer: %s",
				 err.msg[0] ? err.msg : "it is loading");
			return NULL;
		}
		init_sleep_ms(WAIT_REPLICA_MS);
	}
}

int node_failover_crash_loop(const struct node_options *o, const struct secrets_value *pw, unsigned crashes,
			     uint64_t window_usec)
{
	uint64_t t0 = init_now_usec(), until = t0 + window_usec;
	char host[64];
	struct replicas_scan listed;
	struct node_conn *self;
	unsigned own;
	int r;

	node_probe_host(o->bind, host, sizeof(host));
	self = wait_answer(host, node_client_port(o), pw, until);
	if (!self)
		return -ETIMEDOUT;
	own = own_slots(self);
	list_replicas(self, &listed);
	if (!own || !listed.n) {
		log_debug("failover: this node serves no slots or has no replica, nothing to hand over");
		node_conn_free(self);
		return 0;
	}
	log_warn("failover: this master crashed%s (%u in a row, KVINIT_CRASH_HANDOVER=%lld): handing its %u slots to "
		 "a replica, so it goes on as a replica",
		 crashes > 1 ? " again" : "", crashes, (long long)o->crash_handover, own);
	nudge_replicas(self, pw, &listed);
	r = hand_over(self, o, pw, own, t0, until, &on_crash_loop);
	node_conn_free(self);
	return r;
}
