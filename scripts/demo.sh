#!/usr/bin/env bash
# A guided run of airlock-fetch against local registries:
#   install deps (unless --no-deps), build (Release), start the rig, seed it,
#   fetch a sample list of docker.io images through --registry, fetch it
#   again (nothing to download), show what the store holds, stop the rig.
#
#   scripts/demo.sh [--no-deps] [--store DIR]
#   AL_FETCH=PATH   use this airlock-fetch instead of build/airlock-fetch
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
deps=1
store=$repo/build/demo/store
while [ $# -gt 0 ]; do
    case $1 in
    --no-deps) deps=0 ;;
    --store) store=$2; shift ;;
    -h | --help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

if [ "$deps" = 1 ]; then
    step "Installing dependencies"
    bash scripts/install-deps.sh
fi

step "Building (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j2 >/dev/null
fetch=${AL_FETCH:-$repo/build/airlock-fetch}
[ -x "$fetch" ] || { echo "demo.sh: $fetch was not built" >&2; exit 1; }

step "Starting local registries and pushing the test images"
rig_parent=$(mktemp -d /tmp/airlock-demo-rig.XXXXXX)
export AL_RIG_DIR=$rig_parent/rig
stop_rig() {
    step "Stopping the registries"
    bash "$repo/tests/infra/rig.sh" stop || true
    rm -rf "$rig_parent"
}
trap stop_rig EXIT
bash tests/infra/rig.sh start --seed
# shellcheck disable=SC1091
. "$AL_RIG_DIR/rig.env"

mkdir -p "$(dirname "$store")"
rm -rf "$store"
list=$(dirname "$store")/images.txt
cat >"$list" <<'EOF'
# A k3s-ish image list. Names are docker.io names; --registry sends the
# requests to the local registry while the store keeps the docker.io names.
busybox:1.36
rancher/mirrored-pause:3.6
rancher/mirrored-coredns-coredns:1.10.1
rancher/local-path-provisioner:v0.0.26
calico/node:v3.28.0
library/alpine-ish:3.19          # shares its base layer with busybox
rancher/zstd-image:1             # a zstd-compressed layer
EOF

step "The list"
cat "$list"

step "Fetching into $store"
rc=0
run "$fetch" --store "$store" -f "$list" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" || rc=$?
echo "(exit $rc)"

step "Fetching again: every tag is checked, no blob is downloaded"
before=$(wc -l <"$AL_REG_PLAIN_LOG")
run "$fetch" --store "$store" -f "$list" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" || rc=$?
sleep 0.3
echo "(the registry saw $(($(wc -l <"$AL_REG_PLAIN_LOG") - before)) requests for the second run)"

step "The store"
if [ -d "$store" ]; then
    (
        cd "$store"
        for f in oci-layout index.json airlock.db; do
            [ -e "$f" ] && printf '%-28s %10s bytes\n' "$f" "$(stat -c %s "$f")"
        done
        n=$(find blobs/sha256 -type f 2>/dev/null | wc -l)
        printf '%-28s %10s blobs, %s\n' "blobs/sha256/" "$n" "$(du -sh blobs 2>/dev/null | cut -f1)"
    )
fi

step "Tags in airlock.db (digest and platforms)"
db=$store/airlock.db
if [ -f "$db" ]; then
    # The platforms come from the image manifests under each tag: the
    # children of an index, or the manifest itself.
    if ! sqlite3 -header -column "$db" "
        SELECT t.full_name AS tag, substr(t.digest, 1, 19) || '…' AS digest,
          COALESCE(
            (SELECT group_concat(m.os || '/' || m.arch ||
                     CASE WHEN COALESCE(m.variant, '') <> '' THEN '/' || m.variant ELSE '' END, ',')
               FROM edges e JOIN manifests m ON m.digest = e.child_digest
              WHERE e.parent_digest = t.digest AND m.is_index = 0),
            (SELECT m.os || '/' || m.arch FROM manifests m
              WHERE m.digest = t.digest AND m.is_index = 0),
            '-') AS platforms
        FROM tags t ORDER BY t.full_name" 2>/dev/null; then
        sqlite3 -header -column "$db" "SELECT full_name, digest FROM tags ORDER BY full_name"
    fi
fi

step "index.json"
if [ -f "$store/index.json" ]; then
    jq -c '.manifests[] | {name: .annotations["io.containerd.image.name"], digest: (.digest[0:19] + "…"), mediaType}' \
        "$store/index.json"
fi
exit "$rc"
