/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer harness: sequences of operations, checked against a byte
 * model.
 *
 * Three regions of RP pages (each between holes) start as fresh private
 * anonymous memory with a known pattern (the third sometimes untouched:
 * never-populated pages).  Each input is up to MAX_OPS operations over
 * them: CPU reads and writes, migrations and prefetches to a small
 * COHERENT and a small PRIVATE simulated device (so that they fill up and
 * evict) or a device the input adds, advice, pins, the sim DMA engine's
 * reads, writes and atomics, uhmm_range_fault through a mirror (whose
 * answers are read through `host` and compared), make_exclusive,
 * uhmm_mprotect and mprotect, munmap and mmap over parts of a region,
 * madvise(DONTNEED), mremap between regions, device add and remove,
 * unmanage, eviction, reported accesses, stats.
 *
 * The model holds every byte of every page, whether the page is mapped
 * and its protection.  After each operation every page the CPU can read
 * without moving it (uhmm_where: not on a PRIVATE device) is compared with
 * the model; at the end of the input, every readable page.  A return the
 * contract does not give for the operation, a migration that succeeded
 * with a page elsewhere than its destination, a different byte, or device
 * memory still in use after the regions are unmapped traps.  DISCARD
 * migrations make their pages unknown until they are next looked at (the
 * device page's stale bytes are allowed: see check_page).
 *
 * One context per process, as in fuzz_args.c; each input undoes itself.
 */
#include "fuzz.h"

#include <time.h>

#define NR 3
#define RP 8
#define MAX_OPS 12
#define DEVP 16		/* pages of each simulated device */

static struct uhmm *h;
static struct uhmm_dev *dc, *dp, *dyn;
static struct uhmm_mirror *mc, *mp;
static int idc, idp, idyn;
static uint8_t *base;		/* [hole][R0][hole][R1][hole][R2][hole] */
static uint8_t *R[NR];
static uint8_t *mdl[NR];	/* the model's bytes */
static bool mapped[NR][RP];
static int prot[NR][RP];
static bool disc[NR][RP];	/* DISCARD: old bytes or zeros */
static uint64_t tickets[4];
static unsigned ntickets;
static uint8_t buf[RP * 4096 * 2];
static bool dyn_private;
static const int E_MIGRATE[] = { ENOMEM, EFAULT, EINVAL, EBUSY, EAGAIN, 0 };
static struct uhmm_pte ptes[RP];
static int loc[RP];

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

static int dev_id(struct uhmm_dev *d)
{
	struct uhmm_dev_info i = { .sz = sizeof(i) };

	if (uhmm_dev_info(d, &i))
		fz_fail("uhmm_dev_info of a live device failed");
	return i.id;
}

static void dev_info_ok(struct uhmm_dev *d, size_t *used)
{
	struct uhmm_dev_info i = { .sz = sizeof(i) };

	if (uhmm_dev_info(d, &i))
		fz_fail("uhmm_dev_info of a live device failed");
	if (i.used > i.reserved || i.reserved > i.size)
		fz_fail("device %s: used %zu reserved %zu size %zu", i.name, i.used, i.reserved, i.size);
	if (used)
		*used = i.used;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct uhmm_mirror_ops mops = { .sz = sizeof(mops), .invalidate = inval };

	(void)argc; (void)argv;
	fz_zone_guards();
	h = fz_open();
	if (uhmm_dev_add_sim(h, "opc", UHMM_MEM_COHERENT, DEVP * pg, &dc) ||
	    uhmm_dev_add_sim(h, "opp", UHMM_MEM_PRIVATE, DEVP * pg, &dp))
		exit(1);
	if (uhmm_mirror_open(dc, &mops, NULL, &mc) || uhmm_mirror_open(dp, &mops, NULL, &mp))
		exit(1);
	idc = dev_id(dc);
	idp = dev_id(dp);
	for (int r = 0; r < NR; r++)
		mdl[r] = malloc(RP * pg);
	/* the context stays open at exit: see cleanup_process in
	 * fuzz_args.c (each input left nothing managed behind) */
	fz_reg_baseline();
	return 0;
}

/* ---- the model ---- */
static void start(struct in *in)
{
	size_t span = (1 + NR * (RP + 1)) * pg;
	uint8_t seed = in_u8(in);
	bool untouched = seed & 1;

	/* in the zone (fuzz.h), at the same place for every input: the holes
	 * between regions, and those case 16 makes, stay holes that nothing
	 * else maps into (its mmap(MAP_FIXED) would replace it) */
	base = fz_zone_map(1 << 20, span);
	for (int r = 0; r < NR; r++) {
		R[r] = base + (1 + r * (RP + 1)) * pg;
		if (mmap(R[r], RP * pg, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS,
			 -1, 0) == MAP_FAILED)
			exit(1);
		munmap(R[r] - pg, pg);
		for (int p = 0; p < RP; p++) {
			mapped[r][p] = true;
			prot[r][p] = PROT_READ | PROT_WRITE;
			disc[r][p] = false;
		}
		if (r == NR - 1 && untouched) {
			memset(mdl[r], 0, RP * pg);
			continue;
		}
		for (size_t i = 0; i < RP * pg; i++)
			mdl[r][i] = (uint8_t)(i * 7 + seed + r * 31 + (i >> 12));
		memcpy(R[r], mdl[r], RP * pg);
	}
	munmap(base + span - pg, pg);
}

static bool readable(int r, int p)
{
	return mapped[r][p] && (prot[r][p] & PROT_READ);
}

/* compare page p of region r; a DISCARD page may read zeros, and then is
 * what it reads */
static void check_page(int r, int p, const uint8_t *got, const char *how)
{
	const uint8_t *want = mdl[r] + p * pg;

	if (!memcmp(got, want, pg))
		goto same;
	if (disc[r][p]) {
		/* DISCARD: "no copy; pages read as zeros or old data" -- old
		 * data being whatever the device page held, another range's
		 * bytes included: anything, until it is looked at */
		memcpy(mdl[r] + p * pg, got, pg);
	} else {
		for (size_t i = 0; i < pg; i++)
			if (got[i] != want[i])
				fz_fail("%s: region %d page %d byte %zu: %#x, want %#x", how, r, p, i, got[i],
					want[i]);
	}
same:
	if (got == R[r] + p * pg)	/* the CPU saw it: no more doubt */
		disc[r][p] = false;
}

/* every page the CPU can read without bringing it home (all: at the end) */
static void check_all(bool all)
{
	for (int r = 0; r < NR; r++) {
		bool have_loc = false;

		if (!all) {
			/* where a hole makes uhmm_where fail, ask page by page */
			have_loc = uhmm_where(h, R[r], RP * pg, loc) == 0;
		}
		for (int p = 0; p < RP; p++) {
			if (!readable(r, p))
				continue;
			if (!all) {
				int l;
				if (!have_loc && (l = uhmm_where(h, R[r] + p * pg, 1, &l)) < 0)
					fz_fail("uhmm_where of mapped page %d of region %d: %d (%s)", p, r, l,
						uhmm_strerror(l));
				if (have_loc)
					l = loc[p];
				if (l == idp || (dyn && dyn_private && l == idyn))
					continue;	/* a PRIVATE page: the CPU would bring it home */
			}
			check_page(r, p, R[r] + p * pg, all ? "final CPU read" : "CPU read");
		}
	}
}

/* ---- choices ---- */
struct rng {
	int r;		/* region */
	int p0, np;	/* pages */
	size_t off, len;	/* bytes, inside the pages */
};

static struct rng range_of(struct in *in)
{
	struct rng g;
	uint8_t a = in_u8(in), b = in_u8(in);

	g.r = a % NR;
	g.p0 = (a / NR) % RP;
	g.np = 1 + b % (RP - g.p0);
	/* sometimes unaligned ends inside the same pages */
	g.off = (b & 0x80) ? (size_t)(in_u8(in) % 64) : 0;
	g.len = g.np * pg - g.off - ((b & 0x40) ? (size_t)(in_u8(in) % 64) : 0);
	return g;
}

static uint8_t *addr_of(const struct rng *g)
{
	return R[g->r] + g->p0 * pg + g->off;
}

static bool all_mapped(const struct rng *g)
{
	for (int p = g->p0; p < g->p0 + g->np; p++)
		if (!mapped[g->r][p])
			return false;
	return true;
}

static bool all_prot(const struct rng *g, int want)
{
	for (int p = g->p0; p < g->p0 + g->np; p++)
		if (!mapped[g->r][p] || (prot[g->r][p] & want) != want)
			return false;
	return true;
}

/* discarded pages of the range become what the CPU reads there */
static void settle(const struct rng *g)
{
	for (int p = g->p0; p < g->p0 + g->np; p++)
		if (disc[g->r][p] && readable(g->r, p))
			check_page(g->r, p, R[g->r] + p * pg, "CPU read of a discarded page");
}

/* prefetches still in flight finish before anything that looks at
 * placement or changes the layout (an mremap racing a migration is the
 * documented limitation) */
static void drain(void)
{
	for (unsigned i = 0; i < ntickets; i++)
		fz_rc(uhmm_wait(h, tickets[i], -1), E_MIGRATE);
	ntickets = 0;
}

static struct uhmm_dev *dev_of(struct in *in)
{
	switch (in_pick(in, 5)) {
	case 0: return NULL;
	case 1: case 3: return dc;
	case 2: return dp;
	default: return dyn ? dyn : dp;
	}
}

static int id_of(struct uhmm_dev *d)
{
	return !d ? UHMM_LOC_SYSTEM : d == dc ? idc : d == dp ? idp : idyn;
}


/* after a migration: where every page lives, what DISCARD changed */
static void migrated(const struct rng *g, struct uhmm_dev *to, unsigned fl, int rc, const char *what)
{
	fz_rc(rc, E_MIGRATE);
	if (rc == -EINVAL && all_prot(g, PROT_READ))
		fz_fail("%s of readable private memory: -EINVAL", what);
	if (rc == -EFAULT && all_mapped(g))
		fz_fail("%s of mapped memory: -EFAULT", what);
	if ((fl & UHMM_MIGRATE_DISCARD) && (rc == 0 || rc == -ENOMEM))
		for (int p = g->p0; p < g->p0 + g->np; p++)
			disc[g->r][p] = true;
	if (rc == 0) {
		int want = id_of(to);
		if (uhmm_where(h, R[g->r] + g->p0 * pg, g->np * pg, loc))
			fz_fail("uhmm_where after a migration failed");
		for (int i = 0; i < g->np; i++)
			if (loc[i] != want && !(want == UHMM_LOC_SYSTEM && loc[i] == UHMM_LOC_NONE))
				fz_fail("%s succeeded, page %d of region %d is on %d, not %d", what, g->p0 + i,
					g->r, loc[i], want);
	}
}

static void op(struct in *in)
{
	unsigned o = in_pick(in, 24);
	struct rng g = range_of(in);
	uint8_t *a = addr_of(&g);
	struct uhmm_dev *d;
	unsigned fl;
	int rc;

	if ((o >= 3 && o <= 6) || (o >= 15 && o <= 19) || o == 23)
		drain();

	switch (o) {
	case 0: case 1: {	/* CPU writes */
		uint8_t v = in_u8(in);
		fz_note("CPU write %d:%d+%d = %#x", g.r, g.p0, g.np, v);
		for (int p = g.p0; p < g.p0 + g.np; p++) {
			size_t s = p == g.p0 ? g.off : 0, e = pg;
			if (p == g.p0 + g.np - 1)
				e = g.off + g.len - (size_t)(g.np - 1) * pg;
			if (!mapped[g.r][p] || !(prot[g.r][p] & PROT_WRITE))
				continue;
			if (disc[g.r][p])	/* settle what the page holds first */
				check_page(g.r, p, R[g.r] + p * pg, "CPU read before a write");
			memset(R[g.r] + p * pg + s, v, e - s);
			memset(mdl[g.r] + p * pg + s, v, e - s);
		}
		break;
	}
	case 2: {	/* CPU reads, even of private pages */
		fz_note("CPU read %d:%d+%d", g.r, g.p0, g.np);
		for (int p = g.p0; p < g.p0 + g.np; p++)
			if (readable(g.r, p))
				check_page(g.r, p, R[g.r] + p * pg, "CPU read");
		break;
	}
	case 3: case 4: case 5: {	/* uhmm_migrate */
		static const unsigned fls[] = { 0, 0, UHMM_MIGRATE_NOEVICT, UHMM_MIGRATE_DISCARD };
		d = dev_of(in);
		fl = fls[in_pick(in, 4)];
		fz_note("uhmm_migrate(%d:%d+%d, %d, %#x)", g.r, g.p0, g.np, id_of(d), fl);
		rc = uhmm_migrate(h, a, g.len, d, fl);
		migrated(&g, d, fl, rc, "uhmm_migrate");
		break;
	}
	case 6: {	/* uhmm_prefetch, waited for */
		uint64_t t = 0;
		d = dev_of(in);
		fz_note("uhmm_prefetch(%d:%d+%d, %d)", g.r, g.p0, g.np, id_of(d));
		rc = uhmm_prefetch(h, a, g.len, d, 0, &t);
		fz_rc(rc, E_MIGRATE);
		if (rc == 0) {
			if (in_pick(in, 2)) {
				rc = uhmm_wait(h, t, -1);
				migrated(&g, d, 0, rc, "uhmm_prefetch");
			} else if (ntickets < 4) {
				tickets[ntickets++] = t;	/* in flight during what follows */
			} else {
				fz_rc(uhmm_wait(h, t, -1), E_MIGRATE);
			}
		}
		break;
	}
	case 7: {	/* advice */
		int adv = 1 + (int)in_pick(in, 6);
		d = dev_of(in);
		fz_note("uhmm_advise(%d:%d+%d, %d, %d)", g.r, g.p0, g.np, adv, id_of(d));
		fz_rc(uhmm_advise(h, a, g.len, (enum uhmm_advice)adv, d), FZ_ERRS(EINVAL, EFAULT, EBUSY));
		break;
	}
	case 8: {	/* pins */
		bool pin = in_pick(in, 2);
		fz_note("uhmm_%spin(%d:%d+%d)", pin ? "" : "un", g.r, g.p0, g.np);
		rc = pin ? uhmm_pin(h, a, g.len) : uhmm_unpin(h, a, g.len);
		fz_rc(rc, FZ_ERRS(EINVAL, EFAULT, EBUSY));
		break;
	}
	case 9: {	/* sim DMA read */
		d = dev_of(in);
		if (!d)
			d = dc;
		fz_note("uhmm_sim_read(%d, %d:%d+%d)", id_of(d), g.r, g.p0, g.np);
		rc = uhmm_sim_read(d, R[g.r] + g.p0 * pg, buf, g.np * pg);
		fz_rc(rc, FZ_ERRS(EFAULT, EBUSY));
		if (rc == -EFAULT && all_prot(&g, PROT_READ))
			fz_fail("uhmm_sim_read of readable memory: -EFAULT");
		if (rc >= 0) {
			if (!all_prot(&g, PROT_READ))
				fz_fail("uhmm_sim_read of unreadable memory succeeded");
			for (int i = 0; i < g.np; i++)
				check_page(g.r, g.p0 + i, buf + i * pg, "uhmm_sim_read");
		}
		break;
	}
	case 10: {	/* sim DMA write */
		uint8_t v = in_u8(in);
		d = dev_of(in);
		if (!d)
			d = dp;
		memset(buf, v, g.len);
		settle(&g);	/* a partial write of a discarded page */
		fz_note("uhmm_sim_write(%d, %d:%d+%d, %#x)", id_of(d), g.r, g.p0, g.np, v);
		rc = uhmm_sim_write(d, a, buf, g.len);
		fz_rc(rc, FZ_ERRS(EFAULT, EPERM, EBUSY));
		if (rc == -EFAULT && all_prot(&g, PROT_READ))
			fz_fail("uhmm_sim_write of mapped memory: -EFAULT");
		if (rc == -EPERM && all_prot(&g, PROT_READ | PROT_WRITE))
			fz_fail("uhmm_sim_write of writable memory: -EPERM");
		if (rc >= 0) {
			if (!all_prot(&g, PROT_READ | PROT_WRITE))
				fz_fail("uhmm_sim_write to memory not writable succeeded");
			memset(mdl[g.r] + g.p0 * pg + g.off, v, g.len);
		}
		break;
	}
	case 11: {	/* sim atomic add */
		uint64_t val = in_u64(in) >> in_pick(in, 64), old = 0, m;
		uint8_t *w = R[g.r] + g.p0 * pg + 8 * in_pick(in, (uint8_t)(pg / 8 > 255 ? 255 : pg / 8));
		size_t off = (size_t)(w - R[g.r]);
		d = dev_of(in);
		if (!d)
			d = dc;
		fz_note("uhmm_sim_atomic_add(%d, %d:+%#zx, %#llx)", id_of(d), g.r, off, (unsigned long long)val);
		if (disc[g.r][g.p0] && readable(g.r, g.p0))
			check_page(g.r, g.p0, R[g.r] + g.p0 * pg, "CPU read before an atomic");
		rc = uhmm_sim_atomic_add(d, w, val, &old);
		fz_rc(rc, FZ_ERRS(EFAULT, EPERM, EBUSY));
		if (rc >= 0) {
			if (!all_prot(&(struct rng){ g.r, g.p0, 1, 0, pg }, PROT_READ | PROT_WRITE))
				fz_fail("uhmm_sim_atomic_add on memory not writable succeeded");
			memcpy(&m, mdl[g.r] + off, 8);
			if (old != m)
				fz_fail("uhmm_sim_atomic_add: old %#llx, model %#llx", (unsigned long long)old,
					(unsigned long long)m);
			m += val;
			memcpy(mdl[g.r] + off, &m, 8);
		}
		break;
	}
	case 12: case 13: {	/* uhmm_range_fault, answers read through host */
		struct uhmm_mirror *m = in_pick(in, 2) ? mc : mp;
		unsigned f = in_pick(in, 3);
		fz_note("uhmm_range_fault(%s, %d:%d+%d, %u)", m == mc ? "mc" : "mp", g.r, g.p0, g.np, f);
		rc = uhmm_range_fault(m, a, g.len, f, ptes);
		fz_rc(rc, FZ_ERRS(EFAULT, EPERM, EBUSY));
		if (rc == 0) {
			for (int i = 0; i < g.np; i++) {
				int p = g.p0 + i;
				if (f && !(ptes[i].flags & UHMM_PTE_VALID))
					fz_fail("uhmm_range_fault(%u): page %d not VALID", f, i);
				if (!(ptes[i].flags & UHMM_PTE_VALID) || !ptes[i].host || !readable(g.r, p))
					continue;
				if (ptes[i].loc == UHMM_LOC_SYSTEM && ptes[i].host != (uintptr_t)(R[g.r] + p * pg))
					fz_fail("uhmm_range_fault: a system page's host %#llx is not its address",
						(unsigned long long)ptes[i].host);
				if (ptes[i].flags & UHMM_PTE_EXCLUSIVE)
					continue;	/* the library's copy: the CPU page is empty */
				check_page(g.r, p, (const uint8_t *)(uintptr_t)ptes[i].host, "through host");
			}
		}
		break;
	}
	case 14: {	/* device atomics */
		struct uhmm_mirror *m = in_pick(in, 2) ? mc : mp;
		fz_note("uhmm_make_exclusive(%s, %d:%d+%d)", m == mc ? "mc" : "mp", g.r, g.p0, g.np);
		rc = uhmm_make_exclusive(m, a, g.len);
		fz_rc(rc, FZ_ERRS(EFAULT, EPERM, EBUSY));
		break;
	}
	case 15: {	/* protection */
		static const int prots[] = { PROT_READ, PROT_READ | PROT_WRITE, PROT_NONE };
		int pr = prots[in_pick(in, 3)];
		bool lib = in_pick(in, 2);
		if (!all_mapped(&g))
			break;	/* the kernel would change a prefix, then fail */
		fz_note("%smprotect(%d:%d+%d, %d)", lib ? "uhmm_" : "", g.r, g.p0, g.np, pr);
		rc = lib ? uhmm_mprotect(h, a, g.len, pr) : (mprotect(R[g.r] + g.p0 * pg, g.np * pg, pr) ? -errno : 0);
		fz_rc(rc, FZ_ERRS(EAGAIN, EBUSY));
		if (rc == 0)
			for (int p = g.p0; p < g.p0 + g.np; p++)
				prot[g.r][p] = pr;
		break;
	}
	case 16: {	/* munmap, mmap, madvise(DONTNEED) */
		uint8_t *pa = R[g.r] + g.p0 * pg;
		switch (in_pick(in, 3)) {
		case 0:
			fz_note("munmap(%d:%d+%d)", g.r, g.p0, g.np);
			if (munmap(pa, g.np * pg))
				fz_fail("munmap");
			for (int p = g.p0; p < g.p0 + g.np; p++)
				mapped[g.r][p] = false;
			break;
		case 1:
			fz_note("mmap(%d:%d+%d)", g.r, g.p0, g.np);
			if (mmap(pa, g.np * pg, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1,
				 0) == MAP_FAILED)
				fz_fail("mmap");
			for (int p = g.p0; p < g.p0 + g.np; p++) {
				mapped[g.r][p] = true;
				prot[g.r][p] = PROT_READ | PROT_WRITE;
				disc[g.r][p] = false;
			}
			memset(mdl[g.r] + g.p0 * pg, 0, g.np * pg);
			break;
		default:
			if (!all_mapped(&g))
				break;
			fz_note("madvise(%d:%d+%d, DONTNEED)", g.r, g.p0, g.np);
			if (madvise(pa, g.np * pg, MADV_DONTNEED))
				fz_fail("madvise");
			for (int p = g.p0; p < g.p0 + g.np; p++)
				disc[g.r][p] = false;
			memset(mdl[g.r] + g.p0 * pg, 0, g.np * pg);
		}
		break;
	}
	case 17: {	/* mremap to the same pages of another region */
		int r2 = (g.r + 1 + (int)in_pick(in, NR - 1)) % NR;
		uint8_t *from = R[g.r] + g.p0 * pg, *to = R[r2] + g.p0 * pg;
		void *q;
		if (!all_mapped(&g))
			break;
		fz_note("mremap(%d:%d+%d -> %d)", g.r, g.p0, g.np, r2);
		q = mremap(from, g.np * pg, g.np * pg, MREMAP_MAYMOVE | MREMAP_FIXED, to);
		if (getenv("FUZZ_TRACE"))
			fprintf(stderr, "fuzz: mremap -> %p (%s)\n", q, q == MAP_FAILED ? strerror(errno) : "moved");
		if (q == MAP_FAILED) {
			/* several mappings (protections, device pages not
			 * contiguous, a uhmm-registered one): the kernel's
			 * EFAULT.  Since 6.17 a move of several mappings stops
			 * at the first it cannot move, those before it moved:
			 * ask the kernel which pages are where now. */
			if (errno != EFAULT)
				fz_fail("mremap: %s", strerror(errno));
			for (int p = g.p0; p < g.p0 + g.np; p++) {
				bool src = msync(R[g.r] + p * pg, pg, MS_ASYNC) == 0;
				bool dst = msync(R[r2] + p * pg, pg, MS_ASYNC) == 0;
				if (!src && dst) {	/* moved */
					mapped[r2][p] = true;
					prot[r2][p] = prot[g.r][p];
					disc[r2][p] = disc[g.r][p];
					mapped[g.r][p] = false;
					memcpy(mdl[r2] + p * pg, mdl[g.r] + p * pg, pg);
				} else {
					if (!src)
						fz_fail("mremap failed and page %d is gone from both places", p);
					mapped[r2][p] = dst;	/* the target may be unmapped */
				}
			}
			break;
		}
		for (int p = g.p0; p < g.p0 + g.np; p++) {
			mapped[r2][p] = true;
			prot[r2][p] = prot[g.r][p];
			disc[r2][p] = disc[g.r][p];
			mapped[g.r][p] = false;
		}
		memcpy(mdl[r2] + g.p0 * pg, mdl[g.r] + g.p0 * pg, g.np * pg);
		break;
	}
	case 18: {	/* a device added or removed */
		if (dyn) {
			fz_note("uhmm_dev_remove(dyn)");
			fz_rc(uhmm_dev_remove(dyn), FZ_ERRS(EIO));
			dyn = NULL;
		} else {
			enum uhmm_mem k = in_pick(in, 2) ? UHMM_MEM_COHERENT : UHMM_MEM_PRIVATE;
			fz_note("uhmm_dev_add_sim(dyn, %d)", (int)k);
			if (uhmm_dev_add_sim(h, "dyn", k, (1 + in_pick(in, DEVP)) * pg, &dyn))
				fz_fail("uhmm_dev_add_sim failed");
			idyn = dev_id(dyn);
			dyn_private = k == UHMM_MEM_PRIVATE;
		}
		break;
	}
	case 19: {	/* unmanage */
		fz_note("uhmm_unmanage(%d:%d+%d)", g.r, g.p0, g.np);
		rc = uhmm_unmanage(h, a, g.len);
		fz_rc(rc, FZ_ERRS(EFAULT, EINVAL, EBUSY, EAGAIN));
		break;
	}
	case 20: {	/* eviction */
		d = dev_of(in);
		if (!d)
			d = dc;
		fl = in_pick(in, 20);
		fz_note("uhmm_dev_evict(%d, %u pages)", id_of(d), fl);
		fz_rc(uhmm_dev_evict(d, (size_t)fl * pg), FZ_ERRS(ENOMEM, EINVAL));
		break;
	}
	case 21: {	/* reported accesses: the policy may migrate */
		uint32_t cnt = in_pick(in, 2) ? 1u << in_pick(in, 10) : in_u16(in);
		d = dev_of(in);
		if (!d)
			d = dp;
		fz_note("uhmm_dev_report_access(%d, %d:%d+%d, %u)", id_of(d), g.r, g.p0, g.np, cnt);
		fz_rc(uhmm_dev_report_access(d, a, g.len, cnt), FZ_ERRS(EFAULT, EINVAL, EBUSY, EAGAIN));
		break;
	}
	case 22: {	/* counters */
		struct uhmm_stats st = { .sz = sizeof(st) };
		fz_note("stats");
		if (uhmm_stats(h, &st) || uhmm_dev_stats(dc, &st) || uhmm_dev_stats(dp, &st))
			fz_fail("uhmm_stats failed");
		dev_info_ok(dc, NULL);
		dev_info_ok(dp, NULL);
		break;
	}
	default: {	/* a whole region there and back */
		d = dev_of(in);
		fz_note("uhmm_migrate(%d, %d) and back", g.r, id_of(d));
		g.p0 = 0; g.np = RP; g.off = 0; g.len = RP * pg;
		rc = uhmm_migrate(h, R[g.r], RP * pg, d, 0);
		migrated(&g, d, 0, rc, "uhmm_migrate");
		rc = uhmm_migrate(h, R[g.r], RP * pg, NULL, 0);
		migrated(&g, NULL, 0, rc, "uhmm_migrate home");
		break;
	}
	}
}

static void finish(void)
{
	size_t used = 0;

	drain();
	fz_note("final check");
	check_all(true);
	munmap(base, (1 + NR * (RP + 1)) * pg);
	if (dyn) {
		fz_rc(uhmm_dev_remove(dyn), FZ_ERRS(EIO));
		dyn = NULL;
	}
	/* the regions are gone: so are their device pages, by the next call
	 * or the worker's next round */
	for (int tries = 0; tries < 200; tries++) {
		size_t u2;
		uhmm_where(h, &used, sizeof(used), loc);
		dev_info_ok(dc, &used);
		dev_info_ok(dp, &u2);
		used += u2;
		if (!used)
			break;
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	}
	if (used)
		fz_fail("%zu bytes of device memory still in use after the regions were unmapped", used);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };

	fz_current(data, size);
	start(&in);
	for (int i = 0; i < MAX_OPS && in.n; i++) {
		op(&in);
		check_all(false);
	}
	finish();
	fz_reg_check();
	return 0;
}
