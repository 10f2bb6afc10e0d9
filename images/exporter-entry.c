/*
 * exporter-entry: the entrypoint of the kvinit-exporter image. It gives Debian's prometheus-redis-exporter (1.45) the
 * Redis password from a Docker secret without putting it in the environment, in argv or in a file on disk.
 *
 * That exporter reads a password from --redis.password / REDIS_PASSWORD (visible in `docker inspect` and
 * /proc/PID/cmdline or environ), or from --redis.password-file: a JSON object mapping Redis addresses to passwords,
 * read once at start. So this program, as root:
 *
 *   1. reads the plain password from $REDIS_PASSWORD_FILE, else /run/secrets/redis_password (the same secret the
 *      kvinit nodes read; at most 4096 bytes, one trailing newline stripped, no NUL or line break inside);
 *   2. writes {"<address>": "<password>", ...} for the exporter's address (--redis.addr, else REDIS_ADDR, else
 *      redis://localhost:6379) in each form the exporter looks it up by, and for every address of
 *      EXPORTER_PASSWORD_TARGETS (for /scrape?target=...), into a pipe whose read end it leaves on fd 3;
 *   3. drops to nobody (65534:65534, no supplementary groups, no capabilities, no_new_privs) before it makes the
 *      pipe (a pipe belongs to its creator, and the exporter reopens it by name), and execs
 *      /usr/bin/prometheus-redis-exporter --redis.password-file=/proc/self/fd/3 ARGS...
 *
 * When ARGS or the environment already give a password (--redis.password, --redis.password-file, REDIS_PASSWORD)
 * or there is no secret, step 2 is skipped. REDIS_PASSWORD_FILE means a plain password file here, as for kvinit;
 * it is removed from the exporter's environment (where it would name a JSON file).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define EXPORTER       "/usr/bin/prometheus-redis-exporter"
#define DEFAULT_SECRET "/run/secrets/redis_password"
#define DEFAULT_ADDR   "redis://localhost:6379"
#define PASSWORD_MAX   4096
#define JSON_MAX       262144 /* the pipe is grown to this (pipe-max-size is 1 MiB): all is written before exec */
#define NOBODY	       65534
#define PASSWORD_FD    3

/* One line on stderr and exit 1; the format is always a literal, which the prefix is joined to. */
#define die(...)                                                                                                       \
	do {                                                                                                           \
		(void)fprintf(stderr, "exporter-entry: " __VA_ARGS__);                                                 \
		(void)fputc('\n', stderr);                                                                             \
		exit(1);                                                                                               \
	} while (0)

/* The value of flag NAME (given as -NAME or --NAME, with =VALUE or as the next argument), or NULL. */
static const char *flag_value(int argc, char **argv, const char *name, bool *present)
{
	size_t n = strlen(name);

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--") == 0)
			break;
		if (a[0] != '-')
			continue;
		a += a[1] == '-' ? 2 : 1;
		if (strncmp(a, name, n) != 0 || (a[n] != '\0' && a[n] != '='))
			continue;
		if (present)
			*present = true;
		if (a[n] == '=')
			return a + n + 1;
		return i + 1 < argc ? argv[i + 1] : "";
	}
	return NULL;
}

struct buf {
	char data[JSON_MAX];
	size_t len;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (n > sizeof(b->data) - b->len)
		die("the password file for the exporter would exceed %d bytes", JSON_MAX);
	memcpy(b->data + b->len, s, n);
	b->len += n;
}

/* A JSON string. Go's decoder turns invalid UTF-8 into U+FFFD, so such a password is refused, not mangled. */
static void put_json_string(struct buf *b, const char *s, size_t n, const char *what)
{
	put(b, "\"", 1);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			(void)snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(b, esc, 6);
		} else if (c < 0x80) {
			put(b, (const char *)&c, 1);
		} else {
			size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;

			if (len == 0 || i + len > n)
				die("%s is not valid UTF-8 (the exporter's JSON password file cannot carry it)", what);
			for (size_t k = 1; k < len; k++)
				if (((unsigned char)s[i + k] & 0xc0) != 0x80)
					die("%s is not valid UTF-8 (the exporter's JSON password file cannot carry it)",
					    what);
			put(b, s + i, len);
			i += len - 1;
		}
	}
	put(b, "\"", 1);
}

static void put_entry(struct buf *b, const char *key, size_t key_len, const char *pw, size_t pw_len)
{
	put(b, b->len > 1 ? ",\n" : "\n", b->len > 1 ? 2 : 1);
	put_json_string(b, key, key_len, "an address");
	put(b, ": ", 2);
	put_json_string(b, pw, pw_len, "the password");
}

/*
 * The exporter (1.45) looks a password up by exact string: "redis://" + the address when it has no scheme (single
 * node, /scrape), and host:port without scheme (with --is-cluster). Each form of the address is written.
 */
static void put_address(struct buf *b, const char *addr, size_t n, const char *pw, size_t pw_len)
{
	char key[1024];
	const char *scheme = memmem(addr, n, "://", 3);
	int k;

	if (n == 0 || n > 512)
		return;
	put_entry(b, addr, n, pw, pw_len);
	if (!scheme) {
		k = snprintf(key, sizeof(key), "redis://%.*s", (int)n, addr);
		put_entry(b, key, (size_t)k, pw, pw_len);
		if (!memchr(addr, ':', n)) {
			k = snprintf(key, sizeof(key), "%.*s:6379", (int)n, addr);
			put_entry(b, key, (size_t)k, pw, pw_len);
			k = snprintf(key, sizeof(key), "redis://%.*s:6379", (int)n, addr);
			put_entry(b, key, (size_t)k, pw, pw_len);
		}
	} else {
		const char *host = scheme + 3, *end = addr + n, *at, *slash;

		slash = memchr(host, '/', (size_t)(end - host));
		if (slash)
			end = slash;
		at = memrchr(host, '@', (size_t)(end - host));
		if (at)
			host = at + 1;
		if (end > host) {
			const char *colon = memrchr(host, ':', (size_t)(end - host));
			bool has_port = colon && !memchr(colon, ']', (size_t)(end - colon));

			k = snprintf(key, sizeof(key), "%.*s%s", (int)(end - host), host, has_port ? "" : ":6379");
			put_entry(b, key, (size_t)k, pw, pw_len);
		}
	}
}

static size_t read_secret(const char *path, char *pw)
{
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0)
		die("cannot read the password file '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		die("the password file '%s' is not a regular file", path);
	while ((n = read(fd, pw + len, PASSWORD_MAX + 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			die("cannot read '%s': %s", path, strerror(errno));
		}
		len += (size_t)n;
		if (len > PASSWORD_MAX)
			die("the password file '%s' holds more than %d bytes", path, PASSWORD_MAX);
	}
	(void)close(fd);
	if (len > 0 && pw[len - 1] == '\n')
		len--;
	if (len > 0 && pw[len - 1] == '\r')
		len--;
	if (len == 0)
		die("the password file '%s' is empty", path);
	if (memchr(pw, '\0', len) || memchr(pw, '\n', len) || memchr(pw, '\r', len))
		die("the password in '%s' holds a NUL byte or a line break", path);
	return len;
}

/* The JSON goes into a pipe whose read end ends up on fd 3; nothing touches a disk. */
static void pass_in_pipe(const struct buf *b)
{
	int fds[2];
	ssize_t n;

	if (pipe2(fds, O_CLOEXEC) < 0)
		die("pipe: %s", strerror(errno));
	if (b->len > 65536 && fcntl(fds[1], F_SETPIPE_SZ, JSON_MAX) < 0)
		die("cannot grow a pipe to %d bytes for the exporter's password file: %s", JSON_MAX, strerror(errno));
	if (fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0)
		die("fcntl: %s", strerror(errno));
	n = write(fds[1], b->data, b->len);
	if (n < 0 || (size_t)n != b->len)
		die("cannot write the password to a pipe: %s", n < 0 ? strerror(errno) : "short write");
	(void)close(fds[1]);
	if (fds[0] != PASSWORD_FD) {
		if (dup2(fds[0], PASSWORD_FD) < 0) /* dup2 clears FD_CLOEXEC on the copy */
			die("dup2: %s", strerror(errno));
		(void)close(fds[0]);
	} else if (fcntl(PASSWORD_FD, F_SETFD, 0) < 0) {
		die("fcntl: %s", strerror(errno));
	}
}

static void drop_privileges(void)
{
	gid_t gid = NOBODY;

	if (geteuid() != 0)
		return;
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(NOBODY, NOBODY, NOBODY) < 0)
		die("cannot switch to uid %d: %s", NOBODY, strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
}

int main(int argc, char **argv)
{
	static struct buf json;
	static char pw[PASSWORD_MAX + 1];
	static char pwflag[] = "--redis.password-file=/proc/self/fd/3";
	const char *secret = getenv("REDIS_PASSWORD_FILE"), *addr, *env_pw = getenv("REDIS_PASSWORD");
	bool given = false;
	char **args;
	int nargs = 0;

	if (secret && !*secret)
		secret = NULL;
	if (!secret && access(DEFAULT_SECRET, F_OK) == 0)
		secret = DEFAULT_SECRET;
	(void)flag_value(argc, argv, "redis.password", &given);
	(void)flag_value(argc, argv, "redis.password-file", &given);
	if (env_pw && *env_pw)
		given = true;
	(void)unsetenv("REDIS_PASSWORD_FILE");

	args = calloc((size_t)argc + 2, sizeof(*args));
	if (!args)
		die("out of memory");
	args[nargs++] = EXPORTER;

	if (secret && !given) {
		const char *targets = getenv("EXPORTER_PASSWORD_TARGETS");
		size_t len = read_secret(secret, pw);

		addr = flag_value(argc, argv, "redis.addr", NULL);
		if (!addr || !*addr)
			addr = getenv("REDIS_ADDR");
		if (!addr || !*addr)
			addr = DEFAULT_ADDR;
		put(&json, "{", 1);
		put_address(&json, addr, strlen(addr), pw, len);
		for (const char *t = targets ? targets : ""; *t;) {
			size_t n = strcspn(t, " ,;\t");

			put_address(&json, t, n, pw, len);
			t += n;
			t += strspn(t, " ,;\t");
		}
		put(&json, "\n}\n", 3);
		explicit_bzero(pw, sizeof(pw));
		args[nargs++] = pwflag;
	}
	drop_privileges();
	if (json.len > 0) {
		/* After the drop: a pipe belongs to its creator, and the exporter reopens it through /proc. */
		pass_in_pipe(&json);
		explicit_bzero(json.data, sizeof(json.data));
	}
	for (int i = 1; i < argc; i++)
		args[nargs++] = argv[i];
	args[nargs] = NULL;
	execv(EXPORTER, args);
	die("cannot run %s: %s", EXPORTER, strerror(errno));
	return 127;
}
