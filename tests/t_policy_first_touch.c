/* SPDX-License-Identifier: MIT */
/*
 * PREFERRED_LOCATION and first touch: the seed scenario.  p = malloc(64
 * MiB), advise PREFERRED_LOCATION on a COHERENT device (the test's own
 * memfd, so that it sees the device's memory), the CPU writes the whole
 * buffer: every page malloc had not touched is on the device, system RSS
 * grew by at most 1 MiB, no byte was copied, and the device's memory holds
 * the bytes.  The same with a device write (uhmm_sim_write) as the first
 * touch, and with four threads touching at once.  On a PRIVATE preferred
 * device the CPU's first touch is populated in system memory, the device's
 * own first touch on the device.  Advice on pages populated before it
 * moves nothing.
 */
#define _GNU_SOURCE
#include "private.h"

#define SEED_LEN	(64 * UT_MiB)

static void seed_cpu(struct uhmm *h, const struct ut_memfd_dev *m)
{
	struct uhmm_stats s0, s1;
	long rss0, rss1;
	size_t before, pages;
	uint8_t *p = malloc(SEED_LEN);
	int rc;

	if (!p)
		tap_bail("malloc");
	pages = ut_npages(p, SEED_LEN);
	/* malloc wrote its header: those pages were populated before */
	before = ut_present(p, SEED_LEN);
	ok(before <= 2, "malloc(64 MiB) populated %zu page(s) itself", before);
	rc = uhmm_advise(h, p, SEED_LEN, UHMM_ADV_PREFERRED_LOCATION, m->dev);
	is_int(rc, 0, "advise PREFERRED_LOCATION on the COHERENT device");
	ut_check_unmoved(h, p, SEED_LEN, "advice alone");
	s0 = ut_stats(h);
	rss0 = ut_rss_anon_kb();
	ut_fill64(p, SEED_LEN, 7);		/* the CPU writes the whole buffer */
	rss1 = ut_rss_anon_kb();
	s1 = ut_stats(h);
	is_int(ut_where_count(h, p, SEED_LEN, m->id), pages - before,
	       "every page malloc had not touched is on the device");
	if (UT_SANITIZED)
		skip("RssAnon growth: a sanitizer's shadow of the writes grows it");
	else
		ok(rss1 - rss0 <= 1024, "system RSS grew by %ld KiB (at most 1 MiB)", rss1 - rss0);
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "no byte was copied");
	is_int(s1.pages_zero_filled - s0.pages_zero_filled, pages - before,
	       "pages_zero_filled counts the device pages made at first touch");
	ok(s1.cpu_faults - s0.cpu_faults <= (pages - before) / 16,
	   "one CPU fault per run of untouched pages, not per page (%llu for %zu pages)",
	   (unsigned long long)(s1.cpu_faults - s0.cpu_faults), pages - before);
	ut_ok64(p, SEED_LEN, 7, "the buffer reads what the CPU wrote");
	{
		size_t skip_head = before ? ut_page() * before - ((uintptr_t)p & (ut_page() - 1)) : 0;

		is_int(ut_not_in_device(h, m, p + skip_head, SEED_LEN - skip_head), 0,
		       "the device's own memory holds the bytes");
	}
	/* written again: no migration, no copy, no fault */
	s0 = ut_stats(h);
	ut_fill64(p, SEED_LEN, 8);
	s1 = ut_stats(h);
	is_int(s1.cpu_faults - s0.cpu_faults, 0, "later writes take no fault");
	is_int(s1.pages_to_sys - s0.pages_to_sys + s1.bytes_copied - s0.bytes_copied, 0,
	       "... and nothing migrates or is copied");
	free(p);
}

static void seed_device(struct uhmm *h, const struct ut_memfd_dev *m)
{
	size_t len = 8 * UT_MiB;
	uint8_t *p = ut_map(len), *buf = malloc(len);
	struct uhmm_stats s0, s1;
	int rc;

	ut_fill64(buf, len, 21);
	rc = uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, m->dev);
	is_int(rc, 0, "advise a fresh mapping");
	s0 = ut_stats(h);
	rc = uhmm_sim_write(m->dev, p, buf, len);
	ok(rc >= 0, "a device write is the first touch (%d rounds)", rc);
	s1 = ut_stats(h);
	ut_check_where(h, p, len, m->id, "written by the device first");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "no copy");
	ut_ok64(p, len, 21, "the CPU reads what the device wrote");
	is_int(ut_not_in_device(h, m, p, len), 0, "in the device's own memory");
	free(buf);
	munmap(p, len);
}

struct toucher {
	uint8_t *p;
	size_t len;
	unsigned seed;
};

static void *touch_thread(void *arg)
{
	struct toucher *t = arg;

	/* every other page first, then the rest: runs meet in the middle */
	for (size_t off = 0; off < t->len; off += 2 * ut_page())
		ut_fill64(t->p + off, ut_page(), t->seed + (unsigned)(off / ut_page()));
	for (size_t off = ut_page(); off < t->len; off += 2 * ut_page())
		ut_fill64(t->p + off, ut_page(), t->seed + (unsigned)(off / ut_page()));
	return NULL;
}

static void seed_threads(struct uhmm *h, const struct ut_memfd_dev *m)
{
	size_t len = 16 * UT_MiB, part = len / 4, bad = 0;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
	struct toucher t[4];
	pthread_t th[4];

	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, m->dev), 0,
	       "advise 16 MiB for four threads");
	for (int i = 0; i < 4; i++) {
		/* parts that share 2 MiB blocks: first touches race */
		t[i] = (struct toucher){ p + i * part, part, 100u * (unsigned)(i + 1) };
		pthread_create(&th[i], NULL, touch_thread, &t[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	for (int i = 0; i < 4; i++)
		for (size_t off = 0; off < part; off += ut_page())
			bad += ut_check64(t[i].p + off, ut_page(),
					  t[i].seed + (unsigned)(off / ut_page())) != SIZE_MAX;
	is_int(bad, 0, "four threads' first touches: every page holds its writer's bytes");
	ut_check_where(h, p, len, m->id, "four threads' first touches");
	is_int(ut_not_in_device(h, m, p, len), 0, "... in device memory");
	munmap(p, len);
}

static void seed_private(struct uhmm *h)
{
	struct uhmm_dev *pd = ut_psim(h, "private", 16 * UT_MiB);
	size_t len = 2 * UT_MiB;
	uint8_t *p = ut_map(len), *q = ut_map(len), *buf = malloc(len);
	int id = ut_dev_id(pd), rc;

	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, pd), 0,
	       "PRIVATE: advise");
	ut_fill64(p, len, 31);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM,
		       "PRIVATE: a CPU first touch is populated in system memory");
	ut_ok64(p, len, 31, "PRIVATE: its bytes");

	is_int(uhmm_advise(h, q, len, UHMM_ADV_PREFERRED_LOCATION, pd), 0,
	       "PRIVATE: advise another range");
	ut_fill64(buf, len, 32);
	rc = uhmm_sim_write(pd, q, buf, len);
	ok(rc >= 0, "PRIVATE: the device's own first touch (%d)", rc);
	ut_check_where(h, q, len, id, "PRIVATE: the device's first touch populates the device");
	ut_ok64(q, len, 32, "PRIVATE: the CPU reads it back (faults home)");
	free(buf);
	munmap(p, len);
	munmap(q, len);
	uhmm_dev_remove(pd);
}

/* Another device's first touch of a range preferring a COHERENT device:
 * it reaches coherent memory, so the pages are populated there. */
static void other_device(struct uhmm *h, const struct ut_memfd_dev *m)
{
	struct uhmm_dev *pd = ut_psim(h, "toucher", 16 * UT_MiB);
	size_t len = 2 * UT_MiB;
	uint8_t *p = ut_map(len), *buf = malloc(len);
	int rc;

	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, m->dev), 0,
	       "advise the COHERENT device");
	ut_fill64(buf, len, 51);
	rc = uhmm_sim_write(pd, p, buf, len);
	ok(rc >= 0, "a PRIVATE device's write is the first touch (%d)", rc);
	ut_check_where(h, p, len, m->id, "another device's first touch populates the COHERENT device");
	ut_ok64(p, len, 51, "its bytes");
	is_int(ut_not_in_device(h, m, p, len), 0, "... in the device's memory");
	free(buf);
	munmap(p, len);
	uhmm_dev_remove(pd);
}

static void populated_stay(struct uhmm *h, const struct ut_memfd_dev *m)
{
	size_t len = 4 * UT_MiB;
	uint8_t *p = ut_map(len);

	ut_fill64(p, len / 2, 41);	/* the first half populated */
	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, m->dev), 0,
	       "advise a half-populated range");
	ut_check_where(h, p, len / 2, UHMM_LOC_SYSTEM, "the populated half stays put");
	ut_fill64(p + len / 2, len / 2, 42);
	ut_check_where(h, p + len / 2, len / 2, m->id, "the other half lands on the device");
	ut_ok64(p, len / 2, 41, "the first half's bytes");
	ut_ok64(p + len / 2, len / 2, 42, "the second half's bytes");
	/* unset: later first touches go to system memory again */
	munmap(p, len);
	p = ut_map(len);
	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, m->dev), 0, "advise again");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_UNSET_PREFERRED_LOCATION, NULL), 0, "unset it");
	ut_fill64(p, len, 43);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "after UNSET the first touch is system memory");
	munmap(p, len);
}

int main(void)
{
	struct ut_memfd_dev m;
	struct uhmm *h;

	ut_init(300);
	h = ut_open();
	ut_require_coherent(h);
	m = ut_memfd_dev(h, "seed", 96 * UT_MiB);

	seed_cpu(h, &m);
	seed_device(h, &m);
	seed_threads(h, &m);
	populated_stay(h, &m);
	seed_private(h);
	other_device(h, &m);
	uhmm_close(h);
	return tap_done();
}
