// SPDX-License-Identifier: MIT
/*
 * Address space of our own for the library's memory (mem.c's slabs and
 * larger objects).  Left to the kernel, an mmap of ours on a library
 * thread lands in the highest hole that fits, and the hole a program has
 * just made with munmap, to fill again with mmap(MAP_FIXED), is such a
 * hole as soon as nothing lies below it: the program's mapping then
 * replaces our memory, and its munmap takes it away (t_mirror_remap saw a
 * slab of ours there: its free list read the program's bytes).  So one
 * region is reserved (PROT_NONE, nothing committed) when the library first
 * needs memory, which is on the program's own thread (uhmm_open), and
 * everything after is cut from it: a range given back is reserved again,
 * which also frees its pages, and is never a hole.  Past the region, or
 * where it cannot be had, memory comes from the kernel as before.
 *
 * The reservation counts against RLIMIT_AS like any mapping, so under a
 * limit it takes an eighth of what the limit leaves the process (16 GiB of
 * a 20 GiB limit would leave a program 4), and half as much again each
 * time the kernel refuses it.
 *
 * With mem.c's slab_lock held (it is held across fork).
 */
#define _GNU_SOURCE
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "internal.h"

#define ZONE_MAX	(16ul << 30)
#define ZONE_MIN	(16ul << 20)	/* less is not worth a reservation */
#define ZONE_EXTENTS	8192

struct extent {
	uintptr_t start;
	size_t len;
};

static uintptr_t zone_base;
static size_t zone_len;
static bool zone_tried;
static struct extent free_ext[ZONE_EXTENTS];	/* by address, apart */
static unsigned nfree;

/* Bytes of address space the process has mapped (/proc/self/statm), or 0. */
static size_t mapped_now(void)
{
	char buf[64];

	if (proc_read_text("/proc/self/statm", buf, sizeof(buf)) < 0)
		return 0;
	return strtoul(buf, NULL, 10) << PAGE_SHIFT;
}

/* What RLIMIT_AS leaves the process to map, or SIZE_MAX without a limit. */
size_t addr_space_left(void)
{
	struct rlimit rl;
	size_t used;

	if (getrlimit(RLIMIT_AS, &rl) || rl.rlim_cur == RLIM_INFINITY)
		return SIZE_MAX;
	used = mapped_now();
	return rl.rlim_cur > used ? rl.rlim_cur - used : 0;
}

/* How much to ask for: ZONE_MAX, or an eighth of what RLIMIT_AS leaves. */
static size_t zone_want(void)
{
	size_t left = (addr_space_left() / 8) & ~(BLOCK_SIZE - 1);

	return left < ZONE_MAX ? left : ZONE_MAX;
}

static bool zone_ready(void)
{
	void *p = MAP_FAILED;
	size_t len;

	if (zone_tried)
		return zone_base;
	zone_tried = true;
	for (len = zone_want(); len >= ZONE_MIN; len /= 2) {
		p = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (p != MAP_FAILED)
			break;
	}
	if (p == MAP_FAILED)
		return false;
	zone_base = (uintptr_t)p;
	zone_len = len;
	free_ext[0] = (struct extent){ zone_base, zone_len };
	nfree = 1;
	return true;
}

bool zone_owns(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	return zone_base && a >= zone_base && a - zone_base < zone_len;
}

/* [a, a + len) out of extent i, which holds it. */
static void extent_cut(unsigned i, uintptr_t a, size_t len)
{
	struct extent *x = &free_ext[i];
	uintptr_t end = x->start + x->len;

	if (a > x->start) {
		/* the part above goes on alone (if the table has room) */
		x->len = a - x->start;
		if (a + len < end && nfree < ZONE_EXTENTS) {
			memmove(x + 2, x + 1, (nfree++ - i - 1) * sizeof(*x));
			x[1] = (struct extent){ a + len, end - (a + len) };
		}
		return;
	}
	x->start += len;
	x->len -= len;
	if (!x->len)
		memmove(x, x + 1, (--nfree - i) * sizeof(*x));
}

/* len bytes (pages) of fresh zeroed memory in the zone, aligned to align
 * (a power of two), or NULL. */
void *zone_map(size_t len, size_t align, int flags)
{
	for (unsigned i = 0; zone_ready() && i < nfree; i++) {
		struct extent *x = &free_ext[i];
		uintptr_t a = (x->start + align - 1) & ~(align - 1);

		if (a + len > x->start + x->len)
			continue;
		if (mmap((void *)a, len, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | flags, -1, 0) == MAP_FAILED)
			return NULL;
		extent_cut(i, a, len);
		return (void *)a;
	}
	return NULL;
}

/* Give back [p, p + len) of the zone: its pages are freed, the range stays
 * ours.  A range the table has no room for is reserved and not reused. */
void zone_unmap(void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p;
	unsigned i = 0;

	mmap(p, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	while (i < nfree && free_ext[i].start < a)
		i++;
	if (i > 0 && free_ext[i - 1].start + free_ext[i - 1].len == a) {
		free_ext[i - 1].len += len;
		if (i < nfree && a + len == free_ext[i].start) {
			free_ext[i - 1].len += free_ext[i].len;
			memmove(&free_ext[i], &free_ext[i + 1], (--nfree - i) * sizeof(free_ext[0]));
		}
		return;
	}
	if (i < nfree && a + len == free_ext[i].start) {
		free_ext[i].start = a;
		free_ext[i].len += len;
		return;
	}
	if (nfree == ZONE_EXTENTS)
		return;
	memmove(&free_ext[i + 1], &free_ext[i], (nfree++ - i) * sizeof(free_ext[0]));
	free_ext[i] = (struct extent){ a, len };
}
