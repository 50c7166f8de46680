/* SPDX-License-Identifier: MIT */
/*
 * Shared memory through the device (hmm-tests as behaviours), for a
 * COHERENT and a PRIVATE sim device.  Shared memory cannot be migrated
 * (-EINVAL) but is mirrored: the device reads and writes it in place.
 *  - MAP_SHARED | MAP_ANONYMOUS: device read of CPU data, device write
 *    seen by the CPU (also into never-touched pages), by a fork child that
 *    shares the mapping, and the child's writes (its CPU's, and its own
 *    device's through a context of its own) seen by the parent's CPU and
 *    device;
 *  - a file-backed MAP_SHARED mapping (a file in $TMPDIR and one in
 *    /dev/shm): device read of data written with pwrite, device write
 *    visible with pread, into a part of the file never written too; a
 *    read-only shared mapping: device write -EPERM, file unchanged.
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

/* ---- shared anonymous memory ------------------------------------------- */

struct shchild {
	uint8_t *p;
	size_t len;
	int to_child[2], to_parent[2];
	enum uhmm_mem kind;
	int own_dev;		/* the child writes through a device of its own */
};

static void child_body(void *arg)
{
	struct shchild *c = arg;
	char x = 0;
	int bad = 0;

	close(c->to_child[1]);
	close(c->to_parent[0]);
	if (read(c->to_child[0], &x, 1) != 1)
		_exit(10);
	/* the parent's device write, seen through the shared mapping */
	if (ut_check8(c->p, c->len / 2, 62) != SIZE_MAX)
		bad |= 1;
	/* the child's CPU writes the second half */
	ut_fill8(c->p + c->len / 2, c->len / 2, 63);
	if (c->own_dev) {
		struct uhmm *h = NULL;
		struct uhmm_dev *d = NULL;
		uint8_t *b = malloc(c->len);
		int rc = uhmm_open(&h, NULL);

		if (!rc)
			rc = uhmm_dev_add_sim(h, "child", c->kind, 4 * UT_MiB, &d);
		if (!rc && b) {
			ut_fill8(b, c->len / 4, 64);
			rc = uhmm_sim_write(d, c->p, b, c->len / 4);
		}
		if (rc < 0 || !b)
			bad |= 2;
		uhmm_close(h);
		free(b);
	}
	x = (char)bad;
	if (write(c->to_parent[1], &x, 1) != 1)
		_exit(11);
	_exit(bad ? 12 : 0);
}

static void shared_anon(struct uhmm *h, struct uhmm_dev *dev, const char *kind)
{
	size_t pg = ut_page(), len = 32 * pg;
	uint8_t *p, *buf = malloc(len);
	struct shchild c;
	int rc, st = 0;
	pid_t pid;
	char x = 0;

	if (!buf)
		tap_bail("malloc");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap(MAP_SHARED | MAP_ANONYMOUS): %s", strerror(errno));

	/* never touched: a device write populates it */
	ut_fill8(buf, len, 60);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 1, "%s: shared anon: device write to never-touched pages (%d rounds)", kind, rc);
	ut_ok8(p, len, 60, "shared anon: the CPU reads the device write");
	ok(rd(dev, p, buf, len, 60), "%s: shared anon: device read of it", kind);
	ut_fill8(p, len, 61);
	ok(rd(dev, p, buf, len, 61), "%s: shared anon: device read of CPU data", kind);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, -EINVAL, "%s: shared anon cannot be migrated", kind);
	ut_check_unmoved(h, p, len, "shared anon");

	/* a fork child shares it both ways */
	memset(&c, 0, sizeof(c));
	c.p = p;
	c.len = len;
	c.kind = ut_info(dev).kind;
	/* TSan cannot start threads (a context's) in the child of a
	 * multithreaded process */
	c.own_dev = !UT_TSAN;
	if (pipe(c.to_child) || pipe(c.to_parent))
		tap_bail("pipe: %s", strerror(errno));
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		alarm(60);
		free(buf);	/* the child's copy: it never returns here */
		child_body(&c);
	}
	close(c.to_child[0]);
	close(c.to_parent[1]);
	ut_fill8(buf, len / 2, 62);
	rc = uhmm_sim_write(dev, p, buf, len / 2);
	ok(rc >= 0, "%s: shared anon: device write after fork (%d)", kind, rc);
	x = 1;
	if (write(c.to_child[1], &x, 1) != 1)
		tap_bail("write to the child: %s", strerror(errno));
	if (read(c.to_parent[0], &x, 1) != 1)
		x = 99;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	ok(!(x & 1) && x != 99, "%s: shared anon: the fork child sees the parent's device write",
	   kind);
	if (c.own_dev)
		ok(!(x & 2) && x != 99, "%s: shared anon: the child wrote through a device of its own "
		   "context", kind);
	else
		skip("%s: a fork child's own context: TSan cannot start threads in the child of "
		     "a multithreaded process", kind);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s: the child exited 0 (status %#x)", kind, st);
	ok(rd(dev, p + len / 2, buf, len / 2, 63),
	   "%s: shared anon: the parent's device reads the child's CPU writes", kind);
	ut_ok8(p + len / 2, len / 2, 63, "shared anon: the parent's CPU reads the child's writes");
	if (c.own_dev) {
		ok(rd(dev, p, buf, len / 4, 64),
		   "%s: shared anon: the parent's device reads the child's device write", kind);
		ut_ok8(p, len / 4, 64, "shared anon: the parent's CPU reads the child's device write");
	}
	close(c.to_child[1]);
	close(c.to_parent[0]);
	munmap(p, len);
	free(buf);
}

/* ---- file-backed shared mapping ---------------------------------------- */

static int pread_check(int fd, size_t off, size_t len, unsigned seed)
{
	uint8_t *b = malloc(len);
	int good;

	if (!b)
		tap_bail("malloc");
	good = pread(fd, b, len, (off_t)off) == (ssize_t)len && ut_check8(b, len, seed) == SIZE_MAX;
	free(b);
	return good;
}

static void shared_file(struct uhmm *h, struct uhmm_dev *dev, int fd, const char *kind,
			const char *fname)
{
	size_t pg = ut_page(), len = 32 * pg;
	uint8_t *p, *ro, *buf = malloc(2 * len);
	int rc;

	if (!buf)
		tap_bail("malloc");
	if (ftruncate(fd, (off_t)(2 * len)))
		tap_bail("ftruncate: %s", strerror(errno));
	ut_fill8(buf, len, 70);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		tap_bail("pwrite: %s", strerror(errno));
	p = mmap(NULL, 2 * len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap(MAP_SHARED, %s file): %s", fname, strerror(errno));

	ok(rd(dev, p, buf, len, 70), "%s, %s file: device read of data written with pwrite", kind,
	   fname);
	ok(rd(dev, p, buf, len, 70), "%s, %s file: again", kind, fname);
	ut_fill8(buf, len, 71);
	rc = uhmm_sim_write(dev, p, buf, len);
	ok(rc >= 0, "%s, %s file: device write (%d)", kind, fname, rc);
	ok(pread_check(fd, 0, len, 71), "%s, %s file: pread reads the device write", kind, fname);
	ut_ok8(p, len, 71, "file: the CPU reads the device write");
	/* the part of the file never written */
	ut_fill8(buf, len - 2 * pg, 72);
	rc = uhmm_sim_write(dev, p + len + pg, buf, len - 2 * pg);
	/* (no round count: a shared mapping's munmap is not seen yet, so
	 * translations of an earlier mapping at this address may be cached) */
	ok(rc >= 0, "%s, %s file: device write into a never-written part (%d)", kind, fname, rc);
	ok(pread_check(fd, len + pg, len - 2 * pg, 72), "%s, %s file: pread reads it", kind, fname);
	{
		uint8_t z[64];
		ok(pread(fd, z, sizeof(z), (off_t)len) == (ssize_t)sizeof(z) &&
		   ut_check_zero(z, sizeof(z)) == SIZE_MAX &&
		   pread(fd, z, sizeof(z), (off_t)(2 * len - sizeof(z))) == (ssize_t)sizeof(z) &&
		   ut_check_zero(z, sizeof(z)) == SIZE_MAX,
		   "%s, %s file: around it the file is still zeros", kind, fname);
	}
	/* pwrite after the device cached its translations */
	ut_fill8(buf, len, 73);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		tap_bail("pwrite: %s", strerror(errno));
	ok(rd(dev, p, buf, len, 73), "%s, %s file: device read after a later pwrite", kind, fname);
	rc = uhmm_migrate(h, p, len, dev, 0);
	is_int(rc, -EINVAL, "%s, %s file: a shared file mapping cannot be migrated", kind, fname);

	/* read-only shared mapping: -EPERM, the file unchanged */
	ro = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	if (ro == MAP_FAILED)
		tap_bail("mmap(PROT_READ, MAP_SHARED): %s", strerror(errno));
	ok(rd(dev, ro, buf, len, 73), "%s, %s file: device read through a read-only mapping", kind,
	   fname);
	ut_fill8(buf, len, 74);
	rc = uhmm_sim_write(dev, ro, buf, len);
	is_int(rc, -EPERM, "%s, %s file: device write to a read-only shared mapping", kind, fname);
	ok(pread_check(fd, 0, len, 73), "%s, %s file: nothing written", kind, fname);
	munmap(ro, len);
	munmap(p, 2 * len);
	free(buf);
}

static void run(struct uhmm *h, struct uhmm_dev *dev, const char *kind)
{
	char path[] = "/dev/shm/uhmm-test-XXXXXX";
	int fd;

	shared_anon(h, dev, kind);
	fd = ut_tmpfile();
	shared_file(h, dev, fd, kind, "$TMPDIR");
	close(fd);
	fd = mkstemp(path);
	if (fd < 0) {
		skip("%s: no writable /dev/shm here (%s): the tmpfs file case", kind,
		     strerror(errno));
		return;
	}
	unlink(path);
	shared_file(h, dev, fd, kind, "/dev/shm");
	close(fd);
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
