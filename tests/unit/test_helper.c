/* SPDX-License-Identifier: MIT */
/* Helper processes: a helper's result becomes its exit status by init_exit_status, and it takes signals again. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "init.h"

static int return_value(void *userdata)
{
	return *(const int *)userdata;
}

/* Returns 0 when no signal is blocked, 2 when one is. */
static int check_mask(void *userdata)
{
	sigset_t now;

	(void)userdata;
	if (sigprocmask(SIG_SETMASK, NULL, &now) < 0)
		return -errno;
	return sigisemptyset(&now) ? 0 : 2;
}

static int wait_forever(void *userdata)
{
	(void)userdata;
	for (;;)
		(void)pause();
	return 0;
}

static int change_and_return(void *userdata)
{
	*(int *)userdata = 42;
	return 0;
}

static int status_of(pid_t pid)
{
	int status;

	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void test_result_becomes_exit_status(void **state)
{
	static const struct {
		int result, status;
	} cases[] = {
		{0, 0},		 {1, 1},	 {3, 3},
		{111, 111},	 {-EINVAL, 100}, /* an error in what the user gave */
		{-EBADMSG, 100}, {-EIO, 1},	 {-ECONNREFUSED, 1},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		pid_t pid = 0;
		int status;

		assert_int_equal(init_fork_helper(return_value, (void *)&cases[i].result, &pid), 0);
		assert_true(pid > 0);
		status = status_of(pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), cases[i].status);
	}
}

/* kvinit blocks every signal for its signalfd; the helper must not inherit that, or SIGTERM would never end it. */
static void test_signals_reach_the_helper(void **state)
{
	sigset_t all, saved;
	pid_t pid = 0;
	int status;

	(void)state;
	(void)sigfillset(&all);
	assert_int_equal(sigprocmask(SIG_BLOCK, &all, &saved), 0);

	assert_int_equal(init_fork_helper(check_mask, NULL, &pid), 0);
	status = status_of(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	assert_int_equal(init_fork_helper(wait_forever, NULL, &pid), 0);
	assert_int_equal(kill(pid, SIGTERM), 0);
	status = status_of(pid);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGTERM);

	assert_int_equal(sigprocmask(SIG_SETMASK, &saved, NULL), 0);
}

static void test_helper_changes_only_its_copy(void **state)
{
	int value = 7;
	pid_t pid = 0;
	int status;

	(void)state;
	assert_int_equal(init_fork_helper(change_and_return, &value, &pid), 0);
	status = status_of(pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(value, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_result_becomes_exit_status),
		cmocka_unit_test(test_signals_reach_the_helper),
		cmocka_unit_test(test_helper_changes_only_its_copy),
	};

	return cmocka_run_group_tests_name("helper", tests, NULL, NULL);
}
