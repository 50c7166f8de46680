/* SPDX-License-Identifier: MIT */
/*
 * The sz convention on boundary structs: sz = 0 means the v1 layout; sz =
 * sizeof works; a larger struct with a zero tail works and the tail stays
 * zero; a non-zero tail is -E2BIG; a smaller sz is honoured: the library
 * writes no byte past it.  For uhmm_stats, uhmm_dev_stats, uhmm_dev_info,
 * uhmm_migrate_res (outputs) and uhmm_opts, uhmm_dev_desc (inputs).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include "util.h"

#define GUARD 0xCC

/* Output struct `T` filled by `call(ptr)`: the five cases. */
#define OUT_CASES(T, name, call_expr, ptrname, check_field)			\
do {										\
	union { T s; unsigned char b[sizeof(T) + 64]; uint64_t al; } u_;	\
	T *ptrname;								\
	int rc_;								\
	size_t bad_;								\
	/* sz = 0: v1 */							\
	memset(&u_, 0, sizeof(u_));						\
	ptrname = &u_.s;							\
	ptrname->sz = 0;							\
	rc_ = (call_expr);							\
	is_int(rc_, 0, "%s: sz = 0 (v1 layout) works", name);			\
	ok(check_field, "%s: sz = 0 filled it", name);				\
	/* sz = sizeof */							\
	memset(&u_, 0, sizeof(u_));						\
	ptrname->sz = sizeof(T);						\
	rc_ = (call_expr);							\
	is_int(rc_, 0, "%s: sz = sizeof works", name);				\
	ok(check_field, "%s: sz = sizeof filled it", name);			\
	/* larger, zero tail */							\
	memset(&u_, 0, sizeof(u_));						\
	ptrname->sz = sizeof(u_.b);						\
	rc_ = (call_expr);							\
	is_int(rc_, 0, "%s: sz larger with a zero tail works", name);		\
	bad_ = 0;								\
	for (size_t k_ = sizeof(T); k_ < sizeof(u_.b); k_++)			\
		bad_ += u_.b[k_] != 0;						\
	is_int(bad_, 0, "%s: the zero tail stays zero", name);			\
	/* larger, non-zero tail */						\
	memset(&u_, 0, sizeof(u_));						\
	ptrname->sz = sizeof(u_.b);						\
	u_.b[sizeof(u_.b) - 3] = 1;						\
	rc_ = (call_expr);							\
	is_int(rc_, -E2BIG, "%s: sz larger with a non-zero tail: -E2BIG", name); \
	/* smaller: 8 (just sz), then up to the middle of the struct */	\
	for (size_t cut_ = sizeof(size_t); cut_ < sizeof(T); cut_ += sizeof(T) / 2) { \
		memset(&u_, GUARD, sizeof(u_));					\
		ptrname->sz = cut_;						\
		rc_ = (call_expr);						\
		bad_ = 0;							\
		for (size_t k_ = cut_; k_ < sizeof(u_.b); k_++)			\
			bad_ += u_.b[k_] != GUARD;				\
		is_int(rc_, 0, "%s: sz = %zu (smaller than v1) is accepted", name, cut_); \
		is_int(bad_, 0, "%s: sz = %zu: no byte written past sz", name, cut_); \
		is_int(ptrname->sz, cut_, "%s: sz = %zu: sz itself untouched", name, cut_); \
	}									\
} while (0)

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 64 * ut_page();
	uint8_t *p;
	int id;

	ut_init(60);
	h = ut_open();
	dev = ut_sim(h, "sim-sz", 16 * UT_MiB);
	id = ut_dev_id(dev);
	p = ut_map(len);
	ut_fill64(p, len, 201);
	if (uhmm_migrate(h, p, len, dev, 0))
		tap_bail("migrate");

	OUT_CASES(struct uhmm_stats, "uhmm_stats", uhmm_stats(h, st), st, st->pages_to_dev >= 64);
	OUT_CASES(struct uhmm_stats, "uhmm_dev_stats", uhmm_dev_stats(dev, st), st, st->pages_to_dev >= 64);
	OUT_CASES(struct uhmm_dev_info, "uhmm_dev_info", uhmm_dev_info(dev, in), in,
		  in->id == id && in->size == 16 * UT_MiB && !strcmp(in->name, "sim-sz"));
	/* uhmm_migrate_ex: the pages are already there, so moved 0, already 64. */
	OUT_CASES(struct uhmm_migrate_res, "uhmm_migrate_res", uhmm_migrate_ex(h, p, len, dev, 0, r), r,
		  r->already == 64 && r->moved == 0);

	/* Inputs: uhmm_opts. */
	{
		union { struct uhmm_opts o; unsigned char b[sizeof(struct uhmm_opts) + 32]; uint64_t al; } u;
		struct uhmm *h2 = NULL;
		int rc;

		memset(&u, 0, sizeof(u));
		rc = uhmm_open(&h2, &u.o);
		is_int(rc, 0, "uhmm_opts: sz = 0 (v1) works");
		if (!rc)
			uhmm_close(h2);
		memset(&u, 0, sizeof(u));
		u.o.sz = sizeof(u.o);
		u.o.fault_threads = 2;
		rc = uhmm_open(&h2, &u.o);
		is_int(rc, 0, "uhmm_opts: sz = sizeof works");
		if (!rc)
			uhmm_close(h2);
		memset(&u, 0, sizeof(u));
		u.o.sz = sizeof(u.b);
		rc = uhmm_open(&h2, &u.o);
		is_int(rc, 0, "uhmm_opts: sz larger with a zero tail works");
		if (!rc)
			uhmm_close(h2);
		u.b[sizeof(u.b) - 1] = 9;
		rc = uhmm_open(&h2, &u.o);
		is_int(rc, -E2BIG, "uhmm_opts: sz larger with a non-zero tail: -E2BIG");
		if (!rc)
			uhmm_close(h2);
		/* sz covering only `sz` and fault_around: the rest (garbage past
		 * sz) is not read, so the defaults apply. */
		memset(&u, 0xff, sizeof(u));
		u.o.sz = offsetof(struct uhmm_opts, fault_threads);
		u.o.fault_around = 0;
		rc = uhmm_open(&h2, &u.o);
		is_int(rc, 0, "uhmm_opts: sz shorter than v1 with garbage past it works (nothing past sz read)");
		if (!rc)
			uhmm_close(h2);
	}

	/* Inputs: uhmm_dev_desc. */
	{
		union { struct uhmm_dev_desc d; unsigned char b[sizeof(struct uhmm_dev_desc) + 32]; uint64_t al; } u;
		struct uhmm_dev *d2 = NULL;
		int fd = memfd_create("uhmm-sz", MFD_CLOEXEC), rc;

		if (fd < 0 || ftruncate(fd, (off_t)(4 * UT_MiB)))
			tap_bail("memfd");
		memset(&u, 0, sizeof(u));
		u.d.sz = 0;
		u.d.name = "v1";
		u.d.kind = UHMM_MEM_COHERENT;
		u.d.size = 4 * UT_MiB;
		u.d.fd = fd;
		rc = uhmm_dev_add(h, &u.d, &d2);
		is_int(rc, 0, "uhmm_dev_desc: sz = 0 (v1) works");
		if (!rc)
			uhmm_dev_remove(d2);
		u.d.sz = sizeof(u.d);
		rc = uhmm_dev_add(h, &u.d, &d2);
		is_int(rc, 0, "uhmm_dev_desc: sz = sizeof works");
		if (!rc)
			uhmm_dev_remove(d2);
		u.d.sz = sizeof(u.b);
		rc = uhmm_dev_add(h, &u.d, &d2);
		is_int(rc, 0, "uhmm_dev_desc: sz larger with a zero tail works");
		if (!rc)
			uhmm_dev_remove(d2);
		u.b[sizeof(u.b) - 1] = 1;
		rc = uhmm_dev_add(h, &u.d, &d2);
		is_int(rc, -E2BIG, "uhmm_dev_desc: sz larger with a non-zero tail: -E2BIG");
		if (!rc)
			uhmm_dev_remove(d2);
		close(fd);
	}

	/* A v1 caller's designated initialisers, sz left 0. */
	{
		struct uhmm_stats st = { .pages_to_dev = 0 };
		struct uhmm_dev_info in = { .id = 0 };
		struct uhmm_migrate_res r = { .moved = 0 };
		is_int(uhmm_stats(h, &st), 0, "{ .field = x } uhmm_stats works");
		is_int(uhmm_dev_info(dev, &in), 0, "{ .field = x } uhmm_dev_info works");
		is_int(in.id, id, "and fills the id");
		is_int(uhmm_migrate_ex(h, p, len, NULL, 0, &r), 0, "{ .field = x } uhmm_migrate_res works");
		is_int(r.moved, 64, "and counts the pages moved");
	}

	ut_ok64(p, len, 201, "data at the end");
	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
