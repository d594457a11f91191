#!/usr/bin/env bash
# Nothing planted in the store or beside an output is ever written through
# (issue 15, items 1 and 2), and two exports to one OUT do not clobber
# each other:
#   1. a symlink at STORE/tmp/partial-<hex> of a layer the fetch needs, and
#      a hard link at another layer's partial, both to victim files: the
#      victims are untouched, the fetch stores the right blobs, blobs/
#      holds regular files only, and it says what it removed;
#   2. a symlink in blobs/sha256 named by a blob the fetch needs, pointing
#      at a file with the right content: not taken as the blob; the fetch
#      replaces the link with the real file, the target is untouched;
#   3. a symlink at STORE/lock: the fetch refuses the store (exit 3) and
#      the target is untouched;
#   4. airlock-export with a symlink planted at OUT.partial (the temp name
#      of earlier versions) and at OUT itself: the victims are untouched;
#      without --force a planted OUT is "exists" (exit 1); with --force the
#      link itself is replaced by the tarball;
#   5. two exports to one OUT at once, without --force, three times: exactly
#      one wins (exit 0), the other fails clearly (exit 1, "exists"), and
#      OUT is one complete tarball whose every blob hashes to its name.
. "$(dirname "$0")/lib.sh"
rig_up
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir planted)
reg_args=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")
ref=library/alpine-ish:3.19
name=docker.io/$ref

# victim FILE: a file that must keep its bytes and inode.
victim() {
    printf 'victim %s: must never be written\n' "$1" >"$1"
    stat -c '%i %s %Y' "$1" >"$1.stat"
    sha256sum "$1" | cut -d' ' -f1 >"$1.sum"
}
assert_victim() {
    [ -f "$1" ] || fail "victim $1 is gone"
    assert_eq "$(cat "$1.sum")" "$(sha256sum "$1" | cut -d' ' -f1)" "content of victim $1"
    assert_eq "$(cat "$1.stat")" "$(stat -c '%i %s %Y' "$1")" "inode, size, mtime of victim $1"
}
assert_no_symlinks() { # DIR WHAT
    local links
    links=$(find "$1" -type l | sed -n 1,5p)
    [ -z "$links" ] || fail "$2: symlinks in $1: $links"
}
# verify_tarball TAR: every blob in it hashes to its name, and every file
# manifest.json names is in it.
verify_tarball() {
    local t=$1 d n=0 f
    d=$(mktemp -d "$work/untar.XXXXXX")
    tar -xf "$t" -C "$d" || fail "$t is not a readable tarball"
    for f in "$d"/blobs/sha256/*; do
        [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "$t: $(basename "$f") does not hash to its name"
        n=$((n + 1))
    done
    [ "$n" -gt 0 ] || fail "$t holds no blobs"
    for f in $(jq -r '.[] | .Config, .Layers[]' "$d/manifest.json"); do
        [ -f "$d/$f" ] || fail "$t: manifest.json names $f, which is not in it"
    done
    rm -rf "$d"
}

# 1. Links planted at partial downloads -----------------------------------------
store=$work/store
run_fetch "$work/init" --store "$store" --prune # creates the layout, fetches nothing
expect_rc 0 "$work/init" "airlock-fetch --prune on a new store"
mapfile -t layers < <(seed_blobs "$ref" '.kind == "layer"')
[ "${#layers[@]}" -ge 2 ] || fail "$ref has fewer than 2 layers"
victim "$work/victim-sym"
victim "$work/victim-hard"
ln -s "$work/victim-sym" "$store/tmp/partial-${layers[0]#sha256:}"
ln "$work/victim-hard" "$store/tmp/partial-${layers[1]#sha256:}"
fetch_seeded "$store" "$work" "$ref"
assert_victim "$work/victim-sym"
assert_victim "$work/victim-hard"
for l in "${layers[@]}"; do
    f=$store/blobs/sha256/${l#sha256:}
    [ -f "$f" ] && [ ! -L "$f" ] || fail "layer $l is not a regular file in blobs/"
    cmp -s "$f" "$(blob_in_registry "$AL_REG_PLAIN_STORAGE" "$l")" || fail "layer $l differs from the registry's"
done
assert_no_symlinks "$store/blobs" "after fetching over planted partials"
[ ! -e "$store/tmp/partial-${layers[0]#sha256:}" ] || fail "the planted symlink is still in tmp/"
assert_grep "partial-${layers[0]#sha256:} is not a partial download of airlock's" "$work/fetch.err" \
    "the fetch's warning about the planted symlink"
note "1: planted symlink and hard link at tmp/partial-*: victims untouched, blobs stored"

# 2. A symlink in blobs/sha256 ----------------------------------------------------
store2=$work/store2
run_fetch "$work/init2" --store "$store2" --prune
expect_rc 0 "$work/init2" "airlock-fetch --prune on a new store"
cp "$(blob_in_registry "$AL_REG_PLAIN_STORAGE" "${layers[1]}")" "$work/lookalike"
victim_sum=$(sha256sum "$work/lookalike" | cut -d' ' -f1)
ln -s "$work/lookalike" "$store2/blobs/sha256/${layers[1]#sha256:}"
fetch_seeded "$store2" "$work" "$ref"
f=$store2/blobs/sha256/${layers[1]#sha256:}
[ -f "$f" ] && [ ! -L "$f" ] || fail "the symlink in blobs/ was taken for the blob"
assert_eq "$victim_sum" "$(sha256sum "$work/lookalike" | cut -d' ' -f1)" "the symlink's target"
assert_no_symlinks "$store2/blobs" "after fetching over a planted blob symlink"
note "2: a symlink named by a blob is replaced by the real file, never read as the blob"

# 3. A symlink at STORE/lock --------------------------------------------------------
victim "$work/victim-lock"
rm "$store2/lock"
ln -s "$work/victim-lock" "$store2/lock"
run_fetch "$work/lock" --store "$store2" "${reg_args[@]}" "$ref"
expect_rc 3 "$work/lock" "airlock-fetch with a symlink at STORE/lock"
assert_grep "lock is a symbolic link" "$work/lock.err" "the refusal"
assert_victim "$work/victim-lock"
note "3: a symlink at STORE/lock: store refused, target untouched"

# 4. Export: links planted at OUT.partial and OUT -----------------------------------
out=$work/out
mkdir -p "$out"
victim "$work/victim-partial"
ln -s "$work/victim-partial" "$out/img.tar.partial"
run_export "$work/exp1" --store "$store" --platform linux/amd64 -o "$out/img.tar" "$ref"
expect_rc 0 "$work/exp1" "airlock-export with a symlink at OUT.partial"
assert_victim "$work/victim-partial"
[ -f "$out/img.tar" ] && [ ! -L "$out/img.tar" ] || fail "OUT is not a regular file"
verify_tarball "$out/img.tar"
[ -z "$(find "$out" -name 'img.tar.*.partial')" ] || fail "a temp file is left beside OUT"

victim "$work/victim-out"
ln -s "$work/victim-out" "$out/planted.tar"
run_export "$work/exp2" --store "$store" --platform linux/amd64 -o "$out/planted.tar" "$ref"
expect_rc 1 "$work/exp2" "airlock-export onto a planted OUT without --force"
assert_grep "planted.tar exists" "$work/exp2.err" "the refusal"
assert_victim "$work/victim-out"
[ -L "$out/planted.tar" ] || fail "the planted OUT was changed without --force"
run_export "$work/exp3" --store "$store" --platform linux/amd64 --force -o "$out/planted.tar" "$ref"
expect_rc 0 "$work/exp3" "airlock-export --force onto a planted OUT"
assert_victim "$work/victim-out"
[ -f "$out/planted.tar" ] && [ ! -L "$out/planted.tar" ] || fail "--force left the planted link at OUT"
verify_tarball "$out/planted.tar"
note "4: symlinks at OUT.partial and OUT: victims untouched"

# 5. Two exports to one OUT at once ---------------------------------------------------
python3 "$AL_SRC/tests/infra/push-layers.py" --registry "$AL_REG_PLAIN" --repo airlock-test/race \
    --tag 1 --sizes 4x4000000 --seed 5 --out "$work/race.json" 2>"$work/push.err" ||
    { show "$work/push.err"; fail "could not push airlock-test/race:1"; }
fetch_seeded "$store" "$work" airlock-test/race:1
for round in 1 2 3; do
    t=$out/race-$round.tar
    rc_a=0 rc_b=0
    "$EXPORT" --store "$store" --platform linux/amd64 -o "$t" airlock-test/race:1 \
        >"$work/ra.out" 2>"$work/ra.err" &
    pa=$!
    "$EXPORT" --store "$store" --platform linux/amd64 -o "$t" airlock-test/race:1 \
        >"$work/rb.out" 2>"$work/rb.err" &
    pb=$!
    wait "$pa" || rc_a=$?
    wait "$pb" || rc_b=$?
    case "$rc_a $rc_b" in
    "0 1") loser=$work/rb.err ;;
    "1 0") loser=$work/ra.err ;;
    *)
        show "$work/ra.err"
        show "$work/rb.err"
        fail "round $round: exits $rc_a and $rc_b, expected one 0 and one 1"
        ;;
    esac
    assert_grep "race-$round.tar exists" "$loser" "the losing export's message"
    verify_tarball "$t"
    [ -z "$(find "$out" -name "race-$round.tar.*.partial")" ] || fail "round $round: a temp file is left"
done
note "5: two exports to one OUT: one wins, the other says OUT exists, OUT verifies"
note "ok"
