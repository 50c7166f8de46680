// SPDX-License-Identifier: MIT
/*
 * Thin wrappers over the userfaultfd ioctls, and the mapping changes we make
 * ourselves.  Those raise UNMAP/REMAP/REMOVE events like a user's would, and
 * block until the reader thread has read them; announcing them first lets
 * the reader drop them instead of mistaking them for the program's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

static int uffd_ioctl(struct uhmm *h, unsigned long req, void *arg)
{
	return ioctl(h->uffd, req, arg) ? -errno : 0;
}

/*
 * The kernel refuses to change page tables (EAGAIN) while a munmap, madvise
 * or mremap event is on its way to us; the reader reads it without waiting
 * for anything we hold, so trying again always ends ...
 */
/* ... except on the reader itself (the event it would wait for is one only
 * it can read) and in fill_begin (which the reader waits for): callers
 * then try again after letting go, or wake the thread, which faults again. */
static bool may_wait_for_reader(void)
{
	return !reader_thread && !fill_holder;
}

static int uffd_ioctl_retry(struct uhmm *h, unsigned long req, void *arg)
{
	int r;

	while ((r = uffd_ioctl(h, req, arg)) == -EAGAIN && may_wait_for_reader())
		sched_yield();
	return r;
}

/*
 * System pages: write-protect fences writers; unpopulated pages are fenced
 * by WP markers (6.4+), or else by MISSING faults that we then serve.
 * Device pages (shmem): MINOR faults tell us when a page's PTE vanished
 * (MADV_DONTNEED, mremap growth), MISSING when no page exists at all.
 */
int uffd_register(struct uhmm *h, uintptr_t start, size_t len, bool shmem)
{
	struct uffdio_register reg = { .range = { start, len } };

	if (shmem) {
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		if (h->feat & UHMM_FEAT_MINOR_SHMEM)
			reg.mode |= UFFDIO_REGISTER_MODE_MINOR;
		/* WP only where it fences: with the remap fence it is unused,
		 * and unregistering a WP range leaves shmem PTEs read-only
		 * (one write fault per page afterwards) */
		if ((h->feat & UHMM_FEAT_WP_SHMEM) && !(h->feat & UHMM_FEAT_REMAP_FENCE))
			reg.mode |= UFFDIO_REGISTER_MODE_WP;
	} else {
		if (h->feat & UHMM_FEAT_WP)
			reg.mode |= UFFDIO_REGISTER_MODE_WP;
		/* pages on device-private memory have no PTE: their access
		 * must fault to us; so must a first touch that advice places
		 * on a COHERENT device */
		if (!(h->feat & UHMM_FEAT_WP_UNPOPULATED) || h->nprivate ||
		    advice_first_touch_dev(h, start, start + len))
			reg.mode |= UFFDIO_REGISTER_MODE_MISSING;
	}
	return uffd_ioctl(h, UFFDIO_REGISTER, &reg);
}

/* A mapping we cannot manage, registered for its events alone (probe.c):
 * write-protect mode with WP_ASYNC, and no page is ever protected. */
int uffd_watch(struct uhmm *h, uintptr_t start, size_t len)
{
	struct uffdio_register reg = {
		.range = { start, len },
		.mode = UFFDIO_REGISTER_MODE_WP,
	};

	return ioctl(h->uffd_other, UFFDIO_REGISTER, &reg) ? -errno : 0;
}

/* System pages about to be moved out: every access must wait for us. */
int uffd_register_missing(struct uhmm *h, uintptr_t start, size_t len)
{
	struct uffdio_register reg = {
		.range = { start, len },
		.mode = UFFDIO_REGISTER_MODE_MISSING |
			((h->feat & UHMM_FEAT_WP) ? UFFDIO_REGISTER_MODE_WP : 0),
	};

	return uffd_ioctl(h, UFFDIO_REGISTER, &reg);
}

int uffd_unregister(struct uhmm *h, uintptr_t start, size_t len)
{
	struct uffdio_range r = { start, len };

	return uffd_ioctl_retry(h, UFFDIO_UNREGISTER, &r);
}

int uffd_wp(struct uhmm *h, uintptr_t start, size_t len, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { start, len },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return uffd_ioctl_retry(h, UFFDIO_WRITEPROTECT, &wp);
}

int uffd_wake(struct uhmm *h, uintptr_t start, size_t len)
{
	struct uffdio_range r = { start, len };

	return uffd_ioctl(h, UFFDIO_WAKE, &r);
}

/* Resolve a MISSING fault on a managed system page with zeros. */
int uffd_zeropage(struct uhmm *h, uintptr_t addr, bool write)
{
	int r;

	if (write) {
		struct uffdio_copy c = {
			.dst = page_down(addr),
			.src = (uintptr_t)h->zero_page,
			.len = PAGE_SIZE,
		};

		r = uffd_ioctl_retry(h, UFFDIO_COPY, &c);
	} else {
		struct uffdio_zeropage z = { .range = { page_down(addr), PAGE_SIZE } };

		r = uffd_ioctl_retry(h, UFFDIO_ZEROPAGE, &z);
	}
	if (r == -EEXIST || r == -EAGAIN)
		r = uffd_wake(h, page_down(addr), PAGE_SIZE) ?: (r == -EAGAIN ? r : 0);
	return r;
}

/*
 * Put len bytes of our own pages at dst, waking whoever waits there.  MOVE
 * hands the pages over (no copy, no allocation; whole huge pages where both
 * sides are aligned); COPY allocates and copies.  Both stop early when an
 * event is on its way (EAGAIN, with the bytes done so far) or a page is
 * there already (EEXIST): the rest goes on page by page, skipping those.
 * Returns 0 when every page at dst holds data, or -errno.
 */
int uffd_move(struct uhmm *h, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode,
	      size_t *done)
{
	struct uffdio_move m = { .dst = dst, .src = src, .len = len, .mode = mode };
	int r = ioctl(h->uffd, UFFDIO_MOVE, &m) ? -errno : 0;

	*done = m.move > 0 ? (size_t)m.move : 0;
	return r;
}

static int place_some(struct uhmm *h, uintptr_t dst, uintptr_t src, size_t len,
		      bool move, size_t *done)
{
	long r;

	if (move) {
		r = uffd_move(h, dst, src, len, 0, done);
	} else {
		struct uffdio_copy c = { .dst = dst, .src = src, .len = len };

		r = ioctl(h->uffd, UFFDIO_COPY, &c) ? -errno : 0;
		*done = c.copy > 0 ? (size_t)c.copy : 0;
	}
	return r;
}

int uffd_place(struct uhmm *h, uintptr_t dst, const void *src, size_t len, bool move,
	       size_t *placed)
{
	bool skipped = false;
	size_t off = 0;
	int r = 0;

	while (off < len) {
		size_t done = 0;

		r = place_some(h, dst + off, (uintptr_t)src + off, len - off, move, &done);
		off += done;
		if (!r)
			continue;
		if (r == -EAGAIN && may_wait_for_reader()) {
			sched_yield();
			continue;
		}
		if (r != -EEXIST)
			break;
		/* a page is there already (an earlier fault's): keep it */
		if (!done)
			off += PAGE_SIZE;
		skipped = true;
		r = 0;
	}
	*placed = off < len ? off : len;
	/* the ioctls woke the waiters of what they placed; a skipped page's
	 * waiters still sleep */
	if (skipped)
		uffd_wake(h, dst, *placed);
	return r;
}

/* Moved where asked and the kernel allows it (no copy), else copied. */
static int hand_over_once(struct uhmm *h, uintptr_t dst, char *buf, size_t len, bool move,
			  size_t *placed)
{
	size_t more = 0;
	int r = -ENOTSUP;

	*placed = 0;
	if (move && (h->feat & UHMM_FEAT_MOVE))
		r = uffd_place(h, dst, buf, len, true, placed);
	/* MOVE wants both sides writable and exclusive: else copy */
	if (r && r != -EAGAIN) {
		r = uffd_place(h, dst + *placed, buf + *placed, len - *placed, false, &more);
		*placed += more;
	}
	return r;
}

/*
 * Our pages at buf go to dst.  One call fills one mapping only (ENOENT
 * for a run that crosses into the next, as a window of pages on a device
 * may): such a run goes in halves until each part fits, and a page that
 * fits nowhere (unmapped) ends it.  *placed: the bytes from dst that hold
 * data now.
 */
int uffd_hand_over(struct uhmm *h, uintptr_t dst, char *buf, size_t len, bool move,
		   size_t *placed)
{
	size_t done = 0, chunk = len;
	int r = 0;

	while (done < len) {
		size_t got = 0, n = chunk < len - done ? chunk : len - done;

		r = hand_over_once(h, dst + done, buf + done, n, move, &got);
		done += got;
		if (!r) {
			chunk = len - done;
			continue;
		}
		if (r != -ENOENT || got || n <= PAGE_SIZE)
			break;
		chunk = page_down(n / 2);
	}
	*placed = done < len ? done : len;
	return done < len ? r : 0;
}

/* Has the kernel queued a fault or event for us to read? */
bool uffd_pending(struct uhmm *h)
{
	struct pollfd p = { h->uffd, POLLIN, 0 };

	return poll(&p, 1, 0) > 0;
}

/* Access to [dst, dst + len) raises SIGBUS from now on. */
int uffd_poison(struct uhmm *h, uintptr_t dst, size_t len)
{
	struct uffdio_poison p = { .range = { dst, len } };

	return uffd_ioctl_retry(h, UFFDIO_POISON, &p);
}

/* Map device pages that are in the page cache but lost their PTEs. */
int uffd_continue(struct uhmm *h, uintptr_t start, size_t len)
{
	struct uffdio_continue c = { .range = { start, len } };
	int r = uffd_ioctl_retry(h, UFFDIO_CONTINUE, &c);

	if (r != -EEXIST)
		return r;
	/* some pages were mapped already: do the rest one by one */
	for (uintptr_t a = start; a < start + len; a += PAGE_SIZE) {
		struct uffdio_continue one = { .range = { a, PAGE_SIZE } };

		r = uffd_ioctl_retry(h, UFFDIO_CONTINUE, &one);
		if (r && r != -EEXIST)
			return r;
	}
	return uffd_wake(h, start, len);
}

/*
 * Raw syscalls for the mapping changes under the program's feet: its other
 * threads go on using the range, ordered by our fence, and a sanitizer's
 * mmap interceptor would take the replacement for a free of their memory.
 */
void *mm_map_fixed(struct uhmm *h, uintptr_t addr, size_t len, int prot,
		   int flags, int fd, uint64_t off)
{
	void *p;

	expect_add(h, UFFD_EVENT_UNMAP, addr, addr + len, 0);
	p = (void *)syscall(SYS_mmap, addr, len, prot, flags | MAP_FIXED, fd, off);
	if ((uintptr_t)p > -4096ul) {
		errno = -(long)p;
		p = MAP_FAILED;
	}
	h->own_seq = expect_clear(h);
	return p;
}

/*
 * Our moves go from memory of ours (a staging slot, a device's view) that
 * we map again afterwards.  Where the kernel can, the source stays mapped
 * (MREMAP_DONTUNMAP, empty): a hole there, even for a moment, is where
 * another thread's mmap (a new thread's stack) may land, and our mapping
 * it again would wipe it out.
 */
void *mm_move(struct uhmm *h, void *from, size_t len, uintptr_t to)
{
	int flags = MREMAP_MAYMOVE | MREMAP_FIXED | (h->dontunmap ? MREMAP_DONTUNMAP : 0);
	void *p;

	expect_add(h, UFFD_EVENT_UNMAP, to, to + len, 0);
	expect_add(h, UFFD_EVENT_REMAP, (uintptr_t)from, to, len);
	expect_add(h, UFFD_EVENT_UNMAP, (uintptr_t)from, (uintptr_t)from + len, 0);
	p = (void *)syscall(SYS_mremap, from, len, len, flags, to);
	if ((uintptr_t)p > -4096ul) {
		errno = -(long)p;
		p = MAP_FAILED;
	}
	h->own_seq = expect_clear(h);
	return p;
}

void *mm_move_keep(struct uhmm *h, uintptr_t from, size_t len, uintptr_t to)
{
	int flags = MREMAP_MAYMOVE | MREMAP_DONTUNMAP | (to ? MREMAP_FIXED : 0);
	void *p;

	expect_add(h, UFFD_EVENT_REMAP, from, to ? to : EXPECT_ANY, len);
	if (to)
		expect_add(h, UFFD_EVENT_UNMAP, to, to + len, 0);
	p = (void *)syscall(SYS_mremap, from, len, len, flags, to);
	if ((uintptr_t)p > -4096ul) {
		errno = -(long)p;
		p = MAP_FAILED;
	}
	h->own_seq = expect_clear(h);
	return p;
}

int mm_zap(struct uhmm *h, uintptr_t addr, size_t len)
{
	int r;

	expect_add(h, UFFD_EVENT_REMOVE, addr, addr + len, 0);
	r = madvise((void *)addr, len, MADV_DONTNEED) ? -errno : 0;
	expect_clear(h);
	return r;
}
