/* SPDX-License-Identifier: MIT */
/*
 * uhmm_close with pages on PRIVATE devices brings every page back first:
 * afterwards the memory is ordinary anonymous memory, bit-exact, with the
 * same protection (a read-only range stays read-only), pages partly
 * faulted back and never-populated pages included, with fault_threads 4;
 * a second context can then manage and migrate the same memory (nothing
 * left registered).  The test driver's release runs once, after its last
 * op.
 */
#define _GNU_SOURCE
#include "private.h"

static void write_one(void *arg)
{
	*(volatile uint8_t *)arg = 1;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *a;
	struct tdrv td;
	size_t len = 8 * UT_MiB, rl = 2 * UT_MiB + 3, pg;
	uint8_t *p, *q, *ro, *part, *t, *raw;
	int rc;

	ut_init(120);
	tdrv_app_thread();
	pg = ut_page();
	h = ut_open_priv(0, 4, 0);
	a = ut_psim(h, "psim", 64 * UT_MiB);
	tdrv_add(h, &td, "tdrv", 32 * UT_MiB, 1);

	p = ut_map(len);
	q = ut_map(len);
	ro = ut_map(len);
	part = ut_map(len);
	t = ut_map(len);
	raw = malloc(rl + 16);
	if (!raw)
		tap_bail("malloc");
	ut_fill64(p, len, 121);
	ut_fill64(ro, len, 122);
	ut_fill64(part, len, 123);
	ut_fill64(t, len, 124);
	ut_fill8(raw + 1, rl, 125);
	mprotect(ro, len, PROT_READ);

	is_int(uhmm_migrate(h, p, len, a, 0), 0, "populated range to the sim device");
	is_int(uhmm_migrate(h, q, len, a, 0), 0, "untouched range to the sim device");
	is_int(uhmm_migrate(h, ro, len, a, 0), 0, "read-only range to the sim device");
	is_int(uhmm_migrate(h, part, len, a, 0), 0, "a range to be partly faulted back");
	is_int(uhmm_migrate(h, t, len, td.dev, 0), 0, "a range to the test driver");
	is_int(uhmm_migrate(h, raw + 1, rl, td.dev, 0), 0, "malloc'd buffer to the test driver");
	ut_fill64(q, len / 4, 126);	/* a quarter of the untouched range written on the device */
	ut_ok64(part, len / 3, 123, "a third of the partial range read back");

	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);

	ut_ok64(p, len, 121, "populated range after close");
	ut_ok64(q, len / 4, 126, "written quarter of the untouched range after close");
	ut_okzero(q + len / 4, len - len / 4, "rest of the untouched range after close");
	ut_ok64(ro, len, 122, "read-only range after close");
	ut_ok64(part, len, 123, "partly faulted range after close");
	ut_ok64(t, len, 124, "the test driver's range after close");
	ut_ok8(raw + 1, rl, 125, "malloc'd buffer after close");
	{
		long pres = ut_present(p, len);
		if (pres >= 0)
			is_int(pres, len / pg, "populated range: every page present after close");
		ok(ut_maps_summary(ro, len).with_w == 0, "read-only range: still without 'w'");
		ok(ut_maps_summary(p, len).with_path == 0, "populated range: anonymous mappings");
	}
	is_int(ut_child(write_one, ro + pg), SIGSEGV, "read-only range: a write in a child dies with SIGSEGV");

	/* Ordinary memory now, which another context can manage. */
	ut_fill64(p, len, 127);
	ut_ok64(p, len, 127, "rewritten after close");
	h = ut_open();
	a = ut_psim(h, "psim2", 32 * UT_MiB);
	rc = uhmm_migrate(h, p, len, a, 0);
	is_int(rc, 0, "a new context migrates the same memory to its PRIVATE device");
	ut_check_where(h, p, len, ut_dev_id(a), "in the new context");
	ut_ok64(p, len, 127, "read back through the new context");
	rc = uhmm_migrate(h, t, len, a, 0);
	is_int(rc, 0, "and the test driver's old range too");
	uhmm_close(h);
	ut_ok64(t, len, 124, "that range after the second close");

	free(raw);
	munmap(p, len);
	munmap(q, len);
	munmap(ro, len);
	munmap(part, len);
	munmap(t, len);
	return tap_done();
}
