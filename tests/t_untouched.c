/* SPDX-License-Identifier: MIT */
/*
 * An untouched anonymous range migrated to a COHERENT device gets zeroed
 * device pages without a copy and without populating system memory:
 * uhmm_where says NONE before, the device after; res.zero_filled ==
 * res.moved == pages; stats pages_zero_filled grows by the page count and
 * bytes_copied not at all; the process's anonymous RSS does not grow; the
 * memory reads as zeros and is writable.
 */
#define _GNU_SOURCE
#include "util.h"

int main(void)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_stats s0, s1;
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 64 * UT_MiB, n = len / ut_page();
	long anon0, anon1, rss0, rss1, slack_kb = 4096;
	uint8_t *p;
	int id, rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 128 * UT_MiB);
	id = ut_dev_id(dev);
	p = ut_map(len);

	ut_check_where(h, p, len, UHMM_LOC_NONE, "untouched, before migration");

	s0 = ut_stats(h);
	anon0 = ut_rss_anon_kb();
	rss0 = ut_rss_pages();
	rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);
	anon1 = ut_rss_anon_kb();
	rss1 = ut_rss_pages();
	s1 = ut_stats(h);
	is_int(rc, 0, "migrate the untouched %zu MiB to the device", len >> 20);
	is_int(res.moved, n, "res.moved = every page");
	is_int(res.zero_filled, res.moved, "res.zero_filled = res.moved");
	is_int(s1.pages_zero_filled - s0.pages_zero_filled, n,
	       "stats pages_zero_filled grew by the page count");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "stats bytes_copied unchanged");
	diag("RssAnon %ld -> %ld kB; statm resident %ld -> %ld pages (device pages mapped count there)",
	     anon0, anon1, rss0, rss1);
	if (anon0 < 0)
		skip("no RssAnon in /proc/self/status");
	else
		ok(anon1 - anon0 <= slack_kb,
		   "system memory not populated: RssAnon grew by %ld kB (<= %ld kB slack, range is %zu kB)",
		   anon1 - anon0, slack_kb, len >> 10);
	ut_check_where(h, p, len, id, "after migration");
	ut_okzero(p, len, "reads on the device");
	anon1 = ut_rss_anon_kb();
	if (UT_TSAN)
		skip("RssAnon after reading: TSan's shadow memory grows with every byte read");
	else if (anon0 >= 0)
		ok(anon1 - anon0 <= slack_kb,
		   "reading it populates no system memory either (RssAnon +%ld kB)", anon1 - anon0);

	/* Writable, and back to system memory with the data. */
	ut_fill64(p, len, 3);
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "migrate back");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "back");
	ut_ok64(p, len, 3, "written on the device, back in system memory");

	/* A half-touched range: only the touched pages are copied. */
	{
		uint8_t *q = ut_map(8 * UT_MiB);
		size_t qn = 8 * UT_MiB / ut_page(), touched = 0;
		/* A THP would populate the untouched neighbours too. */
		madvise(q, 8 * UT_MiB, MADV_NOHUGEPAGE);
		for (size_t i = 0; i < qn; i += 2) {
			q[i * ut_page()] = (uint8_t)(i | 1);
			touched++;
		}
		s0 = ut_stats(h);
		rc = uhmm_migrate_ex(h, q, 8 * UT_MiB, dev, 0, &res);
		s1 = ut_stats(h);
		is_int(rc, 0, "migrate a range with every other page touched");
		is_int(res.moved, qn, "res.moved = every page");
		is_int(res.zero_filled, qn - touched, "res.zero_filled = the untouched pages");
		is_int(s1.pages_zero_filled - s0.pages_zero_filled, qn - touched,
		       "stats pages_zero_filled grew by the untouched pages");
		{
			size_t bad = 0;
			for (size_t i = 0; i < qn; i++) {
				uint8_t want = (i % 2 == 0) ? (uint8_t)(i | 1) : 0;
				if (q[i * ut_page()] != want ||
				    ut_check_zero(q + i * ut_page() + 1, ut_page() - 1) != SIZE_MAX)
					bad++;
			}
			is_int(bad, 0, "every page holds its byte or zeros");
		}
		munmap(q, 8 * UT_MiB);
	}

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
