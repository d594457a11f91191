#!/usr/bin/env bash
# Kills and resumes, with a ~120 MB image (library/big:1, pushed here):
#   1. a fetch killed (SIGKILL) mid-blob leaves the partial download in
#      STORE/tmp; the rerun asks for the rest with Range and downloads little
#      more than what was missing; the store verifies;
#   2. fetches killed at AL_CRASH_KILLS (default 20) random moments: after
#      each kill the store is consistent (every blob file matches its name,
#      every row has its file, every tag's graph is complete, index.json
#      matches the tags), and a final run completes everything.
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need curl

work=$(tmpdir crash)
kills=${AL_CRASH_KILLS:-20}

# The big image, pushed to the plain registry unless the rig has it already.
big_json=$work/big.json
if [ "$(seed -r '.images["library/big:1"].digest // empty')" = "" ]; then
    python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" --big --only library/big:1 \
        --out "$big_json" >"$work/seed.log" 2>&1 || { show "$work/seed.log"; fail "pushing library/big:1"; }
else
    cp "$AL_SEED_JSON" "$big_json"
fi
read -r big_layer big_size < <(jq -r '.images["library/big:1"].blobs | map(select(.kind == "layer"))
    | max_by(.size) | "\(.digest) \(.size)"' "$big_json")
[ "$big_size" -gt 100000000 ] || fail "library/big:1 has no layer over 100 MB ($big_size)"

fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
fetch_args=(--registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY")

# check_store STORE: the invariants that must hold after any crash.
check_store() {
    local s=$1 f name size
    [ -d "$s/blobs/sha256" ] || return 0
    for f in "$s"/blobs/sha256/*; do
        [ -e "$f" ] || continue
        name=$(basename "$f")
        [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$name" ] || fail "after a kill: $f does not match its name"
    done
    [ -f "$s/airlock.db" ] || return 0
    sqlite3 "$s/airlock.db" 'PRAGMA integrity_check' | grep -qx ok || fail "after a kill: database integrity"
    while IFS='|' read -r name size; do
        f=$s/blobs/sha256/${name#sha256:}
        [ -f "$f" ] || fail "after a kill: row for $name but no file"
        [ "$(stat -c %s "$f")" = "$size" ] || fail "after a kill: $name has the wrong size"
    done < <(sqlite3 "$s/airlock.db" 'SELECT digest, size FROM blobs')
    # every tag's graph complete: its root and every edge below it have rows
    local missing
    missing=$(sqlite3 "$s/airlock.db" "
        WITH RECURSIVE g(d) AS (SELECT digest FROM tags
            UNION SELECT e.child_digest FROM edges e JOIN g ON e.parent_digest = g.d)
        SELECT count(*) FROM g WHERE d NOT IN (SELECT digest FROM blobs)")
    assert_eq 0 "$missing" "after a kill: blobs missing under a tag"
    # index.json is whole and every entry in it is complete; it follows the
    # tags commit by commit, so a kill may leave it one commit behind (the
    # next run repairs that, checked at the end).
    local d
    jq -e '.manifests | type == "array"' "$s/index.json" >/dev/null || fail "after a kill: index.json is not whole"
    for d in $(jq -r '.manifests[].digest' "$s/index.json"); do
        f=$s/blobs/sha256/${d#sha256:}
        [ -f "$f" ] || fail "after a kill: index.json names $d, which is not in the store"
    done
    local behind
    behind=$(comm -23 <(sqlite3 "$s/airlock.db" 'SELECT full_name FROM tags' | sort) \
        <(jq -r '.manifests[].annotations["io.containerd.image.name"]' "$s/index.json" | sort) | wc -l)
    [ "$behind" -le 1 ] || fail "after a kill: index.json misses $behind tags"
    # and the store's own check agrees (index.json lagging one commit is a note there)
    RC=0
    "$AL_BIN/airlock-export" --store "$s" --verify-store >"$work/verify.out" 2>&1 || RC=$?
    [ "$RC" = 0 ] || { show "$work/verify.out"; fail "after a kill: airlock-export --verify-store exit $RC"; }
}
# index_matches STORE: index.json is exactly the tags.
index_matches() {
    assert_eq "$(sqlite3 "$1/airlock.db" 'SELECT digest FROM tags ORDER BY full_name' | tr '\n' ' ')" \
        "$(jq -r '.manifests | sort_by(.annotations["io.containerd.image.name"]) | .[].digest' "$1/index.json" | tr '\n' ' ')" \
        "index.json against tags"
}

# --- 1. kill mid-blob, resume with Range ------------------------------------------
store=$work/resume
cut=60000000
fault_rules "{\"rules\":[{\"id\":\"s\",\"path\":\"/blobs/$big_layer\",\"nth\":1,\"action\":\"stall\",\"bytes\":$cut,\"seconds\":300}]}"
"$FETCH" --store "$store" "${fetch_args[@]}" big:1 >"$work/resume1.out" 2>&1 &
pid=$!
part=$store/tmp/partial-${big_layer#sha256:}
for _ in $(seq 600); do
    [ -f "$part" ] && [ "$(stat -c %s "$part")" -ge "$cut" ] && break
    sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
[ -f "$part" ] || fail "no partial download after the kill"
have=$(stat -c %s "$part")
assert_eq "$cut" "$have" "bytes in the partial download"
check_store "$store"
fault_rules '{"rules": []}'
mark=$(fault_mark)
RC=0
"$FETCH" --store "$store" "${fetch_args[@]}" big:1 >"$work/resume2.out" 2>"$work/resume2.err" || RC=$?
expect_rc 0 "$work/resume2" "the rerun after the kill"
fault_since "$mark" | jq -c "select(.path | test(\"$big_layer\"))" >"$work/big.log"
assert_eq "1" "$(wc -l <"$work/big.log")" "requests for the big layer in the rerun"
assert_eq "bytes=$cut-" "$(jq -r '.range' "$work/big.log")" "Range of the rerun"
assert_eq "206" "$(jq -r '.status' "$work/big.log")" "status of the ranged GET"
sent=$(jq -r '.bytes' "$work/big.log")
[ "$sent" -le $((big_size - cut + 1048576)) ] || fail "the rerun downloaded $sent bytes; $((big_size - cut)) were missing"
store_has_blob "$store" "$big_layer" || fail "the big layer is not in the store after the rerun"
[ ! -e "$part" ] || fail "the partial download is still there"
check_store "$store"

# --- 2. kill at random moments ---------------------------------------------------
store=$work/crash
list=(big:1 busybox:1.36 rancher/mirrored-pause:3.6 calico/node:v3.28.0
    rancher/mirrored-coredns-coredns:1.10.1 library/nested:1 rancher/zstd-image:1)
# About 3 s for the whole list: kills land in every phase.
fault_rules '{"rules":[{"id":"slow","path":"/blobs/","action":"forward","rate":40000000}]}'
for i in $(seq "$kills"); do
    "$FETCH" --store "$store" "${fetch_args[@]}" "${list[@]}" >"$work/kill$i.out" 2>&1 &
    pid=$!
    sleep "$(awk -v s="$RANDOM" 'BEGIN { srand(s); printf "%.2f", 0.02 + rand() * 2.5 }')"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    check_store "$store"
done
fault_rules '{"rules": []}'
RC=0
"$FETCH" --store "$store" "${fetch_args[@]}" "${list[@]}" >"$work/final.out" 2>"$work/final.err" || RC=$?
expect_rc 0 "$work/final" "the run after $kills kills"
check_store "$store"
index_matches "$store"
assert_eq "${#list[@]}" "$(sqlite3 "$store/airlock.db" 'SELECT count(*) FROM tags')" "tags after the final run"
for f in "$store"/blobs/sha256/*; do
    cmp -s "$f" "$(blob_in_registry "$AL_REG_PLAIN_STORAGE" "sha256:$(basename "$f")")" ||
        fail "$f differs from the registry's copy"
done
note "resumed with Range; $kills kills left a consistent store"
