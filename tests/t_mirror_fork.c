/* SPDX-License-Identifier: MIT */
/*
 * fork() and the device's mirror (hmm-tests as behaviours), for a
 * COHERENT and a PRIVATE sim device.  What this release promises:
 *  - a buffer in system memory the device has read: a fork child's CPU
 *    writes leave the parent's data unchanged, for the CPU and the device;
 *  - the parent's device writes after the fork are the parent's alone:
 *    the child's copy keeps what was there at the fork;
 *  - a child that opens a context of its own and writes its copy through
 *    a device of its own leaves the parent's data unchanged;
 *  - device reads and writes in the parent after a fork are right, for
 *    pages in system memory and pages on the device.
 *  - the fork contract of API.md for device-resident pages: the child
 *    gets a private snapshot of them, and its writes leave the parent's
 *    device-resident data unchanged.
 */
#define _GNU_SOURCE
#include "private.h"

static int rd(struct uhmm_dev *d, const void *p, uint8_t *buf, size_t len, unsigned seed)
{
	int rc;
	size_t b;

	memset(buf, 0, len);
	rc = uhmm_sim_read(d, p, buf, len);
	if (rc < 0) {
		diag("uhmm_sim_read: %d (%s)", rc, ut_err(rc));
		return 0;
	}
	b = ut_check8(buf, len, seed);
	if (b != SIZE_MAX) {
		diag("first difference at offset %zu (page %zu): 0x%02x, want 0x%02x", b,
		     b / ut_page(), buf[b], ut_pat8(seed, b));
		return 0;
	}
	return 1;
}

/* A child that waits for the parent's byte, runs fn, and reports fn's
 * result (a byte of bits) back. */
struct kid {
	pid_t pid;
	int to_child, to_parent;
};

static struct kid kid_start(int (*fn)(void *), void *arg)
{
	int a[2], b[2];
	struct kid k;

	if (pipe(a) || pipe(b))
		tap_bail("pipe: %s", strerror(errno));
	fflush(stdout);
	k.pid = fork();
	if (k.pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (k.pid == 0) {
		char x;

		alarm(60);
		close(a[1]);
		close(b[0]);
		if (read(a[0], &x, 1) != 1)
			_exit(10);
		x = (char)fn(arg);
		if (write(b[1], &x, 1) != 1)
			_exit(11);
		_exit(0);
	}
	close(a[0]);
	close(b[1]);
	k.to_child = a[1];
	k.to_parent = b[0];
	return k;
}

/* Let the child go; its result byte (or -1), and the child reaped. */
static int kid_finish(struct kid *k, int *status)
{
	char x = 1;
	int r = -1;

	if (write(k->to_child, &x, 1) == 1 && read(k->to_parent, &x, 1) == 1)
		r = (unsigned char)x;
	*status = 0;
	while (waitpid(k->pid, status, 0) < 0 && errno == EINTR)
		;
	close(k->to_child);
	close(k->to_parent);
	return r;
}

struct carg {
	uint8_t *p;
	size_t len;
	unsigned expect, write_seed;
	enum uhmm_mem kind;
};

/* The child's CPU: its copy holds `expect`; then it writes `write_seed`. */
static int child_cpu(void *arg)
{
	struct carg *c = arg;
	int bits = 0;

	if (ut_check8(c->p, c->len, c->expect) != SIZE_MAX)
		bits |= 1;
	if (c->write_seed) {
		ut_fill8(c->p, c->len, c->write_seed);
		if (ut_check8(c->p, c->len, c->write_seed) != SIZE_MAX)
			bits |= 2;
	}
	return bits;
}

/* The child opens a context of its own and writes its copy through a
 * device of its own. */
static int child_dev(void *arg)
{
	struct carg *c = arg;
	struct uhmm *h = NULL;
	struct uhmm_dev *d = NULL;
	uint8_t *b = malloc(c->len);
	int bits = 0, rc;

	if (ut_check8(c->p, c->len, c->expect) != SIZE_MAX)
		bits |= 1;
	rc = uhmm_open(&h, NULL);
	if (!rc)
		rc = uhmm_dev_add_sim(h, "child", c->kind, 4 * UT_MiB, &d);
	if (!rc && b) {
		ut_fill8(b, c->len, c->write_seed);
		rc = uhmm_sim_write(d, c->p, b, c->len);
	}
	if (rc < 0 || !b)
		bits |= 4;
	else if (ut_check8(c->p, c->len, c->write_seed) != SIZE_MAX)
		bits |= 2;
	uhmm_close(h);
	free(b);
	return bits;
}

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *kind)
{
	size_t pg = ut_page(), len = 64 * pg;
	uint8_t *p = ut_map(len), *q = ut_map(len / 2), *buf = malloc(len);
	enum uhmm_mem mk = ut_info(dev).kind;
	int id = ut_dev_id(dev), rc, r, st;
	struct carg c;
	struct kid k;

	if (!buf)
		tap_bail("malloc");

	/* system memory the device has read */
	ut_fill8(p, len, 80);
	ok(rd(dev, p, buf, len, 80), "%s: device read before fork", kind);

	/* the child's CPU writes: the parent's data unchanged */
	c = (struct carg){ p, len, 80, 81, mk };
	k = kid_start(child_cpu, &c);
	r = kid_finish(&k, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "%s: the child saw the data at fork and wrote its copy (result %d, status %#x)", kind,
	   r, st);
	ut_ok8(p, len, 80, "the parent's data is unchanged by the child's writes (CPU)");
	ok(rd(dev, p, buf, len, 80), "%s: ... and by the device (cached translations)", kind);

	/* the parent's device write after the fork: the child's copy keeps
	 * the data of the fork */
	c = (struct carg){ p, len, 80, 0, mk };
	k = kid_start(child_cpu, &c);
	ut_fill8(buf, len, 82);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 0, "%s: device write in the parent after fork (%d)", kind, rc);
	r = kid_finish(&k, &st);
	ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "%s: the child's copy keeps the data of the fork (result %d, status %#x)", kind, r, st);
	ut_ok8(p, len, 82, "the parent's CPU reads the parent's device write");
	ok(rd(dev, p, buf, len, 82), "%s: device read in the parent after fork", kind);

	/* the child writes through a device of its own */
	if (UT_TSAN) {
		skip("%s: a fork child's own context: TSan cannot start threads in the child of "
		     "a multithreaded process", kind);
	} else {
		c = (struct carg){ p, len, 82, 83, mk };
		k = kid_start(child_dev, &c);
		r = kid_finish(&k, &st);
		ok(r == 0 && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		   "%s: the child wrote its copy through a device of its own context "
		   "(result %d, status %#x)", kind, r, st);
		ut_ok8(p, len, 82, "the parent's data is unchanged by the child's device write");
		ok(rd(dev, p, buf, len, 82), "%s: ... as the parent's device reads it", kind);
	}

	/* pages on the device at the fork */
	ut_fill8(q, len / 2, 84);
	rc = uhmm_migrate(h, q, len / 2, dev, 0);
	is_int(rc, 0, "%s: migrate to the device", kind);
	ok(rd(dev, q, buf, len / 2, 84), "%s: device read of its pages before fork", kind);
	c = (struct carg){ q, len / 2, 84, 85, mk };
	k = kid_start(child_cpu, &c);
	r = kid_finish(&k, &st);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child ran (status %#x)", kind, st);
	ok(r >= 0 && !(r & 1),
	   "%s: the child's copy of device-resident pages holds the data of the fork", kind);
	ok(ut_check8(q, len / 2, 84) == SIZE_MAX,
	   "%s: the parent's device-resident data is unchanged by the child's writes", kind);
	/* whatever the child did, the parent's device and CPU agree */
	ut_fill8(q, len / 2, 86);
	if (mk == UHMM_MEM_PRIVATE)	/* the CPU stores brought them home */
		uhmm_migrate(h, q, len / 2, dev, 0);
	ut_check_where(h, q, len / 2, id, "device-resident after fork");
	ok(rd(dev, q, buf, len / 2, 86), "%s: device read of its pages after fork", kind);
	ut_fill8(buf, len / 2, 87);
	rc = uhmm_sim_write(dev, q, buf, len / 2);
	ok(rc >= 0, "%s: device write of its pages after fork (%d)", kind, rc);
	ut_check_where(h, q, len / 2, id, "... which moved nothing");
	ut_ok8(q, len / 2, 87, "the parent's CPU reads the device write after fork");

	munmap(p, len);
	munmap(q, len / 2);
	free(buf);
}

int main(void)
{
	struct uhmm *h;
	struct uhmm_dev *c, *pv;

	ut_init(120);
	tdrv_app_thread();
	h = ut_open();
	pv = ut_psim(h, "psim", 16 * UT_MiB);
	run(h, pv, "PRIVATE");
	c = ut_csim_try(h, "csim", 16 * UT_MiB);
	if (c)
		run(h, c, "COHERENT");
	else
		skip("COHERENT: userfaultfd minor faults on shmem are absent or disabled here "
		     "(UHMM_DISABLE=%s): no COHERENT device", getenv("UHMM_DISABLE") ?
		     getenv("UHMM_DISABLE") : "");
	uhmm_close(h);
	return tap_done();
}
