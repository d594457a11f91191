#!/usr/bin/env bash
# The store under concurrent use and a full disk:
#   - a second airlock-fetch on a store in use stops at once with "busy"
#     (exit 3) and changes nothing;
#   - an export while a fetch is under way sees a consistent snapshot;
#   - a full disk (a small tmpfs) is a clean error: exit 1, the failed
#     image named with "No space left on device", nothing half-written
#     visible, and the images that fit are stored;
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

# A fetch that hangs on a blob holds the store.
pause_layer=$(seed_blobs rancher/mirrored-pause:3.6 '.kind == "layer"' | head -1)
fault_rules "{\"rules\":[{\"id\":\"s\",\"path\":\"/blobs/$pause_layer\",\"action\":\"stall\",\"bytes\":-1,\"seconds\":60}]}"
"$FETCH" --store "$store" --registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY" \
    --stall-timeout 120 rancher/mirrored-pause:3.6 >"$work/holder.out" 2>&1 &
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
run_fetch "$work/enospc" --store "$full/store" --registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN" \
    rancher/mirrored-pause:3.6 busybox:1.36 calico/node:v3.28.0
[ "$RC" = 1 ] || [ "$RC" = 3 ] || { show "$work/enospc.out"; show "$work/enospc.err"; fail "full disk: exit $RC"; }
cat "$work/enospc.out" "$work/enospc.err" >"$work/enospc.all"
assert_grep "No space left on device" "$work/enospc.all" "full-disk message"
assert_no_grep "AddressSanitizer|runtime error" "$work/enospc.all" "full-disk output"
# Whatever is in blobs/ is whole and right; no half-written partials remain
# for blobs that failed on the disk (they were removed, not left to resume).
for f in "$full"/store/blobs/sha256/*; do
    [ -e "$f" ] || continue
    [ "$(sha256sum <"$f" | cut -d' ' -f1)" = "$(basename "$f")" ] || fail "full disk: $f is damaged"
done
if [ -f "$full/store/airlock.db" ]; then
    sqlite3 "$full/store/airlock.db" 'PRAGMA integrity_check' | grep -qx ok || fail "full disk: database damaged"
    while IFS='|' read -r name size; do
        [ -f "$full/store/blobs/sha256/${name#sha256:}" ] || fail "full disk: row without file for $name"
    done < <(sqlite3 "$full/store/airlock.db" 'SELECT digest, size FROM blobs')
fi
note "busy store refused, export snapshot consistent, full disk clean"
