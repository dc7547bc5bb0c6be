#!/usr/bin/env bash
# One GPU node: `launch/run_gpu.sh GPUS CONFIG [mlamoe train flags...]` starts GPUS ranks of
# `mlamoe train ... --device cuda` with mpirun, one rank per GPU; GPUS "all" takes every GPU
# nvidia-smi lists (the entries of CUDA_VISIBLE_DEVICES when that is set). Each rank runs under
# launch/gpu_bind.sh, which binds it to its GPU's NUMA node and points NCCL and UCX at the NIC on
# that node, so mpirun itself does not bind (--bind-to none; two bindings would collide). Each
# rank gets cores/GPUS OpenMP threads (at least 1).
#
#   launch/run_gpu.sh 8 configs/small.json --set parallel.ep=8
#   MLAMOE_BIND_DRY_RUN=1 launch/run_gpu.sh all configs/small.json   # each rank's binding, no training
#
# Environment: MLAMOE (default build/mlamoe), MPIRUN (default mpirun), THREADS (per rank),
# NVIDIA_SMI (default nvidia-smi, for "all"). NCCL_*, UCX_*, MLAMOE_* and CUDA_VISIBLE_DEVICES /
# CUDA_DEVICE_ORDER set here are passed to the ranks by name (-x), as run_gpu_hostfile.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
me=launch/run_gpu.sh
[ $# -ge 2 ] || { echo "usage: $me GPUS|all CONFIG [mlamoe train flags...]" >&2; exit 2; }
gpus=$1 config=$2
shift 2
if [ "$gpus" = all ]; then
  if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    IFS=, read -r -a visible <<<"${CUDA_VISIBLE_DEVICES//[[:space:]]/}"
    gpus=${#visible[@]}
  else
    smi=${NVIDIA_SMI:-nvidia-smi}
    out=$("$smi" --query-gpu=index,pci.bus_id --format=csv,noheader 2>/dev/null) ||
      { echo "$me: cannot count the GPUs: '$smi --query-gpu=index,pci.bus_id' failed or is missing" >&2; exit 2; }
    gpus=$(grep -c '^[[:space:]]*[0-9]' <<<"$out" || true)
  fi
  [ "$gpus" -gt 0 ] || { echo "$me: GPUS is 'all', but no GPU is visible" >&2; exit 2; }
fi
[[ "$gpus" =~ ^[1-9][0-9]*$ ]] || { echo "$me: GPUS must be a positive integer or 'all', got '$gpus'" >&2; exit 2; }
mlamoe=${MLAMOE:-build/mlamoe}
mpirun=${MPIRUN:-mpirun}
cores=$(nproc)
threads=${THREADS:-$(( cores / gpus > 0 ? cores / gpus : 1 ))}
flags=(-np "$gpus" --map-by slot --bind-to none -x OMP_NUM_THREADS="$threads")
[ "$gpus" -gt "$cores" ] && flags+=(--oversubscribe)   # more ranks than cores (the emulator, tests)
while IFS= read -r v; do flags+=(-x "$v"); done < <(compgen -e | grep -E '^(NCCL_|UCX_|MLAMOE_|CUDA_VISIBLE_DEVICES$|CUDA_DEVICE_ORDER$)' || true)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
device=(--device cuda)
for a in "$@"; do [ "$a" = --device ] && device=(); done   # the user's --device (the binary refuses two)
cmd=("$mpirun" "${flags[@]}" launch/gpu_bind.sh "$mlamoe" train --config "$config" "$@" "${device[@]}")
echo "launch: $gpus GPU ranks x $threads threads on $cores cores: ${cmd[*]}"
exec "${cmd[@]}"
