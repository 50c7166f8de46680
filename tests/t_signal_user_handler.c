/* SPDX-License-Identifier: MIT */
/*
 * A SIGSEGV (or SIGBUS) that is the program's own bug reaches the
 * program's own handler, with the exact address and a sensible si_code,
 * whether the bad access lies inside a range uhmm manages or not: uhmm
 * installs no handler and must not swallow, retry or misreport them.
 *
 * The program's handler (SA_SIGINFO) records si_signo, si_addr and
 * si_code and siglongjmps out.  Bad accesses:
 *  - a NULL read (SEGV_MAPERR, address 0), outside any managed range;
 *  - a write to a read-only mapping nobody manages (SEGV_ACCERR);
 *  - a write to a read-only managed range: on a COHERENT device, on a
 *    PRIVATE device, and in system memory but managed (advised), made
 *    read-only both by uhmm_mprotect and by a plain mprotect (SEGV_ACCERR);
 *  - a read of a PROT_NONE managed range in each of those places
 *    (SEGV_ACCERR);
 *  - a read just past the end of a managed mapping, into a hole
 *    (SEGV_MAPERR);
 *  - a read of a page whose device data the driver could not read back
 *    (SIGBUS, where uhmm.h says so: copy_from_dev failing in a CPU fault).
 * After each, the range's data and placement are intact once its
 * protection is restored, and the library keeps working (a migration
 * there and back).  All of it again from a second thread.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>

#include "private.h"

#define LEN	(64 * 4096)

#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 8)
/* the bad accesses are the point: no sanitizer may report them first
 * (UBSan's null check would halt the test before the fault) */
#define BAD_ACCESS __attribute__((noinline, no_sanitize("address", "undefined", "thread")))
#else
#define BAD_ACCESS __attribute__((noinline))
#endif

/* What the program's handler saw, per thread. */
static __thread sigjmp_buf jb;
static __thread volatile sig_atomic_t armed;
static __thread volatile int got_sig, got_code;
static __thread void *volatile got_addr;

static void handler(int sig, siginfo_t *si, void *uc)
{
	/* what uhmm.h asks of a program's own handler, for a context that
	 * serves faults by signal (UHMM_FAULTS=signal) */
	if (sig == SIGBUS && uhmm_fault_signal(si, uc))
		return;
	if (!armed) {
		/* not one of ours: die of it */
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	armed = 0;
	got_sig = sig;
	got_code = si->si_code;
	got_addr = si->si_addr;
	siglongjmp(jb, 1);
}

static void install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static BAD_ACCESS void do_read(volatile uint8_t *p)
{
	(void)*p;
}

static BAD_ACCESS void do_write(volatile uint8_t *p)
{
	*p = 0x5a;
}

/* One bad access: 1 if it raised signal `sig` with si_addr == p and
 * si_code == code (one assertion). */
static int expect_fault(const char *ctx, const char *what, void *p, bool write, int sig,
			int code, int code2)
{
	int ok_;

	got_sig = 0;
	got_code = 0;
	got_addr = (void *)1;
	if (!sigsetjmp(jb, 1)) {
		armed = 1;
		if (write)
			do_write(p);
		else
			do_read(p);
		armed = 0;
	}
	ok_ = got_sig == sig && got_addr == p && (got_code == code || got_code == code2);
	if (!ok(ok_, "%s: %s: the program's handler gets %s at %p, si_code %d", ctx, what,
		sig == SIGBUS ? "SIGBUS" : "SIGSEGV", p, code))
		diag("got signal %d, si_addr %p, si_code %d", got_sig, got_addr, got_code);
	return ok_;
}

struct env {
	struct uhmm *h;
	struct uhmm_dev *pd, *cd;	/* cd may be NULL (no COHERENT devices here) */
	struct tdrv *td;		/* a driver whose copy_from_dev can fail */
	uint8_t *scratch;		/* for "the library still works" */
};

/* The library still works: a migration there and back of a scratch range. */
static void still_works(struct env *e, const char *ctx, const char *after)
{
	int rc1, rc2;

	ut_fill8(e->scratch, LEN, 99);
	rc1 = uhmm_migrate(e->h, e->scratch, LEN, e->pd, 0);
	rc2 = uhmm_migrate(e->h, e->scratch, LEN, NULL, 0);
	ok(rc1 == 0 && rc2 == 0 && ut_check8(e->scratch, LEN, 99) == SIZE_MAX,
	   "%s: after %s: a migration to the device and back works, data intact", ctx, after);
}

static void outside(struct env *e, const char *ctx)
{
	uint8_t *ro = mmap(NULL, ut_page(), PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	expect_fault(ctx, "NULL read (outside any managed range)", NULL, false, SIGSEGV,
		     SEGV_MAPERR, SEGV_MAPERR);
	still_works(e, ctx, "the NULL read");
	if (ro == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	expect_fault(ctx, "write to an unmanaged read-only page", ro + 77, true, SIGSEGV,
		     SEGV_ACCERR, SEGV_ACCERR);
	munmap(ro, ut_page());
}

enum where { W_SYS, W_COH, W_PRIV };
static const char *const where_name[] = { "system memory (managed)", "a COHERENT device",
					  "a PRIVATE device" };

/* A managed range on `w`, filled with pattern seed; its location id. */
static uint8_t *managed(struct env *e, enum where w, unsigned seed, int *id)
{
	uint8_t *p = ut_map(LEN);
	int rc;

	ut_fill8(p, LEN, seed);
	if (w == W_SYS) {
		/* advice makes the range managed, in system memory */
		rc = uhmm_advise(e->h, p, LEN, UHMM_ADV_ACCESSED_BY, e->pd);
		*id = UHMM_LOC_SYSTEM;
	} else {
		struct uhmm_dev *d = w == W_COH ? e->cd : e->pd;

		rc = uhmm_migrate(e->h, p, LEN, d, 0);
		*id = ut_dev_id(d);
	}
	if (rc)
		tap_bail("%s: %d (%s)", where_name[w], rc, ut_err(rc));
	return p;
}

/* Placement first (reading PRIVATE pages brings them home), then data. */
static void intact(struct env *e, const char *ctx, const char *what, uint8_t *p, int id,
		   unsigned seed)
{
	char buf[256];
	long n = ut_where_count(e->h, p, LEN, id);

	snprintf(buf, sizeof(buf), "%s: %s", ctx, what);
	is_int(n, LEN / ut_page(), "%s: every page still where it was (%d)", buf, id);
	ut_ok8(p, LEN, seed, buf);
}

/* The range's protection, through the library or behind its back. */
static int protect(struct env *e, bool via_uhmm, uint8_t *p, int prot)
{
	if (via_uhmm)
		return uhmm_mprotect(e->h, p, LEN, prot);
	return mprotect(p, LEN, prot) ? -errno : 0;
}

/* Read-write again: the data is where and what it was, and migrations work. */
static void back_to_rw(struct env *e, const char *ctx, const char *what, bool via_uhmm,
		       uint8_t *p, int id, unsigned seed)
{
	is_int(protect(e, via_uhmm, p, PROT_READ | PROT_WRITE), 0, "%s: %s back to read-write",
	       ctx, via_uhmm ? "uhmm_mprotect" : "mprotect");
	intact(e, ctx, what, p, id, seed);
	still_works(e, ctx, what);
}

static void protections(struct env *e, const char *ctx, enum where w, bool via_uhmm)
{
	const char *how = via_uhmm ? "uhmm_mprotect" : "mprotect";
	char what[256];
	unsigned seed = 10 + w * 2 + via_uhmm;
	int id, rc;
	uint8_t *p = managed(e, w, seed, &id);
	uint8_t *at = p + 5 * ut_page() + 123;

	/* read-only: a write is the program's bug */
	rc = protect(e, via_uhmm, p, PROT_READ);
	if (rc)
		tap_bail("%s(PROT_READ): %d", how, rc);
	snprintf(what, sizeof(what), "write to a read-only range on %s (%s)", where_name[w], how);
	expect_fault(ctx, what, at, true, SIGSEGV, SEGV_ACCERR, SEGV_ACCERR);
	if (w == W_PRIV) {
		/* the read brings the page home; the write is still refused */
		uint8_t v = *(volatile uint8_t *)at;

		is_int(v, ut_pat8(seed, (size_t)(at - p)),
		       "%s: a read of the read-only PRIVATE page works (it comes home)", ctx);
		snprintf(what, sizeof(what), "write to the read-only page now home (%s)", how);
		expect_fault(ctx, what, at, true, SIGSEGV, SEGV_ACCERR, SEGV_ACCERR);
		/* the page came home: the rest of the range is still on the device */
		if (uhmm_migrate(e->h, p, LEN, e->pd, 0) == 0)
			id = ut_dev_id(e->pd);
	}
	snprintf(what, sizeof(what), "after the write to a read-only range on %s (%s)",
		 where_name[w], how);
	back_to_rw(e, ctx, what, via_uhmm, p, id, seed);

	/* PROT_NONE: any access is the program's bug */
	if (w == W_PRIV && uhmm_migrate(e->h, p, LEN, e->pd, 0))
		tap_bail("migrate back to the PRIVATE device");
	rc = protect(e, via_uhmm, p, PROT_NONE);
	is_int(rc, 0, "%s: %s(PROT_NONE) of a range on %s", ctx, how, where_name[w]);
	snprintf(what, sizeof(what), "read of a PROT_NONE range on %s (%s)", where_name[w], how);
	expect_fault(ctx, what, at, false, SIGSEGV, SEGV_ACCERR, SEGV_ACCERR);
	snprintf(what, sizeof(what), "write to a PROT_NONE range on %s (%s)", where_name[w], how);
	expect_fault(ctx, what, p + LEN - 1, true, SIGSEGV, SEGV_ACCERR, SEGV_ACCERR);
	snprintf(what, sizeof(what), "after accesses to a PROT_NONE range on %s (%s)",
		 where_name[w], how);
	back_to_rw(e, ctx, what, via_uhmm, p, id, seed);
	munmap(p, LEN);
}

/* A read just past the end of a managed mapping, where nothing is mapped. */
static void past_end(struct env *e, const char *ctx, enum where w)
{
	unsigned seed = 30 + w;
	uint8_t *p = ut_map(LEN + 2 * ut_page()), *end = p + LEN;
	char what[256];
	int id, rc;

	/* the hole: the tail of our own mapping, unmapped again */
	munmap(end, 2 * ut_page());
	ut_fill8(p, LEN, seed);
	if (w == W_SYS) {
		rc = uhmm_advise(e->h, p, LEN, UHMM_ADV_ACCESSED_BY, e->pd);
		id = UHMM_LOC_SYSTEM;
	} else {
		rc = uhmm_migrate(e->h, p, LEN, w == W_COH ? e->cd : e->pd, 0);
		id = ut_dev_id(w == W_COH ? e->cd : e->pd);
	}
	if (rc)
		tap_bail("past_end: %d (%s)", rc, ut_err(rc));
	if (ut_maps_count(end, 2 * ut_page()) != 0) {
		skip("%s: something was mapped in the hole past the range meanwhile", ctx);
	} else {
		snprintf(what, sizeof(what), "read just past the end of a range on %s, into a hole",
			 where_name[w]);
		expect_fault(ctx, what, end, false, SIGSEGV, SEGV_MAPERR, SEGV_MAPERR);
		snprintf(what, sizeof(what), "write a page past the end of a range on %s",
			 where_name[w]);
		expect_fault(ctx, what, end + ut_page() + 9, true, SIGSEGV, SEGV_MAPERR,
			     SEGV_MAPERR);
	}
	snprintf(what, sizeof(what), "after accesses past the end of a range on %s",
		 where_name[w]);
	intact(e, ctx, what, p, id, seed);
	still_works(e, ctx, what);
	munmap(p, LEN);
}

/* SIGBUS where uhmm.h says: copy_from_dev failing during a CPU fault
 * poisons the page touched. */
static void poisoned(struct env *e, const char *ctx)
{
	uint8_t *p = ut_map(LEN), *at = p + 9 * ut_page() + 1000;
	int rc;

	ut_fill8(p, LEN, 40);
	rc = uhmm_migrate(e->h, p, LEN, e->td->dev, 0);
	if (rc)
		tap_bail("migrate to the test driver: %d", rc);
	tdrv_fail_from(e->td, 0);
	expect_fault(ctx, "read of a page the driver cannot read back (poisoned)", at, false,
		     SIGBUS, BUS_MCEERR_AR, BUS_ADRERR);
	expect_fault(ctx, "the poisoned page again", at, false, SIGBUS, BUS_MCEERR_AR, BUS_ADRERR);
	tdrv_fail_from(e->td, -1);
	/* the other pages of the range are fine */
	ut_ok8(p, 9 * ut_page(), 40, "the pages before the poisoned one");
	still_works(e, ctx, "the SIGBUS");
	munmap(p, LEN);
}

static void all_cases(struct env *e, const char *ctx)
{
	tdrv_app_thread();
	install();
	outside(e, ctx);
	for (enum where w = W_SYS; w <= W_PRIV; w++) {
		if (w == W_COH && !e->cd) {
			skip("%s: COHERENT devices need userfaultfd minor faults on shmem", ctx);
			continue;
		}
		protections(e, ctx, w, true);
		protections(e, ctx, w, false);
		past_end(e, ctx, w);
	}
	poisoned(e, ctx);
}

static void *thread_main(void *arg)
{
	all_cases(arg, "second thread");
	return NULL;
}

int main(void)
{
	struct uhmm_opts o = { .sz = sizeof(o), .fault_around = 4096 };
	struct env e;
	struct tdrv td;
	pthread_t t;

	ut_init(300);
	e.h = ut_open_opts(&o);
	e.pd = ut_psim(e.h, "private", 16 * UT_MiB);
	e.cd = ut_csim_try(e.h, "coherent", 16 * UT_MiB);
	e.td = &td;
	tdrv_add(e.h, &td, "faulty", 4 * UT_MiB, 1);
	e.scratch = ut_map(LEN);

	all_cases(&e, "main thread");
	if (pthread_create(&t, NULL, thread_main, &e))
		tap_bail("pthread_create");
	pthread_join(t, NULL);

	munmap(e.scratch, LEN);
	uhmm_close(e.h);
	tdrv_free(&td);
	return tap_done();
}
