#!/usr/bin/env bash
# Several nodes by hostfile (Open MPI): `launch/run_hostfile.sh HOSTFILE RANKS_PER_NODE CONFIG [flags...]`.
# The hostfile lists one node per line with its slots (`node1 slots=8`). Ranks are placed
# node by node, so consecutive ranks — an expert-parallel group, by the mesh's layout — share a
# node and their all-to-all stays inside it. The binary and the data must be at the same path on
# every node (a shared filesystem).
#
#   launch/run_hostfile.sh hosts.txt 8 configs/small.json --set parallel.ep=8
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 3 ] || { echo "usage: launch/run_hostfile.sh HOSTFILE RANKS_PER_NODE CONFIG [mlamoe train flags...]" >&2; exit 2; }
hostfile=$1 per_node=$2 config=$3
shift 3
[ -r "$hostfile" ] || { echo "launch/run_hostfile.sh: cannot read hostfile '$hostfile'" >&2; exit 2; }
nodes=$(grep -cvE '^\s*(#|$)' "$hostfile")
n=$(( nodes * per_node ))
threads=${THREADS:-1}
flags=(-np "$n" --hostfile "$hostfile" --map-by "ppr:${per_node}:node:PE=${threads}" --bind-to core
       -x OMP_NUM_THREADS="$threads" -x PATH -x LD_LIBRARY_PATH)
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
echo "launch: $n ranks on $nodes nodes ($per_node per node, $threads threads each)"
exec "${MPIRUN:-mpirun}" "${flags[@]}" "${MLAMOE:-$PWD/build/mlamoe}" train --config "$config" "$@"
