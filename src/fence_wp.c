// SPDX-License-Identifier: MIT
/*
 * The write-protect fence, for kernels without MREMAP_DONTUNMAP (or with
 * UHMM_DISABLE=remap_fence): writers wait in userfaultfd write-protect
 * faults while readers go on reading; populated pages are copied with
 * pwrite/pread on the device's file (a range unmapped under us gives
 * EFAULT, never a crash), then the mapping is replaced in one call.
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

static void fence_on(struct uhmm *h, struct batch *b)
{
	size_t len = b->end - b->start;

	fence_track(h, b);
	if (!b->src) {
		if (h->feat & UHMM_FEAT_WP)
			uffd_wp(h, b->start, len, true);
	} else if (h->feat & UHMM_FEAT_WP_SHMEM) {
		uffd_wp(h, b->start, len, true);
	} else if (h->feat & UHMM_FEAT_MINOR_SHMEM) {
		/* no WP on shmem: drop the PTEs, every access becomes a MINOR
		 * fault that waits for us */
		mm_zap(h, b->start, len);
	}
}

/* Abandon the fence over [start, end) of a batch that keeps its pages. */
static void fence_off(struct uhmm *h, struct batch *b, uintptr_t start, uintptr_t end)
{
	if (start >= end)
		return;
	if ((!b->src && (h->feat & UHMM_FEAT_WP)) ||
	    (b->src && (h->feat & UHMM_FEAT_WP_SHMEM)))
		uffd_wp(h, start, end - start, false);
	uffd_wake(h, start, end - start);
}

static int copy_in(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		   const struct request *rq, size_t *zero)
{
	int r = 0;

	/* b->present holds what had data before the fence went up; add
	 * what was populated since (markers of empty fenced pages excluded) */
	if (!b->src) {
		r = pagemap_present(h, b->start, b->n, b->present, false);
		if (r)
			return r;
	} else {
		memset(b->present, 1, b->n);
	}
	for (size_t i = 0; i < b->n && !r;) {
		size_t k = run_len(b->ddst, b->present, i, b->n);
		size_t len = k << PAGE_SHIFT;
		char *view = d->view + ((size_t)b->ddst[i] << PAGE_SHIFT);

		if (rq->flags & UHMM_MIGRATE_DISCARD) {
			/* contents need not survive: nothing to copy, but
			 * device memory used before holds another range's
			 * bytes, which must not show here */
			zero_run(d, b->ddst[i], k);
		} else if (!b->present[i]) {
			zero_run(d, b->ddst[i], k);
			*zero += k;
		} else if (!b->src) {
			r = write_all(d->fd, (void *)va(b, i), len, devmem_off(d, b->ddst[i]));
			COUNT(h, d, bytes_copied, len);
		} else {
			/* device to device, one run of the source at a time */
			for (size_t j = i; j < i + k && !r;) {
				size_t m = run_len(b->dsrc, NULL, j, i + k);

				r = read_all(b->src->fd, view + ((j - i) << PAGE_SHIFT),
					     m << PAGE_SHIFT, devmem_off(b->src, b->dsrc[j]));
				j += m;
			}
			COUNT(h, d, bytes_copied, len);
		}
		i += k;
	}
	return r;
}

int batch_to_dev(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
			const struct request *rq)
{
	size_t zero = 0, n, done;
	bool cut;
	int r;

	memset(b->present, 0, b->n);
	if (!b->src && (r = pagemap_present(h, b->start, b->n, b->present, true)))
		return r;
	r = reserve_batch(h, d, b, rq, &cut);
	if (r)
		return r;
	n = b->n;
	fence_on(h, b);
	r = copy_in(h, d, b, rq, &zero);
	/* never map device memory over what the program put there since */
	if (!r && fence_broken(h))
		r = -EAGAIN;
	for (done = 0; !r && done < n;) {
		size_t k = run_len(b->ddst, NULL, done, n);
		bool stray;

		r = install_run(h, d, va(b, done), b->ddst[done], k, b->prot);
		if (r)
			break;
		stray = landed_stray(h);
		commit(h, b, done, k, d, stray);
		done += k;
		if (stray) {
			r = -EAGAIN;
			break;
		}
	}
	if (r) {
		for (size_t i = done; i < n; i++)
			devmem_free(d, b->ddst[i]);
		fence_off(h, b, va(b, done), b->end);
		uffd_wake(h, b->start, b->end - b->start);
		fence_end(h);
		COUNT(h, d, pages_to_dev, done);
		return r;
	}
	/* counted before the wake: the threads it wakes may look at once */
	r = finish_to_dev(h, d, rq, n, zero, cut);
	uffd_wake(h, b->start, b->end - b->start);
	return r;
}

int batch_to_sys(struct uhmm *h, struct batch *b, const struct request *rq)
{
	size_t len = b->end - b->start;
	bool discard = rq->flags & UHMM_MIGRATE_DISCARD;
	char *st;
	int r = 0;

	fence_on(h, b);
	st = stage_alloc(h, b->start, len, !discard);
	if (!st) {
		fence_off(h, b, b->start, b->end);
		fence_end(h);
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n && !discard && !r;) {
		size_t k = run_len(b->dsrc, NULL, i, b->n);

		r = read_all(b->src->fd, st + (i << PAGE_SHIFT), k << PAGE_SHIFT,
			     devmem_off(b->src, b->dsrc[i]));
		i += k;
	}
	if (!r && !discard)
		COUNT(h, b->src, bytes_copied, len);
	if (!r)
		r = stage_into_place(h, b, st);
	if (r) {
		arena_put(h, st);
		fence_off(h, b, b->start, b->end);
		fence_end(h);
		return r;
	}
	return finish_to_sys(h, b, rq);
}
