#!/usr/bin/env bash
# TLS and basic auth:
#   - the TLS registry works with --ca-cert, and fails clearly without it
#     (exit 1, TLS / certificate in the message);
#   - the basic-auth registry works with --username + --password-stdin, and
#     fails with a wrong password or none (exit 1, auth in the message);
#   - the password appears nowhere: not in stdout/stderr (even with
#     AL_DEBUG_HTTP=1), not in the store's files, not in airlock.db.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir tls)
keys=(library/busybox:1.36 rancher/mirrored-pause:3.6)
names=()
for k in "${keys[@]}"; do names+=("$(seed_name "$k")"); done

check_stored() { # OUT STORE STORAGE WHAT
    local i
    for i in "${!keys[@]}"; do
        assert_eq ok "$(word_for "$1.out" "${names[i]}")" "$4: result of ${names[i]}"
        assert_eq "$(seed_digest "${keys[i]}")" \
            "$(db "$2" "SELECT digest FROM tags WHERE full_name = '${names[i]}'")" "$4: tag of ${names[i]}"
        for d in $(seed_blobs "${keys[i]}"); do
            store_has_blob "$2" "$d" || fail "$4: blob $d of ${keys[i]} missing"
        done
    done
    assert_blobs_match_registry "$2" "$3"
}

# 1. TLS -----------------------------------------------------------------------
store=$work/store-tls
run_fetch "$work/tls-ok" --store "$store" --registry "$AL_REG_TLS" --ca-cert "$AL_CA_CERT" "${keys[@]}"
expect_rc 0 "$work/tls-ok" "TLS fetch with --ca-cert"
check_stored "$work/tls-ok" "$store" "$AL_REG_TLS_STORAGE" "TLS"

store=$work/store-tls-noca
mark=$(log_mark "$AL_REG_TLS_LOG")
run_fetch "$work/tls-noca" --store "$store" --registry "$AL_REG_TLS" "${keys[@]}"
expect_rc 1 "$work/tls-noca" "TLS fetch without --ca-cert"
cat "$work/tls-noca.out" "$work/tls-noca.err" >"$work/tls-noca.all"
assert_grep 'TLS|SSL|certificate' "$work/tls-noca.all" "message without --ca-cert"
for n in "${names[@]}"; do
    assert_eq FAILED "$(word_for "$work/tls-noca.out" "$n")" "result of $n without --ca-cert"
done
# The handshake failed, so the registry served nothing.
assert_eq "" "$(log_since "$AL_REG_TLS_LOG" "$mark")" "requests served without a trusted certificate"
if [ -f "$store/airlock.db" ]; then
    assert_eq 0 "$(db "$store" 'SELECT count(*) FROM tags')" "tags without --ca-cert"
fi

# 2. Basic auth ----------------------------------------------------------------
store=$work/store-auth
run_fetch "$work/auth-ok" --store "$store" --registry "$AL_REG_AUTH" --ca-cert "$AL_CA_CERT" \
    --username "$AL_AUTH_USER" --password-stdin "${keys[@]}" <<<"$AL_AUTH_PASS"
expect_rc 0 "$work/auth-ok" "auth fetch with the right password"
check_stored "$work/auth-ok" "$store" "$AL_REG_AUTH_STORAGE" "auth"

# The same again with the HTTP trace on: credentials must be redacted.
AL_DEBUG_HTTP=1 run_fetch "$work/auth-debug" --store "$store" --registry "$AL_REG_AUTH" \
    --ca-cert "$AL_CA_CERT" --username "$AL_AUTH_USER" --password-stdin "${keys[@]}" <<<"$AL_AUTH_PASS"
expect_rc 0 "$work/auth-debug" "auth fetch with AL_DEBUG_HTTP=1"
[ -s "$work/auth-debug.err" ] || fail "AL_DEBUG_HTTP=1 printed no trace"

store_bad=$work/store-auth-bad
run_fetch "$work/auth-bad" --store "$store_bad" --registry "$AL_REG_AUTH" --ca-cert "$AL_CA_CERT" \
    --username "$AL_AUTH_USER" --password-stdin "${keys[@]}" <<<"wrong-${AL_AUTH_PASS}-wrong"
expect_rc 1 "$work/auth-bad" "auth fetch with a wrong password"
cat "$work/auth-bad.out" "$work/auth-bad.err" >"$work/auth-bad.all"
assert_grep 'auth|unauthori[sz]ed|401' "$work/auth-bad.all" "message for a wrong password"
for n in "${names[@]}"; do
    assert_eq FAILED "$(word_for "$work/auth-bad.out" "$n")" "result of $n with a wrong password"
done

run_fetch "$work/auth-none" --store "$store_bad" --registry "$AL_REG_AUTH" --ca-cert "$AL_CA_CERT" \
    "${keys[@]}" </dev/null
expect_rc 1 "$work/auth-none" "auth fetch without credentials"
cat "$work/auth-none.out" "$work/auth-none.err" >"$work/auth-none.all"
assert_grep 'auth|unauthori[sz]ed|401' "$work/auth-none.all" "message without credentials"
if [ -f "$store_bad/airlock.db" ]; then
    assert_eq 0 "$(db "$store_bad" 'SELECT count(*) FROM tags')" "tags after failed logins"
fi

# 3. The canary password is nowhere ------------------------------------------
# Make sure the WAL is folded in and the dump sees everything.
for s in "$work"/store-auth "$work"/store-auth-bad; do
    if [ -f "$s/airlock.db" ]; then
        db "$s" .dump >"$s.dump"
    fi
done
assert_no_canary "$work"/*.out "$work"/*.err "$work"/*.all "$work"/*.cmd "$work"/*.dump \
    "$work/store-auth" "$work/store-auth-bad"
[ "$(db "$work/store-auth" 'SELECT count(*) FROM runs')" -ge 2 ] || fail "runs rows of the auth store"

note "ok"
