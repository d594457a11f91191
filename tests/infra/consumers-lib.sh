# shellcheck shell=bash
# Helpers for integration tests that load docker-save tarballs into real consumers.
# Source this file, then call consumers_up.
#
#   consumers_up                       use $AL_CONSUMERS_ENV if set; else start private
#                                      daemons (tests/infra/consumers.sh) and stop them on EXIT
#   consumers_down                     stop what consumers_up started (no-op otherwise)
#   consumers_reset                    remove every image from every consumer
#
#   load_containerd TAR [FLAGS...]     ctr images import (unpacking unless --no-unpack)
#   containerd_image_target NAME       print the target digest of image NAME
#   containerd_image_check NAME        print "<status> <unpacked>", e.g. "complete true"
#   containerd_image_ready NAME        succeed if NAME is complete and unpacked
#   load_docker TAR                    docker load -i TAR
#   docker_repotags_arch NAME          print: <RepoTags as JSON> <Architecture>
#   load_podman TAR                    podman load -i TAR
#   podman_has NAME                    succeed if podman lists exactly NAME
#   skopeo_inspect_archive TAR [REF]   skopeo inspect docker-archive:TAR[:REF] (JSON)
#
#   al_ctr / al_docker / al_podman ARGS...  the CLIs, pointed at the private instances
#
# The loaders print the tool's output and return its exit status, so a test can assert
# on both. Use the absolute paths below: another `docker` earlier on PATH may be a
# different version.

AL_CONSUMERS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AL_CONSUMERS_SCRIPT=${AL_CONSUMERS_SCRIPT:-$AL_CONSUMERS_LIB_DIR/consumers.sh}
AL_CTR_NAMESPACE=${AL_CTR_NAMESPACE:-airlock}
_al_consumers_started_dir=''

consumers_up() {
	if [[ -z ${AL_CONSUMERS_ENV:-} ]]; then
		local dir
		# Short path: the daemons' unix sockets live under it.
		dir=$(mktemp -d /tmp/alc.XXXXXX) || return 1
		rmdir "$dir" # consumers.sh creates it; a stale env file must not exist
		if ! bash "$AL_CONSUMERS_SCRIPT" start "$dir" >/dev/null; then
			echo "consumers_up: could not start consumers in $dir" >&2
			return 1
		fi
		_al_consumers_started_dir=$dir
		# Keep the caller's EXIT trap: run it after stopping the consumers, with $?
		# still the script's exit status (lib.sh's trap exits with the $? it sees;
		# consumers_down's status would turn a failed test into a pass; set +e: under
		# errexit the (exit RC) would end the trap before the caller's cleanup).
		local -a prev_trap=()
		eval "prev_trap=($(trap -p EXIT))" # trap -- 'CMD' EXIT
		local prev=${prev_trap[2]:-}
		# shellcheck disable=SC2064,SC2154 # assigned inside the trap
		trap "_al_consumers_rc=\$?; set +e; consumers_down; (exit \$_al_consumers_rc)${prev:+; $prev}" EXIT
		AL_CONSUMERS_ENV=$dir/consumers.env
	fi
	# shellcheck disable=SC1090
	source "$AL_CONSUMERS_ENV" || return 1
	export AL_CONSUMERS_ENV AL_CTR_SOCK AL_CTR_SNAPSHOTTER AL_DOCKER_SOCK AL_DOCKER_CONFIG \
		AL_PODMAN_ROOT AL_PODMAN_RUNROOT AL_PODMAN_TMPDIR AL_CTR_NAMESPACE
}

consumers_down() {
	[[ -n $_al_consumers_started_dir ]] || return 0
	bash "$AL_CONSUMERS_SCRIPT" stop "$_al_consumers_started_dir"
	_al_consumers_started_dir=''
}

al_ctr() { /usr/bin/ctr --address "$AL_CTR_SOCK" -n "$AL_CTR_NAMESPACE" "$@"; }
al_docker() { DOCKER_CONFIG=$AL_DOCKER_CONFIG /usr/bin/docker -H "unix://$AL_DOCKER_SOCK" "$@"; }
# TMPDIR: podman stages archives in /var/tmp otherwise (image_copy_tmp_dir).
al_podman() {
	TMPDIR=$AL_PODMAN_TMPDIR /usr/bin/podman --root "$AL_PODMAN_ROOT" --runroot "$AL_PODMAN_RUNROOT" \
		--tmpdir "$AL_PODMAN_TMPDIR" --storage-driver vfs --cgroup-manager cgroupfs \
		--events-backend file "$@"
}

# load_containerd TAR [FLAGS...]: FLAGS are passed to `ctr images import`, e.g.
# --no-unpack --all-platforms (what k3s does). Without --no-unpack the import unpacks
# into a snapshotter, which checks each layer against its config diff_id.
load_containerd() {
	local tar=$1; shift
	al_ctr images import --snapshotter "$AL_CTR_SNAPSHOTTER" "$@" "$tar"
}

# containerd_image_target NAME: the DIGEST column of `ctr images ls` for exactly NAME.
containerd_image_target() {
	al_ctr images ls | awk -v n="$1" 'NR > 1 && $1 == n { print $3; f = 1 } END { exit !f }'
}

# containerd_image_check NAME: print "<status> <unpacked>" from `ctr images check`, e.g.
# "complete true"; status is complete|incomplete|missing|unavailable, unpacked true|false.
containerd_image_check() {
	al_ctr images check --snapshotter "$AL_CTR_SNAPSHOTTER" |
		awk -v n="$1" 'NR > 1 && $1 == n { print $4, $NF; f = 1 } END { exit !f }'
}

# containerd_image_ready NAME: all content present for the host platform, and unpacked.
containerd_image_ready() { [[ $(containerd_image_check "$1") == "complete true" ]]; }

load_docker() { al_docker load -i "$1"; }

docker_repotags_arch() {
	al_docker image inspect --format '{{json .RepoTags}} {{.Architecture}}' "$1"
}

load_podman() { al_podman load -i "$1"; }

podman_has() {
	al_podman images --noheading --format '{{.Repository}}:{{.Tag}}' |
		awk -v n="$1" '$0 == n { f = 1 } END { exit !f }'
}

skopeo_inspect_archive() {
	local tar=$1 ref=${2:-}
	TMPDIR=$AL_PODMAN_TMPDIR /usr/bin/skopeo inspect "docker-archive:$tar${ref:+:$ref}"
}

consumers_reset() {
	local refs ids
	refs=$(al_ctr images ls -q) || return 1
	if [[ -n $refs ]]; then
		# shellcheck disable=SC2086
		al_ctr images rm --sync $refs >/dev/null || return 1
	fi
	ids=$(al_docker images -aq | sort -u) || return 1
	if [[ -n $ids ]]; then
		# shellcheck disable=SC2086
		al_docker rmi -f $ids >/dev/null || return 1
	fi
	al_podman rmi -a -f >/dev/null || return 1
}
