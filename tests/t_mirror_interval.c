/* SPDX-License-Identifier: MIT */
/*
 * Intervals and uhmm_mprotect.  An invalidation moves only the sequence
 * counts of the intervals it overlaps: churn elsewhere sends no driver back
 * to read_begin.  An interval makes its mirror hear invalidations of that
 * range even before any range_fault.  uhmm_mprotect tells the mirrors
 * (UHMM_EV_PROTECT, over the range) before the protection changes, and
 * the change is real.  Bad arguments and the NULL conventions.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include "util.h"

struct seen {
	int n, protect;
	uintptr_t start, end;
	enum uhmm_event ev;
};

/* The callback may run on a library thread: what it saw is read under a lock. */
static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	struct seen *w = uhmm_mirror_priv(m);

	pthread_mutex_lock(&seen_lock);
	w->n++;
	w->start = s;
	w->end = e;
	w->ev = ev;
	if (ev == UHMM_EV_PROTECT)
		w->protect++;
	pthread_mutex_unlock(&seen_lock);
}

static struct seen seen_now(const struct seen *w)
{
	struct seen c;

	pthread_mutex_lock(&seen_lock);
	c = *w;
	pthread_mutex_unlock(&seen_lock);
	return c;
}

static void write_one(void *a)
{
	*(volatile uint8_t *)a = 1;
}

int main(void)
{
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };
	struct uhmm_interval *a = NULL, *b = NULL, *bad = NULL;
	struct seen w = { 0 }, c;
	struct uhmm_mirror *m = NULL;
	struct uhmm_dev *dev;
	struct uhmm *h;
	size_t pg, len;
	uint64_t sa, sb;
	uint8_t *p;
	int rc;

	ut_init(60);
	h = ut_open();
	pg = ut_page();
	len = 64 * pg;
	rc = uhmm_dev_add_sim(h, "interval", UHMM_MEM_PRIVATE, 16 * UT_MiB, &dev);
	if (rc)
		tap_bail("uhmm_dev_add_sim: %d", rc);
	p = ut_map(2 * len);
	ut_fill64(p, 2 * len, 5);
	is_int(uhmm_mirror_open(dev, &ops, &w, &m), 0, "mirror opened");

	/* bad arguments */
	is_int(uhmm_interval_insert(NULL, (uintptr_t)p, len, &a), -EINVAL, "interval_insert(NULL mirror): -EINVAL");
	is_int(uhmm_interval_insert(m, (uintptr_t)p, 0, &bad), -EINVAL, "interval_insert(len 0): -EINVAL");
	is_int(uhmm_interval_insert(m, UINTPTR_MAX - pg, 4 * pg, &bad), -EINVAL, "interval_insert(wrapping): -EINVAL");
	is_int(uhmm_interval_insert(m, (uintptr_t)p, len, NULL), -EINVAL, "interval_insert(out NULL): -EINVAL");
	ok(bad == NULL, "no interval handed out on errors");
	is_int(uhmm_interval_read_begin(NULL), 0, "interval_read_begin(NULL) returns 0");
	ok(uhmm_interval_read_retry(NULL, 0), "interval_read_retry(NULL, s) returns true");
	uhmm_interval_remove(NULL);
	ok(1, "interval_remove(NULL) does nothing");

	/* two intervals: the first and the second half */
	is_int(uhmm_interval_insert(m, (uintptr_t)p, len, &a), 0, "interval A over the first half");
	is_int(uhmm_interval_insert(m, (uintptr_t)p + len, len, &b), 0, "interval B over the second half");
	sa = uhmm_interval_read_begin(a);
	sb = uhmm_interval_read_begin(b);
	ok(!(sa & 1) && !(sb & 1), "read_begin gives even counts");

	/* churn in B's half only: A's count stays, B's moves */
	rc = uhmm_migrate(h, p + len, len, dev, 0);
	is_int(rc, 0, "the second half to the device");
	c = seen_now(&w);
	ok(c.n >= 1 && c.ev == UHMM_EV_MIGRATE, "the mirror heard MIGRATE before any range_fault (the interval widened it)");
	ok(!uhmm_interval_read_retry(a, sa), "A: no retry (nothing happened in its range)");
	ok(uhmm_interval_read_retry(b, sb), "B: retry (its range migrated)");
	sb = uhmm_interval_read_begin(b);
	ok(!uhmm_interval_read_retry(b, sb), "B: a fresh read_begin is current");

	/* uhmm_mprotect: PROTECT over the range, before the change */
	pthread_mutex_lock(&seen_lock);
	w.protect = 0;
	pthread_mutex_unlock(&seen_lock);
	rc = uhmm_mprotect(h, p, len, PROT_READ);
	is_int(rc, 0, "uhmm_mprotect(first half, PROT_READ)");
	c = seen_now(&w);
	is_int(c.protect, 1, "the mirror heard PROTECT once");
	ok(c.start <= (uintptr_t)p && c.end >= (uintptr_t)p + len, "over the whole range");
	ok(uhmm_interval_read_retry(a, sa), "A: retry after the protection change");
	ok(!uhmm_interval_read_retry(b, sb), "B: no retry (not in its range)");
	is_int(ut_child(write_one, p), SIGSEGV, "a write to the range now faults (SIGSEGV in a child)");
	ut_ok64(p, 2 * len, 5, "the data");
	is_int(uhmm_mprotect(h, p, len, PROT_READ | PROT_WRITE), 0, "back to PROT_READ|PROT_WRITE");
	p[0] ^= 0;
	ok(1, "writable again");
	is_int(uhmm_mprotect(h, p, len, 0x100), -EINVAL, "uhmm_mprotect with an unknown bit: -EINVAL");
	is_int(uhmm_mprotect(NULL, p, len, PROT_READ), -EINVAL, "uhmm_mprotect(NULL): -EINVAL");
	is_int(uhmm_mprotect(h, p, 0, PROT_READ), -EINVAL, "uhmm_mprotect(len 0): -EINVAL");

	/* removal: no more counting for a removed interval's range */
	uhmm_interval_remove(a);
	ok(1, "interval A removed");
	uhmm_interval_remove(b);
	ok(1, "interval B removed");

	/* RELEASE: then inserting is -ENODEV */
	rc = uhmm_dev_remove(dev);
	is_int(rc, 0, "device removed with pages on it");
	c = seen_now(&w);
	is_int(c.ev, UHMM_EV_RELEASE, "the mirror heard RELEASE last");
	is_int(uhmm_interval_insert(m, (uintptr_t)p, len, &bad), -ENODEV, "interval_insert after RELEASE: -ENODEV");
	ut_ok64(p, 2 * len, 5, "the data after the device went away");
	uhmm_mirror_close(m);
	munmap(p, 2 * len);
	uhmm_close(h);
	return tap_done();
}
