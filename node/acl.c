/* SPDX-License-Identifier: MIT */
/*
 * ACL users from a file (REDIS_ACLFILE, else the Docker secret redis_users): users in the server's ACL file syntax,
 * one `user <name> <rule>...` a line, that kvinit checks, renders into the server config (render.c) and applies to
 * the running server when the file changes (runtime.c starts node_acl_apply in a helper beside the server).
 *
 * The default user is kvinit's (its passwords rotate, secrets/rotation.c): the file may not name it. A password is
 * never in the file in plain text: `#<sha256>` as the server takes it, or `<name`, which kvinit reads from the file
 * `name` beside the users file (another Docker secret, another key of the same Kubernetes Secret) and turns into its
 * `#<sha256>`. In the server's own syntax `<password` removes a password, which a users file has no use for: every
 * user is reset before its rules apply.
 *
 * Parsing and rendering are pure; node_acl_resolve and node_acl_load read files; node_acl_apply talks to the server.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"

/* The user node_acl_apply tries a changed file's rules on first: the file may not define it. */
#define ACL_CHECK_USER "kvinit-acl-check"
#define ACL_NAME_MAX   64

static const char name_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:@";
static const char file_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-";
static const char command_chars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:|@";

/* Rules that are a word of their own; nopass and the password forms are handled before. */
static const char *const words[] = {
	"on",	       "off",	     "allkeys",	  "resetkeys", "allchannels",	 "resetchannels",
	"allcommands", "nocommands", "resetpass", "reset",     "clearselectors",
};

static void user_free(struct node_acl_user *u)
{
	for (size_t i = 0; i < u->n_rules; i++)
		free(u->rules[i]);
	free(u->rules);
	free(u->name);
	*u = (struct node_acl_user){0};
}

void node_acl_free(struct node_acl *acl)
{
	for (size_t i = 0; i < acl->n; i++)
		user_free(&acl->user[i]);
	free(acl->user);
	for (size_t i = 0; i < acl->n_files; i++)
		free(acl->files[i]);
	free(acl->files);
	*acl = (struct node_acl){0};
}

bool node_acl_rule_is_file(const char *rule)
{
	return rule[0] == '<';
}

static bool all_of(const char *s, const char *set)
{
	return *s && strspn(s, set) == strlen(s);
}

/*
 * One rule, as the line number and the token shown in err. Returns 0 or -EINVAL with the rule it broke; only the
 * token's form is checked: whether a command or category exists is the server's to say (node_acl_apply asks it).
 */
static int check_rule(unsigned line, const char *tok, struct init_error *err)
{
	const char *body = tok + 1;
	size_t len = strlen(tok);

	for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
		if (strcmp(tok, words[i]) == 0)
			return 0;
	if (strcmp(tok, "nopass") == 0)
		return init_error_set(err, -EINVAL,
				      "line %u: 'nopass': lets anyone in as this user; give it a password ('#<sha256>' "
				      "or '<file')",
				      line);
	switch (tok[0]) {
	case '>':
		/* the password itself is not shown */
		return init_error_set(
			err, -EINVAL,
			"line %u: '>...': a password in plain text; write it to a file beside this one and "
			"name it as '<file', or give its '#<sha256>'",
			line);
	case '#':
		if (len != 65 || strspn(body, "0123456789abcdef") != 64)
			return init_error_set(
				err, -EINVAL,
				"line %u: '%.80s': a password hash is '#' and 64 lowercase hex digits (the "
				"SHA-256 of the password, as sha256sum prints it)",
				line, tok);
		return 0;
	case '<':
		if (!all_of(body, file_chars) || body[0] == '.' || len > NAME_MAX + 1)
			return init_error_set(
				err, -EINVAL,
				"line %u: '%.80s': a password file is '<' and the name of a file beside the "
				"users file (letters, digits, '.', '_', '-'; not starting with '.')",
				line, tok);
		return 0;
	case '!':
		return init_error_set(
			err, -EINVAL,
			"line %u: '%.80s': removing a password has no place in a users file (kvinit resets "
			"every user before it applies the file's rules)",
			line, tok);
	case '~':
	case '&':
		if (!*body)
			return init_error_set(err, -EINVAL, "line %u: '%s': an empty pattern", line, tok);
		return 0;
	case '%': {
		size_t perms = strspn(body, "RW");

		if (perms == 0 || body[perms] != '~' || !body[perms + 1])
			return init_error_set(err, -EINVAL,
					      "line %u: '%.80s': a key permission is '%%R~', '%%W~' or '%%RW~' and a "
					      "pattern",
					      line, tok);
		return 0;
	}
	case '+':
	case '-': {
		const char *bar = strchr(body, '|');

		if (!all_of(body, command_chars) || strchr(body + 1, '@') || (body[0] == '@' && bar) ||
		    (bar && (bar == body || !bar[1] || strchr(bar + 1, '|'))))
			return init_error_set(err, -EINVAL,
					      "line %u: '%.80s': a command rule is '+' or '-' and a command, "
					      "command|subcommand or @category",
					      line, tok);
		return 0;
	}
	case '(':
		return init_error_set(err, -EINVAL,
				      "line %u: '%.80s': selectors ('(...)') are not supported in a users file", line,
				      tok);
	default:
		return init_error_set(err, -EINVAL,
				      "line %u: '%.80s': not an ACL rule (on, off, '#<sha256>', '<file', '~pattern', "
				      "'%%RW~pattern', '&channel', '+command', '-command', '+@category', allkeys, "
				      "allchannels, allcommands, nocommands, reset...)",
				      line, tok);
	}
}

static int add_rule(struct node_acl_user *u, const char *tok)
{
	char **rules = realloc(u->rules, (u->n_rules + 1) * sizeof(*rules));
	char *copy;

	if (!rules)
		return -ENOMEM;
	u->rules = rules;
	copy = strdup(tok);
	if (!copy)
		return -ENOMEM;
	u->rules[u->n_rules++] = copy;
	return 0;
}

/* One line's tokens (split at blanks, in place) after "user": the name, then the rules. */
static int parse_user(struct node_acl *acl, unsigned line, char **tok, size_t n, struct init_error *err)
{
	struct node_acl_user u = {.line = line};
	struct node_acl_user *grown;
	int r;

	if (n < 2)
		return init_error_set(err, -EINVAL, "line %u: 'user' needs a name, then its rules", line);
	if (!all_of(tok[1], name_chars) || strlen(tok[1]) > ACL_NAME_MAX)
		return init_error_set(err, -EINVAL,
				      "line %u: user '%.80s': a user name is 1 to %d letters, digits, '.', '_', '-', "
				      "':' or '@'",
				      line, tok[1], ACL_NAME_MAX);
	if (strcmp(tok[1], "default") == 0)
		return init_error_set(err, -EINVAL,
				      "line %u: user 'default': the default user is kvinit's (its password comes from "
				      "REDIS_PASSWORD_FILE and rotates); give the file's users names of their own",
				      line);
	if (strcmp(tok[1], ACL_CHECK_USER) == 0)
		return init_error_set(err, -EINVAL, "line %u: user '%s': the name is kvinit's own", line,
				      ACL_CHECK_USER);
	for (size_t i = 0; i < acl->n; i++)
		if (strcmp(acl->user[i].name, tok[1]) == 0)
			return init_error_set(err, -EINVAL, "line %u: user '%s' is already defined on line %u", line,
					      tok[1], acl->user[i].line);
	if (acl->n >= NODE_ACL_MAX_USERS)
		return init_error_set(err, -EINVAL, "line %u: more than %d users", line, NODE_ACL_MAX_USERS);
	for (size_t i = 2; i < n; i++) {
		r = check_rule(line, tok[i], err);
		if (r < 0)
			return r;
	}
	grown = realloc(acl->user, (acl->n + 1) * sizeof(*grown));
	if (!grown)
		return init_error_set(err, -ENOMEM, "out of memory");
	acl->user = grown;
	u.name = strdup(tok[1]);
	r = u.name ? 0 : -ENOMEM;
	for (size_t i = 2; i < n && r == 0; i++)
		r = add_rule(&u, tok[i]);
	if (r < 0) {
		user_free(&u);
		return init_error_set(err, r, "out of memory");
	}
	acl->user[acl->n++] = u;
	return 0;
}

int node_acl_parse(const char *text, size_t len, struct node_acl *ret, struct init_error *err)
{
	_cleanup_(node_acl_free) struct node_acl acl = {0};
	_cleanup_free_ char *copy = NULL;
	_cleanup_free_ char **tok = NULL;
	char *line, *next;
	unsigned number = 0;
	int r;

	if (memchr(text, '\0', len))
		return init_error_set(err, -EINVAL, "a NUL byte: not a text file");
	copy = strndup(text, len);
	tok = calloc(len / 2 + 2, sizeof(*tok));
	if (!copy || !tok)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (line = copy; line; line = next) {
		size_t n = 0;
		char *p, *save = NULL;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		number++;
		p = line + strlen(line);
		if (p > line && p[-1] == '\r')
			p[-1] = '\0';
		for (p = line; *p; p++)
			if ((unsigned char)*p < 0x20 && *p != '\t')
				return init_error_set(err, -EINVAL, "line %u: a control character (byte 0x%02x)",
						      number, (unsigned char)*p);
			else if ((unsigned char)*p == 0x7f)
				return init_error_set(err, -EINVAL, "line %u: a control character (byte 0x7f)", number);
		for (p = strtok_r(line, " \t", &save); p; p = strtok_r(NULL, " \t", &save))
			tok[n++] = p;
		if (n == 0 || tok[0][0] == '#')
			continue;
		if (strcmp(tok[0], "user") != 0)
			return init_error_set(
				err, -EINVAL,
				"line %u: '%.80s': every line is 'user <name> <rules>...', a comment ('#') "
				"or blank",
				number, tok[0]);
		r = parse_user(&acl, number, tok, n, err);
		if (r < 0)
			return r;
	}
	*ret = acl;
	acl = (struct node_acl){0};
	return 0;
}

int node_acl_resolve(struct node_acl *acl, const char *dir, struct init_error *err)
{
	for (size_t i = 0; i < acl->n; i++) {
		struct node_acl_user *u = &acl->user[i];

		for (size_t k = 0; k < u->n_rules; k++) {
			_cleanup_(secrets_wipe) struct secrets_value pw = {0};
			char path[PATH_MAX], hash[65], *rule, **files;
			int r;

			if (!node_acl_rule_is_file(u->rules[k]))
				continue;
			if (snprintf(path, sizeof(path), "%s/%s", dir, u->rules[k] + 1) >= (int)sizeof(path))
				return init_error_set(err, -ENAMETOOLONG, "line %u: '%s': the path is too long",
						      u->line, u->rules[k]);
			r = secrets_read_file(path, &pw, NULL);
			if (r < 0)
				return init_error_set(err, -EINVAL, "line %u: the password file '%s': %s", u->line,
						      path, secrets_strerror(r));
			secrets_sha256_hex(pw.data, pw.len, hash);
			files = realloc(acl->files, (acl->n_files + 1) * sizeof(*files));
			if (!files)
				return init_error_set(err, -ENOMEM, "out of memory");
			acl->files = files;
			acl->files[acl->n_files] = strdup(path);
			if (asprintf(&rule, "#%s", hash) < 0 || !acl->files[acl->n_files]) {
				free(acl->files[acl->n_files]);
				return init_error_set(err, -ENOMEM, "out of memory");
			}
			acl->n_files++;
			free(u->rules[k]);
			u->rules[k] = rule;
		}
	}
	return 0;
}

int node_acl_load(const char *path, struct node_acl *ret, struct init_error *err)
{
	_cleanup_(node_acl_free) struct node_acl acl = {0};
	_cleanup_free_ char *buf = malloc(NODE_ACL_FILE_MAX + 2);
	char dir[PATH_MAX], shown[320];
	struct init_error why;
	int n, r;

	if (!buf)
		return init_error_set(err, -ENOMEM, "out of memory");
	init_escape_control(shown, sizeof(shown), path);
	n = init_read_file_bounded(path, INIT_READ_BENEATH, buf, NODE_ACL_FILE_MAX + 2, NULL);
	if (n < 0)
		return init_error_set(err, n == -EILSEQ ? -EINVAL : n, "the users file '%s': %s", shown,
				      n == -EFBIG ? "larger than 256 KiB" : secrets_strerror(n));
	r = node_acl_parse(buf, (size_t)n, &acl, &why);
	(void)snprintf(dir, sizeof(dir), "%s", path);
	if (r == 0)
		r = node_acl_resolve(&acl, dirname(dir), &why);
	explicit_bzero(buf, (size_t)n);
	if (r < 0)
		return init_error_set(err, r, "the users file '%s', %s", shown, why.msg);
	*ret = acl;
	acl = (struct node_acl){0};
	return 0;
}

static bool user_equal(const struct node_acl_user *a, const struct node_acl_user *b)
{
	if (strcmp(a->name, b->name) != 0 || a->n_rules != b->n_rules)
		return false;
	for (size_t i = 0; i < a->n_rules; i++)
		if (strcmp(a->rules[i], b->rules[i]) != 0)
			return false;
	return true;
}

const struct node_acl_user *node_acl_find(const struct node_acl *acl, const char *name)
{
	for (size_t i = 0; i < acl->n; i++)
		if (strcmp(acl->user[i].name, name) == 0)
			return &acl->user[i];
	return NULL;
}

bool node_acl_equal(const struct node_acl *a, const struct node_acl *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (!user_equal(&a->user[i], &b->user[i]))
			return false;
	return true;
}

bool node_acl_user_changed(const struct node_acl *from, const struct node_acl_user *u)
{
	const struct node_acl_user *was = node_acl_find(from, u->name);

	return !was || !user_equal(was, u);
}

void node_acl_render(FILE *f, const struct node_acl *acl, bool redact)
{
	for (size_t i = 0; i < acl->n; i++) {
		const struct node_acl_user *u = &acl->user[i];

		(void)fprintf(f, "user %s", u->name); /* checked: name_chars only */
		for (size_t k = 0; k < u->n_rules; k++) {
			(void)fputc(' ', f);
			if (redact && u->rules[k][0] == '#')
				(void)fputs("#<redacted>", f);
			else
				node_write_config_value(f, u->rules[k]);
		}
		(void)fputc('\n', f);
	}
}

/* ---- applying a change to the running server: in a helper process beside it (runtime.c) ---- */

/* ACL SETUSER name reset rules... [off]; the server's error in err. */
static int set_user(struct node_conn *ctx, const char *name, const struct node_acl_user *u, bool off,
		    struct init_error *err)
{
	_cleanup_free_ const char **argv = calloc(u->n_rules + 5, sizeof(*argv));
	redisReply *reply;
	int argc = 0, r = 0;

	if (!argv)
		return init_error_set(err, -ENOMEM, "out of memory");
	argv[argc++] = "ACL";
	argv[argc++] = "SETUSER";
	argv[argc++] = name;
	argv[argc++] = "reset";
	for (size_t i = 0; i < u->n_rules; i++)
		argv[argc++] = u->rules[i];
	if (off)
		argv[argc++] = "off";
	reply = node_command_argv(ctx, argc, argv, NULL);
	if (!reply || reply->type == REDIS_REPLY_ERROR)
		r = init_error_set(err, reply ? -EINVAL : -EIO, "%s", reply ? reply->str : ctx->errstr);
	freeReplyObject(reply);
	return r;
}

static int del_user(struct node_conn *ctx, const char *name, struct init_error *err)
{
	redisReply *reply = node_command(ctx, "ACL DELUSER %s", name);
	int r = 0;

	if (!reply || reply->type == REDIS_REPLY_ERROR)
		r = init_error_set(err, reply ? -EREMOTEIO : -EIO, "%s", reply ? reply->str : ctx->errstr);
	freeReplyObject(reply);
	return r;
}

/*
 * Every changed user's rules on ACL_CHECK_USER first, kept off: the server knows its commands and categories, so
 * a rule it refuses is found before any user changed, and the running users stay as they were.
 */
static int try_rules(struct node_conn *ctx, const struct node_acl *want, const size_t *set, size_t n_set)
{
	struct init_error why, ignored;
	int r = 0;

	for (size_t i = 0; i < n_set && r == 0; i++) {
		const struct node_acl_user *u = &want->user[set[i]];

		r = set_user(ctx, ACL_CHECK_USER, u, true, &why);
		if (r == -EINVAL)
			log_error("users file: the server refuses user '%s' (line %u): %s; the file is ignored, the "
				  "running users stay",
				  u->name, u->line, why.msg);
		else if (r < 0)
			log_error("users file: cannot try user '%s' on the server: %s", u->name, why.msg);
	}
	(void)del_user(ctx, ACL_CHECK_USER, &ignored);
	return r;
}

/* One pass over a connection: -EIO when the connection failed (the caller connects again), else final. */
static int apply_once(struct node_conn *ctx, const struct node_acl *want, const size_t *set, size_t n_set,
		      const struct node_acl *applied, const char *const *stale, size_t n_stale, unsigned *ret_gone)
{
	struct init_error why;
	unsigned gone = 0;
	int r;

	r = try_rules(ctx, want, set, n_set);
	for (size_t i = 0; i < n_set && r == 0; i++) {
		const struct node_acl_user *u = &want->user[set[i]];

		r = set_user(ctx, u->name, u, false, &why);
		if (r < 0)
			log_error("users file: ACL SETUSER '%s' failed: %s", u->name, why.msg);
	}
	/* users that left the file: DELUSER also closes their connections */
	for (size_t i = 0; i < applied->n + n_stale && r == 0; i++) {
		const char *name = i < applied->n ? applied->user[i].name : stale[i - applied->n];

		if (node_acl_find(want, name) || (i >= applied->n && node_acl_find(applied, name)))
			continue;
		r = del_user(ctx, name, &why);
		if (r < 0)
			log_error("users file: ACL DELUSER '%s' failed: %s", name, why.msg);
		gone++;
	}
	if (r == 0)
		*ret_gone = gone;
	return r;
}

int node_acl_apply(const struct node_options *o, const struct secrets_rotation *rot, const struct secrets_value *login,
		   size_t n_login, const struct node_acl *want, const struct node_acl *applied,
		   const char *const *stale, size_t n_stale)
{
	_cleanup_free_ size_t *set = calloc(want->n + 1, sizeof(*set)); /* the users to set, by index */
	size_t n_set = 0;
	unsigned gone = 0;
	int r;

	if (!set) {
		log_error("users file: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < want->n; i++) {
		bool dirty = false;

		for (size_t k = 0; k < n_stale; k++)
			dirty = dirty || strcmp(stale[k], want->user[i].name) == 0;
		if (dirty || node_acl_user_changed(applied, &want->user[i]))
			set[n_set++] = i;
	}
	/*
	 * Every step can be taken again: a server that restarted meanwhile started from the config with the users of
	 * applied, so the same steps bring it to want. Only a refusal of the server is final.
	 */
	for (;;) {
		struct node_conn *ctx = node_rotate_connect(o, rot, login, n_login, "users file");

		r = apply_once(ctx, want, set, n_set, applied, stale, n_stale, &gone);
		node_conn_free(ctx);
		if (r != -EIO)
			break;
		log_warn("users file: the connection to the server failed, trying again");
		init_sleep_ms(200);
	}
	if (r == 0)
		log_info("users file applied: %zu user%s set, %u removed, %zu unchanged", n_set, n_set == 1 ? "" : "s",
			 gone, want->n - n_set);
	return r;
}
