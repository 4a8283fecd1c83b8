# Integration test of app bundles over the link (#19 item 1): a real orbit-controller and
# 6 simulated nodes (scripts/fleet-lib.sh). An app bundle is uploaded and rolled out like
# firmware: every node fetches it by Range from the controller, unpacks it into its app
# slot and commits without a reboot; the next version comes over the link as the changed
# chunks only, into the other member, the first one kept.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

require_fleet_tools
FLEET_IMAGE_KIB=256
fleet_test_setup

fleet_keys || bail "keys"
fleet_images fw-unused || bail "images"
# An app of 16 chunks of 64 KiB: a program and its weights. v2 changes the program only.
mkdir -p app/bin app/share
printf '#!/bin/sh\necho v1\n' >app/bin/serve
chmod 755 app/bin/serve
head -c $((15 * 65536)) /dev/urandom >app/share/weights.bin
tar --format=pax --owner=0 --group=0 --mtime=@0 -cf images/app-1.tar -C app . || bail "tar 1"
printf '#!/bin/sh\necho v2\n' >app/bin/serve
tar --format=pax --owner=0 --group=0 --mtime=@0 -cf images/app-2.tar -C app . || bail "tar 2"
app_bundle() { # ID VERSION TAR
        printf '{"bundle_id": "%s", "version": "%s", "security_version": 1, "compatible": ["sim-board"]}\n' \
                "$1" "$2" >"images/$1.json"
        "$FLEET_BIN/orbit-bundle" create --manifest-template "images/$1.json" --image "app:hello=$3" \
                --chunk-size 65536 --key keys/rel.key --cert keys/rel.pem -o "images/$1.obundle" >/dev/null
}
app_bundle hello-1 1.0.0 images/app-1.tar || bail "bundle hello-1"
app_bundle hello-2 1.1.0 images/app-2.tar || bail "bundle hello-2"
chunks=$(( ($(stat -c %s images/app-2.tar) + 65535) / 65536 ))

fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
NODES=(app-1 app-2 app-3 app-4 app-5 app-6)
for n in "${NODES[@]}"; do
        fleet_node_make "$n" || bail "node $n"
        fleet_node_start "$n"
done
synced() { [ "$(fleet_oc node list --json | jq '[.[] | select(.last_sync != null)] | length')" = 6 ]; }
check "all 6 nodes in contact" wait_for "$T" synced
check "app bundle hello-1 uploaded" fleet_oc bundle upload images/hello-1.obundle
check "app bundle hello-2 uploaded" fleet_oc bundle upload images/hello-2.obundle

rstate() { fleet_oc rollout status "$1" --json | jq -r .state; }
state_is() { [ "$(rstate "$1")" = "$2" ]; }
all_hold() { # VERSION MEMBER
        local n
        for n in "${NODES[@]}"; do
                [ "$(cat "$FLEET_DIR/nodes/$n/state/apps/hello/$2/version" 2>/dev/null)" = "$1" ] || return 1
                [ "$(readlink "$FLEET_DIR/nodes/$n/state/apps/hello/current")" = "$2" ] || return 1
        done
}

# ---- hello-1: a rollout of an app, no reboot ------------------------------------------------
fleet_oc rollout create --id app-one --bundle hello-1 --target all --stages 50,100 --success-after 1 \
        --max-failures 0 >create.out 2>&1 || bail "create: $(cat create.out)"
check "app-one started" fleet_oc rollout start app-one
check "app-one completes" wait_for $((T * 4)) state_is app-one completed
check "every node holds hello 1.0.0 in member a, current" all_hold 1.0.0 a
check "the tree is unpacked on each node" cmp -s "$FLEET_DIR/nodes/app-3/state/apps/hello/a/root/bin/serve" <(printf '#!/bin/sh\necho v1\n')
rebooted=$(cat "$FLEET_DIR"/nodes/*/reboot.log 2>/dev/null | wc -l)
[ "$rebooted" = 0 ] && pass "no node rebooted for an app" || fail "reboots for an app" "$rebooted"
# the whole image from the bundle: nothing on the node to take chunks from
grepq "app:hello into slot A: verified; $chunks chunks: 0 resumed, 0 from the active slot, $chunks from the bundle" \
        "$FLEET_DIR/nodes/app-1/agent.log" && pass "hello-1: the whole app came over the link" ||
        fail "hello-1 transfer" "$(grep 'into slot' "$FLEET_DIR/nodes/app-1/agent.log")"

# ---- hello-2: the changed chunk only, into member b -----------------------------------------
fleet_oc rollout create --id app-two --bundle hello-2 --target all --stages 100 --success-after 1 \
        --max-failures 0 >create.out 2>&1 || bail "create: $(cat create.out)"
check "app-two started" fleet_oc rollout start app-two
check "app-two completes" wait_for $((T * 4)) state_is app-two completed
check "every node holds hello 1.1.0 in member b, current" all_hold 1.1.0 b
check "member a still holds 1.0.0 (the way back, no download)" test "$(cat "$FLEET_DIR/nodes/app-6/state/apps/hello/a/version")" = 1.0.0
for n in "${NODES[@]}"; do
        line=$(grep "app:hello into slot B: verified" "$FLEET_DIR/nodes/$n/agent.log")
        from_bundle=$(sed -n 's/.* from the active slot, \([0-9]*\) from the bundle.*/\1/p' <<<"$line")
        if [ -z "$from_bundle" ] || [ "$from_bundle" -gt 2 ]; then
                fail "$n: hello-2 took only the changed chunks" "$line"
                continue
        fi
        pass "$n: hello-2 took $from_bundle of $chunks chunks over the link"
done

for n in "${NODES[@]}"; do
        if has_sanitizer_report "$FLEET_DIR/nodes/$n/agent.log"; then fail "sanitizer report in $n's log"; fi
done
finish
