/* SPDX-License-Identifier: MIT */
/*
 * Certificate rotation without a restart, the part that talks to the server (runtime.c watches the files and checks
 * a new set with node_tls_check first; this runs in a helper process beside the server).
 *
 * CONFIG SET of the TLS file options makes Redis (7.0+) and Valkey read the files again, even when the paths are the
 * ones they had: these options are "volatile" (config.c: applied whatever the old value, applyTlsCfg builds a new
 * SSL_CTX with tlsConfigure). A set the server cannot load is refused by CONFIG SET and the old context stays.
 * Connections opened before keep their session; new ones get the new certificate, which a handshake of kvinit's own
 * confirms by its serial.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cluster.h"
#include "node.h"

#define CONFIRM_MS 2000

/* The serial the server at host:port presents now, into buf; -errno with why. */
static int served_serial(const char *host, unsigned port, char *buf, size_t size, char *why, size_t why_size)
{
	char name[CLUSTER_HOST_MAX];
	struct node_conn *c;
	int r;

	cluster_tls_name(host, port, name, sizeof(name));
	c = node_conn_connect_as(host, port, name, (struct timeval){.tv_sec = 1});
	if (!c)
		return -ENOMEM;
	if (c->err) {
		(void)snprintf(why, why_size, "%s", c->errstr);
		node_conn_free(c);
		return -ECONNREFUSED;
	}
	r = node_conn_tls_peer_serial(c, buf, size);
	if (r < 0)
		(void)snprintf(why, why_size, "no certificate: %s", strerror(-r));
	node_conn_free(c);
	return r;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int node_tls_rotate_apply(const struct node_options *o, const struct secrets_value *pw, const char *ca_file,
			  const char *want_serial)
{
	const char *argv[12];
	unsigned port = node_client_port(o);
	uint64_t until;
	struct init_error err;
	struct node_conn *ctx = NULL;
	redisReply *rep;
	char host[64], got[96] = "", why[256] = "";
	int argc = 0, r;

	node_probe_host(o->bind, host, sizeof(host));
	/* the server serves the old certificate until it has the new one: this process still has the old files */
	r = cluster_connect(host, port, pw, 2000, &ctx, &err);
	if (r < 0) {
		log_error("certificate rotation: %s; the server keeps the certificate it has", err.msg);
		return r;
	}
	argv[argc++] = "CONFIG";
	argv[argc++] = "SET";
	argv[argc++] = "tls-cert-file";
	argv[argc++] = o->tls_cert_file;
	argv[argc++] = "tls-key-file";
	argv[argc++] = o->tls_key_file;
	if (*o->tls_key_file_pass) {
		argv[argc++] = "tls-key-file-pass";
		argv[argc++] = o->tls_key_file_pass;
	}
	if (ca_file || *o->tls_ca_file) {
		argv[argc++] = "tls-ca-cert-file";
		argv[argc++] = ca_file ? ca_file : o->tls_ca_file;
	}
	if (*o->tls_ca_dir) {
		argv[argc++] = "tls-ca-cert-dir";
		argv[argc++] = o->tls_ca_dir;
	}
	rep = node_command_argv(ctx, argc, argv, NULL);
	if (!rep || rep->type == REDIS_REPLY_ERROR) {
		log_error("certificate rotation: %s:%u refused CONFIG SET of the new TLS files: %s; it keeps the "
			  "certificate it has",
			  host, port, rep ? rep->str : ctx->errstr);
		freeReplyObject(rep);
		node_conn_free(ctx);
		return -EREMOTEIO;
	}
	freeReplyObject(rep);
	node_conn_free(ctx);

	/* from here this process trusts the new CA and presents the new certificate, as the server does */
	r = node_tls_client_setup(o, ca_file, &err);
	if (r < 0) {
		log_error("certificate rotation: %s", err.msg);
		return r;
	}
	until = init_now_usec() + CONFIRM_MS * USEC_PER_MSEC;
	for (;;) {
		r = served_serial(host, port, got, sizeof(got), why, sizeof(why));
		if (r == 0 && strcmp(got, want_serial) == 0)
			return 0;
		if (init_now_usec() >= until)
			break;
		sleep_ms(50);
	}
	if (r == 0)
		log_error(
			"certificate rotation: %s:%u serves the certificate with serial '%s' %d ms after it was given "
			"the new one, not '%s'",
			host, port, got, CONFIRM_MS, want_serial);
	else
		log_error("certificate rotation: no handshake with %s:%u after it was given the new certificate: %s",
			  host, port, why);
	return -ETIMEDOUT;
}
