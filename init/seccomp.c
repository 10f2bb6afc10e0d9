/* SPDX-License-Identifier: MIT */
/*
 * The child's seccomp filter: allow everything but a deny list of system calls a cache server never needs and
 * an attacker in it would want (kernel modules, namespaces, mounts, tracing other processes, keyrings, BPF).
 * Denied calls fail with EPERM rather than killing the process, so a library probing for a feature degrades
 * instead of crashing the server. clone3 answers ENOSYS, which makes glibc fall back to clone, whose flags the
 * filter can see: clone with a namespace flag is denied as unshare is.
 *
 * The filter is compiled once, in kvinit, to plain BPF; the child only installs it before exec.
 */
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "init.h"

static const char *const denied[] = {
	"mount",
	"umount",
	"umount2",
	"pivot_root",
	"chroot",
	"move_mount",
	"open_tree",
	"fsopen",
	"fsconfig",
	"fsmount",
	"fspick",
	"mount_setattr",
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"kexec_load",
	"kexec_file_load",
	"init_module",
	"finit_module",
	"delete_module",
	"bpf",
	"perf_event_open",
	"unshare",
	"setns",
	"keyctl",
	"add_key",
	"request_key",
	"swapon",
	"swapoff",
	"reboot",
	"acct",
	"open_by_handle_at",
	"name_to_handle_at",
	"userfaultfd",
	"iopl",
	"ioperm",
	"lookup_dcookie",
	"quotactl",
	"quotactl_fd",
	"nfsservctl",
	"syslog",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"uselib",
	"vhangup",
};

static const unsigned long namespace_flags[] = {
	CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

static int build_ctx(scmp_filter_ctx ctx)
{
	int r;

	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a system call on this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; i < sizeof(namespace_flags) / sizeof(namespace_flags[0]); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, namespace_flags[i], namespace_flags[i]));
		if (r < 0)
			return r;
	}
	return seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
}

int init_seccomp_build(struct init_seccomp *ret)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	_cleanup_close_ int fd = -1;
	struct stat st;
	void *buf;
	int r;

	if (!ctx)
		return -ENOMEM;
	/* kvinit sets no_new_privs itself, after the uid switch; libseccomp must not do it earlier */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r == 0)
		r = build_ctx(ctx);
	if (r == 0) {
		fd = memfd_create("kvinit-seccomp", MFD_CLOEXEC);
		r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	}
	seccomp_release(ctx);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (st.st_size <= 0 || st.st_size % (off_t)sizeof(struct sock_filter) ||
	    st.st_size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS)
		return -EINVAL;
	buf = malloc((size_t)st.st_size);
	if (!buf)
		return -ENOMEM;
	if (pread(fd, buf, (size_t)st.st_size, 0) != st.st_size) {
		free(buf);
		return -EIO;
	}
	ret->filter = buf;
	ret->len = (unsigned short)(st.st_size / (off_t)sizeof(struct sock_filter));
	return 0;
}

void init_seccomp_free(struct init_seccomp *s)
{
	free(s->filter);
	s->filter = NULL;
	s->len = 0;
}

/* In the child, after no_new_privs. */
int init_seccomp_load(const struct init_seccomp *s)
{
	struct sock_fprog prog = {.len = s->len, .filter = s->filter};

	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0 ? -errno : 0;
}
