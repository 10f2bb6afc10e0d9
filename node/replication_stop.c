/* SPDX-License-Identifier: MIT */
/*
 * A replication-mode primary's handover on stop (replication.c has the rest of the mode): it pauses writes, waits
 * until its online replicas have every write, asks a Sentinel to fail over (SENTINEL FAILOVER) and waits until the
 * Sentinels name the new primary, as a cluster master hands its slots to a replica (failover.c). A plain SIGTERM
 * leaves the set without a primary until the Sentinels call it down (down-after-milliseconds) and elect a leader.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "replication.h"

/* ---- the handover on stop ---- */

/* The online replicas in a primary's INFO replication, by the one parser of it (cluster_info_replicas). */
static size_t online_replicas(const char *info, struct cluster_addr *ret, size_t max)
{
	struct cluster_replica all[16];
	size_t n = 0, listed = cluster_info_replicas(info, all, sizeof(all) / sizeof(all[0]));

	for (size_t i = 0; i < listed && n < max; i++) {
		if (!all[i].online)
			continue;
		(void)snprintf(ret[n].host, sizeof(ret[n].host), "%.*s", (int)sizeof(ret[n].host) - 1, all[i].ip);
		ret[n++].port = all[i].port;
	}
	return n;
}

static long long info_number(struct node_conn *ctx, const char *field)
{
	redisReply *rep = node_command(ctx, "INFO replication");
	char value[32];
	long long n = -1;

	if (rep && rep->type == REDIS_REPLY_STRING && cluster_info_field(rep->str, field, value, sizeof(value)))
		n = strtoll(value, NULL, 10);
	freeReplyObject(rep);
	return n;
}

/*
 * Waits until every online replica has every write the primary took (writes are paused, so the offset no longer
 * moves): whichever the Sentinels promote then has them all. Returns how many are caught up.
 */
static size_t wait_caught_up(struct node_conn *self, const struct cluster_addr *replicas, size_t n,
			     const struct secrets_value *pw, uint64_t until)
{
	long long want = info_number(self, "master_repl_offset");
	size_t done = 0;
	char why[256];

	for (size_t i = 0; i < n; i++) {
		struct node_conn *ctx = cluster_open(replicas[i].host, replicas[i].port, pw, 500, why, sizeof(why));

		while (ctx && info_number(ctx, "slave_repl_offset") < want && init_now_usec() < until)
			init_sleep_ms(2);
		if (ctx && info_number(ctx, "slave_repl_offset") >= want)
			done++;
		else
			log_warn("failover: replica '%s:%u' is not caught up with offset '%lld'%s%s", replicas[i].host,
				 replicas[i].port, want, ctx ? "" : ": ", ctx ? "" : why);
		if (ctx)
			node_conn_free(ctx);
	}
	return done;
}

/* SENTINEL FAILOVER on the first Sentinel that takes it; its index, or -1. */
static int ask_failover(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
			const struct secrets_set *pws)
{
	char why[256];

	for (size_t i = 0; i < n; i++) {
		struct node_conn *ctx = node_sentinel_connect(&sentinels[i], pws, why, sizeof(why));
		redisReply *rep = ctx ? node_command(ctx, "SENTINEL FAILOVER %s", o->master_set) : NULL;
		bool ok = rep && (rep->type == REDIS_REPLY_STATUS ||
				  (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "INPROG", 6) == 0));

		if (!ok)
			log_warn("failover: sentinel '%s:%u' refused SENTINEL FAILOVER: %s", sentinels[i].host,
				 sentinels[i].port,
				 rep && rep->str ? rep->str
				 : ctx		 ? ctx->errstr
						 : why);
		freeReplyObject(rep);
		if (ctx)
			node_conn_free(ctx);
		if (ok)
			return (int)i;
	}
	return -1;
}

static void pause_writes(struct node_conn *ctx, long long ms)
{
	redisReply *rep = node_command(ctx, "CLIENT PAUSE %lld WRITE", ms);

	if (!rep || rep->type == REDIS_REPLY_ERROR)
		log_warn("failover: CLIENT PAUSE failed: %s; writes go on during the handover",
			 rep ? rep->str : ctx->errstr);
	freeReplyObject(rep);
}

/*
 * The primary a Sentinel's state holds (SENTINEL MASTER: what SENTINEL MASTERS tells clients such as redis-py). The
 * Sentinel that runs a failover answers GET-MASTER-ADDR-BY-NAME with the promoted replica as soon as it sees the
 * promotion, but its state changes only once the other replicas follow the new primary (+switch-master).
 */
static int master_state(struct node_conn *ctx, const char *set, struct cluster_addr *ret)
{
	redisReply *rep = node_command(ctx, "SENTINEL MASTER %s", set);
	const char *ip = NULL, *port = NULL;
	int r = -EIO;

	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i + 1 < rep->elements; i += 2) {
		const redisReply *k = rep->element[i], *v = rep->element[i + 1];

		if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
			continue;
		if (strcmp(k->str, "ip") == 0)
			ip = v->str;
		else if (strcmp(k->str, "port") == 0)
			port = v->str;
	}
	if (rep && rep->type == REDIS_REPLY_ERROR)
		r = 0;
	if (ip && port && strlen(ip) < sizeof(ret->host)) {
		(void)snprintf(ret->host, sizeof(ret->host), "%s", ip);
		ret->port = (unsigned)strtoul(port, NULL, 10);
		r = 1;
	}
	freeReplyObject(rep);
	return r;
}

struct link {
	struct node_conn *ctx;
};

/*
 * Polls the Sentinels until every one that answers holds the same other primary: whichever a client asks, and
 * however it asks, it is sent there. 1 then, with it in ret.
 */
static int wait_switched(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
			 const struct secrets_set *pws, uint64_t until, struct cluster_addr *ret)
{
	_cleanup_free_ struct link *links = calloc(n, sizeof(struct link));
	char why[256];
	int done = 0;

	if (!links)
		return 0;
	while (!done && init_now_usec() < until) {
		struct cluster_addr first = {.port = 0}, a;
		size_t agree = 0, answered = 0;

		for (size_t i = 0; i < n; i++) {
			int r;

			if (!links[i].ctx)
				links[i].ctx = node_sentinel_connect(&sentinels[i], pws, why, sizeof(why));
			r = links[i].ctx ? master_state(links[i].ctx, o->master_set, &a) : -EIO;
			if (r < 0 && links[i].ctx) {
				node_conn_free(links[i].ctx);
				links[i].ctx = NULL;
			}
			if (r < 0)
				continue;
			answered++;
			if (r == 1 && !node_replication_is_me(o, &a) &&
			    (!agree || (strcmp(a.host, first.host) == 0 && a.port == first.port))) {
				first = a;
				agree++;
			}
		}
		done = answered && agree == answered;
		if (done)
			*ret = first;
		else
			init_sleep_ms(10);
	}
	for (size_t i = 0; i < n; i++)
		if (links[i].ctx)
			node_conn_free(links[i].ctx);
	return done;
}

void node_replication_failover_on_stop(const struct node_options *o, const struct secrets_value *pw,
				       uint64_t deadline_usec)
{
	uint64_t t0 = init_now_usec(), until, pause_ms;
	_cleanup_free_ struct cluster_addr *sentinels = NULL;
	struct cluster_addr replicas[16], primary;
	struct secrets_set pws = {0};
	struct init_error err;
	struct node_conn *self = NULL;
	redisReply *rep = NULL;
	char host[64], why[256], role[16];
	size_t n = 0, n_replicas, answered;
	int which;

	if (node_replication(o) == NODE_REPL_NONE || !*o->sentinel_nodes || !o->failover_timeout)
		return;
	until = node_failover_until(o, t0, deadline_usec);
	if (until <= t0)
		return;
	if (cluster_parse_nodes(o->sentinel_nodes, "REDIS_SENTINEL_NODES", (unsigned)o->sentinel_port, &sentinels, &n,
				&err) < 0 ||
	    node_sentinel_passwords(o, pw, &pws, &err) < 0) {
		log_warn("failover: %s, stopping without a handover", err.msg);
		return;
	}
	node_probe_host(o->bind, host, sizeof(host));
	self = cluster_open(host, node_client_port(o), pw, 1000, why, sizeof(why));
	rep = self ? node_command(self, "INFO replication") : NULL;
	if (!rep || rep->type != REDIS_REPLY_STRING) {
		log_warn("failover: %s, stopping without a handover", self ? "no answer to INFO replication" : why);
		goto out;
	}
	if (!cluster_info_field(rep->str, "role", role, sizeof(role)) || strcmp(role, "master") != 0) {
		log_debug("failover: this node is a replica, nothing to hand over");
		goto out;
	}
	n_replicas = online_replicas(rep->str, replicas, sizeof(replicas) / sizeof(replicas[0]));
	if (!n_replicas) {
		log_warn(
			"failover: this primary has no replica online: the Sentinels fail over once they call it down");
		goto out;
	}
	if (node_sentinels_ask(o, sentinels, n, &pws, &primary, &answered) != 1 ||
	    !node_replication_is_me(o, &primary)) {
		log_warn("failover: the Sentinels do not name this node the primary of '%s', stopping without a "
			 "handover",
			 o->master_set);
		goto out;
	}
	/*
	 * From here until the server stops, writes wait: one taken now could miss the replica being promoted. Writes
	 * that wait are never acknowledged here; their clients see the connection close and retry on the new primary.
	 */
	pause_ms = (deadline_usec > t0 ? deadline_usec - t0 : 0) / 1000 + 5000;
	pause_writes(self, (long long)pause_ms);
	(void)wait_caught_up(self, replicas, n_replicas, pw, until);
	which = ask_failover(o, sentinels, n, &pws);
	if (which < 0) {
		/* no failover started: the writes that waited land here, and the replicas get them before it stops */
		freeReplyObject(node_command(self, "CLIENT UNPAUSE"));
		log_warn("failover: no Sentinel took SENTINEL FAILOVER %s, stopping without a handover", o->master_set);
		goto out;
	}
	log_info("failover: sentinel '%s:%u' fails '%s' over", sentinels[which].host, sentinels[which].port,
		 o->master_set);
	if (wait_switched(o, sentinels, n, &pws, until, &primary))
		log_info("failover: '%s:%u' took over in %.0f ms", primary.host, primary.port,
			 (double)(init_now_usec() - t0) / 1000.0);
	else
		log_warn("failover: no replica took over within %.0f ms, stopping anyway",
			 (double)(until - t0) / 1000.0);
out:
	freeReplyObject(rep);
	if (self)
		node_conn_free(self);
	secrets_set_wipe(&pws);
}
