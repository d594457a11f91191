#!/usr/bin/env bash
# airlock-export on bad input: each error says what is wrong, exits with the
# documented status, and leaves neither OUT nor OUT.partial behind.
#   - refs not in the store: every one is listed (args and -f list), exit 1;
#   - a platform an image lacks: the message lists the platforms it has;
#   - a corrupted store blob (one byte flipped): the message names the blob's
#     digest and the image, exit 1; a truncated one even with --no-verify;
#   - unwritable output: a directory on a read-only bind mount, or a "directory"
#     that is a regular file: exit 1, the path and the reason;
#   - -o - writes the tarball to stdout (tar t reads it; the same bytes as -o FILE);
#   - usage errors (bad flag, bad value, bad ref, bad list line, no -o) exit 2.
. "$(dirname "$0")/lib.sh"
rig_up
need tar
need python3
need mount
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir errors)
store=$work/store
fetch_seeded "$store" "$work" library/busybox:1.36 library/victim:1 library/arm-only:1
out=$work/out.tar

# assert_no_output OUT: neither OUT nor OUT.partial exists.
assert_no_output() {
    [ ! -e "$1" ] || fail "$1 was written"
    [ ! -e "$1.partial" ] || fail "$1.partial was left behind"
}

# 1. Refs not in the store ----------------------------------------------------
printf '# list\nlibrary/busybox:1.36\nghcr.io/acme/listed-missing:2\n' >"$work/list.txt"
run_export "$work/missing" --store "$store" -o "$out" -f "$work/list.txt" \
    nope:1 library/victim:1 quay.io/acme/also-missing:3
expect_rc 1 "$work/missing" "export of missing refs"
for r in docker.io/library/nope:1 quay.io/acme/also-missing:3 ghcr.io/acme/listed-missing:2; do
    assert_grep "not in (the )?store.*$r|$r.*not in (the )?store" "$work/missing.err" "error for the missing $r"
done
assert_no_grep 'busybox|victim' "$work/missing.err" "errors (present refs are not errors)"
assert_no_output "$out"

# 2. A platform the image does not have ---------------------------------------
run_export "$work/plat" --store "$store" -o "$out" --platform linux/s390x library/busybox:1.36
expect_rc 1 "$work/plat" "export for linux/s390x"
assert_grep 'busybox:1\.36.*linux/s390x' "$work/plat.err" "error for the missing platform"
assert_grep 'linux/amd64' "$work/plat.err" "platforms busybox has"
assert_grep 'linux/arm64' "$work/plat.err" "platforms busybox has"
assert_no_output "$out"
run_export "$work/plat2" --store "$store" -o "$out" --platform linux/amd64 library/busybox:1.36 library/arm-only:1
expect_rc 1 "$work/plat2" "export of arm-only:1 for linux/amd64"
assert_grep 'arm-only:1.*linux/amd64.*linux/arm64' "$work/plat2.err" "error for arm-only:1 (it has linux/arm64)"
assert_no_output "$out"

# 3. A corrupted blob in the store --------------------------------------------
# victim's own layer: no other image uses it.
victim_layer=$(comm -23 <(seed_blobs library/victim:1 '.kind == "layer"' | sort) \
    <(seed_blobs library/busybox:1.36 | sort))
assert_eq 1 "$(wc -w <<<"$victim_layer")" "layers of victim:1 that busybox does not use"
bad=$work/store-bad
cp -a "$store" "$bad"
f=$bad/blobs/sha256/${victim_layer#sha256:}
assert_file "$f" "victim's layer in the store"
python3 -c 'import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[len(b) // 2] ^= 0x01
open(p, "wb").write(b)' "$f"
run_export "$work/corrupt" --store "$bad" -o "$out" library/busybox:1.36 library/victim:1
expect_rc 1 "$work/corrupt" "export with a corrupted blob"
assert_grep "$victim_layer" "$work/corrupt.err" "error naming the corrupt blob"
assert_grep 'docker\.io/library/victim:1' "$work/corrupt.err" "error naming the image"
assert_grep 'corrupt|mismatch|hashes to' "$work/corrupt.err" "error saying what is wrong"
assert_no_output "$out"
# --no-verify skips the hash, not the size: a truncated blob still fails.
truncate -s -1 "$f"
run_export "$work/short" --store "$bad" -o "$out" --no-verify library/victim:1
expect_rc 1 "$work/short" "export --no-verify with a truncated blob"
assert_grep "$victim_layer" "$work/short.err" "error naming the truncated blob"
assert_grep 'docker\.io/library/victim:1' "$work/short.err" "error naming the image"
assert_no_output "$out"

# 4. Unwritable output --------------------------------------------------------
# Root writes through chmod 0555, so use a read-only bind mount.
ro_src=$(tmpdir ro-src)
ro=$(tmpdir ro)
mount --bind -o ro "$ro_src" "$ro" || fail "mount --bind -o ro (needs root)"
on_exit "umount '$ro' 2>/dev/null || umount -l '$ro'"
if touch "$ro/probe" 2>/dev/null; then fail "$ro is writable: the bind mount is not read-only"; fi
run_export "$work/rofs" --store "$store" -o "$ro/out.tar" library/busybox:1.36
expect_rc 1 "$work/rofs" "export into a read-only directory"
assert_grep "$ro/out\.tar.*read-only file system" "$work/rofs.err" "error for the read-only directory"
assert_no_output "$ro/out.tar"
assert_eq "" "$(ls -A "$ro_src")" "files in the directory behind the read-only mount"
# A parent that is a regular file.
run_export "$work/notdir" --store "$store" -o "$work/list.txt/out.tar" library/busybox:1.36
expect_rc 1 "$work/notdir" "export below a regular file"
assert_grep "list\.txt/out\.tar.*not a directory" "$work/notdir.err" "error for a parent that is a file"

# 5. -o - ---------------------------------------------------------------------
"$EXPORT" --store "$store" -o - library/busybox:1.36 library/victim:1 2>"$work/stdout.err" |
    tar -t >"$work/stdout.list" || { show "$work/stdout.err"; fail "airlock-export -o - | tar t"; }
assert_grep '^manifest\.json$' "$work/stdout.list" "tar t of the stdout export"
for d in $(seed_platform_blobs library/busybox:1.36 linux/amd64) $(seed_platform_blobs library/victim:1 linux/amd64); do
    grep -qx "blobs/sha256/${d#sha256:}" "$work/stdout.list" || fail "stdout export lacks blob $d"
done
run_export "$work/stdout" --store "$store" -o - library/busybox:1.36 library/victim:1
expect_rc 0 "$work/stdout" "airlock-export -o -"
run_export "$work/file" --store "$store" -o "$out" library/busybox:1.36 library/victim:1
expect_rc 0 "$work/file" "airlock-export -o FILE"
cmp -s "$out" "$work/stdout.out" || fail "-o - and -o FILE wrote different bytes"
rm -f "$out"

# 6. Usage errors: exit 2, nothing written --------------------------------------
printf 'library/busybox:1.36\nNot_A/Valid:ref:x\n' >"$work/bad-list.txt"
usage_cases=(
    "--bogus|unknown option|-o $out library/busybox:1.36 --bogus"
    "no -o|-o|library/busybox:1.36"
    "no refs|no images|-o $out"
    "bad format|format|-o $out --format nope library/busybox:1.36"
    "bad platform|platform|-o $out --platform linux library/busybox:1.36"
    "bad level|level|-o $out --level 99 library/busybox:1.36"
    "bad compression|compress|-o $out --compress lz4 library/busybox:1.36"
    "bad ref|UPPER|-o $out UPPER/case:1"
    "bad list line|bad-list\.txt:2|-o $out -f $work/bad-list.txt"
    "two platforms, no {arch}|\{arch\}|-o $out --platform linux/amd64,linux/arm64 library/busybox:1.36"
)
i=0
for c in "${usage_cases[@]}"; do
    IFS='|' read -r what pattern args <<<"$c"
    i=$((i + 1))
    # shellcheck disable=SC2086 # args is a word list
    run_export "$work/usage$i" --store "$store" $args
    expect_rc 2 "$work/usage$i" "usage error ($what)"
    assert_grep "$pattern" "$work/usage$i.err" "message for $what"
    assert_no_output "$out"
done

note "ok"
