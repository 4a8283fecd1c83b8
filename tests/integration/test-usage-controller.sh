# Integration test of usage metering on the controller (#19 item 5): usage.report records
# synced over mutual TLS by two nodes (curl stands in for the agents), each interval counted
# once under any record key and across a restart, a body that does not parse kept as a record
# and counted as refused, a tenant only on the controller's knowledge (a deployment it knows
# with the node as a member; a node's claim for any other entry shown apart, never in the
# tenant's total), and the sums through
# GET /v1/usage, `orbit-controller usage` and /metrics. Loopback only; no agent, no root.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

OC=$top_builddir/orbit-controller
OB=$top_builddir/orbit-bundle
for b in "$OC" "$OB"; do
        [ -x "$b" ] || bail "$b is missing: build it first"
done
for t in openssl curl jq tar; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed (scripts/deps.sh test)"
done

setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# ---- keys, certificates, tokens, an app bundle ------------------------------------------------
ground_pki node-1 node-2 || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >release-token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >viewer-token
mkdir -p bundle-keyring
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null &&
        "$OB" keygen --ca --subject "CN=release CA" --key rel-ca.key --cert rel-ca.pem >/dev/null &&
        "$OB" keygen --role release --subject "CN=release signer" --issuer-key rel-ca.key --issuer-cert rel-ca.pem \
                --key rel.key --cert rel.pem >/dev/null || bail "orbit-bundle keygen failed"
cp rel-ca.pem bundle-keyring/
mkdir -p app/bin && printf '#!/bin/sh\nexec sleep 1000\n' >app/bin/serve && chmod 0755 app/bin/serve
tar --format=pax --owner=0 --group=0 -cf det.tar -C app . || bail "tar"
printf '{"bundle_id": "det-1.0", "version": "1.0.0", "security_version": 1, "compatible": ["sim-board"]}\n' >det.json
"$OB" create --manifest-template det.json --image app:det=det.tar --chunk-size 65536 --key rel.key --cert rel.pem \
        -o det.obundle >/dev/null || bail "orbit-bundle create failed"
pass "certificates, tokens, keys and an app bundle made"

# ---- the controller -------------------------------------------------------------------------
LOG=$D/controller.log
FAIL_CONTEXT_LOG=$LOG
PID=""
start_controller() {
        rm -f port
        "$OC" serve --listen 127.0.0.1:0 --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem \
                --release-token-file release-token --viewer-token-file viewer-token --command-key cmd.key \
                --command-cert cmd.pem --bundle-keyring bundle-keyring --poll-interval 90 --timeout 10 \
                >>"$LOG" 2>&1 &
        PID=$!
        track_pid "$PID"
        wait_for "$ORBIT_TEST_TIMEOUT" test -s "$D/port" || bail "the controller did not start: $(tail -5 "$LOG")"
        URL=https://127.0.0.1:$(cat "$D/port")
}
stop_controller() {
        kill -TERM "$PID"
        wait_exit "$PID" "$ORBIT_TEST_TIMEOUT" && [ "$WAIT_RC" -eq 0 ] ||
                fail "SIGTERM stops the controller cleanly" "exit $WAIT_RC"
}
start_controller
pass "controller listening on ${URL#https://}"

CURL=(curl -sS --max-time 20 --cacert server-ca.pem -o "$D/body" -w '%{http_code}')
as_node() { local who=$1; shift; "${CURL[@]}" --cert "$who.pem" --key "$who.key" "$@"; }
as_viewer() { "${CURL[@]}" -H "Authorization: Bearer $(cat viewer-token)" "$@"; }
relcli() { "$OC" --url "$URL" --cacert server-ca.pem --token-file release-token "$@"; }
viewcli() { "$OC" --url "$URL" --cacert server-ca.pem --token-file viewer-token "$@"; }

BOOT=0123456789abcdef0123456789abcdef
METER1=11111111111111111111111111111111
METER2=22222222222222222222222222222222
record() { # NODE SEQ BODY: a usage.report record, critical as the node sends it
        printf '{"format":1,"key":{"node":"%s","boot_epoch":3,"boot_id":"%s","seq":%s},"priority":"critical","kind":"usage.report","time_usec":%s000000,"monotonic_usec":%s,"body":%s}' \
                "$1" "$BOOT" "$2" "$(date +%s)" "$2" "$3"
}
sync_node() { # NODE RECORDS...: one sync; HTTP code on stdout, the answer in $D/body
        local node=$1 recs
        shift
        recs=$(IFS=,; echo "$*")
        printf '{"format":1,"node":"%s","boot_epoch":3,"boot_id":"%s","last_command_seq":0,"records":[%s]}' \
                "$node" "$BOOT" "$recs" >"sync-$node.json"
        as_node "$node" -X POST --data-binary @"sync-$node.json" "$URL/v1/nodes/$node/sync"
}
interval() { # METER N ENTRIES
        printf '{"meter":"%s","interval":%s,"start":1764930000,"end":1764930300,"duration_sec":300.0,"board_energy_j":4500.0,"entries":[%s]}' \
                "$1" "$2" "$3"
}

# ---- a deployment whose spec names its tenant -----------------------------------------------
[ "$(sync_node node-1)" = 200 ] && [ "$(sync_node node-2)" = 200 ] || bail "first syncs: $(cat body)"
relcli bundle upload det.obundle >out 2>&1 || bail "bundle upload: $(cat out)"
jq -n '{name: "det", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"}, tenant: "globex"}' >det-spec.json
# one stage: both nodes told at once (a member still pending, never told, is billed nothing)
relcli deployment create --id det-prod --bundle det-1.0 --spec det-spec.json --target all --stages 100 >out 2>&1 &&
        pass "deployment det-prod (spec tenant globex) created" || fail "deployment create" "$(cat out)"
# cam-n2: tenant acme, node-2 its only member
relcli node group node-2 only-n2 >out 2>&1 || bail "node group: $(cat out)"
jq -n '{name: "cam", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"}, tenant: "acme"}' >cam-spec.json
relcli deployment create --id cam-n2 --bundle det-1.0 --spec cam-spec.json --target only-n2 --stages 100 >out 2>&1 &&
        pass "deployment cam-n2 (spec tenant acme) of node-2 only created" || fail "deployment cam-n2" "$(cat out)"
jq -n '{name: "det", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"}, tenant: "bad tenant!"}' >bad-spec.json
relcli deployment create --id det-bad --bundle det-1.0 --spec bad-spec.json --target all >out 2>&1
grepq 'spec.tenant: expected a tenant name' out && pass "a deployment whose tenant is no name is refused" ||
        fail "a bad spec tenant refused" "$(cat out)"

# ---- usage records ------------------------------------------------------------------------
I1=$(interval $METER1 1 '{"workload":"det","tenant":"acme","deployment":"det-prod","app":"det","cpu_sec":10.0,"memory_byte_sec":3865470566400,"energy_j":3600.0,"link_bytes":0},{"workload":"loc","tenant":"acme","cpu_sec":5.0},{"app":"det","link_bytes":1000},{"workload":"cam","tenant":"acme","deployment":"cam-n2","cpu_sec":3.0},{"workload":"ghost","tenant":"acme","deployment":"no-such","cpu_sec":1.0}')
# (node-1's loc is its own workload it says is acme's; cam names cam-n2, a deployment of
# node-2 only; ghost a deployment no one made: acme is only node-1's word for the three)
# report 2 of meter 1: the totals since the meter began (det's CPU grew by 2.5 s)
I2=$(interval $METER1 2 '{"workload":"det","tenant":"acme","deployment":"det-prod","app":"det","cpu_sec":12.5,"memory_byte_sec":3865470566400,"energy_j":3600.0,"link_bytes":0},{"workload":"loc","tenant":"acme","cpu_sec":5.0},{"app":"det","link_bytes":1000}')
BAD=$(interval $METER1 3 '{"workload":"det","cpu_sec":-1}')
N2=$(interval $METER2 1 '{"workload":"det","deployment":"det-prod","cpu_sec":7.0,"energy_j":1800.0}')
# report 1 under seq 1 and again under seq 2 (sent again under another key), report 2, and a
# body that does not parse
code=$(sync_node node-1 "$(record node-1 1 "$I1")" "$(record node-1 2 "$I1")" "$(record node-1 3 "$I2")" \
        "$(record node-1 4 "$BAD")")
[ "$code" = 200 ] && [ "$(jq -c '.acked[0].seq' body)" = "[1,2,3,4]" ] &&
        pass "node-1's usage records acked, the refused one too" || fail "node-1 usage sync" "HTTP $code $(cat body)"
cp sync-node-1.json sync-node-1-first.json
[ "$(sync_node node-2 "$(record node-2 1 "$N2")")" = 200 ] || fail "node-2 usage sync" "$(cat body)"
[ "$(as_node node-1 -X POST --data-binary @sync-node-1-first.json "$URL/v1/nodes/node-1/sync")" = 200 ] ||
        fail "node-1's sync again (its ack lost)" "$(cat body)"

grepq 'node node-1: usage record (boot 3 0123456789abcdef0123456789abcdef, seq 4) is stored but counts nothing: usage.report: entries\[0\].cpu_sec' "$LOG" &&
        pass "the refused body is logged naming node, record and where" || fail "refusal logged" "$(grep usage "$LOG" | tail -3)"
grepq 'node node-1: usage report 1 of meter 1111.* came again (boot 3 .*, seq 2): kept once' "$LOG" &&
        pass "the report sent again under another key is logged as kept once" || fail "duplicate logged"
[ "$(as_viewer "$URL/v1/nodes/node-1/records?kind=usage.report")" = 200 ] &&
        [ "$(jq '.records | length' body)" = 4 ] && pass "all 4 usage records are kept as records" ||
        fail "records kept" "$(cat body)"

# ---- the sums -------------------------------------------------------------------------------
code=$(as_viewer "$URL/v1/usage?by=tenant")
[ "$code" = 200 ] || fail "GET /v1/usage as a viewer" "HTTP $code $(cat body)"
cp body by-tenant.json
jq -e '.by == "tenant" and (.usage | length) == 3' by-tenant.json >/dev/null &&
        pass "GET /v1/usage?by=tenant: a viewer reads 3 rows" || fail "by tenant" "$(cat by-tenant.json)"
jq -e '[.usage[] | select(.tenant == "acme")] | length == 0' by-tenant.json >/dev/null &&
        pass "acme is billed nothing: node-1's claims for it are not the controller's knowledge" ||
        fail "no acme row" "$(jq -c '.usage' by-tenant.json)"
# globex: det on node-1 (12.5, its latest report) and on node-2 (7): the deployment's word,
# not "acme" (node-1's) nor none (node-2's)
jq -e '.usage[] | select(.tenant == "globex") | .cpu_sec == 19.5 and .meters == 2 and .nodes == 2 and
       .energy_j == 5400 and .energy_wh == 1.5 and .memory_gib_hours == 1' by-tenant.json >/dev/null &&
        pass "globex: 19.5 CPU s, 1 GiB-hour, 1.5 Wh from 2 meters of 2 nodes (the deployment's tenant)" ||
        fail "globex row" "$(jq -c '.usage' by-tenant.json)"
jq -e '.usage[] | select(.tenant == null and .claimed_tenant == "acme") | .cpu_sec == 9 and .entries == 3 and
       .meters == 1 and .nodes == 1' by-tenant.json >/dev/null &&
        pass "claimed acme, unverified: node-1's loc, cam (cam-n2 is not on node-1) and ghost (no such deployment): 9 CPU s" ||
        fail "unverified acme row" "$(jq -c '.usage' by-tenant.json)"
jq -e '.usage[] | select(.tenant == null and .claimed_tenant == null) | .link_bytes == 1000 and .cpu_sec == 0' by-tenant.json >/dev/null &&
        pass "no tenant: the app's download (1000 bytes)" || fail "no-tenant row" "$(jq -c '.usage' by-tenant.json)"
[ "$(as_viewer "$URL/v1/usage?by=workload&node=node-1")" = 200 ] &&
        jq -e '[.usage[] | .workload] == ["app:det", "cam", "det", "ghost", "loc"]' body >/dev/null &&
        pass "by workload on node-1: app:det, cam, det, ghost, loc" || fail "by workload" "$(cat body)"
[ "$(as_viewer "$URL/v1/usage?by=tenant&tenant=acme")" = 200 ] && jq -e '.usage == []' body >/dev/null &&
        pass "?tenant=acme: nothing (claims are never a tenant's)" || fail "tenant=acme" "$(cat body)"
[ "$(as_viewer "$URL/v1/usage?by=deployment&deployment=cam-n2")" = 200 ] &&
        jq -e '.usage[0].cpu_sec == 3 and (.usage | length) == 1' body >/dev/null &&
        pass "?deployment=cam-n2: node-1's claim is still seen by deployment (3 CPU s)" || fail "cam-n2" "$(cat body)"
grepq 'node node-1: usage of cam.* is billed to no tenant (deployment-not-on-node), not to acme as the node says' "$LOG" &&
        grepq 'node node-1: usage of ghost.* is billed to no tenant (unknown-deployment), not to acme' "$LOG" &&
        grepq 'node node-1: usage of loc.* is billed to no tenant (unverified-node-claim), not to acme' "$LOG" &&
        pass "each claim not believed is logged with why" || fail "claims logged" "$(grep 'billed to' "$LOG" | head)"
[ "$(as_viewer "$URL/v1/usage?by=app")" = 400 ] && grepq 'by: expected tenant, deployment, node or workload' body &&
        pass "a bad ?by= is refused (400)" || fail "bad by" "$(cat body)"
[ "$("${CURL[@]}" "$URL/v1/usage")" = 401 ] && pass "no credential: 401" || fail "usage without credential" "$(cat body)"
[ "$(as_node node-1 "$URL/v1/usage")" = 403 ] && pass "a node certificate cannot read usage" ||
        fail "usage as a node" "$(cat body)"

viewcli usage >table.txt 2>&1 || fail "orbit-controller usage" "$(cat table.txt)"
grepq '^TENANT ' table.txt && grepq '^globex  *19.50  *1.00  *1.50  *0  *2  *2$' table.txt &&
        grepq '^(none)  .* 1000 ' table.txt && grepq '^(unverified: acme)  *9.00 ' table.txt &&
        grepq '^total  *28.50 ' table.txt &&
        pass "orbit-controller usage: a table by tenant, the unverified claim on a row of its own" ||
        fail "usage table" "$(cat table.txt)"
viewcli usage --by deployment --tenant globex --json >dep.json 2>&1 &&
        jq -e 'length == 1 and .[0].deployment == "det-prod" and .[0].cpu_sec == 19.5' dep.json >/dev/null &&
        pass "usage --by deployment --tenant globex --json: det-prod" || fail "usage by deployment" "$(cat dep.json)"
viewcli usage --by node --since 1h --json >nodes.json 2>&1 &&
        jq -e '[.[] | .node] == ["node-1", "node-2"]' nodes.json >/dev/null &&
        pass "usage --by node --since 1h: both nodes" || fail "usage by node" "$(cat nodes.json)"
viewcli usage --until 2000-01-01T00:00:00Z >old.txt 2>&1 && grepq 'no usage counted for this selection' old.txt &&
        pass "usage --until 2000: nothing" || fail "usage until" "$(cat old.txt)"
viewcli usage --by tenant --tenant 'a b' >err.txt 2>&1
[ $? = 2 ] && grepq 'tenant: expected' err.txt && pass "usage --tenant 'a b' refused (exit 2)" ||
        fail "bad --tenant" "$(cat err.txt)"

code=$(as_viewer "$URL/metrics")
[ "$code" = 200 ] && grepq '^orbit_usage_records_total{node="node-1",result="counted"} 2$' body &&
        grepq '^orbit_usage_records_total{node="node-1",result="refused"} 1$' body &&
        grepq '^orbit_usage_records_total{node="node-2",result="counted"} 1$' body &&
        pass "/metrics: orbit_usage_records_total counted 2 and refused 1 for node-1, 1 for node-2" ||
        fail "usage metrics" "$(grep usage body)"
if command -v promtool >/dev/null 2>&1; then
        promtool check metrics <body >promtool.out 2>&1 && pass "promtool check metrics: the exposition is valid" ||
                fail "promtool check metrics" "$(head -5 promtool.out)"
fi

# ---- kept through a restart; an interval sent once more under a new key ---------------------
stop_controller
start_controller
[ "$(sync_node node-1 "$(record node-1 9 "$I1")")" = 200 ] || fail "sync after restart" "$(cat body)"
[ "$(as_viewer "$URL/v1/usage?by=tenant&tenant=globex")" = 200 ] &&
        jq -e '.usage[0].cpu_sec == 19.5 and .usage[0].meters == 2' body >/dev/null &&
        pass "after a restart and report 1 again under seq 9: globex still 19.5 CPU s" ||
        fail "sums after restart" "$(cat body)"

stop_controller
has_sanitizer_report "$LOG" && fail "no sanitizer report" "$(grep -A5 -E 'ERROR: AddressSanitizer|runtime error' "$LOG" | head -20)" ||
        pass "no sanitizer report in the controller log"
finish
