#!/usr/bin/env python3
"""The scale benchmark: what a nightly job over hundreds to thousands of tags
costs (issue 10), each figure measured against a peer in the same run.

Start it through scripts/bench/scale.sh, which installs what is missing and
builds a Release airlock first. What this script sets up, under --work-parent:

  * a docker-registry (distribution 2.8) on 127.0.0.1, its storage kept in
    --cache, with scalecorpus.py's corpus pushed into it once; its access
    log is where requests and bytes are counted (the wire, not airlock's own
    summary);
  * for the shaped scenario, scripts/bench/shaper.py in front of it
    (--delay-ms per request and per new connection).

Per size N (default 100, 400, 2000 tags; the lists are prefixes of one
corpus), runs interleaved with their peers:

  cold    airlock-fetch -j J into an empty store, against one
          `curl --parallel --parallel-max J` that GETs the same manifests
          and blobs into files (each blob once, as airlock does);
  no-op   airlock-fetch again on that store, against curl --parallel
          sending the same N HEAD requests with the same Accept header;
  tools   on that store: --list, --verify-store, export --all, --prune;
  shaped  (one size) cold and no-op through the shaping proxy, against curl
          through the same proxy.

Wall times are medians of --runs runs; CPU (user + sys) and peak RSS come
from wait4() and /usr/bin/time (bench.py's measure()). Nothing is asserted:
the table says which target is met. Everything started is stopped by PID.
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (measure, write_doc, free_port, busy_others)
import scalecorpus  # noqa: E402

AMD64 = "linux/amd64"
CODE = ["common", "db", "fetch", "export", "CMakeLists.txt"]  # what the binaries are built from
ACCESS = re.compile(r'^\S+ - \S+ \[[^\]]+\] "(\S+) (\S+) HTTP/[\d.]+" (\d{3}) (\d+|-) ')

# Targets of issue 10.
NOOP_WALL = 1.2  # x curl --parallel HEADs
COLD_WALL = 1.3  # x curl --parallel GETs
SHAPED_COLD = 1.3
SHAPED_NOOP = 1.2
CPU_PER_TAG_MS = 0.25
LINEAR = 1.3  # per-tag cost at the largest size over the next one
RSS_MB = 64


def log(msg):
    print(f"scale: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def source_dir(bin_dir):
    """The source tree the binaries in bin_dir were built from (CMake's
    cache says), so that --bin DIR of another tree is described as that
    tree; this one when there is no cache."""
    try:
        with open(os.path.join(bin_dir, "CMakeCache.txt")) as f:
            for line in f:
                if line.startswith("CMAKE_HOME_DIRECTORY:"):
                    return line.split("=", 1)[1].strip()
    except OSError:
        pass
    return REPO


def manifest_accept(src):
    """The Accept header airlock sends for manifests, read from
    common/manifest.h so that curl sends exactly the same one."""
    with open(os.path.join(src, "common", "manifest.h")) as f:
        src = f.read().replace("\\\n", " ")
    types = dict(re.findall(r'#define (AL_MT_\w+) "([^"]+)"', src))
    m = re.search(r"#define AL_MANIFEST_ACCEPT ([^\n]+)", src)
    if not m:
        die("no AL_MANIFEST_ACCEPT in common/manifest.h")
    parts = re.findall(r'(AL_MT_\w+)|"([^"]*)"', m.group(1))
    try:
        return "".join(types[name] if name else lit for name, lit in parts)
    except KeyError as e:
        die(f"AL_MANIFEST_ACCEPT uses {e}, not a string macro")


def fit(points):
    """Least squares wall = a + b*n over (n, wall) points."""
    ns = [p[0] for p in points]
    ws = [p[1] for p in points]
    mn, mw = statistics.mean(ns), statistics.mean(ws)
    var = sum((n - mn) ** 2 for n in ns)
    b = sum((n - mn) * (w - mw) for n, w in points) / var
    return mw - b * mn, b


def ms(s):
    return f"{s * 1e3:.2f} ms"


def secs(s):
    return f"{s:.2f} s" if s < 100 else f"{s:.0f} s"


class Scale:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.fetch = os.path.join(self.bin, "airlock-fetch")
        self.export = os.path.join(self.bin, "airlock-export")
        for b in (self.fetch, self.export):
            if not os.access(b, os.X_OK):
                die(f"{b} not built (scripts/bench/scale.sh builds it)")
        self.work = tempfile.mkdtemp(prefix="airlock-scale-", dir=args.work_parent)
        self.procs = []
        self.rows, self.details, self.notes, self.profile = [], [], [], []
        self.loads = [os.getloadavg()[0]]
        self.t_start = time.monotonic()
        self.busy_start = bench.busy_others()
        self.src = source_dir(self.bin)
        self.accept = manifest_accept(self.src)
        self.j = args.jobs

    # Services ----------------------------------------------------------------
    def start(self, argv, logname):
        f = open(os.path.join(self.work, logname), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.procs.append(p)
        return p

    @staticmethod
    def wait_http(port, path):
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", path)
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        die(f"nothing answers on 127.0.0.1:{port}{path}")

    def start_registry(self):
        port = bench.free_port()
        cfg = os.path.join(self.work, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: error
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {self.corpus.registry_dir}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{port}
""")
        self.reg_log = os.path.join(self.work, "registry.log")
        self.start(["docker-registry", "serve", cfg], "registry.log")
        self.wait_http(port, "/v2/")
        self.registry = f"127.0.0.1:{port}"

    def stop_all(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if self.args.keep:
            log(f"kept {self.work}")
        else:
            shutil.rmtree(self.work, ignore_errors=True)

    def start_shaper(self):
        a = self.args
        port, ctl = bench.free_port(), bench.free_port()
        self.start([sys.executable, os.path.join(HERE, "shaper.py"), "--listen", str(port),
                    "--control", str(ctl), "--upstream", self.registry, "--delay-ms",
                    str(a.delay_ms), "--total-mbit", str(a.total_mbit), "--conn-mbit",
                    str(a.conn_mbit)], "shaper.log")
        self.wait_http(ctl, "/stats")
        return f"127.0.0.1:{port}", ctl

    @staticmethod
    def shaper_stats(ctl, reset=False):
        """The shaper's counters, once the client's connections closed."""
        for _ in range(30):
            c = http.client.HTTPConnection("127.0.0.1", ctl, timeout=5)
            c.request("GET", "/reset" if reset else "/stats")
            s = json.loads(c.getresponse().read())
            if reset or s["active"] == 0:
                return s
            time.sleep(0.1)
        return s

    # The registry's access log -----------------------------------------------
    def log_mark(self):
        return os.path.getsize(self.reg_log)

    def wire(self, mark):
        """Requests the registry logged since mark (a line is written when
        its response ends, so wait until the log stops growing)."""
        last, stable = -1, 0
        while stable < 3:
            time.sleep(0.05)
            size = os.path.getsize(self.reg_log)
            stable = stable + 1 if size == last else 0
            last = size
        w = {"requests": 0, "methods": {}, "blob_gets": 0, "blob_bytes": 0, "manifest_gets": 0,
             "errors": 0}
        with open(self.reg_log, "rb") as f:
            f.seek(mark)
            for line in f.read().decode(errors="replace").splitlines():
                m = ACCESS.match(line)
                if not m:
                    continue
                method, path, status, size = m.groups()
                w["requests"] += 1
                w["methods"][method] = w["methods"].get(method, 0) + 1
                if int(status) >= 400:
                    w["errors"] += 1
                if method == "GET" and "/blobs/" in path:
                    w["blob_gets"] += 1
                    w["blob_bytes"] += 0 if size == "-" else int(size)
                elif method == "GET" and "/manifests/" in path:
                    w["manifest_gets"] += 1
        return w

    # Corpus and lists --------------------------------------------------------
    def prepare(self, sizes):
        """The corpus for the largest of sizes, in the registry, and a
        list file for each size."""
        t = time.monotonic()
        self.corpus = scalecorpus.ScaleCorpus(self.args.cache)
        with self.corpus.locked():
            self.tags = self.corpus.build(max(sizes))
            self.start_registry()
            self.corpus.push(self.registry, self.tags)
        self.lists = {}
        for n in sorted(sizes):
            p = os.path.join(self.work, f"list-{n}.txt")
            with open(p, "w") as f:
                f.write(f"# scale benchmark: the first {n} tags of the corpus\n")
                f.write("".join(img["ref"] + "\n" for img in self.tags[:n]))
            self.lists[n] = p
        s = scalecorpus.summary(self.tags)
        self.corpus_line = (f"{s['tags']} tags in {s['repos']} repositories, {s['multi']} of them "
                            f"multi-arch (linux/amd64 + linux/arm64), {s['manifests']} manifests, "
                            f"{s['blobs']} blobs, {s['bytes'] / 1e6:.1f} MB")
        log(f"corpus ready in {time.monotonic() - t:.1f}s: {self.corpus_line}")

    def cold_urls(self, n, host):
        """What a cold fetch of the first n tags GETs: each root by tag,
        each child manifest by digest, each config, and each layer once
        (from the first repository that uses it, as airlock does)."""
        urls, seen, total = [], set(), 0
        for img in self.tags[:n]:
            repo, tag = img["ref"].rsplit(":", 1)
            base = f"http://{host}/v2/{repo}"
            urls.append(f"{base}/manifests/{tag}")
            total += img["size"]
            for pl in img["platforms"].values():
                if img["multi"]:
                    urls.append(f"{base}/manifests/{pl['manifest']['digest']}")
                    total += pl["manifest"]["size"]
                for b in [pl["config"]] + pl["layers"]:
                    if b["digest"] in seen:
                        continue
                    seen.add(b["digest"])
                    urls.append(f"{base}/blobs/{b['digest']}")
                    total += b["size"]
        return urls, total

    # Measured commands -------------------------------------------------------
    def measure(self, argv, **kw):
        self.loads.append(os.getloadavg()[0])
        return bench.measure(argv, **kw)

    def fetch_argv(self, store, host, n):
        return [self.fetch, "--store", store, "--registry", host, "--insecure-registry", host,
                "-j", str(self.j), "-q", "-f", self.lists[n]]

    def fresh(self, name):
        p = os.path.join(self.work, name)
        shutil.rmtree(p, ignore_errors=True)
        return p

    def curl(self, urls, outputs, head):
        """curl --parallel over urls with the same concurrency and Accept
        header as airlock; returns (Result, bytes downloaded)."""
        cfg = os.path.join(self.work, "curl.cfg")
        with open(cfg, "w") as f:
            for u, o in zip(urls, outputs):
                f.write(f'url = "{u}"\noutput = "{o}"\n')
        argv = ["curl", "--parallel", "--parallel-max", str(self.j), "--no-progress-meter",
                "-H", f"Accept: {self.accept}", "-w", "%{http_code} %{size_download}\\n",
                "-K", cfg]
        if head:
            argv.insert(1, "--head")
        r = self.measure(argv)
        codes = [l.split() for l in r.out.splitlines() if l.strip()]
        bad = [c for c in codes if c[0] != "200"]
        if len(codes) != len(urls) or bad:
            die(f"curl: {len(codes)} answers for {len(urls)} URLs, {len(bad)} not 200: {bad[:3]}")
        return r, sum(int(c[1]) for c in codes)

    def curl_head(self, n, host):
        urls = []
        for img in self.tags[:n]:
            repo, tag = img["ref"].rsplit(":", 1)
            urls.append(f"http://{host}/v2/{repo}/manifests/{tag}")
        return self.curl(urls, ["/dev/null"] * n, head=True)[0]

    def curl_cold(self, n, host):
        urls, total = self.cold_urls(n, host)
        d = self.fresh("curl-cold")
        os.makedirs(d)
        os.sync()
        r, got = self.curl(urls, [os.path.join(d, str(k)) for k in range(len(urls))], head=False)
        if got != total:
            die(f"curl cold fetch of {n} tags: {got} bytes, expected {total}")
        return r, len(urls)

    def airlock_cold(self, n, host):
        store = self.fresh(f"store-{n}")
        os.sync()
        mark = self.log_mark()
        r = self.measure(self.fetch_argv(store, host, n))
        return r, self.wire(mark), store

    def airlock_noop(self, store, n, host):
        mark = self.log_mark()
        r = self.measure(self.fetch_argv(store, host, n))
        unchanged = sum(1 for l in r.out.splitlines() if l.startswith("unchanged"))
        if unchanged != n:
            self.notes.append(f"no-op run at {n} tags: {unchanged} tags reported unchanged")
        return r, self.wire(mark)

    def repeats(self, runs=None):
        """Run numbers 0..runs-1 (default --runs), stopping early (after at
        least one run) once this scenario's runs took --budget seconds: the
        slow code of today must not make the whole benchmark take an hour."""
        runs = runs or self.args.runs
        t0 = time.monotonic()
        for i in range(runs):
            if i > 0 and time.monotonic() - t0 > self.args.budget:
                self.notes.append(f"{self.scenario}: {i} of {runs} runs (--budget "
                                  f"{self.args.budget:g} s)")
                return
            yield i

    def row(self, figure, airlock, compared, ratio, target, ok):
        self.rows.append({"figure": figure, "airlock": airlock, "compared": compared,
                          "ratio": ratio, "target": target,
                          "met": "—" if ok is None else ("met" if ok else "missed")})

    # Scenarios ---------------------------------------------------------------
    def cold(self, n):
        self.scenario = f"cold fetch, {n} tags"
        runs, curls, wires = [], [], []
        for i in self.repeats():
            r, w, store = self.airlock_cold(n, self.registry)
            c, n_urls = self.curl_cold(n, self.registry)
            runs.append(r)
            wires.append(w)
            curls.append(c)
            log(f"cold {n} tags, run {i + 1}: airlock {r.wall:.2f}s (cpu {r.cpu:.2f}s, rss "
                f"{r.maxrss_kb / 1024:.1f} MB, {w['requests']} requests), curl {c.wall:.2f}s")
        t, tc = median([r.wall for r in runs]), median([c.wall for c in curls])
        w = wires[-1]
        self.row(f"cold fetch, {n} tags: wall", secs(t),
                 f"curl --parallel GETs into files {secs(tc)}", f"{t / tc:.1f}x curl",
                 f"≤ {COLD_WALL}x", t / tc <= COLD_WALL)
        self.details.append((f"cold fetch, {n} tags",
                             f"airlock {bench.fmt_list(r.wall for r in runs)} s (cpu "
                             f"{median([r.cpu for r in runs]):.2f} s, peak RSS "
                             f"{max(r.maxrss_kb for r in runs) / 1024:.1f} MB), {w['requests']} "
                             f"requests ({w['manifest_gets']} manifest GETs, {w['blob_gets']} blob "
                             f"GETs, {w['blob_bytes'] / 1e6:.2f} MB of blobs); curl "
                             f"{bench.fmt_list(c.wall for c in curls)} s for {n_urls} GETs"))
        self.cold_runs = getattr(self, "cold_runs", {})
        self.cold_runs[n] = runs
        return store

    def noop(self, n, store):
        self.scenario = f"no-op run, {n} tags"
        runs, curls, wires = [], [], []
        for i in self.repeats():
            r, w = self.airlock_noop(store, n, self.registry)
            c = self.curl_head(n, self.registry)
            runs.append(r)
            wires.append(w)
            curls.append(c)
            log(f"no-op {n} tags, run {i + 1}: airlock {r.wall:.2f}s (cpu {r.cpu:.2f}s, "
                f"{w['requests']} requests), curl {c.wall:.2f}s")
        t, tc = median([r.wall for r in runs]), median([c.wall for c in curls])
        cpu = median([r.cpu for r in runs])
        req = max(w["requests"] for w in wires)
        heads = min(w["methods"].get("HEAD", 0) for w in wires)
        blob_bytes = max(w["blob_bytes"] for w in wires)
        blob_gets = max(w["blob_gets"] for w in wires)
        # One HEAD per tag: a GET of an unchanged manifest is a request too
        # many for a registry that counts pulls (Docker Hub counts GETs).
        self.row(f"no-op run, {n} tags: requests on the wire", f"{req} ({heads} HEAD), "
                 f"{blob_gets} blob GETs, {blob_bytes} B of blobs", f"{n} tags",
                 f"{req / n:.2f} per tag", "1 HEAD per tag, 0 blob bytes",
                 req == n and heads == n and blob_bytes == 0 and blob_gets == 0)
        self.row(f"no-op run, {n} tags: wall", secs(t),
                 f"curl --parallel HEADs {secs(tc)}", f"{t / tc:.1f}x curl",
                 f"≤ {NOOP_WALL}x", t / tc <= NOOP_WALL)
        per = cpu / n * 1e3
        self.row(f"no-op run, {n} tags: airlock CPU per tag", f"{per:.3f} ms (user "
                 f"{median([r.user for r in runs]):.2f} s + sys {median([r.sys for r in runs]):.2f} s)",
                 f"limit {CPU_PER_TAG_MS} ms", f"{per / CPU_PER_TAG_MS:.1f}x limit",
                 f"≤ {CPU_PER_TAG_MS} ms", per <= CPU_PER_TAG_MS)
        methods = json.dumps(wires[-1]["methods"])
        self.details.append((f"no-op run, {n} tags",
                             f"airlock {bench.fmt_list(r.wall for r in runs)} s (cpu "
                             f"{bench.fmt_list(r.cpu for r in runs)} s), {methods}; curl "
                             f"{bench.fmt_list(c.wall for c in curls)} s (cpu "
                             f"{median([c.cpu for c in curls]):.2f} s)"))
        self.noop_walls = getattr(self, "noop_walls", {})
        self.noop_walls[n] = (t, cpu)

    def linearity(self):
        sizes = sorted(self.noop_walls)
        if len(sizes) < 2:
            return
        lo, hi = sizes[-2], sizes[-1]
        (tl, cl), (th, ch) = self.noop_walls[lo], self.noop_walls[hi]
        r = (th / hi) / (tl / lo)
        self.row(f"no-op run: per-tag wall, {hi} vs {lo} tags", f"{ms(th / hi)} per tag",
                 f"{ms(tl / lo)} per tag", f"{r:.2f}x", f"≤ {LINEAR}x", r <= LINEAR)
        a, b = fit([(n, self.noop_walls[n][0]) for n in sizes])
        ac, bc = fit([(n, self.noop_walls[n][1]) for n in sizes])
        worst = max(abs(a + b * n - self.noop_walls[n][0]) / self.noop_walls[n][0] for n in sizes)
        self.row(f"no-op run: fit wall = a + b·n over {', '.join(map(str, sizes))} tags",
                 f"a = {a:.3f} s, b = {ms(b)} per tag",
                 f"CPU: a = {ac:.3f} s, b = {ms(bc)} per tag",
                 f"worst residual {100 * worst:.0f}%", "linear", None)
        self.details.append(("no-op per-tag CPU", ", ".join(
            f"{n} tags {ms(self.noop_walls[n][1] / n)}" for n in sizes) +
            f" (ratio {hi} vs {lo}: {(ch / hi) / (cl / lo):.2f}x)"))

    def tools(self, n, store):
        out = os.path.join(self.work, "export-all.tar")
        cmds = [
            ("prune", [self.fetch, "--store", store, "--prune", "-q"]),
            ("--verify-store", [self.export, "--store", store, "--verify-store", "-q"]),
            ("--list", [self.export, "--store", store, "--list"]),
            ("export --all", [self.export, "--store", store, "--all", "-p", AMD64, "-o", out,
                              "--force", "-q"]),
        ]
        self.tool_walls = getattr(self, "tool_walls", {})
        for name, argv in cmds:
            walls = []
            self.scenario = f"{name}, {n} tags"
            # Quick commands, where a busy machine adds noise: best of at
            # least five runs (noise only ever adds time).
            for _ in self.repeats(max(self.args.runs, 5)):
                if os.path.exists(out):
                    os.unlink(out)
                walls.append(self.measure(argv).wall)
            self.tool_walls[(name, n)] = walls
            log(f"{name} at {n} tags: {bench.fmt_list(walls)} s")

    def tools_rows(self):
        sizes = sorted({n for _, n in self.tool_walls})
        if len(sizes) < 2:
            return
        lo, hi = sizes[-2], sizes[-1]
        for name in ("prune", "--verify-store", "--list", "export --all"):
            tl, th = min(self.tool_walls[(name, lo)]), min(self.tool_walls[(name, hi)])
            r = (th / hi) / (tl / lo)
            label = {"prune": "prune (--prune, no refs)", "export --all":
                     "export --all -p linux/amd64"}.get(name, name)
            self.row(f"{label}: per-tag wall, {hi} vs {lo} tags",
                     f"{secs(th)} = {ms(th / hi)} per tag",
                     f"{secs(tl)} = {ms(tl / lo)} per tag", f"{r:.2f}x", f"≤ {LINEAR}x",
                     r <= LINEAR)
            self.details.append((f"{name}", f"{lo} tags {bench.fmt_list(self.tool_walls[(name, lo)])}"
                                 f" s; {hi} tags {bench.fmt_list(self.tool_walls[(name, hi)])} s"))

    def rss(self):
        n = max(self.cold_runs)
        peak = max(r.maxrss_kb for r in self.cold_runs[n]) / 1024
        self.row(f"peak RSS of airlock-fetch, cold fetch of {n} tags", f"{peak:.1f} MB",
                 f"limit {RSS_MB} MB", f"{peak / RSS_MB:.2f}x limit", f"≤ {RSS_MB} MB",
                 peak <= RSS_MB)

    def shaped(self, n):
        host, ctl = self.start_shaper()
        self.scenario = f"cold fetch through the link, {n} tags"
        cold, curls = [], []
        for i in self.repeats():
            self.shaper_stats(ctl, reset=True)
            r, w, store = self.airlock_cold(n, host)
            s = self.shaper_stats(ctl)
            c, n_urls = self.curl_cold(n, host)
            cold.append(r)
            curls.append(c)
            log(f"shaped cold {n} tags, run {i + 1}: airlock {r.wall:.2f}s "
                f"({w['requests']} requests, {s['connections']} connections), curl {c.wall:.2f}s")
        t, tc = median([r.wall for r in cold]), median([c.wall for c in curls])
        link = f"{self.args.delay_ms:g} ms link"
        self.row(f"cold fetch, {n} tags, through the {link}: wall", secs(t),
                 f"curl --parallel through it {secs(tc)}", f"{t / tc:.1f}x curl",
                 f"≤ {SHAPED_COLD}x", t / tc <= SHAPED_COLD)
        self.details.append((f"cold fetch, {n} tags, {link}",
                             f"airlock {bench.fmt_list(r.wall for r in cold)} s, {w['requests']} "
                             f"requests over {s['connections']} connections; curl "
                             f"{bench.fmt_list(c.wall for c in curls)} s for {n_urls} GETs; the "
                             f"link's floor is {n_urls}/{self.j} round trips = "
                             f"{n_urls / self.j * self.args.delay_ms / 1000:.2f} s"))
        self.scenario = f"no-op run through the link, {n} tags"
        noop, curls = [], []
        for i in self.repeats():
            self.shaper_stats(ctl, reset=True)
            r, w = self.airlock_noop(store, n, host)
            s = self.shaper_stats(ctl)
            c = self.curl_head(n, host)
            noop.append(r)
            curls.append(c)
            log(f"shaped no-op {n} tags, run {i + 1}: airlock {r.wall:.2f}s "
                f"({w['requests']} requests, {s['connections']} connections), curl {c.wall:.2f}s")
        t, tc = median([r.wall for r in noop]), median([c.wall for c in curls])
        self.row(f"no-op run, {n} tags, through the {link}: wall", secs(t),
                 f"curl --parallel HEADs through it {secs(tc)}", f"{t / tc:.1f}x curl",
                 f"≤ {SHAPED_NOOP}x", t / tc <= SHAPED_NOOP)
        self.details.append((f"no-op run, {n} tags, {link}",
                             f"airlock {bench.fmt_list(r.wall for r in noop)} s, {w['requests']} "
                             f"requests over {s['connections']} connections; curl "
                             f"{bench.fmt_list(c.wall for c in curls)} s; the link's floor is "
                             f"{n}/{self.j} round trips = "
                             f"{n / self.j * self.args.delay_ms / 1000:.2f} s"))

    def profiles(self, n):
        """strace and perf of one cold and one no-op run at n tags: how
        many fsyncs and renames a run issues, and where the CPU goes."""
        store = self.fresh("store-prof")
        argv = self.fetch_argv(store, self.registry, n)
        if shutil.which("strace"):
            shutil.rmtree(store, ignore_errors=True)
            for kind in ("cold", "no-op"):
                self.details.append((f"syscalls of one {kind} run at {n} tags (strace -f -c -w: calls, "
                                     "time waited in them)",
                                     self.strace_counts(argv, kind)))
        if shutil.which("perf"):
            shutil.rmtree(store, ignore_errors=True)
            for kind in ("cold", "no-op"):
                self.perf(argv, kind, n)
        else:
            self.notes.append("no perf: no profile")
        shutil.rmtree(store, ignore_errors=True)

    def strace_counts(self, argv, kind):
        out = os.path.join(self.work, f"strace-{kind}.txt")
        # -w: the seconds column is the time spent waiting in the calls
        # (wall), not the CPU they took.
        t0 = time.monotonic()
        bench.run(["strace", "-f", "-c", "-w", "-o", out, "-e", "trace=fsync,fdatasync,rename,"
                   "renameat,renameat2,syncfs,sync_file_range"] + argv, stdout=subprocess.DEVNULL,
                  stderr=subprocess.DEVNULL, check=False)
        wall = time.monotonic() - t0
        counts = {}
        with open(out) as f:
            for line in f:
                # % time, seconds, usecs/call, calls, [errors,] syscall
                m = re.match(r"\s*[\d.]+\s+([\d.]+)\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
                if m and m.group(3) != "total":
                    counts[m.group(3)] = (int(m.group(2)), float(m.group(1)))
        if not counts:
            return "none of fsync, fdatasync, rename*, syncfs, sync_file_range"
        return ", ".join(f"{k} {c} ({t:.2f} s)" for k, (c, t) in sorted(counts.items())) + \
            f"; the run took {wall:.2f} s under strace"

    def perf(self, argv, kind, n):
        """Where the CPU goes: by library and by symbol (self time), and,
        from DWARF call graphs (a Release build has no frame pointers),
        the share of airlock's own functions with everything they call."""
        data = os.path.join(self.work, f"perf-{kind}.data")
        r = bench.run(["perf", "record", "-q", "-F", "500", "--call-graph", "dwarf,8192", "-o",
                       data, "--"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      check=False)
        if r.returncode != 0:
            self.notes.append(f"perf record of the {kind} run failed")
            return
        texts = []
        for sort, extra, keep in (("dso", ["--no-children", "--percent-limit", "1"], None),
                                  ("dso,sym", ["--no-children", "--percent-limit", "2"], None),
                                  ("sym", ["--children", "--percent-limit", "3"], " al_")):
            rep = bench.run(["perf", "report", "-i", data, "--stdio", "-g", "none", "--sort",
                             sort] + extra, capture_output=True, text=True, check=False).stdout
            lines = [l.rstrip() for l in rep.splitlines()
                     if l.strip() and not l.startswith("#") and "%" in l]
            if keep:  # airlock's functions only, their own and their callees' time
                lines = [l for l in lines if keep in l]
            texts.append("\n".join(lines[:14]))
        os.unlink(data)
        self.profile.append((f"{kind} run at {n} tags", texts))

    # Output ------------------------------------------------------------------
    def header(self, cmd):
        cpu = "?"
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        fs = bench.run(["findmnt", "-n", "-o", "FSTYPE", "-T", self.work], capture_output=True,
                       text=True, check=False).stdout.strip()
        rev = bench.run(["git", "-C", self.src, "rev-parse", "--short", "HEAD"], capture_output=True,
                        text=True, check=False).stdout.strip()
        branch = bench.run(["git", "-C", self.src, "rev-parse", "--abbrev-ref", "HEAD"],
                           capture_output=True, text=True, check=False).stdout.strip()
        dirty = bench.run(["git", "-C", self.src, "status", "--porcelain", "--untracked-files=no",
                           "--"] + CODE, capture_output=True, text=True, check=False).stdout.strip()
        # The commit that last changed the code (not the scripts or docs):
        # two trees with the same one run the same airlock.
        code = bench.run(["git", "-C", self.src, "log", "-1", "--format=%h", "--"] + CODE,
                         capture_output=True, text=True, check=False).stdout.strip()
        curl = bench.run(["curl", "--version"], capture_output=True, text=True,
                         check=False).stdout.split("\n")[0].split(" (")[0]
        a = self.args
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.loads.append(os.getloadavg()[0])
        return [
            f"Command: `{cmd}`  ",
            f"Date: {now}; whole run {time.monotonic() - self.t_start:.0f} s  ",
            f"Machine: {os.cpu_count()} x {cpu}, {mem:.0f} GiB, Linux {platform.release()}, "
            f"work dir on {fs or '?'}  ",
            f"Load average: {self.loads[0]:.2f} at the start, {self.loads[-1]:.2f} at the end, "
            f"{min(self.loads):.2f}–{max(self.loads):.2f} over the measurements"
            + (f"; busy at the start: {self.busy_start}" if self.busy_start else "") + "  ",
            f"airlock {rev} ({branch} in {self.src}; code last changed in {code}"
            f"{', with uncommitted changes' if dirty else ''}), Release build, -j {self.j}; "
            f"{curl} with --parallel-max {self.j}; docker-registry 2.8 on 127.0.0.1  ",
            f"Corpus (scripts/bench/scalecorpus.py): {self.corpus_line}; sizes "
            f"{', '.join(map(str, a.sizes))} are prefixes of it. Medians of {a.runs} runs, fewer "
            f"where a scenario's runs took over {a.budget:g} s (see the notes); store tools: best "
            f"of {max(a.runs, 5)}.",
        ]

    def render(self, cmd):
        lines = self.header(cmd) + [
            "",
            "| figure | airlock | compared with | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            met = "**missed**" if r["met"] == "missed" else r["met"]
            lines.append(f"| {r['figure']} | {r['airlock']} | {r['compared']} | {r['ratio']} "
                         f"| {r['target']} | {met} |")
        lines += ["", "Details:", ""]
        lines += [f"- {k}: {v}" for k, v in self.details]
        lines += [f"- note: {n}" for n in self.notes]
        for what, (by_dso, by_sym, ours) in self.profile:
            lines += ["", f"perf profile of one {what}: by library; symbols over 2% (self "
                      "time); airlock's functions over 3% with their callees:", "",
                      "```", by_dso, "", by_sym, "", ours, "```"]
        return "\n".join(lines) + "\n"


def parse_sizes(s):
    try:
        sizes = sorted({int(x) for x in s.split(",")})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {s}")
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError(f"sizes must be positive: {s}")
    return sizes


SCENARIOS = ["noop", "cold", "tools", "shaped"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build-rel"),
                    help="directory with airlock-fetch and airlock-export")
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--work-parent", default="/var/tmp")
    ap.add_argument("--quick", action="store_true",
                    help="sizes 100,400, shaped at 400, no profile (for development)")
    ap.add_argument("--sizes", type=parse_sizes, help="tag counts (default 100,400,2000)")
    ap.add_argument("--shaped-size", type=int, default=400)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--budget", type=float, default=150,
                    help="no further run of a scenario once its runs took this many seconds")
    ap.add_argument("--jobs", type=int, default=8, help="airlock's -j and curl's --parallel-max")
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--total-mbit", type=float, default=200)
    ap.add_argument("--conn-mbit", type=float, default=100)
    ap.add_argument("--only", action="append", choices=SCENARIOS,
                    help="run only these scenarios (repeatable; the cold fetch that fills each "
                         "store always runs)")
    ap.add_argument("--profile", dest="profile", action="store_true", default=None,
                    help="perf and strace of a cold and a no-op run (default: on unless --quick)")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--profile-size", type=int, default=400)
    ap.add_argument("--doc", nargs="?", const=os.path.join(REPO, "docs", "BENCHMARKS.md"),
                    help="write the table into this file (default docs/BENCHMARKS.md) "
                         "between the scale:begin/scale:end markers")
    ap.add_argument("--baseline", action="store_true",
                    help="with --doc: write between the scale-baseline markers instead")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--cmd", default=None, help="the command line to record")
    args = ap.parse_args()
    if args.runs < 1 or args.jobs < 1 or args.shaped_size < 1 or args.profile_size < 1:
        ap.error("--runs, --jobs, --shaped-size and --profile-size must be at least 1")
    if args.sizes is None:
        args.sizes = [100, 400] if args.quick else [100, 400, 2000]
    if args.profile is None:
        args.profile = not args.quick
    only = set(args.only or SCENARIOS)

    s = Scale(args)
    try:
        s.prepare(set(args.sizes) | ({args.shaped_size} if "shaped" in only else set()) |
                  ({args.profile_size} if args.profile else set()))
        for n in args.sizes if only & {"cold", "noop", "tools"} else []:
            store = s.cold(n) if "cold" in only else s.airlock_cold(n, s.registry)[2]
            if "noop" in only:
                s.noop(n, store)
            if "tools" in only and n in args.sizes[-2:]:
                s.tools(n, store)
            shutil.rmtree(store, ignore_errors=True)
        if "noop" in only:
            s.linearity()
        if "tools" in only:
            s.tools_rows()
        if "cold" in only:
            s.rss()
        if "shaped" in only:
            s.shaped(args.shaped_size)
        if args.profile:
            s.profiles(args.profile_size)
        text = s.render(args.cmd or "scripts/bench/scale.sh " + " ".join(sys.argv[1:]))
        print(text)
        if args.doc:
            bench.write_doc(args.doc, text, "scale-baseline" if args.baseline else "scale")
            log(f"wrote {args.doc}")
    finally:
        s.stop_all()


if __name__ == "__main__":
    main()
