/* SPDX-License-Identifier: MIT */
/*
 * Moving slots between masters while clients use them, and finishing moves that an earlier run left half done.
 *
 * Two protocols. Where every master involved has atomic slot migration (Valkey >= 9.0, found by asking for
 * CLUSTER GETSLOTMIGRATIONS, which older servers do not know), each source gets one CLUSTER MIGRATESLOTS for all of
 * its moves and the server does the rest; kvinit only watches the jobs. Elsewhere the classic protocol: the target
 * imports, the source migrates, MIGRATE ... KEYS carries the keys in batches, and the slot is closed in the safe
 * order: SETSLOT NODE on the target first (it bumps its epoch, so a source that dies after this cannot win the slot
 * back), then the source, then the other masters so clients stop being redirected at once.
 *
 * Speed comes from having many slots in flight: each source master is one job with its own connections (to the
 * source, the target and the other masters) and a window of up to WINDOW slots open at once, each step of which is
 * one pipeline for the whole window; the jobs run side by side (poll over all their connections), so a slow MIGRATE
 * on one master never holds up another. A server runs one client's pipelined MIGRATEs back to back, as many as one
 * read of its input brings (16 kB), so other clients of a source wait at most that long between two of them.
 *
 * Safety: MIGRATE is never given REPLACE, so a key that already exists on the target stops the move with its name;
 * a slot is given to its target only after COUNTKEYSINSLOT on the source says 0 (a source that still held keys would
 * drop them when it learns it lost the slot); a slot in MIGRATING state cannot gain keys on the source (writes to a
 * missing key are sent to the target with ASK), so 0 stays 0. A run that dies leaves slots open, which
 * cluster_fix_open_slots finishes.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"

#define WINDOW		    128	 /* slots one source has open at once */
#define KEYS_BATCH	    1000 /* keys per GETKEYSINSLOT, and so per MIGRATE */
/*
 * MIGRATEs sent to a source at once; at most two groups are in flight, the next sent when one is answered. A source
 * runs the MIGRATEs it has read back to back, each a round trip to the target, and answers nothing else meanwhile,
 * its cluster bus included: a whole window of them (128) on a busy host (round trips of 30-40 ms under compose on 2
 * loaded cores) kept sources deaf for longer than the node timeout, their peers marked them PFAIL, and masters that
 * saw two of them so went CLUSTERDOWN for the rejoin delay. Sixteen was still too many over TLS on a loaded host (a
 * source's own cluster_state went fail mid-move), so a group follows the time the source takes for one: halved
 * when one takes longer than GROUP_BUDGET_MS, doubled (up to MIGRATE_GROUP) when one takes under a quarter of it.
 * On a quiet host groups stay at 16.
 */
#define MIGRATE_GROUP	    16
#define GROUP_BUDGET_MS	    250
#define GROUPS_IN_FLIGHT    2
/*
 * MIGRATE's timeout bounds each of its socket operations, among them writing a batch's whole payload to the target
 * and waiting for the target to restore a key: 60 s covers a key of hundreds of megabytes on a slow network (a
 * 50 MB hash takes about a second on loopback). kvinit's own connection to the source waits longer than that.
 */
#define MIGRATE_TIMEOUT_MS  60000
#define SOURCE_TIMEOUT_SEC  (MIGRATE_TIMEOUT_MS / 1000 + 15)
#define COMMAND_TIMEOUT_MS  5000
#define POLL_MS		    20
#define ATOMIC_POLL_MS	    5
#define NAME_LEN	    (CLUSTER_HOST_MAX + 16)
#define LOST_MASTER	    "ERR Please use SETSLOT only with masters" /* a source that gave its last slot away */
/* the same, told while its SETSLOT waited for its replicas (Valkey 8: SETSLOT is replicated before it answers) */
#define LOST_MASTER_BLOCKED "UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica"

struct progress {
	uint64_t t0, next;
	unsigned slots_total, slots_done;
	unsigned long long keys;
};

static void progress_line(struct progress *p, bool last)
{
	uint64_t now = init_now_usec();
	double secs = (double)(now - p->t0) / 1e6;

	if (!last && now < p->next)
		return;
	p->next = now + USEC_PER_SEC;
	log_info("%s %u of %u slots, %llu keys moved, %.0f keys/s (%.1f s)",
		 last ? "moved" : "moving slots:", p->slots_done, p->slots_total, p->keys,
		 secs > 0 ? (double)p->keys / secs : 0.0, secs);
}

static int check_deadline(const struct cluster_run *r)
{
	if (init_now_usec() < r->deadline)
		return 0;
	return init_error_set(r->err, -ETIMEDOUT, "timed out moving slots");
}

static const char *name_of(const struct cluster_run *r, size_t i, char *buf)
{
	cluster_peer_name(&r->peers[i], buf, NAME_LEN);
	return buf;
}

/*
 * CLUSTER SETSLOT <slot> <verb> [id] for slots first..last on peer i, pipelined. An error reply fails it unless it
 * starts with ok_error; the replies are all read either way.
 */
static int setslot(struct cluster_run *r, size_t i, unsigned first, unsigned last, const char *verb, const char *id,
		   const char *ok_error)
{
	struct node_conn *c = r->peers[i].ctx;
	char slot[8], name[NAME_LEN];
	int res = 0;

	for (unsigned s = first; s <= last; s++) {
		const char *argv[] = {"CLUSTER", "SETSLOT", slot, verb, id};

		(void)snprintf(slot, sizeof(slot), "%u", s);
		(void)node_append_argv(c, id ? 5 : 4, argv, NULL);
	}
	for (unsigned s = first; s <= last; s++) {
		redisReply *rep = NULL;

		if (node_get_reply(c, (void **)&rep) != REDIS_OK || !rep)
			return init_error_set(r->err, -EIO, "%s: CLUSTER SETSLOT %s: %s", name_of(r, i, name), verb,
					      c->errstr);
		if (rep->type == REDIS_REPLY_ERROR && res == 0 &&
		    !(ok_error && strncmp(rep->str, ok_error, strlen(ok_error)) == 0))
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER SETSLOT %u %s: %s", name_of(r, i, name),
					     s, verb, rep->str);
		freeReplyObject(rep);
	}
	return res;
}

/* Queues MIGRATE of the keys of one slot (a GETKEYSINSLOT reply) from c to peer `to`, never with REPLACE. */
static int append_migrate(const struct cluster_run *r, struct node_conn *c, size_t to, const redisReply *keys)
{
	const struct cluster_peer *t = &r->peers[to];
	size_t argc = 0, n = keys->elements + 9;
	_cleanup_free_ const char **argv = calloc(n, sizeof(*argv));
	_cleanup_free_ size_t *len = calloc(n, sizeof(*len));
	char port[8], timeout[16];

	if (!argv || !len)
		return -ENOMEM;
	(void)snprintf(port, sizeof(port), "%u", t->meet_port);
	(void)snprintf(timeout, sizeof(timeout), "%d", MIGRATE_TIMEOUT_MS);
	argv[argc++] = "MIGRATE";
	argv[argc++] = t->meet_ip;
	argv[argc++] = port;
	argv[argc++] = "";
	argv[argc++] = "0";
	argv[argc++] = timeout;
	if (r->pw && r->pw->data) {
		argv[argc++] = "AUTH";
		argv[argc] = r->pw->data;
		len[argc++] = r->pw->len;
	}
	argv[argc++] = "KEYS";
	for (size_t k = 0; k < keys->elements; k++) {
		argv[argc] = keys->element[k]->str;
		len[argc++] = keys->element[k]->len;
	}
	for (size_t a = 0; a < argc; a++)
		if (!len[a])
			len[a] = strlen(argv[a]);
	return node_append_argv(c, (int)argc, argv, len) == REDIS_OK ? 0 : -EIO;
}

/* Reads one integer reply to a pipelined command: its value, or -1. */
static long long read_integer(struct node_conn *c)
{
	redisReply *rep = NULL;
	long long v = -1;

	if (node_get_reply(c, (void **)&rep) == REDIS_OK && rep && rep->type == REDIS_REPLY_INTEGER)
		v = rep->integer;
	freeReplyObject(rep);
	return v;
}

/*
 * After MIGRATE answered BUSYKEY: the keys of the batch that are on both ends (MIGRATE deleted from the source every
 * key that it moved, so these are the ones the target refused), the first named in err.
 */
static int name_busy_key(struct cluster_run *r, struct node_conn *src, size_t from, size_t to, unsigned slot,
			 const redisReply *keys)
{
	struct node_conn *t = r->peers[to].ctx;
	char a[NAME_LEN], b[NAME_LEN];
	size_t both = 0, first = 0;

	for (size_t k = 0; k < keys->elements; k++) {
		const char *exists[] = {"EXISTS", keys->element[k]->str};
		size_t len[] = {6, keys->element[k]->len};
		const char *asking[] = {"ASKING"};

		(void)node_append_argv(src, 2, exists, len);
		(void)node_append_argv(t, 1, asking, NULL);
		(void)node_append_argv(t, 2, exists, len);
	}
	for (size_t k = 0; k < keys->elements; k++) {
		long long on_source = read_integer(src);
		long long on_target;

		(void)read_integer(t); /* ASKING's +OK */
		on_target = read_integer(t);
		if (on_source == 1 && on_target == 1 && both++ == 0)
			first = k;
	}
	if (src->err || t->err)
		return init_error_set(r->err, -EIO, "slot %u: MIGRATE to %s: a key exists there already", slot,
				      name_of(r, to, b));
	if (!both)
		return init_error_set(r->err, -EEXIST, "slot %u: MIGRATE from %s to %s: BUSYKEY, and no key is on both",
				      slot, name_of(r, from, a), name_of(r, to, b));
	return init_error_set(r->err, -EEXIST,
			      "key '%.*s' (slot %u) exists on both %s and %s%s: not overwritten; delete one copy, then "
			      "run again",
			      (int)(keys->element[first]->len > 200 ? 200 : keys->element[first]->len),
			      keys->element[first]->str, slot, name_of(r, from, a), name_of(r, to, b),
			      both > 1 ? " (and more keys of the slot)" : "");
}

/* ---- the classic protocol: a window of slots per source, the sources side by side ---- */
/*
 * A window's way, each step one pipeline and one wait:
 *   target: SETSLOT IMPORTING (every slot of the window)
 *   source: SETSLOT MIGRATING, then GETKEYSINSLOT (same pipeline: the source runs them in order)
 *   source: MIGRATE ... KEYS for every slot with keys, then COUNTKEYSINSLOT for every slot; again for the slots that
 *           still hold keys (GETKEYSINSLOT first)
 *   target: SETSLOT NODE, and in the same pipeline the next window's SETSLOT IMPORTING
 * then the source and the other masters get SETSLOT NODE without being waited for (their replies are read as they
 * come, before anything sent to them later), and the next window goes on with MIGRATING at once.
 */
enum job_state {
	J_IMPORTING,   /* target: IMPORTING */
	J_MIGRATING,   /* source: MIGRATING + GETKEYSINSLOT */
	J_KEYS,	       /* source: GETKEYSINSLOT (the slots with keys left) */
	J_MIGRATE,     /* source: MIGRATE + COUNTKEYSINSLOT */
	J_NODE_TARGET, /* target: NODE */
	J_DONE,
};

/* The job's own connection to one node, and the replies it still awaits there. */
struct link {
	struct node_conn *c;
	size_t later;	   /* replies to SETSLOT NODE sent without waiting: they come first */
	size_t pending;	   /* replies the current phase awaits here */
	size_t at;	   /* how many of those came already */
	unsigned first;	   /* the slot of the first reply of the current phase (for messages) */
	unsigned later_at; /* the slot of the next of the later replies */
};

struct window {
	size_t move;
	unsigned first, last;
	size_t to;
};

struct job {
	size_t from;	      /* the source: a peer index */
	struct link *links;   /* r->n of them, connected when first used */
	size_t move;	      /* the move being worked on (moves[move].from == from) */
	unsigned next;	      /* its next slot not in a window yet */
	unsigned first, last; /* the window: slots open on the source and the target */
	size_t to;
	enum job_state state;
	size_t pending;		/* replies the current phase awaits over all links */
	size_t setslots;	/* J_MIGRATING: the SETSLOT replies before the keys */
	size_t order[WINDOW];	/* the window slots (offsets) asked about, in the order of the replies */
	size_t asked, migrates; /* how many slots asked about; J_MIGRATE: how many MIGRATEs before the counts */
	size_t sent;		/* J_MIGRATE: how many of the migrates are sent */
	size_t group;		/* MIGRATEs in the next group: MIGRATE_GROUP, fewer for a slow source */
	struct {
		size_t end;	    /* the index after its last MIGRATE */
		uint64_t sent_usec; /* when it was sent */
	} flight[GROUPS_IN_FLIGHT]; /* the groups in flight, oldest first */
	size_t in_flight;
	uint64_t answered_usec;	  /* when a group was last answered */
	redisReply *keys[WINDOW]; /* each slot's last GETKEYSINSLOT reply */
	bool left[WINDOW];	  /* COUNTKEYSINSLOT said the slot still holds keys */
	int busy;		  /* a slot (offset) whose MIGRATE answered BUSYKEY, or -1 */
	unsigned rounds;
	bool prefetched; /* J_NODE_TARGET: the next window's IMPORTING went out with it */
	struct window after;
};

struct mover {
	struct cluster_run *r;
	const struct cluster_move *moves;
	size_t n_moves;
	struct progress p;
};

static void job_free_keys(struct job *j)
{
	for (size_t i = 0; i < WINDOW; i++) {
		freeReplyObject(j->keys[i]);
		j->keys[i] = NULL;
	}
}

static unsigned window_size(const struct job *j)
{
	return j->last - j->first + 1;
}

static struct node_conn *job_conn(struct mover *m, struct job *j, size_t i, int *ret)
{
	const struct cluster_peer *p = &m->r->peers[i];

	if (!j->links[i].c) {
		*ret = cluster_connect(p->ip, p->addr.port, m->r->pw, COMMAND_TIMEOUT_MS, &j->links[i].c, m->r->err);
		if (*ret < 0)
			return NULL;
		/* MIGRATE of a big key, and SETSLOT behind a busy server, may take long */
		(void)node_conn_set_timeout(j->links[i].c, (struct timeval){.tv_sec = SOURCE_TIMEOUT_SEC});
	}
	return j->links[i].c;
}

/* Sends what was queued on node i's link: count replies for the current phase to come. */
static int job_flush(struct mover *m, struct job *j, size_t i, size_t count)
{
	struct link *l = &j->links[i];
	char name[NAME_LEN];

	if (!l->pending) {
		l->at = 0;
		l->first = j->first;
	}
	l->pending += count;
	j->pending += count;
	if (node_flush(l->c) != REDIS_OK)
		return init_error_set(m->r->err, -EIO, "%s: %s", name_of(m->r, i, name), l->c->errstr);
	return 0;
}

/* Queues SETSLOT <slot> verb [id] for slots first..last on node i. */
static int queue_setslots(struct mover *m, struct job *j, size_t i, unsigned first, unsigned last, const char *verb,
			  const char *id)
{
	struct node_conn *c;
	char slot[8];
	int res = 0;

	c = job_conn(m, j, i, &res);
	if (!c)
		return res;
	for (unsigned s = first; s <= last; s++) {
		const char *argv[] = {"CLUSTER", "SETSLOT", slot, verb, id};

		(void)snprintf(slot, sizeof(slot), "%u", s);
		(void)node_append_argv(c, id ? 5 : 4, argv, NULL);
	}
	return 0;
}

/* The same for every slot of the window. */
static int queue_setslot(struct mover *m, struct job *j, size_t i, const char *verb, const char *id)
{
	return queue_setslots(m, j, i, j->first, j->last, verb, id);
}

/* Queues GETKEYSINSLOT for the window slots in j->order[0..count) on the source. */
static void queue_keys(struct job *j, size_t count)
{
	char slot[8], batch[8];

	(void)snprintf(batch, sizeof(batch), "%d", KEYS_BATCH);
	for (size_t i = 0; i < count; i++) {
		const char *argv[] = {"CLUSTER", "GETKEYSINSLOT", slot, batch};

		(void)snprintf(slot, sizeof(slot), "%u", j->first + (unsigned)j->order[i]);
		(void)node_append_argv(j->links[j->from].c, 4, argv, NULL);
	}
	j->asked = count;
}

static int ask_keys(struct mover *m, struct job *j, size_t count)
{
	if (++j->rounds > 100000)
		return init_error_set(m->r->err, -EAGAIN, "slots %u-%u keep getting keys while they move", j->first,
				      j->last);
	queue_keys(j, count);
	j->state = J_KEYS;
	return job_flush(m, j, j->from, count);
}

/* The window after the current one (the job's moves from its cursor on); false when the job has none left. */
static bool window_after(const struct mover *m, const struct job *j, struct window *ret)
{
	size_t move = j->move;
	unsigned next = j->next;

	while (move < m->n_moves && (m->moves[move].from != j->from || next > m->moves[move].last))
		if (++move < m->n_moves)
			next = m->moves[move].first;
	if (move >= m->n_moves)
		return false;
	ret->move = move;
	ret->first = next;
	ret->last = m->moves[move].last - next >= WINDOW ? next + WINDOW - 1 : m->moves[move].last;
	ret->to = m->moves[move].to;
	return true;
}

static void enter_window(struct job *j, const struct window *w)
{
	j->move = w->move;
	j->first = w->first;
	j->last = w->last;
	j->next = w->last + 1;
	j->to = w->to;
	j->busy = -1;
	j->rounds = 0;
	job_free_keys(j);
	memset(j->left, 0, sizeof(j->left));
}

/* Opens the job's next window: IMPORTING on the target (MIGRATING on the source follows when it answered). */
static int job_next_window(struct mover *m, struct job *j)
{
	struct window w;
	int res;

	if (!window_after(m, j, &w)) {
		j->state = J_DONE;
		return 0;
	}
	enter_window(j, &w);
	j->state = J_IMPORTING;
	res = queue_setslot(m, j, j->to, "IMPORTING", m->r->peers[j->from].id);
	return res < 0 ? res : job_flush(m, j, j->to, window_size(j));
}

/*
 * The next group of the MIGRATEs for the slots order[sent..migrates), and after the last of them COUNTKEYSINSLOT
 * for the whole window, in one pipeline.
 */
static int send_migrate_group(struct mover *m, struct job *j)
{
	struct node_conn *c = j->links[j->from].c;
	size_t count = j->migrates - j->sent < j->group ? j->migrates - j->sent : j->group;
	size_t counts = 0;
	char slot[8];
	int res;

	for (size_t x = j->sent; x < j->sent + count; x++) {
		res = append_migrate(m->r, c, j->to, j->keys[j->order[x]]);
		if (res < 0)
			return init_error_set(m->r->err, res, "MIGRATE: %s", strerror(-res));
	}
	j->sent += count;
	j->flight[j->in_flight].end = j->sent;
	j->flight[j->in_flight++].sent_usec = init_now_usec();
	for (unsigned s = j->first; s <= j->last && j->sent == j->migrates; s++, counts++) {
		const char *argv[] = {"CLUSTER", "COUNTKEYSINSLOT", slot};

		(void)snprintf(slot, sizeof(slot), "%u", s);
		(void)node_append_argv(c, 3, argv, NULL);
	}
	j->state = J_MIGRATE;
	return job_flush(m, j, j->from, count + counts);
}

/* MIGRATE for every asked slot with keys, two groups of them to start with, then COUNTKEYSINSLOT for the window. */
static int send_migrates(struct mover *m, struct job *j)
{
	size_t count = 0;
	int res;

	for (size_t x = 0, i; x < j->asked; x++)
		if (i = j->order[x], j->keys[i] && j->keys[i]->elements > 0)
			j->order[count++] = i; /* compacted in place: count never passes x */
	j->sent = 0;
	j->migrates = count;
	j->in_flight = 0;
	res = send_migrate_group(m, j);
	return res < 0 || j->sent == j->migrates ? res : send_migrate_group(m, j);
}

static int job_phase_done(struct mover *m, struct job *j);

/*
 * The oldest group in flight is answered. The time the source spent on it, from when it was sent or from when the
 * group before it was answered if that came later, sizes the next group.
 */
static void migrate_group_answered(struct job *j)
{
	uint64_t now = init_now_usec(), began = j->flight[0].sent_usec;
	uint64_t took_ms = (now - (j->answered_usec > began ? j->answered_usec : began)) / 1000;

	if (took_ms > GROUP_BUDGET_MS && j->group > 1)
		j->group /= 2;
	else if (took_ms < GROUP_BUDGET_MS / 4 && j->group < MIGRATE_GROUP)
		j->group = j->group * 2 > MIGRATE_GROUP ? MIGRATE_GROUP : j->group * 2;
	j->answered_usec = now;
	j->flight[0] = j->flight[1];
	j->in_flight--;
}

/* Every slot of the window is empty on the source and the target owns it: the others are told, not waited for. */
static int close_window(struct mover *m, struct job *j)
{
	struct cluster_run *r = m->r;
	int res = 0;

	for (size_t i = 0; i < r->n && res == 0; i++) {
		struct link *l = &j->links[i];
		char name[NAME_LEN];

		if (i == j->to || !r->peers[i].ctx || (i != j->from && !r->peers[i].is_master))
			continue;
		res = queue_setslot(m, j, i, "NODE", r->peers[j->to].id);
		if (res == 0 && node_flush(l->c) != REDIS_OK)
			res = init_error_set(r->err, -EIO, "%s: %s", name_of(r, i, name), l->c->errstr);
		if (res == 0 && !l->later)
			l->later_at = j->first;
		l->later += window_size(j);
	}
	m->p.slots_done += window_size(j);
	if (res < 0 || !j->prefetched)
		return res < 0 ? res : job_next_window(m, j);
	/* the next window's target said IMPORTING already: on to MIGRATING */
	enter_window(j, &j->after);
	j->state = J_IMPORTING;
	return job_phase_done(m, j);
}

/* The end of a phase: all replies of the window's pipelines are in. */
static int job_phase_done(struct mover *m, struct job *j)
{
	struct cluster_run *r = m->r;
	size_t count = 0;
	int res;

	switch (j->state) {
	case J_IMPORTING:
		res = queue_setslot(m, j, j->from, "MIGRATING", r->peers[j->to].id);
		if (res < 0)
			return res;
		for (size_t i = 0; i < window_size(j); i++)
			j->order[i] = i;
		queue_keys(j, window_size(j));
		j->state = J_MIGRATING;
		j->setslots = window_size(j);
		return job_flush(m, j, j->from, (size_t)window_size(j) * 2);
	case J_MIGRATING:
	case J_KEYS:
		for (size_t x = 0; x < j->asked; x++)
			count += j->keys[j->order[x]]->elements > 0;
		if (count || j->state == J_KEYS)
			return send_migrates(m, j);
		/* nothing to move: a slot MIGRATING on the source cannot gain keys (new ones go to the target) */
		break;
	case J_MIGRATE:
		if (j->busy >= 0)
			return name_busy_key(r, j->links[j->from].c, j->from, j->to, j->first + (unsigned)j->busy,
					     j->keys[j->busy]);
		for (size_t i = 0; i < window_size(j); i++)
			if (j->left[i] || (j->keys[i] && j->keys[i]->elements >= KEYS_BATCH))
				j->order[count++] = i;
		if (count)
			return ask_keys(m, j, count);
		break;
	case J_NODE_TARGET:
		return close_window(m, j);
	case J_DONE:
		return 0;
	}
	/* the target first; the next window's IMPORTING rides along (a target runs them in order) */
	j->state = J_NODE_TARGET;
	res = queue_setslot(m, j, j->to, "NODE", r->peers[j->to].id);
	j->prefetched = res == 0 && window_after(m, j, &j->after);
	if (j->prefetched)
		res = queue_setslots(m, j, j->after.to, j->after.first, j->after.last, "IMPORTING",
				     r->peers[j->from].id);
	if (res == 0 && j->prefetched && j->after.to != j->to)
		res = job_flush(m, j, j->after.to, j->after.last - j->after.first + 1);
	if (res == 0)
		res = job_flush(m, j, j->to,
				window_size(j) + (j->prefetched && j->after.to == j->to
							  ? j->after.last - j->after.first + 1
							  : 0));
	return res;
}

/* A reply of the source to GETKEYSINSLOT (the x-th asked), MIGRATE (x-th) or COUNTKEYSINSLOT (slot offset x). */
static int key_reply(struct mover *m, struct job *j, bool keys, bool count, size_t x, redisReply **repp)
{
	struct cluster_run *r = m->r;
	redisReply *rep = *repp;
	size_t off = count ? x : j->order[x];
	unsigned slot = j->first + (unsigned)off;
	char a[NAME_LEN], b[NAME_LEN];

	if (keys) {
		if (rep->type != REDIS_REPLY_ARRAY)
			return init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER GETKEYSINSLOT %u: %s",
					      name_of(r, j->from, a), slot, rep->str ? rep->str : "not a list");
		freeReplyObject(j->keys[off]);
		j->keys[off] = rep;
		*repp = NULL;
	} else if (count) {
		if (rep->type != REDIS_REPLY_INTEGER)
			return init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER COUNTKEYSINSLOT %u: %s",
					      name_of(r, j->from, a), slot, rep->str ? rep->str : "not a number");
		j->left[off] = rep->integer > 0;
	} else if (rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "BUSYKEY")) {
		if (j->busy < 0)
			j->busy = (int)off;
	} else if (rep->type == REDIS_REPLY_ERROR) {
		return init_error_set(r->err, -EREMOTEIO, "slot %u: MIGRATE from %s to %s: %s", slot,
				      name_of(r, j->from, a), name_of(r, j->to, b), rep->str);
	} else if (rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0) {
		m->p.keys += j->keys[off]->elements;
	}
	return 0;
}

/* One reply on node i's link. */
static int job_reply(struct mover *m, struct job *j, size_t i, redisReply *rep)
{
	struct link *l = &j->links[i];
	char name[NAME_LEN];
	size_t at;
	int res = 0;

	if (l->later) {
		/* a SETSLOT NODE sent without waiting: a source that gave its last slot away is a replica now */
		l->later--;
		if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, LOST_MASTER, strlen(LOST_MASTER)) != 0 &&
		    strncmp(rep->str, LOST_MASTER_BLOCKED, strlen(LOST_MASTER_BLOCKED)) != 0)
			res = init_error_set(m->r->err, -EREMOTEIO, "%s: CLUSTER SETSLOT %u NODE: %s",
					     name_of(m->r, i, name), l->later_at, rep->str);
		l->later_at++;
		freeReplyObject(rep);
		return res;
	}
	at = l->at++;
	l->pending--;
	j->pending--;
	if (i == j->from && j->state == J_MIGRATING && at >= j->setslots)
		res = key_reply(m, j, true, false, at - j->setslots, &rep);
	else if (i == j->from && j->state == J_KEYS)
		res = key_reply(m, j, true, false, at, &rep);
	else if (i == j->from && j->state == J_MIGRATE) {
		res = key_reply(m, j, false, at >= j->migrates, at >= j->migrates ? at - j->migrates : at, &rep);
		/* a group answered: the one after the next goes out (none after a BUSYKEY, which ends the phase) */
		if (res == 0 && j->in_flight && at + 1 == j->flight[0].end) {
			migrate_group_answered(j);
			if (j->sent < j->migrates && j->busy < 0)
				res = send_migrate_group(m, j);
		}
	} else if (rep->type == REDIS_REPLY_ERROR && j->state == J_NODE_TARGET)
		res = init_error_set(m->r->err, -EREMOTEIO, "%s: CLUSTER SETSLOT (slots %u-%u and the next): %s",
				     name_of(m->r, i, name), j->first, j->last, rep->str);
	else if (rep->type == REDIS_REPLY_ERROR)
		res = init_error_set(m->r->err, -EREMOTEIO, "%s: CLUSTER SETSLOT %u: %s", name_of(m->r, i, name),
				     l->first + (unsigned)at, rep->str);
	freeReplyObject(rep);
	if (res == 0 && j->pending == 0)
		res = job_phase_done(m, j);
	return res;
}

static bool link_waits(const struct link *l)
{
	return l->pending || l->later;
}

/*
 * A link that owed only the replies to SETSLOT NODE sent without waiting was closed: a source that gave its last slot
 * away turns replica, and Valkey 8 closes its clients then. The slots are the target's already (it was told first);
 * the link is made again if this node is asked something later.
 */
static void lost_notified(const struct cluster_run *r, struct link *l, size_t i)
{
	char name[NAME_LEN];

	log_debug("%s closed the connection after SETSLOT NODE (%s), ignoring", name_of(r, i, name), l->c->errstr);
	node_conn_free(l->c);
	l->c = NULL;
	l->later = 0;
}

/* Replies already read off the socket (hiredis's reader keeps what came in beyond the reply asked for). */
static int job_drain(struct mover *m, struct job *j)
{
	for (size_t i = 0; i < m->r->n; i++)
		while (link_waits(&j->links[i])) {
			void *rep = NULL;
			int res;

			if (redisReaderGetReply(j->links[i].c->reader, &rep) != REDIS_OK)
				return init_error_set(m->r->err, -EPROTO, "protocol error: %s",
						      j->links[i].c->reader->errstr);
			if (!rep)
				break;
			res = job_reply(m, j, i, rep);
			if (res < 0)
				return res;
		}
	return 0;
}

static int move_classic(struct mover *m)
{
	struct cluster_run *r = m->r;
	_cleanup_free_ struct job *jobs = calloc(m->n_moves, sizeof(*jobs));
	_cleanup_free_ struct pollfd *fds = calloc(m->n_moves * r->n, sizeof(*fds));
	_cleanup_free_ size_t *fd_job = calloc(m->n_moves * r->n, sizeof(*fd_job));
	_cleanup_free_ struct link *links = calloc(m->n_moves * r->n, sizeof(*links));
	size_t n_jobs = 0;
	int res = 0;

	if (!jobs || !fds || !fd_job || !links)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < m->n_moves; i++) {
		bool seen = false;

		for (size_t k = 0; k < n_jobs; k++)
			seen = seen || jobs[k].from == m->moves[i].from;
		if (!seen) {
			jobs[n_jobs] = (struct job){
				.from = m->moves[i].from,
				.next = m->moves[0].first,
				.links = links + n_jobs * r->n,
				.group = MIGRATE_GROUP,
			};
			n_jobs++;
		}
	}
	for (size_t k = 0; k < n_jobs && res == 0; k++)
		if (job_conn(m, &jobs[k], jobs[k].from, &res))
			res = job_next_window(m, &jobs[k]);

	while (res == 0) {
		size_t nfds = 0;
		int ready;

		for (size_t k = 0; k < n_jobs && res == 0; k++)
			res = job_drain(m, &jobs[k]);
		for (size_t k = 0; k < n_jobs && res == 0; k++)
			for (size_t i = 0; i < r->n; i++)
				if (link_waits(&jobs[k].links[i])) {
					fds[nfds] = (struct pollfd){.fd = jobs[k].links[i].c->fd, .events = POLLIN};
					/* TLS may hold a reply's bytes already: the socket then stays quiet */
					if (node_conn_buffered(jobs[k].links[i].c))
						fds[nfds].revents = POLLIN;
					fd_job[nfds++] = k * r->n + i;
				}
		if (res < 0 || nfds == 0)
			break;
		ready = 0;
		for (size_t f = 0; f < nfds; f++)
			ready += fds[f].revents != 0;
		if (ready == 0)
			ready = poll(fds, nfds, 1000);
		if (ready < 0 && errno != EINTR)
			res = init_error_set(r->err, -errno, "poll: %s", strerror(errno));
		for (size_t f = 0; f < nfds && ready > 0 && res == 0; f++) {
			struct job *j = &jobs[fd_job[f] / r->n];
			size_t i = fd_job[f] % r->n;
			void *rep = NULL;
			char name[NAME_LEN];

			if (!fds[f].revents || !link_waits(&j->links[i]))
				continue;
			/* one reply: its bytes come together, so this read does not wait on the server's work */
			if (node_get_reply(j->links[i].c, &rep) == REDIS_OK && rep)
				res = job_reply(m, j, i, rep);
			else if (!j->links[i].pending)
				lost_notified(r, &j->links[i], i);
			else
				res = init_error_set(r->err, -EIO, "lost %s while moving slots %u-%u: %s",
						     name_of(r, i, name), j->first, j->last, j->links[i].c->errstr);
		}
		if (res == 0)
			res = check_deadline(r);
		progress_line(&m->p, false);
	}
	for (size_t k = 0; k < n_jobs; k++) {
		job_free_keys(&jobs[k]);
		for (size_t i = 0; i < r->n; i++)
			node_conn_free(jobs[k].links[i].c);
	}
	return res;
}

/* ---- atomic slot migration (Valkey >= 9.0) ---- */
/* A field of one job of a GETSLOTMIGRATIONS reply (a map, flattened to key, value, ... in RESP2). */
static const redisReply *job_field(const redisReply *job, const char *field)
{
	if (job->type != REDIS_REPLY_ARRAY)
		return NULL;
	for (size_t i = 0; i + 1 < job->elements; i += 2)
		if (job->element[i]->type == REDIS_REPLY_STRING && strcmp(job->element[i]->str, field) == 0)
			return job->element[i + 1];
	return NULL;
}

static const char *job_str(const redisReply *job, const char *field)
{
	const redisReply *v = job_field(job, field);

	return v && (v->type == REDIS_REPLY_STRING || v->type == REDIS_REPLY_STATUS) ? v->str : "";
}

/*
 * Whether every master in `which` answers CLUSTER GETSLOTMIGRATIONS (and so can migrate atomically), all asked at
 * once; ret_jobs[i] keeps master i's answer (its jobs before ours), the caller frees them.
 */
static bool all_atomic(struct cluster_run *r, const bool *which, redisReply **ret_jobs)
{
	const char *argv[] = {"CLUSTER", "GETSLOTMIGRATIONS"};
	struct init_error ignored;
	bool ok = cluster_send_all(r->peers, r->n, which, ret_jobs, 2, argv, &ignored) == 0;

	for (size_t i = 0; i < r->n && ok; i++)
		ok = !which[i] || (ret_jobs[i] && ret_jobs[i]->type == REDIS_REPLY_ARRAY);
	return ok;
}

static bool job_was_there(const redisReply *before, const char *name)
{
	for (size_t i = 0; before && i < before->elements; i++)
		if (strcmp(job_str(before->element[i], "name"), name) == 0)
			return true;
	return false;
}

/* Queues one CLUSTER MIGRATESLOTS on the source with a SLOTSRANGE ... NODE group per target; returns the groups. */
static int append_migrateslots(struct mover *m, size_t from)
{
	struct cluster_run *r = m->r;
	size_t argc = 2, n = 2 + 4 * m->n_moves;
	_cleanup_free_ const char **argv = calloc(n, sizeof(*argv));
	_cleanup_free_ char(*nums)[8] = calloc(2 * m->n_moves, sizeof(*nums));
	_cleanup_free_ bool *grouped = calloc(m->n_moves, sizeof(bool));
	int groups = 0;

	if (!argv || !nums || !grouped)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	argv[0] = "CLUSTER";
	argv[1] = "MIGRATESLOTS";
	for (size_t i = 0; i < m->n_moves; i++) {
		if (m->moves[i].from != from || grouped[i])
			continue;
		argv[argc++] = "SLOTSRANGE";
		for (size_t k = i; k < m->n_moves; k++)
			if (m->moves[k].from == from && m->moves[k].to == m->moves[i].to) {
				grouped[k] = true;
				(void)snprintf(nums[2 * k], 8, "%u", m->moves[k].first);
				(void)snprintf(nums[2 * k + 1], 8, "%u", m->moves[k].last);
				argv[argc++] = nums[2 * k];
				argv[argc++] = nums[2 * k + 1];
			}
		argv[argc++] = "NODE";
		argv[argc++] = r->peers[m->moves[i].to].id;
		groups++;
	}
	(void)node_append_argv(r->peers[from].ctx, (int)argc, argv, NULL);
	return groups;
}

/* Keys the targets hold (DBSIZE), for progress lines: the server counts no moved keys for us. */
static unsigned long long targets_keys(struct cluster_run *r, const bool *target)
{
	const char *argv[] = {"DBSIZE"};
	_cleanup_free_ redisReply **rep = r->n ? calloc(r->n, sizeof(redisReply *)) : NULL;
	struct init_error ignored;
	unsigned long long total = 0;

	if (!rep)
		return 0;
	(void)cluster_send_all(r->peers, r->n, target, rep, 1, argv, &ignored);
	for (size_t i = 0; i < r->n; i++)
		if (rep[i] && rep[i]->type == REDIS_REPLY_INTEGER && rep[i]->integer > 0)
			total += (unsigned long long)rep[i]->integer;
	cluster_free_replies(rep, r->n);
	return total;
}

/*
 * One look at the sources' jobs (all asked at once): the sources whose jobs all succeeded are marked done; a failed
 * or cancelled job is an error with the server's message.
 */
static int watch_atomic(struct mover *m, const bool *running, redisReply **before, const int *groups, bool *done)
{
	struct cluster_run *r = m->r;
	const char *argv[] = {"CLUSTER", "GETSLOTMIGRATIONS"};
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	char a[NAME_LEN];
	int res;

	if (!rep)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	res = cluster_send_all(r->peers, r->n, running, rep, 2, argv, r->err);
	for (size_t i = 0; i < r->n && res == 0; i++) {
		int succeeded = 0;

		if (!running[i])
			continue;
		if (rep[i]->type != REDIS_REPLY_ARRAY) {
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER GETSLOTMIGRATIONS: %s", name_of(r, i, a),
					     rep[i]->str ? rep[i]->str : "not a list");
			break;
		}
		for (size_t j = 0; j < rep[i]->elements && res == 0; j++) {
			const redisReply *job = rep[i]->element[j];
			const char *state = job_str(job, "state");

			if (strcmp(job_str(job, "operation"), "EXPORT") != 0 ||
			    job_was_there(before[i], job_str(job, "name")))
				continue;
			if (strcmp(state, "failed") == 0 || strcmp(state, "cancelled") == 0)
				res = init_error_set(r->err, -EREMOTEIO, "%s: slot migration of %s %s: %s",
						     name_of(r, i, a), job_str(job, "slot_ranges"), state,
						     job_str(job, "message"));
			else if (strcmp(state, "success") == 0)
				succeeded++;
		}
		if (res == 0 && succeeded >= groups[i]) {
			done[i] = true;
			for (size_t k = 0; k < m->n_moves; k++)
				if (m->moves[k].from == i)
					m->p.slots_done += m->moves[k].last - m->moves[k].first + 1;
		}
	}
	cluster_free_replies(rep, r->n);
	return res;
}

static int move_atomic(struct mover *m, redisReply **before)
{
	struct cluster_run *r = m->r;
	_cleanup_free_ bool *source = calloc(r->n, sizeof(bool));
	_cleanup_free_ bool *target = calloc(r->n, sizeof(bool));
	_cleanup_free_ bool *running = calloc(r->n, sizeof(bool));
	_cleanup_free_ bool *done = calloc(r->n, sizeof(bool));
	_cleanup_free_ int *groups = calloc(r->n, sizeof(int));
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	unsigned long long base;
	char name[NAME_LEN];
	bool left = true;
	int res = 0;

	if (!source || !target || !running || !done || !groups || !rep)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < m->n_moves; i++)
		source[m->moves[i].from] = target[m->moves[i].to] = true;
	base = targets_keys(r, target);
	/* every source at once: each runs its own jobs */
	for (size_t i = 0; i < r->n && res == 0; i++)
		if (source[i]) {
			groups[i] = append_migrateslots(m, i);
			res = groups[i] < 0 ? groups[i] : 0;
		}
	for (size_t i = 0; i < r->n && res == 0; i++)
		if (source[i] && node_flush(r->peers[i].ctx) != REDIS_OK)
			res = init_error_set(r->err, -EIO, "%s: %s", name_of(r, i, name), r->peers[i].ctx->errstr);
	for (size_t i = 0; i < r->n && res == 0; i++) {
		if (!source[i])
			continue;
		if (node_get_reply(r->peers[i].ctx, (void **)&rep[i]) != REDIS_OK || !rep[i])
			res = init_error_set(r->err, -EIO, "%s: CLUSTER MIGRATESLOTS: %s", name_of(r, i, name),
					     r->peers[i].ctx->errstr);
		else if (rep[i]->type == REDIS_REPLY_ERROR)
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER MIGRATESLOTS: %s", name_of(r, i, name),
					     rep[i]->str);
		running[i] = true;
	}
	cluster_free_replies(rep, r->n);
	while (res == 0 && left) {
		res = watch_atomic(m, running, before, groups, done);
		left = false;
		for (size_t i = 0; i < r->n; i++) {
			running[i] = running[i] && !done[i];
			left = left || running[i];
		}
		if (res == 0 && left)
			res = check_deadline(r);
		if (init_now_usec() >= m->p.next || !left)
			m->p.keys = targets_keys(r, target) - base;
		progress_line(&m->p, false);
		if (res == 0 && left)
			init_sleep_ms(ATOMIC_POLL_MS);
	}
	return res;
}

int cluster_move_slots(struct cluster_run *r, const struct cluster_move *moves, size_t n_moves)
{
	struct mover m = {.r = r, .moves = moves, .n_moves = n_moves};
	_cleanup_free_ bool *involved = calloc(r->n, sizeof(bool));
	_cleanup_free_ redisReply **before = calloc(r->n, sizeof(redisReply *));
	int res;

	if (!involved || !before)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n_moves; i++) {
		const struct cluster_move *mv = &moves[i];

		if (mv->from >= r->n || mv->to >= r->n || mv->from == mv->to || mv->first > mv->last ||
		    mv->last >= CLUSTER_SLOTS)
			return init_error_set(r->err, -EINVAL, "move %zu (slots %u-%u, node %zu to %zu): not a move", i,
					      mv->first, mv->last, mv->from, mv->to);
		if (!r->peers[mv->from].ctx || !r->peers[mv->to].ctx || !r->peers[mv->to].id[0])
			return init_error_set(r->err, -ENOTCONN, "move %zu: its nodes are not connected", i);
		involved[mv->from] = involved[mv->to] = true;
		m.p.slots_total += mv->last - mv->first + 1;
	}
	if (n_moves == 0)
		return 0;
	m.p.t0 = init_now_usec();
	m.p.next = m.p.t0 + USEC_PER_SEC;
	if (all_atomic(r, involved, before)) {
		log_info("moving %u slots with atomic slot migration", m.p.slots_total);
		res = move_atomic(&m, before);
	} else {
		log_info("moving %u slots with MIGRATE", m.p.slots_total);
		res = move_classic(&m);
	}
	cluster_free_replies(before, r->n);
	if (res == 0)
		progress_line(&m.p, true);
	return res;
}

/* ---- finishing open slots ---- */
int cluster_open_slots(const char *nodes_text, struct cluster_open_slot *ret, size_t max, struct init_error *err)
{
	size_t n = 0;

	for (const char *p = nodes_text; p && *p;) {
		const char *end = strchr(p, '\n');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		struct cluster_line l;
		int res;

		if (len && p[len - 1] == '\r')
			len--;
		if (len) {
			res = cluster_parse_line(p, len, &l, err);
			if (res < 0)
				return res;
			for (const char *f = p; l.myself && (f = memchr(f, '[', (size_t)(p + len - f)));) {
				/* "[N->-<id>]" or "[N-<-<id>]": the line parsed, so the form is right */
				char *dash;
				unsigned long slot = strtoul(f + 1, &dash, 10);

				if (n < max) {
					ret[n].slot = (unsigned)slot;
					ret[n].importing = dash[1] == '<';
					memcpy(ret[n].other, dash + 3, CLUSTER_ID_LEN);
					ret[n].other[CLUSTER_ID_LEN] = '\0';
				}
				n++;
				f = dash;
			}
			if (l.myself)
				return (int)n;
		}
		p = end ? end + 1 : NULL;
	}
	return (int)n;
}

int cluster_fix_keeper(const struct cluster_slot_side *sides, size_t n)
{
	size_t migrating = 0, claimants = 0;
	int target = -1, claimant = -1, best = -1;

	for (size_t i = 0; i < n; i++) {
		if (sides[i].migrating) {
			migrating++;
			target = sides[i].other;
		}
		if (sides[i].claims) {
			claimants++;
			claimant = (int)i;
		}
	}
	if (migrating == 1 && target >= 0 && (size_t)target < n)
		return target;
	if (claimants == 1)
		return claimant;
	for (size_t i = 0; i < n; i++) {
		const struct cluster_slot_side *s = &sides[i];

		if ((claimants && !s->claims) || (!claimants && !s->keys && !s->importing))
			continue;
		if (best < 0 || s->keys > sides[best].keys ||
		    (s->keys == sides[best].keys && s->importing && !sides[best].importing))
			best = (int)i;
	}
	return best;
}

/* MIGRATE every key of the slot from peer `from` to peer `to`, both open for it already, one batch at a time. */
static int move_keys_now(struct cluster_run *r, size_t from, size_t to, unsigned slot)
{
	struct node_conn *c = r->peers[from].ctx;
	char name[NAME_LEN], to_name[NAME_LEN];
	int res = 0;

	(void)node_conn_set_timeout(c, (struct timeval){.tv_sec = SOURCE_TIMEOUT_SEC});
	while (res == 0) {
		redisReply *keys = node_command(c, "CLUSTER GETKEYSINSLOT %u %d", slot, KEYS_BATCH), *rep = NULL;

		if (!keys || keys->type != REDIS_REPLY_ARRAY) {
			res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER GETKEYSINSLOT %u: %s",
					     name_of(r, from, name), slot, keys ? keys->str : c->errstr);
		} else if (keys->elements == 0) {
			freeReplyObject(keys);
			break;
		} else {
			res = append_migrate(r, c, to, keys);
			if (res == 0 && (node_get_reply(c, (void **)&rep) != REDIS_OK || !rep))
				res = init_error_set(r->err, -EIO, "%s: MIGRATE: %s", name_of(r, from, name),
						     c->errstr);
			else if (res == 0 && rep->type == REDIS_REPLY_ERROR && strstr(rep->str, "BUSYKEY"))
				res = name_busy_key(r, c, from, to, slot, keys);
			else if (res == 0 && rep->type == REDIS_REPLY_ERROR)
				res = init_error_set(r->err, -EREMOTEIO, "slot %u: MIGRATE from %s to %s: %s", slot,
						     name_of(r, from, name), name_of(r, to, to_name), rep->str);
		}
		freeReplyObject(rep);
		freeReplyObject(keys);
	}
	(void)node_conn_set_timeout(c, (struct timeval){.tv_sec = COMMAND_TIMEOUT_MS / 1000});
	return res;
}

/* Puts one open slot right: every key to the keeper k, then the keeper and the others agree that k owns it. */
static int fix_slot(struct cluster_run *r, unsigned slot, struct cluster_slot_side *sides, size_t k)
{
	const char *kid = r->peers[k].id;
	int res = 0;

	for (size_t i = 0; i < r->n && res == 0; i++) {
		if (i == k || sides[i].keys <= 0)
			continue;
		if (!sides[k].claims && !sides[k].importing) {
			res = setslot(r, k, slot, slot, "IMPORTING", r->peers[i].id, NULL);
			sides[k].importing = true;
		}
		/* MIGRATE runs on a node only where the slot is open (or its own) */
		if (res == 0 && sides[i].claims && !(sides[i].migrating && sides[i].other == (int)k))
			res = setslot(r, i, slot, slot, "MIGRATING", kid, NULL);
		else if (res == 0 && !sides[i].claims && !sides[i].importing && !sides[i].migrating)
			res = setslot(r, i, slot, slot, "IMPORTING", kid, NULL);
		if (res == 0)
			res = move_keys_now(r, i, k, slot);
	}
	if (res < 0)
		return res;
	if (!sides[k].claims)
		res = setslot(r, k, slot, slot, "NODE", kid, NULL);
	else if (sides[k].migrating || sides[k].importing)
		res = setslot(r, k, slot, slot, "STABLE", NULL, NULL);
	for (size_t i = 0; i < r->n && res == 0; i++) {
		if (i == k || !r->peers[i].ctx || !r->peers[i].is_master)
			continue;
		if (sides[i].importing)
			res = setslot(r, i, slot, slot, "STABLE", NULL, LOST_MASTER);
		if (res == 0)
			res = setslot(r, i, slot, slot, "NODE", kid, LOST_MASTER);
	}
	return res;
}

struct own_scan {
	struct cluster_slots *slots;
};

static int scan_own(const struct cluster_line *l, void *userdata)
{
	struct own_scan *sc = userdata;

	if (!l->myself)
		return 0;
	*sc->slots = l->slots;
	return 1;
}

/* Waits for atomic migrations still running on any master (a server finishes or rolls back its own). */
static int wait_atomic_jobs(struct cluster_run *r)
{
	for (;;) {
		bool running = false;

		for (size_t i = 0; i < r->n && !running; i++) {
			redisReply *rep;

			if (!r->peers[i].ctx || !r->peers[i].is_master)
				continue;
			rep = node_command(r->peers[i].ctx, "CLUSTER GETSLOTMIGRATIONS");
			for (size_t j = 0; rep && rep->type == REDIS_REPLY_ARRAY && j < rep->elements; j++) {
				const char *state = job_str(rep->element[j], "state");

				running = running || (strcmp(state, "success") != 0 && strcmp(state, "failed") != 0 &&
						      strcmp(state, "cancelled") != 0);
			}
			freeReplyObject(rep);
		}
		if (!running)
			return 0;
		if (check_deadline(r) < 0)
			return init_error_set(r->err, -ETIMEDOUT, "timed out waiting for running slot migrations");
		init_sleep_ms(POLL_MS);
	}
}

/*
 * Waits until every master says cluster_state:ok: a node that just restarted refuses keys (CLUSTERDOWN) for its
 * rejoin delay, and MIGRATE to it would fail.
 */
static int wait_masters_ok(struct cluster_run *r)
{
	const char *argv[] = {"CLUSTER", "INFO"};
	_cleanup_free_ redisReply **rep = calloc(r->n, sizeof(redisReply *));
	_cleanup_free_ bool *masters = calloc(r->n, sizeof(bool));
	char value[16];

	if (!rep || !masters)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < r->n; i++)
		masters[i] = r->peers[i].ctx && r->peers[i].is_master;
	for (;;) {
		bool ok = true;
		int res = cluster_send_all(r->peers, r->n, masters, rep, 2, argv, r->err);

		for (size_t i = 0; i < r->n && res == 0; i++)
			ok = ok &&
			     (!rep[i] || (rep[i]->type == REDIS_REPLY_STRING &&
					  cluster_info_field(rep[i]->str, "cluster_state", value, sizeof(value)) &&
					  strcmp(value, "ok") == 0));
		cluster_free_replies(rep, r->n);
		if (res < 0 || ok)
			return res;
		if (check_deadline(r) < 0)
			return init_error_set(r->err, -ETIMEDOUT,
					      "timed out waiting for every master's cluster_state:ok");
		init_sleep_ms(POLL_MS);
	}
}

int cluster_fix_open_slots(struct cluster_run *r)
{
	_cleanup_free_ struct cluster_slots *own = calloc(r->n, sizeof(*own));
	_cleanup_free_ struct cluster_slot_side *sides = calloc(r->n, sizeof(*sides));
	_cleanup_free_ struct cluster_open_slot *open = NULL;
	_cleanup_free_ size_t *open_n = calloc(r->n + 1, sizeof(size_t));
	struct cluster_slots any = {{0}};
	size_t total = 0;
	unsigned fixed = 0;
	char name[NAME_LEN], other[NAME_LEN], ranges[256];
	int res;

	if (!own || !sides || !open_n)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	res = wait_atomic_jobs(r);
	if (res == 0)
		res = cluster_inspect(r->peers, r->n, r->o->node_timeout, r->err);
	if (res == 0)
		res = wait_masters_ok(r);
	for (size_t i = 0; i < r->n && res == 0; i++) {
		struct own_scan sc = {.slots = &own[i]};

		if (!r->peers[i].ctx || !r->peers[i].is_master)
			continue;
		res = cluster_peer_each_line(&r->peers[i], scan_own, &sc, r->err);
		if (res >= 0)
			res = cluster_open_slots(r->peers[i].nodes_text, NULL, 0, r->err);
		if (res >= 0) {
			open_n[i] = (size_t)res;
			total += (size_t)res;
			res = 0;
		}
	}
	if (res < 0 || total == 0)
		return res;
	open = calloc(total, sizeof(*open));
	if (!open)
		return init_error_set(r->err, -ENOMEM, "out of memory");
	/* each master's open slots, one after the other: master i's start at the sum of those before it */
	for (size_t i = 0, at = 0; i < r->n; at += open_n[i], i++)
		if (open_n[i])
			(void)cluster_open_slots(r->peers[i].nodes_text, open + at, open_n[i], r->err);
	for (size_t o = 0; o < total; o++)
		cluster_slots_add(&any, open[o].slot);
	cluster_format_ranges(&any, ranges, sizeof(ranges));
	log_info("finishing %u open slots (%s)", cluster_slots_count(&any), ranges);

	for (unsigned slot = 0; slot < CLUSTER_SLOTS && res == 0; slot++) {
		int keeper;

		if (!cluster_slots_has(&any, slot))
			continue;
		for (size_t i = 0, at = 0; i < r->n; at += open_n[i], i++) {
			struct cluster_slot_side *s = &sides[i];

			*s = (struct cluster_slot_side){.claims = cluster_slots_has(&own[i], slot), .other = -1};
			if (!r->peers[i].ctx || !r->peers[i].is_master) {
				s->claims = false;
				continue;
			}
			for (size_t o = at; o < at + open_n[i]; o++)
				if (open[o].slot == slot) {
					s->importing = open[o].importing;
					s->migrating = !open[o].importing;
					s->other = cluster_find_peer(r->peers, r->n, open[o].other);
				}
			{
				redisReply *rep = node_command(r->peers[i].ctx, "CLUSTER COUNTKEYSINSLOT %u", slot);

				if (!rep || rep->type != REDIS_REPLY_INTEGER)
					res = init_error_set(r->err, -EREMOTEIO, "%s: CLUSTER COUNTKEYSINSLOT %u: %s",
							     name_of(r, i, name), slot,
							     rep ? rep->str : r->peers[i].ctx->errstr);
				else
					s->keys = rep->integer;
				freeReplyObject(rep);
			}
		}
		if (res < 0)
			break;
		keeper = cluster_fix_keeper(sides, r->n);
		if (keeper < 0)
			return init_error_set(r->err, -ENOENT,
					      "slot %u is open, but no master serves it or holds a key", slot);
		for (size_t i = 0; i < r->n; i++)
			if (sides[i].migrating || sides[i].importing)
				log_debug("slot %u: %s is %s %s (%lld keys)", slot, name_of(r, i, name),
					  sides[i].migrating ? "migrating it to" : "importing it from",
					  sides[i].other >= 0 ? name_of(r, (size_t)sides[i].other, other)
							      : "an unknown node",
					  sides[i].keys);
		log_debug("slot %u: finishing it on %s", slot, name_of(r, (size_t)keeper, name));
		res = fix_slot(r, slot, sides, (size_t)keeper);
		fixed++;
	}
	if (res == 0)
		log_info("finished %u open slots", fixed);
	return res < 0 ? res : (int)fixed;
}
