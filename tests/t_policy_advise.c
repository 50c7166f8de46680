/* SPDX-License-Identifier: MIT */
/*
 * uhmm_advise and uhmm_range_attr as API.md gives them: every advice and
 * its UNSET recorded per page, a range with mixed advice reported by its
 * first page and 1, the range made managed, advice dropped by munmap and
 * carried by mremap, last_prefetch; every bad input (NULL context, len 0,
 * a wrapping range, an unknown advice, a device of another context,
 * ACCESSED_BY without a device, a hole, a file mapping, PROT_NONE) with
 * its errno and nothing recorded; threads advising disjoint parts at once.
 * uhmm_pin/uhmm_unpin: pinned memory is -EBUSY to uhmm_migrate and moves
 * nothing, pages of a private device come home at uhmm_pin, eviction and
 * the access counters leave pinned pages alone, uhmm_unpin undoes it.
 */
#define _GNU_SOURCE
#include <fcntl.h>

#include "private.h"

static struct uhmm_range_attr attr(struct uhmm *h, const void *p, size_t len, int *rc)
{
	struct uhmm_range_attr a = { .sz = sizeof(a) };

	*rc = uhmm_range_attr(h, p, len, &a);
	return a;
}

static void each_advice(struct uhmm *h, struct uhmm_dev *d1, struct uhmm_dev *d2)
{
	size_t len = 8 * ut_page();
	uint8_t *p = ut_map(len);
	struct uhmm_range_attr a;
	uint64_t b1 = 1ull << (ut_dev_id(d1) - 1), b2 = 1ull << (ut_dev_id(d2) - 1);
	int rc;

	ut_fill64(p, len, 3);
	a = attr(h, p, len, &rc);
	is_int(rc, 0, "no advice: uniform");
	ok(a.preferred == UHMM_LOC_NONE && !a.accessed_by && !a.read_mostly &&
	   a.last_prefetch == UHMM_LOC_NONE, "no advice: preferred NONE, nobody, not read-mostly");

	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, d1), 0, "PREFERRED_LOCATION d1");
	is_int(attr(h, p, len, &rc).preferred, ut_dev_id(d1), "preferred = d1");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, NULL), 0, "PREFERRED_LOCATION system");
	is_int(attr(h, p, len, &rc).preferred, UHMM_LOC_SYSTEM, "preferred = system");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_UNSET_PREFERRED_LOCATION, NULL), 0, "UNSET_PREFERRED");
	is_int(attr(h, p, len, &rc).preferred, UHMM_LOC_NONE, "preferred = NONE");

	is_int(uhmm_advise(h, p, len, UHMM_ADV_ACCESSED_BY, d1), 0, "ACCESSED_BY d1");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_ACCESSED_BY, d2), 0, "ACCESSED_BY d2");
	is_int(attr(h, p, len, &rc).accessed_by, b1 | b2, "accessed_by = d1 | d2");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_UNSET_ACCESSED_BY, d1), 0, "UNSET_ACCESSED_BY d1");
	is_int(attr(h, p, len, &rc).accessed_by, b2, "accessed_by = d2");

	is_int(uhmm_advise(h, p, len, UHMM_ADV_READ_MOSTLY, NULL), 0, "READ_MOSTLY");
	ok(attr(h, p, len, &rc).read_mostly, "read_mostly set");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_UNSET_READ_MOSTLY, NULL), 0, "UNSET_READ_MOSTLY");
	ok(!attr(h, p, len, &rc).read_mostly, "read_mostly clear");

	/* mixed: the first page's, and 1 */
	is_int(uhmm_advise(h, p + 2 * ut_page(), 3 * ut_page(), UHMM_ADV_PREFERRED_LOCATION, d2), 0,
	       "PREFERRED_LOCATION d2 on pages 2-4");
	a = attr(h, p, len, &rc);
	is_int(rc, 1, "mixed advice: 1");
	is_int(a.preferred, UHMM_LOC_NONE, "mixed: the first page's advice (NONE)");
	a = attr(h, p + 2 * ut_page(), 3 * ut_page(), &rc);
	ok(rc == 0 && a.preferred == ut_dev_id(d2), "pages 2-4 alone: uniform, d2");
	a = attr(h, p + 3 * ut_page() + 17, 1, &rc);
	ok(rc == 0 && a.preferred == ut_dev_id(d2), "an unaligned byte inside: d2");
	ut_check_unmoved(h, p, len, "advice");
	ut_ok64(p, len, 3, "advice changes no byte");
	ok(ut_where_count(h, p, len, UHMM_LOC_SYSTEM) == (long)(len / ut_page()), "the range is managed, in system memory");

	/* munmap drops it; a new mapping at the same address has none */
	munmap(p, len);
	p = mmap(p, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (p != MAP_FAILED) {
		a = attr(h, p, len, &rc);
		ok(rc == 0 && a.preferred == UHMM_LOC_NONE && !a.accessed_by,
		   "munmap dropped the advice (a new mapping there has none)");
		munmap(p, len);
	} else {
		skip("the address was taken again before the test could map it");
	}

	/* mremap carries it */
	p = ut_map(len);
	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, d1), 0, "advise before mremap");
	{
		uint8_t *q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, ut_map(len));

		ok(q != MAP_FAILED, "mremap it away");
		a = attr(h, q, len, &rc);
		ok(rc == 0 && a.preferred == ut_dev_id(d1), "the advice went with the pages");
		munmap(q, len);
	}

	/* last_prefetch */
	p = ut_map(len);
	ut_fill64(p, len, 4);
	{
		uint64_t t = 0;

		is_int(uhmm_prefetch(h, p, len, d1, 0, &t), 0, "prefetch to d1");
		is_int(uhmm_wait(h, t, 10000), 0, "... done");
	}
	is_int(attr(h, p, len, &rc).last_prefetch, ut_dev_id(d1), "last_prefetch = d1");
	ut_ok64(p, len, 4, "prefetched data");
	munmap(p, len);
}

static void bad_input(struct uhmm *h, struct uhmm_dev *d)
{
	struct uhmm *h2 = ut_open();
	struct uhmm_dev *other = ut_psim(h2, "other", 4 * UT_MiB);
	size_t len = 4 * ut_page();
	uint8_t *p = ut_map(len), *hole = ut_map(3 * ut_page()), *none, *file;
	struct uhmm_range_attr a = { .sz = sizeof(a) };
	char path[] = "/tmp/uhmm-advise-XXXXXX";
	int fd = mkstemp(path), rc;

	munmap(hole + ut_page(), ut_page());
	none = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	unlink(path);
	if (fd < 0 || ftruncate(fd, (off_t)len))
		tap_bail("temporary file: %s", strerror(errno));
	file = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

	is_int(uhmm_advise(NULL, p, len, UHMM_ADV_READ_MOSTLY, NULL), -EINVAL, "advise(NULL): -EINVAL");
	is_int(uhmm_advise(h, p, 0, UHMM_ADV_READ_MOSTLY, NULL), -EINVAL, "advise(len 0): -EINVAL");
	is_int(uhmm_advise(h, (void *)(UINTPTR_MAX - 100), 4096, UHMM_ADV_READ_MOSTLY, NULL), -EINVAL,
	       "advise(wrapping): -EINVAL");
	is_int(uhmm_advise(h, p, len, (enum uhmm_advice)0, NULL), -EINVAL, "advise(0): -EINVAL");
	is_int(uhmm_advise(h, p, len, (enum uhmm_advice)99, NULL), -EINVAL, "advise(99): -EINVAL");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_PREFERRED_LOCATION, other), -EINVAL,
	       "advise(a device of another context): -EINVAL");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_ACCESSED_BY, NULL), -EINVAL,
	       "ACCESSED_BY without a device: -EINVAL");
	is_int(uhmm_advise(h, p, len, UHMM_ADV_UNSET_ACCESSED_BY, NULL), -EINVAL,
	       "UNSET_ACCESSED_BY without a device: -EINVAL");
	is_int(uhmm_advise(h, hole, 3 * ut_page(), UHMM_ADV_PREFERRED_LOCATION, d), -EFAULT,
	       "advise over a hole: -EFAULT");
	is_int(uhmm_advise(h, none, len, UHMM_ADV_PREFERRED_LOCATION, d), -EINVAL,
	       "advise PROT_NONE memory: -EINVAL");
	is_int(uhmm_advise(h, file, len, UHMM_ADV_PREFERRED_LOCATION, d), -EINVAL,
	       "advise a file mapping: -EINVAL");
	rc = uhmm_range_attr(h, hole, ut_page(), &a);
	ok(rc == 0 && a.preferred == UHMM_LOC_NONE, "nothing recorded by the refused advice");

	is_int(uhmm_range_attr(NULL, p, len, &a), -EINVAL, "range_attr(NULL): -EINVAL");
	is_int(uhmm_range_attr(h, p, len, NULL), -EINVAL, "range_attr(NULL attr): -EINVAL");
	is_int(uhmm_range_attr(h, p, 0, &a), -EINVAL, "range_attr(len 0): -EINVAL");
	{
		union { struct uhmm_range_attr a; unsigned char b[sizeof(struct uhmm_range_attr) + 8]; } u;

		memset(&u, 0, sizeof(u));
		u.a.sz = sizeof(u);
		u.b[sizeof(struct uhmm_range_attr) + 3] = 1;
		is_int(uhmm_range_attr(h, p, len, &u.a), -E2BIG, "range_attr(unknown tail set): -E2BIG");
	}
	is_int(uhmm_pin(NULL, p, len), -EINVAL, "pin(NULL): -EINVAL");
	is_int(uhmm_pin(h, p, 0), -EINVAL, "pin(len 0): -EINVAL");
	is_int(uhmm_pin(h, hole, 3 * ut_page()), -EFAULT, "pin over a hole: -EFAULT");
	is_int(uhmm_unpin(h, file, len), -EINVAL, "unpin a file mapping: -EINVAL");
	ut_check_unmoved(h, p, len, "after the refusals");
	close(fd);
	munmap(file, len);
	munmap(none, len);
	munmap(hole, 3 * ut_page());
	munmap(p, len);
	uhmm_close(h2);
}

static void pins(struct uhmm *h, struct uhmm_dev *d)
{
	size_t len = 2 * UT_MiB;
	uint8_t *p = ut_map_aligned(len, 2 * UT_MiB);
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	int id = ut_dev_id(d), rc;

	ut_fill64(p, len, 5);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "pins: migrate to the private device");
	is_int(uhmm_pin(h, p, len), 0, "uhmm_pin");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "uhmm_pin brought the private pages home");
	ut_ok64(p, len, 5, "their data");
	rc = uhmm_migrate_ex(h, p, len, d, 0, &res);
	is_int(rc, -EBUSY, "uhmm_migrate of pinned memory: -EBUSY");
	is_int(res.moved, 0, "... nothing moved");
	rc = uhmm_migrate(h, p + len / 2, ut_page(), d, 0);
	is_int(rc, -EBUSY, "uhmm_migrate of one pinned page: -EBUSY");
	is_int(uhmm_dev_report_access(d, p, len, 100000), 0, "many reported accesses");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "the access counters left pinned memory alone");
	is_int(uhmm_unpin(h, p, len), 0, "uhmm_unpin");
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "unpinned: it migrates again");
	ut_check_where(h, p, len, id, "on the device");
	ut_ok64(p, len, 5, "data after pin, unpin, migrate");
	munmap(p, len);
}

/* A COHERENT device full of pinned pages and pages of others: a migration
 * that needs room evicts the others, never the pinned. */
static void pinned_not_evicted(struct uhmm *h)
{
	struct uhmm_dev *d = ut_csim_try(h, "pin-evict", 4 * UT_MiB);
	uint8_t *a = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB), *b = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
	uint8_t *c = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);

	if (!d) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		return;
	}
	ut_fill64(a, 2 * UT_MiB, 6);
	ut_fill64(b, 2 * UT_MiB, 7);
	ut_fill64(c, 2 * UT_MiB, 8);
	uhmm_migrate(h, a, 2 * UT_MiB, d, 0);
	uhmm_migrate(h, b, 2 * UT_MiB, d, 0);
	is_int(uhmm_pin(h, a, 2 * UT_MiB), 0, "pin COHERENT pages (they stay on the device)");
	ut_check_where(h, a, 2 * UT_MiB, ut_dev_id(d), "pinned COHERENT pages stay put");
	is_int(uhmm_migrate(h, c, 2 * UT_MiB, d, 0), 0, "a migration that needs room");
	ut_check_where(h, a, 2 * UT_MiB, ut_dev_id(d), "the pinned pages were not evicted");
	ut_check_where(h, b, 2 * UT_MiB, UHMM_LOC_SYSTEM, "the others were");
	is_int(uhmm_dev_evict(d, 4 * UT_MiB), -ENOMEM, "uhmm_dev_evict cannot free the pinned: -ENOMEM");
	ut_ok64(a, 2 * UT_MiB, 6, "pinned data");
	ut_ok64(b, 2 * UT_MiB, 7, "evicted data");
	ut_ok64(c, 2 * UT_MiB, 8, "migrated data");
	is_int(uhmm_dev_remove(d), 0, "remove the device with pinned pages: they come home");
	ut_check_where(h, a, 2 * UT_MiB, UHMM_LOC_SYSTEM, "home");
	ut_ok64(a, 2 * UT_MiB, 6, "pinned data after removal");
	munmap(a, 2 * UT_MiB);
	munmap(b, 2 * UT_MiB);
	munmap(c, 2 * UT_MiB);
}

struct adviser {
	struct uhmm *h;
	struct uhmm_dev *d;
	uint8_t *p;
	int errors;
};

static void *advise_thread(void *arg)
{
	struct adviser *a = arg;
	size_t pg = ut_page();

	/* 28 rounds over 7 pages, set then unset: the last round unsets */
	for (int i = 0; i < 28 * 7; i++) {
		enum uhmm_advice adv = (i / 7) & 1 ? UHMM_ADV_UNSET_PREFERRED_LOCATION
						   : UHMM_ADV_PREFERRED_LOCATION;

		if (uhmm_advise(a->h, a->p + (size_t)(i % 7) * pg, pg, adv, a->d))
			a->errors++;
	}
	return NULL;
}

static void threads(struct uhmm *h, struct uhmm_dev *d)
{
	uint8_t *p = ut_map(32 * ut_page());
	struct adviser a[4];
	pthread_t t[4];
	int rc, errors = 0;

	ut_fill64(p, 32 * ut_page(), 9);
	for (int i = 0; i < 4; i++) {
		a[i] = (struct adviser){ h, d, p + (size_t)i * 8 * ut_page(), 0 };
		pthread_create(&t[i], NULL, advise_thread, &a[i]);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		errors += a[i].errors;
	}
	is_int(errors, 0, "four threads advising their parts 196 times each: no error");
	attr(h, p, 32 * ut_page(), &rc);
	is_int(rc, 0, "... and every advice undone in the end: uniform");
	is_int(attr(h, p, 32 * ut_page(), &rc).preferred, UHMM_LOC_NONE, "... NONE");
	ut_ok64(p, 32 * ut_page(), 9, "their data");
	munmap(p, 32 * ut_page());
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d1, *d2;

	ut_init(240);
	h = ut_open();
	d1 = ut_psim(h, "p1", 16 * UT_MiB);
	d2 = ut_psim(h, "p2", 16 * UT_MiB);
	each_advice(h, d1, d2);
	bad_input(h, d1);
	pins(h, d1);
	pinned_not_evicted(h);
	threads(h, d1);
	uhmm_close(h);
	return tap_done();
}
