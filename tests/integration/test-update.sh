# Integration test of A/B updates with the real agent, file slots and the three bootloader
# backends (file, grub, uboot): refusals that change no slot, a delta install, reboots
# simulated by bootenv-tool (what the bootloader scripts do), the trial and its health
# gate, commit, kill -9 in the middle of an install, a power cut between the arm and
# "ready" (grub), a failed gate, an exhausted boot counter, the scrub of the inactive slot (repair, damage, periodic), operator
# mark-good/mark-bad/rollback, and models switched with their users.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
command -v grub-editenv >/dev/null 2>&1 || skip_all "grub-editenv not installed (grub-common)"
command -v fw_printenv >/dev/null 2>&1 || skip_all "fw_printenv not installed (libubootenv-tool)"

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
TOOL=$top_builddir/tests/integration/bootenv-tool
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
K=$D/keys
mkdir -p "$K/keyring"
cd "$D" || bail "cd"

# ---- keys and bundles ---------------------------------------------------------------
flipbyte() { # FILE OFFSET: invert one byte in place, as radiation would
        local b
        b=$(od -An -tu1 -j "$2" -N1 "$1" | tr -d ' ')
        printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}
"$OB" keygen --ca --subject "CN=test fleet CA" --key "$K/ca.key" --cert "$K/ca.pem" >/dev/null &&
        "$OB" keygen --role release --subject "CN=release" --issuer-key "$K/ca.key" --issuer-cert "$K/ca.pem" \
                --key "$K/signer.key" --cert "$K/signer.pem" >/dev/null &&
        "$OB" keygen --role release --subject "CN=intruder" --key "$K/evil.key" --cert "$K/evil.pem" >/dev/null ||
        bail "keygen"
cp "$K/ca.pem" "$K/keyring/"

CHUNK=65536
head -c $((64 * CHUNK)) /dev/urandom >v1.img
cp v1.img v2.img # v2: 3 of 64 chunks changed (5%)
for c in 5 30 63; do
        head -c $CHUNK /dev/urandom | dd of=v2.img bs=$CHUNK seek=$c conv=notrunc status=none
done
cp v2.img v4.img
head -c $CHUNK /dev/urandom | dd of=v4.img bs=$CHUNK seek=10 conv=notrunc status=none
head -c $((96 * 1024 * 1024)) /dev/urandom >v3.img
head -c 200000 /dev/urandom >yolo-1.bin

bundle() { # OUT SECURITY_VERSION KEY CERT IMAGE-ARGS...
        local out=$1 sv=$2 key=$3 cert=$4
        shift 4
        printf '{"bundle_id": "%s", "version": "1.%s.0", "security_version": %s, "compatible": ["sim-board"]}\n' \
                "${out%.obundle}" "$sv" "$sv" >"$D/t.json"
        "$OB" create --manifest-template "$D/t.json" "$@" --chunk-size $CHUNK --key "$key" \
                --cert "$cert" -o "$out" >/dev/null 2>"$D/ob.err" || bail "bundle $out: $(cat "$D/ob.err")"
}
bundle v1.obundle 1 "$K/signer.key" "$K/signer.pem" --image rootfs=v1.img
bundle v2.obundle 2 "$K/signer.key" "$K/signer.pem" --image rootfs=v2.img --image model:yolo=yolo-1.bin
bundle v3.obundle 3 "$K/signer.key" "$K/signer.pem" --image rootfs=v3.img
bundle v4.obundle 4 "$K/signer.key" "$K/signer.pem" --image rootfs=v4.img
bundle evil.obundle 9 "$K/evil.key" "$K/evil.pem" --image rootfs=v2.img
# a tampered payload: one byte of changed chunk 30 inverted inside the signed bundle
cp v2.obundle tampered.obundle
payload=$(python3 - "$D/v2.obundle" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        if m.name == "rootfs.img":
            print(m.offset_data)
PY
)
[ -n "$payload" ] || bail "cannot find the rootfs payload"
# inverted, not overwritten: a byte that already was 0xff would leave the bundle intact
flipbyte tampered.obundle $((payload + 30 * CHUNK + 77))
cmp -s tampered.obundle v2.obundle && bail "the tampered bundle is unchanged"

# ---- one simulated node per bootloader backend ---------------------------------------
AGENT_PID=
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
ust() { ctl update status --json | jq -r "$1"; }
# Events of this boot only: the outbox keeps those of earlier boots until the controller has them.
boot_events() { ctl events --json --lines 1000 | jq --argjson e "$(ctl status --json | jq .boot_epoch)" '[.events[] | select(.key.boot_epoch == $e)]'; }
# A trial with a 1 s gate is over before a loaded machine's poll sees it: its event says it began.
trial_began() { boot_events | jq -e '[.[] | select(.kind == "update.trial")] | length == 1' >/dev/null; }
phase_is() { [ "$(ust .phase)" = "$1" ]; }
settemp() { echo "$1" >"$N/sys/class/thermal/thermal_zone0/temp.new" && mv "$N/sys/class/thermal/thermal_zone0/temp.new" "$N/sys/class/thermal/thermal_zone0/temp"; }

boot_tool() {
        case $KIND in
        file|models) "$TOOL" --kind file --path "$N/boot.json" "$@" ;;
        grub) "$TOOL" --kind grub --path "$N/grubenv" "$@" ;;
        uboot) "$TOOL" --kind uboot --path "$N/env0" --redundant "$N/env1" --size 0x4000 "$@" ;;
        esac
}
boot_state() { boot_tool state | tr '\n' ' ' | sed 's/ $//'; }

new_node() { # KIND
        KIND=$1
        N=$D/node-$KIND
        mkdir -p "$N/slots" "$N/sys/class/thermal/thermal_zone0" "$N/etc/keys/bundles"
        cp "$K/ca.pem" "$N/etc/keys/bundles/"
        echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
        settemp 45000
        cp v1.img "$N/slots/a"
        : >"$N/slots/b"
        echo "console=ttyS0 root=/dev/vda orbit.slot=A quiet" >"$N/cmdline"
        local bl
        case $KIND in
        file|models) bl="{\"kind\": \"file\", \"path\": \"$N/boot.json\"}" ;;
        grub) bl="{\"kind\": \"grub\", \"path\": \"$N/grubenv\"}"
              grub-editenv "$N/grubenv" create ;;
        uboot) bl="{\"kind\": \"uboot\", \"path\": \"$N/env0\", \"path_redundant\": \"$N/env1\", \"size\": 16384}"
               boot_tool init 'bootcmd=run orbit_boot' >/dev/null
               printf '%s 0 0x4000\n%s 0 0x4000\n' "$N/env0" "$N/env1" >"$N/fw_env.config" ;;
        esac
        boot_tool init-state A >/dev/null || bail "$KIND: init-state"
        # file: the health gate commits by itself (1 s); grub, uboot: the operator decides,
        # so a gate that holds must not commit first on a slow machine
        local gate=1 trial=4
        case $KIND in grub|uboot) gate=3600 trial=7200 ;; esac
        cat >"$N/agent.json" <<JSON
{"config_version": 1, "node_id": "sim-$KIND", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "config_dir": "$N/etc", "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false},
 "health": {"poll_interval_ms": 200, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "update": {"enabled": true, "hardware": "sim-board", "bootloader": $bl,
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"}, "models_dir": "$N/models",
            "boot_tries": 2, "gate_sec": $gate, "trial_timeout_sec": $trial, "checkpoint_mib": 1}}
JSON
        FAIL_CONTEXT_LOG=$N/agent.log
}

# STALL_AT: a percent at which an install stops going on (the agent's failpoint), for kills.
# TEAR_AT: a percent past which a save of the install's progress tears and holds (while
# $D/tear exists).
start_agent() {
        ORBIT_FAILPOINT_INSTALL_STALL_PERCENT=${STALL_AT:-} ORBIT_FAILPOINT_PROGRESS_TEAR_PERCENT=${TEAR_AT:-} \
                ORBIT_FAILPOINT_PROGRESS_TEAR_FILE=$D/tear \
                "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/agent.json" >>"$N/agent.log" 2>&1 &
        AGENT_PID=$!
        track_pid "$AGENT_PID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "$KIND: the agent did not answer"
}
stop_agent() {
        kill -TERM "$AGENT_PID" 2>/dev/null
        wait_exit "$AGENT_PID" 20 || fail "$KIND: the agent did not stop"
        AGENT_PID=
}
kill_agent() {
        kill -KILL "$AGENT_PID" 2>/dev/null
        wait "$AGENT_PID" 2>/dev/null
        AGENT_PID=
}
# What the bootloader does at power-on; the booted slot goes on the kernel command line.
reboot_node() { # sets BOOTED
        [ -n "$AGENT_PID" ] && stop_agent
        BOOTED=$(boot_tool simulate-boot "$N/cmdline") || bail "$KIND: no bootable slot"
        note "$KIND: rebooted into slot $BOOTED"
}
install() { ctl update install "$D/$1"; }

# ---- file backend: the whole story ---------------------------------------------------
new_node file
start_agent
check "file: idle, booted A" test "$(ust '.phase + " " + .booted_slot')" = "idle A"

out=$(install tampered.obundle 2>&1) && fail "tampered payload refused" "$out" || {
        grep -q "chunk 30 .*does not match its hash in the signed manifest" <<<"$out" &&
                pass "a tampered payload is refused, naming the chunk" || fail "tampered reason" "$out"; }
check "file: tampered: phase failed" phase_is failed
check "file: tampered: slot B never written" test ! -s "$N/slots/b"
check "file: tampered: boot choice unchanged (A good, B not bootable)" \
        test "$(boot_state)" = "primary=A A_good=1 A_tries_left=0 B_good=0 B_tries_left=0"
out=$(install evil.obundle 2>&1) && fail "foreign signer refused" "$out" || {
        grep -qi "signature" <<<"$out" && pass "a bundle signed outside the keyring is refused" || fail "evil reason" "$out"; }
printf 'not a tar' >junk.obundle
out=$(install junk.obundle 2>&1) && fail "junk refused" "$out" || pass "a file that is no bundle is refused: ${out%%$'\n'*}"
check "file: refusals: slot A untouched" cmp -s "$N/slots/a" v1.img
ctl events --json --lines 20 | jq -e '[.events[] | select(.kind == "update.failed" and .priority == "critical")] | length >= 3' >/dev/null &&
        pass "each refusal is reported as a critical update.failed event" || fail "update.failed events"

check "file: install v2 (delta) reaches ready" install v2.obundle
check "file: phase ready, reboot required" test "$(ust '.phase + " " + (.reboot_required|tostring)')" = "ready true"
check "file: slot B holds v2" cmp -s "$N/slots/b" v2.img
check "file: new model written to its slot A" cmp -s "$N/models/yolo/a/image" yolo-1.bin
check "file: model not switched before the trial" test ! -e "$N/models/yolo/current"
check "file: B armed for 2 trial boots, A still the good fallback" \
        test "$(boot_state)" = "primary=B A_good=1 A_tries_left=0 B_good=0 B_tries_left=2"
grep -q "rootfs into slot B: verified; 64 chunks: 0 resumed, 61 from the active slot, 3 from the bundle (196608 bytes)" "$N/agent.log" &&
        pass "delta: only the 3 changed chunks (5%) read from the bundle" || fail "delta" "$(grep 'into slot' "$N/agent.log")"
check "file: slot A still v1" cmp -s "$N/slots/a" v1.img

reboot_node; [ "$BOOTED" = B ] && pass "file: the bootloader picks B" || fail "file: reboot into B"
check "file: kernel command line names B" grep -q "orbit.slot=B" "$N/cmdline"
start_agent
check "file: trial after booting B" wait_for 10 trial_began
check "file: the model is switched for the trial" test "$(readlink "$N/models/yolo/current")" = a
check "file: committed after the gate held" wait_for 10 phase_is committed
check "file: B committed in the boot environment" \
        test "$(boot_state)" = "primary=B A_good=1 A_tries_left=0 B_good=1 B_tries_left=0"
check "file: anti-rollback floor raised to 2" test "$(ust .min_security_version)" = 2
boot_events | jq -e '[.[] | select(.kind == "update.committed")] | length == 1' >/dev/null &&
        pass "file: the commit is reported" || fail "file: commit event"
# No link on this node: the old gate, and the log says so (docs/update.md, "The commit gate").
grep -q "the controller is not waited for: the link is disabled (link.enabled)" "$N/agent.log" &&
        [ "$(ust .reason)" = "the health gate held for 1 s" ] &&
        pass "file: no link: the health gate alone commits, and the log says the controller is not waited for" ||
        fail "file: the gate without a link" "$(ust .reason); $(grep 'trial of' "$N/agent.log" | tail -1)"

out=$(install v1.obundle 2>&1) && fail "rollback to v1 refused" "$out" || {
        grep -q "security_version 1 .*below" <<<"$out" && pass "anti-rollback: security_version 1 < floor 2 refused" ||
                fail "anti-rollback reason" "$out"; }
check "file: anti-rollback: slot A untouched (still v1)" cmp -s "$N/slots/a" v1.img
check "file: anti-rollback: A still a good fallback" \
        test "$(boot_state)" = "primary=B A_good=1 A_tries_left=0 B_good=1 B_tries_left=0"

# ---- kill -9 in the middle of a 96 MiB install, five times at random points ------------
# The agent's failpoint stops the install once the round's share of it is durable (an
# install here is faster than any poll): each kill lands where the round says.
resumed=0
seed=${ORBIT_TEST_SEED:-$RANDOM}
RANDOM=$seed
note "kills during the install at random points: seed $seed (ORBIT_TEST_SEED)"
stall_at() { echo $(($1 * 14 + RANDOM % 10)); } # 14-23%, 28-37%, ... 70-79%
at=$(stall_at 1)
stop_agent
STALL_AT=$at start_agent
ctl update install --no-wait "$D/v3.obundle" >/dev/null || fail "file: v3 install start"
# A bound, not a fault: how long a round may take to reach its failpoint. Under valgrind on a
# loaded machine hashing 20 MiB took more than 30 s (stress run on bc43ce1).
STALL_WAIT=30
[ ${#AGENT_WRAPPER[@]} -gt 0 ] && STALL_WAIT=300
# Round 4 kills inside a save of the progress: the copy being written torn (half of it on the
# disk over the older copy), the other copy whole.
: >"$D/tear"
stalls=0 torn=
for round in 1 2 3 4 5; do
        if [ "$round" = 4 ]; then
                wait_for "$STALL_WAIT" grep -q 'failpoint: the install progress save torn' "$N/agent.log" ||
                        { fail "round 4: no progress save torn past $at%" "$(ust .phase)"; break; }
                torn=$(grep -o 'save torn (rootfs: [0-9]* of' "$N/agent.log" | head -1 | grep -o '[0-9][0-9]*')
        else
                stalls=$((stalls + 1))
                wait_for "$STALL_WAIT" sh -c "[ \$(grep -c 'failpoint: install stalled' '$N/agent.log') -ge $stalls ]" ||
                        { fail "round $round: the install did not reach $at%" "$(ust .phase)"; break; }
        fi
        p=$(ust .phase)
        [ "$p" = installing ] || { fail "round $round: install $p, not stalled at $at%"; break; }
        kill_agent
        st=$(boot_state)
        [ "$st" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0" ] &&
                pass "kill -9 #$round at $at% of the install: the half-written slot A is not bootable" || fail "kill #$round boot state" "$st"
        cmp -s "$N/slots/b" v2.img && pass "kill -9 #$round: the active slot B untouched" || fail "kill #$round active slot"
        # while it is down: a bit flipped in the progress bitmap (round 2), a byte in a chunk
        # already written to slot A (round 3, chunk 1)
        [ "$round" = 2 ] && python3 - "$N/state/update/progress" <<'PY'
import random, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = random.randrange(len(b)); b[i] ^= 1 << random.randrange(8)
open(p, "wb").write(b)
PY
        [ "$round" = 3 ] && flipbyte "$N/slots/a" $((1 * CHUNK + 4321))
        if [ "$round" -lt 5 ]; then at=$(stall_at $((round + 1))); else at=; fi
        lines=$(wc -l <"$N/agent.log")
        if [ "$round" = 3 ]; then TEAR_AT=$at start_agent; else STALL_AT=$at start_agent; fi
        grep -q "resuming rootfs: [1-9][0-9]* of 1536 chunks already in slot A" "$N/agent.log" && resumed=1
        [ "$round" = 4 ] || continue
        # after the tear: the torn copy refused, the install resumed from the other (older) one
        after=$(tail -n +"$((lines + 1))" "$N/agent.log")
        kept=$(grep -o 'resuming rootfs: [0-9]* of 1536' <<<"$after" | head -1 | grep -o '[0-9][0-9]*' | head -1)
        grep -q "state $N/state/update/progress: copy [01] corrupt (bad header or checksum), not trusted; using copy [01]" <<<"$after" &&
                pass "kill -9 inside a progress save: the torn copy is found corrupt and the other used" ||
                fail "torn progress copy" "$(grep -E 'progress' <<<"$after" | head -3)"
        [ -n "$torn" ] && [ -n "$kept" ] && [ "$kept" -gt 0 ] && [ "$kept" -lt "$torn" ] &&
                pass "kill -9 inside a progress save: resumed from the older copy ($kept chunks; the torn one had $torn)" ||
                fail "resume after the tear" "torn copy: ${torn:-?} chunks, resumed: ${kept:-no resume line}"
done
rm -f "$D/tear"
ctl events --json --lines 1000 | jq -e --arg p "$N/state/update/progress" '[.events[] | select(.kind == "state.corrupt" and .body.path == $p and .body.restored)] | length == 2' >/dev/null &&
        pass "a bit flipped in the progress bitmap and a torn copy are detected and reported (state.corrupt, restored)" ||
        fail "progress flip and tear" "$(grep -E 'progress' "$N/agent.log" | tail -3)"
[ "$resumed" = 1 ] && pass "a restarted install resumed with verified chunks kept" ||
        fail "resume kept chunks" "$(grep -E 'resuming|into slot' "$N/agent.log")"
check "file: v3 ready after the kills" wait_for $((2 * STALL_WAIT)) phase_is ready
check "file: slot A holds v3 exactly" cmp -s "$N/slots/a" v3.img
grep -q "rootfs: 1 chunks written to slot A before changed on the medium since: written again" "$N/agent.log" &&
        pass "the byte flipped in a written chunk was found on the medium and the chunk written again" ||
        fail "slot flip during the install" "$(grep -E 'medium|into slot A' "$N/agent.log" | tail -3)"

# ---- a failed health gate: too hot during the trial -> rollback ----------------------
reboot_node; [ "$BOOTED" = A ] && pass "file: rebooted into A for the v3 trial" || fail "file: reboot into A"
settemp 95000
start_agent
check "file: v3 on trial" wait_for 10 trial_began
check "file: critical temperature: the gate fails and v3 rolls back" wait_for 10 phase_is rolled-back
ust .reason | grepq "health gate did not hold" && pass "file: the rollback says why: $(ust .reason)" || fail "rollback reason" "$(ust .reason)"
check "file: A abandoned, B primary again" \
        test "$(boot_state)" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0"
check "file: the agent asks for the reboot back" test "$(ust .reboot_required)" = true
settemp 45000
reboot_node; [ "$BOOTED" = B ] && pass "file: back on B" || fail "file: back on B"
start_agent
check "file: still rolled-back after the reboot" phase_is rolled-back
check "file: the floor stayed at 2 (v3 never committed)" test "$(ust .min_security_version)" = 2

# ---- an exhausted boot counter: the new slot never comes up ---------------------------
check "file: install v4" install v4.obundle
stop_agent
for i in 1 2; do
        s=$(boot_tool simulate-boot "$N/cmdline")
        [ "$s" = A ] && pass "file: trial boot $i of A (crashes before the agent starts)" || fail "trial boot $i" "$s"
done
reboot_node; [ "$BOOTED" = B ] && pass "file: the counter ran out: the bootloader falls back to B" || fail "fallback"
start_agent
check "file: the agent reports the rollback" wait_for 5 phase_is rolled-back
ust .reason | grepq "ran out" && pass "file: reason: $(ust .reason)" || fail "counter reason" "$(ust .reason)"
boot_events | jq -e '[.[] | select(.kind == "update.rolled-back" and .priority == "critical")] | length == 1' >/dev/null &&
        pass "file: the rollback is a critical event" || fail "rollback event"

# ---- scrub: the inactive slot A (v4, its record kept) read back from the medium --------
scrub_last() { ust ".scrub.last.slots[] | select(.slot_class == \"$1\") | $2"; }
out=$(ctl update scrub) && grep -q "rootfs slot A: clean; 64 chunks, 0 bad" <<<"$out" &&
        pass "scrub: slot A clean: $out" || fail "scrub clean" "$out"
flipbyte "$N/slots/a" $((20 * CHUNK + 1234)) # chunk 20: the same in v2, the active slot B
out=$(ctl update scrub) && grep -q "rootfs slot A: repaired; 64 chunks, 1 bad, 1 repaired" <<<"$out" &&
        pass "scrub: a flipped byte in a chunk the active slot also holds is repaired: $out" || fail "scrub repair" "$out"
check "scrub: slot A is v4 again, byte for byte" cmp -s "$N/slots/a" v4.img
check "scrub: the active slot B untouched" cmp -s "$N/slots/b" v2.img
boot_events | jq -e '[.[] | select(.kind == "update.scrub" and .priority == "high" and .body.slots[0].repaired_from_active == 1)] | length == 1' >/dev/null &&
        pass "scrub: the repair is reported as a high-priority update.scrub record" || fail "scrub repair event" "$(boot_events | jq -c '.[] | select(.kind == "update.scrub")')"
stop_agent
# periodic: every second here (update.scrub_interval_sec), and the result survives a restart
sed -i 's|"checkpoint_mib": 1}|"checkpoint_mib": 1, "scrub_interval_sec": 1}|' "$N/agent.json"
flipbyte "$N/slots/a" $((40 * CHUNK + 7))
start_agent
check "scrub: the last result survived the restart" test "$(scrub_last rootfs .result)" = repaired
check "scrub: the periodic scrub finds and repairs a flipped byte on its own" wait_for 10 cmp -s "$N/slots/a" v4.img
grep -q "scrub of slot rootfs A ($N/slots/a): 1 of 64 chunks changed on the medium, 1 repaired (1 from the active slot)" "$N/agent.log" &&
        pass "scrub: the log names the slot, its path and the counts" || fail "scrub log" "$(grep 'scrub of' "$N/agent.log" | tail -3)"
stop_agent
sed -i 's|, "scrub_interval_sec": 1}|, "scrub_interval_sec": 0}|' "$N/agent.json"
start_agent
check "scrub: interval 0: no scrub planned" test "$(ust .scrub.next_in_sec)" = null
flipbyte "$N/slots/a" $((10 * CHUNK + 99)) # chunk 10: only v4 has it: no good copy on the node
flipbyte "$N/slots/a" $((20 * CHUNK + 5))
out=$(ctl update scrub) && fail "scrub of a damaged slot exits 1" "$out" ||
        { grep -q "rootfs slot A: damaged; 64 chunks, 2 bad, 1 repaired; taken out of the boot choices, its record removed" <<<"$out" &&
                pass "scrub: chunk 10 has no good copy: $out" || fail "scrub damaged" "$out"
        grep -qF "its record removed; damaged, no source to repair from (the slot was installed from a local file)" <<<"$out" &&
                pass "scrub: a slot installed from a local file has no source on the ground: said" || fail "scrub no source" "$out"; }
check "scrub: the chunk with a copy was still repaired" cmp -s -i $((20 * CHUNK)):$((20 * CHUNK)) -n $CHUNK "$N/slots/a" v4.img
check "scrub: the damaged slot's record is gone (never a delta source or trusted again)" test ! -e "$N/state/update/slot-rootfs-A.manifest"
check "scrub: A not bootable" test "$(boot_state)" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0"
test "$(scrub_last rootfs '.first_bad | tostring')" = "[10,20]" && pass "scrub: the damaged chunks are listed" || fail "scrub first_bad" "$(scrub_last rootfs .first_bad)"
boot_events | jq -e '[.[] | select(.kind == "update.scrub" and .priority == "critical" and .body.slots[0].unrepaired == 1)] | length == 1' >/dev/null &&
        pass "scrub: a slot left damaged is a critical update.scrub record" || fail "scrub critical event"
out=$(ctl update scrub 2>&1) && fail "nothing left to scrub" "$out" || { grep -q "nothing to scrub" <<<"$out" && pass "scrub: nothing left to scrub: says why" || fail "scrub nothing" "$out"; }
check "file: install v4 again into the damaged slot" install v4.obundle
check "file: slot A is v4 again after the install" cmp -s "$N/slots/a" v4.img

# ---- an agent that dies during the trial (killed as soon as it serves, before the gate) ----
# The trial's timeout runs across restarts of the agent within one boot: it cannot keep
# a slot on trial for ever by crashing before the gate holds. The board is at a critical
# temperature meanwhile, so the gate never holds and only the timeout ends the trial; the
# kills come when the agent answers in its trial (no wall-clock guess), and the timeout is
# long beside a start, so three of them land inside it.
GATE=3 TRIAL=20
[ ${#AGENT_WRAPPER[@]} -gt 0 ] && GATE=8 TRIAL=60 # valgrind: a start alone takes seconds
sed -i "s|\"gate_sec\": 1, \"trial_timeout_sec\": 4|\"gate_sec\": $GATE, \"trial_timeout_sec\": $TRIAL|" "$N/agent.json"
settemp 95000
reboot_node; [ "$BOOTED" = A ] && pass "file: rebooted into A for a v4 trial" || fail "file: reboot into A (v4)"
trial_start() { grep -o '"started_monotonic_usec": *[0-9]*' "$N/state/update/$1" | grep -o '[0-9]*$'; }
restarts=0
starts=()
for round in 1 2 3; do
        start_agent
        p=$(ust .phase)
        [ "$p" = trial ] || break
        restarts=$((restarts + 1))
        starts+=("$(trial_start trial)")
        kill_agent
done
if [ "$p" = trial ]; then
        start_agent
        wait_for $((TRIAL + 30)) phase_is rolled-back
        p=$(ust .phase)
fi
[ "$p" = rolled-back ] && pass "file: killed $restarts times during the trial: rolled back once the $TRIAL s timeout had passed in all" ||
        fail "file: a crash-looping trial must roll back" "phase $p after $restarts restarts"
[ "$restarts" -ge 2 ] && pass "file: the trial went on across $restarts restarts before that" || fail "file: trial restarts" "$restarts"
[ -n "${starts[0]:-}" ] && [ "$(printf '%s\n' "${starts[@]}" | sort -u | wc -l)" = 1 ] &&
        pass "file: the trial's start was the same at each restart (${starts[0]} us)" || fail "file: trial start kept" "${starts[*]}"
settemp 45000
ust .reason | grepq "did not hold for $GATE s within $TRIAL s" && pass "file: reason: $(ust .reason)" || fail "file: crash-loop reason" "$(ust .reason)"
grep -q "the trial began [0-9.]* s ago, before the agent restarted" "$N/agent.log" &&
        pass "file: each restart continued the trial's clock" || fail "file: trial clock" "$(grep -i trial "$N/agent.log" | tail -3)"
check "file: A abandoned, B primary and good" test "$(boot_state)" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0"
# Rolled back but not yet rebooted (still on A): B is the slot to go back to. A scrub must
# not touch it, even damaged (chunk 10 of v2 is nowhere else on the node).
flipbyte "$N/slots/b" $((10 * CHUNK + 77))
out=$(ctl update scrub 2>&1) && fail "scrub while a rollback waits for its reboot" "$out" ||
        { grep -q "nothing to scrub" <<<"$out" && pass "scrub: the slot a rollback goes back to is left alone until the reboot" ||
                fail "scrub during a pending rollback" "$out"; }
check "file: B still primary and good" test "$(boot_state)" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0"
flipbyte "$N/slots/b" $((10 * CHUNK + 77)) # undone
check "file: B is v2 again" cmp -s "$N/slots/b" v2.img
reboot_node; [ "$BOOTED" = B ] && pass "file: back on B after the crash-looping trial" || fail "file: back on B"

# ---- power cuts at each step of a trial and its commit ---------------------------------
# The trial and its commit write, in order: the phase "trial" (the update's state file), the
# trial's clock (its trial file), the trial file again once the health gate has held, the
# boot environment marking A good, the phase "committed". A failpoint holds one write at one
# step (the boot environment's: ORBIT_FAILPOINT_BOOTENV_STALL_AT; a state file's:
# ORBIT_FAILPOINT_WRITE_STALL_AT, lib/fileio.c: linked, kept, written, renamed, synced) and
# the kill lands there, not where a sleep happened to end: each round cuts one step further,
# the restart going on from what the cut before left. After each cut: the boot environment
# (B a good fallback throughout, A good from the rename of the commit's write on), the phase
# and the trial file on the disk, every state file loading (state-check, on a copy: a load
# may write), and the next start deciding from them what it must. The trial timeout is an
# hour: a trial's clock runs across restarts, and eleven starts under valgrind take minutes.
sed -i "s|\"gate_sec\": $GATE, \"trial_timeout_sec\": $TRIAL|\"gate_sec\": 1, \"trial_timeout_sec\": 3600|" "$N/agent.json"
start_agent
check "file: install v4 for the commit under power cuts" install v4.obundle
reboot_node
PRE="primary=A A_good=0 A_tries_left=1 B_good=1 B_tries_left=0"
POST="primary=A A_good=1 A_tries_left=0 B_good=1 B_tries_left=0"
check "file: A on its first trial boot, B the good fallback" test "$(boot_state)" = "$PRE"
STATE_CHECK=$top_builddir/tests/integration/state-check
W=$N/state/update
holds() { grep -c 'failpoint: the \(write of .* held\|boot environment write .* stalled\) ' "$N/agent.log"; }
more_holds() { [ "$(holds)" -gt "$1" ]; }
disk_phase() { tail -n +2 "$W/state" | jq -r .phase; }
disk_trial() { if [ -e "$W/trial" ]; then tail -n +2 "$W/trial" | jq -r .health_held; else echo none; fi; }
# cut_at WHAT AT: start the agent with one write held at AT (WHAT: bootenv, OP:STEP; or write,
# PATH:STEP), wait until it holds there (a start's own writes come before it serves), kill -9.
cut_at() {
        local n held=0
        n=$(holds)
        : >"$D/hold"
        if [ "$1" = bootenv ]; then
                ORBIT_FAILPOINT_BOOTENV_STALL_AT=$2 ORBIT_FAILPOINT_BOOTENV_STALL_FILE=$D/hold \
                        "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/agent.json" >>"$N/agent.log" 2>&1 &
        else
                ORBIT_FAILPOINT_WRITE_STALL_AT=$2 ORBIT_FAILPOINT_WRITE_STALL_FILE=$D/hold \
                        "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/agent.json" >>"$N/agent.log" 2>&1 &
        fi
        AGENT_PID=$!
        track_pid "$AGENT_PID"
        wait_for 30 more_holds "$n" || held=1
        kill_agent
        rm -f "$D/hold"
        return $held
}
# WHAT | AT | the start's decision (its log) | what the cut leaves: boot state, phase, the
# trial file's health_held (or none)
rounds=(
        "write|$W/state:written|ready: begin-trial|$PRE|ready|none"
        "write|$W/state:renamed|ready: begin-trial|$PRE|trial|none"
        "write|$W/trial:written|trial: begin-trial|$PRE|trial|none"
        "write|$W/trial:synced|trial: begin-trial|$PRE|trial|false"
        "write|$W/trial:linked|trial: begin-trial|$PRE|trial|false"  # the gate held: its save
        "write|$W/trial:renamed|trial: begin-trial|$PRE|trial|true"
        "bootenv|good:written|trial: begin-trial|$PRE|trial|true"     # the commit
        "bootenv|good:renamed|trial: begin-trial|$POST|trial|true"
        "bootenv|good:synced|trial: committed|$POST|trial|true"      # recorded at start
        "write|$W/state:written|trial: committed|$POST|trial|true"
        "write|$W/state:synced|trial: committed|$POST|committed|true"
)
bad=0 round=0
for r in "${rounds[@]}"; do
        round=$((round + 1))
        IFS='|' read -r what at decision want_boot want_phase want_trial <<<"$r"
        lines=$(wc -l <"$N/agent.log")
        if ! cut_at "$what" "$at"; then
                bad=$((bad + 1)); note "round $round: no hold at $what $at"; continue
        fi
        since=$(tail -n +"$((lines + 1))" "$N/agent.log")
        if [ "$what" = bootenv ]; then
                grepq "failpoint: the boot environment write (${at%:*}) of $N/boot.json stalled ${at##*:}," <<<"$since"
        else
                grepq "failpoint: the write of ${at%:*} held ${at##*:}," <<<"$since"
        fi || { bad=$((bad + 1)); note "round $round: held elsewhere: $(grep failpoint <<<"$since" | head -1)"; }
        grepq "update: at start, .* is $decision\$" <<<"$since" ||
                { bad=$((bad + 1)); note "round $round ($at): at start: $(grep 'at start' <<<"$since")"; }
        got="$(boot_state) | $(disk_phase) | $(disk_trial)"
        [ "$got" = "$want_boot | $want_phase | $want_trial" ] ||
                { bad=$((bad + 1)); note "round $round ($at): left $got, want $want_boot | $want_phase | $want_trial"; }
        rm -rf "$D/state-copy"; cp -a "$N/state" "$D/state-copy"
        out=$("$STATE_CHECK" --ignore agent.lock "$D/state-copy" "$D/state-copy/update" 2>&1) &&
                grepq ' 0 restored from their last good copy, 0 bad' <<<"$out" ||
                { bad=$((bad + 1)); note "round $round ($at): state-check: $out"; }
done
[ "$bad" = 0 ] && pass "file: $round power cuts, one at each step of the trial and its commit: each left what its step must, every state file loads, B stays a good fallback" ||
        fail "file: power cuts during the trial and commit" "$bad bad of $round rounds"
start_agent
check "file: committed in the end" wait_for 10 phase_is committed
check "file: A committed, B still the good fallback" test "$(boot_state)" = "$POST"
check "file: the floor rose to 4" test "$(ust .min_security_version)" = 4
stop_agent

# ---- grub: mark-good, then an operator rollback ---------------------------------------
new_node grub
start_agent
check "grub: install v2" install v2.obundle
# The factory slot has no record: its scan is kept, for a resumed or a later install from it.
check "grub: the factory slot A's scan kept (slot-rootfs-A.scan)" test -s "$N/state/update/slot-rootfs-A.scan"
grub-editenv "$N/grubenv" list | grepq -x ORBIT_B_TRIES=2 && grub-editenv "$N/grubenv" list | grepq -x 'ORBIT_ORDER=B A' &&
        pass "grub: grub-editenv reads B armed first" || fail "grub env" "$(grub-editenv "$N/grubenv" list)"
reboot_node; [ "$BOOTED" = B ] || fail "grub: reboot into B"
start_agent
check "grub: trial" wait_for 5 phase_is trial
check "grub: operator mark-good" ctl update mark-good
check "grub: committed at once" phase_is committed
grub-editenv "$N/grubenv" list | grepq -x ORBIT_B_OK=1 && pass "grub: grub-editenv reads B committed" || fail "grub commit" "$(grub-editenv "$N/grubenv" list)"
check "grub: operator rollback" ctl update rollback
check "grub: rolled back" phase_is rolled-back
grub-editenv "$N/grubenv" list | grepq '^ORBIT_ORDER=A' && pass "grub: A first again" || fail "grub rollback" "$(grub-editenv "$N/grubenv" list)"
check "grub: model pointed back (a new model: no current)" test ! -e "$N/models/yolo/current"
reboot_node; [ "$BOOTED" = A ] && pass "grub: back on A" || fail "grub: back on A"

# ---- grub: a power cut between the arm and "ready" (the virtual board's cut 2b) -------
# The failpoint holds the grubenv write arming B once it is durable; kill -9 there is that
# cut. The bootloader boots B while the saved phase is still "installing": the install had
# finished, so the agent goes on to its trial, not to a resume into the slot it runs from.
: >"$D/bootenv-stall"
ORBIT_FAILPOINT_BOOTENV_STALL_AT=try:synced ORBIT_FAILPOINT_BOOTENV_STALL_FILE=$D/bootenv-stall start_agent
ctl update install --no-wait "$D/v4.obundle" >/dev/null || fail "grub: v4 install start"
check "grub: the arm held once durable (failpoint)" \
        wait_for 60 grep -q 'failpoint: the boot environment write (try) .* stalled synced' "$N/agent.log"
grep -q "update: the active slot $N/slots/a as its scan kept it ([0-9]* chunks in slot-rootfs-A.scan): not hashed again" \
        "$N/agent.log" && [ "$(grep -c 'hashing the active slot' "$N/agent.log")" = 1 ] &&
        pass "grub: the install of v4 from A took A's kept scan (hashed once, by v2's install)" ||
        fail "grub: A's kept scan" "$(grep -E 'hashing the active|scan' "$N/agent.log")"
kill_agent
rm -f "$D/bootenv-stall"
grub-editenv "$N/grubenv" list | grepq -x 'ORBIT_ORDER=B A' && grub-editenv "$N/grubenv" list | grepq -x ORBIT_B_TRIES=2 &&
        pass "grub: the cut left B armed on the disk" || fail "grub: armed" "$(grub-editenv "$N/grubenv" list)"
reboot_node; [ "$BOOTED" = B ] && pass "grub: the bootloader boots the armed B" || fail "grub: boot into the armed B" "$BOOTED"
start_agent
check "grub: the agent on B begins the trial of the finished install" wait_for 10 phase_is trial
grep -q 'at start, .* is installing: begin-trial' "$N/agent.log" &&
        pass "grub: the log says the install is taken for finished" ||
        fail "grub: at start" "$(grep 'at start' "$N/agent.log" | tail -1)"
check "grub: operator mark-good commits v4" ctl update mark-good
check "grub: v4 committed" phase_is committed
check "grub: slot B holds v4" cmp -s "$N/slots/b" v4.img

# A cut before the arm reached the grubenv (held before its sector is written in place,
# kill -9): the bootloader boots B again, and the install resumes with every chunk of A kept.
: >"$D/bootenv-stall"
stop_agent
ORBIT_FAILPOINT_BOOTENV_STALL_AT=try:written ORBIT_FAILPOINT_BOOTENV_STALL_FILE=$D/bootenv-stall start_agent
ctl update install --no-wait "$D/v4.obundle" >/dev/null || fail "grub: v4 into A: install start"
check "grub: the arm of A held before it reached the grubenv (failpoint)" \
        wait_for 60 grep -q 'failpoint: the boot environment write (try) .* stalled written' "$N/agent.log"
kill_agent
rm -f "$D/bootenv-stall"
grub-editenv "$N/grubenv" list | grepq -x 'ORBIT_ORDER=B A' && grub-editenv "$N/grubenv" list | grepq -x ORBIT_A_TRIES=0 &&
        pass "grub: the cut lost the arm of A" || fail "grub: arm lost" "$(grub-editenv "$N/grubenv" list)"
reboot_node; [ "$BOOTED" = B ] && pass "grub: the bootloader boots B again" || fail "grub: boot B" "$BOOTED"
start_agent
check "grub: the install of A completes again" wait_for 30 phase_is ready
grep -q 'resuming rootfs: 64 of 64 chunks already in slot A' "$N/agent.log" &&
        pass "grub: it resumed with every chunk kept (read back, not written again)" ||
        fail "grub: resume after the lost arm" "$(grep -E 'resuming|into slot A' "$N/agent.log" | tail -2)"
check "grub: slot A holds v4" cmp -s "$N/slots/a" v4.img
check "grub: A's scan forgotten once A was written" test ! -e "$N/state/update/slot-rootfs-A.scan"
stop_agent

# ---- uboot: mark-bad during the trial --------------------------------------------------
new_node uboot
start_agent
check "uboot: install v2" install v2.obundle
fw_printenv -c "$N/fw_env.config" BOOT_ORDER | grepq -x 'BOOT_ORDER=B A' && pass "uboot: fw_printenv reads B first" ||
        fail "uboot env" "$(fw_printenv -c "$N/fw_env.config" 2>&1)"
fw_printenv -c "$N/fw_env.config" BOOT_B_LEFT | grepq -x 'BOOT_B_LEFT=2' && pass "uboot: fw_printenv reads 2 tries for B" ||
        fail "uboot tries" "$(fw_printenv -c "$N/fw_env.config" 2>&1)"
reboot_node; [ "$BOOTED" = B ] || fail "uboot: reboot into B"
fw_printenv -c "$N/fw_env.config" BOOT_B_LEFT | grepq -x 'BOOT_B_LEFT=1' && pass "uboot: the boot used one try" ||
        fail "uboot tries after boot" "$(fw_printenv -c "$N/fw_env.config" 2>&1)"
start_agent
check "uboot: trial" wait_for 5 phase_is trial
check "uboot: operator mark-bad" ctl update mark-bad
check "uboot: rolled back" phase_is rolled-back
fw_printenv -c "$N/fw_env.config" BOOT_ORDER | grepq '^BOOT_ORDER=A' && pass "uboot: fw_printenv reads A first again" ||
        fail "uboot rollback" "$(fw_printenv -c "$N/fw_env.config" 2>&1)"
stop_agent

# ---- models: a model-only bundle switches current and restarts the workloads using it ----
if [ -n "${ORBIT_VALGRIND:-}" ]; then
        note "models with workloads skipped under valgrind: it cannot create the sandbox's namespaces"
elif [ "$(id -u)" -eq 0 ] && { [ -d /sys/fs/cgroup/cpu ] || [ -f /sys/fs/cgroup/cgroup.controllers ]; }; then
        PARENT="orbit-it-update-$$"
        cleanup_cgroups() { cleanup_cgroup_tree "$PARENT"; }
        trap 'cleanup; cleanup_cgroups' EXIT
        new_node models
        head -c 300000 /dev/urandom >yolo-2.bin
        bundle m1.obundle 1 "$K/signer.key" "$K/signer.pem" --image model:yolo=yolo-1.bin
        bundle m2.obundle 2 "$K/signer.key" "$K/signer.pem" --image model:yolo=yolo-2.bin
        # the default models dir, in the 0700 state dir: the runtime hands the model's tree
        # to the workload in its user namespace (sandbox_params.handed)
        M=$N/state/models
        sed -i "s|, \"models_dir\": \"$N/models\"||" "$N/agent.json"
        mkdir -m 700 "$N/state" && mkdir -p "$N/etc/workloads.d" "$M/yolo"
        sed -i "s|\"runtime\": {\"enabled\": false}|\"runtime\": {\"cgroup_parent\": \"$PARENT\", \"stop_workloads_on_exit\": true, \"sandbox_init\": \"$SANDBOX_INIT\"}|" "$N/agent.json"
        cat >"$N/etc/workloads.d/infer.json" <<JSON
{"name": "infer", "priority": "critical", "exec": ["/bin/sh", "-c", "while :; do sleep 0.2; done"],
 "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true},
             {"source": "$M/yolo", "target": "/models"}]},
 "health_probe": {"exec": ["/bin/sh", "-c", "test -r /models/current/image"], "interval_sec": 1, "timeout_sec": 5,
                  "failures": 100}}
JSON
        start_agent
        check "models: the workload runs" wait_for 10 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$N/run/control.sock\" workload show infer --json | jq -e '.state == \"running\"' >/dev/null"
        check "models: a model-only bundle commits without a reboot" install m1.obundle
        check "models: committed after the gate" wait_for 10 phase_is committed
        check "models: current is a" test "$(readlink "$M/yolo/current")" = a
        check "models: the workload reads the model through the handed tree" wait_for 20 sh -c "\"$CTL_BIN\" --socket \"$N/run/control.sock\" workload show infer --json | jq -e '.health == \"healthy\"' >/dev/null"
        check "models: the state dir stays 0700" test "$(stat -c %a "$N/state")" = 700
        pid1=$(ctl workload show infer --json | jq -r .pid)
        check "models: install the next model version" install m2.obundle
        check "models: committed" wait_for 10 phase_is committed
        check "models: current switched to b" test "$(readlink "$M/yolo/current")" = b
        check "models: b holds the new model" cmp -s "$M/yolo/b/image" yolo-2.bin
        check "models: a still holds the previous one" cmp -s "$M/yolo/a/image" yolo-1.bin
        check "models: the workload using the model was restarted" wait_for 10 sh -c "p=\$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" workload show infer --json | jq -r 'select(.state == \"running\") | .pid'); [ -n \"\$p\" ] && [ \"\$p\" != $pid1 ]"
        grep -q "model yolo switched; restarted infer" "$N/agent.log" && pass "models: the switch names the restarted workload" || fail "models: restart log"
        check "models: operator rollback points current back at a" sh -c "\"$CTL_BIN\" --socket \"$N/run/control.sock\" update rollback >/dev/null && [ \"\$(readlink \"$M/yolo/current\")\" = a ]"
        # the inactive model b (yolo-2, its record kept) damaged: no other copy on the node
        flipbyte "$M/yolo/b/image" 4242
        out=$(ctl update scrub) && fail "models: scrub of a damaged model exits 1" "$out" ||
                { grep -q "model:yolo slot B: damaged; 5 chunks, 1 bad, 0 repaired; its record removed" <<<"$out" &&
                        pass "models: the inactive model is scrubbed: $out" || fail "models: scrub" "$out"; }
        stop_agent
else
        note "models with workloads skipped: needs root and cgroups"
fi

for f in "$D"/node-*/agent.log; do
        if has_sanitizer_report "$f"; then fail "sanitizer report in $f"; fi
done
finish
