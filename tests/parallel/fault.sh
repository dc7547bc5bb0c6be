#!/usr/bin/env bash
# fault.sh KIND WORKDIR -- MPIRUN_CMD...: a training job (its run directory WORKDIR/run) in which
# rank 1 fails at step 3 (KIND "throw": an error inside the step; "kill": SIGKILL, as a crashed
# node; "hang": it sleeps forever outside communication, and the collective watchdog must stop the
# job). Every rank must be gone within 60 s, the job must exit non-zero, and the output must say
# what happened (hang: one "collective timeout" line naming rank 1, pp1·dp4·ep2 coordinates).
set -u
kind=$1 work=$2
shift 3
rm -rf "$work"
args=("$@" --set train.run_dir="$work/run")
out=$(mktemp)
start=$(date +%s)
MLAMOE_FAULT="$kind@1:3" timeout 120 "${args[@]}" >"$out" 2>&1
rc=$?
elapsed=$(( $(date +%s) - start ))
cat "$out"
[ "$rc" -ne 0 ] || { echo "FAIL: the job exited 0"; exit 1; }
[ "$rc" -ne 124 ] || { echo "FAIL: the job hung (killed by timeout after ${elapsed}s)"; exit 1; }
[ "$elapsed" -le 60 ] || { echo "FAIL: took ${elapsed}s to stop"; exit 1; }
if [ "$kind" = throw ]; then
  grep -q "mlamoe: error on rank 1: injected fault at step 3" "$out" || { echo "FAIL: no message naming rank 1"; exit 1; }
elif [ "$kind" = hang ]; then
  [ "$(grep -c "collective timeout" "$out")" -eq 1 ] || { echo "FAIL: expected one 'collective timeout' line"; exit 1; }
  grep "collective timeout" "$out" | grep -qF "silent: rank 1 (pp 0, dp 1, ep 1) [outside communication" ||
    { echo "FAIL: the watchdog's line does not name rank 1 as busy outside communication"; exit 1; }
else
  grep -qiE "rank 1|signal 9|killed" "$out" || { echo "FAIL: no message about the killed rank"; exit 1; }
fi
echo "fault.sh: $kind on rank 1 stopped the job in ${elapsed}s (exit $rc)"
