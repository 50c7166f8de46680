/* SPDX-License-Identifier: MIT */
/*
 * Real programs under `uhmm run`, chosen for their memory: sort of a
 * 200 MB file, python3 building and summing a large list and bytearray
 * (on a coherent device, and on a private one where every page comes back
 * by CPU faults), sqlite3 inserting and querying a million rows, gzip (48
 * MB) and xz (8 MB: it is slow) round trips, tar over a tree, git
 * add/commit/gc/fsck of a repository.
 * Each runs with and without uhmm: the outputs must be identical, and
 * --stats must show bytes actually placed on the device (gzip keeps its
 * buffers in static arrays: it has nothing to place, and must still work).
 * A program that is not installed is skipped, saying so.
 */
#define _GNU_SOURCE
#include "run.h"

static char *env_c[] = { "LC_ALL=C", NULL };

/* uhmm run --stats --json --device SPEC -- argv...: status; stats in err */
static int under_uhmm(const char *spec, char *const argv[], const char *in, const char *out,
		      const char *err, char *const env[])
{
	char *a[48];
	int n = 0;

	a[n++] = rt_uhmm;
	a[n++] = "run";
	a[n++] = "--stats";
	a[n++] = "--json";
	a[n++] = "--device";
	a[n++] = (char *)spec;
	a[n++] = "--";
	for (int i = 0; argv[i] && n < 47; i++)
		a[n++] = argv[i];
	a[n] = NULL;
	return rt_run(a, in, out, err, env);
}

/* The stats of a run: the first device's placed bytes and pages. */
static void check_placed(const char *what, const char *err, bool want_placed)
{
	long long placed = rt_json_num(err, "placed_bytes");
	long long pages = rt_json_num(err, "pages_to_dev");
	long long procs = rt_json_num(err, "processes");

	if (want_placed) {
		if (!ok(placed > 0 && pages > 0 && procs >= 1,
			"%s: --stats shows bytes placed on the device (%lld bytes, %lld pages, "
			"%lld process(es))", what, placed, pages, procs))
			rt_show(err);
	} else {
		if (!ok(procs >= 1 && placed <= 0,
			"%s: --stats shows the process, which had nothing to place", what))
			rt_show(err);
	}
}

/* Run argv plain and under uhmm; same status 0, same output. */
static void compare(const char *what, const char *spec, char *const argv[], const char *in,
		    char *const env[], bool want_placed)
{
	const char *o1 = rt_path("plain.out"), *o2 = rt_path("uhmm.out");
	const char *e1 = rt_path("plain.err"), *e2 = rt_path("uhmm.err");
	int s1 = rt_run(argv, in, o1, e1, env), s2 = under_uhmm(spec, argv, in, o2, e2, env);

	if (!ok(s1 == 0 && s2 == 0 && rt_same(o1, o2),
		"%s: same output with and without uhmm run", what)) {
		diag("status %d without, %d with uhmm; stderr with uhmm:", s1, s2);
		rt_show(e2);
	}
	check_placed(what, e2, want_placed);
}

static bool need(const char *prog)
{
	if (rt_have(prog))
		return true;
	skip("%s is not installed (CI installs it: .ci/run)", prog);
	return false;
}

static void make_lines(const char *path, size_t bytes)
{
	FILE *f = fopen(path, "w");
	uint64_t x = 88172645463325252ull;
	size_t n = 0;

	if (!f)
		tap_bail("%s: %s", path, strerror(errno));
	while (n < bytes) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		n += (size_t)fprintf(f, "%020llu %016llx some text to sort by the key in front\n",
				     (unsigned long long)x, (unsigned long long)(x * 31));
	}
	if (fclose(f))
		tap_bail("writing %s", path);
}

static void test_sort(void)
{
	char *argv[] = { "sort", "-S", "300M", (char *)rt_path("lines"), NULL };

	if (!need("sort"))
		return;
	make_lines(rt_path("lines"), 200 * UT_MiB);
	compare("sort -S 300M of a 200 MB file", "sim:coherent:512M", argv, NULL, env_c, true);
}

static void test_python(void)
{
	char *argv[] = { "python3", "-c",
		"l = list(range(5000000))\n"
		"b = bytearray(24 << 20)\n"
		"for i in range(0, len(b), 4096): b[i] = i % 251\n"
		"m = {i: str(i) for i in range(200000)}\n"
		"print(sum(l), sum(b), len(l), len(m), sum(map(len, m.values())))\n", NULL };

	if (!need("python3"))
		return;
	compare("python3 building and summing a 5M list and a 24 MiB bytearray",
		"sim:coherent:256M", argv, NULL, NULL, true);
	compare("... with the allocations on a private device (CPU faults bring them home)",
		"sim:private:256M", argv, NULL, NULL, true);
}

static void test_sqlite(void)
{
	const char *sql = rt_path("q.sql");
	char *argv[] = { "sqlite3", ":memory:", NULL };
	FILE *f;

	if (!need("sqlite3"))
		return;
	f = fopen(sql, "w");
	if (!f)
		tap_bail("q.sql");
	fputs("PRAGMA cache_size=-100000;\n"
	      "CREATE TABLE t(a INTEGER, b TEXT);\n"
	      "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000000)\n"
	      "  INSERT INTO t SELECT x, printf('%08d-row', (x*7919) % 1000003) FROM c;\n"
	      "SELECT count(*), sum(a), max(b), min(b) FROM t;\n"
	      "CREATE INDEX i ON t(b);\n"
	      "SELECT a FROM t WHERE b = '00012345-row';\n"
	      "SELECT substr(b,1,3), count(*) FROM t GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 3;\n"
	      "DELETE FROM t WHERE a % 3 = 0;\n"
	      "SELECT count(*), sum(a) FROM t;\n", f);
	fclose(f);
	compare("sqlite3 inserting, indexing and querying 1M rows", "sim:coherent:256M",
		argv, sql, NULL, true);
}

static void test_compress(void)
{
	const char *in = rt_path("lines"), *small = rt_path("lines.8m");
	const char *z1 = rt_path("z.plain"), *z2 = rt_path("z.uhmm");
	const char *back = rt_path("z.back"), *err = rt_path("z.err");
	char *gz[] = { "gzip", "-c", (char *)in, NULL };
	char *gunzip[] = { "gunzip", "-c", NULL };
	char *xz[] = { "xz", "-2", "-T1", "-c", (char *)small, NULL };
	char *unxz[] = { "xz", "-d", "-c", NULL };
	int s;

	if (access(in, R_OK))
		make_lines(in, 200 * UT_MiB);
	if (truncate(in, 48 * UT_MiB))
		tap_bail("truncate");
	make_lines(small, 8 * UT_MiB);	/* xz is slow: 8 MB do */
	if (need("gzip")) {
		compare("gzip -c of 48 MB", "sim:coherent:64M", gz, NULL, NULL, false);
		rt_run(gz, NULL, z1, NULL, NULL);
		s = under_uhmm("sim:coherent:64M", gunzip, z1, back, err, NULL);
		ok(s == 0 && rt_same(back, in),
		   "gunzip under uhmm run: the round trip gives the file back");
	}
	if (need("xz")) {
		compare("xz -2 of 8 MB", "sim:coherent:128M", xz, NULL, NULL, true);
		rt_run(xz, NULL, z2, NULL, NULL);
		s = under_uhmm("sim:coherent:128M", unxz, z2, back, err, NULL);
		ok(s == 0 && rt_same(back, small),
		   "xz -d under uhmm run: the round trip gives the file back");
		check_placed("xz -d", err, true);
	}
}

static void make_tree(const char *dir)
{
	char path[4400];

	mkdir(dir, 0755);
	for (int d = 0; d < 8; d++) {
		snprintf(path, sizeof(path), "%s/d%d", dir, d);
		mkdir(path, 0755);
		for (int i = 0; i < 20; i++) {
			FILE *f;

			snprintf(path, sizeof(path), "%s/d%d/f%02d", dir, d, i);
			f = fopen(path, "w");
			if (!f)
				tap_bail("%s", path);
			for (int k = 0; k < (i + 1) * 4000 * (d == 7 && i == 19 ? 40 : 1); k++)
				fprintf(f, "%d:%d:%d\n", d, i, k);
			fclose(f);
		}
	}
}

static void test_tar(void)
{
	const char *tree = rt_path("tree"), *arch = rt_path("tree.tar"), *out = rt_path("xtree");
	const char *again = rt_path("again.tar"), *err = rt_path("tar.err");
	char *create[] = { "tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0",
			   "--numeric-owner", "--format=gnu", "-b", "4096", "-cf", "-",
			   "-C", (char *)tree, ".", NULL };
	char *extract[] = { "tar", "-b", "4096", "-xf", (char *)arch, "-C", (char *)out, NULL };
	char *recreate[] = { "tar", "--sort=name", "--mtime=@0", "--owner=0", "--group=0",
			     "--numeric-owner", "--format=gnu", "-b", "4096", "-cf", "-",
			     "-C", (char *)out, ".", NULL };
	int s;

	if (!need("tar"))
		return;
	make_tree(tree);
	compare("tar -c of a tree (2 MiB records)", "sim:coherent:64M", create, NULL, NULL, true);
	rt_run(create, NULL, arch, NULL, NULL);
	mkdir(out, 0755);
	s = under_uhmm("sim:coherent:64M", extract, NULL, NULL, err, NULL);
	ok(s == 0, "tar -x under uhmm run");
	check_placed("tar -x", err, true);
	rt_run(recreate, NULL, again, NULL, NULL);
	ok(rt_same(arch, again), "the extracted tree archives to the same bytes");
}

static void test_git(void)
{
	char home[4400], *env[8];
	const char *script =
		"set -e; git init -q .; git add -A; git commit -qm 'a tree'; "
		"git gc -q; git fsck --no-progress 2>&1; git rev-parse HEAD; "
		"git cat-file -p 'HEAD^{tree}' | head -n 3; git archive HEAD | cksum";
	char *argv[] = { "sh", "-c", (char *)script, NULL };
	const char *o1 = rt_path("git.plain"), *o2 = rt_path("git.uhmm"), *err = rt_path("git.err");
	char dir1[4400], dir2[4400], cmd[9000];
	int s1, s2;

	if (!need("git"))
		return;
	snprintf(home, sizeof(home), "HOME=%s", rt_tmp);
	env[0] = home;
	env[1] = "GIT_CONFIG_NOSYSTEM=1";
	env[2] = "GIT_AUTHOR_NAME=uhmm";
	env[3] = "GIT_AUTHOR_EMAIL=uhmm@example.com";
	env[4] = "GIT_COMMITTER_NAME=uhmm";
	env[5] = "GIT_COMMITTER_EMAIL=uhmm@example.com";
	env[6] = "GIT_AUTHOR_DATE=2000-01-01T00:00:00Z";
	env[7] = NULL;
	setenv("GIT_COMMITTER_DATE", "2000-01-01T00:00:00Z", 1);
	/* two copies of the tree, one repository each */
	snprintf(dir1, sizeof(dir1), "%s", rt_path("repo1"));
	snprintf(dir2, sizeof(dir2), "%s", rt_path("repo2"));
	make_tree(dir1);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", dir1, dir2);
	if (system(cmd))
		tap_bail("cp");
	if (chdir(dir1))
		tap_bail("chdir");
	s1 = rt_run(argv, NULL, o1, NULL, env);
	if (chdir(dir2))
		tap_bail("chdir");
	s2 = under_uhmm("sim:coherent:128M", argv, NULL, o2, err, env);
	if (chdir(rt_tmp))
		tap_bail("chdir");
	if (!ok(s1 == 0 && s2 == 0 && rt_same(o1, o2),
		"git init/add/commit/gc/fsck: the same commit, tree and archive with and without "
		"uhmm")) {
		diag("status %d without, %d with uhmm", s1, s2);
		rt_show(o2);
		rt_show(err);
	}
	check_placed("git", err, true);
	unsetenv("GIT_COMMITTER_DATE");
}

int main(void)
{
	ut_init(900);
	rt_init();
	rt_require_preload();
	rt_require_coherent();
	test_sort();
	test_python();
	test_sqlite();
	test_compress();
	test_tar();
	test_git();
	rt_cleanup();
	return tap_done();
}
