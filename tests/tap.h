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
#include <errno.h>
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

static inline const char *tap_errname(long long e)
{
	static const struct { int e; const char *name; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { ESRCH, "ESRCH" },
		{ EINTR, "EINTR" }, { EIO, "EIO" }, { ENXIO, "ENXIO" },
		{ E2BIG, "E2BIG" }, { EBADF, "EBADF" }, { ECHILD, "ECHILD" },
		{ EAGAIN, "EAGAIN" }, { ENOMEM, "ENOMEM" }, { EACCES, "EACCES" },
		{ EFAULT, "EFAULT" }, { EBUSY, "EBUSY" }, { EEXIST, "EEXIST" },
		{ EXDEV, "EXDEV" }, { ENODEV, "ENODEV" }, { ENOTDIR, "ENOTDIR" },
		{ EISDIR, "EISDIR" }, { EINVAL, "EINVAL" }, { EMFILE, "EMFILE" },
		{ ENOTTY, "ENOTTY" }, { EFBIG, "EFBIG" }, { ENOSPC, "ENOSPC" },
		{ ESPIPE, "ESPIPE" }, { EROFS, "EROFS" }, { EPIPE, "EPIPE" },
		{ ERANGE, "ERANGE" }, { EDEADLK, "EDEADLK" },
		{ ENAMETOOLONG, "ENAMETOOLONG" }, { ENOSYS, "ENOSYS" },
		{ EOPNOTSUPP, "EOPNOTSUPP" }, { EOVERFLOW, "EOVERFLOW" },
		{ ETIMEDOUT, "ETIMEDOUT" }, { ECANCELED, "ECANCELED" },
		{ ENODATA, "ENODATA" }, { ESTALE, "ESTALE" }, { EHWPOISON, "EHWPOISON" },
	};

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (e == -names[i].e)
			return names[i].name;
	return "?";
}

/*
 * A bad input whose outcome a test has just confirmed, as a TAP comment
 * "# bad-input: what => outcome".  tests/run-tests.sh gathers them from
 * the plain pass and tests/bad-inputs.sh turns them into
 * docs/BAD_INPUTS.md, so the table is what the tests saw, not a list
 * written beside them.
 */
static inline void tap_bad_input(const char *outcome, const char *fmt, va_list ap)
{
	printf("# bad-input: ");
	vprintf(fmt, ap);
	printf(" => %s\n", outcome);
	fflush(stdout);
}

/* A confirmed negative errno is a bad-input case. */
static inline void tap_errno_vcase(long long want, const char *fmt, va_list ap)
{
	char outcome[32];

	if (want >= 0 || want < -4095)
		return;
	snprintf(outcome, sizeof(outcome), "-%s", tap_errname(want));
	tap_bad_input(outcome, fmt, ap);
}

static inline void tap_errno_case(long long want, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_errno_vcase(want, fmt, ap);
	va_end(ap);
}

/*
 * is_int(got, want, "what"): equality of two integers, both printed on
 * failure.  A confirmed negative errno is a bad-input case: errno
 * constants are ints, so a `want` of another type (SIZE_MAX, which reads
 * as -1 here) is none.
 */
#define is_int(got, want, ...) do {					\
	long long g_ = (long long)(got), w_ = (long long)(want);	\
	if (!ok(g_ == w_, __VA_ARGS__))					\
		printf("#   got %lld, want %lld\n", g_, w_);		\
	else if (_Generic((want), int: 1, default: 0))			\
		tap_errno_case(w_, __VA_ARGS__);			\
} while (0)

/* ok_errno(rc, -EINVAL, "what"): is_int for error cases, returning the verdict. */
static inline int ok_errno(long long got, long long want, const char *fmt, ...)
{
	va_list ap, again;

	va_start(ap, fmt);
	va_copy(again, ap);
	tap_result(got == want, fmt, ap);
	if (got == want)
		tap_errno_vcase(want, fmt, again);
	va_end(again);
	va_end(ap);
	return got == want;
}

/* A tool that refused: "exit N, \"what it printed\"". */
static inline void bad_input_exit(int status, const char *said, const char *fmt, ...)
{
	char outcome[256];
	va_list ap;

	snprintf(outcome, sizeof(outcome), "exit %d, \"%s\"", status, said);
	va_start(ap, fmt);
	tap_bad_input(outcome, fmt, ap);
	va_end(ap);
}

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
