/* SPDX-License-Identifier: MIT */
/*
 * A process that ends with pages on devices and a context open leaves
 * nothing behind, however it ends; and within a process, uhmm_close leaves
 * no thread and no descriptor of the library's.
 *
 * Children (this program again, exec'd, in a process group of their own)
 * open a context with three fault threads, put pages on a PRIVATE and a
 * COHERENT simulated device, fault some home, run a prefetch (the
 * prefetcher thread) and answer a reader of their counters (the
 * publisher thread), then
 *   (a) return from main, (b) exit(), (c) _exit(), (d) get SIGKILL,
 *   (e) get SIGTERM with its default action.
 * Each must end promptly (no hang in atexit handlers or destructors)
 * with the status it chose.  Afterwards:
 *  - its counters file: gone at once after return and exit() (README: "the
 *    file goes at uhmm_close and at exit"); after _exit, SIGKILL and
 *    SIGTERM, removed by the next reader that finds it (uhmm_proc_list,
 *    uhmm_proc_open: -ESRCH), as uhmm.h says;
 *  - the same with the default directory, /dev/shm/uhmm-UID: no file of
 *    the child there, and nothing else of uhmm's in /dev/shm;
 *  - nothing of the child survives (its process group is empty): the
 *    library's other files are memfds (the simulated devices, the
 *    poisoned-page stand-in) and the userfaultfd, which go with the last
 *    process holding them, and this process holds none;
 *  - its TMPDIR is empty (the library makes no temporary files).
 * In this process, over several uhmm_open/uhmm_close cycles (one and four
 * fault threads, after the prefetcher, the publisher, the trace and a
 * mirror were used), the threads in /proc/self/task and the descriptors
 * in /proc/self/fd are what they were before the first uhmm_open.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <sys/stat.h>
#include <time.h>

#include "private.h"

#define LEN	(2 * UT_MiB)

/* ---- the child ------------------------------------------------------------ */

static int child_main(const char *mode, int ready_fd, int go_fd)
{
	struct uhmm_opts o = { .sz = sizeof(o), .fault_threads = 3 };
	struct uhmm *h = NULL;
	struct uhmm_dev *pd = NULL, *cd = NULL;
	struct uhmm_proc *pr = NULL;
	uint8_t *a, *b, *c;
	uint64_t ticket = 0;
	volatile uint8_t sink;
	char ch = 'r';
	int rc;

	if (uhmm_open(&h, &o))
		ch = 'o';
	else if (uhmm_dev_add_sim(h, "exit-private", UHMM_MEM_PRIVATE, 16 * UT_MiB, &pd))
		ch = 'p';
	/* no COHERENT device where the kernel cannot have them (-ENOSYS) */
	else if ((rc = uhmm_dev_add_sim(h, "exit-coherent", UHMM_MEM_COHERENT, 16 * UT_MiB,
					&cd)) && rc != -ENOSYS)
		ch = 'c';
	a = ut_map(LEN);
	b = ut_map(LEN);
	c = ut_map(LEN);
	ut_fill8(a, LEN, 1);
	ut_fill8(b, LEN, 2);
	ut_fill8(c, LEN, 3);
	if (ch == 'r' && uhmm_migrate(h, a, LEN, pd, 0))
		ch = 'm';
	if (ch == 'r' && cd && uhmm_migrate(h, b, LEN, cd, 0))
		ch = 'M';
	/* the prefetcher thread; then a fault or two of PRIVATE pages home */
	if (ch == 'r' && (uhmm_prefetch(h, c, LEN, pd, 0, &ticket) ||
			  uhmm_wait(h, ticket, -1)))
		ch = 'f';
	sink = a[0];
	sink = a[LEN / 2];
	(void)sink;
	/* the publisher answers a reader */
	if (ch == 'r' && !uhmm_proc_open(getpid(), 1, &pr)) {
		uhmm_proc_refresh(pr, 5000);
		uhmm_proc_close(pr);
	}
	if (write(ready_fd, &ch, 1) != 1)
		_exit(70);
	if (!strcmp(mode, "kill") || !strcmp(mode, "term"))
		for (;;)
			pause();
	if (read(go_fd, &ch, 1) != 1)
		_exit(71);
	if (!strcmp(mode, "_exit"))
		_exit(9);
	if (!strcmp(mode, "exit"))
		exit(8);
	return 7;	/* "return": from main, with the context open */
}

/* ---- the parent ----------------------------------------------------------- */

static char base[4096], statdir[4200], tmpdir[4200];

static int count_prefix(const char *d, const char *pfx)
{
	DIR *dd = opendir(d);
	struct dirent *e;
	int n = 0;

	if (!dd)
		return -1;
	while ((e = readdir(dd)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..") &&
		     !strncmp(e->d_name, pfx, strlen(pfx));
	closedir(dd);
	return n;
}

static int files_of(const char *d, pid_t pid)
{
	char pfx[32];

	snprintf(pfx, sizeof(pfx), "%d.", (int)pid);
	return count_prefix(d, pfx);
}

static int entries(const char *d)
{
	return count_prefix(d, "");
}

/* Entries of /dev/shm with "uhmm" in their name, but our own directory. */
static int shm_uhmm_entries(void)
{
	char own[64];
	DIR *dd = opendir("/dev/shm");
	struct dirent *e;
	int n = 0;

	if (!dd)
		return 0;
	snprintf(own, sizeof(own), "uhmm-%u", (unsigned)geteuid());
	while ((e = readdir(dd)))
		n += strstr(e->d_name, "uhmm") && strcmp(e->d_name, own);
	closedir(dd);
	return n;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static unsigned slow(void)
{
	return UT_TSAN ? 4 : UT_SANITIZED ? 3 : 1;
}

struct kid {
	pid_t pid;
	int go_fd;
	char ready;
	int threads, memfds;
};

static int count_dir(const char *path)
{
	return entries(path);
}

/* Descriptors of pid that are memfds. */
static int memfds_of(pid_t pid)
{
	char d[64], p[4200], link[4096];
	DIR *dd;
	struct dirent *e;
	int n = 0;

	snprintf(d, sizeof(d), "/proc/%d/fd", (int)pid);
	dd = opendir(d);
	if (!dd)
		return -1;
	while ((e = readdir(dd))) {
		ssize_t k;

		snprintf(p, sizeof(p), "%s/%s", d, e->d_name);
		k = readlink(p, link, sizeof(link) - 1);
		if (k <= 0)
			continue;
		link[k] = '\0';
		n += !strncmp(link, "/memfd:", 7);
	}
	closedir(dd);
	return n;
}

static struct kid spawn(const char *self, const char *mode, bool default_dir)
{
	int rp[2], gp[2];
	struct kid k = { 0, -1, 0, 0, 0 };
	struct pollfd pf;
	char rbuf[16], gbuf[16], task[64];

	if (pipe(rp) || pipe(gp))
		tap_bail("pipe: %s", strerror(errno));
	fflush(NULL);
	k.pid = fork();
	if (k.pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (k.pid == 0) {
		setpgid(0, 0);
		close(rp[0]);
		close(gp[1]);
		if (default_dir)
			unsetenv("UHMM_STAT_DIR");
		setenv("TMPDIR", tmpdir, 1);
		snprintf(rbuf, sizeof(rbuf), "%d", rp[1]);
		snprintf(gbuf, sizeof(gbuf), "%d", gp[0]);
		execl(self, self, "child", mode, rbuf, gbuf, (char *)NULL);
		_exit(127);
	}
	setpgid(k.pid, k.pid);	/* whichever runs first */
	close(rp[1]);
	close(gp[0]);
	k.go_fd = gp[1];
	pf = (struct pollfd){ rp[0], POLLIN, 0 };
	if (poll(&pf, 1, (int)(60000 * slow())) != 1 || read(rp[0], &k.ready, 1) != 1)
		k.ready = 0;
	close(rp[0]);
	snprintf(task, sizeof(task), "/proc/%d/task", (int)k.pid);
	k.threads = count_dir(task);
	k.memfds = memfds_of(k.pid);
	return k;
}

/* Wait for the child, at most limit seconds; its status, or -1 (killed). */
static int reap(pid_t pid, double limit, double *took)
{
	double t0 = now_s();
	int st = 0;

	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			tap_bail("waitpid: %s", strerror(errno));
		if (now_s() - t0 > limit) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			*took = now_s() - t0;
			return -1;
		}
		usleep(5000);
	}
	*took = now_s() - t0;
	return st;
}

static void one_end(const char *self, const char *mode, bool default_dir)
{
	char dshm[64], what[160];
	const char *dir = statdir;
	struct kid k;
	double took = 0;
	int st, shm_before = shm_uhmm_entries();
	bool by_signal = !strcmp(mode, "kill") || !strcmp(mode, "term");
	bool clean_exit = !strcmp(mode, "return") || !strcmp(mode, "exit");

	snprintf(dshm, sizeof(dshm), "/dev/shm/uhmm-%u", (unsigned)geteuid());
	if (default_dir)
		dir = dshm;
	snprintf(what, sizeof(what), "%s%s", mode, default_dir ? " (default directory)" : "");
	/* the default directory is every process's: a file a killed process
	 * left there (not yet cleaned by a reader) may carry the pid the
	 * child is about to get */
	if (default_dir) {
		unsetenv("UHMM_STAT_DIR");
		uhmm_proc_list(0, NULL, 0);	/* a reader removes the dead's files */
		setenv("UHMM_STAT_DIR", statdir, 1);
	}
	k = spawn(self, mode, default_dir);
	if (!ok(k.ready == 'r', "%s: the child put pages on both devices and is ready", what)) {
		diag("child's answer: '%c' (o: open, p/c: device, m/M: migrate, f: prefetch)",
		     k.ready ? k.ready : '0');
		kill(-k.pid, SIGKILL);
		waitpid(k.pid, &st, 0);
		close(k.go_fd);
		return;
	}
	diag("%s: the child runs %d threads and holds %d memfds", what, k.threads, k.memfds);
	is_int(files_of(dir, k.pid), 1, "%s: while it runs its counters file is published", what);

	if (!strcmp(mode, "kill"))
		kill(k.pid, SIGKILL);
	else if (!strcmp(mode, "term"))
		kill(k.pid, SIGTERM);
	else if (write(k.go_fd, "g", 1) != 1)
		tap_bail("write: %s", strerror(errno));
	st = reap(k.pid, 20.0 * slow(), &took);
	close(k.go_fd);
	if (!ok(st != -1, "%s: the child ends promptly (%.2f s)", what, took))
		diag("killed after %.0f s: a hang in exit, atexit handlers or destructors?", took);
	if (!strcmp(mode, "kill"))
		ok(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL, "%s: killed by SIGKILL",
		   what);
	else if (!strcmp(mode, "term"))
		ok(st != -1 && WIFSIGNALED(st) && WTERMSIG(st) == SIGTERM,
		   "%s: killed by SIGTERM (its default action; status %#x)", what, st);
	else
		ok(st != -1 && WIFEXITED(st) &&
		   WEXITSTATUS(st) == (!strcmp(mode, "return") ? 7 : !strcmp(mode, "exit") ? 8 : 9),
		   "%s: the exit status it chose (status %#x)", what, st);

	if (clean_exit) {
		is_int(files_of(dir, k.pid), 0, "%s: its counters file went at exit", what);
	} else {
		int left = files_of(dir, k.pid);

		diag("%s: %d counters file(s) left for the next reader", what, left);
		if (by_signal && !strcmp(mode, "term") && left > 0 && !default_dir) {
			struct uhmm_proc *p = NULL;

			is_int(uhmm_proc_open(k.pid, 1, &p), -ESRCH,
			       "%s: uhmm_proc_open of the dead process's file: -ESRCH", what);
		} else {
			if (default_dir)
				unsetenv("UHMM_STAT_DIR");
			is_int(uhmm_proc_list(k.pid, NULL, 0), 0,
			       "%s: uhmm_proc_list does not list the dead process", what);
			if (default_dir)
				setenv("UHMM_STAT_DIR", statdir, 1);
		}
		is_int(files_of(dir, k.pid), 0, "%s: ... and the next reader removed its file",
		       what);
	}
	errno = 0;
	ok(kill(-k.pid, 0) == -1 && errno == ESRCH,
	   "%s: nothing of the child survives (its process group is empty)", what);
	is_int(entries(tmpdir), 0, "%s: no temporary file left in its TMPDIR", what);
	is_int(shm_uhmm_entries(), shm_before, "%s: nothing of uhmm's left in /dev/shm", what);
	is_int(memfds_of(getpid()), 0, "%s: this process holds no memfd of the child's", what);
}

/* ---- within one process ------------------------------------------------- */

static int threads_now(void)
{
	return entries("/proc/self/task");
}

/*
 * Threads that are not the library's (every thread of the library is named
 * "uhmm-..."): the program's own and the sanitizer's.  A joined thread
 * stays in /proc/self/task for a moment after pthread_join returns, so a
 * bare count taken just after a uhmm_close may still hold it; this count
 * never does.
 */
static int other_threads_now(void)
{
	int others = -1;

	ut_threads_scan("uhmm-", &others, false);
	return others;
}

/* The targets of /proc/self/fd, sorted, one per line (malloc'd). */
static char *fd_list(int *n)
{
	DIR *dd = opendir("/proc/self/fd");
	struct dirent *e;
	char *names[1024], *out;
	size_t len = 1;
	int k = 0, self = dd ? dirfd(dd) : -1;

	if (!dd)
		tap_bail("opendir /proc/self/fd");
	while ((e = readdir(dd)) && k < 1024) {
		char p[300], link[4096];
		ssize_t r;

		if (e->d_name[0] == '.' || atoi(e->d_name) == self)
			continue;
		snprintf(p, sizeof(p), "/proc/self/fd/%s", e->d_name);
		r = readlink(p, link, sizeof(link) - 1);
		link[r > 0 ? r : 0] = '\0';
		if (asprintf(&names[k], "%s -> %s", e->d_name, link) < 0)
			tap_bail("asprintf");
		len += strlen(names[k++]) + 1;
	}
	closedir(dd);
	for (int i = 1; i < k; i++)
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char *t = names[j];

			names[j] = names[j - 1];
			names[j - 1] = t;
		}
	out = malloc(len);
	out[0] = '\0';
	for (int i = 0; i < k; i++) {
		strcat(out, names[i]);
		strcat(out, "\n");
		free(names[i]);
	}
	*n = k;
	return out;
}

static void noop_inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m;
	(void)s;
	(void)e;
	(void)ev;
}

static void cycle(uint32_t fault_threads, uint8_t *a, uint8_t *b, uint8_t *c)
{
	struct uhmm_opts o = { .sz = sizeof(o), .fault_threads = fault_threads,
			       .fault_around = 4096 };
	struct uhmm_mirror_ops mo = { .sz = sizeof(mo), .invalidate = noop_inval };
	struct uhmm *h = ut_open_opts(&o);
	struct uhmm_dev *pd = ut_psim(h, "cyc-private", 16 * UT_MiB);
	struct uhmm_dev *cd = ut_csim_try(h, "cyc-coherent", 16 * UT_MiB);
	struct uhmm_mirror *m = NULL;
	struct uhmm_proc *pr = NULL;
	struct uhmm_trace_event ev[16];
	struct uhmm_pte pte[4];
	uint64_t ticket = 0, next = 0;
	unsigned bad = 0;

	ut_fill8(a, LEN, 5);
	ut_fill8(b, LEN, 6);
	ut_fill8(c, LEN, 7);
	uhmm_trace_start(h);
	bad |= !!uhmm_migrate(h, a, LEN, pd, 0) << 0;
	if (cd)
		bad |= !!uhmm_migrate(h, b, LEN, cd, 0) << 1;
	bad |= !!uhmm_prefetch(h, c, LEN, pd, 0, &ticket) << 2;
	bad |= !!uhmm_wait(h, ticket, -1) << 3;
	/* faults, served by fault_threads threads */
	bad |= (ut_check8(a, LEN, 5) != SIZE_MAX) << 4;
	bad |= (uhmm_trace_read(h, &next, ev, 16) <= 0) << 5;
	uhmm_trace_stop(h);
	/* the publisher answers a reader */
	{
		struct uhmm_proc_id ids[8];
		int n = uhmm_proc_list(getpid(), ids, 8);

		if (n > 0 && !uhmm_proc_open(getpid(), ids[n - 1].ctx, &pr)) {
			bad |= !!uhmm_proc_refresh(pr, 5000) << 6;
			uhmm_proc_close(pr);
		} else {
			bad |= 1u << 6;
		}
	}
	if (!uhmm_mirror_open(pd, &mo, NULL, &m)) {
		int rc;

		do
			rc = uhmm_range_fault(m, c, 4 * ut_page(), UHMM_FAULT_READ, pte);
		while (rc == -EBUSY);
		bad |= !!rc << 7;
		uhmm_mirror_close(m);
	} else {
		bad |= 1u << 8;
	}
	if (bad)
		diag("fault_threads %u: some work failed (bits %#x)", fault_threads, bad);
	uhmm_close(h);
	ut_ok8(c, LEN, 7, "the prefetched range after uhmm_close");
}

static void in_process(void)
{
	uint8_t *a = ut_map(LEN), *b = ut_map(LEN), *c = ut_map(LEN);
	int t0 = other_threads_now(), n0, n1;
	char *fds0 = fd_list(&n0), *fds1;

	for (int i = 0; i < 4; i++) {
		uint32_t ft = i & 1 ? 4 : 1;
		double until = now_s() + 2.0 * slow();
		int t1;

		cycle(ft, a, b, c);
		/* a joined thread leaves /proc/self/task a moment later */
		while ((t1 = threads_now()) != t0 && now_s() < until)
			usleep(1000);
		if (!ok(t1 == t0, "cycle %d (fault_threads %u): after uhmm_close, as many "
			"threads as before the first uhmm_open", i + 1, ft)) {
			diag("%d threads, want %d", t1, t0);
			ut_threads_scan("uhmm-", NULL, true);
		}
		fds1 = fd_list(&n1);
		if (!ok(!strcmp(fds0, fds1), "cycle %d (fault_threads %u): after uhmm_close, the "
			"same descriptors as before the first uhmm_open (%d)", i + 1, ft, n0))
			diag("before:\n%s# after:\n%s", fds0, fds1);
		free(fds1);
	}
	free(fds0);
	munmap(a, LEN);
	munmap(b, LEN);
	munmap(c, LEN);
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	char self[4096];
	ssize_t n;
	static const char *const modes[] = { "return", "exit", "_exit", "kill", "term" };

	if (argc == 5 && !strcmp(argv[1], "child"))
		return child_main(argv[2], atoi(argv[3]), atoi(argv[4]));

	ut_init(300);
	{
		/* skips the file where userfaultfd cannot be used */
		struct uhmm *h = ut_open();

		uhmm_close(h);
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		tap_bail("readlink /proc/self/exe");
	self[n] = '\0';
	snprintf(base, sizeof(base), "%s/uhmm-exit-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(base))
		tap_bail("mkdtemp: %s", strerror(errno));
	snprintf(statdir, sizeof(statdir), "%s/stat", base);
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", base);
	if (mkdir(statdir, 0700) || mkdir(tmpdir, 0700))
		tap_bail("mkdir: %s", strerror(errno));
	setenv("UHMM_STAT_DIR", statdir, 1);

	in_process();
	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++)
		one_end(self, modes[i], false);
	one_end(self, "return", true);
	one_end(self, "kill", true);

	rmdir(statdir);
	rmdir(tmpdir);
	rmdir(base);
	return tap_done();
}
