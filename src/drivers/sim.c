// SPDX-License-Identifier: MIT
/*
 * The simulated device: the reference driver of this API.  Its memory is a
 * memfd, populated once at registration.  COHERENT: user pages are mapped
 * straight onto it.
 *
 * The memfd is longer than the device (a sparse tail that is never
 * populated): a program that grows a device-backed mapping with mremap then
 * faults on pages that do not exist instead of SIGBUS, and uhmm gives it
 * zeroed system memory there.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "internal.h"

#define SIM_TAIL (64ull << 30)

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
	if (kind == UHMM_MEM_PRIVATE)
		return -ENOSYS;		/* device-private memory: next release */
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
