/* SPDX-License-Identifier: MIT */
/*
 * The library's own memory (src/mem.c), an internal unit: mem_owns, which
 * every migration asks ("is this range ours?"), must never look at a
 * large allocation that another thread is moving with mem_realloc.  It
 * used to read the header of the old mapping, which mremap had just taken
 * away: a SIGSEGV that t_policy_oversub met once in a loaded run (the sim
 * engine's policy asking while the worker grew its /proc/self/maps buffer).
 * Two threads grow and free allocations while two others ask about them.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>

#include "util.h"
#include "internal.h"

static _Atomic int stop;
static _Atomic uintptr_t last;		/* an address recently ours */

static void *grower(void *arg)
{
	long n = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		char *p = mem_alloc(3 * 4096);

		for (size_t sz = 8 * 4096; p && sz <= 2 << 20; sz *= 2) {
			atomic_store(&last, (uintptr_t)p);
			p = mem_realloc(p, sz);
		}
		mem_free(p);
		n++;
	}
	return (void *)n;
}

static void *asker(void *arg)
{
	long hits = 0;

	(void)arg;
	while (!atomic_load(&stop)) {
		uintptr_t a = atomic_load(&last);

		hits += mem_owns(a, a + 4096);
	}
	return (void *)hits;
}

int main(void)
{
	pthread_t g[2], a[2];
	void *grows[2];

	ut_init(120);
	for (int i = 0; i < 2; i++) {
		pthread_create(&g[i], NULL, grower, NULL);
		pthread_create(&a[i], NULL, asker, NULL);
	}
	usleep(ut_scaled(1500, 300) * 1000);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++) {
		pthread_join(g[i], &grows[i]);
		pthread_join(a[i], NULL);
	}
	ok((long)grows[0] + (long)grows[1] > 0,
	   "allocations grown and freed while others asked mem_owns (%ld rounds), no crash",
	   (long)grows[0] + (long)grows[1]);
	{
		char *p = mem_alloc(5 * 4096);

		ok(mem_owns((uintptr_t)p, (uintptr_t)p + 1), "a live allocation is ours");
		p = mem_realloc(p, 4 << 20);
		ok(mem_owns((uintptr_t)p + (3 << 20), (uintptr_t)p + (3 << 20) + 1),
		   "a grown one is ours all along its new length");
		mem_free(p);
	}
	return tap_done();
}
