/* SPDX-License-Identifier: MIT */
/*
 * madvise(MADV_DONTNEED) on memory living on a PRIVATE device keeps the
 * promise of private anonymous memory: right after madvise returns, the
 * pages read as zeros (the device's copy must not come back), their device
 * memory is freed, the rest of the range is untouched and still on the
 * device.  Also on a range partly faulted back, and with the pages written
 * again afterwards and sent through the device once more.
 */
#define _GNU_SOURCE
#include "private.h"

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 8 * UT_MiB, pg;
	uint8_t *p;
	int id, rc;

	ut_init(120);
	pg = ut_page();
	h = ut_open();
	dev = ut_psim(h, "psim", 32 * UT_MiB);
	id = ut_dev_id(dev);

	p = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill64(p, len, 101);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "8 MiB to the device");
	is_int(ut_dev_used(dev), len, "device used = 8 MiB");

	/* 2 MiB + 3 pages from 1 MiB + 1 page: not aligned to any window. */
	{
		size_t off = UT_MiB + pg, dl = 2 * UT_MiB + 3 * pg;
		size_t used1;

		ok(madvise(p + off, dl, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) on 2 MiB + 3 pages");
		used1 = ut_dev_used(dev);
		is_int(used1, len - dl, "device used dropped by exactly those pages");
		ut_check_where(h, p, off, id, "the part before: still on the device");
		ut_check_where(h, p + off + dl, len - off - dl, id, "the part after: still on the device");
		ut_okzero(p + off, dl, "the DONTNEED'd part reads as zeros");
		ut_ok64(p, off, 101, "the part before");
		{
			size_t bad = 0;
			const uint64_t *w = (const uint64_t *)(const void *)(p + off + dl);
			for (size_t k = 0; k < (len - off - dl) / 8; k++)
				bad += w[k] != ut_pat64(101, (off + dl) / 8 + k);
			is_int(bad, 0, "the part after");
		}
		/* Written again, through the device and back. */
		memset(p + off, 0x5c, dl);
		rc = uhmm_migrate(h, p, len, dev, 0);
		is_int(rc, 0, "the whole range to the device again");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "and back");
		{
			size_t bad = 0;
			for (size_t i = off; i < off + dl; i++)
				bad += p[i] != 0x5c;
			is_int(bad, 0, "the part written after DONTNEED kept its new bytes");
		}
	}

	/* A range partly faulted back, then DONTNEED over all of it. */
	ut_fill64(p, len, 102);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "the range, rewritten, to the device");
	ut_ok64(p, len / 4, 102, "a quarter read back by the CPU");
	ok(madvise(p, len, MADV_DONTNEED) == 0, "madvise(MADV_DONTNEED) on the whole range");
	is_int(ut_dev_used(dev), 0, "device used 0");
	ut_okzero(p, len, "the whole range reads as zeros");

	/* Each page alone, many times: DONTNEED of single device pages. */
	ut_fill64(p, len, 103);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "the range once more to the device");
	{
		size_t bad = 0, n = len / pg;
		for (size_t i = 0; i < n; i += 7)
			if (madvise(p + i * pg, pg, MADV_DONTNEED))
				bad++;
		is_int(bad, 0, "madvise(MADV_DONTNEED) of every 7th page, one call each");
		is_int(ut_dev_used(dev), len - ((n + 6) / 7) * pg, "device used dropped by those pages");
		bad = 0;
		for (size_t i = 0; i < n; i++) {
			const uint64_t *w = (const uint64_t *)(const void *)(p + i * pg);
			for (size_t k = 0; k < pg / 8; k++)
				bad += w[k] != (i % 7 ? ut_pat64(103, i * (pg / 8) + k) : 0);
		}
		is_int(bad, 0, "those pages read as zeros, the others as before");
	}

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
