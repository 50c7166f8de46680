// SPDX-License-Identifier: MIT
/*
 * The library's own memory comes from mmap, never from malloc: the pages
 * of the heap are the very pages a program may ask us to migrate, and while
 * a range is fenced any write into it - our metadata sharing a heap page
 * with the user's buffer, or malloc's own bookkeeping - would wait for the
 * fence we hold.
 */
#define _GNU_SOURCE
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>

#include "internal.h"

struct mem_hdr {
	size_t len;			/* whole mapping */
	size_t pad;
};

void *mem_alloc(size_t size)
{
	size_t len = page_up(size + sizeof(struct mem_hdr));
	struct mem_hdr *m;

	if (len < size)
		return NULL;
	m = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (m == MAP_FAILED)
		return NULL;
	m->len = len;
	return m + 1;		/* fresh anonymous memory is zeroed */
}

void mem_free(void *p)
{
	struct mem_hdr *m = p;

	if (!p)
		return;
	m--;
	munmap(m, m->len);
}

void *mem_realloc(void *p, size_t size)
{
	size_t len = page_up(size + sizeof(struct mem_hdr));
	struct mem_hdr *m;

	if (!p)
		return mem_alloc(size);
	m = (struct mem_hdr *)p - 1;
	if (len <= m->len)
		return p;
	m = mremap(m, m->len, len, MREMAP_MAYMOVE);
	if (m == MAP_FAILED)
		return NULL;
	m->len = len;
	return m + 1;
}
