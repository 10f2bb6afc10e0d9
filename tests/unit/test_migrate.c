/* SPDX-License-Identifier: MIT */
/*
 * The pure parts of moving slots (node/cluster/migrate.c): the open slots a node's CLUSTER NODES shows, and which
 * master keeps an open slot when cluster_fix_open_slots finishes it.
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

#define LINE(id, addr, flags, slots) id " " addr " " flags " - 0 1426238317239 4 connected" slots "\n"

static void test_open_slots(void **state)
{
	const char *text = LINE(ID_B, "10.0.0.2:6379@16379", "master", " 5461-10922 [7000-<-" ID_A "]")
		LINE(ID_A, "10.0.0.1:6379@16379", "myself,master",
		     " 0-5460 [100->-" ID_B "] [101->-" ID_B "] [16000-<-" ID_C "]")
			LINE(ID_C, "10.0.0.3:6379@16379", "master", " 10923-16383");
	struct cluster_open_slot open[4];
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(cluster_open_slots(text, open, 4, &err), 3);
	assert_int_equal(open[0].slot, 100);
	assert_false(open[0].importing);
	assert_string_equal(open[0].other, ID_B);
	assert_int_equal(open[1].slot, 101);
	assert_int_equal(open[2].slot, 16000);
	assert_true(open[2].importing);
	assert_string_equal(open[2].other, ID_C);
	/* another node's markers are its own business; the count goes on beyond max */
	assert_int_equal(cluster_open_slots(text, NULL, 0, &err), 3);
	assert_int_equal(cluster_open_slots(text, open, 1, &err), 3);
	assert_int_equal(open[0].slot, 100);
	assert_int_equal(
		cluster_open_slots(LINE(ID_A, "10.0.0.1:6379@16379", "myself,master", " 0-16383"), open, 4, &err), 0);
	assert_int_equal(cluster_open_slots("", open, 4, &err), 0);
}

static void test_open_slots_refused(void **state)
{
	struct cluster_open_slot open[4];
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(cluster_open_slots(LINE(ID_A, "10.0.0.1:6379@16379", "myself,master", " [100->-nothex]"), open,
					    4, &err),
			 -EBADMSG);
	assert_non_null(strstr(err.msg, "slot"));
	assert_int_equal(cluster_open_slots("not a cluster nodes line\n", open, 4, &err), -EBADMSG);
}

static void test_keeper_forward(void **state)
{
	/* the usual interruption: A migrating to B, B importing from A; keys on both */
	struct cluster_slot_side s[3] = {
		{.claims = true, .migrating = true, .other = 1, .keys = 40},
		{.importing = true, .other = 0, .keys = 60},
		{.other = -1},
	};

	(void)state;
	assert_int_equal(cluster_fix_keeper(s, 3), 1);
	/* B already took the slot (SETSLOT NODE on the target came first) and A still claims it */
	s[1] = (struct cluster_slot_side){.claims = true, .other = -1};
	assert_int_equal(cluster_fix_keeper(s, 3), 1);
	/* killed between IMPORTING on the target and MIGRATING on the source: the source keeps it */
	s[0] = (struct cluster_slot_side){.claims = true, .other = -1, .keys = 40};
	s[1] = (struct cluster_slot_side){.importing = true, .other = 0};
	assert_int_equal(cluster_fix_keeper(s, 3), 0);
	/* migrating to a node that is not one of the masters: the one claimant keeps it */
	s[0] = (struct cluster_slot_side){.claims = true, .migrating = true, .other = -1, .keys = 40};
	s[1] = (struct cluster_slot_side){.other = -1};
	assert_int_equal(cluster_fix_keeper(s, 3), 0);
}

static void test_keeper_without_a_clear_owner(void **state)
{
	struct cluster_slot_side s[3] = {
		{.claims = true, .other = -1, .keys = 5},
		{.claims = true, .other = -1, .keys = 9},
		{.importing = true, .other = 0, .keys = 100},
	};

	(void)state;
	/* two claimants: the one with more keys (the importing node's keys go to it) */
	assert_int_equal(cluster_fix_keeper(s, 3), 1);
	/* nobody claims it: the node with the most keys, an importing one on a tie */
	s[0] = (struct cluster_slot_side){.other = -1, .keys = 7};
	s[1] = (struct cluster_slot_side){.other = -1, .keys = 7};
	s[2] = (struct cluster_slot_side){.importing = true, .other = 0, .keys = 7};
	assert_int_equal(cluster_fix_keeper(s, 3), 2);
	s[2].keys = 3;
	assert_int_equal(cluster_fix_keeper(s, 3), 0);
	/* nobody claims it and nobody has a key: the importing node */
	s[0].keys = s[1].keys = s[2].keys = 0;
	assert_int_equal(cluster_fix_keeper(s, 3), 2);
	s[2].importing = false;
	assert_int_equal(cluster_fix_keeper(s, 3), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_slots),
		cmocka_unit_test(test_open_slots_refused),
		cmocka_unit_test(test_keeper_forward),
		cmocka_unit_test(test_keeper_without_a_clear_owner),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
