/* SPDX-License-Identifier: MIT */
/*
 * `kvinit node`: environment + secrets + an optional base redis.conf become a rendered config on a tmpfs, and the
 * server runs under the PID-1 core as the unprivileged user. `kvinit render` shows the same config, redacted.
 * The steps are in setup.c, the hooks while the server runs in runtime.c; here they run in order, and here the
 * node role picks its exit code: 127 when there is no server to run, else init_exit_status's 100 (a setting that
 * cannot work) or 111 (a system call failed before the server started).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node.h"

extern char **environ;

int node_defaults(struct node_config *c, struct init_error *err)
{
	int r = init_config_set_default(&c->core, INIT_OPT_restart, "on-failure", err);

	return r < 0 ? r : init_config_set_default(&c->core, INIT_OPT_user, "redis", err);
}

int node_main(struct node_config *c, char **args)
{
	struct node_setup s;
	struct init_user user = {0};
	struct init_error err;
	_cleanup_free_ char **env = NULL;
	char *text = NULL;
	int r;

	r = node_setup_start(c, args, "node", true, &s, &err);
	/* the files were checked: kvinit's own connections (helpers, the stop's handover) use them too */
	if (r == 0)
		r = node_tls_client_setup(&c->opt, NULL, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		/* no server to run: a command not found, as for `kvinit run` */
		return r == -ENOENT ? INIT_EXIT_NOTFOUND : init_exit_status(r, INIT_EXIT_SYSCALL);
	}
	r = init_resolve_user(&c->core.opt, &user); /* it says why itself */
	if (r == 0) {
		/* rendered before anything is written: a bad setting leaves no trace */
		r = node_replication_discover(&s, &err);
		if (r == 0)
			r = node_setup_render(&s, false, &text, &err);
		if (r == 0)
			r = node_setup_data_dir(&s, &user, &err);
		if (r == 0) {
			node_check_overcommit();
			node_setup_tls_access(&s, &user);
		}
		if (r == 0)
			r = node_setup_nodes_conf(&s, &err);
		if (r == 0)
			r = node_setup_write_config(&s, &user, text, &err);
		if (r == 0)
			r = node_setup_child_environment(environ, &env, &err);
		if (r < 0)
			log_error("%s", err.msg);
	}
	node_setup_text_free(text);
	if (r == 0)
		r = node_supervise(&s, &user, env);
	init_user_free(&user);
	node_setup_free(&s);
	return init_exit_status(r, INIT_EXIT_SYSCALL);
}

int node_render_main(struct node_config *c, char **args)
{
	struct node_setup s;
	struct init_error err;
	char *text = NULL;
	int r;

	r = node_setup_start(c, args, "render", true, &s, &err);
	if (r < 0) {
		log_error("%s", err.msg);
		return r == -ENOENT ? INIT_EXIT_NOTFOUND : init_exit_status(r, INIT_EXIT_SYSCALL);
	}
	r = node_setup_render(&s, true, &text, &err);
	if (r == 0 && (fputs(text, stdout) == EOF || fflush(stdout) != 0)) {
		int e = errno ? errno : EIO;

		r = init_error_set(&err, -e, "cannot write the config to stdout: %s", strerror(e));
	}
	if (r < 0)
		log_error("%s", err.msg);
	free(text);
	node_setup_free(&s);
	return init_exit_status(r, INIT_EXIT_SYSCALL);
}
