/* SPDX-License-Identifier: MIT */
/*
 * move_slots: drives node/cluster/migrate.c against a formed cluster, for the integration tests and the reshard
 * benchmark (until cluster-init plans moves itself).
 *
 *   move_slots NODES move FIRST-LAST:FROM:TO...   move slots FIRST..LAST from node FROM to node TO (indices into
 *                                                 NODES, a REDIS_NODES list), all given moves in one run
 *   move_slots NODES fix                          cluster_fix_open_slots: finish every open slot
 *
 * The password comes from the environment as cluster-init reads it (REDIS_PASSWORD_FILE, REDIS_PASSWORD).
 * Exit 0 when done, 1 on failure (one error line), 2 on bad usage. KVINIT_INIT_TIMEOUT_MS (default 300000) bounds it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "init.h"
#include "cluster.h"

extern char **environ;

static int parse_move(const char *arg, size_t n, struct cluster_move *ret)
{
	unsigned first, last;
	size_t from, to;
	int used = 0;

	if (sscanf(arg, "%u-%u:%zu:%zu%n", &first, &last, &from, &to, &used) != 4 || arg[used] || first > last ||
	    last >= CLUSTER_SLOTS || from >= n || to >= n)
		return -EINVAL;
	*ret = (struct cluster_move){.first = first, .last = last, .from = from, .to = to};
	return 0;
}

int main(int argc, char **argv)
{
	static struct node_options o = {.node_timeout = 5000};
	_cleanup_free_ struct cluster_addr *addrs = NULL;
	_cleanup_free_ struct cluster_move *moves = NULL;
	struct secrets_password pw = {0};
	struct init_error err = {{0}};
	struct cluster_run r = {.o = &o, .err = &err};
	const char *t = getenv("KVINIT_INIT_TIMEOUT_MS");
	size_t n = 0, n_moves = 0;
	int res;

	init_log_setup(INIT_LOG_INFO, INIT_LOG_TEXT);
	if (argc < 3 || (strcmp(argv[2], "move") != 0 && strcmp(argv[2], "fix") != 0)) {
		(void)fprintf(stderr, "usage: move_slots NODES move FIRST-LAST:FROM:TO... | move_slots NODES fix\n");
		return 2;
	}
	if (cluster_parse_nodes(argv[1], "NODES", 6379, &addrs, &n, &err) < 0 ||
	    secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0) {
		log_error("%s", err.msg);
		return 2;
	}
	moves = calloc((size_t)argc, sizeof(*moves));
	r.peers = calloc(n, sizeof(*r.peers));
	if (!moves || !r.peers)
		return 1;
	for (int a = 3; strcmp(argv[2], "move") == 0 && a < argc; a++)
		if (parse_move(argv[a], n, &moves[n_moves++]) < 0) {
			log_error("move '%s': not FIRST-LAST:FROM:TO with slots 0-16383 and node indices below %zu",
				  argv[a], n);
			return 2;
		}
	for (size_t i = 0; i < n; i++)
		r.peers[i].addr = addrs[i];
	r.n = n;
	r.pw = &pw.value;
	r.deadline = init_now_usec() + (t ? strtoull(t, NULL, 10) : 300000) * USEC_PER_MSEC;

	res = cluster_connect_all(r.peers, n, r.pw, r.deadline, &err);
	if (res == 0)
		res = cluster_inspect(r.peers, n, o.node_timeout, &err);
	if (res == 0 && n_moves)
		res = cluster_move_slots(&r, moves, n_moves);
	else if (res == 0)
		res = cluster_fix_open_slots(&r);
	if (res < 0)
		log_error("move_slots: %s", err.msg[0] ? err.msg : strerror(-res));
	else
		(void)printf("ok %d\n", res);
	cluster_peers_free(r.peers, n);
	secrets_password_free(&pw);
	return res < 0 ? 1 : 0;
}
