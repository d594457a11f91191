#!/usr/bin/env bash
# Prune keeps a killed run's downloads (issue 10, "Prune keeps a killed
# run's downloads"; issue 15, item 11):
#   1. a store with one completed fetch (busybox), then a fetch of an image
#      of 50 layers through the fault proxy, throttled, killed with SIGKILL
#      once the proxy's log shows at least 5 layers served whole and their
#      files are in blobs/ (the batch is half-way: most layers unfinished);
#   2. every finished layer already has its blobs row (each row is written
#      as soon as its blob is committed, not after the batch); `--prune`
#      without refs, twice: every finished layer is still there, file and
#      row, partials too;
#   3. the fetch again, unthrottled: the proxy's log shows no GET of any
#      finished layer (a partial may resume with Range), the image is ok;
#   4. a last prune removes nothing of either image; the store verifies.
. "$(dirname "$0")/lib.sh"
rig_up
need curl

work=$(tmpdir killprune)
store=$work/store
repo=airlock-test/kill-$$-$RANDOM
ref=$repo:1

# 10 small layers finish early; 40 bigger ones are still coming when the
# kill lands. The engine asks for them in digest order, so the small ones
# are spread over the batch.
python3 "$AL_SRC/tests/infra/push-layers.py" --registry "$AL_REG_PLAIN" --repo "$repo" --tag 1 \
    --sizes 10x40000 --sizes 40x500000 --seed 23 --out "$work/img.json" 2>"$work/push.err" ||
    { show "$work/push.err"; fail "could not push $ref"; }
mapfile -t layers < <(jq -r '.layers[].digest' "$work/img.json")
assert_eq 50 "${#layers[@]}" "layers of $ref"

fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
proxy_args=(--registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY")

# 1. A completed run, then the killed one -----------------------------------------
fetch_seeded "$store" "$work" library/busybox:1.36
fault_rules '{"rules": [{"id": "slow", "method": "GET", "path": "/blobs/sha256:", "action": "forward", "rate": 250000}]}'
"$FETCH" --store "$store" "${proxy_args[@]}" -j 8 "$ref" >"$work/killed.out" 2>"$work/killed.err" &
pid=$!
on_exit "kill -9 $pid 2>/dev/null"
# finished_layers: the layers whose files are in blobs/.
finished_layers() {
    local l
    for l in "${layers[@]}"; do
        if store_has_blob "$store" "$l"; then echo "$l"; fi
    done
}
for _ in $(seq 600); do
    kill -0 "$pid" 2>/dev/null || { show "$work/killed.err"; fail "the throttled fetch ended before the kill"; }
    # layers the proxy has served whole (its log has a line once a request ends)
    served=$(jq -r 'select(.method == "GET" and .status == 200) | .path' "$AL_FAULT_LOG" |
        sed 's|.*/blobs/||' | grep -cFx -f <(printf '%s\n' "${layers[@]}") || true)
    if [ "$served" -ge 5 ] && [ "$(finished_layers | wc -l)" -ge 5 ]; then break; fi
    sleep 0.1
done
kill -9 "$pid"
wait "$pid" 2>/dev/null || true
mapfile -t finished < <(finished_layers)
n_partials=$(find "$store/tmp" -name 'partial-*' | wc -l)
note "killed with ${#finished[@]} of 50 layers finished, $n_partials partial downloads in tmp/"
[ "${#finished[@]}" -ge 5 ] || fail "only ${#finished[@]} layers had finished when the fetch was killed"
[ "${#finished[@]}" -lt 50 ] || fail "every layer had finished: the kill did not land mid-batch"
for l in "${finished[@]}"; do
    [ "$(sha256sum "$store/blobs/sha256/${l#sha256:}" | cut -d' ' -f1)" = "${l#sha256:}" ] ||
        fail "finished layer $l does not hash to its name"
done

# 2. Rows, then standalone prunes -------------------------------------------------------
for l in "${finished[@]}"; do
    assert_eq 1 "$(db "$store" "SELECT count(*) FROM blobs WHERE digest = '$l'")" \
        "the row of the finished layer $l after the kill"
done
for p in 1 2; do
    run_fetch "$work/prune-$p" --store "$store" --prune
    expect_rc 0 "$work/prune-$p" "prune $p after the kill"
    for l in "${finished[@]}"; do
        store_has_blob "$store" "$l" || { show "$work/prune-$p.out"; fail "prune $p removed the finished layer $l"; }
        assert_eq 1 "$(db "$store" "SELECT count(*) FROM blobs WHERE digest = '$l'")" \
            "prune $p: the row of the finished layer $l"
    done
    assert_grep "pruned 0 blobs" "$work/prune-$p.out" "prune $p's summary"
done
assert_eq "$n_partials" "$(find "$store/tmp" -name 'partial-*' | wc -l)" "partials in tmp/ after the prunes"
note "2 prunes kept the ${#finished[@]} finished layers and the partials"

# 3. The fetch again ---------------------------------------------------------------
fault_rules '{"rules": []}'
mark=$(fault_mark)
run_fetch "$work/again" --store "$store" "${proxy_args[@]}" "$ref"
expect_rc 0 "$work/again" "the fetch after the kill and the prunes"
fault_since "$mark" >"$work/again.log"
for l in "${finished[@]}"; do
    n=$(jq -r --arg l "$l" 'select(.method == "GET" and (.path | endswith("/blobs/" + $l))) | .path' "$work/again.log" | wc -l)
    [ "$n" = 0 ] || fail "the finished layer $l was requested again ($n GETs)"
done
ranged=$(jq -r 'select(.method == "GET" and .range != null) | .path' "$work/again.log" | wc -l)
note "the rerun asked for no finished layer again ($ranged ranged GETs resumed partials)"

# 4. A last prune ----------------------------------------------------------------------
run_fetch "$work/prune-last" --store "$store" --prune
expect_rc 0 "$work/prune-last" "the last prune"
assert_grep "pruned 0 blobs" "$work/prune-last.out" "the last prune"
for l in "${layers[@]}"; do
    store_has_blob "$store" "$l" || fail "layer $l is missing after the last prune"
done
RC=0
"$EXPORT" --store "$store" --verify-store >"$work/verify.out" 2>&1 || RC=$?
[ "$RC" = 0 ] || { show "$work/verify.out"; fail "--verify-store: exit $RC"; }
note "ok"
