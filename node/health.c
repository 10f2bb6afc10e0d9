/* SPDX-License-Identifier: MIT */
/*
 * `kvinit health --live|--ready`: the probe behind the image's HEALTHCHECK and Kubernetes' exec probes. One line
 * on stdout says why, exit 0 or 1. The password comes from the secret, never from the command line.
 * --live: the server answers. --ready: it is not loading, a replica's master link is up, cluster_state is ok, and
 * the node is what its peers see (check_view).
 */
#include <errno.h>
#include "conn.h"
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "secrets.h"

extern char **environ;

static redisReply *command(struct node_conn *ctx, const char *cmd)
{
	return node_command(ctx, cmd);
}

#define PEER_TIMEOUT_MS 300 /* a peer that does not answer within this is not asked */
#define PEERS_ASKED	2   /* each of them that answers must agree */

/*
 * Ready also means: this node is what its peers see (issue 12). It serves slots or replicates a master; with no
 * announce address of the user's it announces one of its own; and each of the first two peers asked (its master
 * first, then masters with slots) that answers knows it at that address and flags it neither fail nor pfail. Two,
 * not one: a peer that hears from the node on the node's own link may have cleared a FAIL the others keep. 1 yes,
 * 0 no (why says which). No peer answering is no verdict: cluster_state:ok says the node reached a majority a
 * moment ago.
 */
static int check_view(struct node_conn *ctx, const struct node_options *o, const struct secrets_value *pw,
		      const char *host, char *why, size_t size)
{
	_cleanup_free_ struct cluster_self_view *v = calloc(1, sizeof(*v));
	char ip[CLUSTER_HOST_MAX], how[512];
	struct init_error err = {{0}};
	redisReply *reply;
	unsigned port;
	int r;

	if (!v) {
		(void)snprintf(why, size, "out of memory");
		return 0;
	}
	reply = command(ctx, "CLUSTER NODES");
	r = reply && reply->type == REDIS_REPLY_STRING ? cluster_view_self(reply->str, v, &err) : -EIO;
	if (r == 0)
		cluster_tls_learn_nodes(reply->str);
	if (r < 0)
		(void)snprintf(why, size, "CLUSTER NODES of %s:%lld: %.300s", host, (long long)node_client_port(o),
			       r == -EIO ? (reply && reply->str ? reply->str : ctx->errstr) : err.msg);
	freeReplyObject(reply);
	if (r < 0)
		return 0;
	if (v->self.is_master && !v->self.nslots) {
		(void)snprintf(why, size, "master %s:%lld serves no slots and replicates no master", host,
			       (long long)node_client_port(o));
		return 0;
	}
	/* an address of the user's (NAT, published ports) need not be on an interface here */
	if (!*o->announce_ip && cluster_addr_split(v->self.addr, ip, sizeof(ip), &port) && *ip &&
	    node_address_is_local(ip) == 0) {
		(void)snprintf(why, size, "%s:%lld announces '%s', which is not an address of this host", host,
			       (long long)node_client_port(o), ip);
		return 0;
	}
	for (size_t i = 0; i < v->n_ask && i < PEERS_ASKED; i++) {
		const struct cluster_addr *peer = &v->ask[i];
		struct node_conn *pctx;

		if (cluster_connect(peer->host, peer->port, pw, PEER_TIMEOUT_MS, &pctx, &err) < 0)
			continue;
		reply = command(pctx, "CLUSTER NODES");
		r = reply && reply->type == REDIS_REPLY_STRING
			    ? cluster_view_check_peer(reply->str, &v->self, how, sizeof(how), &err)
			    : -EIO;
		freeReplyObject(reply);
		node_conn_free(pctx);
		if (r == 0) {
			(void)snprintf(why, size, "peer %.100s:%u %.300s", peer->host, peer->port, how);
			return 0;
		}
	}
	return 1;
}

/*
 * One probe: > 0 healthy, 0 the server answered but is not (yet) healthy, < 0 no answer: the -errno of
 * cluster_connect, -EACCES when the server refused the password. why says which, in one line.
 */
static int probe(const struct node_options *o, bool ready, const struct secrets_value *pw, char *why, size_t size)
{
	char host[64], value[64] = "", role[16];
	struct init_error err = {{0}};
	struct node_conn *ctx;
	redisReply *reply = NULL;
	int ok = 0, r;

	node_probe_host(o->bind, host, sizeof(host));
	r = cluster_connect(host, node_client_port(o), pw, 2000, &ctx, &err);
	if (r < 0) {
		(void)snprintf(why, size, "%s", err.msg);
		return r;
	}
	reply = command(ctx, "PING");
	if (!reply) {
		(void)snprintf(why, size, "no answer to PING from %s:%lld: %s", host, (long long)node_client_port(o),
			       ctx->errstr);
		goto out;
	}
	/* Any answer is a live server; -LOADING is one that is not ready yet. */
	if (!ready) {
		(void)snprintf(why, size, "%s:%lld answers PING (%s)", host, (long long)node_client_port(o),
			       reply->str ? reply->str : "");
		ok = 1;
		goto out;
	}
	if (reply->type == REDIS_REPLY_ERROR) {
		(void)snprintf(why, size, "%s:%lld answers PING with '%s'", host, (long long)node_client_port(o),
			       reply->str);
		goto out;
	}
	freeReplyObject(reply);
	reply = NULL;
	if (!o->cluster_enabled && node_replication(o) != NODE_REPL_NONE) {
		ok = node_replication_ready(ctx, host, node_client_port(o), why, size);
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
			       host, (long long)node_client_port(o));
		goto out;
	}
	if (!cluster_info_field(reply->str, "role", role, sizeof(role)))
		(void)snprintf(role, sizeof(role), "unknown");
	if (strcmp(role, "slave") == 0 &&
	    (!cluster_info_field(reply->str, "master_link_status", value, sizeof(value)) || strcmp(value, "up") != 0)) {
		(void)snprintf(why, size, "replica %s:%lld: master_link_status:%s", host,
			       (long long)node_client_port(o), value);
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
			       strcmp(role, "slave") == 0 ? "replica" : "master", host, (long long)node_client_port(o),
			       value);
		goto out;
	}
	if (!check_view(ctx, o, pw, host, why, size))
		goto out;
	(void)snprintf(why, size, "%s %s:%lld: cluster_state:ok%s", strcmp(role, "slave") == 0 ? "replica" : "master",
		       host, (long long)node_client_port(o),
		       strcmp(role, "slave") == 0 ? ", master_link_status:up" : "");
	ok = 1;
out:
	freeReplyObject(reply);
	node_conn_free(ctx);
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
	if (secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0 ||
	    node_tls_client_setup(&c->opt, NULL, &err) < 0) {
		(void)printf("not %s: %s\n", ready ? "ready" : "live", err.msg);
		secrets_password_free(&pw);
		return 1;
	}
	ok = probe_any(&c->opt, ready, &pw, why, sizeof(why));
	secrets_password_free(&pw);
	(void)printf("%s%s: %s\n", ok ? "" : "not ", ready ? "ready" : "live", why);
	(void)fflush(stdout);
	return ok ? 0 : 1;
}
