#!/usr/bin/env python3
"""Benchmarks of bundles (not a test): writing one, applying one, and the
size of a nightly delta. Start it through scripts/bench/bundle.sh, which
builds a Release airlock first.

The bench corpus (corpus.py: 20 images, two platforms, ~400 MB of gzip
layers) is pushed to a private docker-registry and fetched, every platform,
into a store. Measured in the same run, warm page cache, best of --runs,
every file on the same filesystem (the work directory, under /var/tmp):

write   airlock-export --all --bundle full.tar (plain), into a fresh
        directory each time; the peer is GNU tar of the same blob files
        (tar -cf, then sync of the file: airlock fsyncs what it writes).
        Target: within 1.1x of the peer.
import  airlock-fetch --import full.tar into an empty store, each time a
        new one; the peer is cat full.tar >/dev/null plus sha256sum
        full.tar, each timed on its own. Target: within 1.3x of the sum.
delta   one image changes (rancher/klipper-lb:v0.4.4 gets a new own layer
        on each platform, its alpine base kept), is pushed under its tag
        and fetched; airlock-export --all --bundle delta.tar --since
        full.tar.json. Target: the delta's size at most the changed
        image's new blobs (those the store did not hold before) + 64 KB.
        The delta is then applied to the store the full bundle made.
Everything started is stopped by PID; --work is removed unless --keep.
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402
import k3s as k3s_mod  # noqa: E402  (best(), start_registry(), timed())

MB = 1_000_000
MOVED = "rancher/klipper-lb:v0.4.4"


def log(msg):
    print(f"bench-bundle: {msg}", file=sys.stderr, flush=True)


def best_of(fn, runs, before=None):
    times = []
    for _ in range(runs):
        if before:
            before()
        times.append(fn())
    return min(times), times


def store_blobs(store):
    d = os.path.join(store, "blobs", "sha256")
    return {"sha256:" + n: os.path.getsize(os.path.join(d, n)) for n in os.listdir(d)}


def rm(path):
    if os.path.isdir(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def bench_write(a, store, work):
    out = os.path.join(work, "out")
    full = os.path.join(out, "full.tar")
    peer = os.path.join(out, "peer.tar")
    names = sorted(n for n in os.listdir(os.path.join(store, "blobs", "sha256")))
    lst = os.path.join(work, "blobs.list")
    with open(lst, "w") as f:
        f.write("\n".join(names) + "\n")

    def fresh():
        rm(out)
        os.makedirs(out)

    def airlock():
        return k3s_mod.timed([a.export, "--store", store, "-q", "--all", "--bundle", full])

    def gnu_tar():
        t = time.monotonic()
        subprocess.run(["tar", "-cf", peer, "-C", os.path.join(store, "blobs", "sha256"),
                        "-T", lst], check=True)
        subprocess.run(["sync", peer], check=True)
        return time.monotonic() - t

    subprocess.run(["cat"] + [os.path.join(store, "blobs", "sha256", n) for n in names],
                   stdout=subprocess.DEVNULL, check=True)  # warm
    t_peer, r_peer = best_of(gnu_tar, a.runs, fresh)
    peer_size = os.path.getsize(peer)
    t_air, r_air = best_of(airlock, a.runs, fresh)
    size = os.path.getsize(full)
    keep = os.path.join(work, "full.tar")
    os.replace(full, keep)
    os.replace(full + ".json", keep + ".json")
    return {"blobs": len(names), "bundle_mb": size / MB, "peer_mb": peer_size / MB,
            "airlock": t_air, "peer": t_peer, "ratio": t_air / t_peer, "airlock_runs": r_air,
            "peer_runs": r_peer}


def bench_import(a, work):
    full = os.path.join(work, "full.tar")
    far = os.path.join(work, "far")
    subprocess.run(["cat", full], stdout=subprocess.DEVNULL, check=True)  # warm
    t_cat, r_cat = best_of(lambda: k3s_mod.timed(["cat", full]), a.runs)
    t_sha, r_sha = best_of(lambda: k3s_mod.timed(["sha256sum", full]), a.runs)
    t_imp, r_imp = best_of(lambda: k3s_mod.timed([a.fetch, "--store", far, "-q", "--import", full]),
                           a.runs, lambda: rm(far))
    return {"bundle_mb": os.path.getsize(full) / MB, "cat": t_cat, "sha256sum": t_sha,
            "peer": t_cat + t_sha, "import": t_imp, "ratio": t_imp / (t_cat + t_sha),
            "cat_runs": r_cat, "sha_runs": r_sha, "import_runs": r_imp}


def changed_image(corpus, desc):
    """MOVED with a new own layer per platform (its base kept): a new
    version of the image, as upstream would publish it."""
    img = desc["images"][MOVED]
    pool = corpus_mod.Pool()
    rng = random.Random(4242)
    layers = {}
    for arch, pl in img["platforms"].items():
        pool.pos = rng.randrange(len(pool.files))
        files = pool.take(int(1.2 * MB))
        out = os.path.join(corpus.dir, f"bundle-bench-{arch}")
        diff_id, usize = corpus_mod.build_layer(files, out)
        d = corpus_mod.sha256_file(out)
        new = {"digest": d, "size": os.path.getsize(out), "diff_id": diff_id,
               "uncompressed": usize, "mediaType": corpus_mod.O_LAYER_GZ}
        os.replace(out, corpus.blob_path(d))
        layers[arch] = pl["layers"][:-1] + [new]
    return corpus.image(MOVED, layers)


def bench_delta(a, corpus, desc, reg, store, fetch, work):
    before = store_blobs(store)
    new_img = changed_image(corpus, desc)
    corpus_mod.push(corpus, {"images": {MOVED: new_img}}, reg)
    subprocess.run(fetch, check=True)
    after = store_blobs(store)
    new_blobs = {d: s for d, s in after.items() if d not in before}
    delta = os.path.join(work, "delta.tar")
    t = k3s_mod.timed([a.export, "--store", store, "-q", "--all", "--bundle", delta, "--since",
               os.path.join(work, "full.tar.json")])
    with open(delta + ".json") as f:
        man = json.load(f)
    size = os.path.getsize(delta)
    far = os.path.join(work, "far")
    rm(far)
    subprocess.run([a.fetch, "--store", far, "-q", "--import", os.path.join(work, "full.tar")],
                   check=True)
    t_imp = k3s_mod.timed([a.fetch, "--store", far, "-q", "--import", delta])
    carried = {b["digest"] for b in man["blobs"]}
    return {"new_blobs": len(new_blobs), "new_bytes": sum(new_blobs.values()),
            "carried": len(carried), "carried_is_new": carried == set(new_blobs),
            "delta_bytes": size, "manifest_bytes": os.path.getsize(delta + ".json"),
            "overhead": size - sum(new_blobs.values()), "write": t, "import": t_imp,
            "omitted": len(man["omitted"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", required=True)
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    a.export = os.path.join(a.bin, "airlock-export")
    a.fetch = os.path.join(a.bin, "airlock-fetch")
    os.makedirs(a.cache, exist_ok=True)
    corpus = corpus_mod.Corpus(a.cache)
    desc = corpus.build(os.cpu_count() or 2)
    refs = [r for r, _, _ in corpus_mod.IMAGES]
    work = tempfile.mkdtemp(prefix="airlock-bench-bundle-", dir="/var/tmp")
    res = {}
    reg_proc, reg = k3s_mod.start_registry(work)
    try:
        corpus_mod.push(corpus, {"images": {r: desc["images"][r] for r in refs}}, reg)
        store = os.path.join(work, "store")
        lst = os.path.join(work, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(refs) + "\n")
        fetch = [a.fetch, "--store", store, "-q", "--registry", reg, "--insecure-registry", reg,
                 "-f", lst]
        subprocess.run(fetch, check=True)
        log("write")
        res["write"] = bench_write(a, store, work)
        log("import")
        res["import"] = bench_import(a, work)
        log("delta")
        res["delta"] = bench_delta(a, corpus, desc, reg, store, fetch, work)
    finally:
        reg_proc.terminate()
        reg_proc.wait(10)
        if a.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(res, indent=1))
    w, i, d = res["write"], res["import"], res["delta"]
    print(f"write: bundle of {w['blobs']} blobs ({w['bundle_mb']:.0f} MB) {w['airlock']:.2f} s; "
          f"GNU tar of the same blobs + sync {w['peer']:.2f} s; ratio {w['ratio']:.2f} "
          f"(target <= 1.1)")
    print(f"import: {i['import']:.2f} s; cat {i['cat']:.2f} s + sha256sum {i['sha256sum']:.2f} s "
          f"= {i['peer']:.2f} s; ratio {i['ratio']:.2f} (target <= 1.3)")
    print(f"delta: {d['delta_bytes']} bytes for {d['new_blobs']} new blobs of {d['new_bytes']} "
          f"bytes (carried exactly those: {d['carried_is_new']}), overhead {d['overhead']} bytes "
          f"(target <= 65536; manifest {d['manifest_bytes']} bytes, {d['omitted']} blobs omitted); "
          f"written in {d['write']:.2f} s, imported in {d['import']:.2f} s")


if __name__ == "__main__":
    main()
