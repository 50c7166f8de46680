/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: argument fuzzing of the public API.
 *
 * Each input is up to FZ_CALLS calls, each a public function with
 * arguments decoded from the input: addresses from a table of valid,
 * unaligned, edge and invalid addresses of mappings the harness owns
 * (private, PROT_NONE, read-only, shared, file-backed, mlocked, a hole,
 * memory another context manages, mseal'd memory, kernel and wrapping
 * addresses), lengths including 0, huge and wrapping ones, random flags
 * and enum values, handles NULL or live (never dangling: that is not a
 * contract the library can keep), struct sz fields 0, short, exact, and
 * larger with zero or non-zero tails, descriptions with random fields.
 *
 * What must hold: every call returns success or a negative errno its
 * documentation gives (fz_rc); a struct is written no further than its sz
 * (canary bytes past it); a struct with non-zero bytes past what the
 * library knows never succeeds; uhmm_strerror and the trace names give
 * text for any number; nothing crashes, hangs or trips ASan/UBSan.
 *
 * State: one context (with a COHERENT and a PRIVATE simulated device, a
 * mirror on each, and a second context owning some memory) is made once
 * per process in LLVMFuzzerInitialize: uhmm_open starts threads and
 * probes userfaultfd, which would dominate the time of an input.  The
 * arena of mappings is made afresh for each input and everything an input
 * made (devices, mirrors, intervals, contexts, allocations, prefetches,
 * trace readers, a link speed) is undone before it returns, so that the
 * next input starts from the same state and a crash reproduces alone.
 */
#include "fuzz.h"

#include <sys/syscall.h>

#ifndef SYS_mseal
#define SYS_mseal 462
#endif

#define FZ_CALLS 6
#define ARENA_PAGES 40
#define OUT_N (ARENA_PAGES + 8)	/* entries of the per-page out arrays */
#define SZBUF 4096
/* where in the zone (fuzz.h) the persistent ranges and the arena lie */
#define PERSIST_OFF ((size_t)1 << 20)
#define ARENA_OFF ((size_t)8 << 20)

static struct uhmm *h, *h2;
static struct uhmm_dev *dc, *dp, *d2;
static struct uhmm_mirror *mc, *mp;
static int memfd = -1, memfd_small = -1, rofd = -1, nullfd = -1, dirfd_ = -1, pipefd[2] = { -1, -1 };
static char tmpdir[64], tmpfile_[96], statdir[64];
static uint8_t *persist;	/* [guard][X: 4 pages, h2's][guard][S: 2 sealed][guard] */
static uint8_t *X, *S;
static uint64_t invals;

/* ---- what one input made, undone at its end ---- */
static uint8_t *arena;
static struct uhmm_dev *dyn_dev[8];
static unsigned ndyn_dev;
static struct uhmm_mirror *dyn_m[4];
static unsigned ndyn_m;
static struct uhmm_interval *dyn_iv[8];
static unsigned ndyn_iv;
static void *allocs[4];
static size_t alloc_sz[4];
static unsigned nallocs;
static uint64_t tickets[8];
static unsigned ntickets;
static int traces;
static bool link_set;

static void gslots_make(void);

/* arena page numbers */
enum {
	A_R0 = 1, A_R0_N = 8,	/* read-write, private */
	A_HOLE = 9,
	A_NONE = 10,		/* 2 pages PROT_NONE */
	A_RO = 12,		/* 2 pages PROT_READ */
	A_SHARED = 14,		/* 4 pages MAP_SHARED anonymous */
	A_FILE = 18,		/* 4 pages MAP_PRIVATE of a memfd */
	A_HOLE2 = 22,
	A_R1 = 23, A_R1_N = 8,	/* read-write */
	A_LOCK = 31,		/* 4 pages mlocked */
	A_R2 = 35, A_R2_N = 4,	/* read-write */
};

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
	__atomic_add_fetch(&invals, 1, __ATOMIC_RELAXED);
}

static void inval2(struct uhmm_mirror *m, const struct uhmm_inval *iv)
{
	(void)m; (void)iv;
	__atomic_add_fetch(&invals, 1, __ATOMIC_RELAXED);
}

static int cp_to(void *drv, uint64_t off, const void *src, size_t len)
{
	(void)drv; (void)off; (void)src; (void)len;
	return 0;
}

static int cp_from(void *drv, void *dst, uint64_t off, size_t len)
{
	(void)drv; (void)off;
	memset(dst, 0, len);
	return 0;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void cleanup_process(void)
{
	/* The contexts stay open: closing them here joins the library's
	 * threads while the process exits, and ASan's thread teardown then
	 * crashed now and then (AsanThreadLocalMallocStorage::CommitBack).
	 * LeakSanitizer's scan at exit is safe with them open: it reads heap,
	 * globals, stacks and TLS, never the managed ranges (h2's X is on a
	 * COHERENT device, mapped; nothing is on a PRIVATE one). */
	if (tmpfile_[0])
		unlink(tmpfile_);
	if (tmpdir[0])
		rmdir(tmpdir);
	if (statdir[0])
		rmdir(statdir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct uhmm_mirror_ops mops = { .sz = sizeof(mops), .invalidate = inval };
	int r;

	(void)argc; (void)argv;
	/* our own counters directory: uhmm_proc_* of this process work, and
	 * nothing is left in /dev/shm */
	snprintf(statdir, sizeof(statdir), "/tmp/uhmm-fuzz-stat.XXXXXX");
	if (!mkdtemp(statdir))
		die("mkdtemp");
	setenv("UHMM_STAT_DIR", statdir, 1);
	h = fz_open();
	if (uhmm_open(&h2, NULL))
		die("uhmm_open (second)");
	if (uhmm_dev_add_sim(h, "fzc", UHMM_MEM_COHERENT, 4 << 20, &dc) ||
	    uhmm_dev_add_sim(h, "fzp", UHMM_MEM_PRIVATE, 4 << 20, &dp) ||
	    uhmm_dev_add_sim(h2, "fz2", UHMM_MEM_COHERENT, 4 << 20, &d2))
		die("uhmm_dev_add_sim");
	if (uhmm_mirror_open(dc, &mops, NULL, &mc) || uhmm_mirror_open(dp, &mops, NULL, &mp))
		die("uhmm_mirror_open");
	gslots_make();

	memfd = memfd_create("fz", MFD_CLOEXEC);
	memfd_small = memfd_create("fz-small", MFD_CLOEXEC);
	if (memfd < 0 || memfd_small < 0 || ftruncate(memfd, 4 << 20) ||
	    ftruncate(memfd_small, 16 * (off_t)pg))
		die("memfd");
	{
		char path[64];
		snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
		rofd = open(path, O_RDONLY | O_CLOEXEC);
	}
	nullfd = open("/dev/null", O_RDWR | O_CLOEXEC);
	dirfd_ = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (pipe2(pipefd, O_CLOEXEC))
		die("pipe");
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/uhmm-fuzz.XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp");
	snprintf(tmpfile_, sizeof(tmpfile_), "%s/dev", tmpdir);

	/* persistent mappings, each between holes, in the zone (fuzz.h) */
	fz_zone_guards();
	persist = fz_zone_map(PERSIST_OFF, 10 * pg);
	if (mprotect(persist, 10 * pg, PROT_READ | PROT_WRITE))
		die("mprotect persist");
	munmap(persist, pg);
	munmap(persist + 5 * pg, pg);
	munmap(persist + 8 * pg, 2 * pg);
	X = persist + pg;
	S = persist + 6 * pg;
	memset(X, 0x5a, 4 * pg);
	memset(S, 0x3c, 2 * pg);
	if (uhmm_migrate(h2, X, 4 * pg, d2, 0))
		die("uhmm_migrate (second context)");
	mprotect(S, 2 * pg, PROT_READ);
	r = (int)syscall(SYS_mseal, S, 2 * pg, 0);
	(void)r;	/* no mseal: S is a read-only range like another */
	atexit(cleanup_process);
	fz_reg_baseline();
	return 0;
}

#define P(n) (arena + (size_t)(n) * pg)

/* ---- the arena of one input ---- */
static void arena_make(void)
{
	/* always at the same place in the zone: its holes stay holes, and
	 * nothing of the previous input may be left there */
	uint8_t *a = fz_zone_map(ARENA_OFF, ARENA_PAGES * pg);
	const int rw = PROT_READ | PROT_WRITE, fx = MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS;

	arena = a;
	munmap(P(0), pg);
	munmap(P(ARENA_PAGES - 1), pg);
	munmap(P(A_HOLE), pg);
	munmap(P(A_HOLE2), pg);
	if (mmap(P(A_R0), A_R0_N * pg, rw, fx, -1, 0) == MAP_FAILED ||
	    mmap(P(A_RO), 2 * pg, rw, fx, -1, 0) == MAP_FAILED ||
	    mmap(P(A_SHARED), 4 * pg, rw, MAP_FIXED | MAP_SHARED | MAP_ANONYMOUS, -1, 0) == MAP_FAILED ||
	    mmap(P(A_FILE), 4 * pg, rw, MAP_FIXED | MAP_PRIVATE, memfd_small, 0) == MAP_FAILED ||
	    mmap(P(A_R1), A_R1_N * pg, rw, fx, -1, 0) == MAP_FAILED ||
	    mmap(P(A_LOCK), 4 * pg, rw, fx, -1, 0) == MAP_FAILED ||
	    mmap(P(A_R2), A_R2_N * pg, rw, fx, -1, 0) == MAP_FAILED)
		die("mmap arena piece");
	memset(P(A_R0), 0x11, A_R0_N * pg);
	memset(P(A_RO), 0x22, 2 * pg);
	mprotect(P(A_RO), 2 * pg, PROT_READ);
	memset(P(A_SHARED), 0x33, 2 * pg);
	memset(P(A_R1), 0x44, A_R1_N * pg);
	memset(P(A_LOCK), 0x55, 4 * pg);
	(void)mlock(P(A_LOCK), 4 * pg);
	/* R2 is left untouched: never-populated pages */
}

static void input_cleanup(void)
{
	for (unsigned i = 0; i < ntickets; i++)
		fz_rc(uhmm_wait(h, tickets[i], -1),
		      FZ_ERRS(EINVAL, EFAULT, EBUSY, EPERM, EAGAIN, ENOMEM, EIO, ENOENT));
	ntickets = 0;
	for (unsigned i = 0; i < ndyn_iv; i++)
		uhmm_interval_remove(dyn_iv[i]);
	ndyn_iv = 0;
	for (unsigned i = 0; i < ndyn_m; i++)
		uhmm_mirror_close(dyn_m[i]);
	ndyn_m = 0;
	for (unsigned i = 0; i < nallocs; i++)
		if (uhmm_free(h, allocs[i]))
			fz_fail("uhmm_free of a live uhmm_alloc block failed");
	nallocs = 0;
	for (unsigned i = 0; i < ndyn_dev; i++)
		fz_rc(uhmm_dev_remove(dyn_dev[i]), FZ_ERRS(EIO));
	ndyn_dev = 0;
	for (; traces > 0; traces--)
		if (uhmm_trace_stop(h))
			fz_fail("uhmm_trace_stop after a start failed");
	if (link_set) {
		uhmm_sim_set_link(dc, 0);
		uhmm_sim_set_link(dp, 0);
		link_set = false;
	}
	munlock(arena, ARENA_PAGES * pg);
	munmap(arena, ARENA_PAGES * pg);
	arena = NULL;
	/* nothing may be left there (the corpus's fuzz_args-zone-taken): the
	 * input that left it is the one to report, not the next */
	munmap(fz_zone_map(ARENA_OFF, ARENA_PAGES * pg), ARENA_PAGES * pg);
}

/* ---- argument tables ---- */
static uint8_t *ptr(struct in *in)
{
	uint8_t *a = arena;
	unsigned k = in_pick(in, 30);


	switch (k) {
	case 0: return NULL;
	case 1: return P(A_R0);
	case 2: return P(A_R0) + 1;
	case 3: return P(A_R0) + pg - 1;
	case 4: return P(A_R0) + 3 * pg + 17;
	case 5: return P(A_R0 + A_R0_N - 1);
	case 6: return P(A_HOLE);
	case 7: return P(A_HOLE) + 5;
	case 8: return P(A_NONE);
	case 9: return P(A_RO);
	case 10: return P(A_SHARED);
	case 11: return P(A_FILE);
	case 12: return P(A_R1);
	case 13: return P(A_R1) + 8 * in_pick(in, 64);
	case 14: return P(0);
	case 15: return (uint8_t *)1;
	case 16: return (uint8_t *)0x1000;
	case 17: return (uint8_t *)(UINTPTR_MAX - pg + 1);
	case 18: return (uint8_t *)(UINTPTR_MAX - 7);
	case 19: return (uint8_t *)0xffff800000000000ull;
	case 20: return (uint8_t *)0x0000800000000000ull - pg;
	case 21: return nallocs ? allocs[in_pick(in, nallocs)] : P(A_R2);
	case 22: return P(A_R0) + in_u16(in) % (A_R0_N * pg);
	case 23: return a + in_u32(in) % (ARENA_PAGES * pg);
	case 24: return X;
	case 25: return X + pg + 3;
	case 26: return S;
	case 27: return P(A_LOCK);
	case 28: return P(A_R2);
	default: return P(A_RO) + pg;
	}
}

/* pointers a call may change the mappings of (uhmm_mprotect, madvise-like):
 * the arena (which ends in a hole), uhmm_alloc blocks (len_of keeps the
 * range inside them) and invalid ones, never the persistent ranges (X is
 * h2's, S sealed: they stay as they are for every input) */
static uint8_t *ptr_arena(struct in *in)
{
	uint8_t *p = ptr(in);

	if ((p >= persist && p < persist + 10 * pg))
		return arena + pg;
	return p;
}

static size_t len_raw(struct in *in, const void *addr);

/* a length for a range at addr: never past the zone's upper guard, never
 * past the end of a uhmm_alloc block (whose neighbours are anyone's) */
static size_t len_of(struct in *in, const void *addr)
{
	size_t len = len_raw(in, addr);
	uintptr_t a = (uintptr_t)addr;

	for (unsigned i = 0; i < nallocs; i++) {
		uintptr_t b = (uintptr_t)allocs[i];
		size_t bl = (alloc_sz[i] + pg - 1) & ~(pg - 1);
		if (a >= b && a < b + bl && a + len >= a && a + len > b + bl)
			len = b + bl - a;
	}
	return fz_clamp(addr, len);
}

static size_t len_raw(struct in *in, const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	unsigned k = in_pick(in, 20);

	switch (k) {
	case 0: return 0;
	case 1: return 1;
	case 2: return 7;
	case 3: return pg - 1;
	case 4: return pg;
	case 5: return pg + 1;
	case 6: return 2 * pg;
	case 7: return 8 * pg;
	case 8: return 8 * pg + 1;
	case 9: return ARENA_PAGES * pg;
	case 10: return (size_t)1 << 30;
	case 11: return SIZE_MAX;
	case 12: return SIZE_MAX - a + 1;		/* ends at 0: wraps */
	case 13: return UINTPTR_MAX - a - pg;	/* ends just below the top */
	case 14: return in_u16(in);
	case 15: return (size_t)in_pick(in, 16) * pg + in_u16(in) % pg;
	case 16: return UINTPTR_MAX - a - 2 * pg + 1;
	case 17: return 3 * pg;
	case 18: return 4 * pg;
	default: return (size_t)in_u64(in);
	}
}

static unsigned flags_of(struct in *in)
{
	switch (in_pick(in, 8)) {
	case 0: case 1: case 2: return 0;
	case 3: return 1;
	case 4: return 2;
	case 5: return 3;
	case 6: return 1u << in_pick(in, 32);
	default: return in_u32(in);
	}
}

static struct uhmm_dev *dev_of(struct in *in)
{
	switch (in_pick(in, 6)) {
	case 0: return NULL;
	case 1: case 4: return dc;
	case 2: return dp;
	case 3: return d2;
	default: return ndyn_dev ? dyn_dev[in_pick(in, ndyn_dev)] : dc;
	}
}

static struct uhmm_mirror *mirror_of(struct in *in)
{
	switch (in_pick(in, 5)) {
	case 0: return NULL;
	case 1: case 3: return mc;
	case 2: return mp;
	default: return ndyn_m ? dyn_m[in_pick(in, ndyn_m)] : mp;
	}
}

static size_t sim_size(struct in *in)
{
	static const size_t mib = 1 << 20;

	switch (in_pick(in, 12)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return pg - 1;
	case 3: return pg;
	case 4: return pg + 1;
	case 5: return mib - 8;
	case 6: return mib;
	case 7: return 4 * mib;
	case 8: return SIZE_MAX;
	case 9: return SIZE_MAX & ~(pg - 1);
	case 10: return (SIZE_MAX & ~(pg - 1)) - 16 * pg;
	default: return (size_t)(in_pick(in, 64) + 1) * pg;
	}
}

static const char *name_of(struct in *in)
{
	static char longname[200];

	switch (in_pick(in, 5)) {
	case 0: return NULL;
	case 1: return "";
	case 2:
		memset(longname, 'n', sizeof(longname) - 1);
		longname[sizeof(longname) - 1] = 0;
		return longname;
	case 3: return "name with spaces \n\t and \x7f";
	default: return "dyn";
	}
}

/* ---- sz of boundary structs ---- */
struct szb {
	size_t eff;		/* bytes the library may touch */
	size_t placed;		/* eff rounded up to 8: what sits before the guard */
	bool tail;		/* non-zero bytes past what the library knows */
	bool small;		/* 0 < sz < sizeof(size_t): -EINVAL */
	uint8_t *at;		/* the struct, ending at a PROT_NONE page */
};

/* Two slots, each a page followed by a PROT_NONE page: a struct of sz
 * bytes ends (rounded up to 8, for alignment) at the guard, so a library
 * that reads or writes past sz faults, and a write into the rounding is
 * seen by the canary. */
static uint8_t *gslot[2];

static void gslots_make(void)
{
	for (int i = 0; i < 2; i++) {
		gslot[i] = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (gslot[i] == MAP_FAILED || mprotect(gslot[i] + pg, pg, PROT_NONE))
			die("mmap guard slot");
	}
}

/* A struct of `known` bytes (as compiled here) with sz chosen from the
 * input: zeros up to sz, or a non-zero byte somewhere between `known` and
 * sz (the library must refuse it), canary 0xa5 in the rounding. */
static void *szb_prep(struct in *in, struct szb *s, size_t known, int slot)
{
	size_t sz;

	switch (in_pick(in, 10)) {
	case 0: sz = 0; break;
	case 1: sz = known - 8; break;
	case 2: sz = 1 + in_pick(in, 7); break;
	case 3: sz = 8; break;
	case 4: sz = known + 8; break;
	case 5: sz = known + 8 * (1 + in_pick(in, 32)); break;
	case 6: sz = SZBUF - 64; break;
	case 7: sz = 8 + in_u16(in) % (SZBUF - 64 - 8); break;
	default: sz = known; break;
	}
	s->eff = sz ? sz : known;
	if (s->eff < sizeof(size_t))
		s->eff = sizeof(size_t);	/* the sz field itself is always there */
	s->placed = (s->eff + 7) & ~(size_t)7;
	s->at = gslot[slot] + pg - s->placed;
	memset(gslot[slot], 0xa5, pg);
	memset(s->at, 0, s->eff);
	s->tail = false;
	s->small = sz > 0 && sz < sizeof(size_t);
	if (sz > known && in_pick(in, 3) == 0) {
		s->at[known + in_u16(in) % (sz - known)] = (uint8_t)(1 + in_pick(in, 255));
		s->tail = true;
	}
	memcpy(s->at, &sz, sizeof(sz));
	return s->at;
}

/* the struct, or (one in `one_in`) NULL: then nothing about it can be
 * refused */
static void *maybe(struct in *in, struct szb *s, void *p, unsigned one_in)
{
	if (in_pick(in, one_in))
		return p;
	s->tail = s->small = false;
	return NULL;
}

/* after a call: nothing written into the rounding past sz, tails and
 * short sizes refused */
static void szb_check(const struct szb *s, int rc)
{
	for (size_t i = s->eff; i < s->placed; i++)
		if (s->at[i] != 0xa5)
			fz_fail("byte %zu written past sz (%zu)", i, s->eff);
	if (s->tail && rc >= 0)
		fz_fail("a struct with non-zero bytes past what the library knows succeeded");
	if (s->small && rc >= 0)
		fz_fail("a struct with sz < sizeof(size_t) succeeded");
}

static const int E_MIGRATE[] = { EINVAL, EFAULT, EBUSY, EPERM, EAGAIN, ENOMEM, EIO, E2BIG, 0 };
static const int E_RANGE[] = { EINVAL, EFAULT, EBUSY, EPERM, ENOMEM, 0 };
static const int E_MIRROR[] = { EINVAL, EFAULT, EBUSY, EPERM, ENOMEM, ENODEV, 0 };

static int loc[OUT_N];
static struct uhmm_pte ptes[OUT_N];
static uint64_t masks[OUT_N];
static uint8_t iobuf[(ARENA_PAGES + 4) * 4096 + 64];

/* the per-page out arrays hold OUT_N entries: calls whose range could need
 * more (it can only succeed if every page is mapped, and no run of mapped
 * pages the harness gives is that long) are still made, with the hole that
 * ends the arena inside the first OUT_N pages, or not made */
static bool fits(const void *addr, size_t len)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len || a + len < a)
		return true;	/* -EINVAL before anything is written */
	if (fz_pages(a, len) <= OUT_N)
		return true;
	/* starts in the arena or the persistent ranges: a hole comes first */
	return (a >= (uintptr_t)arena && a < (uintptr_t)arena + ARENA_PAGES * pg) ||
	       (a >= (uintptr_t)persist && a < (uintptr_t)persist + 10 * pg) ||
	       a < 0x10000 || a >= 0x0000800000000000ull - pg;
}

static bool io_fits(const void *addr, size_t len)
{
	return len <= sizeof(iobuf) || fits(addr, len);
}

static void one_call(struct in *in)
{
	unsigned fn = in_pick(in, 52);
	struct szb s;
	uint8_t *p;
	size_t len;
	unsigned fl;
	struct uhmm_dev *d;
	int rc;

	switch (fn) {
	case 0: case 1: case 2: {	/* uhmm_migrate */
		p = ptr(in); len = len_of(in, p); d = dev_of(in); fl = flags_of(in);
		fz_note("uhmm_migrate(%p, %#zx, dev %p, %#x)", (void *)p, len, (void *)d, fl);
		fz_rc(uhmm_migrate(h, p, len, d, fl), E_MIGRATE);
		break;
	}
	case 3: {	/* uhmm_migrate_ex */
		struct uhmm_migrate_res *res;
		p = ptr(in); len = len_of(in, p); d = dev_of(in); fl = flags_of(in);
		res = szb_prep(in, &s, sizeof(*res), 0);
		fz_note("uhmm_migrate_ex(%p, %#zx, dev %p, %#x, res sz %zu)", (void *)p, len, (void *)d, fl, res->sz);
		rc = uhmm_migrate_ex(h, p, len, d, fl, maybe(in, &s, res, 8));
		fz_rc(rc, E_MIGRATE);
		szb_check(&s, rc);
		break;
	}
	case 4: {	/* uhmm_prefetch */
		uint64_t t = 0;
		p = ptr(in); len = len_of(in, p); d = dev_of(in); fl = flags_of(in);
		fz_note("uhmm_prefetch(%p, %#zx, dev %p, %#x)", (void *)p, len, (void *)d, fl);
		rc = uhmm_prefetch(h, p, len, d, fl, in_pick(in, 8) ? &t : NULL);
		fz_rc(rc, E_MIGRATE);
		if (rc == 0 && t && ntickets < 8)
			tickets[ntickets++] = t;
		else if (rc == 0 && t)
			fz_rc(uhmm_wait(h, t, -1), E_MIGRATE);
		break;
	}
	case 5: {	/* uhmm_wait */
		uint64_t t;
		int to;
		switch (in_pick(in, 4)) {
		case 0: t = ntickets ? tickets[in_pick(in, ntickets)] : 0; break;
		case 1: t = 0; break;
		case 2: t = UINT64_MAX - in_pick(in, 4); break;
		default: t = in_u64(in); break;
		}
		to = (int)in_pick(in, 3);	/* 0, 1, 2 ms */
		if (ntickets && t == tickets[0] && in_pick(in, 2))
			to = -1;
		fz_note("uhmm_wait(%llu, %d)", (unsigned long long)t, to);
		fz_rc(uhmm_wait(in_pick(in, 16) ? h : NULL, t, to),
		      FZ_ERRS(EINVAL, EFAULT, EBUSY, EPERM, EAGAIN, ENOMEM, EIO, ETIMEDOUT, ENOENT));
		break;
	}
	case 6: case 7: {	/* uhmm_where */
		p = ptr(in); len = len_of(in, p);
		if (!fits(p, len))
			break;
		fz_note("uhmm_where(%p, %#zx)", (void *)p, len);
		rc = uhmm_where(in_pick(in, 16) ? h : NULL, p, len, in_pick(in, 16) ? loc : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, EFAULT, ENOMEM));
		break;
	}
	case 8: {	/* uhmm_dev_offset */
		int l; uint64_t off;
		p = ptr(in);
		fz_note("uhmm_dev_offset(%p)", (void *)p);
		fz_rc(uhmm_dev_offset(in_pick(in, 16) ? h : NULL, p, in_pick(in, 8) ? &l : NULL,
				      in_pick(in, 8) ? &off : NULL), FZ_ERRS(EINVAL, EFAULT));
		break;
	}
	case 9: case 10: {	/* uhmm_advise */
		int adv = (int)in_pick(in, 9);
		p = ptr(in); len = len_of(in, p); d = dev_of(in);
		if (in_pick(in, 8) == 0)
			adv = (int)in_u32(in);
		fz_note("uhmm_advise(%p, %#zx, %d, dev %p)", (void *)p, len, adv, (void *)d);
		fz_rc(uhmm_advise(h, p, len, (enum uhmm_advice)adv, d), E_RANGE);
		break;
	}
	case 11: {	/* uhmm_range_attr */
		struct uhmm_range_attr *a;
		p = ptr(in); len = len_of(in, p);
		a = szb_prep(in, &s, sizeof(*a), 0);
		fz_note("uhmm_range_attr(%p, %#zx, sz %zu)", (void *)p, len, a->sz);
		rc = uhmm_range_attr(h, p, len, maybe(in, &s, a, 16));
		fz_rc(rc, FZ_ERRS(EINVAL, EFAULT, E2BIG));
		if (rc > 1)
			fz_fail("uhmm_range_attr returned %d", rc);
		szb_check(&s, rc);
		break;
	}
	case 12: {	/* uhmm_duplicates */
		p = ptr(in); len = len_of(in, p);
		/* no hole check: one mask per page of any range (0 where
		 * nothing is duplicated), so the array must hold them all */
		if (len && (uintptr_t)p + len >= (uintptr_t)p && fz_pages((uintptr_t)p, len) > OUT_N)
			break;
		fz_note("uhmm_duplicates(%p, %#zx)", (void *)p, len);
		fz_rc(uhmm_duplicates(h, p, len, in_pick(in, 16) ? masks : NULL), FZ_ERRS(EINVAL, EFAULT));
		break;
	}
	case 13: case 14: {	/* uhmm_pin / uhmm_unpin */
		p = ptr(in); len = len_of(in, p);
		fz_note("uhmm_%spin(%p, %#zx)", fn == 13 ? "" : "un", (void *)p, len);
		rc = fn == 13 ? uhmm_pin(h, p, len) : uhmm_unpin(h, p, len);
		fz_rc(rc, FZ_ERRS(EINVAL, EFAULT, EBUSY, EPERM, ENOMEM, EIO));
		break;
	}
	case 15: {	/* uhmm_dev_evict */
		size_t b = in_pick(in, 2) ? (size_t)in_u32(in) : len_of(in, NULL);
		d = dev_of(in);
		fz_note("uhmm_dev_evict(%p, %#zx)", (void *)d, b);
		fz_rc(uhmm_dev_evict(d == d2 ? dc : d, b), FZ_ERRS(EINVAL, ENOMEM, EIO));
		break;
	}
	case 16: {	/* uhmm_dev_info */
		struct uhmm_dev_info *i;
		d = dev_of(in);
		i = szb_prep(in, &s, sizeof(*i), 0);
		fz_note("uhmm_dev_info(%p, sz %zu)", (void *)d, i->sz);
		rc = uhmm_dev_info(d, maybe(in, &s, i, 16));
		fz_rc(rc, FZ_ERRS(EINVAL, E2BIG));
		szb_check(&s, rc);
		if (rc == 0 && s.eff >= sizeof(*i) && !(i->used <= i->reserved && i->reserved <= i->size))
			fz_fail("uhmm_dev_info: used %zu reserved %zu size %zu", i->used, i->reserved, i->size);
		break;
	}
	case 17: case 18: {	/* uhmm_stats, uhmm_dev_stats */
		struct uhmm_stats *st = szb_prep(in, &s, sizeof(*st), 0);
		d = dev_of(in);
		fz_note("uhmm_%sstats(sz %zu)", fn == 17 ? "" : "dev_", st->sz);
		rc = fn == 17 ? uhmm_stats(in_pick(in, 16) ? h : NULL, maybe(in, &s, st, 16))
			      : uhmm_dev_stats(d, maybe(in, &s, st, 16));
		fz_rc(rc, FZ_ERRS(EINVAL, E2BIG));
		szb_check(&s, rc);
		break;
	}
	case 19: {	/* uhmm_features, uhmm_version, names, strerror */
		uint64_t f;
		int e = (int)in_u32(in);
		int ne = e == INT32_MIN ? e : -e;	/* -INT_MIN is UB */
		fz_note("uhmm_features / strerror(%d)", e);
		fz_rc(uhmm_features(in_pick(in, 8) ? h : NULL, in_pick(in, 8) ? &f : NULL), FZ_ERRS(EINVAL));
		if (uhmm_version() != ((UHMM_VERSION_MAJOR << 16) | UHMM_VERSION_MINOR))
			fz_fail("uhmm_version");
		if (!uhmm_strerror(e) || !uhmm_strerror(ne) || !uhmm_trace_type_name((unsigned)e) ||
		    !uhmm_trace_cause_name((unsigned)e) || strcmp(uhmm_strerror(e), uhmm_strerror(e)))
			fz_fail("NULL text for %d", e);
		if (strcmp(uhmm_strerror(e), uhmm_strerror(ne)))
			fz_fail("uhmm_strerror(%d) differs from (%d)", e, ne);
		break;
	}
	case 20: case 21: {	/* uhmm_dev_add_sim */
		struct uhmm_dev *o = NULL;
		size_t sz = sim_size(in);
		int kind = (int)in_pick(in, 4);
		const char *nm = name_of(in);
		if (ndyn_dev >= 8)
			break;
		fz_note("uhmm_dev_add_sim(%s, kind %d, size %#zx)", nm ? nm : "NULL", kind, sz);
		rc = uhmm_dev_add_sim(in_pick(in, 16) ? h : NULL, nm, (enum uhmm_mem)kind, sz,
				      in_pick(in, 16) ? &o : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, ENOMEM, ENOSPC, ENOSYS, EFBIG));
		if (rc == 0) {
			if (!o)
				fz_fail("uhmm_dev_add_sim: 0 and no device");
			dyn_dev[ndyn_dev++] = o;
		}
		break;
	}
	case 22: case 23: {	/* uhmm_dev_add */
		struct uhmm_dev_desc *de;
		struct szb so;
		struct uhmm_dev_ops *ops;
		struct uhmm_dev *o = NULL;
		int fds[] = { -1, memfd, memfd_small, rofd, nullfd, dirfd_, pipefd[0], 987, -2 };
		if (ndyn_dev >= 8)
			break;
		de = szb_prep(in, &s, sizeof(*de), 0);
		ops = NULL;
		if (s.eff >= sizeof(*de)) {
			de->name = name_of(in);
			de->kind = (enum uhmm_mem)(in_pick(in, 8) ? 1 + in_pick(in, 2) : in_u32(in));
			de->size = sim_size(in);
			de->fd = fds[in_pick(in, 9)];
			de->fd_offset = in_pick(in, 2) ? 0 : in_pick(in, 2) ? pg * in_pick(in, 4) : in_u64(in);
			de->drv = NULL;
			ops = szb_prep(in, &so, sizeof(*ops), 1);
			if (so.eff >= sizeof(*ops)) {
				ops->copy_to_dev = in_pick(in, 4) ? cp_to : NULL;
				ops->copy_from_dev = in_pick(in, 4) ? cp_from : NULL;
			}
			de->ops = in_pick(in, 3) ? ops : NULL;
			fz_note("uhmm_dev_add(sz %zu, kind %d, size %#zx, fd %d, off %#llx, ops %p sz %zu)",
				s.eff, (int)de->kind, de->size, de->fd, (unsigned long long)de->fd_offset,
				(void *)de->ops, so.eff);
		} else {
			/* a short desc: the library reads nothing past sz (the
			 * guard page), all it sees is zeros */
			fz_note("uhmm_dev_add(sz %zu)", s.eff);
		}
		rc = uhmm_dev_add(h, de, in_pick(in, 16) ? &o : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, EBADF, EACCES, EBUSY, ENOSYS, ENOMEM, E2BIG, ENOSPC, ENODEV));
		szb_check(&s, rc);
		if (rc == 0 && (s.tail || (ops && de->ops == ops && so.tail)))
			fz_fail("uhmm_dev_add with a non-zero unknown tail succeeded");
		if (rc == 0) {
			if (!o)
				fz_fail("uhmm_dev_add: 0 and no device");
			dyn_dev[ndyn_dev++] = o;
		}
		break;
	}
	case 24: {	/* uhmm_dev_add_file */
		static const char *paths[] = { "/nonexistent/uhmm", "/dev/null", "/proc/self/maps", "/tmp",
					       "", "/dev/shm", NULL, NULL };
		struct uhmm_dev *o = NULL;
		const char *path = paths[in_pick(in, 8)];
		size_t sz = in_pick(in, 2) ? sim_size(in) : 0;
		if (ndyn_dev >= 8)
			break;
		if (!path && in_pick(in, 2))
			path = tmpfile_;
		if (path == tmpfile_ && (sz > (64 << 20) || !sz))
			sz = 1 << 20;	/* a regular file is extended to size: keep it small */
		fz_note("uhmm_dev_add_file(%s, %#zx)", path ? path : "NULL", sz);
		rc = uhmm_dev_add_file(h, path, sz, in_pick(in, 16) ? &o : NULL);
		/* open(2)/fstat/ftruncate errors come back as they are */
		fz_rc(rc, FZ_ERRS(EINVAL, EBADF, EACCES, EBUSY, ENOSYS, ENOMEM, ENOENT, EISDIR, ENODEV,
				  ENOSPC, EFBIG, ENOTDIR, EPERM, EROFS, ENXIO, ENAMETOOLONG, ELOOP));
		if (rc == 0) {
			if (!o)
				fz_fail("uhmm_dev_add_file: 0 and no device");
			dyn_dev[ndyn_dev++] = o;
		}
		if (path == tmpfile_)
			unlink(tmpfile_);
		break;
	}
	case 25: {	/* uhmm_dev_remove of a device this input added */
		unsigned i;
		if (!ndyn_dev) {
			fz_rc(uhmm_dev_remove(NULL), FZ_ERRS(EINVAL));
			break;
		}
		i = in_pick(in, ndyn_dev);
		fz_note("uhmm_dev_remove(dyn %u)", i);
		fz_rc(uhmm_dev_remove(dyn_dev[i]), FZ_ERRS(EIO));
		dyn_dev[i] = dyn_dev[--ndyn_dev];
		break;
	}
	case 26: {	/* uhmm_alloc */
		size_t sz = in_pick(in, 2) ? sim_size(in) : len_of(in, NULL);
		void *a;
		d = dev_of(in); fl = flags_of(in);
		if (nallocs >= 4)
			break;
		if (sz > (64 << 20) && sz < ((size_t)1 << 46))
			sz = 64 << 20;	/* memory we could really get: keep it small */
		fz_note("uhmm_alloc(%#zx, dev %p, %#x)", sz, (void *)d, fl);
		errno = 0;
		a = uhmm_alloc(in_pick(in, 16) ? h : NULL, sz, d, fl);
		if (a) {
			alloc_sz[nallocs] = sz;
			allocs[nallocs++] = a;
			if (in_pick(in, 2))
				memset(a, 0x66, sz < 3 * pg ? sz : 3 * pg);
		} else if (errno != EINVAL && errno != ENOMEM) {
			fz_fail("uhmm_alloc: NULL with errno %d", errno);
		}
		break;
	}
	case 27: {	/* uhmm_free */
		unsigned i;
		if (nallocs && in_pick(in, 2)) {
			i = in_pick(in, nallocs);
			fz_note("uhmm_free(alloc %u)", i);
			if (uhmm_free(h, allocs[i]))
				fz_fail("uhmm_free of a live block failed");
			alloc_sz[i] = alloc_sz[nallocs - 1];
			allocs[i] = allocs[--nallocs];
		} else {
			p = ptr(in);
			if (nallocs && (p == allocs[0] || p == allocs[1] || p == allocs[2] || p == allocs[3]))
				break;
			fz_note("uhmm_free(%p)", (void *)p);
			fz_rc(uhmm_free(h, p), FZ_ERRS(EINVAL));
		}
		break;
	}
	case 28: {	/* uhmm_unmanage */
		p = ptr(in); len = len_of(in, p);
		fz_note("uhmm_unmanage(%p, %#zx)", (void *)p, len);
		fz_rc(uhmm_unmanage(h, p, len), FZ_ERRS(EINVAL, EFAULT, EBUSY, EPERM, ENOMEM, EIO, EAGAIN));
		break;
	}
	case 29: {	/* uhmm_mirror_open */
		struct uhmm_mirror_ops *ops;
		struct uhmm_mirror *o = NULL;
		if (ndyn_m >= 4)
			break;
		d = dev_of(in);
		if (d == d2)
			d = dp;
		ops = szb_prep(in, &s, sizeof(*ops), 0);
		if (s.eff >= sizeof(*ops)) {
			ops->invalidate = in_pick(in, 3) ? inval : NULL;
			ops->invalidate2 = in_pick(in, 3) ? inval2 : NULL;
		}
		fz_note("uhmm_mirror_open(dev %p, ops sz %zu)", (void *)d, s.eff);
		rc = uhmm_mirror_open(d, maybe(in, &s, ops, 8), NULL, in_pick(in, 16) ? &o : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, E2BIG, ENOMEM, ENODEV));
		szb_check(&s, rc);
		if (rc == 0 && (s.eff < sizeof(*ops) || (!ops->invalidate && !ops->invalidate2)))
			fz_fail("uhmm_mirror_open without callbacks succeeded");
		if (rc == 0)
			dyn_m[ndyn_m++] = o;
		break;
	}
	case 30: {	/* uhmm_mirror_close of one this input opened */
		unsigned i;
		if (!ndyn_m) {
			uhmm_mirror_close(NULL);
			break;
		}
		i = in_pick(in, ndyn_m);
		/* its intervals first: none may outlive it */
		for (unsigned j = 0; j < ndyn_iv; j++)
			uhmm_interval_remove(dyn_iv[j]);
		ndyn_iv = 0;
		fz_note("uhmm_mirror_close(dyn %u)", i);
		uhmm_mirror_close(dyn_m[i]);
		dyn_m[i] = dyn_m[--ndyn_m];
		break;
	}
	case 31: {	/* read_begin / read_retry / priv */
		struct uhmm_mirror *m = mirror_of(in);
		uint64_t sq = uhmm_mirror_read_begin(m);
		fz_note("uhmm_mirror_read_begin/retry(%p)", (void *)m);
		if (!m && sq != 0)
			fz_fail("uhmm_mirror_read_begin(NULL) = %llu", (unsigned long long)sq);
		if (!m && !uhmm_mirror_read_retry(NULL, in_u64(in)))
			fz_fail("uhmm_mirror_read_retry(NULL) false");
		if (m)
			(void)uhmm_mirror_read_retry(m, in_pick(in, 2) ? sq : in_u64(in));
		(void)uhmm_mirror_priv(m);
		break;
	}
	case 32: {	/* uhmm_interval_insert */
		struct uhmm_interval *iv = NULL;
		struct uhmm_mirror *m = mirror_of(in);
		uintptr_t st = (uintptr_t)ptr(in);
		if (ndyn_iv >= 8)
			break;
		len = len_of(in, (void *)st);
		fz_note("uhmm_interval_insert(%p, %#lx, %#zx)", (void *)m, (unsigned long)st, len);
		rc = uhmm_interval_insert(m, st, len, in_pick(in, 16) ? &iv : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, ENODEV, ENOMEM));
		if (rc == 0) {
			if (!iv)
				fz_fail("uhmm_interval_insert: 0 and no interval");
			dyn_iv[ndyn_iv++] = iv;
			uint64_t sq = uhmm_interval_read_begin(iv);
			(void)uhmm_interval_read_retry(iv, sq);
		}
		if (uhmm_interval_read_begin(NULL) != 0 || !uhmm_interval_read_retry(NULL, 0))
			fz_fail("uhmm_interval_read_begin/retry(NULL)");
		break;
	}
	case 33: {	/* uhmm_interval_remove */
		unsigned i;
		if (!ndyn_iv)
			break;
		i = in_pick(in, ndyn_iv);
		fz_note("uhmm_interval_remove(%u)", i);
		uhmm_interval_remove(dyn_iv[i]);
		dyn_iv[i] = dyn_iv[--ndyn_iv];
		break;
	}
	case 34: case 35: {	/* uhmm_range_fault */
		struct uhmm_mirror *m = mirror_of(in);
		p = ptr(in); len = len_of(in, p); fl = flags_of(in);
		if (!fits(p, len))
			break;
		/* a snapshot (no FAULT_* flag) does not stop at a hole: it
		 * gives it ERROR entries, one per page of the whole range */
		if (!(fl & (UHMM_FAULT_READ | UHMM_FAULT_WRITE)) && len && (uintptr_t)p + len >= (uintptr_t)p &&
		    fz_pages((uintptr_t)p, len) > OUT_N)
			break;
		fz_note("uhmm_range_fault(%p, %p, %#zx, %#x)", (void *)m, (void *)p, len, fl);
		fz_rc(uhmm_range_fault(m, p, len, fl, in_pick(in, 16) ? ptes : NULL), E_MIRROR);
		break;
	}
	case 36: {	/* uhmm_mprotect */
		int prot = in_pick(in, 4) ? (int)in_pick(in, 8) : (int)in_u32(in);
		p = ptr_arena(in); len = len_of(in, p);
		fz_note("uhmm_mprotect(%p, %#zx, %#x)", (void *)p, len, prot);
		/* the kernel's errors come back as they are */
		fz_rc(uhmm_mprotect(in_pick(in, 16) ? h : NULL, p, len, prot),
		      FZ_ERRS(EINVAL, ENOMEM, EACCES, EPERM, EFAULT, EBUSY, EAGAIN));
		break;
	}
	case 37: {	/* uhmm_make_exclusive */
		struct uhmm_mirror *m = mirror_of(in);
		p = ptr(in); len = len_of(in, p);
		fz_note("uhmm_make_exclusive(%p, %p, %#zx)", (void *)m, (void *)p, len);
		fz_rc(uhmm_make_exclusive(m, p, len), E_MIRROR);
		break;
	}
	case 38: case 39: {	/* uhmm_sim_read / uhmm_sim_write */
		p = ptr(in); len = len_of(in, p); d = dev_of(in);
		if (!io_fits(p, len))
			break;
		if (fn == 39 && (p == X || p == X + pg + 3))
			p = S;	/* h2's memory stays as it is */
		fz_note("uhmm_sim_%s(dev %p, %p, %#zx)", fn == 38 ? "read" : "write", (void *)d, (void *)p, len);
		memset(iobuf, 0x77, sizeof(iobuf));
		rc = fn == 38 ? uhmm_sim_read(d, p, in_pick(in, 16) ? iobuf : NULL, len)
			      : uhmm_sim_write(d, p, in_pick(in, 16) ? iobuf : NULL, len);
		fz_rc(rc, FZ_ERRS(EINVAL, EFAULT, EPERM, EBUSY, ENOMEM, EIO, ENODEV));
		break;
	}
	case 40: {	/* uhmm_sim_atomic_add */
		uint64_t old;
		p = ptr(in); d = dev_of(in);
		if (p == X || p == X + pg + 3)
			p = S;
		fz_note("uhmm_sim_atomic_add(dev %p, %p)", (void *)d, (void *)p);
		fz_rc(uhmm_sim_atomic_add(d, p, in_u64(in), in_pick(in, 2) ? &old : NULL),
		      FZ_ERRS(EINVAL, EFAULT, EPERM, EBUSY, ENOMEM, EIO, ENODEV));
		break;
	}
	case 41: {	/* uhmm_sim_set_link: never slower than 1 GB/s, or
			 * the next accesses would take hours (by design) */
		uint64_t bps = in_pick(in, 2) ? 0 : (1ull << 30) + in_u32(in);
		d = dev_of(in);
		fz_note("uhmm_sim_set_link(%p, %llu)", (void *)d, (unsigned long long)bps);
		if (d == d2)
			d = NULL;
		fz_rc(uhmm_sim_set_link(d, bps), FZ_ERRS(EINVAL));
		link_set = true;
		break;
	}
	case 42: {	/* uhmm_dev_report_access */
		uint32_t cnt = in_pick(in, 2) ? in_pick(in, 8) : in_u32(in);
		p = ptr(in); len = len_of(in, p); d = dev_of(in);
		fz_note("uhmm_dev_report_access(%p, %p, %#zx, %u)", (void *)d, (void *)p, len, cnt);
		fz_rc(uhmm_dev_report_access(d, p, len, cnt), FZ_ERRS(EINVAL, EFAULT, EPERM, ENOMEM, EBUSY, EAGAIN));
		break;
	}
	case 43: {	/* tracing */
		static struct uhmm_trace_event ev[64];
		uint64_t next = in_pick(in, 2) ? 0 : in_u64(in);
		size_t n = in_pick(in, 65);
		switch (in_pick(in, 3)) {
		case 0:
			fz_note("uhmm_trace_start");
			rc = uhmm_trace_start(in_pick(in, 16) ? h : NULL);
			fz_rc(rc, FZ_ERRS(EINVAL, ENOMEM));
			if (rc == 0)
				traces++;
			break;
		case 1:
			fz_note("uhmm_trace_stop (%d started)", traces);
			rc = uhmm_trace_stop(h);
			if (traces ? rc != 0 : rc != -EINVAL)
				fz_fail("uhmm_trace_stop with %d started: %d", traces, rc);
			if (!rc)
				traces--;
			break;
		default:
			fz_note("uhmm_trace_read(next %llu, n %zu)", (unsigned long long)next, n);
			rc = uhmm_trace_read(h, in_pick(in, 16) ? &next : NULL, in_pick(in, 16) ? ev : NULL, n);
			fz_rc(rc, FZ_ERRS(EINVAL));
			if (rc > 0 && (size_t)rc > n)
				fz_fail("uhmm_trace_read returned %d > n %zu", rc, n);
		}
		break;
	}
	case 44: {	/* uhmm_open with options, then close */
		struct uhmm_opts *o = szb_prep(in, &s, sizeof(struct uhmm_opts), 0);
		struct uhmm *h3 = NULL;
		if (in_pick(in, 4))	/* costly (threads): one input in four that gets here */
			break;
		if (s.eff >= sizeof(*o)) {
			o->fault_around = in_pick(in, 2) ? (size_t)pg << in_pick(in, 12) : len_of(in, NULL);
			o->fault_threads = in_pick(in, 2) ? in_pick(in, 5) : in_u32(in);
			o->access_threshold = in_u32(in);
			o->pool_bytes = in_pick(in, 2) ? in_pick(in, 2) ? SIZE_MAX : 0 : in_u32(in);
			o->flags = in_pick(in, 2) ? in_pick(in, 2) : in_u32(in);
			o->thrash_moves = in_u32(in);
			o->thrash_window_ms = in_u32(in);
			o->thrash_pin_ms = in_u32(in);
		}
		fz_note("uhmm_open(opts sz %zu)", s.eff);
		if (s.eff >= sizeof(*o) && o->fault_threads > 8)
			o->fault_threads = 8;	/* threads we could really start */
		rc = uhmm_open(in_pick(in, 16) ? &h3 : NULL, maybe(in, &s, o, 8));
		fz_rc(rc, FZ_ERRS(EINVAL, E2BIG, ENOMEM, EPERM, ENOSYS));
		szb_check(&s, rc);
		if (rc == 0) {
			unsigned cf = in_pick(in, 2) ? 0 : in_pick(in, 2) ? UHMM_CLOSE_DISCARD : in_u32(in);
			if (in_pick(in, 2)) {
				struct uhmm_dev *dd;
				if (uhmm_dev_add_sim(h3, "h3", UHMM_MEM_PRIVATE, 1 << 20, &dd) == 0)
					fz_rc(uhmm_migrate(h3, P(A_R1), 2 * pg, dd, 0), E_MIGRATE);
			}
			rc = uhmm_close_ex(h3, cf);
			if (cf & ~UHMM_CLOSE_DISCARD) {
				if (rc != -EINVAL)
					fz_fail("uhmm_close_ex(%#x) = %d", cf, rc);
				uhmm_close(h3);
			} else if (rc) {
				fz_fail("uhmm_close_ex(%#x) = %d", cf, rc);
			}
		}
		fz_rc(uhmm_close_ex(NULL, 0), FZ_ERRS(EINVAL));
		break;
	}
	case 45: case 46: {	/* uhmm_proc_* on this process */
		struct uhmm_proc_id ids[8];
		struct uhmm_proc *pr = NULL;
		static const int pids[] = { 0, 1, -1, 0x7fffffff, -0x7fffffff - 1 };
		int pid = in_pick(in, 2) ? getpid() : pids[in_pick(in, 5)];
		size_t n = in_pick(in, 9);
		unsigned c = in_pick(in, 2) ? 1 : in_u32(in);
		fz_note("uhmm_proc_list(%d, %zu) / open(%d, %u)", pid, n, pid, c);
		fz_rc(uhmm_proc_list(pid, n ? ids : NULL, n), FZ_ERRS(EINVAL, ENOENT, EACCES, ENOMEM, ESRCH));
		rc = uhmm_proc_open(pid, c, in_pick(in, 16) ? &pr : NULL);
		fz_rc(rc, FZ_ERRS(EINVAL, ENOENT, ESRCH, EACCES, ENOMEM, EPROTO, EIO));
		if (rc == 0) {
			struct uhmm_proc_info *pi;
			struct szb s2;
			uint64_t st[4], ln[4], next = 0;
			static struct uhmm_trace_event ev[8];
			int to = (int)in_pick(in, 20);
			fz_rc(uhmm_proc_refresh(pr, to), FZ_ERRS(ETIMEDOUT, ESRCH));
			pi = szb_prep(in, &s, sizeof(*pi), 0);
			rc = uhmm_proc_info(pr, pi, NULL);
			fz_rc(rc, FZ_ERRS(EINVAL, E2BIG));
			szb_check(&s, rc);
			{
				struct uhmm_dev_info *di = szb_prep(in, &s2, sizeof(*di), 1);
				rc = uhmm_proc_dev(pr, in_pick(in, 4), di, NULL);
				fz_rc(rc, FZ_ERRS(EINVAL, E2BIG, ENOENT, ENODEV));
				szb_check(&s2, rc);
			}
			p = ptr(in); len = len_of(in, p);
			if (fits(p, len))
				fz_rc(uhmm_proc_where(pr, (uint64_t)(uintptr_t)p, len, loc, to),
				      FZ_ERRS(EINVAL, EFAULT, ETIMEDOUT, ESRCH, E2BIG));
			n = in_pick(in, 5);
			rc = uhmm_proc_allocs(pr, st, ln, n);
			fz_rc(rc, FZ_ERRS(EINVAL));
			rc = uhmm_proc_trace_read(pr, &next, ev, in_pick(in, 9));
			fz_rc(rc, FZ_ERRS(EINVAL, ETIMEDOUT, ESRCH));
			uhmm_proc_close(pr);
		}
		uhmm_proc_close(NULL);
		break;
	}
	case 47: {	/* plain munmap / madvise of arena pieces: events the
			 * library must take in its stride */
		p = ptr_arena(in); len = len_of(in, p);
		if ((uintptr_t)p < (uintptr_t)arena || (uintptr_t)p >= (uintptr_t)arena + ARENA_PAGES * pg)
			break;
		p = (uint8_t *)((uintptr_t)p & ~(pg - 1));
		/* never past the arena: plain munmap/mprotect do not stop at
		 * a hole, and the arena's neighbours are not the input's */
		if (len > (size_t)(arena + ARENA_PAGES * pg - p))
			len = (size_t)(arena + ARENA_PAGES * pg - p);
		switch (in_pick(in, 3)) {
		case 0:
			fz_note("munmap(%p, %#zx)", (void *)p, len);
			munmap(p, len);
			break;
		case 1:
			fz_note("madvise(%p, %#zx, DONTNEED)", (void *)p, len);
			madvise(p, len, MADV_DONTNEED);
			break;
		default:
			fz_note("mprotect(%p, %#zx, READ)", (void *)p, len);
			mprotect(p, len, PROT_READ);
		}
		break;
	}
	case 48: {	/* a CPU touch of the read-write ranges */
		uint8_t *q = in_pick(in, 2) ? P(A_R0) : P(A_R1);
		size_t off = in_u16(in) % (8 * pg);
		fz_note("CPU touch %p", (void *)(q + off));
		/* only where nothing made it unreadable: R0/R1 may have been
		 * unmapped or protected by case 36/47; ask the kernel first */
		{
			unsigned char v;
			if (mincore((void *)((uintptr_t)(q + off) & ~(pg - 1)), pg, &v) == 0) {
				struct uhmm_pte pt;
				volatile uint8_t *b = q + off;
				if (uhmm_range_fault(mc, q + off, 1, 0, &pt) == 0 && !(pt.flags & UHMM_PTE_ERROR)) {
					uint8_t v0 = *b;	/* brings a private page home */
					if (pt.flags & UHMM_PTE_WRITE)
						*b = v0;
				}
			}
		}
		break;
	}
	default: {	/* uhmm_migrate_ex of a whole region to the devices and back */
		p = in_pick(in, 2) ? P(A_R0) : P(A_R1);
		d = dev_of(in);
		fz_note("uhmm_migrate(R, dev %p) and back", (void *)d);
		fz_rc(uhmm_migrate(h, p, 8 * pg, d, 0), E_MIGRATE);
		fz_rc(uhmm_migrate(h, p, 8 * pg, NULL, 0), E_MIGRATE);
		break;
	}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };

	fz_current(data, size);
	arena_make();
	for (int i = 0; i < FZ_CALLS && in.n; i++)
		one_call(&in);
	fz_note("input cleanup");
	input_cleanup();
	fz_reg_check();
	return 0;
}
