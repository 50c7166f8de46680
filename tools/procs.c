// SPDX-License-Identifier: MIT
/*
 * What `uhmm stat` and `uhmm top` show of the processes using uhmm: a
 * snapshot of each published context (uhmm_proc_*), printed as text or
 * JSON, with rates against an earlier snapshot (or since the context
 * opened).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

#define ANSWER_MS 1000		/* a process busy this long is shown as it was */

static int snap_one(const struct uhmm_proc_id *id, struct psnap *s)
{
	struct uhmm_proc *p;
	int r = uhmm_proc_open(id->pid, id->ctx, &p);

	if (r)
		return r;
	memset(s, 0, sizeof(*s));
	r = uhmm_proc_refresh(p, ANSWER_MS);
	if (r && r != -ETIMEDOUT) {
		uhmm_proc_close(p);
		return r;
	}
	s->stale = r == -ETIMEDOUT;
	s->info.sz = sizeof(s->info);
	s->st.sz = sizeof(s->st);
	uhmm_proc_info(p, &s->info, &s->st);
	s->ndev = s->info.ndev < PSNAP_DEVS ? s->info.ndev : PSNAP_DEVS;
	for (unsigned i = 0; i < s->ndev; i++) {
		s->dev[i].sz = sizeof(s->dev[i]);
		s->dst[i].sz = sizeof(s->dst[i]);
		uhmm_proc_dev(p, i, &s->dev[i], &s->dst[i]);
	}
	uhmm_proc_close(p);
	return 0;
}

/* Snapshots of the contexts of pid (0: of every process); *n of them. */
int procs_collect(int pid, struct psnap **out, int *n)
{
	struct uhmm_proc_id ids[256];
	struct psnap *s;
	int found = uhmm_proc_list(pid, ids, 256), k = 0;

	*out = NULL;
	*n = 0;
	if (found < 0)
		return found;
	if (found > 256)
		found = 256;
	s = calloc((size_t)found + 1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	for (int i = 0; i < found; i++)
		if (!snap_one(&ids[i], &s[k]))	/* gone meanwhile: left out */
			k++;
	*out = s;
	*n = k;
	return 0;
}

const struct psnap *procs_find(const struct psnap *s, int n, int pid, unsigned ctx)
{
	for (int i = 0; i < n; i++)
		if (s[i].info.pid == pid && s[i].info.ctx == ctx)
			return &s[i];
	return NULL;
}

static const char *kind_name(enum uhmm_mem k)
{
	return k == UHMM_MEM_COHERENT ? "coherent" : k == UHMM_MEM_PRIVATE ? "private" : "?";
}

/* Per second, over the time since prev (or since the context opened). */
static void rates(const struct psnap *s, const struct psnap *prev, double *migr,
		  double *faults)
{
	uint64_t t0 = prev ? prev->info.sample_ns : s->info.start_ns;
	double dt = (double)(s->info.sample_ns - t0) / 1e9;
	uint64_t m = s->st.pages_to_dev + s->st.pages_to_sys;
	uint64_t f = s->st.cpu_faults + s->st.dev_faults;

	if (prev) {
		m -= prev->st.pages_to_dev + prev->st.pages_to_sys;
		f -= prev->st.cpu_faults + prev->st.dev_faults;
	}
	*migr = dt > 0 ? (double)m / dt : 0;
	*faults = dt > 0 ? (double)f / dt : 0;
}

static void json_stats(FILE *f, const struct uhmm_stats *st)
{
	fprintf(f, "{\"pages_to_dev\":%llu,\"pages_to_sys\":%llu,\"pages_zero_filled\":%llu,"
		"\"bytes_copied\":%llu,\"cpu_faults\":%llu,\"dev_faults\":%llu,"
		"\"invalidations\":%llu,\"evictions\":%llu,\"auto_migrations\":%llu,"
		"\"thrash_pins\":%llu,\"poisoned\":%llu}",
		(unsigned long long)st->pages_to_dev, (unsigned long long)st->pages_to_sys,
		(unsigned long long)st->pages_zero_filled, (unsigned long long)st->bytes_copied,
		(unsigned long long)st->cpu_faults, (unsigned long long)st->dev_faults,
		(unsigned long long)st->invalidations, (unsigned long long)st->evictions,
		(unsigned long long)st->auto_migrations, (unsigned long long)st->thrash_pins,
		(unsigned long long)st->poisoned);
}

void json_string(FILE *f, const char *s)
{
	putc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			putc(*s, f);
	}
	putc('"', f);
}

void psnap_json(FILE *f, const struct psnap *s, const struct psnap *prev)
{
	double migr, faults;

	rates(s, prev, &migr, &faults);
	fprintf(f, "{\"pid\":%d,\"ctx\":%u,\"comm\":", s->info.pid, s->info.ctx);
	json_string(f, s->info.comm);
	fprintf(f, ",\"uptime_s\":%.3f,\"stale\":%s,\"pages_system\":%llu,\"allocs\":%llu,"
		"\"alloc_bytes\":%llu,\"migrations_per_s\":%.1f,\"faults_per_s\":%.1f,\"stats\":",
		(double)(s->info.sample_ns - s->info.start_ns) / 1e9, s->stale ? "true" : "false",
		(unsigned long long)s->info.pages_system, (unsigned long long)s->info.allocs,
		(unsigned long long)s->info.alloc_bytes, migr, faults);
	json_stats(f, &s->st);
	fprintf(f, ",\"devices\":[");
	for (unsigned i = 0; i < s->ndev; i++) {
		const struct uhmm_dev_info *d = &s->dev[i];

		fprintf(f, "%s{\"id\":%d,\"name\":", i ? "," : "", d->id);
		json_string(f, d->name);
		fprintf(f, ",\"kind\":\"%s\",\"size\":%zu,\"used\":%zu,\"reserved\":%zu,"
			"\"pages\":%zu,\"stats\":", kind_name(d->kind), d->size, d->used,
			d->reserved, d->used / page_size());
		json_stats(f, &s->dst[i]);
		putc('}', f);
	}
	fprintf(f, "]}");
}

void psnap_text(FILE *f, const struct psnap *s, const struct psnap *prev)
{
	char a[32], b[32], c[32];
	double migr, faults;

	rates(s, prev, &migr, &faults);
	fprintf(f, "pid %d (%s), context %u, up %.1f s%s\n", s->info.pid, s->info.comm,
		s->info.ctx, (double)(s->info.sample_ns - s->info.start_ns) / 1e9,
		s->stale ? " (busy: values as last published)" : "");
	for (unsigned i = 0; i < s->ndev; i++) {
		const struct uhmm_dev_info *d = &s->dev[i];

		fprintf(f, "  device %d %-10s %-8s %10s: %s in use (%zu pages), %s reserved; "
			"%llu pages in, %llu out, %llu CPU faults, %llu evictions\n",
			d->id, d->name, kind_name(d->kind), fmt_size(d->size, a, sizeof(a)),
			fmt_size(d->used, b, sizeof(b)), d->used / page_size(),
			fmt_size(d->reserved, c, sizeof(c)),
			(unsigned long long)s->dst[i].pages_to_dev,
			(unsigned long long)s->dst[i].pages_to_sys,
			(unsigned long long)s->dst[i].cpu_faults,
			(unsigned long long)s->dst[i].evictions);
	}
	fprintf(f, "  system memory: %llu managed pages; uhmm_alloc: %llu blocks, %s\n",
		(unsigned long long)s->info.pages_system, (unsigned long long)s->info.allocs,
		fmt_size(s->info.alloc_bytes, a, sizeof(a)));
	fprintf(f, "  migrations: %llu pages to devices (%llu without a copy), %llu to system, "
		"%.0f pages/s; faults: %llu CPU, %llu device, %.0f/s; evictions: %llu\n",
		(unsigned long long)s->st.pages_to_dev, (unsigned long long)s->st.pages_zero_filled,
		(unsigned long long)s->st.pages_to_sys, migr,
		(unsigned long long)s->st.cpu_faults, (unsigned long long)s->st.dev_faults, faults,
		(unsigned long long)s->st.evictions);
}

/* A PID argument: a positive number. */
int parse_pid(const char *s, int *pid)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v <= 0 || v > 0x3fffffff)
		return -EINVAL;
	*pid = (int)v;
	return 0;
}

/* pid's first published context unless *ctx names one; EXIT_FAIL (and
 * why) when pid has none. */
int procs_pick_ctx(int pid, unsigned *ctx)
{
	struct uhmm_proc_id ids[16];
	int n = uhmm_proc_list(pid, ids, 16);

	if (n <= 0) {
		procs_none(pid);
		return EXIT_FAIL;
	}
	if (!*ctx)
		*ctx = ids[0].ctx;
	return 0;
}

/* Why nothing is listed: where we looked. */
void procs_none(int pid)
{
	const char *dir = getenv("UHMM_STAT_DIR");

	if (pid)
		fprintf(stderr, "uhmm: process %d does not use uhmm (no context of it is "
			"published in %s)\n", pid, dir ? dir : "/dev/shm/uhmm-*");
	else
		fprintf(stderr, "uhmm: no process uses uhmm (nothing published in %s)\n",
			dir ? dir : "/dev/shm/uhmm-*");
}
