/* SPDX-License-Identifier: MIT */
/*
 * libuhmm-preload.so: what `uhmm run` puts under a program with
 * LD_PRELOAD.  preload.c reads the configuration (UHMM_DEVICES,
 * UHMM_PREFER, UHMM_MIN_SIZE, UHMM_FORK, UHMM_STATS, UHMM_VERBOSE), makes
 * the context and the devices at the first large allocation, handles
 * fork and writes the statistics at exit; alloc.c is the allocator behind
 * malloc and friends for allocations of at least UHMM_MIN_SIZE bytes, and
 * mprotect.
 */
#ifndef UHMM_PRELOAD_H
#define UHMM_PRELOAD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uhmm.h>

#include "devspec.h"

#define TLS __thread __attribute__((tls_model("initial-exec")))

/* glibc's own allocator, which the small allocations keep using */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void  __libc_free(void *p);
void *__libc_memalign(size_t align, size_t n);

enum fork_mode { FORK_COPY, FORK_NOCOPY };

struct pdev {				/* one configured device */
	struct devspec spec;
	struct uhmm_dev *dev;		/* NULL: could not be added */
	uint64_t placed_allocs, placed_bytes;
	size_t peak_used;
};

struct preload {
	bool enabled;			/* configuration read and valid */
	size_t min_size;
	enum fork_mode fork;
	bool verbose;
	const char *stats_path;
	int ndev, prefer;		/* prefer: index in dev[] */
	struct pdev dev[DEVSPEC_MAX];

	pthread_mutex_t lock;		/* the table, the context, counters */
	struct uhmm *h;			/* NULL until the first large allocation */
	bool ctx_failed;		/* tried and failed: system memory */
	bool child;			/* a fork child: no context here */
	uint64_t large_allocs, large_bytes;	/* requests >= min_size */
	uint64_t unplaced_allocs, unplaced_bytes;
};

extern struct preload pl;
extern TLS int pl_busy;			/* inside the preload: glibc's malloc */

void pl_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* with pl.lock held: the context, made if need be (NULL: none) */
struct uhmm *pl_context(void);

/* alloc.c */
void *big_alloc(size_t size, size_t align, bool zero);
void big_forget_context(void);		/* fork child: memory is plain now */

#endif
