/* SPDX-License-Identifier: MIT */
/* The container's own address, for nodes that announce where they can be reached. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>

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
