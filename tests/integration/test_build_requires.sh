#!/usr/bin/env bash
# The build asks for what the code needs (issue 15, "Smaller"): db/ uses
# upsert and window functions, so configuring against an SQLite older than
# 3.25 must fail at cmake time, naming the requirement, rather than build
# a binary whose queries fail at run time. A copy of the system's
# sqlite3.pc claiming 3.24.0 comes first on PKG_CONFIG_PATH.
. "$(dirname "$0")/lib.sh"
need cmake
need pkg-config

work=$(tmpdir buildreq)
pc_dir=$(pkg-config --variable=pcfiledir sqlite3) || fail "pkg-config knows no sqlite3"
mkdir -p "$work/pc"
sed -E 's/^Version:.*/Version: 3.24.0/' "$pc_dir/sqlite3.pc" >"$work/pc/sqlite3.pc"
assert_eq 3.24.0 "$(PKG_CONFIG_PATH=$work/pc pkg-config --modversion sqlite3)" "the stand-in's version"
rc=0
PKG_CONFIG_PATH=$work/pc cmake -S "$AL_SRC" -B "$work/build" -DAIRLOCK_TESTS=OFF \
    >"$work/cmake.out" 2>&1 || rc=$?
[ "$rc" != 0 ] || { show "$work/cmake.out"; fail "cmake accepted SQLite 3.24"; }
assert_grep "sqlite3 ?>= ?3\.25" "$work/cmake.out" "cmake's message"
note "cmake refuses SQLite 3.24 (wants >= 3.25)"
note "ok"
