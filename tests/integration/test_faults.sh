#!/usr/bin/env bash
# Faults between airlock-fetch and the registry, injected by
# tests/infra/faultproxy.py on chosen requests. For each: the fetch recovers
# (transient faults) or fails clearly (permanent ones), and no wrong blob is
# ever stored. A 429's Retry-After is waited before the retry.
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need curl

work=$(tmpdir faults)

layer=$(seed_blobs library/busybox:1.36 '.kind == "layer"' | sed -n 1p)
[ -n "$layer" ] || fail "no busybox layer in the seed description"

# fetch_via NAME EXPECTED_RC [args...]: a fresh store through the proxy.
fetch_via() {
    local name=$1 want=$2
    shift 2
    run_fetch "$work/$name" --store "$work/$name.store" --registry "$AL_FAULT_PROXY" \
        --insecure-registry "$AL_FAULT_PROXY" "$@"
    expect_rc "$want" "$work/$name" "fetch with fault '$name'"
}
# The store holds only blobs whose content matches their name.
assert_store_sound() {
    local f
    for f in "$1"/blobs/sha256/*; do
        [ -e "$f" ] || continue
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "$f: wrong content stored"
    done
}

fault_proxy_up "$work/plain" "http://$AL_REG_PLAIN"

# --- transient faults: the fetch recovers --------------------------------------
transient=(
    "429|{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"nth\":1,\"action\":\"status\",\"status\":429,\"headers\":{\"Retry-After\":\"2\"}}]}"
    "500|{\"rules\":[{\"id\":\"f\",\"path\":\"/manifests/\",\"method\":\"GET\",\"nth\":1,\"action\":\"status\",\"status\":500}]}"
    "503|{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/\",\"first\":2,\"action\":\"status\",\"status\":503}]}"
    "reset|{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"nth\":1,\"action\":\"reset\",\"bytes\":300000}]}"
    "truncate|{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"nth\":1,\"action\":\"truncate\",\"bytes\":200000}]}"
    "close|{\"rules\":[{\"id\":\"f\",\"path\":\"/manifests/\",\"nth\":1,\"action\":\"close\"}]}"
    "stall|{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"nth\":1,\"action\":\"stall\",\"bytes\":100000,\"seconds\":30}]}"
)
for row in "${transient[@]}"; do
    name=${row%%|*}
    fault_rules "${row#*|}"
    m=$(fault_mark)
    fetch_via "$name" 0 --stall-timeout 2 busybox:1.36 rancher/mirrored-pause:3.6
    [ "$(fault_fired f)" -ge 1 ] || fail "fault '$name' never fired"
    assert_blobs_match_registry "$work/$name.store" "$AL_REG_PLAIN_STORAGE"
    assert_store_sound "$work/$name.store"
    [ -z "$(ls -A "$work/$name.store/tmp")" ] || fail "fault '$name': leftovers in tmp/"
    if [ "$name" = 429 ]; then
        # Retry-After: 2 is waited: the retry starts at least 2 s after the
        # 429 was sent (10 ms of slack for the proxy's millisecond clock).
        fault_since "$m" | jq -s -c "map(select(.path | endswith(\"/blobs/$layer\"))) | sort_by(.ts)" >"$work/429.log"
        assert_eq "429 200" "$(jq -r 'map(.status) | join(" ")' "$work/429.log")" "answers to the requests for the layer"
        gap=$(jq -r '.[1].ts - (.[0].ts + .[0].ms / 1000) | . * 1000 | round / 1000' "$work/429.log")
        awk -v g="$gap" 'BEGIN { exit !(g >= 1.99) }' ||
            { show "$work/429.log"; fail "the retry came $gap s after the 429 with Retry-After: 2"; }
        note "429 with Retry-After: 2: retried after $gap s"
    fi
done
# A cut download is resumed, not restarted: the retry asks for the rest.
fault_rules "{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"nth\":1,\"action\":\"reset\",\"bytes\":300000}]}"
m=$(fault_mark)
fetch_via resume-range 0 busybox:1.36
fault_since "$m" | jq -r "select(.path | test(\"$layer\")) | .range // \"\"" >"$work/ranges"
grep -qE '^bytes=[1-9][0-9]*-$' "$work/ranges" || { show "$work/ranges"; fail "the retry after a reset did not ask for a range"; }

# --- permanent faults: a clear failure, no wrong blob ---------------------------
fault_rules "{\"rules\":[{\"id\":\"f\",\"path\":\"/blobs/$layer\",\"action\":\"corrupt\",\"offset\":1000}]}"
m=$(fault_mark)
fetch_via corrupt 1 busybox:1.36
assert_grep "FAILED +docker.io/library/busybox:1.36 .*digest mismatch" "$work/corrupt.out" "corrupt blob"
store_has_blob "$work/corrupt.store" "$layer" && fail "a corrupt blob was stored"
assert_eq 0 "$(db "$work/corrupt.store" 'SELECT count(*) FROM tags')" "tags after a corrupt blob"
assert_eq 0 "$(db "$work/corrupt.store" "SELECT count(*) FROM blobs WHERE digest = '$layer'")" "row of the corrupt blob"
assert_store_sound "$work/corrupt.store"
# not retried forever: one request, not retries*N
[ "$(fault_count "select(.path | test(\"$layer\"))" "$m")" -le 2 ] || fail "a digest mismatch was retried"

fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"status","status":404}]}'
m=$(fault_mark)
fetch_via 404 1 busybox:1.36
assert_grep "HTTP 404" "$work/404.out" "404"
assert_eq 1 "$(fault_count 'select(.path | test("/manifests/"))' "$m")" "requests for a 404 (no retry)"

fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"status","status":403}]}'
m=$(fault_mark)
fetch_via 403 1 busybox:1.36
assert_grep "HTTP 403" "$work/403.out" "403"
assert_eq 1 "$(fault_count 'select(.path | test("/manifests/"))' "$m")" "requests for a 403 (no retry)"

fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"html"}]}'
fetch_via html 1 busybox:1.36
assert_grep "FAILED .*(HTML|media type)" "$work/html.out" "an HTML answer"

fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"status","status":503}]}'
m=$(fault_mark)
fetch_via 503-forever 1 --retries 2 busybox:1.36
assert_grep "HTTP 503" "$work/503-forever.out" "503 after retries"
assert_eq 3 "$(fault_count 'select(.path | test("/manifests/"))' "$m")" "attempts with --retries 2"

# --- rate limits ------------------------------------------------------------------
fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"forward","set_headers":{"RateLimit-Limit":"100;w=21600","RateLimit-Remaining":"1;w=21600"}}]}'
fetch_via ratelimit 0 busybox:1.36
assert_grep "rate limit: .* 1 of 100 pulls left \\(window 21600 s\\)" "$work/ratelimit.out" "quota in the summary"
fault_rules '{"rules":[{"id":"f","path":"/manifests/","action":"forward","set_headers":{"RateLimit-Limit":"100;w=21600","RateLimit-Remaining":"0;w=21600"}}]}'
m=$(fault_mark)
fetch_via ratelimit0 1 busybox:1.36 rancher/mirrored-pause:3.6 calico/node:v3.28.0
assert_grep "rate limit reached" "$work/ratelimit0.out" "a spent quota"
# The first answer says 0 left: at most one manifest GET per round went out.
[ "$(fault_count 'select(.method == "GET" and (.path | test("/manifests/")))' "$m")" -le 2 ] ||
    fail "manifest GETs kept going with no quota left"

# --- redirects: credentials never follow to another host -------------------------
fault_proxy_up "$work/auth" "https://$AL_REG_AUTH" --ca "$AL_CA_CERT"
fault_rules '{"rules":[{"id":"r","path":"/blobs/","listener":"main","action":"redirect"}]}'
m=$(fault_mark)
RC=0
"$FETCH" --store "$work/redirect.store" --registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY" \
    --insecure-registry "$AL_FAULT_ALT" --username "$AL_AUTH_USER" --password-stdin \
    busybox:1.36 <<<"$AL_AUTH_PASS" >"$work/redirect.out" 2>"$work/redirect.err" || RC=$?
expect_rc 0 "$work/redirect" "fetch with redirected blobs"
[ "$(fault_count 'select(.listener == "alt")' "$m")" -ge 1 ] || fail "no request followed the redirect"
assert_eq 0 "$(fault_count 'select(.listener == "alt" and .auth)' "$m")" "requests with Authorization on the other host"
[ "$(fault_count 'select(.listener == "main" and .auth)' "$m")" -ge 1 ] || fail "the registry itself got no Authorization"
assert_blobs_match_registry "$work/redirect.store" "$AL_REG_AUTH_STORAGE"
assert_no_canary "$work"
note "every fault recovered or failed cleanly"
