// SPDX-License-Identifier: MIT
/*
 * The API of later releases, declared now so programs link against the
 * whole contract: each answers -ENOSYS (or its documented NULL-handle
 * behaviour) until its feature lands.
 */
#include <errno.h>

#include "internal.h"

int uhmm_make_exclusive(struct uhmm_mirror *m, void *addr, size_t len)
{
	(void)addr; (void)len;
	return m ? -ENOSYS : -EINVAL;
}
