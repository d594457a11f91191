#!/usr/bin/env bash
# The per-transfer engine, seen from the wire (issues 14 and 15):
#   1. a slow config does not hold back other images: the fault proxy
#      delays one image's config by 5 s; every layer of two other images
#      is served before that config (order in the proxy's log, not time);
#   2. a mirror that accepts connections and hangs up, with 40 images: the
#      connections it gets are counted (one call retries, the others wait,
#      then all 40 fall back at once), not 40 times as many;
#   3. a registry that refuses HEAD on manifests (405): one HEAD, then GET
#      by tag for the rest of the run; nightly runs stay "unchanged";
#   4. Retry-After above --max-wait fails the image at once, saying how
#      long the registry asked for; a shorter one is said on stderr, waited
#      and the fetch goes on;
#   5. a 404 on a layer leaves no empty partial in tmp/; a partial already
#      whole is committed without a request.
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need curl
need python3

work=$(tmpdir transfers)
fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
via=(--registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY")

# --- 1. a slow config holds back nothing else ----------------------------------
slow_cfg=$(seed_config_for library/alpine-ish:3.19 linux/amd64)
[ -n "$slow_cfg" ] || fail "no config for library/alpine-ish:3.19 in the seed description"
others=()
for k in rancher/zstd-image:1 rancher/local-path-provisioner:v0.0.26; do
    while read -r l; do
        seed_blobs library/alpine-ish:3.19 | matches -x "$l" || others+=("$l")
    done < <(seed_blobs "$k" '.kind == "layer"')
done
[ "${#others[@]}" -ge 2 ] || fail "test setup: the other images have no layer of their own"
fault_rules "{\"rules\":[{\"id\":\"slow\",\"path\":\"/blobs/$slow_cfg\",\"action\":\"delay\",\"seconds\":5}]}"
m=$(fault_mark)
run_fetch "$work/slow" --store "$work/slow.store" "${via[@]}" \
    alpine-ish:3.19 rancher/zstd-image:1 rancher/local-path-provisioner:v0.0.26
expect_rc 0 "$work/slow" "fetch with one config delayed"
[ "$(fault_fired slow)" = 1 ] || fail "the delay rule did not fire"
fault_since "$m" | jq -r '.path' >"$work/slow.order"
cfg_line=$(grep -n "/blobs/$slow_cfg" "$work/slow.order" | cut -d: -f1)
[ -n "$cfg_line" ] || { show "$work/slow.order"; fail "the delayed config is not in the proxy's log"; }
for l in "${others[@]}"; do
    n=$(grep -n "/blobs/$l" "$work/slow.order" | sed -n 1p | cut -d: -f1)
    [ -n "$n" ] || { show "$work/slow.order"; fail "layer $l was not requested"; }
    [ "$n" -lt "$cfg_line" ] || { show "$work/slow.order"; fail "layer $l was served after the delayed config"; }
done
note "${#others[@]} layers of two other images were served before the delayed config"

# --- 2. a mirror that hangs up, 40 images ---------------------------------------
tag_prefix=engine-$$-$RANDOM
mt=application/vnd.docker.distribution.manifest.list.v2+json
curl -sf -H "Accept: $mt" -o "$work/index.json" "http://$AL_REG_PLAIN/v2/library/busybox/manifests/1.36" ||
    fail "could not read busybox's index"
for i in $(seq 1 40); do
    curl -sf -X PUT -H "Content-Type: $mt" --data-binary @"$work/index.json" \
        "http://$AL_REG_PLAIN/v2/library/busybox/manifests/$tag_prefix-$i" >/dev/null ||
        fail "could not tag busybox as $tag_prefix-$i"
    echo "$AL_REG_PLAIN/library/busybox:$tag_prefix-$i"
done >"$work/forty.txt"
cat >"$work/hangup.py" <<'EOF'
import socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(64)
open(sys.argv[1], "w").write(str(s.getsockname()[1]))
n = 0
while True:
    c, _ = s.accept()
    n += 1
    open(sys.argv[2], "w").write(str(n))
    c.close()
EOF
python3 "$work/hangup.py" "$work/hangup.port" "$work/hangup.count" &
on_exit "kill $! 2>/dev/null"
for _ in $(seq 50); do [ -s "$work/hangup.port" ] && break; sleep 0.1; done
dead=127.0.0.1:$(cat "$work/hangup.port")
run_fetch "$work/forty" --store "$work/forty.store" --retries 2 --mirror "$AL_REG_PLAIN=$dead" \
    --insecure-registry "$dead" -f "$work/forty.txt"
expect_rc 0 "$work/forty" "40 images through a mirror that hangs up"
assert_eq 40 "$(grep -c '^ok ' "$work/forty.out")" "images fetched from the upstream"
accepts=$(cat "$work/hangup.count")
# One TLS attempt (the host may use plain HTTP), then 1 + --retries 2 by
# the call that probes it; never one round per image.
[ "$accepts" -le 4 ] || fail "the dead mirror was connected to $accepts times for 40 images"
assert_grep "$dead is unreachable after 3 attempts" "$work/forty.err" "what happened to the mirror"
assert_no_grep "gave up after" "$work/forty.err" "stderr of the mirror fallback"
note "40 images fell back after $accepts connections to the mirror"

# --- 3. HEAD refused --------------------------------------------------------------
refs=(library/busybox:1.36 rancher/mirrored-pause:3.6 calico/node:v3.28.0)
store=$work/head.store
fault_rules '{"rules": []}'
run_fetch "$work/head1" --store "$store" "${via[@]}" "${refs[@]}"
expect_rc 0 "$work/head1" "first fetch"
fault_rules '{"rules":[{"id":"nohead","method":"HEAD","path":"/manifests/","action":"status","status":405}]}'
for run in 2 3; do
    m=$(fault_mark)
    run_fetch "$work/head$run" --store "$store" "${via[@]}" "${refs[@]}"
    expect_rc 0 "$work/head$run" "fetch $run from a registry that refuses HEAD"
    for r in "${refs[@]}"; do
        assert_eq unchanged "$(word_for "$work/head$run.out" "$(seed_name "$r")")" "run $run: $r"
    done
    assert_eq 1 "$(fault_count 'select(.method == "HEAD")' "$m")" "run $run: HEAD requests"
    assert_eq "${#refs[@]}" "$(fault_count 'select(.method == "GET" and (.path | test("/manifests/[^s]")))' "$m")" \
        "run $run: GETs by tag"
    assert_eq 0 "$(fault_count 'select(.path | test("/blobs/"))' "$m")" "run $run: blob requests"
done
note "HEAD refused: one HEAD, then GET by tag, images unchanged"

# --- 4. Retry-After and --max-wait ---------------------------------------------------
fault_rules '{"rules":[{"id":"ra","path":"/manifests/","action":"status","status":429,"headers":{"Retry-After":"999999"}}]}'
m=$(fault_mark)
run_fetch "$work/maxwait" --store "$work/maxwait.store" "${via[@]}" --retries 1 busybox:1.36
expect_rc 1 "$work/maxwait" "fetch from a registry asking for a 999999 s wait"
assert_grep "FAILED .*HTTP 429 Too Many Requests.*asks to wait 999999 s before trying again, more than --max-wait 60 s" \
    "$work/maxwait.out" "the result line"
assert_eq 1 "$(fault_count 'select(.path | test("/manifests/"))' "$m")" "requests (no retry)"
fault_rules '{"rules":[{"id":"ra","path":"/manifests/","nth":1,"action":"status","status":429,"headers":{"Retry-After":"2"}}]}'
m=$(fault_mark)
run_fetch "$work/wait" --store "$work/wait.store" "${via[@]}" --max-wait 5 busybox:1.36
expect_rc 0 "$work/wait" "fetch from a registry asking for a 2 s wait"
assert_grep "HTTP 429: the registry asks to wait 2 s; trying again then" "$work/wait.err" "the wait, said"
[ "$(fault_fired ra)" = 1 ] || fail "the 429 rule did not fire"
note "Retry-After: above --max-wait fails at once; below it is said and waited"

# --- 5. partial downloads --------------------------------------------------------------
layer=$(seed_blobs library/alpine-ish:3.19 '.kind == "layer"' | tail -1)
fault_rules "{\"rules\":[{\"id\":\"nf\",\"path\":\"/blobs/$layer\",\"action\":\"status\",\"status\":404}]}"
run_fetch "$work/nf" --store "$work/partial.store" "${via[@]}" alpine-ish:3.19
expect_rc 1 "$work/nf" "fetch with a layer missing"
assert_eq "" "$(ls -A "$work/partial.store/tmp")" "tmp/ after a 404"
# The whole layer, as an earlier run might have left it.
cp "$(blob_in_registry "$AL_REG_PLAIN_STORAGE" "$layer")" "$work/partial.store/tmp/partial-${layer#sha256:}"
fault_rules '{"rules": []}'
m=$(fault_mark)
run_fetch "$work/whole" --store "$work/partial.store" "${via[@]}" alpine-ish:3.19
expect_rc 0 "$work/whole" "fetch with the layer's partial download whole"
assert_eq 0 "$(fault_count "select(.path | test(\"$layer\"))" "$m")" "requests for the layer"
store_has_blob "$work/partial.store" "$layer" || fail "the whole partial was not committed"
assert_eq "" "$(ls -A "$work/partial.store/tmp")" "tmp/ after the commit"
note "no empty partial after a 404; a whole partial committed without a request"
note "ok"
