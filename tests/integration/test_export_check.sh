#!/usr/bin/env bash
# airlock-export --check ARCHIVE...: an offline check, no store.
#   - passes archives written by airlock (hybrid .tar, docker .tar.gz, oci,
#     two-platform .tar.zst), by `docker save`, by `ctr export` and by
#     `skopeo copy ... docker-archive:` (each loaded by its consumer first);
#   - fails (exit 1), naming the member and the cause, on: a layer whose
#     content does not match its diff_id, a missing blob, a manifest.json
#     naming a config that is absent, a zstd archive with a window k3s cannot
#     decode, a truncated archive, a hostile member name (../x), a symlink
#     member pointing out of the archive;
#   - --json FILE validates against docs/check-report.schema.json;
#   - exit 2 for usage errors (no archive, a store flag).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need zstd
need python3
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

keys=(library/busybox:1.36 rancher/zstd-image:1 library/alpine-ish:3.19 rancher/mirrored-pause:3.6)
work=$(tmpdir check)
store=$work/store
fetch_seeded "$store" "$work" "${keys[@]}"
out=$work/out
mkdir "$out"

# check_ok FILE WHAT: --check passes it (exit 0, "ok" summary, no error line).
check_ok() {
    run_export "$work/chk" --check "$1"
    expect_rc 0 "$work/chk" "--check of $2"
    assert_grep "^$1: ok: " "$work/chk.out" "--check summary of $2"
    note "$2: $(tail -n 1 "$work/chk.out" | cut -d: -f3-)"
}
# check_fails FILE WHAT REGEX: exit 1, and a problem line matching REGEX.
check_fails() {
    run_export "$work/chk" --check "$1"
    expect_rc 1 "$work/chk" "--check of $2"
    assert_grep "$3" "$work/chk.out" "--check of $2"
    assert_grep "^$1: FAILED: " "$work/chk.out" "--check summary of $2"
}

# 1. Archives airlock writes -------------------------------------------------
run_export "$work/e1" --store "$store" -p linux/amd64 -o "$out/hybrid.tar" "${keys[@]}"
expect_rc 0 "$work/e1" "export hybrid"
check_ok "$out/hybrid.tar" "airlock hybrid .tar"
run_export "$work/e2" --store "$store" -p linux/amd64 --format docker --decompress-zstd-layers \
    -o "$out/docker.tar.gz" "${keys[@]}"
expect_rc 0 "$work/e2" "export docker .tar.gz"
check_ok "$out/docker.tar.gz" "airlock docker .tar.gz"
run_export "$work/e3" --store "$store" -p linux/amd64 --format oci -o "$out/oci.tar" "${keys[@]}"
expect_rc 0 "$work/e3" "export oci"
check_ok "$out/oci.tar" "airlock oci .tar"
run_export "$work/e4" --store "$store" -p linux/amd64,linux/arm64 -o "$out/two-{arch}.tar.zst" \
    library/busybox:1.36 rancher/mirrored-pause:3.6
expect_rc 0 "$work/e4" "export .tar.zst"
check_ok "$out/two-arm64.tar.zst" "airlock .tar.zst"
assert_grep 'hybrid archive \(zstd, window [0-9]+ KiB\), 2 images \(linux/arm64\)' "$work/chk.out" \
    "--check summary of the arm64 .tar.zst"
# Several archives at once, and the JSON report.
run_export "$work/multi" --check "$out/hybrid.tar" "$out/two-amd64.tar.zst" --json "$work/check.json"
expect_rc 0 "$work/multi" "--check of two archives"
assert_grep '^2 archives checked: 2 ok, 0 failed$' "$work/multi.out" "--check of two archives"
python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/check-report.schema.json" \
    "$work/check.json" >"$work/val" 2>&1 || { show "$work/val"; fail "check report does not validate"; }
assert_eq "true 4" "$(jq -r '"\(.ok) \(.archives[0].images | length)"' "$work/check.json")" \
    "ok and images of the JSON report"
assert_eq "$(seed_manifest_for library/busybox:1.36 linux/amd64)" \
    "$(jq -r '.archives[0].images[] | select(.name == "docker.io/library/busybox:1.36") | .manifest_digest' "$work/check.json")" \
    "manifest digest of busybox in the JSON report"

# 2. Archives other tools write ------------------------------------------------
[ -z "${AL_CONSUMERS_ENV:-}" ] || on_exit consumers_reset
consumers_up || fail "could not start the consumers"
consumers_reset || fail "could not empty the consumers"
bb=docker.io/library/busybox:1.36
ai=docker.io/library/alpine-ish:3.19
load_docker "$out/docker.tar.gz" >"$work/dl" 2>&1 || { show "$work/dl"; fail "docker load"; }
al_docker save -o "$out/docker-save.tar" busybox:1.36 alpine-ish:3.19 >"$work/ds" 2>&1 ||
    { show "$work/ds"; fail "docker save"; }
check_ok "$out/docker-save.tar" "docker save"
load_containerd "$out/hybrid.tar" --all-platforms --no-unpack >"$work/ci" 2>&1 ||
    { show "$work/ci"; fail "ctr images import"; }
al_ctr images export "$out/ctr-export.tar" "$bb" "$ai" >"$work/ce" 2>&1 ||
    { show "$work/ce"; fail "ctr images export"; }
check_ok "$out/ctr-export.tar" "ctr export"
TMPDIR=$AL_PODMAN_TMPDIR skopeo copy -q "docker-archive:$out/hybrid.tar:$ai" \
    "docker-archive:$out/skopeo.tar:$ai" >"$work/sk" 2>&1 || { show "$work/sk"; fail "skopeo copy"; }
check_ok "$out/skopeo.tar" "skopeo docker-archive"

# 3. Broken archives -----------------------------------------------------------
# mutate SRC DST PY: rewrite the tar SRC into DST; PY is a python body run
# with `m` (a TarInfo) and `data` (bytes or None) for each member, returning
# (m, data) or None to drop the member.
mutate() {
    python3 - "$1" "$2" "$3" <<'EOF'
import io, sys, tarfile
src, dst, body = sys.argv[1:4]
ns = {}
exec("def f(m, data):\n" + "\n".join("    " + l for l in body.splitlines()), ns)
with tarfile.open(src) as t, tarfile.open(dst, "w", format=tarfile.PAX_FORMAT) as o:
    for m in t.getmembers():
        data = t.extractfile(m).read() if m.isfile() else None
        r = ns["f"](m, data)
        if r is None:
            continue
        m, data = r
        if data is not None:
            m.size = len(data)
        o.addfile(m, io.BytesIO(data) if data is not None else None)
EOF
}
mj=$work/mj
mkdir "$mj"
tar -xf "$out/hybrid.tar" -C "$mj" manifest.json
cfg=$(jq -r '.[] | select(.RepoTags | index("docker.io/library/busybox:1.36")) | .Config' "$mj/manifest.json")
layer=$(jq -r '.[] | select(.RepoTags | index("docker.io/library/busybox:1.36")) | .Layers[0]' "$mj/manifest.json")

# A layer whose content does not match its diff_id: docker save's layer.tar
# replaced by other (valid tar) bytes.
dl=$(tar -tf "$out/docker-save.tar" | grep '/layer.tar$' | sed -n 1p)
mutate "$out/docker-save.tar" "$work/baddiff.tar" "
if m.name == '$dl':
    import io, tarfile
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode='w') as x:
        i = tarfile.TarInfo('etc/other'); i.size = 3; x.addfile(i, io.BytesIO(b'hi\n'))
    data = b.getvalue()
return m, data"
check_fails "$work/baddiff.tar" "a layer that is not its diff_id" \
    "^$work/baddiff.tar: $dl: layer [0-9]+ of .*: its content is sha256:[0-9a-f]{64}, but the config's diff_id is sha256:"

# A missing blob (a layer dropped from airlock's hybrid archive).
mutate "$out/hybrid.tar" "$work/noblob.tar" "
return None if m.name == '$layer' else (m, data)"
check_fails "$work/noblob.tar" "a missing layer" \
    "^$work/noblob.tar: manifest.json: docker.io/library/busybox:1.36: layer 1, $layer, is not in the archive"
assert_grep "^$work/noblob.tar: blobs/sha256/[0-9a-f]{64}: layer sha256:${layer##*/} is not in the archive" \
    "$work/chk.out" "--check of a missing layer (index.json side)"

# manifest.json naming a config that is absent.
mutate "$out/hybrid.tar" "$work/nocfg.tar" "
return None if m.name == '$cfg' else (m, data)"
check_fails "$work/nocfg.tar" "a missing config" \
    "^$work/nocfg.tar: manifest.json: docker.io/library/busybox:1.36: its config $cfg is not in the archive"

# A zstd archive whose window k3s cannot decode: streamed (size unknown), so
# zstd keeps the 64 MiB window --long=26 asks for.
zstd -q --long=26 -c <"$out/hybrid.tar" >"$work/wide.tar.zst"
check_fails "$work/wide.tar.zst" "a 64 MiB zstd window" \
    "^$work/wide.tar.zst: zstd window of 64 MiB: k3s decodes windows up to 32 MiB"

# Truncated: gzip cut in the middle, and a plain tar cut inside a blob.
size=$(stat -c %s "$out/docker.tar.gz")
head -c $((size / 2)) "$out/docker.tar.gz" >"$work/cut.tar.gz"
check_fails "$work/cut.tar.gz" "a truncated .tar.gz" "^$work/cut.tar.gz: .*the archive is truncated or damaged"
head -c 700000 "$out/hybrid.tar" >"$work/cut.tar"
check_fails "$work/cut.tar" "a truncated .tar" "^$work/cut.tar: blobs/sha256/[0-9a-f]{64}: the archive is truncated or damaged"

# A corrupt blob: one byte of a layer flipped, size kept.
mutate "$out/hybrid.tar" "$work/flip.tar" "
if m.name == '$layer':
    data = bytes([data[0]]) + bytes([data[1] ^ 1]) + data[2:]
return m, data"
check_fails "$work/flip.tar" "a flipped byte" "^$work/flip.tar: $layer: content hashes to sha256:"

# Hostile members: ../x, and a symlink that points out of the archive.
mutate "$out/hybrid.tar" "$work/evil.tar" "
if m.name == 'oci-layout':
    import tarfile
    e = tarfile.TarInfo('../x'); e.size = 2
    return e, b'x\n'
return m, data"
check_fails "$work/evil.tar" "a ../x member" "^$work/evil.tar: \.\./x: unsafe member name"
mutate "$out/hybrid.tar" "$work/link.tar" "
if m.name == '$layer':
    import tarfile
    l = tarfile.TarInfo(m.name); l.type = tarfile.SYMTYPE; l.linkname = '../../../etc/passwd'
    return l, None
return m, data"
check_fails "$work/link.tar" "a symlink member" \
    "^$work/link.tar: $layer: symlink to \"\.\./\.\./\.\./etc/passwd\" points outside the archive"

# 4. Usage -----------------------------------------------------------------------
run_export "$work/u1" --check
expect_rc 2 "$work/u1" "--check without an archive"
run_export "$work/u2" --check --store "$store" "$out/hybrid.tar"
expect_rc 2 "$work/u2" "--check with --store"
run_export "$work/u3" --check "$work/absent.tar"
expect_rc 1 "$work/u3" "--check of a file that does not exist"
assert_grep "^$work/absent.tar: cannot open: No such file" "$work/u3.out" "--check of a missing file"

note "ok"
