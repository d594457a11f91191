#!/usr/bin/env bash
# --split image for k3s' images directory, --clean and --since:
#   - one archive per image and platform, each platform in its own
#     directory, named NAME_TAG@<12 hex of the manifest digest>.tar.zst; each
#     passes --check and holds that one image;
#   - k3s-style import (ctr images import --all-platforms, one file after
#     the other) loads every image, targets the registry's manifests;
#   - a second export with nothing changed touches no file (same inode,
#     mtime, size); after a tag moves upstream and a nightly fetch, the next
#     export writes only the moved image's archive (its old one is removed)
#     and leaves every other archive's inode and mtime alone;
#   - --clean removes the archives of images no longer exported, and only
#     airlock's (other files stay), keeping those --since skipped;
#   - --since LOCK / --since REPORT: a tarball export holds only the images
#     that changed; chained on its own report, nothing is left to write;
#   - the run report validates and lists every archive's fate.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir split)
store=$work/store
mv_repo=library/split-moving-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
push_as() { # SRC-REF OUT.json: push SRC's image as $mv_repo:1
    python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" --as "$1=$mv_repo:1" \
        --out "$2" >/dev/null 2>&1 || fail "could not push $1 as $mv_repo:1"
}
push_as library/amd-only:1 "$work/mv1.json"
keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 rancher/mirrored-coredns-coredns:1.10.1
    library/alpine-ish:3.19 rancher/zstd-image:1)
list=$work/images.txt
{ for k in "${keys[@]}"; do echo "$k"; done; echo "$mv_repo:1"; } >"$list"
fetch_seeded "$store" "$work" -f "$list" --lock "$work/night1.lock"
out=$work/images
mkdir -p "$out/amd64"
echo "not airlock's" >"$out/amd64/notes.txt"
echo "not airlock's either" >"$out/amd64/vendor-images.tar.zst"

# state DIR: name, size, inode, mtime of every file, sorted.
state() { (cd "$1" && find . -maxdepth 1 -type f -printf '%f %s %i %T@\n' | sort); }
export_split() { # NAME ARGS...
    local n=$1
    shift
    run_export "$work/$n" --store "$store" -f "$list" -p linux/amd64,linux/arm64 \
        --skip-missing-platforms --split image -o "$out/{arch}/" --json "$work/$n.json" "$@"
    expect_rc 0 "$work/$n" "airlock-export --split image ($n)"
    python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/export-report.schema.json" \
        "$work/$n.json" >"$work/$n.val" 2>&1 || { show "$work/$n.val"; fail "report of $n does not validate"; }
}
# name_of REF MANIFEST-DIGEST: the archive name airlock gives it.
name_of() {
    local n=docker.io/$1 d=$2
    n=${n//\//_}
    echo "${n//:/_}@${d:7:12}.tar.zst"
}

# 1. One archive per image and platform ----------------------------------------
export_split first
mv_amd=$(jq -r --arg r "$mv_repo:1" '.images[$r].digest' "$work/mv1.json")
want_amd=$(for k in "${keys[@]}"; do name_of "$k" "$(seed_manifest_for "$k" linux/amd64)"; done
    name_of "$mv_repo:1" "$mv_amd")
want_arm=$(for k in library/busybox:1.36 rancher/mirrored-pause:3.6 rancher/mirrored-coredns-coredns:1.10.1; do
    name_of "$k" "$(seed_manifest_for "$k" linux/arm64)"
done)
assert_eq "$(echo "$want_amd" | sort)" "$(cd "$out/amd64" && ls | grep '@' | sort)" "archives in amd64/"
assert_eq "$(echo "$want_arm" | sort)" "$(cd "$out/arm64" && ls | grep '@' | sort)" "archives in arm64/"
[ -f "$out/amd64/.airlock-split.json" ] || fail "no state file in amd64/"
for f in "$out"/amd64/*@* "$out"/arm64/*@*; do
    run_export "$work/chk" --check "$f" --json "$work/chk.json"
    expect_rc 0 "$work/chk" "--check $f"
    assert_eq 1 "$(jq '.archives[0].images | length' "$work/chk.json")" "images in $f"
done
assert_eq "6 3" "$(jq -r '[.outputs[].images] | join(" ")' "$work/first.json")" "images per output"
assert_eq 9 "$(jq '[.archives[] | select(.status == "written")] | length' "$work/first.json")" \
    "archives written by the first export"

# 2. k3s-style import of each file ------------------------------------------------
# k3s decompresses a .tar.zst itself (a 32 MiB window at most), then imports
# the tar with all platforms; ctr cannot read zstd, so zstd does that part.
need zstd
k3s_import() { # FILE [ctr flags]
    local f=$1
    shift
    zstd -q -d --memory=32MB -c "$f" >"$work/one.tar" || fail "zstd -d --memory=32MB $f"
    load_containerd "$work/one.tar" --all-platforms "$@" >"$work/ctr" 2>&1 ||
        { show "$work/ctr"; fail "ctr images import --all-platforms $* $f"; }
}
[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"
for f in "$out"/amd64/*@*; do k3s_import "$f"; done
for k in "${keys[@]}"; do
    assert_eq "$(seed_manifest_for "$k" linux/amd64)" "$(containerd_image_target "$(seed_name "$k")" || true)" \
        "containerd target of $k (amd64 directory)"
done
assert_eq "$mv_amd" "$(containerd_image_target "$mv_name" || true)" "containerd target of $mv_name"
consumers_reset || fail "could not empty the consumers"
for f in "$out"/arm64/*@*; do k3s_import "$f" --no-unpack; done
assert_eq 3 "$(al_ctr images ls -q | wc -l)" "images from the arm64 directory"
consumers_reset || fail "could not empty the consumers"

# 3. Nothing changed: nothing touched ----------------------------------------------
before_amd=$(state "$out/amd64")
before_arm=$(state "$out/arm64")
sleep 1.1 # a rewrite would show in the mtime
export_split second
assert_eq "$(grep -v '^\.airlock-split.json ' <<<"$before_amd")" "$(state "$out/amd64" | grep -v '^\.airlock-split.json ')" \
    "amd64/ after an export with no change"
assert_eq "$(grep -v '^\.airlock-split.json ' <<<"$before_arm")" "$(state "$out/arm64" | grep -v '^\.airlock-split.json ')" \
    "arm64/ after an export with no change"
assert_grep "0 archives written \(0 B\), 6 unchanged" "$work/second.err" "stderr of the second export"
assert_eq 9 "$(jq '[.archives[] | select(.status == "unchanged")] | length' "$work/second.json")" \
    "archives unchanged in the report"

# 4. A tag moves upstream, the nightly fetch, the next export ---------------------
push_as library/alpine-ish:3.19 "$work/mv2.json"
mv_new=$(jq -r --arg r "$mv_repo:1" '.images[$r].digest' "$work/mv2.json")
run_fetch "$work/night2" --store "$store" -f "$list" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" --lock "$work/night2.lock"
expect_rc 0 "$work/night2" "the nightly fetch"
assert_eq moved "$(word_for "$work/night2.out" "$mv_name")" "fetch result of the moved tag"
old_file=$(name_of "$mv_repo:1" "$mv_amd")
new_file=$(name_of "$mv_repo:1" "$mv_new")
sleep 1.1
export_split third
assert_eq "$(grep -v -e '^\.airlock-split.json ' -e "^$old_file " <<<"$before_amd")" \
    "$(state "$out/amd64" | grep -v -e '^\.airlock-split.json ' -e "^$new_file ")" \
    "every other amd64 archive (inode, mtime, size) after the tag moved"
[ -f "$out/amd64/$new_file" ] || fail "the moved image's new archive $new_file is missing"
[ ! -e "$out/amd64/$old_file" ] || fail "the moved image's old archive $old_file is still there"
assert_eq "$(grep -v '^\.airlock-split.json ' <<<"$before_arm")" "$(state "$out/arm64" | grep -v '^\.airlock-split.json ')" \
    "arm64/ after the tag moved (the image is amd64-only)"
assert_eq "written $out/amd64/$new_file" \
    "$(jq -r '.archives[] | select(.status == "written") | "\(.status) \(.path)"' "$work/third.json")" \
    "the only archive written after the tag moved"
assert_eq "replaced $out/amd64/$old_file" \
    "$(jq -r '.archives[] | select(.status == "replaced") | "\(.status) \(.path)"' "$work/third.json")" \
    "the archive it replaced"
assert_grep "1 archive written \([0-9.]+ [kM]?B\), 5 unchanged, 1 replaced" "$work/third.err" "stderr"

# 5. --clean ---------------------------------------------------------------------
grep -v '^rancher/zstd-image:1$' "$list" >"$work/shorter.txt"
cp "$work/shorter.txt" "$list"
zfile=$(name_of rancher/zstd-image:1 "$(seed_manifest_for rancher/zstd-image:1 linux/amd64)")
export_split fourth
[ -f "$out/amd64/$zfile" ] || fail "without --clean, the archive of an image left out is kept"
before_amd=$(state "$out/amd64")
export_split fifth --clean
[ ! -e "$out/amd64/$zfile" ] || fail "--clean left $zfile"
assert_eq "$(grep -v -e '^\.airlock-split.json ' -e "^$zfile " <<<"$before_amd")" \
    "$(state "$out/amd64" | grep -v '^\.airlock-split.json ')" "amd64/ after --clean"
[ -f "$out/amd64/notes.txt" ] && [ -f "$out/amd64/vendor-images.tar.zst" ] ||
    fail "--clean removed files that are not airlock's"
assert_eq "removed $out/amd64/$zfile" \
    "$(jq -r '.archives[] | select(.status == "removed") | "\(.status) \(.path)"' "$work/fifth.json")" \
    "what --clean removed"
# --clean keeps what --since skipped: the far side holds everything here.
export_split sixth --clean --since "$work/night2.lock"
assert_eq 0 "$(jq '[.archives[] | select(.status == "removed" or .status == "written")] | length' "$work/sixth.json")" \
    "archives written or removed with --since and --clean when the far side holds everything"
assert_eq 8 "$(jq '[.skipped[] | select(.why == "since")] | length' "$work/sixth.json")" "since skips"

# 6. --since on a tarball export ----------------------------------------------------
tb=$work/tarballs
mkdir "$tb"
run_export "$work/since1" --store "$store" -f "$list" -p linux/amd64 --since "$work/night1.lock" \
    -o "$tb/delta.tar" --json "$work/since1.json"
expect_rc 0 "$work/since1" "--since night1.lock"
run_export "$work/chk" --check "$tb/delta.tar" --json "$work/chk.json"
expect_rc 0 "$work/chk" "--check of the delta"
assert_eq "$mv_name" "$(jq -r '.archives[0].images[].name' "$work/chk.json")" \
    "the only image of a tarball --since the first night's lock"
python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/export-report.schema.json" \
    "$work/since1.json" >"$work/since1.val" 2>&1 || { show "$work/since1.val"; fail "--since report"; }
# Chained on its own report: the far side now holds everything.
run_export "$work/since2" --store "$store" -f "$list" -p linux/amd64 --since "$work/since1.json" \
    -o "$tb/delta2.tar" --json "$work/since2.json"
expect_rc 0 "$work/since2" "--since REPORT"
[ ! -e "$tb/delta2.tar" ] || fail "--since its own report wrote $tb/delta2.tar"
assert_grep "nothing to write: the far side holds every image" "$work/since2.err" "stderr"
# A list without digests is refused, naming the line.
run_export "$work/since3" --store "$store" -f "$list" -p linux/amd64 --since "$list" -o "$tb/x.tar"
expect_rc 2 "$work/since3" "--since a list without digests"
assert_grep "images.txt:1: .* has no digest" "$work/since3.err" "stderr"

note "ok"
