/* SPDX-License-Identifier: MIT */
/*
 * TLS: which port is which, the settings that must agree, and the check of a certificate set with OpenSSL's
 * libcrypto before the server is given it. The server reads the files itself; kvinit reads them first so that a
 * certificate the cluster would refuse (a key of another certificate, another CA, expired, a name the clients will
 * not accept) stops the start with one line instead of a server that fails every handshake.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <string.h>

#include "node.h"
#include "openssl.h"

/* A certificate file may carry a chain, a CA file a whole bundle (Debian's ca-certificates.crt is 220 KiB). */
#define CERT_FILE_MAX ((size_t)1024 * 1024)
#define KEY_FILE_MAX  ((size_t)64 * 1024)

unsigned node_client_port(const struct node_options *o)
{
	return (unsigned)(o->tls_enabled ? o->tls_port : o->port);
}

/* Bitnami's rule: with TLS and both ports the same (its default, 6379 twice), only TLS is served. */
bool node_plain_port_open(const struct node_options *o)
{
	return !o->tls_enabled || o->port != o->tls_port;
}

/* What render.c writes with TLS on: REDIS_EXTRA_FLAGS setting one again would undo it. */
static const char *const tls_directives[] = {
	"tls-port",	      "tls-cluster",	   "tls-replication",		"tls-cert-file",
	"tls-key-file",	      "tls-key-file-pass", "tls-ca-cert-file",		"tls-ca-cert-dir",
	"tls-dh-params-file", "tls-auth-clients",  "cluster-announce-tls-port", NULL,
};

int node_tls_check_settings(const struct node_options *o, struct init_error *err)
{
	_cleanup_(node_extra_flags_free) struct node_extra_flags x = {0};
	int r;

	if (!o->tls_enabled)
		return 0;
	if (!*o->tls_cert_file || !*o->tls_key_file)
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE, the "
				      "node's certificate and its key");
	if (!*o->tls_ca_file && !*o->tls_ca_dir)
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CA_FILE or REDIS_TLS_CA_DIR, the CA that "
				      "peers and clients are verified against");
	/* the option's own check parsed REDIS_EXTRA_FLAGS already: this cannot fail but for memory */
	r = node_extra_flags_parse(o->extra_flags, &x, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < x.n; i++)
		for (size_t k = 0; tls_directives[k]; k++)
			if (strncmp(x.tokens[i], "--", 2) == 0 && strcmp(x.tokens[i] + 2, tls_directives[k]) == 0)
				return init_error_set(err, -EINVAL,
						      "REDIS_EXTRA_FLAGS='%.200s': '%s' is set by kvinit itself with "
						      "REDIS_TLS_ENABLED=yes: use the REDIS_TLS_* settings",
						      o->extra_flags, x.tokens[i]);
	return 0;
}

void node_tls_files_from(const struct node_options *o, struct node_tls_files *ret)
{
	enum node_tls_auth auth = (enum node_tls_auth)o->tls_auth_clients;

	*ret = (struct node_tls_files){
		.cert = o->tls_cert_file,
		.key = o->tls_key_file,
		.key_pass = o->tls_key_file_pass,
		.ca_file = o->tls_ca_file,
		.ca_dir = o->tls_ca_dir,
		.dh_params = o->tls_dh_params_file,
		/* a node connects to its peers (bus, replication) with its certificate; they check it unless told not
		 */
		.client_too = auth != NODE_TLS_AUTH_NO && (o->cluster_enabled || node_replication(o) != NODE_REPL_NONE),
	};
}

void node_tls_format_time(time_t t, char *buf, size_t size)
{
	struct tm tm;

	if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm) == 0)
		(void)snprintf(buf, size, "%lld", (long long)t);
}

bool node_tls_warn_expiry(const char *path, const struct node_tls_info *info, time_t now)
{
	char when[64];

	if (info->not_after - now > NODE_TLS_EXPIRY_WARN_SEC)
		return false;
	node_tls_format_time(info->not_after, when, sizeof(when));
	if (now > info->not_after)
		log_warn("the certificate '%s' (serial '%s') expired on '%s': renew it", path, info->serial, when);
	else
		log_warn("the certificate '%s' (serial '%s') expires on '%s', in %lld hours: renew it", path,
			 info->serial, when, (long long)((info->not_after - now) / 3600));
	return true;
}

/* ---- OpenSSL objects with cleanup (the cleanups run where nothing was loaded too) ---- */

static void bio_freep(BIO **p)
{
	if (*p)
		sym_BIO_free(*p);
}
static void x509_freep(X509 **p)
{
	if (*p)
		sym_X509_free(*p);
}
static void chain_freep(STACK_OF(X509) * *p)
{
	if (*p)
		sym_OPENSSL_sk_pop_free((OPENSSL_STACK *)*p, (OPENSSL_sk_freefunc)sym_X509_free);
}
static void pkey_freep(EVP_PKEY **p)
{
	if (*p)
		sym_EVP_PKEY_free(*p);
}
static void store_freep(X509_STORE **p)
{
	if (*p)
		sym_X509_STORE_free(*p);
}
static void store_ctx_freep(X509_STORE_CTX **p)
{
	if (*p)
		sym_X509_STORE_CTX_free(*p);
}
static void names_freep(GENERAL_NAMES **p)
{
	if (*p)
		sym_GENERAL_NAMES_free(*p);
}

/* A buffer that held a private key is wiped before it goes. */
struct file_buf {
	char *data;
	size_t size;
	int len;
};

static void file_buf_free(struct file_buf *b)
{
	if (b->data)
		explicit_bzero(b->data, b->size);
	free(b->data);
	*b = (struct file_buf){0};
}

/* The file at path, through its symlinks as they are now; -EINVAL with the variable's name in err. */
static int read_file(const char *var, const char *path, size_t max, struct file_buf *ret, struct init_error *err)
{
	struct file_buf b = {.data = malloc(max + 2), .size = max + 2};
	char shown[256];

	if (!b.data)
		return init_error_set(err, -ENOMEM, "out of memory");
	init_escape_control(shown, sizeof(shown), path);
	b.len = init_read_file_bounded(path, 0, b.data, b.size, NULL);
	if (b.len == -EILSEQ)
		b.len = (int)strlen(b.data); /* DER or garbage: the PEM parser says what it is not */
	if (b.len < 0) {
		int r = b.len;

		file_buf_free(&b);
		return init_error_set(err, -EINVAL, "%s='%s': cannot read it: %s", var, shown,
				      r == -EFBIG    ? "larger than the limit"
				      : r == -EBADFD ? "not a regular file"
						     : strerror(-r));
	}
	*ret = b;
	return 0;
}

static BIO *bio_of(const struct file_buf *b)
{
	return sym_BIO_new_mem_buf(b->data, b->len);
}

/* The certificate, then the intermediates after it. */
static int read_cert(const char *path, X509 **ret_cert, STACK_OF(X509) * *ret_chain, struct init_error *err)
{
	_cleanup_(file_buf_free) struct file_buf b = {0};
	_cleanup_(bio_freep) BIO *bio = NULL;
	_cleanup_(x509_freep) X509 *cert = NULL;
	_cleanup_(chain_freep) STACK_OF(X509) *chain = NULL;
	X509 *next;
	int r;

	r = read_file("REDIS_TLS_CERT_FILE", path, CERT_FILE_MAX, &b, err);
	if (r < 0)
		return r;
	bio = bio_of(&b);
	chain = (STACK_OF(X509) *)sym_OPENSSL_sk_new_null();
	if (!bio || !chain)
		return init_error_set(err, -ENOMEM, "out of memory");
	cert = sym_PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (!cert)
		return init_error_set(err, -EINVAL, "REDIS_TLS_CERT_FILE='%s': no PEM certificate in it", path);
	while ((next = sym_PEM_read_bio_X509(bio, NULL, NULL, NULL)))
		if (!sym_OPENSSL_sk_push((OPENSSL_STACK *)chain, next)) {
			sym_X509_free(next);
			return init_error_set(err, -ENOMEM, "out of memory");
		}
	sym_ERR_clear_error(); /* the end of the file */
	*ret_cert = cert;
	*ret_chain = chain;
	cert = NULL;
	chain = NULL;
	return 0;
}

/* The passphrase, or none: OpenSSL's default would ask the terminal for one. */
static int key_pass_cb(char *buf, int size, int rwflag, void *userdata)
{
	const char *pass = userdata;
	size_t len = pass ? strlen(pass) : 0;

	(void)rwflag;
	if (!len || len >= (size_t)size)
		return -1;
	memcpy(buf, pass, len + 1);
	return (int)len;
}

static int read_key(const struct node_tls_files *f, EVP_PKEY **ret, struct init_error *err)
{
	_cleanup_(file_buf_free) struct file_buf b = {0};
	_cleanup_(bio_freep) BIO *bio = NULL;
	const char *pass = f->key_pass && *f->key_pass ? f->key_pass : NULL;
	EVP_PKEY *key;
	bool encrypted;
	int r;

	r = read_file("REDIS_TLS_KEY_FILE", f->key, KEY_FILE_MAX, &b, err);
	if (r < 0)
		return r;
	bio = bio_of(&b);
	if (!bio)
		return init_error_set(err, -ENOMEM, "out of memory");
	key = sym_PEM_read_bio_PrivateKey(bio, NULL, key_pass_cb, (void *)pass);
	sym_ERR_clear_error();
	if (key) {
		*ret = key;
		return 0;
	}
	encrypted = b.data && strstr(b.data, "ENCRYPTED");
	if (encrypted && !pass)
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_KEY_FILE='%s': the key is encrypted: set REDIS_TLS_KEY_FILE_PASS "
				      "(or REDIS_TLS_KEY_FILE_PASS_FILE)",
				      f->key);
	if (encrypted)
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_KEY_FILE='%s': REDIS_TLS_KEY_FILE_PASS does not decrypt the key",
				      f->key);
	return init_error_set(err, -EINVAL, "REDIS_TLS_KEY_FILE='%s': no PEM private key in it", f->key);
}

static int asn1_time(const ASN1_TIME *t, time_t *ret)
{
	struct tm tm = {0};
	time_t v;

	if (!t || sym_ASN1_TIME_to_tm(t, &tm) != 1)
		return -EINVAL;
	v = timegm(&tm);
	if (v == (time_t)-1)
		return -EINVAL;
	*ret = v;
	return 0;
}

/* The CA the server is given: its file (every certificate in it) and its directory. */
static int load_ca(const struct node_tls_files *f, X509_STORE **ret, const char **ret_var, const char **ret_path,
		   struct init_error *err)
{
	_cleanup_(store_freep) X509_STORE *store = sym_X509_STORE_new();
	_cleanup_(file_buf_free) struct file_buf b = {0};
	_cleanup_(bio_freep) BIO *bio = NULL;
	unsigned n = 0;
	X509 *ca;
	int r;

	if (!store)
		return init_error_set(err, -ENOMEM, "out of memory");
	if (f->ca_file && *f->ca_file) {
		r = read_file("REDIS_TLS_CA_FILE", f->ca_file, CERT_FILE_MAX, &b, err);
		if (r < 0)
			return r;
		bio = bio_of(&b);
		if (!bio)
			return init_error_set(err, -ENOMEM, "out of memory");
		while ((ca = sym_PEM_read_bio_X509(bio, NULL, NULL, NULL))) {
			r = sym_X509_STORE_add_cert(store, ca);
			sym_X509_free(ca);
			if (r != 1)
				return init_error_set(err, -ENOMEM, "out of memory");
			n++;
		}
		sym_ERR_clear_error();
		if (!n)
			return init_error_set(err, -EINVAL, "REDIS_TLS_CA_FILE='%s': no PEM certificate in it",
					      f->ca_file);
		*ret_var = "REDIS_TLS_CA_FILE";
		*ret_path = f->ca_file;
	}
	if (f->ca_dir && *f->ca_dir) {
		struct stat st;

		if (stat(f->ca_dir, &st) < 0 || !S_ISDIR(st.st_mode))
			return init_error_set(err, -EINVAL, "REDIS_TLS_CA_DIR='%s': not a directory", f->ca_dir);
		if (sym_X509_STORE_load_locations(store, NULL, f->ca_dir) != 1)
			return init_error_set(err, -ENOMEM, "out of memory");
		if (!n) {
			*ret_var = "REDIS_TLS_CA_DIR";
			*ret_path = f->ca_dir;
		}
	}
	*ret = store;
	store = NULL;
	return 0;
}

static int check_chain(const struct node_tls_files *f, X509 *cert, STACK_OF(X509) * chain, time_t now,
		       struct init_error *err)
{
	_cleanup_(store_freep) X509_STORE *store = NULL;
	_cleanup_(store_ctx_freep) X509_STORE_CTX *ctx = NULL;
	const char *var = NULL, *path = NULL;
	int r;

	r = load_ca(f, &store, &var, &path, err);
	if (r < 0)
		return r;
	ctx = sym_X509_STORE_CTX_new();
	if (!ctx || sym_X509_STORE_CTX_init(ctx, store, cert, chain) != 1)
		return init_error_set(err, -ENOMEM, "out of memory");
	sym_X509_STORE_CTX_set_time(ctx, 0, now);
	r = sym_X509_verify_cert(ctx);
	sym_ERR_clear_error();
	if (r == 1)
		return 0;
	return init_error_set(err, -EINVAL, "REDIS_TLS_CERT_FILE='%s': does not chain to the CA of %s='%s': %s",
			      f->cert, var, path, sym_X509_verify_cert_error_string(sym_X509_STORE_CTX_get_error(ctx)));
}

/* What extended key usage allows, when the certificate names one (X509_get_extended_key_usage: all without). */
static int check_usage(const struct node_tls_files *f, X509 *cert, struct init_error *err)
{
	uint32_t xku = sym_X509_get_extended_key_usage(cert);

	if (!(xku & XKU_SSL_SERVER))
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_CERT_FILE='%s': its extended key usage does not allow a TLS server "
				      "(serverAuth)",
				      f->cert);
	if (f->client_too && !(xku & XKU_SSL_CLIENT))
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_CERT_FILE='%s': its extended key usage does not allow a TLS client "
				      "(clientAuth), which the node is towards its peers on the cluster bus and "
				      "replication links (or set REDIS_TLS_AUTH_CLIENTS=no)",
				      f->cert);
	return 0;
}

/* "DNS:a.example, IP:10.0.0.1" (cut to size), or "none". */
static void list_sans(X509 *cert, char *buf, size_t size)
{
	_cleanup_(names_freep) GENERAL_NAMES *sans = sym_X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t len = 0;

	(void)snprintf(buf, size, "none");
	for (int i = 0; sans && i < sym_OPENSSL_sk_num((const OPENSSL_STACK *)sans) && len < size; i++) {
		const GENERAL_NAME *g = (const GENERAL_NAME *)sym_OPENSSL_sk_value((const OPENSSL_STACK *)sans, i);
		char ip[INET6_ADDRSTRLEN] = "?";
		const char *sep = len ? ", " : "";

		if (g->type == GEN_DNS) {
			len += (size_t)snprintf(buf + len, size - len, "%sDNS:%.*s", sep,
						sym_ASN1_STRING_length(g->d.dNSName),
						(const char *)sym_ASN1_STRING_get0_data(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			int n = sym_ASN1_STRING_length(g->d.iPAddress);

			(void)inet_ntop(n == 4 ? AF_INET : AF_INET6, sym_ASN1_STRING_get0_data(g->d.iPAddress), ip,
					sizeof(ip));
			len += (size_t)snprintf(buf + len, size - len, "%sIP:%s", sep, ip);
		}
	}
}

/* Whether cert's subject alternative names cover name: an IP SAN for an address, a DNS SAN for a name. */
static bool covers(X509 *cert, const char *name)
{
	const unsigned flags = X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT;
	int r = init_valid_ip(name) ? sym_X509_check_ip_asc(cert, name, 0)
				    : sym_X509_check_host(cert, name, strlen(name), flags, NULL);

	sym_ERR_clear_error();
	return r == 1;
}

int node_tls_covers(const char *cert_path, const char *name)
{
	_cleanup_(x509_freep) X509 *cert = NULL;
	_cleanup_(chain_freep) STACK_OF(X509) *chain = NULL;
	struct init_error err;
	int r;

	r = node_openssl_load(&err);
	if (r == 0)
		r = read_cert(cert_path, &cert, &chain, &err);
	return r < 0 ? r : covers(cert, name);
}

static int check_names(const struct node_tls_files *f, X509 *cert, const char *const *names, size_t n_names,
		       struct init_error *err)
{
	char sans[256];

	for (size_t i = 0; i < n_names; i++) {
		bool ip = init_valid_ip(names[i]);

		if (covers(cert, names[i]))
			continue;
		list_sans(cert, sans, sizeof(sans));
		return init_error_set(err, -EINVAL,
				      "REDIS_TLS_CERT_FILE='%s': its subject alternative names (%s) do not cover '%s', "
				      "which this node announces: it needs %s SAN for it",
				      f->cert, sans, names[i], ip ? "an IP" : "a DNS");
	}
	return 0;
}

static int check_dh_params(const char *path, struct init_error *err)
{
	_cleanup_(file_buf_free) struct file_buf b = {0};
	_cleanup_(bio_freep) BIO *bio = NULL;
	_cleanup_(pkey_freep) EVP_PKEY *dh = NULL;
	int r;

	r = read_file("REDIS_TLS_DH_PARAMS_FILE", path, KEY_FILE_MAX, &b, err);
	if (r < 0)
		return r;
	bio = bio_of(&b);
	if (!bio)
		return init_error_set(err, -ENOMEM, "out of memory");
	dh = sym_PEM_read_bio_Parameters(bio, NULL);
	sym_ERR_clear_error();
	if (!dh || sym_EVP_PKEY_get_base_id(dh) != EVP_PKEY_DH)
		return init_error_set(err, -EINVAL, "REDIS_TLS_DH_PARAMS_FILE='%s': no PEM DH parameters in it", path);
	return 0;
}

static int serial_hex(X509 *cert, char *buf, size_t size)
{
	BIGNUM *bn = sym_ASN1_INTEGER_to_BN(sym_X509_get0_serialNumber(cert), NULL);
	char *hex = bn ? sym_BN_bn2hex(bn) : NULL;

	sym_BN_free(bn);
	if (!hex)
		return -ENOMEM;
	(void)snprintf(buf, size, "%s", hex);
	sym_CRYPTO_free(hex, OPENSSL_FILE, OPENSSL_LINE);
	return 0;
}

int node_tls_check(const struct node_tls_files *f, const char *const *names, size_t n_names, time_t now,
		   struct node_tls_info *ret, struct init_error *err)
{
	_cleanup_(x509_freep) X509 *cert = NULL;
	_cleanup_(chain_freep) STACK_OF(X509) *chain = NULL;
	_cleanup_(pkey_freep) EVP_PKEY *key = NULL;
	struct node_tls_info info = {0};
	char when[64];
	int r;

	r = node_openssl_load(err);
	if (r == 0)
		r = read_cert(f->cert, &cert, &chain, err);
	if (r == 0)
		r = read_key(f, &key, err);
	if (r < 0)
		return r;
	if (sym_X509_check_private_key(cert, key) != 1) {
		sym_ERR_clear_error();
		return init_error_set(
			err, -EINVAL,
			"REDIS_TLS_KEY_FILE='%s': not the key of the certificate in REDIS_TLS_CERT_FILE='%s'", f->key,
			f->cert);
	}
	if (asn1_time(sym_X509_get0_notBefore(cert), &info.not_before) < 0 ||
	    asn1_time(sym_X509_get0_notAfter(cert), &info.not_after) < 0)
		return init_error_set(err, -EINVAL, "REDIS_TLS_CERT_FILE='%s': its validity dates do not parse",
				      f->cert);
	if (now < info.not_before) {
		node_tls_format_time(info.not_before, when, sizeof(when));
		return init_error_set(err, -EINVAL, "REDIS_TLS_CERT_FILE='%s': not valid before '%s' (not yet valid)",
				      f->cert, when);
	}
	if (now > info.not_after) {
		node_tls_format_time(info.not_after, when, sizeof(when));
		return init_error_set(err, -EINVAL, "REDIS_TLS_CERT_FILE='%s': expired on '%s'", f->cert, when);
	}
	r = check_chain(f, cert, chain, now, err);
	if (r == 0)
		r = check_usage(f, cert, err);
	if (r == 0)
		r = check_names(f, cert, names, n_names, err);
	if (r == 0 && f->dh_params && *f->dh_params)
		r = check_dh_params(f->dh_params, err);
	if (r == 0 && serial_hex(cert, info.serial, sizeof(info.serial)) < 0)
		r = init_error_set(err, -ENOMEM, "out of memory");
	if (r < 0)
		return r;
	if (ret)
		*ret = info;
	return 0;
}
