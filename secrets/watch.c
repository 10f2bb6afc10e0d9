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

struct secrets_watch {
	struct init_loop *loop;
	const struct secrets_paths *paths;
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

/* (Re)adds the watches: a file that was replaced is a new inode, and a directory may have appeared since. */
static void add_watches(struct secrets_watch *w)
{
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		char buf[PATH_MAX];

		(void)snprintf(buf, sizeof(buf), "%s", w->paths->path[i]);
		/* ENOENT and EACCES are normal here (no next file yet); the poll covers them */
		(void)inotify_add_watch(w->fd, dirname(buf), WATCH_MASK_DIR);
		(void)inotify_add_watch(w->fd, w->paths->path[i], WATCH_MASK_FILE);
	}
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

int secrets_watch_new(struct init_loop *loop, const struct secrets_paths *paths, const struct secrets_set *initial,
		      uint64_t poll_usec, secrets_watch_fn fn, void *userdata, struct secrets_watch **ret)
{
	struct secrets_watch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct secrets_watch){
		.loop = loop,
		.fd = -1,
		.paths = paths,
		.poll_usec = poll_usec,
		.debounce = {.fn = on_debounce, .userdata = w},
		.poll = {.fn = on_poll, .userdata = w},
		.fn = fn,
		.userdata = userdata,
	};
	/* The owner's starting point, copied: a change since then is found by the first read. */
	for (int i = 0; i < SECRETS__SLOTS; i++) {
		w->delivered.error[i] = initial->error[i];
		if (initial->value[i].data &&
		    secrets_value_copy(initial->value[i].data, initial->value[i].len, &w->delivered.value[i]) < 0) {
			secrets_watch_free(w);
			return -ENOMEM;
		}
	}
	w->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->fd < 0) {
		log_warn("cannot watch the password files with inotify: %s; only KVINIT_SECRET_POLL finds a change",
			 strerror(errno));
	} else {
		add_watches(w);
		r = init_loop_add_io(loop, w->fd, EPOLLIN, on_inotify, w);
		if (r < 0) {
			secrets_watch_free(w);
			return r;
		}
	}
	if (poll_usec)
		init_timer_arm(loop, &w->poll, init_now_usec() + poll_usec);
	/* Whatever changed between the first read and now. */
	read_now(w);
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
	free(w);
}
