#!/usr/bin/env bash
# The README's first command: set up, build, prepare the default corpus (King James Bible ->
# build/data/kjv.h5), then the main job: pretrain configs/tiny.json on it. Each run gets its own
# directory under runs/ (metrics.jsonl, experts.jsonl, weights.h5); extra arguments go to
# `mlamoe train` (e.g. --set train.steps=100).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/prepare_corpus.sh build/data/kjv.txt build/data/kjv.h5
run_dir=runs/tiny-$(date +%Y%m%d-%H%M%S)
build/mlamoe train --config configs/tiny.json --set train.run_dir="$run_dir" "$@"
build/mlamoe generate --checkpoint "$run_dir/weights.h5" --prompt "And God said" --tokens 120
