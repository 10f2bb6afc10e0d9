/* SPDX-License-Identifier: MIT */
/* What every supervising role shares: process setup at start, the child's user, and the supervised run. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>

#include "init.h"

/* Sets sig back to its default action. glibc refuses its two internal signals (32, 33); the kernel does not. */
static void reset_to_default(int sig)
{
	if (signal(sig, SIG_DFL) != SIG_ERR)
		return;
#if defined(__x86_64__) || defined(__aarch64__)
	{
		/* the kernel's struct sigaction on these architectures; all zero is SIG_DFL with no flags */
		struct {
			void *handler;
			unsigned long flags;
			void *restorer;
			uint64_t mask;
		} ksa = {0};

		(void)syscall(SYS_rt_sigaction, sig, &ksa, NULL, sizeof(ksa.mask));
	}
#endif
}

/* The bounding set as kvinit found it, read at start with the ignored signals (one read of /proc). */
static uint64_t bounding_set = UINT64_MAX;

/*
 * Blocks every signal that is not a fault: they are read from a signalfd in the loop, or wait there. And since an
 * ignored signal is dropped by the kernel, blocked or not, it would never reach the signalfd (an ignored SIGCHLD
 * would even stop zombies from being reported): whatever the parent left ignored is set back to default, which
 * the child then inherits too.
 */
void init_process_setup(void)
{
	static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
	uint64_t ignored = UINT64_MAX;
	sigset_t all;

	(void)sigfillset(&all);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		(void)sigdelset(&all, faults[i]);
	(void)sigprocmask(SIG_BLOCK, &all, NULL);

	if (init_proc_status_masks(&ignored, &bounding_set) < 0) {
		ignored = UINT64_MAX;
		bounding_set = UINT64_MAX;
	}
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if ((ignored & (1ULL << (sig - 1))) && sig != SIGKILL && sig != SIGSTOP)
			reset_to_default(sig);
}

/*
 * Resolves KVINIT_USER; returns 0, or having said why -ENOMEM or -EINVAL (whatever else failed, the user named a
 * user kvinit cannot become).
 */
int init_resolve_user(const struct init_options *o, struct init_user *ret_user)
{
	struct init_user user = {0};
	struct init_error err;
	int r;

	r = init_user_resolve(o->user, &user, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r == -ENOMEM ? r : -EINVAL;
	}
	if (user.set && geteuid() != 0 && (user.uid != geteuid() || user.gid != getegid())) {
		log_error("KVINIT_USER='%s': switching users needs root, and kvinit runs as uid %d", o->user,
			  (int)geteuid());
		init_user_free(&user);
		return -EINVAL;
	}
	*ret_user = user;
	return 0;
}

/* Whether cap is in the bounding set kvinit started with (true when that is unknown). */
bool init_bounding_has(int cap)
{
	return cap >= 0 && cap < 64 && (bounding_set & (1ULL << cap));
}

/*
 * Drops kvinit's own privileges, but for keep_caps (those of them the bounding set still has), and supervises argv
 * until the end (init.h says what it returns).
 */
int init_run(const struct init_options *o, const struct init_user *user, char *const *argv, char *const *envp,
	     const struct init_role_hooks *hooks, const int *keep_caps, size_t n_keep)
{
	int keep[8];
	size_t n = 0;
	struct init_supervise_args args = {
		.argv = argv,
		.envp = envp,
		.opt = o,
		.user = user,
		.seccomp = o->seccomp,
	};
	int r;

	if (hooks)
		args.hooks = *hooks;
	if (!o->seccomp)
		log_warn("KVINIT_SECCOMP=no: the child runs without a seccomp filter");
	for (size_t i = 0; i < n_keep && n < sizeof(keep) / sizeof(keep[0]); i++)
		if (init_bounding_has(keep_caps[i]))
			keep[n++] = keep_caps[i];
	r = init_privs_restrict_self(keep, n, user->set, bounding_set);
	if (r < 0) {
		log_error("cannot drop kvinit's own capabilities: %s", strerror(-r));
		return INIT_EXIT_SYSCALL;
	}
	return init_supervise(&args);
}

int init_run_main(struct init_config *c, char **args)
{
	struct init_user user = {0};
	int r;

	if (!args[0]) {
		log_error("run: no command given (usage: kvinit run [OPTIONS] [--] CMD [ARGS...])");
		return -EINVAL;
	}
	r = init_resolve_user(&c->opt, &user);
	if (r == 0)
		r = init_run(&c->opt, &user, args, NULL, NULL, NULL, 0);
	init_user_free(&user);
	return r;
}
