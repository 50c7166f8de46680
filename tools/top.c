// SPDX-License-Identifier: MIT
/*
 * `uhmm top [-d SECONDS] [-n COUNT] [--json] [PID]`: the processes using
 * uhmm, refreshed like top(1): one line per device of each context, with
 * migrations and faults per second over the last interval.  On a terminal
 * the screen is redrawn; otherwise (and with --json, one JSON array per
 * refresh) each refresh is appended.  -n: stop after COUNT refreshes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

struct top {
	double delay;
	long count;
	bool json, tty;
	int pid;
};

static int top_args(struct top *t, int argc, char **argv)
{
	const char *v;
	char *end;

	t->delay = 1.0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			t->json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_usage(stdout);
			return -1;
		} else if ((v = opt_value("-d", argc, argv, &i))) {
			t->delay = strtod(v, &end);
			if (*end || !(t->delay >= 0.01) || t->delay > 3600)
				return usage_error("top: -d '%s': seconds, 0.01 to 3600", v);
		} else if ((v = opt_value("-n", argc, argv, &i))) {
			t->count = strtol(v, &end, 10);
			if (*end || t->count <= 0)
				return usage_error("top: -n '%s': a positive count", v);
		} else if (argv[i][0] == '-' || t->pid || parse_pid(argv[i], &t->pid)) {
			return usage_error("top: unexpected '%s' (usage: uhmm top [-d SECONDS] "
					   "[-n COUNT] [--json] [PID])", argv[i]);
		}
	}
	return 0;
}

static void print_table(const struct top *t, const struct psnap *s, int n,
			const struct psnap *old, int nold)
{
	char a[32], b[32];

	if (t->tty)
		printf("\033[H\033[2J");
	printf("uhmm top - %d context%s, every %.2g s\n", n, n == 1 ? "" : "s", t->delay);
	printf("%7s %3s %-15s %-10s %-8s %21s %10s %10s %9s\n", "PID", "CTX", "COMMAND",
	       "DEVICE", "KIND", "USED / SIZE", "MIGR/s", "FAULTS/s", "EVICTED");
	for (int i = 0; i < n; i++) {
		const struct psnap *p = procs_find(old, nold, s[i].info.pid, s[i].info.ctx);
		uint64_t t0 = p ? p->info.sample_ns : s[i].info.start_ns;
		double dt = (double)(s[i].info.sample_ns - t0) / 1e9;
		uint64_t m = s[i].st.pages_to_dev + s[i].st.pages_to_sys;
		uint64_t f = s[i].st.cpu_faults + s[i].st.dev_faults;

		if (p) {
			m -= p->st.pages_to_dev + p->st.pages_to_sys;
			f -= p->st.cpu_faults + p->st.dev_faults;
		}
		if (!(dt > 0))
			dt = INFINITY;
		for (unsigned k = 0; k < s[i].ndev || (k == 0 && !s[i].ndev); k++) {
			const struct uhmm_dev_info *d = s[i].ndev ? &s[i].dev[k] : NULL;
			char used[48];

			snprintf(used, sizeof(used), "%s / %s",
				 d ? fmt_size(d->used, a, sizeof(a)) : "-",
				 d ? fmt_size(d->size, b, sizeof(b)) : "-");
			printf("%7d %3u %-15s %-10s %-8s %21s %10.0f %10.0f %9llu\n",
			       s[i].info.pid, s[i].info.ctx, k ? "" : s[i].info.comm,
			       d ? d->name : "(none)",
			       d ? (d->kind == UHMM_MEM_COHERENT ? "coherent" : "private") : "",
			       used, k ? 0 : (double)m / dt, k ? 0 : (double)f / dt,
			       (unsigned long long)(d ? s[i].dst[k].evictions : 0));
		}
	}
	fflush(stdout);
}

static void print_json(const struct psnap *s, int n, const struct psnap *old, int nold)
{
	printf("[");
	for (int i = 0; i < n; i++) {
		printf(i ? "," : "");
		psnap_json(stdout, &s[i], procs_find(old, nold, s[i].info.pid, s[i].info.ctx));
	}
	printf("]\n");
	fflush(stdout);
}

int cmd_top(int argc, char **argv)
{
	struct psnap *old = NULL, *s;
	struct top t;
	int nold = 0, n, r;

	memset(&t, 0, sizeof(t));
	r = top_args(&t, argc, argv);
	if (r)
		return r < 0 ? 0 : r;
	t.tty = !t.json && isatty(1);
	for (long round = 0; !t.count || round < t.count; round++) {
		struct timespec ts = { (time_t)t.delay,
				       (long)((t.delay - (double)(time_t)t.delay) * 1e9) };

		if (round)
			nanosleep(&ts, NULL);
		r = procs_collect(t.pid, &s, &n);
		if (r) {
			fprintf(stderr, "uhmm top: %s\n", uhmm_strerror(r));
			free(old);
			return EXIT_FAIL;
		}
		if (t.json)
			print_json(s, n, old, nold);
		else
			print_table(&t, s, n, old, nold);
		free(old);
		old = s;
		nold = n;
	}
	free(old);
	return 0;
}
