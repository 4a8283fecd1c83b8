# Helpers of the deployment tests (test-deployment.sh, test-deployment-fleet.sh): an app
# bundle of the "det" app, its workload spec, and views of a deployment and of a node's
# workloads. Sourced after tests/integration/lib.sh.
# shellcheck shell=bash

# deploy_fleet_setup NAME NODE...: a fleet test (lib.sh's fleet_test_setup, with FLEET_*
# settings of the caller's) whose nodes NODE... run workloads in cgroups orbit-it-NAME-<pid>-<node>,
# removed at exit; its keys and images made, the working directory the fleet's. Skips
# without root, cgroups or the fleet's tools.
deploy_fleet_setup() {
        local name=$1
        shift
        require_fleet_tools
        require_sandboxes
        FLEET_RUNTIME_PREFIX="orbit-it-$name-$$"
        fleet_test_setup
        NODES=("$@")
        trap 'fleet_cleanup; deploy_cleanup_groups' EXIT
        fleet_keys || bail "keys"
        fleet_images fw-unused || bail "images"
}
deploy_cleanup_groups() {
        local n
        for n in "${NODES[@]}"; do cleanup_cgroup_tree "$FLEET_RUNTIME_PREFIX-$n"; done
}

# deploy_app_bundle ID VERSION WORD: images/ID.obundle, a signed bundle of app "det":
# bin/serve runs; bin/probe passes unless WORD is "bad". With DEPLOY_APP_BLOB_KIB, a file
# of that many random KiB too (more chunks: a byte changed after signing lands in one).
deploy_app_bundle() {
        rm -rf src && mkdir -p src/bin
        printf '#!/bin/sh\necho "serving %s"\nexec sleep 100000\n' "$3" >src/bin/serve
        printf '#!/bin/sh\n[ "%s" != bad ]\n' "$3" >src/bin/probe
        chmod 0755 src/bin/serve src/bin/probe
        [ "${DEPLOY_APP_BLOB_KIB:-0}" -gt 0 ] && head -c $((DEPLOY_APP_BLOB_KIB * 1024)) /dev/urandom >src/blob
        tar --format=pax --owner=0 --group=0 -cf "images/$1.tar" -C src . || bail "tar $1"
        printf '{"bundle_id": "%s", "version": "%s", "security_version": 1, "compatible": ["sim-board"]}\n' \
                "$1" "$2" >"images/$1.json"
        "$FLEET_BIN/orbit-bundle" create --manifest-template "images/$1.json" --image "app:det=images/$1.tar" \
                --chunk-size 65536 --key keys/rel.key --cert keys/rel.pem -o "images/$1.obundle" >/dev/null ||
                bail "bundle $1"
}

# deploy_spec VERSION FILE [NAME [EXTRA-JSON]]: workload NAME (det) from app det VERSION, its
# probe checked every second.
deploy_spec() {
        jq -n --arg v "$1" --arg n "${3:-det}" --argjson x "${4:-{\}}" '{name: $n, exec: ["/app/bin/serve"],
                app: {name: "det", version: $v},
                health_probe: {exec: ["/app/bin/probe"], interval_sec: 1, timeout_sec: 5, failures: 2},
                sandbox: {ro_binds: ["/usr", "/bin", "/lib", {source: "/lib64", optional: true}]}} + $x' >"$2"
}

dstatus() { fleet_oc deployment status "$1" --json; }
dstate_is() { [ "$(dstatus "$1" | jq -r .state)" = "$2" ]; }
# dmember DEPLOYMENT NODE FIELD: one member's field (state, stage, reason)
dmember() { dstatus "$1" | jq -r --arg n "$2" --arg f "$3" '.nodes[] | select(.node == $n) | .[$f]'; }

# node_ctl NODE ARGS...: orbitctl on that node's control socket
node_ctl() { local n=$1; shift; "$FLEET_BIN/orbitctl" --socket "$FLEET_DIR/nodes/$n/run/control.sock" "$@"; }
# runs_on NODE VERSION [NAME]: NAME (det) runs on NODE, from app det VERSION, as the node says
runs_on() {
        node_ctl "$1" workload show "${3:-det}" --json 2>/dev/null |
                jq -e --arg v "$2" '.state == "running" and .pid > 0 and .app.version == $v' >/dev/null
}
# wl_field NODE NAME FILTER: a field of the node's view of workload NAME
wl_field() { node_ctl "$1" workload show "$2" --json 2>/dev/null | jq -r "$3"; }

# says NAME PATTERN COMMAND...: pass when COMMAND's output holds PATTERN.
says() {
        local name=$1 pattern=$2 out
        shift 2
        out=$("$@" 2>&1)
        if grep -q -- "$pattern" <<<"$out"; then pass "$name"; else fail "$name" "expected \"$pattern\" in: $out"; fi
}
