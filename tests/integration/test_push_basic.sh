#!/usr/bin/env bash
# airlock-push into an empty Debian docker-registry (plain HTTP) under a
# PREFIX, every seeded image (a Docker list, OCI indexes with an attestation
# and nested, single manifests, a zstd layer), fetched with
# --include-attestations so that the store holds every entry of every index:
#   1. every image is pushed (exit 0); the target's manifest digest of every
#      tag is upstream's (the seed's); a blob several repositories share
#      crosses the wire once and is mounted into the others;
#   2. containerd pulls every image by its original name through the written
#      hosts.toml (ctr images pull --hosts-dir, override_path for the
#      PREFIX): upstream's digest, content complete, and the pulls reached the
#      target under PREFIX;
#   3. docker 20.10 pulls TARGET/PREFIX/NAME:TAG: RepoDigests name upstream's
#      digest (not the nested index nor the zstd image: docker before 23
#      reads neither);
#   4. the written registries.yaml is the golden file
#      (tests/data/push/registries-prefix.yaml, the target filled in);
#   5. round trip: airlock-fetch from the target into a new store gives the
#      same digest for every tag and byte-identical blobs;
#   6. the nightly push of the unchanged set: one HEAD per tag and nothing
#      else on the wire, every image "unchanged", nothing uploaded;
#   7. --json validates against docs/push-report.schema.json.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/../infra/consumers-lib.sh"
rig_up
need curl
[ -x "$PUSH" ] || fail "airlock-push is not built: $PUSH"
consumers_up || fail "could not start the consumers"
on_exit "consumers_reset >/dev/null 2>&1"

work=$(tmpdir push)
mapfile -t keys < <(seed -r '.images | keys[] | select(. != "library/big:1")')
[ "${#keys[@]}" -ge 10 ] || fail "the seed has ${#keys[@]} images"
printf '%s\n' "${keys[@]}" >"$work/list"
store=$work/store
fetch_seeded "$store" "$work" --include-attestations -f "$work/list"
target_up "$work/target"
hd=$work/hosts.d

# 1. The push -------------------------------------------------------------------------
run_push "$work/push" --store "$store" --to "$TARGET/mirror" -f "$work/list" \
    --hosts-dir "$hd" --registries-yaml "$work/registries.yaml" --json "$work/push.json"
expect_rc 0 "$work/push" "airlock-push"
for k in "${keys[@]}"; do
    name=docker.io/$k
    assert_eq pushed "$(word_for "$work/push.out" "$name")" "result of $name"
    want=$(seed_digest "$k")
    got=$(target_digest "http://$TARGET/v2/mirror/${k%:*}/manifests/${k##*:}")
    assert_eq "$want" "$got" "the target's digest of mirror/$k"
    grep -F "$name -> $TARGET/mirror/$k  $want" "$work/push.out" >/dev/null ||
        fail "the line of $name does not name its target and digest"
done
# Each blob crosses the wire once: one completed upload (PUT of a session)
# per distinct blob of the set, the other repositories mount it.
n_blobs=$(for k in "${keys[@]}"; do seed_blobs "$k" '.kind == "config" or .kind == "layer"'; done | sort -u | wc -l)
uploads=$(log_since "$TARGET_LOG" 0 | grep -cE '^PUT /v2/.*/blobs/uploads/' || true)
mounts=$(log_since "$TARGET_LOG" 0 | grep -cE '^POST /v2/.*/blobs/uploads/\?mount=' || true)
assert_eq "$n_blobs" "$uploads" "blob uploads (one per distinct blob)"
[ "$mounts" -gt 0 ] || fail "no blob was mounted from another repository"
note "$uploads blobs uploaded once each, $mounts mounts"

# 2. containerd, by the original names, through hosts.toml -------------------------------
assert_file "$hd/docker.io/hosts.toml" "hosts.toml for docker.io"
assert_grep 'override_path = true' "$hd/docker.io/hosts.toml" "hosts.toml"
mark=$(log_mark "$TARGET_LOG")
for k in "${keys[@]}"; do
    al_ctr images pull --platform linux/amd64 --platform linux/arm64 --hosts-dir "$hd" "docker.io/$k" >"$work/ctr.out" 2>&1 ||
        { show "$work/ctr.out"; fail "ctr images pull --hosts-dir docker.io/$k"; }
    assert_eq "$(seed_digest "$k")" "$(containerd_image_target "docker.io/$k")" "containerd's digest of docker.io/$k"
done
al_ctr images check >"$work/check.out"
[ "$(awk 'NR > 1 && $4 != "complete"' "$work/check.out" | wc -l)" = 0 ] ||
    { show "$work/check.out"; fail "an image containerd pulled is not complete"; }
log_since "$TARGET_LOG" "$mark" >"$work/ctr.log"
assert_grep '^GET /v2/mirror/rancher/mirrored-pause/manifests/' "$work/ctr.log" "the target's log of containerd's pulls"
assert_no_grep '^(GET|HEAD) /v2/(library|rancher|calico)/' "$work/ctr.log" "the target's log (a path without the PREFIX)"

# 3. docker ------------------------------------------------------------------------------
for k in "${keys[@]}"; do
    case $k in library/nested:1 | rancher/zstd-image:1) continue ;; esac
    al_docker pull -q "$TARGET/mirror/$k" >"$work/docker.out" 2>&1 ||
        { show "$work/docker.out"; fail "docker pull $TARGET/mirror/$k"; }
    got=$(al_docker image inspect --format '{{range .RepoDigests}}{{println .}}{{end}}' "$TARGET/mirror/$k" |
        grep -F "$TARGET/mirror/${k%:*}@" | sed 's/.*@//')
    assert_eq "$(seed_digest "$k")" "$got" "docker's digest of $TARGET/mirror/$k"
done

# 4. registries.yaml -----------------------------------------------------------------------
sed "s|@TARGET@|$TARGET|g" "$AL_SRC/tests/data/push/registries-prefix.yaml" >"$work/registries.want"
diff -u "$work/registries.want" "$work/registries.yaml" >"$work/registries.diff" ||
    { show "$work/registries.diff"; fail "registries.yaml differs from the golden file"; }

# 5. Round trip ----------------------------------------------------------------------------
run_fetch "$work/back" --store "$work/store2" --mirror "docker.io=$TARGET/mirror" --mirror-only \
    --include-attestations -f "$work/list" --json "$work/back.json"
expect_rc 0 "$work/back" "airlock-fetch from the target"
for k in "${keys[@]}"; do
    got=$(jq -r --arg r "docker.io/$k" '.images[] | select(.ref == $r) | .digest' "$work/back.json")
    assert_eq "$(seed_digest "$k")" "$got" "the round trip's digest of $k"
done
assert_eq "$(store_blobs "$store" | sort)" "$(store_blobs "$work/store2" | sort)" "blobs of the two stores"
for d in $(store_blobs "$store"); do
    cmp -s "$store/blobs/sha256/${d#sha256:}" "$work/store2/blobs/sha256/${d#sha256:}" ||
        fail "blob $d differs after the round trip"
done

# 6. The nightly push: one HEAD per tag ----------------------------------------------------
mark=$(log_mark "$TARGET_LOG")
run_push "$work/again" --store "$store" --to "$TARGET/mirror" -f "$work/list" --json "$work/again.json"
expect_rc 0 "$work/again" "the second airlock-push"
log_since "$TARGET_LOG" "$mark" >"$work/again.log"
assert_eq "${#keys[@]}" "$(wc -l <"$work/again.log")" "requests of the unchanged push"
assert_eq "${#keys[@]}" "$(grep -cE '^HEAD /v2/mirror/.*/manifests/' "$work/again.log")" "HEADs of tags"
for k in "${keys[@]}"; do
    assert_eq unchanged "$(word_for "$work/again.out" "docker.io/$k")" "second result of $k"
done
assert_eq 0 "$(jq '.totals.bytes_sent' "$work/again.json")" "bytes sent by the unchanged push"

# 7. The reports ----------------------------------------------------------------------------
python3 "$AL_SRC/tests/infra/validate-report.py" "$AL_SRC/docs/push-report.schema.json" \
    "$work/push.json" "$work/again.json" >"$work/validate.out" 2>&1 ||
    { show "$work/validate.out"; fail "the --json reports do not match their schema"; }
assert_eq "${#keys[@]}" "$(jq '.totals.pushed' "$work/push.json")" "pushed images in the report"
note "ok"
