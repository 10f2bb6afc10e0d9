/* SPDX-License-Identifier: MIT */
/*
 * Talking to a set of nodes with hiredis: connect (waiting, with progress lines), send one command to all of them
 * at once and collect the replies, and read what they say about the cluster. cluster_init.c decides; this file
 * does the talking.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster.h"

void cluster_peer_close(struct cluster_peer *p)
{
	if (p->ctx)
		redisFree(p->ctx);
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

void cluster_peer_name(const struct cluster_peer *p, char *buf, size_t size)
{
	(void)snprintf(buf, size, strchr(p->addr.host, ':') ? "[%s]:%u" : "%s:%u", p->addr.host, p->addr.port);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * Connects to host:port (an address) and authenticates, with timeout_ms for the connect and for each command.
 * NULL when it cannot, with why saying so in one line that names the node.
 */
redisContext *cluster_connect(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
			      char *why, size_t size)
{
	struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (long)(timeout_ms % 1000) * 1000};
	redisContext *ctx = redisConnectWithTimeout(host, (int)port, tv);
	redisReply *rep;

	if (!ctx || ctx->err) {
		(void)snprintf(why, size, "cannot connect to %s:%u: %s", host, port,
			       ctx ? ctx->errstr : "out of memory");
		redisFree(ctx);
		return NULL;
	}
	(void)redisSetTimeout(ctx, tv);
	if (!pw->data)
		return ctx;
	rep = redisCommand(ctx, "AUTH %b", pw->data, pw->len);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		(void)snprintf(why, size, "AUTH refused by %s:%u: %s", host, port, rep ? rep->str : ctx->errstr);
		freeReplyObject(rep);
		redisFree(ctx);
		return NULL;
	}
	freeReplyObject(rep);
	return ctx;
}

/* One try: resolve, connect, AUTH, PING. On failure p->why says what went wrong, in a few words. */
static bool try_connect(struct cluster_peer *p, const struct secrets_value *pw, unsigned timeout_ms)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	redisReply *reply;
	int r;

	r = getaddrinfo(p->addr.host, NULL, &hints, &res);
	if (r != 0) {
		(void)snprintf(p->why, sizeof(p->why), "DNS: %s", gai_strerror(r));
		return false;
	}
	if (res->ai_family == AF_INET6)
		(void)inet_ntop(AF_INET6, &((struct sockaddr_in6 *)(void *)res->ai_addr)->sin6_addr, p->ip,
				sizeof(p->ip));
	else
		(void)inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)res->ai_addr)->sin_addr, p->ip, sizeof(p->ip));
	freeaddrinfo(res);

	p->ctx = cluster_connect(p->ip, p->addr.port, pw, timeout_ms, p->why, sizeof(p->why));
	if (!p->ctx)
		return false;
	/* commands may take longer than a connect: MEET and ADDSLOTSRANGE on a busy node */
	(void)redisSetTimeout(p->ctx, (struct timeval){.tv_sec = 5});
	reply = redisCommand(p->ctx, "PING");
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
	char name[NODE_HOST_MAX + 16];

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
		if (now >= deadline_usec) {
			(void)snprintf(err->msg, sizeof(err->msg), "gave up waiting for %zu of %zu nodes: %s", n - up,
				       n, list);
			return -ETIMEDOUT;
		}
		if (now >= next_progress) {
			log_info("waiting for %zu of %zu nodes: %s", n - up, n, list);
			next_progress = now + 3 * USEC_PER_SEC;
		}
		/* Fast at first (a node that is starting answers within tens of ms), then every half second. */
		sleep_ms(delay_ms);
		delay_ms = delay_ms * 3 / 2 < 500 ? delay_ms * 3 / 2 : 500;
	}
}

int cluster_send_all(struct cluster_peer *peers, size_t n, const bool *which, redisReply **replies, int argc,
		     const char **argv)
{
	int failed = 0;

	for (size_t i = 0; i < n; i++)
		if ((!which || which[i]) && peers[i].ctx)
			(void)redisAppendCommandArgv(peers[i].ctx, argc, argv, NULL);
	for (size_t i = 0; i < n; i++) {
		void *reply = NULL;

		replies[i] = NULL;
		if ((which && !which[i]) || !peers[i].ctx)
			continue;
		if (redisGetReply(peers[i].ctx, &reply) != REDIS_OK || !reply) {
			failed++;
			continue;
		}
		replies[i] = reply;
	}
	return failed;
}

void cluster_free_replies(redisReply **replies, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		freeReplyObject(replies[i]);
		replies[i] = NULL;
	}
}

/* "cluster_state:ok\r\n..." -> the value of one field. */
bool cluster_info_field(const char *text, const char *field, char *buf, size_t size)
{
	size_t n = strlen(field);

	for (const char *p = text; p && *p;) {
		if (strncmp(p, field, n) == 0 && p[n] == ':') {
			(void)snprintf(buf, size, "%.*s", (int)strcspn(p + n + 1, "\r\n"), p + n + 1);
			return true;
		}
		p = strchr(p, '\n');
		p = p ? p + 1 : NULL;
	}
	return false;
}

/*
 * One line of CLUSTER NODES: "<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch> <link>
 * <slot>...". Slots being imported or migrated ("[...]") are not owned and are skipped.
 */
int cluster_parse_line(const char *line, struct cluster_line *ret)
{
	struct cluster_line l = {0};
	char slots[8192];
	char *save = NULL, *tok;
	int n;

	slots[0] = '\0';
	n = sscanf(line, "%40s %127s %127s %40s %*s %*s %llu %15s %8191[^\n]", l.id, l.addr, l.flags, l.master,
		   &l.epoch, l.link, slots);
	if (n < 6 || strlen(l.id) != 40)
		return -EBADMSG;
	for (tok = strtok_r(slots, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		unsigned a, b;

		if (tok[0] == '[')
			continue;
		if (sscanf(tok, "%u-%u", &a, &b) == 2 || (sscanf(tok, "%u", &a) == 1 && (b = a, true))) {
			if (a > b || b >= NODE_SLOTS)
				return -EBADMSG;
			for (unsigned s = a; s <= b; s++)
				l.slots[s / 64] |= 1ULL << (s % 64);
			l.nslots += b - a + 1;
		}
	}
	l.myself = cluster_has_flag(l.flags, "myself");
	l.is_master = cluster_has_flag(l.flags, "master");
	l.handshake = cluster_has_flag(l.flags, "handshake") || cluster_has_flag(l.flags, "noaddr");
	*ret = l;
	return 0;
}

bool cluster_has_flag(const char *flags, const char *flag)
{
	size_t n = strlen(flag);

	for (const char *p = flags; p && *p;) {
		if (strncmp(p, flag, n) == 0 && (p[n] == ',' || !p[n]))
			return true;
		p = strchr(p, ',');
		p = p ? p + 1 : NULL;
	}
	return false;
}

/* Calls fn for every parseable line of a CLUSTER NODES text; stops when fn returns non-zero. */
int cluster_each_line(const char *text, int (*fn)(const struct cluster_line *l, void *userdata), void *userdata)
{
	const char *p = text;

	while (p && *p) {
		const char *end = strchr(p, '\n');
		char line[16384];
		struct cluster_line l;
		size_t len = end ? (size_t)(end - p) : strlen(p);
		int r;

		if (len < sizeof(line)) {
			memcpy(line, p, len);
			line[len] = '\0';
			if (cluster_parse_line(line, &l) == 0) {
				r = fn(&l, userdata);
				if (r)
					return r;
			}
		}
		p = end ? end + 1 : NULL;
	}
	return 0;
}

void cluster_format_ranges(const uint64_t *slots, char *buf, size_t size)
{
	size_t len = 0;
	bool any = false;

	buf[0] = '\0';
	for (unsigned s = 0; s < NODE_SLOTS; s++) {
		unsigned e = s;

		if (!(slots[s / 64] & (1ULL << (s % 64))))
			continue;
		while (e + 1 < NODE_SLOTS && (slots[(e + 1) / 64] & (1ULL << ((e + 1) % 64))))
			e++;
		if (len + 16 < size)
			len += (size_t)(e > s ? snprintf(buf + len, size - len, "%s%u-%u", any ? "," : "", s, e)
					      : snprintf(buf + len, size - len, "%s%u", any ? "," : "", s));
		any = true;
		s = e;
	}
	if (!any)
		(void)snprintf(buf, size, "-");
}
