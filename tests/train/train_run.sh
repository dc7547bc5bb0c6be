#!/usr/bin/env bash
# train_run.sh MLAMOE CONFIG DATA.h5 WORKDIR: a short run of the main job and the checks a user
# relies on: the loss falls, metrics.jsonl and experts.jsonl have a line per step, the same run
# directory is refused the second time (nothing overwritten), `generate --verify` from the
# written weights decodes with the absorbed cache exactly as the full forward does, and bad
# checkpoint input (a config that does not match, nothing to resume, a cut file) is one error line.
set -euo pipefail
mlamoe=$1 config=$2 data=$3 work=$4
rm -rf "$work"
run="$work/run"
"$mlamoe" train --config "$config" --set data.path="$data" --set train.run_dir="$run" \
  --set train.steps=40 --set train.warmup_steps=10 --set train.eval_every=20 --set train.eval_batches=2 --set train.tensorboard=true
for f in config.json metrics.jsonl experts.jsonl weights.h5; do
  [ -s "$run/$f" ] || { echo "FAIL: $run/$f missing"; exit 1; }
done
[ "$(wc -l <"$run/metrics.jsonl")" -eq 40 ] || { echo "FAIL: metrics.jsonl should have 40 lines"; exit 1; }
[ "$(wc -l <"$run/experts.jsonl")" -eq 40 ] || { echo "FAIL: experts.jsonl should have 40 lines"; exit 1; }
/usr/bin/python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
m = [json.loads(l) for l in open(run + "/metrics.jsonl")]
first, last = m[0]["loss"], m[-1]["loss"]
print(f"loss {first:.3f} -> {last:.3f}, held-out lm {m[-1]['eval_lm_loss']:.3f}")
assert first > 7.5, "initial loss should be about 1.3 ln 512 = 8.1"
assert last < first - 3.0, "the loss should fall by more than 3 nats in 40 steps"
e = [json.loads(l) for l in open(run + "/experts.jsonl")]
assert len(e[0]["layers"]) == 4, "tiny.json has 3 MoE layers and one MTP MoE layer"
for layer in e[-1]["layers"]:
    assert len(layer["counts"]) == 16 and len(layer["bias"]) == 16
    assert layer["maxvio"] >= 0
assert sum(e[0]["layers"][0]["counts"]) == 16 * 128 * 4, "counts must sum to tokens x top-k"
PY
# TensorBoard event files, read back with TensorBoard's own reader when it is installed.
src=$(cd "$(dirname "$0")/../.." && pwd)
if /usr/bin/python3 -c "import tensorboard" 2>/dev/null; then
  /usr/bin/python3 "$src/tests/reference/read_tfevents.py" "$run" >"$work/tb.json"
  /usr/bin/python3 - "$work/tb.json" "$run/metrics.jsonl" <<'PY'
import json, sys
tb = json.load(open(sys.argv[1]))
m = [json.loads(l) for l in open(sys.argv[2])]
loss = tb["scalars"]["loss/total"]
assert [s for s, _ in loss] == list(range(1, 41)), "one loss/total point per step"
assert all(abs(v - x["loss"]) <= 1e-6 * abs(x["loss"]) for (_, v), x in zip(loss, m)), "TensorBoard losses equal metrics.jsonl"
hist = [t for t in tb["histograms"] if t.endswith("/load")]
assert len(hist) == 4, hist
print("train_run: TensorBoard reads 40 loss points equal to metrics.jsonl and 4 expert-load histograms")
PY
else
  echo "train_run: tensorboard not installed, event files not read back"
fi
if "$mlamoe" train --config "$config" --set data.path="$data" --set train.run_dir="$run" --set train.steps=1 2>"$work/err"; then
  echo "FAIL: a second run into the same directory was accepted"; exit 1
fi
grep -q "already holds a run" "$work/err" || { echo "FAIL: unexpected message: $(cat "$work/err")"; exit 1; }
"$mlamoe" generate --checkpoint "$run/weights.h5" --prompt "And God said" --tokens 40 --verify

# Checkpoint bad input: each one line naming the problem, exit 1, nothing written.
expect=$(dirname "$0")/expect_error.sh
"$expect" 1 "config field 'qk_rope_head_dim' is 32, checkpoint '.*weights.h5' was written with 16" -- \
  "$mlamoe" train --config "$config" --set data.path="$data" --set qk_rope_head_dim=32 --set train.run_dir="$work/never" \
  --init-from "$run/weights.h5"
# Fields compare as parsed: spelling out a default the checkpoint's config left implicit is the same model.
"$mlamoe" train --config "$config" --set data.path="$data" --set seq_aux=true --set train.steps=1 --set train.eval_batches=0 \
  --set train.run_dir="$work/same_model" --init-from "$run/weights.h5" >/dev/null
"$expect" 1 "--resume $work/empty: no complete checkpoint" -- "$mlamoe" train --config "$config" --set data.path="$data" --resume "$work/empty"
"$expect" 1 "--resume and --init-from exclude each other" -- "$mlamoe" train --config "$config" --resume a --init-from b
head -c 5000 "$run/weights.h5" >"$work/cut.h5"
"$expect" 1 "cut.h5" -- "$mlamoe" generate --checkpoint "$work/cut.h5" --prompt x
[ ! -e "$work/never" ] || { echo "FAIL: a refused run created its directory"; exit 1; }
echo "train_run: ok"
