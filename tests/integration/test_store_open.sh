#!/usr/bin/env bash
# Opening the store (issue 15, "Smaller"), without services:
#   1. a shared lock on STORE/lock, as --verify-store's probe takes for an
#      instant (held here for 0.7 s with flock(1)): a fetch starting then
#      waits for it and succeeds; an exclusive one (another fetch) still
#      makes it exit 3 at once, naming the store as busy;
#   2. a fetch that creates a store (and its parents) fsyncs every new
#      directory into its parent: strace shows, for each mkdir, an fsync of
#      the directory it was made in;
#   3. --store= (empty) is a usage error (exit 2) in both programs, and so
#      is -o '' in airlock-export; nothing is created.
. "$(dirname "$0")/lib.sh"
need flock
[ -x "$FETCH" ] || fail "airlock-fetch is not built: $FETCH"
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

work=$(tmpdir storeopen)
store=$work/store
run_fetch "$work/init" --store "$store" --prune
expect_rc 0 "$work/init" "airlock-fetch --prune on a new store"

# 1. Readers' probes are waited out; a writer's lock is not ----------------------
hold() { # MODE SECONDS: hold MODE (-s/-x) on STORE/lock in the background until told
    rm -f "$work/held"
    flock "$1" "$store/lock" -c "touch '$work/held'; sleep $2" &
    holder=$!
    for _ in $(seq 100); do
        [ -e "$work/held" ] && return 0
        sleep 0.05
    done
    fail "flock $1 did not take $store/lock"
}
hold -s 0.7
run_fetch "$work/probe" --store "$store" --prune
wait "$holder"
expect_rc 0 "$work/probe" "airlock-fetch while a reader's shared lock is held for 0.7 s"
hold -x 5
t0=$(date +%s%N)
run_fetch "$work/busy" --store "$store" --prune
t1=$(date +%s%N)
kill "$holder" 2>/dev/null || true
wait "$holder" 2>/dev/null || true
expect_rc 3 "$work/busy" "airlock-fetch while another writer holds the lock"
assert_grep "store .*store is busy: another airlock-fetch holds its lock" "$work/busy.err" "the busy message"
ms=$(((t1 - t0) / 1000000))
[ "$ms" -lt 1500 ] || fail "the busy fetch took $ms ms: it waited for a writer instead of failing"
note "a shared holder is waited out, an exclusive one gives exit 3 (in $ms ms)"

# 2. New directories are fsynced into their parents ---------------------------
if command -v strace >/dev/null; then
    new=$work/new/a/b
    # (LeakSanitizer cannot run under ptrace: off for this run of an ASan build.)
    ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 \
        strace -f -y -o "$work/strace" -e trace=mkdir,mkdirat,fsync "$FETCH" --store "$new" --prune \
        >"$work/create.out" 2>"$work/create.err" || { show "$work/create.err"; fail "creating $new"; }
    # every successful mkdir: the parent it was made in
    parents=$(sed -nE 's/.*mkdir\("([^"]+)", [0-7]+\) = 0$/\1/p' "$work/strace" | xargs -r -n1 dirname)
    parents+=$'\n'$(sed -nE 's/.*mkdirat\([0-9]+<([^>]+)>, "[^"]+", [0-7]+\) = 0$/\1/p' "$work/strace")
    n=0
    for p in $parents; do
        grep -qE "fsync\([0-9]+<$p>\) = 0" "$work/strace" || { show "$work/strace"; fail "no fsync of $p after a directory was made in it"; }
        n=$((n + 1))
    done
    [ "$n" -ge 6 ] || { show "$work/strace"; fail "only $n directories were made for a new store below a new path"; }
    note "$n new directories, each fsynced into its parent"
else
    fail "strace is not installed (scripts/install-deps.sh)"
fi

# 3. Empty --store and -o ---------------------------------------------------------
cd "$work"
run_fetch "$work/empty-store" --store= --prune
expect_rc 2 "$work/empty-store" "airlock-fetch --store="
assert_grep "--store: expected a directory" "$work/empty-store.err" "airlock-fetch's message"
run_export "$work/empty-store-x" --store= --list
expect_rc 2 "$work/empty-store-x" "airlock-export --store= --list"
assert_grep "--store: expected a directory" "$work/empty-store-x.err" "airlock-export's message"
run_export "$work/empty-o" --store "$store" -o '' --all
expect_rc 2 "$work/empty-o" "airlock-export -o ''"
assert_grep "-o: expected a file name" "$work/empty-o.err" "airlock-export's message"
[ ! -e "$work/airlock-store" ] || fail "an empty --store made ./airlock-store"
note "--store= and -o '' are usage errors"
note "ok"
