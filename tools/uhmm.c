// SPDX-License-Identifier: MIT
/*
 * uhmm - the command-line tool: global options and subcommand dispatch.
 * Each subcommand lives in its own file and parses its own options.
 */
#include <stdio.h>
#include <string.h>

#include "tool.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
};

static const struct command commands[] = {
	{ "info",  cmd_info },
	{ "demo",  cmd_demo },
	{ "bench", cmd_bench },
	{ "run",   cmd_run },
	{ "stat",  cmd_stat },
	{ "top",   cmd_top },
	{ "map",   cmd_map },
	{ "trace", cmd_trace },
};

void print_usage(FILE *f)
{
	fputs(
"Usage: uhmm [--help] [--version] COMMAND [OPTIONS]\n"
"\n"
"uhmm moves a program's ordinary memory onto device memory and back behind\n"
"unchanged pointers, in user space, through userfaultfd.\n"
"\n"
"Commands:\n"
"  info                 which kernel features were found and which mode the\n"
"                       library will use; exits 1 if userfaultfd is unusable\n"
"  demo [--quiet] [--opencl]\n"
"                       run the seed scenario end to end and explain each\n"
"                       step: malloc a buffer, migrate it to a coherent\n"
"                       device, CPU writes land in device memory with no\n"
"                       copy and no fault, migrate back, check every byte.\n"
"                       --opencl: device-PRIVATE memory on OpenCL platform\n"
"                       0, device 0 instead: the buffer migrates into an\n"
"                       OpenCL buffer, a kernel computes on it there, the\n"
"                       CPU reads the results and the pages fault back\n"
"                       (exits 2 if uhmm was built without OpenCL).\n"
"                       --quiet prints only the verdict\n"
"  bench [--json] [--size BYTES] [--repeat N] [--list] [NAME...]\n"
"                       measure the migration figures against baselines\n"
"                       measured in the same run.  Each measurement is\n"
"                       repeated N times (default 3) and the BEST run is\n"
"                       reported, for the figure and its baseline alike.\n"
"                       --size: bytes per figure (default 1G; K, M, G\n"
"                       suffixes are binary).  --json: one JSON object per\n"
"                       line.  ratio is always \"times better than the\n"
"                       baseline\" (value/baseline for rates, baseline/value\n"
"                       for times).  NAME: run only those figures (--list)\n"
"  run [--device SPEC]... [--prefer NAME] [--min-size BYTES] [--fork copy|nocopy]\n"
"      [--stats [--json]] [--verbose] [--] PROGRAM [ARGS...]\n"
"                       run an unmodified, dynamically linked program with\n"
"                       its allocations of at least --min-size (default 1M)\n"
"                       placed on the preferred device (default: the first)\n"
"                       by first touch, through LD_PRELOAD of\n"
"                       libuhmm-preload.so.  SPEC: [NAME=]sim:coherent:SIZE,\n"
"                       sim:private:SIZE, file:PATH[:SIZE] (devdax,\n"
"                       hugetlbfs, tmpfs) or opencl:P:D:SIZE; default\n"
"                       sim:coherent:256M; names default to sim0, file0, ...\n"
"                       --stats: on exit, what the program's processes placed\n"
"                       (on stderr; --json: as JSON).  --fork nocopy: a fork()\n"
"                       child finds device pages inaccessible (children that\n"
"                       exec at once); the default copy gives it a private\n"
"                       snapshot.  Exit:\n"
"                       the program's status; 2 for a bad command line, 1 when\n"
"                       the devices cannot be used, 126/127 for a program\n"
"                       that cannot be run (it is not started)\n"
"  stat [--json] [PID]  the live counters of the processes using uhmm:\n"
"                       devices, bytes and pages per device, migrations and\n"
"                       faults with rates (since each context opened)\n"
"  top [-d SECONDS] [-n COUNT] [--json] [PID]\n"
"                       the same, refreshed like top(1), rates per interval\n"
"  map PID [ADDR LEN] [--svg FILE] [--width N] [--ctx N]\n"
"                       where each page of a range of PID lives (default:\n"
"                       each uhmm_alloc block, i.e. each large allocation\n"
"                       under `uhmm run`), as text and as an SVG picture\n"
"  trace PID [--count N] [--duration SECONDS] [--json] [--ctx N]\n"
"                       PID's faults, migrations and evictions as they\n"
"                       happen, with their cause\n"
"\n"
"Options:\n"
"  -h, --help           show this help and exit\n"
"  -V, --version        print the library version (MAJOR.MINOR) and exit\n"
"\n"
"Environment:\n"
"  UHMM_DISABLE=LIST    switch library features off (comma-separated: move,\n"
"                       wp_unpopulated, wp_shmem, minor, pagemap_scan,\n"
"                       poison, kernel_faults, remap_fence, or all) to try\n"
"                       fallback paths\n"
"  UHMM_STAT_DIR=DIR    where contexts publish their counters for stat, top,\n"
"                       map and trace (default /dev/shm/uhmm-UID; off: none)\n"
"  UHMM_PRELOAD=PATH    the preload library `uhmm run` uses\n"
"  (uhmm(1) lists the variables of the preload library: UHMM_DEVICES, ...)\n"
"\n"
"Exit status: 0 success, 1 failure, 2 bad command line.\n", f);
}

static int print_version(void)
{
	unsigned v = uhmm_version();

	printf("uhmm %u.%u\n", v >> 16, v & 0xffff);
	return 0;
}

static bool is_help(const char *arg)
{
	return !strcmp(arg, "-h") || !strcmp(arg, "--help");
}

static bool is_version(const char *arg)
{
	return !strcmp(arg, "-V") || !strcmp(arg, "--version");
}

int main(int argc, char **argv)
{
	const char *arg;
	size_t i;

	if (argc < 2) {
		print_usage(stderr);
		return EXIT_USAGE;
	}
	arg = argv[1];
	if (is_help(arg)) {
		print_usage(stdout);
		return 0;
	}
	if (is_version(arg))
		return print_version();
	if (arg[0] == '-')
		return usage_error("unknown option '%s'", arg);

	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(arg, commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	}
	return usage_error("unknown command '%s'", arg);
}
