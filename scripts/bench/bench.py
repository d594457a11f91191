#!/usr/bin/env python3
"""The airlock benchmark: prepares everything itself, runs each scenario
several times and prints a table of medians and ratios; writes it, with the
command, the machine and the date, into docs/BENCHMARKS.md (between the
bench:begin/bench:end markers; the prose around them is kept).

Start it through scripts/bench/run.sh, which installs what is missing and
builds a Release airlock first. What this script sets up, under --work:

  * a docker-registry (distribution 2.8) on 127.0.0.1 whose storage is kept
    in --cache, with the corpus of corpus.py pushed into it (once);
  * shaper.py twice in front of it: the shaped link (--delay-ms round trip
    per request and per new connection, --total-mbit for all connections,
    --conn-mbit for each) and a plain relay (no delay, no cap) that checks
    the proxy is not what limits;
  * a private containerd (tests/infra/consumers.sh) for `ctr export`.

Everything started is stopped by PID at the end; --work is removed unless
--keep. Timings are wall-clock medians of --runs runs; CPU, peak RSS and
bytes read/written come from wait4() and /proc/PID/io of the measured
process (ru_maxrss is what `/usr/bin/time -v` reports as "Maximum resident
set size").
"""

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402

MB = 1_000_000
AMD64 = "linux/amd64"


def log(msg):
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def median(xs):
    return statistics.median(xs) if xs else float("nan")


class Result:
    """One measured run of one process."""

    def __init__(self, wall, user, sys_, maxrss_kb, io, rc, out):
        self.wall, self.user, self.sys, self.maxrss_kb = wall, user, sys_, maxrss_kb
        self.io, self.rc, self.out = io, rc, out

    @property
    def cpu(self):
        return self.user + self.sys


def measure(argv, stdout=None, env=None, check=True):
    """Run argv under /usr/bin/time; return wall time, CPU, peak RSS and
    /proc/PID/io. Peak RSS is time's "%M": our own wait4() would report the
    larger of the child's and this Python's RSS (the child starts as a fork
    of this process). CPU and I/O are those of the time process, read while
    it is a zombie (os.waitid WNOWAIT): they include its reaped child, which
    is the measured program; time itself adds next to nothing."""
    out_f = stdout or tempfile.TemporaryFile()
    rss_f = tempfile.NamedTemporaryFile(prefix="bench-rss-", delete=False)
    rss_f.close()
    t0 = time.monotonic()
    p = subprocess.Popen(["/usr/bin/time", "-f", "%M", "-o", rss_f.name] + argv, stdout=out_f,
                         stderr=subprocess.PIPE, env=env)
    # Read stderr in full before waiting (a chatty child could fill the pipe).
    err = p.stderr.read()
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    wall = time.monotonic() - t0
    io = {}
    try:
        with open(f"/proc/{p.pid}/io") as f:
            for line in f:
                k, v = line.split(":")
                io[k] = int(v)
    except OSError:
        pass
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    with open(rss_f.name) as f:
        m = re.findall(r"^(\d+)$", f.read(), re.M)
    os.unlink(rss_f.name)
    maxrss = int(m[-1]) if m else 0
    text = ""
    if stdout is None:
        out_f.seek(0)
        text = out_f.read().decode(errors="replace")
        out_f.close()
    if check and p.returncode != 0:
        die(f"{' '.join(argv[:6])}... failed ({p.returncode}):\n{err.decode(errors='replace')[-3000:]}")
    return Result(wall, ru.ru_utime, ru.ru_stime, maxrss, io, p.returncode, text)


def run(argv, **kw):
    kw.setdefault("check", True)
    return subprocess.run(argv, **kw)


class Bench:
    def __init__(self, args):
        self.args = args
        self.bin = os.path.abspath(args.bin)
        self.fetch = os.path.join(self.bin, "airlock-fetch")
        self.export = os.path.join(self.bin, "airlock-export")
        for b in (self.fetch, self.export):
            if not os.access(b, os.X_OK):
                die(f"{b} not built (scripts/bench/run.sh builds it)")
        self.cache = os.path.abspath(args.cache)
        os.makedirs(self.cache, exist_ok=True)
        self.work = tempfile.mkdtemp(prefix="airlock-bench-", dir=args.work_parent)
        self.pids = []  # (name, Popen)
        self.rows = []  # the summary table
        self.details = []  # per-scenario raw numbers
        self.notes = []
        self.consumers_dir = None
        self.t_start = time.monotonic()
        self.load_start = os.getloadavg()
        self.busy_start = busy_others()

    # Services ----------------------------------------------------------------
    def start(self, name, argv, logname):
        f = open(os.path.join(self.work, logname), "wb")
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=f)
        self.pids.append((name, p))
        return p

    def wait_http(self, port, path="/v2/", want=200):
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", path)
                if c.getresponse().status == want:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        die(f"nothing answers on 127.0.0.1:{port}{path}")

    def start_registry(self):
        self.reg_port = free_port()
        storage = os.path.join(self.cache, "registry")
        cfg = os.path.join(self.work, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {storage}
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:{self.reg_port}
""")
        self.start("registry", ["docker-registry", "serve", cfg], "registry.log")
        self.wait_http(self.reg_port)
        self.registry = f"127.0.0.1:{self.reg_port}"

    def start_shaper(self, delay_ms, total_mbit, conn_mbit):
        port, ctl = free_port(), free_port()
        self.start("shaper", [sys.executable, os.path.join(HERE, "shaper.py"),
                              "--listen", str(port), "--control", str(ctl),
                              "--upstream", self.registry, "--delay-ms", str(delay_ms),
                              "--total-mbit", str(total_mbit), "--conn-mbit", str(conn_mbit)],
                   f"shaper-{port}.log")
        self.wait_http(ctl, "/stats")
        return port, ctl

    def proxy_stats(self, ctl, reset=False, settle=True):
        """The shaper's counters; with settle, first wait (up to 3 s) for
        the client's connections to close so its last bytes are counted."""
        for _ in range(30 if settle else 1):
            c = http.client.HTTPConnection("127.0.0.1", ctl, timeout=5)
            c.request("GET", "/reset" if reset else "/stats")
            s = json.loads(c.getresponse().read())
            if reset or not settle or s["active"] == 0:
                return s
            time.sleep(0.1)
        return s

    def start_containerd(self):
        d = tempfile.mkdtemp(prefix="alb.", dir="/tmp")  # short: unix sockets live there
        os.rmdir(d)
        run(["bash", os.path.join(REPO, "tests", "infra", "consumers.sh"), "start", d],
            stdout=subprocess.DEVNULL)
        self.consumers_dir = d
        env = {}
        with open(os.path.join(d, "consumers.env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v
        self.ctr_sock = env["AL_CTR_SOCK"]

    def stop_all(self):
        if self.consumers_dir:
            run(["bash", os.path.join(REPO, "tests", "infra", "consumers.sh"), "stop", self.consumers_dir],
                check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _, p in reversed(self.pids):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        else:
            log(f"kept {self.work}")

    # Corpus ------------------------------------------------------------------
    def prepare(self):
        t = time.monotonic()
        self.corpus = corpus_mod.Corpus(self.cache)
        self.desc = self.corpus.build(os.cpu_count() or 2)
        self.start_registry()
        corpus_mod.push(self.corpus, self.desc, self.registry)
        self.refs = [r for r, _, _ in corpus_mod.IMAGES]
        self.list_file = os.path.join(self.work, "airgap_images.txt")
        with open(self.list_file, "w") as f:
            f.write("# k3s-like airgap list: the benchmark corpus\n")
            f.write("\n".join(self.refs) + "\n")
        self.total = corpus_mod.summary(self.desc, self.refs)
        # What a one-platform export holds: the amd64 manifest, config and
        # layers of each image, each blob once (no index: the tarball names
        # the platform manifests).
        seen, files = set(), []
        for r in self.refs:
            pl = self.desc["images"][r]["platforms"]["amd64"]
            for b in [pl["manifest"], pl["config"]] + pl["layers"]:
                if b["digest"] not in seen:
                    seen.add(b["digest"])
                    files.append(b)
        self.export_blobs = files
        self.export_bytes = sum(b["size"] for b in files)
        log(f"corpus ready in {time.monotonic() - t:.1f}s: {len(self.refs)} images, "
            f"{self.total['count']} blobs, {self.total['all'] / MB:.1f} MB "
            f"(amd64 export: {len(files)} blobs, {self.export_bytes / MB:.1f} MB)")

    # Helpers -----------------------------------------------------------------
    def fresh(self, name):
        p = os.path.join(self.work, name)
        shutil.rmtree(p, ignore_errors=True)
        return p

    def fetch_argv(self, store, port, refs=None):
        argv = [self.fetch, "--store", store, "--registry", f"127.0.0.1:{port}",
                "--insecure-registry", f"127.0.0.1:{port}", "-q"]
        return argv + (refs if refs else ["-f", self.list_file])

    def row(self, scenario, airlock, compared, ratio, target, ok, note=""):
        self.rows.append({"scenario": scenario, "airlock": airlock, "compared": compared,
                          "ratio": ratio, "target": target,
                          "ok": "yes" if ok else ("**no**" if ok is not None else "n/a"),
                          "note": note})

    # Scenarios ---------------------------------------------------------------
    def proxy_check(self):
        """The relay (no delay, no cap) against a direct connection, and the
        shaped link with one connection, on the biggest blob."""
        big = self.desc["images"]["bench/rss-big:1"]["platforms"]["amd64"]["layers"][0]
        path = f"/v2/bench/rss-big/blobs/{big['digest']}"

        def get(port):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            t = time.monotonic()
            c.request("GET", path)
            r = c.getresponse()
            n = 0
            while True:
                b = r.read(1 << 20)
                if not b:
                    break
                n += len(b)
            dt = time.monotonic() - t
            assert n == big["size"], (n, big["size"])
            return n / dt

        direct = median([get(self.reg_port) for _ in range(3)])
        relay = median([get(self.relay_port) for _ in range(3)])
        link = self.args.total_mbit * 1e6 / 8
        self.proxy = {"direct": direct, "relay": relay}
        self.details.append(("shaping proxy (one connection, one 200 MB blob)",
                             f"direct {direct / MB:.0f} MB/s, through shaper.py unshaped "
                             f"{relay / MB:.0f} MB/s = {relay / link:.0f}x the shaped link's "
                             f"{link / MB:.0f} MB/s"))
        if relay < 4 * link:
            self.notes.append("the relay is less than 4x faster than the shaped link: "
                              "the proxy may be what limits")

    def cold_fetch(self):
        runs, stats = [], []
        for i in range(self.args.runs):
            store = self.fresh("store-cold")
            self.proxy_stats(self.shaped_ctl, reset=True)
            r = measure(self.fetch_argv(store, self.shaped_port))
            s = self.proxy_stats(self.shaped_ctl)
            runs.append(r)
            stats.append(s)
            log(f"cold fetch {i + 1}: {r.wall:.2f}s, {s['bytes_down'] / MB:.1f} MB, "
                f"{s['requests']} requests, {s['connections']} connections, "
                f"cpu {r.cpu:.2f}s, rss {r.maxrss_kb / 1024:.1f} MB")
        self.cold_store = store
        self.cold_runs, self.cold_stats = runs, stats
        link = self.args.total_mbit * 1e6 / 8
        payload = self.total["all"]
        limit = payload / link
        t = median([r.wall for r in runs])
        self.cold_limit = limit

        sk = []
        sk_runs = self.args.skopeo_runs or self.args.runs
        for i in range(sk_runs):
            dest = self.fresh("skopeo-oci")
            t0 = time.monotonic()
            for ref in self.refs:
                run(["skopeo", "copy", "-q", "--all", "--src-tls-verify=false",
                     f"docker://127.0.0.1:{self.shaped_port}/{ref}", f"oci:{dest}:{ref}"],
                    stdout=subprocess.DEVNULL)
            sk.append(time.monotonic() - t0)
            log(f"skopeo cold fetch {i + 1}: {sk[-1]:.2f}s")
        shutil.rmtree(dest, ignore_errors=True)
        tsk = median(sk)
        self.row("cold fetch of the list (2 platforms) through the shaped link",
                 f"{t:.2f} s", f"limit {limit:.2f} s ({payload / MB:.0f} MB / "
                 f"{self.args.total_mbit:g} Mbit/s); skopeo {tsk:.2f} s",
                 f"{t / limit:.2f}x limit; skopeo/airlock {tsk / t:.1f}x",
                 "≤ 1.15x limit; ≥ 3x faster than skopeo", t / limit <= 1.15 and tsk / t >= 3)
        s = stats[-1]
        self.details.append(("cold fetch", f"runs {fmt_list(r.wall for r in runs)} s; skopeo "
                             f"{fmt_list(sk)} s; on the wire {s['bytes_down'] / MB:.1f} MB in "
                             f"{s['requests']} requests ({s['blob_gets']} blob GETs) over "
                             f"{s['connections']} connections"))

    def noop_fetch(self):
        runs, stats = [], []
        for _ in range(self.args.runs):
            self.proxy_stats(self.shaped_ctl, reset=True)
            r = measure(self.fetch_argv(self.cold_store, self.shaped_port))
            runs.append(r)
            stats.append(self.proxy_stats(self.shaped_ctl))
        t = median([r.wall for r in runs])
        req = max(s["requests"] for s in stats)
        blob_gets = max(s["blob_gets"] for s in stats)
        conns = max(s["connections"] for s in stats)
        down = max(s["bytes_down"] for s in stats)
        n = len(self.refs)
        self.row("nightly no-op fetch of the list through the shaped link",
                 f"{t:.2f} s, {req} requests, {blob_gets} blob GETs",
                 f"{n} tags: one round trip ({self.args.delay_ms:g} ms) each on reused "
                 f"connections", f"{req / n:.2f} requests/tag",
                 "≤ 1 request/tag, 0 blob bytes, ≤ 0.6 s",
                 req <= n and blob_gets == 0 and t <= 0.6)
        self.details.append(("no-op fetch", f"runs {fmt_list(r.wall for r in runs)} s; "
                             f"{req} requests ({json.dumps(stats[-1]['by_method'])}) over {conns} "
                             f"connections, {down} bytes down (headers only)"))

    def cpu_per_byte(self):
        sha = openssl_sha256_speed()
        payload = self.total["all"]
        cpu = median([r.cpu for r in self.cold_runs])
        user = median([r.user for r in self.cold_runs])
        ns = cpu / payload * 1e9
        sha_ns = 1e9 / sha
        r = self.cold_runs[-1]
        down = self.cold_stats[-1]["bytes_down"]
        # rchar counts read()/pread() of files (curl's recv() on sockets is
        # not in it): any second pass over the blobs would show up here.
        rchar, wchar = r.io.get("rchar", 0), r.io.get("wchar", 0)
        reread = rchar / payload
        # How often each byte is hashed: the profile's time in SHA-256
        # against the time one pass takes at openssl's speed.
        hashed = None
        p = getattr(self, "perf_sha", None)
        if p is not None:
            hashed = p / (payload / sha)
        ratio = f"{ns / sha_ns:.2f}x SHA-256 (user {user * 1e9 / payload:.2f} ns/B)"
        if hashed is not None:
            ratio += f"; hashed {hashed:.2f}x (perf)"
        ratio += f"; file bytes read {reread:.4f}x"
        ok = reread < 0.01 and (hashed is None or hashed < 1.5)
        self.row("CPU per fetched byte (cold fetch)",
                 f"{ns:.2f} ns/B (user {user:.2f} s + sys {cpu - user:.2f} s)",
                 f"SHA-256 {sha_ns:.2f} ns/B (openssl speed, 16 KiB blocks)", ratio,
                 "every byte hashed once, never re-read", ok)
        self.details.append(("fetch I/O", f"read from files {rchar / MB:.2f} MB, written "
                             f"{wchar / MB:.1f} MB, from the socket {down / MB:.1f} MB, payload "
                             f"{payload / MB:.1f} MB"))

    def export_scenarios(self):
        store = self.cold_store
        paths = [os.path.join(store, "blobs", "sha256", b["digest"].split(":")[1])
                 for b in self.export_blobs]
        outdir = self.fresh("out")
        os.makedirs(outdir)
        # Warm the page cache the same for all: the blobs were just fetched.
        run(["cat"] + paths, stdout=subprocess.DEVNULL)
        cat_t, cat_cpu, al_t, al_runs = [], [], [], []
        out = os.path.join(outdir, "images.tar")
        cat_out = os.path.join(outdir, "cat.out")
        for _ in range(self.args.export_runs):
            for p in (out, cat_out):
                if os.path.exists(p):
                    os.unlink(p)
            os.sync()  # start each run with no dirty pages of earlier ones
            time.sleep(0.5)  # and let the discards of the deleted output pass
            # cat + fsync of the output (airlock-export fsyncs its tarball).
            r = measure(["sh", "-c", 'out=$1; shift; cat "$@" > "$out" && sync "$out"', "sh",
                         cat_out] + paths)
            cat_t.append(r.wall)
            cat_cpu.append(r.cpu)
            os.unlink(cat_out)
            os.sync()
            time.sleep(0.5)
            r = measure([self.export, "--store", store, "-f", self.list_file, "-p", AMD64,
                         "-o", out, "-q"])
            al_t.append(r.wall)
            al_runs.append(r)
        tar_size = os.path.getsize(out)
        cat_size = self.export_bytes

        # skopeo, image by image, from the store (OCI media types) to
        # docker-archive (what docker save writes: uncompressed layers).
        sk_t, sk_size = [], 0
        for i in range(self.args.skopeo_runs or self.args.runs):
            d = self.fresh("out-skopeo")
            os.makedirs(d)
            os.sync()
            t0 = time.monotonic()
            for n, ref in enumerate(self.refs):
                run(["skopeo", "copy", "-q", f"oci:{store}:docker.io/{ref}",
                     f"docker-archive:{d}/{n}.tar:{ref}"], stdout=subprocess.DEVNULL)
            run(["sync", "-f", d])
            sk_t.append(time.monotonic() - t0)
            sk_size = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
            shutil.rmtree(d)

        # ctr export from a containerd that pulled the same images (amd64).
        ctr_t, ctr_size = [], 0
        if self.args.ctr:
            self.start_containerd()
            ctr = ["ctr", "--address", self.ctr_sock, "--namespace", "bench"]
            names = [f"{self.registry}/{ref}" for ref in self.refs]
            for n in names:
                run(ctr + ["content", "fetch", "--plain-http", "--platform", AMD64, n],
                    stdout=subprocess.DEVNULL)
            ctr_out = os.path.join(outdir, "ctr.tar")
            for _ in range(self.args.runs):
                if os.path.exists(ctr_out):
                    os.unlink(ctr_out)
                os.sync()
                t0 = time.monotonic()
                run(ctr + ["images", "export", "--platform", AMD64, ctr_out] + names)
                run(["sync", ctr_out])
                ctr_t.append(time.monotonic() - t0)
            ctr_size = os.path.getsize(ctr_out)

        ta, tc, ts = median(al_t), median(cat_t), median(sk_t)
        comp = f"cat {tc:.2f} s; skopeo {ts:.2f} s"
        if ctr_t:
            comp += f"; ctr export {median(ctr_t):.2f} s"
        self.row(f"export {len(self.refs)} images, one platform, to one .tar, digests verified",
                 f"{ta:.2f} s", comp, f"{ta / tc:.2f}x cat; skopeo/airlock {ts / ta:.1f}x",
                 "≤ 1.10x cat; ≥ 5x faster than skopeo", ta / tc <= 1.10 and ts / ta >= 5)
        sizes = f"blobs {self.export_bytes / MB:.2f} MB; skopeo {sk_size / MB:.1f} MB"
        if ctr_size:
            sizes += f"; ctr export {ctr_size / MB:.2f} MB"
        self.row("tarball size", f"{tar_size / MB:.2f} MB", sizes,
                 f"{tar_size / self.export_bytes:.4f}x blobs; skopeo {sk_size / tar_size:.2f}x",
                 "≤ 1.01x", tar_size / self.export_bytes <= 1.01)
        self.details.append(("export", f"airlock {fmt_list(al_t)} s (cpu "
                             f"{median([r.cpu for r in al_runs]):.2f} s, rss "
                             f"{max(r.maxrss_kb for r in al_runs) / 1024:.1f} MB); cat "
                             f"{fmt_list(cat_t)} s (cpu {median(cat_cpu):.2f} s, "
                             f"{cat_size / MB:.2f} MB); skopeo "
                             f"{fmt_list(sk_t)} s; ctr {fmt_list(ctr_t)} s"))

    def rss(self):
        out = {}
        for ref in ("bench/rss-small:1", "bench/rss-big:1"):
            blob = self.desc["images"][ref]["platforms"]["amd64"]["layers"][0]["size"]
            f_rss, e_rss = [], []
            for _ in range(self.args.runs):
                store = self.fresh("store-rss")
                # Through the relay: real sockets, no waiting on the shaped link.
                r = measure(self.fetch_argv(store, self.relay_port, [ref]))
                f_rss.append(r.maxrss_kb)
                tar = os.path.join(self.work, "rss.tar")
                r = measure([self.export, "--store", store, "-p", AMD64, "-o", tar, "-q", ref])
                e_rss.append(r.maxrss_kb)
                os.unlink(tar)
            shutil.rmtree(store)
            out[ref] = (blob, max(f_rss) / 1024, max(e_rss) / 1024)
        (sb, sf, se), (bb, bf, be) = out["bench/rss-small:1"], out["bench/rss-big:1"]
        ok = max(sf, se, bf, be) <= 32 and bf - sf <= 4 and be - se <= 4
        self.row(f"peak RSS, {sb / MB:.0f} MB vs {bb / MB:.0f} MB blob",
                 f"fetch {sf:.1f} / {bf:.1f} MB; export {se:.1f} / {be:.1f} MB", "—",
                 f"growth: fetch {bf - sf:+.1f} MB, export {be - se:+.1f} MB",
                 "≤ 32 MB, flat in blob size", ok)

    def profiles(self):
        """perf record of one cold fetch (through the relay: CPU, not the
        link) and one export: the top symbols, for the notes, and the CPU
        time the fetch spends in SHA-256."""
        self.profile = {}
        if not shutil.which("perf") or not self.args.profile:
            return
        store = self.fresh("store-prof")
        freq = 4000
        for name, argv in (("fetch", self.fetch_argv(store, self.relay_port)),
                           ("export", [self.export, "--store", store, "-f", self.list_file,
                                       "-p", AMD64, "-o", os.path.join(self.work, "prof.tar"),
                                       "-q"])):
            data = os.path.join(self.work, f"perf-{name}.data")
            r = run(["perf", "record", "-q", "-F", str(freq), "-o", data, "--"] + argv,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
            if r.returncode != 0:
                self.notes.append(f"perf record of {name} failed")
                continue
            by_dso = run(["perf", "report", "-i", data, "--no-children", "--stdio", "-n",
                          "--sort", "dso"], capture_output=True, text=True, check=False).stdout
            samples = sha = 0
            for line in by_dso.splitlines():
                m = re.match(r"\s*([\d.]+)%\s+(\d+)\s+(\S+)", line)
                if m:
                    samples += int(m.group(2))
                    # No TLS here: libcrypto's time is SHA-256 (its symbols
                    # are local, so perf names no function).
                    if m.group(3).startswith("libcrypto"):
                        sha += int(m.group(2))
            if name == "fetch":
                self.perf_sha = sha / freq
            rep = run(["perf", "report", "-i", data, "--no-children", "--stdio", "--sort",
                       "dso,sym", "--percent-limit", "2"], capture_output=True, text=True,
                      check=False).stdout
            top = [l.rstrip() for l in rep.splitlines()
                   if l.strip() and not l.startswith("#") and "%" in l][:14]
            self.profile[name] = (f"{samples} samples at {freq} Hz = {samples / freq:.2f} s CPU, "
                                  f"libcrypto (SHA-256) {100 * sha / max(samples, 1):.0f}%",
                                  "\n".join(top))
        shutil.rmtree(store, ignore_errors=True)

    # Output ------------------------------------------------------------------
    def machine(self):
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        fs = run(["findmnt", "-n", "-o", "FSTYPE,SOURCE", "-T", self.work], capture_output=True,
                 text=True, check=False).stdout.strip()
        rev = run(["git", "-C", REPO, "rev-parse", "--short", "HEAD"], capture_output=True,
                  text=True, check=False).stdout.strip()
        dirty = run(["git", "-C", REPO, "status", "--porcelain", "--untracked-files=no"],
                    capture_output=True, text=True, check=False).stdout.strip()
        sk = run(["skopeo", "--version"], capture_output=True, text=True, check=False).stdout
        ctr = run(["ctr", "--version"], capture_output=True, text=True, check=False).stdout
        curl = run(["curl", "--version"], capture_output=True, text=True, check=False).stdout
        return {
            "cpu": f"{os.cpu_count()} x {cpu}", "mem": f"{mem:.0f} GiB",
            "kernel": platform.release(), "disk": fs or "?",
            "airlock": rev + (" (modified)" if dirty else ""),
            "load": f"load average {self.load_start[0]:.2f} at the start, "
                    f"{os.getloadavg()[0]:.2f} at the end" +
                    (f"; busy before the start: {self.busy_start}" if self.busy_start else ""),
            "tools": "; ".join(x for x in (sk.strip(), ctr.strip().replace("ctr ", ""),
                                           curl.split("\n")[0].split(" (")[0]) if x),
        }

    def render(self, cmd):
        m = self.machine()
        a = self.args
        now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        lines = [
            f"Command: `{cmd}`  ",
            f"Date: {now}; whole run {time.monotonic() - self.t_start:.0f} s  ",
            f"Machine: {m['cpu']}, {m['mem']}, Linux {m['kernel']}, work dir on {m['disk']}; "
            f"{m['load']}  ",
            f"airlock {m['airlock']}, Release build; {m['tools']}  ",
            f"Corpus: {len(self.refs)} images x 2 platforms, {self.total['count']} blobs, "
            f"{self.total['all'] / MB:.1f} MB (one-platform export: {len(self.export_blobs)} "
            f"blobs, {self.export_bytes / MB:.1f} MB)  ",
            f"Link: {a.delay_ms:g} ms per request and per new connection, {a.total_mbit:g} "
            f"Mbit/s in total, {a.conn_mbit:g} Mbit/s per connection. Medians of {a.runs} runs "
            f"(skopeo: {a.skopeo_runs or a.runs}).",
            "",
            "| scenario | airlock | compared with | ratio | target | met |",
            "|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            lines.append(f"| {r['scenario']} | {r['airlock']} | {r['compared']} | {r['ratio']} "
                         f"| {r['target']} | {r['ok']} |")
        lines += ["", "Details:", ""]
        for k, v in self.details:
            lines.append(f"- {k}: {v}")
        for n in self.notes:
            lines.append(f"- note: {n}")
        for name, (head, text) in getattr(self, "profile", {}).items():
            lines += ["", f"perf profile of one {name} (unshaped; {head}; symbols over 2%):",
                      "", "```", text, "```"]
        return "\n".join(lines) + "\n"


def busy_others():
    """Other processes using a CPU now (the machine may be shared): their
    names and %CPU (ps: over each one's lifetime), for the record. A
    stopped process (state T, e.g. a fuzzer paused for the benchmark) uses
    none."""
    r = subprocess.run(["ps", "-eo", "pcpu=,stat=,comm=", "--sort=-pcpu"], capture_output=True,
                       text=True, check=False)
    out = []
    for line in r.stdout.splitlines()[:8]:
        pc, _, rest = line.strip().partition(" ")
        stat, _, name = rest.strip().partition(" ")
        name = name.strip()
        if stat.startswith("T"):
            continue
        try:
            if float(pc) >= 20 and name not in ("ps", "python3"):
                out.append(f"{name.strip()} {float(pc):.0f}%")
        except ValueError:
            pass
    return ", ".join(out)


def fmt_list(xs):
    return "/".join(f"{x:.2f}" for x in xs)


def openssl_sha256_speed():
    """Bytes per second of SHA-256 over 16 KiB blocks, one core."""
    r = run(["openssl", "speed", "-seconds", "1", "-bytes", "16384", "sha256"],
            capture_output=True, text=True, check=False)
    m = re.search(r"^sha256\s+([\d.]+)k", r.stdout, re.M)
    if not m:
        die(f"cannot parse openssl speed: {r.stdout[-500:]}")
    return float(m.group(1)) * 1000


def write_doc(path, text, name="bench"):
    """Replace what is between the NAME:begin and NAME:end markers of path
    (appended, with the markers, when they are not there yet)."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = ""
    if os.path.exists(path):
        with open(path) as f:
            old = f.read()
    if begin in old and end in old:
        new = old[:old.index(begin) + len(begin)] + "\n" + text + old[old.index(end):]
    else:
        new = old + ("\n" if old else "# Benchmarks\n\n") + begin + "\n" + text + end + "\n"
    with open(path + ".tmp", "w") as f:
        f.write(new)
    os.replace(path + ".tmp", path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build-rel"),
                    help="directory with airlock-fetch and airlock-export")
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--work-parent", default="/var/tmp")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--export-runs", type=int, default=5,
                    help="runs of the export and cat (quick, and noisier: page cache, fsync)")
    ap.add_argument("--skopeo-runs", type=int, default=0, help="default: --runs")
    ap.add_argument("--delay-ms", type=float, default=20)
    ap.add_argument("--total-mbit", type=float, default=200)
    ap.add_argument("--conn-mbit", type=float, default=100)
    ap.add_argument("--no-ctr", dest="ctr", action="store_false", help="skip ctr export")
    ap.add_argument("--no-profile", dest="profile", action="store_false")
    ap.add_argument("--doc", default=os.path.join(REPO, "docs", "BENCHMARKS.md"),
                    help="write the table here ('' = nowhere)")
    ap.add_argument("--only", action="append",
                    choices=["proxy", "cold", "noop", "cpu", "export", "rss"],
                    help="run only these scenarios (cold runs whenever a later one needs it)")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--cmd", default=None, help="the command line to record")
    args = ap.parse_args()
    only = set(args.only or ["proxy", "cold", "noop", "cpu", "export", "rss"])
    if only & {"noop", "cpu", "export"}:
        only.add("cold")

    b = Bench(args)
    try:
        b.prepare()
        b.shaped_port, b.shaped_ctl = b.start_shaper(args.delay_ms, args.total_mbit, args.conn_mbit)
        b.relay_port, b.relay_ctl = b.start_shaper(0, 0, 0)
        if "proxy" in only:
            b.proxy_check()
        if "cold" in only:
            b.cold_fetch()
        if "noop" in only:
            b.noop_fetch()
        if "export" in only:
            b.export_scenarios()
        if "rss" in only:
            b.rss()
        b.profiles()
        if "cpu" in only:
            b.cpu_per_byte()
        text = b.render(args.cmd or "scripts/bench/run.sh " + " ".join(sys.argv[1:]))
        print(text)
        if args.doc:
            os.makedirs(os.path.dirname(args.doc), exist_ok=True)
            write_doc(args.doc, text)
            log(f"wrote {args.doc}")
    finally:
        b.stop_all()


if __name__ == "__main__":
    main()
