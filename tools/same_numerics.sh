#!/usr/bin/env bash
# same_numerics.sh REF_MLAMOE NEW_MLAMOE [WORKDIR]
# For refactorings that must not change numerics: trains configs/tiny.json for 6 steps with both
# binaries under one process (MTP on, 2 micro-batches, held-out loss) and under mpirun dp2·ep2,
# pp2 and pp2·dp2·ep2 (4 ranks), and requires the final checkpoints to be bitwise equal
# (checkpoint_diff, optimizer moments and correction biases included) and every logged loss,
# grad norm and expert count in metrics.jsonl / experts.jsonl to be identical.
# Needs build/ (checkpoint_diff, data/kjv.h5). Takes about 2 minutes on 2 cores.
set -euo pipefail
ref=$(realpath "$1") new=$(realpath "$2") work=${3:-/tmp/same_numerics}
root=$(cd "$(dirname "$0")/.." && pwd)
diff_bin=$root/build/tests/train/checkpoint_diff data=$root/build/data/kjv.h5
rm -rf "$work" && mkdir -p "$work"
common=(--config "$root/configs/tiny.json" --set data.path="$data" --set data.seq_len=32 --set train.steps=6
        --set train.checkpoint_every=6 --set train.eval_every=3 --set train.eval_batches=2
        --set train.peak_gflops=100 --set train.log_every=1000)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { mpirun -np "$1" --oversubscribe --bind-to none "${@:2}"; }
layouts=("one|1|--set parallel.micro_batches=2" "dp2ep2|2|--set parallel.ep=2" "pp2|2|--set parallel.pp=2"
         "pp2dp2ep2|4|--set parallel.pp=2 --set parallel.ep=2")
for entry in "${layouts[@]}"; do
  IFS='|' read -r name np extra <<<"$entry"
  for side in ref new; do
    bin=$ref; [ "$side" = new ] && bin=$new
    # shellcheck disable=SC2086  # extra is a list of flags
    mpi "$np" "$bin" train "${common[@]}" $extra --set train.run_dir="$work/$name-$side" >"$work/$name-$side.out" 2>&1 ||
      { cat "$work/$name-$side.out"; echo "FAIL: $name ($side) did not train"; exit 1; }
  done
  "$diff_bin" "$work/$name-ref/checkpoints/step-00000006.h5" "$work/$name-new/checkpoints/step-00000006.h5" >/dev/null ||
    { echo "FAIL: $name: checkpoints differ"; "$diff_bin" "$work/$name-ref/checkpoints/step-00000006.h5" "$work/$name-new/checkpoints/step-00000006.h5" || true; exit 1; }
  python3 - "$work/$name-ref" "$work/$name-new" <<'PY'
import json, sys
timing = {"tokens_per_s", "mfu", "tflops", "device_time_s", "step_time_s", "elapsed_s", "time", "wall_s", "eta_s", "peak_rss_bytes", "comm_bytes"}
def load(path):
    out = []
    for line in open(path):
        rec = json.loads(line)
        out.append({k: v for k, v in rec.items() if k not in timing and not k.endswith("_s") and "time" not in k})
    return out
for f in ("metrics.jsonl", "experts.jsonl"):
    a, b = load(f"{sys.argv[1]}/{f}"), load(f"{sys.argv[2]}/{f}")
    if a != b:
        for x, y in zip(a, b):
            if x != y:
                print(f"FAIL: {f} differs:\n  ref {x}\n  new {y}"); sys.exit(1)
        print(f"FAIL: {f}: {len(a)} vs {len(b)} lines"); sys.exit(1)
PY
  echo "same_numerics: $name bitwise equal (checkpoint, metrics.jsonl, experts.jsonl)"
done
