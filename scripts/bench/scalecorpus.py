#!/usr/bin/env python3
"""The corpus of the scale benchmark (scripts/bench/scale.py): N tags shaped
like a site's nightly list, with small layers, so that what is measured is
the cost of a tag (requests, commits, index writes), not of bytes.

Tag i (0-based) is bench-scale/app<i//4>:<i%4+1>.0, four tags per
repository, and is built from i alone, so the first 100 or 400 tags of a
2,000-tag corpus are the 100- or 400-tag corpus:

  * every 4th tag is multi-arch: an index over linux/amd64 and linux/arm64
    (an OCI index and a Docker manifest list in turn); the others are one
    linux/amd64 manifest (OCI and Docker schema 2 in turn);
  * four of every five images sit on one of four shared bases (one layer
    per base and platform, about 6 kB gzip'd: a site's few common bases),
    the fifth on nothing; every image adds one or two layers of its own
    (about 1-2 kB gzip'd) and its own config.

Layers are real gzip'd tars of generated text files with fixed owners and
mtimes (the same i gives the same bytes). The blobs are built once into
CACHE/scale-<VERSION>/ and reused; a larger N extends the corpus. The push
uses corpus.py's push (seed-images.py's registry client), several
repositories at a time; a stamp in CACHE records what was pushed into the
registry storage kept there, so a rerun pushes nothing.

    scalecorpus.py build --cache DIR [--tags N]
    scalecorpus.py push  --cache DIR --registry HOST:PORT [--tags N]
"""

import argparse
import concurrent.futures
import contextlib
import fcntl
import gzip
import hashlib
import http.client
import io
import json
import os
import random
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import corpus as corpus_mod  # noqa: E402

VERSION = "s1"  # bump when the layout below changes: the cache is keyed on it
DEFAULT_TAGS = 2000

O_INDEX = "application/vnd.oci.image.index.v1+json"
O_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
O_CONFIG = "application/vnd.oci.image.config.v1+json"
O_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
D_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
D_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D_CONFIG = "application/vnd.docker.container.image.v1+json"
D_LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
TYPES = {
    "oci": {"index": O_INDEX, "manifest": O_MANIFEST, "config": O_CONFIG, "layer": O_LAYER_GZ},
    "docker": {"index": D_LIST, "manifest": D_MANIFEST, "config": D_CONFIG, "layer": D_LAYER_GZ},
}
PLATFORMS = {
    "amd64": {"os": "linux", "architecture": "amd64"},
    "arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
}
BASES = ["static", "alpine", "debian", "distroless"]
WORDS = ("alpha bravo charlie delta echo foxtrot golf hotel india juliet kilo lima mike "
         "november oscar papa quebec romeo sierra tango uniform victor whiskey xray yankee "
         "zulu config service listen port timeout retry cache volume secret mount").split()
MTIME = 1700000000


def die(msg):
    print(f"scalecorpus: {msg}", file=sys.stderr)
    sys.exit(1)


def tag_ref(i):
    return f"bench-scale/app{i // 4:04d}:{i % 4 + 1}.0"


def text(seed, size):
    """size bytes of word salad, the same for the same seed."""
    rnd = random.Random(seed)
    out, n = [], 0
    while n < size:
        line = " ".join(rnd.choice(WORDS) for _ in range(rnd.randint(4, 14))) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def tar_gz(files):
    """A gzip'd GNU tar of {path: bytes} with parent directories, fixed
    owners and mtimes; returns (gz bytes, diff_id)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        dirs = set()
        for path in files:
            d = os.path.dirname(path)
            while d and d not in dirs:
                dirs.add(d)
                d = os.path.dirname(d)
        for d in sorted(dirs):
            ti = tarfile.TarInfo(d)
            ti.type, ti.mode, ti.mtime = tarfile.DIRTYPE, 0o755, MTIME
            tf.addfile(ti)
        for path, data in sorted(files.items()):
            ti = tarfile.TarInfo(path)
            ti.size, ti.mode, ti.mtime = len(data), 0o644, MTIME
            tf.addfile(ti, io.BytesIO(data))
    raw = buf.getvalue()
    return gzip.compress(raw, compresslevel=6, mtime=0), "sha256:" + hashlib.sha256(raw).hexdigest()


class ScaleCorpus:
    def __init__(self, cache):
        self.cache = os.path.abspath(cache)
        self.dir = os.path.join(self.cache, f"scale-{VERSION}")
        self.blob_dir = os.path.join(self.dir, "blobs")
        self.desc_path = os.path.join(self.dir, "corpus.json")
        self.registry_dir = os.path.join(self.cache, f"registry-scale-{VERSION}")
        self.stamp = os.path.join(self.cache, f"registry-scale-{VERSION}.pushed")
        self.bases = {}

    @contextlib.contextmanager
    def locked(self):
        """Two benchmarks sharing the cache build and push one at a time."""
        os.makedirs(self.cache, exist_ok=True)
        with open(os.path.join(self.cache, f"scale-{VERSION}.lock"), "w") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            yield

    def blob_path(self, digest):
        return os.path.join(self.blob_dir, digest.split(":", 1)[1])

    def put(self, data, media_type):
        d = "sha256:" + hashlib.sha256(data).hexdigest()
        p = self.blob_path(d)
        if not os.path.exists(p):
            with open(p + ".tmp", "wb") as f:
                f.write(data)
            os.replace(p + ".tmp", p)
        return {"digest": d, "size": len(data), "mediaType": media_type}

    def layer(self, files, media_type):
        gz, diff_id = tar_gz(files)
        return dict(self.put(gz, media_type), diff_id=diff_id)

    def base_layer(self, name, arch, media_type):
        key = (name, arch)
        if key not in self.bases:
            files = {f"usr/lib/{name}/{arch}/part{k}.txt": text(f"base/{name}/{arch}/{k}", 4000)
                     for k in range(4)}
            self.bases[key] = self.layer(files, media_type)
        # The same bytes are an OCI layer in one manifest, a Docker one in another.
        return dict(self.bases[key], mediaType=media_type)

    def image(self, i):
        """Tag i, in corpus.py's description format (what its push takes)."""
        ref = tag_ref(i)
        multi = i % 4 == 0
        kind = ("oci" if (i // 4) % 2 == 0 else "docker") if multi else ("oci" if i % 2 else "docker")
        t = TYPES[kind]
        base = BASES[i % 5] if i % 5 < len(BASES) else None
        n_own = 1 if i % 3 == 0 else 2
        archs = ["amd64", "arm64"] if multi else ["amd64"]
        platforms, entries = {}, []
        for arch in archs:
            layers = [self.base_layer(base, arch, t["layer"])] if base else []
            for k in range(n_own):
                layers.append(self.layer({f"opt/app{i}/{arch}/layer{k}.txt":
                                          text(f"{i}/{arch}/{k}", 2500 + 300 * k)}, t["layer"]))
            cfg = dict(PLATFORMS[arch], created="2024-01-01T00:00:00Z",
                       config={"Env": ["PATH=/usr/sbin:/usr/bin"], "Cmd": [f"/opt/app{i}/run"]},
                       rootfs={"type": "layers", "diff_ids": [l["diff_id"] for l in layers]},
                       history=[{"created": "2024-01-01T00:00:00Z",
                                 "created_by": f"airlock scale bench {ref} layer {k}"}
                                for k in range(len(layers))])
            c = self.put(json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode(),
                         t["config"])
            m = {"schemaVersion": 2, "mediaType": t["manifest"],
                 "config": {"mediaType": t["config"], "digest": c["digest"], "size": c["size"]},
                 "layers": [{"mediaType": l["mediaType"], "digest": l["digest"], "size": l["size"]}
                            for l in layers]}
            md = self.put((json.dumps(m, indent=3) + "\n").encode(), t["manifest"])
            platforms[arch] = {"manifest": md, "config": c, "layers": layers}
            entries.append({"mediaType": t["manifest"], "digest": md["digest"],
                            "size": md["size"], "platform": PLATFORMS[arch]})
        if multi:
            idx = {"schemaVersion": 2, "mediaType": t["index"], "manifests": entries}
            root = self.put((json.dumps(idx, indent=3) + "\n").encode(), t["index"])
        else:
            root = platforms["amd64"]["manifest"]
        return {"ref": ref, "digest": root["digest"], "mediaType": root["mediaType"],
                "size": root["size"], "multi": multi, "kind": kind, "platforms": platforms}

    def build(self, n):
        """The description of tags 0..n-1 (built, or extended, as needed)."""
        tags = []
        if os.path.exists(self.desc_path):
            with open(self.desc_path) as f:
                tags = json.load(f)["tags"]
        if len(tags) < n:
            os.makedirs(self.blob_dir, exist_ok=True)
            print(f"scalecorpus: building tags {len(tags)}..{n - 1} (once; cached in {self.dir})",
                  file=sys.stderr, flush=True)
            tags += [self.image(i) for i in range(len(tags), n)]
            with open(self.desc_path + ".tmp", "w") as f:
                json.dump({"version": VERSION, "tags": tags}, f, separators=(",", ":"))
            os.replace(self.desc_path + ".tmp", self.desc_path)
        return tags[:n]

    def pushed(self):
        try:
            with open(self.stamp) as f:
                return json.load(f).get("tags", 0)
        except (OSError, ValueError):
            return 0

    def present(self, registry, tags):
        """Spot check that the registry storage still holds what the stamp
        says: the first and the last tag resolve to their digests."""
        host, _, port = registry.rpartition(":")
        for img in (tags[0], tags[-1]):
            repo, tag = img["ref"].rsplit(":", 1)
            c = http.client.HTTPConnection(host, int(port), timeout=10)
            c.request("HEAD", f"/v2/{repo}/manifests/{tag}", headers={"Accept": img["mediaType"]})
            r = c.getresponse()
            r.read()
            if r.status != 200 or r.getheader("Docker-Content-Digest") != img["digest"]:
                return False
        return True

    def push(self, registry, tags, jobs=4):
        """Push tags into the registry unless the stamp (and a spot check)
        says they are there. Repositories are split between `jobs`
        connections, each repository's tags on one of them."""
        if self.pushed() >= len(tags) and self.present(registry, tags):
            return 0
        shards = [dict() for _ in range(jobs)]
        for img in tags:
            repo = img["ref"].rsplit(":", 1)[0]
            shards[int(hashlib.sha1(repo.encode()).hexdigest(), 16) % jobs][img["ref"]] = img
        print(f"scalecorpus: pushing {len(tags)} tags to {registry} ({jobs} connections)",
              file=sys.stderr, flush=True)
        with concurrent.futures.ThreadPoolExecutor(jobs) as ex:
            up = sum(ex.map(lambda s: corpus_mod.push(self, {"images": s}, registry), shards))
        with open(self.stamp + ".tmp", "w") as f:
            json.dump({"version": VERSION, "tags": max(len(tags), self.pushed())}, f)
        os.replace(self.stamp + ".tmp", self.stamp)
        return up


def summary(tags):
    """Counts and unique bytes of a prefix of the corpus."""
    seen = {}
    manifests = 0
    for img in tags:
        if img["multi"]:
            seen[img["digest"]] = img["size"]
            manifests += 1
        for pl in img["platforms"].values():
            manifests += 1
            for b in [pl["manifest"], pl["config"]] + pl["layers"]:
                seen[b["digest"]] = b["size"]
    return {"tags": len(tags), "multi": sum(1 for t in tags if t["multi"]),
            "repos": len({t["ref"].rsplit(":", 1)[0] for t in tags}), "manifests": manifests,
            "blobs": len(seen), "bytes": sum(seen.values())}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cmd", choices=["build", "push"])
    ap.add_argument("--cache", default=os.environ.get("AL_BENCH_CACHE", "/var/tmp/airlock-bench"))
    ap.add_argument("--registry")
    ap.add_argument("--tags", type=int, default=DEFAULT_TAGS)
    args = ap.parse_args()
    c = ScaleCorpus(args.cache)
    with c.locked():
        tags = c.build(args.tags)
        if args.cmd == "push":
            if not args.registry:
                die("push needs --registry")
            n = c.push(args.registry, tags)
            print(f"scalecorpus: {n / 1e6:.1f} MB uploaded", file=sys.stderr)
    print(json.dumps(summary(tags)))


if __name__ == "__main__":
    main()
