/* SPDX-License-Identifier: MIT */
/*
 * Round trips through PRIVATE devices keep the data:
 *  - system <-> PRIVATE ten times in a row, the data rewritten with a new
 *    pattern before each trip (a stale device copy would show), checked
 *    after each return, uhmm_where and res.moved each time;
 *  - PRIVATE -> COHERENT -> PRIVATE (and the CPU writing the pages while
 *    on the COHERENT device), where COHERENT devices exist here;
 *  - PRIVATE A -> PRIVATE B -> A, with a part faulted back in between
 *    (mixed sources), devices' used bytes following.
 */
#define _GNU_SOURCE
#include "private.h"

static void step(struct uhmm *h, void *p, size_t len, struct uhmm_dev *to, int want_loc,
		 size_t want_moved, size_t want_already, const char *what)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	int rc = uhmm_migrate_ex(h, p, len, to, 0, &res);

	is_int(rc, 0, "%s: uhmm_migrate_ex", what);
	if (rc)
		diag("%s", ut_err(rc));
	is_int(res.moved, want_moved, "%s: res.moved", what);
	is_int(res.already, want_already, "%s: res.already", what);
	ut_check_where(h, p, len, want_loc, what);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *a, *b, *c;
	size_t len = 6 * UT_MiB, n, pg = ut_page();
	int ida, idb, idc;
	unsigned rounds = 10;
	uint8_t *p;
	char w[128];

	ut_init(180);
	h = ut_open();
	a = ut_psim(h, "pA", 32 * UT_MiB);
	b = ut_psim(h, "pB", 32 * UT_MiB);
	ida = ut_dev_id(a);
	idb = ut_dev_id(b);
	ok(ida >= 1 && idb >= 1 && ida != idb, "two PRIVATE devices with distinct ids (%d, %d)", ida, idb);
	n = len / pg;
	p = ut_map_aligned(len, 2 * UT_MiB);	/* quarters made of whole fault_around windows */

	/* ---- ten round trips ---- */
	for (unsigned r = 0; r < rounds; r++) {
		ut_fill64(p, len, 100 + r);
		snprintf(w, sizeof(w), "round %u: system -> A", r);
		step(h, p, len, a, ida, n, 0, w);
		is_int(ut_dev_used(a), len, "round %u: A used = range", r);
		snprintf(w, sizeof(w), "round %u: A -> system", r);
		step(h, p, len, NULL, UHMM_LOC_SYSTEM, n, 0, w);
		ut_ok64(p, len, 100 + r, w);
		is_int(ut_dev_used(a), 0, "round %u: A empty", r);
	}

	/* ---- PRIVATE -> COHERENT -> PRIVATE ---- */
	c = ut_csim_try(h, "coh", 32 * UT_MiB);
	if (!c) {
		skip("PRIVATE -> COHERENT -> PRIVATE: COHERENT devices need userfaultfd minor faults "
		     "on shmem, absent or disabled here (UHMM_DISABLE=%s)",
		     getenv("UHMM_DISABLE") ? getenv("UHMM_DISABLE") : "");
	} else {
		idc = ut_dev_id(c);
		ut_fill64(p, len, 120);
		step(h, p, len, a, ida, n, 0, "system -> A (PRIVATE)");
		step(h, p, len, c, idc, n, 0, "A -> C (COHERENT)");
		is_int(ut_dev_used(a), 0, "A empty after A -> C");
		is_int(ut_dev_used(c), len, "C used = range");
		ut_ok64(p, len, 120, "on C (read in place)");
		ut_fill64(p, len / 2, 121);	/* the CPU writes straight into C */
		step(h, p, len, a, ida, n, 0, "C -> A (PRIVATE)");
		is_int(ut_dev_used(c), 0, "C empty after C -> A");
		step(h, p, len, NULL, UHMM_LOC_SYSTEM, n, 0, "A -> system");
		ut_ok64(p, len / 2, 121, "first half (written on C) after C -> A -> system");
		{
			size_t bad = 0;
			const uint64_t *q = (const uint64_t *)(const void *)(p + len / 2);
			for (size_t k = 0; k < len / 2 / 8; k++)
				bad += q[k] != ut_pat64(120, len / 2 / 8 + k);
			is_int(bad, 0, "second half after C -> A -> system");
		}
	}

	/* ---- PRIVATE -> PRIVATE ---- */
	ut_fill64(p, len, 130);
	step(h, p, len, a, ida, n, 0, "system -> A");
	step(h, p, len, b, idb, n, 0, "A -> B");
	is_int(ut_dev_used(a), 0, "A empty after A -> B");
	is_int(ut_dev_used(b), len, "B used = range");
	step(h, p, len, b, idb, 0, n, "B -> B (nothing to do)");
	step(h, p, len, a, ida, n, 0, "B -> A");
	step(h, p, len, NULL, UHMM_LOC_SYSTEM, n, 0, "A -> system");
	ut_ok64(p, len, 130, "after system -> A -> B -> A -> system");

	/* Mixed sources: a quarter faulted back from A, a half on B. */
	ut_fill64(p, len, 131);
	step(h, p, len / 2, a, ida, n / 2, 0, "first half -> A");
	step(h, p + len / 2, len / 2, b, idb, n / 2, 0, "second half -> B");
	ut_ok64(p, len / 4, 131, "the CPU reads the first quarter back from A");
	{
		long sys = ut_where_count(h, p, len / 4, UHMM_LOC_SYSTEM);
		is_int(sys, n / 4, "the first quarter is back in system memory");
	}
	{
		struct uhmm_migrate_res res = { .sz = sizeof(res) };
		int rc = uhmm_migrate_ex(h, p, len, b, 0, &res);
		long on_a = 0;

		is_int(rc, 0, "system + A + B -> B");
		is_int(res.moved + res.already, n, "res.moved + res.already = every page");
		is_int(res.already, n / 2, "res.already = the half on B");
		ut_check_where(h, p, len, idb, "all on B");
		on_a = (long)ut_dev_used(a);
		is_int(on_a, 0, "A empty");
		is_int(ut_dev_used(b), len, "B used = range");
	}
	step(h, p, len, NULL, UHMM_LOC_SYSTEM, n, 0, "B -> system");
	ut_ok64(p, len, 131, "after the mixed migration and back");

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
