/* SPDX-License-Identifier: MIT */
/*
 * cluster_connect against a fake server on 127.0.0.1: a refused password and a failed connection are told apart
 * by the code (kvinit health retries the rotation's passwords on the first only), whatever the message says.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "init.h"
#include "cluster.h"

static const struct secrets_value password = {.data = (char *)"s3cret", .len = 6};

/*
 * Listens on an ephemeral port of 127.0.0.1; the child accepts one connection and answers AUTH with `reply` (NULL:
 * closes the connection without a word).
 */
static pid_t fake_server(const char *reply, unsigned *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*ret_port = ntohs(a.sin_port);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int c = accept(fd, NULL, NULL);
		char buf[256];

		if (c < 0)
			_exit(1);
		/* AUTH in, the reply out, then wait until the client hangs up */
		if (reply && (read(c, buf, sizeof(buf)) <= 0 || write(c, reply, strlen(reply)) < 0 ||
			      read(c, buf, sizeof(buf)) < 0))
			_exit(1);
		_exit(0);
	}
	(void)close(fd);
	return pid;
}

static int connect_to(const char *reply, struct init_error *err)
{
	struct node_conn *ctx = NULL;
	unsigned port;
	pid_t pid = fake_server(reply, &port);
	int r = cluster_connect("127.0.0.1", port, &password, 2000, &ctx, err);

	if (ctx)
		node_conn_free(ctx);
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
	return r;
}

static void test_password_refused(void **state)
{
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(connect_to("-WRONGPASS invalid username-password pair or user is disabled.\r\n", &err),
			 -EACCES);
	assert_non_null(strstr(err.msg, "AUTH refused by 127.0.0.1:"));
	assert_non_null(strstr(err.msg, ": WRONGPASS invalid username-password pair"));
	assert_int_equal(connect_to("-NOAUTH Authentication required.\r\n", &err), -EACCES);
}

/* A connection dropped during AUTH was reported as "AUTH refused by ...: Connection reset by peer". */
static void test_connection_lost(void **state)
{
	struct init_error err = {{0}};
	int r;

	(void)state;
	r = connect_to(NULL, &err);
	assert_true(r == -ECONNRESET || r == -EPIPE);
	assert_null(strstr(err.msg, "AUTH refused"));
	assert_non_null(strstr(err.msg, "lost the connection to 127.0.0.1:"));
}

/* Any other error reply means the connection cannot be used, not that the password is wrong. */
static void test_other_error(void **state)
{
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(connect_to("-ERR max number of clients reached\r\n", &err), -EREMOTEIO);
	assert_non_null(strstr(err.msg, "AUTH failed on 127.0.0.1:"));
}

static void test_accepted(void **state)
{
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(connect_to("+OK\r\n", &err), 0);
}

static void test_connection_refused(void **state)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	struct init_error err = {{0}};
	struct node_conn *ctx = NULL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port;

	(void)state;
	/* a port that was free a moment ago and has nobody listening */
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	(void)close(fd);
	assert_int_equal(cluster_connect("127.0.0.1", port, &password, 2000, &ctx, &err), -ECONNREFUSED);
	assert_null(ctx);
	assert_non_null(strstr(err.msg, "cannot connect to 127.0.0.1:"));
}

static void test_resolve(void **state)
{
	struct init_error err = {{0}};
	char ip[INET6_ADDRSTRLEN] = "untouched";

	(void)state;
	assert_int_equal(cluster_resolve("127.0.0.1", ip, sizeof(ip), &err), 0);
	assert_string_equal(ip, "127.0.0.1");
	assert_int_equal(cluster_resolve("::1", ip, sizeof(ip), &err), 0);
	assert_string_equal(ip, "::1");
	/* too small for the address: refused, untouched */
	(void)snprintf(ip, sizeof(ip), "untouched");
	assert_true(cluster_resolve("127.0.0.1", ip, 9, &err) < 0);
	assert_string_equal(ip, "untouched");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_password_refused),   cmocka_unit_test(test_connection_lost),
		cmocka_unit_test(test_other_error),	   cmocka_unit_test(test_accepted),
		cmocka_unit_test(test_connection_refused), cmocka_unit_test(test_resolve),
	};

	(void)signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
