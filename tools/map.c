// SPDX-License-Identifier: MIT
/*
 * `uhmm map PID [ADDR LEN] [--svg FILE] [--width N] [--ctx N]`: where each
 * page of a range of another process lives, as text (one character per
 * page, or per group of pages on large ranges: the location most of them
 * have) and, with --svg, as a picture with one colour per device.  Without
 * ADDR LEN: every uhmm_alloc block of the process (with `uhmm run`: every
 * large allocation).  map_text and map_svg draw any array of locations:
 * `uhmm demo` uses them in-process on uhmm_where's answer.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

#define LOC_HOLE	(-2)		/* not mapped in the process */
#define MAX_ROWS	16		/* of text, by default */
#define SVG_COLS	128
#define SVG_CELLS	(SVG_COLS * SVG_COLS)
#define SVG_PX		6

static const char *const palette[] = {	/* devices 1, 2, ... */
	"#2ca02c", "#1f77b4", "#9467bd", "#ff7f0e", "#d62728", "#17becf", "#8c564b",
	"#e377c2", "#bcbd22",
};
static const int ansi[] = { 42, 44, 45, 43, 41, 46 };	/* background colours */

static char loc_char(int loc)
{
	if (loc == LOC_HOLE)
		return ' ';
	if (loc == UHMM_LOC_NONE)
		return '.';
	if (loc == UHMM_LOC_SYSTEM)
		return 's';
	if (loc <= 9)
		return (char)('0' + loc);
	return loc < 36 ? (char)('A' + loc - 10) : '#';
}

static const char *loc_colour(int loc)
{
	if (loc == LOC_HOLE)
		return "#ffffff";
	if (loc == UHMM_LOC_NONE)
		return "#e8e8e8";
	if (loc == UHMM_LOC_SYSTEM)
		return "#a0a0a0";
	return palette[(loc - 1) % (int)(sizeof(palette) / sizeof(palette[0]))];
}

/* The location most pages of [i, i + k) have. */
static int majority(const int *loc, size_t i, size_t k)
{
	size_t count[WHERE_SLOTS + 1] = { 0 }, best = 0;
	int which = LOC_HOLE;

	for (size_t j = i; j < i + k; j++) {
		int slot = loc[j] + 2;

		if (slot < 0 || slot > WHERE_SLOTS)
			continue;
		if (++count[slot] > best) {
			best = count[slot];
			which = loc[j];
		}
	}
	return which;
}

static const char *dev_name(const struct map_view *v, int id)
{
	for (unsigned i = 0; i < v->ndev; i++)
		if (v->dev[i].id == id)
			return v->dev[i].name;
	return "?";
}

static void legend(FILE *f, const struct map_view *v, bool color)
{
	fprintf(f, "  legend:");
	for (unsigned i = 0; i < v->ndev; i++) {
		int id = v->dev[i].id;

		if (color)
			fprintf(f, " \033[%dm%c\033[0m", ansi[(id - 1) % 6], loc_char(id));
		else
			fprintf(f, " %c", loc_char(id));
		fprintf(f, " = device %d %s (%s),", id, v->dev[i].name,
			v->dev[i].kind == UHMM_MEM_COHERENT ? "coherent" : "private");
	}
	fprintf(f, " s = system memory, . = not populated, ' ' = not mapped\n");
}

void map_text(FILE *f, const struct map_view *v, unsigned width, unsigned rows, bool color)
{
	size_t per = 1, cells, pg = page_size();
	size_t counts[WHERE_SLOTS + 1] = { 0 };

	if (!width)
		width = 64;
	if (!rows)
		rows = MAX_ROWS;
	while ((v->npages + per - 1) / per > (size_t)width * rows)
		per *= 2;
	cells = (v->npages + per - 1) / per;
	for (size_t i = 0; i < v->npages; i++)
		if (v->loc[i] + 2 >= 0 && v->loc[i] + 2 <= WHERE_SLOTS)
			counts[v->loc[i] + 2]++;
	fprintf(f, "%#llx-%#llx: %zu pages, %zu per character;", (unsigned long long)v->addr,
		(unsigned long long)(v->addr + v->npages * pg), v->npages, per);
	for (int s = 0; s <= WHERE_SLOTS; s++) {
		int loc = s - 2;

		if (!counts[s])
			continue;
		if (loc >= 1)
			fprintf(f, " %zu on %s", counts[s], dev_name(v, loc));
		else
			fprintf(f, " %zu %s", counts[s],
				loc == UHMM_LOC_SYSTEM ? "in system memory" :
				loc == UHMM_LOC_NONE ? "not populated" : "not mapped");
	}
	fputc('\n', f);
	for (size_t c = 0; c < cells; c++) {
		size_t i = c * per, k = i + per > v->npages ? v->npages - i : per;
		int loc = majority(v->loc, i, k);

		if (c % width == 0)
			fprintf(f, "  %#14llx ", (unsigned long long)(v->addr + i * pg));
		if (color && loc >= 1)
			fprintf(f, "\033[%dm%c\033[0m", ansi[(loc - 1) % 6], loc_char(loc));
		else
			fputc(loc_char(loc), f);
		if (c % width == width - 1 || c == cells - 1)
			fputc('\n', f);
	}
	legend(f, v, color);
}

static size_t svg_per(const struct map_view *v)
{
	size_t per = 1;

	while ((v->npages + per - 1) / per > SVG_CELLS)
		per *= 2;
	return per;
}

/* One band of cells for v from y on; returns the y after it. */
static int svg_band(FILE *f, const struct map_view *v, int y)
{
	size_t per = svg_per(v), cells = (v->npages + per - 1) / per;
	size_t cols = cells < SVG_COLS ? cells : SVG_COLS, rows = (cells + cols - 1) / cols;

	fprintf(f, "<text x=\"10\" y=\"%d\">%#llx: %zu pages, %zu per cell</text>\n",
		y + 12, (unsigned long long)v->addr, v->npages, per);
	y += 18;
	for (size_t c = 0; c < cells; c++) {
		size_t i = c * per, k = i + per > v->npages ? v->npages - i : per;
		int loc = majority(v->loc, i, k);

		fprintf(f, "<rect x=\"%zu\" y=\"%zu\" width=\"%d\" height=\"%d\" fill=\"%s\">"
			"<title>%#llx: %c</title></rect>\n", 10 + (c % cols) * SVG_PX,
			(size_t)y + (c / cols) * SVG_PX, SVG_PX, SVG_PX, loc_colour(loc),
			(unsigned long long)(v->addr + i * page_size()), loc_char(loc));
	}
	return y + (int)rows * SVG_PX + 10;
}

int map_svg(FILE *f, const struct map_view *v, size_t nv, const char *title)
{
	int h = 30 + 16 * (nv ? (int)v[0].ndev + 3 : 3), y = 24;

	for (size_t i = 0; i < nv; i++) {
		size_t per = svg_per(&v[i]), cells = (v[i].npages + per - 1) / per;
		size_t cols = cells < SVG_COLS ? cells : SVG_COLS;

		h += 28 + (int)((cells + cols - 1) / cols) * SVG_PX;
	}
	fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
		"font-family=\"monospace\" font-size=\"12\">\n", SVG_COLS * SVG_PX + 20, h);
	fprintf(f, "<text x=\"10\" y=\"16\">%s</text>\n", title);
	for (size_t i = 0; i < nv; i++)
		y = svg_band(f, &v[i], y);
	for (unsigned i = 0; nv && i <= v[0].ndev + 2; i++) {
		unsigned nd = v[0].ndev;
		int loc = i < nd ? v[0].dev[i].id : i == nd ? UHMM_LOC_SYSTEM :
			  i == nd + 1 ? UHMM_LOC_NONE : LOC_HOLE;
		int ly = y + 16 * (int)i;

		fprintf(f, "<rect x=\"10\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\" "
			"stroke=\"#000\"/><text x=\"26\" y=\"%d\">", ly, loc_colour(loc), ly + 9);
		if (loc >= 1)
			fprintf(f, "device %d: %s", loc, v[0].dev[i].name);
		else
			fprintf(f, "%s", loc == UHMM_LOC_SYSTEM ? "system memory" :
				loc == UHMM_LOC_NONE ? "not populated" : "not mapped");
		fprintf(f, "</text>\n");
	}
	fprintf(f, "</svg>\n");
	return ferror(f) ? -EIO : 0;
}

/* ---- the command ----------------------------------------------------------- */

struct map_cmd {
	int pid;
	unsigned ctx, width;
	uint64_t addr;
	size_t len;
	bool ranged;
	const char *svg;
};

static int map_args(struct map_cmd *m, int argc, char **argv)
{
	const char *pos[3];
	const char *v;
	int npos = 0;
	char *end;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_usage(stdout);
			return -1;
		} else if ((v = opt_value("--svg", argc, argv, &i))) {
			m->svg = v;
		} else if ((v = opt_value("--width", argc, argv, &i))) {
			m->width = (unsigned)strtoul(v, &end, 10);
			if (*end || m->width < 8 || m->width > 1024)
				return usage_error("map: --width '%s': 8 to 1024", v);
		} else if ((v = opt_value("--ctx", argc, argv, &i))) {
			m->ctx = (unsigned)strtoul(v, &end, 10);
			if (*end || !m->ctx)
				return usage_error("map: --ctx '%s': a context number "
						   "(uhmm stat)", v);
		} else if (argv[i][0] == '-' || npos == 3) {
			return usage_error("map: unexpected '%s' (usage: uhmm map PID [ADDR LEN] "
					   "[--svg FILE])", argv[i]);
		} else {
			pos[npos++] = argv[i];
		}
	}
	if (npos != 1 && npos != 3)
		return usage_error("map: usage: uhmm map PID [ADDR LEN] [--svg FILE]");
	if (parse_pid(pos[0], &m->pid))
		return usage_error("map: bad PID '%s'", pos[0]);
	if (npos == 3) {
		errno = 0;
		m->addr = strtoull(pos[1], &end, 0);
		if (errno || *end || (m->addr & (page_size() - 1)))
			return usage_error("map: ADDR '%s': a page-aligned address (0x...)",
					   pos[1]);
		if (parse_size(pos[2], &m->len) || !m->len)
			return usage_error("map: LEN '%s': a size in bytes (K, M, G allowed)",
					   pos[2]);
		m->ranged = true;
	}
	return 0;
}

/* Locations of [addr, addr + len) in the process, holes marked as such. */
static int where_range(struct uhmm_proc *p, int pid, uint64_t addr, size_t len, int *loc)
{
	char path[64], line[512];
	size_t pg = page_size(), n = (len + pg - 1) / pg;
	uint64_t end = addr + n * pg;
	FILE *f;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		loc[i] = LOC_HOLE;
	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return -errno;
	while (!r && fgets(line, sizeof(line), f)) {
		unsigned long long s, e;

		if (sscanf(line, "%llx-%llx", &s, &e) != 2 || e <= addr || s >= end)
			continue;
		if (s < addr)
			s = addr;
		if (e > end)
			e = end;
		r = uhmm_proc_where(p, s, e - s, loc + (s - addr) / pg, 5000);
	}
	fclose(f);
	return r;
}

/* Text now; the view kept (v->loc allocated) for the SVG. */
static int show(const struct map_cmd *m, struct uhmm_proc *p, struct map_view *v,
		uint64_t addr, size_t len)
{
	size_t n = (len + page_size() - 1) / page_size();
	int *loc = calloc(n, sizeof(*loc)), r;

	if (!loc)
		return -ENOMEM;
	r = where_range(p, m->pid, addr, len, loc);
	if (r) {
		free(loc);
		return r;
	}
	v->loc = loc;
	v->npages = n;
	v->addr = addr;
	map_text(stdout, v, m->width, 0, isatty(1) && !getenv("NO_COLOR"));
	return 0;
}

static int write_svg(const struct map_cmd *m, const struct map_view *v, size_t nv)
{
	char title[64];
	FILE *f = fopen(m->svg, "w");
	int r;

	if (!f)
		return -errno;
	snprintf(title, sizeof(title), "uhmm map: pid %d", m->pid);
	r = map_svg(f, v, nv, title);
	if (fclose(f) && !r)
		r = -EIO;
	return r;
}

int cmd_map(int argc, char **argv)
{
	static struct map_view views[256];
	struct uhmm_dev_info dev[PSNAP_DEVS];
	struct uhmm_proc_info in = { .sz = sizeof(in) };
	struct map_cmd m = { 0 };
	struct uhmm_proc *p;
	unsigned ndev = 0;
	size_t nv = 0;
	int r;

	r = map_args(&m, argc, argv);
	if (r)
		return r < 0 ? 0 : r;
	r = procs_pick_ctx(m.pid, &m.ctx);
	if (r)
		return r;
	r = uhmm_proc_open(m.pid, m.ctx, &p);
	if (!r)
		r = uhmm_proc_refresh(p, 5000);
	if (r) {
		fprintf(stderr, "uhmm map: process %d, context %u: %s\n", m.pid, m.ctx,
			uhmm_strerror(r));
		return EXIT_FAIL;
	}
	uhmm_proc_info(p, &in, NULL);
	for (unsigned i = 0; i < in.ndev && i < PSNAP_DEVS; i++) {
		dev[i].sz = sizeof(dev[i]);
		uhmm_proc_dev(p, i, &dev[i], NULL);
		ndev++;
	}
	for (size_t i = 0; i < 256; i++)
		views[i] = (struct map_view){ .dev = dev, .ndev = ndev };
	if (m.ranged) {
		r = show(&m, p, &views[nv++], m.addr, m.len);
	} else {
		uint64_t st[256], ln[256];
		int n = uhmm_proc_allocs(p, st, ln, 256);

		if (n == 0)
			printf("process %d has no uhmm_alloc blocks (give ADDR LEN)\n", m.pid);
		for (int i = 0; !r && i < n && i < 256; i++) {
			r = show(&m, p, &views[nv], st[i], ln[i]);
			/* a block the program freed since it published its list */
			if (r == -EFAULT) {
				printf("%#llx (%llu bytes): freed while it was read\n",
				       (unsigned long long)st[i], (unsigned long long)ln[i]);
				r = 0;
				continue;
			}
			nv += !r;
		}
	}
	uhmm_proc_close(p);
	if (!r && m.svg)
		r = write_svg(&m, views, nv);
	for (size_t i = 0; i < nv; i++)
		free((void *)views[i].loc);
	if (r) {
		fprintf(stderr, "uhmm map: %s\n",
			r == -EFAULT ? "the range changed while it was read" : uhmm_strerror(r));
		return EXIT_FAIL;
	}
	return 0;
}
