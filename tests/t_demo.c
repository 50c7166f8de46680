/* SPDX-License-Identifier: MIT */
/*
 * `uhmm demo` (what `make demo` runs) goes through the seed scenario end
 * to end with checks of its own: the buffer migrated to a coherent
 * device, the CPU's writes landing in device memory with no copy and no
 * fault, back again, and malloc + uhmm_advise placing pages at their
 * first write.  It must say so and exit 0, in every pass.
 */
#define _GNU_SOURCE
#include <stdlib.h>

#include "run.h"

int main(void)
{
	const char *out, *err;
	int st;

	ut_init(300);
	rt_init();
	if (access(rt_uhmm, X_OK))
		tap_bail("%s missing: run make first", rt_uhmm);
	rt_require_coherent();
	out = rt_path("out");
	err = rt_path("err");
	st = rt_run((char *[]){ rt_uhmm, "demo", NULL }, NULL, out, err, NULL);
	if (!ok(st == 0 && rt_grep(out, "uhmm demo: all checks passed"),
		"uhmm demo: the seed scenario passes its own checks (status %d)", st)) {
		rt_show(out);
		rt_show(err);
	}
	ok(rt_grep(out, "no fault at all") || rt_grep(out, "minor faults"),
	   "... and says how the CPU's writes reached the device");
	ok(rt_grep(out, "landed on device"), "... and shows the advised first touch");
	st = rt_run((char *[]){ rt_uhmm, "demo", "--quiet", NULL }, NULL, out, err, NULL);
	is_int(st, 0, "uhmm demo --quiet");
	st = rt_run((char *[]){ rt_uhmm, "demo", "--bogus", NULL }, NULL, out, err, NULL);
	ok(st != 0 && rt_grep(err, "unknown option"), "uhmm demo --bogus: a clear refusal (%d)", st);
	free((void *)out);
	free((void *)err);
	rt_cleanup();
	return tap_done();
}
