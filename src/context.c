// SPDX-License-Identifier: MIT
/* uhmm_open/uhmm_close: one address-space manager and its threads. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "trace.h"

/* set on the library's own threads: their work is not the program's */
__thread bool lib_thread;
__thread bool reader_thread;
__thread bool fill_holder;
__thread bool serving_fault;

/*
 * gettid() is a system call each time, and a fault served by signal asks
 * it several times.  The forking thread's cache is wrong in the child:
 * fork clears it there.
 */
static __thread pid_t tid_cache;

static void tid_forget(void)
{
	tid_cache = 0;
}

static void __attribute__((constructor)) tid_watch_forks(void)
{
	pthread_atfork(NULL, NULL, tid_forget);
}

pid_t my_tid(void)
{
	if (!tid_cache)
		tid_cache = gettid();
	return tid_cache;
}

/*
 * glibc's mutex lets the thread that unlocks take the lock straight back,
 * before the waiter it woke has run: a thread migrating in a loop would
 * starve every other caller (a driver's range_fault, a CPU fault waiting
 * for the worker).  So a thread that let the lock go while others waited
 * for it, or after waking mirror readers (who come for it next, from
 * range_fault), yields until another thread has had it.  Bounded in time,
 * in case the waiter is descheduled or the reader never comes: fairness,
 * not correctness, depends on it.
 */
#define HANDOFF_NS (1000 * 1000)

uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static bool handed_off(struct uhmm *h, uint32_t gen)
{
	if (atomic_load(&h->lock_gen) != gen)
		return true;
	return !atomic_load(&h->handoff_readers) && atomic_load(&h->lock_waiters) <= 1;
}

static void ctx_wait_handoff(struct uhmm *h, pid_t me)
{
	uint32_t gen;
	uint64_t until;

	if (atomic_load(&h->handoff_from) != me)
		return;
	gen = atomic_load(&h->handoff_gen);
	if (handed_off(h, gen))
		return;
	until = mono_ns() + HANDOFF_NS;
	do
		sched_yield();
	while (!handed_off(h, gen) && mono_ns() < until);
}

void ctx_lock(struct uhmm *h)
{
	pid_t me = my_tid();

	atomic_fetch_add(&h->lock_waiters, 1);
	ctx_wait_handoff(h, me);
	pthread_mutex_lock(&h->lock);
	atomic_fetch_sub(&h->lock_waiters, 1);
	atomic_fetch_add(&h->lock_gen, 1);
	atomic_store(&h->migrator, me);
}

void ctx_unlock(struct uhmm *h)
{
	bool scrub = atomic_load(&h->scrub), woke;

	if (!lib_thread)
		note_activity(h);
	woke = mirrors_settle(h);
	atomic_store(&h->migrator, 0);
	if (woke || atomic_load(&h->lock_waiters)) {
		atomic_store(&h->handoff_gen, atomic_load(&h->lock_gen));
		atomic_store(&h->handoff_readers, woke);
		atomic_store(&h->handoff_from, my_tid());
	} else {
		atomic_store(&h->handoff_from, 0);
	}
	pthread_mutex_unlock(&h->lock);
	if (scrub) {
		/* the worker makes freed device memory ready again */
		pthread_mutex_lock(&h->q.lock);
		pthread_cond_broadcast(&h->q.cond);
		pthread_mutex_unlock(&h->q.lock);
	}
}

static int opts_apply(struct uhmm *h, const struct uhmm_opts *o)
{
	struct uhmm_opts d = { 0 };
	size_t n;
	int r;

	if (o) {
		r = sz_check(o, o->sz, sizeof(*o));
		if (r)
			return r;
		n = sz_of(o->sz, UHMM_OPTS_V1);
		memcpy(&d, o, n < sizeof(d) ? n : sizeof(d));
	}
	if (d.flags & ~(UHMM_OPEN_FORK_NOCOPY | UHMM_OPEN_DETECT_PINS | UHMM_OPEN_FAULT_SIGNAL))
		return -EINVAL;
	if (!d.fault_around)
		d.fault_around = 64 << 10;
	if (d.fault_around < PAGE_SIZE || (d.fault_around & (d.fault_around - 1)))
		return -EINVAL;
	if (!d.fault_threads)
		d.fault_threads = 1;
	if (!d.access_threshold)
		d.access_threshold = 256;
	if (!d.pool_bytes)
		d.pool_bytes = 16 << 20;
	if (!d.thrash_moves)
		d.thrash_moves = 8;
	if (!d.thrash_window_ms)
		d.thrash_window_ms = 1000;
	if (!d.thrash_pin_ms)
		d.thrash_pin_ms = 2000;
	if (!d.access_decay_ms)
		d.access_decay_ms = 1000;
	d.sz = sizeof(d);
	h->opts = d;
	return 0;
}

static void ctx_free(struct uhmm *h)
{
	fault_signal_detach(h);
	policy_fini(h);
	advice_fini(h);
	quar_fini(h);
	pt_fini(&h->pt);
	pool_fini(h);
	arena_fini(h);
	if (h->zero_page)
		munmap(h->zero_page, PAGE_SIZE);
	if (h->uffd >= 0)
		close(h->uffd);
	if (h->uffd_other >= 0)
		close(h->uffd_other);
	pthread_mutex_destroy(&h->lock);
	pthread_cond_destroy(&h->idle);
	pthread_mutex_destroy(&h->q.lock);
	pthread_rwlock_destroy(&h->q.fill);
	pthread_cond_destroy(&h->q.cond);
	pthread_cond_destroy(&h->q.read_done);
	mem_free(h);
	procfd_drop();
}

int uhmm_open(struct uhmm **out, const struct uhmm_opts *opts)
{
	struct uhmm *h;
	int r;

	if (!out)
		return -EINVAL;
	if (sysconf(_SC_PAGESIZE) != (long)PAGE_SIZE)
		return -ENOSYS;
	h = mem_alloc(sizeof(*h));
	if (!h)
		return -ENOMEM;
	procfd_hold();		/* ctx_free drops it */
	h->uffd = h->uffd_other = -1;
	pthread_mutex_init(&h->lock, NULL);
	pthread_cond_init(&h->idle, NULL);
	pthread_mutex_init(&h->q.lock, NULL);
	fill_lock_init(h);
	pthread_cond_init(&h->q.cond, NULL);
	pthread_cond_init(&h->q.read_done, NULL);
	r = opts_apply(h, opts);
	h->split_min = snapshot_split_min();
	h->dma_split_min = sim_dma_split_min();
	if (!r)
		r = pt_init(&h->pt);
	if (!r)
		r = probe_open_uffd(h);
	if (!r)
		r = fault_signal_attach(h);
	if (!r) {
		h->zero_page = mmap(NULL, PAGE_SIZE, PROT_READ,
				    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (h->zero_page == MAP_FAILED) {
			h->zero_page = NULL;
			r = -ENOMEM;
		}
	}
	if (!r)
		r = arena_init(h);
	if (!r)
		r = events_start(h);
	if (!r && (r = fork_track(h)))
		events_stop(h);
	if (r) {
		ctx_free(h);
		return r;
	}
	publish_start(h);	/* for `uhmm stat`; none if it cannot be made */
	*out = h;
	return 0;
}

/* Stop managing everything: devices first (pages come home, unless the
 * process is about to exit), then the system pages, by closing the
 * descriptor that registered them. */
static void ctx_close(struct uhmm *h, bool discard)
{
	/* the publisher first: it answers an outside reader's "where" with
	 * uhmm_where, which needs the event threads, the devices and the
	 * context lock; stopped after them, its join waited for ever on a
	 * thread inside that uhmm_where (fuzz_args, uhmm_close under
	 * uhmm_proc_* requests) */
	publish_stop(h);
	fork_untrack(h);
	prefetch_stop(h);
	helper_free(h->helper);
	h->helper = NULL;
	for (int i = 1; i <= MAX_DEVS; i++)
		if (h->dev[i])
			dev_remove(h->dev[i], discard);
	events_stop(h);
	mirrors_fini(h);
	trace_fini(h);
	ctx_free(h);
}

void uhmm_close(struct uhmm *h)
{
	if (h)
		ctx_close(h, false);
}

int uhmm_close_ex(struct uhmm *h, unsigned flags)
{
	if (!h || (flags & ~UHMM_CLOSE_DISCARD))
		return -EINVAL;
	ctx_close(h, flags & UHMM_CLOSE_DISCARD);
	return 0;
}

int uhmm_features(const struct uhmm *h, uint64_t *feat)
{
	if (!h || !feat)
		return -EINVAL;
	*feat = h->feat;
	return 0;
}
