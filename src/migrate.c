// SPDX-License-Identifier: MIT
/*
 * uhmm_migrate: pages change place behind unchanged pointers.
 *
 * For each batch of a mapping: fence writers (userfaultfd write-protect;
 * readers go on reading), copy what is populated into the destination,
 * replace the mapping in one call (mremap/mmap MAP_FIXED: other threads see
 * the old mapping or the new, never a hole), then wake the writers, whose
 * faults retry on the new mapping.  Data is copied with pwrite/pread on the
 * device's file, so a range unmapped under us gives EFAULT (-EAGAIN to the
 * caller), never a crash in the library.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

#define BATCH_PAGES (64 * BLOCK_PAGES)		/* 128 MiB */

struct batch {
	uintptr_t start, end;
	size_t n;
	int prot;
	struct uhmm_dev *src;			/* NULL: system memory */
	uint32_t dsrc[BATCH_PAGES];
	uint32_t ddst[BATCH_PAGES];
	uint8_t present[BATCH_PAGES];
};

struct request {
	uintptr_t start, end;
	unsigned flags;
	struct uhmm_migrate_res *res;
};

static uintptr_t va(const struct batch *b, size_t i)
{
	return b->start + (i << PAGE_SHIFT);
}

/* Length of the run from i whose device pages follow each other. */
static size_t run_len(const uint32_t *dp, const uint8_t *sel, size_t i, size_t n)
{
	size_t k = i + 1;

	while (k < n && dp[k] == dp[k - 1] + 1 && (!sel || sel[k] == sel[i]))
		k++;
	return k - i;
}

/*
 * Raw syscalls: the bytes copied are whole pages of the program's memory,
 * and sanitizers that intercept pwrite would check (and report) the parts
 * that are not the program's objects; the fence, which they cannot see,
 * is what orders these copies against the program's threads.
 */
static int write_all(int fd, const void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t w = syscall(SYS_pwrite64, fd, buf, len, off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return w < 0 && errno == EFAULT ? -EAGAIN : -EIO;
		buf = (const char *)buf + w;
		len -= w;
		off += w;
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len, uint64_t off)
{
	while (len) {
		ssize_t r = syscall(SYS_pread64, fd, buf, len, off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -EIO;
		buf = (char *)buf + r;
		len -= r;
		off += r;
	}
	return 0;
}

/* ---- fences ---------------------------------------------------------- */

/* Watch the batch's range for the program's layout changes. */
static void fence_track(struct uhmm *h, struct batch *b)
{
	pthread_mutex_lock(&h->q.lock);
	h->fence_start = b->start;
	h->fence_end = b->end;
	h->q.foreign = 0;
	h->q.foreign_seq = 0;
	pthread_mutex_unlock(&h->q.lock);
}

static void fence_on(struct uhmm *h, struct batch *b)
{
	size_t len = b->end - b->start;

	fence_track(h, b);
	if (!b->src) {
		if (h->feat & UHMM_FEAT_WP)
			uffd_wp(h, b->start, len, true);
	} else if (h->feat & UHMM_FEAT_WP_SHMEM) {
		uffd_wp(h, b->start, len, true);
	} else if (h->feat & UHMM_FEAT_MINOR_SHMEM) {
		/* no WP on shmem: drop the PTEs, every access becomes a MINOR
		 * fault that waits for us */
		mm_zap(h, b->start, len);
	}
}

/* Abandon the fence over [start, end) of a batch that keeps its pages. */
static void fence_off(struct uhmm *h, struct batch *b, uintptr_t start, uintptr_t end)
{
	if (start >= end)
		return;
	if ((!b->src && (h->feat & UHMM_FEAT_WP)) ||
	    (b->src && (h->feat & UHMM_FEAT_WP_SHMEM)))
		uffd_wp(h, start, end - start, false);
	uffd_wake(h, start, end - start);
}

/*
 * Did our last mapping change land where the program had already changed
 * the layout?  The reader sees events in the kernel's order: a foreign one
 * read before ours came first; no event of ours means the destination was
 * no longer our registered mapping.
 */
static bool landed_stray(struct uhmm *h)
{
	bool stray;

	pthread_mutex_lock(&h->q.lock);
	stray = h->q.foreign_seq && (!h->own_seq || h->q.foreign_seq < h->own_seq);
	pthread_mutex_unlock(&h->q.lock);
	return stray;
}

/* Did the program change the fenced range's layout meanwhile? */
static bool fence_broken(struct uhmm *h)
{
	bool broken;

	events_sync(h);

	pthread_mutex_lock(&h->q.lock);
	broken = h->q.foreign;
	pthread_mutex_unlock(&h->q.lock);
	return broken;
}

static int fence_end(struct uhmm *h)
{
	int foreign;

	pthread_mutex_lock(&h->q.lock);
	h->fence_start = h->fence_end = 0;
	foreign = h->q.foreign;
	pthread_mutex_unlock(&h->q.lock);
	return foreign ? -EAGAIN : 0;
}

/* ---- device memory ----------------------------------------------------- */

static int alloc_pages(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		       const struct request *rq, size_t *got)
{
	size_t i;

	for (i = 0; i < b->n; i++) {
		long c;
		int r;

		while ((r = devmem_alloc(d, va(b, i), &b->ddst[i])) == -ENOSPC) {
			if (rq->flags & UHMM_MIGRATE_NOEVICT)
				break;
			c = devmem_lru_chunk(d, rq->start, rq->end);
			if (c < 0)
				break;
			r = evict_chunk(h, d, c);
			if (r <= 0)
				break;
			if (rq->res)
				rq->res->evicted += r;
		}
		if (r)
			break;
	}
	*got = i;
	return 0;
}

/*
 * Device pages for the batch, before any fence goes up (eviction allocates
 * and migrates).  A batch that does not fit whole is cut to what fits and
 * *short says so; none at all is -ENOMEM.
 */
static int reserve_batch(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
			 const struct request *rq, bool *short_)
{
	size_t got = 0;

	alloc_pages(h, d, b, rq, &got);
	if (!got)
		return -ENOMEM;
	*short_ = got < b->n;
	b->end = va(b, got);
	b->n = got;
	return 0;
}

/*
 * Give the user range the device's pages.  Where our view still holds
 * populated page tables for them, mremap moves those tables (whole 2 MiB
 * tables when aligned) so that the CPU then takes no fault at all;
 * otherwise map the file and populate it once.
 */
static int install_run(struct uhmm *h, struct uhmm_dev *d, uintptr_t at,
		       uint32_t dp, size_t cnt, int prot)
{
	size_t len = cnt << PAGE_SHIFT;
	char *view = d->view + ((size_t)dp << PAGE_SHIFT);
	uint64_t off = devmem_off(d, dp);
	bool donate = true;

	for (size_t k = 0; k < cnt && donate; k++)
		donate = d->pflags[dp + k] & DP_VIEW_PTE;
	if (donate && prot != (PROT_READ | PROT_WRITE) && mprotect(view, len, prot))
		donate = false;
	if (donate && mm_move(h, view, len, at) != MAP_FAILED) {
		for (size_t k = 0; k < cnt; k++)
			d->pflags[dp + k] &= ~DP_VIEW_PTE;
		if (mmap(view, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
			 d->fd, off) == MAP_FAILED)
			abort();	/* our own address space is gone */
	} else {
		if (donate)
			mprotect(view, len, PROT_READ | PROT_WRITE);
		if (mm_map_fixed(h, at, len, prot, MAP_SHARED, d->fd, off) == MAP_FAILED)
			return -errno;
		madvise((void *)at, len, (prot & PROT_WRITE) ? MADV_POPULATE_WRITE
							     : MADV_POPULATE_READ);
	}
	return uffd_register(h, at, len, true);
}

/* ---- to a device ---------------------------------------------------------- */

static char *view_of(struct uhmm_dev *d, uint32_t dp)
{
	return d->view + ((size_t)dp << PAGE_SHIFT);
}

/* Device pages handed out without a copy must read as zeros. */
static void zero_run(struct uhmm_dev *d, uint32_t dp, size_t n)
{
	for (size_t j = 0; j < n; j++) {
		if (!(d->pflags[dp + j] & DP_DIRTY))
			continue;
		if (d->pflags[dp + j] & DP_VIEW_PTE)
			memset(view_of(d, dp + j), 0, PAGE_SIZE);
		else
			write_all(d->fd, d->h->zero_page, PAGE_SIZE,
				  devmem_off(d, dp + j));
	}
}


static int copy_in(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		   const struct request *rq, size_t *zero)
{
	int r = 0;

	/* b->present holds what had data before the fence went up; add
	 * what was populated since (markers of empty fenced pages excluded) */
	if (!b->src) {
		r = pagemap_present(h, b->start, b->n, b->present, false);
		if (r)
			return r;
	} else {
		memset(b->present, 1, b->n);
	}
	for (size_t i = 0; i < b->n && !r;) {
		size_t k = run_len(b->ddst, b->present, i, b->n);
		size_t len = k << PAGE_SHIFT;
		char *view = d->view + ((size_t)b->ddst[i] << PAGE_SHIFT);

		if (rq->flags & UHMM_MIGRATE_DISCARD) {
			/* contents need not survive: nothing to copy */
		} else if (!b->present[i]) {
			zero_run(d, b->ddst[i], k);
			*zero += k;
		} else if (!b->src) {
			r = write_all(d->fd, (void *)va(b, i), len, devmem_off(d, b->ddst[i]));
			COUNT(h, d, bytes_copied, len);
		} else {
			/* device to device, one run of the source at a time */
			for (size_t j = i; j < i + k && !r;) {
				size_t m = run_len(b->dsrc, NULL, j, i + k);

				r = read_all(b->src->fd, view + ((j - i) << PAGE_SHIFT),
					     m << PAGE_SHIFT, devmem_off(b->src, b->dsrc[j]));
				j += m;
			}
			COUNT(h, d, bytes_copied, len);
		}
		i += k;
	}
	return r;
}

/*
 * The pages of [from, from + n) now live where `to` says.  Their source
 * device pages are freed, unless the program moved the range while we
 * copied it (keep_src): the source mapping may live on at its new address,
 * where settle() adopts it back.
 */
static void commit(struct uhmm *h, struct batch *b, size_t from, size_t n,
		   struct uhmm_dev *to, bool keep_src)
{
	for (size_t i = from; i < from + n; i++) {
		if (b->src && !keep_src)
			devmem_free(b->src, b->dsrc[i]);
		if (to) {
			to->pflags[b->ddst[i]] |= DP_DIRTY;
			devmem_touch(to, b->ddst[i], ++h->clock);
			pt_set(&h->pt, va(b, i), to->id, b->ddst[i]);
		} else {
			pt_set(&h->pt, va(b, i), LOC_SYS, 0);
		}
	}
}

/* Count a batch that reached a device and take its fence down. */
static int finish_to_dev(struct uhmm *h, struct uhmm_dev *d, const struct request *rq,
			 size_t n, size_t zero, bool cut)
{
	int r;

	COUNT(h, d, pages_to_dev, n);
	COUNT(h, d, pages_zero_filled, zero);
	if (rq->res) {
		rq->res->moved += n;
		rq->res->zero_filled += zero;
	}
	r = fence_end(h);
	return cut ? -ENOMEM : r;
}

static int batch_to_dev(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
			const struct request *rq)
{
	size_t zero = 0, n, done;
	bool cut;
	int r;

	memset(b->present, 0, b->n);
	if (!b->src && (r = pagemap_present(h, b->start, b->n, b->present, true)))
		return r;
	r = reserve_batch(h, d, b, rq, &cut);
	if (r)
		return r;
	n = b->n;
	fence_on(h, b);
	r = copy_in(h, d, b, rq, &zero);
	/* never map device memory over what the program put there since */
	if (!r && fence_broken(h))
		r = -EAGAIN;
	for (done = 0; !r && done < n;) {
		size_t k = run_len(b->ddst, NULL, done, n);
		bool stray;

		r = install_run(h, d, va(b, done), b->ddst[done], k, b->prot);
		if (r)
			break;
		stray = landed_stray(h);
		commit(h, b, done, k, d, stray);
		done += k;
		if (stray) {
			r = -EAGAIN;
			break;
		}
	}
	if (r) {
		for (size_t i = done; i < n; i++)
			devmem_free(d, b->ddst[i]);
		fence_off(h, b, va(b, done), b->end);
		uffd_wake(h, b->start, b->end - b->start);
		fence_end(h);
		COUNT(h, d, pages_to_dev, done);
		return r;
	}
	uffd_wake(h, b->start, b->end - b->start);
	return finish_to_dev(h, d, rq, n, zero, cut);
}

/* ---- to system memory ------------------------------------------------ */

/* Fresh anonymous memory congruent with `at` modulo 2 MiB, so huge pages
 * survive the move into place. */
static char *stage_alloc(uintptr_t at, size_t len, bool populate)
{
	size_t span = len + BLOCK_SIZE;
	char *raw = mmap(NULL, span, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t s;

	if (raw == MAP_FAILED)
		return NULL;
	s = ((uintptr_t)raw & ~(BLOCK_SIZE - 1)) + (at & (BLOCK_SIZE - 1));
	if (s < (uintptr_t)raw)
		s += BLOCK_SIZE;
	if (s > (uintptr_t)raw)
		munmap(raw, s - (uintptr_t)raw);
	if ((uintptr_t)raw + span > s + len)
		munmap((char *)s + len, (uintptr_t)raw + span - s - len);
	madvise((void *)s, len, MADV_HUGEPAGE);
	if (populate && madvise((void *)s, len, MADV_POPULATE_WRITE)) {
		munmap((void *)s, len);
		return NULL;
	}
	return (char *)s;
}

static int batch_to_sys(struct uhmm *h, struct batch *b, const struct request *rq)
{
	size_t len = b->end - b->start;
	bool discard = rq->flags & UHMM_MIGRATE_DISCARD;
	char *st;
	int r = 0;

	fence_on(h, b);
	st = stage_alloc(b->start, len, !discard);
	if (!st) {
		fence_off(h, b, b->start, b->end);
		fence_end(h);
		return -ENOMEM;
	}
	for (size_t i = 0; i < b->n && !discard && !r;) {
		size_t k = run_len(b->dsrc, NULL, i, b->n);

		r = read_all(b->src->fd, st + (i << PAGE_SHIFT), k << PAGE_SHIFT,
			     devmem_off(b->src, b->dsrc[i]));
		i += k;
	}
	if (!r && b->prot != (PROT_READ | PROT_WRITE) && mprotect(st, len, b->prot))
		r = -errno;
	if (!r && fence_broken(h))
		r = -EAGAIN;
	if (!r && mm_move(h, st, len, b->start) == MAP_FAILED)
		r = -errno;
	if (r) {
		munmap(st, len);
		fence_off(h, b, b->start, b->end);
		fence_end(h);
		return r;
	}
	uffd_register(h, b->start, len, false);
	if (!discard)
		COUNT(h, b->src, bytes_copied, len);
	COUNT(h, b->src, pages_to_sys, b->n);
	commit(h, b, 0, b->n, NULL, landed_stray(h));
	uffd_wake(h, b->start, len);
	if (rq->res)
		rq->res->moved += b->n;
	return fence_end(h);
}

/* ---- fencing by moving page tables ------------------------------------
 *
 * Where the kernel has MREMAP_DONTUNMAP (5.7 anonymous, 5.13 shared), a
 * batch's page tables are moved out of the program's range in one call:
 * the range stays mapped but empty, registered so that every access waits
 * in a userfaultfd fault (MISSING for system pages, MINOR for device pages)
 * until the new pages are in place.  The copy then reads memory no other
 * thread can reach (plain memcpy, no munmap race), device page tables go
 * back to the device's view instead of being freed and rebuilt, and the
 * old system pages are freed by the worker, off the caller's path.
 */

static bool src_contiguous(const struct batch *b)
{
	for (size_t i = 1; i < b->n; i++)
		if (b->dsrc[i] != b->dsrc[0] + i)
			return false;
	return true;
}

/* Device page tables come home to the device's view; the program's range
 * is left empty.  Returns the view address of the batch, or NULL. */
static char *take_device_ptes(struct uhmm *h, struct batch *b)
{
	size_t len = b->end - b->start;
	char *v = view_of(b->src, b->dsrc[0]);

	if (mm_move_keep(h, b->start, len, (uintptr_t)v) == MAP_FAILED)
		return NULL;
	/* the registration and protection travelled with the page tables:
	 * the view is ours, unregistered and writable */
	uffd_unregister(h, (uintptr_t)v, len);
	if (b->prot != (PROT_READ | PROT_WRITE))
		mprotect(v, len, PROT_READ | PROT_WRITE);
	for (size_t i = 0; i < b->n; i++)
		b->src->pflags[b->dsrc[i]] |= DP_VIEW_PTE;
	return v;
}

/* Copy one run of the batch into device memory, from memory of ours. */
static int fill_run(struct uhmm_dev *d, uint32_t dp, const char *src, size_t len)
{
	bool view = true;

	for (size_t k = 0; k < (len >> PAGE_SHIFT) && view; k++)
		view = d->pflags[dp + k] & DP_VIEW_PTE;
	if (view) {
		memcpy(view_of(d, dp), src, len);
		return 0;
	}
	return write_all(d->fd, src, len, devmem_off(d, dp));
}

static int copy_from(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		     const char *src, const struct request *rq, size_t *zero)
{
	int r = 0;

	for (size_t i = 0; i < b->n && !r;) {
		size_t k = run_len(b->ddst, b->present, i, b->n);

		if (rq->flags & UHMM_MIGRATE_DISCARD) {
			/* contents need not survive */
		} else if (!b->present[i]) {
			zero_run(d, b->ddst[i], k);
			*zero += k;
		} else {
			r = fill_run(d, b->ddst[i], src + (i << PAGE_SHIFT), k << PAGE_SHIFT);
			COUNT(h, d, bytes_copied, k << PAGE_SHIFT);
		}
		i += k;
	}
	return r;
}

static int batch_to_dev_remap(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
			      const struct request *rq)
{
	size_t zero = 0, n, len;
	char *src = NULL;
	bool any, cut;
	int r;

	r = reserve_batch(h, d, b, rq, &cut);
	if (r)
		return r;
	n = b->n;
	len = n << PAGE_SHIFT;
	fence_track(h, b);
	if (!b->src) {
		/* empty pages must wait too while the range is empty */
		r = uffd_register_missing(h, b->start, len);
		memset(b->present, 0, n);
		if (!r)
			r = pagemap_present(h, b->start, n, b->present, true);
		any = memchr(b->present, 1, n) != NULL;
		if (!r && any) {
			src = mm_move_keep(h, b->start, len, 0);
			if (src == MAP_FAILED) {
				src = NULL;
				r = -errno;
			}
		}
	} else {
		memset(b->present, 1, n);
		src = take_device_ptes(h, b);
		if (!src)
			r = -errno;
	}
	if (!r)
		r = copy_from(h, d, b, src, rq, &zero);
	if (!r && fence_broken(h))
		r = -EAGAIN;
	for (size_t i = 0; !r && i < n;) {
		size_t k = run_len(b->ddst, NULL, i, n);

		r = install_run(h, d, va(b, i), b->ddst[i], k, b->prot);
		i += k;
	}
	if (r) {
		/* put back what we took: the range is empty, nothing moved */
		if (src && !b->src)
			mm_move(h, src, len, b->start);
		else if (src)
			mm_map_fixed(h, b->start, len, b->prot, MAP_SHARED, b->src->fd,
				     devmem_off(b->src, b->dsrc[0]));
		if (!b->src)
			uffd_register(h, b->start, len, false);
		else
			uffd_register(h, b->start, len, true);
		for (size_t i = 0; i < n; i++)
			devmem_free(d, b->ddst[i]);
		uffd_wake(h, b->start, len);
		fence_end(h);
		return r;
	}
	commit(h, b, 0, n, d, landed_stray(h));
	uffd_wake(h, b->start, len);
	if (src && !b->src) {
		uffd_unregister(h, (uintptr_t)src, len);
		trash_add(h, src, len);
	}
	return finish_to_dev(h, d, rq, n, zero, cut);
}

static int batch_to_sys_remap(struct uhmm *h, struct batch *b, const struct request *rq)
{
	size_t len = b->end - b->start;
	bool discard = rq->flags & UHMM_MIGRATE_DISCARD;
	char *st, *v;
	int r = 0;

	/* the costly part, fresh system memory, before anything waits */
	st = stage_alloc(b->start, len, !discard);
	if (!st)
		return -ENOMEM;
	fence_track(h, b);
	v = take_device_ptes(h, b);
	if (!v)
		r = -errno;
	if (!r && !discard) {
		memcpy(st, v, len);
		COUNT(h, b->src, bytes_copied, len);
	}
	if (!r && b->prot != (PROT_READ | PROT_WRITE) && mprotect(st, len, b->prot))
		r = -errno;
	if (!r && fence_broken(h))
		r = -EAGAIN;
	if (!r && mm_move(h, st, len, b->start) == MAP_FAILED)
		r = -errno;
	if (r) {
		munmap(st, len);
		if (v && mm_map_fixed(h, b->start, len, b->prot, MAP_SHARED, b->src->fd,
				      devmem_off(b->src, b->dsrc[0])) != MAP_FAILED)
			uffd_register(h, b->start, len, true);
		uffd_wake(h, b->start, len);
		fence_end(h);
		return r;
	}
	uffd_register(h, b->start, len, false);
	COUNT(h, b->src, pages_to_sys, b->n);
	commit(h, b, 0, b->n, NULL, landed_stray(h));
	uffd_wake(h, b->start, len);
	if (rq->res)
		rq->res->moved += b->n;
	return fence_end(h);
}

/* ---- ranges ------------------------------------------------------------ */

static int load_batch(struct uhmm *h, struct batch *b, const struct vma *v,
		      uintptr_t s, uintptr_t e)
{
	b->start = s;
	b->end = e;
	b->n = (e - s) >> PAGE_SHIFT;
	b->prot = v->prot;
	b->src = v->kind == VMA_DEV ? v->dev : NULL;
	for (size_t i = 0; i < b->n; i++) {
		uint32_t dp;
		int loc = pt_loc(&h->pt, va(b, i), &dp);
		struct uhmm_dev *d = dev_by_id(h, loc);

		if (b->src && loc != b->src->id)
			return -EAGAIN;
		if (b->src) {
			b->dsrc[i] = dp;
		} else if (loc != LOC_SYS && loc != LOC_UNMANAGED) {
			/* anonymous memory we thought on a device: the
			 * program moved it under a migration; trust the map */
			if (d && d->owner[dp] == va(b, i))
				devmem_free(d, dp);
			pt_set(&h->pt, va(b, i), LOC_SYS, 0);
		}
	}
	return 0;
}

static int migrate_vma(struct uhmm *h, const struct vma *v, struct uhmm_dev *to,
		       const struct request *rq)
{
	int src = v->kind == VMA_DEV ? v->dev->id : LOC_SYS;
	struct batch *b;
	int r = 0;

	if (src == (to ? to->id : LOC_SYS)) {
		if (rq->res)
			rq->res->already += (v->end - v->start) >> PAGE_SHIFT;
		return 0;
	}
	b = mem_alloc(sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (uintptr_t s = v->start; s < v->end && !r;) {
		uintptr_t e = (s & ~(BLOCK_SIZE - 1)) + BATCH_PAGES * PAGE_SIZE;

		if (e > v->end)
			e = v->end;
		r = load_batch(h, b, v, s, e);
		if (r)
			break;
		if ((h->feat & UHMM_FEAT_REMAP_FENCE) && (!b->src || src_contiguous(b)))
			r = to ? batch_to_dev_remap(h, b, to, rq)
			       : batch_to_sys_remap(h, b, rq);
		else
			r = to ? batch_to_dev(h, b, to, rq) : batch_to_sys(h, b, rq);
		s = e;
	}
	mem_free(b);
	return r;
}

int manage_range(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	int r;

	if (pt_next_managed(&h->pt, start, end) == start) {
		bool all = true;

		for (uintptr_t a = start; a < end && all; a += PAGE_SIZE)
			all = pt_loc(&h->pt, a, NULL) != LOC_UNMANAGED;
		if (all)
			return 0;
	}
	r = uffd_register(h, start, end - start, false);
	/* the range was checked just before: the kernel refusing it now
	 * means another thread changed the layout since */
	if (r == -EINVAL || r == -ENOMEM)
		return -EAGAIN;
	if (r)
		return r;
	for (uintptr_t a = start; a < end; a += PAGE_SIZE)
		if (pt_loc(&h->pt, a, NULL) == LOC_UNMANAGED && pt_set(&h->pt, a, LOC_SYS, 0))
			return -ENOMEM;
	return 0;
}

/*
 * A device page we believed elsewhere: the program moved the mapping while
 * we migrated it (its mremap raced ours).  The data is at the mapping's file
 * offset; take the page back if no one else got it meanwhile.
 */
static bool adopt(struct uhmm *h, const struct vma *v, uintptr_t a)
{
	struct uhmm_dev *d = v->dev;
	uint64_t off = v->pgoff + (a - v->start);
	size_t p;

	if (pt_loc(&h->pt, a, NULL) == LOC_UNMANAGED || off < d->fd_offset)
		return false;
	p = (off - d->fd_offset) >> PAGE_SHIFT;
	if (!devmem_claim(d, p, a))
		return false;
	devmem_touch(d, p, ++h->clock);
	return !pt_set(&h->pt, a, d->id, p);
}

/* Pages of a device mapping that are not ours (grown by mremap) become
 * zeroed system memory before anything else looks at them. */
static int settle(struct uhmm *h, const struct vma *v)
{
	uintptr_t a = v->start;

	while (a < v->end) {
		uintptr_t s = a;
		int loc = pt_loc(&h->pt, a, NULL);

		if (loc == v->dev->id) {
			a += PAGE_SIZE;
			continue;
		}
		if (loc != LOC_UNMANAGED && adopt(h, v, a)) {
			a += PAGE_SIZE;
			continue;
		}
		while (a < v->end && pt_loc(&h->pt, a, NULL) != v->dev->id &&
		       !adopt(h, v, a))
			a += PAGE_SIZE;
		replace_with_zero(h, s, a);
		return 1;
	}
	return 0;
}

static int scan_checked(struct uhmm *h, uintptr_t start, uintptr_t end,
			struct vma **vv, size_t *n)
{
	int r;

	for (int tries = 0; tries < 4; tries++) {
		bool again = false;

		r = vma_scan(h, start, end, vv, n);
		if (r)
			return r;
		for (size_t i = 0; i < *n && !r; i++)
			r = vma_check_migratable(h, &(*vv)[i]);
		for (size_t i = 0; i < *n && !r && !again; i++) {
			if ((*vv)[i].kind != VMA_DEV)
				continue;
			r = settle(h, &(*vv)[i]);
			again = r > 0;
			r = r < 0 ? r : 0;
		}
		if (r || !again)
			break;
		free(*vv);
	}
	if (r)
		free(*vv);
	return r;
}

int migrate_range(struct uhmm *h, uintptr_t start, uintptr_t end,
		  struct uhmm_dev *to, unsigned flags, struct uhmm_migrate_res *res)
{
	struct request rq = { start, end, flags, res };
	struct vma *vv;
	size_t n;
	int r;

	r = scan_checked(h, start, end, &vv, &n);
	if (r)
		return r;
	for (size_t i = 0; i < n && !r; i++)
		if (vv[i].kind == VMA_ANON)
			r = manage_range(h, vv[i].start, vv[i].end);
	for (size_t i = 0; i < n && !r; i++)
		r = migrate_vma(h, &vv[i], to, &rq);
	free(vv);
	/* everything was checked above: a mapping call the kernel refuses
	 * now met a layout another thread changed meanwhile */
	return r == -EINVAL || r == -EPERM ? -EAGAIN : r;
}

/* ---- helpers for events, eviction and removal --------------------------- */

void forget_range(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	for (uintptr_t a = pt_next_managed(&h->pt, start, end); a < end;
	     a = pt_next_managed(&h->pt, a + PAGE_SIZE, end)) {
		uint32_t dp;
		int loc = pt_loc(&h->pt, a, &dp);

		if (loc != LOC_SYS && dev_by_id(h, loc))
			devmem_free(dev_by_id(h, loc), dp);
		pt_unmanage(&h->pt, a);
	}
}

int replace_with_zero(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	struct vma v;
	int prot = PROT_READ | PROT_WRITE, r;

	if (!vma_at(h, start, &v))
		prot = v.prot;
	if (mm_map_fixed(h, start, end - start, prot, MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0) == MAP_FAILED)
		return -errno;
	forget_range(h, start, end);
	r = uffd_register(h, start, end - start, false);
	for (uintptr_t a = start; !r && a < end; a += PAGE_SIZE)
		pt_set(&h->pt, a, LOC_SYS, 0);
	uffd_wake(h, start, end - start);
	return r;
}

static int cmp_uptr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;

	return x < y ? -1 : x > y;
}

/* Send the pages at the given addresses home, in runs. */
static int send_home(struct uhmm *h, uintptr_t *vas, size_t n)
{
	uintptr_t save_s, save_e;
	int r = 0;

	pthread_mutex_lock(&h->q.lock);
	save_s = h->fence_start;
	save_e = h->fence_end;
	pthread_mutex_unlock(&h->q.lock);

	qsort(vas, n, sizeof(*vas), cmp_uptr);
	for (size_t i = 0; i < n;) {
		size_t k = i + 1;
		int rr;

		while (k < n && vas[k] == vas[k - 1] + PAGE_SIZE)
			k++;
		rr = migrate_range(h, vas[i], vas[k - 1] + PAGE_SIZE, NULL, 0, NULL);
		if (rr && !r)
			r = rr;
		i = k;
	}
	pthread_mutex_lock(&h->q.lock);
	h->fence_start = save_s;
	h->fence_end = save_e;
	pthread_mutex_unlock(&h->q.lock);
	return r;
}

/* Evict one chunk to system memory; returns pages evicted or -errno. */
int evict_chunk(struct uhmm *h, struct uhmm_dev *d, long c)
{
	uintptr_t vas[BLOCK_PAGES];
	size_t n = 0;
	int r;

	for (uint32_t i = 0; i < d->chunk_pages; i++) {
		size_t p = (size_t)c * d->chunk_pages + i;

		if (p < d->npages && d->owner[p])
			vas[n++] = d->owner[p];
	}
	r = send_home(h, vas, n);
	if (r < 0 && d->chunk_key[c])
		return r;
	COUNT(h, d, evictions, n);
	return n;
}

int dev_pages_to_sys(struct uhmm *h, struct uhmm_dev *d)
{
	uintptr_t *vas = malloc(d->used_pages * sizeof(*vas) + 1);
	size_t n = 0;
	int r;

	if (!vas)
		return -ENOMEM;
	for (size_t p = 0; p < d->npages; p++)
		if (d->owner[p])
			vas[n++] = d->owner[p];
	r = send_home(h, vas, n);
	free(vas);
	return r;
}

/* ---- the API --------------------------------------------------------------- */

int uhmm_migrate_ex(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
		    unsigned flags, struct uhmm_migrate_res *res)
{
	struct uhmm_migrate_res out = { 0 };
	uintptr_t a = (uintptr_t)addr;
	size_t n;
	int r;

	if (!h || !len || a + len < a || a + len > UINTPTR_MAX - PAGE_SIZE)
		return -EINVAL;
	if (flags & ~(UHMM_MIGRATE_NOEVICT | UHMM_MIGRATE_DISCARD))
		return -EINVAL;
	if (to && to->h != h)
		return -EINVAL;
	if (res && (r = sz_check(res, res->sz, sizeof(*res))))
		return r;
	ctx_lock(h);
	events_drain(h);
	r = migrate_range(h, page_down(a), page_up(a + len), to, flags, &out);
	ctx_unlock(h);
	if (res) {
		out.sz = res->sz;
		n = sz_of(res->sz, sizeof(out));
		memcpy(res, &out, n < sizeof(out) ? n : sizeof(out));
	}
	return r;
}

int uhmm_migrate(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
		 unsigned flags)
{
	return uhmm_migrate_ex(h, addr, len, to, flags, NULL);
}
