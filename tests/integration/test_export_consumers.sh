#!/usr/bin/env bash
# Export a 10-image list for linux/amd64 to one hybrid .tar and load it into
# every consumer:
#   - the tar holds each needed blob (manifest, config, layers of the amd64
#     image) exactly once, blobs shared between images included, nothing else,
#     each blob named by its own hash; its size is the blobs' sum within 1%
#     (plus tar's own 512-byte headers and padding);
#   - manifest.json and index.json name every image once, in full;
#   - containerd: `ctr images import` (unpacking) exits 0 and every image is
#     complete and unpacked; `--all-platforms --no-unpack` (k3s) loads all;
#     each image's target is the registry's linux/amd64 manifest digest;
#   - without --decompress-zstd-layers, a warning names the zstd image;
#     with it, `docker load` (20.10) loads all, RepoTags + Architecture right;
#   - podman load lists each full docker.io name (no localhost/);
#   - skopeo inspect docker-archive:OUT:REF reads each image.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need tar
need skopeo
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"
PLAT=linux/amd64

# Multi-arch (Docker list, OCI index, nested index) and single-arch images,
# Docker and OCI media types, a zstd layer; all but pause share the busybox
# base layer.
keys=(
    library/busybox:1.36
    rancher/mirrored-pause:3.6
    library/alpine-ish:3.19
    rancher/local-path-provisioner:v0.0.26
    rancher/mirrored-coredns-coredns:1.10.1
    calico/node:v3.28.0
    library/nested:1
    rancher/zstd-image:1
    library/amd-only:1
    library/victim:1
)
n=${#keys[@]}
work=$(tmpdir consumers)
list=$work/images.txt
for k in "${keys[@]}"; do echo "$k"; done >"$list"
store=$work/store
fetch_seeded "$store" "$work" -f "$list"

# 1. Export -------------------------------------------------------------------
out=$work/images.tar
run_export "$work/exp" --store "$store" -f "$list" --platform "$PLAT" -o "$out"
expect_rc 0 "$work/exp" "airlock-export"
assert_file "$out" "the tarball"
[ ! -e "$out.partial" ] || fail "$out.partial left behind"
# Docker 20.10 cannot load a zstd layer: the export says so, naming the image.
assert_grep 'warning.*rancher/zstd-image:1.*zstd' "$work/exp.err" "stderr of the export without --decompress-zstd-layers"

# 2. The tarball's contents ---------------------------------------------------
tar --numeric-owner -tvf "$out" >"$work/listing" || fail "tar cannot list $out"
dups=$(awk '{ print $6 }' "$work/listing" | sort | uniq -d)
assert_eq "" "$dups" "entries present more than once"
want=$(for k in "${keys[@]}"; do seed_platform_blobs "$k" "$PLAT"; done | sort -u)
have=$(awk '$6 ~ /^blobs\/sha256\/./ { sub(/^blobs\/sha256\//, "sha256:", $6); print $6 }' "$work/listing" | sort)
assert_eq "$want" "$have" "blobs in the tarball (each needed one, once, nothing else)"
# Non-vacuous: the list does share layers.
shared=$(for k in "${keys[@]}"; do
    seed_blobs "$k" ".kind == \"layer\" and (.platforms | index(\"$PLAT\"))"
done | sort | uniq -d | wc -l)
[ "$shared" -gt 0 ] || fail "the test list shares no layer"
others=$(awk '$6 !~ /^blobs\/sha256\/./ { print $6 }' "$work/listing" | sort | tr '\n' ' ')
assert_eq "blobs/ blobs/sha256/ index.json manifest.json oci-layout repositories " "$others" \
    "entries besides the blobs"

x=$work/x
mkdir "$x"
tar -xf "$out" -C "$x"
for d in $have; do
    h=$(sha256sum "$x/blobs/sha256/${d#sha256:}" | cut -d' ' -f1)
    assert_eq "${d#sha256:}" "$h" "sha256 of the tarball's blob"
done

# Size: each blob once means the tarball is the sum of its unique blobs,
# within 1%, once tar's own framing is set aside (a 512-byte header per entry,
# data padded to 512, two zero blocks at the end, at most one 10 KiB record).
read -r blob_sum meta_sum framing < <(awk '
    { size = $3; framing += 512 + (int((size + 511) / 512) * 512 - size) }
    $6 ~ /^blobs\/sha256\/./ { blobs += size; next }
    { meta += size }
    END { printf "%d %d %d\n", blobs, meta, framing + 1024 }' "$work/listing")
size=$(stat -c %s "$out")
[ "$size" -ge $((blob_sum + meta_sum + framing)) ] ||
    fail "tarball of $size bytes is smaller than its entries ($blob_sum + $meta_sum + $framing)"
assert_le $((blob_sum + blob_sum / 100 + meta_sum + framing + 10240)) "$size" \
    "tarball size (unique blobs $blob_sum B, metadata $meta_sum B, tar framing $framing B)"
note "tarball $size B; unique blobs $blob_sum B; tar framing $framing B; metadata $meta_sum B"

# manifest.json (docker load) and index.json (containerd): each image once,
# under its full name, pointing at its linux/amd64 manifest and config.
mj=$x/manifest.json ij=$x/index.json
assert_eq "$n" "$(jq length "$mj")" "manifest.json entries"
assert_eq "$n" "$(jq '.manifests | length' "$ij")" "index.json entries"
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    e=$(jq -c --arg n "$name" '[.[] | select(.RepoTags | index($n))]' "$mj")
    assert_eq 1 "$(jq length <<<"$e")" "manifest.json entries for $name"
    assert_eq "blobs/sha256/$(seed_config_for "$k" "$PLAT" | cut -d: -f2)" "$(jq -r '.[0].Config' <<<"$e")" \
        "manifest.json Config of $name"
    for l in $(jq -r '.[0].Layers[]' <<<"$e"); do
        [ -f "$x/$l" ] || fail "manifest.json of $name names $l, not in the tarball"
    done
    assert_eq "$(seed_manifest_for "$k" "$PLAT")" \
        "$(jq -r --arg n "$name" '.manifests[] | select(.annotations["io.containerd.image.name"] == $n) | .digest' "$ij")" \
        "index.json digest of $name"
done

# 3. containerd ---------------------------------------------------------------
# Shared consumers (scripts/test.sh) are left empty for the next test; private
# ones are simply stopped.
[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"
# The unpacking import checks every layer against its config's diff_id. A
# failed unpack still leaves the image record: check the status and UNPACKED.
load_containerd "$out" >"$work/ctr1" 2>&1 || { show "$work/ctr1"; fail "ctr images import (unpacking) failed"; }
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    assert_eq "$(seed_manifest_for "$k" "$PLAT")" "$(containerd_image_target "$name" || true)" \
        "containerd target of $name"
    assert_eq "complete true" "$(containerd_image_check "$name" || true)" \
        "containerd status and unpacked state of $name"
done
consumers_reset || fail "could not empty the consumers"
load_containerd "$out" --all-platforms --no-unpack >"$work/ctr2" 2>&1 ||
    { show "$work/ctr2"; fail "ctr images import --all-platforms --no-unpack failed"; }
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    assert_eq "$(seed_manifest_for "$k" "$PLAT")" "$(containerd_image_target "$name" || true)" \
        "containerd target of $name (--no-unpack)"
    assert_eq "complete false" "$(containerd_image_check "$name" || true)" \
        "containerd status of $name (--no-unpack)"
done
assert_eq "$n" "$(al_ctr images ls -q | wc -l)" "images in containerd"

# 4. dockerd: needs the zstd layer decompressed --------------------------------
outd=$work/images-docker.tar
run_export "$work/expd" --store "$store" -f "$list" --platform "$PLAT" -o "$outd" --decompress-zstd-layers
expect_rc 0 "$work/expd" "airlock-export --decompress-zstd-layers"
assert_no_grep 'warning' "$work/expd.err" "stderr of the export with --decompress-zstd-layers"
load_docker "$outd" >"$work/docker" 2>&1 || { show "$work/docker"; fail "docker load failed"; }
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    assert_eq "[\"$(familiar_name "$name")\"] amd64" "$(docker_repotags_arch "$name" 2>&1 || true)" \
        "docker RepoTags and Architecture of $name"
    assert_eq "$(seed_config_for "$k" "$PLAT")" "$(al_docker image inspect --format '{{.Id}}' "$name" 2>&1 || true)" \
        "docker image id (config digest) of $name"
done

# 5. podman -------------------------------------------------------------------
load_podman "$out" >"$work/podman" 2>&1 || { show "$work/podman"; fail "podman load failed"; }
al_podman images --noheading --format '{{.Repository}}:{{.Tag}}' >"$work/podman-images"
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    podman_has "$name" || { show "$work/podman-images"; fail "podman does not list $name"; }
done
assert_no_grep '^localhost/' "$work/podman-images" "podman's image names"

# 6. skopeo -------------------------------------------------------------------
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    skopeo_inspect_archive "$out" "$name" >"$work/skopeo.json" 2>"$work/skopeo.err" ||
        { show "$work/skopeo.err"; fail "skopeo inspect docker-archive:$out:$name"; }
    assert_eq "${name%:*} amd64" "$(jq -r '.Name + " " + .Architecture' "$work/skopeo.json")" \
        "skopeo Name and Architecture of $name"
done

note "ok"
