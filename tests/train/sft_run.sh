#!/usr/bin/env bash
# sft_run.sh MLAMOE CHECKPOINT_DIFF CONFIG CORPUS.txt WORKDIR: the fine-tuning path end to end.
# Instruction data (verse completions made from the default corpus, JSONL) is prepared with a loss
# mask; a short pretraining run's weights are loaded with --init-from into a model without MTP.
#   run A freezes the embedding and head: the response loss must fall, and they must stay exactly
#         the pretrained ones;
#   run B trains only the experts: attention must stay exactly as pretrained, the experts must move.
set -euo pipefail
mlamoe=$1 diff=$2 config=$3 corpus=$4 work=$5
rm -rf "$work"
mkdir -p "$work"
/usr/bin/python3 - "$corpus" "$work/verses.jsonl" <<'PY'
import json, sys
lines = [l.strip() for l in open(sys.argv[1], encoding="utf-8") if len(l.split()) >= 8][:3000]
with open(sys.argv[2], "w") as f:
    for l in lines:
        w = l.split()
        half = len(w) // 2
        f.write(json.dumps({"prompt": "Continue the verse: " + " ".join(w[:half]), "response": " ".join(w[half:])}) + "\n")
PY
"$mlamoe" data prepare --input "$work/verses.jsonl" --output "$work/sft.h5"
"$mlamoe" data prepare --input "$corpus" --output "$work/pre.h5"
common=(--config "$config" --set train.eval_batches=2 --set train.peak_gflops=100 --set data.seq_len=64)
"$mlamoe" train "${common[@]}" --set data.path="$work/pre.h5" --set train.steps=30 --set train.run_dir="$work/pre" >/dev/null
sft=(--set data.path="$work/sft.h5" --set train.steps=30 --set train.warmup_steps=5 --set train.lr=3e-3 --set num_nextn_predict_layers=0
     --init-from "$work/pre/weights.h5")
"$mlamoe" train "${common[@]}" "${sft[@]}" --set 'train.freeze=["model.embed_tokens","lm_head"]' --set train.run_dir="$work/a" | tail -1
/usr/bin/python3 - "$work/a/metrics.jsonl" <<'PY'
import json, sys
m = [json.loads(l) for l in open(sys.argv[1])]
first, last = sum(x["lm_loss"] for x in m[:3]) / 3, sum(x["lm_loss"] for x in m[-3:]) / 3
print(f"sft: response-only lm loss {first:.3f} -> {last:.3f} over {len(m)} steps (mean of 3)")
assert m[0]["mtp_loss"] == 0, "MTP is off"
assert last < first - 0.08, "fine-tuning should lower the response loss"
PY
"$diff" "$work/pre/weights.h5" "$work/a/weights.h5" --only embed_tokens
"$diff" "$work/pre/weights.h5" "$work/a/weights.h5" --only lm_head
"$mlamoe" train "${common[@]}" "${sft[@]}" --set train.steps=10 --set 'train.train_only=[".mlp.experts."]' --set train.run_dir="$work/b" >/dev/null
"$diff" "$work/pre/weights.h5" "$work/b/weights.h5" --only self_attn
if "$diff" "$work/pre/weights.h5" "$work/b/weights.h5" --only .mlp.experts. >/dev/null; then
  echo "FAIL: the experts did not train"; exit 1
fi
echo "sft_run: ok"
