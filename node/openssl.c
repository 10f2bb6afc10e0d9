/* SPDX-License-Identifier: MIT */
/* OpenSSL's functions, resolved on first use (openssl.h says why). */
#include <dlfcn.h>
#include <errno.h>

#include "openssl.h"

#define NODE_OPENSSL_DEFINE(name) __typeof__(name) *sym_##name;
NODE_LIBCRYPTO_SYMBOLS(NODE_OPENSSL_DEFINE)
NODE_LIBSSL_SYMBOLS(NODE_OPENSSL_DEFINE)
#undef NODE_OPENSSL_DEFINE

/* The first load's result, and its message, for every later call. */
static int loaded;
static struct init_error load_error;

static int resolve(void *lib, const char *soname, const char *name, void **ret)
{
	void *p = dlsym(lib, name);

	if (!p)
		return init_error_set(&load_error, -ENOPKG, "TLS: '%s' has no '%s': kvinit needs OpenSSL 3", soname,
				      name);
	*ret = p;
	return 0;
}

static int load(void)
{
	void *crypto, *ssl;

	/* never unloaded: the process keeps using what it resolved */
	crypto = dlopen("libcrypto.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!crypto)
		return init_error_set(&load_error, -ENOPKG,
				      "TLS needs OpenSSL's libcrypto.so.3 (Debian's libssl3 package): %s", dlerror());
	ssl = dlopen("libssl.so.3", RTLD_NOW | RTLD_LOCAL);
	if (!ssl)
		return init_error_set(&load_error, -ENOPKG,
				      "TLS needs OpenSSL's libssl.so.3 (Debian's libssl3 package): %s", dlerror());
#define NODE_OPENSSL_RESOLVE(lib, soname, name)                                                                        \
	if (resolve(lib, soname, #name, (void **)&sym_##name) < 0)                                                     \
		return -ENOPKG;
#define NODE_OPENSSL_CRYPTO(name) NODE_OPENSSL_RESOLVE(crypto, "libcrypto.so.3", name)
#define NODE_OPENSSL_SSL(name)	  NODE_OPENSSL_RESOLVE(ssl, "libssl.so.3", name)
	NODE_LIBCRYPTO_SYMBOLS(NODE_OPENSSL_CRYPTO)
	NODE_LIBSSL_SYMBOLS(NODE_OPENSSL_SSL)
#undef NODE_OPENSSL_CRYPTO
#undef NODE_OPENSSL_SSL
#undef NODE_OPENSSL_RESOLVE
	(void)ssl;
	return 0;
}

int node_openssl_load(struct init_error *err)
{
	if (!loaded)
		loaded = load() < 0 ? -ENOPKG : 1;
	if (loaded < 0) {
		if (err)
			*err = load_error;
		return -ENOPKG;
	}
	return 0;
}
