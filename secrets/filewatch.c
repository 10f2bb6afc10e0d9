/* SPDX-License-Identifier: MIT */
/*
 * Watching a list of files of any shape (the users file and the password files it names, which a password slot of
 * watch.c cannot hold: many lines), inside kvinit's one event loop, the way watch.c watches the password files:
 * inotify on each file (a compose secret: a write into its one inode) and on its directory (a Kubernetes Secret
 * volume: the `..data` swap), a short debounce after an event, a change counted once two reads in a row agree, and
 * a slow poll for what inotify cannot see. What is compared is a fingerprint of the files (each one's SHA-256, or
 * the error that reading it gave); the owner reads the files itself when it is told they changed.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>

#include "init.h"
#include "secrets.h"

#define FILES_DEBOUNCE_USEC (100 * USEC_PER_MSEC)
#define FILES_MASK_DIR                                                                                                 \
	(IN_CREATE | IN_DELETE | IN_MOVED_TO | IN_MOVED_FROM | IN_CLOSE_WRITE | IN_MODIFY | IN_ATTRIB | IN_ONLYDIR)
#define FILES_MASK_FILE (IN_MODIFY | IN_CLOSE_WRITE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF)

struct secrets_files_watch {
	struct init_loop *loop;
	char **paths;
	size_t n;
	size_t max_size;
	int fd; /* inotify */
	uint64_t poll_usec;
	struct init_timer debounce, poll;
	char *delivered; /* the fingerprint the owner has seen; NULL: none yet */
	char *candidate; /* the last read, waiting for a second one that agrees */
	secrets_files_fn fn;
	void *userdata;
};

static void free_paths(struct secrets_files_watch *w)
{
	for (size_t i = 0; i < w->n; i++)
		free(w->paths[i]);
	free(w->paths);
	w->paths = NULL;
	w->n = 0;
}

int secrets_files_watch_set_paths(struct secrets_files_watch *w, const char *const *paths, size_t n)
{
	char **copy = calloc(n + 1, sizeof(*copy));

	if (!copy)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		copy[i] = strdup(paths[i]);
		if (!copy[i]) {
			for (size_t k = 0; k < i; k++)
				free(copy[k]);
			free(copy);
			return -ENOMEM;
		}
	}
	free_paths(w);
	w->paths = copy;
	w->n = n;
	return 0;
}

static void add_watches(struct secrets_files_watch *w)
{
	for (size_t i = 0; i < w->n; i++) {
		char buf[PATH_MAX];

		(void)snprintf(buf, sizeof(buf), "%s", w->paths[i]);
		/* a file that is not there yet is normal; the poll covers it */
		(void)inotify_add_watch(w->fd, dirname(buf), FILES_MASK_DIR);
		(void)inotify_add_watch(w->fd, w->paths[i], FILES_MASK_FILE);
	}
}

/* "<error> <sha256>\n" for each file, in order; NULL when out of memory. */
static char *fingerprint(const struct secrets_files_watch *w)
{
	char *buf = malloc(w->max_size + 2), *text = NULL;
	size_t len = 0;
	FILE *f;

	if (!buf)
		return NULL;
	f = open_memstream(&text, &len);
	if (!f) {
		free(buf);
		return NULL;
	}
	for (size_t i = 0; i < w->n; i++) {
		int n = init_read_file_bounded(w->paths[i], INIT_READ_BENEATH, buf, w->max_size + 2, NULL);
		char hash[65] = "-";

		if (n >= 0)
			secrets_sha256_hex(buf, (size_t)n, hash);
		(void)fprintf(f, "%d %s\n", n < 0 ? n : 0, hash);
	}
	/* the files may hold passwords */
	explicit_bzero(buf, w->max_size + 2);
	free(buf);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}

static void read_now(struct secrets_files_watch *w)
{
	char *now = fingerprint(w);

	add_watches(w);
	if (!now)
		return; /* out of memory: the next event or poll tries again */
	if (w->candidate && strcmp(now, w->candidate) == 0) {
		/* two reads agree */
		free(w->candidate);
		w->candidate = NULL;
		if (w->delivered && strcmp(now, w->delivered) == 0) {
			free(now);
			return;
		}
		free(w->delivered);
		w->delivered = now;
		w->fn(w->userdata);
		return;
	}
	if (!w->candidate && w->delivered && strcmp(now, w->delivered) == 0) {
		free(now);
		return;
	}
	free(w->candidate);
	w->candidate = now;
	init_timer_arm(w->loop, &w->debounce, init_now_usec() + FILES_DEBOUNCE_USEC);
}

static void on_debounce(struct init_loop *loop, void *userdata)
{
	(void)loop;
	read_now(userdata);
}

static void on_poll(struct init_loop *loop, void *userdata)
{
	struct secrets_files_watch *w = userdata;

	init_timer_arm(loop, &w->poll, init_now_usec() + w->poll_usec);
	if (!w->debounce.armed)
		read_now(w);
}

static void on_inotify(struct init_loop *loop, int fd, uint32_t events, void *userdata)
{
	struct secrets_files_watch *w = userdata;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	(void)events;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	if (!w->debounce.armed)
		init_timer_arm(loop, &w->debounce, init_now_usec() + FILES_DEBOUNCE_USEC);
}

int secrets_files_watch_new(struct init_loop *loop, const char *const *paths, size_t n, size_t max_size,
			    uint64_t poll_usec, secrets_files_fn fn, void *userdata, struct secrets_files_watch **ret)
{
	struct secrets_files_watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct secrets_files_watch){
		.loop = loop,
		.fd = -1,
		.max_size = max_size,
		.poll_usec = poll_usec,
		.debounce = {.fn = on_debounce, .userdata = w},
		.poll = {.fn = on_poll, .userdata = w},
		.fn = fn,
		.userdata = userdata,
	};
	r = secrets_files_watch_set_paths(w, paths, n);
	if (r < 0) {
		secrets_files_watch_free(w);
		return r;
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		log_warn("cannot watch '%s' with inotify: %s; only KVINIT_SECRET_POLL finds a change", paths[0],
			 strerror(errno));
	} else {
		add_watches(w);
		r = init_loop_add_io(loop, w->fd, EPOLLIN, on_inotify, w);
		if (r < 0) {
			secrets_files_watch_free(w);
			return r;
		}
	}
	if (poll_usec)
		init_timer_arm(loop, &w->poll, init_now_usec() + poll_usec);
	/* the first fingerprint is delivered once it is stable: the owner compares it with what it read at start */
	read_now(w);
	*ret = w;
	return 0;
}

void secrets_files_watch_free(struct secrets_files_watch *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		(void)close(w->fd);
	free_paths(w);
	free(w->delivered);
	free(w->candidate);
	free(w);
}
