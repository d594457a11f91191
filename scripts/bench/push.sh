#!/usr/bin/env bash
# Benchmark of airlock-push (not part of CI or the tests):
#
#   scripts/bench/push.sh [--runs N] [--up-mbit M] [--delay-ms D] [--keep]
#
# Builds a Release airlock in build-rel/, builds the bench corpus (cached in
# $AL_BENCH_CACHE, default /var/tmp/airlock-bench; see corpus.py), fetches it
# into a store and runs scripts/bench/push.py: a cold push of the 20 images
# (every platform) into an empty docker-registry behind the shaping proxy
# against the link limit, side by side with skopeo copy oci:STORE:REF and
# skopeo sync of the same images, and the nightly no-op push. Prints the
# figures; docs/BENCHMARKS.md keeps them.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
case ${1:-} in -h | --help) sed -n '2,12p' "$0"; exit 0 ;; esac
cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j2 --target airlock-fetch airlock-push >/dev/null
exec python3 "$here/push.py" --bin "$repo/build-rel" "$@"
