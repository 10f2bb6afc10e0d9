/* SPDX-License-Identifier: MIT */
/*
 * Carrying a reshape out (reshape.c plans it, migrate.c moves the slots). The order keeps every slot's data in two
 * places for as long as it can: new nodes are met and the new replicas attached before any slot moves, so a new
 * master has its replica while its slots arrive; the replicas of a removed master are re-pointed once it is
 * drained; only then are the removed nodes forgotten, by every other node at once (CLUSTER FORGET keeps a node out
 * for 60 s), and reset within that window, so no gossip brings them back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define POLL_MS 20

static const char *plural(size_t n)
{
	return n == 1 ? "" : "s";
}

/* Whether some node's own line shows a slot being imported or migrated, which an interrupted move leaves. */
static bool open_slots(const struct cluster_peer *peers, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (peers[i].nodes_text && (strstr(peers[i].nodes_text, "->-") || strstr(peers[i].nodes_text, "-<-")))
			return true;
	return false;
}

static int plan_job(const struct cluster_run *r, size_t n_listed, const bool *member, struct cluster_reshape_job *job)
{
	const struct cluster_reshape_options o = {
		.replicas = (unsigned)r->o->replicas,
		.rebalance = r->o->rebalance,
		.allow_remove = r->o->allow_remove,
	};
	int res = cluster_shape_from_peers(r->peers, n_listed, member, &job->nodes, &job->n, &job->live, r->err);

	return res < 0 ? res : cluster_reshape_plan(job->nodes, job->n, &o, &job->plan, r->err);
}

int cluster_reshape_prepare(const struct cluster_run *r, const bool *member, struct cluster_decision *d,
			    struct cluster_reshape_job *job)
{
	const struct cluster_reshape *p = &job->plan;
	int res;

	if (d->action != CLUSTER_EXTEND && d->action != CLUSTER_FORMED)
		return 0;
	job->member = calloc(r->n, sizeof(*job->member));
	if (!job->member)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	memcpy(job->member, member, r->n * sizeof(*member));
	res = plan_job(r, r->n, member, job);
	if (res < 0)
		return res;
	if (p->uneven)
		log_info("a master is %u%% off an even share of the slots: REDIS_CLUSTER_REBALANCE=yes evens them out",
			 p->imbalance_pct);
	if (p->left_alone)
		log_warn("%zu failed node%s in the cluster %s not in REDIS_NODES: left as %s, "
			 "REDIS_CLUSTER_ALLOW_REMOVE=yes forgets %s",
			 p->left_alone, plural(p->left_alone), p->left_alone == 1 ? "is" : "are",
			 p->left_alone == 1 ? "it is" : "they are", p->left_alone == 1 ? "it" : "them");
	if (cluster_reshape_needed(p) || open_slots(r->peers, r->n)) {
		d->action = CLUSTER_RESHAPE;
		d->reshape = job;
	}
	return 0;
}

void cluster_reshape_job_free(struct cluster_reshape_job *job)
{
	cluster_reshape_free(&job->plan);
	free(job->nodes);
	free(job->member);
	*job = (struct cluster_reshape_job){0};
}

/* The removed nodes that answer, appended to the peers (the mover needs them as sources) and asked what they are. */
static int add_leaving(struct cluster_run *r, const struct cluster_reshape_job *job)
{
	size_t n = r->n, extra = job->live > r->n ? job->live - r->n : 0;
	struct cluster_peer *peers;
	int res;

	if (!extra)
		return 0;
	peers = realloc(r->peers, (n + extra) * sizeof(*peers));
	if (!peers)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	r->peers = peers;
	for (size_t k = 0; k < extra; k++) {
		const struct cluster_shape_node *node = &job->nodes[n + k];

		peers[n + k] = (struct cluster_peer){.addr = node->addr};
		(void)snprintf(peers[n + k].ip, sizeof(peers[n + k].ip), "%.*s", (int)sizeof(peers[n + k].ip) - 1,
			       node->addr.host);
	}
	r->n = n + extra;
	res = cluster_connect_all(r->peers + n, extra, r->pw, r->deadline, r->err);
	return res < 0 ? res : cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);
}

/* Back to the listed nodes only. */
static void drop_leaving(struct cluster_run *r, size_t n_listed)
{
	for (size_t i = n_listed; i < r->n; i++) {
		cluster_peer_close(&r->peers[i]);
		free(r->peers[i].nodes_text);
		r->peers[i].nodes_text = NULL;
	}
	r->n = n_listed;
}

/* A shape node's peer index (the peers may list them in another order than a later CLUSTER NODES), or -1. */
static int peer_of(const struct cluster_run *r, const struct cluster_reshape_job *job, size_t node)
{
	return cluster_find_peer(r->peers, r->n, job->nodes[node].id);
}

/* CLUSTER REPLICATE for the nodes of one kind (new or re-pointed), retried while gossip has not told them yet. */
static int replicate(struct cluster_run *r, const struct cluster_reshape_job *job, bool members)
{
	char name[CLUSTER_HOST_MAX + 16];

	for (;;) {
		size_t pending = 0;
		int res;

		for (size_t i = 0; i < job->n; i++) {
			const struct cluster_reshape_node *step = &job->plan.nodes[i];
			const char *master_id = job->nodes[step->master].id;
			const char *argv[] = {"CLUSTER", "REPLICATE", master_id};
			int k = peer_of(r, job, i);
			redisReply *rep;

			if (step->step != CLUSTER_STEP_REPLICATE || job->nodes[i].member != members || k < 0 ||
			    strcmp(r->peers[k].master_id, master_id) == 0)
				continue;
			rep = node_command_argv(r->peers[k].ctx, 3, argv, NULL);
			cluster_peer_name(&r->peers[k], name, sizeof(name));
			if (!rep)
				return init_error_set(r->err, -EIO, "%s: CLUSTER REPLICATE %s: %s", name, master_id,
						      r->peers[k].ctx->errstr);
			if (rep->type == REDIS_REPLY_ERROR) {
				log_debug("%s: CLUSTER REPLICATE %s: '%s', retrying", name, master_id, rep->str);
				pending++;
			} else {
				log_info("%s '%s' as a replica of '%.40s'", members ? "re-pointed" : "added", name,
					 master_id);
			}
			freeReplyObject(rep);
		}
		if (!pending)
			return 0;
		if (init_now_usec() >= r->deadline)
			return init_error_set(r->err, -ETIMEDOUT, "timed out waiting for the replicas to attach");
		init_sleep_ms(POLL_MS);
		res = cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);
		if (res < 0)
			return res;
	}
}

/* The plan's moves with peer indices. */
static int move_slots(struct cluster_run *r, const struct cluster_reshape_job *job)
{
	const struct cluster_reshape *p = &job->plan;
	_cleanup_free_ struct cluster_move *moves = NULL;

	if (!p->n_moves)
		return 0;
	moves = calloc(p->n_moves, sizeof(*moves));
	if (!moves)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t k = 0; k < p->n_moves; k++) {
		int from = peer_of(r, job, p->moves[k].from), to = peer_of(r, job, p->moves[k].to);

		if (from < 0 || to < 0)
			return init_error_set(r->err, -EINVAL, "slots %u-%u: a node of the move is not reachable",
					      p->moves[k].first, p->moves[k].last);
		moves[k] = (struct cluster_move){
			.first = p->moves[k].first, .last = p->moves[k].last, .from = (size_t)from, .to = (size_t)to};
	}
	return cluster_move_slots(r, moves, p->n_moves);
}

/* An error reply to FORGET that means there is nothing to forget. */
static bool forgotten_already(const redisReply *rep)
{
	return rep->type != REDIS_REPLY_ERROR || strstr(rep->str, "Unknown node");
}

/* FORGET every removed node on every listed node at once, then CLUSTER RESET HARD on the removed ones. */
static int remove_nodes(struct cluster_run *r, const struct cluster_reshape_job *job, size_t n_listed)
{
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	char name[CLUSTER_HOST_MAX + 16];

	if (!rep)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < job->n; i++) {
		const char *argv[] = {"CLUSTER", "FORGET", job->nodes[i].id};
		int res;

		if (job->plan.nodes[i].step != CLUSTER_STEP_REMOVE)
			continue;
		res = cluster_send_all(r->peers, n_listed, NULL, rep, 3, argv, r->err);
		for (size_t k = 0; k < n_listed && res == 0; k++) {
			if (!rep[k] || forgotten_already(rep[k]))
				continue;
			cluster_peer_name(&r->peers[k], name, sizeof(name));
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER FORGET %s: %s", name, job->nodes[i].id,
					     rep[k]->str);
		}
		cluster_free_replies(rep, n_listed);
		if (res < 0)
			return res;
	}
	for (size_t i = n_listed; i < r->n; i++) {
		redisReply *one = node_command(r->peers[i].ctx, "CLUSTER RESET HARD");
		int res = 0;

		cluster_peer_name(&r->peers[i], name, sizeof(name));
		if (!one || one->type == REDIS_REPLY_ERROR)
			res = init_error_set(r->err, one ? -EREMOTEIO : -EIO, "%s: CLUSTER RESET HARD: %s", name,
					     one ? one->str : r->peers[i].ctx->errstr);
		else
			log_info("removed '%s' from the cluster (forgotten by every node, reset)", name);
		freeReplyObject(one);
		if (res < 0)
			return res;
	}
	for (size_t i = 0; i < job->n; i++)
		if (job->plan.nodes[i].step == CLUSTER_STEP_REMOVE && job->nodes[i].failed)
			log_info("forgot the failed node '%.40s'", job->nodes[i].id);
	return 0;
}

static int carry_out(struct cluster_run *r, const struct cluster_reshape_job *job, size_t n_listed)
{
	const struct cluster_reshape *p = &job->plan;
	int res;

	log_info("reshaping: %zu master%s to %zu (%zu new), %u slot%s to move, %zu replica%s to attach, %zu to "
		 "re-point, %zu node%s to remove",
		 p->masters_before, plural(p->masters_before), p->masters_after, p->new_masters, p->slots_moved,
		 plural(p->slots_moved), p->attached, plural(p->attached), p->repointed, p->removed,
		 plural(p->removed));
	res = cluster_meet_and_wait(r);
	if (res == 0)
		res = replicate(r, job, false);
	/* a node that just joined answers CLUSTERDOWN until it is ok, and a target must take MIGRATE's keys */
	if (res == 0 && p->n_moves)
		res = cluster_wait_ok(r, "every node to report cluster_state:ok before slots move");
	if (res == 0)
		res = move_slots(r, job);
	if (res == 0 && p->repointed)
		res = cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);
	if (res == 0)
		res = replicate(r, job, true);
	if (res == 0 && p->removed)
		res = remove_nodes(r, job, n_listed);
	return res;
}

int cluster_reshape_apply(struct cluster_run *r, const struct cluster_reshape_job *job)
{
	struct cluster_reshape_job now = {0};
	size_t n_listed = r->n;
	uint64_t t0 = init_now_usec();
	int res = add_leaving(r, job);

	/* an interrupted run's open slots first; the plan then starts from where that left the cluster */
	if (res == 0 && open_slots(r->peers, r->n)) {
		log_info("finishing the slot moves an earlier run left open");
		res = cluster_fix_open_slots(r);
		if (res == 0)
			res = cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);
		if (res == 0)
			res = plan_job(r, n_listed, job->member, &now);
		if (res == 0)
			job = &now;
	}
	if (res == 0)
		res = carry_out(r, job, n_listed);
	drop_leaving(r, n_listed);
	if (res == 0)
		res = cluster_wait_ok(r, "every node to report cluster_state:ok");
	if (res == 0)
		log_info("reshaped in %.1f s: %zu masters, %u slots moved, %zu node%s removed",
			 (double)(init_now_usec() - t0) / 1e6, job->plan.masters_after, job->plan.slots_moved,
			 job->plan.removed, plural(job->plan.removed));
	cluster_reshape_job_free(&now);
	return res;
}
