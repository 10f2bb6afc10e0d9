/* SPDX-License-Identifier: MIT */
/*
 * Connections to servers: a TCP socket of our own, a transport over it (plain here; TLS in conn_tls.c),
 * and hiredis's reader and formatter for the protocol. Blocking, with SO_SNDTIMEO/SO_RCVTIMEO for the command
 * timeout, like hiredis's own blocking contexts.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

#define READ_CHUNK 16384

void node_conn_fail(struct node_conn *c, int kind, const char *what)
{
	int saved = errno;

	if (c->err)
		return;
	c->err = kind;
	c->sys_errno = kind == REDIS_ERR_IO ? saved : 0;
	if (kind == REDIS_ERR_IO && saved)
		(void)snprintf(c->errstr, sizeof(c->errstr), "%s: %s", what, strerror(saved));
	else
		(void)snprintf(c->errstr, sizeof(c->errstr), "%s", what);
	errno = saved;
}

/* ---- the plain transport ---- */

static ssize_t plain_read(struct node_conn *c, void *buf, size_t len)
{
	ssize_t n;

	do
		n = recv(c->fd, buf, len, 0);
	while (n < 0 && errno == EINTR);
	return n;
}

static ssize_t plain_write(struct node_conn *c, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(c->fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n;
}

static void plain_close(struct node_conn *c)
{
	(void)c;
}

static size_t plain_pending(const struct node_conn *c)
{
	(void)c;
	return 0;
}

static const struct node_transport plain = {
	.read = plain_read, .write = plain_write, .close = plain_close, .pending = plain_pending};

bool node_conn_buffered(const struct node_conn *c)
{
	return !c->err && c->transport->pending(c) > 0;
}

/* ---- connecting ---- */

static int timeval_ms(struct timeval tv)
{
	long long ms = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;

	return ms <= 0 ? 1 : ms > 3600000 ? 3600000 : (int)ms;
}

/* A non-blocking connect that waits at most timeout for the handshake: 0, or -1 with errno (ETIMEDOUT). */
static int connect_within(int fd, const struct sockaddr *addr, socklen_t len, struct timeval timeout)
{
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	socklen_t optlen = sizeof(int);
	int flags, soerr = 0, r;

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	if (connect(fd, addr, len) < 0) {
		if (errno != EINPROGRESS)
			return -1;
		do
			r = poll(&p, 1, timeval_ms(timeout));
		while (r < 0 && errno == EINTR);
		if (r == 0)
			errno = ETIMEDOUT;
		if (r <= 0)
			return -1;
		if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &optlen) < 0)
			return -1;
		if (soerr) {
			errno = soerr;
			return -1;
		}
	}
	return fcntl(fd, F_SETFL, flags);
}

int node_conn_set_timeout(struct node_conn *c, struct timeval timeout)
{
	if (setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout)) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) < 0) {
		node_conn_fail(c, REDIS_ERR_IO, "setsockopt");
		return REDIS_ERR;
	}
	return REDIS_OK;
}

/* Tries each address host resolves to, in order, until one connects. */
static void open_socket(struct node_conn *c, const char *host, unsigned port, struct timeval timeout)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
	char service[8];
	int one = 1, r;

	(void)snprintf(service, sizeof(service), "%u", port);
	r = getaddrinfo(host, service, &hints, &res);
	if (r != 0) {
		errno = r == EAI_SYSTEM ? errno : EHOSTUNREACH;
		node_conn_fail(c, REDIS_ERR_OTHER, gai_strerror(r));
		return;
	}
	for (const struct addrinfo *a = res; a; a = a->ai_next) {
		if (c->fd >= 0)
			(void)close(c->fd);
		c->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
		if (c->fd >= 0 && connect_within(c->fd, a->ai_addr, a->ai_addrlen, timeout) == 0)
			break;
		if (!a->ai_next)
			node_conn_fail(c, REDIS_ERR_IO, "connect");
	}
	freeaddrinfo(res);
	if (c->err)
		return;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	(void)node_conn_set_timeout(c, timeout);
}

struct node_conn *node_conn_connect(const char *host, unsigned port, struct timeval timeout)
{
	return node_conn_connect_as(host, port, host, timeout);
}

struct node_conn *node_conn_connect_as(const char *host, unsigned port, const char *verify_name, struct timeval timeout)
{
	struct node_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = -1;
	c->transport = &plain;
	c->reader = redisReaderCreate();
	if (!c->reader) {
		free(c);
		return NULL;
	}
	open_socket(c, host, port, timeout);
	if (!c->err && node_conn_tls_on())
		node_conn_tls_start(c, verify_name, timeout);
	return c;
}

void node_conn_free(struct node_conn *c)
{
	if (!c)
		return;
	c->transport->close(c);
	if (c->fd >= 0)
		(void)close(c->fd);
	redisReaderFree(c->reader);
	free(c->obuf);
	free(c);
}

/* ---- the protocol over the transport ---- */

static int append(struct node_conn *c, char *cmd, int len)
{
	char *grown;

	if (len < 0) {
		node_conn_fail(c, REDIS_ERR_OOM, "out of memory");
		return REDIS_ERR;
	}
	grown = realloc(c->obuf, c->olen + (size_t)len);
	if (!grown) {
		redisFreeCommand(cmd);
		node_conn_fail(c, REDIS_ERR_OOM, "out of memory");
		return REDIS_ERR;
	}
	memcpy(grown + c->olen, cmd, (size_t)len);
	c->obuf = grown;
	c->olen += (size_t)len;
	redisFreeCommand(cmd);
	return REDIS_OK;
}

int node_append_argv(struct node_conn *c, int argc, const char **argv, const size_t *argvlen)
{
	char *cmd = NULL;
	int len;

	if (c->err)
		return REDIS_ERR;
	len = redisFormatCommandArgv(&cmd, argc, argv, argvlen);
	return append(c, cmd, len);
}

static int flush(struct node_conn *c)
{
	size_t done = 0;

	while (done < c->olen) {
		ssize_t n = c->transport->write(c, c->obuf + done, c->olen - done);

		if (n <= 0) {
			node_conn_fail(c, REDIS_ERR_IO, "write");
			return REDIS_ERR;
		}
		done += (size_t)n;
	}
	free(c->obuf);
	c->obuf = NULL;
	c->olen = 0;
	return REDIS_OK;
}

int node_flush(struct node_conn *c)
{
	return c->err ? REDIS_ERR : flush(c);
}

int node_get_reply(struct node_conn *c, void **reply)
{
	char buf[READ_CHUNK];
	void *rep = NULL;

	*reply = NULL;
	if (c->err || flush(c) != REDIS_OK)
		return REDIS_ERR;
	for (;;) {
		ssize_t n;

		if (redisReaderGetReply(c->reader, &rep) != REDIS_OK) {
			node_conn_fail(c, REDIS_ERR_PROTOCOL, c->reader->errstr);
			return REDIS_ERR;
		}
		if (rep) {
			*reply = rep;
			return REDIS_OK;
		}
		n = c->transport->read(c, buf, sizeof(buf));
		if (n == 0) {
			node_conn_fail(c, REDIS_ERR_EOF, "Server closed the connection");
			return REDIS_ERR;
		}
		if (n < 0) {
			node_conn_fail(c, REDIS_ERR_IO, "read");
			return REDIS_ERR;
		}
		if (redisReaderFeed(c->reader, buf, (size_t)n) != REDIS_OK) {
			node_conn_fail(c, REDIS_ERR_OOM, "out of memory");
			return REDIS_ERR;
		}
	}
}

static void *roundtrip(struct node_conn *c)
{
	void *reply = NULL;

	return node_get_reply(c, &reply) == REDIS_OK ? reply : NULL;
}

void *node_command_argv(struct node_conn *c, int argc, const char **argv, const size_t *argvlen)
{
	return node_append_argv(c, argc, argv, argvlen) == REDIS_OK ? roundtrip(c) : NULL;
}

void *node_command(struct node_conn *c, const char *format, ...)
{
	char *cmd = NULL;
	va_list ap;
	int len;

	if (c->err)
		return NULL;
	va_start(ap, format);
	len = redisvFormatCommand(&cmd, format, ap);
	va_end(ap);
	return append(c, cmd, len) == REDIS_OK ? roundtrip(c) : NULL;
}
