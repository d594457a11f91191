#!/usr/bin/env bash
# The airlock benchmark, in one command (not part of CI or the test suite):
#
#   scripts/bench/run.sh [--runs N] [--skopeo-runs N] [--no-ctr] [--no-profile]
#                        [--doc FILE] [--only SCENARIO]... [--keep]
#
# Installs what is missing (scripts/bench/prepare.sh: scripts/install-deps.sh
# unless AL_NO_DEPS=1, plus `time`, `linux-perf` and `strace`), builds a
# Release airlock in build-rel/, then runs scripts/bench/bench.py: it builds
# the corpus (once, cached in $AL_BENCH_CACHE, default /var/tmp/airlock-bench:
# about 1.5 GB with the registry's copy), starts a registry, the shaping proxy
# and containerd, runs every scenario several times, prints the table and
# writes it into docs/BENCHMARKS.md. About 6 minutes on 2 cores, 1-2 more the
# first time.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

case ${1:-} in
-h | --help) sed -n '2,14p' "$0"; exit 0 ;;
esac

# shellcheck source-path=SCRIPTDIR source=prepare.sh
. "$here/prepare.sh"
bench_prepare "$repo"
exec python3 "$here/bench.py" --bin "$repo/build-rel" --cmd "scripts/bench/run.sh${*:+ $*}" "$@"
