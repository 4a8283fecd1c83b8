#!/usr/bin/env bash
# Run every libFuzzer harness for a bounded time on a scratch copy of its seed corpus.
# Usage: run.sh BUILD_DIR [SECONDS] [HARNESS...]
#   BUILD_DIR  where `make fuzz` put the fuzz-* binaries (e.g. _build/plain/tests/fuzz)
#   SECONDS    per harness, default $FUZZ_SECONDS or 10
#   HARNESS    names (fuzz-config ...) to run only those; default all in BUILD_DIR
# Exits 1 if any harness crashed, leaked, timed out or broke a check; each finding is
# kept as BUILD_DIR/finding-HARNESS-KIND-HASH and printed with its path and a hexdump.
# The committed corpus is never written to.
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${1:?usage: run.sh BUILD_DIR [SECONDS] [HARNESS...]}
seconds=${2:-${FUZZ_SECONDS:-10}}
shift $(($# >= 2 ? 2 : 1))
build=$(cd "$build" && pwd) || exit 2

if [ $# -gt 0 ]; then
        harnesses=("$@")
else
        harnesses=()
        for f in "$build"/fuzz-*; do
                [ -x "$f" ] && [ -f "$f" ] && harnesses+=("$(basename "$f")")
        done
fi
if [ ${#harnesses[@]} -eq 0 ]; then
        echo "run.sh: no fuzz-* harness in $build: run 'make fuzz' first" >&2
        exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/orbit-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT

# A smaller quarantine keeps long runs under -rss_limit_mb.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1:quarantine_size_mb=64}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for h in "${harnesses[@]}"; do
        bin=$build/$h
        if [ ! -x "$bin" ]; then
                echo "run.sh: $bin missing" >&2
                failed+=("$h")
                continue
        fi
        # The harness grows its own copy; the seeds in git stay as they are.
        work=$scratch/$h
        mkdir -p "$work/corpus" "$work/artifacts"
        if [ -d "$here/corpus/$h" ]; then
                cp -R "$here/corpus/$h/." "$work/corpus/"
        fi
        echo "==> $h: ${seconds}s, $(find "$work/corpus" -type f | wc -l) seeds"
        rc=0
        (cd "$work" && "$bin" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=1024 \
                -max_len=65536 -print_final_stats=0 \
                -artifact_prefix="$work/artifacts/" "$work/corpus") >"$work/log" 2>&1 || rc=$?
        tail -n 1 "$work/log" | sed "s/^/    /"
        if [ $rc -ne 0 ]; then
                failed+=("$h")
                echo "==> $h: FAILED (exit $rc)"
                # The report: sanitizer or check output, without the progress lines.
                grep -v '^#[0-9]' "$work/log" | grep -v '^INFO:' | head -n 60 | sed "s/^/    /"
                for a in "$work/artifacts"/*; do
                        [ -f "$a" ] || continue
                        cp "$a" "$build/finding-$h-$(basename "$a")"
                        a=$build/finding-$h-$(basename "$a")
                        echo "    input: $a ($(wc -c <"$a") bytes)"
                        od -A x -t x1z -N 256 "$a" | head -n 16 | sed "s/^/      /"
                done
        fi
done

if [ ${#failed[@]} -gt 0 ]; then
        echo "fuzz: ${#failed[@]} of ${#harnesses[@]} harnesses found problems: ${failed[*]}"
        exit 1
fi
echo "fuzz: ${#harnesses[@]} harnesses ran ${seconds}s each, no findings"
