// SPDX-License-Identifier: MIT
/*
 * What both fences need: reserving device pages (eviction first, before
 * anything waits), copying with raw syscalls, lending the device view's
 * page tables to the program's range, committing the page table, fresh
 * staging memory congruent with its destination, and noticing the
 * program's own layout changes while a batch is in flight.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "migrate.h"
#include "trace.h"

/* Length of the run from i whose device pages follow each other. */
size_t run_len(const uint32_t *dp, const uint8_t *sel, size_t i, size_t n)
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
int write_all(int fd, const void *buf, size_t len, uint64_t off)
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

int read_all(int fd, void *buf, size_t len, uint64_t off)
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

/* Watch the batch's range for the program's layout changes. */
void fence_track(struct uhmm *h, struct batch *b)
{
	pthread_mutex_lock(&h->q.lock);
	h->fence_start = b->start;
	h->fence_end = b->end;
	h->q.foreign = 0;
	h->q.foreign_seq = 0;
	pthread_mutex_unlock(&h->q.lock);
}

/*
 * Did our last mapping change land where the program had already changed
 * the layout?  The reader sees events in the kernel's order: a foreign one
 * read before ours came first; no event of ours means the destination was
 * no longer our registered mapping.
 */
bool landed_stray(struct uhmm *h)
{
	bool stray;

	pthread_mutex_lock(&h->q.lock);
	stray = h->q.foreign_seq && (!h->own_seq || h->q.foreign_seq < h->own_seq);
	pthread_mutex_unlock(&h->q.lock);
	return stray;
}

/*
 * Did the program change the fenced range's layout meanwhile?  Asked just
 * before our mapping change: an munmap or mmap over the range that has
 * begun but whose event is not queued yet counts too (its new mapping may
 * be there already, which ours would wipe out).  One that begins after
 * this look, before our change, user space cannot see in time.
 */
bool fence_broken(struct uhmm *h)
{
	bool broken;

	events_sync_all(h);

	pthread_mutex_lock(&h->q.lock);
	broken = h->q.foreign;
	pthread_mutex_unlock(&h->q.lock);
	return broken;
}

int fence_end(struct uhmm *h)
{
	int foreign;

	pthread_mutex_lock(&h->q.lock);
	h->fence_start = h->fence_end = 0;
	foreign = h->q.foreign;
	pthread_mutex_unlock(&h->q.lock);
	return foreign ? -EAGAIN : 0;
}

/*
 * Evict the least recently used chunk outside the request, if allowed, and
 * outside the range of a device fault in progress: a first touch placed
 * on the device for that fault must not push out what the same fault has
 * just put there (its next round would put it back, and so on).
 */
static bool make_room(struct uhmm *h, struct uhmm_dev *d, const struct request *rq)
{
	uintptr_t s = rq->start, e = rq->end;
	long c;
	int r;

	/* discarded pages first: no one's data, and NOEVICT allows them */
	if (d->quar_pages) {
		quar_reclaim(h, d);
		return true;
	}
	if (rq->flags & UHMM_MIGRATE_NOEVICT)
		return false;
	if (h->fault_end > h->fault_start) {
		s = h->fault_start < s ? h->fault_start : s;
		e = h->fault_end > e ? h->fault_end : e;
	}
	c = devmem_lru_chunk(d, s, e);
	if (c < 0)
		return false;
	r = evict_chunk(h, d, c);
	if (r <= 0)
		return false;
	if (rq->res)
		rq->res->evicted += r;
	return true;
}

/*
 * Device pages for the batch's pages, or only for those in system memory
 * (only_sys: the others are on the destination already), making room as
 * needed.  How many pages from the start of the batch are covered.
 */
size_t reserve_pages(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		     const struct request *rq, bool only_sys)
{
	size_t i = 0;

	while (i < b->n) {
		size_t k = b->n - i, got;

		if (only_sys) {
			if (b->sloc[i] != LOC_SYS) {
				i++;
				continue;
			}
			for (k = 1; i + k < b->n && b->sloc[i + k] == LOC_SYS; k++)
				;
		}
		got = devmem_alloc_run(d, va(b, i), k, &b->ddst[i]);
		i += got;
		if (got < k && !make_room(h, d, rq))
			break;
	}
	return i;
}

/*
 * Page-table entries in the device's view for its pages [dp, dp + n),
 * where they were lost (the program unmapped pages that lived there), so
 * that copies and zeroing go through the view and the entries can then be
 * lent to the program's range.  UFFDIO_CONTINUE maps the pages the file
 * holds at ~0.4 us each, three times faster than faulting them in with
 * MADV_POPULATE_WRITE, which stays the fallback (old kernels, or pages the
 * file no longer holds after MADV_REMOVE).
 */
static void view_map_run(struct uhmm *h, struct uhmm_dev *d, uint32_t dp, size_t n)
{
	uintptr_t v = (uintptr_t)view_of(d, dp);
	size_t len = n << PAGE_SHIFT;
	bool done = false;

	if ((h->feat & UHMM_FEAT_MINOR_SHMEM) && !uffd_register(h, v, len, true)) {
		done = !uffd_continue(h, v, len);
		uffd_unregister(h, v, len);
	}
	if (!done)
		madvise((void *)v, len, MADV_POPULATE_WRITE);
}

void view_map(struct uhmm *h, struct uhmm_dev *d, uint32_t dp, size_t n)
{
	for (size_t i = 0, k; i < n; i += k) {
		k = 1;
		if (d->pflags[dp + i] & DP_VIEW_PTE)
			continue;
		while (i + k < n && !(d->pflags[dp + i + k] & DP_VIEW_PTE))
			k++;
		view_map_run(h, d, dp + i, k);
		for (size_t j = i; j < i + k; j++)
			d->pflags[dp + j] |= DP_VIEW_PTE;
	}
}

/*
 * Device pages for the batch, before any fence goes up (eviction allocates
 * and migrates; the view's entries are rebuilt).  A batch that does not
 * fit whole is cut to what fits and *short says so; none at all is
 * -ENOMEM.
 */
int reserve_batch(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
			 const struct request *rq, bool *short_)
{
	size_t got = reserve_pages(h, d, b, rq, false);

	if (!got)
		return -ENOMEM;
	*short_ = got < b->n;
	b->end = va(b, got);
	b->n = got;
	for (size_t i = 0, k; d->view && i < b->n; i += k) {
		k = run_len(b->ddst, NULL, i, b->n);
		view_map(h, d, b->ddst[i], k);
	}
	return 0;
}

/*
 * Give the user range the device's pages.  Where our view still holds
 * populated page tables for them, mremap moves those tables (whole 2 MiB
 * tables when aligned) so that the CPU then takes no fault at all;
 * otherwise map the file and populate it once.
 */
int install_run(struct uhmm *h, struct uhmm_dev *d, uintptr_t at,
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

char *view_of(struct uhmm_dev *d, uint32_t dp)
{
	return d->view + ((size_t)dp << PAGE_SHIFT);
}

/* Device pages handed out without a copy must read as zeros. */
void zero_run(struct uhmm_dev *d, uint32_t dp, size_t n)
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

/*
 * The pages of [from, from + n) now live where `to` says.  Their source
 * device pages are freed, unless the program moved the range while we
 * copied it (keep_src): the source mapping may live on at its new address,
 * where settle() adopts it back.
 */
void commit(struct uhmm *h, struct batch *b, size_t from, size_t n,
		   struct uhmm_dev *to, bool keep_src)
{
	trace_move(h, va(b, from), n, b->src ? b->src->id : LOC_SYS, to ? to->id : LOC_SYS);
	if (b->src && !keep_src)
		for (size_t i = from; i < from + n; i++)
			devmem_free(b->src, b->dsrc[i]);
	if (!to) {
		pt_set_run(&h->pt, va(b, from), n, LOC_SYS, NULL);
		return;
	}
	for (size_t i = from, k; i < from + n; i += k) {
		uint8_t *f = &to->pflags[b->ddst[i]];

		k = run_len(b->ddst, NULL, i, from + n);
		for (size_t j = 0; j < k; j++)
			f[j] |= DP_DIRTY;
		/* a run within a chunk, or whole chunks */
		for (size_t j = 0; j < k; j += to->chunk_pages)
			devmem_touch(to, b->ddst[i + j], ++h->clock);
		devmem_touch(to, b->ddst[i + k - 1], h->clock);
	}
	pt_set_run(&h->pt, va(b, from), n, to->id, &b->ddst[from]);
}

/* Count a batch that reached a device and take its fence down. */
int finish_to_dev(struct uhmm *h, struct uhmm_dev *d, const struct request *rq,
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

/* Fresh anonymous memory congruent with `at` modulo 2 MiB, so huge pages
 * survive the move into place. */
char *stage_alloc(struct uhmm *h, uintptr_t at, size_t len, bool populate)
{
	char *s = arena_get(h, at, len);

	if (!s)
		return NULL;
	if (mmap(s, len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
		arena_put(h, s);
		return NULL;
	}
	madvise(s, len, MADV_HUGEPAGE);
	if (populate && madvise(s, len, MADV_POPULATE_WRITE)) {
		arena_put(h, s);
		return NULL;
	}
	return s;
}

/* Move the filled staging buffer into the program's range, in one call. */
int stage_into_place(struct uhmm *h, struct batch *b, char *st)
{
	size_t len = b->end - b->start;

	if (b->prot != (PROT_READ | PROT_WRITE) && mprotect(st, len, b->prot))
		return -errno;
	if (fence_broken(h))
		return -EAGAIN;
	if (mm_move(h, st, len, b->start) == MAP_FAILED)
		return -errno;
	arena_put(h, st);	/* the slot is a hole now: ours again */
	return 0;
}

/* The batch is system memory now: managed, counted, and its waiters woken. */
int finish_to_sys(struct uhmm *h, struct batch *b, const struct request *rq)
{
	size_t len = b->end - b->start;

	uffd_register(h, b->start, len, false);
	COUNT(h, b->src, pages_to_sys, b->n);
	commit(h, b, 0, b->n, NULL, landed_stray(h));
	uffd_wake(h, b->start, len);
	if (rq->res)
		rq->res->moved += b->n;
	return fence_end(h);
}

/*
 * The remap fence over system pages: they leave the batch's range in one
 * call (MREMAP_DONTUNMAP), which stays mapped, empty and registered, so
 * that every access waits, empty pages included.  b->present says which
 * held data; *src is where they are now (NULL when none did), readable
 * whatever the program made the range meanwhile.
 */
int sys_pages_out(struct uhmm *h, struct batch *b, char **src)
{
	size_t len = b->end - b->start;
	int r;

	*src = NULL;
	b->moved_by_uffd = false;
	r = uffd_register_missing(h, b->start, len);
	memset(b->present, 0, b->n);
	if (!r)
		r = pagemap_present(h, b->start, b->n, b->present, true);
	if (r || !memchr(b->present, 1, b->n))
		return r;
	/* a mapping the program put there since we looked (mmap MAP_FIXED)
	 * is not ours to empty: we would take what it wrote */
	if (fence_broken(h))
		return -EAGAIN;
	*src = arena_get(h, b->start, len);
	if (!*src)
		return -ENOMEM;
	/* with UFFDIO_MOVE, which refuses pages pinned for DMA (pinned.c) */
	r = pages_move_out(h, b->start, *src, len);
	b->moved_by_uffd = !r;
	if (r && r != -EOPNOTSUPP) {
		arena_put(h, *src);
		*src = NULL;
		return r;
	}
	if (r && mm_move_keep(h, b->start, len, (uintptr_t)*src) == MAP_FAILED) {
		r = -errno;
		arena_put(h, *src);
		*src = NULL;
		return r;
	}
	mprotect(*src, len, PROT_READ);
	return 0;
}

/*
 * Is the mapping at a still one we emptied, not one the program put there
 * since?  Ours stayed registered (MREMAP_DONTUNMAP keeps it), the
 * program's new one is not: the kernel refuses UFFDIO_CONTINUE on an
 * unregistered mapping with ENOENT before it looks at anything else, and
 * on our anonymous one with EINVAL.
 */
static bool still_emptied(struct uhmm *h, uintptr_t a)
{
	int r;

	while ((r = uffd_continue(h, a, PAGE_SIZE)) == -EAGAIN && !reader_thread)
		events_sync_all(h);
	return r != -ENOENT;
}

static void put_back(struct uhmm *h, struct batch *b, char *src, uintptr_t a, uintptr_t e)
{
	char *from = src + (a - b->start);

	if (b->moved_by_uffd) {
		/* the program's mapping stayed: only its pages come back */
		pages_move_back(h, a, from, e - a);
		return;
	}
	mprotect(from, e - a, b->prot);
	mm_move(h, from, e - a, a);
	uffd_register(h, a, e - a, false);
}

/*
 * Nothing moved after all: the pages go back where they were, mapping by
 * mapping, where it is still the one we emptied (or a hole, where the
 * kernel has no DONTUNMAP and we left one).  A mapping the program put in
 * its place since holds what it wrote after: ours would wipe it out, and
 * what we took of the old one is what the program threw away.
 */
void sys_pages_back(struct uhmm *h, struct batch *b, char *src)
{
	struct vma *vv = NULL;
	uintptr_t a = b->start;
	size_t nv = 0;

	if (!src) {
		uffd_register(h, b->start, b->end - b->start, false);
		return;
	}
	if (vma_scan_mapped(h, b->start, b->end, &vv, &nv)) {
		put_back(h, b, src, b->start, b->end);	/* cannot tell: all */
		arena_put(h, src);
		return;
	}
	for (size_t i = 0; i < nv; i++) {
		uintptr_t vs = vv[i].start > b->start ? vv[i].start : b->start;
		uintptr_t ve = vv[i].end < b->end ? vv[i].end : b->end;

		if (vs > a && !h->dontunmap)
			put_back(h, b, src, a, vs);
		if (still_emptied(h, vs))
			put_back(h, b, src, vs, ve);
		a = ve;
	}
	if (a < b->end && !h->dontunmap)
		put_back(h, b, src, a, b->end);
	mem_free(vv);
	arena_put(h, src);
}

/* Is the batch's range still one mapping of its device's file, not one the
 * program put in its place (mmap MAP_FIXED)? */
bool still_dev_map(struct uhmm *h, const struct batch *b)
{
	struct vma v;

	return !vma_at(h, b->start, &v) && v.kind == VMA_DEV && v.dev == b->src &&
	       v.end >= b->end;
}

/*
 * The same for a batch of one run of device pages whose page tables we
 * took: the device's file is mapped there again - only where the mapping
 * we emptied is still there.  One the program put in its place since
 * holds what it wrote after: ours would wipe it out, and what we took of
 * the old one is what the program threw away.
 */
void dev_pages_back(struct uhmm *h, struct batch *b)
{
	size_t len = b->end - b->start;

	if (!still_dev_map(h, b))
		return;
	if (mm_map_fixed(h, b->start, len, b->prot, MAP_SHARED, b->src->fd,
			 devmem_off(b->src, b->dsrc[0])) != MAP_FAILED)
		uffd_register(h, b->start, len, true);
}

/* They moved: the old pages are the worker's to free. */
void sys_pages_drop(struct uhmm *h, struct batch *b, char *src)
{
	size_t len = b->end - b->start;

	if (!src)
		return;
	uffd_unregister(h, (uintptr_t)src, len);
	trash_add(h, src, len);
}
