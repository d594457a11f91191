#!/usr/bin/env bash
# Progress on stderr:
#   - on a terminal (a tmux pane), a fetch of library/big:1 (~120 MB)
#     through a proxy that slows it to ~25 MB/s shows, mid-run, a line
#     with bytes done / total, a rate and an ETA, and a line for the
#     active transfer; once it is done the display is gone and the result
#     lines are there;
#   - the same fetch with stderr and stdout going to files writes plain
#     lines ("fetched blob ...") and no control character at all;
#   - --quiet writes nothing on stderr.
. "$(dirname "$0")/lib.sh"
rig_up
need tmux
need python3

work=$(tmpdir progress)

big_image_up "$work"

# The fault proxy in front of the plain registry, slowing blobs to ~25 MB/s.
fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
fault_rules '{"rules":[{"id":"slow","path":"/blobs/","action":"forward","rate":25000000}]}'
proxy=$AL_FAULT_PROXY

# 1. On a terminal --------------------------------------------------------------
sock=airlock-test-$$
tm() { tmux -L "$sock" "$@"; }
on_exit "tmux -L '$sock' kill-server 2>/dev/null"
cat >"$work/run.sh" <<EOF
#!/bin/sh
"$FETCH" --store "$work/store-tty" --registry "$proxy" --insecure-registry "$proxy" library/big:1
echo "EXIT=\$?" >"$work/tty.rc"
sleep 600
EOF
chmod +x "$work/run.sh"
tm new-session -d -s p -x 150 -y 20 "$work/run.sh"
seen=""
for _ in $(seq 300); do
    [ -f "$work/tty.rc" ] && break
    tm capture-pane -p -t p >"$work/pane" 2>/dev/null || true
    # "45.2 MB / 121.0 MB (37%)  12.3 MB/s  ETA 6s  0 of 2 blobs"
    if grep -qE '[0-9.]+ (kB|MB) / 12[0-9]\.[0-9] MB \([0-9]+%\)  [0-9.]+ (kB|MB)/s  ETA ([0-9]+s|[0-9]+:[0-9]{2})' "$work/pane" &&
        grep -qE '^  library/big [0-9a-f]{12}  [0-9.]+ (kB|MB) / 12[0-9]\.[0-9] MB  [0-9]+%' "$work/pane"; then
        seen=1
        cp "$work/pane" "$work/pane-mid"
        break
    fi
    sleep 0.2
done
[ -n "$seen" ] || { show "$work/pane"; fail "no progress line with bytes, rate and ETA in the pane"; }
note "mid-run: $(grep ETA "$work/pane-mid")"
for _ in $(seq 300); do [ -f "$work/tty.rc" ] && break; sleep 0.2; done
assert_eq "EXIT=0" "$(cat "$work/tty.rc" 2>/dev/null)" "fetch on a terminal"
tm capture-pane -p -t p >"$work/pane-end"
assert_grep '^ok +docker.io/library/big:1 ' "$work/pane-end" "the pane after the run"
assert_no_grep 'ETA|resolving' "$work/pane-end" "the pane after the run (display erased)"

# 2. Not a terminal: plain lines -------------------------------------------------------
RC=0
"$FETCH" --store "$work/store-plain" --registry "$proxy" --insecure-registry "$proxy" \
    library/big:1 2>"$work/plain.err" | cat >"$work/plain.out" || RC=$?
assert_eq 0 "$RC" "fetch with stderr to a file"
assert_grep "^airlock-fetch: fetched blob [0-9a-f]{12} of library/big: 120\.0 MB in [0-9.]+s \([0-9.]+ MB/s\)$" "$work/plain.err" "plain progress line"
for f in "$work/plain.err" "$work/plain.out"; do
    if LC_ALL=C grep -q $'[\x01-\x08\x0b-\x1f\x7f]' "$f"; then
        show "$f"
        fail "$f holds control characters"
    fi
done
assert_grep '^ok +docker.io/library/big:1 ' "$work/plain.out" "results on stdout"
assert_no_grep 'fetched blob' "$work/plain.out" "stdout"

# 3. --quiet: nothing on stderr ---------------------------------------------------------
run_fetch "$work/quiet" --store "$work/store-quiet" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" busybox:1.36 --quiet
expect_rc 0 "$work/quiet" "--quiet"
[ ! -s "$work/quiet.err" ] || { show "$work/quiet.err"; fail "--quiet wrote on stderr"; }

note "ok"
