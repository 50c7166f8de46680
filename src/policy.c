// SPDX-License-Identifier: MIT
/*
 * Placement driven by the device's own access information, not by the
 * kernel's NUMA balancing: only the driver knows how often its device
 * touches a page.  Each device access operation that touches a 2 MiB block
 * (one uhmm_sim_read/write, or what a driver reports with
 * uhmm_dev_report_access) adds to that block's counter for that device;
 * counters halve every access_decay_ms (a second by default), so that a
 * burst long ago does not count forever.  A counter reaching
 * access_threshold migrates the block's movable parts to that device,
 * unless advice says otherwise: never away
 * from a preferred location, never for a device the range is
 * ACCESSED_BY, never for READ_MOSTLY (duplicates instead), never pinned
 * memory.
 *
 * Thrashing: a block that moves between system memory and a device (a
 * migration by these counters, or CPU faults bringing it home) more than
 * thrash_moves times within thrash_window_ms stays where it is for
 * thrash_pin_ms: in system memory, which both reach, after its CPU faults,
 * or on a COHERENT device.  Device accesses also refresh the LRU order of
 * the device pages they touch, so eviction follows use.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "migrate.h"
#include "trace.h"

#define COUNTED_DEVS	4		/* devices counted per block */

struct blk {
	uintptr_t base;
	struct blk *next;
	uint64_t stamp_ms;		/* counters halved up to here */
	int dev[COUNTED_DEVS];		/* 0: slot free */
	uint32_t count[COUNTED_DEVS];
	uint64_t window_ms;		/* thrashing: when the window began */
	uint32_t moves;
	uint64_t pinned_until_ms;
};

struct policy {
	struct blk **bucket;
	size_t nbucket, n;
};

static uint64_t now_ms(void)
{
	return mono_ns() / 1000000;
}

static size_t blk_hash(uintptr_t base, size_t n)
{
	return ((base >> BLOCK_SHIFT) * 0x9e3779b97f4a7c15ull >> 20) & (n - 1);
}

static struct policy *policy_get(struct uhmm *h)
{
	struct policy *p = h->policy;

	if (p)
		return p;
	p = mem_alloc(sizeof(*p));
	if (!p)
		return NULL;
	p->nbucket = 256;
	p->bucket = mem_alloc(p->nbucket * sizeof(*p->bucket));
	if (!p->bucket) {
		mem_free(p);
		return NULL;
	}
	h->policy = p;
	return p;
}

static void policy_grow(struct policy *p)
{
	size_t n = p->nbucket * 2;
	struct blk **nb = mem_alloc(n * sizeof(*nb));

	if (!nb)
		return;		/* longer chains, still right */
	for (size_t i = 0; i < p->nbucket; i++) {
		for (struct blk *b = p->bucket[i], *next; b; b = next) {
			next = b->next;
			b->next = nb[blk_hash(b->base, n)];
			nb[blk_hash(b->base, n)] = b;
		}
	}
	mem_free(p->bucket);
	p->bucket = nb;
	p->nbucket = n;
}

static struct blk *blk_find(struct uhmm *h, uintptr_t addr, bool create)
{
	struct policy *p = create ? policy_get(h) : h->policy;
	uintptr_t base = addr & ~(BLOCK_SIZE - 1);
	struct blk *b;
	size_t k;

	if (!p)
		return NULL;
	k = blk_hash(base, p->nbucket);
	for (b = p->bucket[k]; b; b = b->next)
		if (b->base == base)
			return b;
	if (!create)
		return NULL;
	b = mem_alloc(sizeof(*b));
	if (!b)
		return NULL;
	b->base = base;
	b->stamp_ms = b->window_ms = now_ms();
	b->next = p->bucket[k];
	p->bucket[k] = b;
	if (++p->n > 2 * p->nbucket)
		policy_grow(p);
	return b;
}

void policy_fini(struct uhmm *h)
{
	struct policy *p = h->policy;

	if (!p)
		return;
	for (size_t i = 0; i < p->nbucket; i++) {
		for (struct blk *b = p->bucket[i], *next; b; b = next) {
			next = b->next;
			mem_free(b);
		}
	}
	mem_free(p->bucket);
	mem_free(p);
	h->policy = NULL;
}

/* Halve the counters once for every whole period (access_decay_ms) since
 * they last were. */
static void decay(struct blk *b, uint64_t now, uint32_t period_ms)
{
	uint64_t halvings = (now - b->stamp_ms) / period_ms;

	if (!halvings)
		return;
	for (int i = 0; i < COUNTED_DEVS; i++)
		b->count[i] = halvings >= 32 ? 0 : b->count[i] >> halvings;
	b->stamp_ms += halvings * period_ms;
}

/* Add n to the block's counter for device id; its new value. */
static uint32_t count_add(struct blk *b, int id, uint32_t n)
{
	int slot = -1, low = 0;

	for (int i = 0; i < COUNTED_DEVS && slot < 0; i++)
		if (b->dev[i] == id)
			slot = i;
	for (int i = 0; i < COUNTED_DEVS && slot < 0; i++)
		if (!b->dev[i])
			slot = i;
	if (slot < 0) {		/* a fifth device: the least counted gives way */
		for (int i = 1; i < COUNTED_DEVS; i++)
			if (b->count[i] < b->count[low])
				low = i;
		slot = low;
		b->count[slot] = 0;
	}
	b->dev[slot] = id;
	b->count[slot] = b->count[slot] > UINT32_MAX - n ? UINT32_MAX : b->count[slot] + n;
	return b->count[slot];
}

static void count_reset(struct blk *b, int id)
{
	for (int i = 0; i < COUNTED_DEVS; i++)
		if (b->dev[i] == id)
			b->count[i] = 0;
}

/* Drop the blocks of one chain that lie wholly in [start, end). */
static void chain_forget(struct policy *p, struct blk **pp, uintptr_t start, uintptr_t end)
{
	while (*pp) {
		struct blk *b = *pp;

		if (b->base >= start && b->base + BLOCK_SIZE <= end) {
			*pp = b->next;
			mem_free(b);
			p->n--;
		} else {
			pp = &b->next;
		}
	}
}

/*
 * The blocks wholly in [start, end) are gone (munmap, mremap away): new
 * memory mapped there later starts with no counts, no bounces, no pin.  A
 * block partly left keeps its state.  Looked up block by block, or, for a
 * range of more blocks than the table holds, found in the table.
 */
void policy_forget(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	struct policy *p = h->policy;
	uintptr_t first = (start + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1);

	if (!p || !p->n || first < start || first >= end || end - first < BLOCK_SIZE)
		return;
	if (((end - first) >> BLOCK_SHIFT) > p->n) {
		for (size_t i = 0; i < p->nbucket; i++)
			chain_forget(p, &p->bucket[i], first, end);
		return;
	}
	for (uintptr_t a = first; a >= first && end - a >= BLOCK_SIZE; a += BLOCK_SIZE)
		chain_forget(p, &p->bucket[blk_hash(a, p->nbucket)], a, a + BLOCK_SIZE);
}

bool policy_pinned(struct uhmm *h, uintptr_t addr)
{
	struct blk *b = blk_find(h, addr, false);

	return b && b->pinned_until_ms > now_ms();
}

void policy_moved(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uint64_t now = now_ms();

	if (h->opts.thrash_moves == UINT32_MAX || start >= end)
		return;
	for (uintptr_t a = start & ~(BLOCK_SIZE - 1); a < end; a += BLOCK_SIZE) {
		struct blk *b = blk_find(h, a, true);

		if (!b)
			return;
		if (now - b->window_ms > h->opts.thrash_window_ms) {
			b->window_ms = now;
			b->moves = 0;
		}
		if (++b->moves <= h->opts.thrash_moves || b->pinned_until_ms > now)
			continue;
		b->pinned_until_ms = now + h->opts.thrash_pin_ms;
		b->moves = 0;
		/* the context's counter alone (COUNT with a literal NULL device
		 * trips clang 14's UBSan, which checks the arm not taken) */
		counters_add(&h->stats, NULL, offsetof(struct counters, thrash_pins), 1);
	}
}

/* May the counters move page a to device d? */
static bool may_move(struct uhmm *h, struct uhmm_dev *d, uintptr_t a)
{
	const struct advice *adv = advice_at(h, a);
	int loc = pt_loc(&h->pt, a, NULL);

	/* READ_MOSTLY wins over PREFERRED_LOCATION, which wins over
	 * ACCESSED_BY: toward the preferred location, never away from it */
	if (loc == d->id || adv->read_mostly || adv->pinned)
		return false;
	if (adv->pref != UHMM_LOC_NONE)
		return adv->pref == d->id;
	return !(adv->accessed_by & (1ull << (d->id - 1)));
}

/*
 * Is page a the program's to move: one the access touched ([start, end)),
 * or one handed to us before (a migration, advice, an earlier access)?
 * Not every page of a mapping the access touched: the kernel merges an
 * anonymous mapping with an adjacent one of the same flags, whoever made
 * it - a sanitizer's own memory, another library's.  Moving that faults
 * its owner on a page only we can bring back, maybe with a lock held that
 * the thread serving faults needs.
 */
static bool programs(struct uhmm *h, uintptr_t a, uintptr_t start, uintptr_t end)
{
	return (a >= start && a < end) || pt_loc(&h->pt, a, NULL) != LOC_UNMANAGED;
}

static bool movable(struct uhmm *h, struct uhmm_dev *d, uintptr_t a, uintptr_t start,
		    uintptr_t end)
{
	return programs(h, a, start, end) && may_move(h, d, a);
}

/*
 * The movable parts of the block at base go to d; pages moved.  Only in
 * the mappings the access touched, and there only the program's pages:
 * the rest of the block may be anything, a library thread's stack
 * included, which would then fault to the very thread that serves faults.
 */
static size_t move_block(struct uhmm *h, struct uhmm_dev *d, uintptr_t base,
			 uintptr_t start, uintptr_t end)
{
	struct vma *vv = NULL;
	size_t n = 0, moved = 0;

	if (vma_scan_mapped(h, base, base + BLOCK_SIZE, &vv, &n))
		return 0;
	for (size_t i = 0; i < n; i++) {
		const struct vma *v = &vv[i];

		if ((v->kind != VMA_ANON && v->kind != VMA_DEV) || v->end <= start ||
		    v->start >= end || vma_check_migratable(h, v))
			continue;
		for (uintptr_t a = v->start; a < v->end;) {
			struct uhmm_migrate_res res = { .sz = sizeof(res) };
			uintptr_t s;

			while (a < v->end && !movable(h, d, a, start, end))
				a += PAGE_SIZE;
			s = a;
			while (a < v->end && movable(h, d, a, start, end))
				a += PAGE_SIZE;
			if (s < a && !advice_pinned(h, s, a)) {
				struct trace_why why = trace_because(UHMM_CAUSE_POLICY);

				migrate_range(h, s, a, d, 0, &res);
				trace_restore(why);
				moved += res.moved;
			}
		}
	}
	mem_free(vv);
	return moved;
}

/* The device's LRU order follows its accesses. */
static void touch_dev_pages(struct uhmm *h, struct uhmm_dev *d, uintptr_t base)
{
	struct vblock *vb = pt_lookup(&h->pt, base);
	long last = -1;

	for (size_t i = 0; vb && i < BLOCK_PAGES; i++) {
		long c;

		if (vb->loc[i] != d->id)
			continue;
		c = vb->dpage[i] / d->chunk_pages;
		if (c != last)
			devmem_touch(d, vb->dpage[i], ++h->clock);
		last = c;
	}
}

static void access_run(struct uhmm *h, struct uhmm_dev *d, uintptr_t start, uintptr_t end,
		       uint32_t count, uint64_t now)
{
	for (uintptr_t a = start & ~(BLOCK_SIZE - 1); a < end && count; a += BLOCK_SIZE) {
		struct blk *b;
		size_t moved;

		touch_dev_pages(h, d, a);
		if (h->opts.access_threshold == UINT32_MAX)
			continue;
		b = blk_find(h, a, true);
		if (!b)
			return;
		decay(b, now, h->opts.access_decay_ms);
		if (count_add(b, d->id, count) < h->opts.access_threshold ||
		    b->pinned_until_ms > now)
			continue;
		count_reset(b, d->id);
		moved = move_block(h, d, a, start, end);
		if (!moved)
			continue;
		COUNT(h, d, auto_migrations, moved);
		policy_moved(h, a, a + BLOCK_SIZE);
	}
}

/* Do the mappings vv cover [start, end) with no hole between them? */
static bool no_hole(const struct vma *vv, size_t n, uintptr_t start, uintptr_t end)
{
	bool whole = n && vv[0].start <= start && vv[n - 1].end >= end;

	for (size_t i = 1; whole && i < n; i++)
		whole = vv[i].start == vv[i - 1].end;
	return whole;
}

void policy_access(struct uhmm *h, struct uhmm_dev *d, uintptr_t start, uintptr_t end,
		   uint32_t count)
{
	uint64_t now = now_ms();
	struct vma *vv;
	size_t n;

	/* A long range: only its mapped parts count, and only when it has no
	 * hole.  A range reaching over unmapped space (to the top of the
	 * address space, say) would otherwise get a counter (a page each)
	 * per 2 MiB of nothing, or of what else is mapped on the way:
	 * reservations such as a sanitizer's terabytes of shadow, PROT_NONE
	 * guards: gigabytes of counters.  An access over a hole cannot have
	 * happened (a DMA there is -EFAULT), nor one to PROT_NONE memory. */
	if (((end - start) >> BLOCK_SHIFT) > 64) {
		bool whole;

		if (vma_scan_mapped(h, start, end, &vv, &n))
			return;
		whole = no_hole(vv, n, start, end);
		for (size_t i = 0; whole && i < n && count; i++)
			if (vv[i].prot & (PROT_READ | PROT_WRITE))
				access_run(h, d, vv[i].start > start ? vv[i].start : start,
					   vv[i].end < end ? vv[i].end : end, count, now);
		mem_free(vv);
		return;
	}
	access_run(h, d, start, end, count, now);
}

/*
 * What a device says it accessed is the program's memory: its anonymous
 * parts become managed, as those a device reads through its mirror do, so
 * that the block's move takes them later (programs()) and nothing beside
 * them.  Refused pieces (our own memory, PROT_NONE, sealed) just stay out.
 * A range with a hole manages nothing, as it counts nothing: it reaches
 * over whatever else is mapped on the way (a sanitizer's heap, say).
 */
static void manage_reported(struct uhmm *h, uintptr_t s, uintptr_t e)
{
	struct vma *vv = NULL;
	size_t n = 0;

	if (vma_scan_mapped(h, s, e, &vv, &n))
		return;
	if (!no_hole(vv, n, s, e))
		n = 0;
	for (size_t i = 0; i < n; i++) {
		const struct vma *v = &vv[i];

		if (v->kind == VMA_ANON && !vma_check_migratable(h, v))
			manage_range(h, v->start, v->end);
	}
	mem_free(vv);
}

int uhmm_dev_report_access(struct uhmm_dev *dev, const void *addr, size_t len,
			   uint32_t count)
{
	struct uhmm *h;
	uintptr_t s, e;
	int r;

	if (!dev)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (r)
		return r;
	h = dev->h;
	ctx_lock(h);
	events_drain(h);
	if (count)
		manage_reported(h, s, e);
	policy_access(h, dev, s, e, count);
	ctx_unlock(h);
	return 0;
}
