/* SPDX-License-Identifier: MIT */
/*
 * Hazard 1 (ARCHITECTURE.md): a page on a COHERENT device is a shared file
 * mapping, on which MADV_DONTNEED by itself would not zero-fill.  uhmm
 * keeps the anonymous-memory promise: right after madvise(MADV_DONTNEED)
 * returns, the pages read as zeros, the device pages are freed (used
 * drops), and the rest of the range is untouched.  Also MADV_REMOVE, from
 * several threads at once, and glibc's own arenas: threads whose heap pages
 * were migrated free everything, malloc_trim(0), then calloc'd memory must
 * be all zeros.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

/* ---- part 3: several threads, DONTNEED at once ---- */
#define NT 4
static pthread_barrier_t bar;
static uint8_t *mt_base;
static size_t mt_len;
static unsigned long mt_bad[NT];

static void *mt_dontneed(void *arg)
{
	int t = (int)(intptr_t)arg;
	uint8_t *mine = mt_base + (size_t)t * mt_len;

	pthread_barrier_wait(&bar);
	for (int k = 0; k < 8; k++) {
		uint8_t *q = mine + (size_t)k * (mt_len / 8);
		size_t ql = mt_len / 8;
		if (madvise(q, ql, MADV_DONTNEED))
			mt_bad[t]++;
		else if (ut_check_zero(q, ql) != SIZE_MAX)
			mt_bad[t]++;
	}
	return NULL;
}

/* ---- part 4: glibc arenas ---- */
struct blk {
	uint8_t *p;
	size_t size;
};
#define MAXB 512
struct arena_thread {
	pthread_t th;
	int t;
	unsigned seed;
	size_t budget;
	struct blk b[MAXB];
	int nb;
	unsigned long nonzero_bytes, nonzero_blocks, calloc_blocks;
};
static pthread_barrier_t abar;
static int rounds;

static size_t next_size(unsigned *s)
{
	*s = *s * 1103515245u + 12345u;
	return 64 * 1024 + (size_t)((*s >> 8) % (960 * 1024));	/* 64 KiB .. 1 MiB */
}

static void *arena_worker(void *arg)
{
	struct arena_thread *a = arg;

	for (int r = 0; r < rounds; r++) {
		size_t total = 0;
		unsigned s = a->seed + (unsigned)r * 77;

		a->nb = 0;
		while (total < a->budget && a->nb < MAXB) {
			size_t sz = next_size(&s);
			uint8_t *p = malloc(sz);
			if (!p)
				break;
			memset(p, 0xA5 ^ a->t, sz);
			a->b[a->nb].p = p;
			a->b[a->nb].size = sz;
			a->nb++;
			total += sz;
		}
		pthread_barrier_wait(&abar);	/* 1: main migrates */
		pthread_barrier_wait(&abar);	/* 2: migrated */
		for (int i = a->nb - 1; i >= 0; i--)
			free(a->b[i].p);
		pthread_barrier_wait(&abar);	/* 3: main trims */
		pthread_barrier_wait(&abar);	/* 4: trimmed */
		s = a->seed + (unsigned)r * 77 + 1;
		for (int i = 0; i < a->nb; i++) {
			size_t sz = next_size(&s);
			uint8_t *p = calloc(1, sz);
			if (!p)
				break;
			a->calloc_blocks++;
			for (size_t k = 0; k < sz; k++)
				if (p[k]) {
					size_t nz = 0;
					for (size_t m = k; m < sz; m++)
						nz += p[m] != 0;
					a->nonzero_bytes += nz;
					a->nonzero_blocks++;
					break;
				}
			a->b[i].p = p;
			a->b[i].size = sz;
		}
		for (int i = 0; i < a->nb; i++)
			free(a->b[i].p);
		pthread_barrier_wait(&abar);	/* 5: round done */
	}
	return NULL;
}

int main(void)
{
	size_t len = 8 * UT_MiB;
	size_t used0, used1;
	uint8_t *p;
	int rc;

	ut_init(240);
	/* Keep 64 KiB - 1 MiB blocks in the arenas rather than in mmap'd chunks. */
	mallopt(M_MMAP_THRESHOLD, 8 * 1024 * 1024);
	h = ut_open();
	dev = ut_sim(h, "sim", 256 * UT_MiB);
	id = ut_dev_id(dev);

	/* ---- part 1: DONTNEED, then a uhmm call, then read ---- */
	p = ut_map(len);
	ut_fill64(p, len, 131);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "8 MiB to the device");
	ut_check_where(h, p, len, id, "before madvise");
	used0 = ut_dev_used(dev);
	is_int(used0, len, "device used = 8 MiB");

	ok(madvise(p + 1 * UT_MiB, 2 * UT_MiB, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) on 2 MiB of it");
	{
		int l[4];
		uhmm_where(h, p, 4 * ut_page(), l);	/* any uhmm call */
	}
	used1 = ut_dev_used(dev);
	ok(used1 <= used0 - 2 * UT_MiB, "device used dropped by the 2 MiB (%zu -> %zu)", used0, used1);
	ut_okzero(p + 1 * UT_MiB, 2 * UT_MiB, "the DONTNEED'd part");
	ut_ok64(p, 1 * UT_MiB, 131, "the part before");
	{
		/* pattern 131 continues at word offset 3 MiB / 8 */
		size_t bad = 0;
		const uint64_t *w = (const uint64_t *)(const void *)(p + 3 * UT_MiB);
		for (size_t k = 0; k < 5 * UT_MiB / 8; k++)
			bad += w[k] != ut_pat64(131, 3 * UT_MiB / 8 + k);
		is_int(bad, 0, "the part after");
	}

	/* ---- part 2: DONTNEED, then read at once, no uhmm call between ---- */
	ok(madvise(p + 5 * UT_MiB, UT_MiB + 4096, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) on another 1 MiB + 4 KiB");
	ut_okzero(p + 5 * UT_MiB, UT_MiB + 4096, "read right after madvise returned");
	ok(madvise(p + 7 * UT_MiB + 3 * 4096, 4096, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) on one page");
	ut_okzero(p + 7 * UT_MiB + 3 * 4096, 4096, "that page, right after");
	ok(*(volatile uint64_t *)(p + 7 * UT_MiB + 4 * 4096) == ut_pat64(131, (7 * UT_MiB + 4 * 4096) / 8),
	   "its neighbour page intact");

	/* Written again after DONTNEED: the new data sticks. */
	memset(p + 1 * UT_MiB, 0x3c, 2 * UT_MiB);
	{
		size_t bad = 0;
		for (size_t k = 0; k < 2 * UT_MiB; k++)
			bad += p[1 * UT_MiB + k] != 0x3c;
		is_int(bad, 0, "written again after DONTNEED");
	}

	/* MADV_REMOVE: handled as DONTNEED. */
	rc = madvise(p + 4 * UT_MiB, 64 * 1024, MADV_REMOVE);
	is_int(rc, 0, "madvise(MADV_REMOVE) on device pages");
	if (rc == 0)
		ut_okzero(p + 4 * UT_MiB, 64 * 1024, "MADV_REMOVE'd part");
	rc = madvise(p + 4 * UT_MiB + 64 * 1024, 64 * 1024, MADV_FREE);
	diag("madvise(MADV_FREE) on device pages: %s", rc ? strerror(errno) : "0");

	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "back to system memory");
	ut_okzero(p + 5 * UT_MiB, UT_MiB + 4096, "DONTNEED'd part, back in system memory");
	ut_ok64(p, 1 * UT_MiB, 131, "first MiB, back in system memory");
	{
		size_t bad = 0;
		for (size_t k = 0; k < 2 * UT_MiB; k++)
			bad += p[1 * UT_MiB + k] != 0x3c;
		is_int(bad, 0, "the rewritten part, back in system memory");
	}
	munmap(p, len);

	/* ---- part 3: several threads DONTNEED their parts at once ---- */
	{
		pthread_t th[NT];
		unsigned long bad = 0;

		mt_len = 4 * UT_MiB;
		mt_base = ut_map(mt_len * NT);
		ut_fill64(mt_base, mt_len * NT, 132);
		rc = uhmm_migrate(h, mt_base, mt_len * NT, dev, 0);
		is_int(rc, 0, "%d x 4 MiB to the device", NT);
		pthread_barrier_init(&bar, NULL, NT);
		for (int t = 0; t < NT; t++)
			pthread_create(&th[t], NULL, mt_dontneed, (void *)(intptr_t)t);
		for (int t = 0; t < NT; t++) {
			pthread_join(th[t], NULL);
			bad += mt_bad[t];
		}
		pthread_barrier_destroy(&bar);
		is_int(bad, 0, "%d threads' DONTNEEDs at once: each part read zeros right after", NT);
		uhmm_where(h, mt_base, ut_page(), (int[1]){0});
		is_int(ut_dev_used(dev), 0, "device used back to 0");
		munmap(mt_base, mt_len * NT);
	}

	/* ---- part 4: glibc's arenas ---- */
	{
		static struct arena_thread at[NT];
		unsigned long nzb = 0, nzbl = 0, cb = 0, migr_err = 0, nmig = 0;
		int first_err = 0;

		rounds = (int)ut_scaled(3, 1);
		if (UT_SANITIZED)
			diag("under a sanitizer malloc is the sanitizer's own, not glibc's arenas");
		pthread_barrier_init(&abar, NULL, NT + 1);
		for (int t = 0; t < NT; t++) {
			at[t].t = t;
			at[t].seed = 1000u * (unsigned)t + 17;
			at[t].budget = ut_scaled(24, 4) * UT_MiB;
			pthread_create(&at[t].th, NULL, arena_worker, &at[t]);
		}
		for (int r = 0; r < rounds; r++) {
			pthread_barrier_wait(&abar);	/* 1 */
			for (int t = 0; t < NT; t++)
				for (int i = 0; i < at[t].nb; i++) {
					size_t us = malloc_usable_size(at[t].b[i].p);
					rc = uhmm_migrate(h, at[t].b[i].p, us, dev, 0);
					nmig++;
					if (rc && !migr_err++)
						first_err = rc;
				}
			pthread_barrier_wait(&abar);	/* 2 */
			pthread_barrier_wait(&abar);	/* 3 */
			malloc_trim(0);
			pthread_barrier_wait(&abar);	/* 4 */
			pthread_barrier_wait(&abar);	/* 5 */
		}
		for (int t = 0; t < NT; t++) {
			pthread_join(at[t].th, NULL);
			nzb += at[t].nonzero_bytes;
			nzbl += at[t].nonzero_blocks;
			cb += at[t].calloc_blocks;
		}
		pthread_barrier_destroy(&abar);
		diag("%lu heap blocks migrated in %d rounds, %lu calloc'd afterwards", nmig, rounds, cb);
		is_int(migr_err, 0, "every heap block (arena memory) migrated to the device");
		if (migr_err)
			diag("first error %d (%s)", first_err, ut_err(first_err));
		ok(cb > 0, "calloc'd blocks after the frees and malloc_trim");
		is_int(nzbl, 0, "every calloc'd block is all zeros (%lu non-zero bytes)", nzb);
	}

	uhmm_close(h);
	return tap_done();
}
