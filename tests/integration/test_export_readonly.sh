#!/usr/bin/env bash
# airlock-export is the air-gapped side: it reads a store it may not write
# (a DVD, a read-only mount) and links no network code.
#   - from a read-only bind mount of the store as airlock-fetch left it, and
#     from a read-only copy holding only airlock.db (no -wal/-shm, no lock,
#     no tmp/), the export succeeds and writes the same bytes as from the
#     writable store, for a list and for --all;
#   - `ldd airlock-export` shows no libcurl (airlock-fetch's does: the check
#     sees it when it is there), and no curl symbol is imported.
. "$(dirname "$0")/lib.sh"
rig_up
need tar
need mount
need ldd
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 rancher/zstd-image:1 library/nested:1)
work=$(tmpdir readonly)
store=$work/store
fetch_seeded "$store" "$work" "${keys[@]}"

# ro_mount SRC: set RO to a read-only bind mount of SRC, unmounted on exit
# (before the test's directory is removed: cleanups run in reverse order).
# Not for $(...): the cleanup must be registered in this shell.
RO=
ro_mount() {
    RO=$(tmpdir ro)
    mount --bind -o ro "$1" "$RO" || fail "mount --bind -o ro $1 (needs root)"
    on_exit "umount '$RO' 2>/dev/null || umount -l '$RO'"
    if touch "$RO/probe" 2>/dev/null; then fail "$RO is writable: the bind mount is not read-only"; fi
}

# The reference: the same exports from the writable store.
run_export "$work/ref" --store "$store" -o "$work/ref.tar" "${keys[@]}"
expect_rc 0 "$work/ref" "export from the writable store"
run_export "$work/ref-all" --store "$store" -o "$work/ref-all.tar.zst" --all
expect_rc 0 "$work/ref-all" "export --all from the writable store"

# 1. The store itself, mounted read-only --------------------------------------
ro_mount "$store"
ro=$RO
run_export "$work/ro" --store "$ro" -o "$work/ro.tar" "${keys[@]}"
expect_rc 0 "$work/ro" "export from a read-only mount of the store"
cmp -s "$work/ref.tar" "$work/ro.tar" || fail "the read-only store gave a different tarball"
run_export "$work/ro-all" --store "$ro" -o "$work/ro-all.tar.zst" --all
expect_rc 0 "$work/ro-all" "export --all from a read-only mount of the store"
cmp -s "$work/ref-all.tar.zst" "$work/ro-all.tar.zst" || fail "--all from the read-only store differs"

# 2. A minimal read-only copy: what a copy made while no fetch runs holds ------
copy=$work/copy
mkdir -p "$copy/blobs"
cp -a "$store/oci-layout" "$store/index.json" "$store/airlock.db" "$copy/"
cp -a "$store/blobs/sha256" "$copy/blobs/"
assert_eq "" "$(cd "$copy" && ls -d airlock.db-* lock tmp 2>/dev/null)" "extra files in the copy"
ro_mount "$copy"
ro2=$RO
run_export "$work/ro2" --store "$ro2" -o "$work/ro2.tar" "${keys[@]}"
expect_rc 0 "$work/ro2" "export from a read-only copy of the store (airlock.db alone)"
cmp -s "$work/ref.tar" "$work/ro2.tar" || fail "the read-only copy gave a different tarball"
tar -tf "$work/ro2.tar" >/dev/null || fail "tar cannot read the export of the read-only copy"

# 3. No network code -----------------------------------------------------------
ldd "$EXPORT" >"$work/ldd-export" || fail "ldd $EXPORT"
assert_no_grep 'libcurl' "$work/ldd-export" "ldd airlock-export"
ldd "$FETCH" >"$work/ldd-fetch" || fail "ldd $FETCH"
assert_grep 'libcurl' "$work/ldd-fetch" "ldd airlock-fetch (the check must see libcurl where it is)"
nm -D --undefined-only "$EXPORT" >"$work/nm-export" 2>&1 || fail "nm -D $EXPORT"
assert_no_grep 'curl_' "$work/nm-export" "symbols airlock-export imports"

note "ok"
