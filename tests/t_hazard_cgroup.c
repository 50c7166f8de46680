/* SPDX-License-Identifier: MIT */
/*
 * ARCHITECTURE hazard 7: device-resident pages are not charged to the
 * memory cgroup.  A child in a memory cgroup limited to 64 MiB, whose
 * device memory was allocated before it joined (as a real device's is:
 * not system memory at all): 24 MiB of its memory migrated to a PRIVATE
 * device leave the cgroup's usage (the pages are freed), 48 MiB more fit
 * beside them, and bringing the first 24 MiB back exceeds the limit: the
 * kernel's OOM killer kills the process.  This shows what happens; it is
 * no bug uhmm can fix (README, "Accounting").  Needs root and a memory
 * cgroup (v1 or v2) it may create; the sanitizers' shadow memory would
 * count against the limit, so the sanitized passes skip it.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/wait.h>

#include "private.h"

/* A migration may stage a copy (the write-protect fence does): 2 * PART
 * fits under the limit, PART + MORE does not */
#define LIMIT	(64 * UT_MiB)
#define PART	(24 * UT_MiB)
#define MORE	(48 * UT_MiB)

struct cg {
	char dir[512];
	bool v2;
};

static bool write_file(const char *dir, const char *name, const char *val)
{
	char path[600];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		return false;
	ok = fputs(val, f) >= 0;
	return fclose(f) == 0 && ok;
}

static long long read_num(const char *dir, const char *name)
{
	char path[600];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (f) {
		if (fscanf(f, "%lld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

/* A memory cgroup of our own under the one we are in, or false. */
static bool cg_make(struct cg *c, char *why, size_t wlen)
{
	char line[512], *rel = NULL;
	FILE *f = fopen("/proc/self/cgroup", "r");
	char lim[32];

	if (geteuid()) {
		snprintf(why, wlen, "creating a memory cgroup needs root");
		return false;
	}
	while (f && fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		if (strstr(line, ":memory:"))
			rel = strdup(strstr(line, ":memory:") + 8), c->v2 = false;
		else if (!strncmp(line, "0::", 3) && !rel)
			rel = strdup(line + 3), c->v2 = true;
	}
	if (f)
		fclose(f);
	if (!rel) {
		snprintf(why, wlen, "no memory cgroup in /proc/self/cgroup");
		return false;
	}
	snprintf(c->dir, sizeof(c->dir), "%s%s/uhmm-hazard7-%d",
		 c->v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory", rel, (int)getpid());
	free(rel);
	if (mkdir(c->dir, 0755)) {
		snprintf(why, wlen, "mkdir %s: %s", c->dir, strerror(errno));
		return false;
	}
	snprintf(lim, sizeof(lim), "%zu", (size_t)LIMIT);
	if (!write_file(c->dir, c->v2 ? "memory.max" : "memory.limit_in_bytes", lim)) {
		snprintf(why, wlen, "cannot set the limit in %s (memory controller off?)", c->dir);
		rmdir(c->dir);
		return false;
	}
	if (c->v2)
		write_file(c->dir, "memory.swap.max", "0");
	return true;
}

static long long usage(const struct cg *c)
{
	return read_num(c->dir, c->v2 ? "memory.current" : "memory.usage_in_bytes");
}

/* The child: reports usage before and after the migration, then goes on
 * until the OOM killer stops it (or it survives: status 0). */
static int child(const struct cg *c, int out)
{
	struct uhmm_opts o = { .sz = sizeof(o), .pool_bytes = SIZE_MAX };
	long long u[2];
	struct uhmm *h;
	struct uhmm_dev *d;
	uint8_t *a, *b;
	char pid[32];

	if (uhmm_open(&h, &o) || uhmm_dev_add_sim(h, "vram", UHMM_MEM_PRIVATE, 64 * UT_MiB, &d))
		return 20;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (!write_file(c->dir, "cgroup.procs", pid))
		return 21;
	a = ut_map(PART);
	memset(a, 1, PART);
	u[0] = usage(c);
	if (uhmm_migrate(h, a, PART, d, 0))
		return 22;
	/* the worker frees the old system pages off the caller's path */
	for (int i = 0; i < 500 && (u[1] = usage(c)) > u[0] - (long long)PART / 2; i++)
		usleep(10 * 1000);
	if (write(out, u, sizeof(u)) != sizeof(u))
		return 23;
	b = ut_map(MORE);
	memset(b, 2, MORE);			/* fits: the device pages are not charged */
	if (write(out, "b", 1) != 1)
		return 24;
	for (size_t i = 0; i < PART; i += ut_page())
		if (((volatile uint8_t *)a)[i] != 1)	/* comes home: charged again */
			return 25;
	return 0;
}

int main(void)
{
	char why[600];
	struct cg c;
	long long u[2] = { -1, -1 };
	char b = 0;
	int fds[2], st = 0;
	pid_t pid;

	ut_init(120);
	if (UT_SANITIZED) {
		skip("the sanitizer's shadow memory counts against the cgroup's limit");
		return tap_done();
	}
	if (!cg_make(&c, why, sizeof(why))) {
		skip("%s", why);
		return tap_done();
	}
	diag("cgroup %s (v%d), limit %zu MiB", c.dir, c.v2 ? 2 : 1, (size_t)(LIMIT >> 20));
	if (pipe(fds))
		tap_bail("pipe");
	fflush(NULL);
	pid = fork();
	if (pid == 0) {
		close(fds[0]);
		_exit(child(&c, fds[1]));
	}
	close(fds[1]);
	ok(read(fds[0], u, sizeof(u)) == sizeof(u), "the child migrated inside the cgroup");
	ok(u[0] - u[1] >= (long long)(PART * 3 / 4),
	   "24 MiB on the device left the cgroup's usage (%lld -> %lld KiB)", u[0] >> 10, u[1] >> 10);
	ok(read(fds[0], &b, 1) == 1 && b == 'b', "48 MiB more system memory fit beside them");
	waitpid(pid, &st, 0);
	close(fds[0]);
	ok(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL,
	   "bringing the device pages back exceeded the limit: the OOM killer killed it "
	   "(status %#x)", st);
	if (rmdir(c.dir))
		diag("rmdir %s: %s", c.dir, strerror(errno));
	return tap_done();
}
