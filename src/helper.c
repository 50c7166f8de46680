// SPDX-License-Identifier: MIT
/*
 * A second core for work that splits in two halves.  A snapshot of a GiB
 * is bound by the rate one core writes its 6 MiB of entries, and the sim
 * DMA engine's copy by the rate one core's process_vm_readv runs (half
 * memcpy's: the kernel copies page by page, with the cache's read before
 * every write); two cores do either in half the time.  The caller hands
 * one half to the helper thread, does the other and waits.
 *
 * A helper takes one half at a time: a caller that finds it busy does the
 * whole job itself, so that callers never queue behind each other.  The
 * thread starts at the first post and sleeps between them.
 *
 * The context's helper works under the caller's context lock, and its
 * faults on the program's memory are served like the caller's own
 * (events.c reads the tid given to helper_new).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

struct helper {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lib_thread thread;
	const char *name;
	_Atomic pid_t *tid;		/* where the thread says who it is */
	bool running, stopping;
	void (*fn)(void *);
	void *arg;
	uint64_t posted, done;
};

static void *helper_main(void *arg)
{
	struct helper *x = arg;

	lib_thread = true;
	if (x->tid)
		atomic_store(x->tid, my_tid());
	pthread_mutex_lock(&x->lock);
	for (;;) {
		while (x->done == x->posted && !x->stopping)
			pthread_cond_wait(&x->cond, &x->lock);
		if (x->done == x->posted)
			break;
		pthread_mutex_unlock(&x->lock);
		x->fn(x->arg);
		pthread_mutex_lock(&x->lock);
		x->done = x->posted;
		pthread_cond_broadcast(&x->cond);
	}
	pthread_mutex_unlock(&x->lock);
	if (x->tid)
		atomic_store(x->tid, 0);
	return NULL;
}

static bool two_cores(void)
{
	static _Atomic int n;

	if (!atomic_load(&n))
		atomic_store(&n, (int)sysconf(_SC_NPROCESSORS_ONLN));
	return atomic_load(&n) >= 2;
}

struct helper *helper_new(const char *name, _Atomic pid_t *tid)
{
	struct helper *x = mem_alloc(sizeof(*x));

	if (!x)
		return NULL;
	memset(x, 0, sizeof(*x));
	pthread_mutex_init(&x->lock, NULL);
	pthread_cond_init(&x->cond, NULL);
	x->name = name;
	x->tid = tid;
	return x;
}

/* With x->lock held. */
static bool helper_start(struct helper *x)
{
	sigset_t all, old;

	if (x->running)
		return true;
	/* its signals are the program's: none come here */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	x->running = !lib_thread_start(&x->thread, x->name, helper_main, x);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return x->running;
}

bool helper_post(struct helper *x, void (*fn)(void *), void *arg)
{
	bool ok;

	if (!x || !two_cores())
		return false;
	pthread_mutex_lock(&x->lock);
	ok = x->done == x->posted && !x->stopping && helper_start(x);
	if (ok) {
		x->fn = fn;
		x->arg = arg;
		x->posted++;
		pthread_cond_signal(&x->cond);
	}
	pthread_mutex_unlock(&x->lock);
	return ok;
}

/* After a helper_post that returned true, by the same caller. */
void helper_wait(struct helper *x)
{
	pthread_mutex_lock(&x->lock);
	while (x->done != x->posted)
		pthread_cond_wait(&x->cond, &x->lock);
	pthread_mutex_unlock(&x->lock);
}

/* With no half in flight (its owner is going away). */
void helper_free(struct helper *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&x->lock);
	x->stopping = true;
	pthread_cond_broadcast(&x->cond);
	pthread_mutex_unlock(&x->lock);
	if (x->running)
		lib_thread_join(&x->thread);
	pthread_mutex_destroy(&x->lock);
	pthread_cond_destroy(&x->cond);
	mem_free(x);
}

/* How big a job must be to split, from the environment variable `var` in
 * MiB (0: never), or dflt where it is unset or no number. */
size_t split_min_env(const char *var, size_t dflt)
{
	const char *env = getenv(var);
	char *end;
	unsigned long mib;

	if (!env || !*env)
		return dflt;
	mib = strtoul(env, &end, 10);
	if (*end || mib > (SIZE_MAX >> 20))
		return dflt;
	return mib << 20;
}
