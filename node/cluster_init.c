/* SPDX-License-Identifier: MIT */
/*
 * `kvinit cluster-init`: wait for REDIS_NODES, look at what they are, and create the cluster, extend it with new
 * empty nodes, finish a half-formed one, or leave a formed one alone. Safe to re-run, and two runs at once end in
 * one cluster: the plan is a pure function of REDIS_NODES, so both send the same commands, and a reply saying
 * "already done" is not an error.
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
#include <time.h>

#include "cluster.h"

extern char **environ;

#define FORMATION_TIMEOUT_MS 500
#define POLL_MS		     20

struct run {
	const struct node_options *o;
	struct cluster_peer *peers;
	size_t n;
	uint64_t deadline;
	struct init_error *err;
};

static void poll_sleep(void)
{
	struct timespec ts = {.tv_nsec = POLL_MS * 1000000L};

	(void)nanosleep(&ts, NULL);
}

static bool timed_out(const struct run *r, const char *what)
{
	if (init_now_usec() < r->deadline)
		return false;
	(void)snprintf(r->err->msg, sizeof(r->err->msg), "timed out waiting for %s", what);
	return true;
}

static const char *reply_str(const redisReply *rep)
{
	return rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS ||
		       rep->type == REDIS_REPLY_ERROR)
		       ? rep->str
		       : NULL;
}

/* CONFIG GET name -> value, or NULL (an unknown parameter answers an empty array). */
static const char *config_value(const redisReply *rep)
{
	return rep && rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 ? reply_str(rep->element[1]) : NULL;
}

static long long keys_in(const char *keyspace)
{
	long long total = 0;

	for (const char *p = strstr(keyspace, "keys="); p; p = strstr(p + 5, "keys="))
		total += strtoll(p + 5, NULL, 10);
	return total;
}

struct myself_scan {
	struct cluster_peer *peer;
};

static int scan_myself(const struct cluster_line *l, void *userdata)
{
	struct cluster_peer *p = ((struct myself_scan *)userdata)->peer;

	if (!l->myself)
		return 0;
	p->epoch = l->epoch;
	p->own_slots = l->nslots;
	p->is_master = l->is_master;
	(void)snprintf(p->master_id, sizeof(p->master_id), "%s", l->is_master ? "" : l->master);
	return 1;
}

/* What every node is: its id, whom it knows, its slots, keys, and the address other nodes should meet it at. */
static int inspect(struct run *r)
{
	static const char *const cmds[][3] = {
		{"CLUSTER", "MYID", NULL},
		{"CLUSTER", "INFO", NULL},
		{"CLUSTER", "NODES", NULL},
		{"INFO", "keyspace", NULL},
		{"CONFIG", "GET", "cluster-announce-ip"},
		{"CONFIG", "GET", "cluster-announce-port"},
		{"CONFIG", "GET", "cluster-announce-bus-port"},
		{"CONFIG", "GET", "cluster-port"},
		{"CONFIG", "GET", "cluster-node-timeout"},
	};
	enum { C_MYID, C_INFO, C_NODES, C_KEYS, C_AIP, C_APORT, C_ABUS, C_BUS, C_TIMEOUT, C__COUNT };
	_cleanup_free_ redisReply **rep = calloc(r->n * C__COUNT, sizeof(redisReply *));
	char name[NODE_HOST_MAX + 16], value[32];

	if (!rep)
		return -ENOMEM;
	for (int c = 0; c < C__COUNT; c++) {
		int argc = cmds[c][2] ? 3 : 2;

		if (cluster_send_all(r->peers, r->n, NULL, rep + (size_t)c * r->n, argc, (const char **)cmds[c]) > 0) {
			(void)snprintf(r->err->msg, sizeof(r->err->msg), "lost a node while looking at it");
			goto fail;
		}
	}
	for (size_t i = 0; i < r->n; i++) {
		struct cluster_peer *p = &r->peers[i];
		const char *s, *info = reply_str(rep[C_INFO * r->n + i]);
		struct myself_scan scan = {.peer = p};

		cluster_peer_name(p, name, sizeof(name));
		if (!info || rep[C_INFO * r->n + i]->type == REDIS_REPLY_ERROR) {
			(void)snprintf(r->err->msg, sizeof(r->err->msg), "%s is not a cluster node: %s", name,
				       info ? info : "no answer to CLUSTER INFO");
			goto fail;
		}
		s = reply_str(rep[C_MYID * r->n + i]);
		(void)snprintf(p->id, sizeof(p->id), "%s", s ? s : "");
		p->known_nodes = cluster_info_field(info, "cluster_known_nodes", value, sizeof(value))
					 ? (unsigned)strtoul(value, NULL, 10)
					 : 0;
		p->slots_assigned = cluster_info_field(info, "cluster_slots_assigned", value, sizeof(value))
					    ? (unsigned)strtoul(value, NULL, 10)
					    : 0;
		s = reply_str(rep[C_KEYS * r->n + i]);
		p->keys = s ? keys_in(s) : 0;
		free(p->nodes_text);
		s = reply_str(rep[C_NODES * r->n + i]);
		p->nodes_text = strdup(s ? s : "");
		if (!p->nodes_text)
			goto fail;
		(void)cluster_each_line(p->nodes_text, scan_myself, &scan);

		/* The address the others must use: the announced one where set, else the one we reached. */
		s = config_value(rep[C_AIP * r->n + i]);
		(void)snprintf(p->meet_ip, sizeof(p->meet_ip), "%s", s && *s ? s : p->ip);
		s = config_value(rep[C_APORT * r->n + i]);
		p->meet_port = s && atoi(s) > 0 ? (unsigned)atoi(s) : p->addr.port;
		s = config_value(rep[C_ABUS * r->n + i]);
		p->meet_bus = s && atoi(s) > 0 ? (unsigned)atoi(s) : 0;
		if (!p->meet_bus) {
			s = config_value(rep[C_BUS * r->n + i]);
			p->meet_bus = s && atoi(s) > 0 ? (unsigned)atoi(s) : p->addr.port + 10000;
		}
		s = config_value(rep[C_TIMEOUT * r->n + i]);
		p->node_timeout = s ? atoll(s) : r->o->node_timeout;
	}
	cluster_free_replies(rep, r->n * C__COUNT);
	return 0;
fail:
	cluster_free_replies(rep, r->n * C__COUNT);
	return -EIO;
}

/* ---- what the nodes know of each other ---- */

static int find_peer(const struct run *r, const char *id)
{
	for (size_t i = 0; i < r->n; i++)
		if (strcmp(r->peers[i].id, id) == 0)
			return (int)i;
	return -1;
}

struct knows_scan {
	const struct run *r;
	size_t *parent;
	size_t self;
	uint64_t *coverage;
	unsigned known; /* peers seen, handshakes excluded */
	bool any_replica;
};

static size_t uf_find(size_t *parent, size_t i)
{
	while (parent[i] != i)
		i = parent[i] = parent[parent[i]];
	return i;
}

static int scan_knows(const struct cluster_line *l, void *userdata)
{
	struct knows_scan *k = userdata;
	int j;

	if (l->handshake)
		return 0;
	if (!l->is_master)
		k->any_replica = true;
	j = find_peer(k->r, l->id);
	if (j >= 0) {
		k->known++;
		if (k->parent)
			k->parent[uf_find(k->parent, k->self)] = uf_find(k->parent, (size_t)j);
	}
	if (k->coverage && l->is_master)
		for (unsigned w = 0; w < NODE_SLOTS / 64; w++)
			k->coverage[w] |= l->slots[w];
	return 0;
}

static unsigned count_slots(const uint64_t *cov)
{
	unsigned n = 0;

	for (unsigned w = 0; w < NODE_SLOTS / 64; w++)
		n += (unsigned)__builtin_popcountll(cov[w]);
	return n;
}

/* Reads `count` replies from p; an error reply that says the work is already done counts as success. */
static int read_replies(struct cluster_peer *p, size_t count, const char *what, bool *ret_busy)
{
	int failed = 0;
	char name[NODE_HOST_MAX + 16];

	cluster_peer_name(p, name, sizeof(name));
	for (size_t i = 0; i < count; i++) {
		redisReply *rep = NULL;

		if (redisGetReply(p->ctx, (void **)&rep) != REDIS_OK || !rep) {
			log_warn("%s: %s failed: %s", name, what, p->ctx->errstr);
			return -EIO;
		}
		if (rep->type == REDIS_REPLY_ERROR) {
			if (strstr(rep->str, "already"))
				*ret_busy = true;
			else if (!strstr(rep->str, "config epoch") && !strstr(rep->str, "does not know any other node"))
				log_debug("%s: %s: %s", name, what, rep->str), failed++;
		}
		freeReplyObject(rep);
	}
	return failed;
}

static void set_node_timeout(struct run *r, const long long *values)
{
	char v[32];

	for (size_t i = 0; i < r->n; i++) {
		const char *argv[] = {"CONFIG", "SET", "cluster-node-timeout", v};
		redisReply *rep;

		(void)snprintf(v, sizeof(v), "%lld", values[i]);
		rep = redisCommandArgv(r->peers[i].ctx, 4, argv, NULL);
		if (!rep || rep->type == REDIS_REPLY_ERROR)
			log_warn("cannot set cluster-node-timeout to %s: %s, ignoring", v,
				 rep ? rep->str : r->peers[i].ctx->errstr);
		freeReplyObject(rep);
	}
}

/* Every node meets every other it does not know yet, all pipelined. */
static int meet_all(struct run *r)
{
	for (size_t i = 0; i < r->n; i++) {
		size_t sent = 0;
		bool busy = false;

		for (size_t j = 0; j < r->n; j++) {
			char port[8], bus[8];
			const char *argv[] = {"CLUSTER", "MEET", r->peers[j].meet_ip, port, bus};

			if (i == j || (r->peers[i].nodes_text && strstr(r->peers[i].nodes_text, r->peers[j].id)))
				continue;
			(void)snprintf(port, sizeof(port), "%u", r->peers[j].meet_port);
			(void)snprintf(bus, sizeof(bus), "%u", r->peers[j].meet_bus);
			(void)redisAppendCommandArgv(r->peers[i].ctx, 5, argv, NULL);
			sent++;
		}
		if (read_replies(&r->peers[i], sent, "CLUSTER MEET", &busy) < 0)
			return -EIO;
	}
	return 0;
}

/* Polls until every node knows every other one (no handshake left). */
static int wait_all_known(struct run *r)
{
	for (;;) {
		bool all = true;

		if (inspect(r) < 0)
			return -EIO;
		for (size_t i = 0; i < r->n && all; i++) {
			struct knows_scan k = {.r = r, .self = i};

			(void)cluster_each_line(r->peers[i].nodes_text, scan_knows, &k);
			all = k.known == r->n;
		}
		if (all)
			return 0;
		if (timed_out(r, "the nodes to meet each other"))
			return -ETIMEDOUT;
		poll_sleep();
	}
}

/* Who serves each slot, as one node sees it: an index into the peers, or NO_OWNER. */
#define NO_OWNER 0xffffU

struct map_scan {
	const struct run *r;
	uint16_t owner[NODE_SLOTS];
	unsigned covered;
};

static int scan_map(const struct cluster_line *l, void *userdata)
{
	struct map_scan *m = userdata;
	int who = find_peer(m->r, l->id);

	if (!l->is_master || !l->nslots || cluster_has_flag(l->flags, "fail"))
		return 0;
	for (unsigned s = 0; s < NODE_SLOTS; s++) {
		if (!(l->slots[s / 64] & (1ULL << (s % 64))))
			continue;
		m->covered += m->owner[s] == NO_OWNER;
		m->owner[s] = who < 0 ? NO_OWNER - 1 : (uint16_t)who;
	}
	return 0;
}

/*
 * Polls until the nodes in `which` (all when NULL) say cluster_state:ok and every one of them sees the same
 * owner for every slot. (Who replicates whom travels by gossip for a second or two more; each node's own word on
 * its role is authoritative at once, and that is what the shape at the end shows.)
 */
static int wait_ok(struct run *r, const bool *which, const char *what)
{
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	_cleanup_free_ struct map_scan *first = calloc(1, sizeof(*first));
	_cleanup_free_ struct map_scan *m = calloc(1, sizeof(*m));
	const char *argv[] = {"CLUSTER", "INFO"};

	if (!rep || !first || !m)
		return -ENOMEM;
	for (;;) {
		bool ok = true, have_first = false;
		char value[16];

		if (cluster_send_all(r->peers, r->n, which, rep, 2, argv) > 0) {
			cluster_free_replies(rep, r->n);
			return -EIO;
		}
		for (size_t i = 0; i < r->n && ok; i++)
			if (rep[i])
				ok = reply_str(rep[i]) &&
				     cluster_info_field(rep[i]->str, "cluster_state", value, sizeof(value)) &&
				     strcmp(value, "ok") == 0;
		cluster_free_replies(rep, r->n);
		if (ok && inspect(r) == 0) {
			for (size_t i = 0; i < r->n && ok; i++) {
				struct map_scan *cur = have_first ? m : first;

				if (which && !which[i])
					continue;
				*cur = (struct map_scan){.r = r};
				memset(cur->owner, 0xff, sizeof(cur->owner));
				(void)cluster_each_line(r->peers[i].nodes_text, scan_map, cur);
				ok = cur->covered == NODE_SLOTS &&
				     (!have_first || memcmp(first->owner, cur->owner, sizeof(cur->owner)) == 0);
				have_first = true;
			}
		}
		if (ok)
			return 0;
		if (timed_out(r, what))
			return -ETIMEDOUT;
		poll_sleep();
	}
}

/* Slots of [first, last] that no node serves yet, as ADDSLOTSRANGE arguments appended to p's pipeline. */
static size_t add_missing_slots(struct cluster_peer *p, const uint64_t *cov, unsigned first, unsigned last)
{
	size_t sent = 0;

	for (unsigned s = first; s <= last; s++) {
		unsigned e = s;
		char a[8], b[8];
		const char *argv[] = {"CLUSTER", "ADDSLOTSRANGE", a, b};

		if (cov[s / 64] & (1ULL << (s % 64)))
			continue;
		while (e + 1 <= last && !(cov[(e + 1) / 64] & (1ULL << ((e + 1) % 64))))
			e++;
		(void)snprintf(a, sizeof(a), "%u", s);
		(void)snprintf(b, sizeof(b), "%u", e);
		(void)redisAppendCommandArgv(p->ctx, 4, argv, NULL);
		sent++;
		s = e;
	}
	return sent;
}

static int create_or_finish(struct run *r, const uint64_t *coverage, bool replicas_attached)
{
	_cleanup_free_ struct node_plan_entry *plan = NULL;
	_cleanup_free_ const char **hosts = NULL;
	_cleanup_free_ long long *original = NULL, *fast = NULL;
	_cleanup_free_ bool *masters = NULL;
	_cleanup_free_ size_t *sent = NULL;
	size_t same_host = 0;
	bool lowered = false;
	int m, res;

	if (!r->n)
		return -EINVAL;
	plan = calloc(r->n, sizeof(*plan));
	hosts = calloc(r->n, sizeof(*hosts));
	original = calloc(r->n, sizeof(*original));
	fast = calloc(r->n, sizeof(*fast));
	masters = calloc(r->n, sizeof(*masters));
	sent = calloc(r->n, sizeof(*sent));
	if (!plan || !hosts || !original || !fast || !masters || !sent)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		hosts[i] = r->peers[i].ip;
	m = node_plan_cluster(r->n, hosts, (unsigned)r->o->replicas, plan, &same_host, r->err);
	if (m < 0)
		return m;
	if (m < 3)
		log_warn("%d master%s: Redis Cluster needs a majority of 3 or more masters to fail a master over, so "
			 "with %d a failed master stays failed until it comes back",
			 m, m == 1 ? "" : "s", m);
	if (same_host)
		log_warn("%zu replica%s share a host with their master: a failure of that host loses both", same_host,
			 same_host == 1 ? "" : "s");
	log_info("creating a cluster of %d masters and %zu replicas", m, r->n - (size_t)m);

	/* Short node timeout for the formation, only while no replica exists (see the top of this file). */
	if (!replicas_attached) {
		for (size_t i = 0; i < r->n; i++) {
			/* a node still at the formation value was left there by an init that died: the configured one
			 */
			original[i] = r->peers[i].node_timeout == FORMATION_TIMEOUT_MS ? r->o->node_timeout
										       : r->peers[i].node_timeout;
			fast[i] = original[i] < FORMATION_TIMEOUT_MS ? original[i] : FORMATION_TIMEOUT_MS;
		}
		set_node_timeout(r, fast);
		lowered = true;
	}

	/* Distinct config epochs, so no two masters start equal; a node that knows others refuses, which is fine. */
	for (size_t i = 0; i < r->n; i++) {
		char epoch[24];
		const char *argv[] = {"CLUSTER", "SET-CONFIG-EPOCH", epoch};
		bool busy = false;

		if (r->peers[i].known_nodes > 1 || r->peers[i].epoch)
			continue;
		(void)snprintf(epoch, sizeof(epoch), "%zu", i + 1);
		(void)redisAppendCommandArgv(r->peers[i].ctx, 3, argv, NULL);
		(void)read_replies(&r->peers[i], 1, "CLUSTER SET-CONFIG-EPOCH", &busy);
	}

	/* Slots, to every planned master at once. */
	for (size_t i = 0; i < r->n; i++)
		if (plan[i].role == NODE_ROLE_MASTER)
			sent[i] = add_missing_slots(&r->peers[i], coverage, plan[i].first, plan[i].last);
	for (size_t i = 0; i < r->n; i++) {
		bool busy = false;

		if (plan[i].role != NODE_ROLE_MASTER)
			continue;
		masters[i] = true;
		if (read_replies(&r->peers[i], sent[i], "CLUSTER ADDSLOTSRANGE", &busy) < 0)
			return -EIO;
		if (busy)
			log_info("some slots were already assigned (another cluster-init at work?), going on");
	}

	res = meet_all(r);
	if (res == 0)
		res = wait_all_known(r);
	if (res == 0)
		res = wait_ok(r, masters, "the masters to report cluster_state:ok");
	if (lowered)
		set_node_timeout(r, original);
	if (res < 0)
		return res;

	/* Replicas last, once the configured timeout is back. */
	for (;;) {
		size_t pending = 0;

		for (size_t i = 0; i < r->n; i++) {
			const char *master_id = r->peers[plan[i].master].id;
			const char *argv[] = {"CLUSTER", "REPLICATE", master_id};
			redisReply *rep;

			/* a replica of that master already, by its own word (another replica of it may exist too) */
			if (plan[i].role != NODE_ROLE_REPLICA || r->peers[i].own_slots ||
			    strcmp(r->peers[i].master_id, master_id) == 0)
				continue;
			rep = redisCommandArgv(r->peers[i].ctx, 3, argv, NULL);
			if (!rep)
				return -EIO;
			if (rep->type == REDIS_REPLY_ERROR) {
				log_debug("CLUSTER REPLICATE: %s, retrying", rep->str);
				pending++;
			}
			freeReplyObject(rep);
		}
		if (!pending)
			break;
		if (timed_out(r, "the replicas to attach"))
			return -ETIMEDOUT;
		poll_sleep();
		if (inspect(r) < 0)
			return -EIO;
	}
	return wait_ok(r, NULL, "every node to report cluster_state:ok");
}

/* ---- extending a formed cluster ---- */

struct masters_scan {
	struct cluster_line *lines;
	size_t n, max;
};

static int scan_masters(const struct cluster_line *l, void *userdata)
{
	struct masters_scan *m = userdata;

	if (m->n < m->max && !l->handshake)
		m->lines[m->n++] = *l;
	return 0;
}

static int extend(struct run *r, const bool *member)
{
	_cleanup_free_ struct cluster_line *lines = calloc(r->n * 4 + 16, sizeof(*lines));
	struct masters_scan ms = {.lines = lines, .max = r->n * 4 + 16};
	size_t first_member = 0;
	int res;

	if (!lines)
		return -ENOMEM;
	while (!member[first_member])
		first_member++;
	res = meet_all(r);
	if (res == 0)
		res = wait_all_known(r);
	if (res < 0)
		return res;
	(void)cluster_each_line(r->peers[first_member].nodes_text, scan_masters, &ms);

	for (size_t i = 0; i < r->n; i++) {
		const struct cluster_line *best = NULL;
		unsigned best_count = 0;
		bool best_other_host = false;
		const char *argv[3];
		redisReply *rep;
		char name[NODE_HOST_MAX + 16];

		if (member[i])
			continue;
		/* the master with the fewest replicas, on another host when there is one; ties: the lowest slot */
		for (size_t a = 0; a < ms.n; a++) {
			unsigned count = 0;
			bool other_host;

			if (!ms.lines[a].is_master || !ms.lines[a].nslots)
				continue;
			for (size_t b = 0; b < ms.n; b++)
				count += strcmp(ms.lines[b].master, ms.lines[a].id) == 0;
			other_host = strncmp(ms.lines[a].addr, r->peers[i].meet_ip, strlen(r->peers[i].meet_ip)) != 0;
			if (!best || (other_host && !best_other_host) ||
			    (other_host == best_other_host &&
			     (count < best_count ||
			      (count == best_count && __builtin_ffsll((long long)ms.lines[a].slots[0]) <
							      __builtin_ffsll((long long)best->slots[0]))))) {
				best = &ms.lines[a];
				best_count = count;
				best_other_host = other_host;
			}
		}
		if (!best) {
			(void)snprintf(r->err->msg, sizeof(r->err->msg), "the formed cluster has no master with slots");
			return -EINVAL;
		}
		argv[0] = "CLUSTER";
		argv[1] = "REPLICATE";
		argv[2] = best->id;
		rep = redisCommandArgv(r->peers[i].ctx, 3, argv, NULL);
		cluster_peer_name(&r->peers[i], name, sizeof(name));
		if (!rep || rep->type == REDIS_REPLY_ERROR) {
			(void)snprintf(r->err->msg, sizeof(r->err->msg), "%s: CLUSTER REPLICATE %s: %s", name, best->id,
				       rep ? rep->str : r->peers[i].ctx->errstr);
			freeReplyObject(rep);
			return -EIO;
		}
		freeReplyObject(rep);
		log_info("added %s as a replica of %.40s", name, best->id);
		/* count it, so the next new node goes elsewhere */
		if (ms.n < ms.max) {
			ms.lines[ms.n] = (struct cluster_line){.is_master = false};
			(void)snprintf(ms.lines[ms.n].master, sizeof(ms.lines[ms.n].master), "%s", best->id);
			(void)snprintf(ms.lines[ms.n].id, sizeof(ms.lines[ms.n].id), "%s", r->peers[i].id);
			ms.n++;
		}
	}
	return wait_ok(r, NULL, "every node to report cluster_state:ok");
}

/* ---- the shape at the end ---- */

struct shape_scan {
	const struct run *r;
	size_t self;
};

/* One row, from the node's own line of its own CLUSTER NODES: what it says of itself is authoritative. */
static int scan_shape(const struct cluster_line *l, void *userdata)
{
	const struct shape_scan *sc = userdata;
	const struct run *r = sc->r;
	char name[NODE_HOST_MAX + 16], master[NODE_HOST_MAX + 16], ranges[256];
	int j;

	if (!l->myself)
		return 0;
	cluster_peer_name(&r->peers[sc->self], name, sizeof(name));
	j = l->is_master ? -1 : find_peer(r, l->master);
	if (j >= 0)
		cluster_peer_name(&r->peers[j], master, sizeof(master));
	else
		(void)snprintf(master, sizeof(master), "%s", l->is_master ? "-" : l->master);
	cluster_format_ranges(l->slots, ranges, sizeof(ranges));
	(void)printf("%-30s %-8s %-24s %s\n", name, l->is_master ? "master" : "replica", ranges, master);
	return 1;
}

static void print_shape(const struct run *r)
{
	(void)printf("%-30s %-8s %-24s %s\n", "node", "role", "slots", "master");
	for (size_t i = 0; i < r->n; i++) {
		struct shape_scan sc = {.r = r, .self = i};

		(void)cluster_each_line(r->peers[i].nodes_text, scan_shape, &sc);
	}
	(void)fflush(stdout);
}

/* ---- deciding ---- */

/* The one line of a refusal: "<node> <why>". */
static int refuse(struct run *r, const char *node, const char *why)
{
	(void)snprintf(r->err->msg, sizeof(r->err->msg), "%.200s %s", node, why);
	return -EINVAL;
}

static int decide_and_apply(struct run *r)
{
	_cleanup_free_ size_t *parent = calloc(r->n, sizeof(*parent));
	_cleanup_free_ uint64_t *cov = calloc(r->n, NODE_SLOTS / 8);
	_cleanup_free_ bool *member = calloc(r->n, sizeof(*member));
	uint64_t all_cov[NODE_SLOTS / 64] = {0};
	char name[NODE_HOST_MAX + 16], other[2 * NODE_HOST_MAX + 40];
	bool replicas_attached = false;
	int full = -1, with_slots = -1;

	if (!parent || !cov || !member)
		return -ENOMEM;
	for (size_t i = 0; i < r->n; i++)
		parent[i] = i;
	for (size_t i = 0; i < r->n; i++) {
		struct knows_scan k = {.r = r, .parent = parent, .self = i, .coverage = all_cov};

		(void)cluster_each_line(r->peers[i].nodes_text, scan_knows, &k);
		replicas_attached = replicas_attached || k.any_replica;
	}
	for (size_t i = 0; i < r->n; i++) {
		struct knows_scan k = {.r = r, .self = i, .coverage = cov + uf_find(parent, i) * (NODE_SLOTS / 64)};

		(void)cluster_each_line(r->peers[i].nodes_text, scan_knows, &k);
	}
	/*
	 * A node alone with keys is someone's data, not a cluster to join (at start it even claims the slots its keys
	 * hash to). Only a node that serves all 16384 slots by itself is a formed, if small, cluster.
	 */
	for (size_t i = 0; i < r->n; i++) {
		cluster_peer_name(&r->peers[i], name, sizeof(name));
		if (r->peers[i].keys > 0 && r->peers[i].known_nodes <= 1 &&
		    count_slots(cov + uf_find(parent, i) * (NODE_SLOTS / 64)) != NODE_SLOTS)
			return refuse(r, name, "holds keys but is in no cluster: empty it (FLUSHALL) or leave it out");
	}
	for (size_t i = 0; i < r->n; i++) {
		size_t root = uf_find(parent, i);
		unsigned covered = count_slots(cov + root * (NODE_SLOTS / 64));

		if (!covered)
			continue;
		if (with_slots >= 0 && uf_find(parent, (size_t)with_slots) != root) {
			cluster_peer_name(&r->peers[with_slots], other, sizeof(other));
			cluster_peer_name(&r->peers[i], name, sizeof(name));
			(void)snprintf(other + strlen(other), sizeof(other) - strlen(other), " and %.200s", name);
			return refuse(r, other, "belong to two different clusters: refusing to merge them");
		}
		with_slots = (int)i;
		if (covered == NODE_SLOTS)
			full = (int)root;
	}

	if (full < 0)
		return create_or_finish(r, all_cov, replicas_attached);

	/*
	 * To attach as replicas: empty nodes outside the cluster, and empty masters inside it (what an init that died
	 * before attaching its replicas leaves behind).
	 */
	for (size_t i = 0; i < r->n; i++) {
		const struct cluster_peer *p = &r->peers[i];

		member[i] = uf_find(parent, i) == (size_t)full && !(p->is_master && !p->own_slots && !p->keys);
		if (member[i] || uf_find(parent, i) == (size_t)full)
			continue;
		cluster_peer_name(p, name, sizeof(name));
		if (p->known_nodes > 1 || p->own_slots || p->keys)
			return refuse(r, name, "is neither part of the formed cluster nor an empty node");
	}
	for (size_t i = 0; i < r->n; i++)
		if (!member[i])
			return extend(r, member);
	log_info("the cluster is formed and has every node: nothing to do");
	return 0;
}

int node_cluster_init_run(const struct node_options *o, const struct secrets_value *pw)
{
	struct init_error err = {{0}};
	struct node_addr *addrs = NULL;
	struct run r = {.o = o, .err = &err};
	uint64_t t0 = init_now_usec();
	int res;

	res = node_parse_nodes(o->nodes, "REDIS_NODES", (unsigned)o->port, &addrs, &r.n, &err);
	if (res < 0) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
	r.peers = calloc(r.n, sizeof(*r.peers));
	if (!r.peers) {
		free(addrs);
		log_error("out of memory");
		return INIT_EXIT_SYSCALL;
	}
	for (size_t i = 0; i < r.n; i++)
		r.peers[i].addr = addrs[i];
	free(addrs);
	r.deadline = t0 + (uint64_t)o->init_timeout * USEC_PER_MSEC;

	res = cluster_connect_all(r.peers, r.n, pw, r.deadline, &err);
	if (res == 0) {
		log_info("all %zu nodes answer (%.0f ms)", r.n, (double)(init_now_usec() - t0) / 1000.0);
		res = inspect(&r);
	}
	if (res == 0)
		res = decide_and_apply(&r);
	if (res == 0) {
		log_info("cluster ok (%.0f ms)", (double)(init_now_usec() - t0) / 1000.0);
		print_shape(&r);
	} else {
		log_error("cluster-init: %s", err.msg[0] ? err.msg : strerror(-res));
	}
	cluster_peers_free(r.peers, r.n);
	return res == 0 ? 0 : 1;
}

int node_cluster_init_main(struct node_config *c, char **args)
{
	struct secrets_password pw = {0};
	struct init_error err;
	int code;

	if (args[0]) {
		log_error("cluster-init: unexpected argument '%s' (the nodes come from REDIS_NODES)", args[0]);
		return INIT_EXIT_USAGE;
	}
	if (!*c->opt.nodes) {
		log_error("REDIS_NODES is empty: list the nodes, e.g. REDIS_NODES='redis-node-0:6379 redis-node-1:6380 "
			  "...'");
		return INIT_EXIT_USAGE;
	}
	if (secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0) {
		log_error("%s", err.msg);
		return INIT_EXIT_USAGE;
	}
	code = node_cluster_init_run(&c->opt, &pw.value);
	secrets_password_free(&pw);
	return code;
}
