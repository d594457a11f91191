#!/usr/bin/env bash
# --help, the man pages and the flags the programs accept stay in step.
# For airlock-fetch, airlock-export and airlock-push:
#   - every long option of the option tables (export/main.c's `struct
#     option long_opts[]`; for fetch and push, the `options[]` of their
#     main file, which also names each option's handler, and the shared
#     one of fetch/cmdline.c; parsed from the source, so nothing extra
#     ships) appears in --help and in man/PROG.1, and every short option
#     of the getopt string appears in --help as "-X,";
#   - every --flag that --help or the man page mentions is in the table,
#     and the program, run with it, does not call it unrecognized;
#   - the man page renders without groff warnings (when groff is here).
# Needs no services.
. "$(dirname "$0")/lib.sh"

work=$(tmpdir help)

# long_options SRC...: the names in the option tables, one per line.
long_options() {
    local f
    for f in "$@"; do
        sed -nE '/(struct option long_opts|[} ]options)\[\] *= *\{/,/^\};/p' "$f" | grep -oE '\{"[a-z0-9][a-z0-9-]*"' | tr -d '{"'
    done
}
# short_options SRC...: the letters of the getopt_long optstring.
short_options() {
    cat "$@" | grep -oE 'getopt_long\(argc, argv, "[^"]*"' | sed -E 's/.*"([^"]*)"/\1/' | tr -d ':' | grep -o .
}
# Files are read through plain() (roff's \- read as -), into a file:
# with pipefail, `sed | grep -q` would fail when grep stops reading early.
plain() { sed 's/\\-/-/g' "$1" >"$1.plain"; }
# flags_in FILE: every --flag written in FILE.
flags_in() {
    plain "$1"
    grep -oE -- '(^|[^a-zA-Z0-9-])--[a-z][a-z0-9-]*' "$1.plain" | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u
}
# has_flag FILE FLAG: FILE mentions --FLAG as a whole word.
has_flag() {
    plain "$1"
    grep -qE -- "(^|[^a-zA-Z0-9-])--$2([^a-z0-9-]|\$)" "$1.plain"
}

checked=0
# main_of PROG: the source file that holds PROG's option table.
main_of() {
    case $1 in
    push) echo "$AL_SRC/fetch/push-main.c" ;;
    *) echo "$AL_SRC/$1/main.c" ;;
    esac
}

for prog in fetch export push; do
    bin=$AL_BIN/airlock-$prog
    src=$(main_of "$prog")
    man=$work/airlock-$prog.1
    assert_file "$AL_SRC/man/airlock-$prog.1" "man page of airlock-$prog"
    cp "$AL_SRC/man/airlock-$prog.1" "$man"
    [ -x "$bin" ] || fail "airlock-$prog is not built: $bin"
    assert_file "$src" "source of airlock-$prog"

    tables=("$src")
    [ "$prog" = export ] || tables+=("$AL_SRC/fetch/cmdline.c")
    mapfile -t longs < <(long_options "${tables[@]}")
    [ "${#longs[@]}" -ge 5 ] || fail "found only ${#longs[@]} long options in ${tables[*]}: is the table still called long_opts or options?"
    mapfile -t shorts < <(short_options "${tables[@]}")
    [ "${#shorts[@]}" -ge 2 ] || fail "found no getopt_long optstring in $src"

    help=$work/$prog.help
    rc=0
    "$bin" --help >"$help" 2>"$work/$prog.help.err" || rc=$?
    [ "$rc" = 0 ] || { show "$work/$prog.help.err"; fail "airlock-$prog --help: exit $rc"; }
    [ -s "$help" ] || fail "airlock-$prog --help printed nothing on stdout"

    # 1. Table -> --help and man page.
    for o in "${longs[@]}"; do
        has_flag "$help" "$o" || { show "$help"; fail "airlock-$prog accepts --$o but --help does not mention it"; }
        has_flag "$man" "$o" || fail "airlock-$prog accepts --$o but man/airlock-$prog.1 does not document it"
        checked=$((checked + 1))
    done
    for s in "${shorts[@]}"; do
        grep -qE -- "(^|[^a-zA-Z0-9-])-$s," "$help" || { show "$help"; fail "airlock-$prog accepts -$s but --help does not show '-$s,'"; }
    done

    # 2. --help and man page -> table, and the program accepts them.
    for f in $(cat <(flags_in "$help") <(flags_in "$man") | sort -u); do
        name=${f#--}
        # Not `printf | grep -q`: with pipefail, grep stopping at the
        # first match can fail printf with SIGPIPE (seen under load).
        grep -qxF -- "$name" <<<"$(printf '%s\n' "${longs[@]}")" ||
            fail "airlock-$prog: --help or its man page mentions $f, which is not in its option tables"
    done
    for f in $(flags_in "$help"); do
        # An empty store path and no refs: every flag ends in a usage or
        # store error at worst, never in network traffic or a write
        # outside $work.
        out=$work/run
        rc=0
        (cd "$work" && AIRLOCK_STORE=$work/no-store timeout 30 "$bin" "$f" </dev/null >"$out.out" 2>"$out.err") || rc=$?
        [ "$rc" != 124 ] || fail "airlock-$prog $f did not finish within 30 s"
        if grep -qiE "unrecognized option|unknown option|invalid option|ambiguous" "$out.err"; then
            show "$out.err"
            fail "--help of airlock-$prog mentions $f, but airlock-$prog $f says it does not know it"
        fi
    done

    # 3. The man page renders cleanly.
    need groff
    warn=$(groff -man -Tutf8 -ww -z "$man" 2>&1) || true
    [ -z "$warn" ] || fail "man/airlock-$prog.1: groff warnings: $warn"
    grep -q "^\.TH AIRLOCK-$(tr a-z A-Z <<<"$prog") 1 " "$man" || fail "man/airlock-$prog.1: .TH line"
    note "airlock-$prog: ${#longs[@]} long and ${#shorts[@]} short options in --help and the man page"
done
[ "$checked" -gt 0 ] || fail "checked nothing"

# 4. cmake --install puts the programs and their man pages in place, and
# `man` finds and renders them there.
need man
prefix=$(tmpdir prefix)
cmake --install "$AL_BIN" --prefix "$prefix" >"$prefix.log" 2>&1 || { show "$prefix.log"; fail "cmake --install"; }
for prog in fetch export push; do
    [ -x "$prefix/bin/airlock-$prog" ] || fail "cmake --install: no bin/airlock-$prog"
    MANPAGER=cat MANWIDTH=80 man -M "$prefix/share/man" "airlock-$prog" >"$prefix.$prog.txt" 2>&1 ||
        { show "$prefix.$prog.txt"; fail "man airlock-$prog after install"; }
    grep -q "airlock-$prog" "$prefix.$prog.txt" || fail "man airlock-$prog: nothing rendered"
    grep -q -- "--store" "$prefix.$prog.txt" || fail "man airlock-$prog: no --store in the page"
done
note "ok"
