// SPDX-License-Identifier: MIT
/*
 * `uhmm run --stats`: what the program's processes placed, added up from
 * the lines each wrote to $UHMM_STATS at exit (preload/preload.c writes
 * them: "uhmm-stats pid=... key=value ..." per process, "uhmm-dev ..." per
 * device).  Printed on stderr, so that the program's stdout stays its own;
 * --json: one JSON object instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define MAX_DEVS 16

struct rdev {
	char name[32], spec[256], kind[16];
	unsigned long long size, placed_allocs, placed_bytes, peak_used;
	unsigned long long pages_to_dev, pages_to_sys, cpu_faults, evictions;
	int procs;
};

struct report {
	int procs, with_ctx;
	unsigned long long large_allocs, large_bytes, unplaced_allocs, unplaced_bytes;
	unsigned long long pages_to_dev, pages_to_sys, zero_filled, bytes_copied;
	unsigned long long cpu_faults, dev_faults, evictions, poisoned;
	struct rdev dev[MAX_DEVS];
	int ndev;
};

/* The value of key in a line of key=value words, or NULL. */
static const char *word(const char *line, const char *key, char *buf, size_t len)
{
	size_t k = strlen(key);

	for (const char *p = line; (p = strstr(p, key)); p += k) {
		if ((p != line && p[-1] != ' ') || p[k] != '=')
			continue;
		size_t n = strcspn(p + k + 1, " \n");

		if (n >= len)
			n = len - 1;
		memcpy(buf, p + k + 1, n);
		buf[n] = '\0';
		return buf;
	}
	return NULL;
}

static unsigned long long num(const char *line, const char *key)
{
	char buf[32];

	return word(line, key, buf, sizeof(buf)) ? strtoull(buf, NULL, 10) : 0;
}

static void add_proc(struct report *r, const char *l)
{
	r->procs++;
	r->with_ctx += num(l, "context") != 0;
	r->large_allocs += num(l, "large_allocs");
	r->large_bytes += num(l, "large_bytes");
	r->unplaced_allocs += num(l, "unplaced_allocs");
	r->unplaced_bytes += num(l, "unplaced_bytes");
	r->pages_to_dev += num(l, "pages_to_dev");
	r->pages_to_sys += num(l, "pages_to_sys");
	r->zero_filled += num(l, "pages_zero_filled");
	r->bytes_copied += num(l, "bytes_copied");
	r->cpu_faults += num(l, "cpu_faults");
	r->dev_faults += num(l, "dev_faults");
	r->evictions += num(l, "evictions");
	r->poisoned += num(l, "poisoned");
}

static void add_dev(struct report *r, const char *l)
{
	char name[32];
	struct rdev *d = NULL;
	unsigned long long peak;

	if (!word(l, "name", name, sizeof(name)))
		return;
	for (int i = 0; i < r->ndev && !d; i++)
		if (!strcmp(r->dev[i].name, name))
			d = &r->dev[i];
	if (!d) {
		if (r->ndev == MAX_DEVS)
			return;
		d = &r->dev[r->ndev++];
		memset(d, 0, sizeof(*d));
		snprintf(d->name, sizeof(d->name), "%s", name);
		word(l, "spec", d->spec, sizeof(d->spec));
		word(l, "kind", d->kind, sizeof(d->kind));
		d->size = num(l, "size");
	}
	d->procs += num(l, "added") != 0;
	d->placed_allocs += num(l, "placed_allocs");
	d->placed_bytes += num(l, "placed_bytes");
	peak = num(l, "peak_used");
	if (peak > d->peak_used)
		d->peak_used = peak;
	d->pages_to_dev += num(l, "pages_to_dev");
	d->pages_to_sys += num(l, "pages_to_sys");
	d->cpu_faults += num(l, "cpu_faults");
	d->evictions += num(l, "evictions");
}

static void print_json_str(const char *s)
{
	putc('"', stderr);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			putc('\\', stderr);
		if ((unsigned char)*s >= 0x20)
			putc(*s, stderr);
	}
	putc('"', stderr);
}

static void print_json(const struct report *r, size_t min_size)
{
	fprintf(stderr, "{\"processes\":%d,\"with_context\":%d,\"min_size\":%zu,"
		"\"large_allocs\":%llu,\"large_bytes\":%llu,\"unplaced_allocs\":%llu,"
		"\"unplaced_bytes\":%llu,\"pages_to_dev\":%llu,\"pages_to_sys\":%llu,"
		"\"pages_zero_filled\":%llu,\"bytes_copied\":%llu,\"cpu_faults\":%llu,"
		"\"dev_faults\":%llu,\"evictions\":%llu,\"poisoned\":%llu,\"devices\":[",
		r->procs, r->with_ctx, min_size, r->large_allocs, r->large_bytes,
		r->unplaced_allocs, r->unplaced_bytes, r->pages_to_dev, r->pages_to_sys,
		r->zero_filled, r->bytes_copied, r->cpu_faults, r->dev_faults, r->evictions,
		r->poisoned);
	for (int i = 0; i < r->ndev; i++) {
		const struct rdev *d = &r->dev[i];

		fprintf(stderr, "%s{\"name\":", i ? "," : "");
		print_json_str(d->name);
		fprintf(stderr, ",\"spec\":");
		print_json_str(d->spec);
		fprintf(stderr, ",\"kind\":");
		print_json_str(d->kind);
		fprintf(stderr, ",\"size\":%llu,\"processes\":%d,\"placed_allocs\":%llu,"
			"\"placed_bytes\":%llu,\"peak_used\":%llu,\"pages_to_dev\":%llu,"
			"\"pages_to_sys\":%llu,\"cpu_faults\":%llu,\"evictions\":%llu}",
			d->size, d->procs, d->placed_allocs, d->placed_bytes, d->peak_used,
			d->pages_to_dev, d->pages_to_sys, d->cpu_faults, d->evictions);
	}
	fprintf(stderr, "]}\n");
}

static void print_text(const struct report *r, size_t min_size)
{
	char a[32], b[32], c[32];

	fprintf(stderr, "uhmm run: %d process%s under uhmm, %d with allocations of at least %s\n",
		r->procs, r->procs == 1 ? "" : "es", r->with_ctx, fmt_size(min_size, a, sizeof(a)));
	for (int i = 0; i < r->ndev; i++) {
		const struct rdev *d = &r->dev[i];

		fprintf(stderr, "  %-8s %s (%s): %llu allocation%s placed, %s; peak in use %s; "
			"%llu pages in, %llu out, %llu CPU faults, %llu evictions\n",
			d->name, d->spec, d->kind, d->placed_allocs,
			d->placed_allocs == 1 ? "" : "s", fmt_size(d->placed_bytes, a, sizeof(a)),
			fmt_size(d->peak_used, b, sizeof(b)),
			d->pages_to_dev, d->pages_to_sys, d->cpu_faults, d->evictions);
	}
	if (r->unplaced_allocs)
		fprintf(stderr, "  system memory: %llu allocation%s, %s (no device had room)\n",
			r->unplaced_allocs, r->unplaced_allocs == 1 ? "" : "s",
			fmt_size(r->unplaced_bytes, c, sizeof(c)));
	fprintf(stderr, "  total: %llu pages to devices (%llu without a copy), %llu to system "
		"memory, %llu CPU faults, %llu device faults, %llu evictions\n",
		r->pages_to_dev, r->zero_filled, r->pages_to_sys, r->cpu_faults, r->dev_faults,
		r->evictions);
}

int run_report(const char *path, size_t min_size, bool json)
{
	struct report r;
	char line[4096];
	FILE *f = fopen(path, "r");

	memset(&r, 0, sizeof(r));
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if (!strncmp(line, "uhmm-stats ", 11))
				add_proc(&r, line);
			else if (!strncmp(line, "uhmm-dev ", 9))
				add_dev(&r, line);
		}
		fclose(f);
	}
	if (json)
		print_json(&r, min_size);
	else
		print_text(&r, min_size);
	return 0;
}
