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

unsigned uhmm_version(void)
{
	return (UHMM_VERSION_MAJOR << 16) | UHMM_VERSION_MINOR;
}
