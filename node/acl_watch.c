/* SPDX-License-Identifier: MIT */
/*
 * The users file in kvinit's loop (for runtime.c): the watch on the users file and the password files it names,
 * the check of a changed file, and the users on their way to the server. The server is given them by the users
 * helper, a process beside it (node_acl_watch_apply: ACL SETUSER and DELUSER, acl.c).
 */
#include <errno.h>
#include <string.h>

#include "node.h"

struct node_acl_watch {
	struct node_setup *setup; /* its users are those the server holds (applied) */
	node_acl_watch_fn start_helper;
	void *userdata;
	struct secrets_watch *watch;
	/* the users file's users on their way to the server */
	struct node_acl wanted;
	bool pending;
	/* users a helper that did not finish may have set: set again, or deleted, by the next one */
	char **stale;
	size_t n_stale;
	bool stopping;
};

/* The users of acl may be on the server without being applied: the next helper sets or deletes them. */
static void mark_stale(struct node_acl_watch *u, const struct node_acl *acl)
{
	for (size_t i = 0; i < acl->n; i++) {
		bool known = false;
		char **grown;

		for (size_t k = 0; k < u->n_stale && !known; k++)
			known = strcmp(u->stale[k], acl->user[i].name) == 0;
		if (known)
			continue;
		grown = realloc(u->stale, (u->n_stale + 1) * sizeof(*grown));
		if (!grown)
			return; /* out of memory: such a user may linger until the next change */
		u->stale = grown;
		u->stale[u->n_stale] = strdup(acl->user[i].name);
		if (u->stale[u->n_stale])
			u->n_stale++;
	}
}

static void stale_free(struct node_acl_watch *u)
{
	for (size_t i = 0; i < u->n_stale; i++)
		free(u->stale[i]);
	free(u->stale);
	u->stale = NULL;
	u->n_stale = 0;
}

/* The users file and the password files it names, for the watch. */
static void watch_paths(struct node_acl_watch *u, const struct node_acl *acl)
{
	_cleanup_free_ const char **paths = calloc(acl->n_files + 1, sizeof(*paths));

	if (!paths)
		return;
	paths[0] = u->setup->users_path;
	for (size_t i = 0; i < acl->n_files; i++)
		paths[i + 1] = acl->files[i];
	if (secrets_watch_set_paths(u->watch, paths, acl->n_files + 1) < 0)
		log_warn("users file: out of memory, a change of its password files may go unseen, ignoring");
}

/*
 * The users file or one of its password files changed: a file that passes its checks goes to the server (the
 * users helper); one that does not is ignored, loudly, and the server keeps the users it has.
 */
static void on_changed(void *userdata)
{
	struct node_acl_watch *u = userdata;
	struct node_acl fresh = {0};
	struct init_error err;
	int r;

	if (u->stopping)
		return;
	r = node_acl_load(u->setup->users_path, &fresh, &err);
	if (r < 0) {
		log_error("%s; the file is ignored, the running users stay", err.msg);
		return;
	}
	watch_paths(u, &fresh);
	if (node_acl_equal(&fresh, u->pending ? &u->wanted : &u->setup->users)) {
		node_acl_free(&fresh);
		return;
	}
	log_info("users file: %zu user%s now, applying", fresh.n, fresh.n == 1 ? "" : "s");
	if (u->pending)
		mark_stale(u, &u->wanted);
	node_acl_free(&u->wanted);
	u->wanted = fresh;
	u->pending = true;
	u->start_helper(u->userdata);
}

int node_acl_watch_new(struct node_setup *s, struct init_loop *loop, node_acl_watch_fn start_helper, void *userdata,
		       struct node_acl_watch **ret)
{
	struct node_acl_watch *u;
	int r;

	if (!s->users_path) {
		*ret = NULL;
		return 0;
	}
	u = calloc(1, sizeof(*u));
	if (!u)
		return -ENOMEM;
	*u = (struct node_acl_watch){.setup = s, .start_helper = start_helper, .userdata = userdata};
	r = secrets_watch_files(loop, (const char *const *)&s->users_path, 1, NODE_ACL_FILE_MAX, SECRETS_WATCH_BENEATH,
				(uint64_t)s->c->opt.secret_poll * USEC_PER_MSEC, on_changed, u, &u->watch);
	if (r < 0)
		log_error("cannot watch the users file: %s; a change needs a restart", strerror(-r));
	else
		watch_paths(u, &s->users);
	*ret = u;
	return 0;
}

int node_acl_watch_apply(const struct node_acl_watch *u, const struct secrets_value *login, size_t n_login)
{
	const struct node_setup *s = u->setup;

	return node_acl_apply(&s->c->opt, &s->rotation, login, n_login, &u->wanted, &s->users,
			      (const char *const *)u->stale, u->n_stale);
}

bool node_acl_watch_done(struct node_acl_watch *u, bool ok)
{
	if (!ok) {
		mark_stale(u, &u->wanted);
		node_acl_free(&u->wanted);
		u->pending = false;
		if (!u->stopping)
			log_error("users file: not applied (see above); a restart starts with the users before this "
				  "change");
		return false;
	}
	node_acl_free(&u->setup->users);
	u->setup->users = u->wanted;
	u->wanted = (struct node_acl){0};
	u->pending = false;
	stale_free(u);
	return true;
}

void node_acl_watch_stop(struct node_acl_watch *u)
{
	if (u)
		u->stopping = true;
}

void node_acl_watch_free(struct node_acl_watch *u)
{
	if (!u)
		return;
	secrets_watch_free(u->watch);
	node_acl_free(&u->wanted);
	stale_free(u);
	free(u);
}
