#!/usr/bin/env bash
# The image graph's one set of rules (common/graph.h, DESIGN.md "The image
# graph"), end to end, on exact bytes pushed here with the registry API (curl:
# monolithic blob upload, manifest PUT):
#   - a nested index of depth 5 (five index levels above an amd64 and an arm64
#     image): fetched, exported for both platforms (containerd imports each,
#     the targets are the pushed manifests), --verify-store clean, --prune
#     keeps every blob, --remove takes them all;
#   - depth 8 (the limit) is fetched and exported; depth 9 is refused by fetch
#     with one line naming the ref and the limit, and nothing is committed;
#   - issue 15 item 14, from the fake registry: an index entry typed as an
#     image manifest whose body is an index, and an image whose config is not
#     JSON, fail the image at fetch (before, fetch stored both and export
#     refused them): no tag row, no blob, --verify-store clean.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need curl
need python3
need tar
need gzip
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"
LIMIT=8 # AL_GRAPH_MAX_INDEX_LEVELS
work=$(tmpdir graph)
REG=$AL_REG_PLAIN
OCI_INDEX=application/vnd.oci.image.index.v1+json
OCI_MANIFEST=application/vnd.oci.image.manifest.v1+json
OCI_CONFIG=application/vnd.oci.image.config.v1+json
OCI_LAYER=application/vnd.oci.image.layer.v1.tar+gzip
C=(curl -fsS --max-time 30)

sha() { echo "sha256:$(sha256sum <"$1" | cut -d' ' -f1)"; }
size() { stat -c %s "$1"; }

# push_blob REPO FILE: monolithic upload (POST, then PUT with the digest).
push_blob() {
    local repo=$1 f=$2 d loc
    d=$(sha "$f")
    loc=$("${C[@]}" -D - -o /dev/null -X POST "http://$REG/v2/$repo/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [ -n "$loc" ] || fail "no upload location for $repo"
    case $loc in http*) ;; *) loc=http://$REG$loc ;; esac
    "${C[@]}" -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary @"$f" "$loc&digest=$d" || fail "upload of $f to $repo failed"
}
# push_manifest REPO REF FILE MEDIA-TYPE
push_manifest() {
    local code
    code=$("${C[@]}" -o "$work/put.out" -w '%{http_code}' -X PUT -H "Content-Type: $4" \
        --data-binary @"$3" "http://$REG/v2/$1/manifests/$2") || true
    [ "$code" = 201 ] || { show "$work/put.out"; fail "PUT $1/manifests/$2: HTTP $code"; }
}

# image REPO ARCH DIR: a one-layer OCI image for ARCH, pushed by digest;
# DIR/manifest.json is its manifest (DIR/digest its digest).
image() {
    local repo=$1 arch=$2 d=$3
    mkdir -p "$d/root"
    echo "built for $arch in $repo by test_graph_depth" >"$d/root/hello-$arch"
    tar -C "$d/root" --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$d/layer.tar" .
    gzip -n -c "$d/layer.tar" >"$d/layer.tgz"
    printf '{"architecture":"%s","os":"linux","config":{"Cmd":["/hello-%s"]},"rootfs":{"type":"layers","diff_ids":["%s"]}}' \
        "$arch" "$arch" "$(sha "$d/layer.tar")" >"$d/config.json"
    push_blob "$repo" "$d/layer.tgz"
    push_blob "$repo" "$d/config.json"
    printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":%d}]}' \
        "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha "$d/config.json")" "$(size "$d/config.json")" \
        "$OCI_LAYER" "$(sha "$d/layer.tgz")" "$(size "$d/layer.tgz")" >"$d/manifest.json"
    sha "$d/manifest.json" >"$d/digest"
    push_manifest "$repo" "$(cat "$d/digest")" "$d/manifest.json" "$OCI_MANIFEST"
}

# chain REPO LEVELS: LEVELS nested OCI indexes above an amd64 and an arm64
# image, children pushed first; the root is tagged 1. Prints the root digest.
chain() {
    local repo=$1 levels=$2 d=$work/$1 l body child
    mkdir -p "$d"
    image "$repo" amd64 "$d/amd64"
    image "$repo" arm64 "$d/arm64"
    printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}},{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"arm64","os":"linux"}}]}' \
        "$OCI_INDEX" "$OCI_MANIFEST" "$(cat "$d/amd64/digest")" "$(size "$d/amd64/manifest.json")" \
        "$OCI_MANIFEST" "$(cat "$d/arm64/digest")" "$(size "$d/arm64/manifest.json")" >"$d/index-$levels.json"
    for ((l = levels; l >= 1; l--)); do
        body=$d/index-$l.json
        if [ "$l" -lt "$levels" ]; then
            child=$d/index-$((l + 1)).json
            printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d}]}' \
                "$OCI_INDEX" "$OCI_INDEX" "$(sha "$child")" "$(size "$child")" >"$body"
        fi
        push_manifest "$repo" "$(sha "$body")" "$body" "$OCI_INDEX"
    done
    push_manifest "$repo" 1 "$d/index-1.json" "$OCI_INDEX"
    sha "$d/index-1.json"
}

snapshot() { # STORE: files and rows, to compare before and after
    (cd "$1" && find blobs -type f | sort && sha256sum index.json)
    db "$1" 'SELECT full_name, digest FROM tags ORDER BY full_name'
    db "$1" 'SELECT digest FROM blobs ORDER BY digest'
}

verify_clean() { # STORE WHAT
    run_export "$work/verify" --store "$1" --verify-store
    expect_rc 0 "$work/verify" "--verify-store ($2)"
    assert_grep '^store OK' "$work/verify.out" "--verify-store ($2)"
}

root5=$(chain graph/deep5 5)
root8=$(chain graph/deep8 "$LIMIT")
root9=$(chain graph/deep9 $((LIMIT + 1)))
amd5=$(cat "$work/graph/deep5/amd64/digest")
arm5=$(cat "$work/graph/deep5/arm64/digest")

# 1. Depth 5: fetch ------------------------------------------------------------
A=$work/store-a
fetch_seeded "$A" "$work" graph/deep5:1
line=$(line_for "$work/fetch.out" docker.io/graph/deep5:1)
[[ $line == "ok "*"$root5"*"linux/amd64,linux/arm64"* ]] || { show "$work/fetch.out"; fail "fetch of depth 5: '$line'"; }
assert_eq "5 2" "$(db "$A" 'SELECT sum(is_index), sum(1 - is_index) FROM manifests' | tr '|' ' ')" \
    "index and image manifest rows of depth 5"
assert_eq 6 "$(db "$A" "SELECT count(*) FROM edges WHERE kind = 'manifest'")" "manifest edges of depth 5"
assert_eq 11 "$(store_blobs "$A" | wc -l)" "blobs of depth 5 (5 indexes, 2 manifests, 2 configs, 2 layers)"

# 2. Export both platforms, load each into containerd --------------------------
out=$work/out
mkdir "$out"
run_export "$work/exp5" --store "$A" --platform linux/amd64,linux/arm64 -o "$out/deep-{arch}.tar" graph/deep5:1
expect_rc 0 "$work/exp5" "export of depth 5"
for arch in amd64 arm64; do
    d=$work/graph/deep5/$arch
    want=$(printf '%s\n' "$(cat "$d/digest")" "$(sha "$d/config.json")" "$(sha "$d/layer.tgz")" | sort)
    have=$(tar -tf "$out/deep-$arch.tar" | sed -n 's|^blobs/sha256/\(.\)|sha256:\1|p' | sort)
    assert_eq "$want" "$have" "blobs in deep-$arch.tar"
done
[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"
load_containerd "$out/deep-amd64.tar" >"$work/ctr-amd64" 2>&1 ||
    { show "$work/ctr-amd64"; fail "ctr images import (unpacking) deep-amd64.tar"; }
assert_eq "$amd5" "$(containerd_image_target docker.io/graph/deep5:1 || true)" "containerd target from deep-amd64.tar"
containerd_image_ready docker.io/graph/deep5:1 || fail "containerd: deep5 is not complete and unpacked"
consumers_reset || fail "could not empty the consumers"
load_containerd "$out/deep-arm64.tar" --all-platforms --no-unpack >"$work/ctr-arm64" 2>&1 ||
    { show "$work/ctr-arm64"; fail "ctr images import --all-platforms --no-unpack deep-arm64.tar"; }
assert_eq "$arm5" "$(containerd_image_target docker.io/graph/deep5:1 || true)" "containerd target from deep-arm64.tar"
consumers_reset || fail "could not empty the consumers"

# 3. --verify-store, --prune keeps it ----------------------------------------------
verify_clean "$A" "depth 5"
before=$(snapshot "$A")
run_fetch "$work/prune" --store "$A" --prune
expect_rc 0 "$work/prune" "--prune"
assert_grep '^pruned 0 blobs' "$work/prune.out" "--prune of a store holding depth 5"
assert_eq "$before" "$(snapshot "$A")" "the store after --prune"

# 4. Issue 15 item 14, against the fake registry ------------------------------------
# bad/kind:1, an index whose entry is typed image manifest but whose body is an
# index (over a complete amd64 image); bad/config:1, an image whose config is
# not JSON (its layer is served: only the config is wrong).
f=$work/fake
mkdir "$f"
k=$work/graph/deep5/amd64
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}' \
    "$OCI_INDEX" "$OCI_MANIFEST" "$(cat "$k/digest")" "$(size "$k/manifest.json")" >"$f/inner.json"
printf '{"schemaVersion":2,"mediaType":"%s","manifests":[{"mediaType":"%s","digest":"%s","size":%d,"platform":{"architecture":"amd64","os":"linux"}}]}' \
    "$OCI_INDEX" "$OCI_MANIFEST" "$(sha "$f/inner.json")" "$(size "$f/inner.json")" >"$f/kind.json"
printf 'this is not JSON\n' >"$f/config"
printf '{"schemaVersion":2,"mediaType":"%s","config":{"mediaType":"%s","digest":"%s","size":%d},"layers":[{"mediaType":"%s","digest":"%s","size":%d}]}' \
    "$OCI_MANIFEST" "$OCI_CONFIG" "$(sha "$f/config")" "$(size "$f/config")" \
    "$OCI_LAYER" "$(sha "$k/layer.tgz")" "$(size "$k/layer.tgz")" >"$f/cfg.json"
python3 - "$f/routes.json" "$f" "$k" <<'PY'
import hashlib, json, sys
routes, f, k = sys.argv[1:4]
def sha(p): return "sha256:" + hashlib.sha256(open(p, "rb").read()).hexdigest()
def r(path, ct): return {"status": 200, "headers": {"Content-Type": ct, "Docker-Content-Digest": sha(path)}, "body_file": path}
IDX, MAN, OCT = "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json", "application/octet-stream"
out = {}
for repo, root in (("bad/kind", f + "/kind.json"), ("bad/config", f + "/cfg.json")):
    out[f"/v2/{repo}/manifests/1"] = r(root, IDX if root.endswith("kind.json") else MAN)
    out[f"/v2/{repo}/manifests/{sha(root)}"] = r(root, IDX if root.endswith("kind.json") else MAN)
out[f"/v2/bad/kind/manifests/{sha(f + '/inner.json')}"] = r(f + "/inner.json", IDX)
out[f"/v2/bad/kind/manifests/{sha(k + '/manifest.json')}"] = r(k + "/manifest.json", MAN)
for repo in ("bad/kind", "bad/config"):
    for blob in (k + "/config.json", k + "/layer.tgz", f + "/config"):
        out[f"/v2/{repo}/blobs/{sha(blob)}"] = r(blob, OCT)
json.dump(out, open(routes, "w"), indent=1)
PY
fake_registry_up "$f/srv" "$f/routes.json" --log "$f/log"
fake=127.0.0.1:$FAKE_PORT
before=$(snapshot "$A")
for case in "kind|descriptor names an image manifest.*content is an index|$(sha "$f/inner.json")" \
    "config|config $(sha "$f/config").*not valid JSON|$(sha "$f/config")"; do
    IFS='|' read -r repo re blob <<<"$case"
    run_fetch "$work/bad-$repo" --store "$A" --registry "$fake" --insecure-registry "$fake" "bad/$repo:1"
    expect_rc 1 "$work/bad-$repo" "fetch of bad/$repo:1"
    assert_grep "^FAILED +docker\.io/bad/$repo:1 .*$re" "$work/bad-$repo.out" "result of bad/$repo:1"
    grep -q " $blob" "$work/bad-$repo.out" || { show "$work/bad-$repo.out"; fail "bad/$repo:1: the error does not name $blob"; }
    assert_eq "" "$(db "$A" "SELECT full_name FROM tags WHERE full_name = 'docker.io/bad/$repo:1'")" "tag row of bad/$repo:1"
    assert_eq "$before" "$(snapshot "$A")" "the store after bad/$repo:1"
    grep -q "GET /v2/bad/$repo/" "$f/log" || fail "bad/$repo:1 never reached the fake registry"
done
verify_clean "$A" "after the refused images"

# 5. --remove takes every blob of depth 5 -----------------------------------------
run_fetch "$work/remove" --store "$A" --remove graph/deep5:1
expect_rc 0 "$work/remove" "--remove graph/deep5:1"
assert_grep '^pruned 11 blobs' "$work/remove.out" "--remove of depth 5"
assert_eq 0 "$(store_blobs "$A" | wc -l)" "blobs left after --remove"
assert_eq "0 0" "$(db "$A" 'SELECT (SELECT count(*) FROM blobs), (SELECT count(*) FROM tags)' | tr '|' ' ')" \
    "blob and tag rows left after --remove"
verify_clean "$A" "after --remove"

# 6. The limit: depth 8 goes through, depth 9 is refused ---------------------------
B=$work/store-b
fetch_seeded "$B" "$work" graph/deep8:1
[[ $(line_for "$work/fetch.out" docker.io/graph/deep8:1) == "ok "*"$root8"* ]] || { show "$work/fetch.out"; fail "fetch of depth $LIMIT"; }
run_export "$work/exp8" --store "$B" --platform linux/arm64 -o "$out/deep8.tar" graph/deep8:1
expect_rc 0 "$work/exp8" "export of depth $LIMIT"
tar -tf "$out/deep8.tar" | sed 's|blobs/sha256/|sha256:|' >"$work/deep8.list"
assert_grep "$(cat "$work/graph/deep8/arm64/digest")" "$work/deep8.list" "the blobs of deep8.tar"
verify_clean "$B" "depth $LIMIT"
before=$(snapshot "$B")
run_fetch "$work/deep9" --store "$B" --registry "$REG" --insecure-registry "$REG" graph/deep9:1
expect_rc 1 "$work/deep9" "fetch of depth $((LIMIT + 1))"
cat "$work/deep9.out" "$work/deep9.err" >"$work/deep9.all"
assert_eq 1 "$(grep -c "levels" "$work/deep9.all")" "lines about the level limit"
assert_grep "^FAILED +docker\.io/graph/deep9:1 .*level $((LIMIT + 1)).*at most $LIMIT levels" "$work/deep9.out" "result of depth $((LIMIT + 1))"
assert_eq "$before" "$(snapshot "$B")" "the store after depth $((LIMIT + 1))"
note "ok (depth 5 and $LIMIT exported, $((LIMIT + 1)) refused; root of depth $((LIMIT + 1)): $root9)"
