#!/usr/bin/env bash
# Benchmark of list-file parsing (issue: a 100,000-line list must parse in
# under 2 s, and the cost must grow linearly with the number of lines).
#
#   scripts/bench/lists.sh [LINES...]     default: 10000 100000
#
# Builds a Release airlock in build-rel/ (like scripts/bench/run.sh), writes
# a list of LINES distinct refs written twice (the second spelling a
# duplicate) with one bad line at the end, so that both programs parse and
# validate every line, report the bad one and exit 2 before any network or
# store access. Prints, per size, the wall time of airlock-fetch and
# airlock-export, the per-line cost, and the ratio to `sort -u` of the same
# file measured in the same run (a peer that reads and deduplicates lines).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10000 100000)

cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j"$(nproc)" --target airlock-fetch airlock-export >/dev/null
work=$(mktemp -d /tmp/alb-lists.XXXXXX)
trap 'rm -rf "$work"' EXIT

# Best of three wall times of a command, in seconds.
wall() {
    python3 - "$@" <<'EOF2'
import subprocess, sys, time
best = None
for _ in range(3):
    s = time.perf_counter()
    subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t = time.perf_counter() - s
    best = t if best is None or t < best else best
print(f"{best:.4f}")
EOF2
}

printf '%-8s %-10s %10s %12s %10s\n' lines program wall_s us_per_line vs_sort_u
declare -A per_line
for n in "${sizes[@]}"; do
    list=$work/list-$n.txt
    python3 - "$n" >"$list" <<'EOF'
import sys
n = int(sys.argv[1])
for i in range(n):
    print(f"registry.example.com/team{i % 97}/app{i}:v{i % 13}")
for i in range(n):
    print(f"registry.example.com/team{i % 97}/app{i}:v{i % 13}   # duplicate")
print("not a ref")
EOF
    peer=$(wall sort -u "$list")
    for prog in fetch export; do
        args=(--store "$work/no-store" -f "$list")
        [ "$prog" = export ] && args+=(-o "$work/out.tar")
        rc=0
        "$repo/build-rel/airlock-$prog" "${args[@]}" >/dev/null 2>"$work/err" || rc=$?
        if [ "$rc" != 2 ] || ! grep -q "list-$n.txt:$((2 * n + 1)):" "$work/err"; then
            echo "lists.sh: airlock-$prog did not report the bad last line (exit $rc)" >&2
            cat "$work/err" >&2
            exit 1
        fi
        t=$(wall "$repo/build-rel/airlock-$prog" "${args[@]}")
        us=$(python3 -c "print(f'{$t * 1e6 / (2 * $n):.2f}')")
        ratio=$(python3 -c "print(f'{$t / max($peer, 1e-4):.1f}x')")
        per_line[$prog-$n]=$us
        printf '%-8s %-10s %10s %12s %10s\n' "$((2 * n + 1))" "airlock-$prog" "$t" "$us" "$ratio"
    done
done
if [ ${#sizes[@]} -ge 2 ]; then
    lo=${sizes[0]} hi=${sizes[-1]}
    for prog in fetch export; do
        python3 -c "a=${per_line[$prog-$lo]}; b=${per_line[$prog-$hi]}; print(f'airlock-$prog: per-line cost at $hi lines is {b/a:.2f}x the cost at $lo lines (linear: about 1)')"
    done
fi
