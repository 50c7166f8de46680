/* SPDX-License-Identifier: MIT */
/*
 * A fault uhmm read before a change is not a reason to undo it.
 *
 * A thread blocked in a userfaultfd fault that takes a signal leaves the
 * wait, runs its handler and faults again: the kernel sends a second
 * message for the same access while uhmm still holds the first (profilers'
 * SIGPROF, libFuzzer's SIGALRM).  The first is served and the thread goes
 * on; what is left over must not undo what the program does next.  (Found
 * by fuzz_ops: a waited-for uhmm_prefetch succeeded with the page in
 * system memory.)
 *
 *  - private: a page on the test driver's device; a reader thread faults
 *    on it while the driver's copy_from_dev is held at a gate; SIGNALS
 *    signals make it fault again meanwhile, each a message uhmm queues;
 *    the gate opens, the reader gets its data, and the page goes back to
 *    the device at once, while the fault threads still work through the
 *    queue (a message of a page in place costs them a look at the
 *    mappings).  Once every fault is served, the page must be on the
 *    device, with its data.
 *  - exclusive: the same with a page a mirror holds alone
 *    (uhmm_make_exclusive), the gate in its callback: granted again after
 *    the reader got its data, the page stays held, and the mirror hears
 *    UHMM_EV_EXCLUSIVE once per access.
 * With fault_threads = 2 (the reader thread goes on reading while the
 * first fault is served) and = 1.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/syscall.h>

#include "private.h"

#define SIGNALS 16

static _Atomic int handled;
static size_t pg;
static _Atomic pid_t reader_tid;

static void on_signal(int sig)
{
	(void)sig;
	handled++;
}

struct job {
	uint8_t *p;
	uint64_t got;
};

static void *read_page(void *arg)
{
	struct job *j = arg;

	reader_tid = (pid_t)syscall(SYS_gettid);
	j->got = *(volatile uint64_t *)(void *)j->p;
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* SIGNALS signals to the reader in its fault; each takes it out of the
 * wait, and it faults again.  (Its handler may run later: ThreadSanitizer
 * defers it, and merges those of one kind.) */
static void signal_reader(void)
{
	for (int s = 0; s < SIGNALS; s++) {
		syscall(SYS_tgkill, getpid(), reader_tid, SIGUSR1);
		sleep_ms(10);
	}
}

/* its handler ran (not under ThreadSanitizer, which defers handlers of
 * signals taken in a blocking fault past the test's look) */
static void took_signals(const char *fmt, uint32_t fault_threads, int r)
{
	char what[96];

	snprintf(what, sizeof(what), fmt, fault_threads, r);
	if (UT_TSAN)
		skip("%s: ThreadSanitizer defers signal handlers", what);
	else
		ok(handled > 0, "%s (%d)", what, (int)handled);
}

/* every fault message served: the counter stops moving (up to 2 s) */
static void wait_faults(struct uhmm *h)
{
	uint64_t last = ut_stats(h).cpu_faults, now;

	for (int i = 0; i < 40; i++) {
		sleep_ms(50);
		now = ut_stats(h).cpu_faults;
		if (now == last)
			return;
		last = now;
	}
}

static void private_page(uint32_t fault_threads)
{
	struct uhmm *h = ut_open_priv(pg, fault_threads, 0);
	struct tdrv td;
	struct uhmm_dev *dev = tdrv_add(h, &td, "tdrv", 4 * UT_MiB, 0);
	int rounds = (int)ut_scaled(12, 3), id = ut_dev_id(dev), off_dev = 0, bad = 0, loc;
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);

	for (int r = 0; r < rounds; r++) {
		struct job rd = { p, 0 };
		pthread_t tr;
		uint64_t f0;
		int rc;
		char what[96];

		ut_fill64(p, pg, 30 + r);
		is_int(uhmm_migrate(h, p, pg, dev, 0), 0, "%u fault threads, round %d: to the device",
		       fault_threads, r);
		f0 = ut_stats(h).cpu_faults;
		handled = 0;
		reader_tid = 0;
		tdrv_gate_from(&td);
		tdrv_gate_close(&td);
		pthread_create(&tr, NULL, read_page, &rd);
		ok(tdrv_gate_wait_arrival(&td, 10), "%u fault threads, round %d: the fault's copy waits at the gate",
		   fault_threads, r);
		signal_reader();
		tdrv_gate_open(&td);
		pthread_join(tr, NULL);
		do
			rc = uhmm_migrate(h, p, pg, dev, 0);
		while (rc == -EAGAIN);
		ok(rd.got == ut_pat64(30 + r, 0), "%u fault threads, round %d: the reader got its data",
		   fault_threads, r);
		is_int(rc, 0, "%u fault threads, round %d: the page back to the device", fault_threads, r);
		took_signals("%u fault threads, round %d: the reader took signals in its fault", fault_threads, r);
		ok(ut_stats(h).cpu_faults > f0, "%u fault threads, round %d: its faults are counted",
		   fault_threads, r);
		wait_faults(h);
		loc = -2;
		uhmm_where(h, p, pg, &loc);
		if (loc == id)
			off_dev++;
		else
			bad++;
		is_int(loc, id, "%u fault threads, round %d: the page stays where the migration put it",
		       fault_threads, r);
		snprintf(what, sizeof(what), "%u fault threads, round %d: its data, read back",
			 fault_threads, r);
		ut_ok64(p, pg, 30 + r, what);
	}
	diag("private, %u fault threads: %d rounds on the device, %d brought home by a fault left over",
	     fault_threads, off_dev, bad);
	is_int(tdrv_gate_timeouts(&td), 0, "%u fault threads: the gate was opened by the test",
	       fault_threads);
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
	tdrv_free(&td);
}

/* ---- a page held by uhmm_make_exclusive ---- */

static pthread_mutex_t gate_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static int gate_closed, gate_waiting;
static _Atomic int heard;

/* the holder loses the page to the CPU and stops its device: here, at
 * the gate while it is closed (a grant is heard too, from the device) */
static void on_exclusive(struct uhmm_mirror *m, const struct uhmm_inval *inv)
{
	(void)m;
	if (inv->ev != UHMM_EV_EXCLUSIVE || inv->initiator)
		return;
	heard++;
	pthread_mutex_lock(&gate_mu);
	gate_waiting++;
	pthread_cond_broadcast(&gate_cv);
	for (int i = 0; gate_closed && i < 2000; i++) {
		pthread_mutex_unlock(&gate_mu);
		sleep_ms(10);
		pthread_mutex_lock(&gate_mu);
	}
	gate_waiting--;
	pthread_mutex_unlock(&gate_mu);
}

static void gate_set(int closed)
{
	pthread_mutex_lock(&gate_mu);
	gate_closed = closed;
	pthread_mutex_unlock(&gate_mu);
}

static int gate_arrived(void)
{
	int got;

	for (int i = 0; i < 1000; i++) {
		pthread_mutex_lock(&gate_mu);
		got = gate_waiting;
		pthread_mutex_unlock(&gate_mu);
		if (got)
			return 1;
		sleep_ms(10);
	}
	return 0;
}

static int held(struct uhmm_mirror *m, uint8_t *p)
{
	struct uhmm_pte pte;
	int rc = -EBUSY;

	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(m, p, pg, 0, &pte);
	return !rc && (pte.flags & UHMM_PTE_EXCLUSIVE);
}

static void exclusive_page(uint32_t fault_threads)
{
	struct uhmm *h = ut_open_priv(pg, fault_threads, 0);
	struct uhmm_dev *dev = ut_psim(h, "psim", 4 * UT_MiB);
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate2 = on_exclusive };
	struct uhmm_mirror *m = NULL;
	int rounds = (int)ut_scaled(12, 3), kept = 0, lost = 0;
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);

	is_int(uhmm_mirror_open(dev, &ops, NULL, &m), 0, "exclusive, %u fault threads: a mirror",
	       fault_threads);
	for (int r = 0; r < rounds; r++) {
		struct job rd = { p, 0 };
		pthread_t tr;
		int rc;

		ut_fill64(p, pg, 50 + r);
		is_int(uhmm_make_exclusive(m, p, pg), 0, "exclusive, %u fault threads, round %d: held",
		       fault_threads, r);
		handled = 0;
		heard = 0;
		reader_tid = 0;
		gate_set(1);
		pthread_create(&tr, NULL, read_page, &rd);
		ok(gate_arrived(), "exclusive, %u fault threads, round %d: the holder's callback waits",
		   fault_threads, r);
		signal_reader();
		gate_set(0);
		pthread_join(tr, NULL);
		ok(rd.got == ut_pat64(50 + r, 0), "exclusive, %u fault threads, round %d: the reader got its data",
		   fault_threads, r);
		rc = uhmm_make_exclusive(m, p, pg);
		is_int(rc, 0, "exclusive, %u fault threads, round %d: held again", fault_threads, r);
		took_signals("exclusive, %u fault threads, round %d: the reader took signals in its fault", fault_threads, r);
		wait_faults(h);
		if (held(m, p) && heard == 1)
			kept++;
		else
			lost++;
		is_int(heard, 1, "exclusive, %u fault threads, round %d: the holder lost it to the CPU once",
		       fault_threads, r);
		ok(held(m, p), "exclusive, %u fault threads, round %d: the page is still held", fault_threads, r);
		ut_ok64(p, pg, 50 + r, "exclusive: the data, read back (which takes it back)");
	}
	diag("exclusive, %u fault threads: %d rounds held, %d taken back by a fault left over",
	     fault_threads, kept, lost);
	uhmm_mirror_close(m);
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
}

int main(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	ut_init(120);
	pg = ut_page();
	private_page(2);
	private_page(1);
	exclusive_page(2);
	exclusive_page(1);
	return tap_done();
}
