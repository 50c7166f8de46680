// SPDX-License-Identifier: MIT
/*
 * The per-page state of managed memory: where each page lives and, for
 * device pages, which page of the device holds it.  Kept per 2 MiB virtual
 * block in a hash table, like UVM's va_blocks, so that lookups stay O(1)
 * and unmanaged memory costs nothing.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static size_t hash_block(uintptr_t base, size_t nbucket)
{
	uint64_t x = base >> BLOCK_SHIFT;

	x *= 0x9e3779b97f4a7c15ull;
	return (x >> 20) & (nbucket - 1);
}

int pt_init(struct pagetable *pt)
{
	pt->nbucket = 1024;
	pt->count = 0;
	pt->last = NULL;
	pt->bucket = mem_alloc(pt->nbucket * sizeof(*pt->bucket));
	return pt->bucket ? 0 : -ENOMEM;
}

void pt_fini(struct pagetable *pt)
{
	for (size_t i = 0; i < pt->nbucket; i++) {
		struct vblock *b = pt->bucket[i], *next;

		for (; b; b = next) {
			next = b->next;
			mem_free(b->dup);
			mem_free(b);
		}
	}
	mem_free(pt->bucket);
	pt->bucket = NULL;
}

struct vblock *pt_find(const struct pagetable *pt, uintptr_t addr)
{
	uintptr_t base = addr & ~(BLOCK_SIZE - 1);
	struct vblock *b;

	for (b = pt->bucket[hash_block(base, pt->nbucket)]; b; b = b->next)
		if (b->base == base)
			return b;
	return NULL;
}

struct vblock *pt_lookup(struct pagetable *pt, uintptr_t addr)
{
	struct vblock *b = pt->last;

	if (b && b->base == (addr & ~(BLOCK_SIZE - 1)))
		return b;
	b = pt_find(pt, addr);
	if (b)
		pt->last = b;
	return b;
}

static void pt_grow(struct pagetable *pt)
{
	size_t n = pt->nbucket * 2;
	struct vblock **nb = mem_alloc(n * sizeof(*nb));

	if (!nb)
		return;		/* longer chains, still correct */
	for (size_t i = 0; i < pt->nbucket; i++) {
		struct vblock *b = pt->bucket[i], *next;

		for (; b; b = next) {
			size_t k = hash_block(b->base, n);

			next = b->next;
			b->next = nb[k];
			nb[k] = b;
		}
	}
	mem_free(pt->bucket);
	pt->bucket = nb;
	pt->nbucket = n;
}

struct vblock *pt_get(struct pagetable *pt, uintptr_t addr)
{
	struct vblock *b = pt_lookup(pt, addr);
	size_t k;

	if (b)
		return b;
	b = mem_alloc(sizeof(*b));
	if (!b)
		return NULL;
	b->base = addr & ~(BLOCK_SIZE - 1);
	b->nmanaged = 0;
	memset(b->loc, LOC_UNMANAGED, sizeof(b->loc));
	k = hash_block(b->base, pt->nbucket);
	b->next = pt->bucket[k];
	pt->bucket[k] = b;
	pt->last = b;
	if (++pt->count > pt->nbucket)
		pt_grow(pt);
	return b;
}

static inline size_t pidx(uintptr_t addr)
{
	return (addr >> PAGE_SHIFT) & (BLOCK_PAGES - 1);
}

static void pt_drop(struct pagetable *pt, struct vblock *b)
{
	struct vblock **pp = &pt->bucket[hash_block(b->base, pt->nbucket)];

	for (; *pp; pp = &(*pp)->next) {
		if (*pp == b) {
			*pp = b->next;
			pt->count--;
			if (pt->last == b)
				pt->last = NULL;
			mem_free(b->dup);	/* their device pages went first */
			mem_free(b);
			return;
		}
	}
}

/* The block of addr (created) and how many of n pages from addr lie in it. */
static struct vblock *block_span(struct pagetable *pt, uintptr_t addr, size_t n,
				 size_t *k)
{
	size_t left = BLOCK_PAGES - pidx(addr);

	*k = n < left ? n : left;
	return pt_block(pt, addr, true);
}

/* Whole runs at once: migrations commit 128 MiB at a time. */
int pt_set_run(struct pagetable *pt, uintptr_t addr, size_t n, int loc, const uint32_t *dp)
{
	for (size_t i = 0, k; i < n; i += k) {
		uintptr_t a = addr + (i << PAGE_SHIFT);
		struct vblock *b = block_span(pt, a, n - i, &k);
		size_t j = pidx(a);

		if (!b)
			return -ENOMEM;
		if (b->nmanaged < BLOCK_PAGES)
			for (size_t x = j; x < j + k; x++)
				b->nmanaged += b->loc[x] == LOC_UNMANAGED;
		memset(&b->loc[j], loc, k);
		if (dp)
			memcpy(&b->dpage[j], &dp[i], k * sizeof(*dp));
		else
			memset(&b->dpage[j], 0, k * sizeof(*dp));
	}
	return 0;
}

int pt_manage_run(struct pagetable *pt, uintptr_t start, uintptr_t end)
{
	size_t n = (end - start) >> PAGE_SHIFT;

	for (size_t i = 0, k; i < n; i += k) {
		uintptr_t a = start + (i << PAGE_SHIFT);
		struct vblock *b = block_span(pt, a, n - i, &k);
		size_t j = pidx(a);

		if (!b)
			return -ENOMEM;
		if (!b->nmanaged) {		/* a fresh block: all of it */
			memset(&b->loc[j], LOC_SYS, k);
			memset(&b->dpage[j], 0, k * sizeof(b->dpage[0]));
			b->nmanaged = k;
			continue;
		}
		for (size_t x = j; x < j + k; x++) {
			if (b->loc[x] != LOC_UNMANAGED)
				continue;
			b->loc[x] = LOC_SYS;
			b->dpage[x] = 0;
			b->nmanaged++;
		}
	}
	return 0;
}

void pt_unmanage(struct pagetable *pt, uintptr_t addr)
{
	struct vblock *b = pt_lookup(pt, addr);
	size_t i = pidx(addr);

	if (!b || b->loc[i] == LOC_UNMANAGED)
		return;
	b->loc[i] = LOC_UNMANAGED;
	if (--b->nmanaged == 0)
		pt_drop(pt, b);
}

uintptr_t pt_next_managed(struct pagetable *pt, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	while (a < end) {
		struct vblock *b = pt_lookup(pt, a);
		uintptr_t bend = (a & ~(BLOCK_SIZE - 1)) + BLOCK_SIZE;

		if (bend > end || bend < a)
			bend = end;
		if (b) {
			for (; a < bend; a += PAGE_SIZE)
				if (b->loc[pidx(a)] != LOC_UNMANAGED)
					return a;
		}
		a = bend;
	}
	return end;
}
