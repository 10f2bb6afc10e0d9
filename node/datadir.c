/* SPDX-License-Identifier: MIT */
/*
 * The data directory, where a volume loses data silently when it is wrong (issue 12):
 *  - The Bitnami redis-cluster image keeps its data in /bitnami/redis/data, and its users mount their volume
 *    there. A compose file switched to kvinit with only the image changed would leave the data in the container
 *    and lose it at the next `down`: with REDIS_DATA_DIR unset and a volume there, kvinit uses it and says so.
 *    (setup.c gives what is in it to the server user, Bitnami's uid 1001 included.)
 *  - A data directory on the root filesystem is not on a volume: in a container, its data dies with it. Said
 *    once at start.
 *  - A node whose nodes.conf lists peers (it was in a cluster) and whose data directory holds no data lost it, or
 *    never had any: once its server is up, it asks its peers; when they hold keys, it says what that means.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cluster.h"

#define PEER_TIMEOUT_MS 500
#define CHECK_FOR_MS	30000 /* peers that are not up yet get this long */

int node_mountinfo_point(const char *line, char *ret, size_t size)
{
	const char *p = line;
	size_t n = 0;

	/* "36 35 98:0 /root /mount/point rw ... - fstype source opts": the fifth field, spaces escaped as \040 */
	for (int field = 0; field < 4; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -EBADMSG;
		p++;
	}
	for (; *p && *p != ' ' && *p != '\n'; p++) {
		char c = *p;

		if (c == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' && p[3] >= '0' &&
		    p[3] <= '7') {
			c = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		}
		if (n + 1 >= size)
			return -ENAMETOOLONG;
		ret[n++] = c;
	}
	if (!n || ret[0] != '/')
		return -EBADMSG;
	ret[n] = '\0';
	return 0;
}

bool node_path_under(const char *path, const char *mount)
{
	size_t n = strlen(mount);

	if (strcmp(mount, "/") == 0)
		return path[0] == '/';
	return strncmp(path, mount, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

int node_mount_of(const char *path, char *ret, size_t size)
{
	char resolved[PATH_MAX], point[PATH_MAX], best[PATH_MAX] = "";
	_cleanup_free_ char *line = NULL;
	size_t cap = 0;
	FILE *f;

	if (!realpath(path, resolved))
		return -errno;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -errno;
	/* the longest mount point above the path; of equal ones the last, which is on top */
	while (getline(&line, &cap, f) > 0)
		if (node_mountinfo_point(line, point, sizeof(point)) == 0 && node_path_under(resolved, point) &&
		    strlen(point) >= strlen(best))
			(void)snprintf(best, sizeof(best), "%s", point);
	(void)fclose(f);
	if (!*best)
		return -ENOENT;
	if (strlen(best) >= size)
		return -ENAMETOOLONG;
	(void)snprintf(ret, size, "%s", best);
	return 0;
}

int node_data_dir_pick(struct node_config *c)
{
	char mount[PATH_MAX];
	struct stat st;
	char *dir;

	if (c->source[NODE_OPT_data_dir] != INIT_SRC_DEFAULT || stat(NODE_BITNAMI_DATA_DIR, &st) < 0 ||
	    !S_ISDIR(st.st_mode) || node_mount_of(NODE_BITNAMI_DATA_DIR, mount, sizeof(mount)) < 0 ||
	    strcmp(mount, "/") == 0)
		return 0;
	dir = strdup(NODE_BITNAMI_DATA_DIR);
	if (!dir)
		return -ENOMEM;
	log_info("REDIS_DATA_DIR is unset and '%s' is on a volume (mounted at '%s'), where the Bitnami image keeps its "
		 "data: the data directory is '%s'",
		 NODE_BITNAMI_DATA_DIR, mount, NODE_BITNAMI_DATA_DIR);
	free(c->opt.data_dir);
	c->opt.data_dir = dir;
	return 1;
}

void node_data_dir_check_volume(const char *dir)
{
	char mount[PATH_MAX];
	int r = node_mount_of(dir, mount, sizeof(mount));

	if (r < 0)
		log_debug("cannot tell what '%s' is mounted on: %s, ignoring", dir, strerror(-r));
	else if (strcmp(mount, "/") == 0)
		log_warn("the data directory '%s' is on the root filesystem, not on a volume: in a container its data "
			 "is lost with the container (docker compose down, a new pod); mount a volume there",
			 dir);
}

int node_nodes_conf_former(const char *text, struct node_former *ret)
{
	struct node_former f = {0};

	for (const char *p = text; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct init_error err = {{0}};
		struct cluster_line l;

		if (len && strncmp(p, "vars ", 5) != 0 && cluster_parse_line(p, len, &l, &err) == 0) {
			if (l.myself) {
				f.was_master = l.is_master;
				f.slots = l.nslots;
			} else if (!l.handshake) {
				f.peers++;
			}
		}
		p = end ? end + 1 : NULL;
	}
	*ret = f;
	return f.peers > 0;
}

int node_data_dir_former(const char *dir, struct node_former *ret)
{
	const size_t size = 8U << 20; /* a nodes.conf of a thousand nodes is a few hundred KB */
	_cleanup_free_ char *text = malloc(size);
	char path[PATH_MAX];
	int r;

	if (!text)
		return -ENOMEM;
	(void)snprintf(path, sizeof(path), "%s/nodes.conf", dir);
	r = init_read_file_bounded(path, 0, text, size, NULL);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	return node_nodes_conf_former(text, ret);
}

bool node_data_dir_holds_data(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	bool found = false;

	if (!d)
		return true; /* cannot tell: say nothing */
	while (!found && (e = readdir(d))) {
		char path[PATH_MAX];
		struct stat st;

		if (e->d_name[0] == '.' || strncmp(e->d_name, "nodes.conf", 10) == 0 ||
		    strncmp(e->d_name, "temp-", 5) == 0)
			continue;
		(void)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &st) < 0)
			continue;
		/* an empty appendonlydir is what a server that never wrote leaves */
		found = S_ISDIR(st.st_mode) ? node_data_dir_holds_data(path) : st.st_size > 0;
	}
	(void)closedir(d);
	return found;
}

/* ---- the check beside the server ---- */

struct keys_scan {
	const struct secrets_value *pw;
	char holder[CLUSTER_HOST_MAX + 8];
	long long keys;
	unsigned asked;
};

static int scan_keys(const struct cluster_line *l, void *userdata)
{
	struct keys_scan *s = userdata;
	struct init_error err = {{0}};
	char host[CLUSTER_HOST_MAX];
	struct node_conn *ctx;
	redisReply *rep;
	unsigned port;
	long long keys;

	if (l->myself || l->handshake || !cluster_addr_split(l->addr, host, sizeof(host), &port) || !*host ||
	    cluster_connect(host, port, s->pw, PEER_TIMEOUT_MS, &ctx, &err) < 0)
		return 0;
	s->asked++;
	rep = node_command(ctx, "INFO keyspace");
	keys = rep && rep->type == REDIS_REPLY_STRING ? cluster_info_keys(rep->str) : 0;
	freeReplyObject(rep);
	node_conn_free(ctx);
	if (keys > s->keys) {
		s->keys = keys;
		(void)snprintf(s->holder, sizeof(s->holder), "%s:%u", host, port);
	}
	return 0;
}

int node_data_check_peers(const struct node_options *o, const struct secrets_value *pw, const struct node_former *f)
{
	uint64_t deadline = init_now_usec() + CHECK_FOR_MS * USEC_PER_MSEC;
	struct cluster_peer self = {0};
	struct keys_scan s = {.pw = pw};
	struct init_error err = {{0}};
	redisReply *rep;
	int r;

	node_probe_host(o->bind, self.addr.host, sizeof(self.addr.host));
	self.addr.port = node_client_port(o);
	r = cluster_connect_all(&self, 1, pw, deadline, &err);
	if (r < 0) {
		log_debug("data check: %s", err.msg);
		return 0;
	}
	/* the peers as the server knows them now; some may still be starting */
	while (!s.asked && init_now_usec() < deadline) {
		rep = node_command(self.ctx, "CLUSTER NODES");
		if (rep && rep->type == REDIS_REPLY_STRING) {
			cluster_tls_learn_nodes(rep->str);
			(void)cluster_each_line(rep->str, scan_keys, &s, &err);
		}
		freeReplyObject(rep);
		if (!s.asked)
			init_sleep_ms(500);
	}
	cluster_peer_close(&self);
	if (!s.keys)
		return 0;
	if (f->was_master && f->slots)
		log_warn("DATA LOST? this node was a master of %u slots in a cluster (its nodes.conf lists %u peers), "
			 "but "
			 "its data directory '%s' held no data at start while its peers hold keys ('%s' has %lld): "
			 "the keys of its slots are gone unless a replica still has them. Is the volume with its data "
			 "mounted at '%s'?",
			 f->slots, f->peers, o->data_dir, s.holder, s.keys, o->data_dir);
	else
		log_warn(
			"this node was in a cluster (its nodes.conf lists %u peers), but its data directory '%s' held "
			"no data at start while its peers hold keys ('%s' has %lld); as a replica it copies its master "
			"again. Is the volume with its data mounted at '%s'?",
			f->peers, o->data_dir, s.holder, s.keys, o->data_dir);
	return 0;
}
