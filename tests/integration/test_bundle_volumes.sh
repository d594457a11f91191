#!/usr/bin/env bash
# Bundles in volumes, --check, and the chain rule beyond a straight line:
#   1. --volume-size 1M writes OUT.001 ... each smaller than 1 MiB, each a
#      zstd tar that starts with its volume header; a layer larger than a
#      volume is cut into parts, each a member named by its own digest;
#   2. --check of any one volume, or of the stem, checks the whole set once
#      (every member's digest and size, every volume there); a volume alone
#      in a directory is read whole (its own members pass) and the others
#      are named missing;
#   3. the volumes import into an empty store (naming any volume): the
#      split layer joined is byte-identical; --verify-store clean;
#   4. --since an inventory of the far store (airlock-export --list --json
#      run there): the bundle builds on no bundle, lists what it omits,
#      and applies; into a store that lacks what it omits it is refused,
#      naming the blobs;
#   5. a bundle older than the last applied from its store is refused,
#      naming the later one.
. "$(dirname "$0")/lib.sh"
rig_up
need zstd
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir vol)
mv_repo=library/bundle-vol-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/amd-only:1=$mv_repo:1" --out "$work/mv1.json" >/dev/null 2>&1 || fail "pushing $mv_repo:1"
list=$work/images.txt
printf '%s\n' library/busybox:1.36 rancher/mirrored-pause:3.6 "$mv_repo:1" >"$list"
conn=$work/connected
fetch_seeded "$conn" "$work" -f "$list"

# 1. Volumes -----------------------------------------------------------------------
out=$work/nightly.tar.zst
run_export "$work/b" --store "$conn" --all --bundle "$out" --volume-size 1M
expect_rc 0 "$work/b" "--bundle --volume-size 1M"
nv=$(jq .volumes "$out.json")
[ "$nv" -ge 3 ] || fail "expected several volumes, got $nv"
for k in $(seq 1 "$nv"); do
    f=$(printf '%s.%03d' "$out" "$k")
    assert_file "$f" "volume $k"
    assert_le 1048575 "$(stat -c %s "$f")" "size of volume $k"
    zstd -dc "$f" | tar -t >"$work/v$k.list" || fail "volume $k is not a tar.zst"
    assert_eq airlock-volume.json "$(head -1 "$work/v$k.list")" "first member of volume $k"
done
[ ! -e "$(printf '%s.%03d' "$out" $((nv + 1)))" ] || fail "a volume beyond $nv"
assert_eq airlock-bundle.json "$(sed -n 2p "$work/v1.list")" "second member of volume 1"
split=$(jq -r '.blobs[] | select(.parts) | .digest' "$out.json" | sed -n 1p)
[ -n "$split" ] || fail "no blob was cut into parts"
for p in $(jq -r --arg d "$split" '.blobs[] | select(.digest == $d) | .parts[].digest' "$out.json"); do
    cat "$work"/v*.list | matches -x "blobs/sha256/${p#sha256:}" || fail "part $p is no member"
done
cat "$work"/v*.list | matches -x "blobs/sha256/${split#sha256:}" && fail "the split blob is a member whole too"

# A bundle that fits in one volume is still OUT.001, with its header.
run_export "$work/b1v" --store "$conn" rancher/mirrored-pause:3.6 --bundle "$work/one.tar" --volume-size 1M
expect_rc 0 "$work/b1v" "a small bundle with --volume-size"
assert_file "$work/one.tar.001" "its only volume"
[ ! -e "$work/one.tar" ] && [ ! -e "$work/one.tar.002" ] || fail "a small bundle with --volume-size: files other than OUT.001"
run_export "$work/c1v" --check "$work/one.tar.001"
expect_rc 0 "$work/c1v" "--check of a one-volume bundle"
run_fetch "$work/i1v" --store "$work/one-store" --import "$work/one.tar"
expect_rc 0 "$work/i1v" "import of a one-volume bundle, named by its stem"

# 2. --check ----------------------------------------------------------------------
run_export "$work/c2" --check "$out.002"
expect_rc 0 "$work/c2" "--check of volume 2"
assert_grep "^$out.002: ok: bundle archive .*\\(complete, $nv volumes\\); 0 problems" "$work/c2.out" "--check of volume 2"
run_export "$work/cs" --check "$out"
expect_rc 0 "$work/cs" "--check of the stem"
run_export "$work/call" --check "$out".0*
expect_rc 0 "$work/call" "--check of every volume"
assert_eq 1 "$(grep -c ': ok: bundle' "$work/call.out")" "results for every volume named (checked once)"
alone=$(tmpdir alone)
cp "$out.002" "$alone/"
run_export "$work/ca" --check "$alone/$(basename "$out").002"
expect_rc 1 "$work/ca" "--check of a volume alone"
assert_eq "$((nv - 1))" "$(grep -c 'is missing$' "$work/ca.out")" "missing volumes named"
assert_no_grep 'blobs/sha256/.*(hashes|bytes;|not listed)' "$work/ca.out" "the lone volume's own members"

# 3. Import --------------------------------------------------------------------------
far=$work/far
run_fetch "$work/i" --store "$far" --import "$out.003"
expect_rc 0 "$work/i" "import naming volume 3"
cmp -s "$conn/blobs/sha256/${split#sha256:}" "$far/blobs/sha256/${split#sha256:}" || fail "the split blob differs"
assert_eq "$(store_blobs "$conn" | sort)" "$(store_blobs "$far" | sort)" "blobs of the far store"
run_export "$work/v" --store "$far" --verify-store
expect_rc 0 "$work/v" "--verify-store"
assert_no_grep '^info' "$work/v.out" "notes after the import"

# 4. --since an inventory ------------------------------------------------------------------
run_export "$work/inv" --store "$far" --list --json "$work/inventory.json"
expect_rc 0 "$work/inv" "--list --json of the far store"
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/arm-only:1=$mv_repo:1" --out "$work/mv2.json" >/dev/null 2>&1 || fail "moving $mv_repo:1"
fetch_seeded "$conn" "$work" -f "$list"
run_export "$work/bi" --store "$conn" --all --bundle "$work/inv.tar" --since "$work/inventory.json"
expect_rc 0 "$work/bi" "--bundle --since an inventory"
assert_eq "null inventory" "$(jq -r '"\(.base_bundle) \(.since)"' "$work/inv.tar.json")" "base and since of it"
[ "$(jq '.omitted | length' "$work/inv.tar.json")" -gt 0 ] || fail "it omits nothing"
empty=$work/empty
run_fetch "$work/ie" --store "$empty" --import "$work/inv.tar"
expect_rc 1 "$work/ie" "the inventory's bundle into another store"
assert_grep "error: bundle [0-9a-f]{32} omits [0-9]+ blobs? this store lacks \\(sha256:[0-9a-f]{64}" "$work/ie.err" "refusal"
assert_eq 0 "$(db "$empty" 'SELECT count(*) FROM tags')" "tags of the store that refused it"
run_fetch "$work/ii" --store "$far" --import "$work/inv.tar"
expect_rc 0 "$work/ii" "the inventory's bundle into the far store"
assert_eq moved "$(word_for "$work/ii.out" "$mv_name")" "the moved tag"

# 5. Older than the last one applied -------------------------------------------------------
run_export "$work/bo1" --store "$conn" --all --bundle "$work/older.tar"
expect_rc 0 "$work/bo1" "a complete bundle"
run_export "$work/bo2" --store "$conn" --all --bundle "$work/newer.tar"
expect_rc 0 "$work/bo2" "a later complete bundle"
run_fetch "$work/in" --store "$far" --import "$work/newer.tar"
expect_rc 0 "$work/in" "the later one"
run_fetch "$work/io" --store "$far" --import "$work/older.tar"
expect_rc 1 "$work/io" "the earlier one after it"
assert_grep "error: bundle $(jq -r .bundle_id "$work/older.tar.json") \\(made .*\\) is older than bundle $(jq -r .bundle_id "$work/newer.tar.json")" \
    "$work/io.err" "refusal of the older bundle"
note ok
