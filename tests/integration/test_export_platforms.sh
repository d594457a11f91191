#!/usr/bin/env bash
# One export run, two platforms: --platform linux/amd64,linux/arm64
# -o images-{arch}.tar.zst writes images-amd64.tar.zst and images-arm64.tar.zst.
#   - each file is one zstd frame whose window is at most 32 MiB and
#     decompresses with a decoder capped at 32 MiB (zstd -d --memory=32MB);
#   - each holds exactly the blobs of its own platform's images, and every
#     config in it says its architecture;
#   - containerd loads each with --all-platforms --no-unpack (as k3s does):
#     targets are the registry's manifests for that platform, `ctr images ls`
#     and the configs containerd stored say that architecture only;
#   - the same holds at --level 22 for a tarball bigger than 32 MiB, where
#     libzstd alone would pick a 64 MiB window.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need tar
need zstd
need python3
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"
MAX_WINDOW=$((32 * 1024 * 1024))

keys=(
    library/busybox:1.36                    # Docker manifest list
    rancher/mirrored-pause:3.6              # OCI index + attestation
    rancher/mirrored-coredns-coredns:1.10.1 # OCI index
    calico/node:v3.28.0                     # Docker list, 3 layers
    library/nested:1                        # index of an index
)
work=$(tmpdir platforms)
store=$work/store
fetch_seeded "$store" "$work" "${keys[@]}"

# window_of FILE.zst: the Window Size of its (single) frame, in bytes.
window_of() {
    local lv
    lv=$(zstd -lv "$1" 2>&1) || { echo "$lv" >&2; fail "zstd -lv $1"; }
    assert_eq 1 "$(sed -nE 's/^# Zstandard Frames: ([0-9]+).*/\1/p' <<<"$lv")" "zstd frames in $1"
    sed -nE 's/^Window Size: .*\(([0-9]+) B\).*/\1/p' <<<"$lv"
}
# unzstd FILE.zst OUT.tar: decompress as k3s does, with a decoder limited to
# a 32 MiB window.
unzstd() {
    zstd -q -d --memory=32MB -c "$1" >"$2" 2>"$2.err" ||
        { show "$2.err"; fail "zstd -d --memory=32MB $1"; }
}

# 1. One run, two files -------------------------------------------------------
out=$work/out
mkdir "$out"
run_export "$work/exp" --store "$store" --platform linux/amd64,linux/arm64 \
    -o "$out/images-{arch}.tar.zst" "${keys[@]}"
expect_rc 0 "$work/exp" "airlock-export --platform linux/amd64,linux/arm64"
assert_eq "images-amd64.tar.zst images-arm64.tar.zst" "$(cd "$out" && echo *)" "files written"

[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"

for arch in amd64 arm64; do
    plat=linux/$arch
    f=$out/images-$arch.tar.zst
    w=$(window_of "$f")
    [ -n "$w" ] || fail "no Window Size for $f"
    assert_le "$MAX_WINDOW" "$w" "zstd window of $f"
    tarf=$work/images-$arch.tar
    unzstd "$f" "$tarf"

    # The blobs of this platform's images, and no other.
    want=$(for k in "${keys[@]}"; do seed_platform_blobs "$k" "$plat"; done | sort -u)
    have=$(tar -tf "$tarf" | sed -n 's|^blobs/sha256/\(.\)|sha256:\1|p' | sort)
    assert_eq "$want" "$have" "blobs in images-$arch.tar"
    x=$work/x-$arch
    mkdir "$x"
    tar -xf "$tarf" -C "$x" manifest.json
    for c in $(jq -r '.[].Config' "$x/manifest.json"); do
        tar -xf "$tarf" -C "$x" "$c"
        assert_eq "$arch" "$(jq -r .architecture "$x/$c")" "architecture of config $c in images-$arch.tar"
    done
    assert_eq "${#keys[@]}" "$(jq length "$x/manifest.json")" "manifest.json entries of images-$arch.tar"

    # k3s: ctr images import --all-platforms --no-unpack.
    load_containerd "$tarf" --all-platforms --no-unpack >"$work/ctr-$arch" 2>&1 ||
        { show "$work/ctr-$arch"; fail "ctr images import --all-platforms --no-unpack images-$arch.tar"; }
    al_ctr images ls >"$work/ls-$arch"
    for k in "${keys[@]}"; do
        name=$(seed_name "$k")
        assert_eq "$(seed_manifest_for "$k" "$plat")" "$(containerd_image_target "$name" || true)" \
            "containerd target of $name from images-$arch.tar"
        # PLATFORMS column: linux/amd64, or linux/arm64/v8.
        p=$(awk -v n="$name" 'NR > 1 && $1 == n { print $(NF - 1) }' "$work/ls-$arch")
        case $p in
        "linux/$arch" | "linux/$arch/"*) ;;
        *) show "$work/ls-$arch"; fail "ctr images ls: $name from images-$arch.tar has platforms '$p'" ;;
        esac
        cfg=$(seed_config_for "$k" "$plat")
        assert_eq "$arch" "$(al_ctr content get "$cfg" | jq -r .architecture)" \
            "architecture of the config containerd holds for $name"
    done
    assert_eq "${#keys[@]}" "$(al_ctr images ls -q | wc -l)" "images in containerd after images-$arch.tar"
    consumers_reset || fail "could not empty the consumers"
done

# 2. The window cap, where it matters ------------------------------------------
# Levels 21-22 would give a tarball over 32 MiB a window over 32 MiB. A 40 MiB
# uncompressed layer of zeros makes such a tarball quickly (zeros compress
# fast even at level 22). Pushed here, so the shared rig need not carry it.
big=airlock-test/window:1
python3 - "$AL_REG_PLAIN" "${big%:*}" "${big#*:}" <<'EOF' || fail "could not push $big"
import hashlib, http.client, io, json, sys, tarfile, urllib.parse
reg, repo, tag = sys.argv[1:4]
def sha(b): return "sha256:" + hashlib.sha256(b).hexdigest()
buf = io.BytesIO()
with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
    ti = tarfile.TarInfo("zeros"); ti.size = 40 << 20; ti.mode = 0o644
    t.addfile(ti, io.BytesIO(bytes(ti.size)))
layer = buf.getvalue()
config = json.dumps({"architecture": "amd64", "os": "linux",
                     "config": {"Cmd": ["/zeros"]},
                     "rootfs": {"type": "layers", "diff_ids": [sha(layer)]}}).encode()
manifest = json.dumps({"schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}]}).encode()
def req(method, path, body=None, headers={}):
    c = http.client.HTTPConnection(reg, timeout=60)
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse(); r.read(); c.close()
    return r
for blob in (layer, config):
    r = req("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
    assert r.status == 202, r.status
    loc = urllib.parse.urlsplit(r.getheader("Location"))
    q = (loc.query + "&" if loc.query else "") + "digest=" + sha(blob)
    r = req("PUT", loc.path + "?" + q, blob, {"Content-Type": "application/octet-stream"})
    assert r.status == 201, r.status
r = req("PUT", f"/v2/{repo}/manifests/{tag}", manifest,
        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
assert r.status == 201, r.status
EOF
store2=$work/store-big
fetch_seeded "$store2" "$work" "$big"
run_export "$work/exp-big" --store "$store2" --platform linux/amd64 --level 22 \
    -o "$out/big-{arch}.tar.zst" "$big"
expect_rc 0 "$work/exp-big" "airlock-export --level 22"
f=$out/big-amd64.tar.zst
assert_file "$f" "the level-22 tarball"
unzstd "$f" "$work/big.tar"
size=$(stat -c %s "$work/big.tar")
[ "$size" -gt "$MAX_WINDOW" ] || fail "the level-22 tarball is only $size bytes: it cannot show the cap"
w=$(window_of "$f")
[ -n "$w" ] || fail "no Window Size for $f"
assert_le "$MAX_WINDOW" "$w" "zstd window of a $size-byte tarball at --level 22"
note "windows: level 22, $size-byte tar -> $w B"

note "ok"
