/* SPDX-License-Identifier: MIT */
/* Secret files (content rules, symlinks, file types), password resolution, SHA-256 against the FIPS vectors. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "init.h"
#include "secrets.h"

/* Paths under tmpdir are short; a small buffer keeps every expected message within struct init_error. */
#define TPATH_SIZE 256

static char tmpdir[] = "/tmp/kvinit-test-secrets-XXXXXX";

static const char *tpath(char buf[TPATH_SIZE], const char *name)
{
	(void)snprintf(buf, TPATH_SIZE, "%s/%s", tmpdir, name);
	return buf;
}

static void write_file(const char *name, const void *data, size_t len, mode_t mode)
{
	char path[TPATH_SIZE];
	int fd = open(tpath(path, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	/* fchmod, not the mode of open: the umask would change that one */
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void make_dir(const char *name)
{
	char path[TPATH_SIZE];

	assert_int_equal(mkdir(tpath(path, name), 0700), 0);
}

static void make_symlink(const char *target, const char *name)
{
	char path[TPATH_SIZE];

	assert_int_equal(symlink(target, tpath(path, name)), 0);
}

static void assert_reads(const char *name, const char *expected, size_t expected_len)
{
	struct secrets_value v = {0};
	char path[TPATH_SIZE];

	assert_int_equal(secrets_read_file(tpath(path, name), &v, NULL), 0);
	assert_non_null(v.data);
	assert_int_equal(v.len, expected_len);
	assert_memory_equal(v.data, expected, expected_len);
	assert_int_equal(v.data[v.len], '\0');
	secrets_wipe(&v);
}

/* Also checks that a refusal leaves the out-parameters alone. */
static void assert_refused(const char *name, int code)
{
	static char sentinel[] = "untouched";
	struct secrets_value v = {.data = sentinel, .len = 99};
	bool world_readable = true;
	char path[TPATH_SIZE];

	assert_int_equal(secrets_read_file(tpath(path, name), &v, &world_readable), code);
	assert_ptr_equal(v.data, sentinel);
	assert_int_equal(v.len, 99);
	assert_true(world_readable);
}

/* openat2 is what keeps symlinks inside the directory; without it (kernel < 5.6, old seccomp profile) it is not. */
static bool have_openat2(void)
{
	struct open_how how = {.flags = O_PATH | O_CLOEXEC};
	long fd = syscall(SYS_openat2, AT_FDCWD, "/", &how, sizeof(how));

	if (fd < 0)
		return false;
	(void)close((int)fd);
	return true;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		(void)chmod(path, 0700);
	return remove(path) < 0 ? -1 : 0;
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	return nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- content rules ---- */

static void test_trailing_newline(void **state)
{
	(void)state;
	write_file("lf", "s3cret\n", 7, 0600);
	assert_reads("lf", "s3cret", 6);
	write_file("crlf", "s3cret\r\n", 8, 0600);
	assert_reads("crlf", "s3cret", 6);
	write_file("bare", "s3cret", 6, 0600);
	assert_reads("bare", "s3cret", 6);
	/* only one newline is stripped: the second is a line break inside the secret */
	write_file("lflf", "pw\n\n", 4, 0600);
	assert_refused("lflf", -EBADMSG);
	write_file("crlfcrlf", "pw\r\n\r\n", 6, 0600);
	assert_refused("crlfcrlf", -EBADMSG);
	write_file("lfcr", "pw\n\r", 4, 0600);
	assert_refused("lfcr", -EBADMSG);
	/* spaces are part of the secret, never trimmed */
	write_file("spaces", " pw \n", 5, 0600);
	assert_reads("spaces", " pw ", 4);
}

static void test_empty(void **state)
{
	(void)state;
	write_file("empty", "", 0, 0600);
	assert_refused("empty", -ENODATA);
	write_file("lf-only", "\n", 1, 0600);
	assert_refused("lf-only", -ENODATA);
	write_file("crlf-only", "\r\n", 2, 0600);
	assert_refused("crlf-only", -ENODATA);
}

static void test_size_limit(void **state)
{
	char buf[SECRETS_MAX_SIZE + 2];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	write_file("max", buf, SECRETS_MAX_SIZE, 0600);
	assert_reads("max", buf, SECRETS_MAX_SIZE);
	write_file("max+1", buf, SECRETS_MAX_SIZE + 1, 0600);
	assert_refused("max+1", -EFBIG);
	/* the limit is on the file: its trailing newline counts */
	buf[SECRETS_MAX_SIZE] = '\n';
	write_file("max+lf", buf, SECRETS_MAX_SIZE + 1, 0600);
	assert_refused("max+lf", -EFBIG);
	write_file("max-1+lf", buf + 1, SECRETS_MAX_SIZE, 0600);
	assert_reads("max-1+lf", buf, SECRETS_MAX_SIZE - 1);
}

static void test_bad_bytes(void **state)
{
	(void)state;
	write_file("nul", "pw\0rest\n", 8, 0600);
	assert_refused("nul", -EILSEQ);
	write_file("nul-first", "\0", 1, 0600);
	assert_refused("nul-first", -EILSEQ);
	write_file("cr", "p\rw\n", 4, 0600);
	assert_refused("cr", -EBADMSG);
	write_file("cr-trailing", "pw\r", 3, 0600);
	assert_refused("cr-trailing", -EBADMSG);
	write_file("lf-inside", "two\nlines\n", 10, 0600);
	assert_refused("lf-inside", -EBADMSG);
}

/* ---- where the file is and what it is ---- */

static void test_kubernetes_layout(void **state)
{
	struct secrets_value v = {0};
	char path[TPATH_SIZE];
	bool world_readable = false;

	(void)state;
	/* what the kubelet's atomic writer builds for a secret volume */
	make_dir("k8s");
	make_dir("k8s/..2024_01_01_00_00_00.123");
	write_file("k8s/..2024_01_01_00_00_00.123/redis_password", "from-k8s\n", 9, 0644);
	make_symlink("..2024_01_01_00_00_00.123", "k8s/..data");
	make_symlink("..data/redis_password", "k8s/redis_password");

	assert_int_equal(secrets_read_file(tpath(path, "k8s/redis_password"), &v, &world_readable), 0);
	assert_string_equal(v.data, "from-k8s");
	assert_int_equal(v.len, 8);
	/* the mode is the target's (defaultMode 0644 is Kubernetes' default), not the symlink's */
	assert_true(world_readable);
	secrets_wipe(&v);
}

static void test_symlink_escape(void **state)
{
	char target[TPATH_SIZE];

	(void)state;
	make_dir("outside");
	write_file("outside/secret", "elsewhere\n", 10, 0600);
	make_dir("vol");
	write_file("vol/inside", "here\n", 5, 0600);
	make_symlink("inside", "vol/ok");
	make_symlink("../outside/secret", "vol/relative-escape");
	make_symlink(tpath(target, "outside/secret"), "vol/absolute-escape");
	/* absolute symlinks are refused even when they point back inside: the check is on the path, not the target */
	make_symlink(tpath(target, "vol/inside"), "vol/absolute-inside");
	make_symlink("/etc/passwd", "vol/system");

	assert_reads("vol/ok", "here", 4);
	if (!have_openat2())
		skip();
	assert_refused("vol/relative-escape", -EXDEV);
	assert_refused("vol/absolute-escape", -EXDEV);
	assert_refused("vol/absolute-inside", -EXDEV);
	assert_refused("vol/system", -EXDEV);
	assert_refused("vol/..", -EXDEV);
	/* the directory part itself may be a symlink anywhere: the rule is about what lies below it */
	make_symlink("vol", "vol-link");
	assert_reads("vol-link/ok", "here", 4);
}

/* Makes openat2 fail with error in this process, as an old kernel (ENOSYS) or an old seccomp profile (EPERM) does. */
static int refuse_openat2(int error)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_openat2, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (unsigned)error),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {.len = sizeof(filter) / sizeof(filter[0]), .filter = filter};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) < 0)
		return -errno;
	return 0;
}

/* Runs in a child without openat2; the exit code says which step went wrong. */
static int read_without_openat2(int error)
{
	struct secrets_value v = {0};
	char path[TPATH_SIZE];

	if (refuse_openat2(error) < 0 || have_openat2())
		return 200;
	if (secrets_read_file(tpath(path, "k8s-fb/redis_password"), &v, NULL) < 0 || strcmp(v.data, "fallback") != 0)
		return 1;
	secrets_wipe(&v);
	if (secrets_read_file(tpath(path, "k8s-fb/missing"), &v, NULL) != -ENOENT)
		return 2;
	if (secrets_read_file(tpath(path, "k8s-fb/lf-inside"), &v, NULL) != -EBADMSG)
		return 3;
	/* the documented gap: without openat2 nothing keeps the symlink inside the directory */
	if (secrets_read_file(tpath(path, "k8s-fb/escape"), &v, NULL) < 0 || strcmp(v.data, "elsewhere") != 0)
		return 4;
	secrets_wipe(&v);
	return 0;
}

static void test_without_openat2(void **state)
{
	static const int errors[] = {ENOSYS, EPERM};

	(void)state;
	make_dir("k8s-fb");
	make_dir("k8s-fb/..2024_01_01_00_00_00.123");
	write_file("k8s-fb/..2024_01_01_00_00_00.123/redis_password", "fallback\n", 9, 0600);
	make_symlink("..2024_01_01_00_00_00.123", "k8s-fb/..data");
	make_symlink("..data/redis_password", "k8s-fb/redis_password");
	write_file("k8s-fb/lf-inside", "a\nb\n", 4, 0600);
	write_file("elsewhere", "elsewhere\n", 10, 0600);
	make_symlink("../elsewhere", "k8s-fb/escape");

	for (size_t i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
		int status;
		pid_t pid = fork();

		assert_true(pid >= 0);
		if (pid == 0)
			_exit(read_without_openat2(errors[i]));
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		if (WEXITSTATUS(status) == 200)
			skip(); /* no seccomp here to take openat2 away */
		assert_int_equal(WEXITSTATUS(status), 0);
	}
}

static void test_not_regular(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char path[TPATH_SIZE];
	int fd;

	(void)state;
	make_dir("a-dir");
	assert_refused("a-dir", -EBADFD);
	assert_refused("a-dir/", -EBADFD);

	/* A FIFO without a writer would block a plain open forever; the alarm turns a hang into a failed test. */
	assert_int_equal(mkfifo(tpath(path, "fifo"), 0600), 0);
	(void)alarm(5);
	assert_refused("fifo", -EBADFD);
	(void)alarm(0);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(tpath(path, "sock")) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_refused("sock", -EBADFD);
	assert_int_equal(close(fd), 0);
}

static void test_missing(void **state)
{
	(void)state;
	assert_refused("no-such-file", -ENOENT);
	assert_refused("no-such-dir/file", -ENOENT);
	make_symlink("nowhere", "dangling");
	assert_refused("dangling", -ENOENT);
}

/*
 * The unit tests usually run as root, and root reads a mode-000 file anyway (CAP_DAC_OVERRIDE). So as root the
 * check runs in a child that has dropped to nobody (65534); where even that is impossible (no CAP_SETUID) the
 * test is skipped rather than passed.
 */
static void test_unreadable(void **state)
{
	char path[TPATH_SIZE];
	struct secrets_value v = {0};
	int status;
	pid_t pid;

	(void)state;
	write_file("locked", "pw\n", 3, 0000);
	if (geteuid() != 0) {
		assert_int_equal(secrets_read_file(tpath(path, "locked"), &v, NULL), -EACCES);
		return;
	}
	/* nobody must be able to reach the file for the answer to be about the file's own mode */
	assert_int_equal(chmod(tmpdir, 0711), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int r;

		if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
			_exit(200);
		r = secrets_read_file(tpath(path, "locked"), &v, NULL);
		_exit(r == 0 ? 0 : -r & 0xff);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(chmod(tmpdir, 0700), 0);
	assert_true(WIFEXITED(status));
	if (WEXITSTATUS(status) == 200)
		skip();
	assert_int_equal(WEXITSTATUS(status), EACCES);
}

static void test_world_readable(void **state)
{
	struct secrets_value v = {0};
	char path[TPATH_SIZE];
	bool world_readable;

	(void)state;
	write_file("mode644", "pw\n", 3, 0644);
	write_file("mode600", "pw\n", 3, 0600);
	write_file("mode640", "pw\n", 3, 0640);
	write_file("mode604", "pw\n", 3, 0604);

	world_readable = false;
	assert_int_equal(secrets_read_file(tpath(path, "mode644"), &v, &world_readable), 0);
	assert_true(world_readable);
	secrets_wipe(&v);
	world_readable = true;
	assert_int_equal(secrets_read_file(tpath(path, "mode600"), &v, &world_readable), 0);
	assert_false(world_readable);
	secrets_wipe(&v);
	world_readable = true;
	assert_int_equal(secrets_read_file(tpath(path, "mode640"), &v, &world_readable), 0);
	assert_false(world_readable);
	secrets_wipe(&v);
	world_readable = false;
	assert_int_equal(secrets_read_file(tpath(path, "mode604"), &v, &world_readable), 0);
	assert_true(world_readable);
	secrets_wipe(&v);
}

static void test_relative_path(void **state)
{
	char cwd[PATH_MAX];

	(void)state;
	write_file("relative", "rel\n", 4, 0600);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	{
		struct secrets_value v = {0};
		int r = secrets_read_file("relative", &v, NULL);

		assert_int_equal(chdir(cwd), 0);
		assert_int_equal(r, 0);
		assert_string_equal(v.data, "rel");
		secrets_wipe(&v);
	}
}

static void test_strerror(void **state)
{
	(void)state;
	assert_string_equal(secrets_strerror(-ENODATA), "is empty");
	assert_string_equal(secrets_strerror(-EFBIG), "is larger than 4096 bytes");
	assert_string_equal(secrets_strerror(-EILSEQ), "contains a NUL byte");
	assert_string_equal(secrets_strerror(-EBADMSG), "contains a line break");
	assert_string_equal(secrets_strerror(-EBADFD), "is not a regular file");
	assert_string_equal(secrets_strerror(-EXDEV), "is a symlink that leads outside its directory");
	assert_string_equal(secrets_strerror(EXDEV), "is a symlink that leads outside its directory");
	assert_string_equal(secrets_strerror(-ENOENT), strerror(ENOENT));
	assert_string_equal(secrets_strerror(-EACCES), strerror(EACCES));
}

static void test_wipe(void **state)
{
	struct secrets_value zero = {0}, v = {0};
	struct secrets_password p = {0};

	(void)state;
	secrets_wipe(&zero);
	assert_null(zero.data);
	assert_int_equal(zero.len, 0);
	secrets_password_free(&p);
	assert_null(p.path);

	v.data = strdup("s3cret");
	assert_non_null(v.data);
	v.len = 6;
	secrets_wipe(&v);
	assert_null(v.data);
	assert_int_equal(v.len, 0);
	secrets_wipe(&v); /* twice is fine */
}

/* ---- password resolution ---- */

struct env {
	char file[TPATH_SIZE + 32];
	char *vars[8];
	int n;
};

static void env_add(struct env *e, const char *var)
{
	assert_true(e->n < 7);
	e->vars[e->n++] = (char *)var;
	e->vars[e->n] = NULL;
}

/* REDIS_PASSWORD_FILE=<tmpdir>/name */
static void env_add_file(struct env *e, const char *name)
{
	char path[TPATH_SIZE];

	(void)snprintf(e->file, sizeof(e->file), "REDIS_PASSWORD_FILE=%s", tpath(path, name));
	env_add(e, e->file);
}

static void assert_password(char *const *envp, const char *default_path, enum secrets_source source, const char *value,
			    const char *path)
{
	struct secrets_password p = {0};
	struct init_error err = {{0}};

	assert_int_equal(secrets_load_password(envp, default_path, &p, &err), 0);
	assert_int_equal(p.source, source);
	if (value) {
		assert_string_equal(p.value.data, value);
		assert_int_equal(p.value.len, strlen(value));
	} else {
		assert_null(p.value.data);
	}
	if (path)
		assert_string_equal(p.path, path);
	else
		assert_null(p.path);
	secrets_password_free(&p);
}

/* Checks the code and the exact message, and that ret was left alone. */
static void assert_password_error(char *const *envp, const char *default_path, int code, const char *msg)
{
	static char sentinel[] = "untouched";
	struct secrets_password p = {.value = {.data = sentinel, .len = 99}, .source = SECRETS_SRC_ENV};
	struct init_error err = {{0}};

	assert_int_equal(secrets_load_password(envp, default_path, &p, &err), code);
	assert_string_equal(err.msg, msg);
	assert_ptr_equal(p.value.data, sentinel);
	assert_int_equal(p.value.len, 99);
	assert_int_equal(p.source, SECRETS_SRC_ENV);
	assert_null(p.path);
}

static void test_password_precedence(void **state)
{
	char file[TPATH_SIZE], def[TPATH_SIZE], missing[TPATH_SIZE];
	struct env e = {0};

	(void)state;
	make_dir("pw");
	write_file("pw/file", "from-file\n", 10, 0600);
	write_file("pw/default", "from-default\n", 13, 0600);
	tpath(file, "pw/file");
	tpath(def, "pw/default");
	tpath(missing, "pw/missing");

	/* the file named by REDIS_PASSWORD_FILE beats the default file */
	env_add(&e, "REDIS_PASSWORD_FILEX=/nope");
	env_add(&e, "XREDIS_PASSWORD=nope");
	env_add_file(&e, "pw/file");
	assert_password(e.vars, def, SECRETS_SRC_FILE, "from-file", file);

	/* the default file beats REDIS_PASSWORD */
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD=from-env");
	assert_password(e.vars, def, SECRETS_SRC_DEFAULT_FILE, "from-default", def);
	/* and REDIS_PASSWORD is used when the default file does not exist, or there is none */
	assert_password(e.vars, missing, SECRETS_SRC_ENV, "from-env", NULL);
	assert_password(e.vars, NULL, SECRETS_SRC_ENV, "from-env", NULL);
	/* no password anywhere is not an error here: ALLOW_EMPTY_PASSWORD is the caller's call */
	assert_password(NULL, missing, SECRETS_SRC_NONE, NULL, NULL);
	assert_password(NULL, NULL, SECRETS_SRC_NONE, NULL, NULL);

	/* empty variables count as unset */
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD_FILE=");
	env_add(&e, "REDIS_PASSWORD=from-env");
	assert_password(e.vars, missing, SECRETS_SRC_ENV, "from-env", NULL);
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD=");
	assert_password(e.vars, missing, SECRETS_SRC_NONE, NULL, NULL);
}

static void test_password_world_readable(void **state)
{
	struct secrets_password p = {0};
	struct init_error err = {{0}};
	struct env e = {0};

	(void)state;
	write_file("pw-open", "pw\n", 3, 0644);
	env_add_file(&e, "pw-open");
	assert_int_equal(secrets_load_password(e.vars, NULL, &p, &err), 0);
	assert_true(p.world_readable);
	secrets_password_free(&p);
	assert_null(p.value.data);
	assert_null(p.path);
	assert_int_equal(p.source, SECRETS_SRC_NONE);
}

static void test_password_errors(void **state)
{
	char path[TPATH_SIZE], msg[sizeof(((struct init_error *)0)->msg)];
	struct env e = {0};

	(void)state;
	write_file("pw-ok", "pw\n", 3, 0600);
	write_file("pw-empty", "\n", 1, 0600);
	write_file("pw-two-lines", "hunter2\n\n", 9, 0600);

	/* both variables: the message names both, whatever the file holds */
	env_add_file(&e, "pw-ok");
	env_add(&e, "REDIS_PASSWORD=hunter2");
	assert_password_error(e.vars, NULL, -EINVAL,
			      "REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set only one (prefer the file)");

	/* REDIS_PASSWORD_FILE must exist, even when the default file or REDIS_PASSWORD could stand in */
	e = (struct env){0};
	env_add_file(&e, "pw-missing");
	(void)snprintf(msg, sizeof(msg), "REDIS_PASSWORD_FILE='%s': %s", tpath(path, "pw-missing"), strerror(ENOENT));
	assert_password_error(e.vars, tpath(path, "pw-ok"), -ENOENT, msg);

	e = (struct env){0};
	env_add_file(&e, "pw-empty");
	(void)snprintf(msg, sizeof(msg), "REDIS_PASSWORD_FILE='%s': is empty", tpath(path, "pw-empty"));
	assert_password_error(e.vars, NULL, -ENODATA, msg);

	/* the message names the file and the rule, never the content */
	e = (struct env){0};
	env_add_file(&e, "pw-two-lines");
	(void)snprintf(msg, sizeof(msg), "REDIS_PASSWORD_FILE='%s': contains a line break",
		       tpath(path, "pw-two-lines"));
	assert_password_error(e.vars, NULL, -EBADMSG, msg);

	/* a default file that exists must be valid too */
	(void)snprintf(msg, sizeof(msg), "password file '%s': is empty", tpath(path, "pw-empty"));
	assert_password_error(NULL, tpath(path, "pw-empty"), -ENODATA, msg);

	/* a path from the environment is shown with its control characters escaped */
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD_FILE=/nonexistent\nx");
	(void)snprintf(msg, sizeof(msg), "REDIS_PASSWORD_FILE='/nonexistent\\x0ax': %s", strerror(ENOENT));
	assert_password_error(e.vars, NULL, -ENOENT, msg);
}

static void test_password_env_rules(void **state)
{
	static char long_var[sizeof("REDIS_PASSWORD=") + SECRETS_MAX_SIZE + 1];
	const size_t prefix = sizeof("REDIS_PASSWORD=") - 1;
	struct secrets_password p = {0};
	struct init_error err = {{0}};
	struct env e = {0};

	(void)state;
	env_add(&e, "REDIS_PASSWORD=top\nsecret");
	assert_password_error(e.vars, NULL, -EBADMSG, "REDIS_PASSWORD: contains a line break");
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD=top\rsecret");
	assert_password_error(e.vars, NULL, -EBADMSG, "REDIS_PASSWORD: contains a line break");
	/* no newline is stripped from a variable: it came from a file by mistake, or was typed that way */
	e = (struct env){0};
	env_add(&e, "REDIS_PASSWORD=secret\n");
	assert_password_error(e.vars, NULL, -EBADMSG, "REDIS_PASSWORD: contains a line break");

	memcpy(long_var, "REDIS_PASSWORD=", prefix);
	memset(long_var + prefix, 'x', SECRETS_MAX_SIZE + 1);
	long_var[prefix + SECRETS_MAX_SIZE + 1] = '\0';
	e = (struct env){0};
	env_add(&e, long_var);
	assert_password_error(e.vars, NULL, -EFBIG, "REDIS_PASSWORD: is larger than 4096 bytes");

	long_var[prefix + SECRETS_MAX_SIZE] = '\0';
	assert_int_equal(secrets_load_password(e.vars, NULL, &p, &err), 0);
	assert_int_equal(p.source, SECRETS_SRC_ENV);
	assert_int_equal(p.value.len, SECRETS_MAX_SIZE);
	assert_null(p.path);
	assert_false(p.world_readable);
	/* the value is a copy: the caller may scrub the environment */
	assert_ptr_not_equal(p.value.data, long_var + prefix);
	secrets_password_free(&p);
}

/* ---- SHA-256 ---- */

static void assert_sha256(const void *data, size_t len, const char *expected)
{
	char out[65];

	memset(out, '?', sizeof(out));
	secrets_sha256_hex(data, len, out);
	assert_string_equal(out, expected);
}

static void test_sha256_fips_vectors(void **state)
{
	const char *m448 = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	const char *m896 = "abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
			   "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu";
	char *million;

	(void)state;
	assert_sha256("", 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_sha256(NULL, 0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_sha256("abc", 3, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_int_equal(strlen(m448), 56);
	assert_sha256(m448, 56, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	assert_int_equal(strlen(m896), 112);
	assert_sha256(m896, 112, "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");

	million = malloc(1000000);
	assert_non_null(million);
	memset(million, 'a', 1000000);
	assert_sha256(million, 1000000, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
	free(million);
}

/* Lengths around the padding boundaries (55 fits the length in the block, 56 does not); sums from coreutils. */
static void test_sha256_padding(void **state)
{
	static const struct {
		size_t len;
		const char *hex;
	} cases[] = {
		{55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
		{56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
		{63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
		{64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
		{65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
		{119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
		{120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
	};
	char a[120];

	(void)state;
	memset(a, 'a', sizeof(a));
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_sha256(a, cases[i].len, cases[i].hex);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_trailing_newline),
		cmocka_unit_test(test_empty),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_bad_bytes),
		cmocka_unit_test(test_kubernetes_layout),
		cmocka_unit_test(test_symlink_escape),
		cmocka_unit_test(test_without_openat2),
		cmocka_unit_test(test_not_regular),
		cmocka_unit_test(test_missing),
		cmocka_unit_test(test_unreadable),
		cmocka_unit_test(test_world_readable),
		cmocka_unit_test(test_relative_path),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_password_precedence),
		cmocka_unit_test(test_password_world_readable),
		cmocka_unit_test(test_password_errors),
		cmocka_unit_test(test_password_env_rules),
		cmocka_unit_test(test_sha256_fips_vectors),
		cmocka_unit_test(test_sha256_padding),
	};

	return cmocka_run_group_tests_name("secrets", tests, setup, teardown);
}
