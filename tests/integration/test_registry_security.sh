#!/usr/bin/env bash
# Hostile registries (tests/infra/fakeregistry.py serving scripted answers):
#   1. a TLS-verified registry that names a plain-HTTP token realm on another
#      host gets no credentials: every image fails naming the realm, and the
#      realm (in a network namespace, so not a local address) sees no
#      request; an anonymous token request still goes there, and with
#      --insecure-registry naming the realm host the credentials go too;
#   2. a registry's error text with ESC sequences and a newline forging a
#      result line ("FAKE: ok ...") reaches stdout, stderr, the lock file and
#      the JSON report only escaped; so do tag names read back from a
#      tampered database (airlock-export --list, --verify-store);
#   3. a token holding "\r\nX-Injected: 1" is refused, naming the token
#      server: the registry never receives the injected header.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir sec)
ESC=$'\x1b'
# Control bytes other than newline, and C1 controls in UTF-8 (U+0080..U+009F).
CTRL=$'[\x01-\x09\x0b-\x1f\x7f]'
C1=$'\xc2[\x80-\x9f]'
assert_printable() { # FILE WHAT: no raw control byte, no forged line
    if LC_ALL=C grep -q "$CTRL" "$1" || LC_ALL=C grep -q "$C1" "$1"; then
        LC_ALL=C grep -n "$CTRL\|$C1" "$1" | cat -v | head -5 >&2
        fail "${2:-$1} holds a raw control byte"
    fi
    assert_no_grep '^FAKE' "$1" "${2:-$1}"
}

# 1. Credentials only over TLS ------------------------------------------------
netns_up
# token_routes FILE TOKEN: a token endpoint at /token answering TOKEN.
token_routes() {
    python3 -c 'import json, sys
body = json.dumps({"token": sys.argv[2], "expires_in": 300})
json.dump({"/token": {"status": 200, "headers": {"Content-Type": "application/json"},
                      "body": body}}, open(sys.argv[1], "w"))' "$1" "$2"
}
token_routes "$work/realm-routes.json" t0k3n
FAKE_NETNS=$NETNS fake_registry_up "$work/realm" "$work/realm-routes.json" --bind "$NETNS_ADDR1"
realm_hp=$NETNS_ADDR1:$FAKE_PORT
realm_url=http://$realm_hp/token
# The namespace is reachable: a plain GET gets the token.
curl -sf --max-time 5 "$realm_url" | matches t0k3n || fail "the realm in $NETNS does not answer"
: >"$work/realm/headers.jsonl"

challenge="Bearer realm=\\\"$realm_url\\\",service=\\\"fake\\\""
cat >"$work/tls-routes.json" <<EOF
{"/v2/library/evil/manifests/1": {"status": 401, "headers": {"WWW-Authenticate": "$challenge",
   "Content-Type": "application/json"}, "body": "{\"errors\": [{\"code\": \"UNAUTHORIZED\"}]}"},
 "/v2/library/evil/manifests/2": {"status": 401, "headers": {"WWW-Authenticate": "$challenge",
   "Content-Type": "application/json"}, "body": "{\"errors\": [{\"code\": \"UNAUTHORIZED\"}]}"}}
EOF
fake_registry_up "$work/tls" "$work/tls-routes.json" \
    --tls-cert "$AL_RIG_DIR/tls/server.crt" --tls-key "$AL_RIG_DIR/tls/server.key"
tls_reg=127.0.0.1:$FAKE_PORT
realm_requests() { grep -c . "$work/realm/headers.jsonl" || true; }
realm_auth() { jq -r 'select([.headers[][0] | ascii_downcase] | index("authorization")) | .path' "$work/realm/headers.jsonl"; }

run_fetch "$work/creds" --store "$work/store1" --registry "$tls_reg" --ca-cert "$AL_CA_CERT" \
    --username "$AL_AUTH_USER" --password-stdin evil:1 evil:2 <"$AL_AUTH_PASS_FILE"
expect_rc 1 "$work/creds" "a TLS registry naming a plain-HTTP realm"
sleep 0.3
assert_eq 0 "$(realm_requests)" "requests the plain-HTTP realm received with credentials at hand"
for t in 1 2; do
    line=$(line_for "$work/creds.out" "docker.io/library/evil:$t")
    [[ $line == FAILED* ]] || { show "$work/creds.out"; fail "evil:$t did not fail"; }
    [[ $line == *"token realm $realm_url is plain HTTP"*"nothing was sent"* ]] ||
        fail "evil:$t: the result does not name the realm and why: $line"
done
assert_no_canary "$work/creds.out" "$work/creds.err" "$work/store1"
note "credentials refused to $realm_url, nothing sent"

# Anonymous: the token request carries no secret and goes.
run_fetch "$work/anon" --store "$work/store2" --registry "$tls_reg" --ca-cert "$AL_CA_CERT" evil:1
expect_rc 1 "$work/anon" "anonymous fetch (the fake registry refuses every token)"
sleep 0.3
[ "$(realm_requests)" -ge 1 ] || fail "the anonymous token request did not reach the realm"
assert_eq "" "$(realm_auth)" "token requests with Authorization (anonymous)"

# --insecure-registry naming the realm's host allows credentials to it.
run_fetch "$work/flag" --store "$work/store3" --registry "$tls_reg" --ca-cert "$AL_CA_CERT" \
    --insecure-registry "$realm_hp" --username "$AL_AUTH_USER" --password-stdin evil:1 \
    <"$AL_AUTH_PASS_FILE"
expect_rc 1 "$work/flag" "fetch with --insecure-registry for the realm"
sleep 0.3
[ -n "$(realm_auth)" ] || fail "with --insecure-registry $realm_hp the credentials did not go to the realm"
jq -r '.headers[] | select(.[0] | ascii_downcase == "authorization") | .[1]' \
    "$work/realm/headers.jsonl" | matches -x 'Basic <redacted>' || fail "no Basic credentials at the realm"
note "anonymous token request sent; credentials sent with --insecure-registry $realm_hp"

# 2. Text from outside, sanitised -----------------------------------------------
# The error body holds ESC (an OSC title and a colour), BEL, a newline that
# would start a forged result line, CR and the C1 CSI (U+009B), all as JSON
# escapes, as a registry would send them.
python3 -c 'import json, sys
body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN\x1b]0;owned\x07",
    "message": "nope\x1b[31m red\nFAKE: ok docker.io/library/esc:1 sha256:0000\r\x9b2J"}]})
json.dump({"/v2/library/esc/manifests/1": {"status": 404,
    "headers": {"Content-Type": "application/json"}, "body": body}}, open(sys.argv[1], "w"))' \
    "$work/esc-routes.json"
fake_registry_up "$work/esc" "$work/esc-routes.json"
esc_reg=127.0.0.1:$FAKE_PORT
run_fetch "$work/esc" --store "$work/store4" --registry "$esc_reg" esc:1 \
    --json "$work/esc.json" --lock "$work/esc.lock"
expect_rc 1 "$work/esc" "fetch from a registry with a hostile error text"
jq -r '.images[].error.message' "$work/esc.json" >"$work/esc.json.msg"
for f in "$work/esc.out" "$work/esc.err" "$work/esc.lock" "$work/esc.json" "$work/esc.json.msg"; do
    assert_file "$f"
    assert_printable "$f"
done
grep -qF "$ESC" "$work/esc.out" && fail "ESC on stdout"
# The registry's words are there, escaped, on the image's one result line.
line=$(line_for "$work/esc.out" docker.io/library/esc:1)
[[ $line == FAILED*'MANIFEST_UNKNOWN\x1b]0;owned\x07: nope\x1b[31m red\x0aFAKE: ok'*'\x0d\xc2\x9b2J'* ]] ||
    { show "$work/esc.out"; fail "the result line does not show the registry's text escaped: $line"; }
assert_eq 2 "$(grep -c . "$work/esc.out")" "lines on stdout (one result, one summary)"
assert_grep '^# FAILED docker\.io/library/esc:1: .*\\x0aFAKE: ok' "$work/esc.lock" "lock file comment"
note "the hostile error text is escaped everywhere"

# Names read back from a tampered database.
store=$work/store5
fetch_seeded "$store" "$work" library/busybox:1.36
sqlite3 "$store/airlock.db" "UPDATE tags SET full_name = full_name || char(27) || '[2J' || char(10) ||
    'FAKE: ok x', source = source || char(27) || ']0;t' || char(7)" ||
    fail "could not tamper with the database"
run_export "$work/list" --store "$store" --list
expect_rc 0 "$work/list" "airlock-export --list of a tampered store"
assert_grep 'busybox:1\.36\\x1b\[2J\\x0aFAKE: ok x' "$work/list.out" "--list line of the tampered tag"
run_export "$work/verify" --store "$store" --verify-store
for f in "$work/list.out" "$work/list.err" "$work/verify.out" "$work/verify.err"; do
    assert_printable "$f"
done
note "tag names from the database are escaped (--list, --verify-store)"

# 3. Header injection -------------------------------------------------------------
token_routes "$work/tokensrv-routes.json" $'abc\r\nX-Injected: 1'
fake_registry_up "$work/tokensrv" "$work/tokensrv-routes.json"
token_url=http://127.0.0.1:$FAKE_PORT/token
cat >"$work/inj-routes.json" <<EOF
{"/v2/library/inj/manifests/1": {"status": 401, "headers": {"WWW-Authenticate":
  "Bearer realm=\\"$token_url\\",service=\\"fake\\"", "Content-Type": "application/json"},
  "body": "{\"errors\": [{\"code\": \"UNAUTHORIZED\"}]}"}}
EOF
fake_registry_up "$work/inj" "$work/inj-routes.json"
run_fetch "$work/inj" --store "$work/store6" --registry "127.0.0.1:$FAKE_PORT" inj:1
expect_rc 1 "$work/inj" "fetch with a token holding CR LF"
sleep 0.3
[ "$(grep -c . "$work/tokensrv/headers.jsonl")" -ge 1 ] || fail "the token server was never asked"
[ "$(grep -c . "$work/inj/headers.jsonl")" -ge 1 ] || fail "the registry was never asked"
assert_eq "" "$(jq -r '.headers[][0]' "$work/inj/headers.jsonl" | grep -ix 'x-injected' || true)" \
    "injected headers the registry received"
assert_eq "" "$(jq -r '.headers[][0]' "$work/inj/headers.jsonl" | grep -ix 'authorization' || true)" \
    "Authorization headers the registry received"
line=$(line_for "$work/inj.out" docker.io/library/inj:1)
[[ $line == FAILED*"token server $token_url"*"outside visible ASCII"*refused* ]] ||
    { show "$work/inj.out"; fail "the result does not name the token server: $line"; }
[[ $line != *abc* ]] || fail "the token is in the message: $line"
note "a token with CR LF is refused; the registry saw no injected header"
note "ok"
