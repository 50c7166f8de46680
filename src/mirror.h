/* SPDX-License-Identifier: MIT */
/*
 * Inside a mirror: shared by mirror.c (the mirror, uhmm_range_fault) and
 * interval.c (finer intervals with sequence counts of their own).
 */
#ifndef UHMM_MIRROR_H
#define UHMM_MIRROR_H

#include "internal.h"

/* A sequence count, odd while an invalidation runs; readers may wait. */
struct seqcount {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic uint64_t seq;
};

void     seqcount_init(struct seqcount *c);
void     seqcount_fini(struct seqcount *c);
void     seqcount_bump(struct seqcount *c);
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

	struct seqcount sc;		/* odd while a callback runs */
	struct uhmm_interval *intervals;	/* under h->lock */
};

struct uhmm_interval {
	struct uhmm_mirror *m;
	uintptr_t start, end;
	struct uhmm_interval *next;	/* m->intervals, under h->lock */
	struct seqcount sc;		/* odd while an invalidation of it runs */
};

/* interval.c, with h->lock held */
void intervals_begin(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);
void intervals_end(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);
void intervals_free(struct uhmm_mirror *m);
void mirror_widen(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);

#endif
