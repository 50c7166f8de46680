// SPDX-License-Identifier: MIT
/*
 * The remap fence.  Where the kernel has MREMAP_DONTUNMAP (5.7 anonymous,
 * 5.13 shared), a batch's page tables are moved out of the program's range
 * in one call: the range stays mapped but empty, registered so that every
 * access waits in a userfaultfd fault (MISSING for system pages, MINOR for
 * device pages) until the new pages are in place.  The copy then reads
 * memory no other thread can reach (plain memcpy, no munmap race), device
 * page tables go back to the device's view instead of being freed and
 * rebuilt, and the old system pages are freed by the worker.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "migrate.h"

bool src_contiguous(const struct batch *b)
{
	for (size_t i = 1; i < b->n; i++)
		if (b->dsrc[i] != b->dsrc[0] + i)
			return false;
	return true;
}

/* Device page tables come home to the device's view; the program's range
 * is left empty.  Returns the view address of the batch, or NULL. */
static char *take_device_ptes(struct uhmm *h, struct batch *b)
{
	size_t len = b->end - b->start;
	char *v = view_of(b->src, b->dsrc[0]);

	/* the device's mapping, or the program replaced it since we looked:
	 * its pages are not ours to take */
	if (fence_broken(h) || !still_dev_map(h, b)) {
		errno = EAGAIN;
		return NULL;
	}
	if (mm_move_keep(h, b->start, len, (uintptr_t)v) == MAP_FAILED) {
		int e = errno;

		/* a failed MREMAP_FIXED may already have unmapped its
		 * destination: our view must not keep a hole */
		if (mmap(v, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 b->src->fd, devmem_off(b->src, b->dsrc[0])) == MAP_FAILED)
			abort();
		errno = e;
		return NULL;
	}
	/* the registration and protection travelled with the page tables
	 * (the protection as it is now: the program may have changed it
	 * since we looked): the view is ours, unregistered and writable */
	uffd_unregister(h, (uintptr_t)v, len);
	mprotect(v, len, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < b->n; i++)
		b->src->pflags[b->dsrc[i]] |= DP_VIEW_PTE;
	return v;
}

/* Copy one run of the batch into device memory, from memory of ours. */
static int fill_run(struct uhmm_dev *d, uint32_t dp, const char *src, size_t len)
{
	bool view = true;

	for (size_t k = 0; k < (len >> PAGE_SHIFT) && view; k++)
		view = d->pflags[dp + k] & DP_VIEW_PTE;
	if (view) {
		memcpy(view_of(d, dp), src, len);
		return 0;
	}
	return write_all(d->fd, src, len, devmem_off(d, dp));
}

static int copy_from(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		     const char *src, const struct request *rq, size_t *zero)
{
	int r = 0;

	for (size_t i = 0; i < b->n && !r;) {
		size_t k = run_len(b->ddst, b->present, i, b->n);

		if (rq->flags & UHMM_MIGRATE_DISCARD) {
			/* contents need not survive: nothing to copy, but
			 * device memory used before holds another range's
			 * bytes, which must not show here */
			zero_run(d, b->ddst[i], k);
		} else if (!b->present[i]) {
			zero_run(d, b->ddst[i], k);
			*zero += k;
		} else {
			r = fill_run(d, b->ddst[i], src + (i << PAGE_SHIFT), k << PAGE_SHIFT);
			COUNT(h, d, bytes_copied, k << PAGE_SHIFT);
		}
		i += k;
	}
	return r;
}

int batch_to_dev_remap(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
			      const struct request *rq)
{
	size_t zero = 0, n, len;
	char *src = NULL;
	bool cut;
	int r;

	r = reserve_batch(h, d, b, rq, &cut);
	if (r)
		return r;
	n = b->n;
	len = n << PAGE_SHIFT;
	fence_track(h, b);
	if (!b->src) {
		r = sys_pages_out(h, b, &src);
	} else {
		memset(b->present, 1, n);
		src = take_device_ptes(h, b);
		if (!src)
			r = -errno;
	}
	if (!r)
		r = copy_from(h, d, b, src, rq, &zero);
	if (!r && fence_broken(h))
		r = -EAGAIN;
	for (size_t i = 0; !r && i < n;) {
		size_t k = run_len(b->ddst, NULL, i, n);

		r = install_run(h, d, va(b, i), b->ddst[i], k, b->prot);
		i += k;
	}
	if (r) {
		/* put back what we took: the range is empty, nothing moved */
		if (!b->src) {
			sys_pages_back(h, b, src);
		} else {
			if (src)
				dev_pages_back(h, b);
			else
				uffd_register(h, b->start, len, true);
		}
		for (size_t i = 0; i < n; i++)
			devmem_free(d, b->ddst[i]);
		uffd_wake(h, b->start, len);
		fence_end(h);
		return r;
	}
	commit(h, b, 0, n, d, landed_stray(h));
	if (!b->src)
		sys_pages_drop(h, b, src);
	/* counted before the wake: the threads it wakes may look at once */
	r = finish_to_dev(h, d, rq, n, zero, cut);
	uffd_wake(h, b->start, len);
	return r;
}

int batch_to_sys_remap(struct uhmm *h, struct batch *b, const struct request *rq)
{
	size_t len = b->end - b->start;
	bool discard = rq->flags & UHMM_MIGRATE_DISCARD;
	char *st, *v;
	int r = 0;

	/* the costly part, fresh system memory, before anything waits */
	st = stage_alloc(h, b->start, len, !discard);
	if (!st)
		return -ENOMEM;
	fence_track(h, b);
	v = take_device_ptes(h, b);
	if (!v)
		r = -errno;
	if (!r && !discard) {
		memcpy(st, v, len);
		COUNT(h, b->src, bytes_copied, len);
	}
	if (!r)
		r = stage_into_place(h, b, st);
	if (r) {
		arena_put(h, st);
		if (v)
			dev_pages_back(h, b);
		uffd_wake(h, b->start, len);
		fence_end(h);
		return r;
	}
	return finish_to_sys(h, b, rq);
}
