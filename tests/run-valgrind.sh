#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Run the tests of BUILD_DIR under valgrind's memcheck, through
# tests/run-tests.sh (same timeouts, TAP output, counting and COUNTS_FILE):
#
#   tests/run-valgrind.sh BUILD_DIR [LABEL [COUNTS_FILE]]
#
# Each test runs as
#   valgrind --tool=memcheck --error-exitcode=99 --leak-check=full
#            --errors-for-leak-kinds=definite --suppressions=tests/valgrind.supp
# so a memcheck error (or a definite leak) is exit status 99, which
# run-tests.sh counts as a failure.  Tests listed in tests/valgrind-skip.txt
# ("NAME  reason", one a line) are not run: each is reported as one SKIP
# with its reason (valgrind cannot run them; the file says why).
#
# Environment (besides run-tests.sh's own):
#   UHMM_VALGRIND_TESTS  only these tests (space-separated names); default all
#   UHMM_VALGRIND        the valgrind command (default: valgrind)
#   UHMM_VALGRIND_OPTS   more valgrind options (e.g. --fair-sched=yes)
#   UHMM_TEST_SCALE      default 10 here: memcheck runs code ~30x slower
#   UHMM_TEST_TIMEOUT    default 600 here
set -u

build=${1:?usage: run-valgrind.sh BUILD_DIR [LABEL [COUNTS_FILE]]}
label=${2:-valgrind}
counts_file=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
vg=${UHMM_VALGRIND:-valgrind}
only=${UHMM_VALGRIND_TESTS:-}
skipfile=$here/valgrind-skip.txt

if ! command -v "$vg" >/dev/null; then
	echo "SKIP: [$label] $vg is not installed"
	[ -n "$counts_file" ] && echo "0 0 0 SKIP" > "$counts_file"
	echo "0 passed, 0 failed, 0 skipped"
	exit 0
fi
if [ ! -d "$build/tests" ]; then
	echo "Bail out! [$label] $build/tests does not exist: run make first"
	[ -n "$counts_file" ] && echo "0 1 0" > "$counts_file"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi
build=$(cd "$build" && pwd)

# The reason valgrind cannot run NAME, or nothing.
skip_reason() {
	[ -f "$skipfile" ] || return 0
	awk -v n="$1" '!/^[[:space:]]*(#|$)/ && $1 == n { $1 = ""; sub(/^[[:space:]]+/, ""); print; exit }' "$skipfile"
}

# A build tree of wrappers: run-tests.sh runs them as it runs the tests.
wrap=$(mktemp -d "${TMPDIR:-/tmp}/uhmm-valgrind.XXXXXX") || exit 1
trap 'rm -rf "$wrap"' EXIT
mkdir -p "$wrap/tests"
chmod 755 "$wrap" "$wrap/tests"
[ -x "$build/uhmm" ] && ln -s "$build/uhmm" "$wrap/uhmm"

vgopts=(--tool=memcheck --error-exitcode=99 --leak-check=full
	--errors-for-leak-kinds=definite "--suppressions=$here/valgrind.supp"
	--quiet ${UHMM_VALGRIND_OPTS:-})
n=0
for bin in "$build"/tests/t_*; do
	[ -f "$bin" ] && [ -x "$bin" ] || continue
	case $bin in *.d|*.o) continue ;; esac
	name=$(basename "$bin")
	if [ -n "$only" ]; then
		case " $only " in *" $name "*) ;; *) continue ;; esac
	fi
	why=$(skip_reason "$name")
	if [ -n "$why" ]; then
		printf '#!/bin/sh\necho "ok 1 # SKIP valgrind: %s"\necho "1..1"\necho "0 passed, 0 failed, 1 skipped"\n' \
			"$(printf '%s' "$why" | sed 's/["\\$`]/\\&/g')" > "$wrap/tests/$name"
	else
		{
			echo '#!/bin/sh'
			printf 'exec %q' "$vg"
			printf ' %q' "${vgopts[@]}" "$bin"
			echo ' "$@"'
		} > "$wrap/tests/$name"
	fi
	chmod 755 "$wrap/tests/$name"
	n=$((n + 1))
done
if [ "$n" -eq 0 ] && [ -n "$only" ]; then
	echo "Bail out! [$label] none of UHMM_VALGRIND_TESTS ($only) is in $build/tests"
	[ -n "$counts_file" ] && echo "0 1 0" > "$counts_file"
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

echo "# [$label] $("$vg" --version) on $n test(s)${only:+ (UHMM_VALGRIND_TESTS)}"
export UHMM_TEST_SCALE=${UHMM_TEST_SCALE:-10}
export UHMM_TEST_TIMEOUT=${UHMM_TEST_TIMEOUT:-600}
# the tests' own watchdogs stretch under valgrind (tests/util.h)
export UHMM_TEST_VALGRIND=1
bash "$here/run-tests.sh" "$wrap" "$label" "$counts_file"
