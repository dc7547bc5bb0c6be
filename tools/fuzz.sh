#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz/ with clang (ASan + UBSan, coverage-instrumented
# libraries), replays each target's regression inputs, then fuzzes each for SECONDS from a fresh
# copy of its seed corpus. Prints per target the executions, the corpus growth (new coverage units),
# the coverage and the findings.
#
#   tools/fuzz.sh                       # every target, 60 s each
#   tools/fuzz.sh 300 fuzz_tokenizer    # one target, 5 minutes
#
# A finding is a crash, an ASan/UBSan/LSan report, an exception other than mlamoe::Error, more than
# 10 s on one input or more than 2 GB of memory. Each one's input is saved as
# BUILD/fuzz/findings/<target>/{crash,leak,timeout,oom}-<sha1> and replayed on its own to get its
# report (BUILD/fuzz/findings/<target>/*.report; replay by hand: BUILD/tests/fuzz/<target> FILE).
# A hang, a crash or an allocation whose innermost frame outside the sanitizer runtime lies in
# libhdf5 (a damaged file that HDF5 itself cannot read safely) is listed as "third-party", and an
# input that does not fail again on replay as "not reproduced"; neither fails the run unless
# FUZZ_STRICT=1. Memory errors (ASan), UBSan reports, leaks and escaped exceptions always do.
#
# Exit: 0 clean, 1 findings, 2 build error, 77 clang or libFuzzer missing (ctest skips fuzz_smoke).
#
# Environment: FUZZ_BUILD_DIR (default build-fuzz), FUZZ_KEEP_CORPUS=1 (grow the corpus of earlier
# runs instead of starting from the seeds), FUZZ_KEEP_GOING=0 (stop each target at its first finding
# instead of libFuzzer's fork mode, which goes on and collects them all), FUZZ_SEED (libFuzzer's
# -seed), FUZZ_STRICT=1, FUZZ_JOBS (build parallelism, default nproc), FUZZ_NO_BUILD=1 (run the
# targets as they are built).
#
# Seeds: BUILD/fuzz/seeds/<target>/ (make_fuzz_seeds writes them with the project's own writers)
# plus tests/fuzz/seeds/<target>/ (committed by hand); regression inputs:
# BUILD/fuzz/seeds/regressions/<target>/ (make_fuzz_seeds; too large to fuzz from).
set -uo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

all_targets=(fuzz_config fuzz_hf_config fuzz_safetensors fuzz_tokenizer fuzz_token_dataset fuzz_checkpoint)
seconds=60
if [ $# -gt 0 ] && [[ $1 =~ ^[0-9]+$ ]]; then
  seconds=$1
  shift
fi
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  [[ " ${all_targets[*]} " == *" $t "* ]] || { echo "fuzz: unknown target '$t' (known: ${all_targets[*]})" >&2; exit 2; }
done

build=${FUZZ_BUILD_DIR:-build-fuzz}
[[ $build = /* ]] || build="$root/$build"
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 2)}

# ---- prerequisites: clang++ that links a libFuzzer program ----
if ! command -v clang++ >/dev/null || ! command -v clang >/dev/null; then
  echo "fuzz: SKIPPED: clang/clang++ not found (tools/setup.sh installs clang and libclang-rt-14-dev)" >&2
  exit 77
fi
probe=$(mktemp -d)
trap 'rm -rf "$probe"' EXIT
printf '#include <cstdint>\n#include <cstddef>\nextern "C" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n' >"$probe/p.cpp"
if ! clang++ -fsanitize=fuzzer,address,undefined "$probe/p.cpp" -o "$probe/p" >"$probe/log" 2>&1; then
  echo "fuzz: SKIPPED: clang++ cannot link -fsanitize=fuzzer,address,undefined (libclang-rt-14-dev missing?):" >&2
  head -3 "$probe/log" >&2
  exit 77
fi

# ---- build ----
mkdir -p "$build"
if [ ! -f "$build/CMakeCache.txt" ]; then
  # -O1 -g: fast enough to fuzz, quick to build, readable stacks; asserts stay on.
  if ! CC=clang CXX=clang++ cmake -S . -B "$build" -DMLAMOE_FUZZ=ON -DMLAMOE_CUDA=OFF -DBUILD_TESTING=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo "-DCMAKE_CXX_FLAGS_RELWITHDEBINFO=-O1 -g" >"$build/configure.log" 2>&1; then
    cat "$build/configure.log" >&2
    echo "fuzz: error: cmake configure failed (log above)" >&2
    exit 2
  fi
fi
start=$(date +%s)
if [ "${FUZZ_NO_BUILD:-0}" = 1 ] && [ -x "$build/tests/fuzz/make_fuzz_seeds" ]; then
  echo "fuzz: FUZZ_NO_BUILD=1: running the targets already in $build"
elif ! cmake --build "$build" -j "$jobs" --target fuzz_all >"$build/build.log" 2>&1; then
  tail -40 "$build/build.log" >&2
  echo "fuzz: error: build failed ($build/build.log)" >&2
  exit 2
else
  echo "fuzz: built the targets in $(($(date +%s) - start)) s ($build)"
fi

work="$build/fuzz"
mkdir -p "$work"
rm -rf "$work/seeds"
if ! "$build/tests/fuzz/make_fuzz_seeds" "$work/seeds" >"$work/seeds.log" 2>&1; then
  cat "$work/seeds.log" >&2
  echo "fuzz: error: make_fuzz_seeds failed" >&2
  exit 2
fi

# Sanitizer settings: stop at the first report, with a stack; the LSan suppressions cover only
# third-party libraries (tools/lsan.supp).
export ASAN_OPTIONS="halt_on_error=1:abort_on_error=0:detect_leaks=1:allocator_may_return_null=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$root/tools/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
limits=(-rss_limit_mb=2048 -timeout=10 -error_exitcode=1 -timeout_exitcode=1)

# The kind of a saved report: "project" or "third-party (libhdf5)" (see the header).
runtime_frames='__sanitizer|__asan|__lsan|__ubsan|__interceptor|fuzzer::|in (malloc|calloc|realloc|free|operator new|operator delete)|libc\.so|libstdc\+\+|libgcc'
classify() {
  local report=$1 access alloc
  if grep -qE 'runtime error:|LeakSanitizer|FINDING' "$report"; then
    echo project
    return
  fi
  # The innermost frame outside the runtimes: of the crash, hang or allocation, and for an ASan
  # memory error also of the allocation of the memory it touched. A memory error inside libhdf5 on a
  # buffer of ours is ours (a buffer too small for what we asked HDF5 to read).
  access=$(sed -n '/ERROR:/,/^$/p' "$report" | grep -E '^ +#[0-9]+ 0x' | grep -vE "$runtime_frames" | head -1)
  alloc=$(sed -n '/allocated by thread/,/^$/p' "$report" | grep -E '^ +#[0-9]+ 0x' | grep -vE "$runtime_frames" | head -1)
  if [[ $access == *libhdf5* ]] && { [ -z "$alloc" ] || [[ $alloc == *libhdf5* ]]; }; then
    echo "third-party (libhdf5)"
  else
    echo project
  fi
}

project_findings=0
third_party_findings=0
summary=()
for t in "${targets[@]}"; do
  bin="$build/tests/fuzz/$t"
  # The HDF5 targets: libhdf5 has no frame pointers, and the LSan suppressions of its own leaks need
  # its frames, so allocations are unwound the slow way there (too slow for the others: a config
  # target allocates 100k strings per input).
  unwind=""
  [[ $t == fuzz_token_dataset || $t == fuzz_checkpoint ]] && unwind="fast_unwind_on_malloc=0"
  corpus="$work/corpus/$t"
  found="$work/findings/$t"
  tmp="$work/tmp/$t"
  [ "${FUZZ_KEEP_CORPUS:-0}" = 1 ] || rm -rf "$corpus"
  rm -rf "$work/findings-previous/$t" "$tmp"
  [ -d "$found" ] && mkdir -p "$work/findings-previous" && mv "$found" "$work/findings-previous/$t"
  mkdir -p "$corpus" "$found" "$tmp"
  cp -n "$work/seeds/$t"/* "$corpus"/ 2>/dev/null
  [ -d "tests/fuzz/seeds/$t" ] && cp -n "tests/fuzz/seeds/$t"/* "$corpus"/ 2>/dev/null
  seeds=$(find "$corpus" -type f | wc -l)

  # Regression inputs: each run once; a failing one is saved like a finding.
  if [ -d "$work/seeds/regressions/$t" ]; then
    mapfile -t inputs < <(find "$work/seeds/regressions/$t" -type f | sort)
    for input in "${inputs[@]}"; do
      if ! ASAN_OPTIONS="$ASAN_OPTIONS:$unwind" TMPDIR="$tmp" timeout --kill-after=30 120 "$bin" "${limits[@]}" "$input" >"$tmp/regression.log" 2>&1; then
        cp "$input" "$found/regression-$(basename "$input")"
      fi
    done
  fi

  echo "fuzz: $t for $seconds s ($seeds seeds) ..."
  log="$work/$t.log"
  args=("$corpus" -max_total_time="$seconds" "${limits[@]}" -artifact_prefix="$found/" -print_final_stats=1)
  [ -n "${FUZZ_SEED:-}" ] && args+=(-seed="$FUZZ_SEED")
  [ "${FUZZ_KEEP_GOING:-1}" = 1 ] && args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # A hang that escapes libFuzzer's own limits is cut by timeout(1).
  ASAN_OPTIONS="$ASAN_OPTIONS:$unwind" TMPDIR="$tmp" timeout --kill-after=30 $((seconds * 2 + 120)) "$bin" "${args[@]}" >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  [ -z "$execs" ] && execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')  # fork mode: the last status line
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | grep -oE '[0-9]+')
  corp=$(find "$corpus" -type f | wc -l)

  # Replay every saved input on its own: its report, and whether it is ours.
  n_project=0
  n_third=0
  mapfile -t saved < <(find "$found" -type f ! -name '*.report' | sort)
  for input in "${saved[@]}"; do
    report="$input.report"
    # Replays unwind the slow way: full stacks in the report, and the suppressions apply.
    ASAN_OPTIONS="$ASAN_OPTIONS:fast_unwind_on_malloc=0" TMPDIR="$tmp" timeout --kill-after=30 120 "$bin" "${limits[@]}" "$input" >"$report" 2>&1
    replay_rc=$?
    if [ $replay_rc -eq 0 ]; then
      kind="not reproduced"  # e.g. a leak that fork mode pinned on the wrong input
    else
      kind=$(classify "$report")
    fi
    if [ "$kind" = project ]; then n_project=$((n_project + 1)); else n_third=$((n_third + 1)); fi
    echo "---- $t: $kind: $input"
    grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error:|FINDING' "$report" | cut -c1-200
    # The innermost frames outside the runtimes, then the innermost of ours (a deep recursion's
    # own frames come first).
    grep -E '^ +#[0-9]+ 0x' "$report" | grep -vE "$runtime_frames|_start" | head -3 | cut -c1-200
    echo "    ..."
    grep -E '^ +#[0-9]+ 0x.* in mlamoe::' "$report" | head -3 | cut -c1-200
  done
  rm -rf "$tmp"
  project_findings=$((project_findings + n_project))
  third_party_findings=$((third_party_findings + n_third))
  status="ok"
  if [ $((n_project + n_third)) -gt 0 ]; then
    status="$n_project finding(s), $n_third third-party or not reproduced"
  elif [ $rc -ne 0 ]; then
    status="FAILED (exit $rc, nothing saved: $log)"
    project_findings=$((project_findings + 1))
  fi
  line=$(printf '%-20s %10s execs  corpus %4s -> %-5s (+%s)  cov %6s  %s' "$t" "${execs:-?}" "$seeds" "$corp" \
         "$((corp - seeds))" "${cov:-?}" "$status")
  echo "fuzz: $line"
  summary+=("$line")
done

echo "fuzz: summary ($seconds s per target; inputs and reports under $work/findings/)"
printf '  %s\n' "${summary[@]}"
if [ $project_findings -gt 0 ] || { [ "${FUZZ_STRICT:-0}" = 1 ] && [ $third_party_findings -gt 0 ]; }; then
  echo "fuzz: $project_findings finding(s), $third_party_findings third-party or not reproduced" >&2
  exit 1
fi
[ $third_party_findings -gt 0 ] && echo "fuzz: $third_party_findings third-party or not reproduced (FUZZ_STRICT=1 fails on them)"
exit 0
