/* SPDX-License-Identifier: MIT */
/*
 * uhmm_opencl - device-private memory on an OpenCL device.
 *
 * One OpenCL buffer (a cl_mem "pool") is the device's memory.  uhmm
 * registers it as a UHMM_MEM_PRIVATE device whose driver ops copy pages
 * with clEnqueueWriteBuffer/clEnqueueReadBuffer and zero them with
 * clEnqueueFillBuffer.  A program's ordinary memory (malloc, mmap) then
 * migrates into that buffer behind unchanged pointers, a kernel computes on
 * it there, and the CPU's next access brings the pages back (a CPU fault
 * served by uhmm: the device memory is PRIVATE, the CPU never maps it).
 *
 * Built only when <CL/cl.h> and libOpenCL are found at build time (Debian:
 * opencl-headers and ocl-icd-opencl-dev); link with -lOpenCL as well as
 * -luhmm (pkg-config --libs --static uhmm lists it).  Any OpenCL 1.2
 * implementation should do; it was tried with PoCL, an OpenCL on the CPU
 * (pocl-opencl-icd, what the tests use), and with NVIDIA's on an H100.  PoCL compiles kernels into a cache directory: set
 * POCL_CACHE_DIR to a writable directory where $HOME is not writable.
 *
 * Conventions are those of <uhmm.h>: every int function returns 0 or a
 * negative errno.  OpenCL failures are -EIO (out of memory: -ENOMEM; a
 * kernel, argument or work size the implementation refuses: -EINVAL);
 * uhmm_opencl_last_error() gives the OpenCL status code behind the calling
 * thread's last such failure.
 *
 * Threads: every function may be called from any thread at once.  Each
 * device has 4 worker threads of its own (named "uhmm-opencl", all signals
 * blocked), each with its own in-order command queue, and every OpenCL
 * call of the driver runs there: the copy ops (which uhmm calls on its own
 * threads and on the threads that migrate) hand their work to a worker and
 * wait, so copies from several threads overlap, and a large copy is cut
 * into pieces that several workers make at once.  (The OpenCL runtime allocates memory on
 * the thread that calls it; on the thread that migrates a freshly
 * malloc'd buffer, that memory would be the buffer's own last page.)  As
 * OpenCL requires, one cl_kernel must not be given to uhmm_opencl_run by
 * two threads at once (clSetKernelArg is not thread-safe on one kernel).
 */
#ifndef UHMM_OPENCL_H
#define UHMM_OPENCL_H

/* The Khronos headers' own default, without their build-time note; define
 * it before this header to target another version (1.2 is all we need). */
#ifndef CL_TARGET_OPENCL_VERSION
#define CL_TARGET_OPENCL_VERSION 300
#endif
#include <CL/cl.h>

#include <uhmm.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Register `size` bytes of memory of OpenCL device `device_index` (among
 * all device types, in clGetDeviceIDs order) of platform `platform_index`
 * (clGetPlatformIDs order) as a UHMM_MEM_PRIVATE device of context h.
 *
 * Makes an OpenCL context for that one device, one buffer of `size` bytes
 * (zero-filled once, so that it is really allocated now), a command queue
 * for the program (uhmm_opencl_context) and the device's worker threads.  The device is named "opencl:" followed by the OpenCL device name.
 * size should be a multiple of 2 MiB: uhmm hands device memory out in
 * chunks of the largest power of two up to 2 MiB that divides it, and
 * bigger chunks keep ranges contiguous in the buffer (uhmm_opencl_run).
 *
 * uhmm_dev_remove() or uhmm_close() brings every page back and frees the
 * OpenCL objects; handles obtained from uhmm_opencl_context() and
 * uhmm_opencl_pool() are then invalid unless the program retained them.
 *
 * -EINVAL: h or out NULL, size 0 or not a page multiple.  -ENODEV: no such
 * platform or device (also when no OpenCL platform is installed at all).
 * -ENOMEM: size over the device's largest buffer (CL_DEVICE_MAX_MEM_ALLOC_SIZE)
 * or the allocation failed.  -EIO: another OpenCL failure.  Otherwise what
 * uhmm_dev_add() returns (-ENOSYS from a uhmm without PRIVATE devices).
 */
int uhmm_dev_add_opencl(struct uhmm *h, unsigned platform_index,
			unsigned device_index, size_t size,
			struct uhmm_dev **out);

/*
 * The OpenCL objects behind a device from uhmm_dev_add_opencl(), to build
 * programs and kernels for it: its context, its device and a command queue
 * (in order, no profiling) for the program's own use; uhmm never enqueues
 * on that queue.  Each pointer may be NULL.  The driver owns the objects:
 * do not release them (retain them to keep them past uhmm_dev_remove).
 * -EINVAL: dev NULL or not an OpenCL device.
 */
int uhmm_opencl_context(struct uhmm_dev *dev, cl_context *ctx,
			cl_device_id *device, cl_command_queue *queue);

/*
 * The buffer holding the device's memory.  A page that uhmm_dev_offset()
 * reports on this device lives at that byte offset in it, until the page
 * moves again (a CPU access, a migration, eviction).  For kernels that
 * find their data themselves; uhmm_opencl_run() does it for one range.
 * Do not release it.  -EINVAL: dev NULL or not an OpenCL device.
 */
int uhmm_opencl_pool(struct uhmm_dev *dev, cl_mem *pool);

/*
 * Run a one-dimensional kernel over the memory [addr, addr + len):
 *  1. uhmm_migrate() the range to dev (its pages land in the pool buffer;
 *     eviction of other pages allowed, as uhmm_migrate with flags 0);
 *  2. find where addr lives in the pool (uhmm_dev_offset, page by page);
 *  3. set kernel argument `buf_arg` to a cl_mem and `off_arg` to a
 *     cl_ulong byte offset, so that the kernel's bytes
 *     ((global uchar *)buf + off)[0 .. len-1] are the range's bytes;
 *  4. enqueue k with `global_size` work items in groups of `local_size`
 *     (0: the implementation chooses; else it must divide global_size),
 *     and wait for it to finish.
 * The pages stay on the device afterwards: the CPU's next access to each
 * page brings it back to system memory with the kernel's results (a CPU
 * fault served by uhmm; uhmm_stats counts it in cpu_faults), or
 * uhmm_migrate(h, addr, len, NULL, 0) brings the whole range back at once.
 *
 * Finding the pages costs one uhmm_dev_offset() per page of the range
 * (tens of microseconds each in this release), on top of the migration.
 *
 * The kernel receives the pool itself when the range's pages sit at
 * contiguous offsets in it (the usual case: uhmm keeps each 2 MiB block's
 * pages together and follows a block's neighbour).  Otherwise the pages are
 * gathered into a temporary buffer with clEnqueueCopyBuffer (device to
 * device), the kernel runs on that, and the pages are copied back to their
 * places afterwards: the kernel sees the same bytes either way, and needs
 * room on the device for the copy.  Set the kernel's other arguments
 * before the call; the kernel must not reach past the range.
 *
 * Nothing pins the range while the kernel runs.  The program must not
 * touch, migrate, unmap or free the range from other threads during the
 * call, nor migrate other memory to this device in a way that could evict
 * the range (use UHMM_MIGRATE_NOEVICT there, or a device large enough):
 * the kernel's writes would miss the pages or land in reused device
 * memory.  Pages are checked before and after the kernel: a page found
 * elsewhere than dev before is -EAGAIN with nothing run; a page that left
 * dev while the kernel ran is -EAGAIN too, and then the kernel's results
 * in that page may be lost.
 *
 * Whole pages move, so the range should not share a page with data that
 * is used while the kernel runs: the first access to such data brings the
 * page back from the device.  A buffer on the heap next to OpenCL objects
 * (its own cl_kernel, say) is one: the OpenCL implementation writes to
 * them while it runs the kernel.  Give the range pages of its own (a large
 * malloc, which glibc maps apart, aligned_alloc with page alignment, mmap,
 * uhmm_alloc).  The driver makes its own OpenCL calls (copy ops included)
 * on threads of its own, whose allocations stay out of the program's
 * malloc arena.
 *
 * The range must be memory uhmm may migrate (see uhmm_migrate).
 *
 * -EINVAL: h, dev, k or addr NULL, len or global_size 0, local_size not
 * dividing global_size, dev not an OpenCL device of h, or the OpenCL
 * implementation refusing the kernel, its arguments or its sizes.
 * -ENOMEM: no room for a gather buffer.  -EIO: the kernel failed or
 * another OpenCL error.  Any error of uhmm_migrate() (the range stays where
 * that left it).
 */
int uhmm_opencl_run(struct uhmm *h, struct uhmm_dev *dev, cl_kernel k,
		    unsigned buf_arg, unsigned off_arg, void *addr, size_t len,
		    size_t global_size, size_t local_size);

/*
 * The OpenCL status code (CL_*, negative) of the calling thread's last
 * OpenCL failure inside uhmm_dev_add_opencl, uhmm_opencl_run or the copy
 * ops it ran, or CL_SUCCESS if none.  For diagnostics only.
 */
cl_int uhmm_opencl_last_error(void);

#ifdef __cplusplus
}
#endif
#endif /* UHMM_OPENCL_H */
