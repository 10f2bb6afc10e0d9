/* SPDX-License-Identifier: MIT */
/*
 * Notice without polling when the container's addresses change: a netlink socket subscribed to the kernel's address
 * and link events, in the supervision loop. An idle container sends none, so an idle kvinit is never woken up.
 *
 * The messages are not parsed beyond their type: a burst (the old address deleted, the interface gone, a new one
 * up with its address) is let settle for SETTLE_MS, then the owner looks at the addresses as they are. Links count
 * too: an address given to an interface that comes up only afterwards (as Docker's connect does) is announced by
 * the link, not by the address.
 */
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include "node.h"

#define SETTLE_MS 100

struct node_netwatch {
	struct init_loop *loop;
	int fd;
	struct init_timer settle;
	node_netwatch_fn fn;
	void *userdata;
};

static void on_settled(struct init_loop *loop, void *userdata)
{
	struct node_netwatch *w = userdata;

	(void)loop;
	w->fn(w->userdata);
}

/* Whether a datagram holds an address or link event (the kernel's only: nl_pid 0). */
static bool is_change(const struct sockaddr_nl *from, const char *buf, size_t len)
{
	if (from->nl_pid != 0)
		return false;
	for (const struct nlmsghdr *h = (const void *)buf; NLMSG_OK(h, len); h = NLMSG_NEXT(h, len))
		if (h->nlmsg_type == RTM_NEWADDR || h->nlmsg_type == RTM_DELADDR || h->nlmsg_type == RTM_NEWLINK ||
		    h->nlmsg_type == RTM_DELLINK)
			return true;
	return false;
}

static void on_readable(struct init_loop *loop, int fd, uint32_t events, void *userdata)
{
	struct node_netwatch *w = userdata;
	char buf[8192] __attribute__((aligned(NLMSG_ALIGNTO)));
	bool changed = false;

	(void)events;
	for (;;) {
		struct sockaddr_nl from = {0};
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ENOBUFS) {
			changed = true; /* events were dropped: whatever they said, look again */
			continue;
		}
		if (n < 0) {
			if (errno != EAGAIN)
				log_warn("address watch: %s, ignoring", strerror(errno));
			break;
		}
		changed = changed || is_change(&from, buf, (size_t)n);
	}
	if (changed && !w->settle.armed)
		init_timer_arm(loop, &w->settle, init_now_usec() + SETTLE_MS * USEC_PER_MSEC);
}

int node_netwatch_new(struct init_loop *loop, node_netwatch_fn fn, void *userdata, struct node_netwatch **ret)
{
	struct sockaddr_nl addr = {
		.nl_family = AF_NETLINK,
		.nl_groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR,
	};
	struct node_netwatch *w = calloc(1, sizeof(*w));
	int r;

	if (!w)
		return -ENOMEM;
	*w = (struct node_netwatch){.loop = loop, .fn = fn, .userdata = userdata};
	w->settle = (struct init_timer){.fn = on_settled, .userdata = w};
	w->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_ROUTE);
	if (w->fd < 0 || bind(w->fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
		r = -errno;
		goto fail;
	}
	r = init_loop_add_io(loop, w->fd, EPOLLIN, on_readable, w);
	if (r < 0)
		goto fail;
	*ret = w;
	return 0;
fail:
	if (w->fd >= 0)
		(void)close(w->fd);
	free(w);
	return r;
}

/* After the loop: its descriptors and timers are gone with it. */
void node_netwatch_free(struct node_netwatch *w)
{
	if (!w)
		return;
	(void)close(w->fd);
	free(w);
}
