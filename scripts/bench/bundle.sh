#!/usr/bin/env bash
# Benchmarks of bundles (not part of CI or the tests):
#
#   scripts/bench/bundle.sh [--runs N] [--keep]
#
# Builds a Release airlock in build-rel/, builds the bench corpus (cached in
# $AL_BENCH_CACHE, default /var/tmp/airlock-bench; see corpus.py) and runs
# scripts/bench/bundle.py: writing a complete bundle against GNU tar of the
# same blobs, importing it against cat + sha256sum of it, and the size of a
# nightly delta after one image changed. Prints the figures;
# docs/BENCHMARKS.md keeps them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
case ${1:-} in -h | --help) sed -n '2,11p' "$0"; exit 0 ;; esac
cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j2 --target airlock-fetch airlock-export >/dev/null
exec python3 "$here/bundle.py" --bin "$repo/build-rel" "$@"
