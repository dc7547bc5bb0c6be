#!/usr/bin/env bash
# resume_kill.sh MLAMOE CHECKPOINT_DIFF CONFIG DATA WORKDIR: kill -9 a training job at 20 moments
# and resume it each time; the result must be bit-identical to the uninterrupted run.
#
# The job checkpoints every step (keeping 2). Kills come at random times (SIGKILL from `timeout`),
# and every 4th one inside a checkpoint write (MLAMOE_FAULT=kill@0:S:checkpoint), so unfinished
# .tmp files are left behind; a resume must never pick one up. At the end: the final weights and
# the final checkpoint (weights, biases, AdamW moments, progress) equal the uninterrupted run's
# bit for bit, and metrics.jsonl has exactly one line per step with the same losses.
set -uo pipefail
mlamoe=$1 diff=$2 config=$3 data=$4 work=$5
steps=120  # long enough that 20 attempts of at most ~1 s never finish the job (>= 15 must be killed)
rm -rf "$work"
mkdir -p "$work"
common=(--config "$config" --set data.path="$data" --set data.seq_len=32 --set train.steps=$steps --set train.checkpoint_every=1
        --set train.keep_checkpoints=2 --set train.eval_batches=0 --set train.peak_gflops=100 --set train.log_every=1000)
"$mlamoe" train "${common[@]}" --set train.run_dir="$work/ref" >/dev/null || { echo "FAIL: reference run"; exit 1; }

run="$work/run"
RANDOM=7
kills=0 in_checkpoint=0
for i in $(seq 1 20); do
  latest=$(ls "$run"/checkpoints/step-*.h5 2>/dev/null | sort | tail -1)
  if [ -z "$latest" ]; then
    rm -rf "$run"
    start=(--set train.run_dir="$run")
    done_steps=0
  else
    start=(--resume "$run")
    done_steps=$(basename "$latest" .h5 | sed 's/step-0*//')
  fi
  [ "$done_steps" -ge "$steps" ] && break
  if [ $((i % 4)) -eq 0 ]; then
    # inside the write of the checkpoint two steps ahead
    MLAMOE_FAULT="kill@0:$((done_steps + 2)):checkpoint" "$mlamoe" train "${common[@]}" "${start[@]}" >/dev/null 2>&1
    rc=$?
    in_checkpoint=$((in_checkpoint + 1))
  else
    delay=$(printf '0.%02d' $((RANDOM % 80 + 15)))
    timeout -s KILL "$delay" "$mlamoe" train "${common[@]}" "${start[@]}" >/dev/null 2>&1
    rc=$?
  fi
  [ "$rc" -eq 137 ] && kills=$((kills + 1))
  [ "$rc" -ne 137 ] && [ "$rc" -ne 0 ] && { echo "FAIL: attempt $i exited $rc"; "$mlamoe" train "${common[@]}" "${start[@]}"; exit 1; }
done
tmp_left=$(ls "$run"/checkpoints/*.tmp 2>/dev/null | wc -l)
"$mlamoe" train "${common[@]}" --resume "$run" >/dev/null || { echo "FAIL: final resume"; exit 1; }
echo "resume_kill: $kills kills ($in_checkpoint inside a checkpoint write), unfinished .tmp files seen: $tmp_left"
[ "$kills" -ge 15 ] || { echo "FAIL: only $kills attempts were killed (the job ran to the end too soon)"; exit 1; }
"$diff" "$work/ref/weights.h5" "$run/weights.h5" || exit 1
"$diff" "$work/ref/checkpoints/step-$(printf '%08d' $steps).h5" "$run/checkpoints/step-$(printf '%08d' $steps).h5" || exit 1
/usr/bin/python3 - "$work" "$steps" <<'PY'
import json, sys
w, steps = sys.argv[1], int(sys.argv[2])
a = [json.loads(l) for l in open(w + "/ref/metrics.jsonl")]
b = [json.loads(l) for l in open(w + "/run/metrics.jsonl")]
assert [x["step"] for x in b] == list(range(1, steps + 1)), "metrics.jsonl must have one line per step"
assert all(x["loss"] == y["loss"] for x, y in zip(a, b)), "losses differ from the uninterrupted run"
print("resume_kill: metrics.jsonl has one line per step, losses identical")
PY

# A kill inside an HDF5 write can leave experts.h5 unreadable (as seen here under load): a resume
# keeps the damaged file aside, warns, and restarts the expert log instead of refusing to resume.
head -c 100 "$run/experts.h5" >"$work/cut.h5" && mv "$work/cut.h5" "$run/experts.h5"
"$mlamoe" train "${common[@]}" --set train.steps=$((steps + 2)) --resume "$run" >/dev/null 2>"$work/err" ||
  { echo "FAIL: resume with a damaged experts.h5: $(cat "$work/err")"; exit 1; }
grep -q "left unreadable by an interrupted write" "$work/err" || { echo "FAIL: no warning: $(cat "$work/err")"; exit 1; }
[ -e "$run/experts.h5.unreadable-1" ] && [ -e "$run/experts.h5" ] || { echo "FAIL: damaged experts.h5 not kept aside"; exit 1; }
echo "resume_kill: a damaged experts.h5 is kept aside and the log restarts"

