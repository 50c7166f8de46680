/* SPDX-License-Identifier: MIT */
/*
 * The failure rules of API.md for a PRIVATE driver whose copy ops fail
 * (a driver of the test's own, registered with uhmm_dev_add):
 *  1. copy_to_dev fails: uhmm_migrate returns -EIO and nothing moved
 *     (uhmm_where, res.moved, device used, stats, every byte intact, the
 *     memory still writable); when it fails part-way through a larger
 *     migration, -EIO, no byte lost, res.moved = the pages on the device;
 *     once the op works again the same migration succeeds.
 *  2. copy_from_dev fails during uhmm_migrate back to system memory: the
 *     call returns -EIO, nothing is poisoned, nothing is lost: once the op
 *     works again the CPU reads every byte right.
 *  3. copy_from_dev fails during a CPU fault: the access raises SIGBUS
 *     (caught with sigsetjmp in this process) at the page touched, stats
 *     `poisoned` counts the page (fault_around = one page, so exactly
 *     one per touch), a poisoned page stays poisoned (SIGBUS again, not
 *     counted twice) even once the op works again; the other pages of the
 *     range are intact; unmapping the range frees its device pages.
 *  4. uhmm_dev_remove while copy_from_dev fails: -EIO, every page of the
 *     device poisoned and counted, release still called once; accesses to
 *     those pages raise SIGBUS.
 * The driver checks its own contract throughout (offsets in range, no op
 * after release).
 */
#define _GNU_SOURCE
#include "private.h"

static struct uhmm *h;
static size_t pg;

static void part1(struct tdrv *td)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	size_t len = 4 * UT_MiB + 5 * pg, n = len / pg;
	uint8_t *p = ut_map(len);
	int id = ut_dev_id(td->dev), rc;

	ut_fill64(p, len, 71);
	/* Fails at the first call. */
	tdrv_fail_to(td, 0);
	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, td->dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, -EIO, "copy_to_dev fails: uhmm_migrate_ex returns -EIO");
	ok(tdrv_ld(&td->to_fails) > 0, "the driver's copy_to_dev was called and failed (%lu times)",
	   tdrv_ld(&td->to_fails));
	is_int(res.moved, 0, "copy_to_dev fails: res.moved 0");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "copy_to_dev fails");
	is_int(ut_dev_used(td->dev), 0, "copy_to_dev fails: device used 0");
	is_int(s1.pages_to_dev - s0.pages_to_dev, 0, "copy_to_dev fails: stats pages_to_dev unchanged");
	ut_ok64(p, len, 71, "copy_to_dev fails: the data");
	ut_fill64(p, len, 72);
	ut_ok64(p, len, 72, "copy_to_dev fails: the range is still writable");
	rc = uhmm_migrate(h, p, len, td->dev, 0);
	is_int(rc, -EIO, "copy_to_dev fails: uhmm_migrate (not _ex) returns -EIO too");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "copy_to_dev fails, uhmm_migrate");

	/* Fails after some calls succeeded: whatever moved is consistent. */
	{
	unsigned long f0 = tdrv_ld(&td->to_fails);
	tdrv_fail_to(td, 2);
	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, p, len, td->dev, 0, &res);
	if (tdrv_ld(&td->to_fails) == f0 || rc == 0) {
		diag("the migration needed at most 2 copy_to_dev calls (rc %d)", rc);
		is_int(rc, 0, "copy_to_dev fails after 2 calls, never reached: the migration succeeds");
	} else {
		long on = ut_where_count(h, p, len, id), sys = ut_where_count(h, p, len, UHMM_LOC_SYSTEM);
		is_int(rc, -EIO, "copy_to_dev fails after 2 calls: -EIO");
		is_int(on + sys, n, "copy_to_dev fails part-way: every page on the device or in system "
		       "memory (%ld + %ld)", on, sys);
		is_int(res.moved, on, "copy_to_dev fails part-way: res.moved = the pages on the device");
		is_int(ut_dev_used(td->dev), (size_t)on * pg, "copy_to_dev fails part-way: device used "
		       "= the pages on it");
	}
	}
	tdrv_fail_to(td, -1);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "copy_to_dev fails part-way: everything back");
	ut_ok64(p, len, 72, "copy_to_dev fails part-way: the data");

	/* Works again. */
	rc = uhmm_migrate_ex(h, p, len, td->dev, 0, &res);
	is_int(rc, 0, "copy_to_dev works again: the migration succeeds");
	is_int(res.moved, n, "copy_to_dev works again: every page moved");
	ut_check_where(h, p, len, id, "copy_to_dev works again");
	ut_ok64(p, len, 72, "copy_to_dev works again: the data (read back by the CPU)");
	munmap(p, len);
	is_int(ut_dev_used(td->dev), 0, "part 1: device empty at the end");
}

static void part2(struct tdrv *td)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	size_t len = 4 * UT_MiB, n = len / pg;
	uint8_t *p = ut_map(len);
	int id = ut_dev_id(td->dev), rc;

	ut_fill64(p, len, 73);
	rc = uhmm_migrate(h, p, len, td->dev, 0);
	is_int(rc, 0, "part 2: range to the device");
	tdrv_fail_from(td, 0);
	s0 = ut_stats(h);
	rc = uhmm_migrate_ex(h, p, len, NULL, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, -EIO, "copy_from_dev fails: uhmm_migrate back returns -EIO");
	if (rc == 0)
		diag("the driver failed %lu copy_from_dev calls", tdrv_ld(&td->from_fails));
	ok(tdrv_ld(&td->from_fails) > 0, "the driver's copy_from_dev was called and failed");
	is_int(s1.poisoned - s0.poisoned, 0, "copy_from_dev fails in a migration: nothing poisoned");
	{
		long on = ut_where_count(h, p, len, id), sys = ut_where_count(h, p, len, UHMM_LOC_SYSTEM);
		is_int(on + sys, n, "copy_from_dev fails: every page on the device or in system memory");
		is_int(res.moved, sys, "copy_from_dev fails: res.moved = the pages in system memory");
		is_int(on, n, "copy_from_dev fails at the first call: every page still on the device");
	}
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, -EIO, "copy_from_dev still failing: -EIO again");

	tdrv_fail_from(td, -1);
	ut_ok64(p, len, 73, "copy_from_dev works again: the CPU reads every byte right");
	is_int(ut_stats(h).poisoned - s0.poisoned, 0, "still nothing poisoned");

	/* The same once more, the data brought back by uhmm_migrate. */
	rc = uhmm_migrate(h, p, len, td->dev, 0);
	is_int(rc, 0, "part 2: to the device again");
	tdrv_fail_from(td, 0);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, -EIO, "copy_from_dev fails again: -EIO");
	tdrv_fail_from(td, -1);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "copy_from_dev works again: uhmm_migrate back succeeds");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "copy_from_dev works again");
	ut_ok64(p, len, 73, "copy_from_dev works again: the data");
	munmap(p, len);
	is_int(ut_dev_used(td->dev), 0, "part 2: device empty at the end");
}

static void part3(struct tdrv *td)
{
	struct uhmm_stats s0, s1;
	size_t len = 2 * UT_MiB, n = len / pg;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB), v = 0;
	size_t bad_pages[3] = { 300, 100, 7 };	/* descending, far apart */
	int sig, rc;

	ut_fill8(p, len, 74);
	rc = uhmm_migrate(h, p, len, td->dev, 0);
	is_int(rc, 0, "part 3: range to the device");
	tdrv_fail_from(td, 0);
	s0 = ut_stats(h);
	for (int k = 0; k < 3; k++) {
		uint8_t *a = p + bad_pages[k] * pg + 17;

		sig = ut_probe_read(a, &v);
		is_int(sig, SIGBUS, "copy_from_dev fails during a CPU fault: the read of page %zu "
		       "raises SIGBUS", bad_pages[k]);
		if (sig)
			ok((uintptr_t)ut_probe_addr >= ut_pg_down(a) &&
			   (uintptr_t)ut_probe_addr < ut_pg_down(a) + pg,
			   "SIGBUS si_addr %p is in the page touched (%p)", ut_probe_addr, (void *)a);
		s1 = ut_stats(h);
		is_int(s1.poisoned - s0.poisoned, (uint64_t)k + 1,
		       "stats poisoned counts %d page(s) (fault_around = one page)", k + 1);
	}
	/* The op works again: poisoned pages stay poisoned, others are fine. */
	tdrv_fail_from(td, -1);
	sig = ut_probe_read(p + 100 * pg, &v);
	is_int(sig, SIGBUS, "a poisoned page raises SIGBUS again once the op works");
	sig = ut_probe_write(p + 7 * pg + 1, 0x42);
	is_int(sig, SIGBUS, "a write to a poisoned page raises SIGBUS too");
	s1 = ut_stats(h);
	is_int(s1.poisoned - s0.poisoned, 3, "stats poisoned still 3 (no page counted twice)");
	sig = ut_probe_read(p + 200 * pg + 3, &v);
	is_int(sig, 0, "a page that was not poisoned reads fine once the op works");
	{
		size_t bad = 0;
		for (size_t i = 0; i < n; i++) {
			if (i == 300 || i == 100 || i == 7)
				continue;
			bad += ut_chk8(p + i * pg, i * pg, pg, 74) != SIZE_MAX;
		}
		is_int(bad, 0, "the %zu other pages: every byte intact", n - 3);
	}
	munmap(p, len);
	is_int(ut_dev_used(td->dev), 0, "part 3: unmapping the range frees its device pages");
}

static void part4(void)
{
	struct tdrv t2;
	struct uhmm_stats s0, s1;
	size_t len = 1 * UT_MiB, n = len / pg;
	uint8_t *p = ut_map(len), v = 0;
	int rc, sig;

	tdrv_add(h, &t2, "tdrv-remove", 8 * UT_MiB, 1);
	ut_fill8(p, len, 75);
	rc = uhmm_migrate(h, p, len, t2.dev, 0);
	is_int(rc, 0, "part 4: range to the second driver");
	tdrv_fail_from(&t2, 0);
	s0 = ut_stats(h);
	rc = uhmm_dev_remove(t2.dev);
	s1 = ut_stats(h);
	is_int(rc, -EIO, "uhmm_dev_remove while copy_from_dev fails: -EIO");
	is_int(s1.poisoned - s0.poisoned, n, "uhmm_dev_remove: the %zu pages poisoned and counted", n);
	is_int(tdrv_ld(&t2.releases), 1, "uhmm_dev_remove: release called once all the same");
	sig = ut_probe_read(p + 5 * pg, &v);
	is_int(sig, SIGBUS, "a page poisoned by uhmm_dev_remove raises SIGBUS");
	sig = ut_probe_read(p, &v);
	is_int(sig, SIGBUS, "and so does its first page");
	munmap(p, len);
	tdrv_check_contract(&t2, "the removed driver", 1);
	tdrv_free(&t2);
}

int main(void)
{
	struct tdrv td;

	ut_init(120);
	tdrv_app_thread();
	pg = ut_page();
	h = ut_open_priv(pg, 0, 0);
	is_int(ut_stats(h).poisoned, 0, "stats poisoned 0 at the start");
	tdrv_add(h, &td, "tdrv", 32 * UT_MiB, 1);

	part1(&td);
	part2(&td);
	part3(&td);
	part4();

	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);
	return tap_done();
}
