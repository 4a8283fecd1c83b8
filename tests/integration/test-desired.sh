# Integration test of the desired state (#19 item 3) with a real orbit-controller and two
# real agents that run workloads (scripts/fleet-lib.sh, FLEET_RUNTIME_PREFIX): the ground
# says what a node runs; the node fetches the app bundle, starts the workload, replaces it
# with the next version, removes what is no longer listed, refuses what cannot be met
# (a tampered artifact, more memory than the node has, a name the node's own workload
# holds) without stopping what runs, converges after a restart between a stop and a start,
# and a node offline through all of it converges when it comes back.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

require_fleet_tools
command -v sqlite3 >/dev/null 2>&1 || skip_all "sqlite3 not installed"
require_sandboxes
FLEET_IMAGE_KIB=256
FLEET_RUNTIME_PREFIX="orbit-it-desired-$$"
fleet_test_setup
trap 'fleet_cleanup; cleanup_cgroup_tree "$FLEET_RUNTIME_PREFIX-d-1"; cleanup_cgroup_tree "$FLEET_RUNTIME_PREFIX-d-2"' EXIT

fleet_keys || bail "keys"
fleet_images fw-unused || bail "images"
# The app: bin/serve says its version in its output and waits.
app_tar() { # OUT VERSION
        rm -rf src && mkdir -p src/bin src/share
        printf '#!/bin/sh\necho "serving %s"\nexec sleep 100000\n' "$2" >src/bin/serve
        chmod 0755 src/bin/serve
        head -c 200000 /dev/urandom >src/share/weights.bin
        tar --format=pax --owner=0 --group=0 -cf "$1" -C src . || bail "tar $1"
}
app_bundle() { # ID VERSION
        app_tar "images/$1.tar" "$2"
        printf '{"bundle_id": "%s", "version": "%s", "security_version": 1, "compatible": ["sim-board"]}\n' \
                "$1" "$2" >"images/$1.json"
        "$FLEET_BIN/orbit-bundle" create --manifest-template "images/$1.json" --image "app:hello=images/$1.tar" \
                --chunk-size 65536 --key keys/rel.key --cert keys/rel.pem -o "images/$1.obundle" >/dev/null ||
                bail "bundle $1"
}
app_bundle hello-1 1.0.0
app_bundle hello-2 1.1.0
app_bundle hello-3 1.2.0
# a bundle of firmware: the desired state must never install one
fleet_bundle fw-2 images/v2.img 2.0.0 || bail "bundle fw-2"

fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
for n in d-1 d-2; do
        fleet_node_make "$n" || bail "node $n"
done
N1=$FLEET_DIR/nodes/d-1
mkdir -p "$N1/etc/workloads.d"
# the node's own workload: the ground never touches it, and may not take its name
printf '{"name": "own", "exec": ["/bin/sleep", "100000"], "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}]}}\n' \
        >"$N1/etc/workloads.d/own.json"
export ORBIT_FAILPOINT_DESIRED_HOLD_FILE=$FLEET_DIR/hold
fleet_node_start d-1
FAIL_CONTEXT_LOG=$N1/agent.log
synced() { [ "$(fleet_oc node list --json | jq '[.[] | select(.id == "d-1" and .last_sync != null)] | length')" = 1 ]; }
check "d-1 in contact" wait_for "$T" synced
for b in hello-1 hello-2 hello-3 fw-2; do
        check "bundle $b uploaded" fleet_oc bundle upload "images/$b.obundle"
done

ctl1() { "$FLEET_BIN/orbitctl" --socket "$N1/run/control.sock" "$@"; }
wl() { ctl1 workload show "$1" --json 2>/dev/null | jq -r "$2"; }
wl_running() { [ "$(wl "$1" .state)" = running ] && [ "$(wl "$1" .pid)" -gt 0 ]; }
# runs_version [SOCKET] NAME VERSION: running, from the member that holds VERSION
runs_version() { wl_running "$1" && [ "$(wl "$1" .app.version)" = "$2" ]; }
same_pid() { [ "$2" -gt 0 ] 2>/dev/null && [ "$(wl "$1" .pid)" = "$2" ]; }
wl_gone() { ! ctl1 workload show "$1" --json >/dev/null 2>&1; }
# the desired state as the controller sees it, and the node's last report
dshow() { fleet_oc desired show "$1" --json; }
reported() { # NODE VERSION REACHED
        dshow "$1" | jq -e --argjson v "$2" --argjson r "$3" \
                '.node_version == $v and .report.version == $v and .report.reached == $r' >/dev/null
}
wl_state_is() { # NODE NAME STATE
        dshow "$1" | jq -e --arg n "$2" --arg s "$3" '.report.workloads[] | select(.name == $n) | .state == $s' >/dev/null
}
spec() { # NAME VERSION [EXTRA-JSON]
        jq -nc --arg n "$1" --arg v "$2" --argjson x "${3:-{\}}" '{name: $n, exec: ["/app/bin/serve"],
                app: {name: "hello", version: $v}, priority: "critical",
                sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}} + $x'
}
plain_spec() { # NAME
        jq -nc --arg n "$1" '{name: $n, exec: ["/bin/sleep", "100000"],
                sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}}'
}
entry() { # NAME VERSION BUNDLE [EXTRA]
        jq -nc --arg n "$1" --arg b "$3" --argjson s "$(spec "$1" "$2" "${4:-{\}}")" '{name: $n, bundle: $b, spec: $s}'
}
desired() { # NODE ENTRY... : the next desired state, from the entries given
        local node=$1
        shift
        printf '%s\n' "$@" | jq -sc '{workloads: .}' >"desired-$node.json"
        fleet_oc desired set "$node" "desired-$node.json"
}
# says NAME PATTERN COMMAND...: the command's output (and error) holds PATTERN
says() {
        local name=$1 pattern=$2 out
        shift 2
        out=$("$@" 2>&1)
        if grep -q -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name" "expected \"$pattern\" in: $out"; fi
}
reason_of() { dshow "$1" | jq -r --arg n "$2" '.report.workloads[] | select(.name == $n) | .reason'; }

# ---- refused by the controller: what a node would refuse is never signed ---------------------------
printf '{"workloads": [{"name": "x", "spec": {"name": "y", "exec": ["/bin/true"]}}]}\n' >bad.json
says "a spec whose name is not its entry's is refused by the controller" "spec.name" \
        fleet_oc desired set d-1 bad.json
printf '{"workloads": [%s]}\n' "$(entry det 9.9.9 hello-2)" >bad.json
says "a bundle of another version than the spec pins is refused" "holds version 1.1.0" \
        fleet_oc desired set d-1 bad.json
printf '{"workloads": [%s]}\n' "$(entry det 1.0.0 nope)" >bad.json
says "a bundle the controller does not have is refused" 'no bundle "nope"' fleet_oc desired set d-1 bad.json
check "nothing was kept: d-1 has no desired state" test "$(dshow d-1 | jq .version)" = 0

# ---- v1: a new workload from an app bundle, and a plain one --------------------------------------
check "v1 set" desired d-1 "$(entry det 1.0.0 hello-1)" "$(jq -nc --argjson s "$(plain_spec side)" '{name: "side", spec: $s}')"
check "d-1 reports v1 reached" wait_for $((T * 3)) reported d-1 1 true
check "det runs" wl_running det
check "side runs" wl_running side
check "det runs hello 1.0.0" runs_version det 1.0.0
check "the app came over the link into member a" test "$(cat "$N1/state/apps/hello/a/version")" = 1.0.0
check "the node's own workload runs, untouched" wl_running own
grepq "desired state v1 accepted" "$N1/agent.log" && pass "the agent logged v1 accepted" || fail "v1 accepted log"

# ---- v2: det replaced by 1.1.0 (the changed chunks only), side removed --------------------------
check "v2 set" desired d-1 "$(entry det 1.1.0 hello-2)"
check "d-1 reports v2 reached" wait_for $((T * 3)) reported d-1 2 true
check "det runs hello 1.1.0" runs_version det 1.1.0
check "side is gone from the node" wl_gone side
check "member a still holds 1.0.0 (the way back)" test "$(cat "$N1/state/apps/hello/a/version")" = 1.0.0
check "the node's own workload still runs" wl_running own
pid2=$(wl det .pid)

# ---- v3: back to 1.0.0: a spec change, no download (member a still holds it) --------------------
check "v3 set (det back to 1.0.0)" desired d-1 "$(entry det 1.0.0 hello-1)"
check "d-1 reports v3 reached" wait_for $((T * 3)) reported d-1 3 true
check "det runs hello 1.0.0 again" runs_version det 1.0.0
check "no download for a version still on the node" test "$(grep -c "installing bundle hello-1" "$N1/agent.log")" = 1
pid3=$(wl det .pid)

# ---- v4: a tampered artifact is refused; det keeps running 1.0.0 -------------------------------
stored=$(find "$FLEET_DIR/controller" -name 'hello-3.obundle' | head -1)
[ -n "$stored" ] || bail "where does the controller keep bundles? $(find "$FLEET_DIR/controller" | head)"
# a byte in the second chunk of the app's image: its hash no longer matches the manifest's
printf 'X' | dd of="$stored" bs=1 seek=70000 conv=notrunc status=none
cmp -s "$stored" images/hello-3.obundle && bail "the stored bundle did not change"
check "v4 set (tampered hello-3)" desired d-1 "$(entry det 1.2.0 hello-3)"
check "d-1 reports det refused in v4" wait_for $((T * 3)) wl_state_is d-1 det refused
check "v4 is not reached" reported d-1 4 false
says "the reason names the refused artifact" "hello-3" reason_of d-1 det
check "det still runs 1.0.0, the same process" same_pid det "$pid3"
check "no member holds 1.2.0" sh -c "! grep -qx 1.2.0 '$N1'/state/apps/hello/*/version"
# the install went over the member nothing ran (b), never the one det runs from (a)
check "member a, which det runs, still holds 1.0.0" test "$(cat "$N1/state/apps/hello/a/version")" = 1.0.0

# ---- v5: more memory than the node has, the node's own name; det unchanged ---------------------
check "v5 set" desired d-1 "$(entry det 1.0.0 hello-1)" \
        "$(entry big 1.0.0 hello-1 '{"resources": {"memory_max": 1099511627776}}')" \
        "$(jq -nc --argjson s "$(plain_spec own)" '{name: "own", spec: $s}')"
check "d-1 reports v5 (not reached)" wait_for $((T * 3)) reported d-1 5 false
check "big refused: not enough memory" wait_for "$T" wl_state_is d-1 big refused
says "its reason says memory" "not enough memory" reason_of d-1 big
# the reason is the same at every look (a record goes up when it changes): no figure of the moment
check "the reason names no figure of the moment" test "$(reason_of d-1 big)" = \
        "not enough memory: its memory_max is 1048576 MiB, more than the node has available"
check "own refused: the node's own name" wl_state_is d-1 own refused
check "det is done, and was not restarted (same spec as v3)" same_pid det "$pid3"
check "the node's own workload still runs" wl_running own

# ---- v6: a restart between the stop of det and the start of its replacement -------------------------
: >"$FLEET_DIR/hold"
check "v6 set (det to 1.1.0 again)" desired d-1 "$(entry det 1.1.0 hello-2)"
check "the reconciler stopped det and holds (failpoint)" wait_for $((T * 3)) grepq "failpoint: the desired state holds after stopping det" "$N1/agent.log"
pid=$(fleet_node_pid d-1)
kill -9 "$pid"
cleanup_cgroup_tree "$FLEET_RUNTIME_PREFIX-d-1" # a power cut takes the workloads too
rm -f "$FLEET_DIR/hold"
fleet_node_start d-1
check "after the restart d-1 reports v6 reached" wait_for $((T * 3)) reported d-1 6 true
check "det runs hello 1.1.0" runs_version det 1.1.0
grepq "desired state: v6 in force" "$N1/agent.log" && pass "the restarted agent verified the kept v6" ||
        fail "v6 kept across the restart" "$(grep 'desired state' "$N1/agent.log" | tail -5)"
check "the node's own workload runs again" wait_for "$T" wl_running own

# ---- v7, v8: det stopped for a replacement (v7) that a newer version refuses (v8): det runs again --
holds() { [ "$(grep -c "failpoint: the desired state holds after stopping det" "$N1/agent.log")" -ge "$1" ]; }
node_has() { [ "$(dshow d-1 | jq .node_version)" = "$1" ]; }
: >"$FLEET_DIR/hold"
check "v7 set (det back to 1.0.0)" desired d-1 "$(entry det 1.0.0 hello-1)"
check "the reconciler stopped det for v7 and holds (failpoint)" wait_for $((T * 3)) holds 2
check "v8 set (det 1.0.0 with more memory than the node has)" desired d-1 \
        "$(entry det 1.0.0 hello-1 '{"resources": {"memory_max": 1099511627776}}')"
check "d-1 took v8 while det is stopped" wait_for $((T * 3)) node_has 8
rm -f "$FLEET_DIR/hold"
v8_refused() { reported d-1 8 false && wl_state_is d-1 det refused; }
check "d-1 reports det refused in v8" wait_for $((T * 3)) v8_refused
check "det, stopped for v7, runs again (hello 1.1.0, its v6 spec)" wait_for "$T" runs_version det 1.1.0
grepq "workload det started again: its replacement was refused" "$N1/agent.log" &&
        pass "the agent logged det started again" || fail "det started again log"

# ---- v9: a spec the runtime refuses (a bind into the agent's state dir, another app's tree) is
# refused before det is stopped: the same process runs on
pid8=$(wl det .pid)
check "v9 set (det binds the node's apps dir)" desired d-1 "$(entry det 1.1.0 hello-2 "$(jq -nc --arg p "$N1/state/apps" \
        '{sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}, $p]}}')")"
v9_refused() { reported d-1 9 false && wl_state_is d-1 det refused; }
check "d-1 reports det refused in v9" wait_for $((T * 3)) v9_refused
says "the reason is the runtime's" "binds never expose" reason_of d-1 det
check "det was never stopped for it: the same process" same_pid det "$pid8"

# ---- v10, v11: a best-effort workload while the board sheds load (admission closed): its
# replacement is not admitted, so it is never stopped for it; it goes ahead when admission opens
raw1() { control_raw "$N1/run/control.sock" "$1"; }
be_entry() { # ARG
        jq -nc --arg a "$1" '{name: "be", spec: {name: "be", exec: ["/bin/sleep", $a], priority: "best-effort",
                sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}}}'
}
check "v10 set (det as in v6, be)" desired d-1 "$(entry det 1.1.0 hello-2)" "$(be_entry 100000)"
check "d-1 reports v10 reached" wait_for $((T * 3)) reported d-1 10 true
pid_be=$(wl be .pid)
raw1 '{"method": "runtime.class", "params": {"priority": "best-effort", "admit": false}}' | jq -e .ok >/dev/null ||
        fail "best-effort admission closed"
check "v11 set (be's spec changes)" desired d-1 "$(entry det 1.1.0 hello-2)" "$(be_entry 100001)"
v11_refused() { reported d-1 11 false && wl_state_is d-1 be refused; }
check "d-1 reports be refused in v11 (not admitted)" wait_for $((T * 3)) v11_refused
says "the reason is the admission's" "not admitted" reason_of d-1 be
check "be was never stopped for it: the same process" same_pid be "$pid_be"
raw1 '{"method": "runtime.class", "params": {"priority": "best-effort", "admit": true}}' | jq -e .ok >/dev/null ||
        fail "best-effort admission open"
check "admission open: d-1 reports v11 reached" wait_for $((T * 3)) reported d-1 11 true
be_replaced() { wl_running be && ! same_pid be "$pid_be"; }
check "be runs again, replaced (another process)" wait_for "$T" be_replaced

# ---- d-2: offline through it all, converges when it comes back ------------------------------------
check "d-2's desired state set while it has never synced" desired d-2 "$(entry det 1.1.0 hello-2)"
fleet_node_start d-2
N2=$FLEET_DIR/nodes/d-2
check "d-2 reports v1 reached" wait_for $((T * 3)) reported d-2 1 true
ctl2() { "$FLEET_BIN/orbitctl" --socket "$N2/run/control.sock" "$@"; }
runs2() { ctl2 workload show det --json | jq -e --arg v "$1" '.state == "running" and .pid > 0 and .app.version == $v' >/dev/null; }
check "d-2 runs det 1.1.0" runs2 1.1.0

# ---- the controller's record of what d-2 has goes back (a restored database): d-2 says it again
# (its compact syncs said it only when it changed: the controller sent v1 at every sync)
sqlite3 "$FLEET_DIR/controller/controller.db" "UPDATE nodes SET desired_version = 0 WHERE id = 'd-2'" ||
        bail "sqlite3"
node2_has() { [ "$(dshow d-2 | jq .node_version)" = "$1" ]; }
check "d-2 says again that it has v1" wait_for $((T * 3)) node2_has 1

# ---- a firmware bundle is never installed for a desired state --------------------------------------
# (the controller checks the version against the spec; a release manager could still name a
# firmware bundle of the same version: the node refuses it before writing)
fleet_bundle fw-3 images/v2.img 1.0.0 || bail "bundle fw-3"
check "bundle fw-3 uploaded" fleet_oc bundle upload images/fw-3.obundle
check "d-2 v2 names the firmware bundle for its app" desired d-2 "$(entry det 1.0.0 fw-3)"
check "d-2 refuses det in v2" wait_for $((T * 3)) wl_state_is d-2 det refused
says "the reason: an install for the desired state takes app:hello only" "takes app:hello only" reason_of d-2 det
check "d-2's rootfs slot b was not written" test ! -s "$N2/slots/b"
check "d-2 still runs det 1.1.0" runs2 1.1.0

# stopped as an operator stops them, so a leak at exit shows in the logs
fleet_stop_all
for n in d-1 d-2; do
        if has_sanitizer_report "$FLEET_DIR/nodes/$n/agent.log"; then fail "sanitizer report in $n's log"; fi
done
if has_sanitizer_report "$FLEET_DIR/controller.log"; then fail "sanitizer report in the controller's log"; fi
finish
