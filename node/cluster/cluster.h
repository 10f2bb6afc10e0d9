/* SPDX-License-Identifier: MIT */
/*
 * node/cluster/: kvinit as a client of a Redis/Valkey Cluster, and `kvinit cluster-init`.
 *   plan.c          REDIS_NODES, and the cluster plan: which node is a master with which slots, which replicates
 *                   whom (pure)
 *   parse.c         what servers say: CLUSTER NODES lines, CLUSTER INFO and INFO fields, replicas, slot sets (pure)
 *   client.c        talking to nodes: resolve, connect and AUTH, wait for all, pipelined commands, inspect
 *   view.c          whether a node is what its peers see: its own line, whom to ask, a peer's word (pure)
 *   decide.c        every decision of cluster-init: form, extend, leave alone or refuse; a new replica's master;
 *                   what is left to do of a formation; when a wait is over (pure)
 *   agree.c         whether every node sees the same cluster, the last wait before "cluster ok" (pure)
 *   apply.c         carrying a decision out: slots, MEET, REPLICATE, waiting for cluster_state:ok
 *   reshape.c       reshaping a formed cluster to REDIS_NODES: new masters, slot moves, removals (pure)
 *   reshape_apply.c carrying a reshape out: MEET, REPLICATE, the moves (migrate.c), FORGET and RESET
 *   cluster_init.c  the cluster-init role: connect, inspect, decide, apply, print the shape
 * The node role's helpers beside the server (failover.c, heal.c, rotate.c) and health.c use the client.
 */
#ifndef KVINIT_NODE_CLUSTER_H
#define KVINIT_NODE_CLUSTER_H

#include "conn.h"
#include <netinet/in.h>
#include <stdint.h>

#include "node.h"
#include "secrets.h"

#define CLUSTER_SLOTS	 16384
#define CLUSTER_HOST_MAX NODE_HOST_MAX
#define CLUSTER_ID_LEN	 40 /* a node id: 40 hex digits */

/* ---- REDIS_NODES and the cluster plan (plan.c): pure ---- */
struct cluster_addr {
	char host[CLUSTER_HOST_MAX]; /* as written: an IP address (IPv6 without brackets) or an RFC 1123 name */
	unsigned port;
};

/*
 * Parses REDIS_NODES: entries separated by spaces, commas or semicolons (any mix, runs of them count as one);
 * each `host`, `host:port`, `[ipv6]` or `[ipv6]:port`; a bare IPv6 address (two or more colons, no brackets) is a
 * host without port. The port defaults to default_port. Refused, with one line in err naming the entry and the rule:
 * an empty list, an empty entry host, a host that is neither an IP nor an RFC 1123 name, a port outside 1-65535
 * or not decimal, a duplicate host:port, more than 1000 entries. `var` names the variable in messages.
 * The rule for users is the option layer's: REDIS_NODES, like every option, refuses control characters before it
 * gets here, so tabs and line breaks are no separators a user can write; the parser only takes them as blanks.
 */
int cluster_parse_nodes(const char *list, const char *var, unsigned default_port, struct cluster_addr **ret_nodes,
			size_t *ret_n, struct init_error *err);

enum cluster_role { CLUSTER_MASTER, CLUSTER_REPLICA };

struct cluster_plan_entry {
	enum cluster_role role;
	size_t master;	      /* a replica's master: index into the node list; a master: its own index */
	unsigned first, last; /* a master's slot range, inclusive */
};

/*
 * The deterministic cluster plan for n nodes in list order. host_keys[i] says which machine node i is on (its
 * resolved address; equal keys = same machine; NULL = a machine of its own); zone_keys[i] (the array may be NULL)
 * its availability zone (NULL or "": not known, which is no other zone). masters = n / (replicas + 1), at least 1
 * (else -EINVAL with a message). Masters are chosen in list order, each time the first node in a zone, then on a
 * host, with the fewest masters so far, so masters spread over zones and machines (losing one must not lose a
 * majority of them); slot ranges follow list order and match redis-cli --cluster create exactly. Replicas are
 * handed out round-robin over the masters, each time the first remaining node in another zone than that master if
 * there is one, else on a different host, else the first remaining; nodes left over (5 nodes with replicas 1)
 * become extra replicas of the masters with the fewest replicas, lowest index first, with the same preference. A
 * last pass swaps the masters of two replicas where that takes a replica to another zone or off its master's host
 * without bringing the other closer to its own. ret has n entries, index-aligned with the node list. Returns the
 * number of masters. *ret_same_host (may be NULL) is the number of replicas that still share their master's host.
 */
int cluster_plan(size_t n, const char *const *host_keys, const char *const *zone_keys, unsigned replicas,
		 struct cluster_plan_entry *ret, size_t *ret_same_host, struct init_error *err);

/* ---- what servers say (parse.c): pure ---- */
struct cluster_slots {
	uint64_t bits[CLUSTER_SLOTS / 64];
};

static inline bool cluster_slots_has(const struct cluster_slots *s, unsigned slot)
{
	return s->bits[slot / 64] & (1ULL << (slot % 64));
}

static inline void cluster_slots_add(struct cluster_slots *s, unsigned slot)
{
	s->bits[slot / 64] |= 1ULL << (slot % 64);
}

unsigned cluster_slots_count(const struct cluster_slots *s);
void cluster_slots_merge(struct cluster_slots *into, const struct cluster_slots *from);
/* "0-5460,5462" (or "-" for none), cut at a whole range with "..." when it does not fit. */
void cluster_format_ranges(const struct cluster_slots *s, char *buf, size_t size);

/* One line of CLUSTER NODES. */
struct cluster_line {
	char id[CLUSTER_ID_LEN + 1];
	char master[CLUSTER_ID_LEN + 1]; /* a replica's master; "" for "-" */
	char addr[320];			 /* "ip:port@cport[,hostname]" as the node wrote it */
	char flags[128], link[16];
	unsigned long long epoch;
	struct cluster_slots slots; /* served; slots being imported or migrated ("[...]") are not */
	unsigned nslots;
	bool myself, is_master, handshake, failed;
};

/*
 * Parses one line (len bytes, no line end needed; any length): "<id> <ip:port@cport[,hostname]> <flags> <master>
 * <ping-sent> <pong-recv> <config-epoch> <link-state> <slot>...", where a slot is "N", "N-M" or an import or
 * migration in progress, "[N->-<id>]" or "[N-<-<id>]". Refuses (-EBADMSG, err naming the field) an id or master that
 * is not 40 hex digits, a missing or malformed field, a slot outside 0-16383, a range whose first slot is above its
 * last, and a slot listed twice.
 */
int cluster_parse_line(const char *line, size_t len, struct cluster_line *ret, struct init_error *err);
/*
 * Calls fn for every line of a CLUSTER NODES text (blank lines skipped) and stops at the first fn that returns
 * non-zero, returning that. A line that does not parse stops it with -EBADMSG and err saying which line and why.
 */
int cluster_each_line(const char *text, int (*fn)(const struct cluster_line *l, void *userdata), void *userdata,
		      struct init_error *err);
bool cluster_has_flag(const char *flags, const char *flag);
/* Whether the line's node is at address ip (its "ip:port@..." host, compared as an address where both are one). */
bool cluster_line_host_is(const struct cluster_line *l, const char *ip);

/* "cluster_state:ok\r\n..." -> the value of one field; false when the field is not there. */
bool cluster_info_field(const char *text, const char *field, char *buf, size_t size);
/* The keys of every database in INFO keyspace ("db0:keys=12,expires=0,..."). */
long long cluster_info_keys(const char *keyspace);

/* A master's replica, from its INFO replication: "slave0:ip=10.0.0.5,port=6379,state=online,offset=1234,lag=0". */
struct cluster_replica {
	char ip[CLUSTER_HOST_MAX];
	unsigned port;
	bool online;
	long long offset;
};

/* The replicas INFO replication lists, at most max of them, in its order; returns how many. */
size_t cluster_info_replicas(const char *info, struct cluster_replica *ret, size_t max);

/* ---- whether a node is what its peers see (view.c): pure ---- */
/* "ip:port@cport[,hostname]" -> ip (IPv6 without brackets; "" when the node has no address yet) and port. */
bool cluster_addr_split(const char *addr, char *ret_host, size_t size, unsigned *ret_port);

#define CLUSTER_VIEW_ASK_MAX 4

/* What a node says of itself, and the peers to ask about it. */
struct cluster_self_view {
	struct cluster_line self;		       /* its myself line */
	struct cluster_addr ask[CLUSTER_VIEW_ASK_MAX]; /* best first: its master, masters with slots, the others */
	size_t n_ask;
};

/*
 * From a node's own CLUSTER NODES: its myself line, and the peers worth asking (linked, not flagged fail or pfail,
 * with an address). -ENOENT when no line says myself, -EBADMSG for a text that is not CLUSTER NODES.
 */
int cluster_view_self(const char *nodes_text, struct cluster_self_view *ret, struct init_error *err);
/*
 * Whether a peer's CLUSTER NODES shows self as self says it is: 1 yes; 0 no, with why ("flags this node 'fail'",
 * "has this node at '...', it announces '...'", "does not know this node"); -EBADMSG.
 */
int cluster_view_check_peer(const char *peer_nodes_text, const struct cluster_line *self, char *why, size_t size,
			    struct init_error *err);

/* ---- talking to nodes (client.c) ---- */
/* Resolves host to one address in text form ("DNS: <reason>" in err when it cannot). */
int cluster_resolve(const char *host, char *ret_ip, size_t size, struct init_error *err);
/*
 * Connects to host:port (an address; with TLS its certificate checked against cluster_tls_name) and authenticates
 * with pw (none when pw->data is NULL), with timeout_ms for the
 * connect and for each command. -EACCES when the server refused the password (WRONGPASS, NOAUTH, any error reply
 * to AUTH); another -errno when there is no usable connection (-ECONNREFUSED, -ETIMEDOUT, -ECONNRESET, -EIO...).
 * err says which in one line naming host:port.
 */
int cluster_connect(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
		    struct node_conn **ret_ctx, struct init_error *err);
/*
 * With TLS: the name a peer's certificate is checked against when kvinit connects to it at host:port (an address,
 * or a name: itself), into buf: the hostname it announces in a CLUSTER NODES this process read, else the name of
 * REDIS_NODES that resolved to that address (as cluster-init resolved it, or resolved again, at most once a second,
 * for an address not known yet), else host. cluster_connect checks it; other callers use it for the connections
 * they make themselves. Without TLS, host.
 */
void cluster_tls_name(const char *host, unsigned port, char *buf, size_t size);
/* The REDIS_NODES of this process, for cluster_tls_name (node_tls_client_setup sets it from the options). */
void cluster_tls_names_use(const char *redis_nodes, unsigned default_port);
/* The hostnames the nodes of a CLUSTER NODES text announce, for cluster_tls_name (the text may be NULL). */
void cluster_tls_learn_nodes(const char *nodes_text);
/* The same from the CLUSTER NODES of the node on self, with TLS only (a command less without). */
void cluster_tls_learn_peers(struct node_conn *self);
/* cluster_connect for callers that only keep the reason: the context, or NULL with cluster_connect's line in why. */
struct node_conn *cluster_open(const char *host, unsigned port, const struct secrets_value *pw, unsigned timeout_ms,
			       char *why, size_t size);

struct cluster_peer {
	struct cluster_addr addr;  /* as listed in REDIS_NODES */
	char ip[INET6_ADDRSTRLEN]; /* what the name resolved to */
	struct node_conn *ctx;	   /* NULL until it answered PING */
	char why[192];		   /* why it did not, for progress lines */
	/* what cluster_inspect found */
	char id[CLUSTER_ID_LEN + 1];
	char meet_ip[INET6_ADDRSTRLEN]; /* the address and ports other nodes reach it at (announced, else real) */
	unsigned meet_port, meet_bus;
	unsigned known_nodes;
	unsigned own_slots; /* served by this node */
	bool is_master;
	char master_id[CLUSTER_ID_LEN + 1]; /* a replica's master, from its own line */
	long long keys;
	unsigned long long epoch;
	long long node_timeout;
	char zone[NODE_ZONE_MAX + 1]; /* its availability-zone; "" where unset or the server has none */
	char *nodes_text;	      /* its CLUSTER NODES */
};

void cluster_peer_name(const struct cluster_peer *p, char *buf, size_t size);
void cluster_peer_close(struct cluster_peer *p);
void cluster_peers_free(struct cluster_peer *peers, size_t n);
/* Connects to every peer (resolve, connect, AUTH, PING), retrying until deadline_usec, with progress lines. */
int cluster_connect_all(struct cluster_peer *peers, size_t n, const struct secrets_value *pw, uint64_t deadline_usec,
			struct init_error *err);
/*
 * Sends argv to every connected peer (or those with which[i]) at once, then reads every reply into replies[i]
 * (NULL for a peer left out). -EIO, with err naming the first peer that did not answer, when any did not.
 */
int cluster_send_all(struct cluster_peer *peers, size_t n, const bool *which, redisReply **replies, int argc,
		     const char **argv, struct init_error *err);
void cluster_free_replies(redisReply **replies, size_t n);
/* Asks every peer what it is (ids, known nodes, slots, keys, meeting address, node timeout) into the peers. */
int cluster_inspect(struct cluster_peer *peers, size_t n, long long default_timeout, struct init_error *err);
/* cluster_each_line over a peer's CLUSTER NODES, err naming the peer. */
int cluster_peer_each_line(const struct cluster_peer *p, int (*fn)(const struct cluster_line *l, void *userdata),
			   void *userdata, struct init_error *err);
/* A peer's index by node id, or -1. */
int cluster_find_peer(const struct cluster_peer *peers, size_t n, const char *id);

/* ---- cluster-init's decisions (decide.c): pure ---- */
enum cluster_action {
	CLUSTER_FORM,	 /* create the cluster, or finish a half-formed one, by the plan */
	CLUSTER_EXTEND,	 /* a formed cluster, and empty nodes to attach as replicas */
	CLUSTER_FORMED,	 /* a formed cluster with every node: nothing to do */
	CLUSTER_RESHAPE, /* a formed cluster to reshape: new masters, slot moves, removals (cluster_reshape_decide) */
};

struct cluster_reshape_job;

struct cluster_decision {
	enum cluster_action action;
	bool replicas_attached;			   /* FORM: a replica exists already, so the node timeout stays */
	struct cluster_slots served;		   /* FORM: slots some master serves already */
	const struct cluster_reshape_job *reshape; /* RESHAPE: what to do (owned by the caller) */
};

/*
 * What cluster-init does with the nodes as cluster_inspect found them. plan is the cluster plan for them (NULL when
 * REDIS_NODES cannot be planned): slots that only its masters serve, each within its range, are a formation in
 * progress even where those masters have not met yet. ret_member (n entries) says, for EXTEND, which nodes are in
 * the formed cluster already. Refuses with -EINVAL and a line "<node> <why>" in err: a node that holds keys outside
 * a cluster, a node that holds keys while no formed cluster serves every slot (no formation over data), nodes of two
 * clusters, a node that is neither in the formed cluster nor empty.
 */
int cluster_decide(const struct cluster_peer *peers, size_t n, const struct cluster_plan_entry *plan,
		   struct cluster_decision *ret, bool *ret_member, struct init_error *err);

/*
 * EXTEND: a master for every node that is not a member, in list order, from the formed cluster as members[0]'s
 * CLUSTER NODES shows it: the master with the fewest replicas, in another zone than the new node when there is one
 * (zones as the peers report them), else on another host; ties go to the master with the lowest slot. Each choice
 * counts for the next. ret_master[i] is the master's id for a new node, "" for a member. -EINVAL when the cluster has
 * no master with slots.
 */
int cluster_choose_masters(const struct cluster_peer *peers, size_t n, const bool *member,
			   char (*ret_master)[CLUSTER_ID_LEN + 1], struct init_error *err);

/*
 * FORM: the node timeouts. ret_original[i] is what to put back afterwards (a node still at the formation value was
 * left there by an init that died: the configured one), ret_fast[i] what to set while slots are handed out.
 */
#define CLUSTER_FORMATION_TIMEOUT_MS 500
void cluster_formation_timeouts(const struct cluster_peer *peers, size_t n, long long configured,
				long long *ret_original, long long *ret_fast);
/* FORM: the config epoch to give node i (distinct, so no two masters start equal), or 0 to leave it alone. */
unsigned long long cluster_config_epoch(const struct cluster_peer *peers, size_t i);
/* FORM: the next run of [*from, last] that no master serves; false when none is left. */
bool cluster_next_unserved(const struct cluster_slots *served, unsigned *from, unsigned last, unsigned *ret_first,
			   unsigned *ret_last);
/* FORM: the master node i must still replicate (its id), or NULL when it is not a replica of the plan or already is. */
const char *cluster_replicate_target(const struct cluster_peer *peers, const struct cluster_plan_entry *plan, size_t i);

/* Whether every node knows every other one (no handshake left): 1 yes, 0 not yet, or -EBADMSG. */
int cluster_all_known(const struct cluster_peer *peers, size_t n, struct init_error *err);
/*
 * Whether the nodes in `which` (all when NULL) see every slot served, each by the same master: 1 yes, 0 not yet,
 * -ENOMEM or -EBADMSG.
 */
int cluster_slots_agree(const struct cluster_peer *peers, size_t n, const bool *which, struct init_error *err);

/* An error reply to a command of a formation: work another init did already, harmless, or a failure. */
enum cluster_reply_kind { CLUSTER_REPLY_FAILED, CLUSTER_REPLY_DONE_BEFORE, CLUSTER_REPLY_HARMLESS };
enum cluster_reply_kind cluster_reply_kind(const char *error);

/* ---- agreement (agree.c): pure ---- */
/*
 * Whether every node's CLUSTER NODES agrees: each peer's line, in every node's view, says what the peer's own line
 * says (master with the same slots, or replica of the same master); every node knows every peer and the same nodes
 * outside them, seen alike; and no line is flagged handshake, noaddr, fail? or fail. 1 yes; 0 no, with the first
 * disagreement in why ("'10.0.0.1:7000' sees '10.0.0.4:7003' as a master with slots '-'; it says it is a replica
 * of '10.0.0.2:7001'"); -EBADMSG for a text that is not CLUSTER NODES, -ENOMEM. ret_stale (n * n entries, may be
 * NULL): [i * n + j] when node i's line about peer j is not what j says, or missing or flagged: i has still to hear
 * from j.
 */
int cluster_views_agree(const struct cluster_peer *peers, size_t n, bool *ret_stale, char *why, size_t size,
			struct init_error *err);
/*
 * Whether peer i sends peer j a CLUSTER MEET: when i does not know j. When neither knows the other, only the one
 * listed first does: j answers the MEET, then adds i and pings it itself, so one MEET teaches both, and each new pair
 * makes one handshake instead of two (n * (n - 1) / 2 MEETs for n new nodes).
 */
bool cluster_meet_wanted(const struct cluster_peer *peers, size_t i, size_t j);
/*
 * The formation's cluster-node-timeout after the masters waited waited_ms for cluster_state:ok at `current`: doubled
 * (at most to the configured one) once they waited CLUSTER_FORMATION_PATIENCE times it. On a busy machine a node that
 * answers a ping later than the timeout is taken as failing, a master that sees a majority of them failing starts its
 * rejoin delay (the timeout) again, and at 500 ms that can go on for a minute.
 */
#define CLUSTER_FORMATION_PATIENCE 4
long long cluster_formation_timeout_next(long long current, long long configured, uint64_t waited_ms);

/* ---- carrying a decision out (apply.c) ---- */
struct cluster_run {
	const struct node_options *o;
	const struct secrets_value *pw; /* the nodes' password (data NULL: none): connections and MIGRATE's AUTH */
	struct cluster_peer *peers;
	size_t n;
	uint64_t deadline;
	struct init_error *err;
};

/* cluster_plan for the peers, by their resolved addresses and REDIS_CLUSTER_REPLICAS. */
int cluster_plan_peers(const struct cluster_run *r, struct cluster_plan_entry *ret, size_t *ret_same_host,
		       struct init_error *err);
int cluster_apply(struct cluster_run *r, const struct cluster_decision *d, const bool *member);
/* For reshape_apply.c: every node meets every other it does not know, until all know all; the wait for ok. */
int cluster_meet_and_wait(struct cluster_run *r);
int cluster_wait_ok(struct cluster_run *r, const char *what);
/*
 * The last wait before "cluster ok": every node says cluster_state:ok and cluster_views_agree; a peer that a node has
 * not heard from yet is asked to MEET it, so the node reads its header at once. -ETIMEDOUT at the deadline, err
 * naming the first disagreement; progress lines every 3 s.
 */
int cluster_wait_agreement(struct cluster_run *r);

/* ---- moving slots (migrate.c) ---- */
/* Slots first..last (inclusive) from master peers[from] to master peers[to]. */
struct cluster_move {
	unsigned first, last;
	size_t from, to;
};

/*
 * Moves the slots with their keys, online. Where every master involved has atomic slot migration (Valkey >= 9.0:
 * CLUSTER GETSLOTMIGRATIONS answers), one CLUSTER MIGRATESLOTS per source; elsewhere SETSLOT IMPORTING/MIGRATING,
 * MIGRATE ... KEYS in batches (never REPLACE: a key on both ends is an error naming it), every source master at
 * once, and each slot closed in the safe order (SETSLOT NODE on the target, the source, the other masters).
 * Progress lines at most once a second. Needs r->peers inspected (ids, is_master, meet addresses) and r->pw.
 */
int cluster_move_slots(struct cluster_run *r, const struct cluster_move *moves, size_t n_moves);
/*
 * Finishes every slot left importing or migrating (an interrupted run, a restarted node), like
 * `redis-cli --cluster fix`, moving keys to the slot's keeper (cluster_fix_keeper) so none is lost; waits for
 * atomic migrations still running. Returns the number of slots it closed.
 */
int cluster_fix_open_slots(struct cluster_run *r);

/* A slot open on a node, from the node's own line of its CLUSTER NODES ("[N->-<id>]", "[N-<-<id>]"). */
struct cluster_open_slot {
	unsigned slot;
	bool importing;			/* else migrating */
	char other[CLUSTER_ID_LEN + 1]; /* the node it is migrating to or importing from */
};

/*
 * The open slots of the node whose CLUSTER NODES this is (its myself line), the first max of them into ret (may be
 * NULL with max 0); returns how many it has, even beyond max, or -EBADMSG for a text that is not CLUSTER NODES.
 */
int cluster_open_slots(const char *nodes_text, struct cluster_open_slot *ret, size_t max, struct init_error *err);

/* One master's side of an open slot, for cluster_fix_keeper. */
struct cluster_slot_side {
	bool claims;	/* its own line serves the slot */
	bool migrating; /* [N->-<other>] */
	bool importing; /* [N-<-<other>] */
	int other;	/* peer index of the other end, -1 when not one of the masters */
	long long keys; /* CLUSTER COUNTKEYSINSLOT */
};

/*
 * Which of n masters keeps an open slot (pure): the target of the one migration when exactly one node migrates it to
 * a master we know (the interrupted move goes forward); else the one master that claims it; else, among the
 * claimants (or, with none, all), the one with the most keys, an importing node first on a tie. -1 when no master
 * claims it, none holds a key and none imports it.
 */
int cluster_fix_keeper(const struct cluster_slot_side *sides, size_t n);

/* ---- reshaping a formed cluster (reshape.c): pure ---- */
/* A node of the formed cluster, or a new one: what the reshaping plan starts from. */
struct cluster_shape_node {
	char id[CLUSTER_ID_LEN + 1];
	struct cluster_addr addr;     /* where to reach it: its REDIS_NODES entry, else its address in CLUSTER NODES */
	char host[CLUSTER_HOST_MAX];  /* its machine (equal = the same machine; "" = a machine of its own) */
	char zone[NODE_ZONE_MAX + 1]; /* its availability zone ("" = not known, which is no other zone) */
	struct cluster_slots slots;   /* a master's served slots */
	unsigned nslots;
	int master;  /* a replica's master: an index into the node list; -1 for a master or a new node */
	bool wanted; /* listed in REDIS_NODES */
	bool member; /* in the formed cluster as a master with slots or a replica; false: a new empty node */
	bool failed; /* flagged fail or noaddr: it cannot be asked anything */
};

/*
 * The formed cluster as members' CLUSTER NODES shows it (peers[first member]'s text; each peer's own line for its
 * own zone), with the n peers of REDIS_NODES first, index-aligned with peers (member[i] as cluster_decide said),
 * then the cluster's nodes that REDIS_NODES does not list, live ones first, in CLUSTER NODES order, then failed
 * ones. *ret_n is their count; *ret_live (may be NULL) the count of the first ones that can be asked (n + the live
 * unlisted ones). ret is malloc'ed.
 */
int cluster_shape_from_peers(const struct cluster_peer *peers, size_t n, const bool *member,
			     struct cluster_shape_node **ret, size_t *ret_n, size_t *ret_live, struct init_error *err);

struct cluster_reshape_options {
	unsigned replicas; /* REDIS_CLUSTER_REPLICAS */
	bool rebalance;	   /* REDIS_CLUSTER_REBALANCE: also even out a cluster whose masters stay the same */
	bool allow_remove; /* REDIS_CLUSTER_ALLOW_REMOVE */
};

enum cluster_reshape_step {
	CLUSTER_STEP_KEEP,	/* stays what it is */
	CLUSTER_STEP_MASTER,	/* a new node that becomes a master and receives slots */
	CLUSTER_STEP_REPLICATE, /* a new node, or a replica whose master goes, (re)attached to .master */
	CLUSTER_STEP_REMOVE,	/* drained of its slots first, then forgotten by every other node and reset */
};

struct cluster_reshape_node {
	enum cluster_reshape_step step;
	size_t master;	      /* REPLICATE: the new master's index */
	unsigned slots_after; /* a master's slot count once the moves are done */
};

/* The imbalance beyond which REDIS_CLUSTER_REBALANCE=yes moves slots, as redis-cli --cluster rebalance's. */
#define CLUSTER_REBALANCE_THRESHOLD_PCT 2

struct cluster_reshape {
	struct cluster_reshape_node *nodes; /* one per node */
	struct cluster_move *moves;	    /* ascending by first slot */
	size_t n_moves;
	unsigned slots_moved;
	size_t masters_before, masters_after; /* masters with slots, before and after */
	size_t new_masters, attached, repointed, removed;
	size_t left_alone;	/* failed nodes REDIS_NODES does not list, kept since removal is not allowed */
	unsigned imbalance_pct; /* the most a master is off its even share before the moves, in percent */
	bool uneven;		/* beyond the threshold, and left so (REDIS_CLUSTER_REBALANCE=no, no master changes) */
};

/*
 * The reshaping plan: how the formed cluster becomes the one REDIS_NODES asks for, with no I/O. Masters wanted =
 * listed nodes / (replicas + 1), at least 1; existing masters stay masters (none is demoted), and new nodes become
 * the missing masters, chosen as cluster_plan chooses (the first node in a zone, then on a machine, with the fewest
 * masters so far, counting the masters that stay). The other new nodes, and the listed replicas of removed masters,
 * attach each to the master with the fewest replicas, then the farthest (another zone, else another machine), then
 * the lowest slot after the moves, then the lowest index: fewest first, so a new master is never left without a
 * replica when a farther master has one already.
 * Slots move when masters are added or removed, or when o->rebalance and some master is more than
 * CLUSTER_REBALANCE_THRESHOLD_PCT off its even share: then every master ends with 16384 / masters slots or one more,
 * and exactly the slots above those shares move (the theoretical minimum: the extra slots stay with masters that
 * hold more than a share, and only the removed masters' slots and each master's excess move). Which slots: first a
 * receiver takes its neighbours' excess (the slots next to its own ranges), then the rest from each source's top
 * slots in index order, and slots left after every share is met go to a master next to them; moves are contiguous
 * ranges, one source and one target each, ascending by first slot.
 * Nodes in the cluster that REDIS_NODES does not list are removed (CLUSTER_STEP_REMOVE) with o->allow_remove;
 * without it -EINVAL and one line naming them and REDIS_CLUSTER_ALLOW_REMOVE, except failed ones without slots,
 * which are left alone and counted. Also refused: a removed master that is failed and serves slots (the last copy of
 * their data), no master left, a slot no master serves. ret is filled (cluster_reshape_free) only on success.
 */
int cluster_reshape_plan(const struct cluster_shape_node *nodes, size_t n, const struct cluster_reshape_options *o,
			 struct cluster_reshape *ret, struct init_error *err);
/* Whether the plan does more than attach new replicas to masters that stay (what CLUSTER_EXTEND does). */
bool cluster_reshape_needed(const struct cluster_reshape *p);
void cluster_reshape_free(struct cluster_reshape *p);

/* ---- carrying a reshape out (reshape_apply.c) ---- */
struct cluster_reshape_job {
	struct cluster_shape_node *nodes; /* cluster_shape_from_peers */
	size_t n, live;
	bool *member; /* as cluster_decide said, for the listed nodes */
	struct cluster_reshape plan;
};

/*
 * For a formed cluster (d->action EXTEND or FORMED): the shape and the plan by r->o's options into job, and
 * d->action = CLUSTER_RESHAPE (d->reshape = job) when cluster_reshape_needed. A refusal is -EINVAL with its line.
 */
int cluster_reshape_prepare(const struct cluster_run *r, const bool *member, struct cluster_decision *d,
			    struct cluster_reshape_job *job);
/*
 * Carries the plan out: MEET the new nodes, attach the new replicas, finish open slots and move the slots
 * (migrate.c), re-point the replicas of removed masters, FORGET the removed nodes on every other node at once and
 * reset them (CLUSTER RESET HARD) so gossip cannot bring them back, then wait for the cluster to be ok.
 */
int cluster_reshape_apply(struct cluster_run *r, const struct cluster_reshape_job *job);
void cluster_reshape_job_free(struct cluster_reshape_job *job);

#endif
