#!/usr/bin/env bash
# The whole test suite under AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer):
# configures build-asan/ with MLAMOE_SANITIZE=ON (the default compiler, Release flags plus -g, no
# CUDA), builds everything and runs ctest one test at a time. A sanitizer report makes its process
# exit 86, so the test fails; ASan's and LSan's go to BUILD/sanitizer-logs/report.<pid>, UBSan's to
# the test's output (BUILD/ctest.log). The end lists the reports with their first frames.
#
#   tools/sanitize.sh                   # everything (2 cores: ~7 min to build, ~30 min to run)
#   tools/sanitize.sh -R 'config|bpe'   # extra arguments go to ctest (then one pass, slow unwinding)
#
# Environment: SANITIZE_BUILD_DIR (default build-asan), SANITIZE_JOBS (build parallelism, default
# nproc), MLAMOE_CMAKE_ARGS (extra cmake flags). Suppressions (third-party code only):
# tools/lsan.supp, tools/ubsan.supp.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

build=${SANITIZE_BUILD_DIR:-build-asan}
[[ $build = /* ]] || build="$root/$build"
jobs=${SANITIZE_JOBS:-$(nproc 2>/dev/null || echo 2)}

mkdir -p "$build"
# shellcheck disable=SC2086  # MLAMOE_CMAKE_ARGS is a list of flags
if ! cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMLAMOE_SANITIZE=ON -DMLAMOE_CUDA=OFF -DCMAKE_CXX_FLAGS=-g \
    ${MLAMOE_CMAKE_ARGS:-} >"$build/configure.log" 2>&1; then
  cat "$build/configure.log" >&2
  echo "sanitize: error: cmake configure failed (log above)" >&2
  exit 2
fi
start=$(date +%s)
if ! cmake --build "$build" -j "$jobs" >"$build/build.log" 2>&1; then
  tail -40 "$build/build.log" >&2
  echo "sanitize: error: build failed ($build/build.log)" >&2
  exit 2
fi
echo "sanitize: built in $(($(date +%s) - start)) s ($build)"

logs="$build/sanitizer-logs"
rm -rf "$logs"
mkdir -p "$logs"
# halt_on_error: the first report ends the process, with exit code 86 (not 1, which the error-path
# tests expect from a clean failure). log_path: reports of processes whose stderr a test captures
# (mpirun ranks, CLI error tests) are kept too.
common="halt_on_error=1:exitcode=86:log_path=$logs/report:print_stacktrace=1"
# No detect_stack_use_after_return: with g++ 12 at -O3 its fake stacks make test_model SEGV in an
# std::initializer_list copy (tests/model/test_model.cpp:106) that is clean without them.
export ASAN_OPTIONS="$common:detect_leaks=1:abort_on_error=0:strict_string_checks=1:check_initialization_order=1:strict_init_order=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="$common:suppressions=$root/tools/ubsan.supp${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
# The MPI tests (named *_npN) unwind allocations the slow way: Open MPI's libraries have no frame
# pointers, and the LSan suppressions of its start-up allocations need the stack down to MPI_Init
# (its plugins are unloaded by exit, so only frames in libmpi and libopen-rte can be named). Too
# slow for the rest (autograd: 10 s becomes 130 s), which run first, the fast way.
slow_unwind="fast_unwind_on_malloc=0"
mpi_tests='_np[0-9]+$'

start=$(date +%s)
: >"$build/ctest.log"
rc=0
if [ $# -eq 0 ]; then
  (cd "$build" && ctest --output-on-failure -j 1 -E "$mpi_tests") 2>&1 | tee -a "$build/ctest.log"
  rc=${PIPESTATUS[0]}
  (cd "$build" && ASAN_OPTIONS="$ASAN_OPTIONS:$slow_unwind" ctest --output-on-failure -j 1 -R "$mpi_tests") 2>&1 |
    tee -a "$build/ctest.log"
  [ "${PIPESTATUS[0]}" -ne 0 ] && rc=1
else
  (cd "$build" && ASAN_OPTIONS="$ASAN_OPTIONS:$slow_unwind" ctest --output-on-failure -j 1 "$@") 2>&1 | tee -a "$build/ctest.log"
  rc=${PIPESTATUS[0]}
fi
echo "sanitize: ctest took $(($(date +%s) - start)) s, exit $rc"

# UBSan (g++'s, beside ASan) writes to stderr whatever log_path says: its reports are in ctest's
# output, one "file:line:col: runtime error: ..." line each.
found=0
if grep -q 'runtime error:' "$build/ctest.log"; then
  found=1
  echo "sanitize: UBSan reports (distinct places; the tests are in $build/ctest.log):"
  grep -oE '[^ ]+:[0-9]+:[0-9]+: runtime error: .*' "$build/ctest.log" | sort | uniq -c | sort -rn | head -20
fi
reports=("$logs"/report.*)
if [ -e "${reports[0]}" ]; then
  found=1
  echo "sanitize: ${#reports[@]} ASan/LSan report(s):"
  for r in "${reports[@]}"; do
    echo "---- $r"
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$r"
    grep -E '^ +#[0-9]+ ' "$r" | grep -vE 'libc\.so|_start|__libc_start' | head -8
  done
fi
[ $found -eq 1 ] && exit 1
echo "sanitize: no sanitizer reports"
exit "$rc"
