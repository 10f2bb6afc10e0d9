/* SPDX-License-Identifier: MIT */
/*
 * Server version lines (node_server_parse_version). Input: two `--version` lines separated by a line end; the
 * first 12 bytes also give two (major, minor, patch) tuples, each part 0-999, written as version lines.
 * Properties: a line is accepted exactly when it starts with "Redis server " or "Valkey server " and its first
 * " v=" is followed by major.minor.patch, each part decimal digits worth 0-999, then a blank or the end; the
 * flavor and NODE_VERSION_MAJOR/MINOR/PATCH of the result are the line's; a refused one is -EBADMSG with the
 * out-parameters untouched. Two accepted versions compare as their tuples do.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "node.h"

struct version {
	bool ok;
	enum node_flavor flavor;
	unsigned part[3];
	unsigned encoded;
};

/* The reference: from the rule above, parts read with strtoul. */
static bool ref_parse(const char *text, enum node_flavor *ret_flavor, unsigned part[3])
{
	const char *p;

	if (strncmp(text, "Redis server ", 13) == 0)
		*ret_flavor = NODE_REDIS;
	else if (strncmp(text, "Valkey server ", 14) == 0)
		*ret_flavor = NODE_VALKEY;
	else
		return false;
	p = strstr(text, " v=");
	if (!p)
		return false;
	p += 3;
	for (int i = 0; i < 3; i++) {
		size_t digits = strspn(p, "0123456789");
		unsigned long v;

		if (!digits)
			return false;
		errno = 0;
		v = strtoul(p, NULL, 10);
		if (errno || v > NODE_VERSION_PART_MAX)
			return false;
		part[i] = (unsigned)v;
		p += digits;
		if (i < 2 ? *p != '.' : *p && *p != ' ')
			return false;
		p++;
	}
	return true;
}

static struct version parse_and_check(const char *text)
{
	struct version v = {.flavor = (enum node_flavor)42, .encoded = 4242};
	enum node_flavor want_flavor = NODE_REDIS;
	unsigned want[3] = {0};
	bool want_ok = ref_parse(text, &want_flavor, want);
	int r = node_server_parse_version(text, &v.flavor, &v.encoded);

	if (!want_ok) {
		FUZZ_CHECK(r == -EBADMSG, "'%.100s' is no version line, parsed with %d", text, r);
		FUZZ_CHECK(v.flavor == (enum node_flavor)42 && v.encoded == 4242,
			   "out-parameters written on a refusal");
		return v;
	}
	FUZZ_CHECK(r == 0, "'%.100s' refused (%d)", text, r);
	FUZZ_CHECK(v.flavor == want_flavor, "'%.100s': flavor %d", text, (int)v.flavor);
	FUZZ_CHECK(NODE_VERSION_MAJOR(v.encoded) == want[0] && NODE_VERSION_MINOR(v.encoded) == want[1] &&
			   NODE_VERSION_PATCH(v.encoded) == want[2],
		   "'%.100s' is %u.%u.%u, read as %u (%u.%u.%u)", text, want[0], want[1], want[2], v.encoded,
		   NODE_VERSION_MAJOR(v.encoded), NODE_VERSION_MINOR(v.encoded), NODE_VERSION_PATCH(v.encoded));
	v.ok = true;
	memcpy(v.part, want, sizeof(want));
	return v;
}

static int tuple_cmp(const unsigned *a, const unsigned *b)
{
	for (int i = 0; i < 3; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

static void check_order(const struct version *a, const struct version *b)
{
	int want = tuple_cmp(a->part, b->part), got = a->encoded < b->encoded ? -1 : a->encoded > b->encoded;

	if (!a->ok || !b->ok)
		return;
	FUZZ_CHECK(got == want, "%u.%u.%u and %u.%u.%u compare as %d, their encodings (%u, %u) as %d", a->part[0],
		   a->part[1], a->part[2], b->part[0], b->part[1], b->part[2], want, a->encoded, b->encoded, got);
}

/* A version line for a tuple made of 6 input bytes, each part 0-999. */
static struct version from_bytes(const uint8_t *b, const char *flavor)
{
	char line[96];

	(void)snprintf(line, sizeof(line), "%s server v=%u.%u.%u sha=00000000:0 malloc=libc bits=64", flavor,
		       (b[0] << 8 | b[1]) % 1000u, (b[2] << 8 | b[3]) % 1000u, (b[4] << 8 | b[5]) % 1000u);
	return parse_and_check(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_strndup(data, size), *second = strchr(text, '\n');
	struct version a, b;

	if (second)
		*second++ = '\0';
	a = parse_and_check(text);
	b = parse_and_check(second ? second : "");
	check_order(&a, &b);
	check_order(&b, &a);
	if (size >= 12) {
		a = from_bytes(data, "Redis");
		b = from_bytes(data + 6, "Valkey");
		FUZZ_CHECK(a.ok && b.ok, "a version line of parts 0-999 refused");
		check_order(&a, &b);
		check_order(&b, &a);
	}
	free(text);
	return 0;
}
