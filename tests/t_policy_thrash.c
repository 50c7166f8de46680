/* SPDX-License-Identifier: MIT */
/*
 * Thrashing: the CPU and a device alternately touching one page 1,000
 * times, with access_threshold 1 so that every device access would move
 * the block to the device.  On a PRIVATE device each CPU touch faults the
 * page home: the block bounces, then stays pinned in system memory (both
 * reach it there), counted in thrash_pins, and the bouncing stops; every
 * value read is the one last written.  On a COHERENT device the CPU
 * touches device memory in place: the block moves once and stays.  Two
 * threads doing the same on two pages of one block agree too, and
 * thrash_moves UINT32_MAX never pins.
 */
#define _GNU_SOURCE
#include "private.h"

#define ROUNDS	1000

static struct uhmm *open_policy(uint32_t moves)
{
	struct uhmm_opts o = {
		.sz = sizeof(o), .access_threshold = 1, .thrash_moves = moves,
		.thrash_window_ms = 10000, .thrash_pin_ms = 600000,
	};

	return ut_open_opts(&o);
}

/* ROUNDS of: the device writes i, the CPU checks it and writes i + 1, the
 * device checks that.  Returns the wrong values seen. */
static int ping_pong(struct uhmm_dev *d, volatile uint64_t *w, int rounds, int *errors)
{
	int wrong = 0;

	for (int i = 0; i < rounds; i++) {
		uint64_t v = (uint64_t)i * 2 + 1, got = 0;

		if (uhmm_sim_write(d, (void *)w, &v, sizeof(v)) < 0)
			(*errors)++;
		wrong += *w != v;
		*w = v + 1;
		if (uhmm_sim_read(d, (const void *)w, &got, sizeof(got)) < 0)
			(*errors)++;
		wrong += got != v + 1;
	}
	return wrong;
}

static void private_ends_pinned(void)
{
	struct uhmm *h = open_policy(0);
	struct uhmm_dev *d = ut_psim(h, "private", 16 * UT_MiB);
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
	struct uhmm_stats s0, s1, s2;
	int errors = 0, wrong;

	memset(p, 0, 2 * UT_MiB);
	s0 = ut_stats(h);
	wrong = ping_pong(d, (volatile uint64_t *)(void *)p, ROUNDS, &errors);
	s1 = ut_stats(h);
	is_int(errors, 0, "PRIVATE: %d rounds of device and CPU touches, no error", ROUNDS);
	is_int(wrong, 0, "PRIVATE: every value read was the one last written");
	ok(s1.thrash_pins - s0.thrash_pins >= 1, "PRIVATE: the block was pinned (thrash_pins %llu)",
	   (unsigned long long)(s1.thrash_pins - s0.thrash_pins));
	ok(s1.auto_migrations - s0.auto_migrations < (uint64_t)ROUNDS * 512 / 4,
	   "PRIVATE: the bouncing stopped early (%llu pages auto-migrated in %d rounds)",
	   (unsigned long long)(s1.auto_migrations - s0.auto_migrations), ROUNDS);
	ut_check_where(h, p, ut_page(), UHMM_LOC_SYSTEM, "it ends in system memory");
	/* pinned: more rounds move nothing */
	wrong = ping_pong(d, (volatile uint64_t *)(void *)p, 50, &errors);
	s2 = ut_stats(h);
	is_int(wrong + errors, 0, "PRIVATE: 50 more rounds, right");
	is_int(s2.auto_migrations - s1.auto_migrations, 0, "PRIVATE: ... and no migration");
	is_int(s2.cpu_faults - s1.cpu_faults, 0, "PRIVATE: ... and no CPU fault");
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
}

static void never_pins(void)
{
	struct uhmm *h = open_policy(UINT32_MAX);
	struct uhmm_dev *d = ut_psim(h, "private", 16 * UT_MiB);
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
	int errors = 0, wrong;

	memset(p, 0, 2 * UT_MiB);
	wrong = ping_pong(d, (volatile uint64_t *)(void *)p, 100, &errors);
	is_int(wrong + errors, 0, "thrash_moves UINT32_MAX: 100 rounds right");
	is_int(ut_stats(h).thrash_pins, 0, "thrash_moves UINT32_MAX: never pinned");
	ok(ut_stats(h).auto_migrations >= 100, "... and it kept bouncing");
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
}

static void coherent_stays(void)
{
	struct uhmm *h = open_policy(0);
	struct uhmm_dev *d = ut_csim_try(h, "coherent", 16 * UT_MiB);
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
	struct uhmm_stats s0, s1;
	int errors = 0, wrong;

	if (!d) {
		skip("COHERENT devices need userfaultfd minor faults on shmem");
		goto out;
	}
	memset(p, 0, 2 * UT_MiB);
	/* the whole block ours to place: the counters move what uhmm
	 * manages, beside the word the device touches */
	is_int(uhmm_migrate(h, p, 2 * UT_MiB, NULL, 0), 0, "COHERENT: the block handed to uhmm");
	s0 = ut_stats(h);
	wrong = ping_pong(d, (volatile uint64_t *)(void *)p, ROUNDS, &errors);
	s1 = ut_stats(h);
	is_int(wrong + errors, 0, "COHERENT: %d rounds right", ROUNDS);
	ut_check_where(h, p, 2 * UT_MiB, ut_dev_id(d), "COHERENT: moved to the device once");
	is_int(s1.pages_to_sys - s0.pages_to_sys, 0, "COHERENT: the CPU's touches brought nothing back");
	is_int(s1.thrash_pins - s0.thrash_pins, 0, "COHERENT: nothing thrashed");
out:
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
}

struct player {
	struct uhmm_dev *d;
	volatile uint64_t *w;
	int wrong, errors;
};

static void *play(void *arg)
{
	struct player *pl = arg;

	pl->wrong = ping_pong(pl->d, pl->w, ROUNDS / 4, &pl->errors);
	return NULL;
}

static void two_threads(void)
{
	struct uhmm *h = open_policy(0);
	struct uhmm_dev *d = ut_psim(h, "private", 16 * UT_MiB);
	uint8_t *p = ut_map_aligned(2 * UT_MiB, 2 * UT_MiB);
	struct player pl[2];
	pthread_t t[2];

	memset(p, 0, 2 * UT_MiB);
	for (int i = 0; i < 2; i++) {
		pl[i] = (struct player){ d, (volatile uint64_t *)(void *)(p + (size_t)(i * 7 + 1) *
									     ut_page()), 0, 0 };
		pthread_create(&t[i], NULL, play, &pl[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	is_int(pl[0].wrong + pl[1].wrong + pl[0].errors + pl[1].errors, 0,
	       "two threads ping-ponging two pages of one block: every value right");
	munmap(p, 2 * UT_MiB);
	uhmm_close(h);
}

int main(void)
{
	ut_init(600);
	private_ends_pinned();
	never_pins();
	coherent_stays();
	two_threads();
	return tap_done();
}
