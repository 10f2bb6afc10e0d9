/* SPDX-License-Identifier: MIT */
/* Role dispatch and exit codes: the only place that decides how kvinit exits. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "init.h"

#ifndef KVINIT_VERSION
#define KVINIT_VERSION "unknown"
#endif

extern char **environ;

struct role {
	const char *name, *usage, *summary;
	/* Sets the role's own defaults; runs before the INI file, environment and flags are read. */
	int (*defaults)(struct init_config *c, struct init_error *err);
	int (*main)(struct init_config *c, char **args);
};

static int run_main(struct init_config *c, char **args);

static const struct role roles[] = {
	{"run", "run [OPTIONS] [--] CMD [ARGS...]", "supervise any command as PID 1 (tini-like)", NULL, run_main},
};

static void usage(FILE *out)
{
	(void)fprintf(out, "kvinit %s: PID 1 for Redis and Valkey Cluster containers\n\nUsage:\n", KVINIT_VERSION);
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		(void)fprintf(out, "  kvinit %-34s %s\n", roles[i].usage, roles[i].summary);
	(void)fprintf(out, "  kvinit %-34s %s\n\n", "--version | --help", "");
	(void)fprintf(out, "The role may also come from KVINIT_ROLE.\n\n");
	init_config_help(out);
	(void)fprintf(
		out,
		"\nDurations: 8s, 500ms, 2m, 1h; a bare number is seconds. An empty variable counts as unset.\n"
		"Precedence: flag > environment > INI file > default.\n\n"
		"Exit status: the child's; 128+N when signal N killed it; 127 command not found; 126 not\n"
		"executable; 100 usage or configuration error; 111 a system call failed before the child started.\n");
}

/* Blocks every signal that is not a fault: they are read from a signalfd in the loop, or wait there. */
static void block_signals(void)
{
	static const int faults[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGSYS};
	sigset_t all;

	(void)sigfillset(&all);
	for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
		(void)sigdelset(&all, faults[i]);
	(void)sigprocmask(SIG_BLOCK, &all, NULL);
}

/*
 * An ignored signal is dropped by the kernel, blocked or not, so it would never reach the signalfd (an ignored
 * SIGCHLD would even stop zombies from being reported). Whatever the parent left ignored is set back to default,
 * which the child then inherits too.
 */
static uint64_t bounding_set = UINT64_MAX; /* read with the ignored signals, for init_privs_restrict_self */

static void reset_ignored_signals(void)
{
	uint64_t ignored = UINT64_MAX;

	if (init_proc_status_masks(&ignored, &bounding_set) < 0) {
		ignored = UINT64_MAX;
		bounding_set = UINT64_MAX;
	}
	for (int sig = 1; sig < NSIG && sig <= 64; sig++)
		if ((ignored & (1ULL << (sig - 1))) && sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
}

static int run_main(struct init_config *c, char **args)
{
	const struct init_options *o = &c->opt;
	struct init_user user = {0};
	struct init_error err;
	int r, code;

	if (!args[0]) {
		log_error("run: no command given (usage: kvinit run [OPTIONS] [--] CMD [ARGS...])");
		return INIT_EXIT_USAGE;
	}
	r = init_user_resolve(o->user, &user, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r == -ENOMEM ? INIT_EXIT_SYSCALL : INIT_EXIT_USAGE;
	}
	if (user.set && geteuid() != 0 && (user.uid != geteuid() || user.gid != getegid())) {
		log_error("KVINIT_USER='%s': switching users needs root, and kvinit runs as uid %d", o->user,
			  (int)geteuid());
		init_user_free(&user);
		return INIT_EXIT_USAGE;
	}
	if (!o->seccomp)
		log_warn("KVINIT_SECCOMP=no: the child runs without a seccomp filter");
	r = init_privs_restrict_self(NULL, 0, user.set, bounding_set);
	if (r < 0) {
		log_error("cannot drop kvinit's own capabilities: %s", strerror(-r));
		code = INIT_EXIT_SYSCALL;
	} else {
		struct init_supervise_args sargs = {
			.argv = args,
			.opt = o,
			.user = &user,
			.seccomp = o->seccomp,
		};

		code = init_supervise(&sargs);
	}
	init_user_free(&user);
	return code;
}

int main(int argc, char **argv)
{
	const char *role_name = argc > 1 ? argv[1] : NULL, *env_role = getenv("KVINIT_ROLE");
	const struct role *role = NULL;
	struct init_config c;
	struct init_error err;
	int argind = 0, first = 2, code;

	block_signals();
	reset_ignored_signals();

	if (role_name && (strcmp(role_name, "--help") == 0 || strcmp(role_name, "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (role_name && strcmp(role_name, "--version") == 0) {
		printf("kvinit %s\n", KVINIT_VERSION);
		return 0;
	}
	/* No role on the command line (or only options): KVINIT_ROLE names it. */
	if ((!role_name || role_name[0] == '-') && env_role && *env_role) {
		role_name = env_role;
		first = 1;
	}
	for (size_t i = 0; role_name && i < sizeof(roles) / sizeof(roles[0]); i++)
		if (strcmp(roles[i].name, role_name) == 0)
			role = &roles[i];
	if (!role) {
		if (role_name)
			(void)fprintf(stderr, "error kvinit[%d]: unknown role '%s' (see kvinit --help)\n",
				      (int)getpid(), role_name);
		else
			usage(stderr);
		return INIT_EXIT_USAGE;
	}

	code = init_config_defaults(&c, &err);
	if (code == 0 && role->defaults)
		code = role->defaults(&c, &err);
	if (code == 0)
		code = init_config_load(&c, argc - first, argv + first, &argind, environ, &err);
	if (code == -ECANCELED) {
		usage(stdout);
		init_config_free(&c);
		return 0;
	}
	if (code < 0) {
		log_error("%s", err.msg);
		init_config_free(&c);
		return INIT_EXIT_USAGE;
	}
	init_log_setup((enum init_log_level)c.opt.log_level, (enum init_log_format)c.opt.log_format);

	code = role->main(&c, argv + first + argind);
	init_config_free(&c);
	return code;
}
