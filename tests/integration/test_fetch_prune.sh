#!/usr/bin/env bash
# Prune with retention:
#   - a tag moved twice (A -> B -> C): with --keep 1 only C and B remain,
#     A's own blobs go, blobs A shares with other tags stay, and an export
#     of NAME@B (a rollback) still works while NAME@A is gone;
#   - --dry-run lists what would go and changes nothing (files, rows);
#   - --keep 0 drops B too; --remove drops a tag and what only it used;
#   - a prune killed at its first unlink (strace injects SIGKILL there, so
#     that unlink never runs) has committed its database step: the rows are
#     gone, every file is still there (a stray one too), the store
#     verifies, and the next prune removes those files;
#   - the store verifies clean after every prune (every row has its file
#     with the right hash, every file a row, foreign keys hold, index.json
#     follows the tags).
. "$(dirname "$0")/lib.sh"
rig_up
EXPORT=$AL_BIN/airlock-export
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir prune)
store=$work/store
reg_args=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")
mv_repo=library/prune-moving-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
bb=docker.io/library/busybox:1.36

push_as() { # SRC-REF OUT.json: push SRC's image as $mv_repo:1
    python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" --as "$1=$mv_repo:1" \
        --out "$2" >/dev/null 2>&1 || fail "could not push $1 as $mv_repo:1"
}
graph_blobs() { jq -r '.images[].blobs[] | select(.attestation | not) | .digest' "$1" | sort -u; }
fetch_ok() { # NAME ARGS...: a fetch that must exit 0
    local out=$work/$1
    shift
    run_fetch "$out" --store "$store" "$@"
    expect_rc 0 "$out" "airlock-fetch $*"
}
# state: what a prune may change, to compare before and after.
state() {
    (cd "$store/blobs/sha256" && find . -type f -printf '%f %s %i\n' | sort)
    db "$store" "SELECT 'blob', digest, size FROM blobs ORDER BY digest"
    db "$store" "SELECT 'manifest', digest FROM manifests ORDER BY digest"
    db "$store" "SELECT 'edge', parent_digest, child_digest, kind, position FROM edges ORDER BY 2, 4, 5"
    db "$store" "SELECT 'tag', full_name, digest FROM tags ORDER BY full_name"
    cat "$store/index.json"
}

# verify_store: the store's invariants, checked with sqlite3 and sha256sum
# (and airlock-export --verify-store when it exists). Files without a row
# are allowed (a prune may have been cut short) and counted in $UNREFERENCED.
UNREFERENCED=0
verify_store() {
    local what=$1 d size hex f n=0
    UNREFERENCED=0
    while IFS='|' read -r d size; do
        hex=${d#sha256:}
        f=$store/blobs/sha256/$hex
        [ -f "$f" ] || fail "$what: blob row $d has no file"
        [ "$(stat -c %s "$f")" = "$size" ] || fail "$what: $d: file size differs from its row"
        [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$hex" ] || fail "$what: $d: content does not hash to its name"
        n=$((n + 1))
    done < <(db "$store" 'SELECT digest, size FROM blobs')
    for d in $(store_blobs "$store"); do
        [ "$(db "$store" "SELECT count(*) FROM blobs WHERE digest = '$d'")" = 1 ] ||
            UNREFERENCED=$((UNREFERENCED + 1))
    done
    local fk
    fk=$(db "$store" 'PRAGMA foreign_key_check')
    [ -z "$fk" ] || fail "$what: foreign keys broken: $fk"
    assert_eq "$(db "$store" 'SELECT count(*) FROM manifests WHERE config_digest IS NOT NULL AND config_digest NOT IN (SELECT digest FROM blobs)')" 0 "$what: configs without rows"
    assert_eq "$(db "$store" 'SELECT digest FROM tags ORDER BY full_name' | tr '\n' ' ')" \
        "$(jq -r '.manifests | sort_by(.annotations["io.containerd.image.name"]) | .[].digest' "$store/index.json" | tr '\n' ' ')" \
        "$what: index.json digests"
    if "$EXPORT" --help 2>&1 | matches -- --verify-store; then
        "$EXPORT" --store "$store" --verify-store >"$work/verify.out" 2>&1 ||
            { show "$work/verify.out"; fail "$what: airlock-export --verify-store"; }
    fi
    note "$what: store verifies ($n blobs, $UNREFERENCED files without a row)"
}

# 1. Build the history: busybox and a tag that moves twice -------------------
push_as library/amd-only:1 "$work/A.json"
fetch_ok f1 "${reg_args[@]}" "$mv_repo:1" busybox:1.36
push_as library/arm-only:1 "$work/B.json"
fetch_ok f2 "${reg_args[@]}" "$mv_repo:1"
push_as library/alpine-ish:3.19 "$work/C.json"
fetch_ok f3 "${reg_args[@]}" "$mv_repo:1"
A=$(jq -r '.images[].digest' "$work/A.json")
B=$(jq -r '.images[].digest' "$work/B.json")
C=$(jq -r '.images[].digest' "$work/C.json")
[ "$A" != "$B" ] && [ "$B" != "$C" ] && [ "$A" != "$C" ] || fail "test setup: the tag did not move twice"
assert_eq moved "$(word_for "$work/f3.out" "$mv_name")" "third fetch"
assert_eq 3 "$(db "$store" "SELECT count(*) FROM tag_history WHERE full_name = '$mv_name'")" "history rows"
graph_blobs "$work/A.json" >"$work/A.blobs"
graph_blobs "$work/B.json" >"$work/B.blobs"
graph_blobs "$work/C.json" >"$work/C.blobs"
seed_blobs library/busybox:1.36 | sort -u >"$work/bb.blobs"
sort -u "$work/B.blobs" "$work/C.blobs" "$work/bb.blobs" >"$work/BCbb.blobs"
comm -23 "$work/A.blobs" "$work/BCbb.blobs" >"$work/A-only.blobs"
comm -12 "$work/A.blobs" "$work/bb.blobs" >"$work/A-shared.blobs"
[ -s "$work/A-only.blobs" ] || fail "test setup: A has no blob of its own"
[ -s "$work/A-shared.blobs" ] || fail "test setup: A shares no blob with busybox"
verify_store "before any prune"

# 2. --dry-run changes nothing --------------------------------------------------
state >"$work/state0"
run_fetch "$work/dry" --store "$store" --prune --keep 1 --dry-run --json "$work/dry.json"
expect_rc 0 "$work/dry" "prune --dry-run"
assert_eq "$(cat "$work/state0")" "$(state)" "store after --dry-run"
assert_eq "$(cat "$work/A-only.blobs")" "$(awk '$1 == "prunable" { print $2 }' "$work/dry.out" | sort)" "blobs --dry-run lists"
assert_grep "^dry run: would prune $(wc -l <"$work/A-only.blobs" | tr -d ' ') blobs, " "$work/dry.out" "dry-run summary"
assert_eq "true 1 1" "$(jq -r '.prune | "\(.dry_run) \(.keep) \(.earlier_graphs_kept)"' "$work/dry.json")" "dry-run report"
if python3 -c 'import jsonschema' 2>/dev/null; then
    python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/fetch-report.schema.json" "$work/dry.json" ||
        fail "the prune report does not validate"
fi

# 3. --keep 1: C and B stay, A goes, shared blobs stay ------------------------
cp -a "$store/blobs/sha256" "$work/blobs-before"
run_fetch "$work/keep1" --store "$store" --prune --keep 1
expect_rc 0 "$work/keep1" "prune --keep 1"
for d in $(cat "$work/B.blobs" "$work/C.blobs" "$work/bb.blobs"); do
    store_has_blob "$store" "$d" || fail "--keep 1 removed $d, a blob of B, C or busybox"
done
for d in $(cat "$work/A-only.blobs"); do
    store_has_blob "$store" "$d" && fail "--keep 1 kept $d, a blob only A used"
    assert_eq 0 "$(db "$store" "SELECT count(*) FROM blobs WHERE digest = '$d'")" "row of pruned $d"
done
assert_eq 0 "$(db "$store" "SELECT count(*) FROM manifests WHERE digest = '$A'")" "manifest row of A"
assert_eq 1 "$(db "$store" "SELECT count(*) FROM manifests WHERE digest = '$B'")" "manifest row of B"
assert_eq 3 "$(db "$store" "SELECT count(*) FROM tag_history WHERE full_name = '$mv_name'")" "history rows after a prune"
assert_grep "^pruned $(wc -l <"$work/A-only.blobs" | tr -d ' ') blobs, " "$work/keep1.out" "prune summary"
verify_store "after --keep 1"
assert_eq 0 "$UNREFERENCED" "files without a row after --keep 1"
# A rollback export of B works; A is gone.
"$EXPORT" --store "$store" --platform linux/arm64 -o "$work/rollback.tar" "$mv_repo@$B" \
    >"$work/rb.out" 2>&1 || { show "$work/rb.out"; fail "export of the previous digest $mv_repo@$B"; }
if "$EXPORT" --store "$store" --platform linux/amd64 -o "$work/gone.tar" "$mv_repo@$A" >"$work/gone.out" 2>&1; then
    fail "export of the pruned digest $mv_repo@$A succeeded"
fi
# Nothing more to prune.
run_fetch "$work/again" --store "$store" --prune --keep 1
expect_rc 0 "$work/again" "second prune"
assert_grep '^pruned 0 blobs, ' "$work/again.out" "second prune summary"

# 4. A prune killed between the database and the files ---------------------------
# The real process, killed on entry to its first unlink (the kernel never
# runs it): the database step must be committed by then, rows gone and
# files all there (DESIGN.md, "Crash rules"; README, "Prune"). The store
# also holds a stray file, a download whose row never came.
strace -f -qq -o /dev/null -e trace=none true 2>/dev/null ||
    skip "strace cannot trace here (ptrace refused?): cannot kill a prune at its first unlink"
comm -23 "$work/B.blobs" <(sort -u "$work/C.blobs" "$work/bb.blobs") >"$work/B-only.blobs"
[ -s "$work/B-only.blobs" ] || fail "test setup: B has no blob of its own"
for d in $(cat "$work/B-only.blobs"); do
    store_has_blob "$store" "$d" || fail "test setup: $d, a blob only B uses, is not in the store"
done
printf 'stray' >"$work/stray"
stray=sha256:$(sha256sum "$work/stray" | cut -d' ' -f1)
cp "$work/stray" "$store/blobs/sha256/${stray#sha256:}"
# The files are dated an hour back, as in a store used for a while: the
# killed prune's unfinished run protects what was written after it started
# (README, "Prune"), and this test runs faster than that rule's 2 s of slack.
touch -d '1 hour ago' "$store"/blobs/sha256/*
RC=0
# (in braces, so that bash's "Killed" goes to keep0.err too)
{ ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -o /dev/null \
    -e trace=unlink,unlinkat -e inject=unlink,unlinkat:signal=KILL:when=1 \
    "$FETCH" --store "$store" --prune --keep 0 >"$work/keep0.out"; } 2>"$work/keep0.err" || RC=$?
[ "$RC" = 137 ] || { show "$work/keep0.out"; show "$work/keep0.err"; fail "the prune was not killed at an unlink (exit $RC)"; }
assert_eq 0 "$(db "$store" "SELECT count(*) FROM manifests WHERE digest = '$B'")" "manifest row of B after the killed prune"
for d in $(cat "$work/B-only.blobs"); do
    assert_eq 0 "$(db "$store" "SELECT count(*) FROM blobs WHERE digest = '$d'")" "row of $d after the killed prune"
    store_has_blob "$store" "$d" || fail "the killed prune removed $d: it unlinked before it was killed"
done
store_has_blob "$store" "$stray" || fail "the killed prune removed the stray file: it unlinked before it was killed"
# Its run row stays unfinished: the record of a run that never ended.
killed_run=$(db "$store" 'SELECT max(id) FROM runs')
assert_eq 1 "$(db "$store" "SELECT count(*) FROM runs WHERE id = $killed_run AND finished_at IS NULL")" "run row of the killed prune"
verify_store "after a prune killed at its first unlink"
assert_eq "$(($(wc -l <"$work/B-only.blobs") + 1))" "$UNREFERENCED" "files without a row (B's own and the stray)"
# The next prune removes them all.
run_fetch "$work/sweep" --store "$store" --prune --keep 0 --json "$work/sweep.json"
expect_rc 0 "$work/sweep" "prune after a cut prune"
assert_eq "$(($(wc -l <"$work/B-only.blobs") + 1))" "$(jq .prune.stray_files "$work/sweep.json")" "stray files removed"
store_has_blob "$store" "$stray" && fail "the stray file is still there"
for d in $(cat "$work/B-only.blobs"); do
    store_has_blob "$store" "$d" && fail "$d, left by the killed prune, is still there"
done
verify_store "after the sweep"
assert_eq 0 "$UNREFERENCED" "files without a row after the sweep"

# 5. --remove: a tag and what only it used ---------------------------------------
comm -23 "$work/bb.blobs" "$work/C.blobs" >"$work/bb-only.blobs"
comm -12 "$work/bb.blobs" "$work/C.blobs" >"$work/bb-shared.blobs"
run_fetch "$work/rm-dry" --store "$store" --remove busybox:1.36 --dry-run
expect_rc 0 "$work/rm-dry" "--remove --dry-run"
assert_eq "$bb" "$(db "$store" "SELECT full_name FROM tags WHERE full_name = '$bb'")" "busybox tag after --dry-run"
run_fetch "$work/rm" --store "$store" --remove busybox:1.36 --remove "library/never-fetched-$$:1"
expect_rc 1 "$work/rm" "--remove of a tag and of an unknown one"
assert_eq "removed" "$(word_for "$work/rm.out" "$bb")" "result of the removed tag"
assert_eq "FAILED" "$(word_for "$work/rm.out" "docker.io/library/never-fetched-$$:1")" "result of the unknown tag"
assert_eq "" "$(db "$store" "SELECT full_name FROM tags WHERE full_name = '$bb'")" "busybox tag after --remove"
for d in $(cat "$work/bb-only.blobs"); do
    store_has_blob "$store" "$d" && fail "--remove kept $d, a blob only busybox used"
done
for d in $(cat "$work/bb-shared.blobs" "$work/C.blobs"); do
    store_has_blob "$store" "$d" || fail "--remove took $d, which C still uses"
done
assert_eq 0 "$(jq --arg n "$bb" '[.manifests[] | select(.annotations["io.containerd.image.name"] == $n)] | length' "$store/index.json")" "index.json entries of the removed tag"
verify_store "after --remove"
# The current graph still exports.
"$EXPORT" --store "$store" --platform linux/amd64 -o "$work/current.tar" "$mv_repo:1" \
    >"$work/cur.out" 2>&1 || { show "$work/cur.out"; fail "export of the current tag after the prunes"; }

# 6. Fetch and prune in one run: the tag moves back to A, C goes -------------------
push_as library/amd-only:1 "$work/A2.json"
fetch_ok both "${reg_args[@]}" "$mv_repo:1" --prune --keep 0
assert_eq moved "$(word_for "$work/both.out" "$mv_name")" "fetch+prune: the tag moved back"
assert_grep '^pruned [1-9][0-9]* blobs, ' "$work/both.out" "fetch+prune: prune summary after the results"
for d in $(cat "$work/A.blobs"); do
    store_has_blob "$store" "$d" || fail "fetch+prune: blob $d of the current graph is missing"
done
for d in $(comm -23 "$work/C.blobs" "$work/A.blobs"); do
    store_has_blob "$store" "$d" && fail "fetch+prune --keep 0 kept $d of the previous graph"
done
verify_store "after fetch+prune"

# 7. Usage -------------------------------------------------------------------------
run_fetch "$work/u1" --store "$store" --keep 2
expect_rc 2 "$work/u1" "--keep without --prune"
run_fetch "$work/u2" --store "$store" --dry-run busybox:1.36
expect_rc 2 "$work/u2" "--dry-run without --prune"
# Prune-only runs are recorded like any other.
assert_eq 0 "$(db "$store" "SELECT count(*) FROM runs WHERE argv LIKE '%--prune%' AND finished_at IS NULL AND id != $killed_run")" "unfinished prune runs (but the killed one)"

note "ok"
