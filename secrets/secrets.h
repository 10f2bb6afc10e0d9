/* SPDX-License-Identifier: MIT */
/* The secrets/ module: reading a secret file safely, resolving the node's password, SHA-256 for Redis ACLs. */
#ifndef KVINIT_SECRETS_H
#define KVINIT_SECRETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "init.h"

/*
 * Large enough for any password or key a person would paste; small enough that a wrong path is noticed. A secret
 * file is a NAME_FILE value (init_read_value_file) read beneath its directory.
 */
#define SECRETS_MAX_SIZE INIT_VALUE_MAX

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
/* A copy of len bytes of data, NUL-terminated, into *ret (not touched on failure). 0 or -ENOMEM. */
int secrets_value_copy(const char *data, size_t len, struct secrets_value *ret);
/* The same bytes. */
bool secrets_value_equal(const struct secrets_value *a, const struct secrets_value *b);

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

/* ---- rotation (rotation.c): the password files and the set of passwords the node accepts; pure, no I/O ---- */

/*
 * The three files of a rotation: the current password, the next one (accepted, not yet sent) and the previous
 * one (still accepted, no longer sent). Missing or empty next/previous files mean "none".
 */
enum secrets_slot { SECRETS_CURRENT, SECRETS_NEXT, SECRETS_PREVIOUS, SECRETS__SLOTS };

struct secrets_paths {
	char *path[SECRETS__SLOTS];
};

/*
 * The files next to current_path: REDIS_PASSWORD_NEXT_FILE and REDIS_PASSWORD_PREVIOUS_FILE when set, else
 * "<current_path>_next" and "<current_path>_previous". Returns 0 or -ENOMEM, -EINVAL with err filled.
 */
int secrets_paths_resolve(char *const *envp, const char *current_path, struct secrets_paths *ret,
			  struct init_error *err);
void secrets_paths_free(struct secrets_paths *p);
const char *secrets_slot_name(enum secrets_slot slot);

/* One read of the three files. error[slot] is 0 with a value, else the code of secrets_read_file(). */
struct secrets_set {
	struct secrets_value value[SECRETS__SLOTS];
	int error[SECRETS__SLOTS];
};

/* Reads every file of p into ret (zeroed first); never fails as a whole. */
void secrets_set_read(const struct secrets_paths *p, struct secrets_set *ret);
/* Same values and the same errors in every slot. */
bool secrets_set_equal(const struct secrets_set *a, const struct secrets_set *b);
void secrets_set_wipe(struct secrets_set *s);
/* A slot without a password that is not a problem: the file is missing or empty (next and previous only). */
bool secrets_slot_absent(enum secrets_slot slot, int error);

/* One password the node accepts. */
struct secrets_accepted {
	struct secrets_value value;
	char hash[65];
	unsigned slots;	       /* (1 << slot) for every file that holds it now; 0 once it left them all */
	uint64_t expires_usec; /* when slots is 0: the end of its grace period */
};

#define SECRETS_MAX_ACCEPTED 8

/*
 * What the node accepts and sends. A password that leaves every file stays accepted for grace_usec, except one
 * that left the previous file, which goes at once: removing `_previous` is how an operator says "the old one is
 * done". A slot whose file cannot be read (an empty or missing current file, a next file with a line break)
 * keeps what it held, so a half-written file never takes a password away.
 */
struct secrets_rotation {
	struct secrets_accepted entry[SECRETS_MAX_ACCEPTED];
	size_t n;
	size_t current; /* the entry that is sent; valid when n > 0 */
	uint64_t grace_usec;
};

/* Folds one read into r. Returns 1 when anything changed (a password, a file it is in), 0 when not, -ENOMEM. */
int secrets_rotation_update(struct secrets_rotation *r, const struct secrets_set *set, uint64_t now_usec);
/* Drops passwords whose grace ended by now_usec; returns 1 when one went. */
int secrets_rotation_expire(struct secrets_rotation *r, uint64_t now_usec);
/* The earliest end of a grace period, or 0 when none runs. */
uint64_t secrets_rotation_next_expiry(const struct secrets_rotation *r);
/* The entry at position k when the sent one comes first and the others follow in the order they came. */
size_t secrets_rotation_order(const struct secrets_rotation *r, size_t k);
/* "#1a2b3c4d #5e6f7a8b" (accepted, the sent one first) into buf. */
void secrets_rotation_describe(const struct secrets_rotation *r, char *buf, size_t size);
void secrets_rotation_free(struct secrets_rotation *r);

/*
 * Every password a running server may hold: what it was given since its last completed rotation, which a helper
 * that logs in to it tries after the rotation's own (a bounded list; the oldest goes first when it is full).
 */
struct secrets_logins {
	struct secrets_value value[2 * SECRETS_MAX_ACCEPTED];
	size_t n;
};

/* Adds v unless it is there (out of memory: left out; the rotation's own passwords are tried first anyway). */
void secrets_logins_add(struct secrets_logins *l, const struct secrets_value *v);
/* The server holds exactly r's passwords now: it started with them, or a rotation completed. */
void secrets_logins_reset(struct secrets_logins *l, const struct secrets_rotation *r);
void secrets_logins_wipe(struct secrets_logins *l);

/* ---- watching files (watch.c): the password files, the TLS files, the users file; one mechanism ---- */
struct init_loop;
struct secrets_watch;
/* A change of the files, read twice the same; the set stays the watch's (valid until the next call). */
typedef void (*secrets_watch_fn)(const struct secrets_set *set, void *userdata);

/*
 * Watches the files of paths (which must outlive the watch) from loop: inotify on each file and its directory,
 * plus a read every poll_usec (0: none). initial is what the owner has now. Calls fn on a change.
 */
int secrets_watch_new(struct init_loop *loop, const struct secrets_paths *paths, const struct secrets_set *initial,
		      uint64_t poll_usec, secrets_watch_fn fn, void *userdata, struct secrets_watch **ret);

/* A change of the files of a files watch (read twice the same); the owner reads them. */
typedef void (*secrets_files_fn)(void *userdata);
#define SECRETS_WATCH_BENEATH  1U /* files read with INIT_READ_BENEATH (a secret volume's symlinks stay inside) */
#define SECRETS_WATCH_FROM_NOW 2U /* the starting point is the files as they are now: no first call */

/*
 * The same watch for n files of any shape (copied; each read up to max_size bytes; a directory counts by its
 * entries, names and contents): fn is called when the content of any changed, as seen by two reads in a row; a
 * file that cannot be read counts as a content of its own. Without SECRETS_WATCH_FROM_NOW fn is also called once
 * soon after the start, when the first reads agree, so a change since the owner read them is not missed.
 */
int secrets_watch_files(struct init_loop *loop, const char *const *paths, size_t n, size_t max_size, unsigned flags,
			uint64_t poll_usec, secrets_files_fn fn, void *userdata, struct secrets_watch **ret);
/* The files to watch from now on (the owner's file names others now). 0 or -ENOMEM (the old list stays). */
int secrets_watch_set_paths(struct secrets_watch *w, const char *const *paths, size_t n);
/* Once the loop has ended (the watch does not take itself out of it). */
void secrets_watch_free(struct secrets_watch *w);

#endif
