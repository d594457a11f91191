#!/usr/bin/env bash
# Benchmark of a dead mirror (issue 15, item 7: the fallback of 40 images
# from a mirror that never answers must take under a minute with
# --connect-timeout 2, and must not grow with the number of images).
#
#   scripts/bench/mirror.sh [IMAGES...]     default: 10 40
#
# Builds a Release airlock in build-rel/, serves the scale benchmark's corpus
# (scripts/bench/scale.sh builds it once into $AL_BENCH_CACHE) with Debian's
# docker-registry on 127.0.0.1, and opens a "dead mirror": a socket that
# listens and never accepts, its accept queue filled first, so the kernel
# drops every further SYN and each connection attempt runs into the
# connect timeout. Per size, a cold fetch of the first IMAGES tags of the
# corpus with `--mirror REGISTRY=DEAD-MIRROR --connect-timeout 2`, against
# the same fetch without the mirror, measured in the same run: the
# difference is what the dead mirror costs, and the limit is 60 s.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(10 40)
cache=${AL_BENCH_CACHE:-/var/tmp/airlock-bench}
regdir=$cache/registry-scale-s1
[ -f "$cache/registry-scale-s1.pushed" ] ||
    { echo "mirror.sh: no scale corpus in $cache: run scripts/bench/scale.sh --quick once" >&2; exit 2; }

cmake -S "$repo" -B "$repo/build-rel" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$repo/build-rel" -j"$(nproc)" --target airlock-fetch >/dev/null
fetch=$repo/build-rel/airlock-fetch
work=$(mktemp -d /tmp/alb-mirror.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
reg_port=$(free_port)
cat >"$work/registry.yml" <<EOF
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $regdir
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$reg_port
EOF
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do curl -fs "http://127.0.0.1:$reg_port/v2/" >/dev/null && break; sleep 0.1; done

# The dead mirror: listen(0), fill the queue, never accept.
dead_port=$(free_port)
python3 - "$dead_port" >"$work/dead.log" 2>&1 <<'EOF' &
import socket, sys, time
port = int(sys.argv[1])
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", port))
srv.listen(0)
fill = []
for _ in range(4):
    c = socket.socket()
    c.setblocking(False)
    c.connect_ex(("127.0.0.1", port))
    fill.append(c)
print("ready", flush=True)
while True:
    time.sleep(3600)
EOF
pids+=($!)
for _ in $(seq 50); do grep -q ready "$work/dead.log" && break; sleep 0.1; done

reg=127.0.0.1:$reg_port
dead=127.0.0.1:$dead_port
# One fetch, timed; prints "<wall seconds> <exit status>".
timed() {
    python3 - "$@" <<'EOF'
import subprocess, sys, time
s = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(f"{time.perf_counter() - s:.2f} {r.returncode}")
EOF
}

printf '%-7s %12s %14s %12s %14s\n' images no_mirror_s dead_mirror_s extra_s vs_60s_limit
for n in "${sizes[@]}"; do
    list=$work/list-$n.txt
    find "$regdir/docker/registry/v2/repositories/bench-scale" -mindepth 1 -maxdepth 1 -printf '%f\n' |
        sort | head -n "$n" | sed "s|^|$reg/bench-scale/|; s|\$|:1.0|" >"$list"
    [ "$(wc -l <"$list")" = "$n" ] || { echo "mirror.sh: the corpus has fewer than $n repositories" >&2; exit 2; }
    read -r t0 rc0 < <(timed "$fetch" --store "$work/s0-$n" -q -f "$list")
    read -r t1 rc1 < <(timed "$fetch" --store "$work/s1-$n" -q -f "$list" --mirror "$reg=$dead" \
        --connect-timeout 2)
    [ "$rc0" = 0 ] && [ "$rc1" = 0 ] ||
        { echo "mirror.sh: $n images: exit $rc0 without the mirror, $rc1 with it" >&2; exit 1; }
    extra=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
    printf '%-7s %12s %14s %12s %13sx\n' "$n" "$t0" "$t1" "$extra" \
        "$(python3 -c "print(f'{$t1 / 60:.3f}')")"
done
echo "The dead mirror's cost (extra_s) is the one call that probes the host: its first try and"
echo "--retries (default 4) retries, each a --connect-timeout (2 s), with backoff between them;"
echo "the other images wait for it and then fall back at once, so it does not grow with them."
