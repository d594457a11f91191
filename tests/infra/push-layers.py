#!/usr/bin/env python3
"""Push a single-platform image with many layers of random content.

For tests that need volume or many blobs (a 50 MB export, a 50-layer
batch killed half-way) without carrying them in the rig's seed. Each layer
is a real uncompressed tar holding one file of pseudo-random bytes from
--seed, so the same arguments give the same digests. Pushed with the
registry HTTP API only (monolithic upload, then the manifest by tag), to a
plain-HTTP registry.

    push-layers.py --registry 127.0.0.1:5000 --repo airlock-test/many --tag 1 \\
                   --sizes 50x200000 [--sizes 5x1000000] [--seed 7] --out desc.json

--sizes NxBYTES adds N layers of about BYTES each (repeatable, in order).
--out gets {"ref", "digest", "config", "layers": [{"digest", "size"}...]}.
"""

import argparse
import hashlib
import http.client
import io
import json
import random
import sys
import tarfile
import urllib.parse

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER = "application/vnd.oci.image.layer.v1.tar"


def sha(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def layer(rng, index, size):
    data = rng.randbytes(size)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as t:
        ti = tarfile.TarInfo(f"layer-{index:03d}.bin")
        ti.size = size
        ti.mode = 0o644
        ti.mtime = 0
        t.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


class Registry:
    def __init__(self, hostport):
        self.hostport = hostport

    def req(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.hostport, timeout=120)
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        data = r.read()
        c.close()
        return r, data

    def blob(self, repo, data):
        r, _ = self.req("HEAD", f"/v2/{repo}/blobs/{sha(data)}")
        if r.status == 200:
            return
        r, body = self.req("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"})
        if r.status != 202:
            sys.exit(f"push-layers: POST upload: HTTP {r.status} {body[:200]!r}")
        loc = urllib.parse.urlsplit(r.getheader("Location"))
        q = (loc.query + "&" if loc.query else "") + "digest=" + sha(data)
        r, body = self.req("PUT", loc.path + "?" + q, data,
                           {"Content-Type": "application/octet-stream"})
        if r.status != 201:
            sys.exit(f"push-layers: PUT blob: HTTP {r.status} {body[:200]!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--sizes", action="append", required=True, metavar="NxBYTES")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    reg = Registry(args.registry)
    layers = []
    for spec in args.sizes:
        n, _, size = spec.partition("x")
        for _ in range(int(n)):
            data = layer(rng, len(layers), int(size))
            reg.blob(args.repo, data)
            layers.append({"digest": sha(data), "size": len(data)})
    config = json.dumps({
        "architecture": "amd64", "os": "linux",
        "config": {"Cmd": ["/bin/true"]},
        "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]},
        "history": [{"created_by": f"push-layers.py seed {args.seed}"}],
    }, sort_keys=True).encode()
    reg.blob(args.repo, config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MT_MANIFEST,
        "config": {"mediaType": MT_CONFIG, "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": MT_LAYER, "digest": l["digest"], "size": l["size"]}
                   for l in layers],
    }, sort_keys=True).encode()
    r, body = reg.req("PUT", f"/v2/{args.repo}/manifests/{args.tag}", manifest,
                      {"Content-Type": MT_MANIFEST})
    if r.status != 201:
        sys.exit(f"push-layers: PUT manifest: HTTP {r.status} {body[:300]!r}")
    desc = {"ref": f"{args.repo}:{args.tag}", "digest": sha(manifest), "config": sha(config),
            "layers": layers}
    if args.out:
        with open(args.out, "w") as f:
            json.dump(desc, f, indent=2)
            f.write("\n")
    total = sum(l["size"] for l in layers)
    print(f"push-layers: {args.repo}:{args.tag}: {len(layers)} layers, {total} bytes",
          file=sys.stderr)


if __name__ == "__main__":
    main()
