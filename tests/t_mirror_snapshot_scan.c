/* SPDX-License-Identifier: MIT */
/*
 * uhmm_range_fault snapshots against the kernel's own account of the same
 * pages (/proc/self/pagemap, read here page by page), over a range that
 * mixes what the library answers in runs (PAGEMAP_SCAN) and from its page
 * table: a huge page, 4 KiB pages written, read (the zero page) and never
 * touched, a read-only page, whole and partial 2 MiB blocks on a PRIVATE
 * and on a COHERENT device.  Every system page: VALID exactly when
 * present, host its address, WRITE exactly when the mapping is writable
 * and the kernel says the page is mapped here alone and not
 * write-protected; untouched pages loc NONE.  UHMM_PTE_ORDER: 9 for a
 * PMD-mapped huge page where PAGEMAP_SCAN tells (smaps says so too), 9 for
 * a block bound whole to one device chunk, 0 otherwise; ZERO for the zero
 * page where PAGEMAP_SCAN tells.  Then with a fork child alive (its pages
 * shared copy-on-write): the page is VALID without WRITE, and FAULT_WRITE
 * makes it writable.
 */
#define _GNU_SOURCE
#include "private.h"

#define BLK (2 * UT_MiB)

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

static int snap(struct uhmm_mirror *m, void *p, size_t len, unsigned fl, struct uhmm_pte *pt)
{
	int rc = -EBUSY;

	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(m, p, len, fl, pt);
	return rc;
}

static int pagemap(const void *p, size_t n, uint64_t *pm)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ssize_t got;

	if (fd < 0)
		return -errno;
	got = pread(fd, pm, n * 8, (off_t)(ut_pg_down(p) / ut_page() * 8));
	close(fd);
	return got == (ssize_t)(n * 8) ? 0 : -EIO;
}

/* AnonHugePages of the mapping holding p, in KiB (smaps). */
static long anon_huge_kb(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	unsigned long s, e;
	int in = 0;
	long kb = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &s, &e) == 2 && strchr(line, '-') < strchr(line, ' '))
			in = (uintptr_t)p >= s && (uintptr_t)p < e;
		else if (in && sscanf(line, "AnonHugePages: %ld kB", &kb) == 1)
			break;
	}
	if (f)
		fclose(f);
	return kb;
}

/* System pages of [p, p + n pages) as the kernel says; bad entries. */
static size_t check_sys(const struct uhmm_pte *pt, const uint8_t *p, size_t n, int writable,
			const char *what)
{
	uint64_t *pm = calloc(n, 8);
	size_t bad = 0;

	if (!pm || pagemap(p, n, pm))
		tap_bail("pagemap");
	for (size_t i = 0; i < n; i++) {
		int present = (pm[i] >> 63) & 1, swapped = (pm[i] >> 62) & 1;
		int excl = (pm[i] >> 56) & 1, wp = (pm[i] >> 57) & 1;
		uint32_t want = present ? UHMM_PTE_VALID : 0, fl = pt[i].flags;

		if (present && writable && excl && !wp && !(fl & UHMM_PTE_ZERO))
			want |= UHMM_PTE_WRITE;
		if ((fl & (UHMM_PTE_VALID | UHMM_PTE_WRITE | UHMM_PTE_ERROR)) != want ||
		    pt[i].loc != (present || swapped ? UHMM_LOC_SYSTEM : UHMM_LOC_NONE) ||
		    pt[i].host != (present ? (uintptr_t)(p + i * ut_page()) : 0)) {
			if (!bad++)
				diag("%s: page %zu: flags 0x%x loc %d host 0x%" PRIx64
				     " (pagemap 0x%016" PRIx64 ")", what, i, fl, pt[i].loc,
				     pt[i].host, pm[i]);
		}
	}
	free(pm);
	return bad;
}

static unsigned orders(const struct uhmm_pte *pt, size_t n, unsigned *lo)
{
	unsigned hi = 0;

	*lo = 31;
	for (size_t i = 0; i < n; i++) {
		unsigned o = UHMM_PTE_ORDER(pt[i].flags);

		hi = o > hi ? o : hi;
		*lo = o < *lo ? o : *lo;
	}
	return hi;
}

/* A block of device pages: loc, dev_off page by page, order as bound. */
static void check_dev(struct uhmm *h, struct uhmm_dev *d, const struct uhmm_pte *pt,
		      const uint8_t *p, size_t n, int whole, const char *what)
{
	size_t bad = 0;
	unsigned lo, hi = orders(pt, n, &lo);
	int id = ut_dev_id(d);

	for (size_t i = 0; i < n; i++) {
		int loc = 0;
		uint64_t off = 0;

		uhmm_dev_offset(h, p + i * ut_page(), &loc, &off);
		if (pt[i].loc != id || pt[i].dev_off != off || !(pt[i].flags & UHMM_PTE_VALID))
			bad++;
	}
	is_int(bad, 0, "%s: every page on the device, dev_off right, VALID", what);
	if (whole && pt[0].dev_off % BLK == 0)
		ok(lo == 9 && hi == 9, "%s: a block bound whole to a chunk: order 9 (%u..%u)", what,
		   lo, hi);
	else if (whole)
		diag("%s: the chunk is not 2 MiB aligned in device memory: order %u", what, hi);
	else
		is_int(hi, 0, "%s: half a block: order 0", what);
}

int main(void)
{
	size_t pg = ut_page(), n = 6 * BLK / pg;
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };
	struct uhmm_pte *pt = calloc(n, sizeof(*pt));
	struct uhmm *h;
	struct uhmm_dev *pv, *c;
	struct uhmm_mirror *m;
	uint8_t *p;
	int scan, rc, pipefd[2];
	unsigned lo, hi;
	long huge;
	pid_t kid;

	ut_init(120);
	h = ut_open();
	scan = !!(ut_feats(h) & UHMM_FEAT_PAGEMAP_SCAN);
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	if (uhmm_mirror_open(pv, &ops, NULL, &m))
		tap_bail("uhmm_mirror_open");

	/* block 0: a huge page; 1: 4 KiB pages; 2, 3: on the PRIVATE device
	 * (whole, half); 4, 5: on the COHERENT one (whole, half) */
	p = ut_map_aligned(6 * BLK, BLK);
	madvise(p, BLK, MADV_HUGEPAGE);
	madvise(p + BLK, 5 * BLK, MADV_NOHUGEPAGE);
	memset(p, 1, BLK);
	for (size_t i = 0; i < BLK / pg; i += 3)
		p[BLK + i * pg] = 2;			/* written */
	for (size_t i = 1; i < BLK / pg; i += 3)
		(void)*(volatile uint8_t *)(p + BLK + i * pg);	/* read: zero page */
	memset(p + 2 * BLK, 3, 4 * BLK);
	is_int(uhmm_migrate(h, p + 2 * BLK, BLK + BLK / 2, pv, 0), 0,
	       "blocks on the PRIVATE device");
	if (c)
		is_int(uhmm_migrate(h, p + 4 * BLK, BLK + BLK / 2, c, 0), 0,
		       "blocks on the COHERENT device");
	mprotect(p + BLK + 10 * pg, pg, PROT_READ);

	rc = snap(m, p, 6 * BLK, 0, pt);
	is_int(rc, 0, "a snapshot of 12 MiB");
	is_int(check_sys(pt, p, BLK / pg, 1, "huge page"), 0,
	       "the huge page: as the kernel says (VALID, WRITE, host)");
	huge = anon_huge_kb(p);
	hi = orders(pt, BLK / pg, &lo);
	if (scan && huge >= 2048)
		ok(lo == 9 && hi == 9, "a PMD-mapped huge page: order 9 (%u..%u)", lo, hi);
	else
		ok(hi == 0, "no PAGEMAP_SCAN or no huge page here (AnonHugePages %ld kB): order 0",
		   huge);
	is_int(check_sys(pt + BLK / pg, p + BLK, 10, 1, "4 KiB pages"), 0,
	       "4 KiB pages written, read, untouched: as the kernel says");
	is_int(check_sys(pt + BLK / pg + 10, p + BLK + 10 * pg, 1, 0, "read-only"), 0,
	       "a read-only page: VALID without WRITE");
	is_int(check_sys(pt + BLK / pg + 11, p + BLK + 11 * pg, BLK / pg - 11, 1, "the rest"), 0,
	       "the rest of the 4 KiB pages: as the kernel says");
	hi = orders(pt + BLK / pg, BLK / pg, &lo);
	is_int(hi, 0, "4 KiB pages: order 0");
	{
		const struct uhmm_pte *z = &pt[BLK / pg + 1], *w = &pt[BLK / pg];

		if (scan)
			ok((z->flags & (UHMM_PTE_VALID | UHMM_PTE_ZERO | UHMM_PTE_WRITE)) ==
			   (UHMM_PTE_VALID | UHMM_PTE_ZERO),
			   "a page only read: the zero page (0x%x)", z->flags);
		else
			ok((z->flags & (UHMM_PTE_VALID | UHMM_PTE_WRITE)) == UHMM_PTE_VALID,
			   "a page only read: VALID, not WRITE (0x%x)", z->flags);
		ok(!(w->flags & UHMM_PTE_ZERO), "a page written: not ZERO");
		ok(!(pt[BLK / pg + 2].flags & UHMM_PTE_VALID) &&
		   pt[BLK / pg + 2].loc == UHMM_LOC_NONE,
		   "an untouched page: not VALID, loc NONE");
	}
	check_dev(h, pv, pt + 2 * BLK / pg, p + 2 * BLK, BLK / pg, 1, "PRIVATE, whole block");
	check_dev(h, pv, pt + 3 * BLK / pg, p + 3 * BLK, BLK / pg / 2, 0, "PRIVATE, half a block");
	ok(pt[2 * BLK / pg].host == 0, "PRIVATE: host 0");
	is_int(check_sys(pt + 3 * BLK / pg + BLK / pg / 2, p + 3 * BLK + BLK / 2, BLK / pg / 2, 1,
			 "beside"), 0, "the system half beside them: as the kernel says");
	if (c) {
		check_dev(h, c, pt + 4 * BLK / pg, p + 4 * BLK, BLK / pg, 1,
			  "COHERENT, whole block");
		check_dev(h, c, pt + 5 * BLK / pg, p + 5 * BLK, BLK / pg / 2, 0,
			  "COHERENT, half a block");
		ok(pt[4 * BLK / pg + 1].host == pt[4 * BLK / pg].host + pg,
		   "COHERENT: host steps a page at a time through the view");
	} else {
		skip("COHERENT devices cannot exist here");
	}

	/* a fork child alive: the pages are shared copy-on-write */
	if (pipe(pipefd))
		tap_bail("pipe");
	fflush(stdout);
	kid = fork();
	if (kid == 0) {
		char x;

		close(pipefd[1]);
		_exit(read(pipefd[0], &x, 1) < 0);
	}
	close(pipefd[0]);
	rc = snap(m, p + BLK, BLK, 0, pt);
	is_int(rc, 0, "a snapshot with a fork child alive");
	ok((pt[0].flags & (UHMM_PTE_VALID | UHMM_PTE_WRITE)) == UHMM_PTE_VALID,
	   "a page shared with the child: VALID, not WRITE (0x%x)", pt[0].flags);
	is_int(check_sys(pt, p + BLK, 10, 1, "after fork"), 0, "4 KiB pages: as the kernel says");
	rc = snap(m, p + BLK, pg, UHMM_FAULT_WRITE, pt);
	ok(rc == 0 && (pt[0].flags & UHMM_PTE_WRITE), "FAULT_WRITE makes it writable (%d, 0x%x)",
	   rc, pt[0].flags);
	close(pipefd[1]);
	waitpid(kid, NULL, 0);

	uhmm_mirror_close(m);
	munmap(p, 6 * BLK);
	free(pt);
	uhmm_close(h);
	return tap_done();
}
