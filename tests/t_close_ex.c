/* SPDX-License-Identifier: MIT */
/*
 * uhmm_close_ex: flags 0 is uhmm_close (every page back, bit-exact);
 * UHMM_CLOSE_DISCARD, for a process about to exit, releases the devices
 * with their pages on them, leaves no thread behind, the memory can still
 * be read without a crash and the process exits cleanly, with pages on
 * PRIVATE and COHERENT devices; NULL and unknown flags are -EINVAL and
 * close nothing.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <sys/wait.h>

#include "private.h"

#define LEN	(4 * UT_MiB)

static int threads(void)
{
	DIR *d = opendir("/proc/self/task");
	int n = 0;

	for (struct dirent *e; d && (e = readdir(d));)
		n += e->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

static int discard_child(void)
{
	struct uhmm *h;
	struct uhmm_dev *pd, *cd;
	uint8_t *p = ut_map(LEN), *q = ut_map(LEN);
	int before = threads();

	if (uhmm_open(&h, NULL))
		return 10;
	if (uhmm_dev_add_sim(h, "p", UHMM_MEM_PRIVATE, 16 * UT_MiB, &pd))
		return 11;
	cd = NULL;
	uhmm_dev_add_sim(h, "c", UHMM_MEM_COHERENT, 16 * UT_MiB, &cd);
	memset(p, 1, LEN);
	memset(q, 2, LEN);
	if (uhmm_migrate(h, p, LEN, pd, 0) || (cd && uhmm_migrate(h, q, LEN, cd, 0)))
		return 12;
	if (uhmm_close_ex(h, UHMM_CLOSE_DISCARD))
		return 13;
	if (ut_threads_named_settled("uhmm-", 0) || threads() > before)
		return 14;	/* the library's threads are gone */
	/* whatever the memory reads now, it does not crash */
	(void)*(volatile uint8_t *)p;
	(void)*(volatile uint8_t *)q;
	return 0;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d;
	uint8_t *p;
	int st = -1;
	pid_t pid;

	ut_init(120);
	h = ut_open();
	d = ut_psim(h, "p", 16 * UT_MiB);
	p = ut_map(LEN);
	ut_fill64(p, LEN, 5);
	uhmm_migrate(h, p, LEN, d, 0);
	is_int(uhmm_close_ex(NULL, 0), -EINVAL, "uhmm_close_ex(NULL): -EINVAL");
	is_int(uhmm_close_ex(h, 0x80), -EINVAL, "unknown flags: -EINVAL");
	ut_check_where(h, p, LEN, ut_dev_id(d), "... and nothing was closed");
	is_int(uhmm_close_ex(h, 0), 0, "uhmm_close_ex(h, 0)");
	ut_ok64(p, LEN, 5, "flags 0 brought every page back, bit-exact");
	munmap(p, LEN);

	if (UT_TSAN) {
		skip("DISCARD in a child of a multithreaded process: TSan cannot start threads there");
		return tap_done();
	}
	fflush(NULL);
	pid = fork();
	if (pid == 0)
		_exit(discard_child());
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st), "DISCARD: the child exited (status %#x)", st);
	is_int(WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0,
	       "DISCARD with pages on PRIVATE and COHERENT devices: closed, no thread left, "
	       "memory readable (10-14: which step failed)");
	return tap_done();
}
