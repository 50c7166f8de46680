// SPDX-License-Identifier: MIT
/* Counters: lock-free, read any time by uhmm_stats. */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "internal.h"

void counters_add(struct counters *c, struct counters *dev_c, size_t off, uint64_t n)
{
	atomic_fetch_add_explicit((_Atomic uint64_t *)((char *)c + off), n,
				  memory_order_relaxed);
	if (dev_c)
		atomic_fetch_add_explicit((_Atomic uint64_t *)((char *)dev_c + off), n,
					  memory_order_relaxed);
}

int counters_export(const struct counters *c, struct uhmm_stats *st)
{
	struct uhmm_stats s = { 0 };
	size_t n;
	int r;

	if (!st)
		return -EINVAL;
	r = sz_check(st, st->sz, sizeof(s));
	if (r)
		return r;
	s.pages_to_dev = atomic_load(&c->pages_to_dev);
	s.pages_to_sys = atomic_load(&c->pages_to_sys);
	s.pages_zero_filled = atomic_load(&c->pages_zero_filled);
	s.bytes_copied = atomic_load(&c->bytes_copied);
	s.cpu_faults = atomic_load(&c->cpu_faults);
	s.dev_faults = atomic_load(&c->dev_faults);
	s.invalidations = atomic_load(&c->invalidations);
	s.evictions = atomic_load(&c->evictions);
	s.auto_migrations = atomic_load(&c->auto_migrations);
	s.thrash_pins = atomic_load(&c->thrash_pins);
	s.poisoned = atomic_load(&c->poisoned);
	s.forks = atomic_load(&c->forks);
	s.fork_bytes_staged = atomic_load(&c->fork_bytes_staged);
	n = sz_of(st->sz, sizeof(s));
	s.sz = st->sz;
	/* write no byte past the caller's sz */
	memcpy(st, &s, n < sizeof(s) ? n : sizeof(s));
	return 0;
}

int uhmm_stats(struct uhmm *h, struct uhmm_stats *st)
{
	if (!h)
		return -EINVAL;
	return counters_export(&h->stats, st);
}

int uhmm_dev_stats(struct uhmm_dev *dev, struct uhmm_stats *st)
{
	if (!dev)
		return -EINVAL;
	return counters_export(&dev->stats, st);
}
