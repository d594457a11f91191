#!/usr/bin/env bash
# Benchmarks of --check and --split image (not part of CI or the tests):
#
#   scripts/bench/k3s.sh [--runs N] [--only check|split] [--keep]
#
# Builds a Release airlock in build-rel/, builds the bench corpus (cached in
# $AL_BENCH_CACHE, default /var/tmp/airlock-bench; see corpus.py) and runs
# scripts/bench/k3s.py: --check of a ~400 MB archive of gzip layers against
# zcat of those layers, and a --split image export against one archive,
# then after a moved tag. Prints the figures; docs/BENCHMARKS.md keeps them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
case ${1:-} in -h | --help) sed -n '2,10p' "$0"; exit 0 ;; esac
cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j"$(nproc)" --target airlock-fetch airlock-export >/dev/null
exec python3 "$here/k3s.py" --bin "$repo/build-rel" "$@"
