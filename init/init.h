/* SPDX-License-Identifier: MIT */
/* The init/ module: what the other modules may use of the PID-1 core. */
#ifndef KVINIT_INIT_H
#define KVINIT_INIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

/* Exit codes that are kvinit's own (s6 convention); everything else is the child's. */
#define INIT_EXIT_USAGE	   100
#define INIT_EXIT_SYSCALL  111
#define INIT_EXIT_NOEXEC   126
#define INIT_EXIT_NOTFOUND 127

/* ---- cleanup attributes ---- */
#define _cleanup_(f) __attribute__((cleanup(f)))
static inline void init_freep(void *p)
{
	free(*(void **)p);
}
static inline void init_closep(const int *fd)
{
	if (*fd >= 0)
		(void)close(*fd);
}
#define _cleanup_free_	_cleanup_(init_freep)
#define _cleanup_close_ _cleanup_(init_closep)

/* ---- errors and exit codes (log.c) ---- */
/* A message for the one function that gives up on a problem. */
struct init_error {
	char msg[512];
};

/*
 * Sets err's message and returns code, so that a failing function says what failed and returns it in one
 * statement: `return init_error_set(err, -EINVAL, "KVINIT_USER='%s': %s", value, rule);`. code is passed through
 * untouched (a -errno, or whatever the caller's contract returns); err may be NULL.
 */
int init_error_set(struct init_error *err, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * The exit-code contract. Helpers return -errno (or a count) and never pick an exit code; a role's main function
 * returns a final status >= 0 (the child's, health's 0/1, ...) or -errno after the one log line, and this maps it:
 * an error in what the user gave (-EINVAL, -ERANGE, -EBADMSG, -E2BIG, -ENAMETOOLONG) is 100 (usage or
 * configuration), any other -errno is `failure` (111 for the supervising roles: a system call failed before the
 * child started; 1 for cluster-init).
 */
int init_exit_status(int r, int failure);

/* ---- logging (log.c) ---- */
enum init_log_level { INIT_LOG_ERROR, INIT_LOG_WARN, INIT_LOG_INFO, INIT_LOG_DEBUG };
enum init_log_format { INIT_LOG_TEXT, INIT_LOG_JSON };

void init_log_setup(enum init_log_level level, enum init_log_format format);
bool init_log_enabled(enum init_log_level level);
void init_log(enum init_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) init_log(INIT_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  init_log(INIT_LOG_WARN, __VA_ARGS__)
#define log_info(...)  init_log(INIT_LOG_INFO, __VA_ARGS__)
#define log_debug(...) init_log(INIT_LOG_DEBUG, __VA_ARGS__)

/* ---- small helpers (util.c) ---- */
#define USEC_PER_MSEC 1000ULL
#define USEC_PER_SEC  1000000ULL

uint64_t init_now_usec(void);
void init_sleep_ms(unsigned ms);
int init_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret_value);
int init_parse_duration_ms(const char *s, int64_t *ret_ms);
int init_parse_bool(const char *s, bool *ret_value);
bool init_has_control_chars(const char *s);
bool init_valid_ip(const char *s);
bool init_valid_hostname(const char *s);
const char *init_signal_name(int sig);
void init_format_duration(char *buf, size_t size, uint64_t ms);
uint64_t init_backoff_delay_ms(unsigned restart, uint64_t cap_ms);
int init_proc_status_masks(uint64_t *ret_sigign, uint64_t *ret_capbnd);
int init_write_file_atomic(const char *path, const char *data, size_t len, mode_t mode, uid_t uid, gid_t gid,
			   struct init_error *err);
void init_escape_control(char *buf, size_t size, const char *value);
const char *init_env_lookup(char *const *envp, const char *name);

/* ---- bounded file reads (file.c) ---- */
#define INIT_READ_BENEATH 1U /* symlinks must stay inside the file's directory (a secret volume's are relative) */

/*
 * Reads the regular file at path into buf, NUL-terminated: at most size - 2 bytes of content (one byte more tells
 * "too large"; the last is the NUL). Opened O_NONBLOCK|O_CLOEXEC, so a FIFO never blocks; never through stdio.
 * Returns the content's length, or:
 *   -EXDEV    with INIT_READ_BENEATH, a symlink leads outside the directory of path (absolute symlinks count as
 *             outside). Not checked on kernels without openat2 (before 5.6).
 *   -EBADFD   not a regular file: a directory, FIFO, socket or device
 *   -EFBIG    more than size - 2 bytes
 *   -EILSEQ   a NUL byte: buf then holds the content up to it, NUL-terminated, so the caller can say where it is
 *   other     -errno of open or read (-ENOENT, -EACCES, -EIO, ...)
 * *ret_st (may be NULL) gets the file's stat on success. On failure buf may hold part of the file: a caller reading
 * a secret wipes it.
 */
int init_read_file_bounded(const char *path, unsigned flags, char *buf, size_t size, struct stat *ret_st);

/* The largest value a NAME_FILE or a secret may hold, its trailing newline included. */
#define INIT_VALUE_MAX 4096

/*
 * The Docker NAME_FILE convention, also used by secrets: a file that holds one value. Reads it (a trailing newline
 * counts toward INIT_VALUE_MAX), strips one trailing "\n" or "\r\n" and checks the rest with init_check_value().
 * Returns the value's length (buf holds it, NUL-terminated), or a code of init_read_file_bounded() or
 * init_check_value().
 */
int init_read_value_file(const char *path, unsigned flags, char buf[INIT_VALUE_MAX + 2], struct stat *ret_st);
/* The rules of a one-line value: 0, -ENODATA empty, -EFBIG over INIT_VALUE_MAX, -EILSEQ a NUL, -EBADMSG a line break.
 */
int init_check_value(const char *data, size_t len);
/* The rule behind a code of those functions, as words that follow a name ("is empty"); strerror otherwise. */
const char *init_value_strerror(int r);

/*
 * ---- options (options.c): the engine, and the PID-1 core's own table (options.def) ----
 * Each module that has options keeps one table, an X-macro file whose lines read
 *   OPT_STR(field, ENV, section, key, default, check, help)       check: NULL or a struct init_string_check
 *   OPT_BOOL(field, ENV, section, key, default, help)
 *   OPT_INT(field, ENV, section, key, default, min, max, help)
 *   OPT_DURATION(field, ENV, section, key, default, min_ms, max_ms, help)
 *   OPT_ENUM(field, ENV, section, key, default, names, help)      names: a NULL-terminated array
 * and expands it with the macros below into its options struct, its ids and its descriptors; it hands the
 * descriptors to the engine (init_config_add), which does defaults, INI, environment, flags, checks and --help.
 */
enum init_option_type { INIT_OPT_T_STR, INIT_OPT_T_BOOL, INIT_OPT_T_INT, INIT_OPT_T_DURATION, INIT_OPT_T_ENUM };

/* A check of a text option: NULL when value is fine, else why not (rule, or a more precise line written into buf). */
struct init_string_check {
	const char *rule; /* for --help and the usual refusal */
	const char *(*refuse)(const struct init_string_check *check, const char *value, char *buf, size_t size);
};

/* One line of a table. */
struct init_option_desc {
	const char *env, *section, *key, *def, *help;
	enum init_option_type type;
	size_t offset; /* of the field in the module's options struct */
	int64_t min, max;
	const char *const *names;
	const struct init_string_check *check;
};

/* The field a table line declares in its module's options struct. */
#define INIT_OPTION_FIELD_STR(field, ...)      char *field;
#define INIT_OPTION_FIELD_BOOL(field, ...)     bool field;
#define INIT_OPTION_FIELD_INT(field, ...)      int64_t field;
#define INIT_OPTION_FIELD_DURATION(field, ...) int64_t field;
#define INIT_OPTION_FIELD_ENUM(field, ...)     int field;

/* The descriptor of a table line whose field is in struct S. */
#define INIT_OPTION_DESC(S, f, t, e, s, k, d, lo, hi, n, c, h)                                                         \
	{.env = (e),                                                                                                   \
	 .section = (s),                                                                                               \
	 .key = (k),                                                                                                   \
	 .def = (d),                                                                                                   \
	 .help = (h),                                                                                                  \
	 .type = (t),                                                                                                  \
	 .offset = offsetof(S, f),                                                                                     \
	 .min = (lo),                                                                                                  \
	 .max = (hi),                                                                                                  \
	 .names = (n),                                                                                                 \
	 .check = (c)},
#define INIT_OPTION_DESC_STR(S, f, e, s, k, d, c, h)                                                                   \
	INIT_OPTION_DESC(S, f, INIT_OPT_T_STR, e, s, k, d, 0, 0, NULL, c, h)
#define INIT_OPTION_DESC_BOOL(S, f, e, s, k, d, h)                                                                     \
	INIT_OPTION_DESC(S, f, INIT_OPT_T_BOOL, e, s, k, d, 0, 0, NULL, NULL, h)
#define INIT_OPTION_DESC_INT(S, f, e, s, k, d, lo, hi, h)                                                              \
	INIT_OPTION_DESC(S, f, INIT_OPT_T_INT, e, s, k, d, lo, hi, NULL, NULL, h)
#define INIT_OPTION_DESC_DURATION(S, f, e, s, k, d, lo, hi, h)                                                         \
	INIT_OPTION_DESC(S, f, INIT_OPT_T_DURATION, e, s, k, d, lo, hi, NULL, NULL, h)
#define INIT_OPTION_DESC_ENUM(S, f, e, s, k, d, n, h)                                                                  \
	INIT_OPTION_DESC(S, f, INIT_OPT_T_ENUM, e, s, k, d, 0, 0, n, NULL, h)

/* An older variable name a user may bring from other images, for the option at index (the table's name wins). */
struct init_option_alias {
	const char *env;
	size_t index;
};

/* A module's table as the engine reads it. */
struct init_option_table {
	const struct init_option_desc *opts;
	size_t n;
	const struct init_option_alias *aliases;
	size_t n_aliases;
};

/* Where a value came from, lowest precedence first. */
enum init_option_source { INIT_SRC_DEFAULT, INIT_SRC_INI, INIT_SRC_ENV, INIT_SRC_FLAG };

/* The PID-1 core's options (options.def). */
enum init_restart { INIT_RESTART_NO, INIT_RESTART_ON_FAILURE, INIT_RESTART_ALWAYS };

struct init_options {
#define OPT_STR	     INIT_OPTION_FIELD_STR
#define OPT_BOOL     INIT_OPTION_FIELD_BOOL
#define OPT_INT	     INIT_OPTION_FIELD_INT
#define OPT_DURATION INIT_OPTION_FIELD_DURATION
#define OPT_ENUM     INIT_OPTION_FIELD_ENUM
#include "options.def"
};

enum init_option_id {
#define OPT_ID(field, ...) INIT_OPT_##field,
#define OPT_STR		   OPT_ID
#define OPT_BOOL	   OPT_ID
#define OPT_INT		   OPT_ID
#define OPT_DURATION	   OPT_ID
#define OPT_ENUM	   OPT_ID
#include "options.def"
#undef OPT_ID
	INIT_OPT__COUNT
};

/* A table bound to the struct its offsets point into. */
struct init_option_set {
	const struct init_option_table *table;
	void *values;
	enum init_option_source *source; /* table->n entries */
};

#define INIT_MAX_OPTION_SETS 4

/*
 * The options kvinit runs with: the core's (opt), and the tables other modules add (which stay theirs: sets[]
 * points into them, so a config is never copied).
 */
struct init_config {
	struct init_options opt;
	enum init_option_source source[INIT_OPT__COUNT];
	char *config_path;
	struct init_option_set sets[INIT_MAX_OPTION_SETS]; /* sets[0] is the core's */
	size_t n_sets;
};

#define INIT_DEFAULT_CONFIG "/etc/kvinit/kvinit.ini"

/* The core's table, with the built-in defaults applied. */
int init_config_defaults(struct init_config *c, struct init_error *err);
/* Adds a module's table: values (zeroed by the caller) gets the table's defaults. */
int init_config_add(struct init_config *c, const struct init_option_table *table, void *values,
		    enum init_option_source *source, struct init_error *err);
/* A role's own default for a core option; runs before init_config_load. */
int init_config_set_default(struct init_config *c, enum init_option_id id, const char *value, struct init_error *err);
/*
 * Reads the INI file (--config, else KVINIT_CONFIG, else INIT_DEFAULT_CONFIG if it exists), the environment and
 * the flags of argv (up to "--" or the first argument that is not a flag: *ret_argind) into every table of c.
 * -ECANCELED for --help.
 */
int init_config_load(struct init_config *c, int argc, char **argv, int *ret_argind, char *const *envp,
		     struct init_error *err);
void init_config_free(struct init_config *c);
/* The option list of every table of c, in table order. */
void init_config_help(const struct init_config *c, FILE *out);

/* ---- event loop (loop.c) ---- */
struct init_loop;
typedef void (*init_io_fn)(struct init_loop *loop, int fd, uint32_t events, void *userdata);
typedef void (*init_timer_fn)(struct init_loop *loop, void *userdata);

struct init_timer {
	uint64_t deadline_usec; /* CLOCK_MONOTONIC */
	init_timer_fn fn;
	void *userdata;
	bool armed;
};

int init_loop_new(struct init_loop **ret_loop);
void init_loop_free(struct init_loop *loop);
int init_loop_add_io(struct init_loop *loop, int fd, uint32_t events, init_io_fn fn, void *userdata);
int init_loop_remove_io(struct init_loop *loop, int fd);
void init_timer_arm(struct init_loop *loop, struct init_timer *t, uint64_t deadline_usec);
void init_timer_disarm(struct init_loop *loop, struct init_timer *t);
void init_loop_quit(struct init_loop *loop, int code);
bool init_loop_quit_requested(const struct init_loop *loop);
int init_loop_run(struct init_loop *loop);

/* ---- privileges (privs.c) and seccomp (seccomp.c) ---- */
struct init_user {
	bool set;
	uid_t uid;
	gid_t gid;
	gid_t *groups;
	int ngroups;
	char *name;
};

int init_user_resolve(const char *spec, struct init_user *ret_user, struct init_error *err);
void init_user_free(struct init_user *u);
int init_privs_restrict_self(const int *extra_caps, size_t n_extra, bool switch_user, uint64_t bounding);
int init_privs_prepare_child(void);
int init_privs_drop_child(const struct init_user *u);

int init_seccomp_load(void);

/* ---- supervision (supervise.c) ---- */
struct init_supervisor;

struct init_role_hooks {
	/* Runs before the child is signalled to stop; must return by deadline_usec. */
	void (*stop)(struct init_supervisor *s, uint64_t deadline_usec, void *userdata);
	/* Runs after every successful start of the child. */
	void (*started)(struct init_supervisor *s, pid_t pid, void *userdata);
	/* A process other than the child was reaped (an orphan, or a helper the role started). */
	void (*reaped)(struct init_supervisor *s, pid_t pid, int status, void *userdata);
	/* Runs before every restart of the child (not before its first start), in the loop: must not block. */
	void (*restarting)(struct init_supervisor *s, void *userdata);
	/* Decides the delay before restart number `restart` (1 after the first end), given the backoff's delay_ms:
	 * returns it, or a shorter one. Runs in the loop: must not block. NULL: the backoff's. */
	uint64_t (*restart_delay)(struct init_supervisor *s, unsigned restart, uint64_t delay_ms, void *userdata);
	void *userdata;
};

struct init_supervise_args {
	char *const *argv;
	char *const *envp; /* NULL: kvinit's own environment */
	const struct init_options *opt;
	const struct init_user *user;
	bool seccomp;
	struct init_role_hooks hooks;
};

int init_supervise(const struct init_supervise_args *args);

/* ---- helper processes beside the child (supervise.c) ---- */
/* A helper's work: returns 0, an exit status of its own (1-255), or -errno. */
typedef int (*init_helper_fn)(void *userdata);

/*
 * Runs fn(userdata) in a forked process with no signal blocked; it exits with init_exit_status(result, 1): 0, the
 * status fn chose, 100 for an error in what the user gave, else 1. Returns 0 with the pid (the role's reaped hook
 * gets its status), or -errno when fork fails. The helper runs on a copy of kvinit's memory, so what fn changes
 * stays in the helper; it shares the loop's descriptors, so fn must not use the loop.
 */
int init_fork_helper(init_helper_fn fn, void *userdata, pid_t *ret_pid);

/* ---- shared by the supervising roles (run.c) ---- */
void init_process_setup(void);
int init_resolve_user(const struct init_options *o, struct init_user *ret_user);
/*
 * Drops kvinit's own privileges, but for keep_caps (those of them the bounding set still has), and supervises argv
 * until the end; returns the final status: the child's, or kvinit's own (111, 126, 127) when it could not start it.
 */
int init_run(const struct init_options *o, const struct init_user *user, char *const *argv, char *const *envp,
	     const struct init_role_hooks *hooks, const int *keep_caps, size_t n_keep);
/* `kvinit run [OPTIONS] [--] CMD [ARGS...]`: a final status, or -errno once it has said why. */
int init_run_main(struct init_config *c, char **args);
bool init_bounding_has(int cap);
struct init_loop *init_supervisor_loop(struct init_supervisor *s);
/*
 * The restarts in a row of the child: 0 at its first start, 1 after it ended once, 2 when it ended again within
 * KVINIT_BACKOFF_RESET of that restart, ... (a child up that long resets the count). A started hook reads it to
 * tell a crash loop from a first crash.
 */
unsigned init_supervisor_restarts(const struct init_supervisor *s);
/*
 * Restarts the child on purpose (a role's own reason, such as new certificates it loads only at start): SIGKILL now
 * and a start at once, after the restarting hook as for any restart. why (static: "to load ...") ends the log lines
 * that say so. It is no crash: it counts neither toward KVINIT_MAX_RESTARTS nor in init_supervisor_restarts, and
 * comes whatever KVINIT_RESTART says. 0, -ESRCH when no child runs (a restart is due anyway, or kvinit stops), or
 * kill's -errno.
 */
int init_supervisor_restart(struct init_supervisor *s, const char *why);

#endif
