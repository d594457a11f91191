#!/usr/bin/env bash
# Bad input, one case per row: each must give one clear line naming the thing
# at fault, the documented nonzero exit, and leave the store as it was
# (blobs, index.json and tags untouched).
#
# Usage errors (exit 2) come from the command line and list files and must
# not reach the network. Bad registry answers (exit 1) come from a fake
# registry (tests/infra/fakeregistry.py) that serves exact bytes; distribution
# itself refuses to store most of them.
. "$(dirname "$0")/lib.sh"
rig_up

work=$(tmpdir bad)
EXPORT=$AL_BIN/airlock-export
store=$work/store

# A store with one image, so "unchanged" means something.
run_fetch "$work/seed" --store "$store" --registry "$AL_REG_PLAIN" \
    --insecure-registry "$AL_REG_PLAIN" busybox:1.36
expect_rc 0 "$work/seed" "seeding the store"

snapshot() {
    {
        (cd "$store" && find blobs -type f | sort && sha256sum index.json)
        db "$store" 'SELECT full_name, digest FROM tags ORDER BY full_name'
        db "$store" 'SELECT count(*) FROM blobs'
    } 
}
before=$(snapshot)

# --- the fake registry --------------------------------------------------------
hex() { printf '%064x' "$1"; }
good_cfg='{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}'
cfg_digest="sha256:$(printf '%s' "$good_cfg" | sha256sum | cut -d' ' -f1)"
cfg_size=${#good_cfg}
mk_manifest() { # LAYER_DIGEST LAYER_SIZE [CONFIG_SIZE]
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":%s}]}' \
        "$cfg_digest" "${3:-$cfg_size}" "$1" "$2"
}
OCI=application/vnd.oci.image.manifest.v1+json
big_index() {
    printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":['
    for i in $(seq 1 2000); do
        [ "$i" = 1 ] || printf ','
        printf '{"mediaType":"%s","digest":"sha256:%s","size":100,"platform":{"os":"linux","architecture":"amd64"}}' "$OCI" "$(hex "$i")"
    done
    printf ']}'
}
wrong_digest_body=$(mk_manifest "sha256:$(hex 7)" 10)
python3 - "$work/routes.json" <<PY
import json, sys
OCI = "$OCI"
def m(body, ct=OCI, status=200, headers=None, repeat=1):
    h = {"Content-Type": ct}
    h.update(headers or {})
    return {"status": status, "headers": h, "body": body, "repeat": repeat}
routes = {
    "/v2/bad/notjson/manifests/1": m("this is { not json"),
    "/v2/bad/html/manifests/1": m("<html><body>Welcome to nginx</body></html>", ct="text/html"),
    "/v2/bad/schema1/manifests/1": m('{"schemaVersion":1,"name":"x","tag":"1","fsLayers":[],"history":[]}',
                                      ct="application/vnd.docker.distribution.manifest.v1+prettyjws"),
    "/v2/bad/huge/manifests/1": m(" " * 1024, repeat=5 * 1024),
    "/v2/bad/negsize/manifests/1": m('''$(mk_manifest "sha256:$(hex 1)" -5)'''),
    "/v2/bad/traversal/manifests/1": m('''$(mk_manifest "sha256:../../../../etc/passwd" 10)'''),
    "/v2/bad/absurd/manifests/1": m('''$(big_index)''', ct="application/vnd.oci.image.index.v1+json"),
    "/v2/bad/mismatch/manifests/sha256:$(hex 9)": m('''$wrong_digest_body'''),
    "/v2/bad/mismatch/manifests/1": m('''$wrong_digest_body''', headers={"Docker-Content-Digest": "sha256:$(hex 9)"}),
    "/v2/bad/wrongtype/manifests/1": m('{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","config":{"mediaType":"x","digest":"sha256:$(hex 1)","size":1},"layers":[]}'),
    "/v2/bad/err500/manifests/1": m("oops", ct="text/plain", status=500),
    "/v2/bad/denied/manifests/1": m('{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}', ct="application/json", status=403),
    "/v2/bad/cfgsize/manifests/1": m('''$(mk_manifest "sha256:$(hex 3)" 10 999)'''),
    "/v2/bad/cfgsize/blobs/$cfg_digest": m('''$good_cfg''', ct="application/octet-stream"),
}
json.dump(routes, open(sys.argv[1], "w"))
PY
python3 "$AL_SRC/tests/infra/fakeregistry.py" --port-file "$work/port" --log "$work/fake.log" "$work/routes.json" &
fake_pid=$!
on_exit "kill $fake_pid 2>/dev/null"
for _ in $(seq 50); do [ -s "$work/port" ] && break; sleep 0.1; done
fake=127.0.0.1:$(cat "$work/port")

# --- list files ----------------------------------------------------------------
printf 'busybox:1.36\n\0garbage\x01\x02\n' >"$work/nul.txt"
{ echo busybox:1.36; head -c 5000 /dev/zero | tr '\0' a; echo; } >"$work/long.txt"
printf 'busybox:1.36\nBad/Upper:1\nbusybox:1.36 extra\n' >"$work/two-bad.txt"

# --- the table --------------------------------------------------------------
# PROGRAM;EXIT;MESSAGE REGEX;ARGS (split on spaces; @F@ = the fake registry).
# Each regex holds words of the explanation that the arguments (the ref, the
# file name, the flag) do not contain: a message that only echoed its input
# must not match.
cases=(
    "fetch;2;\"Busybox:1.36\": repository name must be lowercase;Busybox:1.36"
    "fetch;2;\"busybox:\": empty tag;busybox:"
    "fetch;2;invalid digest \"sha256:\\.\\./\\.\\./x\": '\\.' is not a hex digit;busybox@sha256:../../x"
    "fetch;2;needs 64 hex digits, got 3;busybox@sha256:abc"
    "fetch;2;hex must be lowercase;busybox@sha256:E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"
    "fetch;2;algorithm must be sha256;busybox@md5:d41d8cd98f00b204e9800998ecf8427e"
    "fetch;2;unsupported digest algorithm \"sha512\".*only sha256 is supported;busybox@sha512:$(printf '%0128d' 0)"
    "fetch;2;\"library//busybox:1\": empty path component;library//busybox:1"
    "fetch;2;repository name too long \\(318 characters, max 255\\);$(printf 'a%.0s' $(seq 300)):1"
    "fetch;2;tag longer than 128 characters;busybox:$(printf 't%.0s' $(seq 200))"
    "fetch;2;nul\\.txt:2: line contains a NUL byte;-f $work/nul.txt"
    "fetch;2;long\\.txt:2: line too long \\(5000 bytes, max 4096\\);-f $work/long.txt"
    "fetch;2;two-bad\\.txt:3: unexpected text after reference;-f $work/two-bad.txt"
    "fetch;2;no-such-list\\.txt: No such file or directory;-f $work/no-such-list.txt"
    "fetch;2;--platform: invalid platform \"linux\": expected os/arch;--platform linux busybox:1.36"
    "fetch;2;--jobs: expected a number from 1 to 256, got \"0\";--jobs 0 busybox:1.36"
    "fetch;2;--registry: invalid registry host \"bad/host\";--registry bad/host busybox:1.36"
    "fetch;2;--username needs --password-stdin;--username u busybox:1.36"
    "fetch;2;unrecognized option '--no-such-flag';--no-such-flag busybox:1.36"
    "fetch;2;no images given;"
    "fetch;1;bad/notjson:1 .*manifest is not valid JSON;--registry @F@ bad/notjson:1"
    "fetch;1;bad/html:1 .*unsupported manifest media type \"text/html\";--registry @F@ bad/html:1"
    "fetch;1;bad/schema1:1 .*schema 1 manifests are not supported;--registry @F@ bad/schema1:1"
    "fetch;1;bad/huge:1 .*response larger than 4194304 bytes;--registry @F@ bad/huge:1"
    "fetch;1;bad/negsize:1 .*layers\\[0\\]: negative \"size\" -5;--registry @F@ bad/negsize:1"
    "fetch;1;bad/traversal:1 .*layers\\[0\\]: invalid digest \"sha256:\\.\\./\\.\\./;--registry @F@ bad/traversal:1"
    "fetch;1;bad/absurd:1 .*has 2000 entries, more than the limit of 1024;--registry @F@ bad/absurd:1"
    "fetch;1;bad/mismatch:1 .*digest mismatch: content hashes to sha256:;--registry @F@ bad/mismatch:1"
    "fetch;1;bad/mismatch@sha256:0+9 .*digest mismatch: content hashes to sha256:;--registry @F@ bad/mismatch@sha256:$(hex 9)"
    "fetch;1;bad/wrongtype:1 .*says index, but the body is an image manifest;--registry @F@ bad/wrongtype:1"
    "fetch;1;bad/err500:1 .*HTTP 500 Internal Server Error;--retries 0 --registry @F@ bad/err500:1"
    "fetch;1;bad/denied:1 .*HTTP 403 Forbidden \\(DENIED: requested access to the resource is denied\\);--registry @F@ bad/denied:1"
    "fetch;1;bad/cfgsize:1 .*size mismatch: expected 999 bytes, got 78;--registry @F@ bad/cfgsize:1"
    "fetch;1;bad/missing:1 .*HTTP 404 Not Found;--registry @F@ bad/missing:1"
    "export;1;not in (the )?store: docker.io/library/nosuch:1;nosuch:1 -o $work/out.tar"
    "export;1;no linux/s390x manifest \\(it has linux/amd64, linux/arm64\\);--platform linux/s390x busybox:1.36 -o $work/out.tar"
    "export;1;exists\\.tar exists: nothing written;busybox:1.36 -o $work/exists.tar"
    "export;1;no/such/dir[^ ]*: No such file or directory;busybox:1.36 -o $work/no/such/dir/out.tar"
    "export;2;--format: invalid format \"zip\": expected hybrid, docker or oci;--format zip busybox:1.36 -o $work/out.tar"
    "export;2;\"Busybox\": repository name must be lowercase;Busybox -o $work/out.tar"
    "export;2;-o needs \\{arch\\} in the file name;--platform linux/amd64,linux/arm64 busybox:1.36 -o $work/out.tar"
)
touch "$work/exists.tar"
n=0
for row in "${cases[@]}"; do
    IFS=';' read -r prog want re args <<<"$row"
    args=${args//@F@/$fake}
    n=$((n + 1))
    out=$work/case$n
    # shellcheck disable=SC2086 # the args are split on purpose
    if [ "$prog" = fetch ]; then
        run_fetch "$out" --store "$store" --insecure-registry "$fake" $args
    else
        RC=0
        "$EXPORT" --store "$store" $args >"$out.out" 2>"$out.err" || RC=$?
    fi
    [ "$RC" = "$want" ] || { show "$out.out"; show "$out.err"; fail "case $n ($prog $args): exit $RC, expected $want"; }
    cat "$out.out" "$out.err" >"$out.all"
    grep -qiE -- "$re" "$out.all" || { show "$out.all"; fail "case $n ($prog $args): no /$re/"; }
    # No sanitizer report, no crash, and a bounded number of lines.
    assert_no_grep "AddressSanitizer|runtime error|Segmentation" "$out.all" "case $n output"
    [ "$(wc -l <"$out.all")" -le 6 ] || { show "$out.all"; fail "case $n: more than a few lines"; }
    after=$(snapshot)
    [ "$before" = "$after" ] || fail "case $n ($prog $args) changed the store"
done
[ ! -e "$work/out.tar" ] && [ ! -e "$work/out.tar.partial" ] || fail "a failed export left an output"
[ ! -s "$work/exists.tar" ] || fail "an existing output was overwritten"
# Usage errors never reached the fake registry: only the fetch rows did.
assert_eq "$(grep -c '@F@' <<<"$(printf '%s\n' "${cases[@]}")")" \
    "$(grep -cE '^(GET|HEAD) /v2/bad/[a-z0-9]+/manifests/' "$work/fake.log")" "manifest requests to the fake registry"
note "$n bad inputs refused cleanly"
