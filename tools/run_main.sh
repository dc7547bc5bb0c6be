#!/usr/bin/env bash
# The README's first command: set up, build, prepare the default corpus, run the main job.
# Until the MLA+MoE trainer lands, the main job is the library's smoke training run.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/prepare_corpus.sh build/data/kjv.txt
build/mlamoe smoke --text build/data/kjv.txt "$@"
