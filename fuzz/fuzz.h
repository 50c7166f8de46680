/* SPDX-License-Identifier: MIT */
/*
 * What both libFuzzer harnesses share: reading the input as a stream of
 * choices, the context made once per process, the errno rules of the
 * contract, and failing loudly.
 *
 * A harness fails (__builtin_trap, which libFuzzer records as a crash with
 * the input) when a call returns anything but success or a negative errno
 * the contract documents for that function, or when memory holds anything
 * but what the harness's model says.  Before trapping it prints what it
 * did, so a crash log alone says which call broke which rule.
 */
#ifndef UHMM_FUZZ_H
#define UHMM_FUZZ_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "uhmm.h"

/* ---- the input, read as choices; past its end every choice is 0 ---- */
struct in {
	const uint8_t *p;
	size_t n;
};

static inline uint8_t in_u8(struct in *in)
{
	uint8_t v = 0;

	if (in->n) {
		v = *in->p++;
		in->n--;
	}
	return v;
}

static inline uint16_t in_u16(struct in *in)
{
	return (uint16_t)(in_u8(in) | in_u8(in) << 8);
}

static inline uint32_t in_u32(struct in *in)
{
	return (uint32_t)in_u16(in) | (uint32_t)in_u16(in) << 16;
}

static inline uint64_t in_u64(struct in *in)
{
	return (uint64_t)in_u32(in) | (uint64_t)in_u32(in) << 32;
}

/* one of n (n > 0) */
static inline unsigned in_pick(struct in *in, unsigned n)
{
	return in_u8(in) % n;
}

/* ---- failing ---- */
static char fz_last[512];	/* the call being made, for the crash log */

__attribute__((format(printf, 1, 2))) static inline void fz_note(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(fz_last, sizeof(fz_last), fmt, ap);
	va_end(ap);
	if (getenv("FUZZ_TRACE"))
		fprintf(stderr, "fuzz: %s\n", fz_last);
}

__attribute__((noreturn, format(printf, 1, 2))) static inline void fz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "\n==== uhmm fuzz: contract broken\n  call: %s\n  ", fz_last);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fflush(stderr);
	__builtin_trap();
}

/*
 * rc must be >= 0 or one of the errnos listed (negative, 0-terminated).
 * FZ_ERRS(...) builds the list.
 */
#define FZ_ERRS(...) ((const int[]){ __VA_ARGS__, 0 })

static inline void fz_rc(long rc, const int *allowed)
{
	if (rc >= 0)
		return;
	for (; *allowed; allowed++)
		if (rc == -*allowed)
			return;
	fz_fail("returned %ld (%s), not an errno the contract documents for it", rc,
		uhmm_strerror((int)rc));
}

/* ---- the process's context ---- */
static size_t pg;

/*
 * Library state the harness leaves behind is what decides whether an input
 * reproduces alone; both harnesses undo what each input did (unmap, free,
 * remove, close, wait) before returning.
 */
static inline struct uhmm *fz_open(void)
{
	struct uhmm *h = NULL;
	int r;

	pg = (size_t)sysconf(_SC_PAGESIZE);
	/* no counters file in /dev/shm for a process that runs a million
	 * inputs; the harness tests uhmm_proc_* without it */
	setenv("UHMM_STAT_DIR", "off", 0);
	r = uhmm_open(&h, NULL);
	if (r) {
		fprintf(stderr, "uhmm fuzz: uhmm_open: %s: this machine cannot run uhmm\n",
			uhmm_strerror(r));
		exit(77);
	}
	return h;
}

static inline size_t fz_pages(uintptr_t a, size_t len)
{
	return ((a + len + pg - 1) / pg) - a / pg;
}

#endif /* UHMM_FUZZ_H */
