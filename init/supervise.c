/* SPDX-License-Identifier: MIT */
/*
 * The supervision loop: start the child, forward signals, reap every zombie, restart on failure with backoff,
 * and stop with a grace period.
 *
 * Once the loop runs nothing may be fatal. If PID 1 exits, the kernel kills every process in the container on
 * the spot: the server loses its chance to flush, its replica its chance to take over. So every error past this
 * point is logged with ", ignoring" and the loop goes on; the only ways out are the child's end (and the restart
 * policy declining another) or a stop request.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>

#include "init.h"

static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

struct init_supervisor {
	const struct init_supervise_args *args;
	struct init_loop *loop;
	pid_t child; /* 0 while none runs; also its process group */
	uint64_t started_usec;
	int last_code;		 /* exit code form of the last child's end: status, or 128 + signal */
	unsigned restarts;	 /* quick restarts in a row */
	unsigned starts;	 /* of the child, the first one too */
	const char *restart_why; /* the child was killed to be restarted on purpose (init_supervisor_restart): why */
	int forwarded_sig;	 /* last signal sent to the current child on someone's behalf */
	bool stopping;
	struct init_timer restart_timer, grace_timer;
	pid_t killed_group; /* the last group SIGKILLed on the way out, to be reaped before kvinit exits */
};

/* What the child leaves in the shared memory when it fails before or at exec. */
enum child_stage { STAGE_NONE, STAGE_PRIVS, STAGE_SECCOMP, STAGE_EXEC };
struct child_ctx {
	const struct init_supervise_args *args;
	volatile int stage, err;
};

static const char *const stage_names[] = {
	[STAGE_NONE] = "",
	[STAGE_PRIVS] = "cannot drop privileges",
	[STAGE_SECCOMP] = "cannot load the seccomp filter",
	[STAGE_EXEC] = "cannot execute",
};

/* Where the child runs between clone and exec; only the pages it touches ever become resident. */
static char child_stack[256 * 1024] __attribute__((aligned(16)));

/* ASan cannot follow a child on a stack of kvinit's making; the few functions that run there go uninstrumented. */
#define CHILD_CODE __attribute__((no_sanitize_address))

CHILD_CODE static void close_fds_from(int lowest)
{
	/* close_range needs Linux 5.9; an older kernel gets the slow path */
	if (syscall(SYS_close_range, lowest, ~0U, 0) == 0)
		return;
	for (long fd = lowest, max = sysconf(_SC_OPEN_MAX); fd < max && fd < 65536; fd++)
		(void)close((int)fd);
}

CHILD_CODE static _Noreturn void child_fail(struct child_ctx *ctx, enum child_stage stage, int err)
{
	ctx->err = err;
	ctx->stage = stage;
	if (stage != STAGE_EXEC)
		_exit(INIT_EXIT_SYSCALL);
	_exit(err == ENOENT || err == ENOTDIR ? INIT_EXIT_NOTFOUND : INIT_EXIT_NOEXEC);
}

/*
 * The child, started with CLONE_VM | CLONE_VFORK as glibc's posix_spawn does: it shares kvinit's memory, and
 * kvinit waits until it has called exec or _exit. No page tables are copied and no page is copied on write,
 * which is most of the cost of a fork. The price: until exec it must not allocate or touch kvinit's state
 * other than the ctx it reports through; it uses system calls and what the parent prepared.
 */
CHILD_CODE static int child_main(void *arg)
{
	struct child_ctx *ctx = arg;
	const struct init_supervise_args *args = ctx->args;
	sigset_t none;
	int r;

	(void)setpgid(0, 0);
	/*
	 * With a terminal, the child's group becomes the foreground one so Ctrl-C reaches it; SIGTTOU is still
	 * blocked here, which lets a background process do this. No terminal (the usual case): nothing to do.
	 */
	(void)tcsetpgrp(STDIN_FILENO, getpgrp());
	/* Dispositions need no reset: kvinit installs no handler and reset every ignored signal at start. */
	close_fds_from(STDERR_FILENO + 1);

	r = init_privs_drop_child(args->user);
	if (r < 0)
		child_fail(ctx, STAGE_PRIVS, -r);
	if (args->seccomp) {
		r = init_seccomp_load();
		if (r < 0)
			child_fail(ctx, STAGE_SECCOMP, -r);
	}
	(void)sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (args->envp)
		execvpe(args->argv[0], args->argv, args->envp);
	else
		execvp(args->argv[0], args->argv);
	child_fail(ctx, STAGE_EXEC, errno);
}

/* Returns the child's pid, or the exit code form of why it could not start, negated. */
static pid_t spawn(struct init_supervisor *s)
{
	struct child_ctx ctx = {.args = s->args, .stage = STAGE_NONE};
	int status, r;
	pid_t pid;

	r = init_privs_prepare_child();
	if (r < 0) {
		log_error("cannot prepare the child's capabilities: %s", strerror(-r));
		return -INIT_EXIT_SYSCALL;
	}
	pid = clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, &ctx);
	if (pid < 0) {
		log_error("cannot start the child: %s", strerror(errno));
		return -INIT_EXIT_SYSCALL;
	}
	/* Here the child has exec'd (stage still STAGE_NONE) or exited after saying why. */
	if (ctx.stage == STAGE_NONE) {
		(void)setpgid(pid, pid); /* done by the child already; harmless */
		return pid;
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (ctx.stage == STAGE_EXEC && (ctx.err == ENOENT || ctx.err == ENOTDIR)) {
		log_error("'%s': command not found", s->args->argv[0]);
		return -INIT_EXIT_NOTFOUND;
	}
	log_error("'%s': %s: %s", s->args->argv[0], stage_names[ctx.stage], strerror(ctx.err));
	return ctx.stage == STAGE_EXEC ? -INIT_EXIT_NOEXEC : -INIT_EXIT_SYSCALL;
}

static int start_child(struct init_supervisor *s)
{
	pid_t pid = spawn(s);

	if (pid < 0)
		return (int)-pid;
	s->child = pid;
	s->forwarded_sig = 0;
	s->started_usec = init_now_usec();
	if (s->starts++)
		log_info("started '%s' again (pid %d)", s->args->argv[0], (int)pid);
	else
		log_debug("started '%s' (pid %d)", s->args->argv[0], (int)pid);
	if (s->args->hooks.started)
		s->args->hooks.started(s, pid, s->args->hooks.userdata);
	return 0;
}

static void kill_group(pid_t pgid)
{
	if (pgid > 0 && kill(-pgid, SIGKILL) < 0 && errno != ESRCH)
		log_warn("cannot kill process group %d: %s, ignoring", (int)pgid, strerror(errno));
}

/* Decides what follows the end of the child (or a failed start): a restart, or kvinit's own exit. */
static void child_ended(struct init_supervisor *s, int code, int term_sig, uint64_t uptime_usec)
{
	const struct init_options *o = s->args->opt;
	bool wanted = o->restart == INIT_RESTART_ALWAYS || (o->restart == INIT_RESTART_ON_FAILURE && code != 0);
	const char *why = s->restart_why;
	char delay_s[32];
	uint64_t delay;

	s->restart_why = NULL;
	/* a restart on purpose is no end of the child's own: a stop meanwhile exits with the status of the last one */
	if (!why)
		s->last_code = code;
	if (s->stopping) {
		init_loop_quit(s->loop, s->last_code);
		return;
	}
	if (why) {
		/* not a crash: neither counted toward KVINIT_MAX_RESTARTS nor delayed, whatever KVINIT_RESTART says */
		log_info("restarting now %s (on purpose: no crash, not counted toward KVINIT_MAX_RESTARTS)", why);
		init_timer_arm(s->loop, &s->restart_timer, init_now_usec());
		return;
	}
	if (wanted && term_sig && term_sig == s->forwarded_sig) {
		log_info("not restarting: the child ended by %s, which was sent to it", init_signal_name(term_sig));
		wanted = false;
	}
	if (!wanted) {
		init_loop_quit(s->loop, code);
		return;
	}
	if (uptime_usec >= (uint64_t)o->backoff_reset * USEC_PER_MSEC)
		s->restarts = 0;
	s->restarts++;
	if (o->max_restarts && s->restarts > (uint64_t)o->max_restarts) {
		log_error("giving up after %u restarts in a row, each up less than %llds; exiting with status %d",
			  s->restarts - 1, (long long)(o->backoff_reset / 1000), code);
		init_loop_quit(s->loop, code);
		return;
	}
	delay = init_backoff_delay_ms(s->restarts, (uint64_t)o->backoff_max);
	if (s->args->hooks.restart_delay)
		delay = s->args->hooks.restart_delay(s, s->restarts, delay, s->args->hooks.userdata);
	init_format_duration(delay_s, sizeof(delay_s), delay);
	if (o->max_restarts)
		log_info("restarting %s%s (restart %u of %lld)", delay ? "in " : "now", delay ? delay_s : "",
			 s->restarts, (long long)o->max_restarts);
	else
		log_info("restarting %s%s (restart %u)", delay ? "in " : "now", delay ? delay_s : "", s->restarts);
	init_timer_arm(s->loop, &s->restart_timer, init_now_usec() + delay * USEC_PER_MSEC);
}

static void on_restart_timer(struct init_loop *loop, void *userdata)
{
	struct init_supervisor *s = userdata;
	int code;

	(void)loop;
	if (s->args->hooks.restarting)
		s->args->hooks.restarting(s, s->args->hooks.userdata);
	code = start_child(s);
	if (code)
		child_ended(s, code, 0, 0);
}

static void on_child_exit(struct init_supervisor *s, int status)
{
	uint64_t uptime = init_now_usec() - s->started_usec;
	pid_t pgid = s->child;
	int code, sig = 0;

	if (s->restart_why) {
		code = 0;
		log_info("child (pid %d) stopped %s", (int)pgid, s->restart_why);
	} else if (WIFSIGNALED(status)) {
		sig = WTERMSIG(status);
		code = 128 + sig;
		log_info("child (pid %d) was killed by %s%s", (int)pgid, init_signal_name(sig),
			 WCOREDUMP(status) ? " (core dumped)" : "");
	} else {
		code = WEXITSTATUS(status);
		log_info("child (pid %d) exited with status %d", (int)pgid, code);
	}
	s->child = 0;
	init_timer_disarm(s->loop, &s->grace_timer);
	/* Leftovers of the old child must not hold its ports or files when the next one starts, or after a stop. */
	if (s->stopping || s->restart_why || s->args->opt->restart != INIT_RESTART_NO) {
		kill_group(pgid);
		s->killed_group = pgid;
	}
	child_ended(s, code, sig, uptime);
}

/* Waits until no process of group pgid is left among kvinit's children (orphans come to it as they lose parents). */
static void reap_group(pid_t pgid, uint64_t deadline_usec)
{
	struct timespec ms = {.tv_nsec = 1000000};
	int status;

	for (;;) {
		pid_t pid = waitpid(-pgid, &status, WNOHANG);

		if (pid > 0)
			continue;
		if (pid < 0 && errno != EINTR)
			return; /* ECHILD: none left */
		if (init_now_usec() >= deadline_usec) {
			log_warn("process group %d not gone 2s after SIGKILL, exiting anyway", (int)pgid);
			return;
		}
		(void)nanosleep(&ms, NULL);
	}
}

static void reap(struct init_supervisor *s)
{
	int status;
	pid_t pid;

	for (;;) {
		pid = waitpid(-1, &status, WNOHANG);
		if (pid <= 0) {
			if (pid < 0 && errno == EINTR)
				continue;
			if (pid < 0 && errno != ECHILD)
				log_warn("waitpid failed: %s, ignoring", strerror(errno));
			return;
		}
		if (pid == s->child)
			on_child_exit(s, status);
		else if (s->args->hooks.reaped)
			s->args->hooks.reaped(s, pid, status, s->args->hooks.userdata);
		else
			log_debug("reaped orphan pid %d", (int)pid);
	}
}

static void forward(struct init_supervisor *s, int sig)
{
	pid_t target;

	if (!s->child) {
		log_debug("%s with no child running, ignoring", init_signal_name(sig));
		return;
	}
	target = s->args->opt->kill_group ? -s->child : s->child;
	if (kill(target, sig) < 0) {
		if (errno != ESRCH)
			log_warn("cannot send %s to %d: %s, ignoring", init_signal_name(sig), (int)target,
				 strerror(errno));
		return;
	}
	s->forwarded_sig = sig;
	log_debug("forwarded %s to %d", init_signal_name(sig), (int)target);
}

static void on_grace_timer(struct init_loop *loop, void *userdata)
{
	struct init_supervisor *s = userdata;
	char grace[32];

	(void)loop;
	if (!s->child)
		return;
	init_format_duration(grace, sizeof(grace), (uint64_t)s->args->opt->stop_grace);
	log_warn("child (pid %d) still running %s after the stop signal, killing its process group", (int)s->child,
		 grace);
	kill_group(s->child);
}

static void stop(struct init_supervisor *s, int sig)
{
	uint64_t deadline;

	if (!s->child) {
		log_info("received %s while no child runs, exiting with status %d", init_signal_name(sig),
			 s->last_code);
		init_loop_quit(s->loop, s->last_code);
		return;
	}
	if (s->stopping) {
		forward(s, sig);
		return;
	}
	s->stopping = true;
	init_timer_disarm(s->loop, &s->restart_timer);
	deadline = init_now_usec() + (uint64_t)s->args->opt->stop_grace * USEC_PER_MSEC;
	log_info("received %s, stopping the child (pid %d)", init_signal_name(sig), (int)s->child);
	if (s->args->hooks.stop)
		s->args->hooks.stop(s, deadline, s->args->hooks.userdata);
	forward(s, sig);
	init_timer_arm(s->loop, &s->grace_timer, deadline);
}

static void on_signal(struct init_loop *loop, int fd, uint32_t events, void *userdata)
{
	struct init_supervisor *s = userdata;
	struct signalfd_siginfo si;

	(void)events;
	while (read(fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		int sig = (int)si.ssi_signo;

		if (sig == SIGCHLD)
			reap(s);
		else if (sig == SIGTERM || sig == SIGINT)
			stop(s, sig);
		else
			forward(s, sig);
		if (init_loop_quit_requested(loop))
			return;
	}
}

struct init_loop *init_supervisor_loop(struct init_supervisor *s)
{
	return s->loop;
}
unsigned init_supervisor_restarts(const struct init_supervisor *s)
{
	return s->restarts;
}

int init_supervisor_restart(struct init_supervisor *s, const char *why)
{
	if (s->stopping || !s->child)
		return -ESRCH;
	/* SIGKILL: a child may take SIGTERM for an end (a Sentinel exits 0), and this is no end */
	if (kill(s->child, SIGKILL) < 0)
		return -errno;
	s->restart_why = why;
	return 0;
}

int init_supervise(const struct init_supervise_args *args)
{
	struct init_supervisor s = {.args = args};
	_cleanup_close_ int sigfd = -1;
	sigset_t mask;
	int r, code, status;

	s.restart_timer = (struct init_timer){.fn = on_restart_timer, .userdata = &s};
	s.grace_timer = (struct init_timer){.fn = on_grace_timer, .userdata = &s};

	/* Not PID 1: orphans of the child still come back to kvinit to be reaped. */
	if (getpid() != 1 && prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		log_warn("cannot become a subreaper: %s, ignoring", strerror(errno));

	(void)sigemptyset(&mask);
	(void)sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		(void)sigaddset(&mask, forwarded_signals[i]);
	sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sigfd < 0) {
		log_error("cannot create a signalfd: %s", strerror(errno));
		return INIT_EXIT_SYSCALL;
	}
	r = init_loop_new(&s.loop);
	if (r == 0)
		r = init_loop_add_io(s.loop, sigfd, EPOLLIN, on_signal, &s);
	if (r < 0) {
		log_error("cannot set up the event loop: %s", strerror(-r));
		init_loop_free(s.loop);
		return INIT_EXIT_SYSCALL;
	}

	code = start_child(&s);
	if (code) {
		init_loop_free(s.loop);
		return code;
	}
	code = init_loop_run(s.loop);

	/*
	 * The child is gone and its group was killed where the policy says so. What was killed must be reaped before
	 * kvinit exits, or it is left as a zombie for whoever reaps next: SIGKILL takes a moment to land. Bounded, in
	 * case something hangs in the kernel. Then every other zombie there is.
	 */
	if (s.killed_group)
		reap_group(s.killed_group, init_now_usec() + 2 * USEC_PER_SEC);
	while (waitpid(-1, &status, WNOHANG) > 0)
		;
	init_loop_free(s.loop);
	return code;
}

/*
 * Helper processes beside the child. A role's work that may wait on the network (forming the cluster, applying a
 * password rotation) runs in a process of its own, so the loop never waits on it. The helper's result becomes its
 * exit status here, with the same mapping as kvinit's own, and the role reads it when the loop reaps the helper.
 */
int init_fork_helper(init_helper_fn fn, void *userdata, pid_t *ret_pid)
{
	sigset_t none;
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		/* kvinit blocks every signal to read them from its signalfd: the helper takes them as they come, so a
		 * SIGTERM from the role's stop hook ends it */
		(void)sigemptyset(&none);
		(void)sigprocmask(SIG_SETMASK, &none, NULL);
		_exit(init_exit_status(fn(userdata), 1));
	}
	*ret_pid = pid;
	return 0;
}
