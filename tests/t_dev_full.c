/* SPDX-License-Identifier: MIT */
/*
 * A full device.  8 MiB device; X (6 MiB) on it; Y (6 MiB) with
 * UHMM_MIGRATE_NOEVICT -> -ENOMEM and the pages of Y on the device are
 * exactly its first res.moved pages, X untouched; Y without NOEVICT ->
 * 0, pages of X evicted to system memory (res.evicted, stats evictions);
 * a request larger than the whole device -> -ENOMEM with a prefix moved.
 * Data intact everywhere; uhmm_dev_info used/reserved consistent.
 */
#define _GNU_SOURCE
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

/* One assertion: the pages of [p, len) on the device are exactly the
 * first `moved` ones. */
static void check_prefix(const uint8_t *p, size_t len, size_t moved, const char *what)
{
	int rc;
	int *loc = ut_where(h, p, len, &rc);
	size_t n = len / ut_page(), bad = 0, first = 0;

	if (!loc) {
		ok(0, "%s: uhmm_where", what);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		int on = loc[i] == id;
		if (on != (i < moved) && !bad++)
			first = i;
	}
	if (!ok(bad == 0, "%s: the pages on the device are exactly the first %zu", what, moved))
		diag("%zu pages disagree; first: page %zu at %d", bad, first, loc[first]);
	free(loc);
}

static void check_info(size_t pages_on_dev, const char *what)
{
	struct uhmm_dev_info in = ut_info(dev);

	ok(in.used <= in.reserved && in.reserved <= in.size,
	   "%s: used %zu <= reserved %zu <= size %zu", what, in.used, in.reserved, in.size);
	is_int(in.used, pages_on_dev * ut_page(), "%s: used = pages on the device x page size", what);
}

static size_t on_dev(const void *p, size_t len)
{
	long c = ut_where_count(h, p, len, id);
	return c < 0 ? 0 : (size_t)c;
}

int main(void)
{
	struct uhmm_migrate_res res;
	struct uhmm_stats s0, s1;
	size_t dsize = 8 * UT_MiB, xl = 6 * UT_MiB, yl = 6 * UT_MiB, zl = 10 * UT_MiB;
	size_t nx = xl / ut_page(), ny = yl / ut_page(), nz = zl / ut_page();
	size_t ymoved, xsys;
	uint8_t *x, *y, *z;
	int rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "small", dsize);
	id = ut_dev_id(dev);
	x = ut_map_aligned(xl, 2 * UT_MiB);
	y = ut_map_aligned(yl, 2 * UT_MiB);
	z = ut_map_aligned(zl, 2 * UT_MiB);
	ut_fill64(x, xl, 71);
	ut_fill64(y, yl, 72);
	ut_fill64(z, zl, 73);
	check_info(0, "empty");

	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, x, xl, dev, 0, &res);
	is_int(rc, 0, "X (6 MiB) to the 8 MiB device");
	is_int(res.moved, nx, "X: res.moved");
	ut_check_where(h, x, xl, id, "X");
	check_info(nx, "X on the device");

	/* Y with NOEVICT: does not fit. */
	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, y, yl, dev, UHMM_MIGRATE_NOEVICT, &res);
	is_int(rc, -ENOMEM, "Y (6 MiB) with NOEVICT: -ENOMEM");
	ymoved = res.moved;
	diag("NOEVICT moved a prefix of %zu pages of Y", ymoved);
	ok(ymoved < ny, "res.moved %zu < the %zu pages of Y", ymoved, ny);
	ok(ymoved <= (dsize - xl) / ut_page(), "res.moved fits the free space");
	is_int(res.evicted, 0, "NOEVICT: res.evicted 0");
	check_prefix(y, yl, ymoved, "Y after NOEVICT");
	ut_check_where(h, x, xl, id, "X still on the device");
	check_info(nx + ymoved, "after NOEVICT");
	ut_ok64(x, xl, 71, "X");
	ut_ok64(y, yl, 72, "Y");

	/* Y again, evicting. */
	s0 = ut_stats(h);
	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, y, yl, dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "Y without NOEVICT: 0");
	is_int(res.moved + res.already, ny, "Y: moved + already = its pages");
	is_int(res.already, ymoved, "Y: res.already = the prefix moved before");
	ok(res.evicted > 0, "res.evicted %zu > 0", res.evicted);
	is_int(s1.evictions - s0.evictions, res.evicted, "stats evictions grew by res.evicted");
	ut_check_where(h, y, yl, id, "Y on the device");
	xsys = (size_t)ut_where_count(h, x, xl, UHMM_LOC_SYSTEM);
	is_int(xsys, res.evicted, "the pages of X in system memory are the evicted ones");
	is_int(on_dev(x, xl) + xsys, nx, "every page of X is on the device or in system memory");
	check_info(on_dev(x, xl) + ny, "after eviction");
	ut_ok64(x, xl, 71, "X after eviction");
	ut_ok64(y, yl, 72, "Y after eviction");

	/* Z alone exceeds the device. */
	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, z, zl, dev, 0, &res);
	is_int(rc, -ENOMEM, "Z (10 MiB > device) : -ENOMEM");
	diag("Z: moved %zu, evicted %zu", res.moved, res.evicted);
	ok(res.moved <= dsize / ut_page(), "Z: res.moved %zu fits the device", res.moved);
	check_prefix(z, zl, res.moved, "Z");
	check_info(on_dev(x, xl) + on_dev(y, yl) + on_dev(z, zl), "after Z");
	ut_ok64(x, xl, 71, "X after Z");
	ut_ok64(y, yl, 72, "Y after Z");
	ut_ok64(z, zl, 73, "Z after Z");

	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, z, zl, dev, UHMM_MIGRATE_NOEVICT, &res);
	is_int(rc, -ENOMEM, "Z with NOEVICT: -ENOMEM");
	is_int(res.evicted, 0, "Z with NOEVICT: nothing evicted");
	{
		size_t zon = on_dev(z, zl);
		check_prefix(z, zl, zon, "Z after NOEVICT (still a prefix)");
		check_info(on_dev(x, xl) + on_dev(y, yl) + zon, "after Z with NOEVICT");
	}
	ut_ok64(z, zl, 73, "Z");

	/* A CPU rewrite of everything wherever it lives, then all back. */
	ut_fill64(x, xl, 74);
	ut_fill64(y, yl, 75);
	ut_fill64(z, zl, 76);
	is_int(uhmm_migrate(h, x, xl, NULL, 0), 0, "X back");
	is_int(uhmm_migrate(h, y, yl, NULL, 0), 0, "Y back");
	is_int(uhmm_migrate(h, z, zl, NULL, 0), 0, "Z back");
	check_info(0, "all back");
	ut_check_where(h, x, xl, UHMM_LOC_SYSTEM, "X");
	ut_check_where(h, y, yl, UHMM_LOC_SYSTEM, "Y");
	ut_check_where(h, z, zl, UHMM_LOC_SYSTEM, "Z");
	ut_ok64(x, xl, 74, "X at the end");
	ut_ok64(y, yl, 75, "Y at the end");
	ut_ok64(z, zl, 76, "Z at the end");
	(void)nz;

	/* A device smaller than the range, exactly full: 8 MiB range. */
	{
		uint8_t *w = ut_map_aligned(dsize, 2 * UT_MiB);
		ut_fill64(w, dsize, 77);
		memset(&res, 0, sizeof(res));
		res.sz = sizeof(res);
		rc = uhmm_migrate_ex(h, w, dsize, dev, 0, &res);
		is_int(rc, 0, "a range exactly the device's size fits");
		is_int(res.moved, dsize / ut_page(), "every page moved");
		check_info(dsize / ut_page(), "device exactly full");
		ut_ok64(w, dsize, 77, "exact fit");
		is_int(uhmm_migrate(h, w, dsize, NULL, 0), 0, "and back");
		munmap(w, dsize);
	}

	munmap(x, xl);
	munmap(y, yl);
	munmap(z, zl);
	uhmm_close(h);
	return tap_done();
}
