#!/usr/bin/env bash
# bf16_train.sh MLAMOE CHECKPOINT_DIFF CONFIG DATA.h5 WORKDIR: train.precision=bf16 (the dense
# projections' GEMMs in bf16, model/README.md §6) against f32 on the same 80 steps of tiny.json:
#   - the final training loss and the held-out loss agree within 3% (bf16 rounding, not a bug:
#     the 600-step run is recorded in bench/README.md);
#   - the checkpoints differ (the mode is really on);
#   - bf16 with train.recompute=true writes a bitwise-equal checkpoint (the recomputed forward
#     rounds as the first did).
set -euo pipefail
mlamoe=$1 diff_bin=$2 config=$3 data=$4 work=$5
rm -rf "$work" && mkdir -p "$work"
run() {  # name, then overrides
  local name=$1
  shift
  "$mlamoe" train --config "$config" --set data.path="$data" --set data.seq_len=64 --set train.steps=80 \
    --set train.warmup_steps=10 --set train.eval_every=0 --set train.eval_batches=4 --set train.peak_gflops=100 \
    --set train.log_every=1000 --set train.run_dir="$work/$name" "$@" >"$work/$name.out" 2>&1 ||
    { cat "$work/$name.out"; echo "FAIL: the $name run did not train"; exit 1; }
}
run f32 --set train.precision=f32
run bf16 --set train.precision=bf16
run bf16_recompute --set train.precision=bf16 --set train.recompute=true
grep -q "bf16 projections" "$work/bf16.out" || { echo "FAIL: the bf16 run does not say it is in bf16"; exit 1; }
if "$diff_bin" "$work/f32/weights.h5" "$work/bf16/weights.h5" >/dev/null 2>&1; then
  echo "FAIL: the bf16 run's weights equal the f32 run's: bf16 was not on"
  exit 1
fi
"$diff_bin" "$work/bf16/weights.h5" "$work/bf16_recompute/weights.h5" ||
  { echo "FAIL: bf16 with recompute differs from bf16 without"; exit 1; }
python3 - "$work/f32/metrics.jsonl" "$work/bf16/metrics.jsonl" <<'PY'
import json, sys
last = [json.loads(open(p).read().splitlines()[-1]) for p in sys.argv[1:]]
for key in ("lm_loss", "eval_lm_loss"):
    a, b = last[0][key], last[1][key]
    rel = abs(b - a) / a
    print(f"{key}: f32 {a:.4f}  bf16 {b:.4f}  relative difference {rel:.4f}")
    if not rel < 0.03:
        sys.exit(f"FAIL: bf16 {key} {b:.4f} is not within 3% of f32's {a:.4f}")
PY
echo "bf16_train: bf16 within 3% of f32, differs from it, and recompute is bitwise equal"
