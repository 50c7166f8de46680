// SPDX-License-Identifier: MIT
/* uhmm_where and uhmm_dev_offset: placement, observable page by page. */
#include <errno.h>
#include <stdlib.h>

#include "exclusive.h"

static int where_locked(struct uhmm *h, uintptr_t s, uintptr_t e, int *loc)
{
	size_t n = (e - s) >> PAGE_SHIFT;
	uint8_t *present;
	struct vma *vv;
	size_t nv;
	int r;

	r = vma_scan(h, s, e, &vv, &nv);	/* -EFAULT on a hole */
	if (r)
		return r;
	mem_free(vv);
	present = mem_alloc(n);
	if (!present)
		return -ENOMEM;
	r = pagemap_present(h, s, n, present, true);
	for (size_t i = 0; !r && i < n; i++) {
		int l = pt_loc(&h->pt, s + (i << PAGE_SHIFT), NULL);

		/* a page a device holds alone is in our copy of it */
		if (l == LOC_UNMANAGED || l == LOC_SYS)
			loc[i] = present[i] || excl_sys(h, s + (i << PAGE_SHIFT)) ?
				 UHMM_LOC_SYSTEM : UHMM_LOC_NONE;
		else
			loc[i] = l;
	}
	mem_free(present);
	return r;
}

int uhmm_where(struct uhmm *h, const void *addr, size_t len, int *loc)
{
	uintptr_t s, e;
	int r;

	if (!h || !loc)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (r)
		return r;
	ctx_lock(h);
	events_drain(h);
	r = where_locked(h, s, e, loc);
	ctx_unlock(h);
	return r;
}

int uhmm_dev_offset(struct uhmm *h, const void *addr, int *loc, uint64_t *dev_off)
{
	uintptr_t s, e;
	uint32_t dp = 0;
	int r, l;

	if (!h || !loc || !dev_off)
		return -EINVAL;
	r = range_pages(addr, 1, &s, &e);
	if (r)
		return r;
	ctx_lock(h);
	events_drain(h);
	/* a page on a device needs no look at the mappings: the page table
	 * knows (a driver asks this page by page) */
	l = pt_loc(&h->pt, s, &dp);
	r = dev_by_id(h, l) ? 0 : where_locked(h, s, e, &l);
	if (!r) {
		*loc = l;
		*dev_off = 0;
		if (l > 0 && dev_by_id(h, l)) {
			pt_loc(&h->pt, s, &dp);
			*dev_off = devmem_off(dev_by_id(h, l), dp);
		}
	}
	ctx_unlock(h);
	return r;
}
