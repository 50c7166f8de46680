// SPDX-License-Identifier: MIT
/*
 * /proc/self/pagemap and /proc/self/maps, kept open.  Opening either is a
 * walk through procfs of a few microseconds, several percent of what a
 * snapshot of a GiB costs, and mirrors and faults look often.  A
 * descriptor is good for the process that opened it: a fork child's
 * inherited ones name the parent, so the child opens its own; one the
 * program closed or reused behind our back (its inode no longer matches)
 * is opened again.  They stay open while some context exists, and are
 * closed when the last one goes: a program that closed its contexts
 * holds no descriptor of ours.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static const char *const path[PROC_NFILES] = {
	[PROC_PAGEMAP] = "/proc/self/pagemap",
	[PROC_MAPS] = "/proc/self/maps",
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static unsigned contexts;		/* open contexts of process ctx_pid */
static pid_t ctx_pid;			/* (a fork child has none) */
static struct {
	int fd;
	pid_t pid;
	dev_t dev;
	ino_t ino;
} open_files[PROC_NFILES];

static bool still_ours(int f, pid_t me)
{
	struct stat st;

	if (!open_files[f].fd || open_files[f].pid != me)
		return false;
	return !fstat(open_files[f].fd - 1, &st) && st.st_dev == open_files[f].dev &&
	       st.st_ino == open_files[f].ino;
}

int procfd(enum proc_file f)
{
	pid_t me = getpid();
	struct stat st;
	int fd;

	pthread_mutex_lock(&mu);
	if (still_ours(f, me)) {
		fd = open_files[f].fd - 1;
		pthread_mutex_unlock(&mu);
		return fd;
	}
	/* the old one is the parent's (fork) or no longer ours: left alone */
	fd = open(path[f], O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && fstat(fd, &st)) {
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fd = -errno;
	} else {
		open_files[f].fd = fd + 1;
		open_files[f].pid = me;
		open_files[f].dev = st.st_dev;
		open_files[f].ino = st.st_ino;
	}
	pthread_mutex_unlock(&mu);
	return fd;
}

void procfd_hold(void)
{
	pid_t me = getpid();

	pthread_mutex_lock(&mu);
	if (ctx_pid != me) {
		ctx_pid = me;
		contexts = 0;
	}
	contexts++;
	pthread_mutex_unlock(&mu);
}

/* A fork child's inherited descriptors are left alone: they are the
 * parent's, and the child may be using the numbers for files of its own. */
void procfd_drop(void)
{
	pid_t me = getpid();

	pthread_mutex_lock(&mu);
	if (ctx_pid == me && contexts && !--contexts) {
		for (int f = 0; f < PROC_NFILES; f++) {
			if (still_ours(f, me))
				close(open_files[f].fd - 1);
			open_files[f].fd = 0;
		}
	}
	pthread_mutex_unlock(&mu);
}

ssize_t proc_read_text(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n == 0)
		n = -EIO;
	buf[n > 0 ? n : 0] = 0;
	return n;
}
