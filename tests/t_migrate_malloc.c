/* SPDX-License-Identifier: MIT */
/*
 * A malloc'd buffer at an odd address and of an odd length migrates to a
 * simulated COHERENT device and back, every byte checked; the bytes that
 * share its first and last pages but lie outside it (malloc's chunk header,
 * neighbouring allocations) are unchanged.  Done for a large block (its own
 * mmap'd chunk) and for a small block on the brk heap between neighbours.
 */
#define _GNU_SOURCE
#include "util.h"

/* The edge bytes lie outside the allocation (malloc's header, a
 * sanitizer's redzones): read them without ASan's checks, byte by byte
 * through volatile so that no intercepted memcpy/memcmp is used. */
#if defined(__SANITIZE_ADDRESS__) || defined(__clang__)
#define NO_ASAN __attribute__((no_sanitize_address))
#else
#define NO_ASAN
#endif

NO_ASAN static void raw_copy(uint8_t *dst, const uint8_t *src, size_t n)
{
	const volatile uint8_t *s = src;
	for (size_t i = 0; i < n; i++)
		dst[i] = s[i];
}

NO_ASAN static int raw_same(const uint8_t *copy, const uint8_t *mem, size_t n)
{
	const volatile uint8_t *m = mem;
	for (size_t i = 0; i < n; i++)
		if (copy[i] != m[i])
			return 0;
	return 1;
}

struct edge {
	uint8_t *lo_start;	/* page start .. buffer start */
	size_t lo_len;
	uint8_t *hi_start;	/* buffer end .. page end     */
	size_t hi_len;
	uint8_t *lo_copy, *hi_copy;
};

static void edge_save(struct edge *e, uint8_t *buf, size_t len)
{
	e->lo_start = (uint8_t *)ut_pg_down(buf);
	e->lo_len = (size_t)(buf - e->lo_start);
	e->hi_start = buf + len;
	e->hi_len = ut_pg_up((uintptr_t)buf + len) - (uintptr_t)(buf + len);
	e->lo_copy = malloc(e->lo_len + 1);
	e->hi_copy = malloc(e->hi_len + 1);
	raw_copy(e->lo_copy, e->lo_start, e->lo_len);
	raw_copy(e->hi_copy, e->hi_start, e->hi_len);
}

static void edge_check(const struct edge *e, const char *what)
{
	ok(raw_same(e->lo_copy, e->lo_start, e->lo_len),
	   "%s: the %zu bytes before the buffer in its first page unchanged", what, e->lo_len);
	ok(raw_same(e->hi_copy, e->hi_start, e->hi_len),
	   "%s: the %zu bytes after the buffer in its last page unchanged", what, e->hi_len);
}

/* edges: check the bytes outside the buffer in its first and last pages
 * (only where nothing else allocates there during the test: the heap's
 * top chunk moves when this test mallocs). */
static void one(struct uhmm *h, struct uhmm_dev *dev, int id, uint8_t *buf, size_t len,
		unsigned seed, const char *what, int edges)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	struct edge e;
	char w[128];
	size_t n = ut_npages(buf, len);
	int rc;

	ut_fill8(buf, len, seed);
	edge_save(&e, buf, len);
	diag("%s: %zu bytes at %p, %zu pages", what, len, (void *)buf, n);

	rc = uhmm_migrate_ex(h, buf, len, dev, 0, &res);
	is_int(rc, 0, "%s: uhmm_migrate_ex to the device", what);
	if (rc)
		diag("%s", ut_err(rc));
	is_int(res.moved + res.already, n, "%s: moved + already = pages overlapping", what);
	snprintf(w, sizeof(w), "%s on the device", what);
	ut_check_where(h, buf, len, id, w);
	ut_ok8(buf, len, seed, w);
	if (edges)
		edge_check(&e, w);

	rc = uhmm_migrate_ex(h, buf, len, NULL, 0, &res);
	is_int(rc, 0, "%s: uhmm_migrate_ex back to system memory", what);
	is_int(res.moved, n, "%s: every page moved back", what);
	snprintf(w, sizeof(w), "%s back in system memory", what);
	ut_check_where(h, buf, len, UHMM_LOC_SYSTEM, w);
	ut_ok8(buf, len, seed, w);
	if (edges)
		edge_check(&e, w);

	/* Still ordinary memory: write a new pattern, read it back. */
	ut_fill8(buf, len, seed + 1);
	snprintf(w, sizeof(w), "%s rewritten after the round trip", what);
	ut_ok8(buf, len, seed + 1, w);
	free(e.lo_copy);
	free(e.hi_copy);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	int id;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 16 * UT_MiB);
	id = ut_dev_id(dev);
	ok(id >= 1, "device id %d >= 1", id);

	/* A large block: glibc gives it its own mmap'd chunk. */
	{
		size_t len = 3 * UT_MiB + 123;
		uint8_t *raw = malloc(len + 64);
		if (!raw)
			tap_bail("malloc");
		one(h, dev, id, raw + 13, len, 7, "malloc(3 MiB + 123) + 13", 1);
		free(raw);
	}

	/* A small block on the heap, between neighbours that stay in use. */
	{
		size_t len = 100 * 1024 + 7;
		uint8_t *before = malloc(5000);
		uint8_t *raw = malloc(len + 16);
		uint8_t *after = malloc(5000);
		if (!before || !raw || !after)
			tap_bail("malloc");
		ut_fill8(before, 5000, 91);
		ut_fill8(after, 5000, 92);
		one(h, dev, id, raw + 5, len, 33, "malloc(100 KiB + 7) + 5", 0);
		ut_ok8(before, 5000, 91, "the heap neighbour before");
		ut_ok8(after, 5000, 92, "the heap neighbour after");
		free(after);
		free(raw);
		free(before);
	}

	/* A buffer inside one page. */
	{
		uint8_t *before = malloc(64), *raw = malloc(300), *after = malloc(64);
		if (!before || !raw || !after)
			tap_bail("malloc");
		ut_fill8(before, 64, 93);
		ut_fill8(after, 64, 94);
		one(h, dev, id, raw + 3, 200, 55, "malloc(300) + 3, 200 bytes", 0);
		ut_ok8(before, 64, 93, "the small neighbour before");
		ut_ok8(after, 64, 94, "the small neighbour after");
		free(after);
		free(raw);
		free(before);
	}

	uhmm_close(h);
	return tap_done();
}
