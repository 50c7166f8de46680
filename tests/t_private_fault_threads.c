/* SPDX-License-Identifier: MIT */
/*
 * Four threads fault different pages of the same range living on a
 * PRIVATE device at the same moment (released together by a barrier, the
 * pages interleaved so that they share fault_around windows), with
 * opts.fault_threads = 1 and = 4, fault_around one page and the default:
 * every byte each thread reads is right, the writes each thread then
 * makes to its pages while others still fault are all kept (checked by
 * each thread, and by the main thread after a round trip through the
 * device).  A few rounds per configuration.
 */
#define _GNU_SOURCE
#include "private.h"

#define NT 4

static pthread_barrier_t bar;
static uint8_t *base;
static size_t blen, npg, pg;

struct th {
	pthread_t t;
	int idx;
	unsigned seed_in, seed_out;
	size_t bad_read, bad_write;
};

static void *worker(void *arg)
{
	struct th *t = arg;

	pthread_barrier_wait(&bar);
	/* Read my pages (page i with i % NT == idx), in place. */
	for (size_t i = (size_t)t->idx; i < npg; i += NT)
		if (ut_chk8(base + i * pg, i * pg, pg, t->seed_in) != SIZE_MAX)
			t->bad_read++;
	/* Rewrite them with the round's output pattern. */
	for (size_t i = (size_t)t->idx; i < npg; i += NT)
		for (size_t k = 0; k < pg; k++)
			base[i * pg + k] = ut_pat8(t->seed_out, i * pg + k);
	for (size_t i = (size_t)t->idx; i < npg; i += NT)
		if (ut_chk8(base + i * pg, i * pg, pg, t->seed_out) != SIZE_MAX)
			t->bad_write++;
	return NULL;
}

static void run(uint32_t fthreads, size_t fa, const char *what)
{
	struct uhmm *h = ut_open_priv(fa, fthreads, 0);
	struct uhmm_dev *dev = ut_psim(h, "psim", 64 * UT_MiB);
	int id = ut_dev_id(dev), rc;
	unsigned rounds = (unsigned)ut_scaled(4, 2);
	struct uhmm_stats s0, s1;
	char w[160];

	blen = ut_scaled(16, 2) * UT_MiB;
	npg = blen / pg;
	base = ut_map_aligned(blen, 2 * UT_MiB);
	ut_fill8(base, blen, 80);
	s0 = ut_stats(h);
	for (unsigned r = 0; r < rounds; r++) {
		struct th t[NT];
		size_t br = 0, bw = 0;

		rc = uhmm_migrate(h, base, blen, dev, 0);
		is_int(rc, 0, "%s, round %u: range to the device", what, r);
		ut_check_where(h, base, blen, id, what);
		pthread_barrier_init(&bar, NULL, NT);
		for (int k = 0; k < NT; k++) {
			t[k].idx = k;
			t[k].seed_in = 80 + r;
			t[k].seed_out = 81 + r;
			t[k].bad_read = t[k].bad_write = 0;
			if (pthread_create(&t[k].t, NULL, worker, &t[k]))
				tap_bail("pthread_create");
		}
		for (int k = 0; k < NT; k++) {
			pthread_join(t[k].t, NULL);
			br += t[k].bad_read;
			bw += t[k].bad_write;
		}
		pthread_barrier_destroy(&bar);
		is_int(br, 0, "%s, round %u: 4 threads faulting at once read every page right", what, r);
		is_int(bw, 0, "%s, round %u: each thread reads back what it wrote", what, r);
		snprintf(w, sizeof(w), "%s, round %u: after the threads", what, r);
		ut_check_where(h, base, blen, UHMM_LOC_SYSTEM, w);
		/* Through the device and back by migration: the writes were kept. */
		rc = uhmm_migrate(h, base, blen, dev, 0);
		is_int(rc, 0, "%s, round %u: to the device", what, r);
		rc = uhmm_migrate(h, base, blen, NULL, 0);
		is_int(rc, 0, "%s, round %u: and back", what, r);
		snprintf(w, sizeof(w), "%s, round %u: every byte after a round trip", what, r);
		ut_ok8(base, blen, 81 + r, w);
	}
	s1 = ut_stats(h);
	ok(s1.cpu_faults > s0.cpu_faults, "%s: cpu_faults grew (%" PRIu64 ")", what,
	   s1.cpu_faults - s0.cpu_faults);
	is_int(s1.poisoned - s0.poisoned, 0, "%s: nothing poisoned", what);
	is_int(ut_dev_used(dev), 0, "%s: device empty", what);
	uhmm_close(h);
	munmap(base, blen);
}

int main(void)
{
	ut_init(240);
	pg = ut_page();
	run(1, pg, "fault_threads 1, fault_around one page");
	run(4, pg, "fault_threads 4, fault_around one page");
	run(1, 0, "fault_threads 1, fault_around default");
	run(4, 0, "fault_threads 4, fault_around default");
	return tap_done();
}
