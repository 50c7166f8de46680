// SPDX-License-Identifier: MIT
/*
 * Small helpers shared by the subcommands of the `uhmm` tool.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

/*
 * Report a command-line mistake.  Always returns EXIT_USAGE so that callers
 * can write `return usage_error(...)`.
 */
int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("uhmm: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'uhmm --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

double now_sec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The number a /proc or /sys file starts with; -1 when it has none. */
int read_int_file(const char *path)
{
	int v = -1;
	FILE *f;

	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &v) != 1)
		v = -1;
	fclose(f);
	return v;
}

/* The first word of a /proc or /sys file into buf; false when unreadable. */
bool read_word_file(const char *path, char *buf, size_t len)
{
	FILE *f;
	bool ok;

	f = fopen(path, "r");
	if (!f)
		return false;
	ok = len > 1 && fgets(buf, (int)len, f);
	fclose(f);
	if (ok)
		buf[strcspn(buf, " \t\n")] = 0;
	return ok;
}

size_t page_size(void)
{
	static size_t ps;

	if (!ps)
		ps = (size_t)sysconf(_SC_PAGESIZE);
	return ps;
}

/* Number of pages overlapping [addr, addr + len): what uhmm_where fills. */
size_t pages_spanned(const void *addr, size_t len)
{
	uintptr_t ps = page_size();
	uintptr_t start = (uintptr_t)addr & ~(ps - 1);
	uintptr_t end = ((uintptr_t)addr + len + ps - 1) & ~(ps - 1);

	return (end - start) / ps;
}

/* An option with a value, as "--opt VALUE" or "--opt=VALUE". */
const char *opt_value(const char *opt, int argc, char **argv, int *i)
{
	size_t n = strlen(opt);

	if (strncmp(argv[*i], opt, n))
		return NULL;
	if (argv[*i][n] == '=')
		return argv[*i] + n + 1;
	if (argv[*i][n] || *i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

const char *fmt_size(size_t bytes, char *buf, size_t len)
{
	if (bytes >= GIB)
		snprintf(buf, len, "%.2f GiB", (double)bytes / GIB);
	else if (bytes >= MIB)
		snprintf(buf, len, "%.2f MiB", (double)bytes / MIB);
	else if (bytes >= 1024)
		snprintf(buf, len, "%.2f KiB", bytes / 1024.0);
	else
		snprintf(buf, len, "%zu bytes", bytes);
	return buf;
}

/*
 * Tally uhmm_where() over a range.  counts[] has WHERE_SLOTS entries,
 * indexed by location + 1 (NONE, SYSTEM, device 1, ...).
 */
int count_where(struct uhmm *h, const void *addr, size_t len, size_t *counts)
{
	size_t i, n = pages_spanned(addr, len);
	int *loc, err;

	loc = calloc(n, sizeof(*loc));
	if (!loc)
		return -ENOMEM;
	err = uhmm_where(h, addr, len, loc);
	if (err < 0)
		goto out;
	memset(counts, 0, WHERE_SLOTS * sizeof(*counts));
	for (i = 0; i < n; i++) {
		int slot = loc[i] + 1;

		/* Never index out of bounds on a location we do not know. */
		if (slot < 0 || slot >= WHERE_SLOTS) {
			err = -ERANGE;
			goto out;
		}
		counts[slot]++;
	}
	err = 0;
out:
	free(loc);
	return err;
}

/* A demo's explanations, unless --quiet. */
void demo_say(bool quiet, const char *fmt, ...)
{
	va_list ap;

	if (quiet)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
}

/* A demo's failed check: printed even with --quiet, it is the point. */
void demo_fail(bool *failed, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("uhmm demo: FAILED: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	*failed = true;
}
