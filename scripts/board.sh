#!/usr/bin/env bash
# A virtual board (issue #20): a bootable disk image from Debian packages with the
# project's own .deb, booted under QEMU (OVMF + GRUB on x86_64, U-Boot on aarch64). docs/board.md.
#
# Usage: scripts/board.sh build|boot|test|test-guest|test-rollout|test-powercut [options]
#   build             build (or find in the cache) the disk image; prints its path
#   boot              build, then boot a copy of it with the serial console on this terminal
#   test              build, boot it headless, check what the guest reports (slot, agent)
#   test-guest        build, boot once with a tests disk: systemd checks of the unit and
#                     the runtime's integration tests, run inside the guest (slow)
#   test-rollout      build, boot with a user-mode NIC shaped by netem in the guest and a
#                     controller on the host: a rollout into the other slot, a real reboot,
#                     the commit; then an image whose kernel panics, the bootloader's
#                     fallback (GRUB, or U-Boot with --arch aarch64), the rollback reported
#   test-powercut     build, then power cuts (QEMU killed) during an install, inside a save
#                     of its progress, during the bootloader environment's write arming the
#                     new slot and the one committing it (grubenv, or U-Boot's with --arch
#                     aarch64); each time the board boots a good slot and the update goes
#                     on to the commit. With --random N: N cuts at seeded random moments.
#                     With --lose-cache (x86_64): the disk's volatile write cache loses at each cut
#                     what the guest wrote after its last flush (QEMU's blklogwrites log,
#                     replayed up to that flush: tests/integration/log-writes-replay.c)
# Options:
#   --debs DIR        take orbit-agent_*.deb and orbitctl_*.deb from DIR (default: build them
#                     with dpkg-buildpackage -b, nocheck, from a copy of this tree)
#   --host-debs DIR   test-rollout and test-powercut --arch aarch64: the ground's
#                     orbit-controller_*.deb and orbit-bundle_*.deb for this host (default:
#                     built as --debs is)
#   --arch ARCH       x86_64 (OVMF + GRUB, the default) or aarch64 (U-Boot, its environment in
#                     pflash; the .debs cross-built; every command)
#   --work DIR        where boot/test keep their disk copy and logs (default: a temp dir)
#   --suites LIST     test-guest: "systemd runtime unit esp mtd" (default; aarch64:
#                     "systemd runtime unit cfi": its kernel has no mtdram), or some of them
#   --random N        test-powercut: N cuts, each a seeded random delay (0-120 s,
#                     ORBIT_BOARD_CUT_WINDOW) after the boot's report and the agent's first
#                     line about the update, instead of the failpoints' cuts
#   --seed S          the seed of --random's delays (default: drawn, and printed)
#   --lose-cache      test-powercut: each cut also loses the writes the disk acknowledged
#                     after its last flush (ORBIT_BOARD_CACHE_TAIL: none, the default, or
#                     random:SEED, each such write kept or lost by a seeded draw)
# Environment: ORBIT_BOARD_CACHE (default ${XDG_CACHE_HOME:-~/.cache}/orbit-board),
# ORBIT_DEB_MIRROR (default: the mirror of this machine's apt sources), ORBIT_BOARD_TIMEOUT
# (seconds to wait for the guest's report, default 1800, test-guest 3600: QEMU without KVM is
# slow), ORBIT_BOARD_BUILDDIR (test-guest: the build of this tree with the test helpers,
# default _build/plain), ORBIT_BOARD_NICE (the niceness of QEMU and the builds, default 15),
# ORBIT_BOARD_NIC (test-rollout and test-powercut: tap, the default, or user; qemu_nic),
# ORBIT_BOARD_NETEM (their link's netem parameters).
# Needs root (debootstrap, chroot), qemu-system-x86, ovmf, grub-efi-amd64-bin, mtools,
# dosfstools, fdisk, e2fsprogs, debootstrap: scripts/deps.sh board. aarch64 also:
# qemu-system-arm, u-boot-qemu, u-boot-tools, libubootenv-tool, qemu-user-static,
# binfmt-support, and the arm64 cross toolchain and libraries of scripts/cross-test.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/.." && pwd)
self_hash=$(sha256sum "$0" | cut -c1-16)
CACHE=${ORBIT_BOARD_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/orbit-board}
TIMEOUT=${ORBIT_BOARD_TIMEOUT:-1800}
NICE=(nice -n "${ORBIT_BOARD_NICE:-15}") # adds to the caller's niceness (docs/board.md)

log() { printf 'board: %s\n' "$*" >&2; }
die() { printf 'board: %s\n' "$*" >&2; exit 1; }
# Minutes (one decimal) since $1 (a $SECONDS value).
mins() { awk -v s=$((SECONDS - $1)) 'BEGIN { printf "%.1f", s / 60 }'; }

# ---- the base: debootstrap minbase + kernel + systemd, cached as a tarball ------------
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
# Kept small: QEMU without KVM pays for every unit and every module at boot.
base_pkgs=(systemd systemd-sysv udev kmod linux-image-amd64 initramfs-tools iproute2 procps
           jq python3) # the runtime tests run in the guest (board.sh test-runtime): their workloads are python3
# aarch64: the same with the arm64 kernel (every package's maintainer scripts run under
# qemu-user while the base is made, several times slower).
base_pkgs_aarch64=(systemd systemd-sysv udev kmod linux-image-arm64 initramfs-tools iproute2 procps jq python3)
set_base_pkgs() { [ "$1" = aarch64 ] && base_pkgs=("${base_pkgs_aarch64[@]}"); return 0; }

. "$top_srcdir/scripts/apt-mirror.sh" # host_mirror

base_tarball() { # prints the path of the cached base, building it when missing
        local arch=$1 key tarball stage mirror rc=0
        key=$(printf '%s\n' base-1 "$suite" "$arch" "${base_pkgs[@]}" | sha256sum | cut -c1-16)
        tarball=$CACHE/base-$suite-$arch-$key.tar
        if [ -f "$tarball" ]; then
                echo "$tarball"
                return 0
        fi
        mirror=${ORBIT_DEB_MIRROR:-$(host_mirror "$suite")}
        [ -n "$mirror" ] || die "no Debian mirror for $suite in this machine's apt sources (set ORBIT_DEB_MIRROR)"
        stage=$CACHE/tmp-base-$$
        rm -rf --one-file-system "$stage"
        mkdir -p "$stage"
        local t=$SECONDS blog=$CACHE/base-$arch.log
        [ "$arch" = x86_64 ] && blog=$CACHE/base.log
        log "debootstrap --variant=minbase $suite (+ ${base_pkgs[*]}); log: $blog"
        if [ "$arch" = "$(uname -m)" ]; then
                "${NICE[@]}" debootstrap --variant=minbase --arch="$(deb_arch "$arch")" \
                        --include="$(IFS=,; echo "${base_pkgs[*]}")" "$suite" "$stage" "$mirror" >"$blog" 2>&1 || rc=$?
        else
                # Another architecture: the packages unpacked here, their maintainer scripts
                # run in the chroot under qemu-user (binfmt enabled for that step only).
                # Until the image step writes its own, the initrd holds only listed modules
                # (none): a full one built under qemu-user costs minutes per kernel hook.
                "${NICE[@]}" debootstrap --foreign --variant=minbase --arch="$(deb_arch "$arch")" \
                        --include="$(IFS=,; echo "${base_pkgs[*]}")" "$suite" "$stage" "$mirror" >"$blog" 2>&1 || rc=$?
                if [ "$rc" -eq 0 ]; then
                        mkdir -p "$stage/etc/initramfs-tools/conf.d"
                        echo MODULES=list >"$stage/etc/initramfs-tools/conf.d/orbit-board"
                        with_binfmt "$arch" "${NICE[@]}" chroot "$stage" /debootstrap/debootstrap --second-stage >>"$blog" 2>&1 || rc=$?
                fi
        fi
        if [ "$rc" -ne 0 ]; then
                tail -n 20 "$blog" >&2
                umount_under "$stage"
                die "debootstrap failed (log: $blog)"
        fi
        umount_under "$stage"
        tar -C "$stage" --numeric-owner -cf "$tarball.tmp" . && mv -f "$tarball.tmp" "$tarball"
        find "$CACHE" -maxdepth 1 -name "base-$suite-$arch-*.tar" ! -name "${tarball##*/}" -delete
        rm -rf --one-file-system "$stage"
        log "base built in $(mins $t) min: $tarball"
        echo "$tarball"
}

deb_arch() { case "$1" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; *) die "unknown arch $1" ;; esac; }

# Run "$@" with the kernel running $1's binaries through qemu-user-static (binfmt_misc),
# for a chroot of another architecture; the entry is disabled again afterwards (and at
# exit, should this script be interrupted): this machine keeps it off otherwise.
BINFMT_ON=""
binfmt_off() { [ -z "$BINFMT_ON" ] || update-binfmts --disable "$BINFMT_ON" >/dev/null 2>&1 || true; BINFMT_ON=""; }
trap binfmt_off EXIT
with_binfmt() {
        local arch=$1 rc=0 entry
        shift
        [ "$arch" = "$(uname -m)" ] && { "$@"; return; }
        entry=qemu-$arch
        command -v update-binfmts >/dev/null && [ -x "/usr/bin/qemu-$arch-static" ] ||
                die "running $arch binaries needs qemu-user-static and binfmt-support"
        if update-binfmts --display "$entry" | grep -q "$entry (enabled)"; then
                "$@" # enabled by someone else: left as found
                return
        fi
        update-binfmts --enable "$entry" >/dev/null || die "update-binfmts --enable $entry failed"
        BINFMT_ON=$entry
        "$@" || rc=$?
        binfmt_off
        return $rc
}

umount_under() { # whatever a chroot step left mounted below $1, deepest first
        local m
        for m in $(awk -v r="$1" 'index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r); do
                umount "$m" 2>/dev/null || umount -l "$m"
        done
}

# ---- the project's .debs -------------------------------------------------------------
find_debs() { # sets AGENT_DEB and CTL_DEB, building them when --debs was not given
        local dir=$1 darch prefix=debs- dpkg_args=(-b) pc_env=()
        darch=$(deb_arch "$ARCH")
        if [ "$darch" != "$(dpkg --print-architecture)" ]; then
                # Cross-built with Debian's cross toolchain and multiarch :arm64 libraries
                # (scripts/cross-test.sh installs them); a node image needs no controller.
                # pkg-config reads the target's .pc files (no <triplet>-pkg-config here:
                # the build machine's would put its own include directory first).
                prefix=debs-$darch-
                # shellcheck disable=SC2054 # one option, its profiles comma-separated
                dpkg_args=(-b -a "$darch" -Pcross,nocheck,pkg.orbit-agent.nocontroller)
                pc_env=("PKG_CONFIG_LIBDIR=/usr/lib/$ARCH-linux-gnu/pkgconfig:/usr/share/pkgconfig")
        fi
        if [ -z "$dir" ]; then
                dir=$CACHE/$prefix$(git -C "$top_srcdir" ls-files -co --exclude-standard -z |
                        (cd "$top_srcdir" && xargs -0 sha256sum 2>/dev/null) | sha256sum | cut -c1-16)
                if ! ls "$dir"/orbit-agent_*_"$darch".deb >/dev/null 2>&1; then
                        command -v dpkg-buildpackage >/dev/null || die "dpkg-buildpackage missing: scripts/deps.sh packaging"
                        local t=$SECONDS src=$dir/src/orbit-agent
                        rm -rf "$dir" && mkdir -p "$src"
                        (cd "$top_srcdir" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) | tar -C "$src" -xf -
                        log "dpkg-buildpackage ${dpkg_args[*]} (nocheck) from a copy of this tree; log: $dir/build.log"
                        (cd "$src" && env "${pc_env[@]}" DEB_BUILD_OPTIONS="nocheck parallel=2 ${DEB_BUILD_OPTIONS:-}" \
                                "${NICE[@]}" dpkg-buildpackage -us -uc "${dpkg_args[@]}") >"$dir/build.log" 2>&1 ||
                                { tail -n 20 "$dir/build.log" >&2; die "dpkg-buildpackage failed (log: $dir/build.log)"; }
                        mv "$dir"/src/*.deb "$dir"/ && rm -rf "$dir/src"
                        # Older .debs of this architecture (x86_64's are debs-<key>).
                        if [ "$prefix" = debs- ]; then
                                find "$CACHE" -maxdepth 1 -name 'debs-*' ! -name 'debs-*-*' ! -name "${dir##*/}" -exec rm -rf {} +
                        else
                                find "$CACHE" -maxdepth 1 -name "$prefix*" ! -name "${dir##*/}" -exec rm -rf {} +
                        fi
                        log "debs built in $(mins $t) min"
                fi
        fi
        AGENT_DEB=$(ls "$dir"/orbit-agent_*_"$darch".deb 2>/dev/null | tail -1)
        CTL_DEB=$(ls "$dir"/orbitctl_*_"$darch".deb 2>/dev/null | tail -1)
        [ -f "$AGENT_DEB" ] && [ -f "$CTL_DEB" ] || die "no orbit-agent_*.deb and orbitctl_*.deb in $dir"
}

# ---- the image -----------------------------------------------------------------------
# GPT, 1 MiB aligned. Partition labels are what the kernel command line, fstab and the
# agent's config name; GRUB finds the slots by number on the disk it booted from.
ESP_MIB=64 ROOTFS_MIB=1024 DATA_MIB=256

# GRUB as one EFI binary with every module it needs built in: the ESP holds no module
# directory. The prefix /grub is on the partition GRUB was loaded from (the ESP), so
# normal reads /grub/grub.cfg and load_env/save_env use /grub/grubenv there.
GRUB_MODULES=(part_gpt fat ext2 normal linux configfile loadenv test echo regexp search
              search_fs_uuid search_label halt reboot serial terminal efi_gop all_video)

write_grub_cfg() { # the boot counting script of docs/bootloader.md, slots by partition number
        cat <<'GRUB'
# orbit board: A/B selection with boot counting (docs/bootloader.md, docs/board.md).
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=0
load_env ORBIT_ORDER ORBIT_A_OK ORBIT_A_TRIES ORBIT_B_OK ORBIT_B_TRIES
if [ -z "$ORBIT_ORDER" ]; then
        # Never initialised: the factory image in A.
        set ORBIT_ORDER="A B"
        set ORBIT_A_OK=1
fi
set orbit_slot=
for s in $ORBIT_ORDER; do
        if [ "$s" = A ]; then
                set ok="$ORBIT_A_OK"
                set tries="$ORBIT_A_TRIES"
        else
                set ok="$ORBIT_B_OK"
                set tries="$ORBIT_B_TRIES"
        fi
        if [ "$ok" = 1 ]; then
                set orbit_slot="$s"
                break
        fi
        # No arithmetic in GRUB: count down in literal steps.
        set left=
        if [ "$tries" = 9 ]; then set left=8
        elif [ "$tries" = 8 ]; then set left=7
        elif [ "$tries" = 7 ]; then set left=6
        elif [ "$tries" = 6 ]; then set left=5
        elif [ "$tries" = 5 ]; then set left=4
        elif [ "$tries" = 4 ]; then set left=3
        elif [ "$tries" = 3 ]; then set left=2
        elif [ "$tries" = 2 ]; then set left=1
        elif [ "$tries" = 1 ]; then set left=0
        fi
        if [ -n "$left" ]; then
                if [ "$s" = A ]; then
                        set ORBIT_A_TRIES="$left"
                else
                        set ORBIT_B_TRIES="$left"
                fi
                save_env ORBIT_A_TRIES ORBIT_B_TRIES
                set orbit_slot="$s"
                break
        fi
done
if [ -z "$orbit_slot" ]; then
        # Nothing bootable (both slots abandoned): boot the primary anyway, so the
        # agent can report; it finds no bootable slot in its state.
        for s in $ORBIT_ORDER; do
                set orbit_slot="$s"
                break
        done
fi
# The slots are partitions 2 (A) and 3 (B) of the disk GRUB booted from.
regexp --set=1:orbit_disk '^([^,]+),' "$root"
if [ "$orbit_slot" = B ]; then
        set orbit_part=gpt3
        set orbit_root=PARTLABEL=rootfs_b
else
        set orbit_slot=A
        set orbit_part=gpt2
        set orbit_root=PARTLABEL=rootfs_a
fi
echo "orbit: booting slot $orbit_slot from ($orbit_disk,$orbit_part)"
menuentry "orbit slot $orbit_slot" {
        linux ($orbit_disk,$orbit_part)/vmlinuz root=$orbit_root rw rootwait orbit.slot=$orbit_slot console=ttyS0,115200 net.ifnames=0 systemd.show_status=1 panic=10
        initrd ($orbit_disk,$orbit_part)/initrd.img
}
GRUB
}

# What runs in the guest after orbit-agent is up: one report on the virtio-serial port
# org.orbit.board.0 (the host reads it from a file; docs/board.md says why not the console).
write_report_script() {
        cat <<'SH'
#!/bin/sh
# orbit board: report this boot to the host over virtio-serial (scripts/board.sh).
port=/dev/virtio-ports/org.orbit.board.0
i=0
while [ ! -e "$port" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
[ -e "$port" ] || { echo "orbit-board-report: no $port" >&2; exit 1; }
# What the host asks of this boot comes as fw_cfg items (scripts/board.sh).
modprobe qemu_fw_cfg 2>/dev/null
fw_cfg() { cat "/sys/firmware/qemu_fw_cfg/by_name/opt/org.orbit.board/$1/raw" 2>/dev/null; }
{
        echo "BOARD begin"
        echo "BOARD cmdline $(cat /proc/cmdline)"
        echo "BOARD uptime $(cut -d' ' -f1 /proc/uptime)"
        echo "BOARD agent $(systemctl is-active orbit-agent.service)"
        echo "BOARD unit $(systemctl show -P Type orbit-agent.service) $(systemctl show -P WatchdogUSec orbit-agent.service)"
        echo "BOARD journal $(journalctl -b -u orbit-agent.service -o cat --no-pager 2>/dev/null | grep -c .)"
        echo "BOARD cgroupfs $(stat -fc %T /sys/fs/cgroup)"
        echo "BOARD root $(findmnt -no SOURCE /)"
        echo "BOARD data $(findmnt -no SOURCE /var/lib/orbit-agent)"
        # board.sh test-rollout: which image this is, and the link's shaping (netem).
        echo "BOARD version $(cat /etc/orbit-board-version 2>/dev/null || echo factory)"
        echo "BOARD qdisc $(tc qdisc show dev eth0 2>/dev/null | grep -m1 netem || echo none)"
        echo "BOARD qdisc-in $(tc qdisc show dev ifb0 2>/dev/null | grep -m1 netem || echo none)"
        # orbitctl with every capability (a root shell) and with the agent unit's
        # bounding set: the agent (no CAP_SYS_PTRACE) cannot look at the namespaces of
        # a peer holding capabilities it lacks (docs/board.md).
        if orbitctl ping >/dev/null 2>&1; then echo "BOARD rootshell-ping ok"
        else echo "BOARD rootshell-ping $(orbitctl ping 2>&1 | head -1)"; fi
        caps=$(systemctl show -P CapabilityBoundingSet orbit-agent.service | sed -e 's/cap_//g' -e 's/ /,+/g')
        ctl() { setpriv --inh-caps=-all --bounding-set="-all,+$caps" orbitctl "$@"; }
        ctl update status 2>&1 | sed 's/^/BOARD update | /'
        ctl status 2>&1 | sed 's/^/BOARD status | /'
        # board.sh test-guest: the tests disk (label orbit-tests) and the suites to run
        # from it (scripts/board-guest.sh, docs/board.md).
        suites=$(fw_cfg tests)
        if [ -n "$suites" ]; then
                mkdir -p /run/orbit-tests
                i=0
                while [ ! -e /dev/disk/by-label/orbit-tests ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
                if mount -o ro /dev/disk/by-label/orbit-tests /run/orbit-tests; then
                        /run/orbit-tests/src/scripts/board-guest.sh $suites 2>&1 | sed -u 's/^/BOARD t | /'
                        umount /run/orbit-tests
                else
                        echo "BOARD t | not ok - mount the tests disk (label orbit-tests)"
                fi
        fi
        # What the agent wrote before this report is on the disk when the host reads it
        # (test-rollout reads the ESP's grubenv after quitting QEMU): on the FAT ESP
        # what the agent leaves to writeback (a grubenv's mtime) is written then.
        sync
        echo "BOARD end"
} >"$port"
# board.sh test-powercut: a failpoint that holds the agent while a file exists is armed
# only now, so a held agent never stalls this report's orbitctl calls.
[ -s /run/orbit-board/failpoints.env ] && : >/run/orbit-board/stall
# Asked by the host (scripts/board.sh test): power off once reported. There is no
# logind (no D-Bus in the image), so nothing would act on an ACPI power button.
if [ "$(fw_cfg poweroff)" = 1 ]; then
        systemctl poweroff --no-block
fi
SH
}

# What a run gives the node (board.sh test-rollout): a small disk labelled orbit-config with
# the agent's config, its keys and the link's settings, applied at every boot of either
# slot before the agent starts. The image itself holds no run's keys or addresses.
write_config_script() {
        cat <<'SH'
#!/bin/sh
# orbit board: this run's agent config, keys and link (scripts/board.sh test-rollout).
# start: apply the config disk when the host gave one; stop: the link's byte counts.
port=/dev/virtio-ports/org.orbit.board.0
if [ "${1:-}" = stop ]; then
        [ -e /sys/class/net/eth0 ] && [ -e "$port" ] || exit 0
        echo "BOARD linkbytes $(cat /sys/class/net/eth0/statistics/rx_bytes) $(cat /sys/class/net/eth0/statistics/tx_bytes) $(cat /proc/sys/kernel/random/boot_id)" >"$port"
        exit 0
fi
modprobe qemu_fw_cfg 2>/dev/null
# board.sh test-powercut: this QEMU's failpoints, read by the agent's unit
# (EnvironmentFile= of the board's drop-in); none otherwise.
mkdir -p /run/orbit-board
cat /sys/firmware/qemu_fw_cfg/by_name/opt/org.orbit.board/failpoints/raw >/run/orbit-board/failpoints.env 2>/dev/null || :
[ "$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/org.orbit.board/config/raw 2>/dev/null)" = 1 ] || exit 0
i=0
while [ ! -e /dev/disk/by-label/orbit-config ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
mkdir -p /run/orbit-config
mount -o ro /dev/disk/by-label/orbit-config /run/orbit-config || exit 1
set -e
install -m 0644 /run/orbit-config/agent.json /etc/orbit-agent/agent.json
rm -rf /etc/orbit-agent/keys
cp -r /run/orbit-config/keys /etc/orbit-agent/keys
chmod 0600 /etc/orbit-agent/keys/link/node.key
. /run/orbit-config/net.env # ADDR GW NETEM
umount /run/orbit-config
i=0
while [ ! -e /sys/class/net/eth0 ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
ip link set eth0 up
ip addr add "$ADDR" dev eth0
ip route add default via "$GW"
# The kernel's netem on the guest's egress (sch_netem loads on demand), and on what it
# receives: eth0's ingress redirected to ifb0 (an egress there), netem on ifb0. So both
# directions are shaped as the issue gives the link: the download of a bundle too.
tc qdisc replace dev eth0 root netem $NETEM
modprobe ifb numifbs=1
ip link set ifb0 up
tc qdisc replace dev eth0 handle ffff: ingress
tc filter add dev eth0 parent ffff: protocol all matchall action mirred egress redirect dev ifb0
tc qdisc replace dev ifb0 root netem $NETEM
SH
}

# board.sh test-powercut: the agent's journal, as it is written, on a second port (the
# first is the report's; a virtio port takes one writer at a time), so the host sees a
# failpoint reached the moment it is.
write_events_script() {
        cat <<'SH'
#!/bin/sh
# orbit board: the agent's journal to the host (scripts/board.sh test-powercut).
port=/dev/virtio-ports/org.orbit.board.1
modprobe qemu_fw_cfg 2>/dev/null
[ "$(cat /sys/firmware/qemu_fw_cfg/by_name/opt/org.orbit.board/events/raw 2>/dev/null)" = 1 ] || exit 0
i=0
while [ ! -e "$port" ] && [ $i -lt 60 ]; do sleep 1; i=$((i + 1)); done
[ -e "$port" ] || exit 1
slot=$(tr ' ' '\n' </proc/cmdline | sed -n 's/^orbit.slot=//p')
{
        echo "EVENTS begin $slot $(cat /proc/sys/kernel/random/boot_id)"
        exec journalctl -b -f -n all -u orbit-agent.service -o short-monotonic --no-pager
} >"$port"
SH
}

# The bootloader environment as the guest's agent sees it (docs/board.md): x86_64's grubenv
# on the ESP; aarch64's U-Boot environment at the start of the second pflash bank, which
# this board also wires to a virtio disk (Debian's arm64 kernel has no CFI flash driver).
agent_bootloader() {
        case "$1" in
        x86_64) echo '{"kind": "grub", "path": "/boot/efi/grub/grubenv"}' ;;
        aarch64)
                if uboot_redundant; then
                        echo "{\"kind\": \"uboot\", \"path\": \"$UBOOT_ENV_MTD\", \"offset\": $((UBOOT_ENV_MTD_BASE)), \"path_redundant\": \"$UBOOT_ENV_MTD\", \"offset_redundant\": $((UBOOT_ENV_MTD_BASE + UBOOT_REDUND_OFFSET)), \"size\": $((UBOOT_ENV_SIZE)), \"flags\": \"boolean\"}"
                else
                        echo "{\"kind\": \"uboot\", \"path\": \"$UBOOT_ENV_DEV\", \"offset\": 0, \"size\": $((UBOOT_ENV_SIZE))}"
                fi
                ;;
        esac
}

agent_config() {
        cat <<JSON
{
  "config_version": 1,
  "node_id": null,
  "log_level": "info",
  "log_target": "auto",
  "update": {
    "enabled": true,
    "hardware": "orbit-board-$ARCH",
    "bootloader": $(agent_bootloader "$ARCH"),
    "rootfs": {"a": "/dev/disk/by-partlabel/rootfs_a", "b": "/dev/disk/by-partlabel/rootfs_b"},
    "boot_tries": 3,
    "reboot_command": ["/usr/bin/systemctl", "reboot"]
  }
}
JSON
}

# The rootfs tree: the base, the .debs (apt resolves their dependencies from the same
# archive), the board's config. Runs in a chroot (root).
make_rootfs() {
        local tree=$1 base=$2
        mkdir -p "$tree"
        tar -C "$tree" --numeric-owner -xpf "$base"
        cp "$AGENT_DEB" "$CTL_DEB" "$tree/tmp/"
        cp /etc/resolv.conf "$tree/etc/resolv.conf" 2>/dev/null || true
        mount -t proc proc "$tree/proc"
        local rc=0
        with_binfmt "$ARCH" "${NICE[@]}" chroot "$tree" sh -ec "export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq
                apt-get install -y -qq --no-install-recommends /tmp/${AGENT_DEB##*/} /tmp/${CTL_DEB##*/}
                apt-get clean
                rm -rf /var/lib/apt/lists/* /tmp/*.deb" >>"$LOG" 2>&1 || rc=$?
        [ $rc -eq 0 ] || { umount_under "$tree"; tail -n 20 "$LOG" >&2; die "installing the .debs failed (log: $LOG)"; }

        echo orbit-board >"$tree/etc/hostname"
        printf '127.0.1.1 orbit-board\n' >>"$tree/etc/hosts"
        : >"$tree/etc/resolv.conf"
        cat >"$tree/etc/fstab" <<'FSTAB'
# orbit board (scripts/board.sh): the root is the slot on the kernel command line.
PARTLABEL=esp   /boot/efi           vfat  umask=0077,nofail  0 2
PARTLABEL=data  /var/lib/orbit-agent ext4  defaults          0 2
FSTAB
        mkdir -p "$tree/boot/efi" "$tree/var/lib/orbit-agent"
        agent_config >"$tree/etc/orbit-agent/agent.json"
        with_binfmt "$ARCH" chroot "$tree" orbit-agent --check-config >>"$LOG" 2>&1 ||
                { umount_under "$tree"; tail -n 5 "$LOG" >&2; die "the board's agent.json is refused (log: $LOG)"; }
        mkdir -p "$tree/etc/systemd/system/orbit-agent.service.d"
        if [ "$ARCH" = x86_64 ]; then
                cat >"$tree/etc/systemd/system/orbit-agent.service.d/board.conf" <<'UNIT'
# orbit board: the grubenv is on the ESP (docs/board.md).
[Unit]
RequiresMountsFor=/boot/efi /var/lib/orbit-agent
[Service]
ReadWritePaths=/boot/efi/grub
# board.sh test-powercut's failpoints (orbit-board-config writes it from fw_cfg).
EnvironmentFile=-/run/orbit-board/failpoints.env
UNIT
        elif uboot_redundant; then
                # The CFI flash drivers (cfi_modules), loaded before the agent: its U-Boot
                # environment is on /dev/mtd0.
                local m
                mkdir -p "$tree/usr/lib/orbit-board/modules"
                cp "$(cfi_modules)"/*.ko "$tree/usr/lib/orbit-board/modules/" ||
                        { umount_under "$tree"; die "the CFI flash modules ($CACHE/cfi-modules.log)"; }
                {
                        echo '#!/bin/sh'
                        echo '# orbit board: the flash as MTD devices (board.sh cfi_modules; docs/board.md).'
                        echo 'set -e'
                        echo 'modprobe mtd'
                        echo 'modprobe chipreg'
                        for m in cfi_util gen_probe cfi_cmdset_0001 cfi_probe physmap; do
                                echo "grep -q '^$m ' /proc/modules || insmod /usr/lib/orbit-board/modules/$m.ko"
                        done
                        # devtmpfs makes the node when physmap registers the device: no
                        # udev to wait for (a settle timed out under load, and the agent,
                        # which requires this unit, did not start)
                        echo 'i=0'
                        echo "while [ ! -c $UBOOT_ENV_MTD ] && [ \$i -lt 600 ]; do sleep 0.2; i=\$((i + 1)); done"
                        echo "test -c $UBOOT_ENV_MTD"
                } >"$tree/usr/local/sbin/orbit-board-flash"
                chmod 755 "$tree/usr/local/sbin/orbit-board-flash"
                cat >"$tree/etc/systemd/system/orbit-board-flash.service" <<'UNIT'
[Unit]
Description=orbit board: the NOR flash as MTD devices (CFI drivers)
DefaultDependencies=no
After=systemd-udevd.service local-fs.target
Before=orbit-agent.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/orbit-board-flash
UNIT
                cat >"$tree/etc/systemd/system/orbit-agent.service.d/board.conf" <<'UNIT'
# orbit board: the U-Boot environment is in NOR flash, /dev/mtd0 (docs/board.md).
[Unit]
RequiresMountsFor=/var/lib/orbit-agent
Requires=orbit-board-flash.service
After=orbit-board-flash.service
[Service]
# board.sh test-powercut's failpoints (orbit-board-config writes it from fw_cfg).
EnvironmentFile=-/run/orbit-board/failpoints.env
UNIT
        else
                local envdev; envdev=$(systemd-escape -p --suffix=device "$UBOOT_ENV_DEV")
                cat >"$tree/etc/systemd/system/orbit-agent.service.d/board.conf" <<UNIT
# orbit board: the U-Boot environment is a device (docs/board.md).
[Unit]
RequiresMountsFor=/var/lib/orbit-agent
Wants=$envdev
After=$envdev
[Service]
# board.sh test-powercut's failpoints (orbit-board-config writes it from fw_cfg).
EnvironmentFile=-/run/orbit-board/failpoints.env
UNIT
        fi
        write_config_script >"$tree/usr/local/sbin/orbit-board-config"
        chmod 755 "$tree/usr/local/sbin/orbit-board-config"
        cat >"$tree/etc/systemd/system/orbit-board-config.service" <<'UNIT'
[Unit]
Description=orbit board: this run's agent config and link (board.sh test-rollout)
Before=orbit-agent.service
After=systemd-udevd.service
DefaultDependencies=no
After=local-fs.target
Before=shutdown.target
Conflicts=shutdown.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/orbit-board-config
# Stopped after the agent (the reverse of Before=): the link's byte counts of this boot.
ExecStop=/usr/local/sbin/orbit-board-config stop
[Install]
WantedBy=multi-user.target
UNIT
        ln -sf /etc/systemd/system/orbit-board-config.service \
                "$tree/etc/systemd/system/multi-user.target.wants/orbit-board-config.service"
        write_events_script >"$tree/usr/local/sbin/orbit-board-events"
        chmod 755 "$tree/usr/local/sbin/orbit-board-events"
        cat >"$tree/etc/systemd/system/orbit-board-events.service" <<'UNIT'
[Unit]
Description=orbit board: the agent's journal to the host (board.sh test-powercut)
After=systemd-journald.service orbit-board-config.service
Before=orbit-agent.service
ConditionPathExists=/sys/bus/virtio
[Service]
ExecStart=/usr/local/sbin/orbit-board-events
[Install]
WantedBy=multi-user.target
UNIT
        ln -sf /etc/systemd/system/orbit-board-events.service \
                "$tree/etc/systemd/system/multi-user.target.wants/orbit-board-events.service"
        write_report_script >"$tree/usr/local/sbin/orbit-board-report"
        chmod 755 "$tree/usr/local/sbin/orbit-board-report"
        cat >"$tree/etc/systemd/system/orbit-board-report.service" <<'UNIT'
[Unit]
Description=orbit board: report this boot to the host (virtio-serial)
After=orbit-agent.service
Wants=orbit-agent.service
ConditionPathExists=/sys/bus/virtio
[Service]
Type=oneshot
# The tests of board.sh test-guest run in here, for many minutes under TCG.
TimeoutStartSec=infinity
ExecStart=/usr/local/sbin/orbit-board-report
[Install]
WantedBy=multi-user.target
UNIT
        ln -sf /etc/systemd/system/orbit-board-report.service \
                "$tree/etc/systemd/system/multi-user.target.wants/orbit-board-report.service"
        # Login-less: no getty on the console (the host watches the console and the report).
        ln -sf /dev/null "$tree/etc/systemd/system/serial-getty@ttyS0.service"
        ln -sf /dev/null "$tree/etc/systemd/system/serial-getty@ttyAMA0.service"
        ln -sf /dev/null "$tree/etc/systemd/system/getty@tty1.service"
        ln -sf /dev/null "$tree/etc/systemd/system/getty-static.service"
        # A small initrd: the modules to find the root on virtio, not every driver.
        sed -i 's/^MODULES=.*/MODULES=list/' "$tree/etc/initramfs-tools/initramfs.conf"
        printf '%s\n' virtio_pci virtio_blk virtio_scsi ext4 >"$tree/etc/initramfs-tools/modules"
        with_binfmt "$ARCH" "${NICE[@]}" chroot "$tree" update-initramfs -u -k all >>"$LOG" 2>&1 || rc=$?
        umount_under "$tree"
        [ $rc -eq 0 ] || { tail -n 20 "$LOG" >&2; die "update-initramfs failed (log: $LOG)"; }
        # The bootloaders load /vmlinuz and /initrd.img of the slot (links Debian makes
        # unless its kernel-img.conf puts them in /boot).
        local f k
        for f in vmlinuz initrd.img; do
                [ -e "$tree/$f" ] && continue
                k=$(cd "$tree/boot" && ls -1 "$f"-* 2>/dev/null | sort -V | tail -1)
                [ -n "$k" ] && ln -sf "boot/$k" "$tree/$f"
        done
        [ -e "$tree/vmlinuz" ] && [ -e "$tree/initrd.img" ] || die "no /vmlinuz or /initrd.img in the rootfs"
        rm -f "$tree/etc/machine-id" && : >"$tree/etc/machine-id" # a fresh one per node at first boot
}

# Slot A's file system from the tree, B a copy with its own label and UUID, an empty data
# file system: made from directories, no mount, no loop device.
make_filesystems() { # $1: the rootfs tree, $2: the directory for the .img files
        local tree=$1 d=$2
        "${NICE[@]}" mkfs.ext4 -q -F -L rootfs_a -d "$tree" "$d/rootfs_a.img" "${ROOTFS_MIB}M" >>"$LOG" 2>&1
        cp --sparse=always "$d/rootfs_a.img" "$d/rootfs_b.img"
        tune2fs -L rootfs_b -U random "$d/rootfs_b.img" >>"$LOG" 2>&1
        mkdir -p "$d/empty"
        mkfs.ext4 -q -F -L data -d "$d/empty" "$d/data.img" "${DATA_MIB}M" >>"$LOG" 2>&1
        rm -f "$d/esp.img"
        mkfs.vfat -C -F 32 -n ORBIT_ESP "$d/esp.img" $((ESP_MIB * 1024)) >>"$LOG" 2>&1
}

# The GPT and each file system at its offset, into $1/disk.img (sparse).
assemble_disk() {
        local d=$1 total=$((1 + ESP_MIB + 2 * ROOTFS_MIB + DATA_MIB + 1))
        truncate -s "${total}M" "$d/disk.img"
        sfdisk -q "$d/disk.img" >>"$LOG" 2>&1 <<SFDISK
label: gpt
start=1MiB, size=${ESP_MIB}MiB, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name=esp
size=${ROOTFS_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=rootfs_a
size=${ROOTFS_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=rootfs_b
size=${DATA_MIB}MiB, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=data
SFDISK
        local off=1 p
        for p in esp:$ESP_MIB rootfs_a:$ROOTFS_MIB rootfs_b:$ROOTFS_MIB data:$DATA_MIB; do
                dd if="$d/${p%%:*}.img" of="$d/disk.img" bs=1M seek=$off conv=notrunc,sparse status=none
                off=$((off + ${p##*:}))
        done
}

# slot_filesystems ARCH OUT: the rootfs tree made from ARCH's base in OUT.tmp, and the
# file systems of the slots and the data partition made from it there (the tree removed).
slot_filesystems() {
        local base tree=$2.tmp/rootfs t=$SECONDS
        base=$(base_tarball "$1")
        make_rootfs "$tree" "$base"
        log "rootfs tree ready in $(mins $t) min ($(du -sm "$tree" | cut -f1) MiB)"
        make_filesystems "$tree" "$2.tmp"
        rm -rf --one-file-system "$tree"
}

build_x86_64() { # $1: output dir (the cache entry)
        local out=$1 d=$1.tmp
        slot_filesystems x86_64 "$out"

        # The ESP: GRUB, grub.cfg and a fresh grubenv (the agent initialises it at its
        # first start; until then grub.cfg boots A).
        grub-mkimage -O x86_64-efi -p /grub -o "$d/BOOTX64.EFI" "${GRUB_MODULES[@]}" >>"$LOG" 2>&1
        write_grub_cfg >"$d/grub.cfg"
        grub-script-check "$d/grub.cfg"
        grub-editenv "$d/grubenv" create
        mmd -i "$d/esp.img" ::/EFI ::/EFI/BOOT ::/grub
        mcopy -i "$d/esp.img" "$d/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
        mcopy -i "$d/esp.img" "$d/grub.cfg" "$d/grubenv" ::/grub/

        assemble_disk "$d"
        mv "$d/disk.img" "$d/grub.cfg" "$out/"
        printf 'esp_offset=%s\n' $((1024 * 1024)) >"$out/layout"
        rm -rf --one-file-system "$d"
}

# ---- aarch64: U-Boot ----------------------------------------------------------------
# The firmware (-bios: QEMU maps it in the first pflash bank), with the environment in the
# second bank: CONFIG_ENV_IS_IN_FLASH, CONFIG_ENV_ADDR=0x4000000 (the bank's start),
# CONFIG_ENV_SIZE=0x40000 (one flash sector). ORBIT_BOARD_UBOOT says which U-Boot:
#   redundant (the default): built here (uboot_build) from Debian's own u-boot source, the
#     release of u-boot-qemu, with qemu_arm64_defconfig and UBOOT_FRAGMENT: two copies of
#     the environment (the second in the next sector, a flags byte in each), and the flash
#     programmed a word at a time (QEMU 7.2's pflash mis-emulates U-Boot's buffer writes,
#     docs/board.md). What a flight board's U-Boot would be: its own build, redundant.
#   debian: u-boot-qemu's binary as packaged: one copy, no flags byte, buffer writes (the
#     boot script then finishes a failed saveenv by hand: orbit_save_failed).
UBOOT_KIND=${ORBIT_BOARD_UBOOT:-redundant}
UBOOT_BIN=${ORBIT_UBOOT_BIN:-}
UBOOT_ENV_SIZE=0x40000
UBOOT_REDUND_OFFSET=0x40000 # the second copy, in the bank (0x4040000 in U-Boot's map)
UBOOT_FRAGMENT='CONFIG_SYS_REDUNDAND_ENVIRONMENT=y
CONFIG_ENV_ADDR_REDUND=0x4040000
# CONFIG_SYS_FLASH_USE_BUFFER_WRITE is not set'

uboot_redundant() { [ "$UBOOT_KIND" = redundant ]; }

# The board's U-Boot (ORBIT_BOARD_UBOOT=redundant): Debian's source of this release's
# u-boot (apt-get source, from the mirror the base uses), qemu_arm64_defconfig plus
# UBOOT_FRAGMENT, cross-built; cached by the source's version and the fragment (the
# source is fetched once per cache: remove u-boot-source/ for a newer one). Sets UBOOT_BIN.
uboot_build() {
        if [ "$UBOOT_KIND" = debian ]; then
                UBOOT_BIN=${UBOOT_BIN:-/usr/lib/u-boot/qemu_arm64/u-boot.bin}
                return 0
        fi
        [ "$UBOOT_KIND" = redundant ] || die "ORBIT_BOARD_UBOOT: redundant or debian, not '$UBOOT_KIND'"
        [ -z "$UBOOT_BIN" ] || return 0
        local src=$CACHE/u-boot-source mirror dsc version key out t=$SECONDS
        if ! dsc=$(ls "$src"/u-boot_*.dsc 2>/dev/null | tail -1) || [ -z "$dsc" ]; then
                mirror=${ORBIT_DEB_MIRROR:-$(host_mirror "$suite")}
                [ -n "$mirror" ] || die "no Debian mirror for $suite in this machine's apt sources (set ORBIT_DEB_MIRROR)"
                log "fetching Debian's u-boot source ($suite) into $src"
                mkdir -p "$src/lists/partial"
                printf 'deb-src %s %s main\n' "$mirror" "$suite" >"$src/sources.list"
                mkdir -p "$src/cache/archives/partial"
                local apt=(apt-get -q -o "Dir::Etc::SourceList=$src/sources.list" -o Dir::Etc::SourceParts=/dev/null
                           -o "Dir::State::Lists=$src/lists" -o "Dir::Cache=$src/cache" -o APT::Sandbox::User=root)
                "${apt[@]}" update >"$src/fetch.log" 2>&1 &&
                        (cd "$src" && "${apt[@]}" source --download-only u-boot) >>"$src/fetch.log" 2>&1 ||
                        die "apt-get source u-boot failed ($src/fetch.log)"
                dsc=$(ls "$src"/u-boot_*.dsc | tail -1)
        fi
        version=$(sed -n 's/^Version: //p' "$dsc")
        key=$(printf '%s\n' uboot-1 "$version" "$UBOOT_FRAGMENT" | sha256sum | cut -c1-16)
        out=$CACHE/uboot-qemu_arm64-$key
        if [ ! -f "$out/u-boot.bin" ]; then
                command -v aarch64-linux-gnu-gcc >/dev/null || die "no aarch64-linux-gnu-gcc (scripts/cross-test.sh installs it)"
                local b=$out.tmp blog=$CACHE/uboot-build.log
                rm -rf --one-file-system "$b"
                mkdir -p "$b"
                log "building U-Boot $version for qemu_arm64 (two environment copies, word writes); log: $blog"
                dpkg-source -x "$dsc" "$b/src" >"$blog" 2>&1 || die "dpkg-source -x $dsc failed ($blog)"
                { cat "$b/src/configs/qemu_arm64_defconfig"; printf '%s\n' "$UBOOT_FRAGMENT"; } \
                        >"$b/src/configs/orbit_qemu_arm64_defconfig"
                (
                        cd "$b/src" &&
                                "${NICE[@]}" make CROSS_COMPILE=aarch64-linux-gnu- orbit_qemu_arm64_defconfig &&
                                "${NICE[@]}" make CROSS_COMPILE=aarch64-linux-gnu- -j"$(nproc)" u-boot.bin
                ) >>"$blog" 2>&1 || die "building U-Boot failed ($blog)"
                # the fragment took: kconfig drops what it cannot satisfy without a word
                grep -qx 'CONFIG_SYS_REDUNDAND_ENVIRONMENT=y' "$b/src/.config" &&
                        grep -qx 'CONFIG_ENV_ADDR_REDUND=0x4040000' "$b/src/.config" &&
                        ! grep -qx 'CONFIG_SYS_FLASH_USE_BUFFER_WRITE=y' "$b/src/.config" ||
                        die "U-Boot's .config lacks the fragment ($b/src/.config)"
                cp "$b/src/u-boot.bin" "$b/"
                cp "$b/src/.config" "$b/config"
                rm -rf --one-file-system "$b/src"
                mv "$b" "$out"
                log "U-Boot built in $(mins $t) min: $out"
        fi
        UBOOT_BIN=$out/u-boot.bin
}
FLASH_MIB=64 # a virt pflash bank
# The same bank as Linux sees it: a virtio disk over the same file, named by its serial.
# What the tests read beside the agent, and what the agent writes with ORBIT_BOARD_UBOOT=
# debian (one copy: refused on flash, where each write erases it first).
UBOOT_ENV_DEV=/dev/disk/by-id/virtio-orbit-env
# What the agent writes with the board's own U-Boot (two copies): the flash itself, both
# pflash banks as one MTD device through the CFI drivers (cfi_modules; the kernel has
# none of its own), loaded by orbit-board-flash.service before the agent. The environment
# is at the second bank's start.
UBOOT_ENV_MTD=/dev/mtd0
UBOOT_ENV_MTD_BASE=0x4000000

# The environment the image ships (mkenvimage): the boot counting script of
# docs/bootloader.md on virtio disks, and the state of a fresh board (A committed).
# orbit_slot, orbit_save, orbit_part and orbit_label are hush locals: saveenv stores the
# counted-down BOOT_*_LEFT and nothing of this boot's choice.
write_uboot_env() {
        cat <<'ENV'
bootdelay=0
baudrate=115200
bootcmd=run orbit_boot
kernel_addr_r=0x40400000
ramdisk_addr_r=0x44000000
bootargs_base=console=ttyAMA0,115200 rw rootwait net.ifnames=0 systemd.show_status=1 panic=10
BOOT_ORDER=A B
BOOT_A_OK=1
BOOT_A_LEFT=0
BOOT_B_OK=0
BOOT_B_LEFT=0
orbit_select=orbit_slot=; orbit_save=; for s in ${BOOT_ORDER}; do if test -z "${orbit_slot}"; then if test "${s}" = A; then if test "${BOOT_A_OK}" = 1; then orbit_slot=A; elif test "${BOOT_A_LEFT}" -gt 0; then setexpr BOOT_A_LEFT ${BOOT_A_LEFT} - 1; orbit_slot=A; orbit_save=1; fi; elif test "${s}" = B; then if test "${BOOT_B_OK}" = 1; then orbit_slot=B; elif test "${BOOT_B_LEFT}" -gt 0; then setexpr BOOT_B_LEFT ${BOOT_B_LEFT} - 1; orbit_slot=B; orbit_save=1; fi; fi; fi; done; if test -n "${orbit_save}"; then if saveenv; then echo orbit: try counted down; else run orbit_save_failed; fi; fi; if test -z "${orbit_slot}"; then orbit_slot=A; fi
orbit_boot=run orbit_select; if test "${orbit_slot}" = B; then orbit_part=3; orbit_label=rootfs_b; else orbit_slot=A; orbit_part=2; orbit_label=rootfs_a; fi; echo "orbit: booting slot ${orbit_slot} from virtio 0:${orbit_part}"; setenv bootargs "${bootargs_base} root=PARTLABEL=${orbit_label} orbit.slot=${orbit_slot}"; pci enum; virtio scan; load virtio 0:${orbit_part} ${kernel_addr_r} /vmlinuz; load virtio 0:${orbit_part} ${ramdisk_addr_r} /initrd.img; booti ${kernel_addr_r} ${ramdisk_addr_r}:${filesize} ${fdtcontroladdr}
ENV
        # What a failed saveenv leaves (ORBIT_BOARD_UBOOT): redundant, the other copy
        # whole (word writes: not expected to fail); debian, a half-written single copy,
        # which the script finishes by hand (buffer writes issued as QEMU 7.2 takes them)
        if uboot_redundant; then
                echo 'orbit_save_failed=echo orbit: saveenv failed: the other copy stays in use, and a committed slot boots, not a try left uncounted; orbit_slot=; for s in ${BOOT_ORDER}; do if test -z "${orbit_slot}"; then if test "${s}" = A; then if test "${BOOT_A_OK}" = 1; then orbit_slot=A; fi; elif test "${s}" = B; then if test "${BOOT_B_OK}" = 1; then orbit_slot=B; fi; fi; fi; done'
        else
                echo 'orbit_save_failed=echo orbit: saveenv failed: finishing its write by hand (QEMU pflash, docs/board.md); mw.w 4000000 50; mw.w 4000000 ff; setexpr orbit_a 4001000; while itest ${orbit_a} < 4040000; do mw.w ${orbit_a} e8; mw.w ${orbit_a} 3ff; mw.w ${orbit_a} 0 400; mw.w ${orbit_a} d0; mw.w ${orbit_a} ff; setexpr orbit_a ${orbit_a} + 800; done; setenv orbit_a; echo orbit: try counted down'
        fi
}

build_aarch64() { # $1: output dir (the cache entry)
        local out=$1 d=$1.tmp
        command -v mkenvimage >/dev/null || die "mkenvimage missing (u-boot-tools)"
        slot_filesystems aarch64 "$out"

        # The environment at the start of the second flash bank. Its text is kept under
        # 3 KiB: the debian U-Boot's orbit_save_failed relies on saveenv's first 4 KiB.
        # redundant: two copies, the second one sector on, both whole: the first active
        # (flags 1, mkenvimage -r), the second obsolete (the same bytes, flags 0).
        write_uboot_env >"$d/uboot-env.txt"
        [ "$(wc -c <"$d/uboot-env.txt")" -lt 3072 ] || die "the U-Boot environment is over 3 KiB"
        if uboot_redundant; then
                mkenvimage -r -s "$UBOOT_ENV_SIZE" -o "$d/env.bin" "$d/uboot-env.txt"
                { cat "$d/env.bin"; head -c 4 "$d/env.bin"; printf '\0'; tail -c +6 "$d/env.bin"; } >"$d/env2.bin"
                mv "$d/env2.bin" "$d/env.bin"
        else
                mkenvimage -s "$UBOOT_ENV_SIZE" -o "$d/env.bin" "$d/uboot-env.txt"
        fi
        truncate -s "${FLASH_MIB}M" "$d/env.bin"
        # The ESP partition stays (the same layout as x86_64), holding the environment's
        # source for a human; U-Boot reads nothing from it.
        mcopy -i "$d/esp.img" "$d/uboot-env.txt" ::/uboot-env.txt

        assemble_disk "$d"
        mv "$d/disk.img" "$d/uboot-env.txt" "$out/"
        mv "$d/env.bin" "$out/flash-env.img"
        printf 'esp_offset=%s\nenv_offset=0\nenv_size=%s\n' $((1024 * 1024)) "$UBOOT_ENV_SIZE" >"$out/layout"
        rm -rf --one-file-system "$d"
}

# The cache entry for this script, these .debs and the base's package list.
image_dir() {
        local arch=$1 key
        key=$(printf '%s\n' image-1 "$arch" "$suite" "${base_pkgs[@]}" "$self_hash" \
                "$([ "$arch" = aarch64 ] && echo "uboot-$UBOOT_KIND")" \
                "$(sha256sum "$AGENT_DEB" "$CTL_DEB" | cut -d' ' -f1)" | sha256sum | cut -c1-16)
        echo "$CACHE/image-$arch-$key"
}

cmd_build() {
        [ "$(id -u)" -eq 0 ] || die "build needs root (debootstrap, chroot)"
        local t=$SECONDS
        mkdir -p "$CACHE"
        # Boards run side by side share the cache: one builds an image at a time, and no
        # build removes an older image while a board copies it (prepare_node unlocks).
        exec {BUILD_LOCK}>"$CACHE/build-$ARCH.lock"
        flock "$BUILD_LOCK"
        find_debs "$DEBS"
        IMAGE=$(image_dir "$ARCH")
        if [ -f "$IMAGE/disk.img" ]; then
                log "cached: $IMAGE/disk.img ($(mins $t) min)"
                return 0
        fi
        rm -rf --one-file-system "$IMAGE" "$IMAGE.tmp"
        mkdir -p "$IMAGE" "$IMAGE.tmp"
        LOG=$IMAGE.log
        : >"$LOG"
        # A build stopped by a signal leaves no chroot mount behind (a later build's clean-up
        # of old images would stop at it); the caller's own traps come after the build.
        trap 'umount_under "$IMAGE.tmp"; exit 143' TERM INT HUP
        "build_$ARCH" "$IMAGE" || { rm -rf --one-file-system "$IMAGE"; die "build failed (log: $LOG)"; }
        trap - TERM INT HUP
        mv "$LOG" "$IMAGE/build.log"
        # Older images of this arch (another script, other .debs) are of no further use.
        find "$CACHE" -maxdepth 1 -name "image-$ARCH-*" ! -name "${IMAGE##*/}" -exec rm -rf --one-file-system {} +
        log "built $IMAGE/disk.img in $(mins $t) min"
}

# ---- boot ----------------------------------------------------------------------------
OVMF_CODE=${ORBIT_OVMF_CODE:-/usr/share/OVMF/OVMF_CODE_4M.fd}
OVMF_VARS=${ORBIT_OVMF_VARS:-/usr/share/OVMF/OVMF_VARS_4M.fd}

BUILD_LOCK="" # cmd_build's lock of the cache, held until prepare_node has its copies
# A node of its own: a copy of the cached disk and of the firmware's variable store in
# $WORK, so the cache stays as built and two boards never share a disk.
WORK_TEMP=0
# work_done T0: the run's minutes; the node's directory removed when this run made it (no
# --work) and every check passed, else kept for a look (a boot's disk is over a GiB).
work_done() {
        if [ "$WORK_TEMP" = 1 ] && [ "$FAILS" -eq 0 ]; then
                rm -rf "$WORK"
                echo "# total: $(mins "$1") min"
        else
                echo "# total: $(mins "$1") min; node kept in $WORK"
        fi
}

prepare_node() {
        if [ "$ARCH" = x86_64 ]; then
                [ -f "$OVMF_CODE" ] && [ -f "$OVMF_VARS" ] || die "no OVMF firmware ($OVMF_CODE): scripts/deps.sh board"
        else
                uboot_build
                [ -f "$UBOOT_BIN" ] || die "no U-Boot for qemu_arm64 ($UBOOT_BIN): u-boot-qemu"
        fi
        [ -n "$WORK" ] || { WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-board.XXXXXXXX"); WORK_TEMP=1; }
        mkdir -p "$WORK"
        [ -f "$WORK/disk.img" ] || cp --sparse=always "$IMAGE/disk.img" "$WORK/disk.img"
        if [ "$ARCH" = x86_64 ]; then
                [ -f "$WORK/OVMF_VARS.fd" ] || cp "$OVMF_VARS" "$WORK/OVMF_VARS.fd"
        else
                [ -f "$WORK/flash-env.img" ] || cp --sparse=always "$IMAGE/flash-env.img" "$WORK/flash-env.img"
        fi
        : >"$WORK/report"
        [ -z "$BUILD_LOCK" ] || flock -u "$BUILD_LOCK"
}

# QEMU without KVM (TCG): q35, 1 GiB, the disk on virtio-blk, no network yet (item 4 of
# issue #20 adds a user-mode link with netem in the guest), the virtio-serial report port.
# shellcheck disable=SC2054 # QEMU's own option syntax has commas
qemu_args() {
        local accel=tcg
        if [ "$ARCH" = aarch64 ]; then
                qemu_args_aarch64
                return
        fi
        [ -w /dev/kvm ] && accel=kvm
        QEMU=(qemu-system-x86_64 -machine q35 -accel "$accel" -m 1024 -smp 2
              -drive "if=pflash,format=raw,readonly=on,file=$OVMF_CODE"
              -drive "if=pflash,format=raw,file=$WORK/OVMF_VARS.fd")
        if [ "$LOSE_CACHE" = 1 ]; then
                # test-powercut --lose-cache: the guest writes into an overlay of disk.img
                # (which stays as it was at power on) through blklogwrites, which logs each
                # write and each flush as they complete; pc_cut replays the log into
                # disk.img up to the last flush. The guest sees a volatile write cache
                # (write-cache=on) and sends flushes; they reach blklogwrites (no-flush off
                # there) and no further (the host does not crash: no fsync of its files).
                local nf='"cache":{"no-flush":true}'
                QEMU+=(-blockdev "{\"driver\":\"qcow2\",\"node-name\":\"disk-ovl\",$nf,\"file\":{\"driver\":\"file\",\"filename\":\"$WORK/disk-ovl.qcow2\",$nf},\"backing\":{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$WORK/disk.img\"}}}"
                       -blockdev "{\"driver\":\"blklogwrites\",\"node-name\":\"disk-log\",\"file\":\"disk-ovl\",\"log\":{\"driver\":\"file\",\"filename\":\"$WORK/writes.log\",$nf},\"log-sector-size\":512}"
                       -device virtio-blk-pci,drive=disk-log,write-cache=on)
        else
                QEMU+=(-drive "file=$WORK/disk.img,format=raw,if=virtio,cache=unsafe")
        fi
        QEMU+=(-device virtio-serial-pci
              -chardev "file,id=report,path=$WORK/report,append=on"
              -device virtserialport,chardev=report,name=org.orbit.board.0)
        # test-rollout and test-powercut: the guest's reboots reboot it in place
        if [ "$NET" = 1 ]; then qemu_nic; else QEMU+=(-nic none -no-reboot); fi
}

# The NIC of test-rollout and test-powercut (ORBIT_BOARD_NIC):
# - tap (the default): a tap device in a network namespace of the board's own (board_net_up),
#   10.0.2.2/24 on the host's side, where the controller runs and listens. The ground's
#   TCP is then the host kernel's (what a ground station runs; the controller's
#   --tcp-congestion bbr), not QEMU's. No offloads (vnet_hdr=off): the host's kernel
#   segments, and netem in the guest sees frames of the link's MTU, as a radio's.
# - user: QEMU's user-mode network (slirp; the host's loopback is 10.0.2.2 in the guest):
#   what these tests ran before session 25. Its TCP towards the guest is QEMU's own, which
#   recovers from the link's losses slowly (docs/board.md, "The link's two ends").
qemu_nic() {
        # shellcheck disable=SC2054
        case "$BOARD_NIC" in
        tap) QEMU=(ip netns exec "$BOARD_NS" "${QEMU[@]}" -netdev tap,id=n0,ifname=tap0,script=no,downscript=no,vnet_hdr=off) ;;
        user) QEMU+=(-netdev user,id=n0,net=10.0.2.0/24) ;;
        esac
        # shellcheck disable=SC2054
        QEMU+=(-device virtio-net-pci,netdev=n0)
}

# The ground's network: the controller's options; with ORBIT_BOARD_NIC=tap, the board's
# network namespace, loopback and tap0 (10.0.2.2/24, the guest's gateway), the controller's
# and the operator CLI's (FLEET_NETNS); removed by rollout_cleanup.
board_net_up() {
        # A ground station's controller, not the host tests' (fleet-lib's --timeout 10):
        # the packaged idle timeout, which a send held up by the link's losses does not
        # reach (with 10 s, the backed-off retransmissions of a 3 s round trip cut the
        # bundle's ranges); and BBR, what a station sends with (docs/protocol.md), not a
        # loss-bound default. Both matter with the tap NIC: QEMU's user-mode network took
        # what the controller sent at once.
        FLEET_CONTROLLER_ARGS="--timeout 150 --tcp-congestion bbr"
        [ "$BOARD_NIC" = tap ] || return 0
        ip netns add "$BOARD_NS" || return 1
        BOARD_NS_MADE=1
        ip -n "$BOARD_NS" link set lo up &&
                ip -n "$BOARD_NS" tuntap add dev tap0 mode tap &&
                ip -n "$BOARD_NS" addr add 10.0.2.2/24 dev tap0 &&
                ip -n "$BOARD_NS" link set tap0 up || return 1
        FLEET_NETNS=$BOARD_NS FLEET_LISTEN=10.0.2.2
}

# aarch64 (TCG on any other host): virt with U-Boot as the firmware. The second pflash
# bank holds U-Boot's environment; the same file is a virtio disk (serial orbit-env) for
# Linux, whose Debian arm64 kernel has no CFI flash driver (docs/board.md). Both views
# open it without image locking: U-Boot writes it before Linux runs, and pflash reads
# the file once, at power on (every boot is a QEMU of its own: -no-reboot).
# shellcheck disable=SC2054
qemu_args_aarch64() {
        local accel=tcg cpu=cortex-a57
        [ "$(uname -m)" = aarch64 ] && [ -w /dev/kvm ] && { accel=kvm; cpu=host; }
        QEMU=(qemu-system-aarch64 -machine virt -accel "$accel" -cpu "$cpu" -m 1024 -smp 2
              -bios "$UBOOT_BIN"
              -drive "if=pflash,unit=1,format=raw,file=$WORK/flash-env.img,file.locking=off"
              -drive "if=none,id=disk,file=$WORK/disk.img,format=raw,cache=unsafe"
              -device virtio-blk-pci,drive=disk
              -drive "if=none,id=envflash,file=$WORK/flash-env.img,format=raw,file.locking=off"
              -device virtio-blk-pci,drive=envflash,serial=orbit-env
              -device virtio-serial-pci
              -chardev "file,id=report,path=$WORK/report,append=on"
              -device virtserialport,chardev=report,name=org.orbit.board.0
              -no-reboot)
        # test-rollout and test-powercut: the same NIC as x86_64's; the guest's reboots
        # still end its QEMU (board_power_loop powers it on again)
        if [ "$NET" = 1 ]; then qemu_nic; else QEMU+=(-nic none); fi
}

# aarch64's board never resets in place: U-Boot's pflash is read from its file once, at
# power on, so a reset would give U-Boot the environment of the power-on, not what the
# agent wrote since. Each reboot of the guest (the agent's, a panic's) ends its QEMU
# (-no-reboot), and this loop powers the board on again, until $WORK/power-off exists.
# TERM ends the QEMU that runs and the loop. Runs in the background (board_power_loop
# CMD... &); each power-on's end goes to $WORK/power.log.
board_power_loop() {
        local n=0 child="" rc t
        # jobs -p, not $child: TERM may come between the start and child=$!
        trap 'kill $(jobs -p) 2>/dev/null; wait; exit 0' TERM
        while [ ! -e "$WORK/power-off" ]; do
                n=$((n + 1)) t=$SECONDS rc=0
                "$@" &
                child=$!
                wait "$child" || rc=$?
                child=""
                echo "power-on $n: QEMU ended after $((SECONDS - t)) s (exit $rc)" >>"$WORK/power.log"
                # QEMU that cannot start (a bad argument, a missing file) ends at once:
                # no board boots in 10 s under TCG
                if [ $((SECONDS - t)) -lt 10 ] && [ ! -e "$WORK/power-off" ]; then
                        echo "power-on $n: QEMU ended within 10 s: the loop stops" >>"$WORK/power.log"
                        exit 1
                fi
        done
}

# The end of a run: the board told to quit (aarch64's loop first told to power on no more),
# up to a minute for QEMU to go; what still runs then (a power-on that began as the quit
# was sent) is ended with TERM (aarch64: the loop's trap ends its QEMU).
board_quit() {
        local q=$((SECONDS + 60))
        [ "$ARCH" = x86_64 ] || touch "$WORK/power-off"
        monitor quit
        while kill -0 "$QEMU_PID" 2>/dev/null && [ $SECONDS -lt $q ]; do sleep 1; done
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
        QEMU_PID=""
}

cmd_boot() {
        cmd_build
        prepare_node
        qemu_args
        log "booting $WORK/disk.img (serial console here; Ctrl-a x quits; report: $WORK/report)"
        "${NICE[@]}" "${QEMU[@]}" -nographic -serial mon:stdio
}

# The ESP's grubenv of the node's disk, read without mounting (mtools at the offset).
node_grubenv() {
        local out=$1
        mcopy -o -i "$WORK/disk.img@@1M" ::/grub/grubenv "$out"
}

RFILE="" # the report check_boot reads (default $WORK/report; test-rollout: one boot's part)
report_value() { sed -n "s/^BOARD $1 //p" "${RFILE:-$WORK/report}" | tr -d '\r' | head -1; }

# One boot, headless: wait for the report; the guest then powers off (quit after 5 min).
QEMU_EXTRA=() # more QEMU arguments for this boot (test-guest: the tests disk, fw_cfg)
boot_once() { # $1: a name for the logs
        local name=$1 t=$SECONDS pid
        : >"$WORK/report"
        "${NICE[@]}" "${QEMU[@]}" "${QEMU_EXTRA[@]}" -display none -serial "file:$WORK/console-$name.log" \
                -fw_cfg name=opt/org.orbit.board/poweroff,string=1 \
                -monitor "unix:$WORK/monitor.sock,server,nowait" &
        pid=$!
        local deadline=$((SECONDS + TIMEOUT))
        while ! grep -q '^BOARD end' "$WORK/report" 2>/dev/null; do
                if ! kill -0 "$pid" 2>/dev/null; then
                        log "QEMU exited before the report; console: $WORK/console-$name.log"
                        return 1
                fi
                if [ $SECONDS -ge $deadline ]; then
                        log "no report in ${TIMEOUT}s; console: $WORK/console-$name.log"
                        kill "$pid"; wait "$pid" 2>/dev/null
                        return 1
                fi
                sleep 2
        done
        BOOT_MIN=$(mins $t)
        cp "$WORK/report" "$WORK/report-$name"
        # The guest powers itself off after its report (fw_cfg above).
        deadline=$((SECONDS + 300))
        while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 2; done
        if kill -0 "$pid" 2>/dev/null; then
                log "no clean power-off in 300 s: quitting QEMU"
                monitor quit
                wait "$pid" 2>/dev/null
        fi
        wait "$pid" 2>/dev/null || true
        log "$name: report after $BOOT_MIN min, off after $(mins $t) min"
}

monitor() { # one command to the QEMU monitor of boot_once
        python3 - "$WORK/monitor.sock" "$*" <<'PY' >/dev/null 2>&1 || true
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall((sys.argv[2] + "\n").encode())
time.sleep(1)
s.close()
PY
}

# ---- test ----------------------------------------------------------------------------
FAILS=0 PASSES=0
ok() { printf 'ok - %s\n' "$*"; PASSES=$((PASSES + 1)); }
not_ok() { printf 'not ok - %s\n' "$*"; FAILS=$((FAILS + 1)); }
expect() { # name, got, want
        if [ "$2" = "$3" ]; then ok "$1 ($2)"; else not_ok "$1: got '$2', want '$3'"; fi
}

check_boot() { # $1: name, $2: the slot GRUB should have booted
        local name=$1 want=$2 cmdline slot booted
        cmdline=$(report_value cmdline)
        slot=$(printf '%s\n' "$cmdline" | tr ' ' '\n' | sed -n 's/^orbit.slot=//p')
        booted=$(sed -n 's/^BOARD update | Booted slot: *//p' "${RFILE:-$WORK/report}" | tr -d '\r')
        expect "$name: $BL_NAME put orbit.slot on the kernel command line" "$slot" "$want"
        expect "$name: orbit-agent active (Type=notify: READY=1 reached systemd)" "$(report_value agent)" active
        expect "$name: the agent's booted slot is the command line's" "$booted" "$want"
        expect "$name: the unit: Type, WatchdogSec" "$(report_value unit)" "notify 30s"
        local lines; lines=$(report_value journal)
        if [ "${lines:-0}" -gt 0 ] 2>/dev/null; then ok "$name: the agent's log in the journal ($lines lines)"
        else not_ok "$name: the agent's log in the journal: ${lines:-nothing}"; fi
        expect "$name: root on the slot's partition" "$(report_value root)" "/dev/vda$([ "$want" = A ] && echo 2 || echo 3)"
        expect "$name: agent state on the data partition" "$(report_value data)" /dev/vda4
        expect "$name: pure cgroup v2" "$(report_value cgroupfs)" cgroup2fs
        echo "# $name: orbitctl from a root shell (all capabilities): $(report_value rootshell-ping)"
}

BL_NAME=GRUB BL_KIND=grub BL_ENV=grubenv # BL_ENV: what the agent writes (test-powercut's words)
boot_line() { sed -n "s/^BOARD update | Boot ($BL_KIND): *//p" "${RFILE:-$WORK/report}" | tr -d '\r'; }
grubenv_value() { grub-editenv "$WORK/grubenv" list | sed -n "s/^$1=//p"; }
# What keeps a grubenv file from being whole (1024 bytes that grub-editenv reads), or
# nothing when it is.
grubenv_problem() { # FILE
        local size list
        size=$(stat -c %s "$1")
        if ! list=$(grub-editenv "$1" list 2>&1) || [ "$size" != 1024 ]; then
                echo "$size bytes, grub-editenv: $(printf '%s' "$list" | head -c 200)"
        fi
}

# The agent's own grub backend on the host: bootenv-tool (tests/integration), built with
# the agent's update/bootenv-grub.c.
find_bootenv_tool() {
        local c
        for c in "${ORBIT_BOOTENV_TOOL:-}" "$top_srcdir"/_build/*/tests/integration/bootenv-tool \
                "$top_srcdir"/tests/integration/bootenv-tool; do
                # runs here (_build/arm64's is a cross build)
                [ -n "$c" ] && [ -x "$c" ] && "$c" --help >/dev/null 2>&1 && { echo "$c"; return 0; }
        done
        return 1
}

# aarch64: U-Boot's environment in the node's flash file, read with U-Boot's own
# userspace reader (fw_printenv, libubootenv-tool) at the offset and size U-Boot uses.
uboot_env_list() {
        printf '%s 0x0 %s\n' "$WORK/flash-env.img" "$UBOOT_ENV_SIZE" >"$WORK/fw_env.config"
        if uboot_redundant; then
                printf '%s %s %s\n' "$WORK/flash-env.img" "$UBOOT_REDUND_OFFSET" "$UBOOT_ENV_SIZE" >>"$WORK/fw_env.config"
        fi
        fw_printenv -c "$WORK/fw_env.config" 2>&1
}
uboot_env_value() { uboot_env_list | sed -n "s/^$1=//p"; }
# redundant: the two copies' flags bytes, "F0/F1" (1 active, 0 obsolete)
uboot_flags() {
        echo "$(od -An -tu1 -j 4 -N 1 "$WORK/flash-env.img" | tr -d ' ')/$(od -An -tu1 -j $((UBOOT_REDUND_OFFSET + 4)) -N 1 "$WORK/flash-env.img" | tr -d ' ')"
}
# redundant: each copy's own CRC (over its variables, after the CRC and the flags byte):
# "good/good", "bad/good", ...
# A single copy (ORBIT_BOARD_UBOOT=debian): "good" or "bad", its CRC over all after it.
uboot_copies_whole() {
        python3 - "$WORK/flash-env.img" "$((UBOOT_REDUND_OFFSET))" "$((UBOOT_ENV_SIZE))" "$UBOOT_KIND" <<'PY'
import struct, sys, zlib
f = open(sys.argv[1], "rb")
redundant = sys.argv[4] == "redundant"
out = []
for off in ((0, int(sys.argv[2])) if redundant else (0,)):
    f.seek(off)
    copy = f.read(int(sys.argv[3]))
    crc = struct.unpack("<I", copy[:4])[0]
    out.append("good" if zlib.crc32(copy[5:] if redundant else copy[4:]) == crc else "bad")
print("/".join(out))
PY
}
uboot_env_state() { # BOOT_ORDER/BOOT_A_OK/BOOT_A_LEFT/BOOT_B_OK/BOOT_B_LEFT
        local v out=""
        for v in BOOT_ORDER BOOT_A_OK BOOT_A_LEFT BOOT_B_OK BOOT_B_LEFT; do
                out="$out${out:+/}$(uboot_env_value $v)"
        done
        echo "$out"
}

# The boot counting of docs/bootloader.md's U-Boot script, with U-Boot's environment in
# the second pflash bank: first boot, a trial of B written by the agent's uboot backend,
# U-Boot counting it down with saveenv, the fallback to A.
cmd_test_aarch64() {
        local t0=$SECONDS
        BL_NAME=U-Boot BL_KIND=uboot
        cmd_build
        local build_min; build_min=$(mins $t0)
        command -v fw_printenv >/dev/null || die "fw_printenv missing (libubootenv-tool)"
        prepare_node
        qemu_args
        log "node: $WORK"
        echo "# build (or cache): $build_min min"

        echo "# U-Boot: $UBOOT_KIND ($UBOOT_BIN)"
        # the agent's backend on the host, as the guest's config has it
        local tool_args=(--kind uboot --path "$WORK/flash-env.img" --size "$((UBOOT_ENV_SIZE))")
        uboot_redundant && tool_args+=(--redundant "$WORK/flash-env.img" --offset-redundant "$((UBOOT_REDUND_OFFSET))" --flags boolean)

        # 1. First boot: the factory environment (A committed), U-Boot boots A.
        expect "image: fw_printenv reads the factory environment" "$(uboot_env_state)" "A B/1/0/0/0"
        if uboot_redundant; then
                expect "image: two whole copies, the first active (flags)" "$(uboot_copies_whole) $(uboot_flags)" "good/good 1/0"
        fi
        boot_once first || { not_ok "first boot reported"; return 1; }
        echo "# first boot: report after $BOOT_MIN min"
        check_boot first A
        local via=$UBOOT_ENV_DEV
        uboot_redundant && via="$UBOOT_ENV_MTD, the flash through the CFI drivers"
        expect "first: the agent's boot state (uboot backend on $via)" "$(boot_line)" "primary A; A good; B not bootable"
        expect "first: the environment unchanged (nothing counted)" "$(uboot_env_state)" "A B/1/0/0/0"

        # 2. A trial of B with one try, written into the flash file by the agent's uboot
        #    backend on the host; U-Boot boots B and counts the try down (saveenv).
        #    3. Then it falls back to A.
        local tool
        if ! tool=$(find_bootenv_tool); then
                echo "# SKIP boot counting: no bootenv-tool (build the tree: make tests/integration/bootenv-tool)"
        else
                "$tool" "${tool_args[@]}" try B 1 >/dev/null ||
                        { not_ok "bootenv-tool try B 1 on the flash's U-Boot environment"; return 1; }
                expect "host: fw_printenv reads the agent backend's trial" "$(uboot_env_state)" "B A/1/0/0/1"
                if uboot_redundant; then
                        expect "host: the agent wrote the second copy active, marked the first obsolete (flags)" "$(uboot_flags)" 0/1
                fi
                expect "host: the agent kept U-Boot's own variables (bootcmd)" "$(uboot_env_value bootcmd)" "run orbit_boot"
                boot_once trial || { not_ok "trial boot reported"; return 1; }
                echo "# trial boot: report after $BOOT_MIN min"
                check_boot trial B
                expect "trial: U-Boot counted B's try down and saved it (BOOT_B_LEFT)" "$(uboot_env_value BOOT_B_LEFT)" 0
                expect "trial: B not committed (BOOT_B_OK)" "$(uboot_env_value BOOT_B_OK)" 0
                if uboot_redundant; then
                        if grep -q 'saveenv failed' "$WORK/console-trial.log"; then
                                not_ok "trial: U-Boot's saveenv failed: $(grep -a -m2 'saveenv failed\|Flash\|timeout' "$WORK/console-trial.log" | tr -d '\r' | tr '\n' ' ')"
                        else
                                ok "trial: U-Boot's saveenv succeeded (word writes)"
                        fi
                        expect "trial: U-Boot wrote the first copy active, marked the second obsolete (flags, copies whole)" \
                                "$(uboot_flags) $(uboot_copies_whole)" "1/0 good/good"
                        # 3b. The copy U-Boot just wrote torn (a byte of its variables
                        #     flipped): the next boot reads the other, older copy (B's try
                        #     not yet counted), counts it down again and writes over the
                        #     torn one. A single copy torn would leave U-Boot its built-in
                        #     environment and no boot counting.
                        python3 -c 'import sys; f = open(sys.argv[1], "r+b"); f.seek(300); b = f.read(1)[0]; f.seek(300); f.write(bytes([b ^ 0x55]))' \
                                "$WORK/flash-env.img"
                        expect "torn: the first copy torn, the second whole" "$(uboot_copies_whole)" "bad/good"
                        expect "torn: fw_printenv reads the older copy (B's try left)" "$(uboot_env_state)" "B A/1/0/0/1"
                        boot_once torn || { not_ok "torn boot reported"; return 1; }
                        echo "# torn boot: report after $BOOT_MIN min"
                        check_boot torn B
                        expect "torn: U-Boot counted the older copy's try down and wrote it over the torn copy (state, flags, copies)" \
                                "$(uboot_env_state) $(uboot_flags) $(uboot_copies_whole)" "B A/1/0/0/0 1/0 good/good"
                elif grep -q 'saveenv failed' "$WORK/console-trial.log"; then
                        echo "# trial: U-Boot's saveenv failed on this QEMU's pflash and orbit_save_failed finished it by hand (docs/board.md)"
                fi
                echo "# trial: the agent's boot state: $(boot_line)"
                boot_once fallback || { not_ok "fallback boot reported"; return 1; }
                echo "# fallback boot: report after $BOOT_MIN min"
                check_boot fallback A
                echo "# fallback: the environment after: $(uboot_env_state)"
                sed -n 's/^BOARD update | //p' "$WORK/report" | sed 's/^/#   /'
        fi
        work_done "$t0"
        echo "$PASSES passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}

cmd_test() {
        [ "$ARCH" = aarch64 ] && { cmd_test_aarch64; return; }
        local t0=$SECONDS
        cmd_build
        local build_min; build_min=$(mins $t0)
        prepare_node
        qemu_args
        log "node: $WORK"
        echo "# build (or cache): $build_min min"

        # 1. First boot: a fresh grubenv, GRUB boots A.
        boot_once first || { not_ok "first boot reported"; return 1; }
        echo "# first boot: report after $BOOT_MIN min"
        check_boot first A
        # A never-written grubenv: GRUB boots A, and the agent reads it as "only ever
        # booted what runs now" (A good, B not bootable) without writing it (no wear).
        node_grubenv "$WORK/grubenv"
        expect "first: the grubenv is still unwritten (ORBIT_ORDER)" "$(grubenv_value ORBIT_ORDER)" ""
        expect "first: the agent's boot state" "$(boot_line)" "primary A; A good; B not bootable"

        # 2. A trial of B with one try, written by the agent's grub backend on the host
        #    (what the agent writes after installing into B: its state, then the trial):
        #    GRUB boots B and counts the try down; 3. then falls back to A.
        local tool
        if ! tool=$(find_bootenv_tool); then
                echo "# SKIP boot counting: no bootenv-tool (build the tree: make tests/integration/bootenv-tool)"
        else
                "$tool" --kind grub --path "$WORK/grubenv" init-state A >/dev/null &&
                        "$tool" --kind grub --path "$WORK/grubenv" try B 1 >/dev/null ||
                        { not_ok "bootenv-tool init-state A, try B 1 on the ESP's grubenv"; return 1; }
                expect "host: grub-editenv reads the agent backend's trial" \
                        "$(grubenv_value ORBIT_ORDER)/$(grubenv_value ORBIT_B_OK)/$(grubenv_value ORBIT_B_TRIES)" "B A/0/1"
                mcopy -o -i "$WORK/disk.img@@1M" "$WORK/grubenv" ::/grub/grubenv
                boot_once trial || { not_ok "trial boot reported"; return 1; }
                echo "# trial boot: report after $BOOT_MIN min"
                check_boot trial B
                node_grubenv "$WORK/grubenv"
                expect "trial: GRUB counted B's try down (ORBIT_B_TRIES)" "$(grubenv_value ORBIT_B_TRIES)" 0
                expect "trial: B not committed (ORBIT_B_OK)" "$(grubenv_value ORBIT_B_OK)" 0
                echo "# trial: the agent's boot state: $(boot_line)"
                boot_once fallback || { not_ok "fallback boot reported"; return 1; }
                echo "# fallback boot: report after $BOOT_MIN min"
                check_boot fallback A
                node_grubenv "$WORK/grubenv"
                echo "# fallback: grubenv after: $(grub-editenv "$WORK/grubenv" list | grep ^ORBIT_ | tr '\n' ' ')"
                sed -n 's/^BOARD update | //p' "$WORK/report" | sed 's/^/#   /'
        fi
        work_done "$t0"
        echo "$PASSES passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}

# ---- test-guest: tests run inside the guest (issue #20 items 6 and 7) --------------------
# The test helpers of a build of this tree (the guest has no compiler); the guest's
# orbit-agent, orbitctl and sandbox init are the installed package's.
GUEST_HELPERS=(cgroup-check sandbox-run escape-probe seccomp-helper bootenv-tool)
# suite unit: the unit tests with cases that need the board's kernel (qemu-user skips them)
GUEST_UNIT_TESTS=(test-seccomp-policy)

# A build of this tree for ARCH (default: this machine's): ORBIT_BOARD_BUILDDIR, else
# _build/plain, or for aarch64 on another machine _build/arm64 (scripts/cross-test.sh).
find_builddir() { # [ARCH]
        local d arch=${1:-$(uname -m)} dflt=$top_srcdir/_build/plain
        [ "$arch" = "$(uname -m)" ] || dflt=$top_srcdir/_build/arm64
        for d in "${ORBIT_BOARD_BUILDDIR:-}" "$dflt"; do
                [ -n "$d" ] && [ -f "$d/Makefile" ] || continue
                # its host: a native build, or a cross build for ARCH
                local host; host=$(sed -n 's/^S\["host_alias"\]="\(.*\)"$/\1/p' "$d/config.status" 2>/dev/null | head -1)
                if [ "$arch" = "$(uname -m)" ] && [ -z "$host" ]; then echo "$d"; return 0; fi
                if [ "${host%%-*}" = "$arch" ]; then echo "$d"; return 0; fi
        done
        return 1
}

# The CFI flash drivers for the aarch64 image's kernel, whose Debian config has CONFIG_MTD
# but neither CONFIG_MTD_CFI nor CONFIG_MTD_PHYSMAP: built out of tree from the kernel's own
# source package (drivers/mtd/chips: cfi_util, gen_probe, cfi_probe, cfi_cmdset_0001 for
# QEMU's Intel-compatible pflash; drivers/mtd/maps: physmap with its device tree match)
# against the kernel's headers package (its Module.symvers), with Debian's cross compiler
# and the build machine's kbuild tools; unsigned (the kernel does not force signatures).
# Cached by the kernel's package version; prints the directory. The packages come from
# this machine's apt sources (apt-get download): the base's kernel version must still be
# there, else remove the base to take a newer one.
cfi_modules() {
        local base kver pver series out tmp src
        base=$(base_tarball aarch64) || return 1
        kver=$(tar -tf "$base" | sed -n 's|^\./boot/config-||p' | head -1)
        pver=$(tar -xOf "$base" ./var/lib/dpkg/status | awk -v p="Package: linux-image-$kver" \
                '$0 == p { f = 1 } f && /^Version: / { print $2; exit }')
        [ -n "$kver" ] && [ -n "$pver" ] || { log "cfi modules: no kernel in $base"; return 1; }
        series=$(echo "$kver" | cut -d. -f1,2) # 6.1: the source and kbuild packages' names
        out=$CACHE/cfi-modules-$kver-$pver
        if [ -f "$out/physmap.ko" ]; then echo "$out"; return 0; fi
        tmp=$out.tmp
        rm -rf --one-file-system "$tmp"
        mkdir -p "$tmp/root" "$tmp/mod"
        log "building the CFI flash modules for $kver ($pver); log: $CACHE/cfi-modules.log"
        (
                set -e
                cd "$tmp"
                apt-get download "linux-source-$series=$pver" "linux-headers-${kver%-arm64}-common=$pver" \
                        "linux-headers-$kver:arm64=$pver" "linux-kbuild-$series=$pver"
                for d in linux-headers-*.deb linux-kbuild-*.deb; do dpkg-deb -x "$d" root; done
                src=linux-source-$series
                dpkg-deb --fsys-tarfile "$src"_*.deb | tar -xO "./usr/src/$src.tar.xz" |
                        tar -xJ --strip-components=4 -C mod "$src/drivers/mtd/chips/cfi_util.c" \
                        "$src/drivers/mtd/chips/gen_probe.c" "$src/drivers/mtd/chips/cfi_probe.c" \
                        "$src/drivers/mtd/chips/cfi_cmdset_0001.c" "$src/drivers/mtd/chips/fwh_lock.h"
                dpkg-deb --fsys-tarfile "$src"_*.deb | tar -xO "./usr/src/$src.tar.xz" |
                        tar -xJ --strip-components=4 -C mod --wildcards "$src/drivers/mtd/maps/physmap-*"
                # the headers' Makefile includes the common part by its installed path
                sed -i "s|include /usr/src/|include $tmp/root/usr/src/|" "root/usr/src/linux-headers-$kver/Makefile"
                printf '%s\n' 'obj-m := cfi_util.o gen_probe.o cfi_probe.o cfi_cmdset_0001.o physmap.o' \
                        'physmap-objs := physmap-core.o' 'ccflags-y := -DCONFIG_MTD_PHYSMAP_OF=1' >mod/Kbuild
                "${NICE[@]}" make -C "root/usr/src/linux-headers-$kver" M="$tmp/mod" ARCH=arm64 \
                        CROSS_COMPILE=aarch64-linux-gnu- modules
        ) >"$CACHE/cfi-modules.log" 2>&1 || return 1
        rm -rf --one-file-system "$out"
        mkdir -p "$out"
        cp "$tmp"/mod/*.ko "$out/"
        rm -rf --one-file-system "$tmp"
        echo "$out"
}

# The tests disk: an ext4 file system (made from a directory, no mount) with src/ (the
# test scripts, scripts/board-guest.sh) and build/ (the helpers, links to the package's
# binaries). Made at every run: it is small, and the image stays as built.
make_tests_disk() { # $1: the disk file
        local out=$1 bdir stage h
        local how="configure and build in _build/plain"
        [ "$ARCH" = "$(uname -m)" ] || how="scripts/cross-test.sh builds one in _build/arm64"
        bdir=$(find_builddir "$ARCH") || die "no $ARCH build of this tree for the test helpers: $how, or set ORBIT_BOARD_BUILDDIR"
        grep -q -- '--enable-sanitizers' "$bdir/config.status" 2>/dev/null &&
                die "$bdir is a sanitizer build: the guest has no libasan (use a plain build)"
        # Current with this tree (make does nothing when they are).
        "${NICE[@]}" make -s -C "$bdir" "${GUEST_HELPERS[@]/#/tests/integration/}" \
                "${GUEST_UNIT_TESTS[@]/#/tests/unit/}" >&2 ||
                die "building the test helpers in $bdir failed"
        stage=$WORK/tests-stage
        rm -rf "$stage"
        mkdir -p "$stage/src/scripts" "$stage/src/tests/integration" "$stage/build/tests/integration" \
                "$stage/build/tests/unit" "$stage/build/lib"
        for h in "${GUEST_UNIT_TESTS[@]}"; do
                cp "$bdir/tests/unit/$h" "$stage/build/tests/unit/"
        done
        # cmocka, which the unit tests link and the package does not pull in: the build
        # machine's copy for the board's architecture (multiarch)
        local cm=/usr/lib/$ARCH-linux-gnu/libcmocka.so.0
        [ -e "$cm" ] || die "no $cm for the unit tests (libcmocka0${ARCH:+:$(deb_arch "$ARCH")})"
        cp -L "$cm" "$stage/build/lib/"
        cp "$top_srcdir/scripts/board-guest.sh" "$stage/src/scripts/"
        if [ "$ARCH" = aarch64 ]; then # suite cfi
                local cm; cm=$(cfi_modules) || die "building the CFI flash modules failed ($CACHE/cfi-modules.log)"
                mkdir -p "$stage/build/modules"
                cp "$cm"/*.ko "$stage/build/modules/"
        fi
        cp "$top_srcdir"/tests/integration/*.sh "$top_srcdir"/tests/integration/*.py "$stage/src/tests/integration/"
        for h in "${GUEST_HELPERS[@]}"; do
                cp "$bdir/tests/integration/$h" "$stage/build/tests/integration/"
        done
        ln -s /usr/sbin/orbit-agent "$stage/build/orbit-agent"
        ln -s /usr/bin/orbitctl "$stage/build/orbitctl"
        ln -s /usr/libexec/orbit-agent/orbit-sandbox-init "$stage/build/orbit-sandbox-init"
        # Workloads run as other users: every directory searchable.
        find "$stage" -type d -exec chmod 755 {} +
        rm -f "$out"
        mkfs.ext4 -q -F -L orbit-tests -d "$stage" "$out" 64M >/dev/null
        rm -rf "$stage"
}

cmd_test_guest() {
        local t0=$SECONDS
        cmd_build
        local build_min; build_min=$(mins $t0)
        prepare_node
        qemu_args
        log "node: $WORK; suites: $SUITES"
        echo "# build (or cache): $build_min min"
        make_tests_disk "$WORK/tests.img"
        QEMU_EXTRA=(-drive "file=$WORK/tests.img,format=raw,if=virtio,readonly=on"
                    -fw_cfg "name=opt/org.orbit.board/tests,string=$SUITES")
        # The tests take many minutes under TCG: a longer wait for the report.
        TIMEOUT=${ORBIT_BOARD_TIMEOUT:-3600}
        boot_once guest || { not_ok "guest boot reported"; echo "$PASSES passed, $FAILS failed"; return 1; }
        echo "# guest boot: report after $BOOT_MIN min"
        check_boot guest A
        # The guest's own checks: its "ok"/"not ok" lines count here, its notes as notes.
        local line
        while IFS= read -r line; do
                case "$line" in
                "ok - "*) ok "guest: ${line#ok - }" ;;
                "not ok - "*) not_ok "guest: ${line#not ok - }" ;;
                "suite "*) echo "# ${line}" ;;
                *) echo "#   $line" ;;
                esac
        done < <(sed -n 's/^BOARD t | //p' "$WORK/report" | tr -d '\r')
        grep -q '^BOARD t | suite ' "$WORK/report" || not_ok "the guest ran no suite (console: $WORK/console-guest.log)"
        work_done "$t0"
        echo "$PASSES passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}

# ---- test-rollout: a controller on the host, netem in the guest (issue #20 item 4) ---------------
ROLL_NODE=board-1
ROLL_CHUNK=262144                                 # the bundles' chunk size (256 KiB)
# The guest's egress (tc-netem(8)); ORBIT_BOARD_NETEM for a quick look at the flow only.
ROLL_NETEM=${ORBIT_BOARD_NETEM:-"rate 256kbit delay 1500ms loss 10%"}
ROLL_TRIES=2                                      # update.boot_tries of this run's config
QEMU_PID="" ROLL_TMPWORK=""
BOARD_NIC=${ORBIT_BOARD_NIC:-tap} BOARD_NS=orbit-board-$$ BOARD_NS_MADE=0

rollout_cleanup() {
        local rc=$?
        [ -z "$WORK" ] || touch "$WORK/power-off" 2>/dev/null || true
        if [ -n "$QEMU_PID" ] && kill -0 "$QEMU_PID" 2>/dev/null; then
                kill "$QEMU_PID" 2>/dev/null
                wait "$QEMU_PID" 2>/dev/null
        fi
        fleet_stop_controller 2>/dev/null || true
        [ "$BOARD_NS_MADE" = 0 ] || ip netns del "$BOARD_NS" 2>/dev/null || true
        [ -n "$ROLL_TMPWORK" ] && rm -rf --one-file-system "$ROLL_TMPWORK"
        return $rc
}

# orbit-controller and orbit-bundle for the host, from the same .debs (this host's release);
# a cross-built node's from this host's own .debs (--host-debs, or built as --debs is).
host_tools() {
        local dir=${AGENT_DEB%/*} p f
        if [ -n "$HOST_DEBS" ]; then
                dir=$HOST_DEBS
        elif [ "$(deb_arch "$ARCH")" != "$(dpkg --print-architecture)" ]; then
                local arch=$ARCH agent=$AGENT_DEB ctl=$CTL_DEB
                ARCH=$(uname -m)
                find_debs ""
                dir=${AGENT_DEB%/*}
                ARCH=$arch AGENT_DEB=$agent CTL_DEB=$ctl
        fi
        mkdir -p "$WORK/host"
        for p in orbit-controller orbit-bundle; do
                f=$(ls "$dir/${p}"_*.deb 2>/dev/null | tail -1)
                [ -f "$f" ] || die "no ${p}_*.deb in $dir (test-rollout runs the controller from it)"
                dpkg-deb -x "$f" "$WORK/host"
        done
        FLEET_BIN=$WORK/host/usr/bin
}

# The ground's keys (scripts/fleet-lib.sh), the server's certificate for both names of the
# host (127.0.0.1 for the operator CLI, 10.0.2.2 for the guest), the node's certificate.
rollout_keys() {
        local K=$FLEET_DIR/keys
        fleet_keys || return 1
        (
                cd "$K" || exit 1
                printf '%s\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
                        'extendedKeyUsage=serverAuth' 'subjectAltName=IP:127.0.0.1,IP:10.0.2.2' >server.ext &&
                        openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key \
                                -CAcreateserial -days 10 -extfile server.ext -out server.pem 2>/dev/null &&
                        openssl ecparam -name prime256v1 -genkey -noout -out node.key 2>/dev/null &&
                        openssl req -new -key node.key -subj "/CN=$ROLL_NODE" -out node.csr 2>/dev/null &&
                        openssl x509 -req -in node.csr -CA node-ca.pem -CAkey node-ca.key \
                                -CAcreateserial -days 10 -extfile node.ext -out node.pem 2>/dev/null
        )
}

# The config disk (orbit-board-config in the guest applies it at every boot of either slot).
make_config_disk() { # $1: the disk file
        local out=$1 K=$FLEET_DIR/keys stage=$WORK/config-stage
        rm -rf "$stage"
        mkdir -p "$stage/keys/commands" "$stage/keys/bundles" "$stage/keys/link"
        cp "$K/cmd-ca.pem" "$stage/keys/commands/"
        cp "$K/rel-ca.pem" "$stage/keys/bundles/"
        cp "$K/server-ca.pem" "$stage/keys/link/ca.pem"
        cp "$K/node.pem" "$K/node.key" "$stage/keys/link/"
        printf 'ADDR=10.0.2.15/24\nGW=10.0.2.2\nNETEM="%s"\n' "$ROLL_NETEM" >"$stage/net.env"
        # The slow link: generous timeouts; a short gate (the board's test, not a fleet's).
        cat >"$stage/agent.json" <<JSON
{
  "config_version": 1,
  "node_id": "$ROLL_NODE",
  "log_level": "info",
  "log_target": "auto",
  "update": {
    "enabled": true,
    "hardware": "orbit-board-$ARCH",
    "bootloader": $(agent_bootloader "$ARCH"),
    "rootfs": {"a": "/dev/disk/by-partlabel/rootfs_a", "b": "/dev/disk/by-partlabel/rootfs_b"},
    "boot_tries": $ROLL_TRIES,
    "gate_sec": 20,
    "trial_timeout_sec": 3600,
    "reboot_command": ["/usr/bin/systemctl", "reboot"]
  },
  "link": {
    "enabled": true,
    "url": "https://10.0.2.2:$FLEET_PORT",
    "ca": "/etc/orbit-agent/keys/link/ca.pem",
    "cert": "/etc/orbit-agent/keys/link/node.pem",
    "key": "/etc/orbit-agent/keys/link/node.key",
    "poll_interval_sec": 10,
    "connect_timeout_sec": 60,
    "timeout_sec": 600,
    "backoff_min_sec": 2,
    "backoff_max_sec": 20,
    "min_sync_interval_sec": 5
  }
}
JSON
        rm -f "$out"
        mkfs.ext4 -q -F -L orbit-config -d "$stage" "$out" 8M >/dev/null
        rm -rf "$stage"
}

# A newc cpio whose /init is no executable: the kernel fails it, finds no other init and
# panics ("No working init found"); panic=10 on GRUB's command line reboots.
write_panic_initrd() { # $1: output
        python3 - "$1" <<'PY'
import sys
def entry(name, mode, data, ino):
    name = name.encode() + b"\0"
    hdr = "070701" + "".join("%08X" % v for v in (ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name), 0))
    out = hdr.encode() + name
    out += b"\0" * (-len(out) % 4) + data
    return out + b"\0" * (-len(out) % 4)
blob = entry("init", 0o100755, b"orbit board: not an executable\n", 1) + entry("TRAILER!!!", 0, b"", 0)
open(sys.argv[1], "wb").write(blob + b"\0" * (-len(blob) % 512))
PY
}

# The rootfs images of the rollouts, derived from the cached image's slot A (no mount):
# v2 = slot A's file system with a version marker; v3 = v2 whose initrd panics.
rollout_images() {
        local R=$WORK/images img=$IMAGE/disk.img initrd err
        mkdir -p "$R"
        dd if="$img" of="$R/v2.img" bs=1M skip=$((1 + ESP_MIB)) count=$ROOTFS_MIB conv=sparse status=none
        echo board-v2 >"$R/v2.marker"
        err=$(debugfs -w -R "write $R/v2.marker /etc/orbit-board-version" "$R/v2.img" 2>&1 >/dev/null | grep -v '^debugfs ')
        [ -z "$err" ] || { log "debugfs: $err"; return 1; }
        cp --sparse=always "$R/v2.img" "$R/v3.img"
        initrd=$(debugfs -R "ls -p /boot" "$R/v3.img" 2>/dev/null | awk -F/ '$6 ~ /^initrd\.img-/ { print $6 }' | head -1)
        [ -n "$initrd" ] || { log "no /boot/initrd.img-* in slot A"; return 1; }
        echo board-v3-panics >"$R/v3.marker"
        write_panic_initrd "$R/panic.cpio"
        err=$(printf '%s\n' "rm /etc/orbit-board-version" "write $R/v3.marker /etc/orbit-board-version" \
                "rm /boot/$initrd" "write $R/panic.cpio /boot/$initrd" |
                debugfs -w -f - "$R/v3.img" 2>&1 >/dev/null | grep -v '^debugfs ')
        [ -z "$err" ] || { log "debugfs: $err"; return 1; }
        [ "$(debugfs -R "cat /etc/orbit-board-version" "$R/v2.img" 2>/dev/null)" = board-v2 ] &&
                [ "$(debugfs -R "cat /etc/orbit-board-version" "$R/v3.img" 2>/dev/null)" = board-v3-panics ] ||
                { log "the version markers did not land"; return 1; }
        e2fsck -fn "$R/v2.img" >/dev/null 2>&1 && e2fsck -fn "$R/v3.img" >/dev/null 2>&1 ||
                { log "e2fsck finds the derived images damaged"; return 1; }
}

rollout_bundle() { # ID IMAGE VERSION
        local R=$WORK/images K=$FLEET_DIR/keys
        printf '{"bundle_id": "%s", "version": "%s", "security_version": 1, "rollback_floor": 0, "compatible": ["orbit-board-%s"]}\n' \
                "$1" "$3" "$ARCH" >"$R/$1.json"
        "${NICE[@]}" "$FLEET_BIN/orbit-bundle" create --manifest-template "$R/$1.json" --image "rootfs=$2" \
                --chunk-size "$ROLL_CHUNK" --key "$K/rel.key" --cert "$K/rel.pem" -o "$R/$1.obundle" >/dev/null
}

# Boot N's report (the part between its "BOARD begin" and "BOARD end") in $WORK/report-N.
reports_done() { grep -c '^BOARD end' "$WORK/report" 2>/dev/null || true; }
report_part() { # N
        tr -d '\r' <"$WORK/report" | awk -v n="$1" '/^BOARD begin/ { i++ } i == n { print } i == n && /^BOARD end/ { exit }' \
                >"$WORK/report-$1"
}

# boot_checked N NAME SLOT: the guest's Nth boot reported (waited for), its part of the
# report the one check_boot reads, and checked as booting SLOT.
boot_checked() {
        wait_until 600 have_reports "$1" || not_ok "$2: boot $1 reported"
        report_part "$1"
        RFILE=$WORK/report-$1
        check_boot "$2" "$3"
}

# Wait up to $1 seconds for a command to succeed; fails at once when QEMU is gone.
wait_until() { # SECONDS CMD...
        local deadline=$((SECONDS + $1))
        shift
        until "$@"; do
                kill -0 "$QEMU_PID" 2>/dev/null || { log "QEMU exited (console: $WORK/console.log)"; return 1; }
                [ $SECONDS -lt $deadline ] || return 1
                sleep 5
        done
}
have_reports() { [ "$(reports_done)" -ge "$1" ]; }
node_synced() {
        local n; n=$(fleet_oc node show "$ROLL_NODE" --json 2>/dev/null | jq -r '.syncs // 0')
        [ "${n:-0}" -ge 1 ] 2>/dev/null
}
node_state() { fleet_oc rollout status "$1" --json 2>/dev/null | jq -r --arg n "$ROLL_NODE" '.nodes[] | select(.node == $n) | .state'; }
node_state_is() { [ "$(node_state "$1")" = "$2" ]; }
rollout_state_is() { [ "$(fleet_oc rollout status "$1" --json 2>/dev/null | jq -r .state)" = "$2" ]; }
link_rx() { # the guest's received bytes, summed over the boots that ended (BOARD linkbytes)
        tr -d '\r' <"$WORK/report" | awk '/^BOARD linkbytes/ { rx += $3; tx += $4 } END { printf "%d %d\n", rx, tx }'
}
records_of() { fleet_oc records "$ROLL_NODE" --kind "$1" --json 2>/dev/null; }

cmd_test_rollout() {
        local t0=$SECONDS
        [ "$ARCH" = x86_64 ] || BL_NAME=U-Boot BL_KIND=uboot
        cmd_build
        local build_min; build_min=$(mins $t0)
        [ -n "$WORK" ] || { WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-board.XXXXXXXX"); ROLL_TMPWORK=$WORK; }
        prepare_node
        qemu_args
        command -v jq >/dev/null && command -v debugfs >/dev/null || die "test-rollout needs jq and debugfs (e2fsprogs)"
        trap rollout_cleanup EXIT
        trap 'exit 143' TERM INT HUP # so a stopped run cleans up too (its netns, QEMU, controller)
        echo "# build (or cache): $build_min min"
        log "node: $WORK"

        # The ground: keys, the controller at 10.0.2.2 in the board's network namespace
        # (ORBIT_BOARD_NIC=user: on 127.0.0.1, 10.0.2.2 from the guest).
        host_tools
        FLEET_DIR=$WORK/ground
        # shellcheck disable=SC2034 # read by fleet_start_controller
        FLEET_POLL_SEC=10 # the controller's next_sync_sec
        mkdir -p "$FLEET_DIR"
        # shellcheck source=scripts/fleet-lib.sh
        . "$top_srcdir/scripts/fleet-lib.sh"
        rollout_keys || die "making the keys failed"
        board_net_up || die "the board's network namespace ($BOARD_NS, tap0) could not be made"
        fleet_start_controller || die "the controller did not start ($FLEET_DIR/controller.log)"
        local t=$SECONDS
        rollout_images || die "deriving the rollout images from slot A failed"
        rollout_bundle board-v2 "$WORK/images/v2.img" 2.0.0 && rollout_bundle board-v3 "$WORK/images/v3.img" 3.0.0 ||
                die "orbit-bundle create failed"
        echo "# images and bundles (1 GiB each, chunks of $((ROLL_CHUNK / 1024)) KiB): $(mins $t) min"
        fleet_oc bundle upload "$WORK/images/board-v2.obundle" >/dev/null && fleet_oc bundle upload "$WORK/images/board-v3.obundle" >/dev/null ||
                die "bundle upload failed"
        rm -f "$WORK"/images/*.img
        make_config_disk "$WORK/config.img"

        # 1. Boot A with the link up, shaped by netem; the agent syncs with the controller.
        #    x86_64 reboots in place; aarch64 powers on again at each reboot (one console
        #    log and one report for all its power-ons: append).
        : >"$WORK/report"
        : >"$WORK/console.log"
        rm -f "$WORK/power-off" "$WORK/power.log"
        t=$SECONDS
        # shellcheck disable=SC2054 # QEMU's own option syntax has commas
        local run=("${NICE[@]}" "${QEMU[@]}" -display none
                   -chardev "file,id=console,path=$WORK/console.log,append=on" -serial chardev:console
                   -drive "file=$WORK/config.img,format=raw,if=virtio,readonly=on"
                   -fw_cfg name=opt/org.orbit.board/config,string=1
                   -monitor "unix:$WORK/monitor.sock,server,nowait")
        if [ "$ARCH" = x86_64 ]; then
                "${run[@]}" &
        else
                board_power_loop "${run[@]}" &
        fi
        QEMU_PID=$!
        wait_until "$TIMEOUT" have_reports 1 || { not_ok "first boot reported"; echo "$PASSES passed, $FAILS failed"; return 1; }
        echo "# first boot: report after $(mins $t) min"
        report_part 1
        RFILE=$WORK/report-1
        check_boot first A
        local qd; qd=$(report_value qdisc)
        case "$qd" in
        *netem*) ok "first: netem on the guest's eth0 ($qd)" ;;
        *) not_ok "first: no netem qdisc on eth0: $qd" ;;
        esac
        qd=$(report_value qdisc-in)
        case "$qd" in
        *netem*) ok "first: netem on what the guest receives (ifb0: $qd)" ;;
        *) not_ok "first: no netem qdisc on the download direction (ifb0): $qd" ;;
        esac
        expect "first: the factory image (no version marker)" "$(report_value version)" factory
        if wait_until 600 node_synced; then ok "the node synced with the controller over the shaped link"
        else not_ok "the node never synced (console: $WORK/console.log)"; echo "$PASSES passed, $FAILS failed"; return 1; fi

        # 2. A rollout of v2 (slot A's file system and a marker): a delta install into B
        #    over the link, the agent reboots, the bootloader boots B, the gate holds, the
        #    commit.
        fleet_oc rollout create --id r1 --bundle board-v2 --target all --stages 100 --max-failures 0 >/dev/null &&
                fleet_oc rollout start r1 >/dev/null || { not_ok "rollout r1 created and started"; return 1; }
        t=$SECONDS
        if wait_until 3600 sh -c "grep -q '^BOARD linkbytes' '$WORK/report'"; then
                ok "r1: the agent installed and rebooted the guest ($(mins $t) min after the start)"
        else
                not_ok "r1: no reboot after the install (node state $(node_state r1))"
        fi
        local install_min; install_min=$(mins $t)
        local rx1 tx1; read -r rx1 tx1 < <(link_rx)
        echo "# r1: start to reboot $install_min min; the link in boot 1: $rx1 bytes to the guest, $tx1 from it"
        if wait_until 3600 node_state_is r1 committed; then ok "r1: the controller sees the commit ($(mins $t) min after the start)"
        else not_ok "r1: node state $(node_state r1), not committed"; fi
        boot_checked 2 r1 B
        expect "r1: slot B runs the new image" "$(report_value version)" board-v2
        case "$(report_value qdisc)" in *netem*) ok "r1: netem on eth0 in slot B" ;; *) not_ok "r1: no netem in slot B" ;; esac
        case "$(report_value qdisc-in)" in *netem*) ok "r1: netem on ifb0 in slot B" ;; *) not_ok "r1: no netem on ifb0 in slot B" ;; esac
        sed -n 's/^BOARD update | //p' "$RFILE" | sed 's/^/#   /'
        local n; n=$(records_of update.committed | jq 'length')
        [ "${n:-0}" -ge 1 ] && ok "r1: update.committed on the controller" || not_ok "r1: no update.committed record"

        # 3. v3, whose initrd panics: installed into A, the agent reboots, the kernel panics
        #    (panic=10 reboots) until the bootloader has spent ROLL_TRIES tries and falls
        #    back to B;
        #    the agent on B records the rollback and reports it.
        # The node is r1's until r1 completes (one more pass after the commit); a second
        # rollout to it is refused before.
        if wait_until 1800 rollout_state_is r1 completed; then ok "r1: the rollout completed"
        else not_ok "r1: rollout state $(fleet_oc rollout status r1 --json 2>/dev/null | jq -r .state), not completed"; fi
        local panics0; panics0=$(grep -c 'Kernel panic - not syncing' "$WORK/console.log" || true)
        fleet_oc rollout create --id r2 --bundle board-v3 --target all --stages 100 --max-failures 0 >/dev/null &&
                fleet_oc rollout start r2 >/dev/null || { not_ok "rollout r2 created and started"; return 1; }
        t=$SECONDS
        if wait_until 3600 node_state_is r2 rolled-back; then ok "r2: the controller sees the rollback ($(mins $t) min after the start)"
        else not_ok "r2: node state $(node_state r2), not rolled-back"; fi
        boot_checked 3 r2 B
        expect "r2: slot B still runs v2" "$(report_value version)" board-v2
        local panics; panics=$(($(grep -c 'Kernel panic - not syncing' "$WORK/console.log" || true) - panics0))
        expect "r2: the new slot's kernel panicked once per try (boot_tries $ROLL_TRIES)" "$panics" "$ROLL_TRIES"
        local reason; reason=$(records_of update.rolled-back | jq -r '[.[] | .body.reason // .reason // empty] | last // empty')
        case "$reason" in
        *"boot counter ran out"*) ok "r2: update.rolled-back on the controller: $reason" ;;
        *) not_ok "r2: update.rolled-back reason: '$reason' ($(records_of update.rolled-back | jq -c . | head -c 400))" ;;
        esac
        read -r rx1 tx1 < <(link_rx)
        echo "# the link over both rollouts (boots that ended): $rx1 bytes to the guest, $tx1 from it"

        board_quit
        bl_read_env
        expect "end: $BL_NAME's environment: B good, A not good with no tries left (B_OK/A_OK/A_TRIES)" \
                "$(bl_value B_OK)/$(bl_value A_OK)/$(bl_value A_TRIES)" "1/0/0"
        if [ "$ARCH" != x86_64 ]; then
                uboot_redundant && expect "end: both copies of the environment whole" "$(uboot_copies_whole)" good/good
                echo "# power-ons: $(grep -c 'QEMU ended' "$WORK/power.log" 2>/dev/null)"
        fi
        echo "# end: $(bl_env_summary)"
        echo "# total: $(mins $t0) min"
        echo "$PASSES passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}

# ---- test-powercut: the power cut during an install, the arm and the commit (item 5) ------
# SIGKILL to QEMU is the power cut: the guest's RAM goes (its page cache, whatever the
# agent had not written out), the disk file keeps what the guest had written to it
# (docs/board.md: why the cache mode does not change that).
PC_STALL_PERCENT=${ORBIT_BOARD_STALL_PERCENT:-50}
PC_TEAR_PERCENT=${ORBIT_BOARD_TEAR_PERCENT:-75}
PC_WINDOW=${ORBIT_BOARD_CUT_WINDOW:-120} # --random: a cut's delay is 0..PC_WINDOW s after its anchor
PC_RUN=0 PC_T=0 PC_LOST_WRITES=0

# Power on: a QEMU of its own on the node's disk as the last one left it, with this
# run's failpoints (an EnvironmentFile= of the agent's unit, from fw_cfg) and the agent's
# journal coming back on a second port (events-N).
pc_power_on() { # N FAILPOINT...
        local n=$1
        shift
        PC_R0=$(reports_begun) # the reports before it: a power-on may boot twice (the agent's reboot)
        { echo "# board.sh test-powercut, power-on $n"; printf '%s\n' "$@"; } >"$WORK/failpoints-$n.env"
        : >"$WORK/events-$n"
        : >"$WORK/console-$n.log"
        if [ "$LOSE_CACHE" = 1 ]; then # the disk as at power on, and an empty log of its writes
                rm -f "$WORK/disk-ovl.qcow2" "$WORK/writes.log"
                qemu-img create -q -f qcow2 -F raw -b "$WORK/disk.img" "$WORK/disk-ovl.qcow2" &&
                        "$PC_REPLAY" init "$WORK/writes.log" || die "power-on $n: the overlay and the write log"
        fi
        # shellcheck disable=SC2054 # QEMU's own option syntax has commas
        local run=("${NICE[@]}" "${QEMU[@]}" -display none
                   -chardev "file,id=console,path=$WORK/console-$n.log,append=on" -serial chardev:console
                   -drive "file=$WORK/config.img,format=raw,if=virtio,readonly=on"
                   -fw_cfg name=opt/org.orbit.board/config,string=1
                   -fw_cfg name=opt/org.orbit.board/events,string=1
                   -fw_cfg "name=opt/org.orbit.board/failpoints,file=$WORK/failpoints-$n.env"
                   -chardev "file,id=events,path=$WORK/events-$n,append=on"
                   -device virtserialport,chardev=events,name=org.orbit.board.1
                   -monitor "unix:$WORK/monitor.sock,server,nowait")
        if [ "$ARCH" = x86_64 ]; then
                "${run[@]}" &
        else
                # a reboot in the power-on (the agent's, after an install) powers on again
                rm -f "$WORK/power-off"
                board_power_loop "${run[@]}" &
        fi
        QEMU_PID=$! PC_RUN=$n PC_T=$SECONDS
}

# aarch64: the QEMU the power loop runs (QEMU_PID is the loop's; QEMU its child, nice
# having exec'd it), SIGKILLed; the loop, told first to power on no more, ends with it.
# Should it not, TERM ends it and what it runs (its trap).
pc_kill_board() {
        local i
        if [ "$ARCH" = x86_64 ]; then
                kill -KILL "$QEMU_PID" 2>/dev/null || true
        else
                touch "$WORK/power-off"
                for ((i = 0; i < 60; i++)); do
                        pkill -KILL -P "$QEMU_PID" 2>/dev/null || true
                        kill -0 "$QEMU_PID" 2>/dev/null || return 0
                        sleep 1
                done
                kill -TERM "$QEMU_PID" 2>/dev/null || true
        fi
}

# The power cut: SIGKILL, nothing in the guest runs again.
pc_cut() { # NAME
        pc_kill_board
        wait "$QEMU_PID" 2>/dev/null || true
        QEMU_PID=""
        echo "# $1: power cut $(mins $PC_T) min after power-on $PC_RUN"
        pc_cache_lost "$1"
}

# --lose-cache, once QEMU is gone: disk.img becomes what a disk with a volatile write
# cache holds after the cut (the power-on's disk, its logged writes replayed up to the
# last flush; after it, what ORBIT_BOARD_CACHE_TAIL keeps). The checks that follow and
# the next power-on read that.
PC_CACHE_TAIL=${ORBIT_BOARD_CACHE_TAIL:-none}
pc_cache_lost() { # NAME
        [ "$LOSE_CACHE" = 1 ] || return 0
        local out tail=$PC_CACHE_TAIL
        # random:SEED draws anew at each cut: the seed plus the power-on's number
        case "$tail" in random:*) tail=random:$((${tail#random:} + PC_RUN)) ;; esac
        [ "$PC_SWEEP" = 0 ] || pc_sweep "$1"
        if out=$("$PC_REPLAY" replay "$WORK/writes.log" "$WORK/disk.img" --tail "$tail" 2>&1); then
                echo "# $1: the disk's cache lost what came after its last flush: $out"
                local lost; lost=$(printf '%s\n' "$out" | sed -n 's/.*not flushed: \([0-9]*\) lost.*/\1/p')
                PC_LOST_WRITES=$((PC_LOST_WRITES + ${lost:-0}))
                rm -f "$WORK/disk-ovl.qcow2" "$WORK/writes.log"
        else
                not_ok "$1: the write log replayed ($out; kept: $WORK/writes.log)"
                pc_stop
                exit 1
        fi
}

# A slot's boot files as GRUB finds them: grub-fstest reads the disk image with GRUB's own
# partition and ext2 drivers (which, like GRUB at boot, do not replay the journal of a
# file system cut while mounted): "KERNEL-CRC INITRD-CRC MARKER" (/vmlinuz and /initrd.img,
# links followed; /etc/orbit-board-version, empty in the factory image), or what GRUB
# said when it could not read them.
slot_boot_files() { # IMAGE DEVICE (loop0,gpt2 for a slot of a disk; loop0 for a bare image)
        local k i
        if ! k=$(grub-fstest "$1" crc "($2)/vmlinuz" 2>&1) || ! i=$(grub-fstest "$1" crc "($2)/initrd.img" 2>&1); then
                echo "GRUB cannot read the kernel or initrd: $(printf '%s %s' "$k" "$i" | tr '\n' ' ' | head -c 200)"
                return
        fi
        echo "$k $i $(grub-fstest "$1" cat "($2)/etc/orbit-board-version" 2>/dev/null | tr -d '\n')"
}

# --lose-cache's sweep (xfstests' way with dm-log-writes): before the cut's own replay,
# the disk as a cut right after each flush of this power-on would have left it, each
# checked (cmd_sweep_point): a copy of the power-on's disk brought forward flush by flush
# (log-writes-replay sweep), a point at each flush after which the ESP, a slot or the data
# partition was written. ORBIT_BOARD_SWEEP=0 leaves it out.
PC_SWEEP=${ORBIT_BOARD_SWEEP:-1}
pc_sweep() { # NAME
        local name=$1 t=$SECONDS out mib=$((1024 * 1024)) a b d
        a=$(((1 + ESP_MIB) * mib)) b=$(((1 + ESP_MIB + ROOTFS_MIB) * mib)) d=$(((1 + ESP_MIB + 2 * ROOTFS_MIB) * mib))
        # SW_B_V2 exists once B no longer has to be v2 byte for byte: a point found it so
        # (the sweep-point), or this power-on or one before booted B (mounted since)
        export SW_B_V2=$WORK/sweep-b-was-v2
        if [ "${PC_CHOICE:-A}" = B ]; then : >"$SW_B_V2"; fi
        export SW_DIR=$WORK/sweep SW_DISK=$WORK/sweep/disk.img SW_STATE_CHECK=$PC_STATE_CHECK
        export SW_BOOT_A=$PC_BOOT_A SW_BOOT_B=$PC_BOOT_B SW_SHA_B=$PC_SHA_B
        export SW_A=$a SW_B=$b SW_D=$d SW_ROOTFS=$((ROOTFS_MIB * mib))
        export SW_DATA=$((DATA_MIB * mib)) ESP_MIB SW_SEEN=$WORK/sweep-env-seen
        rm -rf "$SW_DIR"
        mkdir -p "$SW_DIR"
        cp --sparse=always "$WORK/disk.img" "$SW_DISK"
        local rc=0 summary
        out=$("$PC_REPLAY" sweep "$WORK/writes.log" "$SW_DISK" --region "esp:$mib:$((ESP_MIB * mib))" \
                --region "a:$a:$SW_ROOTFS" --region "b:$b:$SW_ROOTFS" --region "data:$d:$SW_DATA" \
                -- bash "$top_srcdir/scripts/board.sh" sweep-point 2>&1 >"$WORK/sweep-$PC_RUN.log") || rc=$?
        summary=$(tail -n 1 "$WORK/sweep-$PC_RUN.log")
        if [ $rc = 0 ] && [ -z "$out" ] && [[ $summary == "sweep: "* ]]; then
                ok "$name: a cut at any flush of power-on $PC_RUN leaves a good board (${summary#sweep: }; $(mins "$t") min)"
        else
                not_ok "$name: the sweep of power-on $PC_RUN's flushes: ${summary:-no summary} ($WORK/sweep-$PC_RUN.log)"
                { grep -a '^FAIL' "$WORK/sweep-$PC_RUN.log" || true; } | head -5 | sed 's/^/# /'
                [ -z "$out" ] || printf '%s\n' "$out" | head -5 | sed 's/^/# stderr: /'
        fi
        rm -rf "$SW_DIR"
}

# One point of the sweep (board.sh sweep-point, run by log-writes-replay with LW_* set):
# the disk SW_DISK as a cut there leaves it must boot a good slot and lose no state:
#   - the ESP's grubenv whole (1024 bytes, grub-editenv reads it), GRUB's choice A or B
#     (or its never-initialised branch, A, until the agent first wrote the grubenv);
#   - the chosen slot boots the good image: the kernel and initrd GRUB loads from it are
#     the image's (read with GRUB's own drivers: grub-fstest), and its version marker
#     (none in A, board-v2 in B); B, the first time it
#     is chosen (before any boot mounts it read-write), is v2 byte for byte: an arm that
#     came before the install was durable shows here. Checked again only when the slot was
#     written since it was last found good;
#   - the data partition: its journal replayed (e2fsck -E journal_only), then no error
#     left (e2fsck -fn), and every state file in it loads (state-check: the agent's own
#     loaders; a torn copy beside a good one is fine).
# One line on standard output ("FAIL ..." when not); exit status 1 when not.
cmd_sweep_point() {
        local changed=" ${LW_CHANGED:-} " fails=() choice problem f e
        local where="point $LW_POINT/$LW_POINTS (flush $LW_FLUSH of $LW_FLUSHES) [${LW_CHANGED:-}]"
        WORK=$SW_DIR # the sweep's disk is $WORK/disk.img for node_grubenv
        if [[ $changed == *" a "* ]]; then rm -f "$SW_DIR/good-A"; fi
        if [[ $changed == *" b "* ]]; then rm -f "$SW_DIR/good-B"; fi
        if [[ $changed == *" esp "* ]] || [ ! -f "$SW_DIR/choice" ]; then
                rm -f "$SW_DIR/grubenv"
                if node_grubenv "$SW_DIR/grubenv" 2>"$SW_DIR/mtools.err"; then
                        problem=$(grubenv_problem "$SW_DIR/grubenv")
                        [ -z "$problem" ] || fails+=("grubenv: $problem")
                        # (in a || list: errexit off inside, a grubenv grub-editenv refuses
                        # reads as GRUB's never-initialised branch, as it does for GRUB)
                        pc_bl_choice >"$SW_DIR/choice" 2>/dev/null || echo factory >"$SW_DIR/choice"
                else
                        fails+=("grubenv unreadable: $(head -c 200 "$SW_DIR/mtools.err")")
                        echo factory >"$SW_DIR/choice"
                fi
                { grep ^ORBIT_ "$SW_DIR/grubenv" 2>/dev/null || true; } | tr '\n' ' ' >"$SW_DIR/env"
        fi
        choice=$(cat "$SW_DIR/choice")
        local slot="" slot_note="good"
        case "$choice" in
        A|B) slot=$choice; : >"$SW_SEEN" ;;
        factory)
                # GRUB's never-initialised branch boots A: right on a board whose agent
                # has not yet written the grubenv, a lost boot state once it has
                if [ -f "$SW_SEEN" ]; then
                        fails+=("the grubenv lost the boot state the agent wrote (GRUB's never-initialised branch)")
                else
                        slot=A
                fi
                ;;
        *) fails+=("GRUB's choice: $choice (the grubenv: $(cat "$SW_DIR/env" 2>/dev/null))") ;;
        esac
        if [ -n "$slot" ] && [ ! -f "$SW_DIR/good-$slot" ]; then
                local off=$SW_A want=$SW_BOOT_A got bad="" part=gpt2
                if [ "$slot" = B ]; then off=$SW_B want=$SW_BOOT_B part=gpt3; fi
                got=$(slot_boot_files "$SW_DISK" "loop0,$part")
                if [ "$got" != "$want" ]; then
                        bad="GRUB boots $slot, whose boot files are not the good image's (kernel, initrd, marker: '$got', want '$want')"
                elif [ "$slot" = B ] && [ ! -f "$SW_B_V2" ]; then
                        got=$(dd if="$SW_DISK" bs=1M skip=$((off / 1048576)) count=$((SW_ROOTFS / 1048576)) status=none |
                                sha256sum | cut -c1-64)
                        if [ "$got" = "$SW_SHA_B" ]; then
                                : >"$SW_B_V2" # from here B may be booted, mounted and written
                        else
                                bad="GRUB boots B, never booted yet, which is not v2 byte for byte (sha256 ${got:0:16}, want ${SW_SHA_B:0:16}): armed before the install was durable"
                        fi
                        slot_note="v2 byte for byte"
                fi
                if [ -z "$bad" ]; then
                        : >"$SW_DIR/good-$slot"
                        [ "$slot_note" != good ] || slot_note="its boot files good"
                else
                        fails+=("$bad")
                fi
        fi
        local data_note="unchanged"
        if [[ $changed == *" data "* ]]; then
                rm -rf "$SW_DIR/data" "$SW_DIR/data.img"
                dd if="$SW_DISK" of="$SW_DIR/data.img" bs=1M skip=$((SW_D / 1048576)) count=$((SW_DATA / 1048576)) \
                        conv=sparse status=none
                e=0
                # (no -f: with it e2fsck makes a whole check and repairs what it finds)
                e2fsck -E journal_only -y "$SW_DIR/data.img" >"$SW_DIR/fsck.out" 2>&1 || e=$?
                if [ $e -ge 4 ]; then
                        fails+=("data: e2fsck -E journal_only: status $e: $(tail -n 2 "$SW_DIR/fsck.out" | tr '\n' ' ')")
                elif ! e2fsck -fn "$SW_DIR/data.img" >"$SW_DIR/fsck.out" 2>&1; then
                        fails+=("data: e2fsck -fn after the journal: $(grep -v '^Pass\|^e2fsck\|^data\.img:' "$SW_DIR/fsck.out" | head -3 | tr '\n' ' ')")
                else
                        mkdir -p "$SW_DIR/data"
                        debugfs -R "rdump / $SW_DIR/data" "$SW_DIR/data.img" >/dev/null 2>"$SW_DIR/debugfs.err" || true
                        local dirs=("$SW_DIR/data")
                        for f in update outbox workloads; do
                                if [ -d "$SW_DIR/data/$f" ]; then dirs+=("$SW_DIR/data/$f"); fi
                        done
                        # agent.lock: the agent's lock on its state dir, empty (not state)
                        if "$SW_STATE_CHECK" --ignore agent.lock "${dirs[@]}" >"$SW_DIR/state.out" 2>&1; then
                                data_note="fsck clean; $(tail -n 1 "$SW_DIR/state.out" | sed 's/^state-check: //')"
                        else
                                fails+=("data: $(grep -a '^BAD' "$SW_DIR/state.out" | head -3 | tr '\n' ' ')$(tail -n 1 "$SW_DIR/state.out")")
                        fi
                fi
        fi
        if [ ${#fails[@]} -eq 0 ]; then
                echo "ok $where: grubenv $(cat "$SW_DIR/env" 2>/dev/null)-> $choice ($slot_note); data: $data_note"
        else
                for f in "${fails[@]}"; do echo "FAIL $where: $f"; done
                return 1
        fi
}

pc_event() { tr -d '\r' <"$WORK/events-$PC_RUN" 2>/dev/null | grep -q -- "$1"; }
# Reports are counted by their beginnings: a random cut may leave one without its end.
reports_begun() { grep -c '^BOARD begin' "$WORK/report" 2>/dev/null || true; }
report_whole() { # N: the Nth report has its end
        tr -d '\r' <"$WORK/report" | awk -v n="$1" '/^BOARD begin/ { i++ } i == n && /^BOARD end/ { e = 1 } END { exit !e }'
}
pc_events_all() { cat "$WORK"/events-* 2>/dev/null | tr -d '\r'; }

# The boot state as the board's bootloader reads it after a cut, by the agent's names:
# ORDER, A_OK, B_OK, A_TRIES, B_TRIES (x86_64: the grubenv that node_grubenv copied to
# $WORK/grubenv, ORBIT_*; aarch64: U-Boot's environment in the flash file, BOOT_*, tries
# BOOT_*_LEFT).
bl_value() { # KEY
        if [ "$ARCH" = x86_64 ]; then
                grubenv_value "ORBIT_$1"
        else
                uboot_env_value "BOOT_${1/TRIES/LEFT}"
        fi
}

# The environment after QEMU is gone, for bl_value: x86_64 copies the ESP's grubenv to
# $WORK/grubenv; aarch64's is read from the flash file as it is.
bl_read_env() { [ "$ARCH" != x86_64 ] || node_grubenv "$WORK/grubenv"; }

# One line of the boot state bl_value reads, for the log.
bl_env_summary() {
        if [ "$ARCH" = x86_64 ]; then
                echo "grubenv: $(grub-editenv "$WORK/grubenv" list | grep ^ORBIT_ | tr '\n' ' ')"
        else
                echo "U-Boot's environment: $(uboot_env_state) (ORDER/A_OK/A_LEFT/B_OK/B_LEFT), copies $(uboot_copies_whole)"
        fi
}

# The slot the boot script (GRUB's write_grub_cfg, U-Boot's orbit_select) picks from the
# environment read after a cut: the first of the order that is good or has a try left;
# "factory" when the order is missing (x86_64: an unreadable or unwritten grubenv, GRUB's
# never-initialised branch; aarch64: no whole copy, U-Boot's built-in environment, which
# has no orbit_boot at all).
pc_bl_choice() {
        local order s ok tries
        order=$(bl_value ORDER)
        [ -n "$order" ] || { echo factory; return; }
        for s in $order; do
                ok=$(bl_value "${s}_OK") tries=$(bl_value "${s}_TRIES")
                if [ "$ok" = 1 ] || [ "${tries:-0}" -gt 0 ] 2>/dev/null; then echo "$s"; return; fi
        done
        echo none
}

# After a cut, with QEMU gone: the board's environment as its bootloader will read it.
# Sets PC_CHOICE.
pc_check_env() { # NAME
        if [ "$ARCH" = x86_64 ]; then pc_check_grubenv "$1"; else pc_check_ubootenv "$1"; fi
}

# aarch64, after a cut: U-Boot's environment as U-Boot will load it. Sets PC_CHOICE.
pc_check_ubootenv() { # NAME
        local name=$1 whole
        whole=$(uboot_copies_whole 2>&1)
        case "$whole" in
        good) ok "$name: U-Boot's environment (one copy) whole" ;;
        good/good) ok "$name: both copies of U-Boot's environment whole (flags $(uboot_flags))" ;;
        *good*) ok "$name: a whole copy of U-Boot's environment in force ($whole, flags $(uboot_flags))" ;;
        *) not_ok "$name: no whole copy of U-Boot's environment ($whole): U-Boot would boot its built-in one" ;;
        esac
        PC_CHOICE=$(pc_bl_choice)
        echo "# $name: U-Boot's environment $(uboot_env_state) (ORDER/A_OK/A_LEFT/B_OK/B_LEFT) -> U-Boot boots $PC_CHOICE"
}

# After a cut, with QEMU gone: the ESP's grubenv as GRUB will read it. Sets PC_CHOICE.
pc_check_grubenv() { # NAME
        local name=$1 problem
        rm -f "$WORK/grubenv"
        if ! node_grubenv "$WORK/grubenv" 2>"$WORK/mtools.err"; then
                not_ok "$name: the ESP's grubenv readable (mtools: $(head -c 300 "$WORK/mtools.err"))"
                PC_CHOICE=factory
                return
        fi
        problem=$(grubenv_problem "$WORK/grubenv")
        if [ -z "$problem" ]; then
                ok "$name: the ESP's grubenv is whole (1024 bytes, grub-editenv reads it)"
        else
                not_ok "$name: the ESP's grubenv: $problem"
        fi
        PC_CHOICE=$(pc_bl_choice)
        echo "# $name: grubenv $(grep -a ^ORBIT_ "$WORK/grubenv" | tr '\n' ' ')-> GRUB boots $PC_CHOICE"
        # The FAT itself (fsck.fat -n on a copy: reads only): what a cut left besides the file.
        dd if="$WORK/disk.img" of="$WORK/esp-cut.img" bs=1M skip=1 count=$ESP_MIB status=none
        # A cut always leaves the dirty bit (byte 65 of the boot sector, which its backup
        # lacks): that and the summary line are left out, anything else is shown.
        fsck.fat -n "$WORK/esp-cut.img" 2>&1 | grep -Ev '^fsck.fat|^Checking|^Starting|esp-cut.img|boot sector and its backup|mostly harmless|^ +65:01/00|Not automatically fixing|Dirty bit is set|removing dirty bit|^ *$|Leaving filesystem unchanged' |
                head -5 | sed "s/^/# $name: fsck.fat -n: /" || true
        rm -f "$WORK/esp-cut.img"
}

# Power-on N's (first) boot: its report waited for, cut out and checked as booting SLOT.
pc_boot() { # N NAME SLOT
        local r=$((PC_R0 + 1))
        wait_until "$TIMEOUT" report_whole "$r" || { not_ok "$2: power-on $1 reported"; return 1; }
        echo "# power-on $1: report after $(mins $PC_T) min"
        report_part "$r"
        RFILE=$WORK/report-$r
        check_boot "$2" "$3"
}

# Wait for the agent to log that a failpoint holds it (its journal, events-N).
pc_held() { # NAME PATTERN
        if wait_until 1800 pc_event "$2"; then
                ok "$1: the agent held there ($(mins $PC_T) min after power-on $PC_RUN)"
        else
                not_ok "$1: the agent never got there (events: $WORK/events-$PC_RUN)"
                return 1
        fi
}

pc_stop() { echo "$PASSES passed, $FAILS failed"; return 1; }

# The install's resume in power-on N's journal: "resuming rootfs: K of M chunks already in slot X".
pc_resumed() { tr -d '\r' <"$WORK/events-$1" | grep -o 'resuming rootfs: [0-9]* of [0-9]* chunks already in slot [AB]' | head -1 || true; }

# board.sh test-powercut: one node, a rollout of v2 (test-rollout's images and controller,
# the link not shaped unless ORBIT_BOARD_NETEM says so), and power cuts, each at a point
# the agent is held at by a failpoint and tells the host about (its journal):
#   1. the install stalled at PC_STALL_PERCENT% of slot B durable;
#   2. the bootloader environment's write arming B held once written in place, before
#      its fsyncs (x86_64: the grubenv's sector; aarch64: U-Boot's new copy);
#   2b. the same write held once it is durable, before "ready" is saved (when cut 2
#      lost the arm: it almost always does);
#   3. the write committing B, in B's trial, held the same way.
# After each: the environment whole (a whole copy, on U-Boot), the bootloader's choice a
# good slot (never the factory branch),
# the boot there, and the install or the trial going on to the commit.
cmd_test_powercut() {
        local t0=$SECONDS t n=0
        local stall=ORBIT_FAILPOINT_BOOTENV_STALL_FILE=/run/orbit-board/stall
        ROLL_NETEM=${ORBIT_BOARD_NETEM:-"delay 20ms"}
        if [ "$ARCH" != x86_64 ]; then
                BL_NAME=U-Boot BL_KIND=uboot BL_ENV="U-Boot environment"
                # the disk's lost cache and its sweep read the slots with GRUB's drivers
                [ "$LOSE_CACHE" = 0 ] || die "--lose-cache: x86_64 only"
                command -v fw_printenv >/dev/null || die "fw_printenv missing (libubootenv-tool)"
        fi
        cmd_build
        local build_min; build_min=$(mins $t0)
        [ -n "$WORK" ] || { WORK=$(mktemp -d "${TMPDIR:-/tmp}/orbit-board.XXXXXXXX"); ROLL_TMPWORK=$WORK; }
        prepare_node
        qemu_args
        command -v jq >/dev/null && command -v debugfs >/dev/null && command -v fsck.fat >/dev/null ||
                die "test-powercut needs jq, debugfs (e2fsprogs) and fsck.fat (dosfstools)"
        trap rollout_cleanup EXIT
        trap 'exit 143' TERM INT HUP # so a stopped run cleans up too (its netns, QEMU, controller)
        echo "# build (or cache): $build_min min"
        if [ "$LOSE_CACHE" = 1 ]; then
                case "$PC_CACHE_TAIL" in
                none|all) ;;
                random:*[!0-9]*|random:) die "ORBIT_BOARD_CACHE_TAIL: none, all or random:SEED, not '$PC_CACHE_TAIL'" ;;
                random:*) ;;
                *) die "ORBIT_BOARD_CACHE_TAIL: none, all or random:SEED, not '$PC_CACHE_TAIL'" ;;
                esac
                # the replay tool, from this tree (libc only: no build of the tree needed)
                PC_REPLAY=$WORK/log-writes-replay
                cc -O2 -Wall -I"$top_srcdir" -o "$PC_REPLAY" "$top_srcdir/tests/integration/log-writes.c" \
                        "$top_srcdir/tests/integration/log-writes-replay.c" || die "building log-writes-replay failed"
                qemu-img --help | grep '^Supported formats:' | grep -qw blklogwrites ||
                        die "--lose-cache: this QEMU has no blklogwrites driver"
                echo "# --lose-cache: each cut loses the writes after the disk's last flush (tail: $PC_CACHE_TAIL)"
                if [ "$PC_SWEEP" != 0 ]; then
                        local bdir
                        bdir=$(find_builddir) || die "the sweep needs a build of this tree (its state-check): configure and build in _build/plain, set ORBIT_BOARD_BUILDDIR, or ORBIT_BOARD_SWEEP=0"
                        "${NICE[@]}" make -s -C "$bdir" tests/integration/state-check >&2 || die "building state-check in $bdir failed"
                        PC_STATE_CHECK=$bdir/tests/integration/state-check
                        echo "# --lose-cache: and before each cut, the sweep: a cut at each flush of the power-on, checked"
                fi
        fi
        log "node: $WORK"
        host_tools
        FLEET_DIR=$WORK/ground
        # shellcheck disable=SC2034 # read by fleet_start_controller
        FLEET_POLL_SEC=10
        mkdir -p "$FLEET_DIR"
        # shellcheck source=scripts/fleet-lib.sh
        . "$top_srcdir/scripts/fleet-lib.sh"
        rollout_keys || die "making the keys failed"
        board_net_up || die "the board's network namespace ($BOARD_NS, tap0) could not be made"
        fleet_start_controller || die "the controller did not start ($FLEET_DIR/controller.log)"
        rollout_images || die "deriving the rollout images from slot A failed"
        rollout_bundle board-v2 "$WORK/images/v2.img" 2.0.0 || die "orbit-bundle create failed"
        if [ "$LOSE_CACHE" = 1 ] && [ "$PC_SWEEP" != 0 ]; then
                # the sweep's good images: slot A as the factory wrote it, and v2
                command -v grub-fstest >/dev/null || die "the sweep needs grub-fstest (grub-common)"
                PC_BOOT_A=$(slot_boot_files "$IMAGE/disk.img" loop0,gpt2)
                PC_BOOT_B=$(slot_boot_files "$WORK/images/v2.img" loop0)
                PC_SHA_B=$(sha256sum <"$WORK/images/v2.img" | cut -c1-64)
                case "$PC_BOOT_A $PC_BOOT_B" in
                *"GRUB cannot"*) die "the sweep: the images' boot files unreadable (A: $PC_BOOT_A; v2: $PC_BOOT_B)" ;;
                esac
                echo "# the sweep's good images: A's boot files $PC_BOOT_A; v2's $PC_BOOT_B"
        fi
        fleet_oc bundle upload "$WORK/images/board-v2.obundle" >/dev/null || die "bundle upload failed"
        rm -f "$WORK"/images/*.img
        make_config_disk "$WORK/config.img"
        : >"$WORK/report"
        rm -f "$WORK"/events-* "$WORK/sweep-env-seen" "$WORK/sweep-b-was-v2"
        if [ "$PC_RANDOM" -gt 0 ]; then
                pc_random_cuts "$t0"
                return
        fi

        # 1. The install cut: slot B half written (the failpoint holds the worker once
        #    PC_STALL_PERCENT% is durable).
        pc_power_on $((n += 1)) "ORBIT_FAILPOINT_INSTALL_STALL_PERCENT=$PC_STALL_PERCENT"
        pc_boot $n first A || pc_stop || return 1
        wait_until 600 node_synced || { not_ok "the node synced"; pc_stop; return 1; }
        fleet_oc rollout create --id r1 --bundle board-v2 --target all --stages 100 --max-failures 0 >/dev/null &&
                fleet_oc rollout start r1 >/dev/null || { not_ok "rollout r1 created and started"; pc_stop; return 1; }
        pc_held "cut 1: the install stalled at $PC_STALL_PERCENT%" "failpoint: install stalled" || pc_stop || return 1
        echo "# cut 1: $(tr -d '\r' <"$WORK/events-$n" | grep -o 'install stalled at [^)]*)' | head -1 || true)"
        pc_cut "cut 1 (install)"
        pc_check_env "cut 1"
        expect "cut 1: $BL_NAME boots the active slot" "$PC_CHOICE" A
        expect "cut 1: B out of the choices while written (B_OK/B_TRIES)" \
                "$(bl_value B_OK)/$(bl_value B_TRIES)" "0/0"

        # 1b. The torn cut: the install resumes (the progress file kept its chunks) and a
        #     save of its progress, once PC_TEAR_PERCENT% is durable, is held half written:
        #     the new copy on the disk up to its last byte that differs from the older copy
        #     in that block. The tear's file key is the failpoints file itself, there from
        #     before the agent starts: the install may pass that point before the report.
        local nch=$((ROOTFS_MIB * 1024 * 1024 / ROLL_CHUNK))
        pc_power_on $((n += 1)) "ORBIT_FAILPOINT_PROGRESS_TEAR_PERCENT=$PC_TEAR_PERCENT" \
                ORBIT_FAILPOINT_PROGRESS_TEAR_FILE=/run/orbit-board/failpoints.env
        pc_boot $n "cut 1: next boot" "$PC_CHOICE" || pc_stop || return 1
        pc_held "cut 1b: a save of the install's progress torn past $PC_TEAR_PERCENT%" "failpoint: the install progress save torn" ||
                pc_stop || return 1
        local resumed kept torn_line torn
        resumed=$(pc_resumed "$n")
        kept=$(printf '%s\n' "$resumed" | awk '{ print $3 }')
        if [ "${kept:-0}" -gt 0 ] 2>/dev/null; then ok "cut 1: the install resumed with its chunks ($resumed)"
        else not_ok "cut 1: the install did not resume from its progress (${resumed:-no 'resuming rootfs' line})"; fi
        PC_KEPT1=${kept:-0}
        # the factory slot A has no record: the scan power-on 1 made of it is kept, not redone
        if tr -d '\r' <"$WORK/events-$n" | grep -q 'as its scan kept it (.*): not hashed again'; then
                ok "cut 1: the resumed install took slot A's kept scan (not hashed again)"
        else
                not_ok "cut 1: the resumed install: $(tr -d '\r' <"$WORK/events-$n" | grep -o 'hashing the active slot.*\|kept scan.*' | head -1)"
        fi
        torn_line=$(tr -d '\r' <"$WORK/events-$n" | grep -o 'save torn (.*written' | head -1 || true)
        torn=$(printf '%s\n' "$torn_line" | sed -n 's/^save torn ([a-z]*: \([0-9]*\) of .*/\1/p')
        echo "# cut 1b: $torn_line"
        pc_cut "cut 1b (a progress save torn)"
        pc_check_env "cut 1b"
        expect "cut 1b: $BL_NAME boots the active slot" "$PC_CHOICE" A

        # 2. The arm cut: the install resumes from the copy the torn one did not overwrite
        #    and completes; the grubenv write arming B holds after its sector is
        #    overwritten in place (in the guest's page cache, not fdatasynced yet).
        pc_power_on $((n += 1)) ORBIT_FAILPOINT_BOOTENV_STALL_AT=try:overwritten "$stall"
        pc_boot $n "cut 1b: next boot" "$PC_CHOICE" || pc_stop || return 1
        pc_held "cut 2: the $BL_ENV write arming B, overwritten in place" "failpoint: the boot environment write (try).* stalled overwritten" ||
                pc_stop || return 1
        local refused
        refused=$(tr -d '\r' <"$WORK/events-$n" | grep -o 'state [^ ]*/progress: copy [01] corrupt .*' | head -1 || true)
        if [ -n "$refused" ]; then ok "cut 1b: the torn copy refused ($refused)"
        else not_ok "cut 1b: no torn copy of the progress reported (events: $WORK/events-$n)"; fi
        resumed=$(pc_resumed "$n")
        kept=$(printf '%s\n' "$resumed" | awk '{ print $3 }')
        if [ -n "$torn" ] && [ "${kept:-0}" -ge "${PC_KEPT1:-1}" ] 2>/dev/null && [ "$kept" -lt "$torn" ]; then
                ok "cut 1b: the install resumed from the older copy ($resumed; the torn copy had $torn)"
        else
                not_ok "cut 1b: the resume after the tear: ${resumed:-no 'resuming rootfs' line} (torn copy: ${torn:-?} chunks, at least ${PC_KEPT1:-?})"
        fi
        pc_cut "cut 2 (arm, overwritten)"
        pc_check_env "cut 2"
        case "$PC_CHOICE" in
        A) ok "cut 2: $BL_NAME boots a good slot (A: the arm was not on the disk yet)" ;;
        B) ok "cut 2: $BL_NAME boots a good slot (B: the arm was on the disk already)" ;;
        *) not_ok "cut 2: $BL_NAME's choice: $PC_CHOICE" ;;
        esac

        # 2b. The arm durable, "ready" not saved yet: GRUB boots B, whose agent finds its
        #     install "installing" and must take it for finished (its trial), not resume
        #     into the slot it runs from. Cut 2 leaves that state itself when it kept the arm.
        if [ "$PC_CHOICE" = A ]; then
                # U-Boot's redundant environment is in force once the old copy is marked
                # obsolete, the second write (docs/update.md)
                local durable=try:synced
                [ "$ARCH" = x86_64 ] || ! uboot_redundant || durable=try:synced:2
                pc_power_on $((n += 1)) ORBIT_FAILPOINT_BOOTENV_STALL_AT=$durable "$stall"
                pc_boot $n "cut 2: next boot" A || pc_stop || return 1
                pc_held "cut 2b: the $BL_ENV write arming B, durable" "failpoint: the boot environment write (try).* stalled synced" ||
                        pc_stop || return 1
                # The progress file outlives the lost arm: every chunk is read back, none written.
                local again; again=$(pc_resumed "$n")
                case "$again" in
                *": $nch of $nch chunks"*) ok "cut 2: the install resumed with every chunk kept ($again)" ;;
                *) not_ok "cut 2: the install after the lost arm: ${again:-no 'resuming rootfs' line}" ;;
                esac
                pc_cut "cut 2b (arm, synced)"
                pc_check_env "cut 2b"
                expect "cut 2b: B armed on the disk (ORDER/B_OK/B_TRIES)" \
                        "$(bl_value ORDER)/$(bl_value B_OK)/$(bl_value B_TRIES)" "B A/0/$ROLL_TRIES"
                expect "cut 2b: $BL_NAME boots the armed slot" "$PC_CHOICE" B
        else
                echo "# cut 2b: not run (cut 2 had the arm on the disk: the state it would make)"
        fi

        # 3. The commit cut: B's trial (the gate holds gate_sec, the controller is
        #    reached), and the grubenv write committing B holds after the overwrite.
        pc_power_on $((n += 1)) ORBIT_FAILPOINT_BOOTENV_STALL_AT=good:overwritten "$stall"
        pc_boot $n "cut 2: the trial boot" B || pc_stop || return 1
        expect "the trial boot runs the new image" "$(report_value version)" board-v2
        pc_held "cut 3: the $BL_ENV write committing B, overwritten in place" "failpoint: the boot environment write (good).* stalled overwritten" ||
                pc_stop || return 1
        local at_start; at_start=$(tr -d '\r' <"$WORK/events-$n" | grep -o 'update: at start, .*' | head -1 || true)
        echo "# the trial boot: ${at_start:-no 'at start' line}"
        pc_cut "cut 3 (commit, overwritten)"
        pc_check_env "cut 3"
        expect "cut 3: $BL_NAME boots the new slot (committed, or a try left)" "$PC_CHOICE" B

        # 4. Power on without failpoints: B, and the commit.
        pc_power_on $((n += 1))
        pc_boot $n "cut 3: next boot" B || pc_stop || return 1
        expect "cut 3: slot B runs the new image" "$(report_value version)" board-v2
        pc_final "$t0" torn
}

# The end of either mode, the last power-on running uncut: the commit seen by the
# controller, no failure or rollback anywhere, the state files found corrupt (TORN: the
# one progress copy cut 1b tore; ANY: whatever random cuts tore, each restored), the
# grubenv left with B committed.
pc_final() { # T0 torn|any
        local t0=$1 c corrupt
        if wait_until 1800 node_state_is r1 committed; then ok "the controller sees the commit ($(mins $PC_T) min after power-on $PC_RUN)"
        else not_ok "node state $(node_state r1), not committed"; fi
        c=$(records_of update.committed | jq 'length' || true)
        [ "${c:-0}" -ge 1 ] && ok "update.committed on the controller" || not_ok "no update.committed record"
        c=$(records_of update.failed | jq 'length' || true)
        expect "no update.failed record" "${c:-0}" 0
        c=$(records_of update.rolled-back | jq 'length' || true)
        expect "no update.rolled-back record" "${c:-0}" 0
        local failed; failed=$(pc_events_all | grep -E 'update board-v2 [^ ]*: (failed|rolled-back)' | head -2 || true)
        [ -z "$failed" ] && ok "the agent never failed or rolled back the update (its journal, every boot)" ||
                not_ok "the agent's journal: $failed"
        # The progress file is written in place (two copies); a cut that is not inside
        # one of its writes leaves both whole.
        corrupt=$(pc_events_all | grep -E 'state .*(corrupt|unusable|restoring last good)' || true)
        c=$(records_of state.corrupt | jq -c '[.[] | {path: (.body.path | sub(".*/"; "")), restored: .body.restored}]' || true)
        echo "# state.corrupt records on the controller: $c"
        if [ "$2" = torn ]; then
                expect "state files found corrupt after the cuts: one, the progress copy torn by cut 1b (the agent's journal, every boot)" \
                        "$(printf '%s\n' "$corrupt" | grep -c .)/$(printf '%s\n' "$corrupt" | grep -c '/progress: copy [01] corrupt (bad header or checksum), not trusted; using copy [01]')" 1/1
                expect "state.corrupt records on the controller: the torn progress copy, restored" "$c" '[{"path":"progress","restored":true}]'
        else
                # a random cut may land inside a write of the progress: survived if restored
                [ -n "$corrupt" ] && printf '%s\n' "$corrupt" | sed 's/^/# found corrupt: /'
                if [ -z "$(printf '%s\n' "$corrupt" | grep . | grep -v 'not trusted; using copy' || true)" ] &&
                        [ "$(jq '[.[] | select(.restored != true)] | length' <<<"${c:-[]}")" = 0 ]; then
                        ok "every state file found corrupt after the random cuts had a good copy ($(printf '%s\n' "$corrupt" | grep -c .) found)"
                else
                        not_ok "a state file with no good copy after the random cuts: $(printf '%s\n' "$corrupt" | head -3)"
                fi
        fi
        if [ "$LOSE_CACHE" = 1 ]; then
                # QEMU's quit would flush the disk (bdrv_close): the end is a cut too, so
                # the commit the controller saw must be on the disk by then
                pc_cut "end (the commit seen)"
                echo "# --lose-cache: the cuts lost $PC_LOST_WRITES writes in all that the disk had acknowledged"
        else
                board_quit
        fi
        bl_read_env
        echo "# end: $(bl_env_summary)"
        expect "end: $BL_NAME's environment: B first and good (ORDER/B_OK)" "$(bl_value ORDER)/$(bl_value B_OK)" "B A/1"
        echo "# total: $(mins "$t0") min"
        echo "$PASSES passed, $FAILS failed"
        [ "$FAILS" -eq 0 ]
}

# test-powercut --random N: the same node and rollout, no failpoint; N cuts, each at a
# moment drawn from the guest's own events plus a seeded delay, then a power-on left to
# run to the commit. A cut's anchor is the agent's start in that power-on ("update: ready;
# booted slot X": it resumes an install or begins a trial right then), in the first
# power-on its first line about the update (after the rollout starts); its delay is
# 0..PC_WINDOW s from bash's generator seeded with PC_SEED. The seed and each draw are
# printed: --seed S draws the same delays again (TCG's timing still varies). A cut may
# come before the boot's report: the boot is then checked from the agent's journal.
pc_random_cuts() { # T0
        local t0=$1 n=0 i delay start slot phase last
        RANDOM=$PC_SEED
        echo "# random cuts: $PC_RANDOM, seed $PC_SEED (--seed $PC_SEED draws the same delays), delays 0-$PC_WINDOW s"
        PC_CHOICE=A
        for ((i = 1; i <= PC_RANDOM + 1; i++)); do
                pc_power_on $((n += 1))
                if [ "$n" = 1 ] || [ "$i" -gt "$PC_RANDOM" ]; then
                        pc_boot $n "power-on $n" "$PC_CHOICE" || pc_stop || return 1
                fi
                if [ "$n" = 1 ]; then
                        wait_until 600 node_synced || { not_ok "the node synced"; pc_stop; return 1; }
                        fleet_oc rollout create --id r1 --bundle board-v2 --target all --stages 100 --max-failures 0 >/dev/null &&
                                fleet_oc rollout start r1 >/dev/null || { not_ok "rollout r1 created and started"; pc_stop; return 1; }
                        wait_until 1800 pc_event 'board-v2' ||
                                { not_ok "the agent never logged the update (events: $WORK/events-$n)"; pc_stop; return 1; }
                else
                        # the agent's start in this boot: the slot it booted, the update's phase
                        wait_until "$TIMEOUT" pc_event 'update: ready; booted slot' ||
                                { not_ok "power-on $n: the agent started (events: $WORK/events-$n)"; pc_stop; return 1; }
                        start=$(tr -d '\r' <"$WORK/events-$n" | grep -o 'update: ready; booted slot .*' | head -1)
                        slot=$(printf '%s\n' "$start" | sed -n 's/^update: ready; booted slot \([AB]\).*/\1/p')
                        phase=$(printf '%s\n' "$start" | sed -n 's/.*, last update \([a-z-]*\).*/\1/p')
                        echo "# power-on $n: the agent up $(mins $PC_T) min after power-on: slot ${slot:-?}, update ${phase:-?}"
                        expect "random cut $((i - 1)): next boot: the agent runs in $BL_NAME's choice" "$slot" "$PC_CHOICE"
                        pc_check_goes_on "random cut $((i - 1)): next boot" "$phase" "$slot"
                fi
                [ "$i" -le "$PC_RANDOM" ] || break
                if node_state_is r1 committed; then
                        echo "# the update was committed before random cut $i: the cuts stop here"
                        [ "$n" = 1 ] || pc_boot $n "power-on $n" "$PC_CHOICE" || pc_stop || return 1
                        break
                fi
                delay=$((RANDOM % (PC_WINDOW + 1)))
                echo "# random cut $i: $delay s after the anchor (power-on $n, $(mins $PC_T) min)"
                sleep "$delay" # the drawn moment of the cut, not a wait for anything
                last=$(tr -d '\r' <"$WORK/events-$n" | grep -v 'event loop: one dispatch held' | tail -1 | cut -c1-200)
                pc_cut "random cut $i"
                # the boot's report, when it came before the cut (the host's file outlives QEMU)
                if [ "$n" != 1 ]; then
                        if report_whole $((PC_R0 + 1)); then
                                echo "# power-on $n: its report came before the cut"
                                report_part $((PC_R0 + 1))
                                RFILE=$WORK/report-$((PC_R0 + 1))
                                check_boot "power-on $n" "$PC_CHOICE"
                        else
                                echo "# power-on $n: no report (the cut came first)"
                        fi
                fi
                echo "# random cut $i: the last line of the agent's journal before it: $last"
                pc_check_env "random cut $i"
                case "$PC_CHOICE" in
                A|B) ok "random cut $i: $BL_NAME boots a good slot ($PC_CHOICE)" ;;
                *) not_ok "random cut $i: $BL_NAME's choice: $PC_CHOICE" ;;
                esac
        done
        pc_final "$t0" any
}

# After a random cut: the update goes on from where the cut left it, in the slot that
# matches (never failed or rolled back; an install resumes in A, a trial or commit in B).
pc_check_goes_on() { # NAME PHASE SLOT
        case "$2" in
        installing|fetching)
                expect "$1: an unfinished update runs in the old slot" "$3" A
                if wait_until 600 pc_event 'update: resuming the'; then
                        ok "$1: the $2 resumes ($(tr -d '\r' <"$WORK/events-$PC_RUN" | grep -o 'update: resuming the [a-z]*' | head -1)$(
                                r=$(pc_resumed "$PC_RUN"); [ -z "$r" ] || echo "; $r"))"
                else
                        not_ok "$1: no 'resuming the' line for the $2 (events: $WORK/events-$PC_RUN)"
                fi ;;
        idle) echo "# $1: idle (the cut came before the install was saved; the controller sends it again)" ;;
        ready) echo "# $1: ready in slot $3" ;;
        trial|committed) expect "$1: the new slot runs its $2" "$3" B ;;
        *) not_ok "$1: the update is '$2'" ;;
        esac
}

usage() { sed -n '2,40s/^# \{0,1\}//p' "$0"; }

# The whole command line is handled in main, read in full before it runs: a build takes
# many minutes, and bash reads a script as it goes, so an edit of this file during a
# run would otherwise run whatever text then stands past the point reached.
main() {
        cmd=${1:-}
        [ $# -gt 0 ] && shift
        DEBS="" HOST_DEBS="" ARCH=x86_64 WORK="" SUITES="" NET=0 PC_RANDOM=0 PC_SEED="" LOSE_CACHE=0
        while [ $# -gt 0 ]; do
                case "$1" in
                --debs) DEBS=$(cd "${2:?--debs needs a directory}" && pwd); shift ;;
                --host-debs) HOST_DEBS=$(cd "${2:?--host-debs needs a directory}" && pwd); shift ;;
                --arch) ARCH=${2:?--arch needs x86_64 or aarch64}; shift ;;
                --work) WORK=${2:?--work needs a directory}; shift ;;
                --suites) SUITES=${2:?--suites needs a list: systemd runtime unit esp mtd cfi}; shift ;;
                --random) PC_RANDOM=${2:?--random needs a number of cuts}; shift ;;
                --seed) PC_SEED=${2:?--seed needs a number}; shift ;;
                --lose-cache) LOSE_CACHE=1 ;;
                -h|--help) usage; exit 0 ;;
                *) die "unknown option '$1' (try --help)" ;;
                esac
                shift
        done
        case "$ARCH" in x86_64|aarch64) ;; *) die "--arch: x86_64 or aarch64, not '$ARCH'" ;; esac
        case "$BOARD_NIC" in tap|user) ;; *) die "ORBIT_BOARD_NIC: tap or user, not '$BOARD_NIC'" ;; esac
        # esp: the grub backend on the ESP (aarch64 keeps its environment in flash)
        if [ -z "$SUITES" ]; then
                SUITES="systemd runtime unit esp mtd"
                [ "$ARCH" = x86_64 ] || SUITES="systemd runtime unit cfi"
        fi
        case "$PC_RANDOM" in ''|*[!0-9]*) die "--random: a number of cuts, not '$PC_RANDOM'" ;; esac
        [ -n "$PC_SEED" ] || PC_SEED=$(( $(od -An -N2 -tu2 /dev/urandom) ))
        case "$PC_SEED" in *[!0-9]*) die "--seed: a number, not '$PC_SEED'" ;; esac
        [ "$LOSE_CACHE" = 0 ] || [ "$cmd" = test-powercut ] || die "--lose-cache: for test-powercut only"
        set_base_pkgs "$ARCH"
        case "$cmd" in
        build) cmd_build; echo "$IMAGE/disk.img" ;;
        boot) cmd_boot ;;
        test) cmd_test ;;
        test-guest) cmd_test_guest ;;
        test-rollout) NET=1; cmd_test_rollout ;;
        test-powercut) NET=1; cmd_test_powercut ;;
        sweep-point) cmd_sweep_point ;; # one point of test-powercut --lose-cache's sweep (pc_sweep)
        base) base_tarball "$ARCH" ;; # the debootstrap step alone (cached)
        uboot) uboot_build; echo "$UBOOT_BIN" ;; # aarch64's U-Boot alone (cached)
        debs) find_debs "$DEBS"; echo "$AGENT_DEB $CTL_DEB" ;; # the .debs alone (cached)
        -h|--help|help) usage ;;
        *) usage >&2; exit 2 ;;
        esac
}

main "$@"; exit $?
