// SPDX-License-Identifier: MIT
/*
 * `uhmm run [OPTIONS] [--] PROGRAM [ARGS]`: an unmodified program with its
 * large allocations placed on device memory, through the preload library
 * (preload/).  Everything that can be checked before the program starts is
 * checked here, so that a mistake is a clear message and a non-zero exit
 * rather than a program running without what was asked for: the device
 * specs, their sizes against --min-size, the preferred device, that
 * userfaultfd (and, for coherent devices, its minor faults) can be used,
 * the preload library and the program.  Then the options become UHMM_*
 * variables and the program is exec'd (or, with --stats, run as a child
 * whose processes report what they placed when they exit).
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"
#ifdef UHMM_HAVE_OPENCL
#include <uhmm_opencl.h>
#endif

#ifndef UHMM_PRELOAD_PATH
#define UHMM_PRELOAD_PATH "/usr/local/lib/libuhmm-preload.so"
#endif
#define PRELOAD_NAME	"libuhmm-preload.so"
#define DEFAULT_DEVICE	"sim:coherent:256M"

struct run {
	char devices[8192];		/* ';'-separated, as UHMM_DEVICES */
	const char *prefer;
	size_t min_size;
	const char *fork_mode;
	bool stats, json, verbose;
	char **argv;			/* the program and its arguments */
	struct devspec spec[DEVSPEC_MAX];
	int nspec;
};

/* ---- the command line ---------------------------------------------------- */

static int add_device(struct run *r, const char *spec)
{
	size_t have = strlen(r->devices);

	if (strchr(spec, ';'))
		return usage_error("run: --device '%s': one device per --device", spec);
	if (have + strlen(spec) + 2 > sizeof(r->devices))
		return usage_error("run: too many devices");
	snprintf(r->devices + have, sizeof(r->devices) - have, "%s%s", have ? ";" : "", spec);
	return 0;
}

static int run_args(struct run *r, int argc, char **argv)
{
	const char *v;
	int i;

	r->min_size = 1 * MIB;
	r->fork_mode = "copy";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (a[0] != '-')
			break;
		if (!strcmp(a, "--stats")) {
			r->stats = true;
		} else if (!strcmp(a, "--json")) {
			r->json = true;
		} else if (!strcmp(a, "--verbose")) {
			r->verbose = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_usage(stdout);
			return -1;
		} else if ((v = opt_value("--device", argc, argv, &i))) {
			if (add_device(r, v))
				return EXIT_USAGE;
		} else if ((v = opt_value("--prefer", argc, argv, &i))) {
			r->prefer = v;
		} else if ((v = opt_value("--min-size", argc, argv, &i))) {
			if (parse_size(v, &r->min_size) || r->min_size < 4096)
				return usage_error("run: --min-size '%s': a size of at least 4K",
						   v);
		} else if ((v = opt_value("--fork", argc, argv, &i))) {
			if (strcmp(v, "copy") && strcmp(v, "nocopy"))
				return usage_error("run: --fork '%s': copy or nocopy", v);
			r->fork_mode = v;
		} else {
			return usage_error("run: unknown option '%s'", a);
		}
	}
	if (i >= argc)
		return usage_error("run: no program to run");
	if (r->json && !r->stats)
		return usage_error("run: --json goes with --stats");
	r->argv = argv + i;
	if (!r->devices[0])
		add_device(r, DEFAULT_DEVICE);
	return 0;
}

/* ---- checks before anything starts ------------------------------------- */

static int check_specs(struct run *r)
{
	char err[1200], mn[32];
	int n;

	n = devspec_parse_list(r->devices, r->spec, DEVSPEC_MAX, err, sizeof(err));
	if (n < 0)
		return usage_error("run: %s", err);
	r->nspec = n;
	if (r->prefer && devspec_find(r->spec, n, r->prefer) < 0) {
		char names[DEVSPEC_MAX * (DEVSPEC_NAME + 2)] = "";

		for (int i = 0; i < n; i++)
			snprintf(names + strlen(names), sizeof(names) - strlen(names),
				 "%s%s", i ? ", " : "", r->spec[i].name);
		return usage_error("run: --prefer %s: no such device (the devices are: %s)",
				   r->prefer, names);
	}
	for (int i = 0; i < n; i++) {
		const struct devspec *s = &r->spec[i];

		if (s->size && s->size < r->min_size)
			return usage_error("run: device %s (%s) is smaller than --min-size (%s): "
					   "no allocation could be placed on it", s->name, s->text,
					   fmt_size(r->min_size, mn, sizeof(mn)));
	}
	return 0;
}

/* A file device must be there, ours to read and write, and large enough. */
static int check_file(const struct run *r, const struct devspec *s)
{
	char mn[32];
	struct stat st;
	int fd = open(s->path, O_RDWR | O_CLOEXEC);

	if (fd < 0) {
		fprintf(stderr, "uhmm run: device %s: cannot open %s for reading and writing: %s\n",
			s->name, s->path, strerror(errno));
		return EXIT_FAIL;
	}
	if (fstat(fd, &st) || !(S_ISREG(st.st_mode) || S_ISCHR(st.st_mode))) {
		close(fd);
		fprintf(stderr, "uhmm run: device %s: %s is not a regular file or a devdax "
			"device\n", s->name, s->path);
		return EXIT_FAIL;
	}
	close(fd);
	if (!s->size && S_ISREG(st.st_mode) && (size_t)st.st_size < r->min_size) {
		fprintf(stderr, "uhmm run: device %s: %s holds %lld bytes, less than "
			"--min-size (%s): give a SIZE (file:PATH:SIZE) or a larger file\n",
			s->name, s->path,
			(long long)st.st_size, fmt_size(r->min_size, mn, sizeof(mn)));
		return EXIT_FAIL;
	}
	return 0;
}

/* userfaultfd, and what the devices need of it, in a context of our own. */
static int check_context(const struct run *r)
{
	struct uhmm *h;
	uint64_t feat = 0;
	int err = uhmm_open(&h, NULL);

	if (err) {
		fprintf(stderr, "uhmm run: userfaultfd cannot be used here: %s (see `uhmm info`)\n",
			uhmm_strerror(err));
		return EXIT_FAIL;
	}
	uhmm_features(h, &feat);
	for (int i = 0; i < r->nspec && !err; i++) {
		const struct devspec *s = &r->spec[i];
		struct uhmm_dev *d;

		if (s->mem == UHMM_MEM_PRIVATE && !(feat & UHMM_FEAT_KERNEL_FAULTS))
			fprintf(stderr, "uhmm run: warning: device %s (%s) is private and "
				"userfaultfd is user-mode only here: a system call that reads "
				"into memory placed there (read(2), recv(2)) fails with EFAULT; "
				"a coherent device has no such limit (see `uhmm info`)\n",
				s->name, s->text);
		if (s->mem == UHMM_MEM_COHERENT && !(feat & UHMM_FEAT_MINOR_SHMEM)) {
			fprintf(stderr, "uhmm run: device %s (%s): coherent devices need "
				"userfaultfd minor faults on shmem (Linux 5.13+), which this "
				"kernel does not offer (or UHMM_DISABLE=minor)\n",
				s->name, s->text);
			err = EXIT_FAIL;
		} else if (s->type == DEVSPEC_FILE) {
			err = check_file(r, s);
		} else if (s->type == DEVSPEC_OPENCL) {
			/* the platform and device must exist: try it */
			int e = devspec_add(h, s, &d);

			if (e) {
				fprintf(stderr, "uhmm run: device %s (%s): %s\n", s->name, s->text,
					e == -EOPNOTSUPP ? "uhmm was built without OpenCL"
							 : uhmm_strerror(e));
				err = EXIT_FAIL;
			} else {
				uhmm_dev_remove(d);
			}
		}
	}
	uhmm_close(h);
	return err;
}

/* The preload library: $UHMM_PRELOAD, beside this tool (the build tree),
 * ../lib beside it (a moved install), or where `make install` put it. */
static int find_preload(char *out, size_t len)
{
	char exe[PATH_MAX], *slash;
	const char *env = getenv("UHMM_PRELOAD");
	ssize_t n;

	if (env && *env) {
		snprintf(out, len, "%s", env);
		return access(out, R_OK) ? -errno : 0;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(out, len, "%s/%s", exe, PRELOAD_NAME) < (int)len &&
			    !access(out, R_OK))
				return 0;
			if (snprintf(out, len, "%s/../lib/%s", exe, PRELOAD_NAME) < (int)len &&
			    !access(out, R_OK))
				return 0;
		}
	}
	snprintf(out, len, "%s", UHMM_PRELOAD_PATH);
	return access(out, R_OK) ? -errno : 0;
}

/* PROGRAM as execvp would find it. */
static int find_program(const char *prog, char *out, size_t len)
{
	const char *path = getenv("PATH");

	if (strchr(prog, '/')) {
		snprintf(out, len, "%s", prog);
		return access(out, X_OK) ? -errno : 0;
	}
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t l = strcspn(p, ":");

		snprintf(out, len, "%.*s/%s", (int)l, l ? p : ".", prog);
		if (!access(out, X_OK))
			return 0;
		p += l + (p[l] == ':');
	}
	return -ENOENT;
}

/* An ELF program without an interpreter ignores LD_PRELOAD. */
static bool statically_linked(const char *path)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	bool interp = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return false;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64) {
		close(fd);
		return false;	/* a script, or not for us to judge */
	}
	for (int i = 0; i < eh.e_phnum && !interp; i++)
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (size_t)i * eh.e_phentsize)) ==
		    sizeof(ph))
			interp = ph.p_type == PT_INTERP;
	close(fd);
	return !interp;
}

/* ---- the environment of the program ----------------------------------- */

static int set_env(const struct run *r, const char *preload, const char *stats)
{
	const char *old = getenv("LD_PRELOAD");
	char buf[PATH_MAX * 2], num[32];

	snprintf(buf, sizeof(buf), "%s%s%s", preload, old && *old ? " " : "", old ? old : "");
	snprintf(num, sizeof(num), "%zu", r->min_size);
	if (setenv("LD_PRELOAD", buf, 1) || setenv("UHMM_DEVICES", r->devices, 1) ||
	    setenv("UHMM_MIN_SIZE", num, 1) || setenv("UHMM_FORK", r->fork_mode, 1) ||
	    setenv("UHMM_VERBOSE", r->verbose ? "1" : "0", 1))
		return -errno;
	if (r->prefer ? setenv("UHMM_PREFER", r->prefer, 1) : unsetenv("UHMM_PREFER"))
		return -errno;
	if (stats ? setenv("UHMM_STATS", stats, 1) : unsetenv("UHMM_STATS"))
		return -errno;
	return 0;
}

static int exec_failed(const char *prog, int err)
{
	fprintf(stderr, "uhmm run: cannot run %s: %s\n", prog, strerror(err));
	return err == ENOENT ? 127 : 126;
}

/* The child's status as a shell gives it: the code, or 128 + signal. */
static int status_of(int st)
{
	if (WIFSIGNALED(st))
		return 128 + WTERMSIG(st);
	return WEXITSTATUS(st);
}

static volatile pid_t child_pid;

/* kill(1) of `uhmm run` is meant for the program */
static void forward(int sig)
{
	if (child_pid > 0)
		kill(child_pid, sig);
}

static int run_child(const struct run *r, const char *prog, int *status)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, fwd = { .sa_handler = forward };
	struct sigaction oint, oquit;
	pid_t pid;
	int st;

	/* like system(): ^C reaches the program; we stay to report */
	sigaction(SIGINT, &ign, &oint);
	sigaction(SIGQUIT, &ign, &oquit);
	sigaction(SIGTERM, &fwd, NULL);
	sigaction(SIGHUP, &fwd, NULL);
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "uhmm run: fork: %s\n", strerror(errno));
		return EXIT_FAIL;
	}
	if (pid == 0) {
		sigaction(SIGINT, &oint, NULL);
		sigaction(SIGQUIT, &oquit, NULL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		execv(prog, r->argv);
		_exit(exec_failed(prog, errno));
	}
	child_pid = pid;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return EXIT_FAIL;
	sigaction(SIGINT, &oint, NULL);
	sigaction(SIGQUIT, &oquit, NULL);
	*status = status_of(st);
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run r;
	char preload[PATH_MAX], prog[PATH_MAX], stats[PATH_MAX] = "";
	int err, status = 0;

	memset(&r, 0, sizeof(r));
	err = run_args(&r, argc, argv);
	if (err)
		return err < 0 ? 0 : err;
	err = check_specs(&r);
	if (err)
		return err;
	err = find_program(r.argv[0], prog, sizeof(prog));
	if (err)
		return exec_failed(r.argv[0], -err);
	if (find_preload(preload, sizeof(preload))) {
		fprintf(stderr, "uhmm run: cannot find %s (set UHMM_PRELOAD to its path)\n",
			PRELOAD_NAME);
		return EXIT_FAIL;
	}
	err = check_context(&r);
	if (err)
		return err;
	if (statically_linked(prog))
		fprintf(stderr, "uhmm run: warning: %s is statically linked: LD_PRELOAD cannot "
			"reach it, nothing will be placed\n", prog);
	if (r.stats) {
		const char *tmp = getenv("TMPDIR");
		int fd;

		snprintf(stats, sizeof(stats), "%s/uhmm-run-stats.XXXXXX",
			 tmp && *tmp ? tmp : "/tmp");
		fd = mkstemp(stats);
		if (fd < 0) {
			fprintf(stderr, "uhmm run: cannot make a statistics file in %s: %s\n",
				tmp && *tmp ? tmp : "/tmp", strerror(errno));
			return EXIT_FAIL;
		}
		close(fd);
	}
	err = set_env(&r, preload, r.stats ? stats : NULL);
	if (err) {
		fprintf(stderr, "uhmm run: setenv: %s\n", strerror(-err));
		return EXIT_FAIL;
	}
	if (!r.stats) {
		execv(prog, r.argv);
		return exec_failed(prog, errno);
	}
	err = run_child(&r, prog, &status);
	if (!err)
		run_report(stats, r.min_size, r.json);
	unlink(stats);
	return err ? err : status;
}
