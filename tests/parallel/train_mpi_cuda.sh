#!/usr/bin/env bash
# train_mpi_cuda.sh MPIRUN "FLAGS" MLAMOE CHECKPOINT_DIFF CONFIG DATA WORKDIR: `mlamoe train --device cuda` under
# mpirun, in the SIMT emulator (MLAMOE_CUDA_BACKEND=simt, MLAMOE_SIMT_DEVICES devices per node):
#   - 2 ranks on a node with 1 device: one error line naming the ranks and the device, exit 1, no run directory;
#   - 4 ranks as pp 2 · dp 2 · ep 2, one device per rank, the collectives on the NCCL communicator
#     (its MPI stand-in), 3 steps with a held-out evaluation: every
#     step's losses and gradient norm within 1e-5 of the same layout on the CPU, and the gathered
#     final weights within 1e-5 of each tensor's largest value (the kernels sum in other orders);
#     both runs profiled (--profile), their exposed communication listed per group, on the
#     device for the NCCL groups;
#   - dp 2 · ep 2 on 2 devices, 4 steps straight and 2 + 2 resumed from the checkpoint: the same
#     losses and bitwise the same weights (exact resume, ZeRO-1 shards on the devices).
set -euo pipefail
mpirun=$1 flags=$2 mlamoe=$3 diff_bin=$4 config=$5 data=$6 work=$7
rm -rf "$work" && mkdir -p "$work"
common=(train --config "$config" --set data.path="$data" --set train.steps=3 --set train.eval_every=3 --set train.eval_batches=2
  --set train.log_every=1 --set train.peak_gflops=100)
export OMP_NUM_THREADS=1 MLAMOE_CUDA_BACKEND=simt

# shellcheck disable=SC2086  # flags is a list
if MLAMOE_SIMT_DEVICES=1 "$mpirun" -np 2 $flags "$mlamoe" "${common[@]}" --device cuda --set train.run_dir="$work/refused" \
  >"$work/refused.out" 2>"$work/refused.err"; then
  echo "FAIL: 2 ranks on 1 device were not refused"; exit 1
fi
n=$(grep -c '^mlamoe: error' "$work/refused.err" || true)
grep -q '^mlamoe: error: 2 of the 2 ranks on this node use the same CUDA device (simt:0; 1 visible' "$work/refused.err" &&
  [ "$n" = 1 ] || { cat "$work/refused.err"; echo "FAIL: expected one line naming the 2 ranks and their device"; exit 1; }
[ ! -e "$work/refused" ] || { echo "FAIL: the refused run created its run directory"; exit 1; }

layout=(--set parallel.pp=2 --set parallel.ep=2)
# shellcheck disable=SC2086
"$mpirun" -np 4 $flags "$mlamoe" "${common[@]}" "${layout[@]}" --profile --set train.run_dir="$work/cpu" >"$work/cpu.out" 2>&1 ||
  { cat "$work/cpu.out"; echo "FAIL: the CPU run"; exit 1; }
# shellcheck disable=SC2086
MLAMOE_SIMT_DEVICES=4 "$mpirun" -np 4 $flags "$mlamoe" "${common[@]}" "${layout[@]}" --device cuda --profile \
  --set train.run_dir="$work/cuda" >"$work/cuda.out" 2>&1 || { cat "$work/cuda.out"; echo "FAIL: the CUDA run"; exit 1; }
# --profile: on the CPU every wait is the host's; on the devices the NCCL groups' waits (ep, dp,
# pp) are on the device (events around each call), world's (MPI) on the host.
/usr/bin/python3 "$(dirname "$0")/check_comm_profile.py" "$work/cpu.out" ep,dp,pp,world host
/usr/bin/python3 "$(dirname "$0")/check_comm_profile.py" "$work/cuda.out" ep,dp,pp,world device:ep,dp,pp
grep -q "on cuda:0 (simt), collectives over MPI stand-in for NCCL" "$work/cuda.out" ||
  { cat "$work/cuda.out"; echo "FAIL: rank 0 does not say it ran on cuda:0 with the NCCL communicator"; exit 1; }
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
a = [json.loads(l) for l in open(w + "/cpu/metrics.jsonl")]
b = [json.loads(l) for l in open(w + "/cuda/metrics.jsonl")]
assert len(a) == len(b) == 3, (len(a), len(b))
worst = 0.0
for x, y in zip(a, b):
    for k in ("loss", "lm_loss", "mtp_loss", "balance_loss", "grad_norm"):
        rel = abs(x[k] - y[k]) / abs(x[k])
        worst = max(worst, rel)
        assert rel <= 1e-5, (x["step"], k, x[k], y[k])
assert abs(a[-1]["eval_lm_loss"] - b[-1]["eval_lm_loss"]) <= 1e-5 * a[-1]["eval_lm_loss"], (a[-1], b[-1])
print(f"train_mpi_cuda: pp2·dp2·ep2 on 4 emulated devices: losses within {worst:.2e} of the CPU layout's")
PY
"$diff_bin" "$work/cpu/weights.h5" "$work/cuda/weights.h5" 1e-5 || { echo "FAIL: the gathered weights differ"; exit 1; }
# Exact resume on devices: dp2·ep2 (ZeRO-1 moment shards on the devices) for 4 steps, and for 2
# steps then resumed to 4 from the checkpoint: the same losses and bitwise the same weights.
resume=(train --config "$config" --set data.path="$data" --set train.eval_every=0 --set train.eval_batches=0
  --set parallel.ep=2 --device cuda)
# shellcheck disable=SC2086
MLAMOE_SIMT_DEVICES=2 "$mpirun" -np 2 $flags "$mlamoe" "${resume[@]}" --set train.steps=4 --set train.run_dir="$work/straight" \
  >"$work/straight.out" 2>&1 || { cat "$work/straight.out"; echo "FAIL: the 4-step run"; exit 1; }
# shellcheck disable=SC2086
MLAMOE_SIMT_DEVICES=2 "$mpirun" -np 2 $flags "$mlamoe" "${resume[@]}" --set train.steps=2 --set train.checkpoint_every=2 \
  --set train.run_dir="$work/resumed" >"$work/resumed.out" 2>&1 || { cat "$work/resumed.out"; echo "FAIL: the 2-step run"; exit 1; }
# shellcheck disable=SC2086
MLAMOE_SIMT_DEVICES=2 "$mpirun" -np 2 $flags "$mlamoe" "${resume[@]}" --set train.steps=4 --resume "$work/resumed" \
  >>"$work/resumed.out" 2>&1 || { cat "$work/resumed.out"; echo "FAIL: the resumed run"; exit 1; }
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
a, b = ([json.loads(l)["loss"] for l in open(f"{w}/{d}/metrics.jsonl")] for d in ("straight", "resumed"))
assert a == b and len(a) == 4, ("the resumed run's losses differ from the straight run's", a, b)
PY
"$diff_bin" "$work/straight/weights.h5" "$work/resumed/weights.h5" 0 || { echo "FAIL: resumed weights differ"; exit 1; }
echo "train_mpi_cuda: refused 2 ranks on 1 device; the CUDA layout equals the CPU layout; resume on devices is exact"
