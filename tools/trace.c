// SPDX-License-Identifier: MIT
/*
 * `uhmm trace PID [--count N] [--duration SECONDS] [--json] [--ctx N]`:
 * the faults, migrations and evictions of a running process as they
 * happen, with their cause (uhmm_proc_trace_read).  Attaching starts the
 * recording there; it stops when this command ends (or stops reading).
 * Ends after N events, after SECONDS, or when the process's context goes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

#define POLL_MS 50

struct trace_cmd {
	int pid;
	unsigned ctx;
	long count;
	double duration;
	bool json;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static int trace_args(struct trace_cmd *t, int argc, char **argv)
{
	const char *v, *pid = NULL;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			t->json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_usage(stdout);
			return -1;
		} else if ((v = opt_value("--count", argc, argv, &i))) {
			t->count = strtol(v, &end, 10);
			if (*end || t->count <= 0)
				return usage_error("trace: --count '%s': a positive count", v);
		} else if ((v = opt_value("--duration", argc, argv, &i))) {
			t->duration = strtod(v, &end);
			if (*end || !(t->duration > 0))
				return usage_error("trace: --duration '%s': seconds", v);
		} else if ((v = opt_value("--ctx", argc, argv, &i))) {
			t->ctx = (unsigned)strtoul(v, &end, 10);
			if (*end || !t->ctx)
				return usage_error("trace: --ctx '%s': a context number", v);
		} else if (argv[i][0] == '-' || pid) {
			return usage_error("trace: unexpected '%s' (usage: uhmm trace PID "
					   "[--count N] [--duration SECONDS] [--json])", argv[i]);
		} else {
			pid = argv[i];
		}
	}
	if (!pid || parse_pid(pid, &t->pid))
		return usage_error("trace: usage: uhmm trace PID [--count N] "
				   "[--duration SECONDS] [--json]");
	return 0;
}

static void loc_name(char *buf, size_t len, int loc)
{
	if (loc == UHMM_LOC_NONE)
		snprintf(buf, len, "none");
	else if (loc == UHMM_LOC_SYSTEM)
		snprintf(buf, len, "system");
	else
		snprintf(buf, len, "dev%d", loc);
}

static void print_event(const struct trace_cmd *t, const struct uhmm_trace_event *e,
			uint64_t t0)
{
	char from[16], to[16], len[32];

	if (t->json) {
		printf("{\"seq\":%llu,\"time_ns\":%llu,\"type\":\"%s\",\"cause\":\"%s\","
		       "\"addr\":%llu,\"len\":%llu,\"tid\":%d,\"from\":%d,\"to\":%d}\n",
		       (unsigned long long)e->seq, (unsigned long long)e->time_ns,
		       uhmm_trace_type_name(e->type), uhmm_trace_cause_name(e->cause),
		       (unsigned long long)e->addr, (unsigned long long)e->len, e->tid,
		       e->from, e->to);
		return;
	}
	loc_name(from, sizeof(from), e->from);
	loc_name(to, sizeof(to), e->to);
	printf("%8llu %10.6f %7d %-9s %-9s %#14llx %10s %s -> %s\n",
	       (unsigned long long)e->seq, (double)(e->time_ns - t0) / 1e9, e->tid,
	       uhmm_trace_type_name(e->type), uhmm_trace_cause_name(e->cause),
	       (unsigned long long)e->addr, fmt_size(e->len, len, sizeof(len)), from, to);
}

int cmd_trace(int argc, char **argv)
{
	static struct uhmm_trace_event ev[512];
	struct trace_cmd t = { 0 };
	struct timespec poll = { 0, POLL_MS * 1000000L };
	struct uhmm_proc *p;
	uint64_t next = 0, t0 = 0, until = 0;
	long shown = 0;
	int r;

	r = trace_args(&t, argc, argv);
	if (r)
		return r < 0 ? 0 : r;
	r = procs_pick_ctx(t.pid, &t.ctx);
	if (r)
		return r;
	r = uhmm_proc_open(t.pid, t.ctx, &p);
	if (r) {
		fprintf(stderr, "uhmm trace: process %d: %s\n", t.pid, uhmm_strerror(r));
		return EXIT_FAIL;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, on_signal);
	if (t.duration > 0)
		until = (uint64_t)(now_sec() * 1e9) + (uint64_t)(t.duration * 1e9);
	if (!t.json)
		printf("%8s %10s %7s %-9s %-9s %14s %10s %s\n", "SEQ", "TIME", "TID", "EVENT",
		       "CAUSE", "ADDRESS", "LENGTH", "FROM -> TO");
	/* what the ring held before we came is not ours to show */
	r = uhmm_proc_trace_read(p, &next, ev, 512);
	while (r >= 0 && r == 512)
		r = uhmm_proc_trace_read(p, &next, ev, 512);
	while (r >= 0 && !stop && (!t.count || shown < t.count)) {
		uint64_t want = next;

		if (until && (uint64_t)(now_sec() * 1e9) >= until)
			break;
		nanosleep(&poll, NULL);
		r = uhmm_proc_trace_read(p, &next, ev, 512);
		if (r > 0 && ev[0].seq > want && want > 0 && !t.json)
			printf("# %llu events lost (the ring keeps %d)\n",
			       (unsigned long long)(ev[0].seq - want), UHMM_TRACE_EVENTS);
		for (int i = 0; i < r && (!t.count || shown < t.count); i++, shown++) {
			if (!t0)
				t0 = ev[i].time_ns;
			print_event(&t, &ev[i], t0);
		}
		fflush(stdout);
	}
	uhmm_proc_close(p);
	if (r < 0 && r != -ESRCH) {
		fprintf(stderr, "uhmm trace: %s\n", uhmm_strerror(r));
		return EXIT_FAIL;
	}
	return 0;
}
