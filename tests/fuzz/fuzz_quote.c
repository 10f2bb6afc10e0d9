/* SPDX-License-Identifier: MIT */
/*
 * Quoting of config values (node_write_config_value), read back the way the server reads a config line
 * (tests/ref_splitargs.h). Input: two values separated by the first NUL byte (the second may be missing).
 * Properties: a value is written as printable ASCII only, so it cannot end its line or start another; it is
 * written as it is, or in double quotes; a simple token (letters, digits, "._-:/@+*,") stays as it is; the line
 * "name <value1> <value2>" is one the server reads, as three arguments that are the name and the two values
 * byte for byte, whatever their length.
 */
#include <string.h>

#include "../ref_splitargs.h"
#include "fuzz.h"
#include "node.h"

/* node_write_config_value into a string of its own. */
static char *quote(const char *value)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		abort();
	node_write_config_value(f, value);
	if (fclose(f) != 0)
		abort();
	return buf;
}

static void check_quoted(const char *value, const char *q)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-:/@+*,";
	size_t len = strlen(q);
	bool is_plain = *value && strspn(value, plain) == strlen(value);

	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(q[i] >= 0x20 && q[i] < 0x7f, "byte %zu of the quoted value is 0x%02x", i,
			   (unsigned char)q[i]);
	if (is_plain)
		FUZZ_CHECK(strcmp(q, value) == 0, "a plain value '%s' written as '%s'", value, q);
	else if (q[0] != '"')
		FUZZ_CHECK(strcmp(q, value) == 0, "a value written without quotes is not the value: '%.200s'", q);
	else
		FUZZ_CHECK(len >= 2 && q[len - 1] == '"', "a quoted value does not end with its quote: '%.200s'", q);
	/* a byte takes 4 at most (\xHH), plus the quotes */
	FUZZ_CHECK(len <= 4 * strlen(value) + 2, "%zu bytes quoted into %zu", strlen(value), len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *input = fuzz_strndup(data, size), *q1, *q2, *line;
	const char *v1 = input, *v2 = strlen(input) < size ? input + strlen(input) + 1 : "x";
	struct ref_arg args[4];
	int argc;

	q1 = quote(v1);
	q2 = quote(v2);
	check_quoted(v1, q1);
	check_quoted(v2, q2);
	if (asprintf(&line, "name %s %s", q1, q2) < 0)
		abort();
	argc = ref_split_args(line, args, 4);
	FUZZ_CHECK(argc == 3, "the server reads 'name <v1> <v2>' as %d arguments: '%.200s'", argc, line);
	FUZZ_CHECK(args[0].len == 4 && memcmp(args[0].data, "name", 4) == 0, "the name is not the first argument");
	FUZZ_CHECK(args[1].len == strlen(v1) && memcmp(args[1].data, v1, args[1].len) == 0,
		   "value 1 of %zu bytes decodes to %zu others", strlen(v1), args[1].len);
	FUZZ_CHECK(args[2].len == strlen(v2) && memcmp(args[2].data, v2, args[2].len) == 0,
		   "value 2 of %zu bytes decodes to %zu others", strlen(v2), args[2].len);
	ref_args_free(args, argc);
	free(line);
	free(q1);
	free(q2);
	free(input);
	return 0;
}
