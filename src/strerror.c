// SPDX-License-Identifier: MIT
/* uhmm_strerror: the meaning of each errno in uhmm's own words. */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "uhmm.h"

struct errtext {
	int err;
	const char *text;
};

static const struct errtext texts[] = {
	{ EINVAL, "invalid argument (bad handle, length, flags, or memory that cannot be managed)" },
	{ EFAULT, "address range has a hole (unmapped memory)" },
	{ EBUSY, "memory is pinned, mlocked, or managed by another userfaultfd or context" },
	{ EPERM, "not permitted (userfaultfd disabled for this process, or sealed memory)" },
	{ ENOSYS, "not supported by this kernel or not implemented yet" },
	{ ENOMEM, "out of memory (device full)" },
	{ EAGAIN, "the range's layout changed during the call; retry" },
	{ E2BIG, "struct larger than this library knows, with non-zero tail" },
	{ EIO, "device I/O failed (driver op returned an error)" },
	{ ENODEV, "device or mirror is gone" },
	{ EACCES, "device file must be open for reading and writing" },
	{ ETIMEDOUT, "timed out" },
	{ EEXIST, "already exists" },
	{ ENOSPC, "no space left on device memory" },
	{ EBADF, "bad file descriptor" },
	{ 0, "success" },
};

const char *uhmm_strerror(int err)
{
	if (err == INT_MIN)
		return "unknown error";
	if (err < 0)
		err = -err;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		if (texts[i].err == err)
			return texts[i].text;
	return "unknown error";
}
