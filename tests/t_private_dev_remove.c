/* SPDX-License-Identifier: MIT */
/*
 * uhmm_dev_remove of a PRIVATE device with pages on it brings every page
 * back to system memory bit-exact before it returns: a populated range, a
 * range partly faulted back, a never-populated range (zeros), a malloc'd
 * buffer at an odd address, a read-only range (still read-only after);
 * other devices' pages stay where they are; the memory is ordinary and
 * migratable afterwards.  For the test driver: release is called once,
 * after the last op, and no op after it.
 */
#define _GNU_SOURCE
#include "private.h"

static void write_one(void *arg)
{
	*(volatile uint8_t *)arg = 1;
}

static void run(struct uhmm *h, struct uhmm_dev *a, struct tdrv *td, struct uhmm_dev *other,
		const char *dn)
{
	size_t len = 8 * UT_MiB, rl = 3 * UT_MiB + 77, pg = ut_page();
	uint8_t *p = ut_map(len), *q = ut_map(len), *ro = ut_map(len), *part = ut_map(len);
	uint8_t *o = ut_map(len), *raw = malloc(rl + 32);
	int ido = ut_dev_id(other), rc;
	char w[160];

	if (!raw)
		tap_bail("malloc");
	ut_fill64(p, len, 111);
	ut_fill64(ro, len, 112);
	ut_fill64(part, len, 113);
	ut_fill64(o, len, 114);
	ut_fill8(raw + 9, rl, 115);
	is_int(uhmm_migrate(h, p, len, a, 0), 0, "%s: populated range to the device", dn);
	is_int(uhmm_migrate(h, q, len, a, 0), 0, "%s: untouched range to the device", dn);
	mprotect(ro, len, PROT_READ);
	is_int(uhmm_migrate(h, ro, len, a, 0), 0, "%s: read-only range to the device", dn);
	is_int(uhmm_migrate(h, part, len, a, 0), 0, "%s: a range to be partly faulted back", dn);
	is_int(uhmm_migrate(h, raw + 9, rl, a, 0), 0, "%s: malloc'd buffer to the device", dn);
	is_int(uhmm_migrate(h, o, len, other, 0), 0, "%s: a range to the other device", dn);
	ut_fill64(p + len / 2, len / 2, 116);	/* written while on the device */
	ut_ok64(part, len / 2, 113, "first half of the partial range read back");
	ok(ut_dev_used(a) > 0, "%s: the device holds pages (%zu bytes)", dn, ut_dev_used(a));

	rc = uhmm_dev_remove(a);
	is_int(rc, 0, "%s: uhmm_dev_remove with pages on it", dn);
	if (td) {
		is_int(tdrv_ld(&td->releases), 1, "%s: release called by the time it returned", dn);
		tdrv_check_contract(td, dn, 1);
	}

	snprintf(w, sizeof(w), "%s: after remove, populated range", dn);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, w);
	ut_ok64(p, len / 2, 111, w);
	ut_ok64(p + len / 2, len / 2, 116, "the half written on the device (its own pattern)");
	snprintf(w, sizeof(w), "%s: after remove, untouched range", dn);
	ok(ut_where_count(h, q, len, UHMM_LOC_SYSTEM) + ut_where_count(h, q, len, UHMM_LOC_NONE) ==
	   (long)(len / pg), "%s: SYSTEM or NONE", w);
	ut_okzero(q, len, w);
	snprintf(w, sizeof(w), "%s: after remove, read-only range", dn);
	ut_check_where(h, ro, len, UHMM_LOC_SYSTEM, w);
	ut_ok64(ro, len, 112, w);
	ok(ut_maps_summary(ro, len).with_w == 0, "%s: still without 'w' in /proc/self/maps", w);
	is_int(ut_child(write_one, ro + 5 * pg), SIGSEGV, "%s: a write in a child dies with SIGSEGV", w);
	snprintf(w, sizeof(w), "%s: after remove, partial range", dn);
	ut_check_where(h, part, len, UHMM_LOC_SYSTEM, w);
	ut_ok64(part, len, 113, w);
	snprintf(w, sizeof(w), "%s: after remove, malloc'd buffer", dn);
	ut_check_where(h, raw + 9, rl, UHMM_LOC_SYSTEM, w);
	ut_ok8(raw + 9, rl, 115, w);
	snprintf(w, sizeof(w), "%s: the other device's range", dn);
	ut_check_where(h, o, len, ido, w);
	ut_ok64(o, len, 114, w);

	/* Ordinary memory: writable, migratable elsewhere. */
	ut_fill64(q, len, 117);
	ut_ok64(q, len, 117, "written after remove");
	is_int(uhmm_migrate(h, p, len, other, 0), 0, "%s: to the other device after remove", dn);
	is_int(uhmm_migrate(h, p, len, NULL, 0), 0, "%s: and back", dn);
	ut_ok64(p, len / 2, 111, "after remove and a round trip");
	is_int(uhmm_migrate(h, o, len, NULL, 0), 0, "%s: other device's range back", dn);

	free(raw);
	munmap(p, len);
	munmap(q, len);
	munmap(ro, len);
	munmap(part, len);
	munmap(o, len);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *b;
	struct tdrv td;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	b = ut_psim(h, "other", 64 * UT_MiB);
	run(h, ut_psim(h, "psim", 64 * UT_MiB), NULL, b, "sim PRIVATE");
	run(h, tdrv_add(h, &td, "tdrv", 64 * UT_MiB, 1), &td, b, "test driver");
	tdrv_free(&td);

	/* A new device after the removals works. */
	{
		struct uhmm_dev *c = ut_psim(h, "again", 8 * UT_MiB);
		uint8_t *p = ut_map(UT_MiB);
		ut_fill64(p, UT_MiB, 118);
		is_int(uhmm_migrate(h, p, UT_MiB, c, 0), 0, "a new PRIVATE device after the removals");
		is_int(uhmm_dev_remove(c), 0, "removed with the pages on it");
		ut_ok64(p, UT_MiB, 118, "its range");
		munmap(p, UT_MiB);
	}
	is_int(uhmm_dev_remove(b), 0, "the other device removed (empty)");
	uhmm_close(h);
	return tap_done();
}
