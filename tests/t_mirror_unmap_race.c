/* SPDX-License-Identifier: MIT */
/*
 * A thread munmaps half of a range while the device reads the whole range
 * in a loop (hmm-tests as behaviours), for a COHERENT and a PRIVATE sim
 * device, with the range in system memory and migrated to the device:
 * no crash; each read either returns the right data or -EFAULT; a read
 * that starts after the munmap returned is -EFAULT, never stale data;
 * afterwards the half still mapped reads right, stays where it was, and
 * the device memory behind the unmapped half is freed.
 */
#define _GNU_SOURCE
#include "private.h"

static void race(struct uhmm *h, struct uhmm_dev *dev, int on_dev, const char *kind)
{
	size_t pg = ut_page(), len = 1024 * pg;
	const char *where = on_dev ? "on the device" : "in system memory";
	uint8_t *p = ut_map(len), *buf = malloc(len);
	struct ut_unmapper u = { p, len, 0, 0, 0 };
	int id = ut_dev_id(dev), rc, reads = 0, good = 0, efault = 0, bad = 0, stale = 0;
	int after = 0, max_reads = (int)ut_scaled(4000, 200);
	size_t used0 = ut_dev_used(dev);
	pthread_t t;

	if (!buf)
		tap_bail("malloc");
	ut_fill8(p, len, 40);
	if (on_dev) {
		rc = uhmm_migrate(h, p, len, dev, 0);
		is_int(rc, 0, "%s, %s: migrate to the device", kind, where);
	}
	rc = uhmm_sim_read(dev, p, buf, len);
	ok(rc >= 0 && ut_check8(buf, len, 40) == SIZE_MAX, "%s, %s: first device read (%d)",
	   kind, where, rc);

	pthread_create(&t, NULL, ut_unmap_upper_half, &u);
	while (reads < max_reads) {
		int done_before = __atomic_load_n(&u.unmapped, __ATOMIC_SEQ_CST);
		size_t badat;

		memset(buf, 0, len);
		rc = uhmm_sim_read(dev, p, buf, len);
		reads++;
		if (reads == 2)
			__atomic_store_n(&u.go, 1, __ATOMIC_SEQ_CST);
		if (rc == -EFAULT) {
			efault++;
		} else if (rc < 0) {
			if (!bad++)
				diag("read %d: %d (%s)", reads, rc, ut_err(rc));
		} else if ((badat = ut_check8(buf, len, 40)) != SIZE_MAX) {
			if (!bad++)
				diag("read %d: wrong data at offset %zu (page %zu): 0x%02x, want 0x%02x",
				     reads, badat, badat / pg, buf[badat], ut_pat8(40, badat));
		} else {
			good++;
			if (done_before && !stale++)
				diag("read %d started after munmap returned and succeeded", reads);
		}
		if (done_before && ++after >= 20)
			break;
	}
	/* the loop may end before the unmapper ran (a slow machine) */
	__atomic_store_n(&u.go, 1, __ATOMIC_SEQ_CST);
	pthread_join(t, NULL);
	is_int(u.rc, 0, "%s, %s: munmap of half the range", kind, where);
	diag("%s, %s: %d reads: %d right, %d -EFAULT (%d after the munmap)", kind, where, reads,
	     good, efault, after);
	is_int(bad, 0, "%s, %s: every read racing the munmap gave the right data or -EFAULT",
	       kind, where);
	is_int(stale, 0, "%s, %s: no read that started after the munmap returned succeeded",
	       kind, where);

	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, -EFAULT, "%s, %s: a read of the whole range now: -EFAULT", kind, where);
	rc = uhmm_sim_read(dev, p + len / 2, buf, pg);
	is_int(rc, -EFAULT, "%s, %s: a read of the unmapped half: -EFAULT", kind, where);
	rc = uhmm_sim_read(dev, p + len / 2 - 10, buf, 20);
	is_int(rc, -EFAULT, "%s, %s: a read straddling the edge: -EFAULT", kind, where);
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p, buf, len / 2);
	ok(rc >= 0 && ut_check8(buf, len / 2, 40) == SIZE_MAX,
	   "%s, %s: the half still mapped reads right (%d)", kind, where, rc);
	if (on_dev) {
		ut_check_where(h, p, len / 2, id, "the half still mapped is still on the device");
		is_int(ut_dev_used(dev), used0 + len / 2,
		       "%s, %s: only the mapped half holds device memory", kind, where);
	}
	ut_ok8(p, len / 2, 40, "CPU read of the half still mapped");
	munmap(p, len / 2);
	is_int(ut_dev_used(dev), used0, "%s, %s: no device memory left in use", kind, where);
	free(buf);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv;

	ut_init(180);
	tdrv_app_thread();
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	race(h, pv, 0, "PRIVATE");
	race(h, pv, 1, "PRIVATE");
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	if (c) {
		race(h, c, 0, "COHERENT");
		race(h, c, 1, "COHERENT");
	} else {
		skip("COHERENT: userfaultfd minor faults on shmem are absent or disabled here "
		     "(UHMM_DISABLE=%s): no COHERENT device", getenv("UHMM_DISABLE") ?
		     getenv("UHMM_DISABLE") : "");
	}
	uhmm_close(h);
	return tap_done();
}
