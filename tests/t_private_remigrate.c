/* SPDX-License-Identifier: MIT */
/*
 * Migrate a range to a PRIVATE device, let the CPU fault half of its pages
 * back by writing to them (fault_around = one page, the pages touched in
 * a shuffled order so that nothing looks sequential), migrate the whole
 * range again: only the faulted half moves (res.moved == half,
 * res.already == the other half), stats bytes_copied and pages_to_dev
 * grow by that half only, and every byte is right afterwards.  The same
 * through the sim device and through a driver of the test's own, whose
 * copy_to_dev byte count must match too.
 */
#define _GNU_SOURCE
#include "private.h"

static uint64_t marker(size_t page)
{
	return 0xfeed000000000000ull | page;
}

/* Pattern `seed` with the first word of every even page replaced. */
static size_t check(const uint8_t *p, size_t len, unsigned seed)
{
	const uint64_t *w = (const uint64_t *)(const void *)p;
	size_t wpp = ut_page() / 8;

	for (size_t i = 0; i < len / 8; i++) {
		size_t page = i / wpp;
		uint64_t want = (i % wpp == 0 && page % 2 == 0) ? marker(page) : ut_pat64(seed, i);
		if (w[i] != want)
			return i * 8;
	}
	return SIZE_MAX;
}

static void run(struct uhmm *h, struct uhmm_dev *dev, struct tdrv *td, const char *dn,
		unsigned seed)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	size_t len = 8 * UT_MiB, pg = ut_page(), n = len / pg, half = n / 2;
	unsigned long long tb0 = 0;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
	size_t *order = malloc(half * sizeof(size_t));
	int *want = calloc(n, sizeof(int));
	int id = ut_dev_id(dev), rc;
	size_t bad;

	if (!order || !want)
		tap_bail("malloc");
	ut_fill64(p, len, seed);
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	is_int(rc, 0, "%s: 8 MiB to the device", dn);
	is_int(res.moved, n, "%s: res.moved = %zu", dn, n);
	ut_check_where(h, p, len, id, dn);

	/* Write the first word of every even page, in a shuffled order. */
	for (size_t k = 0; k < half; k++)
		order[k] = 2 * k;
	srand(seed);
	for (size_t k = half - 1; k > 0; k--) {
		size_t j = (size_t)rand() % (k + 1), t = order[k];
		order[k] = order[j];
		order[j] = t;
	}
	s0 = ut_stats(h);
	for (size_t k = 0; k < half; k++)
		*(volatile uint64_t *)(void *)(p + order[k] * pg) = marker(order[k]);
	s1 = ut_stats(h);
	ok(s1.cpu_faults - s0.cpu_faults >= half,
	   "%s: the %zu page writes took at least %zu CPU faults (fault_around = one page): %" PRIu64,
	   dn, half, half, s1.cpu_faults - s0.cpu_faults);
	for (size_t i = 0; i < n; i++)
		want[i] = i % 2 ? id : UHMM_LOC_SYSTEM;
	{
		char w[128];
		snprintf(w, sizeof(w), "%s: even pages back in system memory, odd ones on the device", dn);
		ut_check_where_map(h, p, len, want, w);
	}
	is_int(ut_dev_used(dev), (n - half) * pg, "%s: device used = the odd half", dn);

	/* Migrate the whole range again. */
	s0 = ut_stats(h);
	if (td)
		tb0 = __atomic_load_n(&td->to_bytes, __ATOMIC_SEQ_CST);
	memset(&res, 0, sizeof(res));
	res.sz = sizeof(res);
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "%s: the whole range to the device again", dn);
	is_int(res.moved, half, "%s: res.moved = the faulted half (%zu pages)", dn, half);
	is_int(res.already, n - half, "%s: res.already = the other half", dn);
	is_int(res.zero_filled, 0, "%s: res.zero_filled 0", dn);
	is_int(s1.pages_to_dev - s0.pages_to_dev, half, "%s: stats pages_to_dev grew by the half", dn);
	is_int(s1.bytes_copied - s0.bytes_copied, half * pg,
	       "%s: stats bytes_copied grew by the half only (%zu bytes)", dn, half * pg);
	if (td)
		is_int(__atomic_load_n(&td->to_bytes, __ATOMIC_SEQ_CST) - tb0, half * pg,
		       "%s: the driver's copy_to_dev got the half only", dn);
	ut_check_where(h, p, len, id, dn);
	is_int(ut_dev_used(dev), n * pg, "%s: device used = the whole range", dn);

	/* Everything back, every byte. */
	rc = uhmm_migrate_ex(h, p, len, NULL, 0, &res);
	is_int(rc, 0, "%s: back to system memory", dn);
	is_int(res.moved, n, "%s: every page moved back", dn);
	bad = check(p, len, seed);
	if (!ok(bad == SIZE_MAX, "%s: every byte right (the writes and the untouched data)", dn))
		diag("first bad byte at %zu (page %zu)", bad, bad / pg);
	is_int(ut_dev_used(dev), 0, "%s: device empty", dn);
	free(order);
	free(want);
	munmap(p, len);
}

int main(void)
{
	struct uhmm *h;
	struct tdrv td;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open_priv(ut_page(), 0, 0);
	run(h, ut_psim(h, "psim", 32 * UT_MiB), NULL, "sim PRIVATE", 41);
	run(h, tdrv_add(h, &td, "tdrv", 32 * UT_MiB, 0), &td, "test driver", 42);
	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);
	return tap_done();
}
