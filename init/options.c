/* SPDX-License-Identifier: MIT */
/*
 * The options engine: tables of option descriptors (the core's options.def, and those other modules add) turned
 * into defaults, INI, environment and flag parsing, validation and --help. Precedence, lowest first: built-in
 * default (a role may change it), INI file, environment, flag.
 */
#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <string.h>

#include "init.h"

/* ---- the core's table ---- */

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

static const struct init_string_check init_check_user = {"must be a user name or uid[:gid]", refuse_user};
static const char *const init_restart_names[] = {"no", "on-failure", "always", NULL};
static const char *const init_log_level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const init_log_format_names[] = {"text", "json", NULL};

static const struct init_option_desc core_descs[] = {
#define OPT_STR(...)	  INIT_OPTION_DESC_STR(struct init_options, __VA_ARGS__)
#define OPT_BOOL(...)	  INIT_OPTION_DESC_BOOL(struct init_options, __VA_ARGS__)
#define OPT_INT(...)	  INIT_OPTION_DESC_INT(struct init_options, __VA_ARGS__)
#define OPT_DURATION(...) INIT_OPTION_DESC_DURATION(struct init_options, __VA_ARGS__)
#define OPT_ENUM(...)	  INIT_OPTION_DESC_ENUM(struct init_options, __VA_ARGS__)
#include "options.def"
};

static const struct init_option_table core_table = {.opts = core_descs, .n = INIT_OPT__COUNT};

/* ---- values ---- */

static void join_names(char *buf, size_t size, const char *const *names)
{
	size_t len = 0;

	buf[0] = '\0';
	for (size_t i = 0; names[i] && len < size; i++)
		len += (size_t)snprintf(buf + len, size - len, "%s%s", i ? (names[i + 1] ? ", " : " or ") : "",
					names[i]);
}

/* The rule a value broke, in words a user can act on. */
static void describe_rule(const struct init_option_desc *d, char *buf, size_t size)
{
	char lo[32], hi[32], names[256];

	switch (d->type) {
	case INIT_OPT_T_STR:
		(void)snprintf(buf, size, "%s", d->check ? d->check->rule : "must be text");
		break;
	case INIT_OPT_T_BOOL:
		(void)snprintf(buf, size, "must be yes or no (true/false, on/off, 1/0 also work)");
		break;
	case INIT_OPT_T_INT:
		(void)snprintf(buf, size, "must be a whole number from %lld to %lld", (long long)d->min,
			       (long long)d->max);
		break;
	case INIT_OPT_T_DURATION:
		init_format_duration(lo, sizeof(lo), (uint64_t)d->min);
		init_format_duration(hi, sizeof(hi), (uint64_t)d->max);
		(void)snprintf(buf, size, "must be a duration from %s to %s, such as 8s, 500ms or 2m", lo, hi);
		break;
	case INIT_OPT_T_ENUM:
		join_names(names, sizeof(names), d->names);
		(void)snprintf(buf, size, "must be one of %s", names);
		break;
	}
}

/*
 * Parses value for d into values; returns 0, -ENOMEM, or -EINVAL with the rule it broke in why (the table's
 * rule, or a more precise line from the option's check).
 */
static int set_value(void *values, const struct init_option_desc *d, const char *value, char *why, size_t size)
{
	char *field = (char *)values + d->offset;
	int64_t n;
	bool b;

	describe_rule(d, why, size);
	if (init_has_control_chars(value)) {
		(void)snprintf(why, size, "must not contain control characters such as newlines");
		return -EINVAL;
	}

	switch (d->type) {
	case INIT_OPT_T_STR: {
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
	case INIT_OPT_T_BOOL:
		if (init_parse_bool(value, &b) < 0)
			return -EINVAL;
		*(bool *)(void *)field = b;
		return 0;
	case INIT_OPT_T_INT:
		if (init_parse_int(value, d->min, d->max, &n) < 0)
			return -EINVAL;
		*(int64_t *)(void *)field = n;
		return 0;
	case INIT_OPT_T_DURATION:
		if (init_parse_duration_ms(value, &n) < 0 || n < d->min || n > d->max)
			return -EINVAL;
		*(int64_t *)(void *)field = n;
		return 0;
	case INIT_OPT_T_ENUM:
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

static int apply(const struct init_option_set *set, size_t i, const char *value, enum init_option_source src,
		 const char *where, struct init_error *err)
{
	char rule[320], shown[160];
	int r;

	r = set_value(set->values, &set->table->opts[i], value, rule, sizeof(rule));
	if (r == -ENOMEM)
		return init_error_set(err, r, "out of memory");
	if (r < 0) {
		init_escape_control(shown, sizeof(shown), value);
		return init_error_set(err, r, "%s='%s': %s", where, shown, rule);
	}
	set->source[i] = src;
	return 0;
}

static int set_default(const struct init_option_set *set, size_t i, const char *value, struct init_error *err)
{
	char where[80];

	(void)snprintf(where, sizeof(where), "default of %s", set->table->opts[i].env);
	return apply(set, i, value, INIT_SRC_DEFAULT, where, err);
}

int init_config_set_default(struct init_config *c, enum init_option_id id, const char *value, struct init_error *err)
{
	return set_default(&c->sets[0], (size_t)id, value, err);
}

int init_config_add(struct init_config *c, const struct init_option_table *table, void *values,
		    enum init_option_source *source, struct init_error *err)
{
	struct init_option_set *set;

	if (c->n_sets == INIT_MAX_OPTION_SETS)
		return init_error_set(err, -E2BIG, "more than %d option tables", INIT_MAX_OPTION_SETS);
	set = &c->sets[c->n_sets++];
	*set = (struct init_option_set){.table = table, .values = values, .source = source};
	for (size_t i = 0; i < table->n; i++) {
		int r = set_default(set, i, table->opts[i].def, err);

		if (r < 0)
			return r;
	}
	return 0;
}

int init_config_defaults(struct init_config *c, struct init_error *err)
{
	*c = (struct init_config){0};
	return init_config_add(c, &core_table, &c->opt, c->source, err);
}

void init_config_free(struct init_config *c)
{
	for (size_t s = 0; s < c->n_sets; s++) {
		const struct init_option_set *set = &c->sets[s];

		for (size_t i = 0; i < set->table->n; i++) {
			if (set->table->opts[i].type == INIT_OPT_T_STR) {
				char **p = (char **)(void *)((char *)set->values + set->table->opts[i].offset);

				free(*p);
				*p = NULL;
			}
		}
	}
	free(c->config_path);
	c->config_path = NULL;
}

/* ---- INI ---- */

/* Far more than any INI file of these options; small enough that a wrong path is noticed. */
#define INI_MAX_SIZE (1024 * 1024)

struct ini_state {
	struct init_config *c;
	struct init_error *err;
	const char *path; /* as shown in messages */
	const char *next; /* the text not read yet */
	int line;
	bool failed; /* err->msg holds the first problem */
};

static int ini_fail(struct ini_state *st, const char *msg)
{
	if (!st->failed)
		(void)init_error_set(st->err, -EINVAL, "%s:%d: %s", st->path, st->line, msg);
	st->failed = true;
	return 0;
}

static bool section_known(const struct init_config *c, const char *name, size_t len)
{
	for (size_t s = 0; s < c->n_sets; s++)
		for (size_t i = 0; i < c->sets[s].table->n; i++)
			if (strlen(c->sets[s].table->opts[i].section) == len &&
			    strncmp(c->sets[s].table->opts[i].section, name, len) == 0)
				return true;
	return false;
}

/* "[kvinit], [node] or [cluster]": every section of c's tables, in table order. */
static void list_sections(const struct init_config *c, char *buf, size_t size)
{
	const char *names[16];
	size_t n = 0, len = 0;

	for (size_t s = 0; s < c->n_sets; s++) {
		for (size_t i = 0; i < c->sets[s].table->n; i++) {
			const char *section = c->sets[s].table->opts[i].section;
			bool seen = false;

			for (size_t k = 0; k < n; k++)
				seen = seen || strcmp(names[k], section) == 0;
			if (!seen && n < sizeof(names) / sizeof(names[0]))
				names[n++] = section;
		}
	}
	buf[0] = '\0';
	for (size_t k = 0; k < n && len < size; k++)
		len += (size_t)snprintf(buf + len, size - len, "%s[%s]", k ? (k + 1 < n ? ", " : " or ") : "",
					names[k]);
}

/*
 * inih's line reader, over the text read whole: it counts lines, refuses a line longer than inih's buffer (inih
 * would cut it and read the rest as a line of its own), and checks section headers as they pass, empty sections
 * included.
 */
static char *read_ini_line(char *str, int num, void *stream)
{
	struct ini_state *st = stream;
	char msg[160];
	const char *p, *end, *nl;
	size_t len;

	if (st->failed || !*st->next)
		return NULL;
	st->line++;
	nl = strchr(st->next, '\n');
	len = nl ? (size_t)(nl - st->next) : strlen(st->next);
	if (len > (size_t)num - 2) {
		(void)snprintf(msg, sizeof(msg), "line longer than %d characters", num - 2);
		ini_fail(st, msg);
		return NULL;
	}
	len += nl ? 1 : 0;
	memcpy(str, st->next, len);
	str[len] = '\0';
	st->next += len;
	for (p = str; *p == ' ' || *p == '\t'; p++)
		;
	if (*p == '[') {
		end = strchr(p, ']');
		if (end && !section_known(st->c, p + 1, (size_t)(end - p - 1))) {
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
	char where[200], msg[400], sections[96];

	if (st->failed)
		return 0;
	if (!*section) {
		list_sections(st->c, sections, sizeof(sections));
		(void)snprintf(msg, sizeof(msg), "'%s' is outside a section (options go under %s)", name, sections);
		return ini_fail(st, msg);
	}
	for (size_t s = 0; s < st->c->n_sets; s++) {
		const struct init_option_set *set = &st->c->sets[s];

		for (size_t i = 0; i < set->table->n; i++) {
			if (strcmp(set->table->opts[i].section, section) != 0 ||
			    strcmp(set->table->opts[i].key, name) != 0)
				continue;
			(void)snprintf(where, sizeof(where), "%s:%d: %s", st->path, st->line, name);
			if (apply(set, i, value, INIT_SRC_INI, where, st->err) < 0)
				st->failed = true;
			return st->failed ? 0 : 1;
		}
	}
	(void)snprintf(msg, sizeof(msg), "unknown key '%s' in section [%s]", name, section);
	return ini_fail(st, msg);
}

/* The line a NUL byte is on: text holds what came before it (init_read_file_bounded). */
static int line_of_nul(const char *text)
{
	int line = 1;

	for (const char *p = text; (p = strchr(p, '\n')); p++)
		line++;
	return line;
}

/*
 * Reads the INI file whole first, the way secrets are read: a regular file only (a FIFO would block, /dev/zero
 * never end, a directory or /proc/self/mem read as nothing), at most INI_MAX_SIZE bytes, no NUL byte (it would
 * end a line early). /dev/null is the usual way to say "no file", so it reads as empty.
 */
static int parse_ini(struct init_config *c, const char *path, bool must_exist, struct init_error *err)
{
	_cleanup_free_ char *text = NULL;
	char shown[128];
	struct ini_state st = {.c = c, .err = err, .path = shown};
	int n, r;

	init_escape_control(shown, sizeof(shown), path);
	if (strcmp(path, "/dev/null") == 0)
		return 0;
	text = malloc(INI_MAX_SIZE + 2);
	if (!text)
		return init_error_set(err, -ENOMEM, "out of memory");
	n = init_read_file_bounded(path, 0, text, INI_MAX_SIZE + 2, NULL);
	if (n == -ENOENT && !must_exist)
		return 0;
	if (n == -EBADFD)
		return init_error_set(err, -EINVAL, "KVINIT_CONFIG='%s': %s", shown, init_value_strerror(n));
	if (n == -EFBIG)
		return init_error_set(err, -EINVAL, "KVINIT_CONFIG='%s': is larger than 1 MiB", shown);
	if (n == -EILSEQ)
		return init_error_set(err, -EINVAL, "KVINIT_CONFIG='%s': line %d contains a NUL byte", shown,
				      line_of_nul(text));
	if (n < 0)
		return init_error_set(err, n, "cannot open config file '%s': %s", shown, strerror(-n));

	st.next = text;
	r = ini_parse_stream(read_ini_line, &st, on_ini_value, &st);
	if (st.failed)
		return -EINVAL;
	if (r < 0)
		return init_error_set(err, -ENOMEM, "out of memory");
	if (r > 0)
		return init_error_set(err, -EINVAL, "%s:%d: not a 'key = value' line or '[section]'", shown, r);
	return 0;
}

/* ---- environment and flags ---- */

/*
 * One option from the environment: NAME, an alias of it, or NAME_FILE (the Docker convention: the value is read
 * from that file, one trailing newline stripped). An empty variable counts as unset, as compose files often
 * write "VAR=" for "not given".
 */
static int apply_env(const struct init_option_set *set, size_t id, char *const *envp, struct init_error *err)
{
	const struct init_option_table *t = set->table;
	const char *name = t->opts[id].env, *value = init_env_lookup(envp, name), *path;
	char file_var[96], shown[128], where[256], data[INIT_VALUE_MAX + 2];
	int r;

	if (value && !*value)
		value = NULL;
	for (size_t i = 0; i < t->n_aliases; i++) {
		const char *alias = t->aliases[i].index == id ? init_env_lookup(envp, t->aliases[i].env) : NULL;

		if (!alias || !*alias)
			continue;
		if (value && strcmp(value, alias) != 0)
			return init_error_set(err, -EINVAL, "%s and %s are both set, to different values: set only %s",
					      name, t->aliases[i].env, name);
		value = alias;
		name = t->aliases[i].env;
	}

	(void)snprintf(file_var, sizeof(file_var), "%s_FILE", t->opts[id].env);
	path = init_env_lookup(envp, file_var);
	if (path && *path) {
		if (value)
			return init_error_set(err, -EINVAL, "%s and %s are both set: set only one", name, file_var);
		init_escape_control(shown, sizeof(shown), path);
		r = init_read_value_file(path, INIT_READ_BENEATH, data, NULL);
		if (r < 0)
			return init_error_set(err, r, "%s='%s': %s", file_var, shown, init_value_strerror(r));
		(void)snprintf(where, sizeof(where), "%s (from %s='%s')", t->opts[id].env, file_var, shown);
		return apply(set, id, data, INIT_SRC_ENV, where, err);
	}
	return value ? apply(set, id, value, INIT_SRC_ENV, name, err) : 0;
}

struct flag_value {
	const struct init_option_set *set;
	size_t index;
	const char *value;
};

static bool find_flag(const struct init_config *c, const char *name, size_t len, struct flag_value *ret)
{
	for (size_t s = 0; s < c->n_sets; s++) {
		for (size_t i = 0; i < c->sets[s].table->n; i++) {
			const char *key = c->sets[s].table->opts[i].key;

			if (strlen(key) == len && strncmp(key, name, len) == 0) {
				*ret = (struct flag_value){.set = &c->sets[s], .index = i};
				return true;
			}
		}
	}
	return false;
}

/*
 * Reads "--key value" and "--key=value" up to "--" or the first argument that is not a flag;
 * -ECANCELED for --help.
 * Collects them first: they win over everything, but the INI file they may name is read before them.
 */
static int collect_flags(const struct init_config *c, int argc, char **argv, struct flag_value *flags, int *ret_n,
			 const char **ret_config, int *ret_argind, struct init_error *err)
{
	const char *config = NULL;
	int i, n = 0;

	for (i = 0; i < argc; i++) {
		const char *arg = argv[i], *name, *eq, *value;
		struct flag_value flag = {0};
		bool is_config;
		size_t len;

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
		is_config = len == 6 && strncmp(name, "config", 6) == 0;
		if (!is_config && !find_flag(c, name, len, &flag))
			return init_error_set(err, -EINVAL, "unknown option '--%.*s' (see kvinit --help)", (int)len,
					      name);
		/* Booleans take a value too: a bare "--seccomp" before a command named "yes" or "true" is ambiguous. */
		if (!value) {
			if (i + 1 >= argc)
				return init_error_set(err, -EINVAL, "option '--%.*s' needs a value", (int)len, name);
			value = argv[++i];
		}
		if (is_config) {
			config = value;
		} else {
			flag.value = value;
			flags[n++] = flag;
		}
	}
	*ret_n = n;
	*ret_config = config;
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

	if (!flags)
		return init_error_set(err, -ENOMEM, "out of memory");
	r = collect_flags(c, argc, argv, flags, &n, &config, &argind, err);
	if (r < 0)
		return r;

	env_config = init_env_lookup(envp, "KVINIT_CONFIG");
	if (!config && env_config && *env_config)
		config = env_config;
	if (config && init_has_control_chars(config))
		return init_error_set(err, -EINVAL, "KVINIT_CONFIG: must not contain control characters");
	c->config_path = strdup(config ? config : INIT_DEFAULT_CONFIG);
	if (!c->config_path)
		return init_error_set(err, -ENOMEM, "out of memory");
	r = parse_ini(c, c->config_path, config != NULL, err);
	if (r < 0)
		return r;

	for (size_t s = 0; s < c->n_sets; s++) {
		for (size_t i = 0; i < c->sets[s].table->n; i++) {
			r = apply_env(&c->sets[s], i, envp, err);
			if (r < 0)
				return r;
		}
	}
	for (int i = 0; i < n; i++) {
		(void)snprintf(where, sizeof(where), "--%s", flags[i].set->table->opts[flags[i].index].key);
		r = apply(flags[i].set, flags[i].index, flags[i].value, INIT_SRC_FLAG, where, err);
		if (r < 0)
			return r;
	}
	*ret_argind = argind;
	return 0;
}

void init_config_help(const struct init_config *c, FILE *out)
{
	char rule[320], flag[64];

	(void)fprintf(out, "Options (flag, environment variable, INI key in [section] of KVINIT_CONFIG):\n");
	(void)fprintf(out, "  --config=PATH  KVINIT_CONFIG  INI file (default %s; a missing default file is fine)\n",
		      INIT_DEFAULT_CONFIG);
	for (size_t s = 0; s < c->n_sets; s++) {
		for (size_t i = 0; i < c->sets[s].table->n; i++) {
			const struct init_option_desc *d = &c->sets[s].table->opts[i];

			(void)snprintf(flag, sizeof(flag), "--%s", d->key);
			describe_rule(d, rule, sizeof(rule));
			(void)fprintf(out, "  %-18s %-22s [%s] %s\n  %-18s %s (default '%s'; %s)\n", flag, d->env,
				      d->section, d->key, "", d->help, d->def, rule);
		}
	}
}
