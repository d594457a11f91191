#!/usr/bin/env bash
# What the README promises about transfers, read off the wire (the fault
# proxy's log: when each request started and how long it took):
#   - retries back off exponentially, with jitter: nine layers each answered
#     503 four times; every layer is asked five times, the waits between its
#     attempts have growing lower bounds (1/4, 1/2, 1, 2 s: the backoff
#     starts at 1/2 s, doubles, and jitter takes at most half of it), and
#     the waits of parallel requests differ;
#   - -j N: with every blob request held 0.5 s in the proxy, the number of
#     requests in flight at once reaches N and never exceeds it; also over
#     HTTP/2 (nginx in front of the proxy), where requests are streams on
#     one connection and curl's per-host connection cap does not limit them;
#   - --connect-timeout SEC: a registry address that never completes a TCP
#     handshake (a listening socket whose accept queue is full) is given up
#     after about SEC seconds, with a clear message.
# Timings are asserted only as lower bounds where the claim is about waiting,
# and as a generous upper bound where it is about giving up.
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need curl
need python3
need nginx

work=$(tmpdir engine)
fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
via_proxy=(--registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY")
images=(calico/node:v3.28.0 rancher/mirrored-coredns-coredns:1.10.1 library/nested:1)

# wire MARK FILTER: the requests after MARK that FILTER keeps, as JSON lines
# with their end time added (.end = start + duration).
wire() { fault_since "$1" | jq -c "select($2) | .end = .ts + .ms / 1000"; }

# --- 1. backoff with jitter ---------------------------------------------------------
mapfile -t layers < <(for k in "${images[@]}"; do seed_blobs "$k" '.kind == "layer"'; done | sort -u)
[ "${#layers[@]}" -ge 8 ] || fail "test setup: fewer than 8 layers in ${images[*]}"
rules=$(for d in "${layers[@]}"; do
    echo "{\"id\":\"$d\",\"path\":\"/blobs/$d\",\"first\":4,\"action\":\"status\",\"status\":503}"
done | jq -s -c '{rules: .}')
fault_rules "$rules"
m=$(fault_mark)
run_fetch "$work/backoff" --store "$work/backoff.store" "${via_proxy[@]}" --retries 4 -j 16 "${images[@]}"
expect_rc 0 "$work/backoff" "a fetch whose layers fail four times each"
: >"$work/gaps"
for d in "${layers[@]}"; do
    wire "$m" ".path | endswith(\"/blobs/$d\")" | jq -s -c 'sort_by(.ts)' >"$work/attempts"
    assert_eq "503 503 503 503 200" "$(jq -r 'map(.status) | join(" ")' "$work/attempts")" "answers to the attempts at $d"
    # gap k: from the end of attempt k to the start of attempt k+1
    jq -r --arg d "$d" '. as $a | range(1; length) | "\($d) \(.) \($a[.].ts - $a[. - 1].end)"' "$work/attempts" >>"$work/gaps"
done
# Lower bounds only: retry k waits at least 0.25 * 2^(k-1) s (10 ms of slack
# for the proxy's millisecond clock).
awk '{ lb = 0.25 * 2 ^ ($2 - 1) - 0.01; if ($3 < lb) { printf "retry %d of %s came %.3f s after the failure, less than %.2f s\n", $2, $1, $3, lb; bad = 1 } }
    END { exit bad }' "$work/gaps" || { show "$work/gaps"; fail "a retry did not back off as long as it must"; }
# Jitter: the parallel requests do not wait the same time before the last
# retry. Without jitter they would, but for scheduling noise (60 ms seen on
# a loaded machine); with it, each waits 2 to 4 s, and the chance that all
# of them land within 0.3 s of each other is about 1 in 10^5.
spread=$(awk '$2 == 4 { if (n++ == 0 || $3 < lo) lo = $3; if ($3 > hi) hi = $3 } END { printf "%.3f", hi - lo }' "$work/gaps")
awk -v s="$spread" 'BEGIN { exit !(s >= 0.3) }' ||
    { show "$work/gaps"; fail "the last retries of parallel requests waited the same time (spread $spread s): no jitter"; }
note "backoff (s, per layer): $(awk '{ printf "%s%.2f", (NR % 4 == 1 ? (NR > 1 ? "; " : "") : " "), $3 }' "$work/gaps"); spread of the 4th waits $spread s"

# --- 2. -j N ------------------------------------------------------------------------------
# max_in_flight MARK: the most requests in flight at once (an interval ends
# 2 ms early: the next request on a connection may start in the millisecond
# the previous one was logged as ending).
max_in_flight() {
    wire "$1" 'true' | jq -s -r '[.[] | ([.ts, 1], [.end - 0.002, -1])] | sort_by(.[0], .[1])
        | reduce .[] as $e ({n: 0, max: 0}; .n += $e[1] | .max = ([.max, .n] | max)) | .max'
}
fault_rules '{"rules":[{"id":"hold","path":"/blobs/","method":"GET","action":"delay","seconds":0.5}]}'
for jobs in 3; do
    m=$(fault_mark)
    run_fetch "$work/jobs$jobs" --store "$work/jobs$jobs.store" "${via_proxy[@]}" -j "$jobs" "${images[@]}"
    expect_rc 0 "$work/jobs$jobs" "fetch with -j $jobs"
    got=$(max_in_flight "$m")
    assert_eq "$jobs" "$got" "requests in flight at once with -j $jobs"
    note "-j $jobs: at most $got requests at once, $(fault_count 'true' "$m") in all"
done
# Over HTTP/1.1 curl's per-host connection cap (-j connections) would hold the
# line even if the engine started more transfers. Over HTTP/2 the requests
# are streams on one connection and only -j limits them. nginx speaks HTTP/2
# (TLS, ALPN h2) to airlock and forwards each stream to the fault proxy as an
# HTTP/1.1 request of its own, sent once the stream is open and answered
# before the stream ends: the proxy never sees more requests at once than
# airlock has streams open.
MTLS_HTTP2=1 bash "$AL_SRC/tests/infra/mtls-proxy.sh" start "$work/h2" "$AL_FAULT_URL" >"$work/h2.log" 2>&1 ||
    { show "$work/h2.log"; fail "the HTTP/2 proxy (nginx) did not start"; }
on_exit "bash '$AL_SRC/tests/infra/mtls-proxy.sh' stop '$work/h2' >/dev/null 2>&1"
# shellcheck disable=SC1091
. "$work/h2/mtls.env"
m=$(fault_mark)
am=$(log_mark "$AL_MTLS_LOG")
run_fetch "$work/h2jobs3" --store "$work/h2jobs3.store" --registry "$AL_MTLS_REG" --certs-dir "$AL_MTLS_CERTS_D" \
    -j 3 "${images[@]}"
expect_rc 0 "$work/h2jobs3" "fetch over HTTP/2 with -j 3"
sleep 0.3
tail -n +"$((am + 1))" "$AL_MTLS_LOG" >"$work/h2jobs3.access"
[ "$(grep -c '"GET /v2/[^ ]*/blobs/[^ ]* HTTP/2.0"' "$work/h2jobs3.access" || true)" -ge 8 ] ||
    { show "$work/h2jobs3.access"; fail "too few blob requests over HTTP/2 to test -j 3 on it"; }
assert_eq 0 "$(grep -vc 'HTTP/2.0" ' "$work/h2jobs3.access" || true)" "requests to nginx not over HTTP/2"
got=$(max_in_flight "$m")
assert_eq 3 "$got" "requests in flight at once with -j 3 over HTTP/2"
note "-j 3 over HTTP/2: at most $got requests at once, $(fault_count 'true' "$m") in all"
fault_rules '{"rules": []}'

# --- 3. --connect-timeout --------------------------------------------------------------
# A listening socket that never accepts, its queue filled by connections
# that never send: the kernel drops further SYNs, so a connect hangs.
python3 - "$work/blackhole.port" <<'PY' &
import os, socket, sys, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(0)
port = srv.getsockname()[1]
fillers = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fillers.append(c)
time.sleep(0.5)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{port}\n")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(600)
PY
hole_pid=$!
on_exit "kill $hole_pid 2>/dev/null"
for _ in $(seq 100); do [ -s "$work/blackhole.port" ] && break; sleep 0.1; done
hole=127.0.0.1:$(cat "$work/blackhole.port")
# The premise, checked with curl: a connection to it times out.
rc=0
curl -s -o /dev/null --connect-timeout 1 "http://$hole/v2/" || rc=$?
[ "$rc" = 28 ] || skip "cannot make an address that never answers here (curl: exit $rc, not a timeout)"
start=$(date +%s.%N)
RC=0
timeout 25 "$FETCH" --store "$work/ct.store" --insecure-registry "$hole" --connect-timeout 2 --retries 0 \
    "$hole/library/busybox:1.36" >"$work/ct.out" 2>"$work/ct.err" || RC=$?
took=$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
[ "$RC" != 124 ] || fail "--connect-timeout 2: still waiting after 25 s"
expect_rc 1 "$work/ct" "a fetch from an address that never answers"
assert_grep "^FAILED +$hole/library/busybox:1.36 .*$hole.*(timed out|timeout)" "$work/ct.out" "the FAILED line"
awk -v t="$took" 'BEGIN { exit !(t >= 2 && t < 15) }' ||
    fail "--connect-timeout 2 --retries 0 gave up after $took s (expected between 2 and 15 s)"
note "--connect-timeout 2: gave up after $took s"
note "ok"
