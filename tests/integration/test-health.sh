# Integration test: a fake thermal zone made hotter and cooler drives real workloads on
# real cgroups through throttle, freeze, stop and back; eclipse does the same (root).
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
[ -d /sys/fs/cgroup/cpu ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || skip_all "no cgroup hierarchy"

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
PARENT="orbit-it-health-$$"
D=$TESTDIR
AGENT_LOG=$D/agent.log
FAIL_CONTEXT_LOG=$AGENT_LOG
NCPU=$(nproc)
BINDS='"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}]'
ctl() { "$CTL_BIN" --socket "$D/run/control.sock" "$@"; }
health() { ctl health --json; }
level_is() { [ "$(health | jq -r .level)" = "$1" ]; }
wstate() { ctl workload show "$1" --json | jq -r "$2"; }

cgfile() { # WORKLOAD HIERARCHY-v1 FILE-v1 FILE-v2
        if [ -d /sys/fs/cgroup/cpu/"$PARENT" ]; then
                cat "/sys/fs/cgroup/$2/$PARENT/$1/$3" 2>/dev/null
        else
                cat "/sys/fs/cgroup/$PARENT/$1/$4" 2>/dev/null
        fi
}
# The kernel's count of WORKLOAD's CPU in µs (v1: cpuacct.usage in ns; v2: cpu.stat).
cg_cpu_usec() {
        if [ -d /sys/fs/cgroup/cpu/"$PARENT" ]; then
                cgfile "$1" cpuacct cpuacct.usage - | awk '{printf "%d\n", $1 / 1000}'
        else
                cgfile "$1" - - cpu.stat | awk '$1 == "usage_usec" {print $2}'
        fi
}
cg_cpu_above() { [ "$(cg_cpu_usec "$1")" -gt "$2" ]; }
# The health reports: the seq of the latest, and WORKLOAD's cpu_percent summaries in those
# after seq SEQ (null in a report that has none).
reports_after() { # SEQ: the seqs of the reports after SEQ, in order
        ctl events --kind health.report --json -n 1000 | jq -c --argjson s "$1" '[.events[].key.seq | select(. > $s)] | sort'
}
last_report_seq() { ctl events --kind health.report --json -n 1000 | jq '[.events[].key.seq] | max // 0'; }
reports_after_at_least() { [ "$(reports_after "$1" | jq length)" -ge "$2" ]; } # SEQ N
cpu_percent_after() { # WORKLOAD SEQ
        ctl events --kind health.report --json -n 1000 |
                jq -c --arg w "workload.$1.cpu_percent" --argjson s "$2" '[.events[] | select(.key.seq > $s) | .body.metrics[$w]]'
}
quota() { # WORKLOAD -> cpu quota in usec per 100 ms, or -1 / max
        if [ -d /sys/fs/cgroup/cpu/"$PARENT" ]; then
                cat /sys/fs/cgroup/cpu/"$PARENT"/"$1"/cpu.cfs_quota_us
        else
                awk '{print $1}' /sys/fs/cgroup/"$PARENT"/"$1"/cpu.max
        fi
}
frozen() {
        if [ -d /sys/fs/cgroup/freezer/"$PARENT" ]; then
                [ "$(cat /sys/fs/cgroup/freezer/"$PARENT"/"$1"/freezer.state)" = FROZEN ]
        else
                grep -q '^frozen 1' /sys/fs/cgroup/"$PARENT"/"$1"/cgroup.events
        fi
}

cleanup_cgroups() { cleanup_cgroup_tree "$PARENT"; }
trap 'cleanup; cleanup_cgroups' EXIT

# ---- a fake board: one cpu zone, a battery and a solar array -------------------------
Z=$D/sys/class/thermal/thermal_zone0
mkdir -p "$Z" "$D/sys/class/power_supply/BAT0" "$D/sys/class/power_supply/solar" "$D/etc/workloads.d"
echo cpu-thermal >"$Z/type"
settemp() { echo "$1" >"$Z/temp.new" && mv "$Z/temp.new" "$Z/temp"; }
settemp 50000
battery() { # STATUS CAPACITY SOLAR_ONLINE
        echo Battery >"$D/sys/class/power_supply/BAT0/type"
        echo "$1" >"$D/sys/class/power_supply/BAT0/status"
        echo "$2" >"$D/sys/class/power_supply/BAT0/capacity"
        echo Mains >"$D/sys/class/power_supply/solar/type"
        echo "$3" >"$D/sys/class/power_supply/solar/online"
}
battery Charging 90 1

cat >"$D/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "hot-sat", "state_dir": "$D/state", "runtime_dir": "$D/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$D/sys"},
 "runtime": {"cgroup_parent": "$PARENT", "stop_workloads_on_exit": true, "sandbox_init": "$SANDBOX_INIT"},
 "health": {"poll_interval_ms": 200, "min_dwell_sec": 2, "report_interval_sec": 2,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90, "hysteresis_c": 3}],
            "power": {"warm_percent": 50, "hot_percent": 30, "critical_percent": 15, "hysteresis_percent": 5},
            "throttle": {"best_effort_percent": 50, "normal_percent": 70}}}
JSON
for w in spin:best-effort:'while :; do :; done' nap:normal:'while :; do sleep 0.2; done' life:critical:'while :; do sleep 0.2; done'; do
        IFS=: read -r name prio cmd <<<"$w"
        printf '{"name": "%s", "priority": "%s", "exec": ["/bin/sh", "-c", "%s"], "sandbox": {%s}}\n' \
                "$name" "$prio" "$cmd" "$BINDS" >"$D/etc/workloads.d/$name.json"
done

# A best-effort workload with a health probe: its probes must neither freeze the agent
# nor count as failures while the thermal policy keeps its class frozen.
printf '{"name": "probed", "priority": "best-effort", "exec": ["/bin/sh", "-c", "while :; do sleep 0.2; done"], "health_probe": {"exec": ["/bin/true"], "interval_sec": 1, "timeout_sec": 2, "failures": 2}, "sandbox": {%s}}\n' \
        "$BINDS" >"$D/etc/workloads.d/probed.json"

# A batch job that runs in sunlight only (#19 item 4): out of eclipse and below warm.
printf '{"name": "solar", "priority": "best-effort", "run_when": "sunlit", "exec": ["/bin/sh", "-c", "while :; do sleep 0.2; done"], "sandbox": {%s}}\n' \
        "$BINDS" >"$D/etc/workloads.d/solar.json"

"$AGENT" --config "$D/etc/agent.json" >"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
track_pid "$AGENT_PID"
wait_for 20 ctl ping >/dev/null 2>&1 || bail "agent did not answer"
check "five workloads run" wait_for 10 sh -c "[ \$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload list --json | jq '[.workloads[] | select(.state == \"running\")] | length') = 5 ]"
check "nominal at 50 C" level_is nominal
# held at load, then started by the first reading: "not started" comes before "started"
sun_order=$(grep -o "workload solar: \(not started: run_when sunlit: waiting (no power reading yet)\|started, pid\)" "$AGENT_LOG" | head -2 | tr '\n' '|')
[ "$sun_order" = "workload solar: not started: run_when sunlit: waiting (no power reading yet)|workload solar: started, pid|" ] &&
        pass "sunlit: held until the first power reading, then started" || fail "sunlit: first start" "$sun_order"

# ---- run_when sunlit: eclipse stops it even at a nominal level -----------------------
solar_is() { [ "$(wstate solar .state)" = "$1" ]; }
solar_waits() { solar_is stopped && wstate solar .last_error | grepq "run_when sunlit: waiting ($1)"; }
battery Discharging 90 0
check "sunlit: eclipse at 90% stops the sunlit workload" wait_for 10 solar_waits "in eclipse"
check "sunlit: the level stays nominal (90% is above warm_percent)" level_is nominal
sun=$(health | jq -c '.sunlit')
[ "$sun" = '{"may_run":false,"waiting":"in eclipse"}' ] && pass "sunlit: orbitctl health shows why sunlit work waits" ||
        fail "sunlit: health" "$sun"
[ "$(wstate spin .state)" = running ] && [ "$(wstate nap .state)" = running ] &&
        pass "sunlit: the other workloads keep running" || fail "sunlit: others" "$(ctl workload list)"
out=$(ctl workload restart solar 2>&1) && fail "sunlit: no start in eclipse" "$out" ||
        { grepq "run_when sunlit: waiting (in eclipse)" <<<"$out" && pass "sunlit: a start in eclipse is refused with the reason" ||
                fail "sunlit: start in eclipse" "$out"; }
battery Charging 90 1
check "sunlit: in sunlight it runs again" wait_for 10 solar_is running
sun=$(health | jq -c '.sunlit')
[ "$sun" = '{"may_run":true,"waiting":null}' ] && pass "sunlit: orbitctl health shows it may run" || fail "sunlit: health" "$sun"
sun_events=$(ctl events --json -n 1000 | jq -c '[.events[] | select(.kind == "runtime.sunlit") | .body.may_run]')
[ "$sun_events" = "[true,false,true]" ] && pass "sunlit: each change is an event" || fail "sunlit: events" "$sun_events"
[ "$(quota spin)" = -1 ] || [ "$(quota spin)" = max ] && pass "no throttle at nominal" || fail "nominal quota" "$(quota spin)"

# ---- a workload's cpu in the reports follows its cgroup's count ----------------------------
# Each report covers the polls since the one before it. The kernel counting spin's CPU
# between two moments (T_a, T_b) that lie between report R0 (seen before T_a) and a report
# seen only after T_b means a poll in the reports after R0 measured a growth: a cpu_percent
# above 0, however little CPU this machine gave the busy loop.
r0=$(last_report_seq)
a=$(cg_cpu_usec spin)
if ! { [ -n "$a" ] && wait_for 10 cg_cpu_above spin "$a"; }; then
        fail "the kernel counts the busy loop's CPU" "cgroup usage ${a:-unreadable} us, not growing"
elif r1=$(last_report_seq) && ! wait_for 10 reports_after_at_least "$r1" 1; then
        fail "a health report after the busy loop ran" "none after seq $r1"
else
        cpu=$(cpu_percent_after spin "$r0")
        note "spin's cgroup: $a -> $(cg_cpu_usec spin) us; its cpu_percent in the reports since: $cpu"
        jq -e 'all(.[]; . != null) and (map(.max) | max > 0)' <<<"$cpu" >/dev/null &&
                pass "reports carry each workload's cpu: the busy loop's cgroup counted CPU, its cpu_percent shows it" ||
                fail "workload cpu metric while its cgroup counts CPU" "$cpu"
fi

# ---- a group left frozen and empty: the next start thaws it ----------------------------
# A workload whose last process exits while its class freezes leaves its group frozen
# and empty; the next start's first process froze before exec and the agent waited on it
# for ever (found by the sunlit checks above). Made here on purpose, without a race.
check "frozen group: nap stops" ctl workload stop nap
check "frozen group: stopped" wait_for 20 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show nap --json | jq -r .state)\" = stopped ]"
if [ -f "/sys/fs/cgroup/freezer/$PARENT/nap/freezer.state" ]; then
        echo FROZEN >"/sys/fs/cgroup/freezer/$PARENT/nap/freezer.state"
        fz=$(cat "/sys/fs/cgroup/freezer/$PARENT/nap/freezer.state")
else
        echo 1 >"$(find /sys/fs/cgroup -path "*$PARENT/nap" -type d | head -1)/cgroup.freeze"
        fz=FROZEN
fi
[ "$fz" = FROZEN ] || bail "cannot freeze nap's empty group ($fz)"
check "frozen group: the start returns" ctl workload start nap
check "frozen group: nap runs" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show nap --json | jq -r .state)\" = running ]"
check "frozen group: the agent still answers" ctl ping

# ---- warm: best-effort throttled, its admission closed -------------------------------
settemp 75000
check "75 C: warm" wait_for 5 level_is warm
check "sunlit: stopped at warm, first" wait_for 10 solar_waits "level warm"
want=$((NCPU * 100 * 50 / 100 * 1000))
[ "$(quota spin)" = "$want" ] && pass "best-effort throttled to 50% of its cpu (quota $want us)" || fail "warm quota" "$(quota spin) != $want"
printf '{"name": "late", "priority": "best-effort", "exec": ["/bin/sleep", "60"], "sandbox": {%s}}\n' "$BINDS" >"$D/late.json"
out=$(ctl workload start "$D/late.json" 2>&1) && fail "admission closed when warm" "$out" || {
        grep -q "not admitted" <<<"$out" && pass "new best-effort work is refused while warm" || fail "admission" "$out"; }

# ---- hot: best-effort frozen, normal throttled ----------------------------------------
settemp 85000
check "85 C: hot" wait_for 5 level_is hot
check "best-effort frozen" wait_for 5 frozen spin
# Frozen (the kernel says so), spin's cgroup counts no CPU, and no poll from now on measures
# any. The first report after R1, the latest now, may hold polls from before the freeze; the
# one after it starts at that report's poll, which came after this moment: it measures none.
r1=$(last_report_seq)
k0=$(cg_cpu_usec spin)
if wait_for 10 reports_after_at_least "$r1" 2; then
        k1=$(cg_cpu_usec spin)
        n1=$(reports_after "$r1" | jq '.[0]')
        cpu=$(cpu_percent_after spin "$n1")
        note "spin frozen: its cgroup ${k0:-?} -> ${k1:-?} us; its cpu_percent in the reports: $cpu"
        [ -n "$k0" ] && [ "$k0" = "$k1" ] && jq -e 'length > 0 and all(.[]; . != null and .max == 0)' <<<"$cpu" >/dev/null &&
                pass "while its cgroup is frozen, the kernel counts no CPU and the reports' cpu_percent is 0" ||
                fail "cpu_percent of a frozen workload" "cgroup ${k0:-?} -> ${k1:-?} us, reports $cpu"
else
        fail "health reports while best-effort is frozen" "fewer than 2 after seq $r1"
fi
want=$((NCPU * 100 * 70 / 100 * 1000))
[ "$(quota nap)" = "$want" ] && pass "normal throttled to 70% (quota $want us)" || fail "hot normal quota" "$(quota nap) != $want"

# ---- critical: all but critical stopped; the gate fails --------------------------------
settemp 95000
check "95 C: critical" wait_for 5 level_is critical
check "normal and best-effort workloads stopped" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show nap --json | jq -r .state)\" = stopped ] && [ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show spin --json | jq -r .state)\" = stopped ]"
[ "$(wstate life .state)" = running ] && pass "the critical workload keeps running" || fail "critical runs"
[ "$(health | jq -r .gate.pass)" = false ] && health | jq -r .gate.why | grepq "critical" && pass "the health gate fails at critical" || fail "gate" "$(health | jq .gate)"

# ---- cooling: one step per dwell, in reverse ------------------------------------------
settemp 50000
# Cooling steps down once per dwell (2 s): a poll of the live level can miss a step that
# lasted 2 s on a loaded machine, so the steps are read from the health.level events.
# The time (usec) of the first level change FROM -> TO, or nothing.
level_change_usec() {
        ctl events --kind health.level --json -n 1000 |
                jq -er --arg f "$1" --arg t "$2" '[.events[] | select(.body.from == $f and .body.to == $t)][0].time_usec // empty'
}
level_changed() { [ -n "$(level_change_usec "$1" "$2")" ]; }
check "then hot" wait_for 20 level_changed critical hot
# The dwell, from the events' own times: the step down came no sooner than min_dwell_sec
# (2 s) after the step up to critical, however fast this machine polls.
dwell_ms=$(ctl events --json -n 1000 | jq -r '[.events[] | select(.kind == "health.level")] as $e
        | (($e | map(select(.body.from == "critical" and .body.to == "hot"))[0].time_usec)
         - ($e | map(select(.body.from == "hot" and .body.to == "critical"))[0].time_usec)) / 1000 | floor')
[ "${dwell_ms:-0}" -ge 2000 ] && pass "no instant recovery: critical was held ${dwell_ms} ms, the dwell is 2 s" || fail "dwell" "held ${dwell_ms:-?} ms"
check "stopped workloads start again at hot" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show nap --json | jq -r .state)\" = running ]"
# Started frozen: the runtime notes it in the workload's log, after the step up to critical
# (which stopped it) and before the step down to warm (which thaws it). (The step down to
# hot is stamped after the restarts it causes, so it cannot be the lower bound.)
frozen_at_start_usec() {
        ctl workload logs spin --json | jq -er '[.lines[] | select(.line | test("frozen at start"))][0].time // empty'
}
started_frozen() { [ -n "$(frozen_at_start_usec)" ]; }
check "then warm" wait_for 20 level_changed hot warm
if wait_for 10 started_frozen; then
        f=$(frozen_at_start_usec)
        c=$(level_change_usec hot critical)
        w=$(level_change_usec hot warm)
        [ "$f" -gt "$c" ] && [ "$f" -lt "$w" ] &&
                pass "a best-effort workload restarted at hot starts frozen ($(((w - f) / 1000)) ms before the step to warm)" ||
                fail "started frozen, but not while hot" "frozen at $f, critical at $c, warm at $w"
else
        fail "a best-effort workload restarted at hot starts frozen" "$(ctl workload logs spin)"
fi
check "best-effort thawed at warm" wait_for 5 sh -c "! { [ -d /sys/fs/cgroup/freezer/$PARENT ] && [ \"\$(cat /sys/fs/cgroup/freezer/$PARENT/spin/freezer.state)\" = FROZEN ]; }"
probe_runs() { wstate probed .probe.runs; }
probe_runs_past() { [ "$(probe_runs)" -gt "$1" ]; }
runs=$(probe_runs)
check "a probed best-effort workload is probed again once thawed (the agent never waited on a frozen probe)" \
        wait_for 10 probe_runs_past "$runs"
[ "$(wstate probed .probe.failed)" = 0 ] && pass "no probe failed while its class was frozen" \
        || fail "probes while frozen" "$(ctl workload show probed --json | jq -c .probe)"
check "then nominal" wait_for 5 level_is nominal
check "sunlit: runs again at nominal" wait_for 10 solar_is running
[ "$(quota spin)" = -1 ] || [ "$(quota spin)" = max ] && pass "throttle lifted at nominal" || fail "nominal quota" "$(quota spin)"
[ "$(quota nap)" = -1 ] || [ "$(quota nap)" = max ] && pass "normal unthrottled" || fail "normal quota" "$(quota nap)"
seq=$(ctl events --json -n 1000 | jq -r '[.events[] | select(.kind == "health.level") | "\(.body.from)>\(.body.to)"] | join(" ")')
[ "$seq" = "nominal>warm warm>hot hot>critical critical>hot hot>warm warm>nominal" ] \
        && pass "every level change is an event, in order: $seq" || fail "level events" "$seq"

# ---- eclipse sheds load the same way --------------------------------------------------
battery Discharging 25 0
check "eclipse at 25% battery: hot" wait_for 5 level_is hot
health | jq -r .driver | grepq "battery at 25% in eclipse" && pass "the driver says eclipse" || fail "driver" "$(health | jq -r .driver)"
battery Charging 25 1
check "sunlight: back to nominal step by step" wait_for 10 level_is nominal

# ---- a failing sensor is reported, never cools the board ------------------------------
settemp 85000
check "hot again" wait_for 5 level_is hot
echo garbage >"$Z/temp"
garbage_seen() { health | jq -r '.readings.problems[]' 2>/dev/null | grepq thermal_zone0; }
check "garbage from the sensor is reported as a problem" wait_for 10 garbage_seen
[ "$(health | jq -r .level)" = hot ] && pass "and keeps the level (read, not trusted)" || fail "garbage level" "$(health | jq -r .level)"
health | jq -e '.zones[0].valid == false' >/dev/null && pass "the zone shows as invalid" || fail "invalid zone"
settemp 40000

# ---- reports and orbitctl -------------------------------------------------------------
check "periodic reports summarise the metrics" wait_for 5 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" events --json -n 1000 | jq -e '[.events[] | select(.kind == \"health.report\")][0].body.metrics[\"zone.thermal_zone0.temp_c\"] | .min and .max and .mean and .last' >/dev/null"
ctl events --json -n 1000 | jq -e '[.events[] | select(.kind == "health.report")] | map(.body.metrics["workload.life.memory_mib"] and .body.metrics["workload.life.pids"]) | any' >/dev/null \
        && pass "reports carry each workload's cgroup memory and tasks" || fail "workload metrics"
ctl events --json -n 1000 | jq -e '[.events[] | select(.kind == "workload.exit")] | length > 0' >/dev/null && pass "workload exits are events" || fail "workload events"
out=$(ctl health)
grep -q "^Level:" <<<"$out" && grep -q "thermal_zone0" <<<"$out" && grep -q "^Recent events:" <<<"$out" \
        && pass "orbitctl health shows level, zones and events" || fail "orbitctl health" "$out"
out=$(ctl health watch --count 2)
[ "$(grep -c 'Level:' <<<"$out")" = 2 ] && pass "orbitctl health watch refreshes" || fail "watch" "$out"

kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20
if has_sanitizer_report "$AGENT_LOG"; then fail "no sanitizer reports"; else pass "no sanitizer reports"; fi
finish
