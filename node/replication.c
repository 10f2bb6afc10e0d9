/* SPDX-License-Identifier: MIT */
/*
 * The node in replication mode (REDIS_CLUSTER_ENABLED=no, REDIS_REPLICATION_MODE=primary|replica): one primary,
 * its replicas, and Sentinels that watch them and promote a replica when the primary is gone.
 *
 * The environment names the primary a deployment starts with; after a failover it is stale. So a node that knows
 * Sentinels asks them at start who the primary is now, and their answer wins: the old primary comes back as a
 * replica of the new one instead of as a second primary whose writes would be thrown away. On stop, a primary
 * hands over first (SENTINEL FAILOVER), as a cluster master hands its slots to a replica (failover.c): a plain
 * SIGTERM leaves the set without a primary until the Sentinels call it down (down-after-milliseconds) and elect a
 * leader.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "replication.h"

/* How long a node with data waits for a Sentinel to answer at start before it trusts the environment. */
#define DISCOVER_WAIT_USEC  (5 * USEC_PER_SEC)
#define SENTINEL_TIMEOUT_MS 1000

enum node_replication node_replication(const struct node_options *o)
{
	/* node_replication_mode_names: none, primary, replica, master, slave */
	static const enum node_replication modes[] = {NODE_REPL_NONE, NODE_REPL_PRIMARY, NODE_REPL_REPLICA,
						      NODE_REPL_PRIMARY, NODE_REPL_REPLICA};

	return o->replication_mode >= 0 && (size_t)o->replication_mode < sizeof(modes) / sizeof(modes[0])
		       ? modes[o->replication_mode]
		       : NODE_REPL_NONE;
}

/* The directives replication mode renders: REDIS_EXTRA_FLAGS setting them again would undo it. */
static const char *const replication_directives[] = {
	"replicaof",	       "slaveof", "replica-announce-ip", "replica-announce-port", "slave-announce-ip",
	"slave-announce-port", NULL,
};

int node_replication_check_settings(const struct node_options *o, struct init_error *err)
{
	enum node_replication mode = node_replication(o);
	const char *name = node_replication_mode_names[o->replication_mode];
	_cleanup_(node_extra_flags_free) struct node_extra_flags x = {0};
	_cleanup_free_ struct cluster_addr *sentinels = NULL;
	size_t n = 0;
	int r;

	if (mode == NODE_REPL_NONE)
		return 0;
	if (o->cluster_enabled)
		return init_error_set(err, -EINVAL,
				      "REDIS_REPLICATION_MODE='%s': needs REDIS_CLUSTER_ENABLED=no (a cluster node's "
				      "role comes from the cluster)",
				      name);
	if (mode == NODE_REPL_REPLICA && !*o->primary_host)
		return init_error_set(
			err, -EINVAL,
			"REDIS_REPLICATION_MODE='%s': needs REDIS_PRIMARY_HOST (alias REDIS_MASTER_HOST), "
			"the primary to replicate from",
			name);
	if (*o->sentinel_nodes) {
		r = cluster_parse_nodes(o->sentinel_nodes, "REDIS_SENTINEL_NODES", (unsigned)o->sentinel_port,
					&sentinels, &n, err);
		if (r < 0)
			return r;
	}
	/* the option's own check parsed REDIS_EXTRA_FLAGS already: this cannot fail but for memory */
	r = node_extra_flags_parse(o->extra_flags, &x, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < x.n; i++)
		for (size_t k = 0; replication_directives[k]; k++)
			if (strncmp(x.tokens[i], "--", 2) == 0 &&
			    strcmp(x.tokens[i] + 2, replication_directives[k]) == 0)
				return init_error_set(err, -EINVAL,
						      "REDIS_EXTRA_FLAGS='%.200s': '%s' is set by kvinit itself in "
						      "replication mode: use REDIS_PRIMARY_HOST, REDIS_REPLICA_IP or "
						      "REDIS_REPLICA_PORT",
						      o->extra_flags, x.tokens[i]);
	return 0;
}

/* ---- talking to the Sentinels ---- */

int node_sentinel_passwords(const struct node_options *o, const struct secrets_value *data, struct secrets_set *ret_set,
			    struct init_error *err)
{
	char *const no_env[] = {NULL};
	struct secrets_paths paths = {0};
	struct secrets_set set = {0};
	char shown[320];
	int r;

	if (!*o->sentinel_password_file) {
		set.error[SECRETS_NEXT] = set.error[SECRETS_PREVIOUS] = -ENOENT;
		if (data && data->data && secrets_value_copy(data->data, data->len, &set.value[SECRETS_CURRENT]) < 0)
			return init_error_set(err, -ENOMEM, "out of memory");
		*ret_set = set;
		return 0;
	}
	/* the rotation files beside it: <file>_next and <file>_previous (no variables of their own) */
	r = secrets_paths_resolve(no_env, o->sentinel_password_file, &paths, err);
	if (r < 0)
		return r;
	secrets_set_read(&paths, &set);
	secrets_paths_free(&paths);
	r = set.error[SECRETS_CURRENT];
	if (r < 0) {
		secrets_set_wipe(&set);
		init_escape_control(shown, sizeof(shown), o->sentinel_password_file);
		return init_error_set(err, r == -ENOMEM ? r : -EINVAL, "REDIS_SENTINEL_PASSWORD_FILE='%s': %s", shown,
				      secrets_strerror(r));
	}
	*ret_set = set;
	return 0;
}

/* A Sentinel, authenticated with whichever of the passwords it takes (a rotation may be under way). */
struct node_conn *node_sentinel_connect(const struct cluster_addr *a, const struct secrets_set *pws, char *why,
					size_t size)
{
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		struct node_conn *ctx;

		if (pws->error[i] < 0 || (i != SECRETS_CURRENT && !pws->value[i].data))
			continue;
		ctx = cluster_open(a->host, a->port, &pws->value[i], SENTINEL_TIMEOUT_MS, why, size);
		if (ctx)
			return ctx;
	}
	return NULL;
}

/* SENTINEL GET-MASTER-ADDR-BY-NAME: 1 with the address, 0 when the Sentinel knows no such set, -EIO. */
static int get_primary(struct node_conn *ctx, const char *set, struct cluster_addr *ret)
{
	redisReply *rep = node_command(ctx, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", set);
	int r = -EIO;

	if (rep && rep->type == REDIS_REPLY_NIL) {
		r = 0;
	} else if (rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
		   rep->element[0]->type == REDIS_REPLY_STRING && rep->element[1]->type == REDIS_REPLY_STRING &&
		   rep->element[0]->len < sizeof(ret->host)) {
		(void)snprintf(ret->host, sizeof(ret->host), "%s", rep->element[0]->str);
		ret->port = (unsigned)strtoul(rep->element[1]->str, NULL, 10);
		r = 1;
	}
	freeReplyObject(rep);
	return r;
}

struct vote {
	struct cluster_addr addr;
	unsigned votes;
};

/*
 * Asks every Sentinel once. Returns 1 with the primary most of them name, 0 when none names one; *ret_answered
 * is how many answered at all (knowing the set or not).
 */
int node_sentinels_ask(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
		       const struct secrets_set *pws, struct cluster_addr *ret, size_t *ret_answered)
{
	_cleanup_free_ struct vote *votes = calloc(n ? n : 1, sizeof(*votes));
	size_t n_votes = 0, answered = 0, best = 0;
	char why[256];

	if (!votes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		struct node_conn *ctx = node_sentinel_connect(&sentinels[i], pws, why, sizeof(why));
		struct cluster_addr a;
		size_t k;
		int r;

		if (!ctx) {
			log_debug("sentinel '%s:%u': %s", sentinels[i].host, sentinels[i].port, why);
			continue;
		}
		r = get_primary(ctx, o->master_set, &a);
		node_conn_free(ctx);
		if (r < 0)
			continue;
		answered++;
		if (r == 0)
			continue;
		for (k = 0; k < n_votes; k++)
			if (strcmp(votes[k].addr.host, a.host) == 0 && votes[k].addr.port == a.port)
				break;
		if (k == n_votes)
			votes[n_votes++].addr = a;
		votes[k].votes++;
	}
	*ret_answered = answered;
	if (!n_votes)
		return 0;
	for (size_t k = 1; k < n_votes; k++)
		if (votes[k].votes > votes[best].votes)
			best = k;
	*ret = votes[best].addr;
	return 1;
}

/* Whether an address of host is one of this machine's (it can be bound), so the Sentinels' answer names us. */
static bool host_is_local(const char *host)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	bool local = false;

	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	for (const struct addrinfo *ai = res; ai && !local; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

		/* port 0 in the resolved address: only whether the address is ours counts */
		local = fd >= 0 && bind(fd, ai->ai_addr, ai->ai_addrlen) == 0;
		if (fd >= 0)
			(void)close(fd);
	}
	freeaddrinfo(res);
	return local;
}

bool node_replication_is_me(const struct node_options *o, const struct cluster_addr *a)
{
	/* the Sentinels name the port replicas and clients reach: the TLS port with TLS (tls-replication) */
	if (a->port != node_client_port(o) && (!o->replica_port || a->port != (unsigned)o->replica_port))
		return false;
	return (*o->replica_ip && strcmp(a->host, o->replica_ip) == 0) || host_is_local(a->host);
}

/* Data from an earlier life: such a node must not start from a stale environment if a Sentinel can be asked. */
static bool has_data(const char *dir)
{
	static const char *const files[] = {"dump.rdb", "appendonlydir", "appendonly.aof", NULL};
	char path[4096];

	for (size_t i = 0; files[i]; i++) {
		(void)snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
		if (access(path, F_OK) == 0)
			return true;
	}
	return false;
}

int node_replication_discover(struct node_setup *s, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	const struct secrets_rotation *rot = &s->rotation;
	enum node_replication mode = node_replication(o);
	_cleanup_free_ struct cluster_addr *sentinels = NULL;
	struct secrets_set pws = {0};
	struct cluster_addr primary;
	uint64_t until;
	size_t n = 0, answered = 0;
	int r;

	if (mode == NODE_REPL_NONE || !*o->sentinel_nodes)
		return 0;
	r = cluster_parse_nodes(o->sentinel_nodes, "REDIS_SENTINEL_NODES", (unsigned)o->sentinel_port, &sentinels, &n,
				err);
	if (r == 0)
		r = node_sentinel_passwords(o, rot->n ? &rot->entry[rot->current].value : NULL, &pws, err);
	if (r < 0)
		return r;
	until = init_now_usec() + (has_data(o->data_dir) ? DISCOVER_WAIT_USEC : 0);
	for (;;) {
		r = node_sentinels_ask(o, sentinels, n, &pws, &primary, &answered);
		if (r != 0 || answered || init_now_usec() >= until)
			break;
		init_sleep_ms(250);
	}
	secrets_set_wipe(&pws);
	if (r < 0)
		return init_error_set(err, r, "out of memory");
	if (r == 0) {
		log_warn("%s '%s': starting as %s from the environment",
			 answered ? "none of the Sentinels knows" : "no Sentinel answered about", o->master_set,
			 mode == NODE_REPL_REPLICA ? "a replica" : "the primary");
		return 0;
	}
	if (node_replication_is_me(o, &primary)) {
		s->replicaof_host[0] = '\0';
		s->replicaof_port = 0;
		log_info("the Sentinels name this node ('%s:%u') the primary of '%s'", primary.host, primary.port,
			 o->master_set);
		return 0;
	}
	if (mode == NODE_REPL_PRIMARY || strcmp(primary.host, s->replicaof_host) != 0 ||
	    primary.port != s->replicaof_port)
		log_info("the Sentinels name '%s:%u' the primary of '%s' (the environment says %s): starting as its "
			 "replica",
			 primary.host, primary.port, o->master_set,
			 mode == NODE_REPL_PRIMARY ? "this node" : "otherwise");
	(void)snprintf(s->replicaof_host, sizeof(s->replicaof_host), "%s", primary.host);
	s->replicaof_port = primary.port;
	return 0;
}

/* ---- health ---- */

int node_replication_ready(struct node_conn *ctx, const char *host, long long port, char *why, size_t size)
{
	redisReply *rep = node_command(ctx, "INFO");
	char role[16], link[16] = "?", loading[8];
	int ok = 0;

	if (!rep || rep->type != REDIS_REPLY_STRING) {
		(void)snprintf(why, size, "no answer to INFO: %s", rep && rep->str ? rep->str : ctx->errstr);
	} else if (cluster_info_field(rep->str, "loading", loading, sizeof(loading)) && strcmp(loading, "0") != 0) {
		(void)snprintf(why, size, "%s:%lld is loading its data", host, port);
	} else if (!cluster_info_field(rep->str, "role", role, sizeof(role))) {
		(void)snprintf(why, size, "%s:%lld: no role in INFO", host, port);
	} else if (strcmp(role, "master") == 0) {
		(void)snprintf(why, size, "primary %s:%lld", host, port);
		ok = 1;
	} else {
		(void)cluster_info_field(rep->str, "master_link_status", link, sizeof(link));
		ok = strcmp(link, "up") == 0;
		(void)snprintf(why, size, "replica %s:%lld: master_link_status:%s", host, port, link);
	}
	freeReplyObject(rep);
	return ok;
}
