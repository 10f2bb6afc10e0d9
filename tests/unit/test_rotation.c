/* SPDX-License-Identifier: MIT */
/* The rotation's bookkeeping: the files beside the password, and every step of a rotation on a fake clock. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "init.h"
#include "secrets.h"

#define SEC   USEC_PER_SEC
#define GRACE (300 * SEC)

/* A read of the files: NULL is a missing file, "" an empty one, "!" one that breaks a rule (a line break). */
static struct secrets_set files(const char *current, const char *next, const char *previous)
{
	const char *v[SECRETS__SLOTS] = {current, next, previous};
	struct secrets_set set = {0};

	for (int i = 0; i < SECRETS__SLOTS; i++) {
		if (!v[i])
			set.error[i] = -ENOENT;
		else if (!*v[i])
			set.error[i] = -ENODATA;
		else if (strcmp(v[i], "!") == 0)
			set.error[i] = -EBADMSG;
		else
			set.value[i] = (struct secrets_value){.data = strdup(v[i]), .len = strlen(v[i])};
	}
	return set;
}

static int update(struct secrets_rotation *r, const char *current, const char *next, const char *previous, uint64_t now)
{
	struct secrets_set set = files(current, next, previous);
	int changed = secrets_rotation_update(r, &set, now);

	secrets_set_wipe(&set);
	return changed;
}

/* The accepted passwords, the sent one first, as "a b c". */
static const char *accepted(const struct secrets_rotation *r)
{
	static char buf[256];
	size_t off = 0;

	buf[0] = '\0';
	for (size_t k = 0; k < r->n; k++)
		off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", k ? " " : "",
					r->entry[secrets_rotation_order(r, k)].value.data);
	return buf;
}

static void test_start(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	assert_int_equal(update(&r, "A", NULL, NULL, 0), 1);
	assert_string_equal(accepted(&r), "A");
	assert_int_equal(update(&r, "A", NULL, NULL, SEC), 0);
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	secrets_rotation_free(&r);
}

/* One file, written over: both work at once, the old one until the grace period ends. */
static void test_single_file(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	update(&r, "A", NULL, NULL, 0);
	assert_int_equal(update(&r, "B", NULL, NULL, 10 * SEC), 1);
	assert_string_equal(accepted(&r), "B A");
	assert_int_equal(secrets_rotation_next_expiry(&r), 10 * SEC + GRACE);
	assert_int_equal(secrets_rotation_expire(&r, 10 * SEC + GRACE - 1), 0);
	assert_string_equal(accepted(&r), "B A");
	assert_int_equal(secrets_rotation_expire(&r, 10 * SEC + GRACE), 1);
	assert_string_equal(accepted(&r), "B");
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	secrets_rotation_free(&r);
}

/* The operator's three steps: next, then current + previous, then previous removed: A goes at once. */
static void test_staged(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	update(&r, "A", NULL, NULL, 0);
	assert_int_equal(update(&r, "A", "B", NULL, SEC), 1);
	assert_string_equal(accepted(&r), "A B");
	assert_int_equal(update(&r, "B", NULL, "A", 2 * SEC), 1);
	assert_string_equal(accepted(&r), "B A");
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	assert_int_equal(update(&r, "B", NULL, "", 3 * SEC), 1);
	assert_string_equal(accepted(&r), "B");
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	secrets_rotation_free(&r);
}

/* Compose writes the files one by one: every state in between accepts both, and A still goes with previous. */
static void test_staged_one_file_at_a_time(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	update(&r, "A", NULL, NULL, 0);
	update(&r, "A", "B", "", SEC);
	update(&r, "B", "B", "", 2 * SEC); /* current first: A left every file, its grace starts */
	assert_string_equal(accepted(&r), "B A");
	assert_int_equal(secrets_rotation_next_expiry(&r), 2 * SEC + GRACE);
	update(&r, "B", "B", "A", 3 * SEC); /* back in a file: no grace any more */
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	update(&r, "B", "", "A", 4 * SEC);
	assert_string_equal(accepted(&r), "B A");
	assert_int_equal(update(&r, "B", "", "", 5 * SEC), 1);
	assert_string_equal(accepted(&r), "B");
	secrets_rotation_free(&r);
}

/* A file caught empty (truncated, not yet written) or broken keeps what it held. */
static void test_unreadable_keeps(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	update(&r, "A", "B", NULL, 0);
	assert_int_equal(update(&r, "", "B", NULL, SEC), 0);
	assert_int_equal(update(&r, NULL, "B", NULL, SEC), 0);
	assert_int_equal(update(&r, "!", "!", NULL, SEC), 0);
	assert_string_equal(accepted(&r), "A B");
	/* a missing or empty next file is "none": B leaves, with a grace period */
	assert_int_equal(update(&r, "A", "", NULL, 2 * SEC), 1);
	assert_int_equal(secrets_rotation_next_expiry(&r), 2 * SEC + GRACE);
	secrets_rotation_free(&r);
}

static void test_no_grace(void **state)
{
	struct secrets_rotation r = {.grace_usec = 0};

	(void)state;
	update(&r, "A", NULL, NULL, 0);
	assert_int_equal(update(&r, "B", NULL, NULL, SEC), 1);
	assert_string_equal(accepted(&r), "B");
	secrets_rotation_free(&r);
}

/* The same password in two files counts once; it stays until it is in none. */
static void test_same_in_two_files(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};

	(void)state;
	update(&r, "A", "A", "A", 0);
	assert_string_equal(accepted(&r), "A");
	assert_int_equal(update(&r, "A", NULL, NULL, SEC), 1); /* it left two files */
	assert_string_equal(accepted(&r), "A");
	assert_int_equal(secrets_rotation_next_expiry(&r), 0);
	assert_int_equal(update(&r, "A", NULL, NULL, 2 * SEC), 0);
	secrets_rotation_free(&r);
}

/* Rotations faster than the grace period: the oldest retired one makes room, the sent one never goes. */
static void test_many_rotations(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};
	char pw[8];

	(void)state;
	for (int i = 0; i < 20; i++) {
		(void)snprintf(pw, sizeof(pw), "p%d", i);
		assert_true(update(&r, pw, NULL, NULL, (uint64_t)i * SEC) >= 0);
	}
	assert_int_equal(r.n, SECRETS_MAX_ACCEPTED);
	assert_string_equal(r.entry[r.current].value.data, "p19");
	assert_string_equal(accepted(&r), "p19 p12 p13 p14 p15 p16 p17 p18");
	assert_int_equal(secrets_rotation_next_expiry(&r), 13 * SEC + GRACE);
	secrets_rotation_free(&r);
}

static void test_hashes_and_describe(void **state)
{
	struct secrets_rotation r = {.grace_usec = GRACE};
	char buf[64];

	(void)state;
	update(&r, "abc", NULL, NULL, 0);
	update(&r, "B", NULL, NULL, SEC);
	/* FIPS 180-2's "abc" */
	assert_string_equal(r.entry[0].hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	secrets_rotation_describe(&r, buf, sizeof(buf));
	assert_string_equal(buf, "#df7e70e5 #ba7816bf");
	secrets_rotation_free(&r);
	assert_int_equal(r.n, 0);
}

static void test_paths(void **state)
{
	char *env_none[] = {NULL};
	char *env_set[] = {"REDIS_PASSWORD_NEXT_FILE=/k/n", "REDIS_PASSWORD_PREVIOUS_FILE=/k/p", NULL};
	char *env_bad[] = {"REDIS_PASSWORD_NEXT_FILE=relative/n", NULL};
	struct secrets_paths p;
	struct init_error err;

	(void)state;
	assert_int_equal(secrets_paths_resolve(env_none, "/run/secrets/redis_password", &p, &err), 0);
	assert_string_equal(p.path[SECRETS_CURRENT], "/run/secrets/redis_password");
	assert_string_equal(p.path[SECRETS_NEXT], "/run/secrets/redis_password_next");
	assert_string_equal(p.path[SECRETS_PREVIOUS], "/run/secrets/redis_password_previous");
	secrets_paths_free(&p);
	assert_int_equal(secrets_paths_resolve(env_set, "/s/pw", &p, &err), 0);
	assert_string_equal(p.path[SECRETS_NEXT], "/k/n");
	assert_string_equal(p.path[SECRETS_PREVIOUS], "/k/p");
	secrets_paths_free(&p);
	assert_int_equal(secrets_paths_resolve(env_bad, "/s/pw", &p, &err), -EINVAL);
	assert_string_equal(err.msg, "REDIS_PASSWORD_NEXT_FILE='relative/n': must be an absolute path");
}

/* Reading the files: a missing or empty next file is absent, a broken one is an error that says so. */
static void test_read_set(void **state)
{
	char dir[] = "/tmp/kvinit-test-rotation-XXXXXX", path[128];
	struct secrets_paths p = {0};
	struct secrets_set a, b;
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/pw", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "A\n", 2), 2);
	(void)close(fd);
	(void)snprintf(path, sizeof(path), "%s/pw_previous", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	(void)close(fd);
	(void)snprintf(path, sizeof(path), "%s/pw", dir);
	assert_int_equal(secrets_paths_resolve((char *[]){NULL}, path, &p, NULL), 0);
	secrets_set_read(&p, &a);
	assert_string_equal(a.value[SECRETS_CURRENT].data, "A");
	assert_int_equal(a.error[SECRETS_NEXT], -ENOENT);
	assert_int_equal(a.error[SECRETS_PREVIOUS], -ENODATA);
	assert_true(secrets_slot_absent(SECRETS_NEXT, a.error[SECRETS_NEXT]));
	assert_true(secrets_slot_absent(SECRETS_PREVIOUS, a.error[SECRETS_PREVIOUS]));
	assert_false(secrets_slot_absent(SECRETS_CURRENT, -ENODATA));
	assert_false(secrets_slot_absent(SECRETS_NEXT, -EBADMSG));
	secrets_set_read(&p, &b);
	assert_true(secrets_set_equal(&a, &b));
	(void)snprintf(path, sizeof(path), "%s/pw_next", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_int_equal(write(fd, "B\nC\n", 4), 4);
	(void)close(fd);
	secrets_set_wipe(&b);
	secrets_set_read(&p, &b);
	assert_false(secrets_set_equal(&a, &b));
	assert_int_equal(b.error[SECRETS_NEXT], -EBADMSG);
	secrets_set_wipe(&a);
	secrets_set_wipe(&b);
	for (int i = 0; i < SECRETS__SLOTS; i++)
		(void)unlink(p.path[i]);
	(void)rmdir(dir);
	secrets_paths_free(&p);
}

/* The passwords a running server may hold: no twice, the oldest dropped when full, a reset keeps the rotation's. */
static void test_logins(void **state)
{
	struct secrets_logins l = {0};
	struct secrets_rotation r = {0};
	struct secrets_value v;
	char pw[16];

	(void)state;
	for (int i = 0; i < 20; i++) {
		(void)snprintf(pw, sizeof(pw), "pw-%02d", i);
		assert_int_equal(secrets_value_copy(pw, strlen(pw), &v), 0);
		secrets_logins_add(&l, &v);
		secrets_logins_add(&l, &v); /* once only */
		secrets_wipe(&v);
	}
	assert_int_equal(l.n, 2 * SECRETS_MAX_ACCEPTED);
	assert_memory_equal(l.value[0].data, "pw-04", 5); /* 0..3 dropped, oldest first */
	assert_memory_equal(l.value[l.n - 1].data, "pw-19", 5);

	assert_int_equal(secrets_value_copy("a", 1, &r.entry[0].value), 0);
	assert_int_equal(secrets_value_copy("b", 1, &r.entry[1].value), 0);
	r.n = 2;
	secrets_logins_reset(&l, &r);
	assert_int_equal(l.n, 2);
	assert_memory_equal(l.value[0].data, "a", 1);
	assert_memory_equal(l.value[1].data, "b", 1);
	secrets_logins_wipe(&l);
	assert_int_equal(l.n, 0);
	secrets_rotation_free(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_start),
		cmocka_unit_test(test_single_file),
		cmocka_unit_test(test_staged),
		cmocka_unit_test(test_staged_one_file_at_a_time),
		cmocka_unit_test(test_unreadable_keeps),
		cmocka_unit_test(test_no_grace),
		cmocka_unit_test(test_same_in_two_files),
		cmocka_unit_test(test_many_rotations),
		cmocka_unit_test(test_hashes_and_describe),
		cmocka_unit_test(test_paths),
		cmocka_unit_test(test_read_set),
		cmocka_unit_test(test_logins),
	};

	return cmocka_run_group_tests_name("rotation", tests, NULL, NULL);
}
