// SPDX-License-Identifier: MIT
/*
 * System pages kept populated for reuse.  A page coming back from a
 * device-private memory needs a system page to land in; allocating it at
 * fault time pays the VM's first-touch cost, one page at a time.  The pool
 * is a region of our own, populated in bulk (huge pages where it can), from
 * which a fault takes the window it needs: the driver copies into it, and
 * UFFDIO_MOVE hands the pages to the program without another copy.  When it
 * is used up, the holes are populated again in one call.  Without
 * UFFDIO_MOVE the pool is a bounce buffer that UFFDIO_COPY copies from.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>

#include "internal.h"

#define POOL_MIN BLOCK_SIZE		/* one whole huge page at least */

static size_t pool_size(const struct uhmm *h)
{
	size_t want = h->opts.pool_bytes;

	if (want == SIZE_MAX)
		return 0;
	want = (want + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1);
	return want < POOL_MIN ? POOL_MIN : want;
}

static int pool_map(struct uhmm *h)
{
	size_t size = pool_size(h);

	/* mapped at the first fault that needs it, on a library thread:
	 * never in a hole of the program's */
	h->pool.base = mem_map(size, BLOCK_SIZE);
	if (!h->pool.base)
		return -ENOMEM;
	madvise(h->pool.base, size, MADV_HUGEPAGE);
	h->pool.size = size;
	h->pool.next = size;		/* populated at first use */
	return 0;
}

void pool_fini(struct uhmm *h)
{
	if (h->pool.base)
		mem_unmap(h->pool.base, h->pool.size);
	h->pool.base = NULL;
}

/*
 * len bytes of populated pages, congruent with `at` modulo 2 MiB where len
 * allows (so whole huge pages move), or NULL: the caller stages its own.
 * With h->lock held; give them back with pool_put.
 */
char *pool_take(struct uhmm *h, size_t len, uintptr_t at)
{
	size_t align = len >= BLOCK_SIZE ? BLOCK_SIZE : PAGE_SIZE, off, want;
	bool move = h->feat & UHMM_FEAT_MOVE;

	if (!h->pool.base && (!pool_size(h) || pool_map(h)))
		return NULL;
	if (len > h->pool.size)
		return NULL;
	if (!move) {
		/* COPY leaves the pages in place: one bounce buffer */
		if (h->pool.out)
			return NULL;
		if (h->pool.next) {
			if (madvise(h->pool.base, h->pool.size, MADV_POPULATE_WRITE))
				return NULL;
			h->pool.next = 0;
		}
		h->pool.out++;
		return h->pool.base;
	}
	/* the first offset from next congruent with at */
	want = at & (align - 1);
	off = h->pool.next + ((want - h->pool.next) & (align - 1));
	if (off + len > h->pool.size) {
		if (h->pool.out)
			return NULL;
		/* populate the holes the last round left, in one call */
		if (madvise(h->pool.base, h->pool.size, MADV_POPULATE_WRITE))
			return NULL;
		h->pool.next = 0;
		off = want;
		if (off + len > h->pool.size)
			return NULL;
	}
	h->pool.next = off + len;
	h->pool.out++;
	return h->pool.base + off;
}

void pool_put(struct uhmm *h, char *p)
{
	(void)p;
	h->pool.out--;
}

bool pool_owns(const struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uintptr_t b = (uintptr_t)h->pool.base;

	return b && start < b + h->pool.size && end > b;
}
