/* SPDX-License-Identifier: MIT */
/*
 * The library's own threads run on stacks the program cannot migrate.  A
 * program that migrates "everything" (a range over the whole heap, or an
 * address it found in /proc/self/maps) must not be able to move the stack
 * of the thread that serves faults to a device-private page: that thread
 * would then fault on its own stack and wait for itself forever.  Every
 * thread uhmm_open starts is found through /proc/self/task (by its name,
 * "uhmm-..."), its stack
 * pointer read from /proc/self/task/TID/syscall, and a migration of the
 * pages around it must be -EFAULT (the library's memory is a hole to the
 * program) with nothing moved; the library still serves faults afterwards.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include "util.h"

#define MAX_TASKS 64

static int tasks(pid_t *tid, int max)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			tid[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

/* The library names its threads "uhmm-..." (a sanitizer starts its own). */
static bool library_thread(pid_t t)
{
	char path[64], comm[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/comm", t);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(comm, sizeof(comm), f))
		comm[0] = 0;
	fclose(f);
	return !strncmp(comm, "uhmm-", 5);
}

/*
 * A blocked thread's /proc/.../syscall line is "nr a1 .. a6 sp pc"; a
 * running one says "running".  Library threads spend their life blocked.
 */
static uintptr_t task_sp(pid_t t)
{
	char path[64], line[512], *f[9], *s;
	uintptr_t sp = 0;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", t);
	for (int tries = 0; tries < 200 && !sp; tries++) {
		FILE *fp = fopen(path, "r");
		int n = 0;

		if (!fp)
			return 0;
		if (fgets(line, sizeof(line), fp))
			for (s = strtok(line, " \n"); s && n < 9; s = strtok(NULL, " \n"))
				f[n++] = s;
		fclose(fp);
		if (n == 9)
			sp = strtoull(f[7], NULL, 16);
		else
			usleep(5000);
	}
	return sp;
}

int main(void)
{
	pid_t before[MAX_TASKS], after[MAX_TASKS];
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_dev *priv, *coh;
	int nb, na, loc, checked = 0, refused = 0, unmoved = 0;
	size_t len = 64 * ut_page();
	struct uhmm *h;
	char *buf;

	ut_init(60);
	nb = tasks(before, MAX_TASKS);
	h = ut_open();
	if (uhmm_dev_add_sim(h, "priv", UHMM_MEM_PRIVATE, 8 * UT_MiB, &priv))
		tap_bail("uhmm_dev_add_sim(PRIVATE) failed");
	/* COHERENT needs minor faults (absent under UHMM_DISABLE=all) */
	if (uhmm_dev_add_sim(h, "coh", UHMM_MEM_COHERENT, 8 * UT_MiB, &coh))
		coh = NULL;
	na = tasks(after, MAX_TASKS);
	if (!ok(nb > 0 && na > nb, "uhmm_open started threads (%d before, %d after)", nb, na))
		return tap_done();

	for (int i = 0; i < na; i++) {
		uintptr_t sp, page;

		if (!library_thread(after[i]))
			continue;
		sp = task_sp(after[i]);
		if (!sp)
			continue;
		checked++;
		page = sp & ~(uintptr_t)(ut_page() - 1);
		res.moved = 1;
		if (uhmm_migrate_ex(h, (void *)page, ut_page(), priv, 0, &res) == -EFAULT)
			refused++;
		if (coh && uhmm_migrate(h, (void *)page, ut_page(), coh, 0) != -EFAULT)
			refused--;
		if (res.moved == 0 && uhmm_where(h, (void *)page, ut_page(), &loc) == 0 &&
		    loc != ut_dev_id(priv) && (!coh || loc != ut_dev_id(coh)))
			unmoved++;
	}
	ok(checked >= 3, "found the stacks of the reader, worker and fault threads (%d)", checked);
	is_int(refused, checked, "migrating a library thread's stack is -EFAULT, to either device");
	is_int(unmoved, checked, "nothing of those stacks moved");

	/* the fault thread is alive and well: pages come back from the device */
	buf = ut_map(len);
	ut_fill64(buf, len, 7);
	is_int(uhmm_migrate(h, buf, len, priv, 0), 0, "a program buffer still migrates");
	is_int(ut_check64(buf, len, 7), SIZE_MAX, "and faults back intact");
	munmap(buf, len);
	uhmm_close(h);
	return tap_done();
}
