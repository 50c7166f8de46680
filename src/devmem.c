// SPDX-License-Identifier: MIT
/*
 * The device-memory allocator.  Device memory is cut into chunks of up to
 * 2 MiB; each aligned virtual block of the same size that has pages on the
 * device is bound to one chunk, and page i of the block goes to page i of
 * the chunk.  Runs of device pages then sit at contiguous, congruent file
 * offsets, so a 1 GiB range maps as a handful of VMAs (never one per page:
 * max_map_count is 65530) and the kernel can move whole page tables.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t key_hash(uintptr_t key, size_t n)
{
	uint64_t x = key * 0x9e3779b97f4a7c15ull;

	return (x >> 17) & (n - 1);
}

static unsigned chunk_shift(const struct uhmm_dev *d)
{
	return PAGE_SHIFT + __builtin_ctz(d->chunk_pages);
}

/* The largest power-of-two chunk, at most 2 MiB, that divides the size. */
static uint32_t pick_chunk_pages(size_t npages, size_t granule_pages)
{
	uint32_t cp = BLOCK_PAGES;

	while (cp > granule_pages && npages % cp)
		cp >>= 1;
	return cp;
}

int devmem_init(struct uhmm_dev *d)
{
	d->npages = d->size >> PAGE_SHIFT;
	d->last_chunk = -1;
	d->chunk_pages = pick_chunk_pages(d->npages, d->granule >> PAGE_SHIFT);
	d->nchunks = (d->npages + d->chunk_pages - 1) / d->chunk_pages;
	d->nbind = 16;
	while (d->nbind < 2ul * d->nchunks)
		d->nbind <<= 1;
	d->owner = mem_alloc((d->npages) * sizeof(*d->owner));
	d->pflags = mem_alloc((d->npages) * 1);
	d->chunk_key = mem_alloc((d->nchunks) * sizeof(*d->chunk_key));
	d->chunk_used = mem_alloc((d->nchunks) * sizeof(*d->chunk_used));
	d->chunk_lru = mem_alloc((d->nchunks) * sizeof(*d->chunk_lru));
	d->bind = mem_alloc((d->nbind) * sizeof(*d->bind));
	d->gen = mem_alloc((d->npages) * sizeof(*d->gen));
	d->arrived = mem_alloc((d->npages) * sizeof(*d->arrived));
	if (!d->owner || !d->pflags || !d->chunk_key || !d->chunk_used ||
	    !d->chunk_lru || !d->bind || !d->gen || !d->arrived) {
		devmem_fini(d);
		return -ENOMEM;
	}
	/* migrations walk them page by page */
	mem_populate(d->owner);
	mem_populate(d->pflags);
	mem_populate(d->gen);
	return 0;
}

void devmem_fini(struct uhmm_dev *d)
{
	mem_free(d->owner);
	mem_free(d->pflags);
	mem_free(d->chunk_key);
	mem_free(d->chunk_used);
	mem_free(d->chunk_lru);
	mem_free(d->bind);
	mem_free(d->gen);
	mem_free(d->arrived);
	d->gen = NULL;
	d->arrived = NULL;
	d->owner = NULL;
	d->pflags = NULL;
	d->chunk_key = NULL;
	d->chunk_used = NULL;
	d->chunk_lru = NULL;
	d->bind = NULL;
}

static long bind_find(struct uhmm_dev *d, uintptr_t key)
{
	size_t i = key_hash(key, d->nbind);

	if (d->last_chunk >= 0 && d->last_key == key && d->chunk_key[d->last_chunk] == key + 1)
		return d->last_chunk;
	for (; d->bind[i]; i = (i + 1) & (d->nbind - 1)) {
		if (d->chunk_key[d->bind[i] - 1] == key + 1) {
			d->last_key = key;
			d->last_chunk = d->bind[i] - 1;
			return d->last_chunk;
		}
	}
	return -1;
}

static void bind_set(struct uhmm_dev *d, uintptr_t key, uint32_t chunk)
{
	size_t i = key_hash(key, d->nbind);

	while (d->bind[i])
		i = (i + 1) & (d->nbind - 1);
	d->bind[i] = chunk + 1;
	d->chunk_key[chunk] = key + 1;
	d->bound_chunks++;
}

/* Linear probing delete with backward shift, so lookups never stop early. */
static void bind_del(struct uhmm_dev *d, uint32_t chunk)
{
	uintptr_t key = d->chunk_key[chunk] - 1;
	size_t mask = d->nbind - 1, i = key_hash(key, d->nbind), j;

	while (d->bind[i] != chunk + 1) {
		if (!d->bind[i])
			return;		/* not bound: nothing to undo */
		i = (i + 1) & mask;
	}
	d->bind[i] = 0;
	for (j = (i + 1) & mask; d->bind[j]; j = (j + 1) & mask) {
		size_t home = key_hash(d->chunk_key[d->bind[j] - 1] - 1, d->nbind);

		/* move j back into the hole if its home is not in (i, j] */
		if ((j > i && (home <= i || home > j)) ||
		    (j < i && (home <= i && home > j))) {
			d->bind[i] = d->bind[j];
			d->bind[j] = 0;
			i = j;
		}
	}
	d->chunk_key[chunk] = 0;
	d->bound_chunks--;
}

static long free_chunk(struct uhmm_dev *d, uintptr_t key)
{
	long prev = key ? bind_find(d, key - 1) : -1;

	/* follow the previous block's chunk so neighbours stay contiguous */
	if (prev >= 0 && prev + 1 < d->nchunks && !d->chunk_key[prev + 1])
		return prev + 1;
	for (uint32_t n = 0; n < d->nchunks; n++) {
		uint32_t c = (d->alloc_hint + n) % d->nchunks;

		if (!d->chunk_key[c]) {
			d->alloc_hint = c;
			return c;
		}
	}
	return -1;
}

static void take(struct uhmm_dev *d, uint32_t p, uintptr_t va)
{
	if (devmem_needs_scrub(d, p))
		d->scrub_todo--;
	d->owner[p] = va;
	d->chunk_used[p / d->chunk_pages]++;
	d->used_pages++;
}

/* Pages p.. p + n - 1 of one chunk for va.., if all of them are free. */
static bool take_run(struct uhmm_dev *d, uint32_t p, size_t n, uintptr_t va, uint32_t *dp)
{
	size_t scrub = 0;

	if (p + n > d->npages)
		return false;
	for (size_t i = 0; i < n && d->chunk_used[p / d->chunk_pages]; i++)
		if (d->owner[p + i])
			return false;
	for (size_t i = 0; i < n && d->scrub_todo; i++)
		scrub += devmem_needs_scrub(d, p + i);
	for (size_t i = 0; i < n; i++) {
		d->owner[p + i] = va + (i << PAGE_SHIFT);
		dp[i] = p + i;
	}
	d->scrub_todo -= scrub;
	d->chunk_used[p / d->chunk_pages] += n;
	d->used_pages += n;
	return true;
}

/*
 * A chunk no block has bound, taken for pages whose own chunk has no room:
 * bound to a key no block has (one per chunk), so that it is not handed to
 * a block as empty, eviction sees it, and the next such page finds it.
 */
static uintptr_t stray_key(uint32_t c)
{
	return UINTPTR_MAX - 1 - c;
}

static long stray_chunk(struct uhmm_dev *d)
{
	long c = free_chunk(d, 0);

	if (c >= 0)
		bind_set(d, stray_key((uint32_t)c), (uint32_t)c);
	return c;
}

static bool free_page_in(struct uhmm_dev *d, uint32_t c, uintptr_t va, uint32_t *dpage)
{
	for (uint32_t i = 0; i < d->chunk_pages; i++) {
		uint32_t p = c * d->chunk_pages + i;

		if (p < d->npages && !d->owner[p]) {
			take(d, p, va);
			*dpage = p;
			return true;
		}
	}
	return false;
}

/*
 * A page wherever there is one when the natural slot is taken (after
 * mremap, or its chunk is full): in a bound chunk with room, else in a
 * chunk no block has yet.  A free page is never refused.
 */
static int any_free_page(struct uhmm_dev *d, uintptr_t va, uint32_t *dpage)
{
	long c;

	for (c = 0; c < d->nchunks; c++)
		if (d->chunk_key[c] && d->chunk_used[c] < d->chunk_pages &&
		    free_page_in(d, (uint32_t)c, va, dpage))
			return 0;
	c = stray_chunk(d);
	return c >= 0 && free_page_in(d, (uint32_t)c, va, dpage) ? 0 : -ENOSPC;
}

/* The chunk bound to key, binding a free one if none is; -1: none free. */
static long chunk_of(struct uhmm_dev *d, uintptr_t key)
{
	long c = bind_find(d, key);

	if (c >= 0)
		return c;
	c = free_chunk(d, key);
	if (c >= 0)
		bind_set(d, key, c);
	return c;
}

/*
 * Device pages for the n pages from va, in order: page i of a block goes
 * to page i of its chunk, or wherever there is room once chunks run out
 * (after mremap, or when the device is nearly full).  How many pages got
 * one before the device was full.  A chunk is looked up once per block,
 * not once per page: migrations reserve 128 MiB at a time.
 */
size_t devmem_alloc_run(struct uhmm_dev *d, uintptr_t va, size_t n, uint32_t *dp)
{
	size_t got = 0;

	while (got < n) {
		uintptr_t a = va + (got << PAGE_SHIFT);
		uint32_t idx = (a >> PAGE_SHIFT) & (d->chunk_pages - 1);
		size_t k = d->chunk_pages - idx;
		long c = chunk_of(d, a >> chunk_shift(d));

		if (k > n - got)
			k = n - got;
		if (c >= 0 && take_run(d, c * d->chunk_pages + idx, k, a, &dp[got])) {
			got += k;
			continue;
		}
		for (size_t i = 0; i < k; i++, got++) {
			uint32_t p = c * d->chunk_pages + idx + i;
			uintptr_t at = va + (got << PAGE_SHIFT);

			if (c >= 0 && p < d->npages && !d->owner[p]) {
				take(d, p, at);
				dp[got] = p;
			} else if (any_free_page(d, at, &dp[got])) {
				return got;
			}
		}
	}
	return got;
}

int devmem_alloc(struct uhmm_dev *d, uintptr_t va, uint32_t *dpage)
{
	return devmem_alloc_run(d, va, 1, dpage) ? 0 : -ENOSPC;
}

/* Take page p for va, whatever its natural slot (a mapping the program
 * moved keeps its file offsets).  False if someone else holds it. */
bool devmem_claim(struct uhmm_dev *d, uint32_t p, uintptr_t va)
{
	uint32_t c = p / d->chunk_pages;
	uint32_t dp = 0;

	if (p >= d->npages)
		return false;
	/* a duplicate is not its owner's page; a discarded page holds what
	 * the program threw away */
	if (d->pflags[p] & (DP_DUP | DP_QUAR))
		return false;
	if (d->owner[p] == va)
		return true;
	/* an owner whose page table entry no longer points here is stale */
	if (d->owner[p] && pt_loc(&d->h->pt, d->owner[p], &dp) == d->id && dp == p)
		return false;
	if (d->owner[p]) {
		d->owner[p] = va;
		return true;
	}
	if (!d->chunk_key[c])
		bind_set(d, va >> chunk_shift(d), c);
	take(d, p, va);
	return true;
}

void devmem_free(struct uhmm_dev *d, uint32_t p)
{
	uint32_t c = p / d->chunk_pages;

	if (!d->owner[p])
		return;
	d->owner[p] = 0;
	d->gen[p]++;
	if (devmem_needs_scrub(d, p)) {
		d->scrub_todo++;
		atomic_store(&d->h->scrub, true);
	}
	d->used_pages--;
	if (--d->chunk_used[c] == 0)
		bind_del(d, c);
}

/* Freed in the counts, still held: an address may name it (quarantine.c). */
void devmem_quarantine(struct uhmm_dev *d, uint32_t p)
{
	if (!d->owner[p] || (d->pflags[p] & DP_QUAR))
		return;
	d->pflags[p] |= DP_QUAR;
	d->used_pages--;
	d->quar_pages++;
}

/* ... and now free for anyone. */
void devmem_release(struct uhmm_dev *d, uint32_t p)
{
	if (!(d->pflags[p] & DP_QUAR))
		return;
	d->pflags[p] &= ~DP_QUAR;
	d->quar_pages--;
	d->used_pages++;
	devmem_free(d, p);
}

void devmem_touch(struct uhmm_dev *d, uint32_t p, uint64_t now)
{
	d->chunk_lru[p / d->chunk_pages] = now;
}

long devmem_lru_chunk(struct uhmm_dev *d, uintptr_t avoid_start, uintptr_t avoid_end)
{
	long best = -1;

	for (uint32_t c = 0; c < d->nchunks; c++) {
		bool avoid = false;

		if (!d->chunk_key[c])
			continue;
		if (best >= 0 && d->chunk_lru[c] >= d->chunk_lru[best])
			continue;
		for (uint32_t i = 0; i < d->chunk_pages && !avoid; i++) {
			uint32_t p = c * d->chunk_pages + i;
			uintptr_t va = p < d->npages ? d->owner[p] : 0;

			avoid = va && ((va >= avoid_start && va < avoid_end) ||
				       advice_pinned(d->h, va, va + PAGE_SIZE));
		}
		if (!avoid)
			best = c;
	}
	return best;
}
