#!/usr/bin/env python3
"""Build the integration-test images and push them to a registry.

Everything is made here from real parts: the busybox binaries of Debian's
busybox-static packages (amd64, arm64; scripts/install-deps.sh caches the
.debs) and small text files, packed into tar layers with fixed mtimes and
owners, compressed with `gzip -n` or `zstd`. The same inputs give the same
bytes, so the digests are stable across runs and across registries.

The images are pushed with the registry HTTP API only: HEAD to skip blobs
already there, monolithic upload (POST .../blobs/uploads/ then PUT
<location>&digest=...), manifests by digest for children and by tag for
the root.

    seed-images.py --registry 127.0.0.1:5000 [--tls --ca CA.crt]
                   [--user U --password-file F] [--big] [--cache DIR]
                   --out seed.json

The description written to --out (see describe() below for the format)
lists, for each pushed ref, its manifest digest, media type, platforms and
every blob with digest, size, kind and the platforms that use it.
"""

import argparse
import base64
import hashlib
import http.client
import json
import os
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import urllib.parse

# Media types ----------------------------------------------------------------
D_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
D_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
D_CONFIG = "application/vnd.docker.container.image.v1+json"
D_LAYER_GZ = "application/vnd.docker.image.rootfs.diff.tar.gzip"
O_INDEX = "application/vnd.oci.image.index.v1+json"
O_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
O_CONFIG = "application/vnd.oci.image.config.v1+json"
O_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
O_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
INTOTO = "application/vnd.in-toto+json"

EPOCH = "1970-01-01T00:00:00Z"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Debian's arch -> OCI platform (arm64 carries variant v8, as docker does).
PLATFORMS = {
    "amd64": {"os": "linux", "architecture": "amd64"},
    "arm64": {"os": "linux", "architecture": "arm64", "variant": "v8"},
}


def die(msg):
    print(f"seed-images: {msg}", file=sys.stderr)
    sys.exit(1)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return "sha256:" + h.hexdigest()


def sha256_bytes(b):
    return "sha256:" + hashlib.sha256(b).hexdigest()


def norm_platform(p):
    """containerd-style normal form: arm64/v8 == arm64."""
    s = f"{p['os']}/{p['architecture']}"
    v = p.get("variant", "")
    if v and not (p["architecture"] == "arm64" and v == "v8"):
        s += "/" + v
    return s


class Blob:
    """Bytes to push, in memory (manifests, configs) or in a file (layers)."""

    def __init__(self, media_type, data=None, path=None):
        self.media_type = media_type
        self.data = data
        self.path = path
        if data is not None:
            self.digest = sha256_bytes(data)
            self.size = len(data)
        else:
            self.digest = sha256_file(path)
            self.size = os.path.getsize(path)

    def descriptor(self, media_type=None, **extra):
        d = {"mediaType": media_type or self.media_type, "digest": self.digest, "size": self.size}
        d.update(extra)
        return d


class Layer:
    def __init__(self, blob, diff_id, media_type):
        self.blob = blob
        self.diff_id = diff_id
        self.media_type = media_type


class Builder:
    def __init__(self, work, cache):
        self.work = work
        self.cache = cache
        self.layers = {}
        self.busybox = {}

    # Inputs ------------------------------------------------------------------
    def busybox_binary(self, arch):
        if arch in self.busybox:
            return self.busybox[arch]
        debs = sorted(f for f in os.listdir(self.cache)
                      if f.startswith("busybox-static_") and f.endswith(f"_{arch}.deb")) \
            if os.path.isdir(self.cache) else []
        if not debs:
            die(f"no busybox-static {arch} .deb in {self.cache}; run scripts/install-deps.sh")
        dest = os.path.join(self.work, f"deb-{arch}")
        subprocess.run(["dpkg-deb", "-x", os.path.join(self.cache, debs[-1]), dest], check=True)
        path = os.path.join(dest, "bin", "busybox")
        if not os.path.isfile(path):
            die(f"{debs[-1]} holds no bin/busybox")
        self.busybox[arch] = path
        return path

    # Layers ------------------------------------------------------------------
    def layer(self, name, files, compression="gzip", oci=False):
        """files: {relpath: bytes | ("symlink", target) | ("file", srcpath, mode)}.
        The same (name, compression) always gives the same blob."""
        key = (name, compression)
        if key in self.layers:
            return self.layer_as(self.layers[key], oci)
        root = os.path.join(self.work, "layers", name, "root")
        os.makedirs(root)
        for rel, spec in sorted(files.items()):
            dst = os.path.join(root, rel)
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if isinstance(spec, bytes):
                with open(dst, "wb") as f:
                    f.write(spec)
                os.chmod(dst, 0o644)
            elif spec[0] == "symlink":
                os.symlink(spec[1], dst)
            elif spec[0] == "file":
                shutil.copyfile(spec[1], dst)
                os.chmod(dst, spec[2])
            elif spec[0] == "gen":
                spec[1](dst)
                os.chmod(dst, 0o644)
        # Directory modes would otherwise follow the umask.
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o755)
        tar_path = os.path.join(self.work, "layers", name, "layer.tar")
        top = sorted(os.listdir(root))
        subprocess.run(["tar", "--format=gnu", "--sort=name", "--mtime=@0", "--owner=0",
                        "--group=0", "--numeric-owner", "-C", root, "-cf", tar_path] + top,
                       check=True)
        diff_id = sha256_file(tar_path)
        if compression == "gzip":
            out = tar_path + ".gz"
            with open(out, "wb") as f:
                subprocess.run(["gzip", "-n", "-6", "-c", tar_path], stdout=f, check=True)
            mt = O_LAYER_GZ
        elif compression == "zstd":
            out = tar_path + ".zst"
            subprocess.run(["zstd", "-q", "-f", "-3", "--no-progress", tar_path, "-o", out],
                           check=True)
            mt = O_LAYER_ZSTD
        else:
            raise ValueError(compression)
        shutil.rmtree(root)
        layer = Layer(Blob(mt, path=out), diff_id, mt)
        self.layers[key] = layer
        return self.layer_as(layer, oci)

    @staticmethod
    def layer_as(layer, oci):
        # The same bytes are described as a Docker or an OCI layer depending
        # on the manifest that uses them: the blob (and digest) is shared.
        if layer.media_type == O_LAYER_GZ and not oci:
            return Layer(layer.blob, layer.diff_id, D_LAYER_GZ)
        return layer

    def busybox_layer(self, arch, oci=False):
        files = {
            "bin/busybox": ("file", self.busybox_binary(arch), 0o755),
            "bin/sh": ("symlink", "busybox"),
            "bin/ls": ("symlink", "busybox"),
            "bin/cat": ("symlink", "busybox"),
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
            "etc/group": b"root:x:0:\nnogroup:x:65534:\n",
        }
        return self.layer(f"busybox-{arch}", files, oci=oci)

    def text_layer(self, name, files, compression="gzip", oci=False):
        return self.layer(name, {k: v.encode() for k, v in files.items()}, compression, oci)

    def big_layer(self):
        """~120 MB gzip layer of log-like text: random hex from a fixed seed
        compresses about 2:1, like real logs and data files do."""
        rng = random.Random(20240101)

        def gen(count):
            def write(dst):
                with open(dst, "w") as f:
                    for i in range(count):
                        f.write(f"2024-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}Z worker={i % 17} "
                                f"chunk={rng.randbytes(48).hex()}\n")
            return write

        files = {f"var/lib/bigdata/part-{n:02d}.log": ("gen", gen(96_000)) for n in range(20)}
        return self.layer("big", files, "gzip", oci=False)

    # Configs and manifests ---------------------------------------------------
    def config(self, platform, layers, cmd, oci, history_note):
        cfg = {
            "architecture": platform["architecture"],
            "os": platform["os"],
            "created": EPOCH,
            "config": {"Env": [PATH_ENV], "Cmd": cmd},
            "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
            "history": [{"created": EPOCH, "created_by": f"airlock seed: {history_note} layer {i}"}
                        for i in range(len(layers))],
        }
        if "variant" in platform:
            cfg["variant"] = platform["variant"]
        data = json.dumps(cfg, sort_keys=True, separators=(",", ":")).encode()
        return Blob(O_CONFIG if oci else D_CONFIG, data=data)

    @staticmethod
    def manifest_bytes(obj):
        # Indented (like docker's and buildx's output), so a client that
        # re-serialises instead of keeping the bytes gets another digest.
        return (json.dumps(obj, indent=3) + "\n").encode()


class Image:
    """One manifest or index and everything beneath it."""

    def __init__(self, blob, kind, platform=None, children=(), config=None, layers=(),
                 attestation=False):
        self.blob = blob
        self.kind = kind  # "index" | "manifest"
        self.platform = platform
        self.children = list(children)  # Images (for an index)
        self.config = config
        self.layers = list(layers)
        self.attestation = attestation


def single(b, arch, layers, oci, cmd, note):
    platform = PLATFORMS[arch]
    cfg = b.config(platform, layers, cmd, oci, note)
    m = {
        "schemaVersion": 2,
        "mediaType": O_MANIFEST if oci else D_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [l.blob.descriptor(l.media_type) for l in layers],
    }
    blob = Blob(m["mediaType"], data=b.manifest_bytes(m))
    return Image(blob, "manifest", platform=platform, config=cfg, layers=layers)


def index(b, children, oci, extra_entries=()):
    """children: Images with .platform (for a nested index: the platform is None)."""
    entries = []
    for c in children:
        d = c.blob.descriptor()
        if c.platform is not None:
            d["platform"] = dict(c.platform)
        entries.append(d)
    entries.extend(extra_entries)
    m = {"schemaVersion": 2, "mediaType": O_INDEX if oci else D_LIST, "manifests": entries}
    return Image(Blob(m["mediaType"], data=b.manifest_bytes(m)), "index", children=children)


def attestation_for(b, subject, note):
    """A buildx-style attestation manifest for `subject` (an image manifest):
    an OCI manifest with an in-toto layer, listed in the index with platform
    unknown/unknown and the vnd.docker.reference.* annotations."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": f"pkg:docker/{note}",
                     "digest": {"sha256": subject.blob.digest.split(":")[1]}}],
        "predicate": {"spdxVersion": "SPDX-2.3", "name": note, "packages": []},
    }
    layer_blob = Blob(INTOTO, data=json.dumps(statement, sort_keys=True).encode())
    layer = Layer(layer_blob, layer_blob.digest, INTOTO)
    unknown = {"os": "unknown", "architecture": "unknown"}
    cfg_obj = {"architecture": "unknown", "os": "unknown", "config": {},
               "rootfs": {"type": "layers", "diff_ids": [layer_blob.digest]}}
    cfg = Blob(O_CONFIG, data=json.dumps(cfg_obj, sort_keys=True, separators=(",", ":")).encode())
    m = {
        "schemaVersion": 2,
        "mediaType": O_MANIFEST,
        "config": cfg.descriptor(),
        "layers": [layer_blob.descriptor(INTOTO, annotations={
            "in-toto.io/predicate-type": "https://spdx.dev/Document"})],
    }
    img = Image(Blob(O_MANIFEST, data=b.manifest_bytes(m)), "manifest", platform=unknown,
                config=cfg, layers=[layer], attestation=True)
    entry = img.blob.descriptor(platform=unknown, annotations={
        "vnd.docker.reference.digest": subject.blob.digest,
        "vnd.docker.reference.type": "attestation-manifest",
    })
    return img, entry


def build_all(b, big):
    imgs = {}
    both = ("amd64", "arm64")

    # library/busybox:1.36: Docker manifest list, gzip layers.
    imgs["library/busybox:1.36"] = index(b, [
        single(b, a, [b.busybox_layer(a)], False, ["sh"], "busybox") for a in both], oci=False)

    # rancher/mirrored-pause:3.6: OCI index + a buildx attestation manifest.
    kids = []
    for a in both:
        pause = b.text_layer(f"pause-{a}", {
            "pause": f"#!/bin/sh\n# pause for {a}: sleeps forever\nexec sleep 2147483647\n"},
            oci=True)
        kids.append(single(b, a, [pause], True, ["/pause"], "pause"))
    att, att_entry = attestation_for(b, kids[0], "rancher/mirrored-pause:3.6")
    pause_idx = index(b, kids, oci=True, extra_entries=[att_entry])
    pause_idx.children.append(att)
    imgs["rancher/mirrored-pause:3.6"] = pause_idx

    # library/alpine-ish:3.19: Docker manifest, amd64, busybox base shared.
    imgs["library/alpine-ish:3.19"] = single(b, "amd64", [
        b.busybox_layer("amd64"),
        b.text_layer("alpine-ish", {"etc/os-release": 'NAME="Alpine-ish"\nVERSION_ID=3.19.0\n',
                                    "etc/alpine-release": "3.19.0\n"}),
    ], False, ["/bin/sh"], "alpine-ish")

    # rancher/local-path-provisioner:v0.0.26: OCI manifest, amd64, shared base.
    imgs["rancher/local-path-provisioner:v0.0.26"] = single(b, "amd64", [
        b.busybox_layer("amd64", oci=True),
        b.text_layer("local-path", {"etc/config/config.json":
                                    '{"nodePathMap":[{"node":"DEFAULT_PATH_FOR_NON_LISTED_NODES",'
                                    '"paths":["/opt/local-path-provisioner"]}]}\n'}, oci=True),
    ], True, ["local-path-provisioner"], "local-path-provisioner")

    # rancher/mirrored-coredns-coredns:1.10.1: OCI index, busybox base + own layer.
    imgs["rancher/mirrored-coredns-coredns:1.10.1"] = index(b, [
        single(b, a, [b.busybox_layer(a, oci=True),
                      b.text_layer(f"coredns-{a}", {
                          "etc/coredns/Corefile": f".:53 {{\n    forward . /etc/resolv.conf\n    # {a}\n}}\n"},
                          oci=True)],
               True, ["/coredns"], "coredns") for a in both], oci=True)

    # calico/node:v3.28.0: Docker manifest list, three layers.
    calico_common = b.text_layer("calico-common", {
        "etc/calico/felix.cfg": "[global]\nMetadataAddr = None\nLogFilePath = None\n",
        "licenses/LICENSE": "Apache License 2.0 (stand-in text for tests)\n"})
    imgs["calico/node:v3.28.0"] = index(b, [
        single(b, a, [b.busybox_layer(a), calico_common,
                      b.text_layer(f"calico-node-{a}", {
                          "usr/bin/calico-node": f"#!/bin/sh\necho calico-node v3.28.0 {a}\n"})],
               False, ["start_runit"], "calico-node") for a in both], oci=False)

    # library/nested:1: OCI index -> OCI index -> amd64 + arm64.
    leaves = [single(b, a, [b.busybox_layer(a, oci=True),
                            b.text_layer(f"nested-{a}", {"etc/nested": f"leaf {a}\n"}, oci=True)],
                     True, ["sh"], "nested") for a in both]
    inner = index(b, leaves, oci=True)
    outer = index(b, [inner], oci=True)
    imgs["library/nested:1"] = outer

    # rancher/zstd-image:1: OCI manifest with a zstd layer and a gzip layer.
    imgs["rancher/zstd-image:1"] = single(b, "amd64", [
        b.layer("zstd-busybox-amd64", {
            "bin/busybox": ("file", b.busybox_binary("amd64"), 0o755),
            "bin/sh": ("symlink", "busybox")}, "zstd", oci=True),
        b.text_layer("zstd-extra", {"etc/zstd-image": "gzip layer next to a zstd one\n"}, oci=True),
    ], True, ["sh"], "zstd-image")

    # One arch each: a --platform fetch must take only its own.
    imgs["library/arm-only:1"] = single(b, "arm64", [
        b.busybox_layer("arm64"),
        b.text_layer("arm-only", {"etc/arm-only": "arm64 only\n"})], False, ["sh"], "arm-only")
    imgs["library/amd-only:1"] = single(b, "amd64", [
        b.busybox_layer("amd64"),
        b.text_layer("amd-only", {"etc/amd-only": "amd64 only\n"})], False, ["sh"], "amd-only")

    # library/victim:1: its own text layer is used by no other image, so a
    # test may corrupt that blob in the registry without disturbing others.
    imgs["library/victim:1"] = single(b, "amd64", [
        b.busybox_layer("amd64"),
        b.text_layer("victim", {"etc/victim": "this layer gets corrupted by tests\n" * 64})],
        False, ["sh"], "victim")

    if big:
        imgs["library/big:1"] = single(b, "amd64", [b.busybox_layer("amd64"), b.big_layer()],
                                       False, ["sh"], "big")
    return imgs


# Registry client --------------------------------------------------------------
class Registry:
    def __init__(self, hostport, tls, ca, user, password):
        self.hostport = hostport
        self.tls = tls
        self.ctx = None
        if tls:
            self.ctx = ssl.create_default_context(cafile=ca) if ca else ssl.create_default_context()
        self.headers = {"User-Agent": "airlock-seed/1"}
        if user is not None:
            tok = base64.b64encode(f"{user}:{password}".encode()).decode()
            self.headers["Authorization"] = "Basic " + tok
        self.conn = None
        self.uploaded = 0

    def _conn(self):
        if self.conn is None:
            host, _, port = self.hostport.rpartition(":")
            if self.tls:
                self.conn = http.client.HTTPSConnection(host, int(port), context=self.ctx,
                                                        timeout=120)
            else:
                self.conn = http.client.HTTPConnection(host, int(port), timeout=120)
        return self.conn

    def request(self, method, path, body=None, headers=None):
        h = dict(self.headers)
        h.update(headers or {})
        for attempt in (1, 2):
            conn = self._conn()
            try:
                if hasattr(body, "seek"):
                    body.seek(0)
                conn.request(method, path, body=body, headers=h)
                resp = conn.getresponse()
                data = resp.read()
                return resp, data
            except (ConnectionError, http.client.HTTPException):
                # A kept-alive connection the server closed: reconnect once.
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise

    def push_blob(self, repo, blob):
        resp, _ = self.request("HEAD", f"/v2/{repo}/blobs/{blob.digest}")
        if resp.status == 200:
            return
        resp, data = self.request("POST", f"/v2/{repo}/blobs/uploads/",
                                  headers={"Content-Length": "0"})
        if resp.status != 202:
            die(f"POST upload {repo}: HTTP {resp.status} {data[:300]!r}")
        loc = urllib.parse.urlsplit(resp.getheader("Location"))
        q = (loc.query + "&" if loc.query else "") + "digest=" + urllib.parse.quote(blob.digest, safe=":")
        target = loc.path + "?" + q
        hdr = {"Content-Type": "application/octet-stream", "Content-Length": str(blob.size)}
        if blob.data is not None:
            resp, data = self.request("PUT", target, body=blob.data, headers=hdr)
        else:
            with open(blob.path, "rb") as f:
                resp, data = self.request("PUT", target, body=f, headers=hdr)
        if resp.status != 201:
            die(f"PUT blob {repo} {blob.digest}: HTTP {resp.status} {data[:300]!r}")
        got = resp.getheader("Docker-Content-Digest")
        if got and got != blob.digest:
            die(f"registry stored {blob.digest} as {got}")
        self.uploaded += blob.size

    def push_manifest(self, repo, ref, blob):
        resp, data = self.request("PUT", f"/v2/{repo}/manifests/{ref}", body=blob.data,
                                  headers={"Content-Type": blob.media_type,
                                           "Content-Length": str(blob.size)})
        if resp.status != 201:
            die(f"PUT manifest {repo}:{ref}: HTTP {resp.status} {data[:500]!r}")
        got = resp.getheader("Docker-Content-Digest")
        if got != blob.digest:
            die(f"manifest {repo}:{ref}: registry says {got}, we computed {blob.digest}")


def push_image(reg, repo, img, tag=None):
    """Depth first: blobs, then children by digest, then this manifest."""
    if img.kind == "index":
        for c in img.children:
            push_image(reg, repo, c)
    else:
        for l in img.layers:
            reg.push_blob(repo, l.blob)
        reg.push_blob(repo, img.config)
    reg.push_manifest(repo, tag or img.blob.digest, img.blob)


# Description ----------------------------------------------------------------
def describe(ref, img):
    """{
      "name": "docker.io/library/busybox:1.36",   full docker.io name
      "repository": "library/busybox", "tag": "1.36",
      "digest": "sha256:..", "media_type": "..", "size": N,   the root manifest
      "platforms": ["linux/amd64", "linux/arm64"],  normalised, no unknown/unknown
      "manifests": [{"digest", "media_type", "size", "kind": "index"|"manifest",
                     "platform": "linux/arm64" | null, "attestation": bool}],
      "blobs": [{"digest", "size", "media_type",
                 "kind": "index"|"manifest"|"config"|"layer",
                 "platforms": [normalised platforms whose graph holds the blob;
                               [] for an index],
                 "attestation": bool}]
    }"""
    repo, tag = ref.rsplit(":", 1)
    blobs = {}
    manifests = []

    def add(blob, kind, platform, attestation, media_type=None):
        e = blobs.setdefault(blob.digest, {
            "digest": blob.digest, "size": blob.size,
            "media_type": media_type or blob.media_type,
            "kind": kind, "platforms": [], "attestation": attestation})
        if platform and platform not in e["platforms"]:
            e["platforms"].append(platform)
            e["platforms"].sort()
        # A blob is an attestation blob only if nothing else uses it.
        e["attestation"] = e["attestation"] and attestation

    def walk(i):
        p = norm_platform(i.platform) if i.platform else None
        manifests.append({"digest": i.blob.digest, "media_type": i.blob.media_type,
                          "size": i.blob.size, "kind": i.kind, "platform": p,
                          "attestation": i.attestation})
        add(i.blob, i.kind, p, i.attestation)
        if i.kind == "index":
            for c in i.children:
                walk(c)
        else:
            add(i.config, "config", p, i.attestation)
            for l in i.layers:
                # The same bytes may be a Docker layer here and an OCI one
                # elsewhere: record the type this image's manifest gives.
                add(l.blob, "layer", p, i.attestation, l.media_type)

    walk(img)
    plats = sorted({m["platform"] for m in manifests
                    if m["platform"] and m["kind"] == "manifest" and not m["attestation"]})
    return {
        "name": f"docker.io/{ref}", "repository": repo, "tag": tag,
        "digest": img.blob.digest, "media_type": img.blob.media_type, "size": img.blob.size,
        "platforms": plats, "manifests": manifests, "blobs": list(blobs.values()),
    }


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--registry", required=True, help="HOST:PORT")
    ap.add_argument("--tls", action="store_true", help="use https")
    ap.add_argument("--ca", help="CA certificate for --tls")
    ap.add_argument("--user")
    ap.add_argument("--password-file")
    ap.add_argument("--big", action="store_true", help="also push library/big:1 (~120 MB layer)")
    ap.add_argument("--cache", default=os.environ.get("AL_CACHE",
                                                      os.path.join(here, "..", "..", "build", "cache")))
    ap.add_argument("--out", help="write the JSON description here")
    ap.add_argument("--only", action="append", help="push only this ref (repeatable)")
    ap.add_argument("--as", dest="push_as", action="append", metavar="SRC=DST",
                    help="push image SRC under the name DST (repo:tag) instead; only these "
                         "are pushed (repeatable). Tests use it to move a tag.")
    args = ap.parse_args()

    password = None
    if args.user is not None:
        if not args.password_file:
            die("--user needs --password-file")
        with open(args.password_file) as f:
            password = f.read().rstrip("\n")

    work = tempfile.mkdtemp(prefix="airlock-seed-")
    try:
        b = Builder(work, os.path.abspath(args.cache))
        imgs = build_all(b, args.big)
        if args.only:
            unknown = set(args.only) - set(imgs)
            if unknown:
                die(f"unknown refs: {sorted(unknown)}")
            imgs = {k: v for k, v in imgs.items() if k in args.only}
        if args.push_as:
            renamed = {}
            for spec in args.push_as:
                src, _, dst = spec.partition("=")
                if src not in imgs or ":" not in dst:
                    die(f"--as {spec}: want SRC=REPO:TAG with SRC one of {sorted(imgs)}")
                renamed[dst] = imgs[src]
            imgs = renamed
        reg = Registry(args.registry, args.tls, args.ca, args.user, password)
        for ref, img in imgs.items():
            repo, tag = ref.rsplit(":", 1)
            push_image(reg, repo, img, tag)
        desc = {"registry": args.registry,
                "images": {ref: describe(ref, img) for ref, img in imgs.items()}}
        if args.out:
            tmp = args.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(desc, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, args.out)
        n_blobs = len({bl["digest"] for d in desc["images"].values() for bl in d["blobs"]})
        print(f"seed-images: pushed {len(imgs)} images ({n_blobs} distinct blobs, "
              f"{reg.uploaded} bytes uploaded) to {args.registry}", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
