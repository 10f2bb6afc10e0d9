/* SPDX-License-Identifier: MIT */
/*
 * Users and capabilities. kvinit keeps only what it needs to start its child as another user (see
 * init_privs_restrict_self); the child keeps nothing: empty permitted, effective, inheritable, ambient and
 * bounding sets, and no_new_privs, so no setuid binary or file capability can hand anything back.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "init.h"

void init_user_free(struct init_user *u)
{
	free(u->groups);
	free(u->name);
	memset(u, 0, sizeof(*u));
}

/*
 * Users and groups come from /etc/passwd and /etc/group themselves, not through NSS: a container's users live
 * there, and NSS would load its modules (libnss_systemd, ...) into PID 1 for the rest of its life.
 */
#define PASSWD_FILE "/etc/passwd"
#define GROUP_FILE  "/etc/group"

/* Finds a user by name (name != NULL) or by uid; fills name, uid and gid. -ESRCH when there is none. */
static int find_passwd(const char *name, uid_t uid, struct init_user *u)
{
	FILE *f = fopen(PASSWD_FILE, "re");
	struct passwd *pw;
	int r = -ESRCH;

	if (!f)
		return errno == ENOENT ? -ESRCH : -errno;
	while ((pw = fgetpwent(f))) {
		if (name ? strcmp(pw->pw_name, name) != 0 : pw->pw_uid != uid)
			continue;
		u->uid = pw->pw_uid;
		u->gid = pw->pw_gid;
		free(u->name);
		u->name = strdup(pw->pw_name);
		r = u->name ? 0 : -ENOMEM;
		break;
	}
	(void)fclose(f);
	return r;
}

static int add_group(struct init_user *u, gid_t gid)
{
	gid_t *groups;

	for (int i = 0; i < u->ngroups; i++)
		if (u->groups[i] == gid)
			return 0;
	groups = realloc(u->groups, ((size_t)u->ngroups + 1) * sizeof(gid_t));
	if (!groups)
		return -ENOMEM;
	u->groups = groups;
	u->groups[u->ngroups++] = gid;
	return 0;
}

/* The primary group, then every group of /etc/group that lists the user as a member. */
static int find_groups(struct init_user *u)
{
	FILE *f;
	struct group *gr;
	int r = add_group(u, u->gid);

	if (r < 0 || !u->name)
		return r;
	f = fopen(GROUP_FILE, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (r == 0 && (gr = fgetgrent(f)))
		for (char **m = gr->gr_mem; m && *m && r == 0; m++)
			if (strcmp(*m, u->name) == 0)
				r = add_group(u, gr->gr_gid);
	(void)fclose(f);
	return r;
}

static int numeric_user(const char *spec, struct init_user *u)
{
	const char *colon = strchr(spec, ':');
	_cleanup_free_ char *uid_s = strndup(spec, colon ? (size_t)(colon - spec) : strlen(spec));
	int64_t uid, gid = 0;
	int r;

	if (!uid_s)
		return -ENOMEM;
	if (init_parse_int(uid_s, 0, (int64_t)UINT32_MAX - 1, &uid) < 0 ||
	    (colon && init_parse_int(colon + 1, 0, (int64_t)UINT32_MAX - 1, &gid) < 0))
		return -ERANGE;
	/* A uid without a passwd entry is fine (as with docker --user); its group then defaults to the uid. */
	r = find_passwd(NULL, (uid_t)uid, u);
	if (r < 0 && r != -ESRCH)
		return r;
	u->uid = (uid_t)uid;
	if (colon)
		u->gid = (gid_t)gid;
	else if (r == -ESRCH)
		u->gid = (gid_t)uid;
	return 0;
}

int init_user_resolve(const char *spec, struct init_user *ret_user, struct init_error *err)
{
	struct init_user u = {.set = true};
	int r;

	if (!spec || !*spec) {
		*ret_user = (struct init_user){0};
		return 0;
	}
	if (*spec >= '0' && *spec <= '9') {
		r = numeric_user(spec, &u);
		if (r < 0) {
			init_user_free(&u);
			return init_error_set(err, r, "KVINIT_USER='%s': %s", spec,
					      r == -ERANGE ? "uid and gid must be below 4294967295" : strerror(-r));
		}
	} else {
		r = find_passwd(spec, 0, &u);
		if (r < 0) {
			init_user_free(&u);
			return init_error_set(err, r, "KVINIT_USER='%s': %s", spec,
					      r == -ESRCH ? "no such user in " PASSWD_FILE : strerror(-r));
		}
	}
	/* Supplementary groups are looked up now, once: the child must not read /etc/group between clone and exec. */
	r = find_groups(&u);
	if (r < 0) {
		init_user_free(&u);
		return init_error_set(err, r, "KVINIT_USER='%s': cannot read %s: %s", spec, GROUP_FILE, strerror(-r));
	}
	*ret_user = u;
	return 0;
}

/* Capabilities still in kvinit's bounding set after init_privs_restrict_self: all the child has to drop. */
static uint64_t child_bounding = UINT64_MAX;
/* The child's final, empty capability state, allocated by kvinit: the child may not allocate. */
static cap_t child_caps;

int init_privs_prepare_child(void)
{
	if (!child_caps)
		child_caps = cap_init();
	return child_caps ? 0 : -errno;
}

static int drop_bounding(uint64_t mask)
{
	for (cap_value_t c = 0; c <= CAP_LAST_CAP && c < 64; c++)
		/* EINVAL: the running kernel does not know this capability */
		if ((mask & (1ULL << c)) && cap_drop_bound(c) < 0 && errno != EINVAL)
			return -errno;
	return 0;
}

/*
 * Keeps in kvinit's own permitted and effective sets, and its bounding set, only:
 *   CAP_SETPCAP          to empty the child's bounding set before exec;
 *   CAP_SETUID/SETGID    to switch the child to KVINIT_USER (only when a user is set);
 *   CAP_KILL             to signal a child that runs under another uid (likewise);
 * plus what the role asks for. Everything else leaves kvinit for good. `bounding` is the current bounding set
 * (UINT64_MAX when unknown: then every capability is dropped one by one).
 */
int init_privs_restrict_self(const int *extra_caps, size_t n_extra, bool switch_user, uint64_t bounding)
{
	cap_value_t keep[16];
	uint64_t keep_mask = 0;
	size_t n = 0;
	cap_t caps;
	int r;

	if (geteuid() != 0)
		return 0;

	keep[n++] = CAP_SETPCAP;
	if (switch_user) {
		keep[n++] = CAP_SETUID;
		keep[n++] = CAP_SETGID;
		keep[n++] = CAP_KILL;
	}
	for (size_t i = 0; i < n_extra && n < sizeof(keep) / sizeof(keep[0]); i++)
		keep[n++] = extra_caps[i];
	for (size_t i = 0; i < n; i++)
		keep_mask |= 1ULL << keep[i];

	r = drop_bounding(bounding & ~keep_mask);
	if (r < 0)
		return r;
	child_bounding = bounding & keep_mask;

	caps = cap_init();
	if (!caps)
		return -errno;
	if (cap_set_flag(caps, CAP_PERMITTED, (int)n, keep, CAP_SET) < 0 ||
	    cap_set_flag(caps, CAP_EFFECTIVE, (int)n, keep, CAP_SET) < 0 || cap_set_proc(caps) < 0)
		r = -errno;
	(void)cap_free(caps);
	if (r == 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		r = -errno;
	return r;
}

/*
 * In the child, between clone and exec. Order matters: the bounding set can only be emptied while CAP_SETPCAP
 * is still effective, and the uid switch must come before the final clearing of every set.
 */
int init_privs_drop_child(const struct init_user *u)
{
	int r;

	if (geteuid() == 0) {
		r = drop_bounding(child_bounding);
		if (r < 0)
			return r;
		/* Raw system calls: glibc's wrappers would try to synchronise the threads of a process whose memory
		 * this child only borrows. */
		if (u->set && (syscall(SYS_setgroups, (size_t)u->ngroups, u->groups) < 0 ||
			       syscall(SYS_setresgid, u->gid, u->gid, u->gid) < 0 ||
			       syscall(SYS_setresuid, u->uid, u->uid, u->uid) < 0))
			return -errno;
	}
	if (cap_set_proc(child_caps) < 0)
		return -errno;
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return 0;
}
