// SPDX-License-Identifier: MIT
/*
 * READ_MOSTLY: read-only duplicates.  A device reading (uhmm_range_fault
 * with FAULT_READ, or the sim DMA engine) a system page of a READ_MOSTLY
 * range gets a copy in its own memory; the CPU keeps its page, and both
 * copies are valid.  To keep them so, the CPU page is write-protected
 * (userfaultfd WP) before it is copied: the CPU's first write faults, and
 * the worker collapses the duplicates (every mirror that may hold them is
 * invalidated, and their device pages freed) before the write goes on.  A
 * device's write collapses them too, and the page then moves to that
 * device, where the write happens.  Eviction, removal, munmap, madvise and
 * mremap drop duplicates; nothing copies them back, they are copies.
 *
 * Without userfaultfd write-protection there is no way to see the CPU's
 * first write: READ_MOSTLY then makes no duplicates (devices read the
 * system page in place).
 *
 * Duplicates are kept per 2 MiB block, beside the page table: up to
 * DUP_SLOTS devices per block, one device page each per page.  All under
 * h->lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "migrate.h"

#define DUP_SLOTS	4

struct dupblock {
	int dev[DUP_SLOTS];			/* device id per slot, 0 free */
	uint8_t has[BLOCK_PAGES];		/* bit s: slot s holds page i */
	uint32_t dp[DUP_SLOTS][BLOCK_PAGES];
	uint32_t n;				/* duplicates in the block */
};

static size_t pidx(uintptr_t a)
{
	return (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1);
}

static struct dupblock *dups_of(struct uhmm *h, uintptr_t a)
{
	struct vblock *b = pt_block(&h->pt, a, false);

	return b ? b->dup : NULL;
}

static int slot_of(const struct dupblock *db, int id)
{
	for (int s = 0; s < DUP_SLOTS; s++)
		if (db->dev[s] == id)
			return s;
	return -1;
}

uint64_t dup_mask(struct uhmm *h, uintptr_t a)
{
	struct dupblock *db = dups_of(h, a);
	uint64_t m = 0;

	for (int s = 0; db && s < DUP_SLOTS; s++)
		if (db->has[pidx(a)] & (1u << s))
			m |= 1ull << (db->dev[s] - 1);
	return m;
}

/* Device page of d's duplicate of a, if it has one. */
bool dup_find(struct uhmm *h, uintptr_t a, const struct uhmm_dev *d, uint32_t *dp)
{
	struct dupblock *db = dups_of(h, a);
	int s = db ? slot_of(db, d->id) : -1;

	if (s < 0 || !(db->has[pidx(a)] & (1u << s)))
		return false;
	*dp = db->dp[s][pidx(a)];
	return true;
}

/* Drop page a's duplicates; true if it had some. */
static bool drop_page(struct uhmm *h, struct vblock *b, uintptr_t a)
{
	struct dupblock *db = b->dup;
	size_t i = pidx(a);

	if (!db || !db->has[i])
		return false;
	for (int s = 0; s < DUP_SLOTS; s++) {
		struct uhmm_dev *d;

		if (!(db->has[i] & (1u << s)))
			continue;
		d = dev_by_id(h, db->dev[s]);
		if (d) {
			d->pflags[db->dp[s][i]] &= ~DP_DUP;
			devmem_free(d, db->dp[s][i]);
		}
		db->n--;
	}
	db->has[i] = 0;
	if (!db->n) {
		mem_free(db);
		b->dup = NULL;
	}
	return true;
}

/*
 * Does a page of [s, e), within one block, have a duplicate?  Only then
 * are devices told: a block's other pages' duplicates are no change of
 * these (telling them anyway made every round of a device's write over
 * such pages an invalidation of its own mirror: -EBUSY for ever).
 */
static bool has_any(const struct dupblock *db, uintptr_t s, uintptr_t e)
{
	for (uintptr_t p = s; p < e; p += PAGE_SIZE)
		if (db->has[pidx(p)])
			return true;
	return false;
}

/*
 * Drop the duplicates of [start, end).  unprotect: the CPU pages stay
 * (a collapse), so their write-protection goes; otherwise they are gone.
 * Devices that may hold them hear it first.
 */
static void drop_range(struct uhmm *h, uintptr_t start, uintptr_t end, bool unprotect)
{
	for (uintptr_t a = start & ~(BLOCK_SIZE - 1); a < end; a += BLOCK_SIZE) {
		struct vblock *b = pt_block(&h->pt, a, false);
		uintptr_t s = a > start ? a : start;
		uintptr_t e = a + BLOCK_SIZE < end ? a + BLOCK_SIZE : end;

		if (!b || !b->dup || !has_any(b->dup, s, e))
			continue;
		mirror_invalidate(h, s, e, UHMM_EV_MIGRATE, 0);
		for (uintptr_t p = s; p < e; p += PAGE_SIZE) {
			uintptr_t run = p;

			while (p < e && drop_page(h, b, p))
				p += PAGE_SIZE;
			if (unprotect && p > run)
				uffd_wp(h, run, p - run, false);
			if (!b->dup)
				break;
		}
	}
}

void dup_collapse(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	drop_range(h, start, end, true);
}

void dup_forget(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	drop_range(h, start, end, false);
}

bool dup_any(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	for (uintptr_t a = start & ~(BLOCK_SIZE - 1); a < end; a += BLOCK_SIZE)
		if (dups_of(h, a))
			return true;
	return false;
}

/* Eviction or removal met device page p of d, a duplicate: drop it. */
void dup_drop_dev_page(struct uhmm *h, struct uhmm_dev *d, uint32_t p)
{
	uintptr_t a = d->owner[p];
	struct vblock *b = pt_block(&h->pt, a, false);
	struct dupblock *db = b ? b->dup : NULL;
	int s = db ? slot_of(db, d->id) : -1;

	if (s < 0 || !(db->has[pidx(a)] & (1u << s)) || db->dp[s][pidx(a)] != p) {
		/* no record of it: a page of nobody's */
		d->pflags[p] &= ~DP_DUP;
		devmem_free(d, p);
		return;
	}
	mirror_invalidate(h, a, a + PAGE_SIZE, UHMM_EV_MIGRATE, 0);
	db->has[pidx(a)] &= ~(1u << s);
	d->pflags[p] &= ~DP_DUP;
	devmem_free(d, p);
	if (!db->has[pidx(a)])
		uffd_wp(h, a, PAGE_SIZE, false);
	if (!--db->n) {
		mem_free(db);
		b->dup = NULL;
	}
}

/* Copy n system pages from a into d's pages dp, reading them as the
 * program's memory (another thread may unmap it: an error, not a crash). */
static int copy_in(struct uhmm_dev *d, uintptr_t a, const uint32_t *dp, size_t n)
{
	char page[PAGE_SIZE];

	for (size_t i = 0; i < n; i++) {
		struct iovec l, r = { (void *)(a + (i << PAGE_SHIFT)), PAGE_SIZE };
		char *dst = d->view ? view_of(d, dp[i]) : page;

		l = (struct iovec){ dst, PAGE_SIZE };
		if (process_vm_readv(getpid(), &l, 1, &r, 1, 0) != PAGE_SIZE)
			return -EFAULT;
		if (!d->view && d->ops.copy_to_dev(d->drv, (uint64_t)dp[i] << PAGE_SHIFT,
						   page, PAGE_SIZE))
			return -EIO;
	}
	return 0;
}

static struct dupblock *dups_make(struct uhmm *h, uintptr_t a, int id, int *slot)
{
	struct vblock *b = pt_block(&h->pt, a, true);
	struct dupblock *db;

	if (!b)
		return NULL;
	if (!b->dup)
		b->dup = mem_alloc(sizeof(*b->dup));
	db = b->dup;
	if (!db)
		return NULL;
	*slot = slot_of(db, id);
	if (*slot < 0)
		*slot = slot_of(db, 0);
	if (*slot < 0)
		return NULL;	/* a fifth device reads the system page */
	db->dev[*slot] = id;
	return db;
}

/* Duplicates on d of [a, a + n pages), none of which has one there yet. */
static int make_run(struct uhmm *h, struct uhmm_dev *d, struct dupblock *db, int slot,
		    uintptr_t a, size_t n)
{
	uint32_t dp[BLOCK_PAGES];
	size_t got = devmem_alloc_run(d, a, n, dp);
	int r;

	for (size_t i = 0, k; got == n && d->view && i < n; i += k) {
		k = run_len(dp, NULL, i, n);
		view_map(h, d, dp[i], k);
	}
	r = got < n ? -ENOMEM : uffd_wp(h, a, n << PAGE_SHIFT, true);
	if (!r)
		r = copy_in(d, a, dp, n);
	if (r) {
		for (size_t i = 0; i < got; i++)
			devmem_free(d, dp[i]);
		if (got == n)
			uffd_wp(h, a, n << PAGE_SHIFT, false);
		return r;
	}
	for (size_t i = 0; i < n; i++) {
		db->has[pidx(a) + i] |= 1u << slot;
		db->dp[slot][pidx(a) + i] = dp[i];
		d->pflags[dp[i]] |= DP_DUP | DP_DIRTY;
	}
	db->n += n;
	return 0;
}

/*
 * Duplicates on d of the system pages [a, a + n pages) of one block that
 * have none there yet, for a read by d.  Write-protected first, copied
 * second: a CPU write in between faults and waits for us.  Pages that
 * cannot be duplicated stay as they are; the device reads them in place.
 */
int dup_make(struct uhmm *h, struct uhmm_dev *d, uintptr_t a, size_t n)
{
	struct dupblock *db;
	int slot, r = 0;

	if (!(h->feat & UHMM_FEAT_WP) || !n)
		return 0;
	db = dups_make(h, a, d->id, &slot);
	if (!db)
		return -ENOMEM;
	for (size_t i = 0, k; i < n && !r; i += k) {
		bool has = db->has[pidx(a) + i] & (1u << slot);

		for (k = 1; i + k < n && !(db->has[pidx(a) + i + k] & (1u << slot)) == !has; k++)
			;
		if (!has)
			r = make_run(h, d, db, slot, a + (i << PAGE_SHIFT), k);
	}
	if (!db->n) {
		pt_block(&h->pt, a, false)->dup = NULL;
		mem_free(db);
	}
	return r;
}

/* ---- uhmm_duplicates ------------------------------------------------------ */

int uhmm_duplicates(struct uhmm *h, const void *addr, size_t len, uint64_t *masks)
{
	uintptr_t s, e;
	int r;

	if (!h || !masks)
		return -EINVAL;
	r = range_pages(addr, len, &s, &e);
	if (r)
		return r;
	ctx_lock(h);
	events_drain(h);
	for (uintptr_t a = s; a < e; a += PAGE_SIZE)
		masks[(a - s) >> PAGE_SHIFT] = dup_mask(h, a);
	ctx_unlock(h);
	return 0;
}

/*
 * A device's fault of [start, end) through its mirror.  Read: the
 * read-mostly system pages get duplicates in its memory.  Write: they
 * lose their duplicates and move to the device, where the write happens,
 * as far as it has room.
 * A duplicate that cannot be made (the device is full) is no error: the
 * device reads the system page in place.
 */
int dup_fault(struct uhmm *h, struct uhmm_dev *d, uintptr_t start, uintptr_t end, bool write)
{
	uintptr_t a = start;
	int r = 0;

	while (a < end && !r) {
		uintptr_t s, bend = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

		if (bend > end)
			bend = end;
		while (a < bend && !(advice_at(h, a)->read_mostly &&
				     pt_loc(&h->pt, a, NULL) == LOC_SYS))
			a += PAGE_SIZE;
		s = a;
		while (a < bend && advice_at(h, a)->read_mostly &&
		       pt_loc(&h->pt, a, NULL) == LOC_SYS)
			a += PAGE_SIZE;
		if (s == a)
			continue;
		if (!write) {
			dup_make(h, d, s, (a - s) >> PAGE_SHIFT);
			continue;
		}
		dup_collapse(h, s, a);
		/*
		 * A device's fault makes no room for itself: evicting would
		 * push out pages this same fault (or its last round) moved
		 * there, round after round, each round an invalidation of its
		 * own mirror (-EBUSY for ever).  Nor does it try where nothing
		 * fits, which would invalidate the mirror for nothing.  What
		 * does not fit is written in system memory, in place.
		 */
		if (d->used_pages >= d->npages)
			continue;
		r = migrate_range(h, s, a, d, UHMM_MIGRATE_NOEVICT, NULL);
		if (r == -ENOMEM)
			r = 0;
	}
	return r;
}
