/* SPDX-License-Identifier: MIT */
/*
 * The TLS checks (node/tls.c) on certificates this test makes with OpenSSL's API in a temporary directory: no key
 * is committed. Two CAs, an intermediate, and leaves that each break one rule.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "init.h"
#include "node.h"

#define DAY (24L * 3600)

static char dir[64];
static EVP_PKEY *ca_key, *ca2_key, *inter_key, *leaf_key, *other_key;
static X509 *ca, *ca2, *inter;
static long next_serial = 1000;

static EVP_PKEY *new_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

struct leaf_spec {
	const char *cn;
	const char *san; /* "IP:127.0.0.1,DNS:x": NULL for none */
	const char *eku; /* "serverAuth,clientAuth": NULL for none */
	long from, to;	 /* seconds from now */
	bool ca;
};

/* A certificate for key, signed by issuer (NULL: self-signed). */
static X509 *make_cert(EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const struct leaf_spec *spec)
{
	X509 *x = X509_new();
	X509_NAME *name;
	X509V3_CTX ctx;

	assert_non_null(x);
	assert_int_equal(X509_set_version(x, 2), 1);
	assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), next_serial++), 1);
	assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), spec->from));
	assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), spec->to));
	assert_int_equal(X509_set_pubkey(x, key), 1);
	name = X509_get_subject_name(x);
	assert_int_equal(
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)spec->cn, -1, -1, 0), 1);
	assert_int_equal(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name), 1);
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &ctx, NID_basic_constraints, spec->ca ? "critical,CA:TRUE" : "CA:FALSE");
	if (spec->ca)
		add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (spec->san)
		add_ext(x, &ctx, NID_subject_alt_name, spec->san);
	if (spec->eku)
		add_ext(x, &ctx, NID_ext_key_usage, spec->eku);
	assert_int_not_equal(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()), 0);
	return x;
}

static const char *path_of(const char *name)
{
	static char paths[8][128];
	static unsigned next;
	char *p = paths[next++ % 8];

	(void)snprintf(p, 128, "%s/%s", dir, name);
	return p;
}

/* The certificates in order into one PEM file. */
static const char *write_certs(const char *name, X509 *a, X509 *b)
{
	const char *path = path_of(name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, a), 1);
	if (b)
		assert_int_equal(PEM_write_X509(f, b), 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *write_key(const char *name, EVP_PKEY *key, const char *pass)
{
	const char *path = path_of(name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, pass ? EVP_aes_256_cbc() : NULL, NULL, 0, NULL, (void *)pass), 1);
	assert_int_equal(fclose(f), 0);
	return path;
}

static const char *write_text(const char *name, const char *text)
{
	const char *path = path_of(name);
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	(void)fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static int setup(void **state)
{
	const struct leaf_spec ca_spec = {.cn = "kvinit test CA", .from = -DAY, .to = 365 * DAY, .ca = true};
	const struct leaf_spec ca2_spec = {.cn = "another CA", .from = -DAY, .to = 365 * DAY, .ca = true};
	const struct leaf_spec inter_spec = {.cn = "intermediate", .from = -DAY, .to = 365 * DAY, .ca = true};

	(void)state;
	(void)snprintf(dir, sizeof(dir), "/tmp/kvinit-test-tls-XXXXXX");
	assert_non_null(mkdtemp(dir));
	ca_key = new_key();
	ca2_key = new_key();
	inter_key = new_key();
	leaf_key = new_key();
	other_key = new_key();
	ca = make_cert(ca_key, NULL, NULL, &ca_spec);
	ca2 = make_cert(ca2_key, NULL, NULL, &ca2_spec);
	inter = make_cert(inter_key, ca, ca_key, &inter_spec);
	write_certs("ca.crt", ca, NULL);
	write_certs("ca2.crt", ca2, NULL);
	write_key("leaf.key", leaf_key, NULL);
	write_key("other.key", other_key, NULL);
	return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return remove(path);
}

static int teardown(void **state)
{
	(void)state;
	(void)nftw(dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
	X509_free(ca);
	X509_free(ca2);
	X509_free(inter);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(ca2_key);
	EVP_PKEY_free(inter_key);
	EVP_PKEY_free(leaf_key);
	EVP_PKEY_free(other_key);
	return 0;
}

/* A leaf for leaf_key, signed by the first CA, written to name; the usual one when spec is NULL. */
static const char *leaf(const char *name, const struct leaf_spec *spec)
{
	const struct leaf_spec usual = {
		.cn = "node-0",
		.san = "IP:127.0.0.1,IP:::1,DNS:node-0.example,DNS:*.svc.example",
		.eku = "serverAuth,clientAuth",
		.from = -DAY,
		.to = 90 * DAY,
	};
	X509 *x = make_cert(leaf_key, ca, ca_key, spec ? spec : &usual);
	const char *path = write_certs(name, x, NULL);

	X509_free(x);
	return path;
}

static struct node_tls_files files(const char *cert)
{
	return (struct node_tls_files){.cert = cert, .key = path_of("leaf.key"), .ca_file = path_of("ca.crt")};
}

/* node_tls_check must refuse with a line that holds want. */
static void expect_refusal(const struct node_tls_files *f, const char *const *names, size_t n, const char *want)
{
	struct node_tls_info info = {.serial = "untouched"};
	struct init_error err = {{0}};

	if (node_tls_check(f, names, n, time(NULL), &info, &err) != -EINVAL)
		fail_msg("accepted, want a refusal with '%s'", want);
	assert_string_equal(info.serial, "untouched");
	if (!strstr(err.msg, want))
		fail_msg("got '%s', want '%s' in it", err.msg, want);
}

static void test_good_set(void **state)
{
	const char *names[] = {"127.0.0.1", "::1", "node-0.example", "NODE-0.Example", "redis-2.svc.example"};
	struct node_tls_files f = files(leaf("good.crt", NULL));
	struct node_tls_info info = {0};
	struct init_error err;
	time_t now = time(NULL);

	(void)state;
	f.client_too = true;
	if (node_tls_check(&f, names, sizeof(names) / sizeof(names[0]), now, &info, &err) != 0)
		fail_msg("%s", err.msg);
	assert_true(info.serial[0] != '\0');
	assert_true(info.not_after > now + 89 * DAY && info.not_after <= now + 90 * DAY + 5);
	assert_true(info.not_before < now);
	assert_false(node_tls_warn_expiry(f.cert, &info, now));
	/* the same files at a later time: within the week before the end, a warning */
	assert_true(node_tls_warn_expiry(f.cert, &info, info.not_after - 3 * DAY));
	/* no names to cover: the chain and the key are all there is */
	assert_int_equal(node_tls_check(&f, NULL, 0, now, NULL, &err), 0);
}

static void test_key_of_another_certificate(void **state)
{
	struct node_tls_files f = files(leaf("mismatch.crt", NULL));

	(void)state;
	f.key = path_of("other.key");
	expect_refusal(&f, NULL, 0, "REDIS_TLS_KEY_FILE='");
	expect_refusal(&f, NULL, 0, "other.key': not the key of the certificate in REDIS_TLS_CERT_FILE='");
}

static void test_expired(void **state)
{
	const struct leaf_spec spec = {.cn = "old", .san = "IP:127.0.0.1", .from = -30 * DAY, .to = -DAY};
	struct node_tls_files f = files(leaf("expired.crt", &spec));

	(void)state;
	expect_refusal(&f, NULL, 0, "expired.crt': expired on '");
}

static void test_not_yet_valid(void **state)
{
	const struct leaf_spec spec = {.cn = "early", .san = "IP:127.0.0.1", .from = DAY, .to = 30 * DAY};
	struct node_tls_files f = files(leaf("early.crt", &spec));

	(void)state;
	expect_refusal(&f, NULL, 0, "early.crt': not valid before '");
	expect_refusal(&f, NULL, 0, "(not yet valid)");
}

static void test_wrong_ca(void **state)
{
	struct node_tls_files f = files(leaf("wrong-ca.crt", NULL));

	(void)state;
	f.ca_file = path_of("ca2.crt");
	expect_refusal(&f, NULL, 0, "wrong-ca.crt': does not chain to the CA of REDIS_TLS_CA_FILE='");
	expect_refusal(&f, NULL, 0, "ca2.crt': unable to get local issuer certificate");
}

static void test_intermediate_in_the_certificate_file(void **state)
{
	const struct leaf_spec spec = {.cn = "via", .san = "DNS:via.example", .from = -DAY, .to = 30 * DAY};
	const char *names[] = {"via.example"};
	X509 *x = make_cert(leaf_key, inter, inter_key, &spec);
	struct node_tls_files f = files(write_certs("chain.crt", x, inter));
	struct init_error err;

	(void)state;
	if (node_tls_check(&f, names, 1, time(NULL), NULL, &err) != 0)
		fail_msg("%s", err.msg);
	/* without the intermediate the chain stops short of the CA */
	f.cert = write_certs("no-chain.crt", x, NULL);
	expect_refusal(&f, names, 1, "does not chain to the CA");
	X509_free(x);
}

static void test_ca_dir(void **state)
{
	char hashed[32], sub[96];
	struct node_tls_files f = files(leaf("for-dir.crt", NULL));
	struct init_error err;

	(void)state;
	(void)snprintf(sub, sizeof(sub), "%s/cadir", dir);
	assert_int_equal(mkdir(sub, 0755), 0);
	(void)snprintf(hashed, sizeof(hashed), "cadir/%08lx.0", X509_subject_name_hash(ca));
	write_certs(hashed, ca, NULL);
	f.ca_file = NULL;
	f.ca_dir = sub;
	if (node_tls_check(&f, NULL, 0, time(NULL), NULL, &err) != 0)
		fail_msg("%s", err.msg);
	f.ca_dir = path_of("ca.crt");
	expect_refusal(&f, NULL, 0, "REDIS_TLS_CA_DIR='");
	expect_refusal(&f, NULL, 0, "ca.crt': not a directory");
}

static void test_sans(void **state)
{
	struct node_tls_files f = files(leaf("sans.crt", NULL));
	const char *ip[] = {"10.0.0.9"}, *ip6[] = {"::2"}, *dns[] = {"node-1.example"}, *deep[] = {"a.b.svc.example"},
		   *bare[] = {"svc.example"}, *both[] = {"127.0.0.1", "node-9.example"};

	(void)state;
	expect_refusal(
		&f, ip, 1,
		"sans.crt': its subject alternative names (IP:127.0.0.1, IP:::1, DNS:node-0.example, "
		"DNS:*.svc.example) do not cover '10.0.0.9', which this node announces: it needs an IP SAN for it");
	expect_refusal(&f, ip6, 1, "do not cover '::2'");
	expect_refusal(&f, dns, 1, "do not cover 'node-1.example', which this node announces: it needs a DNS SAN");
	/* a wildcard covers one label, never two, nor the bare domain */
	expect_refusal(&f, deep, 1, "do not cover 'a.b.svc.example'");
	expect_refusal(&f, bare, 1, "do not cover 'svc.example'");
	/* every name must be covered, not one of them */
	expect_refusal(&f, both, 2, "do not cover 'node-9.example'");
}

/* a subject CN never counts: clients look at the SANs only */
static void test_cn_is_not_a_name(void **state)
{
	const struct leaf_spec no_san = {.cn = "node-0.example", .from = -DAY, .to = 30 * DAY};
	const char *names[] = {"node-0.example"};
	struct node_tls_files f = files(leaf("cn-only.crt", &no_san));

	(void)state;
	expect_refusal(&f, names, 1, "its subject alternative names (none) do not cover 'node-0.example'");
}

static void test_key_with_passphrase(void **state)
{
	struct node_tls_files f = files(leaf("enc.crt", NULL));
	struct init_error err;

	(void)state;
	f.key = write_key("enc.key", leaf_key, "pass phrase \"1\"");
	f.key_pass = "pass phrase \"1\"";
	if (node_tls_check(&f, NULL, 0, time(NULL), NULL, &err) != 0)
		fail_msg("%s", err.msg);
	f.key_pass = NULL;
	expect_refusal(&f, NULL, 0, "enc.key': the key is encrypted: set REDIS_TLS_KEY_FILE_PASS");
	f.key_pass = "wrong";
	expect_refusal(&f, NULL, 0, "enc.key': REDIS_TLS_KEY_FILE_PASS does not decrypt the key");
}

static void test_garbage_and_missing_files(void **state)
{
	char garbage[128];
	struct node_tls_files f;

	/* path_of's buffers are reused: this one is kept */
	(void)snprintf(garbage, sizeof(garbage), "%s",
		       write_text("garbage.pem", "hello\n-----BEGIN CERTIFICATE-----\nnot base64\n"));
	f = files(garbage);

	(void)state;
	expect_refusal(&f, NULL, 0, "REDIS_TLS_CERT_FILE='");
	expect_refusal(&f, NULL, 0, "garbage.pem': no PEM certificate in it");
	f = files(leaf("g.crt", NULL));
	f.key = garbage;
	expect_refusal(&f, NULL, 0, "REDIS_TLS_KEY_FILE='");
	expect_refusal(&f, NULL, 0, "garbage.pem': no PEM private key in it");
	f = files(leaf("g.crt", NULL));
	f.ca_file = garbage;
	expect_refusal(&f, NULL, 0, "REDIS_TLS_CA_FILE='");
	expect_refusal(&f, NULL, 0, "garbage.pem': no PEM certificate in it");
	f = files(leaf("g.crt", NULL));
	f.dh_params = garbage;
	expect_refusal(&f, NULL, 0, "REDIS_TLS_DH_PARAMS_FILE='");
	expect_refusal(&f, NULL, 0, "garbage.pem': no PEM DH parameters in it");
	f = files(path_of("missing.crt"));
	expect_refusal(&f, NULL, 0, "missing.crt': cannot read it: No such file or directory");
	f = files(dir);
	expect_refusal(&f, NULL, 0, "': cannot read it: not a regular file");
}

static void test_extended_key_usage(void **state)
{
	const struct leaf_spec server_only = {
		.cn = "srv", .san = "IP:127.0.0.1", .eku = "serverAuth", .from = -DAY, .to = 30 * DAY};
	const struct leaf_spec client_only = {
		.cn = "cli", .san = "IP:127.0.0.1", .eku = "clientAuth", .from = -DAY, .to = 30 * DAY};
	struct node_tls_files f = files(leaf("server-only.crt", &server_only));
	struct init_error err;

	(void)state;
	/* a standalone node, or peers that do not check: a server certificate is enough */
	assert_int_equal(node_tls_check(&f, NULL, 0, time(NULL), NULL, &err), 0);
	f.client_too = true;
	expect_refusal(&f, NULL, 0,
		       "server-only.crt': its extended key usage does not allow a TLS client (clientAuth)");
	f.cert = leaf("client-only.crt", &client_only);
	expect_refusal(&f, NULL, 0,
		       "client-only.crt': its extended key usage does not allow a TLS server (serverAuth)");
}

/* ---- the settings ---- */

static int load(struct node_config *c, char **env, struct init_error *err)
{
	int argind;

	assert_int_equal(node_config_defaults(c, err), 0);
	return init_config_load(&c->core, 0, NULL, &argind, env, err);
}

static void expect_settings(char **env, const char *want)
{
	struct node_config c;
	struct init_error err = {{0}};
	int r;

	if (load(&c, env, &err) != 0)
		fail_msg("config: %s", err.msg);
	r = node_tls_check_settings(&c.opt, &err);
	if (!want)
		assert_int_equal(r, 0);
	else if (r != -EINVAL || strcmp(err.msg, want) != 0)
		fail_msg("got %d '%s', want '%s'", r, err.msg, want);
	node_config_free(&c);
}

static void test_settings(void **state)
{
	char *no_files[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_ENABLED=yes", NULL};
	char *no_ca[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_ENABLED=yes", "REDIS_TLS_CERT_FILE=/c",
			 "REDIS_TLS_KEY_FILE=/k", NULL};
	char *owned[] = {"KVINIT_CONFIG=/dev/null",
			 "REDIS_TLS_ENABLED=yes",
			 "REDIS_TLS_CERT_FILE=/c",
			 "REDIS_TLS_KEY_FILE=/k",
			 "REDIS_TLS_CA_DIR=/d",
			 "REDIS_EXTRA_FLAGS=--tls-port 7000",
			 NULL};
	char *fine[] = {"KVINIT_CONFIG=/dev/null",
			"REDIS_TLS_ENABLED=yes",
			"REDIS_TLS_CERT_FILE=/c",
			"REDIS_TLS_KEY_FILE=/k",
			"REDIS_TLS_CA_FILE=/a",
			"REDIS_EXTRA_FLAGS=--tls-protocols TLSv1.3",
			NULL};
	char *off[] = {"KVINIT_CONFIG=/dev/null", "REDIS_EXTRA_FLAGS=--tls-port 7000", NULL};

	(void)state;
	expect_settings(no_files, "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CERT_FILE and REDIS_TLS_KEY_FILE, the node's "
				  "certificate and its key");
	expect_settings(no_ca, "REDIS_TLS_ENABLED=yes needs REDIS_TLS_CA_FILE or REDIS_TLS_CA_DIR, the CA that peers "
			       "and clients are verified against");
	expect_settings(owned, "REDIS_EXTRA_FLAGS='--tls-port 7000': '--tls-port' is set by kvinit itself with "
			       "REDIS_TLS_ENABLED=yes: use the REDIS_TLS_* settings");
	expect_settings(fine, NULL);
	/* without REDIS_TLS_ENABLED, TLS by REDIS_EXTRA_FLAGS stays the user's */
	expect_settings(off, NULL);
}

static void test_ports(void **state)
{
	char *same[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_ENABLED=yes", NULL};
	char *apart[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_ENABLED=yes", "REDIS_TLS_PORT=6380", NULL};
	char *plain[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_PORT_NUMBER=6380", NULL};
	char *bad[] = {"KVINIT_CONFIG=/dev/null", "REDIS_TLS_AUTH_CLIENTS=maybe", NULL};
	struct node_config c;
	struct init_error err;

	(void)state;
	assert_int_equal(load(&c, same, &err), 0);
	assert_false(node_plain_port_open(&c.opt));
	assert_int_equal(node_client_port(&c.opt), 6379);
	node_config_free(&c);
	/* Bitnami's older name for the TLS port */
	assert_int_equal(load(&c, apart, &err), 0);
	assert_true(node_plain_port_open(&c.opt));
	assert_int_equal(node_client_port(&c.opt), 6380);
	node_config_free(&c);
	assert_int_equal(load(&c, plain, &err), 0);
	assert_true(node_plain_port_open(&c.opt));
	assert_int_equal(node_client_port(&c.opt), 6379);
	node_config_free(&c);
	assert_int_equal(load(&c, bad, &err), -EINVAL);
	assert_string_equal(err.msg, "REDIS_TLS_AUTH_CLIENTS='maybe': must be one of yes, no or optional");
	node_config_free(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_set),
		cmocka_unit_test(test_key_of_another_certificate),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_wrong_ca),
		cmocka_unit_test(test_intermediate_in_the_certificate_file),
		cmocka_unit_test(test_ca_dir),
		cmocka_unit_test(test_sans),
		cmocka_unit_test(test_cn_is_not_a_name),
		cmocka_unit_test(test_key_with_passphrase),
		cmocka_unit_test(test_garbage_and_missing_files),
		cmocka_unit_test(test_extended_key_usage),
		cmocka_unit_test(test_settings),
		cmocka_unit_test(test_ports),
	};

	return cmocka_run_group_tests_name("tls", tests, setup, teardown);
}
