#!/usr/bin/env bash
# The whole story, on a fresh Debian 12 machine as root, in one command:
#   install deps (unless --no-deps), build (Release), start a local registry
#   with sample images; then, as an operator would:
#     1. the list, and the fetch into a store (and again: nothing to download);
#     2. the export for k3s: two platforms, .tar.zst, a list that mixes
#        multi-arch and single-arch images (--skip-missing-platforms);
#     3. --check of what was written, offline;
#     4. the import into a real containerd as k3s does it (decompress,
#        ctr images import --all-platforms), and `ctr images ls` next to the
#        registry's platform-manifest digests;
#     5. the k3s images directory with --split image; a tag moves upstream,
#        the nightly fetch sees it, and the next --split export writes only
#        the moved image's archive: every other file keeps its inode and mtime.
#   Everything it started (registries, containerd, dockerd) is stopped by PID.
#
#   scripts/demo.sh [--no-deps] [--dir DIR]
#   AL_BIN=DIR   use airlock-fetch and airlock-export from DIR instead of build/
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
deps=1
demo=$repo/build/demo
while [ $# -gt 0 ]; do
    case $1 in
    --no-deps) deps=0 ;;
    --dir) demo=$2; shift ;;
    -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }
die() { echo "demo.sh: $*" >&2; exit 1; }

if [ "$deps" = 1 ]; then
    step "Installing dependencies"
    bash scripts/install-deps.sh
fi

if [ -z "${AL_BIN:-}" ]; then
    step "Building (Release)"
    cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DAIRLOCK_TESTS=OFF >/dev/null
    cmake --build build -j2 --target airlock-fetch airlock-export >/dev/null
fi
bin=${AL_BIN:-$repo/build}
fetch=$bin/airlock-fetch
export_=$bin/airlock-export
[ -x "$fetch" ] && [ -x "$export_" ] || die "airlock-fetch / airlock-export not built in $bin"

# Everything below is stopped by the PIDs the helpers recorded, whatever happens.
rig_parent=$(mktemp -d /tmp/airlock-demo-rig.XXXXXX)
export AL_RIG_DIR=$rig_parent/rig
consumers_dir=$(mktemp -d /tmp/ald.XXXXXX) # short: containerd's sockets live there
rmdir "$consumers_dir"
stop_all() {
    step "Stopping what the demo started (by PID)"
    bash "$repo/tests/infra/consumers.sh" stop "$consumers_dir" >/dev/null 2>&1 || true
    bash "$repo/tests/infra/rig.sh" stop || true
    rm -rf "$rig_parent"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

step "Starting a local registry and pushing the sample images"
bash tests/infra/rig.sh start --seed
# shellcheck disable=SC1091
. "$AL_RIG_DIR/rig.env"
reg=$AL_REG_PLAIN
# The registry speaks plain HTTP on 127.0.0.1: like docker, airlock-fetch
# allows that for local addresses without a flag (and says so once).
reg_args=(--registry "$reg")

rm -rf "$demo"
mkdir -p "$demo"
store=$demo/store
list=$demo/airgap_images.txt
cat >"$list" <<'EOF'
# A k3s-ish image list. Names are docker.io names; --registry sends the
# requests to the local registry while the store keeps the docker.io names.
busybox:1.36
rancher/mirrored-pause:3.6
rancher/mirrored-coredns-coredns:1.10.1
rancher/local-path-provisioner:v0.0.26   # amd64 only
calico/node:v3.28.0
library/alpine-ish:3.19                  # amd64 only; shares its base layer with busybox
rancher/zstd-image:1                     # amd64 only; a zstd-compressed layer
EOF

step "1. The list, and the fetch into $store"
cat "$list"
run "$fetch" --store "$store" -f "$list" "${reg_args[@]}" --lock "$demo/night1.lock"
step "Fetching again: one request per tag, no blob downloaded"
before=$(wc -l <"$AL_REG_PLAIN_LOG")
run "$fetch" --store "$store" -f "$list" "${reg_args[@]}" -q
sleep 0.3
echo "(the registry saw $(($(wc -l <"$AL_REG_PLAIN_LOG") - before)) requests for the second run)"
run "$export_" --store "$store" --list

step "2. The export for k3s: two platforms, .tar.zst"
out=$demo/out
mkdir -p "$out"
run "$export_" --store "$store" -f "$list" --platform linux/amd64,linux/arm64 \
    --skip-missing-platforms -o "$out/images-{arch}.tar.zst" --json "$out/export-report.json"
ls -l "$out"

step "3. --check: what docker load and containerd import would say, offline"
run "$export_" --check "$out/images-amd64.tar.zst" "$out/images-arm64.tar.zst"

step "4. Import into a real containerd, as k3s does"
bash tests/infra/consumers.sh start "$consumers_dir" >/dev/null
# shellcheck disable=SC1091
. "$consumers_dir/consumers.env"
ctr_() { /usr/bin/ctr --address "$AL_CTR_SOCK" -n k8s.io "$@"; }
# k3s decompresses a .tar.zst itself (with a 32 MiB window), then imports
# the tar with every platform; ctr cannot read zstd, so zstd does that part.
printf '$ zstd -d --memory=32MB -c images-amd64.tar.zst | ctr images import --all-platforms -\n'
zstd -q -d --memory=32MB -c "$out/images-amd64.tar.zst" >"$demo/images-amd64.tar"
ctr_ images import --all-platforms --snapshotter "$AL_CTR_SNAPSHOTTER" "$demo/images-amd64.tar"
printf '$ ctr -n k8s.io images ls\n'
ctr_ images ls
echo
echo "The registry's linux/amd64 manifest digests, and what containerd holds:"
seed=$AL_RIG_DIR/seed.json
bad=0
while read -r ref; do
    name=$(jq -r --arg r "$ref" '.images[$r].name' "$seed")
    want=$(jq -r --arg r "$ref" '.images[$r].manifests[] | select(.kind == "manifest" and
        .platform == "linux/amd64" and (.attestation | not)) | .digest' "$seed")
    have=$(ctr_ images ls | awk -v n="$name" 'NR > 1 && $1 == n { print $3 }')
    mark=same
    [ "$want" = "$have" ] || { mark=DIFFERENT; bad=1; }
    printf '  %-48s registry %.19s…  containerd %.19s…  %s\n' "$name" "$want" "$have" "$mark"
done < <(jq -r '.images | keys[]' "$seed" | grep -xE 'library/busybox:1.36|rancher/mirrored-pause:3.6|rancher/mirrored-coredns-coredns:1.10.1|rancher/local-path-provisioner:v0.0.26|calico/node:v3.28.0|library/alpine-ish:3.19|rancher/zstd-image:1')
[ "$bad" = 0 ] || die "containerd does not hold the registry's digests"

step "5. The k3s images directory, one archive per image (--split image)"
imgdir=$demo/k3s-images
run "$export_" --store "$store" -f "$list" -p linux/amd64 --split image --clean -o "$imgdir/"
snapshot() { (cd "$imgdir" && find . -maxdepth 1 -name '*@*' -printf '%f inode %i mtime %TT\n' | sort); }
snapshot | tee "$demo/before.txt"

step "A tag moves upstream: library/alpine-ish:3.19 is pushed with new content"
python3 tests/infra/seed-images.py --registry "$reg" --as "library/amd-only:1=library/alpine-ish:3.19" \
    --out "$demo/moved.json" 2>&1 | sed 's/^/  /'
step "The nightly fetch"
run "$fetch" --store "$store" -f "$list" "${reg_args[@]}"
sleep 1 # so that a rewritten file would show another mtime
step "The next --split export: only the moved image's archive is new"
run "$export_" --store "$store" -f "$list" -p linux/amd64 --split image --clean -o "$imgdir/" \
    --json "$demo/split-report.json"
snapshot | tee "$demo/after.txt"
echo
echo "Files that changed (k3s' .cache.json skips every other one):"
diff "$demo/before.txt" "$demo/after.txt" | sed -n 's/^[<>] /  /p' || true
changed=$(jq -r '.archives[] | select(.status == "written") | .name' "$demo/split-report.json")
[ "$changed" = "docker.io/library/alpine-ish:3.19" ] || die "expected only alpine-ish to be written, got: $changed"
echo
echo "Done. The store, the tarballs and the images directory are in $demo."
