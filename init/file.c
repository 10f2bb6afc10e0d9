/* SPDX-License-Identifier: MIT */
/*
 * Bounded reads of the small files a user names (KVINIT_CONFIG, a NAME_FILE value, a secret): whatever the path
 * leads to, the read ends at once with the content or a refusal. The open is O_NONBLOCK, so a FIFO without a writer
 * never blocks it; only a regular file is read, so /dev/zero cannot feed it forever; the size is capped. read(2)
 * goes into the caller's buffer, never through stdio, so a caller that reads a secret owns every copy of it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "init.h"

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

static const int open_flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;

static int open_beneath(int dir_fd, const char *name)
{
	int fd = -1;

#ifdef SYS_openat2
	struct open_how how = {
		.flags = (unsigned)open_flags,
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
	fd = openat(dir_fd, name, open_flags);
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

static int open_file(const char *path, unsigned flags)
{
	_cleanup_free_ char *dir = NULL;
	_cleanup_close_ int dir_fd = -1;
	const char *name;
	int fd, r;

	if (!(flags & INIT_READ_BENEATH)) {
		fd = open(path, open_flags);
		return fd < 0 ? -errno : fd;
	}
	r = split_path(path, &dir, &name);
	if (r < 0)
		return r;
	dir_fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0)
		return -errno;
	return open_beneath(dir_fd, name);
}

int init_read_file_bounded(const char *path, unsigned flags, char *buf, size_t size, struct stat *ret_st)
{
	_cleanup_close_ int fd = -1;
	struct stat st;
	size_t n = 0;

	if (size < 2 || size > INT_MAX)
		return -EINVAL;
	fd = open_file(path, flags);
	/* open(2) answers ENXIO for a socket or a device without a driver (ENODEV on old kernels): never a file. */
	if (fd == -ENXIO || fd == -ENODEV)
		return -EBADFD;
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADFD;

	/* st_size is not trusted: the file may grow while it is read, and procfs-like files report 0. */
	while (n < size - 1) {
		ssize_t k = read(fd, buf + n, size - 1 - n);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			break;
		n += (size_t)k;
	}
	buf[n] = '\0';
	/* One byte more than allowed tells "too large" from "exactly the limit". */
	if (n > size - 2)
		return -EFBIG;
	if (memchr(buf, '\0', n))
		return -EILSEQ;
	if (ret_st)
		*ret_st = st;
	return (int)n;
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

int init_check_value(const char *data, size_t len)
{
	if (len == 0)
		return -ENODATA;
	if (len > INIT_VALUE_MAX)
		return -EFBIG;
	if (memchr(data, '\0', len))
		return -EILSEQ;
	/* Config files and the Redis protocol are line based: a line break would split the value or inject a line. */
	if (memchr(data, '\n', len) || memchr(data, '\r', len))
		return -EBADMSG;
	return 0;
}

int init_read_value_file(const char *path, unsigned flags, char buf[INIT_VALUE_MAX + 2], struct stat *ret_st)
{
	struct stat st;
	size_t len;
	int n, r;

	n = init_read_file_bounded(path, flags, buf, INIT_VALUE_MAX + 2, &st);
	if (n < 0)
		return n;
	len = strip_newline(buf, (size_t)n);
	r = init_check_value(buf, len);
	if (r < 0)
		return r;
	buf[len] = '\0';
	if (ret_st)
		*ret_st = st;
	return (int)len;
}

const char *init_value_strerror(int r)
{
	switch (r < 0 ? -r : r) {
	case EXDEV:
		return "is a symlink that leads outside its directory";
	case EBADFD:
		return "is not a regular file";
	case EFBIG:
		return "is larger than " STRINGIFY(INIT_VALUE_MAX) " bytes";
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
