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

/* Exit statuses: 1 = something failed, 2 = the command line was wrong. */
#define EXIT_FAIL	1
#define EXIT_USAGE	2

#define MIB		(1024ul * 1024)
#define GIB		(1024ul * MIB)

/* Subcommands: argv[0] is the subcommand's name, options follow. */
int cmd_info(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_bench(int argc, char **argv);

/* demo_opencl.c: `uhmm demo --opencl` (exit status; EXIT_USAGE when built
 * without OpenCL). */
int demo_opencl(bool quiet);

/* util.c */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void print_usage(FILE *f);
double now_sec(void);
int parse_size(const char *s, size_t *out);
const char *fmt_size(size_t bytes, char *buf, size_t len);
size_t page_size(void);
size_t pages_spanned(const void *addr, size_t len);
int count_where(struct uhmm *h, const void *addr, size_t len, size_t *counts);

/* counts[] of count_where(): index loc + 1, so NONE is 0, SYSTEM is 1. */
#define WHERE_SLOTS	66

void demo_say(bool quiet, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void demo_fail(bool *failed, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* UHMM_TOOL_H */
