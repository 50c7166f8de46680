// SPDX-License-Identifier: MIT
/*
 * The library's own memory comes from mmap, never from malloc: the pages
 * of the heap are the very pages a program may ask us to migrate, and while
 * a range is fenced any write into it - our metadata sharing a heap page
 * with the user's buffer, or malloc's own bookkeeping - would wait for the
 * fence we hold.
 *
 * Small objects (up to a page) come from 2 MiB slabs kept for the life of
 * the process, so that our metadata does not scatter one-page mappings into
 * the holes of the program's address space; migrate refuses ranges that
 * reach into a slab.  Slabs and larger objects are cut from a region of
 * our own (zone.c): never from a hole the program has just made.  So do the bounce buffers of the threads that serve
 * faults (bounce.c), cut from slabs of their own.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "compat.h"
#include "internal.h"

#define SLAB_SIZE	BLOCK_SIZE
#define MAX_SLABS	1024

struct mem_hdr {
	size_t len;			/* whole mapping, or 0 for a slab page */
	size_t pad;
};

struct free_piece {
	struct free_piece *next;
};

/* Pieces of one size, carved from slabs: a page for small objects, a
 * bounce buffer (bounce.c) for the threads that serve faults. */
struct piece_list {
	size_t size;
	struct free_piece *free;
};

static pthread_mutex_t slab_lock = PTHREAD_MUTEX_INITIALIZER;
static uintptr_t slabs[MAX_SLABS];
static unsigned nslabs;
static struct piece_list pages = { PAGE_SIZE, NULL };
static struct piece_list bounces = { BOUNCE_BYTES, NULL };

/* larger objects: their own mappings, remembered for mem_owns by address
 * and length (never read through: a mapping may be moving) */
#define MAX_BIG 4096
static struct { uintptr_t start; size_t len; } big[MAX_BIG];

/* With slab_lock held.  old 0: a new record; new 0: none any more. */
static void big_set_locked(const struct mem_hdr *old, const struct mem_hdr *new, size_t len)
{
	for (unsigned i = 0; i < MAX_BIG; i++) {
		if (big[i].start == (uintptr_t)old) {
			big[i].start = (uintptr_t)new;
			big[i].len = new ? len : 0;
			break;
		}
	}
}

static void big_set(const struct mem_hdr *old, const struct mem_hdr *new, size_t len)
{
	pthread_mutex_lock(&slab_lock);
	big_set_locked(old, new, len);
	pthread_mutex_unlock(&slab_lock);
}

/* The most page-sized pieces the slabs can ever hand out, all uses. */
size_t mem_pages_max(void)
{
	return MAX_SLABS * (SLAB_SIZE / PAGE_SIZE);
}

/* With slab_lock held: one more slab, cut into l's pieces. */
static bool slab_grow(struct piece_list *l)
{
	char *s;

	if (nslabs == MAX_SLABS)
		return false;
	s = zone_map(SLAB_SIZE, PAGE_SIZE, MAP_NORESERVE);
	if (!s)
		s = mmap(NULL, SLAB_SIZE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (s == MAP_FAILED)
		return false;
	slabs[nslabs++] = (uintptr_t)s;
	for (size_t off = SLAB_SIZE; off; off -= l->size) {
		struct free_piece *p = (struct free_piece *)(void *)(s + off - l->size);

		p->next = l->free;
		l->free = p;
	}
	return true;
}

static void *piece_take(struct piece_list *l)
{
	struct free_piece *p;

	pthread_mutex_lock(&slab_lock);
	if (!l->free && !slab_grow(l)) {
		pthread_mutex_unlock(&slab_lock);
		return NULL;
	}
	p = l->free;
	l->free = p->next;
	pthread_mutex_unlock(&slab_lock);
	return p;
}

static void piece_put(struct piece_list *l, void *piece)
{
	struct free_piece *p = piece;

	pthread_mutex_lock(&slab_lock);
	p->next = l->free;
	l->free = p;
	pthread_mutex_unlock(&slab_lock);
}

static void *slab_page(void)
{
	void *p = piece_take(&pages);

	if (p)
		memset(p, 0, PAGE_SIZE);
	return p;
}

/* BOUNCE_BYTES of the library's own memory, not zeroed, not populated. */
void *mem_bounce_take(void)
{
	return piece_take(&bounces);
}

void mem_bounce_put(void *p)
{
	piece_put(&bounces, p);
}

void mem_own_map(void *p, size_t len)
{
	if (p)
		big_set(NULL, p, len);
}

void mem_disown_map(void *p)
{
	if (p)
		big_set(p, NULL, 0);
}

void mem_fork_lock(bool lock)
{
	if (lock)
		pthread_mutex_lock(&slab_lock);
	else
		pthread_mutex_unlock(&slab_lock);
}

bool mem_owns(uintptr_t start, uintptr_t end)
{
	bool hit = false;

	pthread_mutex_lock(&slab_lock);
	for (unsigned i = 0; i < nslabs && !hit; i++)
		hit = start < slabs[i] + SLAB_SIZE && end > slabs[i];
	for (unsigned i = 0; i < MAX_BIG && !hit; i++)
		hit = big[i].start && start < big[i].start + big[i].len && end > big[i].start;
	pthread_mutex_unlock(&slab_lock);
	return hit;
}

/* With slab_lock held: a mapping of len bytes for one object, zeroed. */
static struct mem_hdr *big_map(size_t len)
{
	void *m = zone_map(len, PAGE_SIZE, 0);

	if (!m)
		m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	return m == MAP_FAILED ? NULL : m;
}

static void big_unmap(struct mem_hdr *m, size_t len)
{
	if (zone_owns(m))
		zone_unmap(m, len);
	else
		munmap(m, len);
}

void *mem_alloc(size_t size)
{
	size_t len = page_up(size + sizeof(struct mem_hdr));
	struct mem_hdr *m;

	if (len < size)
		return NULL;
	if (len == PAGE_SIZE) {
		m = slab_page();
		if (!m)
			return NULL;
		m->len = 0;
		return m + 1;
	}
	pthread_mutex_lock(&slab_lock);
	m = big_map(len);
	if (m) {
		m->len = len;
		big_set_locked(NULL, m, len);
	}
	pthread_mutex_unlock(&slab_lock);
	return m ? m + 1 : NULL;	/* fresh anonymous memory is zeroed */
}

/*
 * Fault in all of a large allocation now, in one call: first touch costs
 * ~16 us a page in a VM, and tables used page by page on a migration's
 * path (a device's per-page arrays) should not pay it there.
 */
void mem_populate(void *p)
{
	struct mem_hdr *m = p;

	if (!p || !(--m)->len)
		return;
	madvise(m, m->len, MADV_POPULATE_WRITE);
}

void mem_free(void *p)
{
	struct mem_hdr *m = p;

	if (!p)
		return;
	m--;
	if (!m->len) {
		piece_put(&pages, m);
		return;
	}
	pthread_mutex_lock(&slab_lock);
	big_set_locked(m, NULL, 0);
	big_unmap(m, m->len);
	pthread_mutex_unlock(&slab_lock);
}

void *mem_map(size_t len, size_t align)
{
	char *m, *raw;

	pthread_mutex_lock(&slab_lock);
	m = zone_map(len, align, 0);
	pthread_mutex_unlock(&slab_lock);
	if (m)
		return m;
	raw = mmap(NULL, len + align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (raw == MAP_FAILED)
		return NULL;
	m = (char *)(((uintptr_t)raw + align - 1) & ~(align - 1));
	if (m > raw)
		munmap(raw, m - raw);
	munmap(m + len, raw + align - m);
	return m;
}

void mem_unmap(void *p, size_t len)
{
	pthread_mutex_lock(&slab_lock);
	if (zone_owns(p))
		zone_unmap(p, len);
	else
		munmap(p, len);
	pthread_mutex_unlock(&slab_lock);
}

void *mem_realloc(void *p, size_t size)
{
	size_t len = page_up(size + sizeof(struct mem_hdr));
	struct mem_hdr *m;
	void *n;

	if (!p)
		return mem_alloc(size);
	m = (struct mem_hdr *)p - 1;
	if (len <= (m->len ? m->len : PAGE_SIZE))
		return p;
	if (m->len) {
		struct mem_hdr *nm;

		/* moved and recorded at once: mem_owns must not see the old
		 * range, where the program may map something next.  In the
		 * zone, copied: a move would leave a hole in it */
		pthread_mutex_lock(&slab_lock);
		if (zone_owns(m)) {
			nm = big_map(len);
			if (nm) {
				memcpy(nm, m, m->len);
				big_unmap(m, m->len);
			}
		} else {
			nm = mremap(m, m->len, len, MREMAP_MAYMOVE);
			nm = nm == MAP_FAILED ? NULL : nm;
		}
		if (nm) {
			nm->len = len;
			big_set_locked(m, nm, len);
		}
		pthread_mutex_unlock(&slab_lock);
		return nm ? nm + 1 : NULL;
	}
	n = mem_alloc(size);
	if (n) {
		memcpy(n, p, PAGE_SIZE - sizeof(*m));
		mem_free(p);
	}
	return n;
}

/* ---- the library's threads ------------------------------------------------ */

#define LIB_STACK	(1ul << 20)

/*
 * Library threads take no signal of the program's, but SIGBUS stays open:
 * in a context that serves faults by signal (fault_signal.c) a fault of
 * theirs is a SIGBUS, and a blocked one kills the process.
 */
static void *lib_thread_main(void *arg)
{
	struct lib_thread *lt = arg;
	sigset_t bus;

	sigemptyset(&bus);
	sigaddset(&bus, SIGBUS);
	pthread_sigmask(SIG_UNBLOCK, &bus, NULL);
	return lt->fn(lt->arg);
}

int lib_thread_start(struct lib_thread *lt, const char *name, void *(*fn)(void *), void *arg)
{
	char *m = mem_alloc(LIB_STACK + 2 * PAGE_SIZE), *base;
	pthread_attr_t a;
	int r;

	if (!m)
		return -ENOMEM;
	/* a guard page below the stack, which grows down onto it */
	base = (char *)page_up((uintptr_t)m);
	mprotect(base, PAGE_SIZE, PROT_NONE);
	pthread_attr_init(&a);
	r = pthread_attr_setstack(&a, base + PAGE_SIZE, LIB_STACK);
	lt->fn = fn;
	lt->arg = arg;
	if (!r)
		r = pthread_create(&lt->t, &a, lib_thread_main, lt);
	pthread_attr_destroy(&a);
	if (r) {
		mem_free(m);
		return -r;
	}
	lt->stack = m;
	pthread_setname_np(lt->t, name);
	return 0;
}

void lib_thread_join(struct lib_thread *lt)
{
	pthread_join(lt->t, NULL);
	mem_free(lt->stack);
	lt->stack = NULL;
}
