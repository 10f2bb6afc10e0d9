/* SPDX-License-Identifier: MIT */
/*
 * REDIS_NODES and the cluster plan (cluster_parse_nodes, cluster_plan). Input: one byte for the replicas per
 * master, one for the default port (some invalid; from 128 up, every other node's machine is unknown: a NULL host
 * key), then the REDIS_NODES value (up to its first NUL).
 * Properties of the parse: 0 with 1 to 1000 entries, each host non-empty and shorter than CLUSTER_HOST_MAX, each
 * port 1-65535, no two the same (host without regard to case, port), or -EINVAL with a message and ret untouched.
 * Properties of the plan, with the nodes' hosts as machines: the number of masters is n / (replicas + 1) (at
 * least 1 and at most 16384, else -EINVAL); every master is its own master and serves one range, the ranges in
 * list order; every slot 0-16383 is served by exactly one master; every replica points at a master; each master
 * has `replicas` at least, and none two more than another (the nodes left over go to those with the fewest);
 * *ret_same_host counts the replicas on their master's machine; a second plan of the same nodes is the same.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"
#include "fuzz.h"

static const unsigned default_ports[] = {6379, 7000, 1, 65535, 0, 65536};

static void check_nodes(const struct cluster_addr *nodes, size_t n)
{
	FUZZ_CHECK(n >= 1 && n <= 1000, "%zu entries", n);
	for (size_t i = 0; i < n; i++) {
		size_t len = strnlen(nodes[i].host, CLUSTER_HOST_MAX);

		FUZZ_CHECK(len > 0 && len < CLUSTER_HOST_MAX, "entry %zu: host of %zu bytes", i, len);
		FUZZ_CHECK(nodes[i].port >= 1 && nodes[i].port <= 65535, "entry %zu: port %u", i, nodes[i].port);
		for (size_t j = 0; j < i; j++)
			FUZZ_CHECK(nodes[j].port != nodes[i].port || strcasecmp(nodes[j].host, nodes[i].host) != 0,
				   "entries %zu and %zu are both '%s' port %u", j, i, nodes[i].host, nodes[i].port);
	}
}

static void check_plan(const struct cluster_plan_entry *plan, size_t n, const char *const *keys, unsigned replicas,
		       size_t masters, size_t same_host)
{
	static unsigned char served[CLUSTER_SLOTS];
	static size_t count[1000];
	size_t seen_masters = 0, fewest = (size_t)-1, most = 0, same = 0;
	unsigned next_slot = 0;

	memset(served, 0, sizeof(served));
	memset(count, 0, n * sizeof(count[0]));
	for (size_t i = 0; i < n; i++) {
		if (plan[i].role != CLUSTER_MASTER)
			continue;
		seen_masters++;
		FUZZ_CHECK(plan[i].master == i, "master %zu points at %zu", i, plan[i].master);
		FUZZ_CHECK(plan[i].first <= plan[i].last && plan[i].last < CLUSTER_SLOTS, "master %zu: slots %u-%u", i,
			   plan[i].first, plan[i].last);
		FUZZ_CHECK(plan[i].first == next_slot, "master %zu starts at %u, not %u: ranges out of list order", i,
			   plan[i].first, next_slot);
		next_slot = plan[i].last + 1;
		for (unsigned s = plan[i].first; s <= plan[i].last; s++)
			served[s]++;
	}
	FUZZ_CHECK(seen_masters == masters, "%zu masters in the plan, %zu returned", seen_masters, masters);
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		FUZZ_CHECK(served[s] == 1, "slot %u served by %u masters", s, served[s]);

	for (size_t i = 0; i < n; i++) {
		size_t m = plan[i].master;

		if (plan[i].role == CLUSTER_MASTER)
			continue;
		FUZZ_CHECK(plan[i].role == CLUSTER_REPLICA, "node %zu: role %d", i, (int)plan[i].role);
		FUZZ_CHECK(m < n && m != i && plan[m].role == CLUSTER_MASTER, "replica %zu points at %zu, not a master",
			   i, m);
		count[m]++;
		same += keys[i] && keys[m] && strcmp(keys[i], keys[m]) == 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (plan[i].role != CLUSTER_MASTER)
			continue;
		fewest = count[i] < fewest ? count[i] : fewest;
		most = count[i] > most ? count[i] : most;
	}
	FUZZ_CHECK(fewest >= replicas && most - fewest <= 1, "masters have %zu to %zu replicas, %u asked for each",
		   fewest, most, replicas);
	FUZZ_CHECK(same == same_host, "%zu replicas share their master's host, %zu reported", same, same_host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* mostly 0-3, now and then more than 16 nodes can hold */
	unsigned replicas = size > 0 ? (data[0] < 240 ? data[0] % 4u : data[0] - 240u) : 1;
	unsigned port = default_ports[(size > 1 ? data[1] : 0) % (sizeof(default_ports) / sizeof(default_ports[0]))];
	size_t skip = size < 2 ? size : 2, n = 0, masters, same_host = 0, same_again = 0;
	char *list = fuzz_strndup(data + skip, size - skip);
	static struct cluster_addr untouched;
	struct cluster_addr *nodes = &untouched;
	struct cluster_plan_entry *plan = NULL, *again = NULL;
	const char **keys = NULL;
	struct init_error err = {{0}};
	int r;

	r = cluster_parse_nodes(list, "REDIS_NODES", port, &nodes, &n, &err);
	if (r < 0) {
		FUZZ_CHECK(r == -EINVAL, "parse gave %d", r);
		FUZZ_CHECK(err.msg[0] != '\0', "a refusal without a message");
		FUZZ_CHECK(nodes == &untouched && n == 0, "ret written on a refusal");
		goto done;
	}
	FUZZ_CHECK(r == 0, "parse gave %d", r);
	FUZZ_CHECK(port >= 1 && port <= 65535, "default port %u accepted", port);
	check_nodes(nodes, n);

	keys = calloc(n, sizeof(*keys));
	plan = calloc(n, sizeof(*plan));
	again = calloc(n, sizeof(*again));
	if (!keys || !plan || !again)
		abort();
	for (size_t i = 0; i < n; i++)
		keys[i] = size > 1 && data[1] >= 128 && i % 2 ? NULL : nodes[i].host;
	masters = n / ((size_t)replicas + 1);
	r = cluster_plan(n, keys, NULL, replicas, plan, &same_host, &err);
	if (masters < 1 || masters > CLUSTER_SLOTS) {
		FUZZ_CHECK(r == -EINVAL, "%zu nodes, %u replicas: %d, not refused", n, replicas, r);
		goto done;
	}
	FUZZ_CHECK(r >= 0 && (size_t)r == masters, "%zu nodes, %u replicas: %d masters, not %zu", n, replicas, r,
		   masters);
	check_plan(plan, n, keys, replicas, masters, same_host);
	r = cluster_plan(n, keys, NULL, replicas, again, &same_again, &err);
	FUZZ_CHECK((size_t)r == masters && same_again == same_host, "a second plan of the same nodes differs");
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(plan[i].role == again[i].role && plan[i].master == again[i].master &&
				   plan[i].first == again[i].first && plan[i].last == again[i].last,
			   "a second plan of the same nodes differs at node %zu", i);
done:
	if (nodes != &untouched)
		free(nodes);
	free(keys);
	free(plan);
	free(again);
	free(list);
	return 0;
}
