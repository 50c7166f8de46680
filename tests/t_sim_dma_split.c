/* SPDX-License-Identifier: MIT */
/*
 * A long DMA copy of the sim device takes two channels, half each (the
 * caller and uhmm's "uhmm-dma" thread), from 8 MiB on by default, or from
 * UHMM_DMA_SPLIT MiB.  For a PRIVATE and a COHERENT sim device:
 *  - a 24 MiB read of system memory, and a 24 MiB write into it, move
 *    every byte right, and the second channel's thread exists afterwards;
 *  - unaligned at both ends, the halves meet where they should;
 *  - a destination whose upper half lives on a PRIVATE device gets every
 *    byte (the second channel's kernel-mode access faults it back, or the
 *    copy falls back to the bounce buffer where faults are user-mode only);
 *  - four threads read at once (one gets the second channel, the others
 *    copy alone), every byte right;
 *  - split from 1 MiB, a thread munmaps the upper half of an 8 MiB range
 *    while the device reads it in a loop: each read is right or -EFAULT,
 *    and one that starts after the munmap returned is -EFAULT;
 *  - UHMM_DMA_SPLIT=0: the same bytes, and no second channel.
 */
#define _GNU_SOURCE
#include "private.h"

#define LEN	(24 * UT_MiB)
#define NT	4

static bool two_cpus(void)
{
	return sysconf(_SC_NPROCESSORS_ONLN) >= 2;
}

static struct uhmm *open_split(const char *mib)
{
	struct uhmm *h;

	if (mib)
		setenv("UHMM_DMA_SPLIT", mib, 1);
	h = ut_open();
	unsetenv("UHMM_DMA_SPLIT");
	return h;
}

static void test_read_write(struct uhmm_dev *d, const char *kind, bool split)
{
	uint8_t *p = ut_map(LEN), *buf = malloc(LEN);
	int chans = ut_threads_named("uhmm-dma");	/* of the other devices */

	if (!buf)
		tap_bail("malloc");
	ut_fill8(p, LEN, 1);
	memset(buf, 0, LEN);
	is_int(uhmm_sim_read(d, p, buf, LEN), 1, "%s: a 24 MiB read in one fault round", kind);
	ut_ok8(buf, LEN, 1, "the bytes it read");
	memset(buf, 0, LEN);
	is_int(uhmm_sim_read(d, p, buf, LEN), 0, "%s: read again, from its translations", kind);
	ut_ok8(buf, LEN, 1, "the bytes it read again");
	if (!split)
		is_int(ut_threads_named("uhmm-dma"), 0, "%s: no second channel", kind);
	else if (two_cpus())
		is_int(ut_threads_named("uhmm-dma"), chans + 1, "%s: its second channel copied half",
		       kind);
	else
		skip("one CPU: copies are never split");

	ut_fill8(buf, LEN, 2);
	ok(uhmm_sim_write(d, p, buf, LEN) >= 0, "%s: a 24 MiB write", kind);
	ut_ok8(p, LEN, 2, "the bytes it wrote");
	free(buf);
	munmap(p, LEN);
}

static void test_unaligned(struct uhmm_dev *d, const char *kind)
{
	size_t off = 123, len = 17 * UT_MiB + 5;
	uint8_t *p = ut_map(LEN), *buf = malloc(LEN);
	size_t bad;

	if (!buf)
		tap_bail("malloc");
	ut_fill8(p, LEN, 3);
	memset(buf, 0, LEN);
	ok(uhmm_sim_read(d, p + off, buf + 7, len) >= 0, "%s: an unaligned read of 17 MiB", kind);
	bad = ut_chk8(buf + 7, off, len, 3);
	ok(bad == SIZE_MAX, "%s: every byte of it (first bad at %zd)", kind, (ssize_t)bad);
	ok(buf[6] == 0 && buf[7 + len] == 0, "%s: nothing around it", kind);
	free(buf);
	munmap(p, LEN);
}

static void test_dst_on_device(struct uhmm *h, struct uhmm_dev *d, struct uhmm_dev *priv,
			       const char *kind)
{
	uint8_t *p = ut_map(LEN), *dst = ut_map(LEN);

	ut_fill8(p, LEN, 4);
	memset(dst, 0xee, LEN);
	is_int(uhmm_migrate(h, dst + LEN / 2, LEN / 2, priv, 0), 0,
	       "%s: the destination's upper half to the PRIVATE device", kind);
	ok(uhmm_sim_read(d, p, dst, LEN) >= 0, "%s: a read into it", kind);
	ut_ok8(dst, LEN, 4, "every byte landed");
	munmap(p, LEN);
	munmap(dst, LEN);
}

struct reader {
	pthread_t th;
	struct uhmm_dev *d;
	const uint8_t *src;
	int errs;
	size_t bad;
};

static void *read_loop(void *arg)
{
	struct reader *r = arg;
	size_t len = 16 * UT_MiB;
	uint8_t *buf = malloc(len);

	if (!buf) {
		r->errs++;
		return NULL;
	}
	for (unsigned long i = 0; i < ut_scaled(8, 2); i++) {
		memset(buf, 0, len);
		if (uhmm_sim_read(r->d, r->src, buf, len) < 0)
			r->errs++;
		else
			r->bad += ut_check8(buf, len, 5) != SIZE_MAX;
	}
	free(buf);
	return NULL;
}

static void test_threads(struct uhmm_dev *d, const char *kind)
{
	uint8_t *p = ut_map(16 * UT_MiB);
	struct reader r[NT];
	int errs = 0;
	size_t bad = 0;

	ut_fill8(p, 16 * UT_MiB, 5);
	for (int t = 0; t < NT; t++) {
		r[t] = (struct reader){ .d = d, .src = p };
		if (pthread_create(&r[t].th, NULL, read_loop, &r[t]))
			tap_bail("pthread_create");
	}
	for (int t = 0; t < NT; t++) {
		pthread_join(r[t].th, NULL);
		errs += r[t].errs;
		bad += r[t].bad;
	}
	is_int(errs, 0, "%s: %d threads reading 16 MiB at once: no error", kind, NT);
	is_int((long long)bad, 0, "%s: every read right", kind);
	munmap(p, 16 * UT_MiB);
}

static void test_unmap_race(struct uhmm_dev *d, const char *kind)
{
	size_t len = 8 * UT_MiB;
	uint8_t *p = ut_map(len), *buf = malloc(len);
	struct ut_unmapper u = { p, len, 0, 0, 0 };
	int reads = 0, good = 0, efault = 0, wrong = 0, late = 0;
	pthread_t th;

	if (!buf)
		tap_bail("malloc");
	ut_fill8(p, len, 6);
	if (pthread_create(&th, NULL, ut_unmap_upper_half, &u))
		tap_bail("pthread_create");
	for (int i = 0; i < (int)ut_scaled(400, 40) && !late; i++) {
		int after = __atomic_load_n(&u.unmapped, __ATOMIC_SEQ_CST), rc;

		memset(buf, 0, len);
		rc = uhmm_sim_read(d, p, buf, len);
		reads++;
		if (rc >= 0 && !after && ut_check8(buf, len, 6) == SIZE_MAX)
			good++;
		else if (rc == -EFAULT)
			efault++;
		else
			wrong++;
		late = after;
		if (i == 2)
			__atomic_store_n(&u.go, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&u.go, 1, __ATOMIC_SEQ_CST);
	pthread_join(th, NULL);
	is_int(u.rc, 0, "%s: munmap of the upper half", kind);
	ok(good >= 3, "%s: reads before it are right (%d of %d)", kind, good, reads);
	ok(efault >= 1 && late, "%s: a read after it is -EFAULT (%d)", kind, efault);
	is_int(wrong, 0, "%s: no read wrong or stale", kind);
	ut_ok8(p, len / 2, 6, "the lower half kept its bytes");
	free(buf);
	munmap(p, len / 2);
}

static void each_device(struct uhmm *h, const char *mib, bool split)
{
	struct uhmm_dev *priv = ut_psim(h, "dma-p", 64 * UT_MiB);
	struct uhmm_dev *coh = ut_csim_try(h, "dma-c", 64 * UT_MiB);
	struct uhmm_dev *devs[2] = { priv, coh };
	const char *kinds[2] = { "PRIVATE", "COHERENT" };

	for (int i = 0; i < 2; i++) {
		char kind[64];

		if (!devs[i]) {
			skip("no COHERENT sim device here");
			continue;
		}
		snprintf(kind, sizeof(kind), "%s, split %s", kinds[i], mib ? mib : "default");
		test_read_write(devs[i], kind, split);
		if (!split)
			continue;
		test_unaligned(devs[i], kind);
		test_dst_on_device(h, devs[i], priv, kind);
		test_threads(devs[i], kind);
	}
}

int main(void)
{
	struct uhmm *h;

	ut_init(300);
	h = open_split(NULL);
	each_device(h, NULL, true);
	uhmm_close(h);
	is_int(ut_threads_named_settled("uhmm-dma", 0), 0, "uhmm_close ended the second channels");

	h = open_split("1");
	test_unmap_race(ut_psim(h, "race-p", 64 * UT_MiB), "PRIVATE, split 1");
	uhmm_close(h);

	h = open_split("0");
	each_device(h, "0", false);
	uhmm_close(h);
	return tap_done();
}
