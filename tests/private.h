/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the device-PRIVATE tests (tests/t_private_*.c), on top of
 * util.h.  Public API only.
 *
 *  - ut_open_priv(): a context with fault_around / fault_threads /
 *    pool_bytes set.
 *  - ut_psim(): a simulated PRIVATE device, or bail out.
 *    ut_csim_try(): a simulated COHERENT device, or NULL (with the reason)
 *    where this kernel or UHMM_DISABLE rules COHERENT devices out.
 *  - struct tdrv: a test driver registered with uhmm_dev_add(PRIVATE),
 *    whose memory is an mmap'd buffer (filled with 0xa5 garbage at first),
 *    whose ops check their arguments, count their calls, can be told to
 *    fail (tdrv_fail_*), and whose copy_to_dev (or, after
 *    tdrv_gate_from, copy_from_dev) can be held at a gate (tdrv_gate_*).  It also checks the ops' contract: thread_init ran on
 *    a library thread before it called an op, release is called once and
 *    no op runs after it or alongside it.
 *  - ut_present(): how many pages of a range are present (or swapped) in
 *    the page tables, from /proc/self/pagemap.
 *  - ut_probe_read()/ut_probe_write(): one access that may raise SIGBUS or
 *    SIGSEGV, caught with sigsetjmp in this process (a fork child would not
 *    do: it does not inherit the userfaultfd registration).
 *  - ut_chk8(): part of a ut_fill8 pattern, checked from an offset in it.
 *  - struct ut_unmapper: a thread that munmaps the upper half of a range
 *    once told to go, and says when munmap returned.
 *  - struct ut_rec: a mirror whose invalidate2 records what it hears
 *    (ut_rec_mirror), and ut_rec_saw() to ask whether an event covered a
 *    range.
 */
#ifndef UHMM_TEST_PRIVATE_H
#define UHMM_TEST_PRIVATE_H

#include <pthread.h>
#include <setjmp.h>
#include <time.h>
#include "util.h"

/* ---------------------------------------------------------------- */
/* Contexts and devices                                              */
/* ---------------------------------------------------------------- */

static inline struct uhmm *ut_open_priv(size_t fault_around, uint32_t fault_threads,
					size_t pool_bytes)
{
	struct uhmm_opts o;

	memset(&o, 0, sizeof(o));
	o.sz = sizeof(o);
	o.fault_around = fault_around;
	o.fault_threads = fault_threads;
	o.pool_bytes = pool_bytes;
	return ut_open_opts(&o);
}

/* A simulated PRIVATE device of `size` bytes, or bail out.  PRIVATE
 * devices need nothing but userfaultfd missing faults: no SKIP. */
static inline struct uhmm_dev *ut_psim(struct uhmm *h, const char *name, size_t size)
{
	struct uhmm_dev *d = NULL;
	int rc = uhmm_dev_add_sim(h, name, UHMM_MEM_PRIVATE, size, &d);

	if (rc || !d)
		tap_bail("uhmm_dev_add_sim(%s, PRIVATE, %zu): %d (%s)", name, size, rc,
			 ut_err(rc));
	return d;
}

/* A simulated COHERENT device, or NULL where COHERENT devices cannot
 * exist here (no minor faults on shmem, or UHMM_DISABLE=minor). */
static inline struct uhmm_dev *ut_csim_try(struct uhmm *h, const char *name, size_t size)
{
	struct uhmm_dev *d = NULL;
	uint64_t feat = 0;
	int rc = uhmm_dev_add_sim(h, name, UHMM_MEM_COHERENT, size, &d);

	if (rc == -ENOSYS && uhmm_features(h, &feat) == 0 && !(feat & UHMM_FEAT_MINOR_SHMEM))
		return NULL;
	if (rc || !d)
		tap_bail("uhmm_dev_add_sim(%s, COHERENT, %zu): %d (%s)", name, size, rc,
			 ut_err(rc));
	return d;
}

static inline uint64_t ut_feats(struct uhmm *h)
{
	uint64_t f = 0;
	int rc = uhmm_features(h, &f);

	if (rc)
		tap_bail("uhmm_features: %d (%s)", rc, ut_err(rc));
	return f;
}

/* ---------------------------------------------------------------- */
/* The test driver                                                   */
/* ---------------------------------------------------------------- */

#define TDRV_MAX_TLS 8

struct tdrv {
	struct uhmm_dev *dev;
	uint8_t *mem;
	size_t size;
	/* Failure injection: < 0 never fail; otherwise the number of calls
	 * that still succeed before every later call fails. */
	int fail_to, fail_from, fail_zero;
	int err;			/* what a failing op returns */
	/* Counters (atomic). */
	unsigned long to_calls, from_calls, zero_calls;
	unsigned long to_fails, from_fails, zero_fails;
	unsigned long long to_bytes, from_bytes, zero_bytes;
	unsigned long bad_args;		/* offset/length outside the memory, NULL pointers */
	unsigned long inits, double_inits;
	unsigned long no_init;		/* op on a library thread without thread_init */
	unsigned long releases, after_release, inflight_at_release;
	int inflight;
	/* The gate: while closed, copy_to_dev (copy_from_dev if gate_from)
	 * waits (at most gate_max_s). */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int gate_closed, gate_waiting, gate_from;
	unsigned long gate_timeouts;
	unsigned gate_max_s;
};

/* Per thread: the drivers whose thread_init ran here, and whether this is
 * one of the test's own threads (where ops may run without thread_init:
 * "on the caller's thread"). */
static __thread struct tdrv *tdrv_tls_init[TDRV_MAX_TLS];
static __thread int tdrv_tls_app;

/* Call on every thread of the test that calls uhmm_* functions. */
static inline void tdrv_app_thread(void)
{
	tdrv_tls_app = 1;
}

static inline int tdrv_tls_has(struct tdrv *d)
{
	for (int i = 0; i < TDRV_MAX_TLS; i++)
		if (tdrv_tls_init[i] == d)
			return 1;
	return 0;
}

static inline unsigned long tdrv_ld(const unsigned long *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static inline void tdrv_inc(unsigned long *p)
{
	__atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}

static inline int tdrv_should_fail(int *ctr)
{
	int v = __atomic_load_n(ctr, __ATOMIC_SEQ_CST);

	for (;;) {
		if (v < 0)
			return 0;
		if (v == 0)
			return 1;
		if (__atomic_compare_exchange_n(ctr, &v, v - 1, 0, __ATOMIC_SEQ_CST,
						__ATOMIC_SEQ_CST))
			return 0;
	}
}

static inline int tdrv_enter(struct tdrv *d, uint64_t off, size_t len, const void *ptr)
{
	__atomic_add_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
	if (tdrv_ld(&d->releases))
		tdrv_inc(&d->after_release);
	if (!tdrv_tls_app && !tdrv_tls_has(d))
		tdrv_inc(&d->no_init);
	if (!ptr || off > d->size || len > d->size - off) {
		tdrv_inc(&d->bad_args);
		return 0;
	}
	return 1;
}

static inline void tdrv_leave(struct tdrv *d)
{
	__atomic_sub_fetch(&d->inflight, 1, __ATOMIC_SEQ_CST);
}

static inline void tdrv_gate_pass(struct tdrv *d, int from)
{
	struct timespec ts;

	pthread_mutex_lock(&d->mu);
	if (d->gate_closed && d->gate_from == from) {
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_sec += d->gate_max_s;
		d->gate_waiting++;
		pthread_cond_broadcast(&d->cv);
		while (d->gate_closed) {
			if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT) {
				d->gate_closed = 0;	/* opened by the timeout */
				d->gate_timeouts++;
				pthread_cond_broadcast(&d->cv);
			}
		}
		d->gate_waiting--;
	}
	pthread_mutex_unlock(&d->mu);
}

static int tdrv_copy_to(void *drv, uint64_t off, const void *src, size_t len)
{
	struct tdrv *d = drv;
	int rc = 0;

	if (!tdrv_enter(d, off, len, src)) {
		rc = -EINVAL;
	} else {
		tdrv_gate_pass(d, 0);
		tdrv_inc(&d->to_calls);
		if (tdrv_should_fail(&d->fail_to)) {
			tdrv_inc(&d->to_fails);
			rc = d->err;
		} else {
			memcpy(d->mem + off, src, len);
			__atomic_add_fetch(&d->to_bytes, len, __ATOMIC_SEQ_CST);
		}
	}
	tdrv_leave(d);
	return rc;
}

static int tdrv_copy_from(void *drv, void *dst, uint64_t off, size_t len)
{
	struct tdrv *d = drv;
	int rc = 0;

	if (!tdrv_enter(d, off, len, dst)) {
		rc = -EINVAL;
	} else {
		tdrv_gate_pass(d, 1);
		tdrv_inc(&d->from_calls);
		if (tdrv_should_fail(&d->fail_from)) {
			tdrv_inc(&d->from_fails);
			rc = d->err;
		} else {
			memcpy(dst, d->mem + off, len);
			__atomic_add_fetch(&d->from_bytes, len, __ATOMIC_SEQ_CST);
		}
	}
	tdrv_leave(d);
	return rc;
}

static int tdrv_zero(void *drv, uint64_t off, size_t len)
{
	struct tdrv *d = drv;
	int rc = 0;

	if (!tdrv_enter(d, off, len, d->mem)) {
		rc = -EINVAL;
	} else {
		tdrv_inc(&d->zero_calls);
		if (tdrv_should_fail(&d->fail_zero)) {
			tdrv_inc(&d->zero_fails);
			rc = d->err;
		} else {
			memset(d->mem + off, 0, len);
			__atomic_add_fetch(&d->zero_bytes, len, __ATOMIC_SEQ_CST);
		}
	}
	tdrv_leave(d);
	return rc;
}

static void tdrv_thread_init(void *drv)
{
	struct tdrv *d = drv;

	if (tdrv_tls_has(d)) {
		tdrv_inc(&d->double_inits);
		return;
	}
	tdrv_inc(&d->inits);
	for (int i = 0; i < TDRV_MAX_TLS; i++)
		if (!tdrv_tls_init[i]) {
			tdrv_tls_init[i] = d;
			break;
		}
}

static void tdrv_release(void *drv)
{
	struct tdrv *d = drv;

	if (__atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST))
		tdrv_inc(&d->inflight_at_release);
	tdrv_inc(&d->releases);
}

static const struct uhmm_dev_ops tdrv_ops_zero = {
	.sz = sizeof(struct uhmm_dev_ops),
	.copy_to_dev = tdrv_copy_to,
	.copy_from_dev = tdrv_copy_from,
	.zero = tdrv_zero,
	.thread_init = tdrv_thread_init,
	.release = tdrv_release,
};

static const struct uhmm_dev_ops tdrv_ops_nozero = {
	.sz = sizeof(struct uhmm_dev_ops),
	.copy_to_dev = tdrv_copy_to,
	.copy_from_dev = tdrv_copy_from,
	.thread_init = tdrv_thread_init,
	.release = tdrv_release,
};

/* Register a test driver of `size` bytes (with or without a zero op).
 * The calling thread is marked as one of the test's own. */
static inline struct uhmm_dev *tdrv_add(struct uhmm *h, struct tdrv *d, const char *name,
					size_t size, int with_zero)
{
	struct uhmm_dev_desc desc;
	pthread_condattr_t ca;
	int rc;

	tdrv_app_thread();
	memset(d, 0, sizeof(*d));
	d->size = size;
	d->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (d->mem == MAP_FAILED)
		tap_bail("mmap(%zu) for the test driver: %s", size, strerror(errno));
	memset(d->mem, 0xa5, size);	/* garbage: zero-filling must be done by someone */
	d->fail_to = d->fail_from = d->fail_zero = -1;
	d->err = -EIO;
	d->gate_max_s = UT_SANITIZED ? 60 : 20;
	pthread_mutex_init(&d->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&d->cv, &ca);
	pthread_condattr_destroy(&ca);

	memset(&desc, 0, sizeof(desc));
	desc.sz = sizeof(desc);
	desc.name = name;
	desc.kind = UHMM_MEM_PRIVATE;
	desc.size = size;
	desc.fd = -1;
	desc.ops = with_zero ? &tdrv_ops_zero : &tdrv_ops_nozero;
	desc.drv = d;
	rc = uhmm_dev_add(h, &desc, &d->dev);
	if (rc || !d->dev)
		tap_bail("uhmm_dev_add(%s, PRIVATE, %zu, test driver): %d (%s)", name, size, rc,
			 ut_err(rc));
	return d->dev;
}

static inline void tdrv_fail_to(struct tdrv *d, int after)
{
	__atomic_store_n(&d->fail_to, after, __ATOMIC_SEQ_CST);
}

static inline void tdrv_fail_from(struct tdrv *d, int after)
{
	__atomic_store_n(&d->fail_from, after, __ATOMIC_SEQ_CST);
}

static inline void tdrv_gate_close(struct tdrv *d)
{
	pthread_mutex_lock(&d->mu);
	d->gate_closed = 1;
	pthread_mutex_unlock(&d->mu);
}

/* The gate holds copy_from_dev from now on, not copy_to_dev. */
static inline void tdrv_gate_from(struct tdrv *d)
{
	pthread_mutex_lock(&d->mu);
	d->gate_from = 1;
	pthread_mutex_unlock(&d->mu);
}

static inline void tdrv_gate_open(struct tdrv *d)
{
	pthread_mutex_lock(&d->mu);
	d->gate_closed = 0;
	pthread_cond_broadcast(&d->cv);
	pthread_mutex_unlock(&d->mu);
}

static inline unsigned long tdrv_gate_timeouts(struct tdrv *d)
{
	unsigned long n;

	pthread_mutex_lock(&d->mu);
	n = d->gate_timeouts;
	pthread_mutex_unlock(&d->mu);
	return n;
}

/* Wait until some copy waits at the closed gate; 0 if it did not
 * within max_s seconds (or the gate opened by its timeout). */
static inline int tdrv_gate_wait_arrival(struct tdrv *d, unsigned max_s)
{
	struct timespec ts;
	int got;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += max_s;
	pthread_mutex_lock(&d->mu);
	while (!d->gate_waiting && d->gate_closed)
		if (pthread_cond_timedwait(&d->cv, &d->mu, &ts) == ETIMEDOUT)
			break;
	got = d->gate_waiting > 0;
	pthread_mutex_unlock(&d->mu);
	return got;
}

/* The driver-contract assertions, once per driver at the end of a test
 * (after the device was removed or its context closed).  check_init: the
 * test marked all its threads that call uhmm_* (tdrv_app_thread). */
static inline void tdrv_check_contract(struct tdrv *d, const char *what, int check_init)
{
	is_int(tdrv_ld(&d->bad_args), 0, "%s: every op got an offset and length inside the device "
	       "and non-NULL pointers", what);
	is_int(tdrv_ld(&d->releases), 1, "%s: release called exactly once", what);
	is_int(tdrv_ld(&d->after_release), 0, "%s: no op called after release", what);
	is_int(tdrv_ld(&d->inflight_at_release), 0, "%s: no op running when release was called",
	       what);
	if (check_init) {
		is_int(tdrv_ld(&d->no_init), 0,
		       "%s: every library thread that called an op ran thread_init first", what);
		is_int(tdrv_ld(&d->double_inits), 0, "%s: thread_init at most once per thread", what);
	}
}

/* Unmap the driver's memory, only once the library released it. */
static inline void tdrv_free(struct tdrv *d)
{
	if (tdrv_ld(&d->releases) && !__atomic_load_n(&d->inflight, __ATOMIC_SEQ_CST))
		munmap(d->mem, d->size);
}

/* ---------------------------------------------------------------- */
/* Page tables                                                       */
/* ---------------------------------------------------------------- */

/* Pages of [p, p+len) present (or swapped out) in this process's page
 * tables, from /proc/self/pagemap (bits 63 and 62; readable without
 * privileges, which only hide the frame numbers).  -1 if unreadable. */
static inline long ut_present(const void *p, size_t len)
{
	size_t n = ut_npages(p, len), first = ut_pg_down(p) / ut_page();
	uint64_t buf[512];
	long c = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (size_t i = 0; i < n;) {
		size_t k = n - i < 512 ? n - i : 512;
		ssize_t r = pread(fd, buf, k * 8, (off_t)((first + i) * 8));

		if (r != (ssize_t)(k * 8)) {
			close(fd);
			return -1;
		}
		for (size_t j = 0; j < k; j++)
			c += (buf[j] >> 62) & 3 ? 1 : 0;
		i += k;
	}
	close(fd);
	return c;
}

/* ---------------------------------------------------------------- */
/* Accesses that may fault                                           */
/* ---------------------------------------------------------------- */

static sigjmp_buf ut_probe_jb __attribute__((unused));
static volatile sig_atomic_t ut_probe_armed __attribute__((unused));
static void *volatile ut_probe_addr __attribute__((unused));
static volatile int ut_probe_code __attribute__((unused));

static inline void ut_probe_handler(int sig, siginfo_t *si, void *uc)
{
	/* a context serving faults by signal (UHMM_FAULTS=signal): its
	 * faults are uhmm's, as uhmm.h asks of a program's own handler */
	if (uhmm_fault_signal(si, uc))
		return;
	if (!ut_probe_armed) {
		/* Not ours: die of it as if nobody had caught it. */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	ut_probe_armed = 0;
	ut_probe_addr = si->si_addr;
	ut_probe_code = si->si_code;
	siglongjmp(ut_probe_jb, sig);
}

static inline void ut_probe_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = ut_probe_handler;
	sa.sa_flags = SA_SIGINFO | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);
}

/* Read one byte (main thread only).  Returns 0 and the byte in *out, or
 * the signal the access raised (SIGBUS, SIGSEGV); ut_probe_addr has the
 * faulting address then. */
static inline int ut_probe_read(const volatile uint8_t *p, uint8_t *out)
{
	int sig;

	ut_probe_install();
	ut_probe_addr = NULL;
	sig = sigsetjmp(ut_probe_jb, 1);
	if (sig)
		return sig;
	ut_probe_armed = 1;
	*out = *p;
	ut_probe_armed = 0;
	return 0;
}

static inline int ut_probe_write(volatile uint8_t *p, uint8_t v)
{
	int sig;

	ut_probe_install();
	ut_probe_addr = NULL;
	sig = sigsetjmp(ut_probe_jb, 1);
	if (sig)
		return sig;
	ut_probe_armed = 1;
	*p = v;
	ut_probe_armed = 0;
	return 0;
}

/* ---------------------------------------------------------------- */
/* Patterns at an offset                                             */
/* ---------------------------------------------------------------- */

/* q[0..len) against bytes [base, base+len) of pattern `seed` (as
 * ut_fill8 wrote it from some buffer start): index of the first bad byte
 * in q, or SIZE_MAX. */
static inline size_t ut_chk8(const uint8_t *q, size_t base, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (q[i] != ut_pat8(seed, base + i))
			return i;
	return SIZE_MAX;
}

/* Every page of [p, p+len) at `want` except those with except[i] set,
 * which must be at `want_except`.  One assertion. */
static inline int ut_check_where_map(struct uhmm *h, const void *p, size_t len,
				     const int *want, const char *what)
{
	int rc;
	int *loc = ut_where(h, p, len, &rc);
	size_t n = ut_npages(p, len), bad = 0, first = 0;

	if (!loc) {
		ok(0, "%s: uhmm_where", what);
		diag("uhmm_where(%p, %zu): %d (%s)", p, len, rc, ut_err(rc));
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (loc[i] != want[i] && !bad++)
			first = i;
	if (!ok(bad == 0, "%s: uhmm_where -> each of %zu pages where expected", what, n))
		diag("%zu pages elsewhere; first: page %zu at %d, want %d", bad, first,
		     loc[first], want[first]);
	free(loc);
	return bad == 0;
}

static inline double ut_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---------------------------------------------------------------- */
/* A mirror that records its invalidations                           */
/* ---------------------------------------------------------------- */

#define UT_MAXEV 512

struct ut_rec {
	pthread_mutex_t mu;		/* the "driver lock" */
	struct uhmm_inval ev[UT_MAXEV];
	int n;
};

static inline void ut_rec_cb(struct uhmm_mirror *m, const struct uhmm_inval *inv)
{
	struct ut_rec *r = uhmm_mirror_priv(m);

	pthread_mutex_lock(&r->mu);
	if (r->n < UT_MAXEV)
		r->ev[r->n++] = *inv;
	pthread_mutex_unlock(&r->mu);
}

static inline void ut_rec_clear(struct ut_rec *r)
{
	pthread_mutex_lock(&r->mu);
	r->n = 0;
	pthread_mutex_unlock(&r->mu);
}

/* A mirror of d recording into r (initialised here), or bail out. */
static inline struct uhmm_mirror *ut_rec_mirror(struct uhmm_dev *d, struct ut_rec *r)
{
	struct uhmm_mirror_ops ops;
	struct uhmm_mirror *m = NULL;
	int rc;

	memset(r, 0, sizeof(*r));
	pthread_mutex_init(&r->mu, NULL);
	memset(&ops, 0, sizeof(ops));
	ops.sz = sizeof(ops);
	ops.invalidate2 = ut_rec_cb;
	rc = uhmm_mirror_open(d, &ops, r, &m);
	if (rc || !m)
		tap_bail("uhmm_mirror_open: %d (%s)", rc, ut_err(rc));
	return m;
}

/* Did an event ev (initiator ini; any when ini < 0) cover [s, s + len)? */
static inline int ut_rec_saw(struct ut_rec *r, enum uhmm_event ev, int ini, const void *s,
			     size_t len)
{
	int found = 0;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n; i++)
		if (r->ev[i].ev == ev && (ini < 0 || r->ev[i].initiator == ini) &&
		    r->ev[i].start <= (uintptr_t)s && r->ev[i].end >= (uintptr_t)s + len)
			found = 1;
	pthread_mutex_unlock(&r->mu);
	return found;
}

/* ---------------------------------------------------------------- */
/* A thread that unmaps half a range under a device access          */
/* ---------------------------------------------------------------- */

struct ut_unmapper {
	uint8_t *p;
	size_t len;
	int go;			/* set by the reader after its first reads */
	int unmapped;		/* set once munmap returned */
	int rc;
};

static inline void *ut_unmap_upper_half(void *arg)
{
	struct ut_unmapper *u = arg;

	while (!__atomic_load_n(&u->go, __ATOMIC_SEQ_CST))
		usleep(100);
	u->rc = munmap(u->p + u->len / 2, u->len / 2);
	__atomic_store_n(&u->unmapped, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

#endif
