/* SPDX-License-Identifier: MIT */
/*
 * A fault window across two mappings: migrations (and mprotect, and
 * mremap) split a range's mappings at any page, and the aligned window a
 * CPU fault on device-private memory brings home may then straddle two
 * of them, which one userfaultfd call cannot fill.  The faulting page must
 * still come home (it used to fault forever).  Every page is read back
 * from the device after splits at unaligned pages, by one thread and by
 * four.
 */
#define _GNU_SOURCE
#include "private.h"

#define LEN	(2 * UT_MiB)

struct rd {
	const uint8_t *p;
	size_t from, to;
	size_t bad;
};

static void *read_part(void *arg)
{
	struct rd *r = arg;

	for (size_t off = r->from; off < r->to; off += ut_page())
		r->bad += ut_check64(r->p + off, ut_page(), 1 + (unsigned)(off / ut_page())) != SIZE_MAX;
	return NULL;
}

/* A range on the private device whose mappings were split at unaligned
 * pages: by a trip through a COHERENT device (its pages come home as new
 * mappings) where there is one, and by mprotect. */
static uint8_t *split_range(struct uhmm *h, struct uhmm_dev *d, struct uhmm_dev *c)
{
	uint8_t *p = ut_map_aligned(LEN, 2 * UT_MiB);

	for (size_t off = 0; off < LEN; off += ut_page())
		ut_fill64(p + off, ut_page(), 1 + (unsigned)(off / ut_page()));
	for (size_t pg = 5; c && pg < LEN / ut_page(); pg += 37) {
		uhmm_migrate(h, p + pg * ut_page(), 7 * ut_page(), c, 0);
		uhmm_migrate(h, p + pg * ut_page(), 7 * ut_page(), NULL, 0);
	}
	for (size_t pg = 23; pg < LEN / ut_page(); pg += 41)
		mprotect(p + pg * ut_page(), ut_page(), PROT_READ);
	is_int(uhmm_migrate(h, p, LEN, d, 0), 0, "migrate 2 MiB to the private device");
	ok(ut_maps_count(p, LEN) > 4, "the range is %ld mappings now", ut_maps_count(p, LEN));
	ut_check_where(h, p, LEN, ut_dev_id(d), "all of it on the device");
	return p;
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *d, *c;
	struct rd r[4];
	pthread_t t[4];
	uint8_t *p;

	ut_init(120);
	h = ut_open();
	d = ut_psim(h, "private", 16 * UT_MiB);
	c = ut_csim_try(h, "coherent", 16 * UT_MiB);
	if (!c)
		diag("no COHERENT device here: the splits come from mprotect alone");

	p = split_range(h, d, c);
	r[0] = (struct rd){ p, 0, LEN, 0 };
	read_part(&r[0]);
	is_int(r[0].bad, 0, "one thread: every page read back across the splits");
	munmap(p, LEN);

	p = split_range(h, d, c);
	for (int i = 0; i < 4; i++) {
		r[i] = (struct rd){ p, (size_t)i * LEN / 4, (size_t)(i + 1) * LEN / 4, 0 };
		pthread_create(&t[i], NULL, read_part, &r[i]);
	}
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	is_int(r[0].bad + r[1].bad + r[2].bad + r[3].bad, 0, "four threads: every page read back");
	munmap(p, LEN);
	uhmm_close(h);
	return tap_done();
}
