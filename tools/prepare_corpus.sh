#!/usr/bin/env bash
# The default sample corpus: the King James Bible (about 4.1 MB of English prose), from Debian's
# bible-kjv package (installed by tools/setup.sh), written as plain text with the verse
# references stripped, then tokenised (byte-level) into the HDF5 token dataset that
# configs/tiny.json trains on.
#
#   tools/prepare_corpus.sh [TEXT [DATA.h5]]   (defaults build/data/kjv.txt, build/data/kjv.h5)
#   MLAMOE=path/to/mlamoe                      (default build/mlamoe)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/data/kjv.txt}
h5=${2:-${out%.txt}.h5}
mlamoe=${MLAMOE:-build/mlamoe}
if [ -s "$out" ]; then
  echo "corpus: $out already there ($(wc -c <"$out") bytes)"
else
  command -v bible >/dev/null || { echo "corpus: error: the 'bible' program is missing (run tools/setup.sh)" >&2; exit 1; }
  mkdir -p "$(dirname "$out")"
  bible -f 'Gen1:1-Rev22:21' | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' >"$out.tmp"
  [ "$(wc -c <"$out.tmp")" -gt 1000000 ] || { echo "corpus: error: $out.tmp is unexpectedly small" >&2; exit 1; }
  mv "$out.tmp" "$out"
  echo "corpus: wrote $out ($(wc -c <"$out") bytes)"
fi
# Made again after every build of mlamoe, so a dataset format change never leaves a stale file.
if [ -s "$h5" ] && [ "$h5" -nt "$out" ] && [ "$h5" -nt "$mlamoe" ]; then
  echo "corpus: $h5 already there"
else
  [ -x "$mlamoe" ] || { echo "corpus: error: $mlamoe is not built (run tools/setup.sh)" >&2; exit 1; }
  "$mlamoe" data prepare --input "$out" --output "$h5" --overwrite
fi
