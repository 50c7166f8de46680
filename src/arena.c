// SPDX-License-Identifier: MIT
/*
 * Address space of our own for the memory a migration holds in its hands:
 * staging buffers and the pages it moved out of the program's way.  Left to
 * the kernel, those would land in any hole, including one the program has
 * just made and is about to fill (mmap MAP_FIXED) or unmap again; then the
 * program would clobber our copy, or our mprotect would change its memory.
 * A reserved region (PROT_NONE, nothing committed) cut into slots of one
 * batch each keeps them apart; a slot given back is reserved again, which
 * also frees its pages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sys/mman.h>

#include "internal.h"
#include "migrate.h"

#define SLOT_SIZE	(BATCH_PAGES * PAGE_SIZE + BLOCK_SIZE)

static int reserve(void *at, size_t len, int extra)
{
	void *p = mmap(at, len, PROT_NONE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | extra, -1, 0);

	return p == MAP_FAILED ? -errno : 0;
}

int arena_init(struct uhmm *h)
{
	char *raw = mmap(NULL, ARENA_SLOTS * SLOT_SIZE + BLOCK_SIZE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (raw == MAP_FAILED)
		return -ENOMEM;
	/* 2 MiB aligned: a slot can be congruent with any address */
	h->arena = (char *)(((uintptr_t)raw + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1));
	return 0;
}

void arena_fini(struct uhmm *h)
{
	if (h->arena)
		munmap(h->arena, ARENA_SLOTS * SLOT_SIZE);
}

bool arena_owns(const struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uintptr_t a = (uintptr_t)h->arena;

	return h->arena && start < a + ARENA_SLOTS * SLOT_SIZE && end > a;
}

/*
 * An address for len bytes congruent with `at` modulo 2 MiB (so huge pages
 * and whole page tables move), in a free slot.  With h->lock held.  When
 * every slot holds pages waiting for the worker, they are freed here.
 */
char *arena_get(struct uhmm *h, uintptr_t at, size_t len)
{
	int i;

	if (len + BLOCK_SIZE > SLOT_SIZE)
		return NULL;
	for (int tries = 0; tries < 2; tries++) {
		pthread_mutex_lock(&h->q.lock);
		for (i = 0; i < ARENA_SLOTS && (h->arena_busy & (1u << i)); i++)
			;
		if (i < ARENA_SLOTS)
			h->arena_busy |= 1u << i;
		pthread_mutex_unlock(&h->q.lock);
		if (i < ARENA_SLOTS)
			return h->arena + (size_t)i * SLOT_SIZE + (at & (BLOCK_SIZE - 1));
		trash_flush(h);
	}
	return NULL;
}

/* Give back the slot holding addr: its pages are freed, its range ours again. */
void arena_put(struct uhmm *h, void *addr)
{
	size_t i = ((char *)addr - h->arena) / SLOT_SIZE;

	if (reserve(h->arena + i * SLOT_SIZE, SLOT_SIZE, MAP_FIXED))
		return;		/* keep it busy rather than lose the range */
	pthread_mutex_lock(&h->q.lock);
	h->arena_busy &= ~(1u << i);
	pthread_mutex_unlock(&h->q.lock);
}
