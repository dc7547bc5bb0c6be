#!/usr/bin/env bash
# check_layering.sh: fails (naming the line) when an #include points against the layering of
# CONTRIBUTING.md "Layout": model <- parallel <- data <- train, and inside train/ monitor/ <- the
# loop (train/*) <- cli/. The libraries enforce it at link time; this names the include at once.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
check() {  # check DIR PATTERN: no file under DIR may include a header matching PATTERN
  local hits
  hits=$(grep -rnE --include='*.h' --include='*.cpp' --include='*.cu' "#include \"($2)" "$1" || true)
  if [ -n "$hits" ]; then echo "check_layering: $1 must not include $2:"; echo "$hits"; bad=1; fi
}
check model 'parallel/|data/|train/'
check parallel 'data/|train/'
check data 'train/'
check train/monitor 'train/cli/|train/[a-z_]+\.h'
for f in train/*.h train/*.cpp; do
  if grep -nE '#include "train/cli/' "$f"; then echo "check_layering: $f (the loop) must not include train/cli/"; bad=1; fi
done
[ "$bad" -eq 0 ] && echo "check_layering: model <- parallel <- data <- train/monitor <- train <- train/cli holds"
exit "$bad"
