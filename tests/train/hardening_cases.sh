#!/usr/bin/env bash
# hardening_cases.sh MLAMOE CONFIG DATA.h5 CASES_DIR WORKDIR: the multi-step cases of the hardening
# issue (single-command ones are cli_* entries in CMakeLists.txt), each with its right behaviour:
#   output-is-input   data prepare --output equal to an --input (by any name) is refused, even with
#                     --overwrite, and the input is intact;
#   old-checkpoints   a run directory holding only an earlier run's checkpoints/ is refused, and
#                     the earlier checkpoints stay as they were;
#   no-targets        SFT windows inside prompts longer than seq_len: train warns with the share,
#                     skips the steps without targets, and never logs a loss of 0;
#   disk-full         (needs root to mount a 2 MiB tmpfs; skipped otherwise) convert and train on a
#                     full disk exit 1 with one error line, no signal, no .tmp left behind.
set -uo pipefail
mlamoe=$1 config=$2 data=$3 cases=$4 work=$5
rm -rf "$work"
mkdir -p "$work"
fail() { echo "FAIL: $*"; exit 1; }
# Exit status of the command, which must be 1 (an error, not a signal: 128 + N).
expect_exit1() {
  "$@" >"$work/out" 2>"$work/err"
  local rc=$?
  [ "$rc" -eq 1 ] || { cat "$work/err"; fail "exit $rc, expected 1: $*"; }
  [ "$(grep -c '' "$work/err")" -eq 1 ] || { cat "$work/err"; fail "expected one error line: $*"; }
}

# output-is-input
printf 'hello world\n' >"$work/x.txt"
ln -s "$work/x.txt" "$work/alias.txt"
expect_exit1 "$mlamoe" data prepare --input "$work/x.txt" --output "$work/x.txt" --overwrite
grep -q "is the input file" "$work/err" || fail "unclear message: $(cat "$work/err")"
expect_exit1 "$mlamoe" data prepare --input "$work/x.txt" --output "$work/alias.txt" --overwrite
[ "$(cat "$work/x.txt")" = "hello world" ] || fail "the input was changed"
echo "output-is-input: refused, input intact"

# old-checkpoints
common=(--config "$config" --set data.path="$data" --set data.seq_len=32 --set train.global_batch=4 --set train.eval_every=0
        --set train.peak_gflops=100)
"$mlamoe" train "${common[@]}" --set train.steps=4 --set train.checkpoint_every=2 --set train.run_dir="$work/run" >/dev/null ||
  fail "first run"
rm "$work/run/metrics.jsonl" "$work/run/experts.jsonl" "$work/run/weights.h5"
sum_before=$(cat "$work"/run/checkpoints/*.h5 | md5sum)
expect_exit1 "$mlamoe" train "${common[@]}" --set train.steps=2 --set train.checkpoint_every=1 --set train.run_dir="$work/run"
grep -q "already holds a run (checkpoints)" "$work/err" || fail "unclear message: $(cat "$work/err")"
[ "$(cat "$work"/run/checkpoints/*.h5 | md5sum)" = "$sum_before" ] || fail "the earlier checkpoints changed"
echo "old-checkpoints: refused, earlier checkpoints intact"

# no-targets
"$mlamoe" data prepare --input "$cases/sft-windows-without-targets.jsonl" --output "$work/d.h5" --seq-len 8 >/dev/null 2>&1 ||
  fail "prepare"
(cd "$work" && "$mlamoe" train --config "$cases/sft-windows-without-targets.json" --set data.path="$work/d.h5" \
  --set train.run_dir="$work/sft" >"$work/sft.out" 2>"$work/sft.err") || { cat "$work/sft.err"; fail "train on sparse targets"; }
grep -q "of the training windows .* hold no target token at seq_len 8" "$work/sft.err" || fail "no warning: $(cat "$work/sft.err")"
grep -q "SKIPPED: no target token" "$work/sft.out" || fail "no step was skipped"
if grep -E "lm 0\.0000|held-out lm loss 0\.0000|lm nan|loss nan" "$work/sft.out"; then fail "a loss of 0 or NaN was logged"; fi
echo "no-targets: warned, $(grep -c 'SKIPPED: no target' "$work/sft.out") steps skipped, no loss of 0"

# disk-full
mnt="$work/full"
mkdir -p "$mnt"
if [ "$(id -u)" -eq 0 ] && mount -t tmpfs -o size=2m tmpfs "$mnt" 2>/dev/null; then
  trap 'umount "$mnt" 2>/dev/null' EXIT
  "$mlamoe" convert --from "$work/run/checkpoints/step-00000004.h5" --to-hf "$work/hf" --dtype f32 >/dev/null || fail "export"
  expect_exit1 "$mlamoe" convert --from-hf "$work/hf" --to "$mnt/imported.h5"
  grep -q "disk full" "$work/err" || fail "unclear message: $(cat "$work/err")"
  [ -z "$(ls -A "$mnt")" ] || fail "left behind on the full disk: $(ls -A "$mnt")"
  expect_exit1 "$mlamoe" train "${common[@]}" --set train.steps=4 --set train.checkpoint_every=2 --set train.run_dir="$mnt/run"
  grep -q "disk full" "$work/err" || fail "unclear message: $(cat "$work/err")"
  if ls "$mnt"/run/checkpoints/*.tmp >/dev/null 2>&1; then fail ".tmp left behind: $(ls "$mnt"/run/checkpoints)"; fi
  echo "disk-full: exit 1 with one line, nothing left behind"
else
  echo "disk-full: skipped (mounting a tmpfs needs root)"
fi
echo "hardening_cases: ok"
