/* SPDX-License-Identifier: MIT */
/*
 * uhmm_alloc / uhmm_free / uhmm_unmanage.  Memory from uhmm_alloc is
 * aligned (2 MiB for 2 MiB and more), reads zeros, lands on its device at
 * first touch with no copy, works on system memory with dev NULL, frees
 * with uhmm_free.  uhmm_unmanage brings a migrated range back and leaves
 * ordinary memory that another context may then manage.  Bad arguments:
 * NULL with errno EINVAL.
 */
#define _GNU_SOURCE
#include "util.h"

int main(void)
{
	struct uhmm *h, *h2;
	struct uhmm_dev *dev, *other;
	struct uhmm_stats s0, s1;
	size_t len = 4 * UT_MiB;
	uint8_t *p;
	int id, rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 64 * UT_MiB);
	id = ut_dev_id(dev);

	/* On the device. */
	p = uhmm_alloc(h, len, dev, 0);
	ok(p != NULL, "uhmm_alloc(4 MiB, dev)");
	if (!p)
		tap_bail("uhmm_alloc: %s", strerror(errno));
	ok(((uintptr_t)p & (2 * UT_MiB - 1)) == 0, "aligned to 2 MiB (%p)", (void *)p);
	{
		long on = ut_where_count(h, p, len, id), none = ut_where_count(h, p, len, UHMM_LOC_NONE);
		is_int(on + none, len / ut_page(), "before any touch: on the device or not populated");
	}
	ut_okzero(p, len, "reads zeros");
	s0 = ut_stats(h);
	ut_fill64(p, len, 171);
	s1 = ut_stats(h);
	ut_check_where(h, p, len, id, "after first touch");
	ut_ok64(p, len, 171, "the writes");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "the first writes copied nothing");
	is_int(s1.pages_to_sys - s0.pages_to_sys, 0, "and moved nothing to system memory");
	ok(ut_dev_used(dev) >= len, "device used >= 4 MiB (%zu)", ut_dev_used(dev));
	/* It migrates like any managed memory. */
	is_int(uhmm_migrate(h, p, len, NULL, 0), 0, "uhmm_alloc'd memory migrates to system memory");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "uhmm_alloc'd memory after migration");
	ut_ok64(p, len, 171, "uhmm_alloc'd memory after migration");
	is_int(uhmm_migrate(h, p, len, dev, 0), 0, "and back to the device");
	rc = uhmm_free(h, p);
	is_int(rc, 0, "uhmm_free");
	is_int(ut_dev_used(dev), 0, "device used 0 after uhmm_free");

	/* System memory. */
	p = uhmm_alloc(h, 3 * UT_MiB + 5, NULL, 0);
	ok(p != NULL, "uhmm_alloc(3 MiB + 5, NULL)");
	if (!p)
		tap_bail("uhmm_alloc: %s", strerror(errno));
	ok(((uintptr_t)p & (2 * UT_MiB - 1)) == 0, "aligned to 2 MiB");
	ut_okzero(p, 3 * UT_MiB + 5, "reads zeros");
	ut_fill8(p, 3 * UT_MiB + 5, 172);
	ut_check_where(h, p, 3 * UT_MiB + 5, UHMM_LOC_SYSTEM, "system uhmm_alloc after touch");
	ut_ok8(p, 3 * UT_MiB + 5, 172, "system uhmm_alloc");
	is_int(uhmm_migrate(h, p, 3 * UT_MiB + 5, dev, 0), 0, "system uhmm_alloc memory to the device");
	ut_ok8(p, 3 * UT_MiB + 5, 172, "on the device");
	is_int(uhmm_free(h, p), 0, "uhmm_free");
	is_int(ut_dev_used(dev), 0, "device used 0 after uhmm_free");

	/* Small. */
	p = uhmm_alloc(h, 100, dev, 0);
	ok(p != NULL && ((uintptr_t)p % ut_page()) == 0, "uhmm_alloc(100, dev): page aligned");
	if (p) {
		memset(p, 0x42, 100);
		ut_check_where(h, p, 100, id, "small allocation after touch");
		is_int(uhmm_free(h, p), 0, "uhmm_free of it");
	}

	/* Several at once, freed out of order. */
	{
		uint8_t *q[6];
		int bad = 0;
		for (int i = 0; i < 6; i++) {
			q[i] = uhmm_alloc(h, (size_t)(i + 1) * UT_MiB, (i & 1) ? dev : NULL, 0);
			if (!q[i]) {
				bad++;
				continue;
			}
			ut_fill64(q[i], (size_t)(i + 1) * UT_MiB, 180 + (unsigned)i);
		}
		for (int i = 0; i < 6; i++)
			if (q[i] && ut_check64(q[i], (size_t)(i + 1) * UT_MiB, 180 + (unsigned)i) != SIZE_MAX)
				bad++;
		is_int(bad, 0, "six allocations alive at once, each with its own data");
		for (int i = 0; i < 6; i += 2)
			if (q[i])
				bad += uhmm_free(h, q[i]) != 0;
		for (int i = 1; i < 6; i += 2)
			if (q[i])
				bad += uhmm_free(h, q[i]) != 0;
		is_int(bad, 0, "all freed");
		is_int(ut_dev_used(dev), 0, "device used 0");
	}

	/* Bad arguments. */
	errno = 0;
	ok(uhmm_alloc(h, len, dev, 1) == NULL && errno == EINVAL, "uhmm_alloc flags 1: NULL, EINVAL");
	errno = 0;
	ok(uhmm_alloc(h, len, dev, 0x80000000u) == NULL && errno == EINVAL,
	   "uhmm_alloc flags 0x80000000: NULL, EINVAL");
	errno = 0;
	ok(uhmm_alloc(h, 0, dev, 0) == NULL && errno == EINVAL, "uhmm_alloc size 0: NULL, EINVAL");
	/* More than the library could ever keep entries for (a page of its
	 * own per 2 MiB): refused at once, before it takes them from the
	 * rest of the context, which goes on working */
	errno = 0;
	p = uhmm_alloc(h, (size_t)2 << 40, NULL, 0);
	ok(p == NULL, "uhmm_alloc(2 TiB): NULL");
	is_int(-errno, -ENOMEM, "uhmm_alloc(2 TiB): errno");
	/* a failure after the block was managed: it goes, and all it held */
	errno = 0;
	p = uhmm_alloc(h, 128 * UT_MiB, dev, 0);
	ok(p == NULL, "uhmm_alloc on a device of twice its memory: NULL");
	is_int(-errno, -ENOMEM, "uhmm_alloc on a device of twice its memory: errno");
	is_int(ut_dev_used(dev), 0, "and the device holds nothing of it");
	p = uhmm_alloc(h, len, dev, 0);
	ok(p != NULL, "the next uhmm_alloc works");
	if (p) {
		ut_fill64(p, len, 175);
		ut_ok64(p, len, 175, "its memory");
		is_int(uhmm_free(h, p), 0, "uhmm_free of it");
	}
	h2 = ut_open();
	other = ut_sim(h2, "other", 16 * UT_MiB);
	errno = 0;
	ok(uhmm_alloc(h, len, other, 0) == NULL && errno == EINVAL,
	   "uhmm_alloc on another context's device: NULL, EINVAL");
	{
		uint8_t *q = ut_map(ut_page());
		is_int(uhmm_free(h, q), -EINVAL, "uhmm_free of memory not from uhmm_alloc: -EINVAL");
		munmap(q, ut_page());
	}

	/* uhmm_unmanage. */
	{
		size_t l = 8 * UT_MiB + 3 * ut_page();
		uint8_t *q = ut_map(l);
		struct ut_maps_acc m;

		ut_fill64(q, l, 173);
		is_int(uhmm_migrate(h, q, l, dev, 0), 0, "a range to the device");
		rc = uhmm_unmanage(h, q, l);
		is_int(rc, 0, "uhmm_unmanage of it");
		ut_check_where(h, q, l, UHMM_LOC_SYSTEM, "after uhmm_unmanage");
		ut_ok64(q, l, 173, "after uhmm_unmanage");
		is_int(ut_dev_used(dev), 0, "device used 0");
		m = ut_maps_summary(q, l);
		ok(m.with_path == 0, "ordinary anonymous mappings again (%ld lines)", m.lines);
		ut_fill64(q, l, 174);
		ut_ok64(q, l, 174, "writable as ordinary memory");
		/* No longer ours: another context can manage it. */
		rc = uhmm_migrate(h2, q, l, other, 0);
		is_int(rc, 0, "another context migrates the unmanaged range");
		ut_ok64(q, l, 174, "on the other context's device");
		is_int(uhmm_migrate(h2, q, l, NULL, 0), 0, "and back");
		/* An unaligned part only. */
		is_int(uhmm_unmanage(h2, q, l), 0, "the other context unmanages it");
		is_int(uhmm_migrate(h, q + 100, 2 * UT_MiB, dev, 0), 0, "an unaligned part to our device");
		is_int(uhmm_unmanage(h, q + 100, 2 * UT_MiB), 0, "uhmm_unmanage of that part");
		ut_check_where(h, q, l, UHMM_LOC_SYSTEM, "whole range after the partial unmanage");
		ut_ok64(q, l, 174, "whole range");
		munmap(q, l);
	}
	uhmm_close(h2);
	uhmm_close(h);
	return tap_done();
}
