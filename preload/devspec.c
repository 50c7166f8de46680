// SPDX-License-Identifier: MIT
/*
 * Device specs (see devspec.h).  No heap: the preload library parses
 * UHMM_DEVICES from its constructor, before malloc is ours to call.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devspec.h"
#ifdef UHMM_HAVE_OPENCL
#include <uhmm_opencl.h>
#endif

static int size_shift(const char *suffix, unsigned *shift)
{
	static const struct { const char *s; unsigned shift; } tab[] = {
		{ "", 0 }, { "b", 0 },
		{ "k", 10 }, { "kib", 10 }, { "kb", 10 },
		{ "m", 20 }, { "mib", 20 }, { "mb", 20 },
		{ "g", 30 }, { "gib", 30 }, { "gb", 30 },
		{ "t", 40 }, { "tib", 40 }, { "tb", 40 },
	};
	char low[8];
	size_t i;

	if (strlen(suffix) >= sizeof(low))
		return -EINVAL;
	for (i = 0; suffix[i]; i++)
		low[i] = (char)tolower((unsigned char)suffix[i]);
	low[i] = '\0';
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (!strcmp(low, tab[i].s)) {
			*shift = tab[i].shift;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Binary multiples, because the sizes this deals with are page and
 * huge-page multiples.
 */
int parse_size(const char *s, size_t *out)
{
	unsigned long long v;
	unsigned shift;
	char *end;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || size_shift(end, &shift))
		return -EINVAL;
	if (v > (SIZE_MAX >> shift))
		return -ERANGE;
	*out = (size_t)v << shift;
	return 0;
}

static int fail(char *err, size_t len, const char *spec, const char *why)
{
	snprintf(err, len, "bad device spec '%s': %s", spec, why);
	return -EINVAL;
}

static bool name_ok(const char *s, size_t n)
{
	if (!n || n >= DEVSPEC_NAME)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("_-.", s[i]))
			return false;
	return true;
}

static int spec_size(const char *spec, const char *s, size_t *out, bool zero_ok,
		     char *err, size_t len)
{
	int r = parse_size(s, out);

	if (r == -ERANGE)
		return fail(err, len, spec, "SIZE is too large");
	if (r)
		return fail(err, len, spec,
			    "SIZE must be a number of bytes, with K, M or G suffixes allowed");
	if (!*out && !zero_ok)
		return fail(err, len, spec, "SIZE must not be 0");
	if (*out % 4096)
		return fail(err, len, spec, "SIZE must be a multiple of the page size (4 KiB)");
	return 0;
}

/* file:PATH[:SIZE]: a last ':' part that reads as a size is the size */
static int parse_file(struct devspec *d, const char *rest, char *err, size_t len)
{
	const char *colon = strrchr(rest, ':');
	size_t plen = strlen(rest);

	d->type = DEVSPEC_FILE;
	d->mem = UHMM_MEM_COHERENT;
	d->size = 0;
	if (colon && isdigit((unsigned char)colon[1]) && !parse_size(colon + 1, &d->size)) {
		plen = (size_t)(colon - rest);
		if (spec_size(d->text, colon + 1, &d->size, true, err, len))
			return -EINVAL;
	}
	if (!plen)
		return fail(err, len, d->text, "file: needs a PATH");
	if (plen >= sizeof(d->path))
		return fail(err, len, d->text, "PATH is too long");
	memcpy(d->path, rest, plen);
	d->path[plen] = '\0';
	return 0;
}

static int parse_uint(const char *s, const char **end, unsigned *out)
{
	char *e;
	unsigned long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	v = strtoul(s, &e, 10);
	if (v > 0xffff)
		return -EINVAL;
	*out = (unsigned)v;
	*end = e;
	return 0;
}

static int parse_one(struct devspec *d, const char *spec, char *err, size_t len)
{
	const char *eq = strchr(spec, '='), *colon = strchr(spec, ':'), *body = spec, *e;

	memset(d, 0, sizeof(*d));
	if (eq && (!colon || eq < colon)) {
		if (!name_ok(spec, (size_t)(eq - spec)))
			return fail(err, len, spec,
				    "NAME must be 1-31 letters, digits, '_', '-' or '.'");
		memcpy(d->name, spec, (size_t)(eq - spec));
		body = eq + 1;
	}
	if (strlen(body) >= sizeof(d->text))
		return fail(err, len, spec, "too long");
	snprintf(d->text, sizeof(d->text), "%s", body);
	if (!strncmp(body, "sim:", 4)) {
		const char *k = body + 4;

		d->type = DEVSPEC_SIM;
		if (!strncmp(k, "coherent:", 9)) {
			d->mem = UHMM_MEM_COHERENT;
			return spec_size(body, k + 9, &d->size, false, err, len);
		}
		if (!strncmp(k, "private:", 8)) {
			d->mem = UHMM_MEM_PRIVATE;
			return spec_size(body, k + 8, &d->size, false, err, len);
		}
		return fail(err, len, body, "sim: takes coherent:SIZE or private:SIZE");
	}
	if (!strncmp(body, "file:", 5))
		return parse_file(d, body + 5, err, len);
	if (!strncmp(body, "opencl:", 7)) {
		d->type = DEVSPEC_OPENCL;
		d->mem = UHMM_MEM_PRIVATE;
		if (parse_uint(body + 7, &e, &d->platform) || *e != ':' ||
		    parse_uint(e + 1, &e, &d->device) || *e != ':')
			return fail(err, len, body, "opencl: takes PLATFORM:DEVICE:SIZE");
		return spec_size(body, e + 1, &d->size, false, err, len);
	}
	return fail(err, len, body, "expected sim:coherent:SIZE, sim:private:SIZE, "
		    "file:PATH[:SIZE] or opencl:P:D:SIZE");
}

int devspec_find(const struct devspec *specs, int n, const char *name)
{
	for (int i = 0; i < n; i++)
		if (!strcmp(specs[i].name, name))
			return i;
	return -1;
}

const char *devspec_kind_name(const struct devspec *s)
{
	static const char *const t[] = { "sim", "file", "opencl" };

	return t[s->type];
}

/* sim0, sim1, file0, ...: the first free number of its kind */
static void default_name(struct devspec *specs, int i)
{
	for (int k = 0;; k++) {
		snprintf(specs[i].name, sizeof(specs[i].name), "%s%d",
			 devspec_kind_name(&specs[i]), k);
		if (devspec_find(specs, i, specs[i].name) < 0)
			return;
	}
}

int devspec_parse_list(const char *list, struct devspec *specs, int max,
		       char *err, size_t errlen)
{
	char one[2048];
	int n = 0;

	err[0] = '\0';
	for (const char *s = list; *s;) {
		size_t l = strcspn(s, ";");

		if (l) {
			if (n == max) {
				snprintf(err, errlen, "more than %d devices", max);
				return -EINVAL;
			}
			if (l >= sizeof(one))
				return fail(err, errlen, "...", "too long");
			memcpy(one, s, l);
			one[l] = '\0';
			if (parse_one(&specs[n], one, err, errlen))
				return -EINVAL;
			if (specs[n].name[0] && devspec_find(specs, n, specs[n].name) >= 0) {
				snprintf(err, errlen, "two devices are named '%s'", specs[n].name);
				return -EINVAL;
			}
			n++;
		}
		s += l + (s[l] == ';');
	}
	/* default names after all given ones are known */
	for (int i = 0; i < n; i++)
		if (!specs[i].name[0])
			default_name(specs, i);
	for (int i = 0; i < n; i++) {
		if (devspec_find(specs, i, specs[i].name) >= 0) {
			snprintf(err, errlen, "two devices are named '%s'", specs[i].name);
			return -EINVAL;
		}
	}
	if (!n) {
		snprintf(err, errlen, "no device given");
		return -EINVAL;
	}
	return n;
}

int devspec_add(struct uhmm *h, const struct devspec *s, struct uhmm_dev **out)
{
	switch (s->type) {
	case DEVSPEC_SIM:
		return uhmm_dev_add_sim(h, s->name, s->mem, s->size, out);
	case DEVSPEC_FILE:
		return uhmm_dev_add_file(h, s->path, s->size, out);
	case DEVSPEC_OPENCL:
#ifdef UHMM_HAVE_OPENCL
		return uhmm_dev_add_opencl(h, s->platform, s->device, s->size, out);
#else
		return -EOPNOTSUPP;
#endif
	}
	return -EINVAL;
}
