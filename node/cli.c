/* SPDX-License-Identifier: MIT */
/*
 * `kvinit cli ARGS`: redis-cli (or valkey-cli) on this node, or in a Sentinel's container (KVINIT_ROLE=sentinel, as
 * for `kvinit health`) on the Sentinel: its port (REDIS_SENTINEL_PORT_NUMBER) and its own password
 * (REDIS_SENTINEL_PASSWORD_FILE, else the nodes'). The password goes to that process alone, in REDISCLI_AUTH, never
 * on a command line where `ps` would show it. With REDIS_TLS_ENABLED a node is reached with TLS on its TLS port,
 * checked against the CA, with the node's certificate presented (Debian's clients have TLS). redis-cli cannot take
 * a key's passphrase: an encrypted key (REDIS_TLS_KEY_FILE_PASS) is decrypted here into an anonymous memory file that
 * redis-cli reads as /proc/self/fd/N; the decrypted key never reaches a disk, the passphrase never a command line.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

#include "node.h"
#include "openssl.h"
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

/* The largest key file read, as node_tls_check reads it. */
#define CLI_KEY_FILE_MAX ((size_t)64 * 1024)

/* The passphrase, or none: OpenSSL's default would ask the terminal for one. */
static int key_pass_cb(char *buf, int size, int rwflag, void *userdata)
{
	const char *pass = userdata;
	size_t len = strlen(pass);

	(void)rwflag;
	if (!len || len >= (size_t)size)
		return -1;
	memcpy(buf, pass, len + 1);
	return (int)len;
}

/*
 * The key at path decrypted with pass, as an unencrypted PEM in a new anonymous memory file: its fd in *ret_fd
 * (close-on-exec: the caller clears that for the exec that reads it). The file's buffer is wiped.
 */
static int decrypted_key(const char *path, const char *pass, int *ret_fd, struct init_error *err)
{
	char *buf;
	BIO *in, *out;
	EVP_PKEY *key;
	bool written;
	int fd, len, r;

	r = node_openssl_load(err);
	if (r < 0)
		return r;
	buf = malloc(CLI_KEY_FILE_MAX + 2);
	if (!buf)
		return init_error_set(err, -ENOMEM, "out of memory");
	len = init_read_file_bounded(path, 0, buf, CLI_KEY_FILE_MAX + 2, NULL);
	if (len < 0) {
		explicit_bzero(buf, CLI_KEY_FILE_MAX + 2);
		free(buf);
		return init_error_set(err, len, "REDIS_TLS_KEY_FILE='%s': cannot read it: %s", path,
				      len == -EFBIG    ? "larger than the limit"
				      : len == -EBADFD ? "not a regular file"
						       : strerror(-len));
	}
	in = sym_BIO_new_mem_buf(buf, len);
	key = in ? sym_PEM_read_bio_PrivateKey(in, NULL, key_pass_cb, (void *)pass) : NULL;
	sym_ERR_clear_error();
	if (in)
		sym_BIO_free(in);
	explicit_bzero(buf, CLI_KEY_FILE_MAX + 2);
	free(buf);
	if (!key)
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_KEY_FILE='%s': REDIS_TLS_KEY_FILE_PASS does not decrypt the key",
				      path);
	fd = memfd_create("kvinit-cli-key", MFD_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		sym_EVP_PKEY_free(key);
		return init_error_set(err, r, "cannot hand the decrypted key to the client: memfd_create: %s",
				      strerror(-r));
	}
	out = sym_BIO_new_fd(fd, BIO_NOCLOSE);
	written = out && sym_PEM_write_bio_PrivateKey(out, key, NULL, NULL, 0, NULL, NULL);
	if (out)
		sym_BIO_free(out);
	sym_EVP_PKEY_free(key);
	sym_ERR_clear_error();
	if (!written) {
		(void)close(fd);
		return init_error_set(err, -EIO, "cannot hand the decrypted key to the client: cannot write it");
	}
	*ret_fd = fd;
	return 0;
}

/*
 * The TLS arguments of redis-cli for the options o into argv at *a, unless the caller gave --tls (then the caller
 * says it all). An encrypted key is given decrypted, as /proc/self/fd/N of a memory file (its fd in *ret_key_fd,
 * its path in key_path); when that fails the client connects without a client certificate, which a node with
 * REDIS_TLS_AUTH_CLIENTS=yes refuses (said).
 */
static void tls_args(const struct node_options *o, char **args, char **argv, size_t *a, int *ret_key_fd, char *key_path,
		     size_t key_path_size)
{
	static const char *const tls[] = {"--tls", NULL};
	struct init_error err;
	const char *key = o->tls_key_file;
	int fd = -1;

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
	if (!*o->tls_cert_file || !*o->tls_key_file)
		return;
	if (*o->tls_key_file_pass) {
		if (decrypted_key(o->tls_key_file, o->tls_key_file_pass, &fd, &err) < 0) {
			log_warn("cli: %s: connecting without a client certificate", err.msg);
			return;
		}
		(void)snprintf(key_path, key_path_size, "/proc/self/fd/%d", fd);
		key = key_path;
		*ret_key_fd = fd;
	}
	argv[(*a)++] = "--cert";
	argv[(*a)++] = o->tls_cert_file;
	argv[(*a)++] = "--key";
	argv[(*a)++] = (char *)key;
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
	char host[64], port[16], key_path[32], **argv, **env, *auth = NULL;
	int key_fd = -1;
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
	tls_args(o, args, argv, &a, &key_fd, key_path, sizeof(key_path));
	for (size_t i = 0; i < nargs; i++)
		argv[a++] = args[i];
	for (size_t i = 0; i < nenv; i++)
		if (strncmp(environ[i], "REDIS_PASSWORD=", 15) != 0 && strncmp(environ[i], "REDISCLI_AUTH=", 14) != 0 &&
		    strncmp(environ[i], "REDIS_TLS_KEY_FILE_PASS=", 24) != 0)
			env[e++] = environ[i];
	if (auth)
		env[e++] = auth;
	/* the decrypted key's memory file is the one descriptor the client inherits beside stdin, stdout, stderr */
	if (key_fd >= 0 && fcntl(key_fd, F_SETFD, 0) < 0)
		log_warn("cli: cannot hand the decrypted key to '%s': %s, ignoring", argv[0], strerror(errno));
	execve(argv[0], argv, env);
	log_error("'%s': cannot execute: %s", argv[0], strerror(errno));
	if (auth)
		explicit_bzero(auth, strlen(auth));
	return errno == ENOENT ? INIT_EXIT_NOTFOUND : INIT_EXIT_NOEXEC;
}
