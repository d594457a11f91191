#!/usr/bin/env bash
# Fetch a list of docker.io refs through --registry (the plain rig registry)
# and check the store against what the registry holds:
#   - exit 0, one "ok" line per image (with its digest), then a summary;
#   - every blob byte-identical to the registry's copy, every seeded blob
#     present, attestations left out by default;
#   - index.json: one entry per ref, io.containerd.image.name = full name;
#   - skopeo reads each OCI-typed image back from the layout;
#   - airlock.db: the tags, and a blobs row for exactly the files present;
#   - --platform linux/arm64 stores no amd64-only blob and every arm64 one;
#   - --include-attestations stores the attestation manifest too.
. "$(dirname "$0")/lib.sh"
rig_up
need skopeo

# seed key | how the list writes it (several spellings of docker.io names)
refs=(
    "library/busybox:1.36|busybox:1.36"
    "rancher/mirrored-pause:3.6|docker.io/rancher/mirrored-pause:3.6"
    "library/alpine-ish:3.19|library/alpine-ish:3.19"
    "rancher/local-path-provisioner:v0.0.26|rancher/local-path-provisioner:v0.0.26"
    "rancher/mirrored-coredns-coredns:1.10.1|index.docker.io/rancher/mirrored-coredns-coredns:1.10.1"
    "calico/node:v3.28.0|calico/node:v3.28.0"
    "library/nested:1|docker.io/library/nested:1"
    "rancher/zstd-image:1|rancher/zstd-image:1"
    "library/arm-only:1|arm-only:1"
    "library/amd-only:1|docker.io/amd-only:1"
)
keys=()
work=$(tmpdir basic)
list=$work/images.txt
{
    echo "# airlock integration test: basic list"
    echo
    for r in "${refs[@]}"; do
        keys+=("${r%%|*}")
        echo "  ${r#*|}   # $(seed_name "${r%%|*}")"
    done
} >"$list"
n=${#keys[@]}

# 1. The whole list, all platforms ------------------------------------------
store=$work/store
mark=$(log_mark "$AL_REG_PLAIN_LOG")
note "fetching $n images from $AL_REG_PLAIN"
run_fetch "$work/run1" --store "$store" -f "$list" \
    --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN"
expect_rc 0 "$work/run1" "first fetch"
[ "$(log_since "$AL_REG_PLAIN_LOG" "$mark" | wc -l)" -gt 0 ] ||
    fail "the registry saw no request: --registry was not used"

for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    assert_eq ok "$(word_for "$work/run1.out" "$name")" "result word of $name"
    line_for "$work/run1.out" "$name" | matches -F "$(seed_digest "$k")" ||
        fail "the line of $name does not show its digest $(seed_digest "$k")"
done
assert_eq $((n + 1)) "$(wc -l <"$work/run1.out" | tr -d ' ')" "stdout lines (one per image + summary)"

assert_file "$store/oci-layout" "oci-layout"
assert_eq 1.0.0 "$(jq -r .imageLayoutVersion "$store/oci-layout")" "imageLayoutVersion"

# Blobs: identical to the registry's, each named by its hash.
assert_blobs_match_registry "$store" "$AL_REG_PLAIN_STORAGE"
for d in $(store_blobs "$store"); do
    h=$(sha256sum "$store/blobs/sha256/${d#sha256:}" | cut -d' ' -f1)
    assert_eq "${d#sha256:}" "$h" "hash of blob file"
done
# Every seeded blob of those refs is there; attestation blobs are not.
for k in "${keys[@]}"; do
    for d in $(seed_blobs "$k"); do
        store_has_blob "$store" "$d" || fail "$k: blob $d missing from the store"
    done
    for d in $(seed_blobs "$k" '.attestation'); do
        store_has_blob "$store" "$d" && fail "$k: attestation blob $d stored without --include-attestations"
    done
done
# ...and nothing else: no blob that none of the refs needs.
want=$(for k in "${keys[@]}"; do seed_blobs "$k"; done | sort -u)
have=$(store_blobs "$store" | sort -u)
assert_eq "$want" "$have" "set of stored blobs"

# index.json: one descriptor per ref, full name in the containerd annotation.
idx=$store/index.json
assert_file "$idx" index.json
assert_eq 2 "$(jq -r .schemaVersion "$idx")" "index.json schemaVersion"
assert_eq "$n" "$(jq '.manifests | length' "$idx")" "index.json entries"
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    e=$(jq -c --arg n "$name" '[.manifests[] | select(.annotations["io.containerd.image.name"] == $n)]' "$idx")
    assert_eq 1 "$(jq length <<<"$e")" "index.json entries for $name"
    assert_eq "$(seed_digest "$k")" "$(jq -r '.[0].digest' <<<"$e")" "index.json digest of $name"
    assert_eq "$(seed_media_type "$k")" "$(jq -r '.[0].mediaType' <<<"$e")" "index.json mediaType of $name"
    assert_eq "$(seed --arg r "$k" '.images[$r].size')" "$(jq -r '.[0].size' <<<"$e")" "index.json size of $name"
done

# skopeo reads the OCI-typed images back. skopeo 1.9 parses oci:DIR:REF by
# splitting at the first ':' and matches REF against the
# org.opencontainers.image.ref.name annotation, so the full name
# (oci:STORE:docker.io/library/nested:1) works as long as STORE has no ':'.
for k in "${keys[@]}"; do
    case $(seed_media_type "$k") in *vnd.oci.*) ;; *) continue ;; esac
    name=$(seed_name "$k")
    refname=$(jq -r --arg n "$name" '.manifests[] | select(.annotations["io.containerd.image.name"] == $n)
        | .annotations["org.opencontainers.image.ref.name"] // empty' "$idx")
    [ -n "$refname" ] || fail "$name: no org.opencontainers.image.ref.name annotation"
    skopeo inspect --raw "oci:$store:$refname" >"$work/raw" 2>"$work/skopeo.err" ||
        { show "$work/skopeo.err"; fail "skopeo inspect --raw oci:$store:$refname"; }
    assert_eq "$(seed_digest "$k")" "sha256:$(sha256sum <"$work/raw" | cut -d' ' -f1)" \
        "digest of the manifest skopeo read for $refname"
    skopeo inspect "oci:$store:$refname" >"$work/inspect.json" 2>"$work/skopeo.err" ||
        { show "$work/skopeo.err"; fail "skopeo inspect oci:$store:$refname"; }
done

# airlock.db: the tags, and blobs rows for exactly the files present.
assert_file "$store/airlock.db" airlock.db
want=$(for k in "${keys[@]}"; do echo "$(seed_name "$k") $(seed_digest "$k")"; done | sort)
have=$(db "$store" "SELECT full_name || ' ' || digest FROM tags ORDER BY full_name" | sort)
assert_eq "$want" "$have" "tags in airlock.db"
assert_eq "$(store_blobs "$store" | sort)" "$(db "$store" 'SELECT digest FROM blobs' | sort)" \
    "blobs rows vs files"
assert_eq 1 "$(db "$store" 'SELECT count(*) FROM runs')" "runs rows"
assert_eq "ok" "$(db "$store" 'PRAGMA integrity_check')" "sqlite integrity_check"

# 2. --platform linux/arm64 --------------------------------------------------
arm_keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 rancher/mirrored-coredns-coredns:1.10.1
    calico/node:v3.28.0 library/nested:1 library/arm-only:1)
arm_list=$work/arm.txt
for k in "${arm_keys[@]}"; do echo "$k"; done >"$arm_list"
store2=$work/store-arm64
run_fetch "$work/run-arm" --store "$store2" -f "$arm_list" --platform linux/arm64 \
    --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN"
expect_rc 0 "$work/run-arm" "fetch --platform linux/arm64"
# amd64-only: blobs that every seeded image uses only under linux/amd64.
amd_only=$(seed '[.images[].blobs[]] | group_by(.digest)[]
    | select(([.[].platforms[]] | unique) == ["linux/amd64"]) | .[0].digest')
[ -n "$amd_only" ] || fail "seed description lists no amd64-only blob"
for d in $amd_only; do
    store_has_blob "$store2" "$d" && fail "--platform linux/arm64 stored amd64-only blob $d"
done
for k in "${arm_keys[@]}"; do
    assert_eq ok "$(word_for "$work/run-arm.out" "$(seed_name "$k")")" "arm64 result word of $k"
    for d in $(seed_blobs "$k" '(.attestation | not) and (.kind == "index" or (.platforms | index("linux/arm64")))'); do
        store_has_blob "$store2" "$d" || fail "--platform linux/arm64: $k blob $d missing"
    done
done
assert_blobs_match_registry "$store2" "$AL_REG_PLAIN_STORAGE"
assert_eq "${#arm_keys[@]}" "$(db "$store2" 'SELECT count(*) FROM tags')" "arm64 tags"
# The platform column of each stored image manifest says arm64.
assert_eq "" "$(db "$store2" "SELECT digest FROM manifests WHERE is_index = 0 AND arch <> 'arm64'")" \
    "non-arm64 image manifests in the arm64 store"

# 3. --include-attestations ---------------------------------------------------
store3=$work/store-att
run_fetch "$work/run-att" --store "$store3" --include-attestations \
    --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN" rancher/mirrored-pause:3.6
expect_rc 0 "$work/run-att" "fetch --include-attestations"
att=$(seed_blobs rancher/mirrored-pause:3.6 '.attestation')
[ -n "$att" ] || fail "seed description lists no attestation blob"
for d in $(seed_blobs rancher/mirrored-pause:3.6 'true'); do
    store_has_blob "$store3" "$d" || fail "--include-attestations: blob $d missing"
done

note "ok"
