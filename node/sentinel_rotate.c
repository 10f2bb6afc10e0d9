/* SPDX-License-Identifier: MIT */
/*
 * Applying a password rotation to the running Sentinel, in a helper process beside it (sentinel.c starts it after
 * every change of the password files), staged like the nodes' (rotate.c): the Sentinel accepts every password of
 * the files first, sends a new one only once every peer takes it (the primary and replicas for auth-pass, the
 * other Sentinels for sentinel-pass), and drops what left the files last.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sentinel.h"

/* ---- applying a rotation (in a helper process) ---- */

/* Says why it waits, at most every REPORT_EVERY_USEC. */
static void report_waiting(uint64_t *last_usec, const char *what, const char *why)
{
	uint64_t now = init_now_usec();

	if (*last_usec && now - *last_usec < REPORT_EVERY_USEC)
		return;
	*last_usec = now;
	log_warn("password rotation: waiting for %s: %s", what, why);
}

/* The local Sentinel, with whichever own password it takes now (none, with ALLOW_EMPTY_PASSWORD). */
static struct node_conn *connect_local(const struct sentinel_run *run)
{
	const struct secrets_rotation *rot = sentinel_own_rotation(run);
	const struct secrets_value *tries[SECRETS_MAX_ACCEPTED + 2 * SECRETS_MAX_ACCEPTED];
	static const struct secrets_value none = {0};
	char host[64], why[256];
	uint64_t reported = 0;
	size_t n = 0;

	for (size_t k = 0; k < rot->n; k++)
		tries[n++] = &rot->entry[secrets_rotation_order(rot, k)].value;
	for (size_t k = 0; k < run->logins.n; k++)
		tries[n++] = &run->logins.value[k];
	if (!n)
		tries[n++] = &none;
	node_probe_host(run->o->bind, host, sizeof(host));
	for (;;) {
		for (size_t k = 0; k < n; k++) {
			struct node_conn *ctx =
				cluster_open(host, (unsigned)run->o->sentinel_port, tries[k], 2000, why, sizeof(why));

			if (ctx)
				return ctx;
		}
		report_waiting(&reported, "this Sentinel", why);
		init_sleep_ms(RETRY_MSEC);
	}
}

/* The Sentinel accepts its own passwords (node_rotate_set_passwords); says why when it does not. */
static int set_passwords(struct node_conn *ctx, const struct secrets_rotation *rot, bool exact)
{
	struct init_error err = {{0}};
	int r = node_rotate_set_passwords(ctx, rot, exact, &err);

	if (r < 0)
		log_error("password rotation: on the Sentinel: %s", err.msg);
	return r;
}

/* A value of a flat key/value reply (SENTINEL MASTER, and each element of SENTINEL REPLICAS and SENTINELS). */
static const char *reply_field(const redisReply *map, const char *key)
{
	if (!map || map->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < map->elements; i += 2)
		if (map->element[i]->type == REDIS_REPLY_STRING && strcmp(map->element[i]->str, key) == 0 &&
		    map->element[i + 1]->type == REDIS_REPLY_STRING)
			return map->element[i + 1]->str;
	return NULL;
}

/* A peer that is there to ask: not down, not disconnected (a gone peer would hold the rotation forever). */
static bool add_peer(const redisReply *map, struct cluster_addr *peers, size_t *n, size_t max)
{
	const char *ip = reply_field(map, "ip"), *port = reply_field(map, "port"), *flags = reply_field(map, "flags");

	if (!ip || !port || *n == max || (flags && (strstr(flags, "s_down") || strstr(flags, "disconnected"))))
		return false;
	(void)snprintf(peers[*n].host, sizeof(peers[*n].host), "%s", ip);
	peers[(*n)++].port = (unsigned)strtoul(port, NULL, 10);
	return true;
}

/* The primary and its replicas (nodes), or the other Sentinels, as this Sentinel knows them now. */
static size_t list_peers(struct node_conn *ctx, const char *set, bool nodes, struct cluster_addr *peers, size_t max)
{
	redisReply *rep;
	size_t n = 0;

	if (nodes) {
		rep = node_command(ctx, "SENTINEL MASTER %s", set);
		(void)add_peer(rep, peers, &n, max);
		freeReplyObject(rep);
	}
	rep = node_command(ctx, nodes ? "SENTINEL REPLICAS %s" : "SENTINEL SENTINELS %s", set);
	for (size_t i = 0; rep && rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++)
		(void)add_peer(rep->element[i], peers, &n, max);
	freeReplyObject(rep);
	return n;
}

/* Waits until every peer (nodes or Sentinels) takes pw, so this Sentinel can start sending it. */
static void wait_peers_accept(struct node_conn *ctx, const char *set, bool nodes, const struct secrets_value *pw,
			      const char *hash)
{
	struct cluster_addr peers[64];
	char why[256], what[NODE_HOST_MAX + 96];
	uint64_t reported = 0;

	for (;;) {
		size_t n = list_peers(ctx, set, nodes, peers, sizeof(peers) / sizeof(peers[0])), i;

		for (i = 0; i < n; i++) {
			struct node_conn *peer = cluster_open(peers[i].host, peers[i].port, pw, 1000, why, sizeof(why));

			if (!peer)
				break;
			node_conn_free(peer);
		}
		if (i == n)
			return;
		(void)snprintf(what, sizeof(what), "%s %s:%u to accept #%.8s", nodes ? "node" : "Sentinel",
			       peers[i].host, peers[i].port, hash);
		report_waiting(&reported, what, why);
		init_sleep_ms(RETRY_MSEC);
	}
}

static int send_set(struct node_conn *ctx, const char *what, redisReply *reply)
{
	int r = 0;

	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		log_error("password rotation: %s failed: %s", what, reply ? reply->str : ctx->errstr);
		r = -EIO;
	}
	freeReplyObject(reply);
	return r;
}

int node_sentinel_rotate_apply(void *userdata)
{
	const struct sentinel_run *run = userdata;
	const struct secrets_rotation *own = sentinel_own_rotation(run), *data = &run->setup->rotation;
	const char *set = run->o->master_set;
	struct node_conn *ctx = connect_local(run);
	int r = 0;

	/* 1. accept every own password of the files */
	if (own->n)
		r = set_passwords(ctx, own, false);
	/* 2. send the new ones once the peers take them */
	if (r == 0 && own->n) {
		wait_peers_accept(ctx, set, false, sentinel_current(own), own->entry[own->current].hash);
		r = send_set(ctx, "SENTINEL CONFIG SET sentinel-pass",
			     node_command(ctx, "SENTINEL CONFIG SET sentinel-pass %b", sentinel_current(own)->data,
					  sentinel_current(own)->len));
	}
	if (r == 0 && data->n) {
		wait_peers_accept(ctx, set, true, sentinel_current(data), data->entry[data->current].hash);
		r = send_set(ctx, "SENTINEL SET auth-pass",
			     node_command(ctx, "SENTINEL SET %s auth-pass %b", set, sentinel_current(data)->data,
					  sentinel_current(data)->len));
		if (r == 0)
			log_info("password rotation: the Sentinel sends #%.8s to the nodes (every node accepts it)",
				 data->entry[data->current].hash);
	}
	/* 3. accept only what is still in the files (or in its grace period) */
	if (r == 0 && own->n)
		r = set_passwords(ctx, own, true);
	node_conn_free(ctx);
	return r < 0 ? 1 : 0;
}
