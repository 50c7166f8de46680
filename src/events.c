// SPDX-License-Identifier: MIT
/*
 * The userfaultfd reader and the worker.
 *
 * The kernel reports munmap, madvise and mremap of registered memory as
 * events that block the thread causing them until the event is *read*
 * (ARCHITECTURE hazard 3).  So the reader only reads: it never takes the
 * context lock, which a thread of ours may hold while it waits for the
 * reader to read the event its own mremap raised.  What needs the page
 * table goes to a queue, applied by the worker or, first thing, by the next
 * API call: a change whose syscall returned before a uhmm call started is
 * always seen by that call.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "compat.h"
#include "exclusive.h"
#include "internal.h"
#include "trace.h"

void expect_add(struct uhmm *h, uint8_t event, uint64_t a, uint64_t b, uint64_t c)
{
	struct evqueue *q = &h->q;

	pthread_mutex_lock(&q->lock);
	if (q->nexp < (int)(sizeof(q->exp) / sizeof(q->exp[0])))
		q->exp[q->nexp++] = (struct expect){ event, a, b, c, 0, 0 };
	pthread_mutex_unlock(&q->lock);
}

/*
 * Our syscall returned, so the kernel saw its events read; the reader may
 * still be between read() and matching them, and must match them against
 * the expectations it was read under.
 */
uint64_t expect_clear(struct uhmm *h)
{
	uint64_t first = 0;

	pthread_mutex_lock(&h->q.lock);
	while (h->q.reading)
		pthread_cond_wait(&h->q.read_done, &h->q.lock);
	for (int i = 0; i < h->q.nexp; i++)
		if (h->q.exp[i].hits && (!first || h->q.exp[i].seq < first))
			first = h->q.exp[i].seq;
	h->q.nexp = 0;
	pthread_mutex_unlock(&h->q.lock);
	return first;
}

/*
 * Wait until the reader has read everything the kernel has queued so far:
 * a layout change another thread made before now is then known.  (One whose
 * syscall has not queued its event yet stays unseen: user space cannot
 * close that window.)
 */
void events_sync(struct uhmm *h)
{
	struct pollfd p = { h->uffd, POLLIN, 0 };

	pthread_mutex_lock(&h->q.lock);
	for (int tries = 0; tries < 10000; tries++) {
		struct timespec ts;
		int n;

		if (!h->q.reading) {
			pthread_mutex_unlock(&h->q.lock);
			n = poll(&p, 1, 0);
			pthread_mutex_lock(&h->q.lock);
			if (n <= 0 && !h->q.reading)
				break;
		}
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 100 * 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&h->q.read_done, &h->q.lock, &ts);
	}
	pthread_mutex_unlock(&h->q.lock);
}

/*
 * Placing pages for a fault races with a MADV_DONTNEED of the program's:
 * the kernel zaps the range only after our reader has read the REMOVE
 * event, and madvise returns before we have applied it.  A device page
 * mapped again (UFFDIO_CONTINUE) or a private page brought home between
 * that zap and our applying the event would show the old data to a thread
 * reading after madvise returned.  So whoever places pages for a fault
 * holds `fill` shared from its look at the events not yet applied
 * (fill_clear) until its ioctl is done, and the reader holds it exclusive
 * while it reads: an event read before the look is seen there, and one
 * read after the ioctl zaps what the ioctl placed.  A holder must not wait
 * for the reader (fill_holder): the kernel's EAGAIN, which says an event
 * is still unread, is handed back instead of waited out.
 */
void fill_lock_init(struct uhmm *h)
{
	pthread_rwlockattr_t a;

	/* the reader must not starve behind a stream of faults */
	pthread_rwlockattr_init(&a);
	pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&h->q.fill, &a);
	pthread_rwlockattr_destroy(&a);
}

void fill_begin(struct uhmm *h)
{
	pthread_rwlock_rdlock(&h->q.fill);
	fill_holder = true;
}

void fill_end(struct uhmm *h)
{
	fill_holder = false;
	pthread_rwlock_unlock(&h->q.fill);
}

static bool msg_changes(const struct qmsg *m, uintptr_t start, uintptr_t end)
{
	switch (m->event) {
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		return m->a < end && m->b > start;
	case UFFD_EVENT_REMAP:
		return (m->a < end && m->a + m->c > start) ||
		       (m->b < end && m->b + m->c > start);
	}
	return false;
}

/*
 * With fill and h->lock held: has the program changed any of [start, end)
 * by an event we have read but not applied yet?
 */
bool fill_clear(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	bool clear = true;

	for (const struct drain_batch *b = h->q.batch; b && clear; b = b->outer)
		for (size_t i = b->next; i < b->n && clear; i++)
			clear = !msg_changes(&b->msg[i], start, end);
	pthread_mutex_lock(&h->q.lock);
	for (size_t i = 0; i < h->q.n && clear; i++)
		clear = !msg_changes(&h->q.msg[i], start, end);
	pthread_mutex_unlock(&h->q.lock);
	return clear;
}

/*
 * Is this event one our own call raised?  A remap matches exactly; unmap
 * and remove events come one per mapping the kernel walked (madvise) and
 * may cover any part of what we announced.
 */
static bool expected(struct evqueue *q, const struct qmsg *m)
{
	for (int i = 0; i < q->nexp; i++) {
		struct expect *e = &q->exp[i];
		bool match;

		if (e->event != m->event)
			continue;
		if (m->event == UFFD_EVENT_REMAP)
			match = !e->hits && e->a == m->a && e->c == m->c &&
				(e->b == m->b || e->b == EXPECT_ANY);
		else
			match = m->a >= e->a && m->b <= e->b && m->a < m->b;
		if (match) {
			if (!e->hits++)
				e->seq = q->seq;
			return true;
		}
	}
	return false;
}

/* Append m to a growing array of messages (with q.lock held). */
static int msg_push(struct qmsg **msg, size_t *n, size_t *cap, const struct qmsg *m)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 64;
		struct qmsg *nm = mem_realloc(*msg, c * sizeof(*nm));

		if (!nm)
			return -ENOMEM;
		*msg = nm;
		*cap = c;
	}
	(*msg)[(*n)++] = *m;
	return 0;
}

static int enqueue(struct evqueue *q, const struct qmsg *m)
{
	return msg_push(&q->msg, &q->n, &q->cap, m);
}

static void to_qmsg(const struct uffd_msg *u, struct qmsg *m)
{
	memset(m, 0, sizeof(*m));
	m->event = u->event;
	switch (u->event) {
	case UFFD_EVENT_PAGEFAULT:
		m->flags = u->arg.pagefault.flags;
		m->addr = u->arg.pagefault.address;
		m->tid = u->arg.pagefault.feat.ptid;
		break;
	case UFFD_EVENT_REMAP:
		m->a = u->arg.remap.from;
		m->b = u->arg.remap.to;
		m->c = u->arg.remap.len;
		break;
	case UFFD_EVENT_REMOVE:
	case UFFD_EVENT_UNMAP:
		m->a = u->arg.remove.start;
		m->b = u->arg.remove.end;
		break;
	}
}

static bool overlaps_fence(struct uhmm *h, const struct qmsg *m)
{
	uint64_t s = m->a, e = m->b;

	if (m->event == UFFD_EVENT_REMAP)
		e = m->a + m->c;
	return s < h->fence_end && e > h->fence_start;
}

/* With q->lock held.  Faults of the lock holder are served here: it cannot
 * wait for the worker, which waits for the lock.  They get zeros, so
 * nothing the library does while it holds the context may touch the
 * program's memory: a page a batch moved out would come back empty (a
 * getenv() there, whose environ a setenv() had put in the heap, did).
 * Other faults go to *fault, for the reader to try itself once it has let
 * go of q->lock. */
static void reader_take(struct uhmm *h, const struct uffd_msg *u,
			struct qmsg *fault, size_t *nfault)
{
	struct qmsg m;

	to_qmsg(u, &m);
	m.read_at = h->q.reads;
	h->q.seq++;
	if (m.event == UFFD_EVENT_PAGEFAULT) {
		/* a write into a fence: the fence's owner wakes it; any other
		 * write-protect fault (a READ_MOSTLY page's first write) goes
		 * to the worker */
		if ((m.flags & UFFD_PAGEFAULT_FLAG_WP) && m.addr >= h->fence_start &&
		    m.addr < h->fence_end)
			return;
		if (m.tid && ((pid_t)m.tid == atomic_load(&h->migrator) ||
			      (pid_t)m.tid == atomic_load(&h->helper_tid))) {
			if (m.flags & UFFD_PAGEFAULT_FLAG_MINOR)
				uffd_continue(h, page_down(m.addr), PAGE_SIZE);
			else
				uffd_zeropage(h, m.addr, m.flags & UFFD_PAGEFAULT_FLAG_WRITE);
			return;
		}
		fault[(*nfault)++] = m;
		return;
	} else if (expected(&h->q, &m)) {
		return;
	} else if (overlaps_fence(h, &m)) {
		if (!h->q.foreign++)
			h->q.foreign_seq = h->q.seq;
	}
	if (enqueue(&h->q, &m) && m.event == UFFD_EVENT_PAGEFAULT)
		uffd_wake(h, page_down(m.addr), PAGE_SIZE);	/* it will fault again */
}

static bool served_minor(struct uhmm *h, uintptr_t page);

#define READER_SPIN_NS (50 * 1000)

/* With q.lock held. */
static int fq_push(struct uhmm *h, const struct qmsg *m)
{
	return msg_push(&h->fq, &h->fq_n, &h->fq_cap, m);
}

/*
 * A fault the reader can serve itself, saving the hand-off to another
 * thread: only with nothing else queued (the page table is then current)
 * and the context lock free, and only what needs no mapping change (our
 * own munmap or mremap would wait for this very thread to read its event).
 */
static bool serve_fast(struct uhmm *h, const struct qmsg *m)
{
	uintptr_t page = page_down(m->addr);
	bool served = false, quiet;

	/* a write-protect fault may need mirrors' callbacks: the worker's */
	if (h->opts.fault_threads > 1 || (m->flags & UFFD_PAGEFAULT_FLAG_WP) ||
	    pthread_mutex_trylock(&h->lock))
		return false;
	pthread_mutex_lock(&h->q.lock);
	quiet = !h->q.n;
	pthread_mutex_unlock(&h->q.lock);
	/* a page a device holds alone: its callback must run, not here */
	if (excl_owner(h, page))
		quiet = false;
	if (quiet) {
		int r, loc = pt_loc(&h->pt, page, NULL);

		/* counted before the page is placed: the thread it wakes may
		 * look at the counters at once */
		COUNT(h, dev_by_id(h, loc), cpu_faults, 1);
		r = private_fault(h, page, m, FAULT_FAST);
		served = r == 0;
		/* a first touch placed on a device changes mappings: the
		 * worker's */
		if (r == -ENOENT && !(m->flags & UFFD_PAGEFAULT_FLAG_MINOR) &&
		    pt_loc(&h->pt, page, NULL) == LOC_SYS && !first_touch_target(h, page, NULL))
			served = !uffd_zeropage(h, page, m->flags & UFFD_PAGEFAULT_FLAG_WRITE);
		else if (r == -ENOENT)
			served = served_minor(h, page);
		if (!served)	/* the thread that serves it counts it */
			COUNT(h, dev_by_id(h, loc), cpu_faults, (uint64_t)-1);
		else
			trace_cpu_fault(h, page, loc, m->tid);
	}
	pthread_mutex_unlock(&h->lock);
	return served;
}

static void *reader_main(void *arg)
{
	struct uhmm *h = arg;
	/* the second descriptor: events of mappings we cannot manage */
	struct pollfd p[3] = { { h->uffd, POLLIN, 0 }, { h->stop_fd, POLLIN, 0 },
			       { h->uffd_other, POLLIN, 0 } };
	nfds_t np = h->uffd_other >= 0 ? 3 : 2;
	struct uffd_msg msg[32];
	struct qmsg fault[32];

	uint64_t spin_until = 0;

	lib_thread = true;
	reader_thread = true;
	for (;;) {
		size_t nfault = 0, left = 0, queued;
		ssize_t n;

		/*
		 * Right after serving faults, look again for a while before
		 * sleeping: a program touching page after page then finds us
		 * awake, which saves a wake-up (several microseconds in a VM)
		 * per fault.
		 */
		n = poll(p, np, spin_until ? 0 : -1);
		if (n == 0 && mono_ns() < spin_until)
			continue;
		if (n <= 0) {
			spin_until = 0;
			continue;
		}
		if (p[1].revents)
			break;
		pthread_rwlock_wrlock(&h->q.fill);
		pthread_mutex_lock(&h->q.lock);
		h->q.reading = true;
		h->q.reads++;
		pthread_mutex_unlock(&h->q.lock);
		n = read(h->uffd, msg, sizeof(msg));
		if (n < 0)
			n = 0;
		if (np == 3 && p[2].revents) {
			ssize_t k = read(h->uffd_other, (char *)msg + n, sizeof(msg) - n);

			n += k > 0 ? k : 0;
		}
		pthread_mutex_lock(&h->q.lock);
		queued = h->q.n;
		for (ssize_t i = 0; n > 0 && i < n / (ssize_t)sizeof(msg[0]); i++)
			reader_take(h, &msg[i], fault, &nfault);
		h->q.reading = false;
		pthread_cond_broadcast(&h->q.read_done);
		/* the worker only when there is work: a fault served here
		 * should not cost a wake-up of another thread */
		if (h->q.n != queued)
			pthread_cond_broadcast(&h->q.cond);
		pthread_mutex_unlock(&h->q.lock);
		pthread_rwlock_unlock(&h->q.fill);
		for (size_t i = 0; i < nfault; i++)
			if (!serve_fast(h, &fault[i]))
				fault[left++] = fault[i];
		if (nfault > left)
			spin_until = mono_ns() + READER_SPIN_NS;
		if (!left)
			continue;
		pthread_mutex_lock(&h->q.lock);
		for (size_t i = 0; i < left; i++)
			if (h->nfault_thr ? fq_push(h, &fault[i]) : enqueue(&h->q, &fault[i]))
				uffd_wake(h, page_down(fault[i].addr), PAGE_SIZE);
		pthread_cond_broadcast(&h->q.cond);
		pthread_mutex_unlock(&h->q.lock);
	}
	return NULL;
}

/* ---- applying events and faults, with h->lock held ------------------- */

static void apply_remap(struct uhmm *h, uintptr_t from, uintptr_t to, size_t len)
{
	/* copies of what was there are no copies of what is there now */
	dup_forget(h, from, from + len);
	dup_forget(h, to, to + len);
	for (uintptr_t off = 0; off < len; off += PAGE_SIZE) {
		uint32_t dp = 0;
		int loc = pt_loc(&h->pt, from + off, &dp);

		if (loc == LOC_UNMANAGED)
			continue;
		pt_unmanage(&h->pt, from + off);
		if (pt_set(&h->pt, to + off, loc, dp))
			continue;
		if (loc != LOC_SYS && dev_by_id(h, loc))
			dev_by_id(h, loc)->owner[dp] = to + off;
	}
	quar_move(h, from, to, len);
	/* a fence we abandoned when the pages moved away went with them */
	uffd_wp(h, to, len, false);
	uffd_wake(h, to, len);
}

/*
 * COHERENT pages [s, e) of d, discarded: system pages from now on, whose
 * next access replaces them with zeros (the mapping is not touched here:
 * quarantine.c says why).  Past the quarantine's limit, the rest is
 * replaced at once if the mapping is still the device's.
 */
static void discard_coherent(struct uhmm *h, struct uhmm_dev *d, uintptr_t s, uintptr_t e)
{
	for (uintptr_t a = s; a < e; a += PAGE_SIZE) {
		uint32_t dp = 0;

		pt_loc(&h->pt, a, &dp);
		if (!d || quar_add(h, d, a, dp)) {
			/* gone or replaced since: its UNMAP, still to come,
			 * forgets it */
			if (d && dev_map_matches(h, a, e, d->id))
				replace_with_zero(h, a, e);
			return;
		}
		pt_set(&h->pt, a, LOC_SYS, 0);
	}
}

/* MADV_DONTNEED and friends on device pages: they must read back zeros,
 * and the device memory is freed.  System pages the kernel zeroes itself. */
static void apply_remove(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	uintptr_t a = start;

	/* the system pages read zeros now: their copies must not */
	dup_collapse(h, start, end);
	while (a < end) {
		uintptr_t s = a;
		int loc = pt_loc(&h->pt, a, NULL);

		if (loc == LOC_UNMANAGED || loc == LOC_SYS) {
			a += PAGE_SIZE;
			continue;
		}
		while (a < end && pt_loc(&h->pt, a, NULL) == loc)
			a += PAGE_SIZE;
		if (dev_by_id(h, loc) && dev_by_id(h, loc)->kind == UHMM_MEM_PRIVATE) {
			/* no PTE to zap: the next touch faults, and gets zeros */
			forget_range(h, s, a);
			for (uintptr_t p = s; p < a; p += PAGE_SIZE)
				pt_set(&h->pt, p, LOC_SYS, 0);
			continue;
		}
		discard_coherent(h, dev_by_id(h, loc), s, a);
	}
}

/* A page of device loc that a minor fault's window may map: not one a
 * device holds alone (the CPU's access to it must fault, to take it back). */
static bool minor_window_page(struct uhmm *h, uintptr_t a, int loc)
{
	return pt_loc(&h->pt, a, NULL) == loc && (excl_none(h) || !excl_owner(h, a));
}

/* Clip [*ws, *we) to the mapping holding page; false if that changes
 * nothing or the mapping cannot be found. */
static bool clip_to_mapping(struct uhmm *h, uintptr_t page, uintptr_t *ws, uintptr_t *we)
{
	struct vma v;

	if (vma_at(h, page, &v) || (v.start <= *ws && v.end >= *we))
		return false;
	*ws = v.start > *ws ? v.start : *ws;
	*we = v.end < *we ? v.end : *we;
	return true;
}

/*
 * A device page whose PTE went (a fork, exclusive access given back, a
 * fence): map it again from the device's file, with the rest of its 2 MiB
 * block that lives on the device.  No data moves, so the window is not
 * fault_around's but the block's (after a fork, 32 times fewer faults).
 */
static bool served_minor(struct uhmm *h, uintptr_t page)
{
	uintptr_t ws, we, a;
	int loc = pt_loc(&h->pt, page, NULL);
	bool clipped = false;

	if (loc == LOC_UNMANAGED || loc == LOC_SYS)
		return false;
	ws = page & ~(BLOCK_SIZE - 1);
	we = ws + BLOCK_SIZE;
	for (a = page; a > ws; a -= PAGE_SIZE)
		if (!minor_window_page(h, a - PAGE_SIZE, loc))
			break;
	ws = a;
	for (a = page + PAGE_SIZE; a < we; a += PAGE_SIZE)
		if (!minor_window_page(h, a, loc))
			break;
	we = a;
	for (;;) {
		int r;

		fill_begin(h);
		/* one look at the queue in the usual case: the window is clear */
		if (!fill_clear(h, ws, we)) {
			ws = page;
			we = page + PAGE_SIZE;
		}
		if (we - ws == PAGE_SIZE && !fill_clear(h, page, page + PAGE_SIZE)) {
			/* the program dropped it: served after that is applied */
			fill_end(h);
			uffd_wake(h, page, PAGE_SIZE);
			return true;
		}
		r = uffd_continue(h, ws, we - ws);
		fill_end(h);
		if (r == -EAGAIN && !reader_thread) {
			sched_yield();	/* an event is unread: let the reader have it */
			continue;
		}
		/* the window spans mappings (the kernel continues within
		 * one only): the faulting page's part, else the page alone */
		if (r == -ENOENT && !clipped && we - ws > PAGE_SIZE) {
			clipped = true;
			if (clip_to_mapping(h, page, &ws, &we))
				continue;
		}
		if (r && we - ws > PAGE_SIZE) {
			ws = page;
			we = page + PAGE_SIZE;
			continue;
		}
		if (r)
			uffd_wake(h, page, PAGE_SIZE);	/* it faults again, we retry */
		return true;
	}
}

static bool stranger(struct uhmm *h, uintptr_t a)
{
	int loc = pt_loc(&h->pt, a, NULL);

	return loc == LOC_UNMANAGED || loc == LOC_SYS;
}

/*
 * A fault on a device-backed mapping at a page we did not put there: a
 * mapping grown by mremap shows the device file's next offsets, which hold
 * other ranges' data (hazard 2).  The whole run of such pages in that
 * mapping becomes zeroed system memory instead, in one call.
 */
static void fix_foreign(struct uhmm *h, const struct vma *v, uintptr_t page)
{
	uintptr_t s = page, e = page + PAGE_SIZE;

	while (s > v->start && stranger(h, s - PAGE_SIZE))
		s -= PAGE_SIZE;
	while (e < v->end && stranger(h, e))
		e += PAGE_SIZE;
	replace_with_zero(h, s, e);
}

static void apply_fault(struct uhmm *h, const struct qmsg *m, int mode)
{
	uintptr_t page = page_down(m->addr);
	int loc = pt_loc(&h->pt, page, NULL);
	struct vma v;

	if (m->flags & UFFD_PAGEFAULT_FLAG_WP) {
		/* no fence is up (we hold the context): the CPU's first write
		 * to pages with read-only duplicates ends them, in the fault
		 * window around it; a marker left over just goes */
		uintptr_t ws = page & ~(h->opts.fault_around - 1);

		dup_collapse(h, ws, ws + h->opts.fault_around);
		uffd_wp(h, page, PAGE_SIZE, false);
		uffd_wake(h, page, PAGE_SIZE);
		return;
	}
	COUNT(h, dev_by_id(h, loc), cpu_faults, 1);
	trace_cpu_fault(h, page, loc, m->tid);
	/* a page a device holds alone: it gives it back, which wakes us */
	if (excl_cpu_fault(h, page, m->read_at))
		return;
	/* a page on a private device comes home */
	if (private_fault(h, page, m, mode) != -ENOENT)
		return;
	/* a device page: map it from the device's file (a fault left over
	 * from before a migration just finds it mapped) */
	if (served_minor(h, page))
		return;
	/* an empty system page whose advice places it on a device */
	if (!(m->flags & UFFD_PAGEFAULT_FLAG_MINOR) && loc == LOC_SYS &&
	    first_touch(h, page, NULL))
		return;
	/* an empty system page (no WP markers on this kernel): zeros, with no
	 * look at /proc/self/maps; a shmem mapping refuses and goes below */
	if (!(m->flags & UFFD_PAGEFAULT_FLAG_MINOR) && loc == LOC_SYS &&
	    !uffd_zeropage(h, page, m->flags & UFFD_PAGEFAULT_FLAG_WRITE))
		return;
	/* whatever happens below, the thread must not sleep forever */
	if (vma_at(h, page, &v)) {
		uffd_wake(h, page, PAGE_SIZE);
		return;
	}
	if (v.kind == VMA_DEV)
		fix_foreign(h, &v, page);
	/* a page of a shared mapping we let go of (its device went, and
	 * unregistering it failed): the file's page, as the kernel would */
	if (v.kind != VMA_DEV && loc == LOC_UNMANAGED && (m->flags & UFFD_PAGEFAULT_FLAG_MINOR))
		uffd_continue(h, page, PAGE_SIZE);
	/* a page we never saw in a mapping of ours: the mapping grew
	 * (mremap), and the new part is fresh memory, managed from now on */
	if (v.kind == VMA_ANON && loc == LOC_UNMANAGED &&
	    !(m->flags & UFFD_PAGEFAULT_FLAG_MINOR) &&
	    !pt_set(&h->pt, page, LOC_SYS, 0) &&
	    !uffd_zeropage(h, page, m->flags & UFFD_PAGEFAULT_FLAG_WRITE))
		return;
	uffd_wake(h, page, PAGE_SIZE);
}

static void apply(struct uhmm *h, const struct qmsg *m)
{
	switch (m->event) {
	case UFFD_EVENT_PAGEFAULT:
		apply_fault(h, m, FAULT_SLOW);
		break;
	case UFFD_EVENT_UNMAP:
		mirror_invalidate(h, m->a, m->b, UHMM_EV_UNMAP, 0);
		forget_range(h, m->a, m->b);
		advice_forget(h, m->a, m->b);
		policy_forget(h, m->a, m->b);
		break;
	case UFFD_EVENT_REMOVE:
		excl_removed(h, m->a, m->b);
		mirror_invalidate(h, m->a, m->b, UHMM_EV_REMOVE, 0);
		apply_remove(h, m->a, m->b);
		break;
	case UFFD_EVENT_REMAP:
		/* what a device held alone is put back where it went */
		excl_remapped(h, m->a, m->b, m->c);
		/* the old addresses are gone; the new ones held something else */
		mirror_invalidate(h, m->a, m->a + m->c, UHMM_EV_REMAP, 0);
		mirror_invalidate(h, m->b, m->b + m->c, UHMM_EV_REMAP, 0);
		apply_remap(h, m->a, m->b, m->c);
		advice_move(h, m->a, m->b, m->c);
		/* counts and bounces were of what lived at either address */
		policy_forget(h, m->a, m->a + m->c);
		policy_forget(h, m->b, m->b + m->c);
		break;
	}
}

/*
 * A munmap, mremap or madvise of a registered range is announced to the
 * kernel's userfaultfd before it happens, but queued for us only after: a
 * program may munmap a range, map a new one at the same address and hand it
 * to us before the old range's UNMAP reaches the queue - which would then
 * wipe out the new range's state.  While such an event is on its way the
 * kernel refuses page-filling ioctls with EAGAIN: one on a sentinel page of
 * ours tells us to wait until it has been read.
 */
static void events_barrier(struct uhmm *h)
{
	struct uffdio_zeropage z = { .range = { (uintptr_t)h->sentinel, PAGE_SIZE } };

	if (!h->sentinel || reader_thread)
		return;
	while (ioctl(h->uffd, UFFDIO_ZEROPAGE, &z) && errno == EAGAIN) {
		events_sync(h);
		sched_yield();
	}
}

/*
 * What the reader queued, applied.  Without the barrier: an event still on
 * its way is not waited for (a fault's placement meets it as EAGAIN and
 * waits then).
 */
static void drain_queued(struct uhmm *h, bool barrier)
{
	struct evqueue *q = &h->q;
	struct drain_batch batch;
	struct qmsg *msg;
	size_t n;

	/* fault threads copying with the context unlocked finish first:
	 * nothing we do may free a device page one of them reads */
	while (h->ninflight) {
		pthread_cond_wait(&h->idle, &h->lock);
		/* ours again: whoever held it meanwhile cleared it */
		atomic_store(&h->migrator, my_tid());
	}
	if (barrier)
		events_barrier(h);

	pthread_mutex_lock(&q->lock);
	while (q->reading)
		pthread_cond_wait(&q->read_done, &q->lock);
	msg = q->msg;
	n = q->n;
	q->msg = NULL;
	q->n = q->cap = 0;
	pthread_mutex_unlock(&q->lock);
	batch = (struct drain_batch){ msg, n, 0, q->batch };
	q->batch = &batch;
	while (batch.next < n)
		apply(h, &msg[batch.next++]);
	q->batch = batch.outer;
	mem_free(msg);
}

/*
 * A fault read up to now may be a thread's second message for one access:
 * a signal took it out of its wait, and it faulted again while we held the
 * first.  Once the first is served, the second is stale, and must not
 * undo what the program did since (private.c: fault_is_stale).  Counted
 * in reads begun, not messages taken, so that one read while a page
 * arrives counts as before it.
 */
uint64_t events_reads(struct uhmm *h)
{
	uint64_t n;

	pthread_mutex_lock(&h->q.lock);
	n = h->q.reads;
	pthread_mutex_unlock(&h->q.lock);
	return n;
}

void events_drain(struct uhmm *h)
{
	drain_queued(h, true);
}

/* Every event the kernel has begun is read: not only those already queued
 * for us (events_sync), but those still on their way (the barrier). */
void events_sync_all(struct uhmm *h)
{
	events_barrier(h);
	events_sync(h);
}

/*
 * Freeing a GiB of system pages takes tens of milliseconds: the pages a
 * migration moved out of the program's way are freed here, off the
 * caller's path.  They are ours alone (unregistered, unreachable).
 */
void trash_add(struct uhmm *h, void *addr, size_t len)
{
	bool queued = false;

	pthread_mutex_lock(&h->q.lock);
	if (h->ntrash < (int)(sizeof(h->trash) / sizeof(h->trash[0]))) {
		h->trash[h->ntrash].addr = (uintptr_t)addr;
		h->trash[h->ntrash++].len = len;
		queued = true;
		pthread_cond_broadcast(&h->q.cond);
	}
	pthread_mutex_unlock(&h->q.lock);
	if (!queued)
		arena_put(h, addr);
}

/* With q.lock held; drops it around each (slow) free. */
static void trash_empty(struct uhmm *h)
{
	while (h->ntrash) {
		uintptr_t a = h->trash[--h->ntrash].addr;

		pthread_mutex_unlock(&h->q.lock);
		arena_put(h, (void *)a);
		pthread_mutex_lock(&h->q.lock);
	}
}

void trash_flush(struct uhmm *h)
{
	pthread_mutex_lock(&h->q.lock);
	trash_empty(h);
	pthread_mutex_unlock(&h->q.lock);
}

void note_activity(struct uhmm *h)
{
	atomic_store(&h->last_call_ns, mono_ns());
}

/* True when it waited instead (the program is busy with us).  The wait
 * ends as soon as work comes: a fault the reader queued for the worker
 * must not sit out the quiet period (it cost each such fault up to
 * SCRUB_QUIET_NS). */
static bool scrub_wait(struct uhmm *h)
{
	uint64_t quiet = atomic_load(&h->last_call_ns) + SCRUB_QUIET_NS, t = mono_ns();
	struct timespec ts;

	if (t >= quiet)
		return false;
	clock_gettime(CLOCK_REALTIME, &ts);
	t = (uint64_t)ts.tv_nsec + (quiet - t) + 1000;
	ts.tv_sec += (time_t)(t / 1000000000);
	ts.tv_nsec = (long)(t % 1000000000);
	pthread_mutex_lock(&h->q.lock);
	if (!h->q.n && !h->ntrash && !h->stopping)
		pthread_cond_timedwait(&h->q.cond, &h->q.lock, &ts);
	pthread_mutex_unlock(&h->q.lock);
	return true;
}

static void *worker_main(void *arg)
{
	struct uhmm *h = arg;
	struct evqueue *q = &h->q;

	lib_thread = true;
	for (;;) {
		pthread_mutex_lock(&q->lock);
		bool msgs;

		while (!q->n && !h->ntrash && !h->stopping && !atomic_load(&h->scrub))
			pthread_cond_wait(&q->cond, &q->lock);
		trash_empty(h);
		if (h->stopping && !q->n) {
			pthread_mutex_unlock(&q->lock);
			break;
		}
		msgs = q->n;
		pthread_mutex_unlock(&q->lock);
		if (!msgs) {
			/* idle: make freed device memory ready, a bit at a time,
			 * once the program has left us alone for a moment (a
			 * migration in full swing would copy over it anyway) */
			if (scrub_wait(h))
				continue;
			ctx_lock(h);
			if (!scrub_some(h))
				atomic_store(&h->scrub, false);
			ctx_unlock(h);
			continue;
		}
		ctx_lock(h);
		events_drain(h);
		ctx_unlock(h);
	}
	return NULL;
}

/*
 * Several fault threads: each takes the oldest fault, brings the events
 * before it up to date, and copies with the context unlocked, so that
 * faults on different windows are served at the same time.
 */
static void *fault_main(void *arg)
{
	struct uhmm *h = arg;

	lib_thread = true;
	for (;;) {
		struct qmsg m;

		pthread_mutex_lock(&h->q.lock);
		while (!h->fq_n && !h->stopping)
			pthread_cond_wait(&h->q.cond, &h->q.lock);
		if (!h->fq_n) {
			pthread_mutex_unlock(&h->q.lock);
			break;
		}
		m = h->fq[0];
		memmove(h->fq, h->fq + 1, --h->fq_n * sizeof(m));
		pthread_mutex_unlock(&h->q.lock);
		ctx_lock(h);
		events_drain(h);
		apply_fault(h, &m, FAULT_PARALLEL);
		ctx_unlock(h);
	}
	return NULL;
}

/*
 * A page of a range this context registered?  Also an unmanaged one where
 * nothing but our userfaultfd raises BUS_ADRERR: a mapping of one of our
 * devices, or private anonymous memory, which a mapping registered before
 * its pages are managed holds (an mremap grew it, a migration that met a
 * layout change left it so: the reader serves such a fault the same way).
 * Which context's, the signal does not say: `alone` is true when this is
 * the only context serving faults by signal, else only a mapping whose
 * first page is ours is.  Not a file's (past its end), such as a poisoned
 * page's stand-in.
 */
static bool ours(struct uhmm *h, uintptr_t page, bool alone)
{
	struct vma v;

	if (pt_loc(&h->pt, page, NULL) != LOC_UNMANAGED)
		return true;
	if (vma_at(h, page, &v))
		return false;
	if (v.kind == VMA_DEV)
		return true;
	if (v.kind != VMA_ANON || v.shared)
		return false;
	return alone || pt_loc(&h->pt, v.start, NULL) != LOC_UNMANAGED;
}

/*
 * A fault served by the thread that took it (fault_signal.c), as a fault
 * thread would serve it.  With the context's lock held the thread is the
 * migrator, whose faults get what reader_take gives them.  False: the
 * page is none of ours (`alone`: ours()).
 */
bool events_fault_here(struct uhmm *h, uintptr_t addr, uint64_t flags, bool alone)
{
	struct qmsg m = { .event = UFFD_EVENT_PAGEFAULT, .addr = addr, .flags = flags };
	pid_t me = my_tid();
	uintptr_t page = page_down(addr);
	struct trace_why why;
	struct vma v;
	bool was;
	int loc;

	if (me == atomic_load(&h->migrator) || me == atomic_load(&h->helper_tid)) {
		if (!ours(h, page, alone) || pagemap_poisoned(page))
			return false;
		if (uffd_zeropage(h, page, flags & UFFD_PAGEFAULT_FLAG_WRITE))
			uffd_continue(h, page, PAGE_SIZE);
		return true;
	}
	m.tid = (uint32_t)me;
	ctx_lock(h);
	/* a mapping moved or grown: the page table learns of it first.  The
	 * barrier (an ioctl) only where the page looks like none of ours: an
	 * mremap's event may be on its way */
	drain_queued(h, false);
	if (!ours(h, page, alone)) {
		drain_queued(h, true);
		if (!ours(h, page, alone)) {
			ctx_unlock(h);
			return false;
		}
	}
	loc = pt_loc(&h->pt, page, NULL);
	/* a page we poisoned raises SIGBUS for the program (BUS_ADRERR where
	 * the kernel has no CONFIG_MEMORY_FAILURE) */
	if (loc == LOC_SYS && !(flags & UFFD_PAGEFAULT_FLAG_WP) && pagemap_poisoned(page)) {
		ctx_unlock(h);
		return false;
	}
	/* the signal does not say MINOR: a device's mapping does */
	if (!(flags & UFFD_PAGEFAULT_FLAG_WP) && !loc_private(h, loc) &&
	    !vma_at(h, page, &v) && v.kind == VMA_DEV)
		m.flags |= UFFD_PAGEFAULT_FLAG_MINOR;
	was = serving_fault;
	serving_fault = true;
	why = trace_because(UHMM_CAUSE_CPU_FAULT);
	apply_fault(h, &m, FAULT_SIGNAL);
	trace_restore(why);
	serving_fault = was;
	ctx_unlock(h);
	return true;
}

static int fault_threads_start(struct uhmm *h)
{
	uint32_t n = h->opts.fault_threads;

	if (n <= 1)
		return 0;
	h->fault_thr = mem_alloc(n * sizeof(*h->fault_thr));
	if (!h->fault_thr)
		return -ENOMEM;
	for (h->nfault_thr = 0; h->nfault_thr < n; h->nfault_thr++)
		if (lib_thread_start(&h->fault_thr[h->nfault_thr], "uhmm-fault", fault_main, h))
			return -EAGAIN;
	return 0;
}

static void fault_threads_stop(struct uhmm *h)
{
	for (uint32_t i = 0; i < h->nfault_thr; i++)
		lib_thread_join(&h->fault_thr[i]);
	mem_free(h->fault_thr);
	mem_free(h->fq);
	h->fault_thr = NULL;
	h->fq = NULL;
	h->nfault_thr = 0;
	h->fq_n = h->fq_cap = 0;
}

static void sentinel_init(struct uhmm *h)
{
	struct uffdio_register reg = { .mode = UFFDIO_REGISTER_MODE_MISSING };
	struct uffdio_zeropage z;
	char *p = mmap(NULL, PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return;
	reg.range = (struct uffdio_range){ (uintptr_t)p, PAGE_SIZE };
	z.range = reg.range;
	z.mode = 0;
	if (ioctl(h->uffd, UFFDIO_REGISTER, &reg) ||
	    (ioctl(h->uffd, UFFDIO_ZEROPAGE, &z) && errno != EEXIST)) {
		munmap(p, PAGE_SIZE);
		return;
	}
	h->sentinel = p;
}

static void sentinel_fini(struct uhmm *h)
{
	struct uffdio_range r = { (uintptr_t)h->sentinel, PAGE_SIZE };

	if (!h->sentinel)
		return;
	ioctl(h->uffd, UFFDIO_UNREGISTER, &r);
	munmap(h->sentinel, PAGE_SIZE);
	h->sentinel = NULL;
}

int events_start(struct uhmm *h)
{
	sigset_t all, old;
	int r;

	h->stop_fd = eventfd(0, EFD_CLOEXEC);
	if (h->stop_fd < 0)
		return -errno;
	sentinel_init(h);
	/* library threads block all signals */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = lib_thread_start(&h->reader, "uhmm-reader", reader_main, h);
	if (!r) {
		r = lib_thread_start(&h->worker, "uhmm-worker", worker_main, h);
		if (!r && (r = fault_threads_start(h))) {
			pthread_mutex_lock(&h->q.lock);
			h->stopping = true;
			pthread_cond_broadcast(&h->q.cond);
			pthread_mutex_unlock(&h->q.lock);
			fault_threads_stop(h);
			lib_thread_join(&h->worker);
		}
		if (r) {
			uint64_t one = 1;

			if (write(h->stop_fd, &one, sizeof(one)) < 0)
				abort();
			lib_thread_join(&h->reader);
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		sentinel_fini(h);
		close(h->stop_fd);
	}
	return r;
}

/*
 * The worker first: what it still does (applying events, freeing pages)
 * may raise events, and only the reader can let those syscalls return.
 */
void events_stop(struct uhmm *h)
{
	uint64_t one = 1;

	pthread_mutex_lock(&h->q.lock);
	h->stopping = true;
	pthread_cond_broadcast(&h->q.cond);
	pthread_mutex_unlock(&h->q.lock);
	lib_thread_join(&h->worker);
	fault_threads_stop(h);
	if (write(h->stop_fd, &one, sizeof(one)) < 0)
		abort();
	lib_thread_join(&h->reader);
	sentinel_fini(h);
	trash_flush(h);
	close(h->stop_fd);
	mem_free(h->q.msg);
	h->q.msg = NULL;
	h->q.n = h->q.cap = 0;
}
