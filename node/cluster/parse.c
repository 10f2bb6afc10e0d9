/* SPDX-License-Identifier: MIT */
/*
 * What Redis and Valkey say, read without trusting it: CLUSTER NODES lines of any length with every field checked
 * (a line that does not parse is an error naming it, never a node with shifted fields), CLUSTER INFO and INFO
 * fields, a master's replicas, and sets of slots. Pure: the unit tests feed it text.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"

/* A field or line quoted in a message is cut here, so a 43 KB slot list cannot push the reason out of the line. */
#define SHOWN_MAX 64

unsigned cluster_slots_count(const struct cluster_slots *s)
{
	unsigned n = 0;

	for (size_t w = 0; w < CLUSTER_SLOTS / 64; w++)
		n += (unsigned)__builtin_popcountll(s->bits[w]);
	return n;
}

void cluster_slots_merge(struct cluster_slots *into, const struct cluster_slots *from)
{
	for (size_t w = 0; w < CLUSTER_SLOTS / 64; w++)
		into->bits[w] |= from->bits[w];
}

void cluster_format_ranges(const struct cluster_slots *s, char *buf, size_t size)
{
	size_t len = 0;

	if (!size)
		return;
	buf[0] = '\0';
	for (unsigned first = 0; first < CLUSTER_SLOTS; first++) {
		unsigned last = first;
		char range[16];
		size_t n;

		if (!cluster_slots_has(s, first))
			continue;
		while (last + 1 < CLUSTER_SLOTS && cluster_slots_has(s, last + 1))
			last++;
		n = (size_t)(last > first ? snprintf(range, sizeof(range), "%s%u-%u", len ? "," : "", first, last)
					  : snprintf(range, sizeof(range), "%s%u", len ? "," : "", first));
		/* every range written leaves room for ",..." */
		if (len + n + sizeof(",...") > size) {
			const char *more = len ? ",..." : "...";

			if (len + strlen(more) < size)
				memcpy(buf + len, more, strlen(more) + 1);
			return;
		}
		memcpy(buf + len, range, n + 1);
		len += n;
		first = last;
	}
	if (!len)
		(void)snprintf(buf, size, "-");
}

/* ---- CLUSTER NODES ---- */

static bool is_id(const char *f, size_t len)
{
	if (len != CLUSTER_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!((f[i] >= '0' && f[i] <= '9') || (f[i] >= 'a' && f[i] <= 'f')))
			return false;
	return true;
}

/* Decimal digits only, at most max. */
static bool parse_number(const char *f, size_t len, unsigned long long max, unsigned long long *ret_value)
{
	unsigned long long v = 0;

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned digit = (unsigned)(f[i] - '0');

		if (f[i] < '0' || f[i] > '9' || v > (max - digit) / 10)
			return false;
		v = v * 10 + digit;
	}
	*ret_value = v;
	return true;
}

static int refuse_field(struct init_error *err, const char *what, const char *f, size_t len, const char *rule)
{
	return init_error_set(err, -EBADMSG, "%s '%.*s%s': %s", what, (int)(len > SHOWN_MAX ? SHOWN_MAX : len), f,
			      len > SHOWN_MAX ? "..." : "", rule);
}

/* The next field of [*p, end), up to a blank; *p moves past it and the blanks after it. */
static bool next_field(const char **p, const char *end, const char **ret_field, size_t *ret_len)
{
	const char *f = *p, *e = f;

	while (e < end && *e != ' ')
		e++;
	if (e == f)
		return false;
	*ret_field = f;
	*ret_len = (size_t)(e - f);
	while (e < end && *e == ' ')
		e++;
	*p = e;
	return true;
}

static int copy_field(const char *what, const char *f, size_t len, char *buf, size_t size, struct init_error *err)
{
	if (len >= size)
		return refuse_field(err, what, f, len, "too long");
	memcpy(buf, f, len);
	buf[len] = '\0';
	return 0;
}

/* "[N->-<id>]" (migrating to id) or "[N-<-<id>]" (importing from id): a slot this node does not serve yet. */
static bool is_slot_in_transit(const char *f, size_t len)
{
	const char *dash = memchr(f, '-', len);
	unsigned long long slot;

	return f[0] == '[' && dash && parse_number(f + 1, (size_t)(dash - f - 1), CLUSTER_SLOTS - 1, &slot) &&
	       (size_t)(f + len - dash) == 3 + CLUSTER_ID_LEN + 1 && (dash[1] == '>' || dash[1] == '<') &&
	       dash[2] == '-' && is_id(dash + 3, CLUSTER_ID_LEN) && dash[3 + CLUSTER_ID_LEN] == ']';
}

/* "N" or "N-M", added to l's slots. */
static int parse_slots(const char *f, size_t len, struct cluster_line *l, struct init_error *err)
{
	const char *dash = memchr(f, '-', len);
	unsigned long long first, last;
	bool ok;

	if (f[0] == '[') {
		if (!is_slot_in_transit(f, len))
			return refuse_field(err, "slot", f, len, "not [N->-<node id>] or [N-<-<node id>]");
		return 0;
	}
	if (dash)
		ok = parse_number(f, (size_t)(dash - f), ULLONG_MAX, &first) &&
		     parse_number(dash + 1, (size_t)(f + len - dash - 1), ULLONG_MAX, &last);
	else
		ok = parse_number(f, len, ULLONG_MAX, &first) && parse_number(f, len, ULLONG_MAX, &last);
	if (!ok)
		return refuse_field(err, "slot", f, len, "not N, N-M, [N->-<node id>] or [N-<-<node id>]");
	if (last >= CLUSTER_SLOTS)
		return refuse_field(err, "slot", f, len, "outside 0-16383");
	if (first > last)
		return refuse_field(err, "slot range", f, len, "its first slot is above its last");
	for (unsigned s = (unsigned)first; s <= last; s++) {
		if (cluster_slots_has(&l->slots, s)) {
			char shown[16];

			(void)snprintf(shown, sizeof(shown), "%u", s);
			return refuse_field(err, "slot", shown, strlen(shown), "listed twice");
		}
		cluster_slots_add(&l->slots, s);
	}
	l->nslots += (unsigned)(last - first + 1);
	return 0;
}

int cluster_parse_line(const char *line, size_t len, struct cluster_line *ret, struct init_error *err)
{
	static const char *const names[] = {"node id",	 "address",   "flags",	      "master",
					    "ping-sent", "pong-recv", "config-epoch", "link-state"};
	const char *p = line, *end = line + len, *f[8];
	struct cluster_line l = {0};
	unsigned long long number;
	size_t flen[8], slot_len;
	int r;

	for (size_t i = 0; i < 8; i++)
		if (!next_field(&p, end, &f[i], &flen[i]))
			return init_error_set(err, -EBADMSG, "no %s: a line has at least 8 fields", names[i]);
	if (!is_id(f[0], flen[0]))
		return refuse_field(err, names[0], f[0], flen[0], "not 40 hex digits");
	memcpy(l.id, f[0], CLUSTER_ID_LEN);
	r = copy_field(names[1], f[1], flen[1], l.addr, sizeof(l.addr), err);
	if (r == 0)
		r = copy_field(names[2], f[2], flen[2], l.flags, sizeof(l.flags), err);
	if (r == 0)
		r = copy_field(names[7], f[7], flen[7], l.link, sizeof(l.link), err);
	if (r < 0)
		return r;
	if (flen[3] == 1 && f[3][0] == '-')
		l.master[0] = '\0';
	else if (is_id(f[3], flen[3]))
		memcpy(l.master, f[3], CLUSTER_ID_LEN);
	else
		return refuse_field(err, names[3], f[3], flen[3], "neither '-' nor 40 hex digits");
	for (size_t i = 4; i < 7; i++)
		if (!parse_number(f[i], flen[i], ULLONG_MAX, &number))
			return refuse_field(err, names[i], f[i], flen[i], "not a number");
		else if (i == 6)
			l.epoch = number;

	for (const char *slot; next_field(&p, end, &slot, &slot_len);) {
		r = parse_slots(slot, slot_len, &l, err);
		if (r < 0)
			return r;
	}
	l.myself = cluster_has_flag(l.flags, "myself");
	l.is_master = cluster_has_flag(l.flags, "master");
	l.handshake = cluster_has_flag(l.flags, "handshake") || cluster_has_flag(l.flags, "noaddr");
	l.failed = cluster_has_flag(l.flags, "fail");
	*ret = l;
	return 0;
}

int cluster_each_line(const char *text, int (*fn)(const struct cluster_line *l, void *userdata), void *userdata,
		      struct init_error *err)
{
	unsigned number = 0;

	for (const char *p = text; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct init_error line_err = {{0}};
		struct cluster_line l;
		int r;

		number++;
		if (len && p[len - 1] == '\r')
			len--;
		if (len) {
			r = cluster_parse_line(p, len, &l, &line_err);
			if (r < 0)
				return init_error_set(err, r, "line %u ('%.*s%s'): %s", number,
						      (int)(len > SHOWN_MAX ? SHOWN_MAX : len), p,
						      len > SHOWN_MAX ? "..." : "", line_err.msg);
			r = fn(&l, userdata);
			if (r)
				return r;
		}
		p = end ? end + 1 : NULL;
	}
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

bool cluster_line_host_is(const struct cluster_line *l, const char *ip)
{
	unsigned char a[sizeof(struct in6_addr)], b[sizeof(struct in6_addr)];
	char host[sizeof(l->addr)];
	size_t len = strcspn(l->addr, "@,");
	char *colon;

	/* "ip:port@cport[,hostname]", and an IPv6 address written without brackets: the port is after the last ':' */
	memcpy(host, l->addr, len);
	host[len] = '\0';
	colon = strrchr(host, ':');
	if (!colon)
		return false;
	*colon = '\0';
	if (inet_pton(AF_INET, host, a) == 1 && inet_pton(AF_INET, ip, b) == 1)
		return memcmp(a, b, sizeof(struct in_addr)) == 0;
	if (inet_pton(AF_INET6, host, a) == 1 && inet_pton(AF_INET6, ip, b) == 1)
		return memcmp(a, b, sizeof(struct in6_addr)) == 0;
	return strcasecmp(host, ip) == 0;
}

/* ---- INFO and CLUSTER INFO ---- */

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

long long cluster_info_keys(const char *keyspace)
{
	long long total = 0;

	for (const char *p = strstr(keyspace, "keys="); p; p = strstr(p + 5, "keys="))
		total += strtoll(p + 5, NULL, 10);
	return total;
}

/* "ip=10.0.0.5,port=6379,state=online,offset=1234,lag=0" up to end; false without an ip and a valid port. */
static bool parse_replica(const char *p, const char *end, struct cluster_replica *ret)
{
	struct cluster_replica r = {.offset = -1};
	bool have_ip = false, have_port = false;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p)), *eq;
		size_t len = comma ? (size_t)(comma - p) : (size_t)(end - p);
		unsigned long long v;

		eq = memchr(p, '=', len);
		if (eq) {
			const char *value = eq + 1;
			size_t key_len = (size_t)(eq - p), value_len = (size_t)(p + len - value);

			if (key_len == 2 && memcmp(p, "ip", 2) == 0 && value_len && value_len < sizeof(r.ip)) {
				memcpy(r.ip, value, value_len);
				r.ip[value_len] = '\0';
				have_ip = true;
			} else if (key_len == 4 && memcmp(p, "port", 4) == 0 &&
				   parse_number(value, value_len, 65535, &v) && v) {
				r.port = (unsigned)v;
				have_port = true;
			} else if (key_len == 5 && memcmp(p, "state", 5) == 0) {
				r.online = value_len == 6 && memcmp(value, "online", 6) == 0;
			} else if (key_len == 6 && memcmp(p, "offset", 6) == 0 &&
				   parse_number(value, value_len, LLONG_MAX, &v)) {
				r.offset = (long long)v;
			}
		}
		p += len + (comma ? 1 : 0);
	}
	if (!have_ip || !have_port)
		return false;
	*ret = r;
	return true;
}

size_t cluster_info_replicas(const char *info, struct cluster_replica *ret, size_t max)
{
	size_t n = 0;

	for (const char *p = info; p && *p && n < max;) {
		const char *end = p + strcspn(p, "\r\n");
		size_t digits = strncmp(p, "slave", 5) == 0 ? strspn(p + 5, "0123456789") : 0;

		if (digits && p[5 + digits] == ':' && parse_replica(p + 6 + digits, end, &ret[n]))
			n++;
		p = end + strspn(end, "\r\n");
	}
	return n;
}
