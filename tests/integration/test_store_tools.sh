#!/usr/bin/env bash
# airlock-export's store tools against a store fetched from the rig:
#   - --list (text and --json -): one line per tag with its digest and
#     platforms, sizes and the total as the seed description says them
#     (each blob once per image; shared blobs once in the total);
#   - --json FILE: the text on stdout as without it, the same JSON in FILE;
#   - --inspect REF: root, source, every platform manifest with config and
#     layers, and "shared with" computed independently from the seed;
#   - --verify-store: clean store -> exit 0 and "store OK"; then one damage
#     at a time on a copy (flipped byte, deleted file, stray file, missing
#     blobs row, wrong size, missing edge, edited index.json, left-over tmp
#     file), each named on its own line, exit 1 (tmp files: info, exit 0);
#   - all of it on a read-only bind mount of the store;
#   - --verify-store while airlock-fetch writes: never an error line.
. "$(dirname "$0")/lib.sh"
rig_up
EXPORT=$AL_BIN/airlock-export
[ -x "$EXPORT" ] || fail "airlock-export is not built: $EXPORT"

keys=(library/busybox:1.36 rancher/mirrored-pause:3.6 library/alpine-ish:3.19 library/nested:1)
work=$(tmpdir tools)
store=$work/store
note "fetching ${#keys[@]} images"
run_fetch "$work/fetch" --store "$store" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" "${keys[@]}"
expect_rc 0 "$work/fetch" "fetch"

# run_export OUT args...: stdout to OUT.out, stderr to OUT.err, exit in $RC.
run_export() {
    local out=$1
    shift
    RC=0
    "$EXPORT" "$@" >"$out.out" 2>"$out.err" || RC=$?
}
expect_export() { # WANT OUT WHAT
    if [ "$RC" != "$1" ]; then
        show "$2.out"
        show "$2.err"
        fail "${3:-airlock-export}: exit $RC, expected $1"
    fi
}

# What the seed says, computed independently of airlock ----------------------
# seed_size KEY: bytes of the image's non-attestation blobs, each once.
seed_size() {
    seed --arg r "$1" '[.images[$r].blobs[] | select(.attestation | not)] | unique_by(.digest) | map(.size) | add'
}
seed_platforms() { seed --arg r "$1" '.images[$r].platforms | sort | join(",")'; }
# shared_expected KEY DIGEST: the other fetched images holding DIGEST, sorted.
shared_expected() {
    local k
    for k in "${keys[@]}"; do
        [ "$k" = "$1" ] && continue
        if seed_blobs "$k" | matches -x "$2"; then seed_name "$k"; fi
    done | sort | paste -sd, -
}

# 1. --list -------------------------------------------------------------------
run_export "$work/list" --store "$store" --list
expect_export 0 "$work/list" "--list"
assert_eq $((${#keys[@]} + 2)) "$(wc -l <"$work/list.out" | tr -d ' ')" "--list lines (header, tags, total)"
for k in "${keys[@]}"; do
    line=$(awk -v n="$(seed_name "$k")" '$1 == n' "$work/list.out")
    [ -n "$line" ] || { show "$work/list.out"; fail "--list has no line for $(seed_name "$k")"; }
    grep -qF "$(seed_digest "$k")" <<<"$line" || fail "--list line of $k lacks its digest"
    plats=$(awk '{print $3}' <<<"$line" | tr ',' '\n' | sort | paste -sd, -)
    assert_eq "$(seed_platforms "$k")" "$plats" "--list platforms of $k"
    grep -qE '[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z +[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$' <<<"$line" ||
        fail "--list line of $k has no ISO-8601 UTC dates: $line"
done
all_blobs=$(for k in "${keys[@]}"; do seed_blobs "$k"; done | sort -u)
n_unique=$(wc -l <<<"$all_blobs" | tr -d ' ')
total_bytes=$(for k in "${keys[@]}"; do
    seed --arg r "$k" '.images[$r].blobs[] | select(.attestation | not) | "\(.digest) \(.size)"'
done | sort -u | awk '{s += $2} END {print s}')
assert_grep "^total: ${#keys[@]} tags, $n_unique unique blobs, .* \\($total_bytes bytes\\)$" "$work/list.out" "--list total"

run_export "$work/listj" --store "$store" --list --json -
expect_export 0 "$work/listj" "--list --json -"
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    j() { jq -r --arg n "$name" ".tags[] | select(.name == \$n) | $1" "$work/listj.out"; }
    assert_eq "$(seed_digest "$k")" "$(j .digest)" "--list --json digest of $k"
    assert_eq "$(seed_size "$k")" "$(j .size)" "--list --json size of $k (each blob once)"
    assert_eq "$(seed_platforms "$k")" "$(j '.platforms | sort | join(",")')" "--list --json platforms of $k"
    assert_eq true "$(j .complete)" "--list --json complete of $k"
done
assert_eq "$n_unique" "$(jq .total.blobs "$work/listj.out")" "--list --json total blobs"
assert_eq "$total_bytes" "$(jq .total.size "$work/listj.out")" "--list --json total size (shared once)"
# --json FILE: the text still on stdout, the same JSON in FILE.
run_export "$work/listf" --store "$store" --list --json "$work/list.json"
expect_export 0 "$work/listf" "--list --json FILE"
cmp -s "$work/list.out" "$work/listf.out" || fail "--list --json FILE: stdout differs from --list's"
cmp -s "$work/listj.out" "$work/list.json" || fail "--list --json FILE: FILE differs from --json -'s output"
[ -z "$(find "$work" -maxdepth 1 -name 'list.json.tmp.*')" ] || fail "--json FILE left a temp file"
# The flag takes a value now: the old boolean spelling is a usage error,
# and never makes a file named after the next option.
run_export "$work/jsonbool" --store "$store" --json --list
expect_export 2 "$work/jsonbool" "--json --list"
[ ! -e ./--list ] || fail "--json --list made a file named --list"
run_export "$work/jsonlast" --store "$store" --list --json
expect_export 2 "$work/jsonlast" "--list --json without a value"
note "--list: ${#keys[@]} tags, $n_unique unique blobs, $total_bytes bytes"

# 2. --inspect ------------------------------------------------------------------
for k in "${keys[@]}"; do
    name=$(seed_name "$k")
    run_export "$work/insp" --store "$store" --inspect "$k" --json -
    expect_export 0 "$work/insp" "--inspect $k --json -"
    o=$work/insp.out
    assert_eq "$name" "$(jq -r .name "$o")" "--inspect name"
    assert_eq "$(seed_digest "$k")" "$(jq -r .digest "$o")" "--inspect digest of $k"
    assert_eq "$(seed_media_type "$k")" "$(jq -r .media_type "$o")" "--inspect media type of $k"
    assert_eq "$(seed --arg r "$k" '.images[$r].size')" "$(jq -r .size "$o")" "--inspect root size of $k"
    assert_eq "$(seed_size "$k")" "$(jq -r .total_size "$o")" "--inspect total size of $k"
    assert_eq "$AL_REG_PLAIN/$(seed --arg r "$k" '.images[$r].repository')" "$(jq -r .source "$o")" "--inspect source of $k"
    for f in first_seen checked_at changed_at; do
        jq -r ".$f" "$o" | matches -E '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$' ||
            fail "--inspect $f of $k is not ISO-8601 UTC: $(jq -r ".$f" "$o")"
    done
    # Every seeded image manifest is there, with its config and layers.
    for d in $(seed --arg r "$k" '.images[$r].blobs[] | select(.kind == "manifest" and (.attestation | not)) | .digest'); do
        jq -e --arg d "$d" '.manifests[] | select(.digest == $d and .kind == "manifest") | .config.digest' "$o" >/dev/null ||
            fail "--inspect $k: manifest $d missing or without config"
    done
    # Layers: seed sizes and media types, and who shares them.
    while read -r d size mt; do
        [ -n "$d" ] || continue
        got=$(jq -r --arg d "$d" '[.manifests[].layers // [] | .[] | select(.digest == $d)][0] | "\(.size) \(.media_type) \(.shared_with | sort | join(","))"' "$o")
        assert_eq "$size $mt $(shared_expected "$k" "$d")" "$got" "--inspect $k: layer $d (size, media type, shared with)"
    done < <(seed --arg r "$k" '.images[$r].blobs[] | select(.kind == "layer" and (.attestation | not)) | "\(.digest) \(.size) \(.media_type)"')
done
# Text: the shared layer names its other users.
run_export "$work/inspt" --store "$store" --inspect busybox:1.36
expect_export 0 "$work/inspt" "--inspect busybox:1.36"
shared_layer=$(comm -12 <(seed_blobs library/busybox:1.36 '.kind == "layer"' | sort) \
    <(seed_blobs library/alpine-ish:3.19 '.kind == "layer"' | sort) | sed -n 1p)
[ -n "$shared_layer" ] || fail "the seed has no layer shared by busybox and alpine-ish"
grep -F "$shared_layer" "$work/inspt.out" | matches -F "shared with docker.io/library/alpine-ish:3.19" ||
    { show "$work/inspt.out"; fail "--inspect text: layer $shared_layer is not shown shared with alpine-ish"; }
assert_grep "^  source: +$AL_REG_PLAIN/library/busybox$" "$work/inspt.out" "--inspect source line"
assert_grep "^linux/arm64 " "$work/inspt.out" "--inspect platform block"
run_export "$work/inspm" --store "$store" --inspect library/not-there:1
expect_export 1 "$work/inspm" "--inspect of a ref not in the store"
assert_grep "not in store: docker.io/library/not-there:1" "$work/inspm.err" "--inspect not found message"
run_export "$work/inspb" --store "$store" --inspect 'Bad/Ref'
expect_export 2 "$work/inspb" "--inspect of an invalid ref"
run_export "$work/modes" --store "$store" --list --verify-store
expect_export 2 "$work/modes" "--list with --verify-store"
run_export "$work/inspf" --store "$store" --inspect library/not-there:1 --json "$work/inspf.json"
expect_export 1 "$work/inspf" "--inspect --json FILE of a ref not in the store"
[ ! -e "$work/inspf.json" ] || fail "--inspect of a ref not in the store wrote its --json FILE"

# 3. --verify-store: clean ---------------------------------------------------------
n_files=$(store_blobs "$store" | wc -l | tr -d ' ')
run_export "$work/v0" --store "$store" --verify-store
expect_export 0 "$work/v0" "--verify-store on a clean store"
assert_eq 1 "$(wc -l <"$work/v0.out" | tr -d ' ')" "--verify-store lines on a clean store"
assert_grep "^store OK: $n_files blobs, [0-9]+ bytes" "$work/v0.out" "--verify-store summary"
run_export "$work/v0j" --store "$store" --verify-store --json -
expect_export 0 "$work/v0j" "--verify-store --json -"
assert_eq "true $n_files 0" "$(jq -r '"\(.ok) \(.blobs) \(.problems | length)"' "$work/v0j.out")" "--verify-store --json"

# 4. --verify-store: one damage at a time, each on a fresh copy ---------------------
layer=$shared_layer
pause_root=$(seed_digest rancher/mirrored-pause:3.6)
nested_manifest=$(seed --arg r library/nested:1 '[.images[$r].blobs[] | select(.kind == "manifest")][0].digest')
fresh() { # a copy of the clean store
    local c
    c=$(tmpdir copy)
    cp -a "$store/." "$c/"
    echo "$c"
}
blobfile() { echo "$1/blobs/sha256/${2#sha256:}"; }
# damaged WHAT WANT_RC PATTERN...: verify the copy in $c; each PATTERN must
# match a line of the report.
damaged() {
    local what=$1 want=$2 p
    shift 2
    run_export "$work/dmg" --store "$c" --verify-store
    expect_export "$want" "$work/dmg" "--verify-store after: $what"
    for p in "$@"; do assert_grep "$p" "$work/dmg.out" "--verify-store report after: $what"; done
    if [ "$want" = 1 ]; then
        assert_grep "^[0-9]+ problems? \\([0-9]+ errors?" "$work/dmg.out" "summary after: $what"
    fi
    note "named: $what"
}

c=$(fresh)
printf '\xff' | dd of="$(blobfile "$c" "$layer")" bs=1 seek=100 conv=notrunc status=none
damaged "a flipped byte in a layer" 1 \
    "^error: corrupt: blobs/sha256/${layer#sha256:}: content hashes to sha256:" \
    "^error: incomplete: docker.io/library/busybox:1.36: .*$layer \\(corrupt\\)" \
    "^error: incomplete: docker.io/library/alpine-ish:3.19: .*$layer \\(corrupt\\)"
assert_no_grep "^error: incomplete: docker.io/rancher/mirrored-pause:3.6" "$work/dmg.out" "pause does not use that layer"

c=$(fresh)
rm "$(blobfile "$c" "$layer")"
damaged "a deleted blob file" 1 \
    "^error: missing: $layer \\([0-9]+ bytes.*no file" \
    "^error: incomplete: docker.io/library/busybox:1.36: .*$layer \\(no file\\)"

c=$(fresh)
echo junk >"$c/blobs/sha256/notes.txt"
mkdir "$c/blobs/sha512"
damaged "stray files" 1 \
    "^error: stray: blobs/sha256/notes.txt: not named by a sha256 digest" \
    "^error: stray: blobs/sha512"

c=$(fresh)
sqlite3 "$c/airlock.db" "DELETE FROM blobs WHERE digest = '$pause_root'"
damaged "a tag's root without its blobs row" 1 \
    "^info: unindexed: blobs/sha256/${pause_root#sha256:} \\([0-9]+ bytes\\) has no blobs row" \
    "^error: dangling: tag docker.io/rancher/mirrored-pause:3.6 points at $pause_root, which has no blobs row" \
    "^error: incomplete: docker.io/rancher/mirrored-pause:3.6: .*no blobs row"

c=$(fresh)
sqlite3 "$c/airlock.db" "UPDATE blobs SET size = size + 1 WHERE digest = '$layer'"
damaged "a blobs row with the wrong size" 1 \
    "^error: size: blobs/sha256/${layer#sha256:} is [0-9]+ bytes, its blobs row says [0-9]+"

c=$(fresh)
sqlite3 "$c/airlock.db" "DELETE FROM edges WHERE parent_digest = '$nested_manifest' AND kind = 'layer'"
damaged "a manifest's layer edges deleted" 1 \
    "^error: database: manifest $nested_manifest: its edges rows do not list every blob"

c=$(fresh)
jq -c --arg n docker.io/library/busybox:1.36 '
    .manifests |= map(if .annotations["io.containerd.image.name"] == $n
                      then .digest = "sha256:\("0" * 64)" | .size = 1 else . end)' \
    "$store/index.json" >"$c/index.json"
damaged "index.json: wrong digest and size" 1 \
    "^error: index: index.json: docker.io/library/busybox:1.36: digest sha256:0{64}, the tag says $(seed_digest library/busybox:1.36)" \
    "^error: index: index.json: docker.io/library/busybox:1.36: size 1, the tag says"

c=$(fresh)
jq -c --arg n docker.io/library/nested:1 '
    .manifests |= map(select(.annotations["io.containerd.image.name"] != $n))
    | .manifests += [.manifests[0] | .annotations["io.containerd.image.name"] = "docker.io/library/ghost:1"
                                   | .annotations["org.opencontainers.image.ref.name"] = "docker.io/library/ghost:1"]
    | .manifests[0].annotations["org.opencontainers.image.ref.name"] = "1.0"' \
    "$store/index.json" >"$c/index.json"
damaged "index.json: missing, extra and wrong annotation" 1 \
    "^info: index: index.json: tag docker.io/library/nested:1 \\(sha256:[0-9a-f]{64}\\) has no entry" \
    "^error: index: index.json: extra entry docker.io/library/ghost:1" \
    "^error: index: index.json: .*annotation org.opencontainers.image.ref.name is 1.0"

c=$(fresh)
mkdir -p "$c/tmp"
head -c 1000 "$(blobfile "$store" "$layer")" >"$c/tmp/partial-${layer#sha256:}"
damaged "a partial download in tmp/" 0 \
    "^info: tmp: tmp/partial-${layer#sha256:} \\(1.0 kB\\): a partial download" \
    "^store OK: $n_files blobs, .*; 1 note$"

# JSON names the same problems.
c=$(fresh)
rm "$(blobfile "$c" "$layer")"
run_export "$work/dj" --store "$c" --verify-store --json "$work/dj.json"
expect_export 1 "$work/dj" "--verify-store --json FILE on a damaged store"
assert_eq false "$(jq .ok "$work/dj.json")" "--json ok"
jq -e '.problems[] | select(.severity == "error" and .kind == "missing")' "$work/dj.json" >/dev/null ||
    { show "$work/dj.json"; fail "--verify-store --json: no missing problem"; }
# One run, both forms: the text names the same problem on stdout.
assert_grep "^error: missing: " "$work/dj.out" "--verify-store --json FILE: the text on stdout"

# 5. A read-only bind mount of the store ----------------------------------------------
ro=$(tmpdir ro)
if mount --bind "$store" "$ro" 2>/dev/null; then
    on_exit "umount '$ro' 2>/dev/null || umount -l '$ro'"
    mount -o remount,ro,bind "$ro" || fail "remount read-only failed"
    touch "$ro/probe" 2>/dev/null && fail "the bind mount is writable"
    before=$(cd "$store" && find . -printf '%p %s %T@\n' | sort | md5sum)
    run_export "$work/ro-list" --store "$ro" --list
    expect_export 0 "$work/ro-list" "--list on a read-only store"
    cmp -s "$work/list.out" "$work/ro-list.out" || fail "--list differs on the read-only mount"
    run_export "$work/ro-insp" --store "$ro" --inspect busybox:1.36
    expect_export 0 "$work/ro-insp" "--inspect on a read-only store"
    run_export "$work/ro-v" --store "$ro" --verify-store
    expect_export 0 "$work/ro-v" "--verify-store on a read-only store"
    assert_grep "^store OK: $n_files blobs" "$work/ro-v.out" "--verify-store on a read-only store"
    after=$(cd "$store" && find . -printf '%p %s %T@\n' | sort | md5sum)
    assert_eq "$before" "$after" "the store after the read-only runs"
    note "read-only bind mount: --list, --inspect, --verify-store ok"
else
    fail "read-only bind mount: mount --bind is not permitted (the tests run as root)"
fi

# 6. While a fetch writes -------------------------------------------------------------
# The fetch (-j 1, through a fault proxy) is held mid-run: of one layer,
# 50 kB arrive, then the proxy holds the connection for 6 s before sending
# the rest. --verify-store runs again and again until the fetch ends: never
# an error line; at least one run starts and ends while the fetch is held
# (its partial download there before and after, the fetch still running)
# and notes that partial as info; the fetch itself succeeds.
live=$work/live
run_fetch "$work/live0" --store "$live" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" busybox:1.36
expect_rc 0 "$work/live0" "fetch before the concurrent check"
mapfile -t every < <(seed '.images | keys[] | select(. != "library/victim:1" and . != "library/big:1")')  # victim: other tests corrupt it
held=$(seed -r '[.images["rancher/zstd-image:1"].blobs[] | select(.kind == "layer")] | max_by(.size) | .digest')
held_part=$live/tmp/partial-${held#sha256:}
fault_proxy_up "$work/proxy" "http://$AL_REG_PLAIN"
fault_rules "{\"rules\":[{\"id\":\"hold\",\"path\":\"/blobs/$held\",\"action\":\"stall\",\"bytes\":50000,\"seconds\":6,\"then\":\"continue\"}]}"
"$FETCH" --store "$live" --registry "$AL_FAULT_PROXY" --insecure-registry "$AL_FAULT_PROXY" -j 1 \
    "${every[@]}" >"$work/live.out" 2>"$work/live.err" &
fetch_pid=$!
on_exit "kill $fetch_pid 2>/dev/null"
for _ in $(seq 300); do
    [ -f "$held_part" ] && [ "$(stat -c %s "$held_part")" -ge 50000 ] && break
    kill -0 "$fetch_pid" 2>/dev/null || break
    sleep 0.1
done
[ -f "$held_part" ] || { show "$work/live.err"; fail "the fetch never got held on $held"; }
n=0 during=0
while kill -0 "$fetch_pid" 2>/dev/null; do
    before_part=0
    [ -f "$held_part" ] && before_part=1
    run_export "$work/lv" --store "$live" --verify-store
    n=$((n + 1))
    if [ "$RC" != 0 ] || grep -q '^error' "$work/lv.out"; then
        show "$work/lv.out"
        fail "--verify-store reported errors while airlock-fetch was writing (run $n)"
    fi
    if [ "$before_part" = 1 ] && [ -f "$held_part" ] && kill -0 "$fetch_pid" 2>/dev/null; then
        during=$((during + 1))
        assert_grep "^info: tmp: tmp/partial-${held#sha256:} " "$work/lv.out" "--verify-store while the fetch is held"
    fi
done
RC=0
wait "$fetch_pid" || RC=$?
expect_rc 0 "$work/live" "the fetch that --verify-store ran beside"
for k in "${every[@]}"; do
    want=ok
    [ "$k" != library/busybox:1.36 ] || want=unchanged
    assert_eq "$want" "$(word_for "$work/live.out" "$(seed_name "$k")")" "the concurrent fetch: $k"
done
[ "$during" -ge 1 ] || fail "no --verify-store ran while the fetch was held ($n ran in all)"
run_export "$work/lv" --store "$live" --verify-store
expect_export 0 "$work/lv" "--verify-store after the concurrent fetch"
assert_no_grep "^info" "$work/lv.out" "notes once the fetch is done"
note "$n verifications while airlock-fetch wrote, $during of them while it was held: no error"
note "ok"
