#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: dependencies, build, make check,
# the same suite under ASan+UBSan, and make distcheck.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh build test

[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || ./autogen.sh

passed=0
failed=0
count_results() { # add up automake's per-run summary
        local log=$1
        local p f e x
        p=$(sed -n 's/^# PASS: *//p' "$log" | tail -1)
        f=$(sed -n 's/^# FAIL: *//p' "$log" | tail -1)
        e=$(sed -n 's/^# ERROR: *//p' "$log" | tail -1)
        x=$(sed -n 's/^# XPASS: *//p' "$log" | tail -1)
        passed=$((passed + ${p:-0}))
        failed=$((failed + ${f:-0} + ${e:-0} + ${x:-0}))
}

run_suite() { # name, build dir, configure flags...
        local name=$1 dir=$2
        shift 2
        echo "==> $name: configure and build in $dir"
        mkdir -p "$dir"
        (cd "$dir" && "$top/configure" -q "$@" && make -s -j"$jobs")
        echo "==> $name: make check"
        local rc=0
        (cd "$dir" && make -s -j"$jobs" check 2>&1 | tee "$dir/check.out") || rc=$?
        count_results "$dir/check.out"
        if [ $rc -ne 0 ]; then
                echo "==> $name: FAILED; logs:"
                for log in $(find "$dir/tests" -name '*.log'); do
                        if grep -q '^:test-result: \(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null; then
                                echo "---- $log"
                                tail -n 80 "$log"
                        fi
                done
                return 1
        fi
}

status=0
run_suite "plain build" "$top/_build/plain" || status=1
run_suite "sanitizer build (ASan+UBSan)" "$top/_build/asan" --enable-sanitizers || status=1

if [ $status -eq 0 ] && [ "${ORBIT_SKIP_DISTCHECK:-0}" != 1 ]; then
        echo "==> make distcheck"
        (cd "$top/_build/plain" && make -s distcheck >distcheck.out 2>&1) || {
                tail -n 60 "$top/_build/plain/distcheck.out"
                echo "==> make distcheck FAILED"
                status=1
        }
        [ $status -eq 0 ] && echo "==> make distcheck: ok"
fi

echo
echo "total: $passed passed, $failed failed"
exit $status
