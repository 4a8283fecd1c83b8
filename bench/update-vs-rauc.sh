#!/usr/bin/env bash
# orbit-agent's update install against RAUC's, side by side in one run, and the floor.
#
# For each image size (SIZES, MiB; default "256 512") one random image is made and, RUNS
# times (default 3), the page cache is dropped before each of, in this order:
#   RAUC:   `rauc install` of a plain bundle into a raw slot (a file), through its service
#           on a private D-Bus system bus this script starts, a no-op custom bootloader
#           backend; timed until the CLI returns, then the slot's fdatasync (0 when RAUC
#           synced it) is timed apart and added, so both systems are timed to durable bytes;
#   floor:  cp --reflink=never IMAGE SLOT + fdatasync of SLOT (the same bytes, no checks);
#   orbit:  `orbitctl update install` into an inactive file slot (file bootloader, the
#           agent's defaults: verify before write, 8 MiB checkpoints) until phase ready.
# Every slot is a fresh sparse file of the image's size. Medians are printed, with
# orbit/RAUC and orbit/floor, and the median (and range) of each run's orbit over the floor
# measured just before it: a virtual disk's speed can wander more between runs than the
# ratio sought. Then `orbit-bundle create` and `verify` against `sha256sum`
# of the same image (cache dropped before each, medians).
#
# KEEP=1 keeps the work directory (logs: agent.log, rauc.log) and prints its path.
# Root (page cache, loop mount of RAUC's squashfs bundle). Packages: scripts/deps.sh bench
# (rauc, squashfs-tools, dbus). BUILD: a configured build dir (default _build/plain).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$top/_build/plain}
SIZES=${SIZES:-256 512}
RUNS=${RUNS:-3}
[ "$(id -u)" -eq 0 ] || { echo "update-vs-rauc: needs root (drop_caches, loop mounts)" >&2; exit 1; }
for c in rauc mksquashfs dbus-daemon openssl; do
        command -v "$c" >/dev/null || { echo "update-vs-rauc: $c missing: scripts/deps.sh bench" >&2; exit 1; }
done
make -s -C "$BUILD" orbit-agent orbitctl orbit-bundle tests/integration/bootenv-tool
AGENT=$BUILD/orbit-agent CTL=$BUILD/orbitctl OB=$BUILD/orbit-bundle TOOL=$BUILD/tests/integration/bootenv-tool

D=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/update-vs-rauc.XXXXXX")
BUS_PID= RAUC_PID= AGENT_PID=
cleanup() {
        for p in $AGENT_PID $RAUC_PID $BUS_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
        umount -R "$D/rauc-mnt" 2>/dev/null || true
        if [ -n "${KEEP:-}" ]; then echo "update-vs-rauc: kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT

drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }
now() { date +%s.%N; }
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
fmt() { awk -v t="$1" 'BEGIN {printf "%.2f s", t}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }
fresh_slot() { rm -f "$1"; truncate -s "$2" "$1"; }
fdatasync_file() { dd if=/dev/null of="$1" conv=notrunc,fdatasync status=none; }

# ---- keys: one CA, one signer, for both systems -------------------------------------------
K=$D/keys
mkdir -p "$K"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=bench CA" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign \
        -keyout "$K/ca.key" -out "$K/ca.pem" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=bench signer" \
        -keyout "$K/signer.key" -out "$K/signer.csr" 2>/dev/null
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\n' >"$K/ext"
openssl x509 -req -in "$K/signer.csr" -CA "$K/ca.pem" -CAkey "$K/ca.key" -CAcreateserial -days 30 \
        -extfile "$K/ext" -out "$K/signer.pem" 2>/dev/null
# orbit's signer: the same key, its certificate in the release role (docs/security.md, "Key
# roles"); RAUC keeps the plain one
printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=2.25.5623372019225234889473442596077835724.1\n' >"$K/ext-orbit"
openssl x509 -req -in "$K/signer.csr" -CA "$K/ca.pem" -CAkey "$K/ca.key" -CAcreateserial -days 30 \
        -extfile "$K/ext-orbit" -out "$K/signer-orbit.pem" 2>/dev/null

# ---- RAUC: a private system bus, its service, a no-op bootloader --------------------------
cat >"$D/bus.conf" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=$D/bus.sock</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
EOF
dbus-daemon --config-file="$D/bus.conf" --nofork --nopidfile >"$D/bus.log" 2>&1 &
BUS_PID=$!
export DBUS_SYSTEM_BUS_ADDRESS=unix:path=$D/bus.sock
for _ in $(seq 100); do [ -S "$D/bus.sock" ] && break; sleep 0.05; done

cat >"$D/noop-bootloader.sh" <<'EOF'
#!/bin/sh
# RAUC custom bootloader backend that changes nothing: A is booted, primary and good.
case "$1" in
get-primary|get-current) echo A ;;
get-state) echo good ;;
esac
exit 0
EOF
chmod +x "$D/noop-bootloader.sh"
mkdir -p "$D/rauc-mnt" "$D/rauc-slots"
cat >"$D/system.conf" <<EOF
[system]
compatible=bench-board
bootloader=custom
statusfile=$D/rauc.status
mountprefix=$D/rauc-mnt
bundle-formats=plain

[handlers]
bootloader-custom-backend=$D/noop-bootloader.sh

[keyring]
path=$K/ca.pem

[slot.rootfs.0]
device=$D/rauc-slots/a
type=raw
bootname=A

[slot.rootfs.1]
device=$D/rauc-slots/b
type=raw
bootname=B
EOF
: >"$D/rauc-slots/a"
rauc --conf="$D/system.conf" --override-boot-slot=A service >"$D/rauc.log" 2>&1 &
RAUC_PID=$!
for _ in $(seq 100); do rauc status >/dev/null 2>&1 && break; sleep 0.1; done
rauc status >/dev/null 2>&1 || { echo "update-vs-rauc: RAUC's service did not answer:" >&2; cat "$D/rauc.log" >&2; exit 1; }

# ---- orbit-agent: file slots, file bootloader, the defaults -------------------------------
N=$D/node
mkdir -p "$N/slots" "$N/etc/keys/bundles" "$N/sys/class"
cp "$K/ca.pem" "$N/etc/keys/bundles/"
echo "root=/dev/vda orbit.slot=A" >"$N/cmdline"
"$TOOL" --kind file --path "$D/boot.json" init-state A >/dev/null
cat >"$N/agent.json" <<JSON
{"config_version": 1, "node_id": "bench", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "config_dir": "$N/etc", "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false},
 "update": {"enabled": true, "hardware": "bench-board",
            "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"}}}
JSON
: >"$N/slots/a"
ctl() { "$CTL" --socket "$N/run/control.sock" "$@"; }
start_agent() { # a fresh node each run: no install state, A booted and good
        rm -rf "$N/state" "$N/run"
        cp "$D/boot.json" "$N/boot.json"
        "$AGENT" --config "$N/agent.json" >>"$D/agent.log" 2>&1 &
        AGENT_PID=$!
        for _ in $(seq 200); do ctl ping >/dev/null 2>&1 && return 0; sleep 0.05; done
        echo "update-vs-rauc: the agent did not answer" >&2; tail "$D/agent.log" >&2; exit 1
}
stop_agent() { kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true; AGENT_PID=; }

printf '{"bundle_id": "bench", "version": "1.0.0", "security_version": 1, "compatible": ["bench-board"]}\n' \
        >"$D/template.json"
echo "update-vs-rauc: $(rauc --version), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-), $RUNS runs, cache dropped before each"
echo
echo "| image | cp + fdatasync | RAUC | orbit-agent | orbit / RAUC | orbit / floor | orbit / floor, paired |"
echo "|---|---|---|---|---|---|---|"
declare -A BUNDLE_ROWS
for mib in $SIZES; do
        bytes=$((mib * 1024 * 1024))
        head -c "$bytes" /dev/urandom >"$D/image.img"
        # RAUC's plain bundle
        rm -rf "$D/rauc-in" "$D/bench.raucb"
        mkdir -p "$D/rauc-in"
        cp "$D/image.img" "$D/rauc-in/rootfs.img"
        printf '[update]\ncompatible=bench-board\nversion=1.0.0\n\n[bundle]\nformat=plain\n\n[image.rootfs]\nfilename=rootfs.img\n' \
                >"$D/rauc-in/manifest.raucm"
        rauc bundle --cert="$K/signer.pem" --key="$K/signer.key" --keyring="$K/ca.pem" \
                "$D/rauc-in" "$D/bench.raucb" >"$D/rauc-bundle.log" 2>&1 ||
                { cat "$D/rauc-bundle.log" >&2; exit 1; }
        rm -rf "$D/rauc-in"
        # orbit's bundle (timed against sha256sum below)
        "$OB" create --manifest-template "$D/template.json" --image rootfs="$D/image.img" \
                --key "$K/signer.key" --cert "$K/signer-orbit.pem" -o "$D/bench.obundle" >/dev/null

        : >"$D/t.floor"; : >"$D/t.rauc"; : >"$D/t.rauc-sync"; : >"$D/t.orbit"
        : >"$D/t.sum"; : >"$D/t.create"; : >"$D/t.verify"
        for run in $(seq "$RUNS"); do
                fresh_slot "$D/rauc-slots/b" "$bytes"; drop
                t0=$(now)
                rauc install "$D/bench.raucb" >"$D/rauc-install.log" 2>&1 ||
                        { echo "update-vs-rauc: rauc install failed:" >&2; cat "$D/rauc-install.log" "$D/rauc.log" >&2; exit 1; }
                t1=$(now); fdatasync_file "$D/rauc-slots/b"; t2=$(now)
                echo "$t2 - $t0" | bc >>"$D/t.rauc"
                echo "$t2 - $t1" | bc >>"$D/t.rauc-sync"
                cmp -s "$D/image.img" "$D/rauc-slots/b" || { echo "update-vs-rauc: RAUC's slot differs" >&2; exit 1; }
                rm -f "$D/rauc-slots/b"

                # the floor just before orbit's run: the pair shares the disk's mood of the moment
                fresh_slot "$D/floor-slot" 0; drop
                t0=$(now); cp --reflink=never "$D/image.img" "$D/floor-slot"; fdatasync_file "$D/floor-slot"; t1=$(now)
                echo "$t1 - $t0" | bc >>"$D/t.floor"
                rm -f "$D/floor-slot"

                fresh_slot "$N/slots/b" "$bytes"
                start_agent; drop
                t0=$(now)
                ctl update install "$D/bench.obundle" >"$D/orbit-install.log" 2>&1 ||
                        { echo "update-vs-rauc: orbitctl update install failed:" >&2; cat "$D/orbit-install.log" >&2; tail "$D/agent.log" >&2; exit 1; }
                t1=$(now)
                echo "$t1 - $t0" | bc >>"$D/t.orbit"
                [ "$(ctl update status --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["phase"])')" = ready ] ||
                        { echo "update-vs-rauc: the agent is not in phase ready" >&2; exit 1; }
                stop_agent
                cmp -s "$D/image.img" "$N/slots/b" || { echo "update-vs-rauc: orbit's slot differs" >&2; exit 1; }
                rm -f "$N/slots/b"

                drop; t0=$(now); sha256sum "$D/image.img" >/dev/null; t1=$(now)
                echo "$t1 - $t0" | bc >>"$D/t.sum"
                rm -f "$D/again.obundle"; drop; t0=$(now)
                "$OB" create --manifest-template "$D/template.json" --image rootfs="$D/image.img" \
                        --key "$K/signer.key" --cert "$K/signer-orbit.pem" -o "$D/again.obundle" >/dev/null
                t1=$(now)
                echo "$t1 - $t0" | bc >>"$D/t.create"
                drop; t0=$(now); "$OB" verify --keyring "$N/etc/keys/bundles" "$D/again.obundle" >/dev/null; t1=$(now)
                echo "$t1 - $t0" | bc >>"$D/t.verify"
        done
        floor=$(median <"$D/t.floor") rauc_t=$(median <"$D/t.rauc") orbit=$(median <"$D/t.orbit")
        rsync_t=$(median <"$D/t.rauc-sync")
        # each run's orbit over the floor measured just before it, then their median and range:
        # this disk's speed wanders by a third between runs, more than the ratio sought
        paired=$(paste "$D/t.orbit" "$D/t.floor" | awk '{print $1 / $2}' | median)
        range=$(paste "$D/t.orbit" "$D/t.floor" | awk '{r = $1 / $2} NR == 1 || r < lo {lo = r} NR == 1 || r > hi {hi = r} END {printf "%.2f-%.2f", lo, hi}')
        echo "| $mib MiB | $(fmt "$floor") | $(fmt "$rauc_t") (sync after: $(fmt "$rsync_t")) | $(fmt "$orbit") | $(ratio "$orbit" "$rauc_t") | $(ratio "$orbit" "$floor") | $(awk -v p="$paired" 'BEGIN {printf "%.2fx", p}') ($range) |"
        s=$(median <"$D/t.sum") c=$(median <"$D/t.create") v=$(median <"$D/t.verify")
        BUNDLE_ROWS[$mib]="| $mib MiB | $(fmt "$s") | $(fmt "$c") ($(ratio "$c" "$s")) | $(fmt "$v") ($(ratio "$v" "$s")) |"
done
echo
echo "| image | sha256sum | orbit-bundle create | orbit-bundle verify |"
echo "|---|---|---|---|"
for mib in $SIZES; do echo "${BUNDLE_ROWS[$mib]}"; done
