// SPDX-License-Identifier: MIT
/*
 * libuhmm-preload.so: the configuration, the context, fork and exit.
 *
 * The constructor only reads the environment.  The context and its
 * devices are made at the first allocation of at least UHMM_MIN_SIZE
 * bytes, so that the many small processes of a pipeline or a build pay
 * nothing.  fork() is the library's: the child gets a private snapshot of
 * the placed pages (UHMM_FORK=copy, the default) or finds them
 * inaccessible (nocopy: UHMM_OPEN_FORK_NOCOPY, for children that exec at
 * once), and no context; its large allocations are glibc's.  exec: UHMM_*
 * and LD_PRELOAD stay in the environment, so an exec'd program gets the
 * preload (and a context of its own) again.
 *
 * uhmm_advise(PREFERRED_LOCATION) on a range would let the program's own
 * anonymous mmaps be placed too, without the preload owning them: not
 * done yet.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "preload.h"

#define DEFAULT_DEVICES	"sim:coherent:256M"
#define DEFAULT_MIN	(1ul << 20)

struct preload pl = { .lock = PTHREAD_MUTEX_INITIALIZER };
TLS int pl_busy;

void pl_log(const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	n = snprintf(buf, sizeof(buf), "uhmm[%d]: ", (int)getpid());
	va_start(ap, fmt);
	n += vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	if (write(2, buf, (size_t)n) < 0) {
		/* nowhere to say it */
	}
}

/* ---- configuration ------------------------------------------------------ */

static const char *env(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return v && *v ? v : dflt;
}

/* A file device is the memory of one process: an exec'd child taking it
 * too would write over its parent's pages.  The first to lock it has it. */
static bool file_free(const struct devspec *s)
{
	int fd = open(s->path, O_RDWR | O_CLOEXEC);

	if (fd < 0)
		return true;	/* uhmm_dev_add_file says why */
	if (flock(fd, LOCK_EX | LOCK_NB)) {
		close(fd);
		return false;
	}
	return true;		/* the lock lives as long as the process */
}

static int read_config(char *err, size_t len)
{
	struct devspec specs[DEVSPEC_MAX];
	const char *prefer = getenv("UHMM_PREFER"), *fork_mode = env("UHMM_FORK", "copy");
	int n;

	n = devspec_parse_list(env("UHMM_DEVICES", DEFAULT_DEVICES), specs, DEVSPEC_MAX,
			       err, len);
	if (n < 0)
		return n;
	pl.ndev = n;
	for (int i = 0; i < n; i++)
		pl.dev[i].spec = specs[i];
	pl.prefer = 0;
	if (prefer && *prefer) {
		pl.prefer = devspec_find(specs, n, prefer);
		if (pl.prefer < 0) {
			snprintf(err, len, "UHMM_PREFER=%s: no such device", prefer);
			return -EINVAL;
		}
	}
	pl.min_size = DEFAULT_MIN;
	if (getenv("UHMM_MIN_SIZE") &&
	    (parse_size(getenv("UHMM_MIN_SIZE"), &pl.min_size) || pl.min_size < 4096)) {
		snprintf(err, len, "UHMM_MIN_SIZE=%s: a size of at least 4K",
			 getenv("UHMM_MIN_SIZE"));
		return -EINVAL;
	}
	if (!strcmp(fork_mode, "copy")) {
		pl.fork = FORK_COPY;
	} else if (!strcmp(fork_mode, "nocopy")) {
		pl.fork = FORK_NOCOPY;
	} else {
		snprintf(err, len, "UHMM_FORK=%s: copy or nocopy", fork_mode);
		return -EINVAL;
	}
	pl.verbose = env("UHMM_VERBOSE", "0")[0] != '0';
	pl.stats_path = getenv("UHMM_STATS");
	return 0;
}

/* ---- the context ---------------------------------------------------------- */

static int add_devices(struct uhmm *h)
{
	int added = 0;

	for (int i = 0; i < pl.ndev; i++) {
		struct pdev *d = &pl.dev[i];
		int r;

		if (d->spec.type == DEVSPEC_FILE && !file_free(&d->spec)) {
			pl_log("device %s (%s): the file is another process's device; "
			       "not used here", d->spec.name, d->spec.text);
			continue;
		}
		r = devspec_add(h, &d->spec, &d->dev);
		if (r) {
			pl_log("device %s (%s): %s; not used", d->spec.name, d->spec.text,
			       r == -EOPNOTSUPP ? "uhmm was built without OpenCL"
						: uhmm_strerror(r));
			d->dev = NULL;
			continue;
		}
		added++;
	}
	return added;
}

static void fork_handlers(void);

struct uhmm *pl_context(void)
{
	static pthread_once_t handlers = PTHREAD_ONCE_INIT;
	struct uhmm_opts o = { .sz = sizeof(o) };
	int r;

	if (pl.h || pl.ctx_failed || pl.child)
		return pl.h;
	pl.ctx_failed = true;	/* until it worked */
	if (pl.fork == FORK_NOCOPY)
		o.flags |= UHMM_OPEN_FORK_NOCOPY;
	r = uhmm_open(&pl.h, &o);
	if (r) {
		pl_log("uhmm_open: %s (see `uhmm info`); allocations stay in system memory",
		       uhmm_strerror(r));
		pl.h = NULL;
		return NULL;
	}
	if (!add_devices(pl.h)) {
		pl_log("no device could be added; allocations stay in system memory");
		uhmm_close(pl.h);
		pl.h = NULL;
		return NULL;
	}
	pl.ctx_failed = false;
	pthread_once(&handlers, fork_handlers);
	if (pl.verbose)
		pl_log("context open, %d device(s), preferred %s, min size %zu",
		       pl.ndev, pl.dev[pl.prefer].spec.name, pl.min_size);
	return pl.h;
}

/* ---- fork ------------------------------------------------------------------ */

/*
 * The library snapshots the placed pages for the child itself, holding
 * every context across the fork; the preload only keeps its table still.
 * Its handlers are registered after the library's (at the first
 * uhmm_open), so that its prepare runs first: pl.lock, then the contexts,
 * the order big_alloc takes them in.
 */
static void fork_prepare(void)
{
	pl_busy++;
	pthread_mutex_lock(&pl.lock);
}

static void fork_parent(void)
{
	pthread_mutex_unlock(&pl.lock);
	pl_busy--;
}

static void fork_child(void)
{
	/* the context's threads did not come along: never touch it again */
	pl.child = true;
	pl.h = NULL;
	big_forget_context();
	pthread_mutex_init(&pl.lock, NULL);
	pl_busy--;
}

static void fork_handlers(void)
{
	pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* ---- statistics at exit ------------------------------------------------ */

static void comm_of(char *out, size_t len)
{
	ssize_t n;
	int fd = open("/proc/self/comm", O_RDONLY | O_CLOEXEC);

	out[0] = '\0';
	if (fd >= 0) {
		n = read(fd, out, len - 1);
		out[n > 0 ? n : 0] = '\0';
		close(fd);
	}
	for (char *c = out; *c; c++)
		if (*c == ' ' || *c == '\n' || *c == '=')
			*c = *c == '\n' ? '\0' : '_';
	if (!out[0])
		snprintf(out, len, "?");
}

static void put(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(int fd, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n > 0 && n < (int)sizeof(buf) && write(fd, buf, (size_t)n) < 0) {
		/* the reader will miss a line */
	}
}

static void write_dev(int fd, int pid, struct pdev *d)
{
	struct uhmm_dev_info in = { .sz = sizeof(in) };
	struct uhmm_stats st = { .sz = sizeof(st) };

	if (d->dev) {
		uhmm_dev_info(d->dev, &in);
		uhmm_dev_stats(d->dev, &st);
		if (in.used > d->peak_used)
			d->peak_used = in.used;
	}
	put(fd, "uhmm-dev pid=%d name=%s spec=%s kind=%s size=%zu added=%d "
	    "placed_allocs=%llu placed_bytes=%llu peak_used=%zu used=%zu "
	    "pages_to_dev=%llu pages_to_sys=%llu cpu_faults=%llu evictions=%llu\n",
	    pid, d->spec.name, d->spec.text,
	    d->spec.mem == UHMM_MEM_COHERENT ? "coherent" : "private",
	    d->dev ? in.size : d->spec.size, d->dev != NULL,
	    (unsigned long long)d->placed_allocs, (unsigned long long)d->placed_bytes,
	    d->peak_used, in.used,
	    (unsigned long long)st.pages_to_dev, (unsigned long long)st.pages_to_sys,
	    (unsigned long long)st.cpu_faults, (unsigned long long)st.evictions);
}

/* One line per process and per device, appended to UHMM_STATS, for
 * `uhmm run --stats` to add up. */
static void write_stats(void)
{
	struct uhmm_stats st = { .sz = sizeof(st) };
	char comm[64];
	int fd, pid = (int)getpid();

	fd = open(pl.stats_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	comm_of(comm, sizeof(comm));
	if (pl.h)
		uhmm_stats(pl.h, &st);
	put(fd, "uhmm-stats pid=%d comm=%s context=%d large_allocs=%llu large_bytes=%llu "
	    "unplaced_allocs=%llu unplaced_bytes=%llu pages_to_dev=%llu pages_to_sys=%llu "
	    "pages_zero_filled=%llu bytes_copied=%llu cpu_faults=%llu dev_faults=%llu "
	    "evictions=%llu poisoned=%llu\n",
	    pid, comm, pl.h != NULL,
	    (unsigned long long)pl.large_allocs, (unsigned long long)pl.large_bytes,
	    (unsigned long long)pl.unplaced_allocs, (unsigned long long)pl.unplaced_bytes,
	    (unsigned long long)st.pages_to_dev, (unsigned long long)st.pages_to_sys,
	    (unsigned long long)st.pages_zero_filled, (unsigned long long)st.bytes_copied,
	    (unsigned long long)st.cpu_faults, (unsigned long long)st.dev_faults,
	    (unsigned long long)st.evictions, (unsigned long long)st.poisoned);
	for (int i = 0; pl.h && i < pl.ndev; i++)
		write_dev(fd, pid, &pl.dev[i]);
	close(fd);
}

__attribute__((constructor)) static void preload_init(void)
{
	char err[1200];

	if (read_config(err, sizeof(err))) {
		pl_log("%s; running without uhmm", err);
		return;
	}
	pl.enabled = true;
}

/* The context stays open: bringing every page home now would only cost
 * time (the process is going), and destructors after ours may still use
 * the memory. */
__attribute__((destructor)) static void preload_fini(void)
{
	if (!pl.enabled || !pl.stats_path || pl.child)
		return;
	pl_busy++;
	pthread_mutex_lock(&pl.lock);
	write_stats();
	pthread_mutex_unlock(&pl.lock);
	pl_busy--;
}
