/* SPDX-License-Identifier: MIT */
/*
 * Mirror invalidations, for a COHERENT and a PRIVATE sim device: MIGRATE
 * with the right range before uhmm_migrate returns (invalidate2, with the
 * initiator; the plain invalidate too), UNMAP after munmap and REMOVE
 * after MADV_DONTNEED and MADV_FREE by the next uhmm call, RELEASE at uhmm_dev_remove
 * and -ENODEV afterwards; the calling-context rules: uhmm_dev_info and
 * uhmm_stats from a callback, a callback taking the driver lock while
 * another thread runs the driver's range_fault loop, read_begin/read_retry
 * against a thread migrating in a loop, uhmm_mirror_close waiting for a
 * running callback.
 */
#define _GNU_SOURCE
#include "private.h"

#define MAXEV 256

struct rec {
	pthread_mutex_t mu;		/* the "driver lock" */
	struct uhmm_inval ev[MAXEV];
	int n, legacy;
	int info_ok, stats_ok;
	struct uhmm_dev *dev;
	int slow_ms;
	volatile int in_cb, cb_done;
};

static void rec_add(struct rec *r, uintptr_t s, uintptr_t e, enum uhmm_event ev, int ini)
{
	if (r->n < MAXEV)
		r->ev[r->n++] = (struct uhmm_inval){ sizeof(struct uhmm_inval), s, e, ev, ini };
}

static void cb2(struct uhmm_mirror *m, const struct uhmm_inval *inv)
{
	struct rec *r = uhmm_mirror_priv(m);
	struct uhmm_dev_info in = { .sz = sizeof(in) };
	int slow;

	pthread_mutex_lock(&r->mu);
	rec_add(r, inv->start, inv->end, inv->ev, inv->initiator);
	if (inv->ev != UHMM_EV_RELEASE && r->dev && uhmm_dev_info(r->dev, &in) == 0 && in.id > 0)
		r->info_ok++;
	slow = r->slow_ms;
	pthread_mutex_unlock(&r->mu);
	if (slow) {
		__atomic_store_n(&r->in_cb, 1, __ATOMIC_SEQ_CST);
		usleep(slow * 1000);
		__atomic_store_n(&r->cb_done, 1, __ATOMIC_SEQ_CST);
	}
}

static void cb1(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	struct rec *r = uhmm_mirror_priv(m);

	pthread_mutex_lock(&r->mu);
	rec_add(r, s, e, ev, -1);
	r->legacy++;
	pthread_mutex_unlock(&r->mu);
}

/* Some event ev covering [s, e)? */
static int saw(struct rec *r, enum uhmm_event ev, uintptr_t s, uintptr_t e)
{
	int found = 0;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n; i++)
		if (r->ev[i].ev == ev && r->ev[i].start <= s && r->ev[i].end >= e)
			found = 1;
	pthread_mutex_unlock(&r->mu);
	return found;
}

static void rec_init(struct rec *r, struct uhmm_dev *dev)
{
	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	r->dev = dev;
}

static void clear(struct rec *r)
{
	pthread_mutex_lock(&r->mu);
	r->n = 0;
	pthread_mutex_unlock(&r->mu);
}

struct churn {
	struct uhmm *h;
	struct uhmm_dev *dev;
	uint8_t *p;
	size_t len;
	volatile int stop;
	int iters, errs;
};

static void *churn_thread(void *arg)
{
	struct churn *c = arg;

	tdrv_app_thread();
	while (!__atomic_load_n(&c->stop, __ATOMIC_SEQ_CST)) {
		if (uhmm_migrate(c->h, c->p, c->len, c->dev, 0) ||
		    uhmm_migrate(c->h, c->p, c->len, NULL, 0))
			c->errs++;
		__atomic_add_fetch(&c->iters, 1, __ATOMIC_SEQ_CST);
	}
	return NULL;
}

struct closer {
	struct uhmm *h;
	uint8_t *p;
	size_t len;
	struct uhmm_dev *dev;
};

static void *migrate_once(void *arg)
{
	struct closer *c = arg;

	uhmm_migrate(c->h, c->p, c->len, c->dev, 0);
	return NULL;
}

static void run(struct uhmm *h, struct uhmm_dev *dev, struct uhmm_dev *other, const char *kind)
{
	struct uhmm_mirror_ops o2 = { .sz = sizeof(o2), .invalidate2 = cb2 };
	struct uhmm_mirror_ops o1 = { .sz = sizeof(o1), .invalidate = cb1 };
	size_t pg = ut_page(), len = 32 * pg;
	struct uhmm_pte *pt = calloc(512, sizeof(*pt));
	struct uhmm_mirror *m, *m1;
	struct uhmm_stats st0, st1;
	struct rec r, r1;
	uint8_t *p = ut_map(len);
	int rc, id = ut_dev_id(dev);
	uintptr_t a = (uintptr_t)p;

	rec_init(&r, dev);
	rec_init(&r1, NULL);
	if (uhmm_mirror_open(dev, &o2, &r, &m) || uhmm_mirror_open(dev, &o1, &r1, &m1))
		tap_bail("uhmm_mirror_open");
	ok(uhmm_mirror_priv(m) == &r, "%s: uhmm_mirror_priv", kind);
	ut_fill8(p, len, 3);
	rc = uhmm_range_fault(m, p, len, UHMM_FAULT_READ, pt);
	rc |= uhmm_range_fault(m1, p, len, 0, pt);
	is_int(rc, 0, "%s: range_fault on both mirrors", kind);

	st0 = ut_stats(h);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate", kind);
	ok(saw(&r, UHMM_EV_MIGRATE, a, a + len), "%s: MIGRATE over the range before migrate returned",
	   kind);
	ok(saw(&r1, UHMM_EV_MIGRATE, a, a + len), "%s: ... to the plain invalidate too", kind);
	ok(r.info_ok > 0, "%s: uhmm_dev_info works from a callback", kind);
	st1 = ut_stats(h);
	ok(st1.invalidations >= st0.invalidations + 2, "%s: invalidations counted (%llu)", kind,
	   (unsigned long long)(st1.invalidations - st0.invalidations));
	pthread_mutex_lock(&r.mu);
	ok(r.n > 0 && r.ev[0].initiator == 0, "%s: initiator 0 for the program's migrate", kind);
	pthread_mutex_unlock(&r.mu);

	/* a range_fault that brings another device's pages home names us */
	if (other) {
		int first;

		rc = uhmm_migrate(h, p, len, other, 0);
		clear(&r);
		first = rc = uhmm_range_fault(m, p, len, UHMM_FAULT_READ, pt);
		for (int i = 0; i < 5 && rc == -EBUSY; i++)
			rc = uhmm_range_fault(m, p, len, UHMM_FAULT_READ, pt);
		is_int(rc, 0, "%s: FAULT_READ of another device's pages", kind);
		if (ut_info(other).kind == UHMM_MEM_PRIVATE) {
			/* bringing them home invalidated this very mirror */
			is_int(first, -EBUSY, "%s: the first call: -EBUSY (its own fault raced it)",
			       kind);
			int named = 0;

			pthread_mutex_lock(&r.mu);
			for (int i = 0; i < r.n; i++)
				named |= r.ev[i].ev == UHMM_EV_MIGRATE && r.ev[i].initiator == id;
			pthread_mutex_unlock(&r.mu);
			ok(named, "%s: its MIGRATE names the mirror's device as initiator", kind);
		}
	}

	/* munmap: UNMAP by the next uhmm call */
	clear(&r);
	munmap(p + len / 2, len / 2);
	uhmm_where(h, p, pg, &rc);
	ok(saw(&r, UHMM_EV_UNMAP, a + len / 2, a + len), "%s: UNMAP after munmap", kind);
	/* madvise: REMOVE */
	clear(&r);
	madvise(p, 4 * pg, MADV_DONTNEED);
	uhmm_where(h, p, pg, &rc);
	ok(saw(&r, UHMM_EV_REMOVE, a, a + 4 * pg), "%s: REMOVE after MADV_DONTNEED", kind);
	ut_okzero(p, 4 * pg, "DONTNEED'd pages read zeros");
	/* MADV_FREE of system pages the device looked at: REMOVE too */
	{
		uint8_t *q = ut_map(2 * pg);
		struct uhmm_pte qt[2];

		ut_fill8(q, 2 * pg, 9);
		rc = -EBUSY;
		for (int i = 0; i < 5 && rc == -EBUSY; i++)
			rc = uhmm_range_fault(m, q, 2 * pg, UHMM_FAULT_READ, qt);
		is_int(rc, 0, "%s: FAULT_READ of fresh system pages", kind);
		clear(&r);
		is_int(madvise(q, 2 * pg, MADV_FREE), 0, "%s: MADV_FREE", kind);
		uhmm_where(h, q, pg, &rc);
		ok(saw(&r, UHMM_EV_REMOVE, (uintptr_t)q, (uintptr_t)q + 2 * pg),
		   "%s: REMOVE after MADV_FREE", kind);
		munmap(q, 2 * pg);
	}

	/* read_begin/read_retry against migrations in a loop; a callback
	 * taking the driver lock while this thread runs the driver's loop */
	{
		struct churn c = { h, dev, p, len / 2, 0, 0, 0 };
		pthread_t t;
		int good = 0, busy = 0, retries = 0, torn = 0, errs = 0;
		double until = ut_now() + (UT_SANITIZED ? 1.0 : 0.5);

		pthread_create(&t, NULL, churn_thread, &c);
		while (ut_now() < until || __atomic_load_n(&c.iters, __ATOMIC_SEQ_CST) < 3) {
			uint64_t s = uhmm_mirror_read_begin(m);

			rc = uhmm_range_fault(m, p, len / 2, 0, pt);
			if (rc == -EBUSY) {
				busy++;
				continue;
			}
			if (rc) {
				errs++;
				continue;
			}
			pthread_mutex_lock(&r.mu);
			if (uhmm_mirror_read_retry(m, s)) {
				retries++;
			} else {
				good++;
				for (size_t i = 1; i < len / 2 / pg; i++)
					torn += pt[i].loc != pt[0].loc &&
						pt[i].loc != UHMM_LOC_NONE && pt[0].loc != UHMM_LOC_NONE;
			}
			pthread_mutex_unlock(&r.mu);
		}
		__atomic_store_n(&c.stop, 1, __ATOMIC_SEQ_CST);
		pthread_join(t, NULL);
		ok(good > 0 && !errs && !c.errs, "%s: driver loop vs migrations: %d programmed, %d -EBUSY, "
		   "%d retried, %d migrations, no error", kind, good, busy, retries, c.iters);
		is_int(torn, 0, "%s: no torn snapshot", kind);
	}

	/* uhmm_mirror_close waits for a running callback */
	{
		struct closer c = { h, p, len / 2, NULL };
		pthread_t t;

		uhmm_migrate(h, p, len / 2, dev, 0);
		pthread_mutex_lock(&r.mu);
		r.slow_ms = 300;
		pthread_mutex_unlock(&r.mu);
		pthread_create(&t, NULL, migrate_once, &c);
		while (!__atomic_load_n(&r.in_cb, __ATOMIC_SEQ_CST))
			usleep(1000);
		uhmm_mirror_close(m);
		ok(__atomic_load_n(&r.cb_done, __ATOMIC_SEQ_CST),
		   "%s: uhmm_mirror_close returned after the running callback", kind);
		pthread_join(t, NULL);
	}

	/* RELEASE at dev_remove: m1 is the mirror left */
	uhmm_migrate(h, p, len / 2, dev, 0);
	clear(&r1);
	rc = uhmm_dev_remove(dev);
	is_int(rc, 0, "%s: dev_remove", kind);
	ok(saw(&r1, UHMM_EV_RELEASE, a, a + len), "%s: RELEASE at dev_remove", kind);
	pthread_mutex_lock(&r1.mu);
	r1.n = 0;
	pthread_mutex_unlock(&r1.mu);
	is_int(uhmm_range_fault(m1, p, len / 2, 0, pt), -ENODEV, "%s: range_fault -> -ENODEV", kind);
	ok(uhmm_mirror_read_retry(m1, uhmm_mirror_read_begin(m1)), "%s: read_retry true", kind);
	uhmm_migrate(h, p, len / 2, other, 0);
	is_int(r1.n, 0, "%s: no callback after RELEASE", kind);
	uhmm_mirror_close(m1);
	ok(ut_chk8(p + 4 * pg, 4 * pg, len / 2 - 4 * pg, 3) == SIZE_MAX,
	   "%s: data intact through it all", kind);
	munmap(p, len / 2);
	free(pt);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv, *pv2;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	pv2 = ut_psim(h, "psim2", 16 * UT_MiB);
	run(h, pv, pv2, "PRIVATE");
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	if (c)
		run(h, c, pv2, "COHERENT");
	else
		skip("COHERENT devices cannot exist here");
	uhmm_close(h);
	return tap_done();
}
