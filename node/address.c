/* SPDX-License-Identifier: MIT */
/* The node's addresses: its container's own, which it announces, and the one its probes and helpers reach it at. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "node.h"

/*
 * The first IPv4 address of an interface that is up and not loopback, in the kernel's order (eth0 before
 * later interfaces in a container). Returns 0, or -ENOENT when there is none.
 */
int node_detect_own_ipv4(char *buf, size_t size)
{
	struct ifaddrs *list, *ifa;
	int r = -ENOENT;

	if (getifaddrs(&list) < 0)
		return -errno;
	for (ifa = list; ifa; ifa = ifa->ifa_next) {
		if (!ifa->ifa_addr || ifa->ifa_addr->sa_family != AF_INET || !(ifa->ifa_flags & IFF_UP) ||
		    (ifa->ifa_flags & IFF_LOOPBACK))
			continue;
		if (inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)ifa->ifa_addr)->sin_addr, buf,
			      (socklen_t)size)) {
			r = 0;
			break;
		}
	}
	freeifaddrs(list);
	return r;
}

/*
 * Where this node can be reached from inside its container: loopback when it listens there ('*' or 127.0.0.1
 * among the REDIS_BIND addresses, with or without Redis's '-' for an optional one), else its first address other
 * than '::*'; loopback when there is none.
 */
void node_probe_host(const char *bind, char *buf, size_t size)
{
	const char *p = bind, *first = NULL;
	size_t first_len = 0;

	while (*p) {
		size_t n;
		const char *tok;

		p += strspn(p, " ");
		n = strcspn(p, " ");
		if (!n)
			break;
		tok = *p == '-' ? p + 1 : p;
		if ((size_t)(p + n - tok) == 1 && *tok == '*') {
			(void)snprintf(buf, size, "127.0.0.1");
			return;
		}
		if ((size_t)(p + n - tok) == 9 && strncmp(tok, "127.0.0.1", 9) == 0) {
			(void)snprintf(buf, size, "127.0.0.1");
			return;
		}
		if (!first && !(p + n - tok == 3 && strncmp(tok, "::*", 3) == 0)) {
			first = tok;
			first_len = (size_t)(p + n - tok);
		}
		p += n;
	}
	if (first)
		(void)snprintf(buf, size, "%.*s", (int)first_len, first);
	else
		(void)snprintf(buf, size, "127.0.0.1");
}

int node_address_is_local(const char *ip)
{
	union {
		struct sockaddr sa;
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} a = {0};
	socklen_t len;
	int fd, r;

	if (inet_pton(AF_INET, ip, &a.in4.sin_addr) == 1) {
		a.in4.sin_family = AF_INET;
		len = sizeof(a.in4);
	} else if (inet_pton(AF_INET6, ip, &a.in6.sin6_addr) == 1) {
		a.in6.sin6_family = AF_INET6;
		len = sizeof(a.in6);
	} else {
		return -EINVAL;
	}
	/* the kernel's word, loopback ranges and secondary addresses included; port 0 takes nothing from anyone */
	fd = socket(a.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	r = bind(fd, &a.sa, len) == 0 ? 1 : errno == EADDRNOTAVAIL ? 0 : -errno;
	(void)close(fd);
	return r;
}
