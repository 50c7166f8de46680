/* SPDX-License-Identifier: MIT */
/*
 * A CPU fault's window on device-private memory may span two mappings
 * (two buffers side by side with different protections, both migrated):
 * the kernel fills one mapping per call, so the window goes in parts.
 * Every access completes with the right data (it once retried forever),
 * for a single fault thread and for several, and from several threads at
 * once.
 */
#define _GNU_SOURCE
#include "private.h"

#define NPG 16		/* the default fault_around, 64 KiB */

struct reader {
	const uint8_t *p;
	size_t len;
	size_t bad;
};

static void *read_all(void *arg)
{
	struct reader *r = arg;

	tdrv_app_thread();
	r->bad = ut_check8(r->p, r->len, 71);
	return NULL;
}

static void run(uint32_t fault_threads)
{
	struct uhmm *h = ut_open_priv(0, fault_threads, 0);
	struct uhmm_dev *d = ut_psim(h, "psim", 16 * UT_MiB);
	size_t pg = ut_page(), len = NPG * pg;
	uint8_t *p = ut_map_aligned(len, len);
	struct reader r[2] = { { p, len, 0 }, { p, len, 0 } };
	pthread_t t[2];
	int rc;

	ut_fill8(p, len, 71);
	/* two mappings: the second half read-only */
	mprotect(p + len / 2, len / 2, PROT_READ);
	rc = uhmm_migrate(h, p, len, d, 0);
	is_int(rc, 0, "%u fault thread(s): both mappings to the PRIVATE device", fault_threads);
	ut_check_where(h, p, len, ut_dev_id(d), "both halves on the device");
	/* the last page of the first mapping: its window covers the second */
	ok(p[len / 2 - 1] == ut_pat8(71, len / 2 - 1),
	   "%u fault thread(s): a read at the end of the first mapping", fault_threads);
	ut_ok8(p, len, 71, "both mappings read back");
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "%u: migrated again", fault_threads);
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, read_all, &r[i]);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	ok(r[0].bad == SIZE_MAX && r[1].bad == SIZE_MAX,
	   "%u fault thread(s): two threads reading across both at once: right", fault_threads);
	munmap(p, len);
	uhmm_close(h);
}

int main(void)
{
	ut_init(60);
	run(1);
	run(3);
	return tap_done();
}
