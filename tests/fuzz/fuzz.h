/* SPDX-License-Identifier: MIT */
/*
 * What every fuzz target shares: the libFuzzer entry point and a property check that stops the run. A broken
 * property aborts, so libFuzzer saves the input as a crash artifact and the run fails, like a sanitizer report.
 */
#ifndef KVINIT_FUZZ_H
#define KVINIT_FUZZ_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

__attribute__((noreturn, format(printf, 3, 4))) static inline void fuzz_fail(const char *file, int line,
									     const char *fmt, ...)
{
	va_list ap;

	(void)fprintf(stderr, "fuzz: property broken at %s:%d: ", file, line);
	va_start(ap, fmt);
	(void)vfprintf(stderr, fmt, ap);
	va_end(ap);
	(void)fputc('\n', stderr);
	abort();
}

/* FUZZ_CHECK(cond, "what should hold, with %s values", ...) */
#define FUZZ_CHECK(cond, ...)                                                                                          \
	do {                                                                                                           \
		if (!(cond))                                                                                           \
			fuzz_fail(__FILE__, __LINE__, __VA_ARGS__);                                                    \
	} while (0)

/* A NUL-terminated copy of size bytes (the input may hold NULs: the C string ends at the first). */
static inline char *fuzz_strndup(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (!s)
		abort();
	if (size)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

#endif
