// SPDX-License-Identifier: MIT
/*
 * Which pages of a range hold data.  Untouched pages are never copied: they
 * become zero-filled device pages, and system memory is never populated for
 * them.  PAGEMAP_SCAN (6.7+) answers in runs; /proc/self/pagemap otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"


static int scan_ioctl(int fd, uintptr_t start, size_t npages, uint8_t *present,
		      uint64_t cats)
{
	struct page_region reg[256];
	uintptr_t end = start + (npages << PAGE_SHIFT), at = start;

	while (at < end) {
		struct pm_scan_arg arg = {
			.size = sizeof(arg),
			.start = at,
			.end = end,
			.vec = (uintptr_t)reg,
			.vec_len = 256,
			.category_anyof_mask = cats,
			.return_mask = cats,
		};
		long n = ioctl(fd, PAGEMAP_SCAN, &arg);

		if (n < 0)
			return -errno;
		for (long i = 0; i < n; i++)
			memset(present + ((reg[i].start - start) >> PAGE_SHIFT), 1,
			       (reg[i].end - reg[i].start) >> PAGE_SHIFT);
		if (arg.walk_end <= at)
			return -EIO;
		at = arg.walk_end;
	}
	return 0;
}

static int scan_read(int fd, uintptr_t start, size_t npages, uint8_t *present,
		     uint64_t bits)
{
	uint64_t buf[512];

	for (size_t done = 0; done < npages;) {
		size_t n = npages - done < 512 ? npages - done : 512;
		off_t off = ((start >> PAGE_SHIFT) + done) * sizeof(uint64_t);
		ssize_t got = pread(fd, buf, n * sizeof(uint64_t), off);

		if (got <= 0)
			return got < 0 ? -errno : -EIO;
		n = got / sizeof(uint64_t);
		for (size_t i = 0; i < n; i++)
			present[done + i] |= !!(buf[i] & bits);
		done += n;
	}
	return 0;
}

/*
 * Sets present[i] for pages holding data, adding to what is there.  With
 * swapped == false only resident pages count: once a range is
 * write-protected, its empty pages carry uffd-wp markers, which the kernel
 * reports like swap entries.
 */
int pagemap_present(struct uhmm *h, uintptr_t start, size_t npages, uint8_t *present,
		    bool swapped)
{
	int fd = procfd(PROC_PAGEMAP);
	int r;

	if (fd < 0)
		return fd;
	if (h->feat & UHMM_FEAT_PAGEMAP_SCAN)
		r = scan_ioctl(fd, start, npages, present,
			       PAGE_IS_PRESENT | (swapped ? PAGE_IS_SWAPPED : 0));
	else
		r = scan_read(fd, start, npages, present,
			      PM_PRESENT | (swapped ? PM_SWAPPED : 0));
	return r;
}

/*
 * Is the page poisoned (UFFDIO_POISON)?  Its marker reads like a swap
 * entry without the uffd-wp bit; a page truly swapped out never takes a
 * userfaultfd fault (the kernel swaps it in), so a fault there is the
 * poison's.
 */
bool pagemap_poisoned(uintptr_t page)
{
	int fd = procfd(PROC_PAGEMAP);
	uint64_t e = 0;

	if (fd < 0 || pread(fd, &e, sizeof(e), (page >> PAGE_SHIFT) * sizeof(e)) != sizeof(e))
		return false;
	return (e & (PM_PRESENT | PM_SWAPPED | PM_UFFD_WP)) == PM_SWAPPED;
}
