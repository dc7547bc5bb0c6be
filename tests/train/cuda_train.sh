#!/usr/bin/env bash
# cuda_train.sh MLAMOE CHECKPOINT_DIFF CONFIG DATA.h5 WORKDIR [STEPS] [PRECISION]: tiny.json trained for STEPS (20)
# steps with --device cuda (every op's CUDA kernel, run by the SIMT emulator: MLAMOE_CUDA_BACKEND=simt) against the
# same steps on the CPU, both in train.precision PRECISION (f32; MLAMOE_CUDA_BACKEND=gpu runs it on a GPU:
# tools/gpu_check.sh):
#   - every step's losses and gradient norm agree within 1e-5 (relative) in f32; in bf16 within 1e-3 (losses; seen
#     2.0e-4), 5e-3 (the balance loss, which counts routed tokens; seen 9.2e-4) and 1e-2 (gradient norm; seen 4.8e-4):
#     both round where model/README.md §6 says, but a product summed in another order can land on the neighbouring
#     bf16 value, and training carries that on;
#   - in f32 the final weights agree within 1e-5 of each tensor's largest value (checkpoint_diff: the CUDA kernels sum
#     in other orders than the CPU's). bf16 compares no weights: AdamW moves a weight by about lr per step whatever
#     its gradient's size, so a weight whose tiny gradient differs in sign between the runs (a rare token's embedding
#     row, an expert that got one token more) drifts apart by up to lr·steps, and a correction bias by its update
#     rate per step (seen: 3% of the largest value, 0.006 on a 0.018 bias); the per-step losses bound the runs;
#   - the progress line reports the caching allocator's peak device memory, no step after the second
#     takes memory from the driver (metrics device_mallocs), and the run says it ran on cuda:0.
set -euo pipefail
mlamoe=$1 diff_bin=$2 config=$3 data=$4 work=$5 steps=${6:-20} precision=${7:-f32}
case $precision in
  f32) loss_tol=1e-5 bal_tol=1e-5 norm_tol=1e-5 ;;
  bf16) loss_tol=1e-3 bal_tol=5e-3 norm_tol=1e-2 ;;
  *) echo "cuda_train: PRECISION must be f32 or bf16, got '$precision'" >&2; exit 2 ;;
esac
backend=${MLAMOE_CUDA_BACKEND:-simt}
rm -rf "$work" && mkdir -p "$work"
run() {  # name, then overrides
  local name=$1
  shift
  "$mlamoe" train --config "$config" --set data.path="$data" --set train.steps="$steps" --set train.eval_every=0 \
    --set train.eval_batches=0 --set train.peak_gflops=100 --set train.log_every=1 --set train.run_dir="$work/$name" --set train.precision="$precision" "$@" \
    >"$work/$name.out" 2>&1 || { cat "$work/$name.out"; echo "FAIL: the $name run did not train"; exit 1; }
}
run cpu
MLAMOE_CUDA_BACKEND=$backend run cuda --device cuda
grep -q "on cuda:0 ($backend)" "$work/cuda.out" || { cat "$work/cuda.out"; echo "FAIL: the CUDA run does not say it ran on cuda:0"; exit 1; }
grep -q "GPU peak [0-9]* MB" "$work/cuda.out" || { cat "$work/cuda.out"; echo "FAIL: no device memory peak in the progress line"; exit 1; }
python3 - "$work/cpu/metrics.jsonl" "$work/cuda/metrics.jsonl" "$steps" "$loss_tol" "$bal_tol" "$norm_tol" <<'PY'
import json, sys
cpu, gpu = ([json.loads(l) for l in open(p)] for p in sys.argv[1:3])
steps, loss_tol, bal_tol, norm_tol = int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
tols = {"loss": loss_tol, "lm_loss": loss_tol, "mtp_loss": loss_tol, "balance_loss": bal_tol, "grad_norm": norm_tol}
assert len(cpu) == len(gpu) == steps, f"expected {steps} steps each, got {len(cpu)} and {len(gpu)}"
worst = {"loss": 0.0, "balance_loss": 0.0, "grad_norm": 0.0}
for a, b in zip(cpu, gpu):
    for key in ("loss", "lm_loss", "mtp_loss", "balance_loss", "grad_norm"):
        rel = abs(b[key] - a[key]) / max(abs(a[key]), 1e-30)
        tol = tols[key]
        kind = key if key in worst else "loss"
        worst[kind] = max(worst[kind], rel)
        if not rel <= tol:
            sys.exit(f"FAIL: step {a['step']} {key}: CPU {a[key]!r}, CUDA {b[key]!r} (relative {rel:.2e} > {tol:g})")
    if "device_peak_mb" not in b or not b["device_peak_mb"] > 0:
        sys.exit(f"FAIL: step {b['step']} has no device_peak_mb")
    # The caching allocator: after two steps (shapes seen, routing's varying sizes cached) a step
    # takes no memory from the driver.
    if b["step"] > 2 and b.get("device_mallocs") != 0:
        sys.exit(f"FAIL: step {b['step']} allocated from the driver {b.get('device_mallocs')} times (caching allocator)")
print(f"cuda_train: {steps} steps, losses within {worst['loss']:.2e}, the balance loss within {worst['balance_loss']:.2e} "
      f"and gradient norms within {worst['grad_norm']:.2e} "
      f"of the CPU's; "
      f"device peak {gpu[-1]['device_peak_mb']:.0f} MB; final loss {gpu[-1]['loss']:.6f} vs {cpu[-1]['loss']:.6f}")
PY
if [ "$precision" = f32 ]; then
  "$diff_bin" "$work/cpu/weights.h5" "$work/cuda/weights.h5" 1e-5 ||
    { echo "FAIL: the CUDA run's final weights differ from the CPU's beyond 1e-5"; exit 1; }
fi
echo "cuda_train: the CUDA run ($backend, $precision) equals the CPU run within its bounds"
