/* SPDX-License-Identifier: MIT */
/*
 * The data directory and the host (node/datadir.c, node/hostcheck.c): mount points read from mountinfo, what a
 * nodes.conf says the node was, whether a directory holds data, vm.overcommit_memory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "node.h"

static void test_mountinfo_point(void **state)
{
	char point[64];

	(void)state;
	assert_int_equal(node_mountinfo_point("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw\n", point,
					      sizeof(point)),
			 0);
	assert_string_equal(point, "/mnt2");
	assert_int_equal(node_mountinfo_point("434 418 254:0 /vol /bitnami/redis/data rw,relatime - ext4 /dev/vda rw",
					      point, sizeof(point)),
			 0);
	assert_string_equal(point, "/bitnami/redis/data");
	/* spaces and backslashes come escaped in octal */
	assert_int_equal(node_mountinfo_point("1 2 0:1 / /my\\040data\\134x rw - tmpfs tmpfs rw", point, sizeof(point)),
			 0);
	assert_string_equal(point, "/my data\\x");
	assert_int_equal(node_mountinfo_point("21 26 0:20 / / rw - proc proc rw", point, sizeof(point)), 0);
	assert_string_equal(point, "/");
	assert_int_equal(node_mountinfo_point("21 26 0:20 /", point, sizeof(point)), -EBADMSG);
	assert_int_equal(node_mountinfo_point("21 26 0:20 / relative rw", point, sizeof(point)), -EBADMSG);
	assert_int_equal(node_mountinfo_point("1 2 0:1 / /a/rather/long/mount/point rw", point, 8), -ENAMETOOLONG);
}

static void test_path_under(void **state)
{
	(void)state;
	assert_true(node_path_under("/data", "/"));
	assert_true(node_path_under("/data", "/data"));
	assert_true(node_path_under("/data/x", "/data"));
	assert_false(node_path_under("/database", "/data"));
	assert_false(node_path_under("/dat", "/data"));
}

#define ID_A "e7d1eecce10fd6bb5eb35b9f99a514335d9ba9ca"
#define ID_B "67ed2db8d677e59ec4a4cefb06858cf2a1a89fa1"
#define ID_C "292f8b365bb7edb5e285caf0b7e6ddc7265d2f4f"

static void test_nodes_conf_former(void **state)
{
	const char *member = ID_A " 10.0.0.1:6379@16379 myself,master - 0 0 1 connected 0-5460\n" ID_B
				  " 10.0.0.2:6379@16379 master - 0 1 2 connected 5461-16383\n" ID_C
				  " 10.0.0.3:6379@16379 slave " ID_A " 0 1 1 connected\n"
				  "vars currentEpoch 2 lastVoteEpoch 0\n";
	const char *replica = ID_A " 10.0.0.1:6379@16379 myself,slave " ID_B " 0 0 1 connected\n" ID_B
				   " 10.0.0.2:6379@16379 master - 0 1 2 connected 0-16383\n";
	const char *alone = ID_A " :6379@16379 myself,master - 0 0 0 connected\nvars currentEpoch 0 lastVoteEpoch 0\n";
	struct node_former f = {.peers = 42};

	(void)state;
	assert_int_equal(node_nodes_conf_former(member, &f), 1);
	assert_int_equal(f.peers, 2);
	assert_true(f.was_master);
	assert_int_equal(f.slots, 5461);
	assert_int_equal(node_nodes_conf_former(replica, &f), 1);
	assert_int_equal(f.peers, 1);
	assert_false(f.was_master);
	assert_int_equal(node_nodes_conf_former(alone, &f), 0);
	assert_int_equal(f.peers, 0);
	assert_int_equal(node_nodes_conf_former("", &f), 0);
}

static void test_holds_data(void **state)
{
	char dir[] = "/tmp/kvinit-test-datadir-XXXXXX", path[128];
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_false(node_data_dir_holds_data(dir));
	(void)snprintf(path, sizeof(path), "%s/nodes.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	(void)fputs("x\n", f);
	(void)fclose(f);
	(void)snprintf(path, sizeof(path), "%s/appendonlydir", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_false(node_data_dir_holds_data(dir)); /* nodes.conf and an empty directory */
	(void)snprintf(path, sizeof(path), "%s/appendonlydir/appendonly.aof.1.base.rdb", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	(void)fputs("REDIS0010", f);
	(void)fclose(f);
	assert_true(node_data_dir_holds_data(dir));
	assert_int_equal(unlink(path), 0);
	(void)snprintf(path, sizeof(path), "%s/appendonlydir", dir);
	assert_int_equal(rmdir(path), 0);
	(void)snprintf(path, sizeof(path), "%s/nodes.conf", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);
}

static void test_overcommit_parse(void **state)
{
	int mode = 42;

	(void)state;
	assert_int_equal(node_overcommit_parse("1\n", &mode), 0);
	assert_int_equal(mode, 1);
	assert_int_equal(node_overcommit_parse("0\n", &mode), 0);
	assert_int_equal(mode, 0);
	assert_int_equal(node_overcommit_parse("2", &mode), 0);
	assert_int_equal(mode, 2);
	mode = 42;
	assert_int_equal(node_overcommit_parse("3\n", &mode), -EINVAL);
	assert_int_equal(node_overcommit_parse("\n", &mode), -EINVAL);
	assert_int_equal(node_overcommit_parse("one\n", &mode), -EINVAL);
	assert_int_equal(node_overcommit_parse("00000000000000000000001\n", &mode), -EINVAL);
	assert_int_equal(mode, 42);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mountinfo_point),	  cmocka_unit_test(test_path_under),
		cmocka_unit_test(test_nodes_conf_former), cmocka_unit_test(test_holds_data),
		cmocka_unit_test(test_overcommit_parse),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
