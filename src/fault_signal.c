// SPDX-License-Identifier: MIT
/*
 * CPU faults served by the thread that takes them (UHMM_OPEN_FAULT_SIGNAL).
 *
 * Through the reader, a fault on a page of a PRIVATE device costs the
 * faulting thread's sleep, the reader's wake-up, and the faulting thread's
 * wake-up once the page is placed: on this VM ~12 us against the kernel's
 * 2-4 us first touch.  With UFFD_FEATURE_SIGBUS the kernel raises SIGBUS
 * in the faulting thread instead of queueing the fault, and the handler
 * here serves it as a fault thread would (events_fault_here), then
 * returns: the access runs again and finds its page.  A signal is not
 * free, but it is no context switch.
 *
 * The kernel's own accesses get no signal: they fail with EFAULT, as in a
 * user-mode-only context.  Every fault on the context's ranges comes here,
 * not only a PRIVATE device's: a migration's fence (the handler waits for
 * the context's lock, as the thread would have waited in the kernel), a
 * COHERENT device's minor faults, a READ_MOSTLY page's first write.
 *
 * The handler is the process's: installed with the first such context,
 * it passes every SIGBUS that is none of uhmm's to the handler it
 * replaced (or, where that was the default, lets the fault kill).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "compat.h"
#include "internal.h"

#define MAX_SIGNAL_CTX	16

static struct uhmm *_Atomic ctx[MAX_SIGNAL_CTX];
static _Atomic int using[MAX_SIGNAL_CTX];	/* handlers inside ctx[i] */
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static struct sigaction before;			/* the handler we replaced */
static bool installed;

/* A fork child has no context (fork.c): none of the parent's copies, whose
 * locks the fork held, may take its faults.  The handler stays; with no
 * context it passes every SIGBUS on. */
static void forget_all(void)
{
	for (int i = 0; i < MAX_SIGNAL_CTX; i++) {
		atomic_store(&ctx[i], NULL);
		atomic_store(&using[i], 0);
	}
	pthread_mutex_init(&install_lock, NULL);
}

static void __attribute__((constructor)) watch_forks(void)
{
	pthread_atfork(NULL, NULL, forget_all);
}

bool fault_signal_wanted(const struct uhmm *h)
{
	const char *env = getenv("UHMM_FAULTS");

	return (h->opts.flags & UHMM_OPEN_FAULT_SIGNAL) || (env && !strcmp(env, "signal"));
}

/*
 * The fault's kind, as userfaultfd would have said it.  x86 gives the page
 * fault's error code with the signal: bit 0 set, the page was present (a
 * write-protect fault); bit 1, a write.  Elsewhere every fault is taken
 * for a missing page's read: a write to a zero page then faults again.
 */
static uint64_t fault_flags(void *uc)
{
	uint64_t f = 0;
#if defined(__x86_64__)
	unsigned long err = ((ucontext_t *)uc)->uc_mcontext.gregs[REG_ERR];

	if (err & 2)
		f |= UFFD_PAGEFAULT_FLAG_WRITE;
	if ((err & 3) == 3)
		f |= UFFD_PAGEFAULT_FLAG_WP;
#else
	(void)uc;
#endif
	return f;
}

/* Does context slot i serve this fault?  alone: see events_fault_here. */
static bool slot_serves(int i, uintptr_t addr, uint64_t flags, bool alone)
{
	struct uhmm *h;
	bool ours = false;

	atomic_fetch_add(&using[i], 1);
	h = atomic_load(&ctx[i]);
	if (h)
		ours = events_fault_here(h, addr, flags, alone);
	atomic_fetch_sub(&using[i], 1);
	return ours;
}

bool uhmm_fault_signal(const siginfo_t *si, void *uc)
{
	uintptr_t addr;
	uint64_t flags;
	int n = 0, last = -1;

	/* userfaultfd's SIGBUS, from the kernel's fault path */
	if (!si || si->si_signo != SIGBUS || si->si_code != BUS_ADRERR)
		return false;
	addr = (uintptr_t)si->si_addr;
	flags = uc ? fault_flags(uc) : 0;
	for (int i = 0; i < MAX_SIGNAL_CTX; i++) {
		if (!atomic_load(&ctx[i]))
			continue;
		n++;
		last = i;
		if (slot_serves(i, addr, flags, false))
			return true;
	}
	/* a registered page no context's page table knows: with one context,
	 * whose userfaultfd alone raises such signals, it is that one's */
	return n == 1 && slot_serves(last, addr, flags, true);
}

static void pass_on(int sig, siginfo_t *si, void *uc)
{
	struct sigaction dfl = { .sa_handler = SIG_DFL };

	if ((before.sa_flags & SA_SIGINFO) && before.sa_sigaction) {
		before.sa_sigaction(sig, si, uc);
		return;
	}
	if (before.sa_handler != SIG_DFL && before.sa_handler != SIG_IGN) {
		before.sa_handler(sig);
		return;
	}
	/* the default: the access runs again, faults again, and kills with
	 * the right signal and address (an ignored SIGBUS would loop) */
	sigemptyset(&dfl.sa_mask);
	sigaction(SIGBUS, &dfl, NULL);
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	int saved = errno;

	if (!uhmm_fault_signal(si, uc))
		pass_on(sig, si, uc);
	errno = saved;
}

/* At uhmm_open, before any range is registered. */
int fault_signal_attach(struct uhmm *h)
{
	struct sigaction sa = { .sa_sigaction = on_sigbus };
	int r = -EBUSY;

	if (!(h->feat & UHMM_FEAT_FAULT_SIGNAL))
		return 0;
	/* SA_NODEFER: a fault inside the handler (a mirror's callback
	 * touching managed memory) is served too, not blocked, which would
	 * kill */
	sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	pthread_mutex_lock(&install_lock);
	if (!installed && sigaction(SIGBUS, &sa, &before)) {
		r = -errno;
		goto out;
	}
	installed = true;
	for (int i = 0; i < MAX_SIGNAL_CTX && r; i++) {
		struct uhmm *none = NULL;

		if (atomic_compare_exchange_strong(&ctx[i], &none, h))
			r = 0;
	}
out:
	pthread_mutex_unlock(&install_lock);
	return r;
}

/* At uhmm_close, after the last range is unregistered: no handler may be
 * left inside h when it is freed. */
void fault_signal_detach(struct uhmm *h)
{
	for (int i = 0; i < MAX_SIGNAL_CTX; i++) {
		struct uhmm *mine = h;

		if (!atomic_compare_exchange_strong(&ctx[i], &mine, NULL))
			continue;
		while (atomic_load(&using[i]))
			sched_yield();
	}
}
