#!/usr/bin/env bash
# Bad bundles, each applied to a far store that holds a first bundle
# already. Each is refused with one line on stderr naming what is at fault,
# a nonzero exit, the far store unchanged (its rows, blobs/, index.json)
# and --verify-store without errors; --check of the same file fails too,
# naming the same fault:
#   1. a flipped byte in a layer (names the member and what it hashes to);
#   2. a truncated tar (names the member the file ends in);
#   3. a missing volume (names the volume and its file);
#   4. a bundle applied out of order (names the bundle that must come first);
#   5. a manifest naming a blob the tar lacks (names the blob);
#   6. a member outside blobs/sha256/ (names it), and a symlink member;
#   7. a bundle from a newer format version (names both versions).
# Then the good delta applies: the refusals left nothing in its way.
. "$(dirname "$0")/lib.sh"
rig_up
need python3
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir bad)
mv_repo=library/bundle-bad-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/amd-only:1=$mv_repo:1" --out "$work/mv1.json" >/dev/null 2>&1 || fail "pushing $mv_repo:1"
list=$work/images.txt
printf '%s\n' library/alpine-ish:3.19 rancher/mirrored-pause:3.6 "$mv_repo:1" >"$list"
conn=$work/connected
far=$work/far
fetch_seeded "$conn" "$work" -f "$list"

run_export "$work/b1" --store "$conn" --all --bundle "$work/b1.tar"
expect_rc 0 "$work/b1" "first bundle"
run_fetch "$work/i1" --store "$far" --import "$work/b1.tar"
expect_rc 0 "$work/i1" "import of the first bundle"

# The tag moves; b2 (a delta, carrying a new layer) and b3 --since b2.
python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" \
    --as "library/arm-only:1=$mv_repo:1" --out "$work/mv2.json" >/dev/null 2>&1 || fail "moving $mv_repo:1"
fetch_seeded "$conn" "$work" -f "$list"
run_export "$work/b2" --store "$conn" --all --bundle "$work/b2.tar" --since "$work/b1.tar.json"
expect_rc 0 "$work/b2" "the delta"
b2=$(jq -r .bundle_id "$work/b2.tar.json")
run_export "$work/b3" --store "$conn" --all --bundle "$work/b3.tar" --since "$work/b2.tar.json"
expect_rc 0 "$work/b3" "the delta of the delta"
# A layer of the delta: the largest blob it carries.
layer=$(jq -r '.blobs | max_by(.size) | .digest' "$work/b2.tar.json")
[ "$(jq -r '.blobs | max_by(.size) | .size' "$work/b2.tar.json")" -gt 10000 ] || fail "test setup: the delta carries no layer"

# tarx OP IN OUT [ARG]: a changed copy of the uncompressed bundle IN.
tarx() {
    python3 - "$@" <<'EOF'
import io, json, sys, tarfile
op, src, dst = sys.argv[1:4]
arg = sys.argv[4] if len(sys.argv) > 4 else None
if op == "flip":  # flip one byte in the middle of member ARG, in place
    with tarfile.open(src) as t:
        m = t.getmember(arg)
        off = m.offset_data + m.size // 2
    data = bytearray(open(src, "rb").read())
    data[off] ^= 0x20
    open(dst, "wb").write(data)
    sys.exit(0)
if op == "truncate":  # cut the file in the middle of member ARG
    with tarfile.open(src) as t:
        m = t.getmember(arg)
        cut = m.offset_data + m.size // 2
    open(dst, "wb").write(open(src, "rb").read()[:cut])
    sys.exit(0)
with tarfile.open(src) as t, tarfile.open(dst, "w", format=tarfile.USTAR_FORMAT) as o:
    for m in t.getmembers():
        data = t.extractfile(m).read() if m.isfile() else None
        if op == "drop" and m.name == arg:
            continue
        if op == "newer" and m.name == "airlock-bundle.json":
            j = json.loads(data)
            j["bundle_format"] = 2
            data = (json.dumps(j, separators=(",", ":")) + "\n").encode()
            m.size = len(data)
        o.addfile(m, io.BytesIO(data) if data is not None else None)
        if op in ("outside", "symlink") and m.name == "airlock-bundle.json":
            x = tarfile.TarInfo(arg)
            if op == "symlink":
                x.type, x.linkname = tarfile.SYMTYPE, "/etc/passwd"
                o.addfile(x)
            else:
                x.size = 5
                o.addfile(x, io.BytesIO(b"evil\n"))
EOF
}

# The far store as seen from outside: rows, blobs/ and index.json (tmp/ may
# keep verified blobs for a rerun; --verify-store notes them).
state() {
    {
        sqlite3 -batch "$far/airlock.db" 'SELECT * FROM tags ORDER BY 1; SELECT digest, size FROM blobs ORDER BY 1;
            SELECT * FROM manifests ORDER BY 1; SELECT * FROM edges ORDER BY 1, 2, 3, 4;
            SELECT full_name, old_digest, new_digest FROM tag_history ORDER BY id; SELECT bundle_id FROM bundles ORDER BY 1;'
        (cd "$far/blobs/sha256" && ls -l --time-style=+%s . | sort)
        sha256sum "$far/index.json"
    } >"$1"
}
state "$work/state0"

# refused NAME BUNDLE PATTERN: the import fails with exactly one error line
# matching PATTERN, the store is as it was, --verify-store finds no error,
# and --check fails on the same file, matching PATTERN2 (defaults to PATTERN).
refused() {
    local name=$1 bundle=$2 pat=$3 cpat=${4:-$3}
    run_fetch "$work/$name" --store "$far" --import "$bundle"
    [ "$RC" != 0 ] || { show "$work/$name.out"; fail "$name: the import exited 0"; }
    assert_eq 1 "$(grep -c 'error' "$work/$name.err" || true)" "$name: error lines on stderr"
    assert_grep "^airlock-fetch: error: .*$pat" "$work/$name.err" "$name: the error line"
    state "$work/state-$name"
    cmp -s "$work/state0" "$work/state-$name" || { diff "$work/state0" "$work/state-$name" >&2; fail "$name: the far store changed"; }
    run_export "$work/$name-v" --store "$far" --verify-store
    expect_rc 0 "$work/$name-v" "$name: --verify-store after the refusal"
    if [ "$cpat" != - ]; then
        run_export "$work/$name-c" --check "$bundle"
        expect_rc 1 "$work/$name-c" "$name: --check"
        assert_grep "$cpat" "$work/$name-c.out" "$name: --check output"
    fi
    note "$name: $(grep error "$work/$name.err" | cut -c1-160)"
}

hex=${layer#sha256:}
tarx flip "$work/b2.tar" "$work/flip.tar" "blobs/sha256/$hex"
refused flip "$work/flip.tar" "member blobs/sha256/$hex hashes to sha256:[0-9a-f]{64}: the bundle is damaged" \
    "blobs/sha256/$hex: its content hashes to sha256:[0-9a-f]{64}: damaged"
# The verified blobs before the bad one wait for a rerun, as a note.
assert_grep "^info: tmp: tmp/import-$b2 .*an interrupted import of bundle $b2" "$work/flip-v.out" "--verify-store note"

tarx truncate "$work/b2.tar" "$work/trunc.tar" "blobs/sha256/$hex"
refused truncated "$work/trunc.tar" "member blobs/sha256/$hex: the file ends inside it.*truncated" \
    "blobs/sha256/$hex: the file cannot be read further.*truncated"

run_export "$work/bv" --store "$conn" --all --bundle "$work/vol.tar" --volume-size 1M
expect_rc 0 "$work/bv" "a bundle in volumes"
nv=$(jq .volumes "$work/vol.tar.json")
[ "$nv" -ge 2 ] || fail "test setup: only $nv volume"
mv "$work/vol.tar.002" "$work/vol.tar.002.away"
refused missing-volume "$work/vol.tar.001" "volume 2 of $nv \\($work/vol.tar.002\\) is missing: nothing was imported" \
    "volume 2 of $nv \\($work/vol.tar.002\\) is missing"
mv "$work/vol.tar.002.away" "$work/vol.tar.002"

refused out-of-order "$work/b3.tar" \
    "bundle $(jq -r .bundle_id "$work/b3.tar.json") builds on bundle $b2, which this store never applied: apply $b2 first" -

tarx drop "$work/b2.tar" "$work/drop.tar" "blobs/sha256/$hex"
refused blob-missing "$work/drop.tar" "lacks blob $layer \\([0-9]+ bytes\\) that its manifest names" \
    "blob $layer \\([0-9]+ bytes\\) that the manifest names is missing"

tarx outside "$work/b2.tar" "$work/outside.tar" "../../etc/cron.d/evil"
refused outside "$work/outside.tar" "member \\.\\./\\.\\./etc/cron\\.d/evil: not a bundle member" \
    "\\.\\./\\.\\./etc/cron\\.d/evil: not a bundle member"
tarx symlink "$work/b2.tar" "$work/symlink.tar" "blobs/sha256/$hex"
refused symlink "$work/symlink.tar" "member blobs/sha256/$hex: is a symbolic link" \
    "blobs/sha256/$hex: not a regular file"

tarx newer "$work/b2.tar" "$work/newer.tar"
refused newer "$work/newer.tar" "bundle format version 2 is newer than this airlock \\(1\\)"

# None of it was in the way: the good delta applies (and reuses what the
# flipped bundle's import verified before the bad byte).
run_fetch "$work/good" --store "$far" --import "$work/b2.tar"
expect_rc 0 "$work/good" "the good delta after the refusals"
assert_eq moved "$(word_for "$work/good.out" "$mv_name")" "the moved tag"
run_export "$work/good-v" --store "$far" --verify-store
expect_rc 0 "$work/good-v" "--verify-store after the good delta"
assert_no_grep 'tmp/import' "$work/good-v.out" "staging left after the import"
note ok
