/* SPDX-License-Identifier: MIT */
/*
 * uhmm_prefetch + uhmm_wait (asynchronous migration):
 *  - several tickets in flight at once (four ranges to a PRIVATE device),
 *    waited for in another order than issued: each wait returns 0, every
 *    page is on the device, the data intact; the same back to system
 *    memory (to = NULL);
 *  - uhmm_prefetch does not wait for the copy: with the test driver's
 *    copy_to_dev held at a gate, prefetch returns, uhmm_wait(ticket, 0)
 *    and uhmm_wait(ticket, 50) give -ETIMEDOUT (the latter not before
 *    about 50 ms), and once the gate opens uhmm_wait gives 0 and the pages
 *    are on the device;
 *  - polling with timeout 0 only ever gives 0 or -ETIMEDOUT, and ends;
 *    a negative timeout waits without limit; waiting again for a finished
 *    ticket gives its result again;
 *  - a failing copy_to_dev: uhmm_wait gives the migration's error, -EIO,
 *    and nothing moved;
 *  - bad input: a ticket never issued, a NULL context: -EINVAL; bad
 *    arguments to uhmm_prefetch (len 0, unknown flags): -EINVAL.
 */
#define _GNU_SOURCE
#include "private.h"

#define NR 4

static struct uhmm *h;

/* Wait with a long timeout: the test's watchdog catches a hang. */
static int wait_long(uint64_t t)
{
	return uhmm_wait(h, t, 120 * 1000);
}

int main(void)
{
	struct uhmm_dev *dev;
	struct tdrv td;
	size_t len = 4 * UT_MiB + 3 * 4096;
	uint8_t *r[NR];
	uint64_t tk[NR];
	int id, rc;

	ut_init(240);
	tdrv_app_thread();
	h = ut_open();
	dev = ut_psim(h, "psim", 64 * UT_MiB);
	id = ut_dev_id(dev);
	tdrv_add(h, &td, "tdrv", 32 * UT_MiB, 1);

	/* ---- several in flight ---- */
	for (int i = 0; i < NR; i++) {
		r[i] = ut_map(len);
		ut_fill64(r[i], len, 140 + (unsigned)i);
	}
	for (int i = 0; i < NR; i++) {
		tk[i] = 0;
		rc = uhmm_prefetch(h, r[i], len, dev, 0, &tk[i]);
		is_int(rc, 0, "prefetch of range %d to the device", i);
	}
	{
		int distinct = 1;
		for (int i = 0; i < NR; i++)
			for (int j = 0; j < i; j++)
				distinct &= tk[i] != tk[j];
		ok(distinct, "four distinct tickets");
	}
	for (int i = NR - 1; i >= 0; i--) {
		rc = wait_long(tk[i]);
		is_int(rc, 0, "uhmm_wait of range %d's ticket returns 0", i);
	}
	for (int i = 0; i < NR; i++) {
		char w[64];
		snprintf(w, sizeof(w), "range %d after its wait", i);
		ut_check_where(h, r[i], len, id, w);
	}
	is_int(ut_dev_used(dev), NR * len, "device used = the four ranges");
	for (int i = 0; i < NR; i++) {
		char w[64];
		snprintf(w, sizeof(w), "range %d on the device, read back", i);
		ut_ok64(r[i], len, 140 + (unsigned)i, w);
	}

	/* Back to system memory by prefetch, polled with timeout 0. */
	for (int i = 0; i < NR; i++) {
		rc = uhmm_migrate(h, r[i], len, dev, 0);
		is_int(rc, 0, "range %d to the device again", i);
	}
	for (int i = 0; i < NR; i++) {
		rc = uhmm_prefetch(h, r[i], len, NULL, 0, &tk[i]);
		is_int(rc, 0, "prefetch of range %d to system memory", i);
	}
	for (int i = 0; i < NR; i++) {
		unsigned long polls = 0, odd = 0;
		do {
			rc = uhmm_wait(h, tk[i], 0);
			polls++;
			if (rc != 0 && rc != -ETIMEDOUT && !odd++)
				diag("uhmm_wait(ticket, 0): %d (%s)", rc, ut_err(rc));
			if (rc == -ETIMEDOUT)
				usleep(100);
		} while (rc == -ETIMEDOUT);
		is_int(rc, 0, "range %d: polling uhmm_wait(ticket, 0) ends with 0 (%lu polls)", i, polls);
		ut_check_where(h, r[i], len, UHMM_LOC_SYSTEM, "after the prefetch to system memory");
		ut_ok64(r[i], len, 140 + (unsigned)i, "after the prefetch to system memory");
	}

	/* ---- prefetch does not wait for the copy; timeouts ---- */
	{
		uint64_t t = 0;
		double t0, el;
		int arrived;

		tdrv_gate_close(&td);
		t0 = ut_now();
		rc = uhmm_prefetch(h, r[0], len, td.dev, 0, &t);
		el = ut_now() - t0;
		is_int(rc, 0, "prefetch to the test driver, its copy_to_dev held at a gate");
		arrived = tdrv_gate_wait_arrival(&td, UT_SANITIZED ? 60 : 20);
		ok(arrived, "a copy_to_dev reached the gate");
		ok(tdrv_gate_timeouts(&td) == 0, "uhmm_prefetch returned while the copy was held (%.3f s)", el);
		rc = uhmm_wait(h, t, 0);
		is_int(rc, -ETIMEDOUT, "uhmm_wait(ticket, 0) while the copy is held: -ETIMEDOUT");
		t0 = ut_now();
		rc = uhmm_wait(h, t, 50);
		el = ut_now() - t0;
		is_int(rc, -ETIMEDOUT, "uhmm_wait(ticket, 50) while the copy is held: -ETIMEDOUT");
		ok(el >= 0.045, "uhmm_wait(ticket, 50) returned after %.1f ms, not before its timeout",
		   el * 1e3);
		tdrv_gate_open(&td);
		rc = wait_long(t);
		is_int(rc, 0, "gate open: uhmm_wait returns 0");
		ut_check_where(h, r[0], len, ut_dev_id(td.dev), "prefetched to the test driver");
		ut_ok64(r[0], len, 140, "prefetched to the test driver, read back");
	}

	/* ---- the migration's error ---- */
	{
		uint64_t t = 0;

		tdrv_fail_to(&td, 0);
		rc = uhmm_prefetch(h, r[1], len, td.dev, 0, &t);
		is_int(rc, 0, "prefetch with copy_to_dev failing: accepted (the copy comes later)");
		rc = wait_long(t);
		is_int(rc, -EIO, "uhmm_wait gives the migration's error, -EIO");
		rc = uhmm_wait(h, t, 0);
		is_int(rc, -EIO, "waiting again gives the same error");
		tdrv_fail_to(&td, -1);
		ut_check_unmoved(h, r[1], len, "after the failed prefetch");
		ut_ok64(r[1], len, 141, "after the failed prefetch");
	}

	/* ---- bad input ---- */
	{
		uint64_t t = 0;

		rc = uhmm_prefetch(h, r[2], len, dev, 0, &t);
		is_int(rc, 0, "one more prefetch");
		is_int(uhmm_wait(h, t, -1), 0, "and its wait with timeout -1 (no limit)");
		is_int(uhmm_wait(h, t, 0), 0, "waiting again for a finished ticket gives its result again");
		is_int(uhmm_wait(h, t + 1000003, 0), -EINVAL, "uhmm_wait of a ticket never issued: -EINVAL");
		is_int(uhmm_wait(h, UINT64_MAX, 0), -EINVAL, "uhmm_wait(UINT64_MAX): -EINVAL");
		is_int(uhmm_wait(NULL, t, 0), -EINVAL, "uhmm_wait(NULL context): -EINVAL");
		is_int(uhmm_prefetch(NULL, r[2], len, dev, 0, &t), -EINVAL, "uhmm_prefetch(NULL context): -EINVAL");
		is_int(uhmm_prefetch(h, r[2], 0, dev, 0, &t), -EINVAL, "uhmm_prefetch of len 0: -EINVAL");
		is_int(uhmm_prefetch(h, r[2], len, dev, 0x80000000u, &t), -EINVAL,
		       "uhmm_prefetch with an unknown flag: -EINVAL");
		is_int(uhmm_migrate(h, r[2], len, NULL, 0), 0, "range back");
		ut_ok64(r[2], len, 142, "after the bad calls");
	}

	for (int i = 0; i < NR; i++)
		munmap(r[i], len);
	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 1);
	tdrv_free(&td);
	return tap_done();
}
