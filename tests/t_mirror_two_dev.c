/* SPDX-License-Identifier: MIT */
/*
 * Two mirrors on two devices reading the same buffer (hmm-tests as
 * behaviours): both read it right; migrated to one, the other still reads
 * it right (and each mirror heard MIGRATE over the range); migrated to
 * the other, the first still reads right; a device write by one is read
 * by the other and by the CPU.  Pairs: two PRIVATE sim devices, two
 * COHERENT ones, and a COHERENT with a PRIVATE one.
 */
#define _GNU_SOURCE
#include "private.h"

#define MAXEV 256

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

static int saw(struct rec *r, enum uhmm_event ev, uintptr_t s, uintptr_t e)
{
	int found = 0;

	pthread_mutex_lock(&r->mu);
	for (int i = 0; i < r->n; i++)
		found |= r->ev[i].ev == ev && r->ev[i].start <= s && r->ev[i].end >= e;
	pthread_mutex_unlock(&r->mu);
	return found;
}

static void clear(struct rec *r)
{
	pthread_mutex_lock(&r->mu);
	r->n = 0;
	pthread_mutex_unlock(&r->mu);
}

static int rd(struct uhmm_dev *d, const void *p, uint8_t *buf, size_t len, unsigned seed)
{
	int rc;

	memset(buf, 0, len);
	rc = uhmm_sim_read(d, p, buf, len);
	if (rc < 0) {
		diag("uhmm_sim_read: %d (%s)", rc, ut_err(rc));
		return 0;
	}
	if (ut_check8(buf, len, seed) != SIZE_MAX) {
		size_t b = ut_check8(buf, len, seed);
		diag("first difference at offset %zu (page %zu): 0x%02x, want 0x%02x", b,
		     b / ut_page(), buf[b], ut_pat8(seed, b));
		return 0;
	}
	return 1;
}

static void run(struct uhmm *h, struct uhmm_dev *a, struct uhmm_dev *b, const char *kind)
{
	struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate2 = cb2 };
	size_t pg = ut_page(), len = 128 * pg;
	uint8_t *p = ut_map(len), *buf = malloc(len);
	struct uhmm_pte *pt = calloc(128, sizeof(*pt));
	struct uhmm_mirror *ma, *mb;
	struct rec ra, rb;
	int ida = ut_dev_id(a), idb = ut_dev_id(b), rc;
	uintptr_t s = (uintptr_t)p, e = s + len;

	if (!buf || !pt)
		tap_bail("malloc");
	memset(&ra, 0, sizeof(ra));
	memset(&rb, 0, sizeof(rb));
	pthread_mutex_init(&ra.mu, NULL);
	pthread_mutex_init(&rb.mu, NULL);
	if (uhmm_mirror_open(a, &ops, &ra, &ma) || uhmm_mirror_open(b, &ops, &rb, &mb))
		tap_bail("uhmm_mirror_open");

	ut_fill8(p, len, 50);
	ok(rd(a, p, buf, len, 50), "%s: device A reads the CPU's data", kind);
	ok(rd(b, p, buf, len, 50), "%s: device B reads the same buffer", kind);
	ok(rd(a, p, buf, len, 50) && rd(b, p, buf, len, 50), "%s: both again (cached)", kind);
	rc = uhmm_range_fault(ma, p, len, 0, pt);
	rc |= uhmm_range_fault(mb, p, len, 0, pt);
	is_int(rc, 0, "%s: both mirrors snapshot the buffer", kind);

	/* migrate to A: B still reads right */
	clear(&ra);
	clear(&rb);
	rc = uhmm_migrate(h, p, len, a, 0);
	is_int(rc, 0, "%s: migrate to device A", kind);
	ok(saw(&ra, UHMM_EV_MIGRATE, s, e) && saw(&rb, UHMM_EV_MIGRATE, s, e),
	   "%s: both mirrors heard MIGRATE over the buffer", kind);
	ok(rd(a, p, buf, len, 50), "%s: A reads its own pages right", kind);
	ok(rd(b, p, buf, len, 50), "%s: B still reads right after the migration to A", kind);
	ok(rd(b, p, buf, len, 50), "%s: B again", kind);
	ok(rd(a, p, buf, len, 50), "%s: A again after B's reads", kind);

	/* a write by B is read by A and by the CPU */
	ut_fill8(buf, len, 51);
	rc = uhmm_sim_write(b, p, buf, len);
	ok(rc >= 0, "%s: B writes the buffer (%d)", kind, rc);
	ok(rd(a, p, buf, len, 51), "%s: A reads B's write", kind);
	ok(rd(b, p, buf, len, 51), "%s: B reads its own write", kind);

	/* to B: A still reads right; a write by A is read by B */
	rc = uhmm_migrate(h, p, len, b, 0);
	is_int(rc, 0, "%s: migrate to device B", kind);
	ut_check_where(h, p, len, idb, "on B");
	ok(rd(a, p, buf, len, 51), "%s: A still reads right after the migration to B", kind);
	ok(rd(b, p, buf, len, 51), "%s: B reads its own pages right", kind);
	ut_fill8(buf, len, 52);
	rc = uhmm_sim_write(a, p + 3, buf, len - 6);
	ok(rc >= 0, "%s: A writes the buffer, unaligned (%d)", kind, rc);
	memset(buf, 0, len);
	rc = uhmm_sim_read(b, p + 3, buf, len - 6);
	ok(rc >= 0 && ut_check8(buf, len - 6, 52) == SIZE_MAX, "%s: B reads A's write (%d)", kind,
	   rc);

	/* half on each */
	rc = uhmm_migrate(h, p + len / 2, len / 2, b, 0);
	rc |= uhmm_migrate(h, p, len / 2, a, 0);
	is_int(rc, 0, "%s: first half to A, second half to B", kind);
	{
		int *want = malloc(128 * sizeof(int));

		for (int i = 0; i < 128; i++)
			want[i] = i < 64 ? ida : idb;
		/* reads may bring another device's PRIVATE pages home; check first */
		ut_check_where_map(h, p, len, want, "half on A, half on B");
		free(want);
	}
	memset(buf, 0, len);
	rc = uhmm_sim_read(a, p + 3, buf, len - 6);
	ok(rc >= 0 && ut_check8(buf, len - 6, 52) == SIZE_MAX, "%s: A reads across both (%d)", kind,
	   rc);
	memset(buf, 0, len);
	rc = uhmm_sim_read(b, p + 3, buf, len - 6);
	ok(rc >= 0 && ut_check8(buf, len - 6, 52) == SIZE_MAX, "%s: B reads across both (%d)", kind,
	   rc);
	ok(ut_check8(p + 3, len - 6, 52) == SIZE_MAX, "%s: the CPU reads the data", kind);

	uhmm_mirror_close(ma);
	uhmm_mirror_close(mb);
	munmap(p, len);
	free(buf);
	free(pt);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *c2, *pv, *pv2;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	pv2 = ut_psim(h, "psim2", 16 * UT_MiB);
	run(h, pv, pv2, "PRIVATE+PRIVATE");
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	c2 = c ? ut_csim_try(h, "csim2", 16 * UT_MiB) : NULL;
	if (c && c2) {
		run(h, c, c2, "COHERENT+COHERENT");
		run(h, c, pv, "COHERENT+PRIVATE");
		run(h, pv2, c2, "PRIVATE+COHERENT");
	} else {
		skip("COHERENT: userfaultfd minor faults on shmem are absent or disabled here "
		     "(UHMM_DISABLE=%s): no COHERENT device", getenv("UHMM_DISABLE") ?
		     getenv("UHMM_DISABLE") : "");
	}
	uhmm_close(h);
	return tap_done();
}
