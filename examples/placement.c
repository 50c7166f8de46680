// SPDX-License-Identifier: MIT
/*
 * A small program against the installed library:
 *
 *   cc placement.c $(pkg-config --cflags --libs uhmm) -o placement
 *
 * It allocates a buffer placed on a simulated coherent device (the CPU's
 * writes land in device memory, no copy), migrates a malloc'd buffer there
 * and back, and prints where the pages live and what the trace recorded.
 * Exit status: 0, 1 on a failure, 77 where userfaultfd cannot be used.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uhmm.h>

#define LEN (8u << 20)

static int count(struct uhmm *h, const void *p, size_t len, int want)
{
	size_t n = len / 4096;
	int *loc = calloc(n, sizeof(*loc)), c = 0;

	if (!loc || uhmm_where(h, p, len, loc)) {
		free(loc);
		return -1;
	}
	for (size_t i = 0; i < n; i++)
		c += loc[i] == want;
	free(loc);
	return c;
}

int main(void)
{
	struct uhmm_dev_info info = { .sz = sizeof(info) };
	struct uhmm_stats st = { .sz = sizeof(st) };
	struct uhmm_trace_event ev[64];
	uint64_t next = 0;
	struct uhmm *h;
	struct uhmm_dev *dev;
	char *placed, *buf;
	int err, n;

	printf("uhmm %u.%u\n", uhmm_version() >> 16, uhmm_version() & 0xffff);
	err = uhmm_open(&h, NULL);
	if (err) {
		fprintf(stderr, "uhmm_open: %s (see `uhmm info`)\n", uhmm_strerror(err));
		return 77;
	}
	err = uhmm_dev_add_sim(h, "sim0", UHMM_MEM_COHERENT, 64u << 20, &dev);
	if (err) {
		fprintf(stderr, "uhmm_dev_add_sim: %s\n", uhmm_strerror(err));
		uhmm_close(h);
		return err == -ENOSYS ? 77 : 1;
	}
	uhmm_dev_info(dev, &info);
	uhmm_trace_start(h);

	placed = uhmm_alloc(h, LEN, dev, 0);	/* on the device from birth */
	buf = malloc(LEN);			/* ordinary memory */
	if (!placed || !buf)
		return 1;
	memset(placed, 1, LEN);
	memset(buf, 2, LEN);
	err = uhmm_migrate(h, buf, LEN, dev, 0);
	if (err) {
		fprintf(stderr, "uhmm_migrate: %s\n", uhmm_strerror(err));
		return 1;
	}
	printf("placed: %d of %u pages on %s; buf: %d on %s\n",
	       count(h, placed, LEN, info.id), LEN / 4096, info.name,
	       count(h, buf, LEN, info.id), info.name);
	err = uhmm_migrate(h, buf, LEN, NULL, 0);
	if (err || buf[LEN - 1] != 2 || placed[LEN / 2] != 1)
		return 1;

	n = uhmm_trace_read(h, &next, ev, 64);
	for (int i = 0; i < n; i++)
		printf("trace: %s (%s) %llu bytes at %#llx, %d -> %d\n",
		       uhmm_trace_type_name(ev[i].type), uhmm_trace_cause_name(ev[i].cause),
		       (unsigned long long)ev[i].len, (unsigned long long)ev[i].addr,
		       ev[i].from, ev[i].to);
	uhmm_stats(h, &st);
	printf("%llu pages to the device (%llu without a copy), %llu back\n",
	       (unsigned long long)st.pages_to_dev, (unsigned long long)st.pages_zero_filled,
	       (unsigned long long)st.pages_to_sys);
	uhmm_trace_stop(h);
	uhmm_free(h, placed);
	uhmm_close(h);
	free(buf);
	return n > 0 ? 0 : 1;
}
