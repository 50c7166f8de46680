// SPDX-License-Identifier: MIT
/*
 * A second core for work that splits in two halves.  A snapshot of a GiB
 * is bound by the rate one core writes its 6 MiB of entries; two cores
 * write it in half the time.  The caller, which holds the context lock,
 * hands one half to the helper thread, does the other and waits: the
 * helper works under the caller's lock, and its faults on the program's
 * memory are served like the caller's own (events.c reads h->helper_tid).
 *
 * The thread starts at the first split and sleeps between them.  Only one
 * half is in flight at a time: the caller holds the context lock.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include "internal.h"

struct helper {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lib_thread thread;
	bool running, stopping;
	void (*fn)(void *);
	void *arg;
	uint64_t posted, done;
};

static void *helper_main(void *arg)
{
	struct uhmm *h = arg;
	struct helper *x = h->helper;

	lib_thread = true;
	atomic_store(&h->helper_tid, my_tid());
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
	return NULL;
}

static bool two_cores(void)
{
	static int n;

	if (!n)
		n = (int)sysconf(_SC_NPROCESSORS_ONLN);
	return n >= 2;
}

/* With h->lock held, which makes the helper ours alone. */
static struct helper *helper_get(struct uhmm *h)
{
	struct helper *x = h->helper;
	sigset_t all, old;

	if (!x) {
		x = mem_alloc(sizeof(*x));
		if (!x)
			return NULL;
		pthread_mutex_init(&x->lock, NULL);
		pthread_cond_init(&x->cond, NULL);
		h->helper = x;
	}
	if (!x->running) {
		/* its signals are the program's: none come here */
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		x->running = !lib_thread_start(&x->thread, "uhmm-helper", helper_main, h);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	return x->running ? x : NULL;
}

bool helper_post(struct uhmm *h, void (*fn)(void *), void *arg)
{
	struct helper *x;

	if (!two_cores() || !(x = helper_get(h)))
		return false;
	pthread_mutex_lock(&x->lock);
	x->fn = fn;
	x->arg = arg;
	x->posted++;
	pthread_cond_signal(&x->cond);
	pthread_mutex_unlock(&x->lock);
	return true;
}

void helper_wait(struct uhmm *h)
{
	struct helper *x = h->helper;

	pthread_mutex_lock(&x->lock);
	while (x->done != x->posted)
		pthread_cond_wait(&x->cond, &x->lock);
	pthread_mutex_unlock(&x->lock);
}

/* At uhmm_close, with no call of the program's running in the context. */
void helper_stop(struct uhmm *h)
{
	struct helper *x = h->helper;

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
	h->helper = NULL;
}
