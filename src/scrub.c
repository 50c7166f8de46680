// SPDX-License-Identifier: MIT
/*
 * Device memory made ready again in the background.  A freed device page
 * may hold old data (it must read as zeros when it is next handed out
 * without a copy) and may have lost its page-table entry in our view (when
 * the program unmapped it).  The worker zeroes and re-maps free pages when
 * it has nothing else to do, a few megabytes per hold of the context lock,
 * so that migrations only move page tables - the kernel's first-touch and
 * fault costs are paid here, off the program's path.
 */
#define _GNU_SOURCE
#include <string.h>
#include <sys/mman.h>

#include "compat.h"
#include "internal.h"

#define SCRUB_BUDGET_PAGES 2048		/* 8 MiB per lock hold */

/* Make up to budget free pages of d ready; returns how many it did. */
static size_t scrub_dev(struct uhmm_dev *d, size_t budget)
{
	size_t done = 0, seen = 0;

	if (!d->scrub_todo)
		return 0;
	/* go round from where the last call stopped, at most once */
	for (size_t p = d->scrub_at; seen < d->npages && done < budget; p++, seen++) {
		size_t k;

		if (p >= d->npages)
			p = 0;
		d->scrub_at = p;
		if (!devmem_needs_scrub(d, p))
			continue;
		k = p;
		while (k < d->npages && k - p < budget - done && devmem_needs_scrub(d, k))
			k++;
		view_map(d->h, d, p, k - p);
		for (size_t j = p; j < k; j++) {
			if (d->pflags[j] & DP_DIRTY)
				memset(d->view + (j << PAGE_SHIFT), 0, PAGE_SIZE);
			d->pflags[j] = DP_VIEW_PTE;
		}
		d->scrub_todo -= k - p;
		done += k - p;
		seen += k - p;
		p = k;
		d->scrub_at = k < d->npages ? k : 0;
	}
	return done;
}

/* With h->lock held.  True while more is left to do. */
bool scrub_some(struct uhmm *h)
{
	size_t budget = SCRUB_BUDGET_PAGES;

	for (int i = 1; i <= MAX_DEVS && budget; i++)
		if (h->dev[i])
			budget -= scrub_dev(h->dev[i], budget);
	return budget == 0;
}
