#!/usr/bin/env bash
# Probe what real consumers do with hand-made docker-save tarballs. Run by hand (it is
# not a test: it asserts nothing, it records). Findings go to stdout and OUTDIR/probe.log.
#
#   tests/infra/probe_consumers.sh [OUTDIR]
#
# Needs: a static busybox. $AL_PROBE_BUSYBOX if set, else `apt-get download
# busybox-static:amd64` (Debian mirror) into OUTDIR, extracted with dpkg-deb.
# Starts private containerd + dockerd (tests/infra/consumers.sh) unless AL_CONSUMERS_ENV
# points at running ones; podman and skopeo use private storage.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
out=${1:-/tmp/airlock-probe}
mkdir -p "$out"
out=$(realpath "$out")
exec > >(tee "$out/probe.log") 2>&1

# shellcheck source-path=SCRIPTDIR
source "$here/consumers-lib.sh"

# run CMD...: echo the command, its output and its exit status.
run() {
	echo "\$ $*"
	"$@" 2>&1 | sed 's/^/  /'
	local rc=${PIPESTATUS[0]}
	echo "  [rc=$rc]"
	return "$rc"
}

busybox=${AL_PROBE_BUSYBOX:-}
if [[ -z $busybox ]]; then
	busybox=$out/busybox-static/bin/busybox
	if [[ ! -x $busybox ]]; then
		(cd "$out" && apt-get download busybox-static:amd64) >/dev/null 2>&1 ||
			{ echo "apt-get download busybox-static:amd64 failed" >&2; exit 1; }
		dpkg-deb -x "$out"/busybox-static_*_amd64.deb "$out/busybox-static"
	fi
fi
/usr/bin/python3 "$here/demo-tarballs.py" "$busybox" "$out/tars" || exit 1

consumers_up || exit 1

echo "### versions"
run /usr/bin/ctr --address "$AL_CTR_SOCK" version
run al_docker version --format 'client {{.Client.Version}} server {{.Server.Version}}'
run /usr/bin/podman --version
run /usr/bin/skopeo --version
echo "containerd snapshotter for unpacking: $AL_CTR_SNAPSHOTTER"
echo "### digests of the hand-made blobs"
cat "$out/tars/digests.json"

# The fields of `skopeo inspect` that matter here, on one line.
skopeo_summary() {
	local json rc
	json=$("$@"); rc=$?
	[[ $rc -eq 0 ]] || return "$rc"
	jq -c '{Name, Digest, RepoTags, Architecture, Layers,
		LayersData: [.LayersData[]? | {MIMEType, Digest}]}' <<<"$json"
}

NAME=docker.io/library/demo:1
variants=(classic classic-gz hybrid hybrid-uncompressed hybrid-zstd hybrid-refname-only
	hybrid-two-names baddiff)
for v in "${variants[@]}"; do
	tar=$out/tars/$v.tar
	echo
	echo "################ $v"
	run tar tf "$tar"

	echo "## containerd, unpacking import"
	run load_containerd "$tar"
	run al_ctr images ls
	run al_ctr images check --snapshotter "$AL_CTR_SNAPSHOTTER"
	consumers_reset
	echo "## containerd, --no-unpack --all-platforms (k3s-like)"
	run load_containerd "$tar" --no-unpack --all-platforms
	run al_ctr images ls
	consumers_reset

	echo "## docker"
	if run load_docker "$tar"; then
		run al_docker images --digests --no-trunc
		for n in $(al_docker images --format '{{.Repository}}:{{.Tag}}'); do
			run docker_repotags_arch "$n"
		done
		# --pull never: a missing image must not send a lookup anywhere.
		run al_docker run --rm --pull never --network none "$NAME" /bin/busybox echo run-ok
	fi
	consumers_reset

	echo "## podman load (tries oci, oci-archive, docker-archive, dir in that order)"
	run load_podman "$tar"
	run al_podman images --digests --no-trunc
	consumers_reset
	echo "## podman pull docker-archive: (forces the docker-archive reader)"
	run al_podman pull -q "docker-archive:$tar"
	run al_podman images --digests --no-trunc
	consumers_reset

	echo "## skopeo"
	run skopeo_summary skopeo_inspect_archive "$tar"
	run skopeo_summary skopeo_inspect_archive "$tar" "$NAME"
	if [[ $v == hybrid* ]]; then
		run skopeo_summary env TMPDIR="$AL_PODMAN_TMPDIR" /usr/bin/skopeo inspect "oci-archive:$tar"
		run skopeo_summary env TMPDIR="$AL_PODMAN_TMPDIR" /usr/bin/skopeo inspect "oci-archive:$tar:1"
	fi
done
echo
echo "probe log: $out/probe.log"
