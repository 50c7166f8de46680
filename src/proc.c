// SPDX-License-Identifier: MIT
/*
 * The uhmm_proc_* functions: another process's published context, as
 * `uhmm stat`, `top`, `map` and `trace` see it.  The reading side of
 * publish.c's file; readers take turns with flock, ask by bumping req and
 * wait for ack.  A file whose process is gone (or whose pid now names
 * another process) is removed when found.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "publish.h"

struct uhmm_proc {
	int fd;
	struct pub_file *f;
	struct pub_values *v;		/* the last consistent copy */
	bool tracing;
};

#define DEFAULT_PARENT	"/dev/shm"
#define DEFAULT_PREFIX	"uhmm-"
#define SLICE_MS	100		/* how often a wait looks for the process */

/* ---- finding files --------------------------------------------------- */

static bool parse_name(const char *name, int *pid, unsigned *ctx)
{
	char *end;
	long p;
	unsigned long c;

	if (name[0] < '1' || name[0] > '9')
		return false;
	p = strtol(name, &end, 10);
	if (*end != '.' || p <= 0 || p > INT_MAX)
		return false;
	c = strtoul(end + 1, &end, 10);
	if (*end || !c || c > UINT32_MAX)
		return false;
	*pid = (int)p;
	*ctx = (unsigned)c;
	return true;
}

enum liveness { LIVE, DEAD, UNKNOWN };

/* Does the file still belong to a running process? */
static enum liveness file_liveness(int fd, int pid)
{
	struct pub_file hdr;
	uint64_t st = pub_starttime(pid);
	ssize_t n = pread(fd, &hdr, offsetof(struct pub_file, req), 0);

	if (n != (ssize_t)offsetof(struct pub_file, req) || hdr.magic != PUB_MAGIC)
		return st ? UNKNOWN : DEAD;	/* still being made, or left half made */
	if (hdr.pid != pid)
		return UNKNOWN;
	return st && st == hdr.starttime ? LIVE : DEAD;
}

/* Check DIR/NAME: LIVE, or DEAD (and removed), or UNKNOWN. */
static enum liveness check_file(const char *dir, const char *name, int pid)
{
	char path[PATH_MAX];
	enum liveness l;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return UNKNOWN;
	l = file_liveness(fd, pid);
	close(fd);
	if (l == DEAD)
		unlink(path);
	return l;
}

typedef bool (*dir_fn)(const char *dir, void *arg);

/* $UHMM_STAT_DIR, or every /dev/shm/uhmm-* we may read (root: all users') */
static int each_dir(dir_fn fn, void *arg)
{
	char dir[PATH_MAX];
	struct dirent *e;
	DIR *d;
	int r = pub_dir(dir, sizeof(dir), false);

	if (getenv("UHMM_STAT_DIR")) {
		/* "off", or nothing made there yet: nothing to find */
		if (!r)
			fn(dir, arg);
		return 0;
	}
	d = opendir(DEFAULT_PARENT);
	if (!d)
		return 0;
	while ((e = readdir(d))) {
		char sub[PATH_MAX];

		if (strncmp(e->d_name, DEFAULT_PREFIX, strlen(DEFAULT_PREFIX)))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", DEFAULT_PARENT, e->d_name);
		if (access(sub, R_OK | X_OK))
			continue;
		if (!fn(sub, arg))
			break;
	}
	closedir(d);
	return 0;
}

struct lister {
	int pid;
	struct uhmm_proc_id *ids;
	size_t n, found;
};

static void add_sorted(struct lister *l, int pid, unsigned ctx)
{
	size_t k = l->found < l->n ? l->found : l->n;

	/* insertion keeps the first n in (pid, ctx) order */
	while (k && (l->ids[k - 1].pid > pid ||
		     (l->ids[k - 1].pid == pid && l->ids[k - 1].ctx > ctx))) {
		if (k < l->n)
			l->ids[k] = l->ids[k - 1];
		k--;
	}
	if (k < l->n) {
		l->ids[k].pid = pid;
		l->ids[k].ctx = ctx;
	}
	l->found++;
}

static bool list_dir(const char *dir, void *arg)
{
	struct lister *l = arg;
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return true;
	while ((e = readdir(d))) {
		unsigned ctx;
		int pid;

		if (!parse_name(e->d_name, &pid, &ctx) || (l->pid && pid != l->pid))
			continue;
		if (check_file(dir, e->d_name, pid) == LIVE)
			add_sorted(l, pid, ctx);
	}
	closedir(d);
	return true;
}

int uhmm_proc_list(int pid, struct uhmm_proc_id *ids, size_t n)
{
	struct lister l = { .pid = pid, .ids = ids, .n = ids ? n : 0 };
	int r;

	if (pid < 0 || (!ids && n))
		return -EINVAL;
	r = each_dir(list_dir, &l);
	if (r < 0)
		return r;
	return l.found > INT_MAX ? INT_MAX : (int)l.found;
}

struct finder {
	char name[32];
	int pid;
	int fd;
	int err;
};

static bool find_dir(const char *dir, void *arg)
{
	struct finder *fi = arg;
	char path[PATH_MAX];
	enum liveness l;

	snprintf(path, sizeof(path), "%s/%s", dir, fi->name);
	fi->fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fi->fd < 0) {
		if (errno != ENOENT && fi->err == -ENOENT)
			fi->err = -errno;
		return true;
	}
	l = file_liveness(fi->fd, fi->pid);
	if (l == LIVE)
		return false;
	close(fi->fd);
	fi->fd = -1;
	if (l == DEAD) {
		unlink(path);
		fi->err = -ESRCH;
	}
	return true;
}

/* ---- a context of another process -------------------------------------- */

int uhmm_proc_open(int pid, unsigned ctx, struct uhmm_proc **out)
{
	struct finder fi = { .pid = pid, .fd = -1, .err = -ENOENT };
	struct uhmm_proc *p;
	struct stat st;
	int r;

	if (pid <= 0 || !ctx || !out)
		return -EINVAL;
	snprintf(fi.name, sizeof(fi.name), "%d.%u", pid, ctx);
	r = each_dir(find_dir, &fi);
	if (fi.fd < 0)
		return r < 0 ? r : fi.err;
	p = mem_alloc(sizeof(*p));
	if (p)
		p->v = mem_alloc(sizeof(*p->v));
	if (!p || !p->v) {
		r = -ENOMEM;
		goto fail;
	}
	p->fd = fi.fd;
	if (fstat(p->fd, &st) || st.st_size != (off_t)sizeof(struct pub_file)) {
		r = -EPROTO;	/* another build's layout */
		goto fail;
	}
	p->f = mmap(NULL, sizeof(*p->f), PROT_READ | PROT_WRITE, MAP_SHARED, p->fd, 0);
	if (p->f == MAP_FAILED) {
		r = -errno;
		goto fail;
	}
	if (p->f->version != PUB_VERSION || p->f->size != sizeof(*p->f)) {
		munmap(p->f, sizeof(*p->f));
		r = -EPROTO;
		goto fail;
	}
	*out = p;
	return 0;
fail:
	if (p)
		mem_free(p->v);
	mem_free(p);
	close(fi.fd);
	return r;
}

void uhmm_proc_close(struct uhmm_proc *p)
{
	if (!p)
		return;
	if (p->tracing) {
		/* detach our reader there now rather than after the idle time */
		atomic_store(&p->f->trace_beat, 0);
		atomic_fetch_add(&p->f->req, 1);
		pub_futex_wake(&p->f->req);
	}
	munmap(p->f, sizeof(*p->f));
	close(p->fd);
	mem_free(p->v);
	mem_free(p);
}

/* The process runs and its context is still open. */
static bool alive(struct uhmm_proc *p)
{
	uint64_t st;

	if (atomic_load(&p->f->magic) != PUB_MAGIC)
		return false;
	st = pub_starttime(p->f->pid);
	return st && st == p->f->starttime;
}

/* A consistent copy of the values, whatever their age. */
static void snapshot(struct uhmm_proc *p)
{
	for (int tries = 0; tries < 1000; tries++) {
		uint32_t s = atomic_load_explicit(&p->f->seq, memory_order_acquire);

		if (s & 1)
			continue;
		memcpy(p->v, &p->f->v, sizeof(*p->v));
		/* a read-modify-write keeps the copy before it (TSan knows
		 * no fences) */
		if (atomic_fetch_add_explicit(&p->f->seq, 0, memory_order_acq_rel) == s)
			return;
	}
}

static uint64_t deadline_of(int timeout_ms)
{
	return timeout_ms < 0 ? UINT64_MAX : mono_ns() + (uint64_t)timeout_ms * 1000000;
}

/* Ask with `want` and wait for the answer; the caller holds the flock. */
static int ask(struct uhmm_proc *p, uint32_t want, int timeout_ms)
{
	uint64_t until = deadline_of(timeout_ms);
	uint32_t mine;

	atomic_store(&p->f->want, want);
	mine = atomic_fetch_add(&p->f->req, 1) + 1;
	pub_futex_wake(&p->f->req);
	for (;;) {
		uint32_t a = atomic_load(&p->f->ack);
		uint64_t now = mono_ns(), left;
		struct timespec ts;

		if ((int32_t)(a - mine) >= 0)
			return alive(p) ? 0 : -ESRCH;
		if (now >= until)
			return alive(p) ? -ETIMEDOUT : -ESRCH;
		if (!alive(p))
			return -ESRCH;
		left = until - now;
		if (left > SLICE_MS * 1000000ull)
			left = SLICE_MS * 1000000ull;
		ts.tv_sec = (time_t)(left / 1000000000);
		ts.tv_nsec = (long)(left % 1000000000);
		pub_futex_wait(&p->f->ack, a, &ts);
	}
}

int uhmm_proc_refresh(struct uhmm_proc *p, int timeout_ms)
{
	int r;

	if (!p)
		return -EINVAL;
	if (flock(p->fd, LOCK_EX))
		return -errno;
	r = ask(p, 0, timeout_ms);
	flock(p->fd, LOCK_UN);
	snapshot(p);
	return r;
}

int uhmm_proc_info(struct uhmm_proc *p, struct uhmm_proc_info *info,
		   struct uhmm_stats *st)
{
	struct uhmm_proc_info i = { 0 };
	size_t n;
	int r;

	if (!p || !info)
		return -EINVAL;
	r = sz_check(info, info->sz, sizeof(i));
	if (!r && st)
		r = sz_check(st, st->sz, sizeof(*st));
	if (r)
		return r;
	if (!p->v->sample_ns)
		snapshot(p);
	i.sz = info->sz;
	i.pid = p->f->pid;
	i.ctx = p->f->ctx;
	memcpy(i.comm, p->f->comm, sizeof(i.comm));
	i.comm[sizeof(i.comm) - 1] = '\0';
	i.sample_ns = p->v->sample_ns;
	i.start_ns = p->f->start_ns;
	i.ndev = p->v->ndev < PUB_DEVS ? p->v->ndev : PUB_DEVS;
	i.pages_system = p->v->pages_system;
	i.allocs = p->v->allocs;
	i.alloc_bytes = p->v->alloc_bytes;
	n = sz_of(info->sz, sizeof(i));
	memcpy(info, &i, n < sizeof(i) ? n : sizeof(i));
	if (st) {
		size_t k = sz_of(st->sz, sizeof(*st));
		struct uhmm_stats s = p->v->st;

		s.sz = st->sz;
		memcpy(st, &s, k < sizeof(s) ? k : sizeof(s));
	}
	return 0;
}

int uhmm_proc_dev(struct uhmm_proc *p, unsigned i, struct uhmm_dev_info *info,
		  struct uhmm_stats *st)
{
	struct uhmm_dev_info d = { 0 };
	const struct pub_dev *pd;
	size_t n;
	int r;

	if (!p || !info)
		return -EINVAL;
	r = sz_check(info, info->sz, sizeof(d));
	if (!r && st)
		r = sz_check(st, st->sz, sizeof(*st));
	if (r)
		return r;
	if (i >= p->v->ndev || i >= PUB_DEVS)
		return -ENOENT;
	pd = &p->v->dev[i];
	d.sz = info->sz;
	d.id = pd->id;
	d.kind = (enum uhmm_mem)pd->kind;
	d.size = pd->size;
	d.used = pd->used;
	d.reserved = pd->reserved;
	d.granule = pd->granule;
	memcpy(d.name, pd->name, sizeof(d.name));
	d.name[sizeof(d.name) - 1] = '\0';
	n = sz_of(info->sz, sizeof(d));
	memcpy(info, &d, n < sizeof(d) ? n : sizeof(d));
	if (st) {
		size_t k = sz_of(st->sz, sizeof(*st));
		struct uhmm_stats s = pd->st;

		s.sz = st->sz;
		memcpy(st, &s, k < sizeof(s) ? k : sizeof(s));
	}
	return 0;
}

int uhmm_proc_where(struct uhmm_proc *p, uint64_t addr, size_t len, int *loc,
		    int timeout_ms)
{
	uintptr_t s, e;
	int r;

	if (!p || !loc)
		return -EINVAL;
	r = range_pages((void *)(uintptr_t)addr, len, &s, &e);
	if (r)
		return r;
	if (flock(p->fd, LOCK_EX))
		return -errno;
	for (size_t done = 0; !r && s < e; ) {
		size_t n = (e - s) >> PAGE_SHIFT;

		if (n > PUB_WHERE_PAGES)
			n = PUB_WHERE_PAGES;
		p->f->where_addr = s;
		p->f->where_len = n << PAGE_SHIFT;
		r = ask(p, PUB_WANT_WHERE, timeout_ms);
		if (!r)
			r = p->f->where_rc;
		for (size_t i = 0; !r && i < n; i++)
			loc[done + i] = p->f->where_loc[i];
		done += n;
		s += n << PAGE_SHIFT;
	}
	atomic_store(&p->f->want, 0);
	flock(p->fd, LOCK_UN);
	snapshot(p);
	return r;
}

int uhmm_proc_allocs(struct uhmm_proc *p, uint64_t *start, uint64_t *len, size_t n)
{
	size_t have;

	if (!p || ((!start || !len) && n))
		return -EINVAL;
	if (!p->v->sample_ns)
		snapshot(p);
	have = p->v->nallocs < PUB_ALLOCS ? p->v->nallocs : PUB_ALLOCS;
	for (size_t i = 0; i < n && i < have; i++) {
		start[i] = p->v->alloc_start[i];
		len[i] = p->v->alloc_len[i];
	}
	return (int)(p->v->nallocs > INT_MAX ? INT_MAX : p->v->nallocs);
}

int uhmm_proc_trace_read(struct uhmm_proc *p, uint64_t *next,
			 struct uhmm_trace_event *ev, size_t n)
{
	if (!p || !next || (!ev && n))
		return -EINVAL;
	atomic_store(&p->f->trace_beat, mono_ns());
	if (!p->tracing) {
		/* the publisher attaches us when it wakes */
		p->tracing = true;
		atomic_fetch_add(&p->f->req, 1);
		pub_futex_wake(&p->f->req);
	}
	if (!alive(p))
		return -ESRCH;
	return trace_ring_read(&p->f->ring, next, ev, n > INT32_MAX ? INT32_MAX : n);
}
