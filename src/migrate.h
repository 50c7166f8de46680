/* SPDX-License-Identifier: MIT */
/*
 * Inside a migration: a batch is up to 128 MiB of one mapping moving to one
 * place.  migrate.c cuts ranges into batches; fence_remap.c and fence_wp.c
 * move them (page tables moved out, or writers write-protected); batch.c
 * holds what both need; evict.c sends device pages home.
 */
#ifndef UHMM_MIGRATE_H
#define UHMM_MIGRATE_H

#include "internal.h"

#define BATCH_PAGES (64 * BLOCK_PAGES)		/* 128 MiB */

struct batch {
	uintptr_t start, end;
	size_t n;
	int prot;
	struct uhmm_dev *src;			/* NULL: system memory */
	uint32_t dsrc[BATCH_PAGES];
	uint32_t ddst[BATCH_PAGES];
	uint8_t present[BATCH_PAGES];
	uint8_t sloc[BATCH_PAGES];		/* anonymous: LOC_SYS or a
						   private device's id */
	bool moved_by_uffd;			/* sys_pages_out: pinned.c's way */
};

struct request {
	uintptr_t start, end;
	unsigned flags;
	struct uhmm_migrate_res *res;
};

static inline uintptr_t va(const struct batch *b, size_t i)
{
	return b->start + (i << PAGE_SHIFT);
}

/* batch.c */
size_t run_len(const uint32_t *dp, const uint8_t *sel, size_t i, size_t n);
int  write_all(int fd, const void *buf, size_t len, uint64_t off);
int  read_all(int fd, void *buf, size_t len, uint64_t off);
void fence_track(struct uhmm *h, struct batch *b);
bool landed_stray(struct uhmm *h);
bool fence_broken(struct uhmm *h);
int  fence_end(struct uhmm *h);
size_t reserve_pages(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		     const struct request *rq, bool only_sys);
int  reserve_batch(struct uhmm *h, struct uhmm_dev *d, struct batch *b,
		   const struct request *rq, bool *short_);
int  install_run(struct uhmm *h, struct uhmm_dev *d, uintptr_t at,
		 uint32_t dp, size_t cnt, int prot);
char *view_of(struct uhmm_dev *d, uint32_t dp);
void zero_run(struct uhmm_dev *d, uint32_t dp, size_t n);
void commit(struct uhmm *h, struct batch *b, size_t from, size_t n,
	    struct uhmm_dev *to, bool keep_src);
int  finish_to_dev(struct uhmm *h, struct uhmm_dev *d, const struct request *rq,
		   size_t n, size_t zero, bool cut);
char *stage_alloc(struct uhmm *h, uintptr_t at, size_t len, bool populate);
int  stage_into_place(struct uhmm *h, struct batch *b, char *st);
int  finish_to_sys(struct uhmm *h, struct batch *b, const struct request *rq);
int  sys_pages_out(struct uhmm *h, struct batch *b, char **src);

/* pinned.c */
int  pages_move_out(struct uhmm *h, uintptr_t from, char *to, size_t len);
int  pages_move_back(struct uhmm *h, uintptr_t at, char *from, size_t len);
void sys_pages_back(struct uhmm *h, struct batch *b, char *src);
void dev_pages_back(struct uhmm *h, struct batch *b);
bool still_dev_map(struct uhmm *h, const struct batch *b);
void sys_pages_drop(struct uhmm *h, struct batch *b, char *src);

/* fence_wp.c: writers write-protected, readers go on */
int batch_to_dev(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
		 const struct request *rq);
int batch_to_sys(struct uhmm *h, struct batch *b, const struct request *rq);

/* fence_remap.c: page tables moved out, every access waits */
bool src_contiguous(const struct batch *b);
int batch_to_dev_remap(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
		       const struct request *rq);
int batch_to_sys_remap(struct uhmm *h, struct batch *b, const struct request *rq);

/* private.c */
int private_home(struct uhmm *h, uintptr_t start, uintptr_t end, int keep,
		 size_t *moved);
int batch_to_private(struct uhmm *h, struct batch *b, struct uhmm_dev *d,
		     const struct request *rq);

#endif
