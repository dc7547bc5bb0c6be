#!/usr/bin/env bash
# cuda_train.sh MLAMOE CHECKPOINT_DIFF CONFIG DATA.h5 WORKDIR [STEPS]: tiny.json trained for STEPS (20) steps with
# --device cuda (every op's CUDA kernel, run by the SIMT emulator: MLAMOE_CUDA_BACKEND=simt) against
# the same steps on the CPU (MLAMOE_CUDA_BACKEND=gpu runs it on a GPU: tools/gpu_check.sh):
#   - every step's losses and gradient norm agree within 1e-5 (relative);
#   - the final weights agree within 1e-5 of each tensor's largest value (checkpoint_diff: the CUDA kernels sum in other
#     orders than the CPU's);
#   - the progress line reports the caching allocator's peak device memory, no step after the second
#     takes memory from the driver (metrics device_mallocs), and the run says it ran on cuda:0.
set -euo pipefail
mlamoe=$1 diff_bin=$2 config=$3 data=$4 work=$5 steps=${6:-20}
backend=${MLAMOE_CUDA_BACKEND:-simt}
rm -rf "$work" && mkdir -p "$work"
run() {  # name, then overrides
  local name=$1
  shift
  "$mlamoe" train --config "$config" --set data.path="$data" --set train.steps="$steps" --set train.eval_every=0 \
    --set train.eval_batches=0 --set train.peak_gflops=100 --set train.log_every=1 --set train.run_dir="$work/$name" "$@" \
    >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; echo "FAIL: the $name run did not train"; exit 1; }
}
run cpu
MLAMOE_CUDA_BACKEND=$backend run cuda --device cuda
grep -q "on cuda:0 ($backend)" "$work/cuda.out" || { cat "$work/cuda.out"; echo "FAIL: the CUDA run does not say it ran on cuda:0"; exit 1; }
grep -q "GPU peak [0-9]* MB" "$work/cuda.out" || { cat "$work/cuda.out"; echo "FAIL: no device memory peak in the progress line"; exit 1; }
python3 - "$work/cpu/metrics.jsonl" "$work/cuda/metrics.jsonl" "$steps" <<'PY'
import json, sys
cpu, gpu = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
steps = int(sys.argv[3])
assert len(cpu) == len(gpu) == steps, f"expected {steps} steps each, got {len(cpu)} and {len(gpu)}"
worst = 0.0
for a, b in zip(cpu, gpu):
    for key in ("loss", "lm_loss", "mtp_loss", "balance_loss", "grad_norm"):
        rel = abs(b[key] - a[key]) / max(abs(a[key]), 1e-30)
        worst = max(worst, rel)
        if not rel <= 1e-5:
            sys.exit(f"FAIL: step {a['step']} {key}: CPU {a[key]!r}, CUDA {b[key]!r} (relative {rel:.2e} > 1e-5)")
    if "device_peak_mb" not in b or not b["device_peak_mb"] > 0:
        sys.exit(f"FAIL: step {b['step']} has no device_peak_mb")
    # The caching allocator: after two steps (shapes seen, routing's varying sizes cached) a step
    # takes no memory from the driver.
    if b["step"] > 2 and b.get("device_mallocs") != 0:
        sys.exit(f"FAIL: step {b['step']} allocated from the driver {b.get('device_mallocs')} times (caching allocator)")
print(f"cuda_train: {steps} steps, losses and gradient norms within {worst:.2e} of the CPU's; "
      f"device peak {gpu[-1]['device_peak_mb']:.0f} MB; final loss {gpu[-1]['loss']:.6f} vs {cpu[-1]['loss']:.6f}")
PY
"$diff_bin" "$work/cpu/weights.h5" "$work/cuda/weights.h5" 1e-5 ||
  { echo "FAIL: the CUDA run's final weights differ from the CPU's beyond 1e-5"; exit 1; }
echo "cuda_train: the CUDA run ($backend) equals the CPU run within 1e-5"
