/* SPDX-License-Identifier: MIT */
/*
 * A read-only range stays read-only on the device: filled, mprotect'ed
 * PROT_READ, migrated; the data reads back; a write in a forked child dies
 * with SIGSEGV; /proc/self/maps shows no 'w' for it; the same after the
 * migration back.  An untouched read-only range migrates too and reads as
 * zeros.
 */
#define _GNU_SOURCE
#include "util.h"

static void write_one(void *arg)
{
	volatile uint8_t *p = arg;
	p[0] = 0x5a;
}

static void check_ro(struct uhmm *h, uint8_t *p, size_t len, unsigned seed, const char *what)
{
	struct ut_maps_acc m = ut_maps_summary(p, len);
	int sig;

	ut_ok64(p, len, seed, what);
	ok(m.lines >= 1 && m.with_w == 0, "%s: /proc/self/maps shows no 'w' (%ld lines)", what, m.lines);
	if (m.with_w)
		diag("a mapping in the range has perms %s", m.first_perms);
	sig = ut_child(write_one, p + len / 2);
	is_int(sig, SIGSEGV, "%s: a write in a child dies with SIGSEGV", what);
	sig = ut_child(write_one, p);
	is_int(sig, SIGSEGV, "%s: a write to the first page in a child dies with SIGSEGV", what);
	ut_ok64(p, len, seed, "after the children's writes");
	(void)h;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 4 * UT_MiB;
	uint8_t *p, *z;
	int id, rc;

	ut_init(120);
	h = ut_open();
	dev = ut_sim(h, "sim", 16 * UT_MiB);
	id = ut_dev_id(dev);

	p = ut_map(len);
	ut_fill64(p, len, 21);
	if (mprotect(p, len, PROT_READ))
		tap_bail("mprotect: %s", strerror(errno));
	check_ro(h, p, len, 21, "read-only, before migration");

	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, 0, "migrate the read-only range to the device");
	ut_check_where(h, p, len, id, "read-only range");
	check_ro(h, p, len, 21, "read-only on the device");

	rc = uhmm_migrate(h, p, len, NULL, 0);
	is_int(rc, 0, "migrate it back");
	ut_check_where(h, p, len, UHMM_LOC_SYSTEM, "read-only range back");
	check_ro(h, p, len, 21, "read-only back in system memory");

	/* Device to device keeps it read-only too. */
	{
		struct uhmm_dev *d2 = ut_sim(h, "sim2", 16 * UT_MiB);
		rc = uhmm_migrate(h, p, len, dev, 0);
		is_int(rc, 0, "to the first device again");
		rc = uhmm_migrate(h, p, len, d2, 0);
		is_int(rc, 0, "to the second device");
		ut_check_where(h, p, len, ut_dev_id(d2), "read-only range");
		check_ro(h, p, len, 21, "read-only on the second device");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "back again");
	}

	/* mprotect back to read-write works as for ordinary memory. */
	ok(mprotect(p, len, PROT_READ | PROT_WRITE) == 0, "mprotect read-write afterwards");
	ut_fill64(p, len, 22);
	ut_ok64(p, len, 22, "rewritten after mprotect");

	/* Untouched read-only memory. */
	z = ut_map(len);
	mprotect(z, len, PROT_READ);
	rc = uhmm_migrate(h, z, len, dev, 0);
	is_int(rc, 0, "migrate an untouched read-only range");
	ut_check_where(h, z, len, id, "untouched read-only range");
	ut_okzero(z, len, "untouched read-only range on the device");
	is_int(ut_child(write_one, z + 8192), SIGSEGV, "a write to it in a child dies with SIGSEGV");
	{
		struct ut_maps_acc m = ut_maps_summary(z, len);
		ok(m.lines >= 1 && m.with_w == 0, "its maps lines have no 'w'");
	}
	rc = uhmm_migrate(h, z, len, NULL, 0);
	is_int(rc, 0, "and back");
	ut_okzero(z, len, "untouched read-only range back");

	munmap(p, len);
	munmap(z, len);
	uhmm_close(h);
	return tap_done();
}
