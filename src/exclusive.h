/* SPDX-License-Identifier: MIT */
/*
 * uhmm_make_exclusive: pages a device holds alone, for its atomics
 * (exclusive.c).  With h->lock held unless said otherwise.
 */
#ifndef UHMM_EXCLUSIVE_H
#define UHMM_EXCLUSIVE_H

#include "mirror.h"

#define EXCL_SLOTS	2048		/* blocks held at once: 4 GiB of room */
#define EXCL_BUCKETS	256

/* One 2 MiB virtual block's pages held by one mirror. */
struct xblock {
	uintptr_t base;
	struct uhmm_mirror *m;
	struct xblock *next;			/* hash chain */
	uint64_t sys[BLOCK_PAGES / 64];		/* system pages, in our copy */
	uint64_t dev[BLOCK_PAGES / 64];		/* COHERENT pages, PTEs dropped */
	uint32_t slot;				/* where our copy lives */
	uint64_t granted_at;			/* events_reads() at its last grant */
};

struct excl {
	size_t count;				/* blocks held */
	char *space;				/* EXCL_SLOTS blocks of room */
	uint64_t used[EXCL_SLOTS / 64];
	struct xblock *bucket[EXCL_BUCKETS];
};

/* Give mirror m sole access to the pages of the segments of f (checked:
 * anonymous or COHERENT device mappings, writable, populated). */
int  excl_grant(struct uhmm *h, struct uhmm_mirror *m, const struct rf *f);

/* Entries of exclusive pages of [s, e) as mirror m sees them: its own
 * VALID | EXCLUSIVE with host in our copy (system pages) or the device's
 * view, other mirrors' not VALID (their faults take the pages back). */
void excl_fill(struct uhmm *h, struct uhmm_mirror *m, uintptr_t s, uintptr_t e,
	       bool writable, struct uhmm_pte *ptes);

/* Is page a exclusive to some mirror (and to which)? */
struct uhmm_mirror *excl_owner(struct uhmm *h, uintptr_t a);
/* ... and held in our copy, away from the program's range? */
bool excl_sys(struct uhmm *h, uintptr_t a);

/*
 * Take back the blocks overlapping [s, e): the holder hears
 * UHMM_EV_EXCLUSIVE (with `initiator`) unless it is `keep` (which keeps
 * its blocks) and the pages are where the program can reach them again.
 */
void excl_revoke(struct uhmm *h, uintptr_t s, uintptr_t e, int initiator,
		 const struct uhmm_mirror *keep);
/* A CPU access to page a, its fault read at read_at (0: the faulting
 * thread itself): taken back, or a stale fault woken?  (Not on the
 * reader thread.) */
bool excl_cpu_fault(struct uhmm *h, uintptr_t a, uint64_t read_at);
/* The program's madvise(DONTNEED...) of [s, e): those pages are gone. */
void excl_removed(struct uhmm *h, uintptr_t s, uintptr_t e);
/* The program's mremap: pages of [from, from + len) are at `to` now. */
void excl_remapped(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len);
/* Mirror m goes away (released or closed): its blocks come back, silently. */
void excl_drop_mirror(struct uhmm *h, struct uhmm_mirror *m);
/* Unlocked, at uhmm_close: whatever is left goes. */
void excl_fini(struct uhmm *h);
/* fork.c's prepare: every block comes back before the child copies. */
void excl_before_fork(struct uhmm *h);

static inline bool excl_none(const struct uhmm *h)
{
	return !h->excl || !h->excl->count;
}

#endif
