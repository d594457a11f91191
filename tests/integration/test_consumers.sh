#!/usr/bin/env bash
# The consumer helpers themselves: load hand-made tarballs (demo-tarballs.py) into
# containerd, dockerd, podman and skopeo, and check what each reports. The exporter's
# tests build on these helpers, so they must say "no" when a consumer refuses.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source-path=SCRIPTDIR
source "$here/../infra/consumers-lib.sh"

work=$(mktemp -d /tmp/al-test-consumers.XXXXXX)
passed=0 failed=0
cleanup() {
	consumers_down
	rm -rf "$work"
}
trap cleanup EXIT

ok() { echo "ok - $1"; passed=$((passed + 1)); }
not_ok() { echo "not ok - $1"; failed=$((failed + 1)); }
# check NAME CMD...: CMD must succeed.
check() { local n=$1; shift; if "$@" >"$work/out" 2>&1; then ok "$n"; else not_ok "$n"; sed 's/^/#   /' "$work/out"; fi; }
# refuse NAME CMD...: CMD must fail.
refuse() { local n=$1; shift; if "$@" >"$work/out" 2>&1; then not_ok "$n (unexpectedly succeeded)"; else ok "$n"; fi; }
# equal NAME WANT GOT
equal() { if [[ $2 == "$3" ]]; then ok "$1"; else not_ok "$1: want '$2', got '$3'"; fi; }

# The layer payload need not run here; a small fixed file keeps the tarballs tiny.
/usr/bin/python3 -c 'import sys; sys.stdout.buffer.write(bytes(range(256)) * 256)' >"$work/payload"
/usr/bin/python3 "$here/../infra/demo-tarballs.py" "$work/payload" "$work/tars" || exit 1
manifest=$(jq -r '.hybrid.oci_manifest' "$work/tars/digests.json")
config=$(jq -r '.config' "$work/tars/digests.json")
hybrid=$work/tars/hybrid.tar
NAME=docker.io/library/demo:1

consumers_up || { echo "not ok - consumers_up"; echo "0 passed, 1 failed"; exit 1; }

# containerd keeps the OCI manifest of index.json as the image target.
check "containerd: unpacking import of hybrid" load_containerd "$hybrid"
equal "containerd: target is the OCI manifest" "$manifest" "$(containerd_image_target "$NAME")"
equal "containerd: check says complete, unpacked" "complete true" "$(containerd_image_check "$NAME")"
check "containerd: image ready" containerd_image_ready "$NAME"
refuse "containerd: unknown image has no target" containerd_image_target docker.io/library/nope:1
consumers_reset
check "containerd: --no-unpack --all-platforms import" load_containerd "$hybrid" --no-unpack --all-platforms
equal "containerd: same target without unpacking" "$manifest" "$(containerd_image_target "$NAME")"
equal "containerd: check says complete, not unpacked" "complete false" "$(containerd_image_check "$NAME")"
refuse "containerd: not ready without unpacking" containerd_image_ready "$NAME"

check "docker: load hybrid" load_docker "$hybrid"
equal "docker: RepoTags and Architecture" '["demo:1"] amd64' "$(docker_repotags_arch "$NAME")"
equal "docker: image id is the config digest" "$config" \
	"$(al_docker image inspect --format '{{.Id}}' "$NAME")"

check "podman: load hybrid" load_podman "$hybrid"
check "podman: has $NAME" podman_has "$NAME"
refuse "podman: has no docker.io/library/demo:2" podman_has docker.io/library/demo:2

equal "skopeo: Name of the docker-archive ref" docker.io/library/demo \
	"$(skopeo_inspect_archive "$hybrid" "$NAME" | jq -r .Name)"
equal "skopeo: Architecture" amd64 "$(skopeo_inspect_archive "$hybrid" | jq -r .Architecture)"

consumers_reset
equal "reset: containerd empty" "" "$(al_ctr images ls -q)"
equal "reset: docker empty" "" "$(al_docker images -aq)"
equal "reset: podman empty" "" "$(al_podman images -q)"

# A config whose diff_id does not match the layer: every unpacking consumer refuses.
bad=$work/tars/baddiff.tar
refuse "containerd: unpacking import refuses a wrong diff_id" load_containerd "$bad"
# ctr leaves the image record behind even so: only the exit status and UNPACKED tell.
equal "containerd: ... image left complete but not unpacked" "complete false" \
	"$(containerd_image_check "$NAME")"
refuse "docker: load refuses a wrong diff_id" load_docker "$bad"
refuse "podman: load refuses a wrong diff_id" load_podman "$bad"
refuse "podman: ... and has no image" podman_has "$NAME"
consumers_reset

echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
