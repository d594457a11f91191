#!/usr/bin/env bash
# airlock-push's bad cases, each one clear line and a nonzero exit:
#   1. a target host that does not resolve: every image fails with one line
#      that names the host and says it is unreachable (exit 1);
#   2. a wrong password at the TLS + basic auth registry: one message naming
#      the user and the registry; nothing is uploaded (exit 1); the password
#      is nowhere in what airlock-push wrote;
#   3. a target that refuses a media type (tests/infra/fakeregistry.py: its
#      blobs are there, the PUT of an OCI manifest is answered 400
#      MANIFEST_INVALID): the line names the manifest, its media type and
#      the registry's answer, and says nothing was tagged (exit 1); the PUT
#      carried the media type stored;
#   4. an image missing from the store: "not in the store", the others are
#      pushed (exit 1);
#   5. a store blob found corrupt while it is pushed: that image fails
#      naming the blob and airlock-fetch --repair, nothing is tagged for it
#      (the target has no such tag), the others are pushed (exit 1);
#   6. two upstream names landing on one target repository
#      (quay.io/library/busybox and docker.io/library/busybox): a usage
#      error naming both (exit 2), nothing sent;
#   7. usage errors before anything is opened: no --to, a --to that is not
#      HOST[:PORT][/PREFIX], a chunk size out of range, no images (exit 2);
# and the reports of the failed runs match docs/push-report.schema.json.
. "$(dirname "$0")/lib.sh"
rig_up
need curl
[ -x "$PUSH" ] || fail "airlock-push is not built: $PUSH"
work=$(tmpdir errors)
store=$work/store
fetch_seeded "$store" "$work" library/busybox:1.36 library/victim:1 rancher/local-path-provisioner:v0.0.26

# 1. Unknown host ----------------------------------------------------------------------
run_push "$work/nohost" --store "$store" --to nosuch-registry.invalid:5000 --retries 0 \
    library/busybox:1.36 library/victim:1
expect_rc 1 "$work/nohost" "airlock-push to a host that does not resolve"
assert_eq 2 "$(grep -cE '^FAILED .*nosuch-registry.invalid:5000 is unreachable after 1 attempts.*resolve' "$work/nohost.out")" \
    "lines naming the unreachable host"

# 2. Wrong password at the TLS + basic auth registry ----------------------------------------
mark=$(log_mark "$AL_REG_AUTH_LOG")
run_push "$work/badpw" --store "$store" --to "$AL_REG_AUTH/pushed" --ca-cert "$AL_CA_CERT" \
    --username "$AL_AUTH_USER" --password-stdin --json "$work/badpw.json" \
    library/busybox:1.36 library/victim:1 <<<"not-the-password"
expect_rc 1 "$work/badpw" "airlock-push with a wrong password"
assert_eq 2 "$(grep -cE "^FAILED .*authentication failed for user \"$AL_AUTH_USER\"" "$work/badpw.out")" \
    "lines saying the authentication failed"
log_since "$AL_REG_AUTH_LOG" "$mark" >"$work/badpw.log"
assert_no_grep '^(POST|PUT|PATCH) ' "$work/badpw.log" "the registry's log (anything uploaded)"
assert_no_canary "$work/badpw.out" "$work/badpw.err" "$work/badpw.json" "$store"

# 3. A target that refuses a media type -----------------------------------------------------
k=rancher/local-path-provisioner:v0.0.26
mdigest=$(seed_digest "$k")
{
    echo '{'
    for d in $(seed_blobs "$k" '.kind == "config" or .kind == "layer"'); do
        printf '"HEAD /v2/x/rancher/local-path-provisioner/blobs/%s": {"status": 200},\n' "$d"
    done
    printf '"PUT /v2/x/rancher/local-path-provisioner/manifests/%s": {"status": 400, "headers": {"Content-Type": "application/json"}, "body": "{\\"errors\\":[{\\"code\\":\\"MANIFEST_INVALID\\",\\"message\\":\\"manifest invalid\\",\\"detail\\":\\"OCI manifests are not accepted here\\"}]}"}\n' "$mdigest"
    echo '}'
} >"$work/routes.json"
fake_registry_up "$work/fake" "$work/routes.json"
run_push "$work/refused" --store "$store" --to "127.0.0.1:$FAKE_PORT/x" "$k"
expect_rc 1 "$work/refused" "airlock-push to a registry that refuses OCI manifests"
assert_grep "^FAILED +docker.io/$k .*manifest $mdigest \(application/vnd.oci.image.manifest.v1\+json\) refused: PUT http://127.0.0.1:$FAKE_PORT/v2/x/rancher/local-path-provisioner/manifests/$mdigest: HTTP 400 Bad Request \(MANIFEST_INVALID: manifest invalid\); nothing tagged" \
    "$work/refused.out" "the result line"
jq -r 'select(.method == "PUT") | .headers[] | select(.[0] == "Content-Type") | .[1]' "$work/fake/headers.jsonl" >"$work/put-types"
assert_eq application/vnd.oci.image.manifest.v1+json "$(sort -u "$work/put-types")" "the Content-Type of the manifest PUT"
assert_eq 0 "$(jq -r 'select(.method == "POST")' "$work/fake/headers.jsonl" | wc -l)" "uploads to the fake (its blobs are there)"

# 4 and 5. Not in the store; a corrupt blob ---------------------------------------------------
target_up "$work/target"
victim_layer=$(seed_blobs library/victim:1 '.kind == "layer"' | while read -r d; do
    [ "$(seed -r --arg d "$d" '[.images[] | .blobs[] | select(.digest == $d)] | length')" = 1 ] && echo "$d"
done | sed -n 1p)
[ -n "$victim_layer" ] || fail "library/victim:1 has no layer of its own"
f=$store/blobs/sha256/${victim_layer#sha256:}
python3 -c 'import sys; p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) // 2] ^= 1; open(p, "wb").write(b)' "$f"
run_push "$work/bad" --store "$store" --to "$TARGET/m" library/busybox:1.36 library/victim:1 library/nosuch:1
expect_rc 1 "$work/bad" "airlock-push with a missing image and a corrupt blob"
assert_eq pushed "$(word_for "$work/bad.out" docker.io/library/busybox:1.36)" "the good image"
assert_grep '^FAILED +docker.io/library/nosuch:1 .* not in the store$' "$work/bad.out" "the missing image's line"
assert_grep "^FAILED +docker.io/library/victim:1 .*blob $victim_layer is corrupt in the store: its content hashes to sha256:[0-9a-f]{64}: nothing tagged \(airlock-fetch --repair docker.io/library/victim:1 fetches it again\)" \
    "$work/bad.out" "the corrupt image's line"
assert_eq "" "$(target_digest "http://$TARGET/v2/m/library/victim/manifests/1")" "a tag for the corrupt image"
assert_eq "$(seed_digest library/busybox:1.36)" "$(target_digest "http://$TARGET/v2/m/library/busybox/manifests/1.36")" \
    "the good image's digest"
curl -s -o /dev/null -w '%{http_code}' --noproxy '*' -I "http://$TARGET/v2/m/library/victim/blobs/$victim_layer" >"$work/code"
assert_eq 404 "$(cat "$work/code")" "the corrupt blob at the target"

# 6. Two upstream names on one target repository ----------------------------------------------
run_fetch "$work/quay" --store "$store" --mirror "quay.io=$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN" \
    quay.io/library/busybox:1.36
expect_rc 0 "$work/quay" "airlock-fetch of quay.io/library/busybox:1.36"
mark=$(log_mark "$TARGET_LOG")
run_push "$work/clash" --store "$store" --to "$TARGET/m" library/busybox:1.36 quay.io/library/busybox:1.36
expect_rc 2 "$work/clash" "airlock-push of two names for one repository"
assert_grep 'error: docker.io/library/busybox and quay.io/library/busybox would both be pushed to .*/m/library/busybox' \
    "$work/clash.err" "the usage error"
assert_eq "" "$(log_since "$TARGET_LOG" "$mark")" "requests sent despite the usage error"

# 7. Usage errors ---------------------------------------------------------------------------------
for args in "library/busybox:1.36" "--to Bad_Host:5000 library/busybox:1.36" \
    "--to $TARGET/m --chunk-size 1K library/busybox:1.36" "--to $TARGET/m"; do
    # shellcheck disable=SC2086 # the words of each case
    run_push "$work/usage" --store "$store" $args
    expect_rc 2 "$work/usage" "airlock-push $args"
    assert_grep '^airlock-push: error: ' "$work/usage.err" "the usage error of: $args"
done
assert_grep 'no images given' "$work/usage.err" "the usage error without images"

python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/push-report.schema.json" \
    "$work/badpw.json" >"$work/validate.out" 2>&1 ||
    { show "$work/validate.out"; fail "the report of a failed run does not match its schema"; }
assert_eq 1 "$(jq .exit_status "$work/badpw.json")" "the failed run's exit status in its report"
note "ok"
