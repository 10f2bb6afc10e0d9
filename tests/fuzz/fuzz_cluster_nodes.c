/* SPDX-License-Identifier: MIT */
/*
 * CLUSTER NODES lines (cluster_parse_line, cluster_each_line). Input: the bytes of one line, of any length; the
 * same bytes up to their first NUL are also walked as a whole CLUSTER NODES text.
 * Properties, against a reference parse written from cluster.h's description: a line is accepted exactly when it
 * has 8 fields separated by spaces and then slots; the id is 40 lowercase hex digits and the master '-' or one;
 * ping-sent, pong-recv and config-epoch are numbers; the address, flags and link state fit; every slot is "N",
 * "N-M" or an import or migration "[N->-<id>]" / "[N-<-<id>]", within 0-16383, first <= last, none listed twice.
 * An accepted line's fields are the line's, its slots exactly the slots listed (not those in transit), nslots
 * their number (never above 16384, no overlap counted twice); a refused one is -EBADMSG with a message and ret
 * untouched. The walk calls back once for each non-blank line ("\r\n" ends too), each as cluster_parse_line reads
 * it, and stops at the first that does not parse with -EBADMSG.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "cluster.h"
#include "fuzz.h"

struct ref_field {
	const char *p;
	size_t len;
};

/* What the reference makes of a line. */
struct ref_line {
	struct ref_field f[8];
	unsigned long long epoch;
	struct cluster_slots slots;
	unsigned nslots;
};

static bool ref_id(const char *p, size_t len)
{
	if (len != CLUSTER_ID_LEN)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdef", p[i]) || !p[i])
			return false;
	return true;
}

/* Digits only (leading zeros too), within unsigned long long: by strtoull on a copy, not as parse.c counts. */
static bool ref_number(const char *p, size_t len, unsigned long long *ret)
{
	char buf[32];

	if (!len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (p[i] < '0' || p[i] > '9')
			return false;
	while (len > 1 && *p == '0') {
		p++;
		len--;
	}
	/* more digits than ULLONG_MAX has, once the leading zeros are gone */
	if (len >= sizeof(buf))
		return false;
	memcpy(buf, p, len);
	buf[len] = '\0';
	errno = 0;
	*ret = strtoull(buf, NULL, 10);
	return errno == 0;
}

/* "[N->-<id>]" or "[N-<-<id>]" */
static bool ref_in_transit(const char *p, size_t len)
{
	const char *dash = memchr(p, '-', len);
	unsigned long long slot;

	if (len < 2 || p[0] != '[' || p[len - 1] != ']' || !dash)
		return false;
	if (!ref_number(p + 1, (size_t)(dash - p - 1), &slot) || slot >= CLUSTER_SLOTS)
		return false;
	if ((size_t)(p + len - dash) != 3 + CLUSTER_ID_LEN + 1 || (dash[1] != '>' && dash[1] != '<') || dash[2] != '-')
		return false;
	return ref_id(dash + 3, CLUSTER_ID_LEN);
}

/* "N" or "N-M", added to ref's slots; false when the line must be refused. */
static bool ref_slots(const char *p, size_t len, struct ref_line *ref)
{
	const char *dash = memchr(p, '-', len);
	unsigned long long first, last;

	if (p[0] == '[')
		return ref_in_transit(p, len);
	if (dash) {
		if (!ref_number(p, (size_t)(dash - p), &first) ||
		    !ref_number(dash + 1, (size_t)(p + len - dash - 1), &last))
			return false;
	} else if (!ref_number(p, len, &first)) {
		return false;
	} else {
		last = first;
	}
	if (last >= CLUSTER_SLOTS || first > last)
		return false;
	for (unsigned long long s = first; s <= last; s++) {
		if (cluster_slots_has(&ref->slots, (unsigned)s))
			return false;
		cluster_slots_add(&ref->slots, (unsigned)s);
		ref->nslots++;
	}
	return true;
}

/* Whether the line must be accepted; ref gets what it holds. */
static bool ref_parse(const char *line, size_t len, struct ref_line *ref)
{
	const char *p = line, *end = line + len;
	size_t n = 0;

	*ref = (struct ref_line){0};
	/* fields are separated by runs of spaces; the line starts with its first */
	while (p < end) {
		const char *f = p;

		while (p < end && *p != ' ')
			p++;
		if (p == f)
			return false;
		if (n < 8)
			ref->f[n] = (struct ref_field){f, (size_t)(p - f)};
		else if (!ref_slots(f, (size_t)(p - f), ref))
			return false;
		n++;
		while (p < end && *p == ' ')
			p++;
	}
	if (n < 8 || !ref_id(ref->f[0].p, ref->f[0].len))
		return false;
	if (!(ref->f[3].len == 1 && ref->f[3].p[0] == '-') && !ref_id(ref->f[3].p, ref->f[3].len))
		return false;
	if (ref->f[1].len >= sizeof(((struct cluster_line *)0)->addr) ||
	    ref->f[2].len >= sizeof(((struct cluster_line *)0)->flags) ||
	    ref->f[7].len >= sizeof(((struct cluster_line *)0)->link))
		return false;
	for (size_t i = 4; i < 7; i++) {
		unsigned long long v;

		if (!ref_number(ref->f[i].p, ref->f[i].len, &v))
			return false;
		if (i == 6)
			ref->epoch = v;
	}
	return true;
}

static bool field_is(const char *s, const struct ref_field *f)
{
	return memcmp(s, f->p, f->len) == 0 && s[f->len] == '\0';
}

static void check_line(const struct cluster_line *l, const struct ref_line *ref)
{
	FUZZ_CHECK(field_is(l->id, &ref->f[0]), "id '%s' is not the line's", l->id);
	FUZZ_CHECK(ref->f[3].len == 1 ? !l->master[0] : field_is(l->master, &ref->f[3]),
		   "master '%s' is not the line's", l->master);
	FUZZ_CHECK(field_is(l->addr, &ref->f[1]) && field_is(l->flags, &ref->f[2]) && field_is(l->link, &ref->f[7]),
		   "address, flags or link state are not the line's");
	FUZZ_CHECK(l->epoch == ref->epoch, "epoch %llu, the line has %llu", l->epoch, ref->epoch);
	FUZZ_CHECK(l->nslots <= CLUSTER_SLOTS && l->nslots == cluster_slots_count(&l->slots),
		   "nslots %u for %u slots in the set", l->nslots, cluster_slots_count(&l->slots));
	FUZZ_CHECK(l->nslots == ref->nslots && memcmp(&l->slots, &ref->slots, sizeof(l->slots)) == 0,
		   "%u slots, the line lists %u", l->nslots, ref->nslots);
	FUZZ_CHECK(l->myself == cluster_has_flag(l->flags, "myself") &&
			   l->is_master == cluster_has_flag(l->flags, "master"),
		   "myself or master does not follow the flags '%s'", l->flags);
}

/* Parses len bytes as one line and checks the result against the reference; returns what the parser did. */
static int parse_and_check(const char *line, size_t len, struct cluster_line *ret)
{
	struct cluster_line l;
	struct ref_line ref;
	struct init_error err = {{0}};
	bool want = ref_parse(line, len, &ref);
	int r;

	/* what a refusal must leave alone: the parser writes ret whole or not at all */
	l.nslots = 4242;
	l.id[0] = 'X';
	r = cluster_parse_line(line, len, &l, &err);
	if (!want) {
		FUZZ_CHECK(r == -EBADMSG, "a line the reference refuses gave %d", r);
		FUZZ_CHECK(err.msg[0], "a refusal without a message");
		FUZZ_CHECK(l.nslots == 4242 && l.id[0] == 'X', "ret written on a refusal");
		return r;
	}
	FUZZ_CHECK(r == 0, "a line the reference accepts was refused: %s", err.msg);
	check_line(&l, &ref);
	if (ret)
		*ret = l;
	return r;
}

struct walk {
	const char *text;
	const char *pos; /* the next line the walk should call back for */
	unsigned calls;
};

/* The next non-blank line of the walk as the reference splits it, without "\n" and one "\r". */
static bool next_line(struct walk *w, const char **ret, size_t *ret_len)
{
	while (w->pos && *w->pos) {
		const char *p = w->pos, *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) : strlen(p);

		w->pos = nl ? nl + 1 : NULL;
		if (len && p[len - 1] == '\r')
			len--;
		if (len) {
			*ret = p;
			*ret_len = len;
			return true;
		}
	}
	return false;
}

static int on_line(const struct cluster_line *l, void *userdata)
{
	struct walk *w = userdata;
	struct cluster_line want;
	const char *line;
	size_t len;

	FUZZ_CHECK(next_line(w, &line, &len), "called back %u times, for more lines than the text has", w->calls + 1);
	FUZZ_CHECK(parse_and_check(line, len, &want) == 0, "called back for a line that does not parse");
	FUZZ_CHECK(strcmp(l->id, want.id) == 0 && l->nslots == want.nslots &&
			   memcmp(&l->slots, &want.slots, sizeof(l->slots)) == 0,
		   "called back with another line than line %u", w->calls + 1);
	w->calls++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *line = malloc(size ? size : 1), *text = fuzz_strndup(data, size);
	struct init_error err = {{0}};
	struct walk w = {text, text, 0};
	const char *rest;
	size_t rest_len;
	int r;

	/* an exact copy: the parser must not read past len */
	if (!line)
		abort();
	if (size)
		memcpy(line, data, size);
	(void)parse_and_check(line, size, NULL);

	r = cluster_each_line(text, on_line, &w, &err);
	if (r == 0) {
		FUZZ_CHECK(!next_line(&w, &rest, &rest_len), "the walk stopped early without an error");
	} else {
		FUZZ_CHECK(r == -EBADMSG && err.msg[0], "the walk gave %d", r);
		FUZZ_CHECK(next_line(&w, &rest, &rest_len) && parse_and_check(rest, rest_len, NULL) == -EBADMSG,
			   "the walk failed on a line that parses");
	}
	free(text);
	free(line);
	return 0;
}
