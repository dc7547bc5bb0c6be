#!/usr/bin/env bash
# Several GPU nodes by hostfile (Open MPI):
# `launch/run_gpu_hostfile.sh HOSTFILE GPUS_PER_NODE CONFIG [mlamoe train flags...]`.
# The hostfile lists one node per line with its slots (`node1 slots=8`). GPUS_PER_NODE ranks go to
# each node, placed node by node (--map-by ppr:G:node), so consecutive ranks — an expert-parallel
# group, by the mesh's layout — share a node and their all-to-all stays on its NVLink. Each rank
# runs under launch/gpu_bind.sh, which binds it to its GPU's NUMA node and NIC, so mpirun does not
# bind (--bind-to none). The binary, this repository and the data must be at the same path on
# every node (a shared filesystem).
#
#   launch/run_gpu_hostfile.sh hosts.txt 8 configs/small.json --set parallel.ep=8
#   MLAMOE_BIND_DRY_RUN=1 launch/run_gpu_hostfile.sh hosts.txt 8 configs/small.json   # bindings only
#
# Remote ranks see only the variables passed by name: PATH, LD_LIBRARY_PATH (when set), OMP_NUM_THREADS and
# every NCCL_*, UCX_* and MLAMOE_* variable set here (NCCL_DEBUG, NCCL_SOCKET_IFNAME, ...), and
# CUDA_VISIBLE_DEVICES / CUDA_DEVICE_ORDER when set (the same on every node).
# Environment: MLAMOE (default $PWD/build/mlamoe), MPIRUN (default mpirun), THREADS (per rank;
# default this node's cores / GPUS_PER_NODE: set it when the GPU nodes differ from this one).
set -euo pipefail
cd "$(dirname "$0")/.."
me=launch/run_gpu_hostfile.sh
[ $# -ge 3 ] || { echo "usage: $me HOSTFILE GPUS_PER_NODE CONFIG [mlamoe train flags...]" >&2; exit 2; }
hostfile=$1 per_node=$2 config=$3
shift 3
[ -r "$hostfile" ] || { echo "$me: cannot read hostfile '$hostfile'" >&2; exit 2; }
[[ "$per_node" =~ ^[1-9][0-9]*$ ]] || { echo "$me: GPUS_PER_NODE must be a positive integer, got '$per_node'" >&2; exit 2; }
nodes=$(grep -cvE '^\s*(#|$)' "$hostfile" || true)
[ "$nodes" -gt 0 ] || { echo "$me: hostfile '$hostfile' lists no node" >&2; exit 2; }
n=$(( nodes * per_node ))
cores=$(nproc)
threads=${THREADS:-$(( cores / per_node > 0 ? cores / per_node : 1 ))}
flags=(-np "$n" --hostfile "$hostfile" --map-by "ppr:${per_node}:node" --bind-to none
       -x OMP_NUM_THREADS="$threads" -x PATH)
[ -n "${LD_LIBRARY_PATH+set}" ] && flags+=(-x LD_LIBRARY_PATH)   # mpirun warns about an unset one
while IFS= read -r v; do flags+=(-x "$v"); done < <(compgen -e | grep -E '^(NCCL_|UCX_|MLAMOE_|CUDA_VISIBLE_DEVICES$|CUDA_DEVICE_ORDER$)' || true)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
mpirun=${MPIRUN:-mpirun}
mlamoe=${MLAMOE:-$PWD/build/mlamoe}
device=(--device cuda)
for a in "$@"; do [ "$a" = --device ] && device=(); done   # the user's --device (the binary refuses two)
cmd=("$mpirun" "${flags[@]}" "$PWD/launch/gpu_bind.sh" "$mlamoe" train --config "$config" "$@" "${device[@]}")
echo "launch: $n GPU ranks on $nodes nodes ($per_node per node, $threads threads each): ${cmd[*]}"
exec "${cmd[@]}"
