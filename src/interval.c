// SPDX-License-Identifier: MIT
/*
 * Intervals: a mirror's finer sequence counts, as mmu_interval_notifier
 * gives a kernel driver one per range.  An invalidation makes odd, until
 * its change is complete, only the counts of the intervals it overlaps, so that a
 * driver faulting one range is not sent back to read_begin by churn in
 * another.  Inserting an interval also tells the mirror that the device
 * may hold translations there: it hears invalidations of that range from
 * then on, whether or not range_fault has answered for it.
 */
#define _GNU_SOURCE
#include <errno.h>

#include "mirror.h"

static bool overlaps(const struct uhmm_interval *iv, uintptr_t start, uintptr_t end)
{
	return start < iv->end && end > iv->start;
}

void intervals_open(struct uhmm_mirror *m, uintptr_t start, uintptr_t end)
{
	for (struct uhmm_interval *iv = m->intervals; iv; iv = iv->next)
		if (overlaps(iv, start, end))
			seqcount_open(&iv->sc);
}

bool intervals_close(struct uhmm_mirror *m)
{
	bool woke = false;

	for (struct uhmm_interval *iv = m->intervals; iv; iv = iv->next)
		woke |= seqcount_close(&iv->sc);
	return woke;
}

static void interval_free(struct uhmm_interval *iv)
{
	seqcount_fini(&iv->sc);
	mem_free(iv);
}

void intervals_free(struct uhmm_mirror *m)
{
	while (m->intervals) {
		struct uhmm_interval *iv = m->intervals;

		m->intervals = iv->next;
		interval_free(iv);
	}
}

/* The mirror may hold translations of [start, end) from now on. */
void mirror_widen(struct uhmm_mirror *m, uintptr_t start, uintptr_t end)
{
	if (m->lo >= m->hi) {
		m->lo = start;
		m->hi = end;
		return;
	}
	if (start < m->lo)
		m->lo = start;
	if (end > m->hi)
		m->hi = end;
}

int uhmm_interval_insert(struct uhmm_mirror *m, uintptr_t start, size_t len,
			 struct uhmm_interval **out)
{
	struct uhmm_interval *iv;
	uintptr_t s, e;
	int r;

	if (!m || !out)
		return -EINVAL;
	r = range_pages((const void *)start, len, &s, &e);
	if (r)
		return r;
	iv = mem_alloc(sizeof(*iv));
	if (!iv)
		return -ENOMEM;
	iv->m = m;
	iv->start = s;
	iv->end = e;
	seqcount_init(&iv->sc);
	ctx_lock(m->h);
	if (m->released) {
		ctx_unlock(m->h);
		interval_free(iv);
		return -ENODEV;
	}
	iv->next = m->intervals;
	m->intervals = iv;
	mirror_widen(m, s, e);
	ctx_unlock(m->h);
	*out = iv;
	return 0;
}

/* Waits for a running callback, like uhmm_mirror_close. */
void uhmm_interval_remove(struct uhmm_interval *iv)
{
	struct uhmm *h;

	if (!iv)
		return;
	h = iv->m->h;
	ctx_lock(h);
	for (struct uhmm_interval **pp = &iv->m->intervals; *pp; pp = &(*pp)->next) {
		if (*pp == iv) {
			*pp = iv->next;
			break;
		}
	}
	ctx_unlock(h);
	interval_free(iv);
}

uint64_t uhmm_interval_read_begin(struct uhmm_interval *iv)
{
	return iv ? seqcount_begin(&iv->sc) : 0;
}

bool uhmm_interval_read_retry(struct uhmm_interval *iv, uint64_t seq)
{
	if (!iv)
		return true;
	return iv->m->released || retry_note(iv->m->h, atomic_load(&iv->sc.seq) != seq);
}
