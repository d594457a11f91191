#!/usr/bin/python3
"""Write small, real docker-save tarballs by hand, for probing consumers.

usage: demo-tarballs.py BUSYBOX OUTDIR

BUSYBOX is a static busybox binary. The image has one layer: /bin/busybox plus
/bin/sh -> busybox. Written to OUTDIR:

  classic.tar          docker <= 24 `docker save` shape: <id>/layer.tar (uncompressed),
                       <config-hex>.json, manifest.json, repositories
  classic-gz.tar       as classic, but <id>/layer.tar holds the gzip bytes
  hybrid.tar           docker >= 25 shape: blobs/sha256/<hex> (gzip layer, config,
                       OCI manifest), oci-layout, index.json with name annotations,
                       manifest.json + repositories pointing into blobs/
  hybrid-uncompressed.tar  as hybrid, with the uncompressed layer (what docker 25 writes)
  hybrid-zstd.tar      as hybrid, with a zstd layer (needs the `zstd` CLI)
  hybrid-refname-only.tar  as hybrid, without io.containerd.image.name annotations
  hybrid-two-names.tar as hybrid, one manifest under two names: docker.io/library/demo:1
                       and quay.io/airlock/demo:2 (two index.json descriptors, one
                       manifest.json entry with two RepoTags)
  baddiff.tar          as classic-gz, but the config's diff_id is wrong
  digests.json         the digests of every blob above, for the probe to compare

The image name is docker.io/library/demo:1 (RepoTags, io.containerd.image.name) and
org.opencontainers.image.ref.name is "1". Python stdlib only (zstd via the CLI).
"""

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile

NAME = "docker.io/library/demo:1"
FAMILIAR_REPO = "demo"
TAG = "1"

MT_OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_OCI_INDEX = "application/vnd.oci.image.index.v1+json"
MT_OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
MT_OCI_LAYER_GZ = MT_OCI_LAYER + "+gzip"
MT_OCI_LAYER_ZST = MT_OCI_LAYER + "+zstd"


def sha(b):
    return hashlib.sha256(b).hexdigest()


def jbytes(obj):
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def tar_add(tf, name, data, mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.size = len(data)
    ti.mode = mode
    ti.mtime = 0
    tf.addfile(ti, io.BytesIO(data))


def tar_dir(tf, name):
    ti = tarfile.TarInfo(name)
    ti.type = tarfile.DIRTYPE
    ti.mode = 0o755
    ti.mtime = 0
    tf.addfile(ti)


def make_layer(busybox):
    with open(busybox, "rb") as f:
        bb = f.read()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tar_dir(tf, "bin")
        tar_add(tf, "bin/busybox", bb, 0o755)
        ti = tarfile.TarInfo("bin/sh")
        ti.type = tarfile.SYMTYPE
        ti.linkname = "busybox"
        ti.mode = 0o777
        tf.addfile(ti)
    return buf.getvalue()


def make_config(diff_id):
    return jbytes({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]},
        "rootfs": {"type": "layers", "diff_ids": ["sha256:" + diff_id]},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "demo-tarballs.py"}],
    })


def write_classic(path, layer_bytes, config):
    """docker save (<= 24): layer dir named by a v1 id, uncompressed or not."""
    chex = sha(config)
    v1id = sha(b"v1id:" + layer_bytes)  # any 64-hex id; docker derives it from the chain
    manifest = [{"Config": chex + ".json", "RepoTags": [NAME],
                 "Layers": [v1id + "/layer.tar"]}]
    repos = {FAMILIAR_REPO: {TAG: v1id}}
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        tar_dir(tf, v1id)
        tar_add(tf, v1id + "/VERSION", b"1.0")
        tar_add(tf, v1id + "/json", jbytes({"id": v1id, "created": "2024-01-01T00:00:00Z"}))
        tar_add(tf, v1id + "/layer.tar", layer_bytes)
        tar_add(tf, chex + ".json", config)
        tar_add(tf, "manifest.json", jbytes(manifest))
        tar_add(tf, "repositories", jbytes(repos))


def write_hybrid(path, layer_blob, layer_mt, config, names=(NAME,), containerd_names=True):
    """docker save (>= 25): OCI layout + manifest.json pointing into blobs/.

    One index.json descriptor per name, all for the same manifest (each blob once).
    containerd_names=False leaves out io.containerd.image.name, keeping only the tag
    in org.opencontainers.image.ref.name (plain OCI layout style).
    """
    chex, lhex = sha(config), sha(layer_blob)
    oci_manifest = jbytes({
        "schemaVersion": 2,
        "mediaType": MT_OCI_MANIFEST,
        "config": {"mediaType": MT_OCI_CONFIG, "digest": "sha256:" + chex, "size": len(config)},
        "layers": [{"mediaType": layer_mt, "digest": "sha256:" + lhex, "size": len(layer_blob)}],
    })
    mhex = sha(oci_manifest)
    descs = []
    for n in names:
        ann = {"org.opencontainers.image.ref.name": n.rsplit(":", 1)[1]}
        if containerd_names:
            ann["io.containerd.image.name"] = n
        descs.append({"mediaType": MT_OCI_MANIFEST, "digest": "sha256:" + mhex,
                      "size": len(oci_manifest), "annotations": ann})
    index = jbytes({"schemaVersion": 2, "mediaType": MT_OCI_INDEX, "manifests": descs})
    manifest = [{"Config": "blobs/sha256/" + chex, "RepoTags": list(names),
                 "Layers": ["blobs/sha256/" + lhex]}]
    repos = {}
    for n in names:
        repo, tag = n.rsplit(":", 1)
        repos.setdefault(repo.removeprefix("docker.io/library/"), {})[tag] = lhex
    with tarfile.open(path, "w", format=tarfile.PAX_FORMAT) as tf:
        tar_dir(tf, "blobs")
        tar_dir(tf, "blobs/sha256")
        tar_add(tf, "blobs/sha256/" + lhex, layer_blob)
        tar_add(tf, "blobs/sha256/" + chex, config)
        tar_add(tf, "blobs/sha256/" + mhex, oci_manifest)
        tar_add(tf, "index.json", index)
        tar_add(tf, "manifest.json", jbytes(manifest))
        tar_add(tf, "oci-layout", jbytes({"imageLayoutVersion": "1.0.0"}))
        tar_add(tf, "repositories", jbytes(repos))
    return {"config": "sha256:" + chex, "layer": "sha256:" + lhex,
            "oci_manifest": "sha256:" + mhex, "index": "sha256:" + sha(index)}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: demo-tarballs.py BUSYBOX OUTDIR")
    busybox, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)

    layer = make_layer(busybox)
    diff_id = sha(layer)
    layer_gz = gzip.compress(layer, compresslevel=6, mtime=0)
    layer_zst = subprocess.run(["zstd", "-q", "-c", "-3"], input=layer,
                               stdout=subprocess.PIPE, check=True).stdout
    config = make_config(diff_id)
    bad_config = make_config(sha(b"not the layer"))

    write_classic(os.path.join(out, "classic.tar"), layer, config)
    write_classic(os.path.join(out, "classic-gz.tar"), layer_gz, config)
    write_classic(os.path.join(out, "baddiff.tar"), layer_gz, bad_config)
    digests = {
        "diff_id": "sha256:" + diff_id,
        "config": "sha256:" + sha(config),
        "bad_config": "sha256:" + sha(bad_config),
        "hybrid": write_hybrid(os.path.join(out, "hybrid.tar"), layer_gz, MT_OCI_LAYER_GZ, config),
        "hybrid-uncompressed": write_hybrid(os.path.join(out, "hybrid-uncompressed.tar"),
                                            layer, MT_OCI_LAYER, config),
        "hybrid-zstd": write_hybrid(os.path.join(out, "hybrid-zstd.tar"), layer_zst,
                                    MT_OCI_LAYER_ZST, config),
        "hybrid-refname-only": write_hybrid(os.path.join(out, "hybrid-refname-only.tar"),
                                            layer_gz, MT_OCI_LAYER_GZ, config,
                                            containerd_names=False),
        "hybrid-two-names": write_hybrid(os.path.join(out, "hybrid-two-names.tar"), layer_gz,
                                         MT_OCI_LAYER_GZ, config,
                                         names=(NAME, "quay.io/airlock/demo:2")),
    }
    with open(os.path.join(out, "digests.json"), "w") as f:
        json.dump(digests, f, indent=2, sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()
