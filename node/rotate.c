/* SPDX-License-Identifier: MIT */
/*
 * Applying a password rotation to the running server, in a helper process beside it (node.c starts it after every
 * change of the password files and stops it when a newer change makes it stale). Three steps, each safe to repeat:
 *   1. the default user gets every accepted password, so the new one works before anyone is told to send it;
 *   2. masterauth becomes the current password, but only once every replication peer accepts it: this node's
 *      master, and on a master its replicas (any of them may be its master after a failover), so a replication
 *      link that reconnects never meets a password its master does not know yet;
 *   3. the default user keeps exactly the accepted passwords: what left the files (see secrets/rotation.c) goes.
 * Client connections are never touched: one authenticated with a password that is dropped stays open.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

#define ROTATE_RETRY_MSEC   200
#define ROTATE_REPORT_EVERY (10 * USEC_PER_SEC)

/* Says why it waits, at most every ROTATE_REPORT_EVERY. */
static void report_waiting(uint64_t *last_usec, const char *who, const char *what, const char *why)
{
	uint64_t now = init_now_usec();

	if (*last_usec && now - *last_usec < ROTATE_REPORT_EVERY)
		return;
	*last_usec = now;
	log_warn("%s: waiting for %s: %s", who, what, why);
}

struct node_conn *node_rotate_connect(const struct node_options *o, const struct secrets_rotation *rot,
				      const struct secrets_value *login, size_t n_login, const char *who)
{
	static const struct secrets_value none = {0};
	struct init_error why = {{0}};
	uint64_t reported = 0;
	char host[64];

	node_probe_host(o->bind, host, sizeof(host));
	for (;;) {
		/* ALLOW_EMPTY_PASSWORD: no password at all, the one try */
		for (size_t k = 0; k < rot->n + n_login || (k == 0 && rot->n + n_login == 0); k++) {
			const struct secrets_value *pw = k < rot->n ? &rot->entry[secrets_rotation_order(rot, k)].value
							 : n_login  ? &login[k - rot->n]
								    : &none;
			struct node_conn *ctx;

			if (cluster_connect(host, node_client_port(o), pw, 2000, &ctx, &why) == 0)
				return ctx;
		}
		report_waiting(&reported, who, "this node's server", why.msg);
		init_sleep_ms(ROTATE_RETRY_MSEC);
	}
}

int node_rotate_set_passwords(struct node_conn *ctx, const struct secrets_rotation *rot, bool exact,
			      struct init_error *err)
{
	const char *argv[3 + 1 + SECRETS_MAX_ACCEPTED];
	char rules[SECRETS_MAX_ACCEPTED][66];
	redisReply *reply;
	int argc = 0, r = 0;

	argv[argc++] = "ACL";
	argv[argc++] = "SETUSER";
	argv[argc++] = "default";
	if (exact)
		argv[argc++] = "resetpass";
	for (size_t i = 0; i < rot->n; i++) {
		(void)snprintf(rules[i], sizeof(rules[i]), "#%s", rot->entry[i].hash);
		argv[argc++] = rules[i];
	}
	reply = node_command_argv(ctx, argc, argv, NULL);
	if (!reply || reply->type == REDIS_REPLY_ERROR)
		r = init_error_set(err, reply ? -EREMOTEIO : -EIO, "ACL SETUSER default failed: %s",
				   reply ? reply->str : ctx->errstr);
	freeReplyObject(reply);
	return r;
}

static bool masterauth_is(struct node_conn *ctx, const struct secrets_value *pw)
{
	redisReply *reply = node_command(ctx, "CONFIG GET masterauth");
	bool same = reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
		    reply->element[1]->type == REDIS_REPLY_STRING && reply->element[1]->len == pw->len &&
		    memcmp(reply->element[1]->str, pw->data, pw->len) == 0;

	freeReplyObject(reply);
	return same;
}

/* Does host:port take pw? why says what it answered when not. */
static bool peer_accepts(const char *host, unsigned port, const struct secrets_value *pw, struct init_error *why)
{
	struct node_conn *ctx;

	if (cluster_connect(host, port, pw, 1000, &ctx, why) < 0)
		return false;
	node_conn_free(ctx);
	return true;
}

/*
 * The first replication peer that does not take pw, as "host:port" in who, or false when all do. Peers come from
 * INFO replication: master_host/master_port on a replica, slaveN:ip=..,port=.. on a master.
 */
static bool find_refusing_peer(struct node_conn *ctx, const struct secrets_value *pw, char *who, size_t who_size,
			       struct init_error *why)
{
	redisReply *reply = node_command(ctx, "INFO replication");
	struct cluster_replica replicas[64];
	char host[CLUSTER_HOST_MAX], port[16];
	bool refusing = false;
	size_t n;

	if (!reply || reply->type != REDIS_REPLY_STRING) {
		(void)snprintf(who, who_size, "this node");
		(void)init_error_set(why, -EIO, "INFO replication: %s", reply && reply->str ? reply->str : ctx->errstr);
		freeReplyObject(reply);
		return true;
	}
	if (cluster_info_field(reply->str, "master_host", host, sizeof(host)) &&
	    cluster_info_field(reply->str, "master_port", port, sizeof(port)) &&
	    !peer_accepts(host, (unsigned)atoi(port), pw, why)) {
		(void)snprintf(who, who_size, "its master %s:%s", host, port);
		refusing = true;
	}
	n = cluster_info_replicas(reply->str, replicas, sizeof(replicas) / sizeof(replicas[0]));
	for (size_t i = 0; i < n && !refusing; i++) {
		if (!peer_accepts(replicas[i].ip, replicas[i].port, pw, why)) {
			(void)snprintf(who, who_size, "its replica %.*s:%u", CLUSTER_HOST_MAX - 1, replicas[i].ip,
				       replicas[i].port);
			refusing = true;
		}
	}
	freeReplyObject(reply);
	return refusing;
}

static int switch_masterauth(struct node_conn *ctx, const struct secrets_value *pw, const char *hash,
			     struct init_error *err)
{
	char who[CLUSTER_HOST_MAX + 32], what[CLUSTER_HOST_MAX + 96];
	struct init_error why = {{0}};
	uint64_t reported = 0;
	redisReply *reply;
	int r = 0;

	if (masterauth_is(ctx, pw))
		return 0;
	while (find_refusing_peer(ctx, pw, who, sizeof(who), &why)) {
		(void)snprintf(what, sizeof(what), "%s to accept #%.8s before masterauth switches", who, hash);
		report_waiting(&reported, "password rotation", what, why.msg);
		init_sleep_ms(ROTATE_RETRY_MSEC);
	}
	reply = node_command(ctx, "CONFIG SET masterauth %b", pw->data, pw->len);
	if (!reply || reply->type == REDIS_REPLY_ERROR)
		r = init_error_set(err, reply ? -EREMOTEIO : -EIO, "CONFIG SET masterauth failed: %s",
				   reply ? reply->str : ctx->errstr);
	else
		log_info("password rotation: masterauth is #%.8s (every replication peer accepts it)", hash);
	freeReplyObject(reply);
	return r;
}

int node_rotate_apply(const struct node_options *o, const struct secrets_rotation *rot,
		      const struct secrets_value *login, size_t n_login)
{
	const struct secrets_accepted *cur;
	struct init_error err = {{0}};
	struct node_conn *ctx;
	int r;

	if (rot->n == 0) {
		log_error("password rotation: no accepted password to apply");
		return -ENOENT;
	}
	cur = &rot->entry[rot->current];
	ctx = node_rotate_connect(o, rot, login, n_login, "password rotation");
	r = node_rotate_set_passwords(ctx, rot, false, &err);
	if (r == 0)
		r = switch_masterauth(ctx, &cur->value, cur->hash, &err);
	if (r == 0)
		r = node_rotate_set_passwords(ctx, rot, true, &err);
	node_conn_free(ctx);
	if (r < 0)
		log_error("password rotation: %s", err.msg);
	return r;
}
