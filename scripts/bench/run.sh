#!/usr/bin/env bash
# The airlock benchmark, in one command (not part of CI or the test suite):
#
#   scripts/bench/run.sh [--runs N] [--skopeo-runs N] [--no-ctr] [--no-profile]
#                        [--doc FILE] [--only SCENARIO]... [--keep]
#
# Installs what is missing (scripts/install-deps.sh, plus `time` and
# `linux-perf`), builds a Release airlock in build-rel/, then runs
# scripts/bench/bench.py: it builds the corpus (once, cached in
# $AL_BENCH_CACHE, default /var/tmp/airlock-bench: about 1.5 GB with the
# registry's copy), starts a registry, the shaping proxy and containerd, runs
# every scenario several times, prints the table and writes it into
# docs/BENCHMARKS.md. About 6 minutes on 2 cores, 1-2 more the first time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
log() { echo "bench: $*" >&2; }

case ${1:-} in
-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
esac

"$repo/scripts/install-deps.sh" >&2
missing=()
[ -x /usr/bin/time ] || missing+=(time)
command -v perf >/dev/null || missing+=(linux-perf)
if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    sudo_=()
    [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
    "${sudo_[@]}" apt-get update -qq >&2 || true
    DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq "${missing[@]}" >&2 ||
        log "could not install ${missing[*]}: the profile (perf) is skipped"
fi

log "building a Release airlock in build-rel/"
cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j"$(nproc)" --target airlock-fetch airlock-export >/dev/null

exec python3 "$here/bench.py" --bin "$repo/build-rel" --cmd "scripts/bench/run.sh${*:+ $*}" "$@"
