/* SPDX-License-Identifier: MIT */
/*
 * New threads (and any mmap of the program) while migrations go on: the
 * library's own moves must leave no hole in its address space for a
 * moment, or a thread stack mapped into it would be wiped out when the
 * library maps its memory there again (a crash at thread start, or
 * another thread's data in the stack).  Several threads place blocks on a
 * coherent device with uhmm_alloc, fill and check them and free them,
 * while the main thread keeps starting threads that fill their stacks
 * and mapping memory of its own.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static _Atomic int stop, bad_blocks, bad_stacks, bad_maps;

static void *placer(void *arg)
{
	unsigned s = (unsigned)(uintptr_t)arg;

	while (!atomic_load(&stop)) {
		size_t n = (size_t)(1 + rand_r(&s) % 8) << 20;
		unsigned seed = rand_r(&s) % 60000 + 1;
		char *p = uhmm_alloc(h, n, dev, 0);

		if (!p) {
			atomic_fetch_add(&bad_blocks, 1);
			break;
		}
		ut_fill8(p, n, seed);
		if (ut_check8(p, n, seed) != SIZE_MAX)
			atomic_fetch_add(&bad_blocks, 1);
		if (uhmm_free(h, p))
			atomic_fetch_add(&bad_blocks, 1);
	}
	return NULL;
}

static void *short_lived(void *arg)
{
	volatile unsigned char buf[96 * 1024];
	unsigned seed = (unsigned)(uintptr_t)arg;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = ut_pat8(seed, i);
	for (size_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != ut_pat8(seed, i)) {
			atomic_fetch_add(&bad_stacks, 1);
			break;
		}
	return NULL;
}

int main(void)
{
	pthread_t t[3];
	int rounds;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "dev", 128 * UT_MiB);
	rounds = (int)ut_scaled(200, 40);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, placer, (void *)(uintptr_t)(i + 1));
	for (int i = 0; i < rounds; i++) {
		size_t len = (size_t)(1 + i % 4) << 20;
		unsigned char *m;
		pthread_attr_t a;
		pthread_t s;

		/* stacks of sizes never used before: fresh mappings, not
		 * glibc's cache of old stacks */
		pthread_attr_init(&a);
		pthread_attr_setstacksize(&a, (size_t)(256 + i) << 10);
		if (pthread_create(&s, &a, short_lived, (void *)(uintptr_t)(i + 1)))
			tap_bail("pthread_create: %s", strerror(errno));
		pthread_attr_destroy(&a);
		/* and a mapping of the program's own meanwhile */
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED)
			tap_bail("mmap: %s", strerror(errno));
		ut_fill8(m, len, (unsigned)i + 7);
		if (ut_check8(m, len, (unsigned)i + 7) != SIZE_MAX)
			atomic_fetch_add(&bad_maps, 1);
		munmap(m, len);
		pthread_join(s, NULL);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	is_int(bad_stacks, 0, "%d threads started while 3 others placed and freed blocks: "
	       "every stack kept its data", rounds);
	is_int(bad_maps, 0, "... every mapping of the program its data");
	is_int(bad_blocks, 0, "... and every block its data");
	uhmm_close(h);
	return tap_done();
}
