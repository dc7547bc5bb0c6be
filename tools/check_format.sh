#!/usr/bin/env bash
# check_format.sh: fails (exit 1, naming the files) when a tracked C++ source differs from what
# clang-format makes of it with the repository's .clang-format. Skipped (exit 77) without
# clang-format. Fix with: clang-format -i $(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
set -euo pipefail
cd "$(dirname "$0")/.."
fmt=$(command -v clang-format || command -v clang-format-14 || true)
[ -n "$fmt" ] || { echo "check_format: clang-format not installed: skipped"; exit 77; }
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  mapfile -t files < <(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')
else
  mapfile -t files < <(find model parallel data train tests bench tools -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh')
fi
bad=()
for f in "${files[@]}"; do
  [ -f "$f" ] || continue
  "$fmt" --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  printf 'check_format: %d of %d files differ from clang-format (%s):\n' "${#bad[@]}" "${#files[@]}" "$("$fmt" --version | head -1)"
  printf '  %s\n' "${bad[@]}"
  echo "fix: clang-format -i \$(git ls-files '*.cpp' '*.h' '*.cu' '*.cuh')"
  exit 1
fi
echo "check_format: ${#files[@]} files clean"
