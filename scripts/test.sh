#!/usr/bin/env bash
# The whole test suite from a fresh Debian 12 machine: dependencies, build, make check,
# the same suite under ASan+UBSan, and make distcheck.
# --long: also the virtual board (scripts/board.sh test, test-guest, test-powercut --lose-cache and test-rollout, QEMU without KVM:
# tens of minutes; docs/board.md has the figures), as root.
# --long-aarch64: --long, then the U-Boot board too (test, test-guest, test-powercut and
# test-rollout with --arch aarch64: its cold base alone is 15-45 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
long=0
boards=(x86_64)
for arg in "$@"; do
        case "$arg" in
        --long) long=1 ;;
        --long-aarch64) long=1 boards=(x86_64 aarch64) ;;
        *) echo "usage: scripts/test.sh [--long | --long-aarch64]" >&2; exit 2 ;;
        esac
done
# the aarch64 board takes its test helpers and U-Boot's toolchain from the cross build
if [ "${#boards[@]}" -gt 1 ] && [ "${ORBIT_SKIP_CROSS:-0}" = 1 ]; then
        echo "scripts/test.sh: --long-aarch64 needs the cross build that ORBIT_SKIP_CROSS=1 leaves out" >&2
        exit 2
fi
top=$(pwd)
jobs=$(nproc 2>/dev/null || echo 2)

scripts/deps.sh build test

[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || ./autogen.sh

passed=0
failed=0
count_results() { # add up the checks each test program reports (cmocka, or "N passed, M failed")
        local dir=$1 log p f
        for log in $(find "$dir/tests" -name '*.log'); do
                p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p; s/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | tail -1)
                f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p; s/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
                passed=$((passed + ${p:-0}))
                failed=$((failed + ${f:-0}))
                # a program that crashed before its summary still counts as a failure
                if grep -q '^:test-result: \(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null && [ "${f:-0}" = 0 ]; then
                        failed=$((failed + 1))
                fi
        done
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
        count_results "$dir"
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

# The daemon's integration tests again with the agent under valgrind memcheck: no invalid
# access, no uninitialised use, no definite leak (sandboxes are left out: valgrind cannot
# create their namespaces; ASan covers them).
if [ $status -eq 0 ] && [ "${ORBIT_SKIP_VALGRIND:-0}" != 1 ]; then
        scripts/deps.sh valgrind
        echo "==> valgrind: the daemon's integration tests under memcheck"
        for t in test-daemon.sh test-link.sh test-link-hostile.sh test-update.sh test-update-disk.sh; do
                [ -e "tests/integration/$t" ] || continue
                log="$top/_build/plain/valgrind-$t.log"
                rc=0
                (cd "$top/_build/plain" && ORBIT_VALGRIND=1 top_builddir="$top/_build/plain" top_srcdir="$top" \
                        bash "$top/tests/integration/$t" >"$log" 2>&1) || rc=$?
                p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$log" | tail -1)
                f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$log" | tail -1)
                passed=$((passed + ${p:-0}))
                failed=$((failed + ${f:-0}))
                echo "    $t: ${p:-0} passed, ${f:-0} failed"
                if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
                        grep -E '^(not ok|Bail out|#)' "$log" | head -40
                        echo "==> valgrind: $t FAILED (exit $rc)"
                        status=1
                        [ "${f:-0}" = 0 ] && failed=$((failed + 1))
                fi
        done
fi

# Every parser of outside input under libFuzzer for a bounded time (docs/fuzzing.md).
if [ $status -eq 0 ] && [ "${ORBIT_SKIP_FUZZ:-0}" != 1 ]; then
        scripts/deps.sh fuzz
        echo "==> fuzz: make fuzz, then each harness for ${FUZZ_SECONDS:-10}s"
        if (cd "$top/_build/plain" && make -s -j"$jobs" fuzz && make -s fuzz-run FUZZ_SECONDS="${FUZZ_SECONDS:-10}"); then
                echo "==> fuzz: no finding"
        else
                echo "==> fuzz FAILED"
                status=1
        fi
fi

# The release tarball: it builds and its unit tests pass out of tree (make distcheck), and
# it holds every file of the source tree that a build or a test reads. The integration
# tests already passed twice above on this very tree; running them a third time from the
# tarball took a quarter of the suite's time, so instead every tracked file must be in it
# (what only git and Debian's packaging use is left out on purpose).
if [ $status -eq 0 ] && [ "${ORBIT_SKIP_DISTCHECK:-0}" != 1 ]; then
        echo "==> make distcheck (unit tests and test-layers from the tarball)"
        # shellcheck disable=SC2016
        (cd "$top/_build/plain" && make -s distcheck TESTS='$(built_unit_tests) tests/integration/test-layers.sh' \
                >distcheck.out 2>&1) || {
                tail -n 60 "$top/_build/plain/distcheck.out"
                echo "==> make distcheck FAILED"
                status=1
        }
        if [ $status -eq 0 ] && [ -d "$top/.git" ] && command -v git >/dev/null 2>&1; then
                tarball=$(ls -t "$top"/_build/plain/orbit-agent-*.tar.gz | head -1)
                missing=$(comm -23 \
                        <(git -C "$top" ls-files | grep -vE '^\.git|/\.gitignore$|^debian/|^m4/\.keep$' | sort) \
                        <(tar tzf "$tarball" | sed 's|^[^/]*/||' | sort))
                if [ -n "$missing" ]; then
                        echo "==> the tarball lacks tracked files (add them to EXTRA_DIST or a _SOURCES):"
                        echo "$missing" | sed 's/^/    /'
                        status=1
                fi
        fi
        [ $status -eq 0 ] && echo "==> make distcheck: ok, and the tarball holds every tracked file"
fi

# The node side built for arm64 with Debian's cross toolchain, its unit tests under
# qemu-user (about a minute once the packages are in; scripts/cross-test.sh, docs/board.md).
if [ "${ORBIT_SKIP_CROSS:-0}" != 1 ]; then
        echo "==> arm64: cross build and unit tests under qemu-user"
        rc=0
        scripts/cross-test.sh "$top/_build/arm64" >"$top/_build/cross.out" 2>&1 || rc=$?
        grep -E '^(==>|    )' "$top/_build/cross.out" || true
        count_results "$top/_build/arm64"
        if [ $rc -ne 0 ]; then
                tail -n 60 "$top/_build/cross.out"
                echo "==> arm64 FAILED (exit $rc)"
                status=1
        fi
fi

# Packaging: the .debs installed into a debootstrap chroot, and the image-builder recipes.
if [ "${ORBIT_SKIP_PACKAGING:-0}" != 1 ]; then
        scripts/deps.sh packaging
        for t in "tests/packaging/test-deb.sh --nocheck" "tests/packaging/test-recipes.sh"; do
                echo "==> $t"
                rc=0
                # shellcheck disable=SC2086
                bash $t >"$top/_build/packaging.out" 2>&1 || rc=$?
                tail -n 3 "$top/_build/packaging.out"
                p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$top/_build/packaging.out" | tail -1)
                f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$top/_build/packaging.out" | tail -1)
                passed=$((passed + ${p:-0}))
                failed=$((failed + ${f:-0}))
                if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
                        grep -E '^(not ok|Bail out)' "$top/_build/packaging.out" | head -20
                        echo "==> $t FAILED (exit $rc)"
                        status=1
                        [ "${f:-0}" = 0 ] && failed=$((failed + 1))
                fi
        done
fi

# The virtual board: slow (QEMU TCG), so only with --long. It takes the plain build's
# test helpers for the tests it runs inside the guest.
if [ $long -eq 1 ]; then
        scripts/deps.sh board
        [ "${#boards[@]}" = 1 ] || scripts/deps.sh board-aarch64
        # test-powercut with --lose-cache: every cut also loses what the disk had not
        # flushed, which holds all the plain sequence checks and more (docs/board.md);
        # aarch64 has no --lose-cache (its sweep reads slots with GRUB's drivers), and its
        # test-guest takes the cross build's helpers (_build/arm64, made above)
        cmds=()
        for arch in "${boards[@]}"; do
                if [ "$arch" = x86_64 ]; then
                        cmds+=(test test-guest "test-powercut --lose-cache" test-rollout)
                else
                        cmds+=("test --arch aarch64" "test-guest --arch aarch64" "test-powercut --arch aarch64"
                               "test-rollout --arch aarch64")
                fi
        done
        for cmd in "${cmds[@]}"; do
                sub=${cmd%% *}
                case "$cmd" in *aarch64*) sub=aarch64-$sub ;; esac
                bdir=$top/_build/plain
                case "$cmd" in *"test-guest --arch aarch64"*) bdir=$top/_build/arm64 ;; esac
                echo "==> scripts/board.sh $cmd"
                rc=0
                # shellcheck disable=SC2086 # the subcommand and its options
                ORBIT_BOARD_BUILDDIR="$bdir" scripts/board.sh $cmd >"$top/_build/board-$sub.out" 2>&1 || rc=$?
                grep -E '^# .*min' "$top/_build/board-$sub.out" || true
                p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$top/_build/board-$sub.out" | tail -1)
                f=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$top/_build/board-$sub.out" | tail -1)
                passed=$((passed + ${p:-0}))
                failed=$((failed + ${f:-0}))
                echo "    ${p:-0} passed, ${f:-0} failed"
                if [ $rc -ne 0 ]; then
                        grep -E '^(not ok|board:)' "$top/_build/board-$sub.out" | head -40
                        echo "==> scripts/board.sh $cmd FAILED (exit $rc)"
                        status=1
                        [ "${f:-0}" = 0 ] && failed=$((failed + 1))
                fi
        done
fi

echo
echo "total: $passed passed, $failed failed"
exit $status
