/* SPDX-License-Identifier: MIT */
/*
 * Certificate rotation, for a node (runtime.c) and a Sentinel (sentinel.c) alike. In kvinit's loop (struct
 * node_tls_rotation): the watch on the certificate, key, CA file and CA directory, the check of a new set as at
 * start, the staging of a CA change, one set given at a time (a newer one goes next), the lines that say so, the
 * daily look at the certificate's end. How a set is given is the owner's (node_tls_rotation_ops.apply): a node's
 * server takes it live, by CONFIG SET in a helper process (node_tls_rotation_apply); a Sentinel has no CONFIG SET
 * (Redis 7.0 to 8.0, Valkey 8.0 to 9.1 alike), so it is restarted and reads the files at its start. Either way a
 * handshake of kvinit's own confirms the new serial is served (node_tls_rotation_confirm).
 *
 * CONFIG SET of the TLS file options makes Redis (7.0+) and Valkey read the files again, even when the paths are the
 * ones they had: these options are "volatile" (config.c: applied whatever the old value, applyTlsCfg builds a new
 * SSL_CTX with tlsConfigure). A set the server cannot load is refused by CONFIG SET and the old context stays.
 * Connections opened before keep their session; new ones get the new certificate, which a handshake of kvinit's own
 * confirms by its serial.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
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

/*
 * Handshakes with host:port (checked against its name, as every connection of kvinit's) until it serves the
 * certificate with serial want, for up to timeout_ms; who prefixes the address in the one error line ("" or "the
 * restarted Sentinel "). 0, or -ETIMEDOUT after that line.
 */
static int wait_serial(const char *host, unsigned port, const char *want, unsigned timeout_ms, const char *who)
{
	uint64_t until = init_now_usec() + (uint64_t)timeout_ms * USEC_PER_MSEC;
	char got[96] = "", why[256] = "no handshake yet";
	int r;

	for (;;) {
		r = served_serial(host, port, got, sizeof(got), why, sizeof(why));
		if (r == 0 && strcmp(got, want) == 0)
			return 0;
		if (init_now_usec() >= until)
			break;
		init_sleep_ms(50);
	}
	if (r == 0)
		log_error("certificate rotation: %s%s:%u serves the certificate with serial '%s' %u ms after it was "
			  "given the new one, not '%s'",
			  who, host, port, got, timeout_ms, want);
	else
		log_error("certificate rotation: no handshake with %s%s:%u within %u ms of it being given the new "
			  "certificate: %s",
			  who, host, port, timeout_ms, why);
	return -ETIMEDOUT;
}

/* ---- in kvinit's loop: the watch on the files, the check of a new set, the staging of a CA change ---- */

#define CA_MAX ((size_t)16 << 20)

struct node_tls_rotation {
	struct node_setup *setup; /* its tls is what the server serves */
	const struct node_options *o;
	struct init_loop *loop;
	struct node_tls_rotation_ops ops;
	struct secrets_watch *watch; /* the certificate, key, CA file and CA directory */
	struct init_timer expiry;    /* a daily look at the certificate's end */
	/*
	 * One set goes to the server at a time: pending is the newest checked one, giving the one the owner gives now
	 * (busy) or gave last; a set checked while busy goes next (again). Each with whether the server trusts the
	 * staged CA bundle with it, and when its files were seen.
	 */
	struct node_tls_info pending, giving;
	bool pending_staged, giving_staged;
	uint64_t pending_usec, giving_usec;
	bool busy, again;
	/*
	 * A CA change is staged: the server and kvinit trust the old and the new CA (the bundle, beside the rendered
	 * config or where the owner says) for KVINIT_ROTATION_GRACE, so that peers with certificates of either keep
	 * talking, then the new CA alone. The CA is the CA file and the certificates of the CA directory together.
	 */
	char *ca_now, *ca_old; /* the CA as last applied, and the CA(s) it replaced (staged) */
	size_t ca_now_len, ca_old_len;
	char ca_bundle[PATH_MAX];   /* the bundle's path */
	bool staged;		    /* a CA change is staged: the bundle is the CA file checked and given */
	struct init_timer ca_grace; /* the end of the staging */
	bool stopping;
};

/* The CA file a set is given with: the bundle while a CA change is staged, else NULL (REDIS_TLS_CA_FILE's). */
static const char *ca_file(const struct node_tls_rotation *t, bool staged)
{
	return staged ? t->ca_bundle : NULL;
}

/* Once a day, a certificate that expires within a week is said again (setup.c said it at start). */
static void on_expiry(struct init_loop *loop, void *userdata)
{
	struct node_tls_rotation *t = userdata;

	(void)node_tls_warn_expiry(t->o->tls_cert_file, &t->setup->tls, time(NULL));
	init_timer_arm(loop, &t->expiry, init_now_usec() + NODE_TLS_EXPIRY_CHECK_USEC);
}

/* Appends the whole file at path (CA certificates: public) to *buf; -errno when it cannot be read. */
static int append_file(const char *path, char **buf, size_t *len, size_t *size)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	char *grown;
	ssize_t n;

	if (fd < 0)
		return -errno;
	for (;;) {
		if (*len == *size) {
			*size = *size ? 2 * *size : 16384;
			grown = *size <= CA_MAX ? realloc(*buf, *size) : NULL;
			if (!grown)
				return -ENOMEM;
			*buf = grown;
		}
		n = read(fd, *buf + *len, *size - *len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return 0;
		*len += (size_t)n;
	}
}

/* The names OpenSSL looks a CA up by in a directory: "<8 hex digits>.<n>" (openssl rehash), not CRLs (".r<n>"). */
static int ca_dir_entry(const struct dirent *d)
{
	const char *s = d->d_name;
	size_t hex = strspn(s, "0123456789abcdef");

	return hex == 8 && s[8] == '.' && s[9] && strspn(s + 9, "0123456789") == strlen(s + 9);
}

/*
 * The CA now: the CA file, then the certificates of the CA directory in the order of their names, malloc'd
 * (NULL when the CA file cannot be read; an entry of the directory that cannot be read is left out).
 */
static char *read_ca(const struct node_options *o, size_t *ret_len)
{
	struct dirent **list = NULL;
	char *buf = NULL;
	size_t len = 0, size = 0;
	bool oom = false;
	int n;

	if (*o->tls_ca_file && append_file(o->tls_ca_file, &buf, &len, &size) < 0) {
		free(buf);
		return NULL;
	}
	n = *o->tls_ca_dir ? scandir(o->tls_ca_dir, &list, ca_dir_entry, alphasort) : 0;
	for (int i = 0; i < n; i++) {
		char path[PATH_MAX];

		(void)snprintf(path, sizeof(path), "%s/%s", o->tls_ca_dir, list[i]->d_name);
		if (!oom && append_file(path, &buf, &len, &size) == -ENOMEM)
			oom = true;
		free(list[i]);
	}
	free(list);
	if (oom) {
		free(buf);
		return NULL;
	}
	if (!buf)
		buf = calloc(1, 1);
	if (buf)
		*ret_len = len;
	return buf;
}

/*
 * The CA now differs from what was applied: the new CA and the ones it replaces go to the server and to kvinit
 * together, in the bundle (CA certificates are public: 0644, the server user reads it),
 * given as the CA file beside the CA directory. Returns 1 when a change is staged now, 0 when the CA did not
 * change, -errno when the bundle cannot be written.
 */
static int stage_ca(struct node_tls_rotation *t)
{
	_cleanup_free_ char *ca = NULL, *bundle = NULL;
	char *old;
	struct init_error err;
	size_t len = 0, old_len;
	int r;

	if (!*t->o->tls_ca_file && !*t->o->tls_ca_dir)
		return 0;
	ca = read_ca(t->o, &len);
	if (!ca || !t->ca_now || (len == t->ca_now_len && memcmp(ca, t->ca_now, len) == 0))
		return 0;
	/* the replaced CA(s): the one applied, and those still staged before it */
	old_len = t->ca_now_len + t->ca_old_len;
	old = malloc(old_len + 1);
	bundle = malloc(len + 1 + old_len);
	if (!old || !bundle) {
		free(old);
		return -ENOMEM;
	}
	memcpy(old, t->ca_now, t->ca_now_len);
	if (t->ca_old)
		memcpy(old + t->ca_now_len, t->ca_old, t->ca_old_len);
	memcpy(bundle, ca, len);
	bundle[len] = '\n';
	memcpy(bundle + len + 1, old, old_len);
	r = init_write_file_atomic(t->ca_bundle, bundle, len + 1 + old_len, 0644, geteuid(), getegid(), &err);
	if (r < 0) {
		log_error("certificate rotation: cannot stage the CA change in '%s': %s", t->ca_bundle, err.msg);
		t->staged = false;
		free(old);
		return r;
	}
	t->staged = true;
	free(t->ca_old);
	t->ca_old = old;
	t->ca_old_len = old_len;
	free(t->ca_now);
	t->ca_now = ca;
	t->ca_now_len = len;
	ca = NULL;
	return 1;
}

/* The newest checked set goes to the server now, or once the one given now is done (its owner is told it is stale). */
static void give(struct node_tls_rotation *t)
{
	if (t->busy) {
		t->again = true;
		if (t->ops.cancel)
			t->ops.cancel(t->ops.userdata);
		return;
	}
	t->busy = true;
	t->giving = t->pending;
	t->giving_staged = t->pending_staged;
	t->giving_usec = t->pending_usec;
	t->ops.apply(t->ops.userdata);
}

/*
 * The certificate, key, CA file or a certificate of the CA directory changed (read twice the same): the set is
 * checked as at start (against the old and the new CA while a CA change is staged), and a set that works goes to
 * the server. A set that does not (a certificate whose key is not written yet, another CA) is said loudly and left
 * alone: the server keeps what it has until the files are whole.
 */
static void on_files_changed(void *userdata)
{
	struct node_tls_rotation *t = userdata;
	struct node_tls_info info;
	struct init_error err;
	int staged;

	if (t->stopping)
		return;
	staged = stage_ca(t);
	if (t->ops.check(t->setup, ca_file(t, t->staged), &info, &err) < 0) {
		log_error("certificate rotation: the TLS files changed but are not a set that works: %s; %s keeps "
			  "serving the certificate with serial '%s' until they are",
			  err.msg, t->ops.server, t->setup->tls.serial);
		return;
	}
	if (staged > 0)
		log_info("certificate rotation: the CA changed: %s and kvinit trust the old and the new CA for "
			 "KVINIT_ROTATION_GRACE ('%s'), then the new one alone",
			 t->ops.server, t->ca_bundle);
	log_info("certificate rotation: the TLS files changed: %s the certificate with serial '%s' (serving '%s'%s)",
		 t->ops.giving, info.serial, t->setup->tls.serial, t->ops.note);
	t->pending = info;
	t->pending_staged = t->staged;
	t->pending_usec = init_now_usec();
	if (t->staged)
		init_timer_arm(t->loop, &t->ca_grace, init_now_usec() + (uint64_t)t->o->rotation_grace * USEC_PER_MSEC);
	give(t);
}

/* The end of a staged CA change: the new CA alone, once the certificate chains to it. */
static void on_ca_grace(struct init_loop *loop, void *userdata)
{
	struct node_tls_rotation *t = userdata;
	struct node_tls_info info;
	struct init_error err;

	if (t->stopping || !t->staged)
		return;
	if (t->ops.check(t->setup, NULL, &info, &err) < 0) {
		log_warn("certificate rotation: %s; the old CA stays trusted for another KVINIT_ROTATION_GRACE",
			 err.msg);
		init_timer_arm(loop, &t->ca_grace, init_now_usec() + (uint64_t)t->o->rotation_grace * USEC_PER_MSEC);
		return;
	}
	log_info("certificate rotation: the staged CA change ends: %s and kvinit trust the new CA alone",
		 t->ops.server);
	t->staged = false;
	free(t->ca_old);
	t->ca_old = NULL;
	t->ca_old_len = 0;
	t->pending = info;
	t->pending_staged = false;
	t->pending_usec = init_now_usec();
	give(t);
}

int node_tls_rotation_new(struct node_setup *s, struct init_loop *loop, const struct node_tls_rotation_ops *ops,
			  struct node_tls_rotation **ret)
{
	const struct node_options *o = &s->c->opt;
	struct node_tls_rotation *t;
	const char *paths[4];
	char dir[PATH_MAX];
	size_t n = 0;
	int r;

	if (!o->tls_enabled) {
		*ret = NULL;
		return 0;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return -ENOMEM;
	*t = (struct node_tls_rotation){
		.setup = s,
		.o = o,
		.loop = loop,
		.ops = *ops,
		.expiry = {.fn = on_expiry, .userdata = t},
		.ca_grace = {.fn = on_ca_grace, .userdata = t},
	};
	(void)snprintf(dir, sizeof(dir), "%s", o->rendered_config);
	(void)snprintf(t->ca_bundle, sizeof(t->ca_bundle), "%s/tls-ca-staged.pem",
		       ops->ca_bundle_dir ? ops->ca_bundle_dir : dirname(dir));
	paths[n++] = o->tls_cert_file;
	paths[n++] = o->tls_key_file;
	if (*o->tls_ca_file)
		paths[n++] = o->tls_ca_file;
	/* a new CA in the directory is staged like a new CA file (the server would find it by hash, but not stage) */
	if (*o->tls_ca_dir)
		paths[n++] = o->tls_ca_dir;
	if (*o->tls_ca_file || *o->tls_ca_dir)
		t->ca_now = read_ca(o, &t->ca_now_len);
	init_timer_arm(loop, &t->expiry, init_now_usec() + NODE_TLS_EXPIRY_CHECK_USEC);
	r = secrets_watch_files(loop, paths, n, NODE_TLS_FILE_MAX, SECRETS_WATCH_FROM_NOW,
				(uint64_t)o->secret_poll * USEC_PER_MSEC, on_files_changed, t, &t->watch);
	if (r < 0)
		log_error("cannot watch the TLS files: %s; new certificates need a restart", strerror(-r));
	*ret = t;
	return 0;
}

const char *node_tls_rotation_ca_file(const struct node_tls_rotation *t)
{
	return t ? ca_file(t, t->giving_staged) : NULL;
}

/* The set given is served: it is what the server has, and kvinit's own connections take its files too. */
static void applied(struct node_tls_rotation *t)
{
	char old[sizeof(t->setup->tls.serial)], ends[64];
	struct init_error err;

	(void)snprintf(old, sizeof(old), "%s", t->setup->tls.serial);
	t->setup->tls = t->giving;
	if (node_tls_client_setup(t->o, ca_file(t, t->giving_staged), &err) < 0)
		log_error("certificate rotation: kvinit's own connections keep the old files: %s, ignoring", err.msg);
	node_tls_format_time(t->setup->tls.not_after, ends, sizeof(ends));
	log_info("certificate rotation applied: %s serves serial '%s' (was '%s', valid until '%s'), %llu ms after the "
		 "files changed",
		 t->ops.server, t->setup->tls.serial, old, ends,
		 (unsigned long long)((init_now_usec() - t->giving_usec) / USEC_PER_MSEC));
	(void)node_tls_warn_expiry(t->o->tls_cert_file, &t->setup->tls, time(NULL));
}

void node_tls_rotation_done(struct node_tls_rotation *t, bool ok)
{
	if (!t)
		return;
	t->busy = false;
	if (t->stopping)
		return;
	if (ok)
		applied(t);
	else if (!t->again)
		log_error("certificate rotation failed: see the lines above");
	if (t->again) {
		t->again = false;
		give(t);
	}
}

void node_tls_rotation_stop(struct node_tls_rotation *t)
{
	if (t)
		t->stopping = true;
}

void node_tls_rotation_free(struct node_tls_rotation *t)
{
	if (!t)
		return;
	secrets_watch_free(t->watch);
	free(t->ca_now);
	free(t->ca_old);
	free(t);
}

/* ---- in a helper process: giving the server the set, confirming it serves it ---- */

int node_tls_rotation_confirm(const struct node_tls_rotation *t, const char *host, unsigned port, unsigned timeout_ms,
			      const char *who)
{
	struct init_error err;
	int r;

	/* from here this process trusts the CA and presents the certificate of the set given, as the server does */
	r = node_tls_client_setup(t->o, ca_file(t, t->giving_staged), &err);
	if (r < 0) {
		log_error("certificate rotation: %s", err.msg);
		return r;
	}
	return wait_serial(host, port, t->giving.serial, timeout_ms, who);
}

int node_tls_rotation_apply(const struct node_tls_rotation *t, const struct secrets_value *pw)
{
	const struct node_options *o = t->o;
	const char *ca = ca_file(t, t->giving_staged), *argv[14];
	unsigned port = node_client_port(o);
	struct init_error err;
	struct node_conn *ctx = NULL;
	redisReply *rep;
	char host[64];
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
	if (ca || *o->tls_ca_file) {
		argv[argc++] = "tls-ca-cert-file";
		argv[argc++] = ca ? ca : o->tls_ca_file;
	}
	if (!ca && !*o->tls_ca_file && *o->tls_ca_dir) {
		/* the end of a CA change staged in a bundle: the directory alone again */
		argv[argc++] = "tls-ca-cert-file";
		argv[argc++] = "";
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
	return node_tls_rotation_confirm(t, host, port, CONFIRM_MS, "");
}
