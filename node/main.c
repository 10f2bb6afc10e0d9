/* SPDX-License-Identifier: MIT */
/*
 * kvinit's main: the roles, above init/ (the PID-1 core), node/ and secrets/. It reads the options of both tables
 * for every role, runs the role and maps its result to the exit status with init_exit_status(): the only place
 * that decides how kvinit exits.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "init.h"
#include "node.h"

#ifndef KVINIT_VERSION
#define KVINIT_VERSION "unknown"
#endif

extern char **environ;

struct role {
	const char *name, *usage, *summary;
	/* Sets the role's own defaults; runs before the INI file, environment and flags are read. */
	int (*defaults)(struct node_config *c, struct init_error *err);
	/* A final status >= 0, or -errno once it has said why. */
	int (*main)(struct node_config *c, char **args);
	/* The exit status of a -errno that is not the user's mistake (init_exit_status). */
	int failure;
	bool supervises; /* runs the loop: signals blocked, read from a signalfd */
	bool own_args;	 /* takes its arguments as they are: no kvinit flags after the role */
};

static int run_main(struct node_config *c, char **args)
{
	return init_run_main(&c->core, args);
}

static const struct role roles[] = {
	{"node", "node [OPTIONS]", "render the server config, run and supervise the server (image default)",
	 node_defaults, node_main, INIT_EXIT_SYSCALL, true, false},
	{"sentinel", "sentinel [OPTIONS]", "run and supervise the Sentinel of a replicated primary (REDIS_MASTER_SET)",
	 node_defaults, node_sentinel_main, INIT_EXIT_SYSCALL, true, false},
	{"cluster-init", "cluster-init [OPTIONS]", "one-shot: wait for REDIS_NODES, create or extend the cluster",
	 node_defaults, node_cluster_init_main, 1, false, false},
	{"health", "health [--live|--ready]", "probe this node: exit 0 healthy, 1 not", node_defaults, node_health_main,
	 1, false, true},
	{"cli", "cli [redis-cli ARGS]", "redis-cli on this node, authenticated from the secret", node_defaults,
	 node_cli_main, INIT_EXIT_SYSCALL, false, true},
	{"render", "render [OPTIONS]", "print the rendered server config, secrets redacted", node_defaults,
	 node_render_main, INIT_EXIT_SYSCALL, false, false},
	{"run", "run [OPTIONS] [--] CMD [ARGS...]", "supervise any command as PID 1 (tini-like)", NULL, run_main,
	 INIT_EXIT_SYSCALL, true, false},
};

static void usage(const struct node_config *c, FILE *out)
{
	(void)fprintf(out, "kvinit %s: PID 1 for Redis and Valkey Cluster containers\n\nUsage:\n", KVINIT_VERSION);
	for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
		(void)fprintf(out, "  kvinit %-34s %s\n", roles[i].usage, roles[i].summary);
	(void)fprintf(out, "  kvinit %-34s %s\n\n", "--version | --help", "");
	(void)fprintf(out, "The role may also come from KVINIT_ROLE.\n\n");
	init_config_help(&c->core, out);
	(void)fprintf(
		out,
		"\nDurations: 8s, 500ms, 2m, 1h; a bare number is seconds. An empty variable counts as unset.\n"
		"Precedence: flag > environment > INI file > default.\n\n"
		"Exit status: the child's; 128+N when signal N killed it; 127 command not found; 126 not\n"
		"executable; 100 usage or configuration error; 111 a system call failed before the child started.\n");
}

int main(int argc, char **argv)
{
	const char *role_name = argc > 1 ? argv[1] : NULL, *env_role = getenv("KVINIT_ROLE");
	const struct role *role = NULL;
	struct node_config c;
	struct init_error err;
	int argind = 0, first = 2, r;

	if (role_name && strcmp(role_name, "--version") == 0) {
		printf("kvinit %s\n", KVINIT_VERSION);
		return 0;
	}
	/* Every role reads both tables: a bad node setting is refused whatever the role, as always. */
	r = node_config_defaults(&c, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		node_config_free(&c);
		return init_exit_status(r, INIT_EXIT_SYSCALL);
	}
	if (role_name && (strcmp(role_name, "--help") == 0 || strcmp(role_name, "-h") == 0)) {
		usage(&c, stdout);
		node_config_free(&c);
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
			log_error("unknown role '%s' (see kvinit --help)", role_name);
		else
			usage(&c, stderr);
		node_config_free(&c);
		return INIT_EXIT_USAGE;
	}

	if (role->supervises)
		init_process_setup();
	if (role->defaults)
		r = role->defaults(&c, &err);
	if (r == 0)
		r = init_config_load(&c.core, role->own_args ? 0 : argc - first, argv + first, &argind, environ, &err);
	if (r == -ECANCELED) {
		usage(&c, stdout);
		node_config_free(&c);
		return 0;
	}
	if (r < 0) {
		/* whatever went wrong, it was while reading what the user gave */
		log_error("%s", err.msg);
		node_config_free(&c);
		return INIT_EXIT_USAGE;
	}
	init_log_setup((enum init_log_level)c.core.opt.log_level, (enum init_log_format)c.core.opt.log_format);

	r = role->main(&c, argv + first + argind);
	node_config_free(&c);
	return init_exit_status(r, role->failure);
}
