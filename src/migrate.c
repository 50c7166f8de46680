// SPDX-License-Identifier: MIT
/*
 * uhmm_migrate: pages change place behind unchanged pointers.
 *
 * A range is checked whole before anything moves (/proc/self/maps: holes,
 * protection, what kind of memory), unmanaged anonymous parts become
 * managed, then each mapping is moved in batches, in ascending order, by
 * the remap fence where the kernel allows it and by the write-protect fence
 * otherwise.  Other threads may go on using the range: no write is lost,
 * no read sees a stale value; a layout change of theirs during the call is
 * -EAGAIN.
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

/* ---- ranges ------------------------------------------------------------ */

/* What the page table says of page i of the batch, with loc and dp. */
static int load_page(struct uhmm *h, struct batch *b, size_t i, int loc, uint32_t dp)
{
	struct uhmm_dev *d = dev_by_id(h, loc);

	if (b->src && loc != b->src->id)
		return -EAGAIN;
	b->sloc[i] = LOC_SYS;
	if (b->src) {
		b->dsrc[i] = dp;
	} else if (d && d->kind == UHMM_MEM_PRIVATE) {
		b->sloc[i] = loc;
		b->dsrc[i] = dp;
	} else if (loc != LOC_SYS && loc != LOC_UNMANAGED) {
		/* anonymous memory we thought on a device: the program
		 * moved it under a migration; trust the map */
		if (d && d->owner[dp] == va(b, i))
			devmem_free(d, dp);
		pt_set(&h->pt, va(b, i), LOC_SYS, 0);
	}
	return 0;
}

/* A block at a time: a batch is up to 64 of them. */
static int load_batch(struct uhmm *h, struct batch *b, const struct vma *v,
		      uintptr_t s, uintptr_t e)
{
	b->start = s;
	b->end = e;
	b->n = (e - s) >> PAGE_SHIFT;
	b->prot = v->prot;
	b->src = v->kind == VMA_DEV ? v->dev : NULL;
	for (size_t i = 0; i < b->n;) {
		struct vblock *vb = pt_block(&h->pt, va(b, i), false);
		size_t j = (va(b, i) >> PAGE_SHIFT) & (BLOCK_PAGES - 1);
		size_t end = i + BLOCK_PAGES - j, odd = 0;

		end = end < b->n ? end : b->n;
		/* nearly always: system pages of anonymous memory */
		for (size_t x = 0; vb && !b->src && x < end - i; x++)
			odd += vb->loc[j + x] != LOC_SYS;
		if (vb && !b->src && !odd) {
			memset(&b->sloc[i], LOC_SYS, end - i);
			i = end;
			continue;
		}
		for (; i < end; i++, j++) {
			int r = load_page(h, b, i, vb ? vb->loc[j] : LOC_UNMANAGED,
					  vb ? vb->dpage[j] : 0);

			if (r)
				return r;
		}
	}
	return 0;
}

/*
 * Anonymous memory may hold pages of private devices.  Those not on `to`
 * come home first (private to private goes through system memory); then
 * what is in system memory moves on.
 */
static int anon_batch(struct uhmm *h, struct batch *b, const struct vma *v,
		      struct uhmm_dev *to, const struct request *rq)
{
	int tid = to ? to->id : LOC_SYS;
	size_t home = 0, sys = 0;
	int r = 0;

	for (size_t i = 0; i < b->n && !r; i++)
		if (b->sloc[i] != LOC_SYS && b->sloc[i] != tid)
			r = 1;
	if (r) {
		r = private_home(h, b->start, b->end, tid, &home);
		if (!r)
			r = load_batch(h, b, v, b->start, b->end);
		if (r)
			return r;
	}
	if (!to) {
		for (size_t i = 0; i < b->n; i++)
			sys += b->sloc[i] == LOC_SYS;
		if (rq->res) {
			rq->res->moved += home;
			rq->res->already += sys - home;
		}
		return 0;
	}
	if (to->kind == UHMM_MEM_PRIVATE)
		return batch_to_private(h, b, to, rq);
	if (h->feat & UHMM_FEAT_REMAP_FENCE)
		return batch_to_dev_remap(h, b, to, rq);
	return batch_to_dev(h, b, to, rq);
}

/* Through system memory: the batch is anonymous memory after the first hop. */
static int coherent_to_private(struct uhmm *h, struct batch *b, const struct vma *v,
			       struct uhmm_dev *to, const struct request *rq)
{
	struct request hop = { rq->start, rq->end, rq->flags, NULL };
	struct vma anon = *v;
	int r;

	if ((h->feat & UHMM_FEAT_REMAP_FENCE) && src_contiguous(b))
		r = batch_to_sys_remap(h, b, &hop);
	else
		r = batch_to_sys(h, b, &hop);
	anon.kind = VMA_ANON;
	anon.dev = NULL;
	if (!r)
		r = load_batch(h, b, &anon, b->start, b->end);
	return r ? r : anon_batch(h, b, &anon, to, rq);
}

static int migrate_vma(struct uhmm *h, const struct vma *v, struct uhmm_dev *to,
		       const struct request *rq)
{
	int src = v->kind == VMA_DEV ? v->dev->id : LOC_SYS;
	struct batch *b;
	int r = 0;

	if (src == (to ? to->id : LOC_SYS) && !range_has_private(h, v->start, v->end)) {
		if (rq->res)
			rq->res->already += (v->end - v->start) >> PAGE_SHIFT;
		return 0;
	}
	b = mem_alloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (uintptr_t s = v->start; s < v->end && !r;) {
		uintptr_t e = (s & ~(BLOCK_SIZE - 1)) + BATCH_PAGES * PAGE_SIZE;

		if (e > v->end)
			e = v->end;
		/* devices drop their translations before anything moves */
		mirror_invalidate(h, s, e, UHMM_EV_MIGRATE, h->initiator);
		r = load_batch(h, b, v, s, e);
		if (r)
			break;
		if (!b->src)
			r = anon_batch(h, b, v, to, rq);
		else if (to && to->kind == UHMM_MEM_PRIVATE)
			r = coherent_to_private(h, b, v, to, rq);
		else if ((h->feat & UHMM_FEAT_REMAP_FENCE) && src_contiguous(b))
			r = to ? batch_to_dev_remap(h, b, to, rq)
			       : batch_to_sys_remap(h, b, rq);
		else
			r = to ? batch_to_dev(h, b, to, rq) : batch_to_sys(h, b, rq);
		s = e;
	}
	mem_free(b);
	return r;
}

int manage_range(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	size_t blocks = ((end - 1) >> BLOCK_SHIFT) - (start >> BLOCK_SHIFT) + 1;
	int r;

	/* each 2 MiB block takes a page of our own memory for its entries
	 * (mem.c's slabs): a range that could never fit (past a TiB) fails
	 * before it has taken them all from everyone else */
	if (blocks > mem_pages_max())
		return -ENOMEM;
	if (pt_next_managed(&h->pt, start, end) == start) {
		bool all = true;

		for (uintptr_t a = start; a < end && all; a += PAGE_SIZE)
			all = pt_loc(&h->pt, a, NULL) != LOC_UNMANAGED;
		if (all)
			return 0;
	}
	r = uffd_register(h, start, end - start, false);
	/* the range was checked just before: the kernel refusing it now
	 * means another thread changed the layout since */
	if (r == -EINVAL || r == -ENOMEM)
		return -EAGAIN;
	if (r)
		return r;
	return pt_manage_run(&h->pt, start, end);
}

/*
 * A device page we believed elsewhere: the program moved the mapping while
 * we migrated it (its mremap raced ours).  The data is at the mapping's file
 * offset; take the page back if no one else got it meanwhile.
 */
static bool adopt(struct uhmm *h, const struct vma *v, uintptr_t a)
{
	struct uhmm_dev *d = v->dev;
	uint64_t off = v->pgoff + (a - v->start);
	size_t p;

	if (pt_loc(&h->pt, a, NULL) == LOC_UNMANAGED || off < d->fd_offset)
		return false;
	p = (off - d->fd_offset) >> PAGE_SHIFT;
	if (!devmem_claim(d, p, a))
		return false;
	devmem_touch(d, p, ++h->clock);
	return !pt_set(&h->pt, a, d->id, p);
}

/* Pages of a device mapping that are not ours (grown by mremap, discarded)
 * become zeroed system memory before anything else looks at them: every
 * run of them in the mapping (the rest keeps its offsets), then 1 for a
 * fresh look at the layout. */
static int settle(struct uhmm *h, const struct vma *v)
{
	uintptr_t a = v->start;
	int changed = 0;

	while (a < v->end) {
		uintptr_t s = a;
		int loc = pt_loc(&h->pt, a, NULL);

		if (loc == v->dev->id) {
			a += PAGE_SIZE;
			continue;
		}
		if (loc != LOC_UNMANAGED && adopt(h, v, a)) {
			a += PAGE_SIZE;
			continue;
		}
		while (a < v->end && pt_loc(&h->pt, a, NULL) != v->dev->id &&
		       !adopt(h, v, a))
			a += PAGE_SIZE;
		replace_with_zero(h, s, a);
		changed = 1;
	}
	return changed;
}

/*
 * The range's mappings, each one we may migrate.  A PROT_NONE mapping is
 * refused to the program (-EINVAL), but pages of it that a device holds
 * must still come home when the device is evicted or removed: they are
 * copied through the device's file and keep their protection.
 */
static int scan_checked(struct uhmm *h, uintptr_t start, uintptr_t end, bool home,
			struct vma **vv, size_t *n)
{
	int r;

	for (int tries = 0; tries < 4; tries++) {
		bool again = false;

		r = vma_scan(h, start, end, vv, n);
		if (r)
			return r;
		for (size_t i = 0; i < *n && !r; i++) {
			struct vma v = (*vv)[i];

			if (home && v.kind == VMA_DEV && v.prot == PROT_NONE)
				v.prot = PROT_READ;
			r = vma_check_migratable(h, &v);
		}
		for (size_t i = 0; i < *n && !r && !again; i++) {
			if ((*vv)[i].kind != VMA_DEV)
				continue;
			r = settle(h, &(*vv)[i]);
			again = r > 0;
			r = r < 0 ? r : 0;
		}
		if (r || !again)
			break;
		mem_free(*vv);
	}
	if (r)
		mem_free(*vv);
	return r;
}

int migrate_range(struct uhmm *h, uintptr_t start, uintptr_t end,
		  struct uhmm_dev *to, unsigned flags, struct uhmm_migrate_res *res)
{
	struct request rq = { start, end, flags, res };
	struct vma *vv;
	size_t n;
	int r;

	/* drivers starting a fault of the range now wait for the result,
	 * rather than fault what is about to change and retry */
	mirror_begin_change(h, start, end);
	/* the range's mappings first: a hole (a range reaching to the top
	 * of the address space, say) is -EFAULT before anything walks the
	 * range block by block */
	r = scan_checked(h, start, end, flags & MIGRATE_HOME, &vv, &n);
	if (r)
		return r;
	/* read-only duplicates go before anything moves */
	dup_collapse(h, start, end);
	/* mlocked memory must stay in system memory */
	if (to && to->kind == UHMM_MEM_PRIVATE && vma_locked(h, start, end)) {
		mem_free(vv);
		return -EBUSY;
	}
	for (size_t i = 0; i < n && !r; i++)
		if (vv[i].kind == VMA_ANON)
			r = manage_range(h, vv[i].start, vv[i].end);
	for (size_t i = 0; i < n && !r; i++)
		r = migrate_vma(h, &vv[i], to, &rq);
	mem_free(vv);
	/* everything was checked above: a mapping call the kernel refuses
	 * now met a layout another thread changed meanwhile */
	return r == -EINVAL || r == -EPERM ? -EAGAIN : r;
}

/* ---- helpers for events, eviction and removal --------------------------- */

void forget_range(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	dup_forget(h, start, end);
	for (uintptr_t a = pt_next_managed(&h->pt, start, end); a < end;
	     a = pt_next_managed(&h->pt, a + PAGE_SIZE, end)) {
		uint32_t dp = 0;
		int loc = pt_loc(&h->pt, a, &dp);

		if (loc != LOC_SYS && dev_by_id(h, loc))
			devmem_free(dev_by_id(h, loc), dp);
		pt_unmanage(&h->pt, a);
	}
	quar_end(h, start, end);
}

/* Is page a of device mapping v the device's page at its file offset? */
bool vma_dev_page(struct uhmm *h, const struct vma *v, uintptr_t a)
{
	uint32_t dp = 0;

	return pt_loc(&h->pt, a, &dp) == v->dev->id &&
	       v->pgoff + (a - v->start) == devmem_off(v->dev, dp);
}

/*
 * Is [start, end) still the program's mapping of device `loc` that the
 * page table describes?  Events are applied after the fact, and other
 * threads go on: the program may have unmapped the range since and mapped
 * new memory there (glibc trims a heap with MADV_DONTNEED, then deletes
 * it, then maps the next one at the same address), which a mapping change
 * of ours must not hit.
 */
bool dev_map_matches(struct uhmm *h, uintptr_t start, uintptr_t end, int loc)
{
	struct uhmm_dev *d = dev_by_id(h, loc);
	struct vma *vv = NULL;
	size_t n = 0;
	bool ours;

	if (!d || vma_scan(h, start, end, &vv, &n))
		return false;
	ours = n > 0;
	for (size_t i = 0; i < n && ours; i++) {
		const struct vma *v = &vv[i];

		ours = v->kind == VMA_DEV && v->dev == d;
		for (uintptr_t a = v->start; a < v->end && ours; a += PAGE_SIZE)
			ours = vma_dev_page(h, v, a);
	}
	mem_free(vv);
	return ours;
}

int replace_with_zero(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	struct vma v;
	int prot = PROT_READ | PROT_WRITE, r;

	if (!vma_at(h, start, &v))
		prot = v.prot;
	if (mm_map_fixed(h, start, end - start, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0) == MAP_FAILED)
		return -errno;
	forget_range(h, start, end);
	r = uffd_register(h, start, end - start, false);
	for (uintptr_t a = start; !r && a < end; a += PAGE_SIZE)
		pt_set(&h->pt, a, LOC_SYS, 0);
	uffd_wake(h, start, end - start);
	return r;
}





/* ---- the API --------------------------------------------------------------- */

int uhmm_migrate_ex(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
		    unsigned flags, struct uhmm_migrate_res *res)
{
	struct uhmm_migrate_res out = { 0 };
	struct trace_why why;
	uintptr_t s, e;
	size_t n;
	int r;

	if (!h || range_pages(addr, len, &s, &e))
		return -EINVAL;
	if (flags & ~(UHMM_MIGRATE_NOEVICT | UHMM_MIGRATE_DISCARD))
		return -EINVAL;
	if (to && to->h != h)
		return -EINVAL;
	if (res && (r = sz_check(res, res->sz, sizeof(*res))))
		return r;
	why = trace_because(UHMM_CAUSE_MIGRATE);
	ctx_lock(h);
	mirror_yield_to_drivers(h, s, e);
	events_drain(h);
	r = advice_pinned(h, s, e) ? -EBUSY : migrate_range(h, s, e, to, flags, &out);
	ctx_unlock(h);
	trace_restore(why);
	if (res) {
		out.sz = res->sz;
		n = sz_of(res->sz, sizeof(out));
		memcpy(res, &out, n < sizeof(out) ? n : sizeof(out));
	}
	return r;
}

int uhmm_migrate(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
		 unsigned flags)
{
	return uhmm_migrate_ex(h, addr, len, to, flags, NULL);
}
