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
#include <time.h>

#include "init.h"
#include "secrets.h"

/* The longest host a node names: an IP address or an RFC 1123 name, with its NUL. */
#define NODE_HOST_MAX 256

/* ---- options (options.c, options.def): the node's table, on top of the PID-1 core's ---- */
struct node_options {
#define OPT_STR	     INIT_OPTION_FIELD_STR
#define OPT_BOOL     INIT_OPTION_FIELD_BOOL
#define OPT_INT	     INIT_OPTION_FIELD_INT
#define OPT_DURATION INIT_OPTION_FIELD_DURATION
#define OPT_ENUM     INIT_OPTION_FIELD_ENUM
#include "options.def"
};

enum node_option_id {
#define OPT_ID(field, ...) NODE_OPT_##field,
#define OPT_STR		   OPT_ID
#define OPT_BOOL	   OPT_ID
#define OPT_INT		   OPT_ID
#define OPT_DURATION	   OPT_ID
#define OPT_ENUM	   OPT_ID
#include "options.def"
#undef OPT_ID
	NODE_OPT__COUNT
};

/* What a node role runs with: the core's options (core.opt, for the supervision) and the node's. */
struct node_config {
	struct init_config core;
	struct node_options opt;
	enum init_option_source source[NODE_OPT__COUNT];
};

/* Both tables with their built-in defaults; then init_config_load(&c->core, ...) reads everything. */
int node_config_defaults(struct node_config *c, struct init_error *err);
void node_config_free(struct node_config *c);

/* REDIS_CLUSTER_AVAILABILITY_ZONE's longest value (node_check_zone's rule says 64 too). */
#define NODE_ZONE_MAX 64

/* REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE's values, as the server spells them. */
extern const char *const node_endpoint_names[];
/* REDIS_REPLICATION_MODE's values: none, primary, replica, and Bitnami's master and slave. */
extern const char *const node_replication_mode_names[];
/* REDIS_TLS_AUTH_CLIENTS's values, as tls-auth-clients spells them. */
enum node_tls_auth { NODE_TLS_AUTH_YES, NODE_TLS_AUTH_NO, NODE_TLS_AUTH_OPTIONAL };
extern const char *const node_tls_auth_names[];

/* ---- what kvinit owns in the server config (directives.c): pure, no I/O ---- */
#define NODE_EXTRA_FLAGS_RULE "must be redis-server flags, each '--directive' followed by its values"

/* REDIS_EXTRA_FLAGS split once into tokens, for the option check and for render.c alike. */
struct node_extra_flags {
	char *buf;     /* the value, each token NUL-terminated in place */
	char **tokens; /* a directive is a token "--name"; its values are the tokens up to the next directive */
	size_t n;
};

/*
 * Splits flags at runs of blanks and checks every token: the first is a "--directive", each directive is lowercase
 * letters, digits and '-', has one value at least and is not one kvinit owns. Returns 0, -ENOMEM, or -EINVAL with
 * the rule it broke in err (NODE_EXTRA_FLAGS_RULE, or the directive kvinit owns).
 */
int node_extra_flags_parse(const char *flags, struct node_extra_flags *ret, struct init_error *err);
void node_extra_flags_free(struct node_extra_flags *f);

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
	NODE_DIR_AVAILABILITY_ZONE,
	NODE_DIR_ANNOUNCE_TLS_PORT,
	NODE_DIR__COUNT
};
bool node_server_knows(const struct node_server *s, enum node_directive d);
const char *node_directive_name(enum node_directive d);
void node_server_describe(const struct node_server *s, char *buf, size_t size);

/* ---- ACL users from a file (acl.c): REDIS_ACLFILE, else the Docker secret redis_users ---- */
#define NODE_ACL_DEFAULT_FILE "/run/secrets/redis_users"
#define NODE_ACL_MAX_USERS    256
#define NODE_ACL_FILE_MAX     ((size_t)256 * 1024)

struct node_acl_user {
	char *name;
	char **rules; /* as the server takes them once resolved: a '<file' rule becomes '#<sha256>' */
	size_t n_rules;
	unsigned line; /* in the file */
};

struct node_acl {
	struct node_acl_user *user;
	size_t n;
	char **files; /* the password files the users' '<file' rules read (node_acl_resolve) */
	size_t n_files;
};

/*
 * Parses a users file: lines `user <name> <rule>...` in the server's ACL syntax, comments ('#' first) and blank
 * lines. A rule is on, off, '#<sha256>' (64 lowercase hex digits), '<file' (a password file beside the users
 * file), '~pattern', '%R~' / '%W~' / '%RW~pattern', '&channel', '+' or '-' a command, command|subcommand or
 * @category, or one of allkeys, resetkeys, allchannels, resetchannels, allcommands, nocommands, resetpass, reset,
 * clearselectors. Refused, each with "line N: " and the rule: a password in plain text ('>...'), nopass, '!<hash>',
 * selectors, the user default (kvinit's), a name used twice, a control character, any other line. Pure. Returns 0
 * with *ret, or -EINVAL (-ENOMEM) with one line in err.
 */
int node_acl_parse(const char *text, size_t len, struct node_acl *ret, struct init_error *err);
/* Reads each '<file' rule's password file in dir (secrets_read_file's rules) into its '#<sha256>'; -EINVAL with err. */
int node_acl_resolve(struct node_acl *acl, const char *dir, struct init_error *err);
/* Reads, parses and resolves the users file at path; err names the file. */
int node_acl_load(const char *path, struct node_acl *ret, struct init_error *err);
void node_acl_free(struct node_acl *acl);
bool node_acl_rule_is_file(const char *rule);
const struct node_acl_user *node_acl_find(const struct node_acl *acl, const char *name);
/* The same users with the same rules, in the same order. */
bool node_acl_equal(const struct node_acl *a, const struct node_acl *b);
/* Whether u is new or has other rules than the user of its name in from. */
bool node_acl_user_changed(const struct node_acl *from, const struct node_acl_user *u);
/* The users as config directives, one `user` line each; hashes '#<redacted>' with redact. */
void node_acl_render(FILE *f, const struct node_acl *acl, bool redact);
/*
 * In a helper beside the server (runtime.c): the users of want that are new or changed against applied (or named
 * in stale: a change that may have been half applied) are tried on the server first, then set with ACL SETUSER
 * name reset <rules>; the users of applied and stale that want lacks are deleted (ACL DELUSER, which closes their
 * connections). A rule the server refuses changes nothing. 0, or -errno after logging.
 */
int node_acl_apply(const struct node_options *o, const struct secrets_rotation *rot, const struct secrets_value *login,
		   size_t n_login, const struct node_acl *want, const struct node_acl *applied,
		   const char *const *stale, size_t n_stale);

/*
 * The users file in kvinit's loop (acl_watch.c): watches it and the password files it names (loop), checks a
 * changed file (a file that fails is ignored, loudly) and keeps the users on their way to the server.
 * start_helper(userdata) is called when they should go to it: the owner (re)starts the users helper, whose process
 * calls node_acl_watch_apply, and calls node_acl_watch_done when it ended, which returns true when s's users are
 * the new ones (the rendered config should follow). *ret is NULL without a users file. 0 or -ENOMEM.
 */
struct node_setup;
struct node_acl_watch;
typedef void (*node_acl_watch_fn)(void *userdata);
int node_acl_watch_new(struct node_setup *s, struct init_loop *loop, node_acl_watch_fn start_helper, void *userdata,
		       struct node_acl_watch **ret);
int node_acl_watch_apply(const struct node_acl_watch *u, const struct secrets_value *login, size_t n_login);
bool node_acl_watch_done(struct node_acl_watch *u, bool ok);
/* The node stops: a change from now on is left alone. */
void node_acl_watch_stop(struct node_acl_watch *u);
/* Once the loop has ended. */
void node_acl_watch_free(struct node_acl_watch *u);

/* ---- TLS (tls.c): the settings, and the certificates checked with OpenSSL ---- */
/*
 * The port clients, peers and kvinit's own connections reach the server at: REDIS_TLS_PORT_NUMBER with TLS, else
 * REDIS_PORT_NUMBER. The cluster bus port defaults to it + 10000, as the server computes it.
 */
unsigned node_client_port(const struct node_options *o);
/* Whether the plain port stays open beside the TLS port: with TLS, only on a port of its own. */
bool node_plain_port_open(const struct node_options *o);
/*
 * With REDIS_TLS_ENABLED=yes: a certificate, its key and a CA (file or directory) are named, and REDIS_EXTRA_FLAGS
 * sets none of the TLS directives kvinit renders. Pure. 0, or -EINVAL (-ENOMEM) with one line in err.
 */
int node_tls_check_settings(const struct node_options *o, struct init_error *err);

/* The files of a TLS setup; NULL or "" for one not given. */
struct node_tls_files {
	const char *cert;      /* PEM: the node's certificate, then its intermediates */
	const char *key;       /* PEM: its private key, encrypted or not */
	const char *key_pass;  /* the key's passphrase */
	const char *ca_file;   /* PEM: the CA certificates */
	const char *ca_dir;    /* a directory of CA certificates by hash (openssl rehash) */
	const char *dh_params; /* PEM: DH parameters */
	/* the certificate is also the node's client certificate (cluster bus, replication), checked by its peers */
	bool client_too;
};

/* What node_tls_check found in a certificate that passed. */
struct node_tls_info {
	char serial[96]; /* hex, as openssl x509 -serial prints it */
	time_t not_before, not_after;
};

/* A certificate that expires within this is warned about at start and every day. */
#define NODE_TLS_EXPIRY_WARN_SEC ((time_t)7 * 24 * 3600)

/* The files of the options o. */
void node_tls_files_from(const struct node_options *o, struct node_tls_files *ret);
/*
 * Checks a TLS setup as the server and its peers will use it: the certificate and the key parse (the key with its
 * passphrase) and match; the certificate is valid at now (not expired, not before its start); it chains to the CA
 * (file or directory; intermediates from the certificate file); its extended key usage, when it has one, allows a
 * TLS server (and a TLS client with client_too); its subject alternative names cover every one of names (an IP
 * address needs an IP SAN, a name a DNS SAN, wildcards as clients match them); the DH parameters parse. Files are
 * read through their path at every call (a Kubernetes Secret volume swaps its ..data symlink), so this also checks a
 * new set before it is loaded. Returns 0 with *ret (may be NULL), or -EINVAL with one line in err naming the file's
 * variable, its path and the rule (-ENOMEM).
 */
int node_tls_check(const struct node_tls_files *f, const char *const *names, size_t n_names, time_t now,
		   struct node_tls_info *ret, struct init_error *err);
/* Whether the certificate at path has a SAN for name (an IP SAN for an address): 1 yes, 0 no, -errno unreadable. */
int node_tls_covers(const char *cert_path, const char *name);
/* "2026-11-26 02:51:26 UTC" */
void node_tls_format_time(time_t t, char *buf, size_t size);
/*
 * With REDIS_TLS_ENABLED: kvinit's own connections of this process (node_conn_connect) are TLS from now on, checked
 * against the CA (ca_file, or NULL: REDIS_TLS_CA_FILE), with the node's certificate as client certificate
 * (conn_tls.c). 0 without TLS; -EINVAL with one line in err.
 */
int node_tls_client_setup(const struct node_options *o, const char *ca_file, struct init_error *err);
/* How often a running node or Sentinel looks at its certificate's end date again (a warning within a week). */
#define NODE_TLS_EXPIRY_CHECK_USEC (24ULL * 3600 * USEC_PER_SEC)
/* A TLS file larger than this counts as unreadable (a CA bundle of a distribution is 220 KiB). */
#define NODE_TLS_FILE_MAX	   ((size_t)4 * 1024 * 1024)

/* Warns when the certificate at path (info from node_tls_check) expires within NODE_TLS_EXPIRY_WARN_SEC of now. */
bool node_tls_warn_expiry(const char *path, const struct node_tls_info *info, time_t now);

/* ---- addresses (address.c) ---- */
int node_detect_own_ipv4(char *buf, size_t size);
/*
 * Whether ip is an address of this host (of the container's network namespace): 1 yes, 0 no (the kernel refuses to
 * bind it), -EINVAL for text that is no IP address, another -errno when it cannot tell.
 */
int node_address_is_local(const char *ip);
/* Where this node can be reached from inside its container: loopback when it listens there, else its first bind. */
void node_probe_host(const char *bind, char *buf, size_t size);

/* ---- rendering (render.c): pure, no I/O ---- */
struct node_render_input {
	const struct node_options *opt;
	const enum init_option_source *source;
	const struct node_server *server;
	bool base_config_present;
	const char *announce_ip;	/* NULL: let the server pick */
	const char *const *pass_hashes; /* sha256 hex of every accepted password; NULL or empty list: nopass */
	size_t n_hashes;
	const char *masterauth;	    /* NULL: none */
	const char *replicaof_host; /* replication mode: the primary a replica starts from; NULL: none */
	unsigned replicaof_port;
	bool redact;		      /* `kvinit render`: hashes and masterauth shown as <redacted> */
	const struct node_acl *users; /* the users file's users, after the default user; NULL: none */
};

int node_render(const struct node_render_input *in, char **ret_text, struct init_error *err);
/* value as redis.conf reads it, quoted and escaped where it must be (render.c says how). */
void node_write_config_value(FILE *f, const char *value);
/* One config line: the name, then the value quoted as node_write_config_value does. */
void node_render_directive(FILE *f, const char *name, const char *value);
/* The TLS files and tls-auth-clients as a server or a Sentinel reads them (the passphrase <redacted> when asked). */
void node_render_tls_files(FILE *f, const struct node_options *o, bool redact);

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

/* ---- the data directory (datadir.c) ---- */
/* Where the Bitnami redis-cluster image keeps its data, and its users mount their volume. */
#define NODE_BITNAMI_DATA_DIR "/bitnami/redis/data"

/* What a nodes.conf says this node was: the peers it knew, its role and its slots. */
struct node_former {
	unsigned peers;
	bool was_master;
	unsigned slots;
};

/* The mount point of a /proc/self/mountinfo line, unescaped. -EBADMSG, -ENAMETOOLONG. Pure. */
int node_mountinfo_point(const char *line, char *ret, size_t size);
/* Whether path is mount or below it, by whole components. Pure. */
bool node_path_under(const char *path, const char *mount);
/* The mount point path is on (the longest above it in /proc/self/mountinfo). */
int node_mount_of(const char *path, char *ret, size_t size);
/*
 * REDIS_DATA_DIR unset and NODE_BITNAMI_DATA_DIR on a volume: the data dir becomes that, with a log line. 1 when it
 * did, 0 when not, -ENOMEM.
 */
int node_data_dir_pick(struct node_config *c);
/* Warns once when dir is on the root filesystem: in a container, not on a volume. */
void node_data_dir_check_volume(const char *dir);
/* From a nodes.conf text: 1 with *ret when it lists peers, else 0. Pure. */
int node_nodes_conf_former(const char *text, struct node_former *ret);
/* The same for dir/nodes.conf: 0 when there is none. */
int node_data_dir_former(const char *dir, struct node_former *ret);
/* Whether dir holds anything but nodes.conf, temp files and empty directories. */
bool node_data_dir_holds_data(const char *dir);
/*
 * Beside the server of a node that was in a cluster (f) and started with no data: asks its peers for their keys
 * and warns when they hold some. Returns 0: it only ever says something.
 */
int node_data_check_peers(const struct node_options *o, const struct secrets_value *pw, const struct node_former *f);

/* ---- what the host gives the server (hostcheck.c) ---- */
/* The text of /proc/sys/vm/overcommit_memory: 0 with the mode (0-2), or -EINVAL. Pure. */
int node_overcommit_parse(const char *text, int *ret_mode);
/* Warns once, with the host's command that fixes it, when vm.overcommit_memory is not 1 (what Redis asks for). */
void node_check_overcommit(void);

/* ---- the node's start-up (setup.c), in the order node.c runs it ---- */

/* What `kvinit node` works out before it writes or starts anything. */
struct node_setup {
	const struct node_config *c;
	struct node_server server;
	struct secrets_password password;
	/* The passwords it accepts and the one it sends; with a password file, the files of a rotation too. */
	struct secrets_rotation rotation;
	struct secrets_paths paths;
	struct secrets_set initial; /* the files as first read */
	bool rotating;
	char announce_ip[64];
	bool has_announce_ip;
	bool follows_address; /* the address is the container's own, detected: it follows a change (netwatch.c) */
	/* it was in a cluster (nodes.conf lists peers) and its data dir holds no data: its peers are asked */
	struct node_former former;
	bool check_former;
	unsigned bus_port;
	/* replication mode: the primary this node starts as a replica of (node_replication_discover); empty: none */
	char replicaof_host[NODE_HOST_MAX];
	unsigned replicaof_port;
	/* with TLS: the certificate the server was given, as checked at start (a rotation that loads another sets it)
	 */
	struct node_tls_info tls;
	/* the users file (REDIS_ACLFILE, else NODE_ACL_DEFAULT_FILE when it exists): users_path NULL without one */
	char *users_path;
	struct node_acl users;
};

/*
 * The settings that must agree with each other: REDIS_CLUSTER_CREATOR needs a cluster and REDIS_NODES; the cluster
 * bus port (REDIS_CLUSTER_BUS_PORT, else the port + 10000) must be a port and not the port itself; and the
 * replication settings (node_replication_check_settings). Pure. Returns 0 with the bus port, or -EINVAL (-ENOMEM)
 * with one line in err.
 */
int node_setup_check_settings(const struct node_options *o, unsigned *ret_bus_port, struct init_error *err);
/*
 * Reads the settings, the password and the files of its rotation, finds the server and the address to announce,
 * checks the TLS certificates (node_tls_check: they must cover what the node announces); logs a warning for a
 * password that leaks or is missing by choice, and for a certificate that expires within a week. Writes nothing.
 * Returns 0, or with one line in err: -ENOENT when there is no server binary (and for nothing else), -EINVAL for a
 * setting that cannot work (including a password file or a server that cannot be used), -ENOMEM. Free *ret_setup with
 * node_setup_free.
 */
int node_setup_prepare(const struct node_config *c, struct node_setup *ret_setup, struct init_error *err);
/*
 * The start of every role that runs or shows a server (node, render, sentinel): no argument (role names the role
 * in the line that says so: the settings come from the environment), the data dir picked where pick_data_dir
 * (node_data_dir_pick; the Sentinel keeps its own), then node_setup_prepare. Returns 0, or with one line in err
 * -E2BIG for an argument, -ENOMEM, or node_setup_prepare's code (-ENOENT: no server binary, the role's 127).
 */
int node_setup_start(struct node_config *c, char **args, const char *role, bool pick_data_dir,
		     struct node_setup *ret_setup, struct init_error *err);
/* The server's config (node_render), hashes and masterauth <redacted> with redact. -EINVAL or -ENOMEM with err. */
int node_setup_render(const struct node_setup *s, bool redact, char **ret_text, struct init_error *err);
/* Wipes (it holds masterauth) and frees a rendered config; NULL is fine. */
void node_setup_text_free(char *text);
/*
 * With TLS, kvinit read the files as root; the server reads them as user: a file it cannot read by its mode is
 * warned about before the server fails on it.
 */
void node_setup_tls_access(const struct node_setup *s, const struct init_user *user);
/* The data dir, created if missing; it and what is in it become the server user's, like the official images. */
int node_setup_data_dir(const struct node_setup *s, const struct init_user *user, struct init_error *err);
/*
 * Before the server reads nodes.conf: its own line must carry the address it will announce now (a log line says
 * when it changed). A corrupt file is refused (-EBADMSG), or moved aside with KVINIT_RESET_CORRUPT_NODES_CONF;
 * else the code of node_nodes_conf_repair or of the rename.
 */
int node_setup_nodes_conf(const struct node_setup *s, struct init_error *err);
/* Writes the rendered config where the server reads it: 0600, atomically, the server user's when kvinit switches. */
int node_setup_write_config(const struct node_setup *s, const struct init_user *user, const char *text,
			    struct init_error *err);
/*
 * The TLS files of s's options checked as at start (node_tls_check with the names the node announces), read again
 * now, with the CA of ca_file (NULL: REDIS_TLS_CA_FILE): a rotation checks a new set with it. 0 with *ret, or
 * -EINVAL with one line in err.
 */
int node_setup_check_tls(const struct node_setup *s, const char *ca_file, struct node_tls_info *ret,
			 struct init_error *err);
/*
 * Certificate rotation in kvinit's loop (tls_rotate.c), for a node and a Sentinel alike: with TLS, watches the
 * certificate, key, CA file and CA directory (loop), checks a new set as at start (ops->check), stages a CA change
 * (the old and the new CA trusted together for KVINIT_ROTATION_GRACE, in a bundle) and says once a day a
 * certificate that ends soon. A checked set goes to the server one at a time: ops->apply(ops->userdata) starts
 * giving it (a node: the certificates helper, whose process calls node_tls_rotation_apply; a Sentinel: a restart,
 * then a helper that calls node_tls_rotation_confirm), and the owner calls node_tls_rotation_done when that ended.
 * A set checked meanwhile goes next, and ops->cancel (if any) is told the one given is stale. *ret is NULL without
 * TLS; a watch that cannot start is logged (the rotation then needs a restart). 0 or -ENOMEM.
 */
struct node_tls_rotation;
struct node_tls_rotation_ops {
	/* the set's check as at start, with the CA of ca_file (NULL: REDIS_TLS_CA_FILE) (node_setup_check_tls) */
	int (*check)(const struct node_setup *s, const char *ca_file, struct node_tls_info *ret,
		     struct init_error *err);
	void (*apply)(void *userdata);
	void (*cancel)(void *userdata);
	void *userdata;
	/* the log lines: "<server> serves serial", "<giving> the certificate with serial 'x' (serving 'y'<note>)" */
	const char *server, *giving, *note;
	const char *ca_bundle_dir; /* where the staged CA bundle goes (the server user reads it); NULL: beside
				      KVINIT_RENDERED_CONFIG */
};
int node_tls_rotation_new(struct node_setup *s, struct init_loop *loop, const struct node_tls_rotation_ops *ops,
			  struct node_tls_rotation **ret);
/*
 * The CA file the server was last given with a set (the staged bundle while a CA change is staged), NULL for
 * REDIS_TLS_CA_FILE (and for a NULL t): what a server rendered now must trust.
 */
const char *node_tls_rotation_ca_file(const struct node_tls_rotation *t);
/* Giving the set ended: ok when it is served (said, and kvinit's own connections take its files). */
void node_tls_rotation_done(struct node_tls_rotation *t, bool ok);
/*
 * In a helper process: this process's own connections take the files of the set given, and a handshake of its own
 * with host:port must find it serving that set's serial within timeout_ms; who prefixes the address in the error
 * line ("" or "the restarted Sentinel "). 0, or -errno once it has said why.
 */
int node_tls_rotation_confirm(const struct node_tls_rotation *t, const char *host, unsigned port, unsigned timeout_ms,
			      const char *who);
/*
 * A node's apply, in its certificates helper: CONFIG SET of the TLS files with the set's CA (the server reads them
 * again), then node_tls_rotation_confirm within 2 s. 0, or -errno once it has said why.
 */
int node_tls_rotation_apply(const struct node_tls_rotation *t, const struct secrets_value *pw);
/* The owner stops: a change from now on is left alone. */
void node_tls_rotation_stop(struct node_tls_rotation *t);
/* Once the loop has ended. */
void node_tls_rotation_free(struct node_tls_rotation *t);
/*
 * The server's environment: envp without REDIS_PASSWORD and REDIS_TLS_KEY_FILE_PASS, whose values are wiped in
 * place in envp too (/proc/1/environ shows the memory the variables were handed over in). *ret_env is malloc'd; its
 * strings are envp's.
 */
int node_setup_child_environment(char **envp, char ***ret_env, struct init_error *err);
void node_setup_free(struct node_setup *s);

/* ---- the container's addresses, watched while the server runs (netwatch.c) ---- */
struct node_netwatch;
typedef void (*node_netwatch_fn)(void *userdata);
/*
 * Calls fn from the loop, once a burst of address or link changes has settled (netlink: no polling, no wake-up
 * while nothing changes). -errno when the kernel refuses the subscription.
 */
int node_netwatch_new(struct init_loop *loop, node_netwatch_fn fn, void *userdata, struct node_netwatch **ret);
/* After the loop ended (its descriptors and timers went with it). */
void node_netwatch_free(struct node_netwatch *w);

/* ---- while the server runs (runtime.c) ---- */
/*
 * Starts the server with the rendered config and supervises it until the end, with the hooks: the helpers beside
 * it, the password files' watch, failover on stop. Returns init_run's exit code.
 */
int node_supervise(struct node_setup *s, const struct init_user *user, char *const *envp);

/* ---- roles (node.c, health.c, cli.c, cluster/cluster_init.c) and the helpers beside the server ---- */
int node_defaults(struct node_config *c, struct init_error *err);
int node_main(struct node_config *c, char **args);
int node_render_main(struct node_config *c, char **args);
int node_health_main(struct node_config *c, char **args);
int node_cli_main(struct node_config *c, char **args);
int node_cluster_init_main(struct node_config *c, char **args);
/*
 * The helpers node.c runs beside the server, each in a process of its own: cluster-init for REDIS_CLUSTER_CREATOR,
 * heal.c and rotate.c return 0 when done, or -errno after logging what failed. The failover on stop runs in kvinit
 * itself while the server stops and cannot fail: it logs and carries on.
 */
struct secrets_value;
int node_cluster_init_run(const struct node_options *o, const struct secrets_value *pw);
int node_heal_run(const struct node_options *o, const struct secrets_value *pw);
/* This node now announces ip: tell the server, and have every peer meet it there (readdress.c). */
int node_readdress_run(const struct node_options *o, const struct secrets_value *pw, const char *ip, unsigned bus_port);
struct secrets_rotation;
int node_rotate_apply(const struct node_options *o, const struct secrets_rotation *rot,
		      const struct secrets_value *login, size_t n_login);
struct node_conn;
/*
 * The local server, logged in as the default user with whichever password it takes (the rotation's, the sent one
 * first, then login's; none without a password), waiting for it with a line now and then that starts with who.
 */
struct node_conn *node_rotate_connect(const struct node_options *o, const struct secrets_rotation *rot,
				      const struct secrets_value *login, size_t n_login, const char *who);
/*
 * ACL SETUSER default [resetpass] #<hash>...: the server at ctx (a node, or a Sentinel) accepts every password of
 * rot, and with exact no other. 0, or -EREMOTEIO (refused) or -EIO (no answer) with one line in err.
 */
int node_rotate_set_passwords(struct node_conn *ctx, const struct secrets_rotation *rot, bool exact,
			      struct init_error *err);
/*
 * When a handover on stop started at t0 must end (failover.c): KVINIT_FAILOVER_TIMEOUT after t0, but at least a
 * second before deadline_usec (the end of the grace period), so the server still has time to stop. Pure.
 */
uint64_t node_failover_until(const struct node_options *o, uint64_t t0, uint64_t deadline_usec);
void node_failover_on_stop(const struct node_options *o, const struct secrets_value *pw, uint64_t deadline_usec);
/*
 * A master restarted after crashes ends in a row (failover.c): once it answers, within window_usec, it hands its
 * slots to its best replica like on stop. 0 when it serves none or the replica took over, else -errno (logged).
 */
int node_failover_crash_loop(const struct node_options *o, const struct secrets_value *pw, unsigned crashes,
			     uint64_t window_usec);

/* ---- replication and Sentinel (replication.c, sentinel.c, sentinel_conf.c) ---- */
enum node_replication { NODE_REPL_NONE, NODE_REPL_PRIMARY, NODE_REPL_REPLICA };

/* REDIS_REPLICATION_MODE with Bitnami's names folded: master is a primary, slave a replica. */
enum node_replication node_replication(const struct node_options *o);
/*
 * The replication settings that must agree: a mode needs REDIS_CLUSTER_ENABLED=no, a replica needs
 * REDIS_PRIMARY_HOST, REDIS_SENTINEL_NODES must parse, and REDIS_EXTRA_FLAGS may not set what the mode renders
 * (replicaof, replica-announce-*). Pure. Returns 0, or -EINVAL with one line in err.
 */
int node_replication_check_settings(const struct node_options *o, struct init_error *err);
/*
 * Who this node starts as: in replication mode, a replica of REDIS_PRIMARY_HOST or a primary, unless the Sentinels
 * (REDIS_SENTINEL_NODES) name a current primary, which wins: after a failover the environment is stale. Sets
 * s->replicaof_host and _port; logs what it decided. Returns 0 (no Sentinel answering is not an error: the
 * environment decides), or -EINVAL / -ENOMEM with err.
 */
int node_replication_discover(struct node_setup *s, struct init_error *err);
/*
 * The node role's stop hook in replication mode: a primary with an online replica asks the Sentinels to fail over
 * (SENTINEL FAILOVER) and waits, bounded by KVINIT_FAILOVER_TIMEOUT and deadline_usec, until they name another
 * primary; writes are paused from the start, so no write is acknowledged that the new primary lacks.
 */
void node_replication_failover_on_stop(const struct node_options *o, const struct secrets_value *pw,
				       uint64_t deadline_usec);
/* Health of a replication-mode node on ctx: ready when it is a primary, or a replica whose master link is up. */
struct node_conn;
int node_replication_ready(struct node_conn *ctx, const char *host, long long port, char *why, size_t size);

/* The passwords kvinit tries on a Sentinel: REDIS_SENTINEL_PASSWORD_FILE and its rotation files, else data. */
int node_sentinel_passwords(const struct node_options *o, const struct secrets_value *data, struct secrets_set *ret_set,
			    struct init_error *err);

/* sentinel.conf (sentinel_conf.c): pure, no I/O. */
struct node_sentinel_conf_input {
	const struct node_options *opt;
	const char *const *pass_hashes; /* sha256 hex of every password the Sentinel accepts; none: nopass */
	size_t n_hashes;
	const char *sentinel_pass; /* what it sends to the other Sentinels; NULL: none */
	const char *auth_pass;	   /* what it sends to the nodes; NULL: none */
	bool redact;
};
/*
 * The Sentinel's config: old_text (NULL on the first start) with kvinit's own lines (port, bind, dir, the
 * password lines, announce and hostname settings, and for REDIS_MASTER_SET its auth-pass, down-after-milliseconds,
 * failover-timeout and the monitor line's quorum) set to what the settings say, and every other line (what the
 * Sentinel learned: myid, epochs, known replicas and Sentinels, the current primary) kept as it is. The monitor
 * line of the set keeps the primary the Sentinel knows; without one, it names REDIS_PRIMARY_HOST (-EINVAL with err
 * when that is empty). -ENOMEM with err.
 */
int node_sentinel_conf(const char *old_text, const struct node_sentinel_conf_input *in, char **ret_text,
		       struct init_error *err);

/* `kvinit sentinel` (sentinel.c), and its probe for `kvinit health` when KVINIT_ROLE=sentinel. */
int node_sentinel_main(struct node_config *c, char **args);
bool node_sentinel_is_role(void);
int node_sentinel_health(struct node_config *c, bool ready);

#endif
