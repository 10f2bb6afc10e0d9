/* SPDX-License-Identifier: MIT */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>

#include "init.h"

uint64_t init_now_usec(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / 1000;
}

/* Sleeps the whole time even when a handled signal interrupts it: callers poll, and a short pause would spin. */
void init_sleep_ms(unsigned ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Decimal only: "010" is ten, never eight. Rejects, never clamps. */
int init_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret_value)
{
	char *end;
	long long v;

	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno || end == s || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret_value = v;
	return 0;
}

/* "8s", "500ms", "2m", "1h"; a bare number means seconds. */
int init_parse_duration_ms(const char *s, int64_t *ret_ms)
{
	static const struct {
		const char *suffix;
		int64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
	char *end;
	long long v;

	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s)
		return -EINVAL;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (v > INT64_MAX / units[i].ms)
			return -ERANGE;
		*ret_ms = v * units[i].ms;
		return 0;
	}
	return -EINVAL;
}

int init_parse_bool(const char *s, bool *ret_value)
{
	static const char *const yes[] = {"yes", "true", "on", "1"}, *const no[] = {"no", "false", "off", "0"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret_value = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret_value = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* A control character in a value that reaches a config file could inject a directive. */
bool init_has_control_chars(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return true;
	return false;
}

/*
 * value for an error line: control characters shown as \xHH, never written raw to the log. A value too long for
 * buf is shown by its start and its length ("/very/long/pa... (131072 bytes)"), so what the line says after it,
 * the reason, still fits the message.
 */
void init_escape_control(char *buf, size_t size, const char *value)
{
	size_t len = 0, shown = 0, total = strlen(value), room = size;
	char tail[48] = "";

	if (!size)
		return;
	for (const char *p = value; *p; p++)
		shown += (unsigned char)*p < 0x20 || (unsigned char)*p == 0x7f ? 4 : 1;
	if (shown >= size) {
		(void)snprintf(tail, sizeof(tail), "... (%zu bytes)", total);
		room = size > strlen(tail) + 1 ? size - strlen(tail) : 1;
	}
	for (; *value; value++) {
		unsigned char c = (unsigned char)*value;
		size_t need = c < 0x20 || c == 0x7f ? 4 : 1;

		if (len + need >= room)
			break;
		if (need == 4)
			len += (size_t)snprintf(buf + len, size - len, "\\x%02x", c);
		else
			buf[len++] = (char)c;
	}
	buf[len] = '\0';
	if (*tail && room > 1)
		(void)snprintf(buf + len, size - len, "%s", tail);
}

/* NAME's value in an environment block (possibly empty), or NULL; tests pass their own blocks. */
const char *init_env_lookup(char *const *envp, const char *name)
{
	size_t n = strlen(name);

	for (; envp && *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

const char *init_signal_name(int sig)
{
	static char buf[16];
	const char *abbrev = sigabbrev_np(sig);

	if (!abbrev) {
		(void)snprintf(buf, sizeof(buf), "signal %d", sig);
		return buf;
	}
	(void)snprintf(buf, sizeof(buf), "SIG%s", abbrev);
	return buf;
}

/* The largest unit that shows ms exactly: 3600000 is "1h", 90000 is "90s", 1500 is "1500ms". */
void init_format_duration(char *buf, size_t size, uint64_t ms)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"h", 3600000}, {"m", 60000}, {"s", 1000}};

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (ms && ms % units[i].ms == 0) {
			(void)snprintf(buf, size, "%llu%s", (unsigned long long)(ms / units[i].ms), units[i].unit);
			return;
		}
	}
	(void)snprintf(buf, size, "%llums", (unsigned long long)ms);
}

/*
 * Delay before restart number `restart` (1-based): the first is immediate so a one-off crash costs nothing,
 * then 1s, 2s, 4s ... up to cap_ms, so a crash loop does not burn the CPU or flood the log.
 */
uint64_t init_backoff_delay_ms(unsigned restart, uint64_t cap_ms)
{
	uint64_t delay = 1000;

	if (restart <= 1)
		return 0;
	for (unsigned i = 2; i < restart && delay < cap_ms; i++)
		delay *= 2;
	return delay < cap_ms ? delay : cap_ms;
}

/* Reads hexadecimal masks such as SigIgn and CapBnd from /proc/self/status in one pass. */
int init_proc_status_masks(uint64_t *ret_sigign, uint64_t *ret_capbnd)
{
	_cleanup_close_ int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	char buf[4096], *p;
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	if (n <= 0)
		return n < 0 ? -errno : -EIO;
	buf[n] = '\0';
	p = strstr(buf, "\nSigIgn:");
	if (!p)
		return -EIO;
	*ret_sigign = strtoull(p + 9, NULL, 16);
	p = strstr(buf, "\nCapBnd:");
	if (!p)
		return -EIO;
	*ret_capbnd = strtoull(p + 9, NULL, 16);
	return 0;
}

bool init_valid_ip(const char *s)
{
	unsigned char addr[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1;
}

/* RFC 1123: labels of 1 to 63 letters, digits and '-', not starting or ending with '-'; 253 characters at most. */
bool init_valid_hostname(const char *s)
{
	size_t label = 0, total = strlen(s);

	if (!total || total > 253)
		return false;
	for (const char *p = s;; p++) {
		if (*p == '.' || !*p) {
			if (!label || p[-1] == '-')
				return false;
			if (!*p)
				return true;
			label = 0;
			continue;
		}
		if (!isalnum((unsigned char)*p) && !(*p == '-' && label > 0))
			return false;
		if (++label > 63)
			return false;
	}
}

/* ---- atomic file writes ---- */

static int write_all(int fd, const char *p, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int fsync_directory_of(const char *path)
{
	_cleanup_close_ int fd = -1;
	_cleanup_free_ char *dir = NULL;
	const char *slash = strrchr(path, '/');

	if (!slash)
		dir = strdup(".");
	else
		dir = strndup(path, slash == path ? 1 : (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		return -errno;
	return 0;
}

/* Until the rename, a failure removes the temp file: the original is never touched. */
static void unlink_and_freep(char **p)
{
	if (*p) {
		(void)unlink(*p);
		free(*p);
	}
}

/* err gets "step: reason"; returns r. */
static int step_failed(struct init_error *err, int r, const char *step)
{
	return init_error_set(err, r, "%s: %s", step, strerror(-r));
}

/*
 * Replaces path with data atomically: a temp file in the same directory (rename is atomic only there) with the
 * given mode and owner, written, fsynced, renamed over path, then the directory fsynced. On failure err says which
 * step failed and why ("cannot create a temp file: Permission denied"), the temp file is gone and path is
 * untouched.
 */
int init_write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
			   struct init_error *err)
{
	_cleanup_(unlink_and_freep) char *tmp = NULL;
	_cleanup_close_ int fd = -1;
	int r;

	if (asprintf(&tmp, "%s.kvinit-XXXXXX", path) < 0) {
		tmp = NULL;
		return step_failed(err, -ENOMEM, "cannot name the temp file");
	}
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		free(tmp);
		tmp = NULL; /* not created: nothing to unlink, and the name may be someone else's */
		return step_failed(err, r, "cannot create a temp file");
	}
	/* The mode first: once the file is another user's, changing it would need CAP_FOWNER. */
	if (fchmod(fd, mode) < 0)
		return step_failed(err, -errno, "cannot give the temp file its mode");
	if (fchown(fd, uid, gid) < 0) {
		struct stat tmp_st;

		r = -errno;
		/* Without CAP_CHOWN (or with ids unmapped in a user namespace) only a file that already has the
		 * original's owner will do. */
		if (r != -EPERM || fstat(fd, &tmp_st) < 0 || tmp_st.st_uid != uid || tmp_st.st_gid != gid)
			return step_failed(err, r, "cannot give the temp file its owner");
	}
	r = write_all(fd, data, len);
	if (r < 0)
		return step_failed(err, r, "cannot write the temp file");
	/* fsync reports what a late write-back failed to store, so close has nothing left to tell */
	if (fsync(fd) < 0)
		return step_failed(err, -errno, "cannot sync the temp file");
	if (rename(tmp, path) < 0)
		return step_failed(err, -errno, "cannot rename the temp file over it");
	free(tmp);
	tmp = NULL;
	/* The new content is in place; without this the rename itself may not survive a crash. */
	r = fsync_directory_of(path);
	if (r < 0)
		return step_failed(err, r, "rewritten, but cannot sync its directory");
	return 0;
}
