/* SPDX-License-Identifier: MIT */
/*
 * The reference-model stress test.  Random sequences of operations run
 * against regions of every kind (malloc'd and unaligned, private and
 * shared anonymous mmaps) while a plain byte array per region says what
 * every byte must be; after every step the touched regions are read back
 * whole (by the CPU, or by a device through its mirror), and every region
 * every SM_FULL_CHECK steps.  The operations: migrations of sub-ranges to
 * any device or system memory, with and without flags; CPU writes from
 * the main thread and from worker threads on disjoint sub-ranges while
 * the main thread migrates; device reads, writes and atomics
 * (uhmm_sim_*); reported accesses; advice of every kind; prefetch;
 * pins; munmap + mmap,
 * free + malloc; mremap that grows, shrinks, moves; madvise DONTNEED;
 * uhmm_mprotect read-only and back; a device removed and added; fork,
 * with a child that checks everything and writes its own data, and a
 * parent that finds its data unchanged.  Errors the contract allows
 * (-ENOMEM, -EINVAL for shared memory, -EPERM for read-only, -EBUSY for
 * pins, EFAULT from mremap across mappings) are expected where they may
 * come, and checked to have changed nothing.
 *
 * Seeded and reproducible: UHMM_STRESS_SEED=S runs seed S alone,
 * UHMM_STRESS_SEEDS=N runs N seeds (default 3, from 1 or from S),
 * UHMM_STRESS_STEPS=N steps per seed (default 34000; 10000 under ASan,
 * 5000 under TSan).  A divergence prints the seed, the step, the last 20
 * steps (UHMM_STRESS_LOG_ALL=1: the last 1023), the first differing byte,
 * where the library says its page lives and what each device reads there;
 * UHMM_STRESS_TRACE=1 adds the trace events that moved that page;
 * UHMM_STRESS_LOG_END=1 prints the last steps of a run that did not
 * diverge too (a replay, to see what a failed run was doing).  `make
 * stress` runs it long.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "stress_model.h"

#define NREG		6
#define MAX_PAGES	72	/* the most pages a region grows to */
#define SM_FULL_CHECK	64	/* every region checked every this many steps */
#define MAX_WORKERS	3

/*
 * Known-limitation guard (README, "Known limitations"): device pages
 * behind a MADV_DONTNEED are freed by the next uhmm call or the worker,
 * and a munmap + mmap at the same address in the microseconds before that
 * can be hit.  The contract leaves that race open, so before unmapping a
 * region the test makes one uhmm call (uhmm_where), which applies the
 * events first.  0 leaves it out (and may see the documented race).
 */
#define SM_GUARD_DONTNEED_UNMAP 1

/*
 * 1: one uhmm call right after each MADV_DONTNEED, which applies the
 * events first.  0 (the default since the fix): the CPU reads at once, as
 * a program would.  It found old data right after MADV_DONTNEED of pages
 * on a COHERENT device (a fault's window placed between the kernel's zap
 * and our applying the REMOVE; fixed, docs/RELIABILITY.md).
 */
#ifndef SM_DRAIN_AFTER_DONTNEED
#define SM_DRAIN_AFTER_DONTNEED 0
#endif

/*
 * Operation sequences that found library bugs (docs/RELIABILITY.md), each
 * behind a switch; to replay one with another value:
 * make CFLAGS='-O2 -g -DSM_MALLOC_DEVICE_WRITES=1' build/tests/t_stress_model.
 *
 * SM_MALLOC_DEVICE_WRITES (1 since the allocator fix): device writes
 * (uhmm_sim_write, and uhmm_sim_atomic_add) into a malloc'd region, whose
 * edge pages hold malloc's metadata and the neighbouring regions.  It
 * found a data loss (a device fault's first touch evicting pages of the
 * same range, then zeroing them as strangers: t_mirror_first_touch_evict)
 * and writes that gave -EBUSY, each round invalidating its own mirror
 * (READ_MOSTLY write-moves evicting each other, duplicates of a block's
 * other pages: t_policy_read_mostly; the device-memory allocator refusing
 * a free page in a chunk no block had bound: t_dev_stray_pages), all
 * fixed.
 *
 * SM_MREMAP_MOVE (1 since the allocator fix): mremap(MREMAP_MAYMOVE |
 * MREMAP_FIXED) of a region to a new spot.  Its SIGSEGV after a move was
 * the model's (a partial move since Linux 6.17, see undo_partial_move);
 * the pages it moves keep their device pages, which is how the allocator
 * came to look for a free page outside a page's own chunk.
 *
 * SM_KEEP_EXCLUSIVE (still 0): leave a word uhmm_sim_atomic_add made the
 * device's alone with the device.  madvise(MADV_DONTNEED) over such a
 * page, then a CPU read, still gets the device's data back instead of
 * zeros now and then (seeds 2 and 13 of 14 with every switch on): the
 * CPU's fault on such a page looks at the pending events and places the
 * page in two steps (README, known limitations).  With 0 the CPU reads
 * the word at once, which takes the page back before anything else
 * happens to it.
 */
#ifndef SM_MALLOC_DEVICE_WRITES
#define SM_MALLOC_DEVICE_WRITES	1
#endif
#ifndef SM_MREMAP_MOVE
#define SM_MREMAP_MOVE		1
#endif
#ifndef SM_KEEP_EXCLUSIVE
#define SM_KEEP_EXCLUSIVE	0
#endif
/*
 * SM_DETECT_PINS (0): contexts opened with UHMM_OPEN_DETECT_PINS, whose
 * migrations move system pages out with UFFDIO_MOVE.  With it (and
 * SM_KEEP_EXCLUSIVE, for the sequence), seed 2 loses a CPU writer's byte
 * beside a migration about one run in twelve ("writer 0 ... read back
 * 0x00"); never in as many without it.  Not understood yet.
 */
#ifndef SM_DETECT_PINS
#define SM_DETECT_PINS		0
#endif
/*
 * SM_FOREIGN_NEIGHBOURS (1): a private anonymous region is made with a
 * mapping of the same flags right after it, filled with data of its own
 * and never given to uhmm, which the kernel merges with the region (as it
 * merged a sanitizer's memory with a program's buffer, which the access
 * counters then moved, docs/RELIABILITY.md).  Every full check finds its
 * bytes as they were, in system memory, and the mapping holding it not
 * registered with userfaultfd.
 */
#ifndef SM_FOREIGN_NEIGHBOURS
#define SM_FOREIGN_NEIGHBOURS	1
#endif

static size_t pg;

struct devs {
	struct uhmm_dev *d[3];	/* COHERENT (or NULL), PRIVATE, the one added and removed */
	int id[3];
	int n2;			/* how many times d[2] was added */
};

struct counts {
	unsigned long op[32];
	double secs[32];	/* time in each kind of step, checks included */
	unsigned long enomem, einval, eperm, ebusy, efault_mremap, partial_mremap, forks, removes;
	unsigned long neighbours, merged;	/* SM_FOREIGN_NEIGHBOURS */
};

static struct uhmm *h;
static struct devs dv;
static struct sm_region reg[NREG];

/* A mapping beside a region that is none of uhmm's business. */
#define NB_MAX_PAGES	3
struct neighbour {
	uint8_t *p;		/* NULL: none */
	size_t len;
	uint8_t *model;		/* NB_MAX_PAGES pages */
};
static struct neighbour nb[NREG];
static struct counts cnt;
static struct sm_rng rng;
static uint8_t *scratch;	/* MAX_PAGES pages + 1 */
static int *where_a, *where_b;	/* MAX_PAGES + 2 each */

/* ---------------------------------------------------------------- */
/* Helpers                                                           */
/* ---------------------------------------------------------------- */

static size_t reg_pages(const struct sm_region *r, size_t off, size_t n)
{
	return ut_npages(r->p + off, n);
}

/* A random non-empty sub-range [*off, *off + *n) of the region. */
static void pick_range(const struct sm_region *r, size_t *off, size_t *n)
{
	*off = sm_below(&rng, r->len);
	*n = sm_range(&rng, 1, r->len - *off);
	/* often whole, often page-sized: the shapes programs use */
	if (sm_pct(&rng, 15)) {
		*off = 0;
		*n = r->len;
	}
}

/* A random page-aligned sub-range of a page-aligned region. */
static void pick_pages(const struct sm_region *r, size_t *off, size_t *n)
{
	size_t np = r->len / pg, a = sm_below(&rng, np);

	*off = a * pg;
	*n = sm_range(&rng, 1, np - a) * pg;
}

/* A device, or NULL for system memory when sys is allowed. */
static struct uhmm_dev *pick_dev(bool sys)
{
	struct uhmm_dev *c[4];
	int n = 0;

	if (sys)
		c[n++] = NULL;
	for (int i = 0; i < 3; i++)
		if (dv.d[i])
			c[n++] = dv.d[i];
	return c[sm_below(&rng, (size_t)n)];
}

static int dev_id(const struct uhmm_dev *d)
{
	for (int i = 0; i < 3; i++)
		if (dv.d[i] && dv.d[i] == d)
			return dv.id[i];
	return UHMM_LOC_SYSTEM;
}

static const char *dev_name(const struct uhmm_dev *d)
{
	static const char *const names[] = { "coherent", "private", "extra" };

	for (int i = 0; i < 3; i++)
		if (dv.d[i] && dv.d[i] == d)
			return names[i];
	return "system";
}

static int pick_region(void)
{
	return (int)sm_below(&rng, NREG);
}

/* A region of one of the given kinds (bit per kind), or -1. */
static int pick_region_of(unsigned kinds)
{
	int c[NREG], n = 0;

	for (int i = 0; i < NREG; i++)
		if (kinds & 1u << reg[i].kind)
			c[n++] = i;
	return n ? c[sm_below(&rng, (size_t)n)] : -1;
}

#define K_MALLOC (1u << SM_MALLOC)
#define K_ANON   (1u << SM_ANON)
#define K_SHARED (1u << SM_SHARED)
#define K_ALL    (K_MALLOC | K_ANON | K_SHARED)

static int locate(const void *addr)
{
	int loc = -100;

	return uhmm_where(h, addr, 1, &loc) ? -100 : loc;
}

/* The mappings around addr, from /proc/self/maps. */
static void show_maps(uintptr_t addr)
{
	FILE *f = fopen("/proc/self/maps", "r");
	uintptr_t a = ut_pg_down((void *)addr);
	char line[512];

	while (f && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && lo <= a + pg && hi + pg > a)
			printf("#   maps: %s", line);
	}
	if (f)
		fclose(f);
}

/* With UHMM_STRESS_TRACE=1: the trace events over the page at addr (the
 * ring keeps the last UHMM_TRACE_EVENTS). */
static void show_trace(uintptr_t addr)
{
	static struct uhmm_trace_event ev[256];
	uintptr_t a = ut_pg_down((void *)addr);
	uint64_t next = 0;
	int k;

	while ((k = uhmm_trace_read(h, &next, ev, 256)) > 0) {
		for (int i = 0; i < k; i++) {
			const struct uhmm_trace_event *e = &ev[i];

			if (e->addr > a || e->addr + e->len <= a)
				continue;
			diag("  trace %llu: %s (%s) %#llx+%#llx %d -> %d, thread %d",
			     (unsigned long long)e->seq, uhmm_trace_type_name(e->type),
			     uhmm_trace_cause_name(e->cause), (unsigned long long)e->addr,
			     (unsigned long long)e->len, e->from, e->to, e->tid);
		}
	}
}

/* A second opinion on the byte at addr, for a divergence report: where
 * the library says it lives, the mappings there, and what each device
 * and the CPU read there now (reads that may move it: last). */
static void explain(const void *addr)
{
	uint64_t off = 0;
	int loc = -100;
	uint8_t b = 0;

	uhmm_dev_offset(h, addr, &loc, &off);
	diag("  uhmm_dev_offset: at %d, device offset %#llx", loc, (unsigned long long)off);
	show_maps((uintptr_t)addr);
	if (getenv("UHMM_STRESS_TRACE"))
		show_trace((uintptr_t)addr);
	for (int i = 0; i < 3; i++) {
		int rc;

		if (!dv.d[i])
			continue;
		rc = uhmm_sim_read(dv.d[i], addr, &b, 1);
		diag("  now read through %s (id %d): %d, 0x%02x", dev_name(dv.d[i]), dv.id[i],
		     rc, b);
	}
	diag("  now read by the CPU: 0x%02x", *(const volatile uint8_t *)addr);
}

static bool where(const void *p, size_t n, int *loc)
{
	int rc = uhmm_where(h, p, n, loc);

	if (rc)
		sm_bad_rc("uhmm_where", rc);
	return rc == 0;
}

/* ---------------------------------------------------------------- */
/* Regions: made, unmade                                             */
/* ---------------------------------------------------------------- */

static size_t new_len(enum sm_kind k)
{
	switch (k) {
	case SM_MALLOC:
		/* half from the heap, half big enough for glibc to mmap */
		return sm_pct(&rng, 50) ? sm_range(&rng, 100, 60000)
					 : sm_range(&rng, 140000, 250000);
	case SM_ANON:
		return sm_range(&rng, 2, 40) * pg;
	case SM_SHARED:
		return sm_range(&rng, 2, 12) * pg;
	}
	return pg;
}

/* Right after r, where that is free: the kernel merges the two. */
static void neighbour_make(struct neighbour *n, const struct sm_region *r)
{
	uint8_t *want = r->p + r->len, *q;

	n->p = NULL;
	if (!SM_FOREIGN_NEIGHBOURS)
		return;
	if (!n->model)
		n->model = sm_mmap(NB_MAX_PAGES * pg);
	n->len = sm_range(&rng, 1, NB_MAX_PAGES) * pg;
	q = mmap(want, n->len, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
	if (q == MAP_FAILED)
		return;
	if (q != want) {	/* a kernel without MAP_FIXED_NOREPLACE */
		munmap(q, n->len);
		return;
	}
	n->p = q;
	sm_bytes(&rng, n->model, n->len);
	memcpy(n->p, n->model, n->len);
	cnt.neighbours++;
	cnt.merged += ut_maps_count(r->p, r->len + n->len) == 1;
}

static void neighbour_unmake(struct neighbour *n)
{
	if (n->p)
		munmap(n->p, n->len);
	n->p = NULL;
}

/* Its bytes as they were, in system memory, its mapping not registered. */
static bool check_neighbour(int ri)
{
	struct neighbour *n = &nb[ri];
	size_t np, d;

	if (!n->p)
		return true;
	d = sm_diff(n->p, n->model, n->len);
	if (d != SIZE_MAX) {
		sm_fail("the neighbour of region %d (%p, %zu bytes): byte %zu is %#x, not %#x",
			ri, (void *)n->p, n->len, d, n->p[d], n->model[d]);
		return false;
	}
	np = n->len / pg;
	if (h && !where(n->p, n->len, where_a)) {
		sm_fail("uhmm_where on the neighbour of region %d failed", ri);
		return false;
	}
	for (size_t i = 0; h && i < np; i++) {
		if (where_a[i] != UHMM_LOC_SYSTEM) {
			sm_fail("the neighbour of region %d: page %zu is at %d", ri, i, where_a[i]);
			return false;
		}
	}
	if (ut_uffd_armed(n->p)) {
		sm_fail("the neighbour of region %d (%p) is registered with userfaultfd", ri,
			(void *)n->p);
		return false;
	}
	return true;
}

/* Map (or allocate) region r anew, its model what it now holds. */
static void region_make(struct sm_region *r, void *hint)
{
	int flags = r->kind == SM_SHARED ? MAP_SHARED : MAP_PRIVATE;

	r->len = new_len(r->kind);
	r->ro = false;
	memset(r->model, 0, r->cap);
	if (r->kind == SM_MALLOC) {
		size_t skew = sm_range(&rng, 1, 15);

		/* calloc: zeros, including where the heap is recycled */
		r->base = sm_pct(&rng, 30) ? calloc(1, r->len + 16) : malloc(r->len + 16);
		if (!r->base)
			tap_bail("malloc(%zu)", r->len);
		r->p = (uint8_t *)r->base + skew;
		/* malloc's bytes are indeterminate: give them a value */
		sm_bytes(&rng, r->model, r->len);
		memcpy(r->p, r->model, r->len);
		return;
	}
	flags |= MAP_ANONYMOUS | (hint ? MAP_FIXED_NOREPLACE : 0);
	r->p = mmap(hint, r->len, PROT_READ | PROT_WRITE, flags, -1, 0);
	if (r->p == MAP_FAILED && hint)
		r->p = mmap(NULL, r->len, PROT_READ | PROT_WRITE, flags & ~MAP_FIXED_NOREPLACE, -1, 0);
	if (r->p == MAP_FAILED)
		tap_bail("mmap(%zu): %s", r->len, strerror(errno));
	if (r->kind == SM_ANON)
		neighbour_make(&nb[r - reg], r);
	/* untouched (zeros, never populated) or written by the CPU */
	if (sm_pct(&rng, 50)) {
		sm_bytes(&rng, r->model, r->len);
		memcpy(r->p, r->model, r->len);
	}
}

static void region_unmake(struct sm_region *r)
{
	if (SM_GUARD_DONTNEED_UNMAP && h)
		(void)uhmm_where(h, r->p, 1, where_a);
	if (r->kind == SM_MALLOC)
		free(r->base);
	else
		munmap(r->p, r->len);
	r->p = NULL;
	neighbour_unmake(&nb[r - reg]);
}

static void regions_init(void)
{
	static const enum sm_kind kinds[NREG] = {
		SM_MALLOC, SM_MALLOC, SM_ANON, SM_ANON, SM_ANON, SM_SHARED,
	};

	for (int i = 0; i < NREG; i++) {
		reg[i].kind = kinds[i];
		reg[i].cap = MAX_PAGES * pg;
		if (!reg[i].model)
			reg[i].model = sm_mmap(reg[i].cap);
		region_make(&reg[i], NULL);
	}
}

/* ---------------------------------------------------------------- */
/* Checks after a step                                               */
/* ---------------------------------------------------------------- */

/* The whole region read through a device's mirror. */
static bool check_dev(int ri, struct uhmm_dev *d)
{
	struct sm_region *r = &reg[ri];
	int rc = uhmm_sim_read(d, r->p, scratch, r->len);
	char how[64];

	if (rc < 0) {
		sm_bad_rc("uhmm_sim_read (check)", rc);
		diag("region %d: %p, %zu bytes, %s", ri, (void *)r->p, r->len, sm_kind_name[r->kind]);
		for (size_t o = 0; o < r->len; o += pg)
			show_maps((uintptr_t)r->p + o);
		rc = uhmm_sim_read(d, r->p, scratch, r->len);
		diag("read again through %s: %d", dev_name(d), rc);
		return false;
	}
	snprintf(how, sizeof(how), "device read through %s", dev_name(d));
	return sm_match(ri, r, scratch, 0, r->len, how);
}

static bool check_region(int ri)
{
	if (sm_pct(&rng, 25))
		return check_dev(ri, pick_dev(false));
	return sm_check_cpu(ri, &reg[ri]);
}

static bool check_all(void)
{
	for (int i = 0; i < NREG; i++)
		if (!sm_check_cpu(i, &reg[i]) || !check_neighbour(i))
			return false;
	return true;
}

/* ---------------------------------------------------------------- */
/* Migration                                                         */
/* ---------------------------------------------------------------- */

/* What a failed migration may have done: -ENOMEM moves a prefix (pages
 * crossing devices may stop in system memory on the way); the other
 * errors come before anything moves. */
static bool check_failed_migrate(int rc, const int *before, const int *after, size_t np,
				 int tid)
{
	size_t k = 0;

	if (rc == -ENOMEM)
		while (k < np && after[k] == tid)
			k++;
	for (size_t i = k; i < np; i++) {
		if (after[i] == before[i])
			continue;
		/* a page crossing devices stops in system memory on the way
		 * (unpopulated there after a DISCARD) */
		if (rc == -ENOMEM && (after[i] == UHMM_LOC_SYSTEM || after[i] == UHMM_LOC_NONE))
			continue;
		sm_fail("uhmm_migrate failed with %d but page %zu of the range moved "
			"(%d -> %d; %zu pages moved first)", rc, i, before[i], after[i], k);
		return false;
	}
	return true;
}

/* Every page of the range is at tid now (system: populated or not). */
static bool check_placed(const uint8_t *p, size_t n, int tid)
{
	size_t np = ut_npages(p, n);

	if (!where(p, n, where_b))
		return false;
	for (size_t i = 0; i < np; i++) {
		int l = where_b[i];

		if (l == tid || (tid == UHMM_LOC_SYSTEM && l == UHMM_LOC_NONE))
			continue;
		sm_fail("after uhmm_migrate to %d, page %zu of %zu (%p) is at %d", tid, i, np,
			(const void *)(ut_pg_down(p) + i * pg), l);
		return false;
	}
	return true;
}

/* DISCARD: each page reads as zeros or as it was; the model learns which. */
static bool learn_discarded(int ri, size_t off, size_t n)
{
	struct sm_region *r = &reg[ri];

	for (size_t o = off; o < off + n; o += pg) {
		if (!memcmp(r->p + o, r->model + o, pg))
			continue;
		if (ut_check_zero(r->p + o, pg) == SIZE_MAX) {
			memset(r->model + o, 0, pg);
			continue;
		}
		return sm_match(ri, r, r->p + o, o, pg, "after a DISCARD migration "
				"(neither zeros nor the old data)");
	}
	return true;
}

static bool rc_allowed_migrate(const struct sm_region *r, int rc)
{
	if (r->kind == SM_SHARED)
		return rc == -EINVAL;
	return rc == 0 || rc == -ENOMEM;
}

static void count_rc(int rc)
{
	if (rc == -ENOMEM)
		cnt.enomem++;
	else if (rc == -EINVAL)
		cnt.einval++;
	else if (rc == -EPERM)
		cnt.eperm++;
	else if (rc == -EBUSY)
		cnt.ebusy++;
}

static const char *flag_name(unsigned f)
{
	return f == UHMM_MIGRATE_NOEVICT ? "NOEVICT" : f == UHMM_MIGRATE_DISCARD ? "DISCARD" : "0";
}

static bool op_migrate(int ri, bool quiet_threads)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *to = pick_dev(true);
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	unsigned flags = 0;
	size_t off, n, np;
	int rc, tid = dev_id(to);

	if (r->kind == SM_ANON && quiet_threads && sm_pct(&rng, 12)) {
		flags = UHMM_MIGRATE_DISCARD;
		pick_pages(r, &off, &n);
	} else {
		pick_range(r, &off, &n);
		if (sm_pct(&rng, 25))
			flags = UHMM_MIGRATE_NOEVICT;
	}
	np = reg_pages(r, off, n);
	sm_logf("migrate r%d +%zu %zu (%zu pages) -> %s flags %s", ri, off, n, np,
		dev_name(to), flag_name(flags));
	if (quiet_threads && !where(r->p + off, n, where_a))
		return false;
	rc = uhmm_migrate_ex(h, r->p + off, n, to, flags, &res);
	count_rc(rc);
	if (!rc_allowed_migrate(r, rc)) {
		sm_bad_rc("uhmm_migrate", rc);
		return false;
	}
	if (!quiet_threads)
		return true;	/* writers running: the data alone is checked */
	if (rc) {
		if (!where(r->p + off, n, where_b) ||
		    !check_failed_migrate(rc, where_a, where_b, np, tid))
			return false;
		/* -ENOMEM: the prefix that moved was discarded */
		return flags != UHMM_MIGRATE_DISCARD || learn_discarded(ri, off, n);
	}
	/* malloc'd pages at the edges are the heap's too: anything may
	 * touch them, so placement is checked in mmap'd regions alone */
	if (r->kind == SM_ANON && !check_placed(r->p + off, n, tid))
		return false;
	if (flags == UHMM_MIGRATE_DISCARD)
		return learn_discarded(ri, off, n);
	return true;
}

/* uhmm_prefetch + uhmm_wait: the same contract, on the library's thread,
 * with a CPU write elsewhere while it runs. */
static bool op_prefetch(int ri)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *to = pick_dev(true);
	uint64_t ticket = 0;
	size_t off, n;
	int rc;

	pick_range(r, &off, &n);
	sm_logf("prefetch r%d +%zu %zu -> %s", ri, off, n, dev_name(to));
	rc = uhmm_prefetch(h, r->p + off, n, to, 0, &ticket);
	if (rc) {
		sm_bad_rc("uhmm_prefetch", rc);
		return false;
	}
	rc = uhmm_wait(h, ticket, -1);
	count_rc(rc);
	if (!rc_allowed_migrate(r, rc)) {
		sm_bad_rc("uhmm_wait (prefetch)", rc);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- */
/* CPU writes: the main thread alone, or workers beside a migration   */
/* ---------------------------------------------------------------- */

static void cpu_write(int ri, size_t off, size_t n)
{
	struct sm_region *r = &reg[ri];

	sm_bytes(&rng, r->model + off, n);
	memcpy(r->p + off, r->model + off, n);
}

static bool op_cpu_write(int ri)
{
	struct sm_region *r = &reg[ri];
	int pieces = (int)sm_range(&rng, 1, 4);

	if (r->ro)
		return true;	/* SIGSEGV would be right; not what this tests */
	for (int i = 0; i < pieces; i++) {
		size_t off, n;

		pick_range(r, &off, &n);
		if (sm_pct(&rng, 60))
			n = sm_range(&rng, 1, n < 64 ? n : 64);	/* a few bytes */
		sm_logf("cpu write r%d +%zu %zu", ri, off, n);
		cpu_write(ri, off, n);
	}
	return true;
}

struct worker {
	pthread_t th;
	uint8_t *dst;		/* in the region */
	const uint8_t *src;	/* in the model: what it must end up as */
	size_t n;
	uint64_t seed;
	atomic_int *go;
	size_t bad;		/* offset of a read that saw something else */
	uint8_t got, want;
};

/* Write the range twice (inverted, then the model's bytes) in pieces,
 * reading each piece back at once: no read may see anything but the
 * value just written, whatever is migrating. */
static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct sm_rng wr;
	uint8_t tmp[4096];

	sm_seed(&wr, w->seed);
	w->bad = SIZE_MAX;
	while (!atomic_load(w->go))
		;
	for (int pass = 0; pass < 2; pass++) {
		for (size_t o = 0; o < w->n;) {
			size_t k = sm_range(&wr, 1, sizeof(tmp));
			const uint8_t *want = pass ? w->src + o : tmp;

			if (k > w->n - o)
				k = w->n - o;
			for (size_t i = 0; !pass && i < k; i++)
				tmp[i] = (uint8_t)~w->src[o + i];
			memcpy(w->dst + o, want, k);
			for (size_t i = 0; i < k; i++) {
				if (w->dst[o + i] == want[i])
					continue;
				w->bad = o + i;
				w->got = w->dst[o + i];
				w->want = want[i];
				return NULL;
			}
			o += k;
		}
	}
	return NULL;
}

/* Workers write disjoint pieces of the region while the main thread
 * migrates pieces of it (and writes the gaps between theirs through a
 * device). */
static bool op_concurrent(int ri)
{
	struct sm_region *r = &reg[ri];
	struct worker w[MAX_WORKERS];
	atomic_int go = 0;
	int nw = (int)sm_range(&rng, 1, MAX_WORKERS), moves = (int)sm_range(&rng, 1, 3);
	size_t piece = r->len / (size_t)nw, gap;
	bool ok = true;

	if (r->ro || piece < 4)
		return op_migrate(ri, true);
	gap = piece / 4;
	sm_logf("concurrent r%d: %d writers of %zu bytes, %d migrations", ri, nw,
		piece - gap, moves);
	for (int i = 0; i < nw; i++) {
		size_t off = (size_t)i * piece;

		w[i] = (struct worker){ .dst = r->p + off, .src = r->model + off,
					.n = piece - gap, .seed = sm_next(&rng), .go = &go };
		sm_bytes(&rng, r->model + off, w[i].n);
		if (pthread_create(&w[i].th, NULL, worker_main, &w[i]))
			tap_bail("pthread_create");
	}
	atomic_store(&go, 1);
	for (int m = 0; m < moves && ok; m++) {
		ok = op_migrate(ri, false);
		/* a device write into the gap after writer m's piece */
		if (ok && m < nw && gap && sm_pct(&rng, 50) &&
		    (SM_MALLOC_DEVICE_WRITES || r->kind != SM_MALLOC)) {
			size_t off = (size_t)m * piece + (piece - gap);
			struct uhmm_dev *d = pick_dev(false);
			int rc;

			sm_bytes(&rng, r->model + off, gap);
			sm_logf("  device write r%d +%zu %zu through %s", ri, off, gap, dev_name(d));
			rc = uhmm_sim_write(d, r->p + off, r->model + off, gap);
			if (rc < 0) {
				sm_bad_rc("uhmm_sim_write (beside writers)", rc);
				explain(r->p + off);
				ok = false;
			}
		}
	}
	for (int i = 0; i < nw; i++) {
		pthread_join(w[i].th, NULL);
		if (ok && w[i].bad != SIZE_MAX) {
			sm_fail("writer %d of region %d read back 0x%02x at offset %zu of the "
				"region just after writing 0x%02x", i, ri, w[i].got,
				(size_t)i * piece + w[i].bad, w[i].want);
			explain(r->p + (size_t)i * piece + w[i].bad);
			ok = false;
		}
	}
	return ok;
}

/* ---------------------------------------------------------------- */
/* Device accesses                                                   */
/* ---------------------------------------------------------------- */

static bool op_dev_write(int ri)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *d = pick_dev(false);
	size_t off, n;
	int rc;

	if (!SM_MALLOC_DEVICE_WRITES && r->kind == SM_MALLOC)
		return true;

	pick_range(r, &off, &n);
	sm_bytes(&rng, scratch, n);
	sm_logf("device write r%d +%zu %zu through %s%s", ri, off, n, dev_name(d),
		r->ro ? " (read-only)" : "");
	rc = uhmm_sim_write(d, r->p + off, scratch, n);
	count_rc(rc);
	if (r->ro) {
		if (rc != -EPERM) {
			sm_bad_rc("uhmm_sim_write to a read-only region", rc);
			return false;
		}
		return true;	/* and nothing written: the check says */
	}
	if (rc < 0) {
		sm_bad_rc("uhmm_sim_write", rc);
		explain(r->p + off);
		return false;
	}
	memcpy(r->model + off, scratch, n);
	return true;
}

static bool op_dev_read(int ri)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *d = pick_dev(false);
	size_t off, n;
	int rc;

	pick_range(r, &off, &n);
	sm_logf("device read r%d +%zu %zu through %s", ri, off, n, dev_name(d));
	rc = uhmm_sim_read(d, r->p + off, scratch, n);
	if (rc < 0) {
		sm_bad_rc("uhmm_sim_read", rc);
		explain(r->p + off);
		return false;
	}
	return sm_match(ri, r, scratch, off, n, "device read");
}

/* A device atomic add on a word of private memory. */
static bool op_atomic(int ri)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *d = pick_dev(false);
	uintptr_t a = ((uintptr_t)r->p + sm_below(&rng, r->len) + 7) & ~(uintptr_t)7;
	uint64_t val = sm_next(&rng), old = 0, want;
	size_t off = a - (uintptr_t)r->p;
	int rc, expect = r->kind == SM_SHARED ? -EINVAL : r->ro ? -EPERM : 0;

	if (off + 8 > r->len || (!SM_MALLOC_DEVICE_WRITES && r->kind == SM_MALLOC))
		return true;
	sm_logf("atomic add r%d +%zu through %s", ri, off, dev_name(d));
	rc = uhmm_sim_atomic_add(d, (void *)a, val, &old);
	count_rc(rc);
	/* shared and read-only: either error may come first */
	if (r->kind == SM_SHARED && r->ro && rc == -EPERM)
		expect = rc;
	if ((expect && rc != expect) || (!expect && rc < 1)) {
		sm_bad_rc("uhmm_sim_atomic_add", rc);
		return false;
	}
	if (expect)
		return true;
	memcpy(&want, r->model + off, 8);
	if (old != want) {
		sm_fail("uhmm_sim_atomic_add at offset %zu of region %d: old value 0x%016llx, "
			"want 0x%016llx", off, ri, (unsigned long long)old, (unsigned long long)want);
		return false;
	}
	want += val;
	memcpy(r->model + off, &want, 8);
	if (!SM_KEEP_EXCLUSIVE)
		(void)*(volatile uint64_t *)a;	/* the CPU takes it back */
	return true;
}

/* ---------------------------------------------------------------- */
/* Advice and pins                                                   */
/* ---------------------------------------------------------------- */

static bool op_advise(int ri)
{
	static const char *const names[] = { "?", "PREFERRED", "UNSET_PREFERRED",
		"ACCESSED_BY", "UNSET_ACCESSED_BY", "READ_MOSTLY", "UNSET_READ_MOSTLY" };
	struct sm_region *r = &reg[ri];
	int adv = (int)sm_range(&rng, UHMM_ADV_PREFERRED_LOCATION, UHMM_ADV_UNSET_READ_MOSTLY);
	struct uhmm_dev *d = pick_dev(true);
	size_t off, n;
	int rc, expect = 0;

	pick_range(r, &off, &n);
	if (r->kind == SM_SHARED)
		expect = -EINVAL;
	else if (!d && (adv == UHMM_ADV_ACCESSED_BY || adv == UHMM_ADV_UNSET_ACCESSED_BY))
		expect = -EINVAL;
	sm_logf("advise r%d +%zu %zu %s %s", ri, off, n, names[adv], dev_name(d));
	rc = uhmm_advise(h, r->p + off, n, (enum uhmm_advice)adv, d);
	count_rc(rc);
	if (rc != expect) {
		sm_bad_rc("uhmm_advise", rc);
		return false;
	}
	return true;
}

/* Pin, see a migration of the pinned pages refused with nothing moved,
 * unpin. */
/* A driver's report of its device's accesses: at the threshold the
 * block's pages move (the program's: never a merged neighbour's). */
static bool report(int ri, size_t off, size_t n, uint32_t count)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *d = pick_dev(false);
	int rc;

	sm_logf("report r%d +%zu %zu x%u %s", ri, off, n, count, dev_name(d));
	rc = uhmm_dev_report_access(d, r->p + off, n, count);
	count_rc(rc);
	if (rc) {
		sm_bad_rc("uhmm_dev_report_access", rc);
		return false;
	}
	return true;
}

static bool op_report(int ri)
{
	size_t off, n;

	pick_range(&reg[ri], &off, &n);
	return report(ri, off, n, (uint32_t)sm_range(&rng, 1, 16));
}

static bool op_pin(int ri)
{
	struct sm_region *r = &reg[ri];
	struct uhmm_dev *to = pick_dev(false);
	size_t off, n, np;
	int rc;

	pick_range(r, &off, &n);
	np = reg_pages(r, off, n);
	sm_logf("pin r%d +%zu %zu, migrate -> %s, unpin", ri, off, n, dev_name(to));
	rc = uhmm_pin(h, r->p + off, n);
	count_rc(rc);
	if (r->kind == SM_SHARED) {
		if (rc != -EINVAL)
			sm_bad_rc("uhmm_pin of shared memory", rc);
		return rc == -EINVAL;
	}
	if (rc) {
		sm_bad_rc("uhmm_pin", rc);
		return false;
	}
	if (!where(r->p + off, n, where_a))
		return false;
	rc = uhmm_migrate(h, r->p + off, n, to, 0);
	count_rc(rc);
	if (rc != -EBUSY) {
		sm_bad_rc("uhmm_migrate of pinned pages", rc);
		return false;
	}
	if (!where(r->p + off, n, where_b) ||
	    !check_failed_migrate(rc, where_a, where_b, np, dev_id(to)))
		return false;
	rc = uhmm_unpin(h, r->p + off, n);
	if (rc) {
		sm_bad_rc("uhmm_unpin", rc);
		return false;
	}
	return true;
}

/* ---------------------------------------------------------------- */
/* Mapping changes                                                   */
/* ---------------------------------------------------------------- */

/* munmap + mmap (free + malloc): a new region, maybe at the same address. */
static bool op_remake(int ri)
{
	struct sm_region *r = &reg[ri];
	void *old = r->p;

	region_unmake(r);
	region_make(r, r->kind != SM_MALLOC && sm_pct(&rng, 50) ? old : NULL);
	sm_logf("remake r%d (%s): %p -> %p, %zu bytes", ri, sm_kind_name[r->kind], old,
		(void *)r->p, r->len);
	/* a device's first accesses to the new buffer, while it is still
	 * one mapping with its neighbour: enough to move its block */
	if (nb[ri].p && sm_pct(&rng, 50))
		return report(ri, 0, r->len, 16);
	return true;
}

/* A free spot of len bytes for MREMAP_FIXED (mapped PROT_NONE). */
static void *spot(size_t len)
{
	void *s = mmap(NULL, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return s == MAP_FAILED ? NULL : s;
}

static bool page_mapped(const void *p)
{
	return msync((void *)p, pg, MS_ASYNC) == 0;
}

/*
 * Since Linux 6.17 mremap(MREMAP_FIXED) without resizing moves a range of
 * several mappings one mapping at a time, and a mapping armed with
 * userfaultfd after the first ends it with EFAULT: the first mapping has
 * moved to dst, the rest has not (the program's view, not uhmm's: uhmm
 * heard a REMAP of the part that moved).  Put that part back, with one
 * more mremap of a single mapping.
 */
static bool undo_partial_move(struct sm_region *r, uint8_t *dst, size_t len)
{
	size_t k = 0;

	while (k < len && k < r->len && !page_mapped(r->p + k))
		k += pg;
	if (!k)
		return true;
	cnt.partial_mremap++;
	sm_logf("mremap moved %zu of its bytes before EFAULT: back they go", k);
	if (mremap(dst, k, k, MREMAP_MAYMOVE | MREMAP_FIXED, r->p) != r->p) {
		sm_fail("mremap of the part that moved back to %p: %s", (void *)r->p,
			strerror(errno));
		return false;
	}
	return true;
}

static bool op_mremap(int ri)
{
	struct sm_region *r = &reg[ri];
	size_t np = r->len / pg, nl;
	int how = (int)sm_below(&rng, 3);
	void *q, *dst = NULL;
	int fl = MREMAP_MAYMOVE;

	if (how == 2 && !SM_MREMAP_MOVE)
		how = 0;
	if (how == 0 && np >= MAX_PAGES)
		how = 1;	/* as big as the model goes */
	if (how == 0)		/* grow: in place or moved by the kernel */
		nl = sm_range(&rng, np + 1, MAX_PAGES) * pg;
	else if (how == 1)	/* shrink */
		nl = np > 1 ? sm_range(&rng, 1, np - 1) * pg : r->len;
	else			/* move, maybe growing */
		nl = sm_range(&rng, np, MAX_PAGES) * pg;
	/* a shared mapping's file keeps its size: past it is SIGBUS */
	if (r->kind == SM_SHARED && nl > r->len)
		nl = r->len;
	if (how == 2 && !(dst = spot(nl)))
		return true;
	if (dst)
		fl |= MREMAP_FIXED;
	sm_logf("mremap r%d %p %zu -> %zu%s", ri, (void *)r->p, r->len, nl,
		dst ? " (moved)" : "");
	q = mremap(r->p, r->len, nl, fl, dst);
	if (q == MAP_FAILED) {
		/* a range made of several mappings (some pages on a
		 * COHERENT device) cannot be mremapped: EFAULT, as for any
		 * such range, and nothing changed */
		if (errno != EFAULT) {
			sm_fail("mremap: %s", strerror(errno));
			return false;
		}
		cnt.efault_mremap++;
		if (dst && !undo_partial_move(r, dst, nl))
			return false;
		if (dst)
			munmap(dst, nl);
		return true;
	}
	/* the pages past the old end read as zeros: never other memory */
	if (nl > r->len)
		memset(r->model + r->len, 0, nl - r->len);
	r->p = q;
	r->len = nl;
	return true;
}

static bool op_dontneed(int ri)
{
	struct sm_region *r = &reg[ri];
	size_t off, n;

	pick_pages(r, &off, &n);
	sm_logf("madvise DONTNEED r%d +%zu %zu", ri, off, n);
	if (madvise(r->p + off, n, MADV_DONTNEED)) {
		sm_fail("madvise(DONTNEED): %s", strerror(errno));
		return false;
	}
	if (SM_DRAIN_AFTER_DONTNEED)
		(void)uhmm_where(h, r->p + off, 1, where_a);
	/* private memory reads zeros; shared memory keeps its data */
	if (r->kind != SM_SHARED)
		memset(r->model + off, 0, n);
	return true;
}

static bool op_protect(int ri)
{
	struct sm_region *r = &reg[ri];
	int prot = r->ro ? PROT_READ | PROT_WRITE : PROT_READ;
	int rc;

	sm_logf("uhmm_mprotect r%d %s", ri, r->ro ? "read-write" : "read-only");
	rc = uhmm_mprotect(h, r->p, r->len, prot);
	if (rc) {
		sm_bad_rc("uhmm_mprotect", rc);
		return false;
	}
	r->ro = !r->ro;
	return true;
}

/* ---------------------------------------------------------------- */
/* Devices                                                           */
/* ---------------------------------------------------------------- */

static bool add_extra(void)
{
	bool coherent = (dv.n2++ & 1) && dv.d[0];
	enum uhmm_mem kind = coherent ? UHMM_MEM_COHERENT : UHMM_MEM_PRIVATE;
	int rc = uhmm_dev_add_sim(h, "extra", kind, 48 * pg, &dv.d[2]);

	if (rc) {
		sm_bad_rc("uhmm_dev_add_sim (extra)", rc);
		dv.d[2] = NULL;
		return false;
	}
	dv.id[2] = ut_dev_id(dv.d[2]);
	sm_logf("device added: extra (%s), id %d", coherent ? "coherent" : "private", dv.id[2]);
	return true;
}

/* Remove the extra device (its pages come home: the model does not
 * change), or add one. */
static bool op_devswap(void)
{
	int rc, id = dv.id[2];

	if (!dv.d[2])
		return add_extra();
	sm_logf("device removed: extra, id %d", id);
	rc = uhmm_dev_remove(dv.d[2]);
	dv.d[2] = NULL;
	cnt.removes++;
	if (rc) {
		sm_bad_rc("uhmm_dev_remove", rc);
		return false;
	}
	for (int i = 0; i < NREG; i++) {
		size_t np = ut_npages(reg[i].p, reg[i].len);

		if (!where(reg[i].p, reg[i].len, where_b))
			return false;
		for (size_t k = 0; k < np; k++) {
			if (where_b[k] != id)
				continue;
			sm_fail("page %zu of region %d is still on device %d after its removal",
				k, i, id);
			return false;
		}
	}
	return check_all();
}

/* ---------------------------------------------------------------- */
/* fork                                                              */
/* ---------------------------------------------------------------- */

/* The child: everything as it was at the fork, then its own writes. */
static int fork_child(uint64_t seed)
{
	struct sm_rng cr;

	alarm(60);
	sm_seed(&cr, seed);
	for (int i = 0; i < NREG; i++)
		if (!sm_match(i, &reg[i], reg[i].p, 0, reg[i].len, "fork child's read"))
			return 1;
	for (int i = 0; i < NREG; i++) {
		struct sm_region *r = &reg[i];

		/* shared memory is the parent's too; read-only faults */
		if (r->kind == SM_SHARED || r->ro)
			continue;
		sm_bytes(&cr, scratch, r->len);
		memcpy(r->p, scratch, r->len);
		if (sm_diff(r->p, scratch, r->len) != SIZE_MAX) {
			sm_fail("region %d: the fork child does not read back its own write", i);
			return 1;
		}
	}
	return 0;
}

static bool op_fork(void)
{
	uint64_t seed = sm_next(&rng);
	int status = 0;
	pid_t pid;

	sm_logf("fork");
	cnt.forks++;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		sm_fail("fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0)
		_exit(fork_child(seed));
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status)) {
		sm_fail("the fork child failed (status 0x%x): see its report above", status);
		return false;
	}
	/* the child's writes reached nothing of ours */
	return check_all();
}

/* ---------------------------------------------------------------- */
/* The run                                                           */
/* ---------------------------------------------------------------- */

enum op {
	OP_MIGRATE, OP_CPU, OP_CONC, OP_DEVW, OP_DEVR, OP_ADVISE, OP_PREFETCH,
	OP_PIN, OP_ATOMIC, OP_REMAKE, OP_MREMAP, OP_DONTNEED, OP_PROTECT,
	OP_DEVSWAP, OP_FORK, OP_REPORT, NOP
};

static const char *const op_name[NOP] = {
	"migrate", "cpu-write", "concurrent", "dev-write", "dev-read", "advise",
	"prefetch", "pin", "atomic", "remake", "mremap", "dontneed", "protect",
	"dev-swap", "fork", "report",
};

/* Per thousand steps.  fork and device removal are the dear ones. */
static const unsigned op_weight[NOP] = {
	220, 160, 70, 130, 70, 70, 30, 25, 30, 30, 40, 50, 25, 10, 10, 30,
};

static enum op pick_op(void)
{
	size_t x = sm_below(&rng, 1000);

	for (int i = 0; i < NOP; i++) {
		if (x < op_weight[i])
			return (enum op)i;
		x -= op_weight[i];
	}
	return OP_CPU;
}

/* One step; *ri the region it touched, or -1 when it checked all. */
static bool step(int *ri, enum op *opp)
{
	enum op op = pick_op();
	int r = pick_region();

	*opp = op;
	cnt.op[op]++;
	*ri = r;
	switch (op) {
	case OP_MIGRATE:  return op_migrate(r, true);
	case OP_CPU:      return op_cpu_write(r);
	case OP_CONC:     return op_concurrent(r);
	case OP_DEVW:     return op_dev_write(r);
	case OP_DEVR:     return op_dev_read(r);
	case OP_ADVISE:   return op_advise(r);
	case OP_PREFETCH: return op_prefetch(r);
	case OP_PIN:      return op_pin(r);
	case OP_ATOMIC:   return op_atomic(r);
	case OP_REMAKE:   return op_remake(r);
	case OP_REPORT:   return op_report(r);
	default:
		break;
	}
	*ri = -1;
	switch (op) {
	case OP_DEVSWAP:  return op_devswap();
	case OP_FORK:     return op_fork();
	default:
		break;
	}
	/* mapping changes: mmap'd regions alone (the heap is malloc's) */
	r = pick_region_of(K_ANON | K_SHARED);
	*ri = r;
	switch (op) {
	case OP_MREMAP:   return op_mremap(r);
	case OP_DONTNEED: return op_dontneed(r);
	case OP_PROTECT:  return op_protect(r);
	default:
		break;
	}
	return true;
}

static void devs_open(void)
{
	int rc;

	memset(&dv, 0, sizeof(dv));
	rc = uhmm_dev_add_sim(h, "coherent", UHMM_MEM_COHERENT, 96 * pg, &dv.d[0]);
	if (rc == -ENOSYS)
		dv.d[0] = NULL;	/* no minor faults on shmem here: PRIVATE alone */
	else if (rc)
		tap_bail("uhmm_dev_add_sim(COHERENT): %s", ut_err(rc));
	rc = uhmm_dev_add_sim(h, "private", UHMM_MEM_PRIVATE, 160 * pg, &dv.d[1]);
	if (rc)
		tap_bail("uhmm_dev_add_sim(PRIVATE): %s", ut_err(rc));
	for (int i = 0; i < 2; i++)
		dv.id[i] = dv.d[i] ? ut_dev_id(dv.d[i]) : 0;
	if (!add_extra())
		tap_bail("the extra device");
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* One seed: a context, devices, regions, `steps` steps, close.  Returns
 * the steps run. */
static unsigned long run_seed(uint64_t seed, unsigned long steps)
{
	static const uint32_t thresholds[] = { 0, 8, UINT32_MAX };
	struct uhmm_opts o = { .sz = sizeof(o) };
	unsigned long s = 0;
	double t0 = now_s(), t;
	enum op op;

	memset(&sm, 0, sizeof(sm));
	sm.seed = seed;
	sm_seed(&rng, seed);
	/* the access counters move pages too, or never */
	o.access_threshold = thresholds[seed % 3];
	o.flags = SM_DETECT_PINS ? UHMM_OPEN_DETECT_PINS : 0;
	h = ut_open_opts(&o);
	sm_locate = locate;
	if (getenv("UHMM_STRESS_TRACE"))
		uhmm_trace_start(h);
	sm_explain = explain;
	devs_open();
	regions_init();
	check_all();
	for (; s < steps && !sm.failed; s++) {
		int ri;

		sm.step = s;
		t = now_s();
		if (!step(&ri, &op))
			break;
		if (ri >= 0 && !check_region(ri))
			break;
		cnt.secs[op] += now_s() - t;
		if (s % SM_FULL_CHECK == SM_FULL_CHECK - 1 && !check_all())
			break;
	}
	/* a replay that did not diverge can still show its last steps, to
	 * see what a failing run had been doing */
	if (getenv("UHMM_STRESS_LOG_END"))
		sm_dump_log(1);
	/* close brings every page home: ordinary memory, still the model */
	sm_logf("uhmm_close");
	uhmm_close(h);
	h = NULL;
	sm_locate = NULL;
	sm_explain = NULL;
	if (!sm.failed)
		check_all();
	for (int i = 0; i < NREG; i++)
		region_unmake(&reg[i]);
	ok(!sm.failed, "seed %llu: %lu steps, every byte what the model says (%.1f s; "
	   "coherent device: %s, access threshold %u)", (unsigned long long)seed, s,
	   now_s() - t0, dv.id[0] ? "yes" : "no", o.access_threshold);
	return s;
}

static unsigned long env_ul(const char *name, unsigned long def)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 0) : def;
}

int main(void)
{
	unsigned long steps = env_ul("UHMM_STRESS_STEPS", UT_TSAN ? 5000 : UT_ASAN ? 10000 : 34000);
	unsigned long nseeds = env_ul("UHMM_STRESS_SEEDS", getenv("UHMM_STRESS_SEED") ? 1 : 3);
	uint64_t first = env_ul("UHMM_STRESS_SEED", 1);
	unsigned long total = 0, failed = 0;
	static char outbuf[1 << 14];
	double t0;

	/* the watchdog: the CI run takes under a minute; a long run gets
	 * 2 ms a step more (ut_init stretches it again under sanitizers) */
	ut_init(280 + (unsigned)(steps * nseeds / 500));
	/* a -EBUSY that should not be: the library says which refusal */
	setenv("UHMM_DEBUG", "busy", 0);
	/* stdout's buffer out of the heap: a malloc'd region's page beside
	 * it may be on a PRIVATE device, where write(2) from it can fail
	 * (EFAULT where only user-mode faults are served) */
	setvbuf(stdout, outbuf, _IOLBF, sizeof(outbuf));
	sm_install_handlers();
	pg = ut_page();
	scratch = sm_mmap((MAX_PAGES + 1) * pg);
	where_a = (int *)sm_mmap((MAX_PAGES + 2) * sizeof(int));
	where_b = (int *)sm_mmap((MAX_PAGES + 2) * sizeof(int));
	diag("%lu seeds from %llu, %lu steps each (UHMM_STRESS_SEED, UHMM_STRESS_SEEDS, "
	     "UHMM_STRESS_STEPS)", nseeds, (unsigned long long)first, steps);
	t0 = now_s();
	for (unsigned long i = 0; i < nseeds && !failed; i++) {
		/* after a divergence the heap itself may be damaged: stop */
		total += run_seed(first + i, steps);
		failed += sm.failed;
	}
	ok(failed == 0 && total == steps * nseeds, "%lu steps in all across %lu seeds, "
	   "%lu divergences (%.1f s)", total, nseeds, failed, now_s() - t0);
	for (int i = 0; i < NOP; i++)
		diag("%-10s %7lu steps, %.3f ms each", op_name[i], cnt.op[i],
		     cnt.op[i] ? cnt.secs[i] * 1e3 / (double)cnt.op[i] : 0.0);
	diag("expected errors: %lu -ENOMEM, %lu -EINVAL, %lu -EPERM, %lu -EBUSY, "
	     "%lu mremap EFAULT (%lu of them after moving a part); %lu device removals",
	     cnt.enomem, cnt.einval, cnt.eperm, cnt.ebusy, cnt.efault_mremap,
	     cnt.partial_mremap, cnt.removes);
	if (SM_FOREIGN_NEIGHBOURS)
		diag("foreign neighbours: %lu placed, %lu of them merged with their region",
		     cnt.neighbours, cnt.merged);
	if (total >= 2000 && !failed) {
		int missing = 0;

		for (int i = 0; i < NOP; i++)
			missing += cnt.op[i] == 0;
		is_int(missing, 0, "every kind of operation ran");
		if (SM_FOREIGN_NEIGHBOURS)
			ok(cnt.merged > 0, "regions were merged with foreign neighbours (%lu)",
			   cnt.merged);
	}
	return tap_done();
}
