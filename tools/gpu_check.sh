#!/usr/bin/env bash
# gpu_check.sh [--emulate] [--build-dir DIR]: the CUDA backend's one-shot validation, made for one
# call on a lent GPU machine (16 cores, nvcc, CMake; under 7 minutes with the build), and run end to
# end in the SIMT emulator by CI (--emulate: MLAMOE_CUDA_BACKEND=simt, fewer steps, no sanitizer).
#
#   1. the device, driver and library versions;
#   2. the build: nvcc for sm_90 into build-gpu/ (tools/gpu_deps.sh's carried .debs first, when
#      present), unless --build-dir names a built tree;
#   3. the op table's CUDA rows against the CPU oracle (f32: 1e-5, bf16 autocast rows: 1e-2, emulated 1e-4; both
#      runs of each row under other thread orders bitwise equal), the CUDA tensor tests (copies,
#      allocator, streams and events, routing), and the golden test on the device (f32 and bf16
#      against the PyTorch twin), twice: both runs' step losses and gradient norms equal;
#   4. compute-sanitizer memcheck and racecheck on those rows (GPU only, when installed); the
#      NCCL communicator on one rank (every collective and message, device and host buffers), and
#      two ranks sharing the device through the MPI path (the dp2·ep2 layout against the CPU);
#   5. tiny.json trained on the device against the CPU (tests/train/cuda_train.sh, 30 steps; 5
#      emulated) in f32, twice (both device runs' final weights bitwise equal), and in bf16;
#   6. a benchmark: tokens/s, TFLOP/s and MFU of configs/bench_1b.json (≈1B parameters, MLA + MoE)
#      in bf16 against the datasheet peak (train/gpu_peak.h) and against the measured GEMM ceiling
#      (bench/bench_gemm_cuda: cuBLAS bf16 and f32 on 8192² operands); emulated: tiny.json, 3 steps.
#
# Writes $OUT/gpu_check.json and $OUT/gpu_check.txt ($OUT: the device tool's output folder, else
# <build>/gpu_check) and prints the table last. Exits 1 when a check fails; every check runs anyway.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
emulate=0
build=""
while [ $# -gt 0 ]; do
  case $1 in
    --emulate) emulate=1 ;;
    --build-dir) build=$2; shift ;;
    *) echo "gpu_check: unknown argument '$1' (use --emulate, --build-dir DIR)" >&2; exit 2 ;;
  esac
  shift
done
if [ "$emulate" = 1 ]; then
  backend=simt train_steps=5 bench_config=configs/tiny.json bench_steps=3
  build=${build:-build}
else
  backend=gpu train_steps=30 bench_config=configs/bench_1b.json bench_steps=12
  build=${build:-build-gpu}
fi
export MLAMOE_CUDA_BACKEND=$backend
out=${OUT:-$root/$build/gpu_check}
mkdir -p "$out"
log=$out/gpu_check.log
: >"$log"
rows=()   # "check|result|figures"
failed=0
record() {  # check, PASS/FAIL/SKIP, figures
  rows+=("$1|$2|$3")
  [ "$2" = FAIL ] && failed=1
  printf '%-28s %-5s %s\n' "$1" "$2" "$3" | tee -a "$log"
}
section() { printf '\n==== %s\n' "$1" >>"$log"; }

# ---- 1. versions ----
section versions
if [ "$emulate" = 1 ]; then
  versions="SIMT emulator on $(nproc) CPU cores; $(g++ --version | head -1)"
else
  versions=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | head -1)
  versions="$versions; $(nvcc --version 2>&1 | grep -o 'release [0-9.]*' | head -1)"
fi
record "device" PASS "$versions"

# ---- 2. build ----
section build
t0=$(date +%s)
if [ "$emulate" = 0 ] && [ ! -f "$build/CMakeCache.txt" ]; then
  [ -x tools/gpu_deps.sh ] && tools/gpu_deps.sh --install >>"$log" 2>&1
  # shellcheck disable=SC1091
  [ -f build-gpu-deps/env.sh ] && . build-gpu-deps/env.sh
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DMLAMOE_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 >>"$log" 2>&1
fi
if cmake --build "$build" -j "$(nproc)" --target mlamoe test_ops test_cuda_tensor test_golden checkpoint_diff bench_gemm_cuda \
  test_communicator test_layouts \
  >>"$log" 2>&1; then
  record "build" PASS "$(($(date +%s) - t0)) s ($build)"
else
  record "build" FAIL "see $log"
  printf '%s\n' "${rows[@]}" >"$out/gpu_check.txt"
  exit 1
fi
mlamoe=$build/mlamoe
tests=$build/tests
"$mlamoe" version >>"$log" 2>&1

# ---- 3. op table and tensor tests on the device ----
section "op table"
bf16_bound=1e-2; [ "$emulate" = 1 ] && bf16_bound=1e-4  # tests/model/test_ops.cpp: kCudaBf16Tol, kSimtBf16Tol
if "$tests/test_ops" --gtest_filter='*OpCuda*' >"$out/ops_cuda.log" 2>&1; then
  passed=$(grep -o 'PASSED  \] [0-9]*' "$out/ops_cuda.log" | grep -o '[0-9]*$')
  worst=$(grep -o 'max rel err [0-9.e+-]*' "$out/ops_cuda.log" | awk '{print $4}' | sort -g | tail -1)
  record "op table (CUDA rows)" PASS "$passed rows vs CPU, worst rel err ${worst:-?} (bounds: f32 1e-5, bf16 autocast rows $bf16_bound), two thread orders bitwise equal"
else
  record "op table (CUDA rows)" FAIL "$(grep -c 'FAILED  \]' "$out/ops_cuda.log") failed: see ops_cuda.log"
fi
if "$tests/test_cuda_tensor" >"$out/cuda_tensor.log" 2>&1; then
  record "CUDA tensors" PASS "$(grep -o 'PASSED  \] [0-9]*' "$out/cuda_tensor.log" | grep -o '[0-9]*$') tests (copies, allocator, streams and events, bf16 keeping, routing)"
else
  record "CUDA tensors" FAIL "see cuda_tensor.log"
fi
# The golden test on the device, twice: each run against the PyTorch twin, and the two runs' printed
# step losses and gradient norms (17 digits) equal.
golden_ok=1
for run in 1 2; do
  "$tests/train/test_golden" --gtest_filter='*Cuda*' >"$out/golden$run.log" 2>&1 || golden_ok=0
  grep '^golden ' "$out/golden$run.log" >"$out/golden$run.steps" || true
done
if [ "$golden_ok" = 1 ] && [ -s "$out/golden1.steps" ] && cmp -s "$out/golden1.steps" "$out/golden2.steps"; then
  record "golden (f32, bf16)" PASS "$(grep -o 'PASSED  \] [0-9]*' "$out/golden1.log" | grep -o '[0-9]*$') cases vs PyTorch, twice: $(wc -l <"$out/golden1.steps") step figures equal"
else
  record "golden (f32, bf16)" FAIL "see golden1.log, golden2.log (and .steps: the runs' step figures)"
fi

# ---- 4. compute-sanitizer ----
section sanitizer
if [ "$emulate" = 1 ]; then
  record "compute-sanitizer" SKIP "emulated: races are what the shuffled thread orders catch (ctest simt, ops_cuda)"
elif ! command -v compute-sanitizer >/dev/null; then
  record "compute-sanitizer" SKIP "not installed"
else
  for tool in memcheck racecheck; do
    if compute-sanitizer --tool "$tool" --error-exitcode 3 "$tests/test_ops" --gtest_filter='*OpCuda*' \
      >"$out/sanitizer_$tool.log" 2>&1; then
      record "compute-sanitizer $tool" PASS "$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$out/sanitizer_$tool.log" | tail -1)"
    else
      record "compute-sanitizer $tool" FAIL "$(grep -o 'ERROR SUMMARY: [0-9]* errors' "$out/sanitizer_$tool.log" | tail -1)"
    fi
  done
fi

# ---- 4b. multi-rank: NCCL on one rank, two ranks sharing the device through MPI ----
section "multi-rank"
mpirun_flags=(--oversubscribe)
[ "$(id -u)" -eq 0 ] && mpirun_flags+=(--allow-run-as-root)
if command -v mpirun >/dev/null; then
  transport=''
  if mpirun -np 1 "${mpirun_flags[@]}" "$tests/parallel/test_communicator" --gtest_filter='DeviceBuffers.*' \
    >"$out/nccl1.log" 2>&1; then
    transport=$(grep -o 'NCCL communicator over .*' "$out/nccl1.log" | head -1 || true)
  fi
  # On a GPU the library itself must have run (a build without NCCL would test the MPI stand-in).
  if [ -z "$transport" ]; then
    record "NCCL, 1 rank" FAIL "see nccl1.log"
  elif [ "$emulate" = 0 ] && ! grep -q 'over NCCL [0-9]' <<<"$transport"; then
    record "NCCL, 1 rank" FAIL "$transport: this build did not find NCCL (see nccl1.log)"
  elif grep -q SKIPPED "$out/nccl1.log"; then
    record "NCCL, 1 rank" FAIL "skipped: no CUDA device (see nccl1.log)"
  else
    record "NCCL, 1 rank" PASS "every collective and message on device and host buffers ($transport)"
  fi
  layouts=$out/layouts_f32  # the CPU reference, made here
  if "$tests/parallel/test_layouts" "$layouts" reference f32 >"$out/shared.log" 2>&1 &&
    MLAMOE_SIMT_DEVICES=1 MLAMOE_CUDA_SHARE_DEVICES=1 OMP_NUM_THREADS=1 mpirun -np 2 "${mpirun_flags[@]}" \
      -x MLAMOE_CUDA_BACKEND -x MLAMOE_SIMT_DEVICES -x MLAMOE_CUDA_SHARE_DEVICES -x OMP_NUM_THREADS \
      "$tests/parallel/test_layouts" "$layouts" 1 2 f32 cuda >>"$out/shared.log" 2>&1; then
    record "2 ranks sharing the device" PASS "$(grep -o 'layout pp 1 dp 2 ep 2.*' "$out/shared.log" | head -1)"
  else
    record "2 ranks sharing the device" FAIL "see shared.log"
  fi
else
  record "multi-rank" SKIP "no mpirun (tools/gpu_deps.sh carries Open MPI)"
fi

# ---- 5. training on the device against the CPU, twice ----
section training
data=$build/data/kjv.h5  # tokenised here from the text (carried to a GPU machine: build/data/kjv.txt)
[ -f "$data" ] || MLAMOE=$mlamoe tools/prepare_corpus.sh build/data/kjv.txt "$data" >>"$log" 2>&1
if tests/train/cuda_train.sh "$mlamoe" "$tests/train/checkpoint_diff" configs/tiny.json "$data" "$out/train1" "$train_steps" \
  >"$out/train1.log" 2>&1; then
  record "tiny.json vs CPU" PASS "$(grep -o '[0-9]* steps, losses.*' "$out/train1.log" | head -1)"
else
  record "tiny.json vs CPU" FAIL "see train1.log"
fi
if tests/train/cuda_train.sh "$mlamoe" "$tests/train/checkpoint_diff" configs/tiny.json "$data" "$out/train2" "$train_steps" \
  >"$out/train2.log" 2>&1 && "$tests/train/checkpoint_diff" "$out/train1/cuda/weights.h5" "$out/train2/cuda/weights.h5" \
  >"$out/rerun.log" 2>&1; then
  record "rerun bitwise equal" PASS "two device runs' final weights identical"
else
  record "rerun bitwise equal" FAIL "see train2.log, rerun.log"
fi
if tests/train/cuda_train.sh "$mlamoe" "$tests/train/checkpoint_diff" configs/tiny.json "$data" "$out/train_bf16" \
  "$train_steps" bf16 >"$out/train_bf16.log" 2>&1; then
  record "tiny.json bf16 vs CPU" PASS "$(grep -o '[0-9]* steps, losses.*' "$out/train_bf16.log" | head -1)"
else
  record "tiny.json bf16 vs CPU" FAIL "see train_bf16.log"
fi

# ---- 6. benchmark ----
section benchmark
ceiling=""
if "$build/bench/bench_gemm_cuda" >"$out/gemm_ceiling.jsonl" 2>>"$log"; then
  ceiling=$(python3 - "$out/gemm_ceiling.jsonl" <<'PY'
import json, sys
print(", ".join(f"{r['dtype']} {r['n']}³: {r['tflops']:.3g} TFLOP/s" for r in map(json.loads, open(sys.argv[1]))))
PY
)
fi
if [ -n "$ceiling" ]; then
  record "GEMM ceiling" PASS "$ceiling (bench_gemm_cuda: matmul on the device, best of its runs)"
else
  record "GEMM ceiling" FAIL "see $log"
fi
rm -rf "$out/bench"
if "$mlamoe" train --config "$bench_config" --device cuda --set data.path="$data" --set train.steps="$bench_steps" \
  --set train.precision=bf16 --set train.eval_batches=0 --set train.log_every=1 --set train.run_dir="$out/bench" \
  >"$out/bench.log" 2>&1; then
  figures=$(python3 - "$out/bench/metrics.jsonl" "$bench_config" "$emulate" "$out/gemm_ceiling.jsonl" <<'PY'
import json, os, sys
m = [json.loads(l) for l in open(sys.argv[1])]
steady = m[2:] or m[-1:]  # the first steps warm the allocator and cuBLAS up
tps = sum(x["tokens_per_s"] for x in steady) / len(steady)
mfu = sum(x["mfu"] for x in steady) / len(steady)
tflops = sum(x.get("tflops", 0) for x in steady) / len(steady)
dev = sum(x.get("device_time_s", 0) for x in steady) / len(steady)
ceiling = ""
if os.path.exists(sys.argv[4]):
    bf16 = [r for r in map(json.loads, open(sys.argv[4])) if r["dtype"] == "bf16"]
    if bf16:
        ceiling = f", {100 * tflops / bf16[0]['tflops']:.1f}% of the measured bf16 GEMM ceiling"
note = " (emulated on the CPU: not a GPU figure)" if sys.argv[3] == "1" else ""
print(f"{sys.argv[2]} bf16: {tps:,.0f} tokens/s, {tflops:.3g} TFLOP/s, MFU {100 * mfu:.1f}% of the datasheet{ceiling} "
      f"(steps 3+; device {1e3 * dev:.0f} ms/step), device peak {m[-1].get('device_peak_mb', 0):.0f} MB{note}")
PY
)
  record "benchmark" PASS "$figures"
else
  record "benchmark" FAIL "see bench.log"
fi

# ---- summary ----
python3 - "$out" "$backend" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "${rows[@]}" <<'PY'
import json, sys
out, backend, commit, rows = sys.argv[1], sys.argv[2], sys.argv[3], [r.split("|", 2) for r in sys.argv[4:]]
json.dump({"backend": backend, "commit": commit, "checks": [{"check": c, "result": r, "figures": f} for c, r, f in rows]},
          open(f"{out}/gpu_check.json", "w"), indent=1)
w = max(len(c) for c, _, _ in rows)
table = [f"gpu_check ({backend}, commit {commit})"] + [f"  {c:<{w}}  {r:<4}  {f}" for c, r, f in rows]
open(f"{out}/gpu_check.txt", "w").write("\n".join(table) + "\n")
print("\n".join(table))
PY
exit $failed
