#!/usr/bin/env bash
# Start or stop tests/infra/faultproxy.py in DIR, in front of one registry.
#
#   tests/infra/faultproxy.sh start DIR UPSTREAM [faultproxy.py options]
#   tests/infra/faultproxy.sh stop DIR
#
# UPSTREAM: http://HOST:PORT, https://HOST:PORT or HOST:PORT (= http). For an
# https upstream pass --ca CA.crt. Writes DIR/fault.env (AL_FAULT_PROXY,
# AL_FAULT_ALT, AL_FAULT_URL, AL_FAULT_ALT_URL, AL_FAULT_LOG, AL_FAULT_RULES,
# AL_FAULT_PID); the rules file DIR/rules.json starts empty (pass through)
# unless it exists; the log DIR/fault.jsonl starts empty.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
die() { echo "faultproxy.sh: $*" >&2; exit 1; }

cmd_start() {
    local dir=${1:?usage: start DIR UPSTREAM} up=${2:?usage: start DIR UPSTREAM} i pid
    shift 2
    case $up in http://* | https://*) ;; *) up=http://$up ;; esac
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/fault.env" ]; then
        # shellcheck disable=SC1091
        . "$dir/fault.env"
        kill -0 "${AL_FAULT_PID:-0}" 2>/dev/null && die "already running in $dir"
        rm -f "$dir/fault.env"
    fi
    [ -f "$dir/rules.json" ] || echo '{"rules": []}' >"$dir/rules.json"
    : >"$dir/fault.jsonl" # a fresh log per start
    python3 "$here/faultproxy.py" --upstream "$up" --rules "$dir/rules.json" \
        --log "$dir/fault.jsonl" --env-file "$dir/fault.env" "$@" \
        </dev/null >>"$dir/faultproxy.out" 2>&1 &
    pid=$!
    echo "$pid" >"$dir/faultproxy.pid"
    for ((i = 0; i < 100; i++)); do
        [ -f "$dir/fault.env" ] && break
        kill -0 "$pid" 2>/dev/null || { cat "$dir/faultproxy.out" >&2; die "faultproxy exited during start"; }
        sleep 0.1
    done
    [ -f "$dir/fault.env" ] || { kill "$pid"; die "faultproxy not ready after 10 s"; }
    echo "faultproxy.sh: up ($dir/fault.env)" >&2
}

cmd_stop() {
    local dir=${1:?usage: stop DIR} pid i
    [ -f "$dir/faultproxy.pid" ] || return 0
    dir=$(cd "$dir" && pwd)
    pid=$(cat "$dir/faultproxy.pid")
    # Only our process: its command line names our rules file.
    if [[ $pid =~ ^[0-9]+$ ]] && [ -r "/proc/$pid/cmdline" ] &&
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F -- "$dir/rules.json" >/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
    fi
    rm -f "$dir/faultproxy.pid" "$dir/fault.env"
}

case ${1:-} in
start) shift; cmd_start "$@" ;;
stop) shift; cmd_stop "$@" ;;
*) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
