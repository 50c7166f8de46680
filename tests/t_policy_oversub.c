/* SPDX-License-Identifier: MIT */
/*
 * Oversubscription: a 256 MiB working set on a 64 MiB device, for a
 * PRIVATE and a COHERENT sim device.  Random device reads and writes
 * (through the sim DMA engine, with access counters moving blocks to the
 * device) and CPU reads and writes from two threads on their halves, for
 * a few seconds, against a model of what every page's first word must be:
 * every value checked, the device full and evicting (counted), nothing
 * lost.  Then uhmm_dev_evict makes room on demand.
 */
#define _GNU_SOURCE
#include "private.h"

#define WORKING	(256 * UT_MiB)
#define DEVICE	(64 * UT_MiB)

struct half {
	struct uhmm *h;
	struct uhmm_dev *d;
	uint64_t evictions0;		/* the device evicts before we stop */
	uint8_t *p;			/* its pages */
	size_t npages;
	uint64_t *model;		/* first word of each page */
	unsigned seed;
	double until;
	long ops, wrong, errors;
};

static uint64_t rnd(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void *worker(void *arg)
{
	struct half *hf = arg;

	/* a few seconds, and at least until the device had to evict (a slow
	 * sanitized build gets there later), within the watchdog */
	while (ut_now() < hf->until ||
	       (ut_stats(hf->h).evictions == hf->evictions0 && ut_now() < hf->until + 120)) {
		for (int k = 0; k < 64; k++) {
			size_t i = rnd(&hf->seed) % hf->npages;
			volatile uint64_t *w = (volatile uint64_t *)(void *)(hf->p + i * ut_page());
			uint64_t v = 0;

			switch (rnd(&hf->seed) % 4) {
			case 0:		/* device write */
				v = hf->model[i] + 1;
				if (uhmm_sim_write(hf->d, (void *)w, &v, sizeof(v)) < 0)
					hf->errors++;
				else
					hf->model[i] = v;
				break;
			case 1:		/* device read */
				if (uhmm_sim_read(hf->d, (const void *)w, &v, sizeof(v)) < 0)
					hf->errors++;
				hf->wrong += v != hf->model[i];
				break;
			case 2:		/* CPU write */
				*w = ++hf->model[i];
				break;
			default:	/* CPU read */
				hf->wrong += *w != hf->model[i];
			}
			hf->ops++;
		}
	}
	return NULL;
}

static void run(struct uhmm *h, struct uhmm_dev *d, const char *kind)
{
	uint8_t *p = ut_map_aligned(WORKING, 2 * UT_MiB);
	size_t n = WORKING / ut_page(), bad = 0;
	uint64_t *model = calloc(n, sizeof(*model));
	struct uhmm_stats s0, s1;
	struct half hf[2];
	pthread_t t[2];
	double secs = UT_SANITIZED ? 2.0 : 3.0;

	for (size_t i = 0; i < n; i++)
		*(uint64_t *)(void *)(p + i * ut_page()) = model[i] = i * 1000;
	/* handed to uhmm: the counters move whole blocks of what it manages */
	is_int(uhmm_migrate(h, p, WORKING, NULL, 0), 0, "%s: the working set handed to uhmm", kind);
	s0 = ut_stats(h);
	for (int i = 0; i < 2; i++) {
		hf[i] = (struct half){ h, d, s0.evictions, p + i * (WORKING / 2), n / 2,
				       model + i * (n / 2), (unsigned)(i + 1) * 7919u,
				       ut_now() + secs, 0, 0, 0 };
		pthread_create(&t[i], NULL, worker, &hf[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	s1 = ut_stats(h);
	is_int(hf[0].errors + hf[1].errors, 0, "%s: %ld random accesses for %.0f s, no error", kind,
	       hf[0].ops + hf[1].ops, secs);
	is_int(hf[0].wrong + hf[1].wrong, 0, "%s: every value read was the model's", kind);
	for (size_t i = 0; i < n; i++)
		bad += *(uint64_t *)(void *)(p + i * ut_page()) != model[i];
	is_int(bad, 0, "%s: every page of the 256 MiB holds its value at the end", kind);
	ok(s1.auto_migrations > s0.auto_migrations, "%s: the counters moved blocks to the device (%llu pages)",
	   kind, (unsigned long long)(s1.auto_migrations - s0.auto_migrations));
	ok(s1.evictions > s0.evictions, "%s: the full device evicted (%llu pages)", kind,
	   (unsigned long long)(s1.evictions - s0.evictions));
	ok(ut_dev_used(d) <= DEVICE, "%s: the device holds at most its size", kind);

	/* room on demand */
	is_int(uhmm_dev_evict(d, DEVICE / 2), 0, "%s: uhmm_dev_evict of half the device", kind);
	ok(ut_dev_used(d) <= DEVICE / 2, "%s: at least half of it is free (%zu used)", kind,
	   ut_dev_used(d));
	is_int(uhmm_dev_evict(d, DEVICE), 0, "%s: uhmm_dev_evict of all of it", kind);
	is_int(ut_dev_used(d), 0, "%s: nothing left on it", kind);
	is_int(uhmm_dev_evict(d, DEVICE + ut_page()), -EINVAL, "%s: more than the device: -EINVAL", kind);
	for (size_t i = 0; i < n; i++)
		bad += *(uint64_t *)(void *)(p + i * ut_page()) != model[i];
	is_int(bad, 0, "%s: every value right after the evictions", kind);
	free(model);
	munmap(p, WORKING);
}

int main(void)
{
	/* 1: every device access moves its block, so the device fills and
	 * evicts however slowly a sanitized build runs (counters halve every
	 * second) */
	struct uhmm_opts o = { .sz = sizeof(o), .access_threshold = 1 };
	struct uhmm *h;
	struct uhmm_dev *d;

	ut_init(900);
	h = ut_open_opts(&o);
	d = ut_psim(h, "private", DEVICE);
	run(h, d, "PRIVATE");
	uhmm_dev_remove(d);
	d = ut_csim_try(h, "coherent", DEVICE);
	if (d)
		run(h, d, "COHERENT");
	else
		skip("COHERENT devices need userfaultfd minor faults on shmem");
	is_int(uhmm_dev_evict(NULL, 1), -EINVAL, "uhmm_dev_evict(NULL): -EINVAL");
	uhmm_close(h);
	return tap_done();
}
