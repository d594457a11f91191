#!/usr/bin/env bash
# The store under concurrent use and a full disk:
#   - a second airlock-fetch on a store in use stops at once with "busy"
#     (exit 3) and changes nothing;
#   - an export while a fetch is under way sees a consistent snapshot;
#   - a full disk (a small tmpfs holding a store with one small image) is a
#     clean error: exit 1, a FAILED line per image that did not fit, naming
#     the image, the blob and "No space left on device"; afterwards tmp/ is
#     empty (the partials of failed blobs removed, not left to resume), no
#     failed blob has a file or a row, the image that fitted is still
#     there, and --verify-store finds the store clean;
#   - files and directories get ordinary modes (0644 / 0755 under umask 022).
. "$(dirname "$0")/lib.sh"
rig_up
need jq
need curl

work=$(tmpdir safety)
EXPORT=$AL_BIN/airlock-export

fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"

# --- a busy store ------------------------------------------------------------------
store=$work/store
(umask 022 && "$FETCH" --store "$store" --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN" \
    busybox:1.36 >"$work/first.out" 2>&1) || fail "first fetch"
# Modes: ordinary files, no world-writable anything.
bad_modes=$(find "$store" \( -type f ! -perm 644 \) -o \( -type d ! -perm 755 \) | grep -v -e '-wal$' -e '-shm$' || true)
[ -z "$bad_modes" ] || fail "unexpected modes: $(ls -ld $bad_modes | head -3)"

# A fetch that hangs on a blob holds the store. It runs one transfer at a
# time and every blob request stalls, so once the stall has fired the holder
# writes nothing more while the store is compared below.
fault_rules '{"rules":[{"id":"s","path":"/blobs/","action":"stall","bytes":-1,"seconds":60}]}'
"$FETCH" --store "$store" --registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY" \
    -j 1 --stall-timeout 120 rancher/mirrored-pause:3.6 >"$work/holder.out" 2>&1 &
holder=$!
on_exit "kill $holder 2>/dev/null"
for _ in $(seq 100); do
    [ "$(fault_fired s)" -ge 1 ] && break
    sleep 0.1
done
snapshot=$(cd "$store" && find blobs index.json -type f | sort | xargs sha256sum)
run_fetch "$work/second" --store "$store" --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN" calico/node:v3.28.0
expect_rc 3 "$work/second" "a second fetch on a busy store"
assert_grep "busy" "$work/second.err" "busy message"
[ "$(wc -l <"$work/second.err")" -le 2 ] || { show "$work/second.err"; fail "more than one line for a busy store"; }
assert_eq "$snapshot" "$(cd "$store" && find blobs index.json -type f | sort | xargs sha256sum)" "store after the refused fetch"

# An export meanwhile reads a consistent snapshot: the image already there.
RC=0
"$EXPORT" --store "$store" busybox:1.36 -o "$work/during.tar" >"$work/during.out" 2>"$work/during.err" || RC=$?
[ "$RC" = 0 ] || { show "$work/during.err"; fail "export during a fetch: exit $RC"; }
tar -tf "$work/during.tar" >"$work/during.list"
grep -qx 'manifest.json' "$work/during.list" || fail "export during a fetch: no manifest.json"
# ...and does not see the image still being fetched.
RC=0
"$EXPORT" --store "$store" rancher/mirrored-pause:3.6 -o "$work/pending.tar" >"$work/pending.out" 2>"$work/pending.err" || RC=$?
assert_eq 1 "$RC" "export of the image being fetched"
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
fault_rules '{"rules": []}'

# --- a full disk ---------------------------------------------------------------------
full=$work/full
mkdir -p "$full"
mount -t tmpfs -o size=1500k tmpfs "$full" || fail "cannot mount a tmpfs (need root)"
on_exit "umount -l '$full' 2>/dev/null"
fs=$full/store
full_args=(--store "$fs" --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")
# The pause image (a few kB) fits; busybox (two 1 MB layers) cannot, nor
# calico/node, which shares busybox's layers.
run_fetch "$work/enospc0" "${full_args[@]}" rancher/mirrored-pause:3.6
expect_rc 0 "$work/enospc0" "a small image on the small disk"
run_fetch "$work/enospc" "${full_args[@]}" rancher/mirrored-pause:3.6 busybox:1.36 calico/node:v3.28.0
expect_rc 1 "$work/enospc" "fetch onto a full disk"
cat "$work/enospc.out" "$work/enospc.err" >"$work/enospc.all"
assert_no_grep "AddressSanitizer|runtime error" "$work/enospc.all" "full-disk output"
assert_eq unchanged "$(word_for "$work/enospc.out" docker.io/rancher/mirrored-pause:3.6)" "the image that fitted"
for name in docker.io/library/busybox:1.36 docker.io/calico/node:v3.28.0; do
    line_for "$work/enospc.out" "$name" >"$work/enospc.line"
    assert_grep "^FAILED +$name +blob sha256:[0-9a-f]{64}: .*No space left on device$" "$work/enospc.line" "the FAILED line of $name"
done
assert_grep "^3 images: 1 ok, 2 failed" "$work/enospc.out" "full-disk summary"
# What the failures leave: no partial in tmp/, no file and no row for any
# blob that failed, the tag that fitted, and a store --verify-store accepts.
leftover=$(ls -A "$fs/tmp")
[ -z "$leftover" ] || fail "full disk: left in tmp/: $leftover"
failed_blobs=$(grep -oE '^FAILED .* blob sha256:[0-9a-f]{64}' "$work/enospc.out" | grep -oE 'sha256:[0-9a-f]{64}$' | sort -u)
[ -n "$failed_blobs" ] || fail "full disk: no failed blob named"
for d in $failed_blobs; do
    store_has_blob "$fs" "$d" && fail "full disk: the failed blob $d is in blobs/"
    assert_eq 0 "$(db "$fs" "SELECT count(*) FROM blobs WHERE digest = '$d'")" "rows of the failed blob $d"
done
assert_eq docker.io/rancher/mirrored-pause:3.6 "$(db "$fs" 'SELECT full_name FROM tags')" "tags after the full disk"
sqlite3 "$fs/airlock.db" 'PRAGMA integrity_check' | matches -x ok || fail "full disk: database damaged"
RC=0
"$EXPORT" --store "$fs" --verify-store >"$work/enospc-verify.out" 2>&1 || RC=$?
[ "$RC" = 0 ] || { show "$work/enospc-verify.out"; fail "full disk: --verify-store exit $RC"; }
assert_grep "^store OK: " "$work/enospc-verify.out" "--verify-store after the full disk"
note "busy store refused, export snapshot consistent, full disk clean"
