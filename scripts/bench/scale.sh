#!/usr/bin/env bash
# The scale benchmark (issue 10), in one command (not part of CI or the tests):
#
#   scripts/bench/scale.sh [--quick] [--sizes 100,400,2000] [--runs N] [--budget SEC]
#                          [--jobs N] [--only noop|cold|tools|shaped]... [--shaped-size N]
#                          [--no-profile] [--bin DIR] [--doc [FILE]] [--baseline] [--keep]
#
# Installs what is missing (scripts/bench/prepare.sh: scripts/install-deps.sh
# unless AL_NO_DEPS=1, plus `time`, `linux-perf` and `strace`), builds a
# Release airlock in build-rel/, then runs scripts/bench/scale.py: it builds a
# corpus of 2,000 small tags and pushes it into a local docker-registry (once:
# both are cached in $AL_BENCH_CACHE, default /var/tmp/airlock-bench), then
# measures the no-op nightly run at 100, 400 and 2,000 tags, the cold fetch,
# the store tools and the runs through a 20 ms link, each against curl
# --parallel or against its own smaller size, and prints a table of figures,
# targets and met/missed. --doc writes it into docs/BENCHMARKS.md (between the
# scale markers; with --baseline, the scale-baseline ones). --quick: 100 and
# 400 tags, no profile, for development. See docs/BENCHMARKS.md, "Scale".
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)

case ${1:-} in
-h | --help) sed -n '2,18p' "$0"; exit 0 ;;
esac

# shellcheck source-path=SCRIPTDIR source=prepare.sh
. "$here/prepare.sh"
bench_prepare "$repo"
exec python3 "$here/scale.py" --bin "$repo/build-rel" --cmd "scripts/bench/scale.sh${*:+ $*}" "$@"
