#!/usr/bin/env bash
# resume_reshard.sh MPIRUN "FLAGS" MLAMOE CHECKPOINT_DIFF CONFIG DATA WORKDIR
#   1. A pp2·dp2·ep2 job (4 ranks) is killed at step 6 after checkpointing step 4; resumed under
#      the same layout it ends bit-identical to the same layout's uninterrupted run.
#   2. The step-4 checkpoint written by pp2·dp2·ep2 is resumed by dp4·ep4, pp2, dp2·ep2 and one
#      process: all end within f32 tolerance (1e-4 of each tensor's max; seen ~1e-5) of the
#      one-process uninterrupted run, optimizer moments and correction biases included. A config
#      that does not match the checkpoint is one error line on 4 ranks, and nothing is written.
#   3. A NaN injected into one rank's gradients at step 3 is skipped by every rank and the run
#      goes on.
set -euo pipefail
mpirun=$1 flags=$2 mlamoe=$3 diff=$4 config=$5 data=$6 work=$7
rm -rf "$work"
mkdir -p "$work"
common=(--config "$config" --set data.path="$data" --set data.seq_len=32 --set train.steps=8 --set train.checkpoint_every=4
        --set train.eval_batches=0 --set train.peak_gflops=100 --set train.log_every=1000)
pp2ep2=(--set parallel.pp=2 --set parallel.ep=2)
# shellcheck disable=SC2086  # flags is a list
mpi() { "$mpirun" -np 4 $flags "$@"; }
"$mlamoe" train "${common[@]}" --set train.run_dir="$work/one" >/dev/null
mpi "$mlamoe" train "${common[@]}" "${pp2ep2[@]}" --set train.run_dir="$work/same_ref" >/dev/null
if MLAMOE_FAULT=kill@2:6 mpi "$mlamoe" train "${common[@]}" "${pp2ep2[@]}" --set train.run_dir="$work/killed" >/dev/null 2>&1; then
  echo "FAIL: the killed job exited 0"; exit 1
fi
[ -f "$work/killed/checkpoints/step-00000004.h5" ] || { echo "FAIL: no step-4 checkpoint"; exit 1; }
# Checkpoints are hard-linked (27 MB each, written once, never reopened for writing); the rest
# of the run directory (metrics, expert series: appended to on resume) is copied.
for target in to_ep4 to_one to_pp2 to_dp2ep2 bad_config; do
  mkdir "$work/$target"
  find "$work/killed" -mindepth 1 -maxdepth 1 ! -name checkpoints -exec cp -r {} "$work/$target/" \;
  cp -rl "$work/killed/checkpoints" "$work/$target/"
done
mpi "$mlamoe" train "${common[@]}" "${pp2ep2[@]}" --resume "$work/killed" >/dev/null
"$diff" "$work/same_ref/checkpoints/step-00000008.h5" "$work/killed/checkpoints/step-00000008.h5"
mpi "$mlamoe" train "${common[@]}" --set parallel.ep=4 --resume "$work/to_ep4" >/dev/null
"$diff" "$work/one/checkpoints/step-00000008.h5" "$work/to_ep4/checkpoints/step-00000008.h5" 1e-4
"$mlamoe" train "${common[@]}" --resume "$work/to_one" >/dev/null
"$diff" "$work/one/checkpoints/step-00000008.h5" "$work/to_one/checkpoints/step-00000008.h5" 1e-4
# shellcheck disable=SC2086
"$mpirun" -np 2 $flags "$mlamoe" train "${common[@]}" --set parallel.pp=2 --resume "$work/to_pp2" >/dev/null
"$diff" "$work/one/checkpoints/step-00000008.h5" "$work/to_pp2/checkpoints/step-00000008.h5" 1e-4
# shellcheck disable=SC2086
"$mpirun" -np 2 $flags "$mlamoe" train "${common[@]}" --set parallel.ep=2 --resume "$work/to_dp2ep2" >/dev/null
"$diff" "$work/one/checkpoints/step-00000008.h5" "$work/to_dp2ep2/checkpoints/step-00000008.h5" 1e-4
echo "resume_reshard: same layout bit-identical; pp2·dp2·ep2 -> dp4·ep4, pp2, dp2·ep2 and 1 process within 1e-4"

# A checkpoint that does not match the config: one line, every rank exits non-zero, nothing written.
before=$(ls -l "$work/bad_config/checkpoints")
if mpi "$mlamoe" train "${common[@]}" --set kv_lora_rank=48 --resume "$work/bad_config" >"$work/bad.out" 2>&1; then
  echo "FAIL: a mismatched resume was accepted"; exit 1
fi
[ "$(grep -c "mlamoe: error: config field 'kv_lora_rank' is 48" "$work/bad.out")" -eq 1 ] || { cat "$work/bad.out"; echo "FAIL: expected one error line"; exit 1; }
[ "$before" = "$(ls -l "$work/bad_config/checkpoints")" ] || { echo "FAIL: the refused resume touched the checkpoints"; exit 1; }
echo "resume_reshard: a mismatched config is refused with one line on 4 ranks"

MLAMOE_FAULT=nan@1:3 mpi "$mlamoe" train "${common[@]}" "${pp2ep2[@]}" --set train.run_dir="$work/nan" >/dev/null
/usr/bin/python3 - "$work/nan/metrics.jsonl" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
assert [x["step"] for x in m] == list(range(1, 9)), [x["step"] for x in m]
assert m[2].get("skipped") is True and "not finite" in m[2]["reason"], m[2]
assert all(not x.get("skipped") for i, x in enumerate(m) if i != 2)
print("resume_reshard: the injected NaN at step 3 was skipped on every rank; steps 4-8 trained")
PY
