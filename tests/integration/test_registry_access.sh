#!/usr/bin/env bash
# Registries as operators meet them:
#   - a token-auth registry (distribution + the tests' JWT issuer): anonymous
#     pull of a public repository; a private one with credentials taken from
#     each source in turn: a credential helper on PATH (credHelpers), docker
#     config.json auths, containers auth.json, --password-stdin; a missing
#     helper is a clear error;
#   - bearer tokens: one token request per repository scope and run, the
#     token reused for every request of that repository;
#   - wrong credentials: one AUTH error per registry (one token attempt), not
#     one per image or blob;
#   - a token that expires mid-run: the registry refuses it (its log says the
#     token expired), airlock gets a new one and fetches that blob again;
#     also when the token server announced it for 300 s and the registry
#     refuses it after 4 (only the 401 can tell airlock to renew);
#   - credentials given for one registry are never sent to another registry
#     of the same run (its log shows no Authorization; its images fail);
#   - TLS with a custom CA from a certs.d directory (--certs-dir);
#   - mTLS (nginx demanding client certificates): --client-cert/--client-key,
#     and certs.d's client.cert/client.key; no or a wrong certificate fails
#     clearly;
#   - the canary passwords appear in no output and no store file.
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need skopeo
need nginx

work=$(tmpdir access)
tok=$work/tok
AL_TOKEN_EXPIRY=4 AL_TOKEN_HARD_EXPIRY=1 bash "$AL_SRC/tests/infra/token-registry.sh" start "$tok" \
    >"$work/tok.log" 2>&1 || { show "$work/tok.log"; fail "token registry did not start"; }
on_exit "bash '$AL_SRC/tests/infra/token-registry.sh' stop '$tok' >/dev/null 2>&1"
# shellcheck disable=SC1091
. "$tok/token.env"
for pair in "library/busybox:1.36 library/busybox:1.36" "library/busybox:1.36 private/app:1" \
    "rancher/mirrored-pause:3.6 private/pause:3.6" "calico/node:v3.28.0 private/calico:1"; do
    set -- $pair
    SRC_ARGS=--src-tls-verify=false bash "$AL_SRC/tests/infra/token-registry.sh" copy "$tok" \
        "docker://$AL_REG_PLAIN/$1" "$2" >>"$work/copy.log" 2>&1 || { show "$work/copy.log"; fail "copy $1"; }
done
reg=$AL_TOKEN_REG
common=(--insecure-registry "$reg")
private=("$reg/private/app:1" "$reg/private/pause:3.6" "$reg/private/calico:1")
clean_env() { env -u DOCKER_CONFIG -u REGISTRY_AUTH_FILE -u XDG_RUNTIME_DIR HOME="$work/home" "$@"; }
mkdir -p "$work/home"

# fetch_with NAME RC [env assignments...] -- [args...]
fetch_with() {
    local name=$1 want=$2
    shift 2
    local envs=()
    while [ "$1" != "--" ]; do envs+=("$1"); shift; done
    shift
    RC=0
    clean_env "${envs[@]}" "$FETCH" --store "$work/$name.store" "${common[@]}" "$@" \
        >"$work/$name.out" 2>"$work/$name.err" </dev/null || RC=$?
    expect_rc "$want" "$work/$name" "fetch '$name'"
}

# --- anonymous -------------------------------------------------------------------
fetch_with anon-public 0 -- "$reg/library/busybox:1.36"
fetch_with anon-private 1 -- "$reg/private/app:1"
assert_grep "private/app needs credentials" "$work/anon-private.out" "anonymous pull of a private repository"

# --- credentials from each source --------------------------------------------------
b64=$(printf '%s:%s' "$AL_TOKEN_USER" "$AL_TOKEN_PASS" | base64 -w0)
# 1. a credential helper on PATH, named by credHelpers
mkdir -p "$work/bin" "$work/dc-helper"
cat >"$work/bin/docker-credential-airlocktest" <<SH
#!/bin/sh
read server
echo "\$server" >>"$work/helper-calls"
if [ "\$server" = "$reg" ]; then
    printf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}\n' "\$server" "$AL_TOKEN_USER" "\$(cat '$AL_TOKEN_PASS_FILE')"
else
    echo "credentials not found in native keychain"; exit 1
fi
SH
chmod 755 "$work/bin/docker-credential-airlocktest"
echo "{\"credHelpers\":{\"$reg\":\"airlocktest\"}}" >"$work/dc-helper/config.json"
fetch_with helper 0 PATH="$work/bin:$PATH" DOCKER_CONFIG="$work/dc-helper" -- "${private[@]}"
assert_eq "$reg" "$(sort -u "$work/helper-calls")" "servers asked of the helper"
assert_eq 1 "$(wc -l <"$work/helper-calls")" "helper runs (cached per registry)"
# 2. docker config.json auths
mkdir -p "$work/dc-auths"
echo "{\"auths\":{\"$reg\":{\"auth\":\"$b64\"}}}" >"$work/dc-auths/config.json"
fetch_with auths 0 DOCKER_CONFIG="$work/dc-auths" -- "${private[@]}"
# 3. containers auth.json, via REGISTRY_AUTH_FILE and via XDG_RUNTIME_DIR
echo "{\"auths\":{\"$reg\":{\"auth\":\"$b64\"}}}" >"$work/auth.json"
fetch_with authjson 0 REGISTRY_AUTH_FILE="$work/auth.json" -- "${private[@]}"
mkdir -p "$work/xdg/containers"
cp "$work/auth.json" "$work/xdg/containers/auth.json"
fetch_with xdg 0 XDG_RUNTIME_DIR="$work/xdg" -- "${private[@]}"
# 4. --password-stdin
RC=0
clean_env "$FETCH" --store "$work/stdin.store" "${common[@]}" --username "$AL_TOKEN_USER" --password-stdin \
    "${private[@]}" <"$AL_TOKEN_PASS_FILE" >"$work/stdin.out" 2>"$work/stdin.err" || RC=$?
expect_rc 0 "$work/stdin" "fetch with --password-stdin"
# a user allowed public repositories only: private ones refused per repository
RC=0
clean_env "$FETCH" --store "$work/other.store" "${common[@]}" --username "$AL_TOKEN_OTHER_USER" --password-stdin \
    "$reg/library/busybox:1.36" "$reg/private/app:1" <"$AL_TOKEN_OTHER_PASS_FILE" \
    >"$work/other.out" 2>"$work/other.err" || RC=$?
expect_rc 1 "$work/other" "a user without access to one repository"
assert_eq ok "$(word_for "$work/other.out" "$reg/library/busybox:1.36")" "the public image for that user"
assert_grep "give no pull access to private/app" "$work/other.out" "message for the refused repository"

# --- bearer tokens: one per repository and run -------------------------------------
# Four repositories, each needing several requests (manifests, config,
# layers): one token request per repository scope, reused for all of them.
# Tokens live 300 s for this run (the registry was started with 4 s).
cp "$AL_TOKEN_POLICY" "$work/policy.saved"
jq '.expires_in = 300 | .hard_expiry = false' "$work/policy.saved" >"$work/policy.long"
cat "$work/policy.long" >"$AL_TOKEN_POLICY"
tmark=$(wc -l <"$AL_TOKEN_LOG")
amark=$(log_mark "$AL_TOKEN_REG_LOG")
RC=0
clean_env "$FETCH" --store "$work/reuse.store" "${common[@]}" --username "$AL_TOKEN_USER" --password-stdin \
    "${private[@]}" "$reg/library/busybox:1.36" <"$AL_TOKEN_PASS_FILE" >"$work/reuse.out" 2>"$work/reuse.err" || RC=$?
expect_rc 0 "$work/reuse" "fetch of four repositories with a token each"
cat "$work/policy.saved" >"$AL_TOKEN_POLICY"
sleep 0.3
tail -n +"$((tmark + 1))" "$AL_TOKEN_LOG" >"$work/reuse.tokens"
assert_eq "repository:library/busybox:pull
repository:private/app:pull
repository:private/calico:pull
repository:private/pause:pull" "$(jq -r '.requested[]' "$work/reuse.tokens" | sort)" "scopes of the token requests (one request each)"
assert_eq 4 "$(jq -c 'select(.status == 200 and .auth == "ok")' "$work/reuse.tokens" | wc -l)" "tokens granted"
log_since "$AL_TOKEN_REG_LOG" "$amark" >"$work/reuse.wire"
for repo in library/busybox private/app private/calico private/pause; do
    c=$(grep -c "^[A-Z]* /v2/$repo/" "$work/reuse.wire" || true)
    [ "$c" -ge 4 ] || { show "$work/reuse.wire"; fail "only $c requests for $repo: too few to show a token reused"; }
done

# --- a missing helper ----------------------------------------------------------------
mkdir -p "$work/dc-missing"
echo '{"credsStore":"nosuchhelper"}' >"$work/dc-missing/config.json"
fetch_with missing 1 DOCKER_CONFIG="$work/dc-missing" -- "$reg/private/app:1"
assert_grep "docker-credential-nosuchhelper .*not installed" "$work/missing.out" "missing helper"

# --- wrong credentials: one attempt per registry ------------------------------------
tmark=$(wc -l <"$AL_TOKEN_LOG")
RC=0
clean_env "$FETCH" --store "$work/wrong.store" "${common[@]}" --username "$AL_TOKEN_USER" --password-stdin \
    "${private[@]}" <<<"not-the-password" >"$work/wrong.out" 2>"$work/wrong.err" || RC=$?
expect_rc 1 "$work/wrong" "fetch with a wrong password"
assert_eq 3 "$(grep -c '^FAILED .*credentials from --username rejected' "$work/wrong.out")" "AUTH lines"
sleep 0.3
assert_eq 1 "$(tail -n +"$((tmark + 1))" "$AL_TOKEN_LOG" | jq -c 'select(.auth == "bad")' | wc -l)" \
    "token requests with the wrong password"

# --- a token expiring mid-run ---------------------------------------------------------
# The first blob request waits 5 s in a proxy: its token (4 s) has expired
# when the registry sees it. airlock must get a new token and go on.
fault_proxy_up "$work/proxy" "http://$reg"
fault_rules '{"rules":[{"id":"slow","path":"/blobs/","method":"GET","nth":1,"action":"delay","seconds":5}]}'
tmark=$(wc -l <"$AL_TOKEN_LOG")
rmark=$(wc -l <"$AL_TOKEN_REG_APPLOG")
RC=0
clean_env "$FETCH" --store "$work/expiry.store" --insecure-registry "$AL_FAULT_PROXY" \
    --username "$AL_TOKEN_USER" --password-stdin "$AL_FAULT_PROXY/private/app:1" \
    <"$AL_TOKEN_PASS_FILE" >"$work/expiry.out" 2>"$work/expiry.err" || RC=$?
expect_rc 0 "$work/expiry" "fetch with a token expiring mid-run"
fault_since >"$work/expiry.wire"
# The held request carried a bearer token, and the registry refused that
# token as expired (not the anonymous 401 every run starts with).
held=$(jq -c 'select(.fault.id == "slow")' "$work/expiry.wire")
assert_eq "Bearer 401" "$(jq -r '"\(.auth_scheme) \(.status)"' <<<"$held")" "the held request: its Authorization and the answer"
tail -n +"$((rmark + 1))" "$AL_TOKEN_REG_APPLOG" >"$work/expiry.reglog"
assert_grep 'token not to be used after' "$work/expiry.reglog" "the registry's log: the expired token refused"
held_ts=$(jq -r .ts <<<"$held")
held_path=$(jq -r .path <<<"$held")
# Then a new token for that repository, and the same blob fetched with it.
tail -n +"$((tmark + 1))" "$AL_TOKEN_LOG" >"$work/expiry.tokens"
[ "$(jq -c --argjson t "$held_ts" 'select(.status == 200 and .auth == "ok" and .ts > $t
    and (.granted | index("repository:private/app:pull")))' "$work/expiry.tokens" | wc -l)" -ge 1 ] ||
    { show "$work/expiry.tokens"; fail "no token was granted after the registry refused the expired one"; }
assert_eq 1 "$(jq -c --argjson t "$held_ts" --arg p "$held_path" \
    'select(.path == $p and .ts > $t and .status == 200 and .auth_scheme == "Bearer")' "$work/expiry.wire" | wc -l)" \
    "requests that fetched the refused blob again with a new token"

# --- a token refused before its announced expiry ---------------------------------------
# The token server announces expires_in 300 s, but the token's exp claim is 4 s
# away (jwt_expiry), as after a revocation or a key rotation. The client's own
# clock says the token is good for minutes: only the registry's 401 can tell
# it to get a new one. The first blob request waits 6 s in the proxy.
jq '.expires_in = 300 | .hard_expiry = true | .jwt_expiry = 4' "$work/policy.saved" >"$AL_TOKEN_POLICY"
fault_rules '{"rules":[{"id":"slow","path":"/blobs/","method":"GET","nth":1,"action":"delay","seconds":6}]}'
fmark=$(fault_mark)
tmark=$(wc -l <"$AL_TOKEN_LOG")
rmark=$(wc -l <"$AL_TOKEN_REG_APPLOG")
RC=0
clean_env "$FETCH" --store "$work/revoked.store" --insecure-registry "$AL_FAULT_PROXY" \
    --username "$AL_TOKEN_USER" --password-stdin "$AL_FAULT_PROXY/private/app:1" \
    <"$AL_TOKEN_PASS_FILE" >"$work/revoked.out" 2>"$work/revoked.err" || RC=$?
cat "$work/policy.saved" >"$AL_TOKEN_POLICY"
expect_rc 0 "$work/revoked" "fetch with a token refused before its announced expiry"
fault_since "$fmark" >"$work/revoked.wire"
held=$(jq -c 'select(.fault.id == "slow")' "$work/revoked.wire")
assert_eq "Bearer 401" "$(jq -r '"\(.auth_scheme) \(.status)"' <<<"$held")" "the held request: its Authorization and the answer"
tail -n +"$((rmark + 1))" "$AL_TOKEN_REG_APPLOG" >"$work/revoked.reglog"
assert_grep 'token not to be used after' "$work/revoked.reglog" "the registry's log: the expired token refused"
held_ts=$(jq -r .ts <<<"$held")
held_path=$(jq -r .path <<<"$held")
tail -n +"$((tmark + 1))" "$AL_TOKEN_LOG" >"$work/revoked.tokens"
# Every token of the run was announced for 300 s: none was renewed by the clock.
assert_eq 300 "$(jq -r 'select(.status == 200) | .expires_in' "$work/revoked.tokens" | sort -u)" \
    "expires_in announced by the token server"
[ "$(jq -c --argjson t "$held_ts" 'select(.status == 200 and .auth == "ok" and .ts > $t
    and (.granted | index("repository:private/app:pull")))' "$work/revoked.tokens" | wc -l)" -ge 1 ] ||
    { show "$work/revoked.tokens"; fail "no token was granted after the registry refused the one it announced for 300 s"; }
assert_eq 1 "$(jq -c --argjson t "$held_ts" --arg p "$held_path" \
    'select(.path == $p and .ts > $t and .status == 200 and .auth_scheme == "Bearer")' "$work/revoked.wire" | wc -l)" \
    "requests that fetched the refused blob again with a new token"

# --- credentials go to their registry only ---------------------------------------------
# Two registries in one run, both in front of the rig's basic-auth registry
# (each a fault proxy, which logs whether a request carried Authorization);
# config.json has credentials for the first only. The second must never see
# them: its image fails for want of credentials.
fault_proxy_up "$work/cred-a" "https://$AL_REG_AUTH" --ca "$AL_CA_CERT"
reg_a=$AL_FAULT_PROXY log_a=$AL_FAULT_LOG
fault_proxy_up "$work/cred-b" "https://$AL_REG_AUTH" --ca "$AL_CA_CERT"
reg_b=$AL_FAULT_PROXY log_b=$AL_FAULT_LOG
mkdir -p "$work/dc-one"
echo "{\"auths\":{\"$reg_a\":{\"auth\":\"$(printf '%s:%s' "$AL_AUTH_USER" "$AL_AUTH_PASS" | base64 -w0)\"}}}" \
    >"$work/dc-one/config.json"
RC=0
clean_env DOCKER_CONFIG="$work/dc-one" "$FETCH" --store "$work/two.store" --insecure-registry "$reg_a" \
    --insecure-registry "$reg_b" "$reg_a/library/busybox:1.36" "$reg_b/library/busybox:1.36" \
    "$reg_b/rancher/mirrored-pause:3.6" "$reg_a/rancher/mirrored-pause:3.6" \
    </dev/null >"$work/two.out" 2>"$work/two.err" || RC=$?
expect_rc 1 "$work/two" "fetch from a registry with credentials and one without"
assert_eq "ok ok" "$(word_for "$work/two.out" "$reg_a/library/busybox:1.36") $(word_for "$work/two.out" "$reg_a/rancher/mirrored-pause:3.6")" \
    "images of the registry with credentials"
assert_eq "FAILED FAILED" "$(word_for "$work/two.out" "$reg_b/library/busybox:1.36") $(word_for "$work/two.out" "$reg_b/rancher/mirrored-pause:3.6")" \
    "images of the registry without"
assert_grep "^FAILED +$reg_b/library/busybox:1.36 .*$reg_b requires authentication" "$work/two.out" "the other registry's failure"
sleep 0.3
[ "$(jq -c 'select(.auth_scheme == "Basic")' "$log_a" | wc -l)" -ge 1 ] ||
    { show "$log_a"; fail "the registry the credentials are for never got them"; }
[ "$(jq -c 'select(.status == 401)' "$log_b" | wc -l)" -ge 1 ] || { show "$log_b"; fail "the other registry never asked for credentials"; }
assert_eq 0 "$(jq -c 'select(.auth)' "$log_b" | wc -l)" "requests to the other registry carrying Authorization"
assert_no_canary "$work/two.out" "$work/two.err" "$work/two.store"

# --- TLS: a CA from certs.d -------------------------------------------------------
mkdir -p "$work/certs.d/$AL_REG_TLS"
cp "$AL_CA_CERT" "$work/certs.d/$AL_REG_TLS/ca.crt"
fetch_with certsd 0 -- --certs-dir "$work/certs.d" "$AL_REG_TLS/library/busybox:1.36"
fetch_with no-ca 1 -- --certs-dir "$work/empty-certs.d" "$AL_REG_TLS/library/busybox:1.36"
assert_grep "TLS verification failed" "$work/no-ca.out" "TLS without the CA"

# --- mTLS ---------------------------------------------------------------------------------
m=$work/mtls
bash "$AL_SRC/tests/infra/mtls-proxy.sh" start "$m" "$AL_REG_PLAIN" >"$work/mtls.log" 2>&1 ||
    { show "$work/mtls.log"; fail "mTLS proxy did not start"; }
on_exit "bash '$AL_SRC/tests/infra/mtls-proxy.sh' stop '$m' >/dev/null 2>&1"
# shellcheck disable=SC1091
. "$m/mtls.env"
mref=$AL_MTLS_REG/library/busybox:1.36
fetch_with mtls-flags 0 -- --ca-cert "$AL_MTLS_CA" --client-cert "$AL_MTLS_CLIENT_CERT" \
    --client-key "$AL_MTLS_CLIENT_KEY" "$mref"
fetch_with mtls-certsd 0 -- --certs-dir "$AL_MTLS_CERTS_D" "$mref"
fetch_with mtls-none 1 -- --ca-cert "$AL_MTLS_CA" "$mref"
assert_grep "HTTP 400" "$work/mtls-none.out" "no client certificate"
fetch_with mtls-bad 1 -- --ca-cert "$AL_MTLS_CA" --client-cert "$AL_MTLS_BAD_CLIENT_CERT" \
    --client-key "$AL_MTLS_BAD_CLIENT_KEY" "$mref"
assert_blobs_match_registry "$work/mtls-certsd.store" "$AL_REG_PLAIN_STORAGE"

# --- canaries -----------------------------------------------------------------------------
for f in "$work"/*.out "$work"/*.err "$work"/*.store; do
    if grep -rlaF -e "$AL_TOKEN_PASS" -e "$b64" "$f" >/dev/null 2>&1; then
        fail "a password appears in $f"
    fi
done
for s in "$work"/*.store; do
    [ -f "$s/airlock.db" ] || continue
    sqlite3 "$s/airlock.db" .dump | matches -F -e "$AL_TOKEN_PASS" -e "$b64" && fail "a password is in $s/airlock.db"
done
note "token auth, credential sources, refresh, certs.d, mTLS"
