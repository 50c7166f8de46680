/* SPDX-License-Identifier: MIT */
/*
 * Device to device: system -> A -> B -> system (and B -> A, A -> A),
 * with uhmm_where and every byte checked at each step, res.moved and
 * res.already counting the pages, devices' used bytes following.
 */
#define _GNU_SOURCE
#include "util.h"

static void step(struct uhmm *h, uint8_t *p, size_t len, struct uhmm_dev *to, int want_loc,
		 size_t want_moved, size_t want_already, unsigned seed, const char *what)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	char w[96];
	int rc = uhmm_migrate_ex(h, p, len, to, 0, &res);

	is_int(rc, 0, "%s: uhmm_migrate_ex", what);
	if (rc)
		diag("%s", ut_err(rc));
	is_int(res.moved, want_moved, "%s: res.moved", what);
	is_int(res.already, want_already, "%s: res.already", what);
	is_int(res.evicted, 0, "%s: res.evicted", what);
	snprintf(w, sizeof(w), "%s", what);
	ut_check_where(h, p, len, want_loc, w);
	ut_ok64(p, len, seed, w);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *a, *b;
	size_t len = 16 * UT_MiB, n = len / ut_page(), half = len / 2;
	int ida, idb;
	uint8_t *p;

	ut_init(120);
	h = ut_open();
	a = ut_sim(h, "A", 32 * UT_MiB);
	b = ut_sim(h, "B", 32 * UT_MiB);
	ida = ut_dev_id(a);
	idb = ut_dev_id(b);
	ok(ida >= 1 && idb >= 1 && ida != idb, "two devices with distinct ids (%d, %d)", ida, idb);

	p = ut_map(len);
	ut_fill64(p, len, 61);

	step(h, p, len, a, ida, n, 0, 61, "system -> A");
	is_int(ut_dev_used(a), len, "A used = range");
	step(h, p, len, a, ida, 0, n, 61, "A -> A (nothing to do)");
	step(h, p, len, b, idb, n, 0, 61, "A -> B");
	is_int(ut_dev_used(a), 0, "A used = 0 after A -> B");
	is_int(ut_dev_used(b), len, "B used = range");

	ut_fill64(p, len, 62);	/* written on B */
	step(h, p, len, a, ida, n, 0, 62, "B -> A after a CPU rewrite on B");
	is_int(ut_dev_used(b), 0, "B used = 0");
	step(h, p, len, b, idb, n, 0, 62, "A -> B again");
	step(h, p, len, NULL, UHMM_LOC_SYSTEM, n, 0, 62, "B -> system");
	is_int(ut_dev_used(a) + ut_dev_used(b), 0, "both devices empty");

	/* Mixed sources: half on A, half on B, all to A then all to B. */
	{
		struct uhmm_migrate_res res = { .sz = sizeof(res) };
		int rc;

		rc = uhmm_migrate(h, p, half, a, 0);
		is_int(rc, 0, "first half to A");
		rc = uhmm_migrate(h, p + half, half, b, 0);
		is_int(rc, 0, "second half to B");
		ut_check_where(h, p, half, ida, "first half");
		ut_check_where(h, p + half, half, idb, "second half");
		ut_ok64(p, len, 62, "split between A and B");
		rc = uhmm_migrate_ex(h, p, len, a, 0, &res);
		is_int(rc, 0, "all to A");
		is_int(res.moved, n / 2, "res.moved = the half on B");
		is_int(res.already, n / 2, "res.already = the half on A");
		ut_check_where(h, p, len, ida, "all on A");
		ut_ok64(p, len, 62, "all on A");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "all back");
		ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "all back");
		ut_ok64(p, len, 62, "all back");
	}

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
