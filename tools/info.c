// SPDX-License-Identifier: MIT
/*
 * `uhmm info`: what the library found in this kernel and what it will do
 * with it.  When userfaultfd cannot be used at all, say which of the usual
 * reasons applies, because the library alone can only return -EPERM.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "tool.h"

#define CAP_SYS_PTRACE_BIT	19

static const struct {
	uint64_t bit;
	const char *name;
	const char *what;
} features[] = {
	{ UHMM_FEAT_UFFD,           "UFFD",           "userfaultfd usable" },
	{ UHMM_FEAT_KERNEL_FAULTS,  "KERNEL_FAULTS",  "kernel-mode accesses served" },
	{ UHMM_FEAT_WP,             "WP",             "write-protect fencing (anonymous)" },
	{ UHMM_FEAT_WP_SHMEM,       "WP_SHMEM",       "write-protect on shmem/hugetlbfs" },
	{ UHMM_FEAT_MOVE,           "MOVE",           "UFFDIO_MOVE (zero-copy page moves)" },
	{ UHMM_FEAT_POISON,         "POISON",         "UFFDIO_POISON" },
	{ UHMM_FEAT_PAGEMAP_SCAN,   "PAGEMAP_SCAN",   "PAGEMAP_SCAN ioctl" },
	{ UHMM_FEAT_WP_UNPOPULATED, "WP_UNPOPULATED", "write-protect markers on empty pages" },
	{ UHMM_FEAT_MINOR_SHMEM,    "MINOR_SHMEM",    "minor faults on shmem" },
	{ UHMM_FEAT_EVENTS,         "EVENTS",         "unmap/remove/remap events" },
	{ UHMM_FEAT_REMAP_FENCE,    "REMAP_FENCE",    "page tables moved out while a batch copies (MREMAP_DONTUNMAP)" },
	{ UHMM_FEAT_PROCMAP_QUERY,  "PROCMAP_QUERY",  "mappings asked one by one (PROCMAP_QUERY ioctl)" },
	{ UHMM_FEAT_EVENTS_OTHER,   "EVENTS_OTHER",   "unmap/remove/remap events on shared and file mappings" },
	{ UHMM_FEAT_PIN_DETECT,     "PIN_DETECT",     "pages pinned for DMA found as they would move (UFFDIO_MOVE's EBUSY)" },
	{ UHMM_FEAT_FAULT_SIGNAL,   "FAULT_SIGNAL",   "CPU faults served in the faulting thread (SIGBUS)" },
};

static void print_kernel(void)
{
	struct utsname u;

	if (uname(&u) < 0) {
		printf("kernel:    unknown (uname: %s)\n", strerror(errno));
		return;
	}
	printf("kernel:    %s %s (%s)\n", u.sysname, u.release, u.machine);
}

/* One "Key:\tvalue" line of /proc/self/status, or NULL. */
static char *proc_status(const char *key, char *buf, size_t len)
{
	size_t klen = strlen(key);
	char *ret = NULL;
	FILE *f;

	f = fopen("/proc/self/status", "r");
	if (!f)
		return NULL;
	while (fgets(buf, (int)len, f)) {
		if (strncmp(buf, key, klen) || buf[klen] != ':')
			continue;
		ret = buf + klen + 1;
		ret += strspn(ret, " \t");
		ret[strcspn(ret, "\n")] = '\0';
		break;
	}
	fclose(f);
	return ret;
}

static bool has_cap_sys_ptrace(void)
{
	char buf[256], *v = proc_status("CapEff", buf, sizeof(buf));

	if (!v)
		return false;
	return (strtoull(v, NULL, 16) >> CAP_SYS_PTRACE_BIT) & 1;
}

/* What decides whether userfaultfd may serve kernel-mode faults. */
static void print_privileges(void)
{
	int unpriv = read_int_file("/proc/sys/vm/unprivileged_userfaultfd");
	char buf[256], *seccomp = proc_status("Seccomp", buf, sizeof(buf));

	printf("privileges:\n");
	if (unpriv < 0)
		printf("  vm.unprivileged_userfaultfd  unreadable\n");
	else
		printf("  vm.unprivileged_userfaultfd  %d\n", unpriv);
	printf("  CAP_SYS_PTRACE               %s\n",
	       has_cap_sys_ptrace() ? "yes" : "no");
	printf("  /dev/userfaultfd             %s\n",
	       access("/dev/userfaultfd", R_OK | W_OK) ? "no access" : "usable");
	if (seccomp)
		printf("  seccomp                      %s\n",
		       strcmp(seccomp, "0") ? "filtering (mode 2)" : "off");
}

static void print_open_hints(int err)
{
	if (err == -ENOSYS) {
		fprintf(stderr,
			"  This kernel has no userfaultfd (CONFIG_USERFAULTFD=n or\n"
			"  older than 4.3); uhmm needs 5.11 or newer, best 6.8+.\n");
		return;
	}
	if (err != -EPERM)
		return;
	fprintf(stderr,
		"  userfaultfd was refused.  Usual causes, one of which must be\n"
		"  lifted:\n"
		"   - vm.unprivileged_userfaultfd=0 and this process has no\n"
		"     CAP_SYS_PTRACE and no read-write access to /dev/userfaultfd\n"
		"     (kernels from 5.11 still allow UFFD_USER_MODE_ONLY then,\n"
		"     so on those look at the next two first);\n"
		"   - a seccomp filter (container runtimes often block\n"
		"     userfaultfd): allow the userfaultfd syscall;\n"
		"   - an LSM policy (SELinux, AppArmor).\n"
		"  Fix: sysctl vm.unprivileged_userfaultfd=1, or grant access to\n"
		"  /dev/userfaultfd (e.g. group ownership), or run with\n"
		"  CAP_SYS_PTRACE.\n");
}

static void print_features(uint64_t feat)
{
	size_t i;

	printf("features:  0x%llx\n", (unsigned long long)feat);
	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		printf("  %-15s %-3s  %s\n", features[i].name,
		       feat & features[i].bit ? "yes" : "no", features[i].what);
}

/* Can a context serve faults in the faulting thread?  One is opened to
 * see (it needs UFFD_FEATURE_SIGBUS). */
static bool signal_faults_available(void)
{
	struct uhmm_opts o = { .sz = sizeof(o), .flags = UHMM_OPEN_FAULT_SIGNAL };
	struct uhmm *h;
	uint64_t feat = 0;

	if (uhmm_open(&h, &o))
		return false;
	uhmm_features(h, &feat);
	uhmm_close(h);
	return feat & UHMM_FEAT_FAULT_SIGNAL;
}

static void print_mode(uint64_t feat)
{
	printf("faults:    ");
	if (feat & UHMM_FEAT_FAULT_SIGNAL)
		printf("served in the faulting thread, by signal (UHMM_FAULTS=signal)\n");
	else
		printf("served by the library's reader thread; %s\n",
		       signal_faults_available() ?
		       "a context opened with\n"
		       "           UHMM_OPEN_FAULT_SIGNAL serves them in the faulting thread\n"
		       "           (SIGBUS), and kernel-mode accesses then fail with EFAULT" :
		       "UHMM_OPEN_FAULT_SIGNAL is not\n"
		       "           available here (-ENOTSUP)");
	printf("mode:      ");
	if (feat & UHMM_FEAT_FAULT_SIGNAL)
		printf("faults by signal: kernel-mode accesses to pages not in place fail\n"
		       "           with EFAULT, as in user-mode-only mode\n");
	else if (feat & UHMM_FEAT_KERNEL_FAULTS)
		printf("privileged (kernel-mode accesses are served)\n");
	else
		printf("user-mode only (UFFD_USER_MODE_ONLY): kernel-mode "
		       "accesses to device-private pages fail with EFAULT\n");
	printf("private:   a CPU touch of a device-private page brings its window back, %s;\n"
	       "           a page the driver cannot read back %s\n",
	       feat & UHMM_FEAT_MOVE ? "moved in from a pool of populated pages (UFFDIO_MOVE)"
				     : "copied in (UFFDIO_COPY)",
	       feat & UHMM_FEAT_POISON ? "is poisoned (UFFDIO_POISON): SIGBUS"
				       : "raises SIGBUS (an empty file mapped there)");
}

/*
 * A migration must stop writers to the pages being copied.  Say how: with
 * userfaultfd write-protect writers sleep in the kernel and readers go on;
 * without it on shmem, device pages lose their page-table entries and every
 * access waits in a minor fault until the copy is done.
 */
static const char *fence_dev(uint64_t feat)
{
	if (feat & UHMM_FEAT_WP_SHMEM)
		return "userfaultfd write-protect on the device file mapping";
	if (feat & UHMM_FEAT_MINOR_SHMEM)
		return "fallback: page tables dropped, every access waits in "
		       "a minor fault";
	return "fallback: neither shmem write-protect nor minor faults";
}

static void print_pins(uint64_t feat)
{
	printf("pages pinned for DMA (O_DIRECT, io_uring fixed buffers, RDMA):\n  %s\n",
	       feat & UHMM_FEAT_PIN_DETECT ?
	       "can be found as a migration would move them (UFFDIO_MOVE refuses\n"
	       "  them) in a context opened with UHMM_OPEN_DETECT_PINS: the\n"
	       "  migration says -EBUSY and they stay where the DMA goes" :
	       "not found here (no UFFDIO_MOVE, or no remap fence): pin such\n"
	       "  memory with uhmm_pin, or leave it unmanaged");
}

static void print_fencing(uint64_t feat)
{
	printf("fencing during migration:\n");
	if (feat & UHMM_FEAT_REMAP_FENCE) {
		printf("  every page      page tables moved out (MREMAP_DONTUNMAP): every access\n"
		       "                  waits a few ms per 128 MiB batch; device page tables\n"
		       "                  go back to the device's view, nothing is rebuilt\n");
		printf("untouched pages are found with %s, and never copied\n",
		       feat & UHMM_FEAT_PAGEMAP_SCAN ? "the PAGEMAP_SCAN ioctl" :
		       "/proc/self/pagemap reads");
		return;
	}
	printf("  system pages    %s\n", feat & UHMM_FEAT_WP ?
	       "userfaultfd write-protect: writers wait, readers go on" :
	       "fallback: no userfaultfd write-protect on anonymous memory");
	printf("  untouched pages %s\n", feat & UHMM_FEAT_WP_UNPOPULATED ?
	       "write-protect markers, nothing populated" :
	       "fallback: no write-protect markers on empty pages");
	printf("  device pages    %s\n", fence_dev(feat));
	printf("untouched pages are found with %s, and never copied\n",
	       feat & UHMM_FEAT_PAGEMAP_SCAN ? "the PAGEMAP_SCAN ioctl" :
	       "/proc/self/pagemap reads");
}

static void print_disable(void)
{
	const char *dis = getenv("UHMM_DISABLE");

	if (!dis || !*dis)
		return;
	printf("UHMM_DISABLE=%s: these features are switched off for this "
	       "process\n  (to exercise the fallback paths; the list below "
	       "shows them as \"no\")\n", dis);
}

/* info takes no arguments: anything given is either --help or a mistake. */
static int info_args(const char *arg)
{
	if (!strcmp(arg, "-h") || !strcmp(arg, "--help")) {
		print_usage(stdout);
		return 0;
	}
	if (arg[0] == '-')
		return usage_error("info: unknown option '%s'", arg);
	return usage_error("info: unexpected argument '%s'", arg);
}

int cmd_info(int argc, char **argv)
{
	struct uhmm *h;
	uint64_t feat = 0;
	unsigned v = uhmm_version();
	int err;

	if (argc > 1)
		return info_args(argv[1]);

	printf("library:   uhmm %u.%u\n", v >> 16, v & 0xffff);
	print_kernel();
	print_privileges();
	print_disable();

	err = uhmm_open(&h, NULL);
	if (err < 0) {
		fprintf(stderr, "uhmm: cannot open a context: %s (%d)\n",
			uhmm_strerror(err), err);
		print_open_hints(err);
		return EXIT_FAIL;
	}
	err = uhmm_features(h, &feat);
	if (err < 0) {
		fprintf(stderr, "uhmm: uhmm_features: %s\n", uhmm_strerror(err));
		uhmm_close(h);
		return EXIT_FAIL;
	}
	print_features(feat);
	print_mode(feat);
	print_fencing(feat);
	print_pins(feat);
	uhmm_close(h);
	return 0;
}
