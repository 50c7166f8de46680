/* SPDX-License-Identifier: MIT */
/*
 * Inside a mirror: shared by mirror.c (the mirror, uhmm_range_fault) and
 * interval.c (finer intervals with sequence counts of their own).
 */
#ifndef UHMM_MIRROR_H
#define UHMM_MIRROR_H

#include <sys/mman.h>

#include "internal.h"

/*
 * A sequence count, odd from the first invalidation of a change until the
 * change is complete (the context lock is let go: every change uhmm makes
 * is made under it), as the kernel's is from invalidate_range_start to
 * _end.  Readers wait while it is odd, so that a driver's read_begin
 * taken during a migration is not stale by the time its range_fault
 * gets the lock.
 */
struct seqcount {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic uint64_t seq;
	bool open;			/* odd, under h->lock */
	int waiting;			/* readers waiting for even, under mu */
};

void     seqcount_init(struct seqcount *c);
void     seqcount_fini(struct seqcount *c);
void     seqcount_open(struct seqcount *c);	/* with h->lock held */
bool     seqcount_close(struct seqcount *c);	/* with h->lock held; woke readers? */
uint64_t seqcount_begin(struct seqcount *c);	/* waits while odd */

struct uhmm_mirror {
	struct uhmm *h;
	struct uhmm_dev *dev;		/* NULL once released */
	int dev_id;
	struct uhmm_mirror_ops ops;
	void *priv;
	struct uhmm_mirror *next;	/* h->mirrors, under h->lock */
	uintptr_t lo, hi;		/* hull of what range_fault answered */
	bool released;

	struct seqcount sc;		/* odd while a change is made */
	struct uhmm_interval *intervals;	/* under h->lock */
};

struct uhmm_interval {
	struct uhmm_mirror *m;
	uintptr_t start, end;
	struct uhmm_interval *next;	/* m->intervals, under h->lock */
	struct seqcount sc;		/* odd while an invalidation of it runs */
};

bool retry_note(struct uhmm *h, bool stale);	/* -> stale */
/* Run m's callback for [start, end) now (with h->lock held). */
void mirror_tell(struct uhmm_mirror *m, uintptr_t start, uintptr_t end,
		 enum uhmm_event ev, int initiator);

/* ---- inside uhmm_range_fault (mirror.c, snapshot.c) ---- */


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
	uint64_t *pm;			/* pagemap entry per page, when faulting */
	uint64_t moves;			/* h->moves when seg was read */
};

static inline bool seg_error(const struct seg *sg)
{
	return sg->hole || sg->v.prot == PROT_NONE;
}

/* Would the device write this system page without a copy-on-write? */
bool pm_writable(const struct seg *sg, uint64_t pm);
/* snapshot.c: one entry per page of the range, as the page table and the
 * kernel say now (with h->lock held) */
int snapshot_fill(struct uhmm *h, struct rf *f, struct uhmm_pte *ptes);

/* interval.c, with h->lock held */
void intervals_open(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);
bool intervals_close(struct uhmm_mirror *m);	/* woke readers? */
void intervals_free(struct uhmm_mirror *m);
void mirror_widen(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);

#endif
