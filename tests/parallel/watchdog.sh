#!/usr/bin/env bash
# watchdog.sh MPIRUN "FLAGS" MLAMOE CONFIG DATA WORKDIR [RANK]: a pp2·dp2·ep2 run of 4 ranks with
# train.collective_timeout_s = 5. Once step 3 is logged, world rank RANK (default 2) is SIGSTOPped,
# as a hung process or a stuck node would be: it can answer nothing. Its pid is found among
# mpirun's children by the OMPI_COMM_WORLD_RANK in their environment. Within 60 s of the stop the
# job must exit non-zero, print exactly one "collective timeout" line naming the stopped rank with
# its mesh coordinates, and leave no rank process behind (the stopped one included).
set -u
mpirun=$1 flags=$2 mlamoe=$3 config=$4 data=$5 work=$6 victim=${7:-2}
rm -rf "$work"
mkdir -p "$work"
log=$work/out.log
# shellcheck disable=SC2086  # flags is a list
"$mpirun" -np 4 $flags "$mlamoe" train --config "$config" --set data.path="$data" --set parallel.pp=2 --set parallel.ep=2 \
  --set train.steps=1000 --set train.log_every=1 --set train.peak_gflops=50 --set train.collective_timeout_s=5 \
  --set train.run_dir="$work/run" >"$log" 2>&1 &
mp=$!
ranks=()
vpid=
cleanup() {
  for p in "$mp" "${ranks[@]}"; do kill -KILL "$p" 2>/dev/null; done
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*"
  cat "$log"
  exit 1
}

# Mid-run: step 3 logged (start-up and the first step have the larger allowance).
for _ in $(seq 600); do
  grep -q "^step     3/" "$log" && break
  kill -0 "$mp" 2>/dev/null || fail "the job ended before step 3"
  sleep 0.2
done
grep -q "^step     3/" "$log" || fail "no step 3 after 120 s"
for c in $(pgrep -P "$mp"); do
  ranks+=("$c")
  tr '\0' '\n' <"/proc/$c/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$victim" && vpid=$c
done
[ "${#ranks[@]}" -eq 4 ] || fail "expected 4 rank processes under mpirun ($mp), found ${#ranks[@]}"
[ -n "$vpid" ] || fail "no process of rank $victim among mpirun's children"
kill -STOP "$vpid"
start=$(date +%s)
echo "watchdog.sh: stopped rank $victim (pid $vpid)"

for _ in $(seq 450); do
  kill -0 "$mp" 2>/dev/null || break
  sleep 0.2
done
kill -0 "$mp" 2>/dev/null && fail "still hung 90 s after rank $victim was stopped"
wait "$mp"
rc=$?
elapsed=$(($(date +%s) - start))
cat "$log"
[ "$rc" -ne 0 ] || fail "the job exited 0"
[ "$elapsed" -le 60 ] || fail "took ${elapsed}s to stop"

# One line, naming the stopped rank: pp2·dp2·ep2 puts rank r at (pp r/2, dp r%2, ep r%2).
n=$(grep -c "collective timeout" "$log")
[ "$n" -eq 1 ] || fail "expected one 'collective timeout' line, got $n"
want="silent: rank $victim (pp $((victim / 2)), dp $((victim % 2)), ep $((victim % 2))) [no heartbeat"
grep "collective timeout" "$log" | grep -qF "$want" || fail "the line does not name rank $victim as silent ('$want')"
grep "collective timeout" "$log" | grep -qE "waited [0-9.]+ s in [a-z_()]+ " || fail "the line does not name the operation"

# No rank left running: each is gone or a zombie (dead, waiting to be reaped), within 10 s.
for _ in $(seq 50); do
  left=()
  for p in "${ranks[@]}"; do
    st=$(ps -o stat= -p "$p" 2>/dev/null)
    [ -n "$st" ] && [ "${st:0:1}" != Z ] && left+=("$p:$st")
  done
  [ "${#left[@]}" -eq 0 ] && break
  sleep 0.2
done
[ "${#left[@]}" -eq 0 ] || fail "rank processes left running: ${left[*]}"
if pgrep -f -- "$work/run" >/dev/null; then
  for p in $(pgrep -f -- "$work/run"); do
    st=$(ps -o stat= -p "$p" 2>/dev/null)
    [ -n "$st" ] && [ "${st:0:1}" != Z ] && fail "a process of this run is left: $(ps -o pid,stat,args -p "$p" | tail -1)"
  done
fi
echo "watchdog.sh: rank $victim stopped, the job aborted in ${elapsed}s (exit $rc), no process left"
