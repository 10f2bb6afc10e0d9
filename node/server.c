/* SPDX-License-Identifier: MIT */
/* Finds the server binary (valkey-server, else redis-server) and reads its version once. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "node.h"

extern char **environ;

/*
 * Directives kvinit renders that only some servers know: the first release of each flavor that knows them, 0 for a
 * flavor that has none. Valkey forked from Redis 7.2.4 and knows what that knew; availability-zone is Valkey's own.
 * Valkey 9.0's `shutdown-on-sigterm failover` is not here on purpose: kvinit's own handover on stop is the faster
 * (failover.c has the figures), so no server version gets it rendered.
 */
static const struct {
	const char *name;
	unsigned redis, valkey;
} directives[NODE_DIR__COUNT] = {
	[NODE_DIR_CLUSTER_PORT] = {"cluster-port", NODE_VERSION(7, 0, 0), NODE_VERSION(7, 2, 4)},
	[NODE_DIR_ANNOUNCE_HOSTNAME] = {"cluster-announce-hostname", NODE_VERSION(7, 0, 0), NODE_VERSION(7, 2, 4)},
	[NODE_DIR_PREFERRED_ENDPOINT_TYPE] = {"cluster-preferred-endpoint-type", NODE_VERSION(7, 0, 0),
					      NODE_VERSION(7, 2, 4)},
	[NODE_DIR_ACL_CHANNELS] = {"ACL channel rules (&*)", NODE_VERSION(6, 2, 0), NODE_VERSION(7, 2, 4)},
	[NODE_DIR_AVAILABILITY_ZONE] = {"availability-zone", 0, NODE_VERSION(8, 0, 0)},
	/* before it, tls-cluster made cluster-announce-port the TLS port's announce */
	[NODE_DIR_ANNOUNCE_TLS_PORT] = {"cluster-announce-tls-port", NODE_VERSION(7, 0, 0), NODE_VERSION(7, 2, 4)},
};

bool node_server_knows(const struct node_server *s, enum node_directive d)
{
	unsigned first = s->flavor == NODE_VALKEY ? directives[d].valkey : directives[d].redis;

	return first && s->version >= first;
}

const char *node_directive_name(enum node_directive d)
{
	return directives[d].name;
}

void node_server_describe(const struct node_server *s, char *buf, size_t size)
{
	(void)snprintf(buf, size, "%s %u.%u.%u", s->flavor == NODE_VALKEY ? "Valkey" : "Redis",
		       NODE_VERSION_MAJOR(s->version), NODE_VERSION_MINOR(s->version), NODE_VERSION_PATCH(s->version));
}

/*
 * One part of a version, up to `end` ('.'), or for the last part (end 0) up to a blank or the end of the text.
 * Decimal digits only: sscanf's %u would take "+7" and " 7" and wrap "99999999999".
 */
static const char *version_part(const char *p, char end, unsigned *ret_part)
{
	unsigned v = 0;
	const char *q = p;

	for (; *q >= '0' && *q <= '9'; q++) {
		v = v * 10 + (unsigned)(*q - '0');
		if (v > NODE_VERSION_PART_MAX)
			return NULL;
	}
	if (q == p || (end ? *q != end : *q && *q != ' '))
		return NULL;
	*ret_part = v;
	return end ? q + 1 : q;
}

/* "Redis server v=7.0.15 sha=00000000:0 ..." or "Valkey server v=8.0.1 ..." */
int node_server_parse_version(const char *text, enum node_flavor *ret_flavor, unsigned *ret_version)
{
	enum node_flavor flavor;
	unsigned major, minor, patch;
	const char *v;

	if (strncmp(text, "Redis server ", 13) == 0)
		flavor = NODE_REDIS;
	else if (strncmp(text, "Valkey server ", 14) == 0)
		flavor = NODE_VALKEY;
	else
		return -EBADMSG;
	v = strstr(text, " v=");
	if (v)
		v = version_part(v + 3, '.', &major);
	if (v)
		v = version_part(v, '.', &minor);
	if (v)
		v = version_part(v, '\0', &patch);
	if (!v)
		return -EBADMSG;
	*ret_flavor = flavor;
	*ret_version = NODE_VERSION(major, minor, patch);
	return 0;
}

/* The first executable name on PATH (or the default path when PATH is unset), as an absolute path. */
static char *find_on_path(const char *name)
{
	const char *path = getenv("PATH");
	char candidate[PATH_MAX];

	if (!path || !*path)
		path = "/usr/local/bin:/usr/bin:/bin";
	while (*path) {
		const char *end = strchrnul(path, ':');
		int n = snprintf(candidate, sizeof(candidate), "%.*s/%s", (int)(end - path), path, name);

		if (end > path && n > 0 && (size_t)n < sizeof(candidate) && candidate[0] == '/' &&
		    access(candidate, X_OK) == 0)
			return strdup(candidate);
		path = *end ? end + 1 : end;
	}
	return NULL;
}

/* Runs `bin --version` and keeps its first line. */
static int read_version_line(const char *bin, char *buf, size_t size)
{
	char *argv[] = {(char *)bin, "--version", NULL};
	posix_spawn_file_actions_t fa;
	int fds[2], status, r;
	size_t len = 0;
	ssize_t n;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) < 0)
		return -errno;
	r = posix_spawn_file_actions_init(&fa);
	if (r == 0)
		r = posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	if (r == 0)
		r = posix_spawn(&pid, bin, &fa, NULL, argv, environ);
	(void)posix_spawn_file_actions_destroy(&fa);
	(void)close(fds[1]);
	if (r != 0) {
		(void)close(fds[0]);
		return -r;
	}
	while (len + 1 < size && (n = read(fds[0], buf + len, size - 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		len += (size_t)n;
	}
	(void)close(fds[0]);
	buf[len] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ENOEXEC;
}

void node_server_free(struct node_server *s)
{
	free(s->server_bin);
	free(s->cli_bin);
	*s = (struct node_server){0};
}

int node_server_detect(const char *explicit_bin, struct node_server *ret, struct init_error *err)
{
	struct node_server s = {0};
	char line[256], cli[PATH_MAX];
	const char *slash;
	int r;

	if (explicit_bin && *explicit_bin) {
		if (access(explicit_bin, X_OK) < 0)
			return init_error_set(err, -errno, "REDIS_SERVER_BIN='%s': %s", explicit_bin, strerror(errno));
		s.server_bin = strdup(explicit_bin);
	} else {
		s.server_bin = find_on_path("valkey-server");
		if (!s.server_bin)
			s.server_bin = find_on_path("redis-server");
		if (!s.server_bin)
			return init_error_set(err, -ENOENT,
					      "neither valkey-server nor redis-server is on PATH: install one or set "
					      "REDIS_SERVER_BIN");
	}
	if (!s.server_bin)
		return init_error_set(err, -ENOMEM, "out of memory");

	r = read_version_line(s.server_bin, line, sizeof(line));
	if (r == 0)
		r = node_server_parse_version(line, &s.flavor, &s.version);
	if (r < 0) {
		(void)init_error_set(err, r, "'%s --version' did not say which server it is (got '%.60s')",
				     s.server_bin, r == -EBADMSG ? line : strerror(-r));
		node_server_free(&s);
		return r;
	}
	if (s.version < NODE_VERSION(6, 0, 0)) {
		(void)init_error_set(err, -ENOTSUP, "'%s' is version %u.%u.%u: kvinit needs 6.0 or later (ACL users)",
				     s.server_bin, NODE_VERSION_MAJOR(s.version), NODE_VERSION_MINOR(s.version),
				     NODE_VERSION_PATCH(s.version));
		node_server_free(&s);
		return -ENOTSUP;
	}

	/* The cli that matches: beside the server first, then on PATH. */
	slash = strrchr(s.server_bin, '/');
	(void)snprintf(cli, sizeof(cli), "%.*s/%s", (int)(slash - s.server_bin), s.server_bin,
		       s.flavor == NODE_VALKEY ? "valkey-cli" : "redis-cli");
	s.cli_bin = access(cli, X_OK) == 0 ? strdup(cli)
					   : find_on_path(s.flavor == NODE_VALKEY ? "valkey-cli" : "redis-cli");
	if (!s.cli_bin && s.flavor == NODE_VALKEY)
		s.cli_bin = find_on_path("redis-cli");
	*ret = s;
	return 0;
}
