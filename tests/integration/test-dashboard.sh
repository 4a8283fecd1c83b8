# Integration test of the ground's operations views: GET /metrics checked by promtool, the
# viewer and operator roles, and the dashboard in a real headless Chromium driven over
# WebDriver (tests/integration/dashboard-check.py): a real orbit-controller and three real
# agents (scripts/fleet-lib.sh) with a battery and fast health reports, a rollout whose
# abort, clicked on the page, reaches the nodes. ORBIT_SCREENSHOT_DIR=DIR keeps the
# screenshots of the pages there (docs/ holds the ones made that way).
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq setsid curl python3 promtool chromedriver; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
[ -n "$CHROMIUM" ] || skip_all "chromium not installed"
FLEET_REPORT_SEC=2
fleet_test_setup

fleet_keys || bail "keys"
# keys/token is the fleet's release manager's (it uploads and starts); the page is driven by a
# viewer and by an operator, who steers a rollout under way
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >keys/viewer-token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >keys/operator-token
FLEET_CONTROLLER_ARGS="--viewer-token-file $FLEET_DIR/keys/viewer-token --operator-token-file $FLEET_DIR/keys/operator-token --web-dir $top_srcdir/controller/web"
fleet_images fw-a || bail "images"
fleet_start_controller || bail "the controller did not start"
track_pid "$FLEET_CONTROLLER_PID"
fleet_write_starter
NODES=(dash-1 dash-2 dash-3)
for n in "${NODES[@]}"; do
        fleet_node_make "$n" || bail "node $n"
        B=$FLEET_DIR/nodes/$n/sys/class/power_supply/BAT0
        mkdir -p "$B" && echo Battery >"$B/type" && echo Discharging >"$B/status" &&
                echo $((60 + ${n#dash-} * 10)) >"$B/capacity" || bail "battery of $n"
        fleet_node_start "$n"
done
synced() { [ "$(fleet_oc node list --json | jq '[.[] | select(.last_sync != null)] | length')" = 3 ]; }
check "the three nodes are in contact" wait_for "$T" synced
check "bundle fw-a uploaded" fleet_oc bundle upload images/fw-a.obundle

C=(--cacert "$FLEET_DIR/keys/server-ca.pem" -s -o /dev/null -w '%{http_code}')
viewer=(-H "Authorization: Bearer $(cat keys/viewer-token)")
[ "$(curl "${C[@]}" "$FLEET_URL/ui/")" = 200 ] && pass "the dashboard's page needs no credentials" || fail "GET /ui/"
[ "$(curl "${C[@]}" "$FLEET_URL/ui/app.js")" = 200 ] && pass "nor its script" || fail "GET /ui/app.js"
[ "$(curl "${C[@]}" "$FLEET_URL/ui/..%2fserver.c")" = 404 ] && pass "no file outside the web directory" || fail "path escape"
[ "$(curl "${C[@]}" "$FLEET_URL/v1/nodes")" = 401 ] && pass "the API does (401 without)" || fail "GET /v1/nodes without a token"
[ "$(curl "${C[@]}" "${viewer[@]}" "$FLEET_URL/v1/nodes")" = 200 ] && pass "a viewer reads nodes" || fail "viewer GET"
[ "$(curl "${C[@]}" "${viewer[@]}" -X POST -d '{"action":"status.send"}' "$FLEET_URL/v1/nodes/dash-1/commands")" = 403 ] &&
        pass "a viewer cannot queue a command (403)" || fail "viewer POST"

# A rollout that stays running once every node committed (success after 1000 passes).
fleet_oc rollout create --id watch --bundle fw-a --target all --stages 100 --success-after 1000 \
        --max-failures 0 >create.out 2>&1 || bail "create: $(cat create.out)"
[ "$(curl "${C[@]}" "${viewer[@]}" -X POST "$FLEET_URL/v1/rollouts/watch/start")" = 403 ] &&
        pass "a viewer cannot start a rollout (403)" || fail "viewer start"
check "rollout started by the operator" fleet_oc rollout start watch
all_committed() { [ "$(fleet_oc rollout status watch --json | jq .counts.committed)" = 3 ]; }
check "every node commits fw-a" wait_for $((T * 3)) all_committed
reports() { [ "$(fleet_oc records dash-1 --kind health.report --json | jq length)" -ge 3 ]; }
check "dash-1 has sent three health reports" wait_for "$T" reports

# ---- metrics ----
curl --cacert keys/server-ca.pem -sf "${viewer[@]}" "$FLEET_URL/metrics" >metrics.txt
[ -s metrics.txt ] && pass "GET /metrics answers a viewer" || fail "GET /metrics"
if promtool check metrics <metrics.txt >promtool.out 2>&1; then
        pass "promtool check metrics accepts it"
else
        fail "promtool check metrics" "$(head -5 promtool.out)"
fi
for want in 'orbit_nodes{state="online"} 3' 'orbit_rollouts{state="running"} 1' \
        'orbit_rollout_nodes{rollout="watch",state="committed"} 3' \
        'orbit_node_battery_capacity_percent{node="dash-2"} 80' \
        'orbit_node_health_level{node="dash-3"} 0' 'orbit_commands{state="done"} 3'; do
        grep -qxF "$want" metrics.txt && pass "metrics: $want" || fail "metrics: $want" "$(grep "${want%% *}" metrics.txt | head -3)"
done
grep -qE '^orbit_node_temperature_celsius\{node="dash-1",sensor="zone\.[^"]+"\} 45$' metrics.txt &&
        pass "metrics: dash-1's thermal zone at 45 degrees" ||
        fail "metrics: temperature" "$(grep orbit_node_temperature metrics.txt | head -3)"
for family in orbit_node_last_seen_age_seconds orbit_controller_syncs_total \
        orbit_controller_sync_received_bytes_total orbit_controller_sync_sent_bytes_total \
        orbit_records orbit_record_lag_seconds_max orbit_node_cpu_busy_percent \
        orbit_node_memory_available_mib orbit_rollout_stage; do
        grep -q "^$family[{ ]" metrics.txt && pass "metrics: $family" || fail "metrics: $family missing"
done
syncs_before=$(awk '$1 == "orbit_controller_syncs_total" {print $2}' metrics.txt)
more_syncs() {
        curl --cacert keys/server-ca.pem -sf "${viewer[@]}" "$FLEET_URL/metrics" >metrics2.txt &&
                [ "$(awk '$1 == "orbit_controller_syncs_total" {print $2}' metrics2.txt)" -gt "$syncs_before" ]
}
check "the sync counter grows" wait_for "$T" more_syncs

# ---- the browser ----
shots=${ORBIT_SCREENSHOT_DIR:-$FLEET_DIR/shots}
mkdir -p "$shots" chromium-tmp
python3 "$top_srcdir/tests/integration/dashboard-check.py" --url "$FLEET_URL" \
        --cacert keys/server-ca.pem --viewer-token-file keys/viewer-token \
        --operator-token-file keys/operator-token --node dash-1 --rollout watch \
        --chromedriver "$(command -v chromedriver)" --chromium "$CHROMIUM" \
        --tmp "$FLEET_DIR/chromium-tmp" --out-dir "$shots" --timeout "$T" >browser.out 2>browser.err
rc=$?
while IFS= read -r line; do
        case "$line" in
        "ok - "*) pass "${line#ok - }" ;;
        "not ok - "*) fail "${line#not ok - }" ;;
        esac
done <browser.out
[ $rc = 0 ] || fail "dashboard-check.py exited $rc" "$(tail -5 browser.err)"
[ "$(grep -c '^ok - ' browser.out)" -ge 12 ] && pass "every browser check ran" ||
        fail "browser checks missing" "$(tail -5 browser.err)"
for p in fleet node rollout; do
        [ -s "$shots/dashboard-$p.png" ] && pass "screenshot of the $p page" || fail "screenshot $p"
done

has_sanitizer_report "$FLEET_DIR/controller.log" && fail "sanitizer report in the controller log"
finish
