// SPDX-License-Identifier: MIT
/*
 * Which userfaultfd this process may have and what it can do.  The full
 * mode (kernel-mode faults delivered) needs CAP_SYS_PTRACE,
 * vm.unprivileged_userfaultfd=1 or access to /dev/userfaultfd; otherwise
 * UFFD_USER_MODE_ONLY (5.11+).  Features are asked for in two steps, as the
 * kernel documents: a throwaway descriptor learns what exists.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "compat.h"
#include "internal.h"

struct disable_name {
	const char *name;
	uint64_t feat;
};

static const struct disable_name disable_names[] = {
	{ "move", UHMM_FEAT_MOVE },
	{ "wp_unpopulated", UHMM_FEAT_WP_UNPOPULATED },
	{ "wp_shmem", UHMM_FEAT_WP_SHMEM },
	{ "minor", UHMM_FEAT_MINOR_SHMEM },
	{ "pagemap_scan", UHMM_FEAT_PAGEMAP_SCAN },
	{ "poison", UHMM_FEAT_POISON },
	{ "kernel_faults", UHMM_FEAT_KERNEL_FAULTS },
	{ "remap_fence", UHMM_FEAT_REMAP_FENCE },
	{ "procmap_query", UHMM_FEAT_PROCMAP_QUERY },
	{ "events_other", UHMM_FEAT_EVENTS_OTHER },
	/* not in "all": the write-protect fence needs it; honoured only
	 * where the remap fence stands in (see probe_open_uffd) */
	{ "wp", UHMM_FEAT_WP },
};

/* Is word one of the comma-separated words of list? */
static bool has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; (p = strstr(p, word)); p += n)
		if ((p == list || p[-1] == ',') && (p[n] == ',' || !p[n]))
			return true;
	return false;
}

/* UHMM_DISABLE=move,wp_shmem,... (or all): features to leave unused. */
uint64_t probe_disabled(void)
{
	const char *env = getenv("UHMM_DISABLE");
	uint64_t off = 0;
	bool all;

	if (!env)
		return 0;
	all = has_word(env, "all");
	for (size_t i = 0; i < sizeof(disable_names) / sizeof(disable_names[0]); i++) {
		uint64_t f = disable_names[i].feat;

		/* "all": every feature that has a fallback; minor faults on
		 * shmem have none (coherent devices need them), and
		 * write-protection is the fallback fence's */
		if (has_word(env, disable_names[i].name) ||
		    (all && f != UHMM_FEAT_MINOR_SHMEM && f != UHMM_FEAT_WP))
			off |= f;
	}
	return off;
}

static int new_uffd(bool user_only)
{
	int flags = O_CLOEXEC | O_NONBLOCK | (user_only ? UFFD_USER_MODE_ONLY : 0);
	int fd = syscall(SYS_userfaultfd, flags), dev;

	if (fd >= 0 || user_only)
		return fd >= 0 ? fd : -errno;
	/* /dev/userfaultfd grants full mode to whoever may open it (6.1+) */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0)
		return -EPERM;
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd >= 0 ? fd : -errno;
}

static int api_handshake(int fd, uint64_t want, uint64_t *got)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };

	if (ioctl(fd, UFFDIO_API, &api))
		return -errno;
	*got = api.features;
	return 0;
}

static uint64_t feat_bits(uint64_t uf, bool user_only)
{
	uint64_t f = UHMM_FEAT_UFFD;

	if (!user_only)
		f |= UHMM_FEAT_KERNEL_FAULTS;
	if (uf & UFFD_FEATURE_PAGEFAULT_FLAG_WP)
		f |= UHMM_FEAT_WP;
	if (uf & UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
		f |= UHMM_FEAT_WP_SHMEM;
	if (uf & UFFD_FEATURE_MOVE)
		f |= UHMM_FEAT_MOVE;
	if (uf & UFFD_FEATURE_POISON)
		f |= UHMM_FEAT_POISON;
	if (uf & UFFD_FEATURE_WP_UNPOPULATED)
		f |= UHMM_FEAT_WP_UNPOPULATED;
	if (uf & UFFD_FEATURE_MINOR_SHMEM)
		f |= UHMM_FEAT_MINOR_SHMEM;
	if ((uf & (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE |
		   UFFD_FEATURE_EVENT_REMAP)) ==
	    (UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP))
		f |= UHMM_FEAT_EVENTS;
	return f;
}

static bool have_pagemap_scan(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	struct pm_scan_arg arg = { .size = sizeof(arg) };
	bool ok;

	if (fd < 0)
		return false;
	/* an empty range is valid where the ioctl exists */
	ok = ioctl(fd, PAGEMAP_SCAN, &arg) >= 0;
	close(fd);
	return ok;
}

/* One mapping's account, in binary (6.11): a query of our own code. */
static bool have_procmap_query(void)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	struct procmap_query q = {
		.size = sizeof(q),
		.query_addr = (uintptr_t)have_procmap_query,
	};
	bool ok;

	if (fd < 0)
		return false;
	ok = !ioctl(fd, PROCMAP_QUERY, &q) && q.vma_start <= q.query_addr &&
	     q.query_addr < q.vma_end;
	close(fd);
	return ok;
}

/* MREMAP_DONTUNMAP of private anonymous (5.7) and shared (5.13) memory. */
static bool have_dontunmap(void)
{
	int fd = memfd_create("uhmm-probe", MFD_CLOEXEC);
	void *a = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	void *s = MAP_FAILED, *m1 = MAP_FAILED, *m2 = MAP_FAILED;
	bool ok;

	if (fd >= 0 && !ftruncate(fd, PAGE_SIZE))
		s = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	/* raw syscalls: glibc 2.36's mremap() refuses DONTUNMAP without FIXED */
	if (a != MAP_FAILED)
		m1 = (void *)syscall(SYS_mremap, a, PAGE_SIZE, PAGE_SIZE,
				     MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	if (s != MAP_FAILED)
		m2 = (void *)syscall(SYS_mremap, s, PAGE_SIZE, PAGE_SIZE,
				     MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
	if ((uintptr_t)m1 > -4096ul)
		m1 = MAP_FAILED;
	if ((uintptr_t)m2 > -4096ul)
		m2 = MAP_FAILED;
	ok = m1 != MAP_FAILED && m2 != MAP_FAILED;
	for (void *p[] = { a, s, m1, m2 }, **q = p; q < p + 4; q++)
		if (*q != MAP_FAILED)
			munmap(*q, PAGE_SIZE);
	if (fd >= 0)
		close(fd);
	return ok;
}

static uint64_t wanted(uint64_t avail, uint64_t off)
{
	uint64_t w = UFFD_FEATURE_EVENT_REMAP | UFFD_FEATURE_EVENT_REMOVE |
		     UFFD_FEATURE_EVENT_UNMAP | UFFD_FEATURE_THREAD_ID |
		     UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_PAGEFAULT_FLAG_WP;

	if (!(off & UHMM_FEAT_MINOR_SHMEM))
		w |= UFFD_FEATURE_MINOR_SHMEM;
	if (!(off & UHMM_FEAT_WP_SHMEM))
		w |= UFFD_FEATURE_WP_HUGETLBFS_SHMEM;
	if (!(off & UHMM_FEAT_WP_UNPOPULATED))
		w |= UFFD_FEATURE_WP_UNPOPULATED;
	if (!(off & UHMM_FEAT_MOVE))
		w |= UFFD_FEATURE_MOVE;
	if (!(off & UHMM_FEAT_POISON))
		w |= UFFD_FEATURE_POISON;
	/* never WP_ASYNC (it would resolve our fences) nor EVENT_FORK */
	return w & avail;
}

/*
 * A second userfaultfd, for events alone: mappings uhmm cannot manage
 * (shared anonymous, shmem, files) registered with it in write-protect
 * mode, which the kernel allows on any memory only with WP_ASYNC (a write
 * to a protected page is resolved by the kernel, and no page is ever
 * protected).  Our own descriptor cannot take WP_ASYNC: its fences need
 * writers to wait.
 */
static int open_events_uffd(struct uhmm *h)
{
	uint64_t need = UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_EVENT_UNMAP |
			UFFD_FEATURE_EVENT_REMOVE | UFFD_FEATURE_EVENT_REMAP;
	uint64_t avail = 0, got = 0;
	int fd = new_uffd(true), r;

	if (fd < 0)
		return fd;
	r = api_handshake(fd, 0, &avail);
	close(fd);
	if (r || (avail & need) != need)
		return r ? r : -ENOTSUP;
	fd = new_uffd(true);
	if (fd < 0)
		return fd;
	r = api_handshake(fd, need, &got);
	if (r) {
		close(fd);
		return r;
	}
	h->uffd_other = fd;
	return 0;
}

int probe_open_uffd(struct uhmm *h)
{
	uint64_t off = probe_disabled(), avail = 0, got = 0, want;
	bool user_only = off & UHMM_FEAT_KERNEL_FAULTS;
	int fd = new_uffd(user_only), r;

	if (fd < 0 && !user_only) {
		user_only = true;
		fd = new_uffd(true);
	}
	if (fd < 0)
		return fd == -EINVAL ? -ENOSYS : fd;
	r = api_handshake(fd, 0, &avail);
	close(fd);
	if (r)
		return r;
	fd = new_uffd(user_only);
	if (fd < 0)
		return fd;
	want = wanted(avail, off);
	if (fault_signal_wanted(h)) {
		if (!(avail & UFFD_FEATURE_SIGBUS)) {
			close(fd);
			return -ENOTSUP;
		}
		want |= UFFD_FEATURE_SIGBUS;
	}
	r = api_handshake(fd, want, &got);
	if (r) {
		close(fd);
		return r;
	}
	h->uffd = fd;
	h->user_mode_only = user_only;
	/* the kernel answers with all it supports: keep what we asked for */
	h->uffd_feat = got & want;
	h->feat = feat_bits(h->uffd_feat, user_only);
	/* with SIGBUS the kernel's own faults are refused, as in user mode */
	if (h->uffd_feat & UFFD_FEATURE_SIGBUS)
		h->feat = (h->feat & ~UHMM_FEAT_KERNEL_FAULTS) | UHMM_FEAT_FAULT_SIGNAL;
	if (!(off & UHMM_FEAT_PAGEMAP_SCAN) && have_pagemap_scan())
		h->feat |= UHMM_FEAT_PAGEMAP_SCAN;
	h->dontunmap = have_dontunmap();
	if (!(off & UHMM_FEAT_REMAP_FENCE) && h->dontunmap)
		h->feat |= UHMM_FEAT_REMAP_FENCE;
	if (!(off & UHMM_FEAT_PROCMAP_QUERY) && have_procmap_query())
		h->feat |= UHMM_FEAT_PROCMAP_QUERY;
	if (!(off & UHMM_FEAT_EVENTS_OTHER) && !open_events_uffd(h))
		h->feat |= UHMM_FEAT_EVENTS_OTHER;
	/* UHMM_DISABLE=wp: migrations fence with remaps, and READ_MOSTLY
	 * makes no duplicates */
	if ((off & UHMM_FEAT_WP) && (h->feat & UHMM_FEAT_REMAP_FENCE))
		h->feat &= ~(UHMM_FEAT_WP | UHMM_FEAT_WP_SHMEM | UHMM_FEAT_WP_UNPOPULATED);
	/* system pages leave the program's range with UFFDIO_MOVE, which
	 * refuses pinned ones (pinned.c) */
	if ((h->feat & UHMM_FEAT_MOVE) && (h->feat & UHMM_FEAT_REMAP_FENCE))
		h->feat |= UHMM_FEAT_PIN_DETECT;
	return 0;
}
