// SPDX-License-Identifier: MIT
/*
 * The trace of faults, migrations and evictions: a ring of the last
 * UHMM_TRACE_EVENTS events per context.  Writers take a sequence number
 * with one atomic add and fill their slot; a slot's seq is 0 while it is
 * being written, so a reader copies it, checks seq again, and knows the
 * copy is whole.  Events are recorded only while h->tracing counts a
 * reader (in this process, or one outside through publish.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "trace.h"

__thread struct trace_why trace_why;

void trace_ring_init(struct trace_ring *r)
{
	r->cap = UHMM_TRACE_EVENTS;
}

int trace_ring_attach(struct uhmm *h, struct trace_ring *r)
{
	struct trace_ring *none = NULL;

	if (!r) {
		r = mem_alloc(sizeof(*r));
		if (!r)
			return -ENOMEM;
		trace_ring_init(r);
		if (!atomic_compare_exchange_strong(&h->trace, &none, r))
			mem_free(r);	/* another thread was first */
		return 0;
	}
	atomic_store(&h->trace, r);
	return 0;
}

void trace_fini(struct uhmm *h)
{
	struct trace_ring *r = atomic_load(&h->trace);

	if (r && !h->trace_shared)
		mem_free(r);
	atomic_store(&h->trace, NULL);
}

static void pack(struct trace_slot *s, const struct uhmm_trace_event *e)
{
	uint64_t w[TRACE_WORDS - 1];

	w[0] = e->time_ns;
	w[1] = e->addr;
	w[2] = e->len;
	w[3] = (uint32_t)e->tid | (uint64_t)(uint16_t)e->from << 32 |
	       (uint64_t)(uint16_t)e->to << 48;
	w[4] = e->type | (uint64_t)e->cause << 16;
	for (int i = 0; i < TRACE_WORDS - 1; i++)
		atomic_store_explicit(&s->w[i], w[i], memory_order_relaxed);
}

static void unpack(const uint64_t *w, uint64_t seq, struct uhmm_trace_event *e)
{
	memset(e, 0, sizeof(*e));
	e->seq = seq;
	e->time_ns = w[0];
	e->addr = w[1];
	e->len = w[2];
	e->tid = (int32_t)(uint32_t)w[3];
	e->from = (int16_t)(uint16_t)(w[3] >> 32);
	e->to = (int16_t)(uint16_t)(w[3] >> 48);
	e->type = (uint16_t)w[4];
	e->cause = (uint16_t)(w[4] >> 16);
}

void trace_emit(struct uhmm *h, int type, uintptr_t addr, size_t len,
		int from, int to, pid_t tid)
{
	struct trace_ring *r = atomic_load_explicit(&h->trace, memory_order_acquire);
	struct uhmm_trace_event e = {
		.time_ns = mono_ns(), .addr = addr, .len = len,
		.tid = tid ? tid : my_tid(), .from = (int16_t)from, .to = (int16_t)to,
		.type = (uint16_t)type, .cause = trace_why.cause,
	};
	struct trace_slot *s;
	uint64_t seq;

	if (!r)
		return;
	/* the fault threads' own moves are what CPU faults bring home */
	if (e.cause == UHMM_CAUSE_OTHER && lib_thread)
		e.cause = UHMM_CAUSE_CPU_FAULT;
	seq = atomic_fetch_add(&r->head, 1) + 1;
	s = &r->slot[(seq - 1) % r->cap];
	/* acquire: the words written below cannot come before the 0 */
	atomic_exchange_explicit(&s->seq, 0, memory_order_acq_rel);
	pack(s, &e);
	atomic_store_explicit(&s->seq, seq, memory_order_release);
}

/* Copy slot seq if it still holds that event: 0, or -EAGAIN (not written
 * yet, or already overwritten: the caller looks at head to know which). */
static int copy_slot(struct trace_ring *r, uint64_t seq, struct uhmm_trace_event *e)
{
	struct trace_slot *s = &r->slot[(seq - 1) % r->cap];
	uint64_t w[TRACE_WORDS - 1];

	if (atomic_load_explicit(&s->seq, memory_order_acquire) != seq)
		return -EAGAIN;
	for (int i = 0; i < TRACE_WORDS - 1; i++)
		w[i] = atomic_load_explicit(&s->w[i], memory_order_relaxed);
	/* release: the words read above cannot come after this look */
	if (atomic_fetch_add_explicit(&s->seq, 0, memory_order_acq_rel) != seq)
		return -EAGAIN;
	unpack(w, seq, e);
	return 0;
}

int trace_ring_read(struct trace_ring *r, uint64_t *next,
		    struct uhmm_trace_event *ev, size_t n)
{
	uint64_t seq = *next ? *next : 1;
	size_t got = 0;

	while (got < n) {
		uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);

		if (seq > head)
			break;
		if (head - seq >= r->cap) {	/* overwritten: skip ahead */
			seq = head - r->cap + 1;
			continue;
		}
		if (copy_slot(r, seq, &ev[got])) {
			/* overwritten meanwhile, or still being written:
			 * look at head again; a writer in progress ends it */
			if (atomic_load(&r->head) - seq < r->cap)
				break;
			continue;
		}
		got++;
		seq++;
	}
	*next = seq;
	return (int)got;
}

int uhmm_trace_start(struct uhmm *h)
{
	int r;

	if (!h)
		return -EINVAL;
	r = trace_ring_attach(h, atomic_load(&h->trace));
	if (r)
		return r;
	atomic_fetch_add(&h->trace_local, 1);
	atomic_fetch_add(&h->tracing, 1);
	return 0;
}

int uhmm_trace_stop(struct uhmm *h)
{
	int n;

	if (!h)
		return -EINVAL;
	n = atomic_load(&h->trace_local);
	do {
		if (n <= 0)
			return -EINVAL;
	} while (!atomic_compare_exchange_weak(&h->trace_local, &n, n - 1));
	atomic_fetch_sub(&h->tracing, 1);
	return 0;
}

int uhmm_trace_read(struct uhmm *h, uint64_t *next, struct uhmm_trace_event *ev,
		    size_t n)
{
	struct trace_ring *r;

	if (!h || !next || (!ev && n))
		return -EINVAL;
	r = atomic_load_explicit(&h->trace, memory_order_acquire);
	if (!r)
		return 0;
	return trace_ring_read(r, next, ev, n > INT32_MAX ? INT32_MAX : n);
}

const char *uhmm_trace_type_name(unsigned type)
{
	static const char *const names[] = {
		[UHMM_TRACE_MIGRATE] = "migrate", [UHMM_TRACE_EVICT] = "evict",
		[UHMM_TRACE_CPU_FAULT] = "cpu-fault", [UHMM_TRACE_DEV_FAULT] = "dev-fault",
	};

	return type < sizeof(names) / sizeof(names[0]) && names[type] ? names[type] : "?";
}

const char *uhmm_trace_cause_name(unsigned cause)
{
	static const char *const names[] = {
		[UHMM_CAUSE_OTHER] = "other", [UHMM_CAUSE_MIGRATE] = "migrate",
		[UHMM_CAUSE_PREFETCH] = "prefetch", [UHMM_CAUSE_ALLOC] = "alloc",
		[UHMM_CAUSE_CPU_FAULT] = "cpu-fault", [UHMM_CAUSE_DEV_FAULT] = "dev-fault",
		[UHMM_CAUSE_UNMANAGE] = "unmanage", [UHMM_CAUSE_REMOVE] = "remove",
		[UHMM_CAUSE_POLICY] = "policy", [UHMM_CAUSE_FIRST_TOUCH] = "first-touch",
	};

	return cause < sizeof(names) / sizeof(names[0]) && names[cause] ? names[cause] : "?";
}
