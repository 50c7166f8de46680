/* SPDX-License-Identifier: MIT */
/*
 * A CPU fault bringing a window of pages home from a PRIVATE device while
 * another thread drops part of that window with MADV_DONTNEED.  The kernel
 * reports the madvise to us (REMOVE) before madvise returns, but we apply
 * it later; a window placed in between would put the device's old copy
 * back behind the madvise.  Whatever the order, the dropped pages must
 * read zeros as soon as madvise has returned, the others their data, and
 * the device memory of both halves is accounted for.
 *
 * First with the order forced: the fault's copy out of the device is held
 * at the test driver's gate while the madvise runs and returns (the
 * worker serves the fault: a mirror holds the range, so the reader
 * thread does not); when the copy goes on, the window must not be placed
 * over the dropped half.  Then raced freely, each 64 KiB window once per
 * round: one thread reads its first page (the fault brings the window
 * home), the other madvises its second half away and reads it at once;
 * with one fault thread and with three (faults served in parallel,
 * copies with the context unlocked).
 */
#define _GNU_SOURCE
#include "private.h"

#define WIN	(64 * 1024)
#define NWIN	64

static uint8_t *base;
static pthread_barrier_t start;
static int rounds;
static unsigned long stale_bytes, stale_windows, lost_windows, madv_fail;

static void inval_none(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m, (void)s, (void)e, (void)ev;
}

static void *read_first(void *arg)
{
	return (void *)(uintptr_t)*(volatile const uint64_t *)arg;
}

static void held_copy(void)
{
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval_none };
	struct uhmm_pte pte[WIN / 4096];
	struct uhmm_mirror *m = NULL;
	static struct tdrv td;
	struct uhmm_dev *dev;
	struct uhmm *h;
	void *got = NULL;
	uint8_t *p;
	pthread_t t;

	h = ut_open_priv(WIN, 1, 0);
	dev = tdrv_add(h, &td, "tdrv", 16 * UT_MiB, 1);
	p = ut_map_aligned(WIN, 2 * UT_MiB);
	ut_fill64(p, WIN, 7);
	is_int(uhmm_migrate(h, p, WIN, dev, 0), 0, "held: 64 KiB to the test driver's device");
	is_int(uhmm_mirror_open(dev, &ops, NULL, &m), 0, "held: a mirror of the device");
	is_int(uhmm_range_fault(m, p, WIN, 0, pte), 0, "held: the mirror takes a snapshot of the range");
	tdrv_gate_from(&td);
	tdrv_gate_close(&td);
	pthread_create(&t, NULL, read_first, p);
	ok(tdrv_gate_wait_arrival(&td, 10), "held: the fault's copy out of the device waits at the gate");
	is_int(madvise(p + WIN / 2, WIN / 2, MADV_DONTNEED) ? -errno : 0, 0,
	       "held: madvise(MADV_DONTNEED) of the second half returns meanwhile");
	tdrv_gate_open(&td);
	pthread_join(t, &got);
	ok((uint64_t)(uintptr_t)got == ut_pat64(7, 0), "held: the faulting read got its data");
	ut_okzero(p + WIN / 2, WIN / 2, "held: the dropped half reads zeros, not the copy the fault made");
	ut_ok64(p, WIN / 2, 7, "held: the first half holds its data");
	is_int(tdrv_gate_timeouts(&td), 0, "held: the gate was opened by the test, not by its timeout");
	uhmm_mirror_close(m);
	is_int(uhmm_migrate(h, p, WIN, NULL, 0), 0, "held: back to system memory");
	ut_okzero(p + WIN / 2, WIN / 2, "held: the dropped half, back in system memory");
	ut_ok64(p, WIN / 2, 7, "held: the first half, back in system memory");
	is_int(ut_dev_used(dev), 0, "held: no device memory left behind");
	munmap(p, WIN);
	uhmm_close(h);
}

static void *toucher(void *arg)
{
	(void)arg;
	for (int r = 0; r < rounds; r++) {
		pthread_barrier_wait(&start);
		for (int w = 0; w < NWIN; w++) {
			const uint64_t *q = (const uint64_t *)(const void *)(base + (size_t)w * WIN);

			if (*(volatile const uint64_t *)q != ut_pat64(r + 1, (size_t)w * WIN / 8))
				lost_windows++;
		}
		pthread_barrier_wait(&start);
	}
	return NULL;
}

static void dropper(int r)
{
	for (int w = 0; w < NWIN; w++) {
		uint8_t *half = base + (size_t)w * WIN + WIN / 2;
		size_t nz;

		if (madvise(half, WIN / 2, MADV_DONTNEED)) {
			madv_fail++;
			continue;
		}
		nz = 0;
		for (size_t k = 0; k < WIN / 2; k++)
			nz += half[k] != 0;
		if (nz) {
			if (!stale_windows)
				diag("round %d window %d: %zu bytes of old data right after "
				     "madvise(MADV_DONTNEED) returned", r, w, nz);
			stale_windows++;
			stale_bytes += nz;
		}
	}
}

/* Both halves as they must be once the round is over. */
static size_t round_errors(int r)
{
	size_t bad = 0;

	for (int w = 0; w < NWIN; w++) {
		uint8_t *win = base + (size_t)w * WIN;
		const uint64_t *q = (const uint64_t *)(const void *)win;

		for (size_t k = 0; k < WIN / 2 / 8; k++)
			bad += q[k] != ut_pat64(r + 1, (size_t)w * WIN / 8 + k);
		bad += ut_check_zero(win + WIN / 2, WIN / 2) != SIZE_MAX;
	}
	return bad;
}

static void race(uint32_t fault_threads)
{
	size_t len = (size_t)NWIN * WIN, bad = 0;
	struct uhmm_dev *dev;
	struct uhmm *h;
	pthread_t t;
	int rc = 0;

	stale_bytes = stale_windows = lost_windows = madv_fail = 0;
	h = ut_open_priv(WIN, fault_threads, 0);
	dev = ut_psim(h, "psim", 16 * UT_MiB);
	base = ut_map_aligned(len, 2 * UT_MiB);
	pthread_barrier_init(&start, NULL, 2);
	pthread_create(&t, NULL, toucher, NULL);
	/* every round, even after a failure: the toucher waits at each */
	for (int r = 0; r < rounds; r++) {
		if (!rc) {
			ut_fill64(base, len, r + 1);
			rc = uhmm_migrate(h, base, len, dev, 0);
		}
		pthread_barrier_wait(&start);
		if (!rc)
			dropper(r);
		pthread_barrier_wait(&start);
		if (rc)
			continue;
		/* a uhmm call: every event is applied now */
		(void)ut_where_count(h, base, len, ut_dev_id(dev));
		bad += round_errors(r);
		rc = uhmm_migrate(h, base, len, NULL, 0);
	}
	pthread_join(t, NULL);
	is_int(rc, 0, "fault_threads %u: %d rounds of migrate, race, migrate back", fault_threads, rounds);
	is_int(madv_fail, 0, "fault_threads %u: every madvise succeeded", fault_threads);
	is_int(stale_windows, 0, "fault_threads %u: no dropped half read old data right after madvise "
	       "(%lu bytes in %lu windows did)", fault_threads, stale_bytes, stale_windows);
	is_int(lost_windows, 0, "fault_threads %u: the faulting reads got their data", fault_threads);
	is_int(bad, 0, "fault_threads %u: after each round, first halves hold their data, second halves zeros",
	       fault_threads);
	is_int(ut_dev_used(dev), 0, "fault_threads %u: no device memory left behind", fault_threads);
	pthread_barrier_destroy(&start);
	munmap(base, len);
	uhmm_close(h);
}

int main(void)
{
	ut_init(300);
	held_copy();
	rounds = (int)ut_scaled(16, 4);
	race(1);
	race(3);
	return tap_done();
}
