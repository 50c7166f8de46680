/* SPDX-License-Identifier: MIT */
/*
 * Hazard 1, after the madvise: MADV_DONTNEED of COHERENT pages is applied
 * by uhmm after madvise has returned, and the program goes on meanwhile.
 * Whatever it does next must be left alone: munmap leaves nothing mapped
 * behind; new memory mapped at the same address keeps its data; a fork
 * child reads zeros there, not the device's file, even after the device
 * has reused its memory; mremap takes the discarded pages along as zeros.
 * The discarded pages count as free at once (used drops), and a device
 * that needs room, with or without eviction, gets them back.  Also from
 * four threads at once.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/wait.h>
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

#define ZONE_LEN	(64 * 1024)

/* Nothing at all mapped over [p, p + len)? */
static bool unmapped(const void *p, size_t len)
{
	return ut_maps_count(p, len) == 0;
}

/*
 * An address no one uses, ours to map at with MAP_FIXED_NOREPLACE: a hole
 * of ZONE_LEN between two PROT_NONE guards, so that only a mapping of that
 * size or less (none of this test's) can land in it.
 */
static uint8_t *zone(void)
{
	uint8_t *p = mmap(NULL, 3 * ZONE_LEN, PROT_NONE,
			  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);

	if (p == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	munmap(p + ZONE_LEN, ZONE_LEN);
	return p + ZONE_LEN;
}

static uint8_t *map_at(uint8_t *at, size_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

struct round_result {
	unsigned long left, clobbered, errors, foreign, rounds;
};

/*
 * Something is mapped in the zone where nothing of ours should be.  Left
 * by uhmm (registered with its userfaultfd, as its zero pages are), or a
 * mapping of someone else's that the kernel put in the hole (a library
 * thread's, libc's).  Either way the zone is given up.
 */
static bool taken(const uint8_t *z, struct round_result *res)
{
	if (ut_uffd_armed(z))
		res->left++;
	else
		res->foreign++;
	return false;
}

/*
 * One round at z: device pages, DONTNEED, munmap, new memory at once at
 * the same address, then a uhmm call (everything applied by then).  False
 * when the zone is given up.
 */
static bool one_round(uint8_t *z, unsigned seed, struct round_result *res)
{
	uint8_t *p = map_at(z, ZONE_LEN);
	int loc;

	if (!p)
		return taken(z, res);
	res->rounds++;
	ut_fill64(p, ZONE_LEN, seed);
	if (uhmm_migrate(h, p, ZONE_LEN, dev, 0))
		res->errors++;
	madvise(p, ZONE_LEN, MADV_DONTNEED);
	munmap(p, ZONE_LEN);
	p = map_at(z, ZONE_LEN);
	if (!p)
		return taken(z, res);
	ut_fill64(p, ZONE_LEN, seed + 1);
	uhmm_where(h, p, 1, &loc);	/* any uhmm call: all events applied */
	if (ut_check64(p, ZONE_LEN, seed + 1) != SIZE_MAX)
		res->clobbered++;
	munmap(p, ZONE_LEN);
	uhmm_where(h, z, 1, &loc);
	if (!unmapped(z, ZONE_LEN))
		return taken(z, res);
	return true;
}

/* rounds at fresh zones, a new one whenever one is given up */
static void rounds_at(unsigned long n, unsigned seed, struct round_result *res)
{
	uint8_t *z = zone();

	/* a zone taken before its first round (a thread's stack) costs none */
	while (res->rounds < n)
		if (!one_round(z, seed + 2 * (unsigned)res->rounds, res))
			z = zone();
}

static void check_rounds(const struct round_result *r, const char *what)
{
	diag("%s: %lu rounds; %lu times a mapping not ours took the zone", what,
	     r->rounds, r->foreign);
	ok(r->rounds > 0, "%s: rounds ran", what);
	is_int(r->errors, 0, "%s: every migration", what);
	is_int(r->clobbered, 0, "%s: new memory at the same address kept its data", what);
	is_int(r->left, 0, "%s: nothing of uhmm's left mapped after munmap", what);
}

/* ---- four threads at once ---- */
#define NT 4
static struct round_result mt_res[NT];
static unsigned long mt_rounds;

static void *mt_worker(void *arg)
{
	int t = (int)(intptr_t)arg;

	rounds_at(mt_rounds, 1000 * (unsigned)t, &mt_res[t]);
	return NULL;
}

#define BLK	(2 * UT_MiB)

/* Words of [p + from, p + len) not holding pattern seed (which starts at p). */
static size_t tail_bad(const uint8_t *p, size_t from, size_t len, unsigned seed)
{
	const uint64_t *w = (const uint64_t *)(const void *)(p + from);
	size_t bad = 0;

	for (size_t k = 0; k < (len - from) / 8; k++)
		bad += w[k] != ut_pat64(seed, from / 8 + k);
	return bad;
}

static size_t second_half_bad(const uint8_t *p, size_t len, unsigned seed)
{
	return tail_bad(p, len / 2, len, seed);
}

/* ---- fork after DONTNEED ---- */
struct fork_arg {
	uint8_t *a, *b;
	size_t len;
};

static void child_reads(void *arg)
{
	struct fork_arg *f = arg;

	/* uhmm's context is the parent's: the child reads plain memory */
	if (ut_check_zero(f->a, f->len) != SIZE_MAX)
		_exit(2);
	if (f->b && ut_check64(f->b, f->len, 77) != SIZE_MAX)
		_exit(3);
	memset(f->a, 0x5a, f->len);	/* must not reach the parent */
}

/* Page i of the block is one of the 8 discarded ones. */
static bool discarded(size_t i)
{
	return i % 10 == 3 && i < 80;
}

/*
 * Eight discarded runs in one device mapping: a migration settles them
 * all (zeros) and moves the whole range, to another device and home.
 */
static void runs_then_migrate(void)
{
	struct uhmm_dev *d2 = ut_sim(h, "sim2", BLK);
	size_t pg = ut_page(), bad = 0;
	uint8_t *p = ut_map_aligned(BLK, BLK);
	int rc;

	ut_fill64(p, BLK, 81);
	rc = uhmm_migrate(h, p, BLK, dev, 0);
	is_int(rc, 0, "a block onto the device");
	for (size_t i = 0; i < BLK / pg; i++)
		if (discarded(i))
			madvise(p + i * pg, pg, MADV_DONTNEED);
	rc = uhmm_migrate(h, p, BLK, d2, 0);
	is_int(rc, 0, "with 8 discarded runs, to another device");
	ut_check_where(h, p, BLK, ut_dev_id(d2), "all of it there (the discarded pages as zeros)");
	rc = uhmm_migrate(h, p, BLK, NULL, 0);
	is_int(rc, 0, "and home");
	for (size_t i = 0; i < BLK / pg; i++) {
		const uint64_t *w = (const uint64_t *)(const void *)(p + i * pg);

		for (size_t k = 0; k < pg / 8; k++)
			bad += w[k] != (discarded(i) ? 0 : ut_pat64(81, i * pg / 8 + k));
	}
	is_int(bad, 0, "discarded pages zeros, the others their data");
	munmap(p, BLK);
	uhmm_dev_remove(d2);
}

/*
 * Every other page discarded, one madvise each: more runs than the
 * quarantine holds (16384).  Those past it are replaced by zeros at once,
 * as before the quarantine; every discarded page reads zeros either way,
 * and every one is freed.
 */
static void scattered_discards(void)
{
	size_t pg = ut_page(), runs = 16384 + 64, len = 2 * runs * pg;
	struct uhmm_dev *big = ut_sim(h, "big", len);
	size_t used0, bad = 0;
	uint8_t *p = ut_map(len);
	int rc;

	ut_fill64(p, len, 80);
	rc = uhmm_migrate(h, p, len, big, 0);
	is_int(rc, 0, "%zu MiB onto a device", len / UT_MiB);
	used0 = ut_dev_used(big);
	for (size_t i = 0; i < runs; i++)
		if (madvise(p + 2 * i * pg, pg, MADV_DONTNEED))
			bad++;
	is_int(bad, 0, "%zu single-page madvise(MADV_DONTNEED) calls", runs);
	uhmm_where(h, p, 1, (int[1]){0});
	is_int(ut_dev_used(big), used0 - runs * pg, "every discarded page freed");
	ok(ut_maps_summary(p, pg).with_path == 1,
	   "the first discarded page: still the device's mapping (quarantined)");
	ok(ut_maps_summary(p + len - 2 * pg, pg).with_path == 0,
	   "the last: replaced at once (past the quarantine's room)");
	/* each discarded page read is a fault that splits the mapping: one
	 * in 16 of the quarantined ones (tens of thousands of mappings make
	 * each look at /proc/self/maps slow), every one past the quarantine */
	bad = 0;
	for (size_t i = 0; i < runs; i++) {
		const uint64_t *w = (const uint64_t *)(const void *)(p + 2 * i * pg);

		for (size_t k = 0; k < pg / 8; k++) {
			if (i % 16 == 0 || i >= 16384)
				bad += w[k] != 0;
			bad += w[pg / 8 + k] != ut_pat64(80, (2 * i + 1) * pg / 8 + k);
		}
	}
	is_int(bad, 0, "discarded pages read zeros, the others their data");
	munmap(p, len);
	uhmm_where(h, p - pg, 1, (int[1]){0});
	is_int(ut_dev_used(big), 0, "device used 0 after munmap");
	rc = uhmm_migrate(h, (p = ut_map(len)), len, big, UHMM_MIGRATE_NOEVICT);
	is_int(rc, 0, "all of the device free again (NOEVICT migration of its size)");
	munmap(p, len);
	uhmm_dev_remove(big);
}

int main(void)
{
	struct round_result res = { 0 };
	size_t len = 4 * UT_MiB;
	uint8_t *a, *b;
	int rc;

	ut_init(300);
	h = ut_open();
	ut_require_coherent(h);
	dev = ut_sim(h, "sim", len);
	id = ut_dev_id(dev);

	/* ---- DONTNEED, munmap, mmap again: over and over ---- */
	rounds_at(ut_scaled(300, 40), 0, &res);
	check_rounds(&res, "DONTNEED, munmap, mmap at once");
	is_int(ut_dev_used(dev), 0, "device used back to 0");

	/* ---- the same from four threads ---- */
	{
		pthread_t th[NT];
		struct round_result all = { 0 };

		mt_rounds = ut_scaled(100, 20);
		for (int t = 0; t < NT; t++)
			pthread_create(&th[t], NULL, mt_worker, (void *)(intptr_t)t);
		for (int t = 0; t < NT; t++) {
			pthread_join(th[t], NULL);
			all.left += mt_res[t].left;
			all.clobbered += mt_res[t].clobbered;
			all.errors += mt_res[t].errors;
			all.foreign += mt_res[t].foreign;
			all.rounds += mt_res[t].rounds;
		}
		check_rounds(&all, "4 threads at once");
		is_int(ut_dev_used(dev), 0, "device used back to 0");
	}

	/* ---- the device needs the discarded pages back ---- */
	a = ut_map(len);
	b = ut_map(len);
	ut_fill64(a, len, 76);
	ut_fill64(b, len, 77);
	rc = uhmm_migrate(h, a, len, dev, 0);
	is_int(rc, 0, "A: 4 MiB onto the 4 MiB device");
	ok(madvise(a, len, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) of all of A");
	uhmm_where(h, a, 1, (int[1]){0});
	is_int(ut_dev_used(dev), 0, "device used 0 at once");
	ut_check_where(h, a, len, UHMM_LOC_NONE, "A after DONTNEED: not populated anywhere");
	rc = uhmm_migrate(h, b, len, dev, UHMM_MIGRATE_NOEVICT);
	is_int(rc, 0, "B: 4 MiB onto the device, NOEVICT: the discarded pages are free");
	ut_check_where(h, b, len, id, "B");
	ut_okzero(a, len, "A reads zeros");
	ut_ok64(b, len, 77, "B's data");

	/* fork: A (system zeros) and B (on the device, in A's old device
	 * pages) each as the parent sees them */
	{
		struct fork_arg f = { a, b, len };

		rc = ut_child(child_reads, &f);
		is_int(rc, 0, "fork child: A zeros, B's data");
		ut_okzero(a, len, "parent's A untouched by the child");
		ut_ok64(b, len, 77, "parent's B untouched by the child");
	}
	uhmm_migrate(h, b, len, NULL, 0);

	/* ---- fork right after DONTNEED, the pages not touched since ---- */
	rc = uhmm_migrate(h, b, len, dev, 0);
	is_int(rc, 0, "B onto the device again");
	ok(madvise(b, len / 2, MADV_DONTNEED) == 0, "DONTNEED of B's first half");
	{
		struct fork_arg f = { b, NULL, len / 2 };

		rc = ut_child(child_reads, &f);
		is_int(rc, 0, "fork child: the discarded half reads zeros");
		ut_okzero(b, len / 2, "parent: the discarded half, zeros, not the child's");
		is_int(second_half_bad(b, len, 77), 0, "parent: the other half");
	}

	uhmm_migrate(h, b, len, NULL, 0);
	munmap(b, len);

	/* ---- mremap of discarded pages: zeros there, freed at munmap ---- */
	b = ut_map_aligned(BLK, BLK);	/* one block: one mapping on the device */
	ut_fill64(b, BLK, 79);
	rc = uhmm_migrate(h, b, BLK, dev, 0);
	is_int(rc, 0, "a 2 MiB block onto the device");
	is_int(ut_maps_count(b, BLK), 1, "one mapping");
	ok(madvise(b, BLK, MADV_DONTNEED) == 0, "DONTNEED of all of it");
	{
		uint8_t *to = ut_map_aligned(BLK, BLK);
		void *m = mremap(b, BLK, BLK, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		struct fork_arg f = { to, NULL, BLK };

		ok(m == to, "mremap of the discarded device pages");
		if (m == to) {
			rc = ut_child(child_reads, &f);
			is_int(rc, 0, "fork child of the moved range reads zeros");
			ut_okzero(to, BLK, "the moved range reads zeros");
			munmap(to, BLK);
		} else {
			munmap(b, BLK);
		}
	}
	rc = uhmm_migrate(h, a, len, dev, UHMM_MIGRATE_NOEVICT);
	is_int(rc, 0, "A onto the device, NOEVICT: all of it free again");
	ut_okzero(a, len, "A, zeros on the device");
	uhmm_migrate(h, a, len, NULL, 0);
	munmap(a, len);

	/* ---- many discarded runs in one mapping, then migrations ---- */
	runs_then_migrate();

	/* ---- more scattered discards than uhmm keeps track of ---- */
	scattered_discards();

	/* ---- the device goes while pages are discarded ---- */
	a = ut_map(len);
	ut_fill64(a, len, 78);
	rc = uhmm_migrate(h, a, len, dev, 0);
	is_int(rc, 0, "A onto the device once more");
	madvise(a, UT_MiB, MADV_DONTNEED);
	rc = uhmm_dev_remove(dev);
	is_int(rc, 0, "uhmm_dev_remove with discarded pages");
	ut_okzero(a, UT_MiB, "the discarded part reads zeros after the removal");
	is_int(tail_bad(a, UT_MiB, len, 78), 0, "the rest came home with its data");
	munmap(a, len);
	uhmm_close(h);
	return tap_done();
}
