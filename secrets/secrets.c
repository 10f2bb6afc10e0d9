/* SPDX-License-Identifier: MIT */
/*
 * Secret files and the node's password. A secret is read with read(2) into one buffer that this module owns from
 * start to end, never through stdio: a FILE's buffer would hold a copy that fclose() frees without wiping.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "init.h"
#include "secrets.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

/* Memory that may hold secret bytes: the whole allocation is wiped before it is freed, not only what was used. */
struct wipe_buf {
	char *data;
	size_t size;
};

static void wipe_buf_free(struct wipe_buf *b)
{
	if (!b->data)
		return;
	explicit_bzero(b->data, b->size);
	free(b->data);
	b->data = NULL;
}

#define _cleanup_wipe_ _cleanup_(wipe_buf_free)

void secrets_wipe(struct secrets_value *v)
{
	if (v->data) {
		explicit_bzero(v->data, v->len + 1);
		free(v->data);
	}
	*v = (struct secrets_value){0};
}

int secrets_value_copy(const char *data, size_t len, struct secrets_value *ret)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, data, len);
	copy[len] = '\0';
	*ret = (struct secrets_value){.data = copy, .len = len};
	return 0;
}

bool secrets_value_equal(const struct secrets_value *a, const struct secrets_value *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

void secrets_password_free(struct secrets_password *p)
{
	secrets_wipe(&p->value);
	free(p->path);
	*p = (struct secrets_password){0};
}

const char *secrets_strerror(int r)
{
	switch (r < 0 ? -r : r) {
	case EXDEV:
		return "is a symlink that leads outside its directory";
	case EBADFD:
		return "is not a regular file";
	case EFBIG:
		return "is larger than " STRINGIFY(SECRETS_MAX_SIZE) " bytes";
	case ENODATA:
		return "is empty";
	case EILSEQ:
		return "contains a NUL byte";
	case EBADMSG:
		return "contains a line break";
	default:
		return strerror(r < 0 ? -r : r);
	}
}

/* The content rules, shared by files (after their trailing newline is gone) and REDIS_PASSWORD. No I/O. */
static int check_content(const char *data, size_t len)
{
	if (len == 0)
		return -ENODATA;
	if (len > SECRETS_MAX_SIZE)
		return -EFBIG;
	if (memchr(data, '\0', len))
		return -EILSEQ;
	/* Redis config files and the protocol are line based: a line break would split the secret or inject a line. */
	if (memchr(data, '\n', len) || memchr(data, '\r', len))
		return -EBADMSG;
	return 0;
}

/* Editors and `echo` add one newline, Windows editors "\r\n"; more than one is taken for a mistake, not stripped. */
static size_t strip_newline(const char *data, size_t len)
{
	if (len >= 2 && data[len - 2] == '\r' && data[len - 1] == '\n')
		return len - 2;
	if (len >= 1 && data[len - 1] == '\n')
		return len - 1;
	return len;
}

static int open_beneath(int dir_fd, const char *name)
{
	const int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd = -1;

#ifdef SYS_openat2
	struct open_how how = {
		.flags = (unsigned)flags,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};

	/* EAGAIN: a rename raced with the lookup and the kernel could not vouch for it; the man page says retry. */
	for (int attempt = 0; attempt < 8; attempt++) {
		fd = (int)syscall(SYS_openat2, dir_fd, name, &how, sizeof(how));
		if (fd >= 0 || errno != EAGAIN)
			break;
	}
	if (fd >= 0)
		return fd;
	/*
	 * Kernels before 5.6 lack openat2 (ENOSYS); seccomp profiles older than the syscall (Docker before 20.10)
	 * refuse it with EPERM. openat2 never answers EPERM for a path that plain open would accept, so both fall
	 * back; the plain open gives the real error. The fallback cannot keep symlinks inside the directory.
	 */
	if (errno != ENOSYS && errno != EPERM)
		return -errno;
#endif
	fd = openat(dir_fd, name, flags);
	return fd < 0 ? -errno : fd;
}

/* The directory of path (its own allocation) and the name inside it; "a/" names "a" itself, as "a/.". */
static int split_path(const char *path, char **ret_dir, const char **ret_name)
{
	const char *slash = strrchr(path, '/');
	char *dir;

	if (!slash)
		dir = strdup(".");
	else if (slash == path)
		dir = strdup("/");
	else
		dir = strndup(path, (size_t)(slash - path));
	if (!dir)
		return -ENOMEM;
	*ret_dir = dir;
	*ret_name = !slash ? path : slash[1] ? slash + 1 : ".";
	return 0;
}

int secrets_read_file(const char *path, struct secrets_value *ret_value, bool *ret_world_readable)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dir_fd = -1, fd = -1;
	/* One byte more than allowed tells "too large" from "exactly the limit"; one more again for the NUL. */
	_cleanup_wipe_ struct wipe_buf buf = {.size = SECRETS_MAX_SIZE + 2};
	const char *name;
	struct stat st;
	size_t n = 0, len;
	int r;

	r = split_path(path, &dir, &name);
	if (r < 0)
		return r;
	dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	fd = open_beneath(dir_fd, name);
	/* open(2) answers ENXIO for a socket or a device without a driver (ENODEV on old kernels): never a file. */
	if (fd == -ENXIO || fd == -ENODEV)
		return -EBADFD;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;

	buf.data = malloc(buf.size);
	if (!buf.data)
		return -ENOMEM;
	/* st_size is not trusted: the file may grow while it is read, and procfs-like files report 0. */
	while (n < SECRETS_MAX_SIZE + 1) {
		ssize_t k = read(fd, buf.data + n, SECRETS_MAX_SIZE + 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	if (n > SECRETS_MAX_SIZE)
		return -EFBIG;

	len = strip_newline(buf.data, n);
	r = check_content(buf.data, len);
	if (r < 0)
		return r;
	buf.data[len] = '\0';

	if (ret_world_readable)
		*ret_world_readable = (st.st_mode & S_IROTH) != 0;
	/* The value keeps the read buffer: a copy would be one more place the secret has been. */
	*ret_value = (struct secrets_value){.data = buf.data, .len = len};
	buf.data = NULL;
	return 0;
}

/* The value of name in envp; an empty value counts as unset, as compose files write "VAR=" for "not given". */
static const char *env_get(char *const *envp, const char *name)
{
	const char *v = init_env_lookup(envp, name);

	return v && *v ? v : NULL;
}

static int load_file(const char *path, enum secrets_source source, struct secrets_password *ret, struct init_error *err)
{
	_cleanup_(secrets_wipe) struct secrets_value value = {0};
	char shown[320];
	bool world_readable = false;
	char *copy;
	int r;

	r = secrets_read_file(path, &value, &world_readable);
	if (r == -ENOENT && source == SECRETS_SRC_DEFAULT_FILE)
		return r; /* the caller moves on to the next source */
	init_escape_control(shown, sizeof(shown), path);
	if (r < 0) {
		if (source == SECRETS_SRC_FILE)
			(void)snprintf(err->msg, sizeof(err->msg), "REDIS_PASSWORD_FILE='%s': %s", shown,
				       secrets_strerror(r));
		else
			(void)snprintf(err->msg, sizeof(err->msg), "password file '%s': %s", shown,
				       secrets_strerror(r));
		return r;
	}
	copy = strdup(path);
	if (!copy) {
		(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	*ret = (struct secrets_password){
		.value = value,
		.source = source,
		.path = copy,
		.world_readable = world_readable,
	};
	value = (struct secrets_value){0};
	return 0;
}

int secrets_load_password(char *const *envp, const char *default_path, struct secrets_password *ret,
			  struct init_error *err)
{
	const char *file = env_get(envp, "REDIS_PASSWORD_FILE"), *env = env_get(envp, "REDIS_PASSWORD");
	struct secrets_value value;
	size_t len;
	int r;

	if (file && env) {
		(void)snprintf(err->msg, sizeof(err->msg),
			       "REDIS_PASSWORD and REDIS_PASSWORD_FILE are both set: set only one (prefer the file)");
		return -EINVAL;
	}
	if (file)
		return load_file(file, SECRETS_SRC_FILE, ret, err);
	if (default_path && *default_path) {
		r = load_file(default_path, SECRETS_SRC_DEFAULT_FILE, ret, err);
		if (r != -ENOENT)
			return r;
	}
	if (!env) {
		*ret = (struct secrets_password){.source = SECRETS_SRC_NONE};
		return 0;
	}

	/* A string from the environment cannot hold a NUL; strnlen stops early at a value far above the limit. */
	len = strnlen(env, SECRETS_MAX_SIZE + 1);
	r = check_content(env, len);
	if (r < 0) {
		(void)snprintf(err->msg, sizeof(err->msg), "REDIS_PASSWORD: %s", secrets_strerror(r));
		return r;
	}
	if (secrets_value_copy(env, len, &value) < 0) {
		(void)snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -ENOMEM;
	}
	*ret = (struct secrets_password){.value = value, .source = SECRETS_SRC_ENV};
	return 0;
}
