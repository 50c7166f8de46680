/* SPDX-License-Identifier: MIT */
/*
 * A malloc'd buffer (odd address, odd length, several MiB, a pattern)
 * migrated to a PRIVATE device: uhmm_where gives the device for every
 * page, no page of it is left in the page tables (/proc/self/pagemap), the
 * process's anonymous RSS drops by about its size (pool_bytes = none), the
 * device's used bytes and the stats grow by its pages.  Then the CPU gets
 * it back by touching it: every byte read is right, the pages read are
 * SYSTEM again and present, cpu_faults grew, the device is empty again.
 * CPU writes to device-resident pages land (checked in place and after a
 * round trip through the device), a second thread reads it all back
 * right, and free() of a buffer living on the device (its own mmap'd
 * chunk) gives the device memory back.  Done for the simulated PRIVATE device and for a driver of
 * the test's own registered with uhmm_dev_add.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include "private.h"

struct rd {
	const uint8_t *p;
	size_t len;
	unsigned seed;
	size_t bad;
};

static void *reader(void *arg)
{
	struct rd *r = arg;

	r->bad = ut_check8(r->p, r->len, r->seed);
	return NULL;
}

/* RssAnon drop, polled: freeing the old system pages may be left to a
 * library thread.  Returns the last reading. */
static long anon_after_drop(long anon0, long want_drop_kb)
{
	long a = ut_rss_anon_kb();

	for (int i = 0; i < 500 && a >= 0 && anon0 - a < want_drop_kb; i++) {
		usleep(10000);
		a = ut_rss_anon_kb();
	}
	return a;
}

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *dn, unsigned seed)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	size_t len = 5 * UT_MiB + 333, pg = ut_page(), n, used0;
	uint8_t *raw, *buf;
	long anon0, anon1, pres;
	int id = ut_dev_id(dev), rc;
	char w[160];

	diag("---- %s (device id %d) ----", dn, id);
	ok(ut_info(dev).kind == UHMM_MEM_PRIVATE, "%s: uhmm_dev_info says PRIVATE", dn);
	used0 = ut_dev_used(dev);
	raw = malloc(len + 64);
	if (!raw)
		tap_bail("malloc");
	buf = raw + 7;
	n = ut_npages(buf, len);
	ut_fill8(buf, len, seed);

	/* ---- to the device ---- */
	s0 = ut_stats(h);
	anon0 = ut_rss_anon_kb();
	rc = uhmm_migrate_ex(h, buf, len, dev, 0, &res);
	s1 = ut_stats(h);
	is_int(rc, 0, "%s: uhmm_migrate_ex of malloc(5 MiB + 333) + 7 to the device", dn);
	if (rc)
		diag("%s", ut_err(rc));
	is_int(res.moved, n, "%s: res.moved = the %zu pages overlapping the buffer", dn, n);
	is_int(res.already, 0, "%s: res.already 0", dn);
	snprintf(w, sizeof(w), "%s: on the device", dn);
	ut_check_where(h, buf, len, id, w);
	pres = ut_present(buf, len);
	if (pres < 0)
		skip("/proc/self/pagemap unreadable here");
	else
		is_int(pres, 0, "%s: no page of the buffer is left in the page tables (pagemap)", dn);
	is_int(ut_dev_used(dev), used0 + n * pg, "%s: device used grew by %zu pages", dn, n);
	is_int(s1.pages_to_dev - s0.pages_to_dev, n, "%s: stats pages_to_dev grew by %zu", dn, n);
	is_int(s1.bytes_copied - s0.bytes_copied, n * pg,
	       "%s: stats bytes_copied grew by the %zu pages", dn, n);
	if (anon0 < 0) {
		skip("no RssAnon in /proc/self/status");
	} else if (UT_TSAN) {
		skip("%s: RssAnon drop: TSan's shadow of the library's copies grows RssAnon", dn);
	} else {
		long want = (long)(n * pg / 1024) / 2;
		anon1 = anon_after_drop(anon0, want);
		ok(anon0 - anon1 >= want,
		   "%s: RssAnon dropped by at least half the buffer (%ld -> %ld kB, buffer %zu kB)",
		   dn, anon0, anon1, n * pg / 1024);
	}

	/* ---- the CPU reads it back ---- */
	s0 = ut_stats(h);
	snprintf(w, sizeof(w), "%s: CPU reads of every byte on the device", dn);
	ut_ok8(buf, len, seed, w);
	s1 = ut_stats(h);
	snprintf(w, sizeof(w), "%s: after the CPU read everything", dn);
	ut_check_where(h, buf, len, UHMM_LOC_SYSTEM, w);
	pres = ut_present(buf, len);
	if (pres >= 0)
		is_int(pres, n, "%s: every page present again (pagemap)", dn);
	ok(s1.cpu_faults > s0.cpu_faults, "%s: stats cpu_faults grew (%" PRIu64 " -> %" PRIu64 ")",
	   dn, s0.cpu_faults, s1.cpu_faults);
	is_int(ut_dev_used(dev), used0, "%s: device used back to its earlier value", dn);
	is_int(s1.poisoned - s0.poisoned, 0, "%s: nothing poisoned", dn);

	/* ---- the CPU writes to pages on the device ---- */
	rc = uhmm_migrate(h, buf, len, dev, 0);
	is_int(rc, 0, "%s: to the device again", dn);
	ut_check_where(h, buf, len, id, w);
	ut_fill8(buf, len, seed + 1);	/* every page written while on the device */
	snprintf(w, sizeof(w), "%s: written by the CPU while on the device", dn);
	ut_ok8(buf, len, seed + 1, w);
	ut_check_where(h, buf, len, UHMM_LOC_SYSTEM, w);
	/* Written, to the device, back by migration (no fault): the writes were kept. */
	rc = uhmm_migrate(h, buf, len, dev, 0);
	is_int(rc, 0, "%s: the written buffer to the device", dn);
	rc = uhmm_migrate(h, buf, len, NULL, 0);
	is_int(rc, 0, "%s: and back by uhmm_migrate", dn);
	snprintf(w, sizeof(w), "%s: the CPU's writes after a round trip", dn);
	ut_ok8(buf, len, seed + 1, w);
	/* Sparse writes: one byte in every third page, the rest read later. */
	rc = uhmm_migrate(h, buf, len, dev, 0);
	is_int(rc, 0, "%s: to the device once more", dn);
	for (size_t i = 0; i < len; i += 3 * pg + 1)
		buf[i] = (uint8_t)~ut_pat8(seed + 1, i);
	{
		size_t bad = 0, first = SIZE_MAX;
		for (size_t i = 0; i < len; i++) {
			uint8_t want = ut_pat8(seed + 1, i);
			if (i % (3 * pg + 1) == 0)
				want = (uint8_t)~want;
			if (buf[i] != want && !bad++)
				first = i;
		}
		is_int(bad, 0, "%s: sparse CPU writes on the device, every byte checked", dn);
		if (bad)
			diag("first bad byte at %zu", first);
		ut_fill8(buf, len, seed + 1);
	}

	/* ---- a second thread reads it ---- */
	rc = uhmm_migrate(h, buf, len, dev, 0);
	is_int(rc, 0, "%s: to the device for the second thread", dn);
	{
		struct rd r = { .p = buf, .len = len, .seed = seed + 1, .bad = 0 };
		pthread_t th;

		if (pthread_create(&th, NULL, reader, &r))
			tap_bail("pthread_create");
		pthread_join(th, NULL);
		if (!ok(r.bad == SIZE_MAX, "%s: another thread reads every byte right", dn))
			diag("first bad byte at %zu: 0x%02x, want 0x%02x", r.bad, buf[r.bad],
			     ut_pat8(seed + 1, r.bad));
		snprintf(w, sizeof(w), "%s: after the other thread's reads", dn);
		ut_check_where(h, buf, len, UHMM_LOC_SYSTEM, w);
	}

	/* ---- free() while it lives on the device ---- */
	rc = uhmm_migrate(h, buf, len, dev, 0);
	is_int(rc, 0, "%s: to the device before free()", dn);
	free(raw);	/* glibc reads its header (a fault), then munmaps the chunk */
	if (UT_ASAN)
		skip("%s: free() and device used: ASan keeps freed blocks mapped (quarantine)", dn);
	else
		is_int(ut_dev_used(dev), used0, "%s: free() of the buffer: device used back to %zu",
		       dn, used0);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *sim;
	struct tdrv td;

	ut_init(180);
	tdrv_app_thread();
	/* A fixed threshold: every 5 MiB block gets a chunk of its own (glibc
	 * would otherwise raise the threshold after the first free() and put
	 * the second block on the heap, among other allocations). */
	mallopt(M_MMAP_THRESHOLD, 1 << 20);
	/* No reuse pool, so that the RSS shows the pages leaving. */
	h = ut_open_priv(0, 0, SIZE_MAX);
	sim = ut_psim(h, "psim", 64 * UT_MiB);
	tdrv_add(h, &td, "tdrv", 64 * UT_MiB, 1);

	run(h, sim, "sim PRIVATE", 11);
	run(h, td.dev, "test driver", 21);

	ok(tdrv_ld(&td.to_calls) > 0 && tdrv_ld(&td.from_calls) > 0,
	   "test driver: copy_to_dev (%lu calls) and copy_from_dev (%lu calls) were used",
	   tdrv_ld(&td.to_calls), tdrv_ld(&td.from_calls));
	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);
	return tap_done();
}
