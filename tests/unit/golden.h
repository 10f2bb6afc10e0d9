/* SPDX-License-Identifier: MIT */
/*
 * Golden files for the unit tests that render a file (tests/golden): text is compared with GOLDEN_DIR/name, and
 * UPDATE_GOLDEN=1 rewrites the file first (never under CI=true: a CI run checks, it never rewrites).
 * Include after <cmocka.h>.
 */
#ifndef KVINIT_TESTS_UNIT_GOLDEN_H
#define KVINIT_TESTS_UNIT_GOLDEN_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef GOLDEN_DIR
#define GOLDEN_DIR "tests/golden"
#endif

static inline void compare_golden(const char *name, const char *text)
{
	char path[256], want[16384];
	size_t n;
	FILE *f;

	(void)snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, name);
	if (getenv("UPDATE_GOLDEN")) {
		const char *ci = getenv("CI");

		if (ci && strcmp(ci, "true") == 0)
			fail_msg("UPDATE_GOLDEN is refused when CI=true: a CI run never rewrites %s", path);
		f = fopen(path, "w");
		assert_non_null(f);
		(void)fputs(text, f);
		assert_int_equal(fclose(f), 0);
	}
	f = fopen(path, "r");
	if (!f)
		fail_msg("golden file %s missing (run with UPDATE_GOLDEN=1 once)", path);
	n = fread(want, 1, sizeof(want) - 1, f);
	want[n] = '\0';
	(void)fclose(f);
	if (strcmp(want, text) != 0)
		fail_msg("%s differs:\n--- want\n%s--- got\n%s", path, want, text);
}

#endif
