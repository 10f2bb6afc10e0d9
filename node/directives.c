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
	/* REDIS_CLUSTER_AVAILABILITY_ZONE: cluster-init places replicas by the zone the option names */
	"availability-zone",
	/*
	 * render.c writes `logfile ""`: the server logs to stdout, which kvinit's child shares with it, so its lines
	 * reach `docker logs` and kubectl logs. A logfile would hide them in a file nobody reads (and fill the disk).
	 */
	"logfile",
	NULL,
};

void node_extra_flags_free(struct node_extra_flags *f)
{
	free(f->tokens);
	free(f->buf);
	*f = (struct node_extra_flags){0};
}

/*
 * One tokenizer for the check and for render.c: tokens are separated by runs of blanks, wherever they are, so
 * what the check sees is exactly what is rendered.
 */
int node_extra_flags_parse(const char *flags, struct node_extra_flags *ret, struct init_error *err)
{
	_cleanup_free_ char *buf = strdup(flags);
	/* a token and the blank after it take two bytes at least */
	_cleanup_free_ char **tokens = calloc(strlen(flags) / 2 + 1, sizeof(*tokens));
	bool want_value = false;
	size_t n = 0;

	if (!buf || !tokens)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (char *p = buf;;) {
		char *tok;

		p += strspn(p, " \t");
		if (!*p)
			break;
		tok = p;
		p += strcspn(p, " \t");
		if (*p)
			*p++ = '\0';
		tokens[n++] = tok;
		if (strncmp(tok, "--", 2) != 0) {
			/* a value: it needs a directive before it */
			if (n == 1)
				return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
			want_value = false;
			continue;
		}
		if (want_value || !tok[2])
			return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
		for (const char *c = tok + 2; *c; c++)
			if (!(islower((unsigned char)*c) || isdigit((unsigned char)*c) || *c == '-'))
				return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
		for (size_t i = 0; owned_directives[i]; i++)
			if (strcmp(tok + 2, owned_directives[i]) == 0)
				return init_error_set(err, -EINVAL,
						      "'%s' is set by kvinit itself: use its own setting instead", tok);
		want_value = true;
	}
	if (want_value)
		return init_error_set(err, -EINVAL, NODE_EXTRA_FLAGS_RULE);
	*ret = (struct node_extra_flags){.buf = buf, .tokens = tokens, .n = n};
	buf = NULL;
	tokens = NULL;
	return 0;
}
