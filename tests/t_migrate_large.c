/* SPDX-License-Identifier: MIT */
/*
 * A 256 MiB anonymous mmap'd range, filled, migrates to a simulated
 * COHERENT device and back; every byte is checked after each move and
 * after a CPU rewrite on the device.  (UHMM_TEST_SCALE below 100, or a
 * sanitizer, shrinks it.)
 */
#define _GNU_SOURCE
#include "util.h"

int main(void)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 256 * UT_MiB, n;
	struct uhmm_stats s0, s1;
	uint8_t *p;
	int id, rc;

	ut_init(180);
	if (ut_scale() < 100)
		len = ut_scaled(256, 32) * UT_MiB;
	if (len > 256 * UT_MiB)
		len = 256 * UT_MiB;
	n = len / ut_page();
	h = ut_open();
	dev = ut_sim(h, "sim", len);
	id = ut_dev_id(dev);
	p = ut_map(len);
	diag("%zu MiB at %p", len >> 20, (void *)p);

	ut_fill64(p, len, 11);
	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	is_int(rc, 0, "migrate %zu MiB to the device", len >> 20);
	is_int(res.moved, n, "res.moved = every page");
	is_int(res.zero_filled, 0, "res.zero_filled = 0 (every page was populated)");
	is_int(res.already, 0, "res.already = 0");
	s1 = ut_stats(h);
	is_int(s1.pages_to_dev - s0.pages_to_dev, n, "stats pages_to_dev grew by the page count");
	ok(s1.bytes_copied - s0.bytes_copied >= len, "stats bytes_copied grew by at least %zu", len);
	ut_check_where(h, p, len, id, "on the device");
	ut_ok64(p, len, 11, "on the device");
	is_int(ut_dev_used(dev), len, "device used = the whole range");

	/* The CPU rewrites it on the device; then it comes back. */
	ut_fill64(p, len, 12);
	ut_ok64(p, len, 12, "rewritten on the device");

	rc = uhmm_migrate_ex(h, p, len, NULL, 0, &res);
	is_int(rc, 0, "migrate back to system memory");
	is_int(res.moved, n, "res.moved = every page");
	s0 = ut_stats(h);
	is_int(s0.pages_to_sys - s1.pages_to_sys, n, "stats pages_to_sys grew by the page count");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "back in system memory");
	ut_ok64(p, len, 12, "back in system memory");
	is_int(ut_dev_used(dev), 0, "device used = 0");

	/* A second round trip with a partial, unaligned range in the middle. */
	{
		uint8_t *q = p + 5 * UT_MiB + 100;
		size_t ql = 7 * UT_MiB + 333;
		rc = uhmm_migrate(h, q, ql, dev, 0);
		is_int(rc, 0, "migrate an unaligned 7 MiB sub-range");
		ut_check_where(h, q, ql, id, "sub-range on the device");
		is_int(ut_where_count(h, p, len, id), ut_npages(q, ql),
		       "only the pages overlapping the sub-range are on the device");
		ut_ok64(p, len, 12, "whole range with a sub-range on the device");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "whole range back");
		ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "whole range back");
		ut_ok64(p, len, 12, "whole range back");
	}

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
