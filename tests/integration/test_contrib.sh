#!/usr/bin/env bash
# The nightly-job files of contrib/ and the README's k3s recipe really run:
#   - systemd-analyze verify accepts the service and timer (with the
#     binaries and man pages installed by `cmake --install` into a
#     temporary prefix), when systemd-analyze is here;
#   - the service's ExecStart= and the cron line, with only their paths
#     moved into a temporary directory (and the rig's registry added: the
#     test cannot reach Docker Hub), fetch the list into the store;
#   - the k3s recipe writes images.tar.zst into an agent/images directory,
#     leaving no .partial behind, and --force replaces it the next time: a
#     new file (another inode, renamed into place) with the same content.
. "$(dirname "$0")/lib.sh"
rig_up
EXPORT=$AL_BIN/airlock-export
contrib=$AL_SRC/contrib/systemd
assert_file "$contrib/airlock-fetch.service" "systemd service"
assert_file "$contrib/airlock-fetch.timer" "systemd timer"
assert_file "$contrib/airlock-fetch.cron" "cron.d file"

work=$(tmpdir contrib)
prefix=$work/prefix
cmake --install "$AL_BIN" --prefix "$prefix" >"$work/install.log" 2>&1 ||
    { show "$work/install.log"; fail "cmake --install failed"; }
assert_file "$prefix/bin/airlock-fetch" "installed airlock-fetch"
assert_file "$prefix/share/man/man1/airlock-fetch.1" "installed man page of airlock-fetch"
assert_file "$prefix/share/man/man1/airlock-export.1" "installed man page of airlock-export"

# 1. systemd-analyze verify -------------------------------------------------------
if command -v systemd-analyze >/dev/null; then
    units=$work/units
    mkdir -p "$units"
    sed "s|/usr/local/bin/|$prefix/bin/|" "$contrib/airlock-fetch.service" >"$units/airlock-fetch.service"
    cp "$contrib/airlock-fetch.timer" "$units/"
    rc=0
    MANPATH=$prefix/share/man systemd-analyze verify "$units/airlock-fetch.service" \
        "$units/airlock-fetch.timer" >"$work/verify.log" 2>&1 || rc=$?
    [ "$rc" = 0 ] && [ ! -s "$work/verify.log" ] ||
        { show "$work/verify.log"; fail "systemd-analyze verify: exit $rc"; }
    note "systemd-analyze verify: service and timer ok"
else
    fail "systemd-analyze is not installed (scripts/install-deps.sh installs systemd)"
fi

# The paths the units use, moved under $work.
list=$work/etc/airlock/images.txt
mkdir -p "$(dirname "$list")" "$work/srv" "$work/log"
printf '# nightly list\nbusybox:1.36\nrancher/mirrored-pause:3.6\n' >"$list"
relocate() {
    sed -e "s|/usr/local/bin/airlock-fetch|$FETCH|g" -e "s|/etc/airlock/images.txt|$list|g" \
        -e "s|/srv/airlock|$work/srv/airlock-$1|g" -e "s|/var/log/|$work/log/|g"
}
rig_flags="--registry $AL_REG_PLAIN --insecure-registry $AL_REG_PLAIN"

# 2. The service's ExecStart= -------------------------------------------------------
exec_start=$(sed -n 's/^ExecStart=//p' "$contrib/airlock-fetch.service" | relocate unit)
[ -n "$exec_start" ] || fail "no ExecStart= in the service"
docker_config=$(sed -n 's/^Environment=DOCKER_CONFIG=//p' "$contrib/airlock-fetch.service")
rc=0
# shellcheck disable=SC2086
DOCKER_CONFIG=$work$docker_config $exec_start $rig_flags >"$work/unit.out" 2>"$work/unit.err" || rc=$?
[ "$rc" = 0 ] || { show "$work/unit.out"; show "$work/unit.err"; fail "ExecStart= command: exit $rc"; }
assert_grep "^2 images: 2 ok" "$work/unit.out" "ExecStart= run"
note "ExecStart= ran: $exec_start"

# 3. The cron line --------------------------------------------------------------------
cron_cmd=$(grep -E '^[0-9*]' "$contrib/airlock-fetch.cron" | awk '{ $1=$2=$3=$4=$5=$6=""; sub(/^ +/, ""); print }')
[ -n "$cron_cmd" ] || fail "no job line in the cron file"
grep -E '^[0-9*]' "$contrib/airlock-fetch.cron" | awk '{ exit !($6 == "root") }' ||
    fail "the cron.d line must name its user (root) in the sixth field"
cron_cmd=$(relocate cron <<<"$cron_cmd")
# Cron's own environment: the PATH of the file, with the built binaries first.
cron_path=$(sed -n 's/^PATH=//p' "$contrib/airlock-fetch.cron")
rc=0
# cron runs the command with /bin/sh; split off the redirections to add the rig flags.
cmd=${cron_cmd%%>>*}
redir=${cron_cmd#"$cmd"}
env -i HOME="$work" PATH="$AL_BIN:$cron_path" /bin/sh -c "$cmd $rig_flags $redir" || rc=$?
[ "$rc" = 0 ] || { show "$work/log/airlock-fetch.log"; fail "cron command: exit $rc"; }
assert_grep "^2 images: 2 ok" "$work/log/airlock-fetch.log" "cron run's log"
note "cron line ran: $cmd"

# 4. The k3s recipe ------------------------------------------------------------------
images=$work/var/lib/rancher/k3s/agent/images
mkdir -p "$images"
rc=0
"$EXPORT" --store "$work/srv/airlock-unit" -f "$list" --platform linux/amd64 \
    -o "$images/airlock-amd64.tar.zst" >"$work/k3s.out" 2>"$work/k3s.err" || rc=$?
[ "$rc" = 0 ] || { show "$work/k3s.err"; fail "export into the k3s images directory: exit $rc"; }
assert_eq "airlock-amd64.tar.zst" "$(ls "$images")" "files in the k3s images directory"
cp "$images/airlock-amd64.tar.zst" "$work/first-export.tar.zst"
first_inode=$(stat -c %i "$images/airlock-amd64.tar.zst")
# The next night: the same command with --force replaces it.
rc=0
"$EXPORT" --store "$work/srv/airlock-unit" -f "$list" --platform linux/amd64 --force \
    -o "$images/airlock-amd64.tar.zst" >"$work/k3s.out" 2>"$work/k3s.err" || rc=$?
[ "$rc" = 0 ] || { show "$work/k3s.err"; fail "export with --force over the previous archive: exit $rc"; }
assert_eq "airlock-amd64.tar.zst" "$(ls "$images")" "files in the k3s images directory after --force"
# Really replaced: a new file renamed over the old one (so k3s never sees a
# half-written archive), holding the same export of the same store.
[ "$(stat -c %i "$images/airlock-amd64.tar.zst")" != "$first_inode" ] ||
    fail "--force did not replace the archive: same inode ($first_inode) as the first export"
cmp -s "$work/first-export.tar.zst" "$images/airlock-amd64.tar.zst" ||
    fail "the archive written with --force differs from the first export of the same store"
zstd -q -t "$images/airlock-amd64.tar.zst" 2>/dev/null || python3 -c "
import sys; d = open(sys.argv[1], 'rb').read(4); sys.exit(d != b'\x28\xb5\x2f\xfd')" "$images/airlock-amd64.tar.zst" ||
    fail "the k3s archive is not zstd"
note "ok"
