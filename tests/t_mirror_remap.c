/* SPDX-License-Identifier: MIT */
/*
 * Layout changes under a device's translations (hmm-tests as behaviours),
 * for a COHERENT and a PRIVATE sim device:
 *  - munmap + mmap(MAP_FIXED) of new data at the same address after a
 *    device read: the next device read sees the new data, not a stale
 *    translation (the old range in system memory, on the device, and
 *    replaced by MAP_FIXED without a munmap); device memory behind the
 *    unmapped range is freed; a device write lands in the new memory;
 *  - mremap(MREMAP_MAYMOVE | MREMAP_FIXED) of a range migrated to the
 *    device: the data is right at the new address (CPU and device read),
 *    the device pages followed (uhmm_where), a device read of the old
 *    address is -EFAULT (no stale data), and a mirror's invalidate heard
 *    REMAP or UNMAP over the old range.
 */
#define _GNU_SOURCE
#include "private.h"

#define MAXEV 512

struct rec {
	pthread_mutex_t mu;
	struct uhmm_inval ev[MAXEV];
	int n;
};

static void cb2(struct uhmm_mirror *m, const struct uhmm_inval *inv)
{
	struct rec *r = uhmm_mirror_priv(m);

	pthread_mutex_lock(&r->mu);
	if (r->n < MAXEV)
		r->ev[r->n++] = *inv;
	pthread_mutex_unlock(&r->mu);
}

/* Do events of kinds ev1/ev2 together cover every page of [s, e)? */
static int covered(struct rec *r, enum uhmm_event ev1, enum uhmm_event ev2, uintptr_t s,
		   uintptr_t e)
{
	size_t pg = ut_page();
	int all = 1;

	pthread_mutex_lock(&r->mu);
	for (uintptr_t a = s; a < e && all; a += pg) {
		int hit = 0;

		for (int i = 0; i < r->n && !hit; i++)
			hit = (r->ev[i].ev == ev1 || r->ev[i].ev == ev2) &&
			      r->ev[i].start <= a && r->ev[i].end >= a + pg;
		all = hit;
	}
	pthread_mutex_unlock(&r->mu);
	return all;
}

static void dump(struct rec *r)
{
	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n && i < 16; i++)
		diag("  event %d: [%#lx, %#lx) ev %d initiator %d", i,
		     (unsigned long)r->ev[i].start, (unsigned long)r->ev[i].end,
		     (int)r->ev[i].ev, r->ev[i].initiator);
	pthread_mutex_unlock(&r->mu);
}

static void clear(struct rec *r)
{
	pthread_mutex_lock(&r->mu);
	r->n = 0;
	pthread_mutex_unlock(&r->mu);
}

/* A device read of [p, p+len) into buf: one assertion on data. */
static void dev_read_ok(struct uhmm_dev *dev, const void *p, uint8_t *buf, size_t len,
			unsigned seed, const char *kind, const char *what)
{
	int rc;
	size_t bad;

	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p, buf, len);
	bad = rc >= 0 ? ut_check8(buf, len, seed) : 0;
	if (!ok(rc >= 0 && bad == SIZE_MAX, "%s: %s (%d rounds)", kind, what, rc)) {
		if (rc < 0)
			diag("uhmm_sim_read: %d (%s)", rc, ut_err(rc));
		else
			diag("first difference at offset %zu (page %zu): 0x%02x, want 0x%02x%s",
			     bad, bad / ut_page(), buf[bad], ut_pat8(seed, bad),
			     ut_check8(buf, len, seed - 1) == SIZE_MAX ?
			     " (the whole buffer is the OLD data: stale translation)" : "");
	}
}

static void *map_fixed(void *at, size_t len)
{
	void *q = mmap(at, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);

	if (q != at)
		tap_bail("mmap(MAP_FIXED at %p): %s", at, strerror(errno));
	return q;
}

static void remap_new_data(struct uhmm *h, struct uhmm_dev *dev, const char *kind)
{
	size_t pg = ut_page(), len = 64 * pg;
	uint8_t *buf = malloc(len), *p;
	int id = ut_dev_id(dev), rc;
	size_t used0;

	if (!buf)
		tap_bail("malloc");

	/* a. system memory: read, munmap, mmap new data, read */
	p = ut_map(len);
	ut_fill8(p, len, 20);
	dev_read_ok(dev, p, buf, len, 20, kind, "system memory: first device read");
	dev_read_ok(dev, p, buf, len, 20, kind, "system memory: cached device read");
	munmap(p, len);
	map_fixed(p, len);
	ut_fill8(p, len, 21);
	dev_read_ok(dev, p, buf, len, 21,
		    kind, "system memory: after munmap + mmap(MAP_FIXED) the device reads the new data");
	munmap(p, len);

	/* b. on the device: the same, and the device memory is freed */
	used0 = ut_dev_used(dev);
	p = ut_map(len);
	ut_fill8(p, len, 22);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate to the device", kind);
	dev_read_ok(dev, p, buf, len, 22, kind, "device pages: first device read");
	dev_read_ok(dev, p, buf, len, 22, kind, "device pages: cached device read");
	munmap(p, len);
	map_fixed(p, len);
	ut_fill8(p, len, 23);
	dev_read_ok(dev, p, buf, len, 23,
		    kind, "device pages: after munmap + mmap(MAP_FIXED) the device reads the new data");
	ut_check_unmoved(h, p, len, "the new mapping lives in system memory");
	is_int(ut_dev_used(dev), used0, "%s: device memory behind the unmapped range is freed", kind);
	ut_fill8(buf, len, 24);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 0, "%s: device write to the new mapping (%d)", kind, rc);
	ut_ok8(p, len, 24, "the CPU reads the device write in the new mapping");
	munmap(p, len);

	/* c. mmap(MAP_FIXED) straight over the migrated range, no munmap */
	p = ut_map(len);
	ut_fill8(p, len, 25);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate to the device", kind);
	ut_check_where(h, p, len, id, "migrated");
	dev_read_ok(dev, p, buf, len, 25, kind, "device pages: device read before MAP_FIXED");
	map_fixed(p, len);
	ut_fill8(p, len, 26);
	dev_read_ok(dev, p, buf, len, 26,
		    kind, "device pages replaced by mmap(MAP_FIXED): the device reads the new data");
	is_int(ut_dev_used(dev), used0, "%s: device memory behind the replaced range is freed", kind);
	/* half of it again, on the device, replaced again */
	rc = uhmm_migrate(h, p, len / 2, dev, 0);
	is_int(rc, 0, "%s: migrate half of the new mapping", kind);
	dev_read_ok(dev, p, buf, len, 26, kind, "half on the device: device read");
	map_fixed(p + len / 4, len / 2);
	ut_fill8(p + len / 4, len / 2, 27);
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p, buf, len);
	ok(rc >= 0 && ut_chk8(buf, 0, len / 4, 26) == SIZE_MAX &&
	   ut_check8(buf + len / 4, len / 2, 27) == SIZE_MAX &&
	   ut_chk8(buf + 3 * len / 4, 3 * len / 4, len / 4, 26) == SIZE_MAX,
	   "%s: a middle part replaced: the device reads old, new, old where each is (%d)",
	   kind, rc);
	munmap(p, len);
	free(buf);
}

static void remap_migrated(struct uhmm *h, struct uhmm_dev *dev, const char *kind)
{
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate2 = cb2 };
	size_t pg = ut_page(), len = 64 * pg;
	uint8_t *buf = malloc(len), *p, *dst, *q;
	struct uhmm_pte *pt = calloc(64, sizeof(*pt));
	struct uhmm_mirror *m;
	struct rec r;
	int id = ut_dev_id(dev), rc;
	size_t used0 = ut_dev_used(dev);

	if (!buf || !pt)
		tap_bail("malloc");
	memset(&r, 0, sizeof(r));
	pthread_mutex_init(&r.mu, NULL);
	rc = uhmm_mirror_open(dev, &ops, &r, &m);
	if (rc)
		tap_bail("uhmm_mirror_open: %d (%s)", rc, ut_err(rc));

	p = ut_map(len);
	dst = ut_map(len);		/* where it goes: a reservation */
	ut_fill8(p, len, 30);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate to the device", kind);
	dev_read_ok(dev, p, buf, len, 30, kind, "device read before mremap");
	rc = uhmm_range_fault(m, p, len, 0, pt);
	is_int(rc, 0, "%s: the mirror snapshots the range", kind);
	ok(pt[0].loc == id && (pt[0].flags & UHMM_PTE_VALID), "%s: snapshot: on the device (%d, 0x%x)",
	   kind, pt[0].loc, pt[0].flags);

	clear(&r);
	q = mremap(p, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
	if (q == MAP_FAILED && errno == EFAULT && ut_maps_count(p, len) > 1) {
		skip("%s: the migrated range is %ld mappings (pages not contiguous in device "
		     "memory): mremap across mappings is EFAULT, documented in uhmm.h",
		     kind, ut_maps_count(p, len));
		munmap(p, len);
		munmap(dst, len);
		uhmm_mirror_close(m);
		free(buf);
		free(pt);
		return;
	}
	if (!ok(q == dst, "%s: mremap(MAYMOVE | FIXED) of the migrated range", kind))
		tap_bail("mremap: %s", strerror(errno));

	/* a uhmm call after mremap returned: the event is applied by then */
	ut_check_where(h, q, len, id, "the device pages followed the mapping");
	ok(covered(&r, UHMM_EV_REMAP, UHMM_EV_UNMAP, (uintptr_t)p, (uintptr_t)p + len),
	   "%s: invalidate heard REMAP/UNMAP over the whole old range", kind) || (dump(&r), 0);
	dev_read_ok(dev, q, buf, len, 30, kind, "device read at the new address");
	ut_check_where(h, q, len, id, "... which moved nothing");
	/* (a CPU read brings PRIVATE pages home: after the device's) */
	ut_ok8(q, len, 30, "CPU read at the new address");
	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, -EFAULT, "%s: device read at the old address: -EFAULT, no stale translation", kind);
	rc = uhmm_range_fault(m, p, len, 0, pt);
	ok(rc == 0 && (pt[0].flags & UHMM_PTE_ERROR) && (pt[len / pg - 1].flags & UHMM_PTE_ERROR),
	   "%s: snapshot of the old address: ERROR (%d, 0x%x)", kind, rc, pt[0].flags);

	/* the moved pages work both ways */
	q[7] = 0x77;
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, q, buf, pg);
	ok(rc >= 0 && buf[7] == 0x77, "%s: the device sees a CPU store at the new address", kind);
	q[7] = ut_pat8(30, 7);
	ut_fill8(buf, len, 31);
	rc = uhmm_sim_write(dev, q + pg, buf, len - 2 * pg);
	ok(rc >= 0, "%s: device write at the new address (%d)", kind, rc);
	ok(ut_chk8(q, 0, pg, 30) == SIZE_MAX && ut_check8(q + pg, len - 2 * pg, 31) == SIZE_MAX &&
	   ut_chk8(q + len - pg, len - pg, pg, 30) == SIZE_MAX,
	   "%s: the CPU reads the device write at the new address", kind);

	/* moved back and home: no device memory left over */
	rc = uhmm_migrate(h, q, len, NULL, 0);
	is_int(rc, 0, "%s: migrate back to system memory", kind);
	ok(ut_chk8(q, 0, pg, 30) == SIZE_MAX && ut_check8(q + pg, len - 2 * pg, 31) == SIZE_MAX,
	   "%s: data right after migrating back", kind);
	is_int(ut_dev_used(dev), used0, "%s: no device memory left in use", kind);
	munmap(q, len);
	uhmm_mirror_close(m);
	free(buf);
	free(pt);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	remap_new_data(h, pv, "PRIVATE");
	remap_migrated(h, pv, "PRIVATE");
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	if (c) {
		remap_new_data(h, c, "COHERENT");
		remap_migrated(h, c, "COHERENT");
	} else {
		skip("COHERENT: userfaultfd minor faults on shmem are absent or disabled here "
		     "(UHMM_DISABLE=%s): no COHERENT device", getenv("UHMM_DISABLE") ?
		     getenv("UHMM_DISABLE") : "");
	}
	uhmm_close(h);
	return tap_done();
}
