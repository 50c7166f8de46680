/* SPDX-License-Identifier: MIT */
/*
 * Internal header of the `uhmm` command-line tool.  The tool is a client of
 * the library like any other: it uses <uhmm.h> only, never src/.
 */
#ifndef UHMM_TOOL_H
#define UHMM_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <uhmm.h>

#include "devspec.h"	/* parse_size, device specs (preload/) */

/* Exit statuses: 1 = something failed, 2 = the command line was wrong. */
#define EXIT_FAIL	1
#define EXIT_USAGE	2

#define MIB		(1024ul * 1024)
#define GIB		(1024ul * MIB)

/* Subcommands: argv[0] is the subcommand's name, options follow. */
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_stat(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_map(int argc, char **argv);
int cmd_trace(int argc, char **argv);

/* run_report.c: `uhmm run --stats`, from the file the processes wrote */
int run_report(const char *path, size_t min_size, bool json);

/* demo_opencl.c: `uhmm demo --opencl` (exit status; EXIT_USAGE when built
 * without OpenCL). */
int demo_opencl(bool quiet);

/* util.c */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_usage(FILE *f);
double now_sec(void);
/* "--opt VALUE" or "--opt=VALUE" at argv[*i] (advancing *i), else NULL */
const char *opt_value(const char *opt, int argc, char **argv, int *i);
const char *fmt_size(size_t bytes, char *buf, size_t len);
size_t page_size(void);
int read_int_file(const char *path);
bool read_word_file(const char *path, char *buf, size_t len);
size_t pages_spanned(const void *addr, size_t len);
int count_where(struct uhmm *h, const void *addr, size_t len, size_t *counts);

/* counts[] of count_where(): index loc + 1, so NONE is 0, SYSTEM is 1. */
#define WHERE_SLOTS	66

/* procs.c: a published context, as `uhmm stat` and `uhmm top` show it */
#define PSNAP_DEVS	16
struct psnap {
	struct uhmm_proc_info info;
	struct uhmm_stats st;
	unsigned ndev;
	struct uhmm_dev_info dev[PSNAP_DEVS];
	struct uhmm_stats dst[PSNAP_DEVS];
	bool stale;			/* did not answer in time */
};
int procs_collect(int pid, struct psnap **out, int *n);
const struct psnap *procs_find(const struct psnap *s, int n, int pid, unsigned ctx);
/* rates against prev, or since the context opened when prev is NULL */
void psnap_json(FILE *f, const struct psnap *s, const struct psnap *prev);
void psnap_text(FILE *f, const struct psnap *s, const struct psnap *prev);
void procs_none(int pid);
int procs_pick_ctx(int pid, unsigned *ctx);
int parse_pid(const char *s, int *pid);
void json_string(FILE *f, const char *s);

/* map.c: a picture of where each page of a range lives */
struct map_view {
	const int *loc;			/* one per page */
	size_t npages;
	uint64_t addr;
	const struct uhmm_dev_info *dev; /* the devices, for the legend */
	unsigned ndev;
};
void map_text(FILE *f, const struct map_view *v, unsigned width, unsigned rows, bool color);
int  map_svg(FILE *f, const struct map_view *v, size_t nv, const char *title);

void demo_say(bool quiet, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void demo_fail(bool *failed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* UHMM_TOOL_H */
