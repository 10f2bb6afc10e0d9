/* SPDX-License-Identifier: MIT */
/*
 * TLS under kvinit's own connections to servers (node/conn.c), with OpenSSL: after the TCP connect, a handshake
 * within the connect timeout; the server's certificate must chain to the deployment's CA and cover the name or
 * the address kvinit connected to; kvinit presents the node's certificate as its client certificate, which nodes
 * with tls-auth-clients require.
 *
 * One client TLS context per process, set up by the role from its options (node_conn_tls_init): each kvinit
 * process talks to the servers of one deployment only (its node, its peers, its Sentinels), which share one CA and
 * one client certificate; so every node_conn_connect of the process uses it, and the call sites (cluster_connect
 * and the roles above it) need not carry TLS settings. A certificate rotation sets it again with the new files.
 *
 * Reads and writes keep the socket's blocking mode and its SO_RCVTIMEO/SO_SNDTIMEO, as the plain transport does: a
 * timeout is an I/O failure with errno EAGAIN.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "cluster.h"
#include "conn.h"
#include "init.h"
#include "node.h"
#include "openssl.h"

/* The process's client context; NULL: connections are plain. */
static SSL_CTX *client_ctx;
static BIO_METHOD *socket_method;

/* ---- OpenSSL's error queue in words ---- */

/* The reason of the oldest error queued (the one that started it), or fallback; the queue is emptied. */
static const char *ssl_reason(const char *fallback)
{
	unsigned long e = sym_ERR_peek_error();
	const char *r = e ? sym_ERR_reason_error_string(e) : NULL;

	sym_ERR_clear_error();
	return r ? r : fallback;
}

/* ---- the socket under TLS: send with MSG_NOSIGNAL, like the plain transport ---- */

/*
 * OpenSSL's socket BIO writes with write(2), which raises SIGPIPE when the server has gone; a kvinit process that
 * is not PID 1 (health, cluster-init, a helper) would die of it. This BIO is OpenSSL's socket BIO with send(2) and
 * MSG_NOSIGNAL for its writes.
 */
static int socket_write(BIO *b, const char *buf, int len)
{
	int fd = (int)sym_BIO_ctrl(b, BIO_C_GET_FD, 0, NULL);
	ssize_t n;

	sym_BIO_clear_flags(b, BIO_FLAGS_RWS | BIO_FLAGS_SHOULD_RETRY);
	do
		n = send(fd, buf, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n <= 0 && sym_BIO_sock_should_retry((int)n))
		sym_BIO_set_flags(b, BIO_FLAGS_WRITE | BIO_FLAGS_SHOULD_RETRY);
	return (int)n;
}

static int make_socket_method(void)
{
	const BIO_METHOD *sock = sym_BIO_s_socket();
	BIO_METHOD *m;

	if (socket_method)
		return 0;
	m = sym_BIO_meth_new(BIO_TYPE_SOCKET, "kvinit socket");
	if (!m || !sym_BIO_meth_set_write(m, socket_write) || !sym_BIO_meth_set_read(m, sym_BIO_meth_get_read(sock)) ||
	    !sym_BIO_meth_set_puts(m, sym_BIO_meth_get_puts(sock)) ||
	    !sym_BIO_meth_set_ctrl(m, sym_BIO_meth_get_ctrl(sock)) ||
	    !sym_BIO_meth_set_create(m, sym_BIO_meth_get_create(sock)) ||
	    !sym_BIO_meth_set_destroy(m, sym_BIO_meth_get_destroy(sock))) {
		sym_BIO_meth_free(m);
		return -ENOMEM;
	}
	socket_method = m;
	return 0;
}

/* ---- the context ---- */

/* The key's passphrase, or none: never a prompt on a terminal (OpenSSL's default when no passphrase is given). */
static int key_passphrase(char *buf, int size, int rwflag, void *userdata)
{
	const char *pass = userdata;
	size_t len = pass ? strlen(pass) : 0;

	(void)rwflag;
	if (!pass || len >= (size_t)size)
		return 0;
	memcpy(buf, pass, len + 1);
	return (int)len;
}

static bool given(const char *s)
{
	return s && *s;
}

/* A context from cfg into *ret, or -errno with one line in err naming the file and what is wrong with it. */
static int make_context(const struct node_conn_tls *cfg, SSL_CTX **ret, struct init_error *err)
{
	SSL_CTX *ctx;
	int r = 0;

	if (!given(cfg->ca_file) && !given(cfg->ca_dir))
		return init_error_set(err, -EINVAL,
				      "TLS: no CA to verify the servers against (a CA file or directory)");
	if (given(cfg->cert_file) != given(cfg->key_file))
		return init_error_set(err, -EINVAL, "TLS: a client certificate needs both its certificate and its key");
	sym_ERR_clear_error();
	ctx = sym_SSL_CTX_new(sym_TLS_client_method());
	if (!ctx)
		return init_error_set(err, -ENOMEM, "TLS: cannot make a context: %s", ssl_reason("out of memory"));
	(void)sym_SSL_CTX_ctrl(ctx, SSL_CTRL_SET_MIN_PROTO_VERSION, TLS1_2_VERSION, NULL);
	/* the servers close without close_notify at times: that is an end of stream, not an error */
	sym_SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
	(void)sym_SSL_CTX_ctrl(ctx, SSL_CTRL_MODE, SSL_MODE_AUTO_RETRY, NULL);
	sym_SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (!sym_SSL_CTX_load_verify_locations(ctx, given(cfg->ca_file) ? cfg->ca_file : NULL,
					       given(cfg->ca_dir) ? cfg->ca_dir : NULL))
		r = init_error_set(err, -EINVAL, "TLS: cannot load the CA '%s': %s",
				   given(cfg->ca_file) ? cfg->ca_file : cfg->ca_dir, ssl_reason("unreadable"));
	if (r == 0 && given(cfg->cert_file)) {
		sym_SSL_CTX_set_default_passwd_cb(ctx, key_passphrase);
		sym_SSL_CTX_set_default_passwd_cb_userdata(ctx, (void *)(given(cfg->key_pass) ? cfg->key_pass : NULL));
		if (sym_SSL_CTX_use_certificate_chain_file(ctx, cfg->cert_file) != 1)
			r = init_error_set(err, -EINVAL, "TLS: cannot load the certificate '%s': %s", cfg->cert_file,
					   ssl_reason("unreadable"));
		else if (sym_SSL_CTX_use_PrivateKey_file(ctx, cfg->key_file, SSL_FILETYPE_PEM) != 1)
			r = init_error_set(err, -EINVAL, "TLS: cannot load the key '%s': %s", cfg->key_file,
					   ssl_reason("unreadable"));
		else if (sym_SSL_CTX_check_private_key(ctx) != 1)
			r = init_error_set(err, -EINVAL, "TLS: the key '%s' does not match the certificate '%s'",
					   cfg->key_file, cfg->cert_file);
		/* the passphrase was for loading the key: the context keeps no pointer to it */
		sym_SSL_CTX_set_default_passwd_cb_userdata(ctx, NULL);
	}
	sym_ERR_clear_error();
	if (r < 0) {
		sym_SSL_CTX_free(ctx);
		return r;
	}
	*ret = ctx;
	return 0;
}

int node_conn_tls_init(const struct node_conn_tls *cfg, struct init_error *err)
{
	SSL_CTX *ctx = NULL;
	int r;

	r = node_openssl_load(err);
	if (r < 0)
		return r;
	if (make_socket_method() < 0)
		return init_error_set(err, -ENOMEM, "TLS: out of memory");
	r = make_context(cfg, &ctx, err);
	if (r < 0)
		return r;
	/* connections open now keep the old context: each SSL holds a reference */
	sym_SSL_CTX_free(client_ctx);
	client_ctx = ctx;
	return 0;
}

int node_tls_client_setup(const struct node_options *o, const char *ca_file, struct init_error *err)
{
	struct node_tls_files f;
	struct node_conn_tls cfg;

	if (!o->tls_enabled)
		return 0;
	node_tls_files_from(o, &f);
	/* the names that peers' certificates are checked against, where kvinit reaches them at an address */
	cluster_tls_names_use(o->nodes, node_client_port(o));
	cfg = (struct node_conn_tls){.ca_file = ca_file ? ca_file : f.ca_file,
				     .ca_dir = f.ca_dir,
				     .cert_file = f.cert,
				     .key_file = f.key,
				     .key_pass = f.key_pass};
	return node_conn_tls_init(&cfg, err);
}

bool node_conn_tls_on(void)
{
	return client_ctx != NULL;
}

void node_conn_tls_reset(void)
{
	if (!client_ctx)
		return;
	sym_SSL_CTX_free(client_ctx);
	client_ctx = NULL;
	sym_BIO_meth_free(socket_method);
	socket_method = NULL;
}

/* ---- the transport ---- */

/* Marks c failed with sys_errno e and the line what (a transport's own words, not strerror's). */
static void tls_fail(struct node_conn *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void tls_fail(struct node_conn *c, int e, const char *fmt, ...)
{
	va_list ap;

	if (c->err)
		return;
	c->err = REDIS_ERR_IO;
	c->sys_errno = e;
	va_start(ap, fmt);
	/* clang-tidy 14 loses track of va_start (as in init/log.c) */
	(void)vsnprintf(c->errstr, sizeof(c->errstr), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized)
	va_end(ap);
	errno = e;
}

/*
 * After SSL_read or SSL_write returned n <= 0: 0 for the end of the stream, else -1 with errno (EAGAIN for a
 * socket timeout, as the plain transport's recv and send give it); a TLS failure also says what in c->errstr.
 */
static ssize_t io_result(struct node_conn *c, SSL *ssl, int n, const char *what)
{
	int saved = errno;

	switch (sym_SSL_get_error(ssl, n)) {
	case SSL_ERROR_ZERO_RETURN:
		sym_ERR_clear_error();
		return 0;
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		/* SO_RCVTIMEO/SO_SNDTIMEO ran out on the blocking socket */
		sym_ERR_clear_error();
		errno = saved == EAGAIN || saved == EWOULDBLOCK ? saved : EAGAIN;
		return -1;
	case SSL_ERROR_SYSCALL:
		sym_ERR_clear_error();
		if (saved == 0)
			return 0; /* the peer went away without a word */
		errno = saved;
		return -1;
	default:
		tls_fail(c, EPROTO, "TLS %s: %s", what, ssl_reason("protocol error"));
		return -1;
	}
}

static ssize_t tls_read(struct node_conn *c, void *buf, size_t len)
{
	SSL *ssl = c->transport_data;
	int n;

	sym_ERR_clear_error();
	errno = 0;
	n = sym_SSL_read(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	return n > 0 ? n : io_result(c, ssl, n, "read");
}

static ssize_t tls_write(struct node_conn *c, const void *buf, size_t len)
{
	SSL *ssl = c->transport_data;
	ssize_t n;

	sym_ERR_clear_error();
	errno = 0;
	n = sym_SSL_write(ssl, buf, len > INT32_MAX ? INT32_MAX : (int)len);
	if (n > 0)
		return n;
	n = io_result(c, ssl, (int)n, "write");
	/* a write that found the stream closed is a failed write */
	if (n == 0)
		errno = EPIPE;
	return n == 0 ? -1 : n;
}

static void tls_close(struct node_conn *c)
{
	SSL *ssl = c->transport_data;

	if (!ssl)
		return;
	/* close_notify on a connection that works; a failed one is only dropped (its socket may block) */
	if (!c->err && sym_SSL_is_init_finished(ssl))
		(void)sym_SSL_shutdown(ssl);
	sym_SSL_free(ssl);
	sym_ERR_clear_error();
	c->transport_data = NULL;
}

static size_t tls_pending(const struct node_conn *c)
{
	const SSL *ssl = c->transport_data;
	int n = ssl ? sym_SSL_pending(ssl) : 0;

	return n > 0 ? (size_t)n : 0;
}

static const struct node_transport tls = {
	.read = tls_read, .write = tls_write, .close = tls_close, .pending = tls_pending};

static long long now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * What kvinit checks the server's certificate against: the name it knows the server by (a DNS SAN, also sent as
 * SNI), or an address (an IP SAN). Not always what it connected to: cluster-init reaches REDIS_NODES names at the
 * addresses they resolved to, and verifies the names (node_conn_connect_as).
 */
static int expect_peer(SSL *ssl, const char *host)
{
	X509_VERIFY_PARAM *param = sym_SSL_get0_param(ssl);
	unsigned char addr[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1)
		return sym_X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : -EINVAL;
	sym_X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	/* SNI with a name only, as RFC 6066 says */
	if (sym_SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, (void *)host) != 1 ||
	    sym_X509_VERIFY_PARAM_set1_host(param, host, 0) != 1)
		return -EINVAL;
	return 0;
}

int node_conn_tls_peer_serial(struct node_conn *c, char *buf, size_t size)
{
	X509 *cert;
	BIGNUM *bn;
	char *hex;

	if (c->err || c->transport != &tls)
		return -ENOTCONN;
	cert = sym_SSL_get1_peer_certificate(c->transport_data);
	bn = cert ? sym_ASN1_INTEGER_to_BN(sym_X509_get_serialNumber(cert), NULL) : NULL;
	hex = bn ? sym_BN_bn2hex(bn) : NULL;
	sym_BN_free(bn);
	sym_X509_free(cert);
	sym_ERR_clear_error();
	if (!hex)
		return cert ? -ENOMEM : -ENOENT;
	(void)snprintf(buf, size, "%s", hex);
	sym_CRYPTO_free(hex, OPENSSL_FILE, OPENSSL_LINE);
	return 0;
}

/* The failed handshake in c, in words that name the cause (and the name the certificate was checked against). */
static void handshake_failed(struct node_conn *c, SSL *ssl, int n, int saved, const char *verify_name)
{
	long verify = sym_SSL_get_verify_result(ssl);
	int kind = sym_SSL_get_error(ssl, n);

	if (verify != X509_V_OK) {
		sym_ERR_clear_error();
		tls_fail(c, EKEYREJECTED, "TLS: the server's certificate is refused: %s (checked against '%s')",
			 sym_X509_verify_cert_error_string(verify), verify_name);
	} else if (kind == SSL_ERROR_SYSCALL || kind == SSL_ERROR_ZERO_RETURN) {
		sym_ERR_clear_error();
		tls_fail(c, saved ? saved : ECONNRESET, "TLS handshake: %s",
			 saved ? strerror(saved) : "the server closed the connection (is it a TLS port?)");
	} else {
		tls_fail(c, EPROTO, "TLS handshake: %s", ssl_reason("protocol error"));
	}
}

/* The handshake on c's connected socket, non-blocking, within timeout; on failure c->err says why. */
void node_conn_tls_start(struct node_conn *c, const char *verify_name, struct timeval timeout)
{
	long long deadline = now_ms() + (long long)timeout.tv_sec * 1000 + timeout.tv_usec / 1000;
	SSL *ssl;
	BIO *bio;
	int flags, n;

	sym_ERR_clear_error();
	ssl = sym_SSL_new(client_ctx);
	bio = ssl ? sym_BIO_new(socket_method) : NULL;
	if (!bio) {
		sym_SSL_free(ssl);
		tls_fail(c, ENOMEM, "TLS: out of memory");
		return;
	}
	(void)sym_BIO_int_ctrl(bio, BIO_C_SET_FD, BIO_NOCLOSE, c->fd);
	sym_SSL_set_bio(ssl, bio, bio);
	c->transport = &tls;
	c->transport_data = ssl;
	if (expect_peer(ssl, verify_name) < 0) {
		tls_fail(c, EINVAL, "TLS: '%s' cannot be checked against a certificate", verify_name);
		return;
	}
	flags = fcntl(c->fd, F_GETFL);
	if (flags < 0 || fcntl(c->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
		tls_fail(c, errno, "fcntl: %s", strerror(errno));
		return;
	}
	for (;;) {
		struct pollfd p = {.fd = c->fd};
		long long left;
		int kind;

		sym_ERR_clear_error();
		errno = 0;
		n = sym_SSL_connect(ssl);
		if (n == 1)
			break;
		kind = sym_SSL_get_error(ssl, n);
		if (kind != SSL_ERROR_WANT_READ && kind != SSL_ERROR_WANT_WRITE) {
			handshake_failed(c, ssl, n, errno, verify_name);
			return;
		}
		p.events = kind == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		left = deadline - now_ms();
		n = left > 0 ? poll(&p, 1, (int)(left > 3600000 ? 3600000 : left)) : 0;
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			tls_fail(c, n == 0 ? ETIMEDOUT : errno, "TLS handshake: %s",
				 n == 0 ? "no answer within the connect timeout" : strerror(errno));
			return;
		}
	}
	if (fcntl(c->fd, F_SETFL, flags) < 0)
		tls_fail(c, errno, "fcntl: %s", strerror(errno));
}
