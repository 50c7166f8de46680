// SPDX-License-Identifier: MIT
/*
 * The sz convention of boundary structs: 0 means the v1 layout, a smaller
 * struct is read and written only up to sz, a larger one must carry zeros
 * past what this library knows (-E2BIG otherwise).
 */
#include <errno.h>

#include "internal.h"

int sz_check(const void *s, size_t sz, size_t known)
{
	const unsigned char *p = s;

	if (sz != 0 && sz < sizeof(size_t))
		return -EINVAL;
	for (size_t i = known; i < sz; i++)
		if (p[i])
			return -E2BIG;
	return 0;
}

size_t sz_of(size_t sz, size_t v1)
{
	return sz == 0 ? v1 : sz;
}

/*
 * The pages overlapping [addr, addr + len): -EINVAL for len 0 or a range
 * that wraps (or whose last page would).
 */
int range_pages(const void *addr, size_t len, uintptr_t *start, uintptr_t *end)
{
	uintptr_t a = (uintptr_t)addr;

	if (!len || a + len < a || a + len > UINTPTR_MAX - PAGE_SIZE)
		return -EINVAL;
	*start = page_down(a);
	*end = page_up(a + len);
	return 0;
}

unsigned uhmm_version(void)
{
	return (UHMM_VERSION_MAJOR << 16) | UHMM_VERSION_MINOR;
}
