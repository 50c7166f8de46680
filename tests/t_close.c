/* SPDX-License-Identifier: MIT */
/*
 * uhmm_close with pages on devices brings every page back first: the
 * memory is ordinary anonymous memory afterwards (maps lines without a
 * path, same protection), readable and writable, bit-exact; another
 * context can then manage it (nothing is left registered).
 */
#define _GNU_SOURCE
#include "util.h"

static void write_one(void *arg)
{
	*(volatile uint8_t *)arg = 1;
}

int main(void)
{
	struct uhmm *h, *h2;
	struct uhmm_dev *a, *b;
	size_t len = 16 * UT_MiB, rl = 3 * UT_MiB + 5;
	uint8_t *p, *q, *ro, *raw;
	int rc;

	ut_init(120);
	h = ut_open();
	a = ut_sim(h, "A", 64 * UT_MiB);
	b = ut_sim(h, "B", 64 * UT_MiB);

	p = ut_map(len);
	q = ut_map(len);
	ro = ut_map(len);
	raw = malloc(rl + 16);
	if (!raw)
		tap_bail("malloc");
	ut_fill64(p, len, 91);
	ut_fill64(ro, len, 92);
	mprotect(ro, len, PROT_READ);
	ut_fill8(raw + 3, rl, 93);

	is_int(uhmm_migrate(h, p, len, a, 0), 0, "populated range to A");
	is_int(uhmm_migrate(h, q, len, a, 0), 0, "untouched range to A");
	is_int(uhmm_migrate(h, ro, len, b, 0), 0, "read-only range to B");
	is_int(uhmm_migrate(h, raw + 3, rl, b, 0), 0, "malloc'd buffer to B");
	ut_fill64(q, len / 4, 94);	/* part of q written on the device */
	/* part of p back in system memory: the context manages mixed ranges */
	is_int(uhmm_migrate(h, p, len / 4, NULL, 0), 0, "a quarter of the populated range back");

	uhmm_close(h);
	ok(1, "uhmm_close returned");

	ut_ok64(p, len, 91, "populated range after close");
	ut_ok64(q, len / 4, 94, "written part of the untouched range after close");
	ut_okzero(q + len / 4, len - len / 4, "unwritten part of the untouched range after close");
	ut_ok64(ro, len, 92, "read-only range after close");
	ut_ok8(raw + 3, rl, 93, "malloc'd buffer after close");
	{
		struct ut_maps_acc m;
		m = ut_maps_summary(p, len);
		ok(m.with_path == 0 && m.lines > 0, "populated range: anonymous mappings (%ld lines)", m.lines);
		if (m.with_path)
			diag("still mapped: %s", m.first_path);
		m = ut_maps_summary(q, len);
		ok(m.with_path == 0, "untouched range: anonymous mappings");
		if (m.with_path)
			diag("still mapped: %s", m.first_path);
		m = ut_maps_summary(ro, len);
		ok(m.with_path == 0, "read-only range: anonymous mappings");
		ok(m.with_w == 0, "read-only range: still without 'w'");
		m = ut_maps_summary(raw + 3, rl);
		ok(m.with_path == 0, "malloc'd buffer: anonymous mappings");
	}
	is_int(ut_child(write_one, ro + 4096), SIGSEGV, "read-only range: a write in a child dies with SIGSEGV");

	/* Ordinary read-write memory. */
	ut_fill64(p, len, 95);
	ut_fill64(q, len, 96);
	ut_fill8(raw + 3, rl, 97);
	ut_ok64(p, len, 95, "populated range rewritten");
	ut_ok64(q, len, 96, "untouched range rewritten");
	ut_ok8(raw + 3, rl, 97, "malloc'd buffer rewritten");
	ok(mprotect(ro, len, PROT_READ | PROT_WRITE) == 0, "mprotect of the read-only range");
	ut_fill64(ro, len, 98);
	ut_ok64(ro, len, 98, "read-only range made writable and rewritten");
	ok(madvise(q, len, MADV_DONTNEED) == 0, "MADV_DONTNEED on a formerly managed range");
	ut_okzero(q, len, "reads zeros after MADV_DONTNEED");

	/* Nothing left registered: a new context manages the same memory. */
	h2 = ut_open();
	a = ut_sim(h2, "A2", 64 * UT_MiB);
	rc = uhmm_migrate(h2, p, len, a, 0);
	is_int(rc, 0, "a new context migrates the formerly managed memory");
	if (rc)
		diag("%s", ut_err(rc));
	ut_ok64(p, len, 95, "with its data");
	uhmm_close(h2);
	ut_ok64(p, len, 95, "after the second close");
	ok(ut_maps_summary(p, len).with_path == 0, "anonymous again after the second close");

	uhmm_close(NULL);
	ok(1, "uhmm_close(NULL) does nothing");

	free(raw);
	munmap(p, len);
	munmap(q, len);
	munmap(ro, len);
	return tap_done();
}
