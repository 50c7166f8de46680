/* SPDX-License-Identifier: MIT */
/*
 * Device specs, as `uhmm run --device` and UHMM_DEVICES give them:
 *
 *   [NAME=]sim:coherent:SIZE     a simulated coherent device (a memfd)
 *   [NAME=]sim:private:SIZE      a simulated device-private device
 *   [NAME=]file:PATH[:SIZE]      coherent memory from a devdax, hugetlbfs
 *                                or tmpfs path (SIZE 0 or absent: whole)
 *   [NAME=]opencl:P:D:SIZE       device-private memory on OpenCL platform
 *                                P, device D
 *
 * SIZE takes K, M, G suffixes (binary).  NAME (letters, digits, '_', '-',
 * '.'; up to 31) defaults to sim0, sim1, file0, opencl0, ... by kind and
 * order.  UHMM_DEVICES holds several, separated by ';'.  Shared by the
 * tool (tools/run.c), which checks a command line before it starts
 * anything, and the preload library, which adds the devices.
 */
#ifndef UHMM_DEVSPEC_H
#define UHMM_DEVSPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <uhmm.h>

#define DEVSPEC_MAX	16
#define DEVSPEC_NAME	32

enum devspec_type { DEVSPEC_SIM, DEVSPEC_FILE, DEVSPEC_OPENCL };

struct devspec {
	char name[DEVSPEC_NAME];
	enum devspec_type type;
	enum uhmm_mem mem;
	size_t size;			/* 0: the whole file */
	unsigned platform, device;	/* opencl */
	char path[1024];		/* file */
	char text[1100];		/* as given, without NAME= */
};

/* "268435456", "256M", "256MiB", "1G": 0 or -EINVAL / -ERANGE. */
int parse_size(const char *s, size_t *out);

/*
 * Parse a ';'-separated list into specs[0 .. return value); names are
 * made unique (a duplicate NAME is an error).  On error: -EINVAL and a
 * message for people in err.
 */
int devspec_parse_list(const char *list, struct devspec *specs, int max,
		       char *err, size_t errlen);

/* Index of the spec named name, or -1. */
int devspec_find(const struct devspec *specs, int n, const char *name);

/* Register one with the context: what uhmm_dev_add_* returns. */
int devspec_add(struct uhmm *h, const struct devspec *s, struct uhmm_dev **out);

const char *devspec_kind_name(const struct devspec *s);

#endif
