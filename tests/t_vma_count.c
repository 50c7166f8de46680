/* SPDX-License-Identifier: MIT */
/*
 * 1 GiB migrated in one call becomes at most 64 mappings
 * (/proc/self/maps lines within the range): max_map_count must never be
 * the limit.  Done for a 2 MiB-aligned range (partly touched: every 16th
 * page) and for a range at an odd page offset.
 */
#define _GNU_SOURCE
#include "util.h"

static void one(struct uhmm *h, struct uhmm_dev *dev, int id, size_t len, size_t skew,
		const char *what)
{
	uint8_t *raw = ut_map_aligned(len + 2 * UT_MiB, 2 * UT_MiB);
	uint8_t *p = raw + skew;
	long lines;
	size_t bad = 0;
	int rc;

	/* Only the range itself is mapped, so neighbours cannot merge in. */
	if (skew)
		munmap(raw, skew);
	munmap(p + len, 2 * UT_MiB - skew);
	madvise(p, len, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < len; i += 16 * ut_page())
		*(uint64_t *)(void *)(p + i) = i + 1;

	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate %zu MiB in one call", what, len >> 20);
	if (rc)
		diag("%s", ut_err(rc));
	lines = ut_maps_count(p, len);
	ok(lines >= 1 && lines <= 64, "%s: %ld mappings in the range (<= 64)", what, lines);
	is_int(ut_where_count(h, p, len, id), len / ut_page(), "%s: every page on the device", what);
	for (size_t i = 0; i < len; i += 16 * ut_page())
		bad += *(uint64_t *)(void *)(p + i) != i + 1;
	is_int(bad, 0, "%s: the touched pages' data", what);
	is_int(ut_check_zero(p + ut_page(), 15 * ut_page()), SIZE_MAX, "%s: an untouched stretch reads zeros", what);

	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "%s: back to system memory", what);
	diag("%s: %ld mappings after coming back", what, ut_maps_count(p, len));
	bad = 0;
	for (size_t i = 0; i < len; i += 16 * ut_page())
		bad += *(uint64_t *)(void *)(p + i) != i + 1;
	is_int(bad, 0, "%s: data back in system memory", what);
	munmap(p, len);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = UT_GiB;
	const char *s = getenv("UHMM_TEST_SCALE");

	ut_init(300);
	/* 1 GiB of device memory is populated at registration; keep the test
	 * under ~1.2 GiB.  UHMM_TEST_SCALE < 50 halves it. */
	if (s && atoi(s) > 0 && atoi(s) < 50) {
		len = UT_GiB / 2;
		diag("UHMM_TEST_SCALE=%s: 512 MiB instead of 1 GiB", s);
	}
	h = ut_open();
	dev = ut_sim(h, "sim", len + 4 * UT_MiB);
	one(h, dev, ut_dev_id(dev), len, 0, "2 MiB-aligned range");
	one(h, dev, ut_dev_id(dev), len, 5 * ut_page(), "range at a 5-page offset");
	uhmm_close(h);
	return tap_done();
}
