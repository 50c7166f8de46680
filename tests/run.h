/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the tests that run programs (t_run_*, t_preload, t_tools):
 * the build's `uhmm` tool and preload library (found from the test's own
 * path, BUILD/tests/t_x), commands run with their input and output in
 * files, file comparison, numbers out of JSON.
 *
 * The preload library goes into uninstrumented programs, where no
 * sanitizer runtime can follow (ASan and TSan must come first in the
 * library list): sanitizer builds do not build it, and rt_require_preload
 * skips the whole file there, saying so.
 */
#ifndef UHMM_TEST_RUN_H
#define UHMM_TEST_RUN_H

#include <dirent.h>
#include <sys/stat.h>
#include "util.h"

static char rt_build[4096], rt_uhmm[4200], rt_lib[4200], rt_tmp[4096];

/* The build directory, the tool and the preload library. */
static inline void rt_init(void)
{
	char exe[4096], *s;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *tmp = getenv("TMPDIR");

	if (n <= 0)
		tap_bail("readlink /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	for (int i = 0; i < 2; i++) {
		s = strrchr(exe, '/');
		if (!s)
			tap_bail("odd test path %s", exe);
		*s = '\0';
	}
	snprintf(rt_build, sizeof(rt_build), "%s", exe);
	snprintf(rt_uhmm, sizeof(rt_uhmm), "%s/uhmm", rt_build);
	snprintf(rt_lib, sizeof(rt_lib), "%s/libuhmm-preload.so", rt_build);
	snprintf(rt_tmp, sizeof(rt_tmp), "%s/uhmm-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(rt_tmp))
		tap_bail("mkdtemp(%s): %s", rt_tmp, strerror(errno));
}

/* A path in this test's temporary directory.  One string per name, kept
 * (never freed, but never lost either: memcheck's leak check counts a
 * forgotten one as a definite leak). */
static inline const char *rt_path(const char *name)
{
	static char *made[256];
	char buf[4300];
	char *p;
	int i;

	snprintf(buf, sizeof(buf), "%s/%s", rt_tmp, name);
	for (i = 0; i < 256 && made[i]; i++)
		if (!strcmp(made[i], buf))
			return made[i];
	p = strdup(buf);
	if (!p)
		tap_bail("strdup");
	if (i < 256)
		made[i] = p;
	return p;
}

static inline void rt_cleanup(void)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rt_tmp);
	if (system(cmd)) {
		/* left behind in TMPDIR */
	}
}

static inline void rt_require_preload(void)
{
	if (UT_SANITIZED) {
		skip("the preload library goes into uninstrumented programs, where a sanitizer "
		     "runtime cannot be preloaded (it must come first): not built under %s",
		     UT_TSAN ? "TSan" : "ASan");
		rt_cleanup();
		exit(tap_done());
	}
	if (access(rt_lib, R_OK) || access(rt_uhmm, X_OK))
		tap_bail("%s or %s missing: run make first", rt_lib, rt_uhmm);
}

/* Skip the file where COHERENT devices cannot exist (no minor faults). */
static inline void rt_require_coherent(void)
{
	struct uhmm *h = ut_open();

	ut_require_coherent(h);
	uhmm_close(h);
}

static inline bool rt_have(const char *prog)
{
	const char *path = getenv("PATH");
	char buf[4096];

	if (!path)
		path = "/usr/bin:/bin";
	for (const char *p = path; *p;) {
		size_t l = strcspn(p, ":");

		snprintf(buf, sizeof(buf), "%.*s/%s", (int)l, p, prog);
		if (!access(buf, X_OK))
			return true;
		p += l + (p[l] == ':');
	}
	return false;
}

/*
 * Run argv (PATH searched) with stdin from `in`, stdout to `out`, stderr
 * to `err` (NULL: /dev/null), env: extra "NAME=VALUE" strings (or "NAME"
 * to unset), NULL-terminated.  Returns the exit status, 128 + the signal
 * that killed it, or -1.
 */
static inline int rt_run(char *const argv[], const char *in, const char *out,
			 const char *err, char *const env[])
{
	int st;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fi = open(in ? in : "/dev/null", O_RDONLY);
		int fo = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int fe = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fi < 0 || fo < 0 || fe < 0)
			_exit(125);
		dup2(fi, 0);
		dup2(fo, 1);
		dup2(fe, 2);
		for (int i = 0; env && env[i]; i++) {
			if (strchr(env[i], '='))
				putenv(env[i]);
			else
				unsetenv(env[i]);
		}
		alarm(0);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* The whole file, NUL-terminated (free it), or NULL. */
static inline char *rt_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	if (buf)
		buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Does the file hold `what`? */
static inline bool rt_grep(const char *path, const char *what)
{
	char *s = rt_slurp(path);
	bool hit = s && strstr(s, what);

	free(s);
	return hit;
}

static inline void rt_show(const char *path)
{
	char *s = rt_slurp(path);

	if (s && *s) {
		for (char *l = strtok(s, "\n"); l; l = strtok(NULL, "\n"))
			diag("  | %s", l);
	}
	free(s);
}

/* Byte for byte the same, and not empty. */
static inline bool rt_same(const char *a, const char *b)
{
	FILE *fa = fopen(a, "r"), *fb = fopen(b, "r");
	bool same = fa && fb;
	long n = 0;
	int ca, cb;

	while (same) {
		ca = getc(fa);
		cb = getc(fb);
		same = ca == cb;
		if (ca == EOF)
			break;
		n++;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same && n > 0;
}

/* The number after the first "key": in the file (a JSON object), or -1. */
static inline long long rt_json_num(const char *path, const char *key)
{
	char pat[128], *s = rt_slurp(path), *p;
	long long v = -1;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	if (s && (p = strstr(s, pat)))
		v = strtoll(p + strlen(pat), NULL, 10);
	free(s);
	return v;
}

#endif
