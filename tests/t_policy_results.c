/* SPDX-License-Identifier: MIT */
/*
 * Advice changes where pages live, never what a program computes: one
 * seeded workload (CPU reads and writes, device reads and writes through
 * the sim DMA engine of a PRIVATE and a COHERENT device, explicit
 * migrations, access counters at a low threshold) run without advice and
 * under each advice and a pin, each in a context of its own, ends with the
 * same bytes in the buffer and the same bytes read by the devices.
 */
#define _GNU_SOURCE
#include "private.h"

#define LEN	(8 * UT_MiB)
#define STEPS	600

enum setup { NONE, PREF_PRIV, PREF_COH, PREF_SYS, ACC_PRIV, ACC_COH, MOSTLY, PINNED, NSETUP };

static const char *names[NSETUP] = {
	"no advice", "PREFERRED_LOCATION private", "PREFERRED_LOCATION coherent",
	"PREFERRED_LOCATION system", "ACCESSED_BY private", "ACCESSED_BY coherent",
	"READ_MOSTLY", "pinned",
};

static uint64_t rnd(uint64_t *s)
{
	*s = *s * 6364136223846793005ull + 1442695040888963407ull;
	return *s >> 17;
}

static uint64_t fnv(uint64_t h, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

struct outcome {
	uint64_t buffer, reads;
	int errors;
};

static int apply(struct uhmm *h, uint8_t *p, struct uhmm_dev *pd, struct uhmm_dev *cd,
		 enum setup s)
{
	switch (s) {
	case PREF_PRIV:
		return uhmm_advise(h, p, LEN, UHMM_ADV_PREFERRED_LOCATION, pd);
	case PREF_COH:
		return uhmm_advise(h, p, LEN, UHMM_ADV_PREFERRED_LOCATION, cd);
	case PREF_SYS:
		return uhmm_advise(h, p, LEN, UHMM_ADV_PREFERRED_LOCATION, NULL);
	case ACC_PRIV:
		return uhmm_advise(h, p, LEN, UHMM_ADV_ACCESSED_BY, pd);
	case ACC_COH:
		return uhmm_advise(h, p, LEN, UHMM_ADV_ACCESSED_BY, cd);
	case MOSTLY:
		return uhmm_advise(h, p, LEN, UHMM_ADV_READ_MOSTLY, NULL);
	case PINNED:
		return uhmm_pin(h, p, LEN);
	default:
		return 0;
	}
}

static struct outcome run(enum setup s, bool coherent)
{
	struct uhmm_opts o = { .sz = sizeof(o), .access_threshold = 4 };
	struct outcome out = { 0xcbf29ce484222325ull, 0xcbf29ce484222325ull, 0 };
	struct uhmm *h = ut_open_opts(&o);
	struct uhmm_dev *pd = ut_psim(h, "p", 4 * UT_MiB);
	struct uhmm_dev *cd = coherent ? ut_csim_try(h, "c", 4 * UT_MiB) : NULL;
	uint8_t *p = ut_map_aligned(LEN, 2 * UT_MiB), chunk[2048];
	uint64_t seed = 42;

	if (!cd)
		cd = ut_psim(h, "c2", 4 * UT_MiB);	/* where COHERENT cannot be */
	/* half touched before the advice, half not */
	ut_fill64(p, LEN / 2, 1);
	if (apply(h, p, pd, cd, s))
		out.errors++;
	for (int i = 0; i < STEPS; i++) {
		size_t off = rnd(&seed) % (LEN - sizeof(chunk));
		struct uhmm_dev *d = rnd(&seed) & 1 ? pd : cd;
		int op = (int)(rnd(&seed) % 6);

		switch (op) {
		case 0:		/* CPU write */
			for (size_t k = 0; k < sizeof(chunk); k++)
				p[off + k] = (uint8_t)(i + k);
			break;
		case 1:		/* CPU read */
			out.reads = fnv(out.reads, p + off, sizeof(chunk));
			break;
		case 2:		/* device write */
			for (size_t k = 0; k < sizeof(chunk); k++)
				chunk[k] = (uint8_t)(i * 3 + k);
			if (uhmm_sim_write(d, p + off, chunk, sizeof(chunk)) < 0)
				out.errors++;
			break;
		case 3:		/* device read */
			if (uhmm_sim_read(d, p + off, chunk, sizeof(chunk)) < 0)
				out.errors++;
			out.reads = fnv(out.reads, chunk, sizeof(chunk));
			break;
		case 4: {	/* a migration somewhere (pinned: refused, no matter) */
			size_t pg = (off & ~(ut_page() - 1)) % (LEN - 16 * ut_page());
			struct uhmm_dev *to = (i % 3) ? d : NULL;
			int rc = uhmm_migrate(h, p + pg, 16 * ut_page(), to, 0);

			if (rc && rc != -EBUSY && rc != -ENOMEM)
				out.errors++;
			break;
		}
		default:	/* a device burst over a block: the counters */
			if (uhmm_dev_report_access(d, p + off, 1, 2))
				out.errors++;
		}
	}
	out.buffer = fnv(out.buffer, p, LEN);
	munmap(p, LEN);
	uhmm_close(h);
	return out;
}

int main(void)
{
	struct outcome ref, o;
	bool coherent;

	ut_init(600);
	{
		struct uhmm *h = ut_open();

		coherent = ut_csim_try(h, "probe", ut_page()) != NULL;
		uhmm_close(h);
	}
	if (!coherent)
		diag("no COHERENT devices here: the coherent setups use a second PRIVATE device");
	ref = run(NONE, coherent);
	is_int(ref.errors, 0, "%s: the workload ran without error", names[NONE]);
	for (int s = 1; s < NSETUP; s++) {
		o = run((enum setup)s, coherent);
		is_int(o.errors, 0, "%s: the workload ran without error", names[s]);
		ok(o.buffer == ref.buffer, "%s: the buffer ends with the same bytes", names[s]);
		ok(o.reads == ref.reads, "%s: the CPU and the devices read the same bytes", names[s]);
	}
	return tap_done();
}
