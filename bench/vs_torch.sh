#!/usr/bin/env bash
# mlamoe against PyTorch on the same model, same machine, same threads, side by side:
#   bench/vs_torch.sh CONFIG [STEPS] [THREADS]     (defaults 20 steps, 2 threads)
# Both train CONFIG (its batch and seq_len) on byte tokens of the default corpus for STEPS steps
# with AdamW, clipping and the bias update; tokens/s excludes the first 3 steps; peak memory is
# the process's maximum resident set (GNU time); MFU is against the sgemm rate mlamoe measures at
# start ("peak ... GFLOP/s per rank (measured sgemm)") with the FLOPs/token of --dry-run.
# The PyTorch side is bench/torch_baseline.py (the independent twin of tests/reference/).
# Both sides run the same OpenBLAS kernels: OPENBLAS_CORETYPE as set by the caller, else the ones
# OpenBLAS picks for this CPU (as `mlamoe version` reports them), exported to PyTorch's OpenBLAS too.
set -euo pipefail
cd "$(dirname "$0")/.."
config=$1 steps=${2:-20} threads=${3:-2}
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-$(build/mlamoe version | sed -n 's/.*, \([A-Za-z0-9]*\) kernels$/\1/p')}
work=$(mktemp -d)
OMP_NUM_THREADS=$threads /usr/bin/time -v build/mlamoe train --config "$config" --set data.path=build/data/kjv.h5 \
  --set train.steps="$steps" --set train.eval_batches=0 --set train.run_dir="$work/run" --set train.log_every=100000 \
  >"$work/mlamoe.out" 2>"$work/mlamoe.time"
OMP_NUM_THREADS=$threads /usr/bin/time -v /usr/bin/python3 bench/torch_baseline.py "$config" build/data/kjv.txt "$steps" "$threads" \
  >"$work/torch.out" 2>"$work/torch.time"
flops=$(build/mlamoe train --config "$config" --dry-run | sed -n 's/^training FLOPs per token[^:]*: \([0-9.e+]*\).*/\1/p')
/usr/bin/python3 - "$work" "$flops" "$config" "$threads" <<'PY'
import json, os, re, sys
w, flops, config, threads = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
def rss(path):
    return int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(path).read()).group(1)) / 1024
head = open(w + "/mlamoe.out").read()
peak = float(re.search(r"peak ([0-9.]+) GFLOP/s", head).group(1))
m = [json.loads(l) for l in open(w + "/run/metrics.jsonl")][3:]
ours = sum(x["tokens_per_s"] * x["step_time_s"] for x in m) / sum(x["step_time_s"] for x in m)
torch = json.loads(open(w + "/torch.out").read().strip().splitlines()[-1])["tokens_per_s"]
mfu = lambda t: 100 * t * flops / (peak * 1e9)
print(f"{config}, {threads} threads, OpenBLAS {os.environ['OPENBLAS_CORETYPE']} kernels on both sides, sgemm peak {peak:.1f} GFLOP/s, {flops:.3g} FLOPs/token")
print(f"  mlamoe : {ours:9.0f} tokens/s  MFU {mfu(ours):5.1f}%  peak RSS {rss(w + '/mlamoe.time'):7.0f} MB")
print(f"  PyTorch: {torch:9.0f} tokens/s  MFU {mfu(torch):5.1f}%  peak RSS {rss(w + '/torch.time'):7.0f} MB")
print(f"  ratio mlamoe / PyTorch: {ours / torch:.2f}x tokens/s")
PY
rm -rf "$work"
