/* SPDX-License-Identifier: MIT */
/*
 * The OpenCL driver (include/uhmm_opencl.h) on a real OpenCL implementation
 * (PoCL on the CPU in CI): a PRIVATE device over one cl_mem.  A malloc'd
 * buffer filled by the CPU migrates to it, a real kernel computes
 * y[i] = 2 * x[i] + 1 there, and the CPU reads every result back (the
 * pages fault back to system memory).  Also: a heap buffer whose last page
 * holds malloc's top chunk (the driver must not allocate on the migrating
 * thread), a range that is not page aligned, the kernel over a range whose
 * pages are not contiguous in device memory (the gather path), several
 * threads migrating and faulting at once (the ops run concurrently),
 * uhmm_dev_remove with pages on the device, and the error paths.
 *
 * Skipped when the build has no OpenCL (no <CL/cl.h>) or when no OpenCL
 * platform is installed at run time.  PoCL compiles kernels into a cache
 * directory; when POCL_CACHE_DIR is unset we point it at a fresh temporary
 * directory, so that the test also runs as `nobody` (no writable $HOME).
 *
 * Sanitizers: PoCL, LLVM (which PoCL runs in-process to compile kernels)
 * and the OpenCL ICD loader are not instrumented.  PoCL leaks a few of its
 * LLVM objects from compiling a kernel (one 16-byte object of libpocl
 * holding about 1.5 MB of LLVM's): LeakSanitizer reports for allocations
 * made by those libraries are suppressed by __lsan_default_suppressions
 * below, compiled into this test alone; leaks of uhmm or of this test are
 * still reported.
 */
#define _GNU_SOURCE
#include "util.h"

#if !UHMM_HAVE_OPENCL
int main(void)
{
	ut_init(60);
	skip("uhmm built without OpenCL headers (<CL/cl.h> or libOpenCL not "
	     "found at build time, or make OPENCL=no): no OpenCL driver to test");
	return tap_done();
}
#else

#define CL_TARGET_OPENCL_VERSION 120
#include <ftw.h>
#include <malloc.h>
#include <pthread.h>

#include "uhmm_opencl.h"

#define DEV_SIZE	(64 * UT_MiB)

#if UT_ASAN
/* See the top of the file: leaks inside the OpenCL implementation. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libpocl.so\n"
	       "leak:libLLVM\n"
	       "leak:libclang\n"
	       "leak:libOpenCL.so\n";
}
#endif

static const char *kernel_src =
	"/* y[i] = 2 * x[i] + 1; x is n uints at base + off, y follows it */\n"
	"kernel void twice_plus_one(global uchar *base, ulong off, uint n)\n"
	"{\n"
	"	global uint *x = (global uint *)(base + off);\n"
	"	global uint *y = x + n;\n"
	"	uint i = get_global_id(0);\n"
	"\n"
	"	if (i < n)\n"
	"		y[i] = 2 * x[i] + 1;\n"
	"}\n";

static char cache_dir[4096];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st; (void)flag; (void)ftw;
	remove(path);
	return 0;
}

static void cache_cleanup(void)
{
	if (cache_dir[0])
		nftw(cache_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* PoCL writes compiled kernels under $POCL_CACHE_DIR, else $HOME/.cache. */
static void pocl_cache(void)
{
	const char *tmp = getenv("TMPDIR"), *set = getenv("POCL_CACHE_DIR");

	if (set && *set)
		return;
	snprintf(cache_dir, sizeof(cache_dir), "%s/uhmm-pocl-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(cache_dir))
		tap_bail("mkdtemp(%s): %s", cache_dir, strerror(errno));
	setenv("POCL_CACHE_DIR", cache_dir, 1);
	atexit(cache_cleanup);
}

/* Is there an OpenCL device at all?  Skips the whole file if not. */
static void require_platform(void)
{
	cl_uint np = 0, nd = 0;
	cl_platform_id p;
	cl_int e;

	e = clGetPlatformIDs(1, &p, &np);
	if (e != CL_SUCCESS || np == 0) {
		skip("no OpenCL platform at run time (clGetPlatformIDs: %d): "
		     "install an OpenCL ICD such as pocl-opencl-icd", e);
		exit(tap_done());
	}
	e = clGetDeviceIDs(p, CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
	if (e != CL_SUCCESS || nd == 0) {
		skip("OpenCL platform 0 has no device (clGetDeviceIDs: %d)", e);
		exit(tap_done());
	}
}

static cl_kernel build_kernel(struct uhmm_dev *dev, cl_program *prog)
{
	cl_context ctx = NULL;
	cl_device_id did = NULL;
	cl_command_queue q = NULL;
	cl_kernel k = NULL;
	cl_int e;
	char log[4096] = "";
	int rc;

	rc = uhmm_opencl_context(dev, &ctx, &did, &q);
	ok(rc == 0 && ctx && did && q, "uhmm_opencl_context gives a context, device and queue");
	if (rc)
		return NULL;
	*prog = clCreateProgramWithSource(ctx, 1, &kernel_src, NULL, &e);
	if (!*prog)
		tap_bail("clCreateProgramWithSource: %d", e);
	e = clBuildProgram(*prog, 1, &did, "", NULL, NULL);
	if (e != CL_SUCCESS) {
		clGetProgramBuildInfo(*prog, did, CL_PROGRAM_BUILD_LOG, sizeof(log) - 1,
				      log, NULL);
		diag("build log: %s", log);
	}
	ok(e == CL_SUCCESS, "the kernel builds for the device (clBuildProgram: %d)", e);
	if (e != CL_SUCCESS)
		return NULL;
	k = clCreateKernel(*prog, "twice_plus_one", &e);
	ok(k != NULL, "clCreateKernel: %d", e);
	return k;
}

static int set_n(cl_kernel k, size_t n)
{
	cl_uint nn = (cl_uint)n;

	return clSetKernelArg(k, 2, sizeof(nn), &nn);
}

static size_t round_up(size_t n, size_t m)
{
	return (n + m - 1) / m * m;
}

static uint32_t xval(size_t i, unsigned seed)
{
	return (uint32_t)(i * 2654435761u) ^ (seed << 24);
}

/* Index of the first wrong x or y, or SIZE_MAX. */
static size_t check_xy(const uint32_t *x, size_t n, unsigned seed, uint32_t *got,
		       uint32_t *want)
{
	for (size_t i = 0; i < n; i++) {
		if (x[i] != xval(i, seed)) {
			*got = x[i];
			*want = xval(i, seed);
			return i;
		}
		if (x[n + i] != 2 * xval(i, seed) + 1) {
			*got = x[n + i];
			*want = 2 * xval(i, seed) + 1;
			return n + i;
		}
	}
	return SIZE_MAX;
}

static void ok_xy(const uint32_t *x, size_t n, unsigned seed, const char *what)
{
	uint32_t got = 0, want = 0;
	size_t bad = check_xy(x, n, seed, &got, &want);

	if (!ok(bad == SIZE_MAX, "%s: all %zu inputs and %zu results right", what, n, n))
		diag("first wrong word %zu (%s): 0x%08x, want 0x%08x", bad,
		     bad < n ? "x" : "y", got, want);
}

static void fill_x(uint32_t *x, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++) {
		x[i] = xval(i, seed);
		x[n + i] = 0xdeadbeef;
	}
}

static void test_bad_args(struct uhmm *h)
{
	struct uhmm_dev *d = (struct uhmm_dev *)1;
	size_t ps = ut_page();
	cl_context ctx;
	cl_mem m;

	is_int(uhmm_dev_add_opencl(NULL, 0, 0, DEV_SIZE, &d), -EINVAL, "add: NULL context -> -EINVAL");
	is_int(uhmm_dev_add_opencl(h, 0, 0, DEV_SIZE, NULL), -EINVAL, "add: NULL out -> -EINVAL");
	is_int(uhmm_dev_add_opencl(h, 0, 0, 0, &d), -EINVAL, "add: size 0 -> -EINVAL");
	ok(d == NULL, "add: *out is NULL after a failure");
	is_int(uhmm_dev_add_opencl(h, 0, 0, ps + 1, &d), -EINVAL, "add: size not a page multiple -> -EINVAL");
	is_int(uhmm_dev_add_opencl(h, 1000, 0, DEV_SIZE, &d), -ENODEV, "add: platform 1000 -> -ENODEV");
	is_int(uhmm_dev_add_opencl(h, 0, 1000, DEV_SIZE, &d), -ENODEV, "add: device 1000 -> -ENODEV");
	is_int(uhmm_dev_add_opencl(h, 0, 0, (size_t)1 << 50, &d), -ENOMEM,
	       "add: 1 PiB, over the device's largest buffer -> -ENOMEM");
	is_int(uhmm_opencl_context(NULL, &ctx, NULL, NULL), -EINVAL, "context: NULL device -> -EINVAL");
	is_int(uhmm_opencl_pool(NULL, &m), -EINVAL, "pool: NULL device -> -EINVAL");
}

static void test_run_errors(struct uhmm *h, struct uhmm_dev *dev, cl_kernel k,
			    uint32_t *x, size_t n)
{
	struct uhmm *h2 = ut_open();
	size_t len = 2 * n * sizeof(*x);

	is_int(uhmm_opencl_run(NULL, dev, k, 0, 1, x, len, n, 0), -EINVAL, "run: NULL context -> -EINVAL");
	is_int(uhmm_opencl_run(h, NULL, k, 0, 1, x, len, n, 0), -EINVAL, "run: NULL device -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, NULL, 0, 1, x, len, n, 0), -EINVAL, "run: NULL kernel -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, k, 0, 1, NULL, len, n, 0), -EINVAL, "run: NULL address -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, k, 0, 1, x, 0, n, 0), -EINVAL, "run: length 0 -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, k, 0, 1, x, len, 0, 0), -EINVAL, "run: global size 0 -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, k, 0, 1, x, len, 64, 48), -EINVAL,
	       "run: local size not dividing global size -> -EINVAL");
	is_int(uhmm_opencl_run(h2, dev, k, 0, 1, x, len, n, 0), -EINVAL,
	       "run: device of another context -> -EINVAL");
	is_int(uhmm_opencl_run(h, dev, k, 0, 7, x, len, n, 0), -EINVAL,
	       "run: offset argument index past the kernel's -> -EINVAL");
	is_int(uhmm_opencl_last_error(), CL_INVALID_ARG_INDEX,
	       "uhmm_opencl_last_error says CL_INVALID_ARG_INDEX");
	is_int(uhmm_opencl_run(h, dev, k, 0, 2, x, len, n, 0), -EINVAL,
	       "run: offset argument on the kernel's uint argument (size 4, not 8) -> -EINVAL");
	uhmm_close(h2);
}

/* The main scenario. */
static void test_main(struct uhmm *h, struct uhmm_dev *dev, int id, cl_kernel k)
{
	size_t n = ut_scaled(1u << 20, 4096);		/* 4 MiB of x, 4 of y */
	size_t len = 2 * n * sizeof(uint32_t), np;
	struct uhmm_stats st0, st1, st2;
	uint32_t *x;
	int rc;

	/* A large malloc: glibc gives it pages of its own (see the header). */
	x = malloc(len);
	if (!x)
		tap_bail("malloc(%zu)", len);
	np = ut_npages(x, len);
	diag("x at %p, %zu bytes of x and y, %zu pages", (void *)x, len, np);
	fill_x(x, n, 1);
	ut_check_where(h, x, len, UHMM_LOC_SYSTEM, "before the kernel");
	ok(set_n(k, n) == CL_SUCCESS, "clSetKernelArg n");
	st0 = ut_stats(h);

	rc = uhmm_opencl_run(h, dev, k, 0, 1, x, len, round_up(n, 64), 64);
	is_int(rc, 0, "uhmm_opencl_run: the kernel ran on the device (%s)", ut_err(rc));
	if (rc)
		diag("uhmm_opencl_last_error: %d", uhmm_opencl_last_error());
	ut_check_where(h, x, len, id, "after the kernel, before any CPU access");
	ok(ut_dev_used(dev) >= np * ut_page(), "uhmm_dev_info: used covers the %zu pages", np);
	st1 = ut_stats(h);
	ok(st1.pages_to_dev >= st0.pages_to_dev + np, "stats: %zu pages to the device",
	   (size_t)(st1.pages_to_dev - st0.pages_to_dev));

	ok_xy(x, n, 1, "read by the CPU after the kernel");
	/* uhmm_where first: uhmm counts a fault's pages just after waking
	 * the thread that faulted, and a call taking the context lock waits
	 * for that */
	ut_check_where(h, x, len, UHMM_LOC_SYSTEM, "after the CPU read every page");
	st2 = ut_stats(h);
	ok(st2.cpu_faults > st1.cpu_faults, "stats: the reads took %llu CPU faults",
	   (unsigned long long)(st2.cpu_faults - st1.cpu_faults));
	ok(st2.pages_to_sys >= st1.pages_to_sys + np, "stats: %llu pages back to system memory",
	   (unsigned long long)(st2.pages_to_sys - st1.pages_to_sys));

	/* Again, on the same buffer: the CPU writes new inputs first. */
	fill_x(x, n, 2);
	rc = uhmm_opencl_run(h, dev, k, 0, 1, x, len, round_up(n, 64), 0);
	is_int(rc, 0, "a second run, work-group size chosen by OpenCL (%s)", ut_err(rc));
	rc = uhmm_migrate(h, x, len, NULL, 0);
	is_int(rc, 0, "uhmm_migrate brings the whole range back at once");
	ok_xy(x, n, 2, "after migrating back");

	test_run_errors(h, dev, k, x, n);
	free(x);
}

/*
 * A range that neither starts nor ends on a page boundary, in a mapping of
 * its own: a buffer on the heap could share its edge pages with objects
 * OpenCL uses while the kernel runs (see uhmm_opencl_run in the header).
 */
static void test_unaligned(struct uhmm *h, struct uhmm_dev *dev, cl_kernel k)
{
	size_t n = 300001, len = 2 * n * sizeof(uint32_t);
	size_t maplen = len + 2 * ut_page();
	char *map = ut_map(maplen);
	uint32_t *x = (uint32_t *)(map + 1236);	/* 4-byte aligned, not a page */
	int rc;

	fill_x(x, n, 3);
	set_n(k, n);
	rc = uhmm_opencl_run(h, dev, k, 0, 1, x, len, round_up(n, 128), 128);
	is_int(rc, 0, "unaligned range of %zu bytes at page offset %zu (%s)", len,
	       (size_t)((uintptr_t)x & (ut_page() - 1)), ut_err(rc));
	ok_xy(x, n, 3, "unaligned range read back by the CPU");
	munmap(map, maplen);
}

/*
 * A buffer on the brk heap, where malloc's top chunk begins in its last
 * page, migrated to the device and back by CPU accesses.  OpenCL runtimes
 * allocate on the thread that calls them: were the copy ops to call
 * OpenCL on the migrating thread, that allocation would write into the
 * page being migrated (seen: the page came back as zeros and free()
 * aborted).  The driver calls OpenCL on threads of its own instead.
 * (Under ASan, malloc is ASan's and mallopt does nothing: the buffer is
 * then simply mapped apart.)
 */
static void test_heap_edges(struct uhmm *h, struct uhmm_dev *dev, int id)
{
	size_t len = 2400008, on_dev = 0;
	char *raw, *x;
	int *loc;
	void *q;
	int rc;

	mallopt(M_MMAP_THRESHOLD, 64 << 20);	/* keep this buffer on the heap */
	raw = malloc(len + 4096);
	if (!raw)
		tap_bail("malloc");
	x = raw + 1236;
	ut_fill8(x, len, 6);
	rc = uhmm_migrate(h, x, len, dev, 0);
	is_int(rc, 0, "heap buffer next to malloc's top chunk migrated (%s)", ut_err(rc));
	/* Not "every page is still there": any thread's malloc may already
	 * have brought the last page back (the OpenCL runtime's own threads,
	 * say), and that is as it should be. */
	loc = ut_where(h, x, len, &rc);
	for (size_t i = 0; loc && i < ut_npages(x, len); i++)
		on_dev += loc[i] == id;
	ok(loc && on_dev > 0, "heap buffer on the device (%zu of %zu pages still there)",
	   on_dev, ut_npages(x, len));
	free(loc);
	q = malloc(64);				/* malloc's top: the buffer's last page */
	memset(q, 0x33, 64);
	ut_ok8(x, len, 6, "heap buffer read back by the CPU");
	free(q);
	free(raw);				/* aborts if malloc's headers were lost */
	ok(1, "free() found malloc's headers intact");
	mallopt(M_MMAP_THRESHOLD, 128 * 1024);
}

/* Are the pages of [p, p + len) at consecutive device offsets? */
static int contiguous(struct uhmm *h, const void *p, size_t len)
{
	uint64_t first = 0, off;
	size_t ps = ut_page();
	int loc;

	for (size_t i = 0; i < len / ps; i++) {
		if (uhmm_dev_offset(h, (const char *)p + i * ps, &loc, &off))
			return -1;
		if (i == 0)
			first = off;
		else if (off != first + i * ps)
			return 0;
	}
	return 1;
}

/*
 * Two 2 MiB blocks whose device chunks are out of order: block 1 migrates
 * first and takes the first free chunk, another buffer takes the next one,
 * then block 0 gets a third.  The kernel must see the range in order
 * anyway (uhmm_opencl_run gathers it into a temporary buffer).
 */
static void test_gather(struct uhmm *h, struct uhmm_dev *dev, cl_kernel k)
{
	size_t blk = 2 * UT_MiB, len = 2 * blk, n = len / 8;
	uint32_t *x = ut_map_aligned(len, blk);
	void *other = ut_map_aligned(blk, blk);
	int rc, c;

	fill_x(x, n, 4);
	memset(other, 0x5a, blk);
	rc = uhmm_migrate(h, (char *)x + blk, blk, dev, 0);
	rc = rc ? rc : uhmm_migrate(h, other, blk, dev, 0);
	rc = rc ? rc : uhmm_migrate(h, x, blk, dev, 0);
	is_int(rc, 0, "gather: blocks migrated out of order (%s)", ut_err(rc));
	c = contiguous(h, x, len);
	if (c == 0)
		ok(1, "gather: the range is not contiguous in device memory");
	else
		skip("gather: the allocator placed the blocks contiguously (%d): "
		     "the gather path is not exercised", c);
	set_n(k, n);
	rc = uhmm_opencl_run(h, dev, k, 0, 1, x, len, n, 0);
	is_int(rc, 0, "gather: the kernel ran (%s)", ut_err(rc));
	ok_xy(x, n, 4, "gather: results read back by the CPU");
	for (size_t i = 0; i < blk; i++)
		if (((unsigned char *)other)[i] != 0x5a) {
			ok(0, "gather: the other buffer is intact (byte %zu)", i);
			goto out;
		}
	ok(1, "gather: the other buffer is intact");
out:
	munmap(x, len);
	munmap(other, blk);
}

struct worker {
	pthread_barrier_t *done;
	struct uhmm *h;
	struct uhmm_dev *dev;
	unsigned seed;
	int rounds;
	int bad;
	int err;
};

/*
 * Migrate to the device, touch to fault back, check: ops run at once.  The
 * buffers are unmapped only once every thread is done: an munmap of a
 * managed range while another thread's fault is being served can hang the
 * library (reported separately; not what this test is about).
 */
static void *worker_fn(void *arg)
{
	struct worker *w = arg;
	size_t len = 2 * UT_MiB, n = len / 8;
	uint32_t *x = ut_map_aligned(len, UT_MiB);

	for (int r = 0; r < w->rounds && !w->err; r++) {
		uint32_t got, want;

		fill_x(x, n, w->seed + (unsigned)r);
		for (size_t i = 0; i < n; i++)
			x[n + i] = 2 * x[i] + 1;
		w->err = uhmm_migrate(w->h, x, len, w->dev, 0);
		if (!w->err && check_xy(x, n, w->seed + (unsigned)r, &got, &want) != SIZE_MAX)
			w->bad++;
	}
	pthread_barrier_wait(w->done);
	munmap(x, len);
	return NULL;
}

static void test_threads(struct uhmm *h, struct uhmm_dev *dev)
{
	enum { NT = 4 };
	struct worker w[NT];
	pthread_barrier_t done;
	pthread_t t[NT];
	int bad = 0, err = 0;

	pthread_barrier_init(&done, NULL, NT);
	for (int i = 0; i < NT; i++) {
		w[i] = (struct worker){ .done = &done, .h = h, .dev = dev, .seed = 10 + 10 * (unsigned)i,
					.rounds = (int)ut_scaled(8, 2) };
		if (pthread_create(&t[i], NULL, worker_fn, &w[i]))
			tap_bail("pthread_create");
	}
	for (int i = 0; i < NT; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
		if (w[i].err && !err)
			err = w[i].err;
	}
	pthread_barrier_destroy(&done);
	is_int(err, 0, "%d threads migrating to the device and faulting back at once (%s)",
	       NT, ut_err(err));
	is_int(bad, 0, "every thread read back exactly what it wrote, every round");
}

/* uhmm_dev_remove brings the kernel's results home before releasing. */
static void test_remove(struct uhmm *h, cl_kernel k)
{
	size_t n = 65536, len = 2 * n * sizeof(uint32_t);
	struct uhmm_dev *dev = NULL;
	uint32_t *x = ut_map(len);
	int rc;

	rc = uhmm_dev_add_opencl(h, 0, 0, 16 * UT_MiB, &dev);
	is_int(rc, 0, "a second OpenCL device (%s)", ut_err(rc));
	if (rc)
		goto out;
	/* k belongs to the first device's context: not this one's */
	fill_x(x, n, 5);
	set_n(k, n);
	rc = uhmm_opencl_run(h, dev, k, 0, 1, x, len, n, 0);
	is_int(rc, -EINVAL, "run: a kernel of another OpenCL context -> -EINVAL");
	rc = uhmm_migrate(h, x, len, dev, 0);
	is_int(rc, 0, "migrate to the second device");
	ut_check_where(h, x, len, ut_dev_id(dev), "on the second device");
	rc = uhmm_dev_remove(dev);
	is_int(rc, 0, "uhmm_dev_remove with pages on it (%s)", ut_err(rc));
	ut_check_where(h, x, len, UHMM_LOC_SYSTEM, "after uhmm_dev_remove");
	{
		uint32_t got, want;
		size_t bad;

		for (size_t i = 0; i < n; i++)
			x[n + i] = 2 * xval(i, 5) + 1;	/* the kernel did not run */
		bad = check_xy(x, n, 5, &got, &want);
		ok(bad == SIZE_MAX, "the data came back bit-exact from the removed device");
	}
out:
	munmap(x, len);
}

int main(void)
{
	struct uhmm_dev_info info;
	struct uhmm_dev *dev = NULL;
	cl_program prog = NULL;
	cl_kernel k;
	struct uhmm *h;
	cl_mem pool = NULL;
	int rc;

	ut_init(300);
	pocl_cache();
	require_platform();
	h = ut_open();
	test_bad_args(h);

	rc = uhmm_dev_add_opencl(h, 0, 0, DEV_SIZE, &dev);
	if (!ok(rc == 0 && dev, "uhmm_dev_add_opencl(platform 0, device 0, 64 MiB): %d (%s)",
		rc, ut_err(rc))) {
		diag("uhmm_opencl_last_error: %d", uhmm_opencl_last_error());
		uhmm_close(h);
		return tap_done();
	}
	info = ut_info(dev);
	is_int(info.kind, UHMM_MEM_PRIVATE, "uhmm_dev_info: kind PRIVATE");
	is_int(info.size, DEV_SIZE, "uhmm_dev_info: size 64 MiB");
	ok(!strncmp(info.name, "opencl:", 7), "uhmm_dev_info: name \"%s\"", info.name);
	ok(uhmm_opencl_pool(dev, &pool) == 0 && pool, "uhmm_opencl_pool gives the buffer");

	k = build_kernel(dev, &prog);
	if (!k) {
		uhmm_close(h);
		return tap_done();
	}
	test_heap_edges(h, dev, info.id);	/* first: on a heap still young */
	test_main(h, dev, info.id, k);
	test_unaligned(h, dev, k);
	test_gather(h, dev, k);
	test_threads(h, dev);
	test_remove(h, k);

	clReleaseKernel(k);
	clReleaseProgram(prog);
	uhmm_close(h);		/* releases the device's OpenCL objects */
	return tap_done();
}
#endif /* UHMM_HAVE_OPENCL */
