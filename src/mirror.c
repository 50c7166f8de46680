// SPDX-License-Identifier: MIT
/*
 * Mirrors: a device's view of the address space (hmm_range_fault plus
 * mmu_interval_notifier, in user space).
 *
 * Every change uhmm makes to where a page lives happens with h->lock held,
 * and so does uhmm_range_fault: a snapshot it takes is consistent with
 * the page table.  Before such a change takes effect, mirror_invalidate
 * runs the callback of each mirror that may hold translations of the range
 * (its hull: the span of every range_fault it answered), with the mirror's
 * seq odd around the callback.  Changes the program makes (munmap, madvise,
 * mremap) are known only once the reader has read their event; they are
 * invalidated when the event is applied, by the worker or by the next API
 * call (ARCHITECTURE hazard 3).
 *
 * Callbacks never run on the reader thread: it must never wait for a
 * driver's lock, which a munmapping thread may hold (a fault the reader
 * would serve that needs one is handed to the worker; see mirror_wants).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat.h"
#include "exclusive.h"
#include "migrate.h"
#include "mirror.h"
#include "trace.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#define MADV_POPULATE_WRITE 23
#endif


/* ---- invalidation, with h->lock held ------------------------------------ */

static bool wants(const struct uhmm_mirror *m, uintptr_t start, uintptr_t end)
{
	return !m->released && m->lo < m->hi && start < m->hi && end > m->lo;
}

bool mirror_wants(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next)
		if (wants(m, start, end))
			return true;
	return false;
}

void seqcount_init(struct seqcount *c)
{
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	atomic_store(&c->seq, 0);
}

void seqcount_fini(struct seqcount *c)
{
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
}

/* woke readers? */
static bool seqcount_bump(struct seqcount *c)
{
	bool woke;

	pthread_mutex_lock(&c->mu);
	atomic_fetch_add(&c->seq, 1);
	woke = c->waiting > 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return woke;
}

void seqcount_open(struct seqcount *c)
{
	if (c->open)
		return;
	c->open = true;
	seqcount_bump(c);
}

bool seqcount_close(struct seqcount *c)
{
	if (!c->open)
		return false;
	c->open = false;
	return seqcount_bump(c);
}

uint64_t seqcount_begin(struct seqcount *c)
{
	uint64_t s = atomic_load(&c->seq);

	if (!(s & 1))
		return s;
	pthread_mutex_lock(&c->mu);
	c->waiting++;
	while ((s = atomic_load(&c->seq)) & 1)
		pthread_cond_wait(&c->cv, &c->mu);
	c->waiting--;
	pthread_mutex_unlock(&c->mu);
	return s;
}

/* odd until the change is complete: mirrors_settle */
static void change_begins(struct uhmm_mirror *m, uintptr_t start, uintptr_t end)
{
	seqcount_open(&m->sc);
	intervals_open(m, start, end);
	m->h->inval_open = true;
}

void mirror_tell(struct uhmm_mirror *m, uintptr_t start, uintptr_t end,
		 enum uhmm_event ev, int initiator)
{
	struct uhmm_inval inv = {
		.sz = sizeof(inv), .start = start, .end = end, .ev = ev,
		.initiator = initiator,
	};

	/* counted first: the callback may look at the counters */
	COUNT(m->h, m->dev, invalidations, 1);
	busy_saw_tell(start, end, ev, initiator);
	change_begins(m, start, end);
	if (m->ops.invalidate2)
		m->ops.invalidate2(m, &inv);
	else if (m->ops.invalidate)
		m->ops.invalidate(m, start, end, ev);
}

/*
 * A driver whose read_retry keeps failing, against a thread that migrates
 * its range in a loop, could retry forever: its read_begin, taken between
 * two migrations, is stale by the time its range_fault gets the context.
 * read_retry notes who failed; a migration starting soon after lets that
 * driver's next round through first (mirror_yield_to_drivers).
 */
#define STARVED_NS	(10 * 1000 * 1000)	/* failed this recently */
#define YIELD_NS	(1000 * 1000)		/* wait no longer for it */

bool retry_note(struct uhmm *h, bool stale)
{
	atomic_store(&h->starved_ns, stale ? mono_ns() : 0);
	atomic_fetch_add(&h->retry_checks, 1);
	return stale;
}

void mirror_yield_to_drivers(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uint64_t t = atomic_load(&h->starved_ns), now, until;
	uint32_t checks;

	if (!t || !mirror_wants(h, start, end))
		return;
	now = mono_ns();
	if (now - t > STARVED_NS)
		return;
	checks = atomic_load(&h->retry_checks);
	ctx_unlock(h);
	until = now + YIELD_NS;
	while (atomic_load(&h->retry_checks) == checks && mono_ns() < until)
		sched_yield();
	ctx_lock(h);
}

/*
 * A change of [start, end) is coming: read_begin waits for it, as from the
 * kernel's invalidate_range_start, before the callbacks run.
 */
void mirror_begin_change(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next)
		if (wants(m, start, end))
			change_begins(m, start, end);
}

/*
 * The changes invalidated under this hold of the context are complete.
 * Woke readers waiting in read_begin?  They go on to range_fault, which
 * needs the context: the caller lets them have it before taking it back.
 */
bool mirrors_settle(struct uhmm *h)
{
	bool woke = false;

	if (!h->inval_open)
		return false;
	h->inval_open = false;
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next) {
		woke |= intervals_close(m);
		woke |= seqcount_close(&m->sc);
	}
	return woke;
}

void mirror_invalidate(struct uhmm *h, uintptr_t start, uintptr_t end,
		       enum uhmm_event ev, int initiator)
{
	if (start >= end)
		return;
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next)
		if (wants(m, start, end))
			mirror_tell(m, start, end, ev, initiator);
	/* pages a device holds alone come back before the change */
	if (ev != UHMM_EV_EXCLUSIVE)
		excl_revoke(h, start, end, initiator, NULL);
}

/* The device goes away: its mirrors hear RELEASE, then nothing more. */
void mirrors_release_dev(struct uhmm *h, struct uhmm_dev *d)
{
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next) {
		if (m->dev != d || m->released)
			continue;
		mirror_tell(m, 0, UINTPTR_MAX, UHMM_EV_RELEASE, 0);
		m->released = true;
		excl_drop_mirror(h, m);
		m->dev = NULL;
	}
}

static void mirror_free(struct uhmm_mirror *m)
{
	intervals_free(m);
	seqcount_fini(&m->sc);
	mem_free(m);
}

/* uhmm_close: no handle outlives its context. */
void mirrors_fini(struct uhmm *h)
{
	excl_fini(h);
	while (h->mirrors) {
		struct uhmm_mirror *m = h->mirrors;

		h->mirrors = m->next;
		mirror_free(m);
	}
}

/* ---- the handle ------------------------------------------------------------ */

int mirror_open_locked(struct uhmm_dev *dev, const struct uhmm_mirror_ops *ops,
		       void *priv, struct uhmm_mirror **out)
{
	struct uhmm_mirror *m;
	size_t n;

	m = mem_alloc(sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->h = dev->h;
	m->dev = dev;
	m->dev_id = dev->id;
	n = sz_of(ops->sz, sizeof(m->ops));
	memcpy(&m->ops, ops, n < sizeof(m->ops) ? n : sizeof(m->ops));
	m->priv = priv;
	seqcount_init(&m->sc);
	m->next = dev->h->mirrors;
	dev->h->mirrors = m;
	*out = m;
	return 0;
}

int uhmm_mirror_open(struct uhmm_dev *dev, const struct uhmm_mirror_ops *ops,
		     void *priv, struct uhmm_mirror **out)
{
	struct uhmm_mirror_ops o = { 0 };
	size_t n;
	int r;

	if (!dev || !ops || !out)
		return -EINVAL;
	r = sz_check(ops, ops->sz, sizeof(*ops));
	if (r)
		return r;
	/* a caller's struct smaller than ours ends at its sz: what it does
	 * not have is NULL, and is never read */
	n = sz_of(ops->sz, sizeof(o));
	memcpy(&o, ops, n < sizeof(o) ? n : sizeof(o));
	o.sz = sizeof(o);
	if (!o.invalidate && !o.invalidate2)
		return -EINVAL;
	ctx_lock(dev->h);
	r = mirror_open_locked(dev, &o, priv, out);
	ctx_unlock(dev->h);
	return r;
}

/* Callbacks run with the context locked: taking it waits for them. */
void uhmm_mirror_close(struct uhmm_mirror *m)
{
	struct uhmm *h;

	if (!m)
		return;
	h = m->h;
	ctx_lock(h);
	for (struct uhmm_mirror **pp = &h->mirrors; *pp; pp = &(*pp)->next) {
		if (*pp == m) {
			*pp = m->next;
			break;
		}
	}
	/* what it held alone is the program's again */
	excl_drop_mirror(h, m);
	ctx_unlock(h);
	mirror_free(m);
}

void *uhmm_mirror_priv(const struct uhmm_mirror *m)
{
	return m ? m->priv : NULL;
}

uint64_t uhmm_mirror_read_begin(struct uhmm_mirror *m)
{
	return m ? seqcount_begin(&m->sc) : 0;
}

bool uhmm_mirror_read_retry(struct uhmm_mirror *m, uint64_t seq)
{
	if (!m)
		return true;
	/* a released mirror has nothing to program: the driver's next
	 * range_fault says -ENODEV */
	return m->released || retry_note(m->h, atomic_load(&m->sc.seq) != seq);
}

/* ---- uhmm_range_fault ------------------------------------------------------- */

static int seg_add(struct rf *f, const struct seg *sg)
{
	if (f->nseg == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 8;
		struct seg *n = mem_realloc(f->seg, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		f->seg = n;
		f->cap = cap;
	}
	f->seg[f->nseg++] = *sg;
	return 0;
}

/* The range as holes and pieces of mappings, in order. */
static int load_segs(struct uhmm *h, struct rf *f)
{
	struct vma *vv = NULL;
	uintptr_t at = f->s;
	size_t nv = 0;
	int r;

	f->nseg = 0;
	f->moves = atomic_load(&h->moves);
	r = vma_scan_mapped(h, f->s, f->e, &vv, &nv);
	for (size_t i = 0; !r && i <= nv; i++) {
		uintptr_t vs = i < nv ? vv[i].start : f->e;
		struct seg sg;

		if (vs > at)
			r = seg_add(f, &(struct seg){ .start = at, .end = vs, .hole = true });
		if (r || i == nv)
			break;
		sg = (struct seg){ .start = vv[i].start, .end = vv[i].end, .v = vv[i] };
		/* our own memory is no part of the program's, whatever its
		 * kind: a device's view (VMA_DEV), a PRIVATE sim device's
		 * memfd (VMA_OTHER), our heap, arena and pool (VMA_ANON) */
		if (mem_owns(sg.start, sg.end) || arena_owns(h, sg.start, sg.end) ||
		    pool_owns(h, sg.start, sg.end))
			sg.hole = true;
		r = seg_add(f, &sg);
		at = vv[i].end;
	}
	mem_free(vv);
	return r;
}

static int load_pagemap(struct rf *f)
{
	size_t n = (f->e - f->s) >> PAGE_SHIFT;
	int fd = procfd(PROC_PAGEMAP);
	int r = 0;

	if (fd < 0)
		return fd;
	for (size_t done = 0; done < n;) {
		ssize_t got = pread(fd, f->pm + done, (n - done) * 8,
				    ((f->s >> PAGE_SHIFT) + done) * 8);

		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			break;
		}
		done += got / 8;
	}
	return r;
}

/* Whole blocks at a time: a snapshot of a GiB asks this of 512 blocks. */
static bool all_managed(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e;) {
		uintptr_t lim = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;
		struct vblock *b = pt_block(&h->pt, a, false);

		if (lim > e)
			lim = e;
		if (!b)
			return false;
		if (b->nmanaged < BLOCK_PAGES) {
			for (; a < lim; a += PAGE_SIZE)
				if (b->loc[(a >> PAGE_SHIFT) & (BLOCK_PAGES - 1)] == LOC_UNMANAGED)
					return false;
		}
		a = lim;
	}
	return true;
}

/* Unmanaged anonymous memory a device looks at becomes managed, so that
 * its munmap, madvise and mremap reach the mirrors as events. */
/*
 * A mapping we cannot manage (shared memory, files): registered whole with
 * the userfaultfd we keep for events alone (probe.c), so that its munmap,
 * madvise and mremap reach the mirrors too.  Whole, so that the program's
 * mapping is not split.  Not the main stack: it grows, and is never
 * unmapped.  The kernel refuses shared mappings of files opened read-only
 * (no VM_MAYWRITE): those stay unseen.
 */
static void watch_other(struct uhmm *h, const struct seg *sg)
{
	struct vma v;

	if (h->uffd_other < 0 || sg->v.kind != VMA_OTHER || seg_error(sg) ||
	    !strcmp(sg->v.name, "[stack]") || vma_at(h, sg->start, &v))
		return;
	uffd_watch(h, v.start, v.end - v.start);
}

static int manage_segs(struct uhmm *h, struct rf *f)
{
	for (size_t i = 0; i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];
		int r;

		watch_other(h, sg);
		if (seg_error(sg) || sg->v.kind != VMA_ANON || all_managed(h, sg->start, sg->end) ||
		    vma_check_migratable(h, &sg->v))
			continue;
		r = manage_range(h, sg->start, sg->end);
		if (r == -EAGAIN || r == -EBUSY)
			return busy_note(r, "manage_range (raw: its error)", sg->start);
		if (r)
			return r;
	}
	return 0;
}

static int populate(uintptr_t a, size_t len, bool write)
{
	if (madvise((void *)a, len, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ))
		return errno == EINVAL || errno == ENOMEM ? -EFAULT : -errno;
	return 0;
}

/* Bring one system page within the device's reach, without touching it
 * from this thread: a managed empty page is filled by userfaultfd, the
 * others by the kernel's populate (which breaks copy-on-write too). */
static int fault_sys(struct uhmm *h, struct uhmm_dev *dev, const struct seg *sg, uintptr_t a,
		     uint64_t pm, bool write)
{
	bool managed = pt_loc(&h->pt, a, NULL) == LOC_SYS;

	/* a first touch: on the preferred location, if this device reaches it */
	if (!(pm & (PM_PRESENT | PM_SWAPPED)) && managed && first_touch(h, a, dev))
		return 0;
	if (!(pm & (PM_PRESENT | PM_SWAPPED)) && managed)
		return uffd_zeropage(h, a, write);
	if (!write && (pm & PM_PRESENT))
		return 0;
	if (write && pm_writable(sg, pm))
		return 0;
	if ((pm & PM_UFFD_WP) && managed)
		uffd_wp(h, a, PAGE_SIZE, false);	/* no fence is up: stale */
	return populate(a, PAGE_SIZE, write);
}

/*
 * Is the page at a still in dev's mapping?  Pages moved since the range's
 * mappings were read (f->moves): a first touch placed on a device earlier
 * in the same fault may have evicted this very page, whose mapping is then
 * system memory with its data, no stranger in the device's.
 */
static bool still_in_dev_map(struct uhmm *h, const struct rf *f, uintptr_t a,
			     const struct uhmm_dev *dev)
{
	struct vma v;

	if (atomic_load(&h->moves) == f->moves)
		return true;
	return !vma_at(h, a, &v) && v.kind == VMA_DEV && v.dev == dev;
}

static int fault_segs(struct uhmm *h, struct rf *f)
{
	bool write = f->flags & UHMM_FAULT_WRITE;
	int r;

	/* pages private to another device come home first */
	for (size_t i = 0; i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];

		if (sg->v.kind != VMA_ANON || seg_error(sg))
			continue;
		r = private_home(h, sg->start, sg->end, f->m->dev->id, NULL);
		if (r)
			return r == -EAGAIN ? busy_note(r, "private_home (raw: its error)", sg->start) : r;
	}
	r = load_pagemap(f);
	for (size_t i = 0; !r && i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];

		for (uintptr_t a = sg->start; !r && a < sg->end; a += PAGE_SIZE) {
			int loc = pt_loc(&h->pt, a, NULL);
			struct uhmm_dev *d = dev_by_id(h, loc);

			if (sg->v.kind == VMA_DEV) {
				/* a stranger in a device's mapping becomes
				 * zeros; a page moved meanwhile is reachable
				 * as it is, and the snapshot below sees it */
				if (d != sg->v.dev && still_in_dev_map(h, f, a, sg->v.dev) &&
				    replace_with_zero(h, a, a + PAGE_SIZE))
					r = busy_note(0, "replace_with_zero", a);
				continue;
			}
			if (d && d->kind == UHMM_MEM_PRIVATE)
				continue;	/* this mirror's own device */
			if (excl_owner(h, a) == f->m)
				continue;	/* in our copy, reachable as it is */
			r = fault_sys(h, f->m->dev, sg, a, f->pm[(a - f->s) >> PAGE_SHIFT], write);
		}
		/* READ_MOSTLY: duplicates, or a write that ends them */
		if (!r && sg->v.kind == VMA_ANON && advice_any(h, sg->start, sg->end))
			r = dup_fault(h, f->m->dev, sg->start, sg->end, write);
	}
	return r;
}

static int check_segs(struct rf *f)
{
	for (size_t i = 0; i < f->nseg; i++) {
		if (seg_error(&f->seg[i]))
			return -EFAULT;
		if ((f->flags & UHMM_FAULT_WRITE) && !(f->seg[i].v.prot & PROT_WRITE))
			return -EPERM;
	}
	return 0;
}

static int fill_ptes(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes)
{
	uint32_t need = (f->flags & UHMM_FAULT_WRITE) ? UHMM_PTE_VALID | UHMM_PTE_WRITE
						      : UHMM_PTE_VALID;
	size_t n = (f->e - f->s) >> PAGE_SHIFT;
	int r = snapshot_fill(h, f, ptes);

	/* the program changed it again meanwhile */
	for (size_t i = 0; !r && f->flags && i < n; i++)
		if ((ptes[i].flags & need) != need)
			r = busy_note((int)ptes[i].flags, "a page not faulted in (raw: its flags)",
				      f->s + (i << PAGE_SHIFT));
	return r;
}

/* Bring the range within the device's reach, then look at it again. */
static int fault_in(struct uhmm *h, struct rf *f)
{
	int r;

	h->initiator = f->m->dev_id;
	h->fault_start = f->s;
	h->fault_end = f->e;
	/* what another device holds alone comes back first */
	excl_revoke(h, f->s, f->e, f->m->dev_id, f->m);
	r = fault_segs(h, f);
	h->initiator = 0;
	h->fault_start = h->fault_end = 0;
	return r ? r : load_segs(h, f);
}

static int range_fault_locked(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes)
{
	int r = load_segs(h, f);

	if (!r && f->flags)
		r = check_segs(f);
	if (!r)
		r = manage_segs(h, f);
	if (!r && f->flags)
		r = fault_in(h, f);
	if (!r)
		r = fill_ptes(h, f, ptes);
	return r;
}

/* The range, and when faulting room for its pagemap entries. */
static int rf_init(struct rf *f, struct uhmm_mirror *m, const void *addr, size_t len,
		   unsigned flags)
{
	int r = range_pages(addr, len, &f->s, &f->e);

	if (r)
		return r;
	f->m = m;
	f->flags = (flags & UHMM_FAULT_WRITE) ? flags | UHMM_FAULT_READ : flags;
	/* what faulting needs to know page by page; a snapshot asks in runs */
	if (f->flags && !(f->pm = mem_alloc(((f->e - f->s) >> PAGE_SHIFT) * sizeof(*f->pm))))
		return -ENOMEM;
	return 0;
}

typedef int rf_work(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes);

/*
 * The work under the context, drained, with the mirror alive and widened
 * over the range (from then on every change of it reaches the mirror),
 * traced as a device's fault; -EBUSY where asked when an invalidation of
 * the mirror came meanwhile.
 */
static int rf_run(struct rf *f, struct uhmm_pte *ptes, bool busy_on_change, rf_work *work)
{
	struct uhmm *h = f->m->h;
	struct trace_why why;
	uint64_t seq;
	int r = -ENODEV;

	ctx_lock(h);
	events_drain(h);
	if (!f->m->released) {
		seq = atomic_load(&f->m->sc.seq);
		mirror_widen(f->m, f->s, f->e);
		why = trace_because(UHMM_CAUSE_DEV_FAULT);
		r = work(h, f, ptes);
		trace_restore(why);
		if (!r && busy_on_change && atomic_load(&f->m->sc.seq) != seq)
			r = busy_note(0, "an invalidation of the mirror during the fault", f->s);
	}
	ctx_unlock(h);
	mem_free(f->seg);
	mem_free(f->pm);
	return r;
}

int uhmm_range_fault(struct uhmm_mirror *m, const void *addr, size_t len,
		     unsigned flags, struct uhmm_pte *ptes)
{
	struct rf f = { 0 };
	int r;

	if (!m || !ptes || (flags & ~(UHMM_FAULT_READ | UHMM_FAULT_WRITE)))
		return -EINVAL;
	r = rf_init(&f, m, addr, len, flags);
	return r ? r : rf_run(&f, ptes, true, range_fault_locked);
}

/*
 * Sole access for m's device: the range is faulted in writable as for
 * FAULT_WRITE (what other devices hold alone comes back, pages private to
 * other devices come home), then taken from the CPU (exclusive.c).
 */
static int make_exclusive_locked(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes)
{
	int r = load_segs(h, f);

	(void)ptes;	/* none: the holder asks uhmm_range_fault for them */
	if (!r)
		r = check_segs(f);
	/* pinned pages stay where the kernel's DMA reaches them */
	if (!r && advice_pinned(h, f->s, f->e))
		r = busy_note(0, "pinned pages", f->s);
	/* as the kernel's: anonymous memory (and device memory in its place) */
	for (size_t i = 0; !r && i < f->nseg; i++)
		if (f->seg[i].v.kind == VMA_OTHER)
			r = -EINVAL;
	if (!r)
		r = manage_segs(h, f);
	if (!r)
		r = fault_in(h, f);
	for (size_t i = 0; !r && i < f->nseg; i++)
		if (seg_error(&f->seg[i]) || !(f->seg[i].v.prot & PROT_WRITE) ||
		    f->seg[i].v.kind == VMA_OTHER)
			r = busy_note(0, "a mapping changed meanwhile", f->seg[i].start);
	if (!r) {
		/* their translations of the pages go stale; the holder's too
		 * (host moves to our copy) */
		mirror_invalidate(h, f->s, f->e, UHMM_EV_EXCLUSIVE, f->m->dev_id);
		r = excl_grant(h, f->m, f);
		if (r)
			excl_revoke(h, f->s, f->e, 0, NULL);
	}
	return r == -EAGAIN ? busy_note(r, "make_exclusive (raw: its error)", f->s) : r;
}

/* Its own invalidations (EXCLUSIVE to the holder too) are no race. */
int uhmm_make_exclusive(struct uhmm_mirror *m, void *addr, size_t len)
{
	struct rf f = { 0 };
	int r;

	if (!m)
		return -EINVAL;
	r = rf_init(&f, m, addr, len, UHMM_FAULT_WRITE);
	return r ? r : rf_run(&f, NULL, false, make_exclusive_locked);
}

/*
 * mprotect, with the mirrors told first (UHMM_EV_PROTECT): a device must
 * not go on writing a page the program just made read-only.
 */
int uhmm_mprotect(struct uhmm *h, void *addr, size_t len, int prot)
{
	uintptr_t s, e;
	int r;

	if (!h || range_pages(addr, len, &s, &e))
		return -EINVAL;
	if (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC))
		return -EINVAL;
	ctx_lock(h);
	events_drain(h);
	mirror_invalidate(h, s, e, UHMM_EV_PROTECT, 0);
	r = mprotect((void *)s, e - s, prot) ? -errno : 0;
	ctx_unlock(h);
	return r;
}
