/* SPDX-License-Identifier: MIT */
/*
 * `kvinit node`: environment + secrets + an optional base redis.conf become a rendered config on a tmpfs, and the
 * server runs under the PID-1 core as the unprivileged user. `kvinit render` shows the same config, redacted.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "node.h"
#include "secrets.h"

extern char **environ;

/* Everything the node role works out before it writes or starts anything. */
struct node_plan {
	struct node_config *c;
	struct node_server server;
	struct secrets_password password;
	/* The passwords it accepts and the one it sends; with a password file, the files of a rotation too. */
	struct secrets_rotation rotation;
	struct secrets_paths paths;
	struct secrets_set initial; /* the files as first read */
	bool rotating;
	char announce_ip[64];
	bool has_announce_ip;
	unsigned bus_port;
};

static void plan_free(struct node_plan *p)
{
	node_server_free(&p->server);
	secrets_password_free(&p->password);
	secrets_rotation_free(&p->rotation);
	secrets_paths_free(&p->paths);
	secrets_set_wipe(&p->initial);
}

int node_defaults(struct node_config *c, struct init_error *err)
{
	int r = init_config_set_default(&c->core, INIT_OPT_restart, "on-failure", err);

	return r < 0 ? r : init_config_set_default(&c->core, INIT_OPT_user, "redis", err);
}

static const char *env_value(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

/* The address this node announces: the explicit setting, else with dynamic IPs the pod's or container's own. */
static int pick_announce_ip(struct node_plan *p, struct init_error *err)
{
	const struct node_options *o = &p->c->opt;
	const char *pod_ip = env_value("POD_IP");
	int r;

	if (*o->announce_ip) {
		(void)snprintf(p->announce_ip, sizeof(p->announce_ip), "%s", o->announce_ip);
		p->has_announce_ip = true;
		return 0;
	}
	if (!o->cluster_enabled || !o->dynamic_ips)
		return 0;
	if (pod_ip) {
		if (!init_valid_ip(pod_ip) || init_has_control_chars(pod_ip)) {
			(void)snprintf(err->msg, sizeof(err->msg), "POD_IP='%.60s': must be an IPv4 or IPv6 address",
				       pod_ip);
			return -EINVAL;
		}
		(void)snprintf(p->announce_ip, sizeof(p->announce_ip), "%s", pod_ip);
		p->has_announce_ip = true;
		return 0;
	}
	r = node_detect_own_ipv4(p->announce_ip, sizeof(p->announce_ip));
	if (r < 0) {
		log_warn("no non-loopback IPv4 address found: the server picks the address it announces");
		return 0;
	}
	p->has_announce_ip = true;
	return 0;
}

/*
 * The passwords the node starts with: the one just loaded, and with a password file the next and previous files
 * beside it (see secrets/rotation.c), which must be valid when they exist and are not empty.
 */
static int plan_rotation(struct node_plan *p)
{
	const struct secrets_value *pw = &p->password.value;
	struct init_error err;
	char shown[320];
	int r;

	p->rotation.grace_usec = (uint64_t)p->c->opt.rotation_grace * USEC_PER_MSEC;
	p->rotating = p->password.source == SECRETS_SRC_FILE || p->password.source == SECRETS_SRC_DEFAULT_FILE;
	if (p->rotating) {
		r = secrets_paths_resolve(environ, p->password.path, &p->paths, &err);
		if (r < 0) {
			log_error("%s", err.msg);
			return r == -ENOMEM ? INIT_EXIT_SYSCALL : INIT_EXIT_USAGE;
		}
		secrets_set_read(&p->paths, &p->initial);
		for (int i = SECRETS_NEXT; i < SECRETS__SLOTS; i++) {
			r = p->initial.error[i];
			if (r == 0 || secrets_slot_absent(i, r))
				continue;
			init_escape_control(shown, sizeof(shown), p->paths.path[i]);
			log_error("the %s password file '%s': %s", secrets_slot_name(i), shown, secrets_strerror(r));
			return INIT_EXIT_USAGE;
		}
		/* the current password is the one loaded, whatever the file holds a moment later */
		secrets_wipe(&p->initial.value[SECRETS_CURRENT]);
		p->initial.error[SECRETS_CURRENT] = 0;
	} else {
		p->initial.error[SECRETS_NEXT] = p->initial.error[SECRETS_PREVIOUS] = -ENOENT;
	}
	if (pw->data && (secrets_value_copy(pw->data, pw->len, &p->initial.value[SECRETS_CURRENT]) < 0 ||
			 secrets_rotation_update(&p->rotation, &p->initial, init_now_usec()) < 0)) {
		log_error("out of memory");
		return INIT_EXIT_SYSCALL;
	}
	return 0;
}

/* Reads settings and secrets and checks everything that can be checked before anything is written. */
static int plan_node(struct node_config *c, struct node_plan *p)
{
	const struct node_options *o = &c->opt;
	struct init_error err;
	int r;

	*p = (struct node_plan){.c = c};
	if (o->creator && (!o->cluster_enabled || !*o->nodes)) {
		log_error("REDIS_CLUSTER_CREATOR=yes needs REDIS_CLUSTER_ENABLED=yes and REDIS_NODES, the nodes to "
			  "form the "
			  "cluster from");
		return INIT_EXIT_USAGE;
	}
	p->bus_port = (unsigned)(o->bus_port ? o->bus_port : o->port + 10000);
	if (o->cluster_enabled && p->bus_port > 65535) {
		log_error("REDIS_PORT_NUMBER='%lld': the cluster bus port would be %u: set REDIS_CLUSTER_BUS_PORT",
			  (long long)o->port, p->bus_port);
		return INIT_EXIT_USAGE;
	}
	if (o->cluster_enabled && p->bus_port == (unsigned)o->port) {
		log_error("REDIS_CLUSTER_BUS_PORT='%u': must differ from REDIS_PORT_NUMBER", p->bus_port);
		return INIT_EXIT_USAGE;
	}

	r = secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &p->password, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
	switch (p->password.source) {
	case SECRETS_SRC_NONE:
		if (!o->allow_empty_password) {
			log_error("no password: put it in a file named by REDIS_PASSWORD_FILE (or the Docker secret "
				  "'redis_password'), or set ALLOW_EMPTY_PASSWORD=yes for a node anyone can use");
			return INIT_EXIT_USAGE;
		}
		log_warn("ALLOW_EMPTY_PASSWORD=yes: this node accepts every client without a password");
		break;
	case SECRETS_SRC_ENV:
		log_warn("the password comes from REDIS_PASSWORD: environment variables leak (docker inspect, /proc); "
			 "prefer REDIS_PASSWORD_FILE or a Docker secret");
		break;
	default:
		if (p->password.world_readable)
			log_warn("the password file '%s' is readable by every user: make it mode 0400 or 0440",
				 p->password.path);
		break;
	}
	r = plan_rotation(p);
	if (r != 0)
		return r;

	r = node_server_detect(o->server_bin, &p->server, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r == -ENOENT ? INIT_EXIT_NOTFOUND : INIT_EXIT_USAGE;
	}
	r = pick_announce_ip(p, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
	return 0;
}

static int render_plan(const struct node_plan *p, bool redact, char **ret_text)
{
	const struct node_options *o = &p->c->opt;
	const struct secrets_rotation *rot = &p->rotation;
	const char *hashes[SECRETS_MAX_ACCEPTED];
	struct node_render_input in = {
		.opt = o,
		.source = p->c->source,
		.server = &p->server,
		.base_config_present = access(o->base_config, F_OK) == 0,
		.announce_ip = p->has_announce_ip ? p->announce_ip : NULL,
		.pass_hashes = hashes,
		.n_hashes = rot->n,
		.masterauth = rot->n ? rot->entry[rot->current].value.data : NULL,
		.redact = redact,
	};
	struct init_error err;
	int r;

	for (size_t k = 0; k < rot->n; k++)
		hashes[k] = rot->entry[secrets_rotation_order(rot, k)].hash;

	r = node_render(&in, ret_text, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
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

static const struct init_user *chown_user; /* for fix_owner, which nftw calls without a context */

static int fix_owner(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)ftw;
	if (type == FTW_SL || st->st_uid == chown_user->uid)
		return 0;
	if (lchown(path, chown_user->uid, chown_user->gid) < 0)
		log_warn("cannot give '%s' to uid %d: %s, ignoring", path, (int)chown_user->uid, strerror(errno));
	return 0;
}

/* Like the official images: the data dir (created if missing) and what is in it belong to the server user. */
static int prepare_data_dir(const char *dir, const struct init_user *user)
{
	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		log_error("REDIS_DATA_DIR='%s': cannot create it: %s", dir, strerror(errno));
		return INIT_EXIT_SYSCALL;
	}
	if (geteuid() != 0 || !user->set)
		return 0;
	chown_user = user;
	if (nftw(dir, fix_owner, 16, FTW_PHYS | FTW_MOUNT) < 0)
		log_warn("cannot walk '%s' to fix its owner: %s, ignoring", dir, strerror(errno));
	return 0;
}

/* Before the server reads nodes.conf: its own line must carry the address it will announce now. */
static int repair_nodes_conf(const struct node_plan *p)
{
	const struct node_options *o = &p->c->opt;
	char path[PATH_MAX], aside[PATH_MAX + 64];
	_cleanup_free_ char *old = NULL;
	struct init_error err;
	unsigned port, bus;
	int r;

	if (!o->cluster_enabled || !p->has_announce_ip)
		return 0;
	port = (unsigned)(o->announce_port ? o->announce_port : o->port);
	bus = (unsigned)(o->announce_bus_port ? o->announce_bus_port : p->bus_port);
	(void)snprintf(path, sizeof(path), "%s/nodes.conf", o->data_dir);
	r = node_nodes_conf_repair(path, p->announce_ip, port, bus, &old, &err);
	if (r > 0) {
		log_info("nodes.conf: this node's address changed from '%s' to '%s:%u@%u'", old, p->announce_ip, port,
			 bus);
		return 0;
	}
	if (r == 0)
		return 0;
	if (r != -EBADMSG && r != -ENOENT) {
		log_error("%s", err.msg);
		return INIT_EXIT_SYSCALL;
	}
	if (!o->reset_corrupt_nodes_conf) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
	(void)snprintf(aside, sizeof(aside), "%s.corrupt-%lld", path, (long long)time(NULL));
	if (rename(path, aside) < 0) {
		log_error("cannot move '%s' aside: %s", path, strerror(errno));
		return INIT_EXIT_SYSCALL;
	}
	log_warn("%s; moved it to '%s' (KVINIT_RESET_CORRUPT_NODES_CONF=yes): this node starts as a new one", err.msg,
		 aside);
	return 0;
}

/*
 * The server's environment: kvinit's, without REDIS_PASSWORD. kvinit's own copy is wiped in place too, since
 * /proc/1/environ shows the memory the variables were handed over in.
 */
static char **child_environment(void)
{
	size_t n = 0, j = 0;
	char **env;

	while (environ[n])
		n++;
	env = calloc(n + 1, sizeof(*env));
	if (!env)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		if (strncmp(environ[i], "REDIS_PASSWORD=", 15) == 0) {
			explicit_bzero(environ[i] + 15, strlen(environ[i] + 15));
			continue;
		}
		env[j++] = environ[i];
	}
	return env;
}

static void free_text(char **text)
{
	if (*text) {
		explicit_bzero(*text, strlen(*text));
		free(*text);
		*text = NULL;
	}
}

/* Writes a rendered config where the server reads it: 0600, the server user's when kvinit switches to it. */
static int write_config(const struct node_plan *p, const struct init_user *user, const char *text)
{
	const struct node_options *o = &p->c->opt;
	bool give = geteuid() == 0 && user->set;
	struct init_error err;
	int r;

	r = make_config_dir(o->rendered_config, user->gid, give);
	if (r == 0)
		r = init_write_file_atomic(o->rendered_config, text, strlen(text), 0600, give ? user->uid : geteuid(),
					   give ? user->gid : getegid(), &err);
	else
		(void)init_error_set(&err, r, "cannot create its directory: %s", strerror(-r));
	if (r < 0) {
		log_error("KVINIT_RENDERED_CONFIG='%s': %s", o->rendered_config, err.msg);
		return INIT_EXIT_SYSCALL;
	}
	return 0;
}

/* ---- while the server runs: failover on stop, password rotation, and helpers beside the server ---- */

/*
 * Work that talks to the network runs beside the server in processes of its own, so the supervision loop never
 * waits on it:
 *   cluster-init   REDIS_CLUSTER_CREATOR=yes: forms or extends the cluster (it waits for every node, this one too);
 *   heal           REDIS_NODES with dynamic IPs (no REDIS_CLUSTER_ANNOUNCE_IP): meets the peers again at their
 *                  current addresses (heal.c);
 *   rotate         after a change of the password files: brings the server to the new set (rotate.c).
 * The first two start the first time the server is up.
 */
enum helper { HELPER_CREATOR, HELPER_HEAL, HELPER_ROTATE, HELPER__COUNT };

static const char *const helper_names[HELPER__COUNT] = {"cluster-init (REDIS_CLUSTER_CREATOR)", "heal",
							"password rotation"};

struct node_run {
	struct node_plan *plan; /* its rotation is what the server accepts and sends */
	const struct node_options *o;
	const struct init_user *user;
	struct init_loop *loop;
	struct secrets_watch *watch;
	struct init_timer expiry;     /* the end of the next grace period */
	pid_t helpers[HELPER__COUNT]; /* while they run */
	bool rotate_again;	      /* a change came while the rotate helper ran */
	/* every password the server may take: what it was given since its last completed rotation */
	struct secrets_value login[2 * SECRETS_MAX_ACCEPTED];
	size_t n_login;
	bool started, stopping;
};

/* The password kvinit sends: the current one. */
static const struct secrets_value *current_password(const struct node_run *run)
{
	const struct secrets_rotation *rot = &run->plan->rotation;
	static const struct secrets_value none = {0};

	return rot->n ? &rot->entry[rot->current].value : &none;
}

static int run_helper(struct node_run *run, enum helper which)
{
	switch (which) {
	case HELPER_CREATOR:
		return node_cluster_init_run(run->o, current_password(run));
	case HELPER_HEAL:
		return node_heal_run(run->o, current_password(run));
	case HELPER_ROTATE:
		return node_rotate_apply(run->o, &run->plan->rotation, run->login, run->n_login);
	default:
		return 1;
	}
}

static void start_helper(struct node_run *run, enum helper which)
{
	sigset_t none;
	pid_t pid = fork();

	if (pid < 0) {
		log_error("cannot start %s: %s, ignoring", helper_names[which], strerror(errno));
		return;
	}
	if (pid == 0) {
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		_exit(run_helper(run, which));
	}
	run->helpers[which] = pid;
	log_debug("%s runs beside the server (pid %d)", helper_names[which], (int)pid);
}

static void login_add(struct node_run *run, const struct secrets_value *v)
{
	for (size_t i = 0; i < run->n_login; i++)
		if (secrets_value_equal(&run->login[i], v))
			return;
	if (run->n_login == sizeof(run->login) / sizeof(run->login[0])) {
		secrets_wipe(&run->login[0]);
		memmove(&run->login[0], &run->login[1], (run->n_login - 1) * sizeof(run->login[0]));
		run->login[--run->n_login] = (struct secrets_value){0};
	}
	/* out of memory: the passwords of the rotation itself are tried first anyway */
	if (secrets_value_copy(v->data, v->len, &run->login[run->n_login]) == 0)
		run->n_login++;
}

/* The server holds exactly the rotation's passwords now (it started with them, or a rotation completed). */
static void login_reset(struct node_run *run)
{
	const struct secrets_rotation *rot = &run->plan->rotation;

	for (size_t i = 0; i < run->n_login; i++)
		secrets_wipe(&run->login[i]);
	run->n_login = 0;
	for (size_t i = 0; i < rot->n; i++)
		login_add(run, &rot->entry[i].value);
}

/* The timer for the end of the next grace period, if one runs. */
static void arm_expiry(struct node_run *run)
{
	uint64_t next = secrets_rotation_next_expiry(&run->plan->rotation);

	if (next)
		init_timer_arm(run->loop, &run->expiry, next);
	else
		init_timer_disarm(run->loop, &run->expiry);
}

/* The rotation changed: the config a restart reads, and the running server (a stale helper is replaced). */
static void rotation_changed(struct node_run *run)
{
	const struct secrets_rotation *rot = &run->plan->rotation;
	char accepted[SECRETS_MAX_ACCEPTED * 10 + 1];
	char *text = NULL;

	secrets_rotation_describe(rot, accepted, sizeof(accepted));
	log_info("password rotation: accepting %s, sending #%.8s", accepted, rot->entry[rot->current].hash);
	for (size_t i = 0; i < rot->n; i++) {
		uint64_t now = init_now_usec(), end = rot->entry[i].expires_usec;
		char left[32];

		if (rot->entry[i].slots)
			continue;
		init_format_duration(left, sizeof(left), end > now ? (end - now) / USEC_PER_MSEC : 0);
		log_info(
			"password rotation: #%.8s is in no file any more: accepted for %s more (KVINIT_ROTATION_GRACE)",
			rot->entry[i].hash, left);
	}
	/* each says why when it cannot; the running server is what counts */
	if (render_plan(run->plan, false, &text) == 0)
		(void)write_config(run->plan, run->user, text);
	free_text(&text);
	arm_expiry(run);
	if (run->stopping)
		return;
	/* a helper started now may hand the server any of these before it is stopped */
	for (size_t i = 0; i < rot->n; i++)
		login_add(run, &rot->entry[i].value);
	if (run->helpers[HELPER_ROTATE] > 0) {
		run->rotate_again = true;
		if (kill(run->helpers[HELPER_ROTATE], SIGTERM) < 0 && errno != ESRCH)
			log_warn("cannot stop the stale password rotation: %s", strerror(errno));
		return;
	}
	start_helper(run, HELPER_ROTATE);
}

static void on_secrets_changed(const struct secrets_set *set, void *userdata)
{
	struct node_run *run = userdata;
	char shown[320];
	int r;

	for (int i = 0; i < SECRETS__SLOTS; i++) {
		if (set->error[i] == 0 || secrets_slot_absent(i, set->error[i]))
			continue;
		init_escape_control(shown, sizeof(shown), run->plan->paths.path[i]);
		log_warn("the %s password file '%s': %s; it keeps counting as it was", secrets_slot_name(i), shown,
			 secrets_strerror(set->error[i]));
	}
	r = secrets_rotation_update(&run->plan->rotation, set, init_now_usec());
	if (r < 0)
		log_error("password rotation: %s, ignoring this change", strerror(-r));
	else if (r > 0)
		rotation_changed(run);
}

static void on_expiry(struct init_loop *loop, void *userdata)
{
	struct node_run *run = userdata;

	(void)loop;
	if (secrets_rotation_expire(&run->plan->rotation, init_now_usec()))
		rotation_changed(run);
	else
		arm_expiry(run);
}

static void start_watching(struct node_run *run)
{
	struct node_plan *p = run->plan;
	int r;

	if (!p->rotating)
		return;
	login_reset(run);
	r = secrets_watch_new(run->loop, &p->paths, &p->initial, (uint64_t)run->o->secret_poll * USEC_PER_MSEC,
			      on_secrets_changed, run, &run->watch);
	if (r < 0)
		log_error("cannot watch the password files: %s; a new password needs a restart", strerror(-r));
	arm_expiry(run);
}

static void on_started(struct init_supervisor *s, pid_t pid, void *userdata)
{
	struct node_run *run = userdata;
	const struct node_options *o = run->o;

	(void)pid;
	if (run->started)
		return;
	run->started = true;
	run->loop = init_supervisor_loop(s);
	start_watching(run);
	if (o->creator)
		start_helper(run, HELPER_CREATOR);
	/* Only where the node announces its own address: an announced one (NAT, host ports) never matches the names. */
	if (o->cluster_enabled && o->dynamic_ips && !*o->announce_ip && *o->nodes)
		start_helper(run, HELPER_HEAL);
}

static void on_stop(struct init_supervisor *s, uint64_t deadline_usec, void *userdata)
{
	struct node_run *run = userdata;

	(void)s;
	run->stopping = true;
	for (int i = 0; i < HELPER__COUNT; i++)
		if (run->helpers[i] > 0 && kill(run->helpers[i], SIGTERM) < 0 && errno != ESRCH)
			log_warn("cannot stop %s: %s, ignoring", helper_names[i], strerror(errno));
	node_failover_on_stop(run->o, current_password(run), deadline_usec);
}

static void on_reaped(struct init_supervisor *s, pid_t pid, int status, void *userdata)
{
	struct node_run *run = userdata;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	int which = -1;

	(void)s;
	for (int i = 0; i < HELPER__COUNT; i++)
		if (run->helpers[i] == pid)
			which = i;
	if (which < 0) {
		log_debug("reaped orphan pid %d", (int)pid);
		return;
	}
	run->helpers[which] = 0;
	if (which == HELPER_ROTATE && run->rotate_again && !run->stopping) {
		run->rotate_again = false;
		start_helper(run, HELPER_ROTATE);
		return;
	}
	if (ok && which == HELPER_ROTATE) {
		char accepted[SECRETS_MAX_ACCEPTED * 10 + 1];

		login_reset(run);
		secrets_rotation_describe(&run->plan->rotation, accepted, sizeof(accepted));
		log_info("password rotation applied: the server accepts %s and sends #%.8s", accepted,
			 run->plan->rotation.entry[run->plan->rotation.current].hash);
	} else if (ok) {
		log_info("%s done", helper_names[which]);
	} else if (!run->stopping) {
		log_error("%s failed (%s %d): see its lines above%s", helper_names[which],
			  WIFEXITED(status) ? "status" : "signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			  which == HELPER_CREATOR ? "; run `kvinit cluster-init` again once the cause is fixed" : "");
	}
}

/* Whether root can read the file at path without overriding its permissions (Kubernetes' secret files, 0400 root). */
static bool root_may_read(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	return (st.st_uid == 0 && (st.st_mode & S_IRUSR)) || (st.st_gid == 0 && (st.st_mode & S_IRGRP)) ||
	       (st.st_mode & S_IROTH);
}

/*
 * What kvinit itself keeps to rotate the password: CHOWN to rewrite the config as the server user's and, when the
 * password files are not root's to read (a compose secret is the host user's file), DAC_READ_SEARCH where the
 * container has it, else DAC_OVERRIDE.
 */
static size_t rotation_caps(const struct node_plan *p, int *caps)
{
	bool keep_dac = false;
	size_t n = 0;

	if (!p->rotating)
		return 0;
	caps[n++] = CAP_CHOWN;
	for (int i = 0; i < SECRETS__SLOTS; i++)
		if (access(p->paths.path[i], F_OK) == 0 && !root_may_read(p->paths.path[i]))
			keep_dac = true;
	if (keep_dac)
		caps[n++] = init_bounding_has(CAP_DAC_READ_SEARCH) ? CAP_DAC_READ_SEARCH : CAP_DAC_OVERRIDE;
	return n;
}

int node_main(struct node_config *c, char **args)
{
	const struct node_options *o = &c->opt;
	struct node_plan p;
	struct init_user user = {0};
	_cleanup_free_ char **env = NULL;
	char *text = NULL, version[48];
	char *argv[3];
	int caps[2], code;

	if (args[0]) {
		log_error("node: unexpected argument '%s' (settings come from the environment; see kvinit --help)",
			  args[0]);
		return INIT_EXIT_USAGE;
	}
	code = plan_node(c, &p);
	if (code == 0)
		code = init_resolve_user(&c->core.opt, &user);
	/* rendered before anything is written: a bad setting leaves no trace */
	if (code == 0)
		code = render_plan(&p, false, &text);
	if (code == 0)
		code = prepare_data_dir(o->data_dir, &user);
	if (code == 0)
		code = repair_nodes_conf(&p);
	if (code == 0)
		code = write_config(&p, &user, text);
	free_text(&text);
	if (code == 0) {
		env = child_environment();
		if (!env) {
			log_error("out of memory");
			code = INIT_EXIT_SYSCALL;
		}
	}
	if (code == 0) {
		struct node_run run = {.plan = &p, .o = o, .user = &user};
		struct init_role_hooks hooks = {
			.stop = on_stop, .started = on_started, .reaped = on_reaped, .userdata = &run};

		run.expiry = (struct init_timer){.fn = on_expiry, .userdata = &run};
		node_server_describe(&p.server, version, sizeof(version));
		log_info("starting %s (%s) on port %lld as %s%s%s", version, p.server.server_bin, (long long)o->port,
			 user.set ? (user.name ? user.name : "its uid") : "root",
			 p.has_announce_ip ? ", announcing " : "", p.has_announce_ip ? p.announce_ip : "");
		argv[0] = p.server.server_bin;
		argv[1] = (char *)o->rendered_config;
		argv[2] = NULL;
		code = init_run(&c->core.opt, &user, argv, env, &hooks, caps, rotation_caps(&p, caps));
		secrets_watch_free(run.watch);
		for (size_t i = 0; i < run.n_login; i++)
			secrets_wipe(&run.login[i]);
	}
	init_user_free(&user);
	plan_free(&p);
	return code;
}

int node_render_main(struct node_config *c, char **args)
{
	struct node_plan p;
	char *text = NULL;
	int code;

	if (args[0]) {
		log_error("render: unexpected argument '%s'", args[0]);
		return INIT_EXIT_USAGE;
	}
	code = plan_node(c, &p);
	if (code == 0)
		code = render_plan(&p, true, &text);
	if (code == 0) {
		(void)fputs(text, stdout);
		if (fflush(stdout) != 0)
			code = INIT_EXIT_SYSCALL;
	}
	free(text);
	plan_free(&p);
	return code;
}
