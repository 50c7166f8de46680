/* SPDX-License-Identifier: MIT */
/*
 * Bad PRIVATE device descriptions are refused with -EINVAL and register
 * nothing: ops NULL, copy_to_dev or copy_from_dev missing, fd other than
 * -1, size 0 or not a page multiple (also through uhmm_dev_add_sim); a
 * uhmm_dev_ops with unknown non-zero bytes past what the library knows is
 * -E2BIG.  A good description registers a device that uhmm_dev_info
 * describes (PRIVATE, size, nothing used, page granule).  mlocked memory
 * cannot go to a PRIVATE device (-EBUSY, nothing moved, checked with a
 * driver that keeps the data).
 */
#define _GNU_SOURCE
#include "private.h"

static int copy_to(void *drv, uint64_t off, const void *src, size_t len)
{
	(void)drv; (void)off; (void)src; (void)len;
	return 0;
}

static int copy_from(void *drv, void *dst, uint64_t off, size_t len)
{
	(void)drv; (void)off;
	memset(dst, 0, len);
	return 0;
}

static struct uhmm_dev_desc desc(const struct uhmm_dev_ops *ops, int fd, size_t size)
{
	struct uhmm_dev_desc d;

	memset(&d, 0, sizeof(d));
	d.sz = sizeof(d);
	d.name = "bad";
	d.kind = UHMM_MEM_PRIVATE;
	d.size = size;
	d.fd = fd;
	d.ops = ops;
	return d;
}

static struct uhmm *h;

static void refused(const struct uhmm_dev_desc *d, int want, const char *what)
{
	struct uhmm_dev *out = NULL;
	int rc = uhmm_dev_add(h, d, &out);

	if (!ok_errno(rc, want, "%s", what))
		diag("got %d (%s)", rc, ut_err(rc));
	ok(out == NULL, "%s: no device handed out", what);
	if (rc == 0 && out)
		uhmm_dev_remove(out);
}

int main(void)
{
	struct uhmm_dev_ops ops = { .sz = sizeof(ops), .copy_to_dev = copy_to,
				    .copy_from_dev = copy_from };
	struct uhmm_dev_ops no_to = ops, no_from = ops;
	struct uhmm_dev_desc d;
	struct uhmm_dev *dev = NULL, *out = NULL;
	struct tdrv td;
	size_t pg, size = 16 * UT_MiB;
	int fd, rc;

	ut_init(60);
	pg = ut_page();
	h = ut_open();
	no_to.copy_to_dev = NULL;
	no_from.copy_from_dev = NULL;

	d = desc(NULL, -1, size);
	refused(&d, -EINVAL, "PRIVATE with ops NULL");
	d = desc(&no_to, -1, size);
	refused(&d, -EINVAL, "PRIVATE without copy_to_dev");
	d = desc(&no_from, -1, size);
	refused(&d, -EINVAL, "PRIVATE without copy_from_dev");
	fd = (int)syscall(SYS_memfd_create, "uhmm-test", 0);
	if (fd >= 0 && ftruncate(fd, (off_t)size) == 0) {
		d = desc(&ops, fd, size);
		refused(&d, -EINVAL, "PRIVATE with an fd (a memfd of the right size)");
	} else {
		skip("memfd_create: %s", strerror(errno));
	}
	d = desc(&ops, 0, size);
	refused(&d, -EINVAL, "PRIVATE with fd 0");
	d = desc(&ops, -2, size);
	refused(&d, -EINVAL, "PRIVATE with fd -2");
	d = desc(&ops, -1, 0);
	refused(&d, -EINVAL, "PRIVATE of size 0");
	d = desc(&ops, -1, size + 1);
	refused(&d, -EINVAL, "PRIVATE of a size that is not a page multiple");
	d = desc(&ops, -1, pg / 2);
	refused(&d, -EINVAL, "PRIVATE of half a page");
	{
		struct {
			struct uhmm_dev_ops o;
			uint64_t tail[4];
		} big;
		memset(&big, 0, sizeof(big));
		big.o = ops;
		big.o.sz = sizeof(big);
		big.tail[2] = 1;
		d = desc(&big.o, -1, size);
		refused(&d, -E2BIG, "PRIVATE ops with unknown non-zero bytes past the struct");
	}
	rc = uhmm_dev_add_sim(h, "psim", UHMM_MEM_PRIVATE, 0, &out);
	is_int(rc, -EINVAL, "uhmm_dev_add_sim(PRIVATE, size 0): -EINVAL");
	rc = uhmm_dev_add_sim(h, "psim", UHMM_MEM_PRIVATE, size + 100, &out);
	is_int(rc, -EINVAL, "uhmm_dev_add_sim(PRIVATE, not a page multiple): -EINVAL");
	ok(out == NULL, "no sim device handed out");
	rc = uhmm_dev_add(NULL, &d, &out);
	is_int(rc, -EINVAL, "uhmm_dev_add(NULL context): -EINVAL");

	/* A good one, after all the bad ones. */
	d = desc(&ops, -1, size);
	d.name = "good";
	rc = uhmm_dev_add(h, &d, &dev);
	is_int(rc, 0, "a good PRIVATE description registers");
	if (rc == 0 && dev) {
		struct uhmm_dev_info in = ut_info(dev);
		ok(in.id >= 1, "its id is %d (>= 1)", in.id);
		is_int(in.kind, UHMM_MEM_PRIVATE, "uhmm_dev_info kind PRIVATE");
		is_int(in.size, size, "uhmm_dev_info size");
		is_int(in.used, 0, "uhmm_dev_info used 0");
		is_int(in.granule, pg, "uhmm_dev_info granule = page");
		ok(!strcmp(in.name, "good"), "uhmm_dev_info name '%s'", in.name);
	}
	if (fd >= 0)
		close(fd);

	/* mlocked memory does not go to a PRIVATE device. */
	{
		size_t ml = 4 * pg;
		uint8_t *p = ut_map(ml);
		struct uhmm_migrate_res res = { .sz = sizeof(res) };
		struct uhmm_dev *tdev = tdrv_add(h, &td, "tdrv", 4 * UT_MiB, 1);

		ut_fill64(p, ml, 150);
		if (mlock(p, ml)) {
			skip("mlock of 4 pages: %s", strerror(errno));
		} else if (ut_status_kb("VmLck") < (long)(ml / 1024)) {
			/* The sanitizers' mlock interceptor locks nothing. */
			skip("mlock returned 0 but VmLck is %ld kB: nothing locked (a sanitizer?)",
			     ut_status_kb("VmLck"));
			munlock(p, ml);
		} else {
			rc = uhmm_migrate_ex(h, p, ml, tdev, 0, &res);
			is_int(rc, -EBUSY, "mlocked memory to a PRIVATE device: -EBUSY");
			is_int(res.moved, 0, "mlocked: res.moved 0");
			ut_check_unmoved(h, p, ml, "mlocked");
			ut_ok64(p, ml, 150, "mlocked: the data");
			munlock(p, ml);
		}
		munmap(p, ml);
	}

	if (dev)
		is_int(uhmm_dev_remove(dev), 0, "the good device removed");
	uhmm_close(h);
	tdrv_check_contract(&td, "test driver", 0);
	tdrv_free(&td);
	return tap_done();
}
