/* SPDX-License-Identifier: MIT */
/*
 * Protection of memory living on a PRIVATE device is the program's, as
 * for ordinary memory, whichever way its pages come back:
 *  - a PROT_READ range migrated to the device: CPU reads fault it back
 *    right, and a write raises SIGSEGV (caught in this process), before
 *    and after the page came back; uhmm_migrate back keeps it read-only;
 *  - mprotect(PROT_READ) while the pages are on the device: the same;
 *  - mprotect(PROT_NONE) while on the device: a read raises SIGSEGV (it
 *    must not hang in a userfaultfd fault); mprotect back to read-write:
 *    the data is there and writable;
 *  - a range made read-write again after coming back read-only takes
 *    writes, and they survive another trip through the device.
 */
#define _GNU_SOURCE
#include "private.h"

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 2 * UT_MiB, pg;
	uint8_t *p, v = 0;
	int id, rc, sig;

	ut_init(120);
	pg = ut_page();
	h = ut_open();
	dev = ut_psim(h, "psim", 32 * UT_MiB);
	id = ut_dev_id(dev);

	/* ---- read-only before the migration ---- */
	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill8(p, len, 171);
	mprotect(p, len, PROT_READ);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "a PROT_READ range to the device");
	ut_check_where(h, p, len, id, "read-only on the device");
	sig = ut_probe_write(p + 100 * pg + 1, 0x11);
	is_int(sig, SIGSEGV, "a write to a read-only page on the device: SIGSEGV");
	sig = ut_probe_read(p + 200 * pg + 5, &v);
	is_int(sig, 0, "a read of a read-only page on the device");
	is_int(v, ut_pat8(171, 200 * pg + 5), "the byte read");
	sig = ut_probe_write(p + 200 * pg + 5, 0x22);
	is_int(sig, SIGSEGV, "a write to that page, now back in system memory: SIGSEGV");
	ut_ok8(p, len, 171, "the read-only range, read back by the CPU");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "the read-only range after the reads");
	sig = ut_probe_write(p + 300 * pg, 0x33);
	is_int(sig, SIGSEGV, "a write anywhere in it: SIGSEGV");
	ok(ut_maps_summary(p, len).with_w == 0, "no 'w' in /proc/self/maps");
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "to the device again");
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "and back by uhmm_migrate");
	sig = ut_probe_write(p + 7 * pg, 0x44);
	is_int(sig, SIGSEGV, "after uhmm_migrate back: a write still raises SIGSEGV");
	ut_ok8(p, len, 171, "the read-only range after the round trip");

	/* Made writable again: writes land and survive a trip. */
	ok(mprotect(p, len, PROT_READ | PROT_WRITE) == 0, "mprotect(PROT_READ | PROT_WRITE)");
	ut_fill8(p, len, 172);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "written, to the device");
	ut_ok8(p, len, 172, "read back by the CPU");

	/* ---- mprotect while the pages are on the device ---- */
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "to the device once more");
	ok(mprotect(p, len, PROT_READ) == 0, "mprotect(PROT_READ) with the pages on the device");
	sig = ut_probe_write(p + 50 * pg + 9, 0x55);
	is_int(sig, SIGSEGV, "a write: SIGSEGV");
	sig = ut_probe_read(p + 50 * pg + 9, &v);
	is_int(sig, 0, "a read works");
	is_int(v, ut_pat8(172, 50 * pg + 9), "the byte read");
	sig = ut_probe_write(p + 50 * pg + 9, 0x55);
	is_int(sig, SIGSEGV, "a write to the page read back: SIGSEGV");

	ok(mprotect(p, len, PROT_NONE) == 0, "mprotect(PROT_NONE) with most pages on the device");
	sig = ut_probe_read(p + 400 * pg + 3, &v);
	is_int(sig, SIGSEGV, "a read of a PROT_NONE page on the device: SIGSEGV (no hang)");
	sig = ut_probe_read(p + 50 * pg, &v);
	is_int(sig, SIGSEGV, "a read of a PROT_NONE page in system memory: SIGSEGV");
	ok(mprotect(p, len, PROT_READ | PROT_WRITE) == 0, "mprotect(PROT_READ | PROT_WRITE) again");
	ut_ok8(p, len, 172, "every byte after PROT_NONE and back");
	ut_fill8(p, len, 173);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "written once more, to the device");
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "and back");
	ut_ok8(p, len, 173, "the last writes after a round trip");

	munmap(p, len);
	is_int(ut_dev_used(dev), 0, "device empty");
	uhmm_close(h);
	return tap_done();
}
