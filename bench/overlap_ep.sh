#!/usr/bin/env bash
# What the expert all-to-all overlap hides: tiny.json as dp 2 · ep 2 on 2 processes (one OpenMP
# thread each), run with the exchange overlapped (parallel.overlap_moe_expert_parallel_comm=true,
# the default) and in line (false), alternately ROUNDS times, each with --profile. Prints, per run,
# the ep group's exposed wait per step (the host's: MPI), every group's total, and the mean step
# time of steps 6..STEPS (the first 5 warm up), then the mean of each setting.
#
#   bench/overlap_ep.sh [STEPS] [ROUNDS] [mlamoe train flags...]   (default 30 and 3; needs build/
#   and build/data/kjv.h5). On a GPU node: bench/overlap_ep.sh 30 3 --device cuda (the ep row's
#   wait is then the device's: NCCL).
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-30} rounds=${2:-3}
shift $(( $# < 2 ? $# : 2 ))
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
common=(--config configs/tiny.json --set data.path=build/data/kjv.h5 --set train.steps="$steps" --set train.eval_batches=0
        --set train.log_every=1000 --set train.peak_gflops=100 --set parallel.ep=2 --profile)
root=(); [ "$(id -u)" -eq 0 ] && root=(--allow-run-as-root)
for i in $(seq "$rounds"); do
  for overlap in true false; do
    OMP_NUM_THREADS=1 mpirun -np 2 "${root[@]}" -x OMP_NUM_THREADS=1 --bind-to core build/mlamoe train "${common[@]}" \
      --set parallel.overlap_moe_expert_parallel_comm="$overlap" --set train.run_dir="$work/$overlap-$i" "$@" \
      >"$work/$overlap-$i.out"
  done
done
/usr/bin/python3 - "$work" "$rounds" <<'PY'
import json, re, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def read(run):
    text = open(f"{w}/{run}.out").read()
    ep = re.search(r"^  ep +[0-9.]+ +\S+ +([0-9.]+) \[[0-9.]+\] +([0-9.]+) \[", text, re.M)
    total = re.search(r"exposed in all: ([0-9.]+) ms per step", text)
    m = [json.loads(l) for l in open(f"{w}/{run}/metrics.jsonl")]
    step = sum(x["step_time_s"] for x in m[5:]) / len(m[5:]) * 1e3
    return float(ep.group(1)) + float(ep.group(2)), float(total.group(1)), step, m[-1]["loss"]
print("tiny.json, dp 2 · ep 2, 2 processes x 1 thread; ms per step (exposed: host + device waits, mean of the 2 ranks)")
print(f"  {'run':<14} {'ep exposed':>11} {'all exposed':>12} {'step':>9} {'last loss':>10}")
sums = {}
for i in range(1, rounds + 1):
    for overlap in ("true", "false"):
        ep, total, step, loss = read(f"{overlap}-{i}")
        s = sums.setdefault(overlap, [0, 0, 0])
        s[0] += ep; s[1] += total; s[2] += step
        print(f"  {('overlap' if overlap == 'true' else 'in line') + ' ' + str(i):<14} {ep:11.3f} {total:12.3f} {step:9.2f} {loss:10.4f}")
for overlap, s in sums.items():
    print(f"  {('overlap' if overlap == 'true' else 'in line') + ' mean':<14} {s[0]/rounds:11.3f} {s[1]/rounds:12.3f} {s[2]/rounds:9.2f}")
PY
