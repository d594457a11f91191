#!/usr/bin/env bash
# airlock-push into registries that want credentials, with the same images
# each time (a Docker list, an OCI index with its attestation, a manifest
# that shares the busybox base layer, so that one blob goes to two
# repositories):
#   A. the rig's TLS + basic auth registry (--ca-cert, --username with
#      --password-stdin), under a PREFIX;
#   B. the token registry (Bearer tokens per repository scope), under a
#      PREFIX: the token asked for is pull,push, and a mount's token also
#      pull on the repository it mounts from;
# and for each: every tag's digest at the target is upstream's; containerd
# pulls every image by its original name through the written hosts.toml
# (which names the CA for TLS) with the credentials; docker pulls it from
# the target after a login; airlock-fetch from the target into a new store
# gives the same digests (round trip); the password is in nothing
# airlock-push wrote (output, report, store, hosts.toml, registries.yaml).
# And C: a valid login without push rights fails with a line that says so.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need curl
[ -x "$PUSH" ] || fail "airlock-push is not built: $PUSH"
consumers_up || fail "could not start the consumers"
on_exit "consumers_reset >/dev/null 2>&1"
work=$(tmpdir auth)
keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 calico/node:v3.28.0)
printf '%s\n' "${keys[@]}" >"$work/list"
store=$work/store
fetch_seeded "$store" "$work" --include-attestations -f "$work/list"

# check_target NAME HOSTPORT PREFIX USER PASS [curl/ctr TLS args...]: the checks
# every target gets once the push is done.
check_target() {
    local name=$1 hp=$2 prefix=$3 user=$4 pass=$5 scheme=http k hd=$work/$1.hosts
    shift 5
    [ $# -gt 0 ] && scheme=https
    for k in "${keys[@]}"; do
        assert_eq pushed "$(word_for "$work/$name.out" "docker.io/$k")" "$name: result of $k"
        got=$(target_digest "$scheme://$hp/v2/$prefix/${k%:*}/manifests/${k##*:}" -u "$user:$pass" "$@")
        if [ -z "$got" ]; then # the token registry: a token first
            tok=$(curl -s --noproxy '*' -u "$user:$pass" \
                "$AL_TOKEN_REALM?service=$AL_TOKEN_SERVICE&scope=repository:$prefix/${k%:*}:pull" | jq -r .token)
            got=$(target_digest "$scheme://$hp/v2/$prefix/${k%:*}/manifests/${k##*:}" -H "Authorization: Bearer $tok")
        fi
        assert_eq "$(seed_digest "$k")" "$got" "$name: the target's digest of $k"
    done
    # containerd, by the original names, through hosts.toml, with the login.
    for k in "${keys[@]}"; do
        al_ctr images pull --platform linux/amd64 --platform linux/arm64 --hosts-dir "$hd" \
            --user "$user:$pass" "docker.io/$k" >"$work/$name.ctr" 2>&1 ||
            { show "$work/$name.ctr"; fail "$name: ctr images pull --hosts-dir docker.io/$k"; }
        assert_eq "$(seed_digest "$k")" "$(containerd_image_target "docker.io/$k")" "$name: containerd's digest of $k"
    done
    consumers_reset >/dev/null
    # docker, after a login (127.0.0.0/8 is an insecure registry to docker:
    # it does not verify the test CA).
    al_docker login -u "$user" --password-stdin "$hp" <<<"$pass" >"$work/$name.login" 2>&1 ||
        { show "$work/$name.login"; fail "$name: docker login"; }
    for k in "${keys[@]}"; do
        al_docker pull -q "$hp/$prefix/$k" >"$work/$name.docker" 2>&1 ||
            { show "$work/$name.docker"; fail "$name: docker pull $hp/$prefix/$k"; }
        got=$(al_docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$hp/$prefix/$k" |
            grep -F "$hp/$prefix/${k%:*}@" | sed 's/.*@//')
        assert_eq "$(seed_digest "$k")" "$got" "$name: docker's digest of $k"
    done
    al_docker logout "$hp" >/dev/null 2>&1
    consumers_reset >/dev/null
    # Round trip.
    run_fetch "$work/$name.back" --store "$work/$name.store2" --mirror "docker.io=$hp/$prefix" \
        --mirror-only --include-attestations -f "$work/list" --json "$work/$name.back.json" \
        --username "$user" --password-stdin "${fetch_tls[@]}" <<<"$pass"
    expect_rc 0 "$work/$name.back" "$name: airlock-fetch from the target"
    for k in "${keys[@]}"; do
        got=$(jq -r --arg r "docker.io/$k" '.images[] | select(.ref == $r) | .digest' "$work/$name.back.json")
        assert_eq "$(seed_digest "$k")" "$got" "$name: the round trip's digest of $k"
    done
}

# A. TLS + basic auth ----------------------------------------------------------------------
# The rig's registry lives as long as the rig: a prefix of this run's own.
pfx=pushed-$$-$RANDOM
fetch_tls=(--ca-cert "$AL_CA_CERT")
run_push "$work/basic" --store "$store" --to "$AL_REG_AUTH/$pfx" --ca-cert "$AL_CA_CERT" \
    --username "$AL_AUTH_USER" --password-stdin -f "$work/list" --hosts-dir "$work/basic.hosts" \
    --registries-yaml "$work/basic.yaml" --json "$work/basic.json" <<<"$AL_AUTH_PASS"
expect_rc 0 "$work/basic" "airlock-push to the TLS + basic auth registry"
ca=$(realpath "$AL_CA_CERT")
assert_grep "^\[host\.\"https://$AL_REG_AUTH/v2/$pfx\"\]" "$work/basic.hosts/docker.io/hosts.toml" "hosts.toml"
assert_grep "^  ca = \"$ca\"" "$work/basic.hosts/docker.io/hosts.toml" "hosts.toml"
assert_grep "^      ca_file: \"$ca\"" "$work/basic.yaml" "registries.yaml"
assert_grep "^      - \"https://$AL_REG_AUTH\"" "$work/basic.yaml" "registries.yaml"
check_target basic "$AL_REG_AUTH" "$pfx" "$AL_AUTH_USER" "$AL_AUTH_PASS" --cacert "$AL_CA_CERT"
assert_no_canary "$work/basic.out" "$work/basic.err" "$work/basic.json" "$work/basic.yaml" \
    "$work/basic.hosts" "$store"

# B. The token registry ------------------------------------------------------------------------
tok=$work/token
bash "$AL_SRC/tests/infra/token-registry.sh" start "$tok" >"$work/token.log" 2>&1 ||
    { show "$work/token.log"; fail "could not start the token registry"; }
on_exit "bash '$AL_SRC/tests/infra/token-registry.sh' stop '$tok' >/dev/null 2>&1"
# shellcheck disable=SC1091
. "$tok/token.env"
fetch_tls=()
run_push "$work/bearer" --store "$store" --to "$AL_TOKEN_REG/mirror" \
    --username "$AL_TOKEN_USER" --password-stdin -f "$work/list" --hosts-dir "$work/bearer.hosts" \
    --json "$work/bearer.json" <<<"$AL_TOKEN_PASS"
expect_rc 0 "$work/bearer" "airlock-push to the token registry"
jq -r '.requested | if type == "array" then join(" ") else . end' "$AL_TOKEN_LOG" >"$work/scopes"
assert_grep '^repository:mirror/library/busybox:pull,push$' "$work/scopes" "the token scopes asked for"
assert_grep '^repository:mirror/[a-z/-]+:pull,push repository:mirror/[a-z/-]+:pull$' "$work/scopes" \
    "the token scopes asked for (a mount)"
[ "$(jq '.totals.blobs_mounted' "$work/bearer.json")" -gt 0 ] || fail "nothing was mounted at the token registry"
check_target bearer "$AL_TOKEN_REG" mirror "$AL_TOKEN_USER" "$AL_TOKEN_PASS"
assert_no_canary "$work/bearer.out" "$work/bearer.err" "$work/bearer.json" "$work/bearer.hosts" "$store"
grep -rlaF "$AL_TOKEN_PASS" "$work/bearer.out" "$work/bearer.err" "$work/bearer.json" "$store" \
    "$work/bearer.hosts" && fail "the token registry's password appears in what airlock-push wrote"

# C. A login without push rights ------------------------------------------------------------------
run_push "$work/outsider" --store "$store" --to "$AL_TOKEN_REG/mirror2" \
    --username "$AL_TOKEN_OTHER_USER" --password-stdin library/busybox:1.36 <<<"$AL_TOKEN_OTHER_PASS"
expect_rc 1 "$work/outsider" "airlock-push without push rights"
assert_grep "^FAILED +docker.io/library/busybox:1.36 .*credentials from --username give no push access to mirror2/library/busybox" \
    "$work/outsider.out" "the line of a login without push rights"
note "ok"
