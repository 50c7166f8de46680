/* SPDX-License-Identifier: MIT */
/*
 * Four writer threads increment per-page counters (thread t owns word
 * slot t*8 of every page, and checks each value it reads is the one it
 * last wrote) while the main thread migrates the range between system
 * memory and PRIVATE devices in a loop: whole, in halves, device to
 * device, with the writers faulting pages back all the time.  A reader
 * thread checks that no counter ever goes backwards.  At the end every
 * counter equals the number of increments its thread made: no write lost,
 * no stale page brought back.  With fault_threads = 2.
 */
#define _GNU_SOURCE
#include "private.h"

#define NW 4

static uint64_t *base;
static size_t npages, words_per_page;
static int stop;
static unsigned long backwards, reads;

struct writer {
	pthread_t th;
	int t;
	uint64_t *inc;		/* per page */
	unsigned long total, mismatch;
};

static void *writer(void *arg)
{
	struct writer *w = arg;
	size_t slot = (size_t)w->t * 8;

	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (size_t i = 0; i < npages; i++) {
			uint64_t *c = base + i * words_per_page + slot;
			uint64_t v = __atomic_load_n(c, __ATOMIC_RELAXED);
			if (v != w->inc[i])	/* only I write this word */
				w->mismatch++;
			__atomic_store_n(c, w->inc[i] + 1, __ATOMIC_RELAXED);
			w->inc[i]++;
			w->total++;
		}
	}
	return NULL;
}

static void *reader(void *arg)
{
	uint64_t *last = calloc(npages * NW, sizeof(uint64_t));
	unsigned long bad = 0, n = 0;

	(void)arg;
	if (!last)
		return NULL;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		for (size_t i = 0; i < npages; i += 3)
			for (int t = 0; t < NW; t++) {
				uint64_t v = __atomic_load_n(base + i * words_per_page + (size_t)t * 8,
							     __ATOMIC_RELAXED);
				if (v < last[i * NW + (size_t)t])
					bad++;
				last[i * NW + (size_t)t] = v;
				n++;
			}
	}
	free(last);
	__atomic_store_n(&backwards, bad, __ATOMIC_RELAXED);
	__atomic_store_n(&reads, n, __ATOMIC_RELAXED);
	return NULL;
}

int main(void)
{
	struct writer w[NW];
	pthread_t rd;
	struct uhmm *h;
	struct uhmm_dev *a, *b;
	size_t len = 2 * UT_MiB;
	unsigned long rounds = ut_scaled(200, 20), errs = 0, total = 0, mism = 0;
	int rc, first_err = 0;

	ut_init(300);
	tdrv_app_thread();
	h = ut_open_priv(0, 2, 0);
	a = ut_psim(h, "pA", 16 * UT_MiB);
	b = ut_psim(h, "pB", 16 * UT_MiB);
	base = ut_map_aligned(len, 2 * UT_MiB);
	memset(base, 0, len);
	npages = len / ut_page();
	words_per_page = ut_page() / 8;

	for (int t = 0; t < NW; t++) {
		w[t].t = t;
		w[t].inc = calloc(npages, sizeof(uint64_t));
		w[t].total = w[t].mismatch = 0;
		if (!w[t].inc || pthread_create(&w[t].th, NULL, writer, &w[t]))
			tap_bail("pthread_create");
	}
	if (pthread_create(&rd, NULL, reader, NULL))
		tap_bail("pthread_create");

	usleep(10000);
	for (unsigned long i = 0; i < rounds; i++) {
		struct uhmm_dev *to = (i % 5 == 3) ? b : a;

		if (i % 3 == 2) {	/* in two halves */
			rc = uhmm_migrate(h, base, len / 2, to, 0);
			if (!rc)
				rc = uhmm_migrate(h, (uint8_t *)base + len / 2, len / 2, to, 0);
		} else if (i % 7 == 4) {	/* an odd piece only */
			rc = uhmm_migrate(h, (uint8_t *)base + 5 * ut_page() + 3, len / 3, to, 0);
		} else {
			rc = uhmm_migrate(h, base, len, to, 0);
		}
		if (rc && !errs++)
			first_err = rc;
		if (i % 4 == 1) {	/* device to device before coming back */
			rc = uhmm_migrate(h, base, len, to == a ? b : a, 0);
			if (rc && !errs++)
				first_err = rc;
		}
		if (i % 2 == 0) {
			rc = uhmm_migrate(h, base, len, NULL, 0);
			if (rc && !errs++)
				first_err = rc;
		}
	}
	is_int(errs, 0, "%lu rounds of migrations under 4 writers and a reader: every call returned 0",
	       rounds);
	if (errs)
		diag("first error %d (%s)", first_err, ut_err(first_err));

	/* Stop the writers while the pages are on the device. */
	rc = uhmm_migrate(h, base, len, a, 0);
	is_int(rc, 0, "to the device once more");
	usleep(20000);
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int t = 0; t < NW; t++)
		pthread_join(w[t].th, NULL);
	pthread_join(rd, NULL);
	rc = uhmm_migrate(h, base, len, a, 0);
	is_int(rc, 0, "everything to the device after the writers stopped");

	{
		size_t bad = 0, fi = 0;
		int ft = 0;
		uint64_t got = 0, want = 0;
		for (int t = 0; t < NW; t++) {
			total += w[t].total;
			mism += w[t].mismatch;
			for (size_t i = 0; i < npages; i++) {
				uint64_t v = base[i * words_per_page + (size_t)t * 8];
				if (v != w[t].inc[i] && !bad++) {
					fi = i;
					ft = t;
					got = v;
					want = w[t].inc[i];
				}
			}
		}
		diag("%lu increments by %d writers, %lu reads", total, NW, reads);
		ok(total > (unsigned long)npages * NW, "the writers made progress");
		is_int(mism, 0, "every value a writer read was the one it last wrote");
		is_int(bad, 0, "every increment accounted for (read back from the device)");
		if (bad)
			diag("first: page %zu thread %d: %" PRIu64 ", want %" PRIu64, fi, ft, got, want);
		is_int(backwards, 0, "the reader never saw a counter go backwards");

		rc = uhmm_migrate(h, base, len, NULL, 0);
		is_int(rc, 0, "back to system memory");
		bad = 0;
		for (int t = 0; t < NW; t++)
			for (size_t i = 0; i < npages; i++)
				bad += base[i * words_per_page + (size_t)t * 8] != w[t].inc[i];
		is_int(bad, 0, "every increment accounted for (back in system memory)");
		bad = 0;
		for (size_t i = 0; i < npages; i++)
			for (size_t k = 0; k < words_per_page; k++)
				if (k % 8 || k / 8 >= NW)
					bad += base[i * words_per_page + k] != 0;
		is_int(bad, 0, "the words nobody wrote are still zero");
		is_int(ut_stats(h).poisoned, 0, "nothing poisoned");
	}

	for (int t = 0; t < NW; t++)
		free(w[t].inc);
	munmap(base, len);
	uhmm_close(h);
	return tap_done();
}
