# Integration test of usage metering (#19 item 5) with a real orbit-controller and a real
# agent that runs a workload of a deployment: the node meters the workload's CPU (equal to
# what its cgroup counted), memory and energy (the board's hwmon power sensor shared by
# CPU), and the bytes its app took over the link; the totals survive an agent killed -9
# and are not counted twice; the controller sums them per tenant and deployment; a workload
# removed between two samples has its last use read before its cgroup goes.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

require_fleet_tools
require_sandboxes
FLEET_IMAGE_KIB=256
FLEET_RUNTIME_PREFIX="orbit-it-usage-$$"
fleet_test_setup
trap 'fleet_cleanup; cleanup_cgroup_tree "$FLEET_RUNTIME_PREFIX-u-1"' EXIT

fleet_keys || bail "keys"
fleet_images fw-unused || bail "images"
# The app: bin/serve burns a bounded amount of CPU, says so, then waits without using any.
rm -rf src && mkdir -p src/bin
cat >src/bin/serve <<'EOF'
#!/bin/sh
i=0
while [ $i -lt 300000 ]; do i=$((i + 1)); done
echo "burn over"
exec sleep 100000
EOF
chmod 0755 src/bin/serve
head -c 300000 /dev/urandom >src/weights.bin
tar --format=pax --owner=0 --group=0 -cf images/app.tar -C src . || bail "tar"
printf '{"bundle_id": "hello-1", "version": "1.0.0", "security_version": 1, "compatible": ["sim-board"]}\n' \
        >images/hello-1.json
"$FLEET_BIN/orbit-bundle" create --manifest-template images/hello-1.json --image "app:hello=images/app.tar" \
        --chunk-size 65536 --key keys/rel.key --cert keys/rel.pem -o images/hello-1.obundle >/dev/null || bail "bundle"
jq -n '{name: "det", tenant: "acme", exec: ["/app/bin/serve"], app: {name: "hello", version: "1.0.0"},
        sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}}' >det.json

fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
fleet_node_make u-1 || bail "node u-1"
N=$FLEET_DIR/nodes/u-1
# the board's power sensor: an INA226 with the board's input (6 W) and a battery rail
H=$N/sys/class/hwmon/hwmon0
mkdir -p "$H"
echo ina226 >"$H/name"
echo vin >"$H/power1_label"
echo 6000000 >"$H/power1_input"
echo vbat >"$H/power2_label"
echo 1000000 >"$H/power2_input"
jq '.usage = {sample_sec: 1, report_sec: 2, board_power: {chip: "ina226", label: "vin"}}
    | .health.poll_interval_ms = 200 | .health.report_interval_sec = 2' "$N/etc/agent.json" >"$N/etc/agent.json.new" &&
        mv "$N/etc/agent.json.new" "$N/etc/agent.json"
check "the config with a usage section is valid" "$FLEET_BIN/orbit-agent" --check-config --config "$N/etc/agent.json"
fleet_node_start u-1
FAIL_CONTEXT_LOG=$N/agent.log
synced() { [ "$(fleet_oc node list --json | jq '[.[] | select(.id == "u-1" and .last_sync != null)] | length')" = 1 ]; }
check "u-1 in contact" wait_for "$T" synced
check "bundle uploaded" fleet_oc bundle upload images/hello-1.obundle

ctl() { "$FLEET_BIN/orbitctl" --socket "$N/run/control.sock" "$@"; }
usage() { ctl status --json | jq -c .usage; }
entry() { usage | jq -c --arg w "$1" '.entries[] | select(.workload == $w)'; }
app_entry() { usage | jq -c --arg a "$1" '.entries[] | select(.workload == "" and .app == $a)'; }
meter_id=$(usage | jq -r .meter)
check "the node has a meter" test "${#meter_id}" = 32

check "deployment dep-usage created" fleet_oc deployment create --id dep-usage --bundle hello-1 --spec det.json
running() { ctl workload show det --json 2>/dev/null | jq -e '.state == "running"' >/dev/null; }
check "det runs" wait_for $((T * 3)) running
cg=$(ctl workload show det --json | jq -r .cgroup)
# the cgroup's own count of CPU, read from the kernel's files (v2: cpu.stat in µs; v1: the
# same group in the cpuacct hierarchy, in ns), in seconds
cg_cpu() {
        local g=${1:-$cg}
        if [ -r "$g/cpu.stat" ] && grep -q usage_usec "$g/cpu.stat"; then
                awk '/^usage_usec/ {printf "%.6f\n", $2 / 1e6}' "$g/cpu.stat"
        else
                awk '{printf "%.6f\n", $1 / 1e9}' "/sys/fs/cgroup/cpuacct/${g#/sys/fs/cgroup/*/}/cpuacct.usage"
        fi
}
note "det's cgroup: $cg"
check "the cgroup's CPU count is readable" cg_cpu
# burn_over WORKLOAD CGROUP: the workload said its burn is over and became sleep(1), which
# waits: no process of the cgroup is still the shell that burned, one is sleep, and every
# one sleeps (state S). From here its cgroup's count of CPU stands still; and it burned some.
burn_over() {
        local p st comm slept=0
        ctl workload logs "$1" --json | jq -e 'any(.lines[]; .line == "burn over")' >/dev/null || return 1
        while read -r p; do
                st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1
                comm=${st#*\(}
                comm=${comm%\)*}
                st=${st##*) }
                [ "$comm" != serve ] && [ "${st%% *}" = S ] || return 1
                [ "$comm" = sleep ] && slept=1
        done <"$2/cgroup.procs"
        [ "$slept" = 1 ] && awk -v c="$(cg_cpu "$2")" 'BEGIN {exit !(c > 0.05)}'
}
check "det burned its CPU and went idle" wait_for $((T * 3)) burn_over det "$cg"
# equal within 10 ms: the meter's sum of the cgroup's growth is the cgroup's count
metered_is() { # workload cpu_sec
        local m
        m=$(entry "$1" | jq -r .cpu_sec) && [ -n "$m" ] &&
                awk -v m="$m" -v c="$2" 'BEGIN {d = m - c; if (d < 0) d = -d; exit !(d < 0.01)}'
}
metered_is_cgroup() { local c; c=$(cg_cpu) && metered_is det "$c"; }
check "det's metered CPU equals its cgroup's count" wait_for "$T" metered_is_cgroup
e=$(entry det)
note "det: $e"
check "det is labelled with its tenant, deployment and app" \
        test "$(jq -r '[.tenant, .deployment, .app] | join(" ")' <<<"$e")" = "acme dep-usage hello"
check "det's memory byte-seconds grow" awk -v m="$(jq -r .memory_byte_sec <<<"$e")" 'BEGIN {exit !(m > 0)}'
board=$(usage | jq -r .board_energy_j)
check "the board's energy is metered (the vin sensor)" awk -v b="$board" 'BEGIN {exit !(b > 0)}'
check "det's energy is a part of the board's" awk -v w="$(jq -r .energy_j <<<"$e")" -v b="$board" \
        'BEGIN {exit !(w > 0 && w <= b)}'
a=$(app_entry hello)
note "app hello: $a"
check "the app's download is metered for its deployment and tenant" \
        test "$(jq -r '[.tenant, .deployment] | join(" ")' <<<"$a")" = "acme dep-usage"
check "the app's link bytes cover its image" awk -v l="$(jq -r .link_bytes <<<"$a")" 'BEGIN {exit !(l >= 300000)}'

# ---- an agent killed -9: the totals go on from the state file, nothing counted twice --------
cpu_before=$(entry det | jq -r .cpu_sec)
reports_before=$(usage | jq -r .reports)
kill -9 "$(fleet_node_pid u-1)"
fleet_node_start u-1
answers() { ctl ping >/dev/null 2>&1; }
check "the agent answers again" wait_for "$T" answers
check "the same meter goes on" test "$(usage | jq -r .meter)" = "$meter_id"
check "det was adopted, not restarted" test "$(ctl workload show det --json | jq -r .cgroup)" = "$cg"
reported_more() { [ "$(usage | jq -r .reports)" -gt "$reports_before" ]; }
check "reports go on after the restart" wait_for "$T" reported_more
check "det's CPU is still its cgroup's count (not counted again)" metered_is_cgroup
check "det's CPU total did not drop" awk -v a="$(entry det | jq -r .cpu_sec)" -v b="$cpu_before" \
        'BEGIN {exit !(a >= b - 0.000001)}'

# ---- the controller: the latest totals of each meter, summed per tenant and deployment -------
sum_by() { fleet_oc usage --by "$1" --json; }
controller_has_node_cpu() {
        local c m
        c=$(sum_by tenant | jq -r '.[] | select(.tenant == "acme") | .cpu_sec') && m=$(entry det | jq -r .cpu_sec) &&
                [ -n "$c" ] && awk -v c="$c" -v m="$m" 'BEGIN {d = c - m; if (d < 0) d = -d; exit !(d < 0.01)}'
}
check "the controller's sum for tenant acme is the node's total" wait_for $((T * 2)) controller_has_node_cpu
note "by tenant: $(sum_by tenant | jq -c .)"
note "by deployment: $(sum_by deployment | jq -c .)"
check "the controller sums the deployment's link bytes" \
        test "$(sum_by deployment | jq -r '.[] | select(.deployment == "dep-usage") | .link_bytes')" = \
        "$(app_entry hello | jq -r .link_bytes)"
out=$(fleet_oc usage --by tenant)
grepq "acme" <<<"$out" && pass "the table names tenant acme" || fail "usage table" "$out"

# ---- a workload removed between two samples: its last use is read before its cgroup goes ------
# Samples now an hour apart: the only reading of burst's cgroup is the one its removal takes.
jq '.usage.sample_sec = 3600 | .usage.report_sec = 3600' "$N/etc/agent.json" >"$N/etc/agent.json.new" &&
        mv "$N/etc/agent.json.new" "$N/etc/agent.json"
kill -HUP "$(fleet_node_pid u-1)"
reloaded() { grepq 'configuration reloaded' "$N/agent.log"; }
check "the agent took samples an hour apart" wait_for "$T" reloaded
jq '.name = "burst" | .tenant = "globex"' det.json >burst.json
check "deployment dep-burst created" fleet_oc deployment create --id dep-burst --bundle hello-1 --spec burst.json
burst_running() { ctl workload show burst --json 2>/dev/null | jq -e '.state == "running"' >/dev/null; }
check "burst runs" wait_for $((T * 3)) burst_running
bcg=$(ctl workload show burst --json | jq -r .cgroup)
check "burst burned its CPU and went idle" wait_for $((T * 3)) burn_over burst "$bcg"
burst_cpu=$(cg_cpu "$bcg")
note "burst's cgroup counted ${burst_cpu} s of CPU; no sample has read it: $(entry burst)"
check "deployment dep-burst deleted" fleet_oc deployment delete dep-burst
burst_gone() { ! ctl workload show burst --json >/dev/null 2>&1; }
check "burst was removed from the node" wait_for $((T * 3)) burst_gone
check "its cgroup is gone" test ! -e "$bcg"
check "burst's metered CPU is its cgroup's last count (read before the cgroup went)" metered_is burst "$burst_cpu"
check "burst is billed to tenant globex" test "$(entry burst | jq -r .tenant)" = globex
# its deployment left the desired state before it was stopped and removed: what it used
# until its cgroup went is still the deployment's, in one entry
check "burst's use stays in one entry, its deployment's" \
        test "$(entry burst | jq -r .deployment | tr '\n' ' ')" = "dep-burst "

grepq "sanitizer" "$N/agent.log" && fail "sanitizer report in the agent log" || pass "no sanitizer report"
finish
