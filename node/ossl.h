/* SPDX-License-Identifier: MIT */
/*
 * node/ossl.c: OpenSSL (Debian's libssl3), loaded when TLS is first used and not before. kvinit starts at every
 * container start and `kvinit run` and a node without TLS never use OpenSSL: linked in, its 4 MB and 19000
 * relocations (statically) or its loading (as a shared library) cost every start 30-80 % more time before the exec
 * (tests/bench/pid1). libssl.so.3 is in every server image anyway: redis-server and valkey-server link it.
 *
 * Include this header instead of OpenSSL's: it includes them, and makes each OpenSSL function kvinit uses a call
 * through a pointer filled by node_ossl_load(), which must have succeeded before any of them is called. A function
 * that is not in the list below fails the link (kvinit does not link libssl): add it to both lists.
 */
#ifndef KVINIT_NODE_OSSL_H
#define KVINIT_NODE_OSSL_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

struct init_error;

/*
 * Loads libssl.so.3 and libcrypto.so.3 once per process; later calls return at once. 0, or -ENOENT (a function
 * missing: -ENOSYS) with one line in err.
 */
int node_ossl_load(struct init_error *err);

/* Every OpenSSL function kvinit calls, directly or through OpenSSL's macros (SSL_set_tlsext_host_name: SSL_ctrl). */
#define NODE_OSSL_FUNCTIONS(X)                                                                                         \
	X(ASN1_INTEGER_to_BN)                                                                                          \
	X(ASN1_STRING_get0_data)                                                                                       \
	X(ASN1_STRING_length)                                                                                          \
	X(ASN1_TIME_to_tm)                                                                                             \
	X(BIO_clear_flags)                                                                                             \
	X(BIO_ctrl)                                                                                                    \
	X(BIO_free)                                                                                                    \
	X(BIO_int_ctrl)                                                                                                \
	X(BIO_meth_free)                                                                                               \
	X(BIO_meth_get_create)                                                                                         \
	X(BIO_meth_get_ctrl)                                                                                           \
	X(BIO_meth_get_destroy)                                                                                        \
	X(BIO_meth_get_puts)                                                                                           \
	X(BIO_meth_get_read)                                                                                           \
	X(BIO_meth_new)                                                                                                \
	X(BIO_meth_set_create)                                                                                         \
	X(BIO_meth_set_ctrl)                                                                                           \
	X(BIO_meth_set_destroy)                                                                                        \
	X(BIO_meth_set_puts)                                                                                           \
	X(BIO_meth_set_read)                                                                                           \
	X(BIO_meth_set_write)                                                                                          \
	X(BIO_new)                                                                                                     \
	X(BIO_new_mem_buf)                                                                                             \
	X(BIO_s_socket)                                                                                                \
	X(BIO_set_flags)                                                                                               \
	X(BIO_sock_should_retry)                                                                                       \
	X(BN_bn2hex)                                                                                                   \
	X(BN_free)                                                                                                     \
	X(CRYPTO_free)                                                                                                 \
	X(ERR_clear_error)                                                                                             \
	X(ERR_peek_error)                                                                                              \
	X(ERR_reason_error_string)                                                                                     \
	X(SSL_CTX_check_private_key)                                                                                   \
	X(SSL_CTX_ctrl)                                                                                                \
	X(SSL_CTX_free)                                                                                                \
	X(SSL_CTX_load_verify_locations)                                                                               \
	X(SSL_CTX_new)                                                                                                 \
	X(SSL_CTX_set_default_passwd_cb)                                                                               \
	X(SSL_CTX_set_default_passwd_cb_userdata)                                                                      \
	X(SSL_CTX_set_options)                                                                                         \
	X(SSL_CTX_set_verify)                                                                                          \
	X(SSL_CTX_use_PrivateKey_file)                                                                                 \
	X(SSL_CTX_use_certificate_chain_file)                                                                          \
	X(SSL_connect)                                                                                                 \
	X(SSL_ctrl)                                                                                                    \
	X(SSL_free)                                                                                                    \
	X(SSL_get0_param)                                                                                              \
	X(SSL_get1_peer_certificate)                                                                                   \
	X(SSL_get_error)                                                                                               \
	X(SSL_get_verify_result)                                                                                       \
	X(SSL_is_init_finished)                                                                                        \
	X(SSL_new)                                                                                                     \
	X(SSL_read)                                                                                                    \
	X(SSL_set_bio)                                                                                                 \
	X(SSL_shutdown)                                                                                                \
	X(SSL_write)                                                                                                   \
	X(TLS_client_method)                                                                                           \
	X(X509_VERIFY_PARAM_set1_host)                                                                                 \
	X(X509_VERIFY_PARAM_set1_ip_asc)                                                                               \
	X(X509_VERIFY_PARAM_set_hostflags)                                                                             \
	X(X509_free)                                                                                                   \
	X(X509_get_serialNumber)                                                                                       \
	X(X509_verify_cert_error_string)

struct node_ossl_functions {
#define NODE_OSSL_POINTER(f) __typeof__(f) *f;
	NODE_OSSL_FUNCTIONS(NODE_OSSL_POINTER)
#undef NODE_OSSL_POINTER
};
extern struct node_ossl_functions node_ossl;

/* From here on, a call of an OpenSSL function goes through node_ossl (ossl.c itself fills it and skips this). */
#ifndef NODE_OSSL_LOADER
#define ASN1_INTEGER_to_BN		       node_ossl.ASN1_INTEGER_to_BN
#define ASN1_STRING_get0_data		       node_ossl.ASN1_STRING_get0_data
#define ASN1_STRING_length		       node_ossl.ASN1_STRING_length
#define ASN1_TIME_to_tm			       node_ossl.ASN1_TIME_to_tm
#define BIO_clear_flags			       node_ossl.BIO_clear_flags
#define BIO_ctrl			       node_ossl.BIO_ctrl
#define BIO_free			       node_ossl.BIO_free
#define BIO_int_ctrl			       node_ossl.BIO_int_ctrl
#define BIO_meth_free			       node_ossl.BIO_meth_free
#define BIO_meth_get_create		       node_ossl.BIO_meth_get_create
#define BIO_meth_get_ctrl		       node_ossl.BIO_meth_get_ctrl
#define BIO_meth_get_destroy		       node_ossl.BIO_meth_get_destroy
#define BIO_meth_get_puts		       node_ossl.BIO_meth_get_puts
#define BIO_meth_get_read		       node_ossl.BIO_meth_get_read
#define BIO_meth_new			       node_ossl.BIO_meth_new
#define BIO_meth_set_create		       node_ossl.BIO_meth_set_create
#define BIO_meth_set_ctrl		       node_ossl.BIO_meth_set_ctrl
#define BIO_meth_set_destroy		       node_ossl.BIO_meth_set_destroy
#define BIO_meth_set_puts		       node_ossl.BIO_meth_set_puts
#define BIO_meth_set_read		       node_ossl.BIO_meth_set_read
#define BIO_meth_set_write		       node_ossl.BIO_meth_set_write
#define BIO_new				       node_ossl.BIO_new
#define BIO_new_mem_buf			       node_ossl.BIO_new_mem_buf
#define BIO_s_socket			       node_ossl.BIO_s_socket
#define BIO_set_flags			       node_ossl.BIO_set_flags
#define BIO_sock_should_retry		       node_ossl.BIO_sock_should_retry
#define BN_bn2hex			       node_ossl.BN_bn2hex
#define BN_free				       node_ossl.BN_free
#define CRYPTO_free			       node_ossl.CRYPTO_free
#define ERR_clear_error			       node_ossl.ERR_clear_error
#define ERR_peek_error			       node_ossl.ERR_peek_error
#define ERR_reason_error_string		       node_ossl.ERR_reason_error_string
#define SSL_CTX_check_private_key	       node_ossl.SSL_CTX_check_private_key
#define SSL_CTX_ctrl			       node_ossl.SSL_CTX_ctrl
#define SSL_CTX_free			       node_ossl.SSL_CTX_free
#define SSL_CTX_load_verify_locations	       node_ossl.SSL_CTX_load_verify_locations
#define SSL_CTX_new			       node_ossl.SSL_CTX_new
#define SSL_CTX_set_default_passwd_cb	       node_ossl.SSL_CTX_set_default_passwd_cb
#define SSL_CTX_set_default_passwd_cb_userdata node_ossl.SSL_CTX_set_default_passwd_cb_userdata
#define SSL_CTX_set_options		       node_ossl.SSL_CTX_set_options
#define SSL_CTX_set_verify		       node_ossl.SSL_CTX_set_verify
#define SSL_CTX_use_PrivateKey_file	       node_ossl.SSL_CTX_use_PrivateKey_file
#define SSL_CTX_use_certificate_chain_file     node_ossl.SSL_CTX_use_certificate_chain_file
#define SSL_connect			       node_ossl.SSL_connect
#define SSL_ctrl			       node_ossl.SSL_ctrl
#define SSL_free			       node_ossl.SSL_free
#define SSL_get0_param			       node_ossl.SSL_get0_param
#define SSL_get1_peer_certificate	       node_ossl.SSL_get1_peer_certificate
#define SSL_get_error			       node_ossl.SSL_get_error
#define SSL_get_verify_result		       node_ossl.SSL_get_verify_result
#define SSL_is_init_finished		       node_ossl.SSL_is_init_finished
#define SSL_new				       node_ossl.SSL_new
#define SSL_read			       node_ossl.SSL_read
#define SSL_set_bio			       node_ossl.SSL_set_bio
#define SSL_shutdown			       node_ossl.SSL_shutdown
#define SSL_write			       node_ossl.SSL_write
#define TLS_client_method		       node_ossl.TLS_client_method
#define X509_VERIFY_PARAM_set1_host	       node_ossl.X509_VERIFY_PARAM_set1_host
#define X509_VERIFY_PARAM_set1_ip_asc	       node_ossl.X509_VERIFY_PARAM_set1_ip_asc
#define X509_VERIFY_PARAM_set_hostflags	       node_ossl.X509_VERIFY_PARAM_set_hostflags
#define X509_free			       node_ossl.X509_free
#define X509_get_serialNumber		       node_ossl.X509_get_serialNumber
#define X509_verify_cert_error_string	       node_ossl.X509_verify_cert_error_string
#endif

#endif
