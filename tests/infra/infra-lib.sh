# Helpers for tests that use the fault proxy (tests/infra/faultproxy.sh).
# Source it after starting the proxy and sourcing its DIR/fault.env:
#   bash tests/infra/faultproxy.sh start "$d" "$AL_REG_PLAIN"; . "$d/fault.env"
#   . tests/infra/infra-lib.sh
#   fault_rules '{"rules": [{"path": "/blobs/", "nth": 1, "action": "reset", "bytes": 1000}]}'
#   ... run airlock-fetch against $AL_FAULT_PROXY ...
#   n=$(fault_count 'select(.path | test("/blobs/"))')
# Needs jq. Standalone: does not depend on lib.sh.
# shellcheck shell=bash

# fault_rules JSON: replace the rules (atomically: a rename, so the proxy
# never reads half a file); the per-rule counters restart from zero.
fault_rules() {
    : "${AL_FAULT_RULES:?fault_rules: source fault.env of the proxy first}"
    printf '%s\n' "$1" | jq -e . >/dev/null || { echo "fault_rules: not JSON: $1" >&2; return 1; }
    printf '%s\n' "$1" >"$AL_FAULT_RULES.tmp"
    mv -f "$AL_FAULT_RULES.tmp" "$AL_FAULT_RULES"
    # The proxy checks the file on each request; a control request makes the
    # switch happen now rather than on the next client request.
    curl -s --noproxy '*' -k -o /dev/null "${AL_FAULT_URL}/__fault/rules" || true
}

# fault_mark: a position in the log to pass to fault_since / fault_count.
fault_mark() { if [ -f "$AL_FAULT_LOG" ]; then wc -l <"$AL_FAULT_LOG" | tr -d ' '; else echo 0; fi; }

# fault_since [MARK]: the log lines (JSON) after MARK (default: all). Waits a
# moment first: the proxy writes a line just after the last byte it sends.
fault_since() {
    sleep 0.3
    [ -f "$AL_FAULT_LOG" ] || return 0
    tail -n +"$((${1:-0} + 1))" "$AL_FAULT_LOG"
}

# fault_count JQ-FILTER [MARK]: how many log entries (after MARK) the filter
# keeps, e.g. 'select(.method == "GET" and (.path | test("/blobs/")))'.
fault_count() {
    fault_since "${2:-0}" | jq -c "${1:-.}" | wc -l | tr -d ' '
}

# fault_fired ID: how often rule ID fired (from the proxy's counters).
fault_fired() {
    curl -s --noproxy '*' -k "${AL_FAULT_URL}/__fault/stats" |
        jq -r --arg id "$1" '[.[] | select(.id == $id) | .fired] | add // 0'
}

# fault_alt_auth_count [MARK]: requests that reached the alt (redirect
# target) listener carrying an Authorization header: must stay 0.
fault_alt_auth_count() {
    fault_count 'select(.listener == "alt" and .auth)' "${1:-0}"
}
