#!/usr/bin/env bash
# A prune never deletes what an export is reading (issue 15, item 6): the
# GC lock.
#   An image of 10 layers, 50 MB in all, is exported to a pipe whose reader
#   stops after the first MiB, so the export is stalled mid-stream (holding
#   its first layer open and the others not yet), and `airlock-fetch --prune
#   --remove` of that very image runs; then the reader drains the rest.
#   20 rounds (AL_GC_ROUNDS), each:
#     - the prune succeeds and says it deferred the files (one line:
#       "deferred N files ...: an airlock-export is reading the store");
#     - the export completes (exit 0) and its tarball is whole: every blob
#       in it hashes to its name, every layer of the image is there;
#     - the next round's fetch finds the files still there (rowless) and
#       downloads nothing.
#   After the last round, a prune with no export running removes the files.
. "$(dirname "$0")/lib.sh"
rig_up
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir gc)
store=$work/store
rounds=${AL_GC_ROUNDS:-20}
on_exit "touch '$work/go' 2>/dev/null" # a failed round must not leave the reader waiting
repo=airlock-test/gc-$$-$RANDOM
ref=$repo:1
name=docker.io/$ref
reg_args=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")

python3 "$AL_SRC/tests/infra/push-layers.py" --registry "$AL_REG_PLAIN" --repo "$repo" --tag 1 \
    --sizes 10x5000000 --seed 11 --out "$work/img.json" 2>"$work/push.err" ||
    { show "$work/push.err"; fail "could not push $ref"; }
mapfile -t blobs < <(jq -r '.digest, .config, .layers[].digest' "$work/img.json")

# gateread OUT STARTED GO: stdin to OUT; once the first MiB is through,
# STARTED appears and reading stops until GO does (the writer blocks on the
# full pipe meanwhile).
cat >"$work/gateread.py" <<'EOF'
import os, sys, time
out, started, go = sys.argv[1:4]
n, gated = 0, False
with open(out, "wb") as f:
    while True:
        b = sys.stdin.buffer.read1(256 * 1024)
        if not b:
            break
        f.write(b)
        n += len(b)
        if not gated and n >= 1 << 20:
            open(started, "w").close()
            gated = True
            deadline = time.monotonic() + 120
            while not os.path.exists(go) and time.monotonic() < deadline:
                time.sleep(0.02)
EOF

# verify_tarball TAR: whole, and holds every blob of the image.
verify_tarball() {
    local d f n=0
    d=$(mktemp -d "$work/untar.XXXXXX")
    tar -xf "$1" -C "$d" || fail "$1 is not a readable tarball"
    for f in "$d"/blobs/sha256/*; do
        [ "$(sha256sum "$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "$1: $(basename "$f") does not hash to its name"
        n=$((n + 1))
    done
    for f in $(jq -r '.layers[].digest, .config' "$work/img.json"); do
        [ -f "$d/blobs/sha256/${f#sha256:}" ] || fail "$1 lacks $f"
    done
    rm -rf "$d"
}

for ((i = 1; i <= rounds; i++)); do
    run_fetch "$work/fetch-$i" --store "$store" "${reg_args[@]}" "$ref"
    expect_rc 0 "$work/fetch-$i" "round $i: airlock-fetch $ref"
    if [ "$i" -gt 1 ]; then
        assert_grep "0 new blobs" "$work/fetch-$i.out" "round $i: the fetch after a deferred sweep"
    fi
    rm -f "$work/started" "$work/go" "$work/out.tar" "$work/export.rc"
    (
        set +e
        "$EXPORT" --store "$store" --platform linux/amd64 -o - "$ref" 2>"$work/export.err" |
            python3 "$work/gateread.py" "$work/out.tar" "$work/started" "$work/go"
        echo "${PIPESTATUS[0]}" >"$work/export.rc"
    ) &
    reader=$!
    for _ in $(seq 300); do
        [ -e "$work/started" ] || [ -e "$work/export.rc" ] || { sleep 0.1; continue; }
        break
    done
    [ -e "$work/started" ] || { show "$work/export.err"; fail "round $i: the export did not start streaming"; }
    run_fetch "$work/prune-$i" --store "$store" --prune --remove "$ref"
    expect_rc 0 "$work/prune-$i" "round $i: --prune --remove during the export"
    touch "$work/go"
    assert_grep "^deferred +12 files, .*: an airlock-export is reading the store" "$work/prune-$i.out" \
        "round $i: the prune's deferred sweep"
    wait "$reader" || true
    rc=$(cat "$work/export.rc" 2>/dev/null || echo none)
    [ "$rc" = 0 ] || { show "$work/export.err"; fail "round $i: the export during the prune: exit $rc"; }
    verify_tarball "$work/out.tar"
    for b in "${blobs[@]}"; do
        store_has_blob "$store" "$b" || fail "round $i: the deferred file $b is gone"
    done
    [ "$(db "$store" "SELECT count(*) FROM tags")" = 0 ] || fail "round $i: the tag was not removed"
done
note "$rounds rounds: every export completed and verified; every prune deferred its sweep"

run_fetch "$work/prune-last" --store "$store" --prune
expect_rc 0 "$work/prune-last" "the prune after the exports"
assert_grep "12 files without a row" "$work/prune-last.out" "the last prune's summary"
for b in "${blobs[@]}"; do
    if store_has_blob "$store" "$b"; then fail "$b is still in the store after the last prune"; fi
done
note "the next prune removed the 12 deferred files"
note "ok"
