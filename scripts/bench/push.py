#!/usr/bin/env python3
"""Benchmark of airlock-push (not a test). Start it through
scripts/bench/push.sh, which builds a Release airlock first.

The bench corpus (corpus.py: 20 images, two platforms, ~411 MB of gzip
layers) is pushed to a private docker-registry (the source) and fetched,
every platform, into a store. The target is another docker-registry, on a
fixed port, started afresh (empty storage) before every cold run, behind
shaper.py: --delay-ms of round trip per request and per new connection,
uploads paced to --up-mbit for all connections together (downloads are not
limited: a push sends). Measured in the same run:

cold    airlock-push --all --to SHAPED/airlock into the empty target. The
        limit is the blob bytes the target took (every blob once: the
        corpus's unique blobs) divided by the link's bandwidth. Target:
        wall <= 1.15x the limit. Peers, each into an empty target as well:
        skopeo copy --all oci:STORE:REF docker://SHAPED/skopeo/REF for each
        of the 20 images in turn (a script over the list), and one skopeo
        sync --all of the same images from the source registry (not
        shaped) into the target.
no-op   the same airlock-push again, nothing changed: requests per tag (the
        shaper's count) and wall.
Everything started is stopped by PID; the work directory is removed unless
--keep.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402
import k3s as k3s_mod  # noqa: E402  (start_registry(), free_port(), timed())

MB = 1_000_000


def log(msg):
    print(f"bench-push: {msg}", file=sys.stderr, flush=True)


def wait_port(port):
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


class Target:
    """An empty docker-registry on a fixed port, restarted afresh on demand."""

    def __init__(self, work):
        self.work = work
        self.port = k3s_mod.free_port()
        self.proc = None
        self.n = 0

    def fresh(self):
        self.stop()
        self.n += 1
        d = os.path.join(self.work, f"target-{self.n}")
        os.makedirs(d)
        cfg = os.path.join(d, "config.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {d}/storage
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.port}
""")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        wait_port(self.port)
        if self.n > 1:
            shutil.rmtree(os.path.join(self.work, f"target-{self.n - 1}"), ignore_errors=True)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


class Shaper:
    def __init__(self, work, upstream_port, a):
        self.port, self.ctl = k3s_mod.free_port(), k3s_mod.free_port()
        self.proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "shaper.py"), "--listen", str(self.port),
             "--control", str(self.ctl), "--upstream", f"127.0.0.1:{upstream_port}",
             "--delay-ms", str(a.delay_ms), "--total-mbit", "0", "--conn-mbit", "0",
             "--up-total-mbit", str(a.up_mbit), "--up-conn-mbit", "0"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "shaper.log"), "wb"))
        wait_port(self.ctl)
        self.addr = f"127.0.0.1:{self.port}"

    def stats(self, reset=False):
        """The counters; first waits (up to 3 s) for the client's connections
        to close, so that its last bytes are counted."""
        for _ in range(30):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.ctl}/{'reset' if reset else 'stats'}") as r:
                s = json.loads(r.read())
            if reset or s["active"] == 0:
                return s
            time.sleep(0.1)
        return s

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def cold_airlock(a, target, shaper, store, work, i):
    target.fresh()
    shaper.stats(reset=True)
    report = os.path.join(work, f"push-{i}.json")
    t = k3s_mod.timed([a.push, "--store", store, "-q", "--all", "--to", f"{shaper.addr}/airlock",
               "--json", report])
    s = shaper.stats()
    with open(report) as f:
        rep = json.load(f)
    log(f"airlock cold push {i}: {t:.2f} s, {s['bytes_up'] / MB:.1f} MB up, "
        f"{s['requests']} requests over {s['connections']} connections")
    return t, s, rep


def noop_airlock(a, shaper, store):
    shaper.stats(reset=True)
    t = k3s_mod.timed([a.push, "--store", store, "-q", "--all", "--to", f"{shaper.addr}/airlock"])
    s = shaper.stats()
    log(f"airlock no-op push: {t:.2f} s, {s['requests']} requests")
    return t, s


def skopeo_copy(target, shaper, store, refs, i):
    target.fresh()
    shaper.stats(reset=True)
    t0 = time.monotonic()
    for ref in refs:
        k3s_mod.timed(["skopeo", "copy", "-q", "--all", "--dest-tls-verify=false",
               f"oci:{store}:docker.io/{ref}", f"docker://{shaper.addr}/skopeo/{ref}"])
    t = time.monotonic() - t0
    s = shaper.stats()
    log(f"skopeo copy oci: {i}: {t:.2f} s, {s['bytes_up'] / MB:.1f} MB up, {s['requests']} requests")
    return t, s


def skopeo_sync(target, shaper, src, refs, work, i):
    target.fresh()
    shaper.stats(reset=True)
    lst = os.path.join(work, "sync.yaml")
    with open(lst, "w") as f:
        f.write(f"{src}:\n  tls-verify: false\n  images:\n")
        for ref in refs:
            repo, tag = ref.rsplit(":", 1)
            f.write(f"    {repo}: [\"{tag}\"]\n")
    t = k3s_mod.timed(["skopeo", "sync", "--all", "--src", "yaml", "--dest", "docker",
               "--dest-tls-verify=false", lst, f"{shaper.addr}/sync"])
    s = shaper.stats()
    log(f"skopeo sync: {i}: {t:.2f} s, {s['bytes_up'] / MB:.1f} MB up, {s['requests']} requests")
    return t, s


def run_all(a, corpus, desc, refs, work):
    res = {"runs": a.runs, "up_mbit": a.up_mbit, "delay_ms": a.delay_ms}
    src_proc, src = k3s_mod.start_registry(work)
    target = Target(work)
    target.fresh()
    shaper = Shaper(work, target.port, a)
    try:
        corpus_mod.push(corpus, {"images": {r: desc["images"][r] for r in refs}}, src)
        store = os.path.join(work, "store")
        lst = os.path.join(work, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(refs) + "\n")
        subprocess.run([a.fetch, "--store", store, "-q", "--registry", src, "--insecure-registry",
                        src, "-f", lst], check=True)
        cold = [cold_airlock(a, target, shaper, store, work, i + 1) for i in range(a.runs)]
        noop = noop_airlock(a, shaper, store)
        copies = [skopeo_copy(target, shaper, store, refs, i + 1) for i in range(a.runs)]
        syncs = [skopeo_sync(target, shaper, src, refs, work, i + 1) for i in range(a.runs)]
    finally:
        shaper.stop()
        target.stop()
        src_proc.terminate()
        src_proc.wait(10)
    link = a.up_mbit * 1e6 / 8
    rep = cold[-1][2]["totals"]
    res["cold"] = {"runs": [c[0] for c in cold], "bytes_up": cold[-1][1]["bytes_up"],
                   "requests": cold[-1][1]["requests"], "connections": cold[-1][1]["connections"],
                   "by_method": cold[-1][1]["by_method"], "blob_bytes": rep["bytes"],
                   "blobs": rep["blobs_pushed"], "mounted": rep["blobs_mounted"],
                   "manifests": rep["manifests"]}
    res["cold"]["limit"] = res["cold"]["bytes_up"] / link
    res["noop"] = {"wall": noop[0], "requests": noop[1]["requests"],
                   "bytes_up": noop[1]["bytes_up"], "by_method": noop[1]["by_method"]}
    res["skopeo_copy"] = {"runs": [c[0] for c in copies], "bytes_up": copies[-1][1]["bytes_up"],
                          "requests": copies[-1][1]["requests"]}
    res["skopeo_sync"] = {"runs": [c[0] for c in syncs], "bytes_up": syncs[-1][1]["bytes_up"],
                          "requests": syncs[-1][1]["requests"]}
    return res


def render(res, refs):
    c, n, k, y = res["cold"], res["noop"], res["skopeo_copy"], res["skopeo_sync"]
    t = median(c["runs"])
    tk, ty = median(k["runs"]), median(y["runs"])
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    tags = len(refs)
    lines = [
        "| scenario | airlock | compared with | ratio | target | met |",
        "|---|---|---|---|---|---|",
        f"| cold push of the 20 images (every platform) into an empty docker-registry through the "
        f"shaped link | {t:.2f} s (runs {runs(c['runs'])}): {c['blobs']} blobs ({c['mounted']} "
        f"mounted), {c['manifests']} manifest PUTs, {c['requests']} requests | the link limit: "
        f"{c['bytes_up'] / MB:.1f} MB uploaded / {res['up_mbit']:g} Mbit/s = {c['limit']:.2f} s | "
        f"{t / c['limit']:.2f}x | ≤ 1.15x | {'yes' if t / c['limit'] <= 1.15 else '**no**'} |",
        f"| the same images, `skopeo copy --all oci:STORE:REF docker://…` one after another | "
        f"{t:.2f} s | {tk:.2f} s (runs {runs(k['runs'])}), {k['bytes_up'] / MB:.1f} MB up in "
        f"{k['requests']} requests | skopeo/airlock {tk / t:.2f}x | (side by side) | |",
        f"| the same images, one `skopeo sync --all` from the source registry | {t:.2f} s | "
        f"{ty:.2f} s (runs {runs(y['runs'])}), {y['bytes_up'] / MB:.1f} MB up in "
        f"{y['requests']} requests | skopeo/airlock {ty / t:.2f}x | (side by side) | |",
        f"| nightly no-op push (nothing changed) | {n['wall']:.2f} s, {n['requests']} requests "
        f"({json.dumps(n['by_method'])}), {n['bytes_up']} bytes up | {tags} tags | "
        f"{n['requests'] / tags:.2f} requests/tag | ≤ 1 request/tag, nothing uploaded | "
        f"{'yes' if n['requests'] <= tags else '**no**'} |",
    ]
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--up-mbit", type=float, default=200)
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--doc", default=os.path.join(HERE, "..", "..", "docs", "BENCHMARKS.md"))
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    a.push = os.path.join(a.bin, "airlock-push")
    a.fetch = os.path.join(a.bin, "airlock-fetch")
    corpus = corpus_mod.Corpus(a.cache)
    desc = corpus.build(os.cpu_count() or 2)
    refs = [r for r, _, _ in corpus_mod.IMAGES]
    work = tempfile.mkdtemp(prefix="airlock-bench-push-", dir="/var/tmp")
    try:
        res = run_all(a, corpus, desc, refs, work)
    finally:
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=1))
    text = render(res, refs)
    print(text)
    if a.doc:
        import bench as bench_mod  # write_doc()
        bench_mod.write_doc(os.path.abspath(a.doc), text, "push")
        log(f"wrote {a.doc}")


if __name__ == "__main__":
    main()
