/* SPDX-License-Identifier: MIT */
/* Where the node's own probes and helpers reach it: loopback when it listens there, else its first bind address. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "node.h"

static void expect_probe_host(const char *bind, const char *want)
{
	char buf[64];

	memset(buf, 'x', sizeof(buf));
	node_probe_host(bind, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_probe_host(void **state)
{
	(void)state;
	expect_probe_host("", "127.0.0.1");
	expect_probe_host("   ", "127.0.0.1");
	expect_probe_host("*", "127.0.0.1");
	expect_probe_host("-*", "127.0.0.1");
	expect_probe_host("127.0.0.1", "127.0.0.1");
	expect_probe_host("-127.0.0.1", "127.0.0.1");
	/* loopback wins wherever it is in the list */
	expect_probe_host("10.0.0.5 127.0.0.1", "127.0.0.1");
	expect_probe_host("10.0.0.5 10.0.0.6 *", "127.0.0.1");
	/* else the first address, without Redis's '-' for an optional one */
	expect_probe_host("10.0.0.5 10.0.0.6", "10.0.0.5");
	expect_probe_host("  -10.0.0.5   10.0.0.6  ", "10.0.0.5");
	expect_probe_host("::1", "::1");
	/* '::*' (every IPv6 address) is not an address to connect to */
	expect_probe_host("::*", "127.0.0.1");
	expect_probe_host("::* 10.0.0.5", "10.0.0.5");
	/* 127.0.0.1 exactly: 127.0.0.10 is another address */
	expect_probe_host("127.0.0.10", "127.0.0.10");
	expect_probe_host("127.0.0.1x 10.0.0.5", "127.0.0.1x");
}

static void test_probe_host_small_buffer(void **state)
{
	char buf[5];

	(void)state;
	node_probe_host("10.0.0.5", buf, sizeof(buf));
	assert_string_equal(buf, "10.0");
	node_probe_host("*", buf, sizeof(buf));
	assert_string_equal(buf, "127.");
}

/* An address of this host is one the kernel lets a socket bind: loopback's whole range; not TEST-NET-1's. */
static void test_address_is_local(void **state)
{
	(void)state;
	assert_int_equal(node_address_is_local("127.0.0.1"), 1);
	assert_int_equal(node_address_is_local("127.0.0.2"), 1);
	assert_int_equal(node_address_is_local("192.0.2.1"), 0);
	assert_int_equal(node_address_is_local("redis-node-0"), -EINVAL);
	assert_int_equal(node_address_is_local(""), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_probe_host),
		cmocka_unit_test(test_probe_host_small_buffer),
		cmocka_unit_test(test_address_is_local),
	};

	return cmocka_run_group_tests_name("address", tests, NULL, NULL);
}
