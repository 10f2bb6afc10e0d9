/* SPDX-License-Identifier: MIT */
/* OpenSSL loaded on first use (see ossl.h for why): dlopen of libssl.so.3, which brings libcrypto.so.3 with it. */
#include <dlfcn.h>
#include <errno.h>

#define NODE_OSSL_LOADER
#include "ossl.h"
#include "init.h"

/* The SONAME of OpenSSL 3's libssl (Debian 12's libssl3, trixie's libssl3t64); it needs libcrypto.so.3. */
#define LIBSSL "libssl.so.3"

struct node_ossl_functions node_ossl;

int node_ossl_load(struct init_error *err)
{
	static void *ssl;
	void *f;

	if (ssl)
		return 0;
	/* never unloaded: OpenSSL keeps its state for the life of the process */
	f = dlopen(LIBSSL, RTLD_NOW | RTLD_LOCAL);
	if (!f)
		return init_error_set(err, -ENOENT, "TLS needs OpenSSL's '%s': %s", LIBSSL, dlerror());
		/* each name from libssl or, through it, libcrypto (dlsym searches a library's dependencies too) */
#define NODE_OSSL_RESOLVE(name)                                                                                        \
	node_ossl.name = (__typeof__(node_ossl.name))dlsym(f, #name);                                                  \
	if (!node_ossl.name)                                                                                           \
		return init_error_set(err, -ENOSYS, "TLS: OpenSSL's '%s' has no '%s'", LIBSSL, #name);
	NODE_OSSL_FUNCTIONS(NODE_OSSL_RESOLVE)
#undef NODE_OSSL_RESOLVE
	ssl = f;
	return 0;
}
