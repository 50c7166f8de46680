/* SPDX-License-Identifier: MIT */
/*
 * The sim device's modelled link (uhmm_sim_set_link): DMA-engine accesses
 * to system pages wait for it (a read of 4 MiB at 64 MB/s takes at least
 * the 65 ms the link needs; a lower bound, which noise cannot break),
 * migrations of a PRIVATE sim device go over it too, reads of the
 * device's own pages do not, the data is right either way, two threads
 * share one link, 0 turns it off, and a NULL device is -EINVAL.
 */
#define _GNU_SOURCE
#include "private.h"

#define LEN	(4 * UT_MiB)
#define RATE	(64ull * 1000 * 1000)

struct rd {
	struct uhmm_dev *d;
	const uint8_t *p;
	uint8_t *buf;
	int rc;
};

static void *read_thread(void *arg)
{
	struct rd *r = arg;

	r->rc = uhmm_sim_read(r->d, r->p, r->buf, LEN);
	return NULL;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d;
	uint8_t *p, *buf = malloc(2 * LEN);
	double need = (double)LEN / RATE, t;
	int rc;

	ut_init(120);
	h = ut_open();
	d = ut_psim(h, "linked", 16 * UT_MiB);
	p = ut_map(2 * LEN);
	ut_fill64(p, 2 * LEN, 3);

	is_int(uhmm_sim_set_link(NULL, RATE), -EINVAL, "uhmm_sim_set_link(NULL): -EINVAL");
	is_int(uhmm_sim_set_link(d, RATE), 0, "a 64 MB/s link");
	t = ut_now();
	rc = uhmm_sim_read(d, p, buf, LEN);
	t = ut_now() - t;
	ok(rc >= 0 && !memcmp(buf, p, LEN), "a device read of system pages over the link is right");
	ok(t >= need * 0.95, "... and took at least what the link needs (%.0f ms >= %.0f ms)",
	   t * 1e3, need * 1e3);

	/* two readers share the link: together at least twice as long */
	{
		struct rd r[2] = { { d, p, buf, 0 }, { d, p + LEN, buf + LEN, 0 } };
		pthread_t th[2];

		t = ut_now();
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, read_thread, &r[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		t = ut_now() - t;
		ok(r[0].rc >= 0 && r[1].rc >= 0 && !memcmp(buf, p, 2 * LEN),
		   "two threads reading over one link: right");
		ok(t >= 2 * need * 0.95, "... sharing it (%.0f ms >= %.0f ms)", t * 1e3, 2 * need * 1e3);
	}

	/* a migration of a PRIVATE sim device crosses the link */
	t = ut_now();
	rc = uhmm_migrate(h, p, LEN, d, 0);
	t = ut_now() - t;
	is_int(rc, 0, "migrate 4 MiB to the device");
	ok(t >= need * 0.95, "the migration waited for the link (%.0f ms)", t * 1e3);
	rc = uhmm_sim_read(d, p, buf, LEN);
	ok(rc >= 0 && ut_check64(buf, LEN, 3) == SIZE_MAX, "the device reads its own pages right");

	is_int(uhmm_sim_set_link(d, 0), 0, "link off");
	rc = uhmm_sim_read(d, p + LEN, buf, LEN);
	ok(rc >= 0 && !memcmp(buf, p + LEN, LEN), "reads without the link model are right");
	ut_ok64(p, 2 * LEN, 3, "the CPU's view of it all");
	free(buf);
	uhmm_close(h);
	return tap_done();
}
