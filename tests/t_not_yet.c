/* SPDX-License-Identifier: MIT */
/*
 * The functions of later issues are declared and return -ENOSYS in this
 * release (one assertion per function); the NULL conventions of the mirror functions hold.  Nothing they
 * are handed changes.
 */
#define _GNU_SOURCE
#include "util.h"

static void inval(struct uhmm_mirror *m, uintptr_t s, uintptr_t e, enum uhmm_event ev)
{
	(void)m; (void)s; (void)e; (void)ev;
}

#define NOSYS(call, name) do {						\
	int rc_ = (call);						\
	if (!ok(rc_ == -ENOSYS, "%s: -ENOSYS (not yet)", name))		\
		diag("got %d (%s)", rc_, ut_err(rc_));			\
} while (0)

/* Functions whose only handle argument is a mirror, which cannot exist
 * yet: NULL is all we can pass; -ENOSYS or the NULL-handle -EINVAL. */
#define NOSYS_OR_INVAL(call, name) do {					\
	int rc_ = (call);						\
	if (!ok(rc_ == -ENOSYS || rc_ == -EINVAL,			\
		"%s (no mirror can exist yet, NULL handle): -ENOSYS or -EINVAL", name)) \
		diag("got %d (%s)", rc_, ut_err(rc_));			\
} while (0)

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *dev;
	size_t len = 16 * ut_page();
	uint8_t *p;
	int rc;

	ut_init(60);
	h = ut_open();
	dev = ut_sim(h, "sim", 16 * UT_MiB);
	p = ut_map(len);
	ut_fill64(p, len, 111);

	{
		/* mirrors exist now (t_mirror_*); what builds on them does not */
		struct uhmm_mirror_ops ops = { .sz = sizeof(ops), .invalidate = inval };
		struct uhmm_mirror *m = NULL;

		rc = uhmm_mirror_open(dev, &ops, NULL, &m);
		if (!ok(rc == 0 && m, "uhmm_mirror_open works"))
			diag("got %d (%s)", rc, ut_err(rc));
		NOSYS(uhmm_make_exclusive(m, p, len), "uhmm_make_exclusive");
		uhmm_mirror_close(m);
	}
	is_int(sizeof(struct uhmm_pte), 24, "struct uhmm_pte is 24 bytes (frozen)");
	/* The NULL conventions of API.md hold already. */
	uhmm_mirror_close(NULL);
	ok(1, "uhmm_mirror_close(NULL) does nothing");
	is_int(uhmm_mirror_read_begin(NULL), 0, "uhmm_mirror_read_begin(NULL) returns 0");
	ok(uhmm_mirror_read_retry(NULL, 0) == true, "uhmm_mirror_read_retry(NULL, s) returns true");

	/* Nothing the calls were handed changed. */
	ut_check_unmoved(h, p, len, "the range handed to the not-yet functions");
	ut_ok64(p, len, 111, "its data");
	is_int(ut_dev_used(dev), 0, "the device is empty");

	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
