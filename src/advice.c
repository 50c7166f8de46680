// SPDX-License-Identifier: MIT
/*
 * What the program advised about its ranges (uhmm_advise), and
 * uhmm_range_attr.  Advice is kept as sorted, non-overlapping extents of
 * addresses, each with its preferred location, the devices that access it
 * in place and whether it is read-mostly; a page no extent covers has no
 * advice.  Advice belongs to the addresses: an munmap drops it, an mremap
 * takes it along.  All under h->lock.
 *
 * What advice does lives where it acts: first touch (first_touch.c), the
 * access counters (policy.c), duplicates (dup.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "migrate.h"

static bool no_advice(const struct advice *a)
{
	return a->pref == UHMM_LOC_NONE && !a->accessed_by && !a->read_mostly &&
	       !a->pinned && a->last_prefetch == UHMM_LOC_NONE;
}

static bool same_advice(const struct advice *a, const struct advice *b)
{
	return a->pref == b->pref && a->accessed_by == b->accessed_by &&
	       a->read_mostly == b->read_mostly && a->pinned == b->pinned &&
	       a->last_prefetch == b->last_prefetch;
}

const struct advice advice_none = {
	.pref = UHMM_LOC_NONE, .last_prefetch = UHMM_LOC_NONE,
};

/* Index of the first extent that ends after addr (n if none). */
static size_t first_after(const struct advice_map *am, uintptr_t addr)
{
	size_t lo = 0, hi = am->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (am->ext[mid].end <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct advice *advice_at(struct uhmm *h, uintptr_t addr)
{
	struct advice_map *am = &h->advice;
	size_t i;

	if (!am->n)
		return &advice_none;
	i = first_after(am, addr);
	if (i < am->n && am->ext[i].start <= addr)
		return &am->ext[i];
	return &advice_none;
}

bool advice_any(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	size_t i = first_after(&h->advice, start);

	return i < h->advice.n && h->advice.ext[i].start < end;
}

static int reserve(struct advice_map *am, size_t more)
{
	struct advice *n;
	size_t cap;

	if (am->n + more <= am->cap)
		return 0;
	cap = am->cap ? am->cap * 2 : 16;
	while (cap < am->n + more)
		cap *= 2;
	n = mem_realloc(am->ext, cap * sizeof(*n));
	if (!n)
		return -ENOMEM;
	am->ext = n;
	am->cap = cap;
	return 0;
}

static void insert_at(struct advice_map *am, size_t i, const struct advice *a)
{
	memmove(&am->ext[i + 1], &am->ext[i], (am->n - i) * sizeof(*a));
	am->ext[i] = *a;
	am->n++;
}

/* An extent boundary at addr, so that no extent straddles it. */
static void split_at(struct advice_map *am, uintptr_t addr)
{
	size_t i = first_after(am, addr);
	struct advice right;

	if (i == am->n || am->ext[i].start >= addr)
		return;
	right = am->ext[i];
	right.start = addr;
	am->ext[i].end = addr;
	insert_at(am, i + 1, &right);
}

/* Adjacent extents with the same advice become one; empty ones go. */
static void tidy(struct advice_map *am)
{
	size_t k = 0;

	am->npinned = 0;
	for (size_t i = 0; i < am->n; i++) {
		struct advice *a = &am->ext[i];

		if (no_advice(a))
			continue;
		if (k && am->ext[k - 1].end == a->start && same_advice(&am->ext[k - 1], a)) {
			am->ext[k - 1].end = a->end;
			continue;
		}
		am->ext[k++] = *a;
		am->npinned += a->pinned;
	}
	am->n = k;
}

/*
 * Apply fn to the advice of every page of [start, end): extents are cut
 * at both ends and the gaps filled with extents of no advice first.
 */
int advice_update(struct uhmm *h, uintptr_t start, uintptr_t end,
		  void (*fn)(struct advice *a, const void *arg), const void *arg)
{
	struct advice_map *am = &h->advice;
	uintptr_t at = start;
	size_t i;

	/* at most two cuts and one gap per extent inside, plus one */
	if (reserve(am, am->n + 3))
		return -ENOMEM;
	split_at(am, start);
	split_at(am, end);
	for (i = first_after(am, start); at < end; i++) {
		if (i == am->n || am->ext[i].start > at) {
			struct advice gap = advice_none;

			gap.start = at;
			gap.end = i < am->n && am->ext[i].start < end ? am->ext[i].start : end;
			insert_at(am, i, &gap);
		}
		fn(&am->ext[i], arg);
		at = am->ext[i].end;
	}
	tidy(am);
	return 0;
}

static void clear_one(struct advice *a, const void *arg)
{
	(void)arg;
	*a = (struct advice){ .start = a->start, .end = a->end, .pref = UHMM_LOC_NONE,
			      .last_prefetch = UHMM_LOC_NONE };
}

/* The range is gone (munmap): so is its advice. */
void advice_forget(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	if (advice_any(h, start, end))
		advice_update(h, start, end, clear_one, NULL);
}

/* mremap: the advice of [from, from + len) now describes [to, to + len). */
void advice_move(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len)
{
	struct advice_map *am = &h->advice;
	struct advice *moved;
	size_t n = 0, i;

	advice_forget(h, to, to + len);
	if (!advice_any(h, from, from + len) || reserve(am, 2))
		return;
	split_at(am, from);
	split_at(am, from + len);
	i = first_after(am, from);
	while (i + n < am->n && am->ext[i + n].start < from + len)
		n++;
	moved = mem_alloc(n * sizeof(*moved));
	if (!moved || reserve(am, n)) {
		mem_free(moved);
		return;		/* the advice stays behind: placement, not data */
	}
	for (size_t k = 0; k < n; k++) {
		moved[k] = am->ext[i + k];
		moved[k].start += to - from;
		moved[k].end += to - from;
	}
	advice_forget(h, from, from + len);
	for (size_t k = 0; k < n; k++)
		insert_at(am, first_after(am, moved[k].start), &moved[k]);
	tidy(am);
	mem_free(moved);
}

bool advice_pinned(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	struct advice_map *am = &h->advice;

	if (!am->npinned)
		return false;
	for (size_t i = first_after(am, start); i < am->n && am->ext[i].start < end; i++)
		if (am->ext[i].pinned)
			return true;
	return false;
}

bool advice_first_touch_dev(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	struct advice_map *am = &h->advice;

	for (size_t i = first_after(am, start); i < am->n && am->ext[i].start < end; i++) {
		struct uhmm_dev *d = dev_by_id(h, am->ext[i].pref);

		if (d && d->kind == UHMM_MEM_COHERENT && !am->ext[i].read_mostly)
			return true;
	}
	return false;
}

static void prefetched(struct advice *a, const void *arg)
{
	a->last_prefetch = *(const int *)arg;
}

/* uhmm_range_attr's last_prefetch */
void note_prefetch(struct uhmm *h, uintptr_t start, uintptr_t end, struct uhmm_dev *to)
{
	int loc = to ? to->id : UHMM_LOC_SYSTEM;

	advice_update(h, start, end, prefetched, &loc);
}

void advice_fini(struct uhmm *h)
{
	mem_free(h->advice.ext);
	h->advice.ext = NULL;
	h->advice.n = h->advice.cap = 0;
}

/* ---- uhmm_range_attr -------------------------------------------------------- */

int uhmm_range_attr(struct uhmm *h, const void *addr, size_t len, struct uhmm_range_attr *a)
{
	struct uhmm_range_attr out = { 0 };
	const struct advice *first;
	uintptr_t s, e;
	size_t n;
	int r;

	if (!h || !a)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (!r)
		r = sz_check(a, a->sz, sizeof(*a));
	if (r)
		return r;
	ctx_lock(h);
	events_drain(h);
	first = advice_at(h, s);
	out.preferred = first->pref;
	out.accessed_by = first->accessed_by;
	out.read_mostly = first->read_mostly;
	out.last_prefetch = first->last_prefetch;
	/* mixed: some page of the range has other advice than the first */
	r = 0;
	for (uintptr_t p = s; p < e && !r;) {
		const struct advice *x = advice_at(h, p);
		size_t i = first_after(&h->advice, p);

		if (!same_advice(x, first))
			r = 1;
		if (x != &advice_none)
			p = x->end;
		else
			p = i < h->advice.n ? h->advice.ext[i].start : e;
	}
	ctx_unlock(h);
	out.sz = a->sz;
	n = sz_of(a->sz, sizeof(out));
	memcpy(a, &out, n < sizeof(out) ? n : sizeof(out));
	return r;
}

/* ---- uhmm_advise ------------------------------------------------------------ */

/* uhmm_pin and uhmm_unpin are advice of our own, beside the program's */
#define ADV_PIN		100
#define ADV_UNPIN	101

struct advise_arg {
	int advice;			/* enum uhmm_advice, or ADV_PIN/UNPIN */
	int id;				/* the device's, or UHMM_LOC_SYSTEM */
};

static void advise_one(struct advice *a, const void *arg)
{
	const struct advise_arg *x = arg;
	uint64_t bit = x->id >= 1 ? 1ull << (x->id - 1) : 0;

	switch (x->advice) {
	case UHMM_ADV_PREFERRED_LOCATION:
		a->pref = x->id;
		break;
	case UHMM_ADV_UNSET_PREFERRED_LOCATION:
		a->pref = UHMM_LOC_NONE;
		break;
	case UHMM_ADV_ACCESSED_BY:
		a->accessed_by |= bit;
		break;
	case UHMM_ADV_UNSET_ACCESSED_BY:
		a->accessed_by &= ~bit;
		break;
	case UHMM_ADV_READ_MOSTLY:
		a->read_mostly = true;
		break;
	case UHMM_ADV_UNSET_READ_MOSTLY:
		a->read_mostly = false;
		break;
	case ADV_PIN:
		a->pinned = true;
		break;
	case ADV_UNPIN:
		a->pinned = false;
		break;
	}
}

static int check_advice(struct uhmm *h, enum uhmm_advice advice, struct uhmm_dev *dev)
{
	if (dev && dev->h != h)
		return -EINVAL;
	switch (advice) {
	case UHMM_ADV_PREFERRED_LOCATION:
	case UHMM_ADV_UNSET_PREFERRED_LOCATION:
	case UHMM_ADV_READ_MOSTLY:
	case UHMM_ADV_UNSET_READ_MOSTLY:
		return 0;
	case UHMM_ADV_ACCESSED_BY:
	case UHMM_ADV_UNSET_ACCESSED_BY:
		return dev ? 0 : -EINVAL;	/* the CPU reaches everything */
	}
	return -EINVAL;
}

/*
 * The range must be memory uhmm could migrate: private anonymous memory,
 * or memory it manages already.  Nothing changes unless all of it is.
 * The advice is recorded, then the anonymous parts become managed and
 * are registered again, so that the faults the advice needs (a first
 * touch on a COHERENT device) reach us.
 */
static int advise_locked(struct uhmm *h, uintptr_t s, uintptr_t e,
			 const struct advise_arg *x)
{
	struct vma *vv = NULL;
	size_t n = 0;
	int r = vma_scan(h, s, e, &vv, &n);

	for (size_t i = 0; !r && i < n; i++)
		r = vma_check_migratable(h, &vv[i]);
	if (!r)
		r = advice_update(h, s, e, advise_one, x);
	for (size_t i = 0; !r && i < n; i++) {
		if (vv[i].kind != VMA_ANON)
			continue;
		r = uffd_register(h, vv[i].start, vv[i].end - vv[i].start, false);
		if (r == -EINVAL || r == -ENOMEM)
			r = -EAGAIN;	/* checked just before: the layout changed */
		if (!r)
			r = pt_manage_run(&h->pt, vv[i].start, vv[i].end);
	}
	mem_free(vv);
	return r;
}

static int advise(struct uhmm *h, void *addr, size_t len, int advice, struct uhmm_dev *dev)
{
	struct advise_arg x = { advice, dev ? dev->id : UHMM_LOC_SYSTEM };
	uintptr_t s, e;
	int r;

	if (!h)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (!r && advice < ADV_PIN)
		r = check_advice(h, advice, dev);
	if (r)
		return r;
	ctx_lock(h);
	events_drain(h);
	/* pinned memory stays where the kernel's DMA reaches it; the range's
	 * mappings are checked first (advise_locked would say it), so that a
	 * hole is -EFAULT before private_home walks the range page by page
	 * (a range to the top of the address space took minutes) */
	if (advice == ADV_PIN) {
		struct vma *vv;
		size_t n;

		r = vma_scan(h, s, e, &vv, &n);
		if (!r) {
			mem_free(vv);
			r = private_home(h, s, e, 0, NULL);
		}
	}
	if (!r)
		r = advise_locked(h, s, e, &x);
	if (!r && advice == UHMM_ADV_UNSET_READ_MOSTLY)
		dup_collapse(h, s, e);
	ctx_unlock(h);
	return r;
}

int uhmm_advise(struct uhmm *h, void *addr, size_t len, enum uhmm_advice advice,
		struct uhmm_dev *dev)
{
	return advise(h, addr, len, advice, dev);
}

int uhmm_pin(struct uhmm *h, void *addr, size_t len)
{
	return advise(h, addr, len, ADV_PIN, NULL);
}

int uhmm_unpin(struct uhmm *h, void *addr, size_t len)
{
	return advise(h, addr, len, ADV_UNPIN, NULL);
}
