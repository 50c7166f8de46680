/* SPDX-License-Identifier: MIT */
/*
 * Inside a mirror: shared by mirror.c (the mirror, uhmm_range_fault) and
 * interval.c (finer intervals with sequence counts of their own).
 */
#ifndef UHMM_MIRROR_H
#define UHMM_MIRROR_H

#include "internal.h"

struct uhmm_mirror {
	struct uhmm *h;
	struct uhmm_dev *dev;		/* NULL once released */
	int dev_id;
	struct uhmm_mirror_ops ops;
	void *priv;
	struct uhmm_mirror *next;	/* h->mirrors, under h->lock */
	uintptr_t lo, hi;		/* hull of what range_fault answered */
	bool released;

	pthread_mutex_t mu;		/* seq's waiters */
	pthread_cond_t cv;
	_Atomic uint64_t seq;		/* odd while a callback runs */
	struct uhmm_interval *intervals;	/* under h->lock */
};

struct uhmm_interval {
	struct uhmm_mirror *m;
	uintptr_t start, end;
	struct uhmm_interval *next;	/* m->intervals, under h->lock */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	_Atomic uint64_t seq;		/* odd while an invalidation of it runs */
};

/* interval.c, with h->lock held */
void intervals_begin(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);
void intervals_end(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);
void intervals_free(struct uhmm_mirror *m);
void mirror_widen(struct uhmm_mirror *m, uintptr_t start, uintptr_t end);

#endif
