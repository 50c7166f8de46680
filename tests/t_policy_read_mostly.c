/* SPDX-License-Identifier: MIT */
/*
 * READ_MOSTLY, for a COHERENT and a PRIVATE sim device: a device read
 * makes read-only duplicates (uhmm_duplicates shows them, uhmm_where the
 * CPU's copy), the next read takes no fault round; the CPU's first write
 * collapses them and the device reads the new value; a device write
 * collapses them and the page moves to that device (as far as it has
 * room: a device's write never evicts for itself); UNSET_READ_MOSTLY,
 * munmap and eviction drop them and free their device pages.  Two
 * devices and the CPU reading while a thread writes per-page version
 * numbers: no reader ever sees a version older than one it saw before,
 * and all see the last one at the end.  Without userfaultfd write-protect
 * (UHMM_DISABLE) no duplicate is made and every read is still right.
 */
#define _GNU_SOURCE
#include <stdatomic.h>

#include "private.h"

#define LEN	(2 * UT_MiB)

static bool have_wp;

static uint64_t dup_bits(struct uhmm *h, const void *p, size_t len, bool all)
{
	size_t n = ut_npages(p, len);
	uint64_t *m = calloc(n, sizeof(*m)), acc = all ? ~0ull : 0;
	int rc = uhmm_duplicates(h, p, len, m);

	if (rc)
		tap_bail("uhmm_duplicates: %s", ut_err(rc));
	for (size_t i = 0; i < n; i++)
		acc = all ? acc & m[i] : acc | m[i];
	free(m);
	return acc;
}

static uint64_t bit(struct uhmm_dev *d)
{
	return 1ull << (ut_dev_id(d) - 1);
}

static void basics(struct uhmm *h, struct uhmm_dev *d, const char *kind)
{
	uint8_t *p = ut_map_aligned(LEN, 2 * UT_MiB), *buf = malloc(LEN);
	size_t used0 = ut_dev_used(d);
	int rc;

	ut_fill64(p, LEN, 11);
	is_int(uhmm_advise(h, p, LEN, UHMM_ADV_READ_MOSTLY, NULL), 0, "%s: READ_MOSTLY", kind);
	rc = uhmm_sim_read(d, p, buf, LEN);
	ok(rc >= 1, "%s: the first device read faults (%d rounds)", kind, rc);
	ok(!memcmp(buf, p, LEN), "%s: ... and reads the data", kind);
	ut_check_where(h, p, LEN, UHMM_LOC_SYSTEM, "uhmm_where reports the CPU's copy");
	if (!have_wp) {
		is_int(dup_bits(h, p, LEN, false), 0, "%s: without write-protect no duplicate", kind);
		free(buf);
		munmap(p, LEN);
		return;
	}
	is_int(dup_bits(h, p, LEN, true), bit(d), "%s: every page duplicated on the device", kind);
	is_int(ut_dev_used(d) - used0, LEN, "%s: the duplicates take device memory", kind);
	rc = uhmm_sim_read(d, p, buf, LEN);
	is_int(rc, 0, "%s: the second read takes no fault round", kind);

	/* the CPU writes one page: its duplicates go, the device sees it */
	p[5 * ut_page() + 8] ^= 0xff;
	ok(!(dup_bits(h, p + 5 * ut_page(), 1, false) & bit(d)),
	   "%s: the CPU's write collapsed that page's duplicate", kind);
	ok(dup_bits(h, p + LEN / 2, ut_page(), true) & bit(d),
	   "%s: pages far from it keep theirs", kind);
	rc = uhmm_sim_read(d, p, buf, LEN);
	ok(rc >= 0 && !memcmp(buf, p, LEN), "%s: the device reads the new value", kind);

	/* a device write: collapse, and the page lives on that device */
	memset(buf, 0x5a, ut_page());
	rc = uhmm_sim_write(d, p + 9 * ut_page(), buf, ut_page());
	ok(rc >= 0, "%s: a device write (%d)", kind, rc);
	ut_check_where(h, p + 9 * ut_page(), ut_page(), ut_dev_id(d),
		       "the device's write moved the page to it");
	is_int(dup_bits(h, p + 9 * ut_page(), ut_page(), false), 0,
	       "%s: ... with no duplicate left", kind);
	ok(p[9 * ut_page()] == 0x5a && p[10 * ut_page() - 1] == 0x5a,
	   "%s: the CPU reads the device's write", kind);

	/* UNSET collapses */
	is_int(uhmm_advise(h, p, LEN, UHMM_ADV_UNSET_READ_MOSTLY, NULL), 0, "%s: UNSET_READ_MOSTLY", kind);
	is_int(dup_bits(h, p, LEN, false), 0, "%s: no duplicate after UNSET", kind);
	/* munmap frees what duplicates there are */
	is_int(uhmm_advise(h, p, LEN, UHMM_ADV_READ_MOSTLY, NULL), 0, "%s: READ_MOSTLY again", kind);
	uhmm_sim_read(d, p, buf, LEN);
	munmap(p, LEN);
	uhmm_where(h, &rc, 1, &rc);	/* any call: the unmap is seen */
	is_int(ut_dev_used(d), used0, "%s: munmap freed the duplicates' device memory", kind);
	free(buf);
}

/* A device too small for the duplicates and a migration: eviction drops
 * duplicates, copies nothing back, and every byte stays right. */
static void eviction(struct uhmm *h, int kind)
{
	struct uhmm_dev *d = kind == UHMM_MEM_PRIVATE ? ut_psim(h, "small", 4 * UT_MiB)
						     : ut_csim_try(h, "small", 4 * UT_MiB);
	uint8_t *p = ut_map_aligned(4 * UT_MiB, 2 * UT_MiB), *q = ut_map(2 * UT_MiB);
	uint8_t *buf = malloc(4 * UT_MiB);
	struct uhmm_stats s0, s1;
	const char *k = kind == UHMM_MEM_PRIVATE ? "PRIVATE" : "COHERENT";

	if (!d) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		return;
	}
	ut_fill64(p, 4 * UT_MiB, 12);
	ut_fill64(q, 2 * UT_MiB, 13);
	uhmm_advise(h, p, 4 * UT_MiB, UHMM_ADV_READ_MOSTLY, NULL);
	uhmm_sim_read(d, p, buf, 4 * UT_MiB);
	s0 = ut_stats(h);
	is_int(uhmm_migrate(h, q, 2 * UT_MiB, d, 0), 0, "%s: a migration into a device full of duplicates", k);
	s1 = ut_stats(h);
	ut_check_where(h, q, 2 * UT_MiB, ut_dev_id(d), "the migrated range");
	ut_check_where(h, p, 4 * UT_MiB, UHMM_LOC_SYSTEM, "the read-mostly range stayed in system memory");
	is_int(s1.pages_to_sys - s0.pages_to_sys, 0, "%s: evicting duplicates copied nothing back", k);
	ut_ok64(p, 4 * UT_MiB, 12, "the read-mostly data");
	ut_ok64(q, 2 * UT_MiB, 13, "the migrated data");
	is_int(uhmm_dev_remove(d), 0, "%s: remove the device with duplicates on it", k);
	ut_ok64(p, 4 * UT_MiB, 12, "the read-mostly data after removal");
	free(buf);
	munmap(p, 4 * UT_MiB);
	munmap(q, 2 * UT_MiB);
}

/*
 * A device write over more read-mostly pages than the device holds: the
 * pages move there as far as it has room and the rest is written in
 * place.  It used to evict what the same write had just moved, round
 * after round, until the write gave up with -EBUSY, writing nothing.
 */
static void write_bigger_than_device(struct uhmm *h, int kind)
{
	size_t pg = ut_page(), n = 62 * pg, moved = 0;
	struct uhmm_dev *d = kind == UHMM_MEM_PRIVATE ? ut_psim(h, "tiny", 48 * pg)
						     : ut_csim_try(h, "tiny", 48 * pg);
	const char *k = kind == UHMM_MEM_PRIVATE ? "PRIVATE" : "COHERENT";
	uint8_t *p = ut_map(n), *buf = malloc(n);
	int *loc = NULL, rc;

	if (!d) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		return;
	}
	ut_fill64(p, n, 14);
	ut_fill64(buf, n, 15);
	is_int(uhmm_advise(h, p, n, UHMM_ADV_READ_MOSTLY, NULL), 0, "%s: 62 pages READ_MOSTLY", k);
	rc = uhmm_sim_write(d, p, buf, n);
	ok(rc > 0 && rc <= 3, "%s: a device write of the 62 pages through a device of 48: %d rounds",
	   k, rc);
	/* before the CPU reads (a PRIVATE device's pages then come home) */
	loc = ut_where(h, p, n, &rc);
	for (size_t i = 0; loc && i < n / pg; i++)
		moved += loc[i] == ut_dev_id(d);
	is_int(moved, 48, "%s: 48 of the pages moved to the device, the rest stayed in place", k);
	free(loc);
	ut_ok64(p, n, 15, "the written data");
	is_int(uhmm_dev_remove(d), 0, "%s: remove the device", k);
	ut_ok64(p, n, 15, "the written data, with the device gone");
	free(buf);
	munmap(p, n);
}

/*
 * A device write to a read-mostly page of a block whose other pages have
 * duplicates, through a device with no room for it: written in place.
 * Dropping the (absent) duplicates of the written page used to tell every
 * mirror of the block's change anyway, the writer's too, each round of
 * the write: -EBUSY after 64 rounds, nothing written.
 */
static void write_beside_duplicates(struct uhmm *h, struct uhmm_dev *reader)
{
	size_t pg = ut_page();
	struct uhmm_dev *full = ut_psim(h, "full", pg);
	uint8_t *p = ut_map_aligned(2 * pg, 2 * UT_MiB), *other = ut_map(pg);
	uint8_t buf[64];
	int rc;

	ut_fill64(p, 2 * pg, 16);
	memset(other, 1, pg);
	is_int(uhmm_migrate(h, other, pg, full, 0), 0, "beside: a one-page device, filled");
	is_int(uhmm_advise(h, p, 2 * pg, UHMM_ADV_READ_MOSTLY, NULL), 0, "beside: two pages READ_MOSTLY");
	is_int(uhmm_sim_read(reader, p, buf, sizeof(buf)) > 0, 1, "beside: a device read duplicates the first");
	if (have_wp)
		ok(dup_bits(h, p, pg, true), "beside: the first page has a duplicate");
	memset(buf, 0x77, sizeof(buf));
	rc = uhmm_sim_write(full, p + pg, buf, sizeof(buf));
	ok(rc > 0 && rc <= 2, "beside: the full device writes the second page: %d rounds", rc);
	ok(p[pg] == 0x77 && p[pg + 63] == 0x77, "beside: the write landed in system memory");
	ut_ok64(p, pg, 16, "beside: the first page");
	munmap(p, 2 * pg);
	munmap(other, pg);
	is_int(uhmm_dev_remove(full), 0, "beside: remove the one-page device");
}

/* ---- no stale read ---------------------------------------------------- */

#define VPAGES	64

struct shared {
	uint8_t *p;
	_Atomic int stop;
	int stale[3], errors[3], reads[3];
};

struct rd {
	struct shared *s;
	struct uhmm_dev *d;		/* NULL: the CPU */
	int who;
};

/* the CPU reader and the writer race on purpose: atomics say so */
static uint64_t ver(const uint8_t *pg)
{
	return __atomic_load_n((const uint64_t *)(const void *)pg, __ATOMIC_RELAXED);
}

static void *reader(void *arg)
{
	struct rd *r = arg;
	uint64_t seen[VPAGES] = { 0 };
	uint8_t *buf = malloc(VPAGES * ut_page());

	while (!atomic_load(&r->s->stop)) {
		if (r->d && uhmm_sim_read(r->d, r->s->p, buf, VPAGES * ut_page()) < 0) {
			r->s->errors[r->who]++;
			continue;
		}
		for (int i = 0; i < VPAGES; i++) {
			uint64_t v = r->d ? ver(buf + i * ut_page()) : ver(r->s->p + i * ut_page());

			r->s->stale[r->who] += v < seen[i];
			if (v > seen[i])
				seen[i] = v;
		}
		r->s->reads[r->who]++;
	}
	free(buf);
	return NULL;
}

static void versions(struct uhmm *h, struct uhmm_dev *d1, struct uhmm_dev *d2)
{
	struct shared s = { .p = ut_map_aligned(VPAGES * ut_page(), 2 * UT_MiB) };
	struct rd r[3] = { { &s, d1, 0 }, { &s, d2, 1 }, { &s, NULL, 2 } };
	int rounds = (int)ut_scaled(200, 20), bad = 0;
	uint8_t *buf = malloc(VPAGES * ut_page());
	pthread_t t[3];

	memset(s.p, 0, VPAGES * ut_page());
	uhmm_advise(h, s.p, VPAGES * ut_page(), UHMM_ADV_READ_MOSTLY, NULL);
	for (int i = 0; i < 3; i++)
		pthread_create(&t[i], NULL, reader, &r[i]);
	for (int k = 1; k <= rounds; k++)
		for (int i = 0; i < VPAGES; i++)
			__atomic_store_n((uint64_t *)(void *)(s.p + i * ut_page()), (uint64_t)k,
					 __ATOMIC_RELAXED);
	atomic_store(&s.stop, 1);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++) {
		is_int(s.errors[i], 0, "reader %d (%s): no error in %d reads", i,
		       i < 2 ? "device" : "CPU", s.reads[i]);
		is_int(s.stale[i], 0, "reader %d: never a version older than one seen before", i);
	}
	for (int j = 0; j < 2; j++) {
		uhmm_sim_read(j ? d2 : d1, s.p, buf, VPAGES * ut_page());
		for (int i = 0; i < VPAGES; i++)
			bad += ver(buf + i * ut_page()) != (uint64_t)rounds;
	}
	is_int(bad, 0, "both devices read the last version of every page at the end");
	free(buf);
	munmap(s.p, VPAGES * ut_page());
}

/* A context of its own without write-protection: no duplicates, reads
 * and writes still right. */
static void without_wp(void)
{
	const char *old = getenv("UHMM_DISABLE");
	char *saved = old ? strdup(old) : NULL, want[256];
	struct uhmm *h;
	struct uhmm_dev *d;
	uint8_t *p = ut_map(LEN), *buf = malloc(LEN);
	bool on;

	snprintf(want, sizeof(want), "%s%swp", old ? old : "", old ? "," : "");
	setenv("UHMM_DISABLE", want, 1);
	h = ut_open();
	if (saved)
		setenv("UHMM_DISABLE", saved, 1);
	else
		unsetenv("UHMM_DISABLE");
	on = ut_feats(h) & UHMM_FEAT_WP;
	if (on) {
		skip("UHMM_DISABLE=wp is honoured only with the remap fence, off here");
		goto out;
	}
	d = ut_psim(h, "nowp", 8 * UT_MiB);
	ut_fill64(p, LEN, 14);
	is_int(uhmm_advise(h, p, LEN, UHMM_ADV_READ_MOSTLY, NULL), 0, "no WP: READ_MOSTLY");
	ok(uhmm_sim_read(d, p, buf, LEN) >= 0 && !memcmp(buf, p, LEN), "no WP: the device reads");
	is_int(dup_bits(h, p, LEN, false), 0, "no WP: no duplicate was made");
	ut_check_where(h, p, LEN, UHMM_LOC_SYSTEM, "no WP: read in place");
	p[3] ^= 1;
	ok(uhmm_sim_read(d, p, buf, LEN) >= 0 && !memcmp(buf, p, LEN),
	   "no WP: the device reads the CPU's write");
out:
	uhmm_close(h);
	free(buf);
	free(saved);
	munmap(p, LEN);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *pd, *cd;

	ut_init(600);
	h = ut_open();
	have_wp = ut_feats(h) & UHMM_FEAT_WP;
	diag("userfaultfd write-protect %s: duplicates %s", have_wp ? "on" : "off",
	     have_wp ? "are made" : "are not made");
	pd = ut_psim(h, "private", 32 * UT_MiB);
	basics(h, pd, "PRIVATE");
	cd = ut_csim_try(h, "coherent", 32 * UT_MiB);
	if (cd)
		basics(h, cd, "COHERENT");
	else
		skip("COHERENT devices need userfaultfd minor faults on shmem");
	eviction(h, UHMM_MEM_PRIVATE);
	eviction(h, UHMM_MEM_COHERENT);
	write_bigger_than_device(h, UHMM_MEM_PRIVATE);
	write_bigger_than_device(h, UHMM_MEM_COHERENT);
	write_beside_duplicates(h, pd);
	versions(h, pd, cd ? cd : ut_psim(h, "private2", 32 * UT_MiB));
	{
		uint64_t m;
		char x;

		is_int(uhmm_duplicates(NULL, &x, 1, &m), -EINVAL, "uhmm_duplicates(NULL): -EINVAL");
		is_int(uhmm_duplicates(h, &x, 1, NULL), -EINVAL, "uhmm_duplicates(NULL masks): -EINVAL");
		is_int(uhmm_duplicates(h, &x, 0, &m), -EINVAL, "uhmm_duplicates(len 0): -EINVAL");
		is_int(uhmm_duplicates(h, &x, 1, &m), 0, "uhmm_duplicates of unmanaged memory: 0");
		is_int(m, 0, "... which has none");
	}
	uhmm_close(h);
	without_wp();
	return tap_done();
}
