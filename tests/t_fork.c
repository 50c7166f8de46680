/* SPDX-License-Identifier: MIT */
/*
 * The fork() contract of API.md.  A child sees every managed page as it
 * was at the fork, on whatever it lived (system memory, a COHERENT device,
 * a PRIVATE device, untouched on a device), with its protection; the
 * child's writes leave the parent's data alone and the parent's writes
 * after the fork do not reach the child; the child has no context and may
 * open its own.  With UHMM_OPEN_FORK_NOCOPY, device-resident pages are
 * inaccessible in the child (SIGSEGV) while system pages are its snapshot.
 * A fork while other threads write device-resident memory: every page the
 * child sees is whole.  posix_spawn and system() work beside it all.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>

#include "private.h"

#define LEN	(2 * UT_MiB)

extern char **environ;

struct region {
	uint8_t *p;
	int where;		/* its location in the parent */
	const char *name;
	unsigned seed;
};

static sigjmp_buf segv_jmp;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(segv_jmp, 1);
}

/* In the child: does this access fault? */
static bool faults(volatile uint8_t *p, bool write)
{
	struct sigaction sa = { .sa_handler = on_segv }, old;
	bool r = false;

	sigaction(SIGSEGV, &sa, &old);
	if (!sigsetjmp(segv_jmp, 1)) {
		if (write)
			p[0] = p[0];
		else
			(void)p[0];
	} else {
		r = true;
	}
	sigaction(SIGSEGV, &old, NULL);
	return r;
}

/* Regions on each kind of memory, managed and filled. */
static int setup(struct uhmm *h, struct uhmm_dev *pd, struct uhmm_dev *cd, struct region *r)
{
	int n = 0;

	r[n++] = (struct region){ ut_map(LEN), UHMM_LOC_SYSTEM, "system", 11 };
	r[n++] = (struct region){ ut_map(LEN), ut_dev_id(pd), "PRIVATE", 12 };
	if (cd)
		r[n++] = (struct region){ ut_map(LEN), ut_dev_id(cd), "COHERENT", 13 };
	for (int i = 0; i < n; i++) {
		struct uhmm_dev *to = i == 0 ? NULL : i == 1 ? pd : cd;

		ut_fill8(r[i].p, LEN, r[i].seed);
		if (uhmm_migrate(h, r[i].p, LEN, to, 0))
			tap_bail("migrate %s", r[i].name);
	}
	return n;
}

/* Child checks, one bit each; names for the parent's report. */
enum {
	C_SNAP0, C_SNAP1, C_SNAP2,	/* region i holds the fork's data */
	C_OWN0, C_OWN1, C_OWN2,		/* ... and then its own writes */
	C_DEVNONE,			/* NOCOPY: device pages fault */
	C_UNTOUCHED, C_RO_DATA, C_RO_WRITE,
	C_CTX_OPEN, C_CTX_DEV, C_CTX_MIGRATE, C_CTX_DATA, NCHECK
};

static const char *check_name[NCHECK] = {
	"region 0 snapshot", "region 1 snapshot", "region 2 snapshot",
	"region 0 own writes", "region 1 own writes", "region 2 own writes",
	"device pages inaccessible", "untouched device pages read zeros",
	"read-only device page's data", "read-only device page refuses writes",
	"a context of its own opens", "... adds a device", "... migrates its memory",
	"... and keeps its data",
};

static unsigned child(struct region *r, int n, uint8_t *untouched, uint8_t *ro, bool nocopy)
{
	unsigned bad = 0;

	for (int i = 0; i < n; i++) {
		if (nocopy && r[i].where != UHMM_LOC_SYSTEM) {
			bad |= !faults(r[i].p, false) << C_DEVNONE;
			continue;
		}
		bad |= (ut_check8(r[i].p, LEN, r[i].seed) != SIZE_MAX) << (C_SNAP0 + i);
		ut_fill8(r[i].p, LEN, r[i].seed + 100);
		bad |= (ut_check8(r[i].p, LEN, r[i].seed + 100) != SIZE_MAX) << (C_OWN0 + i);
	}
	if (!nocopy) {
		bad |= (ut_check_zero(untouched, LEN) != SIZE_MAX) << C_UNTOUCHED;
		bad |= (ut_check8(ro, ut_page(), 14) != SIZE_MAX) << C_RO_DATA;
		bad |= !faults(ro, true) << C_RO_WRITE;
	}
	if (UT_TSAN)
		return bad;	/* TSan starts no thread in such a child */
	{
		struct uhmm *h2 = NULL;
		struct uhmm_dev *d2 = NULL;
		uint8_t *q = r[0].p;		/* system memory in both modes */

		if (uhmm_open(&h2, NULL))
			return bad | 1u << C_CTX_OPEN;
		bad |= (uhmm_dev_add_sim(h2, "child", UHMM_MEM_PRIVATE, 8 * UT_MiB, &d2) != 0) << C_CTX_DEV;
		bad |= (d2 && uhmm_migrate(h2, q, LEN, d2, 0) != 0) << C_CTX_MIGRATE;
		bad |= (ut_check8(q, LEN, r[0].seed + 100) != SIZE_MAX) << C_CTX_DATA;
		uhmm_close(h2);
	}
	return bad;
}

/* fork(), run fn in the child, collect its check bits through a pipe. */
static unsigned run_child(unsigned (*fn)(void *), void *arg, int *status)
{
	unsigned bits = ~0u;
	int fds[2];
	pid_t pid;

	if (pipe(fds))
		tap_bail("pipe");
	fflush(NULL);
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		unsigned b = fn(arg);

		close(fds[0]);
		_exit(write(fds[1], &b, sizeof(b)) == sizeof(b) ? 0 : 1);
	}
	close(fds[1]);
	if (read(fds[0], &bits, sizeof(bits)) != sizeof(bits))
		bits = ~0u;
	close(fds[0]);
	waitpid(pid, status, 0);
	return bits;
}

struct contract_arg {
	struct region *r;
	int n;
	uint8_t *untouched, *ro;
	bool nocopy;
};

static unsigned contract_child(void *a)
{
	struct contract_arg *c = a;

	return child(c->r, c->n, c->untouched, c->ro, c->nocopy);
}

static void contract(bool nocopy)
{
	struct uhmm_opts o = { .sz = sizeof(o), .flags = nocopy ? UHMM_OPEN_FORK_NOCOPY : 0 };
	struct uhmm *h = ut_open_opts(&o);
	struct uhmm_dev *pd = ut_psim(h, "private", 32 * UT_MiB);
	struct uhmm_dev *cd = ut_csim_try(h, "coherent", 32 * UT_MiB);
	struct region r[3];
	uint8_t *untouched = ut_map(LEN), *ro = ut_map(ut_page());
	const char *mode = nocopy ? "FORK_NOCOPY" : "default";
	int n = setup(h, pd, cd, r), st = 0;
	struct contract_arg c = { r, n, untouched, ro, nocopy };
	struct uhmm_stats s0, s1;
	size_t staged, want;
	unsigned bits;

	uhmm_migrate(h, untouched, LEN, pd, 0);	/* untouched, on the device */
	ut_fill8(ro, ut_page(), 14);
	uhmm_migrate(h, ro, ut_page(), cd ? cd : pd, 0);
	mprotect(ro, ut_page(), PROT_READ);
	s0 = ut_stats(h);
	bits = run_child(contract_child, &c, &st);
	s1 = ut_stats(h);
	is_int(s1.forks - s0.forks, 1, "%s: the fork is counted", mode);
	/* the device regions and the read-only page; untouched device pages
	 * may be staged as zeros or left out */
	staged = s1.fork_bytes_staged - s0.fork_bytes_staged;
	want = nocopy ? 0 : (size_t)(n - 1) * LEN + ut_page();
	ok(staged >= want && staged <= (nocopy ? 0 : want + LEN),
	   "%s: fork_bytes_staged counts the device-resident bytes copied (%zu)", mode, staged);
	/* the parent writes after the fork: none of it may reach the child,
	 * which checked before it wrote (the child is gone by now) */
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child ran (status %#x)", mode, st);
	for (int k = 0; k < NCHECK; k++) {
		bool applies = k == C_DEVNONE ? nocopy :
			       (k >= C_SNAP0 && k <= C_OWN2) ? (k - C_SNAP0) % 3 < n &&
							       (!nocopy || (k - C_SNAP0) % 3 == 0) :
			       (k >= C_UNTOUCHED && k <= C_RO_WRITE) ? !nocopy : true;

		if (applies && k >= C_CTX_OPEN && UT_TSAN)
			skip("%s: in the child: %s: TSan cannot start threads in the child of a "
			     "multithreaded process", mode, check_name[k]);
		else if (applies)
			ok(!(bits & (1u << k)), "%s: in the child: %s", mode, check_name[k]);
	}
	for (int i = 0; i < n; i++) {
		/* where first: reading PRIVATE pages brings them home */
		ut_check_where(h, r[i].p, LEN, r[i].where, "the parent's placement after the fork");
		ok(ut_check8(r[i].p, LEN, r[i].seed) == SIZE_MAX,
		   "%s: %s: the parent's data is untouched by the child", mode, r[i].name);
	}
	if (!cd)
		skip("COHERENT devices need userfaultfd minor faults on shmem");
	for (int i = 0; i < n; i++)
		munmap(r[i].p, LEN);
	munmap(untouched, LEN);
	munmap(ro, ut_page());
	uhmm_close(h);
}

/* ---- a fork while threads write device-resident memory ---------------- */

struct writer {
	uint64_t *p;		/* its pages; each page's words equal */
	size_t npages;
	_Atomic int *stop;
};

static void *write_pages(void *arg)
{
	struct writer *w = arg;
	size_t words = ut_page() / 8;

	for (uint64_t v = 1; !atomic_load(w->stop); v++)
		for (size_t i = 0; i < w->npages; i++)
			for (size_t k = 0; k < words; k++)
				__atomic_store_n(&w->p[i * words + k], v, __ATOMIC_RELAXED);
	return NULL;
}

struct whole_arg {
	uint64_t *p;
	size_t npages;
};

/*
 * Memory as it was at one moment, as the kernel's fork gives it: each
 * writer sweeps its half page after page with one counter, so at any
 * moment its half holds one value or two adjacent ones (ahead of and
 * behind the page it is writing).  Returns the halves that hold more.
 */
static unsigned one_moment_child(void *a)
{
	struct whole_arg *w = a;
	size_t words = ut_page() / 8, half = w->npages / 2 * words;
	unsigned bad = 0;

	for (size_t h = 0; h < 2; h++) {
		uint64_t lo = UINT64_MAX, hi = 0;

		for (size_t k = h * half; k < (h + 1) * half; k++) {
			uint64_t v = w->p[k];

			lo = v < lo ? v : lo;
			hi = v > hi ? v : hi;
		}
		if (hi - lo > 1)
			fprintf(stderr, "# child: half %zu holds %" PRIu64 "..%" PRIu64 "\n",
				h, lo, hi);
		bad += hi - lo > 1;
	}
	return bad;
}

static void fork_while_writing(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_csim_try(h, "coherent", 32 * UT_MiB);
	uint64_t *p = ut_map(LEN);
	_Atomic int stop = 0;
	struct writer w[2];
	struct whole_arg a = { p, LEN / ut_page() };
	pthread_t t[2];
	int st = 0, forks = (int)ut_scaled(10, 2);
	unsigned bad = 0;

	if (!d)
		d = ut_psim(h, "private", 32 * UT_MiB);
	memset(p, 0, LEN);
	uhmm_migrate(h, p, LEN, d, 0);
	for (int i = 0; i < 2; i++) {
		/* one writer per half: a page's values come from one counter */
		w[i] = (struct writer){ p + (size_t)i * LEN / 16, LEN / 2 / ut_page(), &stop };
		pthread_create(&t[i], NULL, write_pages, &w[i]);
	}
	for (int i = 0; i < forks; i++) {
		bad += run_child(one_moment_child, &a, &st);
		bad += !WIFEXITED(st);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	is_int(bad, 0, "%d forks while two threads write device-resident pages: every child's "
	       "memory as it was at one moment", forks);
	munmap(p, LEN);
	uhmm_close(h);
}

/*
 * The fork takes the PTEs of COHERENT pages away (so that other threads'
 * stores wait): the parent's next reads are minor faults, whose aligned
 * window may span two mappings of the device's file (here: with different
 * protections).  The kernel continues
 * within one mapping only; a window it refused was served again for ever.
 */
static unsigned child_reads(void *a)
{
	struct whole_arg *w = a;

	return ut_check8(w->p, w->npages * ut_page(), 31) != SIZE_MAX;
}

static void fork_then_read_across_mappings(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_csim_try(h, "coherent", 8 * UT_MiB);
	size_t pg = ut_page(), len = 16 * pg;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
	struct whole_arg a = { (uint64_t *)(void *)p, 16 };
	struct ut_maps_acc m;
	unsigned bad;
	int st = 0;

	if (!d) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		uhmm_close(h);
		return;
	}
	ut_fill8(p, len, 31);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "16 pages to the device");
	/* two mappings: the upper half read-only */
	is_int(mprotect(p + len / 2, len / 2, PROT_READ), 0, "the upper half read-only");
	m = ut_maps_summary(p, len);
	ok(m.lines >= 2, "two mappings of the device's file (%ld)", m.lines);
	bad = run_child(child_reads, &a, &st);
	ok(!bad && WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child reads its copy");
	ut_ok8(p, len, 31, "the parent reads across both mappings after the fork");
	ut_check_where(h, p, len, ut_dev_id(d), "still on the device");
	munmap(p, len);
	uhmm_close(h);
}

static void spawn_beside(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_psim(h, "private", 16 * UT_MiB);
	uint8_t *p = ut_map(LEN);
	char *argv[] = { "true", NULL };
	int st = -1;
	struct uhmm_stats s0, s1;
	pid_t pid;

	ut_fill8(p, LEN, 21);
	uhmm_migrate(h, p, LEN, d, 0);
	s0 = ut_stats(h);
	is_int(posix_spawnp(&pid, "true", NULL, NULL, argv, environ), 0, "posix_spawn beside device pages");
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "... the program ran");
	st = system("exit 3");
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 3, "system() ran its command");
	s1 = ut_stats(h);
	ok(s1.forks == s0.forks && s1.fork_bytes_staged == s0.fork_bytes_staged,
	   "posix_spawn and system() are no fork for uhmm: nothing staged (%" PRIu64 " forks, %"
	   PRIu64 " bytes)", s1.forks - s0.forks, s1.fork_bytes_staged - s0.fork_bytes_staged);
	ut_check_where(h, p, LEN, ut_dev_id(d), "the parent's pages stayed on the device");
	ut_ok8(p, LEN, 21, "their data");
	munmap(p, LEN);
	uhmm_close(h);
}

int main(void)
{
	ut_init(300);
	contract(false);
	contract(true);
	fork_while_writing();
	fork_then_read_across_mappings();
	spawn_beside();
	return tap_done();
}
