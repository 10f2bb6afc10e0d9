/* SPDX-License-Identifier: MIT */
/*
 * `kvinit health --live|--ready`: the probe behind the image's HEALTHCHECK and Kubernetes' exec probes. One line
 * on stdout says why, exit 0 or 1. The password comes from the secret, never from the command line.
 */
#include <errno.h>
#include <hiredis.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "secrets.h"

extern char **environ;

static redisReply *command(redisContext *ctx, const char *cmd)
{
	return redisCommand(ctx, cmd);
}

/*
 * One probe: > 0 healthy, 0 the server answered but is not (yet) healthy, < 0 no answer: the -errno of
 * cluster_connect, -EACCES when the server refused the password. why says which, in one line.
 */
static int probe(const struct node_options *o, bool ready, const struct secrets_value *pw, char *why, size_t size)
{
	char host[64], value[64] = "", role[16];
	struct init_error err = {{0}};
	redisContext *ctx;
	redisReply *reply = NULL;
	int ok = 0, r;

	node_probe_host(o->bind, host, sizeof(host));
	r = cluster_connect(host, (unsigned)o->port, pw, 2000, &ctx, &err);
	if (r < 0) {
		(void)snprintf(why, size, "%s", err.msg);
		return r;
	}
	reply = command(ctx, "PING");
	if (!reply) {
		(void)snprintf(why, size, "no answer to PING from %s:%lld: %s", host, (long long)o->port, ctx->errstr);
		goto out;
	}
	/* Any answer is a live server; -LOADING is one that is not ready yet. */
	if (!ready) {
		(void)snprintf(why, size, "%s:%lld answers PING (%s)", host, (long long)o->port,
			       reply->str ? reply->str : "");
		ok = 1;
		goto out;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		(void)snprintf(why, size, "%s:%lld answers PING with '%s'", host, (long long)o->port, reply->str);
		goto out;
	}
	freeReplyObject(reply);
	reply = NULL;
	if (!o->cluster_enabled && node_replication(o) != NODE_REPL_NONE) {
		ok = node_replication_ready(ctx, host, o->port, why, size);
		goto out;
	}

	reply = command(ctx, o->cluster_enabled ? "INFO replication" : "INFO persistence");
	if (!reply || reply->type != REDIS_REPLY_STRING) {
		(void)snprintf(why, size, "no answer to INFO: %s", reply && reply->str ? reply->str : ctx->errstr);
		goto out;
	}
	if (!o->cluster_enabled) {
		ok = cluster_info_field(reply->str, "loading", value, sizeof(value)) && strcmp(value, "0") == 0;
		(void)snprintf(why, size,
			       ok ? "standalone %s:%lld answers and is not loading"
				  : "standalone %s:%lld is loading its data",
			       host, (long long)o->port);
		goto out;
	}
	if (!cluster_info_field(reply->str, "role", role, sizeof(role)))
		(void)snprintf(role, sizeof(role), "unknown");
	if (strcmp(role, "slave") == 0 &&
	    (!cluster_info_field(reply->str, "master_link_status", value, sizeof(value)) || strcmp(value, "up") != 0)) {
		(void)snprintf(why, size, "replica %s:%lld: master_link_status:%s", host, (long long)o->port, value);
		goto out;
	}
	freeReplyObject(reply);
	reply = command(ctx, "CLUSTER INFO");
	if (!reply || reply->type != REDIS_REPLY_STRING) {
		(void)snprintf(why, size, "no answer to CLUSTER INFO: %s",
			       reply && reply->str ? reply->str : ctx->errstr);
		goto out;
	}
	if (!cluster_info_field(reply->str, "cluster_state", value, sizeof(value)) || strcmp(value, "ok") != 0) {
		(void)snprintf(why, size, "%s %s:%lld: cluster_state:%s",
			       strcmp(role, "slave") == 0 ? "replica" : "master", host, (long long)o->port, value);
		goto out;
	}
	(void)snprintf(why, size, "%s %s:%lld: cluster_state:ok%s", strcmp(role, "slave") == 0 ? "replica" : "master",
		       host, (long long)o->port, strcmp(role, "slave") == 0 ? ", master_link_status:up" : "");
	ok = 1;
out:
	freeReplyObject(reply);
	redisFree(ctx);
	return ok;
}

/*
 * The password to probe with: the current one, and during a rotation the next and previous ones when the server
 * refuses it (it has not taken a new current password yet).
 */
static bool probe_any(const struct node_options *o, bool ready, const struct secrets_password *pw, char *why,
		      size_t size)
{
	struct secrets_paths paths = {0};
	struct secrets_set set = {0};
	struct init_error err;
	int r = probe(o, ready, &pw->value, why, size);

	if (r != -EACCES || !pw->path || secrets_paths_resolve(environ, pw->path, &paths, &err) < 0)
		return r > 0;
	secrets_set_read(&paths, &set);
	for (int i = SECRETS_NEXT; i < SECRETS__SLOTS && r <= 0; i++)
		if (set.error[i] == 0)
			r = probe(o, ready, &set.value[i], why, size);
	secrets_set_wipe(&set);
	secrets_paths_free(&paths);
	return r > 0;
}

int node_health_main(struct node_config *c, char **args)
{
	struct secrets_password pw = {0};
	struct init_error err;
	char why[512];
	bool ready = false, ok;

	for (; *args; args++) {
		if (strcmp(*args, "--ready") == 0) {
			ready = true;
		} else if (strcmp(*args, "--live") == 0) {
			ready = false;
		} else {
			log_error("health: unknown argument '%s' (usage: kvinit health [--live|--ready])", *args);
			return INIT_EXIT_USAGE;
		}
	}
	if (node_sentinel_is_role())
		return node_sentinel_health(c, ready);
	if (secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0) {
		(void)printf("not %s: %s\n", ready ? "ready" : "live", err.msg);
		return 1;
	}
	ok = probe_any(&c->opt, ready, &pw, why, sizeof(why));
	secrets_password_free(&pw);
	(void)printf("%s%s: %s\n", ok ? "" : "not ", ready ? "ready" : "live", why);
	(void)fflush(stdout);
	return ok ? 0 : 1;
}
