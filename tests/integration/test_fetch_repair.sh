#!/usr/bin/env bash
# Damaged blobs in the store are repaired (issue 15, item 13):
#   1. a layer truncated in the store: a nightly run of the unchanged tag
#      does not read its graph (one HEAD, "unchanged"; --verify-store finds
#      the damage and names --repair); a fetch that reads the graph (here:
#      another --platform than the last one) moves it aside
#      (tmp/quarantine-<hex>), downloads it again, and the image is ok;
#   2. a byte flipped in a stored manifest: the same, when the fetch reads
#      the manifest (the tag is unchanged, the graph is read from the store);
#   3. a byte flipped in a layer (same size): a fetch does not re-hash
#      layers, `airlock-fetch --repair` does: it names the blob, moves it
#      aside and downloads it again; `--repair REF` does the same for one
#      image, and a sound store costs --repair no download;
#   and after each, --verify-store finds nothing wrong.
. "$(dirname "$0")/lib.sh"
rig_up
need jq

work=$(tmpdir repair)
store=$work/store
reg=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")
refs=(library/busybox:1.36 library/alpine-ish:3.19)
fetch_seeded "$store" "$work" "${refs[@]}"

blob_file() { echo "$store/blobs/sha256/${1#sha256:}"; }
flip_byte() { # FILE OFFSET: the byte there, inverted
    printf "$(printf '\\%03o' $((0xff ^ $(od -An -tu1 -j "$2" -N1 "$1"))))" |
        dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
verify_clean() {
    RC=0
    "$EXPORT" --store "$store" --verify-store >"$work/verify.out" 2>&1 || RC=$?
    [ "$RC" = 0 ] || { show "$work/verify.out"; fail "$1: --verify-store exit $RC"; }
}
sound() { [ "$(sha256sum <"$(blob_file "$1")" | cut -d' ' -f1)" = "${1#sha256:}" ]; }

# 1. A truncated layer ---------------------------------------------------------
layer=$(seed_blobs library/alpine-ish:3.19 '.kind == "layer"' | tail -1)
truncate -s 100 "$(blob_file "$layer")"
mark=$(log_mark "$AL_REG_PLAIN_LOG")
run_fetch "$work/nightly" --store "$store" "${reg[@]}" library/alpine-ish:3.19
expect_rc 0 "$work/nightly" "the nightly fetch of the damaged, unchanged tag"
assert_eq unchanged "$(word_for "$work/nightly.out" docker.io/library/alpine-ish:3.19)" "its result"
assert_eq 0 "$(log_since "$AL_REG_PLAIN_LOG" "$mark" | grep -c "/blobs/")" "blob GETs of the nightly fetch"
RC=0
"$EXPORT" --store "$store" --verify-store >"$work/verify-bad.out" 2>&1 || RC=$?
assert_eq 1 "$RC" "--verify-store of the store with a truncated layer: exit"
assert_grep "airlock-fetch --repair mends damaged blobs" "$work/verify-bad.out" "--verify-store's summary"
# Another selection than the last fetch's reads the graph from the store.
mark=$(log_mark "$AL_REG_PLAIN_LOG")
run_fetch "$work/trunc" --store "$store" "${reg[@]}" --platform linux/amd64 library/alpine-ish:3.19
expect_rc 0 "$work/trunc" "fetch after a layer was truncated"
assert_eq ok "$(word_for "$work/trunc.out" docker.io/library/alpine-ish:3.19)" "result"
assert_grep "blob $layer: the store holds 100 bytes .*moving it aside" "$work/trunc.err" "the warning"
sound "$layer" || fail "the truncated layer was not downloaded again"
[ "$(stat -c %s "$store/tmp/quarantine-${layer#sha256:}")" = 100 ] || fail "the truncated file is not in quarantine"
assert_eq 1 "$(log_since "$AL_REG_PLAIN_LOG" "$mark" | grep -c "/blobs/$layer")" "GETs of the layer"
verify_clean "after the truncated layer"
note "a truncated layer: moved aside and downloaded again"

# 2. A flipped byte in a stored manifest --------------------------------------------
manifest=$(seed_digest library/alpine-ish:3.19)
flip_byte "$(blob_file "$manifest")" 10
# The last fetch of the tag kept linux/amd64; this one's selection (every
# platform) differs, so it reads the graph.
run_fetch "$work/flip-m" --store "$store" "${reg[@]}" library/alpine-ish:3.19
expect_rc 0 "$work/flip-m" "fetch after a manifest was damaged"
assert_grep "blob $manifest is corrupt.*moving it aside" "$work/flip-m.err" "the warning"
sound "$manifest" || fail "the damaged manifest was not downloaded again"
[ -f "$store/tmp/quarantine-${manifest#sha256:}" ] || fail "the damaged manifest is not in quarantine"
verify_clean "after the damaged manifest"
note "a damaged manifest: moved aside and downloaded again"

# 3. A flipped byte in a layer: only --repair reads layers -------------------------
layer2=$(seed_blobs library/busybox:1.36 '.kind == "layer"' | sed -n 1p)
flip_byte "$(blob_file "$layer2")" 5000
run_fetch "$work/plain" --store "$store" "${reg[@]}" library/busybox:1.36
expect_rc 0 "$work/plain" "a plain fetch"
sound "$layer2" && fail "test setup: the layer was not damaged"
mark=$(log_mark "$AL_REG_PLAIN_LOG")
run_fetch "$work/repair" --store "$store" "${reg[@]}" --repair
expect_rc 0 "$work/repair" "--repair of every tag"
assert_grep "repair: docker.io/library/.*: blob $layer2 is corrupt: its content hashes to sha256:" \
    "$work/repair.err" "the repair's line for the layer"
assert_grep "^repair: [0-9]+ blobs of 2 images re-hashed .*; 1 damaged" "$work/repair.out" "the summary"
sound "$layer2" || fail "--repair did not download the layer again"
assert_eq 1 "$(log_since "$AL_REG_PLAIN_LOG" "$mark" | grep -c "/blobs/")" "blob GETs of the repair"
verify_clean "after --repair"
flip_byte "$(blob_file "$layer2")" 77
run_fetch "$work/repair1" --store "$store" "${reg[@]}" --repair library/busybox:1.36
expect_rc 0 "$work/repair1" "--repair of one image"
assert_grep "^repair: [0-9]+ blobs of 1 image re-hashed .*; 1 damaged" "$work/repair1.out" "the summary"
sound "$layer2" || fail "--repair REF did not download the layer again"
mark=$(log_mark "$AL_REG_PLAIN_LOG")
run_fetch "$work/repair2" --store "$store" "${reg[@]}" --repair
expect_rc 0 "$work/repair2" "--repair of a sound store"
assert_grep "; 0 damaged" "$work/repair2.out" "the summary"
assert_eq 0 "$(log_since "$AL_REG_PLAIN_LOG" "$mark" | grep -c "/blobs/")" "blob GETs of a sound store's repair"
verify_clean "at the end"
note "ok"
