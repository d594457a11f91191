#!/usr/bin/env bash
# Start or stop the image consumers that the integration tests load tarballs into:
# a private containerd and a private dockerd (podman and skopeo need no daemon, only
# private storage dirs). Everything lives under DIR; nothing touches the system
# daemons, /var/lib or /run.
#
#   tests/infra/consumers.sh start [DIR]   start both daemons, write DIR/consumers.env
#   tests/infra/consumers.sh stop  [DIR]   stop them by PID, unmount, remove DIR
#
# DIR defaults to /tmp/airlock-consumers-$UID. Sockets live under DIR, so keep it short:
# a unix socket path must fit in 108 bytes.
set -euo pipefail

DOCKER=/usr/bin/docker # another `docker` earlier on PATH may be a different version
CONTAINERD=/usr/bin/containerd
CTR=/usr/bin/ctr
DOCKERD=/usr/sbin/dockerd
START_TIMEOUT=${AL_CONSUMERS_START_TIMEOUT:-30} # seconds, per daemon
STOP_TIMEOUT=${AL_CONSUMERS_STOP_TIMEOUT:-10}   # seconds before KILL

die() { echo "consumers.sh: $*" >&2; exit 1; }
log() { echo "consumers.sh: $*" >&2; }

usage() { echo "usage: $0 start|stop [DIR]" >&2; exit 2; }

# wait_ready NAME PID LOGFILE CMD...: poll CMD until it succeeds; fail early if PID died.
wait_ready() {
	local name=$1 pid=$2 logf=$3; shift 3
	local deadline=$((SECONDS + START_TIMEOUT))
	while ! "$@" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null; then
			tail -n 30 "$logf" >&2 || true
			die "$name (pid $pid) exited during startup; log: $logf"
		fi
		if ((SECONDS >= deadline)); then
			tail -n 30 "$logf" >&2 || true
			die "$name (pid $pid) not ready after ${START_TIMEOUT}s; log: $logf"
		fi
		sleep 0.1
	done
}

# stop_pid NAME PID: TERM, wait up to STOP_TIMEOUT, then KILL. Only this PID, never by name.
stop_pid() {
	local name=$1 pid=$2 i
	[[ $pid =~ ^[0-9]+$ ]] || return 0
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || return 0
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$name (pid $pid) ignored TERM for ${STOP_TIMEOUT}s; sending KILL"
	kill -KILL "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	log "$name (pid $pid) still present after KILL"
}

# unmount_under DIR: unmount every mount point at or below DIR, deepest first.
# The 5th field of mountinfo is the mount point, with spaces etc. octal-escaped.
unmount_under() {
	local dir mp
	dir=$(realpath -m "$1")
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo |
		sort -r | while read -r mp; do
			mp=$(printf '%b' "$mp")
			umount "$mp" 2>/dev/null || umount -l "$mp" 2>/dev/null ||
				log "could not unmount $mp"
		done
}

do_start() {
	local dir=$1
	if [[ -e $dir/consumers.env ]]; then
		die "$dir/consumers.env exists: already running? (run '$0 stop $dir' first)"
	fi
	mkdir -p "$dir"
	dir=$(realpath "$dir")
	# On any failure below, stop whatever did start and remove DIR.
	START_DIR=$dir
	trap '[[ -n $START_OK ]] || do_stop "$START_DIR"' EXIT
	local cdir=$dir/containerd ddir=$dir/docker pdir=$dir/podman
	local ctr_sock=$cdir/c.sock docker_sock=$ddir/d.sock
	((${#ctr_sock} < 100 && ${#docker_sock} < 100)) || die "DIR too long for unix sockets: $dir"
	mkdir -p "$cdir"/{root,state,opt,tmp} "$ddir"/{data,exec,config} \
		"$pdir"/{root,runroot,tmp}

	# containerd: private root/state/sockets; CRI is off (it would want CNI and
	# /etc/containerd); the opt plugin would otherwise write /opt/containerd.
	cat >"$cdir/config.toml" <<EOF
version = 2
root = "$cdir/root"
state = "$cdir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]

[grpc]
  address = "$ctr_sock"

[ttrpc]
  address = "$ctr_sock.ttrpc"

[debug]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$cdir/opt"
EOF
	# TMPDIR: the unpacker's temporary mounts go here, so stop can find them.
	TMPDIR=$cdir/tmp "$CONTAINERD" --config "$cdir/config.toml" \
		</dev/null >"$cdir/containerd.log" 2>&1 &
	local ctr_pid=$!
	# Write a partial env file now so that `stop` can clean up if a later step fails.
	printf 'AL_CONSUMERS_DIR=%q\nAL_CTR_PID=%q\n' "$dir" "$ctr_pid" >"$dir/consumers.env"
	wait_ready containerd "$ctr_pid" "$cdir/containerd.log" "$CTR" --address "$ctr_sock" version

	# Unpacking import needs a snapshotter: overlayfs if it loaded, else native.
	local snap=native
	if "$CTR" --address "$ctr_sock" plugins ls 2>/dev/null |
		awk '$1 == "io.containerd.snapshotter.v1" && $2 == "overlayfs" && $NF == "ok" { f = 1 } END { exit !f }'; then
		snap=overlayfs
	fi

	# dockerd: reuse our containerd (namespace "moby") rather than letting it spawn its
	# own, so there is exactly one PID per daemon to stop. No networking at all.
	# deprecated-key-path: else dockerd 20.10 writes its trust key to /etc/docker/key.json.
	printf '{"deprecated-key-path": "%s"}\n' "$ddir/config/key.json" >"$ddir/config/daemon.json"
	"$DOCKERD" --config-file "$ddir/config/daemon.json" \
		--storage-driver=vfs --iptables=false --ip6tables=false --ip-masq=false \
		--bridge=none --data-root "$ddir/data" --exec-root "$ddir/exec" \
		--host "unix://$docker_sock" --pidfile "$ddir/docker.pid" \
		--containerd "$ctr_sock" \
		</dev/null >"$ddir/dockerd.log" 2>&1 &
	local docker_pid=$!
	printf 'AL_DOCKER_PID=%q\n' "$docker_pid" >>"$dir/consumers.env"
	wait_ready dockerd "$docker_pid" "$ddir/dockerd.log" \
		env DOCKER_CONFIG="$ddir/config" "$DOCKER" -H "unix://$docker_sock" version

	# podman and skopeo (containers/image) keep a blob-info cache in /var/lib/containers/cache
	# whatever --root says. Remember whether it was there, so stop can remove what we made.
	local varlib_made=0
	[[ -e /var/lib/containers ]] || varlib_made=1

	cat >"$dir/consumers.env" <<EOF
AL_VARLIB_CONTAINERS_MADE=$varlib_made
AL_CONSUMERS_DIR=$(printf %q "$dir")
AL_CTR_PID=$ctr_pid
AL_CTR_SOCK=$(printf %q "$ctr_sock")
AL_CTR_SNAPSHOTTER=$snap
AL_DOCKER_PID=$docker_pid
AL_DOCKER_SOCK=$(printf %q "$docker_sock")
AL_DOCKER_CONFIG=$(printf %q "$ddir/config")
AL_PODMAN_ROOT=$(printf %q "$pdir/root")
AL_PODMAN_RUNROOT=$(printf %q "$pdir/runroot")
AL_PODMAN_TMPDIR=$(printf %q "$pdir/tmp")
EOF
	START_OK=1
	log "containerd pid $ctr_pid, dockerd pid $docker_pid; env: $dir/consumers.env"
	echo "$dir/consumers.env"
}

do_stop() {
	local dir=$1
	[[ -d $dir ]] || return 0
	dir=$(realpath "$dir")
	local AL_CTR_PID='' AL_DOCKER_PID='' AL_VARLIB_CONTAINERS_MADE=0
	if [[ -f $dir/consumers.env ]]; then
		# shellcheck disable=SC1091
		source "$dir/consumers.env"
	fi
	# dockerd first: it is a client of our containerd.
	stop_pid dockerd "$AL_DOCKER_PID"
	stop_pid containerd "$AL_CTR_PID"
	unmount_under "$dir"
	rm -rf --one-file-system "$dir"
	# Only the blob-info cache, and only if /var/lib/containers did not exist before start.
	if [[ $AL_VARLIB_CONTAINERS_MADE == 1 ]]; then
		rm -f /var/lib/containers/cache/blob-info-cache-v1.boltdb
		rmdir /var/lib/containers/cache /var/lib/containers 2>/dev/null || true
	fi
}

START_OK='' START_DIR=''
[[ $# -ge 1 && $# -le 2 ]] || usage
DIR=${2:-/tmp/airlock-consumers-$UID}
case $1 in
start) do_start "$DIR" ;;
stop) do_stop "$DIR" ;;
*) usage ;;
esac
