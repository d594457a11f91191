#!/usr/bin/env bash
# The test scripts run under `set -o pipefail`. A reader that stops early
# (`grep -q`, `head -N`) makes its producer's next write die of SIGPIPE, and
# pipefail reports that as the pipeline's failure: a check that passes or
# fails by scheduling (CI once failed test_bundle_volumes this way). Tests
# use `matches` (tests/integration/lib.sh) and `sed -n 1p` instead.
# Allowed: comments, and a pipe into `head` that only shapes a message on
# the way to failing anyway (`fail "...`, `|| true`, `>&2`).
set -euo pipefail
src=${AL_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
cd "$src"
scripts=(tests/integration/*.sh)
code() { grep -nE "$1" "${scripts[@]}" | grep -vE '^[^:]+:[0-9]+:[[:space:]]*#' || true; }
quiet=$(code '(^|[^|])\|[[:space:]]*grep[[:space:]]+(-[A-Za-z]*q|--quiet)')
heads=$(code '(^|[^|])\|[[:space:]]*head[[:space:]]+-(n[[:space:]]*)?[0-9]+[[:space:]]*($|[|)])' |
    grep -vE '\|\| true|>&2|fail "[^"]*\$\(' || true)
bad=$(printf '%s\n%s' "$quiet" "$heads" | sed '/^$/d')
if [ -n "$bad" ]; then
    echo "$bad" >&2
    echo "an early-stopping reader in a pipe under pipefail (use matches / sed -n 1p; see $0)" >&2
    exit 1
fi
echo "${#scripts[@]} test scripts: no early-stopping reader in a pipe" >&2
