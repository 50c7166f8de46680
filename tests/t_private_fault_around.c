/* SPDX-License-Identifier: MIT */
/*
 * fault_around: one CPU touch of a page living on a PRIVATE device brings
 * back the aligned fault_around window around it, and nothing else
 * (uhmm_where):
 *  - opts.fault_around = 64 KiB: a read in the middle of a window, at the
 *    first page of one, at the last byte of the range; a write;
 *  - the window clipped to the pages on that device: pages of the window
 *    on another PRIVATE device stay there, pages in system memory stay
 *    there, and a window that begins in unmapped space (the range starts
 *    mid-window) brings back only the mapped part;
 *  - opts.fault_around = one page: exactly the page touched;
 *  - opts.fault_around = 1 MiB, a window larger than the bounce buffer
 *    (it comes home through the pool instead);
 *  - opts.fault_around = 0: the documented default, 64 KiB.
 * Each touch is made on a freshly migrated range, so that no access
 * pattern looks sequential.  Data checked in every window brought back.
 */
#define _GNU_SOURCE
#include "private.h"

static struct uhmm *h;
static struct uhmm_dev *A, *B;
static int ida, idb;
static size_t pg;

/* Expected locations for a range entirely on A in which the window
 * [wfirst, wfirst + wn) of pages came back. */
static void expect_window(int *want, size_t n, size_t wfirst, size_t wn)
{
	for (size_t i = 0; i < n; i++)
		want[i] = (i >= wfirst && i < wfirst + wn) ? UHMM_LOC_SYSTEM : ida;
}

/* Migrate [p, len) to A, touch byte `at`, check placement and data. */
static void touch_one(uint8_t *p, size_t len, size_t at, int do_write, size_t fa,
		      unsigned seed, const char *what)
{
	size_t n = len / pg, wpages = fa / pg ? fa / pg : 1;
	size_t page = at / pg, wfirst = page / wpages * wpages, wn = wpages;
	int *want = calloc(n, sizeof(int));
	struct uhmm_stats s0, s1;
	char w[160];
	int rc;

	if (!want)
		tap_bail("malloc");
	if (wfirst + wn > n)
		wn = n - wfirst;
	rc = uhmm_migrate(h, p, len, A, 0);
	is_int(rc, 0, "%s: range to A", what);
	s0 = ut_stats(h);
	if (do_write)
		*(volatile uint8_t *)(p + at) = (uint8_t)~ut_pat8(seed, at);
	else
		(void)*(volatile uint8_t *)(p + at);
	s1 = ut_stats(h);
	ok(s1.cpu_faults > s0.cpu_faults, "%s: cpu_faults grew", what);
	expect_window(want, n, wfirst, wn);
	snprintf(w, sizeof(w), "%s: exactly pages %zu..%zu back, the rest on A", what, wfirst,
		 wfirst + wn - 1);
	ut_check_where_map(h, p, len, want, w);
	if (do_write)
		p[at] = ut_pat8(seed, at);	/* restore, for the data check */
	ok(ut_chk8(p + wfirst * pg, wfirst * pg, wn * pg, seed) == SIZE_MAX,
	   "%s: the window's data", what);
	free(want);
}

int main(void)
{
	size_t len = 4 * UT_MiB, n, fa = 64 * UT_KiB, wp;
	uint8_t *p;
	int *want;
	int rc;

	ut_init(120);
	pg = ut_page();
	n = len / pg;
	wp = fa / pg ? fa / pg : 1;
	want = calloc(n, sizeof(int));
	if (!want)
		tap_bail("malloc");

	/* ---- fault_around = 64 KiB ---- */
	h = ut_open_priv(fa, 0, 0);
	A = ut_psim(h, "pA", 32 * UT_MiB);
	B = ut_psim(h, "pB", 32 * UT_MiB);
	ida = ut_dev_id(A);
	idb = ut_dev_id(B);
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill8(p, len, 51);

	touch_one(p, len, 37 * fa + 5 * pg + 123, 0, fa, 51, "64 KiB: read mid-window 37");
	touch_one(p, len, 3 * fa, 0, fa, 51, "64 KiB: read at the first byte of window 3");
	touch_one(p, len, len - 1, 0, fa, 51, "64 KiB: read of the range's last byte");
	touch_one(p, len, 50 * fa + wp / 2 * pg + 9, 1, fa, 51, "64 KiB: write mid-window 50");

	/* Clipped: window 20 has its first quarter in system memory, its
	 * second quarter on B, the rest on A; touch a page on A. */
	if (wp >= 4) {
		size_t w0 = 20 * wp, q = wp / 4;

		rc = uhmm_migrate(h, p, len, A, 0);
		is_int(rc, 0, "clipped: range to A");
		rc = uhmm_migrate(h, p + w0 * pg, q * pg, NULL, 0);
		is_int(rc, 0, "clipped: first quarter of window 20 to system memory");
		rc = uhmm_migrate(h, p + (w0 + q) * pg, q * pg, B, 0);
		is_int(rc, 0, "clipped: second quarter of window 20 to B");
		(void)*(volatile uint8_t *)(p + (w0 + 3 * q) * pg + 1);
		for (size_t i = 0; i < n; i++)
			want[i] = ida;
		for (size_t i = w0; i < w0 + wp; i++)
			want[i] = (i >= w0 + q && i < w0 + 2 * q) ? idb : UHMM_LOC_SYSTEM;
		ut_check_where_map(h, p, len, want,
				   "clipped: A's pages of window 20 back, B's stay on B, the rest on A");
		ok(ut_chk8(p + w0 * pg, w0 * pg, wp * pg, 51) == SIZE_MAX, "clipped: window 20's data");
		/* Touch B's part now: B's pages come back, A is untouched. */
		(void)*(volatile uint8_t *)(p + (w0 + q) * pg);
		for (size_t i = w0; i < w0 + wp; i++)
			want[i] = UHMM_LOC_SYSTEM;
		ut_check_where_map(h, p, len, want, "clipped: a touch on B's part brings B's pages back");
		is_int(ut_dev_used(B), 0, "clipped: B empty again");
	} else {
		skip("clipped window: pages larger than 16 KiB");
	}

	/* A range that starts mid-window, below it an unmapped gap. */
	if (wp >= 4) {
		uint8_t *r = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
		size_t gap = 3, rn = 2 * UT_MiB / pg - gap;
		uint8_t *q = r + gap * pg;
		int *rw = calloc(rn, sizeof(int));

		if (!rw)
			tap_bail("malloc");
		munmap(r, gap * pg);
		ut_fill8(q, rn * pg, 52);
		rc = uhmm_migrate(h, q, rn * pg, A, 0);
		is_int(rc, 0, "mid-window start: range to A");
		(void)*(volatile uint8_t *)(q + 2 * pg);	/* window 0 of r: pages gap..wp-1 */
		for (size_t i = 0; i < rn; i++)
			rw[i] = i + gap < wp ? UHMM_LOC_SYSTEM : ida;
		ut_check_where_map(h, q, rn * pg, rw,
				   "mid-window start: the mapped part of the first window back, nothing else");
		ok(ut_chk8(q, 0, (wp - gap) * pg, 52) == SIZE_MAX, "mid-window start: its data");
		/* And the last window of a range that ends mid-window. */
		rc = uhmm_migrate(h, q, rn * pg - 5 * pg, NULL, 0);
		is_int(rc, 0, "mid-window end: all but the last 5 pages back to system memory");
		munmap(q + rn * pg - 2 * pg, 2 * pg);	/* a gap after the range */
		rn -= 2;
		(void)*(volatile uint8_t *)(q + rn * pg - 1);
		is_int(ut_where_count(h, q, rn * pg, UHMM_LOC_SYSTEM), rn,
		       "mid-window end: the last 3 pages back, the gap after them ignored");
		ok(ut_chk8(q, 0, rn * pg, 52) == SIZE_MAX, "mid-window ranges: every byte");
		munmap(q, rn * pg);
		free(rw);
	} else {
		skip("mid-window ranges: pages larger than 16 KiB");
	}
	uhmm_close(h);
	ut_ok8(p, len, 51, "after uhmm_close");
	munmap(p, len);

	/* ---- fault_around = one page ---- */
	h = ut_open_priv(pg, 0, 0);
	A = ut_psim(h, "pA", 16 * UT_MiB);
	ida = ut_dev_id(A);
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill8(p, len, 53);
	touch_one(p, len, 300 * pg + 17, 0, pg, 53, "one page: read");
	touch_one(p, len, 700 * pg + 4000 % pg, 1, pg, 53, "one page: write");
	uhmm_close(h);
	munmap(p, len);

	/* ---- fault_around = 1 MiB: larger than a thread's bounce buffer,
	 * the window lands in the pool ---- */
	h = ut_open_priv(UT_MiB, 0, 0);
	A = ut_psim(h, "pA", 16 * UT_MiB);
	ida = ut_dev_id(A);
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill8(p, len, 55);
	touch_one(p, len, 2 * UT_MiB + 77 * pg + 3, 0, UT_MiB, 55, "1 MiB: read");
	touch_one(p, len, UT_MiB - 1, 1, UT_MiB, 55, "1 MiB: write");
	uhmm_close(h);
	munmap(p, len);

	/* ---- fault_around = 0: the default, 64 KiB ---- */
	h = ut_open_priv(0, 0, 0);
	A = ut_psim(h, "pA", 16 * UT_MiB);
	ida = ut_dev_id(A);
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill8(p, len, 54);
	touch_one(p, len, 11 * (64 * UT_KiB) + 3 * pg + 1, 0, 64 * UT_KiB, 54,
		  "fault_around 0 = 64 KiB: read");
	uhmm_close(h);
	munmap(p, len);

	free(want);
	return tap_done();
}
