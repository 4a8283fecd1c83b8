# Integration test: log-writes-replay against the log QEMU's own blklogwrites driver
# writes (qemu-io over a qcow2 overlay, as scripts/board.sh test-powercut --lose-cache
# runs the board's disk): the writes before the last flush replayed, those the disk
# acknowledged after it lost, kept, or drawn by a seed; a log or disk that does not fit
# refused naming what. The cut is SIGKILL once qemu-io has answered every command.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

command -v qemu-io >/dev/null 2>&1 && command -v qemu-img >/dev/null 2>&1 ||
        skip_all "qemu-io and qemu-img not installed (Debian package qemu-utils)"
qemu-img --help | grep '^Supported formats:' | grepq -w blklogwrites ||
        skip_all "this QEMU has no blklogwrites driver"

TOOL=$top_builddir/tests/integration/log-writes-replay
[ -x "$TOOL" ] || bail "$TOOL not built"
setup_testdir
D=$TESTDIR

# A 1 MiB disk of 'x', an overlay of it and an empty log: what the board does at power on.
power_on() {
        python3 -c "open('$D/disk.img', 'wb').write(b'x' * 1048576)" &&
                qemu-img create -q -f qcow2 -F raw -b "$D/disk.img" "$D/ovl.qcow2" &&
                "$TOOL" init "$D/writes.log" || bail "the disk, its overlay and the log"
}

OPTS="driver=blklogwrites,file.driver=qcow2,file.file.driver=file,file.file.filename=$D/ovl.qcow2"
OPTS+=",log.driver=file,log.filename=$D/writes.log,log-sector-size=512"

prompts() { grep -o 'qemu-io>' "$D/qemu-io.out" 2>/dev/null | wc -l; }
have_prompts() { [ "$(prompts)" -ge "$1" ]; }
# qemu-io on the chain, one command at a time (it takes one line per read): each sent
# once the answer to the one before is there (its next prompt); then the cut.
run_then_cut() {
        rm -f "$D/fifo" "$D/qemu-io.out"
        mkfifo "$D/fifo"
        # writeback: the disk has a write cache (qemu-io's default, writethrough, would
        # flush after every write, as a disk without one)
        qemu-io -t writeback --image-opts "$OPTS" <"$D/fifo" >"$D/qemu-io.out" 2>&1 &
        local pid=$! n=1 c
        track_pid $pid
        exec 3>"$D/fifo"
        for c in "$@"; do
                echo "$c" >&3
                n=$((n + 1))
                wait_for 20 have_prompts $n || bail "qemu-io: no answer to '$c': $(tail -3 "$D/qemu-io.out")"
        done
        kill -KILL $pid
        wait $pid 2>/dev/null
        exec 3>&-
}

byte_at() { od -An -c -j "$2" -N 1 "$1" | tr -d ' '; }
# sectors: the first byte of the disk at 0, 4k, 8k, 16k
layout() { echo "$(byte_at "$1" 0) $(byte_at "$1" 4096) $(byte_at "$1" 8192) $(byte_at "$1" 16384)"; }

# ---- the cut: two writes acknowledged after the last flush ----------------------------
power_on
run_then_cut 'write -P 0x41 0 4k' 'write -z 16k 4k' flush 'write -P 0x42 8k 4k' 'write -P 0x43 4k 1k' \
        'read -P 0x42 8k 4k' 'read -P 0x43 4k 1k'
check "qemu-io read back the unflushed writes (the guest saw them acknowledged)" \
        test "$(grep -c 'read [0-9]*/[0-9]* bytes' "$D/qemu-io.out")" = 2
listing=$("$TOOL" list "$D/writes.log")
note "$(printf '%s\n' "$listing" | head -1)"
check "the log holds the three writes, the flush and the two after it" \
        test "$(printf '%s\n' "$listing" | grep -v '^#' | awk '{ print $3 }' | tr '\n' ' ')" = "write write flush write write "
cp "$D/disk.img" "$D/disk-all.img"
cp "$D/disk.img" "$D/disk-before.img"

out=$("$TOOL" replay "$D/writes.log" "$D/disk.img" 2>&1)
check "replay (tail none) succeeds" test $? = 0
note "$out"
check "the figures: 5 entries, 3 up to the last flush, 2 writes after it, both lost" \
        grepq '5 entries, 1 flushes, 3 up to the last flush; after it 2 writes (0.00 MiB) acknowledged, not flushed: 2 lost, 0 kept' <<<"$out"
check "tail none: the flushed writes on the disk (A, the zeros), the unflushed ones not (x x)" \
        test "$(layout "$D/disk.img")" = "A x x \\0"

out=$("$TOOL" replay "$D/writes.log" "$D/disk-all.img" --tail all 2>&1)
check "tail all: every acknowledged write on the disk (what killing QEMU alone leaves)" \
        test "$(layout "$D/disk-all.img")" = "A C B \\0"
check "tail all: the figures say so" grepq 'not flushed: 0 lost, 2 kept (tail all)' <<<"$out"

# random: each unflushed write kept or lost by the seed's draw, the same seed the same disk
seen=""
for seed in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do
        cp "$D/disk-before.img" "$D/disk-r.img"
        "$TOOL" replay "$D/writes.log" "$D/disk-r.img" --tail "random:$seed" >/dev/null || bail "replay random:$seed"
        l=$(layout "$D/disk-r.img")
        cp "$D/disk-before.img" "$D/disk-r.img"
        "$TOOL" replay "$D/writes.log" "$D/disk-r.img" --tail "random:$seed" >/dev/null
        [ "$(layout "$D/disk-r.img")" = "$l" ] || seen+=" seed $seed not repeatable;"
        case "$l" in
        "A x x \\0"|"A C x \\0"|"A x B \\0"|"A C B \\0") seen+=" ${l// /}" ;;
        *) seen+=" seed $seed gave '$l';" ;;
        esac
done
note "tail random, seeds 1-16:$seen"
check "tail random: every disk a mix of the unflushed writes, the same for the same seed" \
        test -z "$(grep -o 'seed [0-9]* [a-z]' <<<"$seen")"
# C kept (AC) and lost (Ax); B kept (B\0) and lost (x\0)
mixes() { grepq 'AC' <<<"$seen" && grepq 'Ax' <<<"$seen" && grepq 'B\\0' <<<"$seen" && grepq 'x\\0' <<<"$seen"; }
check "tail random: the seeds keep and lose each unflushed write" mixes

# ---- refused, naming what --------------------------------------------------------------
check "not a log: refused, named" eval '! "$TOOL" replay "$D/disk-before.img" "$D/disk-r.img" 2>"$D/err" &&
        grepq "disk-before.img: super block: magic 0x7878787878787878, not a write log" "$D/err"'
head -c 8192 "$D/disk-before.img" >"$D/small.img"
check "a disk smaller than the log's writes: refused, the entry named" eval '! "$TOOL" replay "$D/writes.log" "$D/small.img" 2>"$D/err" &&
        grepq "entry 1 (log sector 10): sectors 32-39 are past the disk.s end (8192 bytes)" "$D/err"'
check "the small disk untouched" cmp -s "$D/small.img" <(head -c 8192 "$D/disk-before.img")
check "a tail policy it does not know: refused" eval '! "$TOOL" replay "$D/writes.log" "$D/disk-r.img" --tail some 2>"$D/err" &&
        grepq "some: --tail takes none, all or random:SEED" "$D/err"'

# ---- a cut before any flush: nothing of it is durable -----------------------------------
power_on
run_then_cut 'write -P 0x41 0 4k' 'read -P 0x41 0 4k'
out=$("$TOOL" replay "$D/writes.log" "$D/disk.img" 2>&1)
note "$out"
check "no flush: the write lost, the disk as at power on" test "$(layout "$D/disk.img")" = "x x x x"

# ---- the sweep: the disk at each flush in turn, checked there ---------------------------
# regions lo (0-8k) and hi (8k-20k); points: the first flush (both, news to the checker),
# the second (hi), not the third (a write outside both since), the fourth (hi); the write after
# the last flush belongs to no point. The check fails where the disk holds C at 16k.
power_on
run_then_cut 'write -P 0x41 0 4k' flush 'write -P 0x42 8k 4k' flush 'write -P 0x45 32k 4k' flush \
        'write -P 0x43 16k 4k' flush \
        'write -P 0x44 4k 4k' 'read -P 0x44 4k 4k'
cat >"$D/check.sh" <<EOF
#!/bin/bash
byte_at() { od -An -c -j "\$2" -N 1 "\$1" | tr -d ' '; }
l="\$(byte_at "\$1" 0) \$(byte_at "\$1" 4096) \$(byte_at "\$1" 8192) \$(byte_at "\$1" 16384)"
echo "point \$LW_POINT/\$LW_POINTS flush \$LW_FLUSH/\$LW_FLUSHES entry \$LW_ENTRY [\$LW_CHANGED] \$l" >>"$D/points"
[ "\$(byte_at "\$1" 16384)" != C ]
EOF
chmod +x "$D/check.sh"
rm -f "$D/points"
out=$("$TOOL" sweep "$D/writes.log" "$D/disk.img" --region lo:0:8192 --region hi:8192:12288 -- "$D/check.sh" "$D/disk.img")
rc=$?
note "$out"
check "sweep: three points, each the disk of a cut right after its flush" \
        test "$(cat "$D/points" 2>/dev/null)" = "point 1/3 flush 1/4 entry 1 [lo hi] A x x x
point 2/3 flush 2/4 entry 3 [hi] A x B x
point 3/3 flush 4/4 entry 7 [hi] A x B C"
check "sweep: the check that failed counted and named, status 1" \
        eval 'test $rc = 1 && grepq "9 entries, 4 flushes, 3 points checked, 1 failed (flushes 4)" <<<"$out"'
check "sweep: the disk left at the last flush (the unflushed write not applied)" \
        test "$(layout "$D/disk.img")" = "A x B C"
check "sweep: a region it cannot parse refused" eval '! "$TOOL" sweep "$D/writes.log" "$D/disk.img" --region "Lo:0:1" -- true 2>"$D/err" &&
        grepq "Lo:0:1: a region is NAME:OFFSET:LENGTH" "$D/err"'

finish
