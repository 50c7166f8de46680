/* SPDX-License-Identifier: MIT */
/*
 * `uhmm run` refuses what it cannot do before the program starts: a bad
 * device spec, a device too small for --min-size, an unknown preferred
 * device, bad options, a missing preload library or program.  Each gives
 * a clear message and a non-zero exit, and the program (which would touch
 * a marker file) never runs.  The program's own exit status and signal
 * come back unchanged.
 */
#define _GNU_SOURCE
#include "run.h"

static int runs;

/* uhmm run ARGS... -- sh -c 'touch MARKER': status, stderr in err */
static int try_run(const char *err, char *const env[], const char *const args[])
{
	char marker[64];
	char *argv[32];
	int n = 0;

	snprintf(marker, sizeof(marker), "touch '%s'", rt_path("marker"));
	unlink(rt_path("marker"));
	argv[n++] = rt_uhmm;
	argv[n++] = "run";
	for (int i = 0; args[i]; i++)
		argv[n++] = (char *)args[i];
	argv[n++] = "--";
	argv[n++] = "sh";
	argv[n++] = "-c";
	argv[n++] = marker;
	argv[n] = NULL;
	runs++;
	return rt_run(argv, NULL, NULL, err, env);
}

/* for docs/BAD_INPUTS.md: "what (uhmm run ARGS) => exit N: message" */
static void run_refused_case(int status, const char *msg, const char *what,
				const char *const args[])
{
	char cmd[512];
	size_t n = 0;

	n += snprintf(cmd, sizeof(cmd), "uhmm run");
	for (int i = 0; args[i] && n < sizeof(cmd); i++)
		n += snprintf(cmd + n, sizeof(cmd) - n, " %s", args[i]);
	bad_input_exit(status, msg, "%s (`%s`)", what, cmd);
}

static void refused(int want_status, const char *want_msg, char *const env[],
		    const char *what, const char *const args[])
{
	const char *err = rt_path("err");
	int st = try_run(err, env, args);
	bool msg = rt_grep(err, want_msg), started = !access(rt_path("marker"), F_OK);

	if (!ok(st == want_status && msg && !started,
		"%s: exit %d, says '%s', program not started", what, want_status, want_msg)) {
		diag("exit %d, program %s; stderr:", st, started ? "started" : "not started");
		rt_show(err);
		return;
	}
	run_refused_case(want_status, want_msg, what, args);
}

#define REFUSED(st, msg, what, ...) do {				\
	const char *const a_[] = { __VA_ARGS__, NULL };			\
	refused(st, msg, NULL, what, a_);				\
} while (0)

static void test_specs(void)
{
	REFUSED(2, "bad device spec 'bogus'", "an unknown kind of device", "--device", "bogus");
	REFUSED(2, "SIZE must be a number", "a size that is no number", "--device",
		"sim:coherent:12Q");
	REFUSED(2, "multiple of the page size", "a size that is no page multiple",
		"--device", "sim:coherent:1000");
	REFUSED(2, "SIZE must not be 0", "a size of 0", "--device", "sim:private:0");
	REFUSED(2, "sim: takes coherent:SIZE or private:SIZE", "sim: of no known kind",
		"--device", "sim:weird:1M");
	REFUSED(2, "file: needs a PATH", "file: without a path", "--device", "file:");
	REFUSED(2, "opencl: takes PLATFORM:DEVICE:SIZE", "opencl: without indices",
		"--device", "opencl:x");
	REFUSED(2, "NAME must be", "a bad device name", "--device", "a b=sim:coherent:4M");
	REFUSED(2, "two devices are named 'x'", "two devices of one name",
		"--device", "x=sim:coherent:4M", "--device", "x=sim:private:4M");
	REFUSED(2, "two devices are named 'sim0'", "a name that is another's default",
		"--device", "sim:coherent:4M", "--device", "sim0=sim:private:4M");
	REFUSED(2, "one device per --device", "two devices in one --device", "--device",
		"sim:coherent:4M;sim:private:4M");
}

static void test_sizes(void)
{
	int fd;

	REFUSED(2, "smaller than --min-size", "a device smaller than --min-size (default 1 MiB)",
		"--device", "sim:coherent:64K");
	REFUSED(2, "smaller than --min-size", "a device smaller than a given --min-size",
		"--min-size", "8M", "--device", "sim:private:4M");
	fd = open(rt_path("small.dev"), O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || ftruncate(fd, 4096))
		tap_bail("small.dev");
	close(fd);
	{
		char spec[4400];

		snprintf(spec, sizeof(spec), "file:%s", rt_path("small.dev"));
		REFUSED(1, "less than --min-size", "a file device smaller than --min-size",
			"--device", spec);
		snprintf(spec, sizeof(spec), "file:%s/none/such", rt_tmp);
		REFUSED(1, "cannot open", "a file device that does not exist", "--device", spec);
	}
}

static void test_options(void)
{
	REFUSED(2, "--prefer nope: no such device (the devices are: sim0, gpu)",
		"an unknown preferred device", "--device", "sim:coherent:8M", "--device",
		"gpu=sim:private:8M", "--prefer", "nope");
	REFUSED(2,
		"--prefer sim0: no such device", "--prefer of the default when devices are named",
		"--device", "a=sim:coherent:8M", "--prefer", "sim0");
	REFUSED(2, "--min-size '100'", "a --min-size under a page", "--min-size", "100");
	REFUSED(2, "--min-size 'lots'", "a --min-size that is no size", "--min-size", "lots");
	REFUSED(2, "--fork 'sometimes': copy or nocopy", "a bad --fork", "--fork", "sometimes");
	REFUSED(2, "--json goes with --stats", "--json without --stats", "--json");
	REFUSED(2, "unknown option '--frobnicate'", "an unknown option", "--frobnicate");
	{
		char *env[] = { "UHMM_PRELOAD=/nonexistent/libuhmm-preload.so", NULL };
		const char *const a[] = { "--device", "sim:coherent:8M", NULL };

		refused(1,
			"cannot find "
			"libuhmm-preload.so", env, "a preload library that is not there", a);
	}
}

static void test_program(void)
{
	char *noprog[] = { rt_uhmm, "run", "--", "no-such-program-uhmm", NULL };
	char *none[] = { rt_uhmm, "run", "--stats", NULL };
	char *seven[] = { rt_uhmm, "run", "--device", "sim:coherent:8M", "--", "sh", "-c",
			  "exit 7", NULL };
	char *killed[] = { rt_uhmm, "run", "--stats", "--device", "sim:coherent:8M", "--",
			   "sh", "-c", "kill -9 $$", NULL };
	char *fine[] = { rt_uhmm, "run", "--device", "sim:coherent:8M", "--", "sh", "-c",
			 "echo \"$LD_PRELOAD|$UHMM_DEVICES|$UHMM_MIN_SIZE\"", NULL };
	const char *err = rt_path("err"), *out = rt_path("out");
	int st;

	st = rt_run(noprog, NULL, NULL, err, NULL);
	ok(st == 127 && rt_grep(err, "cannot run no-such-program-uhmm"),
	   "a program that does not exist: exit 127 and says so");
	st = rt_run(none, NULL, NULL, err, NULL);
	ok(st == 2 && rt_grep(err, "no program to run"), "no program: exit 2 and says so");
	is_int(rt_run(seven, NULL, NULL, err, NULL), 7, "the program's exit status comes back");
	st = rt_run(killed, NULL, NULL, err, NULL);
	ok(st == 128 + SIGKILL && rt_grep(err, "uhmm run: 0 processes under uhmm"),
	   "a program killed by a signal: 128 + the signal, and --stats still reports (no process "
	   "wrote its figures)");
	st = rt_run(fine, NULL, out, err, NULL);
	ok(st == 0 && rt_grep(out, "libuhmm-preload.so|sim:coherent:8M|1048576"),
	   "the program gets LD_PRELOAD, UHMM_DEVICES and UHMM_MIN_SIZE");
}

/* kill -TERM of `uhmm run --stats` reaches the program; the tool reports */
static void test_forward(void)
{
	const char *err = rt_path("fwd.err");
	pid_t pid;
	int st = -1;

	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		int fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		dup2(fd, 2);
		execl(rt_uhmm, rt_uhmm, "run", "--stats", "--device", "sim:coherent:8M", "--",
		      "sleep", "60", (char *)NULL);
		_exit(127);
	}
	usleep(300000);
	kill(pid, SIGTERM);
	for (int i = 0; i < 100 && waitpid(pid, &st, WNOHANG) == 0; i++)
		usleep(50000);
	if (!ok(WIFEXITED(st) && WEXITSTATUS(st) == 128 + SIGTERM && rt_grep(err, "uhmm run: "),
		"kill -TERM of uhmm run --stats: the program gets it, the tool reports and "
		"exits 128 + SIGTERM")) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
	}
}

int main(void)
{
	ut_init(120);
	rt_init();
	rt_require_preload();
	test_specs();
	test_sizes();
	test_options();
	test_program();
	test_forward();
	rt_cleanup();
	return tap_done();
}
