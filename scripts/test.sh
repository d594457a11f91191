#!/usr/bin/env bash
# The project's test command (README; CI runs it through .ci/run):
#   1. install the Debian packages (scripts/install-deps.sh),
#   2. configure and build with ASan+UBSan into build-test/,
#   3. start the registry rig and seed it (tests/infra/rig.sh start --seed),
#      and the consumers (tests/infra/consumers.sh start: containerd + dockerd),
#   4. run ctest (unit + integration) with AL_RIG_ENV and AL_CONSUMERS_ENV
#      pointing at them, so that every test reuses them,
#   5. stop both (by PID), whatever happened, and exit with ctest's status.
#
#   scripts/test.sh [ctest args...]      e.g. scripts/test.sh -R integration
#   AL_BUILD_DIR=DIR   build directory (default: build-test)
#   AL_SEED_BIG=1      also push library/big:1 (~120 MB) for the long tests
#   AL_NO_DEPS=1       skip install-deps.sh
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
build=${AL_BUILD_DIR:-build-test}

if [ -z "${AL_NO_DEPS:-}" ]; then
    bash scripts/install-deps.sh
fi

echo "== configure + build ($build, sanitizers on)" >&2
cmake -S . -B "$build" -DAIRLOCK_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug >/dev/null
cmake --build "$build" -j2

# A private rig for this run: its own directory, its own free ports. And
# private consumers: a short directory, since their unix sockets live in it.
rig_parent=$(mktemp -d /tmp/airlock-test-rig.XXXXXX)
export AL_RIG_DIR=$rig_parent/rig
consumers_dir=$(mktemp -d /tmp/alc-test.XXXXXX)
stop_services() {
    # consumers.sh stop: dockerd then containerd, by the PIDs it recorded.
    bash "$repo/tests/infra/consumers.sh" stop "$consumers_dir" >/dev/null 2>&1 || true
    rm -rf --one-file-system "$consumers_dir"
    bash "$repo/tests/infra/rig.sh" stop >/dev/null 2>&1 || true
    rm -rf "$rig_parent"
}
trap stop_services EXIT
trap 'exit 130' INT TERM

echo "== rig" >&2
seed_args=(--seed)
if [ -n "${AL_SEED_BIG:-}" ]; then
    seed_args+=(--big)
fi
bash tests/infra/rig.sh start "${seed_args[@]}"
export AL_RIG_ENV=$AL_RIG_DIR/rig.env

echo "== consumers" >&2
bash tests/infra/consumers.sh start "$consumers_dir" >/dev/null
export AL_CONSUMERS_ENV=$consumers_dir/consumers.env

echo "== ctest" >&2
rc=0
(cd "$build" && ctest --output-on-failure "$@") || rc=$?
exit "$rc"
