/* SPDX-License-Identifier: MIT */
/*
 * uhmm_dev_remove with pages on the device brings them back to system
 * memory bit-exact first (uhmm_where SYSTEM, every byte, maps lines
 * anonymous again), PROT_NONE and read-only pages too (with their
 * protection), leaves other devices' pages alone, and the memory stays
 * usable and migratable.  mseal'd COHERENT pages, which cannot be mapped
 * home: -EIO, their data kept, and the next device given the same id
 * inherits nothing.
 */
#define _GNU_SOURCE
#include <sys/syscall.h>

#include "util.h"

/*
 * A range the program mseal'd while it lived on a COHERENT device cannot
 * be remapped home: the removal says -EIO, the pages keep their data in
 * the device's file (their mapping keeps it), and the context lets go of
 * them - the next device, given the same id, inherits nothing.
 */
static void sealed_then_removed(struct uhmm *h)
{
	struct uhmm_dev *d = ut_sim(h, "E", 8 * UT_MiB), *d2;
	size_t pg = ut_page(), l = 16 * pg;
	uint8_t *s = ut_map(l), *t = ut_map(l);
	uint8_t was;
	int id, rc;

	ut_fill64(s, l, 87);
	ut_fill64(t, l, 88);
	is_int(uhmm_migrate(h, s, l, d, 0), 0, "16 pages to E");
	id = ut_dev_id(d);
	if (syscall(SYS_mseal, s, l, 0) != 0) {
		skip("mseal is not available here (%s)", strerror(errno));
		uhmm_dev_remove(d);
		return;
	}
	rc = uhmm_dev_remove(d);
	is_int(rc, -EIO, "uhmm_dev_remove(E) with mseal'd pages on it: -EIO");
	ut_ok64(s, l, 87, "the sealed pages' data");
	/* a fault there (its PTE dropped) is the kernel's now: no hang */
	if (madvise(s + pg, pg, MADV_DONTNEED) == 0)
		ut_ok64(s, l, 87, "after a fault on one of them: the file's page");
	else
		diag("madvise(DONTNEED) of sealed pages: %s", strerror(errno));
	was = s[5];
	s[5] = 0x42;
	ok(s[5] == 0x42, "and they take writes");
	d2 = ut_sim(h, "F", 8 * UT_MiB);
	is_int(ut_dev_id(d2), id, "the next device gets E's id");
	ok(ut_where_count(h, s, l, id) == 0, "the sealed pages are not placed on it");
	is_int(uhmm_migrate(h, t, l, d2, 0), 0, "other pages to it");
	is_int(uhmm_dev_remove(d2), 0, "and its removal brings them home");
	ut_ok64(t, l, 88, "their data");
	ok(s[5] == 0x42, "the byte written to a sealed page is still there");
	s[5] = was;
	ut_ok64(s, l, 87, "the rest of the sealed pages unchanged by it all");
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *a, *b;
	size_t len = 16 * UT_MiB, rl = 2 * UT_MiB + 77;
	uint8_t *p, *q, *r, *raw;
	int ida, idb, rc;

	ut_init(120);
	h = ut_open();
	a = ut_sim(h, "A", 64 * UT_MiB);
	b = ut_sim(h, "B", 64 * UT_MiB);
	ida = ut_dev_id(a);
	idb = ut_dev_id(b);

	p = ut_map(len);		/* populated, on A */
	q = ut_map(len);		/* untouched, on A */
	raw = malloc(rl + 16);	/* malloc'd, unaligned, on A */
	r = ut_map(len);		/* populated, on B */
	if (!raw)
		tap_bail("malloc");
	ut_fill64(p, len, 81);
	ut_fill8(raw + 5, rl, 82);
	ut_fill64(r, len, 83);
	is_int(uhmm_migrate(h, p, len, a, 0), 0, "populated range to A");
	is_int(uhmm_migrate(h, q, len, a, 0), 0, "untouched range to A");
	is_int(uhmm_migrate(h, raw + 5, rl, a, 0), 0, "malloc'd buffer to A");
	is_int(uhmm_migrate(h, r, len, b, 0), 0, "another range to B");
	ut_fill64(p + len / 2, len / 2, 84);	/* written on the device */
	ut_check_where(h, p, len, ida, "populated range");
	ut_check_where(h, r, len, idb, "range on B");
	ok(ut_maps_summary(p, len).with_path > 0,
	   "while on the device the maps show the device's file (%s)", ut_maps_summary(p, len).first_path);

	rc = uhmm_dev_remove(a);
	is_int(rc, 0, "uhmm_dev_remove(A) with pages on it");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "populated range after remove");
	ut_check_where(h, raw + 5, rl, UHMM_LOC_SYSTEM, "malloc'd buffer after remove");
	{
		long sys = ut_where_count(h, q, len, UHMM_LOC_SYSTEM);
		long none = ut_where_count(h, q, len, UHMM_LOC_NONE);
		is_int(sys + none, len / ut_page(), "untouched range after remove: SYSTEM or NONE");
	}
	ut_ok64(p, len / 2, 81, "populated range, first half");
	{
		/* second half was rewritten with pattern 84 from its own start */
		ut_ok64(p + len / 2, len / 2, 84, "populated range, second half (written on A)");
	}
	ut_okzero(q, len, "untouched range");
	ut_ok8(raw + 5, rl, 82, "malloc'd buffer");
	{
		struct ut_maps_acc m = ut_maps_summary(p, len);
		ok(m.with_path == 0, "populated range: maps lines anonymous again (%ld lines)", m.lines);
		if (m.with_path)
			diag("still mapped: %s", m.first_path);
		m = ut_maps_summary(q, len);
		ok(m.with_path == 0, "untouched range: maps lines anonymous again");
	}
	ut_check_where(h, r, len, idb, "B's range unaffected");
	ut_ok64(r, len, 83, "B's range");

	/* Ordinary again: write, and migrate to B. */
	ut_fill64(q, len, 85);
	ut_ok64(q, len, 85, "the untouched range written after remove");
	is_int(uhmm_migrate(h, p, len, b, 0), 0, "the removed device's pages migrate to B");
	ut_ok64(p, len / 2, 81, "on B, first half");
	is_int(uhmm_migrate(h, p, len, NULL, 0), 0, "and back");

	/* B removed last, while it holds two ranges. */
	rc = uhmm_dev_remove(b);
	is_int(rc, 0, "uhmm_dev_remove(B)");
	ut_check_where(h, r, len, UHMM_LOC_SYSTEM, "B's range after remove");
	ut_ok64(r, len, 83, "B's range after remove");
	ok(ut_maps_summary(r, len).with_path == 0, "B's range anonymous again");

	/* A new device, and a migration onto it, still work. */
	{
		struct uhmm_dev *c = ut_sim(h, "C", 16 * UT_MiB);
		int idc = ut_dev_id(c);
		ok(idc >= 1, "a new device after the removals (id %d)", idc);
		is_int(uhmm_migrate(h, raw + 5, rl, c, 0), 0, "malloc'd buffer to it");
		ut_ok8(raw + 5, rl, 82, "malloc'd buffer on the new device");
		is_int(uhmm_dev_remove(c), 0, "remove it");
		ut_ok8(raw + 5, rl, 82, "malloc'd buffer after that remove");
	}
	/* Pages the program made PROT_NONE or read-only (plain mprotect)
	 * while they lived on the device come home too, keeping their
	 * protection; eviction is the same path. */
	{
		struct uhmm_dev *d = ut_sim(h, "D", 16 * UT_MiB);
		size_t pg = ut_page(), l = 8 * pg;
		uint8_t *s = ut_map(l);
		struct ut_maps_acc m;

		ut_fill8(s, l, 86);
		is_int(uhmm_migrate(h, s, l, d, 0), 0, "8 pages to D");
		mprotect(s + pg, pg, PROT_NONE);
		mprotect(s + 2 * pg, pg, PROT_READ);
		is_int(uhmm_dev_remove(d), 0, "uhmm_dev_remove(D) with PROT_NONE and read-only pages");
		ut_check_where(h, s, l, UHMM_LOC_SYSTEM, "those pages after the remove");
		m = ut_maps_summary(s, l);
		ok(m.with_path == 0, "anonymous again (%ld lines)", m.lines);
		ok(ut_prot_at(s + pg) == PROT_NONE && ut_prot_at(s + 2 * pg) == PROT_READ &&
		   ut_prot_at(s) == (PROT_READ | PROT_WRITE),
		   "each page's protection kept");
		mprotect(s, l, PROT_READ | PROT_WRITE);
		ut_ok8(s, l, 86, "their data");
		munmap(s, l);
	}
	sealed_then_removed(h);
	is_int(uhmm_dev_remove(NULL), -EINVAL, "uhmm_dev_remove(NULL): -EINVAL");

	free(raw);
	munmap(p, len);
	munmap(q, len);
	munmap(r, len);
	uhmm_close(h);
	return tap_done();
}
