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

int uhmm_advise(struct uhmm *h, void *addr, size_t len, enum uhmm_advice advice,
		struct uhmm_dev *dev)
{
	(void)addr; (void)len; (void)advice; (void)dev;
	return h ? -ENOSYS : -EINVAL;
}

int uhmm_range_attr(struct uhmm *h, const void *addr, size_t len,
		    struct uhmm_range_attr *a)
{
	(void)addr; (void)len; (void)a;
	return h ? -ENOSYS : -EINVAL;
}

int uhmm_pin(struct uhmm *h, void *addr, size_t len)
{
	(void)addr; (void)len;
	return h ? -ENOSYS : -EINVAL;
}

int uhmm_unpin(struct uhmm *h, void *addr, size_t len)
{
	(void)addr; (void)len;
	return h ? -ENOSYS : -EINVAL;
}

int uhmm_dev_evict(struct uhmm_dev *dev, size_t bytes)
{
	(void)bytes;
	return dev ? -ENOSYS : -EINVAL;
}

int uhmm_dev_report_access(struct uhmm_dev *dev, const void *addr, size_t len,
			   uint32_t count)
{
	(void)addr; (void)len; (void)count;
	return dev ? -ENOSYS : -EINVAL;
}
