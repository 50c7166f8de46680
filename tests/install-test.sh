#!/bin/bash
# SPDX-License-Identifier: MIT
#
# `make install` as a user of the library sees it: into a temporary
# prefix, then into a DESTDIR staging tree; examples/placement.c built
# against each with pkg-config (shared and static) and run; the installed
# tool and preload library used; `make uninstall` leaves nothing behind.
#
#   tests/install-test.sh BUILD_DIR [COUNTS_FILE]
#
# Prints TAP and "N passed, N failed, N skipped" like the test programs;
# COUNTS_FILE gets "PASSED FAILED SKIPPED" for `make check`.
set -u

build=${1:?usage: install-test.sh BUILD_DIR [COUNTS_FILE]}
counts_file=${2:-}
cc=${CC:-cc}
n=0 pass=0 fail=0 skip=0

ok() {	# ok CONDITION_STATUS "what"
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"; pass=$((pass + 1))
	else
		echo "not ok $n - $2"; fail=$((fail + 1))
		[ -n "$counts_file" ] && echo "  [install] not ok $n - $2" >> "$counts_file.fail"
	fi
}
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; skip=$((skip + 1)); }
check() { local what=$1; shift; "$@" >/dev/null 2>&1; ok $? "$what"; }
finish() {
	echo "1..$n"
	echo "$pass passed, $fail failed, $skip skipped"
	[ -n "$counts_file" ] && echo "$pass $fail $skip" > "$counts_file"
	[ "$fail" -eq 0 ]
	exit
}

[ -n "$counts_file" ] && rm -f "$counts_file.fail"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/uhmm-install.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix
make_() { make --no-print-directory BUILD="$build" "$@" >"$tmp/make.log" 2>&1; }

# ---- a prefix -----------------------------------------------------------
make_ install PREFIX="$prefix"
ok $? "make install PREFIX=<tmp>"
[ $? -eq 0 ] || sed 's/^/# /' "$tmp/make.log"
for f in include/uhmm.h lib/libuhmm.a lib/libuhmm.so.1.0.0 lib/libuhmm-preload.so \
	 bin/uhmm lib/pkgconfig/uhmm.pc share/man/man1/uhmm.1 share/man/man3/uhmm.3; do
	check "installed: $f" test -f "$prefix/$f"
done
check "libuhmm.so.1 -> libuhmm.so.1.0.0" test "$(readlink "$prefix/lib/libuhmm.so.1")" = libuhmm.so.1.0.0
check "libuhmm.so -> libuhmm.so.1" test "$(readlink "$prefix/lib/libuhmm.so")" = libuhmm.so.1
if command -v readelf >/dev/null; then
	readelf -d "$prefix/lib/libuhmm.so.1.0.0" | grep -q 'SONAME.*\[libuhmm\.so\.1\]'
	ok $? "the shared library's SONAME is libuhmm.so.1"
	readelf --dyn-syms -W "$prefix/lib/libuhmm-preload.so" | awk '$5 == "GLOBAL" && $7 != "UND" { print $8 }' |
		sed 's/@.*//' | sort > "$tmp/syms"
	! grep -q '^uhmm_' "$tmp/syms" && grep -qx malloc "$tmp/syms" && grep -qx mprotect "$tmp/syms"
	ok $? "the preload library exports malloc and friends, not the library inside it"
else
	skip "readelf (binutils) is not installed: SONAME and exports not checked"
	skip "readelf (binutils) is not installed"
fi
if command -v man >/dev/null; then
	man -l "$prefix/share/man/man1/uhmm.1" 2>/dev/null | grep -q 'uhmm run'
	ok $? "man uhmm(1) renders and documents uhmm run"
	man -l "$prefix/share/man/man3/uhmm.3" 2>/dev/null | grep -q 'uhmm_open'
	ok $? "man uhmm(3) renders and documents the API"
else
	skip "man is not installed: the pages are not rendered"
	skip "man is not installed"
fi

export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
if command -v pkg-config >/dev/null; then
	flags=$(pkg-config --cflags --libs uhmm)
	flags=$(echo $flags)	# pkg-config ends with a blank
	test "$flags" = "-I$prefix/include -L$prefix/lib -luhmm"
	ok $? "pkg-config --cflags --libs uhmm: $flags"
	# shellcheck disable=SC2086
	$cc -Wall -Werror -o "$tmp/placement" examples/placement.c $flags 2>"$tmp/cc.log"
	ok $? "examples/placement.c builds with pkg-config --cflags --libs uhmm"
	LD_LIBRARY_PATH=$prefix/lib "$tmp/placement" >"$tmp/run.log" 2>&1
	st=$?
	if [ $st -eq 77 ]; then
		skip "the example needs userfaultfd and coherent devices: $(tail -n 1 "$tmp/run.log")"
	else
		ok $st "the example runs against the installed libuhmm.so.1"
	fi
	LD_LIBRARY_PATH=$prefix/lib ldd "$tmp/placement" | grep -q "libuhmm.so.1 => $prefix/lib/libuhmm.so.1"
	ok $? "... and it is the installed one it loads"
	# shellcheck disable=SC2046
	$cc -Wall -Werror -o "$tmp/placement-static" examples/placement.c $(pkg-config --cflags uhmm) \
		"$prefix/lib/libuhmm.a" $(pkg-config --static --libs uhmm | sed 's/-luhmm//') 2>>"$tmp/cc.log"
	ok $? "... and statically, with pkg-config --static"
	"$tmp/placement-static" >/dev/null 2>&1
	st=$?
	[ $st -eq 77 ] && skip "the static example needs userfaultfd" || ok $st "the static example runs"
else
	for i in 1 2 3 4 5; do skip "pkg-config is not installed (.ci/run installs it)"; done
fi

"$prefix/bin/uhmm" --version | grep -q '^uhmm 1\.'
ok $? "the installed tool runs: uhmm --version"
"$prefix/bin/uhmm" run --stats --device sim:coherent:8M -- sh -c 'echo "$LD_PRELOAD"' \
	>"$tmp/run.out" 2>"$tmp/run.err"
st=$?
if [ $st -ne 0 ] && grep -q 'userfaultfd cannot be used\|minor faults' "$tmp/run.err"; then
	skip "uhmm run cannot run here: $(head -n 1 "$tmp/run.err")"
else
	grep -q "^$prefix/.*lib/libuhmm-preload.so" "$tmp/run.out" && [ $st -eq 0 ]
	ok $? "the installed uhmm run finds the installed preload library"
fi

make_ uninstall PREFIX="$prefix"
ok $? "make uninstall PREFIX=<tmp>"
left=$(find "$prefix" -type f -o -type l)
test -z "$left"
ok $? "make uninstall leaves no file behind${left:+: $left}"

# ---- a DESTDIR staging tree --------------------------------------------
stage=$tmp/stage
make_ install DESTDIR="$stage" PREFIX=/usr/local
ok $? "make install DESTDIR=<tmp> PREFIX=/usr/local"
grep -q '^prefix=/usr/local$' "$stage/usr/local/lib/pkgconfig/uhmm.pc"
ok $? "the staged uhmm.pc names the final prefix, not DESTDIR"
if command -v pkg-config >/dev/null; then
	flags=$(PKG_CONFIG_PATH=$stage/usr/local/lib/pkgconfig pkg-config --define-prefix --cflags --libs uhmm)
	# shellcheck disable=SC2086
	$cc -o "$tmp/placement2" examples/placement.c $flags 2>>"$tmp/cc.log" &&
		LD_LIBRARY_PATH=$stage/usr/local/lib "$tmp/placement2" >/dev/null 2>&1
	st=$?
	[ $st -eq 77 ] && skip "the example needs userfaultfd" ||
		ok $st "the example builds and runs against the staged tree (pkg-config --define-prefix)"
else
	skip "pkg-config is not installed"
fi
make_ uninstall DESTDIR="$stage" PREFIX=/usr/local
left=$(find "$stage" -type f -o -type l)
test -z "$left"
ok $? "make uninstall DESTDIR=<tmp> leaves no file behind${left:+: $left}"
[ -s "$tmp/cc.log" ] && sed 's/^/# cc: /' "$tmp/cc.log"
finish
