#!/usr/bin/env bash
# Images whose store copy holds only some entries of their index (fetched
# --platform linux/amd64, without attestations): distribution refuses an
# index that names manifests it does not hold, so
#   1. by default each such image is refused before anything is sent, with a
#      line naming what the store lacks (linux/arm64, the attestation) and
#      the two ways out; an image the store holds whole is pushed (exit 1);
#   2. with --partial-index the index goes rewritten to the entries held,
#      under a new digest that the line and the report state along with the
#      store's: the target's tag names that digest, its index lists the
#      amd64 manifest only (by upstream's digest), nested indexes too; the
#      registry took it; containerd pulls it by its original name;
#   3. --platform linux/amd64 on a store that holds both platforms rewrites
#      the same way without --partial-index (the user asked for fewer);
#   4. the nightly push of the rewritten set is unchanged (one HEAD per tag).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need curl
[ -x "$PUSH" ] || fail "airlock-push is not built: $PUSH"
consumers_up || fail "could not start the consumers"
on_exit "consumers_reset >/dev/null 2>&1"
work=$(tmpdir partial)
target_up "$work/target"
keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 library/nested:1 library/amd-only:1)
printf '%s\n' "${keys[@]}" >"$work/list"
amd=$work/amd
fetch_seeded "$amd" "$work" --platform linux/amd64 -f "$work/list"

# 1. Refused by default ------------------------------------------------------------------------
mark=$(log_mark "$TARGET_LOG")
run_push "$work/refuse" --store "$amd" --to "$TARGET/p" -f "$work/list"
expect_rc 1 "$work/refuse" "airlock-push of partial images"
assert_grep '^FAILED +docker.io/library/busybox:1.36 .*its index lists entries the store lacks \(linux/arm64\): the registry would refuse it; .*--partial-index' \
    "$work/refuse.out" "the line of a partial image"
assert_grep '^FAILED +docker.io/rancher/mirrored-pause:3.6 .*lacks \(linux/arm64, an attestation \(sha256:[0-9a-f]{12}\)\)' \
    "$work/refuse.out" "the line of an image without its attestation"
assert_eq pushed "$(word_for "$work/refuse.out" docker.io/library/amd-only:1)" "the whole image"
log_since "$TARGET_LOG" "$mark" >"$work/refuse.log"
assert_no_grep '/(busybox|mirrored-pause|nested)/' "$work/refuse.log" "requests for the refused images"

# 2. --partial-index ------------------------------------------------------------------------------
run_push "$work/part" --store "$amd" --to "$TARGET/p" -f "$work/list" --partial-index \
    --hosts-dir "$work/hosts" --json "$work/part.json"
expect_rc 0 "$work/part" "airlock-push --partial-index"
for k in library/busybox:1.36 rancher/mirrored-pause:3.6 library/nested:1; do
    up=$(seed_digest "$k")
    new=$(jq -r --arg r "docker.io/$k" '.images[] | select(.ref == $r) | .digest' "$work/part.json")
    [ "$new" != "$up" ] || fail "$k: the rewritten index has upstream's digest"
    assert_eq "$up" "$(jq -r --arg r "docker.io/$k" '.images[] | select(.ref == $r) | .stored_digest' "$work/part.json")" \
        "$k: the store's digest in the report"
    assert_eq true "$(jq -r --arg r "docker.io/$k" '.images[] | select(.ref == $r) | .index_rewritten' "$work/part.json")" \
        "$k: index_rewritten"
    grep -F "docker.io/$k -> $TARGET/p/$k  $new (a new index without linux/arm64" "$work/part.out" >/dev/null ||
        { show "$work/part.out"; fail "$k: the line does not state the new digest and what it leaves out"; }
    assert_eq "$new" "$(target_digest "http://$TARGET/v2/p/${k%:*}/manifests/${k##*:}")" "$k: the target's digest"
    al_ctr images pull --hosts-dir "$work/hosts" "docker.io/$k" >"$work/ctr.out" 2>&1 ||
        { show "$work/ctr.out"; fail "ctr images pull --hosts-dir docker.io/$k"; }
    assert_eq "$new" "$(containerd_image_target "docker.io/$k")" "$k: containerd's digest"
done
# The busybox index at the target: one entry, the amd64 manifest by upstream's digest.
curl -s --noproxy '*' -H 'Accept: application/vnd.docker.distribution.manifest.list.v2+json' \
    "http://$TARGET/v2/p/library/busybox/manifests/1.36" >"$work/index.json"
assert_eq "$(seed_manifest_for library/busybox:1.36 linux/amd64)" "$(jq -r '[.manifests[].digest] | join(" ")' "$work/index.json")" \
    "the entries of the rewritten busybox index"
assert_eq "$(jq -r '.images[] | select(.ref == "docker.io/library/busybox:1.36") | .digest' "$work/part.json")" \
    "sha256:$(sha256sum <"$work/index.json" | cut -d' ' -f1)" "the digest of the index the target serves"

# 3. --platform on a store that holds every platform ---------------------------------------------
full=$work/full
fetch_seeded "$full" "$work" library/busybox:1.36
run_push "$work/plat" --store "$full" --to "$TARGET/q" --platform linux/amd64 library/busybox:1.36
expect_rc 0 "$work/plat" "airlock-push --platform linux/amd64"
want=$(jq -r '.images[] | select(.ref == "docker.io/library/busybox:1.36") | .digest' "$work/part.json")
assert_eq "$want" "$(target_digest "http://$TARGET/v2/q/library/busybox/manifests/1.36")" \
    "the digest of busybox pushed --platform linux/amd64 (the same rewrite)"

# 4. The nightly push of the rewritten set ------------------------------------------------------------
mark=$(log_mark "$TARGET_LOG")
run_push "$work/again" --store "$amd" --to "$TARGET/p" -f "$work/list" --partial-index
expect_rc 0 "$work/again" "the second airlock-push --partial-index"
assert_eq "${#keys[@]}" "$(grep -c '^unchanged ' "$work/again.out")" "unchanged images"
assert_eq "${#keys[@]}" "$(log_since "$TARGET_LOG" "$mark" | wc -l)" "requests of the unchanged push"
note "ok"
