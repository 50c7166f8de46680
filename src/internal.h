/* SPDX-License-Identifier: MIT */
/*
 * Internal structures of libuhmm.  Nothing here is part of the ABI.
 *
 * Locking: one mutex per context (h->lock) protects the page table, the
 * devices and their allocators.  Every API entry point takes it and first
 * drains the events the reader thread queued (ARCHITECTURE hazard 3).  The
 * reader thread never takes h->lock: our own munmap/mremap calls block
 * until it has read the event they cause.
 */
#ifndef UHMM_INTERNAL_H
#define UHMM_INTERNAL_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "uhmm.h"

#define PAGE_SHIFT	12
#define PAGE_SIZE	(1ul << PAGE_SHIFT)
#define BLOCK_SHIFT	21			/* 2 MiB virtual blocks */
#define BLOCK_SIZE	(1ul << BLOCK_SHIFT)
#define BLOCK_PAGES	(BLOCK_SIZE / PAGE_SIZE)
#define MAX_DEVS	63

#define LOC_UNMANAGED	0xff			/* page-table byte values */
#define LOC_SYS		0

static inline uintptr_t page_down(uintptr_t a) { return a & ~(PAGE_SIZE - 1); }
static inline uintptr_t page_up(uintptr_t a) { return (a + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1); }

/* mem.c: zeroed, mmap-backed; never the heap (see mem.c) */
void *mem_alloc(size_t size);
size_t mem_pages_max(void);			/* page-sized pieces, at most */
void *mem_realloc(void *p, size_t size);
void  mem_free(void *p);
/* a mapping of our own, len bytes aligned to align, zeroed: where no hole
 * of the program's is (zone.c) */
void *mem_map(size_t len, size_t align);
void  mem_unmap(void *p, size_t len);
/* zone.c, with mem.c's lock held: the library's own address space */
void *zone_map(size_t len, size_t align, int mmap_flags);	/* or NULL */
void  zone_unmap(void *p, size_t len);
bool  zone_owns(const void *p);
/* what RLIMIT_AS leaves this process to map (SIZE_MAX: no limit); any lock */
size_t addr_space_left(void);
void  mem_populate(void *p);			/* fault it all in now */
void  mem_fork_lock(bool lock);			/* fork.c: across a fork */
bool  mem_owns(uintptr_t start, uintptr_t end);	/* our slabs in range? */
/* other mappings of ours (a device's view, a sim device's memory): no part
 * of the program's memory to mem_owns, whatever their kind */
void  mem_own_map(void *p, size_t len);
void  mem_disown_map(void *p);
/* BOUNCE_BYTES from the slabs, for bounce.c: not zeroed, not populated */
#define BOUNCE_BYTES	(64u << 10)
void *mem_bounce_take(void);
void  mem_bounce_put(void *p);

/* ---- the library's threads (mem.c) --------------------------------- */

/*
 * A library thread runs on a stack of the library's own memory, which
 * mem_owns covers: no migration of the program's can take it (a reader
 * thread whose stack went to a device-private page would wait for itself).
 * Its name, "uhmm-" and what it does, shows in top -H and /proc.
 */
struct lib_thread {
	pthread_t t;
	void *stack;
	void *(*fn)(void *);
	void *arg;
};
int  lib_thread_start(struct lib_thread *lt, const char *name, void *(*fn)(void *), void *arg);
void lib_thread_join(struct lib_thread *lt);

/* ---- stats ---------------------------------------------------------- */

struct counters {
	_Atomic uint64_t pages_to_dev, pages_to_sys, pages_zero_filled;
	_Atomic uint64_t bytes_copied, cpu_faults, dev_faults, invalidations;
	_Atomic uint64_t evictions, auto_migrations, thrash_pins, poisoned;
	_Atomic uint64_t forks, fork_bytes_staged;
};
void counters_add(struct counters *c, struct counters *dev_c, size_t off, uint64_t n);
#define COUNT(h, dev, field, n) \
	counters_add(&(h)->stats, (dev) ? &(dev)->stats : NULL, \
		     offsetof(struct counters, field), (n))
int counters_export(const struct counters *c, struct uhmm_stats *st);

/* ---- boundary structs ---------------------------------------------- */

/* the first layout of uhmm_opts, which sz == 0 means */
#define UHMM_OPTS_V1	offsetof(struct uhmm_opts, thrash_moves)

/* sz convention: 0 = v1; tail past what we know must be zero. */
int sz_check(const void *s, size_t sz, size_t known);
size_t sz_of(size_t sz, size_t v1);
int range_pages(const void *addr, size_t len, uintptr_t *start, uintptr_t *end);

/* ---- page table ----------------------------------------------------- */

struct vblock {
	uintptr_t base;				/* 2 MiB aligned */
	struct vblock *next;			/* hash chain */
	uint32_t nmanaged;
	uint8_t loc[BLOCK_PAGES];		/* LOC_* or device id */
	uint32_t dpage[BLOCK_PAGES];		/* device page index */
	struct dupblock *dup;			/* dup.c: read-only copies */
};

struct pagetable {
	struct vblock **bucket;
	size_t nbucket, count;
	struct vblock *last;		/* walks go page by page: 511 of 512 hit */
};

int  pt_init(struct pagetable *pt);
void pt_fini(struct pagetable *pt);
struct vblock *pt_lookup(struct pagetable *pt, uintptr_t addr);
/* Leaves pt->last alone: for threads looking up at once (under h->lock) */
struct vblock *pt_find(const struct pagetable *pt, uintptr_t addr);
struct vblock *pt_get(struct pagetable *pt, uintptr_t addr);	/* creates */

/* Inline: migrations call these once per page, nearly always in the block
 * looked at last. */
static inline struct vblock *pt_block(struct pagetable *pt, uintptr_t addr, bool create)
{
	struct vblock *b = pt->last;

	if (b && b->base == (addr & ~(BLOCK_SIZE - 1)))
		return b;
	return create ? pt_get(pt, addr) : pt_lookup(pt, addr);
}

/* LOC_UNMANAGED, LOC_SYS or a device id */
static inline int pt_loc(struct pagetable *pt, uintptr_t addr, uint32_t *dpage)
{
	struct vblock *b = pt_block(pt, addr, false);
	size_t i = (addr >> PAGE_SHIFT) & (BLOCK_PAGES - 1);

	if (!b)
		return LOC_UNMANAGED;
	if (dpage)
		*dpage = b->dpage[i];
	return b->loc[i];
}

static inline int pt_set(struct pagetable *pt, uintptr_t addr, int loc, uint32_t dpage)
{
	struct vblock *b = pt_block(pt, addr, true);
	size_t i = (addr >> PAGE_SHIFT) & (BLOCK_PAGES - 1);

	if (!b)
		return -ENOMEM;
	if (b->loc[i] == LOC_UNMANAGED)
		b->nmanaged++;
	b->loc[i] = loc;
	b->dpage[i] = dpage;
	return 0;
}
/* n pages from addr: loc, and device pages dp[i] (NULL: 0) */
int  pt_set_run(struct pagetable *pt, uintptr_t addr, size_t n, int loc, const uint32_t *dp);
/* unmanaged pages of [start, end) become managed system pages */
int  pt_manage_run(struct pagetable *pt, uintptr_t start, uintptr_t end);
void pt_unmanage(struct pagetable *pt, uintptr_t addr);
/* first managed page in [start, end), or end */
uintptr_t pt_next_managed(struct pagetable *pt, uintptr_t start, uintptr_t end);

/* ---- devices and their memory -------------------------------------- */

#define DP_VIEW_PTE	0x1	/* our view maps this page (populated PTE) */
#define DP_DIRTY	0x2	/* may hold non-zero bytes */
#define DP_DUP		0x4	/* a read-only duplicate of a system page */
#define DP_QUAR		0x8	/* discarded, an address may still name it */

struct uhmm_dev {
	struct uhmm *h;
	int id;
	uint64_t serial;		/* unique in the process */
	enum uhmm_mem kind;
	char name[64];
	size_t size;
	int fd;				/* our duplicate */
	uint64_t fd_offset;
	char *view;			/* MAP_SHARED, 2 MiB aligned */
	dev_t st_dev;
	ino_t st_ino;
	size_t granule;
	struct uhmm_dev_ops ops;
	void *drv;

	/* allocator: chunks of chunk_pages pages, one per virtual key */
	uint32_t chunk_pages;
	uint32_t nchunks;
	size_t npages;
	uintptr_t *owner;		/* per page: user address, 0 = free */
	uint8_t *pflags;		/* per page: DP_* */
	uint32_t *gen;			/* per page: bumped when freed */
	uint64_t *arrived;		/* per page: h->q.reads when it came here */
	int busy;			/* faults copying from it unlocked */
	uintptr_t *chunk_key;		/* per chunk: bound key + 1, 0 = free */
	uint32_t *chunk_used;
	uint64_t *chunk_lru;
	uint32_t *bind;			/* open-addressed key -> chunk + 1 */
	size_t nbind;
	size_t used_pages;
	size_t quar_pages;		/* DP_QUAR: not used, not free either */
	uint32_t bound_chunks;
	uint32_t alloc_hint;
	uintptr_t last_key;		/* the last bind_find, for page-by-page walks */
	long last_chunk;
	size_t scrub_at;		/* where the scrubber goes on */
	size_t scrub_todo;		/* free pages that need it */

	struct counters stats;
	struct sim_dma *dma;		/* sim_dma.c: its DMA engine, made at first use */
	_Atomic uint64_t link_rate;	/* sim_dma.c: modelled link, bytes/s; 0 none */
	_Atomic uint64_t link_free_ns;	/* when the link is free again */
};

int  devmem_init(struct uhmm_dev *d);
void devmem_fini(struct uhmm_dev *d);
/* device page for user page at va, or -ENOSPC when no chunk is free */
int  devmem_alloc(struct uhmm_dev *d, uintptr_t va, uint32_t *dpage);
/* the same for n pages from va, in order: how many got one */
size_t devmem_alloc_run(struct uhmm_dev *d, uintptr_t va, size_t n, uint32_t *dp);
void devmem_free(struct uhmm_dev *d, uint32_t dpage);
bool devmem_claim(struct uhmm_dev *d, uint32_t dpage, uintptr_t va);
void devmem_quarantine(struct uhmm_dev *d, uint32_t dpage);
void devmem_release(struct uhmm_dev *d, uint32_t dpage);

/* A free page that must be zeroed or re-mapped in our view before use. */
static inline bool devmem_needs_scrub(const struct uhmm_dev *d, size_t p)
{
	return !d->owner[p] && d->view &&
	       ((d->pflags[p] & DP_DIRTY) || !(d->pflags[p] & DP_VIEW_PTE));
}

void devmem_touch(struct uhmm_dev *d, uint32_t dpage, uint64_t now);
/* batch.c: the view maps [dp, dp + n) again where it lost its entries */
void view_map(struct uhmm *h, struct uhmm_dev *d, uint32_t dp, size_t n);
/* least recently used chunk with no page in [avoid_start, avoid_end); -1 none */
long devmem_lru_chunk(struct uhmm_dev *d, uintptr_t avoid_start, uintptr_t avoid_end);
static inline uint64_t devmem_off(const struct uhmm_dev *d, uint32_t dpage)
{
	return d->fd_offset + ((uint64_t)dpage << PAGE_SHIFT);
}

int  dev_setup(struct uhmm *h, const struct uhmm_dev_desc *desc, int fd,
	       bool populate, struct uhmm_dev **out);
int  dev_setup_private(struct uhmm *h, const struct uhmm_dev_desc *desc,
		       struct uhmm_dev **out);
int  dev_remove(struct uhmm_dev *dev, bool discard);
/* is (st_dev, st_ino) the memory of a device of another live context? */
bool dev_file_foreign(struct uhmm *h, dev_t sd, ino_t si);
void dev_registry_add(struct uhmm_dev *d);
void dev_registry_del(struct uhmm_dev *d);
void dev_registry_lock(bool lock);	/* fork.c: across a fork */
void dev_registry_forget(void);		/* fork.c: in the child */

/* ---- userfaultfd ---------------------------------------------------- */

#define EXPECT_ANY UINT64_MAX		/* matches any value */

struct expect {
	uint8_t event;
	uint64_t a, b, c;
	int hits;
	uint64_t seq;			/* when it was read */
};

struct qmsg {
	uint8_t event;
	uint64_t flags, addr, a, b, c;
	uint32_t tid;
	uint64_t read_at;		/* h->q.reads when it was read; 0: not read */
};

/* Events events_drain took from the queue and has not applied yet (with
 * h->lock held); a drain inside an apply points to the one around it. */
struct drain_batch {
	const struct qmsg *msg;
	size_t n, next;
	struct drain_batch *outer;
};

struct evqueue {
	pthread_mutex_t lock;
	/* shared: placing pages for a fault; exclusive: the reader reading
	 * (events.c, fill_begin) */
	pthread_rwlock_t fill;
	struct drain_batch *batch;
	pthread_cond_t cond;		/* work for the worker or fault threads */
	pthread_cond_t read_done;	/* the reader has queued what it read */
	struct qmsg *msg;
	size_t n, cap;
	struct expect exp[8];
	int nexp;
	bool reading;			/* reader holds messages not yet queued */
	int foreign;			/* unexpected events in the fenced range */
	uint64_t seq;			/* messages read so far */
	uint64_t reads;			/* reads of the descriptor begun so far */
	uint64_t foreign_seq;		/* when the first foreign one was read */
};

struct allocation {
	struct allocation *next;
	uintptr_t start;
	size_t len;
};

/* ---- advice (advice.c) --------------------------------------------- */

/* The advice of the pages [start, end).  A page no extent covers has
 * advice_none. */
struct advice {
	uintptr_t start, end;
	int pref;			/* UHMM_LOC_NONE, UHMM_LOC_SYSTEM or an id */
	uint64_t accessed_by;		/* bit (id - 1) */
	bool read_mostly;
	bool pinned;			/* uhmm_pin */
	int last_prefetch;		/* UHMM_LOC_NONE or where it went */
};

struct advice_map {
	struct advice *ext;		/* sorted, not overlapping */
	size_t n, cap;
	size_t npinned;			/* extents with pinned set */
};

extern const struct advice advice_none;

/* quarantine.c: discarded device pages an address may still name */
struct quar_run {
	uintptr_t va;
	uint32_t p0;			/* the device page of va */
	uint32_t n;
	int dev;
};
int  quar_add(struct uhmm *h, struct uhmm_dev *d, uintptr_t va, uint32_t dpage);
void quar_end(struct uhmm *h, uintptr_t start, uintptr_t end);
void quar_move(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len);
void quar_reclaim(struct uhmm *h, struct uhmm_dev *d);
void quar_drop_dev(struct uhmm *h, struct uhmm_dev *d);
void quar_fini(struct uhmm *h);

/* fork.c: what a fork() child needs of device-resident memory */
struct fork_plan {
	char *stage;			/* private copy of device-resident pages */
	size_t len;
	struct fork_ext *ext;		/* their runs, with their protection */
	size_t n, cap;
	uintptr_t *maps;		/* COHERENT runs' mappings, by start */
	size_t nmaps, maps_cap;
};
int  fork_track(struct uhmm *h);	/* uhmm_open */
void fork_untrack(struct uhmm *h);	/* uhmm_close */

/* ---- the context ---------------------------------------------------- */

struct uhmm {
	pthread_mutex_t lock;
	pthread_cond_t idle;		/* a fault's unlocked copy ended */
	int ninflight;			/* such copies going on */
	int uffd;
	int uffd_other;			/* events of mappings we cannot manage, or -1 */
	bool user_mode_only;
	uint64_t feat;			/* UHMM_FEAT_* after UHMM_DISABLE */
	bool dontunmap;			/* MREMAP_DONTUNMAP works, whatever
					   UHMM_DISABLE says (uffd.c mm_move) */
	uint64_t uffd_feat;		/* features enabled on uffd */
	struct uhmm_opts opts;
	struct uhmm_dev *dev[MAX_DEVS + 1];
	int nprivate;			/* PRIVATE devices: ranges fault MISSING */
	struct pagetable pt;
	struct counters stats;
	uint64_t clock;			/* LRU ticks */

	struct evqueue q;
	struct lib_thread reader, worker;
	/* fault_threads > 1: faults go to their own queue (under q.lock) */
	struct qmsg *fq;
	size_t fq_n, fq_cap;
	struct lib_thread *fault_thr;
	uint32_t nfault_thr;
	int stop_fd;			/* eventfd waking the reader */
	bool stopping;
	_Atomic pid_t migrator;		/* thread holding h->lock, for faults */
	/* context.c: a thread that lets h->lock go while others wait for it
	 * does not take it again before one of them has had it */
	_Atomic int lock_waiters;
	_Atomic uint32_t lock_gen;	/* acquisitions so far */
	_Atomic pid_t handoff_from;	/* who let it go to waiters last */
	_Atomic uint32_t handoff_gen;	/* lock_gen when it did */
	_Atomic bool handoff_readers;	/* ... to mirror readers it woke */
	char *zero_page;		/* PAGE_SIZE zeros */
	char *sentinel;			/* registered page: events_barrier */

	struct allocation *allocs;	/* uhmm_alloc'd blocks */
	struct advice_map advice;	/* advice.c */
	struct quar_run *quar;		/* quarantine.c */
	size_t nquar, quar_cap;
	struct fork_plan fork;		/* fork.c: staged in prepare, used by the child */
	bool fork_failed;		/* the snapshot could not be staged */
	struct policy *policy;		/* policy.c: access counters, thrashing */
	struct prefetcher *prefetch;	/* prefetch.c, made at first use */
	struct helper *helper;		/* helper.c, the snapshot's: made at first split */
	_Atomic pid_t helper_tid;	/* its faults are the lock holder's */
	size_t split_min;		/* snapshots this big take two threads */
	size_t dma_split_min;		/* and sim DMA copies this long */

	/* our own address space for staging and moved-out pages */
	char *arena;
	unsigned arena_slots;		/* fewer than ARENA_SLOTS under RLIMIT_AS */
	unsigned arena_busy;		/* slots in use, under q.lock */

	struct {			/* pool.c: populated pages for faults */
		char *base;
		size_t size, next;
		int out;		/* takers not yet done */
	} pool;
	struct {			/* sequential readers, by thread */
		pid_t tid;
		uintptr_t next;		/* where it faults next if sequential */
		size_t window;
	} seq[8];
	unsigned seq_victim;

	/* old system pages moved out of the way, freed by the worker */
	struct { uintptr_t addr; size_t len; } trash[64];
	int ntrash;			/* under q.lock */
	_Atomic bool scrub;		/* freed device pages to make ready */
	_Atomic uint64_t last_call_ns;	/* when an API call last ended */

	/* the range being migrated, to notice foreign layout changes */
	uintptr_t fence_start, fence_end;
	uint64_t own_seq;		/* when our last mapping change was read */

	/* mirror.c: every mirror of the context, released ones included */
	struct uhmm_mirror *mirrors;
	bool inval_open;		/* some mirror's count is odd */
	_Atomic uint64_t starved_ns;	/* a read_retry failed then; 0: passed */
	_Atomic uint32_t retry_checks;	/* read_retry calls so far */
	int initiator;			/* device whose range_fault is running */
	uintptr_t fault_start, fault_end;	/* ... and the range it faults in */
	struct excl *excl;		/* exclusive.c, made at first use */

	/* trace.c, publish.c: the trace ring and the published counters */
	_Atomic int tracing;		/* readers attached: record events */
	_Atomic uint64_t moves;		/* batches of pages moved, ever (trace_move) */
	_Atomic int trace_local;	/* ... of which in this process */
	struct trace_ring *_Atomic trace;
	bool trace_shared;		/* the ring is in the published file */
	struct pub *pub;		/* NULL: nothing published */
};

static inline struct uhmm_dev *dev_by_id(struct uhmm *h, int id)
{
	return id >= 1 && id <= MAX_DEVS ? h->dev[id] : NULL;
}

/* Is loc a PRIVATE device? */
static inline bool loc_private(struct uhmm *h, int loc)
{
	struct uhmm_dev *d = dev_by_id(h, loc);

	return d && d->kind == UHMM_MEM_PRIVATE;
}

/* context.c */
extern __thread bool lib_thread;
extern __thread bool reader_thread;	/* reads the uffd: must never wait on it */
extern __thread bool fill_holder;	/* in fill_begin: must not wait on the reader */
extern __thread bool serving_fault;	/* a program thread serving its fault */
pid_t my_tid(void);			/* gettid(), kept per thread */
void ctx_lock(struct uhmm *h);
void ctx_unlock(struct uhmm *h);
uint64_t mono_ns(void);

/* busy_note.c: which refusal a device fault kept meeting (UHMM_DEBUG=busy) */
int  busy_note(int r, const char *why, uintptr_t addr);	/* returns -EBUSY */
void busy_forget(void);
void busy_saw_tell(uintptr_t start, uintptr_t end, int ev, int initiator);
void busy_report(const char *who, uintptr_t s, uintptr_t e, int rounds);

/* probe.c */
int  probe_open_uffd(struct uhmm *h);
uint64_t probe_disabled(void);

/* uffd.c: thin ioctl wrappers, -errno */
int uffd_register(struct uhmm *h, uintptr_t start, size_t len, bool shmem);
int uffd_register_missing(struct uhmm *h, uintptr_t start, size_t len);
int uffd_watch(struct uhmm *h, uintptr_t start, size_t len);	/* events alone */
int uffd_unregister(struct uhmm *h, uintptr_t start, size_t len);
int uffd_wp(struct uhmm *h, uintptr_t start, size_t len, bool on);
int uffd_wake(struct uhmm *h, uintptr_t start, size_t len);
int uffd_zeropage(struct uhmm *h, uintptr_t addr, bool write);
int uffd_continue(struct uhmm *h, uintptr_t start, size_t len);
/* UFFDIO_MOVE of our pages or the program's; *done: the bytes moved */
int uffd_move(struct uhmm *h, uintptr_t dst, uintptr_t src, size_t len, uint64_t mode,
	      size_t *done);
/* *placed: the bytes from dst that hold data now, whatever it returns */
int uffd_place(struct uhmm *h, uintptr_t dst, const void *src, size_t len, bool move,
	       size_t *placed);
/* MOVE where the kernel can, else COPY; *placed as for uffd_place */
int uffd_hand_over(struct uhmm *h, uintptr_t dst, char *buf, size_t len, bool move,
		   size_t *placed);
int uffd_poison(struct uhmm *h, uintptr_t dst, size_t len);
bool uffd_pending(struct uhmm *h);
/* mapping changes that raise events we caused ourselves */
void *mm_map_fixed(struct uhmm *h, uintptr_t addr, size_t len, int prot,
		   int flags, int fd, uint64_t off);
void *mm_move(struct uhmm *h, void *from, size_t len, uintptr_t to);
/* move the page tables out, leaving the range mapped and empty;
 * to == 0: anywhere */
void *mm_move_keep(struct uhmm *h, uintptr_t from, size_t len, uintptr_t to);
int   mm_zap(struct uhmm *h, uintptr_t addr, size_t len);

/* events.c */
int  events_start(struct uhmm *h);
void fill_lock_init(struct uhmm *h);
void events_stop(struct uhmm *h);
void events_drain(struct uhmm *h);	/* with h->lock held */
bool events_fault_here(struct uhmm *h, uintptr_t addr, uint64_t flags, bool alone);
void events_sync(struct uhmm *h);	/* reader has read all queued */
void events_sync_all(struct uhmm *h);	/* ... and all on their way */
/* a page placed now is newer than every fault read so far, or being read */
uint64_t events_reads(struct uhmm *h);
void fill_begin(struct uhmm *h);
bool fill_clear(struct uhmm *h, uintptr_t start, uintptr_t end);
void fill_end(struct uhmm *h);
void trash_add(struct uhmm *h, void *addr, size_t len);
void trash_flush(struct uhmm *h);

/* fault_signal.c: a context whose faults raise SIGBUS in the faulting
 * thread, which serves them itself */
bool fault_signal_wanted(const struct uhmm *h);	/* asked or UHMM_FAULTS */
int  fault_signal_attach(struct uhmm *h);
void fault_signal_detach(struct uhmm *h);

/* prefetch.c */
void prefetch_stop(struct uhmm *h);

/* helper.c: fn(arg) on a helper thread while the caller does its own
 * half; false (one core, no thread, or busy with another half): do it
 * yourself.  tid, if given, is where the thread says who it is. */
struct helper;
struct helper *helper_new(const char *name, _Atomic pid_t *tid);
bool helper_post(struct helper *x, void (*fn)(void *), void *arg);
void helper_wait(struct helper *x);
void helper_free(struct helper *x);
size_t split_min_env(const char *var, size_t dflt);
/* snapshot.c: h->split_min, from UHMM_SNAPSHOT_SPLIT at uhmm_open */
size_t snapshot_split_min(void);
/* sim_dma.c: h->dma_split_min, from UHMM_DMA_SPLIT at uhmm_open */
size_t sim_dma_split_min(void);

/* publish.c: the counters file of `uhmm stat` (none if it cannot be made) */
void publish_start(struct uhmm *h);
void publish_stop(struct uhmm *h);

/* arena.c */
#define ARENA_SLOTS 6
#define ARENA_MIN_SLOTS 2
int   arena_init(struct uhmm *h);
void  arena_fini(struct uhmm *h);
bool  arena_owns(const struct uhmm *h, uintptr_t start, uintptr_t end);
char *arena_get(struct uhmm *h, uintptr_t at, size_t len);
void  arena_put(struct uhmm *h, void *addr);

/* pool.c, with h->lock held */
char *pool_take(struct uhmm *h, size_t len, uintptr_t at);
void  pool_put(struct uhmm *h, char *p);
void  pool_fini(struct uhmm *h);
bool  pool_owns(const struct uhmm *h, uintptr_t start, uintptr_t end);

/* bounce.c: the calling thread's buffer for a window of BOUNCE_BYTES or less */
char *bounce_buffer(void);

/* scrub.c */
bool scrub_some(struct uhmm *h);		/* with h->lock held */
#define SCRUB_QUIET_NS (20 * 1000 * 1000)	/* idle this long first */
void note_activity(struct uhmm *h);
void expect_add(struct uhmm *h, uint8_t event, uint64_t a, uint64_t b, uint64_t c);
uint64_t expect_clear(struct uhmm *h);

/* vma.c: /proc/self/maps */
enum vma_kind { VMA_ANON, VMA_DEV, VMA_OTHER };
struct vma {
	uintptr_t start, end;
	int prot;
	bool shared, locked_maybe;
	enum vma_kind kind;
	struct uhmm_dev *dev;		/* VMA_DEV */
	uint64_t pgoff;
	dev_t sd;
	ino_t si;
	size_t page_size;		/* hugetlb's; 0 where unknown */
	char name[32];
};
/* vmas overlapping [start, end), clipped, in order; -EFAULT on a hole */
int vma_scan(struct uhmm *h, uintptr_t start, uintptr_t end,
	     struct vma **out, size_t *n);
/* the same, holes left out (they are the gaps) */
int vma_scan_mapped(struct uhmm *h, uintptr_t start, uintptr_t end,
		    struct vma **out, size_t *n);
int vma_check_migratable(struct uhmm *h, const struct vma *v);
int vma_at(struct uhmm *h, uintptr_t addr, struct vma *out);
/* evict.c: in place, ascending, no heap (safe with the context held) */
void sort_addrs(uintptr_t *a, size_t n);
bool vma_locked(struct uhmm *h, uintptr_t start, uintptr_t end);

/* procfd.c: kept open, never to be closed by the caller; or -errno */
enum proc_file { PROC_PAGEMAP, PROC_MAPS, PROC_NFILES };
int procfd(enum proc_file f);
/* A context exists (uhmm_open) / is gone (its last free): when the last
 * one goes, the descriptors kept open are closed, so that a process that
 * closed every context holds nothing of ours. */
void procfd_hold(void);
void procfd_drop(void);
/* A small file of /proc read whole into buf, NUL-terminated, without
 * stdio (this may run inside a malloc of the program's): its length, or
 * -errno (-EIO when empty). */
ssize_t proc_read_text(const char *path, char *buf, size_t len);

/* pagemap.c */
/* /proc/self/pagemap entry bits */
#define PM_PRESENT	(1ull << 63)
#define PM_SWAPPED	(1ull << 62)
#define PM_FILE		(1ull << 61)
#define PM_UFFD_WP	(1ull << 57)
#define PM_EXCLUSIVE	(1ull << 56)
#define PM_PFN		((1ull << 55) - 1)
bool pagemap_poisoned(uintptr_t page);
/* bitmap of present (or swapped) pages of [start, start + n pages) */
int pagemap_present(struct uhmm *h, uintptr_t start, size_t npages, uint8_t *present,
		    bool swapped);

/* migrate.c; flags: UHMM_MIGRATE_*, or MIGRATE_HOME (eviction, removal:
 * PROT_NONE device pages come home too) */
#define MIGRATE_HOME 0x80000000u
int migrate_range(struct uhmm *h, uintptr_t start, uintptr_t end,
		  struct uhmm_dev *to, unsigned flags, struct uhmm_migrate_res *res);
int manage_range(struct uhmm *h, uintptr_t start, uintptr_t end);
int replace_with_zero(struct uhmm *h, uintptr_t start, uintptr_t end);
bool dev_map_matches(struct uhmm *h, uintptr_t start, uintptr_t end, int loc);
bool vma_dev_page(struct uhmm *h, const struct vma *v, uintptr_t a);
void forget_range(struct uhmm *h, uintptr_t start, uintptr_t end);
int evict_chunk(struct uhmm *h, struct uhmm_dev *d, long chunk);
int dev_pages_to_sys(struct uhmm *h, struct uhmm_dev *d);
size_t dev_let_go(struct uhmm *h, struct uhmm_dev *d);

/* private.c */
bool range_has_private(struct uhmm *h, uintptr_t start, uintptr_t end);
void dev_thread_init(struct uhmm_dev *d);	/* before a library thread's first op */
size_t private_poison_all(struct uhmm *h, struct uhmm_dev *d);
/* the driver's copy of n device pages into dst (system memory of ours) */
int dev_read_pages(struct uhmm_dev *d, const uint32_t *dp, size_t n, char *dst);
/* -ENOENT: not a private page; -EWOULDBLOCK: needs a thread that may
 * change mappings (fast: the reader's own) */
enum { FAULT_FAST, FAULT_SLOW, FAULT_PARALLEL, FAULT_SIGNAL };
int private_fault(struct uhmm *h, uintptr_t page, const struct qmsg *m, int mode);

/* mirror.c, with h->lock held.  mirror_invalidate runs the callbacks of
 * every live mirror that may hold translations of [start, end), before the
 * change takes effect; on the reader thread nothing may call it (see
 * mirror_wants). */
void mirror_invalidate(struct uhmm *h, uintptr_t start, uintptr_t end,
		       enum uhmm_event ev, int initiator);
bool mirror_wants(struct uhmm *h, uintptr_t start, uintptr_t end);
void mirror_begin_change(struct uhmm *h, uintptr_t start, uintptr_t end);
/* may let the context go for a moment: call before anything is looked at */
void mirror_yield_to_drivers(struct uhmm *h, uintptr_t start, uintptr_t end);
void mirrors_release_dev(struct uhmm *h, struct uhmm_dev *d);
bool mirrors_settle(struct uhmm *h);	/* before h->lock is let go */
void mirrors_fini(struct uhmm *h);
/* a mirror of the library's own (sim_dma.c), opened with h->lock held */
int  mirror_open_locked(struct uhmm_dev *dev, const struct uhmm_mirror_ops *ops,
			void *priv, struct uhmm_mirror **out);

/* advice.c, with h->lock held */
const struct advice *advice_at(struct uhmm *h, uintptr_t addr);
bool advice_any(struct uhmm *h, uintptr_t start, uintptr_t end);
int  advice_update(struct uhmm *h, uintptr_t start, uintptr_t end,
		   void (*fn)(struct advice *a, const void *arg), const void *arg);
void advice_forget(struct uhmm *h, uintptr_t start, uintptr_t end);	/* munmap */
void advice_move(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len); /* mremap */
void advice_fini(struct uhmm *h);
void note_prefetch(struct uhmm *h, uintptr_t start, uintptr_t end, struct uhmm_dev *to);
bool advice_pinned(struct uhmm *h, uintptr_t start, uintptr_t end);	/* any page? */
/* does a CPU first touch in [start, end) populate a COHERENT device? */
bool advice_first_touch_dev(struct uhmm *h, uintptr_t start, uintptr_t end);

/* first_touch.c, with h->lock held.  Where a first touch of page by dev
 * (NULL: the CPU) populates it: a device, or NULL for system memory. */
struct uhmm_dev *first_touch_target(struct uhmm *h, uintptr_t page, struct uhmm_dev *dev);
/* place the never-populated run around page there; true if it did (the
 * waiting threads are woken) */
bool first_touch(struct uhmm *h, uintptr_t page, struct uhmm_dev *dev);

/* dup.c: READ_MOSTLY duplicates, with h->lock held */
uint64_t dup_mask(struct uhmm *h, uintptr_t a);		/* bit (id - 1) */
bool dup_find(struct uhmm *h, uintptr_t a, const struct uhmm_dev *d, uint32_t *dp);
bool dup_any(struct uhmm *h, uintptr_t start, uintptr_t end);
int  dup_make(struct uhmm *h, struct uhmm_dev *d, uintptr_t a, size_t n); /* one block */
void dup_collapse(struct uhmm *h, uintptr_t start, uintptr_t end);	/* a write */
void dup_forget(struct uhmm *h, uintptr_t start, uintptr_t end);	/* pages gone */
void dup_drop_dev_page(struct uhmm *h, struct uhmm_dev *d, uint32_t p);
int  dup_fault(struct uhmm *h, struct uhmm_dev *d, uintptr_t start, uintptr_t end, bool write);

/* policy.c, with h->lock held */
void policy_access(struct uhmm *h, struct uhmm_dev *d, uintptr_t start, uintptr_t end,
		   uint32_t count);
void policy_moved(struct uhmm *h, uintptr_t start, uintptr_t end);	/* a bounce? */
bool policy_pinned(struct uhmm *h, uintptr_t addr);	/* thrashing: stays put */
void policy_forget(struct uhmm *h, uintptr_t start, uintptr_t end);	/* unmapped */
void policy_fini(struct uhmm *h);

/* sim_dma.c: the sim device's modelled link carries len bytes (waits) */
void sim_link_use(struct uhmm_dev *d, size_t len);
/* sim_dma.c: the sim DMA engine of a device going away (unlocked) */
void sim_dma_free(struct uhmm_dev *d);

static inline int neg_errno(int e) { return e > 0 ? -e : e; }

#endif
