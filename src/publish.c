// SPDX-License-Identifier: MIT
/*
 * Every context publishes its counters for `uhmm stat`, `uhmm top`,
 * `uhmm map` and `uhmm trace` in a shared-memory file DIR/PID.N (layout in
 * publish.h).  A thread of ours sleeps on a futex in that file and takes
 * the values only when a reader asks, so a context nobody looks at pays
 * nothing but the sleeping thread.  The file goes at uhmm_close and at
 * exit (a destructor); a dead process's file is removed by the next reader
 * that finds it (proc.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "publish.h"

struct pub {
	struct pub *next;		/* the process's published contexts */
	struct pub_file *f;
	struct pub_values *stage;	/* values gathered before publishing */
	int *where;			/* uhmm_where's answer, as ints */
	pid_t owner;
	struct lib_thread thread;
	_Atomic bool stop;
	bool ext_tracing;		/* a reader outside counts in h->tracing */
	char path[PATH_MAX];
};

static pthread_mutex_t pubs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct pub *pubs;
static _Atomic uint32_t ctx_serial;

int pub_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *ts)
{
	return (int)syscall(SYS_futex, addr, FUTEX_WAIT, val, ts, NULL, 0);
}

void pub_futex_wake(_Atomic uint32_t *addr)
{
	syscall(SYS_futex, addr, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/*
 * $UHMM_STAT_DIR, or /dev/shm/uhmm-EUID, made if missing.  The default
 * must be a real directory of ours: another user could have made it first
 * to read or spoof our counters.
 */
int pub_dir(char *buf, size_t len, bool create)
{
	const char *env = getenv("UHMM_STAT_DIR");
	struct stat st;

	if (env && (!*env || !strcmp(env, "off")))
		return -ENOENT;
	if (env)
		snprintf(buf, len, "%s", env);
	else
		snprintf(buf, len, "/dev/shm/uhmm-%u", (unsigned)geteuid());
	if (create && mkdir(buf, 0700) && errno != EEXIST)
		return -errno;
	if (lstat(buf, &st))
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (!env && st.st_uid != geteuid())
		return -EPERM;
	return 0;
}

/* Field 22 of /proc/PID/stat: when the process started, in clock ticks;
 * with the pid it names one process, even after the pid is reused. */
uint64_t pub_starttime(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long long v = 0;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	if (proc_read_text(path, buf, sizeof(buf)) < 0)
		return 0;
	p = strrchr(buf, ')');		/* comm may hold spaces and parens */
	if (!p)
		return 0;
	/* after ") " come fields 3, 4, ...: skip 19 of them */
	for (int i = 0; i < 20 && p; i++)
		p = strchr(p + 1, ' ');
	if (!p || sscanf(p + 1, "%llu", &v) != 1)
		return 0;
	return v;
}

static void read_comm(char *comm, size_t len)
{
	ssize_t n;
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);

	comm[0] = '\0';
	if (fd < 0)
		return;
	n = read(fd, comm, len - 1);
	close(fd);
	if (n < 0)
		n = 0;
	comm[n] = '\0';
	comm[strcspn(comm, "\n")] = '\0';
}

/* ---- taking the values, with the context held ----------------------- */

static uint64_t pages_in_system(struct uhmm *h)
{
	uint64_t n = 0;

	for (size_t i = 0; i < h->pt.nbucket; i++)
		for (struct vblock *b = h->pt.bucket[i]; b; b = b->next)
			for (size_t k = 0; b->nmanaged && k < BLOCK_PAGES; k++)
				n += b->loc[k] == LOC_SYS;
	return n;
}

static void take_devices(struct uhmm *h, struct pub_values *s)
{
	s->ndev = 0;
	for (int i = 1; i <= MAX_DEVS && s->ndev < PUB_DEVS; i++) {
		struct uhmm_dev *d = h->dev[i];
		struct pub_dev *pd = &s->dev[s->ndev];
		size_t reserved;

		if (!d)
			continue;
		reserved = (size_t)d->bound_chunks * d->chunk_pages << PAGE_SHIFT;
		pd->id = d->id;
		pd->kind = d->kind;
		pd->size = d->size;
		pd->used = d->used_pages << PAGE_SHIFT;
		pd->reserved = reserved < d->size ? reserved : d->size;
		pd->granule = d->granule;
		snprintf(pd->name, sizeof(pd->name), "%s", d->name);
		pd->st.sz = sizeof(pd->st);
		counters_export(&d->stats, &pd->st);
		s->ndev++;
	}
}

/* uhmm_alloc blocks, lowest address first (the list is newest first) */
static void take_allocs(struct uhmm *h, struct pub_values *s)
{
	uint32_t n = 0;

	s->allocs = s->alloc_bytes = 0;
	for (struct allocation *a = h->allocs; a; a = a->next) {
		s->allocs++;
		s->alloc_bytes += a->len;
		if (n == PUB_ALLOCS)
			continue;
		uint32_t k = n++;

		while (k && s->alloc_start[k - 1] > a->start) {
			s->alloc_start[k] = s->alloc_start[k - 1];
			s->alloc_len[k] = s->alloc_len[k - 1];
			k--;
		}
		s->alloc_start[k] = a->start;
		s->alloc_len[k] = a->len;
	}
	s->nallocs = (uint32_t)(s->allocs < UINT32_MAX ? s->allocs : UINT32_MAX);
}

static void take_values(struct uhmm *h, struct pub_values *s)
{
	ctx_lock(h);
	events_drain(h);	/* a munmap that returned is reflected */
	take_devices(h, s);
	take_allocs(h, s);
	s->pages_system = pages_in_system(h);
	ctx_unlock(h);
	s->st.sz = sizeof(s->st);
	counters_export(&h->stats, &s->st);
	s->sample_ns = mono_ns();
}

/* seq's read-modify-writes order the copy between them (no fences:
 * TSan knows none) */
static void publish_values(struct pub_file *f, const struct pub_values *s)
{
	atomic_fetch_add(&f->seq, 1);
	memcpy(&f->v, s, sizeof(*s));
	atomic_fetch_add(&f->seq, 1);
}

static void answer_where(struct uhmm *h, struct pub *p)
{
	struct pub_file *f = p->f;
	uint64_t len = f->where_len;
	size_t n;
	int r;

	if (!len || len > (uint64_t)PUB_WHERE_PAGES << PAGE_SHIFT ||
	    (f->where_addr & (PAGE_SIZE - 1))) {
		f->where_rc = -EINVAL;
		return;
	}
	if (!p->where) {
		p->where = mem_alloc(PUB_WHERE_PAGES * sizeof(int));
		if (!p->where) {
			f->where_rc = -ENOMEM;
			return;
		}
	}
	n = page_up(len) >> PAGE_SHIFT;
	r = uhmm_where(h, (void *)(uintptr_t)f->where_addr, len, p->where);
	for (size_t i = 0; !r && i < n; i++)
		f->where_loc[i] = (int8_t)p->where[i];
	f->where_rc = r;
}

/* Attach or detach the reader outside as its reads come or stop. */
static bool check_tracing(struct uhmm *h, struct pub *p)
{
	uint64_t beat = atomic_load(&p->f->trace_beat), now = mono_ns();
	bool want = beat && now - beat < PUB_TRACE_IDLE_NS;

	if (want != p->ext_tracing) {
		p->ext_tracing = want;
		atomic_fetch_add(&h->tracing, want ? 1 : -1);
	}
	return p->ext_tracing;
}

static void *publish_main(void *arg)
{
	struct uhmm *h = arg;
	struct pub *p = h->pub;
	struct pub_file *f = p->f;

	lib_thread = true;
	while (!atomic_load(&p->stop)) {
		uint32_t req = atomic_load(&f->req);
		struct timespec second = { 1, 0 };

		if (req != atomic_load(&f->ack)) {
			if (atomic_load(&f->want) & PUB_WANT_WHERE)
				answer_where(h, p);
			take_values(h, p->stage);
			publish_values(f, p->stage);
			atomic_store(&f->ack, req);
			pub_futex_wake(&f->ack);
		}
		/* publish_stop sets stop before it bumps req: having read its
		 * req, we see its stop here, or the wait below returns at once
		 * (req moved on); without this look its wake-up came before
		 * our wait and the wait was for ever */
		if (atomic_load(&p->stop))
			break;
		/* while a reader outside traces, look every second whether it
		 * is still there */
		pub_futex_wait(&f->req, req, check_tracing(h, p) ? &second : NULL);
	}
	if (p->ext_tracing)
		atomic_fetch_sub(&h->tracing, 1);
	return NULL;
}

/* ---- the file ---------------------------------------------------------- */

static int pub_create(struct pub *p, uint32_t ctx)
{
	char dir[PATH_MAX - 32];
	struct pub_file *f;
	int fd, r;

	r = pub_dir(dir, sizeof(dir), true);
	if (r)
		return r;
	snprintf(p->path, sizeof(p->path), "%s/%d.%u", dir, (int)getpid(), ctx);
	/* a file of that name is a dead process's that had our pid */
	unlink(p->path);
	fd = open(p->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, sizeof(*f))) {
		r = -errno;
		goto fail;
	}
	f = mmap(NULL, sizeof(*f), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (f == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	close(fd);
	p->f = f;
	return 0;
fail:
	close(fd);
	unlink(p->path);
	return r;
}

static void pub_free(struct pub *p)
{
	if (p->f) {
		unlink(p->path);
		munmap(p->f, sizeof(*p->f));
	}
	mem_free(p->where);
	mem_free(p->stage);
	mem_free(p);
}

static void fill_header(struct pub_file *f, uint32_t ctx)
{
	f->version = PUB_VERSION;
	f->size = sizeof(*f);
	f->pid = getpid();
	f->ctx = ctx;
	f->starttime = pub_starttime(f->pid);
	f->start_ns = mono_ns();
	read_comm(f->comm, sizeof(f->comm));
	trace_ring_init(&f->ring);
	/* last (a seq_cst store): a reader trusts nothing of a file without it */
	atomic_store(&f->magic, PUB_MAGIC);
}

void publish_start(struct uhmm *h)
{
	uint32_t ctx = atomic_fetch_add(&ctx_serial, 1) + 1;
	struct pub *p = mem_alloc(sizeof(*p));
	sigset_t all, old;
	int r;

	if (!p)
		return;
	p->stage = mem_alloc(sizeof(*p->stage));
	if (!p->stage || pub_create(p, ctx)) {
		pub_free(p);
		return;
	}
	p->owner = getpid();
	fill_header(p->f, ctx);
	h->pub = p;
	trace_ring_attach(h, &p->f->ring);
	h->trace_shared = true;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	r = lib_thread_start(&p->thread, "uhmm-publish", publish_main, h);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (r) {
		/* nothing published; the ring must outlive the file */
		atomic_store(&h->trace, NULL);
		h->trace_shared = false;
		h->pub = NULL;
		pub_free(p);
		return;
	}
	pthread_mutex_lock(&pubs_lock);
	p->next = pubs;
	pubs = p;
	pthread_mutex_unlock(&pubs_lock);
}

void publish_stop(struct uhmm *h)
{
	struct pub *p = h->pub, **pp;

	if (!p)
		return;
	atomic_store(&p->stop, true);
	atomic_fetch_add(&p->f->req, 1);
	pub_futex_wake(&p->f->req);
	lib_thread_join(&p->thread);
	pthread_mutex_lock(&pubs_lock);
	for (pp = &pubs; *pp; pp = &(*pp)->next) {
		if (*pp == p) {
			*pp = p->next;
			break;
		}
	}
	pthread_mutex_unlock(&pubs_lock);
	/* readers waiting for an answer learn the context is gone */
	atomic_store(&p->f->magic, 0);
	atomic_store(&p->f->ack, atomic_load(&p->f->req));
	pub_futex_wake(&p->f->ack);
	atomic_store(&h->trace, NULL);
	h->trace_shared = false;
	h->pub = NULL;
	pub_free(p);
}

/*
 * At exit the contexts still open leave no file behind.  Only the process
 * that made a file removes it: a fork child inherits the list, not the
 * files.
 */
__attribute__((destructor)) static void publish_exit(void)
{
	pid_t me = getpid();

	pthread_mutex_lock(&pubs_lock);
	for (struct pub *p = pubs; p; p = p->next)
		if (p->owner == me)
			unlink(p->path);
	pthread_mutex_unlock(&pubs_lock);
}
