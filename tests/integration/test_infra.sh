#!/usr/bin/env bash
# Self-test of the test infrastructure: tests/infra/faultproxy.sh, token-registry.sh
# and mtls-proxy.sh, checked with curl and skopeo against a private plain
# docker-registry started here. No airlock binary is involved: when this test
# fails, the rig is broken, not airlock.
#
# Needs: docker-registry, nginx, skopeo, curl, jq, openssl, python3.
set -euo pipefail

src=${AL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
infra=$src/tests/infra
name=test_infra
work=$(mktemp -d "${TMPDIR:-/tmp}/airlock-$name.XXXXXX")
reg_pid=

fail() { echo "FAIL: $name: $*" >&2; exit 1; }
note() { echo "--- $name: $*" >&2; }
cleanup() {
    local rc=$?
    set +e
    bash "$infra/faultproxy.sh" stop "$work/fault" 2>/dev/null
    bash "$infra/token-registry.sh" stop "$work/token" 2>/dev/null
    bash "$infra/mtls-proxy.sh" stop "$work/mtls" 2>/dev/null
    if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null; wait "$reg_pid" 2>/dev/null; fi
    if [ "$rc" != 0 ] || [ -n "${AL_KEEP_TMP:-}" ]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for t in docker-registry skopeo curl jq openssl python3; do
    command -v "$t" >/dev/null || fail "$t is not installed (scripts/install-deps.sh)"
done
[ -x /usr/sbin/nginx ] || fail "nginx is not installed (Debian package nginx)"

C=(curl -s --noproxy '*' --max-time 20)
expect() { # WHAT WANT GOT
    [ "$2" = "$3" ] || fail "$1: expected '$2', got '$3'"
    note "ok: $1 ($3)"
}

# --- a private plain registry with one blob and one image -----------------
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/reg"
cat >"$work/reg/config.yml" <<EOF
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/reg/storage}}
http: {addr: 127.0.0.1:$port, secret: infra-selftest}
EOF
docker-registry serve "$work/reg/config.yml" >"$work/reg/log" 2>&1 &
reg_pid=$!
REG=127.0.0.1:$port
for _ in $(seq 100); do
    [ "$("${C[@]}" -o /dev/null -w '%{http_code}' "http://$REG/v2/")" = 200 ] && break
    sleep 0.1
done

# push_blob BASE FILE [CURL-ARGS...]: monolithic upload; prints the digest.
push_blob() {
    local base=$1 f=$2 d loc
    shift 2
    d=sha256:$(sha256sum <"$f" | cut -d' ' -f1)
    loc=$("${C[@]}" "$@" -D - -o /dev/null -X POST "$base/blobs/uploads/" |
        tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
    [ -n "$loc" ] || fail "no upload location from $base"
    case $loc in http*) ;; *) loc=${base%%/v2/*}$loc ;; esac
    [ "$("${C[@]}" "$@" -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: application/octet-stream' \
        --data-binary @"$f" "$loc&digest=$d")" = 201 ] || fail "blob upload to $base failed"
    echo "$d"
}

# push_image BASE TAG [CURL-ARGS...]: a one-layer OCI image made here.
push_image() {
    local base=$1 tag=$2 w ldig cdig
    shift 2
    w=$(mktemp -d "$work/img.XXXXXX")
    echo "hello from $base" >"$w/hello.txt"
    tar -C "$w" --mtime=@0 --owner=0 --group=0 -cf - hello.txt | gzip -n >"$w/layer.tgz"
    printf '{"architecture":"amd64","os":"linux","config":{},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
        "$(gzip -dc "$w/layer.tgz" | sha256sum | cut -d' ' -f1)" >"$w/config.json"
    ldig=$(push_blob "$base" "$w/layer.tgz" "$@")
    cdig=$(push_blob "$base" "$w/config.json" "$@")
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%d}]}' \
        "$cdig" "$(stat -c %s "$w/config.json")" "$ldig" "$(stat -c %s "$w/layer.tgz")" >"$w/manifest.json"
    [ "$("${C[@]}" "$@" -o /dev/null -w '%{http_code}' -X PUT \
        -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary @"$w/manifest.json" "$base/manifests/$tag")" = 201 ] || fail "manifest push to $base failed"
    echo "sha256:$(sha256sum <"$w/manifest.json" | cut -d' ' -f1)"
}

head -c 3000000 /dev/urandom >"$work/blob"
DIG=$(push_blob "http://$REG/v2/infra/blob" "$work/blob")
push_image "http://$REG/v2/infra/hello" v1 >/dev/null

# --- fault proxy -----------------------------------------------------------
note "faultproxy"
bash "$infra/faultproxy.sh" start "$work/fault" "$REG"
# shellcheck disable=SC1091
. "$work/fault/fault.env"
# shellcheck disable=SC1091
. "$src/tests/infra/infra-lib.sh"
B=$AL_FAULT_URL/v2/infra/blob/blobs/$DIG
get() { # CURL-ARGS... -> "http_code size curl_exit"; body in $work/out
    local out rc=0
    out=$("${C[@]}" -o "$work/out" -w '%{http_code} %{size_download}' "$@") || rc=$?
    echo "$out $rc"
}
expect "pass through" "200 3000000 0" "$(get "$B")"
cmp -s "$work/out" "$work/blob" || fail "pass through: body differs"
expect "range passthrough" "206 100 0" "$(get -r 100-199 "$B")"
cmp -s "$work/out" <(tail -c +101 "$work/blob" | head -c 100) || fail "range: wrong bytes"
expect "HEAD" "200" "$("${C[@]}" -I -o /dev/null -w '%{http_code}' "$B")"

fault_rules '{"rules": [
  {"id": "s429", "path": "/blobs/", "nth": 1, "action": "status", "status": 429, "headers": {"Retry-After": "1"}},
  {"id": "reset", "path": "/blobs/", "nth": 2, "action": "reset", "bytes": 1000},
  {"id": "trunc", "path": "/blobs/", "nth": 3, "action": "truncate", "bytes": 2000},
  {"id": "corrupt", "path": "/blobs/", "nth": 4, "action": "corrupt", "offset": 12345},
  {"id": "stall", "path": "/blobs/", "nth": 5, "action": "stall", "bytes": 500, "seconds": 3},
  {"id": "html", "path": "/blobs/", "nth": 6, "action": "html"},
  {"id": "close", "path": "/blobs/", "nth": 7, "action": "close"},
  {"id": "delay", "path": "/blobs/", "nth": 8, "action": "delay", "seconds": 1},
  {"id": "rst", "path": "/blobs/", "nth": 9, "action": "close", "rst": true}]}'
mark=$(fault_mark)
expect "429" "429 96 0" "$(get -D "$work/hdr" "$B")"
grep -qi '^Retry-After: 1' "$work/hdr" || fail "429 without Retry-After"
expect "reset mid-body (curl 56)" "200 1000 56" "$(get "$B")"
expect "truncate (curl 18)" "200 2000 18" "$(get "$B")"
expect "corrupt keeps the length" "200 3000000 0" "$(get "$B")"
expect "corrupt flips byte 12345" "1" "$(cmp -l "$work/out" "$work/blob" | wc -l | tr -d ' ')"
expect "stall (curl 28)" "200 500 28" "$(get --max-time 1 "$B")"
expect "html" "200 text/html; charset=utf-8" \
    "$("${C[@]}" -o /dev/null -w '%{http_code} %{content_type}' "$B")"
expect "close (curl 52)" "000 0 52" "$(get "$B")"
t0=$(date +%s%N)
expect "delay" "200 3000000 0" "$(get "$B")"
[ $((($(date +%s%N) - t0) / 1000000)) -ge 900 ] || fail "delay did not delay"
expect "close with rst (curl 56)" "000 0 56" "$(get "$B")"
# A request is logged when it ends: the stalled one only after its 3 s.
for _ in $(seq 20); do
    [ "$(fault_count 'select(.fault != null)' "$mark")" = 9 ] && break
done
expect "log lines" 9 "$(fault_count 'select(.fault != null)' "$mark")"
expect "logged faults" "s429 reset trunc corrupt html close delay rst stall" \
    "$(fault_since "$mark" | jq -r '.fault.id // empty' | paste -sd' ')"
expect "stall rule fired" 1 "$(fault_fired stall)"

# Redirect to the alt host: curl must not carry Authorization across hosts;
# the signed Location still gets the blob from the (here open) upstream.
fault_rules '{"rules": [{"id": "r", "method": "GET", "path": "/blobs/", "action": "redirect"}]}'
mark=$(fault_mark)
expect "redirect followed" "200 3000000 0" "$(get -L -H 'Authorization: Bearer SEKRIT-TOKEN' "$B")"
cmp -s "$work/out" "$work/blob" || fail "redirect: body differs"
expect "redirect hops" "main 307 true|alt 200 false" \
    "$(fault_since "$mark" | jq -r '"\(.listener) \(.status) \(.auth)"' | paste -sd'|')"
expect "no Authorization at the alt host" 0 "$(fault_alt_auth_count "$mark")"
"${C[@]}" -o /dev/null -L --location-trusted -H 'Authorization: Bearer SEKRIT-TOKEN' "$B"
expect "a leaking client is seen" 1 "$(fault_alt_auth_count "$mark")"
if grep -q SEKRIT "$AL_FAULT_LOG"; then fail "the proxy log holds a credential"; fi

# Control endpoint.
"${C[@]}" -o /dev/null -X POST --data '{"rules": [{"id": "p", "path": "/v2/$", "first": 2, "action": "status", "status": 503}]}' \
    "$AL_FAULT_URL/__fault/rules"
codes=""
for _ in 1 2 3; do codes+="$("${C[@]}" -o /dev/null -w '%{http_code}' "$AL_FAULT_URL/v2/") "; done
expect "first 2 via control endpoint" "503 503 200 " "$codes"

# Concurrency and keep-alive.
fault_rules '{"rules": []}'
pids=()
for i in $(seq 8); do
    "${C[@]}" -o "$work/par$i" "$B" &
    pids+=($!)
done
wait "${pids[@]}" # not a bare wait: the registry is a child too
for i in $(seq 8); do cmp -s "$work/par$i" "$work/blob" || fail "parallel download $i differs"; done
expect "keep-alive" "200 0" "$("${C[@]}" -o /dev/null -o /dev/null -w '%{http_code} %{num_connects}\n' \
    "$AL_FAULT_URL/v2/" "$B" | tail -1)"

# --- token registry --------------------------------------------------------
note "token registry"
AL_TOKEN_EXPIRY=4 AL_TOKEN_HARD_EXPIRY=1 bash "$infra/token-registry.sh" start "$work/token"
# shellcheck disable=SC1091
. "$work/token/token.env"
token() { # SCOPE [CURL-ARGS...]
    local scope=$1
    shift
    "${C[@]}" "$@" "$AL_TOKEN_REALM?service=$AL_TOKEN_SERVICE&scope=$scope" | jq -r .token
}
expect "challenge" 401 "$("${C[@]}" -o /dev/null -w '%{http_code}' "http://$AL_TOKEN_REG/v2/")"
expect "wrong password" 401 "$("${C[@]}" -o /dev/null -w '%{http_code}' -u "$AL_TOKEN_USER:nope" \
    "$AL_TOKEN_REALM?service=$AL_TOKEN_SERVICE&scope=repository:private/hello:pull")"
tok=$(token repository:private/hello:pull,push -u "$AL_TOKEN_USER:$AL_TOKEN_PASS")
pdig=$(push_image "http://$AL_TOKEN_REG/v2/private/hello" v1 -H "Authorization: Bearer $tok")
note "pushed private/hello:v1 $pdig with a push-scope token"
expect "skopeo with credentials" "$pdig" "$(skopeo inspect --tls-verify=false \
    --creds "$AL_TOKEN_USER:$AL_TOKEN_PASS" "docker://$AL_TOKEN_REG/private/hello:v1" | jq -r .Digest)"
anon=$(token repository:private/hello:pull)
expect "anonymous on private: insufficient_scope" 401 "$("${C[@]}" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $anon" "http://$AL_TOKEN_REG/v2/private/hello/manifests/v1")"
other=$(token repository:private/hello:pull -u "$AL_TOKEN_OTHER_USER:$AL_TOKEN_OTHER_PASS")
expect "other user on private" 401 "$("${C[@]}" -o /dev/null -w '%{http_code}' \
    -H "Authorization: Bearer $other" "http://$AL_TOKEN_REG/v2/private/hello/manifests/v1")"
SRC_ARGS="--src-tls-verify=false --src-creds $AL_TOKEN_USER:$AL_TOKEN_PASS" \
    bash "$infra/token-registry.sh" copy "$work/token" "docker://$AL_TOKEN_REG/private/hello:v1" public/hello:v1
expect "anonymous skopeo on public" "$pdig" "$(skopeo inspect --tls-verify=false \
    "docker://$AL_TOKEN_REG/public/hello:v1" | jq -r .Digest)"
# distribution answers 404 for an OCI manifest unless the client accepts it.
OCI='Accept: application/vnd.oci.image.manifest.v1+json'
tok=$(token repository:public/hello:pull)
expect "fresh token" 200 "$("${C[@]}" -o /dev/null -w '%{http_code}' \
    -H "$OCI" -H "Authorization: Bearer $tok" "http://$AL_TOKEN_REG/v2/public/hello/manifests/v1")"
sleep 5
expect "hard-expired token" 401 "$("${C[@]}" -o /dev/null -w '%{http_code}' \
    -H "$OCI" -H "Authorization: Bearer $tok" "http://$AL_TOKEN_REG/v2/public/hello/manifests/v1")"
if grep -rqF "$AL_TOKEN_PASS" "$AL_TOKEN_LOG" "$AL_TOKEN_REG_LOG" "$AL_TOKEN_REG_APPLOG"; then
    fail "a log holds the password"
fi

# --- mTLS ------------------------------------------------------------------
note "mtls proxy"
bash "$infra/mtls-proxy.sh" start "$work/mtls" "$REG"
# shellcheck disable=SC1091
. "$work/mtls/mtls.env"
M=https://$AL_MTLS_REG/v2/infra/blob/blobs/$DIG
expect "client certificate" "200 3000000 0" \
    "$(get --cacert "$AL_MTLS_CA" --cert "$AL_MTLS_CLIENT_CERT" --key "$AL_MTLS_CLIENT_KEY" "$M")"
cmp -s "$work/out" "$work/blob" || fail "mtls: body differs"
expect "no client certificate" 400 "$("${C[@]}" -o /dev/null -w '%{http_code}' --cacert "$AL_MTLS_CA" "$M")"
expect "untrusted client certificate" 400 "$("${C[@]}" -o /dev/null -w '%{http_code}' --cacert "$AL_MTLS_CA" \
    --cert "$AL_MTLS_BAD_CLIENT_CERT" --key "$AL_MTLS_BAD_CLIENT_KEY" "$M")"
cd_dir=$AL_MTLS_CERTS_D/$AL_MTLS_REG
for f in ca.crt client.cert client.key; do [ -f "$cd_dir/$f" ] || fail "certs.d lacks $f"; done
expect "skopeo with certs.d" "$(skopeo inspect --tls-verify=false "docker://$REG/infra/hello:v1" | jq -r .Digest)" \
    "$(skopeo inspect --cert-dir "$cd_dir" "docker://$AL_MTLS_REG/infra/hello:v1" | jq -r .Digest)"
mkdir -p "$work/ca-only"
cp "$AL_MTLS_CA" "$work/ca-only/ca.crt"
if skopeo inspect --cert-dir "$work/ca-only" "docker://$AL_MTLS_REG/infra/hello:v1" >/dev/null 2>&1; then
    fail "skopeo got through without a client certificate"
fi
note "ok: skopeo without a client certificate refused"

note "all checks passed"
