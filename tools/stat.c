// SPDX-License-Identifier: MIT
/*
 * `uhmm stat [--json] [PID]`: the live counters of the processes using
 * uhmm (every one, or PID's contexts), as each publishes them (see
 * uhmm_proc_list).  Rates are averages since each context opened; `uhmm
 * top` shows them over its refresh interval.  Exit status 1 when there is
 * nothing to show.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int cmd_stat(int argc, char **argv)
{
	struct psnap *s;
	bool json = false;
	int pid = 0, n, r;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			print_usage(stdout);
			return 0;
		} else if (argv[i][0] == '-' || pid || parse_pid(argv[i], &pid)) {
			return usage_error("stat: unexpected '%s' "
					   "(usage: uhmm stat [--json] [PID])", argv[i]);
		}
	}
	r = procs_collect(pid, &s, &n);
	if (r) {
		fprintf(stderr, "uhmm stat: %s\n", uhmm_strerror(r));
		return EXIT_FAIL;
	}
	if (json) {
		printf("[");
		for (int i = 0; i < n; i++) {
			printf(i ? ",\n " : "");
			psnap_json(stdout, &s[i], NULL);
		}
		printf("]\n");
	} else {
		for (int i = 0; i < n; i++)
			psnap_text(stdout, &s[i], NULL);
	}
	free(s);
	if (!n) {
		procs_none(pid);
		return EXIT_FAIL;
	}
	return 0;
}
