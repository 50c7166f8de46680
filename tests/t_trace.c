/* SPDX-License-Identifier: MIT */
/*
 * The trace of faults, migrations and evictions (uhmm_trace_*): nothing is
 * recorded without a reader; each kind of event comes with its cause,
 * range, thread and places; the ring keeps the last UHMM_TRACE_EVENTS and
 * says how many were lost; readers racing writers on several threads see
 * every event once, in order, whole.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include "private.h"

#define NEV 8192
static struct uhmm_trace_event ev[NEV];

/* Every event from *next on. */
static int drain(struct uhmm *h, uint64_t *next)
{
	int n = uhmm_trace_read(h, next, ev, NEV);

	if (n < 0)
		tap_bail("uhmm_trace_read: %d (%s)", n, ut_err(n));
	return n;
}

/* The first event of this type and cause in ev[0..n), or NULL. */
static const struct uhmm_trace_event *find(int n, int type, int cause)
{
	for (int i = 0; i < n; i++)
		if (ev[i].type == type && ev[i].cause == cause)
			return &ev[i];
	return NULL;
}

static uint64_t bytes_of(int n, int type, int cause, int from, int to)
{
	uint64_t b = 0;

	for (int i = 0; i < n; i++)
		if (ev[i].type == type && ev[i].cause == cause &&
		    ev[i].from == from && ev[i].to == to)
			b += ev[i].len;
	return b;
}

static void test_args(struct uhmm *h)
{
	uint64_t next = 0;

	is_int(uhmm_trace_start(NULL), -EINVAL, "trace_start(NULL): -EINVAL");
	is_int(uhmm_trace_stop(NULL), -EINVAL, "trace_stop(NULL): -EINVAL");
	is_int(uhmm_trace_stop(h), -EINVAL, "trace_stop without a start: -EINVAL");
	is_int(uhmm_trace_read(NULL, &next, ev, 1), -EINVAL, "trace_read(NULL, ...): -EINVAL");
	is_int(uhmm_trace_read(h, NULL, ev, 1), -EINVAL, "trace_read(h, NULL next): -EINVAL");
	is_int(uhmm_trace_read(h, &next, NULL, 1), -EINVAL,
	       "trace_read(h, next, NULL, 1): -EINVAL");
	is_int(uhmm_trace_read(h, &next, NULL, 0), 0, "trace_read(h, next, NULL, 0): 0 events");
	ok(!strcmp(uhmm_trace_type_name(UHMM_TRACE_EVICT), "evict") &&
	   !strcmp(uhmm_trace_cause_name(UHMM_CAUSE_CPU_FAULT), "cpu-fault") &&
	   !strcmp(uhmm_trace_type_name(999), "?") && !strcmp(uhmm_trace_cause_name(999), "?"),
	   "type and cause names, '?' for unknown values");
}

static void test_nothing_without_reader(struct uhmm *h, struct uhmm_dev *d)
{
	size_t len = 64 * ut_page();
	char *p = ut_map(len);
	uint64_t next = 0;

	memset(p, 1, len);
	if (uhmm_migrate(h, p, len, d, 0) || uhmm_migrate(h, p, len, NULL, 0))
		tap_bail("migrate");
	is_int(drain(h, &next), 0, "no reader attached: migrations record nothing");
	munmap(p, len);
}

static void test_migrate_alloc(struct uhmm *h, struct uhmm_dev *d, int id)
{
	size_t len = 64 * ut_page();
	char *p = ut_map(len), *a;
	const struct uhmm_trace_event *e;
	uint64_t next = 0;
	int n;

	memset(p, 1, len);
	if (uhmm_trace_start(h))
		tap_bail("trace_start");
	if (uhmm_migrate(h, p, len, d, 0) || uhmm_migrate(h, p, len, NULL, 0))
		tap_bail("migrate");
	n = drain(h, &next);
	e = find(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_MIGRATE);
	ok(e && e->addr == (uintptr_t)p && e->from == UHMM_LOC_SYSTEM && e->to == id &&
	   e->tid == gettid() && e->time_ns > 0 && e->seq >= 1,
	   "uhmm_migrate to the device: MIGRATE, cause migrate, addr, system -> device, my tid");
	is_int(bytes_of(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_MIGRATE, UHMM_LOC_SYSTEM, id), len,
	       "... the events cover the range's bytes");
	is_int(bytes_of(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_MIGRATE, id, UHMM_LOC_SYSTEM), len,
	       "uhmm_migrate back: device -> system, the same bytes");
	ok(n >= 2 && ev[n - 1].seq == next - 1 && ev[0].seq < ev[n - 1].seq,
	   "seq counts up and next points past the last event read");

	a = uhmm_alloc(h, 4 * UT_MiB, d, 0);
	if (!a)
		tap_bail("uhmm_alloc: %s", strerror(errno));
	n = drain(h, &next);
	e = find(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_ALLOC);
	ok(e && e->addr == (uintptr_t)a && e->to == id,
	   "uhmm_alloc on the device: MIGRATE with cause alloc at the block's address");
	uhmm_free(h, a);
	if (uhmm_trace_stop(h))
		tap_bail("trace_stop");
	munmap(p, len);
}

static void test_evict(struct uhmm *h, struct uhmm_dev *small, int id)
{
	size_t len = 4 * UT_MiB;
	char *a = ut_map_aligned(len, 2 * UT_MiB), *b = ut_map_aligned(len, 2 * UT_MiB);
	const struct uhmm_trace_event *e;
	uint64_t next = 0;
	int n;

	ut_fill8(a, len, 11);
	memset(b, 3, len);
	if (uhmm_migrate(h, a, len, small, 0))
		tap_bail("migrate a");
	uhmm_trace_start(h);
	drain(h, &next);
	if (uhmm_migrate(h, b, len, small, 0))
		tap_bail("migrate b");
	n = drain(h, &next);
	e = find(n, UHMM_TRACE_EVICT, UHMM_CAUSE_MIGRATE);
	ok(e && e->from == id && e->to == UHMM_LOC_SYSTEM &&
	   e->addr >= (uintptr_t)a && e->addr < (uintptr_t)a + len,
	   "a full device: EVICT of the older range, device -> system, cause migrate");
	is_int(bytes_of(n, UHMM_TRACE_EVICT, UHMM_CAUSE_MIGRATE, id, UHMM_LOC_SYSTEM), len,
	       "... all of it was evicted");
	uhmm_trace_stop(h);
	ut_ok8(a, len, 11, "the evicted range kept its data");
	munmap(a, len);
	munmap(b, len);
}

static void test_private_fault(struct uhmm *h, struct uhmm_dev *pd, int pid_)
{
	size_t len = 64 * ut_page();
	volatile char *p = ut_map(len);
	const struct uhmm_trace_event *e;
	uint64_t next = 0;
	int n;

	memset((char *)p, 4, len);
	if (uhmm_migrate(h, (char *)p, len, pd, 0))
		tap_bail("migrate to private");
	uhmm_trace_start(h);
	drain(h, &next);
	if (p[5 * ut_page()] != 4)
		tap_bail("bad data after the fault");
	/* the faulting thread runs on as soon as its page is in place: the
	 * thread that served the fault records it a moment later */
	n = 0;
	for (int i = 0; i < 200; i++) {
		n += uhmm_trace_read(h, &next, ev + n, NEV - (size_t)n);
		if (find(n, UHMM_TRACE_CPU_FAULT, UHMM_CAUSE_CPU_FAULT) &&
		    find(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_CPU_FAULT))
			break;
		usleep(10000);
	}
	e = find(n, UHMM_TRACE_CPU_FAULT, UHMM_CAUSE_CPU_FAULT);
	if (!ok(e && e->addr == (uintptr_t)p + 5 * ut_page() && e->tid == gettid() &&
		e->from == pid_ && e->to == UHMM_LOC_SYSTEM && e->len == ut_page(),
		"a CPU read of a private page: CPU_FAULT at the page, the faulting thread, from "
		"the device"))
		for (int i = 0; i < n; i++)
			diag("event %d: type %d cause %d addr %#llx (p %p) tid %d (me %d) %d -> %d",
			     i, ev[i].type, ev[i].cause, (unsigned long long)ev[i].addr, (void *)p,
			     ev[i].tid, gettid(), ev[i].from, ev[i].to);
	e = find(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_CPU_FAULT);
	ok(e && e->from == pid_ && e->to == UHMM_LOC_SYSTEM &&
	   e->addr <= (uintptr_t)p + 5 * ut_page() &&
	   e->addr + e->len > (uintptr_t)p + 5 * ut_page(),
	   "... and the window that came home: MIGRATE with cause cpu-fault, covering the page");
	uhmm_trace_stop(h);
	munmap((char *)p, len);
}

static void test_prefetch_remove_dma(struct uhmm *h)
{
	size_t len = 32 * ut_page();
	char *p = ut_map(len), *q = ut_map(len), buf[64];
	struct uhmm_dev *d = ut_sim(h, "gone", 8 * UT_MiB);
	const struct uhmm_trace_event *e;
	uint64_t next = 0, t;
	int n, did = ut_dev_id(d);

	memset(p, 5, len);
	memset(q, 6, len);
	uhmm_trace_start(h);
	if (uhmm_prefetch(h, p, len, d, 0, &t) || uhmm_wait(h, t, -1))
		tap_bail("prefetch");
	n = drain(h, &next);
	ok(find(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_PREFETCH) != NULL,
	   "uhmm_prefetch: MIGRATE with cause prefetch");
	if (uhmm_sim_read(d, q, buf, sizeof(buf)) < 0)
		tap_bail("sim_read");
	n = drain(h, &next);
	e = find(n, UHMM_TRACE_DEV_FAULT, UHMM_CAUSE_OTHER);
	ok(e && e->addr == (uintptr_t)q && e->to == did && e->from == UHMM_LOC_NONE,
	   "a sim DMA read of unmirrored memory: DEV_FAULT at its address, for that device");
	if (uhmm_dev_remove(d))
		tap_bail("dev_remove");
	n = drain(h, &next);
	ok(bytes_of(n, UHMM_TRACE_MIGRATE, UHMM_CAUSE_REMOVE, did, UHMM_LOC_SYSTEM) == len,
	   "uhmm_dev_remove: its pages go home with cause remove");
	uhmm_trace_stop(h);
	munmap(p, len);
	munmap(q, len);
}

/* More events than the ring holds: the oldest are lost, the rest kept. */
static void test_overflow(struct uhmm *h, struct uhmm_dev *d)
{
	size_t pg = ut_page(), npg = 64;
	char *p = ut_map(npg * pg);
	uint64_t next = 0, first;
	int n, rounds = 0, gaps = 0;

	ut_fill8(p, npg * pg, 12);
	uhmm_trace_start(h);
	drain(h, &next);
	first = next;
	/* each migration of one page is one event */
	while (rounds * ((int)npg + 1) < UHMM_TRACE_EVENTS + 1000) {
		for (size_t i = 0; i < npg; i++)
			if (uhmm_migrate(h, p + i * pg, pg, d, 0))
				tap_bail("migrate");
		if (uhmm_migrate(h, p, npg * pg, NULL, 0))
			tap_bail("migrate home");
		rounds++;
	}
	n = drain(h, &next);
	ok(n > 0 && n <= UHMM_TRACE_EVENTS && ev[0].seq > first,
	   "more events than the ring holds: at most UHMM_TRACE_EVENTS come back, the oldest lost "
	   "(%d read, first seq %llu > %llu)",
	   n, (unsigned long long)(n ? ev[0].seq : 0), (unsigned long long)first);
	for (int i = 1; i < n; i++)
		gaps += ev[i].seq != ev[i - 1].seq + 1;
	is_int(gaps, 0, "what is kept is contiguous");
	is_int(drain(h, &next), 0, "a second read finds nothing new");
	uhmm_trace_stop(h);
	ut_ok8(p, npg * pg, 12, "the pages moved back and forth kept their data");
	munmap(p, npg * pg);
}

/* Several threads migrating while one reads: each event once, in order. */
struct mover { struct uhmm *h; struct uhmm_dev *d; int rounds; int err; };

static void *mover_main(void *arg)
{
	struct mover *m = arg;
	size_t len = 16 * ut_page();
	char *p = ut_map(len);

	memset(p, 8, len);
	for (int i = 0; i < m->rounds && !m->err; i++) {
		m->err = uhmm_migrate(m->h, p, len, m->d, 0);
		if (!m->err)
			m->err = uhmm_migrate(m->h, p, len, NULL, 0);
	}
	munmap(p, len);
	return NULL;
}

struct reader { struct uhmm *h; _Atomic int stop; uint64_t got, lost, bad, last; };

static void *reader_main(void *arg)
{
	static struct uhmm_trace_event buf[512];
	struct reader *r = arg;
	uint64_t next = r->last + 1;

	for (;;) {
		int stop = atomic_load(&r->stop);
		int n = uhmm_trace_read(r->h, &next, buf, 512);

		for (int i = 0; i < n; i++) {
			if (buf[i].seq <= r->last)
				r->bad++;
			else
				r->lost += buf[i].seq - r->last - 1;
			if (buf[i].type != UHMM_TRACE_MIGRATE || !buf[i].len || !buf[i].tid ||
			    buf[i].reserved)
				r->bad++;
			r->last = buf[i].seq;
			r->got++;
		}
		if (stop && n == 0)
			break;
	}
	return NULL;
}

static void test_threads(struct uhmm *h, struct uhmm_dev *d)
{
	struct mover m[4];
	struct reader rd = { .h = h };
	pthread_t t[4], rt;
	int rounds = (int)ut_scaled(200, 10), err = 0;

	uhmm_trace_start(h);
	{
		uint64_t skip = 0;

		drain(h, &skip);
		rd.last = skip - 1;
	}
	pthread_create(&rt, NULL, reader_main, &rd);
	for (int i = 0; i < 4; i++) {
		m[i] = (struct mover){ h, d, rounds, 0 };
		pthread_create(&t[i], NULL, mover_main, &m[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		err |= m[i].err;
	}
	atomic_store(&rd.stop, 1);
	pthread_join(rt, NULL);
	is_int(err, 0, "4 threads migrating their ranges while a reader reads");
	is_int(rd.bad, 0, "every event read once, in seq order, well formed");
	ok(rd.got + rd.lost >= (uint64_t)4 * 2 * rounds,
	   "read + lost covers at least one event per migration (%llu read, %llu lost)",
	   (unsigned long long)rd.got, (unsigned long long)rd.lost);
	uhmm_trace_stop(h);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d, *small, *pd;

	ut_init(120);
	h = ut_open();
	test_args(h);
	pd = ut_psim(h, "priv", 16 * UT_MiB);
	d = ut_csim_try(h, "dev", 64 * UT_MiB);
	if (!d) {
		skip("COHERENT devices absent here: the coherent trace tests");
		d = pd;
	}
	small = ut_psim(h, "small", 4 * UT_MiB);
	test_nothing_without_reader(h, d);
	test_migrate_alloc(h, d, ut_dev_id(d));
	test_evict(h, small, ut_dev_id(small));
	test_private_fault(h, pd, ut_dev_id(pd));
	test_prefetch_remove_dma(h);
	test_overflow(h, d);
	test_threads(h, d);
	uhmm_close(h);
	return tap_done();
}
