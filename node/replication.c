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

#include "cluster.h"

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
static redisContext *sentinel_connect(const struct cluster_addr *a, const struct secrets_set *pws, char *why,
				      size_t size)
{
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		redisContext *ctx;

		if (pws->error[i] < 0 || (i != SECRETS_CURRENT && !pws->value[i].data))
			continue;
		ctx = cluster_open(a->host, a->port, &pws->value[i], SENTINEL_TIMEOUT_MS, why, size);
		if (ctx)
			return ctx;
	}
	return NULL;
}

/* SENTINEL GET-MASTER-ADDR-BY-NAME: 1 with the address, 0 when the Sentinel knows no such set, -EIO. */
static int get_primary(redisContext *ctx, const char *set, struct cluster_addr *ret)
{
	redisReply *rep = redisCommand(ctx, "SENTINEL GET-MASTER-ADDR-BY-NAME %s", set);
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
static int ask_sentinels(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
			 const struct secrets_set *pws, struct cluster_addr *ret, size_t *ret_answered)
{
	_cleanup_free_ struct vote *votes = calloc(n ? n : 1, sizeof(*votes));
	size_t n_votes = 0, answered = 0, best = 0;
	char why[256];

	if (!votes)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		redisContext *ctx = sentinel_connect(&sentinels[i], pws, why, sizeof(why));
		struct cluster_addr a;
		size_t k;
		int r;

		if (!ctx) {
			log_debug("sentinel '%s:%u': %s", sentinels[i].host, sentinels[i].port, why);
			continue;
		}
		r = get_primary(ctx, o->master_set, &a);
		redisFree(ctx);
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

static bool is_me(const struct node_options *o, const struct cluster_addr *a)
{
	if (a->port != (unsigned)o->port && (!o->replica_port || a->port != (unsigned)o->replica_port))
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
		r = ask_sentinels(o, sentinels, n, &pws, &primary, &answered);
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
	if (is_me(o, &primary)) {
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

int node_replication_ready(struct redisContext *ctx, const char *host, long long port, char *why, size_t size)
{
	redisReply *rep = redisCommand(ctx, "INFO");
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

/* ---- the handover on stop ---- */

/* The online replicas in a primary's INFO replication: "slave0:ip=10.0.0.5,port=6379,state=online,...". */
static size_t online_replicas(const char *info, struct cluster_addr *ret, size_t max)
{
	size_t n = 0;

	for (const char *p = strstr(info, "\nslave"); p && n < max; p = strstr(p + 1, "\nslave")) {
		char ip[NODE_HOST_MAX], state[16];
		unsigned port;

		if (sscanf(p, "\nslave%*u:ip=%255[^,],port=%u,state=%15[^,]", ip, &port, state) != 3 ||
		    strcmp(state, "online") != 0)
			continue;
		(void)snprintf(ret[n].host, sizeof(ret[n].host), "%s", ip);
		ret[n++].port = port;
	}
	return n;
}

static long long info_number(redisContext *ctx, const char *field)
{
	redisReply *rep = redisCommand(ctx, "INFO replication");
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
static size_t wait_caught_up(redisContext *self, const struct cluster_addr *replicas, size_t n,
			     const struct secrets_value *pw, uint64_t until)
{
	long long want = info_number(self, "master_repl_offset");
	size_t done = 0;
	char why[256];

	for (size_t i = 0; i < n; i++) {
		redisContext *ctx = cluster_open(replicas[i].host, replicas[i].port, pw, 500, why, sizeof(why));

		while (ctx && info_number(ctx, "slave_repl_offset") < want && init_now_usec() < until)
			init_sleep_ms(2);
		if (ctx && info_number(ctx, "slave_repl_offset") >= want)
			done++;
		else
			log_warn("failover: replica '%s:%u' is not caught up with offset '%lld'%s%s", replicas[i].host,
				 replicas[i].port, want, ctx ? "" : ": ", ctx ? "" : why);
		if (ctx)
			redisFree(ctx);
	}
	return done;
}

/* SENTINEL FAILOVER on the first Sentinel that takes it; its index, or -1. */
static int ask_failover(const struct node_options *o, const struct cluster_addr *sentinels, size_t n,
			const struct secrets_set *pws)
{
	char why[256];

	for (size_t i = 0; i < n; i++) {
		redisContext *ctx = sentinel_connect(&sentinels[i], pws, why, sizeof(why));
		redisReply *rep = ctx ? redisCommand(ctx, "SENTINEL FAILOVER %s", o->master_set) : NULL;
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
			redisFree(ctx);
		if (ok)
			return (int)i;
	}
	return -1;
}

static void pause_writes(redisContext *ctx, long long ms)
{
	redisReply *rep = redisCommand(ctx, "CLIENT PAUSE %lld WRITE", ms);

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
static int master_state(redisContext *ctx, const char *set, struct cluster_addr *ret)
{
	redisReply *rep = redisCommand(ctx, "SENTINEL MASTER %s", set);
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
	redisContext *ctx;
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
				links[i].ctx = sentinel_connect(&sentinels[i], pws, why, sizeof(why));
			r = links[i].ctx ? master_state(links[i].ctx, o->master_set, &a) : -EIO;
			if (r < 0 && links[i].ctx) {
				redisFree(links[i].ctx);
				links[i].ctx = NULL;
			}
			if (r < 0)
				continue;
			answered++;
			if (r == 1 && !is_me(o, &a) &&
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
			redisFree(links[i].ctx);
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
	redisContext *self = NULL;
	redisReply *rep = NULL;
	char host[64], why[256], role[16];
	size_t n = 0, n_replicas, answered;
	int which;

	if (node_replication(o) == NODE_REPL_NONE || !*o->sentinel_nodes || !o->failover_timeout)
		return;
	until = t0 + (uint64_t)o->failover_timeout * USEC_PER_MSEC;
	/* leave the server at least a second of the grace period to stop after the handover */
	if (deadline_usec > USEC_PER_SEC && until > deadline_usec - USEC_PER_SEC)
		until = deadline_usec - USEC_PER_SEC;
	if (until <= t0)
		return;
	if (cluster_parse_nodes(o->sentinel_nodes, "REDIS_SENTINEL_NODES", (unsigned)o->sentinel_port, &sentinels, &n,
				&err) < 0 ||
	    node_sentinel_passwords(o, pw, &pws, &err) < 0) {
		log_warn("failover: %s, stopping without a handover", err.msg);
		return;
	}
	node_probe_host(o->bind, host, sizeof(host));
	self = cluster_open(host, (unsigned)o->port, pw, 1000, why, sizeof(why));
	rep = self ? redisCommand(self, "INFO replication") : NULL;
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
	if (ask_sentinels(o, sentinels, n, &pws, &primary, &answered) != 1 || !is_me(o, &primary)) {
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
		freeReplyObject(redisCommand(self, "CLIENT UNPAUSE"));
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
		redisFree(self);
	secrets_set_wipe(&pws);
}
