// SPDX-License-Identifier: MIT
/*
 * Device pages the program discarded while its mapping still names them.
 *
 * MADV_DONTNEED of COHERENT pages zaps their PTEs, but the program's
 * mapping still maps the device's file at those offsets; the pages must
 * read as zeros from now on, and their device memory is freed.  Mapping
 * zeros over them at once cannot be done safely: the event is applied
 * after madvise has returned, and the program may have unmapped the range
 * and mapped new memory there since (glibc trims a heap, then deletes it),
 * which a MAP_FIXED of ours would destroy.
 *
 * So the pages become system pages in our page table - the next access
 * faults (MINOR, or MISSING after MADV_REMOVE) and finds a stranger in a
 * device mapping, which is replaced by zeros then, at an address the
 * faulting thread is using - and their device pages are freed in the
 * device's counts but kept here, out of the allocator's reach, for as long
 * as an address may still name them: until that replacement, the range's
 * munmap, or a migration or eviction that settles the mapping.  Until then
 * no other range's data can appear there, and a fork child gets zeros.
 *
 * Runs of consecutive addresses on consecutive device pages, unsorted, all
 * under h->lock.  At most QUAR_MAX_RUNS: past that the caller replaces the
 * pages at once, as before (the old race, for that many scattered runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "internal.h"

#define QUAR_MAX_RUNS 16384

static uintptr_t run_end(const struct quar_run *q)
{
	return q->va + ((uintptr_t)q->n << PAGE_SHIFT);
}

/* Room for two more runs: a split made while releasing needs one. */
static int reserve(struct uhmm *h)
{
	struct quar_run *q;
	size_t cap;

	if (h->nquar + 2 <= h->quar_cap)
		return 0;
	if (h->quar_cap >= QUAR_MAX_RUNS)
		return -ENOSPC;
	cap = h->quar_cap ? 2 * h->quar_cap : 64;
	q = mem_realloc(h->quar, cap * sizeof(*q));
	if (!q)
		return -ENOMEM;
	h->quar = q;
	h->quar_cap = cap;
	return 0;
}

int quar_add(struct uhmm *h, struct uhmm_dev *d, uintptr_t va, uint32_t dp)
{
	struct quar_run *last = h->nquar ? &h->quar[h->nquar - 1] : NULL;
	int r;

	if (last && last->dev == d->id && run_end(last) == va && last->p0 + last->n == dp) {
		last->n++;
		devmem_quarantine(d, dp);
		return 0;
	}
	r = reserve(h);
	if (r)
		return r;
	h->quar[h->nquar++] = (struct quar_run){ va, dp, 1, d->id };
	devmem_quarantine(d, dp);
	return 0;
}

static void release(struct uhmm *h, const struct quar_run *q, uintptr_t s, uintptr_t e)
{
	struct uhmm_dev *d = dev_by_id(h, q->dev);

	for (uintptr_t a = s; d && a < e; a += PAGE_SIZE)
		devmem_release(d, q->p0 + (uint32_t)((a - q->va) >> PAGE_SHIFT));
}

static void drop(struct uhmm *h, size_t i)
{
	h->quar[i] = h->quar[--h->nquar];
}

/*
 * Run i split at address at (inside it): the part from at becomes a run of
 * its own at the end.  False if there is no room for it.
 */
static bool split(struct uhmm *h, size_t i, uintptr_t at)
{
	struct quar_run *q = &h->quar[i];
	uint32_t k = (uint32_t)((at - q->va) >> PAGE_SHIFT);

	if (h->nquar == h->quar_cap && reserve(h))
		return false;
	q = &h->quar[i];
	h->quar[h->nquar++] = (struct quar_run){ at, q->p0 + k, q->n - k, q->dev };
	q->n = k;
	return true;
}

/*
 * Cut every run at s and e, so that each lies wholly inside [s, e) or
 * outside it.  A run that cannot be cut (no memory) is released whole:
 * its pages read zeros anyway, the one loss is that the addresses outside
 * [s, e) lose the guard.
 */
static void cut(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	for (size_t i = 0; i < h->nquar; i++) {
		struct quar_run q = h->quar[i];
		bool ok = true;

		if (q.va < s && run_end(&q) > s)
			ok = split(h, i, s);
		q = h->quar[i];
		if (ok && q.va < e && run_end(&q) > e)
			ok = split(h, i, e);
		if (!ok) {
			release(h, &q, q.va, run_end(&q));
			drop(h, i--);
		}
	}
}

/* The addresses [s, e) no longer name what they did: freed for good. */
void quar_end(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	if (!h->nquar)
		return;
	cut(h, s, e);
	for (size_t i = 0; i < h->nquar; i++) {
		struct quar_run *q = &h->quar[i];

		if (q->va >= s && run_end(q) <= e) {
			release(h, q, q->va, run_end(q));
			drop(h, i--);
		}
	}
}

/* mremap moved [from, from + len) to to: the file offsets went with it. */
void quar_move(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len)
{
	if (!h->nquar)
		return;
	/* whatever was quarantined at the new addresses is gone */
	quar_end(h, to, to + len);
	cut(h, from, from + len);
	for (size_t i = 0; i < h->nquar; i++) {
		struct quar_run *q = &h->quar[i];
		struct uhmm_dev *d = dev_by_id(h, q->dev);

		if (q->va < from || run_end(q) > from + len)
			continue;
		q->va = q->va - from + to;
		/* eviction finds the pages' addresses there */
		for (uint32_t k = 0; d && k < q->n; k++)
			d->owner[q->p0 + k] = q->va + ((uintptr_t)k << PAGE_SHIFT);
	}
}

/* Does the program's mapping still name run q's device pages? */
static bool still_named(struct uhmm *h, const struct quar_run *q)
{
	struct uhmm_dev *d = dev_by_id(h, q->dev);
	struct vma *vv = NULL;
	size_t n = 0;
	bool named;

	if (!d || vma_scan(h, q->va, run_end(q), &vv, &n))
		return false;
	named = n > 0;
	for (size_t i = 0; i < n && named; i++) {
		const struct vma *v = &vv[i];

		named = v->kind == VMA_DEV && v->dev == d &&
			v->pgoff == devmem_off(d, q->p0 + (uint32_t)((v->start - q->va) >> PAGE_SHIFT));
	}
	mem_free(vv);
	return named;
}

/*
 * d needs room: every page of it discarded gets it back, replaced by zeros
 * where the mapping still names it.  This changes the program's mapping
 * from here, as a migration does: only a munmap and mmap racing the
 * check can be hit, not a munmap that came before.
 */
void quar_reclaim(struct uhmm *h, struct uhmm_dev *d)
{
	size_t i = 0;

	while (i < h->nquar) {
		struct quar_run q = h->quar[i];

		if (q.dev != d->id) {
			i++;
			continue;
		}
		/* either way run i goes, and another takes its place */
		if (!still_named(h, &q) || replace_with_zero(h, q.va, run_end(&q)))
			quar_end(h, q.va, run_end(&q));
	}
}

/* A device going away: nothing of it is handed out again. */
void quar_drop_dev(struct uhmm *h, struct uhmm_dev *d)
{
	for (size_t i = 0; i < h->nquar; i++) {
		if (h->quar[i].dev != d->id)
			continue;
		release(h, &h->quar[i], h->quar[i].va, run_end(&h->quar[i]));
		drop(h, i--);
	}
}

void quar_fini(struct uhmm *h)
{
	mem_free(h->quar);
	h->quar = NULL;
	h->nquar = h->quar_cap = 0;
}
