// SPDX-License-Identifier: MIT
/*
 * Device registration.  A COHERENT device is a file descriptor the CPU can
 * map; we keep our own duplicate and our own view of it, populated once so
 * that its pages never pay the first-touch cost again.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"
#include "trace.h"

#define HUGETLBFS_MAGIC_ 0x958458f6

/* Every live device of every context: a page belongs to one context. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uhmm_dev *registry[256];

void dev_registry_add(struct uhmm_dev *d)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++) {
		if (!registry[i]) {
			registry[i] = d;
			break;
		}
	}
	pthread_mutex_unlock(&registry_lock);
}

void dev_registry_del(struct uhmm_dev *d)
{
	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i] == d)
			registry[i] = NULL;
	pthread_mutex_unlock(&registry_lock);
}

void dev_registry_lock(bool lock)
{
	if (lock)
		pthread_mutex_lock(&registry_lock);
	else
		pthread_mutex_unlock(&registry_lock);
}

/* A fork child has no context, so no device either. */
void dev_registry_forget(void)
{
	memset(registry, 0, sizeof(registry));
}

static struct uhmm_dev *registry_find(dev_t sd, ino_t si)
{
	struct uhmm_dev *found = NULL;

	pthread_mutex_lock(&registry_lock);
	for (size_t i = 0; i < sizeof(registry) / sizeof(registry[0]); i++)
		if (registry[i] && registry[i]->st_dev == sd && registry[i]->st_ino == si)
			found = registry[i];
	pthread_mutex_unlock(&registry_lock);
	return found;
}

bool dev_file_foreign(struct uhmm *h, dev_t sd, ino_t si)
{
	struct uhmm_dev *d = registry_find(sd, si);

	return d && d->h != h;
}

static size_t granule_of(int fd, const struct stat *st)
{
	struct statfs sf;

	if (S_ISCHR(st->st_mode))
		return BLOCK_SIZE;		/* devdax maps 2 MiB at a time */
	if (!fstatfs(fd, &sf) && (unsigned long)sf.f_type == HUGETLBFS_MAGIC_)
		return st->st_blksize;
	return PAGE_SIZE;
}

static int check_fd(const struct uhmm_dev_desc *d, struct stat *st)
{
	int fl;

	if (d->fd < 0)
		return -EBADF;
	fl = fcntl(d->fd, F_GETFL);
	if (fl < 0)
		return -EBADF;
	if ((fl & O_ACCMODE) != O_RDWR)
		return -EACCES;
	if (fstat(d->fd, st))
		return -errno;
	if (!S_ISREG(st->st_mode) && !S_ISCHR(st->st_mode))
		return -EINVAL;
	/* fd_offset + size may wrap: then it is past any file's end */
	if (d->fd_offset + d->size < d->fd_offset)
		return -EINVAL;
	if (S_ISREG(st->st_mode) && (uint64_t)st->st_size < d->fd_offset + d->size)
		return -EINVAL;
	return 0;
}

static char *map_view(int fd, uint64_t off, size_t size)
{
	char *raw = mmap(NULL, size + BLOCK_SIZE, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t al;
	char *v;

	/* size + BLOCK_SIZE wrapped: the munmaps below would hit others' pages */
	if (size > SIZE_MAX - BLOCK_SIZE) {
		if (raw != MAP_FAILED)
			munmap(raw, size + BLOCK_SIZE);
		return NULL;
	}
	if (raw == MAP_FAILED)
		return NULL;
	/* 2 MiB aligned, so chunks and user blocks are congruent */
	al = ((uintptr_t)raw + BLOCK_SIZE - 1) & ~(BLOCK_SIZE - 1);
	if (al > (uintptr_t)raw)
		munmap(raw, al - (uintptr_t)raw);
	munmap((char *)al + size, (uintptr_t)raw + size + BLOCK_SIZE - al - size);
	v = mmap((void *)al, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, off);
	if (v == MAP_FAILED) {
		munmap((void *)al, size);
		return NULL;
	}
	/* a DMA access or a range_fault of it is no access to the program's
	 * memory: the view may sit in a hole the program just made */
	mem_own_map(v, size);
	return v;
}

static int free_id(struct uhmm *h)
{
	for (int i = 1; i <= MAX_DEVS; i++)
		if (!h->dev[i])
			return i;
	return -ENOSPC;
}

static void dev_free(struct uhmm_dev *d)
{
	if (d->view) {
		mem_disown_map(d->view);
		munmap(d->view, d->size);
	}
	if (d->fd >= 0)
		close(d->fd);
	devmem_fini(d);
	mem_free(d);
}

/* Common to every COHERENT device; takes over fd on success. */
int dev_setup(struct uhmm *h, const struct uhmm_dev_desc *desc, int fd,
	      bool populate, struct uhmm_dev **out)
{
	struct uhmm_dev *d = mem_alloc(sizeof(*d));
	struct stat st;
	int r = -ENOMEM, id;

	if (!d)
		return r;
	d->fd = -1;
	/*
	 * Minor faults on shmem (5.13+) are how we see a device page's PTE
	 * vanish (MADV_DONTNEED must read back zeros, mremap growth must not
	 * show other ranges) and fence device pages without shmem WP.
	 */
	r = -ENOSYS;
	if (!(h->feat & UHMM_FEAT_MINOR_SHMEM))
		goto fail;
	if (fstat(fd, &st)) {
		r = -errno;
		goto fail;
	}
	d->h = h;
	d->kind = desc->kind;
	d->size = desc->size;
	d->fd_offset = desc->fd_offset;
	d->st_dev = st.st_dev;
	d->st_ino = st.st_ino;
	d->granule = granule_of(fd, &st);
	snprintf(d->name, sizeof(d->name), "%s", desc->name ? desc->name : "device");
	if (desc->ops)
		memcpy(&d->ops, desc->ops, sizeof(d->ops));
	d->drv = desc->drv;
	r = -EINVAL;
	if (d->size % d->granule || d->fd_offset % d->granule)
		goto fail;
	r = devmem_init(d);
	if (r)
		goto fail;
	r = -ENOMEM;
	d->view = map_view(fd, d->fd_offset, d->size);
	if (!d->view)
		goto fail;
	if (populate && madvise(d->view, d->size, MADV_POPULATE_WRITE)) {
		r = -errno;
		goto fail;
	}
	for (size_t p = 0; p < d->npages; p++)
		d->pflags[p] = DP_VIEW_PTE | (populate ? 0 : DP_DIRTY);
	d->scrub_todo = populate ? 0 : d->npages;
	ctx_lock(h);
	id = free_id(h);
	if (id > 0) {
		d->id = id;
		h->dev[id] = d;
	}
	ctx_unlock(h);
	if (id < 0) {
		r = id;
		goto fail;
	}
	d->fd = fd;
	dev_registry_add(d);
	*out = d;
	return 0;
fail:
	dev_free(d);
	return r;
}

static _Atomic uint64_t serials;

static int check_private(const struct uhmm_dev_desc *d)
{
	const struct uhmm_dev_ops *o = d->ops;

	if (d->fd != -1 || d->fd_offset)
		return -EINVAL;
	if (!d->size || d->size % PAGE_SIZE)
		return -EINVAL;
	if (!o || !o->copy_to_dev || !o->copy_from_dev)
		return -EINVAL;
	return sz_check(o, o->sz, sizeof(*o));
}

/*
 * Memory only the device reaches: no file, no view.  Its pages are reached
 * through the driver's copy ops alone, and the program's range over them
 * stays empty, so that every CPU access faults to us.
 */
int dev_setup_private(struct uhmm *h, const struct uhmm_dev_desc *desc,
		      struct uhmm_dev **out)
{
	struct uhmm_dev *d;
	size_t n;
	int r, id;

	r = check_private(desc);
	if (r)
		return r;
	d = mem_alloc(sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->fd = -1;
	d->h = h;
	d->serial = atomic_fetch_add(&serials, 1) + 1;
	d->kind = UHMM_MEM_PRIVATE;
	d->size = desc->size;
	d->granule = PAGE_SIZE;
	snprintf(d->name, sizeof(d->name), "%s", desc->name ? desc->name : "device");
	n = sz_of(desc->ops->sz, sizeof(d->ops));
	memcpy(&d->ops, desc->ops, n < sizeof(d->ops) ? n : sizeof(d->ops));
	d->drv = desc->drv;
	r = devmem_init(d);
	if (r)
		goto fail;
	/* what the driver's memory holds is unknown: zero before handing out */
	for (size_t p = 0; p < d->npages; p++)
		d->pflags[p] = DP_DIRTY;
	ctx_lock(h);
	id = free_id(h);
	if (id > 0) {
		d->id = id;
		h->dev[id] = d;
		h->nprivate++;
	}
	ctx_unlock(h);
	if (id < 0) {
		r = id;
		goto fail;
	}
	*out = d;
	return 0;
fail:
	dev_free(d);
	return r;
}

int uhmm_dev_add(struct uhmm *h, const struct uhmm_dev_desc *user, struct uhmm_dev **out)
{
	struct uhmm_dev_desc dd = { 0 }, *desc = &dd;
	struct uhmm_dev_ops ops = { 0 };
	struct stat st;
	size_t n;
	int r, fd;

	if (!h || !user || !out)
		return -EINVAL;
	r = sz_check(user, user->sz, sizeof(*user));
	if (r)
		return r;
	/* the caller's structs end at their sz: what they do not have is 0
	 * (fd too, as the v1 layout would), and is never read */
	n = sz_of(user->sz, sizeof(dd));
	memcpy(&dd, user, n < sizeof(dd) ? n : sizeof(dd));
	dd.sz = sizeof(dd);
	if (dd.ops) {
		r = sz_check(dd.ops, dd.ops->sz, sizeof(ops));
		if (r)
			return r;
		n = sz_of(dd.ops->sz, sizeof(ops));
		memcpy(&ops, dd.ops, n < sizeof(ops) ? n : sizeof(ops));
		ops.sz = sizeof(ops);
		dd.ops = &ops;
	}
	if (desc->kind == UHMM_MEM_PRIVATE)
		return dev_setup_private(h, desc, out);
	if (desc->kind != UHMM_MEM_COHERENT)
		return -EINVAL;
	if (!desc->size || desc->size % PAGE_SIZE || desc->fd_offset % PAGE_SIZE)
		return -EINVAL;
	r = check_fd(desc, &st);
	if (r)
		return r;
	if (registry_find(st.st_dev, st.st_ino))
		return -EBUSY;
	fd = fcntl(desc->fd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return -errno;
	r = dev_setup(h, desc, fd, true, out);
	if (r)
		close(fd);
	return r;
}

int uhmm_dev_add_file(struct uhmm *h, const char *path, size_t size,
		      struct uhmm_dev **out)
{
	struct uhmm_dev_desc d = { .kind = UHMM_MEM_COHERENT, .name = path };
	struct stat st;
	int fd, r;

	if (!h || !path || !out || size % PAGE_SIZE)
		return -EINVAL;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	r = fstat(fd, &st) ? -errno : 0;
	if (!r && S_ISREG(st.st_mode) && !size)
		size = st.st_size;
	if (!r && S_ISREG(st.st_mode) && (size_t)st.st_size < size && ftruncate(fd, size))
		r = -errno;
	if (!r && !size)
		r = -EINVAL;
	if (!r) {
		d.fd = fd;
		d.size = size;
		r = uhmm_dev_add(h, &d, out);
	}
	close(fd);
	return r;
}

int uhmm_dev_info(const struct uhmm_dev *dev, struct uhmm_dev_info *info)
{
	struct uhmm_dev_info i = { 0 };
	bool held;
	size_t n;
	int r;

	if (!dev || !info)
		return -EINVAL;
	r = sz_check(info, info->sz, sizeof(i));
	if (r)
		return r;
	/* a mirror's callback may ask, with the context held by its thread */
	held = atomic_load(&dev->h->migrator) == my_tid();
	if (!held) {
		ctx_lock(dev->h);
		events_drain(dev->h);	/* a munmap that returned is reflected */
	}
	i.sz = info->sz;
	i.id = dev->id;
	i.kind = dev->kind;
	i.size = dev->size;
	i.used = dev->used_pages << PAGE_SHIFT;
	i.reserved = (size_t)dev->bound_chunks * dev->chunk_pages << PAGE_SHIFT;
	if (i.reserved > i.size)
		i.reserved = i.size;
	i.granule = dev->granule;
	snprintf(i.name, sizeof(i.name), "%s", dev->name);
	if (!held)
		ctx_unlock(dev->h);
	n = sz_of(info->sz, sizeof(i));
	memcpy(info, &i, n < sizeof(i) ? n : sizeof(i));
	return 0;
}

/* discard: the process is about to exit, its pages need not come home */
int dev_remove(struct uhmm_dev *dev, bool discard)
{
	struct trace_why why = trace_because(UHMM_CAUSE_REMOVE);
	struct uhmm *h = dev->h;
	int r = 0;

	ctx_lock(h);
	events_drain(h);
	/* faults copying from it with the context unlocked finish first */
	while (dev->busy) {
		pthread_cond_wait(&h->idle, &h->lock);
		atomic_store(&h->migrator, my_tid());
	}
	/* its mirrors first: nothing they hold survives the device */
	mirrors_release_dev(h, dev);
	if (!discard)
		r = dev_pages_to_sys(h, dev);
	/* what could not be read back must not read as anything else */
	if (!discard && dev->kind == UHMM_MEM_PRIVATE && dev->used_pages &&
	    private_poison_all(h, dev))
		r = -EIO;
	/* what could not come home at all stays the device file's */
	if (dev_let_go(h, dev) && !discard)
		r = -EIO;
	h->dev[dev->id] = NULL;
	if (dev->kind == UHMM_MEM_PRIVATE)
		h->nprivate--;
	ctx_unlock(h);
	trace_restore(why);
	sim_dma_free(dev);
	dev_registry_del(dev);
	if (dev->ops.release)
		dev->ops.release(dev->drv);
	dev_free(dev);
	return r;
}

int uhmm_dev_remove(struct uhmm_dev *dev)
{
	return dev ? dev_remove(dev, false) : -EINVAL;
}
