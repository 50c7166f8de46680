/* SPDX-License-Identifier: MIT */
/*
 * Published counters (the uhmm_proc_* functions behind `uhmm stat`): every
 * context has its file in $UHMM_STAT_DIR while it is open; a reader sees
 * live values, placement page by page, the uhmm_alloc blocks and the
 * trace; the file goes at uhmm_close, at exit, and (found by the next
 * reader) after kill -9; UHMM_STAT_DIR=off publishes nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include "private.h"

static char dir[4096];

static int count_files(int pid)
{
	char pfx[32];
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	if (!d)
		return -1;
	snprintf(pfx, sizeof(pfx), "%d.", pid);
	while ((e = readdir(d)))
		n += !strncmp(e->d_name, pfx, strlen(pfx));
	closedir(d);
	return n;
}

/* The newest context of pid: its ctx number, or 0. */
static unsigned newest_ctx(int pid)
{
	struct uhmm_proc_id ids[64];
	int n = uhmm_proc_list(pid, ids, 64);

	return n > 0 ? ids[(n < 64 ? n : 64) - 1].ctx : 0;
}

static struct uhmm_proc *open_mine(void)
{
	struct uhmm_proc *p = NULL;
	unsigned ctx = newest_ctx(getpid());
	int rc = ctx ? uhmm_proc_open(getpid(), ctx, &p) : -ENOENT;

	if (rc)
		tap_bail("uhmm_proc_open(self, %u): %d (%s)", ctx, rc, ut_err(rc));
	return p;
}

static void test_args(void)
{
	struct uhmm_proc *p = NULL;
	struct uhmm_proc_info in = { .sz = sizeof(in) };
	struct uhmm_dev_info di = { .sz = sizeof(di) };
	uint64_t next = 0;
	int loc;

	is_int(uhmm_proc_list(-1, NULL, 0), -EINVAL, "proc_list(-1): -EINVAL");
	is_int(uhmm_proc_list(0, NULL, 3), -EINVAL, "proc_list(0, NULL, 3): -EINVAL");
	is_int(uhmm_proc_open(0, 1, &p), -EINVAL, "proc_open(pid 0): -EINVAL");
	is_int(uhmm_proc_open(getpid(), 0, &p), -EINVAL, "proc_open(ctx 0): -EINVAL");
	is_int(uhmm_proc_open(getpid(), 1, NULL), -EINVAL, "proc_open(..., NULL): -EINVAL");
	is_int(uhmm_proc_open(getpid(), 999999, &p), -ENOENT,
	       "proc_open of a context never published: -ENOENT");
	is_int(uhmm_proc_refresh(NULL, 0), -EINVAL, "proc_refresh(NULL): -EINVAL");
	is_int(uhmm_proc_info(NULL, &in, NULL), -EINVAL, "proc_info(NULL): -EINVAL");
	is_int(uhmm_proc_dev(NULL, 0, &di, NULL), -EINVAL, "proc_dev(NULL): -EINVAL");
	is_int(uhmm_proc_where(NULL, 0, 1, &loc, 0), -EINVAL, "proc_where(NULL): -EINVAL");
	is_int(uhmm_proc_allocs(NULL, NULL, NULL, 0), -EINVAL, "proc_allocs(NULL): -EINVAL");
	is_int(uhmm_proc_trace_read(NULL, &next, NULL, 0), -EINVAL,
	       "proc_trace_read(NULL): -EINVAL");
	uhmm_proc_close(NULL);
	ok(1, "proc_close(NULL) does nothing");
}

static void test_live(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_psim(h, "pubdev", 16 * UT_MiB);
	struct uhmm_proc_info in = { .sz = sizeof(in) };
	struct uhmm_dev_info di = { .sz = sizeof(di) };
	struct uhmm_stats st = { .sz = sizeof(st) }, dst = { .sz = sizeof(st) };
	size_t len = 64 * ut_page();
	char *buf = ut_map(len), *a1, *a2;
	uint64_t as[8], al[8];
	int *loc, *want, rc, id = ut_dev_id(d), same = 1;
	struct uhmm_proc *p;

	is_int(count_files(getpid()), 1, "an open context has its file in UHMM_STAT_DIR");
	p = open_mine();
	memset(buf, 1, len);
	if (uhmm_migrate(h, buf, len / 2, d, 0))
		tap_bail("migrate");
	a1 = uhmm_alloc(h, 3 * UT_MiB, d, 0);
	a2 = uhmm_alloc(h, 5 * ut_page(), NULL, 0);
	if (!a1 || !a2)
		tap_bail("uhmm_alloc");

	rc = uhmm_proc_refresh(p, 5000);
	is_int(rc, 0, "proc_refresh: the process answers");
	rc = uhmm_proc_info(p, &in, &st);
	ok(!rc && in.pid == getpid() && !strcmp(in.comm, "t_proc") && in.ndev == 1 &&
	   in.sample_ns >= in.start_ns && in.start_ns > 0,
	   "proc_info: pid, comm, one device, sample after start");
	is_int(st.pages_to_dev, len / 2 / ut_page() + 3 * UT_MiB / ut_page(),
	       "proc_info's counters: the pages migrated and placed so far");
	is_int(in.allocs, 2, "proc_info: two uhmm_alloc blocks");
	is_int(in.alloc_bytes, 3 * UT_MiB + 5 * ut_page(), "... of their bytes");
	is_int(in.pages_system, 5,
	       "pages_system: the managed pages in system memory (the system uhmm_alloc block)");
	rc = uhmm_proc_dev(p, 0, &di, &dst);
	ok(!rc && di.id == id && !strcmp(di.name, "pubdev") && di.kind == UHMM_MEM_PRIVATE &&
	   di.size == 16 * UT_MiB && di.used == len / 2 + 3 * UT_MiB,
	   "proc_dev: id, name, kind, size, bytes used on the device");
	is_int(dst.pages_to_dev, st.pages_to_dev, "proc_dev's counters: the device's share");
	is_int(uhmm_proc_dev(p, 1, &di, NULL), -ENOENT, "proc_dev past the last device: -ENOENT");

	rc = uhmm_proc_allocs(p, as, al, 8);
	ok(rc == 2 && as[0] < as[1] &&
	   ((as[0] == (uintptr_t)a1 && al[0] == 3 * UT_MiB) ||
	    (as[1] == (uintptr_t)a1 && al[1] == 3 * UT_MiB)),
	   "proc_allocs: both blocks, lowest address first");

	loc = calloc(64, sizeof(int));
	want = calloc(64, sizeof(int));
	rc = uhmm_proc_where(p, (uintptr_t)buf, len, loc, 5000);
	uhmm_where(h, buf, len, want);
	for (int i = 0; i < 64; i++)
		same &= loc[i] == want[i];
	ok(!rc && same && loc[0] == id && loc[63] == UHMM_LOC_SYSTEM,
	   "proc_where: the same locations as uhmm_where, device then system");
	is_int(uhmm_proc_where(p, 4096, 4096, loc, 5000), -EFAULT,
	       "proc_where of an unmapped range: -EFAULT");

	/* it goes on being live */
	if (uhmm_migrate(h, buf, len, d, 0))
		tap_bail("migrate");
	uhmm_proc_refresh(p, 5000);
	uhmm_proc_dev(p, 0, &di, NULL);
	is_int(di.used, len + 3 * UT_MiB, "a later refresh sees the later migration");

	uhmm_free(h, a1);
	uhmm_free(h, a2);
	uhmm_close(h);
	is_int(count_files(getpid()), 0, "uhmm_close removes the file");
	rc = uhmm_proc_refresh(p, 2000);
	is_int(rc, -ESRCH, "a refresh of a closed context: -ESRCH, not a wait");
	uhmm_proc_close(p);
	free(loc);
	free(want);
	munmap(buf, len);
}

static void test_trace_outside(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_psim(h, "tdev", 8 * UT_MiB);
	struct uhmm_proc *p = open_mine();
	static struct uhmm_trace_event ev[256];
	size_t len = 16 * ut_page();
	char *buf = ut_map(len);
	uint64_t next = 0;
	int n = 0, rc;

	memset(buf, 2, len);
	/* the first read attaches a reader there; the publisher does it when
	 * it wakes, so migrate until events come */
	for (int i = 0; i < 200 && n == 0; i++) {
		rc = uhmm_proc_trace_read(p, &next, ev, 256);
		if (rc < 0)
			tap_bail("proc_trace_read: %d", rc);
		uhmm_migrate(h, buf, len, i & 1 ? NULL : d, 0);
		usleep(10000);
		n = uhmm_proc_trace_read(p, &next, ev, 256);
	}
	ok(n > 0 && ev[0].type == UHMM_TRACE_MIGRATE && ev[0].cause == UHMM_CAUSE_MIGRATE &&
	   ev[0].addr == (uintptr_t)buf,
	   "proc_trace_read: a reader outside sees the migrations");
	uhmm_proc_close(p);
	/* detached at proc_close: the publisher drops the reader when it wakes */
	usleep(200000);
	{
		uint64_t n2 = 0;

		uhmm_migrate(h, buf, len, d, 0);
		uhmm_trace_start(h);
		/* only what the in-process reader sees from now on: nothing new
		 * was recorded between the close and the start */
		int k = uhmm_trace_read(h, &n2, ev, 256);
		uint64_t last = k > 0 ? ev[k - 1].seq : 0;

		uhmm_migrate(h, buf, len, NULL, 0);
		k = uhmm_trace_read(h, &n2, ev, 256);
		ok(k > 0 && ev[0].seq == last + 1,
		   "after proc_close nothing is recorded until a reader comes again");
		uhmm_trace_stop(h);
	}
	uhmm_close(h);
	munmap(buf, len);
}

/* ---- other processes ---------------------------------------------------- */

static void open_and_wait(int fd, bool do_close, bool hang)
{
	struct uhmm *h = NULL;
	char c = uhmm_open(&h, NULL) ? 'e' : 'r';

	if (write(fd, &c, 1) != 1)
		_exit(2);
	if (hang)
		pause();
	if (do_close)
		uhmm_close(h);
	exit(0);	/* exit without uhmm_close: the destructor cleans up */
}

static pid_t child(bool do_close, bool hang)
{
	int pfd[2];
	pid_t pid;
	char c = 0;

	if (pipe(pfd))
		tap_bail("pipe");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tap_bail("fork");
	if (pid == 0) {
		close(pfd[0]);
		open_and_wait(pfd[1], do_close, hang);
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) != 1 || c != 'r')
		tap_bail("child could not open a context");
	close(pfd[0]);
	return pid;
}

static void test_children(void)
{
	struct uhmm_proc *p = NULL;
	unsigned ctx;
	int st, rc;
	pid_t pid;

	pid = child(false, true);
	is_int(uhmm_proc_list(pid, NULL, 0), 1, "another process's context is listed");
	rc = uhmm_proc_open(pid, newest_ctx(pid), &p);
	is_int(rc, 0, "... and opened");
	if (!rc) {
		struct uhmm_proc_info in = { .sz = sizeof(in) };

		is_int(uhmm_proc_refresh(p, 5000), 0, "... and answers a refresh");
		uhmm_proc_info(p, &in, NULL);
		is_int(in.pid, pid, "... with its pid");
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	is_int(count_files(pid), 1, "after kill -9 its file is still there");
	if (p)
		is_int(uhmm_proc_refresh(p, 5000), -ESRCH,
		       "a refresh of the killed process: -ESRCH");
	uhmm_proc_close(p);
	is_int(uhmm_proc_list(pid, NULL, 0), 0, "proc_list does not list the dead process");
	is_int(count_files(pid), 0, "... and removed its file");

	pid = child(false, true);
	ctx = newest_ctx(pid);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	is_int(uhmm_proc_open(pid, ctx, &p), -ESRCH,
	       "proc_open of a killed process's file: -ESRCH");
	is_int(count_files(pid), 0, "... which it removed");

	pid = child(false, false);
	waitpid(pid, &st, 0);
	is_int(count_files(pid), 0, "exit() with a context open leaves no file");
	pid = child(true, false);
	waitpid(pid, &st, 0);
	is_int(count_files(pid), 0, "uhmm_close then exit: no file");
}

static void forked(void *arg)
{
	(void)arg;
	/* the child has no context; its exit must not remove the parent's */
	exit(0);
}

static void test_fork(void)
{
	struct uhmm *h = ut_open();

	ut_child(forked, NULL);
	is_int(count_files(getpid()), 1, "a fork child's exit leaves the parent's file alone");
	uhmm_close(h);
}

/* Readers on several threads while the process works. */
struct rthr { struct uhmm_proc *p; int bad; };

static void *refresher(void *arg)
{
	struct rthr *t = arg;
	int loc[16];

	for (int i = 0; i < 50; i++) {
		struct uhmm_dev_info di = { .sz = sizeof(di) };

		if (uhmm_proc_refresh(t->p, 5000) || uhmm_proc_dev(t->p, 0, &di, NULL) ||
		    di.used > di.size)
			t->bad++;
		if (uhmm_proc_where(t->p, 0, 4096, loc, 5000) != -EFAULT)
			t->bad++;
	}
	return NULL;
}

static void test_threads(void)
{
	struct uhmm *h = ut_open();
	struct uhmm_dev *d = ut_psim(h, "mt", 16 * UT_MiB);
	size_t len = 256 * ut_page();
	char *buf = ut_map(len);
	struct rthr t[3];
	pthread_t th[3];
	int bad = 0, err = 0;

	memset(buf, 3, len);
	for (int i = 0; i < 3; i++) {
		t[i].p = open_mine();
		t[i].bad = 0;
		pthread_create(&th[i], NULL, refresher, &t[i]);
	}
	for (int i = 0; i < 100; i++)
		err |= uhmm_migrate(h, buf, len, i & 1 ? NULL : d, 0);
	for (int i = 0; i < 3; i++) {
		pthread_join(th[i], NULL);
		bad += t[i].bad;
		uhmm_proc_close(t[i].p);
	}
	is_int(err, 0, "migrations go on while three threads read the counters");
	is_int(bad, 0, "every refresh and where answered, values sane");
	uhmm_close(h);
	munmap(buf, len);
}

static void test_off(void)
{
	struct uhmm *h;

	setenv("UHMM_STAT_DIR", "off", 1);
	h = ut_open();
	is_int(uhmm_proc_list(getpid(), NULL, 0), 0, "UHMM_STAT_DIR=off: nothing published");
	uhmm_close(h);
	setenv("UHMM_STAT_DIR", dir, 1);
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");

	ut_init(120);
	snprintf(dir, sizeof(dir), "%s/uhmm-stat-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		tap_bail("mkdtemp: %s", strerror(errno));
	setenv("UHMM_STAT_DIR", dir, 1);
	test_args();
	test_live();
	test_trace_outside();
	test_children();
	test_fork();
	test_threads();
	test_off();
	rmdir(dir);
	return tap_done();
}
