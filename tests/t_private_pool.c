/* SPDX-License-Identifier: MIT */
/*
 * pool_bytes bounds the system memory kept populated for reuse after
 * pages leave it for a PRIVATE device: after 64 MiB of populated memory
 * migrate to the device, the process's anonymous RSS drops by at least
 * 64 MiB - pool_bytes (minus a little slack for the library's own
 * bookkeeping), with pool_bytes = SIZE_MAX (none), 0 (the documented
 * default, 16 MiB) and 8 MiB.  Freeing may be left to a library thread,
 * so RssAnon is polled for a while.  The data comes back right through
 * the CPU fault path afterwards (pages taken from the pool).
 */
#define _GNU_SOURCE
#include "private.h"

static long wait_drop(long anon0, long want_kb, long *got)
{
	long a = ut_rss_anon_kb();

	for (int i = 0; i < 500 && a >= 0 && anon0 - a < want_kb; i++) {
		usleep(10000);
		a = ut_rss_anon_kb();
	}
	*got = a;
	return anon0 - a;
}

static void run(size_t pool, size_t pool_eff, const char *what)
{
	struct uhmm *h = ut_open_priv(0, 0, pool);
	struct uhmm_dev *dev = ut_psim(h, "psim", 128 * UT_MiB);
	size_t len = 64 * UT_MiB, slack = 4 * UT_MiB;
	long anon0, anon1, drop, want;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
	int rc;

	ut_fill64(p, len, 161);
	anon0 = ut_rss_anon_kb();
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: 64 MiB to the device", what);
	if (anon0 < 0 || UT_TSAN) {
		skip("%s: %s", what, anon0 < 0 ? "no RssAnon in /proc/self/status" :
		     "TSan's shadow of the library's copies grows RssAnon: not a measure of the pool");
	} else {
		want = (long)((len - pool_eff - slack) / 1024);
		drop = wait_drop(anon0, want, &anon1);
		ok(drop >= want, "%s: RssAnon dropped by %ld kB (>= 64 MiB - pool - 4 MiB slack = %ld kB; "
		   "%ld -> %ld kB)", what, drop, want, anon0, anon1);
	}
	ut_ok64(p, len, 161, what);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, what);
	uhmm_close(h);
	munmap(p, len);
}

int main(void)
{
	ut_init(120);
	run(SIZE_MAX, 0, "pool_bytes SIZE_MAX (none)");
	run(0, 16 * UT_MiB, "pool_bytes 0 (default 16 MiB)");
	run(8 * UT_MiB, 8 * UT_MiB, "pool_bytes 8 MiB");
	return tap_done();
}
