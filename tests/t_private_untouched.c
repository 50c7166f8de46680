/* SPDX-License-Identifier: MIT */
/*
 * Pages never populated, migrated to a PRIVATE device, get zeroed device
 * pages without a copy and without populating system memory: res.moved =
 * res.zero_filled = pages, stats pages_zero_filled grows by that many and
 * bytes_copied not at all, the page tables stay empty (pagemap), uhmm_where
 * gives the device; read back by the CPU they are zeros, even when the
 * device memory they got held other data before (device pages of a range
 * unmapped earlier on the sim device; the test driver's memory starts as
 * 0xa5 garbage, with and without a zero op).  A half-populated range
 * copies only its populated half.
 */
#define _GNU_SOURCE
#include "private.h"

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *dn, int check_copied)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	size_t len = 16 * UT_MiB, pg = ut_page(), n = len / pg;
	int id = ut_dev_id(dev), rc;
	uint8_t *p;
	long pres;
	char w[160];

	/* Leave old data in the device's memory: a range migrated there and
	 * unmapped while it lives there. */
	p = ut_map(len);
	ut_fill64(p, len, 61);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: a pattern range to the device", dn);
	munmap(p, len);
	is_int(ut_dev_used(dev), 0, "%s: unmapped while on the device: device used 0", dn);

	p = ut_map(len);
	madvise(p, len, MADV_NOHUGEPAGE);	/* no THP populating neighbours below */
	snprintf(w, sizeof(w), "%s: untouched, before", dn);
	ut_check_where(h, p, len, UHMM_LOC_NONE, w);
	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "%s: the untouched 16 MiB to the device", dn);
	is_int(res.moved, n, "%s: res.moved = every page", dn);
	is_int(res.zero_filled, n, "%s: res.zero_filled = every page", dn);
	is_int(s1.pages_zero_filled - s0.pages_zero_filled, n, "%s: stats pages_zero_filled grew by %zu",
	       dn, n);
	if (check_copied)
		is_int(s1.bytes_copied - s0.bytes_copied, 0, "%s: stats bytes_copied unchanged", dn);
	snprintf(w, sizeof(w), "%s: after migration", dn);
	ut_check_where(h, p, len, id, w);
	pres = ut_present(p, len);
	if (pres >= 0)
		is_int(pres, 0, "%s: no page populated in the page tables (pagemap)", dn);
	is_int(ut_dev_used(dev), len, "%s: device used = the range", dn);

	snprintf(w, sizeof(w), "%s: read back by the CPU", dn);
	ut_okzero(p, len, w);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, w);
	is_int(ut_dev_used(dev), 0, "%s: device empty after the reads", dn);

	/* Writable: a round trip with data. */
	ut_fill64(p, len, 62);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: written, to the device", dn);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "%s: and back", dn);
	snprintf(w, sizeof(w), "%s: written after the zero reads, round trip", dn);
	ut_ok64(p, len, 62, w);
	munmap(p, len);

	/* Half populated (every other page): only that half is copied. */
	p = ut_map(len);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < n; i += 2)
		p[i * pg + 5] = (uint8_t)(i | 1);
	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "%s: half-populated range to the device", dn);
	is_int(res.moved, n, "%s: half-populated: res.moved = every page", dn);
	is_int(res.zero_filled, n / 2, "%s: half-populated: res.zero_filled = the untouched half", dn);
	is_int(s1.pages_zero_filled - s0.pages_zero_filled, n / 2,
	       "%s: half-populated: stats pages_zero_filled grew by the untouched half", dn);
	if (check_copied)
		is_int(s1.bytes_copied - s0.bytes_copied, n / 2 * pg,
		       "%s: half-populated: bytes_copied grew by the populated half", dn);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "%s: half-populated: back", dn);
	{
		size_t bad = 0, first = SIZE_MAX;
		for (size_t i = 0; i < len; i++) {
			size_t pgi = i / pg;
			uint8_t want = (pgi % 2 == 0 && i % pg == 5) ? (uint8_t)(pgi | 1) : 0;
			if (p[i] != want && !bad++)
				first = i;
		}
		is_int(bad, 0, "%s: half-populated: every byte right (zeros where untouched)", dn);
		if (bad)
			diag("first bad byte at %zu (page %zu): 0x%02x", first, first / pg, p[first]);
	}
	munmap(p, len);
}

int main(void)
{
	struct uhmm *h;
	struct tdrv tz, tn;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	run(h, ut_psim(h, "psim", 32 * UT_MiB), "sim PRIVATE", 1);
	run(h, tdrv_add(h, &tz, "tdrv-zero", 32 * UT_MiB, 1), "test driver with a zero op", 1);
	/* Without a zero op the library may zero with copy_to_dev: do not
	 * look at bytes_copied there. */
	run(h, tdrv_add(h, &tn, "tdrv-nozero", 32 * UT_MiB, 0), "test driver without a zero op", 0);
	uhmm_close(h);
	tdrv_check_contract(&tz, "test driver with a zero op", 1);
	tdrv_check_contract(&tn, "test driver without a zero op", 1);
	tdrv_free(&tz);
	tdrv_free(&tn);
	return tap_done();
}
