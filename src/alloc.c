// SPDX-License-Identifier: MIT
/*
 * uhmm_alloc/uhmm_free/uhmm_unmanage.  Memory from uhmm_alloc is managed
 * from birth and holds no one else's data in its pages; on a COHERENT
 * device it is bound to zeroed device memory at once, so the first CPU
 * write lands on the device with no copy and no migration later.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "compat.h"
#include "internal.h"
#include "trace.h"

static void *map_aligned(size_t len, size_t align)
{
	char *raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t s;

	if (raw == MAP_FAILED)
		return NULL;
	s = ((uintptr_t)raw + align - 1) & ~(align - 1);
	if (s > (uintptr_t)raw)
		munmap(raw, s - (uintptr_t)raw);
	munmap((char *)s + len, (uintptr_t)raw + align - s);
	return (void *)s;
}

/* With h->lock held: the block and everything we knew of it, gone. */
static void unmap_alloc(struct uhmm *h, uintptr_t start, size_t len)
{
	mirror_invalidate(h, start, start + len, UHMM_EV_UNMAP, 0);
	forget_range(h, start, start + len);
	advice_forget(h, start, start + len);
	policy_forget(h, start, start + len);
	expect_add(h, UFFD_EVENT_UNMAP, start, start + len, 0);
	munmap((void *)start, len);
	expect_clear(h);
}

void *uhmm_alloc(struct uhmm *h, size_t size, struct uhmm_dev *dev, unsigned flags)
{
	struct allocation *a;
	struct trace_why why;
	size_t len, align;
	void *p;
	int r;

	if (!h || !size || flags || (dev && dev->h != h) || size > (SIZE_MAX >> 2)) {
		errno = EINVAL;
		return NULL;
	}
	len = page_up(size);
	align = size >= BLOCK_SIZE ? BLOCK_SIZE : PAGE_SIZE;
	if (dev && dev->granule > align)
		align = dev->granule;
	a = mem_alloc(sizeof(*a));
	p = a ? map_aligned(len, align) : NULL;
	if (!p) {
		mem_free(a);
		errno = ENOMEM;
		return NULL;
	}
	why = trace_because(UHMM_CAUSE_ALLOC);
	ctx_lock(h);
	events_drain(h);
	r = manage_range(h, (uintptr_t)p, (uintptr_t)p + len);
	if (!r && dev)
		r = migrate_range(h, (uintptr_t)p, (uintptr_t)p + len, dev, 0, NULL);
	if (!r) {
		a->start = (uintptr_t)p;
		a->len = len;
		a->next = h->allocs;
		h->allocs = a;
	} else {
		/* what was managed of it before the failure goes with it */
		unmap_alloc(h, (uintptr_t)p, len);
	}
	ctx_unlock(h);
	trace_restore(why);
	if (r) {
		mem_free(a);
		errno = -r;
		return NULL;
	}
	return p;
}

int uhmm_free(struct uhmm *h, void *p)
{
	struct allocation **pp, *a = NULL;

	if (!h || !p)
		return -EINVAL;
	ctx_lock(h);
	events_drain(h);
	for (pp = &h->allocs; *pp; pp = &(*pp)->next) {
		if ((*pp)->start == (uintptr_t)p) {
			a = *pp;
			*pp = a->next;
			break;
		}
	}
	if (a)
		unmap_alloc(h, a->start, a->len);
	ctx_unlock(h);
	mem_free(a);
	return a ? 0 : -EINVAL;
}

int uhmm_unmanage(struct uhmm *h, void *addr, size_t len)
{
	struct trace_why why;
	uintptr_t s, e;
	int r;

	if (!h)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (r)
		return r;
	why = trace_because(UHMM_CAUSE_UNMANAGE);
	ctx_lock(h);
	events_drain(h);
	r = migrate_range(h, s, e, NULL, 0, NULL);
	if (!r) {
		/* no change of the range reaches a mirror after this: the
		 * devices drop it now, as for an unmap */
		mirror_invalidate(h, s, e, UHMM_EV_UNMAP, 0);
		uffd_unregister(h, s, e - s);
		forget_range(h, s, e);
		advice_forget(h, s, e);
		policy_forget(h, s, e);
	}
	ctx_unlock(h);
	trace_restore(why);
	return r;
}
