// SPDX-License-Identifier: MIT
/*
 * The simulated device's DMA engine (uhmm_sim_read/uhmm_sim_write), the
 * kernel's test_hmm "dmirror" in user space.  It goes through a mirror of
 * its own exactly as a driver would: translations are cached per page,
 * dropped by the invalidate callback under the engine's lock, and missing
 * ones are faulted in with uhmm_range_fault, one round at a time, under
 * the read_begin/read_retry protocol.
 *
 * It never dereferences a user address (hazard 5): system pages are
 * reached with process_vm_readv/writev (an unmapped page is EFAULT, not a
 * crash), COHERENT pages through the library's own view of the device,
 * PRIVATE pages through the driver's copy ops.  Device memory is touched
 * with the engine's lock held, so that once the callback returns the
 * device no longer uses the range; system pages are reached through the
 * program's own mapping, like a CPU access, with the lock dropped (the
 * access may fault to uhmm, which may be running the callback), and an
 * EFAULT there after an invalidation means the translation went stale.
 * The caller's buffer is touched only with no lock held, through a bounce
 * buffer of ours: it may be managed memory that faults.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <sys/uio.h>
#include <unistd.h>

#include "internal.h"
#include "trace.h"

#define TC_BLOCKS	1024		/* cached 2 MiB blocks (2 GiB) */
#define BOUNCE		(64 << 10)
#define EFAULT_TRIES	3		/* stale-free EFAULTs before giving up */
#define BUSY_TRIES	64		/* -EBUSY rounds in a row before giving up */
/* as the kernel's drivers retry hmm_range_fault (HMM_RANGE_DEFAULT_TIMEOUT) */
#define RACE_TIMEOUT_NS	(1000ull * 1000 * 1000)

/*
 * A copy of at least this much takes both channels, half each: one
 * process_vm_readv runs at half memcpy's rate (the kernel copies page by
 * page), two on two cores at about memcpy's.  Below it, waking the second
 * channel costs more than its half saves.  UHMM_DMA_SPLIT=MiB sets it at
 * uhmm_open (0: one channel).
 */
#define SPLIT_MIN_DEFAULT	(8ul << 20)

size_t sim_dma_split_min(void)
{
	return split_min_env("UHMM_DMA_SPLIT", SPLIT_MIN_DEFAULT);
}

struct tblock {
	uintptr_t base;			/* 0: free slot */
	uint64_t valid[BLOCK_PAGES / 64];
	struct uhmm_pte pte[BLOCK_PAGES];
};

struct sim_dma {
	struct uhmm_dev *dev;
	struct uhmm_mirror *m;
	pthread_mutex_t lock;		/* the "driver lock" of the callback */
	struct helper *chan;		/* a second channel for long copies */
	size_t split_min;		/* how long */
	size_t nblk;
	struct tblock blk[TC_BLOCKS];	/* open addressing, never deleted */
};

/* ---- the translation cache, under dma->lock ------------------------------ */

static size_t slot_of(uintptr_t base)
{
	return (base >> BLOCK_SHIFT) * 0x9E3779B97F4A7C15ull >> 54;	/* 10 bits */
}

static struct tblock *tc_find(struct sim_dma *dma, uintptr_t a, bool create)
{
	uintptr_t base = a & ~(BLOCK_SIZE - 1);

	for (size_t i = slot_of(base), k = 0; k < TC_BLOCKS; k++, i = (i + 1) % TC_BLOCKS) {
		struct tblock *b = &dma->blk[i];

		if (b->base == base)
			return b;
		if (b->base)
			continue;
		if (!create)
			return NULL;
		/* three quarters full: start afresh rather than probe long */
		if (dma->nblk >= TC_BLOCKS * 3 / 4) {
			for (size_t j = 0; j < TC_BLOCKS; j++)
				dma->blk[j].base = 0;
			dma->nblk = 0;
			return tc_find(dma, a, true);
		}
		memset(b->valid, 0, sizeof(b->valid));
		b->base = base;
		dma->nblk++;
		return b;
	}
	return NULL;
}

static const struct uhmm_pte *tc_get(struct sim_dma *dma, uintptr_t a)
{
	struct tblock *b = tc_find(dma, a, false);
	size_t i = (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1);

	if (!b || !(b->valid[i / 64] & (1ull << (i % 64))))
		return NULL;
	return &b->pte[i];
}

static void tc_put(struct sim_dma *dma, uintptr_t a, const struct uhmm_pte *p)
{
	struct tblock *b = tc_find(dma, a, true);
	size_t i = (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1);

	if (!b)
		return;
	b->pte[i] = *p;
	b->valid[i / 64] |= 1ull << (i % 64);
}

static void tc_drop_block(struct tblock *b, uintptr_t s, uintptr_t e)
{
	uintptr_t lo = s > b->base ? s : b->base;
	uintptr_t hi = e - b->base < BLOCK_SIZE ? e : b->base + BLOCK_SIZE;

	for (uintptr_t a = page_down(lo); a < hi; a += PAGE_SIZE) {
		size_t i = (a >> PAGE_SHIFT) & (BLOCK_PAGES - 1);

		b->valid[i / 64] &= ~(1ull << (i % 64));
	}
}

static void tc_drop(struct sim_dma *dma, uintptr_t s, uintptr_t e)
{
	if (((e - s) >> BLOCK_SHIFT) < 64) {
		for (uintptr_t a = s & ~(BLOCK_SIZE - 1); a < e; a += BLOCK_SIZE) {
			struct tblock *b = tc_find(dma, a, false);

			if (b)
				tc_drop_block(b, s, e);
		}
		return;
	}
	for (size_t j = 0; j < TC_BLOCKS; j++) {
		struct tblock *b = &dma->blk[j];

		if (b->base && b->base < e && b->base + BLOCK_SIZE > s)
			tc_drop_block(b, s, e);
	}
}

static void dma_invalidate(struct uhmm_mirror *m, const struct uhmm_inval *inv)
{
	struct sim_dma *dma = uhmm_mirror_priv(m);

	pthread_mutex_lock(&dma->lock);
	tc_drop(dma, inv->start, inv->end);
	pthread_mutex_unlock(&dma->lock);
}

static const struct uhmm_mirror_ops dma_ops = {
	.sz = sizeof(struct uhmm_mirror_ops),
	.invalidate2 = dma_invalidate,
};

/* ---- the engine ------------------------------------------------------------ */

/* The device's engine, made at first use; the access is counted first
 * (the access counters may move the range to the device before it runs). */
static int dma_get(struct uhmm_dev *d, uintptr_t s, uintptr_t e, struct sim_dma **out)
{
	struct uhmm *h = d->h;
	struct sim_dma *dma;
	int r = 0;

	ctx_lock(h);
	/* a munmap that returned before this call is seen by it (hazard 3):
	 * its invalidation reaches the cache before we look there */
	events_drain(h);
	policy_access(h, d, s, e, 1);
	dma = d->dma;
	if (!dma) {
		dma = mem_alloc(sizeof(*dma));
		r = dma ? 0 : -ENOMEM;
		if (!r) {
			dma->dev = d;
			pthread_mutex_init(&dma->lock, NULL);
			/* none: one channel does it all */
			dma->split_min = h->dma_split_min;
			dma->chan = dma->split_min ? helper_new("uhmm-dma", NULL) : NULL;
			r = mirror_open_locked(d, &dma_ops, dma, &dma->m);
			if (r) {
				helper_free(dma->chan);
				mem_free(dma);
			}
			else
				d->dma = dma;
		}
	}
	ctx_unlock(h);
	*out = dma;
	return r;
}

void sim_dma_free(struct uhmm_dev *d)
{
	struct sim_dma *dma = d->dma;

	if (!dma)
		return;
	d->dma = NULL;
	uhmm_mirror_close(dma->m);
	helper_free(dma->chan);
	pthread_mutex_destroy(&dma->lock);
	mem_free(dma);
}

static uint32_t need_of(bool write)
{
	return write ? UHMM_PTE_VALID | UHMM_PTE_WRITE : UHMM_PTE_VALID;
}

/* The first page of [s, e) without a usable translation, or e. */
static uintptr_t first_missing(struct sim_dma *dma, uintptr_t s, uintptr_t e, bool write)
{
	uint32_t need = need_of(write);

	pthread_mutex_lock(&dma->lock);
	for (; s < e; s += PAGE_SIZE) {
		const struct uhmm_pte *p = tc_get(dma, s);

		if (!p || (p->flags & need) != need)
			break;
	}
	pthread_mutex_unlock(&dma->lock);
	return s;
}

/*
 * One device fault round: translations for [s, e), the driver's loop of
 * the kernel (read_begin, range_fault, lock, read_retry, program).
 */
static int fault_round(struct sim_dma *dma, uintptr_t s, uintptr_t e, bool write,
		       struct uhmm_pte *ptes)
{
	uint64_t seq = uhmm_mirror_read_begin(dma->m);
	size_t n = (e - s) >> PAGE_SHIFT;
	int r;

	COUNT(dma->dev->h, dma->dev, dev_faults, 1);
	if (tracing(dma->dev->h))
		trace_emit(dma->dev->h, UHMM_TRACE_DEV_FAULT, s, e - s, UHMM_LOC_NONE,
			   dma->dev->id, 0);
	r = uhmm_range_fault(dma->m, (void *)s, e - s,
			     write ? UHMM_FAULT_WRITE : UHMM_FAULT_READ, ptes);
	/* -EBUSY with the mirror invalidated meanwhile: a race, not a
	 * refusal (another thread migrating or writing the range) */
	if (r == -EBUSY && uhmm_mirror_read_retry(dma->m, seq))
		return -ESTALE;
	if (r)
		return r;
	pthread_mutex_lock(&dma->lock);
	if (uhmm_mirror_read_retry(dma->m, seq)) {
		pthread_mutex_unlock(&dma->lock);
		return -EAGAIN;	/* invalidated meanwhile: another round */
	}
	for (size_t i = 0; i < n; i++)
		tc_put(dma, s + (i << PAGE_SHIFT), &ptes[i]);
	pthread_mutex_unlock(&dma->lock);
	return 0;
}

/*
 * Rounds until every page of [s, e) is translated; *rounds counts them.
 * A round whose translations an invalidation made stale is retried as
 * long as it takes (each is someone's progress).  uhmm_range_fault's
 * -EBUSY: where the mirror was invalidated during the call, for up to a
 * second, as the kernel's drivers do (other threads migrating the range
 * keep invalidating it; 64 rounds in a row were seen under ASan); else
 * BUSY_TRIES times in a row: it is also what memory another context
 * manages gives, for good, and retrying that for ever hung uhmm_sim_read
 * (fuzz_args).
 */
/* Still within a second of the first race of a run of them? */
static bool race_goes_on(uint64_t *until)
{
	uint64_t now = mono_ns();

	if (!*until)
		*until = now + RACE_TIMEOUT_NS;
	return now < *until;
}

static int translate(struct sim_dma *dma, uintptr_t s, uintptr_t e, bool write,
		     int *rounds)
{
	struct uhmm_pte *ptes = NULL;
	uint64_t race_until = 0;
	size_t cap = 0;
	int r = 0, busy = 0;

	busy_forget();
	for (;;) {
		uintptr_t a = first_missing(dma, s, e, write);
		size_t n = (e - a) >> PAGE_SHIFT;

		if (a == e)
			break;
		if (n > cap) {
			mem_free(ptes);
			ptes = mem_alloc(n * sizeof(*ptes));
			cap = ptes ? n : 0;
			if (!ptes) {
				r = -ENOMEM;
				break;
			}
		}
		(*rounds)++;
		r = fault_round(dma, a, e, write, ptes);
		if (r == -ESTALE && race_goes_on(&race_until)) {
			busy = 0;
			sched_yield();
			r = 0;
			continue;
		}
		if (r == -EBUSY && ++busy < BUSY_TRIES) {
			sched_yield();
			r = 0;
			continue;
		}
		if (r == -ESTALE || r == -EBUSY) {
			busy_report("the sim DMA engine's range fault", s, e, *rounds);
			r = -EBUSY;
			break;
		}
		if (r && r != -EAGAIN)
			break;
		if (!r)
			busy = race_until = 0;
		r = 0;
	}
	mem_free(ptes);
	return r;
}

/*
 * The modelled link to system memory: each transfer takes the link for
 * len / rate; whoever finds it busy waits its turn, as DMA on one link
 * does.  Short debts are carried to the next transfer instead of slept
 * off one by one (a sleep costs tens of microseconds of timer slack).
 */
#define LINK_SLEEP_NS	(200 * 1000)

void sim_link_use(struct uhmm_dev *d, size_t len)
{
	uint64_t rate = atomic_load(&d->link_rate), now, start, end;
	struct timespec ts;

	if (!d || !rate)
		return;
	now = mono_ns();
	start = atomic_load(&d->link_free_ns);
	do
		end = (start > now ? start : now) + (uint64_t)((double)len * 1e9 / (double)rate);
	while (!atomic_compare_exchange_weak(&d->link_free_ns, &start, end));
	if (end <= now + LINK_SLEEP_NS)
		return;
	ts.tv_sec = (end - now) / 1000000000;
	ts.tv_nsec = (end - now) % 1000000000;
	nanosleep(&ts, NULL);
}

static ssize_t vm_rw(struct uhmm_dev *d, uintptr_t at, char *local, size_t len, bool write)
{
	struct iovec l = { local, len }, rm = { (void *)at, len };
	ssize_t got = syscall(write ? SYS_process_vm_writev : SYS_process_vm_readv, getpid(),
			      &l, 1, &rm, 1, 0);

	if (got > 0)
		sim_link_use(d, got);
	return got;
}

struct half {
	struct uhmm_dev *d;
	uintptr_t at;
	char *local;
	size_t len;
	bool write;
	ssize_t got;
};

static void half_run(void *arg)
{
	struct half *x = arg;

	x->got = vm_rw(x->d, x->at, x->local, x->len, x->write);
}

/*
 * As vm_rw, the upper half on the second channel when it is free.  What
 * moved is what moved from `at` on without a gap: the upper half counts
 * only after a whole lower half (a caller that moves the rest again moves
 * the same bytes again).
 */
static ssize_t vm_rw_wide(struct sim_dma *dma, uintptr_t at, char *local, size_t len, bool write)
{
	struct half up = { dma->dev, 0, NULL, 0, write, 0 };
	size_t lo;
	ssize_t got;

	/* The split point is a page boundary above `at`, or there is none. */
	if (!dma->split_min || len < dma->split_min || page_down(at + len / 2) <= at)
		return vm_rw(dma->dev, at, local, len, write);
	lo = page_down(at + len / 2) - at;
	up.at = at + lo;
	up.local = local + lo;
	up.len = len - lo;
	if (!helper_post(dma->chan, half_run, &up))
		return vm_rw(dma->dev, at, local, len, write);
	got = vm_rw(dma->dev, at, local, lo, write);
	if (got < 0)
		got = -errno;	/* errno is this thread's: kept over the wait */
	helper_wait(dma->chan);
	if (got == (ssize_t)lo && up.got > 0)
		return got + up.got;
	if (got < 0) {
		errno = -got;
		return -1;
	}
	return got;
}

int uhmm_sim_set_link(struct uhmm_dev *dev, uint64_t bytes_per_sec)
{
	if (!dev)
		return -EINVAL;
	atomic_store(&dev->link_rate, bytes_per_sec);
	return 0;
}

/*
 * Move up to one page's worth (at .. at + len within one page) between the
 * device's view of it and bounce.  Returns bytes moved, 0 when the
 * translation is missing (a round is needed), -errno on failure.
 */
static ssize_t dev_page(struct sim_dma *dma, const struct uhmm_pte *p, uintptr_t at,
			char *bounce, size_t len, bool write)
{
	struct uhmm_dev *d = dma->dev;
	size_t off = at & (PAGE_SIZE - 1);
	int r = 0;

	if (p->host) {
		/* COHERENT: the library's own view of the device page */
		char *v = (char *)(uintptr_t)p->host + off;

		if (write)
			memcpy(v, bounce, len);
		else
			memcpy(bounce, v, len);
		return len;
	}
	/* PRIVATE, this device's own memory: whole pages through its ops */
	if (p->loc != d->id)
		return -EIO;
	if (write && len < PAGE_SIZE) {
		char page[PAGE_SIZE];

		r = d->ops.copy_from_dev(d->drv, page, p->dev_off, PAGE_SIZE);
		if (!r) {
			memcpy(page + off, bounce, len);
			r = d->ops.copy_to_dev(d->drv, p->dev_off, page, PAGE_SIZE);
		}
	} else if (write) {
		r = d->ops.copy_to_dev(d->drv, p->dev_off, bounce, PAGE_SIZE);
	} else {
		char page[PAGE_SIZE];

		r = d->ops.copy_from_dev(d->drv, page, p->dev_off, PAGE_SIZE);
		if (!r)
			memcpy(bounce, page + off, len);
	}
	return r ? -EIO : (ssize_t)len;
}

/*
 * One piece from `at`, at most `len` bytes (<= BOUNCE): a run of system
 * pages, or one device page.  Returns bytes moved, 0 when a round is
 * needed first, or -errno.
 */
static ssize_t move_piece(struct sim_dma *dma, uintptr_t at, char *bounce, char *direct,
			  size_t len, bool write, int *efaults, bool *used_direct)
{
	uint32_t need = need_of(write);
	const struct uhmm_pte *p;
	size_t run = 0;
	ssize_t got;
	/* before the lock: it waits while a callback, which takes the lock,
	 * runs; a translation found below is valid as of this seq */
	uint64_t seq = uhmm_mirror_read_begin(dma->m);

	pthread_mutex_lock(&dma->lock);
	p = tc_get(dma, at);
	if (!p || (p->flags & need) != need) {
		pthread_mutex_unlock(&dma->lock);
		return 0;
	}
	*used_direct = false;
	/* device pages, and pages a device holds alone: through `host` */
	if (p->loc != UHMM_LOC_SYSTEM || (p->flags & UHMM_PTE_EXCLUSIVE)) {
		size_t n = PAGE_SIZE - (at & (PAGE_SIZE - 1));

		got = dev_page(dma, p, at, bounce, n < len ? n : len, write);
		pthread_mutex_unlock(&dma->lock);
		return got;
	}
	if (!direct && len > BOUNCE)
		len = BOUNCE;
	/* a run of system pages, reached through the program's mapping */
	while (run < len) {
		uintptr_t a = at + run;
		const struct uhmm_pte *q = tc_get(dma, a);
		size_t n = PAGE_SIZE - (a & (PAGE_SIZE - 1));

		if (!q || (q->flags & need) != need || q->loc != UHMM_LOC_SYSTEM ||
		    (q->flags & UHMM_PTE_EXCLUSIVE))
			break;
		run += n < len - run ? n : len - run;
	}
	pthread_mutex_unlock(&dma->lock);
	/* straight between the program's pages and the caller's buffer, one
	 * copy; where the caller's buffer cannot take a kernel-mode access
	 * (a page of it on a private device, user-mode-only), the bounce */
	if (direct) {
		got = vm_rw_wide(dma, at, direct, run, write);
		if (got > 0) {
			*used_direct = true;
			return got;
		}
		if (run > BOUNCE)
			run = BOUNCE;
	}
	got = vm_rw(dma->dev, at, bounce, run, write);
	if (got > 0)
		return got;
	if (errno != EFAULT && errno != ENOMEM && got < 0)
		return -errno;
	/* stale (an invalidation came meanwhile), or the program unmapped it
	 * or is changing it: look again, a few times, before calling it gone */
	pthread_mutex_lock(&dma->lock);
	tc_drop(dma, page_down(at), page_down(at) + PAGE_SIZE);
	pthread_mutex_unlock(&dma->lock);
	if (!uhmm_mirror_read_retry(dma->m, seq) && ++*efaults >= EFAULT_TRIES)
		return -EFAULT;
	return 0;
}

/*
 * A plain mprotect sends no event, so translations cached before it still
 * say READ or WRITE: a write through them would land on the pages before
 * the first the kernel refuses, and device pages (reached through the
 * view or the driver) would be read and written whatever the program
 * made of them.  The mappings as they are now decide, before anything is
 * copied (an mprotect racing the call can still cut it short, as it would
 * the program's own accesses).
 */
static int allowed_now(struct uhmm *h, uintptr_t s, uintptr_t e, bool write)
{
	struct vma *vv;
	size_t nv;
	int r;

	ctx_lock(h);
	r = vma_scan(h, s, e, &vv, &nv);	/* -EFAULT on a hole */
	ctx_unlock(h);
	if (r)
		return r;
	for (size_t i = 0; !r && i < nv; i++)
		if (!(vv[i].prot & (PROT_READ | PROT_WRITE)))
			r = -EFAULT;
	for (size_t i = 0; !r && write && i < nv; i++)
		if (!(vv[i].prot & PROT_WRITE))
			r = -EPERM;
	mem_free(vv);
	return r;
}

static int dma_access(struct uhmm_dev *dev, uintptr_t addr, char *ubuf, size_t len,
		      bool write)
{
	struct sim_dma *dma;
	uintptr_t s, e;
	int rounds = 0, efaults = 0, r;
	size_t done = 0;
	char *bounce;

	if (!dev || !ubuf)
		return -EINVAL;
	r = range_pages((void *)addr, len, &s, &e);
	if (r)
		return r;
	r = dma_get(dev, s, e, &dma);
	if (r)
		return r;
	bounce = mem_alloc(BOUNCE);
	if (!bounce)
		return -ENOMEM;
	/* everything translated and allowed first: a write refused anywhere
	 * writes nothing */
	r = translate(dma, s, e, write, &rounds);
	if (!r) {
		r = allowed_now(dev->h, s, e, write);
		/* refused: what it had cached of the range was stale, and goes
		 * (as a device's TLB after a fault) */
		if (r) {
			pthread_mutex_lock(&dma->lock);
			tc_drop(dma, s, e);
			pthread_mutex_unlock(&dma->lock);
		}
	}
	while (!r && done < len) {
		size_t n = len - done < BOUNCE ? len - done : BOUNCE;
		bool direct = false;
		ssize_t got;

		if (write)
			memcpy(bounce, ubuf + done, n);
		got = move_piece(dma, addr + done, bounce, ubuf + done, len - done, write,
				 &efaults, &direct);
		if (got < 0) {
			r = got;
		} else if (!got) {
			r = translate(dma, page_down(addr + done), e, write, &rounds);
		} else {
			if (!write && !direct)
				memcpy(ubuf + done, bounce, got);
			done += got;
			efaults = 0;
		}
	}
	mem_free(bounce);
	return r ? r : rounds;
}

/*
 * A device atomic: the word's page is made the device's alone, then
 * changed where the device reaches it, with the engine's lock held (the
 * callback that takes the page back waits for it).  A CPU access in
 * between takes the page back first; then we start again.
 */
static int atomic_once(struct sim_dma *dma, uintptr_t a, uint64_t val, uint64_t *old,
		       int *rounds)
{
	struct uhmm_dev *d = dma->dev;
	uintptr_t page = page_down(a);
	struct uhmm_pte p;
	uint64_t seq, v;
	int r;

	r = uhmm_make_exclusive(dma->m, (void *)a, sizeof(v));
	if (r)
		return r;
	seq = uhmm_mirror_read_begin(dma->m);
	(*rounds)++;
	COUNT(d->h, d, dev_faults, 1);
	r = uhmm_range_fault(dma->m, (void *)page, PAGE_SIZE, UHMM_FAULT_WRITE, &p);
	if (r)
		return r == -EBUSY ? -EAGAIN : r;	/* an invalidation raced it */
	pthread_mutex_lock(&dma->lock);
	if (uhmm_mirror_read_retry(dma->m, seq)) {
		r = -EAGAIN;
	} else if (p.flags & UHMM_PTE_EXCLUSIVE) {
		*old = __atomic_fetch_add((uint64_t *)(uintptr_t)(p.host + (a - page)), val,
					  __ATOMIC_SEQ_CST);
	} else if (p.loc == d->id && !p.host) {
		/* a page of its own private memory: nobody else reaches it */
		char buf[PAGE_SIZE];

		r = d->ops.copy_from_dev(d->drv, buf, p.dev_off, PAGE_SIZE) ? -EIO : 0;
		memcpy(&v, buf + (a - page), sizeof(v));
		*old = v;
		v += val;
		memcpy(buf + (a - page), &v, sizeof(v));
		if (!r && d->ops.copy_to_dev(d->drv, p.dev_off, buf, PAGE_SIZE))
			r = -EIO;
	} else {
		r = -EAGAIN;	/* taken back meanwhile */
	}
	pthread_mutex_unlock(&dma->lock);
	return r;
}

#define ATOMIC_BUSY_TRIES 16

int uhmm_sim_atomic_add(struct uhmm_dev *dev, void *addr, uint64_t val, uint64_t *old)
{
	struct sim_dma *dma;
	uint64_t o = 0;
	int rounds = 0, r;

	if (!dev || !addr || ((uintptr_t)addr & (sizeof(uint64_t) - 1)))
		return -EINVAL;
	/* an access like any other, for the access counters */
	r = dma_get(dev, page_down((uintptr_t)addr), page_down((uintptr_t)addr) + PAGE_SIZE, &dma);
	/* -EAGAIN: the page was taken back before the add, start again.
	 * -EBUSY is uhmm_make_exclusive's: the program changed the range
	 * meanwhile (try again), or the page is pinned, which it stays: a
	 * few tries, then the error (retrying it for ever spun for ever) */
	for (int busy = 0; !r;) {
		r = atomic_once(dma, (uintptr_t)addr, val, &o, &rounds);
		if (r == -EAGAIN || (r == -EBUSY && ++busy < ATOMIC_BUSY_TRIES))
			r = 0;
		else
			break;
	}
	if (r)
		return r;
	if (old)
		*old = o;
	return rounds;
}

int uhmm_sim_read(struct uhmm_dev *dev, const void *addr, void *buf, size_t len)
{
	return dma_access(dev, (uintptr_t)addr, buf, len, false);
}

int uhmm_sim_write(struct uhmm_dev *dev, void *addr, const void *buf, size_t len)
{
	return dma_access(dev, (uintptr_t)addr, (char *)buf, len, true);
}
