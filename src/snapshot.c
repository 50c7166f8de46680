// SPDX-License-Identifier: MIT
/*
 * What uhmm_range_fault answers: one entry per page, from what uhmm knows
 * itself and what only the kernel knows.
 *
 * Pages on a device need no kernel call: the page table says where each
 * lives, and a 2 MiB block bound whole to one device chunk is one device
 * mapping (order 9).  For the others PAGEMAP_SCAN (6.7) answers in runs -
 * a populated huge page is one region, an untouched range none at all -
 * with the categories a driver needs: present, swapped, the zero page,
 * write-protected by userfaultfd, PMD-mapped.  Where it cannot tell
 * enough, /proc/self/pagemap is read page by page, as before 6.7:
 *  - a private page is writable without a copy only when this process
 *    maps it alone, which pagemap says (PM_EXCLUSIVE) and PAGEMAP_SCAN does
 *    not.  Anonymous pages are shared only after a fork or by KSM: until
 *    the process forks (pthread_atfork tells us) and while KSM merges none
 *    of its pages (/proc/self/ksm_stat), every present private anonymous
 *    page outside the zero page is its alone.
 * Then the entries themselves are most of the cost (24 bytes a page, 6 MiB
 * for a GiB): runs are written with 16-byte stores, two entries at a time.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "exclusive.h"
#include "mirror.h"

#define HUGE_ORDER	(BLOCK_SHIFT - PAGE_SHIFT)
#define SCAN_REGIONS	256
#define PM_CHUNK	512

static inline uint32_t order_flag(unsigned order)
{
	return (uint32_t)order << 24;
}

/* ---- entries in bulk -------------------------------------------------- */

typedef uint64_t v2u64 __attribute__((vector_size(16)));

/*
 * n entries like *t, host and dev_off growing by hstep and dstep a page:
 * two entries are 48 bytes, three 16-byte stores (the loop is bound by
 * stores: field by field it runs at half the speed).
 */
static void pte_run(struct uhmm_pte *p, size_t n, const struct uhmm_pte *t,
		    uint64_t hstep, uint64_t dstep)
{
	uint64_t lf;
	char *q = (char *)p;
	size_t i = 0;

	memcpy(&lf, &t->loc, sizeof(lf));	/* loc and flags, as laid out */
	v2u64 a = { t->host, t->dev_off };
	v2u64 b = { lf, t->host + hstep };
	v2u64 c = { t->dev_off + dstep, lf };
	v2u64 ia = { 2 * hstep, 2 * dstep }, ib = { 0, 2 * hstep }, ic = { 2 * dstep, 0 };

	for (; i + 2 <= n; i += 2, q += 2 * sizeof(*p)) {
		memcpy(q, &a, sizeof(a));
		memcpy(q + 16, &b, sizeof(b));
		memcpy(q + 32, &c, sizeof(c));
		a += ia;
		b += ib;
		c += ic;
	}
	if (i < n) {
		p[i] = *t;
		p[i].host += i * hstep;
		p[i].dev_off += i * dstep;
	}
}

static void pte_none(struct uhmm_pte *p, size_t n, uint32_t flags)
{
	struct uhmm_pte t = { .loc = UHMM_LOC_NONE, .flags = flags };

	pte_run(p, n, &t, 0, 0);
}

/* ---- may a private anonymous page be shared? ---------------------------- */

static _Atomic uint64_t forks;

static void note_fork(void)
{
	atomic_fetch_add(&forks, 1);
}

static void __attribute__((constructor)) watch_forks(void)
{
	pthread_atfork(NULL, note_fork, note_fork);
}

/* Has KSM merged any page of ours?  No KSM at all: no. */
static bool ksm_read(void)
{
	char buf[512], *p;
	ssize_t n = proc_read_text("/proc/self/ksm_stat", buf, sizeof(buf));

	if (n < 0)
		return n != -ENOENT;
	p = strstr(buf, "ksm_merging_pages ");
	return !p || strtoul(p + strlen("ksm_merging_pages "), NULL, 10) != 0;
}

/*
 * Asked at most every KSM_RECHECK_NS: reading the file costs as much as a
 * tenth of a GiB's snapshot, and ksmd merges at its own slow pace (a few
 * thousand pages a second by default) without telling any mirror anyway.
 */
#define KSM_RECHECK_NS	(50 * 1000 * 1000)

static bool ksm_merged(void)
{
	static _Atomic uint64_t checked, merged;
	uint64_t now = mono_ns(), t = atomic_load(&checked);

	if (!t || now - t > KSM_RECHECK_NS) {
		atomic_store(&merged, ksm_read());
		atomic_store(&checked, now);
	}
	return atomic_load(&merged);
}

/* ---- the kernel's account of system pages ------------------------------ */

struct kview {
	struct uhmm *h;
	const struct seg *sg;
	bool scan;			/* PAGEMAP_SCAN, else pagemap reads */
	int fd;				/* /proc/self/pagemap */
	unsigned huge;			/* order of a PMD or hugetlb mapping */
	uint32_t w;			/* UHMM_PTE_WRITE if the mapping has it */
	bool dev_pages;			/* some private device holds pages */
	/* scan: regions of populated pages from `at` up to walk_end */
	uintptr_t walk_end;
	long n, i;
	struct page_region reg[SCAN_REGIONS];
	/* reads: a chunk of entries from pm_at */
	uintptr_t pm_at, pm_end;
	uint64_t pm[PM_CHUNK];
};

static int scan_more(struct kview *k, uintptr_t at)
{
	uint64_t cats = PAGE_IS_PRESENT | PAGE_IS_SWAPPED;
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = at,
		.end = k->sg->end,
		.vec = (uintptr_t)k->reg,
		.vec_len = SCAN_REGIONS,
		.category_anyof_mask = cats,
		.return_mask = cats | PAGE_IS_WRITTEN | PAGE_IS_PFNZERO | PAGE_IS_HUGE |
			       (k->sg->v.kind == VMA_ANON ? 0 : PAGE_IS_FILE),
	};
	long n = ioctl(k->fd, PAGEMAP_SCAN, &arg);

	if (n < 0)
		return -errno;
	if (arg.walk_end <= at)
		return -EIO;
	k->n = n;
	k->i = 0;
	k->walk_end = arg.walk_end;
	return 0;
}

static void sys_run(struct kview *k, struct uhmm_pte *p, uintptr_t a, size_t n, uint64_t cats)
{
	struct uhmm_pte t = { .loc = UHMM_LOC_SYSTEM };

	if (cats & PAGE_IS_PRESENT) {
		t.host = a;
		t.flags = UHMM_PTE_VALID;
		if (cats & PAGE_IS_PFNZERO)
			t.flags |= UHMM_PTE_ZERO;
		else if ((cats & PAGE_IS_WRITTEN) && (k->sg->v.shared || !(cats & PAGE_IS_FILE)))
			t.flags |= k->w;
		if (cats & PAGE_IS_HUGE)
			t.flags |= order_flag(k->huge);
	}
	/* swapped out: the device cannot reach it now */
	pte_run(p, n, &t, t.host ? PAGE_SIZE : 0, 0);
}

/* [a, b) from PAGEMAP_SCAN's regions; p is a's entry. */
static int scan_fill(struct kview *k, uintptr_t a, uintptr_t b, struct uhmm_pte *p)
{
	while (a < b) {
		const struct page_region *rg;
		uintptr_t lim;
		int r;

		if (a >= k->walk_end && (r = scan_more(k, a)))
			return r;
		while (k->i < k->n && k->reg[k->i].end <= a)
			k->i++;
		lim = b < k->walk_end ? b : k->walk_end;
		rg = k->i < k->n ? &k->reg[k->i] : NULL;
		if (rg && rg->start <= a) {
			uintptr_t e = rg->end < lim ? rg->end : lim;

			sys_run(k, p, a, (e - a) >> PAGE_SHIFT, rg->categories);
			p += (e - a) >> PAGE_SHIFT;
			a = e;
		} else {
			uintptr_t e = rg && rg->start < lim ? rg->start : lim;

			pte_none(p, (e - a) >> PAGE_SHIFT, 0);
			p += (e - a) >> PAGE_SHIFT;
			a = e;
		}
	}
	return 0;
}

/*
 * The shared zero page's frame, where this process may see frame numbers
 * (CAP_SYS_ADMIN); 0 where it cannot tell.  Our own zero page is a private
 * read-only mapping: reading it maps the shared zero page there.
 */
static uint64_t zero_pfn(struct uhmm *h, int fd)
{
	static _Atomic uint64_t pfn = UINT64_MAX;
	uint64_t v = atomic_load(&pfn), e = 0;

	if (v != UINT64_MAX)
		return v;
	(void)*(volatile char *)h->zero_page;
	if (pread(fd, &e, 8, ((uintptr_t)h->zero_page >> PAGE_SHIFT) * 8) != 8)
		e = 0;
	v = (e & PM_PRESENT) ? e & PM_PFN : 0;
	atomic_store(&pfn, v);
	return v;
}

bool pm_writable(const struct seg *sg, uint64_t pm)
{
	if (!(sg->v.prot & PROT_WRITE) || !(pm & PM_PRESENT) || (pm & PM_UFFD_WP))
		return false;
	return sg->v.shared || ((pm & PM_EXCLUSIVE) && !(pm & PM_FILE));
}

static void pm_pte(struct kview *k, uintptr_t a, uint64_t pm, uint64_t zp, struct uhmm_pte *p)
{
	memset(p, 0, sizeof(*p));
	p->loc = UHMM_LOC_NONE;
	if (!(pm & (PM_PRESENT | PM_SWAPPED)))
		return;
	p->loc = UHMM_LOC_SYSTEM;
	if (!(pm & PM_PRESENT))
		return;
	p->host = a;
	p->flags = UHMM_PTE_VALID;
	if (pm_writable(k->sg, pm))
		p->flags |= UHMM_PTE_WRITE;
	if (zp && !(pm & PM_FILE) && (pm & PM_PFN) == zp)
		p->flags |= UHMM_PTE_ZERO;
}

/* [a, b) from /proc/self/pagemap, a chunk of entries at a time. */
static int read_fill(struct kview *k, uintptr_t a, uintptr_t b, struct uhmm_pte *p)
{
	uint64_t zp = zero_pfn(k->h, k->fd);

	for (; a < b; a += PAGE_SIZE, p++) {
		if (a < k->pm_at || a >= k->pm_end) {
			size_t n = (k->sg->end - a) >> PAGE_SHIFT;
			ssize_t got;

			if (n > PM_CHUNK)
				n = PM_CHUNK;
			got = pread(k->fd, k->pm, n * 8, (a >> PAGE_SHIFT) * 8);
			if (got < 8)
				return got < 0 ? -errno : -EIO;
			k->pm_at = a;
			k->pm_end = a + ((size_t)got / 8 << PAGE_SHIFT);
		}
		pm_pte(k, a, k->pm[(a - k->pm_at) >> PAGE_SHIFT], zp, p);
	}
	return 0;
}

static int sys_fill(struct kview *k, uintptr_t a, uintptr_t b, struct uhmm_pte *p)
{
	return k->scan ? scan_fill(k, a, b, p) : read_fill(k, a, b, p);
}

/* ---- pages the page table knows ---------------------------------------- */

/*
 * A run of n pages on device d from page i of block b (contiguous in
 * device memory), for mirror m.  A run of the whole block (which then lies
 * whole in the segment) at the pages of one aligned chunk is one device
 * mapping of 2 MiB.
 */
static void dev_run(struct uhmm_mirror *m, const struct seg *sg, const struct vblock *b,
		    size_t i, size_t n, struct uhmm_dev *d, struct uhmm_pte *p)
{
	struct uhmm_pte t = { .loc = d->id, .dev_off = devmem_off(d, b->dpage[i]) };
	uint32_t w = (sg->v.prot & PROT_WRITE) ? UHMM_PTE_WRITE : 0;
	bool huge = n == BLOCK_PAGES && b->dpage[0] % BLOCK_PAGES == 0;

	if (d->kind == UHMM_MEM_COHERENT) {
		t.host = (uintptr_t)d->view + ((uintptr_t)b->dpage[i] << PAGE_SHIFT);
		t.flags = UHMM_PTE_VALID | w;
	} else if (d == m->dev) {
		t.flags = UHMM_PTE_VALID | w;	/* host 0: only the device reaches it */
	}
	if (huge && t.flags)
		t.flags |= order_flag(HUGE_ORDER);
	pte_run(p, n, &t, d->kind == UHMM_MEM_COHERENT ? PAGE_SIZE : 0, PAGE_SIZE);
}

/* Is the whole block on one device, in order?  Without an early exit, so
 * that the compiler vectorises it: it is the common case. */
static bool one_run(const struct vblock *b)
{
	uint32_t bad = 0;

	for (uint32_t k = 0; k < BLOCK_PAGES; k++)
		bad |= (uint32_t)(b->loc[k] ^ b->loc[0]) | (b->dpage[k] ^ (b->dpage[0] + k));
	return !bad;
}

/* How many pages from i (up to n) are on the same device, in order? */
static size_t dev_run_len(const struct vblock *b, size_t i, size_t n)
{
	size_t k = i + 1;

	if (i == 0 && n == BLOCK_PAGES && one_run(b))
		return BLOCK_PAGES;

	while (k < n && b->loc[k] == b->loc[i] && b->dpage[k] == b->dpage[k - 1] + 1)
		k++;
	return k - i;
}

static const uint8_t all_sys[BLOCK_PAGES];	/* LOC_SYS is 0 */

/*
 * [a, lim) of an anonymous mapping, within one block: pages on a private
 * device from the page table, the rest from the kernel.
 */
static int anon_block(struct kview *k, struct uhmm_mirror *m, uintptr_t a, uintptr_t lim,
		      struct uhmm_pte *p)
{
	struct uhmm *h = k->h;
	struct vblock *b = k->dev_pages ? pt_find(&h->pt, a) : NULL;
	size_t i = (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1), n = i + ((lim - a) >> PAGE_SHIFT);
	int r = 0;

	if (!b || !memcmp(b->loc + i, all_sys, n - i))
		return sys_fill(k, a, lim, p);
	while (i < n && !r) {
		size_t run;

		if (loc_private(h, b->loc[i])) {
			run = dev_run_len(b, i, n);
			dev_run(m, k->sg, b, i, run, dev_by_id(h, b->loc[i]), p);
		} else {
			for (run = 1; i + run < n && !loc_private(h, b->loc[i + run]); run++)
				;
			r = sys_fill(k, b->base + (i << PAGE_SHIFT),
				     b->base + ((i + run) << PAGE_SHIFT), p);
		}
		p += run;
		i += run;
	}
	return r;
}

/* A mapping of a COHERENT device: its pages are where the page table says;
 * a page we did not put there reads as zeros once touched. */
static void dev_block(struct uhmm *h, struct uhmm_mirror *m, const struct seg *sg,
		      uintptr_t a, uintptr_t lim, struct uhmm_pte *p)
{
	struct vblock *b = pt_find(&h->pt, a);
	struct uhmm_dev *d = sg->v.dev;
	size_t i = (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1), n = i + ((lim - a) >> PAGE_SHIFT);

	if (!b) {
		pte_none(p, n - i, 0);
		return;
	}
	while (i < n) {
		size_t run = dev_run_len(b, i, n);

		if (b->loc[i] == d->id)
			dev_run(m, sg, b, i, run, d, p);
		else
			pte_none(p, run, 0);
		p += run;
		i += run;
	}
}

/* READ_MOSTLY duplicates in the mirror's device memory: read-only there. */
static void dup_entries(struct uhmm *h, struct uhmm_mirror *m, const struct seg *sg,
			struct uhmm_pte *p)
{
	struct uhmm_dev *d = m->dev;

	if (!d || !d->used_pages || sg->v.kind != VMA_ANON || !dup_any(h, sg->start, sg->end))
		return;
	for (uintptr_t a = sg->start; a < sg->end; a += PAGE_SIZE, p++) {
		uint32_t dp;

		if (pt_loc(&h->pt, a, NULL) != LOC_SYS || !dup_find(h, a, d, &dp))
			continue;
		*p = (struct uhmm_pte){
			.loc = d->id,
			.dev_off = devmem_off(d, dp),
			.host = d->view ? (uintptr_t)d->view + ((uintptr_t)dp << PAGE_SHIFT) : 0,
			.flags = UHMM_PTE_VALID,
		};
	}
}

/* ---- one segment at a time ---------------------------------------------- */

static unsigned huge_order(const struct seg *sg)
{
	unsigned o = 0;

	if (sg->v.page_size <= PAGE_SIZE)
		return HUGE_ORDER;
	while (((size_t)PAGE_SIZE << o) < sg->v.page_size)
		o++;
	return o;
}

/* May private anonymous pages be shared (fork, KSM)?  Asked once a call,
 * and only when a private mapping would be scanned. */
enum { SHARED_UNKNOWN, SHARED_NO, SHARED_MAYBE };

static bool may_share(int *state)
{
	if (*state == SHARED_UNKNOWN)
		*state = atomic_load(&forks) || ksm_merged() ? SHARED_MAYBE : SHARED_NO;
	return *state == SHARED_MAYBE;
}

static int seg_fill(struct uhmm *h, struct rf *f, struct kview *k, const struct seg *sg,
		    int *shared, struct uhmm_pte *p)
{
	int r = 0;

	if (seg_error(sg)) {
		pte_none(p, (sg->end - sg->start) >> PAGE_SHIFT, UHMM_PTE_ERROR);
		return 0;
	}
	k->sg = sg;
	k->scan = (h->feat & UHMM_FEAT_PAGEMAP_SCAN) && sg->v.kind != VMA_DEV &&
		  (sg->v.shared || !may_share(shared));
	k->huge = huge_order(sg);
	k->w = (sg->v.prot & PROT_WRITE) ? UHMM_PTE_WRITE : 0;
	k->walk_end = sg->start;
	k->n = k->i = 0;
	k->pm_at = k->pm_end = 0;
	for (uintptr_t a = sg->start; a < sg->end && !r;) {
		uintptr_t lim = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

		if (lim > sg->end)
			lim = sg->end;
		if (sg->v.kind == VMA_DEV)
			dev_block(h, f->m, sg, a, lim, p);
		else if (sg->v.kind == VMA_ANON)
			r = anon_block(k, f->m, a, lim, p);
		else
			r = sys_fill(k, a, lim, p);
		p += (lim - a) >> PAGE_SHIFT;
		a = lim;
	}
	return r;
}

/* ---- the range, in one or two parts ------------------------------------ */

/* [lo, hi) of the range: the entries of every segment's part in it.  Two
 * of these may run at once, on either side of a block boundary. */
struct part {
	struct uhmm *h;
	struct rf *f;
	struct uhmm_pte *ptes;
	uintptr_t lo, hi;
	bool dev_pages;
	int fd, r;
};

static void part_fill(void *arg)
{
	struct part *x = arg;
	struct kview k;		/* 10 KiB: on the stack, no mapping per call */
	int shared = SHARED_UNKNOWN;

	k.h = x->h;
	k.dev_pages = x->dev_pages;
	k.fd = x->fd;
	x->r = 0;
	for (size_t i = 0; i < x->f->nseg && !x->r; i++) {
		struct seg sg = x->f->seg[i];

		if (sg.end <= x->lo || sg.start >= x->hi)
			continue;
		sg.start = sg.start > x->lo ? sg.start : x->lo;
		sg.end = sg.end < x->hi ? sg.end : x->hi;
		x->r = seg_fill(x->h, x->f, &k, &sg, &shared,
				x->ptes + ((sg.start - x->f->s) >> PAGE_SHIFT));
	}
}

/*
 * At uhmm_open: UHMM_SNAPSHOT_SPLIT=MiB sets how big a snapshot must be to
 * take two threads (0: never).  Below the default, waking the helper costs
 * more than its half saves.
 */
#define SPLIT_MIN_DEFAULT	(128ul << 20)

size_t snapshot_split_min(void)
{
	return split_min_env("UHMM_SNAPSHOT_SPLIT", SPLIT_MIN_DEFAULT);
}

/*
 * Where the helper thread takes the upper half, if anywhere: a block
 * boundary near the middle of a range of at least split_min bytes.
 */
static uintptr_t split_at(struct uhmm *h, const struct rf *f)
{
	uintptr_t mid = (f->s + (f->e - f->s) / 2) & ~(BLOCK_SIZE - 1);

	if (!h->split_min || f->e - f->s < h->split_min || mid <= f->s)
		return 0;
	return mid;
}

int snapshot_fill(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes)
{
	struct part lower = { .h = h, .f = f, .ptes = ptes, .lo = f->s, .hi = f->e };
	struct part upper;
	uintptr_t mid;
	bool split = false;

	for (int i = 1; i <= MAX_DEVS; i++)
		if (h->dev[i] && h->dev[i]->kind == UHMM_MEM_PRIVATE && h->dev[i]->used_pages)
			lower.dev_pages = true;
	lower.fd = procfd(PROC_PAGEMAP);
	if (lower.fd < 0)
		return lower.fd;
	mid = split_at(h, f);
	if (mid) {
		upper = lower;
		upper.lo = lower.hi = mid;
		/* under the context lock, which makes the helper ours */
		if (!h->helper)
			h->helper = helper_new("uhmm-helper", &h->helper_tid);
		split = helper_post(h->helper, part_fill, &upper);
		if (!split)
			lower.hi = f->e;
	}
	part_fill(&lower);
	if (split) {
		helper_wait(h->helper);
		if (!lower.r)
			lower.r = upper.r;
	}
	if (lower.r)
		return lower.r;
	/* rare, and they look the page table up as they go: one thread */
	for (size_t i = 0; i < f->nseg; i++) {
		const struct seg *sg = &f->seg[i];
		struct uhmm_pte *p = ptes + ((sg->start - f->s) >> PAGE_SHIFT);

		if (seg_error(sg))
			continue;
		dup_entries(h, f->m, sg, p);
		excl_fill(h, f->m, sg->start, sg->end, sg->v.prot & PROT_WRITE, p);
	}
	return 0;
}
