#!/usr/bin/env bash
# One fetch (TLS registry, HTTP/2, several images) and one export (zstd)
# under valgrind's memcheck: no invalid access, no uninitialised use, no
# definite or indirect leak. The sanitizer build cannot run under valgrind,
# so this builds the two programs plainly (-O1 -g) into a private directory.
. "$(dirname "$0")/lib.sh"
rig_up
need valgrind

work=$(tmpdir valgrind)
cmake -S "$AL_SRC" -B "$work/build" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS=-O1 \
    -DAIRLOCK_TESTS=OFF >"$work/cmake.log" 2>&1 || { show "$work/cmake.log"; fail "configure"; }
cmake --build "$work/build" -j2 --target airlock-fetch airlock-export >"$work/build.log" 2>&1 ||
    { show "$work/build.log"; fail "build"; }

vg=(valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite,indirect
    --show-leak-kinds=definite,indirect -q)
store=$work/store
RC=0
"${vg[@]}" "$work/build/airlock-fetch" --store "$store" --registry "$AL_REG_TLS" \
    --ca-cert "$AL_CA_CERT" busybox:1.36 rancher/mirrored-pause:3.6 rancher/zstd-image:1 \
    library/nested:1 >"$work/fetch.out" 2>"$work/fetch.err" || RC=$?
[ "$RC" = 0 ] || { show "$work/fetch.err"; fail "fetch under valgrind: exit $RC"; }
assert_no_grep "==[0-9]+==" "$work/fetch.err" "valgrind report of the fetch"

RC=0
"${vg[@]}" "$work/build/airlock-export" --store "$store" --all --platform linux/amd64,linux/arm64 \
    -o "$work/img-{arch}.tar.zst" >"$work/export.out" 2>"$work/export.err" || RC=$?
[ "$RC" = 0 ] || { show "$work/export.err"; fail "export under valgrind: exit $RC"; }
assert_no_grep "==[0-9]+==" "$work/export.err" "valgrind report of the export"
assert_file "$work/img-amd64.tar.zst"
assert_file "$work/img-arm64.tar.zst"
note "fetch and export clean under memcheck"
