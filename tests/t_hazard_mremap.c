/* SPDX-License-Identifier: MIT */
/*
 * Hazard 2 (ARCHITECTURE.md): mremap growth of a device-backed mapping
 * would map the next offsets of the device file, another range's data.
 * uhmm promises that pages past the old end read as zeros.  Two ranges on
 * the device; the first grown with mremap (moving or in place, and after
 * a shrink); realloc of a migrated large malloc block.  The old part keeps
 * its data; the grown part never shows another range's (or stale) data.
 */
#define _GNU_SOURCE
#include "util.h"

static struct uhmm *h;
static struct uhmm_dev *dev;
static int id;

/* Words in [p, p+len) that carry the seed of one of our patterns (top 16
 * bits 141..149): data of some range leaking where zeros are due. */
static size_t leaked_words(const void *p, size_t len, size_t *zero_words)
{
	const uint64_t *w = p;
	size_t n = 0, z = 0;

	for (size_t k = 0; k < len / 8; k++) {
		unsigned top = (unsigned)(w[k] >> 48);
		if (!w[k])
			z++;
		else if (top >= 141 && top <= 149)
			n++;
	}
	if (zero_words)
		*zero_words = z;
	return n;
}

struct tail {
	uint8_t *p;
	size_t len;
};

static void child_tail(void *arg)
{
	struct tail *t = arg;

	if (ut_check_zero(t->p, t->len) != SIZE_MAX || leaked_words(t->p, t->len, NULL))
		_exit(2);
	memset(t->p, 0x5a, t->len);	/* must reach no one else's memory */
}

int main(void)
{
	size_t len = 4 * UT_MiB;
	uint8_t *a, *b, *a2;
	int rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 128 * UT_MiB);
	id = ut_dev_id(dev);

	a = ut_map_aligned(len, 2 * UT_MiB);
	b = ut_map_aligned(len, 2 * UT_MiB);
	ut_fill64(a, len, 141);
	ut_fill64(b, len, 142);
	is_int(uhmm_migrate(h, a, len, dev, 0), 0, "range A to the device");
	is_int(uhmm_migrate(h, b, len, dev, 0), 0, "range B to the device");
	ut_check_where(h, a, len, id, "A");

	/* Grow A to twice its size, wherever the kernel puts it. */
	a2 = mremap(a, len, 2 * len, MREMAP_MAYMOVE);
	ok(a2 != MAP_FAILED, "mremap grows A from 4 to 8 MiB (%s)", a2 == a ? "in place" : "moved");
	if (a2 == MAP_FAILED)
		tap_bail("mremap: %s", strerror(errno));
	/* a fork before anything touched the tail: the child must not get
	 * the device's file there (B's data, and B's pages to write to) */
	{
		struct tail t = { a2 + len, len };

		rc = ut_child(child_tail, &t);
		is_int(rc, 0, "fork child: the grown tail reads zeros (not another range's data)");
		ut_ok64(b, len, 142, "B after the child wrote A's tail");
	}
	ut_ok64(a2, len, 141, "A's old part after growth");
	ut_okzero(a2 + len, len, "A's grown tail");
	{
		size_t z;
		is_int(leaked_words(a2 + len, len, &z), 0, "no word of any range's data in the grown tail");
	}
	ut_ok64(b, len, 142, "B after A grew");
	ut_fill64(a2, 2 * len, 143);	/* the whole grown mapping is usable */
	ut_ok64(a2, 2 * len, 143, "A rewritten whole");
	ut_ok64(b, len, 142, "B after A was rewritten");
	rc = uhmm_migrate(h, a2, 2 * len, dev, 0);
	is_int(rc, 0, "the grown A to the device");
	ut_check_where(h, a2, 2 * len, id, "grown A");
	ut_ok64(a2, 2 * len, 143, "grown A on the device");

	/* Shrink in place, then grow back in place: the regrown part must be
	 * zeros, not A's old bytes still sitting in the device file. */
	{
		uint8_t *r = mremap(a2, 2 * len, len, 0);
		ok(r == a2, "mremap shrinks A to 4 MiB in place");
		r = mremap(a2, len, 2 * len, 0);
		if (r == MAP_FAILED) {
			/* Something was mapped right after it meanwhile. */
			r = mremap(a2, len, 2 * len, MREMAP_MAYMOVE);
			diag("could not grow in place (%s); moved", strerror(errno));
		}
		ok(r != MAP_FAILED, "mremap grows it back to 8 MiB");
		if (r == MAP_FAILED)
			tap_bail("mremap");
		a2 = r;
		ut_ok64(a2, len, 143, "the kept half");
		ut_okzero(a2 + len, len, "the regrown half (was A's data before the shrink)");
		is_int(leaked_words(a2 + len, len, NULL), 0, "no word of any range's data in it");
	}

	/* A moved (not grown) keeps its data and placement. */
	{
		uint8_t *dst = ut_map(2 * len);
		uint8_t *r;
		ut_fill64(a2, 2 * len, 144);
		rc = uhmm_migrate(h, a2, 2 * len, dev, 0);
		is_int(rc, 0, "A to the device again");
		long lines = ut_maps_count(a2, 2 * len);
		r = mremap(a2, 2 * len, 2 * len, MREMAP_MAYMOVE | MREMAP_FIXED, dst);
		if (r == MAP_FAILED) {
			/* Documented in uhmm.h: device runs that are not
			 * contiguous in device memory are separate mappings,
			 * and mremap across mappings is EFAULT, as for any
			 * anonymous range split in two. */
			ok(errno == EFAULT && lines > 1,
			   "mremap across %ld device mappings: EFAULT (documented), not %s",
			   lines, strerror(errno));
			ut_ok64(a2, 2 * len, 144, "A after the refused mremap");
			munmap(dst, 2 * len);
		} else {
			ok(1, "mremap moves the 8 MiB of A elsewhere (%ld mappings)", lines);
			ut_ok64(dst, 2 * len, 144, "A after the move");
			ut_check_where(h, dst, 2 * len, id, "A after the move: still on the device");
			rc = uhmm_migrate(h, dst, 2 * len, NULL, 0);
			is_int(rc, 0, "A back from its new address");
			ut_ok64(dst, 2 * len, 144, "A back in system memory");
			a2 = dst;
		}
	}
	ut_ok64(b, len, 142, "B at the end");
	munmap(a2, 2 * len);

	/* realloc of a migrated large malloc block (glibc: mremap of the chunk). */
	{
		size_t s0 = 4 * UT_MiB, s1 = 16 * UT_MiB;
		uint8_t *x = malloc(s0), *y = malloc(s0), *x2;
		size_t z = 0, leak;
		if (!x || !y)
			tap_bail("malloc");
		ut_fill64(x, s0, 145);
		ut_fill64(y, s0, 146);
		is_int(uhmm_migrate(h, x, s0, dev, 0), 0, "malloc(4 MiB) block to the device");
		is_int(uhmm_migrate(h, y, s0, dev, 0), 0, "another malloc(4 MiB) block to the device");
		x2 = realloc(x, s1);
		ok(x2 != NULL, "realloc to 16 MiB");
		if (!x2)
			tap_bail("realloc");
		ut_ok64(x2, s0, 145, "realloc'd block: the first 4 MiB");
		leak = leaked_words(x2 + s0, s1 - s0, &z);
		is_int(leak, 0, "realloc'd block: no word of any range's data in the new 12 MiB");
		diag("new part: %zu of %zu words zero", z, (s1 - s0) / 8);
		ut_ok64(y, s0, 146, "the other block");
		ut_fill64(x2, s1, 147);
		ut_ok64(x2, s1, 147, "realloc'd block rewritten");
		ut_ok64(y, s0, 146, "the other block after that");

		/* And once more, with the grown block on the device. */
		is_int(uhmm_migrate(h, x2, s1, dev, 0), 0, "16 MiB block to the device");
		x = realloc(x2, 2 * s1);
		ok(x != NULL, "realloc to 32 MiB");
		if (!x)
			tap_bail("realloc");
		ut_ok64(x, s1, 147, "realloc'd again: the first 16 MiB");
		is_int(leaked_words(x + s1, s1, NULL), 0, "realloc'd again: no leaked word in the new 16 MiB");
		free(x);
		ut_ok64(y, s0, 146, "the other block at the end");
		free(y);
	}

	/* A move of a range that is several mappings (a middle part on the
	 * device): refused with EFAULT, and since Linux 6.17 (which moves
	 * several mappings one at a time) only after the first has moved.
	 * Either way every page is where the kernel says, with its data, and
	 * uhmm knows where it went. */
	{
		size_t pg = ut_page(), n = 16 * pg, moved = 0;
		uint8_t *a = ut_map(n), *d, *q;
		long c;

		ut_fill64(a, n, 148);
		is_int(uhmm_migrate(h, a + 4 * pg, 4 * pg, dev, 0), 0, "pages 4-7 of 16 to the device");
		d = mmap(NULL, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		q = mremap(a, n, n, MREMAP_MAYMOVE | MREMAP_FIXED, d);
		ok(q == MAP_FAILED && errno == EFAULT,
		   "mremap(MREMAP_FIXED) of the three mappings: EFAULT (%s)",
		   q == MAP_FAILED ? strerror(errno) : "it moved");
		while (moved < n && msync(a + moved, pg, MS_ASYNC))
			moved += pg;
		diag("the kernel moved the first %zu pages before it refused", moved / pg);
		ok(moved == 0 || moved == 4 * pg, "what moved is the first mapping, or nothing (%zu pages)",
		   moved / pg);
		if (moved) {
			c = ut_where_count(h, d, moved, UHMM_LOC_SYSTEM);
			is_int(c, (long)(moved / pg), "uhmm_where: the moved pages are system pages at their new address");
			ut_ok64(d, moved, 148, "the moved pages, at their new address");
			is_int(uhmm_migrate(h, d, moved, dev, 0), 0, "the moved pages go to the device from there");
			ut_ok64(d, moved, 148, "the moved pages, on the device");
		}
		c = ut_where_count(h, a + 4 * pg, 4 * pg, id);
		is_int(c, 4, "uhmm_where: pages 4-7 still on the device, where they were");
		{
			size_t bad = 0;
			const uint64_t *w = (const uint64_t *)(const void *)(a + moved);

			for (size_t k = 0; k < (n - moved) / 8; k++)
				bad += w[k] != ut_pat64(148, moved / 8 + k);
			is_int(bad, 0, "the pages that did not move hold their data");
		}
		munmap(d, n);
		munmap(a, n);
	}

	uhmm_close(h);
	return tap_done();
}
