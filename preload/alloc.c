// SPDX-License-Identifier: MIT
/*
 * malloc and friends under `uhmm run`.  Requests of at least UHMM_MIN_SIZE
 * bytes get memory of their own from uhmm_alloc on a device (placed at
 * first touch: on a COHERENT device the first CPU write lands there with
 * no copy); everything else, and what no device has room for, is glibc's.
 * The preload owns what it placed, so glibc never mremaps or madvises
 * device memory behind uhmm's back: realloc of a large block copies into a
 * new one.  The blocks are found again by their address in an open
 * addressing table made of mmap'd memory (never the heap we stand in for).
 * A few freed blocks are kept, on their devices, for the next requests of
 * about their size: placing a block and giving it back costs milliseconds
 * (a mapping, its registration, its events), reusing one microseconds.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "preload.h"

#define PAGE		4096ul
#define BIG_ALIGN	(2ul << 20)	/* what uhmm_alloc gives sizes >= 2 MiB */
#define KEEP_BLOCKS	16		/* freed blocks kept for reuse ... */
#define KEEP_BYTES	(64ul << 20)	/* ... holding at most this much */

struct blk {
	uintptr_t ptr;			/* what the program got; 0: free slot */
	uintptr_t base;			/* what uhmm_alloc gave */
	size_t usable;			/* bytes from ptr */
	size_t maplen;			/* bytes from base */
	int dev;			/* index in pl.dev[]; -1: not on a device */
	bool managed;			/* a uhmm_alloc block of pl.h */
};

static struct blk *tab;
static size_t tab_cap, tab_n;
static struct blk kept[KEEP_BLOCKS];	/* base 0: free slot */
static size_t kept_bytes;
static uintptr_t tab_lo = UINTPTR_MAX, tab_hi;	/* every block lies inside */

static size_t slot_of(uintptr_t p, size_t cap)
{
	return (size_t)(((p >> 12) * 0x9e3779b97f4a7c15ull) >> 20) & (cap - 1);
}

static struct blk *tab_find(uintptr_t p)
{
	if (!tab_n || p < tab_lo || p >= tab_hi)
		return NULL;
	for (size_t i = slot_of(p, tab_cap);; i = (i + 1) & (tab_cap - 1)) {
		if (tab[i].ptr == p)
			return &tab[i];
		if (!tab[i].ptr)
			return NULL;
	}
}

static void tab_put(struct blk *t, size_t cap, const struct blk *b)
{
	size_t i = slot_of(b->ptr, cap);

	while (t[i].ptr)
		i = (i + 1) & (cap - 1);
	t[i] = *b;
}

static bool tab_grow(void)
{
	size_t cap = tab_cap ? 2 * tab_cap : 1024;
	struct blk *t = mmap(NULL, cap * sizeof(*t), PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (t == MAP_FAILED)
		return false;
	for (size_t i = 0; i < tab_cap; i++)
		if (tab[i].ptr)
			tab_put(t, cap, &tab[i]);
	if (tab)
		munmap(tab, tab_cap * sizeof(*tab));
	tab = t;
	tab_cap = cap;
	return true;
}

static bool tab_insert(const struct blk *b)
{
	if ((tab_n + 1) * 2 > tab_cap && !tab_grow())
		return false;
	tab_put(tab, tab_cap, b);
	tab_n++;
	if (b->base < tab_lo)
		tab_lo = b->base;
	if (b->base + b->maplen > tab_hi)
		tab_hi = b->base + b->maplen;
	return true;
}

/* Linear probing: close the gap so that later entries stay reachable. */
static void tab_remove(struct blk *b)
{
	size_t i = (size_t)(b - tab), j = i;

	tab[i].ptr = 0;
	tab_n--;
	for (;;) {
		size_t k;

		j = (j + 1) & (tab_cap - 1);
		if (!tab[j].ptr)
			return;
		k = slot_of(tab[j].ptr, tab_cap);
		/* move tab[j] into the hole unless its home lies in (i, j] */
		if ((i <= j) ? (i < k && k <= j) : (i < k || k <= j))
			continue;
		tab[i] = tab[j];
		tab[j].ptr = 0;
		i = j;
	}
}

/* ---- placing ------------------------------------------------------------ */

static size_t room_on(struct pdev *d)
{
	struct uhmm_dev_info in = { .sz = sizeof(in) };

	if (!d->dev || uhmm_dev_info(d->dev, &in))
		return 0;
	return in.size - in.reserved;
}

static void note_peak(struct pdev *d)
{
	struct uhmm_dev_info in = { .sz = sizeof(in) };

	if (!uhmm_dev_info(d->dev, &in) && in.used > d->peak_used)
		d->peak_used = in.used;
}

/* A kept block of device i for len bytes, not more than twice as large
 * (with a 2 MiB allowance); taken out of the keep.  0 when none. */
static uintptr_t take_kept(int i, size_t len, size_t *maplen)
{
	int best = -1;

	for (int k = 0; k < KEEP_BLOCKS; k++)
		if (kept[k].base && kept[k].dev == i && kept[k].maplen >= len &&
		    kept[k].maplen <= 2 * len + BIG_ALIGN &&
		    (best < 0 || kept[k].maplen < kept[best].maplen))
			best = k;
	if (best < 0)
		return 0;
	*maplen = kept[best].maplen;
	kept_bytes -= kept[best].maplen;
	kept[best].base = 0;
	return (uintptr_t)kept[best].ptr;
}

/* Keep a freed block for reuse: false when the keep is full. */
static bool keep(const struct blk *b)
{
	if (kept_bytes + b->maplen > KEEP_BYTES)
		return false;
	for (int k = 0; k < KEEP_BLOCKS; k++) {
		if (!kept[k].base) {
			kept[k] = *b;
			kept[k].ptr = b->base;
			kept_bytes += b->maplen;
			return true;
		}
	}
	return false;
}

/* Give device i's kept blocks back: the keep must not stand in the way
 * of a new block.  Returns whether there were any. */
static bool drop_kept(struct uhmm *h, int i)
{
	bool any = false;

	for (int k = 0; k < KEEP_BLOCKS; k++) {
		if (kept[k].base && kept[k].dev == i) {
			uhmm_free(h, (void *)kept[k].base);
			kept_bytes -= kept[k].maplen;
			kept[k].base = 0;
			any = true;
		}
	}
	return any;
}

/*
 * The preferred device first, then the others in order: a block kept
 * from a free of about that size, or a new one if the device has room
 * without evicting what is there (first come, first placed).  Returns the
 * device's index, or -1.
 */
static int place(struct uhmm *h, size_t len, void **base, size_t *maplen)
{
	size_t chunked = (len + BIG_ALIGN - 1) & ~(BIG_ALIGN - 1);

	for (int k = -1; k < pl.ndev; k++) {
		int i = k < 0 ? pl.prefer : k;
		struct pdev *d = &pl.dev[i];

		if (k >= 0 && i == pl.prefer)
			continue;
		*base = (void *)take_kept(i, len, maplen);
		if (*base)
			return i;
		if (room_on(d) < chunked && (!drop_kept(h, i) || room_on(d) < chunked))
			continue;
		*base = uhmm_alloc(h, len, d->dev, 0);
		*maplen = len;
		if (*base)
			return i;
	}
	return -1;
}

/*
 * A block of at least size bytes aligned to align (a power of two), on a
 * device; NULL when it should be glibc's (no device has room, no context,
 * or we are inside ourselves).  Fresh blocks read as zeros.
 */
void *big_alloc(size_t size, size_t align, bool zero)
{
	struct blk b = { .dev = -1 };
	void *base = NULL;
	struct uhmm *h;
	size_t len, maplen = 0;

	if (pl_busy || !pl.enabled || size > (SIZE_MAX >> 2))
		return NULL;
	if (align <= PAGE || (size >= BIG_ALIGN && align <= BIG_ALIGN))
		align = 0;
	len = (size + PAGE - 1) & ~(PAGE - 1);
	len += align;
	pl_busy++;
	pthread_mutex_lock(&pl.lock);
	pl.large_allocs++;
	pl.large_bytes += size;
	h = pl_context();
	if (h)
		b.dev = place(h, len, &base, &maplen);
	if (!base) {
		pl.unplaced_allocs++;
		pl.unplaced_bytes += size;
		pthread_mutex_unlock(&pl.lock);
		pl_busy--;
		if (pl.verbose)
			pl_log("%zu bytes: no device has room, system memory", size);
		return NULL;
	}
	b.base = (uintptr_t)base;
	b.ptr = align ? (b.base + align - 1) & ~(align - 1) : b.base;
	b.maplen = maplen;
	b.usable = maplen - (b.ptr - b.base);
	b.managed = true;
	/* a fresh block reads as zeros; a kept one holds its old bytes */
	if (zero && maplen != len)
		memset((void *)b.ptr, 0, size);
	if (!tab_insert(&b)) {
		uhmm_free(h, base);
		pthread_mutex_unlock(&pl.lock);
		pl_busy--;
		return NULL;
	}
	pl.dev[b.dev].placed_allocs++;
	pl.dev[b.dev].placed_bytes += size;
	note_peak(&pl.dev[b.dev]);
	pthread_mutex_unlock(&pl.lock);
	pl_busy--;
	if (pl.verbose)
		pl_log("%zu bytes at %p on %s", size, (void *)b.ptr, pl.dev[b.dev].spec.name);
	return (void *)b.ptr;
}

/* Ours: released, true.  Not ours: false. */
static bool big_free(void *p)
{
	struct blk *e, b;

	if ((uintptr_t)p & (PAGE - 1))
		return false;	/* ours are page aligned: spare the lock */
	pl_busy++;
	pthread_mutex_lock(&pl.lock);
	e = tab_find((uintptr_t)p);
	if (!e) {
		pthread_mutex_unlock(&pl.lock);
		pl_busy--;
		return false;
	}
	b = *e;
	tab_remove(e);
	if (b.managed && pl.h && !pl.child) {
		if (!keep(&b))
			uhmm_free(pl.h, (void *)b.base);
	} else {
		munmap((void *)b.base, b.maplen);
	}
	pthread_mutex_unlock(&pl.lock);
	pl_busy--;
	return true;
}

/* The usable size of one of ours, or 0 when p is not ours. */
static size_t big_usable(const void *p)
{
	struct blk *e;
	size_t n = 0;

	if (!p || ((uintptr_t)p & (PAGE - 1)))
		return 0;
	pthread_mutex_lock(&pl.lock);
	e = tab_find((uintptr_t)p);
	if (e)
		n = e->usable;
	pthread_mutex_unlock(&pl.lock);
	return n;
}

void big_forget_context(void)
{
	for (size_t i = 0; i < tab_cap; i++)
		tab[i].managed = false;
	/* the kept blocks are plain memory of the child's now */
	for (int k = 0; k < KEEP_BLOCKS; k++) {
		if (kept[k].base)
			munmap((void *)kept[k].base, kept[k].maplen);
		kept[k].base = 0;
	}
	kept_bytes = 0;
}

/* Does [addr, addr + len) reach into a block of ours? */
static bool big_overlaps(uintptr_t addr, size_t len)
{
	bool hit = false;

	pthread_mutex_lock(&pl.lock);
	if (tab_n && addr < tab_hi && addr + len > tab_lo) {
		for (size_t i = 0; i < tab_cap && !hit; i++)
			hit = tab[i].ptr && addr < tab[i].base + tab[i].maplen &&
			      addr + len > tab[i].base;
	}
	pthread_mutex_unlock(&pl.lock);
	return hit;
}

/* ---- the interposed functions ------------------------------------------ */

static bool big_enough(size_t n)
{
	return pl.enabled && n >= pl.min_size && !pl_busy;
}

void *malloc(size_t n)
{
	void *p = big_enough(n) ? big_alloc(n, 0, false) : NULL;

	return p ? p : __libc_malloc(n);
}

void free(void *p)
{
	if (p && !big_free(p))
		__libc_free(p);
}

void *calloc(size_t n, size_t m)
{
	size_t t;
	void *p;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	p = big_enough(t) ? big_alloc(t, 0, true) : NULL;
	return p ? p : __libc_calloc(n, m);
}

static size_t (*glibc_usable)(void *);

static size_t usable_of(void *p)
{
	size_t n = big_usable(p);

	if (n || !p)
		return n;
	if (!glibc_usable)
		glibc_usable = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	return glibc_usable ? glibc_usable(p) : 0;
}

size_t malloc_usable_size(void *p)
{
	return usable_of(p);
}

/* Move p's bytes into a new block of n bytes (ours or glibc's). */
static void *move_to(void *p, size_t old, size_t n)
{
	void *q = malloc(n);

	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	free(p);
	return q;
}

void *realloc(void *p, size_t n)
{
	size_t have;

	if (!p)
		return malloc(n);
	if (!n) {
		free(p);	/* as glibc: realloc(p, 0) frees */
		return NULL;
	}
	have = big_usable(p);
	if (have) {
		/* ours: stay while it fits and is not mostly wasted */
		if (n <= have && (n >= pl.min_size || n >= have / 2))
			return p;
		return move_to(p, have, n);
	}
	if (big_enough(n))
		return move_to(p, usable_of(p), n);
	return __libc_realloc(p, n);
}

void *reallocarray(void *p, size_t n, size_t m)
{
	size_t t;

	if (__builtin_mul_overflow(n, m, &t)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, t);
}

static void *aligned(size_t align, size_t n)
{
	void *p = big_enough(n) ? big_alloc(n, align, false) : NULL;

	return p ? p : __libc_memalign(align, n);
}

int posix_memalign(void **out, size_t align, size_t n)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = aligned(align, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *aligned_alloc(size_t align, size_t n)
{
	if (!align || (align & (align - 1))) {
		errno = EINVAL;
		return NULL;
	}
	return aligned(align, n);
}

void *memalign(size_t align, size_t n)
{
	/* glibc takes any alignment and rounds it up to a power of two */
	size_t a = 1;

	while (a < align && a)
		a <<= 1;
	if (!a) {
		errno = EINVAL;
		return NULL;
	}
	return aligned(a, n);
}

void *valloc(size_t n)
{
	return aligned(PAGE, n);
}

void *pvalloc(size_t n)
{
	size_t r = (n + PAGE - 1) & ~(PAGE - 1);

	if (r < n) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned(PAGE, r ? r : PAGE);
}

/* The program's mprotect of memory we placed goes through uhmm_mprotect,
 * so that mirrors hear of it first; the rest goes straight to the kernel
 * (and so does the library's own, made while pl_busy). */
int mprotect(void *addr, size_t len, int prot)
{
	uintptr_t a = (uintptr_t)addr;
	int r;

	if (pl_busy || !__atomic_load_n(&pl.h, __ATOMIC_ACQUIRE) || pl.child || !len ||
	    (a & (PAGE - 1)) || (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC)) ||
	    !big_overlaps(a, len))
		return (int)syscall(SYS_mprotect, addr, len, prot);
	pl_busy++;
	r = uhmm_mprotect(pl.h, addr, len, prot);
	pl_busy--;
	if (r) {
		errno = -r;
		return -1;
	}
	return 0;
}
