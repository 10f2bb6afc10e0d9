/* SPDX-License-Identifier: MIT */
/*
 * One epoll loop for the whole process: file descriptors (signalfd, inotify, sockets) and timers that share a
 * single timerfd. With no timer armed the timerfd is disarmed and epoll_wait sleeps without a timeout, so an
 * idle kvinit is never woken up.
 */
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <time.h>

#include "init.h"

#define LOOP_MAX_IO	16
#define LOOP_MAX_TIMERS 16

struct io_watch {
	int fd;
	init_io_fn fn;
	void *userdata;
};

struct init_loop {
	int epfd, timerfd;
	struct io_watch io[LOOP_MAX_IO];
	struct init_timer *timers[LOOP_MAX_TIMERS];
	uint64_t timerfd_deadline; /* what the timerfd is set to; 0 = disarmed */
	bool quit;
	int code;
};

int init_loop_new(struct init_loop **ret_loop)
{
	struct init_loop *loop = calloc(1, sizeof(*loop));
	struct epoll_event ev = {.events = EPOLLIN};
	int r;

	if (!loop)
		return -ENOMEM;
	for (int i = 0; i < LOOP_MAX_IO; i++)
		loop->io[i].fd = -1;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (loop->epfd < 0 || loop->timerfd < 0)
		goto fail;
	ev.data.fd = loop->timerfd;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->timerfd, &ev) < 0)
		goto fail;
	*ret_loop = loop;
	return 0;
fail:
	r = -errno;
	init_loop_free(loop);
	return r;
}

void init_loop_free(struct init_loop *loop)
{
	if (!loop)
		return;
	if (loop->epfd >= 0)
		(void)close(loop->epfd);
	if (loop->timerfd >= 0)
		(void)close(loop->timerfd);
	free(loop);
}

int init_loop_add_io(struct init_loop *loop, int fd, uint32_t events, init_io_fn fn, void *userdata)
{
	struct epoll_event ev = {.events = events, .data.fd = fd};

	for (int i = 0; i < LOOP_MAX_IO; i++) {
		if (loop->io[i].fd >= 0)
			continue;
		if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			return -errno;
		loop->io[i] = (struct io_watch){.fd = fd, .fn = fn, .userdata = userdata};
		return 0;
	}
	return -ENOSPC;
}

int init_loop_remove_io(struct init_loop *loop, int fd)
{
	for (int i = 0; i < LOOP_MAX_IO; i++) {
		if (loop->io[i].fd != fd)
			continue;
		loop->io[i].fd = -1;
		return epoll_ctl(loop->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 ? -errno : 0;
	}
	return -ENOENT;
}

/* Sets the timerfd to the earliest armed deadline, or disarms it. */
static void timers_rearm(struct init_loop *loop)
{
	struct itimerspec its = {0};
	uint64_t next = 0;

	for (int i = 0; i < LOOP_MAX_TIMERS; i++)
		if (loop->timers[i] && (!next || loop->timers[i]->deadline_usec < next))
			next = loop->timers[i]->deadline_usec;
	if (next == loop->timerfd_deadline)
		return;
	if (next) {
		/* 0 would disarm: an already passed deadline is set to the smallest time there is */
		its.it_value.tv_sec = (time_t)(next / USEC_PER_SEC);
		its.it_value.tv_nsec = (long)(next % USEC_PER_SEC) * 1000;
		if (!its.it_value.tv_sec && !its.it_value.tv_nsec)
			its.it_value.tv_nsec = 1;
	}
	if (timerfd_settime(loop->timerfd, TFD_TIMER_ABSTIME, &its, NULL) < 0) {
		log_error("cannot set the loop's timer: %s, ignoring", strerror(errno));
		return;
	}
	loop->timerfd_deadline = next;
}

void init_timer_arm(struct init_loop *loop, struct init_timer *t, uint64_t deadline_usec)
{
	int slot = -1;

	t->deadline_usec = deadline_usec ? deadline_usec : 1;
	for (int i = 0; i < LOOP_MAX_TIMERS && slot < 0; i++)
		if (loop->timers[i] == t)
			slot = i;
	for (int i = 0; i < LOOP_MAX_TIMERS && slot < 0; i++)
		if (!loop->timers[i])
			slot = i;
	if (slot < 0) {
		/* a fixed set of timers is known at build time: this is a bug, not a runtime condition */
		log_error("no free timer slot, ignoring");
		return;
	}
	loop->timers[slot] = t;
	t->armed = true;
	timers_rearm(loop);
}

void init_timer_disarm(struct init_loop *loop, struct init_timer *t)
{
	for (int i = 0; i < LOOP_MAX_TIMERS; i++)
		if (loop->timers[i] == t)
			loop->timers[i] = NULL;
	t->armed = false;
	timers_rearm(loop);
}

static void timers_dispatch(struct init_loop *loop)
{
	uint64_t expirations, now = init_now_usec();

	/* EAGAIN: a timer was re-armed after the fd became readable; the deadlines below are what count */
	(void)!read(loop->timerfd, &expirations, sizeof(expirations));
	loop->timerfd_deadline = 0;
	for (int i = 0; i < LOOP_MAX_TIMERS; i++) {
		struct init_timer *t = loop->timers[i];

		if (!t || t->deadline_usec > now)
			continue;
		loop->timers[i] = NULL;
		t->armed = false;
		t->fn(loop, t->userdata);
		if (loop->quit)
			break;
	}
	timers_rearm(loop);
}

void init_loop_quit(struct init_loop *loop, int code)
{
	loop->quit = true;
	loop->code = code;
}

bool init_loop_quit_requested(const struct init_loop *loop)
{
	return loop->quit;
}

int init_loop_run(struct init_loop *loop)
{
	struct epoll_event events[8];

	while (!loop->quit) {
		int n = epoll_wait(loop->epfd, events, 8, -1);

		if (n < 0) {
			if (errno != EINTR)
				log_error("epoll_wait failed: %s, ignoring", strerror(errno));
			continue;
		}
		for (int i = 0; i < n && !loop->quit; i++) {
			int fd = events[i].data.fd;

			if (fd == loop->timerfd) {
				timers_dispatch(loop);
				continue;
			}
			for (int j = 0; j < LOOP_MAX_IO; j++) {
				if (loop->io[j].fd == fd) {
					loop->io[j].fn(loop, fd, events[i].events, loop->io[j].userdata);
					break;
				}
			}
		}
	}
	return loop->code;
}
