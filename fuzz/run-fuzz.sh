#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Build and run the libFuzzer harnesses (fuzz/fuzz_*.c).
#
#   fuzz/run-fuzz.sh --check BUILD_DIR [COUNTS_FILE]   (make check-fuzz)
#   fuzz/run-fuzz.sh --long  BUILD_DIR                 (make fuzz)
#
# --check: builds the harnesses (make fuzz-build), runs each over its
# committed corpus fuzz/corpus/NAME (every input must pass), then fuzzes
# each for FUZZ_SECONDS (default 60) from that corpus into a working
# corpus BUILD_DIR/check-corpus/NAME (emptied when the pass starts, kept
# after it), so the committed one never changes.  Prints TAP and "N passed, N failed, N
# skipped" like the test programs; COUNTS_FILE gets "PASSED FAILED
# SKIPPED [NOTE]" for `make check`.  Without clang or libFuzzer (Debian:
# clang libclang-rt-14-dev) it prints SKIP and counts one skip.  The
# harnesses named in FUZZ_CHECK_NOFUZZ (default: none; name one while
# fuzz/open/README has a finding of it that the check pass would hit
# often) are replayed but not fuzzed there, and that counts as a skip
# with the reason.
# --long: the same, FUZZ_SECONDS (default 600) each, new inputs kept in
# BUILD_DIR/corpus/NAME for the next run.
#
# Crashes, leaks and timeouts are written to BUILD_DIR/artifacts/ as
# crash-*, leak-*, timeout-*: reproduce with `BUILD_DIR/NAME FILE`
# (FUZZ_TRACE=1 prints every call; the run's ASAN_OPTIONS have
# symbolize=0, a reproduction has ASan's defaults and symbolizes), and add
# them to fuzz/corpus/NAME once fixed.  Each run's log is kept as
# BUILD_DIR/artifacts/NAME.log.  A run killed past its time (a hang that
# libFuzzer's -timeout did not catch) leaves the input it was running as
# BUILD_DIR/artifacts/hang-NAME-SHA1 (the harnesses write each input to
# $FUZZ_CURRENT before running it).
#
# Options, and why:
#  ASAN_OPTIONS
#   detect_leaks=1   LeakSanitizer at exit and libFuzzer's per-input leak
#                    check (run when an input mallocs more than it frees).
#                    Safe with the library's threads: the harnesses never
#                    manage heap, stack or globals (what LSan scans), so
#                    its stop-the-world scan cannot wait on a page only a
#                    stopped uhmm thread could bring back; and each input
#                    leaves nothing on a PRIVATE device.  The contexts stay
#                    open at exit (closing them there, joining the
#                    library's threads during exit, crashed ASan's thread
#                    teardown now and then).
#   handle_segv, handle_sigbus, handle_abort left at 1 (unlike the test
#                    passes' handle_segv=0, which exists for tests whose
#                    children must die by a real SIGSEGV): a harness never
#                    faults on purpose, and libFuzzer wants the report and
#                    the input.
#   symbolize=0      for the fuzzing runs (the replay of committed inputs
#                    keeps symbolize=1: readable reports).  A fuzzing run
#                    symbolizes inside its own process (libFuzzer's
#                    NEW_FUNC lines, ASan's reports), with the allocator
#                    and the state of a process that may be crashing
#                    because that state is broken: one such report (ASan's
#                    memory migrated away by an input) SEGVed inside the
#                    symbolizer and then deadlocked in the crash report,
#                    so neither the report nor the input came out, and
#                    libFuzzer's -timeout never fired.  Unsymbolized
#                    frames cost nothing: the saved input reproduces with
#                    a symbolized report.  -print_funcs=0 for the same
#                    reason (NEW_FUNC lines are symbolized as they come).
#   malloc_context_size=20: enough of an allocation's stack.
#  UBSAN_OPTIONS halt_on_error=1 (the build also has
#                    -fno-sanitize-recover=undefined): UB is a crash.
#  libFuzzer
#   -timeout=30      an input (a few calls over a few pages) that runs
#                    30 s is a hang: a loop over a huge caller range.
#   -rss_limit_mb=4096  simulated devices are memfds the process maps.
#   -max_len=512     enough for every call an input makes (a few bytes
#                    each); longer inputs only repeat themselves.
#   no -fork/-jobs   one process: CI has 2 cores, and a crash should stop
#                    the run with its input (fork mode would go on).  The
#                    harnesses need nothing of it: each input undoes what
#                    it made.  FUZZ_FLAGS adds flags (e.g. -fork=2
#                    -ignore_crashes=1 for a long unattended run).
set -u

mode=${1:?usage: run-fuzz.sh --check|--long BUILD_DIR [COUNTS_FILE]}
build=${2:?usage: run-fuzz.sh --check|--long BUILD_DIR [COUNTS_FILE]}
counts_file=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
cc=${FUZZ_CC:-clang}
case $mode in
--check) secs=${FUZZ_SECONDS:-60} ;;
--long)  secs=${FUZZ_SECONDS:-600} ;;
*) echo "run-fuzz.sh: unknown mode $mode" >&2; exit 2 ;;
esac
n=0 pass=0 fail=0 skip=0

ok() {	# ok STATUS "what"
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"; pass=$((pass + 1))
	else
		echo "not ok $n - $2"; fail=$((fail + 1))
		[ -n "$counts_file" ] && echo "  [fuzz] not ok $n - $2" >> "$counts_file.fail"
	fi
}
finish() {	# [note]
	echo "1..$n"
	echo "$pass passed, $fail failed, $skip skipped"
	[ -n "$counts_file" ] && echo "$pass $fail $skip${1:+ $1}" > "$counts_file"
	[ "$fail" -eq 0 ]
	exit
}
skip_all() {
	echo "SKIP: [fuzz] $1"
	n=$((n + 1)); echo "ok $n # SKIP $1"; skip=$((skip + 1))
	finish SKIP
}

[ -n "$counts_file" ] && rm -f "$counts_file.fail"
cd "$root" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uhmm-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

# ---- can we build a libFuzzer target at all? -----------------------------
command -v "$cc" >/dev/null 2>&1 || skip_all "no $cc: install clang and libclang-rt-14-dev to fuzz"
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n' > "$tmp/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined -o "$tmp/probe" "$tmp/probe.c" >"$tmp/probe.log" 2>&1; then
	sed 's/^/# /' "$tmp/probe.log" | head -n 5
	skip_all "$cc cannot link -fsanitize=fuzzer,address,undefined (libFuzzer missing: libclang-rt-14-dev on Debian 12)"
fi
if ! "$tmp/probe" -runs=1 >/dev/null 2>&1; then
	skip_all "a trivial libFuzzer program does not run here"
fi

make --no-print-directory -j"${FUZZ_JOBS:-2}" fuzz-build FUZZ_CC="$cc" >"$tmp/make.log" 2>&1
rc=$?
ok $rc "build the harnesses with $cc ($(basename "$build")/)"
if [ $rc -ne 0 ]; then
	sed 's/^/# /' "$tmp/make.log" | tail -n 30
	finish
fi

asan_replay=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:malloc_context_size=20:symbolize=1:print_summary=1}
asan_fuzz=${FUZZ_ASAN_OPTIONS:-detect_leaks=1:malloc_context_size=20:symbolize=0:print_summary=1}
export UBSAN_OPTIONS=${FUZZ_UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
mkdir -p "$build/artifacts"

# the last "#N ... exec/s: E" line and "Done N runs in S second(s)"
stats() {	# log -> "runs secs exec/s corpus"
	local runs secs eps corp
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$1" | tail -n 1)
	secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$1" | tail -n 1)
	eps=$(grep -Eo 'exec/s: [0-9]+' "$1" | tail -n 1 | grep -Eo '[0-9]+')
	corp=$(grep -Eo 'corp: [0-9]+/[0-9]+[a-zA-Z]*' "$1" | tail -n 1 | sed 's/corp: //')
	echo "${runs:-?} ${secs:-?} ${eps:-?} ${corp:-?}"
}

report_failure() {	# name log
	local art
	art=$(sed -n "s/.*Test unit written to \(.*\)$/\1/p" "$2" | tail -n 1)
	grep -E '==== uhmm fuzz|  call:|returned|ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|SUMMARY' "$2" |
		head -n 12 | sed 's/^/# /'
	echo "# last lines of the log:"
	tail -n 25 "$2" | sed 's/^/#   /'
	if [ -n "$art" ]; then
		echo "# input: $art  (reproduce: $build/$1 $art)"
		[ -n "$counts_file" ] && echo "  [fuzz] $1: input $art" >> "$counts_file.fail"
	fi
	[ -n "$counts_file" ] && grep -E '  call:|returned|ERROR:|runtime error' "$2" | head -n 4 |
		sed "s/^/  [fuzz] $1: /" >> "$counts_file.fail"
}

flags=(-timeout=30 -rss_limit_mb=4096 -max_len=512 -print_final_stats=1
       "-artifact_prefix=$build/artifacts/")

for bin in "$build"/fuzz_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	case $bin in *.d|*.o) continue ;; esac
	name=$(basename "$bin")
	seeds=fuzz/corpus/$name
	dict=()
	[ -f "fuzz/$name.dict" ] && dict=("-dict=fuzz/$name.dict")
	nseeds=$(ls "$seeds" 2>/dev/null | wc -l)

	# every committed input passes
	if [ "$nseeds" -gt 0 ]; then
		ASAN_OPTIONS=$asan_replay timeout -k 10 900 "$bin" "${flags[@]}" "${dict[@]}" -runs=0 "$seeds" \
			>"$tmp/$name.replay" 2>&1
		rc=$?
		ok $rc "$name: the $nseeds inputs of $seeds pass"
		[ $rc -eq 0 ] || { report_failure "$name" "$tmp/$name.replay"; continue; }
	else
		n=$((n + 1)); echo "ok $n # SKIP $name: no corpus in $seeds"; skip=$((skip + 1))
	fi

	# then fuzz from them (the check pass leaves out the harnesses with
	# a finding still open: fuzz/open/README says which and why)
	case " ${FUZZ_CHECK_NOFUZZ-} " in
	*" $name "*)
		if [ "$mode" = --check ]; then
			n=$((n + 1)); skip=$((skip + 1))
			echo "ok $n # SKIP $name: fuzzing left out of the check pass while fuzz/open/README has a finding of it (make fuzz runs it)"
			continue
		fi ;;
	esac
	if [ "$mode" = --long ]; then
		work=$build/corpus/$name
	else
		work=$build/check-corpus/$name
		rm -rf "$work"
	fi
	mkdir -p "$work"
	log=$build/artifacts/$name.log
	cur=$build/artifacts/current-$name
	rm -f "$cur"
	start=$(date +%s)
	# shellcheck disable=SC2086
	# libFuzzer's own -timeout did not fire once (an input blocked where
	# SIGALRM is not taken): the run is killed 60 s past its time
	ASAN_OPTIONS=$asan_fuzz FUZZ_CURRENT=$cur \
	timeout -k 10 $((secs + 60)) "$bin" "${flags[@]}" -print_funcs=0 "${dict[@]}" ${FUZZ_FLAGS:-} \
		-max_total_time="$secs" "$work" "$seeds" >"$log" 2>&1
	rc=$?
	if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
		hang=
		if [ -f "$cur" ]; then
			hang=$build/artifacts/hang-$name-$(sha1sum <"$cur" | cut -c1-40)
			cp "$cur" "$hang"
			echo "Test unit written to $hang" >>"$log"
		fi
		echo "# $name: killed $((secs + 60)) s after it started: an input hung (input: ${hang:-none}; the log is $log)"
	fi
	rm -f "$cur"
	read -r runs took eps corp <<<"$(stats "$log")"
	ok $rc "$name: ${secs} s of fuzzing, no crash, leak or hang"
	echo "# $name: $runs executions in ${took} s (libFuzzer's last exec/s: $eps), corpus $corp" \
	     "(wall $(($(date +%s) - start)) s)"
	[ $rc -eq 0 ] || report_failure "$name" "$log"
done

[ "$n" -gt 1 ] || { echo "Bail out! [fuzz] no harness in $build"; fail=$((fail + 1)); }
finish
