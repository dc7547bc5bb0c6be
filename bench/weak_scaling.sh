#!/usr/bin/env bash
# Weak scaling of data parallelism: tiny.json with the same per-rank batch (8 sequences of 128
# tokens, one OpenMP thread per rank) on 1 and on 2 processes; prints tokens/s of each (mean of
# steps 6..STEPS from metrics.jsonl) and the efficiency tokens/s(2) / (2 × tokens/s(1)).
#
#   bench/weak_scaling.sh [STEPS]      (default 40; needs build/ and build/data/kjv.h5)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-40}
work=$(mktemp -d)
common=(--config configs/tiny.json --set data.path=build/data/kjv.h5 --set train.steps="$steps" --set train.eval_batches=0
        --set train.log_every=1000 --set train.peak_gflops=100)
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
OMP_NUM_THREADS=1 build/mlamoe train "${common[@]}" --set train.global_batch=8 --set train.run_dir="$work/np1" >/dev/null
OMP_NUM_THREADS=1 mpirun -np 2 "${root[@]}" -x OMP_NUM_THREADS=1 --bind-to core build/mlamoe train "${common[@]}" \
  --set train.global_batch=16 --set train.run_dir="$work/np2" >/dev/null
/usr/bin/python3 - "$work" <<'PY'
import json, sys
w = sys.argv[1]
def rate(run):  # tokens of steps 6.. over their summed step times (the first 5 warm up)
    m = [json.loads(l) for l in open(f"{w}/{run}/metrics.jsonl")]
    return (m[-1]["tokens"] - m[4]["tokens"]) / sum(x["step_time_s"] for x in m[5:])
r1, r2 = rate("np1"), rate("np2")
print(f"weak scaling, tiny.json, 8 x 128 tokens per rank and step, 1 thread per rank:")
print(f"  1 process : {r1:8.0f} tokens/s")
print(f"  2 processes: {r2:8.0f} tokens/s")
print(f"  efficiency tokens/s(2) / (2 x tokens/s(1)) = {r2 / (2 * r1):.3f}")
PY
rm -rf "$work"
