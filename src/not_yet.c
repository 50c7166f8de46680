// SPDX-License-Identifier: MIT
/*
 * The API of later releases, declared now so programs link against the
 * whole contract: each answers -ENOSYS (or its documented NULL-handle
 * behaviour) until its feature lands.
 */
#include <errno.h>

#include "internal.h"

int uhmm_close_ex(struct uhmm *h, unsigned flags)
{
	(void)flags;
	return h ? -ENOSYS : -EINVAL;
}
