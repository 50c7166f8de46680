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

static void call_one(struct uhmm_mirror *m, uintptr_t start, uintptr_t end,
		     enum uhmm_event ev, int initiator)
{
	struct uhmm_inval inv = {
		.sz = sizeof(inv), .start = start, .end = end, .ev = ev,
		.initiator = initiator,
	};

	/* counted first: the callback may look at the counters */
	COUNT(m->h, m->dev, invalidations, 1);
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
			call_one(m, start, end, ev, initiator);
}

/* The device goes away: its mirrors hear RELEASE, then nothing more. */
void mirrors_release_dev(struct uhmm *h, struct uhmm_dev *d)
{
	for (struct uhmm_mirror *m = h->mirrors; m; m = m->next) {
		if (m->dev != d || m->released)
			continue;
		call_one(m, 0, UINTPTR_MAX, UHMM_EV_RELEASE, 0);
		m->released = true;
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
	int r;

	if (!dev || !ops || !out)
		return -EINVAL;
	r = sz_check(ops, ops->sz, sizeof(*ops));
	if (r)
		return r;
	if (!ops->invalidate && !ops->invalidate2)
		return -EINVAL;
	ctx_lock(dev->h);
	r = mirror_open_locked(dev, ops, priv, out);
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

#define PM_PRESENT	(1ull << 63)
#define PM_SWAPPED	(1ull << 62)
#define PM_FILE		(1ull << 61)
#define PM_UFFD_WP	(1ull << 57)
#define PM_EXCLUSIVE	(1ull << 56)
#define PM_PFN		((1ull << 55) - 1)

/* A piece of the range: a hole, or part of one mapping. */
struct seg {
	uintptr_t start, end;
	bool hole;
	struct vma v;
};

struct rf {
	struct uhmm_mirror *m;
	uintptr_t s, e;
	unsigned flags;
	struct seg *seg;
	size_t nseg, cap;
	uint64_t *pm;			/* pagemap entry per page */
};

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

/* The mapped runs of [s, e), from /proc/self/maps read with read(2) into
 * our stack (see vma.c): each run then gets vma_scan's full account. */
#define MAPS_BUF 8192

static int mapped_runs(uintptr_t s, uintptr_t e, uintptr_t *runs, size_t max, size_t *n)
{
	char buf[MAPS_BUF];
	size_t len = 0, k = 0;
	bool eof = false, done = false;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC), r = 0;

	if (fd < 0)
		return -errno;
	while (!done && !r) {
		char *nl = memchr(buf, '\n', len);
		unsigned long a, b;

		if (!nl) {
			ssize_t got;

			if (eof || len == sizeof(buf) - 1)
				break;
			got = read(fd, buf + len, sizeof(buf) - 1 - len);
			if (got <= 0)
				eof = true;
			else
				len += got;
			continue;
		}
		*nl = 0;
		if (sscanf(buf, "%lx-%lx", &a, &b) == 2) {
			done = a >= e;
			if (a < s)
				a = s;
			if (b > e)
				b = e;
			if (done || b <= a)
				;
			else if (k && runs[2 * k - 1] == a)
				runs[2 * k - 1] = b;
			else if (k == max)
				r = -ENOMEM;
			else {
				runs[2 * k] = a;
				runs[2 * k + 1] = b;
				k++;
			}
		}
		len -= nl + 1 - buf;
		memmove(buf, nl + 1, len);
	}
	close(fd);
	*n = k;
	return r;
}

#define MAX_RUNS 256

static int load_segs(struct uhmm *h, struct rf *f)
{
	uintptr_t runs[2 * MAX_RUNS], at = f->s;
	size_t nr = 0;
	int r;

	f->nseg = 0;
	r = mapped_runs(f->s, f->e, runs, MAX_RUNS, &nr);
	for (size_t i = 0; !r && i <= nr; i++) {
		uintptr_t rs = i < nr ? runs[2 * i] : f->e;
		struct vma *vv = NULL;
		size_t nv = 0;

		if (rs > at)
			r = seg_add(f, &(struct seg){ .start = at, .end = rs, .hole = true });
		if (r || i == nr)
			break;
		/* the layout changed since we looked: start again */
		r = vma_scan(h, rs, runs[2 * i + 1], &vv, &nv);
		if (r == -EFAULT)
			return -EBUSY;
		for (size_t j = 0; !r && j < nv; j++) {
			struct seg sg = { .start = vv[j].start, .end = vv[j].end, .v = vv[j] };

			/* our own memory is no part of the program's */
			if (vv[j].kind == VMA_ANON && (mem_owns(sg.start, sg.end) ||
						       arena_owns(h, sg.start, sg.end)))
				sg.hole = true;
			r = seg_add(f, &sg);
		}
		mem_free(vv);
		at = runs[2 * i + 1];
	}
	return r;
}

static bool seg_error(const struct seg *sg)
{
	return sg->hole || sg->v.prot == PROT_NONE;
}

static int load_pagemap(struct rf *f)
{
	size_t n = (f->e - f->s) >> PAGE_SHIFT;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	int r = 0;

	if (fd < 0)
		return -errno;
	for (size_t done = 0; done < n;) {
		ssize_t got = pread(fd, f->pm + done, (n - done) * 8,
				    ((f->s >> PAGE_SHIFT) + done) * 8);

		if (got <= 0) {
			r = got < 0 ? -errno : -EIO;
			break;
		}
		done += got / 8;
	}
	close(fd);
	return r;
}

/*
 * The shared zero page's frame, where this process may see frame numbers
 * (CAP_SYS_ADMIN); 0 where it cannot tell.  Our own zero page is a private
 * read-only mapping: reading it maps the shared zero page there.
 */
static uint64_t zero_pfn(struct uhmm *h)
{
	static _Atomic uint64_t pfn = UINT64_MAX;
	uint64_t v = atomic_load(&pfn), e = 0;
	int fd;

	if (v != UINT64_MAX)
		return v;
	(void)*(volatile char *)h->zero_page;
	fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (pread(fd, &e, 8, ((uintptr_t)h->zero_page >> PAGE_SHIFT) * 8) != 8)
			e = 0;
		close(fd);
	}
	v = (e & PM_PRESENT) ? e & PM_PFN : 0;
	atomic_store(&pfn, v);
	return v;
}

/* Would the device write this system page without a copy-on-write? */
static bool sys_writable(const struct seg *sg, uint64_t pm)
{
	if (!(sg->v.prot & PROT_WRITE) || !(pm & PM_PRESENT) || (pm & PM_UFFD_WP))
		return false;
	return sg->v.shared || ((pm & PM_EXCLUSIVE) && !(pm & PM_FILE));
}

static void pte_of(struct uhmm *h, struct rf *f, const struct seg *sg, uintptr_t a,
		   struct uhmm_pte *p)
{
	uint64_t pm = f->pm[(a - f->s) >> PAGE_SHIFT], zp;
	uint32_t w = (sg->v.prot & PROT_WRITE) ? UHMM_PTE_WRITE : 0;
	uint32_t dp = 0;
	int loc;
	struct uhmm_dev *d;

	memset(p, 0, sizeof(*p));
	p->loc = UHMM_LOC_NONE;
	if (seg_error(sg)) {
		p->flags = UHMM_PTE_ERROR;
		return;
	}
	loc = pt_loc(&h->pt, a, &dp);
	d = dev_by_id(h, loc);
	/* a READ_MOSTLY duplicate in this device's memory: read-only */
	if (loc == LOC_SYS && f->m->dev && dup_find(h, a, f->m->dev, &dp)) {
		d = f->m->dev;
		p->loc = d->id;
		p->dev_off = devmem_off(d, dp);
		if (d->view)
			p->host = (uintptr_t)d->view + ((uintptr_t)dp << PAGE_SHIFT);
		p->flags = UHMM_PTE_VALID;
		return;
	}
	if (d && d->kind == UHMM_MEM_PRIVATE && sg->v.kind == VMA_ANON) {
		p->loc = d->id;
		p->dev_off = devmem_off(d, dp);
		if (d == f->m->dev)
			p->flags = UHMM_PTE_VALID | w;
		return;
	}
	if (sg->v.kind == VMA_DEV) {
		/* a page we did not put there reads as zeros once touched */
		if (d != sg->v.dev)
			return;
		p->loc = d->id;
		p->dev_off = devmem_off(d, dp);
		p->host = (uintptr_t)d->view + ((uintptr_t)dp << PAGE_SHIFT);
		p->flags = UHMM_PTE_VALID | w;
		return;
	}
	if (!(pm & (PM_PRESENT | PM_SWAPPED)))
		return;
	p->loc = UHMM_LOC_SYSTEM;
	if (!(pm & PM_PRESENT))
		return;		/* swapped out: the device cannot reach it now */
	p->host = a;
	p->flags = UHMM_PTE_VALID;
	if (sys_writable(sg, pm))
		p->flags |= UHMM_PTE_WRITE;
	zp = zero_pfn(h);
	if (zp && !(pm & PM_FILE) && (pm & PM_PFN) == zp)
		p->flags |= UHMM_PTE_ZERO;
}

static bool all_managed(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		if (pt_loc(&h->pt, a, NULL) == LOC_UNMANAGED)
			return false;
	return true;
}

/* Unmanaged anonymous memory a device looks at becomes managed, so that
 * its munmap, madvise and mremap reach the mirrors as events. */
static int manage_segs(struct uhmm *h, struct rf *f)
{
	for (size_t i = 0; i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];
		int r;

		if (seg_error(sg) || sg->v.kind != VMA_ANON || all_managed(h, sg->start, sg->end) ||
		    vma_check_migratable(h, &sg->v))
			continue;
		r = manage_range(h, sg->start, sg->end);
		if (r)
			return r == -EAGAIN ? -EBUSY : r;
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
	if (write && sys_writable(sg, pm))
		return 0;
	if ((pm & PM_UFFD_WP) && managed)
		uffd_wp(h, a, PAGE_SIZE, false);	/* no fence is up: stale */
	return populate(a, PAGE_SIZE, write);
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
			return r == -EAGAIN ? -EBUSY : r;
	}
	r = load_pagemap(f);
	for (size_t i = 0; !r && i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];

		for (uintptr_t a = sg->start; !r && a < sg->end; a += PAGE_SIZE) {
			int loc = pt_loc(&h->pt, a, NULL);
			struct uhmm_dev *d = dev_by_id(h, loc);

			if (sg->v.kind == VMA_DEV) {
				if (d != sg->v.dev)
					r = replace_with_zero(h, a, a + PAGE_SIZE) ? -EBUSY : 0;
				continue;
			}
			if (d && d->kind == UHMM_MEM_PRIVATE)
				continue;	/* this mirror's own device */
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
	int r = load_pagemap(f);

	for (size_t i = 0; !r && i < f->nseg; i++) {
		struct seg *sg = &f->seg[i];

		for (uintptr_t a = sg->start; a < sg->end; a += PAGE_SIZE) {
			struct uhmm_pte *p = &ptes[(a - f->s) >> PAGE_SHIFT];

			pte_of(h, f, sg, a, p);
			/* the program changed it again meanwhile */
			if (f->flags && (p->flags & need) != need)
				r = -EBUSY;
		}
	}
	return r;
}

static int range_fault_locked(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes)
{
	int r = load_segs(h, f);

	if (!r && f->flags)
		r = check_segs(f);
	if (!r)
		r = manage_segs(h, f);
	if (!r && f->flags) {
		h->initiator = f->m->dev_id;
		r = fault_segs(h, f);
		h->initiator = 0;
		if (!r)
			r = load_segs(h, f);
	}
	if (!r)
		r = fill_ptes(h, f, ptes);
	return r;
}

int uhmm_range_fault(struct uhmm_mirror *m, const void *addr, size_t len,
		     unsigned flags, struct uhmm_pte *ptes)
{
	struct rf f = { .m = m, .flags = flags };
	struct trace_why why;
	struct uhmm *h;
	uint64_t seq;
	int r;

	if (!m || !ptes || (flags & ~(UHMM_FAULT_READ | UHMM_FAULT_WRITE)))
		return -EINVAL;
	r = range_pages(addr, len, &f.s, &f.e);
	if (r)
		return r;
	if (flags & UHMM_FAULT_WRITE)
		f.flags |= UHMM_FAULT_READ;
	f.pm = mem_alloc(((f.e - f.s) >> PAGE_SHIFT) * sizeof(*f.pm));
	if (!f.pm)
		return -ENOMEM;
	h = m->h;
	ctx_lock(h);
	events_drain(h);
	if (m->released) {
		r = -ENODEV;
		goto out;
	}
	seq = atomic_load(&m->sc.seq);
	/* from now on every change of the range reaches this mirror */
	mirror_widen(m, f.s, f.e);
	why = trace_because(UHMM_CAUSE_DEV_FAULT);
	r = range_fault_locked(h, &f, ptes);
	trace_restore(why);
	if (!r && atomic_load(&m->sc.seq) != seq)
		r = -EBUSY;
out:
	ctx_unlock(h);
	mem_free(f.seg);
	mem_free(f.pm);
	return r;
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
