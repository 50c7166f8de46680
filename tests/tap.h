/* SPDX-License-Identifier: MIT */
/*
 * Minimal TAP for uhmm tests.  Each test file is one program; it prints
 * "ok N - what" / "not ok N - what" lines and ends with the summary line
 * "N passed, N failed, N skipped" that the runner and CI read.
 */
#ifndef UHMM_TAP_H
#define UHMM_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int tap_n, tap_pass, tap_fail, tap_skip;

static inline void tap_result(int ok, const char *fmt, va_list ap)
{
	printf("%sok %d - ", ok ? "" : "not ", ++tap_n);
	vprintf(fmt, ap);
	printf("\n");
	fflush(stdout);
	if (ok)
		tap_pass++;
	else
		tap_fail++;
}

/* ok(cond, "what %d", x): one assertion. Returns cond. */
static inline int ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_result(cond, fmt, ap);
	va_end(ap);
	return cond;
}

/* is_int(got, want, "what"): equality of two integers, both printed on failure. */
#define is_int(got, want, ...) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	if (!ok(g_ == w_, __VA_ARGS__))					\
		printf("#   got %lld, want %lld\n", g_, w_);		\
} while (0)

/*
 * A known bug, tracked in an issue: reported as TAP "# TODO" (not ok is
 * printed, and not counted as a failure, as TAP specifies), so that it stays
 * visible in every run until it is fixed.
 */
static inline int ok_todo(int cond, const char *issue, const char *fmt, ...)
{
	va_list ap;

	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # TODO %s\n", issue);
	fflush(stdout);
	if (cond)
		tap_pass++;
	else
		tap_skip++;
	return cond;
}

static inline void skip(const char *why, ...)
{
	va_list ap;

	printf("ok %d # SKIP ", ++tap_n);
	va_start(ap, why);
	vprintf(why, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	tap_skip++;
}

static inline void diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);	/* nothing buffered may be duplicated by fork() */
}

/* Print the summary and return the exit status for main(). */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	printf("%d passed, %d failed, %d skipped\n", tap_pass, tap_fail, tap_skip);
	fflush(stdout);
	return tap_fail ? 1 : 0;
}

/* Abort the test file with a failure (setup could not be done). */
#define tap_bail(...) do {						\
	printf("Bail out! ");						\
	printf(__VA_ARGS__);						\
	printf("\n");							\
	tap_fail++;							\
	exit(tap_done());						\
} while (0)

#endif
