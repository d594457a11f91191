#!/usr/bin/env bash
# A list that mixes multi-arch and single-arch images, exported for two
# platforms into images-{arch}.tar.gz:
#   - strict by default: exit 1, "nothing written: N problems", no file;
#   - --skip-missing-platforms: exit 0; each platform's archive holds the
#     images that have that platform (read back with --check), what was
#     skipped is listed per platform on stderr and in the run report
#     (skipped[], outputs[].skipped, totals.skipped), which validates;
#   - a ref that is not in the store still stops the export with it.
. "$(dirname "$0")/lib.sh"
rig_up
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

multi=(library/busybox:1.36 rancher/mirrored-pause:3.6 rancher/mirrored-coredns-coredns:1.10.1)
amd_only=(library/alpine-ish:3.19 rancher/local-path-provisioner:v0.0.26 rancher/zstd-image:1 library/amd-only:1)
arm_only=(library/arm-only:1)
work=$(tmpdir skip)
list=$work/images.txt
for k in "${multi[@]}" "${amd_only[@]}" "${arm_only[@]}"; do echo "$k"; done >"$list"
store=$work/store
fetch_seeded "$store" "$work" -f "$list"
out=$work/out
mkdir "$out"

# 1. Strict (the default) -------------------------------------------------------
run_export "$work/strict" --store "$store" -f "$list" -p linux/amd64,linux/arm64 \
    -o "$out/images-{arch}.tar.gz" --json "$work/strict.json"
expect_rc 1 "$work/strict" "a strict export of a mixed list"
assert_grep "nothing written: 5 problems" "$work/strict.err" "stderr of the strict export"
assert_eq "" "$(ls "$out")" "files after the strict export"
assert_eq "false 0" "$(jq -r '"\(.skip_missing_platforms) \(.skipped | length)"' "$work/strict.json")" \
    "skip fields of the strict report"

# 2. --skip-missing-platforms ---------------------------------------------------
run_export "$work/skip" --store "$store" -f "$list" -p linux/amd64,linux/arm64 \
    -o "$out/images-{arch}.tar.gz" --skip-missing-platforms --json "$work/skip.json"
expect_rc 0 "$work/skip" "the export with --skip-missing-platforms"
assert_grep "linux/amd64: skipping 1 image without that platform" "$work/skip.err" "stderr"
assert_grep "linux/arm64: skipping 4 images without that platform" "$work/skip.err" "stderr"
for k in "${amd_only[@]}"; do
    assert_grep "skipped $(seed_name "$k") has no linux/arm64 manifest \(it has linux/amd64\)" \
        "$work/skip.err" "stderr: $k skipped for arm64"
done
assert_grep "skipped $(seed_name library/arm-only:1) has no linux/amd64 manifest" "$work/skip.err" \
    "stderr: arm-only skipped for amd64"
python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/export-report.schema.json" \
    "$work/skip.json" "$work/strict.json" >"$work/val" 2>&1 || { show "$work/val"; fail "reports do not validate"; }
assert_eq "true 5 5" "$(jq -r '"\(.skip_missing_platforms) \(.skipped | length) \(.totals.skipped)"' "$work/skip.json")" \
    "skip fields of the report"
assert_eq "1 4" "$(jq -r '[.outputs[].skipped] | join(" ")' "$work/skip.json")" "outputs[].skipped"
assert_eq "$(for k in "${amd_only[@]}"; do seed_name "$k"; done | sort)" \
    "$(jq -r '.skipped[] | select(.platform == "linux/arm64") | .name' "$work/skip.json" | sort)" \
    "names skipped for linux/arm64 in the report"
assert_eq "$out/images-arm64.tar.gz" \
    "$(jq -r '.skipped[] | select(.platform == "linux/arm64") | .output' "$work/skip.json" | sort -u)" \
    "output of the arm64 skips"

# What each archive holds, read back by --check.
for arch in amd64 arm64; do
    run_export "$work/chk-$arch" --check "$out/images-$arch.tar.gz" --json "$work/chk-$arch.json"
    expect_rc 0 "$work/chk-$arch" "--check of images-$arch.tar.gz"
done
want_amd=$(for k in "${multi[@]}" "${amd_only[@]}"; do seed_manifest_for "$k" linux/amd64; done | sort)
want_arm=$(for k in "${multi[@]}" "${arm_only[@]}"; do seed_manifest_for "$k" linux/arm64; done | sort)
assert_eq "$want_amd" "$(jq -r '.archives[0].images[].manifest_digest' "$work/chk-amd64.json" | sort)" \
    "images of images-amd64.tar.gz"
assert_eq "$want_arm" "$(jq -r '.archives[0].images[].manifest_digest' "$work/chk-arm64.json" | sort)" \
    "images of images-arm64.tar.gz"
assert_eq "linux/arm64" "$(jq -r '.archives[0].platforms | join(",")' "$work/chk-arm64.json")" \
    "platforms of images-arm64.tar.gz"

# 3. A ref that is not in the store still stops it --------------------------------
rm -f "$out"/*
run_export "$work/missing" --store "$store" -p linux/amd64,linux/arm64 -o "$out/images-{arch}.tar.gz" \
    --skip-missing-platforms library/busybox:1.36 library/amd-only:1 library/not-fetched:1
expect_rc 1 "$work/missing" "--skip-missing-platforms with a ref not in the store"
assert_grep "not in store: docker.io/library/not-fetched:1" "$work/missing.err" "stderr"
assert_grep "nothing written: 1 problem$" "$work/missing.err" "stderr"
assert_eq "" "$(ls "$out")" "files after a ref not in the store"

note "ok"
