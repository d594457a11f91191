#!/usr/bin/env bash
# STORE/tmp does not grow without bound (issue 15, item 12, the store's
# side): --prune clears stale entries of tmp/, --dry-run lists them, and
# --verify-store keeps reporting tmp entries as notes.
#   Planted in tmp/ of a store holding busybox:
#     blob-<hex12>.<rnd>.tmp, index.json.<rnd>.tmp   temp files of killed writers: go
#     partial-<hex of a blob in blobs/>               its blob is complete: goes
#     partial-<hex>, written now                      may be resumed: stays
#     partial-<hex>, untouched for 2 days             abandoned: goes
#     a directory                                     not ours: stays
#   Then a killed run's row (what SIGKILL leaves: finished_at NULL), begun
#   3 days ago: a partial untouched for 2 days, younger than that run,
#   stays (the killed run may still resume it).
. "$(dirname "$0")/lib.sh"
rig_up
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir tmpclean)
store=$work/store
fetch_seeded "$store" "$work" library/busybox:1.36
t=$store/tmp
have=$(store_blobs "$store" | sed -n 1p)
hex_new=$(printf 'new partial %s' "$RANDOM" | sha256sum | cut -d' ' -f1)
hex_old=$(printf 'old partial %s' "$RANDOM" | sha256sum | cut -d' ' -f1)
head -c 3000 /dev/urandom >"$t/blob-0123456789ab.00112233aabbccdd.tmp"
echo '{}' >"$t/index.json.a1b2c3d4e5f60718.tmp"
head -c 1000 "$store/blobs/sha256/${have#sha256:}" >"$t/partial-${have#sha256:}"
head -c 2000 /dev/urandom >"$t/partial-$hex_new"
head -c 4000 /dev/urandom >"$t/partial-$hex_old"
touch -d '2 days ago' "$t/partial-$hex_old"
mkdir "$t/not-ours"
# Staging directories of imports that did not finish: one abandoned two
# days ago (goes, with its files), one of today (a rerun reuses it: stays).
mkdir "$t/import-0123456789abcdef0123456789abcdef" "$t/import-fedcba9876543210fedcba9876543210"
head -c 5000 /dev/urandom >"$t/import-0123456789abcdef0123456789abcdef/$hex_old"
head -c 700 /dev/urandom >"$t/import-0123456789abcdef0123456789abcdef/$hex_new"
touch -d '2 days ago' "$t/import-0123456789abcdef0123456789abcdef"/* \
    "$t/import-0123456789abcdef0123456789abcdef"
head -c 900 /dev/urandom >"$t/import-fedcba9876543210fedcba9876543210/$hex_old"
stale=("blob-0123456789ab.00112233aabbccdd.tmp" "index.json.a1b2c3d4e5f60718.tmp"
    "partial-${have#sha256:}" "partial-$hex_old" "import-0123456789abcdef0123456789abcdef")
kept=("partial-$hex_new" "not-ours" "import-fedcba9876543210fedcba9876543210")
listing() { (cd "$t" && ls -A | sort); }

verify() { # NAME: --verify-store exits 0; every tmp entry is a note
    RC=0
    "$EXPORT" --store "$store" --verify-store >"$work/$1.out" 2>&1 || RC=$?
    [ "$RC" = 0 ] || { show "$work/$1.out"; fail "$1: --verify-store exit $RC"; }
    local e
    for e in $(listing); do
        assert_grep "^info: tmp: tmp/$e " "$work/$1.out" "$1: the note for tmp/$e"
    done
}
verify verify-before

# --dry-run: lists the stale ones, removes nothing.
before=$(listing)
run_fetch "$work/dry" --store "$store" --prune --dry-run
expect_rc 0 "$work/dry" "--prune --dry-run"
for e in "${stale[@]}"; do
    assert_grep "^stale +tmp/$e " "$work/dry.out" "the dry run's line for $e"
done
for e in "${kept[@]}"; do
    assert_no_grep "tmp/$e" "$work/dry.out" "the dry run (about $e)"
done
assert_grep "would clear 5 tmp files" "$work/dry.out" "the dry run's summary"
assert_eq "$before" "$(listing)" "tmp/ after the dry run"

# --prune: removes them.
run_fetch "$work/prune" --store "$store" --prune
expect_rc 0 "$work/prune" "--prune"
assert_grep "cleared 5 tmp files" "$work/prune.out" "the prune's summary"
assert_eq "$(printf '%s\n' "${kept[@]}" | sort)" "$(listing)" "tmp/ after the prune"
verify verify-after
note "stale temp files and partials cleared; a fresh partial and a directory kept"

# A killed run (its runs row never finished) protects what it may resume.
now=$(date +%s)
db "$store" "INSERT INTO runs (started_at, argv) VALUES ($((now - 3 * 86400)), 'airlock-fetch (killed)')" >/dev/null
head -c 4000 /dev/urandom >"$t/partial-$hex_old"
touch -d '2 days ago' "$t/partial-$hex_old"
run_fetch "$work/prune2" --store "$store" --prune
expect_rc 0 "$work/prune2" "--prune after a killed run"
[ -f "$t/partial-$hex_old" ] || fail "the partial of a killed run's time went"
assert_grep "was interrupted" "$work/prune2.err" "the prune's note about the killed run"
note "a partial written after an interrupted run began stays"
note "ok"
