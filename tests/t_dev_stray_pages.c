/* SPDX-License-Identifier: MIT */
/*
 * A device with free pages gives them, wherever they are.  Device memory
 * is cut into chunks, each bound to one aligned block of addresses; a page
 * whose own chunk has its slot taken (pages moved there by mremap keep
 * their device pages) goes to a free page elsewhere.  When the only free
 * pages were in a chunk no block had bound yet, the allocator did not look
 * there: a migration to a device a third empty said -ENOMEM, and a device
 * write to READ_MOSTLY pages, which then invalidated its own mirror for
 * nothing each round, gave -EBUSY after a second (the stress model,
 * SM_MALLOC_DEVICE_WRITES).
 *
 * 96-page COHERENT device, chunks of 32 pages (128 KiB): X (a block's
 * worth) and Y fill two chunks; X is mremapped away; a page Z mapped where
 * X was wants X's chunk, whose slots X's pages still hold; the third chunk
 * is free.  Z migrates with NOEVICT, nothing is evicted, every byte stays.
 * Then the same from several threads at once, each with its own Z.
 */
#define _GNU_SOURCE
#include <pthread.h>

#include "util.h"

#define BLK	(128 * 1024)
#define NTHREADS 4

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

/* X and Y on the device (two full chunks), then X moved away; returns
 * where X was, unmapped now, and where X is. */
static char *two_chunks_then_move(char **x2, char **y)
{
	char *x = ut_map_aligned(BLK, BLK);
	char *dst = ut_map_aligned(BLK, BLK);

	*y = ut_map_aligned(BLK, BLK);
	ut_fill64(x, BLK, 1);
	ut_fill64(*y, BLK, 2);
	is_int(uhmm_migrate(h, x, BLK, dev, 0), 0, "X to the device");
	is_int(uhmm_migrate(h, *y, BLK, dev, 0), 0, "Y to the device");
	*x2 = mremap(x, BLK, BLK, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	ok(*x2 == dst, "X mremapped away");
	is_int(ut_where_count(h, *x2, BLK, id), (long)(BLK / ut_page()),
	       "X's pages on the device at its new address");
	return x;
}

static char *map_at(char *where, size_t len)
{
	char *p = mmap(where, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	if (p != where)
		tap_bail("mmap at %p: %s", (void *)where, strerror(errno));
	return p;
}

static void one_page(void)
{
	struct uhmm_stats s0, s1;
	char *x, *x2, *y, *z;
	int rc;

	x = two_chunks_then_move(&x2, &y);
	z = map_at(x, ut_page());
	ut_fill64(z, ut_page(), 3);
	uhmm_stats(h, &s0);
	rc = uhmm_migrate(h, z, ut_page(), dev, UHMM_MIGRATE_NOEVICT);
	uhmm_stats(h, &s1);
	is_int(rc, 0, "a page whose chunk is full migrates NOEVICT to a device a third free");
	is_int(ut_where_count(h, z, ut_page(), id), 1, "it is on the device");
	is_int((long)(s1.evictions - s0.evictions), 0, "nothing evicted for it");
	is_int(ut_dev_used(dev), BLK * 2 + ut_page(), "used: two chunks and the page");
	ut_ok64(x2, BLK, 1, "X at its new address");
	ut_ok64(y, BLK, 2, "Y");
	ut_ok64(z, ut_page(), 3, "the page");
	is_int(uhmm_migrate(h, x2, BLK, NULL, 0), 0, "X home");
	is_int(uhmm_migrate(h, y, BLK, NULL, 0), 0, "Y home");
	is_int(uhmm_migrate(h, z, ut_page(), NULL, 0), 0, "the page home");
	is_int(ut_dev_used(dev), 0, "the device empty again");
	ut_ok64(z, ut_page(), 3, "the page at home");
	munmap(x2, BLK);
	munmap(y, BLK);
	munmap(z, ut_page());
}

struct stray {
	pthread_t th;
	char *z;
	int rc;
};

static void *migrate_stray(void *arg)
{
	struct stray *s = arg;

	s->rc = uhmm_migrate(h, s->z, ut_page(), dev, UHMM_MIGRATE_NOEVICT);
	return NULL;
}

/* Each thread's page in the same full chunk's block: they take free
 * pages of the free chunk at once, no two the same. */
static void threads(void)
{
	struct stray s[NTHREADS];
	char *x, *x2, *y;
	int bad = 0;

	x = two_chunks_then_move(&x2, &y);
	for (int i = 0; i < NTHREADS; i++) {
		s[i].z = map_at(x + (size_t)i * 2 * ut_page(), ut_page());
		ut_fill64(s[i].z, ut_page(), 10 + (unsigned)i);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&s[i].th, NULL, migrate_stray, &s[i]);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(s[i].th, NULL);
		bad += s[i].rc != 0;
	}
	is_int(bad, 0, "%d threads' pages, each in a full chunk's block, migrate NOEVICT",
	       NTHREADS);
	for (int i = 0; i < NTHREADS; i++) {
		char what[32];

		snprintf(what, sizeof(what), "thread %d's page", i);
		is_int(ut_where_count(h, s[i].z, ut_page(), id), 1, "%s on the device", what);
		ut_ok64(s[i].z, ut_page(), 10 + (unsigned)i, what);
	}
	is_int(ut_dev_used(dev), BLK * 2 + NTHREADS * ut_page(),
	       "used: two chunks and a page per thread (no page given twice)");
	ut_ok64(x2, BLK, 1, "X");
	ut_ok64(y, BLK, 2, "Y");
	for (int i = 0; i < NTHREADS; i++)
		munmap(s[i].z, ut_page());
	munmap(x2, BLK);
	munmap(y, BLK);
}

int main(void)
{
	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "stray", 3 * BLK);
	id = ut_dev_id(dev);
	one_page();
	threads();
	uhmm_close(h);
	return tap_done();
}
