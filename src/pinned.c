// SPDX-License-Identifier: MIT
/*
 * Pages the kernel holds pinned for DMA (O_DIRECT in flight, io_uring
 * fixed buffers, RDMA) must not leave the program's range: the DMA goes on
 * to the physical page, and what it writes after a migration is lost
 * (ARCHITECTURE, hazard 4).  No interface says which pages are pinned, but
 * UFFDIO_MOVE (6.8) refuses to move one (EBUSY) where mremap moves it
 * without a word.  So where the kernel has it, the system pages of a batch
 * leave the program's range with UFFDIO_MOVE: a pinned page stops the
 * batch, what moved before it goes back, and the migration says -EBUSY.
 * Only in contexts opened with UHMM_OPEN_DETECT_PINS: with it on, the
 * stress model still loses a CPU write beside a migration now and then
 * (3 times in about 40 runs of a seed, never with mremap), not
 * understood yet.
 *
 * UFFDIO_MOVE refuses more than pins: a page shared with another process
 * (after a fork, or KSM's), a read-only or mlocked mapping.  A pinned
 * anonymous page is always the process's alone (pinning unshares it), so
 * pagemap's exclusive bit tells a pin from a shared page; for everything
 * else the batch goes back and moves with mremap, as without UFFDIO_MOVE.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compat.h"
#include "migrate.h"
#include "mirror.h"

#define AGAIN_TRIES	1000	/* EAGAIN with no progress, in a row */

/* All of [src, src + len) to dst, as far as it goes: the bytes moved. */
static size_t move_all(struct uhmm *h, uintptr_t dst, uintptr_t src, size_t len, int *err)
{
	size_t off = 0;
	int again = 0;

	*err = 0;
	while (off < len) {
		size_t k = 0;

		*err = uffd_move(h, dst + off, src + off, len - off,
				 UFFDIO_MOVE_MODE_DONTWAKE | UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES, &k);

		off += k;
		if (!*err)
			break;
		if (*err != -EAGAIN || (!k && ++again > AGAIN_TRIES))
			break;
		if (k)
			again = 0;
		sched_yield();	/* an event on its way: the reader reads it */
	}
	return off;
}

/* The process's page alone (mapped once)?  A pinned anonymous page is. */
static bool page_exclusive(uintptr_t a)
{
	int fd = procfd(PROC_PAGEMAP);
	uint64_t e = 0;

	if (fd < 0 || pread(fd, &e, sizeof(e), (a >> PAGE_SHIFT) * sizeof(e)) != sizeof(e))
		return false;
	return (e & PM_PRESENT) && (e & PM_EXCLUSIVE);
}

/*
 * A page UFFDIO_MOVE refused at a: pinned, or only not marked as the
 * process's own?  A page mapped once can still be unmarked (a child that
 * shared it after a fork has gone): a write fault marks it again without a
 * copy, and MADV_POPULATE_WRITE takes one without writing.  A pinned page
 * is always marked, so the same fault never copies it away from its DMA.
 * Then UFFDIO_MOVE is asked again: a refusal after that is a pin.
 */
static bool unmarked_page(uintptr_t a)
{
	return !madvise((void *)a, PAGE_SIZE, MADV_POPULATE_WRITE);
}

/*
 * Move the program's pages at [from, from + len) to our slot `to` (2 MiB
 * congruent, reserved).  0: all moved; -EBUSY: a page is pinned, and the
 * range is as it was; -EOPNOTSUPP: UFFDIO_MOVE cannot (or the kernel has
 * none), the range is as it was, and the caller moves it with mremap;
 * -EAGAIN, -ENOMEM: the batch fails.
 */
int pages_move_out(struct uhmm *h, uintptr_t from, char *to, size_t len)
{
	size_t done = 0, tried = SIZE_MAX, back;
	bool pinned = false;
	int r, r2;

	if (!(h->feat & UHMM_FEAT_PIN_DETECT) || !(h->opts.flags & UHMM_OPEN_DETECT_PINS))
		return -EOPNOTSUPP;
	if (mmap(to, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0) == MAP_FAILED)
		return -errno;
	r = uffd_register_missing(h, (uintptr_t)to, len);
	if (r)
		return r;
	for (;;) {
		done += move_all(h, (uintptr_t)to + done, from + done, len - done, &r);
		if (!r)
			return 0;
		if (r != -EBUSY || !page_exclusive(from + done))
			break;		/* not a pin: shared, swapped, ... */
		if (tried == done) {
			pinned = true;	/* refused again, marked: a pin */
			break;
		}
		if (!unmarked_page(from + done))
			break;
		tried = done;
	}
	/* what is not a pin or a layout changing under us (EAGAIN) is
	 * something UFFDIO_MOVE does not do: mremap does it */
	if (!pinned && r != -EAGAIN)
		r = -EOPNOTSUPP;
	back = move_all(h, from, (uintptr_t)to, done, &r2);
	if (back < done)
		return -EAGAIN;	/* the program unmapped some: what is left is ours */
	return r;
}

/* Undo pages_move_out: our slot's pages back into the program's range. */
int pages_move_back(struct uhmm *h, uintptr_t at, char *from, size_t len)
{
	int r;

	mprotect(from, len, PROT_READ | PROT_WRITE);
	move_all(h, at, (uintptr_t)from, len, &r);
	return r;
}
