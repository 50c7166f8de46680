/* SPDX-License-Identifier: MIT */
/*
 * The library's own memory never lands in a hole the program has made.
 *
 * A program that munmaps a range and maps it again with mmap(MAP_FIXED)
 * (glibc's arenas, a JIT's code cache, t_mirror_remap) expects the range
 * to stay free in between, and a single-threaded one may: nothing else
 * maps memory.  uhmm's threads do, at times of their own, and the kernel
 * puts a mapping in the highest hole that fits, which a range just
 * unmapped below everything else is.  So after the hole is made, work that
 * needs new memory of the library's (a 1 GiB range managed: its page
 * table; uhmm_where of it: a buffer of a page per 4 KiB; a mirror and its
 * snapshot; CPU faults on a PRIVATE device, served by the library's
 * threads) must leave the hole free.
 */
#define _GNU_SOURCE
#include "private.h"

#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define HOLE (8 * UT_MiB)

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

/* still free: a mapping there that may not replace anything */
static int hole_free(void *hole)
{
	void *q = mmap(hole, HOLE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (q == MAP_FAILED)
		return 0;
	munmap(q, HOLE);
	return q == hole;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };
	struct uhmm_mirror *m = NULL;
	size_t pg, blen = 16 * UT_MiB, glen = UT_GiB;
	struct uhmm_pte *ptes;
	uint8_t *buf, *big;
	int *loc, rc;
	void *hole;

	ut_init(120);
	pg = ut_page();
	h = ut_open_priv(pg, 2, 0);
	dev = ut_psim(h, "psim", 64 * UT_MiB);
	buf = ut_map(blen);
	big = mmap(NULL, glen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	loc = mmap(NULL, glen / pg * sizeof(*loc), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	ptes = mmap(NULL, 512 * sizeof(*ptes), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (big == MAP_FAILED || loc == MAP_FAILED || ptes == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	ut_fill8(buf, blen, 3);
	is_int(uhmm_migrate(h, buf, blen, dev, 0), 0, "a buffer to the PRIVATE device");

	/* the hole: below everything, so the kernel's next choice */
	hole = mmap(NULL, HOLE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (hole == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	munmap(hole, HOLE);

	rc = uhmm_migrate(h, big, glen, NULL, 0);
	is_int(rc, 0, "1 GiB never touched, managed (to system memory)");
	ok(hole_free(hole), "... the hole is still free");
	is_int(uhmm_where(h, big, glen, loc), 0, "uhmm_where of the 1 GiB");
	ok(hole_free(hole), "... the hole is still free");
	is_int(uhmm_mirror_open(dev, &ops, NULL, &m), 0, "a mirror");
	rc = -EBUSY;
	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(m, big, 512 * pg, 0, ptes);
	is_int(rc, 0, "its snapshot of 2 MiB");
	ok(hole_free(hole), "... the hole is still free");
	ut_ok8(buf, blen, 3, "CPU read of the buffer: faults served by the library's threads");
	ok(hole_free(hole), "... the hole is still free");
	uhmm_mirror_close(m);
	munmap(big, glen);
	munmap(buf, blen);
	uhmm_close(h);
	return tap_done();
}
