/* SPDX-License-Identifier: MIT */
/*
 * sentinel.conf. Unlike the server's config, this file is the Sentinel's memory: it rewrites it whenever it learns
 * something (its id, the epochs, the current primary after a failover, the replicas and the other Sentinels it
 * found). So kvinit renders it once, and afterwards sets only its own lines, keeping every other line as the
 * Sentinel wrote it: a restarted Sentinel knows what it knew, and what the environment and the secrets say still
 * wins for what kvinit owns.
 *
 * Setting its own lines at every start also repairs what the Sentinel writes itself: it writes auth-pass and
 * sentinel-pass unquoted, so a password with a space or a quote makes the file unreadable at its next start
 * (and it comments an unreadable line out as "# ??? ..." with the password in it). Pure: text in, text out.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "node.h"

#define HEADER	       "# kvinit sets the lines up to the next comment at every start; the Sentinel owns the rest of the file."
#define FOOTER	       "# kvinit: the master set's own settings."
/* How the Sentinel comments out a line it cannot rewrite. */
#define UNKNOWN_PREFIX "# ??? "

/* Top-level directives kvinit renders. */
static const char *const owned_top[] = {
	"port",
	"bind",
	"dir",
	"daemonize",
	"supervised",
	"logfile",
	"protected-mode",
	"requirepass",
	/* with REDIS_TLS_ENABLED; without it they go, so a Sentinel that had TLS speaks plain again */
	"tls-port",
	"tls-cert-file",
	"tls-key-file",
	"tls-key-file-pass",
	"tls-ca-cert-file",
	"tls-ca-cert-dir",
	"tls-dh-params-file",
	"tls-auth-clients",
	"tls-replication",
	NULL,
};
/* "sentinel <name> ..." lines of the Sentinel itself that kvinit renders. */
static const char *const owned_sentinel[] = {
	"announce-ip", "announce-port", "resolve-hostnames", "announce-hostnames", "sentinel-user", "sentinel-pass",
	NULL,
};
/* "sentinel <name> <set> ..." lines of the master set that kvinit renders. */
static const char *const owned_set[] = {
	"auth-pass", "auth-user", "down-after-milliseconds", "failover-timeout", NULL,
};

static bool in_list(const char *const *list, const char *word, size_t len)
{
	for (size_t i = 0; list[i]; i++)
		if (strlen(list[i]) == len && strncasecmp(list[i], word, len) == 0)
			return true;
	return false;
}

struct words {
	const char *w[6];
	size_t len[6];
	size_t n; /* up to 6 */
};

/* The first words of a line, split at blanks (the words kvinit looks at are plain: names and numbers). */
static void split_words(const char *line, size_t line_len, struct words *ret)
{
	const char *p = line, *end = line + line_len;

	*ret = (struct words){0};
	while (ret->n < 6) {
		while (p < end && isspace((unsigned char)*p))
			p++;
		if (p == end)
			break;
		ret->w[ret->n] = p;
		while (p < end && !isspace((unsigned char)*p))
			p++;
		ret->len[ret->n] = (size_t)(p - ret->w[ret->n]);
		ret->n++;
	}
}

static bool word_is(const struct words *w, size_t i, const char *s)
{
	return i < w->n && w->len[i] == strlen(s) && strncasecmp(w->w[i], s, w->len[i]) == 0;
}

enum line_kind { LINE_KEEP, LINE_OWNED, LINE_MONITOR };

static enum line_kind classify(const char *line, size_t len, const char *set)
{
	struct words w;

	/* kvinit's own comments, and lines the Sentinel commented out because it could not rewrite them */
	if ((len == strlen(HEADER) && strncmp(line, HEADER, len) == 0) ||
	    (len == strlen(FOOTER) && strncmp(line, FOOTER, len) == 0))
		return LINE_OWNED;
	if (len > strlen(UNKNOWN_PREFIX) && strncmp(line, UNKNOWN_PREFIX, strlen(UNKNOWN_PREFIX)) == 0) {
		line += strlen(UNKNOWN_PREFIX);
		len -= strlen(UNKNOWN_PREFIX);
		return classify(line, len, set) == LINE_KEEP ? LINE_KEEP : LINE_OWNED;
	}
	split_words(line, len, &w);
	if (!w.n || w.w[0][0] == '#')
		return LINE_KEEP;
	if (in_list(owned_top, w.w[0], w.len[0]))
		return LINE_OWNED;
	if (word_is(&w, 0, "user") && word_is(&w, 1, "default"))
		return LINE_OWNED;
	if (!word_is(&w, 0, "sentinel") || w.n < 2)
		return LINE_KEEP;
	if (in_list(owned_sentinel, w.w[1], w.len[1]))
		return LINE_OWNED;
	if (!word_is(&w, 2, set))
		return LINE_KEEP;
	if (in_list(owned_set, w.w[1], w.len[1]))
		return LINE_OWNED;
	/* the set's monitor line: kept for the primary it names, its quorum is kvinit's */
	return word_is(&w, 1, "monitor") && w.n == 6 ? LINE_MONITOR : LINE_KEEP;
}

/*
 * TLS on the Sentinel's one port (REDIS_SENTINEL_PORT_NUMBER), plain off: the nodes' rule for Bitnami's default of
 * one port. tls-replication makes the Sentinel speak TLS to what it talks to, the nodes and the other Sentinels
 * (each link of sentinel.c's), presenting its certificate where they ask for one.
 */
static void render_tls(FILE *f, const struct node_sentinel_conf_input *in)
{
	const struct node_options *o = in->opt;

	(void)fprintf(f, "tls-port %lld\n", (long long)o->sentinel_port);
	node_render_tls_files(f, o, in->redact);
	(void)fputs("tls-replication yes\n", f);
}

static void render_top(FILE *f, const struct node_sentinel_conf_input *in)
{
	const struct node_options *o = in->opt;

	(void)fputs(HEADER "\n", f);
	(void)fprintf(f, "port %lld\n", o->tls_enabled ? 0LL : (long long)o->sentinel_port);
	if (o->tls_enabled)
		render_tls(f, in);
	(void)fprintf(f, "bind %s\n", o->bind); /* validated: addresses and '*' only */
	node_render_directive(f, "dir", o->data_dir);
	(void)fputs("daemonize no\nsupervised no\nlogfile \"\"\n", f);
	/* every connection needs the password (or ALLOW_EMPTY_PASSWORD was chosen): protected mode adds nothing */
	(void)fputs("protected-mode no\n", f);
	/* as on the nodes: SHA-256 hashes, several during a rotation */
	(void)fputs("user default on", f);
	if (!in->n_hashes)
		(void)fputs(" nopass", f);
	for (size_t i = 0; i < in->n_hashes; i++)
		(void)fprintf(f, " #%s", in->redact ? "<redacted>" : in->pass_hashes[i]);
	(void)fputs(" ~* &* +@all\n", f);
	(void)fprintf(f, "sentinel resolve-hostnames %s\n", o->sentinel_resolve_hostnames ? "yes" : "no");
	(void)fprintf(f, "sentinel announce-hostnames %s\n", o->sentinel_announce_hostnames ? "yes" : "no");
	if (*o->sentinel_announce_ip)
		node_render_directive(f, "sentinel announce-ip", o->sentinel_announce_ip);
	if (o->sentinel_announce_port)
		(void)fprintf(f, "sentinel announce-port %lld\n", (long long)o->sentinel_announce_port);
	if (in->sentinel_pass)
		node_render_directive(f, "sentinel sentinel-pass", in->redact ? "<redacted>" : in->sentinel_pass);
}

static void render_monitor(FILE *f, const struct node_sentinel_conf_input *in, const char *host, size_t host_len,
			   const char *port, size_t port_len)
{
	(void)fprintf(f, "sentinel monitor %s %.*s %.*s %lld\n", in->opt->master_set, (int)host_len, host,
		      (int)port_len, port, (long long)in->opt->sentinel_quorum);
}

static void render_set(FILE *f, const struct node_sentinel_conf_input *in)
{
	const struct node_options *o = in->opt;
	char name[128];

	(void)fputs(FOOTER "\n", f);
	if (in->auth_pass) {
		(void)snprintf(name, sizeof(name), "sentinel auth-pass %s", o->master_set);
		node_render_directive(f, name, in->redact ? "<redacted>" : in->auth_pass);
	}
	(void)fprintf(f, "sentinel down-after-milliseconds %s %lld\n", o->master_set,
		      (long long)o->sentinel_down_after);
	(void)fprintf(f, "sentinel failover-timeout %s %lld\n", o->master_set, (long long)o->sentinel_failover_timeout);
}

int node_sentinel_conf(const char *old_text, const struct node_sentinel_conf_input *in, char **ret_text,
		       struct init_error *err)
{
	const struct node_options *o = in->opt;
	const char *p = old_text ? old_text : "";
	bool monitored = false;
	char *text = NULL, port[16];
	size_t len = 0;
	FILE *f;

	/* a first start must name the primary to monitor; later the file knows it */
	for (const char *q = p; *q && !monitored;) {
		size_t n = strcspn(q, "\n");

		monitored = classify(q, n, o->master_set) == LINE_MONITOR;
		q += n + (q[n] == '\n');
	}
	if (!monitored && !*o->primary_host)
		return init_error_set(
			err, -EINVAL,
			"REDIS_PRIMARY_HOST (alias REDIS_MASTER_HOST) is empty: a Sentinel needs the primary "
			"of '%s' to monitor on its first start",
			o->master_set);
	f = open_memstream(&text, &len);
	if (!f)
		return init_error_set(err, -ENOMEM, "out of memory");
	render_top(f, in);
	if (!monitored) {
		(void)snprintf(port, sizeof(port), "%lld", (long long)o->primary_port);
		render_monitor(f, in, o->primary_host, strlen(o->primary_host), port, strlen(port));
	}
	monitored = false;
	while (*p) {
		size_t n = strcspn(p, "\n");
		enum line_kind kind = classify(p, n, o->master_set);
		struct words w;

		if (kind == LINE_KEEP) {
			(void)fprintf(f, "%.*s\n", (int)n, p);
		} else if (kind == LINE_MONITOR && !monitored) {
			split_words(p, n, &w);
			render_monitor(f, in, w.w[3], w.len[3], w.w[4], w.len[4]);
			monitored = true;
		}
		p += n + (p[n] == '\n');
	}
	render_set(f, in);
	if (fclose(f) != 0 || !text) {
		if (text)
			explicit_bzero(text, len);
		free(text);
		return init_error_set(err, -ENOMEM, "out of memory");
	}
	*ret_text = text;
	return 0;
}
