/* SPDX-License-Identifier: MIT */
/* The node/ module: the Redis/Valkey node role, its health probe, cli and config rendering. */
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
	unsigned version; /* major * 10000 + minor * 100 + patch */
};

#define NODE_VERSION(major, minor, patch) ((major)*10000U + (minor)*100U + (patch))

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

/* ---- addresses (address.c) ---- */
int node_detect_own_ipv4(char *buf, size_t size);
/* Where this node can be reached from inside its container: loopback when it listens there, else its first bind. */
void node_probe_host(const char *bind, char *buf, size_t size);

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
 * not exist, -EBADMSG for a file that is not a nodes.conf (corrupt, no myself line, or over 64 MiB), with one line
 * in err that says how to recover; -EINVAL for a path that is not a regular file or an invalid address; else the
 * -errno of the failed call.
 */
int node_nodes_conf_repair(const char *path, const char *ip, unsigned port, unsigned bus_port, char **ret_old,
			   struct init_error *err);

/* ---- cluster planning (plan.c): pure, no I/O ---- */
#define NODE_SLOTS    16384
#define NODE_HOST_MAX 256

struct node_addr {
	char host[NODE_HOST_MAX]; /* as written: an IP address (IPv6 without brackets) or an RFC 1123 name */
	unsigned port;
};

/*
 * Parses REDIS_NODES: entries separated by spaces, commas or semicolons (any mix, runs of them count as one);
 * each `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; a bare IPv6 address (two or more colons, no brackets) is a
 * host without port. The port defaults to default_port. Refused, with one line in err naming the entry and the rule:
 * an empty list, an empty entry host, a host that is neither an IP nor an RFC 1123 name, a port outside 1-65535
 * or not decimal, a duplicate host:port, more than 1000 entries. `var` names the variable in messages.
 */
int node_parse_nodes(const char *list, const char *var, unsigned default_port, struct node_addr **ret_nodes,
		     size_t *ret_n, struct init_error *err);

enum node_role { NODE_ROLE_MASTER, NODE_ROLE_REPLICA };

struct node_plan_entry {
	enum node_role role;
	size_t master;	      /* a replica's master: index into the node list; a master: its own index */
	unsigned first, last; /* a master's slot range, inclusive */
};

/*
 * The deterministic plan for n nodes in list order. host_keys[i] says which machine node i is on (its resolved
 * address; equal keys = same machine; NULL = a machine of its own). masters = n / (replicas + 1), at least 1 (else
 * -EINVAL with a message). Masters are chosen in list order, each time the first node on a host with the fewest
 * masters so far, so masters spread over machines (losing one machine must not lose a majority of them); slot
 * ranges follow list order and match redis-cli --cluster create exactly. Replicas are handed out round-robin over
 * the masters, each time the first remaining node on a different host than that master if there is one, else the
 * first remaining; nodes left over (5 nodes with replicas 1) become extra replicas of the masters with the fewest
 * replicas, lowest index first, again preferring a different host. A last pass swaps the masters of two replicas
 * where that takes a replica off its master's host without putting the other on its own. ret has n entries,
 * index-aligned with the node list. Returns the number of masters. *ret_same_host (may be NULL) is the number of
 * replicas that still share their master's host.
 */
int node_plan_cluster(size_t n, const char *const *host_keys, unsigned replicas, struct node_plan_entry *ret,
		      size_t *ret_same_host, struct init_error *err);

/* ---- roles (node.c, health.c, cli.c) ---- */
int node_defaults(struct init_config *c, struct init_error *err);
int node_main(struct init_config *c, char **args);
int node_render_main(struct init_config *c, char **args);
int node_health_main(struct init_config *c, char **args);
int node_cli_main(struct init_config *c, char **args);
int node_cluster_init_main(struct init_config *c, char **args);
struct secrets_value;
int node_cluster_init_run(const struct init_options *o, const struct secrets_value *pw);
int node_heal_run(const struct init_options *o, const struct secrets_value *pw);
struct secrets_rotation;
int node_rotate_apply(const struct init_options *o, const struct secrets_rotation *rot,
		      const struct secrets_value *login, size_t n_login);
void node_failover_on_stop(const struct init_options *o, const struct secrets_value *pw, uint64_t deadline_usec);

#endif
