/* SPDX-License-Identifier: MIT */
/* Number, duration and boolean parsing; backoff arithmetic; bounded file reads. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "init.h"

static void test_parse_int(void **state)
{
	int64_t v = -7;

	(void)state;
	assert_int_equal(init_parse_int("0", 0, 10, &v), 0);
	assert_int_equal(v, 0);
	assert_int_equal(init_parse_int("010", 0, 100, &v), 0);
	assert_int_equal(v, 10);
	assert_int_equal(init_parse_int("65535", 1, 65535, &v), 0);
	v = 42;
	assert_int_equal(init_parse_int("65536", 1, 65535, &v), -ERANGE);
	assert_int_equal(init_parse_int("0", 1, 65535, &v), -ERANGE);
	assert_int_equal(init_parse_int("-1", 0, 10, &v), -ERANGE);
	assert_int_equal(init_parse_int("99999999999999999999", 0, 10, &v), -ERANGE);
	assert_int_equal(init_parse_int("", 0, 10, &v), -EINVAL);
	assert_int_equal(init_parse_int(" 1", 0, 10, &v), -EINVAL);
	assert_int_equal(init_parse_int("1 ", 0, 10, &v), -EINVAL);
	assert_int_equal(init_parse_int("1x", 0, 10, &v), -EINVAL);
	assert_int_equal(init_parse_int("0x1", 0, 10, &v), -EINVAL);
	assert_int_equal(v, 42); /* never written on failure */
}

static void test_parse_duration(void **state)
{
	int64_t ms = -1;

	(void)state;
	assert_int_equal(init_parse_duration_ms("8", &ms), 0);
	assert_int_equal(ms, 8000);
	assert_int_equal(init_parse_duration_ms("8s", &ms), 0);
	assert_int_equal(ms, 8000);
	assert_int_equal(init_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(init_parse_duration_ms("2m", &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(init_parse_duration_ms("1h", &ms), 0);
	assert_int_equal(ms, 3600000);
	assert_int_equal(init_parse_duration_ms("0", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_not_equal(init_parse_duration_ms("", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("s", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("-1s", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("+1s", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("1.5s", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("1 s", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("1d", &ms), 0);
	assert_int_not_equal(init_parse_duration_ms("9223372036854775807h", &ms), 0);
}

static void test_parse_bool(void **state)
{
	bool b;

	(void)state;
	assert_int_equal(init_parse_bool("yes", &b), 0);
	assert_true(b);
	assert_int_equal(init_parse_bool("TRUE", &b), 0);
	assert_true(b);
	assert_int_equal(init_parse_bool("0", &b), 0);
	assert_false(b);
	assert_int_equal(init_parse_bool("Off", &b), 0);
	assert_false(b);
	assert_int_not_equal(init_parse_bool("", &b), 0);
	assert_int_not_equal(init_parse_bool("y", &b), 0);
	assert_int_not_equal(init_parse_bool("2", &b), 0);
}

static void test_control_chars(void **state)
{
	(void)state;
	assert_false(init_has_control_chars("plain value with spaces"));
	assert_false(init_has_control_chars("ünïcödé"));
	assert_true(init_has_control_chars("a\nb"));
	assert_true(init_has_control_chars("a\rb"));
	assert_true(init_has_control_chars("tab\there"));
	assert_true(init_has_control_chars("del\x7f"));
}

/* A value too long for the message shows its start and its length, so the reason after it still fits. */
static void test_escape_control(void **state)
{
	static char long_value[2000];
	char buf[64];

	(void)state;
	init_escape_control(buf, sizeof(buf), "a\nb");
	assert_string_equal(buf, "a\\x0ab");
	memset(long_value, 'x', sizeof(long_value) - 1);
	init_escape_control(buf, sizeof(buf), long_value);
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_string_equal(buf + strlen(buf) - strlen("x... (1999 bytes)"), "x... (1999 bytes)");
	/* exactly what fits is shown whole */
	long_value[sizeof(buf) - 1] = '\0';
	init_escape_control(buf, sizeof(buf), long_value);
	assert_string_equal(buf, long_value);
	long_value[sizeof(buf) - 2] = '\n';
	init_escape_control(buf, sizeof(buf), long_value);
	assert_non_null(strstr(buf, "... (63 bytes)"));
}

static void test_backoff(void **state)
{
	(void)state;
	/* first restart immediate, then doubling from 1s */
	assert_int_equal(init_backoff_delay_ms(0, 30000), 0);
	assert_int_equal(init_backoff_delay_ms(1, 30000), 0);
	assert_int_equal(init_backoff_delay_ms(2, 30000), 1000);
	assert_int_equal(init_backoff_delay_ms(3, 30000), 2000);
	assert_int_equal(init_backoff_delay_ms(4, 30000), 4000);
	assert_int_equal(init_backoff_delay_ms(6, 30000), 16000);
	/* capped, and no overflow however long the crash loop */
	assert_int_equal(init_backoff_delay_ms(7, 30000), 30000);
	assert_int_equal(init_backoff_delay_ms(1000000, 30000), 30000);
	assert_int_equal(init_backoff_delay_ms(4000000000U, 3600000), 3600000);
	/* a cap below the base wins */
	assert_int_equal(init_backoff_delay_ms(2, 500), 500);
	assert_int_equal(init_backoff_delay_ms(5, 0), 0);
}

static void test_format_duration(void **state)
{
	char buf[32];

	(void)state;
	init_format_duration(buf, sizeof(buf), 3600000);
	assert_string_equal(buf, "1h");
	init_format_duration(buf, sizeof(buf), 120000);
	assert_string_equal(buf, "2m");
	init_format_duration(buf, sizeof(buf), 90000);
	assert_string_equal(buf, "90s");
	init_format_duration(buf, sizeof(buf), 1500);
	assert_string_equal(buf, "1500ms");
	init_format_duration(buf, sizeof(buf), 0);
	assert_string_equal(buf, "0ms");
}

static void test_signal_name(void **state)
{
	(void)state;
	assert_string_equal(init_signal_name(15), "SIGTERM");
	assert_string_equal(init_signal_name(9), "SIGKILL");
}

/* ---- bounded file reads ---- */

static char tmpdir[64];

static const char *tpath(char buf[256], const char *name)
{
	(void)snprintf(buf, 256, "%s/%s", tmpdir, name);
	return buf;
}

static void write_file(const char *name, const void *data, size_t len)
{
	char path[256];
	int fd = open(tpath(path, name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int file_setup(void **state)
{
	(void)state;
	(void)snprintf(tmpdir, sizeof(tmpdir), "/tmp/kvinit-test-util-XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int file_teardown(void **state)
{
	static const char *const names[] = {"small", "exact", "over", "nul", "fifo", "value", "two-lines", "crlf"};
	char path[256];

	(void)state;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		(void)unlink(tpath(path, names[i]));
	return rmdir(tmpdir);
}

static void test_read_file_bounded(void **state)
{
	char path[256], buf[8];
	struct stat st = {0};

	(void)state;
	write_file("small", "abc", 3);
	assert_int_equal(init_read_file_bounded(tpath(path, "small"), 0, buf, sizeof(buf), &st), 3);
	assert_string_equal(buf, "abc");
	assert_true(S_ISREG(st.st_mode));

	/* size - 2 bytes fit, one more is too large */
	write_file("exact", "123456", 6);
	assert_int_equal(init_read_file_bounded(tpath(path, "exact"), 0, buf, sizeof(buf), NULL), 6);
	write_file("over", "1234567", 7);
	assert_int_equal(init_read_file_bounded(tpath(path, "over"), 0, buf, sizeof(buf), NULL), -EFBIG);

	/* a NUL byte: refused, and buf shows where it is */
	write_file("nul", "a\nc\0e", 5);
	assert_int_equal(init_read_file_bounded(tpath(path, "nul"), 0, buf, sizeof(buf), NULL), -EILSEQ);
	assert_string_equal(buf, "a\nc");

	assert_int_equal(init_read_file_bounded(tpath(path, "missing"), 0, buf, sizeof(buf), NULL), -ENOENT);
}

/* Nothing that is not a regular file is read: none of these may block or loop (the alarm turns a hang into a fail). */
static void test_read_file_not_regular(void **state)
{
	static const char *const paths[] = {"/dev/zero", "/dev/null", "/", "/proc/self"};
	char path[256], buf[64];

	(void)state;
	(void)alarm(5);
	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (init_read_file_bounded(paths[i], 0, buf, sizeof(buf), NULL) != -EBADFD)
			fail_msg("%s was not refused as 'not a regular file'", paths[i]);
	assert_int_equal(mkfifo(tpath(path, "fifo"), 0600), 0);
	assert_int_equal(init_read_file_bounded(path, 0, buf, sizeof(buf), NULL), -EBADFD);
	assert_int_equal(init_read_file_bounded(path, INIT_READ_BENEATH, buf, sizeof(buf), NULL), -EBADFD);
	(void)alarm(0);
}

static void test_read_value_file(void **state)
{
	char path[256], buf[INIT_VALUE_MAX + 2];

	(void)state;
	write_file("value", "6380\n", 5);
	assert_int_equal(init_read_value_file(tpath(path, "value"), 0, buf, NULL), 4);
	assert_string_equal(buf, "6380");
	write_file("crlf", "6380\r\n", 6);
	assert_int_equal(init_read_value_file(tpath(path, "crlf"), 0, buf, NULL), 4);
	write_file("two-lines", "a\nb\n", 4);
	assert_int_equal(init_read_value_file(tpath(path, "two-lines"), 0, buf, NULL), -EBADMSG);
	assert_string_equal(init_value_strerror(-EBADMSG), "contains a line break");
	assert_int_equal(init_check_value("", 0), -ENODATA);
	assert_int_equal(init_check_value("a\rb", 3), -EBADMSG);
}

/* A failure says which step failed and why, in err; the path is untouched. */
static void test_write_file_atomic(void **state)
{
	struct init_error err = {{0}};
	char path[256], buf[16];

	(void)state;
	assert_int_equal(init_write_file_atomic(tpath(path, "small"), "new", 3, 0600, geteuid(), getegid(), &err), 0);
	assert_int_equal(init_read_file_bounded(path, 0, buf, sizeof(buf), NULL), 3);
	assert_string_equal(buf, "new");

	assert_int_equal(init_write_file_atomic(tpath(path, "no-dir/file"), "x", 1, 0600, geteuid(), getegid(), &err),
			 -ENOENT);
	assert_string_equal(err.msg, "cannot create a temp file: No such file or directory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_control_chars),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_signal_name),
		cmocka_unit_test(test_escape_control),
		cmocka_unit_test_setup_teardown(test_read_file_bounded, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_read_file_not_regular, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_read_value_file, file_setup, file_teardown),
		cmocka_unit_test_setup_teardown(test_write_file_atomic, file_setup, file_teardown),
	};

	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
