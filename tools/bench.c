// SPDX-License-Identifier: MIT
/*
 * `uhmm bench`: migration figures, each next to a baseline measured in the
 * same run on the same machine, because absolute numbers on a VM are noise
 * while ratios are not.
 *
 * Every measurement runs `repeat` times and the best run counts, for the
 * figure and its baseline alike; one shorter than a millisecond runs on
 * for a quarter of a second (another_run).  Migrated data is checked after every run
 * (one word in every page, plus every word once at the end), so a broken
 * migration cannot produce a fast number.
 *
 * One context serves all figures but the fault latency, with a simulated
 * coherent device and a simulated PRIVATE device, each registered the
 * first time a selected figure needs it: the sim devices populate their
 * memory at registration, which takes seconds per GiB here and is not what
 * we measure.  cpu_fault_4k_private has a context of its own, opened with
 * fault_around = one page, and a PRIVATE device of its own;
 * cpu_fault_4k_private_signal another such, opened with
 * UHMM_OPEN_FAULT_SIGNAL as well (faults served in the faulting thread).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tool.h"

#if UHMM_HAVE_OPENCL
#define CL_TARGET_OPENCL_VERSION 120
#include <uhmm_opencl.h>
#endif

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE	23
#endif

#define HUGE_SIZE	(2 * MIB)
#define DEV_SLACK	(64 * MIB)	/* 2 MiB chunk rounding, staging */
#define DEFAULT_SIZE	GIB
#define DEFAULT_REPEAT	3
#define PATTERN_SEED	0x5eedull
#define FAULT_TOUCHES	16384		/* most random touches per fault run */
#define FAULT_RNG_SEED	0x9e3779b9u
#define FIG_SKIPPED	1		/* a figure's run: nothing to measure here */

struct bench {
	size_t size;
	int repeat;
	bool json;
	struct uhmm *h;
	struct uhmm_dev *dev;		/* coherent, registered when first needed */
	int dev_id;
	struct uhmm_dev *pdev;		/* PRIVATE, registered when first needed */
	int pdev_id;
	uint64_t *src;			/* populated, holds the pattern */
	/* cpu_fault_4k_private(_signal): a context with fault_around = one
	 * page, faults served by the reader [0] or by signal [1] */
	struct fault_ctx {
		struct uhmm *h;
		struct uhmm_dev *dev;
		int dev_id;
		double us;	/* best microseconds per touch */
	} fault[2];
	/* best times in seconds; 0 = not measured yet in this run */
	double t_to_dev, t_to_sys, t_memcpy, t_fresh, t_untouched, t_recycled;
	double t_to_pdev, t_from_pdev, t_seq_read;
	/* best microseconds per touch of fresh memory */
	double us_first_touch;
	/* migrate_opencl_1g: an OpenCL device in h, when built with OpenCL */
	struct uhmm_dev *odev;
	int odev_id;
	double t_to_ocl, t_cl_write;
	/* mirrors: a mirror of the private device */
	struct uhmm_mirror *mirror;
	double t_snapshot, t_pagemap, t_sim_read;
	int snapshot_runs;
	/* placement policy: device reads per second (best), by setup */
	double hot_on, hot_off, hot_pinned;
	double t_seed, t_seed_base;
};

struct result {
	double value;
	const char *baseline;
	double baseline_value;
	int runs;			/* 0: b->repeat */
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

static int check_placement_in(struct uhmm *h, struct bench *b, const void *p,
			      int want)
{
	size_t counts[WHERE_SLOTS], n = pages_spanned(p, b->size);
	int err;

	err = count_where(h, p, b->size, counts);
	if (err < 0)
		return bench_err("uhmm_where", err);
	if (counts[want + 1] == n)
		return 0;
	fprintf(stderr, "uhmm bench: %zu of %zu pages not at location %d "
		"after the migration\n", n - counts[want + 1], n, want);
	return -EIO;
}

static int check_placement(struct bench *b, const void *p, int want)
{
	return check_placement_in(b->h, b, p, want);
}

/* A simulated device of the bench's size (plus slack) in context h. */
static int add_sim(struct uhmm *h, const char *name, enum uhmm_mem kind,
		   size_t size, struct uhmm_dev **dev, int *id)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	int err;

	err = uhmm_dev_add_sim(h, name, kind, size + DEV_SLACK, dev);
	if (err < 0)
		return bench_err(kind == UHMM_MEM_PRIVATE ?
				 "uhmm_dev_add_sim (PRIVATE)" :
				 "uhmm_dev_add_sim (COHERENT)", err);
	err = uhmm_dev_info(*dev, &info);
	if (err < 0)
		return bench_err("uhmm_dev_info", err);
	*id = info.id;
	return 0;
}

static int need_coherent(struct bench *b)
{
	if (b->dev)
		return 0;
	return add_sim(b->h, "bench-coherent", UHMM_MEM_COHERENT, b->size,
		       &b->dev, &b->dev_id);
}

static int need_private(struct bench *b)
{
	if (b->pdev)
		return 0;
	return add_sim(b->h, "bench-private", UHMM_MEM_PRIVATE, b->size,
		       &b->pdev, &b->pdev_id);
}

/* A buffer of the program's, populated with the pattern.  It may use
 * huge pages, like the baselines'. */
static uint64_t *map_program_buffer(size_t size)
{
	uint64_t *p = map_aligned(size);

	if (!p)
		return NULL;
	madvise(p, size, MADV_HUGEPAGE);
	for (size_t w = 0; w < size / sizeof(uint64_t); w++)
		p[w] = pattern(w);
	return p;
}

static int setup(struct bench *b)
{
	int err;

	if (b->h)
		return 0;
	err = uhmm_open(&b->h, NULL);
	if (err < 0)
		return bench_err("uhmm_open (see 'uhmm info')", err);
	b->src = map_program_buffer(b->size);
	return b->src ? 0 : bench_err("mmap source", -errno);
}

static void teardown(struct bench *b)
{
	uhmm_close(b->fault[0].h);
	uhmm_close(b->fault[1].h);
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
	err = need_coherent(b);
	if (err)
		return err;
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

/*
 * The same onto device memory the program unmapped just before, with no
 * pause for the background scrubber: every page must be zeroed and its
 * entry in uhmm's view rebuilt on the migration's path.
 */
static int recycled_once(struct bench *b, double *t)
{
	void *p = map_aligned(b->size);
	int err;

	*t = 0;
	if (!p)
		return bench_err("mmap", -errno);
	err = uhmm_migrate(b->h, p, b->size, b->dev, 0);
	munmap(p, b->size);
	if (err < 0)
		return bench_err("uhmm_migrate untouched", err);
	return untouched_once(b, t);
}

static int measure_recycled(struct bench *b)
{
	double t;
	int err;

	if (b->t_recycled)
		return 0;
	err = need_coherent(b);
	for (int i = 0; !err && i < b->repeat; i++) {
		err = recycled_once(b, &t);
		if (!err)
			b->t_recycled = best(b->t_recycled, t);
	}
	return err;
}

/* Device memory the last run freed is made ready again (zeroed, mapped
 * in uhmm's view) by a background scrubber once the program leaves uhmm
 * alone for a moment; a program between phases gives it that moment. */
#define SCRUB_PAUSE_US	(500 * 1000)

static int measure_untouched(struct bench *b)
{
	double t;
	int i, err;

	if (b->t_untouched)
		return 0;
	err = need_coherent(b);
	if (err)
		return err;
	for (i = 0; i < b->repeat; i++) {
		usleep(SCRUB_PAUSE_US);
		err = untouched_once(b, &t);
		if (err)
			return err;
		b->t_untouched = best(b->t_untouched, t);
	}
	return 0;
}

/*
 * Populated memory to the PRIVATE device and back, `repeat` times.  On the
 * device only the placement is checked: reading the data there would
 * fault it back.  The data is checked once it is back.
 */
static int measure_private_roundtrips(struct bench *b)
{
	double t;
	size_t bad;
	int i, err;

	if (b->t_to_pdev)
		return 0;
	err = need_private(b);
	if (err)
		return err;
	for (i = 0; i < b->repeat; i++) {
		err = timed_migrate(b, b->src, b->pdev, &t);
		if (err || (err = check_placement(b, b->src, b->pdev_id)))
			return err;
		b->t_to_pdev = best(b->t_to_pdev, t);
		err = timed_migrate(b, b->src, NULL, &t);
		if (err || (err = check_moved(b, UHMM_LOC_SYSTEM,
					      "back from the PRIVATE device")))
			return err;
		b->t_from_pdev = best(b->t_from_pdev, t);
	}
	bad = check_all(b->src, b->size);
	if (!bad)
		return 0;
	fprintf(stderr, "uhmm bench: %zu words wrong after the PRIVATE round "
		"trips\n", bad);
	return -EIO;
}

/*
 * The CPU reads the whole range, in order, while it lives on the PRIVATE
 * device: every page comes back through the fault path (default options:
 * fault_around 64 KiB, which the library may grow for sequential access).
 */
static int seq_read_once(struct bench *b, double *t)
{
	const uint64_t *p = b->src;
	size_t w, n = b->size / sizeof(uint64_t), bad;
	uint64_t x = 0;
	int err;

	err = uhmm_migrate(b->h, b->src, b->size, b->pdev, 0);
	if (err < 0)
		return bench_err("uhmm_migrate to the PRIVATE device", err);
	err = check_placement(b, b->src, b->pdev_id);
	if (err)
		return err;
	*t = now_sec();
	for (w = 0; w < n; w++)
		x += p[w] ^ w;
	*t = now_sec() - *t;
	/* What was read must be the pattern: check it now, untimed. */
	for (w = 0; w < n; w++)
		x -= pattern(w) ^ w;
	bad = check_all(b->src, b->size);
	if (x || bad) {
		fprintf(stderr, "uhmm bench: sequential read of the PRIVATE device "
			"gave wrong data (%zu words wrong)\n", bad);
		return -EIO;
	}
	return check_placement(b, b->src, UHMM_LOC_SYSTEM);
}

static int measure_seq_read(struct bench *b)
{
	double t;
	int i, err;

	if (b->t_seq_read)
		return 0;
	err = need_private(b);
	if (err)
		return err;
	for (i = 0; i < b->repeat; i++) {
		err = seq_read_once(b, &t);
		if (err)
			return err;
		b->t_seq_read = best(b->t_seq_read, t);
	}
	return 0;
}

/* Touches for the fault figure: half the pages, at most FAULT_TOUCHES. */
static size_t fault_touches(const struct bench *b)
{
	size_t pages = b->size / page_size(), k = pages / 2;

	if (k > FAULT_TOUCHES)
		k = FAULT_TOUCHES;
	return k ? k : 1;
}

/* k distinct random page indices below `pages` (a partial shuffle with a
 * fixed seed, so that the figure and its baseline touch the same pages). */
static size_t *random_pages(size_t pages, size_t k)
{
	size_t *perm = malloc(pages * sizeof(*perm)), i;
	uint64_t x = FAULT_RNG_SEED;

	if (!perm)
		return NULL;
	for (i = 0; i < pages; i++)
		perm[i] = i;
	for (i = 0; i < k; i++) {
		size_t j, tmp;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		j = i + (size_t)(x % (pages - i));
		tmp = perm[i];
		perm[i] = perm[j];
		perm[j] = tmp;
	}
	return perm;
}

static int setup_fault(struct fault_ctx *f, size_t size, bool by_signal)
{
	struct uhmm_opts o = { .sz = sizeof(o) };
	int err;

	if (f->h)
		return 0;
	o.fault_around = page_size();
	o.flags = by_signal ? UHMM_OPEN_FAULT_SIGNAL : 0;
	err = uhmm_open(&f->h, &o);
	if (err < 0)
		return bench_err(by_signal ? "uhmm_open (fault_around = one page, "
				 "UHMM_OPEN_FAULT_SIGNAL)" : "uhmm_open (fault_around = one page)", err);
	return add_sim(f->h, "bench-private-faults", UHMM_MEM_PRIVATE, size, &f->dev,
		       &f->dev_id);
}

/*
 * One run: the range on the device, then k stores, each to a page of its
 * own in random order: each is one CPU fault that brings one page back.
 * The stores write the value already there, so the data check is the
 * pattern's.
 */
static int fault_once(struct bench *b, struct fault_ctx *f, uint64_t *p, const size_t *pg,
		      size_t k, double *us)
{
	struct uhmm_stats s0 = { .sz = sizeof(s0) }, s1 = { .sz = sizeof(s1) };
	size_t wpp = page_size() / sizeof(uint64_t), counts[WHERE_SLOTS], i;
	double t;
	int err;

	err = uhmm_migrate(f->h, p, b->size, f->dev, 0);
	if (err < 0)
		return bench_err("uhmm_migrate to the PRIVATE device", err);
	err = check_placement_in(f->h, b, p, f->dev_id);
	if (err)
		return err;
	uhmm_stats(f->h, &s0);
	t = now_sec();
	for (i = 0; i < k; i++) {
		size_t w = pg[i] * wpp + (pg[i] * 37) % wpp;

		((volatile uint64_t *)p)[w] = pattern(w);
	}
	t = now_sec() - t;
	uhmm_stats(f->h, &s1);
	*us = t / (double)k * 1e6;
	err = count_where(f->h, p, b->size, counts);
	if (err < 0)
		return bench_err("uhmm_where", err);
	if (counts[UHMM_LOC_SYSTEM + 1] < k || s1.cpu_faults - s0.cpu_faults < k) {
		fprintf(stderr, "uhmm bench: %zu random touches: %zu pages back, "
			"%llu CPU faults\n", k, counts[UHMM_LOC_SYSTEM + 1],
			(unsigned long long)(s1.cpu_faults - s0.cpu_faults));
		return -EIO;
	}
	/* More is allowed: the library may widen the window when two
	 * touches in a row happen to be neighbours (a sequential guess). */
	if (counts[UHMM_LOC_SYSTEM + 1] > k + k / 100)
		fprintf(stderr, "uhmm bench: note: %zu random touches brought %zu "
			"pages back (fault_around is one page)\n", k,
			counts[UHMM_LOC_SYSTEM + 1]);
	return 0;
}

/*
 * Baseline: the kernel's own first-touch fault, in the same run: a store
 * to each of the same pages of a fresh anonymous mapping of the same size
 * (4 KiB pages: MADV_NOHUGEPAGE), which allocates and zeroes one page.
 */
static int first_touch_once(struct bench *b, const size_t *pg, size_t k,
			    double *us)
{
	size_t wpp = page_size() / sizeof(uint64_t), i;
	uint64_t *p;
	double t;

	p = map_aligned(b->size);
	if (!p)
		return bench_err("mmap", -errno);
	madvise(p, b->size, MADV_NOHUGEPAGE);
	t = now_sec();
	for (i = 0; i < k; i++)
		((volatile uint64_t *)p)[pg[i] * wpp] = i + 1;
	t = now_sec() - t;
	*us = t / (double)k * 1e6;
	munmap(p, b->size);
	return 0;
}

static int measure_faults(struct bench *b, bool by_signal)
{
	struct fault_ctx *f = &b->fault[by_signal];
	size_t pages = b->size / page_size(), k = fault_touches(b), w;
	size_t *pg;
	uint64_t *p;
	double us;
	int i, err;

	if (f->us)
		return 0;
	err = setup_fault(f, b->size, by_signal);
	if (err)
		return err;
	pg = random_pages(pages, k);
	p = map_aligned(b->size);
	if (!pg || !p) {
		free(pg);
		return bench_err("memory for the fault figure", -ENOMEM);
	}
	for (w = 0; w < b->size / sizeof(uint64_t); w++)
		p[w] = pattern(w);
	for (i = 0; i < b->repeat && !err; i++) {
		err = fault_once(b, f, p, pg, k, &us);
		if (!err)
			f->us = best(f->us, us);
		if (!err && check_sample(p, b->size, false))
			err = bench_err("data after the random faults", -EIO);
		if (!err)
			err = first_touch_once(b, pg, k, &us);
		if (!err)
			b->us_first_touch = best(b->us_first_touch, us);
	}
	if (!err && check_all(p, b->size))
		err = bench_err("data after the fault runs", -EIO);
	/* Unmapping managed memory is ordinary use: uhmm frees the pages. */
	munmap(p, b->size);
	free(pg);
	return err;
}

static int fig_to_private(struct bench *b, struct result *r)
{
	int err;

	err = measure_memcpy(b);
	if (err || (err = measure_private_roundtrips(b)))
		return err;
	r->value = gbps(b, b->t_to_pdev);
	r->baseline = "memcpy_populated";
	r->baseline_value = gbps(b, b->t_memcpy);
	return 0;
}

static int fig_from_private(struct bench *b, struct result *r)
{
	int err;

	err = measure_fresh(b);
	if (err || (err = measure_private_roundtrips(b)))
		return err;
	r->value = gbps(b, b->t_from_pdev);
	r->baseline = "fresh_thp_populate_memcpy";
	r->baseline_value = gbps(b, b->t_fresh);
	return 0;
}

static int fig_seq_read(struct bench *b, struct result *r)
{
	int err;

	err = measure_fresh(b);
	if (err || (err = measure_seq_read(b)))
		return err;
	r->value = gbps(b, b->t_seq_read);
	r->baseline = "fresh_thp_populate_memcpy";
	r->baseline_value = gbps(b, b->t_fresh);
	return 0;
}

static int fault_figure(struct bench *b, struct result *r, bool by_signal)
{
	int err = measure_faults(b, by_signal);

	if (err)
		return err;
	r->value = b->fault[by_signal].us;
	r->baseline = "kernel_first_touch_4k";
	r->baseline_value = b->us_first_touch;
	return 0;
}

static int fig_fault(struct bench *b, struct result *r)
{
	return fault_figure(b, r, false);
}

static int fig_fault_signal(struct bench *b, struct result *r)
{
	return fault_figure(b, r, true);
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

static int fig_recycled(struct bench *b, struct result *r)
{
	int err;

	err = measure_roundtrips(b);
	if (err || (err = measure_recycled(b)))
		return err;
	r->value = b->t_recycled * 1e3;
	r->baseline = "migrate_sys_to_coherent";
	r->baseline_value = b->t_to_dev * 1e3;
	return 0;
}

#if UHMM_HAVE_OPENCL
/*
 * migrate_opencl_1g: populated system memory to device-PRIVATE memory on
 * OpenCL platform 0, device 0 (uhmm_dev_add_opencl: one cl_mem, pages
 * copied in with clEnqueueWriteBuffer), and back, `repeat` times.  The
 * baseline is the driver's own copy alone: one blocking
 * clEnqueueWriteBuffer of the same populated source into a buffer of the
 * same size in the device's context, made real (filled) beforehand as the
 * device's pool is.  FIG_SKIPPED where there is no OpenCL platform.
 */
static int need_opencl(struct bench *b)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	int err;

	if (b->odev)
		return 0;
	err = uhmm_dev_add_opencl(b->h, 0, 0, b->size + DEV_SLACK, &b->odev);
	if (err == -ENODEV) {
		fprintf(stderr, "uhmm bench: migrate_opencl_1g: skipped: no "
			"OpenCL platform 0 with a device 0 here\n");
		return FIG_SKIPPED;
	}
	if (err < 0)
		return bench_err("uhmm_dev_add_opencl", err);
	err = uhmm_dev_info(b->odev, &info);
	if (err < 0)
		return bench_err("uhmm_dev_info", err);
	b->odev_id = info.id;
	return 0;
}

/* Every word the OpenCL buffer m holds, read back 64 MiB at a time. */
static int check_cl_buffer(struct bench *b, cl_command_queue q, cl_mem m)
{
	size_t chunk = 64 * MIB, off, w, bad = 0;
	uint64_t *tmp = map_aligned(chunk);

	if (!tmp)
		return bench_err("mmap", -errno);
	for (off = 0; off < b->size && !bad; off += chunk) {
		size_t n = b->size - off < chunk ? b->size - off : chunk;

		if (clEnqueueReadBuffer(q, m, CL_TRUE, off, n, tmp, 0, NULL,
					NULL) != CL_SUCCESS) {
			munmap(tmp, chunk);
			return bench_err("clEnqueueReadBuffer", -EIO);
		}
		for (w = 0; w < n / sizeof(uint64_t); w++)
			bad += tmp[w] != pattern(off / sizeof(uint64_t) + w);
	}
	munmap(tmp, chunk);
	return bad ? bench_err("clEnqueueWriteBuffer baseline", -EIO) : 0;
}

static int measure_cl_write(struct bench *b)
{
	static const uint64_t zero;
	cl_command_queue q;
	cl_context ctx;
	cl_mem m;
	cl_int e;
	double t;
	int i, err;

	err = uhmm_opencl_context(b->odev, &ctx, NULL, &q);
	if (err < 0)
		return bench_err("uhmm_opencl_context", err);
	m = clCreateBuffer(ctx, CL_MEM_READ_WRITE, b->size, NULL, &e);
	if (!m)
		return bench_err("clCreateBuffer", e == CL_MEM_OBJECT_ALLOCATION_FAILURE ||
				 e == CL_OUT_OF_HOST_MEMORY ? -ENOMEM : -EIO);
	e = clEnqueueFillBuffer(q, m, &zero, sizeof(zero), 0, b->size, 0,
				NULL, NULL);
	if (e == CL_SUCCESS)
		e = clFinish(q);
	for (i = 0; i < b->repeat && e == CL_SUCCESS; i++) {
		t = now_sec();
		e = clEnqueueWriteBuffer(q, m, CL_TRUE, 0, b->size, b->src, 0,
					 NULL, NULL);
		t = now_sec() - t;
		b->t_cl_write = best(b->t_cl_write, t);
	}
	err = e == CL_SUCCESS ? check_cl_buffer(b, q, m) :
				bench_err("clEnqueueWriteBuffer baseline", -EIO);
	clReleaseMemObject(m);
	return err;
}

static int measure_opencl(struct bench *b)
{
	double t;
	int i, err;

	if (b->t_to_ocl)
		return 0;
	err = need_opencl(b);
	if (err)
		return err;
	for (i = 0; i < b->repeat; i++) {
		err = timed_migrate(b, b->src, b->odev, &t);
		if (err || (err = check_placement(b, b->src, b->odev_id)))
			return err;
		b->t_to_ocl = best(b->t_to_ocl, t);
		err = timed_migrate(b, b->src, NULL, &t);
		if (err || (err = check_moved(b, UHMM_LOC_SYSTEM,
					      "back from the OpenCL device")))
			return err;
	}
	if (check_all(b->src, b->size))
		return bench_err("data after the OpenCL round trips", -EIO);
	return measure_cl_write(b);
}

static int fig_opencl(struct bench *b, struct result *r)
{
	int err = measure_opencl(b);

	if (err)
		return err;
	r->value = gbps(b, b->t_to_ocl);
	r->baseline = "cl_write_buffer_populated";
	r->baseline_value = gbps(b, b->t_cl_write);
	return 0;
}
#endif /* UHMM_HAVE_OPENCL */

/* ---- mirrors ---------------------------------------------------------------- */

static void bench_invalidate(struct uhmm_mirror *m, uintptr_t s, uintptr_t e,
			     enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

/* The source in system memory, and a mirror of the private device. */
static int need_mirror(struct bench *b)
{
	static const struct uhmm_mirror_ops ops = {
		.sz = sizeof(ops), .invalidate = bench_invalidate,
	};
	int err;

	err = setup(b);
	if (!err)
		err = need_private(b);
	if (!err && !b->mirror)
		err = uhmm_mirror_open(b->pdev, &ops, NULL, &b->mirror);
	if (!err)
		err = uhmm_migrate(b->h, b->src, b->size, NULL, 0);
	return err < 0 ? bench_err("a mirror of the private device", err) : 0;
}

/* Baseline: the same range's entries read from /proc/self/pagemap. */
static int pagemap_once(struct bench *b, const void *p, uint64_t *pm, double *t)
{
	size_t n = b->size / page_size(), done = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return bench_err("open /proc/self/pagemap", -errno);
	*t = now_sec();
	while (done < n) {
		ssize_t got = pread(fd, pm + done, (n - done) * 8,
				    ((uintptr_t)p / page_size() + done) * 8);

		if (got <= 0)
			break;
		done += got / 8;
	}
	*t = now_sec() - *t;
	close(fd);
	return done == n ? 0 : bench_err("reading /proc/self/pagemap", -EIO);
}

/*
 * A measurement shorter than a millisecond says more about the VM's moment
 * than about the code: whether the neighbours on the host emptied the
 * shared cache since the last run, whether the other vCPU was asleep.
 * Such a figure and its baseline run in turns `repeat` times, then on
 * until SHORT_RUNS_S of both have passed (at most SHORT_RUNS_MAX runs).
 */
#define SHORT_RUNS_S	0.25
#define SHORT_RUNS_MAX	1000

static bool another_run(const struct bench *b, int done, double spent)
{
	if (done < b->repeat)
		return true;
	return spent < SHORT_RUNS_S && done < SHORT_RUNS_MAX;
}

/*
 * Of a buffer of its own, populated as the source was at setup: the
 * source's pages are wherever the figures before left them (a CPU read
 * from the PRIVATE device brings the first block of each run home in
 * small windows, as 4 KiB pages), and the figure is of populated memory
 * as a program makes it.
 */
static int measure_snapshot(struct bench *b)
{
	size_t n = b->size / page_size();
	struct uhmm_pte *pte = NULL;
	uint64_t *pm = NULL, *buf;
	double t, spent = 0;
	int i, err;

	if (b->t_snapshot)
		return 0;
	err = need_mirror(b);
	if (err)
		return err;
	buf = map_program_buffer(b->size);
	if (!buf)
		return bench_err("mmap", -errno);
	err = uhmm_migrate(b->h, buf, b->size, NULL, 0);
	if (err)
		err = bench_err("uhmm_migrate to system memory", err);
	pte = err ? NULL : calloc(n, sizeof(*pte));
	pm = pte ? calloc(n, sizeof(*pm)) : NULL;
	if (!err && !pm)
		err = bench_err("memory for the snapshot", -ENOMEM);
	for (i = 0; another_run(b, i, spent) && !err; i++) {
		t = now_sec();
		err = uhmm_range_fault(b->mirror, buf, b->size, 0, pte);
		t = now_sec() - t;
		spent += t;
		if (err)
			err = bench_err("uhmm_range_fault snapshot", err);
		else if (!(pte[n - 1].flags & UHMM_PTE_VALID) || pte[0].host != (uintptr_t)buf)
			err = bench_err("the snapshot's entries", -EIO);
		b->t_snapshot = err ? b->t_snapshot : best(b->t_snapshot, t);
		if (!err && !(err = pagemap_once(b, buf, pm, &t)))
			b->t_pagemap = best(b->t_pagemap, t);
		spent += t;
	}
	b->snapshot_runs = i;
	free(pte);
	free(pm);
	munmap(buf, b->size);
	return err;
}

static int measure_sim_read(struct bench *b)
{
	uint64_t *dst;
	double t;
	int i, err;

	if (b->t_sim_read)
		return 0;
	err = need_mirror(b);
	if (err)
		return err;
	dst = map_aligned(b->size);
	if (!dst)
		return bench_err("mmap", -errno);
	madvise(dst, b->size, MADV_POPULATE_WRITE);
	for (i = 0; i < b->repeat && !err; i++) {
		t = now_sec();
		err = uhmm_sim_read(b->pdev, b->src, dst, b->size);
		t = now_sec() - t;
		if (err < 0)
			err = bench_err("uhmm_sim_read", err);
		else
			err = 0;
		if (!err)
			b->t_sim_read = best(b->t_sim_read, t);
	}
	if (!err && check_sample(dst, b->size, false))
		err = bench_err("the bytes the device read", -EIO);
	munmap(dst, b->size);
	return err;
}

static int fig_snapshot(struct bench *b, struct result *r)
{
	int err = measure_snapshot(b);

	if (err)
		return err;
	r->value = b->size / page_size() / b->t_snapshot / 1e6;
	r->baseline = "pagemap_read";
	r->baseline_value = b->size / page_size() / b->t_pagemap / 1e6;
	r->runs = b->snapshot_runs;
	return 0;
}

static int fig_sim_read(struct bench *b, struct result *r)
{
	int err = measure_memcpy(b);

	if (err || (err = measure_sim_read(b)))
		return err;
	r->value = gbps(b, b->t_sim_read);
	r->baseline = "memcpy_populated";
	r->baseline_value = gbps(b, b->t_memcpy);
	return 0;
}

/*
 * policy_oversub_hot25: a device-side workload over a buffer twice the
 * size of a PRIVATE sim device (size / 4), 9 reads in 10 of them in the
 * hot quarter.  The sim device's link to system memory is modelled at
 * an eighth of the memcpy speed measured in the same run (a GPU reads its
 * own memory tens of times faster than system memory over PCIe); its
 * migrations cross that link too.  With the policy (access_threshold
 * HOT_THRESHOLD) the hot blocks move to the device and stay; without it
 * (UINT32_MAX), or with the buffer pinned in system memory, every read
 * crosses the link.
 */
#define HOT_READ	(256 * 1024)
#define HOT_THRESHOLD	32
#define HOT_ROUNDS	8		/* the device's size read this many times */
#define LINK_SHARE	8

enum hot_mode { HOT_POLICY, HOT_OFF, HOT_PINNED };

static size_t hot_pick(uint64_t *rng, size_t buf, size_t hot)
{
	*rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
	if ((*rng >> 33) % 10 < 9)
		return ((*rng >> 13) % (hot / HOT_READ)) * HOT_READ;
	return hot + ((*rng >> 13) % ((buf - hot) / HOT_READ)) * HOT_READ;
}

static int hot_once(struct bench *b, enum hot_mode mode, double *rate)
{
	struct uhmm_opts o = {
		.sz = sizeof(o),
		.access_threshold = mode == HOT_POLICY ? HOT_THRESHOLD : UINT32_MAX,
	};
	size_t dsize = b->size / 4, buf = 2 * dsize, hot = buf / 4, reads, bad = 0;
	uint64_t rng = 0x1234567, *p = NULL, *out = NULL;
	struct uhmm_dev *d;
	struct uhmm *h;
	double t;
	int err;

	err = uhmm_open(&h, &o);
	if (err)
		return bench_err("uhmm_open (policy)", err);
	/* exactly half the buffer: no slack */
	err = uhmm_dev_add_sim(h, "bench-policy", UHMM_MEM_PRIVATE, dsize, &d);
	if (err)
		err = bench_err("uhmm_dev_add_sim (policy)", err);
	if (!err)
		err = uhmm_sim_set_link(d, (uint64_t)(b->size / b->t_memcpy / LINK_SHARE));
	p = err ? NULL : map_aligned(buf);
	out = malloc(HOT_READ);
	if (!err && (!p || !out))
		err = bench_err("mmap", -ENOMEM);
	if (!err) {
		for (size_t w = 0; w < buf / 8; w++)
			p[w] = pattern(w);
		if (mode == HOT_PINNED)
			err = uhmm_pin(h, p, buf);
	}
	reads = HOT_ROUNDS * dsize / HOT_READ;
	t = now_sec();
	for (size_t i = 0; !err && i < reads; i++) {
		size_t off = hot_pick(&rng, buf, hot);

		err = uhmm_sim_read(d, (char *)p + off, out, HOT_READ);
		err = err < 0 ? bench_err("uhmm_sim_read", err) : 0;
		bad += !err && out[HOT_READ / 16] != pattern(off / 8 + HOT_READ / 16);
	}
	t = now_sec() - t;
	if (!err && bad)
		err = bench_err("policy workload read wrong data", -EIO);
	*rate = (double)reads * HOT_READ / t / 1e9;
	free(out);
	if (p)
		munmap(p, buf);
	uhmm_close(h);
	return err;
}

static int measure_hot(struct bench *b)
{
	static const enum hot_mode modes[] = { HOT_POLICY, HOT_OFF, HOT_PINNED };
	double *best_of[] = { &b->hot_on, &b->hot_off, &b->hot_pinned };
	int err = measure_memcpy(b);

	if (err || b->hot_on)
		return err;
	for (int m = 0; m < 3; m++) {
		for (int i = 0; i < b->repeat; i++) {
			double r = 0;

			err = hot_once(b, modes[m], &r);
			if (err)
				return err;
			if (r > *best_of[m])
				*best_of[m] = r;
		}
	}
	return 0;
}

static int fig_hot25(struct bench *b, struct result *r)
{
	int err = measure_hot(b);

	if (err)
		return err;
	r->value = b->hot_on;
	r->baseline = "policy_off";
	r->baseline_value = b->hot_off;
	return 0;
}

static int fig_hot25_vs_system(struct bench *b, struct result *r)
{
	int err = measure_hot(b);

	if (err)
		return err;
	r->value = b->hot_on;
	r->baseline = "pinned_in_system";
	r->baseline_value = b->hot_pinned;
	return 0;
}

/*
 * seed_first_touch_64m: the seed scenario.  A fresh 64 MiB buffer given
 * PREFERRED_LOCATION on the coherent device, then written by the CPU: the
 * writes land in device memory at first touch.  Baseline: malloc (a fresh
 * mapping), the same writes into system memory, then an explicit
 * migration to the device.  Both end with the bytes on the device; the
 * scrubber's pause comes first (outside the timing), as for
 * migrate_untouched_1g.
 */
#define SEED_BYTES	(64 * MIB)

static int seed_once(struct bench *b, bool advise, double *t)
{
	uint64_t *p = map_aligned(SEED_BYTES);
	int err = 0;

	if (!p)
		return bench_err("mmap", -errno);
	usleep(SCRUB_PAUSE_US);
	*t = now_sec();
	if (advise)
		err = uhmm_advise(b->h, p, SEED_BYTES, UHMM_ADV_PREFERRED_LOCATION, b->dev);
	for (size_t w = 0; !err && w < SEED_BYTES / 8; w++)
		p[w] = pattern(w);
	if (!err && !advise)
		err = uhmm_migrate(b->h, p, SEED_BYTES, b->dev, 0);
	*t = now_sec() - *t;
	if (err)
		err = bench_err(advise ? "uhmm_advise" : "uhmm_migrate", err);
	if (!err) {
		struct bench sub = *b;

		sub.size = SEED_BYTES;
		err = check_placement(&sub, p, b->dev_id);
		if (!err && check_sample(p, SEED_BYTES, false))
			err = bench_err("seed: wrong data", -EIO);
	}
	munmap(p, SEED_BYTES);
	return err;
}

static int fig_seed(struct bench *b, struct result *r)
{
	int err = need_coherent(b);

	for (int i = 0; !err && i < b->repeat; i++) {
		double t1 = 0, t2 = 0;

		err = seed_once(b, true, &t1);
		if (!err)
			err = seed_once(b, false, &t2);
		b->t_seed = best(b->t_seed, t1);
		b->t_seed_base = best(b->t_seed_base, t2);
	}
	if (err)
		return err;
	r->value = b->t_seed * 1e3;
	r->baseline = "malloc_write_migrate";
	r->baseline_value = b->t_seed_base * 1e3;
	return 0;
}

/*
 * fork_stall_private_256m: how long fork() holds the parent when 256 MiB
 * live on the PRIVATE device (the child gets a private snapshot: every
 * device-resident page is copied once, in the parent's fork).  Baseline:
 * fork() with the same 256 MiB in system memory (copy-on-write, nothing
 * copied).  The child exits at once.
 */
#define FORK_BYTES	(256 * MIB)

static int fork_once(double *t)
{
	pid_t pid;
	int st;

	*t = now_sec();
	pid = fork();
	if (pid == 0)
		_exit(0);
	*t = now_sec() - *t;
	if (pid < 0)
		return bench_err("fork", -errno);
	waitpid(pid, &st, 0);
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : bench_err("fork child", -EIO);
}

/* One read of every page of [p, p + bytes): seconds. */
static double read_pages(const uint64_t *p, size_t bytes)
{
	volatile uint64_t sink = 0;
	double t = now_sec();

	for (size_t w = 0; w < bytes / 8; w += page_size() / 8)
		sink += p[w];
	(void)sink;
	return now_sec() - t;
}

/*
 * The best of b->repeat forks with FORK_BYTES in system memory (*sys) and
 * on dev (*on_dev); with `read`, each fork's time includes one read of
 * every page afterwards.
 */
static int fork_cost(struct bench *b, struct uhmm_dev *dev, bool read, double *sys,
		     double *on_dev)
{
	uint64_t *p = map_aligned(FORK_BYTES);
	int err = p ? 0 : bench_err("mmap", -errno);

	for (size_t w = 0; p && w < FORK_BYTES / 8; w++)
		p[w] = pattern(w);
	for (int i = 0; !err && i < 2 * b->repeat; i++) {
		struct uhmm_dev *to = i % 2 ? dev : NULL;
		double t = 0;

		err = uhmm_migrate(b->h, p, FORK_BYTES, to, 0);
		if (!err)
			err = fork_once(&t);
		if (!err && read)
			t += read_pages(p, FORK_BYTES);
		if (!err && to)
			*on_dev = best(*on_dev, t);
		else if (!err)
			*sys = best(*sys, t);
	}
	if (p)
		munmap(p, FORK_BYTES);
	return err < 0 ? bench_err("fork figure", err) : err;
}

static int fig_fork(struct bench *b, struct result *r)
{
	double sys = 0, dev = 0;
	int err = need_private(b);

	if (!err)
		err = fork_cost(b, b->pdev, false, &sys, &dev);
	if (err)
		return err;
	r->value = dev * 1e3;
	r->baseline = "fork_system_256m";
	r->baseline_value = sys * 1e3;
	return 0;
}

/*
 * fork_coherent_256m: what a fork costs the parent when 256 MiB live on
 * the COHERENT device: fork() itself (the staging copy) and then one read
 * of every page, each 2 MiB block of which is a minor fault that maps it
 * back (the fork dropped the PTEs so that other threads' stores wait).
 * Baseline: the same with the 256 MiB in system memory (copy-on-write; a
 * read takes no fault).
 */
static int fig_fork_coherent(struct bench *b, struct result *r)
{
	double sys = 0, dev = 0;
	int err = need_coherent(b);

	if (!err)
		err = fork_cost(b, b->dev, true, &sys, &dev);
	if (err)
		return err;
	r->value = dev * 1e3;
	r->baseline = "fork_system_read_256m";
	r->baseline_value = sys * 1e3;
	return 0;
}

static const struct figure figures[] = {
	{ "migrate_sys_to_coherent_1g", "GB/s", true,  fig_to_dev },
	{ "migrate_coherent_to_sys_1g", "GB/s", true,  fig_to_sys },
	{ "migrate_untouched_1g",       "ms",   false, fig_untouched },
	{ "migrate_untouched_recycled_1g", "ms", false, fig_recycled },
	{ "migrate_sys_to_private_1g",  "GB/s", true,  fig_to_private },
	{ "migrate_private_to_sys_1g",  "GB/s", true,  fig_from_private },
	{ "cpu_seq_read_private_1g",    "GB/s", true,  fig_seq_read },
	{ "cpu_fault_4k_private",       "us",   false, fig_fault },
	{ "cpu_fault_4k_private_signal", "us",  false, fig_fault_signal },
	{ "range_fault_snapshot_1g",    "Mpages/s", true, fig_snapshot },
	{ "sim_read_1g",                "GB/s", true,  fig_sim_read },
	{ "policy_oversub_hot25",       "GB/s", true,  fig_hot25 },
	{ "policy_oversub_hot25_vs_system", "GB/s", true, fig_hot25_vs_system },
	{ "seed_first_touch_64m",       "ms",   false, fig_seed },
	{ "fork_stall_private_256m",    "ms",   false, fig_fork },
	{ "fork_coherent_256m",         "ms",   false, fig_fork_coherent },
#if UHMM_HAVE_OPENCL
	{ "migrate_opencl_1g",          "GB/s", true,  fig_opencl },
#endif
};
#define NR_FIGURES	(sizeof(figures) / sizeof(figures[0]))

static void print_result(const struct bench *b, const struct figure *f,
			 const struct result *r)
{
	double ratio = f->is_rate ? r->value / r->baseline_value :
				    r->baseline_value / r->value;
	int runs = r->runs ? r->runs : b->repeat;

	if (b->json) {
		printf("{\"name\":\"%s\",\"value\":%.3f,\"unit\":\"%s\","
		       "\"baseline\":\"%s\",\"baseline_value\":%.3f,"
		       "\"ratio\":%.3f,\"bytes\":%zu,\"runs\":%d,"
		       "\"stat\":\"best\"}\n",
		       f->name, r->value, f->unit, r->baseline,
		       r->baseline_value, ratio, b->size, runs);
	} else {
		printf("%-28s %9.3f %-4s  baseline %-26s %9.3f %-4s  "
		       "ratio %.3f", f->name, r->value, f->unit,
		       r->baseline, r->baseline_value, f->unit, ratio);
		if (runs != b->repeat)
			printf("  (best of %d runs)", runs);
		printf("\n");
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
		r = (struct result){ 0 };
		err = setup(b);
		if (!err)
			err = figures[i].run(b, &r);
		if (err == FIG_SKIPPED)
			continue;
		if (err)
			return err;
		print_result(b, &figures[i], &r);
	}
	return 0;
}

/*
 * A guest whose idle vCPU halts at once (cpuidle haltpoll with
 * guest_halt_poll_ns 0) pays a trip through the hypervisor each time it
 * wakes a sleeping thread: cpu_fault_4k_private pays it once a fault (16
 * against 8 us here with 50 us of polling), the kernel's own fault never.
 * Said beside the figures, since it is the machine's and not uhmm's.
 */
static void print_idle_policy(void)
{
	char drv[32];
	int ns;

	if (!read_word_file("/sys/devices/system/cpu/cpuidle/current_driver", drv, sizeof(drv)) ||
	    strcmp(drv, "haltpoll"))
		return;
	ns = read_int_file("/sys/module/haltpoll/parameters/guest_halt_poll_ns");
	if (ns < 0)
		return;
	printf("# guest idle: haltpoll, polls %d ns before halting%s\n", ns,
	       ns ? "" : ": waking a thread that sleeps in a fault costs a hypervisor exit");
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
	if (!b.json)
		print_idle_policy();
	fflush(stdout);
	err = run_figures(&b, sel);
	teardown(&b);
	return err ? EXIT_FAIL : 0;
}
