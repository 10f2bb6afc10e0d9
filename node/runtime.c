/* SPDX-License-Identifier: MIT */
/*
 * The node while its server runs: the hooks the supervision loop calls (started, stop, reaped), the watch on the
 * password files, and the helper processes beside the server. Nothing here is fatal: the loop runs, and a dead
 * PID 1 would take the container with it.
 *
 * Work that talks to the network runs beside the server in processes of its own (init_fork_helper), so the loop
 * never waits on it:
 *   cluster-init   REDIS_CLUSTER_CREATOR=yes: forms or extends the cluster (it waits for every node, this one too);
 *   heal           REDIS_NODES with dynamic IPs (no REDIS_CLUSTER_ANNOUNCE_IP): meets the peers again at their
 *                  current addresses (heal.c);
 *   rotate         after a change of the password files: brings the server to the new set (rotate.c);
 *   new address    after the container's own address changed (netwatch.c saw it), where kvinit announces that
 *                  address: the server announces the new one and every peer meets it there (readdress.c);
 *   handover       a server restarted after a second crash within KVINIT_BACKOFF_RESET (KVINIT_CRASH_HANDOVER): a
 *                  master hands its slots to its best replica as soon as it answers, so a crash loop costs a
 *                  replica, not a third of the keyspace (failover.c). A first crash keeps the fast restart;
 *   data check     a node that was in a cluster (nodes.conf lists peers) but started with no data: warns when its
 *                  peers hold keys (datadir.c);
 *   certificates   with TLS, after a change of the certificate, key or CA file that makes a set that works: the
 *                  server loads it without a restart and a handshake confirms it serves it (tls_rotate.c).
 *   users          after a change of the users file (or of a password file it names): the server's users become
 *                  the file's, ACL SETUSER and DELUSER (acl.c); the rendered config follows once they applied.
 * The first two start the first time the server is up. On stop, a master hands its slots to a replica first
 * (failover.c), and a primary in replication mode asks the Sentinels to promote one (replication.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "node.h"

enum helper {
	HELPER_CREATOR,
	HELPER_HEAL,
	HELPER_ROTATE,
	HELPER_READDRESS,
	HELPER_HANDOVER,
	HELPER_DATA_CHECK,
	HELPER_TLS,
	HELPER_USERS,
	HELPER__COUNT
};

struct node_run {
	struct node_setup *setup; /* its rotation is what the server accepts and sends */
	const struct node_options *o;
	const struct init_user *user;
	struct init_loop *loop;
	struct secrets_watch *watch;
	struct node_netwatch *netwatch; /* the container's addresses, when the node announces its own */
	struct init_timer expiry;	/* the end of the next grace period */
	struct node_tls_rotation *tls;	/* with TLS: the certificate files' watch and the CA staging */
	pid_t pid[HELPER__COUNT];	/* of the helpers while they run */
	bool rotate_again;		/* a change came while the rotate helper ran */
	bool readdress_again;		/* the address changed again while the new-address helper ran */
	bool handover_again;		/* the server crashed again while the handover helper ran */
	bool users_again;		/* the users file changed again while the users helper ran */
	struct node_acl_watch *users;	/* with a users file: its watch and the users on their way */
	unsigned crashes;		/* ends of the server in a row, for the handover */
	/* every password the server may take: what it was given since its last completed rotation */
	struct secrets_logins logins;
	bool started, stopping;
};

/* The password kvinit sends: the current one. */
static const struct secrets_value *current_password(const struct node_run *run)
{
	const struct secrets_rotation *rot = &run->setup->rotation;
	static const struct secrets_value none = {0};

	return rot->n ? &rot->entry[rot->current].value : &none;
}

/* ---- the helpers: each runs in a process of its own, its result is its exit status ---- */

static int run_creator(void *userdata)
{
	const struct node_run *run = userdata;

	return node_cluster_init_run(run->o, current_password(run));
}

static int run_heal(void *userdata)
{
	const struct node_run *run = userdata;

	return node_heal_run(run->o, current_password(run));
}

static int run_rotate(void *userdata)
{
	const struct node_run *run = userdata;

	return node_rotate_apply(run->o, &run->setup->rotation, run->logins.value, run->logins.n);
}

static int run_readdress(void *userdata)
{
	const struct node_run *run = userdata;

	return node_readdress_run(run->o, current_password(run), run->setup->announce_ip, run->setup->bus_port);
}

static int run_handover(void *userdata)
{
	const struct node_run *run = userdata;
	uint64_t window = (uint64_t)run->setup->c->core.opt.backoff_reset * USEC_PER_MSEC;

	/* the crash loop is over once the server stays up KVINIT_BACKOFF_RESET; a restart may take a while though */
	if (window < 10 * USEC_PER_SEC)
		window = 10 * USEC_PER_SEC;
	return node_failover_crash_loop(run->o, current_password(run), run->crashes, window);
}

static int run_data_check(void *userdata)
{
	const struct node_run *run = userdata;

	return node_data_check_peers(run->o, current_password(run), &run->setup->former);
}

static int run_tls(void *userdata)
{
	const struct node_run *run = userdata;

	return node_tls_rotation_apply(run->tls, current_password(run));
}

static int run_users(void *userdata)
{
	const struct node_run *run = userdata;

	return node_acl_watch_apply(run->users, run->logins.value, run->logins.n);
}

static const struct {
	const char *name;
	init_helper_fn fn;
} helpers[HELPER__COUNT] = {
	[HELPER_CREATOR] = {"cluster-init (REDIS_CLUSTER_CREATOR)", run_creator},
	[HELPER_HEAL] = {"heal", run_heal},
	[HELPER_ROTATE] = {"password rotation", run_rotate},
	[HELPER_READDRESS] = {"new address", run_readdress},
	[HELPER_HANDOVER] = {"crash-loop handover", run_handover},
	[HELPER_DATA_CHECK] = {"data check", run_data_check},
	[HELPER_TLS] = {"certificate rotation", run_tls},
	[HELPER_USERS] = {"users file", run_users},
};

static void start_helper(struct node_run *run, enum helper which)
{
	int r = init_fork_helper(helpers[which].fn, run, &run->pid[which]);

	if (r < 0) {
		log_error("cannot start %s: %s, ignoring", helpers[which].name, strerror(-r));
		return;
	}
	log_debug("%s runs beside the server (pid %d)", helpers[which].name, (int)run->pid[which]);
}

/*
 * A helper whose work changed while it ran (a newer password set, a newer address): the stale one is stopped, and
 * on_reaped starts it again with what is current then.
 */
static void restart_helper(struct node_run *run, enum helper which, bool *again)
{
	if (run->pid[which] > 0) {
		*again = true;
		if (kill(run->pid[which], SIGTERM) < 0 && errno != ESRCH)
			log_warn("cannot stop the stale %s: %s", helpers[which].name, strerror(errno));
		return;
	}
	start_helper(run, which);
}

/* The config a restart of the server reads, after what it was rendered from changed (the running server counts). */
static void rewrite_config(struct node_run *run)
{
	struct init_error err;
	char *text = NULL;
	int r;

	r = node_setup_render(run->setup, false, &text, &err);
	if (r == 0)
		r = node_setup_write_config(run->setup, run->user, text, &err);
	if (r < 0)
		log_error("%s, ignoring", err.msg);
	node_setup_text_free(text);
}

/* ---- the password files ---- */

/* The timer for the end of the next grace period, if one runs. */
static void arm_expiry(struct node_run *run)
{
	uint64_t next = secrets_rotation_next_expiry(&run->setup->rotation);

	if (next)
		init_timer_arm(run->loop, &run->expiry, next);
	else
		init_timer_disarm(run->loop, &run->expiry);
}

/* The rotation changed: the config a restart reads, and the running server (a stale helper is replaced). */
static void rotation_changed(struct node_run *run)
{
	const struct secrets_rotation *rot = &run->setup->rotation;
	char accepted[SECRETS_MAX_ACCEPTED * 10 + 1];

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
	rewrite_config(run);
	arm_expiry(run);
	if (run->stopping)
		return;
	/* a helper started now may hand the server any of these before it is stopped */
	for (size_t i = 0; i < rot->n; i++)
		secrets_logins_add(&run->logins, &rot->entry[i].value);
	restart_helper(run, HELPER_ROTATE, &run->rotate_again);
}

static void on_secrets_changed(const struct secrets_set *set, void *userdata)
{
	struct node_run *run = userdata;
	char shown[320];
	int r;

	for (int i = 0; i < SECRETS__SLOTS; i++) {
		if (set->error[i] == 0 || secrets_slot_absent(i, set->error[i]))
			continue;
		init_escape_control(shown, sizeof(shown), run->setup->paths.path[i]);
		log_warn("the %s password file '%s': %s; it keeps counting as it was", secrets_slot_name(i), shown,
			 secrets_strerror(set->error[i]));
	}
	r = secrets_rotation_update(&run->setup->rotation, set, init_now_usec());
	if (r < 0)
		log_error("password rotation: %s, ignoring this change", strerror(-r));
	else if (r > 0)
		rotation_changed(run);
}

static void on_expiry(struct init_loop *loop, void *userdata)
{
	struct node_run *run = userdata;

	(void)loop;
	if (secrets_rotation_expire(&run->setup->rotation, init_now_usec()))
		rotation_changed(run);
	else
		arm_expiry(run);
}

static void start_watching(struct node_run *run)
{
	struct node_setup *s = run->setup;
	int r;

	if (!s->rotating)
		return;
	secrets_logins_reset(&run->logins, &run->setup->rotation);
	r = secrets_watch_new(run->loop, &s->paths, &s->initial, (uint64_t)run->o->secret_poll * USEC_PER_MSEC,
			      on_secrets_changed, run, &run->watch);
	if (r < 0)
		log_error("cannot watch the password files: %s; a new password needs a restart", strerror(-r));
	arm_expiry(run);
}

/* ---- the users file (acl_watch.c) ---- */

static void users_start_helper(void *userdata)
{
	struct node_run *run = userdata;

	restart_helper(run, HELPER_USERS, &run->users_again);
}

static void start_users_watch(struct node_run *run)
{
	if (node_acl_watch_new(run->setup, run->loop, users_start_helper, run, &run->users) < 0)
		log_error("cannot watch the users file: out of memory; a change needs a restart");
}

/* ---- the certificates (tls_rotate.c) ---- */

static void tls_start_helper(void *userdata)
{
	struct node_run *run = userdata;

	start_helper(run, HELPER_TLS);
	if (run->pid[HELPER_TLS] <= 0)
		node_tls_rotation_done(run->tls, false);
}

/* A newer set goes next: the helper giving the stale one is stopped (on_reaped tells the rotation it is done). */
static void tls_stop_helper(void *userdata)
{
	struct node_run *run = userdata;

	if (run->pid[HELPER_TLS] > 0 && kill(run->pid[HELPER_TLS], SIGTERM) < 0 && errno != ESRCH)
		log_warn("cannot stop the stale %s: %s", helpers[HELPER_TLS].name, strerror(errno));
}

static void start_tls_watch(struct node_run *run)
{
	const struct node_tls_rotation_ops ops = {
		.check = node_setup_check_tls,
		.apply = tls_start_helper,
		.cancel = tls_stop_helper,
		.userdata = run,
		.server = "the server",
		.giving = "giving the server",
		.note = "",
	};

	if (node_tls_rotation_new(run->setup, run->loop, &ops, &run->tls) < 0)
		log_error("cannot watch the TLS files: out of memory; new certificates need a restart");
}

/* ---- the container's address ---- */

/*
 * The addresses changed (netwatch.c): when the one kvinit would announce now is another, the server and its peers
 * learn it (the new-address helper) and a restart of the server announces it too. No address at all (the
 * interface is gone for now) changes nothing: the next one is what counts.
 */
static void on_address_change(void *userdata)
{
	struct node_run *run = userdata;
	struct node_setup *s = run->setup;
	char now[sizeof(s->announce_ip)];

	if (run->stopping || node_detect_own_ipv4(now, sizeof(now)) < 0) {
		log_debug("address change: no address to announce for now");
		return;
	}
	if (s->has_announce_ip && strcmp(now, s->announce_ip) == 0)
		return;
	if (s->has_announce_ip)
		log_info(
			"this node's address changed from '%s' to '%s': announcing it and asking every peer to meet it "
			"there",
			s->announce_ip, now);
	else
		log_info("this node has an address now, '%s': announcing it and asking every peer to meet it there",
			 now);
	(void)snprintf(s->announce_ip, sizeof(s->announce_ip), "%s", now);
	s->has_announce_ip = true;
	rewrite_config(run);
	restart_helper(run, HELPER_READDRESS, &run->readdress_again);
}

static void start_address_watch(struct node_run *run)
{
	int r;

	if (!run->o->cluster_enabled || !run->setup->follows_address)
		return;
	r = node_netwatch_new(run->loop, on_address_change, run, &run->netwatch);
	if (r < 0)
		log_warn("cannot watch this container's addresses: %s; a new address needs a restart, ignoring",
			 strerror(-r));
}

/* ---- the hooks of the supervision loop ---- */

/* The server was started again: after KVINIT_CRASH_HANDOVER crashes in a row, a master hands its slots over. */
static void restarted(struct node_run *run, struct init_supervisor *sv)
{
	unsigned restarts = init_supervisor_restarts(sv);

	if (!run->o->crash_handover || restarts < run->o->crash_handover || !run->o->cluster_enabled ||
	    !run->o->failover_timeout || run->stopping)
		return;
	run->crashes = restarts;
	restart_helper(run, HELPER_HANDOVER, &run->handover_again);
}

/*
 * The restart after which a master hands its slots over comes at once, not after the backoff's delay: until the
 * server answers, its slots take no writes (the 1 s before a second restart was most of the crash loop's write gap).
 * The restarts after it, of a replica, back off as usual; a replica that crashes twice is restarted 1 s sooner.
 */
static uint64_t restart_delay(struct init_supervisor *sv, unsigned restart, uint64_t delay_ms, void *userdata)
{
	const struct node_run *run = userdata;

	(void)sv;
	if (run->o->crash_handover && (long long)restart == run->o->crash_handover && run->o->cluster_enabled &&
	    run->o->failover_timeout)
		return 0;
	return delay_ms;
}

static void on_started(struct init_supervisor *sv, pid_t pid, void *userdata)
{
	struct node_run *run = userdata;
	const struct node_options *o = run->o;

	(void)pid;
	if (run->started) {
		restarted(run, sv);
		return;
	}
	run->started = true;
	run->loop = init_supervisor_loop(sv);
	start_watching(run);
	start_users_watch(run);
	start_address_watch(run);
	start_tls_watch(run);
	if (run->setup->check_former)
		start_helper(run, HELPER_DATA_CHECK);
	if (o->creator)
		start_helper(run, HELPER_CREATOR);
	/* Only where the node announces its own address: an announced one (NAT, host ports) never matches the names. */
	if (o->cluster_enabled && o->dynamic_ips && !*o->announce_ip && *o->nodes)
		start_helper(run, HELPER_HEAL);
}

static void on_stop(struct init_supervisor *sv, uint64_t deadline_usec, void *userdata)
{
	struct node_run *run = userdata;

	(void)sv;
	run->stopping = true;
	node_tls_rotation_stop(run->tls);
	node_acl_watch_stop(run->users);
	for (int i = 0; i < HELPER__COUNT; i++)
		if (run->pid[i] > 0 && kill(run->pid[i], SIGTERM) < 0 && errno != ESRCH)
			log_warn("cannot stop %s: %s, ignoring", helpers[i].name, strerror(errno));
	node_failover_on_stop(run->o, current_password(run), deadline_usec);
	node_replication_failover_on_stop(run->o, current_password(run), deadline_usec);
}

static void on_reaped(struct init_supervisor *sv, pid_t pid, int status, void *userdata)
{
	struct node_run *run = userdata;
	bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
	int which = -1;

	(void)sv;
	for (int i = 0; i < HELPER__COUNT; i++)
		if (run->pid[i] == pid)
			which = i;
	if (which < 0) {
		log_debug("reaped orphan pid %d", (int)pid);
		return;
	}
	run->pid[which] = 0;
	if (which == HELPER_ROTATE && run->rotate_again && !run->stopping) {
		run->rotate_again = false;
		start_helper(run, HELPER_ROTATE);
		return;
	}
	if (which == HELPER_READDRESS && run->readdress_again && !run->stopping) {
		run->readdress_again = false;
		start_helper(run, HELPER_READDRESS);
		return;
	}
	if (which == HELPER_HANDOVER && run->handover_again && !run->stopping) {
		run->handover_again = false;
		start_helper(run, HELPER_HANDOVER);
		return;
	}
	if (which == HELPER_USERS && run->users_again && !run->stopping) {
		run->users_again = false;
		start_helper(run, HELPER_USERS);
		return;
	}
	if (which == HELPER_USERS) {
		if (node_acl_watch_done(run->users, ok))
			rewrite_config(run);
		return;
	}
	if (which == HELPER_TLS) {
		node_tls_rotation_done(run->tls, ok);
		return;
	}
	if (ok && which == HELPER_ROTATE) {
		char accepted[SECRETS_MAX_ACCEPTED * 10 + 1];

		secrets_logins_reset(&run->logins, &run->setup->rotation);
		secrets_rotation_describe(&run->setup->rotation, accepted, sizeof(accepted));
		log_info("password rotation applied: the server accepts %s and sends #%.8s", accepted,
			 run->setup->rotation.entry[run->setup->rotation.current].hash);
	} else if (ok) {
		log_info("%s done", helpers[which].name);
	} else if (!run->stopping) {
		log_error("%s failed (%s %d): see its lines above%s", helpers[which].name,
			  WIFEXITED(status) ? "status" : "signal",
			  WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status),
			  which == HELPER_CREATOR ? "; run `kvinit cluster-init` again once the cause is fixed" : "");
	}
}

/* ---- the capabilities kvinit keeps ---- */

/* Whether root can read the file at path without overriding its permissions (Kubernetes' secret files, 0400 root). */
static bool root_may_read(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return false;
	return (st.st_uid == 0 && (st.st_mode & S_IRUSR)) || (st.st_gid == 0 && (st.st_mode & S_IRGRP)) ||
	       (st.st_mode & S_IROTH);
}

/* Whether a file that exists at path is not root's to read. */
static bool needs_dac(const char *path)
{
	return *path && access(path, F_OK) == 0 && !root_may_read(path);
}

/*
 * What kvinit itself keeps to rotate the password: CHOWN to rewrite the config as the server user's and, when the
 * password files are not root's to read (a compose secret is the host user's file), DAC_READ_SEARCH where the
 * container has it, else DAC_OVERRIDE. The same for the TLS files, which kvinit reads again to check a new set
 * (they are often the server user's, 0400). And for the users file and the password files it names, read again at every
 * change.
 */
static size_t rotation_caps(const struct node_setup *s, int *caps)
{
	const struct node_options *o = &s->c->opt;
	bool keep_dac = false;
	size_t n = 0;

	if (o->tls_enabled)
		keep_dac = needs_dac(o->tls_cert_file) || needs_dac(o->tls_key_file) || needs_dac(o->tls_ca_file);
	if (!s->rotating && !s->users_path && !keep_dac)
		return 0;
	if (s->rotating || s->users_path)
		caps[n++] = CAP_CHOWN;
	for (int i = 0; s->rotating && i < SECRETS__SLOTS; i++)
		if (needs_dac(s->paths.path[i]))
			keep_dac = true;
	/* the users file and its password files: read again at every change */
	if (s->users_path && !root_may_read(s->users_path))
		keep_dac = true;
	for (size_t i = 0; i < s->users.n_files; i++)
		if (!root_may_read(s->users.files[i]))
			keep_dac = true;
	if (keep_dac)
		caps[n++] = init_bounding_has(CAP_DAC_READ_SEARCH) ? CAP_DAC_READ_SEARCH : CAP_DAC_OVERRIDE;
	return n;
}

int node_supervise(struct node_setup *s, const struct init_user *user, char *const *envp)
{
	const struct node_options *o = &s->c->opt;
	struct node_run run = {.setup = s, .o = o, .user = user};
	struct init_role_hooks hooks = {
		.stop = on_stop,
		.started = on_started,
		.reaped = on_reaped,
		.restart_delay = restart_delay,
		.userdata = &run,
	};
	char *argv[] = {s->server.server_bin, (char *)o->rendered_config, NULL};
	char version[48], as[96];
	int caps[2], code;

	run.expiry = (struct init_timer){.fn = on_expiry, .userdata = &run};
	node_server_describe(&s->server, version, sizeof(version));
	if (!user->set)
		(void)snprintf(as, sizeof(as), "root");
	else if (user->name)
		(void)snprintf(as, sizeof(as), "'%.80s'", user->name);
	else
		(void)snprintf(as, sizeof(as), "uid '%d'", (int)user->uid);
	log_info("starting %s ('%s') on %sport '%u' as %s%s%s%s", version, s->server.server_bin,
		 o->tls_enabled ? "TLS " : "", node_client_port(o), as, s->has_announce_ip ? ", announcing '" : "",
		 s->has_announce_ip ? s->announce_ip : "", s->has_announce_ip ? "'" : "");
	if (o->tls_enabled && node_plain_port_open(o))
		log_info("the plain port '%lld' stays open beside TLS (REDIS_PORT_NUMBER differs from "
			 "REDIS_TLS_PORT_NUMBER)",
			 (long long)o->port);
	code = init_run(&s->c->core.opt, user, argv, envp, &hooks, caps, rotation_caps(s, caps));
	secrets_watch_free(run.watch);
	node_tls_rotation_free(run.tls);
	node_acl_watch_free(run.users);
	node_netwatch_free(run.netwatch);
	secrets_logins_wipe(&run.logins);
	return code;
}
