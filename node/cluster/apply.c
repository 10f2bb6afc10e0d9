/* SPDX-License-Identifier: MIT */
/*
 * Carrying out what decide.c decided, to every node at once where the commands allow: form the cluster by the plan
 * (or finish a half-formed one), or attach new nodes to a formed one as replicas; then wait until the nodes agree.
 * Every command is safe to send twice: a reply saying the work was done already is not an error, so two inits that
 * run at once end in one cluster.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define POLL_MS	      20
#define MEET_AGAIN_MS 1000

static int check_deadline(const struct cluster_run *r, const char *what)
{
	if (init_now_usec() < r->deadline)
		return 0;
	return init_error_set(r->err, -ETIMEDOUT, "timed out waiting for %s", what);
}

/* Reads `count` pipelined replies from p; an error reply that says the work is done already sets *ret_busy. */
static int read_replies(struct cluster_run *r, struct cluster_peer *p, size_t count, const char *what, bool *ret_busy)
{
	char name[CLUSTER_HOST_MAX + 16];
	bool busy = false;

	cluster_peer_name(p, name, sizeof(name));
	for (size_t i = 0; i < count; i++) {
		redisReply *rep = NULL;

		if (node_get_reply(p->ctx, (void **)&rep) != REDIS_OK || !rep)
			return init_error_set(r->err, -EIO, "%s: %s: %s", name, what, p->ctx->errstr);
		/* any other error is left to the wait that follows, which times out if it mattered */
		if (rep->type == REDIS_REPLY_ERROR) {
			enum cluster_reply_kind kind = cluster_reply_kind(rep->str);

			busy = busy || kind == CLUSTER_REPLY_DONE_BEFORE;
			if (kind == CLUSTER_REPLY_FAILED)
				log_debug("%s: %s: '%s'", name, what, rep->str);
		}
		freeReplyObject(rep);
	}
	if (ret_busy)
		*ret_busy = busy;
	return 0;
}

/*
 * All appended first, then all read: one round trip for every node. Not fatal: the formation is only slower (or keeps
 * 500 ms until the next run puts the configured value back).
 */
static void set_node_timeout(struct cluster_run *r, const long long *values)
{
	char v[32], name[CLUSTER_HOST_MAX + 16];
	const char *argv[] = {"CONFIG", "SET", "cluster-node-timeout", v};

	for (size_t i = 0; i < r->n; i++) {
		(void)snprintf(v, sizeof(v), "%lld", values[i]);
		(void)node_append_argv(r->peers[i].ctx, 4, argv, NULL);
		(void)node_flush(r->peers[i].ctx);
	}
	for (size_t i = 0; i < r->n; i++) {
		redisReply *rep = NULL;

		if (node_get_reply(r->peers[i].ctx, (void **)&rep) == REDIS_OK && rep &&
		    rep->type != REDIS_REPLY_ERROR) {
			freeReplyObject(rep);
			continue;
		}
		cluster_peer_name(&r->peers[i], name, sizeof(name));
		log_warn("%s: cannot set cluster-node-timeout to '%lld': %s, ignoring", name, values[i],
			 rep ? rep->str : r->peers[i].ctx->errstr);
		freeReplyObject(rep);
	}
}

/*
 * Every node meets the others cluster_meet_wanted says, all pipelined: all MEETs sent (flushed: a reply read sends only
 * its own node's commands) before any reply is read.
 */
static int meet_all(struct cluster_run *r)
{
	_cleanup_free_ size_t *sent = calloc(r->n, sizeof(*sent));

	if (!sent)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n; i++) {
		const struct cluster_peer *a = &r->peers[i];

		for (size_t j = 0; j < r->n; j++) {
			const struct cluster_peer *b = &r->peers[j];
			char port[8], bus[8];
			const char *argv[] = {"CLUSTER", "MEET", b->meet_ip, port, bus};

			if (!cluster_meet_wanted(r->peers, i, j))
				continue;
			(void)snprintf(port, sizeof(port), "%u", b->meet_port);
			(void)snprintf(bus, sizeof(bus), "%u", b->meet_bus);
			(void)node_append_argv(a->ctx, 5, argv, NULL);
			sent[i]++;
		}
		(void)node_flush(a->ctx);
	}
	for (size_t i = 0; i < r->n; i++) {
		int res = read_replies(r, &r->peers[i], sent[i], "CLUSTER MEET", NULL);

		if (res < 0)
			return res;
	}
	return 0;
}

static int scan_own_role(const struct cluster_line *l, void *userdata)
{
	struct cluster_peer *p = userdata;

	if (!l->myself)
		return 0;
	p->own_slots = l->nslots;
	p->is_master = l->is_master;
	(void)snprintf(p->master_id, sizeof(p->master_id), "%s", l->is_master ? "" : l->master);
	return 1;
}

/*
 * Every node's CLUSTER NODES into its peer, with the role its own line gives: one round trip where cluster_inspect
 * makes ten, for the waits that poll. rep: n slots, left empty.
 */
static int read_nodes(struct cluster_run *r, redisReply **rep)
{
	const char *argv[] = {"CLUSTER", "NODES"};
	char name[CLUSTER_HOST_MAX + 16];
	int res = cluster_send_all(r->peers, r->n, NULL, rep, 2, argv, r->err);

	for (size_t i = 0; i < r->n && res == 0; i++) {
		char *text;

		if (!rep[i] || rep[i]->type != REDIS_REPLY_STRING) {
			cluster_peer_name(&r->peers[i], name, sizeof(name));
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER NODES: %s", name,
					     rep[i] && rep[i]->type == REDIS_REPLY_ERROR ? rep[i]->str : "no text");
			break;
		}
		text = strdup(rep[i]->str);
		if (!text) {
			res = init_error_set(r->err, -ENOMEM, "out of memory");
			break;
		}
		free(r->peers[i].nodes_text);
		r->peers[i].nodes_text = text;
		res = cluster_peer_each_line(&r->peers[i], scan_own_role, &r->peers[i], r->err);
		res = res < 0 ? res : 0;
	}
	cluster_free_replies(rep, r->n);
	return res;
}

/* Polls until every node knows every other one. */
static int wait_all_known(struct cluster_run *r)
{
	for (;;) {
		int res = cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);

		if (res == 0)
			res = cluster_all_known(r->peers, r->n, r->err);
		if (res != 0)
			return res < 0 ? res : 0;
		res = check_deadline(r, "the nodes to meet each other");
		if (res < 0)
			return res;
		init_sleep_ms(POLL_MS);
	}
}

/* The formation's state for wait_ok: the timeouts (fast NULL when the configured ones stay). */
struct formation {
	const long long *original;
	long long *fast;
	uint64_t since; /* when fast was last set */
};

/* The formation's timeouts raised where cluster_formation_timeout_next says. */
static void raise_timeouts(struct cluster_run *r, struct formation *f)
{
	uint64_t now = init_now_usec(), waited = (now - f->since) / USEC_PER_MSEC;
	long long was = 0, now_at = 0;

	for (size_t i = 0; i < r->n; i++) {
		long long next = cluster_formation_timeout_next(f->fast[i], f->original[i], waited);

		if (next == f->fast[i])
			continue;
		was = f->fast[i];
		now_at = next;
		f->fast[i] = next;
	}
	if (!now_at)
		return;
	log_info(
		"the masters are not ok after %llu ms at a cluster-node-timeout of '%lld' ms (on a busy machine a late "
		"answer looks like a failure, and a master that sees a majority failing waits the timeout again): "
		"raising it to '%lld' ms",
		(unsigned long long)waited, was, now_at);
	set_node_timeout(r, f->fast);
	f->since = now;
}

/*
 * Polls until the nodes in `which` (all when NULL) say cluster_state:ok and agree on who serves every slot. In a
 * formation (f), the pairs that do not know each other yet are met again every MEET_AGAIN_MS (a handshake not done
 * within the node timeout, at least 1 s, is dropped, and on a busy machine some are), and the short timeouts are
 * raised while the masters are slow to turn ok.
 */
static int wait_ok(struct cluster_run *r, const bool *which, const char *what, struct formation *f)
{
	_cleanup_free_ redisReply **rep = calloc(r->n ? r->n : 1, sizeof(redisReply *));
	const char *argv[] = {"CLUSTER", "INFO"};
	uint64_t next_meet = init_now_usec() + MEET_AGAIN_MS * USEC_PER_MSEC;

	if (!rep)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (;;) {
		bool ok = true;
		char value[16];
		int res = cluster_send_all(r->peers, r->n, which, rep, 2, argv, r->err);

		for (size_t i = 0; i < r->n && res == 0 && ok; i++)
			if (rep[i])
				ok = rep[i]->type == REDIS_REPLY_STRING &&
				     cluster_info_field(rep[i]->str, "cluster_state", value, sizeof(value)) &&
				     strcmp(value, "ok") == 0;
		cluster_free_replies(rep, r->n);
		if (res == 0 && ok)
			res = read_nodes(r, rep);
		/*
		 * In a formation every node's map, the replicas' to be too: a node that took a master as failed while
		 * the timeout was short keeps it failed for twice the timeout, 10 s once the configured one is back.
		 */
		if (res == 0 && ok)
			res = cluster_slots_agree(r->peers, r->n, f ? NULL : which, r->err);
		if (res < 0)
			return res;
		if (ok && res > 0)
			return 0;
		res = check_deadline(r, what);
		if (res == 0 && f && init_now_usec() >= next_meet) {
			res = read_nodes(r, rep);
			if (res == 0)
				res = meet_all(r);
			next_meet = init_now_usec() + MEET_AGAIN_MS * USEC_PER_MSEC;
		}
		if (res == 0 && f && f->fast)
			raise_timeouts(r, f);
		if (res < 0)
			return res;
		init_sleep_ms(POLL_MS);
	}
}

/* For KVINIT_LOG_LEVEL=debug: how long the formation took to get where it is. */
static void log_phase(const char *what, uint64_t t0)
{
	log_debug("formation: %s after %.0f ms", what, (double)(init_now_usec() - t0) / 1000.0);
}

/* Slots of [first, last] that no master serves yet, as ADDSLOTSRANGE commands appended to p's pipeline. */
static size_t add_unserved_slots(struct cluster_peer *p, const struct cluster_slots *served, unsigned first,
				 unsigned last)
{
	unsigned from = first, a, b;
	size_t sent = 0;

	while (cluster_next_unserved(served, &from, last, &a, &b)) {
		char sa[8], sb[8];
		const char *argv[] = {"CLUSTER", "ADDSLOTSRANGE", sa, sb};

		(void)snprintf(sa, sizeof(sa), "%u", a);
		(void)snprintf(sb, sizeof(sb), "%u", b);
		(void)node_append_argv(p->ctx, 4, argv, NULL);
		sent++;
	}
	return sent;
}

/* Distinct config epochs, then the slots to every planned master at once. */
static int hand_out_slots(struct cluster_run *r, const struct cluster_decision *d,
			  const struct cluster_plan_entry *plan, bool *masters, size_t *sent)
{
	_cleanup_free_ bool *epochs = calloc(r->n, sizeof(*epochs));

	if (!epochs)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	/* each node's epoch before its slots, in one pipeline: one round trip for all */
	for (size_t i = 0; i < r->n; i++) {
		unsigned long long epoch = cluster_config_epoch(r->peers, i);
		char value[24];
		const char *argv[] = {"CLUSTER", "SET-CONFIG-EPOCH", value};

		epochs[i] = epoch != 0;
		if (epochs[i]) {
			(void)snprintf(value, sizeof(value), "%llu", epoch);
			(void)node_append_argv(r->peers[i].ctx, 3, argv, NULL);
		}
		sent[i] = plan[i].role == CLUSTER_MASTER
				  ? add_unserved_slots(&r->peers[i], &d->served, plan[i].first, plan[i].last)
				  : 0;
		(void)node_flush(r->peers[i].ctx);
	}
	for (size_t i = 0; i < r->n; i++) {
		bool busy = false;
		int res = epochs[i] ? read_replies(r, &r->peers[i], 1, "CLUSTER SET-CONFIG-EPOCH", NULL) : 0;

		if (res < 0)
			return res;
		if (plan[i].role != CLUSTER_MASTER)
			continue;
		masters[i] = true;
		res = read_replies(r, &r->peers[i], sent[i], "CLUSTER ADDSLOTSRANGE", &busy);
		if (res < 0)
			return res;
		if (busy)
			log_info("some slots were already assigned (another cluster-init at work?), going on");
	}
	return 0;
}

/*
 * Peer j MEETs every node i that has not heard from it yet (stale[i * n + j]). A node takes another's role, master
 * and slots only from that node's own messages (gossip about third nodes carries no replica-of link), and a node
 * hears from each other one about every cluster-node-timeout / 2 on its own: seconds after a REPLICATE, and more
 * the more nodes there are. A MEET of a known address is a new handshake link: i reads j's header from it at once,
 * and j drops the extra link when i's PONG names a node it knows. Not fatal: the wait only takes longer.
 */
static size_t nudge(struct cluster_run *r, const bool *stale, size_t *sent)
{
	size_t asked = 0;

	/* all appended first, then all read: one round trip for the lot, not one a node */
	for (size_t j = 0; j < r->n; j++) {
		sent[j] = 0;
		for (size_t i = 0; i < r->n; i++) {
			const struct cluster_peer *p = &r->peers[i];
			char port[8], bus[8];
			const char *argv[] = {"CLUSTER", "MEET", p->meet_ip, port, bus};

			if (!stale[i * r->n + j] || !p->meet_ip[0])
				continue;
			(void)snprintf(port, sizeof(port), "%u", p->meet_port);
			(void)snprintf(bus, sizeof(bus), "%u", p->meet_bus);
			(void)node_append_argv(r->peers[j].ctx, 5, argv, NULL);
			sent[j]++;
		}
		if (sent[j])
			(void)node_flush(r->peers[j].ctx);
	}
	/* "already in progress" and the like: the handshake before is still on its way */
	for (size_t j = 0; j < r->n; j++)
		if (sent[j] && read_replies(r, &r->peers[j], sent[j], "CLUSTER MEET (nudge)", NULL) == 0)
			asked++;
	return asked;
}

/*
 * Replicas last, once the configured node timeout is back: all asked at once, again until each one's master is known
 * to it. A replica that took its master MEETs every other node at once (nudge), so each reads the new role from it
 * now instead of at its next ping, seconds later.
 */
static int attach_replicas(struct cluster_run *r, const struct cluster_plan_entry *plan)
{
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	_cleanup_free_ bool *asked = calloc(r->n, sizeof(*asked));
	_cleanup_free_ bool *stale = calloc(r->n * r->n, sizeof(*stale));
	_cleanup_free_ size_t *sent = calloc(r->n, sizeof(*sent));
	char name[CLUSTER_HOST_MAX + 16];
	uint64_t next_meet = init_now_usec() + MEET_AGAIN_MS * USEC_PER_MSEC;

	if (!rep || !asked || !stale || !sent)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (;;) {
		size_t pending = 0, attached = 0;
		int res;

		for (size_t i = 0; i < r->n; i++) {
			const char *master_id = cluster_replicate_target(r->peers, plan, i);
			const char *argv[] = {"CLUSTER", "REPLICATE", master_id};

			asked[i] = master_id != NULL;
			if (asked[i] && node_append_argv(r->peers[i].ctx, 3, argv, NULL) == REDIS_OK)
				(void)node_flush(r->peers[i].ctx);
		}
		memset(stale, 0, r->n * r->n * sizeof(*stale));
		for (size_t i = 0; i < r->n; i++) {
			redisReply *reply = NULL;

			if (!asked[i])
				continue;
			cluster_peer_name(&r->peers[i], name, sizeof(name));
			if (node_get_reply(r->peers[i].ctx, (void **)&reply) != REDIS_OK || !reply)
				return init_error_set(r->err, -EIO, "%s: CLUSTER REPLICATE %s: %s", name,
						      cluster_replicate_target(r->peers, plan, i),
						      r->peers[i].ctx->errstr);
			if (reply->type == REDIS_REPLY_ERROR) {
				log_debug("%s: CLUSTER REPLICATE %s: '%s', retrying", name,
					  cluster_replicate_target(r->peers, plan, i), reply->str);
				pending++;
			} else {
				for (size_t k = 0; k < r->n; k++)
					stale[k * r->n + i] = k != i;
				attached++;
			}
			freeReplyObject(reply);
		}
		if (attached)
			(void)nudge(r, stale, sent);
		if (!pending)
			return 0;
		res = check_deadline(r, "the replicas to attach");
		if (res == 0) {
			init_sleep_ms(POLL_MS);
			res = read_nodes(r, rep);
		}
		/* a replica whose handshake with its master was dropped */
		if (res == 0 && init_now_usec() >= next_meet) {
			res = meet_all(r);
			next_meet = init_now_usec() + MEET_AGAIN_MS * USEC_PER_MSEC;
		}
		if (res < 0)
			return res;
	}
}

int cluster_plan_peers(const struct cluster_run *r, struct cluster_plan_entry *ret, size_t *ret_same_host,
		       struct init_error *err)
{
	_cleanup_free_ const char **hosts = calloc(r->n, sizeof(*hosts));
	_cleanup_free_ const char **zones = calloc(r->n, sizeof(*zones));

	if (!hosts || !zones)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n; i++) {
		hosts[i] = r->peers[i].ip;
		zones[i] = r->peers[i].zone;
	}
	return cluster_plan(r->n, hosts, zones, (unsigned)r->o->replicas, ret, ret_same_host, err);
}

/* Creates the cluster by the plan, or finishes a half-formed one: only what is missing is sent. */
static int form(struct cluster_run *r, const struct cluster_decision *d)
{
	_cleanup_free_ struct cluster_plan_entry *plan = calloc(r->n, sizeof(*plan));
	_cleanup_free_ long long *original = NULL, *fast = NULL;
	_cleanup_free_ bool *masters = NULL;
	_cleanup_free_ size_t *sent = NULL;
	size_t same_host = 0;
	uint64_t t0 = init_now_usec();
	struct formation f = {0};
	int m, res;

	if (!plan)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	m = cluster_plan_peers(r, plan, &same_host, r->err);
	if (m < 0)
		return m;
	original = calloc(r->n, sizeof(*original));
	fast = calloc(r->n, sizeof(*fast));
	masters = calloc(r->n, sizeof(*masters));
	sent = calloc(r->n, sizeof(*sent));
	if (!original || !fast || !masters || !sent)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	if (m < 3)
		log_warn("%d master%s: Redis Cluster needs a majority of 3 or more masters to fail a master over, so "
			 "with %d a failed master stays failed until it comes back",
			 m, m == 1 ? "" : "s", m);
	if (same_host)
		log_warn("%zu replica%s share a host with their master: a failure of that host loses both", same_host,
			 same_host == 1 ? "" : "s");
	log_info("creating a cluster of %d masters and %zu replicas", m, r->n - (size_t)m);

	/* The short node timeout only while no replica exists (see the top of cluster_init.c). */
	if (!d->replicas_attached) {
		cluster_formation_timeouts(r->peers, r->n, r->o->node_timeout, original, fast);
		set_node_timeout(r, fast);
		f = (struct formation){.original = original, .fast = fast, .since = init_now_usec()};
	}
	/*
	 * The masters are ok once they see each other's slots and their rejoin delay has passed: that wait covers the
	 * handshakes too, and a replica is asked until its master is known to it. cluster_wait_agreement, which
	 * follows, waits for every node's cluster_state:ok and the same view everywhere.
	 */
	res = hand_out_slots(r, d, plan, masters, sent);
	log_phase("slots handed out", t0);
	if (res == 0)
		res = meet_all(r);
	log_phase("met", t0);
	if (res == 0)
		res = wait_ok(r, masters, "the masters to report cluster_state:ok", &f);
	log_phase("masters ok", t0);
	if (!d->replicas_attached)
		set_node_timeout(r, original);
	if (res == 0)
		res = attach_replicas(r, plan);
	log_phase("replicas attached", t0);
	return res;
}

/* Meets the new nodes and makes each a replica of the master cluster_choose_masters picks. */
static int extend(struct cluster_run *r, const bool *member)
{
	_cleanup_free_ char(*master)[CLUSTER_ID_LEN + 1] = calloc(r->n, sizeof(*master));
	char name[CLUSTER_HOST_MAX + 16];
	int res;

	if (!master)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	res = meet_all(r);
	if (res == 0)
		res = wait_all_known(r);
	if (res == 0)
		res = cluster_choose_masters(r->peers, r->n, member, master, r->err);
	if (res < 0)
		return res;
	for (size_t i = 0; i < r->n; i++) {
		const char *argv[] = {"CLUSTER", "REPLICATE", master[i]};
		redisReply *rep;

		if (member[i])
			continue;
		rep = node_command_argv(r->peers[i].ctx, 3, argv, NULL);
		cluster_peer_name(&r->peers[i], name, sizeof(name));
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			res = init_error_set(r->err, rep ? -EREMOTEIO : -EIO, "%s: CLUSTER REPLICATE %s: %s", name,
					     master[i], rep ? rep->str : r->peers[i].ctx->errstr);
			freeReplyObject(rep);
			return res;
		}
		freeReplyObject(rep);
		log_info("added %s as a replica of '%.40s'", name, master[i]);
	}
	return wait_ok(r, NULL, "every node to report cluster_state:ok", NULL);
}

/*
 * An init that died while the masters turned ok left their nodes at the formation's short timeout, and a re-run
 * that finds the slots handed out does not form again: it puts the configured timeout back itself.
 */
static void restore_node_timeouts(struct cluster_run *r)
{
	_cleanup_free_ long long *original = calloc(r->n, sizeof(*original));
	_cleanup_free_ long long *fast = calloc(r->n, sizeof(*fast));
	size_t left = 0;

	if (!original || !fast) {
		log_warn("cannot check cluster-node-timeout: out of memory, ignoring");
		return;
	}
	cluster_formation_timeouts(r->peers, r->n, r->o->node_timeout, original, fast);
	for (size_t i = 0; i < r->n; i++)
		left += r->peers[i].node_timeout != original[i];
	if (!left)
		return;
	log_info("%zu node%s still at the formation's cluster-node-timeout of %d ms: putting back '%lld'", left,
		 left == 1 ? "" : "s", CLUSTER_FORMATION_TIMEOUT_MS, (long long)r->o->node_timeout);
	set_node_timeout(r, original);
}

int cluster_meet_and_wait(struct cluster_run *r)
{
	int res = meet_all(r);

	return res < 0 ? res : wait_all_known(r);
}

int cluster_wait_ok(struct cluster_run *r, const char *what)
{
	return wait_ok(r, NULL, what, NULL);
}

int cluster_apply(struct cluster_run *r, const struct cluster_decision *d, const bool *member)
{
	int res;

	switch (d->action) {
	case CLUSTER_FORM:
		return form(r, d);
	case CLUSTER_EXTEND:
		res = extend(r, member);
		if (res == 0)
			restore_node_timeouts(r);
		return res;
	case CLUSTER_RESHAPE:
		res = cluster_reshape_apply(r, d->reshape);
		if (res == 0)
			restore_node_timeouts(r);
		return res;
	case CLUSTER_FORMED:
		log_info("the cluster is formed and has every node: nothing to do");
		restore_node_timeouts(r);
		return 0;
	}
	return init_error_set(r->err, -EINVAL, "unknown decision %d", (int)d->action);
}

#define NUDGE_MS	   200
#define AGREE_PROGRESS_SEC 3

/*
 * Every node's CLUSTER INFO and CLUSTER NODES, the texts into the peers: 1 when every node says cluster_state:ok,
 * else 0 with why naming the first that does not. Two commands, where cluster_inspect sends ten: this is polled.
 */
static int read_views(struct cluster_run *r, redisReply **rep, char *why, size_t size)
{
	const char *info[] = {"CLUSTER", "INFO"};
	char name[CLUSTER_HOST_MAX + 16], value[16];
	int res = cluster_send_all(r->peers, r->n, NULL, rep, 2, info, r->err), ok = 1;

	for (size_t i = 0; i < r->n && res == 0 && ok; i++) {
		bool have = rep[i] && rep[i]->type == REDIS_REPLY_STRING &&
			    cluster_info_field(rep[i]->str, "cluster_state", value, sizeof(value));

		if (have && strcmp(value, "ok") == 0)
			continue;
		cluster_peer_name(&r->peers[i], name, sizeof(name));
		(void)snprintf(why, size, "'%s' says cluster_state '%s'", name, have ? value : "?");
		ok = 0;
	}
	cluster_free_replies(rep, r->n);
	if (res == 0)
		res = read_nodes(r, rep);
	return res < 0 ? res : ok;
}

int cluster_wait_agreement(struct cluster_run *r)
{
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	_cleanup_free_ bool *stale = calloc(r->n * r->n, sizeof(*stale));
	_cleanup_free_ size_t *sent = calloc(r->n, sizeof(*sent));
	uint64_t t0 = init_now_usec(), next_nudge = t0, next_progress = t0 + AGREE_PROGRESS_SEC * USEC_PER_SEC;
	size_t nudged = 0;
	char why[512], views_why[512] = "";

	if (!rep || !stale || !sent)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (;;) {
		int ok = read_views(r, rep, why, sizeof(why)), agree = 0;
		uint64_t now;

		/* the views are compared while a node is not ok too: one that does not know a master yet is met */
		if (ok >= 0)
			agree = cluster_views_agree(r->peers, r->n, stale, ok ? why : views_why,
						    ok ? sizeof(why) : sizeof(views_why), r->err);
		if (ok < 0 || agree < 0)
			return ok < 0 ? ok : agree;
		now = init_now_usec();
		if (ok && agree) {
			if (nudged)
				log_info("every node agrees after %.0f ms (%zu round%s of MEETs to nodes that had not "
					 "heard "
					 "from a peer)",
					 (double)(now - t0) / 1000.0, nudged, nudged == 1 ? "" : "s");
			return 0;
		}
		if (now >= r->deadline)
			return init_error_set(r->err, -ETIMEDOUT, "timed out waiting for the nodes to agree: %s", why);
		if (now >= next_progress) {
			log_info("waiting for the nodes to agree: %s", why);
			next_progress = now + AGREE_PROGRESS_SEC * USEC_PER_SEC;
		}
		if (now >= next_nudge && nudge(r, stale, sent) > 0) {
			nudged++;
			next_nudge = now + NUDGE_MS * USEC_PER_MSEC;
		}
		init_sleep_ms(POLL_MS);
	}
}
