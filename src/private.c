// SPDX-License-Identifier: MIT
/*
 * Device-private memory: pages the CPU cannot reach.  The program's range
 * over them stays mapped, registered and empty, so any CPU access, user or
 * kernel mode, is a userfaultfd MISSING fault.  Going out, the pages are
 * taken from the range (remap fence, or write-protect then zap) and handed
 * to the driver's copy_to_dev.  Coming back, by migration or by a fault,
 * the driver copies into populated pages of ours (the pool, or a staging
 * buffer congruent with the range) that UFFDIO_MOVE then gives the program
 * without another copy - UFFDIO_COPY where the kernel has no MOVE, and for
 * a window small enough for the thread's bounce buffer (bounce.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "compat.h"
#include "migrate.h"
#include "trace.h"

#define COPY_TRIES 3		/* before a fault's page is called lost */

/*
 * Before a library thread first calls a device's ops, the driver's
 * thread_init runs on it (a GPU runtime makes its context current); so it
 * does on a program thread serving its own fault (fault_signal.c), which
 * calls them where the program did not.  The serial tells a device from
 * an earlier one that had the same id.
 */
static __thread uint64_t inited[MAX_DEVS + 1];

void dev_thread_init(struct uhmm_dev *d)
{
	if ((!lib_thread && !serving_fault) || inited[d->id] == d->serial)
		return;
	inited[d->id] = d->serial;
	if (d->ops.thread_init)
		d->ops.thread_init(d->drv);
}

/* Run the driver's copy out of device memory, for k pages from page i. */
int dev_read_pages(struct uhmm_dev *d, const uint32_t *dp, size_t n, char *dst)
{
	dev_thread_init(d);
	for (size_t i = 0; i < n;) {
		size_t k = run_len(dp, NULL, i, n);
		int r = d->ops.copy_from_dev(d->drv, dst + (i << PAGE_SHIFT),
					     (uint64_t)dp[i] << PAGE_SHIFT, k << PAGE_SHIFT);

		sim_link_use(d, k << PAGE_SHIFT);	/* from device to system memory */

		if (r)
			return r < 0 ? r : -EIO;
		i += k;
	}
	return 0;
}

/*
 * Where the driver copies a window coming home: the thread's bounce buffer
 * for a small one (copied into place), else pool pages or a staging
 * buffer congruent with the range (moved into place).
 */
enum buffer_kind { BUF_BOUNCE, BUF_POOL, BUF_STAGE };

static char *buffer_get(struct uhmm *h, uintptr_t at, size_t len, enum buffer_kind *kind)
{
	char *p = len <= BOUNCE_BYTES ? bounce_buffer() : NULL;

	*kind = BUF_BOUNCE;
	if (p)
		return p;
	p = pool_take(h, len, at);
	*kind = p ? BUF_POOL : BUF_STAGE;
	return p ? p : stage_alloc(h, at, len, true);
}

static void buffer_put(struct uhmm *h, char *p, enum buffer_kind kind)
{
	if (kind == BUF_POOL)
		pool_put(h, p);
	else if (kind == BUF_STAGE)
		arena_put(h, p);
}

/*
 * Pages on their way home: n pages from `at`, every one on private device
 * d.  A fault served by one of several fault threads copies with the
 * context unlocked; the generation of each device page then tells whether
 * it was freed (and perhaps reused) meanwhile.
 */
struct homing {
	struct uhmm_dev *d;
	uintptr_t at;
	size_t n;
	uint32_t dp[BLOCK_PAGES];
	uint32_t gen[BLOCK_PAGES];
	char *buf;
	enum buffer_kind kind;
};

static int home_prepare(struct uhmm *h, struct uhmm_dev *d, uintptr_t at, size_t n,
			struct homing *hm)
{
	hm->d = d;
	hm->at = at;
	hm->n = n;
	for (size_t i = 0; i < n; i++) {
		pt_loc(&h->pt, at + (i << PAGE_SHIFT), &hm->dp[i]);
		hm->gen[i] = d->gen[hm->dp[i]];
	}
	hm->buf = buffer_get(h, at, n << PAGE_SHIFT, &hm->kind);
	return hm->buf ? 0 : -ENOMEM;
}

/* Did any page change place since home_prepare? */
static bool home_stale(struct uhmm *h, const struct homing *hm)
{
	for (size_t i = 0; i < hm->n; i++) {
		uint32_t dp = 0;

		if (pt_loc(&h->pt, hm->at + (i << PAGE_SHIFT), &dp) != hm->d->id ||
		    dp != hm->dp[i] || hm->d->gen[dp] != hm->gen[i])
			return true;
	}
	return false;
}

/*
 * The copied pages go to the program's range, unless it dropped some of
 * them meanwhile (MADV_DONTNEED: they must read zeros, not what we
 * copied): -EAGAIN then, and the fault is served again once that is
 * applied (fill_begin says why this cannot be looked at first and placed
 * after).
 */
static int home_place(struct uhmm *h, struct homing *hm, size_t *placed)
{
	size_t len = hm->n << PAGE_SHIFT;

	*placed = 0;
	for (;;) {
		size_t more = 0;
		int r;

		fill_begin(h);
		if (!fill_clear(h, hm->at, hm->at + len)) {
			fill_end(h);
			return -EAGAIN;
		}
		r = uffd_hand_over(h, hm->at + *placed, hm->buf + *placed, len - *placed,
				   hm->kind != BUF_BOUNCE, &more);
		fill_end(h);
		*placed += more;
		if (r != -EAGAIN || reader_thread)
			return r;
		sched_yield();	/* an event is unread: let the reader have it */
	}
}

/* Place the copied pages and account for them; on a copy failure (r)
 * nothing changes: the pages stay where their data is valid. */
static int home_commit(struct uhmm *h, struct homing *hm, int r)
{
	size_t placed = 0, n;
	bool counted = false;

	if (!r && home_stale(h, hm))
		r = -EAGAIN;
	/* counted first: the threads the placement wakes may look at once */
	if (!r) {
		counted = true;
		COUNT(h, hm->d, pages_to_sys, hm->n);
		COUNT(h, hm->d, bytes_copied, hm->n << PAGE_SHIFT);
		r = home_place(h, hm, &placed);
	}
	buffer_put(h, hm->buf, hm->kind);
	/* what holds data in system memory now is system memory, even if
	 * the rest could not be placed */
	n = placed >> PAGE_SHIFT;
	for (size_t i = 0; i < n; i++) {
		devmem_free(hm->d, hm->dp[i]);
		pt_set(&h->pt, hm->at + (i << PAGE_SHIFT), LOC_SYS, 0);
	}
	if (n)
		trace_move(h, hm->at, n, hm->d->id, LOC_SYS);
	if (counted && n < hm->n) {
		COUNT(h, hm->d, pages_to_sys, (uint64_t)-(hm->n - n));
		COUNT(h, hm->d, bytes_copied, (uint64_t)-((hm->n - n) << PAGE_SHIFT));
	}
	if (r)
		return r == -EIO || r == -ENOMEM ? r : -EAGAIN;
	return 0;
}

/*
 * Bring the pages home.  `unlocked`: copy with the context unlocked, so
 * that other fault threads copy at the same time.  Every other holder of
 * the context first waits for such copies to end (events_drain), so no
 * device page is freed, reused or removed under one.
 */
static int home_run_mode(struct uhmm *h, struct uhmm_dev *d, uintptr_t at, size_t n,
			 bool unlocked)
{
	struct homing one, *hm = &one;	/* 4 KiB on the stack: no mmap per fault */
	int r;

	/* before the copy: a device write after it would be lost */
	mirror_invalidate(h, at, at + (n << PAGE_SHIFT), UHMM_EV_MIGRATE, h->initiator);
	r = home_prepare(h, d, at, n, hm);
	if (r)
		return r;
	if (unlocked) {
		d->busy++;
		h->ninflight++;
		ctx_unlock(h);
	}
	r = dev_read_pages(d, hm->dp, n, hm->buf);
	if (unlocked) {
		ctx_lock(h);
		d->busy--;
		h->ninflight--;
		pthread_cond_broadcast(&h->idle);
		/* what the program changed meanwhile, before we commit */
		events_drain(h);
	}
	return home_commit(h, hm, r);
}

static int home_run(struct uhmm *h, struct uhmm_dev *d, uintptr_t at, size_t n)
{
	return home_run_mode(h, d, at, n, false);
}

/*
 * Every page of [start, end) on a private device other than `keep` comes
 * home, in runs of one device within one 2 MiB block.  *moved counts them.
 */
int private_home(struct uhmm *h, uintptr_t start, uintptr_t end, int keep,
		 size_t *moved)
{
	uintptr_t a = start;

	while (a < end) {
		uintptr_t s = a, lim = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;
		int loc = pt_loc(&h->pt, a, NULL);
		int r;

		if (!loc_private(h, loc) || loc == keep) {
			a += PAGE_SIZE;
			continue;
		}
		if (lim > end)
			lim = end;
		while (a < lim && pt_loc(&h->pt, a, NULL) == loc)
			a += PAGE_SIZE;
		r = home_run(h, dev_by_id(h, loc), s, (a - s) >> PAGE_SHIFT);
		if (r)
			return r;
		if (moved)
			*moved += (a - s) >> PAGE_SHIFT;
	}
	return 0;
}

bool range_has_private(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	if (!h->nprivate)
		return false;
	for (uintptr_t a = pt_next_managed(&h->pt, start, end); a < end; a += PAGE_SIZE)
		if (loc_private(h, pt_loc(&h->pt, a, NULL)))
			return true;
	return false;
}

/* ---- CPU faults ------------------------------------------------------- */

/*
 * The window one fault brings back: fault_around bytes aligned around the
 * page, or, for a thread reading on from where the last window ended,
 * twice the last window (up to 2 MiB), forward, within the 2 MiB block.
 */
#define NSEQ (sizeof(((struct uhmm *)0)->seq) / sizeof(((struct uhmm *)0)->seq[0]))

/* The sequential-reader slot of thread tid, or NSEQ. */
static size_t seq_slot(const struct uhmm *h, pid_t tid)
{
	size_t i;

	for (i = 0; i < NSEQ && h->seq[i].tid != tid; i++)
		;
	return i;
}

static void fault_window(struct uhmm *h, uintptr_t page, pid_t tid, uintptr_t *ws,
			 uintptr_t *we)
{
	size_t fa = h->opts.fault_around, n = NSEQ, i = seq_slot(h, tid);
	uintptr_t block_end = (page & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

	if (i == n) {
		i = h->seq_victim++ % n;
		h->seq[i].tid = tid;
		h->seq[i].window = 0;
	}
	if (tid && page == h->seq[i].next && h->seq[i].window) {
		size_t w = h->seq[i].window * 2;

		h->seq[i].window = w > BLOCK_SIZE ? BLOCK_SIZE : w;
		*ws = page;
		*we = page + h->seq[i].window;
		if (*we > block_end || *we < page)
			*we = block_end;
	} else {
		h->seq[i].window = fa;
		*ws = page & ~(fa - 1);
		*we = *ws + fa;
		if (*ws < (page & ~(BLOCK_SIZE - 1)))
			*ws = page & ~(BLOCK_SIZE - 1);
		if (*we > block_end || *we < *ws)
			*we = block_end;
	}
	h->seq[i].next = *we;
}

/*
 * A thread reading sequentially at full window size: bring the next
 * READ_AHEAD blocks of the same device home now, while it works on what it
 * faulted in, so that it finds them there instead of waiting for them.
 */
#define READ_AHEAD 4

static void read_ahead(struct uhmm *h, struct uhmm_dev *d, pid_t tid, uintptr_t at)
{
	size_t i = seq_slot(h, tid);
	uintptr_t e = at;

	if (!tid || i == NSEQ || h->seq[i].window < BLOCK_SIZE || h->seq[i].next != at)
		return;
	for (int k = 0; k < READ_AHEAD; k++) {
		uintptr_t s = e, lim = (s & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

		/* another thread waiting for its own window goes first */
		if (uffd_pending(h))
			break;

		while (e < lim && pt_loc(&h->pt, e, NULL) == d->id)
			e += PAGE_SIZE;
		if (reader_thread && mirror_wants(h, s, e))
			break;
		if (e == s || home_run(h, d, s, (e - s) >> PAGE_SHIFT))
			break;
		h->seq[i].next = e;
	}
}

/* A page whose data cannot be read back: access raises SIGBUS. */
static void poison(struct uhmm *h, struct uhmm_dev *d, uintptr_t page, uint32_t dp)
{
	int r = -ENOTSUP;

	/* counted first: the thread it wakes may look at once */
	COUNT(h, d, poisoned, 1);
	if (h->feat & UHMM_FEAT_POISON)
		r = uffd_poison(h, page, PAGE_SIZE);
	if (r) {
		/* no UFFDIO_POISON: a shared mapping past the end of an
		 * empty file raises SIGBUS just the same */
		int fd = memfd_create("uhmm:poisoned", MFD_CLOEXEC);
		struct vma v;
		int prot = PROT_READ | PROT_WRITE;

		if (!vma_at(h, page, &v))
			prot = v.prot;
		if (fd >= 0) {
			mm_map_fixed(h, page, PAGE_SIZE, prot, MAP_SHARED, fd, 0);
			close(fd);
		}
		uffd_wake(h, page, PAGE_SIZE);
	}
	devmem_free(d, dp);
	if (r)
		pt_unmanage(&h->pt, page);
	else
		pt_set(&h->pt, page, LOC_SYS, 0);
}

/* The device goes away with pages that could not be read back. */
size_t private_poison_all(struct uhmm *h, struct uhmm_dev *d)
{
	size_t n = 0;

	for (size_t p = 0; p < d->npages; p++) {
		if (!d->owner[p])
			continue;
		poison(h, d, d->owner[p], p);
		n++;
	}
	return n;
}

/*
 * A message read before the page came to the device: its thread's access
 * was served before (events_reads says how it can still be here), and
 * the page went to the device after.  The faulting thread itself
 * (FAULT_SIGNAL) is never stale.
 */
static bool fault_is_stale(struct uhmm *h, struct uhmm_dev *d, uintptr_t page,
			   const struct qmsg *m)
{
	uint32_t dp = 0;

	if (!m->read_at)
		return false;
	pt_loc(&h->pt, page, &dp);
	return m->read_at <= d->arrived[dp];
}

/*
 * How a fault's window is copied.  FAULT_PARALLEL (a fault thread) copies
 * with the context unlocked, where no mirror may fault the window in
 * meanwhile (its device's writes would be lost).  FAULT_SIGNAL (the
 * faulting thread itself, fault_signal.c) does so too, but a small window
 * is copied locked: unlocking, then draining the events of the meantime,
 * costs more than a few pages' copy.
 */
#define SIGNAL_UNLOCKED_PAGES	16

static bool copy_unlocked(struct uhmm *h, int mode, uintptr_t s, uintptr_t e)
{
	if (mode == FAULT_SIGNAL && e - s <= SIGNAL_UNLOCKED_PAGES * PAGE_SIZE)
		return false;
	return (mode == FAULT_PARALLEL || mode == FAULT_SIGNAL) && !mirror_wants(h, s, e);
}

/*
 * A CPU touched a page on a private device: bring its window back.  When
 * the driver cannot read the window, the faulting page alone is tried a
 * few times before it is declared lost; the others stay on the device.
 * FAULT_FAST: the reader thread serves it, and must not change mappings
 * (its own events would wait for itself): -EWOULDBLOCK hands it on.
 * Read-ahead only where the faulting thread is not the one serving, nor
 * waiting for the server (FAULT_PARALLEL's other faults).
 */
int private_fault(struct uhmm *h, uintptr_t page, const struct qmsg *m, int mode)
{
	bool fast = mode == FAULT_FAST;
	int loc = pt_loc(&h->pt, page, NULL);
	struct uhmm_dev *d = dev_by_id(h, loc);
	uintptr_t ws, we, s, e;
	pid_t tid = (pid_t)m->tid;
	uint32_t dp = 0;
	int r;

	if (!loc_private(h, loc))
		return -ENOENT;
	if (fault_is_stale(h, d, page, m)) {
		/* if its thread does wait still, it faults again */
		uffd_wake(h, page, PAGE_SIZE);
		return 0;
	}
	/* the reader never runs a mirror's callback, which may wait for a
	 * driver lock that a munmapping thread holds (hazard 3) */
	if (fast && mirror_wants(h, page & ~(BLOCK_SIZE - 1),
				 (page & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE))
		return -EWOULDBLOCK;
	fault_window(h, page, tid, &ws, &we);
	for (s = page; s > ws && pt_loc(&h->pt, s - PAGE_SIZE, NULL) == loc; s -= PAGE_SIZE)
		;
	for (e = page + PAGE_SIZE; e < we && pt_loc(&h->pt, e, NULL) == loc; e += PAGE_SIZE)
		;
	r = home_run_mode(h, d, s, (e - s) >> PAGE_SHIFT, copy_unlocked(h, mode, s, e));
	if (r == 0) {
		/* a move from the device to the CPU, for thrashing */
		policy_moved(h, s, e);
		/* the faulting thread runs again; a sequential reader's next
		 * blocks come home meanwhile */
		if (mode == FAULT_FAST || mode == FAULT_SLOW)
			read_ahead(h, d, tid, e);
		return 0;
	}
	/* a window across two mappings (migrations and mremaps split
	 * them anywhere) cannot be placed in one call: its page alone can */
	if (r == -EAGAIN && e - s > PAGE_SIZE && pt_loc(&h->pt, page, NULL) == loc)
		r = home_run(h, d, page, 1);
	if (r == -EAGAIN) {
		/* it moved meanwhile: the access faults again if need be */
		uffd_wake(h, page, PAGE_SIZE);
		return 0;
	}
	if (pt_loc(&h->pt, page, NULL) != loc) {
		uffd_wake(h, page, PAGE_SIZE);
		return 0;
	}
	r = -EIO;
	for (int i = 0; i < COPY_TRIES && r == -EIO; i++)
		r = home_run(h, d, page, 1);
	if (r == -EIO) {
		if (fast)
			return -EWOULDBLOCK;
		pt_loc(&h->pt, page, &dp);
		poison(h, d, page, dp);
	}
	uffd_wake(h, page, PAGE_SIZE);
	return 0;
}

/* ---- system memory to a private device -------------------------------- */

static int dev_zero(struct uhmm *h, struct uhmm_dev *d, uint32_t dp, size_t k)
{
	int r = 0;

	dev_thread_init(d);
	if (d->ops.zero)
		return d->ops.zero(d->drv, (uint64_t)dp << PAGE_SHIFT, k << PAGE_SHIFT);
	for (size_t j = 0; j < k && !r; j++)
		r = d->ops.copy_to_dev(d->drv, (uint64_t)(dp + j) << PAGE_SHIFT,
				       h->zero_page, PAGE_SIZE);
	return r;
}

/* Pages of the batch that are not on d yet go to d, from src (ours). */
static int fill(struct uhmm *h, struct uhmm_dev *d, struct batch *b, const char *src,
		const struct request *rq, size_t *zero)
{
	int r = 0;

	dev_thread_init(d);
	for (size_t i = 0; i < b->n && !r;) {
		size_t k;

		if (b->sloc[i] != LOC_SYS) {
			i++;
			continue;
		}
		k = run_len(b->ddst, b->present, i, b->n);
		for (size_t j = i + 1; j < i + k; j++)
			if (b->sloc[j] != LOC_SYS) {
				k = j - i;
				break;
			}
		if (!b->present[i] || (rq->flags & UHMM_MIGRATE_DISCARD)) {
			/* nothing to copy (DISCARD: contents need not
			 * survive), but device memory used before holds
			 * another range's bytes, which must not show here */
			bool dirty = false;

			for (size_t j = 0; j < k; j++)
				dirty |= d->pflags[b->ddst[i + j]] & DP_DIRTY;
			if (dirty)
				r = dev_zero(h, d, b->ddst[i], k);
			if (!b->present[i])
				*zero += k;
		} else {
			r = d->ops.copy_to_dev(d->drv, (uint64_t)b->ddst[i] << PAGE_SHIFT,
					       src + (i << PAGE_SHIFT), k << PAGE_SHIFT);
			sim_link_use(d, k << PAGE_SHIFT);
			COUNT(h, d, bytes_copied, k << PAGE_SHIFT);
		}
		if (r > 0)
			r = -EIO;
		i += k;
	}
	return r < 0 ? -EIO : 0;
}

static int reserve_sel(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		       const struct request *rq, bool *cut)
{
	size_t i = reserve_pages(h, d, b, rq, true);

	if (i < b->n) {
		/* a prefix moves: what did not fit stays */
		*cut = true;
		b->end = va(b, i);
		b->n = i;
	}
	return 0;
}

static void unreserve(struct uhmm_dev *d, struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		if (b->sloc[i] == LOC_SYS)
			devmem_free(d, b->ddst[i]);
}

/*
 * The write-protect fence, without MREMAP_DONTUNMAP: writers wait while
 * the pages are read (with process_vm_readv: an unmapped range is EFAULT,
 * not a crash) into a buffer of ours, then the range is zapped empty.
 */
static int copy_out_wp(struct uhmm *h, struct batch *b, char **src)
{
	size_t len = b->end - b->start;
	int r;

	*src = NULL;
	r = uffd_register_missing(h, b->start, len);
	if (!r && (h->feat & UHMM_FEAT_WP))
		r = uffd_wp(h, b->start, len, true);
	memset(b->present, 0, b->n);
	if (!r)
		r = pagemap_present(h, b->start, b->n, b->present, false);
	if (r || !memchr(b->present, 1, b->n))
		return r;
	*src = stage_alloc(h, b->start, len, false);
	if (!*src)
		return -ENOMEM;
	/* present pages only: an empty one would fault, and a kernel-mode
	 * fault fails where only user-mode faults are ours */
	for (size_t i = 0; i < b->n;) {
		size_t k = 1;

		while (i + k < b->n && b->present[i + k] == b->present[i])
			k++;
		struct iovec l = { *src + (i << PAGE_SHIFT), k << PAGE_SHIFT };
		struct iovec rm = { (void *)va(b, i), k << PAGE_SHIFT };

		if (b->present[i] &&
		    syscall(SYS_process_vm_readv, getpid(), &l, 1, &rm, 1, 0) != (ssize_t)l.iov_len)
			return -EAGAIN;
		i += k;
	}
	return 0;
}

int batch_to_private(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
		     const struct request *rq)
{
	bool remap = h->feat & UHMM_FEAT_REMAP_FENCE, cut = false;
	size_t zero = 0, n = 0, len;
	uint64_t arrived;
	char *src = NULL;
	int r;

	reserve_sel(h, d, b, rq, &cut);
	for (size_t i = 0; i < b->n; i++)
		n += b->sloc[i] == LOC_SYS;
	if (rq->res)
		rq->res->already += b->n - n;
	if (!n)
		return cut ? -ENOMEM : 0;
	len = b->end - b->start;
	fence_track(h, b);
	r = remap ? sys_pages_out(h, b, &src) : copy_out_wp(h, b, &src);
	if (!r)
		r = fill(h, d, b, src, rq, &zero);
	if (!r && fence_broken(h))
		r = -EAGAIN;
	if (!r && !remap)
		r = mm_zap(h, b->start, len);
	if (r) {
		if (remap)
			sys_pages_back(h, b, src);
		else if (src)
			arena_put(h, src);
		if (!remap && (h->feat & UHMM_FEAT_WP))
			uffd_wp(h, b->start, len, false);
		unreserve(d, b);
		uffd_wake(h, b->start, len);
		fence_end(h);
		return r;
	}
	arrived = events_reads(h);
	for (size_t i = 0; i < b->n; i++) {
		if (b->sloc[i] != LOC_SYS)
			continue;
		d->arrived[b->ddst[i]] = arrived;
		d->pflags[b->ddst[i]] |= DP_DIRTY;
		devmem_touch(d, b->ddst[i], ++h->clock);
		pt_set(&h->pt, va(b, i), d->id, b->ddst[i]);
	}
	/* markers of the write-protect fence would turn the next access
	 * into a WP fault instead of the MISSING fault that brings it back */
	if (!remap && (h->feat & UHMM_FEAT_WP))
		uffd_wp(h, b->start, len, false);
	if (remap)
		sys_pages_drop(h, b, src);
	else if (src)
		arena_put(h, src);
	trace_move(h, b->start, n, LOC_SYS, d->id);
	/* counted before the wake: the threads it wakes may look at once */
	r = finish_to_dev(h, d, rq, n, zero, cut);
	uffd_wake(h, b->start, len);
	return r;
}
