/* SPDX-License-Identifier: MIT */
/*
 * The nodes.conf rewrite (node_nodes_conf_fix_text). Input: three bytes that pick the address (ip, port, bus port;
 * some invalid), then the text of the file.
 * Properties: it never crashes; an invalid address is -EINVAL; a NUL byte in a text that is not blank is -EBADMSG;
 * on 1 the new text is the old one with only the myself line's address part ("ip:port@bus", up to a ',' after
 * the '@') replaced, *ret_old is that part, and a second rewrite with the same address returns 0; on 0 the
 * myself line already has the address (or the text is blank); -ENOENT only when no line has the myself flag;
 * out-parameters are written only on 1.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "fuzz.h"
#include "node.h"

struct addr_choice {
	const char *ip;
	bool valid;
};

static const struct addr_choice ips[] = {
	{"10.0.0.7", true},  {"172.19.0.60", true}, {"::1", true},  {"2001:db8::6", true},    {"2001:db8::5", true},
	{"fe80::1:2", true}, {"0.0.0.0", true},	    {"", false},    {"1.2.3", false},	      {"10.0.0.7 ", false},
	{"::1:6379", true},  {"1.2.3.4:5", false},  {"a.b", false}, {"::ffff:1.2.3.4", true},
};
static const unsigned ports[] = {6379, 16379, 7000, 17000, 1, 65535, 0, 65536};

/* Something neither a real text nor NULL: shows that an out-parameter was left alone. */
static char untouched[] = "untouched";

static bool is_blank_text(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)p[i]))
			return false;
	return true;
}

/* Field k of the line [p, end), split at spaces and tabs; false when the line has fewer. */
static bool field(const char *p, const char *end, size_t k, const char **ret, size_t *ret_len)
{
	for (size_t i = 0;; i++) {
		const char *f;

		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		if (p == end)
			return false;
		f = p;
		while (p < end && *p != ' ' && *p != '\t')
			p++;
		if (i == k) {
			*ret = f;
			*ret_len = (size_t)(p - f);
			return true;
		}
	}
}

/* The line has "myself" among the comma-separated flags of its third field, and is not Redis's "vars" line. */
static bool is_myself_line(const char *p, const char *end)
{
	const char *f;
	size_t len, start = 0;

	if (!field(p, end, 0, &f, &len) || (len == 4 && strncasecmp(f, "vars", 4) == 0))
		return false;
	if (!field(p, end, 2, &f, &len))
		return false;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && f[i] != ',')
			continue;
		if (i - start == 6 && memcmp(f + start, "myself", 6) == 0)
			return true;
		start = i + 1;
	}
	return false;
}

/* Whether some myself line's address field starts with addr, followed by ',' or its end. */
static bool myself_has_address(const char *text, size_t len, const char *addr, bool *ret_any_myself)
{
	size_t addr_len = strlen(addr);
	bool found = false;

	*ret_any_myself = false;
	for (const char *p = text, *end; p < text + len; p = end + 1) {
		const char *f;
		size_t flen;

		end = memchr(p, '\n', (size_t)(text + len - p));
		if (!end)
			end = text + len;
		if (!is_myself_line(p, end))
			continue;
		*ret_any_myself = true;
		if (field(p, end, 1, &f, &flen) && flen >= addr_len && memcmp(f, addr, addr_len) == 0 &&
		    (flen == addr_len || f[addr_len] == ','))
			found = true;
	}
	return found;
}

/* Whether text[off...] is the start of the address field of a myself line, and old is its address part. */
static bool is_myself_address_at(const char *text, size_t len, size_t off, const char *old)
{
	const char *line = text + off, *end = memchr(text + off, '\n', len - off), *f, *at;
	size_t flen, old_len = strlen(old);

	while (line > text && line[-1] != '\n')
		line--;
	if (!end)
		end = text + len;
	if (!is_myself_line(line, end) || !field(line, end, 1, &f, &flen) || f != text + off)
		return false;
	if (old_len > flen || memcmp(f, old, old_len) != 0 || (old_len < flen && f[old_len] != ','))
		return false;
	at = memchr(old, '@', old_len);
	return at && memchr(old, ':', (size_t)(at - old)) && !strchr(at, ',');
}

static size_t common_prefix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = 0;

	while (n < alen && n < blen && a[n] == b[n])
		n++;
	return n;
}

static size_t common_suffix(const char *a, size_t alen, const char *b, size_t blen)
{
	size_t n = 0;

	while (n < alen && n < blen && a[alen - 1 - n] == b[blen - 1 - n])
		n++;
	return n;
}

/* out is text with old replaced by addr at the address of a myself line, and nowhere else. */
static void check_rewrite(const char *text, size_t len, const char *out, const char *old, const char *addr)
{
	size_t out_len = strlen(out), old_len = strlen(old), addr_len = strlen(addr), prefix, suffix;

	FUZZ_CHECK(out_len + old_len == len + addr_len, "new text of %zu bytes from %zu, '%s' replaced by '%s'",
		   out_len, len, old, addr);
	prefix = common_prefix(text, len, out, out_len);
	suffix = common_suffix(text, len, out, out_len);
	for (size_t off = 0; off <= prefix && off + old_len <= len; off++) {
		if (len - off - old_len > suffix)
			continue;
		if (memcmp(text + off, old, old_len) == 0 && memcmp(out + off, addr, addr_len) == 0 &&
		    is_myself_address_at(text, len, off, old))
			return;
	}
	FUZZ_CHECK(false, "the new text differs from the old in more than the myself line's address '%s' -> '%s'", old,
		   addr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const struct addr_choice *ip = &ips[(size > 0 ? data[0] : 0) % (sizeof(ips) / sizeof(ips[0]))];
	unsigned port = ports[(size > 1 ? data[1] : 0) % (sizeof(ports) / sizeof(ports[0]))];
	unsigned bus = ports[(size > 2 ? data[2] : 0) % (sizeof(ports) / sizeof(ports[0]))];
	size_t skip = size < 3 ? size : 3, len = size - skip;
	char *text = fuzz_strndup(data + skip, len), *out = untouched, *old = untouched, *again = untouched;
	bool valid = ip->valid && port >= 1 && port <= 65535 && bus >= 1 && bus <= 65535, any_myself, has;
	char addr[128];
	int r;

	(void)snprintf(addr, sizeof(addr), "%s:%u@%u", ip->ip, port, bus);
	r = node_nodes_conf_fix_text(text, len, ip->ip, port, bus, &out, &old);
	if (r != 1)
		FUZZ_CHECK(out == untouched && old == untouched, "out-parameters written on %d", r);
	if (!valid) {
		FUZZ_CHECK(r == -EINVAL, "invalid address '%s' gave %d", addr, r);
		goto done;
	}
	FUZZ_CHECK(r == 1 || r == 0 || r == -ENOENT || r == -EBADMSG, "unexpected %d", r);
	if (is_blank_text(text, len)) {
		FUZZ_CHECK(r == 0, "a blank text gave %d", r);
		goto done;
	}
	if (memchr(text, '\0', len)) {
		FUZZ_CHECK(r == -EBADMSG, "a text with a NUL byte gave %d", r);
		goto done;
	}
	if (r == -EBADMSG)
		goto done;
	has = myself_has_address(text, len, addr, &any_myself);
	if (r == -ENOENT)
		FUZZ_CHECK(!any_myself, "-ENOENT for a text with a myself line");
	if (r == 0)
		FUZZ_CHECK(has, "0 (nothing to do) though no myself line has the address '%s'", addr);
	if (r != 1)
		goto done;

	check_rewrite(text, len, out, old, addr);
	/* idempotent: the new text has the address */
	r = node_nodes_conf_fix_text(out, strlen(out), ip->ip, port, bus, &again, NULL);
	FUZZ_CHECK(r == 0 && again == untouched, "a second rewrite with '%s' gave %d", addr, r);
	/* the old address is optional, the result the same */
	r = node_nodes_conf_fix_text(text, len, ip->ip, port, bus, &again, NULL);
	FUZZ_CHECK(r == 1 && strcmp(again, out) == 0, "without ret_old: %d, or another text", r);
	free(again);
	free(out);
	free(old);
done:
	free(text);
	return 0;
}
