#!/usr/bin/env bash
# kill -9 during an import, then a rerun: it completes, without reading
# again what was staged or committed, and the store verifies.
#
# The far store holds a first small bundle; the second carries an image of
# 30 layers (about 45 MB). Three kills at chosen points (strace injects
# SIGKILL at the Nth renameat, counted on a reference run from the same
# starting state, so the points do not depend on timing):
#   - half-way through the staging: nothing of the bundle is visible; the
#     rerun reads only the blobs not staged yet (its report and its note);
#   - half-way through the renames into blobs/sha256 (before the database
#     commit): nothing visible (the files have no rows: notes); the rerun
#     reads no blob again;
#   - at the rewrite of index.json after the commit: the bundle is applied
#     (index.json lags, a note); the rerun says "nothing to do" and puts
#     index.json right and the staging directory away;
# then AL_BUNDLE_KILLS (default 4) kills at random moments. After every
# kill: --verify-store finds no error, and either every tag of the bundle
# is there at its digest with its bundles row, or none is; after every
# rerun the store is the one a run without kills made.
. "$(dirname "$0")/lib.sh"
rig_up
need strace
need python3
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir kill)
kills=${AL_BUNDLE_KILLS:-4}
repo=airlock-test/bundle-kill-$$-$RANDOM
python3 "$AL_SRC/tests/infra/push-layers.py" --registry "$AL_REG_PLAIN" --repo "$repo" --tag 1 \
    --sizes 30x1500000 --seed 11 --out "$work/big.json" >"$work/push.log" 2>&1 ||
    { show "$work/push.log"; fail "pushing $repo:1"; }
big_name=$AL_REG_PLAIN/$repo:1
conn=$work/connected
fetch_seeded "$conn" "$work" library/busybox:1.36 "$AL_REG_PLAIN/$repo:1"

run_export "$work/b0" --store "$conn" library/busybox:1.36 --bundle "$work/small.tar"
expect_rc 0 "$work/b0" "the first bundle"
far0=$work/far0
run_fetch "$work/i0" --store "$far0" --import "$work/small.tar"
expect_rc 0 "$work/i0" "import of the first bundle"
run_export "$work/b1" --store "$conn" --all --bundle "$work/big.tar" --since "$work/small.tar.json"
expect_rc 0 "$work/b1" "the bundle with the big image"
id=$(jq -r .bundle_id "$work/big.tar.json")
n_blobs=$(jq '.blobs | length' "$work/big.tar.json")
[ "$n_blobs" -ge 30 ] || fail "test setup: the bundle carries $n_blobs blobs"
big_digest=$(jq -r --arg n "$big_name" '.tags[] | select(.name == $n) | .digest' "$work/big.tar.json")

# A reference run: the renameat calls, in order, and the state it leaves.
ref=$work/far-ref
cp -a "$far0" "$ref"
ASAN_OPTIONS=detect_leaks=0 strace -f -y -o "$work/ref.strace" -e trace=renameat,renameat2 \
    "$FETCH" --store "$ref" --import "$work/big.tar" >"$work/ref.out" 2>"$work/ref.err" ||
    { show "$work/ref.err"; fail "the reference import failed"; }
grep -E 'renameat2?\(' "$work/ref.strace" | grep -v 'resumed>' >"$work/renames"
stage_at=$(grep -n "tmp/import-$id>, \"[0-9a-f]\{12\}\.[0-9a-f]*\.tmp\", [0-9]*<[^>]*tmp/import-$id>" "$work/renames" | cut -d: -f1)
publish_at=$(grep -n "tmp/import-$id>, \"[0-9a-f]\{64\}\", [0-9]*<[^>]*blobs/sha256>" "$work/renames" | cut -d: -f1)
index_at=$(grep -n '"index.json"' "$work/renames" | cut -d: -f1 | tail -1)
n_stage=$(echo "$stage_at" | wc -l)
n_publish=$(echo "$publish_at" | wc -l)
[ "$n_stage" -ge 30 ] && [ "$n_publish" -ge 30 ] && [ -n "$index_at" ] ||
    { show "$work/renames"; fail "the reference trace: $n_stage stage renames, $n_publish publishes, index at '$index_at'"; }
ref_tags=$(db "$ref" "SELECT full_name || ' ' || digest FROM tags ORDER BY 1")
before_tags=$(db "$far0" "SELECT full_name || ' ' || digest FROM tags ORDER BY 1")

# After a kill: no error in --verify-store, and all of the bundle or none.
check_far() {
    local s=$1 what=$2
    run_export "$work/v" --store "$s" --verify-store
    expect_rc 0 "$work/v" "$what: --verify-store"
    local applied
    applied=$(db "$s" "SELECT count(*) FROM bundles WHERE bundle_id = '$id'")
    if [ "$applied" = 1 ]; then
        assert_eq "$ref_tags" "$(db "$s" "SELECT full_name || ' ' || digest FROM tags ORDER BY 1")" "$what: tags (applied)"
    else
        assert_eq "$before_tags" "$(db "$s" "SELECT full_name || ' ' || digest FROM tags ORDER BY 1")" "$what: tags (not applied)"
        assert_eq 0 "$(db "$s" "SELECT count(*) FROM blobs WHERE digest = '$big_digest'")" "$what: a row of the bundle"
    fi
    echo "$applied"
}
# The rerun completes, and the store is the reference's.
rerun() {
    local s=$1 what=$2
    run_fetch "$work/rerun" --store "$s" --import "$work/big.tar" --json "$work/rerun.json"
    expect_rc 0 "$work/rerun" "$what: the rerun"
    assert_eq "$ref_tags" "$(db "$s" "SELECT full_name || ' ' || digest FROM tags ORDER BY 1")" "$what: tags after the rerun"
    assert_eq "$(store_blobs "$ref" | sort)" "$(store_blobs "$s" | sort)" "$what: blobs after the rerun"
    [ ! -e "$s/tmp/import-$id" ] || fail "$what: the staging directory is left after the rerun"
    run_export "$work/v" --store "$s" --verify-store
    expect_rc 0 "$work/v" "$what: --verify-store after the rerun"
    assert_grep '^store OK' "$work/v.out" "$what: --verify-store after the rerun"
    # (A temp file of a killed writer may stay in tmp/: --prune clears it.)
    assert_no_grep 'info: (index|unindexed|tmp: tmp/import)' "$work/v.out" "$what: notes after the rerun"
}
# kill_at N STORE: run the import, SIGKILLed at its Nth renameat.
kill_at() {
    local rc=0
    ASAN_OPTIONS=detect_leaks=0 strace -f -o /dev/null -e trace=renameat,renameat2 -e inject=renameat,renameat2:signal=SIGKILL:when="$1" \
        "$FETCH" --store "$2" --import "$work/big.tar" >"$work/k.out" 2>"$work/k.err" || rc=$?
    [ "$rc" != 0 ] || fail "the import was not killed at renameat $1"
}

# 1. Half-way through the staging.
k=$(echo "$stage_at" | sed -n "$((n_stage / 2))p")
s1=$work/far-1
cp -a "$far0" "$s1"
kill_at "$k" "$s1"
assert_eq 0 "$(check_far "$s1" "killed while staging" | tail -1)" "applied after a kill while staging"
staged=$(ls "$s1/tmp/import-$id" | grep -cE '^[0-9a-f]{64}$')
[ "$staged" -gt 0 ] && [ "$staged" -lt "$n_blobs" ] || fail "killed while staging: $staged blobs staged"
rerun "$s1" "killed while staging"
assert_eq "$((n_blobs - staged))" "$(jq .import.blobs_new "$work/rerun.json")" "blobs the rerun read (not the $staged staged ones)"
assert_grep "$staged blobs \\(.*\\) staged by an earlier run: not read again" "$work/rerun.err" "the rerun's note"

# 2. Half-way through the renames into blobs/sha256.
k=$(echo "$publish_at" | sed -n "$((n_publish / 2))p")
s2=$work/far-2
cp -a "$far0" "$s2"
kill_at "$k" "$s2"
assert_eq 0 "$(check_far "$s2" "killed while publishing" | tail -1)" "applied after a kill while publishing"
assert_grep 'info: unindexed: ' "$work/v.out" "files without rows after a kill while publishing"
rerun "$s2" "killed while publishing"
assert_eq 0 "$(jq .import.blobs_new "$work/rerun.json")" "blobs read again after a kill while publishing"

# 3. At index.json, after the commit.
s3=$work/far-3
cp -a "$far0" "$s3"
kill_at "$index_at" "$s3"
assert_eq 1 "$(check_far "$s3" "killed at index.json" | tail -1)" "applied after a kill at index.json"
rerun "$s3" "killed at index.json"
assert_grep "^bundle $id was applied on .*: nothing to do" "$work/rerun.out" "the rerun after the commit"

# 4. Random moments.
for i in $(seq 1 "$kills"); do
    s=$work/far-r$i
    cp -a "$far0" "$s"
    "$FETCH" --store "$s" --import "$work/big.tar" >"$work/r.out" 2>"$work/r.err" &
    pid=$!
    sleep "0.$((RANDOM % 6))$((RANDOM % 10))"
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    a=$(check_far "$s" "random kill $i" | tail -1)
    rerun "$s" "random kill $i"
    note "random kill $i: applied before the rerun: $a"
    rm -rf "$s"
done
note "ok ($n_stage staged renames, $n_publish publishes; $staged staged before the first kill)"
