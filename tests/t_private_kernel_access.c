/* SPDX-License-Identifier: MIT */
/*
 * Kernel-mode access to memory living on a PRIVATE device (API.md,
 * "Kernel-mode access"): where uhmm_features reports
 * UHMM_FEAT_KERNEL_FAULTS, write(pipe, p, n) from a buffer on the device
 * and read(pipe, p, n) into one work like user accesses (the bytes are
 * right, the pages touched come back to system memory, the bytes of the
 * read buffer's pages outside [p, p+n) are kept), and so does a futex
 * wait on a word there.  Otherwise (UFFD_USER_MODE_ONLY) each of them
 * fails with EFAULT and the data is intact afterwards.  Both modes are
 * tried: the context as this process gets it, then one opened with
 * UHMM_DISABLE=kernel_faults added.
 */
#define _GNU_SOURCE
#include <linux/futex.h>
#include "private.h"

#ifndef F_SETPIPE_SZ
#define F_SETPIPE_SZ 1031
#endif

static size_t pipe_cap(int fd)
{
	long r = fcntl(fd, F_SETPIPE_SZ, 1 << 20);

	return r > 0 ? (size_t)r : 65536;
}

static size_t pipe_avail(int fd)
{
	int n = 0;

	if (ioctl(fd, FIONREAD, &n) < 0)
		return SIZE_MAX;
	return (size_t)n;
}

static void drain(int fd)
{
	static uint8_t sink[65536];
	size_t left = pipe_avail(fd);

	while (left && left != SIZE_MAX) {
		ssize_t r = read(fd, sink, left < sizeof(sink) ? left : sizeof(sink));
		if (r <= 0)
			break;
		left -= (size_t)r;
	}
}

static void run(struct uhmm *h, const char *mode)
{
	struct uhmm_dev *dev = ut_psim(h, "psim", 32 * UT_MiB);
	int id = ut_dev_id(dev), pfd[2], rc;
	uint64_t feat = ut_feats(h);
	int kf = !!(feat & UHMM_FEAT_KERNEL_FAULTS);
	size_t len = 2 * UT_MiB, cap, n, off_src = 100, off_dst = 77;
	uint8_t *src = ut_map(len), *dst = ut_map(len), *sink;
	uint32_t *fw;
	ssize_t r;
	int e;
	char w[160];

	diag("---- %s: features 0x%" PRIx64 ", KERNEL_FAULTS %s ----", mode, feat, kf ? "yes" : "no");
	if (pipe(pfd))
		tap_bail("pipe: %s", strerror(errno));
	cap = pipe_cap(pfd[1]);
	n = cap - 4096 - 5;	/* fits the pipe: write() does not block */
	if (n > len - off_src - 4096)
		n = len - off_src - 4096;
	sink = malloc(n);
	if (!sink)
		tap_bail("malloc");

	ut_fill8(src, len, 31);
	ut_fill8(dst, len, 32);
	rc = uhmm_migrate(h, src, len, dev, 0);
	is_int(rc, 0, "%s: source buffer to the device", mode);
	rc = uhmm_migrate(h, dst, len, dev, 0);
	is_int(rc, 0, "%s: destination buffer to the device", mode);
	snprintf(w, sizeof(w), "%s: both buffers", mode);
	ut_check_where(h, src, len, id, w);
	ut_check_where(h, dst, len, id, w);

	/* ---- write(pipe, buffer on the device) ---- */
	errno = 0;
	r = write(pfd[1], src + off_src, n);
	e = errno;
	if (kf) {
		is_int(r, (long long)n, "%s: write(pipe, p, %zu) from a buffer on the device", mode, n);
		if (r < 0)
			diag("errno %d (%s)", e, strerror(e));
		if (r == (ssize_t)n) {
			size_t got = 0;
			while (got < n) {
				ssize_t k = read(pfd[0], sink + got, n - got);
				if (k <= 0)
					break;
				got += (size_t)k;
			}
			is_int(got, n, "%s: the pipe holds what was written", mode);
			ok(ut_chk8(sink, off_src, n, 31) == SIZE_MAX,
			   "%s: the bytes that went through the pipe are the buffer's", mode);
			snprintf(w, sizeof(w), "%s: the pages the kernel read", mode);
			ut_check_where(h, src + off_src, n, UHMM_LOC_SYSTEM, w);
		}
	} else {
		ok(r == -1 && e == EFAULT, "%s: write(pipe, p, n) from a buffer on the device fails "
		   "with EFAULT (got %zd, errno %d %s)", mode, r, e, strerror(e));
		is_int(pipe_avail(pfd[0]), 0, "%s: nothing reached the pipe", mode);
	}
	drain(pfd[0]);
	snprintf(w, sizeof(w), "%s: the source buffer afterwards", mode);
	ut_ok8(src, len, 31, w);

	/* ---- read(pipe, buffer on the device) ---- */
	ut_fill8(sink, n, 33);
	{
		size_t put = 0;
		while (put < n) {
			ssize_t k = write(pfd[1], sink + put, n - put);
			if (k <= 0)
				break;
			put += (size_t)k;
		}
		if (put != n)
			tap_bail("filling the pipe: %zu of %zu bytes", put, n);
	}
	errno = 0;
	r = read(pfd[0], dst + off_dst, n);
	e = errno;
	if (kf) {
		is_int(r, (long long)n, "%s: read(pipe, p, %zu) into a buffer on the device", mode, n);
		if (r < 0)
			diag("errno %d (%s)", e, strerror(e));
		ok(ut_check8(dst + off_dst, n, 33) == SIZE_MAX,
		   "%s: the bytes read from the pipe are in the buffer", mode);
		ok(ut_chk8(dst, 0, off_dst, 32) == SIZE_MAX &&
		   ut_chk8(dst + off_dst + n, off_dst + n, len - off_dst - n, 32) == SIZE_MAX,
		   "%s: the rest of the destination (device data of the same pages too) is kept",
		   mode);
		snprintf(w, sizeof(w), "%s: the pages the kernel wrote", mode);
		ut_check_where(h, dst + off_dst, n, UHMM_LOC_SYSTEM, w);
	} else {
		ok(r == -1 && e == EFAULT, "%s: read(pipe, p, n) into a buffer on the device fails "
		   "with EFAULT (got %zd, errno %d %s)", mode, r, e, strerror(e));
		is_int(pipe_avail(pfd[0]), n, "%s: the pipe still holds the %zu bytes", mode, n);
		snprintf(w, sizeof(w), "%s: the destination buffer afterwards", mode);
		ut_ok8(dst, len, 32, w);
	}
	drain(pfd[0]);

	/* ---- futex wait on a word on the device ---- */
	fw = (uint32_t *)(void *)(src + 3 * ut_page());
	rc = uhmm_migrate(h, src, len, dev, 0);
	is_int(rc, 0, "%s: the source buffer to the device again", mode);
	{
		struct timespec ts = { 0, 10 * 1000 * 1000 };
		uint32_t cur = 0;
		long fr;

		for (int k = 3; k >= 0; k--)	/* the word's value, from the pattern */
			cur = cur << 8 | ut_pat8(31, 3 * ut_page() + (size_t)k);
		errno = 0;
		fr = syscall(SYS_futex, fw, FUTEX_WAIT_PRIVATE, cur + 1, &ts, NULL, 0);
		e = errno;
		if (kf)
			ok(fr == -1 && e == EAGAIN, "%s: FUTEX_WAIT on a word on the device with another "
			   "value: EAGAIN (the kernel read it; got %ld, errno %d %s)", mode, fr, e,
			   strerror(e));
		else
			ok(fr == -1 && e == EFAULT, "%s: FUTEX_WAIT on a word on the device: EFAULT "
			   "(got %ld, errno %d %s)", mode, fr, e, strerror(e));
	}
	snprintf(w, sizeof(w), "%s: the source buffer at the end", mode);
	ut_ok8(src, len, 31, w);

	close(pfd[0]);
	close(pfd[1]);
	free(sink);
	munmap(src, len);
	munmap(dst, len);
}

int main(void)
{
	const char *old = getenv("UHMM_DISABLE");
	char *dis;
	struct uhmm *h;
	uint64_t feat;

	ut_init(120);
	h = ut_open();
	run(h, "as opened");
	uhmm_close(h);

	/* The same with kernel-mode faults switched off. */
	if (asprintf(&dis, "%s%skernel_faults", old ? old : "", old && *old ? "," : "") < 0)
		tap_bail("asprintf");
	setenv("UHMM_DISABLE", dis, 1);
	h = ut_open();
	feat = ut_feats(h);
	ok(!(feat & UHMM_FEAT_KERNEL_FAULTS),
	   "UHMM_DISABLE=%s: UHMM_FEAT_KERNEL_FAULTS not reported", dis);
	run(h, "kernel_faults disabled");
	uhmm_close(h);
	free(dis);
	return tap_done();
}
