/* SPDX-License-Identifier: MIT */
/*
 * uhmm_dev_add_file with a tmpfs file (/dev/shm): an empty file is
 * extended to the size asked; size 0 takes the whole file; memory migrates
 * to it and back with every byte checked, and the file itself holds the
 * pages' bytes at the offsets uhmm_dev_offset reports.
 */
#define _GNU_SOURCE
#include <sys/stat.h>
#include <sys/vfs.h>
#include "util.h"

#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

static int make_file(char *path, size_t cap)
{
	int fd;

	snprintf(path, cap, "/dev/shm/uhmm-test-XXXXXX");
	fd = mkstemp(path);
	return fd;
}

int main(void)
{
	char path[64], path2[64];
	struct uhmm *h;
	struct uhmm_dev *dev = NULL, *dev2 = NULL;
	struct statfs sfs;
	struct stat st;
	size_t dsize = 16 * UT_MiB, len = 8 * UT_MiB + 5 * 4096;
	uint8_t *p;
	int fd, fd2, id, rc;

	ut_init(120);
	h = ut_open();
	ut_require_coherent(h);
	if (statfs("/dev/shm", &sfs) || sfs.f_type != TMPFS_MAGIC) {
		skip("/dev/shm is not a tmpfs here");
		uhmm_close(h);
		return tap_done();
	}
	fd = make_file(path, sizeof(path));
	if (fd < 0) {
		skip("cannot create a file in /dev/shm (%s)", strerror(errno));
		uhmm_close(h);
		return tap_done();
	}

	rc = uhmm_dev_add_file(h, path, dsize, &dev);
	is_int(rc, 0, "uhmm_dev_add_file(%s, 16 MiB) of an empty file", path);
	if (rc || !dev) {
		unlink(path);
		tap_bail("no device: %s", ut_err(rc));
	}
	ok(fstat(fd, &st) == 0 && (size_t)st.st_size >= dsize, "the file was extended to 16 MiB (%lld)",
	   (long long)st.st_size);
	{
		struct uhmm_dev_info in = ut_info(dev);
		id = in.id;
		is_int(in.kind, UHMM_MEM_COHERENT, "a file device is COHERENT");
		is_int(in.size, dsize, "info.size");
		ok(in.granule == ut_page(), "tmpfs granule is a page (%zu)", in.granule);
	}

	p = ut_map(len);
	ut_fill64(p, len, 211);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "migrate to the file device");
	ut_check_where(h, p, len, id, "on the file device");
	ut_ok64(p, len, 211, "on the file device");
	ut_fill64(p, len, 212);
	{
		/* The file holds the bytes the CPU wrote. */
		size_t bad = 0;
		uint8_t *buf = malloc(ut_page());
		for (size_t i = 0; i < len / ut_page(); i++) {
			int loc;
			uint64_t off;
			if (uhmm_dev_offset(h, p + i * ut_page(), &loc, &off) || loc != id ||
			    pread(fd, buf, ut_page(), (off_t)off) != (ssize_t)ut_page() ||
			    memcmp(buf, p + i * ut_page(), ut_page()))
				bad++;
		}
		is_int(bad, 0, "pread of the file at each page's offset gives the page's bytes");
		free(buf);
	}
	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "back to system memory");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "back");
	ut_ok64(p, len, 212, "back");

	/* size 0: the whole file. */
	fd2 = make_file(path2, sizeof(path2));
	if (fd2 < 0 || ftruncate(fd2, (off_t)(8 * UT_MiB))) {
		skip("second file: %s", strerror(errno));
	} else {
		rc = uhmm_dev_add_file(h, path2, 0, &dev2);
		is_int(rc, 0, "uhmm_dev_add_file(size 0) of an 8 MiB file");
		if (!rc) {
			is_int(ut_info(dev2).size, 8 * UT_MiB, "takes the whole file");
			rc = uhmm_migrate(h, p, 4 * UT_MiB, dev2, 0);
			is_int(rc, 0, "migrate 4 MiB to it");
			ut_ok64(p, len, 212, "data");
			is_int(uhmm_dev_remove(dev2), 0, "uhmm_dev_remove brings it back");
			ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "after remove");
			ut_ok64(p, len, 212, "after remove");
		}
	}
	if (fd2 >= 0) {
		close(fd2);
		unlink(path2);
	}

	{
		struct uhmm_dev *d3 = NULL;
		rc = uhmm_dev_add_file(h, "/dev/shm/uhmm-test-does-not-exist/x", dsize, &d3);
		ok(rc < 0, "a path that cannot exist: an error (%d, %s)", rc, ut_err(rc));
	}

	is_int(uhmm_dev_remove(dev), 0, "uhmm_dev_remove of the first file device");
	ut_ok64(p, len, 212, "data at the end");
	munmap(p, len);
	close(fd);
	unlink(path);
	uhmm_close(h);
	return tap_done();
}
