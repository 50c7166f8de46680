/* SPDX-License-Identifier: MIT */
/*
 * munmap of memory living on a PRIVATE device gives the device memory
 * back: the device's used bytes (uhmm_dev_info) return to their earlier
 * value, at the first uhmm call after munmap returned.  A whole range; a
 * range partly faulted back to system memory; a part in the middle (used
 * drops by exactly that part, the rest stays on the device, intact); many
 * small ranges; the memory freed can be used by a new range right away
 * (a device exactly as large as one range).  Done for the sim device and
 * for a driver of the test's own.
 */
#define _GNU_SOURCE
#include "private.h"

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *dn)
{
	size_t len = 8 * UT_MiB, pg = ut_page(), used0 = ut_dev_used(dev), mid, mlen;
	int id = ut_dev_id(dev), rc;
	uint8_t *p, *q;

	/* Whole range. */
	p = ut_map(len);
	ut_fill64(p, len, 91);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: 8 MiB to the device", dn);
	is_int(ut_dev_used(dev), used0 + len, "%s: used grew by 8 MiB", dn);
	munmap(p, len);
	is_int(ut_dev_used(dev), used0, "%s: munmap of the whole range: used back to %zu", dn, used0);

	/* Partly faulted back first. */
	p = ut_map(len);
	ut_fill64(p, len, 92);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: 8 MiB to the device again", dn);
	ut_ok64(p, len / 4, 92, "the CPU reads a quarter back");
	ok(ut_dev_used(dev) < used0 + len, "%s: used dropped by what came back", dn);
	munmap(p, len);
	is_int(ut_dev_used(dev), used0, "%s: munmap of a partly faulted range: used back to %zu", dn,
	       used0);

	/* A part in the middle, not aligned to anything but pages. */
	p = ut_map(len);
	ut_fill64(p, len, 93);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: 8 MiB to the device once more", dn);
	mid = 3 * UT_MiB + 5 * pg;
	mlen = 1 * UT_MiB + 3 * pg;
	munmap(p + mid, mlen);
	is_int(ut_dev_used(dev), used0 + len - mlen, "%s: munmap of 1 MiB + 3 pages in the middle: "
	       "used dropped by exactly that", dn);
	ut_check_where(h, p, mid, id, "the part before");
	ut_check_where(h, p + mid + mlen, len - mid - mlen, id, "the part after");
	ut_ok64(p, mid, 93, "the part before, read back");
	{
		size_t bad = 0;
		const uint64_t *w = (const uint64_t *)(const void *)(p + mid + mlen);
		for (size_t k = 0; k < (len - mid - mlen) / 8; k++)
			bad += w[k] != ut_pat64(93, (mid + mlen) / 8 + k);
		is_int(bad, 0, "%s: the part after, read back", dn);
	}
	munmap(p, mid);
	munmap(p + mid + mlen, len - mid - mlen);
	is_int(ut_dev_used(dev), used0, "%s: the rest unmapped: used back to %zu", dn, used0);

	/* Many small ranges, each unmapped while on the device. */
	{
		enum { NR = 64 };
		uint8_t *r[NR];
		for (int i = 0; i < NR; i++) {
			r[i] = ut_map(3 * pg);
			memset(r[i], i + 1, 3 * pg);
			rc = uhmm_migrate(h, r[i], 3 * pg, dev, 0);
			if (rc)
				break;
		}
		is_int(rc, 0, "%s: 64 ranges of 3 pages to the device", dn);
		is_int(ut_dev_used(dev), used0 + NR * 3 * pg, "%s: used grew by 64 x 3 pages", dn);
		for (int i = 0; i < NR; i++)
			munmap(r[i], 3 * pg);
		is_int(ut_dev_used(dev), used0, "%s: all unmapped: used back to %zu", dn, used0);
	}

	/* The freed memory can be used again at once. */
	q = ut_map(len);
	ut_fill64(q, len, 94);
	rc = uhmm_migrate(h, q, len, dev, 0);
	is_int(rc, 0, "%s: a new range onto the freed memory", dn);
	ut_check_where(h, q, len, id, "the new range");
	ut_ok64(q, len, 94, "the new range");
	munmap(q, len);
	is_int(ut_dev_used(dev), used0, "%s: used back to %zu at the end", dn, used0);
}

int main(void)
{
	struct uhmm *h;
	struct tdrv td;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	run(h, ut_psim(h, "psim", 16 * UT_MiB), "sim PRIVATE");
	run(h, tdrv_add(h, &td, "tdrv", 16 * UT_MiB, 1), "test driver");

	/* A device the size of one range, filled, emptied by munmap, filled
	 * again with NOEVICT: the memory really is free. */
	{
		struct uhmm_dev *small = ut_psim(h, "small", 4 * UT_MiB);
		size_t len = 4 * UT_MiB;
		for (int i = 0; i < 4; i++) {
			uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
			int rc;
			ut_fill64(p, len, 95 + (unsigned)i);
			rc = uhmm_migrate(h, p, len, small, UHMM_MIGRATE_NOEVICT);
			is_int(rc, 0, "a 4 MiB device filled with NOEVICT, time %d", i + 1);
			is_int(ut_dev_used(small), len, "time %d: used = 4 MiB", i + 1);
			munmap(p, len);
			is_int(ut_dev_used(small), 0, "time %d: munmap: used 0", i + 1);
		}
	}
	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);
	return tap_done();
}
