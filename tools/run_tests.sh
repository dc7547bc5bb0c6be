#!/usr/bin/env bash
# The README's second command: set up, build, run the whole test suite (ctest, MPI tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
# The suite writes about 2.8 GB of runs, checkpoints and corpora under build/ (tests/, fuzz-smoke/;
# a rerun replaces the previous run's). Short of that, tests fail one by one on write errors:
# say so once, up front.
need_mb=3000
free_mb=$(df -Pm . | awk 'NR == 2 {print $4}')
old_mb=$({ du -smc tests/tmp tests/train tests/parallel fuzz-smoke 2>/dev/null || true; } | awk 'END {print $1 + 0}')  # none on a first run
if [ "$((free_mb + old_mb))" -lt "$need_mb" ]; then
  echo "run_tests: error: the test suite needs about $need_mb MB free under $(pwd) and has $((free_mb + old_mb)) MB (free space plus an earlier run's outputs)" >&2
  exit 1
fi
ctest --output-on-failure -j 1 "$@"
