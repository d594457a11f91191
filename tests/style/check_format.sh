#!/usr/bin/env bash
# Every C file of the project is formatted by the committed .clang-format
# (docs/STYLE.md, "Names and files"). Prints the first differences and fails
# when any file would change; `clang-format -i FILE` fixes it.
set -euo pipefail
src=${AL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$src"
command -v clang-format >/dev/null || { echo "clang-format is not installed (scripts/install-deps.sh)" >&2; exit 1; }
mapfile -t files < <(git ls-files -- '*.c' '*.h' 2>/dev/null || find common db fetch export tests -name '*.[ch]')
[ "${#files[@]}" -gt 0 ] || { echo "no C files found under $src" >&2; exit 1; }
bad=0
for f in "${files[@]}"; do
    [ -f "$f" ] || continue
    if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
        echo "not formatted: $f" >&2
        clang-format "$f" | diff -u "$f" - | head -20 >&2 || true
        bad=$((bad + 1))
    fi
done
[ "$bad" -eq 0 ] || { echo "$bad file(s) differ from .clang-format" >&2; exit 1; }
echo "${#files[@]} files formatted" >&2
