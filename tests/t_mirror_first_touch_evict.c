/* SPDX-License-Identifier: MIT */
/*
 * A device fault whose first touch evicts pages of the same range.  The
 * lower half of a buffer is untouched and prefers a COHERENT device; the
 * upper half already fills that device.  One device access over the whole
 * buffer places the lower pages on the device at first touch, which
 * evicts the upper ones to system memory in the middle of the fault: the
 * fault must see that the upper pages moved and keep their data (it once
 * took them for strangers in the device's mapping and zeroed them, found
 * by the stress model as heap damage after a device write).  Reads and
 * writes, through the device and by the CPU afterwards.
 */
#define _GNU_SOURCE
#include "util.h"

#define NPG	16

static void round_trip(struct uhmm *h, bool write)
{
	size_t pg = ut_page(), half = NPG * pg;
	const char *what = write ? "write" : "read";
	struct uhmm_dev *d = NULL;
	uint8_t *p = ut_map(2 * half), *buf = malloc(2 * half);
	int rc;

	if (uhmm_dev_add_sim(h, "small", UHMM_MEM_COHERENT, half, &d)) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		free(buf);
		munmap(p, 2 * half);
		return;
	}
	ut_fill8(p + half, half, 31);
	is_int(uhmm_migrate(h, p + half, half, d, 0), 0, "%s: the upper half fills the device", what);
	is_int(uhmm_advise(h, p, half, UHMM_ADV_PREFERRED_LOCATION, d), 0,
	       "%s: the untouched lower half prefers it", what);
	if (write) {
		/* across the middle: the last lower page (a first touch) and
		 * a few bytes of the first upper page, whose rest must stay */
		memset(buf, 0x5a, 128);
		rc = uhmm_sim_write(d, p + half - 64, buf, 128);
	} else {
		rc = uhmm_sim_read(d, p, buf, 2 * half);
	}
	ok(rc >= 1, "%s: one device access over the whole buffer (%d rounds)", what, rc);
	if (!write) {
		is_int(ut_check_zero(buf, half), SIZE_MAX, "read: the device reads zeros below");
		is_int(ut_check8(buf + half, half, 31), SIZE_MAX,
		       "read: and the upper half's data above");
	}
	if (write) {
		ok(!memcmp(p + half - 64, buf, 128), "write: the device's bytes landed");
		size_t bad = 0;

		for (size_t i = 64; i < half; i++)
			bad += p[half + i] != ut_pat8(31, i);
		is_int(bad, 0, "write: the rest of the upper half's data, wherever it went (CPU)");
	} else {
		is_int(ut_check8(p + half, half, 31), SIZE_MAX,
		       "read: the upper half's data, wherever it went (CPU)");
	}
	munmap(p, 2 * half);
	free(buf);
	uhmm_dev_remove(d);
}

int main(void)
{
	struct uhmm *h;

	ut_init(120);
	h = ut_open();
	round_trip(h, false);
	round_trip(h, true);
	uhmm_close(h);
	return tap_done();
}
