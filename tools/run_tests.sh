#!/usr/bin/env bash
# The README's second command: set up, build, run the whole test suite (ctest, MPI tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
cd build
ctest --output-on-failure -j 1 "$@"
