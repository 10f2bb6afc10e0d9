/* SPDX-License-Identifier: MIT */
/*
 * node/conn.c: kvinit's connections to servers. hiredis does the protocol (formatting commands, parsing replies);
 * this module owns the socket and the transport under it, so a connection can be plain TCP or TLS (Debian 12's
 * hiredis 0.14.1 has no TLS). The calls mirror hiredis's blocking API, and a failed connection keeps hiredis's
 * c->err / c->errstr convention: after the first I/O, EOF, protocol or memory failure the connection is unusable,
 * every later call fails at once, and errno holds the system error of an I/O failure.
 */
#ifndef KVINIT_NODE_CONN_H
#define KVINIT_NODE_CONN_H

#include <hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

struct node_conn;

/* The transport under the protocol: plain TCP, or TLS over it. Each returns bytes moved or -1 with errno set. */
struct node_transport {
	ssize_t (*read)(struct node_conn *c, void *buf, size_t len);
	ssize_t (*write)(struct node_conn *c, const void *buf, size_t len);
	void (*close)(struct node_conn *c); /* frees transport state; the socket is closed by node_conn_free */
	/* bytes the transport holds that a read returns without the socket (TLS records already decrypted) */
	size_t (*pending)(const struct node_conn *c);
};

struct node_conn {
	int err;	  /* 0, or the REDIS_ERR_* kind of the failure that made the connection unusable */
	char errstr[128]; /* that failure in words */
	int fd;		  /* the TCP socket, blocking, with send and receive timeouts */
	int sys_errno;	  /* the errno of an I/O failure (a receive timeout is EAGAIN) */
	redisReader *reader;
	const struct node_transport *transport;
	void *transport_data; /* the transport's own state (the TLS session) */
	char *obuf;	      /* formatted commands not sent yet */
	size_t olen;
};

/*
 * Connects to host:port (an address or a name) within timeout (also the send and receive timeout of every command
 * afterwards). Returns NULL only when out of memory; otherwise check c->err.
 */
struct node_conn *node_conn_connect(const char *host, unsigned port, struct timeval timeout);
/*
 * node_conn_connect to host (an address, or a name) whose TLS certificate is checked against verify_name instead:
 * a name needs a DNS SAN for it and is sent as SNI, an IP address an IP SAN, as when connecting to it. For peers
 * reached at an address that certificates made before the containers started cannot name (cluster_tls_name).
 */
struct node_conn *node_conn_connect_as(const char *host, unsigned port, const char *verify_name,
				       struct timeval timeout);
int node_conn_set_timeout(struct node_conn *c, struct timeval timeout);
void node_conn_free(struct node_conn *c);

/* hiredis's redisCommand / redisCommandArgv: the reply (the caller frees it with freeReplyObject), or NULL. */
void *node_command(struct node_conn *c, const char *format, ...); /* hiredis formats: %s, %b (pointer, length) */
void *node_command_argv(struct node_conn *c, int argc, const char **argv, const size_t *argvlen);
/* Pipelining: queue commands, then read their replies in order (REDIS_OK / REDIS_ERR like redisGetReply). */
int node_append_argv(struct node_conn *c, int argc, const char **argv, const size_t *argvlen);
int node_get_reply(struct node_conn *c, void **reply);
/* Sends the queued commands without waiting for their replies (REDIS_OK / REDIS_ERR). */
int node_flush(struct node_conn *c);
/* Whether a reply may be read without the socket becoming readable: callers that poll() the fd must look first. */
bool node_conn_buffered(const struct node_conn *c);

/*
 * TLS for every connection of this process (conn_tls.c): the servers' certificates must chain to the CA (file or
 * directory) and cover the name or address connected to; the certificate and key (with its passphrase), when
 * given, are presented to servers that ask for a client certificate. Paths are read now (a rotation calls it again
 * with the new files; connections already open keep what they had). 0, or -EINVAL (-ENOMEM) with one line in err.
 */
struct node_conn_tls {
	const char *ca_file, *ca_dir;
	const char *cert_file, *key_file, *key_pass;
};
struct init_error;
int node_conn_tls_init(const struct node_conn_tls *cfg, struct init_error *err);
/* Whether connections are TLS (node_conn_tls_init succeeded). */
bool node_conn_tls_on(void);
/* Plain connections again; frees the context. */
void node_conn_tls_reset(void);
/* The serial of the certificate the server presented on c, in hex as `openssl x509 -serial` prints it. 0 or -errno. */
int node_conn_tls_peer_serial(struct node_conn *c, char *buf, size_t size);
/*
 * For node_conn_connect: the handshake on c's connected socket within timeout, the server's certificate checked
 * against verify_name (c->err says why it failed).
 */
void node_conn_tls_start(struct node_conn *c, const char *verify_name, struct timeval timeout);

/* For transports: marks the connection failed (kind REDIS_ERR_*, errno saved for REDIS_ERR_IO). */
void node_conn_fail(struct node_conn *c, int kind, const char *what);

#endif
