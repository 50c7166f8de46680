/* SPDX-License-Identifier: MIT */
/*
 * The sim device's DMA engine through its mirror (hmm-tests as behaviours),
 * for a COHERENT and a PRIVATE sim device: device reads of CPU data (one
 * fault round, then none), PROT_NONE is -EFAULT, a device write to an
 * untouched buffer is seen by the CPU, a write to a read-only mapping is
 * -EPERM and writes nothing (then works after mprotect), device pages
 * read and written in place, memory unmapped under running device reads
 * gives -EFAULT and no crash.  Memory the library maps for itself (a
 * PRIVATE sim device's backing memfd, a COHERENT device's view), which the
 * kernel may place in a hole the program just made, is no part of the
 * program's: a DMA access or a range_fault there is -EFAULT and changes
 * nothing (the fuzzer's fuzz_ops-sim-read-after-mremap: the PRIVATE
 * device's memfd landed where an mremap had moved pages away).  A read of
 * pages an mremap or munmap took away is -EFAULT, cached or not.
 */
#define _GNU_SOURCE
#include "private.h"

struct unmapper {
	uint8_t *p;
	size_t len;
	volatile int started;
};

static void *unmap_thread(void *arg)
{
	struct unmapper *u = arg;

	while (!__atomic_load_n(&u->started, __ATOMIC_SEQ_CST))
		;
	usleep(2000);
	munmap(u->p + u->len / 2, u->len / 2);
	return NULL;
}

/* The mapping of /proc/self/maps whose path is `path` at offset 0. */
static uint8_t *find_map(const char *path, size_t *len)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512], name[256];
	unsigned long s, e, off;
	uint8_t *at = NULL;

	if (!f)
		tap_bail("/proc/self/maps");
	while (!at && fgets(line, sizeof(line), f)) {
		name[0] = 0;
		if (sscanf(line, "%lx-%lx %*s %lx %*s %*s %255[^\n]", &s, &e, &off, name) >= 3 &&
		    !off && !strcmp(name, path)) {
			at = (uint8_t *)s;
			*len = e - s;
		}
	}
	fclose(f);
	return at;
}

static void not_ours(struct uhmm_dev *dev, const char *path, const char *kind)
{
	size_t pg = ut_page(), len = 0;
	uint8_t *own = find_map(path, &len), *buf = malloc(pg);
	struct ut_rec rec;
	struct uhmm_mirror *m;
	struct uhmm_pte pte;
	uint8_t before;

	if (!buf)
		tap_bail("malloc");
	if (!own) {
		skip("%s: no mapping %s found", kind, path);
		free(buf);
		return;
	}
	memset(buf, 0x5a, pg);
	before = own[0];
	is_int(uhmm_sim_read(dev, own, buf, pg), -EFAULT,
	       "%s: a device read of the library's own mapping of it is -EFAULT", kind);
	is_int(uhmm_sim_write(dev, own, buf, pg), -EFAULT,
	       "%s: a device write there is -EFAULT", kind);
	ok(own[0] == before, "%s: and writes nothing there", kind);
	m = ut_rec_mirror(dev, &rec);
	is_int(uhmm_range_fault(m, own, pg, UHMM_FAULT_READ, &pte), -EFAULT,
	       "%s: uhmm_range_fault of it is -EFAULT", kind);
	uhmm_mirror_close(m);
	ok(own[0] == before, "%s: the library's mapping is intact", kind);
	free(buf);
}

/* Cached translations of pages an mremap or munmap took away are gone. */
static void moved_away(struct uhmm_dev *dev, const char *kind)
{
	size_t pg = ut_page(), len = 8 * pg;
	uint8_t *p = ut_map(len), *q = ut_map(len), *buf = malloc(len);

	if (!buf)
		tap_bail("malloc");
	ut_fill8(p, len, 3);
	is_int(uhmm_sim_read(dev, p, buf, len), 1, "%s: read before the mremap: one round", kind);
	ok(mremap(p, 3 * pg, 3 * pg, MREMAP_MAYMOVE | MREMAP_FIXED, q) == q,
	   "%s: mremap of 3 pages away", kind);
	is_int(uhmm_sim_read(dev, p, buf, pg), -EFAULT,
	       "%s: a read of the moved page's old address is -EFAULT", kind);
	is_int(uhmm_sim_write(dev, p, buf, pg), -EFAULT,
	       "%s: a write there is -EFAULT", kind);
	ok(uhmm_sim_read(dev, q, buf, 3 * pg) >= 0 && ut_check8(buf, 3 * pg, 3) == SIZE_MAX,
	   "%s: the pages read right where they went", kind);
	munmap(p + 3 * pg, pg);
	is_int(uhmm_sim_read(dev, p + 3 * pg, buf, pg), -EFAULT,
	       "%s: a read of a cached page after its munmap is -EFAULT", kind);
	is_int(uhmm_sim_write(dev, p + 3 * pg, buf, pg), -EFAULT,
	       "%s: a write there is -EFAULT", kind);
	munmap(p + 4 * pg, 4 * pg);
	munmap(q, len);
	free(buf);
}

static void run(struct uhmm *h, struct uhmm_dev *dev, struct uhmm_dev *other,
		const char *kind)
{
	size_t pg = ut_page(), len = 64 * pg;
	uint8_t *p, *buf = malloc(len);
	struct uhmm_stats st0, st1;
	int rc, id = ut_dev_id(dev);

	if (!buf)
		tap_bail("malloc");

	/* a CPU-filled buffer: one round, then the translations are cached */
	p = ut_map(len);
	ut_fill8(p, len, 7);
	st0 = ut_stats(h);
	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, 1, "%s: device read of a CPU-filled buffer takes one fault round", kind);
	ut_ok8(buf, len, 7, "the device read the CPU's data");
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, 0, "%s: a second read takes no fault round", kind);
	ut_ok8(buf, len, 7, "the second read");
	st1 = ut_stats(h);
	ok(st1.dev_faults > st0.dev_faults, "%s: dev_faults counted (%llu)", kind,
	   (unsigned long long)(st1.dev_faults - st0.dev_faults));
	/* an unaligned piece */
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p + 100, buf, 3 * pg);
	ok(rc >= 0 && ut_chk8(buf, 100, 3 * pg, 7) == SIZE_MAX,
	   "%s: unaligned device read (%d)", kind, rc);

	/* the CPU changes the data: a system page is reached in place */
	p[5] = 0x5a;
	rc = uhmm_sim_read(dev, p, buf, pg);
	ok(rc >= 0 && buf[5] == 0x5a, "%s: the device sees a later CPU store", kind);
	p[5] = ut_pat8(7, 5);

	/* on the device itself: data right both ways */
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "%s: migrate to the mirror's device", kind);
	memset(buf, 0, len);
	rc = uhmm_sim_read(dev, p, buf, len);
	ok(rc >= 0, "%s: device read of its own pages (%d rounds)", kind, rc);
	ut_ok8(buf, len, 7, "device read of its own pages");
	ut_fill8(buf, len, 8);
	rc = uhmm_sim_write(dev, p + 10, buf, len - 20);
	ok(rc >= 0, "%s: device write of its own pages, unaligned (%d)", kind, rc);
	ut_check_where(h, p, len, id, "the device write moved nothing");
	ok(ut_chk8(p + 10, 0, len - 20, 8) == SIZE_MAX && p[0] == ut_pat8(7, 0) &&
	   p[len - 1] == ut_pat8(7, len - 1), "%s: the CPU sees the device's write", kind);

	/* on another device: still read right */
	if (other) {
		ut_fill8(p, len, 9);
		rc = uhmm_migrate(h, p, len, other, 0);
		is_int(rc, 0, "%s: migrate to another device", kind);
		memset(buf, 0, len);
		rc = uhmm_sim_read(dev, p, buf, len);
		ok(rc >= 1, "%s: read of another device's pages faults (%d)", kind, rc);
		ut_ok8(buf, len, 9, "read of another device's pages");
	}
	munmap(p, len);

	/* PROT_NONE */
	p = ut_map(len);
	memset(p, 1, len);
	mprotect(p, len, PROT_NONE);
	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, -EFAULT, "%s: device read of PROT_NONE memory", kind);
	munmap(p, len);
	/* a hole */
	rc = uhmm_sim_read(dev, p, buf, len);
	is_int(rc, -EFAULT, "%s: device read of unmapped memory", kind);

	/* device write to an untouched buffer */
	p = ut_map(len);
	ut_fill8(buf, len, 11);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 1, "%s: device write to an untouched buffer (%d rounds)", kind, rc);
	/* first touch by the device, no preferred location: system memory */
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "pages the device populated");
	ut_ok8(p, len, 11, "the CPU reads what the device wrote");
	munmap(p, len);

	/* read-only mapping: -EPERM, nothing written; RW: works */
	p = ut_map(len);
	ut_fill8(p, len, 12);
	mprotect(p, len, PROT_READ);
	ut_fill8(buf, len, 13);
	rc = uhmm_sim_write(dev, p, buf, len);
	is_int(rc, -EPERM, "%s: device write to a PROT_READ mapping", kind);
	ut_ok8(p, len, 12, "nothing written");
	mprotect(p, len, PROT_READ | PROT_WRITE);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 1, "%s: after mprotect RW the write works (%d)", kind, rc);
	ut_ok8(p, len, 13, "the CPU reads the write");
	/* read-only for part of a range the device never saw: nothing at
	 * all written (a plain mprotect reaches the device's cached
	 * translations only through uhmm_mprotect, not yet there) */
	munmap(p, len);
	p = ut_map(len);
	ut_fill8(p, len, 13);
	mprotect(p + len / 2, pg, PROT_READ);
	ut_fill8(buf, len, 14);
	rc = uhmm_sim_write(dev, p, buf, len);
	is_int(rc, -EPERM, "%s: write over a partly read-only range", kind);
	ut_ok8(p, len, 13, "nothing of it written");
	munmap(p, len);
	/* the same where the device wrote before, in system memory and on
	 * the device: its cached translations still say WRITE after a plain
	 * mprotect, the mapping does not; nor do its READ ones after PROT_NONE */
	for (int on_dev = 0; on_dev < 2; on_dev++) {
		p = ut_map(len);
		ut_fill8(p, len, 13);
		if (on_dev)
			uhmm_migrate(h, p, len, dev, 0);
		ut_fill8(buf, len, 14);
		rc = uhmm_sim_write(dev, p, buf, len);
		ok(rc >= 0, "%s, %s: a device write", kind, on_dev ? "device pages" : "system pages");
		mprotect(p + len / 2, pg, PROT_READ);
		ut_fill8(buf, len, 15);
		rc = uhmm_sim_write(dev, p, buf, len);
		is_int(rc, -EPERM, "%s, %s: the next write, over a page made read-only since",
		       kind, on_dev ? "device pages" : "system pages");
		ut_ok8(p, len, 14, "nothing of it written");
		ok(uhmm_sim_read(dev, p, buf, len) >= 0, "%s, %s: a device read", kind,
		   on_dev ? "device pages" : "system pages");
		mprotect(p, len, PROT_NONE);
		is_int(uhmm_sim_read(dev, p, buf, len), -EFAULT,
		       "%s, %s: the next read, of pages made PROT_NONE since", kind,
		       on_dev ? "device pages" : "system pages");
		munmap(p, len);
	}

	/* unmapped under running device reads */
	{
		size_t big = 1024 * pg;
		struct unmapper u;
		pthread_t t;
		uint8_t *b2 = malloc(big);
		int bad = 0, efault = 0;

		p = ut_map(big);
		ut_fill8(p, big, 15);
		u.p = p;
		u.len = big;
		u.started = 0;
		pthread_create(&t, NULL, unmap_thread, &u);
		for (int i = 0; i < 200; i++) {
			if (i == 1)
				__atomic_store_n(&u.started, 1, __ATOMIC_SEQ_CST);
			rc = uhmm_sim_read(dev, p, b2, big);
			if (rc == -EFAULT)
				efault++;
			else if (rc < 0 || ut_check8(b2, big, 15) != SIZE_MAX)
				bad++;
			if (efault > 2)
				break;
		}
		pthread_join(t, NULL);
		ok(!bad, "%s: reads racing munmap: data right or -EFAULT (%d bad)", kind, bad);
		rc = uhmm_sim_read(dev, p, b2, big);
		is_int(rc, -EFAULT, "%s: after the munmap the read is -EFAULT", kind);
		rc = uhmm_sim_read(dev, p, b2, big / 2);
		ok(rc >= 0 && ut_check8(b2, big / 2, 15) == SIZE_MAX,
		   "%s: the half still mapped reads right", kind);
		munmap(p, big / 2);
		free(b2);
	}
	free(buf);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv, *pv2;

	ut_init(120);
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	pv2 = ut_psim(h, "psim2", 16 * UT_MiB);
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	/* before anything migrates: the device's file is mapped once, by us */
	not_ours(pv, "/memfd:psim (deleted)", "PRIVATE");
	if (c)
		not_ours(c, "/memfd:uhmm:csim (deleted)", "COHERENT");
	moved_away(pv, "PRIVATE");
	if (c)
		moved_away(c, "COHERENT");
	run(h, pv, c ? c : pv2, "PRIVATE");
	if (c)
		run(h, c, pv, "COHERENT");
	else
		skip("COHERENT devices cannot exist here");
	uhmm_close(h);
	return tap_done();
}
