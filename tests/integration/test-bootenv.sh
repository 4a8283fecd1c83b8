# Integration test: the boot env backends against the real tools. What we write,
# grub-editenv and fw_printenv read back exactly; what they write, we read; torn and
# corrupt copies are reported naming the file; whole simulated update cycles.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

command -v grub-editenv >/dev/null 2>&1 ||
        skip_all "grub-editenv not installed (Debian package grub-common)"
if ! command -v fw_printenv >/dev/null 2>&1 || ! command -v fw_setenv >/dev/null 2>&1; then
        skip_all "fw_printenv/fw_setenv not installed (Debian package libubootenv-tool)"
fi

TOOL=$top_builddir/tests/integration/bootenv-tool
[ -x "$TOOL" ] || bail "$TOOL not built"
setup_testdir
D=$TESTDIR
ERR=$D/stderr

grub() { "$TOOL" --kind grub --path "$D/grubenv" "$@"; }
SIZE=0x4000
ub2() { "$TOOL" --kind uboot --path "$D/env0" --redundant "$D/env1" --size $SIZE "$@"; }
ub1() { "$TOOL" --kind uboot --path "$D/single" --size 0x2000 "$@"; }
flags() { od -An -tu1 -j4 -N1 "$1" | tr -d ' '; }

# same_lines NAME A B: the two listings hold the same lines (in any order).
same_lines() {
        if diff <(printf '%s\n' "$2" | sort) <(printf '%s\n' "$3" | sort) >"$D/diff"; then
                pass "$1"
        else
                fail "$1" "listings differ:"
                sed 's/^/#   /' "$D/diff"
        fi
}

# fails_naming NAME FILE WORDS COMMAND...: COMMAND fails, and its stderr names FILE
# and contains WORDS.
fails_naming() {
        local name=$1 file=$2 words=$3
        shift 3
        if "$@" >/dev/null 2>"$ERR"; then
                fail "$name" "succeeded"
        elif grep -qF "$file" "$ERR" && grep -qF "$words" "$ERR"; then
                pass "$name"
                note "$(tail -n 1 "$ERR")"
        else
                fail "$name" "message does not name $file and '$words': $(cat "$ERR")"
        fi
}

# ---- GRUB ---------------------------------------------------------------------------
check "grub: init-state creates a grubenv" grub init-state A
check "grub: start a trial of B" grub try B 3
check "grub: set odd values" grub set 'path=/boot/x y' 'eq=a=b' 'back=c:\d' 'empty='
check "grub: grubenv is 1024 bytes" test "$(stat -c %s "$D/grubenv")" -eq 1024
same_lines "grub: grub-editenv lists exactly what we wrote" \
        "$(grub-editenv "$D/grubenv" list)" "$(grub list)"
check "grub: grub-editenv sees the trial" \
        grep -qx 'ORBIT_B_TRIES=3' <(grub-editenv "$D/grubenv" list)

check "grub: grub-editenv set" grub-editenv "$D/grubenv" set X=Y 'Z=with space' ORBIT_B_TRIES=2
check "grub: grub-editenv unset" grub-editenv "$D/grubenv" unset eq
check "grub: we read what grub-editenv set" test "$(grub get X)" = Y
check "grub: ... spaces too" test "$(grub get Z)" = 'with space'
check "grub: ... and the counter" grep -qx 'B_tries_left=2' <(grub state)
check "grub: ... and the unset" test -z "$(grub get eq 2>/dev/null)"
same_lines "grub: both list the same after grub-editenv wrote" \
        "$(grub-editenv "$D/grubenv" list)" "$(grub list)"

grub-editenv "$D/fresh" create
check "grub: a fresh grub-editenv file (Debian warning line) reads as empty" \
        test -z "$(grub --path "$D/fresh" list)"

head -c 700 "$D/grubenv" >"$D/short"
fails_naming "grub: a truncated grubenv is reported" "$D/short" "700 bytes" \
        grub --path "$D/short" list
fails_naming "grub: ... and not written over" "$D/short" "700 bytes" \
        grub --path "$D/short" mark-good B
check "grub: ... left as it was" test "$(stat -c %s "$D/short")" -eq 700
sed 's/^ORBIT_ORDER=/ORBIT_ORDER_/' "$D/grubenv" >"$D/noeq"
fails_naming "grub: a line without '=' is reported" "$D/noeq" "no '='" \
        grub --path "$D/noeq" list
printf 'x%.0s' $(seq 1024) >"$D/junk"
fails_naming "grub: a bad header is reported" "$D/junk" "GRUB Environment Block" \
        grub --path "$D/junk" list

# The snippet in docs/bootloader.md parses as GRUB script.
if command -v grub-script-check >/dev/null 2>&1; then
        awk '/^```grub$/{f=1;next} /^```$/{f=0} f' "$top_srcdir/docs/bootloader.md" \
                >"$D/snippet.cfg"
        check "grub: docs snippet is not empty" test -s "$D/snippet.cfg"
        check "grub: docs snippet passes grub-script-check" grub-script-check "$D/snippet.cfg"
else
        note "grub-script-check not installed: docs snippet not checked"
fi

# ---- U-Boot, redundant --------------------------------------------------------------
printf '# device offset size\n%s 0x0 %s\n%s 0x0 %s\n' \
        "$D/env0" $SIZE "$D/env1" $SIZE >"$D/fw_env.config"
printf '%s 0x0 0x2000\n' "$D/single" >"$D/fw_single.config"
FW2=(-c "$D/fw_env.config")
FW1=(-c "$D/fw_single.config")

fails_naming "uboot: no environment yet: the state is not written" "$D/env0" \
        "does not exist" ub2 init-state A
check "uboot: init a new environment (both copies)" \
        ub2 init 'bootcmd=run orbit_boot' bootdelay=0 'bootargs_base=console=ttyS0 quiet'
check "uboot: copy 1 has flags 0" test "$(flags "$D/env0")" = 0
check "uboot: copy 2 has flags 1" test "$(flags "$D/env1")" = 1
check "uboot: init-state" ub2 init-state A
check "uboot: copy 1 written with flags 2" test "$(flags "$D/env0")" = 2
check "uboot: try B" ub2 try B 3
check "uboot: copy 2 written with flags 3" test "$(flags "$D/env1")" = 3
same_lines "uboot: fw_printenv lists exactly what we wrote" \
        "$(fw_printenv "${FW2[@]}" 2>/dev/null)" "$(ub2 list)"
check "uboot: fw_printenv sees the trial" \
        test "$(fw_printenv "${FW2[@]}" -n BOOT_B_LEFT 2>/dev/null)" = 3

# fw_setenv writes the non-current copy (copy 1, flags 4); copy 2 stays as it was.
cp "$D/env1" "$D/env1.before"
check "uboot: fw_setenv" fw_setenv "${FW2[@]}" X 'Y Z'
check "uboot: fw_setenv wrote copy 1 with flags 4" test "$(flags "$D/env0")" = 4
check "uboot: ... and left copy 2 alone" cmp -s "$D/env1" "$D/env1.before"
check "uboot: we read what fw_setenv set" test "$(ub2 get X)" = 'Y Z'
check "uboot: ... and kept the rest" grep -qx 'primary=B' <(ub2 state)

cp "$D/env0" "$D/env0.before"
check "uboot: our write after fw_setenv" ub2 set X=1
check "uboot: we wrote copy 2 with flags 5" test "$(flags "$D/env1")" = 5
check "uboot: ... and left copy 1 alone" cmp -s "$D/env0" "$D/env0.before"
check "uboot: fw_printenv reads it" test "$(fw_printenv "${FW2[@]}" -n X 2>/dev/null)" = 1

# Flags wrap: the current copy at 255 (the flags byte is outside the CRC).
printf '\377' | dd of="$D/env1" bs=1 seek=4 conv=notrunc status=none
check "uboot: our write after 255 uses flags 0" ub2 set W=after-wrap
check "uboot: ... in copy 1" test "$(flags "$D/env0")" = 0
check "uboot: fw_printenv takes 0 after 255 as newer" \
        test "$(fw_printenv "${FW2[@]}" -n W 2>/dev/null)" = after-wrap
printf '\377' | dd of="$D/env0" bs=1 seek=4 conv=notrunc status=none
check "uboot: fw_setenv after 255" fw_setenv "${FW2[@]}" W fw-wrap
check "uboot: ... wrote copy 2 with flags 0" test "$(flags "$D/env1")" = 0
check "uboot: we take 0 after 255 as newer" test "$(ub2 get W)" = fw-wrap

# A torn write in the current copy: both readers fall back to the other copy.
check "uboot: write W=new" ub2 set W=new
printf 'garbage' | dd of="$D/env0" bs=1 seek=100 conv=notrunc status=none
check "uboot: torn current copy: we use the older one" test "$(ub2 get W 2>"$ERR")" = fw-wrap
check "uboot: ... and warn naming the file" grep -q "$D/env0.*CRC32 mismatch" "$ERR"
check "uboot: fw_printenv agrees" test "$(fw_printenv "${FW2[@]}" -n W 2>/dev/null)" = fw-wrap
check "uboot: the next write repairs it" ub2 set W=repaired
check "uboot: ... fw_printenv reads it" \
        test "$(fw_printenv "${FW2[@]}" -n W 2>/dev/null)" = repaired
truncate -s 1000 "$D/env1"
check "uboot: truncated other copy: still readable" test "$(ub2 get W 2>"$ERR")" = repaired
check "uboot: ... and it is reported" grep -q "$D/env1.*truncated" "$ERR"
truncate -s 10 "$D/env0"
fails_naming "uboot: both copies bad: an error naming the file" "$D/env0" "truncated" \
        ub2 list

# ---- U-Boot, single copy ------------------------------------------------------------
check "uboot single: init" ub1 init 'bootcmd=boot' 'multi=a b c'
check "uboot single: init-state B" ub1 init-state B
same_lines "uboot single: fw_printenv lists exactly what we wrote" \
        "$(fw_printenv "${FW1[@]}" 2>/dev/null)" "$(ub1 list)"
check "uboot single: fw_setenv" fw_setenv "${FW1[@]}" BOOT_A_LEFT 2
check "uboot single: we read it" grep -qx 'A_tries_left=2' <(ub1 state)
same_lines "uboot single: both list the same after fw_setenv wrote" \
        "$(fw_printenv "${FW1[@]}" 2>/dev/null)" "$(ub1 list)"
cp "$D/single" "$D/single.good"
printf '\001' | dd of="$D/single" bs=1 seek=2000 conv=notrunc status=none
fails_naming "uboot single: a flipped bit is a CRC error naming the file" "$D/single" \
        "CRC32 mismatch" ub1 list
check "uboot single: fw_printenv refuses it too" \
        bash -c "! fw_printenv ${FW1[*]} bootcmd >/dev/null 2>&1"
cp "$D/single.good" "$D/single"
truncate -s 4000 "$D/single"
fails_naming "uboot single: a truncated file is reported" "$D/single" "truncated" ub1 list

# ---- whole cycles, every backend ------------------------------------------------------
cycle() { # NAME RUNNER...: trial of B with 3 tries never committed, then one committed
        local name=$1 got="" s
        shift
        "$@" init-state A || { fail "$name: init-state"; return; }
        "$@" try B 3 || { fail "$name: try"; return; }
        for _ in 1 2 3 4 5; do
                s=$("$@" simulate-boot "$D/cmdline") || { fail "$name: boot"; return; }
                got+=$s
        done
        check "$name: B three times, then back to A" test "$got" = BBBAA
        check "$name: the agent sees the fallback" test "$("$@" outcome "$D/cmdline")" = fallback
        check "$name: mark B bad" "$@" mark-bad B
        check "$name: then a good boot" test "$("$@" outcome "$D/cmdline")" = good

        "$@" try B 2 >/dev/null
        check "$name: trial boot" test "$("$@" simulate-boot "$D/cmdline")" = B
        check "$name: booted slot from the cmdline" test "$("$@" booted "$D/cmdline")" = B
        check "$name: outcome trial" test "$("$@" outcome "$D/cmdline")" = trial
        check "$name: commit" "$@" mark-good B
        got=""
        for _ in 1 2 3 4; do
                got+=$("$@" simulate-boot "$D/cmdline")
        done
        check "$name: a committed slot boots every time" test "$got" = BBBB
}
cycle "cycle grub" grub
cycle "cycle file" "$TOOL" --kind file --path "$D/env.json"
cp "$D/single.good" "$D/single"
cycle "cycle uboot single" ub1
rm -f "$D/env0" "$D/env1"
ub2 init bootcmd=x >/dev/null
cycle "cycle uboot redundant" ub2
same_lines "cycle uboot redundant: fw_printenv agrees at the end" \
        "$(fw_printenv "${FW2[@]}" 2>/dev/null)" "$(ub2 list)"
check "cycle file: the file is JSON" grep -q '"ORBIT_ORDER": "B A"' "$D/env.json"

printf 'root=/dev/sda2 orbit.slot=C\n' >"$D/badcmdline"
fails_naming "cmdline: a bad slot is reported naming the file" "$D/badcmdline" \
        "not A or B" grub booted "$D/badcmdline"

finish
