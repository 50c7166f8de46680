/* SPDX-License-Identifier: MIT */
/*
 * Pages the kernel pinned for DMA stay where the DMA goes (ARCHITECTURE,
 * hazard 4).  io_uring fixed buffers pin their pages for as long as they
 * are registered, as RDMA and O_DIRECT in flight do; a migration that
 * moved them would leave the kernel writing into the old physical pages,
 * and the program would never see those bytes.  Where the library finds
 * pins (UHMM_FEAT_PIN_DETECT: UFFDIO_MOVE refuses pinned pages; asked for
 * with UHMM_OPEN_DETECT_PINS), a
 * migration over them says -EBUSY and leaves the batch where it was; the
 * kernel's next read into the buffer lands in the program's memory; once
 * the buffers are unregistered the same migration moves.  Both kinds of
 * device, four threads migrating their own ranges at once, one of them
 * pinned, and pages a fork shared, which are no pins.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/io_uring.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "util.h"

#define NPAGES	64
#define PIN_AT	16	/* first pinned page */
#define NPIN	4
#define NTHREADS 4

static struct uhmm *h;

/* A ring with its one fixed buffer, and the file it reads from. */
struct ring {
	int fd, file;
	void *sq, *cq;
	size_t sq_len, cq_len;
	struct io_uring_sqe *sqes;
	struct io_uring_params p;
};

static int ring_open(struct ring *r, void *buf, size_t len)
{
	struct iovec iov = { buf, len };

	memset(r, 0, sizeof(*r));
	r->fd = (int)syscall(__NR_io_uring_setup, 4, &r->p);
	if (r->fd < 0)
		return -errno;
	if (syscall(__NR_io_uring_register, r->fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		int e = -errno;

		close(r->fd);
		return e;
	}
	r->sq_len = r->p.sq_off.array + r->p.sq_entries * sizeof(uint32_t);
	r->cq_len = r->p.cq_off.cqes + r->p.cq_entries * sizeof(struct io_uring_cqe);
	r->sq = mmap(NULL, r->sq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     r->fd, IORING_OFF_SQ_RING);
	r->cq = mmap(NULL, r->cq_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE,
		     r->fd, IORING_OFF_CQ_RING);
	r->sqes = mmap(NULL, r->p.sq_entries * sizeof(struct io_uring_sqe),
		       PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, r->fd, IORING_OFF_SQES);
	if (r->sq == MAP_FAILED || r->cq == MAP_FAILED || r->sqes == MAP_FAILED)
		tap_bail("mmap of the io_uring rings: %s", strerror(errno));
	return 0;
}

static void ring_unpin(struct ring *r)
{
	if (syscall(__NR_io_uring_register, r->fd, IORING_UNREGISTER_BUFFERS, NULL, 0))
		tap_bail("IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
}

static void ring_close(struct ring *r)
{
	munmap(r->sq, r->sq_len);
	munmap(r->cq, r->cq_len);
	munmap(r->sqes, r->p.sq_entries * sizeof(struct io_uring_sqe));
	close(r->fd);
}

/* The kernel reads len bytes of file into the fixed buffer at dst: what
 * the read returned. */
static int ring_read_fixed(struct ring *r, int file, void *dst, size_t len)
{
	uint32_t *tail = (uint32_t *)((char *)r->sq + r->p.sq_off.tail);
	uint32_t *mask = (uint32_t *)((char *)r->sq + r->p.sq_off.ring_mask);
	uint32_t *array = (uint32_t *)((char *)r->sq + r->p.sq_off.array);
	uint32_t *chead = (uint32_t *)((char *)r->cq + r->p.cq_off.head);
	uint32_t *cmask = (uint32_t *)((char *)r->cq + r->p.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)((char *)r->cq + r->p.cq_off.cqes);
	uint32_t t = *tail, idx = t & *mask, head;
	struct io_uring_sqe *sqe = &r->sqes[idx];
	int res;

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = IORING_OP_READ_FIXED;
	sqe->fd = file;
	sqe->addr = (uintptr_t)dst;
	sqe->len = (uint32_t)len;
	sqe->off = 0;
	sqe->buf_index = 0;
	array[idx] = idx;
	__atomic_store_n(tail, t + 1, __ATOMIC_RELEASE);
	if (syscall(__NR_io_uring_enter, r->fd, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
		return -errno;
	head = __atomic_load_n(chead, __ATOMIC_ACQUIRE);
	res = cqes[head & *cmask].res;
	__atomic_store_n(chead, head + 1, __ATOMIC_RELEASE);
	return res;
}

/* A file of len bytes of pattern `seed`. */
static int pattern_file(size_t len, unsigned seed)
{
	char path[] = "/tmp/uhmm-pinned-XXXXXX";
	int fd = mkstemp(path);
	void *buf = malloc(len);

	if (fd < 0 || !buf)
		tap_bail("mkstemp: %s", strerror(errno));
	unlink(path);
	ut_fill64(buf, len, seed);
	if (pwrite(fd, buf, len, 0) != (ssize_t)len)
		tap_bail("pwrite: %s", strerror(errno));
	free(buf);
	return fd;
}

static void *range(void)
{
	char *p = ut_map(NPAGES * ut_page());

	/* a pin holds a huge page whole: small pages show it page by page */
	madvise(p, NPAGES * ut_page(), MADV_NOHUGEPAGE);
	ut_fill64(p, NPAGES * ut_page(), 1);
	return p;
}

static void pinned_then_not(struct uhmm_dev *d, const char *kind)
{
	size_t pg = ut_page(), len = NPAGES * pg;
	char *p = range(), *pin = p + PIN_AT * pg, what[96];
	int file = pattern_file(NPIN * pg, 7), rc;
	char *want = malloc(len);
	struct ring r;

	rc = ring_open(&r, pin, NPIN * pg);
	if (rc) {
		skip("io_uring fixed buffers: %s (io_uring off here?)", strerror(-rc));
		free(want);
		close(file);
		munmap(p, len);
		return;
	}
	snprintf(what, sizeof(what), "%s: a range with pages pinned by io_uring", kind);
	is_int(uhmm_migrate(h, p, len, d, 0), -EBUSY, "%s: -EBUSY", what);
	is_int(ut_where_count(h, p, len, 0), NPAGES, "%s: every page still in system memory",
	       kind);
	ut_ok64(p, len, 1, "the range after the -EBUSY");
	is_int(ring_read_fixed(&r, file, pin, NPIN * pg), (int)(NPIN * pg),
	       "%s: the kernel reads a file into the pinned buffer", kind);
	ut_ok64(pin, NPIN * pg, 7, "what it read, seen by the program");
	ut_ok64(p, PIN_AT * pg, 1, "the pages before it");
	/* from now on: the range as filled, the kernel's bytes in the middle */
	memcpy(want, p, len);
	ring_unpin(&r);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "%s: unregistered, the range migrates", kind);
	is_int(ut_where_count(h, p, len, ut_dev_id(d)), NPAGES, "%s: every page on the device",
	       kind);
	ok(!memcmp(p, want, len), "%s: every byte, the kernel's included, on the device", kind);
	is_int(uhmm_migrate(h, p, len, NULL, 0), 0, "%s: and home", kind);
	ok(!memcmp(p, want, len), "%s: every byte, home", kind);
	free(want);
	ring_close(&r);
	close(file);
	munmap(p, len);
}

/*
 * What UFFDIO_MOVE refuses besides pins is no -EBUSY: pages shared with a
 * live child after fork(), and pages the process maps alone again after
 * that child has gone but that are not marked as its own yet (the stress
 * model's false -EBUSY).
 */
static void after_fork(struct uhmm_dev *d, bool child_lives)
{
	size_t len = NPAGES * ut_page();
	char *p = range();
	int go[2], st = 0;
	pid_t pid;

	if (pipe(go))
		tap_bail("pipe: %s", strerror(errno));
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		char c;

		if (child_lives && read(go[0], &c, 1) != 1)
			_exit(3);
		_exit(ut_check64(p, len, 1) == SIZE_MAX ? 0 : 2);
	}
	if (!child_lives)
		waitpid(pid, &st, 0);
	is_int(uhmm_migrate(h, p, len, d, 0), 0, "after a fork, the child %s: the range migrates",
	       child_lives ? "alive" : "gone");
	is_int(ut_where_count(h, p, len, ut_dev_id(d)), NPAGES, "after a fork, child %s: on the device",
	       child_lives ? "alive" : "gone");
	if (child_lives) {
		if (write(go[1], "x", 1) != 1)
			tap_bail("write: %s", strerror(errno));
		waitpid(pid, &st, 0);
	}
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child's copy intact");
	ut_ok64(p, len, 1, "after a fork: the parent's bytes");
	close(go[0]);
	close(go[1]);
	munmap(p, len);
}

/* A context that did not ask looks for no pins: the migration moves. */
static void not_asked(void)
{
	struct uhmm *h2 = ut_open();
	struct uhmm_dev *d = NULL;
	size_t len = NPAGES * ut_page();
	char *p = range();
	struct ring r;

	if (uhmm_dev_add_sim(h2, "plain", UHMM_MEM_PRIVATE, 16 * UT_MiB, &d))
		tap_bail("a private device of the second context");
	if (ring_open(&r, p + PIN_AT * ut_page(), NPIN * ut_page())) {
		skip("io_uring fixed buffers unavailable");
		uhmm_close(h2);
		munmap(p, len);
		return;
	}
	is_int(uhmm_migrate(h2, p, len, d, 0), 0,
	       "without UHMM_OPEN_DETECT_PINS: the pinned range migrates");
	ring_unpin(&r);
	ring_close(&r);
	uhmm_close(h2);
	munmap(p, len);
}

struct mover {
	pthread_t th;
	struct uhmm_dev *d;
	char *p;
	int rc;
};

static void *mover_main(void *arg)
{
	struct mover *m = arg;

	m->rc = uhmm_migrate(h, m->p, NPAGES * ut_page(), m->d, 0);
	return NULL;
}

/* Four threads each migrate a range; thread 0's is pinned. */
static void threads(struct uhmm_dev *d)
{
	struct mover m[NTHREADS];
	struct ring r;
	int rc, moved = 0;

	for (int i = 0; i < NTHREADS; i++) {
		m[i].d = d;
		m[i].p = range();
	}
	rc = ring_open(&r, m[0].p + PIN_AT * ut_page(), NPIN * ut_page());
	if (rc) {
		skip("io_uring fixed buffers: %s", strerror(-rc));
		return;
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_create(&m[i].th, NULL, mover_main, &m[i]);
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(m[i].th, NULL);
		moved += i && m[i].rc == 0;
	}
	is_int(m[0].rc, -EBUSY, "threads: the pinned range -EBUSY");
	is_int(moved, NTHREADS - 1, "threads: the %d others migrate at the same time",
	       NTHREADS - 1);
	is_int(ut_where_count(h, m[0].p, NPAGES * ut_page(), 0), NPAGES,
	       "threads: the pinned range in system memory");
	for (int i = 0; i < NTHREADS; i++) {
		ut_ok64(m[i].p, NPAGES * ut_page(), 1, "threads: a range's bytes");
		munmap(m[i].p, NPAGES * ut_page());
	}
	ring_unpin(&r);
	ring_close(&r);
}

int main(void)
{
	struct uhmm_dev *priv = NULL, *coh = NULL;
	uint64_t feat = 0;

	ut_init(120);
	{
		struct uhmm_opts o = { .sz = sizeof(o), .flags = UHMM_OPEN_DETECT_PINS };

		h = ut_open_opts(&o);
	}
	uhmm_features(h, &feat);
	if (!(feat & UHMM_FEAT_PIN_DETECT)) {
		skip("pinned pages are found with UFFDIO_MOVE (Linux 6.8) and the remap fence, "
		     "absent or disabled here (UHMM_DISABLE=%s); uhmm_pin is the way then",
		     getenv("UHMM_DISABLE") ? getenv("UHMM_DISABLE") : "");
		uhmm_close(h);
		return tap_done();
	}
	if (uhmm_dev_add_sim(h, "private", UHMM_MEM_PRIVATE, 16 * UT_MiB, &priv))
		tap_bail("the private device");
	pinned_then_not(priv, "PRIVATE");
	if (!uhmm_dev_add_sim(h, "coherent", UHMM_MEM_COHERENT, 16 * UT_MiB, &coh))
		pinned_then_not(coh, "COHERENT");
	else
		skip("no COHERENT device here");
	threads(priv);
	not_asked();
	after_fork(priv, false);
	after_fork(priv, true);
	uhmm_close(h);
	return tap_done();
}
