/* SPDX-License-Identifier: MIT */
/*
 * The options table (options.def) turned into defaults, INI, environment and flag parsing, validation and
 * --help. Precedence, lowest first: built-in default (a role may change it), INI file, environment, flag.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "init.h"

struct init_string_check {
	const char *rule; /* for --help and the usual refusal */
	/* NULL when value is fine, else why not: rule, or a more precise line written into buf */
	const char *(*refuse)(const struct init_string_check *check, const char *value, char *buf, size_t size);
};

static const char *refuse_user(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	const char *colon = strchr(s, ':');

	(void)buf;
	(void)size;
	if (!*s)
		return NULL;
	if (isdigit((unsigned char)*s)) {
		/* uid[:gid], both decimal */
		for (const char *p = s; *p; p++)
			if (!isdigit((unsigned char)*p) && p != colon)
				return check->rule;
		return colon != s && (!colon || colon[1]) ? NULL : check->rule;
	}
	/* POSIX portable user name, as shadow's useradd accepts by default */
	if (colon || strlen(s) > 32 || !(islower((unsigned char)*s) || *s == '_'))
		return check->rule;
	for (const char *p = s; *p; p++)
		if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '_' || *p == '-' ||
		      (*p == '$' && !p[1])))
			return check->rule;
	return NULL;
}

static const char *refuse_ip(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return !*s || init_valid_ip(s) ? NULL : check->rule;
}

static const char *refuse_hostname(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return !*s || init_valid_hostname(s) ? NULL : check->rule;
}

static const char *refuse_path(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return s[0] == '/' && strlen(s) < 4096 ? NULL : check->rule;
}

static const char *refuse_optional_path(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	return *s ? refuse_path(check, s, buf, size) : NULL;
}

/* redis.conf's bind: addresses separated by spaces, each may start with '-' (optional address), or '*'. */
static const char *refuse_bind(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL;
	int n = 0;

	(void)buf;
	(void)size;
	if (!copy)
		return "out of memory";
	for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save), n++) {
		const char *addr = tok[0] == '-' ? tok + 1 : tok;

		if (strcmp(addr, "*") != 0 && strcmp(addr, "::*") != 0 && !init_valid_ip(addr))
			return check->rule;
	}
	return n > 0 && n <= 16 ? NULL : check->rule;
}

/* Directives kvinit renders itself; setting them again in REDIS_EXTRA_FLAGS would silently undo its work. */
static const char *const owned_directives[] = {
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
	NULL,
};

static const char *refuse_extra_flags(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL;
	bool want_arg = false;

	if (!copy)
		return "out of memory";
	for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "--", 2) != 0) {
			if (!want_arg && tok == copy)
				return check->rule;
			want_arg = false;
			continue;
		}
		if (want_arg || !tok[2])
			return check->rule;
		for (const char *p = tok + 2; *p; p++)
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
				return check->rule;
		for (size_t i = 0; owned_directives[i]; i++) {
			if (strcmp(tok + 2, owned_directives[i]) == 0) {
				(void)snprintf(buf, size, "'%s' is set by kvinit itself: use its own setting instead",
					       tok);
				return buf;
			}
		}
		want_arg = true;
	}
	return want_arg ? check->rule : NULL;
}

static const struct init_string_check init_check_user = {"must be a user name or uid[:gid]", refuse_user};
static const struct init_string_check init_check_ip = {"must be an IPv4 or IPv6 address", refuse_ip};
static const struct init_string_check init_check_hostname = {
	"must be a hostname (RFC 1123: letters, digits, '-' and '.', labels of 1 to 63)", refuse_hostname};
static const struct init_string_check init_check_path = {"must be an absolute path", refuse_path};
static const struct init_string_check init_check_optional_path = {"must be empty or an absolute path",
								  refuse_optional_path};
static const struct init_string_check init_check_bind = {
	"must be addresses separated by spaces, each an IP address or '*', optionally with a leading '-'", refuse_bind};
static const struct init_string_check init_check_extra_flags = {
	"must be redis-server flags, each '--directive' followed by its values", refuse_extra_flags};

static const char *const init_restart_names[] = {"no", "on-failure", "always", NULL};
static const char *const init_log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const init_log_format_names[] = {"text", "json", NULL};
static const char *const init_endpoint_names[] = {"ip", "hostname", "unknown-endpoint", NULL};

enum opt_type { OPT_T_STR, OPT_T_BOOL, OPT_T_INT, OPT_T_DURATION, OPT_T_ENUM };

struct opt_desc {
	const char *field, *env, *section, *key, *def, *help;
	enum opt_type type;
	size_t offset;
	int64_t min, max;
	const char *const *names;
	const struct init_string_check *check;
};

#define OFF(field) offsetof(struct init_options, field)
static const struct opt_desc descs[INIT_OPT__COUNT] = {
#define OPT_STR(f, e, s, k, d, c, h)                                                                                   \
	{.field = #f,                                                                                                  \
	 .env = e,                                                                                                     \
	 .section = s,                                                                                                 \
	 .key = k,                                                                                                     \
	 .def = d,                                                                                                     \
	 .help = h,                                                                                                    \
	 .type = OPT_T_STR,                                                                                            \
	 .offset = OFF(f),                                                                                             \
	 .check = c},
#define OPT_BOOL(f, e, s, k, d, h)                                                                                     \
	{.field = #f, .env = e, .section = s, .key = k, .def = d, .help = h, .type = OPT_T_BOOL, .offset = OFF(f)},
#define OPT_INT(f, e, s, k, d, lo, hi, h)                                                                              \
	{.field = #f,                                                                                                  \
	 .env = e,                                                                                                     \
	 .section = s,                                                                                                 \
	 .key = k,                                                                                                     \
	 .def = d,                                                                                                     \
	 .help = h,                                                                                                    \
	 .type = OPT_T_INT,                                                                                            \
	 .offset = OFF(f),                                                                                             \
	 .min = lo,                                                                                                    \
	 .max = hi},
#define OPT_DURATION(f, e, s, k, d, lo, hi, h)                                                                         \
	{.field = #f,                                                                                                  \
	 .env = e,                                                                                                     \
	 .section = s,                                                                                                 \
	 .key = k,                                                                                                     \
	 .def = d,                                                                                                     \
	 .help = h,                                                                                                    \
	 .type = OPT_T_DURATION,                                                                                       \
	 .offset = OFF(f),                                                                                             \
	 .min = lo,                                                                                                    \
	 .max = hi},
#define OPT_ENUM(f, e, s, k, d, n, h)                                                                                  \
	{.field = #f,                                                                                                  \
	 .env = e,                                                                                                     \
	 .section = s,                                                                                                 \
	 .key = k,                                                                                                     \
	 .def = d,                                                                                                     \
	 .help = h,                                                                                                    \
	 .type = OPT_T_ENUM,                                                                                           \
	 .offset = OFF(f),                                                                                             \
	 .names = n},
#include "options.def"
};
#undef OFF

static void join_names(char *buf, size_t size, const char *const *names)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? (names[i + 1] ? ", " : " or ") : "",
					names[i]);
}

/* The rule a value broke, in words a user can act on. */
static void describe_rule(const struct opt_desc *d, char *buf, size_t size)
{
	char lo[32], hi[32], names[256];

	switch (d->type) {
	case OPT_T_STR:
		(void)snprintf(buf, size, "%s", d->check ? d->check->rule : "must be text");
		break;
	case OPT_T_BOOL:
		(void)snprintf(buf, size, "must be yes or no (true/false, on/off, 1/0 also work)");
		break;
	case OPT_T_INT:
		(void)snprintf(buf, size, "must be a whole number from %lld to %lld", (long long)d->min,
			       (long long)d->max);
		break;
	case OPT_T_DURATION:
		init_format_duration(lo, sizeof(lo), (uint64_t)d->min);
		init_format_duration(hi, sizeof(hi), (uint64_t)d->max);
		(void)snprintf(buf, size, "must be a duration from %s to %s, such as 8s, 500ms or 2m", lo, hi);
		break;
	case OPT_T_ENUM:
		join_names(names, sizeof(names), d->names);
		(void)snprintf(buf, size, "must be one of %s", names);
		break;
	}
}

/*
 * Parses value for d into the options; returns 0, -ENOMEM, or -EINVAL with the rule it broke in why (the table's
 * rule, or a more precise line from the option's check).
 */
static int set_value(struct init_options *o, const struct opt_desc *d, const char *value, char *why, size_t size)
{
	char *field = (char *)o + d->offset;
	int64_t n;
	bool b;

	describe_rule(d, why, size);
	if (init_has_control_chars(value)) {
		(void)snprintf(why, size, "must not contain control characters such as newlines");
		return -EINVAL;
	}

	switch (d->type) {
	case OPT_T_STR: {
		char buf[256];
		const char *refused = d->check ? d->check->refuse(d->check, value, buf, sizeof(buf)) : NULL;
		char *copy;

		if (refused) {
			(void)snprintf(why, size, "%s", refused);
			return -EINVAL;
		}
		copy = strdup(value);
		if (!copy)
			return -ENOMEM;
		free(*(char **)(void *)field);
		*(char **)(void *)field = copy;
		return 0;
	}
	case OPT_T_BOOL:
		if (init_parse_bool(value, &b) < 0)
			return -EINVAL;
		*(bool *)(void *)field = b;
		return 0;
	case OPT_T_INT:
		if (init_parse_int(value, d->min, d->max, &n) < 0)
			return -EINVAL;
		*(int64_t *)(void *)field = n;
		return 0;
	case OPT_T_DURATION:
		if (init_parse_duration_ms(value, &n) < 0 || n < d->min || n > d->max)
			return -EINVAL;
		*(int64_t *)(void *)field = n;
		return 0;
	case OPT_T_ENUM:
		for (int i = 0; d->names[i]; i++) {
			if (strcmp(d->names[i], value) == 0) {
				*(int *)(void *)field = i;
				return 0;
			}
		}
		return -EINVAL;
	}
	return -EINVAL;
}

static int apply(struct init_config *c, enum init_option_id id, const char *value, enum init_option_source src,
		 const char *where, struct init_error *err)
{
	const struct opt_desc *d = &descs[id];
	char rule[320], shown[160];
	int r;

	r = set_value(&c->opt, d, value, rule, sizeof(rule));
	if (r == -ENOMEM) {
		(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
		return r;
	}
	if (r < 0) {
		init_escape_control(shown, sizeof(shown), value);
		(void)snprintf(err->msg, sizeof(err->msg), "%s='%s': %s", where, shown, rule);
		return r;
	}
	c->source[id] = src;
	return 0;
}

int init_config_set_default(struct init_config *c, enum init_option_id id, const char *value, struct init_error *err)
{
	char where[80];

	(void)snprintf(where, sizeof(where), "default of %s", descs[id].env);
	return apply(c, id, value, INIT_SRC_DEFAULT, where, err);
}

int init_config_defaults(struct init_config *c, struct init_error *err)
{
	memset(c, 0, sizeof(*c));
	for (int i = 0; i < INIT_OPT__COUNT; i++) {
		int r = init_config_set_default(c, (enum init_option_id)i, descs[i].def, err);

		if (r < 0)
			return r;
	}
	return 0;
}

void init_config_free(struct init_config *c)
{
	for (int i = 0; i < INIT_OPT__COUNT; i++) {
		if (descs[i].type == OPT_T_STR) {
			char **p = (char **)(void *)((char *)&c->opt + descs[i].offset);

			free(*p);
			*p = NULL;
		}
	}
	free(c->config_path);
	c->config_path = NULL;
}

/* ---- INI ---- */

struct ini_state {
	struct init_config *c;
	struct init_error *err;
	const char *path;
	FILE *f;
	int line;
	bool failed; /* err->msg holds the first problem */
};

static int ini_fail(struct ini_state *st, const char *msg)
{
	if (!st->failed)
		(void)snprintf(st->err->msg, sizeof(st->err->msg), "%s:%d: %s", st->path, st->line, msg);
	st->failed = true;
	return 0;
}

static bool section_known(const char *name, size_t len)
{
	for (int i = 0; i < INIT_OPT__COUNT; i++)
		if (strlen(descs[i].section) == len && strncmp(descs[i].section, name, len) == 0)
			return true;
	return false;
}

/*
 * inih's line reader, wrapped: it counts lines, refuses a line longer than inih's buffer (inih would cut it and
 * read the rest as a line of its own), and checks section headers as they pass, empty sections included.
 */
static char *read_ini_line(char *str, int num, void *stream)
{
	struct ini_state *st = stream;
	char msg[160];
	const char *p, *end;
	size_t len;

	if (st->failed || !fgets(str, num, st->f))
		return NULL;
	st->line++;
	len = strlen(str);
	if (len == (size_t)num - 1 && str[len - 1] != '\n' && !feof(st->f)) {
		(void)snprintf(msg, sizeof(msg), "line longer than %d characters", num - 2);
		ini_fail(st, msg);
		return NULL;
	}
	for (p = str; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end && !section_known(p + 1, (size_t)(end - p - 1))) {
			(void)snprintf(msg, sizeof(msg), "unknown section '%.*s'", (int)(end - p - 1), p + 1);
			ini_fail(st, msg);
			return NULL;
		}
	}
	return str;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
	struct ini_state *st = user;
	char where[160], msg[400];

	if (st->failed)
		return 0;
	if (!*section) {
		(void)snprintf(msg, sizeof(msg),
			       "'%s' is outside a section (options go under [kvinit], [node] or [cluster])", name);
		return ini_fail(st, msg);
	}
	for (int i = 0; i < INIT_OPT__COUNT; i++) {
		if (strcmp(descs[i].section, section) != 0 || strcmp(descs[i].key, name) != 0)
			continue;
		(void)snprintf(where, sizeof(where), "%s:%d: %s", st->path, st->line, name);
		if (apply(st->c, (enum init_option_id)i, value, INIT_SRC_INI, where, st->err) < 0)
			st->failed = true;
		return st->failed ? 0 : 1;
	}
	(void)snprintf(msg, sizeof(msg), "unknown key '%s' in section [%s]", name, section);
	return ini_fail(st, msg);
}

int init_config_parse_ini(struct init_config *c, const char *path, bool must_exist, struct init_error *err)
{
	struct ini_state st = {.c = c, .err = err, .path = path};
	int r;

	st.f = fopen(path, "re");
	if (!st.f) {
		r = -errno;
		if (r == -ENOENT && !must_exist)
			return 0;
		(void)snprintf(err->msg, sizeof(err->msg), "cannot open config file '%s': %s", path, strerror(-r));
		return r;
	}
	r = ini_parse_stream(read_ini_line, &st, on_ini_value, &st);
	if (!st.failed && ferror(st.f))
		(void)snprintf(err->msg, sizeof(err->msg), "cannot read config file '%s'", path);
	else if (!st.failed && r > 0)
		(void)snprintf(err->msg, sizeof(err->msg), "%s:%d: not a 'key = value' line or '[section]'", path, r);
	(void)fclose(st.f);
	return st.failed || r != 0 ? -EINVAL : 0;
}

/* ---- environment and flags ---- */

/* Older names a user may bring from other images; the table's name wins, and both must agree. */
static const struct {
	const char *env;
	enum init_option_id id;
} env_aliases[] = {
	{"REDIS_PORT", INIT_OPT_port},
	{"REDIS_CLUSTER_NODES", INIT_OPT_nodes},
};

/*
 * One option from the environment: NAME, an alias of it, or NAME_FILE (the Docker convention: the value is read
 * from that file, one trailing newline stripped). An empty variable counts as unset, as compose files often
 * write "VAR=" for "not given".
 */
static int apply_env(struct init_config *c, enum init_option_id id, char *const *envp, struct init_error *err)
{
	const char *name = descs[id].env, *value = init_env_lookup(envp, name), *path;
	char file_var[96], where[4200], data[INIT_VALUE_MAX + 2];
	int r;

	if (value && !*value)
		value = NULL;
	for (size_t i = 0; i < sizeof(env_aliases) / sizeof(env_aliases[0]); i++) {
		const char *alias = env_aliases[i].id == id ? init_env_lookup(envp, env_aliases[i].env) : NULL;

		if (!alias || !*alias)
			continue;
		if (value && strcmp(value, alias) != 0) {
			(void)snprintf(err->msg, sizeof(err->msg),
				       "%s and %s are both set, to different values: set only %s", name,
				       env_aliases[i].env, name);
			return -EINVAL;
		}
		value = alias;
		name = env_aliases[i].env;
	}

	(void)snprintf(file_var, sizeof(file_var), "%s_FILE", descs[id].env);
	path = init_env_lookup(envp, file_var);
	if (path && *path) {
		if (value) {
			(void)snprintf(err->msg, sizeof(err->msg), "%s and %s are both set: set only one", name,
				       file_var);
			return -EINVAL;
		}
		r = init_read_value_file(path, INIT_READ_BENEATH, data, NULL);
		if (r < 0) {
			(void)snprintf(err->msg, sizeof(err->msg), "%s='%s': %s", file_var, path,
				       init_value_strerror(r));
			return r;
		}
		(void)snprintf(where, sizeof(where), "%s (from %s='%s')", descs[id].env, file_var, path);
		return apply(c, id, data, INIT_SRC_ENV, where, err);
	}
	return value ? apply(c, id, value, INIT_SRC_ENV, name, err) : 0;
}

static int find_flag(const char *name, size_t len)
{
	for (int i = 0; i < INIT_OPT__COUNT; i++)
		if (strlen(descs[i].key) == len && strncmp(descs[i].key, name, len) == 0)
			return i;
	return -1;
}

struct flag_value {
	int id;
	const char *value;
};

/*
 * Reads "--key value" and "--key=value" up to "--" or the first argument that is not a flag;
 * -ECANCELED for --help.
 * Collects them first: they win over everything, but the INI file they may name is read before them.
 */
static int collect_flags(int argc, char **argv, struct flag_value *flags, int *ret_n, const char **ret_config,
			 int *ret_argind, struct init_error *err)
{
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *value;
		size_t len;
		int id;

		if (strcmp(arg, "--") == 0) {
			i++;
			break;
		}
		if (strncmp(arg, "--", 2) != 0 || !arg[2])
			break;
		name = arg + 2;
		if (strcmp(name, "help") == 0)
			return -ECANCELED;
		eq = strchr(name, '=');
		len = eq ? (size_t)(eq - name) : strlen(name);
		value = eq ? eq + 1 : NULL;
		if (len == 6 && strncmp(name, "config", 6) == 0) {
			id = -2;
		} else {
			id = find_flag(name, len);
			if (id < 0) {
				(void)snprintf(err->msg, sizeof(err->msg),
					       "unknown option '--%.*s' (see kvinit --help)", (int)len, name);
				return -EINVAL;
			}
		}
		/* Booleans take a value too: a bare "--seccomp" before a command named "yes" or "true" is ambiguous. */
		if (!value) {
			if (i + 1 >= argc) {
				(void)snprintf(err->msg, sizeof(err->msg), "option '--%.*s' needs a value", (int)len,
					       name);
				return -EINVAL;
			}
			value = argv[++i];
		}
		if (id == -2)
			*ret_config = value;
		else
			flags[n++] = (struct flag_value){.id = id, .value = value};
	}
	*ret_n = n;
	*ret_argind = i;
	return 0;
}

int init_config_load(struct init_config *c, int argc, char **argv, int *ret_argind, char *const *envp,
		     struct init_error *err)
{
	_cleanup_free_ struct flag_value *flags = calloc((size_t)argc + 1, sizeof(*flags));
	const char *config = NULL, *env_config;
	char where[96];
	int n = 0, argind = 0, r;

	if (!flags) {
		(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	r = collect_flags(argc, argv, flags, &n, &config, &argind, err);
	if (r < 0)
		return r;

	env_config = init_env_lookup(envp, "KVINIT_CONFIG");
	if (!config && env_config && *env_config)
		config = env_config;
	if (config && init_has_control_chars(config)) {
		(void)snprintf(err->msg, sizeof(err->msg), "KVINIT_CONFIG: must not contain control characters");
		return -EINVAL;
	}
	c->config_path = strdup(config ? config : INIT_DEFAULT_CONFIG);
	if (!c->config_path) {
		(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	r = init_config_parse_ini(c, c->config_path, config != NULL, err);
	if (r < 0)
		return r;

	for (int i = 0; i < INIT_OPT__COUNT; i++) {
		r = apply_env(c, (enum init_option_id)i, envp, err);
		if (r < 0)
			return r;
	}
	for (int i = 0; i < n; i++) {
		(void)snprintf(where, sizeof(where), "--%s", descs[flags[i].id].key);
		r = apply(c, (enum init_option_id)flags[i].id, flags[i].value, INIT_SRC_FLAG, where, err);
		if (r < 0)
			return r;
	}
	*ret_argind = argind;
	return 0;
}

void init_config_help(FILE *out)
{
	char rule[320], flag[64];

	(void)fprintf(out, "Options (flag, environment variable, INI key in [section] of KVINIT_CONFIG):\n");
	(void)fprintf(out, "  --config=PATH  KVINIT_CONFIG  INI file (default %s; a missing default file is fine)\n",
		      INIT_DEFAULT_CONFIG);
	for (int i = 0; i < INIT_OPT__COUNT; i++) {
		const struct opt_desc *d = &descs[i];

		(void)snprintf(flag, sizeof(flag), "--%s", d->key);
		describe_rule(d, rule, sizeof(rule));
		(void)fprintf(out, "  %-18s %-22s [%s] %s\n  %-18s %s (default '%s'; %s)\n", flag, d->env, d->section,
			      d->key, "", d->help, d->def, rule);
	}
}
