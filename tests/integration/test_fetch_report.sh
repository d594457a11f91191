#!/usr/bin/env bash
# The run report and the lock file:
#   - a run where one image fails and one tag moved: --json says exactly
#     that (statuses, old and new digest, error code, totals, exit status,
#     run id) and validates against docs/fetch-report.schema.json;
#   - the runs table agrees with the report (images_ok/failed, bytes);
#   - --lock lists every fetched ref pinned by digest, the failed one as a
#     comment, and airlock-export -f takes it as it is;
#   - neither file holds credentials (a run against the auth registry);
#   - a report is written even when the store is busy (exit 3);
#   - a registry's error text holding ESC sequences and a newline with a
#     forged result line reaches stdout, stderr, the lock file and the
#     report without a raw control byte and without the forged line.
. "$(dirname "$0")/lib.sh"
rig_up
need python3
python3 -c 'import jsonschema' 2>/dev/null ||
    fail "python3-jsonschema is not installed (scripts/install-deps.sh)"

EXPORT=$AL_BIN/airlock-export
SCHEMA=$AL_SRC/docs/fetch-report.schema.json
validate() { python3 "$AL_SRC/tests/infra/validate-report.py" "$SCHEMA" "$@" || fail "$* does not validate against the schema"; }

work=$(tmpdir report)
store=$work/store
reg_args=(--registry "$AL_REG_PLAIN" --insecure-registry "$AL_REG_PLAIN")

# A private repository whose tag moves (amd-only's image, then arm-only's).
mv_repo=library/report-moving-$$-$RANDOM
mv_name=docker.io/$mv_repo:1
missing_name=docker.io/library/not-there-$$:1
push_as() { # SRC-REF OUT.json
    python3 "$AL_SRC/tests/infra/seed-images.py" --registry "$AL_REG_PLAIN" --as "$1=$mv_repo:1" \
        --out "$2" >/dev/null 2>&1 || fail "could not push $1 as $mv_repo:1"
}
push_as library/amd-only:1 "$work/mv1.json"
old=$(jq -r '.images[].digest' "$work/mv1.json")
bb=docker.io/library/busybox:1.36
bb_digest=$(seed_digest library/busybox:1.36)

# 1. First run: both images new ------------------------------------------------
run_fetch "$work/run1" --store "$store" "${reg_args[@]}" "$mv_repo:1" busybox:1.36 \
    --json "$work/run1.json"
expect_rc 0 "$work/run1" "first fetch"
validate "$work/run1.json"
assert_eq '"ok" "ok"' "$(jq -c '.images[].status' "$work/run1.json" | tr '\n' ' ' | sed 's/ $//')" "first run statuses"
assert_eq 0 "$(jq .exit_status "$work/run1.json")" "first run exit_status"

# 2. The tag moves; an image that does not exist -------------------------------
push_as library/arm-only:1 "$work/mv2.json"
new=$(jq -r '.images[].digest' "$work/mv2.json")
[ "$new" != "$old" ] || fail "test setup: the tag did not move"

run_fetch "$work/run2" --store "$store" "${reg_args[@]}" "$mv_repo:1" busybox:1.36 \
    "library/not-there-$$:1" --json "$work/run2.json" --lock "$work/run2.lock"
expect_rc 1 "$work/run2" "fetch with a moved tag and a missing image"
R=$work/run2.json
validate "$R"
q() { jq -r "$@" "$R"; }
img() { q --arg r "$1" ".images[] | select(.ref == \$r) | $2"; }

assert_eq 3 "$(q '.images | length')" "images in the report"
assert_eq "$mv_name $bb $missing_name" "$(q '[.images[].ref] | join(" ")')" "refs, in list order"
assert_eq moved "$(img "$mv_name" .status)" "status of the moved tag"
assert_eq "$old" "$(img "$mv_name" .old_digest)" "old_digest of the moved tag"
assert_eq "$new" "$(img "$mv_name" .digest)" "digest of the moved tag"
assert_eq linux/arm64 "$(img "$mv_name" '.platforms | join(",")')" "platforms of the moved tag"
assert_eq null "$(img "$mv_name" .error)" "error of the moved tag"
[ "$(img "$mv_name" .blobs.new)" -gt 0 ] || fail "the moved tag downloaded no blob"
assert_eq unchanged "$(img "$bb" .status)" "status of busybox"
assert_eq "$bb_digest" "$(img "$bb" .digest)" "digest of busybox"
assert_eq null "$(img "$bb" .old_digest)" "old_digest of an unchanged tag"
assert_eq 0 "$(img "$bb" .blobs.new)" "new blobs of busybox"
assert_eq 0 "$(img "$bb" .bytes)" "bytes of busybox"
assert_eq "$(seed_blobs library/busybox:1.36 | sort -u | wc -l | tr -d ' ')" "$(img "$bb" .blobs.present)" "present blobs of busybox"
assert_eq failed "$(img "$missing_name" .status)" "status of the missing image"
assert_eq NOT_FOUND "$(img "$missing_name" .error.code)" "error code of the missing image"
img "$missing_name" .error.message | matches 404 || fail "the error message does not say 404"
assert_eq null "$(img "$missing_name" .digest)" "digest of the missing image"

assert_eq '3 2 1 1 1' "$(q '.totals | "\(.images) \(.ok) \(.unchanged) \(.moved) \(.failed)"')" "totals"
assert_eq "$(q '[.images[].bytes] | add')" "$(q .totals.bytes)" "total bytes = sum of the images'"
assert_eq "$(q '[.images[].blobs.new] | add')" "$(q .totals.new_blobs)" "total new blobs"
assert_eq 1 "$(q .exit_status)" "exit_status"
assert_eq null "$(q .error)" "run error"
assert_eq "$(realpath "$store")" "$(realpath "$(q .store)")" "store"
# The run row agrees.
run_id=$(q .run_id)
assert_eq "$(db "$store" 'SELECT max(id) FROM runs')" "$run_id" "run_id"
assert_eq "2|1|$(q .totals.bytes)" "$(db "$store" "SELECT images_ok || '|' || images_failed || '|' || bytes FROM runs WHERE id = $run_id")" "runs row"
db "$store" "SELECT finished_at >= started_at FROM runs WHERE id = $run_id" | matches -x 1 ||
    fail "runs row not finished"
# The summary line says the same.
assert_grep "^3 images: 2 ok, 1 failed; $(q .totals.new_blobs) new blob" "$work/run2.out" "summary line"
# Progress and logs never reach stdout, nor does a terminal control
# sequence (the real ESC byte; grep -E would read "\x1b" as the text x1b).
assert_no_grep 'fetched blob' "$work/run2.out" "stdout"
if grep -q $'\x1b' "$work/run2.out"; then show "$work/run2.out"; fail "stdout holds an ESC byte"; fi

# 3. The lock file -----------------------------------------------------------
L=$work/run2.lock
assert_eq "$mv_name@$new
$bb@$bb_digest" "$(grep -v '^#' "$L")" "lock file refs"
assert_grep "^# FAILED $missing_name: " "$L" "lock file comment for the failed image"
assert_grep '^# written [0-9]{4}-[0-9]{2}-[0-9]{2}T' "$L" "lock file date"
# Both sides read it as a list: export pinned by digest ...
"$EXPORT" --store "$store" -f "$L" --platform linux/arm64 -o "$work/locked.tar" \
    >"$work/export.out" 2>"$work/export.err" || { show "$work/export.err"; fail "airlock-export -f LOCK failed"; }
tar xOf "$work/locked.tar" manifest.json >"$work/manifest.json"
assert_eq "$mv_name $bb" "$(jq -r '[.[].RepoTags[]] | join(" ")' "$work/manifest.json")" "RepoTags of the locked export"
# ... and fetch, which finds everything in place.
run_fetch "$work/relock" --store "$store" "${reg_args[@]}" -f "$L"
expect_rc 0 "$work/relock" "fetch -f LOCK"

# 4. No credentials in either file ----------------------------------------------
auth_store=$work/store-auth
RC=0
"$FETCH" --store "$auth_store" --registry "$AL_REG_AUTH" --insecure-registry "$AL_REG_AUTH" \
    --username "$AL_AUTH_USER" --password-stdin busybox:1.36 \
    --json "$work/auth.json" --lock "$work/auth.lock" <"$AL_AUTH_PASS_FILE" \
    >"$work/auth.out" 2>"$work/auth.err" || RC=$?
expect_rc 0 "$work/auth" "fetch from the auth registry"
validate "$work/auth.json"
assert_no_canary "$work/auth.json" "$work/auth.lock" "$auth_store"

# 5. A busy store still gets a report -----------------------------------------
exec 9>"$store/lock"
flock -n 9 || fail "could not take the store lock for the test"
run_fetch "$work/busy" --store "$store" "${reg_args[@]}" busybox:1.36 --json "$work/busy.json"
exec 9>&-
expect_rc 3 "$work/busy" "fetch into a locked store"
validate "$work/busy.json"
assert_eq "3 BUSY null 0" "$(jq -r '"\(.exit_status) \(.error.code) \(.run_id) \(.images | length)"' "$work/busy.json")" "report of a busy store"

# 6. Atomic: no temp file left next to the report --------------------------------
leftover=$(find "$work" -maxdepth 1 -name '*.tmp.*' | sed -n 1p)
[ -z "$leftover" ] || fail "temp file left behind: $leftover"

# 7. Text from a registry reaches no output raw ---------------------------------
# Issue 15, item 4: before al_sanitize (docs/STYLE.md, "Output") registry
# text was printed raw, and this part failed. A fake registry answers 404
# with ESC sequences in its error message and a newline followed by a
# forged result line.
python3 - "$work/evil-routes.json" <<'PY'
import json, sys
msg = ("\x1b[2J\x1b[31mmanifest gone\x1b[0m\n"
       "ok        docker.io/library/forged:1  sha256:" + "0" * 64 + "  linux/amd64  1 new blob, 1 B")
body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": msg}]})
json.dump({"/v2/evil/esc/manifests/1": {"status": 404, "headers": {"Content-Type": "application/json"},
                                        "body": body}}, open(sys.argv[1], "w"))
PY
fake_registry_up "$work/evil" "$work/evil-routes.json"
evil=127.0.0.1:$FAKE_PORT
run_fetch "$work/esc" --store "$work/esc.store" "${reg_args[@]}" --insecure-registry "$evil" \
    "$evil/evil/esc:1" busybox:1.36 --json "$work/esc.json" --lock "$work/esc.lock"
expect_rc 1 "$work/esc" "fetch with a hostile registry error"
assert_grep "^FAILED +$evil/evil/esc:1 .*HTTP 404" "$work/esc.out" "the hostile registry's image"
validate "$work/esc.json"
# No raw control byte (newline and tab aside) in any of them, nor in the
# report's messages once decoded (what jq -r prints).
jq -r '.images[].error.message // empty' "$work/esc.json" >"$work/esc.messages"
for f in esc.out esc.err esc.lock esc.json esc.messages; do
    if tr -d '\n\t' <"$work/$f" | LC_ALL=C grep -q '[[:cntrl:]]'; then
        show "$work/$f"
        fail "$f holds a raw control byte from the registry's error text"
    fi
done
# No forged line: stdout has the two images and the summary, the lock file
# only comments and busybox's pinned ref.
assert_eq 3 "$(wc -l <"$work/esc.out" | tr -d ' ')" "lines on stdout (two images, the summary)"
assert_eq "" "$(line_for "$work/esc.out" docker.io/library/forged:1)" "a result line for the forged image"
assert_eq "$bb@$bb_digest" "$(grep -v '^#' "$work/esc.lock")" "lock file lines that are not comments"

note "ok"
