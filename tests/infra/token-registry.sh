#!/usr/bin/env bash
# A registry behind Docker token auth: tests/infra/tokenserver.py issues the JWTs,
# Debian's docker-registry (distribution 2.8, plain HTTP) checks them.
#
#   tests/infra/token-registry.sh start DIR        start both, write DIR/token.env
#   tests/infra/token-registry.sh stop DIR         stop them by PID (keeps DIR)
#   tests/infra/token-registry.sh copy DIR SRC DST skopeo copy --all an image in,
#        SRC a skopeo ref (docker://127.0.0.1:5000/library/busybox:1.36,
#        oci:/path:tag, ...), DST a repo:tag of this registry; pushes with
#        AL_TOKEN_USER's token (push scope). Extra skopeo arguments for the
#        source go in SRC_ARGS (e.g. "--src-tls-verify=false", "--src-cert-dir
#        D", "--src-creds U:P").
#
# Environment read by start:
#   AL_TOKEN_EXPIRY=N     expires_in of every token (default 300)
#   AL_TOKEN_HARD_EXPIRY=1  make the registry reject a token once expires_in
#                         has passed (distribution otherwise adds 60 s)
# Both can be changed while running in DIR/policy.json (re-read per request).
#
# Policy (DIR/policy.json): library/* and public/* pull anonymously;
# private/* and everything else need a login. AL_TOKEN_USER may pull and push
# everything; AL_TOKEN_OTHER_USER is a valid account that may pull only
# public repositories (for "authenticated but not authorized").
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
user=airlock
pass='t0ken-CANARY-5e2b'
other_user=outsider
other_pass='0utsider-pw-91c4'
service=airlock-token-registry
issuer=airlock-test-issuer

log() { echo "token-registry: $*" >&2; }
die() { echo "token-registry: $*" >&2; exit 1; }
usage() { sed -n '2,23p' "$0" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stop_pid PID MARK: TERM PID only if its command line mentions MARK (a path
# under DIR), so a recycled PID is left alone; KILL after 5 s.
stop_pid() {
    local pid=$1 mark=$2 i
    [[ $pid =~ ^[0-9]+$ ]] || return 0
    [ -r "/proc/$pid/cmdline" ] || return 0
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "$mark" >/dev/null || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

make_keys() {
    local d=$1/keys
    mkdir -p "$d"
    # A root CA (what the registry trusts: rootcertbundle) and an RSA signing
    # certificate issued by it (sent in the JWT's x5c header).
    openssl req -x509 -new -nodes -days 30 -newkey rsa:2048 \
        -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=airlock token CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -nodes -newkey rsa:2048 -keyout "$d/signing.key" \
        -out "$d/signing.csr" -subj "/CN=airlock token signer" 2>/dev/null
    printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n' >"$d/signing.ext"
    openssl x509 -req -in "$d/signing.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 30 -extfile "$d/signing.ext" -out "$d/signing.crt" 2>/dev/null
    openssl verify -CAfile "$d/ca.crt" "$d/signing.crt" >/dev/null
    chmod 600 "$d"/*.key
}

write_policy() {
    local hard=false
    [ "${AL_TOKEN_HARD_EXPIRY:-0}" = 1 ] && hard=true
    cat >"$1/policy.json" <<EOF
{
  "users": {"$user": "$pass", "$other_user": "$other_pass"},
  "repositories": [
    {"match": "library/*", "anonymous": ["pull"], "users": {"*": ["pull"], "$user": ["pull", "push"]}},
    {"match": "public/*", "anonymous": ["pull"], "users": {"*": ["pull"], "$user": ["pull", "push"]}},
    {"match": "*", "users": {"$user": ["pull", "push"]}}
  ],
  "expires_in": ${AL_TOKEN_EXPIRY:-300},
  "hard_expiry": $hard
}
EOF
    chmod 600 "$1/policy.json"
}

write_registry_config() { # DIR PORT REALM
    cat >"$1/registry/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: $1/registry/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$2
  secret: airlock-token-registry-not-a-secret
auth:
  token:
    realm: $3
    service: $service
    issuer: $issuer
    rootcertbundle: $1/keys/ca.crt
EOF
}

wait_for() { # WHAT PID CHECK-CMD...
    local what=$1 pid=$2 i
    shift 2
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || die "$what (pid $pid) exited during start"
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 0.1
    done
    die "$what not ready after 10 s"
}

cmd_start() {
    local dir=${1:?usage: start DIR}
    command -v docker-registry >/dev/null || die "docker-registry is not installed"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/token.env" ]; then
        # shellcheck disable=SC1091
        . "$dir/token.env"
        if kill -0 "${AL_TOKEN_REG_PID:-0}" 2>/dev/null; then
            die "already running in $dir (stop it first)"
        fi
        rm -f "$dir/token.env"
    fi
    chmod 700 "$dir"
    mkdir -p "$dir/registry/storage"
    make_keys "$dir"
    write_policy "$dir"
    printf '%s' "$pass" >"$dir/password"
    printf '%s' "$other_pass" >"$dir/other-password"
    chmod 600 "$dir/password" "$dir/other-password"

    trap 'cmd_stop "$dir"' EXIT
    rm -f "$dir/tokenserver.env"
    python3 "$here/tokenserver.py" --key "$dir/keys/signing.key" --cert "$dir/keys/signing.crt" \
        --issuer "$issuer" --service "$service" --policy "$dir/policy.json" \
        --log "$dir/tokenserver.jsonl" --expiry "${AL_TOKEN_EXPIRY:-300}" \
        --env-file "$dir/tokenserver.env" </dev/null >>"$dir/tokenserver.out" 2>&1 &
    echo $! >"$dir/tokenserver.pid"
    wait_for tokenserver "$(cat "$dir/tokenserver.pid")" test -f "$dir/tokenserver.env"
    # shellcheck disable=SC1091
    . "$dir/tokenserver.env"

    local port
    port=$(free_port)
    write_registry_config "$dir" "$port" "$AL_TOKEN_REALM"
    docker-registry serve "$dir/registry/config.yml" </dev/null \
        >>"$dir/registry/access.log" 2>>"$dir/registry/registry.log" &
    echo $! >"$dir/registry.pid"
    local reg_pid
    reg_pid=$(cat "$dir/registry.pid")
    # Up when /v2/ challenges with our realm.
    wait_for docker-registry "$reg_pid" bash -c \
        "curl -s --noproxy '*' -D - -o /dev/null http://127.0.0.1:$port/v2/ | grep -qi 'www-authenticate: Bearer realm=\"$AL_TOKEN_REALM\"'"

    cat >"$dir/token.env.tmp" <<EOF
# token-auth registry; written by tests/infra/token-registry.sh
export AL_TOKEN_DIR=$dir
export AL_TOKEN_REG=127.0.0.1:$port
export AL_TOKEN_REALM=$AL_TOKEN_REALM
export AL_TOKEN_SERVICE=$service
export AL_TOKEN_ISSUER=$issuer
export AL_TOKEN_USER=$user
export AL_TOKEN_PASS='$pass'
export AL_TOKEN_PASS_FILE=$dir/password
export AL_TOKEN_OTHER_USER=$other_user
export AL_TOKEN_OTHER_PASS='$other_pass'
export AL_TOKEN_OTHER_PASS_FILE=$dir/other-password
export AL_TOKEN_POLICY=$dir/policy.json
export AL_TOKEN_ROOT_CERT=$dir/keys/ca.crt
export AL_TOKEN_LOG=$dir/tokenserver.jsonl
export AL_TOKEN_REG_LOG=$dir/registry/access.log
export AL_TOKEN_REG_APPLOG=$dir/registry/registry.log
export AL_TOKEN_REG_STORAGE=$dir/registry/storage
export AL_TOKEN_SERVER_PID=$AL_TOKEN_SERVER_PID
export AL_TOKEN_REG_PID=$reg_pid
EOF
    mv "$dir/token.env.tmp" "$dir/token.env"
    trap - EXIT
    log "up: registry 127.0.0.1:$port, realm $AL_TOKEN_REALM ($dir/token.env)"
}

cmd_stop() {
    local dir=${1:?usage: stop DIR} f
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    for f in registry tokenserver; do
        if [ -f "$dir/$f.pid" ]; then
            stop_pid "$(cat "$dir/$f.pid")" "$dir/"
            rm -f "$dir/$f.pid"
        fi
    done
    rm -f "$dir/token.env" "$dir/tokenserver.env"
    log "stopped ($dir)"
}

cmd_copy() {
    local dir=${1:?} src=${2:?} dst=${3:?}
    # shellcheck disable=SC1091
    . "$dir/token.env"
    # shellcheck disable=SC2086
    skopeo copy --all --quiet ${SRC_ARGS:-} --dest-tls-verify=false \
        --dest-creds "$AL_TOKEN_USER:$AL_TOKEN_PASS" "$src" "docker://$AL_TOKEN_REG/$dst"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
copy) shift; cmd_copy "$@" ;;
*) usage ;;
esac
