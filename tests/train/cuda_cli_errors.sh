#!/usr/bin/env bash
# cuda_cli_errors.sh MLAMOE CONFIG DATA.h5 WORKDIR: the bad-input contract of --device / train.device
# and MLAMOE_CUDA_BACKEND: one line on stderr naming what is wrong, exit 1, and the run directory
# left untouched (a retry on a machine with a GPU must find it new).
set -euo pipefail
mlamoe=$1 config=$2 data=$3 work=$4
expect=$(dirname "$0")/expect_error.sh
rm -rf "$work" && mkdir -p "$work"
args=(train --config "$config" --set data.path="$data" --set train.steps=1 --set train.run_dir="$work/run")
"$expect" 1 "train.device' must be \"cpu\" or \"cuda\", got \"gpu\"" -- "$mlamoe" "${args[@]}" --device gpu
"$expect" 1 "MLAMOE_CUDA_BACKEND must be 'gpu' or 'simt', got 'tpu'" -- env MLAMOE_CUDA_BACKEND=tpu "$mlamoe" "${args[@]}" --device cuda
if [ -z "${MLAMOE_CUDA_BACKEND:-}" ] && ! nvidia-smi -L >/dev/null 2>&1; then  # no GPU here: --device cuda is refused
  "$expect" 1 "no CUDA device is usable.*MLAMOE_CUDA_BACKEND=simt" -- "$mlamoe" "${args[@]}" --device cuda
fi
[ ! -e "$work/run" ] || { ls -la "$work/run"; echo "FAIL: a refused run created its run directory"; exit 1; }
echo "cuda_cli_errors: every bad device input refused in one line, nothing written"
