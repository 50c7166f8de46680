/* SPDX-License-Identifier: MIT */
/*
 * UHMM_MIGRATE_DISCARD: contents need not survive, so nothing is copied
 * (stats bytes_copied unchanged) and the pages are on the destination;
 * each page reads as zeros or as its old data, and is fully usable.
 */
#define _GNU_SOURCE
#include "util.h"

static size_t pages_neither(const uint8_t *p, size_t len, unsigned seed)
{
	size_t pg = ut_page(), bad = 0;

	for (size_t i = 0; i < len / pg; i++) {
		const uint64_t *w = (const uint64_t *)(const void *)(p + i * pg);
		int zero = 1, old = 1;
		for (size_t k = 0; k < pg / 8; k++) {
			if (w[k])
				zero = 0;
			if (w[k] != ut_pat64(seed, i * pg / 8 + k))
				old = 0;
		}
		bad += !zero && !old;
	}
	return bad;
}

/* Device memory another range used just before (freed, not yet scrubbed)
 * must not show through a DISCARD migration: each page reads zeros or its
 * own old data, never the other range's. */
static void reused(struct uhmm *h, enum uhmm_mem kind_, const char *kind)
{
	size_t len = 64 * ut_page();
	uint8_t *a = ut_map(len), *b = ut_map(len);
	struct uhmm_dev *dev = NULL;
	int rc;

	/* a device just big enough: B gets the pages A had */
	rc = uhmm_dev_add_sim(h, kind, kind_, len, &dev);
	if (rc) {
		skip("%s: uhmm_dev_add_sim: %s", kind, ut_err(rc));
		return;
	}
	ut_fill64(a, len, 201);
	ut_fill64(b, len, 202);
	rc = uhmm_migrate(h, a, len, dev, 0);
	if (!rc)
		rc = uhmm_migrate(h, a, len, NULL, 0);
	if (!rc)
		rc = uhmm_migrate(h, b, len, dev, UHMM_MIGRATE_DISCARD);
	is_int(rc, 0, "%s: A to the device and back, then B there with DISCARD", kind);
	is_int(pages_neither(b, len, 202), 0,
	       "%s: every page of B reads zeros or its own old data (never A's)", kind);
	munmap(a, len);
	munmap(b, len);
	uhmm_dev_remove(dev);
}

int main(void)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 8 * UT_MiB, n = len / ut_page();
	uint8_t *p;
	int id, rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 32 * UT_MiB);
	id = ut_dev_id(dev);
	p = ut_map(len);
	ut_fill64(p, len, 191);

	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, dev, UHMM_MIGRATE_DISCARD, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "DISCARD to the device");
	is_int(res.moved, n, "res.moved = every page");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "stats bytes_copied unchanged");
	ut_check_where(h, p, len, id, "after DISCARD to the device");
	is_int(pages_neither(p, len, 191), 0, "every page reads zeros or its old data");
	ut_fill64(p, len, 192);
	ut_ok64(p, len, 192, "written on the device");

	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, NULL, UHMM_MIGRATE_DISCARD, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "DISCARD back to system memory");
	is_int(res.moved, n, "res.moved = every page");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "stats bytes_copied unchanged");
	/* Discarded pages may be left unpopulated (they read as zeros). */
	{
		long sys = ut_where_count(h, p, len, UHMM_LOC_SYSTEM);
		long none = ut_where_count(h, p, len, UHMM_LOC_NONE);
		is_int(sys + none, n, "after DISCARD to system memory: every page SYSTEM or NONE");
		diag("%ld SYSTEM, %ld NONE", sys, none);
	}
	is_int(pages_neither(p, len, 192), 0, "every page reads zeros or its old data");
	ut_fill64(p, len, 193);
	ut_ok64(p, len, 193, "written in system memory");

	/* DISCARD with other flags, and a normal migration afterwards copies. */
	rc = uhmm_migrate(h, p, len, dev, UHMM_MIGRATE_DISCARD | UHMM_MIGRATE_NOEVICT);
	is_int(rc, 0, "DISCARD | NOEVICT to the device");
	ut_fill64(p, len, 194);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "a normal migration back");
	ut_ok64(p, len, 194, "the data written on the device came back");

	munmap(p, len);
	reused(h, UHMM_MEM_COHERENT, "COHERENT");
	reused(h, UHMM_MEM_PRIVATE, "PRIVATE");
	uhmm_close(h);
	return tap_done();
}
