/* SPDX-License-Identifier: MIT */
/*
 * Access counters, for a COHERENT and a PRIVATE sim device: a device
 * reading a system-resident buffer access_threshold times migrates it
 * (auto_migrations counts it), fewer reads do not, ACCESSED_BY and
 * PREFERRED_LOCATION=system prevent it, PREFERRED_LOCATION=that device
 * allows it, counters halve every access_decay_ms, memory mapped where
 * other memory was unmapped starts uncounted, uhmm_dev_report_access counts
 * like the DMA engine, a block's move leaves alone what the kernel merged
 * into the buffer's mapping but nobody handed to uhmm, access_threshold
 * UINT32_MAX never migrates, and
 * device readers racing CPU writers lose nothing.
 */
#define _GNU_SOURCE
#include "private.h"

#define THRESHOLD	8
#define LEN		(4 * UT_MiB)		/* two 2 MiB blocks */

#define NO_DECAY_MS	(3600 * 1000)	/* counts that stay for the test */
#define FAST_DECAY_MS	100

/* A context counting to t, halving every decay_ms: the tests of counts
 * halve them never (a slow run crossing a second would change what they
 * count), the test of halving often. */
static struct uhmm *open_counters(uint32_t t, uint32_t decay_ms)
{
	struct uhmm_opts o = { .sz = sizeof(o), .access_threshold = t,
			       .access_decay_ms = decay_ms };

	return ut_open_opts(&o);
}

static uint8_t *buffer(unsigned seed)
{
	uint8_t *p = ut_map_aligned(LEN, 2 * UT_MiB);

	ut_fill64(p, LEN, seed);
	return p;
}

static int reads(struct uhmm_dev *d, const uint8_t *p, int n, uint8_t *buf)
{
	for (int i = 0; i < n; i++) {
		int rc = uhmm_sim_read(d, p, buf, LEN);

		if (rc < 0)
			return rc;
	}
	return 0;
}

static void threshold(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf)
{
	int id = ut_dev_id(d);
	uint8_t *p = buffer(1), *q = buffer(2);
	struct uhmm_stats s0 = ut_stats(h), s1;

	is_int(reads(d, p, THRESHOLD - 1, buf), 0, "%s: %d device reads", kind, THRESHOLD - 1);
	ut_check_where(h, p, LEN, UHMM_LOC_SYSTEM, "fewer reads than the threshold");
	is_int(reads(d, p, 1, buf), 0, "%s: one more read", kind);
	s1 = ut_stats(h);
	ut_check_where(h, p, LEN, id, "at the threshold the buffer migrated");
	is_int(s1.auto_migrations - s0.auto_migrations, LEN / ut_page(),
	       "%s: auto_migrations counts its pages", kind);
	ok(!memcmp(buf, p, LEN) && ut_check64(p, LEN, 1) == SIZE_MAX,
	   "%s: the device read and the CPU reads the data", kind);

	/* report_access counts the same way */
	is_int(uhmm_dev_report_access(d, q, LEN, THRESHOLD - 1), 0, "%s: report %d accesses",
	       kind, THRESHOLD - 1);
	ut_check_where(h, q, LEN, UHMM_LOC_SYSTEM, "reported accesses below the threshold");
	is_int(uhmm_dev_report_access(d, q, ut_page(), 1), 0, "%s: report one more in the first block", kind);
	ut_check_where(h, q, 2 * UT_MiB, id, "the reported block migrated");
	ut_check_where(h, q + 2 * UT_MiB, 2 * UT_MiB, UHMM_LOC_SYSTEM,
		       "the other block stays below its threshold");
	ut_ok64(q, LEN, 2, "the reported buffer's data");
	munmap(p, LEN);
	munmap(q, LEN);
}

static void advice_says_no(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf)
{
	int id = ut_dev_id(d);
	uint8_t *a = buffer(3), *b = buffer(4), *c = buffer(5);

	is_int(uhmm_advise(h, a, LEN, UHMM_ADV_ACCESSED_BY, d), 0, "%s: ACCESSED_BY", kind);
	is_int(uhmm_advise(h, b, LEN, UHMM_ADV_PREFERRED_LOCATION, NULL), 0,
	       "%s: PREFERRED_LOCATION system", kind);
	is_int(uhmm_advise(h, c, LEN, UHMM_ADV_PREFERRED_LOCATION, d), 0,
	       "%s: PREFERRED_LOCATION this device", kind);
	is_int(reads(d, a, 3 * THRESHOLD, buf), 0, "%s: many reads of each", kind);
	reads(d, b, 3 * THRESHOLD, buf);
	reads(d, c, THRESHOLD, buf);
	ut_check_where(h, a, LEN, UHMM_LOC_SYSTEM, "ACCESSED_BY: read in place, never migrated");
	ut_check_where(h, b, LEN, UHMM_LOC_SYSTEM, "preferred system memory: never migrated away");
	ut_check_where(h, c, LEN, id, "preferred this device: migrated toward it");
	ut_ok64(a, LEN, 3, "ACCESSED_BY data");
	/* PREFERRED_LOCATION wins over ACCESSED_BY */
	is_int(uhmm_advise(h, a, LEN, UHMM_ADV_PREFERRED_LOCATION, d), 0,
	       "%s: PREFERRED_LOCATION this device on the ACCESSED_BY range", kind);
	reads(d, a, THRESHOLD, buf);
	ut_check_where(h, a, LEN, id, "preferred wins over accessed-by: migrated");
	/* READ_MOSTLY wins over PREFERRED_LOCATION */
	is_int(uhmm_advise(h, c, LEN, UHMM_ADV_READ_MOSTLY, NULL), 0, "%s: READ_MOSTLY too", kind);
	uhmm_migrate(h, c, LEN, NULL, 0);
	reads(d, c, 2 * THRESHOLD, buf);
	ut_check_where(h, c, LEN, UHMM_LOC_SYSTEM, "read-mostly wins over preferred: not migrated");
	ut_ok64(b, LEN, 4, "preferred-system data");
	ut_ok64(c, LEN, 5, "preferred-device data");
	munmap(a, LEN);
	munmap(b, LEN);
	munmap(c, LEN);
}

/* With counts that never halve, the reads of the halving test add up. */
static void no_decay(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf)
{
	uint8_t *p = buffer(6);

	is_int(reads(d, p, THRESHOLD - 2, buf), 0, "%s: %d reads", kind, THRESHOLD - 2);
	is_int(reads(d, p, THRESHOLD - 2, buf), 0, "%s: %d more, counts not halved", kind,
	       THRESHOLD - 2);
	ut_check_where(h, p, LEN, ut_dev_id(d), "the reads add up: migrated");
	ut_ok64(p, LEN, 6, "its data");
	munmap(p, LEN);
}

/* Counts halving every FAST_DECAY_MS: after two seconds the first reads
 * count for nothing. */
static void decay(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf)
{
	uint8_t *p = buffer(6);

	is_int(reads(d, p, THRESHOLD - 2, buf), 0, "%s: %d reads", kind, THRESHOLD - 2);
	usleep(2000 * 1000);
	is_int(reads(d, p, THRESHOLD - 2, buf), 0, "%s: %d more, %d halvings later", kind,
	       THRESHOLD - 2, 2000 / FAST_DECAY_MS);
	ut_check_where(h, p, LEN, UHMM_LOC_SYSTEM, "the old reads halved away: no migration");
	ut_ok64(p, LEN, 6, "its data");
	munmap(p, LEN);
}

/* Memory mapped where unmapped memory was starts with no counts: the
 * counter of an address is not the new memory's. */
static void unmapped(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf)
{
	uint8_t *p = buffer(7), *q;

	is_int(reads(d, p, THRESHOLD - 1, buf), 0, "%s: %d reads, then munmap", kind,
	       THRESHOLD - 1);
	munmap(p, LEN);
	q = mmap(p, LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE,
		 -1, 0);
	if (q != p)
		tap_bail("mmap at %p again: %s", (void *)p, strerror(errno));
	ut_fill64(q, LEN, 8);
	is_int(reads(d, q, 1, buf), 0, "%s: new memory at the same address, one read", kind);
	ut_check_where(h, q, LEN, UHMM_LOC_SYSTEM, "the old memory's counts are gone: no migration");
	ut_ok64(q, LEN, 8, "the new memory's data");
	munmap(q, LEN);
}

/*
 * The kernel merges the program's buffer with an adjacent anonymous mapping
 * of the same flags that is not the program's to give (a sanitizer's own
 * memory, another library's): the block's move takes the buffer and leaves
 * the neighbour alone - unregistered, in place, its data as it was.  (It
 * used to move the whole mapping, and a sanitizer that then faulted on its
 * own memory with its lock held stopped the thread serving the fault.)
 */
enum access_how { BY_DMA, BY_REPORT };

static void merged_neighbour(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf,
			     enum access_how how)
{
	size_t half = UT_MiB;
	uint8_t *base = ut_map_aligned(2 * half, 2 * UT_MiB), *r, *f;
	int fl = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE;

	munmap(base, 2 * half);
	f = mmap(base + half, half, PROT_READ | PROT_WRITE, fl, -1, 0);
	r = mmap(base, half, PROT_READ | PROT_WRITE, fl, -1, 0);
	if (f != base + half || r != base)
		tap_bail("mmap at %p: %s", (void *)base, strerror(errno));
	ut_fill64(f, half, 11);
	ut_fill64(r, half, 12);
	is_int(ut_maps_count(base, 2 * half), 1, "%s: the buffer and its neighbour are one mapping",
	       kind);
	if (how == BY_REPORT) {
		is_int(uhmm_dev_report_access(d, r, half, THRESHOLD), 0,
		       "%s: %d accesses reported at once", kind, THRESHOLD);
	} else {
		/* the block's counter from an earlier buffer there, one
		 * short: the first read of the new one moves the block */
		for (int i = 0; i < THRESHOLD - 1; i++)
			if (uhmm_sim_read(d, r, buf, half) < 0)
				tap_bail("uhmm_sim_read");
		munmap(r, half);
		if (mmap(base, half, PROT_READ | PROT_WRITE, fl, -1, 0) != base)
			tap_bail("mmap at %p again: %s", (void *)base, strerror(errno));
		ut_fill64(r, half, 12);
		is_int(ut_maps_count(base, 2 * half), 1, "%s: a new buffer, merged again", kind);
		is_int(uhmm_sim_read(d, r, buf, half) < 0, 0, "%s: one more device read", kind);
	}
	ut_check_where(h, r, half, ut_dev_id(d), "the buffer the device accessed migrated");
	ut_check_where(h, f, half, UHMM_LOC_SYSTEM, "its merged neighbour stayed in system memory");
	ok(!ut_uffd_armed(f), "%s: the neighbour is not registered with userfaultfd", kind);
	ut_ok64(f, half, 11, "the neighbour's data");
	ut_ok64(r, half, 12, "the buffer's data");
	munmap(base, 2 * half);
}

struct reader {
	struct uhmm_dev *d;
	uint8_t *p;
	int rounds, errors;
	uint8_t *buf;
};

static void *device_reader(void *arg)
{
	struct reader *r = arg;

	for (int i = 0; i < r->rounds; i++)
		if (uhmm_sim_read(r->d, r->p, r->buf, LEN) < 0)
			r->errors++;
	return NULL;
}

/* Two device readers migrate the buffer while the CPU increments one
 * counter per page: every increment survives. */
static void racing(struct uhmm *h, struct uhmm_dev *d, const char *kind)
{
	uint8_t *p = ut_map_aligned(LEN, 2 * UT_MiB);
	uint64_t *w = (uint64_t *)(void *)p;
	size_t npg = LEN / ut_page(), step = ut_page() / 8, bad = 0;
	/* the two readers' reads reach the threshold at any scale */
	int rounds = (int)ut_scaled(30, THRESHOLD), incs = (int)ut_scaled(40, 4);
	struct reader r[2];
	pthread_t t[2];
	uint64_t moved0 = ut_stats(h).auto_migrations;

	memset(p, 0, LEN);
	for (int i = 0; i < 2; i++) {
		r[i] = (struct reader){ d, p, rounds, 0, malloc(LEN) };
		pthread_create(&t[i], NULL, device_reader, &r[i]);
	}
	for (int k = 0; k < incs; k++)
		for (size_t i = 0; i < npg; i++)
			w[i * step]++;
	for (int i = 0; i < 2; i++) {
		pthread_join(t[i], NULL);
		free(r[i].buf);
	}
	for (size_t i = 0; i < npg; i++)
		bad += w[i * step] != (uint64_t)incs;
	is_int(r[0].errors + r[1].errors, 0, "%s: device readers racing the CPU: no error", kind);
	is_int(bad, 0, "%s: every CPU increment survived the migrations", kind);
	ok(ut_stats(h).auto_migrations > moved0, "%s: the readers did migrate it", kind);
	munmap(p, LEN);
}

static void per_device(struct uhmm *h, struct uhmm_dev *d, const char *kind)
{
	uint8_t *buf = malloc(LEN);

	threshold(h, d, kind, buf);
	advice_says_no(h, d, kind, buf);
	no_decay(h, d, kind, buf);
	merged_neighbour(h, d, kind, buf, BY_DMA);
	merged_neighbour(h, d, kind, buf, BY_REPORT);
	racing(h, d, kind);
	free(buf);
}

typedef void per_kind(struct uhmm *h, struct uhmm_dev *d, const char *kind, uint8_t *buf);

/* fn in a context of its own, halving every decay_ms, on a PRIVATE
 * device: nothing else was counted at its addresses. */
static void in_context(uint32_t decay_ms, const char *name, per_kind *fn)
{
	struct uhmm *h = open_counters(THRESHOLD, decay_ms);
	struct uhmm_dev *d = ut_psim(h, name, 16 * UT_MiB);
	uint8_t *buf = malloc(LEN);

	fn(h, d, "PRIVATE", buf);
	free(buf);
	uhmm_close(h);
}

static void never(void)
{
	struct uhmm *h = open_counters(UINT32_MAX, 0);
	struct uhmm_dev *d = ut_psim(h, "never", 16 * UT_MiB);
	uint8_t *p = buffer(9), *buf = malloc(LEN);

	is_int(reads(d, p, 4 * THRESHOLD, buf), 0, "access_threshold UINT32_MAX: many reads");
	is_int(uhmm_dev_report_access(d, p, LEN, UINT32_MAX), 0, "... and a huge report");
	ut_check_where(h, p, LEN, UHMM_LOC_SYSTEM, "access_threshold UINT32_MAX: never migrated");
	is_int(ut_stats(h).auto_migrations, 0, "auto_migrations 0");
	free(buf);
	munmap(p, LEN);
	uhmm_close(h);
}

static void bad_input(struct uhmm_dev *d)
{
	char x;

	is_int(uhmm_dev_report_access(NULL, &x, 1, 1), -EINVAL, "report_access(NULL dev): -EINVAL");
	is_int(uhmm_dev_report_access(d, &x, 0, 1), -EINVAL, "report_access(len 0): -EINVAL");
	is_int(uhmm_dev_report_access(d, (void *)(UINTPTR_MAX - 100), 4096, 1), -EINVAL,
	       "report_access(wrapping range): -EINVAL");
	is_int(uhmm_dev_report_access(d, &x, 1, 0), 0, "report_access(count 0): nothing, 0");
}

/*
 * A report over a range with holes counts nothing, and manages nothing
 * either: the range reaches over whatever else is mapped on the way (the
 * program's heap, its data, a sanitizer's memory), which was registered
 * with the context's userfaultfd before.
 */
static void report_over_holes(struct uhmm *h, struct uhmm_dev *d)
{
	size_t pg = ut_page();
	uint8_t *r = mmap(NULL, 3 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int rc;

	if (r == MAP_FAILED)
		tap_bail("mmap: %s", strerror(errno));
	munmap(r, pg);		/* a hole before the page in the middle */
	memset(r + pg, 1, 2 * pg);
	rc = uhmm_dev_report_access(d, (void *)0x10000, (uintptr_t)r + 3 * pg - 0x10000, 1);
	is_int(rc, 0, "report_access from 0x10000 past a buffer of ours");
	ok(!ut_uffd_armed(r + pg), "that buffer (beyond holes) was not made managed");
	is_int(ut_where_count(h, r + pg, 2 * pg, UHMM_LOC_SYSTEM), 2, "nor moved");
	munmap(r + pg, 2 * pg);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *p;

	ut_init(600);
	h = open_counters(THRESHOLD, NO_DECAY_MS);
	p = ut_psim(h, "private", 32 * UT_MiB);
	per_device(h, p, "PRIVATE");
	c = ut_csim_try(h, "coherent", 32 * UT_MiB);
	if (c)
		per_device(h, c, "COHERENT");
	else
		skip("COHERENT devices need userfaultfd minor faults on shmem (absent or disabled)");
	bad_input(p);
	report_over_holes(h, p);
	uhmm_close(h);
	in_context(FAST_DECAY_MS, "halving", decay);
	in_context(NO_DECAY_MS, "forgotten", unmapped);
	never();
	return tap_done();
}
