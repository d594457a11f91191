#!/usr/bin/env bash
# Uploads cut on the wire: library/big:1 (a ~120 MB layer; pushed to the
# rig's plain registry here unless the rig has it) pushed through the fault
# proxy into an empty docker-registry, in 16 MiB chunks:
#   1. a cut between two chunks: the proxy closes the third PATCH, and every
#      one after it, unanswered (the registry never sees them); with
#      --retries 0 the run fails the image, nothing is tagged, and STORE/tmp
#      keeps the upload's session (its URL and offset; no credentials);
#      --verify-store notes it, --prune keeps it (and removes one left
#      for over a week);
#   2. the rerun resumes it: the target's log shows no POST, a GET of the
#      same session, then PATCHes from the offset the first run reached; the
#      session file is gone, the image's digest is upstream's and the layer
#      at the target hashes to its digest;
#   3. a cut inside a chunk: the proxy passes 1 MB of the second PATCH, then
#      drops both connections. distribution keeps that part, so the session
#      is invalid (BLOB_UPLOAD_INVALID): the upload starts again, once, and
#      stderr, the result line and the report say so; the layer verifies.
# The 120 MB layer is what a nightly push of real images carries; the three
# pushes take a few seconds on loopback.
. "$(dirname "$0")/lib.sh"
rig_up
need curl
[ -x "$PUSH" ] || fail "airlock-push is not built: $PUSH"
work=$(tmpdir resume)

big_image_up "$work"
chunk=$((16 << 20))

store=$work/store
fetch_seeded "$store" "$work" library/big:1
target_up "$work/target"
fault_proxy_up "$work/proxy" "http://$TARGET"
push_args=(--store "$store" --insecure-registry "$AL_FAULT_PROXY" --chunk-size 16M library/big:1)

# verify_layer REPO: the layer the target holds hashes to its digest.
verify_layer() {
    local got
    got=$(curl -sf --noproxy '*' "http://$TARGET/v2/$1/blobs/$big_layer" | sha256sum | cut -d' ' -f1)
    assert_eq "${big_layer#sha256:}" "$got" "sha256 of the layer at the target ($1)"
}

# 1. Cut between chunks, no retries: the run fails, the session is kept -------------
fault_rules '{"rules": [{"id": "between", "method": "PATCH", "nth": [3, 4, 5, 6, 7, 8, 9, 10], "action": "close"}]}'
run_push "$work/p1" "${push_args[@]}" --to "$AL_FAULT_PROXY/resume" --retries 0
expect_rc 1 "$work/p1" "airlock-push with the third chunk cut"
assert_grep '^FAILED +docker.io/library/big:1 .*nothing tagged' "$work/p1.out" "the result of the cut push"
assert_eq "" "$(target_digest "http://$TARGET/v2/resume/library/big/manifests/1")" "the tag at the target after the cut"
sessions=("$store"/tmp/upload-*)
[ -f "${sessions[0]}" ] || fail "no upload session was saved in STORE/tmp"
assert_eq 1 "${#sessions[@]}" "saved sessions"
assert_eq "$((2 * chunk))" "$(jq -r .offset "${sessions[0]}")" "the saved offset (two whole chunks)"
assert_eq "$big_layer" "$(jq -r .digest "${sessions[0]}")" "the saved session's blob"
uuid=$(jq -r .url "${sessions[0]}" | grep -oE '/blobs/uploads/[^?]+' | sed 's|.*/||')
[ -n "$uuid" ] || fail "the saved session names no upload"

# The store's tools know the session: --verify-store notes it; --prune keeps
# it (a week), and removes one older than that.
run_export "$work/verify" --store "$store" --verify-store
expect_rc 0 "$work/verify" "airlock-export --verify-store"
assert_grep "^info: tmp: tmp/$(basename "${sessions[0]}") .*an airlock-push upload that did not finish" \
    "$work/verify.out" "--verify-store's note"
old=$store/tmp/upload-$(printf '%064d' 0)-0123456789abcdef
cp "${sessions[0]}" "$old"
touch -d '8 days ago' "$old"
run_fetch "$work/prune" --store "$store" --prune
expect_rc 0 "$work/prune" "airlock-fetch --prune"
[ ! -e "$old" ] || fail "--prune kept an upload session over a week old"
[ -f "${sessions[0]}" ] || fail "--prune removed the upload session of the interrupted push"

# 2. The rerun resumes ---------------------------------------------------------------
fault_rules '{"rules": []}'
mark=$(log_mark "$TARGET_LOG")
fmark=$(fault_mark)
run_push "$work/p2" "${push_args[@]}" --to "$AL_FAULT_PROXY/resume" --json "$work/p2.json"
expect_rc 0 "$work/p2" "the rerun"
log_since "$TARGET_LOG" "$mark" >"$work/p2.log"
assert_no_grep '^POST ' "$work/p2.log" "the target's log of the rerun (a new upload)"
grep -E '^(GET|PATCH|PUT) /v2/resume/library/big/blobs/uploads/' "$work/p2.log" | sed -n 1p >"$work/first"
assert_grep "^GET /v2/resume/library/big/blobs/uploads/$uuid" "$work/first" "the rerun's first request of the upload"
first_range=$(fault_since "$fmark" | jq -r 'select(.method == "PATCH") | .headers["Content-Range"]' | sed -n 1p)
assert_eq "$((2 * chunk))-$((3 * chunk - 1))" "$first_range" "the rerun's first chunk"
[ -z "$(ls "$store"/tmp/upload-* 2>/dev/null)" ] || fail "the session file stayed after the upload completed"
assert_eq "$big_digest" "$(target_digest "http://$TARGET/v2/resume/library/big/manifests/1")" "the target's digest"
verify_layer resume/library/big
assert_grep "^airlock-push: pushed blob ${big_layer:7:12} of resume/library/big: " "$work/p2.err" \
    "the progress line of the layer"
assert_eq "$((big_size - 2 * chunk))" "$(jq '.images[0].bytes' "$work/p2.json")" \
    "bytes the rerun uploaded (the rest of the layer)"

# 3. A cut inside a chunk: restarted once, and said --------------------------------------
fault_rules '{"rules": [{"id": "inside", "method": "PATCH", "nth": 2, "action": "cut_request", "bytes": 1000000}]}'
fmark=$(fault_mark)
run_push "$work/p3" "${push_args[@]}" --to "$AL_FAULT_PROXY/inside" --json "$work/p3.json"
expect_rc 0 "$work/p3" "the push with a chunk cut inside"
assert_grep 'lost the upload of '"$big_layer"'.*BLOB_UPLOAD_INVALID.*again from the start' "$work/p3.err" "stderr"
assert_grep '^pushed +docker.io/library/big:1 .*started again' "$work/p3.out" "the result line"
assert_eq 1 "$(jq '.images[0].restarted_uploads' "$work/p3.json")" "restarted uploads in the report"
starts=$(fault_count 'select(.method == "PATCH" and .headers["Content-Range"] == "0-'"$((chunk - 1))"'")' "$fmark")
assert_eq 2 "$starts" "first chunks sent to /inside (the upload and its restart)"
assert_eq "$big_digest" "$(target_digest "http://$TARGET/v2/inside/library/big/manifests/1")" "the target's digest"
verify_layer inside/library/big
note "ok"
