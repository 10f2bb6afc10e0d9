/* SPDX-License-Identifier: MIT */
/* Installs the seccomp filter that init/seccomp_gen.c compiled at build time (the policy is described there). */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "init.h"
#include "seccomp_bpf.h"

/* In the child, after no_new_privs. */
int init_seccomp_load(void)
{
	struct sock_fprog prog = {
		.len = sizeof(seccomp_filter) / sizeof(seccomp_filter[0]),
		.filter = (struct sock_filter *)seccomp_filter,
	};

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}
