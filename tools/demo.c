// SPDX-License-Identifier: MIT
/*
 * `uhmm demo`: the seed scenario of uhmm, end to end, explained as it runs.
 *
 * A malloc'd buffer moves onto cache-coherent device memory behind its
 * unchanged pointer; the CPU then writes straight into device memory, which
 * we prove by looking at the device's memory through a second mapping of
 * it that uhmm knows nothing about; the buffer comes back bit-exact.
 *
 * The device is a memfd we create ourselves (a stand-in for CXL memory or
 * a devdax file) rather than uhmm_dev_add_sim(), precisely so that we own a
 * view of the device memory that does not go through the library.
 *
 * `uhmm demo --opencl` runs the device-PRIVATE scenario on an OpenCL
 * device instead (demo_opencl.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "tool.h"

#define DEMO_BUF_SIZE	(8 * MIB)
#define DEMO_DEV_SIZE	(16 * MIB)	/* room for 2 MiB chunk rounding */
#define SEED_INITIAL	1
#define SEED_CPU	2

struct demo {
	bool quiet;
	bool opencl;			/* --opencl: demo_opencl.c instead */
	bool failed;
	struct uhmm *h;
	struct uhmm_dev *dev;
	int dev_id;
	int fd;				/* our own descriptor of the memfd */
	unsigned char *view;		/* the device's view: our own mapping */
	unsigned char *buf;		/* the program's ordinary buffer */
	size_t len;
};


/* The byte at buffer offset i: depends on the offset, so a page that ends
 * up in the wrong place is caught, not just a page that lost its data. */
static unsigned char pattern(size_t i, unsigned seed)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull;

	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	return (unsigned char)(x >> 56);
}

/* Plain CPU stores, byte by byte: what any program would do. */
static void fill(unsigned char *p, size_t len, unsigned seed)
{
	size_t i;

	for (i = 0; i < len; i++)
		p[i] = pattern(i, seed);
}

static size_t count_bad(const unsigned char *p, size_t len, unsigned seed)
{
	size_t i, bad = 0;

	for (i = 0; i < len; i++)
		bad += p[i] != pattern(i, seed);
	return bad;
}

/* The buffer page by page, as `uhmm map` draws another process's. */
static void print_map(struct demo *d, size_t n)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	struct map_view v = { .npages = n, .addr = (uintptr_t)d->buf & ~(page_size() - 1),
				.dev = &info, .ndev = 1 };
	int *loc = calloc(n, sizeof(*loc));

	if (!loc || uhmm_where(d->h, d->buf, d->len, loc) || uhmm_dev_info(d->dev, &info)) {
		free(loc);
		return;
	}
	v.loc = loc;
	map_text(stdout, &v, 64, 2, isatty(1) && !getenv("NO_COLOR"));
	free(loc);
}

static void print_where(struct demo *d, const char *when, int want)
{
	size_t counts[WHERE_SLOTS], n = pages_spanned(d->buf, d->len);
	int err, loc;

	err = count_where(d->h, d->buf, d->len, counts);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_where: %s", uhmm_strerror(err));
		return;
	}
	demo_say(d->quiet, "   placement %s (uhmm_where, %zu pages):", when, n);
	for (loc = UHMM_LOC_NONE; loc < WHERE_SLOTS - 1; loc++) {
		if (!counts[loc + 1])
			continue;
		if (loc == UHMM_LOC_NONE)
			demo_say(d->quiet, " not populated %zu", counts[0]);
		else if (loc == UHMM_LOC_SYSTEM)
			demo_say(d->quiet, " system %zu", counts[1]);
		else
			demo_say(d->quiet, " device #%d %zu", loc, counts[loc + 1]);
	}
	demo_say(d->quiet, "\n");
	if (!d->quiet)
		print_map(d, n);
	if (counts[want + 1] != n)
		demo_fail(&d->failed, "%zu of %zu pages are not where they should be (%d)",
		     n - counts[want + 1], n, want);
}

/* How many mappings /proc/self/maps shows for the buffer's pages. */
static int count_vmas(const void *addr, size_t len)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len, s, e;
	char line[512];
	int n = 0;
	FILE *f;

	f = fopen("/proc/self/maps", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx", &s, &e) == 2 && s < hi && e > lo)
			n++;
	}
	fclose(f);
	return n;
}

static int step_open(struct demo *d)
{
	uint64_t feat = 0;
	int err;

	demo_say(d->quiet, "1. Open a uhmm context (userfaultfd, event thread).\n");
	err = uhmm_open(&d->h, NULL);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_open: %s (run 'uhmm info' to see why)",
		     uhmm_strerror(err));
		return err;
	}
	uhmm_features(d->h, &feat);
	demo_say(d->quiet, "   mode: %s\n", feat & UHMM_FEAT_KERNEL_FAULTS ?
	    "privileged (kernel-mode accesses are served)" :
	    "user-mode only (kernel-mode accesses to device-private pages fail)");
	return 0;
}

/* Create, populate once, and map the device memory ourselves. */
static int make_device_memory(struct demo *d)
{
	d->fd = memfd_create("uhmm-demo-device", MFD_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	if (ftruncate(d->fd, DEMO_DEV_SIZE) < 0)
		return -errno;
	/* Populate it now, as real device memory is there from the start. */
	if (fallocate(d->fd, 0, 0, DEMO_DEV_SIZE) < 0)
		return -errno;
	d->view = mmap(NULL, DEMO_DEV_SIZE, PROT_READ, MAP_SHARED, d->fd, 0);
	if (d->view == MAP_FAILED) {
		d->view = NULL;
		return -errno;
	}
	return 0;
}

static int step_device(struct demo *d)
{
	struct uhmm_dev_desc desc = {
		.sz = sizeof(desc),
		.name = "demo-coherent",
		.kind = UHMM_MEM_COHERENT,
		.size = DEMO_DEV_SIZE,
	};
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	int err;

	demo_say(d->quiet, "2. Make a cache-coherent device: a 16 MiB memfd, populated once,\n"
	       "   registered with uhmm_dev_add, and mapped a second time by us\n"
	       "   as \"the device's view\" of its own memory.\n");
	err = make_device_memory(d);
	if (err < 0) {
		demo_fail(&d->failed, "device memory: %s", strerror(-err));
		return err;
	}
	desc.fd = d->fd;
	err = uhmm_dev_add(d->h, &desc, &d->dev);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_dev_add: %s", uhmm_strerror(err));
		return err;
	}
	err = uhmm_dev_info(d->dev, &info);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_dev_info: %s", uhmm_strerror(err));
		return err;
	}
	d->dev_id = info.id;
	demo_say(d->quiet, "   device #%d \"%s\": %zu MiB, granule %zu bytes\n",
	    info.id, info.name, info.size / MIB, info.granule);
	return 0;
}

static int step_buffer(struct demo *d)
{
	d->len = DEMO_BUF_SIZE;
	demo_say(d->quiet, "3. malloc() an 8 MiB buffer and fill it with a known pattern.\n");
	d->buf = malloc(d->len);
	if (!d->buf) {
		demo_fail(&d->failed, "malloc: out of memory");
		return -ENOMEM;
	}
	fill(d->buf, d->len, SEED_INITIAL);
	demo_say(d->quiet, "   buffer at %p (%zu bytes into its page: not aligned)\n",
	    (void *)d->buf, (uintptr_t)d->buf & (page_size() - 1));
	print_where(d, "now", UHMM_LOC_SYSTEM);
	return 0;
}

static int step_migrate_to_dev(struct demo *d)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	double t;
	int err;

	demo_say(d->quiet, "4. uhmm_migrate() the buffer to the device.  The pointer does not\n"
	       "   change: each page is copied into device memory and the device\n"
	       "   file is mapped at the page's own address.\n");
	t = now_sec();
	err = uhmm_migrate_ex(d->h, d->buf, d->len, d->dev, 0, &res);
	t = now_sec() - t;
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_migrate to device: %s", uhmm_strerror(err));
		return err;
	}
	demo_say(d->quiet, "   %zu pages moved (%zu without a copy) in %.1f ms\n",
	    res.moved, res.zero_filled, t * 1e3);
	print_where(d, "now", d->dev_id);
	if (!uhmm_dev_info(d->dev, &info))
		demo_say(d->quiet, "   device memory used %zu KiB, reserved %zu KiB; "
		       "the buffer is %d mapping(s) in /proc/self/maps\n",
		    info.used / 1024, info.reserved / 1024,
		    count_vmas(d->buf, d->len));
	return 0;
}

/*
 * Compare every byte of the buffer with what the device's view holds at
 * the offset uhmm_dev_offset() gives for its page.  Returns bad bytes.
 */
static size_t check_view(struct demo *d, unsigned seed)
{
	uintptr_t ps = page_size(), a = (uintptr_t)d->buf, end = a + d->len;
	size_t bad = 0;

	while (a < end) {
		uintptr_t next = (a & ~(ps - 1)) + ps;
		size_t n = (next < end ? next : end) - a, i;
		uint64_t off;
		int loc, err;

		err = uhmm_dev_offset(d->h, (void *)a, &loc, &off);
		if (err < 0 || loc != d->dev_id ||
		    off + ps > DEMO_DEV_SIZE) {
			bad += n;
			a = next;
			continue;
		}
		off += a & (ps - 1);
		for (i = 0; i < n; i++)
			bad += d->view[off + i] !=
			       pattern(a - (uintptr_t)d->buf + i, seed);
		a = next;
	}
	return bad;
}

static void show_first_page(struct demo *d)
{
	uint64_t off = 0;
	int loc = 0, i;

	if (uhmm_dev_offset(d->h, d->buf, &loc, &off) < 0)
		return;
	off += (uintptr_t)d->buf & (page_size() - 1);
	demo_say(d->quiet, "   buf[0..7]              =");
	for (i = 0; i < 8; i++)
		demo_say(d->quiet, " %02x", d->buf[i]);
	demo_say(d->quiet, "\n   device view @0x%06llx =", (unsigned long long)off);
	for (i = 0; i < 8; i++)
		demo_say(d->quiet, " %02x", d->view[off + i]);
	demo_say(d->quiet, "\n");
}

static void step_view(struct demo *d, unsigned seed, const char *what)
{
	size_t bad = check_view(d, seed);

	show_first_page(d);
	if (bad) {
		demo_fail(&d->failed, "%zu bytes of the device's view differ from %s",
		     bad, what);
		return;
	}
	demo_say(d->quiet, "   all %zu bytes match %s (read at uhmm_dev_offset())\n",
	    d->len, what);
}

static int get_stats(struct demo *d, struct uhmm_stats *st)
{
	int err;

	memset(st, 0, sizeof(*st));
	st->sz = sizeof(*st);
	err = uhmm_stats(d->h, st);
	if (err < 0)
		demo_fail(&d->failed, "uhmm_stats: %s", uhmm_strerror(err));
	return err;
}

static long minflt(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void step_cpu_writes(struct demo *d)
{
	struct uhmm_stats before, after;
	long f0, f1;

	demo_say(d->quiet, "5. The CPU writes new bytes into the buffer with plain stores.\n");
	if (get_stats(d, &before) < 0)
		return;
	minflt();			/* warm getrusage's own path */
	f0 = minflt();
	fill(d->buf, d->len, SEED_CPU);
	f1 = minflt();
	if (get_stats(d, &after) < 0)
		return;
	demo_say(d->quiet, "   during the writes: bytes copied by uhmm %llu, CPU faults "
	       "served by uhmm %llu,\n"
	       "   minor page faults of the process (getrusage) %ld\n",
	    (unsigned long long)(after.bytes_copied - before.bytes_copied),
	    (unsigned long long)(after.cpu_faults - before.cpu_faults),
	    f1 - f0);
	if (after.bytes_copied != before.bytes_copied)
		demo_fail(&d->failed, "uhmm copied bytes during plain CPU writes");
	if (after.cpu_faults != before.cpu_faults)
		demo_fail(&d->failed, "uhmm served CPU faults during plain CPU writes");
	if (f1 != f0)
		demo_say(d->quiet, "   (the kernel took %ld minor faults: some pages were not "
		       "mapped writable in advance)\n", f1 - f0);
	else
		demo_say(d->quiet, "   no fault at all: uhmm mapped the device pages "
		       "writable in advance\n");
	demo_say(d->quiet, "   The device's view of its memory already holds the new bytes:\n");
	step_view(d, SEED_CPU, "the CPU's writes");
}

static int step_migrate_back(struct demo *d)
{
	double t;
	size_t bad;
	int err;

	demo_say(d->quiet, "6. Migrate the buffer back to system memory (to = NULL).\n");
	t = now_sec();
	err = uhmm_migrate(d->h, d->buf, d->len, NULL, 0);
	t = now_sec() - t;
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_migrate to system: %s", uhmm_strerror(err));
		return err;
	}
	demo_say(d->quiet, "   done in %.1f ms\n", t * 1e3);
	print_where(d, "now", UHMM_LOC_SYSTEM);
	bad = count_bad(d->buf, d->len, SEED_CPU);
	if (bad)
		demo_fail(&d->failed, "%zu bytes differ after coming back", bad);
	else
		demo_say(d->quiet, "   every one of the %zu bytes is what the CPU wrote\n",
		    d->len);
	return 0;
}

/*
 * The seed's other way: malloc() and madvise() allocate from device
 * memory, then the CPU writes data to device memory directly.  A fresh
 * malloc'd buffer is advised onto the device; the CPU's first write to each
 * run of untouched pages places it there, zeroed, with no copy.
 */
#define SEED_ADVISED	3

static void step_advise(struct demo *d)
{
	size_t len = DEMO_BUF_SIZE / 2, n, on_dev = 0, bad;
	unsigned char *buf = malloc(len);
	struct uhmm_stats s0, s1;
	int *loc, err;

	demo_say(d->quiet, "7. The same without a migration: malloc() a fresh 4 MiB buffer,\n"
		 "   uhmm_advise(PREFERRED_LOCATION) it onto the device, then write it.\n");
	if (!buf) {
		demo_fail(&d->failed, "malloc");
		return;
	}
	err = uhmm_advise(d->h, buf, len, UHMM_ADV_PREFERRED_LOCATION, d->dev);
	if (err < 0 || get_stats(d, &s0) < 0) {
		demo_fail(&d->failed, "uhmm_advise: %s", uhmm_strerror(err));
		free(buf);
		return;
	}
	fill(buf, len, SEED_ADVISED);
	get_stats(d, &s1);
	n = (len + ((uintptr_t)buf & 4095) + 4095) / 4096;
	loc = calloc(n, sizeof(*loc));
	if (loc && uhmm_where(d->h, buf, len, loc) == 0)
		for (size_t i = 0; i < n; i++)
			on_dev += loc[i] == d->dev_id;
	free(loc);
	bad = count_bad(buf, len, SEED_ADVISED);
	demo_say(d->quiet, "   %zu of %zu pages landed on device #%d at their first write (the\n"
		 "   page malloc wrote its header on stays in system memory):\n"
		 "   %llu CPU faults (one per run of untouched pages), %llu bytes copied,\n"
		 "   %llu device pages made zeroed\n",
		 on_dev, n, d->dev_id, (unsigned long long)(s1.cpu_faults - s0.cpu_faults),
		 (unsigned long long)(s1.bytes_copied - s0.bytes_copied),
		 (unsigned long long)(s1.pages_zero_filled - s0.pages_zero_filled));
	if (bad || on_dev + 2 < n || s1.bytes_copied != s0.bytes_copied)
		demo_fail(&d->failed, "advised buffer: %zu bytes wrong, %zu of %zu pages on the device",
			  bad, on_dev, n);
	free(buf);
}

static void step_stats(struct demo *d)
{
	struct uhmm_stats st;

	if (get_stats(d, &st) < 0)
		return;
	demo_say(d->quiet, "8. Library counters (uhmm_stats):\n"
	       "   pages to device %llu, to system %llu, zero-filled %llu,\n"
	       "   bytes copied %llu, CPU faults %llu, evictions %llu\n",
	    (unsigned long long)st.pages_to_dev,
	    (unsigned long long)st.pages_to_sys,
	    (unsigned long long)st.pages_zero_filled,
	    (unsigned long long)st.bytes_copied,
	    (unsigned long long)st.cpu_faults,
	    (unsigned long long)st.evictions);
}

static void demo_cleanup(struct demo *d)
{
	/* uhmm_close() brings back whatever is still on the device first. */
	uhmm_close(d->h);
	free(d->buf);
	if (d->view)
		munmap(d->view, DEMO_DEV_SIZE);
	if (d->fd >= 0)
		close(d->fd);
}

/* 0: go on; -1: help was printed; EXIT_USAGE: a mistake. */
static int demo_args(struct demo *d, int argc, char **argv)
{
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-q") || !strcmp(argv[i], "--quiet")) {
			d->quiet = true;
		} else if (!strcmp(argv[i], "--opencl")) {
			d->opencl = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_usage(stdout);
			return -1;
		} else if (argv[i][0] == '-') {
			return usage_error("demo: unknown option '%s'", argv[i]);
		} else {
			return usage_error("demo: unexpected argument '%s'",
					   argv[i]);
		}
	}
	return 0;
}

static void run_steps(struct demo *d)
{
	if (step_open(d) || step_device(d) || step_buffer(d) ||
	    step_migrate_to_dev(d))
		return;
	demo_say(d->quiet, "   The device's view holds the buffer's bytes:\n");
	step_view(d, SEED_INITIAL, "the buffer");
	step_cpu_writes(d);
	if (step_migrate_back(d))
		return;
	step_advise(d);
	step_stats(d);
}

int cmd_demo(int argc, char **argv)
{
	struct demo d = { .fd = -1 };
	int err;

	err = demo_args(&d, argc, argv);
	if (err)
		return err < 0 ? 0 : err;
	if (d.opencl)
		return demo_opencl(d.quiet);
	run_steps(&d);
	demo_cleanup(&d);
	if (d.failed) {
		fprintf(stderr, "uhmm demo: some checks failed\n");
		return EXIT_FAIL;
	}
	demo_say(d.quiet, "9. uhmm_close() closed the context; the buffer was ordinary "
	        "memory again and was free()d.\n");
	printf("uhmm demo: all checks passed\n");
	return 0;
}
