#!/usr/bin/env python3
"""Benchmarks of the k3s work (not a test): `airlock-export --check` against
zcat, and `--split image` against one archive. Start it through
scripts/bench/k3s.sh, which builds a Release airlock first.

check   An OCI archive of the bench corpus (corpus.py: 20 images, two
        platforms, ~400 MB of gzip layers) is assembled from the corpus cache.
        Measured in the same run, warm page cache, best of --runs:
          zcat of its gzip layers (the files, straight from the cache) >/dev/null
          airlock-export --check ARCHIVE
        Target: --check within 1.3x of zcat.
split   The corpus is pushed to a private docker-registry and fetched
        (linux/amd64) into a store. Measured, best of --runs, into a fresh
        directory each time, uncompressed so that only the layout differs:
          airlock-export -p linux/amd64 -o one.tar          (one archive)
          airlock-export -p linux/amd64 --split image -o DIR/ --compress none
        Target: split within 1.1x of one archive. Then one tag moves (another
        corpus image is pushed under its name), the store is fetched again,
        and a second --split export into the same directory must write only
        that image's archive: its bytes, from the run report, against the
        image's own size.
Everything started is stopped by PID; --work is removed unless --keep.
"""

import argparse
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402

MB = 1_000_000


def log(msg):
    print(f"bench-k3s: {msg}", file=sys.stderr, flush=True)


def best(argv, runs, stdout=subprocess.DEVNULL, before=None):
    """Best wall time of runs runs of argv (a failure stops the benchmark)."""
    times = []
    for _ in range(runs):
        if before:
            before()
        t = time.monotonic()
        p = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE)
        times.append(time.monotonic() - t)
        if p.returncode != 0:
            sys.exit(f"{' '.join(argv[:4])}... failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return min(times), times


def oci_archive(corpus, desc, refs, path):
    """An OCI layout tar of refs (every platform), blobs once each."""
    seen = set()
    layers = []
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as t:
        def add_bytes(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))

        index = {"schemaVersion": 2, "mediaType": corpus_mod.O_INDEX, "manifests": []}
        for ref in refs:
            img = desc["images"][ref]
            for d, b in img["blobs"].items():
                if d in seen:
                    continue
                seen.add(d)
                t.add(corpus.blob_path(d), arcname="blobs/sha256/" + d.split(":")[1])
                if b["kind"] == "layer":
                    layers.append(corpus.blob_path(d))
            index["manifests"].append({
                "mediaType": img["mediaType"], "digest": img["digest"], "size": img["size"],
                "annotations": {"io.containerd.image.name": "docker.io/" + ref,
                                "org.opencontainers.image.ref.name": ref.rsplit(":", 1)[1]}})
        add_bytes("index.json", json.dumps(index).encode())
        add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return layers


def bench_check(a, corpus, desc, refs, work):
    arch = os.path.join(work, "corpus-oci.tar")
    layers = oci_archive(corpus, desc, refs, arch)
    size = os.path.getsize(arch)
    lbytes = sum(os.path.getsize(p) for p in layers)
    log(f"check: archive {size / MB:.0f} MB, {len(layers)} gzip layers ({lbytes / MB:.0f} MB)")
    subprocess.run(["cat", arch] + layers, stdout=subprocess.DEVNULL, check=True)  # warm
    z, zs = best(["zcat"] + layers, a.runs)
    c, cs = best([a.export, "--check", arch], a.runs)
    out = subprocess.run([a.export, "--check", arch], capture_output=True, text=True)
    log("check: " + out.stdout.strip().splitlines()[-1])
    return {"archive_mb": size / MB, "layers": len(layers), "layer_mb": lbytes / MB,
            "zcat": z, "check": c, "ratio": c / z, "zcat_runs": zs, "check_runs": cs}


# A command's wall time; a failure ends the bench with its stderr's tail
# (push.py and bundle.py time their commands with it).
def timed(argv, stdout=subprocess.DEVNULL):
    t = time.monotonic()
    p = subprocess.run(argv, stdout=stdout, stderr=subprocess.PIPE)
    el = time.monotonic() - t
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv[:4])}... failed ({p.returncode}): {p.stderr.decode()[-2000:]}")
    return el


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start_registry(work):
    port = free_port()
    cfg = os.path.join(work, "registry.yml")
    with open(cfg, "w") as f:
        f.write(f"""version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: {work}/registry
http:
  addr: 127.0.0.1:{port}
""")
    p = subprocess.Popen(["docker-registry", "serve", cfg], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return p, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(0.1)
    p.terminate()
    sys.exit("docker-registry did not start")


def bench_split(a, corpus, desc, refs, work):
    reg_proc, reg = start_registry(work)
    try:
        corpus_mod.push(corpus, {"images": {r: desc["images"][r] for r in refs}}, reg)
        store = os.path.join(work, "store")
        lst = os.path.join(work, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(refs) + "\n")
        fetch = [a.fetch, "--store", store, "-q", "--registry", reg, "--insecure-registry", reg,
                 "--platform", "linux/amd64", "-f", lst]
        subprocess.run(fetch, check=True)
        one = os.path.join(work, "one.tar")
        split_dir = os.path.join(work, "split")
        exp = [a.export, "--store", store, "-q", "-f", lst, "-p", "linux/amd64"]

        def fresh():
            for p in (one, split_dir):
                if os.path.isdir(p):
                    shutil.rmtree(p)
                elif os.path.exists(p):
                    os.unlink(p)

        t_one, r_one = best(exp + ["-o", one], a.runs, before=fresh)
        one_size = os.path.getsize(one)
        t_split, r_split = best(exp + ["--split", "image", "--compress", "none", "-o", split_dir + "/"],
                                a.runs, before=fresh)
        files = [f for f in os.listdir(split_dir) if "@" in f]
        split_size = sum(os.path.getsize(os.path.join(split_dir, f)) for f in files)
        # One tag moves: the image of `src` is pushed under the name of `moved`.
        moved, src = refs[5], refs[6]
        corpus_mod.push(corpus, {"images": {moved: desc["images"][src]}}, reg)
        subprocess.run(fetch, check=True)
        rep = os.path.join(work, "split2.json")
        t0 = time.monotonic()
        subprocess.run(exp + ["--split", "image", "--compress", "none", "-o", split_dir + "/",
                              "--json", rep], check=True)
        t_second = time.monotonic() - t0
        with open(rep) as f:
            report = json.load(f)
        written = [x for x in report["archives"] if x["status"] == "written"]
        img = desc["images"][src]["platforms"]["amd64"]
        img_bytes = sum(b["size"] for b in [img["manifest"], img["config"]] + img["layers"])
        return {"one": t_one, "split": t_split, "ratio": t_split / t_one, "one_runs": r_one,
                "split_runs": r_split, "one_mb": one_size / MB, "split_mb": split_size / MB,
                "archives": len(files), "moved": moved,
                "written": [(x["name"], x["bytes"]) for x in written],
                "written_mb": sum(x["bytes"] for x in written) / MB, "image_mb": img_bytes / MB,
                "second": t_second,
                "unchanged": sum(1 for x in report["archives"] if x["status"] == "unchanged")}
    finally:
        reg_proc.terminate()
        reg_proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--only", choices=["check", "split"])
    a = ap.parse_args()
    a.export = os.path.join(a.bin, "airlock-export")
    a.fetch = os.path.join(a.bin, "airlock-fetch")
    os.makedirs(a.cache, exist_ok=True)
    corpus = corpus_mod.Corpus(a.cache)
    desc = corpus.build(os.cpu_count() or 2)
    refs = [r for r, _, _ in corpus_mod.IMAGES]
    work = tempfile.mkdtemp(prefix="airlock-bench-k3s-", dir="/var/tmp")
    res = {}
    try:
        if a.only in (None, "check"):
            res["check"] = bench_check(a, corpus, desc, refs, work)
        if a.only in (None, "split"):
            res["split"] = bench_split(a, corpus, desc, refs, work)
    finally:
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=1))
    if "check" in res:
        c = res["check"]
        print(f"check: {c['archive_mb']:.0f} MB archive, {c['layers']} gzip layers "
              f"({c['layer_mb']:.0f} MB): zcat {c['zcat']:.2f} s, --check {c['check']:.2f} s, "
              f"ratio {c['ratio']:.2f} (target <= 1.3)")
    if "split" in res:
        s = res["split"]
        print(f"split: one archive {s['one']:.2f} s ({s['one_mb']:.0f} MB), --split image "
              f"{s['split']:.2f} s ({s['archives']} archives, {s['split_mb']:.0f} MB), ratio "
              f"{s['ratio']:.2f} (target <= 1.1); after {s['moved']} moved: {len(s['written'])} "
              f"archive written, {s['written_mb']:.1f} MB (the image: {s['image_mb']:.1f} MB), "
              f"{s['unchanged']} unchanged, {s['second']:.2f} s")


if __name__ == "__main__":
    main()
