/* SPDX-License-Identifier: MIT */
/*
 * The reference model of tests/t_stress_model.c: a seeded PRNG, the
 * regions and the byte array per region that says what every byte must
 * be, the log of the last steps, and the checks that compare memory with
 * the model and say where they first differ.
 *
 * The model's own memory (and every scratch buffer) is mmap'd apart from
 * the heap: a malloc'd region shares heap pages with whatever malloc put
 * beside it, and the model must never be memory the library moves.
 */
#ifndef UHMM_TEST_STRESS_MODEL_H
#define UHMM_TEST_STRESS_MODEL_H

#include <stdarg.h>
#include <stdbool.h>
#include "util.h"

/* ---------------------------------------------------------------- */
/* PRNG: xorshift64*, so a seed replays the same run everywhere       */
/* ---------------------------------------------------------------- */

struct sm_rng {
	uint64_t s;
};

static inline void sm_seed(struct sm_rng *r, uint64_t seed)
{
	/* splitmix64 of the seed: a state that is never 0 */
	uint64_t z = seed + 0x9E3779B97F4A7C15ull;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	r->s = (z ^ (z >> 31)) | 1;
}

static inline uint64_t sm_next(struct sm_rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1Dull;
}

/* 0 .. n-1 (n > 0) */
static inline size_t sm_below(struct sm_rng *r, size_t n)
{
	return (size_t)(sm_next(r) % n);
}

/* lo .. hi inclusive */
static inline size_t sm_range(struct sm_rng *r, size_t lo, size_t hi)
{
	return lo + sm_below(r, hi - lo + 1);
}

/* true with probability pct / 100 */
static inline bool sm_pct(struct sm_rng *r, unsigned pct)
{
	return sm_below(r, 100) < pct;
}

static inline void sm_bytes(struct sm_rng *r, uint8_t *b, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		uint64_t v = sm_next(r);
		memcpy(b + i, &v, 8);
	}
	if (i < n) {
		uint64_t v = sm_next(r);
		memcpy(b + i, &v, n - i);
	}
}

/* ---------------------------------------------------------------- */
/* Regions and their model                                           */
/* ---------------------------------------------------------------- */

enum sm_kind {
	SM_MALLOC,		/* malloc'd, unaligned, heap pages shared */
	SM_ANON,		/* mmap'd private anonymous, page aligned */
	SM_SHARED,		/* mmap'd shared anonymous: never migrates */
};

static const char *const sm_kind_name[] = { "malloc", "anon", "shared" };

struct sm_region {
	enum sm_kind kind;
	uint8_t *p;		/* where the program sees it now */
	size_t len;
	void *base;		/* what free() takes (SM_MALLOC) */
	bool ro;		/* uhmm_mprotect'd PROT_READ */
	uint8_t *model;		/* what every byte of [p, p + len) must be */
	size_t cap;		/* bytes of model */
};

/* Anonymous memory of our own, for the model and scratch buffers. */
static inline void *sm_mmap(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		tap_bail("mmap(%zu): %s", len, strerror(errno));
	return p;
}

/* Offset of the first byte where a and b differ, or SIZE_MAX. */
static inline size_t sm_diff(const uint8_t *a, const uint8_t *b, size_t n)
{
	size_t i = 0, step = 4096;

	if (!memcmp(a, b, n))
		return SIZE_MAX;
	/* memcmp says "somewhere": find it a page at a time, then a byte */
	while (i + step <= n && !memcmp(a + i, b + i, step))
		i += step;
	for (; i < n; i++)
		if (a[i] != b[i])
			return i;
	return SIZE_MAX;
}

/* ---------------------------------------------------------------- */
/* The log of the last steps, and how a divergence is reported        */
/* ---------------------------------------------------------------- */

#define SM_LOG		1024	/* steps kept */
#define SM_LOG_SHOW	20	/* steps printed with a divergence */
#define SM_LOG_LINE	120

struct sm_state {
	uint64_t seed;
	unsigned long step;
	unsigned long nlog;
	char log[SM_LOG][SM_LOG_LINE];
	bool failed;
};

static struct sm_state sm;

static inline void sm_logf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void sm_logf(const char *fmt, ...)
{
	char *line = sm.log[sm.nlog++ % SM_LOG];
	int n = snprintf(line, SM_LOG_LINE, "%lu: ", sm.step);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line + n, SM_LOG_LINE - (size_t)n, fmt, ap);
	va_end(ap);

}

/* The last SM_LOG_SHOW steps, oldest first, with write(2) alone: this
 * also runs in the crash and watchdog handlers. */
static inline void sm_dump_log(int fd)
{
	unsigned long show = getenv("UHMM_STRESS_LOG_ALL") ? SM_LOG - 1 : SM_LOG_SHOW;
	unsigned long first = sm.nlog > show ? sm.nlog - show : 0;
	char head[96];
	int n = snprintf(head, sizeof(head), "# seed %llu, step %lu; the last steps:\n",
			 (unsigned long long)sm.seed, sm.step);

	if (write(fd, head, (size_t)n) < 0)
		return;
	for (unsigned long i = first; i < sm.nlog; i++) {
		const char *l = sm.log[i % SM_LOG];

		if (write(fd, "#   ", 4) < 0 || write(fd, l, strlen(l)) < 0 ||
		    write(fd, "\n", 1) < 0)
			return;
	}
}

/* A divergence: say what, with the seed to replay it and the log. */
static inline void sm_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void sm_fail(const char *fmt, ...)
{
	va_list ap;

	if (sm.failed)
		return;		/* the first one is the one that matters */
	sm.failed = true;
	printf("# DIVERGENCE: seed %llu, step %lu (replay: UHMM_STRESS_SEED=%llu "
	       "UHMM_STRESS_STEPS=%lu): ", (unsigned long long)sm.seed, sm.step,
	       (unsigned long long)sm.seed, sm.step + 1);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	sm_dump_log(1);
}

/* An API call returned what the contract does not allow here. */
#define sm_bad_rc(what, rc) \
	sm_fail("%s returned %d (%s), not allowed here", (what), (rc), ut_err(rc))

static inline void sm_fatal_handler(int sig, siginfo_t *si, void *uc)
{
	if (sig == SIGBUS && uhmm_fault_signal(si, uc))
		return;		/* a fault of a context served by signal */
	sm_dump_log(1);
	ut_crash_handler(sig, si, uc);
}

static inline void sm_alarm_handler(int sig)
{
	static const char msg[] = "# watchdog: the stress run took too long (hang?)\n";

	if (write(1, msg, sizeof(msg) - 1) < 0) { /* nothing to do */ }
	sm_dump_log(1);
	ut_alarm_handler(sig);
}

/* After ut_init: a crash or a hang also prints the seed and the log. */
static inline void sm_install_handlers(void)
{
	struct sigaction sa = { .sa_sigaction = sm_fatal_handler, .sa_flags = SA_SIGINFO };

	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGFPE, &sa, NULL);
	signal(SIGALRM, sm_alarm_handler);
}

/* ---------------------------------------------------------------- */
/* Checks                                                            */
/* ---------------------------------------------------------------- */

/* Where the page holding addr lives (uhmm_where), for the report; set by
 * the test while a context is open. */
static int (*sm_locate)(const void *addr);
/* A second opinion on the byte at addr: the CPU's and each device's. */
static void (*sm_explain)(const void *addr);

/* Bytes [off, off + n) of region ri as read by `how` (in buf) against
 * the model. */
static inline bool sm_match(int ri, const struct sm_region *r, const uint8_t *got,
			    size_t off, size_t n, const char *how)
{
	size_t d = sm_diff(got, r->model + off, n);

	if (d == SIZE_MAX)
		return true;
	sm_fail("region %d (%s, %p, %zu bytes%s): %s: first difference at offset %zu "
		"(address %p, page %zu of the region): got 0x%02x, want 0x%02x",
		ri, sm_kind_name[r->kind], (void *)r->p, r->len, r->ro ? ", read-only" : "",
		how, off + d, (void *)(r->p + off + d),
		(size_t)(((uintptr_t)r->p + off + d) / ut_page() - (uintptr_t)r->p / ut_page()),
		got[d], r->model[off + d]);
	if (sm_locate)
		diag("that page lives at %d (0 system, -1 not populated, else a device id)",
		     sm_locate(r->p + off + d));
	if (sm_explain)
		sm_explain(r->p + off + d);
	return false;
}

/* Every byte of the region, read by the CPU. */
static inline bool sm_check_cpu(int ri, const struct sm_region *r)
{
	return sm_match(ri, r, r->p, 0, r->len, "CPU read");
}

#endif
