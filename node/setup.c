/* SPDX-License-Identifier: MIT */
/*
 * The node's start-up, in the order `kvinit node` takes it (node.c): every setting, the password and the files of
 * its rotation, the server and the address to announce are worked out before anything is written; then the
 * rendered config, the data dir, this node's line in nodes.conf and the config file the server reads. Each step
 * returns -errno with its message in err; node.c logs it and picks the exit code.
 */
#include <errno.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "node.h"

extern char **environ;

/*
 * What the user gave cannot work, whatever the call below found (a missing password file, a server without its
 * execute bit, an old server): a configuration error. Running out of memory stays what it is.
 */
static int setting_error(int r)
{
	return r == -ENOMEM ? r : -EINVAL;
}

int node_setup_check_settings(const struct node_options *o, unsigned *ret_bus_port, struct init_error *err)
{
	unsigned port = node_client_port(o), bus_port = (unsigned)(o->bus_port ? o->bus_port : port + 10000);
	int r;

	if (o->creator && (!o->cluster_enabled || !*o->nodes))
		return init_error_set(err, -EINVAL,
				      "REDIS_CLUSTER_CREATOR=yes needs REDIS_CLUSTER_ENABLED=yes and REDIS_NODES, the "
				      "nodes to form the cluster from");
	if (o->cluster_enabled && bus_port > 65535)
		return init_error_set(err, -EINVAL,
				      "%s='%u': the cluster bus port would be %u: set REDIS_CLUSTER_BUS_PORT",
				      o->tls_enabled ? "REDIS_TLS_PORT_NUMBER" : "REDIS_PORT_NUMBER", port, bus_port);
	if (o->cluster_enabled && bus_port == port)
		return init_error_set(err, -EINVAL, "REDIS_CLUSTER_BUS_PORT='%u': must differ from %s", bus_port,
				      o->tls_enabled ? "REDIS_TLS_PORT_NUMBER" : "REDIS_PORT_NUMBER");
	if (o->cluster_enabled && o->tls_enabled && node_plain_port_open(o) && bus_port == (unsigned)o->port)
		return init_error_set(err, -EINVAL, "REDIS_CLUSTER_BUS_PORT='%u': must differ from REDIS_PORT_NUMBER",
				      bus_port);
	r = node_tls_check_settings(o, err);
	if (r < 0)
		return r;
	r = node_replication_check_settings(o, err);
	if (r < 0)
		return r;
	*ret_bus_port = bus_port;
	return 0;
}

/* The password, and a warning where it comes from a place that leaks or lets everyone in. */
static int load_password(struct node_setup *s, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	int r;

	r = secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &s->password, err);
	if (r < 0)
		return setting_error(r);
	switch (s->password.source) {
	case SECRETS_SRC_NONE:
		if (!o->allow_empty_password)
			return init_error_set(
				err, -EINVAL,
				"no password: put it in a file named by REDIS_PASSWORD_FILE (or the Docker "
				"secret 'redis_password'), or set ALLOW_EMPTY_PASSWORD=yes for a node "
				"anyone can use");
		log_warn("ALLOW_EMPTY_PASSWORD=yes: this node accepts every client without a password");
		break;
	case SECRETS_SRC_ENV:
		log_warn("the password comes from REDIS_PASSWORD: environment variables leak (docker inspect, /proc); "
			 "prefer REDIS_PASSWORD_FILE or a Docker secret");
		break;
	default:
		if (s->password.world_readable)
			log_warn("the password file '%s' is readable by every user: make it mode 0400 or 0440",
				 s->password.path);
		break;
	}
	return 0;
}

/*
 * The passwords the node starts with: the one just loaded, and with a password file the next and previous files
 * beside it (see secrets/rotation.c), which must be valid when they exist and are not empty.
 */
static int load_rotation(struct node_setup *s, struct init_error *err)
{
	const struct secrets_value *pw = &s->password.value;
	char shown[320];
	int r;

	s->rotation.grace_usec = (uint64_t)s->c->opt.rotation_grace * USEC_PER_MSEC;
	s->rotating = s->password.source == SECRETS_SRC_FILE || s->password.source == SECRETS_SRC_DEFAULT_FILE;
	if (s->rotating) {
		r = secrets_paths_resolve(environ, s->password.path, &s->paths, err);
		if (r < 0)
			return r;
		secrets_set_read(&s->paths, &s->initial);
		for (int i = SECRETS_NEXT; i < SECRETS__SLOTS; i++) {
			r = s->initial.error[i];
			if (r == 0 || secrets_slot_absent(i, r))
				continue;
			init_escape_control(shown, sizeof(shown), s->paths.path[i]);
			return init_error_set(err, -EINVAL, "the %s password file '%s': %s", secrets_slot_name(i),
					      shown, secrets_strerror(r));
		}
		/* the current password is the one loaded, whatever the file holds a moment later */
		secrets_wipe(&s->initial.value[SECRETS_CURRENT]);
		s->initial.error[SECRETS_CURRENT] = 0;
	} else {
		s->initial.error[SECRETS_NEXT] = s->initial.error[SECRETS_PREVIOUS] = -ENOENT;
	}
	if (pw->data && (secrets_value_copy(pw->data, pw->len, &s->initial.value[SECRETS_CURRENT]) < 0 ||
			 secrets_rotation_update(&s->rotation, &s->initial, init_now_usec()) < 0))
		return init_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/*
 * The users file: REDIS_ACLFILE, which must exist, else the Docker secret redis_users when it exists. Its users
 * are rendered into the config and applied live when it changes (runtime.c).
 */
static int load_users(struct node_setup *s, struct init_error *err)
{
	const char *path = s->c->opt.acl_file;
	struct init_error why;
	int r;

	if (!*path) {
		path = NODE_ACL_DEFAULT_FILE;
		if (access(path, F_OK) < 0)
			return 0;
	}
	r = node_acl_load(path, &s->users, &why);
	if (r < 0)
		return init_error_set(err, setting_error(r), "%s%s", *s->c->opt.acl_file ? "REDIS_ACLFILE: " : "",
				      why.msg);
	s->users_path = strdup(path);
	if (!s->users_path)
		return init_error_set(err, -ENOMEM, "out of memory");
	log_info("the users file '%s': %zu user%s", path, s->users.n, s->users.n == 1 ? "" : "s");
	return 0;
}

/* The address this node announces: the explicit setting, else with dynamic IPs the pod's or container's own. */
static int pick_announce_ip(struct node_setup *s, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	const char *pod_ip = getenv("POD_IP");

	if (*o->announce_ip) {
		(void)snprintf(s->announce_ip, sizeof(s->announce_ip), "%s", o->announce_ip);
		s->has_announce_ip = true;
		return 0;
	}
	if (!o->cluster_enabled || !o->dynamic_ips)
		return 0;
	if (pod_ip && *pod_ip) {
		if (!init_valid_ip(pod_ip) || init_has_control_chars(pod_ip))
			return init_error_set(err, -EINVAL, "POD_IP='%.60s': must be an IPv4 or IPv6 address", pod_ip);
		(void)snprintf(s->announce_ip, sizeof(s->announce_ip), "%s", pod_ip);
		s->has_announce_ip = true;
		return 0;
	}
	s->follows_address = true;
	if (node_detect_own_ipv4(s->announce_ip, sizeof(s->announce_ip)) < 0) {
		log_warn("no non-loopback IPv4 address found: the server picks the address it announces");
		return 0;
	}
	s->has_announce_ip = true;
	return 0;
}

/*
 * REDIS_TLS_ENABLED: the certificate set as the server, its peers and its clients will use it. The names it must
 * cover are what the operator set for clients to be sent: the announced hostname, the announced address
 * (REDIS_CLUSTER_ANNOUNCE_IP) where redirects name addresses, and a replica's announced address or name.
 * An address kvinit detected itself (POD_IP, the container's own) is not required: it was not known when the
 * certificate was made, and kvinit's own connections check peers by their names (cluster_tls_name), so a
 * certificate naming the node by its DNS names works; only a client that follows redirects to addresses and checks
 * them needs an IP SAN for it, which one warning says.
 */
int node_setup_check_tls(const struct node_setup *s, const char *ca_file, struct node_tls_info *ret,
			 struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	bool ip_redirects = strcmp(node_endpoint_names[o->preferred_endpoint], "ip") == 0;
	struct node_tls_files files;
	const char *names[3];
	size_t n = 0;

	if (o->cluster_enabled && *o->announce_hostname)
		names[n++] = o->announce_hostname;
	if (o->cluster_enabled && *o->announce_ip && ip_redirects)
		names[n++] = s->announce_ip;
	if (node_replication(o) != NODE_REPL_NONE && *o->replica_ip)
		names[n++] = o->replica_ip;
	node_tls_files_from(o, &files);
	if (ca_file)
		files.ca_file = ca_file;
	return node_tls_check(&files, names, n, time(NULL), ret, err);
}

static int check_tls(struct node_setup *s, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	int r;

	if (!s->c->opt.tls_enabled)
		return 0;
	r = node_setup_check_tls(s, NULL, &s->tls, err);
	if (r < 0)
		return r;
	(void)node_tls_warn_expiry(s->c->opt.tls_cert_file, &s->tls, time(NULL));
	if (o->cluster_enabled && !*o->announce_ip && s->has_announce_ip &&
	    strcmp(node_endpoint_names[o->preferred_endpoint], "ip") == 0 &&
	    node_tls_covers(o->tls_cert_file, s->announce_ip) == 0)
		log_warn("REDIS_TLS_CERT_FILE='%s' has no IP SAN for '%s', the address this node detected and "
			 "announces: "
			 "clients that follow redirects to addresses and check them refuse it (kvinit checks its peers "
			 "by name)",
			 o->tls_cert_file, s->announce_ip);
	return 0;
}

/* A node that was in a cluster and comes back with no data: once its server is up its peers are asked (runtime.c). */
static void look_back(struct node_setup *s)
{
	const struct node_options *o = &s->c->opt;

	if (o->cluster_enabled && node_data_dir_former(o->data_dir, &s->former) > 0 &&
	    !node_data_dir_holds_data(o->data_dir))
		s->check_former = true;
}

void node_setup_free(struct node_setup *s)
{
	node_server_free(&s->server);
	secrets_password_free(&s->password);
	secrets_rotation_free(&s->rotation);
	secrets_paths_free(&s->paths);
	secrets_set_wipe(&s->initial);
	node_acl_free(&s->users);
	free(s->users_path);
}

int node_setup_prepare(const struct node_config *c, struct node_setup *ret_setup, struct init_error *err)
{
	struct node_setup s = {.c = c};
	int r;

	r = node_setup_check_settings(&c->opt, &s.bus_port, err);
	if (r == 0)
		r = load_password(&s, err);
	if (r == 0)
		r = load_rotation(&s, err);
	if (r == 0)
		r = load_users(&s, err);
	if (r == 0) {
		r = node_server_detect(c->opt.server_bin, &s.server, err);
		/* -ENOENT: no server to run, which the role reports as a command not found */
		if (r < 0 && r != -ENOENT)
			r = setting_error(r);
	}
	if (r == 0)
		r = pick_announce_ip(&s, err);
	/* what the environment says; node_replication_discover asks the Sentinels before the node starts */
	if (r == 0 && node_replication(&c->opt) == NODE_REPL_REPLICA) {
		(void)snprintf(s.replicaof_host, sizeof(s.replicaof_host), "%s", c->opt.primary_host);
		s.replicaof_port = (unsigned)c->opt.primary_port;
	}
	if (r == 0)
		r = check_tls(&s, err);
	if (r == 0)
		look_back(&s);
	if (r < 0) {
		node_setup_free(&s);
		return r;
	}
	*ret_setup = s;
	return 0;
}

int node_setup_start(struct node_config *c, char **args, const char *role, bool pick_data_dir,
		     struct node_setup *ret_setup, struct init_error *err)
{
	int r;

	if (args[0])
		return init_error_set(
			err, -E2BIG,
			"%s: unexpected argument '%s' (settings come from the environment; see kvinit --help)", role,
			args[0]);
	r = pick_data_dir ? node_data_dir_pick(c) : 0;
	if (r < 0)
		return init_error_set(err, r, "out of memory");
	return node_setup_prepare(c, ret_setup, err);
}

int node_setup_render(const struct node_setup *s, bool redact, char **ret_text, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	const struct secrets_rotation *rot = &s->rotation;
	const char *hashes[SECRETS_MAX_ACCEPTED];
	struct node_render_input in = {
		.opt = o,
		.source = s->c->source,
		.server = &s->server,
		.base_config_present = access(o->base_config, F_OK) == 0,
		.announce_ip = s->has_announce_ip ? s->announce_ip : NULL,
		.pass_hashes = hashes,
		.n_hashes = rot->n,
		.masterauth = rot->n ? rot->entry[rot->current].value.data : NULL,
		.replicaof_host = s->replicaof_host[0] ? s->replicaof_host : NULL,
		.replicaof_port = s->replicaof_port,
		.redact = redact,
		.users = &s->users,
	};
	int r;

	for (size_t k = 0; k < rot->n; k++)
		hashes[k] = rot->entry[secrets_rotation_order(rot, k)].hash;
	/* what the renderer refuses is a setting this server cannot take */
	r = node_render(&in, ret_text, err);
	return r < 0 ? setting_error(r) : 0;
}

void node_setup_text_free(char *text)
{
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
}

/* Whether user may read a file of st by its mode (what the server, without capabilities, goes by). */
static bool user_may_read(const struct init_user *user, const struct stat *st)
{
	if (st->st_uid == user->uid)
		return st->st_mode & S_IRUSR;
	if (st->st_gid == user->gid)
		return st->st_mode & S_IRGRP;
	for (int i = 0; i < user->ngroups; i++)
		if (st->st_gid == user->groups[i])
			return st->st_mode & S_IRGRP;
	return st->st_mode & S_IROTH;
}

void node_setup_tls_access(const struct node_setup *s, const struct init_user *user)
{
	const struct node_options *o = &s->c->opt;
	const struct {
		const char *var, *path;
	} files[] = {
		{"REDIS_TLS_CERT_FILE", o->tls_cert_file},
		{"REDIS_TLS_KEY_FILE", o->tls_key_file},
		{"REDIS_TLS_CA_FILE", o->tls_ca_file},
		{"REDIS_TLS_DH_PARAMS_FILE", o->tls_dh_params_file},
	};
	struct stat st;

	if (!o->tls_enabled || geteuid() != 0 || !user->set)
		return;
	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++)
		if (*files[i].path && stat(files[i].path, &st) == 0 && !user_may_read(user, &st))
			log_warn(
				"%s='%s' is not readable by the server's user (uid '%d'; the file: uid '%d', gid '%d', "
				"mode '%04o'): the server reads it itself and will not start; make it readable by it "
				"(mode 0440 with its group; compose secrets: uid, gid and mode; Kubernetes: fsGroup)",
				files[i].var, files[i].path, (int)user->uid, (int)st.st_uid, (int)st.st_gid,
				(unsigned)(st.st_mode & 07777));
}

/* for fix_owner, which nftw calls without a context */
static const struct init_user *chown_user;
static unsigned chowned;
static uid_t chowned_from;

static int fix_owner(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_SL || st->st_uid == chown_user->uid)
		return 0;
	if (lchown(path, chown_user->uid, chown_user->gid) < 0) {
		log_warn("cannot give '%s' to uid '%d': %s, ignoring", path, (int)chown_user->uid, strerror(errno));
		return 0;
	}
	/* root's are the usual: a directory kvinit just made, a volume's mount point */
	if (st->st_uid == 0)
		return 0;
	if (!chowned)
		chowned_from = st->st_uid;
	chowned++;
	return 0;
}

int node_setup_data_dir(const struct node_setup *s, const struct init_user *user, struct init_error *err)
{
	const char *dir = s->c->opt.data_dir;
	int r;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		r = -errno;
		return init_error_set(err, r, "REDIS_DATA_DIR='%s': cannot create it: %s", dir, strerror(-r));
	}
	node_data_dir_check_volume(dir);
	if (geteuid() != 0 || !user->set)
		return 0;
	chown_user = user;
	chowned = 0;
	if (nftw(dir, fix_owner, 16, FTW_PHYS | FTW_MOUNT) < 0)
		log_warn("cannot walk '%s' to fix its owner: %s, ignoring", dir, strerror(errno));
	/* a volume another image wrote (the Bitnami image's uid 1001): the server must read and write it */
	if (chowned)
		log_info("the data directory '%s': gave %u file%s of another user (uid '%d'%s) to the server user (uid "
			 "'%d')",
			 dir, chowned, chowned > 1 ? "s" : "", (int)chowned_from, chowned > 1 ? " the first" : "",
			 (int)user->uid);
	return 0;
}

int node_setup_nodes_conf(const struct node_setup *s, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	char path[PATH_MAX], aside[PATH_MAX + 64];
	_cleanup_free_ char *old = NULL;
	unsigned port, bus;
	int r;

	if (!o->cluster_enabled || !s->has_announce_ip)
		return 0;
	/* with tls-cluster, the server's line names its TLS port */
	port = o->announce_port ? (unsigned)o->announce_port : node_client_port(o);
	bus = (unsigned)(o->announce_bus_port ? o->announce_bus_port : s->bus_port);
	(void)snprintf(path, sizeof(path), "%s/nodes.conf", o->data_dir);
	r = node_nodes_conf_repair(path, s->announce_ip, port, bus, &old, err);
	if (r > 0)
		log_info("nodes.conf: this node's address changed from '%s' to '%s:%u@%u'", old, s->announce_ip, port,
			 bus);
	if (r >= 0)
		return 0;
	if (r != -EBADMSG || !o->reset_corrupt_nodes_conf)
		return r;
	(void)snprintf(aside, sizeof(aside), "%s.corrupt-%lld", path, (long long)time(NULL));
	if (rename(path, aside) < 0) {
		r = -errno;
		return init_error_set(err, r, "cannot move '%s' aside: %s", path, strerror(-r));
	}
	log_warn("%s; moved it to '%s' (KVINIT_RESET_CORRUPT_NODES_CONF=yes): this node starts as a new one", err->msg,
		 aside);
	return 0;
}

/* The directory of the rendered config: root's, but the server user's group may pass through it to read. */
static int make_config_dir(const char *path, gid_t gid, bool chown_it)
{
	char buf[PATH_MAX];
	char *dir;

	(void)snprintf(buf, sizeof(buf), "%s", path);
	dir = dirname(buf);
	if (mkdir(dir, 0750) < 0) {
		if (errno != EEXIST)
			return -errno;
		return 0;
	}
	if (chown_it && chown(dir, 0, gid) < 0)
		return -errno;
	return 0;
}

int node_setup_write_config(const struct node_setup *s, const struct init_user *user, const char *text,
			    struct init_error *err)
{
	const char *path = s->c->opt.rendered_config;
	bool give = geteuid() == 0 && user->set;
	struct init_error werr;
	int r;

	r = make_config_dir(path, user->gid, give);
	if (r < 0)
		return init_error_set(err, r, "KVINIT_RENDERED_CONFIG='%s': cannot create its directory: %s", path,
				      strerror(-r));
	r = init_write_file_atomic(path, text, strlen(text), 0600, give ? user->uid : geteuid(),
				   give ? user->gid : getegid(), &werr);
	if (r < 0)
		return init_error_set(err, r, "KVINIT_RENDERED_CONFIG='%s': %s", path, werr.msg);
	return 0;
}

int node_setup_child_environment(char **envp, char ***ret_env, struct init_error *err)
{
	size_t n = 0, j = 0;
	char **env;

	while (envp[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (!env)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t name = strcspn(envp[i], "=");

		/* the secrets that may come from the environment: the server reads its own config, not these */
		if ((name == 14 && strncmp(envp[i], "REDIS_PASSWORD", 14) == 0) ||
		    (name == 23 && strncmp(envp[i], "REDIS_TLS_KEY_FILE_PASS", 23) == 0)) {
			if (envp[i][name])
				explicit_bzero(envp[i] + name + 1, strlen(envp[i] + name + 1));
			continue;
		}
		env[j++] = envp[i];
	}
	*ret_env = env;
	return 0;
}
