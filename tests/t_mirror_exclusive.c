/* SPDX-License-Identifier: MIT */
/*
 * uhmm_make_exclusive (device atomics), for a COHERENT and a PRIVATE sim
 * device:
 *  - the holder's entries are VALID | WRITE | EXCLUSIVE, with host in the
 *    library's copy holding the data; other mirrors see them not VALID;
 *    uhmm_where still says system memory;
 *  - the next CPU access takes them back: the holder hears
 *    UHMM_EV_EXCLUSIVE (initiator 0) before the access completes, and the
 *    access sees what the device wrote; so does another mirror's fault
 *    (initiator: its device), the sim engine's read, uhmm_migrate,
 *    munmap (the rest of the block comes back), MADV_DONTNEED (zeros),
 *    mremap (the data at the new address), fork (the child reads the
 *    data), uhmm_mirror_close and uhmm_dev_remove (RELEASE, then -ENODEV);
 *  - after a fork (COHERENT pages lose their PTEs), a CPU access to a
 *    neighbour of a held page leaves that page held until the CPU
 *    touches it;
 *  - pages on the holder's own PRIVATE device stay there; pages of a
 *    COHERENT device keep their place and host is the device's view;
 *  - uhmm_sim_atomic_add: CPU threads adding to the same words as the
 *    device lose no add;
 *  - bad inputs: -EINVAL, -EFAULT, -EPERM, and nothing changes.
 */
#define _GNU_SOURCE
#include "private.h"

static int snap(struct uhmm_mirror *m, void *p, size_t len, struct uhmm_pte *pt)
{
	int rc = -EBUSY;

	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(m, p, len, 0, pt);
	return rc;
}

/* Every page of [p, p + n pages) held by m: EXCLUSIVE entries whose host
 * holds the pattern (system pages: in a copy of the library's). */
static int held_right(struct uhmm_mirror *m, uint8_t *p, size_t n, unsigned seed, int loc)
{
	size_t pg = ut_page();
	struct uhmm_pte *pt = calloc(n, sizeof(*pt));
	int good = pt && snap(m, p, n * pg, pt) == 0;

	for (size_t i = 0; good && i < n; i++) {
		uint32_t want = UHMM_PTE_VALID | UHMM_PTE_WRITE | UHMM_PTE_EXCLUSIVE;

		good = (pt[i].flags & want) == want && pt[i].loc == loc && pt[i].host &&
		       (loc != UHMM_LOC_SYSTEM || pt[i].host != (uintptr_t)(p + i * pg)) &&
		       ut_chk8((const uint8_t *)(uintptr_t)pt[i].host, i * pg, pg,
			       seed) == SIZE_MAX;
		if (!good)
			diag("page %zu: flags 0x%x loc %d host 0x%" PRIx64, i, pt[i].flags,
			     pt[i].loc, pt[i].host);
	}
	free(pt);
	return good;
}

/* Nobody holds [p, p + len) any more: m's entries are plain again. */
static int released(struct uhmm_mirror *m, uint8_t *p, size_t len)
{
	size_t n = ut_npages(p, len);
	struct uhmm_pte *pt = calloc(n, sizeof(*pt));
	int good = pt && snap(m, p, len, pt) == 0;

	for (size_t i = 0; good && i < n; i++)
		good = !(pt[i].flags & UHMM_PTE_EXCLUSIVE);
	free(pt);
	return good;
}

/* ---- one device, one page kind ------------------------------------------ */

struct env {
	struct uhmm *h;
	struct uhmm_dev *dev, *other;
	struct uhmm_mirror *m, *m2;	/* on dev, on other */
	struct ut_rec r, r2;
	const char *kind;
	int loc;			/* where the pages live: SYSTEM or dev's id */
};

/* A fresh buffer of n pages with pattern seed, where env says. */
static uint8_t *buffer(struct env *e, size_t n, unsigned seed)
{
	uint8_t *p = ut_map(n * ut_page());

	ut_fill8(p, n * ut_page(), seed);
	if (e->loc != UHMM_LOC_SYSTEM && uhmm_migrate(e->h, p, n * ut_page(), e->dev, 0))
		tap_bail("%s: migrate to the device", e->kind);
	return p;
}

static void basic(struct env *e)
{
	size_t pg = ut_page(), len = 4 * pg;
	uint8_t *p = buffer(e, 4, 11);
	struct uhmm_pte pt[4];
	int rc;

	/* another device holds translations of it */
	is_int(snap(e->m2, p, len, pt), 0, "%s: another mirror's snapshot", e->kind);
	ut_rec_clear(&e->r2);
	rc = uhmm_make_exclusive(e->m, p + 1, len - 2);
	is_int(rc, 0, "%s: uhmm_make_exclusive of 4 pages (unaligned bounds)", e->kind);
	ok(ut_rec_saw(&e->r2, UHMM_EV_EXCLUSIVE, ut_dev_id(e->dev), p, len),
	   "%s: the other mirror heard EXCLUSIVE, initiator the holder's device", e->kind);
	ok(held_right(e->m, p, 4, 11, e->loc),
	   "%s: the holder's entries: VALID|WRITE|EXCLUSIVE, host holds the data", e->kind);
	ut_check_where(e->h, p, len, e->loc, "exclusive pages stay where they were");
	memset(pt, 0xee, sizeof(pt));
	rc = snap(e->m2, p, len, pt);
	ok(rc == 0 && !(pt[0].flags & (UHMM_PTE_VALID | UHMM_PTE_EXCLUSIVE)) &&
	   !(pt[3].flags & UHMM_PTE_VALID),
	   "%s: another mirror's snapshot: not VALID (0x%x)", e->kind, pt[0].flags);
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: again: nothing to do, 0", e->kind);

	/* the device writes where it holds the page; the CPU then reads it */
	snap(e->m, p, len, pt);
	((volatile uint8_t *)(uintptr_t)pt[1].host)[5] = 0x5a;
	ut_rec_clear(&e->r);
	ok(((volatile uint8_t *)p)[pg + 5] == 0x5a, "%s: the CPU reads what the device wrote",
	   e->kind);
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, 0, p + pg, pg),
	   "%s: the CPU's access was preceded by UHMM_EV_EXCLUSIVE (initiator 0)", e->kind);
	ok(released(e->m, p, len), "%s: no entry is EXCLUSIVE any more", e->kind);
	p[pg + 5] = ut_pat8(11, pg + 5);
	ut_ok8(p, len, 11, "the data after the CPU took it back");

	/* a CPU write takes it back too */
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive again", e->kind);
	ut_rec_clear(&e->r);
	p[3 * pg] ^= 0xff;
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, 0, p + 3 * pg, pg),
	   "%s: a CPU write: EXCLUSIVE first", e->kind);
	p[3 * pg] ^= 0xff;
	ut_ok8(p, len, 11, "the data after a CPU write");
	munmap(p, len);
}

/* Another device's fault, the sim engine, migration and mirror close. */
static void others(struct env *e)
{
	size_t pg = ut_page(), len = 8 * pg;
	uint8_t *p = buffer(e, 8, 12), *buf = malloc(len);
	struct uhmm_pte pt[8];
	int rc;

	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	ut_rec_clear(&e->r);
	rc = -EBUSY;
	for (int i = 0; i < 20 && rc == -EBUSY; i++)
		rc = uhmm_range_fault(e->m2, p, len, UHMM_FAULT_READ, pt);
	ok(rc == 0 && (pt[0].flags & UHMM_PTE_VALID) && !(pt[0].flags & UHMM_PTE_EXCLUSIVE),
	   "%s: another device's FAULT_READ works (%d, 0x%x)", e->kind, rc, pt[0].flags);
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, ut_dev_id(e->other), p, len),
	   "%s: ... after the holder heard EXCLUSIVE with that device as initiator", e->kind);
	ut_ok8(p, len, 12, "the data after another device faulted it");

	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive again", e->kind);
	ut_rec_clear(&e->r);
	memset(buf, 0, len);
	rc = uhmm_sim_read(e->other, p, buf, len);
	ok(rc >= 0 && ut_check8(buf, len, 12) == SIZE_MAX,
	   "%s: the other device's engine reads it right (%d)", e->kind, rc);
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, -1, p, len),
	   "%s: ... and the holder heard EXCLUSIVE", e->kind);

	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive again", e->kind);
	rc = uhmm_sim_read(e->dev, p, buf, len);
	ok(rc >= 0 && ut_check8(buf, len, 12) == SIZE_MAX,
	   "%s: its own device's engine reads it right", e->kind);

	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive again", e->kind);
	ut_rec_clear(&e->r);
	rc = uhmm_migrate(e->h, p, len, e->other, 0);
	is_int(rc, 0, "%s: uhmm_migrate of exclusive pages to the other device", e->kind);
	ok(ut_rec_saw(&e->r, UHMM_EV_MIGRATE, -1, p, len) &&
	   ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, -1, p, len),
	   "%s: the holder heard MIGRATE and EXCLUSIVE", e->kind);
	ut_ok8(p, len, 12, "the data after the migration");
	if (e->loc != UHMM_LOC_SYSTEM)
		uhmm_migrate(e->h, p, len, e->dev, 0);
	else
		uhmm_migrate(e->h, p, len, NULL, 0);

	free(buf);
	munmap(p, len);
}

/* The program's own layout changes of exclusive memory. */
static void layout(struct env *e)
{
	size_t pg = ut_page(), len = 8 * pg;
	uint8_t *p = buffer(e, 8, 13), *q;
	int rc;

	/* munmap of half: the other half comes back, right */
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	ut_rec_clear(&e->r);
	munmap(p, len / 2);
	ok(ut_chk8(p + len / 2, len / 2, len / 2, 13) == SIZE_MAX,
	   "%s: munmap of half: the other half reads right", e->kind);
	ut_check_where(e->h, p + len / 2, len / 2, e->loc, "the half still mapped");
	ok(ut_rec_saw(&e->r, UHMM_EV_UNMAP, -1, p, len / 2),
	   "%s: UNMAP heard over the unmapped half", e->kind);
	munmap(p + len / 2, len / 2);

	/* MADV_DONTNEED of one page: zeros there, the rest right */
	p = buffer(e, 8, 14);
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	madvise(p + 2 * pg, pg, MADV_DONTNEED);
	ok(ut_check_zero(p + 2 * pg, pg) == SIZE_MAX,
	   "%s: MADV_DONTNEED of an exclusive page: zeros", e->kind);
	ok(ut_chk8(p, 0, 2 * pg, 14) == SIZE_MAX &&
	   ut_chk8(p + 3 * pg, 3 * pg, 5 * pg, 14) == SIZE_MAX,
	   "%s: the other pages read right", e->kind);

	munmap(p, len);

	/* mremap: the data is right at the new address */
	p = buffer(e, 8, 20);
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	ut_rec_clear(&e->r);
	q = ut_map(len);
	rc = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, q) == q ? 0 : -errno;
	is_int(rc, 0, "%s: mremap of exclusive memory", e->kind);
	ut_ok8(q, len, 20, "the data at the new address");
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, -1, p, len), "%s: the holder heard EXCLUSIVE",
	   e->kind);
	munmap(q, len);

	/* uhmm_mprotect: read-only; the CPU reads it, the device may not write */
	p = buffer(e, 2, 15);
	is_int(uhmm_make_exclusive(e->m, p, 2 * pg), 0, "%s: exclusive", e->kind);
	ut_rec_clear(&e->r);
	is_int(uhmm_mprotect(e->h, p, 2 * pg, PROT_READ), 0, "%s: uhmm_mprotect read-only",
	       e->kind);
	ok(ut_rec_saw(&e->r, UHMM_EV_PROTECT, -1, p, 2 * pg), "%s: PROTECT heard", e->kind);
	ut_ok8(p, 2 * pg, 15, "read-only exclusive memory, read by the CPU");
	is_int(uhmm_make_exclusive(e->m, p, 2 * pg), -EPERM, "%s: read-only: -EPERM", e->kind);
	munmap(p, 2 * pg);
}

static void fork_child(void *arg)
{
	const uint8_t *p = arg;

	_exit(ut_chk8(p, 0, 4 * ut_page(), 16) == SIZE_MAX ? 0 : 1);
}

static void quiet_child(void *arg)
{
	(void)arg;
	_exit(0);
}

/*
 * After a fork no COHERENT page has a PTE: a CPU access maps the page's
 * block back in one minor fault, which must stop short of a page a
 * device holds alone (the CPU's access to that one must fault, to take
 * it back).
 */
static void neighbour_after_fork(struct env *e)
{
	size_t pg = ut_page(), len = 16 * pg;
	uint8_t *p = buffer(e, 16, 17);

	is_int(ut_child(quiet_child, NULL), 0, "%s: a fork", e->kind);
	is_int(uhmm_make_exclusive(e->m, p + 5 * pg, pg), 0, "%s: page 5 exclusive", e->kind);
	ok(((volatile uint8_t *)p)[4 * pg] == ut_pat8(17, 4 * pg),
	   "%s: the CPU reads its neighbour", e->kind);
	ut_rec_clear(&e->r);
	p[5 * pg] ^= 0xff;
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, 0, p + 5 * pg, pg),
	   "%s: then a CPU write to page 5 takes it back (EXCLUSIVE, initiator 0)", e->kind);
	ok(released(e->m, p, len), "%s: no entry is EXCLUSIVE any more", e->kind);
	p[5 * pg] ^= 0xff;
	ut_ok8(p, len, 17, "the data after the fork and the CPU's accesses");
	munmap(p, len);
}

static void lifecycle(struct env *e)
{
	size_t pg = ut_page(), len = 4 * pg;
	uint8_t *p = buffer(e, 4, 16);
	struct ut_rec r3;
	struct uhmm_mirror *m3;
	struct uhmm_dev *d3;
	int rc;

	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	ut_rec_clear(&e->r);
	rc = ut_child(fork_child, p);
	is_int(rc, 0, "%s: a fork child reads the exclusive pages right", e->kind);
	ok(ut_rec_saw(&e->r, UHMM_EV_EXCLUSIVE, 0, p, len), "%s: fork took them back first",
	   e->kind);
	ut_ok8(p, len, 16, "the parent's data after the fork");

	/* a mirror closed while it holds pages */
	m3 = ut_rec_mirror(e->dev, &r3);
	is_int(uhmm_make_exclusive(m3, p, len), 0, "%s: exclusive to a third mirror", e->kind);
	uhmm_mirror_close(m3);
	ut_ok8(p, len, 16, "the data after the holder's mirror closed");

	/* a device removed while its mirror holds pages */
	d3 = ut_psim(e->h, "x3", 4 * UT_MiB);
	m3 = ut_rec_mirror(d3, &r3);
	is_int(uhmm_make_exclusive(m3, p, len), 0, "%s: exclusive to a device going away", e->kind);
	is_int(uhmm_dev_remove(d3), 0, "%s: uhmm_dev_remove", e->kind);
	ok(ut_rec_saw(&r3, UHMM_EV_RELEASE, -1, p, len), "%s: RELEASE heard", e->kind);
	ut_ok8(p, len, 16, "the data after the holder's device went away");
	is_int(uhmm_make_exclusive(m3, p, len), -ENODEV, "%s: after RELEASE: -ENODEV", e->kind);
	uhmm_mirror_close(m3);
	munmap(p, len);
}

/* ---- device atomics against CPU threads ------------------------------------ */

#define WORDS 8

struct adder {
	uint64_t *w;
	struct uhmm_dev *dev;	/* NULL: a CPU thread, adding until done */
	long n;			/* device adds to make; CPU adds made */
	int *done;
	int errs, last_err;
};

static void *adder_main(void *arg)
{
	struct adder *a = arg;

	tdrv_app_thread();
	if (!a->dev) {
		for (a->n = 0; !__atomic_load_n(a->done, __ATOMIC_ACQUIRE); a->n++)
			__atomic_fetch_add(&a->w[a->n % WORDS], 1, __ATOMIC_RELAXED);
		return NULL;
	}
	for (long i = 0; i < a->n; i++) {
		int rc = uhmm_sim_atomic_add(a->dev, &a->w[i % WORDS], 1, NULL);

		if (rc < 1) {
			a->errs++;
			a->last_err = rc;
		}
	}
	__atomic_store_n(a->done, 1, __ATOMIC_RELEASE);
	return NULL;
}

static void atomics(struct env *e)
{
	long ndev = (long)ut_scaled(1500, 100);
	struct adder a[3];
	pthread_t t[3];
	uint64_t *w = (uint64_t *)buffer(e, 1, 17), sum = 0, old = 0;
	struct uhmm_stats s0, s1;
	int rc, done = 0;

	memset(w, 0, WORDS * sizeof(*w));
	rc = uhmm_sim_atomic_add(e->dev, &w[0], 5, &old);
	ok(rc >= 1 && old == 0 && w[0] == 5, "%s: one device add: %d round(s), old 0, now %" PRIu64,
	   e->kind, rc, w[0]);
	w[0] = 0;
	s0 = ut_stats(e->h);
	for (int i = 0; i < 3; i++) {
		a[i] = (struct adder){ .w = w, .dev = i == 2 ? e->dev : NULL, .done = &done,
				       .n = i == 2 ? ndev : 0 };
		pthread_create(&t[i], NULL, adder_main, &a[i]);
	}
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	s1 = ut_stats(e->h);
	is_int(a[2].errs, 0, "%s: every device add succeeded (last error %d)", e->kind,
	       a[2].last_err);
	for (int i = 0; i < WORDS; i++)
		sum += w[i];
	ok(sum == (uint64_t)(a[0].n + a[1].n + ndev),
	   "%s: two CPU threads (%ld and %ld adds) and the device (%ld) lost no add: %" PRIu64,
	   e->kind, a[0].n, a[1].n, ndev, sum);
	ok(s1.cpu_faults > s0.cpu_faults,
	   "%s: the CPU took the page back from the device (%" PRIu64 " faults)", e->kind,
	   s1.cpu_faults - s0.cpu_faults);
	munmap(w, ut_page());
}

/* ---- bad inputs --------------------------------------------------------------- */

static void bad_inputs(struct env *e)
{
	size_t pg = ut_page();
	uint8_t *p = ut_map(4 * pg), *sh;
	char path[] = "/tmp/uhmm-excl-XXXXXX";
	int fd = mkstemp(path);
	uint8_t *f = NULL;

	ut_fill8(p, 4 * pg, 18);
	is_int(uhmm_make_exclusive(NULL, p, pg), -EINVAL, "NULL mirror: -EINVAL");
	is_int(uhmm_make_exclusive(e->m, p, 0), -EINVAL, "len 0: -EINVAL");
	is_int(uhmm_make_exclusive(e->m, (void *)(UINTPTR_MAX - pg), 2 * pg), -EINVAL,
	       "a wrapping range: -EINVAL");
	mprotect(p + 3 * pg, pg, PROT_NONE);
	is_int(uhmm_make_exclusive(e->m, p, 4 * pg), -EFAULT, "PROT_NONE in the range: -EFAULT");
	mprotect(p + 3 * pg, pg, PROT_READ);
	is_int(uhmm_make_exclusive(e->m, p, 4 * pg), -EPERM, "a read-only page: -EPERM");
	munmap(p + 3 * pg, pg);
	is_int(uhmm_make_exclusive(e->m, p, 4 * pg), -EFAULT, "a hole in the range: -EFAULT");
	is_int(uhmm_pin(e->h, p, pg), 0, "uhmm_pin of a page");
	is_int(uhmm_make_exclusive(e->m, p, 2 * pg), -EBUSY, "a pinned page in the range: -EBUSY");
	is_int(uhmm_unpin(e->h, p, pg), 0, "uhmm_unpin");
	ok(released(e->m, p, 3 * pg), "after the errors nothing is exclusive");
	ut_ok8(p, 3 * pg, 18, "nor did the data change");
	sh = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	is_int(uhmm_make_exclusive(e->m, sh, pg), -EINVAL, "shared memory: -EINVAL");
	if (fd >= 0 && !ftruncate(fd, pg))
		f = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	if (f && f != MAP_FAILED)
		is_int(uhmm_make_exclusive(e->m, f, pg), -EINVAL,
		       "a private file mapping: -EINVAL");
	else
		ok(0, "a private file mapping to try: %s", strerror(errno));

	is_int(uhmm_sim_atomic_add(NULL, p, 1, NULL), -EINVAL, "sim atomic: NULL device: -EINVAL");
	is_int(uhmm_sim_atomic_add(e->dev, NULL, 1, NULL), -EINVAL, "sim atomic: NULL: -EINVAL");
	is_int(uhmm_sim_atomic_add(e->dev, p + 4, 1, NULL), -EINVAL,
	       "sim atomic: not 8-byte aligned: -EINVAL");
	mprotect(p, pg, PROT_READ);
	is_int(uhmm_sim_atomic_add(e->dev, p, 1, NULL), -EPERM, "sim atomic: read-only: -EPERM");
	mprotect(p, pg, PROT_NONE);
	is_int(uhmm_sim_atomic_add(e->dev, p, 1, NULL), -EFAULT, "sim atomic: PROT_NONE: -EFAULT");
	is_int(uhmm_sim_atomic_add(e->dev, sh, 1, NULL), -EINVAL, "sim atomic: shared: -EINVAL");
	mprotect(p, pg, PROT_READ);
	ut_ok8(p, 3 * pg, 18, "the data after the refused atomics");
	munmap(sh, pg);
	if (f && f != MAP_FAILED)
		munmap(f, pg);
	if (fd >= 0) {
		close(fd);
		unlink(path);
	}
	munmap(p, 3 * pg);
}

/* ---- READ_MOSTLY duplicates ------------------------------------------------- */

/* Duplicates on another device end when a device takes the pages alone:
 * nobody reads a stale copy afterwards. */
static void read_mostly(struct env *e)
{
	size_t pg = ut_page(), len = 2 * pg;
	uint8_t *p = ut_map(len), *buf = malloc(len);
	uint64_t masks[2] = { 0, 0 };
	int rc;

	ut_fill8(p, len, 21);
	is_int(uhmm_advise(e->h, p, len, UHMM_ADV_READ_MOSTLY, NULL), 0, "%s: READ_MOSTLY",
	       e->kind);
	rc = uhmm_sim_read(e->other, p, buf, len);
	if (rc >= 0)
		rc = uhmm_duplicates(e->h, p, len, masks);
	ok(rc == 0 && masks[0] && masks[1], "%s: the other device read it: duplicates there",
	   e->kind);
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive", e->kind);
	rc = uhmm_duplicates(e->h, p, len, masks);
	ok(rc == 0 && !masks[0] && !masks[1], "%s: no duplicate left (0x%" PRIx64 ")", e->kind,
	   masks[0] | masks[1]);
	p[7] ^= 0xff;
	memset(buf, 0, len);
	rc = uhmm_sim_read(e->other, p, buf, len);
	ok(rc >= 0 && buf[7] == p[7] && ut_chk8(buf + 8, 8, len - 8, 21) == SIZE_MAX,
	   "%s: the other device reads the CPU's write after it", e->kind);
	free(buf);
	munmap(p, len);
}

/* ---- pages on the holder's own device -------------------------------------- */

static void own_private(struct env *e)
{
	size_t pg = ut_page(), len = 4 * pg;
	uint8_t *p = ut_map(len);
	struct uhmm_pte pt[4];

	ut_fill8(p, len, 19);
	is_int(uhmm_migrate(e->h, p, len, e->dev, 0), 0, "%s: pages on its own device", e->kind);
	is_int(uhmm_make_exclusive(e->m, p, len), 0, "%s: exclusive: 0", e->kind);
	ut_check_where(e->h, p, len, ut_dev_id(e->dev), "private pages stay on the device");
	ok(snap(e->m, p, len, pt) == 0 && !pt[0].host && (pt[0].flags & UHMM_PTE_VALID),
	   "%s: their entries are the device's own (host 0)", e->kind);
	{
		uint64_t old = 0, want, *w = (uint64_t *)(void *)(p + pg);
		int rc;

		memcpy(&want, p + pg, sizeof(want));	/* brings page 1 home */
		is_int(uhmm_migrate(e->h, p, len, e->dev, 0), 0, "%s: back on the device", e->kind);
		rc = uhmm_sim_atomic_add(e->dev, w, 3, &old);
		ok(rc >= 1 && old == want, "%s: a device add on its own memory: old right",
		   e->kind);
		ut_check_where(e->h, p, len, ut_dev_id(e->dev), "... and the page stayed there");
		ok(*w == want + 3, "%s: the CPU reads the sum", e->kind);
		*w = want;
	}
	ut_ok8(p, len, 19, "the CPU brings them home as ever");
	munmap(p, len);
}

static void run(struct uhmm *h, struct uhmm_dev *dev, struct uhmm_dev *other, int on_dev,
		const char *kind)
{
	struct env e = { .h = h, .dev = dev, .other = other, .kind = kind };

	e.m = ut_rec_mirror(dev, &e.r);
	e.m2 = ut_rec_mirror(other, &e.r2);
	e.loc = on_dev ? ut_dev_id(dev) : UHMM_LOC_SYSTEM;
	basic(&e);
	others(&e);
	layout(&e);
	lifecycle(&e);
	if (on_dev)
		neighbour_after_fork(&e);
	atomics(&e);
	if (!on_dev) {
		bad_inputs(&e);
		if (ut_feats(h) & UHMM_FEAT_WP)
			read_mostly(&e);
	}
	if (ut_info(dev).kind == UHMM_MEM_PRIVATE && !on_dev)
		own_private(&e);
	uhmm_mirror_close(e.m);
	uhmm_mirror_close(e.m2);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *pv, *pv2, *c;
	struct uhmm_opts o = { .sz = sizeof(o), .access_threshold = UINT32_MAX };

	ut_init(240);
	/* no access-counter migrations: the pages stay where each step puts
	 * them (the device adds alone would reach the threshold) */
	h = ut_open_opts(&o);
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	pv2 = ut_psim(h, "psim2", 16 * UT_MiB);
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	run(h, pv, pv2, 0, "PRIVATE, system pages");
	if (c) {
		run(h, c, pv, 0, "COHERENT, system pages");
		run(h, c, pv, 1, "COHERENT, its own pages");
	} else {
		skip("COHERENT devices cannot exist here");
	}
	uhmm_close(h);
	return tap_done();
}
