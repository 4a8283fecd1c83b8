# Integration test of deployments (#19 items 2 and 4): a real orbit-controller and 6 real
# agents that run workloads. A deployment of a new workload goes out in two stages through
# the nodes' desired states and completes; the next version, whose health probe fails on
# its canary, halts the deployment and auto-reverts the canary while the other nodes were
# never told; a deployment of a count is placed on the nodes with thermal headroom only, and
# deleting it takes its workload off them.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

. "$top_srcdir/tests/integration/deployment-lib.sh"
FLEET_IMAGE_KIB=256
FLEET_REPORT_SEC=2 # health reports often: placement reads them
deploy_fleet_setup deploy dp-1 dp-2 dp-3 dp-4 dp-5 dp-6
deploy_app_bundle det-1.0 1.0.0 good
deploy_app_bundle det-2.0 2.0.0 bad
deploy_spec 1.0.0 det-1.json
deploy_spec 2.0.0 det-2.json
jq -n '{name: "batch", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"},
        sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}}' >batch.json

fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
for n in "${NODES[@]}"; do
        fleet_node_make "$n" || bail "node $n"
        fleet_node_start "$n"
done
reporting() { [ "$(fleet_oc node list --json | jq '[.[] | select(.health_time != null)] | length')" = 6 ]; }
check "all 6 nodes in contact, with health reports" wait_for $((T * 2)) reporting
check "bundle det-1.0 uploaded" fleet_oc bundle upload images/det-1.0.obundle
check "bundle det-2.0 uploaded" fleet_oc bundle upload images/det-2.0.obundle

# ---- refused at create --------------------------------------------------------------------
says "a spec of another version than the bundle is refused" "holds version 1.0.0" \
        fleet_oc deployment create --id bad-1 --bundle det-1.0 --spec det-2.json
says "a constraint no node meets is refused, saying why" "meets the constraints" \
        fleet_oc deployment create --id bad-2 --bundle det-1.0 --spec det-1.json --min-free-mib 100000000
check "nothing was made" test "$(fleet_oc deployment list --json | jq length)" = 0

# ---- det-1: a new workload on every node, a canary stage first ----------------------------------
check "det-1 created" fleet_oc deployment create --id det-1 --bundle det-1.0 --spec det-1.json \
        --stages 16,100 --success-after 1 --max-failures 0
check "det-1 completes" wait_for $((T * 4)) dstate_is det-1 completed
check "every node committed" test "$(dstatus det-1 | jq '.counts.committed')" = 6
for n in "${NODES[@]}"; do
        check "$n runs det 1.0.0" runs_on "$n" 1.0.0
done
canary=$(dstatus det-1 | jq -r '.nodes[] | select(.stage == 1) | .node')
check "one canary in stage 1" test "$(wc -w <<<"$canary")" = 1

# ---- det-2: its probe fails on the canary: halted, reverted, the rest never told ----------------
check "det-2 created" fleet_oc deployment create --id det-2 --bundle det-2.0 --spec det-2.json \
        --stages 16,100 --success-after 1 --max-failures 0 --auto-revert
check "det-2 halts" wait_for $((T * 4)) dstate_is det-2 halted
canary2=$(dstatus det-2 | jq -r '.nodes[] | select(.stage == 1) | .node')
says "the canary's reason: its health probe" "health probe" sh -c "echo '$(dstatus det-2 | jq -c .nodes)'"
check "the canary was rolled back" test "$(dstatus det-2 | jq -r --arg n "$canary2" '.nodes[] | select(.node == $n) | .state')" = rolled-back
check "the canary runs det 1.0.0 again" wait_for $((T * 3)) runs_on "$canary2" 1.0.0
others_pending() { [ "$(dstatus det-2 | jq '[.nodes[] | select(.stage == 2 and .state == "pending")] | length')" = 5 ]; }
check "the 5 others were never told" others_pending
for n in "${NODES[@]}"; do
        [ "$n" = "$canary2" ] && continue
        check "$n still runs det 1.0.0" runs_on "$n" 1.0.0
done

# ---- batch: 2 nodes with thermal headroom only -----------------------------------------------
warm() { # NODE: 75 C, above the warm level
        echo 75000 >"$FLEET_DIR/nodes/$1/sys/class/thermal/thermal_zone0/temp.new" &&
                mv "$FLEET_DIR/nodes/$1/sys/class/thermal/thermal_zone0/temp.new" \
                        "$FLEET_DIR/nodes/$1/sys/class/thermal/thermal_zone0/temp"
}
for n in dp-1 dp-2 dp-3 dp-4; do warm "$n"; done
warm_reported() { [ "$(fleet_oc node list --json | jq '[.[] | select(.summary.level == "warm")] | length')" = 4 ]; }
check "4 nodes report warm" wait_for $((T * 2)) warm_reported
check "batch created: 2 nodes, nominal only" fleet_oc deployment create --id batch-1 --bundle det-1.0 \
        --spec batch.json --count 2 --max-level nominal --stages 100 --success-after 1
placed=$(dstatus batch-1 | jq -r '[.nodes[].node] | sort | join(" ")')
check "placed on dp-5 and dp-6, the cool ones" test "$placed" = "dp-5 dp-6"
check "batch-1 completes" wait_for $((T * 3)) dstate_is batch-1 completed
check "dp-5 runs batch" runs_on dp-5 1.0.0 batch
says "3 nodes asked for, 2 meet the constraints: refused" "2 of the 3 nodes" \
        fleet_oc deployment create --id batch-2 --bundle det-1.0 --spec batch.json --count 3 --max-level nominal
check "batch-1 deleted" fleet_oc deployment delete batch-1
gone() { ! "$FLEET_BIN/orbitctl" --socket "$FLEET_DIR/nodes/$1/run/control.sock" workload show batch --json >/dev/null 2>&1; }
check "batch is gone from dp-5" wait_for $((T * 2)) gone dp-5
check "batch is gone from dp-6" wait_for $((T * 2)) gone dp-6
check "det still runs on dp-5" runs_on dp-5 1.0.0
says "deployment list shows them" "batch-1" fleet_oc deployment list

for n in "${NODES[@]}"; do
        if has_sanitizer_report "$FLEET_DIR/nodes/$n/agent.log"; then fail "sanitizer report in $n's log"; fi
done
finish
