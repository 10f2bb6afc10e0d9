/* SPDX-License-Identifier: MIT */
/*
 * kvinit's TLS transport (node/conn_tls.c) against a fake TLS server on 127.0.0.1 (OpenSSL in a child process),
 * with certificates made by the openssl command for the run: the server's certificate is checked against the CA
 * and the address or name connected to, a client certificate is presented when the server asks, timeouts and a
 * server that goes away fail the connection (no SIGPIPE: this test keeps its default action).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/ssl.h>

#include "init.h"
#include "conn.h"

static char dir[] = "/tmp/kvinit-tls-XXXXXX";
static const struct timeval one_second = {.tv_sec = 1};

static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	assert_true(n > 0 && (size_t)n < sizeof(cmd));
	assert_int_equal(system(cmd), 0);
}

static const char *path(const char *name)
{
	static char buf[8][256];
	static unsigned next;
	char *p = buf[next++ % 8];

	(void)snprintf(p, 256, "%s/%s", dir, name);
	return p;
}

/* A key and a certificate NAME signed by CA (CA's own name: self-signed), with the subject alternative names san. */
static void make_cert(const char *name, const char *ca, const char *san)
{
	sh("cd %s && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout %s.key -out %s.csr "
	   "-subj /CN=%s 2>/dev/null",
	   dir, name, name, name);
	if (strcmp(name, ca) == 0) {
		sh("cd %s && openssl x509 -req -in %s.csr -signkey %s.key -out %s.crt -days 2 -extfile /dev/stdin "
		   "2>/dev/null <<'EOF'\nbasicConstraints=critical,CA:TRUE\nkeyUsage=keyCertSign,cRLSign\nEOF",
		   dir, name, name, name);
		return;
	}
	sh("cd %s && openssl x509 -req -in %s.csr -CA %s.crt -CAkey %s.key -CAcreateserial -out %s.crt -days 2 "
	   "-extfile /dev/stdin 2>/dev/null <<'EOF'\n%s%s\nEOF",
	   dir, name, ca, ca, name, *san ? "subjectAltName=" : "", san);
}

static int setup_certs(void **state)
{
	(void)state;
	if (!mkdtemp(dir))
		return -1;
	make_cert("ca", "ca", "");
	make_cert("other-ca", "other-ca", "");
	make_cert("node", "ca", "IP:127.0.0.1,DNS:localhost");
	make_cert("elsewhere", "ca", "IP:10.1.2.3,DNS:node.example");
	make_cert("stranger", "other-ca", "IP:127.0.0.1,DNS:localhost");
	make_cert("client", "ca", "DNS:kvinit");
	/* made before its container started: its name only, no address */
	make_cert("named", "ca", "DNS:redis-node-0");
	sh("cd %s && openssl pkey -in client.key -aes256 -passout pass:hunter2 -out client-enc.key", dir);
	return 0;
}

static int remove_certs(void **state)
{
	(void)state;
	node_conn_tls_reset();
	sh("rm -rf %s", dir);
	return 0;
}

/* What the fake server does once the handshake is done. */
enum behaviour {
	ANSWER,	      /* each request: the name the client sent (SNI) as a bulk string, or +PONG without one */
	SILENT,	      /* reads, never answers */
	CLOSE,	      /* closes the connection at once */
	NO_HANDSHAKE, /* accepts the TCP connection and says nothing at all */
	PLAIN,	      /* a plain-text server: answers -ERR to whatever comes */
};

/* A TLS server with the certificate NAME on an ephemeral port of 127.0.0.1, for one connection, in a child. */
static pid_t fake_server(const char *name, bool want_client_cert, enum behaviour how, unsigned *ret_port)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	char crt[64], key[64];
	pid_t pid;

	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(fd, 1), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	*ret_port = ntohs(a.sin_port);
	(void)snprintf(crt, sizeof(crt), "%s.crt", name);
	(void)snprintf(key, sizeof(key), "%s.key", name);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
		int c = accept(fd, NULL, NULL);
		char buf[65536];
		SSL *ssl;

		if (c < 0 || !ctx)
			_exit(1);
		if (how == NO_HANDSHAKE)
			_exit(read(c, buf, sizeof(buf)) >= 0 && read(c, buf, sizeof(buf)) >= 0 ? 0 : 1);
		if (how == PLAIN)
			_exit(read(c, buf, sizeof(buf)) > 0 && write(c, "-ERR unknown command\r\n", 22) > 0 &&
					      read(c, buf, sizeof(buf)) >= 0
				      ? 0
				      : 1);
		if (SSL_CTX_use_certificate_chain_file(ctx, path(crt)) != 1 ||
		    SSL_CTX_use_PrivateKey_file(ctx, path(key), SSL_FILETYPE_PEM) != 1)
			_exit(1);
		if (want_client_cert) {
			(void)SSL_CTX_load_verify_locations(ctx, path("ca.crt"), NULL);
			SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
		}
		ssl = SSL_new(ctx);
		(void)SSL_set_fd(ssl, c);
		if (SSL_accept(ssl) != 1)
			_exit(2);
		if (how == CLOSE)
			_exit(0);
		while (SSL_read(ssl, buf, sizeof(buf)) > 0) {
			const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
			char out[128];

			if (how == SILENT)
				continue;
			if (sni)
				(void)snprintf(out, sizeof(out), "$%zu\r\n%s\r\n", strlen(sni), sni);
			else
				(void)snprintf(out, sizeof(out), "+PONG\r\n");
			(void)SSL_write(ssl, out, (int)strlen(out));
		}
		_exit(0);
	}
	(void)close(fd);
	return pid;
}

static void stop(pid_t pid)
{
	(void)kill(pid, SIGKILL);
	(void)waitpid(pid, NULL, 0);
}

/* The client side: the CA ca, and the client certificate NAME (NULL: none) with its key and passphrase. */
static void client(const char *ca, const char *cert, const char *key, const char *pass)
{
	struct node_conn_tls cfg = {.ca_file = path(ca)};
	struct init_error err = {{0}};

	if (cert) {
		cfg.cert_file = path(cert);
		cfg.key_file = path(key);
		cfg.key_pass = pass;
	}
	assert_int_equal(node_conn_tls_init(&cfg, &err), 0);
	assert_true(node_conn_tls_on());
}

/*
 * Connects to host, a fake server with the certificate name, checking it against verify (NULL: against host), and
 * sends PING: its answer in buf, or "" with the connection's error in why.
 */
static int ping_as(const char *host, const char *verify, const char *name, bool want_client_cert, enum behaviour how,
		   char *buf, size_t size, char *why, size_t why_size)
{
	unsigned port;
	pid_t pid = fake_server(name, want_client_cert, how, &port);
	struct node_conn *c = verify ? node_conn_connect_as(host, port, verify, one_second)
				     : node_conn_connect(host, port, one_second);
	redisReply *rep = NULL;
	int r;

	assert_non_null(c);
	*buf = *why = 0;
	if (!c->err)
		rep = node_command(c, "PING");
	if (rep && (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_STATUS))
		(void)snprintf(buf, size, "%s", rep->str);
	r = rep ? 0 : c->sys_errno ? -c->sys_errno : -EIO;
	(void)snprintf(why, why_size, "%s", c->errstr);
	freeReplyObject(rep);
	node_conn_free(c);
	stop(pid);
	return r;
}

static int ping(const char *host, const char *name, bool want_client_cert, enum behaviour how, char *buf, size_t size,
		char *why, size_t why_size)
{
	return ping_as(host, NULL, name, want_client_cert, how, buf, size, why, why_size);
}

static void test_verified_by_address(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(ping("127.0.0.1", "node", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
	/* no SNI for an address */
	assert_string_equal(buf, "PONG");
}

static void test_verified_by_name_with_sni(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(ping("localhost", "node", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
	assert_string_equal(buf, "localhost");
}

/* A certificate of the right CA for another address: a node that is not the one connected to. */
static void test_address_not_in_certificate(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(ping("127.0.0.1", "elsewhere", false, ANSWER, buf, sizeof(buf), why, sizeof(why)),
			 -EKEYREJECTED);
	assert_non_null(strstr(why, "IP address mismatch"));
	assert_int_equal(ping("localhost", "elsewhere", false, ANSWER, buf, sizeof(buf), why, sizeof(why)),
			 -EKEYREJECTED);
	assert_non_null(strstr(why, "hostname mismatch"));
}

/*
 * A certificate that names the node only (made before its container had an address): reached at its address and
 * checked against its name, it passes, with the name as SNI; against another name or the address, it does not.
 */
static void test_address_verified_as_name(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(
		ping_as("127.0.0.1", "redis-node-0", "named", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
	assert_string_equal(buf, "redis-node-0");
	assert_int_equal(ping_as("127.0.0.1", "other", "named", false, ANSWER, buf, sizeof(buf), why, sizeof(why)),
			 -EKEYREJECTED);
	assert_non_null(strstr(why, "hostname mismatch"));
	assert_non_null(strstr(why, "'other'"));
	assert_int_equal(ping("127.0.0.1", "named", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), -EKEYREJECTED);
	assert_non_null(strstr(why, "IP address mismatch"));
	/* an address to check against is an address: the node's own is in no certificate of this one */
	assert_int_equal(ping_as("127.0.0.1", "127.0.0.1", "named", false, ANSWER, buf, sizeof(buf), why, sizeof(why)),
			 -EKEYREJECTED);
}

static void test_other_ca_refused(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(ping("127.0.0.1", "stranger", false, ANSWER, buf, sizeof(buf), why, sizeof(why)),
			 -EKEYREJECTED);
	assert_non_null(strstr(why, "the server's certificate is refused"));
	/* trusting both CAs (a CA change staged as a bundle): both servers pass */
	sh("cat %s %s > %s", path("ca.crt"), path("other-ca.crt"), path("both.crt"));
	client("both.crt", NULL, NULL, NULL);
	assert_int_equal(ping("127.0.0.1", "stranger", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
	assert_int_equal(ping("127.0.0.1", "node", false, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
}

static void test_client_certificate(void **state)
{
	char buf[64], why[128];
	int r;

	(void)state;
	client("ca.crt", "client.crt", "client-enc.key", "hunter2");
	assert_int_equal(ping("127.0.0.1", "node", true, ANSWER, buf, sizeof(buf), why, sizeof(why)), 0);
	assert_string_equal(buf, "PONG");
	/* without one, the server refuses the handshake (TLS 1.3: at the first read) */
	client("ca.crt", NULL, NULL, NULL);
	r = ping("127.0.0.1", "node", true, ANSWER, buf, sizeof(buf), why, sizeof(why));
	assert_true(r < 0);
	assert_string_equal(buf, "");
}

static void test_bad_client_settings(void **state)
{
	struct node_conn_tls cfg = {.ca_file = path("ca.crt")};
	struct init_error err = {{0}};

	(void)state;
	node_conn_tls_reset();
	cfg.cert_file = path("client.crt");
	cfg.key_file = path("client-enc.key");
	cfg.key_pass = "wrong";
	assert_int_equal(node_conn_tls_init(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "cannot load the key"));
	assert_false(node_conn_tls_on());
	/* no passphrase: refused, never asked for on a terminal */
	cfg.key_pass = NULL;
	assert_int_equal(node_conn_tls_init(&cfg, &err), -EINVAL);
	cfg.key_file = path("node.key");
	assert_int_equal(node_conn_tls_init(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "node.key"));
	assert_non_null(strstr(err.msg, "mismatch"));
	cfg = (struct node_conn_tls){.ca_file = path("missing.crt")};
	assert_int_equal(node_conn_tls_init(&cfg, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "missing.crt"));
	cfg = (struct node_conn_tls){0};
	assert_int_equal(node_conn_tls_init(&cfg, &err), -EINVAL);
	assert_false(node_conn_tls_on());
}

static double elapsed(const struct timespec *since)
{
	struct timespec now;

	(void)clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/* A server that never answers the handshake: the connect timeout ends it. */
static void test_handshake_timeout(void **state)
{
	char buf[64], why[128];
	struct timespec t0;

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	(void)clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(ping("127.0.0.1", "node", false, NO_HANDSHAKE, buf, sizeof(buf), why, sizeof(why)),
			 -ETIMEDOUT);
	assert_true(elapsed(&t0) < 1.9);
	assert_non_null(strstr(why, "TLS handshake"));
}

/* A command the server never answers: a receive timeout (EAGAIN), as on a plain connection. */
static void test_read_timeout(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_int_equal(ping("127.0.0.1", "node", false, SILENT, buf, sizeof(buf), why, sizeof(why)), -EAGAIN);
}

/* A plain-text server on the port: the handshake fails with a line, not a hang. */
static void test_plain_server(void **state)
{
	char buf[64], why[128];

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	assert_true(ping("127.0.0.1", "node", false, PLAIN, buf, sizeof(buf), why, sizeof(why)) < 0);
	assert_non_null(strstr(why, "TLS"));
}

/* The server goes after the handshake: a large write fails (EPIPE or ECONNRESET) and raises no SIGPIPE. */
static void test_server_gone(void **state)
{
	static char big[4 << 20];
	const char *argv[] = {"SET", "k", big};
	size_t len[] = {3, 1, sizeof(big)};
	struct node_conn *c;
	void *rep = NULL;
	unsigned port;
	pid_t pid;

	(void)state;
	client("ca.crt", NULL, NULL, NULL);
	pid = fake_server("node", false, CLOSE, &port);
	c = node_conn_connect("127.0.0.1", port, one_second);
	assert_non_null(c);
	assert_int_equal(c->err, 0);
	(void)waitpid(pid, NULL, 0);
	assert_int_equal(node_append_argv(c, 3, argv, len), REDIS_OK);
	assert_int_equal(node_get_reply(c, &rep), REDIS_ERR);
	assert_true(c->err == REDIS_ERR_IO || c->err == REDIS_ERR_EOF);
	node_conn_free(c);
}

/* Without node_conn_tls_init, connections are plain. */
static void test_plain_again(void **state)
{
	(void)state;
	node_conn_tls_reset();
	assert_false(node_conn_tls_on());
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verified_by_address),
		cmocka_unit_test(test_verified_by_name_with_sni),
		cmocka_unit_test(test_address_not_in_certificate),
		cmocka_unit_test(test_address_verified_as_name),
		cmocka_unit_test(test_other_ca_refused),
		cmocka_unit_test(test_client_certificate),
		cmocka_unit_test(test_bad_client_settings),
		cmocka_unit_test(test_handshake_timeout),
		cmocka_unit_test(test_read_timeout),
		cmocka_unit_test(test_plain_server),
		cmocka_unit_test(test_server_gone),
		cmocka_unit_test(test_plain_again),
	};

	return cmocka_run_group_tests(tests, setup_certs, remove_certs);
}
