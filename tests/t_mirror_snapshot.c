/* SPDX-License-Identifier: MIT */
/*
 * uhmm_range_fault page states, for a mirror of a COHERENT and of a
 * PRIVATE sim device: PROT_NONE, hole, untouched, read-only, read-write,
 * on this device, on another device; then FAULT_READ (-EFAULT over the
 * hole, every page VALID without it, another device's private pages come
 * home) and FAULT_WRITE (-EPERM over the read-only page, WRITE without).
 */
#define _GNU_SOURCE
#include "private.h"

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

static int fault_retry(struct uhmm_mirror *m, void *p, size_t len, unsigned fl,
		       struct uhmm_pte *ptes)
{
	int rc;

	for (int i = 0; i < 10; i++) {
		uint64_t s = uhmm_mirror_read_begin(m);

		rc = uhmm_range_fault(m, p, len, fl, ptes);
		if (rc != -EBUSY && !(rc == 0 && uhmm_mirror_read_retry(m, s)))
			break;
	}
	return rc;
}

static void run(struct uhmm *h, struct uhmm_dev *dev, struct uhmm_dev *other, const char *kind)
{
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };
	struct uhmm_dev_info di = ut_info(dev), oi = ut_info(other);
	size_t pg = ut_page();
	struct uhmm_pte pt[8];
	struct uhmm_mirror *m;
	uint8_t *p = ut_map(7 * pg);
	uint64_t off = 0;
	int rc, loc = 0;

	rc = uhmm_mirror_open(dev, &ops, NULL, &m);
	if (rc)
		tap_bail("uhmm_mirror_open: %d", rc);
	mprotect(p, pg, PROT_NONE);
	munmap(p + pg, pg);
	p[3 * pg] = 3;
	mprotect(p + 3 * pg, pg, PROT_READ);
	p[4 * pg] = 4;
	p[5 * pg] = 5;
	p[6 * pg] = 6;
	rc = uhmm_migrate(h, p + 5 * pg, pg, dev, 0);
	rc |= uhmm_migrate(h, p + 6 * pg, pg, other, 0);
	is_int(rc, 0, "%s: pages 5 and 6 migrated", kind);

	memset(pt, 0xee, sizeof(pt));
	rc = uhmm_range_fault(m, p, 7 * pg, 0, pt);
	is_int(rc, 0, "%s: snapshot of 7 pages", kind);
	ok(pt[0].flags == UHMM_PTE_ERROR, "%s: PROT_NONE: ERROR (0x%x)", kind, pt[0].flags);
	ok(pt[1].flags == UHMM_PTE_ERROR, "%s: hole: ERROR (0x%x)", kind, pt[1].flags);
	ok(!(pt[2].flags & (UHMM_PTE_VALID | UHMM_PTE_ERROR)) && pt[2].loc == UHMM_LOC_NONE,
	   "%s: untouched: not VALID, loc NONE (0x%x, %d)", kind, pt[2].flags, pt[2].loc);
	ok((pt[3].flags & (UHMM_PTE_VALID | UHMM_PTE_WRITE)) == UHMM_PTE_VALID &&
	   pt[3].loc == UHMM_LOC_SYSTEM && pt[3].host == (uintptr_t)(p + 3 * pg),
	   "%s: read-only: VALID, no WRITE, SYSTEM, host = its address (0x%x)", kind, pt[3].flags);
	ok((pt[4].flags & (UHMM_PTE_VALID | UHMM_PTE_WRITE)) == (UHMM_PTE_VALID | UHMM_PTE_WRITE) &&
	   pt[4].loc == UHMM_LOC_SYSTEM && pt[4].host == (uintptr_t)(p + 4 * pg),
	   "%s: read-write: VALID|WRITE, SYSTEM (0x%x)", kind, pt[4].flags);
	uhmm_dev_offset(h, p + 5 * pg, &loc, &off);
	ok((pt[5].flags & (UHMM_PTE_VALID | UHMM_PTE_WRITE)) == (UHMM_PTE_VALID | UHMM_PTE_WRITE) &&
	   pt[5].loc == di.id && pt[5].dev_off == off &&
	   (di.kind == UHMM_MEM_PRIVATE ? pt[5].host == 0 : pt[5].host != 0),
	   "%s: on this device: VALID|WRITE, its id, dev_off, host %s (0x%x, %d)", kind,
	   di.kind == UHMM_MEM_PRIVATE ? "0" : "its view", pt[5].flags, pt[5].loc);
	if (di.kind == UHMM_MEM_COHERENT && pt[5].host)
		ok(*(volatile uint8_t *)(uintptr_t)pt[5].host == 5,
		   "%s: host of a COHERENT page holds its data", kind);
	uhmm_dev_offset(h, p + 6 * pg, &loc, &off);
	if (oi.kind == UHMM_MEM_PRIVATE)
		ok(!(pt[6].flags & UHMM_PTE_VALID) && pt[6].loc == oi.id && pt[6].dev_off == off &&
		   !pt[6].host, "%s: on another PRIVATE device: its id and dev_off, not VALID (0x%x)",
		   kind, pt[6].flags);
	else
		ok((pt[6].flags & UHMM_PTE_VALID) && pt[6].loc == oi.id && pt[6].dev_off == off &&
		   pt[6].host, "%s: on another COHERENT device: VALID, its view (0x%x)", kind,
		   pt[6].flags);
	ut_check_where(h, p + 2 * pg, pg, UHMM_LOC_NONE, "the snapshot populated nothing");

	rc = uhmm_range_fault(m, p, 7 * pg, UHMM_FAULT_READ, pt);
	is_int(rc, -EFAULT, "%s: FAULT_READ over PROT_NONE and a hole", kind);
	rc = fault_retry(m, p + 2 * pg, 5 * pg, UHMM_FAULT_READ, pt);
	is_int(rc, 0, "%s: FAULT_READ of pages 2..6", kind);
	ok((pt[0].flags & pt[1].flags & pt[2].flags & pt[3].flags & pt[4].flags &
	    UHMM_PTE_VALID), "%s: every page VALID", kind);
	ok(pt[0].loc == UHMM_LOC_SYSTEM && pt[0].host == (uintptr_t)(p + 2 * pg) &&
	   (pt[0].flags & (UHMM_PTE_ERROR | UHMM_PTE_WRITE)) == 0,
	   "%s: the untouched page: populated, read-only to the device (0x%x)", kind, pt[0].flags);
	diag("untouched page after FAULT_READ: flags 0x%x (ZERO where frame numbers show)",
	     pt[0].flags);
	ok(pt[3].loc == di.id, "%s: this device's page stayed", kind);
	if (oi.kind == UHMM_MEM_PRIVATE)
		ok(pt[4].loc == UHMM_LOC_SYSTEM && pt[4].host == (uintptr_t)(p + 6 * pg),
		   "%s: another PRIVATE device's page came home", kind);
	ok(p[6 * pg] == 6 && p[5 * pg] == 5 && p[2 * pg] == 0, "%s: data intact", kind);

	rc = uhmm_range_fault(m, p + 2 * pg, 5 * pg, UHMM_FAULT_WRITE, pt);
	is_int(rc, -EPERM, "%s: FAULT_WRITE over a read-only page", kind);
	rc = fault_retry(m, p + 4 * pg, 3 * pg, UHMM_FAULT_WRITE, pt);
	is_int(rc, 0, "%s: FAULT_WRITE of pages 4..6", kind);
	ok((pt[0].flags & pt[1].flags & pt[2].flags & UHMM_PTE_WRITE), "%s: all WRITE", kind);
	rc = fault_retry(m, p + 2 * pg, pg, UHMM_FAULT_WRITE, pt);
	ok(rc == 0 && (pt[0].flags & UHMM_PTE_WRITE) && !(pt[0].flags & UHMM_PTE_ZERO),
	   "%s: FAULT_WRITE makes the zero page writable (0x%x)", kind, pt[0].flags);
	is_int(uhmm_range_fault(m, p, pg, 0x4, pt), -EINVAL, "%s: unknown flag", kind);
	is_int(uhmm_range_fault(m, p, 0, 0, pt), -EINVAL, "%s: len 0", kind);

	uhmm_mirror_close(m);
	munmap(p, pg);
	munmap(p + 2 * pg, 5 * pg);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv, *pv2;

	ut_init(120);
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	pv2 = ut_psim(h, "psim2", 16 * UT_MiB);
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	run(h, pv, pv2, "PRIVATE/PRIVATE");
	if (c) {
		run(h, pv, c, "PRIVATE/COHERENT");
		run(h, c, pv, "COHERENT/PRIVATE");
	} else {
		skip("COHERENT devices cannot exist here");
	}
	uhmm_close(h);
	return tap_done();
}
