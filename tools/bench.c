// SPDX-License-Identifier: MIT
/*
 * `uhmm bench`: migration figures, each next to a baseline measured in the
 * same run on the same machine, because absolute numbers on a VM are noise
 * while ratios are not.
 *
 * Every measurement runs `repeat` times and the best run counts, for the
 * figure and its baseline alike.  Migrated data is checked after every run
 * (one word in every page, plus every word once at the end), so a broken
 * migration cannot produce a fast number.
 *
 * One context and one simulated coherent device serve all figures: the sim
 * device populates its memory at registration, which takes seconds per GiB
 * here and is not what we measure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "tool.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define HUGE_SIZE	(2 * MIB)
#define DEV_SLACK	(64 * MIB)	/* 2 MiB chunk rounding, staging */
#define DEFAULT_SIZE	GIB
#define DEFAULT_REPEAT	3
#define PATTERN_SEED	0x5eedull

struct bench {
	size_t size;
	int repeat;
	bool json;
	struct uhmm *h;
	struct uhmm_dev *dev;
	int dev_id;
	uint64_t *src;			/* populated, holds the pattern */
	/* best times in seconds; 0 = not measured yet in this run */
	double t_to_dev, t_to_sys, t_memcpy, t_fresh, t_untouched;
};

struct result {
	double value;
	const char *baseline;
	double baseline_value;
};

struct figure {
	const char *name;
	const char *unit;
	bool is_rate;			/* bigger is better */
	int (*run)(struct bench *b, struct result *r);
};

static int bench_err(const char *what, int err)
{
	fprintf(stderr, "uhmm bench: %s: %s\n", what, uhmm_strerror(err));
	return err < 0 ? err : -EIO;
}

static double best(double cur, double t)
{
	return cur == 0 || t < cur ? t : cur;
}

static double gbps(const struct bench *b, double t)
{
	return b->size / t / 1e9;
}

/* The word at index w: position-dependent, so misplaced pages show. */
static uint64_t pattern(size_t w)
{
	uint64_t x = (w + PATTERN_SEED) * 0x9e3779b97f4a7c15ull;

	x ^= x >> 31;
	x *= 0xbf58476d1ce4e5b9ull;
	return x ^ (x >> 29);
}

/* A 2 MiB-aligned anonymous mapping, untouched. */
static void *map_aligned(size_t size)
{
	size_t len = size + HUGE_SIZE;
	uintptr_t raw, p;

	raw = (uintptr_t)mmap(NULL, len, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if ((void *)raw == MAP_FAILED)
		return NULL;
	p = (raw + HUGE_SIZE - 1) & ~(HUGE_SIZE - 1);
	/* Trim the slack so that only [p, p + size) stays mapped. */
	if (p > raw)
		munmap((void *)raw, p - raw);
	if (raw + len > p + size)
		munmap((void *)(p + size), raw + len - (p + size));
	return (void *)p;
}

/* One word in every page, at a page-dependent offset.  Returns bad words. */
static size_t check_sample(const uint64_t *p, size_t size, bool zero)
{
	size_t wpp = page_size() / sizeof(uint64_t), pages = size / page_size();
	size_t i, bad = 0;

	for (i = 0; i < pages; i++) {
		size_t w = i * wpp + (i * 37) % wpp;

		bad += p[w] != (zero ? 0 : pattern(w));
	}
	return bad;
}

static size_t check_all(const uint64_t *p, size_t size)
{
	size_t w, bad = 0;

	for (w = 0; w < size / sizeof(uint64_t); w++)
		bad += p[w] != pattern(w);
	return bad;
}

static int check_placement(struct bench *b, const void *p, int want)
{
	size_t counts[WHERE_SLOTS], n = pages_spanned(p, b->size);
	int err;

	err = count_where(b->h, p, b->size, counts);
	if (err < 0)
		return bench_err("uhmm_where", err);
	if (counts[want + 1] == n)
		return 0;
	fprintf(stderr, "uhmm bench: %zu of %zu pages not at location %d "
		"after the migration\n", n - counts[want + 1], n, want);
	return -EIO;
}

static int setup(struct bench *b)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	size_t w;
	int err;

	if (b->h)
		return 0;
	err = uhmm_open(&b->h, NULL);
	if (err < 0)
		return bench_err("uhmm_open (see 'uhmm info')", err);
	err = uhmm_dev_add_sim(b->h, "bench-coherent", UHMM_MEM_COHERENT,
			       b->size + DEV_SLACK, &b->dev);
	if (err < 0)
		return bench_err("uhmm_dev_add_sim", err);
	err = uhmm_dev_info(b->dev, &info);
	if (err < 0)
		return bench_err("uhmm_dev_info", err);
	b->dev_id = info.id;
	b->src = map_aligned(b->size);
	if (!b->src)
		return bench_err("mmap source", -errno);
	for (w = 0; w < b->size / sizeof(uint64_t); w++)
		b->src[w] = pattern(w);
	return 0;
}

static void teardown(struct bench *b)
{
	uhmm_close(b->h);
	if (b->src)
		munmap(b->src, b->size);
}

static int timed_migrate(struct bench *b, void *p, struct uhmm_dev *to,
			 double *t)
{
	int err;

	*t = now_sec();
	err = uhmm_migrate(b->h, p, b->size, to, 0);
	*t = now_sec() - *t;
	if (err < 0)
		return bench_err(to ? "uhmm_migrate to device" :
				 "uhmm_migrate to system", err);
	return 0;
}

static int check_moved(struct bench *b, int want, const char *dir)
{
	size_t bad = check_sample(b->src, b->size, false);

	if (bad) {
		fprintf(stderr, "uhmm bench: %zu sampled pages hold wrong data "
			"after migrating %s\n", bad, dir);
		return -EIO;
	}
	return check_placement(b, b->src, want);
}

/* Populated memory to the device and back, `repeat` times. */
static int measure_roundtrips(struct bench *b)
{
	double t;
	size_t bad;
	int i, err;

	if (b->t_to_dev)
		return 0;
	for (i = 0; i < b->repeat; i++) {
		err = timed_migrate(b, b->src, b->dev, &t);
		if (err || (err = check_moved(b, b->dev_id, "to the device")))
			return err;
		b->t_to_dev = best(b->t_to_dev, t);
		err = timed_migrate(b, b->src, NULL, &t);
		if (err || (err = check_moved(b, UHMM_LOC_SYSTEM, "back")))
			return err;
		b->t_to_sys = best(b->t_to_sys, t);
	}
	bad = check_all(b->src, b->size);
	if (!bad)
		return 0;
	fprintf(stderr, "uhmm bench: %zu words wrong after the round trips\n",
		bad);
	return -EIO;
}

/* Baseline: memcpy between two populated buffers. */
static int measure_memcpy(struct bench *b)
{
	uint64_t *dst;
	double t;
	int i, err = 0;

	if (b->t_memcpy)
		return 0;
	dst = map_aligned(b->size);
	if (!dst)
		return bench_err("mmap", -errno);
	if (madvise(dst, b->size, MADV_POPULATE_WRITE) < 0)
		memset(dst, 0, b->size);	/* kernels before 5.14 */
	for (i = 0; i < b->repeat; i++) {
		t = now_sec();
		memcpy(dst, b->src, b->size);
		b->t_memcpy = best(b->t_memcpy, now_sec() - t);
	}
	if (check_sample(dst, b->size, false))
		err = bench_err("memcpy baseline", -EIO);
	munmap(dst, b->size);
	return err;
}

/*
 * Baseline: the kernel's own best way to produce fresh system memory
 * holding the bytes: 2 MiB aligned, THP-eligible, populated in one call,
 * then filled.  munmap is left out, as the figure has no such cost.
 */
static int fresh_once(struct bench *b, double *t)
{
	uint64_t *p;
	size_t bad;

	*t = now_sec();
	p = map_aligned(b->size);
	if (!p)
		return bench_err("mmap", -errno);
	madvise(p, b->size, MADV_HUGEPAGE);
	madvise(p, b->size, MADV_POPULATE_WRITE);
	memcpy(p, b->src, b->size);
	*t = now_sec() - *t;
	bad = check_sample(p, b->size, false);
	munmap(p, b->size);
	return bad ? bench_err("fresh-memory baseline", -EIO) : 0;
}

static int measure_fresh(struct bench *b)
{
	double t;
	int i, err;

	if (b->t_fresh)
		return 0;
	for (i = 0; i < b->repeat; i++) {
		err = fresh_once(b, &t);
		if (err)
			return err;
		b->t_fresh = best(b->t_fresh, t);
	}
	return 0;
}

/* Never-touched memory must become zeroed device pages with no copy. */
static int untouched_once(struct bench *b, double *t)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	size_t pages = b->size / page_size();
	void *p;
	int err;

	*t = 0;
	p = map_aligned(b->size);
	if (!p)
		return bench_err("mmap", -errno);
	*t = now_sec();
	err = uhmm_migrate_ex(b->h, p, b->size, b->dev, 0, &res);
	*t = now_sec() - *t;
	if (err < 0) {
		err = bench_err("uhmm_migrate untouched", err);
	} else if (res.moved != pages || res.zero_filled != pages) {
		fprintf(stderr, "uhmm bench: untouched: %zu pages, moved %zu, "
			"zero-filled %zu\n", pages, res.moved, res.zero_filled);
		err = -EIO;
	} else if (check_sample(p, b->size, true)) {
		err = bench_err("untouched pages not zero", -EIO);
	} else {
		err = check_placement(b, p, b->dev_id);
	}
	/* Unmapping managed memory is ordinary use: uhmm frees the pages. */
	munmap(p, b->size);
	return err;
}

static int measure_untouched(struct bench *b)
{
	double t;
	int i, err;

	if (b->t_untouched)
		return 0;
	for (i = 0; i < b->repeat; i++) {
		err = untouched_once(b, &t);
		if (err)
			return err;
		b->t_untouched = best(b->t_untouched, t);
	}
	return 0;
}

static int fig_to_dev(struct bench *b, struct result *r)
{
	int err;

	err = measure_memcpy(b);
	if (err || (err = measure_roundtrips(b)))
		return err;
	r->value = gbps(b, b->t_to_dev);
	r->baseline = "memcpy_populated";
	r->baseline_value = gbps(b, b->t_memcpy);
	return 0;
}

static int fig_to_sys(struct bench *b, struct result *r)
{
	int err;

	err = measure_fresh(b);
	if (err || (err = measure_roundtrips(b)))
		return err;
	r->value = gbps(b, b->t_to_sys);
	r->baseline = "fresh_thp_populate_memcpy";
	r->baseline_value = gbps(b, b->t_fresh);
	return 0;
}

static int fig_untouched(struct bench *b, struct result *r)
{
	int err;

	err = measure_roundtrips(b);
	if (err || (err = measure_untouched(b)))
		return err;
	r->value = b->t_untouched * 1e3;
	r->baseline = "migrate_sys_to_coherent";
	r->baseline_value = b->t_to_dev * 1e3;
	return 0;
}

static const struct figure figures[] = {
	{ "migrate_sys_to_coherent_1g", "GB/s", true,  fig_to_dev },
	{ "migrate_coherent_to_sys_1g", "GB/s", true,  fig_to_sys },
	{ "migrate_untouched_1g",       "ms",   false, fig_untouched },
};
#define NR_FIGURES	(sizeof(figures) / sizeof(figures[0]))

static void print_result(const struct bench *b, const struct figure *f,
			 const struct result *r)
{
	double ratio = f->is_rate ? r->value / r->baseline_value :
				    r->baseline_value / r->value;

	if (b->json) {
		printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
		       "\"baseline\":\"%s\",\"baseline_value\":%.3f,"
		       "\"ratio\":%.3f,\"bytes\":%zu,\"runs\":%d,"
		       "\"stat\":\"best\"}\n",
		       f->name, r->value, f->unit, r->baseline,
		       r->baseline_value, ratio, b->size, b->repeat);
	} else {
		printf("%-28s %9.3f %-4s  baseline %-26s %9.3f %-4s  "
		       "ratio %.3f\n", f->name, r->value, f->unit,
		       r->baseline, r->baseline_value, f->unit, ratio);
	}
	fflush(stdout);
}

static int find_figure(const char *name)
{
	size_t i;

	for (i = 0; i < NR_FIGURES; i++)
		if (!strcmp(name, figures[i].name))
			return (int)i;
	return -1;
}

static int parse_repeat(const char *s, int *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < 1 || v > 1000)
		return -EINVAL;
	*out = (int)v;
	return 0;
}

static int parse_size_arg(struct bench *b, const char *s)
{
	size_t ps = page_size();

	if (parse_size(s, &b->size) || b->size < ps)
		return usage_error("bench: bad --size '%s' (bytes, at least "
				   "one page; K, M, G suffixes)", s);
	b->size = (b->size + ps - 1) & ~(ps - 1);
	return 0;
}

static void list_figures(void)
{
	size_t i;

	for (i = 0; i < NR_FIGURES; i++)
		printf("%s\n", figures[i].name);
}

/* An option with a value, as "--opt VALUE" or "--opt=VALUE". */
static const char *opt_value(const char *opt, int argc, char **argv, int *i)
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

/* 0: go on; -1: --help or --list printed; EXIT_USAGE: a mistake. */
static int bench_args(struct bench *b, bool *sel, int argc, char **argv)
{
	const char *v;
	int i, f;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			b->json = true;
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			print_usage(stdout);
			return -1;
		} else if (!strcmp(a, "--list")) {
			list_figures();
			return -1;
		} else if ((v = opt_value("--size", argc, argv, &i))) {
			if (parse_size_arg(b, v))
				return EXIT_USAGE;
		} else if ((v = opt_value("--repeat", argc, argv, &i))) {
			if (parse_repeat(v, &b->repeat))
				return usage_error("bench: bad --repeat '%s'", v);
		} else if (a[0] == '-') {
			return usage_error("bench: unknown or incomplete option "
					   "'%s'", a);
		} else if ((f = find_figure(a)) < 0) {
			return usage_error("bench: unknown figure '%s' (see "
					   "'uhmm bench --list')", a);
		} else {
			sel[f] = true;
		}
	}
	return 0;
}

static bool none_selected(const bool *sel)
{
	size_t i;

	for (i = 0; i < NR_FIGURES; i++)
		if (sel[i])
			return false;
	return true;
}

static int run_figures(struct bench *b, const bool *sel)
{
	struct result r;
	size_t i;
	int err;

	for (i = 0; i < NR_FIGURES; i++) {
		if (!sel[i])
			continue;
		err = setup(b);
		if (err || (err = figures[i].run(b, &r)))
			return err;
		print_result(b, &figures[i], &r);
	}
	return 0;
}

int cmd_bench(int argc, char **argv)
{
	struct bench b = { .size = DEFAULT_SIZE, .repeat = DEFAULT_REPEAT };
	bool sel[NR_FIGURES] = { false };
	char sz[32];
	size_t i;
	int err;

	err = bench_args(&b, sel, argc, argv);
	if (err)
		return err < 0 ? 0 : err;
	if (none_selected(sel))
		for (i = 0; i < NR_FIGURES; i++)
			sel[i] = true;
	if (!b.json)
		printf("# uhmm bench: %s per figure, best of %d runs, GB = 1e9 "
		       "bytes; ratio = times better than baseline\n",
		       fmt_size(b.size, sz, sizeof(sz)), b.repeat);
	fflush(stdout);
	err = run_figures(&b, sel);
	teardown(&b);
	return err ? EXIT_FAIL : 0;
}
