# Integration test: the agent supervising real sandboxed workloads on real cgroups (root).
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
[ -d /sys/fs/cgroup/memory ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || skip_all "no cgroup hierarchy"

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
PARENT="orbit-it-$$"
D=$TESTDIR
mkdir -p "$D/etc/workloads.d" "$D/specs"
AGENT_PID=""
AGENT_LOG=$D/agent.log
FAIL_CONTEXT_LOG=$AGENT_LOG
BINDS='"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}]'

ctl() { "$CTL_BIN" --socket "$D/run/control.sock" "$@"; }
field() { ctl workload show "$1" --json | jq -r "$2"; }

write_config() { # stop_workloads_on_exit [allow_privileged]
        cat >"$D/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "rt-test", "state_dir": "$D/state", "runtime_dir": "$D/run",
 "log_target": "stderr", "log_level": "info",
 "runtime": {"cgroup_parent": "$PARENT", "stop_workloads_on_exit": $1, "sandbox_init": "$SANDBOX_INIT"},
 "sandbox": {"allow_privileged": ${2:-true}}}
JSON
}

# The agent runs with supplementary groups (adm, dialout) that no workload or probe may keep.
start_agent() {
        setpriv --groups 4,20 "$AGENT" --config "$D/etc/agent.json" >>"$AGENT_LOG" 2>&1 &
        AGENT_PID=$!
        track_pid "$AGENT_PID"
        wait_for "$ORBIT_TEST_TIMEOUT" ctl ping >/dev/null 2>&1 || bail "the agent did not answer"
}

stop_agent() {
        kill -TERM "$AGENT_PID" 2>/dev/null
        wait_exit "$AGENT_PID" "$ORBIT_TEST_TIMEOUT" || { kill -KILL "$AGENT_PID"; fail "agent stops on SIGTERM"; }
}

cleanup_cgroups() { cleanup_cgroup_tree "$PARENT"; }
trap 'cleanup_cgroups; cleanup' EXIT

spec() { # FILE JSON-BODY
        printf '%s\n' "$2" >"$1"
}

state_is() { [ "$(field "$1" .state 2>/dev/null)" = "$2" ]; }

# ---- start with a spec from workloads.d ----------------------------------------------
spec "$D/etc/workloads.d/ticker.json" '{"name": "ticker", "priority": "best-effort",
 "exec": ["/bin/sh", "-c", "i=0; trap \"echo got TERM; exit 0\" TERM; while true; do echo tick $i; i=$((i+1)); sleep 0.1; done"],
 "resources": {"memory_max": "64M", "pids_max": 16}, "sandbox": {'"$BINDS"'}}'
spec "$D/etc/workloads.d/broken.json" '{"name": "broken", "exec": ["/bin/true"], "priorty": "normal"}'
write_config false
start_agent

check "a workloads.d spec starts with the agent" wait_for 10 state_is ticker running
grep -q "broken.json:1:43: priorty: unknown key (did you mean \"priority\"?)" "$AGENT_LOG" \
        && pass "a bad spec in workloads.d is reported with file:line:column and the key" \
        || fail "bad spec reported" "$(grep -i broken "$AGENT_LOG")"
TICKER_PID=$(field ticker .pid)
[ "$TICKER_PID" -gt 1 ] && kill -0 "$TICKER_PID" && pass "the workload runs (pid $TICKER_PID)" || fail "ticker pid"
check "output is captured line by line with the workload's name" wait_for 10 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs ticker | grep -q 'stdout tick 3'"

# ---- crash loop ----------------------------------------------------------------------
# A run that lasts longer than max_delay_ms counts as one that held (the backoff starts
# again): 60 s, so that a slow machine (a TCG guest took 1.7 s for one run of this
# crasher) cannot reset it; the three delays stay 0.1, 0.2 and 0.4 s.
spec "$D/specs/crasher.json" '{"name": "crasher", "exec": ["/bin/sh", "-c", "echo crashing; exit 3"],
 "restart": {"policy": "on-failure", "initial_delay_ms": 100, "max_delay_ms": 60000, "max_restarts": 3, "window_sec": 60},
 "sandbox": {'"$BINDS"'}}'
out=$(ctl workload start "$D/specs/crasher.json" 2>&1) && pass "orbitctl workload start SPEC.json" || fail "start crasher" "$out"
check "a crash loop stops at the cap" wait_for 15 state_is crasher failed
[ "$(field crasher .restarts)" = 3 ] && pass "exactly 3 restarts before giving up" || fail "restarts" "$(field crasher .restarts)"
field crasher .last_error | grepq "crash loop: 3 restarts within 60 s" && pass "the crash loop is reported" || fail "crash loop message"
grep -q "workload crasher: restarting in 0.1 s" "$AGENT_LOG" && grep -q "workload crasher: restarting in 0.2 s" "$AGENT_LOG" \
        && grep -q "workload crasher: restarting in 0.4 s" "$AGENT_LOG" \
        && pass "backoff doubles: 0.1 s, 0.2 s, 0.4 s" || fail "backoff" "$(grep restarting "$AGENT_LOG")"
kill -0 "$TICKER_PID" && pass "the other workload kept running" || fail "ticker survived"

# ---- user namespaces: each workload its own host id slice ----------------------------
spec "$D/specs/idb.json" '{"name": "idb", "exec": ["/bin/sh", "-c", "cat /proc/self/uid_map; echo nofile $(ulimit -n); echo umask $(umask); exec sleep 600"],
 "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/idb.json" >/dev/null
check "a default workload starts" wait_for 10 state_is idb running
A_FIRST=$(field ticker .host_ids.first); B_FIRST=$(field idb .host_ids.first)
host_uid() { awk '/^Uid:/ {print $2}' /proc/"$1"/status; }
A_UID=$(host_uid "$(field ticker .pid)"); B_UID=$(host_uid "$(field idb .pid)")
[ "$A_UID" = "$A_FIRST" ] && [ "$B_UID" = "$B_FIRST" ] && pass "root inside runs as the workload's first host id (ps: $A_UID, $B_UID)" || fail "host uids" "$A_UID/$A_FIRST $B_UID/$B_FIRST"
[ "$A_UID" -ge 65536 ] && [ "$B_UID" -ge 65536 ] && pass "...never a host system id" || fail "low uid" "$A_UID $B_UID"
diff=$(( A_FIRST > B_FIRST ? A_FIRST - B_FIRST : B_FIRST - A_FIRST ))
[ "$diff" -ge 65536 ] && pass "two workloads get disjoint host id slices ($A_FIRST, $B_FIRST)" || fail "disjoint" "$A_FIRST $B_FIRST"
check "inside, /proc/self/uid_map shows its own slice" wait_for 10 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs idb | grep -qE 'stdout +0 +$B_FIRST +65536\$'"
grep -q "\"idb\":$B_FIRST" "$D/state/id-ranges" && pass "the allocation is kept in the state dir" || fail "id-ranges file" "$(cat "$D/state/id-ranges")"

# ---- default limits --------------------------------------------------------------------
cg_file() { cat /sys/fs/cgroup/"$1"/"$PARENT"/"$2" 2>/dev/null || cat /sys/fs/cgroup/"$PARENT"/"$2"; }
[ "$(cg_file pids idb/pids.max)" = 256 ] && pass "default pids.max 256" || fail "pids.max" "$(cg_file pids idb/pids.max)"
mem=$(cat /sys/fs/cgroup/memory/"$PARENT"/idb/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/"$PARENT"/idb/memory.max)
[ "$mem" = 268435456 ] && pass "default memory limit 256 MiB" || fail "memory default" "$mem"
ctl workload logs idb | grepq "stdout nofile 1024" && pass "default RLIMIT_NOFILE 1024" || fail "nofile" "$(ctl workload logs idb)"
ctl workload logs idb | grepq "stdout umask 0022" && pass "default umask 022" || fail "umask" "$(ctl workload logs idb)"
[ "$(cg_file pids ticker/pids.max)" = 16 ] && pass "a spec's own pids_max wins over the default" || fail "spec pids"
ctl workload stop idb >/dev/null

# ---- binds that would expose the agent or the host are refused ------------------------
spec "$D/specs/rootbind.json" '{"name": "rootbind", "exec": ["/bin/true"],
 "sandbox": {"ro_binds": ["/usr", "/bin", "/lib",
   {"source": "/", "target": "/host"}]}}'
out=$(ctl workload start "$D/specs/rootbind.json" 2>&1) && fail "a bind of / is refused" "$out" || {
        grep -qF "$D/specs/rootbind.json:3:4: sandbox.ro_binds[3]: bind of / covers" <<<"$out" && pass "a bind of / is refused with file:line:column: $(head -c 200 <<<"$out")" || fail "root bind" "$out"; }
spec "$D/specs/statebind.json" '{"name": "statebind", "exec": ["/bin/true"],
 "sandbox": {"ro_binds": ["/usr", "/bin", "/lib"], "rw_binds": [{"source": "'"$D"'/state/workloads", "target": "/s"}]}}'
out=$(ctl workload start "$D/specs/statebind.json" 2>&1) && fail "a bind in the state dir is refused" "$out" || {
        grep -qF "statebind.json:2:65: sandbox.rw_binds[0]: bind of $D/state/workloads lies inside $D/state (the agent's state dir)" <<<"$out" && pass "a bind inside state_dir is refused with the line" || fail "state bind" "$out"; }
[ -z "$(field rootbind .name 2>/dev/null)" ] && pass "nothing is kept of a refused spec" || fail "refused spec kept"
# A symlink on a bind's way is checked again at every start (a workload may plant one).
mkdir -p "$D/wdata/harmless"
ln -s "$D/wdata/harmless" "$D/wdata/link"
spec "$D/specs/linkbind.json" '{"name": "linkbind", "exec": ["/bin/true"], "restart": {"policy": "no"},
 "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true},
   {"source": "'"$D"'/wdata/link", "target": "/data"}]}}'
out=$(ctl workload start "$D/specs/linkbind.json" 2>&1) && pass "a bind through a harmless symlink starts" || fail "linkbind start" "$out"
wait_for 10 state_is linkbind stopped
ln -sfn "$D/state" "$D/wdata/link"
out=$(ctl workload start linkbind 2>&1) && fail "a bind whose symlink now leads to the state dir is refused" "$out" || {
        grep -qF "bind of $D/wdata/link ($D/state) covers $D/state (the agent's state dir)" <<<"$out" && pass "a symlink switched to the state dir is caught at the next start" || fail "link switched" "$out"; }

# ---- privileged: host ids only when the spec says so and the node allows it ------------
spec "$D/specs/hostroot.json" '{"name": "hostroot", "privileged": true, "restart": {"policy": "no"},
 "exec": ["/bin/sh", "-c", "cat /proc/self/uid_map; exec sleep 600"], "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/hostroot.json" >/dev/null
check "a privileged spec starts where the policy allows it" wait_for 10 state_is hostroot running
[ "$(host_uid "$(field hostroot .pid)")" = 0 ] && pass "...as host root, no user namespace" || fail "privileged uid"
ctl workload stop hostroot >/dev/null
wait_for 10 state_is hostroot stopped
write_config false false
kill -HUP "$AGENT_PID"
wait_for 10 grep -q "configuration reloaded" "$AGENT_LOG"
out=$(ctl workload start hostroot 2>&1) && fail "privileged refused by the policy" "$out" || {
        grep -q "privileged specs are refused by this node's policy (sandbox.allow_privileged)" <<<"$out" && pass "with sandbox.allow_privileged false a privileged workload is refused" || fail "privileged policy" "$out"; }
out=$(ctl workload start "$D/specs/hostroot.json" 2>&1) && fail "privileged spec refused" "$out" || {
        grep -q "hostroot is privileged; this node refuses privileged specs" <<<"$out" && pass "...and so is a new privileged spec" || fail "privileged spec policy" "$out"; }
write_config false true
kill -HUP "$AGENT_PID"

# ---- memory max: OOM kill reported ---------------------------------------------------
spec "$D/specs/hog.json" '{"name": "hog", "exec": ["/usr/bin/python3", "-c", "b = bytearray(128 << 20); print(\"allocated\")"],
 "restart": {"policy": "no"}, "resources": {"memory_max": "32M"}, "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/hog.json" >/dev/null 2>&1
check "a workload over memory_max ends" wait_for 15 state_is hog stopped
field hog .last_exit | grepq "killed by the OOM killer" && pass "...and is reported as OOM-killed" || fail "oom report" "$(field hog .last_exit)"
[ "$(field hog .usage.oom_kills)" -ge 1 ] && pass "the cgroup counted the OOM kill" || fail "oom counter"

# ---- pids max ------------------------------------------------------------------------
spec "$D/specs/forker.json" '{"name": "forker", "exec": ["/bin/sh", "-c", "for i in $(seq 20); do sleep 5 & done 2>&1; echo spawned; wait"],
 "restart": {"policy": "no"}, "resources": {"pids_max": 6}, "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/forker.json" >/dev/null 2>&1
check "forking past pids_max fails inside the workload" wait_for 10 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs forker | grep -qi 'resource temporarily unavailable\|cannot fork'"
[ "$(field forker .usage.pids)" -le 6 ] && pass "tasks stay within pids_max ($(field forker .usage.pids))" || fail "pids"
ctl workload stop forker >/dev/null
ctl workload list --json | jq -e '.workloads[] | select(.name == "hog") | .state == "stopped"' >/dev/null

# ---- cpu max: the limit reaches the kernel (the share it yields is measured in bench/) --
spec "$D/specs/spin.json" '{"name": "spin", "priority": "best-effort", "exec": ["/bin/sh", "-c", "while :; do :; done"],
 "resources": {"cpu_max_percent": 20}, "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/spin.json" >/dev/null
cpu_limit() { # quota and period of a workload's cgroup, v1 or v2
        if [ -f /sys/fs/cgroup/cpu/"$PARENT"/"$1"/cpu.cfs_quota_us ]; then
                echo "$(cat /sys/fs/cgroup/cpu/"$PARENT"/"$1"/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/"$PARENT"/"$1"/cpu.cfs_period_us)"
        else
                cat /sys/fs/cgroup/"$PARENT"/"$1"/cpu.max 2>/dev/null
        fi
}
check "the busy loop runs" wait_for 10 state_is spin running
read -r q per <<<"$(cpu_limit spin)"
[ -n "${per:-}" ] && [ "$q" != max ] && [ $((q * 100 / per)) = 20 ] && pass "cpu_max_percent 20 sets the cgroup's quota to 20% of a core ($q/$per)" \
        || fail "cpu max" "quota $q period ${per:-?}"
used_more_than() { [ "$(field "$1" .usage.cpu_usec)" -gt "$2" ]; }
check "the throttled loop still makes progress" wait_for 10 used_more_than spin 10000

# ---- thermal levers: throttle, freeze, thaw, stop a class, admission -----------------
raw() { control_raw "$D/run/control.sock" "$1"; }
raw '{"method": "runtime.class", "params": {"priority": "best-effort", "cpu_percent": 50}}' | jq -e '.ok' >/dev/null \
        && pass "throttle the best-effort class to 50%" || fail "throttle"
quota=$(cat /sys/fs/cgroup/cpu/"$PARENT"/spin/cpu.cfs_quota_us 2>/dev/null || awk '{print $1}' /sys/fs/cgroup/"$PARENT"/spin/cpu.max)
[ "$quota" = 10000 ] && pass "the throttled workload's cpu quota halved (20% -> 10%)" || fail "throttle quota" "$quota"
raw '{"method": "runtime.class", "params": {"priority": "best-effort", "frozen": true}}' | jq -e '.ok' >/dev/null
[ "$(field spin .frozen)" = true ] && pass "freeze the best-effort class" || fail "freeze"
kernel_frozen() { # the kernel's own word that the group is frozen
        if [ -f /sys/fs/cgroup/freezer/"$PARENT"/"$1"/freezer.state ]; then
                [ "$(cat /sys/fs/cgroup/freezer/"$PARENT"/"$1"/freezer.state)" = FROZEN ]
        else
                grep -q '^frozen 1' /sys/fs/cgroup/"$PARENT"/"$1"/cgroup.events
        fi
}
check "a frozen workload is frozen by the kernel" wait_for 10 kernel_frozen spin
raw '{"method": "runtime.class", "params": {"priority": "best-effort", "frozen": false, "cpu_percent": 0}}' >/dev/null
kernel_thawed() { ! kernel_frozen "$1"; }
check "thawed, the kernel says so" wait_for 10 kernel_thawed spin
c0=$(field spin .usage.cpu_usec)
check "thawed, it runs again" wait_for 10 used_more_than spin $((c0 + 50000))

raw '{"method": "runtime.class", "params": {"priority": "best-effort", "admit": false}}' >/dev/null
spec "$D/specs/late.json" '{"name": "late", "priority": "best-effort", "exec": ["/bin/sleep", "60"], "sandbox": {'"$BINDS"'}}'
out=$(ctl workload start "$D/specs/late.json" 2>&1) && fail "admission refused" "$out" || {
        grep -q "not admitted: best-effort workloads are not admitted now (the board is shedding load)" <<<"$out" \
                && pass "a new best-effort workload is refused with the reason" || fail "admission reason" "$out"; }
raw '{"method": "runtime.class", "params": {"priority": "best-effort", "admit": true}}' >/dev/null

raw '{"method": "runtime.class", "params": {"priority": "best-effort", "stopped": true}}' >/dev/null
check "stopping the best-effort class stops its workloads" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show spin --json | jq -r .state)\" = stopped ] && [ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show ticker --json | jq -r .state)\" = stopped ]"
ctl workload logs ticker | grepq "got TERM" && pass "they got SIGTERM first (the ticker's trap ran)" || fail "sigterm first"
raw '{"method": "runtime.class", "params": {"priority": "best-effort", "stopped": false}}' >/dev/null
check "lifting the stop restarts them" wait_for 10 state_is ticker running

# ---- health probes run inside the sandbox; failing ones restart the workload ---------
spec "$D/specs/probed.json" '{"name": "probed", "exec": ["/bin/sh", "-c", "touch /tmp/healthy; until [ \"$(cat /tmp/passes 2>/dev/null | wc -l)\" -ge 2 ]; do sleep 0.1; done; rm /tmp/healthy; sleep 60"],
 "health_probe": {"exec": ["/bin/sh", "-c", "test -f /tmp/healthy && test \"$(cat /proc/sys/kernel/hostname)\" = probed && echo pass >> /tmp/passes"],
                  "interval_sec": 1, "timeout_sec": 2, "failures": 2},
 "restart": {"policy": "on-failure", "initial_delay_ms": 100, "max_delay_ms": 1000},
 "sandbox": {'"$BINDS"', "tmpfs": ["/tmp"]}}'
ctl workload start "$D/specs/probed.json" >/dev/null
check "a passing probe (run inside the workload's namespaces) marks it healthy" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show probed --json | jq -r .health)\" = healthy ]"
check "a probe failing twice restarts the workload" wait_for 15 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show probed --json | jq -r .restarts)\" -ge 1 ]"
field probed .last_exit | grepq "stopped after failing its health probe" && pass "the exit says why" || fail "probe exit" "$(field probed .last_exit)"
grep -q "workload probed: health probe failed (2 of 2): probe exited with code 1" "$AGENT_LOG" && pass "each probe failure is logged" || fail "probe log"
ctl workload stop probed >/dev/null

# ---- the probe runs under exactly the workload's confinement -------------------------
# Both write the same report (ids, groups, capabilities, no_new_privs, seccomp, limits,
# cgroup, environment, descriptors, umask) to a shared bind; the two must be identical.
# In a user namespace, where the agent's supplementary groups could otherwise follow.
mkdir -p "$D/confined"; chmod 777 "$D/confined"; chmod 711 "$D"
python3 - "$D/specs/confined.json" "$D/confined" <<'PY'
import json, sys
report = ('{ grep -E "^(Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):" '
          '/proc/self/status; grep "open files" /proc/self/limits; cat /proc/self/cgroup; env | sort; '
          'ls /proc/self/fd | tr "\\n" " "; echo; umask; }')
spec = {"name": "confined", "env": {"ROLE": "tenant"},
        "exec": ["/bin/sh", "-c", report + " > /data/w.tmp && mv /data/w.tmp /data/workload.txt; sleep 60"],
        "health_probe": {"exec": ["/bin/sh", "-c", report + " > /data/p.tmp && mv /data/p.tmp /data/probe.txt"],
                         "interval_sec": 1, "timeout_sec": 5, "failures": 3},
        "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": True}],
                    "rw_binds": [{"source": sys.argv[2], "target": "/data"}],
                    "namespaces": ["user", "pid", "mount", "ipc", "uts", "net", "cgroup"],
                    "seccomp": "default", "rlimits": {"nofile": 200}}}
json.dump(spec, open(sys.argv[1], "w"))
PY
ctl workload start "$D/specs/confined.json" >/dev/null
if wait_for 15 test -s "$D/confined/probe.txt" && wait_for 5 test -s "$D/confined/workload.txt"; then
        if diff -u "$D/confined/workload.txt" "$D/confined/probe.txt" >"$D/confined/diff"; then
                pass "the probe's ids, groups, caps, no_new_privs, seccomp, limits, cgroup, env, fds and umask are the workload's"
        else
                fail "probe confinement = workload confinement" "$(tr '\n' ' ' <"$D/confined/diff")"
        fi
        grep -Eq '^Seccomp:[[:space:]]+2$' "$D/confined/probe.txt" && pass "the probe runs under the seccomp filter" || fail "probe seccomp" "$(cat "$D/confined/probe.txt")"
        grep -Eq '^NoNewPrivs:[[:space:]]+1$' "$D/confined/probe.txt" && pass "...and no_new_privs" || fail "probe nnp"
        grep -Eq '^Groups:[[:space:]]*$' "$D/confined/probe.txt" && pass "...without the agent's supplementary groups" || fail "probe groups" "$(grep Groups "$D/confined/probe.txt")"
        grep -Eq '^CapEff:[[:space:]]+0+$' "$D/confined/probe.txt" && pass "...and without capabilities" || fail "probe caps"
        grep -q '^ROLE=tenant$' "$D/confined/probe.txt" && ! grep -q '^NOTIFY_SOCKET=\|^ORBIT_\|^INVOCATION_ID=' "$D/confined/probe.txt" \
                && pass "...with the spec's environment only" || fail "probe env" "$(cat "$D/confined/probe.txt")"
        grep -Eq '^0 1 2 3 ?$' "$D/confined/probe.txt" && pass "...and no descriptor but 0-2" || fail "probe fds" "$(cat "$D/confined/probe.txt")"
else
        fail "the confined workload and its probe wrote their reports" "$(ls -la "$D/confined")"
fi
ctl workload stop confined >/dev/null

# ---- the device cgroup: host device nodes stay closed even where /dev is the host's ---
# No mount (nor pid) namespace, so the workload (uid 0, no capabilities) sees the host's
# /dev: the owner bits would let it open a root-owned block device, the device cgroup
# must not. (Where such a spec needs "privileged", it belongs here all the same.)
HOSTDEV=""
for d in /dev/vda /dev/sda /dev/nvme0n1 /dev/mmcblk0 /dev/loop0 /dev/loop-control; do
        [ -e "$d" ] && ( : <"$d" ) 2>/dev/null && { HOSTDEV=$d; break; }
done
if [ -n "$HOSTDEV" ]; then
        spec "$D/specs/devices.json" '{"name": "devices", "exec": ["/bin/sh", "-c", "( : < '"$HOSTDEV"' ) 2>/dev/null && echo OPENED-host-device || echo denied-host-device; echo x > /dev/null && echo null-ok; sleep 60"],
 "privileged": true, "sandbox": {"namespaces": ["ipc", "uts", "net", "cgroup"]}}'
        ctl workload start "$D/specs/devices.json" >/dev/null
        if wait_for 10 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs devices 2>/dev/null | grep -q 'null-ok'"; then
                logs=$(ctl workload logs devices)
                grep -q 'denied-host-device' <<<"$logs" && pass "the device cgroup denies $HOSTDEV to the workload (host root opens it)" \
                        || fail "device cgroup" "$logs"
                pass "...while /dev/null stays usable"
        else
                fail "the devices workload ran" "$(ctl workload logs devices 2>&1 | tail -5)"
        fi
        ctl workload stop devices >/dev/null
else
        note "no host block device to try: device cgroup check skipped"
fi

# ---- stop: SIGTERM, then SIGKILL after the grace period ------------------------------
spec "$D/specs/stubborn.json" '{"name": "stubborn", "exec": ["/bin/sh", "-c", "trap \"\" TERM; echo ignoring TERM; while :; do sleep 1; done"],
 "stop_timeout_sec": 1, "sandbox": {'"$BINDS"'}}'
ctl workload start "$D/specs/stubborn.json" >/dev/null
wait_for 10 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs stubborn | grep -q ignoring"
ctl workload stop stubborn >/dev/null
check "a workload ignoring SIGTERM is killed after stop_timeout_sec" wait_for 10 state_is stubborn stopped
field stubborn .last_exit | grepq "signal 9" && pass "...with SIGKILL" || fail "sigkill" "$(field stubborn .last_exit)"

# ---- clear errors, others unaffected -------------------------------------------------
spec "$D/specs/typo.json" '{"name": "typo",
  "exec": ["/bin/true"],
  "resources": {"memory_max": "lots"}}'
out=$(ctl workload start "$D/specs/typo.json" 2>&1) && fail "bad spec refused" || {
        grep -qF "$D/specs/typo.json:3:31: resources.memory_max:" <<<"$out" && pass "orbitctl shows a bad spec's file:line:column and key" || fail "spec error" "$out"; }
spec "$D/specs/nobin.json" '{"name": "nobin", "exec": ["/opt/none/serve"], "sandbox": {'"$BINDS"'}}'
out=$(ctl workload start "$D/specs/nobin.json" 2>&1) && fail "missing binary refused" || {
        grep -qF "exec /opt/none/serve" <<<"$out" && pass "a missing binary is a clear error" || fail "nobin" "$out"; }
spec "$D/specs/nouser.json" '{"name": "nouser", "user": "no-such-orbit-user", "exec": ["/bin/true"], "sandbox": {'"$BINDS"'}}'
out=$(ctl workload start "$D/specs/nouser.json" 2>&1) && fail "unknown user refused" || {
        grep -qF 'user "no-such-orbit-user" does not exist' <<<"$out" && pass "an unknown user is a clear error" || fail "nouser" "$out"; }
spec "$D/specs/toomuch.json" '{"name": "toomuch", "exec": ["/bin/true"], "resources": {"cpu_max_percent": 100000}, "sandbox": {'"$BINDS"'}}'
out=$(ctl workload start "$D/specs/toomuch.json" 2>&1) && fail "a limit beyond the machine is refused" "$out" || {
        grep -q "resources.cpu_max_percent 100000 is more than this node has" <<<"$out" && pass "a limit the node cannot give is a clear error: $(tail -c 160 <<<"$out")" || fail "limit error" "$out"; }
state_is ticker running && pass "the other workloads keep running through all of that" || fail "others running"
[ -s "$D/state/logs/ticker.log" ] && grep -q "stdout: tick" "$D/state/logs/ticker.log" \
        && pass "without a journal, output also goes to a per-workload log file" || fail "log file" "$(ls -la "$D/state/logs" 2>&1)"

# ---- the agent restarts: workloads are adopted, not orphaned or started twice --------
TICKER_PID=$(field ticker .pid)
TICKER_IDS=$(field ticker .host_ids.first)
stop_agent
kill -0 "$TICKER_PID" && pass "workloads outlive an agent stop" || fail "outlive"
start_agent
[ "$(field ticker .pid)" = "$TICKER_PID" ] && pass "the new agent adopts the same process (pid $TICKER_PID)" || fail "adopt" "$(field ticker .pid) != $TICKER_PID"
[ "$(field ticker .adopted)" = true ] && pass "it says it adopted it" || fail "adopted flag"
[ "$(field ticker .host_ids.first)" = "$TICKER_IDS" ] && pass "it keeps its host id slice across the agent restart" || fail "ids kept" "$(field ticker .host_ids.first) != $TICKER_IDS"
inits=$(for p in $(cat /sys/fs/cgroup/pids/"$PARENT"/ticker/cgroup.procs 2>/dev/null || cat /sys/fs/cgroup/"$PARENT"/ticker/cgroup.procs); do cat /proc/"$p"/comm; done | grep -c orbit-init)
[ "$inits" = 1 ] && pass "exactly one sandbox for it: not started twice" || fail "double start" "$inits inits"
[ "$(field crasher .state)" = stopped ] || [ "$(field crasher .state)" = failed ] || [ "$(field crasher .state)" = running ]
n0=$(ctl workload logs ticker -n 1000 | grep -c tick)
more_ticks() { [ "$(ctl workload logs ticker -n 1000 | grep -c tick)" -gt "$1" ]; }
check "output is captured again after adoption" wait_for 10 more_ticks "$n0"
ctl workload stop ticker >/dev/null
check "an adopted workload stops" wait_for 10 state_is ticker stopped
field ticker .last_exit | grepq "exited with code 0" && pass "...and its exit status still arrives (through the init)" || fail "adopted exit" "$(field ticker .last_exit)"

# ---- stopped stays stopped across a restart; stop_workloads_on_exit ------------------
stop_agent
write_config true
start_agent
[ "$(field ticker .state)" = stopped ] && pass "a stopped workload stays stopped across an agent restart" || fail "stays stopped"
SPIN_PID=$(field spin .pid)
stop_agent
gone_or_zombie() { [ ! -e /proc/"$1" ] || grepq '^State:[[:space:]]*Z' /proc/"$1"/status; }
check "stop_workloads_on_exit ends the workloads with the agent" wait_for 5 gone_or_zombie "$SPIN_PID"
[ ! -d /sys/fs/cgroup/memory/"$PARENT"/spin ] && [ ! -d /sys/fs/cgroup/"$PARENT"/spin ] && pass "and removes their cgroups" || fail "cgroups removed"

if has_sanitizer_report "$AGENT_LOG"; then fail "no sanitizer reports" "$(grep -A5 Sanitizer "$AGENT_LOG" | head -20)"; else pass "no sanitizer reports in the agent log"; fi
finish
