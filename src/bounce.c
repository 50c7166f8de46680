// SPDX-License-Identifier: MIT
/*
 * A small window coming back from a private device lands in the serving
 * thread's bounce buffer, and UFFDIO_COPY copies it into the program's
 * range.  For a few pages that is cheaper than a pool page moved into
 * place: UFFDIO_MOVE unmaps the pool's page (a TLB flush) and the pool must
 * be populated again (a page allocated and zeroed), while the copy takes a
 * free page unzeroed and reads a buffer that stays in the cache.  One
 * buffer per thread, so that threads serving faults at once (several fault
 * threads, faults served by signal) need no lock to use theirs.
 *
 * The buffers are carved from 2 MiB regions of the library's own memory
 * (mem.c: never part of a snapshot or a migration), kept for the life of
 * the process: a buffer mapped for each thread would land in whatever hole
 * the program just made - the very place a program's MAP_FIXED_NOREPLACE
 * or a mirror's snapshot expects nothing.  A thread that exits gives its
 * buffer back for the next one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "internal.h"

#define REGION_BYTES	BLOCK_SIZE

struct free_buffer {
	struct free_buffer *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct free_buffer *free_list;
static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_made;
static __thread char *mine;

static void give_back(void *p)
{
	struct free_buffer *f = p;

	pthread_mutex_lock(&lock);
	f->next = free_list;
	free_list = f;
	pthread_mutex_unlock(&lock);
}

/*
 * Held across fork (fork.c), so that the child never inherits it taken.
 * Taken there after the contexts, as everywhere (a buffer is taken with
 * the context held), and before mem.c's lock (grow() takes that one).
 */
void bounce_fork_lock(bool take)
{
	if (take)
		pthread_mutex_lock(&lock);
	else
		pthread_mutex_unlock(&lock);
}

static void make_key(void)
{
	key_made = pthread_key_create(&key, give_back) == 0;
}

/* With the lock held: one more region's buffers on the free list. */
static bool grow(void)
{
	char *r = mmap(NULL, REGION_BYTES, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (r == MAP_FAILED)
		return false;
	mem_own_map(r, REGION_BYTES);
	for (size_t off = REGION_BYTES; off > 0; off -= BOUNCE_BYTES) {
		struct free_buffer *f = (struct free_buffer *)(void *)(r + off - BOUNCE_BYTES);

		f->next = free_list;
		free_list = f;
	}
	return true;
}

static char *take(void)
{
	struct free_buffer *f;

	pthread_mutex_lock(&lock);
	if (!free_list && !grow()) {
		pthread_mutex_unlock(&lock);
		return NULL;
	}
	f = free_list;
	free_list = f->next;
	pthread_mutex_unlock(&lock);
	return (char *)f;
}

/*
 * The calling thread's buffer, populated (its pages are never first
 * touched on a fault's way), or NULL.  No allocation of the C library's:
 * the thread may be serving a fault it took inside malloc.
 */
char *bounce_buffer(void)
{
	char *p;

	if (mine)
		return mine;
	pthread_once(&key_once, make_key);
	if (!key_made)
		return NULL;
	p = take();
	if (!p)
		return NULL;
	if (madvise(p, BOUNCE_BYTES, MADV_POPULATE_WRITE) || pthread_setspecific(key, p)) {
		give_back(p);
		return NULL;
	}
	mine = p;
	return p;
}
