/* SPDX-License-Identifier: MIT */
/*
 * `uhmm stat`, `top`, `map` and `trace` against a live program under
 * `uhmm run` (this test in worker mode: an 8 MiB block placed on the
 * device, then a 70 MiB block allocated and freed every 20 ms): they see
 * its counters, its devices and placement page by page, its allocations
 * as they happen; its counters file goes when it exits, and after kill -9
 * the next `uhmm stat` removes it.  Bad arguments are refused.
 */
#define _GNU_SOURCE
#include <time.h>
#include "run.h"

static char dir[4200], ready[4300], stopf[4300];
static char *volatile keep;	/* so that the compiler keeps the malloc/free pairs */

static int worker(const char *readyf, const char *stop)
{
	char *buf = malloc(8 * UT_MiB);
	FILE *f;

	memset(buf, 1, 8 * UT_MiB);
	f = fopen(readyf, "w");
	if (!f)
		return 1;
	fprintf(f, "%p\n", (void *)buf);
	fclose(f);
	for (int i = 0; i < 3000 && access(stop, F_OK); i++) {
		/* more than the preload keeps of freed blocks: each is new */
		keep = malloc(70 * UT_MiB);
		memset(keep, 2, 4096);
		free(keep);
		usleep(20000);
	}
	free(buf);
	return 0;
}

/* Start a worker under uhmm run; its pid; *addr: its 8 MiB block. */
static pid_t start_worker(uintptr_t *addr)
{
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	pid_t pid;

	self[n > 0 ? n : 0] = '\0';
	unlink(ready);
	unlink(stopf);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int nul = open("/dev/null", O_RDWR);

		dup2(nul, 0);
		dup2(nul, 1);
		execl(rt_uhmm, rt_uhmm, "run", "--device", "sim:coherent:128M", "--", self,
		      "worker", ready, stopf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		FILE *f = fopen(ready, "r");
		void *p = NULL;

		if (f) {
			int got = fscanf(f, "%p", &p);

			fclose(f);
			if (got == 1) {
				*addr = (uintptr_t)p;
				return pid;
			}
		}
		usleep(10000);
	}
	tap_bail("the worker did not start");
}

static void stop_worker(pid_t pid)
{
	int st;
	FILE *f = fopen(stopf, "w");

	if (f)
		fclose(f);
	waitpid(pid, &st, 0);
}

static int files_of(pid_t pid)
{
	char pfx[32];
	struct dirent *e;
	DIR *d = opendir(dir);
	int n = 0;

	snprintf(pfx, sizeof(pfx), "%d.", (int)pid);
	while (d && (e = readdir(d)))
		n += !strncmp(e->d_name, pfx, strlen(pfx));
	if (d)
		closedir(d);
	return n;
}

/* uhmm ARGS...: status, stdout in out, stderr in err */
static int tool(const char *out, const char *err, const char *const args[])
{
	char *argv[16];
	int n = 0;

	argv[n++] = rt_uhmm;
	for (int i = 0; args[i] && n < 15; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	return rt_run(argv, NULL, out, err, NULL);
}

#define TOOL(out, err, ...) \
	({ const char *const a_[] = { __VA_ARGS__, NULL }; tool(out, err, a_); })

static int count_lines(const char *path, const char *with)
{
	char *s = rt_slurp(path);
	int n = 0;

	for (char *l = s ? strtok(s, "\n") : NULL; l; l = strtok(NULL, "\n"))
		n += strstr(l, with) != NULL;
	free(s);
	return n;
}

static void test_stat_top(pid_t pid)
{
	const char *out = rt_path("out"), *err = rt_path("err");
	char spid[32], want[64];
	int st;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)pid);
	st = TOOL(out, err, "stat", "--json", spid);
	ok(st == 0 && rt_grep(out, want) && rt_grep(out, "\"name\":\"sim0\"") &&
	   rt_json_num(out, "used") >= (long long)(8 * UT_MiB) &&
	   rt_json_num(out, "pages_to_dev") >= (long long)(8 * UT_MiB / ut_page()),
	   "uhmm stat --json PID: its device and the 8 MiB placed on it");
	st = TOOL(out, err, "stat", spid);
	snprintf(want, sizeof(want), "pid %d (t_tools)", (int)pid);
	ok(st == 0 && rt_grep(out, want) && rt_grep(out, "device 1 sim0") &&
	   rt_grep(out, "migrations:"), "uhmm stat PID: the same as text");
	snprintf(want, sizeof(want), "\"pid\":%d,", (int)pid);
	st = TOOL(out, err, "stat", "--json");
	ok(st == 0 && rt_grep(out, want), "uhmm stat --json: every process, this one among them");
	st = TOOL(out, err, "top", "--json", "-n", "3", "-d", "0.2", spid);
	ok(st == 0 && count_lines(out, want) == 3 && rt_grep(out, "\"migrations_per_s\":"),
	   "uhmm top --json -n 3: three refreshes with rates");
	st = TOOL(out, err, "top", "-n", "1", spid);
	ok(st == 0 && rt_grep(out, "PID CTX COMMAND") && rt_grep(out, "sim0"),
	   "uhmm top -n 1: the table");
}

static void test_map(pid_t pid, uintptr_t addr)
{
	const char *out = rt_path("out"), *err = rt_path("err"), *svg = rt_path("map.svg");
	char spid[32], saddr[32], hole[32];
	int st;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	snprintf(saddr, sizeof(saddr), "%#llx", (unsigned long long)addr);
	st = TOOL(out, err, "map", spid, saddr, "8M", "--svg", svg);
	ok(st == 0 && rt_grep(out, "2048 pages, 2 per character; 2048 on sim0") &&
	   rt_grep(out, "1 = device 1 sim0"), "uhmm map PID ADDR 8M: all 2048 pages on sim0");
	ok(rt_grep(svg, "<svg xmlns") && rt_grep(svg, "<rect") && rt_grep(svg, "device 1: sim0") &&
	   rt_grep(svg, "</svg>"), "... and --svg draws them, with a legend");
	st = TOOL(out, err, "map", spid);
	if (!ok(st == 0 && rt_grep(out, "on sim0"), "uhmm map PID: the allocations, without a range")) {
		diag("status %d; its output and errors:", st);
		rt_show(out);
		rt_show(err);
	}
	/* a range reaching past the block into unmapped space, maybe */
	snprintf(hole, sizeof(hole), "%#llx", (unsigned long long)(addr + 8 * UT_MiB - 4096));
	st = TOOL(out, err, "map", spid, hole, "4M");
	ok(st == 0 && rt_grep(out,
			      "1024 "
			      "pages"), "uhmm map of a range with holes: drawn, holes as such");
}

static void test_trace(pid_t pid)
{
	const char *out = rt_path("out"), *err = rt_path("err");
	char spid[32];
	int st;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	st = TOOL(out, err, "trace", spid, "--count", "3", "--json", "--duration", "20");
	if (!ok(st == 0 && count_lines(out, "\"type\":\"migrate\",\"cause\":\"alloc\"") == 3,
		"uhmm trace --count 3 --json: the program's placements as they happen, cause "
		"alloc"))
		rt_show(out);
	st = TOOL(out, err, "trace", spid, "--duration", "0.5");
	ok(st == 0 && rt_grep(out, "SEQ") && rt_grep(out, "migrate") && rt_grep(out, "alloc"),
	   "uhmm trace --duration: the same as text");
}

static void test_gone(void)
{
	const char *out = rt_path("out"), *err = rt_path("err");
	uintptr_t addr;
	pid_t pid = start_worker(&addr);
	char spid[32];
	int st;

	snprintf(spid, sizeof(spid), "%d", (int)pid);
	is_int(files_of(pid), 1, "a running worker has its counters file");
	stop_worker(pid);
	is_int(files_of(pid), 0, "... which is gone once it exited");
	st = TOOL(out, err, "stat", spid);
	ok(st == 1 && rt_grep(err, "does not use uhmm"), "uhmm stat of it then: exit 1, says so");

	pid = start_worker(&addr);
	snprintf(spid, sizeof(spid), "%d", (int)pid);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	is_int(files_of(pid), 1, "after kill -9 its file is still there");
	st = TOOL(out, err, "stat", spid);
	ok(st == 1 && files_of(pid) == 0, "uhmm stat finds it dead, removes it and exits 1");
}

/* The tool refused: exit `want`, and the case goes into docs/BAD_INPUTS.md
 * with the first line it printed. */
static void tool_refused(int st, int want, const char *needle, const char *what)
{
	const char *err = rt_path("err");
	char *text, *nl, *tmp;

	if (!ok(st == want && (!needle || rt_grep(err, needle)), "%s: exit %d%s%s", what, want,
		needle ? ", says " : "", needle ? needle : "")) {
		diag("exit %d", st);
		return;
	}
	text = rt_slurp(err);
	if (text && (nl = strchr(text, '\n')))
		*nl = 0;
	/* the same table on every run: no temporary directory in it */
	tmp = text ? strstr(text, rt_tmp) : NULL;
	if (tmp) {
		const char *rest = tmp + strlen(rt_tmp);

		memmove(tmp + 4, rest, strlen(rest) + 1);
		memcpy(tmp, "$TMP", 4);
	}
	bad_input_exit(want, text ? text : "", "%s", what);
	free(text);
}

static void test_bad_args(void)
{
	const char *out = rt_path("out"), *err = rt_path("err");

	tool_refused(TOOL(out, err, "stat", "abc"), 2, NULL, "uhmm stat abc");
	tool_refused(TOOL(out, err, "stat", "1", "2"), 2, NULL, "uhmm stat 1 2");
	tool_refused(TOOL(out, err, "top", "-d", "0"), 2, NULL, "uhmm top -d 0");
	tool_refused(TOOL(out, err, "top", "-n", "x"), 2, NULL, "uhmm top -n x");
	tool_refused(TOOL(out, err, "map"), 2, NULL, "uhmm map");
	tool_refused(TOOL(out, err, "map", "1", "0x1001", "4K"), 2, NULL,
		     "uhmm map 1 0x1001 4K (unaligned ADDR)");
	tool_refused(TOOL(out, err, "map", "1", "0x1000", "0"), 2, NULL, "uhmm map 1 0x1000 0");
	tool_refused(TOOL(out, err, "map", "1", "0x1000"), 2, NULL, "uhmm map 1 0x1000 (no LEN)");
	tool_refused(TOOL(out, err, "map", "999999"), 1, "does not use uhmm",
		     "uhmm map 999999 (a process without uhmm)");
	tool_refused(TOOL(out, err, "trace"), 2, NULL, "uhmm trace");
	tool_refused(TOOL(out, err, "trace", "1", "--count", "0"), 2, NULL, "uhmm trace 1 --count 0");
	tool_refused(TOOL(out, err, "trace", "999999"), 1, "does not use uhmm",
		     "uhmm trace 999999 (a process without uhmm)");
}

int main(int argc, char **argv)
{
	uintptr_t addr;
	pid_t pid;

	if (argc == 4 && !strcmp(argv[1], "worker"))
		return worker(argv[2], argv[3]);
	ut_init(300);
	rt_init();
	rt_require_preload();
	rt_require_coherent();
	snprintf(dir, sizeof(dir), "%s/stat", rt_tmp);
	snprintf(ready, sizeof(ready), "%s/ready", rt_tmp);
	snprintf(stopf, sizeof(stopf), "%s/stop", rt_tmp);
	mkdir(dir, 0700);
	setenv("UHMM_STAT_DIR", dir, 1);
	pid = start_worker(&addr);
	test_stat_top(pid);
	test_map(pid, addr);
	test_trace(pid);
	stop_worker(pid);
	test_gone();
	test_bad_args();
	rt_cleanup();
	return tap_done();
}
