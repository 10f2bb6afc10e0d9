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
#include <sys/prctl.h>
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
	if (strcmp(cmd, "syscalls") == 0 || strcmp(cmd, "syscall") == 0)
		return cmd_syscalls(argc - 2, argv + 2);
	if (strcmp(cmd, "noreap-parent") == 0 && argc >= 6 && strcmp(argv[4], "--") == 0)
		return cmd_noreap_parent(argv[2], parse_seconds(argv[3]), argv + 5);
	usage();
}
