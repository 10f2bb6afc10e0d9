/* SPDX-License-Identifier: MIT */
/*
 * Cluster planning: REDIS_NODES parsed into addresses, and which node becomes a master with which slots and which
 * a replica of whom. Pure: two `kvinit cluster-init` racing on the same list must compute the same plan, so nothing
 * here depends on time, order of replies or randomness; only the list order and the host keys count.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster.h"

/* Redis Cluster's own documented limit; it also keeps the O(n^2) checks below cheap. */
#define PLAN_MAX_NODES 1000

/* Spaces also mean tabs and line ends: a list written as a YAML block or a multi-line .env value has them. */
#define PLAN_SEPARATORS " \t\r\n,;"

/* An entry quoted in a message is cut here, so one bad entry cannot push the rule out of the line. */
#define PLAN_SHOWN_MAX 64

#define RULE_HOST	  "the host must be an IP address or an RFC 1123 hostname"
#define RULE_HOST_EMPTY	  "the host is empty"
#define RULE_PORT	  "port must be a whole number from 1 to 65535"
#define RULE_BRACKET_OPEN "'[' must be closed by ']'"
#define RULE_BRACKET_IP	  "only an IPv6 address goes in brackets"
#define RULE_BRACKET_TAIL "only ':port' may follow ']'"
#define RULE_BARE_IPV6	  "a host with two or more ':' must be an IPv6 address; write one with a port as [address]:port"

/* What duplicates are compared by: an address by its bytes ("::1" is "0::1"), a name without regard to case. */
struct entry_key {
	int family; /* AF_INET, AF_INET6, or 0 for a hostname */
	unsigned char addr[sizeof(struct in6_addr)];
	const char *text; /* the entry as written, for messages */
	size_t len;
};

static const char *next_entry(const char *p, size_t *ret_len)
{
	p += strspn(p, PLAN_SEPARATORS);
	*ret_len = strcspn(p, PLAN_SEPARATORS);
	return p;
}

/* The entry as it goes into a message: cut to PLAN_SHOWN_MAX, control characters as '?' so it stays one line. */
static void show_entry(const char *p, size_t len, char *buf, size_t size)
{
	size_t n = len > PLAN_SHOWN_MAX ? PLAN_SHOWN_MAX : len, i;

	for (i = 0; i < n && i + 4 < size; i++)
		buf[i] = (unsigned char)p[i] < 0x20 || p[i] == 0x7f ? '?' : p[i];
	if (n < len && i + 4 <= size) {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
}

static int refuse(struct init_error *err, const char *var, const char *p, size_t len, const char *rule)
{
	char shown[PLAN_SHOWN_MAX + 4];

	show_entry(p, len, shown, sizeof(shown));
	return init_error_set(err, -EINVAL, "%s: entry '%s': %s", var, shown, rule);
}

/* Decimal digits only: strtol alone would take "+1", " 1" and "-0". */
static int parse_port(const char *p, size_t len, unsigned *ret_port)
{
	char buf[16];
	int64_t v;

	if (!len || len >= sizeof(buf) || strspn(p, "0123456789") < len)
		return -EINVAL;
	memcpy(buf, p, len);
	buf[len] = '\0';
	if (init_parse_int(buf, 1, 65535, &v) < 0)
		return -EINVAL;
	*ret_port = (unsigned)v;
	return 0;
}

static int copy_host(const char *p, size_t len, char *host, const char **ret_rule)
{
	if (!len) {
		*ret_rule = RULE_HOST_EMPTY;
		return -EINVAL;
	}
	if (len >= CLUSTER_HOST_MAX) {
		*ret_rule = RULE_HOST;
		return -EINVAL;
	}
	memcpy(host, p, len);
	host[len] = '\0';
	return 0;
}

/* One entry: `host`, `host:port`, `[ipv6]`, `[ipv6]:port`, or a bare IPv6 address (two or more ':') as host. */
static int parse_entry(const char *p, size_t len, unsigned default_port, struct cluster_addr *ret_addr,
		       const char **ret_rule)
{
	struct cluster_addr a = {.port = default_port};
	const char *colon, *port = NULL;
	size_t host_len = len, colons = 0;

	for (size_t i = 0; i < len; i++)
		colons += p[i] == ':';
	if (p[0] == '[') {
		const char *close = memchr(p, ']', len);

		if (!close) {
			*ret_rule = RULE_BRACKET_OPEN;
			return -EINVAL;
		}
		if (close + 1 < p + len && close[1] != ':') {
			*ret_rule = RULE_BRACKET_TAIL;
			return -EINVAL;
		}
		if (copy_host(p + 1, (size_t)(close - p - 1), a.host, ret_rule) < 0)
			return -EINVAL;
		/* Brackets exist to set an IPv6 address apart from its port; around anything else they are a typo. */
		if (!strchr(a.host, ':') || !init_valid_ip(a.host)) {
			*ret_rule = RULE_BRACKET_IP;
			return -EINVAL;
		}
		if (close + 1 < p + len)
			port = close + 2;
	} else {
		if (colons == 1) {
			colon = memchr(p, ':', len);
			host_len = (size_t)(colon - p);
			port = colon + 1;
		}
		if (copy_host(p, host_len, a.host, ret_rule) < 0)
			return -EINVAL;
		if (colons >= 2 && !init_valid_ip(a.host)) {
			*ret_rule = RULE_BARE_IPV6;
			return -EINVAL;
		}
		if (colons < 2 && !init_valid_ip(a.host) && !init_valid_hostname(a.host)) {
			*ret_rule = RULE_HOST;
			return -EINVAL;
		}
	}
	if (port && parse_port(port, (size_t)(p + len - port), &a.port) < 0) {
		*ret_rule = RULE_PORT;
		return -EINVAL;
	}
	*ret_addr = a;
	return 0;
}

static struct entry_key make_key(const struct cluster_addr *a, const char *p, size_t len)
{
	struct entry_key k = {.text = p, .len = len};

	if (inet_pton(AF_INET, a->host, k.addr) == 1)
		k.family = AF_INET;
	else if (inet_pton(AF_INET6, a->host, k.addr) == 1)
		k.family = AF_INET6;
	return k;
}

static bool same_entry(const struct cluster_addr *a, const struct entry_key *ka, const struct cluster_addr *b,
		       const struct entry_key *kb)
{
	if (a->port != b->port || ka->family != kb->family)
		return false;
	if (ka->family)
		return memcmp(ka->addr, kb->addr, sizeof(ka->addr)) == 0;
	return strcasecmp(a->host, b->host) == 0;
}

int cluster_parse_nodes(const char *list, const char *var, unsigned default_port, struct cluster_addr **ret_nodes,
			size_t *ret_n, struct init_error *err)
{
	_cleanup_free_ struct cluster_addr *nodes = NULL;
	_cleanup_free_ struct entry_key *keys = NULL;
	size_t n = 0, cap = 0, len;
	const char *p;

	if (default_port < 1 || default_port > 65535)
		return init_error_set(err, -EINVAL, "%s: default port %u is not from 1 to 65535", var, default_port);
	if (!list)
		list = "";
	for (p = next_entry(list, &len); len; p = next_entry(p + len, &len))
		cap++;
	if (!cap)
		return init_error_set(
			err, -EINVAL,
			"%s: no nodes: list them as host, host:port or [ipv6]:port, separated by spaces, commas "
			"or semicolons",
			var);
	/* Room for the limit only: the loop below still reaches the entry past it, to name it. */
	if (cap > PLAN_MAX_NODES)
		cap = PLAN_MAX_NODES;
	nodes = calloc(cap, sizeof(*nodes));
	keys = calloc(cap, sizeof(*keys));
	if (!nodes || !keys)
		return init_error_set(err, -ENOMEM, "out of memory");
	for (p = next_entry(list, &len); len; p = next_entry(p + len, &len)) {
		const char *rule = NULL;
		size_t dup;

		if (n == PLAN_MAX_NODES)
			return refuse(err, var, p, len, "more than 1000 entries: a cluster has at most 1000 nodes");
		if (parse_entry(p, len, default_port, &nodes[n], &rule) < 0)
			return refuse(err, var, p, len, rule);
		keys[n] = make_key(&nodes[n], p, len);
		for (dup = 0; dup < n && !same_entry(&nodes[dup], &keys[dup], &nodes[n], &keys[n]); dup++)
			;
		if (dup < n) {
			char first[PLAN_SHOWN_MAX + 4], rule_buf[sizeof(first) + 64];

			show_entry(keys[dup].text, keys[dup].len, first, sizeof(first));
			(void)snprintf(rule_buf, sizeof(rule_buf), "same host and port as entry %zu '%s'", dup + 1,
				       first);
			return refuse(err, var, p, len, rule_buf);
		}
		n++;
	}
	*ret_nodes = nodes;
	nodes = NULL;
	*ret_n = n;
	return 0;
}

/*
 * The masters' slot ranges in list order, as redis-cli --cluster create computes them (clusterManagerCommandCreate):
 * in single-precision float, adding 16384 / m up and rounding each end with lround. The floats matter: done in
 * doubles, the ranges differ for 782 of the master counts 1-1000 (from 78 masters up). Each step rounds to a float
 * as in redis-cli's build (amd64 and arm64 have no excess precision); x + 0.5 truncated is lround for the x >= 0
 * here, without libm.
 */
static void slot_ranges(size_t masters, unsigned *first, unsigned *last)
{
	const float per_master = (float)CLUSTER_SLOTS / (float)masters;
	float cursor = 0.0f;
	long start = 0;

	for (size_t j = 0; j < masters; j++) {
		const float end_f = cursor + per_master - 1;
		long end = (long)((double)end_f + 0.5);

		if (end > CLUSTER_SLOTS || j == masters - 1)
			end = CLUSTER_SLOTS - 1;
		if (end < start)
			end = start;
		first[j] = (unsigned)start;
		last[j] = (unsigned)end;
		start = end + 1;
		cursor += per_master;
	}
}

/* A node whose host is not known (NULL key) is taken to be on a machine of its own. */
static bool same_machine(const char *const *keys, size_t a, size_t b)
{
	if (a == b)
		return true;
	if (!keys || !keys[a] || !keys[b])
		return false;
	return strcmp(keys[a], keys[b]) == 0;
}

/* Zones tell nodes apart only where both are known: an unknown zone (NULL or "") is no other zone. */
static bool other_zone(const char *const *zones, size_t a, size_t b)
{
	return zones && zones[a] && zones[b] && *zones[a] && *zones[b] && strcmp(zones[a], zones[b]) != 0;
}

/* Nodes in the same unknown zone (NULL and "" alike) count as one zone when masters are spread. */
static bool same_zone(const char *const *zones, size_t a, size_t b)
{
	const char *za = zones && zones[a] ? zones[a] : "", *zb = zones && zones[b] ? zones[b] : "";

	return strcmp(za, zb) == 0;
}

/*
 * How far apart two nodes are, which is what a replica's placement maximizes: 2 in other zones, 1 in the same (or
 * an unknown) zone on other machines, 0 on the same machine. A zone is the larger failure: nodes of one zone on
 * other machines still fail together, so another zone comes before another host.
 */
static unsigned distance(const char *const *keys, const char *const *zones, size_t a, size_t b)
{
	if (other_zone(zones, a, b))
		return 2;
	return same_machine(keys, a, b) ? 0 : 1;
}

struct planner {
	size_t n;
	const char *const *keys;
	const char *const *zones;
	size_t *machine; /* the lowest index of a node on the same machine: one id per machine */
	size_t *zone;	 /* the lowest index of a node in the same zone: one id per zone */
	size_t *masters_on;
	size_t *masters_in; /* by zone id */
	size_t *replicas_of;
	bool *placed;
	struct cluster_plan_entry *plan;
};

/* calloc leaves every entry a CLUSTER_MASTER (0): only a placed one is. */
static bool is_master(const struct planner *pl, size_t i)
{
	return pl->placed[i] && pl->plan[i].role == CLUSTER_MASTER;
}

/*
 * The next master: the first node in list order whose zone, then whose machine, has the fewest masters so far,
 * counting only machines that still have an unplaced node. While some machine has none, that is node.h's rule:
 * skip a node whose machine already has a master. After that it keeps spreading: with 12 nodes, 4 on each of 3
 * machines, and 6 masters, list order alone would put 4 masters on the first machine, and losing it would lose the
 * majority of masters that a failover needs. Zones come first for the same reason; without zones every node is in
 * the one unknown zone and only machines count.
 */
static size_t pick_master(const struct planner *pl)
{
	size_t best = pl->n, best_count = 0;

	for (size_t i = 0; i < pl->n; i++) {
		size_t count = pl->masters_in[pl->zone[i]] * (pl->n + 1) + pl->masters_on[pl->machine[i]];

		if (pl->placed[i] || (best < pl->n && count >= best_count))
			continue;
		best = i;
		best_count = count;
		if (!count)
			break;
	}
	return best;
}

static unsigned node_distance(const struct planner *pl, size_t a, size_t b)
{
	return distance(pl->keys, pl->zones, a, b);
}

/*
 * A replica for master m: the first unplaced node in another zone, else the first on another machine, else the
 * first unplaced one.
 */
static size_t pick_replica(const struct planner *pl, size_t m)
{
	size_t best = pl->n;
	unsigned best_d = 0;

	for (size_t i = 0; i < pl->n; i++) {
		unsigned d;

		if (pl->placed[i])
			continue;
		d = node_distance(pl, i, m);
		if (best == pl->n || d > best_d) {
			best = i;
			best_d = d;
		}
	}
	return best;
}

/*
 * A left-over node's master: of the masters with the fewest replicas, the lowest index in another zone than the
 * node, else on another machine, else the lowest index. Fewest comes first, so no master ends up with two replicas
 * more than another.
 */
static size_t pick_extra_master(const struct planner *pl, size_t node)
{
	size_t fewest = pl->n, best = pl->n;
	unsigned best_d = 0;

	for (size_t m = 0; m < pl->n; m++)
		if (is_master(pl, m) && (fewest == pl->n || pl->replicas_of[m] < fewest))
			fewest = pl->replicas_of[m];
	for (size_t m = 0; m < pl->n; m++) {
		unsigned d;

		if (!is_master(pl, m) || pl->replicas_of[m] != fewest)
			continue;
		d = node_distance(pl, node, m);
		if (best == pl->n || d > best_d) {
			best = m;
			best_d = d;
		}
	}
	return best;
}

static void place_replica(struct planner *pl, size_t node, size_t m)
{
	pl->plan[node] = (struct cluster_plan_entry){.role = CLUSTER_REPLICA, .master = m};
	pl->placed[node] = true;
	pl->replicas_of[m]++;
}

/*
 * Handing out replicas in list order can corner the last master: with machines A A B B C C, A's master takes B's
 * spare node, B's takes A's, and C's is left with the node on its own machine. Each replica short of another zone
 * than its master's therefore trades masters with the first replica (in list order) for which the trade takes it
 * farther from its master (node_distance) without bringing the other one closer to its own. Every master keeps
 * its number of replicas, and the result is still a function of the list alone.
 */
static void spread_replicas(struct planner *pl)
{
	struct cluster_plan_entry *plan = pl->plan;

	for (size_t i = 0; i < pl->n; i++) {
		if (plan[i].role != CLUSTER_REPLICA || node_distance(pl, i, plan[i].master) == 2)
			continue;
		for (size_t j = 0; j < pl->n; j++) {
			size_t mi = plan[i].master, mj = plan[j].master;

			if (j == i || plan[j].role != CLUSTER_REPLICA)
				continue;
			if (node_distance(pl, i, mj) <= node_distance(pl, i, mi) ||
			    node_distance(pl, j, mi) < node_distance(pl, j, mj))
				continue;
			plan[i].master = mj;
			plan[j].master = mi;
			break;
		}
	}
}

static size_t plan_with(struct planner *pl, size_t masters, unsigned replicas, unsigned *first, unsigned *last)
{
	size_t same_host = 0, j = 0, left = pl->n;

	for (size_t i = 0; i < pl->n; i++) {
		for (pl->machine[i] = 0; !same_machine(pl->keys, pl->machine[i], i); pl->machine[i]++)
			;
		for (pl->zone[i] = 0; !same_zone(pl->zones, pl->zone[i], i); pl->zone[i]++)
			;
	}
	for (size_t k = 0; k < masters; k++) {
		size_t m = pick_master(pl);

		pl->plan[m] = (struct cluster_plan_entry){.role = CLUSTER_MASTER, .master = m};
		pl->placed[m] = true;
		pl->masters_on[pl->machine[m]]++;
		pl->masters_in[pl->zone[m]]++;
		left--;
	}
	/* Slots go to the masters in list order, whichever order they were picked in. */
	slot_ranges(masters, first, last);
	for (size_t m = 0; m < pl->n; m++) {
		if (!is_master(pl, m))
			continue;
		pl->plan[m].first = first[j];
		pl->plan[m].last = last[j];
		j++;
	}
	for (unsigned round = 0; round < replicas; round++) {
		for (size_t m = 0; m < pl->n; m++) {
			if (!is_master(pl, m))
				continue;
			place_replica(pl, pick_replica(pl, m), m);
			left--;
		}
	}
	for (size_t i = 0; i < pl->n && left; i++) {
		if (pl->placed[i])
			continue;
		place_replica(pl, i, pick_extra_master(pl, i));
		left--;
	}
	spread_replicas(pl);
	for (size_t i = 0; i < pl->n; i++)
		if (pl->plan[i].role == CLUSTER_REPLICA && same_machine(pl->keys, i, pl->plan[i].master))
			same_host++;
	return same_host;
}

int cluster_plan(size_t n, const char *const *host_keys, const char *const *zone_keys, unsigned replicas,
		 struct cluster_plan_entry *ret, size_t *ret_same_host, struct init_error *err)
{
	size_t masters = n / ((size_t)replicas + 1), same_host;
	_cleanup_free_ size_t *machine = NULL, *masters_on = NULL, *replicas_of = NULL, *zone = NULL,
			      *masters_in = NULL;
	_cleanup_free_ unsigned *first = NULL, *last = NULL;
	_cleanup_free_ bool *placed = NULL;
	_cleanup_free_ struct cluster_plan_entry *plan = NULL;
	struct planner pl;

	if (!masters)
		return init_error_set(err, -EINVAL,
				      "%zu node%s cannot hold 1 master with %u replica%s: need at least %zu node%s", n,
				      n == 1 ? "" : "s", replicas, replicas == 1 ? "" : "s", (size_t)replicas + 1,
				      replicas ? "s" : "");
	if (masters > CLUSTER_SLOTS)
		return init_error_set(err, -EINVAL, "%zu masters cannot share %d slots: use more replicas", masters,
				      CLUSTER_SLOTS);
	machine = calloc(n, sizeof(*machine));
	masters_on = calloc(n, sizeof(*masters_on));
	zone = calloc(n, sizeof(*zone));
	masters_in = calloc(n, sizeof(*masters_in));
	replicas_of = calloc(n, sizeof(*replicas_of));
	placed = calloc(n, sizeof(*placed));
	plan = calloc(n, sizeof(*plan));
	first = calloc(masters, sizeof(*first));
	last = calloc(masters, sizeof(*last));
	if (!machine || !masters_on || !zone || !masters_in || !replicas_of || !placed || !plan || !first || !last)
		return init_error_set(err, -ENOMEM, "out of memory");
	pl = (struct planner){
		.n = n,
		.keys = host_keys,
		.zones = zone_keys,
		.machine = machine,
		.zone = zone,
		.masters_on = masters_on,
		.masters_in = masters_in,
		.replicas_of = replicas_of,
		.placed = placed,
		.plan = plan,
	};
	same_host = plan_with(&pl, masters, replicas, first, last);
	memcpy(ret, plan, n * sizeof(*plan));
	if (ret_same_host)
		*ret_same_host = same_host;
	return (int)masters;
}
