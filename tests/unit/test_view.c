/* SPDX-License-Identifier: MIT */
/*
 * Whether a node is what its peers see (node/cluster/view.c, `kvinit health --ready`): its own line, the peers
 * worth asking about it, and a peer's word on it.
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
#define ID_D "0a1b2c3d4e5f60718293a4b5c6d7e8f901234567"
#define ID_E "fedcba9876543210fedcba9876543210fedcba98"

#define LINE(id, addr, flags, master, link, slots)                                                                     \
	id " " addr " " flags " " master " 0 1426238317239 4 " link slots "\n"

static struct cluster_self_view self_view(const char *text)
{
	struct init_error err = {{0}};
	struct cluster_self_view v;

	if (cluster_view_self(text, &v, &err) != 0)
		fail_msg("refused: %s", err.msg);
	return v;
}

static void test_addr_split(void **state)
{
	char host[64];
	unsigned port = 0;

	(void)state;
	assert_true(cluster_addr_split("10.0.0.5:6379@16379,redis-node-0", host, sizeof(host), &port));
	assert_string_equal(host, "10.0.0.5");
	assert_int_equal(port, 6379);
	assert_true(cluster_addr_split("::1:7000@17000", host, sizeof(host), &port));
	assert_string_equal(host, "::1");
	assert_int_equal(port, 7000);
	/* a node that has not learned its address yet */
	assert_true(cluster_addr_split(":6379@16379", host, sizeof(host), &port));
	assert_string_equal(host, "");
	port = 42;
	assert_false(cluster_addr_split("10.0.0.5@16379", host, sizeof(host), &port));
	assert_false(cluster_addr_split("10.0.0.5:@16379", host, sizeof(host), &port));
	assert_false(cluster_addr_split("10.0.0.5:65536@16379", host, sizeof(host), &port));
	assert_false(cluster_addr_split("10.0.0.5:63x9@16379", host, sizeof(host), &port));
	assert_false(cluster_addr_split("10.0.0.5:6379", host, 4, &port)); /* no room for the host */
	assert_int_equal(port, 42);
}

static void test_self_and_whom_to_ask(void **state)
{
	const char *text = LINE(ID_A, "10.0.0.1:6379@16379", "master", "-", "connected",
				" 0-5460") LINE(ID_B, "10.0.0.2:6379@16379", "myself,slave", ID_C, "connected", "")
		LINE(ID_C, "10.0.0.3:6379@16379", "master", "-", "connected", " 5461-10922")
			LINE(ID_D, "10.0.0.4:6379@16379", "slave", ID_A, "connected", "")
				LINE(ID_E, "10.0.0.5:6379@16379", "master,fail", "-", "disconnected", " 10923-16383");
	struct cluster_self_view v = self_view(text);

	(void)state;
	assert_string_equal(v.self.id, ID_B);
	assert_false(v.self.is_master);
	assert_string_equal(v.self.master, ID_C);
	/* its master first, then the masters with slots; a failed or unlinked peer is not asked */
	assert_int_equal(v.n_ask, 3);
	assert_string_equal(v.ask[0].host, "10.0.0.3");
	assert_string_equal(v.ask[1].host, "10.0.0.1");
	assert_string_equal(v.ask[2].host, "10.0.0.4");
	assert_int_equal(v.ask[2].port, 6379);
}

static void test_whom_to_ask_skips(void **state)
{
	const char *text = LINE(ID_A, "10.0.0.1:6379@16379", "myself,master", "-", "connected", " 0-16383")
		LINE(ID_B, "10.0.0.2:6379@16379", "master,fail?", "-", "connected", "")
			LINE(ID_C, ":6379@16379", "master,noaddr", "-", "disconnected", "")
				LINE(ID_D, "10.0.0.4:6379@16379", "handshake", "-", "connected", "");
	struct cluster_self_view v = self_view(text);

	(void)state;
	assert_true(v.self.is_master);
	assert_int_equal(v.self.nslots, 16384);
	assert_int_equal(v.n_ask, 0);
}

static void test_self_refused(void **state)
{
	struct init_error err = {{0}};
	struct cluster_self_view v;

	(void)state;
	v.n_ask = 42;
	assert_int_equal(cluster_view_self(LINE(ID_A, "10.0.0.1:6379@16379", "master", "-", "connected", ""), &v, &err),
			 -ENOENT);
	assert_int_equal(cluster_view_self("not a line\n", &v, &err), -EBADMSG);
	assert_int_equal(v.n_ask, 42);
}

static int check(const char *peer_text, const char *self_line, char *why, size_t size)
{
	struct cluster_self_view v = self_view(self_line);
	struct init_error err = {{0}};

	return cluster_view_check_peer(peer_text, &v.self, why, size, &err);
}

static void test_peer_word(void **state)
{
	const char *self = LINE(ID_B, "10.0.0.2:6379@16379,node-1", "myself,master", "-", "connected", " 0-16383");
	char why[256];

	(void)state;
	/* the same address (a hostname is not compared: it travels by gossip on its own) and no flag */
	assert_int_equal(check(LINE(ID_A, "10.0.0.1:6379@16379", "myself,master", "-", "connected", "")
				       LINE(ID_B, "10.0.0.2:6379@16379", "master", "-", "connected", " 0-16383"),
			       self, why, sizeof(why)),
			 1);
	assert_int_equal(check(LINE(ID_B, "10.0.0.2:6379@16379", "master,fail", "-", "disconnected", " 0-16383"), self,
			       why, sizeof(why)),
			 0);
	assert_string_equal(why, "flags this node 'fail'");
	assert_int_equal(check(LINE(ID_B, "10.0.0.2:6379@16379", "master,fail?", "-", "connected", " 0-16383"), self,
			       why, sizeof(why)),
			 0);
	assert_string_equal(why, "flags this node 'fail?'");
	/* the address it had before it moved */
	assert_int_equal(check(LINE(ID_B, "10.0.0.9:6379@16379", "master", "-", "connected", " 0-16383"), self, why,
			       sizeof(why)),
			 0);
	assert_string_equal(why, "has this node at '10.0.0.9:6379@16379', it announces '10.0.0.2:6379@16379'");
	assert_int_equal(
		check(LINE(ID_A, "10.0.0.1:6379@16379", "myself,master", "-", "connected", ""), self, why, sizeof(why)),
		0);
	assert_string_equal(why, "does not know this node");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_split),	  cmocka_unit_test(test_self_and_whom_to_ask),
		cmocka_unit_test(test_whom_to_ask_skips), cmocka_unit_test(test_self_refused),
		cmocka_unit_test(test_peer_word),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
