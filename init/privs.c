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

static int numeric_user(const char *spec, struct init_user *u)
{
	const char *colon = strchr(spec, ':');
	_cleanup_free_ char *uid_s = strndup(spec, colon ? (size_t)(colon - spec) : strlen(spec));
	struct passwd *pw;
	int64_t uid, gid;

	if (!uid_s)
		return -ENOMEM;
	if (init_parse_int(uid_s, 0, (int64_t)UINT32_MAX - 1, &uid) < 0 ||
	    (colon && init_parse_int(colon + 1, 0, (int64_t)UINT32_MAX - 1, &gid) < 0))
		return -ERANGE;
	u->uid = (uid_t)uid;
	errno = 0;
	pw = getpwuid(u->uid);
	/* A uid without a passwd entry is fine (as with docker --user); its group then defaults to the uid. */
	u->gid = colon ? (gid_t)gid : (pw ? pw->pw_gid : (gid_t)uid);
	if (pw) {
		u->name = strdup(pw->pw_name);
		if (!u->name)
			return -ENOMEM;
	}
	return 0;
}

int init_user_resolve(const char *spec, struct init_user *ret_user, struct init_error *err)
{
	struct init_user u = {.set = true};
	struct passwd *pw;
	int r, n = 0;

	if (!spec || !*spec) {
		*ret_user = (struct init_user){0};
		return 0;
	}
	if (*spec >= '0' && *spec <= '9') {
		r = numeric_user(spec, &u);
		if (r < 0) {
			(void)snprintf(err->msg, sizeof(err->msg), "KVINIT_USER='%s': %s", spec,
				       r == -ENOMEM ? "out of memory" : "uid and gid must be below 4294967295");
			init_user_free(&u);
			return r;
		}
	} else {
		errno = 0;
		pw = getpwnam(spec);
		if (!pw) {
			(void)snprintf(err->msg, sizeof(err->msg),
				       "KVINIT_USER='%s': no such user in the user database%s%s", spec,
				       errno ? ": " : "", errno ? strerror(errno) : "");
			return -ESRCH;
		}
		u.uid = pw->pw_uid;
		u.gid = pw->pw_gid;
		u.name = strdup(pw->pw_name);
		if (!u.name)
			goto oom;
	}

	/* Supplementary groups are looked up now, once: the child must not read /etc/group between fork and exec. */
	if (u.name) {
		int want = 16;

		for (;;) {
			gid_t *groups = realloc(u.groups, (size_t)want * sizeof(gid_t));
			int got = want;

			if (!groups)
				goto oom;
			u.groups = groups;
			if (getgrouplist(u.name, u.gid, u.groups, &got) >= 0) {
				n = got;
				break;
			}
			want = got > want ? got : want * 2;
		}
	} else {
		u.groups = malloc(sizeof(gid_t));
		if (!u.groups)
			goto oom;
		u.groups[0] = u.gid;
		n = 1;
	}
	u.ngroups = n;
	*ret_user = u;
	return 0;
oom:
	init_user_free(&u);
	(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
	return -ENOMEM;
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
