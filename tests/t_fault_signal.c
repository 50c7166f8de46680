/* SPDX-License-Identifier: MIT */
/*
 * UHMM_OPEN_FAULT_SIGNAL: CPU faults served by the faulting thread in
 * uhmm's SIGBUS handler.
 *  - the features say so, and the kernel's own accesses are not served;
 *  - pages on a PRIVATE device come back on a CPU read and a CPU write,
 *    every byte right, counted as CPU faults, in system memory after;
 *  - four threads fault pages of one range at once;
 *  - write(2) from a buffer on the device fails with EFAULT, and works
 *    once the program has touched it;
 *  - a writer keeps writing while the range migrates back and forth (the
 *    fence: it waits in the handler): no write lost;
 *  - a SIGBUS that is none of uhmm's reaches the handler the program had
 *    before (a shared mapping past the end of its file), during the
 *    context's life and after uhmm_close;
 *  - a handler the program installs after uhmm_open passes uhmm's faults
 *    on with uhmm_fault_signal, which says false for anything else;
 *  - threads that served faults and exited give back what they kept for
 *    them: as many threads after them map nothing more;
 *  - two such contexts: each fault is served by the context whose page it
 *    is, and counted there;
 *  - more contexts than the handler serves: -EBUSY.
 */
#define _GNU_SOURCE
#include "private.h"

#define NT 4

static struct uhmm *open_signal(size_t fault_around)
{
	struct uhmm_opts o = { .sz = sizeof(o), .fault_around = fault_around,
			       .flags = UHMM_OPEN_FAULT_SIGNAL };

	return ut_open_opts(&o);
}

/* ---- the program's own handler, from before uhmm_open ----------------- */

static sigjmp_buf before_jb;
static volatile sig_atomic_t before_armed, before_calls;

static void before_handler(int sig, siginfo_t *si, void *uc)
{
	(void)si;
	(void)uc;
	before_calls++;
	if (!before_armed) {
		signal(sig, SIG_DFL);
		raise(sig);
		return;
	}
	before_armed = 0;
	siglongjmp(before_jb, 1);
}

static void install_before(void)
{
	struct sigaction sa = { .sa_sigaction = before_handler, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
}

/* A page of a shared mapping past the end of its (empty) file. */
static volatile uint8_t *past_eof(void)
{
	int fd = ut_tmpfile();
	void *p;

	if (fd < 0 || ftruncate(fd, 0))
		tap_bail("a temporary file");
	p = mmap(NULL, ut_page(), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		tap_bail("mmap of the file");
	return p;
}

/* Did a read of p reach the program's earlier handler? */
static int reaches_before(volatile uint8_t *p)
{
	int calls = before_calls;

	if (sigsetjmp(before_jb, 1))
		return before_calls == calls + 1;
	before_armed = 1;
	(void)*p;
	before_armed = 0;
	return 0;
}

/* ---- faults ------------------------------------------------------------- */

static void test_features(struct uhmm *h)
{
	uint64_t f = ut_feats(h);

	ok(f & UHMM_FEAT_FAULT_SIGNAL, "the context says it serves faults by signal");
	ok(!(f & UHMM_FEAT_KERNEL_FAULTS), "... and that the kernel's own accesses are not served");
}

static void test_read_write(struct uhmm *h, struct uhmm_dev *d)
{
	size_t len = 64 * ut_page();
	uint8_t *p = ut_map_aligned(len, UT_MiB * 2);
	struct uhmm_stats s0, s1;
	size_t bad = 0;

	ut_fill8(p, len, 11);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "migrate 64 pages to the PRIVATE device");
	s0 = ut_stats(h);
	/* last page first: no access looks sequential, so each is a fault
	 * of its own (fault_around is one page) */
	for (size_t i = len / ut_page() / 2; i-- > 0;)
		bad += ut_chk8(p + i * ut_page(), i * ut_page(), ut_page(), 11) != SIZE_MAX;
	is_int((long long)bad, 0, "a CPU read of every page of the first half: the bytes");
	for (size_t i = len / ut_page(); i-- > len / ut_page() / 2;)
		memset(p + i * ut_page(), 0x3c, ut_page());
	s1 = ut_stats(h);
	is_int((long long)(s1.cpu_faults - s0.cpu_faults), (long long)(len / ut_page()),
	       "every page was one CPU fault");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "after the faults");
	ok(ut_check8(p, len / 2, 11) == SIZE_MAX && p[len / 2] == 0x3c && p[len - 1] == 0x3c,
	   "the written half holds the writes, the read half its data");
	munmap(p, len);
}

struct faulter {
	pthread_t th;
	uint8_t *p;
	size_t first, n, bad;
};

static void *fault_pages(void *arg)
{
	struct faulter *f = arg;

	for (size_t i = f->first; i < f->first + f->n; i++)
		f->bad += ut_chk8(f->p + i * ut_page(), i * ut_page(), ut_page(), 12) != SIZE_MAX;
	return NULL;
}

static void test_threads(struct uhmm *h, struct uhmm_dev *d)
{
	size_t per = 64, len = NT * per * ut_page(), bad = 0;
	uint8_t *p = ut_map_aligned(len, UT_MiB * 2);
	struct faulter f[NT];

	ut_fill8(p, len, 12);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "migrate %zu pages for %d threads", len / ut_page(),
	       NT);
	for (int t = 0; t < NT; t++) {
		/* a quarter each, all faulting at once */
		f[t] = (struct faulter){ .p = p, .first = (size_t)t * per, .n = per };
		if (pthread_create(&f[t].th, NULL, fault_pages, &f[t]))
			tap_bail("pthread_create");
	}
	for (int t = 0; t < NT; t++) {
		pthread_join(f[t].th, NULL);
		bad += f[t].bad;
	}
	is_int((long long)bad, 0, "%d threads faulting at once read every page right", NT);
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "after the threads, every page");
	munmap(p, len);
}

/*
 * Threads that served a fault and exited, one after another: what each
 * kept for its faults goes with it.  The first ones fill the C library's
 * cache of thread stacks, which the later ones reuse: the process's size
 * stays put after them.
 */
static void test_threads_exit(struct uhmm *h, struct uhmm_dev *d)
{
	size_t n = 48, len = n * ut_page(), bad = 0;
	uint8_t *p = ut_map_aligned(len, ut_page());
	long before = 0, after;

	ut_fill8(p, len, 12);	/* what fault_pages checks */
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "migrate %zu pages for as many threads", n);
	for (size_t t = 0; t < n; t++) {
		struct faulter f = { .p = p, .first = t, .n = 1 };

		if (pthread_create(&f.th, NULL, fault_pages, &f))
			tap_bail("pthread_create");
		pthread_join(f.th, NULL);
		bad += f.bad;
		if (t == 15)
			before = ut_status_kb("VmSize");
	}
	after = ut_status_kb("VmSize");
	is_int((long long)bad, 0, "%zu threads, one after another, each faulted its page right", n);
	ok(after - before < (long)(n - 16) * 32,
	   "threads that exited gave back what they kept: later ones mapped nothing more "
	   "(VmSize %ld kB, then %ld kB)",
	   before, after);
	munmap(p, len);
}

static void test_kernel_access(struct uhmm *h, struct uhmm_dev *d)
{
	size_t len = 4 * ut_page();
	uint8_t *p = ut_map_aligned(len, ut_page());
	int fds[2];
	ssize_t n;

	if (pipe(fds))
		tap_bail("pipe");
	ut_fill8(p, len, 13);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "migrate 4 pages");
	n = write(fds[1], p, len);
	ok(n < 0 && errno == EFAULT, "write(2) from the device's pages: EFAULT (got %zd, %s)", n,
	   n < 0 ? strerror(errno) : "no error");
	ut_ok8(p, len, 13, "a CPU read after it: the data is all there");
	n = write(fds[1], p, len);
	is_int(n, (long long)len, "write(2) once the pages are back");
	close(fds[0]);
	close(fds[1]);
	munmap(p, len);
}

static volatile int stop_writer;

struct writer {
	uint64_t *p;
	size_t words;
	uint64_t rounds;
};

static void *write_loop(void *arg)
{
	struct writer *w = arg;

	while (!__atomic_load_n(&stop_writer, __ATOMIC_RELAXED)) {
		w->rounds++;
		for (size_t i = 0; i < w->words; i += 512)
			__atomic_store_n(&w->p[i], w->rounds, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_fence(struct uhmm *h, struct uhmm_dev *d)
{
	size_t len = 2 * UT_MiB, bad = 0;
	unsigned long moves = ut_scaled(40, 8);
	struct writer w = { .p = ut_map_aligned(len, 2 * UT_MiB), .words = len / 8 };
	pthread_t th;
	int errs = 0, first = 0;

	memset(w.p, 0, len);
	stop_writer = 0;
	if (pthread_create(&th, NULL, write_loop, &w))
		tap_bail("pthread_create");
	for (unsigned long i = 0; i < moves; i++) {
		int r = uhmm_migrate(h, w.p, len, i % 2 ? NULL : d, 0);

		if (r && !errs++)
			first = r;
	}
	__atomic_store_n(&stop_writer, 1, __ATOMIC_RELAXED);
	pthread_join(th, NULL);
	is_int(errs, 0, "%lu migrations under a writer (first error %s)", moves, ut_err(first));
	for (size_t i = 0; i < w.words; i += 512)
		bad += w.p[i] != w.rounds;
	is_int((long long)bad, 0, "every word holds the writer's last round (%llu)",
	       (unsigned long long)w.rounds);
	munmap(w.p, len);
}

/* ---- handlers ------------------------------------------------------------ */

static void test_not_ours(void)
{
	volatile uint8_t *p = past_eof();
	siginfo_t si;

	ok(reaches_before(p), "a SIGBUS of the program's own reaches the handler it had before");
	memset(&si, 0, sizeof(si));
	ok(!uhmm_fault_signal(NULL, NULL), "uhmm_fault_signal(NULL): not uhmm's");
	si.si_signo = SIGSEGV;
	si.si_code = SEGV_MAPERR;
	si.si_addr = (void *)p;
	ok(!uhmm_fault_signal(&si, NULL), "uhmm_fault_signal of a SIGSEGV: not uhmm's");
	si.si_signo = SIGBUS;
	si.si_code = BUS_ADRERR;
	ok(!uhmm_fault_signal(&si, NULL), "uhmm_fault_signal of a SIGBUS outside uhmm's ranges: "
	   "not uhmm's");
	munmap((void *)p, ut_page());
}

static sigjmp_buf after_jb;
static volatile sig_atomic_t after_calls, after_passed, after_armed;

static void after_handler(int sig, siginfo_t *si, void *uc)
{
	after_calls++;
	if (uhmm_fault_signal(si, uc)) {
		after_passed++;
		return;
	}
	if (after_armed) {
		after_armed = 0;
		siglongjmp(after_jb, 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static void test_own_handler(struct uhmm *h, struct uhmm_dev *d)
{
	struct sigaction sa = { .sa_sigaction = after_handler, .sa_flags = SA_SIGINFO | SA_NODEFER },
			 old;
	size_t len = 8 * ut_page();
	uint8_t *p = ut_map_aligned(len, ut_page());
	volatile uint8_t *bad = past_eof();
	int caught = 0;

	ut_fill8(p, len, 14);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "migrate 8 pages");
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, &old);
	ut_ok8(p, len, 14, "with the program's handler installed after uhmm_open, passing uhmm's "
	       "faults on: the data");
	ok(after_passed >= 1 && after_passed == after_calls,
	   "its handler saw the faults, and uhmm_fault_signal served them (%d of %d)",
	   (int)after_passed, (int)after_calls);
	if (sigsetjmp(after_jb, 1)) {
		caught = 1;
	} else {
		after_armed = 1;
		(void)*bad;
		after_armed = 0;
	}
	ok(caught, "a SIGBUS of its own stays the program's");
	sigaction(SIGBUS, &old, NULL);
	munmap((void *)bad, ut_page());
	munmap(p, len);
}

/* Two contexts serving faults by signal, each with its own range on its
 * own device: each fault goes to the context that manages the page. */
static void test_two_contexts(struct uhmm *h1, struct uhmm_dev *d1)
{
	struct uhmm *h2 = open_signal(ut_page());
	struct uhmm_dev *d2 = ut_psim(h2, "sig2", 8 * UT_MiB);
	size_t len = 32 * ut_page(), bad = 0;
	uint8_t *a = ut_map_aligned(len, ut_page()), *b = ut_map_aligned(len, ut_page());
	struct uhmm_stats s1 = ut_stats(h1), s2 = ut_stats(h2), e1, e2;

	ut_fill8(a, len, 15);
	ut_fill8(b, len, 16);
	is_int(uhmm_migrate(h1, a, len, d1, 0), 0, "two contexts: A to the first one's device");
	is_int(uhmm_migrate(h2, b, len, d2, 0), 0, "two contexts: B to the second one's device");
	/* in turns, last page first: every touch one fault */
	for (size_t i = len / ut_page(); i-- > 0;) {
		bad += ut_chk8(a + i * ut_page(), i * ut_page(), ut_page(), 15) != SIZE_MAX;
		bad += ut_chk8(b + i * ut_page(), i * ut_page(), ut_page(), 16) != SIZE_MAX;
	}
	e1 = ut_stats(h1);
	e2 = ut_stats(h2);
	is_int((long long)bad, 0, "two contexts: faults on both ranges in turns, every page right");
	is_int((long long)(e1.cpu_faults - s1.cpu_faults), (long long)(len / ut_page()),
	       "two contexts: the first counted its own faults alone");
	is_int((long long)(e2.cpu_faults - s2.cpu_faults), (long long)(len / ut_page()),
	       "two contexts: the second counted its own faults alone");
	ut_check_where(h1, a, len, UHMM_LOC_SYSTEM, "two contexts: A");
	ut_check_where(h2, b, len, UHMM_LOC_SYSTEM, "two contexts: B");
	uhmm_close(h2);
	munmap(a, len);
	munmap(b, len);
}

static void test_too_many(void)
{
	struct uhmm *hs[20];
	struct uhmm_opts o = { .sz = sizeof(o), .flags = UHMM_OPEN_FAULT_SIGNAL };
	int n = 0, r = 0;

	/* the test's own context holds one slot */
	while (n < 20 && !(r = uhmm_open(&hs[n], &o)))
		n++;
	is_int(r, -EBUSY, "a context beyond the ones the handler serves: -EBUSY (after %d more)", n);
	ok(n >= 8, "at least 8 contexts at once serve faults by signal (%d)", n);
	while (n--)
		uhmm_close(hs[n]);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d;
	volatile uint8_t *p;

	ut_init(300);
	install_before();
	h = open_signal(ut_page());
	if (!(ut_feats(h) & UHMM_FEAT_FAULT_SIGNAL)) {
		skip("the kernel lacks UFFD_FEATURE_SIGBUS");
		return tap_done();
	}
	d = ut_psim(h, "sig", 16 * UT_MiB);
	test_features(h);
	test_read_write(h, d);
	test_threads(h, d);
	test_threads_exit(h, d);
	test_kernel_access(h, d);
	test_fence(h, d);
	test_not_ours();
	test_own_handler(h, d);
	test_two_contexts(h, d);
	test_too_many();
	uhmm_close(h);
	p = past_eof();
	ok(reaches_before(p), "after uhmm_close the program's handler still gets its SIGBUS");
	munmap((void *)p, ut_page());
	return tap_done();
}
