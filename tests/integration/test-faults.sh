# Integration test: faults around the agent's state: a full disk, power cuts (SIGKILL at each
# step of the state writes of a start and a stop, held there by a failpoint), and bit flips
# in its state files (root).
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

# ---- power cuts: SIGKILL at each step of the agent's state writes --------------------------
# A start writes the boot epoch (boot), a stop the trusted clock's floor (time), each by
# statefile_save's steps: the current copy linked as NAME.prev.tmp (linked), that link
# renamed over NAME.prev (kept), NAME.tmp written and fsynced (written), renamed over NAME
# (renamed), the directory fsynced (synced). The agent's failpoint
# (ORBIT_FAILPOINT_WRITE_STALL_AT, lib/fileio.c) holds the write at one step and the kill
# lands there, not where a sleep happened to end: every run cuts at the same points, each of
# them, and checks what that point must leave. After each cut the state is judged by the
# agent's own loaders (state-check, on a copy: a load may write), then a restart must serve
# and count the boot on. (Process kills: the kernel keeps what was written. A disk that
# loses its cache is the virtual board's sweep: docs/board.md.)
STATE_CHECK=$top_builddir/tests/integration/state-check
[ -x "$STATE_CHECK" ] || bail "$STATE_CHECK not built"
HOLD=$D/hold
n_held() { grep -c '^failpoint: the write of .* held' "$D/agent.log"; }
more_held() { [ "$(n_held)" -gt "$1" ]; }
bad=0 cuts=0 last=0
cut_at() { # FILE STEP WANT_NEXT_EPOCH: kill -9 with FILE's write held at STEP, then restart
        local file=$1 step=$2 want=$3 n e held
        cuts=$((cuts + 1))
        n=$(n_held)
        : >"$HOLD"
        ORBIT_FAILPOINT_WRITE_STALL_AT="$STATE/$file:$step" ORBIT_FAILPOINT_WRITE_STALL_FILE=$HOLD \
                "$AGENT" --config "$D/agent.json" >>"$D/agent.log" 2>&1 &
        APID=$!
        # the floor is saved as the agent stops: it serves first, then is told to stop
        if [ "$file" = time ]; then
                wait_for 10 ctl ping >/dev/null 2>&1 || { bad=$((bad + 1)); note "cut $cuts: the agent did not serve"; }
                kill -TERM "$APID"
        fi
        if ! wait_for 10 more_held "$n"; then
                bad=$((bad + 1)); note "cut $cuts: the write of $file never held $step"
        fi
        kill -KILL "$APID" 2>/dev/null; wait "$APID" 2>/dev/null
        rm -f "$HOLD"
        held=$(grep '^failpoint: the write of .* held' "$D/agent.log" | tail -1)
        [ "$held" = "failpoint: the write of $STATE/$file held $step, while $HOLD exists" ] ||
                { bad=$((bad + 1)); note "cut $cuts: held elsewhere: $held"; }
        # what the step leaves: before "renamed" the file is as it was, its new copy in
        # NAME.tmp (written) or not yet made; from "renamed" on the new copy is the file
        case $step in
        linked) [ -f "$STATE/$file.prev.tmp" ] || { bad=$((bad + 1)); note "cut $cuts: no $file.prev.tmp after linked"; } ;;
        # kept: NAME.prev is now the current copy itself (the link renamed over the older
        # one), the same inode: a compare of contents could not tell it from a copy
        kept) [ "$STATE/$file" -ef "$STATE/$file.prev" ] || { bad=$((bad + 1)); note "cut $cuts: $file.prev is not $file (the same file) after kept"; } ;;
        written) [ -f "$STATE/$file.tmp" ] || { bad=$((bad + 1)); note "cut $cuts: no $file.tmp after written"; } ;;
        renamed|synced) [ ! -e "$STATE/$file.tmp" ] || { bad=$((bad + 1)); note "cut $cuts: $file.tmp left after $step"; } ;;
        esac
        rm -rf "$D/copy"; cp -a "$STATE" "$D/copy"
        out=$("$STATE_CHECK" --ignore agent.lock "$D/copy" 2>&1) && grepq ' 0 restored from their last good copy, 0 bad' <<<"$out" ||
                { bad=$((bad + 1)); note "cut $cuts ($file $step): state-check: $out"; }
        # the restart: it serves, and its epoch is the next after the one on the disk (an
        # epoch cut before its rename is taken again; one renamed into place never is)
        if start; then
                e=$(epoch); stop
                [ "$e" = "$want" ] && [ "$e" -gt "$last" ] ||
                        { bad=$((bad + 1)); note "cut $cuts ($file $step): epoch $e after $last, want $want"; }
                last=$e
                [ ! -e "$STATE/$file.tmp" ] && [ ! -e "$STATE/$file.prev.tmp" ] ||
                        { bad=$((bad + 1)); note "cut $cuts ($file $step): a temp file left after the restart: $(ls "$STATE")"; }
        else
                bad=$((bad + 1)); note "cut $cuts ($file $step): the agent did not start after the kill"
        fi
}
# The first start and stop of a node: nothing to keep yet, so no "linked" or "kept".
for file in boot time; do
        for step in written renamed synced; do
                rm -rf "$STATE"; mkdir -p "$STATE"; last=0
                want=2; [ "$file $step" = "boot written" ] && want=1
                cut_at "$file" "$step" "$want"
        done
done
first=$cuts
# Every later start and stop: each step of both files; the epoch counts on from the last start.
for file in boot time; do
        for step in linked kept written renamed synced; do
                want=$((last + 2))
                [ "$file" = boot ] && case $step in linked|kept|written) want=$((last + 1)) ;; esac
                cut_at "$file" "$step" "$want"
        done
done
# And once it serves: nothing held, the lock and the control socket left behind.
cuts=$((cuts + 1))
if start; then
        kill -KILL "$APID"; wait "$APID" 2>/dev/null
        if start; then e=$(epoch); stop; [ "$e" = $((last + 2)) ] || { bad=$((bad + 1)); note "cut $cuts (serving): epoch $e after $last"; }; last=$e
        else bad=$((bad + 1)); note "cut $cuts (serving): the agent did not start after the kill"; fi
else
        bad=$((bad + 1)); note "cut $cuts: the agent did not start"
fi
[ "$bad" = 0 ] && pass "$cuts power cuts, at each step of the state writes of a start and a stop ($first of a node's first) and once serving: each left what its step must, every restart loads its state and the epoch only grows (now $last)" \
        || fail "power cuts" "$bad bad points of $cuts"
grep -q "corrupt" "$D/agent.log" && fail "a kill -9 left a state file found corrupt" "$(grep corrupt "$D/agent.log" | head -3)" ||
        pass "no cut left a state file that a start found corrupt (each step leaves a whole copy)"

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
