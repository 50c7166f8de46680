/* SPDX-License-Identifier: MIT */
/*
 * mremap of memory living on a PRIVATE device: the data follows the
 * mapping.  Moved (MREMAP_MAYMOVE | MREMAP_FIXED) with every page on the
 * device: the device still holds them (used unchanged, uhmm_where gives the
 * device at the new address), the CPU reads every byte right at the new
 * address and the old address is unmapped (uhmm_where -EFAULT).  Shrunk
 * in place: the device pages past the new end are freed, the rest is
 * intact.  Grown (moved by the kernel): the new tail reads as zeros, the
 * old part is intact.
 */
#define _GNU_SOURCE
#include "private.h"

/* A free spot of len bytes, 2 MiB aligned (mapped PROT_NONE, to be
 * replaced with MREMAP_FIXED). */
static uint8_t *spot(size_t len)
{
	uint8_t *s = ut_map_aligned(len, 2 * UT_MiB);

	mprotect(s, len, PROT_NONE);
	return s;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 4 * UT_MiB, pg;
	uint8_t *p, *q, *r;
	int id, rc, loc[4];

	ut_init(120);
	pg = ut_page();
	h = ut_open();
	dev = ut_psim(h, "psim", 64 * UT_MiB);
	id = ut_dev_id(dev);

	/* ---- moved ---- */
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill64(p, len, 181);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "4 MiB to the device");
	q = spot(len);
	r = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q);
	ok(r == q, "mremap(MAYMOVE | FIXED) to another 2 MiB-aligned address");
	if (r != q)
		tap_bail("mremap: %s", strerror(errno));
	is_int(ut_dev_used(dev), len, "the device still holds the 4 MiB");
	ut_check_where(h, q, len, id, "at the new address");
	rc = uhmm_where(h, p, pg, loc);
	is_int(rc, -EFAULT, "uhmm_where at the old address: -EFAULT (unmapped)");
	ut_ok64(q, len, 181, "read at the new address");
	ut_check_where(h, q, len, UHMM_LOC_SYSTEM, "read at the new address");
	is_int(ut_dev_used(dev), 0, "device empty after the reads");

	/* Moved to an address that is not 2 MiB aligned. */
	rc = uhmm_migrate(h, q, len, dev, 0);
	is_int(rc, 0, "to the device again");
	p = spot(len + 2 * UT_MiB) + 5 * pg;
	r = mremap(q, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, p);
	ok(r == p, "mremap to an address 5 pages past a 2 MiB boundary");
	if (r != p)
		tap_bail("mremap: %s", strerror(errno));
	is_int(ut_dev_used(dev), len, "the device still holds the 4 MiB");
	ut_ok64(p, len, 181, "read at the unaligned address");

	/* ---- shrunk ---- */
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "to the device for shrinking");
	r = mremap(p, len, len / 2, 0);
	ok(r == p, "mremap shrinking it in place to 2 MiB");
	is_int(ut_dev_used(dev), len / 2, "the device pages past the new end are freed");
	ut_ok64(p, len / 2, 181, "the part kept");

	/* ---- grown ---- */
	rc = uhmm_migrate(h, p, len / 2, dev, 0);
	is_int(rc, 0, "to the device for growing");
	q = mremap(p, len / 2, 2 * len, MREMAP_MAYMOVE);
	ok(q != MAP_FAILED, "mremap(MAYMOVE) from 2 MiB to 8 MiB");
	if (q == MAP_FAILED)
		tap_bail("mremap: %s", strerror(errno));
	is_int(ut_dev_used(dev), len / 2, "the device still holds the 2 MiB");
	ut_okzero(q + len / 2, 2 * len - len / 2, "the new tail reads as zeros");
	ut_ok64(q, len / 2, 181, "the old part");
	ut_fill64(q, 2 * len, 182);
	rc = uhmm_migrate(h, q, 2 * len, dev, 0);
	is_int(rc, 0, "the grown range, written, to the device");
	is_int(ut_dev_used(dev), 2 * len, "device used = 8 MiB");
	ut_ok64(q, 2 * len, 182, "the grown range read back");
	munmap(q, 2 * len);
	is_int(ut_dev_used(dev), 0, "device empty at the end");
	uhmm_close(h);
	return tap_done();
}
