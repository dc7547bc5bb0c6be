#!/usr/bin/env bash
# threads_bitwise.sh MLAMOE CHECKPOINT_DIFF CONFIG DATA.h5 WORKDIR [--set k=v ...]: mlamoe's results do not depend
# on the thread count (every parallel kernel cuts its work by shape, never by thread; see
# model/ops/gemm.h). The same short run (MTP on, 2 micro-batches, a held-out evaluation) on 1 and
# on 3 OpenMP threads must write bitwise-equal checkpoints (weights, AdamW moments, correction
# biases) and identical losses and expert counts. 3 threads, not 2: uneven shares of tiles and
# chunks are where a kernel that split work by thread would show.
set -euo pipefail
mlamoe=$1 diff_bin=$2 config=$3 data=$4 work=$5
shift 5
extra=("$@")  # more overrides for both runs (threads_bitwise_bf16: train.precision=bf16)
rm -rf "$work" && mkdir -p "$work"
for threads in 1 3; do
  OMP_NUM_THREADS=$threads "$mlamoe" train --config "$config" --set data.path="$data" --set data.seq_len=64 \
    --set train.steps=4 --set train.checkpoint_every=4 --set train.eval_every=2 --set train.eval_batches=2 \
    --set parallel.micro_batches=2 --set train.peak_gflops=100 --set train.run_dir="$work/t$threads" ${extra[@]+"${extra[@]}"} \
    >"$work/t$threads.out" 2>&1 ||
    { cat "$work/t$threads.out"; echo "FAIL: the run on $threads threads did not train"; exit 1; }
done
"$diff_bin" "$work/t1/checkpoints/step-00000004.h5" "$work/t3/checkpoints/step-00000004.h5" ||
  { echo "FAIL: checkpoints on 1 and 3 threads differ"; exit 1; }
python3 - "$work/t1" "$work/t3" <<'PY'
import json, sys
timing = {"tokens_per_s", "mfu", "tflops", "peak_rss_bytes", "comm_bytes"}  # and every *_s and *time* field
def load(path):
    return [{k: v for k, v in json.loads(line).items() if k not in timing and not k.endswith("_s") and "time" not in k}
            for line in open(path)]
for f in ("metrics.jsonl", "experts.jsonl"):
    a, b = load(f"{sys.argv[1]}/{f}"), load(f"{sys.argv[2]}/{f}")
    for x, y in zip(a, b):
        if x != y:
            sys.exit(f"FAIL: {f} differs between 1 and 3 threads:\n  1: {x}\n  3: {y}")
    if len(a) != len(b) or not a:
        sys.exit(f"FAIL: {f} has {len(a)} lines on 1 thread, {len(b)} on 3")
PY
echo "threads_bitwise: 1 and 3 threads bitwise equal (checkpoint, metrics.jsonl, experts.jsonl)"
