/* SPDX-License-Identifier: MIT */
/*
 * Hazard 8 (ARCHITECTURE.md): memory uhmm cannot manage is refused
 * clearly and nothing moves: hugetlb (-EINVAL), the main thread's stack
 * (-EINVAL), mseal'd memory (-EPERM), memory registered with another
 * userfaultfd (-EBUSY), including only its last page, and accepted once
 * unregistered.  mlock'd memory to a COHERENT device is allowed (only
 * PRIVATE devices refuse it).
 */
#define _GNU_SOURCE
#include <linux/userfaultfd.h>
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

static void refused(void *p, size_t len, int want, const char *what)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	int rc = uhmm_migrate_ex(h, p, len, dev, 0, &res);

	if (!ok_errno(rc, want, "%s", what))
		diag("got %d (%s)", rc, ut_err(rc));
	is_int(res.moved, 0, "%s: res.moved 0", what);
	ut_check_unmoved(h, p, len, what);
}

static int my_uffd(void)
{
	struct uffdio_api api;
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
	if (fd < 0)
		return -1;
	memset(&api, 0, sizeof(api));
	api.api = UFFD_API;
	if (ioctl(fd, UFFDIO_API, &api)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int uffd_reg(int fd, void *p, size_t len, int on)
{
	if (on) {
		struct uffdio_register reg;
		memset(&reg, 0, sizeof(reg));
		reg.range.start = (uintptr_t)p;
		reg.range.len = len;
		reg.mode = UFFDIO_REGISTER_MODE_MISSING;
		return ioctl(fd, UFFDIO_REGISTER, &reg);
	} else {
		struct uffdio_range r = { .start = (uintptr_t)p, .len = len };
		return ioctl(fd, UFFDIO_UNREGISTER, &r);
	}
}

int main(void)
{
	size_t pg;
	int rc;

	ut_init(120);
	pg = ut_page();
	h = ut_open();
	dev = ut_sim(h, "sim", 32 * UT_MiB);
	id = ut_dev_id(dev);

	/* hugetlb */
	{
		uint8_t *q = mmap(NULL, 2 * UT_MiB, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (q == MAP_FAILED) {
			skip("no hugetlb pages to map here (%s): vm.nr_hugepages is 0 or hugetlb is off",
			     strerror(errno));
		} else {
			memset(q, 1, 2 * UT_MiB);
			refused(q, 2 * UT_MiB, -EINVAL, "hugetlb memory");
			refused(q + pg, pg, -EINVAL, "one page of hugetlb memory");
			munmap(q, 2 * UT_MiB);
		}
	}

	/* the main thread's stack */
	{
		volatile char here[3 * 4096];
		uintptr_t lo = 0, hi = 0;
		FILE *f = fopen("/proc/self/maps", "r");
		char line[512];
		here[0] = 1;
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long a, b;
			if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &a, &b) == 2) {
				lo = a;
				hi = b;
			}
		}
		if (f)
			fclose(f);
		if (!hi) {
			skip("no [stack] in /proc/self/maps");
		} else {
			refused((void *)(hi - 2 * pg), 2 * pg, -EINVAL, "the main thread's stack (top)");
			if ((uintptr_t)here >= lo && (uintptr_t)here < hi)
				refused((void *)here, sizeof(here), -EINVAL, "a local array of main");
			else
				skip("locals are not on the main stack here (sanitizer fake stack)");
		}
	}

	/* mlock'd memory to a COHERENT device: allowed */
	{
		size_t l = UT_MiB;
		uint8_t *q = ut_map(l);
		ut_fill64(q, l, 161);
		if (mlock(q, l)) {
			skip("mlock of 1 MiB failed here (%s)", strerror(errno));
		} else {
			rc = uhmm_migrate(h, q, l, dev, 0);
			is_int(rc, 0, "mlock'd memory to a COHERENT device is allowed");
			ut_check_where(h, q, l, id, "mlock'd memory");
			ut_ok64(q, l, 161, "mlock'd memory on the device");
			rc = uhmm_migrate(h, q, l, NULL, 0);
			is_int(rc, 0, "and back");
			ut_ok64(q, l, 161, "mlock'd memory back");
			munlock(q, l);
		}
		munmap(q, l);
	}

	/* mseal'd memory */
	{
		uint8_t *q = ut_map(4 * pg);
		ut_fill64(q, 4 * pg, 162);
		if (syscall(SYS_mseal, q + 2 * pg, 2 * pg, 0)) {
			skip("mseal is not available (%s)", strerror(errno));
		} else {
			refused(q + 2 * pg, 2 * pg, -EPERM, "mseal'd memory");
			refused(q, 4 * pg, -EPERM, "ordinary pages followed by mseal'd ones");
			ut_ok64(q, 4 * pg, 162, "their data");
		}
	}

	/* memory registered with another userfaultfd */
	{
		size_t l = 16 * pg;
		uint8_t *q = ut_map(l);
		int fd;

		ut_fill64(q, l, 163);	/* populated: our uffd never gets a fault */
		fd = my_uffd();
		if (fd < 0) {
			skip("cannot create a userfaultfd of our own (%s)", strerror(errno));
		} else if (uffd_reg(fd, q + 12 * pg, 4 * pg, 1)) {
			skip("UFFDIO_REGISTER failed (%s)", strerror(errno));
			close(fd);
		} else {
			refused(q + 12 * pg, 4 * pg, -EBUSY, "memory registered with our own userfaultfd");
			refused(q, l, -EBUSY, "a range whose last pages are registered with it");
			ut_ok64(q, l, 163, "its data");
			ok(uffd_reg(fd, q + 12 * pg, 4 * pg, 0) == 0, "unregistered");
			rc = uhmm_migrate(h, q, l, dev, 0);
			is_int(rc, 0, "then uhmm migrates it");
			ut_check_where(h, q, l, id, "after unregistering");
			ut_ok64(q, l, 163, "on the device");
			is_int(uhmm_migrate(h, q, l, NULL, 0), 0, "and back");
			close(fd);
		}
		munmap(q, l);
	}

	/* memory another context manages */
	{
		struct uhmm *h2 = ut_open();
		size_t l = 16 * pg;
		uint8_t *q = ut_map(l);
		ut_fill64(q, l, 164);
		rc = uhmm_migrate(h2, q, l, ut_sim(h2, "other", 8 * UT_MiB), 0);
		is_int(rc, 0, "another context migrates a range");
		{
			struct uhmm_migrate_res res = { .sz = sizeof(res) };
			rc = uhmm_migrate_ex(h, q, l, dev, 0, &res);
			is_int(rc, -EBUSY, "a range another context has on its device: -EBUSY");
			is_int(res.moved, 0, "res.moved 0");
			is_int(ut_dev_used(dev), 0, "nothing on our device");
		}
		ut_ok64(q, l, 164, "its data");
		uhmm_close(h2);
		rc = uhmm_migrate(h, q, l, dev, 0);
		is_int(rc, 0, "after that context closed, ours migrates it");
		ut_ok64(q, l, 164, "its data on our device");
		is_int(uhmm_migrate(h, q, l, NULL, 0), 0, "and back");
		munmap(q, l);
	}

	is_int(ut_dev_used(dev), 0, "our device is empty at the end");
	uhmm_close(h);
	return tap_done();
}
