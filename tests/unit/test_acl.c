/* SPDX-License-Identifier: MIT */
/*
 * The users file (node/acl.c): what a line may hold and the one line of error for each rule it breaks, password
 * files read into their hashes, the rendered `user` lines, and which users a change sets.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "init.h"
#include "node.h"

#define HASH_A "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8" /* "password" */

static char tmpdir[] = "/tmp/kvinit-test-acl-XXXXXX";

static int parse(const char *text, struct node_acl *acl, struct init_error *err)
{
	*acl = (struct node_acl){0};
	return node_acl_parse(text, strlen(text), acl, err);
}

/* text is refused with an error that starts with want_start and holds want. */
static void refused(const char *text, const char *want_start, const char *want)
{
	struct node_acl acl;
	struct init_error err = {{0}};

	if (parse(text, &acl, &err) != -EINVAL) {
		node_acl_free(&acl);
		fail_msg("accepted: %s", text);
	}
	if (strncmp(err.msg, want_start, strlen(want_start)) != 0 || !strstr(err.msg, want))
		fail_msg("for %s\n  got: %s\n want: %s...%s", text, err.msg, want_start, want);
}

static void test_good_lines(void **state)
{
	const char *text =
		"# the exporter and an application\n"
		"\n"
		"user exporter on #" HASH_A " +ping +info +cluster|info +cluster|nodes +slowlog|get "
		"+latency|latest +client|setname\r\n"
		"   user app on <app_password ~app:* %R~shared:* %RW~cache:{x}* &app:* +@read +@write -@dangerous "
		"-flushall\n"
		"\tuser readonly off resetkeys allkeys resetchannels allchannels nocommands allcommands reset "
		"resetpass clearselectors\n";
	struct node_acl acl;
	struct init_error err = {{0}};

	(void)state;
	if (parse(text, &acl, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(acl.n, 3);
	assert_string_equal(acl.user[0].name, "exporter");
	assert_int_equal(acl.user[0].line, 3);
	assert_int_equal(acl.user[0].n_rules, 9);
	assert_string_equal(acl.user[0].rules[1], "#" HASH_A);
	assert_string_equal(acl.user[0].rules[8], "+client|setname");
	assert_string_equal(acl.user[1].name, "app");
	assert_int_equal(acl.user[1].line, 4);
	assert_string_equal(acl.user[1].rules[1], "<app_password");
	assert_true(node_acl_rule_is_file(acl.user[1].rules[1]));
	assert_string_equal(acl.user[2].name, "readonly");
	assert_int_equal(acl.user[2].line, 5);
	assert_non_null(node_acl_find(&acl, "app"));
	assert_null(node_acl_find(&acl, "nobody"));
	node_acl_free(&acl);

	assert_int_equal(parse("", &acl, &err), 0);
	assert_int_equal(acl.n, 0);
	assert_int_equal(parse("# nothing\n\n   \n", &acl, &err), 0);
	assert_int_equal(acl.n, 0);
	/* a user with no rules is off with no password: nobody logs in as it */
	assert_int_equal(parse("user parked", &acl, &err), 0);
	assert_int_equal(acl.n, 1);
	assert_int_equal(acl.user[0].n_rules, 0);
	node_acl_free(&acl);
}

static void test_plaintext_refused(void **state)
{
	struct node_acl acl;
	struct init_error err = {{0}};

	(void)state;
	refused("user app on >hunter2 ~*", "line 1: '>...': a password in plain text", "'<file'");
	/* the password is never shown */
	assert_int_equal(parse("\n\nuser app on >hunter2 ~*", &acl, &err), -EINVAL);
	assert_null(strstr(err.msg, "hunter2"));
	assert_true(strncmp(err.msg, "line 3: ", 8) == 0);
	refused("user app on nopass", "line 1: 'nopass':", "give it a password");
	refused("user app on !" HASH_A, "line 1: '!", "removing a password");
}

static void test_default_user_refused(void **state)
{
	(void)state;
	refused("user app on\nuser default on #" HASH_A " ~* +@all", "line 2: user 'default':", "kvinit's");
	refused("user kvinit-acl-check on", "line 1: user 'kvinit-acl-check':", "kvinit's own");
}

static void test_bad_lines(void **state)
{
	(void)state;
	refused("user app on\nuser app off", "line 2: user 'app' is already defined on line 1", "");
	refused("acl app on", "line 1: 'acl': every line is 'user <name> <rules>...'", "");
	refused("\n\n\nuser", "line 4: 'user' needs a name", "");
	refused("user bad/name on", "line 1: user 'bad/name': a user name", "");
	refused("user app on #" HASH_A "0", "line 1: '#", "64 lowercase hex digits");
	refused("user app on #5E884898DA28047151D0E56F8DC6292773603D0D6AABBDD62A11EF721D1542D8", "line 1: '#",
		"64 lowercase hex digits");
	refused("user app on #short", "line 1: '#short'", "64 lowercase hex digits");
	refused("user app on <../etc/shadow", "line 1: '<../etc/shadow': a password file", "beside the users file");
	refused("user app on <.hidden", "line 1: '<.hidden'", "not starting with '.'");
	refused("user app on <", "line 1: '<'", "a password file");
	refused("user app on ~", "line 1: '~': an empty pattern", "");
	refused("user app on &", "line 1: '&': an empty pattern", "");
	refused("user app on %X~k", "line 1: '%X~k'", "'%R~', '%W~' or '%RW~'");
	refused("user app on %R~", "line 1: '%R~'", "a pattern");
	refused("user app on +", "line 1: '+'", "a command rule");
	refused("user app on +get|", "line 1: '+get|'", "command|subcommand");
	refused("user app on +@read|x", "line 1: '+@read|x'", "@category");
	refused("user app on -get\"x", "line 1: '-get\"x'", "a command rule");
	refused("user app on (~x +get)", "line 1: '(~x'", "selectors");
	refused("user app on sometimes", "line 1: 'sometimes': not an ACL rule", "");
	refused("user app on\nuser b on\x01", "line 2: a control character (byte 0x01)", "");
	refused("user app on\x7f", "line 1: a control character (byte 0x7f)", "");
}

static void test_nul_refused(void **state)
{
	struct node_acl acl = {0};
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(node_acl_parse("user a on\0x", 11, &acl, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "NUL"));
}

static void write_file(const char *name, const char *text, mode_t mode)
{
	char path[256];
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

static void test_password_files(void **state)
{
	char path[256], rendered[4096];
	struct node_acl acl = {0};
	struct init_error err = {{0}};
	FILE *f;

	(void)state;
	write_file("app_password", "password\n", 0400);
	write_file("users", "user app on <app_password ~app:*\nuser exporter on #" HASH_A " +info\n", 0400);
	(void)snprintf(path, sizeof(path), "%s/users", tmpdir);
	if (node_acl_load(path, &acl, &err) != 0)
		fail_msg("%s", err.msg);
	/* the password file's one line, its newline stripped, as its SHA-256; quoted as redis.conf reads it */
	assert_string_equal(acl.user[0].rules[1], "#" HASH_A);
	assert_int_equal(acl.n_files, 1);
	assert_non_null(strstr(acl.files[0], "/app_password"));

	f = fmemopen(rendered, sizeof(rendered), "w");
	assert_non_null(f);
	node_acl_render(f, &acl, false);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(rendered,
			    "user app on \"#" HASH_A "\" \"~app:*\"\nuser exporter on \"#" HASH_A "\" +info\n");
	f = fmemopen(rendered, sizeof(rendered), "w");
	assert_non_null(f);
	node_acl_render(f, &acl, true);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(rendered, "user app on #<redacted> \"~app:*\"\nuser exporter on #<redacted> +info\n");
	node_acl_free(&acl);

	/* a missing, an empty and a two-line password file: one line naming the users file, the line and the rule */
	write_file("users", "\nuser app on <missing ~app:*\n", 0400);
	assert_int_equal(node_acl_load(path, &acl, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 2: the password file '"));
	assert_non_null(strstr(err.msg, "/missing'"));
	write_file("empty", "\n", 0400);
	write_file("users", "user app on <empty\n", 0400);
	assert_int_equal(node_acl_load(path, &acl, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 1: the password file '"));
	write_file("two", "a\nb\n", 0400);
	write_file("users", "user app on <two\n", 0400);
	assert_int_equal(node_acl_load(path, &acl, &err), -EINVAL);
	assert_non_null(strstr(err.msg, "line 1: the password file '"));
	/* the error of the parse names the users file */
	write_file("users", "user app on >plain\n", 0400);
	assert_int_equal(node_acl_load(path, &acl, &err), -EINVAL);
	assert_true(strncmp(err.msg, "the users file '", 16) == 0);
	assert_non_null(strstr(err.msg, "line 1: '>...'"));
	(void)snprintf(path, sizeof(path), "%s/nothere", tmpdir);
	assert_int_equal(node_acl_load(path, &acl, &err), -ENOENT);
}

static void test_changes(void **state)
{
	struct node_acl a, b;
	struct init_error err = {{0}};

	(void)state;
	assert_int_equal(parse("user x on ~a\nuser y on ~b\n", &a, &err), 0);
	assert_int_equal(parse("user x on ~a\nuser y on ~c\nuser z on\n", &b, &err), 0);
	assert_false(node_acl_equal(&a, &b));
	assert_true(node_acl_equal(&a, &a));
	assert_false(node_acl_user_changed(&a, node_acl_find(&b, "x")));
	assert_true(node_acl_user_changed(&a, node_acl_find(&b, "y")));
	assert_true(node_acl_user_changed(&a, node_acl_find(&b, "z")));
	node_acl_free(&a);
	node_acl_free(&b);
}

static int setup(void **state)
{
	(void)state;
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_lines),
		cmocka_unit_test(test_plaintext_refused),
		cmocka_unit_test(test_default_user_refused),
		cmocka_unit_test(test_bad_lines),
		cmocka_unit_test(test_nul_refused),
		cmocka_unit_test(test_password_files),
		cmocka_unit_test(test_changes),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
