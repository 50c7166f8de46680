// SPDX-License-Identifier: MIT
/*
 * Device pages going home: eviction of the least recently used chunk when a
 * device is full, and everything at uhmm_dev_remove/uhmm_close.  Pages are
 * sent home in runs of consecutive addresses, each a migration of its own.
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
#include "trace.h"

/* Heapsort: qsort may take its scratch space from the heap (see vma.c). */
static void sift(uintptr_t *a, size_t i, size_t n)
{
	for (;;) {
		size_t c = 2 * i + 1;
		uintptr_t t;

		if (c >= n)
			return;
		if (c + 1 < n && a[c + 1] > a[c])
			c++;
		if (a[i] >= a[c])
			return;
		t = a[i];
		a[i] = a[c];
		a[c] = t;
		i = c;
	}
}

void sort_addrs(uintptr_t *a, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift(a, i, n);
	for (size_t k = n; k-- > 1;) {
		uintptr_t t = a[0];

		a[0] = a[k];
		a[k] = t;
		sift(a, 0, k);
	}
}

/* Send the pages at the given addresses home, in runs. */
static int send_home(struct uhmm *h, struct uhmm_dev *d, uintptr_t *vas, size_t n)
{
	uintptr_t save_s, save_e;
	int r = 0;

	pthread_mutex_lock(&h->q.lock);
	save_s = h->fence_start;
	save_e = h->fence_end;
	pthread_mutex_unlock(&h->q.lock);

	sort_addrs(vas, n);
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		int rr;

		while (k < n && vas[k] == vas[k - 1] + PAGE_SIZE)
			k++;
		/* private pages need no look at the mapping: they only fill
		 * empty page-table entries, whatever the protection */
		if (d->kind == UHMM_MEM_PRIVATE)
			rr = private_home(h, vas[i], vas[k - 1] + PAGE_SIZE, 0, NULL);
		else
			rr = migrate_range(h, vas[i], vas[k - 1] + PAGE_SIZE, NULL, MIGRATE_HOME,
					   NULL);
		if (rr && !r)
			r = rr;
		i = k;
	}
	pthread_mutex_lock(&h->q.lock);
	h->fence_start = save_s;
	h->fence_end = save_e;
	pthread_mutex_unlock(&h->q.lock);
	return r;
}

/* Evict one chunk to system memory (duplicates are dropped); returns the
 * pages it freed, or -errno. */
int evict_chunk(struct uhmm *h, struct uhmm_dev *d, long c)
{
	uintptr_t vas[BLOCK_PAGES];
	struct trace_why why = trace_why;
	size_t n = 0, dups = 0;
	int r;

	for (uint32_t i = 0; i < d->chunk_pages; i++) {
		size_t p = (size_t)c * d->chunk_pages + i;

		if (p >= d->npages || !d->owner[p])
			continue;
		/* a duplicate is a copy: dropped, not sent anywhere */
		if (d->pflags[p] & DP_DUP) {
			dup_drop_dev_page(h, d, p);
			dups++;
		} else {
			vas[n++] = d->owner[p];
		}
	}
	trace_why.evicting = true;
	r = send_home(h, d, vas, n);
	trace_restore(why);
	if (r < 0 && d->chunk_key[c])
		return r;
	COUNT(h, d, evictions, n);
	return n + dups;
}

int dev_pages_to_sys(struct uhmm *h, struct uhmm_dev *d)
{
	uintptr_t *vas = mem_alloc((d->used_pages + d->quar_pages) * sizeof(*vas) + 1);
	size_t n = 0;
	int r;

	if (!vas)
		return -ENOMEM;
	for (size_t p = 0; p < d->npages; p++) {
		if (!d->owner[p])
			continue;
		if (d->pflags[p] & DP_DUP)
			dup_drop_dev_page(h, d, p);
		else
			vas[n++] = d->owner[p];
	}
	r = send_home(h, d, vas, n);
	mem_free(vas);
	return r;
}

/* Every run of pages the page table still places on d, gathered first:
 * letting go of a page may free its block. */
static size_t runs_on(struct uhmm *h, struct uhmm_dev *d, uintptr_t **out)
{
	struct pagetable *pt = &h->pt;
	uintptr_t *runs = NULL;
	size_t n = 0, cap = 0;

	for (size_t k = 0; k < pt->nbucket; k++) {
		for (struct vblock *b = pt->bucket[k]; b; b = b->next) {
			for (size_t i = 0; i < BLOCK_PAGES; i++) {
				size_t j = i;

				if (b->loc[i] != d->id)
					continue;
				while (j < BLOCK_PAGES && b->loc[j] == d->id)
					j++;
				if (n + 2 > cap) {
					uintptr_t *r = mem_realloc(runs, (cap ? 2 * cap : 64) * sizeof(*r));

					if (!r)
						break;
					runs = r;
					cap = cap ? 2 * cap : 64;
				}
				runs[n++] = b->base + (i << PAGE_SHIFT);
				runs[n++] = (j - i) << PAGE_SHIFT;
				i = j;
			}
		}
	}
	*out = runs;
	return n / 2;
}

static void let_go(struct uhmm *h, uintptr_t a, size_t len)
{
	uffd_unregister(h, a, len);
	for (uintptr_t e = a + len; a < e; a += PAGE_SIZE)
		pt_unmanage(&h->pt, a);
}

/*
 * What still names d once its pages went home: a COHERENT page whose
 * mapping cannot be replaced (mseal'd), a discarded page nothing settled.
 * Their data stays in the device's file, which their mapping keeps.  The
 * context lets go of them - the kernel serves their faults from that file
 * from now on - so that the next device given d's id inherits nothing.
 * Returns how many pages of data were let go.
 */
size_t dev_let_go(struct uhmm *h, struct uhmm_dev *d)
{
	uintptr_t *runs = NULL;
	size_t n = runs_on(h, d, &runs), pages = 0;

	for (size_t i = 0; i < n; i++) {
		let_go(h, runs[2 * i], runs[2 * i + 1]);
		pages += runs[2 * i + 1] >> PAGE_SHIFT;
	}
	mem_free(runs);
	for (size_t i = 0; i < h->nquar; i++)
		if (h->quar[i].dev == d->id)
			let_go(h, h->quar[i].va, (size_t)h->quar[i].n << PAGE_SHIFT);
	quar_drop_dev(h, d);
	return pages;
}

int uhmm_dev_evict(struct uhmm_dev *dev, size_t bytes)
{
	struct uhmm *h;
	int r = 0;

	if (!dev || bytes > dev->size)
		return -EINVAL;
	h = dev->h;
	ctx_lock(h);
	events_drain(h);
	if (((dev->npages - dev->used_pages - dev->quar_pages) << PAGE_SHIFT) < bytes)
		quar_reclaim(h, dev);
	while (((dev->npages - dev->used_pages) << PAGE_SHIFT) < bytes) {
		long c = devmem_lru_chunk(dev, 0, 0);

		if (c < 0 || evict_chunk(h, dev, c) <= 0) {
			r = -ENOMEM;
			break;
		}
	}
	ctx_unlock(h);
	return r;
}
