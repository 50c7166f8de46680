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
 * The buffers come from the library's slabs (mem.c: never part of a
 * snapshot or a migration), kept for the life of the process: a buffer
 * mapped for each thread would land in whatever hole the program just
 * made - the very place a program's MAP_FIXED_NOREPLACE or a mirror's
 * snapshot expects nothing.  A thread that exits gives its buffer back for
 * the next one.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/mman.h>

#include "internal.h"

static pthread_key_t key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_made;
static __thread char *mine;

static void make_key(void)
{
	key_made = pthread_key_create(&key, mem_bounce_put) == 0;
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
	p = mem_bounce_take();
	if (!p)
		return NULL;
	if (madvise(p, BOUNCE_BYTES, MADV_POPULATE_WRITE) || pthread_setspecific(key, p)) {
		mem_bounce_put(p);
		return NULL;
	}
	mine = p;
	return p;
}
