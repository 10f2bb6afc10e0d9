/* probe: child program for the kvinit integration tests.
 *
 * Every subcommand prints machine-readable "key=value" lines on stdout.
 * Files given as arguments are written atomically (temp file + rename) when
 * they are "ready"/"pid" files, and appended to with O_APPEND when they are
 * logs written by several processes.
 *
 *   probe status                      credentials, capabilities, hardening, signals, fds, pgid/sid
 *   probe exit N                      exit with status N
 *   probe kill-self SIG               die by signal SIG (no core dump)
 *   probe sleep SECONDS               sleep, default signal dispositions, exit 0
 *   probe hold READY SECONDS          write READY (pid=...), sleep, exit 0
 *   probe wait-signal READY SECONDS   catch the forwarded signals, print signal=N, then die by it
 *                                     (SIGWINCH, whose default is "ignore": exit 128+28); exit 98 on timeout
 *   probe group-signal READY LOG SECONDS
 *                                     child and a grandchild in the same process group; both log
 *                                     "<who>_got=N" to LOG for SIGUSR1/SIGUSR2/SIGHUP and keep running
 *   probe orphans N LIFE_MS HOLD_S LOG READY
 *                                     fork N grandchildren that are orphaned (their parent exits),
 *                                     each logs "reparent=PPID pid=PID" once orphaned, lives LIFE_MS, exits;
 *                                     the probe then writes READY and sleeps HOLD_S
 *   probe ignore-term PIDS SECONDS    ignore SIGTERM/SIGINT, fork a grandchild (same pgid, also ignoring),
 *                                     write "child=P grandchild=G" to PIDS, sleep
 *   probe term-leave PIDS SECONDS     exit 0 on SIGTERM/SIGINT, but leave a grandchild (same pgid) that
 *                                     ignores them; write "child=P grandchild=G" to PIDS, sleep
 *   probe runs LOG SPEC               restart helper: run index i = number of "start" lines in LOG;
 *                                     SPEC is a comma list "MS:CODE" (CODE may be kSIG), entry i (or the
 *                                     last one) says how long to live and how to end
 *   probe syscall[s] [NAME...]        try each syscall in a forked child, print NAME=ERRNO-NAME|OK|SIGNAL-N
 *   probe seccomp-reach NAME...       whether each system call gets past the seccomp filters already in place:
 *                                     a child stacks a filter of its own that hands NAME to this process
 *                                     (SECCOMP_RET_USER_NOTIF, which loses to an earlier filter's ERRNO or
 *                                     KILL), then makes the call; prints NAME=REACHED when it arrived here,
 *                                     else what the child got (NAME=EPERM, NAME=SIGNAL-31, ...), whatever the
 *                                     child's capabilities; NAME=NOT-ON-ARCH or NAME=UNKNOWN otherwise
 *   probe noreap-parent STATUS LINGER_S -- CMD [ARGS...]
 *                                     fork+exec CMD, wait for that pid only (never reap anything else),
 *                                     write "exit=N pid=P" to STATUS, then linger LINGER_S seconds
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef CLONE_NEWCGROUP
#define CLONE_NEWCGROUP 0x02000000
#endif
#ifndef CLONE_NEWTIME
#define CLONE_NEWTIME 0x00000080
#endif

static const char *progname = "probe";

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;
	(void)fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
	exit(90);
}

static long parse_long(const char *s, const char *what)
{
	char *end = NULL;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0')
		die("bad %s: %s", what, s);
	return v;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* Sleep up to `seconds`, resuming after caught signals. */
static void sleep_seconds(double seconds)
{
	double deadline = mono_now() + seconds;
	for (;;) {
		double left = deadline - mono_now();
		if (left <= 0)
			return;
		struct timespec ts;
		ts.tv_sec = (time_t)left;
		ts.tv_nsec = (long)((left - (double)ts.tv_sec) * 1e9);
		nanosleep(&ts, NULL);
	}
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(fd, buf, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static void append_line(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	if (write_all(fd, line, strlen(line)) < 0)
		die("write %s: %s", path, strerror(errno));
	close(fd);
}

static void write_atomic(const char *path, const char *content)
{
	char tmp[PATH_MAX];
	(void)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
	if (fd < 0)
		die("open %s: %s", tmp, strerror(errno));
	if (write_all(fd, content, strlen(content)) < 0)
		die("write %s: %s", tmp, strerror(errno));
	if (fsync(fd) < 0 && errno != EINVAL)
		die("fsync %s: %s", tmp, strerror(errno));
	close(fd);
	if (rename(tmp, path) < 0)
		die("rename %s: %s", tmp, strerror(errno));
}

static void no_core(void)
{
	struct rlimit rl = {0, 0};
	setrlimit(RLIMIT_CORE, &rl);
}

static void set_handler(int sig, void (*fn)(int))
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, &sa, NULL) < 0)
		die("sigaction %d: %s", sig, strerror(errno));
}

static void write_ready(const char *path)
{
	char buf[128];
	(void)snprintf(buf, sizeof(buf), "pid=%ld\nppid=%ld\n", (long)getpid(), (long)getppid());
	write_atomic(path, buf);
}

/* ---------------------------------------------------------------- status */

static void print_proc_status_fields(void)
{
	static const char *const keys[] = {"CapInh",  "CapPrm", "CapEff", "CapBnd", "CapAmb", "NoNewPrivs",
					   "Seccomp", "SigBlk", "SigIgn", "SigCgt", NULL};
	FILE *f = fopen("/proc/self/status", "re");
	if (!f)
		die("open /proc/self/status: %s", strerror(errno));
	char line[512];
	while (fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = '\0';
		for (int i = 0; keys[i]; i++) {
			if (strcmp(line, keys[i]) == 0) {
				char *v = colon + 1;
				while (*v == ' ' || *v == '\t')
					v++;
				v[strcspn(v, "\n")] = '\0';
				printf("%s=%s\n", keys[i], v);
			}
		}
	}
	(void)fclose(f);
}

static int cmp_int(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static void print_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	if (!d)
		die("opendir /proc/self/fd: %s", strerror(errno));
	int self = dirfd(d);
	int fds[4096] = {0};
	size_t n = 0;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		int fd = atoi(e->d_name);
		if (fd == self)
			continue;
		if (n < sizeof(fds) / sizeof(fds[0]))
			fds[n++] = fd;
	}
	closedir(d);
	qsort(fds, n, sizeof(int), cmp_int);
	printf("fds=");
	for (size_t i = 0; i < n; i++)
		printf("%s%d", i ? "," : "", fds[i]);
	printf("\n");
	for (size_t i = 0; i < n; i++) {
		char p[64], target[PATH_MAX];
		(void)snprintf(p, sizeof(p), "/proc/self/fd/%d", fds[i]);
		ssize_t len = readlink(p, target, sizeof(target) - 1);
		if (len < 0)
			len = 0;
		target[len] = '\0';
		printf("fd%d=%s\n", fds[i], target);
	}
}

static int cmd_status(void)
{
	uid_t ru, eu, su;
	gid_t rg, eg, sg;
	getresuid(&ru, &eu, &su);
	getresgid(&rg, &eg, &sg);
	printf("pid=%ld\nppid=%ld\npgid=%ld\nsid=%ld\n", (long)getpid(), (long)getppid(), (long)getpgrp(),
	       (long)getsid(0));
	printf("uid=%u\neuid=%u\nsuid=%u\ngid=%u\negid=%u\nsgid=%u\n", ru, eu, su, rg, eg, sg);
	gid_t groups[NGROUPS_MAX + 1];
	int ng = getgroups(NGROUPS_MAX + 1, groups);
	printf("groups=");
	for (int i = 0; i < ng; i++)
		printf("%s%u", i ? "," : "", groups[i]);
	printf("\n");
	print_proc_status_fields();
	printf("dumpable=%d\n", prctl(PR_GET_DUMPABLE, 0, 0, 0, 0));
	print_fds();
	(void)fflush(stdout);
	return 0;
}

/* ---------------------------------------------------------- wait-signal */

static const int forwarded_signals[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};

static void on_forwarded(int sig)
{
	char buf[32];
	int len = snprintf(buf, sizeof(buf), "signal=%d\n", sig);
	if (len > 0)
		(void)write_all(1, buf, (size_t)len);
	if (sig == SIGWINCH)
		_exit(128 + sig);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(sig, &sa, NULL);
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	(void)raise(sig);
	_exit(97);
}

static int cmd_wait_signal(const char *ready, double seconds)
{
	no_core();
	for (size_t i = 0; i < sizeof(forwarded_signals) / sizeof(forwarded_signals[0]); i++)
		set_handler(forwarded_signals[i], on_forwarded);
	write_ready(ready);
	sleep_seconds(seconds);
	printf("timeout=1\n");
	(void)fflush(stdout);
	return 98;
}

/* --------------------------------------------------------- group-signal */

static int group_log_fd = -1;
static const char *group_who = "child";

static void on_group_signal(int sig)
{
	char buf[64];
	int len = snprintf(buf, sizeof(buf), "%s_got=%d\n", group_who, sig);
	if (len > 0 && group_log_fd >= 0)
		(void)write_all(group_log_fd, buf, (size_t)len);
}

static int cmd_group_signal(const char *ready, const char *log, double seconds)
{
	group_log_fd = open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
	if (group_log_fd < 0)
		die("open %s: %s", log, strerror(errno));
	set_handler(SIGUSR1, on_group_signal);
	set_handler(SIGUSR2, on_group_signal);
	set_handler(SIGHUP, on_group_signal);
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pid_t g = fork();
	if (g < 0)
		die("fork: %s", strerror(errno));
	if (g == 0) {
		group_who = "grandchild";
		close(sync[0]);
		(void)write_all(sync[1], "x", 1);
		close(sync[1]);
		sleep_seconds(seconds);
		_exit(0);
	}
	close(sync[1]);
	char c;
	while (read(sync[0], &c, 1) < 0 && errno == EINTR)
		;
	close(sync[0]);
	char buf[128];
	(void)snprintf(buf, sizeof(buf), "pid=%ld\ngrandchild=%ld\n", (long)getpid(), (long)g);
	write_atomic(ready, buf);
	sleep_seconds(seconds);
	return 0;
}

/* -------------------------------------------------------------- orphans */

static int cmd_orphans(long n, long life_ms, double hold, const char *log, const char *ready)
{
	pid_t mid = fork();
	if (mid < 0)
		die("fork: %s", strerror(errno));
	if (mid == 0) {
		pid_t me = getpid();
		for (long i = 0; i < n; i++) {
			pid_t g = fork();
			if (g < 0) {
				(void)fprintf(stderr, "probe: fork grandchild %ld: %s\n", i, strerror(errno));
				_exit(91);
			}
			if (g == 0) {
				/* wait until orphaned, i.e. the intermediate parent is gone */
				double deadline = mono_now() + 30.0;
				while (getppid() == me && mono_now() < deadline)
					sleep_ms(2);
				char line[96];
				(void)snprintf(line, sizeof(line), "reparent=%ld pid=%ld\n", (long)getppid(),
					       (long)getpid());
				append_line(log, line);
				sleep_ms(life_ms);
				_exit(0);
			}
		}
		_exit(0);
	}
	int st;
	while (waitpid(mid, &st, 0) < 0 && errno == EINTR)
		;
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		die("intermediate failed: status %d", st);
	write_ready(ready);
	printf("pid=%ld\nppid=%ld\norphans=%ld\n", (long)getpid(), (long)getppid(), n);
	(void)fflush(stdout);
	sleep_seconds(hold);
	return 0;
}

/* ---------------------------------------------------- ignore-term / term-leave */

static void on_term_exit(int sig)
{
	(void)sig;
	_exit(0);
}

static int spawn_pair(const char *pids, double seconds, int child_exits_on_term)
{
	if (child_exits_on_term) {
		set_handler(SIGTERM, on_term_exit);
		set_handler(SIGINT, on_term_exit);
	} else {
		set_handler(SIGTERM, SIG_IGN);
		set_handler(SIGINT, SIG_IGN);
	}
	int sync[2];
	if (pipe2(sync, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	pid_t g = fork();
	if (g < 0)
		die("fork: %s", strerror(errno));
	if (g == 0) {
		set_handler(SIGTERM, SIG_IGN);
		set_handler(SIGINT, SIG_IGN);
		close(sync[0]);
		(void)write_all(sync[1], "x", 1);
		close(sync[1]);
		sleep_seconds(seconds + 5);
		_exit(0);
	}
	close(sync[1]);
	char c;
	while (read(sync[0], &c, 1) < 0 && errno == EINTR)
		;
	close(sync[0]);
	char buf[128];
	(void)snprintf(buf, sizeof(buf), "child=%ld\ngrandchild=%ld\n", (long)getpid(), (long)g);
	write_atomic(pids, buf);
	sleep_seconds(seconds);
	return 0;
}

/* ----------------------------------------------------------------- runs */

static int cmd_runs(const char *log, const char *spec)
{
	long index = 0;
	FILE *f = fopen(log, "re");
	if (f) {
		char line[256];
		while (fgets(line, sizeof(line), f))
			if (strncmp(line, "start ", 6) == 0)
				index++;
		(void)fclose(f);
	}
	/* pick entry `index` of spec, or the last one */
	char *copy = strdup(spec);
	if (!copy)
		die("oom");
	char *entries[256];
	int n = 0;
	for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok && n < 256; tok = strtok_r(NULL, ",", &save))
		entries[n++] = tok;
	if (n == 0)
		die("empty spec");
	char *entry = entries[index < n ? index : n - 1];
	char *colon = strchr(entry, ':');
	if (!colon)
		die("bad spec entry %s", entry);
	*colon = '\0';
	long ms = parse_long(entry, "ms");
	const char *how = colon + 1;

	char line[160];
	(void)snprintf(line, sizeof(line), "start %ld %.6f %ld\n", index, mono_now(), (long)getpid());
	append_line(log, line);
	sleep_ms(ms);
	if (how[0] == 'k') {
		long sig = parse_long(how + 1, "signal");
		(void)snprintf(line, sizeof(line), "exit %ld %.6f k%ld\n", index, mono_now(), sig);
		append_line(log, line);
		no_core();
		(void)signal((int)sig, SIG_DFL);
		(void)raise((int)sig);
		return 99;
	}
	long code = parse_long(how, "code");
	(void)snprintf(line, sizeof(line), "exit %ld %.6f %ld\n", index, mono_now(), code);
	append_line(log, line);
	free(copy);
	return (int)code;
}

/* ------------------------------------------------------------- syscalls */

static long raw_ret(long r)
{
	return r < 0 ? errno : 0;
}

static int reap_clone_child(long r)
{
	if (r < 0)
		return errno;
	if (r == 0)
		syscall(SYS_exit_group, 0);
	int st;
	while (waitpid((pid_t)r, &st, __WALL) < 0 && errno == EINTR)
		;
	return 0;
}

static int try_clone_flags(unsigned long flags)
{
	long r = syscall(SYS_clone, flags | SIGCHLD, 0UL, NULL, NULL, 0UL);
	return reap_clone_child(r);
}

struct probe_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls;
};

static int try_clone3(void)
{
	struct probe_clone_args a;
	memset(&a, 0, sizeof(a));
	a.exit_signal = SIGCHLD;
	long r = syscall(SYS_clone3, &a, sizeof(a));
	return reap_clone_child(r);
}

static void *thread_fn(void *arg)
{
	return arg;
}

static int try_thread(void)
{
	pthread_t t;
	int r = pthread_create(&t, NULL, thread_fn, NULL);
	if (r != 0)
		return r;
	pthread_join(t, NULL);
	return 0;
}

static int try_fork(void)
{
	pid_t p = fork();
	if (p < 0)
		return errno;
	if (p == 0)
		_exit(0);
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	return 0;
}

/* i386 ABI via int $0x80: a filter that does not check the architecture lets these through. */
static long int80(long nr, long a, long b, long c)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("int $0x80"
			 : "=a"(ret)
			 : "a"(nr), "b"(a), "c"(b), "d"(c)
			 : "memory", "r8", "r9", "r10", "r11");
	return ret;
#else
	(void)nr, (void)a, (void)b, (void)c;
	return -ENOSYS;
#endif
}

static int int80_errno(long ret)
{
	return ret < 0 && ret > -4096 ? (int)-ret : 0;
}

static int sc_mount(void)
{
	/* bad fs type pointer: EFAULT if it reaches the kernel, whatever the privileges */
	return (int)raw_ret(syscall(SYS_mount, "none", "/nonexistent-kvinit-probe", (char *)1, 0UL, NULL));
}
static int sc_umount2(void)
{
	return (int)raw_ret(syscall(SYS_umount2, "/nonexistent-kvinit-probe", 0x40000000));
}
static int sc_pivot_root(void)
{
	return (int)raw_ret(syscall(SYS_pivot_root, (char *)1, (char *)1));
}
static int sc_ptrace(void)
{
	/* PTRACE_TRACEME in a throwaway child: succeeds without a filter */
	return (int)raw_ret(syscall(SYS_ptrace, PTRACE_TRACEME, 0, NULL, NULL));
}
static int sc_ptrace_peek(void)
{
	return (int)raw_ret(syscall(SYS_ptrace, PTRACE_PEEKDATA, 0x3ffffff0, NULL, NULL));
}
static int sc_process_vm_readv(void)
{
	return (int)raw_ret(syscall(SYS_process_vm_readv, getpid(), NULL, 0UL, NULL, 0UL, 1UL));
}
static int sc_process_vm_writev(void)
{
	return (int)raw_ret(syscall(SYS_process_vm_writev, getpid(), NULL, 0UL, NULL, 0UL, 1UL));
}
static int sc_kexec_load(void)
{
	return (int)raw_ret(syscall(SYS_kexec_load, 0UL, 0UL, NULL, 0xdead0000UL));
}
static int sc_kexec_file_load(void)
{
	return (int)raw_ret(syscall(SYS_kexec_file_load, -1, -1, 0UL, NULL, 0xdead0000UL));
}
static int sc_init_module(void)
{
	return (int)raw_ret(syscall(SYS_init_module, NULL, 0UL, ""));
}
static int sc_finit_module(void)
{
	return (int)raw_ret(syscall(SYS_finit_module, -1, "", 0));
}
static int sc_delete_module(void)
{
	return (int)raw_ret(syscall(SYS_delete_module, "kvinit_probe_nonexistent", 0));
}
static int sc_bpf(void)
{
	return (int)raw_ret(syscall(SYS_bpf, 9999, NULL, 0));
}
static int sc_perf_event_open(void)
{
	return (int)raw_ret(syscall(SYS_perf_event_open, NULL, 0, -1, -1, ~0UL));
}
static int sc_unshare(void)
{
	return (int)raw_ret(syscall(SYS_unshare, CLONE_NEWUTS));
}
static int sc_unshare_user(void)
{
	return (int)raw_ret(syscall(SYS_unshare, CLONE_NEWUSER));
}
static int sc_setns(void)
{
	return (int)raw_ret(syscall(SYS_setns, -1, 0));
}
static int sc_keyctl(void)
{
	return (int)raw_ret(syscall(SYS_keyctl, 9999, 0UL, 0UL, 0UL, 0UL));
}
static int sc_add_key(void)
{
	return (int)raw_ret(syscall(SYS_add_key, NULL, NULL, NULL, 0UL, 0));
}
static int sc_request_key(void)
{
	return (int)raw_ret(syscall(SYS_request_key, NULL, NULL, NULL, 0));
}
static int sc_swapon(void)
{
	return (int)raw_ret(syscall(SYS_swapon, NULL, 0x7fffffff));
}
static int sc_swapoff(void)
{
	return (int)raw_ret(syscall(SYS_swapoff, NULL));
}
static int sc_reboot(void)
{
	/* wrong magic: EINVAL (or EPERM without CAP_SYS_BOOT) */
	return (int)raw_ret(syscall(SYS_reboot, 0, 0, 0, NULL));
}
static int sc_acct(void)
{
	return (int)raw_ret(syscall(SYS_acct, (char *)1));
}
static int sc_open_by_handle_at(void)
{
	return (int)raw_ret(syscall(SYS_open_by_handle_at, -1, NULL, 0));
}
static int sc_userfaultfd(void)
{
	return (int)raw_ret(syscall(SYS_userfaultfd, 1 | 0x40000000));
}
static int sc_clone_newuser(void)
{
	return try_clone_flags(CLONE_NEWUSER);
}
static int sc_clone_newns(void)
{
	return try_clone_flags(CLONE_NEWNS);
}
static int sc_clone_newpid(void)
{
	return try_clone_flags(CLONE_NEWPID);
}
static int sc_clone_newnet(void)
{
	return try_clone_flags(CLONE_NEWNET);
}
static int sc_clone_newuts(void)
{
	return try_clone_flags(CLONE_NEWUTS);
}
static int sc_clone_newipc(void)
{
	return try_clone_flags(CLONE_NEWIPC);
}
static int sc_clone_newcgroup(void)
{
	return try_clone_flags(CLONE_NEWCGROUP);
}
static int sc_clone_plain(void)
{
	return try_clone_flags(0);
}
static int sc_clone3(void)
{
	return try_clone3();
}
static int sc_i386_mount(void)
{
	/* i386 mount = 21; bad type pointer */
	return int80_errno(int80(21, 0, 0, 1));
}
static int sc_i386_unshare(void)
{
	/* i386 unshare = 310 */
	return int80_errno(int80(310, CLONE_NEWUSER, 0, 0));
}
/* x32 ABI: the x86_64 syscall instruction with __X32_SYSCALL_BIT set; a filter for x86_64 alone must kill it. */
static int sc_x32_getpid(void)
{
#if defined(__x86_64__)
	return (int)raw_ret(syscall(0x40000000L | SYS_getpid));
#else
	return ENOSYS;
#endif
}
static int sc_i386_getpid(void)
{
	/* i386 getpid = 20: reports success when the i386 ABI is usable at all */
	long r = int80(20, 0, 0, 0);
	return r < 0 && r > -4096 ? (int)-r : 0;
}

struct sc_entry {
	const char *name;
	int (*fn)(void);
};

static const struct sc_entry sc_table[] = {
	{"mount", sc_mount},
	{"umount2", sc_umount2},
	{"pivot_root", sc_pivot_root},
	{"ptrace", sc_ptrace},
	{"ptrace_peek", sc_ptrace_peek},
	{"process_vm_readv", sc_process_vm_readv},
	{"process_vm_writev", sc_process_vm_writev},
	{"kexec_load", sc_kexec_load},
	{"kexec_file_load", sc_kexec_file_load},
	{"init_module", sc_init_module},
	{"finit_module", sc_finit_module},
	{"delete_module", sc_delete_module},
	{"bpf", sc_bpf},
	{"perf_event_open", sc_perf_event_open},
	{"unshare", sc_unshare},
	{"unshare_user", sc_unshare_user},
	{"setns", sc_setns},
	{"keyctl", sc_keyctl},
	{"add_key", sc_add_key},
	{"request_key", sc_request_key},
	{"swapon", sc_swapon},
	{"swapoff", sc_swapoff},
	{"reboot", sc_reboot},
	{"acct", sc_acct},
	{"open_by_handle_at", sc_open_by_handle_at},
	{"userfaultfd", sc_userfaultfd},
	{"clone_newuser", sc_clone_newuser},
	{"clone_newns", sc_clone_newns},
	{"clone_newpid", sc_clone_newpid},
	{"clone_newnet", sc_clone_newnet},
	{"clone_newuts", sc_clone_newuts},
	{"clone_newipc", sc_clone_newipc},
	{"clone_newcgroup", sc_clone_newcgroup},
	{"clone_plain", sc_clone_plain},
	{"clone3", sc_clone3},
	{"fork", try_fork},
	{"thread", try_thread},
	{"x32_getpid", sc_x32_getpid},
	{"i386_getpid", sc_i386_getpid},
	{"i386_mount", sc_i386_mount},
	{"i386_unshare", sc_i386_unshare},
	{NULL, NULL},
};

static void run_one_syscall(const struct sc_entry *e)
{
	(void)fflush(stdout);
	pid_t p = fork();
	if (p < 0)
		die("fork: %s", strerror(errno));
	if (p == 0) {
		no_core();
		int err = e->fn();
		_exit(err & 0xff);
	}
	int st;
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (WIFSIGNALED(st)) {
		printf("%s=SIGNAL-%d\n", e->name, WTERMSIG(st));
	} else {
		int err = WEXITSTATUS(st);
		if (err == 0) {
			printf("%s=OK\n", e->name);
		} else {
			const char *nm = strerrorname_np(err);
			if (nm)
				printf("%s=%s\n", e->name, nm);
			else
				printf("%s=E%d\n", e->name, err);
		}
	}
	(void)fflush(stdout);
}

static int cmd_syscalls(int argc, char **argv)
{
	if (argc == 0) {
		for (const struct sc_entry *e = sc_table; e->name; e++)
			run_one_syscall(e);
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		const struct sc_entry *e;
		for (e = sc_table; e->name; e++)
			if (strcmp(e->name, argv[i]) == 0)
				break;
		if (!e->name)
			die("unknown syscall test %s", argv[i]);
		run_one_syscall(e);
	}
	return 0;
}

/* ------------------------------------------------------- seccomp-reach */

/*
 * Whether a system call gets past the seccomp filters the probe was started under. A child stacks one more
 * filter that answers the call with SECCOMP_RET_USER_NOTIF and hands its listener to the probe. Filters stack and
 * the strongest action wins (KILL > TRAP > ERRNO > USER_NOTIF > ALLOW), so the probe is notified exactly when no
 * earlier filter denied the call; it then answers EOWNERDEAD and the call never runs. Neither the arguments nor
 * the child's capabilities matter: EPERM from a missing capability cannot pass for the filter's EPERM.
 */
#ifndef SYS_mount
#define SYS_mount (-1L)
#endif
#ifndef SYS_umount
#define SYS_umount (-1L)
#endif
#ifndef SYS_umount2
#define SYS_umount2 (-1L)
#endif
#ifndef SYS_pivot_root
#define SYS_pivot_root (-1L)
#endif
#ifndef SYS_chroot
#define SYS_chroot (-1L)
#endif
#ifndef SYS_move_mount
#define SYS_move_mount (-1L)
#endif
#ifndef SYS_open_tree
#define SYS_open_tree (-1L)
#endif
#ifndef SYS_fsopen
#define SYS_fsopen (-1L)
#endif
#ifndef SYS_fsconfig
#define SYS_fsconfig (-1L)
#endif
#ifndef SYS_fsmount
#define SYS_fsmount (-1L)
#endif
#ifndef SYS_fspick
#define SYS_fspick (-1L)
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr (-1L)
#endif
#ifndef SYS_ptrace
#define SYS_ptrace (-1L)
#endif
#ifndef SYS_process_vm_readv
#define SYS_process_vm_readv (-1L)
#endif
#ifndef SYS_process_vm_writev
#define SYS_process_vm_writev (-1L)
#endif
#ifndef SYS_kexec_load
#define SYS_kexec_load (-1L)
#endif
#ifndef SYS_kexec_file_load
#define SYS_kexec_file_load (-1L)
#endif
#ifndef SYS_init_module
#define SYS_init_module (-1L)
#endif
#ifndef SYS_finit_module
#define SYS_finit_module (-1L)
#endif
#ifndef SYS_delete_module
#define SYS_delete_module (-1L)
#endif
#ifndef SYS_bpf
#define SYS_bpf (-1L)
#endif
#ifndef SYS_perf_event_open
#define SYS_perf_event_open (-1L)
#endif
#ifndef SYS_unshare
#define SYS_unshare (-1L)
#endif
#ifndef SYS_setns
#define SYS_setns (-1L)
#endif
#ifndef SYS_keyctl
#define SYS_keyctl (-1L)
#endif
#ifndef SYS_add_key
#define SYS_add_key (-1L)
#endif
#ifndef SYS_request_key
#define SYS_request_key (-1L)
#endif
#ifndef SYS_swapon
#define SYS_swapon (-1L)
#endif
#ifndef SYS_swapoff
#define SYS_swapoff (-1L)
#endif
#ifndef SYS_reboot
#define SYS_reboot (-1L)
#endif
#ifndef SYS_acct
#define SYS_acct (-1L)
#endif
#ifndef SYS_open_by_handle_at
#define SYS_open_by_handle_at (-1L)
#endif
#ifndef SYS_name_to_handle_at
#define SYS_name_to_handle_at (-1L)
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd (-1L)
#endif
#ifndef SYS_iopl
#define SYS_iopl (-1L)
#endif
#ifndef SYS_ioperm
#define SYS_ioperm (-1L)
#endif
#ifndef SYS_lookup_dcookie
#define SYS_lookup_dcookie (-1L)
#endif
#ifndef SYS_quotactl
#define SYS_quotactl (-1L)
#endif
#ifndef SYS_quotactl_fd
#define SYS_quotactl_fd (-1L)
#endif
#ifndef SYS_nfsservctl
#define SYS_nfsservctl (-1L)
#endif
#ifndef SYS_syslog
#define SYS_syslog (-1L)
#endif
#ifndef SYS_settimeofday
#define SYS_settimeofday (-1L)
#endif
#ifndef SYS_clock_settime
#define SYS_clock_settime (-1L)
#endif
#ifndef SYS_clock_adjtime
#define SYS_clock_adjtime (-1L)
#endif
#ifndef SYS_adjtimex
#define SYS_adjtimex (-1L)
#endif
#ifndef SYS_uselib
#define SYS_uselib (-1L)
#endif
#ifndef SYS_vhangup
#define SYS_vhangup (-1L)
#endif
#ifndef SYS_clone
#define SYS_clone (-1L)
#endif
#ifndef SYS_clone3
#define SYS_clone3 (-1L)
#endif
#ifndef SYS_getpid
#define SYS_getpid (-1L)
#endif

struct reach_entry {
	const char *name;
	long nr;
	long args[6];
};

static const struct reach_entry reach_table[] = {
	{"mount", SYS_mount, {0}},
	{"umount", SYS_umount, {0}},
	{"umount2", SYS_umount2, {0}},
	{"pivot_root", SYS_pivot_root, {0}},
	{"chroot", SYS_chroot, {0}},
	{"move_mount", SYS_move_mount, {-1, 0, -1}},
	{"open_tree", SYS_open_tree, {0}},
	{"fsopen", SYS_fsopen, {0}},
	{"fsconfig", SYS_fsconfig, {-1}},
	{"fsmount", SYS_fsmount, {-1}},
	{"fspick", SYS_fspick, {0}},
	{"mount_setattr", SYS_mount_setattr, {0}},
	{"ptrace", SYS_ptrace, {PTRACE_PEEKDATA, 0x3ffffff0L}},
	{"process_vm_readv", SYS_process_vm_readv, {0}},
	{"process_vm_writev", SYS_process_vm_writev, {0}},
	{"kexec_load", SYS_kexec_load, {0, 0, 0, 0xdead0000L}},
	{"kexec_file_load", SYS_kexec_file_load, {-1, -1, 0, 0, 0xdead0000L}},
	{"init_module", SYS_init_module, {0}},
	{"finit_module", SYS_finit_module, {-1}},
	{"delete_module", SYS_delete_module, {0}},
	{"bpf", SYS_bpf, {0}},
	{"perf_event_open", SYS_perf_event_open, {0}},
	{"unshare", SYS_unshare, {CLONE_NEWUTS}},
	{"setns", SYS_setns, {-1, 0}},
	{"keyctl", SYS_keyctl, {0}},
	{"add_key", SYS_add_key, {0}},
	{"request_key", SYS_request_key, {0}},
	{"swapon", SYS_swapon, {0}},
	{"swapoff", SYS_swapoff, {0}},
	{"reboot", SYS_reboot, {0}},
	{"acct", SYS_acct, {0}},
	{"open_by_handle_at", SYS_open_by_handle_at, {-1}},
	{"name_to_handle_at", SYS_name_to_handle_at, {0}},
	{"userfaultfd", SYS_userfaultfd, {0}},
	{"iopl", SYS_iopl, {0}},
	{"ioperm", SYS_ioperm, {0}},
	{"lookup_dcookie", SYS_lookup_dcookie, {0}},
	{"quotactl", SYS_quotactl, {0}},
	{"quotactl_fd", SYS_quotactl_fd, {-1}},
	{"nfsservctl", SYS_nfsservctl, {0}},
	{"syslog", SYS_syslog, {0}},
	{"settimeofday", SYS_settimeofday, {0}},
	{"clock_settime", SYS_clock_settime, {-1}},
	{"clock_adjtime", SYS_clock_adjtime, {-1}},
	{"adjtimex", SYS_adjtimex, {0}},
	{"uselib", SYS_uselib, {0}},
	{"vhangup", SYS_vhangup, {0}},
	{"getpid", SYS_getpid, {0}},
	/* clone with each namespace flag is denied, plain clone is not; clone3 gets ENOSYS; getpid is allowed */
	{"clone_newuser", SYS_clone, {CLONE_NEWUSER | SIGCHLD}},
	{"clone_newns", SYS_clone, {CLONE_NEWNS | SIGCHLD}},
	{"clone_newpid", SYS_clone, {CLONE_NEWPID | SIGCHLD}},
	{"clone_newnet", SYS_clone, {CLONE_NEWNET | SIGCHLD}},
	{"clone_newuts", SYS_clone, {CLONE_NEWUTS | SIGCHLD}},
	{"clone_newipc", SYS_clone, {CLONE_NEWIPC | SIGCHLD}},
	{"clone_newcgroup", SYS_clone, {CLONE_NEWCGROUP | SIGCHLD}},
	{"clone_plain", SYS_clone, {SIGCHLD}},
	{"clone3", SYS_clone3, {0}},
	{NULL, 0, {0}},
};

#if defined(__x86_64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PROBE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* In the child: the filter that hands `nr` to a listener; returns the listener fd or -errno. */
static int notify_filter(long nr)
{
#ifdef PROBE_AUDIT_ARCH
	struct sock_filter insns[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PROBE_AUDIT_ARCH, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(insns) / sizeof(insns[0]), .filter = insns};
	long fd;

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	return fd < 0 ? -errno : (int)fd;
#else
	(void)nr;
	return -ENOSYS;
#endif
}

/* Sends the listener fd, or (when fd < 0) the errno of the failure as the message itself. */
static void send_listener(int sock, int fd)
{
	int code = fd < 0 ? -fd : 0;
	struct iovec iov = {.iov_base = &code, .iov_len = sizeof(code)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};

	memset(&u, 0, sizeof(u));
	if (fd >= 0) {
		msg.msg_control = u.buf;
		msg.msg_controllen = sizeof(u.buf);
		struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	while (sendmsg(sock, &msg, 0) < 0 && errno == EINTR)
		;
}

/* The listener fd, or -errno: the child's failure, or EPIPE when it sent nothing. */
static int recv_listener(int sock)
{
	int code = 0, fd = -1;
	struct iovec iov = {.iov_base = &code, .iov_len = sizeof(code)};
	union {
		char buf[CMSG_SPACE(sizeof(int))];
		struct cmsghdr align;
	} u;
	struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof(u.buf)};
	ssize_t n;

	while ((n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC)) < 0 && errno == EINTR)
		;
	if (n != (ssize_t)sizeof(code))
		return -EPIPE;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (fd >= 0)
		return fd;
	return code > 0 ? -code : -EPIPE;
}

/* Answers every notification with EOWNERDEAD until the child closes its end; returns how many arrived. */
static int serve_notifications(int listener, int sock)
{
	int reached = 0;
	double deadline = mono_now() + 10.0;

	while (mono_now() < deadline) {
		struct pollfd pf[2] = {{.fd = listener, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
		if (poll(pf, 2, 1000) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pf[0].revents & POLLIN) {
			struct seccomp_notif req;
			struct seccomp_notif_resp resp;
			memset(&req, 0, sizeof(req));
			if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) == 0) {
				memset(&resp, 0, sizeof(resp));
				resp.id = req.id;
				resp.error = -EOWNERDEAD;
				(void)ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
				reached++;
			}
			continue;
		}
		if (pf[1].revents)
			break;
	}
	return reached;
}

static void reach_one(const struct reach_entry *e)
{
	static struct probe_clone_args clone3_args = {.exit_signal = SIGCHLD};
	int sv[2], listener, reached = 0, st;
	pid_t p;

	if (e->nr < 0) {
		printf("%s=NOT-ON-ARCH\n", e->name);
		return;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair: %s", strerror(errno));
	(void)fflush(stdout);
	p = fork();
	if (p < 0)
		die("fork: %s", strerror(errno));
	if (p == 0) {
		const long *a = e->args;
		long r;
		close(sv[0]);
		no_core();
		listener = notify_filter(e->nr);
		send_listener(sv[1], listener);
		if (listener < 0)
			_exit(0);
		close(listener);
		if (e->nr == SYS_clone3)
			r = syscall(SYS_clone3, &clone3_args, sizeof(clone3_args));
		else
			r = syscall(e->nr, a[0], a[1], a[2], a[3], a[4], a[5]);
		if (r == 0 && e->nr == SYS_clone)
			_exit(0); /* a clone that really ran (it cannot: it is answered or denied) */
		_exit(r < 0 ? errno & 0xff : 0);
	}
	close(sv[1]);
	listener = recv_listener(sv[0]);
	if (listener >= 0) {
		reached = serve_notifications(listener, sv[0]);
		close(listener);
	}
	close(sv[0]);
	while (waitpid(p, &st, 0) < 0 && errno == EINTR)
		;
	if (listener < 0) {
		const char *nm = strerrorname_np(-listener);
		printf("%s=NO-LISTENER-%s\n", e->name, nm ? nm : "?");
	} else if (reached) {
		printf("%s=REACHED\n", e->name);
	} else if (WIFSIGNALED(st)) {
		printf("%s=SIGNAL-%d\n", e->name, WTERMSIG(st));
	} else {
		int err = WEXITSTATUS(st);
		const char *nm = err ? strerrorname_np(err) : "OK";
		if (nm)
			printf("%s=%s\n", e->name, nm);
		else
			printf("%s=E%d\n", e->name, err);
	}
	(void)fflush(stdout);
}

static int cmd_seccomp_reach(int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		const struct reach_entry *e;
		for (e = reach_table; e->name; e++)
			if (strcmp(e->name, argv[i]) == 0)
				break;
		if (e->name)
			reach_one(e);
		else
			printf("%s=UNKNOWN\n", argv[i]);
	}
	(void)fflush(stdout);
	return 0;
}

/* -------------------------------------------------------- noreap-parent */

static int cmd_noreap_parent(const char *status_path, double linger, char **cmd)
{
	pid_t p = fork();
	if (p < 0)
		die("fork: %s", strerror(errno));
	if (p == 0) {
		execvp(cmd[0], cmd);
		(void)fprintf(stderr, "probe: exec %s: %s\n", cmd[0], strerror(errno));
		_exit(127);
	}
	/* Wait for this one pid only: anything else reparented to us stays a zombie. */
	int st;
	while (waitpid(p, &st, 0) < 0) {
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	}
	int code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	char buf[128];
	(void)snprintf(buf, sizeof(buf), "exit=%d\npid=%ld\nraw=%d\n", code, (long)p, st);
	write_atomic(status_path, buf);
	sleep_seconds(linger);
	return 0;
}

/* ----------------------------------------------------------------- main */

static void usage(void) __attribute__((noreturn));
static void usage(void)
{
	(void)fprintf(stderr,
		      "usage: probe status | exit N | kill-self SIG | sleep S | hold READY S | wait-signal READY S |\n"
		      "       group-signal READY LOG S | orphans N LIFE_MS HOLD_S LOG READY |\n"
		      "       ignore-term PIDS S | term-leave PIDS S | runs LOG SPEC | syscalls [NAME...] |\n"
		      "       seccomp-reach NAME... |\n"
		      "       noreap-parent STATUS LINGER_S -- CMD [ARGS...]\n");
	exit(90);
}

static double parse_seconds(const char *s)
{
	char *end = NULL;
	errno = 0;
	double v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || v < 0)
		die("bad seconds: %s", s);
	return v;
}

int main(int argc, char **argv)
{
	if (argc < 2)
		usage();
	const char *cmd = argv[1];
	(void)setvbuf(stdout, NULL, _IOLBF, 0);

	if (strcmp(cmd, "status") == 0)
		return cmd_status();
	if (strcmp(cmd, "exit") == 0 && argc == 3)
		return (int)parse_long(argv[2], "exit code");
	if (strcmp(cmd, "kill-self") == 0 && argc == 3) {
		int sig = (int)parse_long(argv[2], "signal");
		no_core();
		if (sig != SIGKILL && sig != SIGSTOP)
			set_handler(sig, SIG_DFL);
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, sig);
		sigprocmask(SIG_UNBLOCK, &set, NULL);
		(void)raise(sig);
		return 99;
	}
	if (strcmp(cmd, "sleep") == 0 && argc == 3) {
		sleep_seconds(parse_seconds(argv[2]));
		return 0;
	}
	if (strcmp(cmd, "hold") == 0 && argc == 4) {
		write_ready(argv[2]);
		sleep_seconds(parse_seconds(argv[3]));
		return 0;
	}
	if (strcmp(cmd, "wait-signal") == 0 && argc == 4)
		return cmd_wait_signal(argv[2], parse_seconds(argv[3]));
	if (strcmp(cmd, "group-signal") == 0 && argc == 5)
		return cmd_group_signal(argv[2], argv[3], parse_seconds(argv[4]));
	if (strcmp(cmd, "orphans") == 0 && argc == 7)
		return cmd_orphans(parse_long(argv[2], "count"), parse_long(argv[3], "life"), parse_seconds(argv[4]),
				   argv[5], argv[6]);
	if (strcmp(cmd, "ignore-term") == 0 && argc == 4)
		return spawn_pair(argv[2], parse_seconds(argv[3]), 0);
	if (strcmp(cmd, "term-leave") == 0 && argc == 4)
		return spawn_pair(argv[2], parse_seconds(argv[3]), 1);
	if (strcmp(cmd, "runs") == 0 && argc == 4)
		return cmd_runs(argv[2], argv[3]);
	if (strcmp(cmd, "seccomp-reach") == 0)
		return cmd_seccomp_reach(argc - 2, argv + 2);
	if (strcmp(cmd, "syscalls") == 0 || strcmp(cmd, "syscall") == 0)
		return cmd_syscalls(argc - 2, argv + 2);
	if (strcmp(cmd, "noreap-parent") == 0 && argc >= 6 && strcmp(argv[4], "--") == 0)
		return cmd_noreap_parent(argv[2], parse_seconds(argv[3]), argv + 5);
	usage();
}
