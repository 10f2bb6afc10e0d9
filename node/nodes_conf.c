/* SPDX-License-Identifier: MIT */
/*
 * nodes.conf repair. Redis Cluster keeps its own address on the `myself` line of nodes.conf, and a container that
 * comes back with a new IP finds the old one there: the address is rewritten before the server starts. Everything
 * else in the file belongs to Redis and is kept byte for byte.
 *
 * Lines are split on spaces and tabs only: a '\r' (Redis never writes CRLF) stays part of the last field, which is
 * never the address, so a CRLF file keeps its line ends. A line of whitespace alone is blank, as Redis's own
 * padding of the file with newlines leaves them.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "node.h"

/* nodes.conf is about 200 bytes per node; anything this large is not one (corrupt), and is not read into memory. */
#define NODES_CONF_MAX ((size_t)64 << 20)

#define NODES_CONF_ID_LEN     40
#define NODES_CONF_MIN_FIELDS 8

#define RECOVERY_HINT                                                                                                  \
	"move it away to let the node start fresh (it will rejoin as a new node), or set "                             \
	"KVINIT_RESET_CORRUPT_NODES_CONF=yes"

/* What a scan of the text found: the myself line's address, or why the text is not a nodes.conf. */
struct nodes_conf_scan {
	bool found;
	size_t addr_off, addr_len; /* "ip:port@bus", without ",hostname" */
	const char *what;	   /* the problem, when -EBADMSG */
	unsigned line;
};

struct field {
	const char *p;
	size_t len;
};

static bool is_blank(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!isspace((unsigned char)p[i]))
			return false;
	return true;
}

static bool is_node_id(const struct field *f)
{
	if (f->len != NODES_CONF_ID_LEN)
		return false;
	for (size_t i = 0; i < f->len; i++)
		if (!isxdigit((unsigned char)f->p[i]))
			return false;
	return true;
}

/* The flag exactly, never a part of another one: "notmyself" is not myself. */
static bool has_flag(const struct field *flags, const char *flag)
{
	size_t n = strlen(flag), start = 0;

	for (size_t i = 0; i <= flags->len; i++) {
		if (i < flags->len && flags->p[i] != ',')
			continue;
		if (i - start == n && memcmp(flags->p + start, flag, n) == 0)
			return true;
		start = i + 1;
	}
	return false;
}

/* Splits a line into its first fields_max fields; returns how many fields the line has in all. */
static size_t split_fields(const char *p, size_t len, struct field *fields, size_t fields_max)
{
	size_t n = 0, i = 0;

	while (i < len) {
		size_t start;

		while (i < len && (p[i] == ' ' || p[i] == '\t'))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && p[i] != ' ' && p[i] != '\t')
			i++;
		if (n < fields_max)
			fields[n] = (struct field){.p = p + start, .len = i - start};
		n++;
	}
	return n;
}

/* Checks one non-blank line; returns 0, or -EBADMSG with the problem in scan->what. */
static int scan_line(const char *text, const char *p, size_t len, struct nodes_conf_scan *scan)
{
	struct field f[3] = {{NULL, 0}};
	const char *at, *colon, *comma;
	size_t n = split_fields(p, len, f, 3);

	/* Redis matches "vars" without regard to case, and so may we; it holds no address. */
	if (f[0].len == 4 && strncasecmp(f[0].p, "vars", 4) == 0)
		return 0;
	if (n < NODES_CONF_MIN_FIELDS) {
		scan->what = "fewer than 8 fields";
		return -EBADMSG;
	}
	if (!is_node_id(&f[0])) {
		scan->what = "node id is not 40 hex characters";
		return -EBADMSG;
	}
	at = memchr(f[1].p, '@', f[1].len);
	if (!at) {
		scan->what = "address has no '@'";
		return -EBADMSG;
	}
	colon = memrchr(f[1].p, ':', (size_t)(at - f[1].p));
	if (!colon) {
		scan->what = "address has no ':' before '@'";
		return -EBADMSG;
	}
	if (!has_flag(&f[2], "myself"))
		return 0;
	if (scan->found) {
		scan->what = "second 'myself' line";
		return -EBADMSG;
	}
	/* Redis 7 appends ",hostname" and 7.2 more ",key=value" pairs: they are the node's, not its address. */
	comma = memchr(at, ',', (size_t)(f[1].p + f[1].len - at));
	scan->found = true;
	scan->addr_off = (size_t)(f[1].p - text);
	scan->addr_len = (size_t)((comma ? comma : f[1].p + f[1].len) - f[1].p);
	return 0;
}

/* Returns 0 with the myself line in ret_scan->found (or not), or -EBADMSG. */
static int scan_text(const char *text, size_t len, struct nodes_conf_scan *ret_scan)
{
	struct nodes_conf_scan scan = {.line = 0};
	size_t off = 0;

	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t line_len = nl ? (size_t)(nl - (text + off)) : len - off;
		int r = 0;

		scan.line++;
		/* The new text is handed back as a C string: a NUL would cut it short. */
		if (memchr(text + off, '\0', line_len)) {
			scan.what = "NUL byte";
			r = -EBADMSG;
		} else if (!is_blank(text + off, line_len)) {
			r = scan_line(text, text + off, line_len, &scan);
		}
		if (r < 0) {
			*ret_scan = scan;
			return r;
		}
		off += line_len + 1;
	}
	*ret_scan = scan;
	return 0;
}

static bool valid_port(unsigned port)
{
	return port >= 1 && port <= 65535;
}

static bool valid_address(const char *ip, unsigned port, unsigned bus_port)
{
	unsigned char addr[sizeof(struct in6_addr)];

	if (!ip || !valid_port(port) || !valid_port(bus_port))
		return false;
	return inet_pton(AF_INET, ip, addr) == 1 || inet_pton(AF_INET6, ip, addr) == 1;
}

/* Like node_nodes_conf_fix_text; on -EBADMSG, ret_scan says what is wrong and where. */
static int fix_text(const char *text, size_t len, const char *ip, unsigned port, unsigned bus_port,
		    struct nodes_conf_scan *ret_scan, char **ret_text, char **ret_old)
{
	struct nodes_conf_scan scan;
	char *new_text, *old, addr[INET6_ADDRSTRLEN + sizeof(":65535@65535")];
	size_t addr_len, new_len;
	int r;

	if (!text || !valid_address(ip, port, bus_port))
		return -EINVAL;
	/* Redis creates a new node for an empty file, as it does for a missing one. */
	if (is_blank(text, len))
		return 0;
	r = scan_text(text, len, &scan);
	if (r < 0) {
		*ret_scan = scan;
		return r;
	}
	if (!scan.found)
		return -ENOENT;

	/* IPv6 without brackets, as Redis writes it: the port is after the last ':'. */
	r = snprintf(addr, sizeof(addr), "%s:%u@%u", ip, port, bus_port);
	if (r < 0 || (size_t)r >= sizeof(addr))
		return -EINVAL;
	addr_len = (size_t)r;
	/* Text, not sockaddr, is compared: an address spelt differently is rewritten in the caller's spelling. */
	if (addr_len == scan.addr_len && memcmp(text + scan.addr_off, addr, addr_len) == 0)
		return 0;

	new_len = len - scan.addr_len + addr_len;
	new_text = malloc(new_len + 1);
	old = ret_old ? strndup(text + scan.addr_off, scan.addr_len) : NULL;
	if (!new_text || (ret_old && !old)) {
		free(new_text);
		free(old);
		return -ENOMEM;
	}
	memcpy(new_text, text, scan.addr_off);
	memcpy(new_text + scan.addr_off, addr, addr_len);
	memcpy(new_text + scan.addr_off + addr_len, text + scan.addr_off + scan.addr_len,
	       len - scan.addr_off - scan.addr_len);
	new_text[new_len] = '\0';
	if (ret_old)
		*ret_old = old;
	*ret_text = new_text;
	return 1;
}

int node_nodes_conf_fix_text(const char *text, size_t len, const char *ip, unsigned port, unsigned bus_port,
			     char **ret_text, char **ret_old)
{
	struct nodes_conf_scan scan;

	return fix_text(text, len, ip, port, bus_port, &scan, ret_text, ret_old);
}

/* ---- the file ---- */

/* Reads all of fd; the size from fstat is only a hint, as the file may change while it is read. */
static int read_all(int fd, size_t hint, char **ret_buf, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	size_t size = hint + 1, len = 0; /* one spare byte sees EOF without growing the buffer */

	buf = malloc(size);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == size) {
			char *bigger;

			size = size < 4096 ? 4096 : size * 2;
			bigger = realloc(buf, size);
			if (!bigger)
				return -ENOMEM;
			buf = bigger;
		}
		n = read(fd, buf + len, size - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > NODES_CONF_MAX)
			return -EFBIG;
	}
	*ret_buf = buf;
	buf = NULL;
	*ret_len = len;
	return 0;
}

int node_nodes_conf_repair(const char *path, const char *ip, unsigned port, unsigned bus_port, char **ret_old,
			   struct init_error *err)
{
	_cleanup_free_ char *text = NULL, *new_text = NULL, *old = NULL;
	_cleanup_close_ int fd = -1;
	struct nodes_conf_scan scan = {.line = 0};
	struct init_error werr;
	struct stat st;
	size_t len = 0;
	int r;

	if (!valid_address(ip, port, bus_port))
		return init_error_set(err, -EINVAL, "cannot rewrite '%s': invalid address '%s:%u@%u'", path,
				      ip ? ip : "", port, bus_port);
	/* O_NONBLOCK: a FIFO in its place must not hang PID 1; it is refused below. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = -errno;
		if (r == -ENOENT)
			return 0;
		return init_error_set(err, r, "cannot open '%s': %s", path, strerror(-r));
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		return init_error_set(err, r, "cannot stat '%s': %s", path, strerror(-r));
	}
	if (!S_ISREG(st.st_mode))
		return init_error_set(err, -EINVAL, "'%s' is not a regular file", path);
	/* the size is checked before the read too, so that no such buffer is ever allocated */
	r = (uint64_t)st.st_size > NODES_CONF_MAX ? -EFBIG : read_all(fd, (size_t)st.st_size, &text, &len);
	if (r == -EFBIG) {
		/* the size it has now, when it grew past the limit while it was read */
		(void)fstat(fd, &st);
		return init_error_set(err, -EBADMSG, "'%s' is corrupt (%jd bytes: a nodes.conf is at most 64 MiB): %s",
				      path, (intmax_t)st.st_size, RECOVERY_HINT);
	}
	if (r < 0)
		return init_error_set(err, r, "cannot read '%s': %s", path, strerror(-r));

	r = fix_text(text, len, ip, port, bus_port, &scan, &new_text, &old);
	if (r == -EBADMSG)
		return init_error_set(err, r, "'%s' is corrupt (%s, line %u): %s", path, scan.what, scan.line,
				      RECOVERY_HINT);
	/* Redis refuses to load such a file just as it refuses a corrupt one, and the way out is the same. */
	if (r == -ENOENT)
		return init_error_set(err, -EBADMSG, "'%s' has no 'myself' line: %s", path, RECOVERY_HINT);
	if (r < 0)
		return init_error_set(err, r, "cannot rewrite '%s': %s", path, strerror(-r));
	if (r == 0)
		return 0;

	r = init_write_file_atomic(path, new_text, strlen(new_text), st.st_mode & 07777, st.st_uid, st.st_gid, &werr);
	if (r < 0)
		return init_error_set(err, r, "cannot rewrite '%s': %s", path, werr.msg);
	if (ret_old) {
		*ret_old = old;
		old = NULL;
	}
	return 1;
}
