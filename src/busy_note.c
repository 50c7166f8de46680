// SPDX-License-Identifier: MIT
/*
 * Why a device fault said -EBUSY: each origin of it in the fault path
 * notes itself here, per thread, so that a driver that gives up after its
 * retries can say which refusal it kept meeting.  Printed only where
 * UHMM_DEBUG names "busy": a -EBUSY that never ends is a bug to chase, and
 * the call's return value cannot say which of a dozen places gave it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static __thread struct {
	const char *why;
	uintptr_t addr;
	int raw;
} note;

/* the last invalidation this thread told a mirror: what a fault that
 * invalidates its own mirror every round did to it */
static __thread struct {
	uintptr_t start, end;
	int ev, initiator;
} told;

void busy_saw_tell(uintptr_t start, uintptr_t end, int ev, int initiator)
{
	told.start = start;
	told.end = end;
	told.ev = ev;
	told.initiator = initiator;
}

int busy_note(int r, const char *why, uintptr_t addr)
{
	note.why = why;
	note.addr = addr;
	note.raw = r;
	return -EBUSY;
}

void busy_forget(void)
{
	note.why = NULL;
}

void busy_report(const char *who, uintptr_t s, uintptr_t e, int rounds)
{
	const char *env = getenv("UHMM_DEBUG");

	if (!env || !strstr(env, "busy"))
		return;
	fprintf(stderr, "uhmm: %s [%#lx, %#lx) gave up after %d rounds: -EBUSY from %s "
		"(at %#lx, raw %d)\n", who, (unsigned long)s, (unsigned long)e, rounds,
		note.why ? note.why : "a place that does not note itself",
		(unsigned long)note.addr, note.raw);
	fprintf(stderr, "uhmm:   the last invalidation this thread told: event %d, "
		"[%#lx, %#lx), initiator %d\n", told.ev, (unsigned long)told.start,
		(unsigned long)told.end, told.initiator);
}
