// SPDX-License-Identifier: MIT
/*
 * What the kernel says about the mappings of a range, from /proc/self/maps:
 * the only place that tells file-backed from anonymous, shared from private,
 * holes, protection, and which mappings are our devices' memory.  Checked
 * before anything moves, so that a refused range is left untouched.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

static struct uhmm_dev *dev_for_file(struct uhmm *h, dev_t sd, ino_t si)
{
	for (int i = 1; i <= MAX_DEVS; i++) {
		struct uhmm_dev *d = h->dev[i];

		if (d && d->kind == UHMM_MEM_COHERENT && d->st_dev == sd && d->st_ino == si)
			return d;
	}
	return NULL;
}

/* What kind of memory a mapping is, from its file and name. */
static void classify(struct uhmm *h, struct vma *v, const char *path)
{
	snprintf(v->name, sizeof(v->name), "%s", path);
	v->dev = v->si ? dev_for_file(h, v->sd, v->si) : NULL;
	if (v->dev && v->shared)
		v->kind = VMA_DEV;
	else if (!v->si && !v->shared && (!path[0] || !strcmp(path, "[heap]")))
		v->kind = VMA_ANON;
	else
		v->kind = VMA_OTHER;
}

static int parse_line(struct uhmm *h, const char *line, struct vma *v)
{
	char perms[8] = "", path[256] = "";
	unsigned long s, e, ino;
	unsigned maj, mn;
	uint64_t off;

	if (sscanf(line, "%lx-%lx %7s %" SCNx64 " %x:%x %lu %255[^\n]",
		   &s, &e, perms, &off, &maj, &mn, &ino, path) < 7)
		return -1;
	memset(v, 0, sizeof(*v));
	v->start = s;
	v->end = e;
	v->prot = (perms[0] == 'r' ? PROT_READ : 0) |
		  (perms[1] == 'w' ? PROT_WRITE : 0) |
		  (perms[2] == 'x' ? PROT_EXEC : 0);
	v->shared = perms[3] == 's';
	v->pgoff = off;
	v->sd = makedev(maj, mn);
	v->si = ino;
	classify(h, v, path);
	return 0;
}

/*
 * The mapping holding addr (or, with `next`, the first one above it) from
 * PROCMAP_QUERY: one ioctl, no text to make and parse.  -ENOENT: none.
 */
static int query(struct uhmm *h, int fd, uintptr_t addr, bool next, struct vma *v)
{
	char path[256];
	struct procmap_query q = {
		.size = sizeof(q),
		.query_flags = next ? PROCMAP_QUERY_COVERING_OR_NEXT_VMA : 0,
		.query_addr = addr,
		.vma_name_size = sizeof(path),
		.vma_name_addr = (uintptr_t)path,
	};

	if (ioctl(fd, PROCMAP_QUERY, &q))
		return -errno;
	if (!q.vma_name_size)
		path[0] = 0;
	memset(v, 0, sizeof(*v));
	v->start = q.vma_start;
	v->end = q.vma_end;
	v->prot = (q.vma_flags & PROCMAP_QUERY_VMA_READABLE ? PROT_READ : 0) |
		  (q.vma_flags & PROCMAP_QUERY_VMA_WRITABLE ? PROT_WRITE : 0) |
		  (q.vma_flags & PROCMAP_QUERY_VMA_EXECUTABLE ? PROT_EXEC : 0);
	v->shared = q.vma_flags & PROCMAP_QUERY_VMA_SHARED;
	v->pgoff = q.vma_offset;
	v->sd = makedev(q.dev_major, q.dev_minor);
	v->si = q.inode;
	v->page_size = q.vma_page_size;
	classify(h, v, path);
	return 0;
}

/*
 * /proc/self/maps read with read(2) into a buffer on our stack: stdio would
 * buffer it on the heap, and heap pages may be the very pages we are
 * migrating (a malloc'd buffer shares its pages with the heap's own
 * bookkeeping), or on a private device, where touching them with the
 * context held would fault to a thread that waits for the context.
 */
#define MAPS_BUF 8192			/* the longest line (a path) fits */

/* On the stack: a mapping of ours would land in the hole we look at. */
struct maps {
	int fd;
	size_t len, pos;
	bool eof;
	char buf[MAPS_BUF];
};

static int maps_open_file(struct maps *m, const char *path)
{
	m->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (m->fd < 0)
		return -errno;
	m->len = m->pos = 0;
	m->eof = false;
	return 0;
}

static int maps_open(struct maps *m)
{
	return maps_open_file(m, "/proc/self/maps");
}

static void maps_close(struct maps *m)
{
	close(m->fd);
}

/* The next line, NUL-terminated, or NULL at the end. */
static char *maps_line(struct maps *m)
{
	for (;;) {
		char *nl = memchr(m->buf + m->pos, '\n', m->len - m->pos);
		ssize_t got;

		if (nl) {
			char *line = m->buf + m->pos;

			*nl = 0;
			m->pos = nl + 1 - m->buf;
			return line;
		}
		if (m->eof)
			return NULL;
		memmove(m->buf, m->buf + m->pos, m->len - m->pos);
		m->len -= m->pos;
		m->pos = 0;
		got = read(m->fd, m->buf + m->len, MAPS_BUF - 1 - m->len);
		if (got <= 0) {
			m->eof = true;
			if (m->len == 0)
				return NULL;
			m->buf[m->len++] = '\n';	/* a last line without one */
			continue;
		}
		m->len += got;
	}
}

static int vma_push(struct vma **arr, size_t *cnt, size_t *cap, const struct vma *v)
{
	if (*cnt == *cap) {
		size_t c = *cap ? *cap * 2 : 16;
		struct vma *na = mem_realloc(*arr, c * sizeof(**arr));

		if (!na)
			return -ENOMEM;
		*arr = na;
		*cap = c;
	}
	(*arr)[(*cnt)++] = *v;
	return 0;
}

static void clip(struct vma *v, uintptr_t start, uintptr_t end)
{
	if (v->start < start) {
		/* the file offset travels with the start */
		v->pgoff += start - v->start;
		v->start = start;
	}
	if (v->end > end)
		v->end = end;
}

static int list_query(struct uhmm *h, uintptr_t start, uintptr_t end,
		      struct vma **arr, size_t *cnt, size_t *cap)
{
	int fd = procfd(PROC_MAPS), r = 0;
	uintptr_t at = start;
	struct vma v;

	if (fd < 0)
		return fd;
	while (at < end && !r) {
		r = query(h, fd, at, true, &v);
		if (r == -ENOENT || (!r && v.start >= end)) {
			r = 0;
			break;
		}
		if (!r && v.end <= at)
			r = -EIO;	/* the kernel would not say that */
		if (r)
			break;
		at = v.end;
		clip(&v, start, end);
		r = vma_push(arr, cnt, cap, &v);
	}
	return r;
}

static int list_text(struct uhmm *h, uintptr_t start, uintptr_t end,
		     struct vma **arr, size_t *cnt, size_t *cap)
{
	struct maps m;
	struct vma v;
	char *line;
	int r = maps_open(&m);

	if (r)
		return r;
	while ((line = maps_line(&m))) {
		if (parse_line(h, line, &v) || v.end <= start)
			continue;
		if (v.start >= end)
			break;
		clip(&v, start, end);
		r = vma_push(arr, cnt, cap, &v);
		if (r)
			break;
	}
	maps_close(&m);
	return r;
}

int vma_scan_mapped(struct uhmm *h, uintptr_t start, uintptr_t end,
		    struct vma **out, size_t *n)
{
	struct vma *arr = NULL;
	size_t cap = 0, cnt = 0;
	int r;

	if (h->feat & UHMM_FEAT_PROCMAP_QUERY)
		r = list_query(h, start, end, &arr, &cnt, &cap);
	else
		r = list_text(h, start, end, &arr, &cnt, &cap);
	if (r) {
		mem_free(arr);
		return r;
	}
	*out = arr;
	*n = cnt;
	return 0;
}

int vma_scan(struct uhmm *h, uintptr_t start, uintptr_t end,
	     struct vma **out, size_t *n)
{
	uintptr_t expect = start;
	struct vma *vv;
	size_t nv;
	int r = vma_scan_mapped(h, start, end, &vv, &nv);

	if (r)
		return r;
	for (size_t i = 0; i < nv && !r; i++) {
		if (vv[i].start > expect)
			r = -EFAULT;
		expect = vv[i].end;
	}
	if (!r && expect < end)
		r = -EFAULT;
	/* on an error the caller's pointers stay as they were */
	if (r) {
		mem_free(vv);
		return r;
	}
	*out = vv;
	*n = nv;
	return 0;
}

/* The whole mapping holding addr, not clipped. */
int vma_at(struct uhmm *h, uintptr_t addr, struct vma *out)
{
	struct maps m;
	char *line;
	int r;

	if (h->feat & UHMM_FEAT_PROCMAP_QUERY) {
		int fd = procfd(PROC_MAPS);

		if (fd < 0)
			return fd;
		r = query(h, fd, addr, false, out);
		return r == -ENOENT ? -EFAULT : r;
	}
	r = maps_open(&m);
	if (r)
		return r;
	r = -EFAULT;
	while ((line = maps_line(&m))) {
		if (parse_line(h, line, out))
			continue;
		if (out->start <= addr && addr < out->end) {
			r = 0;
			break;
		}
		if (out->start > addr)
			break;
	}
	maps_close(&m);
	return r;
}

/* Does the process hold any mlocked memory at all?  (Cheap, usually no.) */
static bool any_locked(void)
{
	struct maps m;
	bool locked = true;
	char *line;

	if (maps_open_file(&m, "/proc/self/status"))
		return true;
	while ((line = maps_line(&m)))
		if (!strncmp(line, "VmLck:", 6)) {
			locked = strtoul(line + 6, NULL, 10) != 0;
			break;
		}
	maps_close(&m);
	return locked;
}

/*
 * Is any mapping overlapping [start, end) mlocked?  Its pages must stay in
 * system memory, which a private device cannot promise.  /proc/self/smaps
 * says so in VmFlags ("lo"); it is read only when something is locked.
 */
bool vma_locked(struct uhmm *h, uintptr_t start, uintptr_t end)
{
	bool in = false, locked = false;
	struct maps m;
	struct vma v;
	char *line;

	if (!any_locked() || maps_open_file(&m, "/proc/self/smaps"))
		return false;
	while (!locked && (line = maps_line(&m))) {
		if (!strncmp(line, "VmFlags:", 8)) {
			locked = in && (strstr(line, " lo") != NULL);
			continue;
		}
		if (!strchr(line, '-') || parse_line(h, line, &v))
			continue;
		if (v.start >= end)
			break;
		in = v.end > start;
	}
	maps_close(&m);
	return locked;
}

/*
 * Sealed memory (mseal, 6.10+) refuses mremap even when nothing would
 * change: an mremap to the same size, in place, is a probe with no side
 * effect (reading VmFlags from smaps would walk every page table of the
 * process, and an mprotect probe could undo a concurrent mprotect).
 */
static int sealed(const struct vma *v)
{
	long r = syscall(SYS_mremap, v->start, v->end - v->start, v->end - v->start, 0, 0);

	return r < 0 && errno == EPERM ? -EPERM : 0;
}

int vma_check_migratable(struct uhmm *h, const struct vma *v)
{
	if (v->prot == PROT_NONE)
		return -EINVAL;
	/* our own memory (metadata, staging, pooled pages) is not the
	 * program's: a hole to it */
	if (v->kind == VMA_ANON && (mem_owns(v->start, v->end) ||
				    arena_owns(h, v->start, v->end) ||
				    pool_owns(h, v->start, v->end)))
		return -EFAULT;
	if (v->kind == VMA_OTHER) {
		if (v->shared && dev_file_foreign(h, v->sd, v->si))
			return -EBUSY;
		return -EINVAL;
	}
	return sealed(v);
}
