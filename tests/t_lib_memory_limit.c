/* SPDX-License-Identifier: MIT */
/*
 * Under RLIMIT_AS the library's reservation of address space for its own
 * memory (zone.c) leaves the program most of its limit, and the library
 * works however little the limit leaves.
 *
 * The reservation is made once per process, at the library's first use of
 * memory, so each case runs in a child that sets its limit before it opens
 * a context.  The child's exit status says what went wrong (CHILD_*).
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sys/resource.h>
#include "private.h"

#define THREADS		4
#define ROUNDS		10
#define THREAD_BYTES	(8 * UT_MiB)

enum {
	CHILD_OK,
	CHILD_SETRLIMIT,	/* the limit could not be set (or VmSize read) */
	CHILD_OPEN,		/* uhmm_open or the device refused */
	CHILD_TO_DEV,		/* the migration to the device */
	CHILD_DATA,		/* the data that came back */
	CHILD_NO_ROOM,		/* the program could not map what it should */
	CHILD_THREADS,		/* a thread's round trips went wrong */
	CHILD_MAX
};

static const char *const child_says[CHILD_MAX] = {
	"ok", "setrlimit failed", "uhmm_open or uhmm_dev_add_sim failed",
	"uhmm_migrate to the device failed", "data wrong after the round trip",
	"the program could not map memory within its limit",
	"round trips from several threads at once failed or lost data",
};

struct limit_case {
	size_t spare;		/* RLIMIT_AS = what is mapped now + spare */
	size_t program_maps;	/* what the program maps after using uhmm */
};

struct mover {
	struct uhmm *h;
	struct uhmm_dev *dev;
	uint8_t *buf;
	unsigned seed;
	int failed;		/* the first round that went wrong, + 1 */
	pthread_t th;
};

/* Staging slots are fewer under a limit: round trips from several threads
 * at once must still all succeed, each with its data. */
static void *mover_main(void *arg)
{
	struct mover *m = arg;

	for (int r = 0; r < ROUNDS && !m->failed; r++) {
		ut_fill8(m->buf, THREAD_BYTES, m->seed + r);
		if (uhmm_migrate(m->h, m->buf, THREAD_BYTES, m->dev, 0) ||
		    ut_check8(m->buf, THREAD_BYTES, m->seed + r) != SIZE_MAX)
			m->failed = r + 1;
	}
	return NULL;
}

static int threaded_round_trips(struct uhmm *h, struct uhmm_dev *dev)
{
	struct mover m[THREADS];
	int bad = 0;

	for (int t = 0; t < THREADS; t++) {
		m[t] = (struct mover){ .h = h, .dev = dev, .seed = 20 + 16 * t };
		m[t].buf = mmap(NULL, THREAD_BYTES, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m[t].buf == MAP_FAILED || pthread_create(&m[t].th, NULL, mover_main, &m[t]))
			return CHILD_NO_ROOM;
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(m[t].th, NULL);
		if (m[t].failed)
			printf("# thread %d: round %d went wrong\n", t, m[t].failed - 1);
		bad |= m[t].failed;
		munmap(m[t].buf, THREAD_BYTES);
	}
	return bad ? CHILD_THREADS : CHILD_OK;
}

static int limited_run(const struct limit_case *c)
{
	struct rlimit rl;
	size_t len = 16 * UT_MiB;
	struct uhmm *h = NULL;
	struct uhmm_dev *dev = NULL;
	uint8_t *buf;
	void *room;
	int rc;
	long mapped_kb = ut_status_kb("VmSize");

	if (mapped_kb < 0)
		return CHILD_SETRLIMIT;
	rl.rlim_cur = rl.rlim_max = (size_t)mapped_kb * 1024 + c->spare;
	if (setrlimit(RLIMIT_AS, &rl))
		return CHILD_SETRLIMIT;
	rc = uhmm_open(&h, NULL);
	if (!rc)
		rc = uhmm_dev_add_sim(h, "limited", UHMM_MEM_PRIVATE, 64 * UT_MiB, &dev);
	if (rc) {
		printf("# %d (%s)\n", rc, ut_err(rc));
		return CHILD_OPEN;
	}
	buf = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (buf == MAP_FAILED)
		return CHILD_NO_ROOM;
	ut_fill8(buf, len, 5);
	if (uhmm_migrate(h, buf, len, dev, 0))
		return CHILD_TO_DEV;
	/* CPU reads bring it back through the library's threads */
	if (ut_check8(buf, len, 5) != SIZE_MAX)
		return CHILD_DATA;
	rc = threaded_round_trips(h, dev);
	if (rc)
		return rc;
	room = mmap(NULL, c->program_maps, PROT_NONE,
		    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (room == MAP_FAILED)
		return CHILD_NO_ROOM;
	munmap(room, c->program_maps);
	munmap(buf, len);
	uhmm_close(h);
	return CHILD_OK;
}

static void child(void *arg)
{
	_exit(limited_run(arg));
}

static void run_case(const struct limit_case *c, const char *what)
{
	int rc = ut_child(child, (void *)c);

	if (ok(rc == 0, "%s", what))
		return;
	if (rc < 0 && -rc < CHILD_MAX)
		diag("the child: %s", child_says[-rc]);
	else if (rc > 0)
		diag("the child died of signal %d", rc);
	else
		diag("the child exited with status %d", -rc);
}

int main(void)
{
	/* 20 GiB to spare: the old fixed 16 GiB reservation left 4 */
	static const struct limit_case roomy = { 20 * UT_GiB, 16 * UT_GiB };
	/* 1 GiB to spare: a context, a device of 64 MiB, data, and 256 MiB
	 * of the program's own still fit (six staging slots of 130 MiB each
	 * did not) */
	static const struct limit_case tight = { UT_GiB, 256 * UT_MiB };
	int why = 0;

	ut_init(120);
	if (!ut_uffd_usable(&why)) {
		skip("userfaultfd cannot be used by this process (%s): nothing to test",
		     strerror(why));
		return tap_done();
	}
	run_case(&roomy, "RLIMIT_AS with 20 GiB to spare: round trips to a PRIVATE device "
		 "from 4 threads at once, and the program can still map 16 GiB");
	run_case(&tight, "RLIMIT_AS with 1 GiB to spare: round trips to a PRIVATE device "
		 "from 4 threads at once, and the program can still map 256 MiB");
	return tap_done();
}
