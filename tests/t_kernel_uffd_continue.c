/* SPDX-License-Identifier: MIT */
/*
 * The kernel's answers to UFFDIO_CONTINUE that the undo of a migration
 * relies on (batch.c, still_emptied): after the library emptied a range
 * with mremap(MREMAP_DONTUNMAP), is the mapping there still the one it
 * emptied, or one the program put there since?  No library call here:
 * raw userfaultfd, so that a kernel that answers otherwise fails this
 * test rather than losing a program's data in an undo.
 *  - a range registered with no descriptor: ENOENT;
 *  - a range registered (MISSING) as private anonymous memory: EINVAL
 *    (CONTINUE is for shared memory's minor faults);
 *  - the source of mremap(MREMAP_DONTUNMAP) of a registered range stays
 *    registered: EINVAL, not ENOENT;
 *  - a new mapping placed over it (mmap MAP_FIXED) is not: ENOENT.
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include "util.h"

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static int open_uffd(void)
{
	struct uffdio_api api = { .api = UFFD_API };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -errno;
	/* no event features: nothing here waits for a reader */
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

static int do_register(int fd, void *p, size_t len)
{
	struct uffdio_register r = {
		.range = { (uintptr_t)p, len }, .mode = UFFDIO_REGISTER_MODE_MISSING,
	};

	return ioctl(fd, UFFDIO_REGISTER, &r) ? -errno : 0;
}

/* UFFDIO_CONTINUE of one page: 0 or -errno.  Checked with ok(), not as a
 * bad input of ours: these are the kernel's answers. */
static int cont(int fd, void *p)
{
	struct uffdio_continue c = { .range = { (uintptr_t)p, ut_page() } };

	return ioctl(fd, UFFDIO_CONTINUE, &c) ? -errno : 0;
}

static void saw(int got, int want, const char *what)
{
	ok(got == want, "%s (got %s)", what, got ? strerror(-got) : "0");
}

int main(void)
{
	size_t len = 16 * ut_page();
	uint8_t *a, *b, *q;
	int fd, why = 0;

	ut_init(60);
	if (!ut_uffd_usable(&why)) {
		skip("userfaultfd unusable here (%s)", strerror(why));
		return tap_done();
	}
	fd = open_uffd();
	if (fd < 0)
		tap_bail("userfaultfd: %s", strerror(-fd));
	a = ut_map(len);
	b = ut_map(len);
	memset(a, 0x5a, len);

	saw(cont(fd, a), -ENOENT, "a range registered with no descriptor: ENOENT");
	is_int(do_register(fd, a, len), 0, "register a private anonymous range (MISSING)");
	saw(cont(fd, a), -EINVAL, "a registered private anonymous range: EINVAL");

	q = mremap(a, len, len, MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP, b);
	ok(q == b, "mremap(MREMAP_DONTUNMAP) away (%s)", q == b ? "moved" : strerror(errno));
	ok(b[0] == 0x5a && b[len - 1] == 0x5a, "the data went with it");
	saw(cont(fd, a), -EINVAL, "the emptied source stays registered: EINVAL");

	q = mmap(a, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	ok(q == (void *)a, "a new mapping over the source");
	saw(cont(fd, a), -ENOENT, "the new mapping is not registered: ENOENT");

	munmap(a, len);
	munmap(b, len);
	close(fd);
	return tap_done();
}
