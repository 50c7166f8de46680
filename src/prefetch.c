// SPDX-License-Identifier: MIT
/*
 * Asynchronous migration, for runtimes that overlap copies with compute:
 * uhmm_prefetch queues a migration and returns a ticket at once; a library
 * thread runs the queue in order; uhmm_wait collects the result.  Several
 * may be in flight; the results of the last PREFETCH_KEEP tickets are kept.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "trace.h"

#define PREFETCH_KEEP 1024

struct prefetch_job {
	uint64_t ticket;
	uintptr_t start, end;
	struct uhmm_dev *to;
	unsigned flags;
};

struct prefetcher {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lib_thread thread;
	bool running, stopping;
	struct prefetch_job *job;	/* queued, oldest first */
	size_t njob, cap;
	uint64_t issued, done;		/* tickets 1..issued; 1..done finished */
	int result[PREFETCH_KEEP];	/* by ticket % PREFETCH_KEEP */
};

static void *prefetch_main(void *arg)
{
	struct uhmm *h = arg;
	struct prefetcher *p = h->prefetch;

	lib_thread = true;
	trace_because(UHMM_CAUSE_PREFETCH);
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct prefetch_job j;
		int r;

		while (!p->njob && !p->stopping)
			pthread_cond_wait(&p->cond, &p->lock);
		if (!p->njob)
			break;
		j = p->job[0];
		memmove(p->job, p->job + 1, --p->njob * sizeof(j));
		pthread_mutex_unlock(&p->lock);
		ctx_lock(h);
		events_drain(h);
		r = advice_pinned(h, j.start, j.end) ? -EBUSY :
			migrate_range(h, j.start, j.end, j.to, j.flags, NULL);
		if (!r)
			note_prefetch(h, j.start, j.end, j.to);
		ctx_unlock(h);
		pthread_mutex_lock(&p->lock);
		p->result[j.ticket % PREFETCH_KEEP] = r;
		p->done = j.ticket;
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* The first prefetch starts the thread; no prefetch, no thread. */
static struct prefetcher *prefetcher_get(struct uhmm *h)
{
	struct prefetcher *p;
	sigset_t all, old;
	int r;

	pthread_mutex_lock(&h->q.lock);
	p = h->prefetch;
	if (!p) {
		p = mem_alloc(sizeof(*p));
		if (p) {
			pthread_mutex_init(&p->lock, NULL);
			pthread_cond_init(&p->cond, NULL);
			h->prefetch = p;
		}
	}
	pthread_mutex_unlock(&h->q.lock);
	if (!p)
		return NULL;
	pthread_mutex_lock(&p->lock);
	if (!p->running) {
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		r = lib_thread_start(&p->thread, "uhmm-prefetch", prefetch_main, h);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		p->running = !r;
	}
	pthread_mutex_unlock(&p->lock);
	return p->running ? p : NULL;
}

int uhmm_prefetch(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
		  unsigned flags, uint64_t *ticket)
{
	struct prefetcher *p;
	uintptr_t s, e;
	int r = 0;

	if (!h || !ticket || range_pages(addr, len, &s, &e))
		return -EINVAL;
	if (flags & ~(UHMM_MIGRATE_NOEVICT | UHMM_MIGRATE_DISCARD))
		return -EINVAL;
	if (to && to->h != h)
		return -EINVAL;
	p = prefetcher_get(h);
	if (!p)
		return -ENOMEM;
	pthread_mutex_lock(&p->lock);
	if (p->njob == p->cap) {
		size_t cap = p->cap ? p->cap * 2 : 16;
		struct prefetch_job *nj = mem_realloc(p->job, cap * sizeof(*nj));

		if (nj) {
			p->job = nj;
			p->cap = cap;
		} else {
			r = -ENOMEM;
		}
	}
	if (!r) {
		*ticket = ++p->issued;
		p->job[p->njob++] = (struct prefetch_job){ *ticket, s, e, to, flags };
		pthread_cond_broadcast(&p->cond);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

static void deadline_after(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int uhmm_wait(struct uhmm *h, uint64_t ticket, int timeout_ms)
{
	struct prefetcher *p = h ? h->prefetch : NULL;
	struct timespec ts;
	int r = 0;

	if (!h)
		return -EINVAL;
	if (!p || !ticket)
		return -EINVAL;
	if (timeout_ms > 0)
		deadline_after(&ts, timeout_ms);
	pthread_mutex_lock(&p->lock);
	if (ticket > p->issued)
		r = -EINVAL;
	while (!r && p->done < ticket) {
		if (!timeout_ms)
			r = -ETIMEDOUT;
		else if (timeout_ms < 0)
			pthread_cond_wait(&p->cond, &p->lock);
		else if (pthread_cond_timedwait(&p->cond, &p->lock, &ts) == ETIMEDOUT)
			r = p->done < ticket ? -ETIMEDOUT : 0;
	}
	if (!r)
		r = p->done - ticket < PREFETCH_KEEP ? p->result[ticket % PREFETCH_KEEP]
						     : -ENOENT;
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* At uhmm_close: what is queued still runs, then the thread ends. */
void prefetch_stop(struct uhmm *h)
{
	struct prefetcher *p = h->prefetch;

	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stopping = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	if (p->running)
		lib_thread_join(&p->thread);
	mem_free(p->job);
	pthread_mutex_destroy(&p->lock);
	pthread_cond_destroy(&p->cond);
	mem_free(p);
	h->prefetch = NULL;
}
