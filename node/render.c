/* SPDX-License-Identifier: MIT */
/*
 * The server config kvinit renders: the user's base config first (include), then kvinit's settings, which win
 * because Redis keeps the last value of a directive. Pure: text in, text out; node.c writes it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node.h"

/*
 * A value as redis.conf reads it (sdssplitargs): plain when it is a simple token, else in double quotes with
 * every byte outside printable ASCII, and '"', '\' and '\'', escaped as \xHH. No value can break out of its line.
 * Written straight into f, so nothing is cut whatever its length (a byte takes 4 at most), and a secret has no copy
 * outside the text the caller wipes.
 */
void node_write_config_value(FILE *f, const char *value)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@+*,";

	if (*value && strspn(value, plain) == strlen(value)) {
		(void)fputs(value, f);
		return;
	}
	(void)fputc('"', f);
	for (; *value; value++) {
		unsigned char c = (unsigned char)*value;

		if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '\'')
			(void)fprintf(f, "\\x%02x", c);
		else
			(void)fputc(c, f);
	}
	(void)fputc('"', f);
}

void node_render_directive(FILE *f, const char *name, const char *value)
{
	(void)fprintf(f, "%s ", name);
	node_write_config_value(f, value);
	(void)fputc('\n', f);
}

static void directive_uint(FILE *f, const char *name, unsigned long long value)
{
	(void)fprintf(f, "%s %llu\n", name, value);
}

/* "--maxmemory 100mb --save 900 1" -> "maxmemory 100mb" and "save 900 1", each a line, each value quoted. */
static int extra_flags(FILE *f, const char *flags, struct init_error *err)
{
	_cleanup_(node_extra_flags_free) struct node_extra_flags x = {0};
	struct init_error why;
	char shown[160];
	int r;

	r = node_extra_flags_parse(flags, &x, &why);
	if (r < 0) {
		init_escape_control(shown, sizeof(shown), flags);
		return init_error_set(err, r, "REDIS_EXTRA_FLAGS='%s': %s", shown, why.msg);
	}
	(void)fputs("# REDIS_EXTRA_FLAGS\n", f);
	for (size_t i = 0; i < x.n; i++) {
		if (strncmp(x.tokens[i], "--", 2) == 0) {
			(void)fprintf(f, "%s%s", i ? "\n" : "", x.tokens[i] + 2);
			continue;
		}
		(void)fputc(' ', f);
		node_write_config_value(f, x.tokens[i]);
	}
	if (x.n)
		(void)fputc('\n', f);
	return 0;
}

/* A directive the server does not know: an error when asked for, else a comment saying it was left out. */
static int gate(FILE *f, const struct node_render_input *in, enum node_directive d, bool asked, const char *var,
		struct init_error *err)
{
	char version[48];

	if (node_server_knows(in->server, d))
		return 1;
	node_server_describe(in->server, version, sizeof(version));
	if (asked)
		return init_error_set(err, -ENOTSUP, "%s needs %s, which %s does not know", var, node_directive_name(d),
				      version);
	(void)fprintf(f, "# skipped: %s (%s does not know it)\n", node_directive_name(d), version);
	return 0;
}

static int render_cluster(FILE *f, const struct node_render_input *in, struct init_error *err)
{
	const struct node_options *o = in->opt;
	unsigned port = node_client_port(o), bus = (unsigned)(o->bus_port ? o->bus_port : port + 10000);
	int r;

	node_render_directive(f, "cluster-enabled", "yes");
	node_render_directive(f, "cluster-config-file", "nodes.conf");
	directive_uint(f, "cluster-node-timeout", (unsigned long long)o->node_timeout);
	r = gate(f, in, NODE_DIR_CLUSTER_PORT, bus != port + 10000, "REDIS_CLUSTER_BUS_PORT", err);
	if (r < 0)
		return r;
	if (r)
		directive_uint(f, "cluster-port", bus);
	if (in->announce_ip)
		node_render_directive(f, "cluster-announce-ip", in->announce_ip);
	if (o->announce_port && o->tls_enabled && node_server_knows(in->server, NODE_DIR_ANNOUNCE_TLS_PORT)) {
		/*
		 * With tls-cluster the server announces cluster-announce-tls-port and takes cluster-announce-port for
		 * the plain port (0 when unset: plain clients would be sent port 0).
		 */
		directive_uint(f, "cluster-announce-tls-port", (unsigned long long)o->announce_port);
		if (node_plain_port_open(o))
			directive_uint(f, "cluster-announce-port", (unsigned long long)o->port);
	} else if (o->announce_port) {
		directive_uint(f, "cluster-announce-port", (unsigned long long)o->announce_port);
	}
	if (o->announce_bus_port)
		directive_uint(f, "cluster-announce-bus-port", (unsigned long long)o->announce_bus_port);
	if (*o->announce_hostname) {
		r = gate(f, in, NODE_DIR_ANNOUNCE_HOSTNAME, true, "REDIS_CLUSTER_ANNOUNCE_HOSTNAME", err);
		if (r < 0)
			return r;
		node_render_directive(f, "cluster-announce-hostname", o->announce_hostname);
	}
	r = gate(f, in, NODE_DIR_PREFERRED_ENDPOINT_TYPE, in->source[NODE_OPT_preferred_endpoint] != INIT_SRC_DEFAULT,
		 "REDIS_CLUSTER_PREFERRED_ENDPOINT_TYPE", err);
	if (r < 0)
		return r;
	if (r)
		node_render_directive(f, "cluster-preferred-endpoint-type", node_endpoint_names[o->preferred_endpoint]);
	/*
	 * A master holds the first sync of a new or restarted replica back for repl-diskless-sync-delay (5 s by
	 * default) to serve more replicas with one transfer; a cluster master has one or two, so that left the links
	 * down for 2-5 s after every formation and restart. With 0 the sync starts when the replica asks: links up 30
	 * ms after cluster-init's exit and 71 ms after a replica's restart on Redis 7.0, 679 and 941 ms on Valkey 9.
	 * repl-diskless-sync-max-replicas 1 (start once that many wait) did not meet 1 s: the delay is checked once a
	 * second. Every server from Redis 6.0 knows it; REDIS_EXTRA_FLAGS comes after and may set it again.
	 */
	directive_uint(f, "repl-diskless-sync-delay", 0);
	return 0;
}

/* REDIS_CLUSTER_AVAILABILITY_ZONE: Valkey's availability-zone, which cluster-init reads to place replicas. */
static int render_zone(FILE *f, const struct node_render_input *in, struct init_error *err)
{
	char version[48];

	if (!*in->opt->availability_zone)
		return 0;
	if (!node_server_knows(in->server, NODE_DIR_AVAILABILITY_ZONE)) {
		node_server_describe(in->server, version, sizeof(version));
		return init_error_set(err, -ENOTSUP,
				      "REDIS_CLUSTER_AVAILABILITY_ZONE='%s': needs the directive %s (Valkey 8.0 and "
				      "later), which %s does not know: unset it",
				      in->opt->availability_zone, node_directive_name(NODE_DIR_AVAILABILITY_ZONE),
				      version);
	}
	node_render_directive(f, "availability-zone", in->opt->availability_zone);
	return 0;
}

/*
 * Replication mode: what a node announces to its primary and the Sentinels (a primary too: a failover may make it
 * a replica), and on a replica the primary it starts from.
 */
static void render_replication(FILE *f, const struct node_render_input *in)
{
	const struct node_options *o = in->opt;

	if (node_replication(o) == NODE_REPL_NONE)
		return;
	/* a replicated primary has a replica or two, like a cluster master: the sync starts at once (see there) */
	directive_uint(f, "repl-diskless-sync-delay", 0);
	if (*o->replica_ip)
		node_render_directive(f, "replica-announce-ip", o->replica_ip);
	if (o->replica_port)
		directive_uint(f, "replica-announce-port", (unsigned long long)o->replica_port);
	if (in->replicaof_host) {
		(void)fputs("replicaof ", f);
		node_write_config_value(f, in->replicaof_host);
		(void)fprintf(f, " %u\n", in->replicaof_port);
	}
}

void node_render_tls_files(FILE *f, const struct node_options *o, bool redact)
{
	node_render_directive(f, "tls-cert-file", o->tls_cert_file);
	node_render_directive(f, "tls-key-file", o->tls_key_file);
	if (*o->tls_key_file_pass)
		node_render_directive(f, "tls-key-file-pass", redact ? "<redacted>" : o->tls_key_file_pass);
	if (*o->tls_ca_file)
		node_render_directive(f, "tls-ca-cert-file", o->tls_ca_file);
	if (*o->tls_ca_dir)
		node_render_directive(f, "tls-ca-cert-dir", o->tls_ca_dir);
	if (*o->tls_dh_params_file)
		node_render_directive(f, "tls-dh-params-file", o->tls_dh_params_file);
	node_render_directive(f, "tls-auth-clients", node_tls_auth_names[o->tls_auth_clients]);
}

/*
 * REDIS_TLS_ENABLED: clients, the cluster bus and replication in TLS. The files are named where they are mounted:
 * the server reads them itself, at start and when they are set again.
 */
static void render_tls(FILE *f, const struct node_render_input *in)
{
	const struct node_options *o = in->opt;

	if (!o->tls_enabled)
		return;
	directive_uint(f, "tls-port", (unsigned long long)o->tls_port);
	node_render_tls_files(f, o, in->redact);
	node_render_directive(f, "tls-replication", "yes");
	if (o->cluster_enabled)
		node_render_directive(f, "tls-cluster", "yes");
}

static void render_auth(FILE *f, const struct node_render_input *in)
{
	bool channels = node_server_knows(in->server, NODE_DIR_ACL_CHANNELS);

	/*
	 * The password goes to the default user as SHA-256 hashes, never as requirepass: a user can hold several,
	 * which is how a rotation accepts the old and the new one at once. resetpass drops a requirepass the base
	 * config may have set.
	 */
	(void)fputs("user default on resetpass", f);
	if (!in->n_hashes)
		(void)fputs(" nopass", f);
	for (size_t i = 0; i < in->n_hashes; i++)
		(void)fprintf(f, " #%s", in->redact ? "<redacted>" : in->pass_hashes[i]);
	(void)fprintf(f, " ~*%s +@all\n", channels ? " &*" : "");
	if (in->masterauth)
		node_render_directive(f, "masterauth", in->redact ? "<redacted>" : in->masterauth);
	/* as `user` directives, like the default user: the server refuses them beside an aclfile (see acl.c) */
	if (in->users && in->users->n) {
		(void)fputs("# the users file\n", f);
		node_acl_render(f, in->users, in->redact);
	}
}

int node_render(const struct node_render_input *in, char **ret_text, struct init_error *err)
{
	const struct node_options *o = in->opt;
	char *text = NULL;
	size_t len = 0;
	FILE *f;
	int r = 0;

	f = open_memstream(&text, &len);
	if (!f)
		return init_error_set(err, -ENOMEM, "out of memory");
	(void)fputs("# Rendered by kvinit at every start: edit the environment or the base config, not this file.\n",
		    f);
	if (in->base_config_present)
		node_render_directive(f, "include", o->base_config);
	/* Container basics: in the foreground, logging to stdout, where kvinit and the runtime expect it. */
	node_render_directive(f, "daemonize", "no");
	node_render_directive(f, "supervised", "no");
	node_render_directive(f, "logfile", "");
	/* with TLS on the same port (Bitnami's default), the plain port is off */
	directive_uint(f, "port", node_plain_port_open(o) ? (unsigned long long)o->port : 0);
	(void)fprintf(f, "bind %s\n", o->bind); /* validated: addresses and '*' only */
	/* Every connection needs the password (or ALLOW_EMPTY_PASSWORD was chosen): protected mode adds nothing. */
	node_render_directive(f, "protected-mode", "no");
	node_render_directive(f, "dir", o->data_dir);
	node_render_directive(f, "appendonly", o->aof ? "yes" : "no");
	render_tls(f, in);
	r = render_zone(f, in, err);
	if (r == 0 && o->cluster_enabled)
		r = render_cluster(f, in, err);
	else if (r == 0)
		node_render_directive(f, "cluster-enabled", "no");
	if (r == 0)
		render_replication(f, in);
	if (r == 0 && *o->extra_flags)
		r = extra_flags(f, o->extra_flags, err);
	if (r == 0)
		render_auth(f, in);
	if (fclose(f) != 0 && r == 0)
		r = init_error_set(err, -ENOMEM, "out of memory");
	if (r < 0) {
		if (text)
			explicit_bzero(text, len);
		free(text);
		return r;
	}
	*ret_text = text;
	return 0;
}
