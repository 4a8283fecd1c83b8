#!/usr/bin/env bash
# Benchmark: the agent's idle memory and CPU with 20 workloads and 16 thermal zones polled
# every second, beside the same agent with nothing to watch. Each is run RUNS times
# (default 3) for DURATION seconds (default 60); medians are printed.
#   memory  from /proc/PID/smaps_rollup at the end of each run: RSS (what `ps` shows,
#           shared libraries counted whole), PSS (shared pages divided among the
#           processes that map them) and private (clean + dirty: what this agent alone
#           costs); and the largest RSS seen during the run
#   libs    RSS per mapped shared library (from smaps) in the loaded agent, and the
#           dependency closure on disk (ldd of the binary: each library's size, total)
#   links   `ldd -u -r`: direct dependencies the binary does not use
# Goal: under 8 MiB RSS and under 0.5% of one core. Run as root.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$top/_build/plain}
AGENT=$build/orbit-agent
CTL=$build/orbitctl
DURATION=${DURATION:-60}
RUNS=${RUNS:-3}
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
kib_of() { # FIELD FILE: the kB value of "FIELD: N kB"
        awk -v f="$1:" '$1 == f {print $2; exit}' "$2"
}
median() { sort -n | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : int((v[NR / 2] + v[NR / 2 + 1]) / 2)}'; }
mib() { echo "scale=2; $1 / 1024" | bc; }

measure() { # NAME RUN: start the agent with $D/$1/etc/agent.json, wait, sample, record
        local name=$1 run=$2 cfg=$D/$1/etc/agent.json
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
        cp /proc/$PID/smaps_rollup "$D/$name/rollup.$run"
        cp /proc/$PID/smaps "$D/$name/smaps.$run"
        local running
        running=$("$CTL" --socket "$D/$name/run/control.sock" workload list --json 2>/dev/null | grep -c '"state": "running"' || true)
        kill -TERM "$PID"; wait "$PID" || true; PID=""
        local r=$D/$name/rollup.$run
        local cpu_milli=$(( (c1 - c0) * 1000000 / (t1 - t0) ))  # % of one core x 10000
        local private=$(( $(kib_of Private_Clean "$r") + $(kib_of Private_Dirty "$r") ))
        echo "$rss_max $(kib_of Rss "$r") $(kib_of Pss "$r") $private $cpu_milli $running" >>"$D/$name/results"
}

report() { # NAME: medians of the runs
        local name=$1 f=$D/$1/results col
        local -a m
        for col in 1 2 3 4 5 6; do m+=("$(awk -v c=$col '{print $c}' "$f" | median)"); done
        printf '%-30s RSS %5.2f MiB (max %5.2f)  PSS %5.2f MiB  private %5.2f MiB  CPU %6.3f%% of one core  (%s workloads running)\n' \
                "$name" "$(mib "${m[1]}")" "$(mib "${m[0]}")" "$(mib "${m[2]}")" "$(mib "${m[3]}")" \
                "$(echo "scale=3; ${m[4]} / 10000" | bc)" "${m[5]}"
        echo "${m[*]}" >"$D/$name/result"
}

# RSS per shared library mapped by the agent (the last loaded run), largest first.
lib_rss() { # SMAPS
        awk '/^[0-9a-f]+-[0-9a-f]+ / {path = ($6 ~ /\.so/) ? $6 : ""} /^Rss:/ && path != "" {rss[path] += $2}
             END {for (p in rss) printf "%d %s\n", rss[p], p}' "$1" | sort -rn
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
echo "agent idle cost, poll every 1 s, ${RUNS} runs of ${DURATION}s each, medians"
for run in $(seq "$RUNS"); do
        measure baseline-empty "$run"
        measure loaded-20-workloads-16-zones "$run"
done
report baseline-empty
report loaded-20-workloads-16-zones

loaded=$D/loaded-20-workloads-16-zones
echo "shared libraries by RSS in the loaded agent (run $RUNS), KiB:"
lib_rss "$loaded/smaps.$RUNS" | awk '{sum += $1; if (NR <= 12) printf "  %6d  %s\n", $1, $2} END {printf "  %6d  all %d libraries (ld.so included)\n", sum, NR}'

# The same RSS by the agent's direct dependencies: each with the libraries only it pulls
# in (its share of the closure). A direct dependency counts under its own name even when
# another one needs it too (the agent keeps it anyway); any other library two of them
# need counts as "shared"; libc, libm and ld.so as "libc+libm+ld.so".
echo "RSS by direct dependency and what only it pulls in, KiB:"
declare -A owner=() is_direct=()
direct=()
while read -r soname; do
        dpath=$(ldd "$AGENT" | awk -v l="$soname" '$1 == l {print $3}')
        case "$dpath" in ""|*/libc.so.*|*/libm.so.*) continue ;; esac
        direct+=("$soname=$dpath")
        is_direct[$(readlink -f "$dpath")]=1
        owner[$(readlink -f "$dpath")]=$soname
done < <(readelf -d "$AGENT" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
for d in "${direct[@]}"; do
        soname=${d%%=*}
        for lib in $(ldd "${d#*=}" | awk '$2 == "=>" && $3 ~ /^\// {print $3}'); do
                real=$(readlink -f "$lib")
                case "$real" in */libc.so.*|*/libm.so.*|*/ld-linux*) continue ;; esac
                [ -z "${is_direct[$real]:-}" ] || continue
                if [ -z "${owner[$real]:-}" ]; then
                        owner[$real]=$soname
                elif [ "${owner[$real]}" != "$soname" ]; then
                        owner[$real]=shared
                fi
        done
done
lib_rss "$loaded/smaps.$RUNS" | while read -r kib path; do
        echo "$kib ${owner[$(readlink -f "$path")]:-libc+libm+ld.so}"
done | awk '{sum[$2] += $1; n[$2]++} END {for (o in sum) printf "%d %s %d\n", sum[o], o, n[o]}' |
        sort -rn | awk '{printf "  %6d  %s (%d libraries)\n", $1, $2, $3}'

echo "dependency closure on disk (ldd $AGENT), largest first:"
ldd "$AGENT" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' | xargs stat -L -c '%s %n' |
        sort -rn | awk '{t += $1; if (NR <= 12) printf "  %7.2f MiB  %s\n", $1 / 1048576, $2}
                        END {printf "  %7.2f MiB  all %d libraries\n", t / 1048576, NR}'
unused=$(ldd -u -r "$AGENT" 2>/dev/null | tail -n +2 | tr -d '\t' | tr '\n' ' ' || true)
echo "direct dependencies the binary does not use (ldd -u -r): ${unused:-none}"

read -r _ rss _ _ cpu _ <"$loaded/result"
ok=1
[ "$rss" -lt $((8 * 1024)) ] || ok=0
[ "$cpu" -lt 5000 ] || ok=0
echo "goal: RSS < 8 MiB and CPU < 0.5% of one core (loaded, medians): $([ $ok = 1 ] && echo met || echo NOT met)"
