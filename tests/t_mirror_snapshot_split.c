/* SPDX-License-Identifier: MIT */
/*
 * A big snapshot is written by two threads (the caller and uhmm's helper
 * thread, each half of the range): UHMM_SNAPSHOT_SPLIT=4 (MiB) here, so a
 * 16 MiB range splits and its 2 MiB blocks do not.  Over a range that
 * mixes populated, read (zero page) and untouched system pages, a
 * read-only part, a PROT_NONE part, a hole, pages on a PRIVATE device and
 * on a COHERENT one (where this kernel has them), whose halves meet in the
 * middle of such a mix:
 *  - the whole range's entries equal those of its blocks asked one by one;
 *  - the helper thread exists after the split, and not in a context
 *    opened with UHMM_SNAPSHOT_SPLIT=0, which answers the same entries;
 *  - four threads snapshot at once while the main thread migrates blocks
 *    in and out: every entry of every snapshot is one a page can have.
 */
#define _GNU_SOURCE
#include "private.h"

#define BLK	(2 * UT_MiB)
#define NBLK	8
#define LEN	(NBLK * BLK)
#define NT	4

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

static const struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };

static int snap(struct uhmm_mirror *m, void *p, size_t len, struct uhmm_pte *pt)
{
	int rc = -EBUSY;

	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(m, p, len, 0, pt);
	return rc;
}

struct world {
	struct uhmm *h;
	struct uhmm_dev *priv, *coh;
	struct uhmm_mirror *m;
	uint8_t *p;
};

/*
 * The mix, block by block (4 KiB pages within; the halves meet at block
 * 4): 0 populated; 1 read only (zero page) then its second half
 * untouched; 2 first half on the PRIVATE device; 3 PROT_READ, populated,
 * and a hole of 16 pages; 4 on the COHERENT device, or populated where
 * there is none; 5 PROT_NONE in part; 6 untouched; 7 whole on the PRIVATE
 * device.
 */
static void build(struct world *w)
{
	uint8_t *p = w->p;
	volatile uint8_t sink;

	memset(p, 0x11, BLK);
	for (size_t o = 0; o < BLK / 2; o += ut_page())
		sink = p[BLK + o];
	(void)sink;
	memset(p + 2 * BLK, 0x22, BLK);
	memset(p + 3 * BLK, 0x33, BLK);
	memset(p + 4 * BLK, 0x44, BLK);
	memset(p + 5 * BLK, 0x55, BLK);
	memset(p + 7 * BLK, 0x77, BLK);
	is_int(uhmm_migrate(w->h, p + 2 * BLK, BLK / 2, w->priv, 0), 0, "half a block to PRIVATE");
	is_int(uhmm_migrate(w->h, p + 7 * BLK, BLK, w->priv, 0), 0, "a whole block to PRIVATE");
	if (w->coh)
		is_int(uhmm_migrate(w->h, p + 4 * BLK, BLK, w->coh, 0), 0, "a block to COHERENT");
	ok(!mprotect(p + 3 * BLK, BLK, PROT_READ), "a block read-only");
	ok(!munmap(p + 3 * BLK + 64 * ut_page(), 16 * ut_page()), "a hole in it");
	ok(!mprotect(p + 5 * BLK + 100 * ut_page(), 200 * ut_page(), PROT_NONE),
	   "part of a block PROT_NONE");
}

static size_t differ(const struct uhmm_pte *a, const struct uhmm_pte *b, size_t n, size_t *first)
{
	size_t bad = 0;

	for (size_t i = 0; i < n; i++) {
		if (!memcmp(&a[i], &b[i], sizeof(a[i])))
			continue;
		if (!bad++)
			*first = i;
	}
	return bad;
}

static void test_equal(struct world *w, const char *ctx)
{
	size_t n = LEN / ut_page(), per = BLK / ut_page(), first = 0, bad;
	struct uhmm_pte *whole = calloc(n, sizeof(*whole)), *parts = calloc(n, sizeof(*parts));
	int rc = 0;

	if (!whole || !parts)
		tap_bail("calloc");
	is_int(snap(w->m, w->p, LEN, whole), 0, "%s: the snapshot of 16 MiB", ctx);
	for (int b = 0; b < NBLK && !rc; b++)
		rc = snap(w->m, w->p + (size_t)b * BLK, BLK, parts + (size_t)b * per);
	is_int(rc, 0, "%s: the snapshots of its 8 blocks", ctx);
	bad = differ(whole, parts, n, &first);
	is_int((long long)bad, 0, "%s: the whole range's entries are its blocks' entries", ctx);
	if (bad)
		diag("first at page %zu: loc %d flags %#x host %#llx, against loc %d flags %#x "
		     "host %#llx", first, whole[first].loc, whole[first].flags,
		     (unsigned long long)whole[first].host, parts[first].loc, parts[first].flags,
		     (unsigned long long)parts[first].host);
	free(whole);
	free(parts);
}

/* ---- four threads at once, and migrations ------------------------------ */

static volatile int stop;
static struct world *shared_world;

struct snapper {
	pthread_t th;
	unsigned long rounds, bad, errs;
};

/* An entry a page of this range may have, whatever moved meanwhile. */
static bool plausible(const struct world *w, const struct uhmm_pte *e, size_t i)
{
	uintptr_t a = (uintptr_t)w->p + i * ut_page();

	if (e->flags & UHMM_PTE_ERROR)
		return e->loc == UHMM_LOC_NONE;
	if (!(e->flags & UHMM_PTE_VALID))
		return true;
	if (e->loc == UHMM_LOC_SYSTEM)
		return e->host == a;
	if (e->loc == ut_dev_id(w->priv))
		return e->host == 0;
	return w->coh && e->loc == ut_dev_id(w->coh) && e->host;
}

static void *snapshot_loop(void *arg)
{
	struct snapper *s = arg;
	struct world *w = shared_world;
	size_t n = LEN / ut_page();
	struct uhmm_pte *pt = calloc(n, sizeof(*pt));

	if (!pt)
		return NULL;
	while (!__atomic_load_n(&stop, __ATOMIC_RELAXED)) {
		if (snap(w->m, w->p, LEN, pt)) {
			s->errs++;
			continue;
		}
		for (size_t i = 0; i < n; i++)
			s->bad += !plausible(w, &pt[i], i);
		s->rounds++;
	}
	free(pt);
	return NULL;
}

static void test_threads(struct world *w)
{
	struct snapper s[NT];
	unsigned long moves = ut_scaled(60, 10), rounds = 0, bad = 0, errs = 0;
	int merr = 0;

	shared_world = w;
	stop = 0;
	for (int t = 0; t < NT; t++) {
		s[t] = (struct snapper){ 0 };
		if (pthread_create(&s[t].th, NULL, snapshot_loop, &s[t]))
			tap_bail("pthread_create");
	}
	for (unsigned long i = 0; i < moves; i++) {
		uint8_t *b = w->p + (i % 2 ? 0 : 6 * BLK);

		merr |= uhmm_migrate(w->h, b, BLK, i % 4 < 2 ? w->priv : NULL, 0);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELAXED);
	for (int t = 0; t < NT; t++) {
		pthread_join(s[t].th, NULL);
		rounds += s[t].rounds;
		bad += s[t].bad;
		errs += s[t].errs;
	}
	is_int(merr, 0, "%lu migrations beside the snapshots", moves);
	ok(rounds >= NT, "%d threads took %lu snapshots (%lu gave up on -EBUSY)", NT, rounds, errs);
	is_int((long long)bad, 0, "every entry of every snapshot is one its page may have");
}

static void open_world(struct world *w, const char *split)
{
	setenv("UHMM_SNAPSHOT_SPLIT", split, 1);
	w->h = ut_open();
	unsetenv("UHMM_SNAPSHOT_SPLIT");
	w->priv = ut_psim(w->h, "split-p", 8 * UT_MiB);
	w->coh = ut_csim_try(w->h, "split-c", 8 * UT_MiB);
	if (uhmm_mirror_open(w->priv, &ops, NULL, &w->m))
		tap_bail("uhmm_mirror_open");
	w->p = ut_map_aligned(LEN, BLK);
	build(w);
}

static void close_world(struct world *w)
{
	uhmm_mirror_close(w->m);
	uhmm_close(w->h);
	munmap(w->p, LEN);
}

int main(void)
{
	struct world w;

	ut_init(300);
	open_world(&w, "4");
	test_equal(&w, "split at 4 MiB");
	if (sysconf(_SC_NPROCESSORS_ONLN) >= 2)
		is_int(ut_threads_named("uhmm-helper"), 1, "the helper thread wrote half of it");
	else
		skip("one CPU: snapshots are never split");
	test_threads(&w);
	close_world(&w);
	is_int(ut_threads_named_settled("uhmm-helper", 0), 0, "uhmm_close ended the helper thread");

	open_world(&w, "0");
	test_equal(&w, "never split");
	is_int(ut_threads_named("uhmm-helper"), 0, "UHMM_SNAPSHOT_SPLIT=0: no helper thread");
	close_world(&w);
	return tap_done();
}
