#!/usr/bin/env bash
# A registry that demands a TLS client certificate: nginx (Debian package
# `nginx`) terminates TLS with `ssl_verify_client on` and proxies to a
# registry. Certificates, config, pid file and logs all live under DIR; the
# system nginx (/etc/nginx, /var/log/nginx, its service) is never touched.
#
#   tests/infra/mtls-proxy.sh start DIR UPSTREAM   start, write DIR/mtls.env
#   tests/infra/mtls-proxy.sh stop DIR             stop it by PID (keeps DIR)
#
# UPSTREAM: http://HOST:PORT, https://HOST:PORT or HOST:PORT (= http).
# The env file names a docker-style certs.d directory too:
#   DIR/certs.d/127.0.0.1:PORT/{ca.crt,client.cert,client.key}
# and a client certificate from another CA (AL_MTLS_BAD_CLIENT_*) that nginx
# must refuse.
#
# MTLS_HTTP2=1 makes nginx offer HTTP/2 (ALPN h2) to clients; it still
# forwards each request (an HTTP/2 stream) as an HTTP/1.1 request of its own
# to UPSTREAM, on a connection of its own. Its access log's "$request" ends
# with the client's protocol (HTTP/1.1 or HTTP/2.0).
set -euo pipefail

NGINX=${NGINX:-/usr/sbin/nginx}

log() { echo "mtls-proxy: $*" >&2; }
die() { echo "mtls-proxy: $*" >&2; exit 1; }
usage() { sed -n '2,20p' "$0" >&2; exit 2; }

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# stop_pid PID MARK: only if PID's command line mentions MARK (our config).
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

# new_ca DIR NAME CN
new_ca() {
    openssl req -x509 -new -nodes -days 30 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$1/$2.key" -out "$1/$2.crt" -subj "/CN=$3" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
}

# new_cert DIR NAME CA CN EXTFILE-CONTENT
new_cert() {
    local d=$1 n=$2 ca=$3
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$d/$n.key" -out "$d/$n.csr" -subj "/CN=$4" 2>/dev/null
    printf '%b' "$5" >"$d/$n.ext"
    openssl x509 -req -in "$d/$n.csr" -CA "$d/$ca.crt" -CAkey "$d/$ca.key" \
        -CAcreateserial -days 30 -extfile "$d/$n.ext" -out "$d/$n.crt" 2>/dev/null
    openssl verify -CAfile "$d/$ca.crt" "$d/$n.crt" >/dev/null
    rm -f "$d/$n.csr" "$d/$n.ext"
}

make_certs() {
    local d=$1/tls
    mkdir -p "$d"
    new_ca "$d" ca "airlock mTLS test CA"
    new_cert "$d" server ca 127.0.0.1 \
        'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n'
    new_cert "$d" client ca "airlock test client" \
        'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
    # A client certificate nginx must refuse: same shape, another CA.
    new_ca "$d" other-ca "some other CA"
    new_cert "$d" bad-client other-ca "untrusted client" \
        'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n'
    chmod 600 "$d"/*.key
}

write_conf() { # DIR PORT UPSTREAM-URL
    local dir=$1 port=$2 up=$3 user_line="" up_tls="" h2=""
    [ -n "${MTLS_HTTP2:-}" ] && h2=" http2"
    # Run as root (a test sandbox), workers must write the temp dirs under
    # DIR, which is 0700: keep them root too. As non-root nginx ignores this.
    [ "$(id -u)" = 0 ] && user_line="user root root;"
    case $up in
    https://*)
        # The hop to the upstream is not what is under test (and nginx
        # checks names, not IP SANs): do not verify it.
        up_tls="proxy_ssl_verify off; proxy_ssl_server_name off;"
        ;;
    esac
    cat >"$dir/nginx.conf" <<EOF
# written by tests/infra/mtls-proxy.sh
$user_line
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log info;
events { worker_connections 256; }
http {
    log_format mtls '\$remote_addr [\$time_local] "\$request" \$status \$body_bytes_sent '
                    'verify=\$ssl_client_verify client="\$ssl_client_s_dn" rt=\$request_time';
    access_log $dir/logs/access.log mtls;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port ssl$h2;
        ssl_certificate $dir/tls/server.crt;
        ssl_certificate_key $dir/tls/server.key;
        ssl_client_certificate $dir/tls/ca.crt;
        ssl_verify_client on;
        ssl_verify_depth 2;
        # Registry blobs: any size, streamed both ways, no buffering to disk.
        client_max_body_size 0;
        chunked_transfer_encoding on;
        location / {
            proxy_pass $up;
            proxy_http_version 1.1;
            proxy_set_header Host \$http_host;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 900s;
            proxy_send_timeout 900s;
            $up_tls
        }
    }
}
EOF
}

cmd_start() {
    local dir=${1:?usage: start DIR UPSTREAM} up=${2:?usage: start DIR UPSTREAM}
    [ -x "$NGINX" ] || die "nginx is not installed (Debian package nginx)"
    case $up in http://* | https://*) ;; *) up=http://$up ;; esac
    up=${up%/}
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/mtls.env" ]; then
        # shellcheck disable=SC1091
        . "$dir/mtls.env"
        kill -0 "${AL_MTLS_PID:-0}" 2>/dev/null && die "already running in $dir (stop it first)"
        rm -f "$dir/mtls.env"
    fi
    chmod 700 "$dir"
    mkdir -p "$dir/logs" "$dir/tmp"
    make_certs "$dir"
    local port
    port=$(free_port)
    write_conf "$dir" "$port" "$up"
    "$NGINX" -t -q -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" ||
        die "nginx rejects $dir/nginx.conf"
    trap 'cmd_stop "$dir"' EXIT
    "$NGINX" -e "$dir/logs/error.log" -p "$dir" -c "$dir/nginx.conf" -g 'daemon off;' \
        </dev/null >>"$dir/logs/nginx.out" 2>&1 &
    echo $! >"$dir/master.pid"
    local pid i code=000
    pid=$(cat "$dir/master.pid")
    local t=$dir/tls
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || { tail -n 20 "$dir/logs/error.log" >&2; die "nginx exited during start"; }
        code=$(curl -s --noproxy '*' -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$t/ca.crt" \
            --cert "$t/client.crt" --key "$t/client.key" "https://127.0.0.1:$port/v2/" || true)
        case $code in 000 | 502) sleep 0.1 ;; *) break ;; esac
    done
    case $code in 200 | 401) ;; *) die "https://127.0.0.1:$port/v2/ answered $code with the client certificate" ;; esac

    local cd=$dir/certs.d/127.0.0.1:$port
    mkdir -p "$cd"
    cp "$t/ca.crt" "$cd/ca.crt"
    cp "$t/client.crt" "$cd/client.cert"
    cp "$t/client.key" "$cd/client.key"
    chmod 600 "$cd/client.key"

    cat >"$dir/mtls.env.tmp" <<EOF
# mTLS registry proxy; written by tests/infra/mtls-proxy.sh
export AL_MTLS_DIR=$dir
export AL_MTLS_REG=127.0.0.1:$port
export AL_MTLS_UPSTREAM=$up
export AL_MTLS_CA=$t/ca.crt
export AL_MTLS_CLIENT_CERT=$t/client.crt
export AL_MTLS_CLIENT_KEY=$t/client.key
export AL_MTLS_BAD_CLIENT_CERT=$t/bad-client.crt
export AL_MTLS_BAD_CLIENT_KEY=$t/bad-client.key
export AL_MTLS_CERTS_D=$dir/certs.d
export AL_MTLS_LOG=$dir/logs/access.log
export AL_MTLS_ERROR_LOG=$dir/logs/error.log
export AL_MTLS_PID=$pid
EOF
    mv "$dir/mtls.env.tmp" "$dir/mtls.env"
    trap - EXIT
    log "up: https://127.0.0.1:$port -> $up ($dir/mtls.env)"
}

cmd_stop() {
    local dir=${1:?usage: stop DIR}
    [ -d "$dir" ] || return 0
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/master.pid" ]; then
        stop_pid "$(cat "$dir/master.pid")" "$dir/nginx.conf"
        rm -f "$dir/master.pid"
    fi
    rm -f "$dir/mtls.env"
    log "stopped ($dir)"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) usage ;;
esac
