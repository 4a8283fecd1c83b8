# Integration test of staged rollouts: a real orbit-controller and 20 simulated nodes (real
# agents with file slots, the file bootloader and a reboot hook, scripts/fleet-lib.sh). A
# rollout completes stage by stage, with the controller killed and restarted in the middle
# (nothing lost); a second one, with nodes that fail their health gate, halts in the right
# stage and tells no further node; its abort rolls the updated nodes back, and a node that
# rolled back from a bundle is never told to install it again; a canary that goes silent
# after its install is overdue at the report deadline, halts the rollout, and the
# auto-revert rolls back the nodes that committed; a node that joins the group later joins.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq setsid; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
fleet_test_setup

fleet_keys || bail "keys"
fleet_images fw-a || bail "images"
cp images/v2.img images/v3.img
head -c 65536 /dev/urandom | dd of=images/v3.img bs=65536 seek=7 conv=notrunc status=none
# fw-b's release allows going back to fw-a's security_version (2), not below (#18 item 6)
fleet_bundle fw-b images/v3.img 3.0.0 3 2 || bail "bundle fw-b"
fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
NODES=()
for i in $(seq -w 1 20); do
        NODES+=("node-$i")
done
for n in "${NODES[@]}"; do
        fleet_node_make "$n" || bail "node $n"
done
pass "20 node configs pass orbit-agent --check-config"
for n in "${NODES[@]}"; do
        fleet_node_start "$n"
done
synced() { [ "$(fleet_oc node list --json | jq '[.[] | select(.last_sync != null)] | length')" = 20 ]; }
check "all 20 nodes in contact" wait_for "$T" synced
check "bundle fw-a uploaded" fleet_oc bundle upload images/fw-a.obundle
check "bundle fw-b uploaded" fleet_oc bundle upload images/fw-b.obundle

rj() { fleet_oc rollout status "$1" --json; }
rstate() { rj "$1" | jq -r .state; }
state_is() { [ "$(rstate "$1")" = "$2" ]; }
stage_is() { [ "$(rj "$1" | jq .current_stage)" -ge "$2" ]; }
# the installs a node was told (update.install commands of BUNDLE)
installs_of() { fleet_oc command list "$1" --json | jq --arg b "$2" '[.[] | select(.action == "update.install" and .params.bundle_id == $b and .state != "cancelled")] | length'; }
slot_of() { sed -n 's/.*orbit\.slot=\([AB]\).*/\1/p' "$FLEET_DIR/nodes/$1/cmdline"; }

# ---- 1. a rollout over 20 nodes completes; the controller restarts in the middle ------------
fleet_oc rollout create --id first --bundle fw-a --target all --stages 10,50,100 \
        --success-after 1 --max-failures 0 >create.out 2>&1 || bail "create: $(cat create.out)"
grep -q "20 nodes in stages 10,50,100% (2, 8, 10 nodes)" create.out &&
        pass "20 nodes in stages of 2, 8 and 10" || fail "stage sizes" "$(cat create.out)"
rj first | jq -c '[.nodes[] | {(.node): .stage}] | add' >stages.before
check "started" fleet_oc rollout start first
check "stage 2 begins" wait_for "$T" stage_is first 2
told_in_stage2() { [ "$(rj first | jq '[.nodes[] | select(.stage == 2 and .state != "pending")] | length')" -ge 1 ]; }
wait_for "$T" told_in_stage2
kill -TERM "$FLEET_CONTROLLER_PID"
wait_exit "$FLEET_CONTROLLER_PID" 20 && pass "the controller stops on SIGTERM mid-rollout" || fail "controller stop"
port=$FLEET_PORT
fleet_start_controller "$port" || bail "the controller did not restart"
track_pid "$FLEET_CONTROLLER_PID"
# Right after the restart, compare with what the database held when it stopped (the
# agents' records are still arriving, so states may only have moved on).
rj first >after.json
ok=1
for n in "${NODES[@]}"; do
        [ "$(jq -r --arg n "$n" '.[$n]' stages.before)" = "$(jq -r --arg n "$n" '.nodes[] | select(.node == $n) | .stage' after.json)" ] || ok=0
done
[ $ok = 1 ] && pass "after the restart every node keeps its stage" || fail "stages changed"
jq -e '.state == "running" and .current_stage >= 2' after.json >/dev/null &&
        pass "after the restart the rollout is still running in stage $(jq .current_stage after.json)" ||
        fail "rollout state after the restart" "$(jq -c '{state, current_stage}' after.json)"
check "the rollout completes" wait_for $((T * 4)) state_is first completed
rj first >first.json
jq -e '.counts.committed == 20' first.json >/dev/null && pass "all 20 nodes committed" ||
        fail "committed" "$(jq -c .counts first.json)"
order=$(jq -c '[.events[] | select(.event == "stage passed" or .event == "stage started") | "\(.event) \(.stage)"]' first.json)
[ "$order" = '["stage started 1","stage passed 1","stage started 2","stage passed 2","stage started 3","stage passed 3"]' ] &&
        pass "stages started and passed in order" || fail "stage order" "$order"
once=1
for n in "${NODES[@]}"; do
        [ "$(installs_of "$n" fw-a)" = 1 ] || { once=0; note "$n: $(installs_of "$n" fw-a) installs"; }
done
[ $once = 1 ] && pass "every node was told to install exactly once (across the restart)" || fail "told once"
# a node's committed time never before its told time, none told before its stage began
jq -e '[.nodes[] | select(.committed_time < .told_time)] | length == 0' first.json >/dev/null &&
        pass "no commit before its install was told" || fail "commit times"
all_b=1
for n in "${NODES[@]}"; do [ "$(slot_of "$n")" = B ] || all_b=0; done
[ $all_b = 1 ] && pass "every node boots slot B" || fail "slots after the first rollout"

# ---- 2. failing nodes halt a rollout in their stage ---------------------------------------------
fleet_oc rollout create --id second --bundle fw-b --target all --stages 10,50,100 \
        --success-after 1 --max-failures 1 >create2.out 2>&1 || bail "create 2: $(cat create2.out)"
mapfile -t failing < <(rj second | jq -r '[.nodes[] | select(.stage == 2)] | .[0:2] | .[].node')
for n in "${failing[@]}"; do echo A >"$FLEET_DIR/nodes/$n/fail-slot"; done
note "failing in stage 2 (critical temperature in slot A): ${failing[*]}"
check "second rollout started" fleet_oc rollout start second
check "it halts" wait_for $((T * 4)) state_is second halted
rj second >second.json
jq -e '.current_stage == 2' second.json >/dev/null && pass "halted in stage 2, the failing nodes' stage" ||
        fail "halt stage" "$(jq .current_stage second.json)"
jq -e '.counts.failures == 2 and (.reason | test("2 of .* over the threshold of 1"))' second.json >/dev/null &&
        pass "the reason names the failures and the threshold: $(jq -r .reason second.json)" ||
        fail "halt reason" "$(jq -c '{reason, counts}' second.json)"
slot_b() { [ "$(slot_of "$1")" = B ]; }
for n in "${failing[@]}"; do
        # the rollback is reported before the reboot into the old slot
        jq -e --arg n "$n" '.nodes[] | select(.node == $n) | .state == "rolled-back"' second.json >/dev/null &&
                wait_for "$T" slot_b "$n" || fail "failing node $n" "$(jq -c --arg n "$n" '.nodes[] | select(.node == $n)' second.json) slot $(slot_of "$n")"
done
pass "the failing nodes rolled back to slot B"
# More contacts after the halt, counted (not slept for): every node of stage 3 syncs
# twice more; still none of them is told to install.
stage3=$(rj second | jq -r '.nodes[] | select(.stage == 3) | .node')
syncs_of() { fleet_oc node show "$1" --json | jq .syncs; }
declare -A syncs0
for n in $stage3; do syncs0[$n]=$(syncs_of "$n"); done
synced_twice_more() {
        local n
        for n in $stage3; do [ "$(syncs_of "$n")" -ge $((${syncs0[$n]} + 2)) ] || return 1; done
}
check "every node of stage 3 synced twice more after the halt" wait_for "$T" synced_twice_more
stage3_told=0
for n in $stage3; do
        [ "$(installs_of "$n" fw-b)" = 0 ] || stage3_told=$((stage3_told + 1))
done
[ $stage3_told = 0 ] && pass "no node of stage 3 was told to install after the halt" || fail "stage 3 told" "$stage3_told"
check "a halted rollout cannot be resumed" sh -c "! $FLEET_BIN/orbit-controller --url $FLEET_URL --cacert $FLEET_DIR/keys/server-ca.pem --token-file $FLEET_DIR/keys/token rollout resume second 2>/dev/null"

# ---- 3. abort rolls the updated nodes back ------------------------------------------------------
updated=$(rj second | jq -r '[.nodes[] | select(.state == "committed" or .state == "installing" or .state == "told") | .node] | join(" ")')
note "updated (or updating) nodes of the second rollout: $updated"
[ -n "$updated" ] || fail "no node to roll back"
check "abort" fleet_oc rollout abort second
all_back() {
        rj second >abort.json
        jq -e '[.nodes[] | select(.state == "committed" or .state == "installing" or .state == "told")] | length == 0' abort.json >/dev/null
}
check "every updated node reports rolled-back" wait_for $((T * 4)) all_back
back=1
for n in $updated; do
        # the rollback is reported before the reboot into the old slot
        wait_for "$T" slot_b "$n" || { back=0; note "$n boots $(slot_of "$n")"; }
        [ "$(fleet_oc command list "$n" --json | jq '[.[] | select(.action == "update.rollback")] | length')" -ge 1 ] || back=0
done
[ $back = 1 ] && pass "they were told update.rollback and boot slot B (fw-a) again" || fail "rolled back"

# ---- 4. never again: a node that rolled back from fw-b is skipped --------------------------------
fleet_oc rollout create --id third --bundle fw-b --target all --stages 100 --max-failures 0 >create3.out 2>&1 ||
        fail "create 3" "$(cat create3.out)"
rolled=$(jq '[.nodes[] | select(.state == "rolled-back")] | length' abort.json)
skipped=$(rj third | jq '.counts.skipped')
[ "$skipped" = "$rolled" ] && [ "$rolled" -ge 2 ] && pass "a new rollout of fw-b skips the $rolled nodes that rolled back from it" ||
        fail "skipped" "$skipped skipped, $rolled rolled back"

# ---- 5. a silent canary halts the rollout; auto-revert rolls the committed nodes back ---------
check "the created third rollout is aborted (it holds every node)" fleet_oc rollout abort third
cp images/v2.img images/v4.img
head -c 65536 /dev/urandom | dd of=images/v4.img bs=65536 seek=3 conv=notrunc status=none
# The same security_version as fw-a, to nodes that never committed fw-b (stage 3 of the
# second rollout): their floor is fw-a's, so going back is within the anti-rollback rule.
fleet_bundle fw-c images/v4.img 4.0.0 2 || bail "bundle fw-c"
check "bundle fw-c uploaded" fleet_oc bundle upload images/fw-c.obundle
mapfile -t fresh < <(jq -r '.nodes[] | select(.stage == 3) | .node' second.json)
[ "${#fresh[@]}" -ge 7 ] || bail "too few nodes that never had fw-b: ${fresh[*]}"
for n in "${fresh[@]:0:6}"; do fleet_oc node group "$n" g5 >/dev/null || fail "group $n"; done
late=${fresh[6]}
D=$((T / 2))
fleet_oc rollout create --id fifth --bundle fw-c --target g5 --stages 50,100 --success-after 1 \
        --report-deadline "${D}s" --max-failures 0 --auto-revert >create5.out 2>&1 ||
        bail "create 5: $(cat create5.out)"
rj fifth >fifth0.json
mapfile -t canaries < <(jq -r '.nodes[] | select(.stage == 1) | .node' fifth0.json)
dark=${canaries[0]}
other=$([ "$(slot_of "$dark")" = A ] && echo B || echo A)
echo "$other" >"$FLEET_DIR/nodes/$dark/dark-slot"
note "canaries: ${canaries[*]}; $dark goes dark when it boots slot $other"
# a node put in the group after the create joins at its next sync, in its hash's stage
fleet_oc node group "$late" g5 >/dev/null || fail "group $late"
joined() { rj fifth | jq -e --arg n "$late" '.nodes[] | select(.node == $n)' >/dev/null; }
check "a node that joins the group later joins the rollout" wait_for "$T" joined
rj fifth | jq -e --arg n "$late" '[.events[] | select(.event == "member joined" and (.detail | test($n)))] | length == 1' >/dev/null &&
        pass "its joining is an event of the rollout" || fail "member joined event"
check "fifth rollout started" fleet_oc rollout start fifth
check "the silent canary halts the rollout (report deadline ${D}s)" wait_for $((T * 4)) state_is fifth halted
rj fifth >fifth.json
# The only member that failed on its own is the dark canary. Not .counts.failures: the
# auto-revert may already have rolled members back (each a failure state) by the time
# this snapshot is taken on a loaded machine; the node says those were asked for "by the
# controller" (its signed update.rollback), where an operator's say "by the operator".
jq -e --arg n "$dark" '(.nodes[] | select(.node == $n) | .state == "overdue") and
        ([.nodes[] | select(.state == "overdue" or .state == "failed" or
                (.state == "rolled-back" and ((.reason // "") | test("by the controller") | not)))
          | .node] == [$n])' fifth.json >/dev/null &&
        pass "$dark is overdue, the only failure: $(jq -r --arg n "$dark" '.nodes[] | select(.node == $n) | .reason' fifth.json)" ||
        fail "dark canary state" "$(jq -c '[.nodes[] | {node, state, reason}]' fifth.json)"
jq -e '(.reason | test("auto-revert")) and ([.events[] | select(.event == "auto-revert")] | length == 1)' fifth.json >/dev/null &&
        pass "the status says so: $(jq -r .reason fifth.json)" || fail "auto-revert reason" "$(jq -c '{reason}' fifth.json)"
# every member that committed fw-c is told to roll back, and goes back to its old slot
reverted() {
        rj fifth >fifth2.json
        # the dark canary stays overdue: it never hears its rollback
        jq -e '[.nodes[] | select(.state == "committed" or .state == "installing" or .state == "told")] | length == 0' fifth2.json >/dev/null
}
check "the nodes that got fw-c roll back" wait_for $((T * 4)) reverted
back=0
for n in $(jq -r '.nodes[] | select(.state == "rolled-back") | .node' fifth2.json); do
        [ "$(fleet_oc command list "$n" --json | jq '[.[] | select(.action == "update.rollback")] | length')" -ge 1 ] && back=$((back + 1))
done
[ "$back" -ge 1 ] && pass "$back nodes were told update.rollback by the auto-revert" || fail "auto-revert rollbacks" "$(jq -c '[.nodes[] | {node, state}]' fifth2.json)"
stage2_told=0
for n in $(jq -r '.nodes[] | select(.stage == 2) | .node' fifth2.json); do
        [ "$(installs_of "$n" fw-c)" = 0 ] || stage2_told=$((stage2_told + 1))
done
[ $stage2_told = 0 ] && pass "no node of stage 2 was told to install fw-c" || fail "stage 2 told" "$stage2_told"

has_sanitizer_report "$FLEET_DIR/controller.log" && fail "sanitizer report in the controller log"
for n in "${NODES[@]}"; do
        has_sanitizer_report "$FLEET_DIR/nodes/$n/agent.log" && fail "sanitizer report in $n's log"
done
finish
