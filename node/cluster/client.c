/* SPDX-License-Identifier: MIT */
/*
 * Talking to nodes with hiredis: resolve a name, connect and authenticate (a refused password and a failed
 * connection are told apart by their code), wait until a set of nodes answers (with progress lines), send one
 * command to all of them at once and collect the replies, and ask each what it is (cluster_inspect). decide.c
 * decides what to do with the answers; apply.c does it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"

/* How long commands may take once connected: MEET and ADDSLOTSRANGE on a busy node take longer than a connect. */
#define COMMAND_TIMEOUT_SEC 5

int cluster_resolve(const char *host, char *ret_ip, size_t size, struct init_error *err)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char ip[INET6_ADDRSTRLEN];
	const void *addr;
	bool ok;
	int r;

	r = getaddrinfo(host, NULL, &hints, &res);
	if (r != 0)
		return init_error_set(err,
				      r == EAI_SYSTEM	? -errno
				      : r == EAI_MEMORY ? -ENOMEM
							: -EHOSTUNREACH,
				      "DNS: %s", gai_strerror(r));
	if (res->ai_family == AF_INET6)
		addr = &((const struct sockaddr_in6 *)(const void *)res->ai_addr)->sin6_addr;
	else
		addr = &((const struct sockaddr_in *)(const void *)res->ai_addr)->sin_addr;
	ok = inet_ntop(res->ai_family, addr, ip, sizeof(ip)) != NULL;
	freeaddrinfo(res);
	if (!ok || strlen(ip) >= size)
		return init_error_set(err, -EAFNOSUPPORT, "DNS: '%s' resolved to an address kvinit cannot use", host);
	memcpy(ret_ip, ip, strlen(ip) + 1);
	return 0;
}

/* ---- the names certificates are checked against ---- */

/*
 * kvinit reaches its peers at addresses: what a name of REDIS_NODES resolved to, what CLUSTER NODES lists. The
 * certificates cannot name those addresses when they were made before the containers started (compose layouts
 * without static IPs, Kubernetes pods, cert-manager): they name the nodes. So with TLS a connection to a peer's
 * address checks its certificate against, in this order, the hostname the node announces (the hostname field of
 * CLUSTER NODES, Redis 7+ and Valkey), else the name of REDIS_NODES that resolved to that address, else the address
 * itself. One table for the process, as there is one TLS context: what cluster-init resolved and every CLUSTER NODES
 * it read, and REDIS_NODES resolved again when an address is not in it (a pod that came back elsewhere).
 */
struct tls_name {
	char ip[INET6_ADDRSTRLEN]; /* as inet_ntop writes it, so that one address has one spelling */
	unsigned port;
	char name[CLUSTER_HOST_MAX];
	bool announced; /* the node's own word, which a REDIS_NODES name does not replace */
};

static struct {
	struct tls_name *v;
	size_t n;
	struct cluster_addr *nodes; /* REDIS_NODES of this process's options */
	size_t n_nodes;
	uint64_t resolved_usec; /* when they were last resolved for a lookup */
} tls_names;

/* ip in inet_ntop's spelling into buf (INET6_ADDRSTRLEN); false for text that is no address. */
static bool canonical_ip(const char *ip, char *buf)
{
	unsigned char a[sizeof(struct in6_addr)];
	int af = strchr(ip, ':') ? AF_INET6 : AF_INET;

	return inet_pton(af, ip, a) == 1 && inet_ntop(af, a, buf, INET6_ADDRSTRLEN);
}

static void tls_learn(const char *ip, unsigned port, const char *name, bool announced)
{
	struct tls_name *e = NULL, *grown;
	char canon[INET6_ADDRSTRLEN];

	if (!*name || strlen(name) >= CLUSTER_HOST_MAX || !canonical_ip(ip, canon))
		return;
	for (size_t i = 0; i < tls_names.n && !e; i++)
		if (tls_names.v[i].port == port && strcmp(tls_names.v[i].ip, canon) == 0)
			e = &tls_names.v[i];
	if (e && e->announced && !announced)
		return;
	if (!e) {
		/* out of memory: that address is checked as an address, which is no worse than before */
		grown = realloc(tls_names.v, (tls_names.n + 1) * sizeof(*grown));
		if (!grown)
			return;
		tls_names.v = grown;
		e = &tls_names.v[tls_names.n++];
		(void)snprintf(e->ip, sizeof(e->ip), "%s", canon);
		e->port = port;
	}
	(void)snprintf(e->name, sizeof(e->name), "%s", name);
	e->announced = announced;
}

/* The name known for ip:port (else for ip at any port, when every entry of it says the same), or NULL. */
static const char *tls_lookup(const char *ip, unsigned port)
{
	const char *any = NULL;
	bool one = true;

	for (size_t i = 0; i < tls_names.n; i++) {
		const struct tls_name *e = &tls_names.v[i];

		if (strcmp(e->ip, ip) != 0)
			continue;
		if (e->port == port)
			return e->name;
		one = one && (!any || strcmp(any, e->name) == 0);
		any = e->name;
	}
	return one ? any : NULL;
}

void cluster_tls_names_use(const char *redis_nodes, unsigned default_port)
{
	struct init_error err;
	struct cluster_addr *nodes = NULL;
	size_t n = 0;

	/* a list that does not parse is the role's to report; its names are then not known here */
	if (redis_nodes && *redis_nodes &&
	    cluster_parse_nodes(redis_nodes, "REDIS_NODES", default_port, &nodes, &n, &err) < 0)
		n = 0;
	free(tls_names.nodes);
	tls_names.nodes = nodes;
	tls_names.n_nodes = n;
	tls_names.resolved_usec = 0;
}

static int learn_line(const struct cluster_line *l, void *userdata)
{
	char ip[CLUSTER_HOST_MAX];
	const char *hostname = strchr(l->addr, ',');
	unsigned port;

	(void)userdata;
	if (hostname && cluster_addr_split(l->addr, ip, sizeof(ip), &port) && *ip) {
		char name[CLUSTER_HOST_MAX];

		/* "ip:port@cport,hostname", and after it more fields on some servers */
		(void)snprintf(name, sizeof(name), "%.*s", (int)strcspn(hostname + 1, ","), hostname + 1);
		tls_learn(ip, port, name, true);
	}
	return 0;
}

void cluster_tls_learn_nodes(const char *nodes_text)
{
	struct init_error err;

	if (node_conn_tls_on() && nodes_text)
		(void)cluster_each_line(nodes_text, learn_line, NULL, &err);
}

/* A name that is loopback by definition (RFC 6761): resolved by the host itself, never by DNS. */
static bool loopback_name(const char *name)
{
	size_t len = strlen(name);

	return strcasecmp(name, "localhost") == 0 || (len > 10 && strcasecmp(name + len - 10, ".localhost") == 0);
}

static bool loopback_ip(const char *ip)
{
	return strncmp(ip, "127.", 4) == 0 || strcmp(ip, "::1") == 0;
}

/*
 * Learns the names of REDIS_NODES for an address not known yet. A loopback address (the node itself, or test
 * clusters on one host) is matched with the loopback names of the list without a lookup, so that a health probe
 * never waits on DNS for its own node; others resolve every name, at most once a second (an address that is no
 * name's, an announced one, would ask every time).
 */
static void learn_redis_nodes(const char *ip)
{
	uint64_t now = init_now_usec();
	char resolved[INET6_ADDRSTRLEN];
	struct init_error err;

	for (size_t i = 0; i < tls_names.n_nodes && loopback_ip(ip); i++)
		if (loopback_name(tls_names.nodes[i].host))
			tls_learn(ip, tls_names.nodes[i].port, tls_names.nodes[i].host, false);
	if (loopback_ip(ip) || now - tls_names.resolved_usec < USEC_PER_SEC)
		return;
	tls_names.resolved_usec = now;
	for (size_t i = 0; i < tls_names.n_nodes; i++)
		if (!init_valid_ip(tls_names.nodes[i].host) &&
		    cluster_resolve(tls_names.nodes[i].host, resolved, sizeof(resolved), &err) == 0)
			tls_learn(resolved, tls_names.nodes[i].port, tls_names.nodes[i].host, false);
}

void cluster_tls_learn_peers(struct node_conn *self)
{
	redisReply *rep;

	if (!node_conn_tls_on())
		return;
	rep = node_command(self, "CLUSTER NODES");
	if (rep && rep->type == REDIS_REPLY_STRING)
		cluster_tls_learn_nodes(rep->str);
	freeReplyObject(rep);
}

void cluster_tls_name(const char *host, unsigned port, char *buf, size_t size)
{
	char ip[INET6_ADDRSTRLEN];
	const char *name = NULL;

	if (node_conn_tls_on() && canonical_ip(host, ip)) {
		name = tls_lookup(ip, port);
		if (!name && tls_names.n_nodes) {
			learn_redis_nodes(ip);
			name = tls_lookup(ip, port);
		}
	}
	(void)snprintf(buf, size, "%s", name ? name : host);
}

/* A failed connection as -errno (a receive timeout is EAGAIN). */
static int context_errno(const struct node_conn *ctx)
{
	if (!ctx)
		return -ENOMEM;
	switch (ctx->err) {
	case REDIS_ERR_IO:
		if (ctx->sys_errno == EAGAIN || ctx->sys_errno == EWOULDBLOCK)
			return -ETIMEDOUT;
		return ctx->sys_errno > 0 ? -ctx->sys_errno : -EIO;
	case REDIS_ERR_EOF:
		return -ECONNRESET;
	case REDIS_ERR_OOM:
		return -ENOMEM;
	case REDIS_ERR_PROTOCOL:
		return -EPROTO;
	default:
		return -EIO;
	}
}

/* The replies to AUTH that mean this password is not one the server takes (NOAUTH: it takes none). */
static bool password_refused(const char *reply)
{
	return strncmp(reply, "WRONGPASS", 9) == 0 || strncmp(reply, "NOAUTH", 6) == 0 ||
	       strncmp(reply, "ERR invalid password", 20) == 0 || strncmp(reply, "ERR AUTH", 8) == 0;
}

/* cluster_connect, the certificate checked against verify_name. */
static int connect_as(const char *host, const char *verify_name, unsigned port, const struct secrets_value *pw,
		      unsigned timeout_ms, struct node_conn **ret_ctx, struct init_error *err)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (long)(timeout_ms % 1000) * 1000};
	struct node_conn *ctx;
	redisReply *rep;
	int r;

	ctx = node_conn_connect_as(host, port, verify_name, tv);
	if (!ctx || ctx->err) {
		r = init_error_set(err, context_errno(ctx), "cannot connect to %s:%u: %s", host, port,
				   ctx ? ctx->errstr : "out of memory");
		node_conn_free(ctx);
		return r;
	}
	(void)node_conn_set_timeout(ctx, tv);
	if (pw->data) {
		rep = node_command(ctx, "AUTH %b", pw->data, pw->len);
		if (!rep)
			r = init_error_set(err, context_errno(ctx), "lost the connection to %s:%u during AUTH: %s",
					   host, port, ctx->errstr);
		else if (rep->type == REDIS_REPLY_ERROR && password_refused(rep->str))
			r = init_error_set(err, -EACCES, "AUTH refused by %s:%u: %s", host, port, rep->str);
		else if (rep->type == REDIS_REPLY_ERROR)
			r = init_error_set(err, -EREMOTEIO, "AUTH failed on %s:%u: %s", host, port, rep->str);
		else
			r = 0;
		freeReplyObject(rep);
		if (r < 0) {
			node_conn_free(ctx);
			return r;
		}
	}
	*ret_ctx = ctx;
	return 0;
}

int cluster_connect(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
		    struct node_conn **ret_ctx, struct init_error *err)
{
	char name[CLUSTER_HOST_MAX];

	cluster_tls_name(host, port, name, sizeof(name));
	return connect_as(host, name, port, pw, timeout_ms, ret_ctx, err);
}

struct node_conn *cluster_open(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
			       char *why, size_t size)
{
	struct init_error err;
	struct node_conn *ctx = NULL;

	if (cluster_connect(host, port, pw, timeout_ms, &ctx, &err) < 0) {
		(void)snprintf(why, size, "%s", err.msg);
		return NULL;
	}
	return ctx;
}

void cluster_peer_name(const struct cluster_peer *p, char *buf, size_t size)
{
	(void)snprintf(buf, size, strchr(p->addr.host, ':') ? "[%s]:%u" : "%s:%u", p->addr.host, p->addr.port);
}

void cluster_peer_close(struct cluster_peer *p)
{
	if (p->ctx)
		node_conn_free(p->ctx);
	p->ctx = NULL;
}

void cluster_peers_free(struct cluster_peer *peers, size_t n)
{
	for (size_t i = 0; peers && i < n; i++) {
		cluster_peer_close(&peers[i]);
		free(peers[i].nodes_text);
	}
	free(peers);
}

int cluster_find_peer(const struct cluster_peer *peers, size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (peers[i].id[0] && strcmp(peers[i].id, id) == 0)
			return (int)i;
	return -1;
}

/* One try: resolve, connect, AUTH, PING. On failure p->why says what went wrong, in a few words. */
static bool try_connect(struct cluster_peer *p, const struct secrets_value *pw, unsigned timeout_ms)
{
	struct init_error e = {{0}};
	redisReply *reply;
	int r;

	r = cluster_resolve(p->addr.host, p->ip, sizeof(p->ip), &e);
	if (r == 0) {
		/* its name is what it is known by: later connections to the address it resolved to check that name */
		tls_learn(p->ip, p->addr.port, p->addr.host, false);
		r = connect_as(p->ip, p->addr.host, p->addr.port, pw, timeout_ms, &p->ctx, &e);
	}
	if (r < 0) {
		(void)snprintf(p->why, sizeof(p->why), "%.*s", (int)sizeof(p->why) - 1, e.msg);
		return false;
	}
	(void)node_conn_set_timeout(p->ctx, (struct timeval){.tv_sec = COMMAND_TIMEOUT_SEC});
	reply = node_command(p->ctx, "PING");
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		(void)snprintf(p->why, sizeof(p->why), "PING: %s", reply ? reply->str : p->ctx->errstr);
		freeReplyObject(reply);
		cluster_peer_close(p);
		return false;
	}
	freeReplyObject(reply);
	p->why[0] = '\0';
	return true;
}

/* The nodes still missing and why, for progress and timeout lines. */
static void missing_list(const struct cluster_peer *peers, size_t n, char *buf, size_t size)
{
	size_t len = 0, missing = 0;
	char name[CLUSTER_HOST_MAX + 16];

	buf[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (peers[i].ctx)
			continue;
		cluster_peer_name(&peers[i], name, sizeof(name));
		if (len + 4 < size)
			len += (size_t)snprintf(buf + len, size - len, "%s%s (%s)", missing++ ? ", " : "", name,
						peers[i].why[0] ? peers[i].why : "not tried yet");
	}
}

int cluster_connect_all(struct cluster_peer *peers, size_t n, const struct secrets_value *pw, uint64_t deadline_usec,
			struct init_error *err)
{
	uint64_t next_progress = init_now_usec() + 3 * USEC_PER_SEC;
	unsigned delay_ms = 20;
	char list[1024];

	for (;;) {
		size_t up = 0;
		uint64_t now = init_now_usec();
		unsigned timeout_ms = deadline_usec > now ? (unsigned)((deadline_usec - now) / 1000) : 1;

		for (size_t i = 0; i < n; i++)
			up += peers[i].ctx || try_connect(&peers[i], pw, timeout_ms < 1000 ? timeout_ms : 1000);
		if (up == n)
			return 0;
		now = init_now_usec();
		missing_list(peers, n, list, sizeof(list));
		if (now >= deadline_usec)
			return init_error_set(err, -ETIMEDOUT, "gave up waiting for %zu of %zu nodes: %s", n - up, n,
					      list);
		if (now >= next_progress) {
			log_info("waiting for %zu of %zu nodes: %s", n - up, n, list);
			next_progress = now + 3 * USEC_PER_SEC;
		}
		/* Fast at first (a node that is starting answers within tens of ms), then every half second. */
		init_sleep_ms(delay_ms);
		delay_ms = delay_ms * 3 / 2 < 500 ? delay_ms * 3 / 2 : 500;
	}
}

int cluster_send_all(struct cluster_peer *peers, size_t n, const bool *which, redisReply **replies, int argc,
		     const char **argv, struct init_error *err)
{
	char name[CLUSTER_HOST_MAX + 16];
	int r = 0;

	/* each one sent at once: node_get_reply would send a node's command only when its reply is read */
	for (size_t i = 0; i < n; i++)
		if ((!which || which[i]) && peers[i].ctx &&
		    node_append_argv(peers[i].ctx, argc, argv, NULL) == REDIS_OK)
			(void)node_flush(peers[i].ctx);
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;

		replies[i] = NULL;
		if ((which && !which[i]) || !peers[i].ctx)
			continue;
		if (node_get_reply(peers[i].ctx, &reply) == REDIS_OK && reply) {
			replies[i] = reply;
			continue;
		}
		/* the first failure is the one named; the other replies are still read */
		if (r == 0) {
			cluster_peer_name(&peers[i], name, sizeof(name));
			r = init_error_set(err, -EIO, "lost %s during %s%s%s: %s", name, argv[0], argc > 1 ? " " : "",
					   argc > 1 ? argv[1] : "", peers[i].ctx->errstr);
		}
	}
	return r;
}

void cluster_free_replies(redisReply **replies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

int cluster_peer_each_line(const struct cluster_peer *p, int (*fn)(const struct cluster_line *l, void *userdata),
			   void *userdata, struct init_error *err)
{
	struct init_error line_err = {{0}};
	char name[CLUSTER_HOST_MAX + 16];
	int r = cluster_each_line(p->nodes_text, fn, userdata, &line_err);

	if (r >= 0)
		return r;
	cluster_peer_name(p, name, sizeof(name));
	return init_error_set(err, r, "%s: CLUSTER NODES %s", name, line_err.msg);
}

static const char *reply_str(const redisReply *rep)
{
	return rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
		       rep->type == REDIS_REPLY_ERROR)
		       ? rep->str
		       : NULL;
}

/* CONFIG GET name -> value, or NULL (an unknown parameter answers an empty array). */
static const char *config_value(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 ? reply_str(rep->element[1]) : NULL;
}

/* A port from CONFIG GET, or fallback where it is unset (0) or not a port. */
static unsigned config_port(const redisReply *rep, unsigned fallback)
{
	const char *s = config_value(rep);
	int64_t v;

	return s && init_parse_int(s, 1, 65535, &v) == 0 ? (unsigned)v : fallback;
}

static int scan_myself(const struct cluster_line *l, void *userdata)
{
	struct cluster_peer *p = userdata;

	if (!l->myself)
		return 0;
	p->epoch = l->epoch;
	p->own_slots = l->nslots;
	p->is_master = l->is_master;
	(void)snprintf(p->master_id, sizeof(p->master_id), "%s", l->is_master ? "" : l->master);
	return 1;
}

/* One peer from its replies: rep[c * n + i] answers command c. */
static int inspect_one(struct cluster_peer *p, redisReply **rep, size_t n, size_t i, long long default_timeout,
		       struct init_error *err)
{
	enum { C_MYID, C_INFO, C_NODES, C_KEYS, C_AIP, C_APORT, C_ABUS, C_BUS, C_TIMEOUT, C_ZONE };
	const char *s, *info = reply_str(rep[C_INFO * n + i]);
	char name[CLUSTER_HOST_MAX + 16], value[32];
	int64_t timeout;
	int r;

	cluster_peer_name(p, name, sizeof(name));
	if (!info || rep[C_INFO * n + i]->type == REDIS_REPLY_ERROR)
		return init_error_set(err, -EREMOTEIO, "%s is not a cluster node: %s", name,
				      info ? info : "no answer to CLUSTER INFO");
	s = reply_str(rep[C_MYID * n + i]);
	(void)snprintf(p->id, sizeof(p->id), "%s", s ? s : "");
	p->known_nodes = cluster_info_field(info, "cluster_known_nodes", value, sizeof(value))
				 ? (unsigned)strtoul(value, NULL, 10)
				 : 0;
	s = reply_str(rep[C_KEYS * n + i]);
	p->keys = s ? cluster_info_keys(s) : 0;
	free(p->nodes_text);
	s = reply_str(rep[C_NODES * n + i]);
	p->nodes_text = strdup(s ? s : "");
	if (!p->nodes_text)
		return init_error_set(err, -ENOMEM, "out of memory");
	r = cluster_peer_each_line(p, scan_myself, p, err);
	if (r < 0)
		return r;
	cluster_tls_learn_nodes(p->nodes_text);

	/* The address the others must use: the announced one where set, else the one we reached. */
	s = config_value(rep[C_AIP * n + i]);
	(void)snprintf(p->meet_ip, sizeof(p->meet_ip), "%s", s && *s ? s : p->ip);
	p->meet_port = config_port(rep[C_APORT * n + i], p->addr.port);
	p->meet_bus = config_port(rep[C_ABUS * n + i], 0);
	if (!p->meet_bus)
		p->meet_bus = config_port(rep[C_BUS * n + i], p->addr.port + 10000);
	s = config_value(rep[C_TIMEOUT * n + i]);
	p->node_timeout = s && init_parse_int(s, 0, INT64_MAX, &timeout) == 0 ? timeout : default_timeout;
	s = config_value(rep[C_ZONE * n + i]);
	(void)snprintf(p->zone, sizeof(p->zone), "%s", s ? s : "");
	return 0;
}

int cluster_inspect(struct cluster_peer *peers, size_t n, long long default_timeout, struct init_error *err)
{
	/* in the order of inspect_one's enum */
	static const char *const cmds[][3] = {
		{"CLUSTER", "MYID", NULL},
		{"CLUSTER", "INFO", NULL},
		{"CLUSTER", "NODES", NULL},
		{"INFO", "keyspace", NULL},
		{"CONFIG", "GET", "cluster-announce-ip"},
		{"CONFIG", "GET", "cluster-announce-port"},
		{"CONFIG", "GET", "cluster-announce-bus-port"},
		{"CONFIG", "GET", "cluster-port"},
		{"CONFIG", "GET", "cluster-node-timeout"},
		/* Valkey >= 8.0; an empty list from the others, and an unknown zone */
		{"CONFIG", "GET", "availability-zone"},
	};
	const size_t count = sizeof(cmds) / sizeof(cmds[0]);
	_cleanup_free_ redisReply **rep = calloc(n * count, sizeof(redisReply *));
	int r = 0;

	if (!rep)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t c = 0; c < count && r == 0; c++)
		r = cluster_send_all(peers, n, NULL, rep + c * n, cmds[c][2] ? 3 : 2, (const char **)cmds[c], err);
	for (size_t i = 0; i < n && r == 0; i++)
		r = inspect_one(&peers[i], rep, n, i, default_timeout, err);
	cluster_free_replies(rep, n * count);
	return r;
}
