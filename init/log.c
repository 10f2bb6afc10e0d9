/* SPDX-License-Identifier: MIT */
/* Log lines go to stderr whole, in one write(), so lines from kvinit and its child never interleave mid-line. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "init.h"

static enum init_log_level max_level = INIT_LOG_INFO;
static enum init_log_format log_format = INIT_LOG_TEXT;

static const char *const level_names[] = {"error", "warn", "info", "debug"};

void init_log_setup(enum init_log_level level, enum init_log_format format)
{
	max_level = level;
	log_format = format;
}

bool init_log_enabled(enum init_log_level level)
{
	return level <= max_level;
}

/* Appends s to buf as the inside of a JSON string; returns the new length, never past size - 1. */
static size_t json_escape(char *buf, size_t len, size_t size, const char *s)
{
	for (; *s && len + 7 < size; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\') {
			buf[len++] = '\\';
			buf[len++] = (char)c;
		} else if (c < 0x20) {
			len += (size_t)snprintf(buf + len, size - len, "\\u%04x", c);
		} else {
			buf[len++] = (char)c;
		}
	}
	buf[len] = '\0';
	return len;
}

void init_log(enum init_log_level level, const char *fmt, ...)
{
	char msg[1024], line[2048];
	int saved_errno = errno;
	size_t len;
	va_list ap;

	if (!init_log_enabled(level))
		return;

	va_start(ap, fmt);
	/* clang-tidy 14 loses track of va_start in every file it analyzes after the first, hence the NOLINTs */
	(void)vsnprintf(msg, sizeof(msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);

	if (log_format == INIT_LOG_JSON) {
		len = (size_t)snprintf(line, sizeof(line),
				       "{\"level\":\"%s\",\"prog\":\"kvinit\",\"pid\":%d,\"msg\":\"",
				       level_names[level], (int)getpid());
		len = json_escape(line, len, sizeof(line) - 3, msg);
		memcpy(line + len, "\"}\n", 4);
		len += 3;
	} else {
		int n = snprintf(line, sizeof(line), "%s kvinit[%d]: %s\n", level_names[level], (int)getpid(), msg);

		len = n < 0 ? 0 : ((size_t)n >= sizeof(line) ? sizeof(line) - 1 : (size_t)n);
		if (len == sizeof(line) - 1)
			line[len - 1] = '\n';
	}
	/* A failed write of a log line has nowhere to be reported. */
	while (write(STDERR_FILENO, line, len) < 0 && errno == EINTR)
		;
	errno = saved_errno;
}

int init_error_set(struct init_error *err, int code, const char *fmt, ...)
{
	va_list ap;

	if (!err)
		return code;
	va_start(ap, fmt);
	(void)vsnprintf(err->msg, sizeof(err->msg), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	return code;
}

int init_exit_status(int r, int failure)
{
	if (r >= 0)
		return r;
	switch (-r) {
	case EINVAL:
	case ERANGE:
	case EBADMSG:
	case E2BIG:
	case ENAMETOOLONG:
		return INIT_EXIT_USAGE;
	default:
		return failure;
	}
}
