// SPDX-License-Identifier: MIT
/*
 * `uhmm demo --opencl`: device-PRIVATE memory on a real OpenCL device,
 * explained as it runs.
 *
 * A malloc'd buffer filled by the CPU migrates into an OpenCL buffer (the
 * device's memory, which the CPU does not map), a kernel computes on it
 * there, and the CPU then simply reads the results through its unchanged
 * pointer: each first access faults, and uhmm brings the page back from
 * the device.  On PoCL (an OpenCL implementation on the CPU) the "device"
 * runs on this machine's cores, but the program sees exactly what it would
 * see with a GPU: memory that lives elsewhere until touched.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#if !UHMM_HAVE_OPENCL

int demo_opencl(bool quiet)
{
	(void)quiet;
	fprintf(stderr, "uhmm demo: --opencl: this uhmm was built without OpenCL "
		"(<CL/cl.h> and libOpenCL were not found at build time).\n"
		"Install them (Debian: apt-get install opencl-headers "
		"ocl-icd-opencl-dev pocl-opencl-icd) and rebuild.\n");
	return EXIT_USAGE;
}

#else

#define CL_TARGET_OPENCL_VERSION 120
#include <errno.h>
#include <ftw.h>

#include <uhmm_opencl.h>

#define DEMO_N		(1024ul * 1024)		/* uint32 inputs: 4 MiB */
#define DEMO_DEV_SIZE	(64 * MIB)

static const char *kernel_src =
	"kernel void twice_plus_one(global uchar *base, ulong off, uint n)\n"
	"{\n"
	"	global uint *x = (global uint *)(base + off);\n"
	"	global uint *y = x + n;\n"
	"	uint i = get_global_id(0);\n"
	"\n"
	"	if (i < n)\n"
	"		y[i] = 2 * x[i] + 1;\n"
	"}\n";

struct odemo {
	bool quiet;
	bool failed;
	struct uhmm *h;
	struct uhmm_dev *dev;
	int dev_id;
	cl_program prog;
	cl_kernel k;
	uint32_t *x;			/* x[0..n-1], then y[0..n-1] */
	size_t n, len;
	char cache[4096];		/* our POCL_CACHE_DIR, if we made one */
};


static uint32_t xval(size_t i)
{
	return (uint32_t)(i * 2654435761u);
}

static void print_where(struct odemo *d, const char *when, int want)
{
	size_t counts[WHERE_SLOTS], n = pages_spanned(d->x, d->len);
	int err, loc;

	err = count_where(d->h, d->x, d->len, counts);
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
	if (counts[want + 1] != n)
		demo_fail(&d->failed, "%zu of %zu pages are not where they should be (%d)",
		     n - counts[want + 1], n, want);
}

static int get_stats(struct odemo *d, struct uhmm_stats *st)
{
	int err;

	memset(st, 0, sizeof(*st));
	st->sz = sizeof(*st);
	err = uhmm_stats(d->h, st);
	if (err < 0)
		demo_fail(&d->failed, "uhmm_stats: %s", uhmm_strerror(err));
	return err;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

/* PoCL compiles kernels into $POCL_CACHE_DIR (else ~/.cache/pocl): give
 * it a temporary one when unset, so that the demo runs without a home. */
static void pocl_cache(struct odemo *d)
{
	const char *tmp = getenv("TMPDIR"), *set = getenv("POCL_CACHE_DIR");

	if (set && *set)
		return;
	snprintf(d->cache, sizeof(d->cache), "%s/uhmm-demo-pocl-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(d->cache))
		setenv("POCL_CACHE_DIR", d->cache, 1);
	else
		d->cache[0] = '\0';
}

static int step_open(struct odemo *d)
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

static int step_device(struct odemo *d)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	int err;

	demo_say(d->quiet, "2. Register 64 MiB of OpenCL device memory (platform 0, device 0)\n"
	       "   with uhmm_dev_add_opencl: one cl_mem buffer is the device's\n"
	       "   memory.  It is PRIVATE memory: the CPU never maps it; uhmm moves\n"
	       "   pages in and out with clEnqueueWriteBuffer/clEnqueueReadBuffer.\n");
	err = uhmm_dev_add_opencl(d->h, 0, 0, DEMO_DEV_SIZE, &d->dev);
	if (err == -ENODEV) {
		demo_fail(&d->failed, "no OpenCL platform or device here (OpenCL status %d): "
		     "install an OpenCL implementation, e.g. pocl-opencl-icd",
		     uhmm_opencl_last_error());
		return err;
	}
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_dev_add_opencl: %s (OpenCL status %d)",
		     uhmm_strerror(err), uhmm_opencl_last_error());
		return err;
	}
	err = uhmm_dev_info(d->dev, &info);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_dev_info: %s", uhmm_strerror(err));
		return err;
	}
	d->dev_id = info.id;
	demo_say(d->quiet, "   device #%d \"%s\": %zu MiB, %s\n", info.id, info.name,
	    info.size / MIB, info.kind == UHMM_MEM_PRIVATE ? "PRIVATE" : "COHERENT?");
	if (info.kind != UHMM_MEM_PRIVATE)
		demo_fail(&d->failed, "the device is not PRIVATE");
	return 0;
}

static int step_kernel(struct odemo *d)
{
	cl_context ctx;
	cl_device_id did;
	char log[2048] = "";
	cl_int e;
	int err;

	demo_say(d->quiet, "3. Build an OpenCL kernel for it: y[i] = 2 * x[i] + 1.  It gets the\n"
	       "   device buffer and the byte offset where our data sits in it.\n");
	err = uhmm_opencl_context(d->dev, &ctx, &did, NULL);
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_opencl_context: %s", uhmm_strerror(err));
		return err;
	}
	d->prog = clCreateProgramWithSource(ctx, 1, &kernel_src, NULL, &e);
	if (!d->prog) {
		demo_fail(&d->failed, "clCreateProgramWithSource: OpenCL status %d", e);
		return -EIO;
	}
	e = clBuildProgram(d->prog, 1, &did, "", NULL, NULL);
	if (e != CL_SUCCESS) {
		clGetProgramBuildInfo(d->prog, did, CL_PROGRAM_BUILD_LOG,
				      sizeof(log) - 1, log, NULL);
		demo_fail(&d->failed, "clBuildProgram: OpenCL status %d\n%s", e, log);
		return -EIO;
	}
	d->k = clCreateKernel(d->prog, "twice_plus_one", &e);
	if (!d->k) {
		demo_fail(&d->failed, "clCreateKernel: OpenCL status %d", e);
		return -EIO;
	}
	return 0;
}

static int step_buffer(struct odemo *d)
{
	size_t i;

	d->n = DEMO_N;
	d->len = 2 * d->n * sizeof(uint32_t);
	demo_say(d->quiet, "4. malloc() an 8 MiB buffer: x = its first 4 MiB, y = the rest.\n"
	       "   The CPU fills x (1M numbers) and clears y.\n");
	d->x = malloc(d->len);
	if (!d->x) {
		demo_fail(&d->failed, "malloc: out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < d->n; i++) {
		d->x[i] = xval(i);
		d->x[d->n + i] = 0;
	}
	demo_say(d->quiet, "   buffer at %p\n", (void *)d->x);
	print_where(d, "now", UHMM_LOC_SYSTEM);
	return 0;
}

static int step_migrate(struct odemo *d)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	double t;
	int err;

	demo_say(d->quiet, "5. uhmm_migrate() the buffer to the OpenCL device.  Each page is\n"
	       "   copied into the device buffer and its system memory is freed;\n"
	       "   the pointer stays the same, but nothing is mapped behind it now.\n");
	t = now_sec();
	err = uhmm_migrate_ex(d->h, d->x, d->len, d->dev, 0, &res);
	t = now_sec() - t;
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_migrate to the device: %s", uhmm_strerror(err));
		return err;
	}
	demo_say(d->quiet, "   %zu pages moved in %.1f ms\n", res.moved, t * 1e3);
	print_where(d, "now", d->dev_id);
	if (!uhmm_dev_info(d->dev, &info))
		demo_say(d->quiet, "   device memory used %zu KiB of %zu MiB\n",
		    info.used / 1024, info.size / MIB);
	return 0;
}

static int step_run(struct odemo *d)
{
	cl_uint n = (cl_uint)d->n;
	uint64_t off = 0;
	double t;
	int err, loc = 0;

	demo_say(d->quiet, "6. Run the kernel there with uhmm_opencl_run(): it finds where x\n"
	       "   lives in the device buffer (uhmm_dev_offset), passes the buffer\n"
	       "   and that offset to the kernel, and waits for it.  The CPU does\n"
	       "   not touch the data; the device computes y in its own memory.\n");
	if (clSetKernelArg(d->k, 2, sizeof(n), &n) != CL_SUCCESS) {
		demo_fail(&d->failed, "clSetKernelArg");
		return -EIO;
	}
	uhmm_dev_offset(d->h, d->x, &loc, &off);
	demo_say(d->quiet, "   x[0] is at byte 0x%llx of the device buffer\n",
	    (unsigned long long)(off + ((uintptr_t)d->x & (page_size() - 1))));
	t = now_sec();
	err = uhmm_opencl_run(d->h, d->dev, d->k, 0, 1, d->x, d->len,
			      (d->n + 63) / 64 * 64, 64);
	t = now_sec() - t;
	if (err < 0) {
		demo_fail(&d->failed, "uhmm_opencl_run: %s (OpenCL status %d)",
		     uhmm_strerror(err), uhmm_opencl_last_error());
		return err;
	}
	demo_say(d->quiet, "   the kernel ran in %.1f ms (the first launch includes the\n"
	       "   OpenCL implementation's own compiling)\n", t * 1e3);
	print_where(d, "after the kernel", d->dev_id);
	return 0;
}

static void step_read(struct odemo *d)
{
	struct uhmm_stats before, after;
	size_t i, bad = 0;
	double t;

	demo_say(d->quiet, "7. The CPU reads x and y with plain loads.  The first access to\n"
	       "   each page faults; uhmm copies that page and its neighbours\n"
	       "   (64 KiB) back from the device and the load goes on.\n");
	if (get_stats(d, &before) < 0)
		return;
	t = now_sec();
	for (i = 0; i < d->n; i++)
		bad += d->x[i] != xval(i) || d->x[d->n + i] != 2 * xval(i) + 1;
	t = now_sec() - t;
	demo_say(d->quiet, "   y[0..3] = %u %u %u %u (x[0..3] = %u %u %u %u)\n",
	    d->x[d->n], d->x[d->n + 1], d->x[d->n + 2], d->x[d->n + 3],
	    d->x[0], d->x[1], d->x[2], d->x[3]);
	print_where(d, "now", UHMM_LOC_SYSTEM);	/* waits for the counters */
	if (get_stats(d, &after) < 0)
		return;
	demo_say(d->quiet, "   reading took %.1f ms: %llu CPU faults served by uhmm, %llu pages\n"
	       "   came back to system memory\n", t * 1e3,
	    (unsigned long long)(after.cpu_faults - before.cpu_faults),
	    (unsigned long long)(after.pages_to_sys - before.pages_to_sys));
	if (after.cpu_faults == before.cpu_faults)
		demo_fail(&d->failed, "no CPU fault was served: the pages did not come back "
		     "from the device");
	if (bad)
		demo_fail(&d->failed, "%zu of %zu results are wrong", bad, d->n);
	else
		demo_say(d->quiet, "   all %zu results are 2 * x + 1, and x is intact\n",
		    d->n);
}

static void step_stats(struct odemo *d)
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

static void cleanup(struct odemo *d)
{
	if (d->k)
		clReleaseKernel(d->k);
	if (d->prog)
		clReleaseProgram(d->prog);
	/* brings back whatever is still on the device, frees the cl objects */
	uhmm_close(d->h);
	free(d->x);
	if (d->cache[0])
		nftw(d->cache, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int demo_opencl(bool quiet)
{
	struct odemo d = { .quiet = quiet };

	pocl_cache(&d);
	if (!step_open(&d) && !step_device(&d) && !step_kernel(&d) &&
	    !step_buffer(&d) && !step_migrate(&d) && !step_run(&d)) {
		step_read(&d);
		step_stats(&d);
	}
	cleanup(&d);
	if (d.failed) {
		fprintf(stderr, "uhmm demo --opencl: some checks failed\n");
		return EXIT_FAIL;
	}
	demo_say(d.quiet, "9. uhmm_close() closed the context and released the OpenCL\n"
	        "   device; the buffer was free()d.\n");
	printf("uhmm demo --opencl: all checks passed\n");
	return 0;
}

#endif /* UHMM_HAVE_OPENCL */
