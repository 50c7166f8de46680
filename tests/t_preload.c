/* SPDX-License-Identifier: MIT */
/*
 * libuhmm-preload.so under a program: this test execs itself with the
 * preload library and checks, from inside, that malloc and friends keep
 * their semantics while large blocks land on the devices (seen through
 * the published counters of the preload's own context, uhmm_proc_where):
 * no context before the first large allocation; calloc zeroed; realloc
 * keeps data both ways between glibc's blocks and the preload's; the
 * alignment functions align; the preferred device first, then the next,
 * then glibc's memory when none has room; freed blocks are reused and
 * give way to new ones; mprotect works on placed
 * memory; many threads allocate at once; a fork child gets a private
 * copy (with UHMM_FORK=nocopy, no access); an exec'd program gets the
 * preload again; UHMM_STATS; a bad configuration runs the program
 * without uhmm.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include "run.h"

#define DEVS "dev=sim:coherent:64M;spare=sim:private:32M"

static int dev_id, spare_id;

/* ---- looking at the preload's context from inside --------------------- */

static int contexts(void)
{
	return uhmm_proc_list(getpid(), NULL, 0);
}

static struct uhmm_proc *proc(void)
{
	struct uhmm_proc_id id;
	struct uhmm_proc *p = NULL;

	if (uhmm_proc_list(getpid(), &id, 1) < 1 || uhmm_proc_open(id.pid, id.ctx, &p))
		return NULL;
	return p;
}

/* Where most pages of [p, p + len) live (-9: could not tell). */
static int where(const void *ptr, size_t len)
{
	struct uhmm_proc *p = proc();
	size_t n = ut_npages(ptr, len), best = 0;
	int *loc = calloc(n, sizeof(int)), cnt[70] = { 0 }, which = -9;

	if (p && loc && !uhmm_proc_where(p, ut_pg_down(ptr), len, loc, 5000)) {
		for (size_t i = 0; i < n; i++) {
			int slot = loc[i] + 1;

			if (slot >= 0 && slot < 70 && (size_t)++cnt[slot] > best) {
				best = (size_t)cnt[slot];
				which = loc[i];
			}
		}
	}
	free(loc);
	uhmm_proc_close(p);
	return which;
}

/* pages_to_dev of device id, as its counters say now */
static long long placed_pages(int id)
{
	struct uhmm_proc *p = proc();
	struct uhmm_proc_info in = { .sz = sizeof(in) };
	long long n = -1;

	if (!p || uhmm_proc_refresh(p, 5000) || uhmm_proc_info(p, &in, NULL))
		return -1;
	for (unsigned i = 0; i < in.ndev; i++) {
		struct uhmm_dev_info d = { .sz = sizeof(d) };
		struct uhmm_stats st = { .sz = sizeof(st) };

		uhmm_proc_dev(p, i, &d, &st);
		if (d.id == id)
			n = (long long)st.pages_to_dev;
	}
	uhmm_proc_close(p);
	return n;
}

static void device_ids(void)
{
	struct uhmm_proc *p = proc();
	struct uhmm_proc_info in = { .sz = sizeof(in) };

	if (!p || uhmm_proc_refresh(p, 5000) || uhmm_proc_info(p, &in, NULL))
		tap_bail("the preload's context is not published");
	for (unsigned i = 0; i < in.ndev; i++) {
		struct uhmm_dev_info d = { .sz = sizeof(d) };

		uhmm_proc_dev(p, i, &d, NULL);
		if (!strcmp(d.name, "dev"))
			dev_id = d.id;
		if (!strcmp(d.name, "spare"))
			spare_id = d.id;
	}
	uhmm_proc_close(p);
	if (!dev_id || !spare_id)
		tap_bail("devices dev and spare not found in the preload's context");
}

/* ---- the checks ----------------------------------------------------------- */

static char *big_first(void)
{
	char *p;

	is_int(contexts(), 0, "no context before the first large allocation");
	p = malloc(4 * UT_MiB);
	ok(p && ((uintptr_t)p & (ut_page() - 1)) == 0, "malloc(4 MiB): a page-aligned block");
	is_int(contexts(), 1, "... and the preload's context exists now");
	device_ids();
	ut_fill8(p, 4 * UT_MiB, 1);
	is_int(where(p, 4 * UT_MiB), dev_id, "... its pages live on the preferred device");
	ok(malloc_usable_size(p) >= 4 * UT_MiB, "malloc_usable_size of a placed block");
	return p;
}

static void test_small_calloc(void)
{
	volatile size_t huge = SIZE_MAX / 2;	/* the compiler need not know */
	char *s = malloc(100), *z;
	size_t bad = 0;

	ok(s && malloc_usable_size(s) >= 100, "a small malloc is glibc's, usable size and all");
	free(s);
	free(NULL);
	z = calloc(1, 3 * UT_MiB);
	ok(z && ut_check_zero(z, 3 * UT_MiB) == SIZE_MAX && where(z, 3 * UT_MiB) == dev_id,
	   "calloc(3 MiB): zeros, placed");
	memset(z, 7, 3 * UT_MiB);
	free(z);
	z = calloc(3, UT_MiB);
	for (size_t i = 0; z && i < 3 * UT_MiB; i++)
		bad += z[i] != 0;
	ok(z && !bad, "calloc of a block freed with data in it: zeros again");
	free(z);
	errno = 0;
	ok(calloc(huge, 4) == NULL && errno == ENOMEM, "calloc overflow: NULL, ENOMEM");
	errno = 0;
	ok(reallocarray(NULL, huge, 4) == NULL && errno == ENOMEM,
	   "reallocarray overflow: NULL, ENOMEM");
	z = reallocarray(NULL, 512, 4096);
	ok(z && where(z, 2 * UT_MiB) == dev_id, "reallocarray(NULL, 512, 4096): a placed block");
	free(z);
}

static char *test_realloc(char *p)
{
	char *q, *s;

	q = realloc(p, 8 * UT_MiB);
	ok(q && ut_check8(q, 4 * UT_MiB, 1) == SIZE_MAX, "realloc 4 -> 8 MiB keeps the data");
	ok(q && where(q, 8 * UT_MiB) == dev_id, "... and the new block is placed");
	p = realloc(q, 6 * UT_MiB);
	ok(p == q && ut_check8(p, 4 * UT_MiB, 1) == SIZE_MAX, "realloc down to 6 MiB: in place");
	q = realloc(p, 100);
	ok(q && ut_check8(q, 100, 1) == SIZE_MAX, "realloc down to 100 bytes: the prefix kept");
	s = malloc(1000);
	ut_fill8(s, 1000, 2);
	p = realloc(s, 2 * UT_MiB);
	ok(p && ut_check8(p, 1000, 2) == SIZE_MAX && where(p, 2 * UT_MiB) == dev_id,
	   "realloc of a small block to 2 MiB: the data moves into a placed block");
	ok(realloc(p, 0) == NULL, "realloc(p, 0) frees and returns NULL");
	p = realloc(NULL, 2 * UT_MiB);
	ok(p && where(p, 2 * UT_MiB) == dev_id, "realloc(NULL, 2 MiB) is a malloc");
	free(p);
	return q;
}

static void test_align(void)
{
	void *q = NULL;
	char *r;

	ok(posix_memalign(&q, 4 * UT_MiB, 3 * UT_MiB) == 0 && q &&
	   ((uintptr_t)q & (4 * UT_MiB - 1)) == 0, "posix_memalign(4 MiB, 3 MiB): aligned");
	if (q) {
		ut_fill8(q, 3 * UT_MiB, 3);
		ok(ut_check8(q, 3 * UT_MiB, 3) == SIZE_MAX && where(q, 3 * UT_MiB) == dev_id,
		   "... all of it usable, placed");
		free(q);
	}
	is_int(posix_memalign(&q, 3, 2 * UT_MiB), EINVAL, "posix_memalign(3, ...): EINVAL");
	r = aligned_alloc(64, 2 * UT_MiB);
	ok(r && ((uintptr_t)r & 63) == 0 && where(r, 2 * UT_MiB) == dev_id,
	   "aligned_alloc(64, 2 MiB): aligned, placed");
	free(r);
	errno = 0;
	ok(aligned_alloc(3, 2 * UT_MiB) == NULL && errno == EINVAL,
	   "aligned_alloc(3, ...): EINVAL");
	r = memalign(8192, 2 * UT_MiB);
	ok(r && ((uintptr_t)r & 8191) == 0, "memalign(8192, 2 MiB): aligned");
	free(r);
	r = valloc(2 * UT_MiB);
	ok(r && ((uintptr_t)r & (ut_page() - 1)) == 0, "valloc: page aligned");
	free(r);
	r = pvalloc(2 * UT_MiB + 1);
	ok(r && malloc_usable_size(r) >= 2 * UT_MiB + ut_page(), "pvalloc rounds up to pages");
	free(r);
}

static void test_full(void)
{
	char *a = malloc(24 * UT_MiB), *b = malloc(24 * UT_MiB), *c, *d;
	long long spare0 = placed_pages(spare_id);

	c = malloc(24 * UT_MiB);
	d = malloc(24 * UT_MiB);
	if (!a || !b || !c || !d)
		tap_bail("malloc 24 MiB");
	memset(a, 1, 24 * UT_MiB);
	memset(b, 2, 24 * UT_MiB);
	memset(c, 3, 24 * UT_MiB);
	memset(d, 4, 24 * UT_MiB);
	ok(where(a, 24 * UT_MiB) == dev_id && where(b, 24 * UT_MiB) == dev_id,
	   "two 24 MiB blocks fit the preferred 64 MiB device");
	is_int(placed_pages(spare_id) - spare0, 24 * UT_MiB / ut_page(),
	       "the third goes to the next device with room (the 32 MiB private one)");
	is_int(where(c, 24 * UT_MiB), UHMM_LOC_SYSTEM,
	       "... from where the CPU's writes brought it home");
	is_int(where(d, 24 * UT_MiB), UHMM_LOC_SYSTEM, "the fourth: glibc's memory");
	ok(a[5] == 1 && b[5] == 2 && c[5] == 3 && d[24 * UT_MiB - 1] == 4,
	   "all four hold their data");
	free(a);
	free(b);
	free(c);
	free(d);
	/* a and b are kept for reuse on dev: they must not keep a larger
	 * block off it */
	a = malloc(40 * UT_MiB);
	if (!a)
		tap_bail("malloc 40 MiB");
	memset(a, 5, 40 * UT_MiB);
	is_int(where(a, 40 * UT_MiB), dev_id,
	       "freed blocks kept for reuse give way to a block that needs their room");
	free(a);
}

static void test_keep(void)
{
	char *p = malloc(4 * UT_MiB), *q;

	memset(p, 8, 4 * UT_MiB);
	free(p);
	q = malloc(3 * UT_MiB + 100);
	ok(q == p && where(q, 3 * UT_MiB) == dev_id,
	   "a freed block is reused for the next allocation of about its size, still placed");
	free(q);
	q = calloc(1, 4 * UT_MiB);
	ok(q == p && ut_check_zero(q, 4 * UT_MiB) == SIZE_MAX,
	   "... and calloc's reuse reads zeros");
	free(q);
}

static void write_one(void *arg)
{
	*(volatile char *)arg = 1;
}

static void test_mprotect(char *p)
{
	char *q = malloc(2 * UT_MiB);
	int st;

	memset(q, 5, 2 * UT_MiB);
	ok(mprotect(q, 2 * UT_MiB, PROT_READ) == 0, "mprotect(PROT_READ) of a placed block");
	st = ut_child(write_one, q);
	is_int(st, SIGSEGV, "... a write to it faults (in a fork child)");
	ok(mprotect(q, 2 * UT_MiB, PROT_READ | PROT_WRITE) == 0, "mprotect back to read-write");
	q[7] = 6;
	ok(q[7] == 6 && q[8] == 5 && where(q, 2 * UT_MiB) == dev_id,
	   "... writes work, still placed");
	errno = 0;
	ok(mprotect(q + 1, 4096, PROT_READ) == -1 && errno == EINVAL,
	   "mprotect of an unaligned address: EINVAL, as the kernel says");
	{
		char *m = ut_map(4 * ut_page());

		ok(mprotect(m, 4 * ut_page(), PROT_READ) == 0,
		   "mprotect of memory not ours goes straight to the kernel");
		munmap(m, 4 * ut_page());
	}
	free(q);
	(void)p;
}

struct worker { unsigned seed; int bad; };

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	unsigned s = w->seed;
	int rounds = (int)ut_scaled(60, 10);

	for (int i = 0; i < rounds; i++) {
		size_t n = 256 * UT_KiB + (rand_r(&s) % (3 * UT_MiB));
		char *p = malloc(n), *q;

		if (!p) {
			w->bad++;
			continue;
		}
		ut_fill8(p, n, w->seed + (unsigned)i);
		q = realloc(p, n + (rand_r(&s) % UT_MiB));
		if (!q || ut_check8(q, n, w->seed + (unsigned)i) != SIZE_MAX)
			w->bad++;
		free(q);
	}
	return NULL;
}

static void test_threads(void)
{
	struct worker w[8];
	pthread_t t[8];
	int bad = 0;

	for (int i = 0; i < 8; i++) {
		w[i].seed = 100 + (unsigned)i;
		w[i].bad = 0;
		pthread_create(&t[i], NULL, worker_main, &w[i]);
	}
	for (int i = 0; i < 8; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
	}
	is_int(bad, 0,
	       "8 threads malloc/realloc/free blocks of 256 KiB to 4 MiB at once: no data lost");
}

static void fork_child(void *arg)
{
	char *p = arg, *big;

	if (ut_check8(p, 4 * UT_MiB, 9) != SIZE_MAX)
		_exit(1);
	memset(p, 0xff, 4 * UT_MiB);	/* the parent must not see this */
	big = malloc(8 * UT_MiB);	/* no context in the child: glibc's */
	if (!big)
		_exit(2);
	memset(big, 1, 8 * UT_MiB);
	free(big);
	free(p);			/* the parent's block, a plain mapping here */
	_exit(0);
}

static void test_fork(void)
{
	char *p = malloc(4 * UT_MiB);
	int st;

	ut_fill8(p, 4 * UT_MiB, 9);
	st = ut_child(fork_child, p);
	is_int(st, 0, "a fork child sees the parent's placed block as it was, writes, "
	       "allocates and frees");
	ok(ut_check8(p, 4 * UT_MiB, 9) == SIZE_MAX,
	   "the parent's block is unchanged by the child's writes");
	is_int(where(p, 4 * UT_MiB), dev_id, "... and is back on its device after the fork");
	free(p);
}

static void test_exec(void)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *argv[] = { self, "exec-child", NULL };
	char stats[4400], *env_stats[] = { stats, NULL };
	char *env_bad[] = { "UHMM_DEVICES=bogus", NULL };
	char *nocopy[] = { self, "nocopy-child", NULL };
	char *env_nocopy[] = { "UHMM_FORK=nocopy", NULL };
	char *env_badfork[] = { "UHMM_FORK=sometimes", NULL };
	const char *err = rt_path("exec.err");
	int st;

	self[n > 0 ? n : 0] = '\0';
	snprintf(stats, sizeof(stats), "UHMM_STATS=%s", rt_path("stats"));
	st = rt_run(argv, NULL, NULL, err, NULL);
	is_int(st, 0,
	       "an exec'd program gets the preload and its own context: its block is placed");
	st = rt_run(argv, NULL, NULL, err, env_stats);
	ok(st == 0 && rt_grep(rt_path("stats"), "uhmm-dev pid=") &&
	   rt_grep(rt_path("stats"), "name=dev spec=sim:coherent:64M kind=coherent") &&
	   rt_grep(rt_path("stats"), "placed_bytes=4194304"),
	   "UHMM_STATS: the exec'd program wrote what it placed at exit");
	st = rt_run(argv, NULL, NULL, err, env_bad);
	if (!ok(st == 2 && rt_grep(err, "bad device spec 'bogus'") &&
		rt_grep(err, "running without uhmm"),
		"UHMM_DEVICES=bogus: says so and runs the program without uhmm"))
		rt_show(err);
	st = rt_run(argv, NULL, NULL, err, env_badfork);
	ok(st == 2 && rt_grep(err, "UHMM_FORK=sometimes: copy or nocopy"),
	   "UHMM_FORK=sometimes: says so and runs the program without uhmm");
	st = rt_run(nocopy, NULL, NULL, err, env_nocopy);
	is_int(st, 0, "UHMM_FORK=nocopy: a fork child finds the placed block inaccessible (SIGSEGV)");
}

static void read_one(void *arg)
{
	if (*(volatile char *)arg != 3)
		_exit(1);
}

/* argv[1] == "nocopy-child", under UHMM_FORK=nocopy: 0 if a fork child
 * finds a placed block inaccessible */
static int nocopy_child(void)
{
	char *p = malloc(4 * UT_MiB);

	memset(p, 3, 4 * UT_MiB);
	if (contexts() != 1)
		return 2;
	return ut_child(read_one, p) == SIGSEGV ? 0 : 1;
}

/* argv[1] == "exec-child": 0 if a 4 MiB block is placed, 2 if not */
static int exec_child(void)
{
	char *p = malloc(4 * UT_MiB);
	int w;

	memset(p, 1, 4 * UT_MiB);
	if (contexts() != 1)
		return 2;
	w = where(p, 4 * UT_MiB);
	free(p);
	return w >= 1 ? 0 : 1;
}

int main(int argc, char **argv)
{
	char *p;

	if (argc > 1 && !strcmp(argv[1], "exec-child"))
		return exec_child();
	if (argc > 1 && !strcmp(argv[1], "nocopy-child"))
		return nocopy_child();
	ut_init(300);
	if (!getenv("UHMM_T_PRELOAD")) {
		char env[5000];

		rt_init();
		rt_require_preload();
		rt_require_coherent();
		/* again, with the preload library under us */
		snprintf(env, sizeof(env), "%s", rt_lib);
		setenv("LD_PRELOAD", env, 1);
		setenv("UHMM_DEVICES", DEVS, 1);
		setenv("UHMM_STAT_DIR", rt_tmp, 1);
		setenv("UHMM_T_PRELOAD", rt_tmp, 1);
		unsetenv("UHMM_PREFER");
		unsetenv("UHMM_MIN_SIZE");
		unsetenv("UHMM_STATS");
		fflush(stdout);
		execv("/proc/self/exe", argv);
		tap_bail("exec: %s", strerror(errno));
	}
	snprintf(rt_tmp, sizeof(rt_tmp), "%s", getenv("UHMM_T_PRELOAD"));
	p = big_first();
	test_small_calloc();
	p = test_realloc(p);
	free(p);
	test_align();
	test_full();
	test_keep();
	test_mprotect(NULL);
	test_threads();
	test_fork();
	test_exec();
	rt_cleanup();
	return tap_done();
}
