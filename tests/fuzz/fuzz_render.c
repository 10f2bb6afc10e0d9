/* SPDX-License-Identifier: MIT */
/*
 * Option values through the renderer (node_extra_flags_parse, node_render), the rendered config read back the way
 * the server reads it (tests/ref_splitargs.h).
 *
 * Input: a control byte, then REDIS_EXTRA_FLAGS, the password (masterauth), REDIS_DATA_DIR, REDIS_BASE_CONFIG,
 * REDIS_CLUSTER_ANNOUNCE_HOSTNAME and the announced address, separated by NUL bytes (a missing one keeps its
 * default; an empty password is none). Control bits: 0 the values go through the option layer (init_config_load,
 * as environment variables) instead of straight into the options; 1 standalone; 2 a base config is present; 3-4
 * the number of password hashes (0-2); 5 redacted; 6-7 the server (Redis 7.0, 6.2, 6.0, Valkey 8.0).
 *
 * Properties: REDIS_EXTRA_FLAGS is accepted (by the parser, the option check and the renderer alike) only when it
 * follows its rule: tokens separated by blanks, a "--directive" first, each directive lowercase letters, digits
 * and '-' with a value at least, none that kvinit owns; the tokens are the reference's. A rendered config is read
 * by the server line by line, each line one directive; it holds kvinit's directives exactly as rendered without
 * extra flags, each once, and the extra directives inserted before the ACL line, none of them one kvinit renders
 * or owns; every value decodes to the bytes given, whatever their length (no truncation). What the option layer
 * accepts reaches the renderer unchanged.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "../ref_splitargs.h"
#include "fuzz.h"
#include "node.h"

/*
 * The directives kvinit owns, as node/directives.c lists them and issue 17 requires: the reference, so that one
 * dropped from that list is found. A directive added there is refused by the parser, which this target allows.
 */
static const char *const owned[] = {
	"port",
	"bind",
	"dir",
	"daemonize",
	"include",
	"protected-mode",
	"cluster-enabled",
	"cluster-config-file",
	"cluster-node-timeout",
	"cluster-port",
	"cluster-announce-ip",
	"cluster-announce-port",
	"cluster-announce-bus-port",
	"cluster-announce-hostname",
	"cluster-preferred-endpoint-type",
	"appendonly",
	"user",
	"requirepass",
	"masterauth",
	"masteruser",
	"aclfile",
	"supervised",
	"logfile",
	NULL,
};

static const char *const hashes[] = {"5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8",
				     "6b3a55e0261b0304143f805a24924d0c1c44524821305f31d9277843b8a10f4e"};

static const struct node_server servers[] = {
	{.server_bin = "/usr/bin/redis-server", .flavor = NODE_REDIS, .version = NODE_VERSION(7, 0, 15)},
	{.server_bin = "/usr/bin/redis-server", .flavor = NODE_REDIS, .version = NODE_VERSION(6, 2, 14)},
	{.server_bin = "/usr/bin/redis-server", .flavor = NODE_REDIS, .version = NODE_VERSION(6, 0, 20)},
	{.server_bin = "/usr/bin/valkey-server", .flavor = NODE_VALKEY, .version = NODE_VERSION(8, 0, 1)},
};

enum field { F_FLAGS, F_PASSWORD, F_DIR, F_BASE, F_HOSTNAME, F_ANNOUNCE_IP, F__COUNT };

static const char *const env_names[F__COUNT] = {
	[F_FLAGS] = "REDIS_EXTRA_FLAGS",
	[F_DIR] = "REDIS_DATA_DIR",
	[F_BASE] = "REDIS_BASE_CONFIG",
	[F_HOSTNAME] = "REDIS_CLUSTER_ANNOUNCE_HOSTNAME",
	[F_ANNOUNCE_IP] = "REDIS_CLUSTER_ANNOUNCE_IP",
};

struct input {
	bool via_options, standalone, base_present, redact;
	size_t n_hashes;
	const struct node_server *server;
	const char *field[F__COUNT]; /* NULL: not given */
};

/* One directive as the server reads it: the arguments of its line, the name lowercased as the server does. */
struct directive {
	struct ref_arg *args;
	int argc;
};

struct config {
	struct directive *d;
	size_t n;
};

static void config_add(struct config *c, struct ref_arg *args, int argc)
{
	struct directive *bigger = realloc(c->d, (c->n + 1) * sizeof(*c->d));

	if (!bigger)
		abort();
	c->d = bigger;
	c->d[c->n++] = (struct directive){args, argc};
}

static void config_free(struct config *c)
{
	for (size_t i = 0; i < c->n; i++) {
		ref_args_free(c->d[i].args, c->d[i].argc);
		free(c->d[i].args);
	}
	free(c->d);
	*c = (struct config){0};
}

/* The directives of a rendered config, as the server reads them: every line must be one it can read. */
static void decode(const char *text, struct config *ret)
{
	const char *pos = text;
	char *line;
	int r;

	FUZZ_CHECK(*text && text[strlen(text) - 1] == '\n', "the config does not end with a line end");
	*ret = (struct config){0};
	while ((r = ref_config_next_line(&pos, &line)) > 0) {
		int max = (int)(strlen(line) / 2 + 2), argc;
		struct ref_arg *args = calloc((size_t)max, sizeof(*args));

		if (!args)
			abort();
		argc = ref_split_args(line, args, max);
		FUZZ_CHECK(argc > 0, "a line the server cannot read (%d): '%.200s'", argc, line);
		for (size_t i = 0; i < args[0].len; i++)
			args[0].data[i] = (char)tolower((unsigned char)args[0].data[i]);
		config_add(ret, args, argc);
		free(line);
	}
	FUZZ_CHECK(r == 0, "out of memory");
}

static bool arg_is(const struct ref_arg *a, const char *s, size_t len)
{
	return a->len == len && memcmp(a->data, s, len) == 0;
}

/* got is want, argument for argument, byte for byte. */
static void check_directive(size_t i, const struct directive *got, const struct directive *want)
{
	FUZZ_CHECK(got->argc == want->argc, "directive %zu is '%.80s' with %d arguments, not '%.80s' with %d", i,
		   got->args[0].data, got->argc, want->args[0].data, want->argc);
	for (int k = 0; k < got->argc; k++)
		FUZZ_CHECK(arg_is(&got->args[k], want->args[k].data, want->args[k].len),
			   "directive %zu '%.80s': argument %d decodes to %zu bytes '%.80s', not the %zu given '%.80s'",
			   i, want->args[0].data, k, got->args[k].len, got->args[k].data, want->args[k].len,
			   want->args[k].data);
}

static const struct directive *find(const struct config *c, const char *name)
{
	for (size_t i = 0; i < c->n; i++)
		if (strcmp(c->d[i].args[0].data, name) == 0)
			return &c->d[i];
	return NULL;
}

/* What kvinit renders as a default that REDIS_EXTRA_FLAGS, written after it, may set again (render.c). */
static const char *const defaults[] = {"repl-diskless-sync-delay", NULL};

static bool is_default(const char *name)
{
	for (size_t i = 0; defaults[i]; i++)
		if (strcmp(name, defaults[i]) == 0)
			return true;
	return false;
}

static bool is_owned(const char *name)
{
	for (size_t i = 0; owned[i]; i++)
		if (strcmp(name, owned[i]) == 0)
			return true;
	return false;
}

/* ---- the reference of REDIS_EXTRA_FLAGS ---- */

enum verdict { REF_OK, REF_RULE, REF_OWNED };

/* Splits flags at runs of blanks into directives (the name without "--", then its values) and judges them. */
static enum verdict ref_extra_flags(const char *flags, struct config *ret)
{
	enum verdict v = REF_OK;
	const char *p = flags;

	*ret = (struct config){0};
	for (;;) {
		size_t len;
		struct directive *d;
		struct ref_arg *args;

		p += strspn(p, " \t");
		len = strcspn(p, " \t");
		if (!len)
			break;
		if (len >= 2 && p[0] == '-' && p[1] == '-') {
			bool name_ok = len > 2;

			for (size_t i = 2; i < len; i++)
				name_ok &= (p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') || p[i] == '-';
			if (!name_ok || (ret->n && ret->d[ret->n - 1].argc < 2))
				v = REF_RULE;
			args = calloc(1, sizeof(*args));
			if (!args)
				abort();
			config_add(ret, args, 0);
			p += 2;
			len -= 2;
		} else if (!ret->n) {
			v = REF_RULE;
			p += len;
			continue;
		}
		d = &ret->d[ret->n - 1];
		args = realloc(d->args, (size_t)(d->argc + 1) * sizeof(*args));
		if (!args)
			abort();
		d->args = args;
		d->args[d->argc].data = strndup(p, len);
		d->args[d->argc].len = len;
		if (!d->args[d->argc].data)
			abort();
		d->argc++;
		p += len;
	}
	if (ret->n && ret->d[ret->n - 1].argc < 2)
		v = REF_RULE;
	for (size_t i = 0; i < ret->n && v == REF_OK; i++)
		if (is_owned(ret->d[i].args[0].data))
			v = REF_OWNED;
	return v;
}

/* A refusal of a directive added to kvinit's own since the reference above was written. */
static bool owned_since(const struct init_error *err)
{
	return strstr(err->msg, "is set by kvinit itself") != NULL;
}

/* The parser agrees with the reference: what it accepts follows the rule, its tokens are the reference's. */
static void check_parse(const char *flags, enum verdict v, const struct config *want)
{
	struct node_extra_flags x = {0};
	struct init_error err = {{0}};
	int r = node_extra_flags_parse(flags, &x, &err);
	size_t k = 0;

	if (v != REF_OK) {
		FUZZ_CHECK(r == -EINVAL, "REDIS_EXTRA_FLAGS='%.200s' breaks the rule%s, parsed with %d", flags,
			   v == REF_OWNED ? " (a directive kvinit owns)" : "", r);
		return;
	}
	if (r == -EINVAL && owned_since(&err))
		return;
	FUZZ_CHECK(r == 0, "REDIS_EXTRA_FLAGS='%.200s' follows the rule, parsed with %d: %s", flags, r, err.msg);
	for (size_t i = 0; i < want->n; i++) {
		for (int j = 0; j < want->d[i].argc; j++, k++) {
			const char *tok = k < x.n ? x.tokens[k] : "";
			size_t skip = j == 0 ? 2 : 0;

			FUZZ_CHECK(k < x.n && strlen(tok) == want->d[i].args[j].len + skip &&
					   memcmp(tok + skip, want->d[i].args[j].data, want->d[i].args[j].len) == 0,
				   "token %zu is '%.80s', not the reference's", k, tok);
		}
	}
	FUZZ_CHECK(k == x.n, "%zu tokens, the reference has %zu", x.n, k);
	node_extra_flags_free(&x);
}

/* ---- the rendered config ---- */

static int render(const struct input *in, const struct node_options *o, const enum init_option_source *source,
		  const char *masterauth, char **ret_text, struct init_error *err)
{
	struct node_render_input ri = {
		.opt = o,
		.source = source,
		.server = in->server,
		.base_config_present = in->base_present,
		.announce_ip = *o->announce_ip ? o->announce_ip : NULL,
		.pass_hashes = hashes,
		.n_hashes = in->n_hashes,
		.masterauth = masterauth,
		.redact = in->redact,
	};

	return node_render(&ri, ret_text, err);
}

static void check_value(const struct config *c, const char *name, const char *value)
{
	const struct directive *d = find(c, name);

	FUZZ_CHECK(d, "no '%s' line", name);
	FUZZ_CHECK(d->argc == 2 && arg_is(&d->args[1], value, strlen(value)),
		   "'%s' decodes to %d arguments, not the %zu bytes given", name, d->argc - 1, strlen(value));
}

/*
 * The config rendered with extra flags is the one without them, with the extra directives before the ACL line,
 * and nothing else; kvinit's directives appear once each and no extra directive is one of them.
 */
static void check_config(const struct input *in, const struct node_options *o, const char *masterauth, const char *text,
			 const char *base_text, const struct config *extra)
{
	struct config got, base;
	const struct directive *acl;
	size_t user;

	decode(text, &got);
	decode(base_text, &base);
	for (size_t i = 0; i < base.n; i++)
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(strcmp(base.d[i].args[0].data, base.d[j].args[0].data) != 0,
				   "kvinit renders '%s' twice", base.d[i].args[0].data);
	acl = find(&base, "user");
	FUZZ_CHECK(acl, "no ACL line");
	user = (size_t)(acl - base.d);
	FUZZ_CHECK(got.n == base.n + extra->n, "%zu directives, %zu rendered by kvinit and %zu extra", got.n, base.n,
		   extra->n);
	for (size_t i = 0; i < got.n; i++) {
		const struct directive *want = i < user		     ? &base.d[i]
					       : i < user + extra->n ? &extra->d[i - user]
								     : &base.d[i - extra->n];

		check_directive(i, &got.d[i], want);
	}
	for (size_t i = 0; i < extra->n; i++) {
		const char *name = extra->d[i].args[0].data;

		FUZZ_CHECK(!is_owned(name) && (!find(&base, name) || is_default(name)),
			   "extra flags set '%s', which kvinit sets", name);
	}

	check_value(&base, "dir", o->data_dir);
	if (in->base_present)
		check_value(&base, "include", o->base_config);
	if (masterauth)
		check_value(&base, "masterauth", in->redact ? "<redacted>" : masterauth);
	if (!in->standalone && *o->announce_hostname)
		check_value(&base, "cluster-announce-hostname", o->announce_hostname);
	if (!in->standalone && *o->announce_ip)
		check_value(&base, "cluster-announce-ip", o->announce_ip);
	config_free(&got);
	config_free(&base);
}

/* Renders with and without the extra flags and checks both; the options are those the values led to. */
static void check_render(const struct input *in, struct node_config *c, const char *masterauth, enum verdict v,
			 const struct config *extra)
{
	struct node_options *o = &c->opt;
	static char untouched[] = "untouched", none[] = "";
	char *text = untouched, *base_text = untouched, *flags = o->extra_flags;
	struct init_error err = {{0}};
	bool unknown_hostname =
		!in->standalone && *o->announce_hostname && !node_server_knows(in->server, NODE_DIR_ANNOUNCE_HOSTNAME);
	int r = render(in, o, c->source, masterauth, &text, &err);

	if (r < 0) {
		FUZZ_CHECK(text == untouched && err.msg[0], "a failed render wrote its text or no message");
		FUZZ_CHECK(r == (unknown_hostname ? -ENOTSUP : -EINVAL), "render gave %d: %s", r, err.msg);
		FUZZ_CHECK(r == -ENOTSUP || v != REF_OK || owned_since(&err),
			   "REDIS_EXTRA_FLAGS='%.200s' follows the rule, render gave %d", flags, r);
		return;
	}
	FUZZ_CHECK(r == 0 && !unknown_hostname, "render gave %d", r);
	FUZZ_CHECK(v == REF_OK, "REDIS_EXTRA_FLAGS='%.200s' breaks the rule, but is rendered", flags);
	o->extra_flags = none;
	r = render(in, o, c->source, masterauth, &base_text, &err);
	o->extra_flags = flags;
	FUZZ_CHECK(r == 0, "render without extra flags gave %d: %s", r, err.msg);
	check_config(in, o, masterauth, text, base_text, extra);
	free(text);
	free(base_text);
}

static void set_option(char **field, const char *value)
{
	if (!value)
		return;
	free(*field);
	*field = strdup(value);
	if (!*field)
		abort();
}

/* The values straight into the options: the renderer is the last guard. */
static void run_direct(const struct input *in, enum verdict v, const struct config *extra)
{
	struct node_config c;
	struct init_error err;

	FUZZ_CHECK(node_config_defaults(&c, &err) == 0, "defaults: %s", err.msg);
	c.opt.cluster_enabled = !in->standalone;
	set_option(&c.opt.extra_flags, in->field[F_FLAGS]);
	set_option(&c.opt.data_dir, in->field[F_DIR]);
	set_option(&c.opt.base_config, in->field[F_BASE]);
	set_option(&c.opt.announce_hostname, in->field[F_HOSTNAME]);
	set_option(&c.opt.announce_ip, in->field[F_ANNOUNCE_IP]);
	check_render(in, &c, in->field[F_PASSWORD] && *in->field[F_PASSWORD] ? in->field[F_PASSWORD] : NULL, v, extra);
	node_config_free(&c);
}

/* The values as environment variables, as a user sets them: what the option layer accepts must render. */
static void run_options(const struct input *in, enum verdict v, const struct config *extra)
{
	char *env[F__COUNT + 3] = {NULL};
	struct node_config c;
	struct init_error err;
	const char *password = in->field[F_PASSWORD];
	size_t n = 0;
	int argind, r;

	env[n++] = strdup("KVINIT_CONFIG=/dev/null");
	env[n++] = strdup(in->standalone ? "REDIS_CLUSTER_ENABLED=no" : "REDIS_CLUSTER_ENABLED=yes");
	for (size_t f = 0; f < F__COUNT; f++) {
		if (!env_names[f] || !in->field[f])
			continue;
		if (asprintf(&env[n++], "%s=%s", env_names[f], in->field[f]) < 0)
			abort();
	}
	FUZZ_CHECK(node_config_defaults(&c, &err) == 0, "defaults: %s", err.msg);
	r = init_config_load(&c.core, 0, NULL, &argind, env, &err);
	if (r == 0) {
		char *const *opt[F__COUNT] = {
			[F_FLAGS] = &c.opt.extra_flags,	      [F_DIR] = &c.opt.data_dir,
			[F_BASE] = &c.opt.base_config,	      [F_HOSTNAME] = &c.opt.announce_hostname,
			[F_ANNOUNCE_IP] = &c.opt.announce_ip,
		};

		/* what the option layer accepts reaches the renderer unchanged (an empty variable counts as unset) */
		for (size_t f = 0; f < F__COUNT; f++) {
			if (opt[f] && in->field[f] && *in->field[f])
				FUZZ_CHECK(strcmp(*opt[f], in->field[f]) == 0, "%s='%.80s' became '%.80s'",
					   env_names[f], in->field[f], *opt[f]);
		}
		FUZZ_CHECK(!in->field[F_FLAGS] || v == REF_OK, "the option check accepts REDIS_EXTRA_FLAGS='%.200s'",
			   in->field[F_FLAGS]);
		/* the password as a secret file would give it */
		if (password && init_check_value(password, strlen(password)) < 0)
			password = NULL;
		check_render(in, &c, password, v, extra);
	} else {
		FUZZ_CHECK(r == -EINVAL && err.msg[0], "the option layer gave %d: '%s'", r, err.msg);
	}
	node_config_free(&c);
	for (size_t i = 0; i < n; i++)
		free(env[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	unsigned ctrl = size ? data[0] : 0;
	size_t len = size ? size - 1 : 0;
	char *values = fuzz_strndup(data + (size ? 1 : 0), len);
	const char *p = values;
	struct input in = {
		.via_options = ctrl & 1,
		.standalone = ctrl & 2,
		.base_present = ctrl & 4,
		.n_hashes = (ctrl >> 3 & 3) % 3,
		.redact = ctrl & 32,
		.server = &servers[ctrl >> 6 & 3],
	};
	struct config extra = {0};
	enum verdict v = REF_OK;

	/* the fields, NUL-separated; a NUL at the end gives an empty one */
	for (size_t f = 0; f < F__COUNT && len && p <= values + len; f++) {
		in.field[f] = p;
		p += strlen(p) + 1;
	}
	if (in.field[F_FLAGS]) {
		v = ref_extra_flags(in.field[F_FLAGS], &extra);
		check_parse(in.field[F_FLAGS], v, &extra);
	}
	if (in.via_options)
		run_options(&in, v, &extra);
	else
		run_direct(&in, v, &extra);
	config_free(&extra);
	free(values);
	return 0;
}
