#!/usr/bin/env bash
# Build the libFuzzer targets with clang and run each for a while.
#
#   scripts/fuzz.sh [--merge] [SECONDS] [TARGET...]
#
# SECONDS (default 60) is per target; TARGETs default to all of
# tests/fuzz/*_fuzzer.c (ref, reflist, manifest, config, challenge,
# docker_config, platform). Each target starts from its committed corpus
# tests/fuzz/corpus/TARGET/ (read only) and writes new inputs to a scratch
# directory, build-fuzz/fuzz-work/TARGET/new/; with --merge the inputs that
# add coverage are then merged into the committed corpus. Crash inputs go to
# build-fuzz/fuzz-work/TARGET/crash-*. Exits 1 when any target crashed (or
# broke an invariant), 2 on usage errors.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${AL_FUZZ_BUILD:-$ROOT/build-fuzz}
WORK=$BUILD/fuzz-work
FUZZ_DIR=$ROOT/tests/fuzz

usage() { echo "usage: $0 [--merge] [SECONDS] [TARGET...]" >&2; exit 2; }

merge=0
seconds=60
targets=()
for arg in "$@"; do
	case $arg in
	--merge) merge=1 ;;
	-h | --help) usage ;;
	-*) usage ;;
	*[!0-9]*) targets+=("$arg") ;;
	*) seconds=$arg ;;
	esac
done
if [ ${#targets[@]} -eq 0 ]; then
	for f in "$FUZZ_DIR"/*_fuzzer.c; do
		t=$(basename "$f" _fuzzer.c)
		targets+=("$t")
	done
fi
for t in "${targets[@]}"; do
	[ -f "$FUZZ_DIR/${t}_fuzzer.c" ] || { echo "fuzz.sh: no target $t" >&2; usage; }
done

command -v clang >/dev/null || { echo "fuzz.sh: clang is needed (apt-get install clang)" >&2; exit 2; }

CC=clang cmake -S "$ROOT" -B "$BUILD" -DAIRLOCK_FUZZ=ON -DAIRLOCK_SANITIZE=ON \
	-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]/%/_fuzzer}" >/dev/null

export ASAN_OPTIONS=${ASAN_OPTIONS:-halt_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

failed=()
summary=()
for t in "${targets[@]}"; do
	bin=$BUILD/tests/fuzz/${t}_fuzzer
	corpus=$FUZZ_DIR/corpus/$t
	dir=$WORK/$t
	mkdir -p "$dir/new" "$corpus"
	dict=()
	[ -f "$FUZZ_DIR/$t.dict" ] && dict=(-dict="$FUZZ_DIR/$t.dict")
	echo "fuzz.sh: $t for ${seconds}s (log: $dir/log)" >&2
	rc=0
	# The scratch dir comes first: libFuzzer writes new inputs to its first
	# corpus directory, so the committed one is only read.
	"$bin" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$dir/" "${dict[@]}" "$dir/new" "$corpus" >"$dir/log" 2>&1 || rc=$?
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -n1)
	cov=$(grep -Eo 'cov: [0-9]+' "$dir/log" | tail -n1 | cut -d' ' -f2)
	if [ $rc -ne 0 ]; then
		failed+=("$t")
		summary+=("$(printf '%-14s FAILED (exit %d) execs=%s' "$t" "$rc" "${execs:-?}")")
		grep -E 'ERROR|invariant failed|runtime error|Test unit written' "$dir/log" | head -n 5 >&2 || true
		continue
	fi
	summary+=("$(printf '%-14s ok  execs=%-10s cov=%s' "$t" "${execs:-?}" "${cov:-?}")")
	if [ $merge -eq 1 ]; then
		"$bin" -merge=1 "${dict[@]}" "$corpus" "$dir/new" >>"$dir/log" 2>&1
		echo "fuzz.sh: $t: merged into $corpus ($(find "$corpus" -type f | wc -l) files)" >&2
	fi
done

printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
	echo "fuzz.sh: crashes in: ${failed[*]} (inputs under $WORK/<target>/)" >&2
	exit 1
fi
