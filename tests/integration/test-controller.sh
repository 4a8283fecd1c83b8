# Integration test of orbit-controller: mutual TLS (right node, wrong CN, no certificate,
# another CA), idempotent syncs, signed commands verified as the agent will, command seqs
# across restarts, bundle upload and Range downloads, body limits, the operator CLI.
# Loopback only; certificates made with openssl at test time.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

OC=$top_builddir/orbit-controller
OB=$top_builddir/orbit-bundle
VERIFY=$top_builddir/tests/integration/command-verify
for b in "$OC" "$OB" "$VERIFY"; do
        [ -x "$b" ] || bail "$b is missing: build it first"
done
for t in openssl curl jq tar; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed (scripts/deps.sh test)"
done

setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# ---- certificates -------------------------------------------------------------------------
CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" && mkca rogue-ca "/CN=rogue CA" &&
        mkca op-ca "/CN=operator CA" &&
        mkcert server 127.0.0.1 server-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1' &&
        mkcert node-1 node-1 node-ca "$CLIENT_EXT" && mkcert node-2 node-2 node-ca "$CLIENT_EXT" &&
        mkcert rogue-1 node-1 rogue-ca "$CLIENT_EXT" && mkcert operator alice op-ca "$CLIENT_EXT" &&
        mkcert releaser "bob/OU=release-manager" op-ca "$CLIENT_EXT" &&
        mkcert watcher "carol/OU=ground team/OU=viewer" op-ca "$CLIENT_EXT" &&
        mkcert twofold "dave/OU=viewer/OU=release-manager" op-ca "$CLIENT_EXT" ||
        bail "openssl could not make the test certificates"
# token: the release manager's (it uploads and installs below); op-token: an operator's
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >op-token
echo "wrong-token-0123456789" >bad-token
mkdir -p command-keyring bundle-keyring
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null &&
        "$OB" keygen --ca --subject "CN=release CA" --key rel-ca.key --cert rel-ca.pem >/dev/null &&
        "$OB" keygen --role release --subject "CN=release signer" --issuer-key rel-ca.key --issuer-cert rel-ca.pem \
                --key rel.key --cert rel.pem >/dev/null || bail "orbit-bundle keygen failed"
cp cmd-ca.pem command-keyring/ && cp rel-ca.pem bundle-keyring/
pass "certificates, token and signing keys made"

# ---- the server ---------------------------------------------------------------------------
LOG=$D/controller.log
FAIL_CONTEXT_LOG=$LOG
PID=""
start_controller() {
        rm -f port
        "$OC" serve --listen 127.0.0.1:0 --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem --operator-ca op-ca.pem \
                --release-token-file token --operator-token-file op-token --command-key cmd.key \
                --command-cert cmd.pem --bundle-keyring bundle-keyring --poll-interval 90 --timeout 10 "$@" \
                >>"$LOG" 2>&1 &
        PID=$!
        track_pid "$PID"
        wait_for "$ORBIT_TEST_TIMEOUT" test -s "$D/port" || bail "the controller did not start: $(tail -5 "$LOG")"
        PORT=$(cat "$D/port")
        URL=https://127.0.0.1:$PORT
}
stop_controller() {
        kill -TERM "$PID"
        if wait_exit "$PID" "$ORBIT_TEST_TIMEOUT" && [ "$WAIT_RC" -eq 0 ]; then
                pass "SIGTERM stops the controller cleanly"
        else
                fail "SIGTERM stops the controller cleanly" "exit $WAIT_RC"
        fi
}
start_controller
pass "controller listening on port $PORT"
[ -f data/controller.db ] && pass "database created" || fail "database created"
[ "$(sqlite3 data/controller.db 'PRAGMA journal_mode' 2>/dev/null || echo wal)" = wal ] &&
        pass "database in WAL mode" || fail "database in WAL mode"

# curl as a node (CERT NAME), as an operator (token), writing the body to $D/body.
CURL=(curl -sS --max-time 20 --cacert server-ca.pem -o "$D/body" -w '%{http_code}')
as_node() { local who=$1; shift; "${CURL[@]}" --cert "$who.pem" --key "$who.key" "$@"; }
as_op() { "${CURL[@]}" -H "Authorization: Bearer $(cat token)" "$@"; }
opcli() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }

BOOT=0123456789abcdef0123456789abcdef
record() { # SEQ KIND BODY [EPOCH]
        printf '{"format":1,"key":{"node":"node-1","boot_epoch":%s,"boot_id":"%s","seq":%s},"priority":"normal","kind":"%s","time_usec":%s000000,"monotonic_usec":%s,"body":%s}' \
                "${4:-3}" "$BOOT" "$1" "$2" "$(date +%s)" "$1" "$3"
}
sync_body() { # LAST_COMMAND_SEQ RECORDS...
        local last=$1 recs
        shift
        recs=$(IFS=,; echo "$*")
        printf '{"format":1,"node":"node-1","boot_epoch":3,"boot_id":"%s","last_command_seq":%s,"records":[%s],"status":{"state":"running"}}' \
                "$BOOT" "$last" "$recs"
}
sync_body 0 "$(record 1 health.report '{"temp_c":41}')" "$(record 2 workload.exit '{"name":"cam","code":0}')" \
        "$(record 3 update.installed '{"bundle_id":"b-1","slot":"B"}')" >sync1.json

# ---- mutual TLS ---------------------------------------------------------------------------
code=$(as_node node-1 -D sync.headers -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync")
if [ "$code" = 200 ] && [ "$(jq -c '.acked' body)" = "[{\"boot_epoch\":3,\"boot_id\":\"$BOOT\",\"seq\":[1,2,3]}]" ]; then
        pass "sync with the node's certificate: 200, records acked"
else
        fail "sync with the node's certificate" "HTTP $code: $(cat body)"
fi
[ "$(jq -c '[.format, .commands, .contact_plan, .next_sync_sec, (.server_time > 0)]' body)" = \
  '[1,[],{"windows":[]},90,true]' ] && pass "answer: no commands, open contact plan, next_sync_sec" ||
        fail "answer fields" "$(cat body)"
# Bytes on a slow link: no Date, and no Content-Type on the sync route (always JSON).
grep -qi '^content-length: ' sync.headers && ! grep -qi '^date:\|^content-type:' sync.headers &&
        pass "the sync answer has neither Date nor Content-Type: $(tr -d '\r' <sync.headers | sed 1d | tr '\n' ' ')" ||
        fail "sync answer headers" "$(cat sync.headers)"
code=$(as_node node-2 -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 403 ] && grep -q 'for node \\"node-2\\", not \\"node-1\\"' body &&
        pass "certificate of another node (CN node-2): 403" || fail "wrong CN refused" "HTTP $code: $(cat body)"
code=$("${CURL[@]}" -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 401 ] && pass "no client certificate: 401" || fail "no client certificate refused" "HTTP $code: $(cat body)"
code=$(as_node rogue-1 -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync" 2>/dev/null)
if [ "$code" = 403 ] && grep -q 'does not verify' body; then
        pass "node-1 certificate from another CA: 403"
else
        fail "certificate from another CA refused" "HTTP $code: $(cat body)"
fi
grep -q 'client certificate refused' "$LOG" && pass "the refusal is logged with gnutls' reason" ||
        fail "refusal logged"

# ---- idempotent syncs and strict bodies -----------------------------------------------------
code=$(as_node node-1 -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 200 ] && [ "$(jq -c '.acked[0].seq' body)" = "[1,2,3]" ] &&
        pass "the same sync again: acked again" || fail "replayed sync" "HTTP $code: $(cat body)"
code=$(as_op "$URL/v1/nodes/node-1")
if [ "$code" = 200 ] && [ "$(jq -c '[.records, .syncs, .boot_epoch, .status.state, .health.temp_c, .update.kind]' body)" = \
     '[3,2,3,"running",41,"update.installed"]' ]; then
        pass "records stored once; status, health and update state kept"
else
        fail "records stored once" "HTTP $code: $(cat body)"
fi

# ---- format 2: only what changed, both ways (docs/protocol.md, "Format 2") --------------------
# A request that says what the node takes hears what the controller takes, the sync format with it.
printf '{"format":2,"last_command_seq":0}' >sync-f2.json
code=$(as_node node-1 -D said.headers -H 'Orbit-Sync: 2' -X POST --data-binary @sync-f2.json "$URL/v1/nodes/node-1/sync")
if [ "$code" = 200 ] && grep -qi '^orbit-sync: 2' said.headers && grep -qi '^accept-encoding: zstd' said.headers &&
   [ "$(jq -c '[.format, .contact_plan, .next_sync_sec, (.tag | test("^[0-9a-f]{16}$")), has("acked"), has("commands")]' body)" = \
     '[2,{"windows":[]},90,true,false,false]' ]; then
        pass "format 2 without boot, records or tag: the plan, the pace and their tag; said what it takes"
else
        fail "format 2 first sync" "HTTP $code: $(cat body) $(tr -d '\r' <said.headers)"
fi
TAG=$(jq -r .tag body)
printf '{"format":2,"last_command_seq":0,"known":"%s"}' "$TAG" >sync-f2-known.json
code=$(as_node node-1 -D quiet.headers -X POST --data-binary @sync-f2-known.json "$URL/v1/nodes/node-1/sync")
if [ "$code" = 204 ] && ! grep -qi '^orbit-sync\|^accept-encoding\|^content-length: [1-9]' quiet.headers; then
        pass "format 2 that knows the tag, nothing new: 204, no body, nothing said: $(tr -d '\r' <quiet.headers | head -1)"
else
        fail "format 2 idle" "HTTP $code: $(tr -d '\r' <quiet.headers)"
fi
code=$(as_op "$URL/v1/nodes/node-1")
[ "$code" = 200 ] && [ "$(jq -c '[.boot_epoch, .boot_id, .syncs]' body)" = "[3,\"$BOOT\",4]" ] &&
        pass "a sync without its boot keeps the boot the node said last" || fail "boot kept" "HTTP $code: $(cat body)"
# A node the controller keeps nothing of (never said, or a restart since) is told what it takes.
code=$(as_node node-2 -D untold.headers -X POST --data-binary @sync-f2.json "$URL/v1/nodes/node-2/sync")
[ "$code" = 200 ] && grep -qi '^orbit-sync: 2' untold.headers &&
        pass "format 2 from a node that never said what it takes: told what the controller takes" ||
        fail "format 2 untold node" "HTTP $code: $(tr -d '\r' <untold.headers)"
printf '{"format":2,"last_command_seq":0,"boot_epoch":3}' >sync-f2-half.json
code=$(as_node node-1 -X POST --data-binary @sync-f2-half.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 400 ] && grep -q 'boot_epoch and boot_id go together' body && pass "format 2: a boot is whole: 400" ||
        fail "format 2 half a boot" "HTTP $code: $(cat body)"
sed 's/"format":1,"node"/"format":1,"nodee":"x","node"/' sync1.json >bad.json
code=$(as_node node-1 -X POST --data-binary @bad.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 400 ] && jq -r .message body | grepq '^sync:1:13: nodee: unknown key (did you mean "node"?)' &&
        pass "unknown key refused: 400 naming it with line:column" || fail "unknown key refused" "HTTP $code: $(cat body)"
sed 's/"seq":2}/"seq":0}/' sync1.json >bad.json
code=$(as_node node-1 -X POST --data-binary @bad.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 400 ] && jq -r .message body | grepq 'records\[1\].key.seq: 0 is out of range' &&
        pass "bad record seq refused, record and key named" || fail "bad record refused" "HTTP $code: $(cat body)"
{ printf '{"format":1,"node":"node-1","boot_epoch":3,"boot_id":"%s","last_command_seq":0,"records":[],"status":{"pad":"' "$BOOT"
  head -c $((5 * 1024 * 1024)) /dev/zero | tr '\0' a
  printf '"}}'; } >big.json
code=$(as_node node-1 -X POST --data-binary @big.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 413 ] && pass "5 MiB sync body: 413" || fail "oversized body refused" "HTTP $code: $(head -c 300 body)"
code=$(as_node node-1 -X POST -H 'Transfer-Encoding: chunked' --data-binary @big.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 413 ] && pass "5 MiB chunked sync body (no length): 413" || fail "oversized chunked body" "HTTP $code"

# ---- operator API access -------------------------------------------------------------------
code=$(as_node node-1 "$URL/v1/nodes")
[ "$code" = 403 ] && pass "a node certificate cannot reach the operator API" || fail "node on operator API" "HTTP $code"
code=$("${CURL[@]}" -H "Authorization: Bearer $(cat bad-token)" "$URL/v1/nodes")
[ "$code" = 403 ] && pass "wrong bearer token: 403" || fail "wrong token" "HTTP $code"
code=$("${CURL[@]}" "$URL/v1/nodes")
[ "$code" = 401 ] && pass "no credentials: 401" || fail "no credentials" "HTTP $code"
code=$(as_node operator "$URL/v1/nodes")
[ "$code" = 200 ] && [ "$(jq -r '.nodes[0].id' body)" = node-1 ] &&
        pass "operator client certificate: node list" || fail "operator certificate" "HTTP $code: $(cat body)"
if opcli node list >out 2>err && grep -q '^node-1 ' out; then
        pass "CLI node list"
else
        fail "CLI node list" "$(cat out err)"
fi
opcli node show node-9 >out 2>err
[ $? -eq 1 ] && grep -q 'HTTP 404: unknown node "node-9"' err && pass "CLI names the server's message" ||
        fail "CLI error message" "$(cat err)"

# ---- commands -------------------------------------------------------------------------------
if opcli command send node-1 workload.start name=camera --expires-in 600 >out 2>err &&
   grep -q '^queued command 1 for node-1: workload.start' out; then
        pass "command send: seq 1"
else
        fail "command send" "$(cat out err)"
fi
opcli command send node-1 workload.start nme=camera >out 2>err
[ $? -eq 1 ] && grep -q 'workload.start: unknown parameter \\\?"nme' err && pass "command params checked when queued" ||
        fail "bad params refused" "$(cat err)"
opcli command send node-1 update.install bundle_id=nope >out 2>err
[ $? -eq 1 ] && grep -q 'no bundle "nope" was uploaded' err && pass "update.install needs an uploaded bundle" ||
        fail "update.install unknown bundle" "$(cat err)"
sync_body 0 >sync-empty.json
code=$(as_node node-1 -X POST --data-binary @sync-empty.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 200 ] && [ "$(jq '.commands | length' body)" = 1 ] && pass "sync returns the queued command" ||
        fail "sync returns the command" "HTTP $code: $(cat body)"
jq '.commands[0]' body >envelope.json
out=$("$VERIFY" command-keyring node-1 0 envelope.json)
[ "$out" = 'ok 1 workload.start {"name":"camera"}' ] && pass "the envelope verifies (agent's verifier)" ||
        fail "envelope verifies" "$out"
out=$("$VERIFY" command-keyring node-1 1 envelope.json)
echo "$out" | grepq 'replayed' && pass "verifier: replayed seq refused" || fail "replay refused" "$out"
out=$("$VERIFY" command-keyring node-2 0 envelope.json)
echo "$out" | grepq 'is for node "node-1", not "node-2"' && pass "verifier: wrong node refused" || fail "wrong node" "$out"
out=$("$VERIFY" bundle-keyring node-1 0 envelope.json)
echo "$out" | grepq 'refused' && pass "verifier: untrusted signer refused" || fail "untrusted signer" "$out"
jq '.payload |= sub("camera"; "camerb")' envelope.json >tampered.json
out=$("$VERIFY" command-keyring node-1 0 tampered.json)
echo "$out" | grepq 'refused' && pass "verifier: tampered payload refused" || fail "tampered payload" "$out"

# The node applied it and reports the result.
sync_body 1 "$(record 4 command.result '{"seq":1,"status":"done","reason":""}')" >sync2.json
code=$(as_node node-1 -X POST --data-binary @sync2.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 200 ] && [ "$(jq '.commands | length' body)" = 0 ] && pass "nothing resent after last_command_seq 1" ||
        fail "no resend" "HTTP $code: $(cat body)"
opcli command list node-1 --json >out 2>err
[ "$(jq -c '[.[0].seq, .[0].state, .[0].acked]' out)" = '[1,"done",true]' ] && pass "command.result marks it done" ||
        fail "command result stored" "$(cat out err)"

# ---- restart: state kept, seqs go on (the database named as --database sqlite:PATH) ------------
stop_controller
if "$OC" serve --listen 127.0.0.1:0 --data-dir "$D/data" --database 'postgresql://orbit:s3cret@db:99999/orbit' \
        >bad-db.log 2>&1; then
        fail "--database with a bad port refused" "it ran"
else
        [ $? = 2 ] && grep -q 'the port "99999" is not a port' bad-db.log && ! grep -q s3cret bad-db.log &&
                pass "--database: a bad URL refused, the port named, the password not: $(cat bad-db.log)" ||
                fail "--database with a bad port" "$(cat bad-db.log)"
fi
start_controller --database "sqlite:$D/data/controller.db"
if opcli command send node-1 reboot >out 2>err && grep -q '^queued command 2 for node-1: reboot' out; then
        pass "command seq continues after a restart (2)"
else
        fail "seq across restart" "$(cat out err)"
fi
code=$(as_op "$URL/v1/nodes/node-1")
[ "$code" = 200 ] && [ "$(jq -c '[.records, .last_command_seq]' body)" = '[4,1]' ] &&
        pass "node and records still there after the restart" || fail "state after restart" "HTTP $code: $(cat body)"
opcli records node-1 --kind 'health.*' --json >out 2>err
[ "$(jq -c '[length, .[0].body.temp_c]' out)" = '[1,41]' ] && pass "records --kind prefix" || fail "records query" "$(cat out err)"
opcli health node-1 --json >out 2>err
[ "$(jq .temp_c out)" = 41 ] && pass "health NODE: the last report" || fail "health" "$(cat out err)"

# ---- contact plan ---------------------------------------------------------------------------
NOW=$(date +%s)
code=$(as_op -X PUT --data "{\"windows\":[{\"start\":$NOW,\"end\":$((NOW + 600)),\"rate_bps\":250000}]}" \
        "$URL/v1/nodes/node-1/contact-plan")
[ "$code" = 200 ] && pass "contact plan set" || fail "contact plan set" "HTTP $code: $(cat body)"
code=$(as_node node-1 -X POST --data-binary @sync-empty.json "$URL/v1/nodes/node-1/sync")
[ "$(jq -c '[.contact_plan.windows[0].rate_bps, (.commands | map(.seq))]' body)" = '[250000,[2]]' ] &&
        pass "sync answer carries the plan and command 2" || fail "plan in sync" "$(cat body)"
code=$(as_op -X PUT --data '{"windows":[{"start":5,"end":4,"rate_bps":1}]}' "$URL/v1/nodes/node-1/contact-plan")
[ "$code" = 400 ] && grep -q 'start must come before end' body && pass "bad contact plan refused" ||
        fail "bad plan" "HTTP $code: $(cat body)"

# ---- bundles and Range ------------------------------------------------------------------------
cat >template.json <<'JSON'
{"bundle_id": "fleet-2024.06", "version": "1.4.0", "security_version": 7, "compatible": ["orbit-board-v1"]}
JSON
head -c 300000 /dev/urandom >rootfs.ext4
"$OB" create --manifest-template template.json --image rootfs=rootfs.ext4 --chunk-size 65536 \
        --key rel.key --cert rel.pem -o good.obundle >/dev/null || bail "orbit-bundle create failed"
"$OB" keygen --role release --subject "CN=outsider" --key outsider.key --cert outsider.pem >/dev/null &&
        "$OB" create --manifest-template template.json --image rootfs=rootfs.ext4 --chunk-size 65536 \
                --key outsider.key --cert outsider.pem -o untrusted.obundle >/dev/null || bail "orbit-bundle create failed"
"$OB" create --manifest-template template.json --image rootfs=rootfs.ext4 --chunk-size 65536 \
        --key cmd.key --cert cmd.pem -o cmd-signed.obundle >/dev/null 2>err &&
        fail "the command signer signs a bundle" || { grep -q "is a command, not a release signer" err &&
                pass "the command signer cannot sign a bundle: $(cat err)" || fail "a command signer's bundle" "$(cat err)"; }
SIZE=$(stat -c %s good.obundle)
SHA=$(sha256sum good.obundle | cut -d' ' -f1)
opcli bundle upload untrusted.obundle >out 2>err
[ $? -eq 1 ] && grep -q 'HTTP 422: bundle fleet-2024.06 does not verify' err &&
        pass "bundle signed outside the keyring refused" || fail "untrusted bundle" "$(cat err)"
if opcli bundle upload good.obundle >out 2>err &&
   grep -q "^uploaded fleet-2024.06 1.4.0: $SIZE bytes, sha256 $SHA, signature verified" out; then
        pass "bundle upload: id, version, size, sha256"
else
        fail "bundle upload" "$(cat out err)"
fi
opcli bundle upload good.obundle >out 2>err && pass "the same upload again is fine" ||
        fail "re-upload" "$(cat err)"
# The same id with another content: refused, and the file kept is the first one's.
head -c 300000 /dev/urandom >rootfs2.ext4
"$OB" create --manifest-template template.json --image rootfs=rootfs2.ext4 --chunk-size 65536 \
        --key rel.key --cert rel.pem -o other.obundle >/dev/null || bail "orbit-bundle create failed"
opcli bundle upload other.obundle >out 2>err
[ $? -eq 1 ] && grep -q "HTTP 409: bundle fleet-2024.06 is already uploaded with another content (sha256 $SHA)" err &&
        cmp -s good.obundle data/bundles/fleet-2024.06.obundle &&
        pass "another bundle under the same id: 409, the first one's file kept" || fail "same id, other content" "$(cat err)"
[ "$(ls data/bundles)" = fleet-2024.06.obundle ] && pass "stored as bundles/<id>.obundle, no temp left" ||
        fail "bundle file" "$(ls -a data/bundles)"
opcli bundle list >out && grep -q "^fleet-2024.06 .* $SIZE  $SHA" out && pass "bundle list" ||
        fail "bundle list" "$(cat out)"
BURL=$URL/v1/bundles/fleet-2024.06
HDR=(-D "$D/headers")
etag() { tr -d '\r' <"$D/headers" | sed -n 's/^[Ee][Tt][Aa][Gg]: //p'; }
# A node may fetch only a bundle the ground sent it (#18): none yet for node-1.
# It is told what it would be told of a bundle that is not there: no probing for ids.
code=$(as_node node-1 "$BURL")
[ "$code" = 404 ] && [ "$(jq -r .message body)" = 'no bundle "fleet-2024.06" for node "node-1"' ] &&
        pass "a node may not download a bundle no command nor rollout sent it: 404, as for none" ||
        fail "bundle download without a command" "HTTP $code $(cat body)"
grep -q 'node node-1 asked for bundle fleet-2024.06, which no command nor rollout sent it: refused' "$LOG" &&
        pass "the controller's log says why" || fail "the refusal's log line"
code=$(as_node node-1 "$URL/v1/bundles/fleet-2024.07")
[ "$code" = 404 ] && [ "$(jq -r .message body)" = 'no bundle "fleet-2024.07" for node "node-1"' ] &&
        pass "a bundle that is not there: the same answer" || fail "unknown bundle to a node" "HTTP $code $(cat body)"
opcli command send node-1 update.install bundle_id=fleet-2024.06 --expires-in 600 >out 2>err &&
        grep -q "^queued command 3" out ||
        fail "command send update.install" "$(cat out err)"
code=$(as_node node-1 "${HDR[@]}" "$BURL")
cp body full.bin
E1=$(etag)
[ "$code" = 200 ] && cmp -s full.bin good.obundle && pass "full download equals the file" ||
        fail "full download" "HTTP $code"
[ "$E1" = "\"sha256:$SHA\"" ] && pass "strong ETag is the file's sha256" || fail "ETag" "$E1"
: >parts.bin
ok=1
for r in "0-99999" "100000-250000" "250001-"; do
        code=$(as_node node-1 "${HDR[@]}" -H "Range: bytes=$r" "$BURL")
        [ "$code" = 206 ] || ok=0
        [ "$(etag)" = "$E1" ] || ok=0
        cat body >>parts.bin
done
[ $ok = 1 ] && cmp -s parts.bin good.obundle && pass "three ranges (206, same ETag) reassemble the file" ||
        fail "ranges reassemble" "$(cat headers)"
grep -qi "^Content-Range: bytes 250001-$((SIZE - 1))/$SIZE" headers && pass "Content-Range of an open range" ||
        fail "Content-Range" "$(cat headers)"
code=$(as_node node-1 -H "Range: bytes=-100" "$BURL")
[ "$code" = 206 ] && cmp -s body <(tail -c 100 good.obundle) && pass "suffix range bytes=-100" || fail "suffix range" "HTTP $code"
code=$(as_node node-1 "${HDR[@]}" -H "Range: bytes=$SIZE-" "$BURL")
[ "$code" = 416 ] && grep -qi "^Content-Range: bytes \*/$SIZE" headers && pass "range past the end: 416" ||
        fail "416" "HTTP $code $(cat headers)"
code=$(as_node node-1 -H "Range: bytes=0-9" -H 'If-Range: "sha256:0000"' "$BURL")
[ "$code" = 200 ] && cmp -s body good.obundle && pass "If-Range with a wrong ETag: the whole file" ||
        fail "If-Range wrong" "HTTP $code"
code=$(as_node node-1 -H "Range: bytes=0-9" -H "If-Range: $E1" "$BURL")
[ "$code" = 206 ] && [ "$(stat -c %s body)" = 10 ] && pass "If-Range with our ETag: the range" || fail "If-Range right" "HTTP $code"
code=$(as_node node-1 "${HDR[@]}" -I "$BURL")
# curl -I writes the headers as its output: no payload may follow them.
[ "$code" = 200 ] && grep -qi "^Content-Length: $SIZE" headers && [ "$(stat -c %s body)" -lt 1024 ] &&
        pass "HEAD: length, no body" ||
        fail "HEAD" "HTTP $code $(cat headers)"
code=$(as_node node-1 "$URL/v1/bundles/none")
[ "$code" = 404 ] && pass "unknown bundle: 404" || fail "unknown bundle" "HTTP $code"
# Uploaded, then its file removed by hand: gone (a node repairing a slot stops asking), not a fault.
mv data/bundles/fleet-2024.06.obundle fleet-away.obundle
code=$(as_node node-1 -H "Range: bytes=0-9" "$BURL")
[ "$code" = 410 ] && jq -e '.error == "gone"' body >/dev/null && pass "a bundle whose file is gone: 410 gone" ||
        fail "bundle gone" "HTTP $code $(cat body)"
mv fleet-away.obundle data/bundles/fleet-2024.06.obundle
code=$(as_node node-1 -H "Range: bytes=0-9" "$BURL")
[ "$code" = 206 ] && pass "its file back: served again" || fail "bundle back" "HTTP $code"
opcli command send node-1 update.install bundle_id=fleet-2024.06 >out 2>err &&
        grep -q '^queued command 4' out && pass "update.install of an uploaded bundle" || fail "update.install" "$(cat err)"

# ---- record retention -----------------------------------------------------------------------
out=$("$OC" serve --retain-records 5 2>&1); rc=$?
[ $rc = 2 ] && grep -q "expected a duration" <<<"$out" && pass "--retain-records 5 (not a duration): usage error" ||
        fail "--retain-records usage" "exit $rc: $out"
stop_controller
start_controller --retain-records 2s
grep -q "records are kept 2 s (critical and update.\* ones for ever)" "$LOG" && pass "retention configured: 2 s" || fail "retention log"
crit=$(record 20 update.committed '{"bundle_id":"b-1"}' | sed 's/"priority":"normal"/"priority":"critical"/')
code=$(as_node node-1 -X POST --data-binary "$(sync_body 1 "$(record 19 health.report '{"temp_c":44}')" "$crit")" \
        "$URL/v1/nodes/node-1/sync")
[ "$code" = 200 ] || fail "sync before retention" "HTTP $code: $(cat body)"
q() { sqlite3 data/controller.db "$1"; }
before=$(q "SELECT count(*) FROM records WHERE node = 'node-1'")
only_kept() { [ "$(q "SELECT count(*) FROM records WHERE priority != 'critical' AND kind NOT LIKE 'update.%'")" = 0 ]; }
if wait_for 15 only_kept; then
        pass "retention: the $before records became $(q "SELECT count(*) FROM records") once older than 2 s: the critical and update.* ones"
else
        fail "retention" "$(q "SELECT seq, priority, received FROM records")"
fi
[ "$(q "SELECT count(*) FROM records WHERE seq = 20 AND priority = 'critical'")" = 1 ] &&
        [ "$(q "SELECT count(*) FROM records WHERE seq = 3 AND kind = 'update.installed'")" = 1 ] &&
        pass "retention: the critical update outcome and the update.installed record are kept" || fail "retention: kept"
grep -q "retention: [0-9]* records received more than 2 s ago deleted" "$LOG" && pass "retention: logged" ||
        fail "retention log line"
code=$(as_op "$URL/v1/nodes/node-1")
[ "$code" = 200 ] && [ "$(jq -c '[.health.temp_c, .update.kind]' body)" = '[44,"update.committed"]' ] &&
        pass "retention: the node's last health and update state are not records: kept" || fail "node after retention" "$(cat body)"

# ---- roles (#18 item 6): viewer < operator < release manager -----------------------------------
as_operator() { "${CURL[@]}" -H "Authorization: Bearer $(cat op-token)" "$@"; }
as_cert() { local who=$1; shift; "${CURL[@]}" --cert "$who.pem" --key "$who.key" "$@"; }
code=$(as_operator -X POST --data-binary @/dev/null "$URL/v1/bundles")
[ "$code" = 403 ] && grep -q 'needs the release-manager role; this token has the operator role' body &&
        pass "roles: the operator token may not upload a bundle (403, both roles named)" ||
        fail "roles: operator upload refused" "HTTP $code $(cat body)"
code=$(as_operator -X POST --data '{"id":"r-op","bundle":"fleet-2024.06","target":"all"}' "$URL/v1/rollouts")
[ "$code" = 403 ] && pass "roles: nor create a rollout" || fail "roles: operator rollout create refused" "HTTP $code $(cat body)"
code=$(as_operator -X POST "$URL/v1/rollouts/r-none/start")
[ "$code" = 403 ] && pass "roles: nor start one" || fail "roles: operator rollout start refused" "HTTP $code $(cat body)"
code=$(as_operator -X POST "$URL/v1/rollouts/r-none/pause")
[ "$code" = 404 ] && pass "roles: but may pause one (404 here: there is none)" || fail "roles: operator pause" "HTTP $code $(cat body)"
for a in update.install update.mark-good; do
        code=$(as_operator -X POST --data "{\"action\":\"$a\",\"params\":{\"bundle_id\":\"fleet-2024.06\"}}" \
                "$URL/v1/nodes/node-1/commands")
        [ "$code" = 403 ] && grep -q "$a needs the release-manager role" body &&
                pass "roles: the operator token may not send $a" || fail "roles: operator $a refused" "HTTP $code $(cat body)"
done
code=$(as_operator -X POST --data '{"action":"update.rollback"}' "$URL/v1/nodes/node-1/commands")
[ "$code" = 201 ] && pass "roles: it may send update.rollback (the release's floor bounds it on the node)" ||
        fail "roles: operator rollback" "HTTP $code $(cat body)"
code=$(as_operator -X PUT --data '{"windows":[]}' "$URL/v1/nodes/node-2/contact-plan")
[ "$code" = 200 ] && pass "roles: and set a contact plan" || fail "roles: operator contact plan" "HTTP $code $(cat body)"
code=$(as_cert operator -X POST --data '{}' "$URL/v1/rollouts")
[ "$code" = 403 ] && grep -q 'this certificate has the operator role' body &&
        pass "roles: a certificate with no role in its OU is an operator's (alice: 403 on a rollout)" ||
        fail "roles: alice's certificate" "HTTP $code $(cat body)"
code=$(as_cert releaser -X POST --data '{}' "$URL/v1/rollouts")
[ "$code" = 400 ] && pass "roles: OU=release-manager may create a rollout (bob: past the role check, 400 on the body)" ||
        fail "roles: bob's certificate" "HTTP $code $(cat body)"
code=$(as_cert releaser "$URL/v1/whoami")
[ "$code" = 200 ] && [ "$(jq -c '[.role, .name]' body)" = '["release-manager","bob"]' ] &&
        pass "roles: whoami names bob's role" || fail "roles: whoami" "HTTP $code $(cat body)"
code=$(as_cert watcher "$URL/v1/nodes/node-1")
code2=$(as_cert watcher -X PUT --data '{"windows":[]}' "$URL/v1/nodes/node-1/contact-plan")
[ "$code" = 200 ] && [ "$code2" = 403 ] && grep -q 'needs the operator role; this certificate has the viewer role' body &&
        pass "roles: OU=viewer beside a team's OU reads and may not change (carol)" ||
        fail "roles: carol's certificate" "HTTP $code/$code2 $(cat body)"
code=$(as_cert twofold "$URL/v1/nodes")
[ "$code" = 403 ] && grep -q 'names two roles' body && pass "roles: a certificate naming two roles is refused (dave)" ||
        fail "roles: dave's certificate" "HTTP $code $(cat body)"
if "$OC" serve --listen 127.0.0.1:0 --data-dir "$D/twice" --cert server.pem --key server.key --node-ca node-ca.pem \
        --release-token-file token --viewer-token-file token --command-key cmd.key --command-cert cmd.pem \
        >twice.log 2>&1; then
        fail "roles: one token for two roles refused" "it ran"
else
        grep -q 'the release-manager token (token) is the viewer token (token): one token, one role' twice.log &&
                pass "roles: one token given for two roles: the controller does not start" ||
                fail "roles: one token for two roles" "$(cat twice.log)"
fi

# ---- revoking a node's certificates (#18 item 3): a stolen node key ---------------------------------
sed 's/"node-1"/"node-2"/g' sync1.json >sync-n2.json
code=$(as_node node-2 -X POST --data-binary @sync-n2.json "$URL/v1/nodes/node-2/sync")
[ "$code" = 200 ] || fail "node-2 syncs before its revocation" "HTTP $code $(cat body)"
opcli node revoke-certs node-2 >revoke.out 2>&1 && grep -q '^node-2: its certificates made until .* are refused$' revoke.out &&
        pass "node revoke-certs node-2: $(cat revoke.out)" || fail "node revoke-certs" "$(cat revoke.out)"
code=$(as_node node-2 -X POST --data-binary @sync-n2.json "$URL/v1/nodes/node-2/sync")
[ "$code" = 403 ] && [ "$(jq -r .error body)" = certificate-revoked ] && jq -r .message body | grepq 'node "node-2" .* is revoked' &&
        pass "its certificate is refused at once: 403 certificate-revoked" || fail "revoked node-2 sync" "HTTP $code $(cat body)"
code=$(as_node node-2 -X POST --data '{"csr":"x"}' "$URL/v1/nodes/node-2/certificate")
[ "$code" = 403 ] && [ "$(jq -r .error body)" = certificate-revoked ] &&
        pass "nor may it renew itself" || fail "revoked node-2 renewal" "HTTP $code $(cat body)"
code=$(as_node node-1 -X POST --data-binary @sync1.json "$URL/v1/nodes/node-1/sync")
[ "$code" = 200 ] && pass "another node is not touched" || fail "node-1 after node-2's revocation" "HTTP $code"
grep -q 'node node-2 refused: its certificate (serial [0-9a-f]*, made .*) is revoked' "$LOG" &&
        pass "the refusal is logged with the serial" || fail "revocation log line"
# a certificate the node CA makes after the revocation (a node provisioned again) works
T=$(sqlite3 data/controller.db "SELECT certs_revoked_before FROM nodes WHERE id = 'node-2'")
clock_past() { [ "$(date +%s)" -gt "$T" ]; }
wait_for 10 clock_past && mkcert node-2b node-2 node-ca "$CLIENT_EXT" || bail "a new node-2 certificate"
code=$(as_node node-2b -X POST --data-binary @sync-n2.json "$URL/v1/nodes/node-2/sync")
[ "$code" = 200 ] && pass "a certificate made after the revocation is taken (HTTP 200)" ||
        fail "node-2's new certificate" "HTTP $code $(cat body)"

# ---- the audit log (#18 item 6): every change asked through the operator API, and who asked
code=$("${CURL[@]}" --cert operator.pem --key operator.key -X PUT --data '{"windows":[]}' \
        "$URL/v1/nodes/node-1/contact-plan")
[ "$code" = 200 ] || fail "a contact plan from an operator certificate" "HTTP $code $(cat body)"
opcli audit list --json >audit.json || fail "audit list" "$(cat audit.json)"
jq -e '.[0] | .who == "cert:alice" and .role == "operator" and .method == "PUT" and .path == "/v1/nodes/node-1/contact-plan"' \
        audit.json >/dev/null && pass "audit: the last change names the operator certificate's holder (alice)" ||
        fail "audit: the certificate's change" "$(jq -c '.[0]' audit.json)"
jq -e 'any(.[]; .who == "token" and .role == "release-manager" and .method == "POST" and .path == "/v1/nodes/node-1/commands") and
       any(.[]; .who == "token" and .role == "operator" and .method == "PUT" and .path == "/v1/nodes/node-2/contact-plan") and
       any(.[]; .method == "POST" and .path == "/v1/nodes/node-2/revoke-certificates") and
       any(.[]; .method == "POST" and .path == "/v1/bundles")' audit.json >/dev/null &&
        pass "audit: the token's command sends and bundle uploads are there ($(jq length audit.json) entries)" ||
        fail "audit: the token's changes" "$(jq -c . audit.json | head -c 600)"
jq -e 'all(.[]; .method != "GET" and .method != "HEAD")' audit.json >/dev/null && pass "audit: reads are not changes" ||
        fail "audit: reads recorded"
opcli audit list | grepq "cert:alice .* PUT .*/v1/nodes/node-1/contact-plan" && pass "audit list: a table" ||
        fail "audit list table" "$(opcli audit list | head -3)"

stop_controller
has_sanitizer_report "$LOG" && fail "no sanitizer report" "$(grep -A5 -E 'ERROR: AddressSanitizer|runtime error' "$LOG" | head -20)" ||
        pass "no sanitizer report in the controller log"
finish
