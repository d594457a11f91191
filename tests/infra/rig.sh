#!/usr/bin/env bash
# The integration test rig: three local Docker registries (Debian's
# docker-registry, distribution 2.8) on 127.0.0.1, each on a free port:
#
#   plain  HTTP, no auth
#   tls    HTTPS with a certificate from a CA made here
#   auth   HTTPS (same CA) + basic auth (htpasswd, bcrypt)
#
#   tests/infra/rig.sh start [--seed] [--big]   start them, write $AL_RIG_DIR/rig.env
#   tests/infra/rig.sh seed [--big]             push the test images into all three
#   tests/infra/rig.sh env                      print rig.env (to eval or source)
#   tests/infra/rig.sh stop                     stop them by PID, remove $AL_RIG_DIR
#
# AL_RIG_DIR defaults to /tmp/airlock-rig-$UID. Everything the rig writes
# (configs, certificates, storage, logs) lives there.
#
# Each registry writes its access log (Apache combined format: one line per
# HTTP request, with method and URI) to AL_REG_<X>_LOG and its own log to
# AL_REG_<X>_APPLOG.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rig_dir=${AL_RIG_DIR:-/tmp/airlock-rig-$(id -u)}
env_file=$rig_dir/rig.env

# The password is a canary: tests grep for it in everything airlock writes.
auth_user=airlock
auth_pass='s3cr3t-CANARY-7f3a'

log() { echo "rig: $*" >&2; }
die() { echo "rig: $*" >&2; exit 1; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

make_certs() {
    local d=$rig_dir/tls
    mkdir -p "$d"
    # EC keys: quick to make; curl (OpenSSL) and Go both take them.
    openssl req -x509 -new -nodes -days 30 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$d/ca.key" -out "$d/ca.crt" -subj "/CN=airlock test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$d/server.key" -out "$d/server.csr" -subj "/CN=127.0.0.1" 2>/dev/null
    cat >"$d/server.ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,DNS:localhost
EOF
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" \
        -CAcreateserial -days 30 -extfile "$d/server.ext" -out "$d/server.crt" 2>/dev/null
    openssl verify -CAfile "$d/ca.crt" "$d/server.crt" >/dev/null ||
        die "the server certificate does not verify against the CA"
}

# write_config NAME PORT TLS(0|1) AUTH(0|1)
write_config() {
    local name=$1 port=$2 tls=$3 auth=$4
    local d=$rig_dir/$name
    mkdir -p "$d/storage"
    {
        cat <<EOF
version: 0.1
log:
  level: info
  formatter: text
  accesslog:
    disabled: false
  fields:
    service: registry-$name
storage:
  filesystem:
    rootdirectory: $d/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: airlock-rig-$name-not-a-secret
  headers:
    X-Content-Type-Options: [nosniff]
EOF
        if [ "$tls" = 1 ]; then
            cat <<EOF
  tls:
    certificate: $rig_dir/tls/server.crt
    key: $rig_dir/tls/server.key
EOF
        fi
        if [ "$auth" = 1 ]; then
            cat <<EOF
auth:
  htpasswd:
    realm: airlock-rig
    path: $d/htpasswd
EOF
        fi
    } >"$d/config.yml"
    if [ "$auth" = 1 ]; then
        htpasswd -Bbn "$auth_user" "$auth_pass" >"$d/htpasswd"
    fi
}

# start_one NAME -> sets PID_<NAME>
start_one() {
    local name=$1 d=$rig_dir/$1
    # stdout carries the access log, stderr the registry's own log.
    docker-registry serve "$d/config.yml" </dev/null >>"$d/access.log" 2>>"$d/registry.log" &
    echo $! >"$d/pid"
}

# wait_up NAME URL EXPECTED_CODE [curl args...]
wait_up() {
    local name=$1 url=$2 want=$3
    shift 3
    local code _ pid
    pid=$(cat "$rig_dir/$name/pid")
    for _ in $(seq 1 100); do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 20 "$rig_dir/$name/registry.log" >&2 || true
            die "registry $name (pid $pid) exited during start"
        fi
        code=$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' --max-time 2 "$@" "$url" || true)
        if [ "$code" = "$want" ]; then
            return 0
        fi
        sleep 0.1
    done
    die "registry $name at $url did not answer $want (last: $code)"
}

cmd_start() {
    local seed=0 big=0
    for a in "$@"; do
        case $a in
        --seed) seed=1 ;;
        --big) big=1 ;;
        *) die "start: unknown argument: $a" ;;
        esac
    done
    command -v docker-registry >/dev/null || die "docker-registry not installed (scripts/install-deps.sh)"
    if [ -f "$env_file" ]; then
        # shellcheck disable=SC1090
        . "$env_file"
        if kill -0 "${AL_REG_PLAIN_PID:-0}" 2>/dev/null; then
            die "a rig is already running in $rig_dir (tests/infra/rig.sh stop first)"
        fi
        log "removing a stale rig in $rig_dir"
        rm -rf "$rig_dir"
    fi
    mkdir -p "$rig_dir"
    chmod 700 "$rig_dir"
    rig_dir=$(cd "$rig_dir" && pwd)
    env_file=$rig_dir/rig.env

    make_certs
    local p_plain p_tls p_auth
    p_plain=$(free_port)
    p_tls=$(free_port)
    p_auth=$(free_port)
    while [ "$p_tls" = "$p_plain" ]; do p_tls=$(free_port); done
    while [ "$p_auth" = "$p_plain" ] || [ "$p_auth" = "$p_tls" ]; do p_auth=$(free_port); done

    write_config plain "$p_plain" 0 0
    write_config tls "$p_tls" 1 0
    write_config auth "$p_auth" 1 1
    printf '%s' "$auth_pass" >"$rig_dir/auth/password"
    chmod 600 "$rig_dir/auth/password"

    start_one plain
    start_one tls
    start_one auth
    # From here on a failure must not leave registries behind.
    trap 'cmd_stop_pids' ERR
    local ca=$rig_dir/tls/ca.crt
    wait_up plain "http://127.0.0.1:$p_plain/v2/" 200
    wait_up tls "https://127.0.0.1:$p_tls/v2/" 200 --cacert "$ca"
    wait_up auth "https://127.0.0.1:$p_auth/v2/" 401 --cacert "$ca"
    wait_up auth "https://127.0.0.1:$p_auth/v2/" 200 --cacert "$ca" -u "$auth_user:$auth_pass"

    {
        echo "# airlock integration rig; written by tests/infra/rig.sh"
        echo "export AL_RIG_DIR=$rig_dir"
        local n up
        for n in plain tls auth; do
            up=$(echo "$n" | tr '[:lower:]' '[:upper:]')
            local port_var=p_$n
            echo "export AL_REG_${up}=127.0.0.1:${!port_var}"
            echo "export AL_REG_${up}_LOG=$rig_dir/$n/access.log"
            echo "export AL_REG_${up}_APPLOG=$rig_dir/$n/registry.log"
            echo "export AL_REG_${up}_STORAGE=$rig_dir/$n/storage"
            echo "export AL_REG_${up}_PID=$(cat "$rig_dir/$n/pid")"
        done
        echo "export AL_CA_CERT=$ca"
        echo "export AL_AUTH_USER=$auth_user"
        echo "export AL_AUTH_PASS='$auth_pass'"
        echo "export AL_AUTH_PASS_FILE=$rig_dir/auth/password"
    } >"$env_file.tmp"
    mv "$env_file.tmp" "$env_file"
    trap - ERR
    log "up: plain 127.0.0.1:$p_plain, tls 127.0.0.1:$p_tls, auth 127.0.0.1:$p_auth ($env_file)"
    if [ "$seed" = 1 ]; then
        if [ "$big" = 1 ]; then cmd_seed --big; else cmd_seed; fi
    fi
}

# Kill the registries whose pid files exist: used when start fails half way.
cmd_stop_pids() {
    local n pid
    for n in plain tls auth; do
        if [ -f "$rig_dir/$n/pid" ]; then
            pid=$(cat "$rig_dir/$n/pid")
            stop_pid "$pid" "$rig_dir/$n/config.yml"
        fi
    done
}

# stop_pid PID CONFIG: kill PID only if it is the registry serving CONFIG
# (guards against a recycled PID), then wait for it to go.
stop_pid() {
    local pid=$1 cfg=$2 _
    [ -n "$pid" ] || return 0
    if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "$cfg" >/dev/null; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || return 0
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
    fi
}

cmd_stop() {
    if [ ! -d "$rig_dir" ]; then
        log "no rig in $rig_dir"
        return 0
    fi
    cmd_stop_pids
    rm -rf "$rig_dir"
    log "stopped; removed $rig_dir"
}

cmd_env() {
    [ -f "$env_file" ] || die "no rig running in $rig_dir (tests/infra/rig.sh start)"
    cat "$env_file"
}

cmd_seed() {
    local big=()
    for a in "$@"; do
        case $a in
        --big) big=(--big) ;;
        *) die "seed: unknown argument: $a" ;;
        esac
    done
    [ -f "$env_file" ] || die "no rig running in $rig_dir (tests/infra/rig.sh start)"
    # shellcheck disable=SC1090
    . "$env_file"
    local seed=$here/seed-images.py
    local out=$rig_dir/seed.json
    log "seeding plain registry $AL_REG_PLAIN"
    python3 "$seed" --registry "$AL_REG_PLAIN" --out "$out" "${big[@]}"
    log "seeding tls registry $AL_REG_TLS"
    python3 "$seed" --registry "$AL_REG_TLS" --tls --ca "$AL_CA_CERT" --out "$rig_dir/seed-tls.json"
    log "seeding auth registry $AL_REG_AUTH"
    python3 "$seed" --registry "$AL_REG_AUTH" --tls --ca "$AL_CA_CERT" \
        --user "$AL_AUTH_USER" --password-file "$AL_AUTH_PASS_FILE" --out "$rig_dir/seed-auth.json"
    # The images are built deterministically, so all three hold the same
    # digests; the tests read AL_SEED_JSON for any of them.
    python3 - "$out" "$rig_dir/seed-tls.json" "$rig_dir/seed-auth.json" <<'EOF'
import json, sys
a = json.load(open(sys.argv[1]))["images"]
for other in sys.argv[2:]:
    b = json.load(open(other))["images"]
    for ref, img in b.items():
        if a[ref]["digest"] != img["digest"]:
            sys.exit(f"rig: seed is not deterministic: {ref} {a[ref]['digest']} vs {img['digest']}")
EOF
    grep -q '^export AL_SEED_JSON=' "$env_file" ||
        echo "export AL_SEED_JSON=$out" >>"$env_file"
    log "seeded; description in $out"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) cmd_stop ;;
env) cmd_env ;;
seed) shift; cmd_seed "$@" ;;
*)
    sed -n '2,18p' "$0" >&2
    exit 2
    ;;
esac
