/* SPDX-License-Identifier: MIT */
/* Inside node/: what sentinel.c (the role) and sentinel_rotate.c (applying a rotation) share. */
#ifndef KVINIT_NODE_SENTINEL_H
#define KVINIT_NODE_SENTINEL_H

#include <limits.h>

#include "cluster.h"

#define SENTINEL_CONF_NAME "sentinel.conf"
#define SENTINEL_CONF_MAX  (4 * 1024 * 1024)
#define RETRY_MSEC	   200
#define REPORT_EVERY_USEC  (10 * USEC_PER_SEC)

enum secret { SECRET_DATA, SECRET_OWN, SECRET__COUNT };

struct sentinel_run;

/* A password and its files: the nodes', or the Sentinels' own when it has a file of its own. */
struct sentinel_secret {
	const char *what;
	struct secrets_rotation *rot;
	const struct secrets_paths *paths;
	const struct secrets_set *initial;
	bool watched;
	struct secrets_watch *watch;
	struct init_timer expiry;
	struct sentinel_run *run;
};

struct sentinel_run {
	struct node_setup *setup; /* the nodes' password (setup->rotation) and the server */
	const struct node_options *o;
	const struct init_user *user;
	struct init_loop *loop;
	char conf_path[PATH_MAX];
	/* the Sentinels' own password when REDIS_SENTINEL_PASSWORD_FILE names one */
	bool own_file;
	struct secrets_paths own_paths;
	struct secrets_set own_initial;
	struct secrets_rotation own_rot;
	struct sentinel_secret secret[SECRET__COUNT];
	/* every own password the Sentinel may hold: what it was given since its last completed rotation */
	struct secrets_logins logins;
	pid_t rotate_pid;
	bool rotate_again, started, stopping;
	/*
	 * With TLS: the certificate files' watch and the CA staging (tls_rotate.c). A Sentinel has no CONFIG SET, so
	 * a new set that passes the checks is loaded by restarting the Sentinel (it keeps what it knows in
	 * sentinel.conf), and a helper confirms with a handshake that it serves the new certificate.
	 */
	struct init_supervisor *sv;
	struct node_tls_rotation *tls;
	pid_t confirm_pid;
	bool tls_restart; /* the Sentinel is restarted to load the set given */
};

/* The Sentinel's own passwords: its own rotation, or the nodes'. */
static inline const struct secrets_rotation *sentinel_own_rotation(const struct sentinel_run *run)
{
	return run->own_file ? &run->own_rot : &run->setup->rotation;
}

static inline const struct secrets_value *sentinel_current(const struct secrets_rotation *rot)
{
	return rot->n ? &rot->entry[rot->current].value : NULL;
}

/* The rotation helper's body (init_fork_helper): applies the run's accepted passwords to the Sentinel. */
int node_sentinel_rotate_apply(void *userdata);

#endif
