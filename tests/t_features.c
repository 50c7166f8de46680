/* SPDX-License-Identifier: MIT */
/*
 * uhmm_version and uhmm_features: the major version matches the header;
 * an open context reports UHMM_FEAT_UFFD; UHMM_DISABLE switches optional
 * features off (each name alone, and "all"), both as the test runs under
 * it from outside and when the test sets it itself before uhmm_open.
 */
#define _GNU_SOURCE
#include "util.h"

static const struct { const char *name; uint64_t bit; } names[] = {
	{ "move", UHMM_FEAT_MOVE },
	{ "wp_unpopulated", UHMM_FEAT_WP_UNPOPULATED },
	{ "wp_shmem", UHMM_FEAT_WP_SHMEM },
	{ "minor", UHMM_FEAT_MINOR_SHMEM },
	{ "pagemap_scan", UHMM_FEAT_PAGEMAP_SCAN },
	{ "poison", UHMM_FEAT_POISON },
	{ "kernel_faults", UHMM_FEAT_KERNEL_FAULTS },
	{ "remap_fence", UHMM_FEAT_REMAP_FENCE },
	{ "procmap_query", UHMM_FEAT_PROCMAP_QUERY },
	{ "events_other", UHMM_FEAT_EVENTS_OTHER },
};
#define NNAMES (sizeof(names) / sizeof(names[0]))

/* Is `name` in the comma-separated list s, or covered by "all"?  "all"
 * means every feature that has a fallback: minor faults on shmem have none
 * (COHERENT devices need them), so "all" leaves "minor" on; naming "minor"
 * itself switches it off. */
static int listed(const char *s, const char *name)
{
	size_t nl = strlen(name);

	while (s && *s) {
		const char *e = strchr(s, ',');
		size_t l = e ? (size_t)(e - s) : strlen(s);
		if ((l == 3 && !strncmp(s, "all", 3) && strcmp(name, "minor")) ||
		    (l == nl && !strncmp(s, name, nl)))
			return 1;
		s = e ? e + 1 : NULL;
	}
	return 0;
}

static uint64_t feats_with(const char *disable)
{
	struct uhmm *h2 = NULL;
	uint64_t f = 0;
	int rc;

	if (disable)
		setenv("UHMM_DISABLE", disable, 1);
	else
		unsetenv("UHMM_DISABLE");
	rc = uhmm_open(&h2, NULL);
	if (rc) {
		diag("uhmm_open with UHMM_DISABLE=%s: %d (%s)", disable ? disable : "", rc, ut_err(rc));
		return 0;
	}
	rc = uhmm_features(h2, &f);
	if (rc)
		diag("uhmm_features: %d", rc);
	uhmm_close(h2);
	return f;
}

int main(void)
{
	struct uhmm *h;
	uint64_t f = 0, all_on;
	const char *env = getenv("UHMM_DISABLE");
	char *saved = env ? strdup(env) : NULL;
	unsigned v = uhmm_version();
	int rc;

	ut_init(60);
	is_int(v >> 16, UHMM_VERSION_MAJOR, "uhmm_version() major = UHMM_VERSION_MAJOR");
	is_int(v, (UHMM_VERSION_MAJOR << 16) | UHMM_VERSION_MINOR,
	       "uhmm_version() = (MAJOR << 16) | MINOR of this header");

	h = ut_open();
	rc = uhmm_features(h, &f);
	is_int(rc, 0, "uhmm_features");
	ok(f & UHMM_FEAT_UFFD, "UHMM_FEAT_UFFD set (features 0x%" PRIx64 ")", f);
	diag("UHMM_DISABLE=%s; features: uffd=%d kernel_faults=%d wp=%d wp_shmem=%d move=%d poison=%d "
	     "pagemap_scan=%d wp_unpopulated=%d minor_shmem=%d events=%d", saved ? saved : "",
	     !!(f & UHMM_FEAT_UFFD), !!(f & UHMM_FEAT_KERNEL_FAULTS), !!(f & UHMM_FEAT_WP),
	     !!(f & UHMM_FEAT_WP_SHMEM), !!(f & UHMM_FEAT_MOVE), !!(f & UHMM_FEAT_POISON),
	     !!(f & UHMM_FEAT_PAGEMAP_SCAN), !!(f & UHMM_FEAT_WP_UNPOPULATED),
	     !!(f & UHMM_FEAT_MINOR_SHMEM), !!(f & UHMM_FEAT_EVENTS));
	for (size_t i = 0; i < NNAMES; i++)
		if (listed(saved, names[i].name))
			ok(!(f & names[i].bit), "under UHMM_DISABLE=%s: %s is off", saved, names[i].name);
	if (!saved)
		skip("UHMM_DISABLE is not set from outside for this run");
	is_int(uhmm_features(NULL, &f), -EINVAL, "uhmm_features(NULL): -EINVAL");

	/* Set it ourselves: each name alone, then all. */
	all_on = feats_with(NULL);
	ok(all_on & UHMM_FEAT_UFFD, "without UHMM_DISABLE: UFFD set (0x%" PRIx64 ")", all_on);
	for (size_t i = 0; i < NNAMES; i++) {
		uint64_t g = feats_with(names[i].name);
		ok(g & UHMM_FEAT_UFFD, "UHMM_DISABLE=%s: the context still opens with UFFD", names[i].name);
		ok(!(g & names[i].bit), "UHMM_DISABLE=%s: that feature is off", names[i].name);
		if ((g | names[i].bit) != (all_on | names[i].bit))
			diag("UHMM_DISABLE=%s also changed 0x%" PRIx64 " -> 0x%" PRIx64, names[i].name,
			     all_on, g);
	}
	{
		uint64_t g = feats_with("all");
		/* every feature with a fallback; not MINOR_SHMEM (see listed()) */
		uint64_t optional = UHMM_FEAT_MOVE | UHMM_FEAT_WP_UNPOPULATED | UHMM_FEAT_WP_SHMEM |
				    UHMM_FEAT_PAGEMAP_SCAN | UHMM_FEAT_POISON | UHMM_FEAT_KERNEL_FAULTS |
				    UHMM_FEAT_REMAP_FENCE | UHMM_FEAT_PROCMAP_QUERY |
				    UHMM_FEAT_EVENTS_OTHER | UHMM_FEAT_PIN_DETECT;
		ok(g & UHMM_FEAT_UFFD, "UHMM_DISABLE=all: the context still opens with UFFD");
		is_int(g & optional, 0, "UHMM_DISABLE=all: every feature with a fallback off");
		diag("UHMM_DISABLE=all: minor_shmem %s", (g & UHMM_FEAT_MINOR_SHMEM) ? "on" : "off");
		g = feats_with("move,poison");
		ok(!(g & UHMM_FEAT_MOVE) && !(g & UHMM_FEAT_POISON), "UHMM_DISABLE=move,poison: both off");
	}
	/* The disabled context still does its job. */
	{
		struct uhmm *h2 = NULL;
		struct uhmm_dev *d;
		size_t len = 4 * UT_MiB;
		uint8_t *p = ut_map(len);
		setenv("UHMM_DISABLE", "all", 1);
		rc = uhmm_open(&h2, NULL);
		is_int(rc, 0, "uhmm_open under UHMM_DISABLE=all");
		if (!rc) {
			d = ut_sim(h2, "sim", 16 * UT_MiB);
			ut_fill64(p, len / 2, 221);
			is_int(uhmm_migrate(h2, p, len, d, 0), 0, "a migration with every optional feature off");
			ut_check_where(h2, p, len, ut_dev_id(d), "with every optional feature off");
			ut_ok64(p, len / 2, 221, "its data");
			ut_okzero(p + len / 2, len / 2, "its untouched half");
			is_int(uhmm_migrate(h2, p, len, NULL, 0), 0, "and back");
			ut_ok64(p, len / 2, 221, "its data back");
			uhmm_close(h2);
		}
		munmap(p, len);
	}
	if (saved)
		setenv("UHMM_DISABLE", saved, 1);
	else
		unsetenv("UHMM_DISABLE");
	free(saved);
	uhmm_close(h);
	return tap_done();
}
