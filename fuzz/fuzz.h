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

/*
 * FUZZ_CURRENT=FILE: each input is written there before it runs, so that
 * an input that hangs past libFuzzer's -timeout (one blocked where its
 * SIGALRM is not taken, or a sanitizer deadlocked in its report) leaves
 * itself behind when run-fuzz.sh kills the run.
 */
static inline void fz_current(const uint8_t *data, size_t size)
{
	static int fd = -2;

	if (fd == -2) {
		const char *f = getenv("FUZZ_CURRENT");
		fd = f && *f ? open(f, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644) : -1;
	}
	if (fd < 0)
		return;
	if (pwrite(fd, data, size, 0) != (ssize_t)size || ftruncate(fd, (off_t)size))
		fd = -1;
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

/*
 * The zone: where a harness maps every range it names.
 *
 * A harness names ranges that run past its mappings, over holes, with
 * lengths up to the top of the address space; uhmm manages any private
 * anonymous memory of the process, so a range that reached memory of
 * ASan, LSan or libFuzzer (heap chunks, allocator regions, the
 * symbolizer's buffers: all private anonymous) would migrate it to a
 * PRIVATE device or DISCARD it, legitimately, and the sanitizer would
 * crash on its own memory.  What keeps every range off foreign memory:
 *
 *  - the harness's mappings lie in a zone far below where mmap(NULL) puts
 *    anything (the kernel's top-down search takes the highest gap that
 *    fits, under the stack; ASan's allocator is at 0x600000000000, the
 *    libraries and thread stacks at 0x7f...), so a hole the harness
 *    leaves in its mappings stays a hole: next to mmap(NULL)'s area a
 *    one-page hole is the first gap a one-page mmap takes, and ASan and
 *    libFuzzer map such pages all the time (this was the fuzz_args hang:
 *    a hole of the arena taken by a sanitizer page, then migrated or
 *    discarded with the range around it, or the old arena's place taken
 *    by one and then unmapped by the harness's munmap over "its" pages);
 *  - the zone is mapped with MAP_FIXED_NOREPLACE (nothing of anyone else
 *    is replaced) and bounded by PROT_NONE guard mappings of FZ_GUARD on
 *    both sides, which no range the harness names (clamped, fz_clamp)
 *    can pass: the range is validated before anything moves, and a hole
 *    (-EFAULT) or PROT_NONE (-EINVAL) inside it stops the call first.
 */
#define FZ_ZONE ((uint8_t *)0x300000000000ull)
#define FZ_ZONE_SIZE ((size_t)64 << 20)
#define FZ_GUARD ((size_t)1 << 30)

static inline void fz_zone_guards(void)
{
	static const int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE;
	uint8_t *lo = FZ_ZONE - FZ_GUARD, *hi = FZ_ZONE + FZ_ZONE_SIZE;

	if (mmap(lo, FZ_GUARD, PROT_NONE, fl, -1, 0) != lo ||
	    mmap(hi, FZ_GUARD, PROT_NONE, fl, -1, 0) != hi) {
		fprintf(stderr, "uhmm fuzz: cannot map the guards of the zone at %p\n", (void *)FZ_ZONE);
		exit(1);
	}
}

/* a PROT_NONE reservation of len bytes at FZ_ZONE + off, where nothing may
 * be mapped yet (what an input left behind there is a failure) */
static inline uint8_t *fz_zone_map(size_t off, size_t len)
{
	uint8_t *want = FZ_ZONE + off;
	void *p = mmap(want, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != (void *)want) {
		char line[256];
		FILE *f = fopen("/proc/self/maps", "r");

		fprintf(stderr, "uhmm fuzz: mmap at %p: %s (something is left mapped there)\n",
			(void *)want, p == MAP_FAILED ? strerror(errno) : "placed elsewhere");
		/* what it is, for the report */
		while (f && fgets(line, sizeof(line), f))
			if (strtoull(line, NULL, 16) < (uintptr_t)(want + len) &&
			    strtoull(strchr(line, '-') + 1, NULL, 16) > (uintptr_t)want)
				fprintf(stderr, "uhmm fuzz:   %s", line);
		if (f)
			fclose(f);
		if (p != MAP_FAILED)
			munmap(p, len);
		__builtin_trap();
	}
	return want;
}

/*
 * len for a range at a: one that starts in the zone ends no further than
 * the guard above it (a length that wraps the address space is kept: the
 * library refuses it by arithmetic, before looking at any mapping).
 * Ranges that start elsewhere are the harness's to bound (below 64 KiB
 * and at or above the top of user space nothing can be mapped).
 */
static inline size_t fz_clamp(const void *a, size_t len)
{
	uintptr_t s = (uintptr_t)a, end = (uintptr_t)(FZ_ZONE + FZ_ZONE_SIZE + FZ_GUARD);

	if (s >= (uintptr_t)FZ_ZONE && s < (uintptr_t)(FZ_ZONE + FZ_ZONE_SIZE) && s + len >= s &&
	    s + len > end)
		return end - s;
	return len;
}

/*
 * Private anonymous memory registered with a userfaultfd outside the zone
 * (VmFlags um, uw or ui in /proc/self/smaps) that was not at the start
 * (the library's own devices' views are shared files): a call reached
 * memory of the process's that no range the harness names covers.  Such
 * memory can be the sanitizers' own (6bec298: ASan's heap, managed by
 * uhmm_dev_report_access over holes), where it does not crash: LSan's
 * tracer faults on it at exit and the process hangs.  Looked at after
 * every FZ_REG_EVERY-th input (smaps costs about an input's time), and
 * after every input where FUZZ_TRACE or FUZZ_REG_EVERY=1 is set, to find
 * the input that did it.
 */
#define FZ_REG_EVERY 16
#define FZ_REG_MAX 64

static uintptr_t fz_reg_start[FZ_REG_MAX], fz_reg_end[FZ_REG_MAX];
static char fz_reg_line[512];	/* the mapping's line in smaps, for the report */
static int fz_nreg = -1;

static inline bool fz_in_zone(uintptr_t s, uintptr_t e)
{
	return s >= (uintptr_t)(FZ_ZONE - FZ_GUARD) && e <= (uintptr_t)(FZ_ZONE + FZ_ZONE_SIZE + FZ_GUARD);
}

static inline bool fz_reg_known(uintptr_t s, uintptr_t e)
{
	for (int i = 0; i < fz_nreg; i++)
		if (s >= fz_reg_start[i] && e <= fz_reg_end[i])
			return true;
	return false;
}

/* each registered mapping outside the zone: fn(start, end) */
static inline void fz_reg_walk(void (*fn)(uintptr_t, uintptr_t))
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512], perm[8];
	uintptr_t s = 0, e = 0;
	unsigned long inode = 0;
	bool anon = false;

	while (f && fgets(line, sizeof(line), f)) {
		char *dash = strchr(line, '-');

		if (dash && dash > line && line[0] != 'V' && strchr(line, ' ') > dash) {
			s = strtoull(line, NULL, 16);
			e = strtoull(dash + 1, NULL, 16);
			anon = sscanf(line, "%*x-%*x %7s %*x %*x:%*x %lu", perm, &inode) == 2 &&
			       perm[3] == 'p' && !inode;
			memcpy(fz_reg_line, line, sizeof(line));
			continue;
		}
		/* private anonymous memory only: the library registers its
		 * devices' views (shared files) as it needs them */
		if (strncmp(line, "VmFlags:", 8) || !anon || fz_in_zone(s, e))
			continue;
		if (strstr(line, " um") || strstr(line, " uw") || strstr(line, " ui"))
			fn(s, e);
	}
	if (f)
		fclose(f);
}

static inline void fz_reg_note(uintptr_t s, uintptr_t e)
{
	if (fz_nreg < FZ_REG_MAX) {
		fz_reg_start[fz_nreg] = s;
		fz_reg_end[fz_nreg++] = e;
	}
}

static bool fz_reg_every;

static inline void fz_reg_check_one(uintptr_t s, uintptr_t e)
{
	if (!fz_reg_known(s, e))
		fz_fail("[%#lx, %#lx) is registered with a userfaultfd, outside the zone, by %s %d\n  %s",
			(unsigned long)s, (unsigned long)e,
			fz_reg_every ? "this input of" : "one of the last inputs (FUZZ_REG_EVERY=1 says which):",
			fz_reg_every ? 1 : FZ_REG_EVERY, fz_reg_line);
}

/* at the end of LLVMFuzzerInitialize: what is registered already is ours */
static inline void fz_reg_baseline(void)
{
	fz_nreg = 0;
	fz_reg_walk(fz_reg_note);
}

/* at the end of each input */
static inline void fz_reg_check(void)
{
	static unsigned n;

	fz_reg_every = getenv("FUZZ_TRACE") || getenv("FUZZ_REG_EVERY");
	if (fz_nreg < 0 || (!fz_reg_every && ++n % FZ_REG_EVERY))
		return;
	fz_note("the registrations outside the zone");
	fz_reg_walk(fz_reg_check_one);
}

static inline size_t fz_pages(uintptr_t a, size_t len)
{
	return ((a + len + pg - 1) / pg) - a / pg;
}

#endif /* UHMM_FUZZ_H */
