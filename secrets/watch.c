/* SPDX-License-Identifier: MIT */
/*
 * Watching files for a change, inside kvinit's one event loop: the password files, the TLS certificate, key and CA
 * (file and directory), the users file and the password files it names. One mechanism for all of them.
 *
 * Two kinds of secret volume reach a container, and each needs its own watch:
 *   - Kubernetes writes a new timestamped directory and swaps the `..data` symlink over to it: the files' own
 *     inodes never change, only the directory sees it (a rename into it). So the directory of every file is watched.
 *   - Compose mounts one host file at one path. Only a write into that very inode reaches the container; so the
 *     file is watched too. When the host replaced the file instead (an editor, mv), the container keeps the old,
 *     unlinked inode for good: kvinit says so loudly, since no change will ever arrive.
 * A watched path that is a directory (REDIS_TLS_CA_DIR) counts by its entries: each name with its content.
 *
 * Events only start a short debounce; then the files are read, and a change counts once two reads in a row agree,
 * so a file caught between its truncation and its write is never taken. A slow poll catches what inotify cannot
 * see (network file systems, a watch that could not be added). Idle, nothing runs but that poll.
 *
 * What is compared is a fingerprint: each file's SHA-256, or the error that reading it gave. For the password
 * files it is taken from the values as they are read (so a trailing newline added changes nothing), and the owner
 * is given the set; for the other files the owner reads them itself when told they changed.
 */
#include <dirent.h>
#include <errno.h>
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
#define WATCH_MASK_SELF (IN_DELETE_SELF | IN_MOVE_SELF)
#define WATCH_MASK_FILE (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | WATCH_MASK_SELF)

struct secrets_watch {
	struct init_loop *loop;
	char **paths;
	size_t n;
	size_t max_size; /* of one file (not for the password files: INIT_VALUE_MAX) */
	unsigned flags;
	int fd; /* inotify */
	uint64_t poll_usec;
	struct init_timer debounce, poll;
	char *delivered; /* the fingerprint the owner has; NULL: none yet */
	char *candidate; /* the last read, waiting for a second one that agrees */
	/* a watch of the password files: the set the owner was given last (valid until the next call) */
	const struct secrets_paths *secrets;
	struct secrets_set set;
	secrets_watch_fn set_fn;
	secrets_files_fn files_fn;
	dev_t *warned_dev; /* per path: the replaced inode already warned about */
	ino_t *warned_ino;
	void *userdata;
};

static void free_paths(struct secrets_watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->paths[i]);
	free(w->paths);
	free(w->warned_dev);
	free(w->warned_ino);
	w->paths = NULL;
	w->warned_dev = NULL;
	w->warned_ino = NULL;
	w->n = 0;
}

int secrets_watch_set_paths(struct secrets_watch *w, const char *const *paths, size_t n)
{
	char **copy = calloc(n + 1, sizeof(*copy));
	dev_t *dev = calloc(n + 1, sizeof(*dev));
	ino_t *ino = calloc(n + 1, sizeof(*ino));
	size_t i;

	for (i = 0; copy && dev && ino && i < n; i++) {
		copy[i] = strdup(paths[i] ? paths[i] : "");
		if (!copy[i])
			break;
	}
	if (!copy || !dev || !ino || i < n) {
		for (size_t k = 0; copy && k < i; k++)
			free(copy[k]);
		free(copy);
		free(dev);
		free(ino);
		return -ENOMEM;
	}
	free_paths(w);
	w->paths = copy;
	w->warned_dev = dev;
	w->warned_ino = ino;
	w->n = n;
	return 0;
}

/* (Re)adds the watches: a file that was replaced is a new inode, and a directory may have appeared since. */
static void add_watches(struct secrets_watch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		char buf[PATH_MAX];
		struct stat st;

		(void)snprintf(buf, sizeof(buf), "%s", w->paths[i]);
		/* ENOENT and EACCES are normal here (no next file yet); the poll covers them */
		(void)inotify_add_watch(w->fd, dirname(buf), WATCH_MASK_DIR | IN_MASK_ADD);
		/* a watched directory (REDIS_TLS_CA_DIR) may also be the directory of another path: masks add up */
		if (stat(w->paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			(void)inotify_add_watch(w->fd, w->paths[i], WATCH_MASK_DIR | WATCH_MASK_SELF | IN_MASK_ADD);
		else
			(void)inotify_add_watch(w->fd, w->paths[i], WATCH_MASK_FILE | IN_MASK_ADD);
	}
}

/* "<error> <sha256>" of the file at path into f; buf is scratch of max_size + 2 bytes. */
static void fingerprint_file(const struct secrets_watch *w, FILE *f, const char *path, char *buf)
{
	unsigned flags = (w->flags & SECRETS_WATCH_BENEATH) ? INIT_READ_BENEATH : 0;
	int n = init_read_file_bounded(path, flags, buf, w->max_size + 2, NULL);
	char hash[65] = "-";

	if (n >= 0)
		secrets_sha256_hex(buf, (size_t)n, hash);
	(void)fprintf(f, "%d %s\n", n < 0 ? n : 0, hash);
}

static int visible(const struct dirent *d)
{
	return d->d_name[0] != '.';
}

/* A directory: each entry (not the hidden ones: a Kubernetes volume's ..data) by name and content, in order. */
static void fingerprint_dir(const struct secrets_watch *w, FILE *f, const char *dir, char *buf)
{
	struct dirent **list = NULL;
	int n = scandir(dir, &list, visible, alphasort);

	if (n < 0) {
		(void)fprintf(f, "%d dir\n", -errno);
		return;
	}
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];

		(void)snprintf(path, sizeof(path), "%s/%s", dir, list[i]->d_name);
		(void)fprintf(f, "%s ", list[i]->d_name);
		fingerprint_file(w, f, path, buf);
		free(list[i]);
	}
	free(list);
}

/*
 * "<error> <sha256>\n" for each file, in order; for the password files (set), of each value as read. NULL when out
 * of memory.
 */
static char *fingerprint(const struct secrets_watch *w, const struct secrets_set *set)
{
	char *buf = NULL, *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!set) {
		buf = malloc(w->max_size + 2);
		if (!buf)
			return NULL;
	}
	f = open_memstream(&text, &len);
	if (!f) {
		free(buf);
		return NULL;
	}
	for (int i = 0; set && i < SECRETS__SLOTS; i++) {
		char hash[65] = "-";

		if (set->value[i].data)
			secrets_sha256_hex(set->value[i].data, set->value[i].len, hash);
		(void)fprintf(f, "%d %s\n", set->error[i], hash);
	}
	for (size_t i = 0; buf && i < w->n; i++) {
		struct stat st;

		if (stat(w->paths[i], &st) == 0 && S_ISDIR(st.st_mode))
			fingerprint_dir(w, f, w->paths[i], buf);
		else
			fingerprint_file(w, f, w->paths[i], buf);
	}
	if (buf) {
		/* the files may hold passwords */
		explicit_bzero(buf, w->max_size + 2);
		free(buf);
	}
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

/* The file at path has no link left: the host replaced it, and this mount will never show the new one. */
static void check_replaced(struct secrets_watch *w, size_t i)
{
	struct stat st;

	if (stat(w->paths[i], &st) < 0 || st.st_nlink > 0 || S_ISDIR(st.st_mode))
		return;
	if (w->warned_dev[i] == st.st_dev && w->warned_ino[i] == st.st_ino)
		return;
	w->warned_dev[i] = st.st_dev;
	w->warned_ino[i] = st.st_ino;
	log_warn("the %s file '%s' was replaced, not written: its old copy is all this container will ever see (a "
		 "single-file bind mount keeps the inode it started with), so kvinit cannot %s. Write the file in "
		 "place instead (`cat new > file`, `printf '%%s\\n' \"$pw\" > file`; not an editor that saves by "
		 "rename, not mv or sed -i), or recreate the container",
		 w->secrets ? "password" : "watched", w->paths[i],
		 w->secrets ? "rotate to the new password" : "take its new content");
}

static void deliver(struct secrets_watch *w, struct secrets_set *set)
{
	if (!w->secrets) {
		w->files_fn(w->userdata);
		return;
	}
	secrets_set_wipe(&w->set);
	w->set = *set;
	*set = (struct secrets_set){0};
	w->set_fn(&w->set, w->userdata);
}

static void read_now(struct secrets_watch *w)
{
	struct secrets_set set = {0};
	char *now;

	if (w->secrets)
		secrets_set_read(w->secrets, &set);
	now = fingerprint(w, w->secrets ? &set : NULL);

	for (size_t i = 0; i < w->n; i++)
		check_replaced(w, i);
	add_watches(w);
	if (!now) {
		secrets_set_wipe(&set);
		return; /* out of memory: the next event or poll tries again */
	}
	if (w->candidate && strcmp(now, w->candidate) == 0) {
		/* two reads agree */
		free(w->candidate);
		w->candidate = NULL;
		if (!w->delivered || strcmp(now, w->delivered) != 0) {
			free(w->delivered);
			w->delivered = now;
			now = NULL;
			deliver(w, &set);
		}
	} else if (w->candidate || !w->delivered || strcmp(now, w->delivered) != 0) {
		free(w->candidate);
		w->candidate = now;
		now = NULL;
		init_timer_arm(w->loop, &w->debounce, init_now_usec() + WATCH_DEBOUNCE_USEC);
	}
	free(now);
	secrets_set_wipe(&set);
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

/* A watch on loop of paths (copied), not started. Frees w on failure. */
static int watch_alloc(struct init_loop *loop, const char *const *paths, size_t n, uint64_t poll_usec, void *userdata,
		       struct secrets_watch **ret)
{
	struct secrets_watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct secrets_watch){
		.loop = loop,
		.fd = -1,
		.poll_usec = poll_usec,
		.debounce = {.fn = on_debounce, .userdata = w},
		.poll = {.fn = on_poll, .userdata = w},
		.userdata = userdata,
	};
	r = secrets_watch_set_paths(w, paths, n);
	if (r < 0) {
		free(w);
		return r;
	}
	*ret = w;
	return 0;
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

int secrets_watch_new(struct init_loop *loop, const struct secrets_paths *paths, const struct secrets_set *initial,
		      uint64_t poll_usec, secrets_watch_fn fn, void *userdata, struct secrets_watch **ret)
{
	struct secrets_watch *w;
	int r;

	r = watch_alloc(loop, (const char *const *)paths->path, SECRETS__SLOTS, poll_usec, userdata, &w);
	if (r < 0)
		return r;
	w->secrets = paths;
	w->set_fn = fn;
	/* the owner's starting point: a change since then is found by the first read */
	w->delivered = fingerprint(w, initial);
	if (!w->delivered) {
		secrets_watch_free(w);
		return -ENOMEM;
	}
	r = start(w, "the password files");
	if (r < 0)
		return r;
	*ret = w;
	return 0;
}

int secrets_watch_files(struct init_loop *loop, const char *const *paths, size_t n, size_t max_size, unsigned flags,
			uint64_t poll_usec, secrets_files_fn fn, void *userdata, struct secrets_watch **ret)
{
	struct secrets_watch *w;
	char what[PATH_MAX + 2];
	int r;

	r = watch_alloc(loop, paths, n, poll_usec, userdata, &w);
	if (r < 0)
		return r;
	w->max_size = max_size;
	w->flags = flags;
	w->files_fn = fn;
	if (flags & SECRETS_WATCH_FROM_NOW) {
		/* the starting point: the files as they are now, which the owner has just read */
		w->delivered = fingerprint(w, NULL);
		if (!w->delivered) {
			secrets_watch_free(w);
			return -ENOMEM;
		}
	}
	(void)snprintf(what, sizeof(what), "'%s'", n ? w->paths[0] : "");
	r = start(w, what);
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
	free_paths(w);
	secrets_set_wipe(&w->set);
	free(w->delivered);
	free(w->candidate);
	free(w);
}
