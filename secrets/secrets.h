/* SPDX-License-Identifier: MIT */
/* The secrets/ module: reading a secret file safely, resolving the node's password, SHA-256 for Redis ACLs. */
#ifndef KVINIT_SECRETS_H
#define KVINIT_SECRETS_H

#include <stdbool.h>
#include <stddef.h>

struct init_error;

/* Large enough for any password or key a person would paste; small enough that a wrong path is noticed. */
#define SECRETS_MAX_SIZE 4096

/* Where Docker puts the secret named redis_password; used when REDIS_PASSWORD_FILE is not set. */
#define SECRETS_DEFAULT_PASSWORD_FILE "/run/secrets/redis_password"

/* A secret owned by the holder: data has len + 1 bytes, NUL-terminated; release it with secrets_wipe(). */
struct secrets_value {
	char *data;
	size_t len;
};

/*
 * Reads one secret file. Returns 0, or a negative code that names the rule it broke (secrets_strerror() says it
 * in words):
 *   -EXDEV    a symlink leads outside the directory of path (absolute symlinks count as outside: Kubernetes'
 *             secret volumes use relative ones). Not checked on kernels without openat2 (before 5.6).
 *   -EBADFD   not a regular file: a directory, FIFO, socket or device
 *   -EFBIG    the file is larger than SECRETS_MAX_SIZE bytes (its trailing newline included)
 *   -ENODATA  empty once one trailing "\n" or "\r\n" is stripped
 *   -EILSEQ   contains a NUL byte
 *   -EBADMSG  contains a line break ("\n" or "\r") other than the one trailing newline
 *   other     -errno of open or read (-ENOENT, -EACCES, ...), -ENOMEM
 * *ret_world_readable (may be NULL) is set when the file's mode has S_IROTH, so the caller can warn.
 * On failure no secret byte is left in memory and the out-parameters are not touched.
 */
int secrets_read_file(const char *path, struct secrets_value *ret_value, bool *ret_world_readable);

/* The rule behind a code of secrets_read_file(), as words that follow a name ("is empty"); strerror otherwise. */
const char *secrets_strerror(int r);

/* Wipes and frees the secret and zeroes v; safe on a zeroed struct and when called twice. */
void secrets_wipe(struct secrets_value *v);

enum secrets_source { SECRETS_SRC_NONE, SECRETS_SRC_FILE, SECRETS_SRC_DEFAULT_FILE, SECRETS_SRC_ENV };

struct secrets_password {
	struct secrets_value value; /* data is NULL with SECRETS_SRC_NONE */
	enum secrets_source source;
	char *path; /* the file it came from, or NULL */
	bool world_readable;
};

/*
 * Finds the node's password, first match wins: REDIS_PASSWORD_FILE (must exist and be valid), default_path (may be
 * NULL; used only when it exists), REDIS_PASSWORD (the caller should warn: environment variables leak through
 * /proc, `docker inspect` and crash reports; the variable also stays in envp, so the caller must keep it from the
 * child). Empty variables count as unset; both variables set is an error. No password anywhere returns 0 with
 * SECRETS_SRC_NONE. On failure err holds one line naming the variable or file and the rule, never the value.
 */
int secrets_load_password(char *const *envp, const char *default_path, struct secrets_password *ret,
			  struct init_error *err);

/* Wipes the password and frees everything; safe on a zeroed struct. */
void secrets_password_free(struct secrets_password *p);

/* SHA-256 (FIPS 180-4) of data as 64 lowercase hex characters and a NUL: the "#<hash>" form of Redis ACL rules. */
void secrets_sha256_hex(const void *data, size_t len, char out[65]);

#endif
