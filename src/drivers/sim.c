// SPDX-License-Identifier: MIT
/*
 * The simulated device: the reference driver of this API.  Its memory is a
 * memfd, populated once at registration.  COHERENT: user pages are mapped
 * straight onto it.  PRIVATE: it is mapped only here, in the driver, and
 * reached through the copy ops like any other device-private memory.
 *
 * The memfd is longer than the device (a sparse tail that is never
 * populated): a program that grows a device-backed mapping with mremap then
 * faults on pages that do not exist instead of SIGBUS, and uhmm gives it
 * zeroed system memory there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <unistd.h>

#include "internal.h"

#define SIM_TAIL (64ull << 30)

struct sim_private {
	char *mem;
	size_t size;
};

static int sim_copy_to_dev(void *drv, uint64_t off, const void *src, size_t len)
{
	struct sim_private *s = drv;

	if (off > s->size || len > s->size - off)
		return -EINVAL;
	memcpy(s->mem + off, src, len);
	return 0;
}

static int sim_copy_from_dev(void *drv, void *dst, uint64_t off, size_t len)
{
	struct sim_private *s = drv;

	if (off > s->size || len > s->size - off)
		return -EINVAL;
	memcpy(dst, s->mem + off, len);
	return 0;
}

static int sim_zero(void *drv, uint64_t off, size_t len)
{
	struct sim_private *s = drv;

	if (off > s->size || len > s->size - off)
		return -EINVAL;
	memset(s->mem + off, 0, len);
	return 0;
}

static void sim_release(void *drv)
{
	struct sim_private *s = drv;

	mem_disown_map(s->mem);
	munmap(s->mem, s->size);
	mem_free(s);
}

static const struct uhmm_dev_ops sim_private_ops = {
	.sz = sizeof(struct uhmm_dev_ops),
	.copy_to_dev = sim_copy_to_dev,
	.copy_from_dev = sim_copy_from_dev,
	.zero = sim_zero,
	.release = sim_release,
};

/* The device's memory lives in the driver alone, populated once. */
static int sim_add_private(struct uhmm *h, const char *name, size_t size,
			   struct uhmm_dev **out)
{
	struct uhmm_dev_desc d = {
		.kind = UHMM_MEM_PRIVATE, .name = name ? name : "sim", .size = size,
		.fd = -1, .ops = &sim_private_ops,
	};
	struct sim_private *s = mem_alloc(sizeof(*s));
	int r = -ENOMEM, fd;

	if (!s)
		return -ENOMEM;
	s->size = size;
	s->mem = MAP_FAILED;
	fd = memfd_create(d.name, MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, size))
		goto fail;
	s->mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (s->mem == MAP_FAILED || madvise(s->mem, size, MADV_POPULATE_WRITE))
		goto fail;
	close(fd);
	fd = -1;
	/* ours, not the program's, though the kernel may have put it in a
	 * hole the program just made: a DMA access there is -EFAULT */
	mem_own_map(s->mem, size);
	d.drv = s;
	r = uhmm_dev_add(h, &d, out);
	if (r)
		goto fail;
	/* a fresh memfd reads as zeros: nothing to clear before first use */
	ctx_lock(h);
	memset((*out)->pflags, 0, (*out)->npages);
	ctx_unlock(h);
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	if (s->mem != MAP_FAILED) {
		mem_disown_map(s->mem);
		munmap(s->mem, size);
	}
	mem_free(s);
	return r;
}

/* physical memory plus swap, in bytes (SIZE_MAX where sysinfo fails: no
 * limit rather than a wrong one) */
static size_t sim_mem_limit(void)
{
	struct sysinfo si;
	unsigned __int128 b;

	if (sysinfo(&si))
		return SIZE_MAX;
	b = ((unsigned __int128)si.totalram + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
	return b > SIZE_MAX ? SIZE_MAX : (size_t)b;
}

int uhmm_dev_add_sim(struct uhmm *h, const char *name, enum uhmm_mem kind,
		     size_t size, struct uhmm_dev **out)
{
	struct uhmm_dev_desc d = { .kind = kind, .name = name, .size = size };
	char label[80];
	int fd, r;

	if (!h || !out)
		return -EINVAL;
	if (kind != UHMM_MEM_COHERENT && kind != UHMM_MEM_PRIVATE)
		return -EINVAL;
	if (!size || size % PAGE_SIZE)
		return -EINVAL;
	/* the memfd is size + SIM_TAIL long: that must not wrap */
	if (size > SIZE_MAX - SIM_TAIL)
		return -ENOMEM;
	/* it is populated at registration: more than the machine's memory
	 * and swap cannot be, and trying takes minutes before the OOM killer */
	if (size > sim_mem_limit())
		return -ENOMEM;
	if (kind == UHMM_MEM_PRIVATE)
		return sim_add_private(h, name, size, out);
	snprintf(label, sizeof(label), "uhmm:%s", name ? name : "sim");
	fd = memfd_create(label, MFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, size + SIM_TAIL)) {
		r = -errno;
		close(fd);
		return r;
	}
	d.fd = fd;
	r = dev_setup(h, &d, fd, true, out);
	if (r)
		close(fd);
	return r;
}
