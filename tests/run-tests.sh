#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run every BUILD_DIR/tests/t_* program and add up their TAP summaries.
#
#   tests/run-tests.sh BUILD_DIR [LABEL [COUNTS_FILE]]
#
# Each test prints TAP and ends with "N passed, N failed, N skipped".  A
# test that crashes, times out, prints no summary, or exits non-zero while
# reporting no failure (a sanitizer report at exit, say) counts as one more
# failure.  The last line printed is the sum, "N passed, N failed, N
# skipped"; the exit status is non-zero if anything failed or no test ran.
# COUNTS_FILE, if given, receives "PASSED FAILED SKIPPED [NOTE]" for
# `make check`, COUNTS_FILE.fail the failures, and COUNTS_FILE.bad-inputs
# every "# bad-input: what => outcome" line the tests printed (TEST<TAB>
# what => outcome), from which tests/bad-inputs.sh makes docs/BAD_INPUTS.md.
#
# Environment:
#   UHMM_TEST_TIMEOUT  seconds per test (default 300)
#   UHMM_TEST_AS       run the tests as this user (the unprivileged pass):
#                      needs root, otherwise the pass is skipped
#   UHMM_TEST_FILTER   only run tests whose name contains this string
#   UHMM_TEST_NORANDOMIZE=1  run the tests under `setarch -R` from the start
#                      (otherwise only after a sanitizer fails to map its
#                      shadow memory, as gcc 12 TSan does on some kernels)
set -u

build=${1:?usage: run-tests.sh BUILD_DIR [LABEL [COUNTS_FILE]]}
label=${2:-$(basename "$build")}
counts_file=${3:-}
timeout_s=${UHMM_TEST_TIMEOUT:-300}
as_user=${UHMM_TEST_AS:-}
filter=${UHMM_TEST_FILTER:-}
norand=${UHMM_TEST_NORANDOMIZE:-0}

finish() {	# passed failed skipped [note]
	[ -n "$counts_file" ] && echo "$1 $2 $3${4:+ $4}" > "$counts_file"
	echo "$1 passed, $2 failed, $3 skipped"
	[ "$2" -eq 0 ]
	exit
}

say() { printf '%s\n' "$*"; }

# --- how to run a program ---------------------------------------------------
switch=()
if [ -n "$as_user" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		say "SKIP: [$label] running the tests as '$as_user' needs root (uid $(id -u))"
		finish 0 0 0 SKIP
	fi
	if ! uid=$(id -u "$as_user" 2>/dev/null); then
		say "SKIP: [$label] no user '$as_user' on this system"
		finish 0 0 0 SKIP
	fi
	gid=$(id -g "$as_user")
	if command -v setpriv >/dev/null; then
		switch=(setpriv "--reuid=$uid" "--regid=$gid" --clear-groups --inh-caps=-all --)
	elif command -v runuser >/dev/null; then
		switch=(runuser -u "$as_user" --)
	else
		say "SKIP: [$label] neither setpriv nor runuser (util-linux) is installed"
		finish 0 0 0 SKIP
	fi
fi

if [ ! -d "$build/tests" ]; then
	say "Bail out! [$label] $build/tests does not exist: run make first"
	finish 0 1 0
fi

[ -n "$counts_file" ] && rm -f "$counts_file.fail" "$counts_file.bad-inputs"
tmpdir=$(mktemp -d "${TMPDIR:-/tmp}/uhmm-tests.XXXXXX") || exit 1
chmod 755 "$tmpdir"
trap 'rm -rf "$tmpdir"' EXIT

if [ ${#switch[@]} -gt 0 ]; then
	# The build tree must be readable by the other user.  If a parent
	# directory is closed to it (a clone under /root, say), run a copy.
	chmod -R a+rX "$build" 2>/dev/null
	if ! "${switch[@]}" test -r "$build/tests" -a -x "$build/tests" 2>/dev/null; then
		say "# [$label] $build is not reachable by $as_user: running a copy in $tmpdir"
		mkdir -p "$tmpdir/run"
		cp -a "$build" "$tmpdir/run/" && chmod -R a+rX "$tmpdir/run" || exit 1
		cd "$tmpdir/run" || exit 1
		build=$(basename "$build")
	fi
	# Temporary files: the caller's TMPDIR only if the other user may write it.
	if [ -n "${TMPDIR:-}" ] && ! "${switch[@]}" test -w "$TMPDIR" 2>/dev/null; then
		say "# [$label] TMPDIR=$TMPDIR is not writable by $as_user: using /tmp"
		export TMPDIR=/tmp
	fi
fi

arch=$(uname -m)
norand_cmd() { if [ "$norand" = 1 ]; then echo setarch "$arch" -R; fi; }
if [ "$norand" = 1 ] && ! setarch "$arch" -R true 2>/dev/null; then
	say "# [$label] setarch -R does not work here; running with ASLR"
	norand=0
fi

say "# [$label] kernel $(uname -r), $(${switch[@]+"${switch[@]}"} id -un 2>/dev/null || echo '?') (uid $(${switch[@]+"${switch[@]}"} id -u 2>/dev/null)), vm.unprivileged_userfaultfd=$(cat /proc/sys/vm/unprivileged_userfaultfd 2>/dev/null || echo '?'), UHMM_DISABLE=${UHMM_DISABLE:-}"
if [ -x "$build/uhmm" ]; then
	# Which features and mode the library finds, for the log.  Not counted.
	timeout -k 5 30 ${switch[@]+"${switch[@]}"} $(norand_cmd) "$build/uhmm" info </dev/null 2>&1 |
		sed "s/^/# [$label] info: /"
fi

# --- the tests ----------------------------------------------------------------
total_p=0 total_f=0 total_s=0 ntests=0
failed_tests=()
summary_re='^([0-9]+) passed, ([0-9]+) failed, ([0-9]+) skipped$'
remap_re='unexpected memory mapping|Shadow memory range interleaves|failed to allocate 0x[0-9a-f]+ \([0-9]+\) bytes at address|ThreadSanitizer: CHECK failed'

run_test() {	# binary log -> rc
	# The braces' 2>/dev/null only hides bash's own "Aborted" notices.
	{ timeout -k 10 "$timeout_s" ${switch[@]+"${switch[@]}"} $(norand_cmd) "$1" </dev/null >"$2" 2>&1; } 2>/dev/null
}

for bin in "$build"/tests/t_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	case $bin in *.d|*.o) continue ;; esac
	name=$(basename "$bin")
	case $name in *"$filter"*) ;; *) continue ;; esac
	ntests=$((ntests + 1))
	log="$tmpdir/$name.log"

	start=$(date +%s%N)
	run_test "$bin" "$log"; rc=$?
	if [ "$norand" != 1 ] && grep -Eq "$remap_re" "$log" &&
	   setarch "$arch" -R true 2>/dev/null; then
		say "# [$label] $name: the sanitizer could not map its shadow memory with ASLR on;"
		say "# [$label] rerunning this and the remaining tests under 'setarch -R'"
		norand=1
		run_test "$bin" "$log"; rc=$?
	fi
	ds=$((($(date +%s%N) - start) / 100000000))	# tenths of a second
	secs=$((ds / 10)).$((ds % 10))

	say "=== [$label] $name"
	cat "$log"
	# every bad input a test confirmed, for tests/bad-inputs.sh
	[ -n "$counts_file" ] && grep '^# bad-input: ' "$log" |
		sed "s/^# bad-input: /$name\t/" >> "$counts_file.bad-inputs"

	line=$(grep -E "$summary_re" "$log" | tail -n 1)
	why=""
	if [[ $line =~ $summary_re ]]; then
		p=${BASH_REMATCH[1]} f=${BASH_REMATCH[2]} s=${BASH_REMATCH[3]}
	else
		p=0 f=0 s=0 why="no summary line"
	fi
	if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
		why="timed out after ${timeout_s}s"
	elif [ "$rc" -gt 128 ]; then
		why="killed by signal $((rc - 128))${why:+, $why}"
	elif [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		why="exit status $rc${why:+, $why}"
	fi
	# A problem the test's own counts do not show is one more failure.
	if [ -n "$why" ] && { [ "$f" -eq 0 ] || [ -z "$line" ] || [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; }; then
		f=$((f + 1))
	fi

	if [ "$f" -eq 0 ]; then
		verdict=PASS
	else
		verdict=FAIL
		failed_tests+=("$name")
		# for the summary at the end of make check, where a CI log's
		# tail shows it
		[ -n "$counts_file" ] && {
			grep -E '^not ok|ThreadSanitizer|AddressSanitizer|runtime error' "$log" |
				grep -v '# TODO' | head -n 20 | sed "s/^/  [$label] $name: /"
			# the stress model's report: what diverged and the
			# steps before it, which the "not ok" line does not say
			grep -A 40 '^# DIVERGENCE' "$log" | head -n 41 |
				sed "s/^/  [$label] $name: /"
			# and the library's own word on it (UHMM_DEBUG)
			grep '^uhmm: ' "$log" | head -n 6 | sed "s/^/  [$label] $name: /"
			[ -n "$why" ] && echo "  [$label] $name: $why"
		} >> "$counts_file.fail"
	fi
	say "--- [$label] $name: $verdict ($p passed, $f failed, $s skipped; ${secs}s${why:+; $why})"
	total_p=$((total_p + p)) total_f=$((total_f + f)) total_s=$((total_s + s))
done

if [ "$ntests" -eq 0 ]; then
	say "Bail out! [$label] no test programs in $build/tests"
	finish 0 1 0
fi
say "=== [$label] $ntests programs${failed_tests[0]+; failed: ${failed_tests[*]}}"
finish "$total_p" "$total_f" "$total_s" "${failed_tests[0]+(failed: ${failed_tests[*]})}"
