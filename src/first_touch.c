// SPDX-License-Identifier: MIT
/*
 * First touch under PREFERRED_LOCATION: a never-populated page of such a
 * range is populated on the preferred device, not in system memory, when
 * whoever touches it can reach that device's memory.  This is the seed's
 * "malloc() and madvise() allocate from device memory, then the CPU writes
 * data to device memory directly": the CPU's first write to a page whose
 * preferred location is a COHERENT device faults to us (the range is
 * registered for MISSING faults), and we migrate the run of untouched pages
 * around it, which makes zeroed device pages with no copy, then wake the
 * thread; its write and every later one land in device memory.
 *
 * Who reaches what: the CPU and every device reach a COHERENT device's
 * memory (devices through uhmm's view of it); only the device itself
 * reaches its PRIVATE memory.  A CPU first touch of a page preferring a
 * PRIVATE device is therefore populated in system memory, as without the
 * advice (the device's accesses move it later, see policy.c), and so is a
 * touch by another device.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "migrate.h"
#include "trace.h"

struct uhmm_dev *first_touch_target(struct uhmm *h, uintptr_t page, struct uhmm_dev *dev)
{
	const struct advice *a = advice_at(h, page);
	struct uhmm_dev *pref;

	/* read-mostly pages populate where touched, as under CUDA */
	if (a->read_mostly || a->pinned)
		return NULL;
	pref = dev_by_id(h, a->pref);
	if (!pref)
		return NULL;
	if (pref->kind == UHMM_MEM_COHERENT || pref == dev)
		return pref;
	return NULL;
}

/*
 * The run of never-populated system pages around page within its 2 MiB
 * block, its advice extent and its mapping: what one first touch places.
 */
static int untouched_run(struct uhmm *h, uintptr_t page, uintptr_t *rs, uintptr_t *re)
{
	const struct advice *a = advice_at(h, page);
	uintptr_t s = page & ~(BLOCK_SIZE - 1), e = s + BLOCK_SIZE;
	uint8_t present[BLOCK_PAGES];
	size_t i, lo, hi;
	struct vma v;
	int r;

	if (vma_at(h, page, &v) || v.kind != VMA_ANON)
		return -ENOENT;
	if (s < a->start)
		s = a->start;
	if (e > a->end)
		e = a->end;
	if (s < v.start)
		s = v.start;
	if (e > v.end)
		e = v.end;
	memset(present, 0, sizeof(present));
	r = pagemap_present(h, s, (e - s) >> PAGE_SHIFT, present, true);
	if (r)
		return r;
	i = (page - s) >> PAGE_SHIFT;
	if (present[i])
		return -ENOENT;		/* someone else placed it meanwhile */
	for (lo = i; lo > 0 && !present[lo - 1] &&
	     pt_loc(&h->pt, s + ((lo - 1) << PAGE_SHIFT), NULL) == LOC_SYS; lo--)
		;
	for (hi = i + 1; s + (hi << PAGE_SHIFT) < e && !present[hi] &&
	     pt_loc(&h->pt, s + (hi << PAGE_SHIFT), NULL) == LOC_SYS; hi++)
		;
	*rs = s + (lo << PAGE_SHIFT);
	*re = s + (hi << PAGE_SHIFT);
	return 0;
}

bool first_touch(struct uhmm *h, uintptr_t page, struct uhmm_dev *dev)
{
	struct uhmm_dev *to = first_touch_target(h, page, dev);
	struct trace_why why;
	uintptr_t s, e;
	int r;

	if (!to || pt_loc(&h->pt, page, NULL) != LOC_SYS || policy_pinned(h, page))
		return false;
	if (untouched_run(h, page, &s, &e))
		return false;
	/* a migration of untouched pages: zeroed device pages, no copy,
	 * no system memory; if the device is full and nothing can be
	 * evicted, the page is populated in system memory after all */
	why = trace_because(UHMM_CAUSE_FIRST_TOUCH);
	r = migrate_range(h, s, e, to, 0, NULL);
	trace_restore(why);
	uffd_wake(h, s, e - s);
	return !r || pt_loc(&h->pt, page, NULL) != LOC_SYS;
}
