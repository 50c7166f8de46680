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

/*
 * The region counts against RLIMIT_AS (780 MiB of it for six slots), so
 * under a limit it takes at most a quarter of what the limit leaves (the
 * program and its devices need the rest), and fewer slots again where the
 * kernel refuses: migrations then find every slot busy sooner and wait for
 * the worker's frees.
 */
static unsigned arena_want(void)
{
	size_t fit = addr_space_left() / 4 / SLOT_SIZE;

	if (fit < ARENA_MIN_SLOTS)
		return ARENA_MIN_SLOTS;
	return fit < ARENA_SLOTS ? (unsigned)fit : ARENA_SLOTS;
}

int arena_init(struct uhmm *h)
{
	char *raw = MAP_FAILED;
	unsigned n;

	for (n = arena_want(); n >= ARENA_MIN_SLOTS; n--) {
		raw = mmap(NULL, n * SLOT_SIZE + BLOCK_SIZE, PROT_NONE,
			   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		if (raw != MAP_FAILED)
			break;
	}
	if (raw == MAP_FAILED)
		return -ENOMEM;
	/* 2 MiB aligned: a slot can be congruent with any address */
	h->arena = (char *)(((uintptr_t)raw + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1));
	h->arena_slots = n;
	return 0;
}

void arena_fini(struct uhmm *h)
{
	if (h->arena)
		munmap(h->arena, h->arena_slots * SLOT_SIZE);
}

bool arena_owns(const struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uintptr_t a = (uintptr_t)h->arena;

	return h->arena && start < a + h->arena_slots * SLOT_SIZE && end > a;
}

/*
 * An address for len bytes congruent with `at` modulo 2 MiB (so huge pages
 * and whole page tables move), in a free slot.  With h->lock held.  When
 * every slot holds pages waiting for the worker, they are freed here.
 */
char *arena_get(struct uhmm *h, uintptr_t at, size_t len)
{
	unsigned i;

	if (len + BLOCK_SIZE > SLOT_SIZE)
		return NULL;
	for (int tries = 0; tries < 2; tries++) {
		pthread_mutex_lock(&h->q.lock);
		for (i = 0; i < h->arena_slots && (h->arena_busy & (1u << i)); i++)
			;
		if (i < h->arena_slots)
			h->arena_busy |= 1u << i;
		pthread_mutex_unlock(&h->q.lock);
		if (i < h->arena_slots)
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
