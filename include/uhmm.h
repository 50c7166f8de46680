/* SPDX-License-Identifier: MIT */
/*
 * uhmm - Heterogeneous Memory Management in user space.
 *
 * Device memory (cache-coherent memory the CPU can load and store, or
 * private memory only a device reaches) is registered by a small driver; a
 * program's ordinary memory migrates onto it and back behind unchanged
 * pointers.  Everything runs on a stock kernel through userfaultfd.
 *
 * Conventions (see docs/ and ../shared/design/API.md):
 *  - Every int function returns 0 (or a count where stated) on success and a
 *    negative errno on failure.  errno is never the channel (except
 *    uhmm_alloc, which returns NULL with errno set).
 *  - Addresses and lengths need not be page aligned: a call acts on every
 *    page overlapping [addr, addr + len).  len == 0, a range that wraps the
 *    address space, unknown flag bits and unknown enum values are -EINVAL.
 *  - NULL handles give -EINVAL; uhmm_close(NULL) and uhmm_mirror_close(NULL)
 *    do nothing.
 *  - Structs crossing the boundary start with `size_t sz`: set it to the
 *    sizeof the struct you compiled with; 0 means the v1 layout.  A larger
 *    struct with non-zero bytes past what the library knows is -E2BIG.
 *  - Every function may be called from any thread at once, except that a
 *    call destroying a handle must not race other calls on that handle.
 *  - Library threads block all signals.  No function returns -EINTR.
 *
 * Differences from private anonymous memory while a page lives on a
 * COHERENT device (the page is then a shared mapping of the device's file at
 * the same address):
 *  - madvise(MADV_DONTNEED) still reads back zeros and frees the device
 *    page (uhmm_dev_info's used drops at the next call); MADV_FREE and
 *    MADV_REMOVE are handled as DONTNEED by uhmm but the kernel itself
 *    answers MADV_FREE on such pages with EINVAL.  /proc/PID/maps shows
 *    the device's file over such pages until they are next touched, then
 *    anonymous memory.
 *  - mremap() that grows or moves the mapping never exposes other device
 *    memory: pages past the old end read as zeros.  A range whose pages
 *    are not contiguous in device memory is several mappings, and mremap
 *    across mappings fails with EFAULT as it does for any range made of
 *    several mappings (glibc's realloc then copies instead).
 *  - mbind/set_mempolicy, memory protection keys, KSM, anonymous VMA names
 *    and mlock's accounting do not apply to device pages; mseal'd memory is
 *    refused with -EPERM.
 *  - /proc/PID/maps shows the device's file for those pages.
 *  - fork(): the child gets a private snapshot of all managed memory as
 *    it was at the fork, wherever each page lived, with its protection;
 *    from then on neither process sees the other's writes.  In the child
 *    the memory is ordinary memory and no context exists (the parent's
 *    handles must not be used there; it may open its own).  Cost: the
 *    parent's fork() copies every device-resident page once (from the
 *    device's file, or through the driver's copy_from_dev, on the forking
 *    thread, with every context held), into private memory the child
 *    then moves into place; system-resident pages stay copy-on-write and
 *    cost nothing.  The snapshot is of one moment even while other
 *    threads store to COHERENT pages: those pages lose their PTEs before
 *    the copy, so such stores wait for the fork, and the parent's next
 *    access to each 2 MiB block of them is a minor fault (~0.1 ms: a
 *    256 MiB range is read again in 16 ms instead of 2).  With UHMM_OPEN_FORK_NOCOPY device-resident pages are
 *    PROT_NONE in the child instead (SIGSEGV), at O(extents) cost; so are
 *    they when the copy cannot be made (no memory for it).  Only fork()
 *    through libc is covered (pthread_atfork): posix_spawn, vfork and
 *    system() run nothing and pay nothing; a raw clone(2) is undefined.
 *
 * While a page lives on a PRIVATE device its range has no page there: it
 * does not count in RSS, /proc/self/pagemap shows it absent, and the first
 * access brings it back (see uhmm_migrate).  Pages brought back by faults
 * are ordinary anonymous pages; with UFFDIO_MOVE (6.8+) they come from a
 * pool of populated pages handed over without a copy.
 *
 * Known limitation: a program that mremap()s a range away while another of
 * its threads migrates that same range can lose that range's data (the
 * migration's new mapping may land where the old one was, after it moved);
 * munmap, mmap MAP_FIXED and mprotect racing a migration give -EAGAIN and
 * lose nothing the program keeps, but a munmap in the short gap just
 * before the migration's mapping change finds its range mapped again
 * afterwards (README, Known limitations).  User space has no way to
 * replace a mapping only if it is still the one it was; the library
 * narrows the window but cannot close it.
 *
 * How a migration fences the range: where the kernel has MREMAP_DONTUNMAP
 * (UHMM_FEAT_REMAP_FENCE), the batch's page tables are moved out in one
 * call and every access waits in a userfaultfd fault until the new pages
 * are in place (a few milliseconds per 128 MiB); otherwise writers are
 * write-protected and readers go on reading.
 *  - Private file mappings cannot be migrated (hmm-tests migrate them).
 */
#ifndef UHMM_H
#define UHMM_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UHMM_VERSION_MAJOR 1
#define UHMM_VERSION_MINOR 0

/* (MAJOR << 16) | MINOR of the library actually linked. */
unsigned uhmm_version(void);

/* ------------------------------------------------------------------ */
/* Context                                                             */
/* ------------------------------------------------------------------ */

/* One address-space manager.  Several may exist in a process; a page
 * belongs to at most one at a time (-EBUSY otherwise). */
struct uhmm;

struct uhmm_opts {
	size_t   sz;
	size_t   fault_around;     /* bytes one CPU fault on device-private
	                              memory brings back (the aligned window
	                              around the fault, clipped to the pages
	                              on that device); a power of two, at
	                              least a page; 0 = 64 KiB.  A thread
	                              reading on from its last window gets
	                              twice that window, up to 2 MiB, and at
	                              2 MiB the next four blocks are brought
	                              home while it works (read-ahead)       */
	uint32_t fault_threads;    /* threads serving CPU faults; 0 = 1.  With
	                              1, the thread reading the userfaultfd
	                              serves faults itself; with more, that
	                              many threads copy at the same time      */
	uint32_t access_threshold; /* device accesses to one 2 MiB block that
	                              make it migrate to that device;
	                              0 = 256, UINT32_MAX = never              */
	size_t   pool_bytes;       /* most system memory kept populated for
	                              pages coming back from private memory
	                              (rounded up to 2 MiB); 0 = 16 MiB,
	                              SIZE_MAX = none.  Windows of 64 KiB
	                              or less land instead in a 64 KiB
	                              buffer of the serving thread's, kept
	                              until it exits, and are copied in      */
	uint32_t flags;            /* UHMM_OPEN_*                              */
	/* Thrashing (added in 1.0, after flags): a 2 MiB block that moves
	   between system memory and a device more than thrash_moves times
	   within thrash_window_ms stays where both reach it (system memory,
	   or the COHERENT device it is on) for thrash_pin_ms, whatever the
	   access counters say; counted in thrash_pins.                      */
	uint32_t thrash_moves;     /* 0 = 8, UINT32_MAX = never pin           */
	uint32_t thrash_window_ms; /* 0 = 1000                                */
	uint32_t thrash_pin_ms;    /* 0 = 2000                                */
	/* Access counters (added after the thrashing fields): they halve
	   every access_decay_ms, so that a burst long ago does not count
	   for ever.                                                         */
	uint32_t access_decay_ms;  /* 0 = 1000                                */
};
#define UHMM_OPEN_FORK_NOCOPY 0x1  /* fork child: device pages inaccessible */
#define UHMM_OPEN_DETECT_PINS 0x2  /* find pages the kernel pinned for DMA
                                      as migrations would move them
                                      (UHMM_FEAT_PIN_DETECT; see
                                      uhmm_migrate): off by default, the
                                      stress model still finds a lost CPU
                                      write with it on, rarely            */
#define UHMM_OPEN_FAULT_SIGNAL 0x4 /* CPU faults are served by the thread
                                      that takes them, in a SIGBUS handler,
                                      not by the library's reader thread:
                                      a fault costs a signal, not two
                                      context switches (UHMM_FEAT_FAULT_
                                      SIGNAL).  The price: the kernel's
                                      own accesses to pages not in place
                                      (read(2) into a buffer on a PRIVATE
                                      device, or one being migrated) fail
                                      with EFAULT, as in a user-mode-only
                                      context, and the process's SIGBUS
                                      handler is uhmm's; a program that
                                      sets its own passes what it does not
                                      handle to uhmm_fault_signal().
                                      -ENOTSUP where the kernel lacks
                                      UFFD_FEATURE_SIGBUS.                */

/*
 * Create a context: probes userfaultfd (privileged mode first, then
 * UFFD_USER_MODE_ONLY), starts the event reader and worker threads.
 * -EPERM or -ENOSYS when userfaultfd cannot be used at all; `uhmm info`
 * says why.
 *
 * The environment variable UHMM_DISABLE, a comma-separated list of
 * "move", "wp_unpopulated", "wp_shmem", "minor", "pagemap_scan", "poison",
 * "kernel_faults", "remap_fence", "procmap_query", "events_other" (or
 * "all": every one of them but "minor",
 * which coherent devices cannot do without), switches features off to
 * exercise the fallback paths.  UHMM_DEBUG=busy: a device fault that
 * gives up with -EBUSY says on stderr which refusal it kept meeting (the
 * library writes nothing there otherwise).
 */
int  uhmm_open(struct uhmm **out, const struct uhmm_opts *opts /* NULL ok */);

/*
 * Bring every managed page back to system memory (bit-exact, same
 * address, same protection), remove the devices, join the threads, close
 * the descriptors.  Afterwards the memory is ordinary anonymous memory.
 */
void uhmm_close(struct uhmm *h);

/*
 * uhmm_close with flags.  UHMM_CLOSE_DISCARD: the process is about to exit
 * and the contents of device-resident pages need not survive: nothing is
 * copied back (pages of PRIVATE devices then read as zeros, pages of
 * COHERENT devices keep showing the device's memory) and the devices'
 * release ops run at once.  0 is uhmm_close.  -EINVAL for NULL or unknown
 * flags (nothing is closed then).
 */
#define UHMM_CLOSE_DISCARD 0x1     /* process about to exit: skip copy-back */
int  uhmm_close_ex(struct uhmm *h, unsigned flags);

#define UHMM_FEAT_UFFD          (1ull << 0)  /* userfaultfd usable          */
#define UHMM_FEAT_KERNEL_FAULTS (1ull << 1)  /* kernel-mode accesses served */
#define UHMM_FEAT_WP            (1ull << 2)  /* write-protect fencing       */
#define UHMM_FEAT_WP_SHMEM      (1ull << 3)  /* ... on shmem/hugetlbfs      */
#define UHMM_FEAT_MOVE          (1ull << 4)  /* UFFDIO_MOVE                 */
#define UHMM_FEAT_POISON        (1ull << 5)  /* UFFDIO_POISON               */
#define UHMM_FEAT_PAGEMAP_SCAN  (1ull << 6)  /* PAGEMAP_SCAN ioctl          */
#define UHMM_FEAT_WP_UNPOPULATED (1ull << 7) /* WP markers on empty pages   */
#define UHMM_FEAT_MINOR_SHMEM   (1ull << 8)  /* minor faults on shmem       */
#define UHMM_FEAT_EVENTS        (1ull << 9)  /* unmap/remove/remap events   */
#define UHMM_FEAT_REMAP_FENCE   (1ull << 10) /* migrations move page tables
                                                (mremap MREMAP_DONTUNMAP)  */
#define UHMM_FEAT_PROCMAP_QUERY (1ull << 11) /* mappings asked one by one
                                                (PROCMAP_QUERY ioctl, 6.11) */
#define UHMM_FEAT_EVENTS_OTHER  (1ull << 12) /* unmap/remove/remap events on
                                                shared and file mappings
                                                (UFFD_FEATURE_WP_ASYNC, 6.7) */
#define UHMM_FEAT_PIN_DETECT    (1ull << 13) /* pages the kernel pinned for
                                                DMA (O_DIRECT, io_uring
                                                fixed buffers, RDMA) can be
                                                found as a migration moves
                                                them: -EBUSY, they stay
                                                (MOVE with REMAP_FENCE;
                                                UHMM_OPEN_DETECT_PINS)   */
#define UHMM_FEAT_FAULT_SIGNAL  (1ull << 14) /* this context serves CPU
                                                faults in the faulting
                                                thread (UHMM_OPEN_FAULT_
                                                SIGNAL); it then lacks
                                                UHMM_FEAT_KERNEL_FAULTS  */
int uhmm_features(const struct uhmm *h, uint64_t *feat);

/*
 * For a program that installs its own SIGBUS handler while a context
 * serves faults by signal: pass it every SIGBUS it does not handle itself.
 * True: it was a fault on memory uhmm manages, now served, and the handler
 * should return (the access is retried).  False: none of uhmm's.
 */
bool  uhmm_fault_signal(const siginfo_t *si, void *ucontext);

/* ------------------------------------------------------------------ */
/* Devices                                                             */
/* ------------------------------------------------------------------ */

enum uhmm_mem {
	UHMM_MEM_COHERENT = 1,     /* the CPU loads/stores it directly and
	                              coherently (CXL, CCIX, CAPI, devdax)     */
	UHMM_MEM_PRIVATE  = 2,     /* only the device reaches it; the CPU gets
	                              pages back by migration (GPU VRAM)       */
};

struct uhmm_dev;

/*
 * The driver's side.  Ops may run concurrently, on the caller's thread or
 * on library threads, with dev_off and len page multiples inside the
 * device.  They return 0 or a negative errno.
 *
 * Ops must not touch managed memory or call uhmm_*.  Beware that malloc
 * and free touch the heap's own pages, which are managed when a malloc'd
 * buffer next to them is: an op that allocates on the migrating thread
 * (GPU runtimes do) may find such a page fenced or on a private device,
 * where it reads zeros or never returns.  Do such work on threads of the
 * driver's own (the OpenCL driver does).
 *
 * copy_to_dev failing aborts that migration's batch: its pages stay where
 * they were and the call returns -EIO.  copy_from_dev failing during a
 * migration home leaves the pages on the device (-EIO; nothing is lost);
 * during a CPU fault the faulting page alone is retried, then poisoned:
 * its accesses raise SIGBUS from then on (UFFDIO_POISON, or an empty file
 * mapped there on kernels without it), counted in `poisoned`.  The other
 * pages of the window stay on the device.  thread_init runs once on each
 * library thread before its first op on this device, and on each program
 * thread that serves its own fault (UHMM_OPEN_FAULT_SIGNAL) before its
 * first op there.
 */
struct uhmm_dev_ops {
	size_t sz;
	int  (*copy_to_dev)(void *drv, uint64_t dev_off, const void *src, size_t len);
	int  (*copy_from_dev)(void *drv, void *dst, uint64_t dev_off, size_t len);
	int  (*zero)(void *drv, uint64_t dev_off, size_t len);   /* optional */
	void (*thread_init)(void *drv);                           /* optional */
	void (*release)(void *drv);   /* optional: after the last op returned */
};

struct uhmm_dev_desc {
	size_t sz;
	const char *name;          /* shown by tools; copied (63 bytes kept)  */
	enum uhmm_mem kind;
	size_t size;               /* bytes of device memory, page multiple   */
	int fd;                    /* COHERENT: memory the CPU can mmap
	                              MAP_SHARED, opened read-write; uhmm keeps
	                              its own duplicate.  PRIVATE: -1         */
	uint64_t fd_offset;        /* page multiple                           */
	const struct uhmm_dev_ops *ops; /* PRIVATE: required; COHERENT: NULL ok */
	void *drv;                 /* handed back to ops                      */
};

/*
 * Register device memory.  At most 63 devices per context.
 * -EINVAL: bad kind, size 0 or not a page multiple, fd smaller than
 * fd_offset + size, not a regular file or character device; -EBADF: fd not
 * open; -EACCES: fd not open for reading and writing; -EBUSY: the file is
 * already a device; -ENOSYS: a kernel without userfaultfd minor faults on
 * shmem (5.13), which COHERENT devices need.  PRIVATE memory: fd must be
 * -1 and fd_offset 0, ops must give copy_to_dev and copy_from_dev
 * (-EINVAL otherwise); it needs nothing of the kernel but userfaultfd.
 */
int uhmm_dev_add(struct uhmm *h, const struct uhmm_dev_desc *d, struct uhmm_dev **out);

/* The simulated reference device: a memfd populated once at registration.
 * COHERENT: user pages are mapped onto it.  PRIVATE: only its driver maps
 * it; the library reaches it through its copy ops like any other.
 * -EINVAL: bad kind, size 0 or not a page multiple; -ENOMEM: size larger
 * than the machine's physical memory plus swap (sysinfo), refused at once
 * since it could never be populated (uhmm_dev_add with an fd has no such
 * limit: a real device's memory is not the machine's). */
int uhmm_dev_add_sim(struct uhmm *h, const char *name, enum uhmm_mem kind,
                     size_t size, struct uhmm_dev **out);

/* COHERENT memory from a devdax, hugetlbfs or tmpfs path; size 0 = whole
 * file.  A regular file shorter than size is extended. */
int uhmm_dev_add_file(struct uhmm *h, const char *path, size_t size,
                      struct uhmm_dev **out);

/* Migrate every page back to system memory bit-exact (whatever the
 * range's protection), then release.  -EIO if some pages could not be
 * read back: they are poisoned (SIGBUS on access) and counted.  -EIO too
 * if COHERENT pages could not be mapped home (the program mseal'd them):
 * they keep their data in the device's file, which their mapping holds
 * open, and are no longer managed (release must leave that memory be). */
int uhmm_dev_remove(struct uhmm_dev *dev);

struct uhmm_dev_info {
	size_t sz;
	int id;                    /* >= 1, unique in its context             */
	enum uhmm_mem kind;
	size_t size;               /* bytes                                   */
	size_t used;               /* bytes holding pages now                 */
	size_t reserved;           /* bytes bound to ranges (>= used): device
	                              memory is handed out in chunks of up to
	                              2 MiB, one per aligned virtual block    */
	size_t granule;            /* smallest unit it maps: page, or 2 MiB
	                              for devdax                              */
	char name[64];
};
int uhmm_dev_info(const struct uhmm_dev *dev, struct uhmm_dev_info *info);

/* ------------------------------------------------------------------ */
/* Allocation                                                          */
/* ------------------------------------------------------------------ */

/*
 * Memory aligned to the device granule (2 MiB for sizes of 2 MiB and more),
 * managed from birth and placed on `dev` (NULL = system memory) at first
 * touch.  On a COHERENT device the pages are bound to zeroed device memory
 * at once, so the first CPU write lands on the device with no copy.
 * NULL with errno set on failure: EINVAL for a bad argument, ENOMEM when
 * the memory cannot be had (on the device too) or is more than the
 * library can keep track of (it takes a page of its own per 2 MiB
 * managed, a TiB at most in all), with nothing left behind.  flags must
 * be 0.
 */
void *uhmm_alloc(struct uhmm *h, size_t size, struct uhmm_dev *dev, unsigned flags);
int   uhmm_free(struct uhmm *h, void *p);      /* p from uhmm_alloc */

/* Bring the range back to system memory and stop managing it.  Mirrors
 * hear UHMM_EV_UNMAP for it (no later change of it reaches them). */
int   uhmm_unmanage(struct uhmm *h, void *addr, size_t len);

/* ------------------------------------------------------------------ */
/* Migration                                                           */
/* ------------------------------------------------------------------ */

#define UHMM_MIGRATE_NOEVICT 0x1   /* never evict other pages to make room    */
#define UHMM_MIGRATE_DISCARD 0x2   /* contents need not survive: no copy     */

/*
 * Afterwards every page overlapping the range lives on `to` (NULL = system
 * memory), at the same address, with the same contents and protection.
 * Pages never populated get zeroed device pages without a copy and without
 * populating system memory.
 *
 * Source memory must be private anonymous memory or memory this context
 * manages.  -EINVAL: file-backed or shared mappings, hugetlb, stacks,
 * PROT_NONE pages, a device of another context.  -EFAULT: a hole.
 * -EBUSY: memory registered with another userfaultfd (another context
 * included), mlocked memory going to a PRIVATE device, or pages pinned
 * with uhmm_pin.  -EPERM: mseal'd memory.  The range is checked before
 * anything moves.  -EAGAIN: another thread changed the range's layout
 * during the call; what moved stays moved.
 *
 * Pages the kernel pinned for DMA without uhmm_pin (io_uring fixed
 * buffers, RDMA, O_DIRECT in flight) are found only as they would move,
 * in a context opened with UHMM_OPEN_DETECT_PINS where
 * UHMM_FEAT_PIN_DETECT says the kernel can (UFFDIO_MOVE refuses them): -EBUSY,
 * the batch holding one (up to 128 MiB) stays where it was, batches
 * before it stay moved, nothing is lost, and the DMA goes on landing in
 * the program's memory.  Without the feature they are not found: a
 * migration moves them and the DMA's later writes are lost (use
 * uhmm_pin).
 *
 * Pages move in ascending address order.  Destination full: the least
 * recently used pages outside the range are evicted to system memory; with
 * UHMM_MIGRATE_NOEVICT, or when the request alone exceeds the device,
 * -ENOMEM with a prefix of the range moved.
 *
 * Other threads may read and write the range during the call: writers
 * wait (userfaultfd write-protect) while their page is copied; readers
 * never see anything but the current value.
 *
 * PRIVATE destination: the system pages leave the range, which stays
 * mapped and registered: any CPU access to it, from any thread, brings
 * the page back through a userfaultfd fault, fault_around bytes at a
 * time.  Accesses from kernel mode (read(2) into the buffer, write(2) from
 * it, a futex there) are served the same way only with
 * UHMM_FEAT_KERNEL_FAULTS; in a user-mode-only context they fail with
 * EFAULT.  Pages go from one PRIVATE device to another, or between
 * PRIVATE and COHERENT, through system memory.  Pages already on `to`
 * count as `already` and are not copied again.
 */
int uhmm_migrate(struct uhmm *h, void *addr, size_t len,
                 struct uhmm_dev *to, unsigned flags);

struct uhmm_migrate_res {
	size_t sz;
	size_t moved;              /* pages now on the destination by this call */
	size_t zero_filled;        /* of which made without a copy             */
	size_t already;            /* pages that were there already            */
	size_t evicted;            /* other pages evicted to make room         */
};
int uhmm_migrate_ex(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
                    unsigned flags, struct uhmm_migrate_res *res);

/*
 * Asynchronous migration, for runtimes that overlap copies with compute.
 * uhmm_prefetch checks its arguments (-EINVAL as uhmm_migrate), queues the
 * migration and returns at once with *ticket set (tickets count up from
 * 1).  One library thread runs the queue in order; several prefetches may
 * be in flight.  uhmm_wait returns the migration's result (0 or what
 * uhmm_migrate would have returned), -ETIMEDOUT when it has not finished
 * within timeout_ms (0: just look; < 0: wait as long as it takes), -EINVAL
 * for a ticket never issued, and -ENOENT for one whose result is no longer
 * kept (the last 1024 are; waiting again on a kept ticket returns the same
 * result).  uhmm_close runs what is still queued first.
 */
int uhmm_prefetch(struct uhmm *h, void *addr, size_t len, struct uhmm_dev *to,
                  unsigned flags, uint64_t *ticket);
int uhmm_wait(struct uhmm *h, uint64_t ticket, int timeout_ms);

/* ------------------------------------------------------------------ */
/* Placement and attributes                                            */
/* ------------------------------------------------------------------ */

#define UHMM_LOC_NONE   (-1)       /* not populated anywhere               */
#define UHMM_LOC_SYSTEM   0        /* system memory                        */
                                   /* >= 1: the device with that id       */

/*
 * One location per page overlapping the range; a snapshot.  Works on any
 * mapped address: unmanaged pages present or swapped are SYSTEM, others
 * NONE.  -EFAULT for a hole, -ENOMEM when the library's own memory ran
 * out.
 */
int uhmm_where(struct uhmm *h, const void *addr, size_t len, int *loc);

/*
 * Where the page holding addr lives, and for device pages the byte offset
 * of that page in the device's memory (for a COHERENT device given as an
 * fd: offset in the fd, fd_offset included).  *dev_off is 0 for system
 * pages.  -EFAULT for an unmapped address.
 */
int uhmm_dev_offset(struct uhmm *h, const void *addr, int *loc, uint64_t *dev_off);

/*
 * Advice changes where pages live, never what a program computes.  It may
 * be given for any private anonymous range, or memory this context
 * manages (the range becomes managed); the whole range is checked first,
 * with the errors of uhmm_migrate (a hole -EFAULT; file-backed, shared,
 * PROT_NONE memory -EINVAL; ...), and nothing changes on an error.  An
 * unknown advice, a device of another context, or ACCESSED_BY without a
 * device is -EINVAL.  Advice belongs to the addresses: munmap drops it,
 * mremap takes it along.  Where advice conflicts, READ_MOSTLY wins over
 * PREFERRED_LOCATION, which wins over ACCESSED_BY.
 *
 * PREFERRED_LOCATION (dev, or NULL for system memory): a page of the range
 * populated for the first time is populated on dev when whoever touches it
 * can reach dev's memory.  On a COHERENT device the CPU's first write
 * faults once per run of untouched pages (up to 2 MiB), which become
 * zeroed device pages with no copy (counted in pages_zero_filled and
 * pages_to_dev; bytes_copied does not move), and that write and every
 * later one land in device memory: "malloc() and madvise() allocate from
 * device memory, then the CPU writes data to device memory directly".  A
 * device's first touch through its mirror does the same.  On a PRIVATE
 * device the CPU cannot hold the page: a CPU first touch populates system
 * memory (a zero page, as without advice), and the device's accesses then
 * move it there through the access counters; the device's own first touch
 * populates its memory directly.  Pages populated before the advice stay
 * where they are.  The access counters move pages toward the preferred
 * location, never away from it.
 *
 * ACCESSED_BY (dev): dev's accesses never migrate the range; it reaches the
 * pages wherever they live (system or COHERENT memory in place, pages
 * private to another device after they come home).
 *
 * READ_MOSTLY: a device read through its mirror (uhmm_range_fault with
 * FAULT_READ, the sim DMA engine) of a system page makes a read-only
 * duplicate in that device's memory; the CPU keeps its page, write-
 * protected, and uhmm_where reports it; uhmm_duplicates shows who holds
 * copies.  The first write by the CPU or any device collapses the
 * duplicates (the devices holding them are invalidated first) and the
 * page lives where that write happened: in system memory for the CPU, on
 * the writing device for a device (as far as it has room: a device's
 * write evicts nothing to make room for itself, and what does not fit is
 * written in system memory).  No reader ever sees a stale value.
 * Duplicates are dropped, not copied, on eviction or removal, and by
 * munmap, madvise and mremap.  Without userfaultfd write-protection
 * (UHMM_FEAT_WP) no duplicates are made and devices read in place.  Up
 * to four devices hold duplicates of one 2 MiB block.
 *
 * The UNSET_ advices undo theirs (UNSET_READ_MOSTLY collapses the
 * duplicates).
 */
enum uhmm_advice {
	UHMM_ADV_PREFERRED_LOCATION = 1, UHMM_ADV_UNSET_PREFERRED_LOCATION,
	UHMM_ADV_ACCESSED_BY,            UHMM_ADV_UNSET_ACCESSED_BY,
	UHMM_ADV_READ_MOSTLY,            UHMM_ADV_UNSET_READ_MOSTLY,
};
int uhmm_advise(struct uhmm *h, void *addr, size_t len,
                enum uhmm_advice advice, struct uhmm_dev *dev);

/* The advice of the range's first page, and 1 if some page of the range
 * has other advice (0 if all agree).  last_prefetch: where the last
 * uhmm_prefetch of the page sent it. */
struct uhmm_range_attr {
	size_t sz;
	int preferred;             /* location, or UHMM_LOC_NONE if unset       */
	uint64_t accessed_by;      /* bit (id - 1) per device                   */
	bool read_mostly;
	int last_prefetch;         /* location, or UHMM_LOC_NONE                */
};
int uhmm_range_attr(struct uhmm *h, const void *addr, size_t len,
                    struct uhmm_range_attr *a);

/* Per page: bit (id - 1) for each device holding a READ_MOSTLY duplicate
 * of it.  Pages not managed, or without duplicates, are 0.  -EINVAL for
 * NULL arguments, len 0 or a wrapping range. */
int uhmm_duplicates(struct uhmm *h, const void *addr, size_t len, uint64_t *masks);

/*
 * Pinned pages never migrate, are never evicted and never fenced: memory
 * given to the kernel for long-lived DMA (io_uring fixed buffers, RDMA,
 * O_DIRECT in flight).  uhmm_pin first brings pages private to a device
 * back to system memory (COHERENT pages stay: the CPU and the kernel reach
 * them), then uhmm_migrate of a range holding pinned pages is -EBUSY
 * before anything moves, and neither eviction, the access counters nor
 * first-touch placement touch them.  uhmm_dev_remove and uhmm_close still
 * bring them home.  Pins do not nest: uhmm_unpin unpins.  The range checks
 * of uhmm_advise apply.
 */
int uhmm_pin(struct uhmm *h, void *addr, size_t len);
int uhmm_unpin(struct uhmm *h, void *addr, size_t len);

/* Make room: evict least recently used pages of dev to system memory until
 * at least `bytes` of it are free (pinned pages stay).  -ENOMEM if that
 * much cannot be freed (what could be is), -EINVAL for a NULL device or
 * more bytes than the device has. */
int uhmm_dev_evict(struct uhmm_dev *dev, size_t bytes);

/* ------------------------------------------------------------------ */
/* Mirrors                                                             */
/* ------------------------------------------------------------------ */

enum uhmm_event {
	UHMM_EV_MIGRATE = 1,       /* pages change location                    */
	UHMM_EV_UNMAP,             /* munmap, or mremap away                   */
	UHMM_EV_REMOVE,            /* madvise DONTNEED/REMOVE/FREE             */
	UHMM_EV_REMAP,             /* mremap: pages now at another address      */
	UHMM_EV_PROTECT,           /* protection changed through uhmm_mprotect */
	UHMM_EV_RELEASE,           /* device or context going away             */
	UHMM_EV_EXCLUSIVE,         /* the CPU took back exclusive access (and:
	                              a device took it, uhmm_make_exclusive) */
};

struct uhmm_mirror;
struct uhmm_inval {
	size_t sz;
	uintptr_t start, end;
	enum uhmm_event ev;
	int initiator;             /* device id whose action caused it, or 0   */
};
struct uhmm_mirror_ops {
	size_t sz;
	void (*invalidate)(struct uhmm_mirror *m, uintptr_t start, uintptr_t end,
	                   enum uhmm_event ev);
	void (*invalidate2)(struct uhmm_mirror *m, const struct uhmm_inval *inv);
};

/*
 * A device's mirror of the address space (hmm_range_fault and
 * mmu_interval_notifier).  ops must give invalidate or invalidate2
 * (preferred when both are set); -EINVAL otherwise.
 *
 * invalidate runs, for every range the mirror may hold translations of
 * (every range uhmm_range_fault answered; possibly more):
 *  - before a change uhmm makes takes effect: UHMM_EV_MIGRATE for
 *    migrations in both directions, eviction and CPU faults bringing
 *    private pages home (initiator: the mirror's device when its own
 *    uhmm_range_fault caused it, else 0); UHMM_EV_RELEASE at
 *    uhmm_dev_remove or uhmm_close for the mirrors of that device, after
 *    which no callback comes and uhmm_range_fault returns -ENODEV;
 *  - for munmap (UNMAP), madvise DONTNEED/REMOVE/FREE (REMOVE) and mremap
 *    (REMAP: the old and the new range) of memory the context manages, as
 *    soon as the event is applied: before any uhmm call that starts after
 *    the syscall returned completes.  uhmm_range_fault makes the private
 *    anonymous memory it answers for managed, so that these events come.
 *  - the same for mappings uhmm cannot manage that uhmm_range_fault
 *    answered (shared anonymous memory, shmem and tmpfs files, hugetlbfs,
 *    regular files, private file mappings), where the kernel has
 *    UFFD_FEATURE_WP_ASYNC (6.7; UHMM_FEAT_EVENTS_OTHER): each such mapping
 *    is registered whole with a second userfaultfd, in write-protect mode,
 *    for its events alone (no page is ever protected; a shared writable
 *    file mapping's pages then take one kernel-served write fault after
 *    each writeback, as for dirty tracking).  Not seen, on every kernel:
 *    shared mappings of files opened read-only (the kernel refuses to
 *    register them), the main stack, mappings registered with another
 *    userfaultfd, and without the feature none of these; also, for every
 *    mapping, changes that raise no event: truncation or hole-punching of
 *    the file through another path, writes through other mappings (the
 *    translation is the page's address, so the device sees them), and
 *    reclaim.  A plain mprotect is seen at the next uhmm_range_fault only;
 *    uhmm_mprotect tells the mirrors first (UHMM_EV_PROTECT over the
 *    range);
 *  - UHMM_EV_EXCLUSIVE: when uhmm_make_exclusive gives a device sole
 *    access (to every mirror holding the range, the new holder too:
 *    initiator its device), and when the holder loses it (initiator 0 for
 *    the CPU, or the device whose fault took it).
 * Callbacks run with the library's lock held, on the calling thread or a
 * library thread (never the one reading the userfaultfd).  They may sleep
 * and take the driver's lock; they must not touch managed memory or call
 * uhmm_* other than uhmm_mirror_priv, uhmm_stats and uhmm_dev_info.
 * Never call uhmm_*, nor touch managed memory, while holding the lock
 * your callback takes.  uhmm_mirror_close waits for a running callback
 * (do not call it from one).  Each callback counts in `invalidations`.
 */
int   uhmm_mirror_open(struct uhmm_dev *dev, const struct uhmm_mirror_ops *ops,
                       void *priv, struct uhmm_mirror **out);
void  uhmm_mirror_close(struct uhmm_mirror *m);
void *uhmm_mirror_priv(const struct uhmm_mirror *m);

/* One sequence count per mirror, odd from the start of a change uhmm
 * makes to a range the mirror holds (a migration, before its callbacks)
 * until the change is complete, as the kernel's from invalidate_range_start
 * to _end; read_begin waits while it is odd.  The driver's loop: seq =
 * read_begin; uhmm_range_fault; take the lock invalidate takes; if
 * read_retry(seq): drop it and start again; program the device; drop the
 * lock.  After RELEASE read_retry is always true.  Progress: a driver
 * whose read_retry failed gets its next round in before a uhmm_migrate
 * that starts within 10 ms (waiting up to 1 ms for it), so a thread
 * migrating in a loop cannot starve it. */
uint64_t uhmm_mirror_read_begin(struct uhmm_mirror *m);
bool     uhmm_mirror_read_retry(struct uhmm_mirror *m, uint64_t seq);

/*
 * Finer intervals, as mmu_interval_notifier: an invalidation moves only the
 * counts of the intervals it overlaps, so churn elsewhere forces no retry.
 * Inserting one also makes the mirror hear invalidations of that range
 * from then on.  insert: -EINVAL for a NULL mirror or out, len 0 or a
 * wrapping range; -ENODEV after RELEASE.  remove waits for a running
 * callback and must not be called from one.  read_begin(NULL) is 0 and
 * read_retry(NULL, s) true, as for mirrors.
 */
struct uhmm_interval;
int      uhmm_interval_insert(struct uhmm_mirror *m, uintptr_t start, size_t len,
                              struct uhmm_interval **out);
void     uhmm_interval_remove(struct uhmm_interval *iv);
uint64_t uhmm_interval_read_begin(struct uhmm_interval *iv);
bool     uhmm_interval_read_retry(struct uhmm_interval *iv, uint64_t seq);

#define UHMM_PTE_VALID 0x1         /* the device may read this page        */
#define UHMM_PTE_WRITE 0x2         /* ... and write it                     */
#define UHMM_PTE_ERROR 0x4         /* no mapping, or no access             */
#define UHMM_PTE_ZERO  0x8         /* the shared zero page                 */
#define UHMM_PTE_EXCLUSIVE 0x10    /* held by this mirror alone
                                      (uhmm_make_exclusive)               */
#define UHMM_PTE_ORDER(f) (((f) >> 24) & 0x1f)  /* log2 pages of its mapping */

struct uhmm_pte {                  /* 24 bytes, frozen                      */
	uint64_t host;
	uint64_t dev_off;
	int32_t  loc;
	uint32_t flags;
};

/*
 * One pte per page overlapping the range.  flags 0: a snapshot that
 * faults and moves nothing:
 *  - holes and PROT_NONE pages: ERROR (loc NONE);
 *  - system pages: loc SYSTEM, host = the page's address, VALID when
 *    present (a swapped-out page is not), WRITE when the mapping is
 *    writable and the page needs no copy-on-write; ZERO for the shared
 *    zero page (VALID without WRITE, as a copy-on-write page is, where
 *    the kernel cannot tell: see below);
 *  - not populated: loc NONE, not VALID;
 *  - on a COHERENT device: its id, dev_off, host = the library's own view
 *    of the page (valid until the next invalidate of it), VALID, WRITE
 *    as the mapping allows;
 *  - on this mirror's PRIVATE device: host 0, dev_off, VALID (and WRITE);
 *    on another PRIVATE device: its id and dev_off, not VALID.
 * UHMM_PTE_ORDER: 9 for a page of a PMD-mapped huge page where
 * PAGEMAP_SCAN tells (hugetlb: its page size), and for a page of a 2 MiB
 * block that lies whole in one mapping and is bound whole, in order, to
 * one aligned 2 MiB chunk of a device; else 0.
 * How a snapshot is made: pages on devices from the library's page table
 * (no kernel call); system pages from PAGEMAP_SCAN in runs (6.7+), or from
 * /proc/self/pagemap page by page.  WRITE for a private page needs the
 * kernel's word that this process maps it alone: PAGEMAP_SCAN does not
 * say, so after a fork() (seen through pthread_atfork: a raw clone, or a
 * fork before libuhmm was loaded, is not seen) or while KSM has merged
 * pages of the process (/proc/self/ksm_stat, looked at every 50 ms at
 * most) private mappings are read page by page.  ZERO is reported where
 * PAGEMAP_SCAN answers, and page by page only where frame numbers show
 * (CAP_SYS_ADMIN).
 * Pages held by uhmm_make_exclusive: VALID | EXCLUSIVE (and WRITE as the
 * mapping allows) for the holder, with host in the library's copy of a
 * system page or the device's view of a COHERENT page; not VALID for
 * other mirrors (their FAULT_READ or FAULT_WRITE takes them back).
 * FAULT_READ: -EFAULT for a hole or PROT_NONE (nothing done); otherwise
 * every page comes back VALID: pages private to another device come home
 * first, missing pages are populated in system memory (by userfaultfd or
 * MADV_POPULATE_*, never by touching them).  FAULT_WRITE (implies READ):
 * -EPERM for a page of a mapping without PROT_WRITE (nothing done); zero
 * and copy-on-write pages are made writable.  Protection is read afresh
 * on every call (PROCMAP_QUERY where the kernel has it, else
 * /proc/self/maps).  -EBUSY: an invalidation of the
 * mirror ran during the call (this call's own faults included): start
 * again from read_begin.  -ENODEV after RELEASE.
 */
#define UHMM_FAULT_READ  0x1
#define UHMM_FAULT_WRITE 0x2
int uhmm_range_fault(struct uhmm_mirror *m, const void *addr, size_t len,
                     unsigned flags, struct uhmm_pte *ptes);

/* mprotect(2) after the mirrors heard UHMM_EV_PROTECT over the range; prot
 * takes PROT_READ, PROT_WRITE, PROT_EXEC (-EINVAL otherwise); the
 * kernel's errors come back as -errno. */
int uhmm_mprotect(struct uhmm *h, void *addr, size_t len, int prot);

/*
 * Device atomics: m's device alone may reach the range (make_device_
 * exclusive() of the kernel).  The range is faulted in writable first, as
 * for UHMM_FAULT_WRITE (pages private to other devices come home, pages
 * another mirror holds alone are taken back from it), then the CPU loses
 * access without the program seeing any change: a system page moves to a
 * copy of the library's (the range stays mapped and registered, empty), a
 * COHERENT device page loses its PTE; every other mirror holding the range
 * hears UHMM_EV_EXCLUSIVE, the holder too (initiator its own device: its
 * translations' host changes).  Then the holder's uhmm_range_fault
 * entries are VALID | WRITE | EXCLUSIVE with `host` where the device
 * reaches them; the driver's loop is make_exclusive; seq = read_begin;
 * range_fault; lock; read_retry? again from make_exclusive : program.
 * Pages on m's own PRIVATE device are exclusive already: they stay.
 *
 * The next CPU access to any page of a 2 MiB block the mirror holds
 * takes the block back: the holder hears UHMM_EV_EXCLUSIVE (initiator 0),
 * the access waits until its callback returned, then the pages come back
 * and the access completes.  So does another mirror's FAULT_READ or
 * FAULT_WRITE (initiator: its device; its snapshot sees not VALID), every
 * change uhmm makes to the range (migration, uhmm_mprotect, uhmm_unmanage,
 * uhmm_free), the program's munmap (what stays mapped comes back),
 * madvise DONTNEED/FREE (those pages read as zeros) and mremap (the pages
 * come back at the new address), fork() (in the parent, before the child
 * copies the address space), uhmm_mirror_close and RELEASE (silently).
 * A CPU access from kernel mode (read(2) into such a page) is served the
 * same way with UHMM_FEAT_KERNEL_FAULTS, else it fails with EFAULT, as for
 * device-private pages.  A thread that forks while holding the lock its
 * callback takes deadlocks.
 *
 * -EINVAL: NULL m, len 0, a wrapping range, a shared or file mapping (as
 * the kernel's: anonymous memory only; device memory in its place too).
 * -EFAULT: a hole or PROT_NONE.  -EPERM: a mapping without PROT_WRITE.
 * -ENODEV after RELEASE.  -ENOMEM: more than 4 GiB of 2 MiB blocks held
 * at once.  -EBUSY: pages pinned with uhmm_pin (they stay where the
 * kernel's DMA reaches them), or the program changed the range meanwhile
 * (try again).
 * Those checks come before anything changes; on a later failure the
 * range's pages are all the CPU's again.
 */
int uhmm_make_exclusive(struct uhmm_mirror *m, void *addr, size_t len);

/*
 * The simulated device's DMA engine: device-side reads and writes through
 * a mirror of the device's own, as a driver would (translations cached
 * per page, dropped by its invalidate; missing ones faulted in with
 * uhmm_range_fault, one round per call).  Returns the number of fault
 * rounds (0 when every page was already mirrored; each counts in
 * dev_faults) or -errno: -EFAULT for a hole or PROT_NONE, or memory
 * unmapped under the access (never a crash); -EPERM for a write to a
 * mapping without PROT_WRITE, which then writes nothing.  The mappings'
 * protection is looked at on every call, so a plain mprotect counts at
 * once (a refusal drops the call's cached translations).  It never
 * dereferences the program's addresses: system pages are reached with
 * process_vm_readv/writev, COHERENT pages through the library's view,
 * the device's PRIVATE pages through its driver's copy ops, pages its
 * mirror holds alone (uhmm_sim_atomic_add) where `host` says.  Pages
 * another mirror holds alone are taken back from it first.  Works on any
 * device of the context (the driver's copy ops for PRIVATE pages).  Each
 * call is one access of the device to its range for the access counters
 * (which may move the range before the call copies).  A run of system
 * pages of 8 MiB or more (UHMM_DMA_SPLIT=MiB at uhmm_open; 0: never) is
 * copied on two channels, half by the caller and half by a thread of the
 * library ("uhmm-dma", one per device, started at the first such copy);
 * a call that finds that thread busy with another's half copies alone.
 */
int uhmm_sim_read(struct uhmm_dev *dev, const void *addr, void *buf, size_t len);
int uhmm_sim_write(struct uhmm_dev *dev, void *addr, const void *buf, size_t len);

/*
 * A device atomic of the sim engine: *addr += val as one indivisible
 * step against the CPU and other devices, the old value in *old (NULL:
 * not wanted).  The page is made the device's alone first
 * (uhmm_make_exclusive on the engine's mirror), then the add is done
 * where the device reaches it; a CPU access in between takes the page back
 * and the engine starts again.  Returns the fault rounds taken (at least
 * one), or -errno: -EINVAL for a NULL dev or addr, or addr not 8-byte
 * aligned; the errors of uhmm_make_exclusive (-EFAULT, -EPERM, -EINVAL
 * for a shared or file mapping, -EBUSY for a page pinned with uhmm_pin).  The page stays the device's until the
 * CPU, another device or a change of the range takes it back.
 */
int uhmm_sim_atomic_add(struct uhmm_dev *dev, void *addr, uint64_t val, uint64_t *old);

/*
 * A model of the link between the simulated device and system memory: its
 * DMA engine's accesses to system pages, and a PRIVATE sim device's copies
 * (migrations both ways), then move at most bytes_per_sec between them
 * (whoever finds the link busy waits, as DMA on one link does), while the
 * engine's accesses to pages in its own memory, or on a COHERENT device,
 * move at memory speed.  Without
 * it (and with 0) every access runs at memory speed, which hides what
 * placement is for: a GPU reads its own memory tens of times faster than
 * system memory over PCIe.  -EINVAL for a NULL device.
 */
int uhmm_sim_set_link(struct uhmm_dev *dev, uint64_t bytes_per_sec);

/* ------------------------------------------------------------------ */
/* Counters                                                            */
/* ------------------------------------------------------------------ */

/*
 * Access counting, the placement policy: only the driver knows how often
 * its device touches a page, so placement follows what the device reports,
 * not the kernel's NUMA balancing.  Each device access operation that
 * touches a 2 MiB block (one uhmm_sim_read/write, whatever number of its
 * pages) adds 1 to that block's counter for that device;
 * uhmm_dev_report_access adds `count` to every block [addr, addr + len)
 * touches.  Counters halve every access_decay_ms (uhmm_opts; a second by
 * default), and a block's counters, bounces and thrashing pin go when its
 * memory is unmapped or moved by mremap: memory mapped there afterwards
 * starts uncounted.  When one reaches
 * access_threshold (uhmm_opts), the block's migratable pages move to the
 * device (counted in auto_migrations) - those the access touched and those
 * handed to uhmm before (a migration, advice, an earlier access or
 * report), never the rest of a mapping the kernel merged with one of the
 * program's, which may be anyone's - unless advice says otherwise (see
 * uhmm_advise), the pages are pinned, or the block thrashes (uhmm_opts:
 * thrash_*).  Reported accesses also order eviction (least recently
 * migrated, faulted or accessed first).  -EINVAL for a NULL device, len 0
 * or a wrapping range.  May migrate, so it must not be called from a
 * driver op or callback.
 */
int uhmm_dev_report_access(struct uhmm_dev *dev, const void *addr, size_t len,
                           uint32_t count);

struct uhmm_stats {
	size_t   sz;
	uint64_t pages_to_dev;     /* pages migrated onto any device         */
	uint64_t pages_to_sys;     /* pages migrated back to system memory   */
	uint64_t pages_zero_filled;/* destination pages made without a copy  */
	uint64_t bytes_copied;
	uint64_t cpu_faults;       /* CPU faults the library served          */
	uint64_t dev_faults;       /* device fault rounds                    */
	uint64_t invalidations;    /* mirror invalidate callbacks issued     */
	uint64_t evictions;        /* pages evicted to make room             */
	uint64_t auto_migrations;  /* pages moved by the access-counter policy*/
	uint64_t thrash_pins;      /* blocks pinned because they thrashed    */
	uint64_t poisoned;         /* pages lost to failed device reads      */
	/* fork() through libc (pthread_atfork): posix_spawn, vfork and
	 * system() are not forks here and cost nothing */
	uint64_t forks;            /* fork()s while the context was open     */
	uint64_t fork_bytes_staged;/* device-resident bytes copied for children */
};
int uhmm_stats(struct uhmm *h, struct uhmm_stats *st);
int uhmm_dev_stats(struct uhmm_dev *dev, struct uhmm_stats *st);

/* Text for an errno, either sign; static and thread-safe. */
const char *uhmm_strerror(int err);

/* ------------------------------------------------------------------ */
/* Tracing                                                             */
/* ------------------------------------------------------------------ */

/*
 * A trace of what moved pages, and why, in the spirit of the CUDA UVM
 * tools API: each context keeps its last UHMM_TRACE_EVENTS events in a
 * ring.  Nothing is recorded, and a trace point costs one load, while no
 * reader is attached; uhmm_trace_start attaches one in this process, and
 * `uhmm trace PID` (uhmm_proc_trace_read) one from outside.
 *
 * Events: MIGRATE, pages [addr, addr + len) changed place from `from` to
 * `to` (UHMM_LOC_* or a device id), one event per batch of one mapping and
 * one source; EVICT, the same for pages sent home to make room on `from`
 * (cause: what needed the room); CPU_FAULT, a CPU access the library
 * served at addr (tid: the faulting thread; from: where the page was);
 * DEV_FAULT, a device fault round of the sim DMA engine over
 * [addr, addr + len) (to: the device).  tid is the thread that did the
 * work unless said otherwise; time_ns is CLOCK_MONOTONIC.
 */
#define UHMM_TRACE_EVENTS 4096

enum uhmm_trace_type {
	UHMM_TRACE_MIGRATE = 1,
	UHMM_TRACE_EVICT,
	UHMM_TRACE_CPU_FAULT,
	UHMM_TRACE_DEV_FAULT,
};

enum uhmm_trace_cause {
	UHMM_CAUSE_OTHER = 0,
	UHMM_CAUSE_MIGRATE,        /* uhmm_migrate, uhmm_migrate_ex          */
	UHMM_CAUSE_PREFETCH,       /* uhmm_prefetch                          */
	UHMM_CAUSE_ALLOC,          /* uhmm_alloc placing new memory          */
	UHMM_CAUSE_CPU_FAULT,      /* a CPU access (and its read-ahead)      */
	UHMM_CAUSE_DEV_FAULT,      /* uhmm_range_fault (a device's access)   */
	UHMM_CAUSE_UNMANAGE,       /* uhmm_unmanage                          */
	UHMM_CAUSE_REMOVE,         /* uhmm_dev_remove, uhmm_close            */
	UHMM_CAUSE_POLICY,         /* access counters                        */
	UHMM_CAUSE_FIRST_TOUCH,    /* first touch on the preferred location  */
};

struct uhmm_trace_event {         /* 48 bytes, frozen                      */
	uint64_t seq;              /* 1, 2, ... in its context               */
	uint64_t time_ns;
	uint64_t addr;
	uint64_t len;              /* bytes                                  */
	int32_t  tid;
	int16_t  from, to;
	uint16_t type;             /* enum uhmm_trace_type                   */
	uint16_t cause;            /* enum uhmm_trace_cause                  */
	uint32_t reserved;         /* 0                                      */
};

/* Attach / detach an in-process reader (they nest); stop without a start
 * is -EINVAL. */
int uhmm_trace_start(struct uhmm *h);
int uhmm_trace_stop(struct uhmm *h);

/*
 * Copy up to n events with seq >= *next, oldest first, into ev; returns
 * how many and sets *next past the last one copied.  *next = 0 starts from
 * the oldest event still kept.  Events overwritten before they were read
 * are lost: ev[0].seq > *next (as it was passed) says how many.
 */
int uhmm_trace_read(struct uhmm *h, uint64_t *next, struct uhmm_trace_event *ev,
                    size_t n);

/* Text of a type or cause ("migrate", "cpu-fault", ...); "?" if unknown. */
const char *uhmm_trace_type_name(unsigned type);
const char *uhmm_trace_cause_name(unsigned cause);

/* ------------------------------------------------------------------ */
/* Other processes: what `uhmm stat`, `top`, `map` and `trace` show    */
/* ------------------------------------------------------------------ */

/*
 * Every context publishes its counters in a small shared-memory file,
 * DIR/PID.N (N counts the process's contexts from 1), where DIR is
 * $UHMM_STAT_DIR, or /dev/shm/uhmm-UID by default (mode 0700, the file
 * 0600); UHMM_STAT_DIR=off publishes nothing.  The file is removed by
 * uhmm_close and at exit; the file of a process that died without either
 * is removed by the next uhmm_proc_list or uhmm_proc_open that finds it.
 * Values are taken when a reader asks (uhmm_proc_refresh) by a library
 * thread that sleeps otherwise: publishing costs nothing while nobody
 * looks.  Another user's processes are seen only by root.
 */
struct uhmm_proc_id {              /* frozen */
	int32_t  pid;
	uint32_t ctx;              /* N of DIR/PID.N */
};

/* The published contexts of process pid (0: of every process), up to n
 * into ids; returns how many there are (possibly more than n). */
int uhmm_proc_list(int pid, struct uhmm_proc_id *ids, size_t n);

struct uhmm_proc;

/* -ENOENT: no such context published; -ESRCH: it was the file of a dead
 * process (now removed); -EACCES: another user's. */
int  uhmm_proc_open(int pid, unsigned ctx, struct uhmm_proc **out);
void uhmm_proc_close(struct uhmm_proc *p);

/* Ask the process for fresh values, waiting up to timeout_ms (< 0: as
 * long as it takes).  0; -ETIMEDOUT: it did not answer in time (the
 * values are the last it published); -ESRCH: it is gone. */
int  uhmm_proc_refresh(struct uhmm_proc *p, int timeout_ms);

struct uhmm_proc_info {
	size_t   sz;
	int32_t  pid;
	uint32_t ctx;
	char     comm[16];         /* the process's name (/proc/PID/comm)    */
	uint64_t sample_ns;        /* CLOCK_MONOTONIC of these values; 0:
	                              never refreshed                        */
	uint64_t start_ns;         /* CLOCK_MONOTONIC of uhmm_open           */
	uint32_t ndev;             /* devices: uhmm_proc_dev(p, 0 .. ndev-1) */
	uint64_t pages_system;     /* managed pages in system memory         */
	uint64_t allocs;           /* live uhmm_alloc blocks                 */
	uint64_t alloc_bytes;      /* ... and their bytes                    */
};
/* The values of the last refresh; st (NULL ok): the context's counters. */
int uhmm_proc_info(struct uhmm_proc *p, struct uhmm_proc_info *info,
                   struct uhmm_stats *st);
/* Device i (0-based) as of the last refresh: info->used / page size is
 * the pages living there; st (NULL ok): its uhmm_dev_stats. */
int uhmm_proc_dev(struct uhmm_proc *p, unsigned i, struct uhmm_dev_info *info,
                  struct uhmm_stats *st);
/* uhmm_where in the other process (one loc per page); -EFAULT for a hole
 * there, -ETIMEDOUT when it does not answer within timeout_ms. */
int uhmm_proc_where(struct uhmm_proc *p, uint64_t addr, size_t len, int *loc,
                    int timeout_ms);
/* The live uhmm_alloc blocks of the process: up to n (start, length)
 * pairs, lowest address first, from the last refresh; returns how many
 * there are (at most 256 are published). */
int uhmm_proc_allocs(struct uhmm_proc *p, uint64_t *start, uint64_t *len, size_t n);
/*
 * uhmm_trace_read of the other process.  The first call attaches a reader
 * there (and returns what the ring already holds, usually nothing); it
 * stays attached while calls keep coming at least every 2 seconds, and
 * until uhmm_proc_close.
 */
int uhmm_proc_trace_read(struct uhmm_proc *p, uint64_t *next,
                         struct uhmm_trace_event *ev, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* UHMM_H */
