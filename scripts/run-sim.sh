#!/usr/bin/env bash
# The main job: build everything, start the controller and a fleet of 50 simulated nodes,
# run a staged rollout over them that halts when failing nodes cross its threshold, show
# its progress stage by stage, and stop cleanly (scripts/fleet-sim.sh; arguments go to it:
# N, --fail K, --keep...).
#
# --node [--stay]: the single-node demo instead: build orbit-agent, start a simulated node
# from examples/sim-node, show its status and thermal policy, and stop it (--stay keeps it
# running until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
stay=0
case "${1:-}" in
--node) shift; [ "${1:-}" = "--stay" ] && stay=1 ;;
--stay) stay=1 ;;
*)
        scripts/deps.sh build run
        exec scripts/fleet-sim.sh "$@"
        ;;
esac

scripts/deps.sh build run

build="$top/_build/plain"
if [ ! -x "$build/orbit-agent" ] || [ ! -x "$build/orbitctl" ]; then
        [ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh
        mkdir -p "$build"
        (cd "$build" && "$top/configure" -q)
fi
make -s -C "$build" -j"$(nproc 2>/dev/null || echo 2)" orbit-agent orbitctl

sim=${ORBIT_SIM_DIR:-$top/_build/sim-node}
mkdir -p "$sim/etc/workloads.d" "$sim/state" "$sim/run"
echo "BOOT_IMAGE=/vmlinuz root=/dev/sim orbit.slot=A" >"$sim/cmdline"
sed -e "s|@SIMDIR@|$sim|g" -e "s|@SANDBOX_INIT@|$build/orbit-sandbox-init|g" \
        examples/sim-node/agent.json.in >"$sim/etc/agent.json"
cp examples/sim-node/workloads.d/*.json "$sim/etc/workloads.d/"
# A fake board: one CPU thermal zone and a battery with a solar array.
zone=$sim/sys/class/thermal/thermal_zone0
mkdir -p "$zone" "$sim/sys/class/power_supply/BAT0" "$sim/sys/class/power_supply/solar"
echo cpu-thermal >"$zone/type"
settemp() { echo "$1" >"$zone/temp.new" && mv "$zone/temp.new" "$zone/temp"; }
settemp 45000
printf 'Battery\n' >"$sim/sys/class/power_supply/BAT0/type"
printf 'Charging\n' >"$sim/sys/class/power_supply/BAT0/status"
printf '80\n' >"$sim/sys/class/power_supply/BAT0/capacity"
printf 'Mains\n' >"$sim/sys/class/power_supply/solar/type"
printf '1\n' >"$sim/sys/class/power_supply/solar/online"

echo "==> checking the simulated node's config"
"$build/orbit-agent" --check-config --config "$sim/etc/agent.json"

echo "==> starting orbit-agent (log: $sim/agent.log)"
"$build/orbit-agent" --config "$sim/etc/agent.json" 2>"$sim/agent.log" &
agent=$!
# The agent stops its workloads on exit (stop_workloads_on_exit); their empty cgroup
# parent stays behind unless removed here.
remove_cgroups() {
        local d
        for d in /sys/fs/cgroup/*/orbit-sim /sys/fs/cgroup/orbit-sim; do
                [ -d "$d" ] && find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        return 0
}
cleanup() {
        if kill -0 "$agent" 2>/dev/null; then
                kill -TERM "$agent"
                wait "$agent" || true
        fi
        remove_cgroups
}
trap cleanup EXIT INT TERM

sock="$sim/run/control.sock"
for _ in $(seq 100); do
        [ -S "$sock" ] && "$build/orbitctl" --socket "$sock" ping >/dev/null 2>&1 && break
        kill -0 "$agent" 2>/dev/null || { cat "$sim/agent.log"; echo "orbit-agent exited" >&2; exit 1; }
        sleep 0.1
done

ctl() { "$build/orbitctl" --socket "$sock" "$@"; }
sleep 2 # let the workloads start and print something
echo "==> orbitctl status"
ctl status
echo
echo "==> orbitctl workload list"
ctl workload list
echo
echo "==> orbitctl workload logs telemetry"
ctl workload logs telemetry --lines 3
echo
echo "==> the board heats up: thermal_zone0 to 82 C"
settemp 82000
sleep 1.5
ctl health | sed -n '1,8p'
ctl workload list
echo
echo "==> and cools down to 50 C: the policy steps back, one level per dwell"
settemp 50000
sleep 5
ctl health | sed -n '1,3p'
echo
echo "==> orbitctl status --json"
ctl status --json

if [ $stay = 1 ]; then
        echo
        echo "The node keeps running; try: $build/orbitctl --socket $sock status"
        echo "Ctrl-C stops it."
        wait "$agent"
else
        echo
        echo "==> stopping the node (SIGTERM)"
        kill -TERM "$agent"
        rc=0
        wait "$agent" || rc=$?
        trap - EXIT INT TERM
        remove_cgroups
        echo "orbit-agent exited with status $rc; its log:"
        sed 's/^/    /' "$sim/agent.log"
        exit $rc
fi
