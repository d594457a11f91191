#!/usr/bin/env bash
# Carrying a store across the gap in bundles, with two stores:
#   1. the connected store fetches test images from the rig (Docker and OCI
#      media types, a nested index, a zstd layer, multi- and single-arch);
#      --bundle --all writes a complete bundle (.tar.zst): its members are
#      the manifest and exactly the store's blobs, each named by its own
#      hash; OUT.json beside it is the manifest member, byte for byte;
#   2. --check of the bundle: ok, without a store;
#   3. it is imported into an empty far store: every tag at the registry's
#      digest, the far store's blobs byte-identical to the connected
#      store's, --verify-store clean, no staging directory left, the run
#      report valid against its schema and saying "applied";
#   4. airlock-export from the far store writes a linux/amd64 tarball that
#      containerd (ctr images import, unpacking) and dockerd load, each
#      image at the registry's linux/amd64 manifest digest;
#   5. a tag moves upstream; the nightly fetch picks it up; a delta bundle
#      --since the first one's OUT.json builds on it and holds only the
#      blobs the move brought (the registry's new blobs that the store did
#      not have); imported, the far store's --list shows the new digest
#      and the move ("was OLD"), --list --json its history;
#   6. the same delta again: "nothing to do", exit 0, nothing changes.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need tar
need zstd
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"
PLAT=linux/amd64
validate() { python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/$1" "${@:2}" || fail "$2 does not validate against docs/$1"; }

work=$(tmpdir bundle)
keys=(
    library/busybox:1.36
    rancher/mirrored-pause:3.6
    library/alpine-ish:3.19
    library/nested:1
    rancher/zstd-image:1
    calico/node:v3.28.0
)
# A tag that moves later: a private repository per run (a reused rig works).
mv_repo=library/bundle-moving-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/amd-only:1=$mv_repo:1" --out "$work/mv1.json" >/dev/null 2>&1 ||
    fail "pushing $mv_repo:1"
old=$(jq -r '.images[].digest' "$work/mv1.json")
list=$work/images.txt
printf '%s\n' "${keys[@]}" "$mv_repo:1" >"$list"
conn=$work/connected
far=$work/far
fetch_seeded "$conn" "$work" -f "$list"

# 1. A complete bundle -----------------------------------------------------------
full=$work/full.tar.zst
run_export "$work/b1" --store "$conn" --all --bundle "$full" --json "$work/b1.json"
expect_rc 0 "$work/b1" "airlock-export --bundle (complete)"
assert_file "$full" "the bundle"
assert_file "$full.json" "the manifest beside the bundle"
validate bundle-report.schema.json "$work/b1.json"
validate bundle-manifest.schema.json "$full.json"
ls "$work" | matches 'partial' && fail "a .partial file is left beside the bundle"
zstd -dc "$full" | tar -tv --numeric-owner >"$work/b1.list" || fail "the bundle is not a tar.zst"
assert_eq "airlock-bundle.json" "$(awk 'NR == 1 { print $6 }' "$work/b1.list")" "first member"
zstd -dc "$full" | tar -xO airlock-bundle.json | cmp -s - "$full.json" ||
    fail "OUT.json differs from the manifest member"
have=$(awk 'NR > 1 { print $6 }' "$work/b1.list" | sed 's|^blobs/sha256/|sha256:|' | sort)
assert_eq "$(store_blobs "$conn" | sort)" "$have" "blobs in the complete bundle (each blob of the store once)"
assert_no_grep '^[^-]' "$work/b1.list" "member types (regular files only)"
id1=$(jq -r .bundle_id "$full.json")
assert_eq null "$(jq -r .base_bundle "$full.json")" "base of a complete bundle"
assert_eq "$(db "$conn" "SELECT value FROM store_meta WHERE key = 'store_id'")" \
    "$(jq -r .source_store "$full.json")" "source store id"
for k in "${keys[@]}"; do
    assert_eq "$(seed_digest "$k")" "$(jq -r --arg n "$(seed_name "$k")" '.tags[] | select(.name == $n) | .digest' "$full.json")" \
        "digest of $k in the manifest"
done

# 2. --check without a store ------------------------------------------------------
run_export "$work/c1" --check "$full" --json "$work/c1.json"
expect_rc 0 "$work/c1" "--check of the bundle"
assert_grep "ok: bundle archive \(zstd.*bundle $id1 \(complete, 1 volume\); 0 problems" "$work/c1.out" "--check summary"
validate check-report.schema.json "$work/c1.json"

# 3. Into an empty far store --------------------------------------------------------
run_fetch "$work/i1" --store "$far" --import "$full" --json "$work/i1.json"
expect_rc 0 "$work/i1" "airlock-fetch --import of the complete bundle"
validate fetch-report.schema.json "$work/i1.json"
assert_eq applied "$(jq -r .import.status "$work/i1.json")" "import status"
assert_eq "$id1" "$(jq -r .import.bundle_id "$work/i1.json")" "import bundle id"
assert_eq "$((${#keys[@]} + 1))" "$(grep -c '^ok ' "$work/i1.out")" "ok lines of the import"
assert_grep "^imported bundle $id1 \(complete; from store " "$work/i1.out" "summary line"
for k in "${keys[@]}"; do
    assert_eq "$(seed_digest "$k")" "$(db "$far" "SELECT digest FROM tags WHERE full_name = '$(seed_name "$k")'")" \
        "far tag $k"
done
assert_eq "$(store_blobs "$conn" | sort)" "$(store_blobs "$far" | sort)" "blobs of the far store"
for d in $(store_blobs "$far"); do
    cmp -s "$conn/blobs/sha256/${d#sha256:}" "$far/blobs/sha256/${d#sha256:}" || fail "far blob $d differs"
done
assert_eq "" "$(ls "$far/tmp")" "tmp/ of the far store after the import"
run_export "$work/v1" --store "$far" --verify-store
expect_rc 0 "$work/v1" "--verify-store of the far store"
assert_grep '^store OK: ' "$work/v1.out" "--verify-store"
assert_eq "$id1" "$(db "$far" "SELECT bundle_id FROM bundles")" "bundles row"

# 4. The far store feeds the consumers ------------------------------------------------
[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"
tb=$work/far-amd64.tar
run_export "$work/e1" --store "$far" -f <(printf '%s\n' "${keys[@]}") --platform "$PLAT" -o "$tb" --decompress-zstd-layers
expect_rc 0 "$work/e1" "export from the far store"
load_containerd "$tb" >"$work/ctr" 2>&1 || { show "$work/ctr"; fail "ctr images import of the far store's tarball"; }
load_docker "$tb" >"$work/docker" 2>&1 || { show "$work/docker"; fail "docker load of the far store's tarball"; }
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    assert_eq "$(seed_manifest_for "$k" "$PLAT")" "$(containerd_image_target "$name" || true)" "containerd target of $name"
    assert_eq "complete true" "$(containerd_image_check "$name" || true)" "containerd state of $name"
    assert_eq "[\"$(familiar_name "$name")\"] amd64" "$(docker_repotags_arch "$name" 2>&1 || true)" "docker RepoTags of $name"
done

# 5. A tag moves; the nightly fetch; a delta ---------------------------------------------
before=$(store_blobs "$conn" | sort)
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/arm-only:1=$mv_repo:1" --out "$work/mv2.json" >/dev/null 2>&1 || fail "moving $mv_repo:1"
new=$(jq -r '.images[].digest' "$work/mv2.json")
[ "$new" != "$old" ] || fail "the tag did not move in the registry"
run_fetch "$work/nightly" --store "$conn" -f "$list" --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN"
expect_rc 0 "$work/nightly" "nightly fetch"
assert_eq moved "$(word_for "$work/nightly.out" "$mv_name")" "the nightly fetch sees the move"
want=$(comm -13 <(echo "$before") <(store_blobs "$conn" | sort))
[ -n "$want" ] || fail "test setup: the move brought no new blob"

delta=$work/delta.tar
run_export "$work/b2" --store "$conn" --all --bundle "$delta" --since "$full.json"
expect_rc 0 "$work/b2" "airlock-export --bundle --since"
validate bundle-manifest.schema.json "$delta.json"
assert_eq "$id1" "$(jq -r .base_bundle "$delta.json")" "base of the delta"
tar -tf "$delta" >"$work/b2.list"
got=$(grep '^blobs/' "$work/b2.list" | sed 's|^blobs/sha256/|sha256:|' | sort)
assert_eq "$want" "$got" "blobs in the delta (exactly what the move brought)"
assert_eq "$want" "$(jq -r '.blobs[].digest' "$delta.json" | sort)" "blobs the delta's manifest lists"
size=$(stat -c %s "$delta")
sum=0
for d in $want; do sum=$((sum + $(stat -c %s "$conn/blobs/sha256/${d#sha256:}"))); done
assert_le $((sum + 65536)) "$size" "delta size (its new blobs: $sum bytes)"

run_fetch "$work/i2" --store "$far" --import "$delta" --json "$work/i2.json"
expect_rc 0 "$work/i2" "import of the delta"
validate fetch-report.schema.json "$work/i2.json"
assert_eq moved "$(word_for "$work/i2.out" "$mv_name")" "result of the moved tag"
line_for "$work/i2.out" "$mv_name" | matches -F "$old -> $new" || fail "the moved line lacks OLD -> NEW"
assert_eq "${#keys[@]}" "$(grep -c '^unchanged ' "$work/i2.out")" "unchanged tags in the delta"
assert_eq "$(echo "$want" | wc -l)" "$(jq .import.blobs_new "$work/i2.json")" "blobs the delta brought"
run_export "$work/l2" --store "$far" --list
expect_rc 0 "$work/l2" "--list of the far store"
awk -v n="$mv_name" '$1 == n' "$work/l2.out" | matches -F "$new" || { show "$work/l2.out"; fail "--list lacks the new digest"; }
grep -A1 -F "$mv_name " "$work/l2.out" | matches -E "^  was $old until " || { show "$work/l2.out"; fail "--list lacks the move"; }
run_export "$work/l2j" --store "$far" --list --json -
assert_eq "$new $old" "$(jq -r --arg n "$mv_name" '.tags[] | select(.name == $n) | "\(.digest) \(.history[0].old_digest)"' "$work/l2j.out")" \
    "--list --json digest and history of the moved tag"
assert_eq 2 "$(jq '.store.bundles | length' "$work/l2j.out")" "bundles applied, in --list --json"
assert_eq "1" "$(db "$far" "SELECT count(*) FROM tag_history WHERE full_name = '$mv_name' AND old_digest = '$old' AND new_digest = '$new'")" \
    "tag_history row of the move"
run_export "$work/v2" --store "$far" --verify-store
expect_rc 0 "$work/v2" "--verify-store after the delta"

# 6. The same bundle twice: a no-op ------------------------------------------------------
sum_before=$(sha256sum "$far/airlock.db" "$far/index.json" | cut -d' ' -f1 | tr '\n' ' ')
run_fetch "$work/i3" --store "$far" --import "$delta"
expect_rc 0 "$work/i3" "the delta again"
assert_grep "^bundle $(jq -r .bundle_id "$delta.json") was applied on .*: nothing to do$" "$work/i3.out" "no-op line"
assert_eq 2 "$(db "$far" "SELECT count(*) FROM bundles")" "bundles rows after the no-op"
assert_eq "$(db "$far" "SELECT count(*) FROM tags")" "$((${#keys[@]} + 1))" "tags after the no-op"
note "ok ($(echo "$want" | wc -l) blobs in the delta, $size bytes; ${sum_before:0:16})"
