/* SPDX-License-Identifier: MIT */
/*
 * The node/ module: the Redis/Valkey node role, its health probe, cli and config rendering. node/cluster/ (its own
 * header, cluster.h) talks to the cluster and runs cluster-init.
 */
#ifndef KVINIT_NODE_H
#define KVINIT_NODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "init.h"

/* ---- server detection (server.c) ---- */
enum node_flavor { NODE_REDIS, NODE_VALKEY };

struct node_server {
	char *server_bin; /* absolute path of redis-server or valkey-server */
	char *cli_bin;	  /* the matching redis-cli or valkey-cli, or NULL */
	enum node_flavor flavor;
	unsigned version; /* NODE_VERSION(major, minor, patch) */
};

/*
 * A version as one number that orders like the tuple (major, minor, patch), each part 0-999: release candidates
 * and unstable builds report parts above 99 (Redis 7.2-rc1 is 7.1.240, Valkey unstable 255.255.255).
 */
#define NODE_VERSION_PART_MAX		  999U
#define NODE_VERSION(major, minor, patch) ((major)*1000000U + (minor)*1000U + (patch))
#define NODE_VERSION_MAJOR(v)		  ((v) / 1000000U)
#define NODE_VERSION_MINOR(v)		  ((v) / 1000U % 1000U)
#define NODE_VERSION_PATCH(v)		  ((v) % 1000U)

int node_server_parse_version(const char *text, enum node_flavor *ret_flavor, unsigned *ret_version);
int node_server_detect(const char *explicit_bin, struct node_server *ret, struct init_error *err);
void node_server_free(struct node_server *s);

/* Directives that exist only from some server version on. */
enum node_directive {
	NODE_DIR_CLUSTER_PORT,
	NODE_DIR_ANNOUNCE_HOSTNAME,
	NODE_DIR_PREFERRED_ENDPOINT_TYPE,
	NODE_DIR_ACL_CHANNELS,
	NODE_DIR__COUNT
};
bool node_server_knows(const struct node_server *s, enum node_directive d);
const char *node_directive_name(enum node_directive d);
void node_server_describe(const struct node_server *s, char *buf, size_t size);

/* ---- what the node announces (address.c) ---- */
int node_detect_own_ipv4(char *buf, size_t size);

/* ---- rendering (render.c): pure, no I/O ---- */
struct node_render_input {
	const struct init_options *opt;
	const enum init_option_source *source;
	const struct node_server *server;
	bool base_config_present;
	const char *announce_ip;	/* NULL: let the server pick */
	const char *const *pass_hashes; /* sha256 hex of every accepted password; NULL or empty list: nopass */
	size_t n_hashes;
	const char *masterauth; /* NULL: none */
	bool redact;		/* `kvinit render`: hashes and masterauth shown as <redacted> */
};

int node_render(const struct node_render_input *in, char **ret_text, struct init_error *err);
void node_quote_config_value(const char *value, char *buf, size_t size);

/* ---- nodes.conf repair (nodes_conf.c) ---- */
/*
 * Rewrites the address of the `myself` line of a nodes.conf text to ip:port@bus_port, keeping the hostname part
 * (",hostname") and every other byte. Returns 1 and the new text in *ret_text (malloc'd) when it changed, 0 when
 * the address was already right (ret_text untouched), -ENOENT when there is no myself line (a file that is empty or
 * only whitespace is not corrupt: returns 0), -EBADMSG when the text is not a nodes.conf. On 1, *ret_old (may be
 * NULL) gets the old "ip:port@bus" (malloc'd).
 */
int node_nodes_conf_fix_text(const char *text, size_t len, const char *ip, unsigned port, unsigned bus_port,
			     char **ret_text, char **ret_old);
/*
 * Applies node_nodes_conf_fix_text to the file at path: atomically (temp file in the same directory, same owner
 * and mode, fsync, rename, fsync of the directory). Returns 1 when rewritten, 0 when nothing to do or the file does
 * not exist, -EBADMSG for a corrupt file; fills err with one line that says how to recover.
 */
int node_nodes_conf_repair(const char *path, const char *ip, unsigned port, unsigned bus_port, char **ret_old,
			   struct init_error *err);

/* ---- roles (node.c, health.c, cli.c, cluster/cluster_init.c) and the helpers beside the server ---- */
void node_probe_host(const char *bind, char *buf, size_t size);
int node_defaults(struct init_config *c, struct init_error *err);
int node_main(struct init_config *c, char **args);
int node_render_main(struct init_config *c, char **args);
int node_health_main(struct init_config *c, char **args);
int node_cli_main(struct init_config *c, char **args);
int node_cluster_init_main(struct init_config *c, char **args);
/*
 * The helpers node.c runs beside the server, each in a process of its own: cluster-init for REDIS_CLUSTER_CREATOR,
 * heal.c and rotate.c return 0 when done, or -errno after logging what failed. The failover on stop runs in kvinit
 * itself while the server stops and cannot fail: it logs and carries on.
 */
struct secrets_value;
int node_cluster_init_run(const struct init_options *o, const struct secrets_value *pw);
int node_heal_run(const struct init_options *o, const struct secrets_value *pw);
struct secrets_rotation;
int node_rotate_apply(const struct init_options *o, const struct secrets_rotation *rot,
		      const struct secrets_value *login, size_t n_login);
void node_failover_on_stop(const struct init_options *o, const struct secrets_value *pw, uint64_t deadline_usec);

#endif
