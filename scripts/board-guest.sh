#!/usr/bin/env bash
# Runs inside the virtual board's guest (scripts/board.sh test-guest), as root, from the
# tests disk: the packaged unit under real systemd (issue #20 item 7) and the runtime's
# integration tests on pure cgroup v2 (item 6). docs/board.md lists what is checked.
#
# Usage: board-guest.sh [systemd] [runtime] [unit] [esp] [mtd] [cfi]
# Layout of the tests disk: src/ (top_srcdir: scripts/, tests/integration/) and build/
# (top_builddir: the test helpers built on the host; orbit-agent, orbitctl and
# orbit-sandbox-init are links to the installed package's). Output: "ok - " and
# "not ok - " lines, "# " notes, and "suite NAME seconds S" lines; the host counts them.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
T=${here%/src/scripts}
UNIT=orbit-agent.service
FAILS=0
ok() { printf 'ok - %s\n' "$*"; }
not_ok() { printf 'not ok - %s\n' "$*"; FAILS=$((FAILS + 1)); }
note() { printf '# %s\n' "$*"; }
expect() { # name, got, want
        if [ "$2" = "$3" ]; then ok "$1 ($2)"; else not_ok "$1: got '$2', want '$3'"; fi
}
# wait_until SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_until() {
        local deadline=$((SECONDS + $1))
        shift
        until "$@"; do
                [ $SECONDS -lt $deadline ] || { "$@"; return; }
                sleep 0.2
        done
}
prop() { systemctl show -P "$1" "$UNIT"; }

# orbitctl with the agent unit's capability bounding set: the agent refuses a root shell's
# peer it cannot inspect (docs/board.md, "Found by the board"). A command, for timeout(1).
CTL=(setpriv --inh-caps=-all
     --bounding-set="-all,+$(prop CapabilityBoundingSet | sed -e 's/cap_//g' -e 's/ /,+/g')" orbitctl)

# The capabilities by number (linux/capability.h), to read /proc/PID/status masks.
CAPS=(chown dac_override dac_read_search fowner fsetid kill setgid setuid setpcap
      linux_immutable net_bind_service net_broadcast net_admin net_raw ipc_lock ipc_owner
      sys_module sys_rawio sys_chroot sys_ptrace sys_pacct sys_admin sys_boot sys_nice
      sys_resource sys_time sys_tty_config mknod lease audit_write audit_control setfcap
      mac_override mac_admin syslog wake_alarm block_suspend audit_read perfmon bpf
      checkpoint_restore)
cap_names() { # a hex mask: the names of its capabilities, sorted, one line
        local mask=$((16#$1)) i out=()
        for i in "${!CAPS[@]}"; do
                (( (mask >> i) & 1 )) && out+=("cap_${CAPS[$i]}")
        done
        printf '%s\n' "${out[@]}" | sort | tr '\n' ' ' | sed 's/ $//'
}
status_field() { sed -n "s/^$2:[[:space:]]*//p" "/proc/$1/status"; }
in_ns() { nsenter -t "$PID" -m -- "$@"; } # in the agent's mount namespace
mode_in_ns() { in_ns stat -c %a "$1" 2>/dev/null || echo missing; }
writable_in_ns() { # can a directory be made in DIR in the agent's namespace (as root)?
        local f=$1/.orbit-board-probe # a directory: cgroupfs makes no files, only groups
        in_ns sh -c "mkdir '$f' 2>/dev/null && rmdir '$f'"
}

# ---- item 7: systemd --------------------------------------------------------------------
suite_systemd() {
        # READY: a Type=notify unit is active only after READY=1.
        expect "unit Type=notify, NotifyAccess=main" "$(prop Type)/$(prop NotifyAccess)" notify/main
        expect "active after READY=1" "$(prop ActiveState)/$(prop SubState)" active/running
        local status; status=$(prop StatusText)
        case "$status" in
        "Serving: node "*) ok "STATUS= from sd_notify ($status)" ;;
        *) not_ok "STATUS= from sd_notify: '$status'" ;;
        esac
        PID=$(prop MainPID)
        [ "${PID:-0}" -gt 0 ] || { not_ok "MainPID: '$PID'"; return; }

        # The journal: the agent's lines, each with its priority.
        local prios
        prios=$(journalctl -b -u "$UNIT" -o json --no-pager _PID="$PID" |
                jq -r 'select(.SYSLOG_IDENTIFIER == "orbit-agent") | .PRIORITY' | sort -u | tr '\n' ' ')
        case " $prios" in
        *" 6 "*) ok "journalctl -u orbit-agent: the agent's lines with priorities (PRIORITY= $prios)" ;;
        *) not_ok "journalctl -u orbit-agent: no info (6) line from the agent; priorities: '$prios'" ;;
        esac
        if journalctl -b -u "$UNIT" -p info -o cat --no-pager | grep -q 'watchdog enabled, interval 30000 ms'; then
                ok "journal: the agent's own line (watchdog enabled, interval 30000 ms) at priority info"
        else
                not_ok "journal: no 'watchdog enabled, interval 30000 ms' line at priority info or above"
        fi

        # tmpfiles: the dirs exist with what the packaged tmpfiles.d file says.
        local conf=/usr/lib/tmpfiles.d/orbit-agent.conf type path mode user group rest n=0
        if systemd-tmpfiles --cat-config 2>/dev/null | grep -q "^# $conf\$"; then
                ok "systemd-tmpfiles reads $conf"
        else
                not_ok "systemd-tmpfiles --cat-config does not list $conf"
        fi
        while read -r type path mode user group rest; do
                case "$type" in d|D) ;; *) continue ;; esac
                n=$((n + 1))
                expect "tmpfiles: $path" "$(stat -c '%a %U %G' "$path" 2>/dev/null)" "${mode#0} $user $group"
        done < <(grep -v '^#' "$conf")
        [ $n -gt 0 ] || not_ok "no d line in $conf"
        # ... and tmpfiles puts a changed mode back (what it does at every boot).
        chmod 0777 /run/orbit-agent
        systemd-tmpfiles --create "$conf"
        expect "systemd-tmpfiles --create restores /run/orbit-agent" "$(stat -c %a /run/orbit-agent)" 755

        # Hardening directives of the unit, each where it can be seen.
        local want got
        want=$(prop CapabilityBoundingSet | tr ' ' '\n' | sort | tr '\n' ' ' | sed 's/ $//')
        got=$(cap_names "$(status_field "$PID" CapBnd)")
        expect "CapabilityBoundingSet= is the agent's CapBnd" "$got" "$want"
        case " $got " in
        *" cap_sys_ptrace "*|*" cap_mknod "*|*" cap_sys_module "*|*" cap_sys_time "*) not_ok "CapBnd holds a capability the unit leaves out: $got" ;;
        *) ok "CapBnd without cap_sys_ptrace, cap_mknod, cap_sys_module, cap_sys_time" ;;
        esac
        # No NoNewPrivileges= on purpose (the unit says why); the seccomp filters of
        # RestrictRealtime=, LockPersonality=, RestrictSUIDSGID=, SystemCallArchitectures=.
        expect "NoNewPrivs (the unit leaves it to the workloads)" "$(status_field "$PID" NoNewPrivs)" 0
        expect "Seccomp: filter mode (RestrictRealtime=, LockPersonality=, ...)" "$(status_field "$PID" Seccomp)" 2
        got=$(status_field "$PID" Seccomp_filters)
        if [ "${got:-0}" -ge 1 ] 2>/dev/null; then ok "Seccomp_filters $got"; else not_ok "Seccomp_filters '$got'"; fi
        expect "OOMScoreAdjust=-900" "$(cat "/proc/$PID/oom_score_adj")" -900
        # ProtectSystem=strict with the unit's and the board's ReadWritePaths=.
        local d
        for d in /usr /etc /boot; do
                if writable_in_ns "$d"; then not_ok "ProtectSystem=strict: $d writable by the agent"
                else ok "ProtectSystem=strict: $d read-only to the agent"; fi
        done
        # the board's grubenv directory on x86_64; aarch64 keeps its environment in flash,
        # which the agent reaches as a device (its drop-in orders it after the device)
        local rw=(/var/lib/orbit-agent /run/orbit-agent /sys/fs/cgroup)
        [ "$(uname -m)" = x86_64 ] && rw+=(/boot/efi/grub)
        for d in "${rw[@]}"; do
                if writable_in_ns "$d"; then ok "ReadWritePaths=: $d writable by the agent"
                else not_ok "ReadWritePaths=: $d not writable by the agent"; fi
        done
        # ProtectHome=yes, ProtectKernelModules=yes, ProtectKernelLogs=yes: inaccessible
        # (mode 000) or absent in the agent's namespace; PrivateTmp=yes: its own /tmp.
        for d in /home /root /usr/lib/modules /proc/kmsg; do
                got=$(mode_in_ns "$d")
                case "$got" in
                0|missing) ok "inaccessible to the agent: $d ($got)" ;;
                *) not_ok "$d in the agent's namespace: mode $got, want 0" ;;
                esac
        done
        touch /tmp/orbit-board-tmp-probe
        if in_ns test -e /tmp/orbit-board-tmp-probe; then not_ok "PrivateTmp=: the agent sees the host's /tmp"
        else ok "PrivateTmp=: the agent has a /tmp of its own"; fi
        rm -f /tmp/orbit-board-tmp-probe

        suite_watchdog
}

# WatchdogSec: a hung agent is killed with SIGABRT and restarted. A runtime drop-in (gone
# at the next boot) shortens the watchdog and arms the ping hang failpoint
# (agent/actions.c); the hang starts only when the file exists and a ping comes.
suite_watchdog() {
        local dropin=/run/systemd/system/$UNIT.d/zz-board-watchdog.conf hang=/run/orbit-board-hang
        mkdir -p "${dropin%/*}"
        printf '[Service]\nWatchdogSec=5s\nEnvironment=ORBIT_FAILPOINT_PING_HANG_FILE=%s\n' "$hang" >"$dropin"
        systemctl daemon-reload
        systemctl restart "$UNIT"
        expect "drop-in: WatchdogSec=5s, active again" "$(prop WatchdogUSec)/$(prop ActiveState)" 5s/active
        local n0 p0 cursor
        n0=$(prop NRestarts)
        p0=$(prop MainPID)
        cursor=$(journalctl -n 1 -o json --no-pager | jq -r .__CURSOR)
        if timeout 20 "${CTL[@]}" ping >/dev/null 2>&1; then ok "a ping before the hang is answered"
        else not_ok "a ping before the hang is answered"; fi
        local t=$SECONDS
        touch "$hang"
        timeout 120 "${CTL[@]}" ping >/dev/null 2>&1 &
        local ping=$!
        restarted() {
                local n p
                n=$(prop NRestarts) p=$(prop MainPID)
                [ "$n" -gt "$n0" ] && [ "${p:-0}" -gt 0 ] && [ "$p" != "$p0" ] &&
                        [ "$(prop ActiveState)" = active ]
        }
        if wait_until 120 restarted; then
                ok "hung agent (pid $p0) restarted in $((SECONDS - t)) s: NRestarts $n0 -> $(prop NRestarts), MainPID $(prop MainPID), active (READY=1 again)"
        else
                not_ok "no restart of the hung agent in 120 s: NRestarts $(prop NRestarts), MainPID $(prop MainPID), $(prop ActiveState)"
        fi
        rm -f "$hang"
        wait "$ping" 2>/dev/null
        local log
        log=$(journalctl -u "$UNIT" --after-cursor="$cursor" -o cat --no-pager)
        printf '%s\n' "$log" | grep -E 'failpoint|[Ww]atchdog|SIGABRT|ABRT|restart|Started|Stopped' | sed 's/^/#   /'
        local what
        for what in "failpoint: a ping holds the event loop" "Watchdog timeout" \
                "Killing process $p0 (orbit-agent) with signal SIGABRT" "status=6/ABRT" \
                "Failed with result 'watchdog'" "Scheduled restart job"; do
                if printf '%s\n' "$log" | grep -qF "$what"; then ok "journal: $what"
                else not_ok "journal: no '$what'"; fi
        done
        case "$(prop StatusText)" in
        "Serving: node "*) ok "STATUS= again after the restart" ;;
        *) not_ok "STATUS= after the restart: '$(prop StatusText)'" ;;
        esac
        if timeout 60 "${CTL[@]}" ping >/dev/null 2>&1; then ok "the restarted agent answers a ping"
        else not_ok "the restarted agent does not answer a ping"; fi
        rm -f "$dropin"
        systemctl daemon-reload
        systemctl restart "$UNIT"
        expect "drop-in gone: WatchdogSec back, active" "$(prop WatchdogUSec)/$(prop ActiveState)" 30s/active
}

# ---- item 6: the runtime's tests on pure cgroup v2 -----------------------------------------
RUNTIME_TESTS=(test-cgroup.sh test-runtime.sh test-sandbox.sh test-sandbox-escape.sh test-seccomp.sh)

suite_runtime() {
        expect "pure cgroup v2 at /sys/fs/cgroup" "$(stat -fc %T /sys/fs/cgroup)" cgroup2fs
        local c have; have=" $(cat /sys/fs/cgroup/cgroup.controllers) "
        for c in cpu memory pids io; do
                case "$have" in *" $c "*) ok "controller $c" ;; *) not_ok "no controller $c in '$have'" ;; esac
        done
        local probe=/sys/fs/cgroup/orbit-board-probe f
        mkdir -p "$probe"
        for f in cgroup.freeze cgroup.kill; do
                if [ -e "$probe/$f" ]; then ok "$f"; else not_ok "no $f"; fi
        done
        rmdir "$probe"
        expect "no cgroup v1 hierarchy" "$(awk '$3 == "cgroup"' /proc/self/mounts | wc -l)" 0

        # The helpers are the host's build; they need the libraries the package pulled in.
        local b missing
        for b in "$T"/build/tests/integration/*; do
                missing=$(ldd "$b" 2>&1 | grep 'not found')
                [ -z "$missing" ] || not_ok "$b: $missing"
        done
        export top_builddir=$T/build top_srcdir=$T/src
        export ORBIT_SANDBOX_INIT=$T/build/orbit-sandbox-init
        # TCG runs everything several times slower: every bounded wait of the tests, longer.
        # (aarch64 under TCG on an x86_64 host: three to four times slower again)
        local slow=4
        [ "$(uname -m)" = aarch64 ] && slow=12
        export ORBIT_TEST_SLOW=${ORBIT_TEST_SLOW:-$slow}
        local t rc s out p fl
        for t in "${RUNTIME_TESTS[@]}"; do
                s=$SECONDS
                out=$(mktemp)
                (cd /tmp && bash "$T/src/tests/integration/$t") >"$out" 2>&1
                rc=$?
                sed -E "s/^(ok|not ok) - /\1 - $t: /" "$out" | grep -E '^(ok|not ok|#|Bail out)'
                p=$(sed -n 's/^\([0-9]*\) passed, [0-9]* failed$/\1/p' "$out" | tail -1)
                fl=$(sed -n 's/^[0-9]* passed, \([0-9]*\) failed$/\1/p' "$out" | tail -1)
                FAILS=$((FAILS + ${fl:-0}))
                case $rc in
                0) ;;
                77) not_ok "$t skipped on the board: $(grep -m1 SKIP "$out")" ;;
                *) [ "${fl:-0}" -gt 0 ] || not_ok "$t exited $rc"; tail -n 15 "$out" | sed 's/^/#   /' ;;
                esac
                if [ "$t" = test-cgroup.sh ] && grep -q 'io_weight skipped' "$out"; then
                        not_ok "test-cgroup.sh: io.weight was not applied (io controller)"
                fi
                echo "suite $t seconds $((SECONDS - s)) passed ${p:-0} failed ${fl:-0} rc $rc"
                rm -f "$out"
        done
}

# ---- unit: the unit tests that need this board's kernel ------------------------------------
# A cross build's unit tests run on the build machine under qemu-user, which does not
# emulate seccomp: the test cases that load a filter skip there (scripts/cross-test.sh).
# Here they run on the board's own kernel, and none may skip.
suite_unit() {
        local t out rc p sk n=0
        for t in "$T"/build/tests/unit/*; do
                [ -x "$t" ] || continue
                n=$((n + 1))
                out=$(mktemp)
                # cmocka from the tests disk (build/lib): the package does not pull it in
                (cd /tmp && LD_LIBRARY_PATH=$T/build/lib "$t") >"$out" 2>&1
                rc=$?
                p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\.$/\1/p' "$out" | tail -1)
                sk=$(grep -c '^\[  SKIPPED \] test_' "$out" || true)
                if [ $rc = 0 ] && [ "${p:-0}" -gt 0 ] && [ "$sk" = 0 ]; then
                        ok "unit: ${t##*/}: ${p} test cases passed, none skipped ($(uname -m) kernel $(uname -r))"
                else
                        not_ok "unit: ${t##*/}: exit $rc, ${p:-0} passed, $sk skipped"
                        grep -E '^\[  (FAILED|SKIPPED|ERROR) |^\[ +LINE +\]|error' "$out" | head -n 10 | sed 's/^/#   /'
                fi
                rm -f "$out"
        done
        [ "$n" -gt 0 ] || not_ok "unit: no unit test on the tests disk"
}

# esp: a bootloader file on the EFI system partition (vfat) is on the disk as soon as the
# agent's write returns (docs/board.md, "A commit lost to a power cut"). The agent's grub
# backend (bootenv-tool: the same write_file_durable) replaces a grubenv there; the
# partition is then copied past every cache (O_DIRECT) and the copy mounted: what a power
# cut at that moment would leave. The same replacement without the fsync after the rename
# (a python3 stand-in for the old code) shows that the check can see the loss.
suite_esp() {
        local tool=$T/build/tests/integration/bootenv-tool dir=/boot/efi/orbit-esp-test dev
        local copy=/run/esp-copy.img mnt=/run/esp-copy
        dev=$(findmnt -n -o SOURCE /boot/efi) || { not_ok "esp: /boot/efi is not mounted"; return; }
        note "esp: $dev ($(findmnt -n -o FSTYPE /boot/efi))"
        mkdir -p "$dir" "$mnt"
        on_disk() { # FILE (under $dir): its text as a power cut now would leave it
                dd if="$dev" of="$copy" bs=1M iflag=direct status=none &&
                        mount -o loop,ro "$copy" "$mnt" || return 1
                cat "$mnt/orbit-esp-test/$1" 2>/dev/null
                umount "$mnt"
                rm -f "$copy"
        }
        "$tool" --kind grub --path "$dir/grubenv" init-state A >/dev/null || not_ok "esp: bootenv-tool init-state A"
        sync
        "$tool" --kind grub --path "$dir/grubenv" try B 1 >/dev/null || not_ok "esp: bootenv-tool try B 1"
        case "$(on_disk grubenv)" in
        *"ORBIT_ORDER=B A"*) ok "esp: the agent's grubenv write is on the disk when it returns (the trial of B)" ;;
        *) not_ok "esp: a power cut right after the agent's write would lose it: $(on_disk grubenv | head -c 120)" ;;
        esac
        printf 'old\n' >"$dir/plain" && sync
        python3 - "$dir/plain" <<'PY'
import os, sys
p = sys.argv[1]
fd = os.open(p + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"new\n"); os.fsync(fd); os.close(fd)
os.rename(p + ".tmp", p)
d = os.open(os.path.dirname(p), os.O_RDONLY); os.fsync(d); os.close(d)
PY
        local old; old=$(on_disk plain)
        if [ "$old" = new ]; then
                note "esp: the old sequence (no fsync after the rename) was on the disk this time (written back meanwhile)"
        else
                ok "esp: the old sequence (no fsync after the rename) is not on the disk yet: this check sees the loss (read: '${old:-nothing}')"
        fi
        rm -rf "$dir"
        sync
}

# mtd: U-Boot's environment on NOR flash through the kernel's MTD character device, as a
# board with its environment in SPI or parallel NOR flash has it (docs/bootloader.md). The
# kernel's mtdram (1 MiB, erase blocks of 128 KiB) stands in for the chip. The agent's
# uboot backend (bootenv-tool) writes two copies of 16 KiB with boolean flags, one at the
# start of each of the first two blocks; python3 reads the flash as U-Boot would (CRC32,
# flags, variables): an independent reader. mtdram writes like RAM (no 1-to-0 programming),
# so what the writer does is seen through its failpoint (held after the erase) and a
# marker byte it must not touch.
suite_mtd() {
        local tool=$T/build/tests/integration/bootenv-tool dev n out before hold=/run/mtd-hold pid
        modprobe mtdram total_size=1024 erase_size=128 || { not_ok "mtd: modprobe mtdram"; return; }
        n=$(sed -n 's/^mtd\([0-9]*\):.*"mtdram test device"$/\1/p' /proc/mtd | head -1)
        [ -n "$n" ] || { not_ok "mtd: no mtdram device in /proc/mtd"; modprobe -r mtdram; return; }
        dev=/dev/mtd$n
        wait_until 10 test -c "$dev" || { not_ok "mtd: $dev did not appear"; modprobe -r mtdram; return; }
        note "mtd: $dev ($(sed -n "s/^mtd$n: //p" /proc/mtd))"
        flash() { python3 - "$dev"; } # a python3 program on stdin, with the device
        # An erased chip, then two valid copies with bootcmd as U-Boot's saveenv leaves
        # them (the agent never creates a U-Boot environment): copy 0 active (1), copy 1
        # obsolete (0).
        flash <<'PY' || not_ok "mtd: the first environment written"
import struct, sys, zlib
dev, size = sys.argv[1], 0x4000
def copy(flag):
    data = b"bootcmd=run orbit_boot\0orbit_boot=echo\0".ljust(size - 5, b"\0")
    return struct.pack("<I", zlib.crc32(data)) + bytes([flag]) + data
with open(dev, "r+b", buffering=0) as f:
    f.write(b"\xff" * (1024 * 1024))
    f.seek(0); f.write(copy(1))
    f.seek(0x20000); f.write(copy(0))
PY
        read_copies() {
                flash <<'PY'
import struct, sys, zlib
dev, size, block = sys.argv[1], 0x4000, 0x20000
f = open(dev, "rb")
for i, off in enumerate((0, 0x20000)):
    f.seek(off); b = f.read(block)
    crc, flag, data = struct.unpack("<I", b[:4])[0], b[4], b[5:size]
    valid = zlib.crc32(data) == crc
    erased = b == b"\xff" * block
    vars_ = dict(v.split("=", 1) for v in data.split(b"\0\0")[0].decode(errors="replace").split("\0") if "=" in v)
    print(f"copy{i} valid={int(valid)} erased={int(erased)} flag={flag} order={vars_.get('BOOT_ORDER', '-')!r} "
          f"b_left={vars_.get('BOOT_B_LEFT', '-')} bootcmd={vars_.get('bootcmd', '-')!r} last={b[-1]}")
PY
        }
        local args=(--kind uboot --path "$dev" --redundant "$dev" --offset 0 --offset-redundant 0x20000
                    --size 0x4000 --flags boolean)
        # 1. init-state A: copy 1 written, copy 0 marked obsolete
        "$tool" "${args[@]}" init-state A >/dev/null || not_ok "mtd: bootenv-tool init-state A"
        out=$(read_copies)
        note "mtd: after init-state A: ${out//$'\n'/; }"
        case "$out" in
        *"copy1 valid=1 erased=0 flag=1 order='A B'"*"bootcmd='run orbit_boot'"*) ok "mtd: init-state A in copy 1, active, U-Boot's bootcmd kept" ;;
        *) not_ok "mtd: copy 1 is not init-state A, active" ;;
        esac
        # 2. try B 1, held by the write failpoint once copy 0's block is erased: what a
        #    power cut there leaves. Copy 1's block gets a marker in its last byte (past
        #    the copy): marking copy 1 obsolete must not erase it.
        flash <<'PY'
import sys
with open(sys.argv[1], "r+b", buffering=0) as f:
    f.seek(0x3ffff); f.write(b"\x00")
PY
        touch "$hold"
        ORBIT_FAILPOINT_WRITE_STALL_AT="$dev:erased" ORBIT_FAILPOINT_WRITE_STALL_FILE=$hold \
                "$tool" "${args[@]}" try B 1 >/dev/null 2>/run/mtd-try.err &
        pid=$!
        if wait_until 30 grep -q "held erased" /run/mtd-try.err; then
                out=$(read_copies)
                note "mtd: held after the erase: ${out//$'\n'/; }"
                case "$out" in
                *"copy0 valid=0 erased=1"*"copy1 valid=1 erased=0 flag=1 order='A B'"*) ok "mtd: the trial's write erases copy 0's block first, copy 1 whole and in use meanwhile (a cut here boots A)" ;;
                *) not_ok "mtd: after the erase: $out" ;;
                esac
        else
                not_ok "mtd: the write never reached its erase ($(tr '\n' ' ' </run/mtd-try.err))"
        fi
        rm -f "$hold"
        wait "$pid" || not_ok "mtd: bootenv-tool try B 1"
        out=$(read_copies)
        note "mtd: after try B 1: ${out//$'\n'/; }"
        case "$out" in
        *"copy0 valid=1 erased=0 flag=1 order='B A' b_left=1 bootcmd='run orbit_boot'"*) ok "mtd: the trial of B in copy 0, active, bootcmd kept" ;;
        *) not_ok "mtd: copy 0 is not the trial of B, active" ;;
        esac
        case "$out" in
        *"copy1 valid=1 erased=0 flag=0 order='A B' b_left=0 bootcmd='run orbit_boot' last=0"*) ok "mtd: copy 1 marked obsolete in place: its block not erased (the marker past it kept)" ;;
        *) not_ok "mtd: copy 1 is not the state before, obsolete, its block's marker kept" ;;
        esac
        # 3. Refused before anything is written, naming what and where; the flash unchanged.
        refused() { # NAME EXPECTED-TEXT bootenv-tool-args...
                local name=$1 want=$2 got after
                shift 2
                before=$(sha256sum <"$dev")
                got=$("$tool" "$@" 2>&1) && { not_ok "mtd: $name: written"; return; }
                after=$(sha256sum <"$dev")
                case "$got" in
                *"$want"*) ok "mtd: $name: refused ($want)" ;;
                *) not_ok "mtd: $name: $(printf '%s\n' "$got" | tail -1)" ;;
                esac
                [ "$before" = "$after" ] || not_ok "mtd: $name: the flash changed"
        }
        # the next write goes to copy 1, whose block holds the marker past the copy
        refused "data past a copy in its erase block" "hold data past it" "${args[@]}" mark-good B
        flash <<'PY'
import sys
with open(sys.argv[1], "r+b", buffering=0) as f:
    f.seek(0x3ffff); f.write(b"\xff")
PY
        refused "a copy off an erase block's start" "(offset 0x1000, 16384 bytes): the copy's offset is not at the start of an erase block" \
                --kind uboot --path "$dev" --redundant "$dev" --offset 0x1000 --offset-redundant 0x20000 \
                --size 0x4000 --flags boolean mark-good B
        # one copy, as U-Boot keeps it without a redundant one (no flags byte)
        flash <<'PY' || not_ok "mtd: a single copy written"
import struct, sys, zlib
data = b"bootcmd=run orbit_boot\0".ljust(0x4000 - 4, b"\0")
with open(sys.argv[1], "r+b", buffering=0) as f:
    f.write(struct.pack("<I", zlib.crc32(data)) + data)
PY
        refused "a single copy on flash" "a single copy on flash" --kind uboot --path "$dev" --offset 0 --size 0x4000 init-state A
        # copies of 132 KiB at 0 and 0x20000: the first spans the second's block (the
        # second valid, so the write gets past reading what is there)
        flash <<'PY' || not_ok "mtd: a copy of 132 KiB written"
import struct, sys, zlib
size = 0x21000
data = b"bootcmd=run orbit_boot\0".ljust(size - 5, b"\0")
with open(sys.argv[1], "r+b", buffering=0) as f:
    f.seek(0x20000); f.write(struct.pack("<I", zlib.crc32(data)) + b"\x01" + data)
PY
        refused "two copies in one erase block" "share an erase block" --kind uboot --path "$dev" --redundant "$dev" \
                --offset 0 --offset-redundant 0x20000 --size 0x21000 --flags boolean init-state A
        rm -f /run/mtd-try.err
        modprobe -r mtdram || note "mtd: mtdram stays loaded"
}

# cfi (aarch64): the board's own NOR flash, where U-Boot keeps its environment, as Linux
# sees it with the CFI flash drivers (Debian's arm64 kernel has none: board.sh builds them
# for the image's kernel, build/modules on the tests disk). The agent's backend
# (bootenv-tool) reads U-Boot's two copies through the MTD view, writes a trial of B
# there (erase and program through the kernel's Intel command set, QEMU's pflash), and
# the virtio view of the same flash file (what the other tests use, and what U-Boot reads
# at the next power on) holds it, read by python3 as U-Boot would.
suite_cfi() {
        local tool=$T/build/tests/integration/bootenv-tool m=$T/build/modules x dev base out
        local virt=/dev/disk/by-id/virtio-orbit-env
        [ -f "$m/physmap.ko" ] || { not_ok "cfi: no CFI flash modules on the tests disk"; return; }
        modprobe mtd && modprobe chipreg || { not_ok "cfi: modprobe mtd chipreg"; return; }
        # the image loads them at boot for the agent (orbit-board-flash.service)
        for x in cfi_util gen_probe cfi_cmdset_0001 cfi_probe physmap; do
                grep -q "^$x " /proc/modules || insmod "$m/$x.ko" || { not_ok "cfi: insmod $x.ko"; return; }
        done
        wait_until 10 grep -q flash /proc/mtd || { not_ok "cfi: no flash in /proc/mtd"; return; }
        note "cfi: /proc/mtd: $(tail -n +2 /proc/mtd | tr '\n' ' ')"
        # the two banks (64 MiB each) concatenated, or the second on its own
        read -r dev base < <(awk 'NR > 1 { sub(":", "", $1);
                if ($2 == "08000000") { print "/dev/" $1, 67108864; exit }
                if ($2 == "04000000") n++; if (n == 2) { print "/dev/" $1, 0; exit } }' /proc/mtd)
        [ -n "${dev:-}" ] && wait_until 10 test -c "$dev" || { not_ok "cfi: no MTD device for the second bank"; return; }
        local via_mtd=(--kind uboot --path "$dev" --redundant "$dev" --offset "$base" --offset-redundant $((base + 0x40000))
                       --size 0x40000 --flags boolean)
        local via_virt=(--kind uboot --path "$virt" --redundant "$virt" --offset 0 --offset-redundant 0x40000
                        --size 0x40000 --flags boolean)
        out=$("$tool" "${via_mtd[@]}" state 2>&1) || { not_ok "cfi: the environment read through $dev: $out"; return; }
        expect "cfi: U-Boot's environment read through the MTD view as through the virtio view" \
                "$out" "$("$tool" "${via_virt[@]}" state 2>&1)"
        "$tool" "${via_mtd[@]}" try B 1 >/dev/null 2>/run/cfi-try.err ||
                { not_ok "cfi: try B 1 through $dev: $(tail -1 /run/cfi-try.err)"; return; }
        out=$(python3 - "$virt" <<'PY'
import struct, sys, zlib
size = 0x40000
f = open(sys.argv[1], "rb")
for i, off in enumerate((0, 0x40000)):
    f.seek(off); b = f.read(size)
    data = b[5:]
    valid = zlib.crc32(data) == struct.unpack("<I", b[:4])[0]
    vars_ = dict(v.split("=", 1) for v in data.split(b"\0\0")[0].decode(errors="replace").split("\0") if "=" in v)
    print(f"copy{i} valid={int(valid)} flag={b[4]} order={vars_.get('BOOT_ORDER', '-')!r} "
          f"b_left={vars_.get('BOOT_B_LEFT', '-')} bootcmd={int('bootcmd' in vars_)}")
PY
)
        note "cfi: the virtio view after: ${out//$'\n'/; }"
        # one copy active with the trial (and U-Boot's bootcmd), the other obsolete
        case "$out" in
        *"valid=1 flag=1 order='B A' b_left=1 bootcmd=1"*"valid=1 flag=0 "*|*"valid=1 flag=0 "*"valid=1 flag=1 order='B A' b_left=1 bootcmd=1"*)
                ok "cfi: the trial written through the CFI driver is in U-Boot's flash: the new copy active, the old obsolete" ;;
        *) not_ok "cfi: the flash after the write: $out" ;;
        esac
        rm -f /run/cfi-try.err
}

for s in "${@:-systemd runtime esp}"; do
        for s1 in $s; do
                start=$SECONDS
                case "$s1" in
                systemd) suite_systemd ;;
                runtime) suite_runtime ;;
                unit) suite_unit ;;
                esp) suite_esp ;;
                mtd) suite_mtd ;;
                cfi) suite_cfi ;;
                *) not_ok "unknown suite $s1" ;;
                esac
                echo "suite $s1 seconds $((SECONDS - start))"
        done
done
[ "$FAILS" -eq 0 ]
