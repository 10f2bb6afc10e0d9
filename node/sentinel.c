/* SPDX-License-Identifier: MIT */
/*
 * `kvinit sentinel`: the Sentinel of a replicated primary (replication.c), run and supervised like the server:
 * the same start-up (setup.c: settings, the password and its rotation files, the server binary), the same user,
 * capabilities and seccomp filter (init_run), the same watch on the password files and the same rotation fold
 * (secrets/). The Sentinel is the server binary with --sentinel, which every Redis and Valkey server has (Debian's
 * redis-sentinel is a link to it).
 *
 * Two passwords reach a Sentinel: the nodes' (it sends it to them: auth-pass) and its own (clients and the other
 * Sentinels send it: REDIS_SENTINEL_PASSWORD_FILE, else the nodes' password too). A change of either is applied
 * live by a helper process, staged like the nodes' (rotate.c): the Sentinel accepts every password of the files
 * first, sends a new one only once every peer takes it (the primary and replicas for auth-pass, the other
 * Sentinels for sentinel-pass), and drops what left the files last.
 */
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "sentinel.h"

extern char **environ;

/* ---- start-up ---- */

/* REDIS_SENTINEL_PASSWORD_FILE and the _next and _previous files beside it, read as the nodes' are. */
static int load_own_password(struct sentinel_run *run, struct init_error *err)
{
	char *const no_env[] = {NULL};
	const char *file = run->o->sentinel_password_file;
	char shown[320];
	int r;

	run->own_rot.grace_usec = (uint64_t)run->o->rotation_grace * USEC_PER_MSEC;
	if (!*file)
		return 0;
	run->own_file = true;
	r = secrets_paths_resolve(no_env, file, &run->own_paths, err);
	if (r < 0)
		return r;
	secrets_set_read(&run->own_paths, &run->own_initial);
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		r = run->own_initial.error[i];
		if (r == 0 || (i != SECRETS_CURRENT && secrets_slot_absent(i, r)))
			continue;
		init_escape_control(shown, sizeof(shown), run->own_paths.path[i]);
		return init_error_set(err, r == -ENOMEM ? r : -EINVAL,
				      "REDIS_SENTINEL_PASSWORD_FILE: the %s file '%s': %s", secrets_slot_name(i), shown,
				      secrets_strerror(r));
	}
	if (secrets_rotation_update(&run->own_rot, &run->own_initial, init_now_usec()) < 0)
		return init_error_set(err, -ENOMEM, "out of memory");
	return 0;
}

/* What sentinel.conf's own lines say now: from the rotations as they stand (a CA change staged: its bundle). */
static int render_conf(const struct sentinel_run *run, const char *old_text, char **ret_text, struct init_error *err)
{
	const struct secrets_rotation *own = sentinel_own_rotation(run), *data = &run->setup->rotation;
	const char *hashes[SECRETS_MAX_ACCEPTED], *ca_file = node_tls_rotation_ca_file(run->tls);
	struct node_options opt = *run->o;
	struct node_sentinel_conf_input in = {
		.opt = &opt,
		.pass_hashes = hashes,
		.n_hashes = own->n,
		.sentinel_pass = own->n ? sentinel_current(own)->data : NULL,
		.auth_pass = data->n ? sentinel_current(data)->data : NULL,
	};

	if (ca_file)
		opt.tls_ca_file = (char *)ca_file;
	for (size_t k = 0; k < own->n; k++)
		hashes[k] = own->entry[secrets_rotation_order(own, k)].hash;
	return node_sentinel_conf(old_text, &in, ret_text, err);
}

static void text_free(char *text)
{
	if (text) {
		explicit_bzero(text, strlen(text));
		free(text);
	}
}

/* sentinel.conf as it must be now: the file as the Sentinel left it (none on the first start), kvinit's lines set. */
static int prepare_conf(const struct sentinel_run *run, char **ret_text, struct init_error *err)
{
	_cleanup_free_ char *old = malloc(SENTINEL_CONF_MAX + 2);
	int n, r;

	if (!old)
		return init_error_set(err, -ENOMEM, "out of memory");
	n = init_read_file_bounded(run->conf_path, 0, old, SENTINEL_CONF_MAX + 2, NULL);
	if (n < 0 && n != -ENOENT)
		return init_error_set(err, n == -EFBIG || n == -EBADFD || n == -EILSEQ ? -EINVAL : n, "'%s': %s",
				      run->conf_path, init_value_strerror(n));
	r = render_conf(run, n < 0 ? NULL : old, ret_text, err);
	if (n > 0)
		explicit_bzero(old, (size_t)n);
	return r;
}

/* Written atomically, the Sentinel's user's: the Sentinel rewrites it. */
static int write_conf(const struct sentinel_run *run, const char *text, struct init_error *err)
{
	const struct init_user *user = run->user;
	bool give = geteuid() == 0 && user->set;
	struct init_error werr;
	int r;

	if (!text)
		return init_error_set(err, -EINVAL, "'%s': nothing to write", run->conf_path);
	r = init_write_file_atomic(run->conf_path, text, strlen(text), 0600, give ? user->uid : geteuid(),
				   give ? user->gid : getegid(), &werr);
	if (r < 0)
		return init_error_set(err, r, "'%s': %s", run->conf_path, werr.msg);
	return 0;
}

/* ---- the password files while the Sentinel runs ---- */

static void start_rotate(struct sentinel_run *run)
{
	int r = init_fork_helper(node_sentinel_rotate_apply, run, &run->rotate_pid);

	if (r < 0)
		log_error("cannot start the password rotation: %s, ignoring", strerror(-r));
}

static void arm_expiry(struct sentinel_secret *sec)
{
	uint64_t next = secrets_rotation_next_expiry(sec->rot);

	if (next)
		init_timer_arm(sec->run->loop, &sec->expiry, next);
	else
		init_timer_disarm(sec->run->loop, &sec->expiry);
}

static void rotation_changed(struct sentinel_secret *sec)
{
	struct sentinel_run *run = sec->run;
	const struct secrets_rotation *own = sentinel_own_rotation(run);
	char accepted[SECRETS_MAX_ACCEPTED * 10 + 1];

	secrets_rotation_describe(sec->rot, accepted, sizeof(accepted));
	log_info("password rotation (%s): accepting %s, sending #%.8s", sec->what, accepted,
		 sec->rot->entry[sec->rot->current].hash);
	arm_expiry(sec);
	if (run->stopping)
		return;
	for (size_t i = 0; i < own->n; i++)
		secrets_logins_add(&run->logins, &own->entry[i].value);
	if (run->rotate_pid > 0) {
		run->rotate_again = true;
		if (kill(run->rotate_pid, SIGTERM) < 0 && errno != ESRCH)
			log_warn("cannot stop the stale password rotation: %s", strerror(errno));
		return;
	}
	start_rotate(run);
}

static void on_secrets_changed(const struct secrets_set *set, void *userdata)
{
	struct sentinel_secret *sec = userdata;
	char shown[320];
	int r;

	for (int i = 0; i < SECRETS__SLOTS; i++) {
		if (set->error[i] == 0 || secrets_slot_absent(i, set->error[i]))
			continue;
		init_escape_control(shown, sizeof(shown), sec->paths->path[i]);
		log_warn("the %s %s file '%s': %s; it keeps counting as it was", secrets_slot_name(i), sec->what, shown,
			 secrets_strerror(set->error[i]));
	}
	r = secrets_rotation_update(sec->rot, set, init_now_usec());
	if (r < 0)
		log_error("password rotation: %s, ignoring this change", strerror(-r));
	else if (r > 0)
		rotation_changed(sec);
}

static void on_expiry(struct init_loop *loop, void *userdata)
{
	struct sentinel_secret *sec = userdata;

	(void)loop;
	if (secrets_rotation_expire(sec->rot, init_now_usec()))
		rotation_changed(sec);
	else
		arm_expiry(sec);
}

/* ---- the TLS files (tls_rotate.c, as a node's, but for how a new set is given) ---- */

/* The restarted Sentinel has this long to serve the new certificate (it reads its file and opens its port first). */
#define TLS_CONFIRM_MS 10000U

/*
 * The certificate set as the Sentinel uses it (tls.c's check), with the CA of ca_file (NULL: REDIS_TLS_CA_FILE): it
 * serves it on its port and presents it to the nodes and the other Sentinels (tls-replication) unless
 * REDIS_TLS_AUTH_CLIENTS=no, and it must cover the name or address the Sentinel announces, which the others and
 * the clients connect to.
 */
static int check_tls(const struct node_setup *s, const char *ca_file, struct node_tls_info *ret, struct init_error *err)
{
	const struct node_options *o = &s->c->opt;
	struct node_tls_files f;
	const char *names[1];
	size_t n = 0;

	node_tls_files_from(o, &f);
	if (ca_file)
		f.ca_file = ca_file;
	f.client_too = o->tls_auth_clients != NODE_TLS_AUTH_NO;
	if (*o->sentinel_announce_ip)
		names[n++] = o->sentinel_announce_ip;
	return node_tls_check(&f, names, n, time(NULL), ret, err);
}

/*
 * A checked set is given by a restart of the Sentinel, which has no CONFIG SET to load it live: what it learned is
 * in sentinel.conf (written at every change, so the SIGKILL loses nothing; on_restarting sets kvinit's lines, the
 * CA of the rotation's among them), and clients and the other Sentinels reconnect. A restart due anyway (after a
 * crash) reads the files as they are now.
 */
static void tls_restart(void *userdata)
{
	struct sentinel_run *run = userdata;
	int r = init_supervisor_restart(run->sv, "to load the new TLS files");

	if (r < 0 && r != -ESRCH) {
		log_error("certificate rotation: cannot restart the Sentinel: %s, ignoring", strerror(-r));
		node_tls_rotation_done(run->tls, false);
		return;
	}
	run->tls_restart = true;
}

/* A newer set goes next: a confirmation of the stale one is stopped (on_reaped tells the rotation it is done). */
static void tls_cancel(void *userdata)
{
	struct sentinel_run *run = userdata;

	if (run->confirm_pid > 0 && kill(run->confirm_pid, SIGTERM) < 0 && errno != ESRCH)
		log_warn("cannot stop the stale certificate confirmation: %s", strerror(errno));
}

/* The certificate helper's body: waits until the restarted Sentinel serves the certificate it was given. */
static int confirm_tls(void *userdata)
{
	const struct sentinel_run *run = userdata;
	char host[64];

	node_probe_host(run->o->bind, host, sizeof(host));
	return node_tls_rotation_confirm(run->tls, host, (unsigned)run->o->sentinel_port, TLS_CONFIRM_MS,
					 "the restarted Sentinel ");
}

static void start_tls_watch(struct sentinel_run *run)
{
	const struct node_tls_rotation_ops ops = {
		.check = check_tls,
		.apply = tls_restart,
		.cancel = tls_cancel,
		.userdata = run,
		.server = "the Sentinel",
		.giving = "restarting the Sentinel to load",
		.note = "; a Sentinel has no CONFIG SET, and keeps what it knows in its file",
		/* the Sentinel's own directory: kvinit renders no server config beside it */
		.ca_bundle_dir = run->o->data_dir,
	};

	if (node_tls_rotation_new(run->setup, run->loop, &ops, &run->tls) < 0)
		log_error("cannot watch the TLS files: out of memory; new certificates need a restart");
}

/* The Sentinel came back after a certificate restart: a helper confirms it serves the new certificate. */
static void tls_restarted(struct sentinel_run *run)
{
	int r;

	run->tls_restart = false;
	r = init_fork_helper(confirm_tls, run, &run->confirm_pid);
	if (r < 0) {
		log_error("cannot start the certificate confirmation: %s, ignoring", strerror(-r));
		node_tls_rotation_done(run->tls, false);
	}
}

/* ---- the hooks of the supervision loop ---- */

static void on_started(struct init_supervisor *sv, pid_t pid, void *userdata)
{
	struct sentinel_run *run = userdata;

	(void)pid;
	if (run->started) {
		if (run->tls_restart)
			tls_restarted(run);
		return;
	}
	run->started = true;
	run->sv = sv;
	run->loop = init_supervisor_loop(sv);
	start_tls_watch(run);
	secrets_logins_reset(&run->logins, sentinel_own_rotation(run));
	for (int i = 0; i < SECRET__COUNT; i++) {
		struct sentinel_secret *sec = &run->secret[i];
		int r;

		if (!sec->watched)
			continue;
		r = secrets_watch_new(run->loop, sec->paths, sec->initial,
				      (uint64_t)run->o->secret_poll * USEC_PER_MSEC, on_secrets_changed, sec,
				      &sec->watch);
		if (r < 0)
			log_error("cannot watch the %s files: %s; a new password needs a restart", sec->what,
				  strerror(-r));
		arm_expiry(sec);
	}
}

/* The Sentinel rewrote its file since kvinit set it: kvinit's lines again, before it reads it. */
static void on_restarting(struct init_supervisor *sv, void *userdata)
{
	struct sentinel_run *run = userdata;
	struct init_error err;
	char *text = NULL;
	int r;

	(void)sv;
	r = prepare_conf(run, &text, &err);
	if (r == 0)
		r = write_conf(run, text, &err);
	if (r < 0)
		log_error("%s, ignoring: the Sentinel starts with the file as it is", err.msg);
	text_free(text);
}

static void on_stop(struct init_supervisor *sv, uint64_t deadline_usec, void *userdata)
{
	struct sentinel_run *run = userdata;

	(void)sv;
	(void)deadline_usec;
	run->stopping = true;
	node_tls_rotation_stop(run->tls);
	if (run->rotate_pid > 0 && kill(run->rotate_pid, SIGTERM) < 0 && errno != ESRCH)
		log_warn("cannot stop the password rotation: %s, ignoring", strerror(errno));
	if (run->confirm_pid > 0 && kill(run->confirm_pid, SIGTERM) < 0 && errno != ESRCH)
		log_warn("cannot stop the certificate confirmation: %s, ignoring", strerror(errno));
}

static void on_reaped(struct init_supervisor *sv, pid_t pid, int status, void *userdata)
{
	struct sentinel_run *run = userdata;

	(void)sv;
	if (pid > 0 && pid == run->confirm_pid) {
		run->confirm_pid = 0;
		node_tls_rotation_done(run->tls, WIFEXITED(status) && WEXITSTATUS(status) == 0);
		return;
	}
	if (pid != run->rotate_pid) {
		log_debug("reaped orphan pid %d", (int)pid);
		return;
	}
	run->rotate_pid = 0;
	if (run->rotate_again && !run->stopping) {
		run->rotate_again = false;
		start_rotate(run);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		secrets_logins_reset(&run->logins, sentinel_own_rotation(run));
		log_info("password rotation applied to the Sentinel");
	} else if (!run->stopping) {
		log_error("password rotation failed (%s %d): see its lines above",
			  WIFEXITED(status) ? "status" : "signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	}
}

/* ---- the role ---- */

static int check_server(const struct node_server *server, struct init_error *err)
{
	char version[48];

	if (server->flavor == NODE_VALKEY || server->version >= NODE_VERSION(6, 2, 0))
		return 0;
	node_server_describe(server, version, sizeof(version));
	return init_error_set(err, -EINVAL,
			      "%s has no Sentinel kvinit can run (sentinel-pass, resolve-hostnames and ACLs need Redis "
			      "6.2 or later)",
			      version);
}

static void run_free(struct sentinel_run *run)
{
	for (int i = 0; i < SECRET__COUNT; i++)
		secrets_watch_free(run->secret[i].watch);
	node_tls_rotation_free(run->tls);
	secrets_logins_wipe(&run->logins);
	secrets_paths_free(&run->own_paths);
	secrets_set_wipe(&run->own_initial);
	secrets_rotation_free(&run->own_rot);
}

static int supervise(struct sentinel_run *run, char *const *envp)
{
	struct node_setup *s = run->setup;
	const struct node_options *o = run->o;
	struct init_role_hooks hooks = {
		.stop = on_stop,
		.started = on_started,
		.reaped = on_reaped,
		.restarting = on_restarting,
		.userdata = run,
	};
	char *argv[] = {s->server.server_bin, run->conf_path, "--sentinel", NULL};
	/* to set its lines in the Sentinel's file (its user's, in its directory) before a restart, and read secrets */
	int caps[] = {CAP_CHOWN, CAP_DAC_OVERRIDE};
	char version[48];

	/* the Sentinel rewrites its file with its passwords in it, with 0644 less its umask: keep it to its user */
	(void)umask(0077);
	node_server_describe(&s->server, version, sizeof(version));
	log_info("starting the Sentinel of %s ('%s --sentinel') on %sport '%lld', watching '%s'", version,
		 s->server.server_bin, o->tls_enabled ? "TLS " : "", (long long)o->sentinel_port, o->master_set);
	return init_run(&s->c->core.opt, run->user, argv, envp, &hooks, caps,
			run->user->set && geteuid() == 0 ? sizeof(caps) / sizeof(caps[0]) : 0);
}

int node_sentinel_main(struct node_config *c, char **args)
{
	struct node_setup s;
	struct init_user user = {0};
	struct sentinel_run run = {.o = &c->opt, .user = &user};
	struct init_error err;
	_cleanup_free_ char **env = NULL;
	char *text = NULL;
	int r;

	/* a Sentinel is no cluster node (the default is): no bus port, no cluster names its certificate must cover */
	c->opt.cluster_enabled = false;
	r = node_setup_start(c, args, "sentinel", false, &s, &err);
	/* and the names a Sentinel's certificate must cover; kvinit's own connections (rotation, health) use it too */
	if (r == 0 && c->opt.tls_enabled) {
		r = check_tls(&s, NULL, NULL, &err);
		if (r == 0)
			r = node_tls_client_setup(&c->opt, NULL, &err);
		if (r < 0)
			node_setup_free(&s);
	}
	if (r < 0) {
		log_error("%s", err.msg);
		return r == -ENOENT ? INIT_EXIT_NOTFOUND : init_exit_status(r, INIT_EXIT_SYSCALL);
	}
	run.setup = &s;
	(void)snprintf(run.conf_path, sizeof(run.conf_path), "%s/%s", c->opt.data_dir, SENTINEL_CONF_NAME);
	run.secret[SECRET_DATA] = (struct sentinel_secret){
		.what = "password",
		.rot = &s.rotation,
		.paths = &s.paths,
		.initial = &s.initial,
		.watched = s.rotating,
		.run = &run,
	};
	r = check_server(&s.server, &err);
	if (r == 0)
		r = load_own_password(&run, &err);
	if (r == 0 && run.own_file)
		run.secret[SECRET_OWN] = (struct sentinel_secret){
			.what = "Sentinel password",
			.rot = &run.own_rot,
			.paths = &run.own_paths,
			.initial = &run.own_initial,
			.watched = true,
			.run = &run,
		};
	for (int i = 0; i < SECRET__COUNT; i++)
		run.secret[i].expiry = (struct init_timer){.fn = on_expiry, .userdata = &run.secret[i]};
	if (r < 0)
		log_error("%s", err.msg);
	else
		r = init_resolve_user(&c->core.opt, &user); /* it says why itself */
	if (r == 0) {
		/* rendered before anything is written: a bad setting leaves no trace */
		r = prepare_conf(&run, &text, &err);
		if (r == 0)
			r = node_setup_data_dir(&s, &user, &err);
		if (r == 0)
			r = write_conf(&run, text, &err);
		if (r == 0)
			r = node_setup_child_environment(environ, &env, &err);
		if (r < 0)
			log_error("%s", err.msg);
	}
	text_free(text);
	if (r == 0)
		r = supervise(&run, env);
	run_free(&run);
	init_user_free(&user);
	node_setup_free(&s);
	return init_exit_status(r, INIT_EXIT_SYSCALL);
}

/* ---- health ---- */

bool node_sentinel_is_role(void)
{
	const char *role = getenv("KVINIT_ROLE");

	return role && strcmp(role, "sentinel") == 0;
}

static int probe(const struct node_options *o, bool ready, const struct secrets_value *pw, char *why, size_t size)
{
	long long port = (long long)o->sentinel_port;
	char host[64];
	struct node_conn *ctx;
	redisReply *rep;
	int ok = 0;

	node_probe_host(o->bind, host, sizeof(host));
	ctx = cluster_open(host, (unsigned)port, pw, 2000, why, size);
	if (!ctx)
		return 0;
	/* ready: the set is known and enough Sentinels are there to call a failover (quorum and majority) */
	rep = ready ? node_command(ctx, "SENTINEL CKQUORUM %s", o->master_set) : node_command(ctx, "PING");
	if (!rep)
		(void)snprintf(why, size, "no answer from sentinel %s:%lld: %s", host, port, ctx->errstr);
	else if (rep->type == REDIS_REPLY_ERROR || ready)
		(void)snprintf(why, size, "sentinel %s:%lld, '%s': %s", host, port, o->master_set, rep->str);
	else
		(void)snprintf(why, size, "sentinel %s:%lld answers PING", host, port);
	ok = rep && rep->type != REDIS_REPLY_ERROR;
	freeReplyObject(rep);
	node_conn_free(ctx);
	return ok;
}

/*
 * The passwords to probe with: the Sentinels' own file and its rotation files, or without one the nodes' password
 * and its rotation files. The next and previous ones are tried when the current one is refused (a rotation has
 * not reached the Sentinel yet).
 */
int node_sentinel_health(struct node_config *c, bool ready)
{
	struct secrets_password pw = {0};
	struct secrets_paths paths = {0};
	struct secrets_set set = {0};
	struct init_error err;
	char why[512] = "";
	int ok = 0, r;

	r = secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err);
	if (r == 0 && !*c->opt.sentinel_password_file && pw.path) {
		r = secrets_paths_resolve(environ, pw.path, &paths, &err);
		if (r == 0) {
			secrets_set_read(&paths, &set);
			/* the current one as loaded, whatever the file holds a moment later */
			secrets_wipe(&set.value[SECRETS_CURRENT]);
			set.error[SECRETS_CURRENT] =
				secrets_value_copy(pw.value.data, pw.value.len, &set.value[SECRETS_CURRENT]);
		}
	} else if (r == 0) {
		r = node_sentinel_passwords(&c->opt, &pw.value, &set, &err);
	}
	if (r == 0)
		r = node_tls_client_setup(&c->opt, NULL, &err);
	if (r < 0) {
		(void)printf("not %s: %s\n", ready ? "ready" : "live", err.msg);
		secrets_password_free(&pw);
		return 1;
	}
	for (int i = 0; i < SECRETS__SLOTS && !ok; i++) {
		if (set.error[i] < 0 || (i != SECRETS_CURRENT && (!set.value[i].data || !strstr(why, "AUTH refused"))))
			continue;
		ok = probe(&c->opt, ready, &set.value[i], why, sizeof(why));
	}
	secrets_set_wipe(&set);
	secrets_paths_free(&paths);
	secrets_password_free(&pw);
	(void)printf("%s%s: %s\n", ok ? "" : "not ", ready ? "ready" : "live", why);
	(void)fflush(stdout);
	return ok ? 0 : 1;
}
