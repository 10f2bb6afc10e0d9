/* SPDX-License-Identifier: MIT */
/*
 * A reference of how the server reads a config file, for the tests that decode what kvinit renders
 * (tests/unit/test_render.c, tests/fuzz/): lines split at '\n' and trimmed of " \t\r\n", comments and empty lines
 * skipped (loadServerConfigFromString), each line split into arguments by sdssplitargs. Written from those rules,
 * not from kvinit's code, so that a test compares kvinit with the server and not with itself. Header only.
 *
 * sdssplitargs: blanks (isspace in the C locale) separate arguments, but only ' ', '\t', '\r' and '\n' end an
 * unquoted one; a '"' or '\'' inside an argument opens a quote. "Double quotes" take \xHH, \n \r \t \b \a and
 * backslash-anything; 'single quotes' take only \'. A closing quote must be followed by a blank or the end, and a
 * quote left open is an error: the server refuses the line ("Unbalanced quotes in configuration line").
 */
#ifndef KVINIT_TESTS_REF_SPLITARGS_H
#define KVINIT_TESTS_REF_SPLITARGS_H

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* One argument, as bytes: data holds len bytes and a NUL after them. */
struct ref_arg {
	char *data;
	size_t len;
};

static inline bool ref_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static inline int ref_hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static inline void ref_args_free(struct ref_arg *args, int n)
{
	for (int i = 0; i < n; i++) {
		free(args[i].data);
		args[i] = (struct ref_arg){NULL, 0};
	}
}

/* One argument from *pp (not at a blank or the end); *pp moves past it. -EINVAL when the server refuses it. */
static inline int ref_split_one(const char **pp, struct ref_arg *ret)
{
	const char *p = *pp;
	struct ref_arg a = {malloc(strlen(p) + 1), 0};
	bool in_dq = false, in_sq = false, done = false;

	if (!a.data)
		return -ENOMEM;
	while (!done) {
		if (in_dq) {
			if (p[0] == '\\' && p[1] == 'x' && ref_hex_value(p[2]) >= 0 && ref_hex_value(p[3]) >= 0) {
				a.data[a.len++] = (char)(ref_hex_value(p[2]) * 16 + ref_hex_value(p[3]));
				p += 3;
			} else if (p[0] == '\\' && p[1]) {
				static const char from[] = "nrtba", to[] = "\n\r\t\b\a";
				const char *esc = strchr(from, *++p);

				a.data[a.len++] = esc ? to[esc - from] : *p;
			} else if (*p == '"') {
				if (p[1] && !ref_is_space(p[1]))
					break;
				done = true;
			} else if (!*p) {
				break;
			} else {
				a.data[a.len++] = *p;
			}
		} else if (in_sq) {
			if (p[0] == '\\' && p[1] == '\'') {
				a.data[a.len++] = *++p;
			} else if (*p == '\'') {
				if (p[1] && !ref_is_space(p[1]))
					break;
				done = true;
			} else if (!*p) {
				break;
			} else {
				a.data[a.len++] = *p;
			}
		} else if (!*p || *p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
			done = true;
		} else if (*p == '"') {
			in_dq = true;
		} else if (*p == '\'') {
			in_sq = true;
		} else {
			a.data[a.len++] = *p;
		}
		if (*p)
			p++;
	}
	if (!done) {
		free(a.data);
		return -EINVAL;
	}
	a.data[a.len] = '\0';
	*pp = p;
	*ret = a;
	return 0;
}

/*
 * The arguments of one line, at most max of them, into args (free them with ref_args_free). Returns their number,
 * -EINVAL when the server refuses the line, -E2BIG for more than max, or -ENOMEM; args is left empty on failure.
 */
static inline int ref_split_args(const char *line, struct ref_arg *args, int max)
{
	const char *p = line;
	int n = 0, r;

	for (;;) {
		while (*p && ref_is_space(*p))
			p++;
		if (!*p)
			return n;
		r = n == max ? -E2BIG : ref_split_one(&p, &args[n]);
		if (r < 0) {
			ref_args_free(args, n);
			return r;
		}
		n++;
	}
}

/*
 * The next line of a config text that the server splits into arguments: *pos moves past it. Returns 1 with the
 * line (malloc'd, trimmed of " \t\r\n") in *ret_line, 0 at the end of text, or -ENOMEM.
 */
static inline int ref_config_next_line(const char **pos, char **ret_line)
{
	while (**pos) {
		const char *line = *pos, *end = strchr(line, '\n');
		size_t len = end ? (size_t)(end - line) : strlen(line);

		*pos = end ? end + 1 : line + len;
		while (len && strchr(" \t\r", *line)) {
			line++;
			len--;
		}
		while (len && strchr(" \t\r", line[len - 1]))
			len--;
		if (!len || *line == '#')
			continue;
		*ret_line = strndup(line, len);
		return *ret_line ? 1 : -ENOMEM;
	}
	return 0;
}

#endif
