#!/usr/bin/env bash
# Mirrors (--mirror UPSTREAM=HOST[/PREFIX]), as k3s' registries.yaml has them:
#   - a mirror that is down falls back to the next one, in order;
#   - images keep their upstream names, and tags.source says where they came from;
#   - a mirror that lacks the image (404) falls back too;
#   - --mirror-only never reaches the upstream; without it the upstream is last;
#   - a bad --mirror value is a usage error before any request.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir mirrors)
dead=127.0.0.1:9 # discard port: nothing listens there

# docker.io images: the first mirror is down, the second is the plain rig registry.
store=$work/store
run_fetch "$work/down" --store "$store" --retries 0 \
    --mirror "docker.io=$dead" --mirror "docker.io=$AL_REG_PLAIN" --mirror-only \
    --insecure-registry "$dead" --insecure-registry "$AL_REG_PLAIN" \
    busybox:1.36 rancher/mirrored-pause:3.6
expect_rc 0 "$work/down" "fetch through a dead mirror and a live one"
for n in docker.io/library/busybox:1.36 docker.io/rancher/mirrored-pause:3.6; do
    assert_eq ok "$(word_for "$work/down.out" "$n")" "result of $n"
    assert_eq "$AL_REG_PLAIN/${n#docker.io/}" "$(db "$store" "SELECT source FROM tags WHERE full_name = '$n'"):${n##*:}" "source of $n"
done
assert_grep "$dead failed" "$work/down.err" "warning about the dead mirror"
assert_eq "docker.io/library/busybox:1.36" \
    "$(jq -r '.manifests[].annotations["io.containerd.image.name"]' "$store/index.json" | sort | sed -n 1p)" \
    "upstream name in index.json"
assert_blobs_match_registry "$store" "$AL_REG_PLAIN_STORAGE"

# A named registry mirrored under a prefix that does not exist there (404),
# then without a prefix: the second one serves it, the name stays the TLS one.
store2=$work/store2
ref="$AL_REG_TLS/library/busybox:1.36"
mark=$(log_mark "$AL_REG_TLS_LOG")
run_fetch "$work/prefix" --store "$store2" --ca-cert "$AL_CA_CERT" --mirror-only \
    --mirror "$AL_REG_TLS=$AL_REG_PLAIN/nosuchprefix" --mirror "$AL_REG_TLS=$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" "$ref"
expect_rc 0 "$work/prefix" "fetch through a prefix mirror that lacks the image"
assert_eq ok "$(word_for "$work/prefix.out" "$ref")" "result of $ref"
assert_grep "nosuchprefix/library/busybox" "$work/prefix.err" "warning naming the prefixed path"
assert_eq 0 "$(log_since "$AL_REG_TLS_LOG" "$mark" | wc -l)" "requests to the upstream with --mirror-only"

# Every mirror down and --mirror-only: the image fails, the upstream is not asked.
store3=$work/store3
mark=$(log_mark "$AL_REG_TLS_LOG")
run_fetch "$work/only" --store "$store3" --ca-cert "$AL_CA_CERT" --retries 0 --mirror-only \
    --mirror "$AL_REG_TLS=$dead" --insecure-registry "$dead" "$ref"
expect_rc 1 "$work/only" "fetch with every mirror down and --mirror-only"
assert_eq FAILED "$(word_for "$work/only.out" "$ref")" "result with every mirror down"
assert_eq 0 "$(log_since "$AL_REG_TLS_LOG" "$mark" | wc -l)" "requests to the upstream with --mirror-only"

# Without --mirror-only the upstream itself is the last resort.
run_fetch "$work/fallback" --store "$store3" --ca-cert "$AL_CA_CERT" --retries 0 \
    --mirror "$AL_REG_TLS=$dead" --insecure-registry "$dead" "$ref"
expect_rc 0 "$work/fallback" "fetch falling back to the upstream"
assert_eq "$AL_REG_TLS/library/busybox" "$(db "$store3" "SELECT source FROM tags")" "source after falling back"

# Bad values are usage errors, before any traffic.
for bad in "docker.io" "docker.io=" "=host:5000" "docker.io=Host_Bad" "docker.io=h:5000/UPPER"; do
    run_fetch "$work/bad" --store "$work/store4" --mirror "$bad" busybox:1.36
    expect_rc 2 "$work/bad" "--mirror '$bad'"
    assert_grep "--mirror" "$work/bad.err" "message for --mirror '$bad'"
done
[ ! -e "$work/store4" ] || fail "a usage error created the store"
run_fetch "$work/bad" --store "$work/store4" --mirror-only busybox:1.36
expect_rc 2 "$work/bad" "--mirror-only without --mirror"
note "ok"
