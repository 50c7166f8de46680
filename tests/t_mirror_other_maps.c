/* SPDX-License-Identifier: MIT */
/*
 * Mappings uhmm cannot manage, mirrored all the same, for a COHERENT and a
 * PRIVATE sim device: shared anonymous memory, a memfd, a file in
 * /dev/shm, a file in $TMPDIR (a regular file system), a private file
 * mapping.  Where the kernel lets uhmm watch them (UHMM_FEAT_EVENTS_OTHER:
 * a userfaultfd with WP_ASYNC, 6.7), their MADV_DONTNEED and MADV_REMOVE
 * (REMOVE), mremap
 * (REMAP) and munmap (UNMAP) reach the mirror by the next
 * uhmm call, and the sim engine drops its translations: after munmap and
 * a new mapping at the same address its next read faults again (one
 * round, not zero) and reads the new data.  Without the feature (older
 * kernels, UHMM_DISABLE=events_other) the data checks still hold.  A
 * shared mapping of a file opened read-only cannot be watched (the kernel
 * refuses it): it is still mirrored, read right.  Threads mirroring and
 * unmapping shared mappings of their own at once, while memory migrates
 * and faults: every munmap reaches its mirror.
 */
#define _GNU_SOURCE
#include "private.h"

enum kind { SHARED_ANON, MEMFD, SHM_FILE, TMP_FILE, PRIVATE_FILE, NKINDS };

static const char *kind_name[NKINDS] = {
	"shared anonymous", "memfd", "/dev/shm file", "$TMPDIR file", "private file mapping",
};

static int file_for(enum kind k)
{
	char path[4096];
	int fd = -1;

	switch (k) {
	case MEMFD:
		return memfd_create("uhmm-other", MFD_CLOEXEC);
	case SHM_FILE:
		snprintf(path, sizeof(path), "/dev/shm/uhmm-other-XXXXXX");
		fd = mkstemp(path);
		break;
	case TMP_FILE:
	case PRIVATE_FILE:
		return ut_tmpfile();
	default:
		return -1;
	}
	if (fd >= 0)
		unlink(path);
	return fd;
}

/* n pages of kind k holding pattern seed, at `at` if not NULL. */
static uint8_t *map_kind(enum kind k, size_t n, unsigned seed, void *at)
{
	size_t len = n * ut_page();
	int flags = (k == PRIVATE_FILE ? MAP_PRIVATE : MAP_SHARED) | (at ? MAP_FIXED : 0);
	int fd = k == SHARED_ANON ? -1 : file_for(k);
	uint8_t *p, *b = malloc(len);

	if (k != SHARED_ANON && (fd < 0 || ftruncate(fd, len)))
		tap_bail("%s: a file of %zu bytes: %s", kind_name[k], len, strerror(errno));
	ut_fill8(b, len, seed);
	if (fd >= 0 && pwrite(fd, b, len, 0) != (ssize_t)len)
		tap_bail("pwrite: %s", strerror(errno));
	p = mmap(at, len, PROT_READ | PROT_WRITE, flags | (fd < 0 ? MAP_ANONYMOUS : 0), fd, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap %s: %s", kind_name[k], strerror(errno));
	if (fd < 0)
		memcpy(p, b, len);
	if (fd >= 0)
		close(fd);
	free(b);
	return p;
}

static void one(struct uhmm *h, struct uhmm_dev *dev, struct uhmm_mirror *m, struct ut_rec *r,
		enum kind k, const char *dk, int watched)
{
	size_t pg = ut_page(), len = 4 * pg;
	uint8_t *p = map_kind(k, 4, 31 + k, NULL), *q, *buf = malloc(len);
	struct uhmm_pte pt[4];
	const char *kn = kind_name[k];
	int rc, loc[4];

	rc = uhmm_range_fault(m, p, len, UHMM_FAULT_READ, pt);
	ok(rc == 0 && (pt[0].flags & pt[3].flags & UHMM_PTE_VALID), "%s, %s: FAULT_READ (%d)",
	   dk, kn, rc);
	rc = uhmm_sim_read(dev, p, buf, len);
	ok(rc >= 1 && ut_check8(buf, len, 31 + k) == SIZE_MAX,
	   "%s, %s: a device read, %d round(s), data right", dk, kn, rc);
	is_int(uhmm_sim_read(dev, p, buf, len), 0, "%s, %s: again: no round", dk, kn);

	/* MADV_DONTNEED: the file still has the data; the mapping's PTEs go */
	ut_rec_clear(r);
	madvise(p, pg, MADV_DONTNEED);
	uhmm_where(h, p + pg, pg, loc);		/* the next uhmm call */
	if (watched)
		ok(ut_rec_saw(r, UHMM_EV_REMOVE, -1, p, pg), "%s, %s: MADV_DONTNEED: REMOVE heard",
		   dk, kn);

	/* MADV_REMOVE (a hole punched in the file) */
	if (k != PRIVATE_FILE) {
		rc = madvise(p + pg, pg, MADV_REMOVE) ? -errno : 0;
		is_int(rc, 0, "%s, %s: MADV_REMOVE", dk, kn);
		uhmm_where(h, p, pg, loc);
		if (watched)
			ok(ut_rec_saw(r, UHMM_EV_REMOVE, -1, p + pg, pg),
			   "%s, %s: MADV_REMOVE: REMOVE heard", dk, kn);
	}

	/* mremap of the last page elsewhere */
	q = ut_map(pg);
	rc = mremap(p + 3 * pg, pg, pg, MREMAP_MAYMOVE | MREMAP_FIXED, q) == q ? 0 : -errno;
	is_int(rc, 0, "%s, %s: mremap of a page", dk, kn);
	uhmm_where(h, p + pg, pg, loc);
	if (watched)
		ok(ut_rec_saw(r, UHMM_EV_REMAP, -1, p + 3 * pg, pg),
		   "%s, %s: REMAP heard over the old page", dk, kn);
	rc = uhmm_sim_read(dev, q, buf, pg);
	ok(rc >= 0 && ut_chk8(buf, 3 * pg, pg, 31 + k) == SIZE_MAX,
	   "%s, %s: a device read at the new address: the data", dk, kn);
	munmap(q, pg);

	/* munmap of a page */
	munmap(p + 2 * pg, pg);
	uhmm_where(h, p + pg, pg, loc);
	if (watched)
		ok(ut_rec_saw(r, UHMM_EV_UNMAP, -1, p + 2 * pg, pg), "%s, %s: munmap: UNMAP heard",
		   dk, kn);
	is_int(uhmm_sim_read(dev, p + 2 * pg, buf, pg), -EFAULT,
	       "%s, %s: a device read of the unmapped page: -EFAULT", dk, kn);

	/* munmap, and new data mapped at the same address */
	uhmm_sim_read(dev, p, buf, 2 * pg);
	is_int(uhmm_sim_read(dev, p, buf, 2 * pg), 0, "%s, %s: pages 0 and 1 translated", dk, kn);
	munmap(p, 2 * pg);
	map_kind(k, 2, 41 + k, p);
	rc = uhmm_sim_read(dev, p, buf, 2 * pg);
	ok(rc >= 0 && ut_check8(buf, 2 * pg, 41 + k) == SIZE_MAX,
	   "%s, %s: munmap + mmap at the same address: the device reads the new data", dk, kn);
	if (watched)
		ok(rc >= 1, "%s, %s: ... through translations faulted again (%d rounds)", dk, kn,
		   rc);
	munmap(p, 2 * pg);
	free(buf);
}

/* A shared mapping of a file opened read-only: mirrored, not watched. */
static void read_only_file(struct uhmm_dev *dev, struct uhmm_mirror *m, const char *dk)
{
	size_t pg = ut_page();
	char path[4096];
	const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	uint8_t *b = malloc(pg), *p;
	struct uhmm_pte pt;
	int fd, rc;

	snprintf(path, sizeof(path), "%s/uhmm-ro-XXXXXX", dir);
	fd = mkstemp(path);
	ut_fill8(b, pg, 51);
	if (fd < 0 || pwrite(fd, b, pg, 0) != (ssize_t)pg)
		tap_bail("a file in %s: %s", dir, strerror(errno));
	close(fd);
	fd = open(path, O_RDONLY);
	unlink(path);
	p = mmap(NULL, pg, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	rc = uhmm_range_fault(m, p, pg, UHMM_FAULT_READ, &pt);
	ok(rc == 0 && (pt.flags & UHMM_PTE_VALID) && !(pt.flags & UHMM_PTE_WRITE),
	   "%s, read-only shared file: FAULT_READ, VALID without WRITE", dk);
	memset(b, 0, pg);
	rc = uhmm_sim_read(dev, p, b, pg);
	ok(rc >= 0 && ut_check8(b, pg, 51) == SIZE_MAX, "%s, read-only shared file: read right",
	   dk);
	is_int(uhmm_sim_write(dev, p, b, pg), -EPERM, "%s, read-only shared file: write -EPERM",
	       dk);
	munmap(p, pg);
	free(b);
}

/*
 * Threads at once, each with a shared mapping of its own: mirror it,
 * munmap it, and check that the next uhmm call found the mirror told;
 * another thread meanwhile touches memory on a PRIVATE device (faults
 * through the same reader).
 */
#define NTHR 3

struct churner {
	struct uhmm *h;
	struct uhmm_dev *dev;
	struct uhmm_mirror *m;
	struct ut_rec *r;
	int rounds, told, errs;
};

static void *churn_main(void *arg)
{
	struct churner *c = arg;
	size_t pg = ut_page();
	struct uhmm_pte pt[4];
	int loc;

	tdrv_app_thread();
	for (int i = 0; i < c->rounds; i++) {
		uint8_t *p = map_kind(i % 2 ? MEMFD : SHARED_ANON, 4, 61, NULL);
		int rc = uhmm_range_fault(c->m, p, 4 * pg, UHMM_FAULT_READ, pt);

		if (rc && rc != -EBUSY)
			c->errs++;
		/* the hull spans the migrations too: keep only this round's */
		ut_rec_clear(c->r);
		munmap(p, 4 * pg);
		uhmm_where(c->h, &loc, sizeof(loc), &loc);	/* the next uhmm call */
		c->told += ut_rec_saw(c->r, UHMM_EV_UNMAP, -1, p, 4 * pg);
	}
	return NULL;
}

struct toucher {
	uint8_t *p;
	size_t len;
	int *stop;
	long sum;
};

static void *touch_main(void *arg)
{
	struct toucher *t = arg;

	tdrv_app_thread();
	while (!__atomic_load_n(t->stop, __ATOMIC_ACQUIRE))
		for (size_t i = 0; i < t->len; i += ut_page())
			t->sum += t->p[i];
	return NULL;
}

static void threads(struct uhmm *h, struct uhmm_dev *dev, const char *dk)
{
	struct churner c[NTHR];
	struct ut_rec r[NTHR];
	struct toucher t = { .len = 4 * UT_MiB };
	pthread_t th[NTHR], tt;
	int stop = 0, told = 0, rounds = (int)ut_scaled(200, 20), errs = 0;

	t.p = ut_map(t.len);
	t.stop = &stop;
	ut_fill8(t.p, t.len, 62);
	pthread_create(&tt, NULL, touch_main, &t);
	for (int i = 0; i < NTHR; i++) {
		c[i] = (struct churner){ h, dev, ut_rec_mirror(dev, &r[i]), &r[i], rounds, 0, 0 };
		pthread_create(&th[i], NULL, churn_main, &c[i]);
	}
	for (int i = 0; i < 3 * rounds; i++)
		if (uhmm_migrate(h, t.p, t.len, i % 2 ? NULL : dev, 0) && !errs++)
			diag("%s: a migration under the churn failed", dk);
	for (int i = 0; i < NTHR; i++) {
		pthread_join(th[i], NULL);
		told += c[i].told;
		errs += c[i].errs;
		uhmm_mirror_close(c[i].m);
	}
	__atomic_store_n(&stop, 1, __ATOMIC_RELEASE);
	pthread_join(tt, NULL);
	is_int(errs, 0, "%s: %d threads mirroring and unmapping shared memory: no error", dk, NTHR);
	is_int(told, NTHR * rounds, "%s: every munmap reached its mirror by the next call", dk);
	ut_ok8(t.p, t.len, 62, "memory migrated back and forth meanwhile");
	munmap(t.p, t.len);
}

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *dk, int watched)
{
	struct ut_rec r;
	struct uhmm_mirror *m = ut_rec_mirror(dev, &r);
	for (int k = 0; k < NKINDS; k++)
		one(h, dev, m, &r, k, dk, watched);
	read_only_file(dev, m, dk);
	uhmm_mirror_close(m);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *pv, *c;
	int watched;

	ut_init(120);
	h = ut_open();
	watched = !!(ut_feats(h) & UHMM_FEAT_EVENTS_OTHER);
	if (!watched)
		skip("UHMM_FEAT_EVENTS_OTHER absent (a kernel before 6.7, or "
		     "UHMM_DISABLE=events_other): changes of these mappings reach no mirror");
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	run(h, pv, "PRIVATE", watched);
	if (watched)
		threads(h, pv, "PRIVATE");
	if (c)
		run(h, c, "COHERENT", watched);
	else
		skip("COHERENT devices cannot exist here");
	uhmm_close(h);
	return tap_done();
}
