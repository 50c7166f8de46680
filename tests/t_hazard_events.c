/* SPDX-License-Identifier: MIT */
/*
 * Hazard 3 (ARCHITECTURE.md): the kernel reports munmap/mremap late and
 * blocks the thread that caused them until uhmm reads the event.  uhmm
 * reads events on a thread of its own and drains them at the start of
 * every call: a munmap that returned before a uhmm call is always seen by
 * it (the device memory is free again), an mremap'd range is found at its
 * new address, and munmaps from several threads at once do not deadlock.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

#define NT 8
static pthread_barrier_t bar;
static uint8_t *rng[NT];
static size_t rlen;
static int done_count;

static void *unmapper(void *arg)
{
	int t = (int)(intptr_t)arg;

	pthread_barrier_wait(&bar);
	if (t % 3 == 2) {
		/* some threads DONTNEED first, then unmap */
		madvise(rng[t], rlen / 2, MADV_DONTNEED);
	}
	munmap(rng[t], rlen);
	__atomic_add_fetch(&done_count, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

int main(void)
{
	size_t l1 = 8 * UT_MiB, l2 = 4 * UT_MiB;
	uint8_t *r1, *r2;
	size_t used_before;

	ut_init(180);
	h = ut_open();
	dev = ut_sim(h, "sim", 128 * UT_MiB);
	id = ut_dev_id(dev);

	/* munmap, then the next uhmm call sees it. */
	r1 = ut_map(l1);
	r2 = ut_map(l2);
	ut_fill64(r1, l1, 151);
	ut_fill64(r2, l2, 152);
	used_before = ut_dev_used(dev);
	is_int(uhmm_migrate(h, r1, l1, dev, 0), 0, "8 MiB to the device");
	is_int(ut_dev_used(dev), used_before + l1, "used grew by 8 MiB");
	ok(munmap(r1, l1) == 0, "munmap of the migrated range returns (no deadlock)");
	is_int(uhmm_migrate(h, r2, l2, dev, 0), 0, "the next call: another range to the device");
	is_int(ut_dev_used(dev), used_before + l2, "used = the other range only");
	ut_check_where(h, r2, l2, id, "the other range");
	{
		int loc[4];
		is_int(uhmm_where(h, r1, 4 * ut_page(), loc), -EFAULT, "uhmm_where on the unmapped range: -EFAULT");
	}

	/* Partial munmap in the middle of a migrated range. */
	{
		uint8_t *r3 = ut_map(l1);
		size_t u0;
		ut_fill64(r3, l1, 153);
		is_int(uhmm_migrate(h, r3, l1, dev, 0), 0, "8 MiB more to the device");
		u0 = ut_dev_used(dev);
		ok(munmap(r3 + 2 * UT_MiB, 2 * UT_MiB) == 0, "munmap of its middle 2 MiB");
		{
			int l[4];
			is_int(uhmm_where(h, r2, 4 * ut_page(), l), 0, "the next call: uhmm_where on another range");
		}
		is_int(ut_dev_used(dev), u0 - 2 * UT_MiB, "used dropped by 2 MiB after that call");
		ut_ok64(r3, 2 * UT_MiB, 153, "the part before the hole");
		{
			const uint64_t *w = (const uint64_t *)(const void *)(r3 + 4 * UT_MiB);
			size_t bad = 0;
			for (size_t k = 0; k < 4 * UT_MiB / 8; k++)
				bad += w[k] != ut_pat64(153, 4 * UT_MiB / 8 + k);
			is_int(bad, 0, "the part after the hole");
		}
		is_int(uhmm_migrate(h, r3, l1, NULL, 0), -EFAULT, "migrating across the new hole: -EFAULT");
		/* A new mapping in the hole is ordinary memory. */
		{
			uint8_t *q = mmap(r3 + 2 * UT_MiB, 2 * UT_MiB, PROT_READ | PROT_WRITE,
					  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			ok(q == r3 + 2 * UT_MiB, "a new mapping in the hole");
			ut_okzero(q, 2 * UT_MiB, "reads zeros");
			is_int(ut_where_count(h, q, 2 * UT_MiB, id), 0, "and is not on the device");
		}
		is_int(uhmm_migrate(h, r3, l1, NULL, 0), 0, "the whole range back");
		munmap(r3, l1);
		is_int(ut_dev_used(dev), used_before + l2, "used = the other range only again");
	}

	/* uhmm_dev_info is a uhmm call too: it sees a munmap that returned
	 * before it (ARCHITECTURE: drain events at the start of every call). */
	{
		size_t bad = 0, u0 = 0, u1 = 0;
		for (int i = 0; i < 20; i++) {
			uint8_t *r5 = ut_map(l2);
			ut_fill64(r5, l2, 156);
			if (uhmm_migrate(h, r5, l2, dev, 0))
				tap_bail("migrate");
			u0 = ut_dev_used(dev);
			munmap(r5 + UT_MiB, UT_MiB);
			u1 = ut_dev_used(dev);	/* the very next call */
			if (u1 != u0 - UT_MiB && !bad++)
				diag("round %d: used %zu before the munmap, %zu at the next uhmm_dev_info", i, u0, u1);
			munmap(r5, l2);
		}
		is_int(bad, 0, "20 rounds: uhmm_dev_info right after a partial munmap sees it");
	}

	/* mremap: found at the new address. */
	{
		uint8_t *r4 = ut_map(l2), *dst = ut_map(l2), *m;
		size_t u0;
		ut_fill64(r4, l2, 154);
		is_int(uhmm_migrate(h, r4, l2, dev, 0), 0, "4 MiB to the device");
		u0 = ut_dev_used(dev);
		m = mremap(r4, l2, l2, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		ok(m == dst, "mremap moves it");
		ut_check_where(h, dst, l2, id, "at its new address, right after mremap");
		is_int(ut_dev_used(dev), u0, "used unchanged by the move");
		ut_ok64(dst, l2, 154, "at its new address");
		{
			int loc[4];
			is_int(uhmm_where(h, r4, 4 * ut_page(), loc), -EFAULT, "the old address is a hole");
		}
		is_int(uhmm_migrate(h, dst, l2, NULL, 0), 0, "migrated back from the new address");
		ut_ok64(dst, l2, 154, "back in system memory");
		is_int(ut_dev_used(dev), u0 - l2, "used dropped by 4 MiB");
		munmap(dst, l2);
	}

	/* Several threads munmap migrated ranges at once. */
	{
		int rounds = (int)ut_scaled(10, 3);
		int stuck = 0;
		size_t u0 = ut_dev_used(dev);

		rlen = 2 * UT_MiB;
		for (int r = 0; r < rounds && !stuck; r++) {
			pthread_t th[NT];
			int waited = 0;

			for (int t = 0; t < NT; t++) {
				rng[t] = ut_map(rlen);
				ut_fill64(rng[t], rlen, 155);
				if (uhmm_migrate(h, rng[t], rlen, dev, 0))
					diag("migrate of range %d failed", t);
			}
			__atomic_store_n(&done_count, 0, __ATOMIC_SEQ_CST);
			pthread_barrier_init(&bar, NULL, NT);
			for (int t = 0; t < NT; t++)
				pthread_create(&th[t], NULL, unmapper, (void *)(intptr_t)t);
			/* Meanwhile the main thread keeps calling uhmm. */
			while (__atomic_load_n(&done_count, __ATOMIC_SEQ_CST) < NT) {
				struct uhmm_stats st = { .sz = sizeof(st) };
				uhmm_stats(h, &st);
				ut_dev_used(dev);
				usleep(1000);
				if (++waited > 30000) {	/* 30 s */
					stuck = 1;
					break;
				}
			}
			if (stuck)
				break;
			for (int t = 0; t < NT; t++)
				pthread_join(th[t], NULL);
			pthread_barrier_destroy(&bar);
		}
		ok(!stuck, "%d rounds of %d threads munmapping migrated ranges at once: no deadlock", rounds, NT);
		if (stuck)
			tap_bail("munmaps did not return within 30 s");
		is_int(ut_dev_used(dev), u0, "used back to before");
	}

	ut_ok64(r2, l2, 152, "the other range at the end");
	is_int(uhmm_migrate(h, r2, l2, NULL, 0), 0, "the other range back");
	is_int(ut_dev_used(dev), 0, "device empty");
	munmap(r2, l2);
	uhmm_close(h);
	return tap_done();
}
