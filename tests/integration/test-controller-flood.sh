# Integration test: the controller keeps serving while 200 idle or trickling connections
# are open (#18 item 7). Before, 64 connections at most (half per client address) let two
# addresses that never finish a request hold the port. The flood comes from 127.0.0.2-9
# (loopback has the whole 127/8), the node and the operator from 127.0.0.1. As a control,
# the same flood against the old bounds (--max-connections 64, 32 per address) does shut the
# node out: the test measures what it claims to.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq python3 ss curl; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
OB=$top_builddir/orbit-bundle
OC=$top_builddir/orbit-controller
[ -x "$OC" ] || skip_all "orbit-controller not built (--disable-controller)"
setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
        mkcert server 127.0.0.1 server-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1' &&
        mkcert sat-1 sat-1 node-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth' || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null || bail "orbit-bundle keygen failed"

CPID=""
start_controller() { # OPTIONS...
        rm -f port
        "$OC" serve --listen "127.0.0.1:0" --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem \
                --operator-token-file token --command-key cmd.key --command-cert cmd.pem \
                --poll-interval 60 "$@" >>"$D/controller.log" 2>&1 &
        CPID=$!
        track_pid "$CPID"
        wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$D/controller.log")"
        PORT=$(cat "$D/port")
        URL=https://127.0.0.1:$PORT
}
stop_controller() {
        kill -TERM "$CPID"
        wait_exit "$CPID" 30 || fail "the controller stops" "status $WAIT_RC"
}
# shellcheck disable=SC2034 # read by lib.sh on a failure
FAIL_CONTEXT_LOG=$D/controller.log

# 100 connections that never send a byte, 100 that send a TLS ClientHello one byte a second
# (each resets an idle timeout), 25 from each of eight addresses.
cat >flood.py <<'PY'
import socket, sys, time
port = int(sys.argv[1])
hello = bytes.fromhex("160301020001") + b"\x00" * 512
socks = []
for i in range(200):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i // 25), 0))
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        print("connect %d: %s" % (i, e), flush=True)
        continue
    socks.append((s, i >= 100))
print("open", len(socks), flush=True)
n = 0
while True:
    for s, trickle in socks:
        if trickle:
            try:
                s.send(hello[n % len(hello):n % len(hello) + 1])
            except OSError:
                pass
    n += 1
    time.sleep(1)
PY
FPID=""
flood() {
        python3 flood.py "$PORT" >flood.out 2>&1 &
        FPID=$!
        track_pid "$FPID"
}
flood_stop() { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; }
# connections the controller holds from the flood's addresses
held() { ss -Htn state established "( sport = :$PORT )" | awk '{print $4}' | grep -c '^127\.0\.0\.[2-9]:'; }
held_at_least() { [ "$(held)" -ge "$1" ]; }
sync_body='{"format":1,"node":"sat-1","boot_epoch":1,"boot_id":"0123456789abcdef0123456789abcdef","last_command_seq":0,"records":[]}'
node_sync() {
        curl -sS -o sync.out -w '%{http_code}' --max-time 20 --cacert server-ca.pem --cert sat-1.pem --key sat-1.key \
                -H 'Content-Type: application/json' --data-binary "$sync_body" "$URL/v1/nodes/sat-1/sync" 2>sync.err
}
operator_list() {
        "$OC" --url "$URL" --cacert server-ca.pem --token-file token node list --json 2>op.err
}

# ---- the control: the old bounds ---------------------------------------------------------------
start_controller --max-connections 64 --max-connections-per-ip 32
flood
if wait_for 30 held_at_least 64; then
        code=$(node_sync)
        [ "$code" != 200 ] && pass "control: with 64 connections at most, the flood holds them all: the node's sync fails (HTTP $code, $(head -c 120 sync.err))" ||
                fail "control: the node synced through a full house" "$(held) held"
else
        fail "control: the flood did not take the 64 connections" "$(held) held; $(cat flood.out)"
fi
flood_stop
stop_controller

# ---- the defaults ------------------------------------------------------------------------------------
start_controller
flood
if wait_for 60 held_at_least 200; then
        pass "200 idle or trickling connections from 8 addresses are open ($(held) held)"
        code=$(node_sync)
        [ "$code" = 200 ] && jq -e '.server_time > 0' sync.out >/dev/null &&
                pass "meanwhile a node syncs (HTTP 200)" || fail "node sync under the flood" "HTTP $code $(cat sync.err sync.out)"
        operator_list | jq -e '.[] | select(.id == "sat-1")' >/dev/null &&
                pass "and an operator is served" || fail "operator under the flood" "$(cat op.err)"
        held_at_least 200 && pass "the flood was still open after both ($(held) held)" ||
                fail "the flood went away before the node synced: the test proved nothing" "$(held) held"
else
        fail "the flood did not get its 200 connections" "$(held) held; $(cat flood.out); $(tail -3 controller.log)"
fi
flood_stop
stop_controller

# ---- a node syncing in a loop: 429 past its rate ------------------------------------------------
# One sync a minute on average, three at once: the fourth in a row is refused, whatever the
# machine's speed (a token comes back only after 20 s of the minute).
start_controller --max-syncs-per-minute 1 --sync-burst 3
codes=""
for i in 1 2 3 4; do
        codes="$codes$(curl -sS -o sync.out -D headers.out -w '%{http_code}' --max-time 20 --cacert server-ca.pem \
                --cert sat-1.pem --key sat-1.key -H 'Content-Type: application/json' --data-binary "$sync_body" \
                "$URL/v1/nodes/sat-1/sync" 2>sync.err) "
done
retry=$(sed -n 's/^Retry-After: *\([0-9]*\).*/\1/ip' headers.out | head -1)
[ "$codes" = "200 200 200 429 " ] && [ -n "$retry" ] && [ "$retry" -ge 1 ] && [ "$retry" -le 60 ] &&
        jq -e '.error == "too-many-requests"' sync.out >/dev/null &&
        pass "a node past its rate: syncs answered $codes, the last with Retry-After: $retry" ||
        fail "the sync rate" "codes $codes, Retry-After '$retry', body $(cat sync.out)"
metrics() { curl -sS --max-time 20 --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" "$URL/metrics"; }
metrics | grep -q '^orbit_controller_syncs_limited_total 1$' && pass "the refusal is counted in the metrics" ||
        fail "syncs_limited metric" "$(metrics 2>&1 | grep limited)"
grep -q "sync from sat-1 refused: more than 1 syncs a minute" controller.log && pass "and logged" || fail "no log line"
stop_controller
has_sanitizer_report "$D/controller.log" && fail "sanitizer report in the controller log"
finish
