#!/usr/bin/env bash
# loss_norm_run.sh MPIRUN "FLAGS" MLAMOE CHECKPOINT_DIFF DATADIR CONFIG WORKDIR: the loss of a
# loss-masked (SFT) global batch is the token mean over the whole batch, whatever its split.
#
# 1. data/ga_lossmask: a DeepSeek-V3-style tiny HF model and one global batch of two 12-token
#    windows holding 2 and 10 targets ("unequal") or 0 and 10 ("zero_in_one"). One step from the
#    imported weights under micro_batches 1, 2 and `mpirun -np 2` must log the values computed
#    independently in f64 (lm 4.252523282 and mtp 5.121319408; lm 4.246730689) and give the same
#    weights (f32: within 1e-5 of each tensor's max: Adam's first step turns f32
#    rounding of near-zero gradients into ~1e-6; the old per-micro-batch mean moved them 5e-3).
# 2. Byte-level SFT data made here, prompts of many lengths at seq_len 16, so that windows hold
#    0 to 16 targets and some steps none: every step's losses, the held-out loss and the skipped
#    steps agree across micro_batches 1, 2 and dp2 (f32, 1e-5); no loss of 0 or NaN is logged; a
#    run without held-out data prints no held-out loss; `data prepare` and `train` warn with the
#    share of windows without targets, and data without any target is refused.
set -euo pipefail
mpirun=$1 flags=$2 mlamoe=$3 diff=$4 data=$5 config=$6 work=$7
rm -rf "$work"
mkdir -p "$work"
# shellcheck disable=SC2086  # flags is a list
np2() { "$mpirun" -np 2 $flags "$@"; }

"$mlamoe" convert --from-hf "$data/hf" --to "$work/init.h5" >/dev/null
for case in unequal zero_in_one; do
  run=(--config "$data/run.json" --init-from "$work/init.h5" --set data.path="$data/$case.h5")
  "$mlamoe" train "${run[@]}" --set train.run_dir="$work/$case-mb1" >/dev/null 2>&1
  "$mlamoe" train "${run[@]}" --set parallel.micro_batches=2 --set train.run_dir="$work/$case-mb2" >/dev/null 2>&1
  np2 "$mlamoe" train "${run[@]}" --set train.run_dir="$work/$case-dp2" >/dev/null 2>&1
  for layout in mb2 dp2; do "$diff" "$work/$case-mb1/weights.h5" "$work/$case-$layout/weights.h5" 1e-5 | tail -1; done
done
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
expected = {"unequal": {"lm_loss": 4.252523282, "mtp_loss": 5.121319408}, "zero_in_one": {"lm_loss": 4.246730689}}
for case, values in expected.items():
    for layout in ("mb1", "mb2", "dp2"):
        (m,) = [json.loads(l) for l in open(f"{w}/{case}-{layout}/metrics.jsonl")]
        for k, v in values.items():
            assert abs(m[k] - v) <= 1e-6 * v, (case, layout, k, m[k], v)
        print(f"{case} {layout}: lm {m['lm_loss']:.9f} mtp {m['mtp_loss']:.9f}")
PY

# 2. Conversations whose prompts run from 0 to 60 bytes: at seq_len 16 many windows are prompt only.
/usr/bin/python3 - "$work/chat.jsonl" <<'PY'
import json, random, sys
r = random.Random(5)
with open(sys.argv[1], "w") as f:
    for i in range(160):
        prompt = "".join(r.choice("abcdefgh ") for _ in range(r.choice([0, 3, 20, 40, 60])))
        f.write(json.dumps({"prompt": prompt, "response": "ok %d" % (i % 7)}) + "\n")
PY
"$mlamoe" data prepare --input "$work/chat.jsonl" --output "$work/chat.h5" --seq-len 16 2>"$work/prepare.err" >/dev/null
grep -q "warning: .*% of the windows .* hold no target token at seq_len 16" "$work/prepare.err" ||
  { echo "FAIL: data prepare did not warn about windows without targets:"; cat "$work/prepare.err"; exit 1; }
common=(--config "$config" --set data.path="$work/chat.h5" --set data.seq_len=16 --set train.global_batch=4
        --set train.steps=12 --set train.eval_every=4 --set train.eval_batches=2 --set data.eval_fraction=0.2
        --set train.peak_gflops=100)
"$mlamoe" train "${common[@]}" --set train.run_dir="$work/chat-mb1" >"$work/chat-mb1.out" 2>"$work/chat-mb1.err"
grep -q "warning: .*% of the training windows .* hold no target token at seq_len 16" "$work/chat-mb1.err" ||
  { echo "FAIL: train did not warn about windows without targets"; exit 1; }
"$mlamoe" train "${common[@]}" --set parallel.micro_batches=2 --set train.run_dir="$work/chat-mb2" >/dev/null 2>&1
np2 "$mlamoe" train "${common[@]}" --set train.run_dir="$work/chat-dp2" >/dev/null 2>&1
/usr/bin/python3 - "$work" <<'PY'
import json, math, sys
w = sys.argv[1]
runs = {k: [json.loads(l) for l in open(f"{w}/chat-{k}/metrics.jsonl")] for k in ("mb1", "mb2", "dp2")}
ref = runs["mb1"]
skipped = [m["step"] for m in ref if m.get("skipped")]
evals = [m for m in ref if "eval_lm_loss" in m]
assert skipped and len(skipped) < len(ref), f"the data should leave some but not all steps without targets: {skipped}"
assert len(evals) == 3, f"held-out loss at steps 4, 8, 12 expected: {[m['step'] for m in evals]}"
for name, ms in runs.items():
    assert len(ms) == len(ref), name
    for a, b in zip(ref, ms):
        assert a.get("skipped", False) == b.get("skipped", False), (name, a["step"])
        for k in ("loss", "lm_loss", "mtp_loss", "eval_lm_loss"):
            if k in a:
                v = a[k]
                assert v is not None and math.isfinite(v) and v > 0, (name, a["step"], k, v)
                assert abs(b[k] - v) <= 1e-5 * v, (name, a["step"], k, b[k], v)
print(f"chat: {len(ref)} steps, skipped without targets {skipped}, held-out lm {evals[-1]['eval_lm_loss']:.6f}, "
      "equal under micro_batches 1, 2 and dp2")
PY
grep -q "SKIPPED: no target token in the global batch" "$work/chat-mb1.out" || { echo "FAIL: no skip line on stdout"; exit 1; }

# No held-out part: the final line names no held-out loss (it used to print "nan").
"$mlamoe" train "${common[@]}" --set data.eval_fraction=0 --set train.steps=2 --set train.run_dir="$work/no-eval" >"$work/no-eval.out" 2>&1
if grep -q "held-out" "$work/no-eval.out"; then echo "FAIL: a held-out loss was printed without held-out data"; exit 1; fi

# Data whose training part holds no target (one long prompt; the response falls in the held-out
# tail): refused at start, naming the file and the reason.
/usr/bin/python3 -c "
import json
open('$work/long.jsonl', 'w').write(json.dumps({'prompt': 'p' * 200, 'response': 'r'}) + '\n')"
"$mlamoe" data prepare --input "$work/long.jsonl" --output "$work/long.h5" >/dev/null 2>&1
if "$mlamoe" train "${common[@]}" --set data.path="$work/long.h5" --set data.seq_len=8 --set data.eval_fraction=0.2 \
   --set train.run_dir="$work/long" >"$work/long.out" 2>&1; then
  echo "FAIL: training on data without targets was accepted"; exit 1
fi
grep -q "none of its .* training windows of seq_len 8 holds a target token" "$work/long.out" ||
  { echo "FAIL: unclear refusal:"; cat "$work/long.out"; exit 1; }
echo "loss_norm_run: ok"
