#!/usr/bin/env bash
# Install the Debian packages a task needs, only those missing. Usage: deps.sh build|test|run...
set -euo pipefail

build_pkgs=(build-essential autoconf automake libtool pkg-config
            libsystemd-dev libcurl4-openssl-dev libjansson-dev libarchive-dev
            libmbedtls-dev libcmocka-dev libseccomp-dev libssl-dev libzstd-dev
            libmicrohttpd-dev libsqlite3-dev libgnutls28-dev
            libpq-dev # orbit-controller's PostgreSQL store (docs/storage.md)
            musl-tools) # musl-gcc: the static sandbox init starts 3x faster than with glibc
test_pkgs=(jq python3 procps systemd grub-common libubootenv-tool openssl tar gzip curl sqlite3 zstd
           prometheus chromium chromium-driver # promtool; the dashboard test's headless browser
           postgresql # test-store-postgresql.sh: a real server, started by the test
           qemu-utils) # test-log-writes.sh: qemu-io writes the log QEMU's blklogwrites keeps
packaging_pkgs=(debhelper dpkg-dev debootstrap lintian fakeroot)
fuzz_pkgs=(clang libclang-rt-dev)
run_pkgs=(procps openssl jq curl util-linux)
bench_pkgs=(bubblewrap bc rauc squashfs-tools dbus openssl stress-ng)
valgrind_pkgs=(valgrind)
# scripts/board.sh: the virtual board (QEMU TCG, OVMF + GRUB, an image made without mounts)
board_pkgs=(qemu-system-x86 qemu-utils ovmf grub-efi-amd64-bin grub-common mtools dosfstools
            fdisk e2fsprogs debootstrap python3 debhelper dpkg-dev fakeroot jq) # jq: test-rollout
# board.sh --arch aarch64: U-Boot, its environment tools, a chroot of arm64 binaries run by
# qemu-user (the arm64 cross toolchain and libraries: scripts/cross-test.sh),
# and what building the board's own U-Boot from Debian's source needs (board.sh: uboot_build)
board_aarch64_pkgs=(qemu-system-arm u-boot-qemu u-boot-tools libubootenv-tool qemu-user-static
                    binfmt-support bc bison flex libssl-dev libgnutls28-dev uuid-dev
                    device-tree-compiler python3-setuptools)

want=()
for what in "$@"; do
        case "$what" in
        build) want+=("${build_pkgs[@]}") ;;
        test) want+=("${test_pkgs[@]}") ;;
        run) want+=("${run_pkgs[@]}") ;;
        bench) want+=("${bench_pkgs[@]}") ;;
        packaging) want+=("${packaging_pkgs[@]}") ;;
        fuzz) want+=("${fuzz_pkgs[@]}") ;;
        valgrind) want+=("${valgrind_pkgs[@]}") ;;
        board) want+=("${board_pkgs[@]}") ;;
        board-aarch64) want+=("${board_pkgs[@]}" "${board_aarch64_pkgs[@]}") ;;
        *) echo "deps.sh: unknown set '$what' (build, test, run, bench, packaging, fuzz, valgrind, board, board-aarch64)" >&2; exit 2 ;;
        esac
done

missing=()
for p in "${want[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
                missing+=("$p")
        fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "deps.sh: need root or sudo to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
