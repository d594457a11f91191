# Helpers for the integration test scripts (tests/integration/test_*.sh).
# Source it:   . "$(dirname "$0")/lib.sh"
#
# Environment (ctest sets the first two; scripts/test.sh sets AL_RIG_ENV):
#   AL_BIN      build directory holding airlock-fetch (default: $AL_SRC/build)
#   AL_SRC      source directory (default: two levels above this file)
#   AL_RIG_ENV  env file of a running, seeded rig (tests/infra/rig.sh); when
#               unset, rig_up starts a private rig and stops it on exit.
# shellcheck shell=bash

set -euo pipefail

AL_SRC=${AL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
AL_BIN=${AL_BIN:-$AL_SRC/build}
FETCH=$AL_BIN/airlock-fetch
EXPORT=$AL_BIN/airlock-export
PUSH=$AL_BIN/airlock-push
TEST_NAME=$(basename "${0%.sh}")

# Cleanup: actions run in reverse order on exit, whatever the exit path.
_al_cleanups=()
on_exit() { _al_cleanups+=("$*"); }
_al_run_cleanups() {
    local rc=$? i
    set +e
    for ((i = ${#_al_cleanups[@]} - 1; i >= 0; i--)); do
        eval "${_al_cleanups[i]}"
    done
    exit "$rc"
}
trap _al_run_cleanups EXIT
trap 'exit 130' INT TERM

# Every tmpdir lives below one per-test directory, removed on exit (also
# for tmpdirs made in a subshell, e.g. d=$(tmpdir)). Paths hold no ':' so
# that skopeo's oci:DIR:REF syntax can use them.
AL_TEST_TMP=$(mktemp -d "${TMPDIR:-/tmp}/airlock-${TEST_NAME}.XXXXXX")
if [ -n "${AL_KEEP_TMP:-}" ]; then
    on_exit "echo \"kept $AL_TEST_TMP\" >&2"
else
    # --one-file-system: never into a bind mount a failed cleanup left behind.
    on_exit "rm -rf --one-file-system '$AL_TEST_TMP'"
fi
tmpdir() { mktemp -d "$AL_TEST_TMP/${1:-d}.XXXXXX"; }

note() { echo "--- $TEST_NAME: $*" >&2; }
fail() {
    echo "FAIL: $TEST_NAME: $*" >&2
    exit 1
}
# skip REASON: the whole test cannot run here; ctest shows it as skipped
# (SKIP_RETURN_CODE 77 in tests/CMakeLists.txt), never as passed.
skip() {
    echo "SKIP: $TEST_NAME: $*" >&2
    exit 77
}
assert_eq() { # EXPECTED ACTUAL WHAT
    [ "$1" = "$2" ] || fail "${3:-value}: expected '$1', got '$2'"
}
assert_le() { # LIMIT ACTUAL WHAT
    [ "$2" -le "$1" ] || fail "${3:-value}: expected at most $1, got $2"
}
assert_file() { [ -f "$1" ] || fail "${2:-file} $1 is missing"; }
# assert_grep PATTERN FILE WHAT: extended regex, case-insensitive.
assert_grep() {
    grep -qiE -- "$1" "$2" || { show "$2"; fail "${3:-output} does not match /$1/"; }
}
# PRODUCER | matches [GREP OPTIONS] PATTERN: true when a line matches. Use it
# in place of `| grep -q`: grep -q stops reading at the first match, the
# producer's next write then dies of SIGPIPE, and pipefail turns that race
# into a failed (or, after &&, a silently skipped) check. Likewise take a
# first line with `sed -n 1p`, never `head -1`. tests/style/check_pipes.sh
# holds the tests to this.
matches() { grep "$@" >/dev/null; }
assert_no_grep() {
    if grep -qiE -- "$1" "$2"; then show "$2"; fail "${3:-output} matches /$1/"; fi
}
show() { # print a file to stderr, for context before a failure
    echo "----- $1" >&2
    head -c 20000 "$1" >&2 || true
    echo "-----" >&2
}

need() { command -v "$1" >/dev/null || fail "$1 is not installed (scripts/install-deps.sh)"; }

# rig_up: make the rig's variables (AL_REG_PLAIN, AL_SEED_JSON, ...) available.
rig_up() {
    need jq
    need sqlite3
    if [ -n "${AL_RIG_ENV:-}" ] && [ -f "$AL_RIG_ENV" ]; then
        # shellcheck disable=SC1090
        . "$AL_RIG_ENV"
        if [ -z "${AL_SEED_JSON:-}" ]; then
            AL_RIG_DIR=$AL_RIG_DIR bash "$AL_SRC/tests/infra/rig.sh" seed >&2
            # shellcheck disable=SC1090
            . "$AL_RIG_ENV"
        fi
    else
        local dir
        dir=$(mktemp -d "${TMPDIR:-/tmp}/airlock-rig-${TEST_NAME}.XXXXXX")
        on_exit "AL_RIG_DIR='$dir/rig' bash '$AL_SRC/tests/infra/rig.sh' stop >/dev/null 2>&1; rm -rf '$dir'"
        AL_RIG_DIR=$dir/rig bash "$AL_SRC/tests/infra/rig.sh" start --seed >&2 ||
            fail "could not start the rig"
        # shellcheck disable=SC1090
        . "$dir/rig/rig.env"
    fi
    [ -f "${AL_SEED_JSON:-}" ] || fail "no seed description (AL_SEED_JSON)"
    [ -x "$FETCH" ] || fail "airlock-fetch is not built: $FETCH"
}

# run_fetch OUT [args...]: run airlock-fetch; stdout to OUT.out, stderr to
# OUT.err, exit status in $RC. Never fails by itself. Stdin is inherited
# (for --password-stdin) unless the caller redirects it.
RC=0
run_fetch() {
    local out=$1
    shift
    RC=0
    "$FETCH" "$@" >"$out.out" 2>"$out.err" || RC=$?
    echo "\$ airlock-fetch $* -> exit $RC" >"$out.cmd"
}
# run_export OUT [args...]: the same for airlock-export. Its stdout is data
# (a tarball with -o -), so OUT.out may be binary.
run_export() {
    local out=$1
    shift
    RC=0
    "$EXPORT" "$@" >"$out.out" 2>"$out.err" || RC=$?
    echo "\$ airlock-export $* -> exit $RC" >"$out.cmd"
}
# run_push OUT [args...]: the same for airlock-push.
run_push() {
    local out=$1
    shift
    RC=0
    "$PUSH" "$@" >"$out.out" 2>"$out.err" || RC=$?
    echo "\$ airlock-push $* -> exit $RC" >"$out.cmd"
}
# expect_rc WANT OUT WHAT: check $RC from run_fetch/run_export/run_push, show its
# output if not.
expect_rc() {
    if [ "$RC" != "$1" ]; then
        # A tarball on stdout is not worth printing: show text only.
        if cmp -s "$2.out" <(tr -d '\000' <"$2.out"); then show "$2.out"; else echo "($2.out: binary)" >&2; fi
        show "$2.err"
        fail "${3:-airlock-fetch}: exit $RC, expected $1"
    fi
}
# fetch_seeded STORE WORK KEY...: fetch seeded refs from the plain registry
# into STORE (a test's starting point); fails the test unless all are ok.
fetch_seeded() {
    local store=$1 work=$2
    shift 2
    run_fetch "$work/fetch" --store "$store" --registry "$AL_REG_PLAIN" \
        --insecure-registry "$AL_REG_PLAIN" "$@"
    expect_rc 0 "$work/fetch" "airlock-fetch of the test images"
}

# line_for OUT.out NAME: the result line of one image (second word = name).
line_for() { awk -v n="$2" '$2 == n' "$1"; }
# word_for OUT.out NAME: its first word (ok, unchanged, moved, FAILED).
word_for() { awk -v n="$2" '$2 == n { print $1 }' "$1"; }

# Registry logs --------------------------------------------------------
# The access log (Apache combined format) has one line per HTTP request:
#   127.0.0.1 - - [date] "GET /v2/library/busybox/manifests/1.36 HTTP/1.1" 200 ...
_req_re='"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) [^ ]+ HTTP/[0-9.]+"'
count_requests() { grep -cE "$_req_re" "$1" || true; }
# log_mark LOG: a position to pass to log_since later.
log_mark() { wc -l <"$1" | tr -d ' '; }
# log_since LOG MARK: the request lines written after the mark, as
# "METHOD URI" (waits a moment: the registry writes a line after replying).
log_since() {
    sleep 0.3
    tail -n +"$(($2 + 1))" "$1" | grep -oE "$_req_re" | sed -E 's/^"([A-Z]+) ([^ ]+) .*/\1 \2/' || true
}

# blob_in_registry STORAGE DIGEST: the registry's data file of a blob.
blob_in_registry() {
    local hex=${2#sha256:}
    echo "$1/docker/registry/v2/blobs/sha256/${hex:0:2}/$hex/data"
}

# Seed description ----------------------------------------------------
seed() { jq -r "$@" "$AL_SEED_JSON"; }
# big_image_up DIR: library/big:1 (a layer over 100 MB) in the plain
# registry, pushed now (~12 s) unless the rig was seeded with it (--big,
# AL_SEED_BIG=1). Sets big_json (a seed file that describes it),
# big_digest, and big_layer and big_size (its largest layer).
big_image_up() {
    big_json=$1/big.json
    if [ "$(seed '.images["library/big:1"].digest // empty')" = "" ]; then
        python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" --big --only library/big:1 \
            --out "$big_json" >"$1/seed.log" 2>&1 || { show "$1/seed.log"; fail "pushing library/big:1"; }
    else
        cp "$AL_SEED_JSON" "$big_json"
    fi
    read -r big_layer big_size < <(jq -r '.images["library/big:1"].blobs | map(select(.kind == "layer"))
        | max_by(.size) | "\(.digest) \(.size)"' "$big_json")
    big_digest=$(jq -r '.images["library/big:1"].digest' "$big_json")
    [ "$big_size" -gt 100000000 ] || fail "library/big:1 has no layer over 100 MB ($big_size)"
}
# seed_name REF: full docker.io name of a seeded ref ("library/busybox:1.36").
seed_name() { seed --arg r "$1" '.images[$r].name'; }
seed_digest() { seed --arg r "$1" '.images[$r].digest'; }
seed_media_type() { seed --arg r "$1" '.images[$r].media_type'; }
# seed_blobs REF [JQ-FILTER]: blob digests of a ref, filtered on the blob
# object (default: all but attestation blobs).
seed_blobs() {
    seed --arg r "$1" ".images[\$r].blobs[] | select(${2:-.attestation | not}) | .digest"
}

# seed_manifest_for REF PLATFORM: digest of REF's image manifest for
# PLATFORM ("linux/amd64"; arm64 is "linux/arm64"), what a consumer keeps as
# the target of the image after loading a single-platform export.
seed_manifest_for() {
    seed --arg r "$1" --arg p "$2" '.images[$r].manifests[]
        | select(.kind == "manifest" and .platform == $p and (.attestation | not)) | .digest'
}
# seed_platform_blobs REF PLATFORM: the blobs of REF's PLATFORM image: its
# manifest, config and layers (no index, no attestation).
seed_platform_blobs() {
    seed_blobs "$1" "(.attestation | not) and .kind != \"index\" and (.platforms | index(\"$2\"))"
}
# seed_config_for REF PLATFORM: digest of the config of that image.
seed_config_for() {
    seed_blobs "$1" "(.attestation | not) and .kind == \"config\" and (.platforms | index(\"$2\"))"
}
# familiar_name NAME: how docker shows a docker.io name in RepoTags
# (docker.io/library/busybox:1.36 -> busybox:1.36).
familiar_name() {
    local n=${1#docker.io/}
    echo "${n#library/}"
}

# Store ----------------------------------------------------------------
store_blobs() { # STORE: digests of the files in blobs/sha256
    local f
    [ -d "$1/blobs/sha256" ] || return 0
    for f in "$1"/blobs/sha256/*; do
        if [ -e "$f" ]; then echo "sha256:$(basename "$f")"; fi
    done
    return 0
}
store_has_blob() { [ -f "$1/blobs/sha256/${2#sha256:}" ]; }
# db STORE SQL: query airlock.db. An SQL error is printed to stdout too, so
# that a comparison against it fails instead of seeing an empty result.
db() {
    local out
    if [ ! -f "$1/airlock.db" ]; then
        echo "SQLITE ERROR: no $1/airlock.db"
        return 1
    fi
    out=$(sqlite3 -batch -noheader "$1/airlock.db" "$2" 2>&1) || {
        echo "SQLITE ERROR: $out"
        echo "sqlite3 $1/airlock.db \"$2\": $out" >&2
        return 1
    }
    [ -z "$out" ] || printf '%s\n' "$out"
}

# assert_blobs_match_registry STORE STORAGE: every blob of the store is
# byte-identical to the registry's copy and named by its own hash.
assert_blobs_match_registry() {
    local store=$1 storage=$2 d n=0 reg
    for d in $(store_blobs "$store"); do
        reg=$(blob_in_registry "$storage" "$d")
        [ -f "$reg" ] || fail "store blob $d is not a blob of the registry"
        cmp -s "$store/blobs/sha256/${d#sha256:}" "$reg" || fail "store blob $d differs from the registry's"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || fail "the store $store holds no blobs"
    note "$n blobs byte-identical to the registry's"
}

# assert_no_canary PATH...: the auth password is in no file (recursively),
# neither in clear nor inside a Basic auth header (base64 of user:pass).
assert_no_canary() {
    local b64 p
    b64=$(printf '%s:%s' "$AL_AUTH_USER" "$AL_AUTH_PASS" | base64 -w0)
    for p in "$@"; do
        [ -e "$p" ] || continue
        if grep -rlaF -e "$AL_AUTH_PASS" -e "$b64" "$p" >/dev/null 2>&1; then
            fail "the password appears in: $(grep -rlaF -e "$AL_AUTH_PASS" -e "$b64" "$p" | head -3 | tr '\n' ' ')"
        fi
    done
}

# Fault proxy -----------------------------------------------------------
# fault_proxy_up DIR UPSTREAM [faultproxy.py options]: start
# tests/infra/faultproxy.sh in DIR in front of UPSTREAM, stop it on exit, and
# load its AL_FAULT_* variables and the fault_* helpers of infra-lib.sh.
fault_proxy_up() {
    local d=$1
    shift
    mkdir -p "$d"
    bash "$AL_SRC/tests/infra/faultproxy.sh" start "$d" "$@" >"$d/start.log" 2>&1 ||
        { show "$d/start.log"; fail "the fault proxy did not start"; }
    on_exit "bash '$AL_SRC/tests/infra/faultproxy.sh' stop '$d' >/dev/null 2>&1"
    # shellcheck disable=SC1091
    . "$d/fault.env"
    # shellcheck source=infra-lib.sh
    . "$AL_SRC/tests/infra/infra-lib.sh"
}

# Push targets ----------------------------------------------------------
# target_up DIR: an empty Debian docker-registry (plain HTTP on 127.0.0.1)
# to push into, stopped by PID on exit. Sets TARGET (127.0.0.1:PORT),
# TARGET_LOG (its access log: one line per request) and TARGET_STORAGE.
target_up() {
    local d=$1 port pid _
    mkdir -p "$d/storage"
    d=$(cd "$d" && pwd)
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
    printf '%s\n' "version: 0.1" "log:" "  level: info" "  formatter: text" \
        "  accesslog:" "    disabled: false" "storage:" "  filesystem:" \
        "    rootdirectory: $d/storage" "  maintenance:" "    uploadpurging:" \
        "      enabled: false" "http:" "  addr: 127.0.0.1:$port" \
        "  secret: airlock-push-target-not-a-secret" >"$d/config.yml"
    docker-registry serve "$d/config.yml" </dev/null >>"$d/access.log" 2>>"$d/registry.log" &
    pid=$!
    on_exit "kill $pid 2>/dev/null; wait $pid 2>/dev/null"
    for _ in $(seq 1 100); do
        kill -0 "$pid" 2>/dev/null || { show "$d/registry.log"; fail "the target registry exited"; }
        [ "$(curl -s -o /dev/null -w '%{http_code}' --noproxy '*' "http://127.0.0.1:$port/v2/")" = 200 ] && break
        sleep 0.1
    done
    TARGET=127.0.0.1:$port
    TARGET_LOG=$d/access.log
    TARGET_STORAGE=$d/storage
}
# target_digest URL [curl args...]: the Docker-Content-Digest a registry
# answers a HEAD of the manifest URL (http[s]://HOST/v2/REPO/manifests/REF)
# with, every manifest type accepted; empty when it has none.
target_digest() {
    local url=$1
    shift
    curl -s -I --noproxy '*' "$@" \
        -H "Accept: application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json" \
        "$url" | tr -d '\r' | awk -F': ' 'tolower($1) == "docker-content-digest" { print $2 }'
}

# Hostile servers -------------------------------------------------------
# fake_registry_up DIR ROUTES.json [fakeregistry.py options]: start
# tests/infra/fakeregistry.py (scripted answers), stop it by PID on exit.
# FAKE_PORT is its port; every request it got is a JSON line in
# DIR/headers.jsonl, with its headers (Authorization cut to its scheme).
# With FAKE_NETNS set it runs in that network namespace (pass --bind ADDR).
fake_registry_up() {
    local d=$1 routes=$2 pid _
    shift 2
    mkdir -p "$d"
    rm -f "$d/port"
    : >"$d/headers.jsonl"
    local pre=()
    if [ -n "${FAKE_NETNS:-}" ]; then pre=(ip netns exec "$FAKE_NETNS"); fi
    "${pre[@]}" python3 "$AL_SRC/tests/infra/fakeregistry.py" --port-file "$d/port" \
        --header-log "$d/headers.jsonl" "$@" "$routes" >"$d/server.log" 2>&1 &
    pid=$!
    on_exit "kill $pid 2>/dev/null"
    for _ in $(seq 1 100); do
        [ -s "$d/port" ] && break
        kill -0 "$pid" 2>/dev/null || { show "$d/server.log"; fail "fakeregistry.py exited"; }
        sleep 0.1
    done
    [ -s "$d/port" ] || fail "fakeregistry.py did not start"
    FAKE_PORT=$(cat "$d/port")
}

# netns_up: a network namespace for this test, joined to the host by a veth
# pair, so that a server can listen on an address that is not local
# (10.231.X.Y, not 127.0.0.0/8): to airlock, a registry elsewhere. Sets
# NETNS (its name), NETNS_HOST (the host's end) and NETNS_ADDR1,
# NETNS_ADDR2 (two addresses inside); run servers there with
# `ip netns exec "$NETNS" ...`. The namespace is deleted by name on exit.
# Needs root and iproute2; where namespaces cannot be made, the test skips.
netns_up() {
    [ "$(id -u)" = 0 ] || skip "a network namespace needs root"
    command -v ip >/dev/null || skip "ip (iproute2) is not installed"
    local x y _ veth="alv$$"
    # A /29 no other test of this machine uses at the moment.
    for _ in $(seq 1 50); do
        x=$((RANDOM % 256))
        y=$(((RANDOM % 32) * 8))
        ip -4 -o addr show | matches " 10\.231\.$x\.$((y + 1))/" || break
    done
    NETNS=airlock-$TEST_NAME-$$
    ip netns add "$NETNS" 2>/dev/null || skip "cannot create a network namespace here"
    on_exit "ip netns del '$NETNS' 2>/dev/null"
    ip link add "${veth}h" type veth peer name "${veth}n" 2>/dev/null ||
        skip "cannot create a veth pair here"
    on_exit "ip link del '${veth}h' 2>/dev/null"
    ip link set "${veth}n" netns "$NETNS"
    NETNS_HOST=10.231.$x.$((y + 1))
    NETNS_ADDR1=10.231.$x.$((y + 2))
    NETNS_ADDR2=10.231.$x.$((y + 3))
    ip addr add "$NETNS_HOST/29" dev "${veth}h"
    ip link set "${veth}h" up
    ip -n "$NETNS" addr add "$NETNS_ADDR1/29" dev "${veth}n"
    ip -n "$NETNS" addr add "$NETNS_ADDR2/29" dev "${veth}n"
    ip -n "$NETNS" link set "${veth}n" up
    ip -n "$NETNS" link set lo up
    # A proxy from the environment must not carry these requests elsewhere.
    unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY
    note "network namespace $NETNS: host $NETNS_HOST, inside $NETNS_ADDR1 and $NETNS_ADDR2"
}
