/* SPDX-License-Identifier: MIT */
/*
 * uhmm_dev_stats is each device's share of uhmm_stats: what moved onto or
 * off it, the CPU faults its pages took, its evictions and device faults;
 * another device's counters do not move; the shares add up to the
 * context's counters where every event has a device.
 */
#define _GNU_SOURCE
#include "private.h"

static struct uhmm_stats dstats(struct uhmm_dev *d)
{
	struct uhmm_stats st = { .sz = sizeof(st) };
	int rc = uhmm_dev_stats(d, &st);

	if (rc)
		tap_bail("uhmm_dev_stats: %d", rc);
	return st;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *a, *b;
	struct uhmm_stats sa, sb, s;
	size_t pg, len;
	volatile char *p;
	char buf[64];

	ut_init(60);
	pg = ut_page();
	len = 64 * pg;
	h = ut_open_priv(4 * ut_page(), 1, 0);
	a = ut_psim(h, "a", 4 * UT_MiB);
	b = ut_psim(h, "b", 8 * UT_MiB);
	p = ut_map(len);
	memset((char *)p, 1, len);

	if (uhmm_migrate(h, (char *)p, len, a, 0))
		tap_bail("migrate");
	sa = dstats(a);
	sb = dstats(b);
	is_int(sa.pages_to_dev, 64, "a's pages_to_dev: the 64 pages migrated there");
	is_int(sb.pages_to_dev, 0, "b's counters do not move");
	ok(sa.bytes_copied >= len, "a's bytes_copied: at least the bytes moved");

	/* one fault brings fault_around (4 pages) home */
	if (p[0] != 1)
		tap_bail("bad data");
	sa = dstats(a);
	s = ut_stats(h);
	is_int(sa.cpu_faults, 1, "a CPU fault on a's page counts in a's cpu_faults");
	is_int(s.cpu_faults, 1, "... and once in the context's");
	ok(sa.pages_to_sys >= 1 && sa.pages_to_sys == s.pages_to_sys,
	   "a's pages_to_sys: the fault's window (%llu "
	   "pages)", (unsigned long long)sa.pages_to_sys);

	/* a full device evicts: 6 MiB then 4 MiB onto the 8 MiB device b */
	{
		size_t xl = 6 * UT_MiB, yl = 4 * UT_MiB;
		char *x = ut_map_aligned(xl, 2 * UT_MiB), *y = ut_map_aligned(yl, 2 * UT_MiB);
		int rc;

		memset(x, 2, xl);
		memset(y, 3, yl);
		rc = uhmm_migrate(h, x, xl, b, 0);
		if (!rc)
			rc = uhmm_migrate(h, y, yl, b, 0);
		if (rc)
			tap_bail("migrate to b: %d (%s)", rc, ut_err(rc));
		sb = dstats(b);
		ok(sb.evictions >= 512 && sb.evictions == ut_stats(h).evictions,
		   "b's evictions: the pages it sent home to make room (%llu)",
		   (unsigned long long)sb.evictions);
		is_int(dstats(a).evictions, 0, "a evicted nothing");
		if (uhmm_sim_read(b, y, buf, sizeof(buf)) < 0)
			tap_bail("sim_read");
		ok(dstats(b).dev_faults >= 1 && dstats(a).dev_faults == 0,
		   "b's DMA engine's fault rounds count in b's dev_faults only");
		munmap(x, xl);
		munmap(y, yl);
	}
	s = ut_stats(h);
	sa = dstats(a);
	sb = dstats(b);
	is_int(sa.pages_to_dev + sb.pages_to_dev, s.pages_to_dev,
	       "pages_to_dev: the devices' shares add up to the context's");
	is_int(sa.pages_to_sys + sb.pages_to_sys, s.pages_to_sys, "pages_to_sys: likewise");
	is_int(sa.cpu_faults + sb.cpu_faults, s.cpu_faults, "cpu_faults: likewise");
	is_int(sa.evictions + sb.evictions, s.evictions, "evictions: likewise");
	is_int(sa.dev_faults + sb.dev_faults, s.dev_faults, "dev_faults: likewise");
	uhmm_close(h);
	munmap((char *)p, len);
	return tap_done();
}
