#!/usr/bin/env bash
# What every benchmark needs before it runs, sourced by run.sh and scale.sh:
# the Debian packages (scripts/install-deps.sh, skipped with AL_NO_DEPS=1),
# `time`, `linux-perf` and `strace`, and a Release airlock in build-rel/.
#
#   . scripts/bench/prepare.sh; bench_prepare REPO

bench_prepare() {
    local repo=$1 missing=() sudo_=()
    [ -n "${AL_NO_DEPS:-}" ] || "$repo/scripts/install-deps.sh" >&2
    [ -x /usr/bin/time ] || missing+=(time)
    command -v perf >/dev/null || missing+=(linux-perf)
    command -v strace >/dev/null || missing+=(strace)
    if [ ${#missing[@]} -gt 0 ]; then
        echo "bench: installing ${missing[*]}" >&2
        [ "$(id -u)" -eq 0 ] || sudo_=(sudo)
        "${sudo_[@]}" apt-get update -qq >&2 || true
        DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq "${missing[@]}" >&2 ||
            echo "bench: could not install ${missing[*]}: the profiles are skipped" >&2
    fi
    echo "bench: building a Release airlock in build-rel/" >&2
    cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
    cmake --build "$repo/build-rel" -j"$(nproc)" --target airlock-fetch airlock-export >/dev/null
}
