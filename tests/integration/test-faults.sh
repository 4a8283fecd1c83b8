# Integration test: faults around the agent's state: a full disk, power cuts (SIGKILL at
# random moments of start-up and state writes), and bit flips in its state files (root).
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (tmpfs mounts)"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
STATE=$D/state
mkdir -p "$STATE" "$D/run"
trap 'cleanup_mounts; cleanup' EXIT
cleanup_mounts() { mountpoint -q "$STATE" && umount -l "$STATE"; return 0; }

cat >"$D/agent.json" <<JSON
{"config_version": 1, "node_id": "faulty", "state_dir": "$STATE", "runtime_dir": "$D/run", "log_target": "stderr",
 "runtime": {"enabled": false}, "health": {"enabled": false}}
JSON
ctl() { "$CTL_BIN" --socket "$D/run/control.sock" "$@"; }
epoch() { ctl status --json | jq -r .boot_epoch; }

start() { # start the agent, wait until it serves; 0 if it did
        "$AGENT" --config "$D/agent.json" >>"$D/agent.log" 2>&1 &
        APID=$!
        wait_for 10 ctl ping >/dev/null 2>&1
}
stop() { kill -TERM "$APID" 2>/dev/null; wait "$APID" 2>/dev/null; }

# ---- a full state filesystem ---------------------------------------------------------
mount -t tmpfs -o size=256k orbit-faults "$STATE" || bail "cannot mount a small tmpfs"
start || bail "first start failed"
e1=$(epoch); stop
[ "$e1" = 1 ] && pass "first start on a small state filesystem: epoch 1" || fail "epoch 1" "$e1"
dd if=/dev/zero of="$STATE/filler" bs=4k 2>/dev/null   # fill it to the last block
if start; then
        fail "a full disk must stop the start (the boot epoch cannot be recorded)"; stop
else
        wait "$APID" 2>/dev/null; rc=$?
        [ "$rc" -ne 0 ] && pass "with the state disk full the agent refuses to start (exit $rc)" || fail "full disk exit"
        grep -q "cannot record boot epoch 2: No space left on device" "$D/agent.log" \
                && pass "...saying why: 'cannot record boot epoch 2: No space left on device'" || fail "full disk message" "$(tail -3 "$D/agent.log")"
fi
payload() { tail -n +2 "$1"; }
[ "$(payload "$STATE/boot")" = '{"boot_epoch":1,"format":1}' ] && pass "the state that was safe is unchanged" || fail "boot file" "$(cat "$STATE/boot")"
[ ! -e "$STATE/boot.tmp" ] && pass "no temp file is left behind" || fail "tmp left"
rm -f "$STATE/filler"
start && e2=$(epoch) && stop
[ "${e2:-}" = 2 ] && pass "space back: the agent starts and counts on (epoch 2)" || fail "after full disk" "${e2:-}"
cleanup_mounts

# ---- power cuts: SIGKILL at random moments, state always loads ------------------------
rm -rf "$STATE"; mkdir -p "$STATE"
last=0; bad=0
for i in $(seq 1 40); do
        "$AGENT" --config "$D/agent.json" >>"$D/agent.log" 2>&1 &
        pid=$!
        # Kill anywhere from right at exec to well after start-up (0-30 ms).
        sleep "0.0$((RANDOM % 30 + 1))" 2>/dev/null || sleep 0.01
        kill -KILL "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
        # Whatever the moment, the next start must find a state that verifies.
        if start; then
                e=$(epoch); stop
                if ! [ "$e" -gt "$last" ]; then bad=$((bad + 1)); note "run $i: epoch $e after $last"; fi
                last=$e
        else
                bad=$((bad + 1)); note "run $i: the agent did not start after a kill"
        fi
done
[ "$bad" = 0 ] && pass "40 power cuts at random moments: every restart loads its state and the epoch only grows (now $last)" \
        || fail "power cuts" "$bad bad runs"
grep -q "corrupt" "$D/agent.log" && note "some kills hit a write: the last good copy was used"
ls "$STATE" | grepq '\.tmp$' && note "a .tmp from a killed write is left; it is overwritten by the next write"

# ---- bit flips in every state file -----------------------------------------------------
for f in boot identity; do
        [ -f "$STATE/$f" ] || continue
        cp "$STATE/$f" "$D/$f.good"
        python3 - "$STATE/$f" <<'PY'
import random, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
i = random.randrange(len(b)); b[i] ^= 1 << random.randrange(8)
open(p, "wb").write(b)
PY
done
start || bail "start after bit flips"
grep -q "state $STATE/boot: corrupt" "$D/agent.log" && grep -q "restoring last good copy" "$D/agent.log" \
        && pass "a flipped bit in the boot epoch is detected and the last good copy restored" || fail "boot flip" "$(grep boot "$D/agent.log" | tail -3)"
ctl events --json --lines 100 | jq -e --arg p "$STATE/boot" '[.events[] | select(.kind == "state.corrupt" and .priority == "high" and .body.path == $p and .body.restored == true and (.body.problem | length > 0))] | length == 1' >/dev/null &&
        pass "the flip is reported to the ground: a state.corrupt record names the file and the problem" ||
        fail "state.corrupt record" "$(ctl events --json --lines 100 | jq -c '.events[] | select(.kind == "state.corrupt")')"
e=$(epoch); stop
[ "$e" -ge "$last" ] && pass "the epoch never goes back after a flip ($e)" || fail "epoch after flip" "$e < $last"
if has_sanitizer_report "$D/agent.log"; then fail "no sanitizer reports"; else pass "no sanitizer reports"; fi
finish
