/* SPDX-License-Identifier: MIT */
/*
 * What the host gives the server that kvinit cannot change from inside the container, said once at start with the
 * command that fixes it on the host (issue 12). Redis says it too, in a paragraph, at every start; this is the line
 * an operator acts on.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node.h"

#define OVERCOMMIT_PATH "/proc/sys/vm/overcommit_memory"

int node_overcommit_parse(const char *text, int *ret_mode)
{
	int64_t mode;
	char buf[16];
	size_t len = strcspn(text, "\n");

	if (len == 0 || len >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (init_parse_int(buf, 0, 2, &mode) < 0)
		return -EINVAL;
	*ret_mode = (int)mode;
	return 0;
}

void node_check_overcommit(void)
{
	char text[32];
	int mode, r;

	r = init_read_file_bounded(OVERCOMMIT_PATH, 0, text, sizeof(text), NULL);
	if (r >= 0)
		r = node_overcommit_parse(text, &mode);
	if (r < 0) {
		log_debug("cannot read '%s': %s, ignoring", OVERCOMMIT_PATH, strerror(-r));
		return;
	}
	if (mode != 1)
		log_warn("vm.overcommit_memory is '%d' on this host: a background save or a replica's sync can fail "
			 "when memory is short; on the host run 'sysctl vm.overcommit_memory=1' (and put "
			 "'vm.overcommit_memory = 1' in /etc/sysctl.conf to keep it)",
			 mode);
}
