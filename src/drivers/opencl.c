// SPDX-License-Identifier: MIT
/*
 * Device-private memory on an OpenCL device (see include/uhmm_opencl.h).
 *
 * The device's memory is one cl_mem, the pool; a page at device offset o
 * lives at byte o of it.  The copy ops are blocking clEnqueueWriteBuffer /
 * clEnqueueReadBuffer, the zero op a clEnqueueFillBuffer.
 *
 * Every OpenCL call is made on threads of our own, never on the thread
 * that calls an op.  An op runs while uhmm migrates a range or serves a
 * fault, and the OpenCL runtime allocates on the thread that calls it: on
 * the migrating thread that is usually malloc's main arena, whose top
 * chunk sits in the last page of the buffer the program has just
 * malloc'd - the very page being migrated.  Touching it from inside the op
 * corrupts it (uhmm's contract: ops must not touch managed memory).  Our
 * threads allocate from arenas of their own instead, and the OpenCL
 * objects they create live there too.  So an op hands a request to a
 * worker and waits; OCL_WORKERS workers, each with its own in-order
 * command queue, serve them in parallel, and large copies are cut into
 * pieces for several workers.  The requests live on the callers' stacks
 * and our own structures come from mem_alloc (mmap), never from malloc.
 *
 * uhmm_opencl_run makes its OpenCL calls on a worker too, for the same
 * reason: the range is on the device then, and a page of it faulted back
 * by an allocation would miss the kernel's writes.
 *
 * The driver finds its state from a struct uhmm_dev * through a small
 * registry filled when uhmm_dev_add succeeds and emptied by the release op,
 * which uhmm calls once after the device's last op.
 */
#define _GNU_SOURCE
#define CL_TARGET_OPENCL_VERSION 120
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "uhmm_opencl.h"

#define OCL_WORKERS	4
#define SPLIT_PIECE	(8ul << 20)	/* copies cut into pieces of at least */

enum req_kind { R_SETUP, R_TEARDOWN, R_WRITE, R_READ, R_ZERO, R_RUN };

struct run_args {
	cl_kernel k;
	unsigned buf_arg, off_arg;
	cl_ulong off;			/* of the range's first byte */
	size_t global, local;
	const uint64_t *offs;		/* pages' places, NULL if contiguous */
	size_t npages;
};

struct setup_args {
	unsigned platform_index, device_index;
	bool fill;			/* out: the device has clEnqueueFillBuffer */
};

struct ocl_req {
	enum req_kind kind;
	uint64_t off;			/* R_WRITE, R_READ, R_ZERO */
	void *ptr;
	size_t len;
	struct run_args *run;		/* R_RUN */
	struct setup_args *setup;	/* R_SETUP */
	cl_int cl;			/* OpenCL status of a failure */
	int result;
	bool done;
	struct ocl_req *next;
};

struct ocl;

struct ocl_worker {
	struct ocl *o;
	pthread_t thread;
	cl_command_queue q;		/* created and used on this thread only */
};

struct ocl {
	struct uhmm *h;
	struct uhmm_dev *dev;		/* set once uhmm_dev_add returned */
	struct ocl *next;		/* registry */
	cl_platform_id platform;
	cl_device_id device;
	cl_context ctx;
	cl_mem pool;
	cl_command_queue user_q;	/* uhmm_opencl_context's */
	size_t size;
	pthread_mutex_t lock;		/* the request list */
	pthread_cond_t work;		/* a request came, or stop */
	pthread_cond_t done;		/* a request is done */
	struct ocl_req *head, **tail;
	bool stop;
	unsigned nworkers;
	struct ocl_worker workers[OCL_WORKERS];
};

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct ocl *registry;

static __thread cl_int last_error;

cl_int uhmm_opencl_last_error(void)
{
	return last_error;
}

/* An OpenCL status as a negative errno. */
static int cl_errno(cl_int e)
{
	switch (e) {
	case CL_SUCCESS:
		return 0;
	case CL_OUT_OF_HOST_MEMORY:
	case CL_OUT_OF_RESOURCES:
	case CL_MEM_OBJECT_ALLOCATION_FAILURE:
		return -ENOMEM;
	case CL_INVALID_KERNEL:
	case CL_INVALID_ARG_INDEX:
	case CL_INVALID_ARG_VALUE:
	case CL_INVALID_ARG_SIZE:
	case CL_INVALID_KERNEL_ARGS:
	case CL_INVALID_WORK_DIMENSION:
	case CL_INVALID_WORK_GROUP_SIZE:
	case CL_INVALID_WORK_ITEM_SIZE:
	case CL_INVALID_GLOBAL_WORK_SIZE:
	case CL_INVALID_GLOBAL_OFFSET:
	case CL_INVALID_PROGRAM_EXECUTABLE:
	case CL_INVALID_CONTEXT:
	case CL_INVALID_MEM_OBJECT:
	case CL_INVALID_COMMAND_QUEUE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* ------------------------------------------------------------------ */
/* Requests and workers                                                */
/* ------------------------------------------------------------------ */

/* Hand n requests to the workers and wait for all of them.  The first
 * failure's result is returned; its OpenCL status becomes last_error. */
static int submit(struct ocl *o, struct ocl_req *r, size_t n)
{
	int result = 0;

	pthread_mutex_lock(&o->lock);
	for (size_t i = 0; i < n; i++) {
		r[i].done = false;
		r[i].result = 0;
		r[i].cl = CL_SUCCESS;
		r[i].next = NULL;
		*o->tail = &r[i];
		o->tail = &r[i].next;
	}
	if (n > 1)
		pthread_cond_broadcast(&o->work);
	else
		pthread_cond_signal(&o->work);
	for (size_t i = 0; i < n; i++)
		while (!r[i].done)
			pthread_cond_wait(&o->done, &o->lock);
	pthread_mutex_unlock(&o->lock);
	for (size_t i = 0; i < n; i++) {
		if (r[i].cl != CL_SUCCESS)
			last_error = r[i].cl;
		if (r[i].result && !result)
			result = r[i].result;
	}
	return result;
}

static void do_request(struct ocl *o, struct ocl_worker *w, struct ocl_req *r);

static void *worker_main(void *arg)
{
	struct ocl_worker *w = arg;
	struct ocl *o = w->o;
	struct ocl_req *r;

	pthread_setname_np(pthread_self(), "uhmm-opencl");
	pthread_mutex_lock(&o->lock);
	for (;;) {
		while (!o->stop && !o->head)
			pthread_cond_wait(&o->work, &o->lock);
		r = o->head;
		if (!r)
			break;		/* stopping, nothing left to do */
		o->head = r->next;
		if (!o->head)
			o->tail = &o->head;
		pthread_mutex_unlock(&o->lock);
		do_request(o, w, r);
		pthread_mutex_lock(&o->lock);
		r->done = true;
		pthread_cond_broadcast(&o->done);
	}
	pthread_mutex_unlock(&o->lock);
	if (w->q)
		clReleaseCommandQueue(w->q);
	w->q = NULL;
	return NULL;
}

/* Workers block every signal, like uhmm's own threads. */
static int start_workers(struct ocl *o)
{
	sigset_t all, old;
	int r = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; o->nworkers < OCL_WORKERS; o->nworkers++) {
		struct ocl_worker *w = &o->workers[o->nworkers];

		w->o = o;
		r = pthread_create(&w->thread, NULL, worker_main, w);
		if (r)
			break;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return o->nworkers ? 0 : -r;
}

static void stop_workers(struct ocl *o)
{
	pthread_mutex_lock(&o->lock);
	o->stop = true;
	pthread_cond_broadcast(&o->work);
	pthread_mutex_unlock(&o->lock);
	for (unsigned i = 0; i < o->nworkers; i++)
		pthread_join(o->workers[i].thread, NULL);
	o->nworkers = 0;
}

/* ------------------------------------------------------------------ */
/* What the workers do                                                 */
/* ------------------------------------------------------------------ */

/* Fill with zeros, the widest pattern (up to 128 bytes, the most OpenCL
 * takes) that divides both the offset and the length. */
static cl_int fill_zero(cl_command_queue q, cl_mem m, uint64_t off, size_t len)
{
	static const unsigned char zeros[128];
	size_t pat = sizeof(zeros);
	cl_int e;

	while (pat > 1 && ((off | len) & (pat - 1)))
		pat >>= 1;
	e = clEnqueueFillBuffer(q, m, zeros, pat, off, len, 0, NULL, NULL);
	if (e == CL_SUCCESS)
		e = clFinish(q);
	return e;
}

/* The platform and device at those indexes, or -ENODEV. */
static int pick_device(struct ocl *o, unsigned pi, unsigned di, cl_int *cl)
{
	cl_platform_id *plats;
	cl_device_id *devs;
	cl_uint np = 0, nd = 0;
	cl_int e;

	e = clGetPlatformIDs(0, NULL, &np);
	if (e != CL_SUCCESS || pi >= np) {
		*cl = e;	/* -1001 from the ICD loader: none installed */
		return -ENODEV;
	}
	plats = mem_alloc(np * sizeof(*plats));
	if (!plats)
		return -ENOMEM;
	e = clGetPlatformIDs(np, plats, NULL);
	o->platform = plats[pi];
	mem_free(plats);
	if (e != CL_SUCCESS) {
		*cl = e;
		return cl_errno(e);
	}
	e = clGetDeviceIDs(o->platform, CL_DEVICE_TYPE_ALL, 0, NULL, &nd);
	if (e == CL_DEVICE_NOT_FOUND || (e == CL_SUCCESS && di >= nd)) {
		*cl = e;
		return -ENODEV;
	}
	if (e != CL_SUCCESS) {
		*cl = e;
		return cl_errno(e);
	}
	devs = mem_alloc(nd * sizeof(*devs));
	if (!devs)
		return -ENOMEM;
	e = clGetDeviceIDs(o->platform, CL_DEVICE_TYPE_ALL, nd, devs, NULL);
	o->device = devs[di];
	mem_free(devs);
	*cl = e;
	return cl_errno(e);
}

/* clEnqueueFillBuffer arrived with OpenCL 1.2. */
static bool has_fill(cl_device_id device)
{
	char ver[128] = "";
	int major = 0, minor = 0;

	if (clGetDeviceInfo(device, CL_DEVICE_VERSION, sizeof(ver) - 1, ver,
			    NULL) != CL_SUCCESS)
		return false;
	if (sscanf(ver, "OpenCL %d.%d", &major, &minor) != 2)
		return false;
	return major > 1 || (major == 1 && minor >= 2);
}

/* The device, its context, the pool (made real now, where a failure can
 * still be reported as such) and the program's queue. */
static int do_setup(struct ocl *o, struct setup_args *a, cl_int *cl)
{
	cl_context_properties props[3] = { CL_CONTEXT_PLATFORM, 0, 0 };
	cl_ulong max_alloc = 0;
	cl_int e = CL_SUCCESS;
	int r;

	r = pick_device(o, a->platform_index, a->device_index, cl);
	if (r)
		return r;
	a->fill = has_fill(o->device);
	if (clGetDeviceInfo(o->device, CL_DEVICE_MAX_MEM_ALLOC_SIZE,
			    sizeof(max_alloc), &max_alloc, NULL) == CL_SUCCESS &&
	    max_alloc && o->size > max_alloc)
		return -ENOMEM;
	props[1] = (cl_context_properties)o->platform;
	o->ctx = clCreateContext(props, 1, &o->device, NULL, NULL, &e);
	if (!o->ctx)
		goto fail;
	o->pool = clCreateBuffer(o->ctx, CL_MEM_READ_WRITE, o->size, NULL, &e);
	if (!o->pool)
		goto fail;
	o->user_q = clCreateCommandQueue(o->ctx, o->device, 0, &e);
	if (!o->user_q)
		goto fail;
	if (a->fill)
		e = fill_zero(o->user_q, o->pool, 0, o->size);
	else
		e = clEnqueueWriteBuffer(o->user_q, o->pool, CL_TRUE, 0, 1,
					 "", 0, NULL, NULL);
	if (e == CL_SUCCESS)
		return 0;
fail:
	if (e == CL_SUCCESS)
		e = CL_OUT_OF_RESOURCES;
	*cl = e;
	return cl_errno(e);
}

static void do_teardown(struct ocl *o)
{
	if (o->user_q)
		clReleaseCommandQueue(o->user_q);
	if (o->pool)
		clReleaseMemObject(o->pool);
	if (o->ctx)
		clReleaseContext(o->ctx);
	o->user_q = NULL;
	o->pool = NULL;
	o->ctx = NULL;
}

/* Copy the pages between their places in the pool and a gather buffer,
 * one clEnqueueCopyBuffer per run of contiguous pages. */
static cl_int copy_runs(struct ocl *o, cl_command_queue q, cl_mem tmp,
			const uint64_t *offs, size_t npages, bool gather)
{
	size_t i = 0, n;
	cl_int e;

	while (i < npages) {
		for (n = 1; i + n < npages &&
		     offs[i + n] == offs[i] + n * PAGE_SIZE; n++)
			;
		if (gather)
			e = clEnqueueCopyBuffer(q, o->pool, tmp, offs[i],
						i * PAGE_SIZE, n * PAGE_SIZE,
						0, NULL, NULL);
		else
			e = clEnqueueCopyBuffer(q, tmp, o->pool, i * PAGE_SIZE,
						offs[i], n * PAGE_SIZE,
						0, NULL, NULL);
		if (e != CL_SUCCESS)
			return e;
		i += n;
	}
	return CL_SUCCESS;
}

static cl_int run_kernel(cl_command_queue q, const struct run_args *a)
{
	cl_int e, st = CL_COMPLETE;
	cl_event ev = NULL;

	e = clEnqueueNDRangeKernel(q, a->k, 1, NULL, &a->global,
				   a->local ? &a->local : NULL, 0, NULL, &ev);
	if (e != CL_SUCCESS)
		return e;
	e = clWaitForEvents(1, &ev);
	if (clGetEventInfo(ev, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof(st),
			   &st, NULL) == CL_SUCCESS && st < 0 && e == CL_SUCCESS)
		e = st;
	clReleaseEvent(ev);
	return e;
}

static cl_int do_run(struct ocl *o, cl_command_queue q, struct run_args *a)
{
	cl_mem mem = o->pool, tmp = NULL;
	cl_int e;

	if (a->offs) {
		tmp = clCreateBuffer(o->ctx, CL_MEM_READ_WRITE,
				     a->npages * PAGE_SIZE, NULL, &e);
		if (!tmp)
			return e != CL_SUCCESS ? e : CL_MEM_OBJECT_ALLOCATION_FAILURE;
		mem = tmp;
	}
	e = clSetKernelArg(a->k, a->buf_arg, sizeof(mem), &mem);
	if (e == CL_SUCCESS)
		e = clSetKernelArg(a->k, a->off_arg, sizeof(a->off), &a->off);
	if (e == CL_SUCCESS && tmp)
		e = copy_runs(o, q, tmp, a->offs, a->npages, true);
	if (e == CL_SUCCESS)
		e = run_kernel(q, a);
	if (e == CL_SUCCESS && tmp)
		e = copy_runs(o, q, tmp, a->offs, a->npages, false);
	if (e == CL_SUCCESS)
		e = clFinish(q);
	if (tmp) {
		clFinish(q);	/* nothing may still use it after an error */
		clReleaseMemObject(tmp);
	}
	return e;
}

static void do_request(struct ocl *o, struct ocl_worker *w, struct ocl_req *r)
{
	cl_int e = CL_SUCCESS;

	if (r->kind == R_SETUP) {
		r->result = do_setup(o, r->setup, &r->cl);
		return;
	}
	if (r->kind == R_TEARDOWN) {
		do_teardown(o);
		return;
	}
	if (!w->q) {
		w->q = clCreateCommandQueue(o->ctx, o->device, 0, &e);
		if (!w->q) {
			r->cl = e != CL_SUCCESS ? e : CL_OUT_OF_RESOURCES;
			r->result = cl_errno(r->cl);
			return;
		}
	}
	switch (r->kind) {
	case R_WRITE:
		e = clEnqueueWriteBuffer(w->q, o->pool, CL_TRUE, r->off, r->len,
					 r->ptr, 0, NULL, NULL);
		break;
	case R_READ:
		e = clEnqueueReadBuffer(w->q, o->pool, CL_TRUE, r->off, r->len,
					r->ptr, 0, NULL, NULL);
		break;
	case R_ZERO:
		e = fill_zero(w->q, o->pool, r->off, r->len);
		break;
	case R_RUN:
		e = do_run(o, w->q, r->run);
		break;
	default:
		break;
	}
	r->cl = e;
	r->result = cl_errno(e);
}

/* ------------------------------------------------------------------ */
/* The driver ops                                                      */
/* ------------------------------------------------------------------ */

static bool in_pool(const struct ocl *o, uint64_t off, size_t len)
{
	return len && off < o->size && len <= o->size - off;
}

/* One request, or a large one cut into page-aligned pieces, one for each
 * worker, that run at the same time. */
static int copy_op(struct ocl *o, enum req_kind kind, uint64_t off, void *ptr,
		   size_t len)
{
	struct ocl_req r[OCL_WORKERS];
	size_t n = len / SPLIT_PIECE, piece, done = 0;

	if (!in_pool(o, off, len))
		return -EINVAL;
	if (n > o->nworkers)
		n = o->nworkers;
	if (n < 2 || len % PAGE_SIZE)
		n = 1;
	piece = (len / n + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	memset(r, 0, sizeof(r));
	for (size_t i = 0; i < n; i++) {
		r[i].kind = kind;
		r[i].off = off + done;
		r[i].ptr = ptr ? (char *)ptr + done : NULL;
		r[i].len = i + 1 < n ? piece : len - done;
		done += r[i].len;
	}
	return submit(o, r, n);
}

static int op_copy_to_dev(void *drv, uint64_t dev_off, const void *src, size_t len)
{
	if (!src)
		return -EINVAL;
	return copy_op(drv, R_WRITE, dev_off, (void *)src, len);
}

static int op_copy_from_dev(void *drv, void *dst, uint64_t dev_off, size_t len)
{
	if (!dst)
		return -EINVAL;
	return copy_op(drv, R_READ, dev_off, dst, len);
}

static int op_zero(void *drv, uint64_t dev_off, size_t len)
{
	return copy_op(drv, R_ZERO, dev_off, NULL, len);
}

static void registry_del(struct ocl *o)
{
	struct ocl **pp;

	pthread_mutex_lock(&registry_lock);
	for (pp = &registry; *pp; pp = &(*pp)->next) {
		if (*pp == o) {
			*pp = o->next;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

/* Everything but the registry entry; also undoes a half-made device. */
static void ocl_destroy(struct ocl *o)
{
	if (o->nworkers) {
		struct ocl_req r = { .kind = R_TEARDOWN };

		submit(o, &r, 1);
		stop_workers(o);
	}
	pthread_cond_destroy(&o->work);
	pthread_cond_destroy(&o->done);
	pthread_mutex_destroy(&o->lock);
	mem_free(o);
}

static void op_release(void *drv)
{
	struct ocl *o = drv;

	registry_del(o);
	ocl_destroy(o);
}

static const struct uhmm_dev_ops ocl_ops = {
	.sz = sizeof(struct uhmm_dev_ops),
	.copy_to_dev = op_copy_to_dev,
	.copy_from_dev = op_copy_from_dev,
	.zero = op_zero,
	.release = op_release,
};

/* For OpenCL 1.0/1.1 devices: no clEnqueueFillBuffer, uhmm copies zeros. */
static const struct uhmm_dev_ops ocl_ops_nofill = {
	.sz = sizeof(struct uhmm_dev_ops),
	.copy_to_dev = op_copy_to_dev,
	.copy_from_dev = op_copy_from_dev,
	.release = op_release,
};

/* ------------------------------------------------------------------ */
/* Registration                                                        */
/* ------------------------------------------------------------------ */

int uhmm_dev_add_opencl(struct uhmm *h, unsigned platform_index,
			unsigned device_index, size_t size,
			struct uhmm_dev **out)
{
	struct uhmm_dev_desc desc = {
		.sz = sizeof(desc),
		.kind = UHMM_MEM_PRIVATE,
		.fd = -1,
	};
	struct setup_args sa = {
		.platform_index = platform_index,
		.device_index = device_index,
	};
	struct ocl_req req = { .kind = R_SETUP, .setup = &sa };
	char name[64], devname[128] = "";
	struct ocl *o;
	int r;

	if (out)
		*out = NULL;
	if (!h || !out || !size || size % PAGE_SIZE)
		return -EINVAL;
	o = mem_alloc(sizeof(*o));
	if (!o)
		return -ENOMEM;
	pthread_mutex_init(&o->lock, NULL);
	pthread_cond_init(&o->work, NULL);
	pthread_cond_init(&o->done, NULL);
	o->tail = &o->head;
	o->h = h;
	o->size = size;
	r = start_workers(o);
	if (r) {
		ocl_destroy(o);
		return r == -EAGAIN ? -ENOMEM : r;
	}
	r = submit(o, &req, 1);
	if (r)
		goto fail;
	clGetDeviceInfo(o->device, CL_DEVICE_NAME, sizeof(devname) - 1,
			devname, NULL);
	/* uhmm keeps 63 bytes of a name */
	snprintf(name, sizeof(name), "opencl:%.55s", devname[0] ? devname : "?");
	desc.name = name;
	desc.size = size;
	desc.ops = sa.fill ? &ocl_ops : &ocl_ops_nofill;
	desc.drv = o;
	r = uhmm_dev_add(h, &desc, &o->dev);
	if (r)
		goto fail;	/* not registered: uhmm calls no op, not release */
	pthread_mutex_lock(&registry_lock);
	o->next = registry;
	registry = o;
	pthread_mutex_unlock(&registry_lock);
	*out = o->dev;
	return 0;
fail:
	ocl_destroy(o);
	return r;
}

/* ------------------------------------------------------------------ */
/* For programs                                                        */
/* ------------------------------------------------------------------ */

static struct ocl *ocl_of(const struct uhmm_dev *dev)
{
	struct ocl *o;

	if (!dev)
		return NULL;
	pthread_mutex_lock(&registry_lock);
	for (o = registry; o && o->dev != dev; o = o->next)
		;
	pthread_mutex_unlock(&registry_lock);
	return o;
}

int uhmm_opencl_context(struct uhmm_dev *dev, cl_context *ctx,
			cl_device_id *device, cl_command_queue *queue)
{
	struct ocl *o = ocl_of(dev);

	if (!o)
		return -EINVAL;
	if (ctx)
		*ctx = o->ctx;
	if (device)
		*device = o->device;
	if (queue)
		*queue = o->user_q;
	return 0;
}

int uhmm_opencl_pool(struct uhmm_dev *dev, cl_mem *pool)
{
	struct ocl *o = ocl_of(dev);

	if (!o || !pool)
		return -EINVAL;
	*pool = o->pool;
	return 0;
}

/*
 * Where the range's pages are in the pool.  *contig: they follow each
 * other from *start on; offs, when given, gets every page's offset
 * (otherwise the scan stops at the first page out of line).  -EAGAIN: a
 * page is not on the device.
 */
static int find_pages(struct ocl *o, int id, uintptr_t first, size_t npages,
		      uint64_t *offs, uint64_t *start, bool *contig)
{
	uint64_t off;
	int loc, r;

	*contig = true;
	for (size_t i = 0; i < npages; i++) {
		r = uhmm_dev_offset(o->h, (const void *)(first + i * PAGE_SIZE),
				    &loc, &off);
		if (r)
			return r;
		if (loc != id || !in_pool(o, off, PAGE_SIZE))
			return -EAGAIN;
		if (i == 0)
			*start = off;
		else if (off != *start + i * PAGE_SIZE)
			*contig = false;
		if (offs)
			offs[i] = off;
		else if (!*contig)
			return 0;
	}
	return 0;
}

/* Did every page stay on the device while the kernel ran? */
static int still_there(struct ocl *o, int id, uintptr_t first, size_t npages)
{
	int *loc = mem_alloc(npages * sizeof(*loc));
	int r;

	if (!loc)
		return -ENOMEM;
	r = uhmm_where(o->h, (const void *)first, npages * PAGE_SIZE, loc);
	for (size_t i = 0; !r && i < npages; i++)
		if (loc[i] != id)
			r = -EAGAIN;
	mem_free(loc);
	return r;
}

int uhmm_opencl_run(struct uhmm *h, struct uhmm_dev *dev, cl_kernel k,
		    unsigned buf_arg, unsigned off_arg, void *addr, size_t len,
		    size_t global_size, size_t local_size)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	struct run_args a = {
		.k = k, .buf_arg = buf_arg, .off_arg = off_arg,
		.global = global_size, .local = local_size,
	};
	struct ocl_req req = { .kind = R_RUN, .run = &a };
	uint64_t *offs = NULL, start = 0;
	uintptr_t first, end;
	struct ocl *o;
	bool contig;
	int r;

	if (!h || !dev || !k || !addr || !len || !global_size)
		return -EINVAL;
	if (local_size && global_size % local_size)
		return -EINVAL;
	if ((uintptr_t)addr + len < (uintptr_t)addr)
		return -EINVAL;
	o = ocl_of(dev);
	if (!o || o->h != h)
		return -EINVAL;
	r = uhmm_dev_info(dev, &info);
	if (r)
		return r;
	r = uhmm_migrate(h, addr, len, dev, 0);
	if (r)
		return r;
	first = (uintptr_t)addr & ~(PAGE_SIZE - 1);
	end = ((uintptr_t)addr + len + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
	a.npages = (end - first) / PAGE_SIZE;
	r = find_pages(o, info.id, first, a.npages, NULL, &start, &contig);
	if (r)
		return r;
	a.off = (uintptr_t)addr & (PAGE_SIZE - 1);
	if (contig) {
		a.off += start;
	} else {
		/* gather: the kernel sees a buffer of the pages in order */
		offs = mem_alloc(a.npages * sizeof(*offs));
		if (!offs)
			return -ENOMEM;
		r = find_pages(o, info.id, first, a.npages, offs, &start, &contig);
		a.offs = offs;
	}
	if (!r)
		r = submit(o, &req, 1);
	if (!r)
		r = still_there(o, info.id, first, a.npages);
	mem_free(offs);
	return r;
}
