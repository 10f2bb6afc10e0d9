/* SPDX-License-Identifier: MIT */
/*
 * Build-time generator of the child's seccomp filter. libseccomp compiles the rules below to BPF for the target
 * architecture once, when kvinit is built; kvinit embeds the result and only installs it in the child. That
 * keeps libseccomp's rule compilation (and its kernel probing) off every container start and out of PID 1's
 * memory.
 *
 * The policy: allow everything but a deny list of system calls a cache server never needs and an attacker in it
 * would want (kernel modules, namespaces, mounts, tracing other processes, keyrings, BPF, clocks). Denied calls
 * fail with EPERM rather than killing the process, so a library that probes for a feature degrades instead of
 * crashing the server. clone3 answers ENOSYS, which makes glibc fall back to clone, whose flags the filter can
 * see: clone with a namespace flag is denied as unshare is. A system call of a foreign ABI (i386 or x32 on
 * x86_64) kills the process.
 *
 * Usage: seccomp_gen TARGET-TRIPLET > seccomp_bpf.h    (the triplet as `cc -dumpmachine` prints it)
 */
#include <errno.h>
#include <linux/filter.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* GNU triplet's first field (and ABI) to libseccomp's architecture name. */
static const char *arch_of(const char *triplet)
{
	static const struct {
		const char *prefix, *arch;
	} map[] = {
		{"x86_64", "x86_64"},	{"i386", "x86"},	{"i486", "x86"},	{"i586", "x86"},
		{"i686", "x86"},	{"aarch64", "aarch64"}, {"arm", "arm"},		{"powerpc64le", "ppc64le"},
		{"powerpc64", "ppc64"}, {"s390x", "s390x"},	{"riscv64", "riscv64"}, {"mips64el", "mipsel64"},
		{"mipsel", "mipsel"},
	};

	if (strncmp(triplet, "x86_64", 6) == 0 && strstr(triplet, "gnux32"))
		return "x32";
	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(triplet, map[i].prefix, strlen(map[i].prefix)) == 0)
			return map[i].arch;
	return NULL;
}

static int add_rules(scmp_filter_ctx ctx)
{
	int r;

	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue;
		/* a call the architecture lacks is a negative pseudo-number; libseccomp then adds nothing */
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

int main(int argc, char **argv)
{
	const char *arch_name = argc == 2 ? arch_of(argv[1]) : NULL;
	scmp_filter_ctx ctx;
	struct sock_filter *prog;
	uint32_t arch;
	struct stat st;
	size_t n;
	int fd, r;

	if (!arch_name || !(arch = seccomp_arch_resolve_name(arch_name))) {
		(void)fprintf(stderr, "seccomp_gen: usage: seccomp_gen TARGET-TRIPLET (unknown: '%s')\n",
			      argc == 2 ? argv[1] : "");
		return 2;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return 1;
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r == 0 && arch != seccomp_arch_native()) {
		r = seccomp_arch_add(ctx, arch);
		if (r == 0)
			r = seccomp_arch_remove(ctx, SCMP_ARCH_NATIVE);
	}
	if (r == 0)
		r = add_rules(ctx);
	fd = memfd_create("seccomp", 0);
	if (r == 0)
		r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	if (r < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || st.st_size % (off_t)sizeof(*prog)) {
		(void)fprintf(stderr, "seccomp_gen: cannot build the filter: %s\n", strerror(r < 0 ? -r : EINVAL));
		return 1;
	}
	n = (size_t)st.st_size / sizeof(*prog);
	if (n > BPF_MAXINSNS || !(prog = malloc((size_t)st.st_size)) ||
	    pread(fd, prog, (size_t)st.st_size, 0) != st.st_size) {
		(void)fprintf(stderr, "seccomp_gen: cannot read the filter back\n");
		return 1;
	}
	(void)printf("/* Generated by init/seccomp_gen.c for %s (%s): do not edit. */\n", argv[1], arch_name);
	(void)printf("static const struct sock_filter seccomp_filter[%zu] = {\n", n);
	for (size_t i = 0; i < n; i++)
		(void)printf("\t{ 0x%04x, %u, %u, 0x%08x },\n", prog[i].code, prog[i].jt, prog[i].jf, prog[i].k);
	(void)printf("};\n");
	free(prog);
	return fflush(stdout) == 0 ? 0 : 1;
}
