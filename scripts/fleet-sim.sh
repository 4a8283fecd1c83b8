#!/usr/bin/env bash
# Fleet simulation: the controller and N simulated nodes on loopback (each a real
# orbit-agent with file slots, the file bootloader and a reboot hook), a staged rollout
# of a signed bundle over them, its progress stage by stage, a halt when the nodes made
# to fail their health gate cross the threshold, and a clean stop.
#
#   scripts/fleet-sim.sh [N] [--fail K] [--max-failures M] [--stages LIST] [--keep]
#
# N nodes (default 50); K of them (default 3) are made to fail: their thermal zone goes
# critical when they boot the new slot, so the health gate fails and they roll back. They
# are taken from stage 3, so the rollout passes stages 1 and 2 and halts in stage 3 with
# the default threshold (M = K - 1 failures tolerated). --fail 0: the rollout completes.
# Every fifth node has a contact plan (15 s windows every 20 s) and is unreachable
# (stopped) between its windows. Then (as root, with cgroups; --no-deploy: not) a
# deployment puts a new workload from a signed app bundle on every node through their
# desired states, a canary stage first (docs/deployments.md). --keep keeps the directory
# (logs, states) afterwards. Exit status 0 when the rollout ended as expected (halted in
# the failing nodes' stage with no later node told, or completed with --fail 0) and the
# deployment completed.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

n=50 fail=3 keep=0 max_failures="" stages="1,10,50,100" deploy=1
while [ $# -gt 0 ]; do
        case $1 in
        --no-deploy) deploy=0 ;;
        --fail) fail=$2; shift ;;
        --max-failures) max_failures=$2; shift ;;
        --stages) stages=$2; shift ;;
        --keep) keep=1 ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        [0-9]*) n=$1 ;;
        *) echo "fleet-sim: unknown argument $1" >&2; exit 2 ;;
        esac
        shift
done
[ "$n" -ge 1 ] && [ "$n" -le 500 ] || { echo "fleet-sim: N must be 1-500" >&2; exit 2; }
[ -n "$max_failures" ] || max_failures=$((fail > 0 ? fail - 1 : 0))

# ---- build (only what is missing or stale) ------------------------------------------------
build=${ORBIT_BUILD_DIR:-$top/_build/plain}
if [ -z "${ORBIT_BUILD_DIR:-}" ]; then
        if [ ! -f "$build/Makefile" ]; then
                [ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh >/dev/null
                mkdir -p "$build"
                (cd "$build" && "$top/configure" -q)
        fi
        echo "==> building orbit-agent, orbit-controller, orbit-bundle, bootenv-tool in $build"
        make -s -C "$build" -j"$(nproc 2>/dev/null || echo 2)" orbit-agent orbitctl orbit-bundle \
                orbit-controller tests/integration/bootenv-tool
fi
for b in orbit-agent orbit-bundle orbit-controller tests/integration/bootenv-tool; do
        [ -x "$build/$b" ] || { echo "fleet-sim: $build/$b is missing" >&2; exit 1; }
done

FLEET_BIN=$build
FLEET_TOOL=$build/tests/integration/bootenv-tool
FLEET_DIR=$(mktemp -d "${TMPDIR:-/tmp}/orbit-fleet.XXXXXX")
FLEET_TRIAL_SEC=12
FLEET_AGENT_LOG_LEVEL=notice
# The deployment needs workloads: root and cgroups (docs/workload-spec.md).
if [ $deploy = 1 ] && { [ "$(id -u)" != 0 ] || { [ ! -d /sys/fs/cgroup/cpu ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ]; }; }; then
        echo "fleet-sim: not root or no cgroups: no deployment (the nodes cannot run workloads)"
        deploy=0
fi
[ $deploy = 1 ] && FLEET_RUNTIME_PREFIX="orbit-fleet-$$"
# a workload in its user namespace is not host root: it must reach the app trees below here
chmod 711 "$FLEET_DIR"
# shellcheck source=scripts/fleet-lib.sh
. "$top/scripts/fleet-lib.sh"

# CPU accounting: the script and everything it starts (agents too, though they leave its
# session) in a cgroup of their own when root can make one; else whole-machine figures.
acct=""
acct_setup() {
        local d
        if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
                d=/sys/fs/cgroup/orbit-fleet.$$
        elif [ -d /sys/fs/cgroup/cpuacct ]; then
                d=/sys/fs/cgroup/cpuacct/orbit-fleet.$$
        else
                return 0
        fi
        mkdir "$d" 2>/dev/null || return 0
        if echo $$ >"$d/cgroup.procs" 2>/dev/null; then acct=$d; else rmdir "$d"; fi
}
acct_usage_usec() { # CPU time used in the cgroup so far
        if [ -f "$acct/cpu.stat" ]; then awk '/^usage_usec/{print $2}' "$acct/cpu.stat"
        else echo $(($(cat "$acct/cpuacct.usage") / 1000)); fi
}
acct_done() {
        [ -n "$acct" ] || return 0
        echo $$ >"$(dirname "$acct")/cgroup.procs" 2>/dev/null || true
        rmdir "$acct" 2>/dev/null || true
}
acct_setup

window_driver=""
cleanup() {
        local rc=$?
        trap - EXIT INT TERM
        echo
        echo "==> stopping the fleet"
        if [ -n "$window_driver" ]; then
                kill "$window_driver" 2>/dev/null || true
                wait "$window_driver" 2>/dev/null || true
        fi
        fleet_stop_all
        [ -n "${FLEET_RUNTIME_PREFIX:-}" ] && fleet_cleanup_cgroups "$FLEET_RUNTIME_PREFIX"
        acct_done
        local left=0 f
        for f in "$FLEET_DIR"/nodes/*/agent.pid; do
                [ -e "$f" ] && fleet_pid_alive "$(cat "$f")" && left=$((left + 1))
        done
        if [ "$left" -gt 0 ]; then
                echo "fleet-sim: $left agents still running" >&2
                rc=1
        else
                echo "all $n agents and the controller stopped"
        fi
        if [ $keep = 1 ]; then
                echo "kept $FLEET_DIR (controller.log, nodes/*/agent.log, nodes/*/reboot.log)"
        else
                rm -rf "$FLEET_DIR"
                echo "removed $FLEET_DIR"
        fi
        exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$SECONDS
elapsed() { printf '[%4ds]' $((SECONDS - t0)); }

echo "==> keys, images and a signed bundle (in $FLEET_DIR)"
fleet_keys
fleet_images fleet-v2
fleet_start_controller
echo "controller on $FLEET_URL (poll interval ${FLEET_POLL_SEC}s), log $FLEET_DIR/controller.log"
fleet_write_starter

width=${#n}
names=()
for i in $(seq 1 "$n"); do
        names+=("$(printf "sat-%0${width}d" "$i")")
done
echo "==> making $n nodes (config checked with orbit-agent --check-config)"
for name in "${names[@]}"; do
        fleet_node_make "$name"
        # with workloads: their usage reported every 10 s, so the summary below has some
        if [ $deploy = 1 ]; then
                c=$FLEET_DIR/nodes/$name/etc/agent.json
                jq '.usage = {sample_sec: 2, report_sec: 10}' "$c" >"$c.new" && mv "$c.new" "$c"
        fi
done
echo "==> starting $n agents"
for name in "${names[@]}"; do
        fleet_node_start "$name"
        sleep 0.02
done
synced() { fleet_oc node list --json | jq '[.[] | select(.last_sync != null)] | length'; }
for _ in $(seq 120); do
        [ "$(synced)" -ge "$n" ] && break
        sleep 0.5
done
echo "$(elapsed) $(synced) of $n nodes in contact"
[ "$(synced)" -ge "$n" ] || { echo "fleet-sim: not every node made contact" >&2; exit 1; }

echo "==> every node in group 'fleet'; contact plans for every fifth node"
for name in "${names[@]}"; do
        fleet_oc node group "$name" fleet >/dev/null
done
now=$(date +%s)
windowed=()
plan=$(jq -nc --argjson t "$now" '{windows: [range(0; 90) | {start: ($t + . * 20), end: ($t + . * 20 + 15), rate_bps: 250000}]}')
for i in $(seq 5 5 "$n"); do
        name=${names[$((i - 1))]}
        windowed+=("$name")
        curl -sf --cacert "$FLEET_DIR/keys/server-ca.pem" -H "Authorization: Bearer $(cat "$FLEET_DIR/keys/token")" \
                -X PUT --data "$plan" "$FLEET_URL/v1/nodes/$name/contact-plan" >/dev/null
done
echo "${#windowed[@]} nodes have 15 s contact windows every 20 s and are unreachable between them"
# Between its windows a node is out of contact: its agent is stopped (SIGSTOP), as if
# the link were gone; at the window's start it goes on.
(
        trap 'exit 0' TERM
        declare -A state
        while :; do
                open=$(( ($(date +%s) - now) % 20 < 15 ))
                for name in "${windowed[@]}"; do
                        pid=$(fleet_node_pid "$name")
                        [ -n "$pid" ] || continue
                        key="$pid:$open"
                        [ "${state[$name]:-}" = "$key" ] && continue
                        if [ "$open" = 1 ]; then kill -CONT "$pid" 2>/dev/null || true
                        else kill -STOP "$pid" 2>/dev/null || true; fi
                        state[$name]=$key
                done
                sleep 0.5
        done
) &
window_driver=$!

echo "==> uploading the bundle"
fleet_oc bundle upload "$FLEET_DIR/images/fleet-v2.obundle"

echo "==> creating the rollout"
fleet_oc rollout create --id fleet-v2-rollout --bundle fleet-v2 --target fleet --stages "$stages" \
        --success-after 2 --max-failures "$max_failures" --stage-timeout 5m
R=fleet-v2-rollout
status_json=$FLEET_DIR/status.json
fleet_rollout_json $R >"$status_json"
failing=()
if [ "$fail" -gt 0 ]; then
        # Not nodes with contact windows: their failure should be the health gate alone.
        mapfile -t failing < <(jq -r --arg w " ${windowed[*]} " '[.nodes[] | select(.stage == 3)] + [.nodes[] | select(.stage == 4)]
                + [.nodes[] | select(.stage == 2)] | .[].node | . as $n | select($w | contains(" " + $n + " ") | not)' \
                "$status_json" | head -n "$fail")
        for name in "${failing[@]}"; do
                echo B >"$FLEET_DIR/nodes/$name/fail-slot"
        done
        fail_stage=$(jq -r --arg n "${failing[-1]}" '.nodes[] | select(.node == $n) | .stage' "$status_json")
        echo "failing nodes (critical temperature in the new slot): ${failing[*]} (the last in stage $fail_stage)"
fi

# Resource figures: the whole machine's CPU over the rollout, RSS of the processes.
cpu_busy() { awk '/^cpu /{print $2+$3+$4+$7+$8, $2+$3+$4+$5+$6+$7+$8}' /proc/stat; }
read -r busy0 total0 < <(cpu_busy)
usage0=0
[ -n "$acct" ] && usage0=$(acct_usage_usec)
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
# PSS shares the pages of the libraries all agents map among them: the honest sum.
pss_kib() { awk '/^Pss:/{print $2}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
agents_rss() {
        local f pid sum=0 max=0 cnt=0 r pss=0
        for f in "$FLEET_DIR"/nodes/*/agent.pid; do
                pid=$(cat "$f" 2>/dev/null) || continue
                fleet_pid_alive "$pid" || continue
                r=$(rss_kib "$pid")
                pss=$((pss + $(pss_kib "$pid")))
                sum=$((sum + r)); cnt=$((cnt + 1)); [ "$r" -gt "$max" ] && max=$r
        done
        echo "$cnt $sum $max $pss"
}
rss_sample=""

echo "==> starting the rollout: stages $stages%, success after 2 passes, at most $max_failures failures"
fleet_oc rollout start $R
rollout_t0=$SECONDS
last_line="" events_seen=0 state=running
while :; do
        fleet_rollout_json $R >"$status_json" 2>/dev/null || { sleep 1; continue; }
        jq -r --argjson seen "$events_seen" '.events[$seen:][] | "        event: stage \(.stage // "-") \(.event): \(.detail)"' "$status_json"
        events_seen=$(jq '.events | length' "$status_json")
        state=$(jq -r .state "$status_json")
        line=$(jq -r '. as $r | .stage_progress[.current_stage - 1] as $s |
                "\(.state) stage \(.current_stage)/\(.stages | length) (\($s.percent)%): \($s.nodes) nodes: \($s.committed) committed (\($s.held) held), \($s.installing) installing, \($s.told) told, \($s.failed + $s."rolled-back") failed | fleet: \(.counts.committed) committed, \(.counts.failures) failed of \(.counts.told_so_far) told"' "$status_json")
        if [ "$line" != "$last_line" ]; then
                echo "$(elapsed) $line"
                last_line=$line
        fi
        [ -z "$rss_sample" ] && [ "$(jq .current_stage "$status_json")" -ge 3 ] && rss_sample=$(agents_rss)
        case $state in completed|halted|aborted) break ;; esac
        [ $((SECONDS - rollout_t0)) -lt 600 ] || { echo "fleet-sim: the rollout did not end in 10 minutes" >&2; break; }
        sleep 1
done
rollout_secs=$((SECONDS - rollout_t0))
read -r busy1 total1 < <(cpu_busy)
usage1=0
[ -n "$acct" ] && usage1=$(acct_usage_usec)
[ -n "$rss_sample" ] || rss_sample=$(agents_rss)
ctl_rss=$(rss_kib "$FLEET_CONTROLLER_PID")

echo
echo "==> orbit-controller rollout status $R"
fleet_oc rollout status $R | sed '/^  events:/,$d'
rc=0
if [ "$fail" -gt 0 ]; then
        echo
        echo "==> the failing nodes"
        jq -r '.nodes[] | select(.state == "rolled-back" or .state == "failed") | "  \(.node) (stage \(.stage)): \(.state): \(.reason // "")"' "$status_json"
        later=$(jq --argjson s "$fail_stage" '[.nodes[] | select(.stage > $s and .state != "pending")] | length' "$status_json")
        echo "nodes of later stages told to install: $later"
        if [ "$state" = halted ] && [ "$(jq .current_stage "$status_json")" = "$fail_stage" ] && [ "$later" = 0 ]; then
                echo "RESULT: the rollout halted in stage $fail_stage when the failures crossed the threshold; no further node was told to install"
        else
                echo "RESULT: unexpected end: $state in stage $(jq .current_stage "$status_json") ($later later nodes told)"
                rc=1
        fi
else
        if [ "$state" = completed ]; then
                echo "RESULT: the rollout completed: $(jq .counts.committed "$status_json") of $n nodes committed"
        else
                echo "RESULT: unexpected end: $state"
                rc=1
        fi
fi
read -r cnt sum max pss <<<"$rss_sample"
busy=$((busy1 - busy0)) total=$((total1 - total0))
echo
echo "==> figures ($n agents, $(nproc) cores)"
echo "rollout: ${rollout_secs}s from start to $state"
echo "agents: $cnt running (sampled in stage 3): RSS $((sum / (cnt > 0 ? cnt : 1))) KiB each on average," \
        "$max KiB at most; PSS (shared library pages split among them) $((pss / 1024)) MiB for all $cnt"
echo "controller: RSS $((ctl_rss / 1024)) MiB"
if [ -n "$acct" ] && [ "$rollout_secs" -gt 0 ]; then
        used=$(( (usage1 - usage0) / 1000 ))
        echo "CPU of the simulation (controller, agents, reboot hooks, this script's polling):" \
                "$((used / 1000)).$(printf '%03d' $((used % 1000)))s over ${rollout_secs}s," \
                "$((used / rollout_secs / 10))% of one core ($((used / rollout_secs / 10 / $(nproc)))% of the machine)"
fi
echo "CPU of the whole machine during the rollout (other work included): $((total > 0 ? busy * 100 / total : 0))% of $(nproc) cores"

# ---- a deployment next to the rollout: a new workload on every node, from the ground -----------
if [ $deploy = 1 ]; then
        echo
        echo "==> a deployment: workload 'det' from a signed app bundle on every node of 'fleet', a canary stage first"
        A=$FLEET_DIR/app
        mkdir -p "$A/bin"
        printf '#!/bin/sh\necho "det 1.0.0 serving"\nexec sleep 100000\n' >"$A/bin/serve"
        printf '#!/bin/sh\ntrue\n' >"$A/bin/probe"
        chmod 0755 "$A/bin/serve" "$A/bin/probe"
        tar --format=pax --owner=0 --group=0 -cf "$FLEET_DIR/images/det.tar" -C "$A" .
        # the node's anti-rollback floor is one counter for all its slots: the rollout's
        # release raised it to 2 on the nodes that committed it (docs/deployments.md)
        printf '{"bundle_id": "det-1.0", "version": "1.0.0", "security_version": 2, "compatible": ["sim-board"]}\n' \
                >"$FLEET_DIR/images/det.json"
        "$FLEET_BIN/orbit-bundle" create --manifest-template "$FLEET_DIR/images/det.json" \
                --image "app:det=$FLEET_DIR/images/det.tar" --chunk-size "$FLEET_CHUNK" \
                --key "$FLEET_DIR/keys/rel.key" --cert "$FLEET_DIR/keys/rel.pem" -o "$FLEET_DIR/images/det-1.0.obundle" >/dev/null
        fleet_oc bundle upload "$FLEET_DIR/images/det-1.0.obundle"
        jq -n '{name: "det", tenant: "acme", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"},
                health_probe: {exec: ["/app/bin/probe"], interval_sec: 2, timeout_sec: 5, failures: 3},
                sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}}' >"$FLEET_DIR/det.json"
        fleet_oc deployment create --id det-1 --bundle det-1.0 --spec "$FLEET_DIR/det.json" --target fleet \
                --stages 10,100 --success-after 1 --max-failures 2 --report-deadline 5m | head -1
        deploy_t0=$SECONDS last_line="" dstate=running
        while :; do
                d=$(fleet_oc deployment status det-1 --json 2>/dev/null) || { sleep 1; continue; }
                dstate=$(jq -r .state <<<"$d")
                line=$(jq -r '"\(.state) stage \(.stage)/\(.stages | length): \(.counts.committed // 0) of \(.counts.nodes) nodes run it healthy, \((.counts.told // 0) + (.counts.installing // 0)) on their way, \((.counts.failed // 0) + (.counts.overdue // 0)) failed"' <<<"$d")
                if [ "$line" != "$last_line" ]; then
                        echo "$(elapsed) $line"
                        last_line=$line
                fi
                case $dstate in completed|halted|aborted) break ;; esac
                [ $((SECONDS - deploy_t0)) -lt 600 ] || { echo "fleet-sim: the deployment did not end in 10 minutes" >&2; break; }
                sleep 1
        done
        running=$("$FLEET_BIN/orbitctl" --socket "$FLEET_DIR/nodes/${names[0]}/run/control.sock" workload show det --json |
                jq -r '"\(.state), app \(.app.name) \(.app.version) from member \(.app.member), pid \(.pid)"')
        echo "on ${names[0]}: det $running"
        if [ "$dstate" = completed ]; then
                # the usage the nodes metered, as the controller sums it (docs/usage.md)
                for _ in $(seq 30); do
                        [ "$(fleet_oc usage --by deployment --json 2>/dev/null | jq '[.[] | select(.deployment == "det-1")] | length')" = 1 ] && break
                        sleep 1
                done
                echo "usage metered by the nodes and summed by the controller (orbit-controller usage --by deployment):"
                fleet_oc usage --by deployment | sed 's/^/    /'
                echo "RESULT: the deployment completed in $((SECONDS - deploy_t0))s: det runs healthy on $(jq .counts.committed <<<"$d") of $n nodes"
        else
                jq -r '.nodes[] | select(.state == "failed" or .state == "overdue") | "  \(.node) (stage \(.stage)): \(.state): \(.reason // "")"' <<<"$d"
                echo "RESULT: the deployment ended $dstate: $(jq -r .reason <<<"$d")"
                rc=1
        fi
fi
exit $rc
