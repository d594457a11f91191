#!/usr/bin/env bash
# airlock-export --json FILE, the run report:
#   - a two-platform export (-o images-{arch}.tar): both files listed with
#     the byte count stat gives and the blobs tar lists; every image of each
#     platform with its ref as given, full name, manifest digest, layers and
#     bytes as the seed description says them; totals; exit_status 0;
#   - a failed export (a ref not in the store): exit_status 1, the missing
#     ref named (top-level problems and its own image entries), no tarball;
#   - a blob corrupted in the store: exit 1, DIGEST, the output failed and
#     no tarball or .partial left;
#   - an unusable store: a report with exit_status 3;
#   - usage errors (exit 2) write none; --json - goes to stdout, and is
#     refused when the tarball goes there;
#   - --decompress-zstd-layers shows in the image entry;
#   - every report validates against docs/export-report.schema.json (and a
#     tampered one does not: the check can fail);
#   - --list --json - still prints the JSON on stdout.
. "$(dirname "$0")/lib.sh"
rig_up
need python3
need tar
python3 -c 'import jsonschema' 2>/dev/null ||
    fail "python3-jsonschema is not installed (scripts/install-deps.sh)"
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

SCHEMA=$AL_SRC/docs/export-report.schema.json
validate() {
    python3 "$AL_SRC/tests/infra/validate-report.py" "$SCHEMA" "$@" ||
        fail "$* does not validate against the schema"
}
expect_export() { expect_rc "$1" "$2" "${3:-airlock-export}"; }

keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 library/nested:1 rancher/zstd-image:1)
work=$(tmpdir report)
store=$work/store
fetch_seeded "$store" "$work" "${keys[@]}"

# What the seed says an image is on one platform, independently of airlock.
# seed_bytes KEY PLATFORM: config + layers, as listed.
seed_bytes() {
    seed --arg r "$1" --arg p "$2" '[.images[$r].blobs[] | select((.attestation | not)
        and (.kind == "config" or .kind == "layer") and (.platforms | index($p)))] | map(.size) | add'
}
seed_layers() {
    seed --arg r "$1" --arg p "$2" '[.images[$r].blobs[] | select((.attestation | not)
        and .kind == "layer" and (.platforms | index($p)))] | length'
}

# 1. Two platforms, three images, one list file --------------------------------------
out=$work/out
mkdir "$out"
printf '%s\n' 'rancher/mirrored-pause:3.6  # from a list' >"$work/list.txt"
R=$work/ok.json
run_export "$work/ok" --store "$store" --platform linux/amd64,linux/arm64 \
    -o "$out/images-{arch}.tar" busybox:1.36 -f "$work/list.txt" docker.io/library/nested:1 \
    --json "$R"
expect_export 0 "$work/ok" "two-platform export"
assert_file "$R" "report"
validate "$R"
q() { jq -r "$@" "$R"; }

assert_eq "airlock-export 1 0 null" "$(q '"\(.tool) \(.report_format) \(.exit_status) \(.error)"')" "tool, format, exit, error"
assert_eq "hybrid none true false" "$(q '"\(.format) \(.compression) \(.verify) \(.decompress_zstd_layers)"')" "options"
assert_eq "$store" "$(q .store)" "store"
assert_eq "linux/amd64,linux/arm64" "$(q '.platforms | join(",")')" "platforms"
[[ "$(q .started_at)" < "$(q .finished_at)" || "$(q .started_at)" == "$(q .finished_at)" ]] ||
    fail "started_at after finished_at"
assert_eq 2 "$(q '.outputs | length')" "outputs"
for arch in amd64 arm64; do
    f=$out/images-$arch.tar
    assert_file "$f" "tarball"
    o() { q --arg p "$f" ".outputs[] | select(.path == \$p) | $1"; }
    assert_eq "linux/$arch written null" "$(o '"\(.platform) \(.status) \(.error)"')" "output $f"
    assert_eq "$(stat -c %s "$f")" "$(o .bytes)" "bytes of $f (stat)"
    # Uncompressed: the tar stream is the file.
    assert_eq "$(stat -c %s "$f")" "$(o .tar_bytes)" "tar_bytes of $f"
    assert_eq "$(tar -tf "$f" | grep -c '^blobs/sha256/.')" "$(o .blobs)" "blobs of $f (tar -t)"
    assert_eq 3 "$(o .images)" "images in $f"
done
assert_eq 6 "$(q '.images | length')" "image entries (3 images x 2 platforms)"
for arch in amd64 arm64; do
    plat=linux/$arch
    for pair in "busybox:1.36=library/busybox:1.36" \
        "rancher/mirrored-pause:3.6=rancher/mirrored-pause:3.6" \
        "docker.io/library/nested:1=library/nested:1"; do
        given=${pair%%=*} key=${pair#*=}
        name=$(seed_name "$key")
        img() { q --arg n "$name" --arg p "$plat" '.images[] | select(.name == $n and .platform == $p)'" | $1"; }
        assert_eq 1 "$(q --arg n "$name" --arg p "$plat" '[.images[] | select(.name == $n and .platform == $p)] | length')" "entries of $name $plat"
        assert_eq "$given" "$(img .ref)" "ref as given of $name"
        assert_eq "exported null $out/images-$arch.tar" "$(img '"\(.status) \(.error) \(.output)"')" "status of $name $plat"
        assert_eq "$(seed_digest "$key")" "$(img .root_digest)" "root digest of $name"
        assert_eq "$(seed_manifest_for "$key" "$plat")" "$(img .manifest_digest)" "manifest digest of $name $plat"
        assert_eq "$(seed_layers "$key" "$plat")" "$(img .layers)" "layers of $name $plat"
        assert_eq "$(seed_bytes "$key" "$plat")" "$(img .bytes)" "bytes of $name $plat"
        assert_eq "0 false" "$(img '"\(.zstd_layers) \(.zstd_decompressed)"')" "zstd of $name $plat"
    done
done
assert_eq "2 2 6 6 0" "$(q '.totals | "\(.outputs) \(.written) \(.images) \(.exported) \(.failed)"')" "totals"
assert_eq "$(($(stat -c %s "$out/images-amd64.tar") + $(stat -c %s "$out/images-arm64.tar")))" "$(q .totals.bytes)" "total bytes"
assert_eq "$(q '[.outputs[].blobs] | add')" "$(q .totals.blobs)" "total blobs"
assert_eq 644 "$(stat -c %a "$R")" "report mode"
note "two platforms: report agrees with stat and tar"

# 2. A ref that is not in the store: nothing written, the ref named ------------------
out2=$work/out2
mkdir "$out2"
R=$work/missing.json
missing=library/not-there-$$:1
run_export "$work/missing" --store "$store" --platform linux/amd64,linux/arm64 \
    -o "$out2/images-{arch}.tar" busybox:1.36 "$missing" --json "$R"
expect_export 1 "$work/missing" "export of a ref not in the store"
validate "$R"
assert_eq "" "$(ls -A "$out2")" "files written by a failed export"
assert_eq 1 "$(q .exit_status)" "exit_status"
assert_eq NOT_FOUND "$(q .error.code)" "error code"
assert_eq "not in store: docker.io/$missing" "$(q '.error.problems | join("|")')" "problems"
assert_grep "^airlock-export: error: not in store: docker.io/$missing$" "$work/missing.err" "stderr"
assert_eq "failed failed" "$(q --arg n "docker.io/$missing" '[.images[] | select(.name == $n) | .status] | join(" ")')" "the missing ref, per platform"
assert_eq "$missing NOT_FOUND null" "$(q --arg n "docker.io/$missing" '[.images[] | select(.name == $n)][0] | "\(.ref) \(.error.code) \(.manifest_digest)"')" "the missing ref's entry"
assert_eq "not_written not_written" "$(q '[.images[] | select(.name == "docker.io/library/busybox:1.36") | .status] | join(" ")')" "busybox: selected, not written"
assert_eq "not_written not_written" "$(q '[.outputs[].status] | join(" ")')" "outputs"
assert_eq "4 0 2 0" "$(q '.totals | "\(.images) \(.exported) \(.failed) \(.bytes)"')" "totals of the failed export"
# A platform an image lacks is named with its platform.
R=$work/noplat.json
run_export "$work/noplat" --store "$store" --platform linux/arm64 -o "$out2/x.tar" \
    rancher/zstd-image:1 --json "$R"
expect_export 1 "$work/noplat" "export of a platform the image lacks"
validate "$R"
assert_eq "linux/arm64 failed NOT_FOUND" "$(q '.images[0] | "\(.platform) \(.status) \(.error.code)"')" "entry of the lacking platform"
[[ "$(q '.error.problems[0]')" == *"has no linux/arm64 manifest"* ]] || fail "the problem does not name the platform"
note "missing ref and platform: reported, nothing written"

# 3. A corrupt layer: the write fails, no tarball ------------------------------------
bad=$work/bad-store
cp -a "$store" "$bad"
layer=$(seed_blobs rancher/mirrored-pause:3.6 '.kind == "layer" and (.platforms | index("linux/amd64"))' | sed -n 1p)
printf 'X' | dd of="$bad/blobs/sha256/${layer#sha256:}" bs=1 seek=5 conv=notrunc 2>/dev/null
R=$work/corrupt.json
run_export "$work/corrupt" --store "$bad" --platform linux/amd64 -o "$out2/c.tar" \
    rancher/mirrored-pause:3.6 --json "$R"
expect_export 1 "$work/corrupt" "export with a corrupt layer"
validate "$R"
assert_eq "" "$(ls -A "$out2")" "files left by the corrupt export"
assert_eq "1 DIGEST failed DIGEST 0" "$(q '"\(.exit_status) \(.error.code) \(.outputs[0].status) \(.outputs[0].error.code) \(.outputs[0].bytes)"')" "corrupt export"
[[ "$(q .error.message)" == *"$layer"* ]] || fail "the error does not name the corrupt blob"
assert_eq failed "$(q '.images[0].status')" "image of the failed output"

# 4. An unusable store: exit 3, still a report -------------------------------------
R=$work/nostore.json
run_export "$work/nostore" --store "$work/no-such-store" -o "$out2/n.tar" busybox:1.36 --json "$R"
expect_export 3 "$work/nostore" "export from a missing store"
validate "$R"
assert_eq "3 0 not_written" "$(q '"\(.exit_status) \(.images | length) \(.outputs[0].status)"')" "report of a missing store"

# 5. Usage errors write no report; --json - ---------------------------------------------
R=$work/usage.json
run_export "$work/usage" --store "$store" --platform linux/amd64,linux/arm64 -o "$out2/no-arch.tar" \
    busybox:1.36 --json "$R"
expect_export 2 "$work/usage" "two platforms without {arch}"
[ ! -e "$R" ] || fail "a usage error wrote a report"
run_export "$work/both" --store "$store" --platform linux/amd64 -o - busybox:1.36 --json -
expect_export 2 "$work/both" "tarball and report both on stdout"
assert_grep "stdout carries the tarball" "$work/both.err" "refusal"
run_export "$work/rstdout" --store "$store" --platform linux/amd64 -o "$out2/s.tar" busybox:1.36 --json -
expect_export 0 "$work/rstdout" "--json - with a tarball file"
validate "$work/rstdout.out"
assert_eq "$(stat -c %s "$out2/s.tar")" "$(jq .outputs[0].bytes "$work/rstdout.out")" "--json -: bytes"
# A tarball on stdout: the report counts what went there.
run_export "$work/tstdout" --store "$store" --platform linux/amd64 -o - busybox:1.36 --json "$work/tstdout.json"
expect_export 0 "$work/tstdout" "tarball on stdout, report to a file"
validate "$work/tstdout.json"
assert_eq "- $(stat -c %s "$work/tstdout.out")" "$(jq -r '.outputs[0] | "\(.path) \(.bytes)"' "$work/tstdout.json")" "stdout output"

# 6. --decompress-zstd-layers shows per image ---------------------------------------------
R=$work/zstd.json
run_export "$work/zstd" --store "$store" --platform linux/amd64 -o "$out2/z.tar.zst" \
    rancher/zstd-image:1 --decompress-zstd-layers --level 5 --json "$R"
expect_export 0 "$work/zstd" "zstd export"
validate "$R"
assert_eq "zstd 5 true" "$(q '"\(.compression) \(.level) \(.decompress_zstd_layers)"')" "zstd options"
[ "$(q '.images[0].zstd_layers')" -gt 0 ] || fail "zstd-image has no zstd layers in the report"
assert_eq true "$(q '.images[0].zstd_decompressed')" "zstd_decompressed"
assert_eq "$(stat -c %s "$out2/z.tar.zst")" "$(q .outputs[0].bytes)" "bytes of the zstd file"
[ "$(q .outputs[0].tar_bytes)" -gt "$(q .outputs[0].bytes)" ] || fail "tar_bytes not above the compressed size"

# 7. The schema check can fail -------------------------------------------------------
jq '.exit_status = 0' "$work/missing.json" >"$work/tampered.json"
if python3 "$AL_SRC/tests/infra/validate-report.py" "$SCHEMA" "$work/tampered.json" 2>/dev/null; then
    fail "a report with exit_status 0 and an error validates"
fi
jq 'del(.outputs[0].bytes)' "$work/ok.json" >"$work/tampered.json"
if python3 "$AL_SRC/tests/infra/validate-report.py" "$SCHEMA" "$work/tampered.json" 2>/dev/null; then
    fail "a report without outputs[0].bytes validates"
fi

# 8. Store tools: --json - is still JSON on stdout ----------------------------------------
run_export "$work/list" --store "$store" --list --json -
expect_export 0 "$work/list" "--list --json -"
assert_eq "${#keys[@]}" "$(jq '.tags | length' "$work/list.out")" "--list --json - tags"

# Atomic: no temp file left next to any report.
leftover=$(find "$work" -maxdepth 1 -name '*.tmp.*' | sed -n 1p)
[ -z "$leftover" ] || fail "temp file left behind: $leftover"
note "ok"
