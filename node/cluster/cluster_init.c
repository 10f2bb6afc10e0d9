/* SPDX-License-Identifier: MIT */
/*
 * `kvinit cluster-init`: wait for REDIS_NODES, look at what they are, and create the cluster, extend it with new
 * empty nodes, reshape it (new masters, slot moves, removals: reshape.c plans, reshape_apply.c carries out), finish
 * a half-formed one, or leave a formed one alone (decide.c says which, apply.c does it). Safe
 * to re-run, and two runs at once end in one cluster: the plan is a pure function of REDIS_NODES, so both send the
 * same commands, and a reply saying "already done" is not an error.
 *
 * Speed: a fresh master holds cluster_state:fail for its "rejoin delay" after it gets its slots, and that delay is
 * cluster-node-timeout clamped to 500..5000 ms (a master without slots always counts as being in a minority). So
 * while slots are handed out the nodes run with the 500 ms minimum, and the configured timeout comes back as soon
 * as the masters are ok, before any replica is attached: with no replica there is no failover, so the short
 * timeout can never reshape the cluster.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"

extern char **environ;

struct shape_scan {
	const struct cluster_run *r;
	size_t self;
};

/* One row, from the node's own line of its own CLUSTER NODES: what it says of itself is authoritative. */
static int scan_shape(const struct cluster_line *l, void *userdata)
{
	const struct shape_scan *sc = userdata;
	const struct cluster_run *r = sc->r;
	char name[CLUSTER_HOST_MAX + 16], master[CLUSTER_HOST_MAX + 16], ranges[256];
	int j;

	if (!l->myself)
		return 0;
	cluster_peer_name(&r->peers[sc->self], name, sizeof(name));
	j = l->is_master ? -1 : cluster_find_peer(r->peers, r->n, l->master);
	if (j >= 0)
		cluster_peer_name(&r->peers[j], master, sizeof(master));
	else
		(void)snprintf(master, sizeof(master), "%s", l->is_master ? "-" : l->master);
	cluster_format_ranges(&l->slots, ranges, sizeof(ranges));
	(void)printf("%-30s %-8s %-24s %s\n", name, l->is_master ? "master" : "replica", ranges, master);
	return 1;
}

static void print_shape(const struct cluster_run *r)
{
	(void)printf("%-30s %-8s %-24s %s\n", "node", "role", "slots", "master");
	for (size_t i = 0; i < r->n; i++) {
		struct shape_scan sc = {.r = r, .self = i};
		struct init_error err = {{0}};

		if (cluster_peer_each_line(&r->peers[i], scan_shape, &sc, &err) < 0)
			log_warn("%s, ignoring", err.msg);
	}
	(void)fflush(stdout);
}

/* Connect, inspect, decide, apply; logs its one error line. */
static int run(const struct node_options *o, const struct cluster_addr *addrs, size_t n, const struct secrets_value *pw)
{
	struct init_error err = {{0}};
	struct cluster_run r = {.o = o, .pw = pw, .n = n, .err = &err};
	struct cluster_decision d;
	struct cluster_reshape_job reshape = {0};
	_cleanup_free_ bool *member = calloc(n, sizeof(*member));
	_cleanup_free_ struct cluster_plan_entry *plan = calloc(n, sizeof(*plan));
	struct init_error plan_err;
	uint64_t t0 = init_now_usec();
	int res;

	r.peers = calloc(n, sizeof(*r.peers));
	if (!r.peers || !member || !plan) {
		free(r.peers);
		log_error("cluster-init: out of memory");
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++)
		r.peers[i].addr = addrs[i];
	r.deadline = t0 + (uint64_t)o->init_timeout * USEC_PER_MSEC;

	res = cluster_connect_all(r.peers, n, pw, r.deadline, &err);
	if (res == 0) {
		log_info("all %zu nodes answer (%.0f ms)", n, (double)(init_now_usec() - t0) / 1000.0);
		res = cluster_inspect(r.peers, n, o->node_timeout, &err);
	}
	/* a list that cannot be planned can still be extended: forming says what is wrong with it */
	if (res == 0)
		res = cluster_decide(r.peers, n, cluster_plan_peers(&r, plan, NULL, &plan_err) >= 0 ? plan : NULL, &d,
				     member, &err);
	if (res == 0)
		res = cluster_reshape_prepare(&r, member, &d, &reshape);
	if (res == 0)
		res = cluster_apply(&r, &d, member);
	if (res == 0)
		res = cluster_wait_agreement(&r);
	if (res == 0) {
		log_info("cluster ok (%.0f ms)", (double)(init_now_usec() - t0) / 1000.0);
		print_shape(&r);
	} else {
		log_error("cluster-init: %s", err.msg[0] ? err.msg : strerror(-res));
	}
	cluster_reshape_job_free(&reshape);
	cluster_peers_free(r.peers, n);
	return res;
}

/* REDIS_NODES, parsed; logs the one line that says what is wrong with it. */
static int parse_nodes(const struct node_options *o, struct cluster_addr **ret_addrs, size_t *ret_n)
{
	struct init_error err = {{0}};
	int r = cluster_parse_nodes(o->nodes, "REDIS_NODES", node_client_port(o), ret_addrs, ret_n, &err);

	if (r < 0)
		log_error("%s", err.msg);
	return r;
}

/* For REDIS_CLUSTER_CREATOR: the same as the role, in a helper beside the server. */
int node_cluster_init_run(const struct node_options *o, const struct secrets_value *pw)
{
	_cleanup_free_ struct cluster_addr *addrs = NULL;
	size_t n = 0;
	int r = parse_nodes(o, &addrs, &n);

	return r < 0 ? r : run(o, addrs, n, pw);
}

int node_cluster_init_main(struct node_config *c, char **args)
{
	_cleanup_free_ struct cluster_addr *addrs = NULL;
	struct secrets_password pw = {0};
	struct init_error err;
	size_t n = 0;
	int r;

	/* the README's exit codes: 100 for what the user gave, 1 when the cluster could not be made ok */
	if (args[0]) {
		log_error("cluster-init: unexpected argument '%s' (the nodes come from REDIS_NODES)", args[0]);
		return INIT_EXIT_USAGE;
	}
	if (!*c->opt.nodes) {
		log_error("REDIS_NODES is empty: list the nodes, e.g. REDIS_NODES='redis-node-0:6379 redis-node-1:6380 "
			  "...'");
		return INIT_EXIT_USAGE;
	}
	if (parse_nodes(&c->opt, &addrs, &n) < 0)
		return INIT_EXIT_USAGE;
	if (secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0 ||
	    node_tls_client_setup(&c->opt, NULL, &err) < 0) {
		log_error("%s", err.msg);
		secrets_password_free(&pw);
		return INIT_EXIT_USAGE;
	}
	r = run(&c->opt, addrs, n, &pw.value);
	secrets_password_free(&pw);
	return r < 0 ? 1 : 0;
}
