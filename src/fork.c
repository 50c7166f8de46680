// SPDX-License-Identifier: MIT
/*
 * fork(): the child gets a private snapshot of every managed page as it
 * was at the fork, wherever the page lived, and no context.
 *
 * System pages need nothing: the kernel makes them copy-on-write, and the
 * child's mappings are no longer registered with our userfaultfd.  Device
 * pages do: a COHERENT page is a shared mapping of the device's file (the
 * child would share it with the parent), and a PRIVATE page has no page at
 * all in the range (the child would read zeros).  So before the fork
 * (pthread_atfork's prepare, with every context held), the forking thread
 * copies every device-resident page into one staging mapping of private
 * memory, from the device's file or through the driver's copy ops; the
 * child inherits it copy-on-write and moves each piece to its address
 * (mremap, no copy), with the range's protection; the parent unmaps its
 * side of the staging at once.  Discarded COHERENT pages that a mapping
 * still names (quarantine.c) become fresh zeros in the child, not the
 * device's file.  The cost is one copy of the device-resident
 * bytes, in the parent's fork(); system-resident memory costs nothing, and
 * posix_spawn, vfork and system() (which spawn) run no handler at all.
 *
 * With UHMM_OPEN_FORK_NOCOPY the child instead gets PROT_NONE over the
 * device-resident extents (SIGSEGV on access), at O(extents) cost.
 *
 * The library's own locks are taken across the fork, so that the child
 * can open a context of its own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "exclusive.h"
#include "migrate.h"

/* A run of device-resident pages of one mapping. */
struct fork_ext {
	uintptr_t va;
	size_t len;
	int prot;
	size_t off;			/* in the staging, or ZEROS */
};

#define ZEROS SIZE_MAX			/* a fresh mapping: nothing staged */

static pthread_mutex_t ctx_list_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uhmm *ctx_list[64];
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;

static int ext_add(struct fork_plan *fp, uintptr_t va, size_t len, int prot, bool zeros)
{
	if (fp->n == fp->cap) {
		size_t cap = fp->cap ? 2 * fp->cap : 64;
		struct fork_ext *e = mem_realloc(fp->ext, cap * sizeof(*e));

		if (!e)
			return -ENOMEM;
		fp->ext = e;
		fp->cap = cap;
	}
	fp->ext[fp->n++] = (struct fork_ext){ va, len, prot, zeros ? ZEROS : fp->len };
	if (!zeros)
		fp->len += len;
	return 0;
}

/* A run [s, e) on one device: one extent per mapping it spans. */
static int plan_run(struct uhmm *h, struct fork_plan *fp, uintptr_t s, uintptr_t e,
		    bool zeros)
{
	struct vma *vv = NULL;
	size_t n = 0;
	int r = vma_scan_mapped(h, s, e, &vv, &n);

	for (size_t i = 0; !r && i < n; i++)
		r = ext_add(fp, vv[i].start, vv[i].end - vv[i].start, vv[i].prot, zeros);
	mem_free(vv);
	return r;
}

/* The mapping holding COHERENT run s, noted once for plan_strangers. */
static int note_map(struct uhmm *h, struct fork_plan *fp, uintptr_t s)
{
	struct vma v;

	if (vma_at(h, s, &v) || v.kind != VMA_DEV)
		return 0;
	if (fp->nmaps && fp->maps[fp->nmaps - 1] == v.start)
		return 0;
	if (fp->nmaps == fp->maps_cap) {
		size_t cap = fp->maps_cap ? 2 * fp->maps_cap : 64;
		uintptr_t *m = mem_realloc(fp->maps, cap * sizeof(*m));

		if (!m)
			return -ENOMEM;
		fp->maps = m;
		fp->maps_cap = cap;
	}
	fp->maps[fp->nmaps++] = v.start;
	return 0;
}

/*
 * The other pages of those mappings - grown by mremap and not touched
 * since, discarded - map the device's file all the same, at offsets that
 * may hold another range's data: the child gets zeros there, not a share
 * of the file.  Each mapping once (runs come in the page table's order).
 */
static int plan_strangers(struct uhmm *h, struct fork_plan *fp)
{
	int r = 0;

	sort_addrs(fp->maps, fp->nmaps);
	for (size_t i = 0; !r && i < fp->nmaps; i++) {
		struct vma v;
		uintptr_t a, s;

		if ((i && fp->maps[i] == fp->maps[i - 1]) || vma_at(h, fp->maps[i], &v) ||
		    v.kind != VMA_DEV)
			continue;
		for (a = v.start; !r && a < v.end;) {
			if (vma_dev_page(h, &v, a)) {
				a += PAGE_SIZE;
				continue;
			}
			for (s = a; a < v.end && !vma_dev_page(h, &v, a); a += PAGE_SIZE)
				;
			r = ext_add(fp, s, a - s, v.prot, true);
		}
	}
	return r;
}

/*
 * Every run of device-resident pages, in the page table's order.
 *
 * Other threads may be storing to COHERENT pages: the child must get
 * memory as it was at one moment, as the kernel's fork gives it, not each
 * run as it was when the staging reached it.  So every such run loses its
 * PTEs first (the device's file keeps the data): from then on each access
 * is a MINOR fault that waits for the context we hold and is served after
 * the fork.  Only where the mapping is still the device's: another thread
 * may have just mapped memory of its own there, whose UNMAP event is not
 * applied yet.  (An mlocked range cannot be zapped, and is read as it is.)
 */
static int plan_ctx(struct uhmm *h, struct fork_plan *fp)
{
	bool copy = !(h->opts.flags & UHMM_OPEN_FORK_NOCOPY);
	struct pagetable *pt = &h->pt;
	int r = 0;

	for (size_t k = 0; !r && k < pt->nbucket; k++) {
		for (struct vblock *b = pt->bucket[k]; !r && b; b = b->next) {
			for (size_t i = 0; !r && i < BLOCK_PAGES;) {
				struct uhmm_dev *d = dev_by_id(h, b->loc[i]);
				size_t j = i + 1;
				uintptr_t s, e;

				if (!d) {
					i++;
					continue;
				}
				while (j < BLOCK_PAGES && b->loc[j] == b->loc[i])
					j++;
				s = b->base + (i << PAGE_SHIFT);
				e = b->base + (j << PAGE_SHIFT);
				if (copy && d->kind == UHMM_MEM_COHERENT &&
				    dev_map_matches(h, s, e, b->loc[i]))
					mm_zap(h, s, e - s);
				r = plan_run(h, fp, s, e, false);
				if (!r && d->kind == UHMM_MEM_COHERENT)
					r = note_map(h, fp, s);
				i = j;
			}
		}
	}
	if (!r)
		r = plan_strangers(h, fp);
	/* discarded pages a device mapping still names, where no device page
	 * is left: zeros in the child too */
	for (size_t i = 0; !r && i < h->nquar; i++)
		r = plan_run(h, fp, h->quar[i].va,
			     h->quar[i].va + ((uintptr_t)h->quar[i].n << PAGE_SHIFT), true);
	return r;
}

/* Copy one extent's pages into the staging, from wherever they live, a
 * run of consecutive device pages at a time. */
static int stage_ext(struct uhmm *h, struct fork_plan *fp, const struct fork_ext *x)
{
	uint32_t dp[BLOCK_PAGES];
	size_t n = x->len >> PAGE_SHIFT;
	int r = 0;

	for (size_t i = 0, k; !r && i < n; i += k) {
		int loc = pt_loc(&h->pt, x->va + (i << PAGE_SHIFT), &dp[0]);
		struct uhmm_dev *d = dev_by_id(h, loc);
		char *dst = fp->stage + x->off + (i << PAGE_SHIFT);

		for (k = 1; i + k < n && k < BLOCK_PAGES; k++)
			if (pt_loc(&h->pt, x->va + ((i + k) << PAGE_SHIFT), &dp[k]) != loc ||
			    dp[k] != dp[0] + k)
				break;
		if (!d)
			continue;	/* zeros: the staging is fresh */
		if (d->kind == UHMM_MEM_COHERENT)
			r = read_all(d->fd, dst, k << PAGE_SHIFT, devmem_off(d, dp[0]));
		else
			r = dev_read_pages(d, dp, k, dst);
	}
	return r;
}

static void plan_free(struct fork_plan *fp)
{
	if (fp->stage)
		munmap(fp->stage, fp->len);
	mem_free(fp->ext);
	mem_free(fp->maps);
	memset(fp, 0, sizeof(*fp));
}

/* With h->lock held: what the child needs, staged. */
static void fork_stage(struct uhmm *h)
{
	struct fork_plan *fp = &h->fork;
	bool copy = !(h->opts.flags & UHMM_OPEN_FORK_NOCOPY);
	int r;

	memset(fp, 0, sizeof(*fp));
	r = plan_ctx(h, fp);
	if (!r && copy && fp->len) {
		fp->stage = mmap(NULL, fp->len, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (fp->stage == MAP_FAILED) {
			fp->stage = NULL;
			r = -ENOMEM;
		}
		if (!r)
			madvise(fp->stage, fp->len, MADV_HUGEPAGE);
	}
	for (size_t i = 0; !r && copy && i < fp->n; i++)
		if (fp->ext[i].off != ZEROS)
			r = stage_ext(h, fp, &fp->ext[i]);
	COUNT(h, (struct uhmm_dev *)NULL, forks, 1);
	if (!r && copy)
		COUNT(h, (struct uhmm_dev *)NULL, fork_bytes_staged, fp->len);
	/* a snapshot that could not be made: the child gets no access
	 * rather than wrong data */
	h->fork_failed = r != 0;
}

static void fork_prepare(void)
{
	pthread_mutex_lock(&ctx_list_lock);
	for (size_t i = 0; i < sizeof(ctx_list) / sizeof(ctx_list[0]); i++) {
		struct uhmm *h = ctx_list[i];

		if (!h)
			continue;
		ctx_lock(h);
		events_drain(h);
		/* pages a device holds alone come back first */
		excl_before_fork(h);
		fork_stage(h);
	}
	/* no allocation from here on: the child may need these locks */
	dev_registry_lock(true);
	mem_fork_lock(true);
}

static void fork_parent(void)
{
	mem_fork_lock(false);
	dev_registry_lock(false);
	for (size_t i = 0; i < sizeof(ctx_list) / sizeof(ctx_list[0]); i++) {
		struct uhmm *h = ctx_list[i];

		if (!h)
			continue;
		/* the child has its own copy-on-write view of the staging */
		plan_free(&h->fork);
		ctx_unlock(h);
	}
	pthread_mutex_unlock(&ctx_list_lock);
}

/* In the child: each extent becomes private memory with its snapshot. */
static void place_snapshot(struct uhmm *h)
{
	struct fork_plan *fp = &h->fork;
	bool copy = !(h->opts.flags & UHMM_OPEN_FORK_NOCOPY) && !h->fork_failed;

	for (size_t i = 0; i < fp->n; i++) {
		const struct fork_ext *x = &fp->ext[i];
		void *at = (void *)x->va;

		if (x->off == ZEROS) {
			mmap(at, x->len, x->prot, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			continue;
		}
		if (copy && mremap(fp->stage + x->off, x->len, x->len,
				   MREMAP_MAYMOVE | MREMAP_FIXED, at) == at) {
			mprotect(at, x->len, x->prot);
			continue;
		}
		/* no copy asked for (or none could be made) */
		mmap(at, x->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	}
	if (fp->stage)
		munmap(fp->stage, fp->len);	/* what no extent took */
}

static void fork_child(void)
{
	mem_fork_lock(false);
	dev_registry_lock(false);
	dev_registry_forget();
	for (size_t i = 0; i < sizeof(ctx_list) / sizeof(ctx_list[0]); i++) {
		struct uhmm *h = ctx_list[i];

		if (!h)
			continue;
		place_snapshot(h);
		/* the parent's context lives on there, not here: its threads
		 * did not follow, its memory is ordinary memory now */
		close(h->uffd);
		ctx_list[i] = NULL;
	}
	pthread_mutex_unlock(&ctx_list_lock);
}

static void atfork_install(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

int fork_track(struct uhmm *h)
{
	int r = -EMFILE;

	pthread_once(&atfork_once, atfork_install);
	pthread_mutex_lock(&ctx_list_lock);
	for (size_t i = 0; i < sizeof(ctx_list) / sizeof(ctx_list[0]); i++) {
		if (!ctx_list[i]) {
			ctx_list[i] = h;
			r = 0;
			break;
		}
	}
	pthread_mutex_unlock(&ctx_list_lock);
	return r;
}

void fork_untrack(struct uhmm *h)
{
	pthread_mutex_lock(&ctx_list_lock);
	for (size_t i = 0; i < sizeof(ctx_list) / sizeof(ctx_list[0]); i++)
		if (ctx_list[i] == h)
			ctx_list[i] = NULL;
	pthread_mutex_unlock(&ctx_list_lock);
}
