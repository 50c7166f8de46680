/* SPDX-License-Identifier: MIT */
/*
 * CPU writes after a migration land in device memory.  The test is the
 * driver: its own memfd is the COHERENT device (registered with
 * uhmm_dev_add at a non-zero fd_offset), mapped a second time MAP_SHARED
 * as "the device's own view".  After the migration the CPU writes a new
 * pattern through the user pointers; every byte is seen in the device view
 * at the offset uhmm_dev_offset() reports, and the writes cost no CPU fault
 * served by uhmm and no copy.
 */
#define _GNU_SOURCE
#include "util.h"

int main(void)
{
	size_t dsize = 32 * UT_MiB, foff = 2 * UT_MiB, total = dsize + foff;
	size_t len = 8 * UT_MiB + 3 * 4096, n;
	struct uhmm_dev_desc d;
	struct uhmm_stats s0, s1;
	struct uhmm_dev *dev = NULL;
	struct uhmm *h;
	uint8_t *view, *p;
	uint64_t *offs;
	int fd, id, rc;

	ut_init(120);
	h = ut_open();
	n = len / ut_page();
	ut_require_coherent(h);

	fd = memfd_create("uhmm-test-dev", MFD_CLOEXEC);
	if (fd < 0)
		tap_bail("memfd_create: %s", strerror(errno));
	if (ftruncate(fd, (off_t)total))
		tap_bail("ftruncate: %s", strerror(errno));
	if (fallocate(fd, 0, 0, (off_t)total))
		diag("fallocate: %s (going on)", strerror(errno));
	view = mmap(NULL, total, PROT_READ, MAP_SHARED, fd, 0);
	if (view == MAP_FAILED)
		tap_bail("mmap of the device view: %s", strerror(errno));

	memset(&d, 0, sizeof(d));
	d.sz = sizeof(d);
	d.name = "memfd-dev";
	d.kind = UHMM_MEM_COHERENT;
	d.size = dsize;
	d.fd = fd;
	d.fd_offset = foff;
	d.ops = NULL;
	rc = uhmm_dev_add(h, &d, &dev);
	is_int(rc, 0, "uhmm_dev_add of our own memfd (COHERENT, fd_offset 2 MiB)");
	if (rc || !dev)
		tap_bail("cannot go on without the device: %s", ut_err(rc));
	{
		struct uhmm_dev_info in = ut_info(dev);
		id = in.id;
		ok(id >= 1, "device id %d >= 1", id);
		is_int(in.kind, UHMM_MEM_COHERENT, "info.kind COHERENT");
		is_int(in.size, dsize, "info.size");
		ok(!strcmp(in.name, "memfd-dev"), "info.name copied (\"%s\")", in.name);
		is_int(in.used, 0, "info.used 0");
	}

	p = ut_map(len);
	ut_fill64(p, len, 41);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "migrate %zu pages to the device", n);
	ut_check_where(h, p, len, id, "after migration");
	ut_ok64(p, len, 41, "on the device");

	/* Where is each page in the fd? */
	offs = calloc(n, sizeof(*offs));
	{
		size_t bad_loc = 0, bad_align = 0, bad_range = 0, dup = 0, bad_view = 0;
		int loc;
		uint64_t off;

		for (size_t i = 0; i < n; i++) {
			loc = -1000;
			off = UINT64_MAX;
			rc = uhmm_dev_offset(h, p + i * ut_page() + (i % 7) * 3, &loc, &off);
			if (rc || loc != id)
				bad_loc++;
			offs[i] = off;
			if (off % ut_page())
				bad_align++;
			if (off < foff || off >= foff + dsize)
				bad_range++;
			else if (memcmp(view + off, p + i * ut_page(), ut_page()))
				bad_view++;
		}
		is_int(bad_loc, 0, "uhmm_dev_offset: 0 and the device id for every page");
		is_int(bad_align, 0, "every offset page aligned");
		is_int(bad_range, 0, "every offset in [fd_offset, fd_offset + size)");
		is_int(bad_view, 0, "the device view holds each page's migrated bytes at its offset");
		for (size_t i = 0; i < n && !dup; i++)
			for (size_t j = i + 1; j < n; j++)
				if (offs[i] == offs[j]) {
					dup++;
					diag("pages %zu and %zu share offset %" PRIu64, i, j, offs[i]);
					break;
				}
		is_int(dup, 0, "no two pages share an offset");
	}

	/* The CPU writes a new pattern. */
	s0 = ut_stats(h);
	ut_fill64(p, len, 42);
	s1 = ut_stats(h);
	is_int(s1.cpu_faults - s0.cpu_faults, 0, "stats cpu_faults unchanged by the writes");
	is_int(s1.bytes_copied - s0.bytes_copied, 0, "stats bytes_copied unchanged by the writes");
	is_int(s1.pages_to_sys - s0.pages_to_sys, 0, "no page left the device");
	{
		size_t bad = 0, first = SIZE_MAX;
		for (size_t i = 0; i < n; i++) {
			int loc;
			uint64_t off;
			if (uhmm_dev_offset(h, p + i * ut_page(), &loc, &off) || loc != id ||
			    off != offs[i] || off < foff || off >= foff + dsize) {
				if (first == SIZE_MAX)
					first = i;
				bad++;
				continue;
			}
			{
				/* The page's words of pattern 42, read in the view. */
				const uint64_t *w = (const uint64_t *)(const void *)(view + off);
				size_t base = i * ut_page() / 8;
				for (size_t k = 0; k < ut_page() / 8; k++)
					if (w[k] != ut_pat64(42, base + k)) {
						if (first == SIZE_MAX)
							first = i;
						bad++;
						break;
					}
			}
		}
		is_int(bad, 0, "every written byte is in the device view at its offset (offsets stable)");
		if (bad)
			diag("first bad page %zu", first);
	}

	/* The system view of uhmm_dev_offset. */
	{
		uint8_t *q = ut_map(ut_page());
		int loc = -1000;
		uint64_t off = 77;
		q[0] = 1;
		rc = uhmm_dev_offset(h, q, &loc, &off);
		ok(rc == 0 && loc == UHMM_LOC_SYSTEM && off == 0,
		   "uhmm_dev_offset of a system page: SYSTEM, offset 0 (rc %d, loc %d, off %" PRIu64 ")",
		   rc, loc, off);
		munmap(q, ut_page());
		rc = uhmm_dev_offset(h, q, &loc, &off);
		is_int(rc, -EFAULT, "uhmm_dev_offset of an unmapped address: -EFAULT");
	}

	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "migrate back");
	ut_ok64(p, len, 42, "the CPU's writes came back");
	is_int(ut_dev_used(dev), 0, "device used 0 after");

	rc = uhmm_dev_remove(dev);
	is_int(rc, 0, "uhmm_dev_remove");
	/* uhmm kept its own duplicate: ours is still ours. */
	ok(fcntl(fd, F_GETFD) >= 0, "our fd is still open after uhmm_dev_remove");
	free(offs);
	munmap(view, total);
	close(fd);
	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
