#!/usr/bin/env python3
"""Build the benchmark corpus and push it to a registry.

The corpus is shaped like a k3s airgap image list: 20 images (pause, coredns,
traefik, metrics-server, local-path-provisioner, klipper, calico/*, ...),
each an OCI index of linux/amd64 and linux/arm64 manifests, with base layers
shared between images (a static base, an alpine-like base, a debian-like base
and a calico base), about 400 MB of gzip layers in all.

Layers are gzip'd tar files of this machine's own /usr tree (real binaries,
libraries, text: gzip gets about 2x on them, as on real images), never random
bytes: decompressing consumers are only slow on real data. Every (layer,
platform) takes its own files, so no two layers share content. OCI media
types throughout, so `skopeo copy oci:STORE:REF ...` (skopeo 1.9 reads only
OCI-typed entries of an OCI layout) can read the images airlock stores.

Two more images measure memory against blob size: bench/rss-small:1 (one
~1 MB layer) and bench/rss-big:1 (one ~200 MB layer), amd64 only.

The blobs are built once into CACHE/corpus-<VERSION>/ and reused; pushing
skips blobs the registry has (HEAD), so a registry whose storage is kept
under CACHE costs nothing on a rerun.

    corpus.py build --cache DIR             build (or reuse) the blobs; print the summary
    corpus.py push  --cache DIR --registry HOST:PORT
"""

import argparse
import concurrent.futures
import hashlib
import importlib.util
import json
import os
import random
import stat
import subprocess
import sys

VERSION = "v1"  # bump when the layout below changes: the cache is keyed on it
MB = 1_000_000

O_INDEX = "application/vnd.oci.image.index.v1+json"
O_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
O_CONFIG = "application/vnd.oci.image.config.v1+json"
O_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
PLATFORMS = {
    "amd64": {"os": "linux", "architecture": "amd64"},
    "arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
}

# Uncompressed MB of /usr files per layer and platform, times SCALE (gzip
# gets about 2.8x on them: the 20 images come to about 400 MB). Shared bases first.
SCALE = 1.4
BASES = {
    "static-base": 2,
    "alpine-base": 6,
    "debian-base": 24,
    "calico-base": 20,
}
# name:tag -> (base or None, [own layer sizes])
IMAGES = [
    ("rancher/mirrored-pause:3.6", None, [0.6]),
    ("rancher/mirrored-coredns-coredns:1.10.1", "static-base", [16]),
    ("rancher/local-path-provisioner:v0.0.26", "alpine-base", [12]),
    ("rancher/mirrored-metrics-server:v0.6.3", "static-base", [20]),
    ("rancher/klipper-helm:v0.8.2-build20230815", "alpine-base", [8, 24]),
    ("rancher/klipper-lb:v0.4.4", "alpine-base", [0.8]),
    ("rancher/mirrored-library-traefik:2.10.5", "alpine-base", [3, 30, 0.2]),
    ("rancher/mirrored-library-busybox:1.36.1", None, [1.6]),
    ("calico/node:v3.27.0", "calico-base", [40, 16]),
    ("calico/cni:v3.27.0", "calico-base", [40]),
    ("calico/kube-controllers:v3.27.0", "calico-base", [24]),
    ("calico/typha:v3.27.0", "calico-base", [20]),
    ("calico/pod2daemon-flexvol:v3.27.0", None, [4]),
    ("calico/csi:v3.27.0", "calico-base", [6]),
    ("calico/node-driver-registrar:v3.27.0", "calico-base", [6]),
    ("calico/apiserver:v3.27.0", "calico-base", [28]),
    ("tigera/operator:v1.32.3", "static-base", [24]),
    ("rancher/mirrored-sig-storage-snapshot-controller:v6.2.1", "static-base", [10]),
    ("rancher/mirrored-sig-storage-snapshot-validation-webhook:v6.2.1", "static-base", [8]),
    ("rancher/nginx-ingress-controller:nginx-1.9.4-hardened2", "debian-base", [4, 20]),
]
RSS_IMAGES = [("bench/rss-small:1", 3), ("bench/rss-big:1", 500)]

SOURCES = ["usr/bin", "usr/sbin", "usr/lib", "usr/libexec", "usr/share", "usr/include"]


def die(msg):
    print(f"corpus: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def file_pool():
    """Every regular file of /usr (not /usr/local), in a fixed shuffled
    order, so a run of the pool mixes binaries, libraries and text."""
    files = []
    for top in SOURCES:
        for d, dirs, names in os.walk("/" + top):
            dirs.sort()
            for n in sorted(names):
                p = os.path.join(d, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and st.st_size > 0 and os.access(p, os.R_OK):
                    files.append((p[1:], st.st_size))
    random.Random(20240601).shuffle(files)
    return files


class Pool:
    def __init__(self):
        self.files = file_pool()
        self.pos = 0
        if not self.files:
            die("no files under /usr to build layers from")

    def take(self, budget):
        """Files (relative paths) adding up to about `budget` bytes; wraps
        around (reusing files) if /usr is smaller than the corpus."""
        out, total, tries = [], 0, 0
        while total < budget and tries < 2 * len(self.files):
            p, size = self.files[self.pos % len(self.files)]
            self.pos += 1
            tries += 1
            if size > max(budget - total, budget // 4) and total > 0:
                continue  # would overshoot a lot: leave it for a bigger layer
            out.append(p)
            total += size
        return sorted(set(out))


def build_layer(files, out_path):
    """tar (with parent directories, fixed owners and mtimes) | gzip -n -6;
    returns (diff_id, size uncompressed)."""
    dirs = set()
    for f in files:
        d = os.path.dirname(f)
        while d and d not in dirs:
            dirs.add(d)
            d = os.path.dirname(d)
    listing = "\n".join(sorted(dirs) + files) + "\n"
    tmp = out_path + ".tmp"
    # The list goes through a file: tar writes its output while it reads the
    # names, and nobody reads that output until the list is written.
    with open(out_path + ".list", "w") as f:
        f.write(listing)
    tar = subprocess.Popen(["tar", "--format=gnu", "--no-recursion", "--mtime=@1700000000",
                            "--owner=0", "--group=0", "--numeric-owner", "-C", "/", "-cf", "-",
                            "-T", out_path + ".list"], stdout=subprocess.PIPE)
    with open(tmp, "wb") as out:
        gz = subprocess.Popen(["gzip", "-n", "-6", "-c"], stdin=subprocess.PIPE, stdout=out)
        h = hashlib.sha256()
        n = 0
        for chunk in iter(lambda: tar.stdout.read(1 << 20), b""):
            h.update(chunk)
            n += len(chunk)
            gz.stdin.write(chunk)
        gz.stdin.close()
        if tar.wait() != 0 or gz.wait() != 0:
            die(f"building {out_path} failed")
    os.unlink(out_path + ".list")
    os.replace(tmp, out_path)
    return "sha256:" + h.hexdigest(), n


class Corpus:
    def __init__(self, cache):
        self.dir = os.path.join(os.path.abspath(cache), f"corpus-{VERSION}")
        self.blob_dir = os.path.join(self.dir, "blobs")
        self.desc_path = os.path.join(self.dir, "corpus.json")

    def blob_path(self, digest):
        return os.path.join(self.blob_dir, digest.split(":", 1)[1])

    def put_bytes(self, data):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        p = self.blob_path(d)
        if not os.path.exists(p):
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.replace(p + ".tmp", p)
        return {"digest": d, "size": len(data)}

    def load(self):
        with open(self.desc_path) as f:
            return json.load(f)

    def build(self, jobs):
        if os.path.exists(self.desc_path):
            return self.load()
        os.makedirs(self.blob_dir, exist_ok=True)
        pool = Pool()
        # Plan every layer first (the pool is consumed in a fixed order),
        # then build them in parallel.
        plan = {}  # key -> (file list, budget)
        for arch in PLATFORMS:
            for name, mb in BASES.items():
                plan[(name, arch)] = (pool.take(int(mb * SCALE * MB)), mb)
            for ref, _, sizes in IMAGES:
                for i, mb in enumerate(sizes):
                    plan[(f"{ref}#{i}", arch)] = (pool.take(int(mb * SCALE * MB)), mb)
        for ref, mb in RSS_IMAGES:
            plan[(f"{ref}#0", "amd64")] = (pool.take(int(mb * MB)), mb)

        def one(key):
            name, arch = key
            out = os.path.join(self.dir, "build-" + hashlib.sha1(f"{name}/{arch}".encode()).hexdigest())
            diff_id, usize = build_layer(plan[key][0], out)
            digest = sha256_file(out)
            size = os.path.getsize(out)
            os.replace(out, self.blob_path(digest))
            return key, {"digest": digest, "size": size, "diff_id": diff_id,
                         "uncompressed": usize, "mediaType": O_LAYER_GZ}

        layers = {}
        # Biggest first, so the last worker is not left alone with a big one.
        keys = sorted(plan, key=lambda k: -plan[k][1])
        print(f"corpus: building {len(keys)} layers from /usr with {jobs} jobs "
              f"(once; cached in {self.dir})", file=sys.stderr, flush=True)
        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            for key, desc in ex.map(one, keys):
                layers[key] = desc

        images = {}
        for ref, base, sizes in IMAGES:
            keys = {a: ([(base, a)] if base else []) + [(f"{ref}#{i}", a) for i in range(len(sizes))]
                    for a in PLATFORMS}
            images[ref] = self.image(ref, {a: [layers[k] for k in ks] for a, ks in keys.items()})
        for ref, _ in RSS_IMAGES:
            images[ref] = self.image(ref, {"amd64": [layers[(f"{ref}#0", "amd64")]]}, single=True)
        desc = {"version": VERSION, "images": images}
        with open(self.desc_path + ".tmp", "w") as f:
            json.dump(desc, f, indent=1, sort_keys=True)
        os.replace(self.desc_path + ".tmp", self.desc_path)
        return desc

    def image(self, ref, layers_by_arch, single=False):
        """An OCI index over one manifest per platform (or, single, the bare
        manifest). Returns {digest, mediaType, blobs: {digest: {...}},
        platforms: {arch: {manifest, config, layers}}}."""
        blobs = {}
        platforms = {}
        entries = []
        for arch, layers in layers_by_arch.items():
            p = PLATFORMS[arch]
            cfg = dict(p, created="2024-01-01T00:00:00Z",
                       config={"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin"],
                               "Cmd": ["/" + ref.split("/")[-1].split(":")[0]]},
                       rootfs={"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
                       history=[{"created": "2024-01-01T00:00:00Z",
                                 "created_by": f"airlock bench {ref} layer {i}"}
                                for i in range(len(layers))])
            c = self.put_bytes(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode())
            c["mediaType"] = O_CONFIG
            m = {"schemaVersion": 2, "mediaType": O_MANIFEST,
                 "config": {"mediaType": O_CONFIG, "digest": c["digest"], "size": c["size"]},
                 "layers": [{"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"]}
                            for l in layers]}
            md = self.put_bytes((json.dumps(m, indent=3) + "\n").encode())
            md["mediaType"] = O_MANIFEST
            blobs[md["digest"]] = dict(md, kind="manifest", arch=arch)
            blobs[c["digest"]] = dict(c, kind="config", arch=arch)
            for l in layers:
                blobs[l["digest"]] = dict(l, kind="layer", arch=arch)
            platforms[arch] = {"manifest": md, "config": c, "layers": layers}
            entries.append({"mediaType": O_MANIFEST, "digest": md["digest"], "size": md["size"],
                            "platform": p})
        if single:
            (root,) = [pl["manifest"] for pl in platforms.values()]
        else:
            idx = {"schemaVersion": 2, "mediaType": O_INDEX, "manifests": entries}
            root = self.put_bytes((json.dumps(idx, indent=3) + "\n").encode())
            root["mediaType"] = O_INDEX
            blobs[root["digest"]] = dict(root, kind="index", arch=None)
        return {"ref": ref, "digest": root["digest"], "mediaType": root["mediaType"],
                "size": root["size"], "blobs": blobs, "platforms": platforms}


def load_seed_registry():
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("seed_images",
                                                  os.path.join(here, "..", "..", "tests", "infra", "seed-images.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def push(corpus, desc, registry):
    seed = load_seed_registry()
    reg = seed.Registry(registry, False, None, None, None)

    def blob(d):
        b = seed.Blob.__new__(seed.Blob)
        b.media_type, b.digest, b.size = d["mediaType"], d["digest"], d["size"]
        p = corpus.blob_path(d["digest"])
        if d["size"] < 65536:
            with open(p, "rb") as f:
                b.data, b.path = f.read(), None
        else:
            b.data, b.path = None, p
        return b

    for ref, img in desc["images"].items():
        repo, tag = ref.rsplit(":", 1)
        for pl in img["platforms"].values():
            for l in pl["layers"]:
                reg.push_blob(repo, blob(l))
            reg.push_blob(repo, blob(pl["config"]))
            if pl["manifest"]["digest"] != img["digest"]:  # a child of an index or list
                reg.push_manifest(repo, pl["manifest"]["digest"], blob(pl["manifest"]))
        reg.push_manifest(repo, tag, blob(img))
    return reg.uploaded


def summary(desc, refs=None):
    """Unique blob bytes: all, per arch, layers only."""
    out = {"all": 0, "amd64": 0, "arm64": 0, "count": 0}
    seen = set()
    for ref, img in desc["images"].items():
        if refs is not None and ref not in refs:
            continue
        for d, b in img["blobs"].items():
            if d in seen:
                continue
            seen.add(d)
            out["all"] += b["size"]
            out["count"] += 1
            if b.get("arch"):
                out[b["arch"]] += b["size"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["build", "push"])
    ap.add_argument("--cache", required=True)
    ap.add_argument("--registry")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    c = Corpus(args.cache)
    desc = c.build(args.jobs)
    if args.cmd == "push":
        if not args.registry:
            die("push needs --registry")
        n = push(c, desc, args.registry)
        print(f"corpus: pushed {len(desc['images'])} images to {args.registry} "
              f"({n / MB:.1f} MB uploaded)", file=sys.stderr)
    s = summary(desc, [r for r, _, _ in IMAGES])
    print(json.dumps({"images": len(IMAGES), "blobs": s["count"], "bytes": s["all"],
                      "amd64": s["amd64"], "arm64": s["arm64"]}))


if __name__ == "__main__":
    main()
