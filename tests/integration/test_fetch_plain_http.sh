#!/usr/bin/env bash
# Plain-HTTP registries (README, "Registries and TLS"):
#   1. a plain-HTTP registry on 127.0.0.1 (the rig's) or localhost works
#      without --insecure-registry, and stderr says so once per host;
#   2. a plain-HTTP registry on a host that is not local (two addresses of a
#      network namespace this test creates) is refused without the flag: one
#      line on stderr says what to do (--insecure-registry HOST:PORT), once
#      for the registry, and each image's result line refers to it;
#   3. --insecure-registry applies to the host it names only: in one run, the
#      images of the named registry are fetched, those of the other still
#      refused with the advice naming that other host.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir plain)
refs=(library/busybox:1.36 rancher/mirrored-pause:3.6 library/alpine-ish:3.19)

# 1. Local: no flag needed ------------------------------------------------------
port=${AL_REG_PLAIN##*:}
for host in "$AL_REG_PLAIN" "localhost:$port"; do
    run_fetch "$work/local" --store "$work/store-local" --registry "$host" "${refs[@]}"
    expect_rc 0 "$work/local" "fetch from the plain registry at $host without --insecure-registry"
    for r in "${refs[@]}"; do
        word=$(word_for "$work/local.out" "$(seed_name "$r")")
        [[ $word == ok || $word == unchanged ]] || { show "$work/local.out"; fail "$r from $host: $word"; }
    done
    assert_eq 1 "$(grep -c "$host speaks plain HTTP" "$work/local.err")" \
        "lines on stderr saying that $host speaks plain HTTP"
    assert_no_grep 'wrong version number|SSL' "$work/local.err" "stderr of the local fetch"
done
note "local plain-HTTP registry fetched without a flag"

# 2. A host that is not local ---------------------------------------------------------
netns_up
# reg_in_netns NAME ADDR: a docker-registry inside the namespace on ADDR:5000,
# serving the rig's plain registry storage read-only.
reg_in_netns() {
    local d=$work/$1 _
    mkdir -p "$d"
    cat >"$d/config.yml" <<EOF
version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: $AL_REG_PLAIN_STORAGE
  maintenance:
    uploadpurging:
      enabled: false
    readonly:
      enabled: true
http:
  addr: $2:5000
  secret: airlock-netns-not-a-secret
EOF
    ip netns exec "$NETNS" docker-registry serve "$d/config.yml" </dev/null \
        >>"$d/access.log" 2>>"$d/registry.log" &
    on_exit "kill $! 2>/dev/null"
    for _ in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://$2:5000/v2/" || true)" = 200 ] && return 0
        sleep 0.1
    done
    show "$d/registry.log"
    fail "the registry in the namespace at $2:5000 did not start"
}
reg_in_netns reg1 "$NETNS_ADDR1"
reg_in_netns reg2 "$NETNS_ADDR2"
reg1=$NETNS_ADDR1:5000
reg2=$NETNS_ADDR2:5000

run_fetch "$work/remote" --store "$work/store-remote" --registry "$reg1" "${refs[@]}"
expect_rc 1 "$work/remote" "fetch from a plain-HTTP registry on $reg1 without --insecure-registry"
for r in "${refs[@]}"; do
    line=$(line_for "$work/remote.out" "$(seed_name "$r")")
    [[ $line == FAILED*"$reg1: plain-HTTP registry refused"* ]] ||
        { show "$work/remote.out"; fail "$r: not refused with a short line: $line"; }
done
# What to do, once for the registry: on stderr, not on every result line.
assert_eq 1 "$(grep -c -- "--insecure-registry $reg1" "$work/remote.err")" \
    "lines on stderr naming --insecure-registry $reg1"
assert_grep "^airlock-fetch: error: $reg1 seems to speak plain HTTP, not HTTPS \(GET https:.*wrong version number\); to fetch from it over plain HTTP, pass --insecure-registry $reg1$" \
    "$work/remote.err" "the advice"
assert_no_grep '--insecure-registry' "$work/remote.out" "result lines"
assert_eq 0 "$(db "$work/store-remote" 'SELECT count(*) FROM tags')" "tags stored from $reg1"
note "$reg1 refused: the advice once, ${#refs[@]} short result lines"

# 3. The flag applies to the host it names only ----------------------------------------
run_fetch "$work/flag" --store "$work/store-flag" --insecure-registry "$reg1" \
    "$reg1/library/busybox:1.36" "$reg2/library/busybox:1.36" "$reg2/rancher/mirrored-pause:3.6"
expect_rc 1 "$work/flag" "fetch from $reg1 (flagged) and $reg2 (not)"
assert_eq ok "$(word_for "$work/flag.out" "$reg1/library/busybox:1.36")" "image of $reg1"
assert_eq "$(seed_digest library/busybox:1.36)" \
    "$(db "$work/store-flag" "SELECT digest FROM tags WHERE full_name = '$reg1/library/busybox:1.36'")" \
    "tag stored from $reg1"
for r in library/busybox:1.36 rancher/mirrored-pause:3.6; do
    line=$(line_for "$work/flag.out" "$reg2/$r")
    [[ $line == FAILED*"$reg2: plain-HTTP registry refused"* ]] ||
        { show "$work/flag.out"; fail "$reg2/$r: not refused: $line"; }
done
assert_eq 1 "$(grep -c -- "--insecure-registry $reg2" "$work/flag.err")" \
    "lines on stderr naming --insecure-registry $reg2"
assert_no_grep "seems to speak plain HTTP.*$NETNS_ADDR1" "$work/flag.err" "stderr about $reg1"
note "--insecure-registry $reg1 allowed that host only"
note "ok"
