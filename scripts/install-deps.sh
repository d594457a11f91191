#!/usr/bin/env bash
# Install every Debian package that building, testing and the demo need, and
# cache the busybox-static .debs (amd64 + arm64) that tests/infra/seed-images.py
# turns into image layers.
#
# Idempotent: when every package is already installed and both .debs are in
# the cache, it changes nothing and touches no network (pass --force to run
# apt-get update and install anyway).
#
#   scripts/install-deps.sh [--force]
#   AL_CACHE=DIR   where the .debs go (default: <repo>/build/cache)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)
cache=${AL_CACHE:-$repo/build/cache}
force=0
for a in "$@"; do
    case $a in
    --force) force=1 ;;
    -h | --help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install-deps.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done

packages=(
    build-essential cmake pkg-config
    libcurl4-openssl-dev libsqlite3-dev libjansson-dev libzstd-dev libssl-dev zlib1g-dev
    libarchive-dev
    libcmocka-dev
    docker-registry containerd skopeo podman docker.io
    apache2-utils jq python3 python3-jsonschema zstd openssl sqlite3 tmux clang clang-format ca-certificates curl
    nginx valgrind man-db groff-base systemd iproute2 strace
)

export DEBIAN_FRONTEND=noninteractive
# needrestart (if present) would otherwise scan the machine after each install.
export NEEDRESTART_SUSPEND=1 NEEDRESTART_MODE=l

sudo_=()
if [ "$(id -u)" -ne 0 ]; then
    sudo_=(sudo)
fi

log() { echo "install-deps: $*" >&2; }

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

have_deb() { compgen -G "$cache/busybox-static_*_$1.deb" >/dev/null; }

updated=0
apt_update() {
    if [ "$updated" -eq 0 ]; then
        log "apt-get update"
        "${sudo_[@]}" apt-get update -qq
        updated=1
    fi
}

if [ "${#missing[@]}" -gt 0 ] || [ "$force" -eq 1 ]; then
    apt_update
    if [ "${#missing[@]}" -gt 0 ]; then
        log "installing: ${missing[*]}"
    fi
    # Installing docker.io/containerd runs their postinst, which asks
    # invoke-rc.d to start the daemons. There is no init system here
    # (no systemd as PID 1), so that start would fail and take the whole
    # install down with it. A policy-rc.d that answers 101 ("action not
    # allowed") is Debian's documented way to say "do not start services";
    # we add one only for the duration of the install when none exists.
    policy=/usr/sbin/policy-rc.d
    added_policy=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\n# added by airlock scripts/install-deps.sh\nexit 101\n' |
            "${sudo_[@]}" tee "$policy" >/dev/null
        "${sudo_[@]}" chmod 755 "$policy"
        added_policy=1
    fi
    rc=0
    "${sudo_[@]}" apt-get install -y -q --no-install-recommends \
        -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
        "${packages[@]}" >/tmp/airlock-install-deps.$$.log 2>&1 || rc=$?
    if [ "$added_policy" -eq 1 ]; then
        "${sudo_[@]}" rm -f "$policy"
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 40 /tmp/airlock-install-deps.$$.log >&2
        log "apt-get install failed (exit $rc); full log: /tmp/airlock-install-deps.$$.log"
        exit "$rc"
    fi
    rm -f /tmp/airlock-install-deps.$$.log
else
    log "all ${#packages[@]} packages already installed"
fi

# busybox-static for both architectures: the seed images' real binaries.
mkdir -p "$cache"
if have_deb amd64 && have_deb arm64 && [ "$force" -eq 0 ]; then
    log "busybox-static .debs already in $cache"
else
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        log "dpkg --add-architecture arm64"
        "${sudo_[@]}" dpkg --add-architecture arm64
        updated=0
    fi
    # The arm64 package lists appear only after an update that follows
    # add-architecture; a plain update is needed anyway on a fresh machine.
    if ! apt-cache show busybox-static:arm64 >/dev/null 2>&1; then
        updated=0
    fi
    apt_update
    log "downloading busybox-static (amd64, arm64) into $cache"
    tmp=$(mktemp -d "$cache/.dl.XXXXXX")
    # apt-get download writes into the current directory; as root it drops
    # privileges to _apt, which must be able to write there.
    chmod 777 "$tmp"
    (cd "$tmp" && apt-get download -q busybox-static:amd64 busybox-static:arm64 >/dev/null)
    for f in "$tmp"/*.deb; do
        mv -f "$f" "$cache/"
    done
    rmdir "$tmp"
fi
have_deb amd64 && have_deb arm64 || { log "busybox-static .debs missing in $cache"; exit 1; }
log "done"
