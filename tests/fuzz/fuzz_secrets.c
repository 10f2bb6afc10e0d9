/* SPDX-License-Identifier: MIT */
/*
 * Secret values (init_check_value, init_read_value_file, secrets_read_file, secrets_load_password). Input: a
 * control byte (bit 0: the file is world-readable), then the bytes of the value, which are also written to a
 * file in a temporary directory and read back, and given as REDIS_PASSWORD (up to their first NUL).
 * Properties, against the rules of init.h and secrets.h: a value is refused when it is empty (-ENODATA), over
 * INIT_VALUE_MAX bytes (-EFBIG), holds a NUL (-EILSEQ) or a line break (-EBADMSG); a file may end with one "\n"
 * or "\r\n", which is not part of the value but counts toward the size. An accepted value comes back byte for byte,
 * NUL-terminated, from every reader; a refused one gives that code, a message where the reader gives one, and
 * leaves the out-parameters untouched; world_readable follows the file's mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz.h"
#include "init.h"
#include "secrets.h"

static char dir[4096], path[4096 + 16];

static void remove_dir(void)
{
	(void)unlink(path);
	(void)rmdir(dir);
}

/* One directory for the run, removed at its end: in TMPDIR, else in memory (a file is written for every input). */
static void setup(void)
{
	const char *tmp = getenv("TMPDIR");

	if (dir[0])
		return;
	if (!tmp || !*tmp)
		tmp = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	(void)snprintf(dir, sizeof(dir), "%s/kvinit-fuzz-XXXXXX", tmp);
	if (!mkdtemp(dir))
		abort();
	(void)snprintf(path, sizeof(path), "%s/secret", dir);
	(void)atexit(remove_dir);
}

static void write_file(const uint8_t *data, size_t size, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || fchmod(fd, mode) < 0)
		abort();
	for (size_t off = 0; off < size;) {
		ssize_t n = write(fd, data + off, size - off);

		if (n < 0)
			abort();
		off += (size_t)n;
	}
	if (close(fd) < 0)
		abort();
}

/* The one-line value rule, as init.h states it. */
static int ref_check(const uint8_t *data, size_t len)
{
	if (len == 0)
		return -ENODATA;
	if (len > INIT_VALUE_MAX)
		return -EFBIG;
	if (memchr(data, '\0', len))
		return -EILSEQ;
	if (memchr(data, '\n', len) || memchr(data, '\r', len))
		return -EBADMSG;
	return 0;
}

/* What reading the file must give: the value's length, or the code. */
static int ref_read(const uint8_t *data, size_t size)
{
	size_t len = size;

	if (size > INIT_VALUE_MAX)
		return -EFBIG;
	if (memchr(data, '\0', size))
		return -EILSEQ;
	if (len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n')
		len -= 2;
	else if (len >= 1 && data[len - 1] == '\n')
		len--;
	return ref_check(data, len) < 0 ? ref_check(data, len) : (int)len;
}

static void check_value(const char *what, const char *got, size_t got_len, const uint8_t *want, int want_len)
{
	FUZZ_CHECK(got_len == (size_t)want_len && memcmp(got, want, got_len) == 0 && got[got_len] == '\0',
		   "%s: %zu bytes back for a value of %d", what, got_len, want_len);
}

static void check_files(const uint8_t *data, size_t size, bool world_readable)
{
	static char buf[INIT_VALUE_MAX + 2], untouched[] = "untouched";
	struct secrets_value v = {untouched, 4242};
	struct secrets_password pw = {.source = SECRETS_SRC_DEFAULT_FILE};
	struct init_error err = {{0}};
	char env_file[sizeof(path) + 32], *envp[] = {env_file, NULL};
	int want = ref_read(data, size), r;
	struct stat st = {.st_size = 4242};
	bool wr = !world_readable;

	for (unsigned flags = 0; flags <= INIT_READ_BENEATH; flags += INIT_READ_BENEATH) {
		r = init_read_value_file(path, flags, buf, &st);
		FUZZ_CHECK(r == want, "init_read_value_file (flags %u) of %zu bytes gave %d, not %d", flags, size, r,
			   want);
		if (r >= 0)
			check_value("init_read_value_file", buf, (size_t)r, data, r);
		else
			FUZZ_CHECK(st.st_size == 4242, "stat written on a refusal");
	}

	r = secrets_read_file(path, &v, &wr);
	FUZZ_CHECK(r == (want < 0 ? want : 0), "secrets_read_file of %zu bytes gave %d, want %d", size, r, want);
	if (r == 0) {
		check_value("secrets_read_file", v.data, v.len, data, want);
		FUZZ_CHECK(wr == world_readable, "world_readable %d for mode %s", wr, world_readable ? "0644" : "0600");
		secrets_wipe(&v);
	} else {
		FUZZ_CHECK(v.len == 4242 && wr == !world_readable, "out-parameters written on a refusal");
	}

	(void)snprintf(env_file, sizeof(env_file), "REDIS_PASSWORD_FILE=%s", path);
	r = secrets_load_password(envp, NULL, &pw, &err);
	FUZZ_CHECK(r == (want < 0 ? want : 0), "REDIS_PASSWORD_FILE of %zu bytes gave %d, want %d", size, r, want);
	if (r == 0) {
		FUZZ_CHECK(pw.source == SECRETS_SRC_FILE && pw.path && strcmp(pw.path, path) == 0,
			   "the password does not say it came from the file");
		check_value("REDIS_PASSWORD_FILE", pw.value.data, pw.value.len, data, want);
		secrets_password_free(&pw);
	} else {
		FUZZ_CHECK(err.msg[0] && strstr(err.msg, "REDIS_PASSWORD_FILE"),
			   "a refusal that does not name the variable");
		FUZZ_CHECK(pw.source == SECRETS_SRC_DEFAULT_FILE, "ret written on a refusal");
	}
}

/* REDIS_PASSWORD: a C string, so up to the first NUL; empty counts as unset. */
static void check_env(const uint8_t *data, size_t size)
{
	size_t len = strnlen((const char *)data, size);
	struct secrets_password pw = {.source = SECRETS_SRC_DEFAULT_FILE};
	struct init_error err = {{0}};
	char *var = malloc(sizeof("REDIS_PASSWORD=") + len), *envp[] = {var, NULL};
	int want = len ? ref_check(data, len) : 0, r;

	if (!var)
		abort();
	memcpy(var, "REDIS_PASSWORD=", sizeof("REDIS_PASSWORD=") - 1);
	memcpy(var + sizeof("REDIS_PASSWORD=") - 1, data, len);
	var[sizeof("REDIS_PASSWORD=") - 1 + len] = '\0';
	r = secrets_load_password(envp, NULL, &pw, &err);
	FUZZ_CHECK(r == want, "REDIS_PASSWORD of %zu bytes gave %d, want %d", len, r, want);
	if (r == 0 && !len) {
		FUZZ_CHECK(pw.source == SECRETS_SRC_NONE && !pw.value.data, "an empty REDIS_PASSWORD is a password");
	} else if (r == 0) {
		FUZZ_CHECK(pw.source == SECRETS_SRC_ENV, "the password does not say it came from REDIS_PASSWORD");
		check_value("REDIS_PASSWORD", pw.value.data, pw.value.len, data, (int)len);
		secrets_password_free(&pw);
	} else {
		FUZZ_CHECK(err.msg[0] && strstr(err.msg, "REDIS_PASSWORD"),
			   "a refusal that does not name the variable");
		FUZZ_CHECK(pw.source == SECRETS_SRC_DEFAULT_FILE, "ret written on a refusal");
	}
	free(var);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	bool world_readable = size && (data[0] & 1);
	const uint8_t *value = size ? data + 1 : data;
	size_t len = size ? size - 1 : 0;
	int r = init_check_value((const char *)value, len);

	FUZZ_CHECK(r == ref_check(value, len), "init_check_value of %zu bytes gave %d, not %d", len, r,
		   ref_check(value, len));
	setup();
	write_file(value, len, world_readable ? 0644 : 0600);
	check_files(value, len, world_readable);
	check_env(value, len);
	return 0;
}
