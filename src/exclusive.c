// SPDX-License-Identifier: MIT
/*
 * uhmm_make_exclusive: a device holds pages alone, for atomics the CPU must
 * not interleave with, as make_device_exclusive() gives a kernel driver.
 *
 * The CPU must fault on every access to such a page, reads included,
 * while what the program sees stays the same (PROT_NONE would not do: an
 * access would be a SIGSEGV, and mprotect is the program's own business).
 * So the page leaves the program's range, which stays mapped and
 * registered, and any access waits in a userfaultfd fault:
 *  - a system page moves to a copy of ours (page tables moved out with
 *    MREMAP_DONTUNMAP, or, without it, copied while writers wait on a
 *    write-protect fence, then zapped); the range is registered for
 *    MISSING faults.  The device reaches the page there: `host` in its
 *    entries is our copy.
 *  - a page of a COHERENT device only loses its PTE (MADV_DONTNEED on the
 *    shared mapping keeps the data in the device's file); the next access
 *    is a MINOR fault.  The device goes on using its view.
 * A CPU fault on such a page takes the whole block back: the holder hears
 * UHMM_EV_EXCLUSIVE and its callback returns (the device stops), then the
 * pages come back (UFFDIO_MOVE, or COPY, of our copy; UFFDIO_CONTINUE for
 * device pages), which wakes the thread.  So does every change uhmm makes
 * to the range (mirror_invalidate), another mirror faulting the pages,
 * the program's munmap, madvise and mremap, and fork() (in the parent,
 * before the child copies the address space: the kernel does the same).
 *
 * Bookkeeping is per 2 MiB block and mirror: one block is held by one
 * mirror at a time, and its system pages have a 2 MiB slot of our own
 * room, congruent with the block so that huge pages move whole.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "compat.h"
#include "exclusive.h"

/* ---- blocks and bits ------------------------------------------------------- */

static size_t pidx(uintptr_t a)
{
	return (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1);
}

static bool bit(const uint64_t *m, size_t i)
{
	return m[i / 64] & (1ull << (i % 64));
}

static void bit_set(uint64_t *m, size_t i)
{
	m[i / 64] |= 1ull << (i % 64);
}

static void bit_clear(uint64_t *m, size_t i)
{
	m[i / 64] &= ~(1ull << (i % 64));
}

static bool held(const struct xblock *x, size_t i)
{
	return bit(x->sys, i) || bit(x->dev, i);
}

static bool block_empty(const struct xblock *x)
{
	for (size_t k = 0; k < BLOCK_PAGES / 64; k++)
		if (x->sys[k] | x->dev[k])
			return false;
	return true;
}

static size_t bucket_of(uintptr_t base)
{
	return ((base >> BLOCK_SHIFT) * 0x9e3779b97f4a7c15ull) >> 56;	/* 8 bits */
}

static struct xblock *xfind(struct uhmm *h, uintptr_t a)
{
	uintptr_t base = a & ~(BLOCK_SIZE - 1);

	if (excl_none(h))
		return NULL;
	for (struct xblock *x = h->excl->bucket[bucket_of(base)]; x; x = x->next)
		if (x->base == base)
			return x;
	return NULL;
}

static char *stage_of(struct uhmm *h, const struct xblock *x, uintptr_t a)
{
	return h->excl->space + ((size_t)x->slot << BLOCK_SHIFT) + (a - x->base);
}

/* Our room: reserved, never committed until pages move in. */
static int space_reserve(struct excl *e)
{
	size_t len = (size_t)EXCL_SLOTS << BLOCK_SHIFT;
	uintptr_t raw, p;

	if (e->space)
		return 0;
	raw = (uintptr_t)mmap(NULL, len + BLOCK_SIZE, PROT_NONE,
			      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if ((void *)raw == MAP_FAILED)
		return -ENOMEM;
	/* 2 MiB aligned, the slack given back */
	p = (raw + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1);
	if (p > raw)
		munmap((void *)raw, p - raw);
	if (raw + BLOCK_SIZE > p)
		munmap((void *)(p + len), raw + BLOCK_SIZE - p);
	e->space = (char *)p;
	return 0;
}

static struct xblock *xnew(struct uhmm *h, uintptr_t base, struct uhmm_mirror *m)
{
	struct excl *e = h->excl;
	struct xblock *x;
	size_t s, k;

	for (s = 0; s < EXCL_SLOTS && bit(e->used, s); s++)
		;
	if (s == EXCL_SLOTS || space_reserve(e))
		return NULL;
	x = mem_alloc(sizeof(*x));
	if (!x)
		return NULL;
	x->base = base;
	x->m = m;
	x->slot = s;
	bit_set(e->used, s);
	k = bucket_of(base);
	x->next = e->bucket[k];
	e->bucket[k] = x;
	e->count++;
	return x;
}

/* The block is the program's again: our copy's pages are freed. */
static void xfree(struct uhmm *h, struct xblock *x)
{
	struct excl *e = h->excl;
	struct xblock **pp = &e->bucket[bucket_of(x->base)];

	mmap(e->space + ((size_t)x->slot << BLOCK_SHIFT), BLOCK_SIZE, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	bit_clear(e->used, x->slot);
	for (; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			break;
		}
	}
	e->count--;
	mem_free(x);
}

/* ---- taking pages back ------------------------------------------------------- */

/* Where the program moved part of the range meanwhile (mremap), if it did. */
struct moved {
	uintptr_t from, to;
	size_t len;
};

static uintptr_t now_at(const struct moved *mv, uintptr_t a)
{
	if (mv && a >= mv->from && a - mv->from < mv->len)
		return mv->to + (a - mv->from);
	return a;
}

/*
 * Our pages at `from` go to [at, at + len).  The kernel takes a run only
 * within one mapping: where it refuses, the page it stopped at goes alone
 * (a page the program unmapped takes nothing: our copy of it is dropped),
 * then the rest again.
 */
static void sys_back(struct uhmm *h, uintptr_t at, char *from, size_t len)
{
	for (size_t off = 0; off < len;) {
		size_t placed = 0;

		if (!uffd_hand_over(h, at + off, from + off, len - off, true, &placed))
			break;
		off += placed;
		if (off < len) {
			uffd_hand_over(h, at + off, from + off, PAGE_SIZE, true, &placed);
			off += PAGE_SIZE;
		}
	}
	uffd_register(h, at, len, false);
	uffd_wake(h, at, len);
}

/* COHERENT pages at [at, at + len) get their PTEs back, the same way. */
static void dev_back(struct uhmm *h, uintptr_t at, size_t len)
{
	if (!uffd_continue(h, at, len))
		return;
	for (size_t off = 0; off < len; off += PAGE_SIZE)
		uffd_continue(h, at + off, PAGE_SIZE);
	uffd_wake(h, at, len);
}

/* Runs of held pages that stay together where they go. */
static size_t run_of(const struct xblock *x, const uint64_t *m, size_t i,
		     const struct moved *mv)
{
	size_t k = i + 1;
	uintptr_t a = x->base + (i << PAGE_SHIFT);

	while (k < BLOCK_PAGES && bit(m, k) &&
	       now_at(mv, x->base + (k << PAGE_SHIFT)) == now_at(mv, a) + ((k - i) << PAGE_SHIFT))
		k++;
	return k - i;
}

static void block_back(struct uhmm *h, struct xblock *x, int initiator, bool tell,
		       const struct moved *mv)
{
	size_t lo = BLOCK_PAGES, hi = 0;

	for (size_t i = 0; i < BLOCK_PAGES; i++) {
		if (held(x, i)) {
			lo = i < lo ? i : lo;
			hi = i + 1;
		}
	}
	/* the device stops first: the pages must not change under the CPU */
	if (tell && hi > lo && !x->m->released)
		mirror_tell(x->m, x->base + (lo << PAGE_SHIFT), x->base + (hi << PAGE_SHIFT),
			    UHMM_EV_EXCLUSIVE, initiator);
	for (size_t i = lo; i < hi;) {
		size_t n = 1;

		uintptr_t a = x->base + (i << PAGE_SHIFT);

		if (bit(x->sys, i)) {
			n = run_of(x, x->sys, i, mv);
			sys_back(h, now_at(mv, a), stage_of(h, x, a), n << PAGE_SHIFT);
		} else if (bit(x->dev, i)) {
			n = run_of(x, x->dev, i, mv);
			dev_back(h, now_at(mv, a), n << PAGE_SHIFT);
		}
		i += n;
	}
	xfree(h, x);
}

/* Every block overlapping [s, e), held by anyone but keep: looked up
 * block by block, or, for a range of more blocks than are held at most,
 * found in the table. */
static void revoke_range(struct uhmm *h, uintptr_t s, uintptr_t e, int initiator,
			 const struct uhmm_mirror *keep, bool tell, const struct moved *mv)
{
	if ((e - s) >> BLOCK_SHIFT > EXCL_SLOTS) {
		for (size_t k = 0; k < EXCL_BUCKETS && !excl_none(h); k++) {
			struct xblock *x = h->excl->bucket[k], *next;

			for (; x; x = next) {
				next = x->next;
				if (x->m != keep && x->base < e && x->base + BLOCK_SIZE > s)
					block_back(h, x, initiator, tell, mv);
			}
		}
		return;
	}
	for (uintptr_t a = s & ~(BLOCK_SIZE - 1); a < e && !excl_none(h); a += BLOCK_SIZE) {
		struct xblock *x = xfind(h, a);

		if (x && x->m != keep)
			block_back(h, x, initiator, tell, mv);
		if (a + BLOCK_SIZE < a)
			break;
	}
}

void excl_revoke(struct uhmm *h, uintptr_t s, uintptr_t e, int initiator,
		 const struct uhmm_mirror *keep)
{
	if (!excl_none(h))
		revoke_range(h, s, e, initiator, keep, true, NULL);
}

bool excl_cpu_fault(struct uhmm *h, uintptr_t a, uint64_t read_at)
{
	struct xblock *x = xfind(h, a);
	bool clear;

	if (!x || !held(x, pidx(a)))
		return false;
	/* a fault read before the grant was served before it (a second
	 * message of one access: events_reads): the device keeps the block,
	 * and a thread that does wait still faults again */
	if (read_at && read_at <= x->granted_at) {
		uffd_wake(h, page_down(a), PAGE_SIZE);
		return true;
	}
	/* a DONTNEED we have read but not applied: our copy must not come
	 * back over it; the access faults again once it is applied.  (The
	 * look and the placement are not one step, as they are for other
	 * faults: the mirror's callback runs between them, and must not run
	 * with the reader held off.) */
	fill_begin(h);
	clear = fill_clear(h, x->base, x->base + BLOCK_SIZE);
	fill_end(h);
	if (!clear) {
		uffd_wake(h, page_down(a), PAGE_SIZE);
		return true;
	}
	block_back(h, x, 0, true, NULL);
	return true;
}

void excl_removed(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = page_down(s); a < e && !excl_none(h); a += PAGE_SIZE) {
		struct xblock *x = xfind(h, a);

		if (!x) {
			a = (a | (BLOCK_SIZE - 1));
			continue;
		}
		/* system pages read back as zeros: our copy of them goes */
		if (bit(x->sys, pidx(a)))
			madvise(stage_of(h, x, a), PAGE_SIZE, MADV_DONTNEED);
		bit_clear(x->sys, pidx(a));
		/* device pages become zeroed system memory (events.c) */
		bit_clear(x->dev, pidx(a));
	}
}

void excl_remapped(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len)
{
	struct moved mv = { from, to, len };

	if (!excl_none(h))
		revoke_range(h, from, from + len, 0, NULL, true, &mv);
}

void excl_drop_mirror(struct uhmm *h, struct uhmm_mirror *m)
{
	for (size_t k = 0; k < EXCL_BUCKETS && !excl_none(h); k++) {
		struct xblock *x = h->excl->bucket[k], *next;

		for (; x; x = next) {
			next = x->next;
			if (x->m == m)
				block_back(h, x, 0, false, NULL);
		}
	}
}

/* ---- what mirrors see -------------------------------------------------------- */

struct uhmm_mirror *excl_owner(struct uhmm *h, uintptr_t a)
{
	struct xblock *x = xfind(h, a);

	return x && held(x, pidx(a)) ? x->m : NULL;
}

bool excl_sys(struct uhmm *h, uintptr_t a)
{
	struct xblock *x = xfind(h, a);

	return x && bit(x->sys, pidx(a));
}

void excl_fill(struct uhmm *h, struct uhmm_mirror *m, uintptr_t s, uintptr_t e,
	       bool writable, struct uhmm_pte *ptes)
{
	for (uintptr_t a = s; a < e && !excl_none(h);) {
		struct xblock *x = xfind(h, a);
		uintptr_t lim = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

		if (lim > e || lim < a)
			lim = e;
		for (; x && a < lim; a += PAGE_SIZE) {
			struct uhmm_pte *p = &ptes[(a - s) >> PAGE_SHIFT];
			size_t i = pidx(a);

			if (bit(x->sys, i)) {
				p->loc = UHMM_LOC_SYSTEM;
				p->dev_off = 0;
				p->host = x->m == m ? (uintptr_t)stage_of(h, x, a) : 0;
				p->flags = x->m != m ? 0 : UHMM_PTE_VALID | UHMM_PTE_EXCLUSIVE |
					   (writable ? UHMM_PTE_WRITE : 0);
			} else if (bit(x->dev, i) && x->m == m) {
				p->flags |= UHMM_PTE_EXCLUSIVE;
			} else if (bit(x->dev, i)) {
				p->flags = 0;
				p->host = 0;
			}
		}
		a = lim;
	}
}

/* ---- giving pages ---------------------------------------------------------- */

/* System pages [a, a + len) of one mapping move to our copy at `to`. */
static int sys_out(struct uhmm *h, uintptr_t a, size_t len, char *to)
{
	struct iovec l = { to, len }, rm = { (void *)a, len };
	int r = uffd_register_missing(h, a, len);

	if (r)
		return r;
	if (h->feat & UHMM_FEAT_REMAP_FENCE) {
		if (mm_move_keep(h, a, len, (uintptr_t)to) == MAP_FAILED)
			return -errno;
		/* the registration travelled with the page tables */
		uffd_unregister(h, (uintptr_t)to, len);
		mprotect(to, len, PROT_READ | PROT_WRITE);
		return 0;
	}
	if (!(h->feat & UHMM_FEAT_WP))
		return -EOPNOTSUPP;
	/* writers wait while we copy; readers read what we copy */
	r = uffd_wp(h, a, len, true);
	if (!r && mmap(to, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) == MAP_FAILED)
		r = -errno;
	if (!r && syscall(SYS_process_vm_readv, getpid(), &l, 1, &rm, 1, 0) != (ssize_t)len)
		r = -EAGAIN;
	if (!r)
		r = mm_zap(h, a, len);
	/* the markers of the fence would make the next access a WP fault */
	uffd_wp(h, a, len, false);
	uffd_wake(h, a, len);
	return r;
}

static int mark_run(struct uhmm *h, struct xblock *x, const struct seg *sg, uintptr_t a,
		    uintptr_t e)
{
	size_t i = pidx(a), n = (e - a) >> PAGE_SHIFT;
	int r;

	if (sg->v.kind == VMA_DEV) {
		r = mm_zap(h, a, e - a);
		for (size_t k = 0; !r && k < n; k++)
			bit_set(x->dev, i + k);
		return r;
	}
	r = sys_out(h, a, e - a, stage_of(h, x, a));
	for (size_t k = 0; !r && k < n; k++)
		bit_set(x->sys, i + k);
	return r;
}

/* Pages that need nothing: held already, or on m's own private device. */
static bool needs_nothing(struct uhmm *h, struct uhmm_mirror *m, const struct xblock *x,
			  uintptr_t a)
{
	if (x && held(x, pidx(a)))
		return true;
	return pt_loc(&h->pt, a, NULL) == m->dev_id && m->dev->kind == UHMM_MEM_PRIVATE;
}

static int grant_block(struct uhmm *h, struct uhmm_mirror *m, const struct seg *sg,
		       uintptr_t a, uintptr_t lim)
{
	struct xblock *x = xfind(h, a);
	int r = 0;

	if (x && x->m != m) {
		block_back(h, x, m->dev_id, true, NULL);
		x = NULL;
	}
	while (a < lim && !r) {
		uintptr_t s;

		if (needs_nothing(h, m, x, a)) {
			a += PAGE_SIZE;
			continue;
		}
		if (!x && !(x = xnew(h, a & ~(BLOCK_SIZE - 1), m)))
			return -ENOMEM;
		x->granted_at = events_reads(h);
		for (s = a; a < lim && !needs_nothing(h, m, x, a); a += PAGE_SIZE)
			;
		r = mark_run(h, x, sg, s, a);
	}
	if (x && block_empty(x))
		xfree(h, x);
	return r;
}

/* Room for every block of f not held by m yet? */
static bool room_for(struct uhmm *h, struct uhmm_mirror *m, const struct rf *f)
{
	size_t need = 0, freed = 0;

	for (uintptr_t a = f->s & ~(BLOCK_SIZE - 1); a < f->e; a += BLOCK_SIZE) {
		struct xblock *x = xfind(h, a);

		need += !x || x->m != m;
		freed += x && x->m != m;
	}
	return h->excl->count - freed + need <= EXCL_SLOTS;
}

int excl_grant(struct uhmm *h, struct uhmm_mirror *m, const struct rf *f)
{
	int r = 0;

	if (!h->excl && !(h->excl = mem_alloc(sizeof(*h->excl))))
		return -ENOMEM;
	if (!room_for(h, m, f))
		return -ENOMEM;
	for (size_t i = 0; i < f->nseg && !r; i++) {
		const struct seg *sg = &f->seg[i];

		for (uintptr_t a = sg->start; a < sg->end && !r;) {
			uintptr_t lim = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

			if (lim > sg->end)
				lim = sg->end;
			r = grant_block(h, m, sg, a, lim);
			a = lim;
		}
	}
	return r;
}

/* ---- fork, and the end ------------------------------------------------------- */

/*
 * The child copies the address space as it is: pages in our copy would
 * be lost to it, so every block comes back before the fork (fork.c's
 * prepare, with the context held), as the kernel restores device-exclusive
 * entries before it copies them.
 */
void excl_before_fork(struct uhmm *h)
{
	if (!excl_none(h))
		revoke_range(h, 0, UINTPTR_MAX, 0, NULL, true, NULL);
}

void excl_fini(struct uhmm *h)
{
	if (!h->excl)
		return;
	for (size_t k = 0; k < EXCL_BUCKETS; k++)
		while (h->excl->bucket[k])
			xfree(h, h->excl->bucket[k]);
	if (h->excl->space)
		munmap(h->excl->space, (size_t)EXCL_SLOTS << BLOCK_SHIFT);
	mem_free(h->excl);
	h->excl = NULL;
}
