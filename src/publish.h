/* SPDX-License-Identifier: MIT */
/*
 * The layout of a context's published file, DIR/PID.N: written by the
 * context's publisher thread (publish.c), read by other processes through
 * the uhmm_proc_* functions (proc.c).  Private to the library: readers and
 * writer are the same build or refuse each other (PUB_VERSION).
 *
 * Protocol.  A reader takes flock(LOCK_EX) on the file so that readers
 * take turns, writes what it wants (want, where_addr/len), bumps req and
 * wakes it (a futex on the shared page); the publisher answers, publishes
 * under the seqlock `seq`, stores ack = req and wakes ack.  The values are
 * therefore as fresh as the last request.
 */
#ifndef UHMM_PUBLISH_H
#define UHMM_PUBLISH_H

#include <stdatomic.h>
#include <stdint.h>

#include "uhmm.h"
#include "trace.h"

#define PUB_MAGIC	0x316275706d6d6875ull	/* "uhmm\6pub1" */
#define PUB_VERSION	1
#define PUB_WHERE_PAGES	(64 * 1024)		/* per where request */
#define PUB_ALLOCS	256
#define PUB_DEVS	63

#define PUB_WANT_WHERE	0x1

/* trace_beat: the reader's last read; the publisher detaches it after this */
#define PUB_TRACE_IDLE_NS (2ull * 1000 * 1000 * 1000)

struct pub_dev {
	int32_t id;
	uint32_t kind;
	uint64_t size, used, reserved, granule;
	char name[64];
	struct uhmm_stats st;
};

/* What a refresh publishes, under pub_file.seq. */
struct pub_values {
	uint64_t sample_ns;
	struct uhmm_stats st;
	uint32_t ndev;
	uint32_t nallocs;		/* may exceed PUB_ALLOCS */
	uint64_t pages_system, allocs, alloc_bytes;
	struct pub_dev dev[PUB_DEVS];
	uint64_t alloc_start[PUB_ALLOCS], alloc_len[PUB_ALLOCS];
};

struct pub_file {
	_Atomic uint64_t magic;		/* set last, cleared at uhmm_close */
	uint32_t version;
	uint32_t size;			/* of this struct */
	int32_t pid;
	uint32_t ctx;
	uint64_t starttime;		/* field 22 of /proc/PID/stat */
	uint64_t start_ns;
	char comm[16];

	_Atomic uint32_t req;		/* futex: bumped by readers */
	_Atomic uint32_t ack;		/* futex: the req answered last */
	_Atomic uint32_t seq;		/* seqlock: odd while publishing */
	_Atomic uint32_t want;		/* PUB_WANT_* of the current request */

	struct pub_values v;

	/* a where request and its answer (one loc per page, as int8) */
	uint64_t where_addr, where_len;
	int32_t where_rc;
	uint32_t pad;
	int8_t where_loc[PUB_WHERE_PAGES];

	/* tracing from outside */
	_Atomic uint64_t trace_beat;	/* CLOCK_MONOTONIC of the last read */
	struct trace_ring ring;
};

/* publish.c, shared with the readers in proc.c */
struct timespec;
int  pub_dir(char *buf, size_t len, bool create);
uint64_t pub_starttime(int pid);
int  pub_futex_wait(_Atomic uint32_t *addr, uint32_t val, const struct timespec *ts);
void pub_futex_wake(_Atomic uint32_t *addr);

#endif
