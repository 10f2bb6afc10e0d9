/* SPDX-License-Identifier: MIT */
/*
 * Watching the password files for a change, inside kvinit's one event loop.
 *
 * Two kinds of secret volume reach a container, and each needs its own watch:
 *   - Kubernetes writes a new timestamped directory and swaps the `..data` symlink over to it: the files' own
 *     inodes never change, only the directory sees it (a rename into it). So the directory of every file is watched.
 *   - Compose mounts one host file at one path. Only a write into that very inode reaches the container; so the
 *     file is watched too. When the host replaced the file instead (an editor, mv), the container keeps the old,
 *     unlinked inode for good: kvinit says so loudly, since no change will ever arrive.
 * Events only start a short debounce; then the files are read, and a change counts once two reads in a row agree,
 * so a file caught between its truncation and its write is never taken. A slow poll catches what inotify cannot
 * see (network file systems, a watch that could not be added).
 *
 * The same watch serves other files whose content is not a password (secrets_watch_files: the TLS certificate, key
 * and CA): there each file counts by a digest of its content, and the owner reads the files itself on a change.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>

#include "init.h"
#include "secrets.h"

#define WATCH_DEBOUNCE_USEC (100 * USEC_PER_MSEC)
#define WATCH_MASK_DIR                                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_ONLYDIR)
#define WATCH_MASK_FILE (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

/* A file of a files watch larger than this counts as unreadable (a CA bundle of a distribution is 220 KiB). */
#define WATCH_FILE_MAX ((off_t)4 * 1024 * 1024)

struct secrets_watch {
	struct init_loop *loop;
	const struct secrets_paths *paths; /* the password files, or NULL for a files watch */
	const char *const *files;	   /* a files watch: its paths */
	size_t n_files;
	char (*fp_delivered)[65]; /* a files watch: each file's digest (or "!errno") the owner has now */
	char (*fp_candidate)[65];
	secrets_files_fn files_fn;
	int fd; /* inotify */
	uint64_t poll_usec;
	struct init_timer debounce, poll;
	struct secrets_set delivered; /* what the owner has now */
	struct secrets_set candidate; /* the last read, waiting for a second one that agrees */
	bool have_candidate;
	dev_t warned_dev[SECRETS__SLOTS];
	ino_t warned_ino[SECRETS__SLOTS];
	secrets_watch_fn fn;
	void *userdata;
};

static size_t watched(const struct secrets_watch *w)
{
	return w->paths ? SECRETS__SLOTS : w->n_files;
}

static const char *watched_path(const struct secrets_watch *w, size_t i)
{
	return w->paths ? w->paths->path[i] : w->files[i];
}

/* (Re)adds the watches: a file that was replaced is a new inode, and a directory may have appeared since. */
static void add_watches(struct secrets_watch *w)
{
	for (size_t i = 0; i < watched(w); i++) {
		char buf[PATH_MAX];

		(void)snprintf(buf, sizeof(buf), "%s", watched_path(w, i));
		/* ENOENT and EACCES are normal here (no next file yet); the poll covers them */
		(void)inotify_add_watch(w->fd, dirname(buf), WATCH_MASK_DIR);
		(void)inotify_add_watch(w->fd, watched_path(w, i), WATCH_MASK_FILE);
	}
}

/* The digest of the file at path, or "!<errno>" when it cannot be read whole. */
static void file_digest(const char *path, char ret[65])
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	struct stat st;

	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > WATCH_FILE_MAX) {
		(void)snprintf(ret, 65, "!%d", fd < 0 ? errno : EBADFD);
		return;
	}
	buf = malloc((size_t)st.st_size + 1);
	while (buf && len <= (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size + 1 - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	if (!buf || len > (size_t)st.st_size) {
		/* out of memory, or it grew while read: read again later */
		(void)snprintf(ret, 65, "!%d", buf ? EAGAIN : ENOMEM);
		return;
	}
	secrets_sha256_hex(buf, len, ret);
}

static bool digests_equal(char (*a)[65], char (*b)[65], size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* read_now of a files watch: the same two reads that must agree, on the files' digests. */
static void read_files_now(struct secrets_watch *w)
{
	char(*now)[65] = w->fp_candidate + w->n_files; /* scratch after the candidate */

	for (size_t i = 0; i < w->n_files; i++)
		file_digest(w->files[i], now[i]);
	add_watches(w);
	if (w->have_candidate && digests_equal(now, w->fp_candidate, w->n_files)) {
		w->have_candidate = false;
		if (digests_equal(now, w->fp_delivered, w->n_files))
			return;
		memcpy(w->fp_delivered, now, w->n_files * sizeof(*now));
		w->files_fn(w->userdata);
		return;
	}
	if (!w->have_candidate && digests_equal(now, w->fp_delivered, w->n_files))
		return;
	memcpy(w->fp_candidate, now, w->n_files * sizeof(*now));
	w->have_candidate = true;
	init_timer_arm(w->loop, &w->debounce, init_now_usec() + WATCH_DEBOUNCE_USEC);
}

/* The file at path has no link left: the host replaced it, and this mount will never show the new one. */
static void check_replaced(struct secrets_watch *w, int slot)
{
	struct stat st;

	if (stat(w->paths->path[slot], &st) < 0 || st.st_nlink > 0)
		return;
	if (w->warned_dev[slot] == st.st_dev && w->warned_ino[slot] == st.st_ino)
		return;
	w->warned_dev[slot] = st.st_dev;
	w->warned_ino[slot] = st.st_ino;
	log_warn("the password file '%s' was replaced, not written: its old copy is all this container will "
		 "ever see (a single-file bind mount keeps the inode it started with), so kvinit cannot rotate to the "
		 "new password. Write the file in place instead (`cat new > file`, `printf '%%s\\n' \"$pw\" > file`; "
		 "not an editor that saves by rename, not mv or sed -i), or recreate the container",
		 w->paths->path[slot]);
}

static void read_now(struct secrets_watch *w)
{
	struct secrets_set now;

	if (!w->paths) {
		read_files_now(w);
		return;
	}
	secrets_set_read(w->paths, &now);
	for (int i = 0; i < SECRETS__SLOTS; i++)
		check_replaced(w, i);
	add_watches(w);

	if (w->have_candidate && secrets_set_equal(&now, &w->candidate)) {
		/* two reads agree */
		secrets_set_wipe(&w->candidate);
		w->have_candidate = false;
		if (secrets_set_equal(&now, &w->delivered)) {
			secrets_set_wipe(&now);
			return;
		}
		secrets_set_wipe(&w->delivered);
		w->delivered = now;
		w->fn(&w->delivered, w->userdata);
		return;
	}
	if (!w->have_candidate && secrets_set_equal(&now, &w->delivered)) {
		secrets_set_wipe(&now);
		return;
	}
	secrets_set_wipe(&w->candidate);
	w->candidate = now;
	w->have_candidate = true;
	init_timer_arm(w->loop, &w->debounce, init_now_usec() + WATCH_DEBOUNCE_USEC);
}

static void on_debounce(struct init_loop *loop, void *userdata)
{
	(void)loop;
	read_now(userdata);
}

static void on_poll(struct init_loop *loop, void *userdata)
{
	struct secrets_watch *w = userdata;

	init_timer_arm(loop, &w->poll, init_now_usec() + w->poll_usec);
	if (!w->debounce.armed)
		read_now(w);
}

static void on_inotify(struct init_loop *loop, int fd, uint32_t events, void *userdata)
{
	struct secrets_watch *w = userdata;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)events;
	/* What changed does not matter: the files are read again as a whole. */
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	/* A write comes as truncate, write, close: read a moment after the first event, and then again. */
	if (!w->debounce.armed)
		init_timer_arm(loop, &w->debounce, init_now_usec() + WATCH_DEBOUNCE_USEC);
}

/* inotify and the poll for w; then a first read (whatever changed since the owner's). Frees w on failure. */
static int start(struct secrets_watch *w, const char *what)
{
	int r;

	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		log_warn("cannot watch %s with inotify: %s; only KVINIT_SECRET_POLL finds a change", what,
			 strerror(errno));
	} else {
		add_watches(w);
		r = init_loop_add_io(w->loop, w->fd, EPOLLIN, on_inotify, w);
		if (r < 0) {
			secrets_watch_free(w);
			return r;
		}
	}
	if (w->poll_usec)
		init_timer_arm(w->loop, &w->poll, init_now_usec() + w->poll_usec);
	read_now(w);
	return 0;
}

/* A watch on loop, not started: no inotify descriptor yet, its timers calling back into it. NULL when out of memory. */
static struct secrets_watch *watch_alloc(struct init_loop *loop, uint64_t poll_usec, void *userdata)
{
	struct secrets_watch *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	*w = (struct secrets_watch){
		.loop = loop,
		.fd = -1,
		.poll_usec = poll_usec,
		.debounce = {.fn = on_debounce, .userdata = w},
		.poll = {.fn = on_poll, .userdata = w},
		.userdata = userdata,
	};
	return w;
}

int secrets_watch_new(struct init_loop *loop, const struct secrets_paths *paths, const struct secrets_set *initial,
		      uint64_t poll_usec, secrets_watch_fn fn, void *userdata, struct secrets_watch **ret)
{
	struct secrets_watch *w = watch_alloc(loop, poll_usec, userdata);
	int r;

	if (!w)
		return -ENOMEM;
	w->paths = paths;
	w->fn = fn;
	/* The owner's starting point, copied: a change since then is found by the first read. */
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		w->delivered.error[i] = initial->error[i];
		if (initial->value[i].data &&
		    secrets_value_copy(initial->value[i].data, initial->value[i].len, &w->delivered.value[i]) < 0) {
			secrets_watch_free(w);
			return -ENOMEM;
		}
	}
	r = start(w, "the password files");
	if (r < 0)
		return r;
	*ret = w;
	return 0;
}

int secrets_watch_files(struct init_loop *loop, const char *const *paths, size_t n, uint64_t poll_usec,
			secrets_files_fn fn, void *userdata, struct secrets_watch **ret)
{
	struct secrets_watch *w = watch_alloc(loop, poll_usec, userdata);
	int r;

	if (!w)
		return -ENOMEM;
	w->files = paths;
	w->n_files = n;
	w->files_fn = fn;
	w->fp_delivered = calloc(n ? n : 1, sizeof(*w->fp_delivered));
	w->fp_candidate = calloc(n ? 2 * n : 1, sizeof(*w->fp_candidate));
	if (!w->fp_delivered || !w->fp_candidate) {
		secrets_watch_free(w);
		return -ENOMEM;
	}
	/* the starting point: the files as they are now, which the owner has just read */
	for (size_t i = 0; i < n; i++)
		file_digest(paths[i], w->fp_delivered[i]);
	r = start(w, "the TLS files");
	if (r < 0)
		return r;
	*ret = w;
	return 0;
}

void secrets_watch_free(struct secrets_watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		(void)close(w->fd);
	secrets_set_wipe(&w->delivered);
	secrets_set_wipe(&w->candidate);
	free(w->fp_delivered);
	free(w->fp_candidate);
	free(w);
}
