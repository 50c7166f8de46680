/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers for the uhmm test programs (tests/t_*.c).  Every function
 * is static inline so that a test using only some of them still builds
 * with -Wall -Wextra -Werror.
 *
 *  - ut_init(): page size, scale, a watchdog that bails out instead of
 *    hanging forever.
 *  - ut_open(): a context, or SKIP the whole file when this machine has no
 *    usable userfaultfd at all (probed independently of the library, so a
 *    library that fails to open where userfaultfd works is a failure).
 *  - ut_sim(): a simulated COHERENT device, or bail out.
 *  - patterns: ut_fill8/ut_check8 (byte, any alignment), ut_fill64/
 *    ut_check64 (words; the top 16 bits of every word carry the seed, so a
 *    word leaked from another range is recognisable and never zero).
 *  - placement: ut_where_count(), ut_check_where().
 *  - /proc: ut_rss_pages(), ut_rss_anon_kb(), ut_maps_*().
 *  - ut_child(): run a function in a forked child, report how it ended.
 */
#ifndef UHMM_TEST_UTIL_H
#define UHMM_TEST_UTIL_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dirent.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "uhmm.h"
#include "tap.h"

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef SYS_userfaultfd
#define SYS_userfaultfd 323
#endif
#ifndef SYS_mseal
#define SYS_mseal 462
#endif
#ifndef MAP_FIXED_NOREPLACE
#define MAP_FIXED_NOREPLACE 0x100000
#endif

#define UT_KiB ((size_t)1 << 10)
#define UT_MiB ((size_t)1 << 20)
#define UT_GiB ((size_t)1 << 30)

/* Are we built with a sanitizer?  (gcc defines __SANITIZE_*__, clang has
 * __has_feature.) */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UT_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define UT_SANITIZED 1
#endif
#endif
#ifndef UT_SANITIZED
#define UT_SANITIZED 0
#endif
#if defined(__SANITIZE_THREAD__)
#define UT_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define UT_TSAN 1
#endif
#endif
#ifndef UT_TSAN
#define UT_TSAN 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UT_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UT_ASAN 1
#endif
#endif
#ifndef UT_ASAN
#define UT_ASAN 0
#endif

static size_t ut_pg __attribute__((unused));

static inline size_t ut_page(void)
{
	if (!ut_pg)
		ut_pg = (size_t)sysconf(_SC_PAGESIZE);
	return ut_pg;
}

/*
 * Work scale in percent: UHMM_TEST_SCALE (a percentage, default 100), or
 * 25 under a sanitizer (10 under TSan) unless the variable says otherwise.
 * ut_scaled(n) = n * scale / 100, at least min.
 */
static inline unsigned ut_scale(void)
{
	const char *s = getenv("UHMM_TEST_SCALE");

	if (s && *s) {
		long v = strtol(s, NULL, 10);
		if (v > 0)
			return (unsigned)v;
	}
	return UT_TSAN ? 10 : UT_SANITIZED ? 25 : 100;
}

static inline unsigned long ut_scaled(unsigned long n, unsigned long min)
{
	unsigned long v = n * ut_scale() / 100;
	return v < min ? min : v;
}

static inline void ut_alarm_handler(int sig)
{
	static const char msg[] = "Bail out! watchdog: the test took too long (hang?)\n";
	(void)sig;
	if (write(1, msg, sizeof(msg) - 1) < 0) { /* nothing to do */ }
	_exit(3);
}

/* A crash says where before the process dies of it as it would have: the
 * log of a CI run is all there is to go on.  Tests that expect a signal
 * install their own handlers, or fork children that do. */
static inline void ut_crash_handler(int sig, siginfo_t *si, void *uc)
{
	char msg[96];
	void *frames[48];
	int n = snprintf(msg, sizeof(msg), "# fatal signal %d at address %p, thread %d:\n",
			 sig, si->si_addr, (int)syscall(SYS_gettid));

	(void)uc;
	if (write(2, msg, (size_t)n) < 0) { /* nothing to do */ }
	n = backtrace(frames, 48);
	backtrace_symbols_fd(frames, n, 2);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Call first.  watchdog_s: seconds before the test bails out as hung
 * (multiplied under sanitizers). */
static inline void ut_init(unsigned watchdog_s)
{
	struct sigaction sa = { .sa_sigaction = ut_crash_handler, .sa_flags = SA_SIGINFO };

	setvbuf(stdout, NULL, _IOLBF, 0);
	ut_page();
	if (UT_SANITIZED)
		watchdog_s *= UT_TSAN ? 4 : 3;
	/* tests/run-valgrind.sh: memcheck runs code tens of times slower */
	if (getenv("UHMM_TEST_VALGRIND"))
		watchdog_s *= 10;
	signal(SIGALRM, ut_alarm_handler);
	alarm(watchdog_s);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
}

static inline const char *ut_err(int rc)
{
	const char *s = uhmm_strerror(rc);
	return s ? s : "(null)";
}

/* ---------------------------------------------------------------- */
/* Context and devices                                               */
/* ---------------------------------------------------------------- */

/* Can this process use userfaultfd at all (privileged, user-mode only, or
 * through /dev/userfaultfd)?  *why gets the errno of the last attempt. */
static inline int ut_uffd_usable(int *why)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int err = errno;

	if (fd < 0) {
		fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK | UFFD_USER_MODE_ONLY);
		err = errno;
	}
	if (fd < 0) {
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
		if (dev >= 0) {
			fd = ioctl(dev, _IO(0xAA, 0x00), O_CLOEXEC | O_NONBLOCK);
			err = errno;
			close(dev);
		}
	}
	if (fd < 0) {
		if (why)
			*why = err;
		return 0;
	}
	close(fd);
	return 1;
}

/* Open a context with opts (NULL ok).  When userfaultfd is unusable on this
 * machine the whole file is skipped; otherwise failure is a bail-out. */
static inline struct uhmm *ut_open_opts(const struct uhmm_opts *opts)
{
	struct uhmm *h = NULL;
	int why = 0, rc;

	if (!ut_uffd_usable(&why)) {
		skip("userfaultfd cannot be used by this process (%s): nothing to test",
		     strerror(why));
		exit(tap_done());
	}
	rc = uhmm_open(&h, opts);
	if (rc != 0 || !h)
		tap_bail("uhmm_open failed although userfaultfd works here: %d (%s)",
			 rc, ut_err(rc));
	return h;
}

static inline struct uhmm *ut_open(void)
{
	return ut_open_opts(NULL);
}

static inline struct uhmm_dev_info ut_info(const struct uhmm_dev *d)
{
	struct uhmm_dev_info in;
	int rc;

	memset(&in, 0, sizeof(in));
	in.sz = sizeof(in);
	rc = uhmm_dev_info(d, &in);
	if (rc)
		tap_bail("uhmm_dev_info: %d (%s)", rc, ut_err(rc));
	return in;
}

static inline int ut_dev_id(const struct uhmm_dev *d)
{
	return ut_info(d).id;
}

static inline size_t ut_dev_used(const struct uhmm_dev *d)
{
	return ut_info(d).used;
}

/* A simulated COHERENT device of `size` bytes, or bail out. */
static inline struct uhmm_dev *ut_sim(struct uhmm *h, const char *name, size_t size)
{
	struct uhmm_dev *d = NULL;
	int rc = uhmm_dev_add_sim(h, name, UHMM_MEM_COHERENT, size, &d);
	uint64_t feat = 0;

	/* COHERENT devices need minor faults on shmem (kernel 5.14+): where
	 * the kernel lacks them, or UHMM_DISABLE=minor, there is nothing to
	 * test. */
	if (rc == -ENOSYS && uhmm_features(h, &feat) == 0 && !(feat & UHMM_FEAT_MINOR_SHMEM)) {
		skip("COHERENT devices need userfaultfd minor faults on shmem, absent or "
		     "disabled here (UHMM_DISABLE=%s)", getenv("UHMM_DISABLE") ? getenv("UHMM_DISABLE") : "");
		exit(tap_done());
	}
	if (rc || !d)
		tap_bail("uhmm_dev_add_sim(%s, COHERENT, %zu): %d (%s)", name, size,
			 rc, ut_err(rc));
	return d;
}

/* Skip the whole file where COHERENT devices cannot exist (see ut_sim). */
static inline void ut_require_coherent(struct uhmm *h)
{
	struct uhmm_dev *d = ut_sim(h, "probe", ut_page());
	int rc = uhmm_dev_remove(d);

	if (rc)
		tap_bail("uhmm_dev_remove of an empty device: %d (%s)", rc, ut_err(rc));
}

static inline struct uhmm_stats ut_stats(struct uhmm *h)
{
	struct uhmm_stats st;
	int rc;

	memset(&st, 0, sizeof(st));
	st.sz = sizeof(st);
	rc = uhmm_stats(h, &st);
	if (rc)
		tap_bail("uhmm_stats: %d (%s)", rc, ut_err(rc));
	return st;
}

/*
 * The test as a driver: its own memfd is a COHERENT device, mapped a
 * second time read-only as the device's own view of its memory.
 */
struct ut_memfd_dev {
	struct uhmm_dev *dev;
	const uint8_t *view;
	size_t size;
	int id;
};

static inline struct ut_memfd_dev ut_memfd_dev(struct uhmm *h, const char *name, size_t size)
{
	struct uhmm_dev_desc d;
	struct ut_memfd_dev m = { NULL, NULL, size, 0 };
	int fd, rc;

	memset(&d, 0, sizeof(d));
	fd = memfd_create(name, MFD_CLOEXEC);
	if (fd < 0 || ftruncate(fd, (off_t)size))
		tap_bail("memfd: %s", strerror(errno));
	m.view = (const uint8_t *)mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
	if (m.view == MAP_FAILED)
		tap_bail("mmap of the device view: %s", strerror(errno));
	d.sz = sizeof(d);
	d.name = name;
	d.kind = UHMM_MEM_COHERENT;
	d.size = size;
	d.fd = fd;
	rc = uhmm_dev_add(h, &d, &m.dev);
	if (rc)
		tap_bail("uhmm_dev_add: %s", ut_err(rc));
	close(fd);		/* uhmm keeps its own duplicate */
	m.id = ut_dev_id(m.dev);
	return m;
}

/* Pages of [p, p + len) that are not on the device at the offset uhmm
 * reports with the bytes the CPU sees. */
static inline size_t ut_not_in_device(struct uhmm *h, const struct ut_memfd_dev *m,
				      const uint8_t *p, size_t len)
{
	size_t bad = 0, pg = ut_page();

	for (size_t off = 0; off < len; off += pg) {
		uint64_t doff = UINT64_MAX;
		int loc = -1;
		size_t n = len - off < pg ? len - off : pg;

		if (uhmm_dev_offset(h, p + off, &loc, &doff) || loc != m->id ||
		    doff + pg > m->size || memcmp(m->view + doff, p + off, n))
			bad++;
	}
	return bad;
}

/* ---------------------------------------------------------------- */
/* Memory                                                            */
/* ---------------------------------------------------------------- */

/* Anonymous private read-write memory, aligned to `align` (a power of two,
 * at least a page), untouched.  Bails out on failure. */
static inline void *ut_map_aligned(size_t len, size_t align)
{
	size_t pg = ut_page(), total;
	uintptr_t a, b;
	char *p;

	if (align < pg)
		align = pg;
	total = len + align;
	p = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		tap_bail("mmap(%zu): %s", total, strerror(errno));
	a = ((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1);
	b = a + len;
	if (a > (uintptr_t)p)
		munmap(p, a - (uintptr_t)p);
	if ((uintptr_t)p + total > b)
		munmap((void *)b, (uintptr_t)p + total - b);
	return (void *)a;
}

static inline void *ut_map(size_t len)
{
	return ut_map_aligned(len, ut_page());
}

static inline uintptr_t ut_pg_down(const void *p)
{
	return (uintptr_t)p & ~(uintptr_t)(ut_page() - 1);
}

static inline uintptr_t ut_pg_up(uintptr_t a)
{
	return (a + ut_page() - 1) & ~(uintptr_t)(ut_page() - 1);
}

/* Pages overlapping [p, p + len). */
static inline size_t ut_npages(const void *p, size_t len)
{
	return (ut_pg_up((uintptr_t)p + len) - ut_pg_down(p)) / ut_page();
}

/* ---------------------------------------------------------------- */
/* Patterns                                                          */
/* ---------------------------------------------------------------- */

static inline uint8_t ut_pat8(unsigned seed, size_t i)
{
	uint32_t x = (uint32_t)i * 2654435761u + seed * 40503u;
	return (uint8_t)((x >> 24) ^ (x >> 13) ^ (uint32_t)(i >> 12) ^ seed);
}

static inline void ut_fill8(void *p, size_t len, unsigned seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		b[i] = ut_pat8(seed, i);
}

/* Index of the first byte that differs from the pattern, or SIZE_MAX. */
static inline size_t ut_check8(const void *p, size_t len, unsigned seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < len; i++)
		if (b[i] != ut_pat8(seed, i))
			return i;
	return SIZE_MAX;
}

/* Word i of pattern `seed` (seed 1..65535): seed in the top 16 bits. */
static inline uint64_t ut_pat64(unsigned seed, size_t i)
{
	return ((uint64_t)(seed & 0xffff) << 48) |
	       (((uint64_t)i * 0x9E3779B1u + 1) & 0xffffffffffffull);
}

static inline void ut_fill64(void *p, size_t len, unsigned seed)
{
	uint64_t *w = p;
	size_t n = len / 8;
	for (size_t i = 0; i < n; i++)
		w[i] = ut_pat64(seed, i);
}

static inline size_t ut_check64(const void *p, size_t len, unsigned seed)
{
	const uint64_t *w = p;
	size_t n = len / 8;
	for (size_t i = 0; i < n; i++)
		if (w[i] != ut_pat64(seed, i))
			return i * 8;
	return SIZE_MAX;
}

/* Offset of the first non-zero byte, or SIZE_MAX. */
static inline size_t ut_check_zero(const void *p, size_t len)
{
	const uint8_t *b = p;
	size_t i = 0;

	for (; i < len && ((uintptr_t)(b + i) & 7); i++)
		if (b[i])
			return i;
	for (; i + 8 <= len; i += 8)
		if (*(const uint64_t *)(const void *)(b + i))
			break;
	for (; i < len; i++)
		if (b[i])
			return i;
	return SIZE_MAX;
}

/* One assertion: the bytes match pattern `seed` (ut_fill8). */
static inline int ut_ok8(const void *p, size_t len, unsigned seed, const char *what)
{
	size_t bad = ut_check8(p, len, seed);
	if (!ok(bad == SIZE_MAX, "%s: all %zu bytes intact", what, len)) {
		diag("first difference at offset %zu (address %p): 0x%02x, want 0x%02x",
		     bad, (const void *)((const uint8_t *)p + bad),
		     ((const uint8_t *)p)[bad], ut_pat8(seed, bad));
		return 0;
	}
	return 1;
}

/* One assertion: the bytes match pattern `seed` (ut_fill64). */
static inline int ut_ok64(const void *p, size_t len, unsigned seed, const char *what)
{
	size_t bad = ut_check64(p, len, seed);
	if (!ok(bad == SIZE_MAX, "%s: all %zu bytes intact", what, len)) {
		uint64_t got = *(const uint64_t *)(const void *)((const uint8_t *)p + bad);
		diag("first difference at offset %zu (address %p, page %zu): 0x%016" PRIx64
		     ", want 0x%016" PRIx64 "%s", bad,
		     (const void *)((const uint8_t *)p + bad), bad / ut_page(), got,
		     ut_pat64(seed, bad / 8), got == 0 ? " (zero)" : "");
		return 0;
	}
	return 1;
}

static inline int ut_okzero(const void *p, size_t len, const char *what)
{
	size_t bad = ut_check_zero(p, len);
	if (!ok(bad == SIZE_MAX, "%s: all %zu bytes zero", what, len)) {
		diag("first non-zero byte at offset %zu (page %zu): 0x%02x", bad,
		     bad / ut_page(), ((const uint8_t *)p)[bad]);
		return 0;
	}
	return 1;
}

/* ---------------------------------------------------------------- */
/* Placement                                                         */
/* ---------------------------------------------------------------- */

/* Locations of the pages overlapping [p, p+len) (malloc'd, free it), or
 * NULL with *rc set. */
static inline int *ut_where(struct uhmm *h, const void *p, size_t len, int *rc)
{
	size_t n = ut_npages(p, len);
	int *loc = malloc((n + 1) * sizeof(int));

	if (!loc)
		tap_bail("malloc");
	for (size_t i = 0; i <= n; i++)
		loc[i] = -1000;
	*rc = uhmm_where(h, p, len, loc);
	if (*rc == 0 && loc[n] != -1000)
		diag("uhmm_where wrote past the %zu entries of the range", n);
	if (*rc) {
		free(loc);
		return NULL;
	}
	return loc;
}

/* How many pages of [p, p+len) are at `want`; -1 if uhmm_where failed. */
static inline long ut_where_count(struct uhmm *h, const void *p, size_t len, int want)
{
	int rc;
	int *loc = ut_where(h, p, len, &rc);
	long c = 0;

	if (!loc) {
		diag("uhmm_where(%p, %zu): %d (%s)", p, len, rc, ut_err(rc));
		return -1;
	}
	for (size_t i = 0, n = ut_npages(p, len); i < n; i++)
		c += loc[i] == want;
	free(loc);
	return c;
}

/* One assertion: every page of [p, p+len) is at `want`. */
static inline int ut_check_where(struct uhmm *h, const void *p, size_t len, int want,
				 const char *what)
{
	int rc;
	int *loc = ut_where(h, p, len, &rc);
	size_t n = ut_npages(p, len), bad = 0, first = 0;

	if (!loc) {
		ok(0, "%s: uhmm_where -> every page at %d", what, want);
		diag("uhmm_where(%p, %zu): %d (%s)", p, len, rc, ut_err(rc));
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (loc[i] != want && !bad++)
			first = i;
	if (!ok(bad == 0, "%s: uhmm_where -> all %zu pages at %d", what, n, want))
		diag("%zu pages elsewhere; first: page %zu at %d", bad, first, loc[first]);
	free(loc);
	return bad == 0;
}

/* Nothing moved: every page is SYSTEM or NONE. */
static inline int ut_check_unmoved(struct uhmm *h, const void *p, size_t len, const char *what)
{
	int rc;
	int *loc = ut_where(h, p, len, &rc);
	size_t n = ut_npages(p, len), bad = 0, first = 0;

	if (!loc) {
		ok(0, "%s: nothing moved", what);
		diag("uhmm_where(%p, %zu): %d (%s)", p, len, rc, ut_err(rc));
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (loc[i] != UHMM_LOC_SYSTEM && loc[i] != UHMM_LOC_NONE && !bad++)
			first = i;
	if (!ok(bad == 0, "%s: nothing moved (%zu pages SYSTEM or NONE)", what, n))
		diag("%zu pages moved; first: page %zu at %d", bad, first, loc[first]);
	free(loc);
	return bad == 0;
}

/* ---------------------------------------------------------------- */
/* /proc                                                             */
/* ---------------------------------------------------------------- */

/* statm "resident", in pages. */
static inline long ut_rss_pages(void)
{
	long size = 0, res = -1;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%ld %ld", &size, &res) != 2)
			res = -1;
		fclose(f);
	}
	return res;
}

/* A "Key:  N kB" line of /proc/self/status, in kB; -1 if absent. */
static inline long ut_status_kb(const char *key)
{
	char line[256];
	size_t kl = strlen(key);
	long v = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			v = strtol(line + kl + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static inline long ut_rss_anon_kb(void)
{
	return ut_status_kb("RssAnon");
}

struct ut_maps_line {
	uintptr_t lo, hi;
	char perms[8];
	char path[512];
};

/* Calls cb for each /proc/self/maps line overlapping [lo, hi); stops when
 * cb returns non-zero.  Returns the number of lines visited, or -1. */
static inline long ut_maps_each(uintptr_t lo, uintptr_t hi,
				int (*cb)(const struct ut_maps_line *, void *), void *arg)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char *line = NULL;
	size_t cap = 0;
	long n = 0;

	if (!f)
		return -1;
	while (getline(&line, &cap, f) > 0) {
		struct ut_maps_line m;
		unsigned long a, b, off;
		int pos = 0;
		char dev[32];
		unsigned long ino;

		memset(&m, 0, sizeof(m));
		if (sscanf(line, "%lx-%lx %7s %lx %31s %lu %n", &a, &b, m.perms, &off,
			   dev, &ino, &pos) < 6)
			continue;
		m.lo = a;
		m.hi = b;
		if (pos > 0) {
			size_t l;
			snprintf(m.path, sizeof(m.path), "%s", line + pos);
			l = strlen(m.path);
			while (l && (m.path[l - 1] == '\n' || m.path[l - 1] == ' '))
				m.path[--l] = 0;
		}
		if (m.hi <= lo || m.lo >= hi)
			continue;
		n++;
		if (cb && cb(&m, arg))
			break;
	}
	free(line);
	fclose(f);
	return n;
}

/* Number of mappings overlapping the range. */
static inline long ut_maps_count(const void *p, size_t len)
{
	return ut_maps_each((uintptr_t)p, (uintptr_t)p + len, NULL, NULL);
}

struct ut_maps_acc {
	long lines, with_w, with_path;
	char first_path[512];
	char first_perms[8];
};

static inline int ut_maps_acc_cb(const struct ut_maps_line *m, void *arg)
{
	struct ut_maps_acc *a = arg;

	a->lines++;
	if (strchr(m->perms, 'w')) {
		if (!a->with_w++)
			snprintf(a->first_perms, sizeof(a->first_perms), "%s", m->perms);
	}
	if (m->path[0]) {
		if (!a->with_path++)
			snprintf(a->first_path, sizeof(a->first_path), "%s", m->path);
	}
	return 0;
}

/* Summary of the mappings overlapping the range. */
static inline struct ut_maps_acc ut_maps_summary(const void *p, size_t len)
{
	struct ut_maps_acc a;

	memset(&a, 0, sizeof(a));
	ut_maps_each((uintptr_t)p, (uintptr_t)p + len, ut_maps_acc_cb, &a);
	return a;
}

static inline int ut_prot_cb(const struct ut_maps_line *m, void *arg)
{
	*(int *)arg = (m->perms[0] == 'r' ? PROT_READ : 0) |
		      (m->perms[1] == 'w' ? PROT_WRITE : 0) |
		      (m->perms[2] == 'x' ? PROT_EXEC : 0);
	return 1;
}

/* The protection of the mapping holding p, as /proc/self/maps says; -1
 * for a hole. */
static inline int ut_prot_at(const void *p)
{
	int prot = -1;

	ut_maps_each((uintptr_t)p, (uintptr_t)p + 1, ut_prot_cb, &prot);
	return prot;
}

/* ---------------------------------------------------------------- */
/* Children                                                          */
/* ---------------------------------------------------------------- */

/*
 * Run fn(arg) in a forked child that then exits 0.  Returns the signal
 * that killed the child (> 0), 0 for exit status 0, or -(status) for
 * another exit status.  SIGSEGV/SIGBUS get their default action in the
 * child so that a sanitizer's handler does not turn the signal into an
 * exit status.
 */
static inline int ut_child(void (*fn)(void *), void *arg)
{
	int st = 0;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		tap_bail("fork: %s", strerror(errno));
	if (pid == 0) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = SIG_DFL;
		sigaction(SIGSEGV, &sa, NULL);
		sigaction(SIGBUS, &sa, NULL);
		alarm(30);
		fn(arg);
		_exit(0);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			tap_bail("waitpid: %s", strerror(errno));
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return WEXITSTATUS(st) ? -WEXITSTATUS(st) : 0;
}

/* A temporary file in $TMPDIR (or /tmp), unlinked; returns the fd. */
static inline int ut_tmpfile(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	snprintf(path, sizeof(path), "%s/uhmm-test-XXXXXX", dir);
	fd = mkstemp(path);
	if (fd < 0)
		tap_bail("mkstemp(%s): %s", path, strerror(errno));
	unlink(path);
	return fd;
}

/* Does the mapping holding p carry userfaultfd flags (smaps' um/uw/ui)? */
static inline bool ut_uffd_armed(const void *p)
{
	FILE *f = fopen("/proc/self/smaps", "r");
	char line[512];
	bool in = false, armed = false;

	if (!f)
		tap_bail("/proc/self/smaps: %s", strerror(errno));
	while (fgets(line, sizeof(line), f)) {
		unsigned long a, b;

		if (sscanf(line, "%lx-%lx ", &a, &b) == 2 && strchr(line, '-') < strchr(line, ' ')) {
			in = a <= (uintptr_t)p && (uintptr_t)p < b;
			continue;
		}
		if (in && !strncmp(line, "VmFlags:", 8))
			armed = strstr(line, " um") || strstr(line, " uw") || strstr(line, " ui");
	}
	fclose(f);
	return armed;
}

/*
 * Threads of this process whose name starts with `prefix`, -1 when
 * /proc/self/task cannot be read.  One pass over the directory, so that
 * *others (the threads whose name does not start with it, where not NULL)
 * is of the same moment; with `say`, each thread's name goes to the log.
 */
static inline int ut_threads_scan(const char *prefix, int *others, bool say)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0, rest = 0;

	if (!d)
		return -1;
	while ((e = readdir(d))) {
		char path[300], name[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;	/* gone since readdir */
		if (!fgets(name, sizeof(name), f))
			name[0] = '\0';
		fclose(f);
		name[strcspn(name, "\n")] = '\0';
		if (say)
			diag("thread %s: %s", e->d_name, name);
		if (!strncmp(name, prefix, strlen(prefix)))
			n++;
		else
			rest++;
	}
	closedir(d);
	if (others)
		*others = rest;
	return n;
}

static inline int ut_threads_named(const char *prefix)
{
	return ut_threads_scan(prefix, NULL, false);
}

/*
 * ut_threads_named once the count is at most `max`, or after 10 s.
 * pthread_join returns before the kernel takes the thread out of
 * /proc/self/task, so a count taken just after uhmm_close may still see a
 * thread it joined.
 */
static inline int ut_threads_named_settled(const char *prefix, int max)
{
	int n;

	for (int i = 0; (n = ut_threads_named(prefix)) > max && i < 10000; i++)
		usleep(1000);
	return n;
}

#endif
