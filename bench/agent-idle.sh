#!/usr/bin/env bash
# Benchmark: the agent's idle RSS and CPU with 20 workloads and 16 thermal zones polled
# every second, measured over a minute, beside the same agent with nothing to watch.
# Goal: under 8 MiB RSS and under 0.5% of one core. Run as root. DURATION=60 by default.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/_build/plain}
AGENT=$build/orbit-agent
CTL=$build/orbitctl
DURATION=${DURATION:-60}
[ -x "$AGENT" ] || { echo "build first (scripts/bench.sh does)"; exit 2; }
D=$(mktemp -d /tmp/orbit-bench.XXXXXX)
chmod 711 "$D" # workloads run in user namespaces: they must reach their sandbox roots
PARENT="orbit-bench-$$"
cleanup() {
        [ -n "${PID:-}" ] && kill -TERM "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
        for d in /sys/fs/cgroup/*/"$PARENT" /sys/fs/cgroup/"$PARENT"; do [ -d "$d" ] && rmdir "$d" 2>/dev/null; done
        [ -n "$KEEP" ] || rm -rf "$D"
}
trap cleanup EXIT
KEEP=${KEEP:-}

# CPU time in ns: schedstat is exact; utime+stime (clock ticks) where it is missing.
cpu_ns() {
        if [ -r /proc/$1/schedstat ]; then
                awk '{print $1}' /proc/$1/schedstat
        else
                awk -v hz="$(getconf CLK_TCK)" '{printf "%d\n", ($14 + $15) * 1000000000 / hz}' /proc/$1/stat
        fi
}
measure() { # NAME: start the agent with $D/$1/agent.json, wait, sample, print
        local name=$1 cfg=$D/$1/etc/agent.json
        "$AGENT" --config "$cfg" 2>"$D/$name/agent.log" &
        PID=$!
        for _ in $(seq 100); do "$CTL" --socket "$D/$name/run/control.sock" ping >/dev/null 2>&1 && break; sleep 0.1; done
        sleep 5 # let the workloads start and the first polls settle
        local t0 c0 t1 c1 rss_max=0 rss
        t0=$(date +%s%N)
        c0=$(cpu_ns "$PID")
        local end=$((SECONDS + DURATION))
        while [ $SECONDS -lt $end ]; do
                rss=$(awk '/^VmRSS/ {print $2}' /proc/$PID/status)
                [ "$rss" -gt "$rss_max" ] && rss_max=$rss
                sleep 1
        done
        t1=$(date +%s%N)
        c1=$(cpu_ns "$PID")
        local running
        running=$("$CTL" --socket "$D/$name/run/control.sock" workload list --json 2>/dev/null | grep -c '"state": "running"' || true)
        kill -TERM "$PID"; wait "$PID" || true; PID=""
        local cpu_milli=$(( (c1 - c0) * 1000000 / (t1 - t0) ))  # % of one core x 10000
        printf '%-34s RSS max %6.2f MiB   CPU %6.3f%% of one core   (%s workloads running, %ss)\n' \
                "$name" "$(echo "$rss_max / 1024" | bc -l)" "$(echo "$cpu_milli / 10000" | bc -l)" "$running" "$DURATION"
        echo "$rss_max $cpu_milli" >"$D/$name/result"
}

make_node() { # NAME WORKLOADS ZONES
        local n=$D/$1
        mkdir -p "$n/etc/workloads.d" "$n/sys/class/thermal"
        for i in $(seq 0 $(($3 - 1))); do
                mkdir -p "$n/sys/class/thermal/thermal_zone$i"
                echo "zone$i" >"$n/sys/class/thermal/thermal_zone$i/type"
                echo $((40000 + i * 100)) >"$n/sys/class/thermal/thermal_zone$i/temp"
                echo 95000 >"$n/sys/class/thermal/thermal_zone$i/trip_point_0_temp"
                echo critical >"$n/sys/class/thermal/thermal_zone$i/trip_point_0_type"
        done
        for i in $(seq 1 "$2"); do
                printf '{"name": "w%d", "priority": "best-effort", "exec": ["/bin/sleep", "100000"], "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}]}}\n' "$i" >"$n/etc/workloads.d/w$i.json"
        done
        cat >"$n/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "bench", "state_dir": "$n/state", "runtime_dir": "$n/run", "log_target": "stderr",
 "paths": {"sysfs_root": "$n/sys"},
 "runtime": {"cgroup_parent": "$PARENT", "stop_workloads_on_exit": true, "sandbox_init": "$build/orbit-sandbox-init"},
 "health": {"poll_interval_ms": 1000, "report_interval_sec": 60}}
JSON
}

command -v bc >/dev/null || { echo "bench needs bc (apt-get install bc)"; exit 2; }
make_node baseline-empty 0 0
make_node loaded-20-workloads-16-zones 20 16
echo "agent idle cost, poll every 1 s, measured over ${DURATION}s each"
measure baseline-empty
measure loaded-20-workloads-16-zones
read -r rss cpu <"$D/loaded-20-workloads-16-zones/result"
ok=1
[ "$rss" -lt $((8 * 1024)) ] || ok=0
[ "$cpu" -lt 5000 ] || ok=0
echo "goal: RSS < 8 MiB and CPU < 0.5% of one core: $([ $ok = 1 ] && echo met || echo NOT met)"
