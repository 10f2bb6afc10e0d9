/* SPDX-License-Identifier: MIT */
/*
 * OpenSSL, loaded only where TLS is used (openssl.c). kvinit starts on every container start and most nodes run
 * without TLS: linked in, libcrypto's tables of pointers are relocated at every exec (kvinit's own anonymous memory
 * went from 116 kB to 460 kB, 4.8x tini's, with nothing of it used). So kvinit calls OpenSSL through pointers it
 * resolves with dlopen on first use, as systemd does for its optional libraries: libcrypto.so.3 and libssl.so.3
 * are Debian's libssl3, which the server's package needs anyway. The headers give the types; each function used is
 * listed once below and called as sym_NAME. Stack macros (sk_X509_*) are inline calls of OPENSSL_sk_*, so code calls
 * sym_OPENSSL_sk_* itself.
 */
#ifndef KVINIT_NODE_OPENSSL_H
#define KVINIT_NODE_OPENSSL_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "init.h"

/* From libcrypto.so.3: the certificate checks (tls.c), the socket and checks of conn_tls.c, the key cli.c decrypts. */
#define NODE_LIBCRYPTO_SYMBOLS(X)                                                                                      \
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
	X(BIO_new_fd)                                                                                                  \
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
	X(EVP_PKEY_free)                                                                                               \
	X(EVP_PKEY_get_base_id)                                                                                        \
	X(GENERAL_NAMES_free)                                                                                          \
	X(OPENSSL_cleanse)                                                                                             \
	X(OPENSSL_sk_new_null)                                                                                         \
	X(OPENSSL_sk_num)                                                                                              \
	X(OPENSSL_sk_pop_free)                                                                                         \
	X(OPENSSL_sk_push)                                                                                             \
	X(OPENSSL_sk_value)                                                                                            \
	X(PEM_read_bio_Parameters)                                                                                     \
	X(PEM_read_bio_PrivateKey)                                                                                     \
	X(PEM_read_bio_X509)                                                                                           \
	X(PEM_write_bio_PrivateKey)                                                                                    \
	X(X509_VERIFY_PARAM_set1_host)                                                                                 \
	X(X509_VERIFY_PARAM_set1_ip_asc)                                                                               \
	X(X509_VERIFY_PARAM_set_hostflags)                                                                             \
	X(X509_STORE_CTX_free)                                                                                         \
	X(X509_STORE_CTX_get_error)                                                                                    \
	X(X509_STORE_CTX_init)                                                                                         \
	X(X509_STORE_CTX_new)                                                                                          \
	X(X509_STORE_CTX_set_time)                                                                                     \
	X(X509_STORE_add_cert)                                                                                         \
	X(X509_STORE_free)                                                                                             \
	X(X509_STORE_load_locations)                                                                                   \
	X(X509_STORE_new)                                                                                              \
	X(X509_check_host)                                                                                             \
	X(X509_check_ip_asc)                                                                                           \
	X(X509_check_private_key)                                                                                      \
	X(X509_free)                                                                                                   \
	X(X509_get0_notAfter)                                                                                          \
	X(X509_get0_notBefore)                                                                                         \
	X(X509_get0_serialNumber)                                                                                      \
	X(X509_get_serialNumber)                                                                                       \
	X(X509_get_ext_d2i)                                                                                            \
	X(X509_get_extended_key_usage)                                                                                 \
	X(X509_verify_cert)                                                                                            \
	X(X509_verify_cert_error_string)

/* From libssl.so.3: kvinit's own TLS connections (conn_tls.c). */
#define NODE_LIBSSL_SYMBOLS(X)                                                                                         \
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
	X(SSL_pending)                                                                                                 \
	X(SSL_read)                                                                                                    \
	X(SSL_set_bio)                                                                                                 \
	X(SSL_shutdown)                                                                                                \
	X(SSL_write)                                                                                                   \
	X(TLS_client_method)

#define NODE_OPENSSL_DECLARE(name) extern __typeof__(name) *sym_##name;
NODE_LIBCRYPTO_SYMBOLS(NODE_OPENSSL_DECLARE)
NODE_LIBSSL_SYMBOLS(NODE_OPENSSL_DECLARE)
#undef NODE_OPENSSL_DECLARE

/*
 * Loads libcrypto.so.3 and libssl.so.3 and resolves every symbol above, once per process; later calls return what
 * the first did. 0, or -ENOPKG with one line in err (the library or a symbol is missing: OpenSSL 3 is needed).
 */
int node_openssl_load(struct init_error *err);

#endif
