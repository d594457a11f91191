#!/usr/bin/env bash
# Failures:
#   - images missing from the registry: exit 1, the others are stored, the
#     FAILED line names the ref and says 404 / not found;
#   - bad lines in a list: exit 2, "FILE:LINE: ..." for each, no request
#     reaches the registry, nothing is stored;
#   - a corrupt blob served by the registry: exit 1, the image FAILED with a
#     digest error, no file, no blobs row and no tag for it.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir errors)
reg_args=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")

# 1. Missing images ------------------------------------------------------------
good=(library/busybox:1.36 rancher/mirrored-pause:3.6 calico/node:v3.28.0)
missing=(library/does-not-exist:1 library/busybox:0.0-missing)
list=$work/missing.txt
printf '%s\n' "${good[0]}" "${missing[0]}" "${good[1]}" "${missing[1]}" "${good[2]}" >"$list"
store=$work/store
run_fetch "$work/miss" --store "$store" -f "$list" "${reg_args[@]}"
expect_rc 1 "$work/miss" "fetch with missing images"
for k in "${good[@]}"; do
    name=$(seed_name "$k")
    assert_eq ok "$(word_for "$work/miss.out" "$name")" "result of $name next to missing ones"
    assert_eq "$(seed_digest "$k")" "$(db "$store" "SELECT digest FROM tags WHERE full_name = '$name'")" \
        "tag row of $name"
    for d in $(seed_blobs "$k"); do
        store_has_blob "$store" "$d" || fail "$name: blob $d missing"
    done
done
for k in "${missing[@]}"; do
    name=docker.io/$k
    line=$(line_for "$work/miss.out" "$name")
    [ -n "$line" ] || { show "$work/miss.out"; fail "no result line for $name"; }
    assert_eq FAILED "$(awk '{print $1}' <<<"$line")" "result word of $name"
    grep -qiE '404|not found|unknown' <<<"$line" || fail "the FAILED line does not say 404/not found: $line"
    assert_eq 0 "$(db "$store" "SELECT count(*) FROM tags WHERE full_name = '$name'")" "tag row of $name"
done
assert_eq "${#good[@]}" "$(jq '.manifests | length' "$store/index.json")" "index.json entries"
assert_blobs_match_registry "$store" "$AL_REG_PLAIN_STORAGE"

# 2. Bad list lines: refused before any network traffic ----------------------
bad=$work/bad-list.txt
cat >"$bad" <<'EOF'
# line 1: a comment
busybox:1.36
Bad/Upper:1
rancher/mirrored-pause:3.6
docker.io/library/busybox:bad tag
calico/node:v3.28.0
EOF
store_bad=$work/store-bad
mark=$(log_mark "$AL_REG_PLAIN_LOG")
run_fetch "$work/bad" --store "$store_bad" -f "$bad" "${reg_args[@]}"
expect_rc 2 "$work/bad" "fetch of a list with bad lines"
cat "$work/bad.out" "$work/bad.err" >"$work/bad.all"
assert_grep "bad-list\.txt:3: " "$work/bad.all" "message for line 3"
assert_grep "bad-list\.txt:5: " "$work/bad.all" "message for line 5 (every problem is reported)"
assert_no_grep "bad-list\.txt:(2|4|6): " "$work/bad.all" "messages for good lines"
sleep 0.3
assert_eq "$mark" "$(log_mark "$AL_REG_PLAIN_LOG")" "registry log lines after a refused list"
if [ -d "$store_bad" ]; then
    assert_eq "" "$(store_blobs "$store_bad")" "blobs after a refused list"
    if [ -f "$store_bad/airlock.db" ]; then
        assert_eq 0 "$(db "$store_bad" 'SELECT count(*) FROM tags')" "tags after a refused list"
        assert_eq 0 "$(db "$store_bad" 'SELECT count(*) FROM blobs')" "blobs rows after a refused list"
    fi
fi
# The same problem given as an argument is refused too.
run_fetch "$work/badarg" --store "$store_bad" "${reg_args[@]}" busybox:1.36 'Bad/Upper:1'
expect_rc 2 "$work/badarg" "fetch with a bad argument"
sleep 0.3
assert_eq "$mark" "$(log_mark "$AL_REG_PLAIN_LOG")" "registry log lines after a refused argument"
# A list file that does not exist is a usage error as well.
run_fetch "$work/nolist" --store "$store_bad" -f "$work/no-such-list.txt" "${reg_args[@]}"
expect_rc 2 "$work/nolist" "fetch with a missing list file"
cat "$work/nolist.out" "$work/nolist.err" >"$work/nolist.all"
assert_grep "no-such-list\.txt" "$work/nolist.all" "message for a missing list file"

# 3. A corrupt blob -----------------------------------------------------------
# library/victim:1 has a text layer that no other seeded image uses. One
# byte is flipped in the registry's copy (same size), and put back on exit.
victim_ref=library/victim:1
victim=$(seed '[.images[].blobs[]] | group_by(.digest)[] | select(length == 1) | .[0]
    | select(.kind == "layer") | .digest' | while read -r d; do
    if seed_blobs "$victim_ref" 'true' | matches -x "$d"; then echo "$d"; fi
done | sed -n 1p)
[ -n "$victim" ] || fail "test setup: no blob used by $victim_ref alone"
data=$(blob_in_registry "$AL_REG_PLAIN_STORAGE" "$victim")
assert_file "$data" "registry data of $victim"
cp "$data" "$work/victim.orig"
on_exit "cp '$work/victim.orig' '$data'"
python3 - "$data" <<'EOF'
import sys
p = sys.argv[1]
with open(p, "r+b") as f:
    b = bytearray(f.read())
    b[len(b) // 2] ^= 0x5A
    f.seek(0)
    f.write(b)
EOF
cmp -s "$data" "$work/victim.orig" && fail "test setup: the byte was not flipped"
store_c=$work/store-corrupt
run_fetch "$work/corrupt" --store "$store_c" "${reg_args[@]}" "$victim_ref" busybox:1.36
expect_rc 1 "$work/corrupt" "fetch of a corrupt blob"
name=$(seed_name "$victim_ref")
line=$(line_for "$work/corrupt.out" "$name")
assert_eq FAILED "$(awk '{print $1}' <<<"$line")" "result word of the image with a corrupt blob"
grep -qiE 'digest|mismatch|corrupt' <<<"$line" || fail "the FAILED line does not name the digest problem: $line"
assert_eq ok "$(word_for "$work/corrupt.out" docker.io/library/busybox:1.36)" "the image next to it"
store_has_blob "$store_c" "$victim" && fail "the corrupt blob was stored"
assert_eq 0 "$(db "$store_c" "SELECT count(*) FROM blobs WHERE digest = '$victim'")" "blobs row of the corrupt blob"
assert_eq 0 "$(db "$store_c" "SELECT count(*) FROM tags WHERE full_name = '$name'")" "tag row of the corrupt image"
assert_eq 0 "$(db "$store_c" "SELECT count(*) FROM manifests WHERE digest = '$(seed_digest "$victim_ref")'")" \
    "manifest row of the corrupt image"
# What was stored is sound.
for d in $(store_blobs "$store_c"); do
    assert_eq "${d#sha256:}" "$(sha256sum "$store_c/blobs/sha256/${d#sha256:}" | cut -d' ' -f1)" "hash of $d"
done
cp "$work/victim.orig" "$data"

note "ok"
