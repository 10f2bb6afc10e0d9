/* SPDX-License-Identifier: MIT */
/* The node's options table (options.def) and the checks of its values; the engine is init/options.c. */
#include <errno.h>
#include <string.h>

#include "node.h"

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

/* An address or a name: where a replica finds its primary, or what a replica or Sentinel announces. */
static const char *refuse_host(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	(void)buf;
	(void)size;
	return !*s || init_valid_ip(s) || init_valid_hostname(s) ? NULL : check->rule;
}

/* A Sentinel master set: written into sentinel.conf lines as it is, so one plain token. */
static const char *refuse_master_set(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	(void)buf;
	(void)size;
	return n && !s[n] && n <= 64 ? NULL : check->rule;
}

/* A zone goes to availability-zone and to cluster-init's plan: one token of printable ASCII, nothing to quote. */
static const char *refuse_zone(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	size_t len = strlen(s);

	(void)buf;
	(void)size;
	if (len > NODE_ZONE_MAX)
		return check->rule;
	for (; *s; s++)
		if (*s <= ' ' || *s >= 0x7f)
			return check->rule;
	return NULL;
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

/*
 * redis.conf's bind: addresses separated by spaces, each may start with '-' (optional address), or '*'. render.c
 * writes the value as it is, so nothing but these may pass.
 */
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

static const char *refuse_extra_flags(const struct init_string_check *check, const char *s, char *buf, size_t size)
{
	struct node_extra_flags flags;
	struct init_error err;
	int r = node_extra_flags_parse(s, &flags, &err);

	if (r == 0) {
		node_extra_flags_free(&flags);
		return NULL;
	}
	if (r == -ENOMEM)
		return "out of memory";
	(void)check;
	(void)snprintf(buf, size, "%s", err.msg);
	return buf;
}

static const struct init_string_check node_check_ip = {"must be an IPv4 or IPv6 address", refuse_ip};
static const struct init_string_check node_check_hostname = {
	"must be a hostname (RFC 1123: letters, digits, '-' and '.', labels of 1 to 63)", refuse_hostname};
static const struct init_string_check node_check_host = {"must be an IPv4 or IPv6 address or a hostname (RFC 1123)",
							 refuse_host};
static const struct init_string_check node_check_master_set = {"must be 1 to 64 letters, digits, '.', '_' or '-'",
							       refuse_master_set};
static const struct init_string_check node_check_zone = {
	"must be empty or up to 64 printable ASCII characters without blanks", refuse_zone};
static const struct init_string_check node_check_path = {"must be an absolute path", refuse_path};
static const struct init_string_check node_check_optional_path = {"must be empty or an absolute path",
								  refuse_optional_path};
static const struct init_string_check node_check_bind = {
	"must be addresses separated by spaces, each an IP address or '*', optionally with a leading '-'", refuse_bind};
static const struct init_string_check node_check_extra_flags = {NODE_EXTRA_FLAGS_RULE, refuse_extra_flags};

const char *const node_endpoint_names[] = {"ip", "hostname", "unknown-endpoint", NULL};
const char *const node_replication_mode_names[] = {"none", "primary", "replica", "master", "slave", NULL};
/* in the order of enum node_tls_auth */
const char *const node_tls_auth_names[] = {"yes", "no", "optional", NULL};

static const struct init_option_desc node_descs[] = {
#define OPT_STR(...)	  INIT_OPTION_DESC_STR(struct node_options, __VA_ARGS__)
#define OPT_BOOL(...)	  INIT_OPTION_DESC_BOOL(struct node_options, __VA_ARGS__)
#define OPT_INT(...)	  INIT_OPTION_DESC_INT(struct node_options, __VA_ARGS__)
#define OPT_DURATION(...) INIT_OPTION_DESC_DURATION(struct node_options, __VA_ARGS__)
#define OPT_ENUM(...)	  INIT_OPTION_DESC_ENUM(struct node_options, __VA_ARGS__)
#include "options.def"
};

/* Older names a user may bring from other images; the table's name wins, and both must agree. */
static const struct init_option_alias node_aliases[] = {
	{"REDIS_PORT", NODE_OPT_port},
	{"REDIS_CLUSTER_NODES", NODE_OPT_nodes},
	/* Bitnami's redis and redis-sentinel images */
	{"REDIS_MASTER_HOST", NODE_OPT_primary_host},
	{"REDIS_MASTER_PORT_NUMBER", NODE_OPT_primary_port},
	{"REDIS_SENTINEL_HOST", NODE_OPT_sentinel_nodes},
	{"REDIS_SENTINEL_MASTER_NAME", NODE_OPT_master_set},
	/* Bitnami's redis-cluster image reads it when REDIS_TLS_PORT_NUMBER is unset */
	{"REDIS_TLS_PORT", NODE_OPT_tls_port},
};

static const struct init_option_table node_table = {
	.opts = node_descs,
	.n = NODE_OPT__COUNT,
	.aliases = node_aliases,
	.n_aliases = sizeof(node_aliases) / sizeof(node_aliases[0]),
};

int node_config_defaults(struct node_config *c, struct init_error *err)
{
	int r;

	*c = (struct node_config){0};
	r = init_config_defaults(&c->core, err);
	return r < 0 ? r : init_config_add(&c->core, &node_table, &c->opt, c->source, err);
}

void node_config_free(struct node_config *c)
{
	init_config_free(&c->core);
}
