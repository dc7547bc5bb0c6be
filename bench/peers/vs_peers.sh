#!/usr/bin/env bash
# mlamoe against the trainers its users would otherwise pick, side by side in one run:
#   bench/peers/vs_peers.sh CONFIG [THREADS] [STEPS] [ROUNDS]     (defaults 2 threads, 20 steps, 3 rounds)
# Systems, each training CONFIG's shapes in f32 with AdamW + clipping on byte tokens of the default
# corpus (build/data/kjv.h5 for mlamoe, the same bytes from build/data/kjv.txt for the peers):
#   mlamoe (MTP off)   num_nextn_predict_layers=0: the equal-work pairing for the peers
#   mlamoe (shipped)   the config as shipped (MTP on where it has it): more work per token
#   HF                 transformers' DeepseekV3ForCausalLM, SDPA attention (it has no MTP)
#   titan, titan+compile  torchtitan's DeepSeek-V3 model, eager and under torch.compile
# (bench/peers/peer_train.py says what each peer runs and the two CPU stand-ins torchtitan needs.)
# The systems run interleaved, round after round, so a slow stretch of a shared machine hits all of
# them; the script does not start while the 1-minute load average is above LOAD_MAX (default
# 0.3; it waits up to LOAD_WAIT_S for it) and reports the load after each round. Figures: the median tokens/s over rounds (steps
# after the first 3), MFU against the best sgemm rate measured in this run (mlamoe's start-up
# measurement: the best of many 1024³ products on THREADS threads), peak RSS (GNU time).
# PRECISION (default f32) lists the precisions to run, e.g. PRECISION="f32 bf16" for both side by
# side in the same rounds; bf16 is mixed precision: mlamoe with train.precision = "bf16", the peers
# under torch.autocast("cpu", dtype=torch.bfloat16), MFU against mlamoe's measured bf16 GEMM rate. Set up the peers first: bench/peers/setup.sh. A benchmark run by hand; record results with the
# date, machine, commit and command in bench/README.md.
set -euo pipefail
cd "$(dirname "$0")/../.."
config=$1 threads=${2:-2} steps=${3:-20} rounds=${4:-3}
venv=${VENV:-build-peers/venv}
load_max=${LOAD_MAX:-0.3}
precisions=${PRECISION:-f32}
[ -x build/mlamoe ] || { echo "vs_peers: build/mlamoe missing: run tools/setup.sh"; exit 1; }
[ -x "$venv/bin/python" ] || { echo "vs_peers: no peers in $venv: run bench/peers/setup.sh"; exit 1; }
# A quiet machine: wait up to LOAD_WAIT_S (default 300) seconds for the 1-minute load to fall
# below LOAD_MAX (a previous run's own load takes about two minutes to decay), else refuse.
waited=0
while load=$(cut -d' ' -f1 /proc/loadavg) && awk -v l="$load" -v m="$load_max" 'BEGIN{exit !(l > m)}'; do
  if [ "$waited" -ge "${LOAD_WAIT_S:-300}" ]; then
    echo "vs_peers: the machine is busy (1-minute load $load > LOAD_MAX $load_max after ${waited} s): not timing"; exit 1
  fi
  sleep 10; waited=$((waited + 10))
done
# shellcheck source=bench/peers/env.sh
. bench/peers/env.sh "$venv"
export OMP_NUM_THREADS=$threads
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flops() { build/mlamoe train --config "$config" --dry-run "$@" | sed -n 's/^training FLOPs per token[^:]*: \([0-9.e+]*\).*/\1/p'; }
flops_off=$(flops --set num_nextn_predict_layers=0)
flops_on=$(flops)
systems=(mlamoe_off mlamoe_on hf titan titan-compile)
for r in $(seq 1 "$rounds"); do
  for prec in $precisions; do
    for s in "${systems[@]}"; do
      out=$work/$s.$prec.$r
      case $s in
        mlamoe_off|mlamoe_on)
          extra=(); [ "$s" = mlamoe_off ] && extra=(--set num_nextn_predict_layers=0)
          /usr/bin/time -v build/mlamoe train --config "$config" "${extra[@]}" --set data.path=build/data/kjv.h5 \
            --set train.steps="$steps" --set train.eval_batches=0 --set train.peak_gflops=measure --set train.log_every=100000 \
            --set train.precision="$prec" --set train.run_dir="$out.run" >"$out.out" 2>"$out.time" ;;
        *)
          /usr/bin/time -v "$venv/bin/python" bench/peers/peer_train.py "$s" "$config" build/data/kjv.txt "$steps" "$threads" "$prec" \
            >"$out.out" 2>"$out.time" || { tail -5 "$out.time"; echo "vs_peers: $s ($prec) failed"; exit 1; } ;;
      esac
    done
  done
  echo "vs_peers: round $r of $rounds done (1-minute load $(cut -d' ' -f1 /proc/loadavg))"
done
"$venv/bin/python" - "$work" "$config" "$threads" "$rounds" "$flops_off" "$flops_on" "$precisions" "${systems[@]}" <<'PY'
import json, re, statistics, sys
work, config, threads, rounds, f_off, f_on = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6])
precisions, systems = sys.argv[7].split(), sys.argv[8:]
def rss(path):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read()).group(1)) / 1024
rows = {}  # (system, precision) -> (name, median, min, max, peak RSS)
for prec in precisions:
    peak = 0.0
    for s in systems:
        tps, mem, name = [], [], s
        for r in range(1, rounds + 1):
            base = f"{work}/{s}.{prec}.{r}"
            mem.append(rss(base + ".time"))
            if s.startswith("mlamoe"):
                peak = max(peak, float(re.search(r"peak ([0-9.]+) GFLOP/s", open(base + ".out").read()).group(1)))
                m = [json.loads(l) for l in open(base + ".run/metrics.jsonl")][3:]
                tps.append(sum(x["tokens_per_s"] * x["step_time_s"] for x in m) / sum(x["step_time_s"] for x in m))
                name = "mlamoe, MTP off (equal work)" if s == "mlamoe_off" else "mlamoe as shipped (MTP on)"
            else:
                line = json.loads(open(base + ".out").read().strip().splitlines()[-1])
                tps.append(line["tokens_per_s"])
                name = line["name"]
        rows[s, prec] = (name, statistics.median(tps), min(tps), max(tps), max(mem))
    gemm = "bf16 GEMM" if prec == "bf16" else "sgemm"
    print(f"{config}, {threads} thread(s), {rounds} interleaved rounds, {prec}; best measured {gemm} {peak:.1f} GFLOP/s "
          f"(MFU denominator); FLOPs/token {f_off:.4g} without MTP, {f_on:.4g} as shipped")
    print(f"  {'system':<80} {'tokens/s (median, min-max)':>28} {'MFU':>6} {'peak RSS':>9}")
    for s in systems:
        name, med, lo, hi, mem = rows[s, prec]
        f = f_on if s == "mlamoe_on" else f_off
        print(f"  {name:<80} {med:10.0f} ({lo:7.0f}-{hi:7.0f}) {100 * med * f / (peak * 1e9):5.1f}% {mem:7.0f} MB")
    peers = [s for s in systems if not s.startswith("mlamoe")]
    best = max(peers, key=lambda s: rows[s, prec][1])
    print(f"  mlamoe (MTP off) / best peer ({rows[best, prec][0]}): {rows['mlamoe_off', prec][1] / rows[best, prec][1]:.2f}x "
          f"tokens/s, {rows['mlamoe_off', prec][4] / rows[best, prec][4]:.2f}x peak RSS")
if "f32" in precisions and "bf16" in precisions:
    print("bf16 / f32, same system, same run:")
    for s in systems:
        a, b = rows[s, "bf16"], rows[s, "f32"]
        print(f"  {a[0]:<80} {a[1] / b[1]:.2f}x tokens/s, {a[4] / b[4]:.2f}x peak RSS")
PY
