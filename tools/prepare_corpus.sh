#!/usr/bin/env bash
# The default sample corpus: the King James Bible (about 4.1 MB of English prose), from Debian's
# bible-kjv package (installed by tools/setup.sh), written as plain text with the verse
# references stripped.
#
#   tools/prepare_corpus.sh [OUT]     (default build/data/kjv.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/data/kjv.txt}
if [ -s "$out" ]; then
  echo "corpus: $out already there ($(wc -c <"$out") bytes)"
  exit 0
fi
command -v bible >/dev/null || { echo "corpus: error: the 'bible' program is missing (run tools/setup.sh)" >&2; exit 1; }
mkdir -p "$(dirname "$out")"
bible -f 'Gen1:1-Rev22:21' | sed -E 's/^[0-9]?[A-Za-z]+[0-9]+:[0-9]+ //' >"$out.tmp"
[ "$(wc -c <"$out.tmp")" -gt 1000000 ] || { echo "corpus: error: $out.tmp is unexpectedly small" >&2; exit 1; }
mv "$out.tmp" "$out"
echo "corpus: wrote $out ($(wc -c <"$out") bytes)"
