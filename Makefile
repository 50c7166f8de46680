# uhmm - see README.md.  `make`, `make check`, `make demo`, `make bench`,
# `make bad-inputs` (docs/BAD_INPUTS.md from the tests),
# `make stress` (the reference-model stress test, long),
# `make install PREFIX=/usr/local DESTDIR=`, `make uninstall`, `make clean`.
# `make V=1` shows the full commands.
CC      ?= cc
AR      ?= ar
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
LIBDIR  ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=
VERSION := 1.0.0
SOVER   := 1
BUILD   ?= build
SAN     ?=

# User CFLAGS (e.g. `make CFLAGS=-O0`) replace only the optimisation and
# debug flags; the warnings, -Werror and include paths always apply.
CFLAGS  ?= -O2 -g
override CFLAGS += -std=gnu11 -Wall -Wextra -Werror -fPIC -pthread -Iinclude -Isrc -Ipreload
LDLIBS  += -pthread
DEPFLAGS = -MMD -MP

ifeq ($(SAN),address)
override CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer
override LDFLAGS += -fsanitize=address,undefined
else ifeq ($(SAN),thread)
override CFLAGS  += -fsanitize=thread
override LDFLAGS += -fsanitize=thread
else ifneq ($(SAN),)
$(error SAN must be empty, "address" or "thread", not "$(SAN)")
endif

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-6s %s\n' $(1) $(2)
endif

# The OpenCL driver (src/drivers/opencl.c, include/uhmm_opencl.h, `uhmm
# demo --opencl`, tests/t_opencl.c) is built when <CL/cl.h> compiles and
# libOpenCL links (Debian: opencl-headers ocl-icd-opencl-dev; PoCL,
# pocl-opencl-icd, runs it on the CPU).  `make OPENCL=no` leaves it out
# even then; without it everything else builds and the OpenCL test skips.
H := \#
ifeq ($(strip $(OPENCL)),)
override OPENCL := $(shell printf '$(H)include <CL/cl.h>\nint main(void) { return (int)clGetPlatformIDs(0, 0, 0); }\n' | \
	$(CC) -x c -o /dev/null - -lOpenCL >/dev/null 2>&1 && echo yes || echo no)
export OPENCL
endif
ifeq ($(OPENCL),yes)
OPENCL_LIBS := -lOpenCL
override CFLAGS += -DUHMM_HAVE_OPENCL=1
else ifneq ($(OPENCL),no)
$(error OPENCL must be empty, "yes" or "no", not "$(OPENCL)")
endif

LIB_SRC   := $(wildcard src/*.c) $(wildcard src/drivers/*.c)
ifneq ($(OPENCL),yes)
LIB_SRC   := $(filter-out src/drivers/opencl.c,$(LIB_SRC))
endif
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o)
TOOL_SRC  := $(wildcard tools/*.c)
# the device specs of `uhmm run` are the preload library's
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o) $(BUILD)/preload/devspec.o
PRELOAD_SRC := $(wildcard preload/*.c)
PRELOAD_OBJ := $(PRELOAD_SRC:%.c=$(BUILD)/%.o)
TEST_SRC  := $(wildcard tests/t_*.c)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
DEPS      := $(LIB_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(PRELOAD_OBJ:.o=.d) $(TEST_BIN:=.d)

# The preload library goes into uninstrumented programs: a sanitizer
# runtime cannot follow it there, so sanitizer builds leave it out (and
# the tests that need it skip).
ifeq ($(SAN),)
PRELOAD_LIB := $(BUILD)/libuhmm-preload.so
endif

all: $(BUILD)/libuhmm.a $(BUILD)/libuhmm.so $(BUILD)/uhmm $(PRELOAD_LIB) $(TEST_BIN)

# Everything compiled is rebuilt when OPENCL changes (headers installed
# since the last build, or OPENCL=no given).
$(BUILD)/.opencl: FORCE
	@mkdir -p $(dir $@)
	@echo '$(OPENCL)' | cmp -s - $@ || echo '$(OPENCL)' > $@
$(LIB_OBJ) $(TOOL_OBJ) $(PRELOAD_OBJ) $(TEST_BIN): $(BUILD)/.opencl

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call msg,CC,$<)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) -c -o $@ $<

$(BUILD)/libuhmm.a: $(LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(BUILD)/libuhmm.so: $(LIB_OBJ) src/libuhmm.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libuhmm.so.$(SOVER) -Wl,--version-script=src/libuhmm.map \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(LIB_OBJ) $(LDLIBS) $(OPENCL_LIBS)

$(BUILD)/uhmm: $(TOOL_OBJ) $(BUILD)/libuhmm.a
	$(call msg,LD,$@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJ) $(BUILD)/libuhmm.a $(LDLIBS) $(OPENCL_LIBS) -lm

# `uhmm run` looks for the installed preload library here (after its own
# directory): rebuilt when LIBDIR changes.
$(BUILD)/tools/run.o: override CPPFLAGS += -DUHMM_PRELOAD_PATH='"$(LIBDIR)/libuhmm-preload.so"'
$(BUILD)/tools/run.o: $(BUILD)/.pc-vars

# One file to LD_PRELOAD: the library is linked in, hidden (preload.map).
$(BUILD)/libuhmm-preload.so: $(PRELOAD_OBJ) $(BUILD)/libuhmm.a preload/preload.map
	$(call msg,LD,$@)
	$(Q)$(CC) -shared -Wl,-soname,libuhmm-preload.so -Wl,--version-script=preload/preload.map \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(PRELOAD_OBJ) $(BUILD)/libuhmm.a $(LDLIBS) $(OPENCL_LIBS)

# Tests link the static library: they run from the build tree without
# LD_LIBRARY_PATH, and as `nobody` from a copy of it.
$(BUILD)/tests/%: tests/%.c $(BUILD)/libuhmm.a
	@mkdir -p $(dir $@)
	$(call msg,CCLD,$@)
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) $(DEPFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libuhmm.a $(LDLIBS) $(OPENCL_LIBS) -lm

-include $(DEPS)

# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------
demo: $(BUILD)/uhmm
	$(BUILD)/uhmm demo

bench: $(BUILD)/uhmm
	$(BUILD)/uhmm bench

# ---------------------------------------------------------------------------
# Tests.  `make check` runs every pass below, keeps going after a failing
# pass, and ends with one line "N passed, N failed, N skipped" summed over
# all passes; it exits non-zero if anything failed.  Each pass can be run
# alone: `make check-plain`, `check-asan`, `check-tsan`, `check-fallback`,
# `check-signal`, `check-unpriv`.  tests/run-tests.sh does the per-test work (timeouts,
# TAP output, counting); UHMM_TEST_TIMEOUT sets the per-test limit in
# seconds (default 300; 900 under ASan and 1200 under TSan, where the
# tests' own watchdogs stretch 3x and 4x).  UHMM_TEST_FILTER=word runs only
# the tests whose name contains word.
#
#   plain     the normal build, as the invoking user
#   asan      BUILD=build-asan SAN=address (ASan + UBSan)
#   tsan      BUILD=build-tsan SAN=thread
#   fallback  the normal build with UHMM_DISABLE=all (fallback paths)
#   unpriv    the normal build as user nobody (UFFD_USER_MODE_ONLY unless
#             the system allows more); SKIP unless make runs as root
#   install   make install into a temporary prefix, examples/ built
#             against it with pkg-config, make uninstall
#   valgrind  the normal build under memcheck (see check-valgrind below)
#   fuzz      the libFuzzer harnesses over their corpus, then 60 s each
#             (fuzz/run-fuzz.sh); SKIP without clang and libFuzzer
#
# Sanitizer options (set only where the caller has not set them):
#  ASAN_OPTIONS   detect_leaks=1: leaks are bugs.  handle_segv=0 and
#                 handle_sigbus=0: tests fork children that must die by a
#                 real SIGSEGV (write to a read-only range), which ASan's
#                 handler would turn into exit(1); a genuine crash still
#                 fails the test, just without ASan's stack trace.
#                 allow_user_segv_handler=1 for the same reason.
#                 abort_on_error=0 and the default exitcode (1) so a report
#                 is a non-zero exit that the runner counts as a failure.
#                 No option is needed for userfaultfd or MAP_FIXED: ASan
#                 does not intercept them, and the mappings uhmm replaces
#                 lie outside ASan's shadow.  (No option can help the
#                 library's own whole-page copies through intercepted calls
#                 such as pwrite/memcpy, which read a malloc'd buffer's
#                 redzones: the library must copy pages with calls ASan does
#                 not check.)  LSan scans memory at exit with every other
#                 thread stopped: a test that exits with a context open and
#                 a registered page that would fault would hang there until
#                 its timeout (none has so far).
#  UBSAN_OPTIONS  halt_on_error=1: undefined behaviour fails the test
#                 instead of printing and passing.
#  TSAN_OPTIONS   handle_segv=0 for the SIGSEGV children as above;
#                 halt_on_error=0 (report every race, exit 66 at the end);
#                 tests/tsan.supp is used as suppressions if it exists.
# If a sanitizer cannot lay out its shadow memory under this kernel's ASLR
# (gcc 12 TSan: "unexpected memory mapping"), run-tests.sh reruns the
# test under `setarch -R`.
# ---------------------------------------------------------------------------
CHECK_PASSES := plain asan tsan fallback signal unpriv install valgrind fuzz
RUN_TESTS    := bash tests/run-tests.sh
# Per-pass counts go here so `check` can add them up.
CHECK_DIR    := $(BUILD)/check

ASAN_OPTIONS_DEFAULT  := detect_leaks=1:handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:abort_on_error=0:print_summary=1
UBSAN_OPTIONS_DEFAULT := halt_on_error=1:print_stacktrace=1
TSAN_OPTIONS_DEFAULT  := handle_segv=0:handle_sigbus=0:allow_user_segv_handler=1:halt_on_error=0:second_deadlock_stack=1$(if $(wildcard tests/tsan.supp),:suppressions=$(CURDIR)/tests/tsan.supp)

check:
	@mkdir -p $(CHECK_DIR); rm -f $(CHECK_DIR)/*.sum $(CHECK_DIR)/*.sum.fail $(CHECK_DIR)/*.sum.bad-inputs; \
	status=0; tp=0; tf=0; ts=0; \
	for p in $(CHECK_PASSES); do \
		$(MAKE) --no-print-directory check-$$p CHECK_SUM=$(abspath $(CHECK_DIR))/$$p.sum || status=1; \
		if [ -s $(CHECK_DIR)/$$p.sum ]; then \
			read np nf ns note < $(CHECK_DIR)/$$p.sum; \
		else \
			echo "check-$$p: did not run its tests (build failed?)"; np=0; nf=1; ns=0; status=1; \
		fi; \
		tp=$$((tp + np)); tf=$$((tf + nf)); ts=$$((ts + ns)); \
	done; \
	echo; echo "== make check: every pass =="; \
	for p in $(CHECK_PASSES); do \
		if [ -s $(CHECK_DIR)/$$p.sum ]; then read np nf ns note < $(CHECK_DIR)/$$p.sum; \
		else np=0; nf=1; ns=0; note="(build failed)"; fi; \
		printf '  %-9s %d passed, %d failed, %d skipped %s\n' "$$p" $$np $$nf $$ns "$$note"; \
	done; \
	[ $$tf -eq 0 ] || status=1; \
	if ls $(CHECK_DIR)/*.sum.fail >/dev/null 2>&1; then \
		echo; echo "== what failed =="; cat $(CHECK_DIR)/*.sum.fail; echo; \
	fi; \
	echo "$$tp passed, $$tf failed, $$ts skipped"; \
	exit $$status

check-plain: all
	$(Q)$(RUN_TESTS) $(BUILD) plain $(CHECK_SUM)

check-fallback: all
	$(Q)UHMM_DISABLE=all $(RUN_TESTS) $(BUILD) fallback $(CHECK_SUM)

check-signal: all
	$(Q)UHMM_FAULTS=signal $(RUN_TESTS) $(BUILD) signal $(CHECK_SUM)

check-unpriv: all
	$(Q)UHMM_TEST_AS=nobody $(RUN_TESTS) $(BUILD) unpriv $(CHECK_SUM)

# Install into a temporary prefix (and a DESTDIR staging), build
# examples/ against it with pkg-config, run it and the installed tool,
# uninstall: tests/install-test.sh, TAP like the others.
check-install: all
	$(Q)bash tests/install-test.sh $(BUILD) $(CHECK_SUM)

check-asan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan SAN=address all
	$(Q)ASAN_OPTIONS="$${ASAN_OPTIONS:-$(ASAN_OPTIONS_DEFAULT)}" \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-$(UBSAN_OPTIONS_DEFAULT)}" \
	UHMM_TEST_TIMEOUT=$${UHMM_TEST_TIMEOUT:-900} \
	$(RUN_TESTS) build-asan asan $(CHECK_SUM)

check-tsan:
	$(Q)$(MAKE) --no-print-directory BUILD=build-tsan SAN=thread all
	$(Q)TSAN_OPTIONS="$${TSAN_OPTIONS:-$(TSAN_OPTIONS_DEFAULT)}" \
	UHMM_TEST_TIMEOUT=$${UHMM_TEST_TIMEOUT:-1200} \
	$(RUN_TESTS) build-tsan tsan $(CHECK_SUM)

# valgrind: every test under memcheck (tests/run-valgrind.sh: --leak-check=full,
# definite leaks and every error fail the test, tests/valgrind.supp holds
# what valgrind cannot model, each entry explained).  Valgrind runs one
# thread at a time: a thread blocked in the kernel in a userfaultfd fault,
# or in a munmap/mremap/mmap waiting for our reader thread to take the
# event, holds valgrind's lock, and the thread that must answer never
# runs.  Every migration does one of these, so the tests that migrate
# cannot run; tests/valgrind-skip.txt lists them with the reason, and they
# count as skips.  What runs takes about a minute, so the whole suite is
# the pass (no subset); UHMM_VALGRIND_TESTS="t_a t_b" runs only those.
# SKIP when valgrind is not installed (.ci/run installs it).
check-valgrind: all
	$(Q)bash tests/run-valgrind.sh $(BUILD) valgrind $(CHECK_SUM)

# docs/BAD_INPUTS.md: every bad input the tests confirmed and its outcome,
# from the plain pass's "# bad-input:" lines (run it first if it has not
# run: `make check` or `make check-plain`).
bad-inputs:
	@[ -s $(CHECK_DIR)/plain.sum.bad-inputs ] || { mkdir -p $(CHECK_DIR); \
		$(MAKE) --no-print-directory check-plain CHECK_SUM=$(abspath $(CHECK_DIR))/plain.sum; }
	$(Q)bash tests/bad-inputs.sh $(CHECK_DIR)/plain.sum.bad-inputs > docs/BAD_INPUTS.md.tmp
	$(Q)mv docs/BAD_INPUTS.md.tmp docs/BAD_INPUTS.md
	@grep 'cases in' docs/BAD_INPUTS.md

# The reference-model stress test run long: STRESS_SEEDS seeds of
# STRESS_STEPS steps each, in the normal build, then in the ASan build (a
# tenth of the steps there).  `make check` runs it bounded.
STRESS_STEPS ?= 1000000
STRESS_SEEDS ?= 5
stress: all
	@echo "stress: $(STRESS_SEEDS) seeds x $(STRESS_STEPS) steps (plain)"
	$(Q)UHMM_STRESS_STEPS=$(STRESS_STEPS) UHMM_STRESS_SEEDS=$(STRESS_SEEDS) \
		timeout -k 10 86400 $(BUILD)/tests/t_stress_model
	$(Q)$(MAKE) --no-print-directory BUILD=build-asan SAN=address build-asan/tests/t_stress_model
	@echo "stress: $(STRESS_SEEDS) seeds x $$(($(STRESS_STEPS) / 10)) steps (ASan)"
	$(Q)ASAN_OPTIONS="$${ASAN_OPTIONS:-$(ASAN_OPTIONS_DEFAULT)}" \
	UBSAN_OPTIONS="$${UBSAN_OPTIONS:-$(UBSAN_OPTIONS_DEFAULT)}" \
	UHMM_STRESS_STEPS=$$(($(STRESS_STEPS) / 10)) UHMM_STRESS_SEEDS=$(STRESS_SEEDS) \
		timeout -k 10 86400 build-asan/tests/t_stress_model

# ---------------------------------------------------------------------------
# Fuzzing (fuzz/): libFuzzer harnesses over the public API, built with
# clang in build-fuzz/ (the library's sources compiled again with
# -fsanitize=fuzzer-no-link,address,undefined; UB is fatal there).
#   make fuzz          builds them and runs each for FUZZ_SECONDS (600),
#                      new inputs into build-fuzz/corpus/NAME (the seeds in
#                      fuzz/corpus/NAME stay as committed), crashes into
#                      build-fuzz/artifacts/ (crash-*, hang-*, logs).
#   make check-fuzz    a pass of `make check`: each harness over its
#                      corpus, then FUZZ_CHECK_SECONDS (60) of fuzzing;
#                      SKIP when clang or libFuzzer is missing.
# fuzz/run-fuzz.sh does the running and chooses the sanitizer and
# libFuzzer options (see its comments).
# ---------------------------------------------------------------------------
FUZZ_CC        ?= clang
FUZZ_BUILD     := build-fuzz
FUZZ_SECONDS   ?= 600
FUZZ_CHECK_SECONDS ?= 60
FUZZ_CFLAGS    := -O1 -g -fno-omit-frame-pointer -std=gnu11 -Wall -Wextra -Werror -fPIC -pthread \
	-Iinclude -Isrc -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_LIB_SRC   := $(filter-out src/drivers/opencl.c,$(wildcard src/*.c) $(wildcard src/drivers/*.c))
FUZZ_LIB_OBJ   := $(FUZZ_LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_NAMES     := $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_BIN       := $(FUZZ_NAMES:%=$(FUZZ_BUILD)/%)

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(call msg,FUZZCC,$<)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) -c -o $@ $<

$(FUZZ_BUILD)/libuhmm-fuzz.a: $(FUZZ_LIB_OBJ)
	$(call msg,AR,$@)
	$(Q)rm -f $@
	$(Q)$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz.h $(FUZZ_BUILD)/libuhmm-fuzz.a
	$(call msg,FUZZLD,$@)
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(DEPFLAGS) -o $@ $< $(FUZZ_BUILD)/libuhmm-fuzz.a -pthread

-include $(FUZZ_LIB_OBJ:.o=.d) $(FUZZ_BIN:=.d)

fuzz-build: $(FUZZ_BIN)

fuzz: fuzz-build
	$(Q)FUZZ_SECONDS=$(FUZZ_SECONDS) bash fuzz/run-fuzz.sh --long $(FUZZ_BUILD)

check-fuzz:
	$(Q)FUZZ_SECONDS=$(FUZZ_CHECK_SECONDS) bash fuzz/run-fuzz.sh --check $(FUZZ_BUILD) $(CHECK_SUM)

# ---------------------------------------------------------------------------
# Installation.  The pkg-config file names the final PREFIX; DESTDIR is only
# the staging root.  libdir/includedir are written relative to ${prefix}
# when they lie under it, so a staged or moved tree can be used with
# `pkg-config --define-prefix` or PKG_CONFIG_SYSROOT_DIR (see README).
# ---------------------------------------------------------------------------
pc_path = $(patsubst $(PREFIX)/%,$${prefix}/%,$(1))

$(BUILD)/uhmm.pc: uhmm.pc.in Makefile
	@mkdir -p $(dir $@)
	$(call msg,GEN,$@)
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|g' \
	    -e 's|@LIBDIR@|$(call pc_path,$(LIBDIR))|g' \
	    -e 's|@INCLUDEDIR@|$(call pc_path,$(INCLUDEDIR))|g' \
	    -e 's|@VERSION@|$(VERSION)|g' \
	    -e 's|@LIBS_PRIVATE@|$(OPENCL_LIBS)|g' $< > $@.tmp && mv $@.tmp $@

# Regenerate when PREFIX or LIBDIR change between builds.
$(BUILD)/uhmm.pc: $(BUILD)/.pc-vars $(BUILD)/.opencl
$(BUILD)/.pc-vars: FORCE
	@mkdir -p $(dir $@)
	@echo '$(PREFIX) $(LIBDIR) $(INCLUDEDIR)' | cmp -s - $@ || echo '$(PREFIX) $(LIBDIR) $(INCLUDEDIR)' > $@

install: $(BUILD)/libuhmm.a $(BUILD)/libuhmm.so $(BUILD)/uhmm $(BUILD)/uhmm.pc $(PRELOAD_LIB)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man3
	install -m 644 include/uhmm.h $(DESTDIR)$(INCLUDEDIR)/uhmm.h
ifeq ($(OPENCL),yes)
	install -m 644 include/uhmm_opencl.h $(DESTDIR)$(INCLUDEDIR)/uhmm_opencl.h
endif
	install -m 644 $(BUILD)/libuhmm.a $(DESTDIR)$(LIBDIR)/libuhmm.a
	install -m 755 $(BUILD)/libuhmm.so $(DESTDIR)$(LIBDIR)/libuhmm.so.$(VERSION)
	ln -sf libuhmm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libuhmm.so.$(SOVER)
	ln -sf libuhmm.so.$(SOVER) $(DESTDIR)$(LIBDIR)/libuhmm.so
	install -m 755 $(BUILD)/uhmm $(DESTDIR)$(BINDIR)/uhmm
	install -m 644 $(BUILD)/uhmm.pc $(DESTDIR)$(PKGCONFIGDIR)/uhmm.pc
ifneq ($(PRELOAD_LIB),)
	install -m 755 $(PRELOAD_LIB) $(DESTDIR)$(LIBDIR)/libuhmm-preload.so
endif
	install -m 644 docs/uhmm.1 $(DESTDIR)$(MANDIR)/man1/uhmm.1
	install -m 644 docs/uhmm.3 $(DESTDIR)$(MANDIR)/man3/uhmm.3

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/uhmm.h \
	      $(DESTDIR)$(INCLUDEDIR)/uhmm_opencl.h \
	      $(DESTDIR)$(LIBDIR)/libuhmm.a \
	      $(DESTDIR)$(LIBDIR)/libuhmm.so.$(VERSION) \
	      $(DESTDIR)$(LIBDIR)/libuhmm.so.$(SOVER) \
	      $(DESTDIR)$(LIBDIR)/libuhmm.so \
	      $(DESTDIR)$(LIBDIR)/libuhmm-preload.so \
	      $(DESTDIR)$(BINDIR)/uhmm \
	      $(DESTDIR)$(PKGCONFIGDIR)/uhmm.pc \
	      $(DESTDIR)$(MANDIR)/man1/uhmm.1 \
	      $(DESTDIR)$(MANDIR)/man3/uhmm.3

clean:
	rm -rf build build-asan build-tsan build-fuzz $(BUILD)

.PHONY: all clean demo bench bad-inputs check $(CHECK_PASSES:%=check-%) stress install uninstall FORCE \
	fuzz fuzz-build
.DELETE_ON_ERROR:
