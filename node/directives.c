/* SPDX-License-Identifier: MIT */
/* What kvinit owns in the server config it renders, and what REDIS_EXTRA_FLAGS may add to it. Pure, no I/O. */
#include <ctype.h>
#include <errno.h>
#include <string.h>

#include "node.h"

/* Directives kvinit renders itself; setting them again in REDIS_EXTRA_FLAGS would silently undo its work. */
static const char *const owned_directives[] = {
	"port",
	"bind",
	"dir",
	"daemonize",
	"include",
	"protected-mode",
	"cluster-enabled",
	"cluster-config-file",
	"cluster-node-timeout",
	"cluster-port",
	"cluster-announce-ip",
	"cluster-announce-port",
	"cluster-announce-bus-port",
	"cluster-announce-hostname",
	"cluster-preferred-endpoint-type",
	"appendonly",
	"user",
	"requirepass",
	"masterauth",
	"masteruser",
	"aclfile",
	"supervised",
	NULL,
};

int node_extra_flags_check(const char *s, struct init_error *err)
{
	_cleanup_free_ char *copy = strdup(s);
	char *save = NULL;
	bool want_arg = false;

	if (!copy)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (char *tok = strtok_r(copy, " \t", &save); tok; tok = strtok_r(NULL, " \t", &save)) {
		if (strncmp(tok, "--", 2) != 0) {
			if (!want_arg && tok == copy)
				return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
			want_arg = false;
			continue;
		}
		if (want_arg || !tok[2])
			return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
		for (const char *p = tok + 2; *p; p++)
			if (!(islower((unsigned char)*p) || isdigit((unsigned char)*p) || *p == '-'))
				return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
		for (size_t i = 0; owned_directives[i]; i++)
			if (strcmp(tok + 2, owned_directives[i]) == 0)
				return init_error_set(err, -EINVAL,
						      "'%s' is set by kvinit itself: use its own setting instead", tok);
		want_arg = true;
	}
	return want_arg ? init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE) : 0;
}
