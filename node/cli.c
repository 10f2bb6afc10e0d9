/* SPDX-License-Identifier: MIT */
/*
 * `kvinit cli ARGS`: redis-cli (or valkey-cli) on this node, or in a Sentinel's container (KVINIT_ROLE=sentinel, as
 * for `kvinit health`) on the Sentinel: its port (REDIS_SENTINEL_PORT_NUMBER) and its own password
 * (REDIS_SENTINEL_PASSWORD_FILE, else the nodes'). The password goes to that process alone, in REDISCLI_AUTH, never
 * on a command line where `ps` would show it. With REDIS_TLS_ENABLED a node is reached with TLS on its TLS port,
 * checked against the CA, with the node's certificate presented (Debian's clients have TLS).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "node.h"
#include "secrets.h"

extern char **environ;

static bool has_arg(char **args, const char *const *names)
{
	for (; *args; args++)
		for (const char *const *n = names; *n; n++)
			if (strcmp(*args, *n) == 0)
				return true;
	return false;
}

/*
 * The TLS arguments of redis-cli for the options o into argv at *a, unless the caller gave --tls (then the caller
 * says it all). redis-cli cannot take a key's passphrase: an encrypted key is not given, which a node with
 * REDIS_TLS_AUTH_CLIENTS=yes refuses (said).
 */
static void tls_args(const struct node_options *o, char **args, char **argv, size_t *a)
{
	static const char *const tls[] = {"--tls", NULL};

	if (!o->tls_enabled || has_arg(args, tls))
		return;
	argv[(*a)++] = "--tls";
	if (*o->tls_ca_file) {
		argv[(*a)++] = "--cacert";
		argv[(*a)++] = o->tls_ca_file;
	}
	if (*o->tls_ca_dir) {
		argv[(*a)++] = "--cacertdir";
		argv[(*a)++] = o->tls_ca_dir;
	}
	if (*o->tls_key_file_pass) {
		log_warn("cli: %s cannot take the passphrase of REDIS_TLS_KEY_FILE='%s': connecting without a client "
			 "certificate",
			 argv[0], o->tls_key_file);
		return;
	}
	if (*o->tls_cert_file && *o->tls_key_file) {
		argv[(*a)++] = "--cert";
		argv[(*a)++] = o->tls_cert_file;
		argv[(*a)++] = "--key";
		argv[(*a)++] = o->tls_key_file;
	}
}

int node_cli_main(struct node_config *c, char **args)
{
	static const char *const where[] = {"-h", "-p", "-u", "-s", NULL};
	const struct node_options *o = &c->opt;
	const bool sentinel = node_sentinel_is_role();
	const struct secrets_value *use;
	struct secrets_password pw = {0};
	struct secrets_set own = {0};
	struct node_server server = {0};
	struct init_error err;
	char host[64], port[16], **argv, **env, *auth = NULL;
	size_t nargs = 0, nenv = 0, a = 0, e = 0;

	if (secrets_load_password(environ, SECRETS_DEFAULT_PASSWORD_FILE, &pw, &err) < 0 ||
	    (sentinel && node_sentinel_passwords(o, &pw.value, &own, &err) < 0) ||
	    node_server_detect(o->server_bin, &server, &err) < 0) {
		log_error("%s", err.msg);
		secrets_set_wipe(&own);
		secrets_password_free(&pw);
		return INIT_EXIT_USAGE;
	}
	if (!server.cli_bin) {
		log_error("no %s next to '%s' or on PATH", server.flavor == NODE_VALKEY ? "valkey-cli" : "redis-cli",
			  server.server_bin);
		secrets_set_wipe(&own);
		secrets_password_free(&pw);
		node_server_free(&server);
		return INIT_EXIT_NOTFOUND;
	}
	use = sentinel ? &own.value[SECRETS_CURRENT] : &pw.value;
	while (args[nargs])
		nargs++;
	while (environ[nenv])
		nenv++;
	argv = calloc(nargs + 16, sizeof(*argv));
	env = calloc(nenv + 2, sizeof(*env));
	if (use->data && asprintf(&auth, "REDISCLI_AUTH=%s", use->data) < 0)
		auth = NULL;
	if (!argv || !env || (use->data && !auth)) {
		log_error("out of memory");
		return INIT_EXIT_SYSCALL;
	}
	secrets_set_wipe(&own);
	secrets_password_free(&pw);

	argv[a++] = server.cli_bin;
	if (!has_arg(args, where)) {
		node_probe_host(o->bind, host, sizeof(host));
		(void)snprintf(port, sizeof(port), "%u", sentinel ? (unsigned)o->sentinel_port : node_client_port(o));
		argv[a++] = "-h";
		argv[a++] = host;
		argv[a++] = "-p";
		argv[a++] = port;
	}
	/* a Sentinel with TLS serves it on its port too (sentinel_conf.c) */
	tls_args(o, args, argv, &a);
	for (size_t i = 0; i < nargs; i++)
		argv[a++] = args[i];
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "REDIS_PASSWORD=", 15) != 0 && strncmp(environ[i], "REDISCLI_AUTH=", 14) != 0)
			env[e++] = environ[i];
	if (auth)
		env[e++] = auth;
	execve(argv[0], argv, env);
	log_error("'%s': cannot execute: %s", argv[0], strerror(errno));
	if (auth)
		explicit_bzero(auth, strlen(auth));
	return errno == ENOENT ? INIT_EXIT_NOTFOUND : INIT_EXIT_NOEXEC;
}
