/* SPDX-License-Identifier: MIT */
/*
 * The users file's parser (node_acl_parse) and its rendering (node_acl_render). Input: the text of a users file.
 * Properties: it never crashes; on -EINVAL the message starts with "line N: " (N within the text's lines) or names
 * the NUL byte, and *ret is left alone; on 0 no user is 'default', no rule is a plain-text password ('>'), nopass or
 * a hash that is not 64 lowercase hex digits, and the rendered `user` lines read back the way the server reads its
 * config (sdssplitargs) give each user's name and rules byte for byte.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "node.h"

#include "../ref_splitargs.h"

#define MAX_ARGS 8192

static unsigned count_lines(const uint8_t *data, size_t size)
{
	unsigned n = 1;

	for (size_t i = 0; i < size; i++)
		n += data[i] == '\n';
	return n;
}

static void check_rendered(const struct node_acl *acl)
{
	static struct ref_arg args[MAX_ARGS];
	char *text = NULL, *line = NULL;
	const char *pos;
	size_t len = 0, k = 0;
	FILE *f = open_memstream(&text, &len);
	int r;

	if (!f)
		abort();
	node_acl_render(f, acl, false);
	if (fclose(f) != 0)
		abort();
	pos = text;
	while ((r = ref_config_next_line(&pos, &line)) == 1) {
		const struct node_acl_user *u;
		int n = ref_split_args(line, args, MAX_ARGS);

		FUZZ_CHECK(k < acl->n, "more lines rendered than users (%zu)", acl->n);
		u = &acl->user[k++];
		FUZZ_CHECK(n >= 2, "user '%s': the server cannot split its line (%d)", u->name, n);
		FUZZ_CHECK((size_t)n == u->n_rules + 2, "user '%s': %d arguments, %zu rules", u->name, n, u->n_rules);
		FUZZ_CHECK(strcmp(args[0].data, "user") == 0 && strcmp(args[1].data, u->name) == 0, "user '%s' renamed",
			   u->name);
		for (size_t i = 0; i < u->n_rules; i++)
			FUZZ_CHECK(args[i + 2].len == strlen(u->rules[i]) && strcmp(args[i + 2].data, u->rules[i]) == 0,
				   "user '%s': rule '%s' read back as '%s'", u->name, u->rules[i], args[i + 2].data);
		ref_args_free(args, n);
		free(line);
	}
	FUZZ_CHECK(r == 0 && k == acl->n, "%zu users, %zu lines rendered", acl->n, k);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct node_acl untouched = {.n = 12345};
	struct node_acl acl = untouched;
	struct init_error err = {{0}};
	unsigned line;
	int r = node_acl_parse((const char *)data, size, &acl, &err);

	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL || r == -ENOMEM, "unexpected %d", r);
		FUZZ_CHECK(acl.n == 12345 && !acl.user, "the result was written on failure");
		if (r == -EINVAL && strncmp(err.msg, "a NUL byte", 10) != 0) {
			FUZZ_CHECK(sscanf(err.msg, "line %u: ", &line) == 1, "message without its line: %s", err.msg);
			FUZZ_CHECK(line >= 1 && line <= count_lines(data, size), "line %u of %u", line,
				   count_lines(data, size));
		}
		return 0;
	}
	FUZZ_CHECK(r == 0, "unexpected %d", r);
	for (size_t i = 0; i < acl.n; i++) {
		const struct node_acl_user *u = &acl.user[i];

		FUZZ_CHECK(strcmp(u->name, "default") != 0, "the default user was taken");
		for (size_t k = 0; k < u->n_rules; k++) {
			const char *rule = u->rules[k];

			FUZZ_CHECK(rule[0] != '>' && strcmp(rule, "nopass") != 0, "user '%s': '%s' taken", u->name,
				   rule);
			FUZZ_CHECK(rule[0] != '#' || (strlen(rule) == 65 && strspn(rule + 1, "0123456789abcdef") == 64),
				   "user '%s': hash '%s' taken", u->name, rule);
		}
	}
	check_rendered(&acl);
	node_acl_free(&acl);
	return 0;
}
