/* SPDX-License-Identifier: MIT */
/*
 * Device memory freed by munmap is handed out again at once, before the
 * background scrubber had a chance to make it ready: the pages held the
 * old range's data and lost their page-table entries in uhmm's view.  The
 * next migration onto them must give zeros where nothing was copied and
 * the new data where it was, lend the rebuilt entries to the program (CPU
 * writes then take no fault and land in the device memory), and do the
 * same for pages the device file no longer holds (MADV_REMOVE punched
 * them).  Two threads recycling the same device at once lose nothing.
 * The test is the driver: its own memfd is the device, mapped a second
 * time as the device's view of its memory.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "util.h"

#define DEV_SIZE	(8 * UT_MiB)

/* Fill the whole device with a pattern, then unmap it all. */
static void dirty_and_unmap(struct uhmm *h, const struct ut_memfd_dev *m, unsigned seed,
			    bool punch_half)
{
	uint8_t *a = ut_map(DEV_SIZE);
	int rc;

	ut_fill64(a, DEV_SIZE, seed);
	rc = uhmm_migrate(h, a, DEV_SIZE, m->dev, 0);
	is_int(rc, 0, "seed %u: the whole device filled", seed);
	if (punch_half) {
		/* the file drops these pages: no page left to map again */
		rc = madvise(a, DEV_SIZE / 2, MADV_REMOVE) ? -errno : 0;
		is_int(rc, 0, "seed %u: MADV_REMOVE of half of it", seed);
	}
	munmap(a, DEV_SIZE);
}

static void reuse_at_once(struct uhmm *h, const struct ut_memfd_dev *m, unsigned seed,
			  bool punch_half)
{
	size_t len = DEV_SIZE, n = len / ut_page(), zeros = 0, bad = 0;
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	const char *how = punch_half ? "half punched" : "all dirty";
	uint8_t *b;
	int rc;

	dirty_and_unmap(h, m, seed, punch_half);
	b = ut_map(len);
	/* every other page touched: the others must come out zero */
	for (size_t i = 0; i < n; i += 2)
		ut_fill64(b + i * ut_page(), ut_page(), seed + 1 + (unsigned)i);
	rc = uhmm_migrate_ex(h, b, len, m->dev, UHMM_MIGRATE_NOEVICT, &res);
	is_int(rc, 0, "%s: a new range onto the freed pages at once", how);
	is_int(res.moved, n, "%s: every page moved", how);
	is_int(res.zero_filled, n / 2, "%s: the untouched half zero-filled", how);
	ut_check_where(h, b, len, m->id, how);
	for (size_t i = 0; i < n; i++) {
		const uint8_t *pg = b + i * ut_page();

		if (i % 2)
			zeros += ut_check_zero(pg, ut_page()) != SIZE_MAX;
		else
			bad += ut_check64(pg, ut_page(), seed + 1 + (unsigned)i) != SIZE_MAX;
	}
	is_int(zeros, 0, "%s: untouched pages read zeros, not the old range's data", how);
	is_int(bad, 0, "%s: touched pages hold their data", how);
	is_int(ut_not_in_device(h, m, b, len), 0, "%s: the device's memory holds the same bytes", how);

	/* the entries rebuilt in uhmm's view were lent to the program */
	s0 = ut_stats(h);
	ut_fill64(b, len, seed + 7);
	s1 = ut_stats(h);
	is_int(s1.cpu_faults - s0.cpu_faults, 0, "%s: CPU writes afterwards take no uhmm fault", how);
	is_int(ut_not_in_device(h, m, b, len), 0, "%s: ... and land in device memory", how);
	munmap(b, len);
}

struct recycler {
	struct uhmm *h;
	struct uhmm_dev *dev;
	unsigned seed;
	int rounds, errors, bad;
};

/* Quarter of the device at a time: migrate, check, unmap, again. */
static void *recycle_thread(void *arg)
{
	struct recycler *r = arg;
	size_t len = DEV_SIZE / 4;

	for (int i = 0; i < r->rounds; i++) {
		uint8_t *p = ut_map(len);
		unsigned seed = r->seed * 1000 + (unsigned)i;

		ut_fill64(p, len / 2, seed);	/* the rest untouched */
		if (uhmm_migrate(r->h, p, len, r->dev, UHMM_MIGRATE_NOEVICT))
			r->errors++;
		r->bad += ut_check64(p, len / 2, seed) != SIZE_MAX;
		r->bad += ut_check_zero(p + len / 2, len / 2) != SIZE_MAX;
		munmap(p, len);
	}
	return NULL;
}

int main(void)
{
	struct recycler r[2];
	pthread_t t[2];
	struct ut_memfd_dev m;
	struct uhmm *h;

	ut_init(240);
	h = ut_open();
	ut_require_coherent(h);
	m = ut_memfd_dev(h, "recycle", DEV_SIZE);

	reuse_at_once(h, &m, 10, false);
	reuse_at_once(h, &m, 20, true);
	/* and again, now that the punched pages were made anew */
	reuse_at_once(h, &m, 30, false);

	for (int i = 0; i < 2; i++) {
		r[i] = (struct recycler){ h, m.dev, (unsigned)i + 1,
					  (int)ut_scaled(40, 4), 0, 0 };
		pthread_create(&t[i], NULL, recycle_thread, &r[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 2; i++) {
		is_int(r[i].errors, 0, "thread %d: %d migrations onto recycled pages", i, r[i].rounds);
		is_int(r[i].bad, 0, "thread %d: data and zeros right every round", i);
	}
	is_int(ut_dev_used(m.dev), 0, "every page freed at the end");
	uhmm_close(h);
	return tap_done();
}
