/* SPDX-License-Identifier: MIT */
/*
 * The trace ring (trace.c) and the hooks the rest of the library calls.
 * A hook costs one relaxed load of h->tracing while nobody reads; the
 * cause of a migration is the calling thread's, set by the API entry point
 * that started it (trace_because) and put back when it returns.
 */
#ifndef UHMM_TRACE_H
#define UHMM_TRACE_H

#include "internal.h"

/* One slot of the ring: words written and read with relaxed atomics, so
 * that a reader racing a writer is a retry, not a data race. */
#define TRACE_WORDS 6
struct trace_slot {
	_Atomic uint64_t seq;		/* event seq once complete, else 0 */
	_Atomic uint64_t w[TRACE_WORDS - 1];
};

struct trace_ring {
	_Atomic uint64_t head;		/* events begun so far */
	uint32_t cap;			/* UHMM_TRACE_EVENTS */
	uint32_t pad;
	struct trace_slot slot[UHMM_TRACE_EVENTS];
};

/* What the calling thread is doing, for the events it causes. */
struct trace_why {
	uint8_t cause;			/* UHMM_CAUSE_* */
	bool evicting;			/* inside evict_chunk */
};
extern __thread struct trace_why trace_why;

static inline struct trace_why trace_because(int cause)
{
	struct trace_why old = trace_why;

	trace_why.cause = (uint8_t)cause;
	return old;
}

static inline void trace_restore(struct trace_why old)
{
	trace_why = old;
}

static inline bool tracing(struct uhmm *h)
{
	return atomic_load_explicit(&h->tracing, memory_order_relaxed) != 0;
}

void trace_emit(struct uhmm *h, int type, uintptr_t addr, size_t len,
		int from, int to, pid_t tid);

/* Pages [addr, addr + npages) moved from -> to (LOC_SYS or a device id). */
static inline void trace_move(struct uhmm *h, uintptr_t addr, size_t npages,
			      int from, int to)
{
	/* for whoever looked at mappings before and must know they moved */
	atomic_fetch_add_explicit(&h->moves, 1, memory_order_relaxed);
	if (tracing(h))
		trace_emit(h, trace_why.evicting ? UHMM_TRACE_EVICT : UHMM_TRACE_MIGRATE,
			   addr, npages << PAGE_SHIFT, from, to, 0);
}

/* A CPU fault served at page for thread tid; loc as in the page table. */
static inline void trace_cpu_fault(struct uhmm *h, uintptr_t page, int loc, pid_t tid)
{
	if (tracing(h))
		trace_emit(h, UHMM_TRACE_CPU_FAULT, page, PAGE_SIZE,
			   loc == LOC_UNMANAGED ? LOC_SYS : loc, LOC_SYS, tid);
}

/* trace.c: the ring lives in the published file (publish.c) or, when
 * nothing is published, in memory of our own made at the first reader. */
int  trace_ring_attach(struct uhmm *h, struct trace_ring *r);
void trace_fini(struct uhmm *h);
int  trace_ring_read(struct trace_ring *r, uint64_t *next,
		     struct uhmm_trace_event *ev, size_t n);
void trace_ring_init(struct trace_ring *r);

#endif
