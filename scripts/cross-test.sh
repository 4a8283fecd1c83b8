#!/usr/bin/env bash
# The node side built for arm64 (most flight boards) with Debian's cross toolchain and
# multiarch libraries, and its unit tests run under qemu-user (issue #20 item 3's first
# step: the code built and run on ARM on every CI run). What needs an arm64 kernel
# (seccomp filters, namespaces, cgroups) skips under the emulator, saying so: the aarch64
# virtual board runs that part.
#
# usage: scripts/cross-test.sh [BUILD_DIR]   (default _build/arm64)
# Installs what it needs with apt-get (root): the arm64 architecture is added to dpkg.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
dir=${1:-$top/_build/arm64}
host=aarch64-linux-gnu
jobs=$(nproc 2>/dev/null || echo 2)

if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "cross-test: adding the arm64 architecture to dpkg"
        dpkg --add-architecture arm64
        apt-get update -qq
fi
# the agent's libraries for arm64, as configure asks for them (no controller: node images)
pkgs=(crossbuild-essential-arm64 qemu-user-static
      libsystemd-dev:arm64 libcurl4-openssl-dev:arm64 libjansson-dev:arm64 libarchive-dev:arm64
      libmbedtls-dev:arm64 libcmocka-dev:arm64 libseccomp-dev:arm64 libssl-dev:arm64 libzstd-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        echo "cross-test: installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

[ -x configure ] && [ configure -nt configure.ac ] && [ Makefile.in -nt Makefile.am ] || ./autogen.sh
mkdir -p "$dir"
cd "$dir"
echo "==> arm64: configure --host=$host --disable-controller and build in $dir"
PKG_CONFIG_LIBDIR=/usr/lib/$host/pkgconfig:/usr/share/pkgconfig \
        "$top/configure" -q --host=$host --disable-controller
make -s -j"$jobs"
for b in orbit-agent orbitctl orbit-bundle orbit-sandbox-init; do
        file -b "$b" | grep -q "ARM aarch64" || { echo "cross-test: $b is not an aarch64 binary: $(file -b "$b")" >&2; exit 1; }
done
echo "    $(file -b orbit-agent | cut -d, -f1-2); orbit-sandbox-init: $(file -b orbit-sandbox-init | grep -o 'static[-a-z]* linked')"

# The unit tests, each under qemu-aarch64 (named, not through binfmt_misc: nothing of the
# host's kernel state changes); the loader and libraries come from the multiarch paths
# (/lib/ld-linux-aarch64.so.1), not QEMU_LD_PREFIX, under which test-install spun for minutes.
unit_tests=$(make -s -f Makefile -f - print-unit-tests <<'EOF'
print-unit-tests:
	@echo $(unit_tests)
EOF
)
echo "==> arm64: $(wc -w <<<"$unit_tests") unit test programs under $(qemu-aarch64-static --version | head -1)"
rc=0
make -s -j"$jobs" check TESTS="$unit_tests" LOG_COMPILER=qemu-aarch64-static \
        2>&1 | tee check.out | grep -E '^(FAIL|ERROR|XPASS|# )' || true
grep -q '^# FAIL: *0$' check.out && grep -q '^# ERROR: *0$' check.out || rc=1
# (a log without a skip is no failure: grep's status 1 must not end the script, pipefail)
skipped=$(for log in $(find tests -name '*.log'); do grep '^\[  SKIPPED \] test_' "$log" | sort -u || true; done | wc -l)
echo "    test cases skipped under the emulator (they need an arm64 kernel): $skipped"
if [ $rc -ne 0 ]; then
        for log in $(find tests -name '*.log'); do
                grep -q '^:test-result: \(FAIL\|ERROR\)' "${log%.log}.trs" 2>/dev/null && { echo "---- $log"; tail -n 40 "$log"; }
        done
fi
exit $rc
