/* SPDX-License-Identifier: MIT */
/*
 * Every bad input of API.md gives its errno and moves nothing: NULL
 * handles, len 0, ranges that wrap, unknown flags and enum values, holes,
 * PROT_NONE, shared and file mappings, hugetlb, the main thread's stack,
 * mseal'd memory, memory another context manages, a device of another
 * context, bad device descriptions, unknown non-zero struct tails; and
 * uhmm_strerror gives text for any code of either sign.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <sys/sysinfo.h>
#include <time.h>
#include "util.h"

static struct uhmm *h;

/*
 * What the library writes on stderr while a DMA of d over p gives up with
 * -EBUSY, UHMM_DEBUG set to debug (or unset): `want` in it, or nothing
 * where want is "".
 */
static void busy_said(struct uhmm_dev *d, void *p, char *buf, const char *debug,
		      const char *want)
{
	char said[512] = "";
	int saved = dup(2), fd = memfd_create("stderr", MFD_CLOEXEC);
	ssize_t n;

	if (debug)
		setenv("UHMM_DEBUG", debug, 1);
	else
		unsetenv("UHMM_DEBUG");
	dup2(fd, 2);
	is_int(uhmm_sim_read(d, p, buf, 3 * ut_page()), -EBUSY, "the -EBUSY again (UHMM_DEBUG=%s)",
	       debug ? debug : "unset");
	dup2(saved, 2);
	close(saved);
	n = pread(fd, said, sizeof(said) - 1, 0);
	said[n > 0 ? n : 0] = 0;
	close(fd);
	unsetenv("UHMM_DEBUG");
	if (*want)
		ok(strstr(said, want) != NULL, "UHMM_DEBUG=%s: the library says which refusal "
		   "it kept meeting (\"%s\")", debug, want);
	else
		is_int((int)strlen(said), 0, "UHMM_DEBUG unset: nothing on stderr");
}
static struct uhmm_dev *dev;
static int id;

/* An error case on [p, len): rc must be `want`, and nothing moved. */
static void bad_migrate(void *p, size_t len, struct uhmm_dev *to, unsigned flags, int want,
			const char *what)
{
	struct uhmm_migrate_res res = { .sz = sizeof(res) };
	int rc = uhmm_migrate(h, p, len, to, flags);

	if (!ok_errno(rc, want, "%s: uhmm_migrate", what))
		diag("got %d (%s)", rc, ut_err(rc));
	rc = uhmm_migrate_ex(h, p, len, to, flags, &res);
	if (!ok_errno(rc, want, "%s: uhmm_migrate_ex", what))
		diag("got %d (%s)", rc, ut_err(rc));
	if (!ok(res.moved == 0, "%s: res.moved 0", what))
		diag("res.moved %zu", res.moved);
}

static struct uhmm_dev_desc desc(int fd, size_t size, uint64_t off)
{
	struct uhmm_dev_desc d;

	memset(&d, 0, sizeof(d));
	d.sz = sizeof(d);
	d.name = "bad";
	d.kind = UHMM_MEM_COHERENT;
	d.size = size;
	d.fd = fd;
	d.fd_offset = off;
	return d;
}

static void dev_add_fails(const struct uhmm_dev_desc *d, int want, int want2, const char *what)
{
	struct uhmm_dev *out = NULL;
	int rc = uhmm_dev_add(h, d, &out);

	if (want2 && rc == want2)
		want = want2;
	if (!ok_errno(rc, want, "uhmm_dev_add %s", what))
		diag("got %d (%s)", rc, ut_err(rc));
	if (rc == 0 && out)
		uhmm_dev_remove(out);
}

int main(void)
{
	size_t pg, len;
	uint8_t *p;
	int loc[64];
	int rc;

	ut_init(120);
	pg = ut_page();
	h = ut_open();
	dev = ut_sim(h, "sim", 16 * UT_MiB);
	id = ut_dev_id(dev);
	len = 16 * pg;
	p = ut_map(len);
	ut_fill64(p, len, 101);

	/* ---- NULL handles ---- */
	{
		struct uhmm_migrate_res res = { .sz = sizeof(res) };
		struct uhmm_dev_info in = { .sz = sizeof(in) };
		struct uhmm_stats st = { .sz = sizeof(st) };
		struct uhmm_dev_desc d = desc(-1, UT_MiB, 0);
		struct uhmm_dev *out = NULL;
		uint64_t feat = 0, off = 0;
		int l = 0;
		void *a;

		is_int(uhmm_migrate(NULL, p, len, dev, 0), -EINVAL, "uhmm_migrate(NULL handle)");
		is_int(uhmm_migrate(NULL, p, len, NULL, 0), -EINVAL, "uhmm_migrate(NULL handle, to system)");
		is_int(uhmm_migrate_ex(NULL, p, len, dev, 0, &res), -EINVAL, "uhmm_migrate_ex(NULL handle)");
		is_int(uhmm_where(NULL, p, len, loc), -EINVAL, "uhmm_where(NULL handle)");
		is_int(uhmm_dev_offset(NULL, p, &l, &off), -EINVAL, "uhmm_dev_offset(NULL handle)");
		is_int(uhmm_features(NULL, &feat), -EINVAL, "uhmm_features(NULL handle)");
		is_int(uhmm_dev_add(NULL, &d, &out), -EINVAL, "uhmm_dev_add(NULL handle)");
		is_int(uhmm_dev_add_sim(NULL, "x", UHMM_MEM_COHERENT, UT_MiB, &out), -EINVAL,
		       "uhmm_dev_add_sim(NULL handle)");
		is_int(uhmm_dev_add_file(NULL, "/nonexistent/uhmm", UT_MiB, &out), -EINVAL,
		       "uhmm_dev_add_file(NULL handle)");
		is_int(uhmm_dev_remove(NULL), -EINVAL, "uhmm_dev_remove(NULL)");
		is_int(uhmm_dev_info(NULL, &in), -EINVAL, "uhmm_dev_info(NULL)");
		is_int(uhmm_stats(NULL, &st), -EINVAL, "uhmm_stats(NULL handle)");
		is_int(uhmm_dev_stats(NULL, &st), -EINVAL, "uhmm_dev_stats(NULL)");
		is_int(uhmm_free(NULL, p), -EINVAL, "uhmm_free(NULL handle)");
		is_int(uhmm_unmanage(NULL, p, len), -EINVAL, "uhmm_unmanage(NULL handle)");
		errno = 0;
		a = uhmm_alloc(NULL, UT_MiB, NULL, 0);
		ok(a == NULL && errno == EINVAL, "uhmm_alloc(NULL handle): NULL, errno EINVAL (errno %d)", errno);
		uhmm_close(NULL);
		ok(1, "uhmm_close(NULL) does nothing");
		ok(out == NULL, "no device handed out by the failed calls");
		ut_check_unmoved(h, p, len, "after the NULL-handle calls");
	}

	/* ---- len 0, wrap-around, unknown flags ---- */
	bad_migrate(p, 0, dev, 0, -EINVAL, "len 0");
	bad_migrate(p, 0, NULL, 0, -EINVAL, "len 0 to system");
	is_int(uhmm_where(h, p, 0, loc), -EINVAL, "uhmm_where len 0");
	is_int(uhmm_unmanage(h, p, 0), -EINVAL, "uhmm_unmanage len 0");
	bad_migrate((void *)(UINTPTR_MAX - pg + 1), 2 * pg, dev, 0, -EINVAL, "range wrapping the address space");
	bad_migrate(p, SIZE_MAX, dev, 0, -EINVAL, "len SIZE_MAX from a real address (wraps)");
	bad_migrate(p, SIZE_MAX - (uintptr_t)p + 2, dev, 0, -EINVAL, "end just past the top of the address space");
	is_int(uhmm_where(h, (void *)(UINTPTR_MAX - pg + 1), 2 * pg, loc), -EINVAL, "uhmm_where wrapping");
	is_int(uhmm_unmanage(h, (void *)(UINTPTR_MAX - pg + 1), 2 * pg), -EINVAL, "uhmm_unmanage wrapping");
	is_int(uhmm_unmanage(h, (void *)(UINTPTR_MAX - pg + 1), pg - 1), -EINVAL,
	       "uhmm_unmanage of the last page (its end would wrap)");
	bad_migrate(p, len, dev, 0x4, -EINVAL, "unknown flag 0x4");
	bad_migrate(p, len, dev, 0x80000000u, -EINVAL, "unknown flag 0x80000000");
	bad_migrate(p, len, dev, ~0u, -EINVAL, "all flag bits");
	ut_check_unmoved(h, p, len, "after len/wrap/flag errors");
	ut_ok64(p, len, 101, "data after len/wrap/flag errors");

	/* ---- a hole ---- */
	{
		uint8_t *q = ut_map(3 * pg);
		ut_fill64(q, 3 * pg, 102);
		munmap(q + pg, pg);
		bad_migrate(q, 3 * pg, dev, 0, -EFAULT, "a hole in the middle");
		bad_migrate(q + 10, 2 * pg, dev, 0, -EFAULT, "a range ending in a hole");
		bad_migrate(q + pg + 5, 2 * pg, dev, 0, -EFAULT, "a range starting in a hole");
		bad_migrate(q + pg, pg, dev, 0, -EFAULT, "only a hole");
		is_int(uhmm_where(h, q, 3 * pg, loc), -EFAULT, "uhmm_where over the hole: -EFAULT");
		ut_check_unmoved(h, q, pg, "page before the hole");
		ut_check_unmoved(h, q + 2 * pg, pg, "page after the hole");
		ok(ut_check64(q, pg, 102) == SIZE_MAX, "page before the hole intact");
		munmap(q, 3 * pg);
	}

	/* ---- PROT_NONE ---- */
	{
		uint8_t *q = mmap(NULL, 4 * pg, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		bad_migrate(q, 4 * pg, dev, 0, -EINVAL, "PROT_NONE range");
		munmap(q, 4 * pg);
		q = ut_map(4 * pg);
		ut_fill64(q, 4 * pg, 103);
		mprotect(q + 2 * pg, 2 * pg, PROT_NONE);
		bad_migrate(q, 4 * pg, dev, 0, -EINVAL, "read-write pages then PROT_NONE pages");
		ut_check_unmoved(h, q, 2 * pg, "the read-write pages before PROT_NONE");
		ok(ut_check64(q, 2 * pg, 103) == SIZE_MAX, "their data intact");
		munmap(q, 4 * pg);
	}

	/* ---- shared and file mappings ---- */
	{
		uint8_t *q = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		int fd;
		if (q == MAP_FAILED)
			tap_bail("mmap shared");
		ut_fill64(q, 4 * pg, 104);
		bad_migrate(q, 4 * pg, dev, 0, -EINVAL, "MAP_SHARED anonymous mapping");
		ut_check_unmoved(h, q, 4 * pg, "MAP_SHARED anonymous mapping");
		ok(ut_check64(q, 4 * pg, 104) == SIZE_MAX, "its data intact");
		munmap(q, 4 * pg);

		fd = ut_tmpfile();
		if (ftruncate(fd, (off_t)(4 * pg)))
			tap_bail("ftruncate");
		q = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (q == MAP_FAILED)
			tap_bail("mmap file private");
		q[0] = 1;
		bad_migrate(q, 4 * pg, dev, 0, -EINVAL, "MAP_PRIVATE file mapping");
		ut_check_unmoved(h, q, 4 * pg, "MAP_PRIVATE file mapping");
		munmap(q, 4 * pg);
		q = mmap(NULL, 4 * pg, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (q == MAP_FAILED)
			tap_bail("mmap file shared");
		q[0] = 1;
		bad_migrate(q, 4 * pg, dev, 0, -EINVAL, "MAP_SHARED file mapping");
		ut_check_unmoved(h, q, 4 * pg, "MAP_SHARED file mapping");
		munmap(q, 4 * pg);
		/* An anonymous range with a file mapping in its middle. */
		q = ut_map(3 * pg);
		ut_fill64(q, 3 * pg, 105);
		if (mmap(q + pg, pg, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
			tap_bail("mmap fixed");
		bad_migrate(q, 3 * pg, dev, 0, -EINVAL, "anonymous range with a file page in the middle");
		ut_check_unmoved(h, q, pg, "its first page");
		munmap(q, 3 * pg);
		close(fd);
	}

	/* ---- a device of another context ---- */
	{
		struct uhmm *h2 = ut_open();
		struct uhmm_dev *d2 = ut_sim(h2, "other", 16 * UT_MiB);
		bad_migrate(p, len, d2, 0, -EINVAL, "a device of another context");
		ut_check_unmoved(h, p, len, "after the other context's device");

		/* Memory the first context manages is -EBUSY for the second. */
		rc = uhmm_migrate(h, p, len, dev, 0);
		is_int(rc, 0, "migrate to our device");
		rc = uhmm_migrate(h2, p, len, d2, 0);
		is_int(rc, -EBUSY, "another context migrating our device pages: -EBUSY");
		rc = uhmm_migrate(h2, p, len, NULL, 0);
		is_int(rc, -EBUSY, "another context migrating them to system memory: -EBUSY");
		ut_check_where(h, p, len, id, "still on our device");
		is_int(ut_dev_used(d2), 0, "nothing on the other context's device");
		ut_ok64(p, len, 101, "data after the -EBUSY");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "back to system memory");
		{
			/* still ours, in system memory: a DMA of the other
			 * context's device over it is -EBUSY, not a fault round
			 * retried for ever (found by fuzz/fuzz_args.c) */
			static char buf[3 * 4096];
			is_int(uhmm_sim_read(d2, p, buf, 3 * pg), -EBUSY,
			       "uhmm_sim_read by another context's device: -EBUSY");
			is_int(uhmm_sim_write(d2, p, buf, 3 * pg), -EBUSY,
			       "uhmm_sim_write by another context's device: -EBUSY");
			busy_said(d2, p, buf, NULL, "");
			busy_said(d2, p, buf, "busy", "gave up after 64 rounds: -EBUSY from manage_range");
		}
		uhmm_close(h2);
	}

	/* ---- device descriptions ---- */
	{
		struct uhmm_dev *out = NULL;
		struct uhmm_dev_desc d;
		int fd, rofd;
		char path[64];

		is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, 0, &out), -EINVAL, "uhmm_dev_add_sim size 0");
		is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, pg + 1, &out), -EINVAL,
		       "uhmm_dev_add_sim size not a page multiple");
		is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, UT_MiB - 8, &out), -EINVAL,
		       "uhmm_dev_add_sim size 1 MiB - 8");
		is_int(uhmm_dev_add_sim(h, "x", (enum uhmm_mem)0, UT_MiB, &out), -EINVAL, "uhmm_dev_add_sim kind 0");
		is_int(uhmm_dev_add_sim(h, "x", (enum uhmm_mem)7, UT_MiB, &out), -EINVAL, "uhmm_dev_add_sim kind 7");
		/* size + the sim's sparse tail must not wrap to a small memfd */
		is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, SIZE_MAX & ~(pg - 1), &out), -ENOMEM,
		       "uhmm_dev_add_sim of 2^64 - 4 KiB: -ENOMEM");
		is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_PRIVATE, SIZE_MAX & ~(pg - 1), &out), -ENOMEM,
		       "uhmm_dev_add_sim PRIVATE of 2^64 - 4 KiB: -ENOMEM");
		ok(out == NULL, "no device handed out");
		{
			/* more than RAM + swap could never be populated: refused
			 * at once, not after minutes of filling a memfd */
			struct sysinfo si;
			struct timespec t0, t1;
			unsigned long long mem;
			size_t big;

			if (sysinfo(&si))
				tap_bail("sysinfo");
			mem = ((unsigned long long)si.totalram + si.totalswap) * (si.mem_unit ? si.mem_unit : 1);
			big = (size_t)((mem + pg) & ~(unsigned long long)(pg - 1));
			clock_gettime(CLOCK_MONOTONIC, &t0);
			is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, big, &out), -ENOMEM,
			       "uhmm_dev_add_sim COHERENT larger than RAM + swap: -ENOMEM");
			is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_PRIVATE, big, &out), -ENOMEM,
			       "uhmm_dev_add_sim PRIVATE larger than RAM + swap: -ENOMEM");
			if (mem < (1ull << 40))
				is_int(uhmm_dev_add_sim(h, "x", UHMM_MEM_COHERENT, (size_t)1 << 40, &out), -ENOMEM,
				       "uhmm_dev_add_sim COHERENT of 1 TiB on this machine: -ENOMEM");
			clock_gettime(CLOCK_MONOTONIC, &t1);
			ok((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < 1000,
			   "refused fast (under 1 s)");
			ok(out == NULL, "no device handed out");
		}

		fd = memfd_create("uhmm-bad", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, (off_t)(4 * UT_MiB)))
			tap_bail("memfd");
		d = desc(-1, UT_MiB, 0);
		dev_add_fails(&d, -EINVAL, -EBADF, "COHERENT with fd -1");
		d = desc(987, UT_MiB, 0);
		dev_add_fails(&d, -EINVAL, -EBADF, "COHERENT with a closed fd number");
		d = desc(fd, 0, 0);
		dev_add_fails(&d, -EINVAL, 0, "size 0");
		d = desc(fd, UT_MiB + 100, 0);
		dev_add_fails(&d, -EINVAL, 0, "size not a page multiple");
		d = desc(fd, 8 * UT_MiB, 0);
		dev_add_fails(&d, -EINVAL, 0, "fd smaller than size");
		d = desc(fd, 4 * UT_MiB, pg);
		dev_add_fails(&d, -EINVAL, 0, "fd smaller than fd_offset + size");
		d = desc(fd, UT_MiB, 100);
		dev_add_fails(&d, -EINVAL, 0, "fd_offset not a page multiple");
		/* fd_offset + size wraps past 2^64 to within the file: no device
		 * (it passed the file-size check, then tried to make one of
		 * 2^64 - 4 KiB, as fuzz_args could) */
		d = desc(fd, SIZE_MAX & ~(pg - 1), pg);
		dev_add_fails(&d, -EINVAL, 0, "fd_offset + size wrapping to within the file");
		d = desc(fd, UT_MiB, 0);
		d.kind = (enum uhmm_mem)0;
		dev_add_fails(&d, -EINVAL, 0, "kind 0");
		d.kind = (enum uhmm_mem)9;
		dev_add_fails(&d, -EINVAL, 0, "kind 9");
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		rofd = open(path, O_RDONLY | O_CLOEXEC);
		if (rofd < 0) {
			skip("cannot reopen the memfd read-only: %s", strerror(errno));
		} else {
			d = desc(rofd, UT_MiB, 0);
			dev_add_fails(&d, -EACCES, 0, "fd open read-only");
			close(rofd);
		}
		{
			struct { struct uhmm_dev_desc d; uint64_t extra[2]; } big;
			memset(&big, 0, sizeof(big));
			big.d = desc(fd, UT_MiB, 0);
			big.d.sz = sizeof(big);
			big.extra[1] = 1;
			dev_add_fails(&big.d, -E2BIG, 0, "desc sz larger with a non-zero tail");
		}
		/* The same fd is fine with a good description. */
		d = desc(fd, 4 * UT_MiB, 0);
		rc = uhmm_dev_add(h, &d, &out);
		is_int(rc, 0, "uhmm_dev_add with the same fd and a good description");
		if (!rc)
			uhmm_dev_remove(out);
		close(fd);
	}

	/* ---- input structs shorter than ours: nothing past sz is read ----
	 * Each ends at a PROT_NONE page: a read past sz would crash.  (Found
	 * by fuzz/fuzz_args.c: both read their callbacks past sz.) */
	{
		uint8_t *g = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		struct uhmm_mirror *m = NULL;
		struct uhmm_dev *out = NULL;
		size_t *s;

		if (g == MAP_FAILED || mprotect(g + pg, pg, PROT_NONE))
			tap_bail("mmap guard");
		s = (size_t *)(g + pg - sizeof(size_t));
		*s = sizeof(size_t);
		is_int(uhmm_mirror_open(dev, (const struct uhmm_mirror_ops *)s, NULL, &m), -EINVAL,
		       "uhmm_mirror_open with ops of sz 8 (no callback): -EINVAL, nothing past sz read");
		ok(m == NULL, "no mirror handed out");
		is_int(uhmm_dev_add(h, (const struct uhmm_dev_desc *)s, &out), -EINVAL,
		       "uhmm_dev_add with a desc of sz 8 (kind 0): -EINVAL, nothing past sz read");
		{
			/* a PRIVATE desc whose ops end after copy_to_dev */
			struct uhmm_dev_ops *o = (struct uhmm_dev_ops *)(g + pg -
				offsetof(struct uhmm_dev_ops, copy_from_dev));
			struct uhmm_dev_desc d2;
			memset(&d2, 0, sizeof(d2));
			d2.sz = sizeof(d2);
			d2.kind = UHMM_MEM_PRIVATE;
			d2.size = UT_MiB;
			d2.fd = -1;
			o->sz = offsetof(struct uhmm_dev_ops, copy_from_dev);
			o->copy_to_dev = NULL;
			d2.ops = o;
			is_int(uhmm_dev_add(h, &d2, &out), -EINVAL,
			       "uhmm_dev_add with ops ending before copy_from_dev: -EINVAL, nothing past sz read");
		}
		ok(out == NULL, "no device handed out");
		munmap(g, 2 * pg);
	}

	/* ---- struct sizes ---- */
	{
		struct { struct uhmm_dev_info i; uint64_t extra[4]; } big;
		memset(&big, 0, sizeof(big));
		big.i.sz = sizeof(big);
		big.extra[3] = 7;
		is_int(uhmm_dev_info(dev, &big.i), -E2BIG, "uhmm_dev_info: sz larger, non-zero tail: -E2BIG");
	}

	/* ---- hugetlb ---- */
	{
		size_t hl = 2 * UT_MiB;
		uint8_t *q = mmap(NULL, hl, PROT_READ | PROT_WRITE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
		if (q == MAP_FAILED) {
			skip("MAP_HUGETLB memory cannot be mapped here (%s; vm.nr_hugepages is probably 0)",
			     strerror(errno));
		} else {
			q[0] = 1;
			bad_migrate(q, hl, dev, 0, -EINVAL, "MAP_HUGETLB memory");
			ut_check_unmoved(h, q, hl, "MAP_HUGETLB memory");
			munmap(q, hl);
		}
	}

	/* ---- the main thread's stack ---- */
	{
		struct { uintptr_t lo, hi; int found; } st = { 0, 0, 0 };
		FILE *f = fopen("/proc/self/maps", "r");
		char line[512];
		while (f && fgets(line, sizeof(line), f)) {
			unsigned long a, b;
			if (strstr(line, "[stack]") && sscanf(line, "%lx-%lx", &a, &b) == 2) {
				st.lo = a;
				st.hi = b;
				st.found = 1;
			}
		}
		if (f)
			fclose(f);
		if (!st.found) {
			skip("no [stack] line in /proc/self/maps");
		} else {
			/* The top pages (environment, auxv): always mapped. */
			void *s = (void *)(st.hi - 2 * pg);
			volatile char here[64];
			here[0] = 1;
			bad_migrate(s, 2 * pg, dev, 0, -EINVAL, "the main thread's stack (top pages)");
			ut_check_unmoved(h, s, 2 * pg, "the stack");
			if ((uintptr_t)here >= st.lo && (uintptr_t)here < st.hi)
				bad_migrate((void *)here, sizeof(here), dev, 0, -EINVAL,
					    "a local variable of main");
		}
	}

	/* ---- mseal ---- */
	{
		uint8_t *q = ut_map(2 * pg);
		ut_fill64(q, 2 * pg, 106);
		if (syscall(SYS_mseal, q, 2 * pg, 0) != 0) {
			skip("mseal is not available here (%s)", strerror(errno));
		} else {
			bad_migrate(q, 2 * pg, dev, 0, -EPERM, "mseal'd memory");
			ut_check_unmoved(h, q, 2 * pg, "mseal'd memory");
			ok(ut_check64(q, 2 * pg, 106) == SIZE_MAX, "mseal'd memory intact");
			/* Ordinary pages followed by a sealed one: checked first. */
			{
				uint8_t *r = ut_map(3 * pg);
				ut_fill64(r, 3 * pg, 107);
				if (syscall(SYS_mseal, r + 2 * pg, pg, 0) == 0) {
					bad_migrate(r, 3 * pg, dev, 0, -EPERM,
						    "two ordinary pages then a sealed one");
					ut_check_unmoved(h, r, 2 * pg, "the ordinary pages");
				}
			}
		}
	}

	/* ---- unmapped memory ---- */
	{
		uint8_t *q = ut_map(4 * pg);
		munmap(q, 4 * pg);
		bad_migrate(q, 4 * pg, dev, 0, -EFAULT, "unmapped memory");
		is_int(uhmm_where(h, q, 4 * pg, loc), -EFAULT, "uhmm_where of unmapped memory");
	}

	/* ---- bad open options ---- */
	{
		struct uhmm_opts o;
		struct uhmm *h3 = NULL;
		memset(&o, 0, sizeof(o));
		o.sz = sizeof(o);
		o.flags = 0x80;
		rc = uhmm_open(&h3, &o);
		is_int(rc, -EINVAL, "uhmm_open with an unknown flag: -EINVAL");
		if (rc == 0)
			uhmm_close(h3);
	}

	/* ---- uhmm_strerror ---- */
	{
		static const int codes[] = { 0, EINVAL, ENOMEM, EAGAIN, E2BIG, ENOSYS, EBUSY, EPERM,
					     EFAULT, EIO, ENODEV, ETIMEDOUT, 4095, 99999, INT_MAX };
		size_t bad = 0;
		for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
			const char *a = uhmm_strerror(codes[i]), *b = uhmm_strerror(-codes[i]);
			if (!a || !b || !*a || !*b) {
				diag("uhmm_strerror(%d) or (-%d) is NULL or empty", codes[i], codes[i]);
				bad++;
			} else if (strcmp(a, b)) {
				diag("uhmm_strerror(%d) \"%s\" != uhmm_strerror(-%d) \"%s\"", codes[i], a,
				     codes[i], b);
				bad++;
			}
		}
		is_int(bad, 0, "uhmm_strerror: non-empty text for codes of either sign, the same for both");
		ok(uhmm_strerror(INT_MIN) != NULL, "uhmm_strerror(INT_MIN) is not NULL");
		diag("uhmm_strerror(-EINVAL) = \"%s\", (-E2BIG) = \"%s\"", uhmm_strerror(-EINVAL),
		     uhmm_strerror(-E2BIG));
	}

	/* ---- an access over a huge reservation and holes: no counter per
	 * 2 MiB of it (a sanitizer's terabytes of shadow made 2 GB of them,
	 * found by fuzz/fuzz_args.c) ---- */
	{
		size_t big = (size_t)1 << 40;
		uint8_t *r = mmap(NULL, big, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		static char buf[64];
		long r0;

		if (r == MAP_FAILED) {
			skip("no 1 TiB PROT_NONE reservation here");
		} else {
			r0 = ut_rss_pages();
			is_int(uhmm_dev_report_access(dev, r - pg, big + 2 * pg, 1), 0,
			       "uhmm_dev_report_access over a hole and 1 TiB of PROT_NONE");
			is_int(uhmm_sim_read(dev, r - pg, buf, big + 2 * pg), -EFAULT,
			       "uhmm_sim_read over a hole and 1 TiB of PROT_NONE: -EFAULT");
			ok(ut_rss_pages() - r0 < (long)(64 * UT_MiB / pg),
			   "no access counters for them (RSS grew %ld KiB)", (ut_rss_pages() - r0) * (long)(pg / 1024));
			munmap(r, big);
		}
	}

	/* ---- a device atomic on a pinned page: -EBUSY, not a spin for
	 * ever (found by fuzz/fuzz_ops.c) ---- */
	{
		uint64_t old = 0, before = ((uint64_t *)p)[0];
		is_int(uhmm_pin(h, p, pg), 0, "uhmm_pin of the first page");
		is_int(uhmm_sim_atomic_add(dev, p, 1, &old), -EBUSY,
		       "uhmm_sim_atomic_add on a pinned page: -EBUSY");
		ok(((uint64_t *)p)[0] == before, "the pinned word is unchanged");
		is_int(uhmm_unpin(h, p, pg), 0, "uhmm_unpin");
		rc = uhmm_migrate(h, p, len, NULL, 0);
		is_int(rc, 0, "back to system memory after the atomic");
	}

	ut_check_unmoved(h, p, len, "the first range at the end");
	ut_ok64(p, len, 101, "the first range at the end");
	is_int(ut_dev_used(dev), 0, "the device is empty at the end");
	munmap(p, len);
	uhmm_close(h);
	return tap_done();
}
