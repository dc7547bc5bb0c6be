#!/usr/bin/env bash
# One node: `launch/run.sh N CONFIG [mlamoe train flags...]` starts N ranks of `mlamoe train` with
# mpirun, gives each rank cores/N OpenMP threads (at least 1) and binds it to those cores, so ranks
# never compete for a core. The parallel layout comes from the config or --set:
#
#   launch/run.sh 4 configs/tiny.json --set parallel.pp=2 --set parallel.ep=2
#
# Environment: MLAMOE (default build/mlamoe), MPIRUN (default mpirun), THREADS (per rank).
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: launch/run.sh N CONFIG [mlamoe train flags...]" >&2; exit 2; }
n=$1 config=$2
shift 2
[[ "$n" =~ ^[1-9][0-9]*$ ]] || { echo "launch/run.sh: N must be a positive integer, got '$n'" >&2; exit 2; }
mlamoe=${MLAMOE:-build/mlamoe}
mpirun=${MPIRUN:-mpirun}
cores=$(nproc)
threads=${THREADS:-$(( cores / n > 0 ? cores / n : 1 ))}
flags=(-np "$n" -x OMP_NUM_THREADS="$threads")
if [ $(( n * threads )) -le "$cores" ]; then
  flags+=(--map-by "slot:PE=$threads" --bind-to core)   # each rank owns `threads` cores
else
  flags+=(--oversubscribe --bind-to none)               # more ranks than cores (tests, laptops)
fi
[ "$(id -u)" -eq 0 ] && flags+=(--allow-run-as-root)
echo "launch: $n ranks x $threads threads on $cores cores: $mpirun ${flags[*]} $mlamoe train --config $config $*"
exec "$mpirun" "${flags[@]}" "$mlamoe" train --config "$config" "$@"
