/* SPDX-License-Identifier: MIT */
/*
 * What servers say, read without trusting it (node/cluster/parse.c): CLUSTER NODES lines of any length with every
 * field checked, CLUSTER INFO and INFO fields, a master's replicas, slot ranges.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "init.h"
#include "cluster.h"

#define ID_A "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
#define ID_B "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"
#define ID_C "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"

/* A line with the given id, master and slots. */
#define LINE(id, flags, master, slots)                                                                                 \
	id " 127.0.0.1:30001@31001 " flags " " master " 0 1426238317239 4 connected" slots

static struct cluster_line parse_ok(const char *line)
{
	struct init_error err = {{0}};
	struct cluster_line l;

	if (cluster_parse_line(line, strlen(line), &l, &err) != 0)
		fail_msg("refused '%.80s': %s", line, err.msg);
	return l;
}

static void parse_refused(const char *line, const char *want)
{
	struct init_error err = {{0}};
	struct cluster_line l;

	l.nslots = 4242;
	assert_int_equal(cluster_parse_line(line, strlen(line), &l, &err), -EBADMSG);
	assert_string_equal(err.msg, want);
	assert_int_equal(l.nslots, 4242); /* never written on failure */
}

static void test_line(void **state)
{
	struct cluster_line l;

	(void)state;
	l = parse_ok(LINE(ID_A, "myself,master", "-", " 0-5460"));
	assert_string_equal(l.id, ID_A);
	assert_string_equal(l.master, "");
	assert_string_equal(l.addr, "127.0.0.1:30001@31001");
	assert_string_equal(l.flags, "myself,master");
	assert_string_equal(l.link, "connected");
	assert_int_equal(l.epoch, 4);
	assert_int_equal(l.nslots, 5461);
	assert_true(cluster_slots_has(&l.slots, 0));
	assert_true(cluster_slots_has(&l.slots, 5460));
	assert_false(cluster_slots_has(&l.slots, 5461));
	assert_true(l.myself && l.is_master && !l.handshake && !l.failed);

	l = parse_ok(LINE(ID_B, "slave,fail", ID_A, ""));
	assert_string_equal(l.master, ID_A);
	assert_int_equal(l.nslots, 0);
	assert_true(!l.myself && !l.is_master && l.failed);

	/* "fail?" is a suspicion, not a failure; noaddr counts as a handshake */
	l = parse_ok(LINE(ID_B, "master,fail?,noaddr", "-", " 7 9-10 5000"));
	assert_true(!l.failed && l.handshake);
	assert_int_equal(l.nslots, 4);

	l = parse_ok(ID_C " :0@0 myself,master - 0 0 0 connected");
	assert_string_equal(l.addr, ":0@0");

	l = parse_ok(ID_C " 10.0.0.5:6379@16379,redis-node-2.example.org master - 0 0 7 disconnected 16383");
	assert_string_equal(l.addr, "10.0.0.5:6379@16379,redis-node-2.example.org");
	assert_int_equal(l.nslots, 1);
}

/* Slots on their way in or out are listed, and are not (yet) this node's. */
static void test_line_slots_in_transit(void **state)
{
	struct cluster_line l;

	(void)state;
	l = parse_ok(LINE(ID_A, "myself,master", "-", " 0-100 [101->-" ID_B "] [102-<-" ID_C "] 16383"));
	assert_int_equal(l.nslots, 102);
	assert_false(cluster_slots_has(&l.slots, 101));
	assert_false(cluster_slots_has(&l.slots, 102));
	assert_true(cluster_slots_has(&l.slots, 16383));
	l = parse_ok(LINE(ID_A, "myself,master", "-", " [16383-<-" ID_B "]"));
	assert_int_equal(l.nslots, 0);

	parse_refused(LINE(ID_A, "master", "-", " [101->" ID_B "]"),
		      "slot '[101->67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]': not [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " [16384->-" ID_B "]"),
		      "slot '[16384->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]': not [N->-<node id>] or "
		      "[N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " [5->-" ID_B "a]"),
		      "slot '[5->-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1a]': not [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " [5=>-" ID_B "]"),
		      "slot '[5=>-67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1]': not [N->-<node id>] or [N-<-<node id>]");
}

/* A 41-character id would shift every field after it. */
static void test_line_ids(void **state)
{
	(void)state;
	parse_refused(LINE(ID_A "a", "myself,master", "-", " 0-16383"),
		      "node id 'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9caa': not 40 hex digits");
	parse_refused(LINE("e7d1eecce10fd6bb5eb35b9f99a514335d9ba9c", "myself,master", "-", " 0-16383"),
		      "node id 'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9c': not 40 hex digits");
	parse_refused(LINE("E7D1EECCE10FD6BB5EB35B9F99A514335D9BA9CA", "master", "-", ""),
		      "node id 'E7D1EECCE10FD6BB5EB35B9F99A514335D9BA9CA': not 40 hex digits");
	parse_refused(LINE("g7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca", "master", "-", ""),
		      "node id 'g7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca': not 40 hex digits");
	parse_refused(LINE(ID_B, "slave", ID_A "0", ""),
		      "master 'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca0': neither '-' nor 40 hex digits");
	parse_refused(LINE(ID_B, "slave", "--", ""), "master '--': neither '-' nor 40 hex digits");
}

static void test_line_fields(void **state)
{
	(void)state;
	parse_refused("", "no node id: a line has at least 8 fields");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - 0 0 4",
		      "no link-state: a line has at least 8 fields");
	parse_refused(" " ID_A " 127.0.0.1:30001@31001 myself,master - 0 0 4 connected",
		      "no node id: a line has at least 8 fields");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - x 0 4 connected", "ping-sent 'x': not a number");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - 0 -1 4 connected", "pong-recv '-1': not a number");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - 0 0 99999999999999999999 connected",
		      "config-epoch '99999999999999999999': not a number");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - 0 0 +4 connected",
		      "config-epoch '+4': not a number");
	parse_refused(ID_A " 127.0.0.1:30001@31001 myself,master - 0 0 4 connectedconnected",
		      "link-state 'connectedconnected': too long");
}

/* Overlapping ranges counted twice: "0-16383 0-16383" gave 32768 slots. */
static void test_line_ranges(void **state)
{
	(void)state;
	parse_refused(LINE(ID_A, "master", "-", " 0-16383 0-16383"), "slot '0': listed twice");
	parse_refused(LINE(ID_A, "master", "-", " 0-100 50-60"), "slot '50': listed twice");
	parse_refused(LINE(ID_A, "master", "-", " 7 7"), "slot '7': listed twice");
	parse_refused(LINE(ID_A, "master", "-", " 0-16384"), "slot '0-16384': outside 0-16383");
	parse_refused(LINE(ID_A, "master", "-", " 16384"), "slot '16384': outside 0-16383");
	parse_refused(LINE(ID_A, "master", "-", " 100-5"), "slot range '100-5': its first slot is above its last");
	parse_refused(LINE(ID_A, "master", "-", " 5-"), "slot '5-': not N, N-M, [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " -5"), "slot '-5': not N, N-M, [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " 1-2-3"),
		      "slot '1-2-3': not N, N-M, [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " x"), "slot 'x': not N, N-M, [N->-<node id>] or [N-<-<node id>]");
	parse_refused(LINE(ID_A, "master", "-", " 99999999999999999999999"),
		      "slot '99999999999999999999999': not N, N-M, [N->-<node id>] or [N-<-<node id>]");
}

/* A master after online resharding: every even slot on its own, a 43 KB line (a slot list was cut at 8191 chars). */
static char *even_slots_line(size_t *ret_len)
{
	char *line = malloc(64 * 1024);
	size_t len;

	assert_non_null(line);
	len = (size_t)sprintf(line, "%s", LINE(ID_A, "myself,master", "-", ""));
	for (unsigned s = 0; s < CLUSTER_SLOTS; s += 2)
		len += (size_t)sprintf(line + len, " %u", s);
	*ret_len = len;
	return line;
}

static void test_line_fragmented(void **state)
{
	size_t len;
	char *line = even_slots_line(&len);
	struct cluster_line l;
	char ranges[64];

	(void)state;
	assert_true(len > 43000);
	l = parse_ok(line);
	assert_int_equal(l.nslots, 8192);
	assert_int_equal(cluster_slots_count(&l.slots), 8192);
	for (unsigned s = 0; s < CLUSTER_SLOTS; s++)
		assert_int_equal(cluster_slots_has(&l.slots, s), s % 2 == 0);
	cluster_format_ranges(&l.slots, ranges, sizeof(ranges));
	assert_string_equal(ranges, "0,2,4,6,8,10,12,14,16,18,20,22,24,26,28,30,32,34,36,38,40,...");
	free(line);
}

struct collect {
	unsigned lines, slots, stop_after;
	char ids[4][CLUSTER_ID_LEN + 1];
};

static int collect(const struct cluster_line *l, void *userdata)
{
	struct collect *c = userdata;

	if (c->lines < 4)
		memcpy(c->ids[c->lines], l->id, sizeof(c->ids[0]));
	c->lines++;
	c->slots += l->nslots;
	return c->stop_after && c->lines == c->stop_after ? 7 : 0;
}

/* Lines of 16 KB or more were skipped; blank lines and "\r\n" ends are fine. */
static void test_each_line(void **state)
{
	size_t len;
	char *big = even_slots_line(&len), *text = malloc(len + 512);
	struct init_error err = {{0}};
	struct collect c = {0};

	(void)state;
	assert_non_null(text);
	(void)sprintf(text, "%s\n%s\r\n\n%s\n", LINE(ID_B, "master", "-", " 1-3"), big, LINE(ID_C, "slave", ID_B, ""));
	assert_int_equal(cluster_each_line(text, collect, &c, &err), 0);
	assert_int_equal(c.lines, 3);
	assert_int_equal(c.slots, 3 + 8192);
	assert_string_equal(c.ids[1], ID_A);
	assert_string_equal(c.ids[2], ID_C);

	c = (struct collect){.stop_after = 2};
	assert_int_equal(cluster_each_line(text, collect, &c, &err), 7);
	assert_int_equal(c.lines, 2);

	c = (struct collect){0};
	assert_int_equal(cluster_each_line("", collect, &c, &err), 0);
	assert_int_equal(cluster_each_line(NULL, collect, &c, &err), 0);
	assert_int_equal(c.lines, 0);
	free(big);
	free(text);
}

/* A line that does not parse stops the walk, and the message names it: never a node with shifted fields. */
static void test_each_line_refuses(void **state)
{
	struct init_error err = {{0}};
	struct collect c = {0};

	(void)state;
	assert_int_equal(
		cluster_each_line(LINE(ID_B, "master", "-", " 1-3") "\n" LINE(ID_A "a", "master", "-", " 0") "\n",
				  collect, &c, &err),
		-EBADMSG);
	assert_string_equal(err.msg, "line 2 ('e7d1eecce10fd6bb5eb35b9f99a514335d9ba9caa 127.0.0.1:30001@31001 ...'): "
				     "node id 'e7d1eecce10fd6bb5eb35b9f99a514335d9ba9caa': not 40 hex digits");
	assert_int_equal(c.lines, 1);
}

static void test_host_is(void **state)
{
	struct cluster_line l = {0};

	(void)state;
	(void)snprintf(l.addr, sizeof(l.addr), "10.0.0.12:6379@16379");
	assert_true(cluster_line_host_is(&l, "10.0.0.12"));
	assert_false(cluster_line_host_is(&l, "10.0.0.1"));
	assert_false(cluster_line_host_is(&l, "10.0.0.123"));
	(void)snprintf(l.addr, sizeof(l.addr), "10.0.0.1:6379@16379,redis-node-1");
	assert_true(cluster_line_host_is(&l, "10.0.0.1"));
	assert_false(cluster_line_host_is(&l, "10.0.0.12"));
	assert_false(cluster_line_host_is(&l, "redis-node-1"));
	(void)snprintf(l.addr, sizeof(l.addr), "fd00::1:6379@16379");
	assert_true(cluster_line_host_is(&l, "fd00:0::1"));
	assert_false(cluster_line_host_is(&l, "fd00::12"));
	(void)snprintf(l.addr, sizeof(l.addr), ":0@0");
	assert_false(cluster_line_host_is(&l, "10.0.0.1"));
}

static void test_flags(void **state)
{
	(void)state;
	assert_true(cluster_has_flag("myself,master", "master"));
	assert_true(cluster_has_flag("master", "master"));
	assert_false(cluster_has_flag("myself,master", "mast"));
	assert_false(cluster_has_flag("fail?", "fail"));
	assert_true(cluster_has_flag("slave,fail", "fail"));
}

static void test_info_field(void **state)
{
	static const char info[] = "# Cluster\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n"
				   "cluster_known_nodes:6\r\ncluster_state_x:no\r\n";
	char buf[16] = "untouched";

	(void)state;
	assert_true(cluster_info_field(info, "cluster_state", buf, sizeof(buf)));
	assert_string_equal(buf, "ok");
	assert_true(cluster_info_field(info, "cluster_known_nodes", buf, sizeof(buf)));
	assert_string_equal(buf, "6");
	assert_false(cluster_info_field(info, "cluster_slots", buf, sizeof(buf)));
	assert_false(cluster_info_field(info, "known_nodes", buf, sizeof(buf)));
	assert_true(cluster_info_field("role:slave", "role", buf, sizeof(buf)));
	assert_string_equal(buf, "slave");
	assert_true(cluster_info_field("a:1\nlong:0123456789abcdefXYZ\n", "long", buf, sizeof(buf)));
	assert_string_equal(buf, "0123456789abcde");
	assert_false(cluster_info_field("", "role", buf, sizeof(buf)));
}

static void test_info_keys(void **state)
{
	(void)state;
	assert_int_equal(cluster_info_keys("# Keyspace\r\n"), 0);
	assert_int_equal(cluster_info_keys("# Keyspace\r\ndb0:keys=12,expires=0,avg_ttl=0\r\n"
					   "db3:keys=30,expires=1,avg_ttl=0\r\n"),
			 42);
}

static void test_info_replicas(void **state)
{
	static const char info[] = "# Replication\r\nrole:master\r\nconnected_slaves:3\r\n"
				   "slave0:ip=10.0.0.5,port=6379,state=online,offset=1234,lag=0\r\n"
				   "slave1:ip=fd00::7,port=6380,state=wait_bgsave,offset=0,lag=1\r\n"
				   "slave2:ip=redis-node-4.example.org,port=6381,state=online,offset=99,lag=0\r\n"
				   "slave3:ip=10.0.0.9,port=0,state=online,offset=5,lag=0\r\n"
				   "slave4:port=6390,state=online\r\n"
				   "slaveX:ip=10.0.0.10,port=6390,state=online\r\n"
				   "master_failover_state:no-failover\r\n";
	struct cluster_replica r[8];

	(void)state;
	assert_int_equal(cluster_info_replicas(info, r, 8), 3);
	assert_string_equal(r[0].ip, "10.0.0.5");
	assert_int_equal(r[0].port, 6379);
	assert_true(r[0].online);
	assert_int_equal(r[0].offset, 1234);
	assert_string_equal(r[1].ip, "fd00::7");
	assert_int_equal(r[1].port, 6380);
	assert_false(r[1].online);
	assert_string_equal(r[2].ip, "redis-node-4.example.org");
	assert_int_equal(r[2].offset, 99);
	assert_int_equal(cluster_info_replicas(info, r, 1), 1);
	assert_int_equal(cluster_info_replicas("# Replication\r\nrole:slave\r\nmaster_host:10.0.0.1\r\n", r, 8), 0);
	/* a replica says which master it has, not which replicas */
	assert_int_equal(cluster_info_replicas("", r, 8), 0);
}

static void test_format_ranges(void **state)
{
	struct cluster_slots s = {{0}};
	char buf[64];

	(void)state;
	cluster_format_ranges(&s, buf, sizeof(buf));
	assert_string_equal(buf, "-");
	for (unsigned i = 0; i <= 5460; i++)
		cluster_slots_add(&s, i);
	cluster_format_ranges(&s, buf, sizeof(buf));
	assert_string_equal(buf, "0-5460");
	cluster_slots_add(&s, 5462);
	cluster_slots_add(&s, 16383);
	cluster_format_ranges(&s, buf, sizeof(buf));
	assert_string_equal(buf, "0-5460,5462,16383");
	assert_int_equal(cluster_slots_count(&s), 5463);
	/* cut at a whole range */
	cluster_format_ranges(&s, buf, 16);
	assert_string_equal(buf, "0-5460,5462,...");
	cluster_format_ranges(&s, buf, 9);
	assert_string_equal(buf, "...");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line),	      cmocka_unit_test(test_line_slots_in_transit),
		cmocka_unit_test(test_line_ids),      cmocka_unit_test(test_line_fields),
		cmocka_unit_test(test_line_ranges),   cmocka_unit_test(test_line_fragmented),
		cmocka_unit_test(test_each_line),     cmocka_unit_test(test_each_line_refuses),
		cmocka_unit_test(test_host_is),	      cmocka_unit_test(test_flags),
		cmocka_unit_test(test_info_field),    cmocka_unit_test(test_info_keys),
		cmocka_unit_test(test_info_replicas), cmocka_unit_test(test_format_ranges),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
