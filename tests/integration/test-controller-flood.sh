# Integration test: the controller keeps serving while idle or trickling connections try to
# hold its port (#18 item 7). libmicrohttpd bounds connections in number and closes idle ones,
# but a peer sending a byte now and then is never idle: with enough addresses (loopback has
# the whole 127/8) such peers took every slot. Now unauthenticated connections are shed,
# oldest first, when the house is nearly full, and closed at --request-deadline whatever they
# send (controller/conn-guard.c). Cases:
# - 200 from 8 addresses against 64 connections at most: the bound that this flood used to
#   fill (the node's sync failed); now the node syncs, and the metrics count what was shed;
# - 17 addresses x 64 (1088, above the default 1024 and within 64 per address): the node syncs,
#   an operator is served, the flood never holds more than the soft limit;
# - --request-deadline 5: every flood connection is closed, however busy, while a node's
#   connection that authenticated stays.
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

ground_pki sat-1 sat-2 || bail "openssl could not make the test certificates"
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

# N connections (argv 2) from 127.0.0.2 on, PER_ADDR (argv 3) from each address, half never
# sending a byte, half sending a TLS ClientHello one byte a second (each resets an idle
# timeout). "open N" once all are connected; "closed N" as the controller closes them.
cat >flood.py <<'PY'
import resource, select, socket, sys, time
port, total, per_addr = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, total + 256), hard))
hello = bytes.fromhex("160301020001") + b"\x00" * 512
socks = []
for i in range(total):
    s = socket.socket()
    s.bind(("127.0.0.%d" % (2 + i // per_addr), 0))
    try:
        s.connect(("127.0.0.1", port))
    except OSError as e:
        print("connect %d: %s" % (i, e), flush=True)
        continue
    socks.append((s, i % 2 == 1))
print("open", len(socks), flush=True)
n = 0
closed = set()
while True:
    for s, trickle in socks:
        if trickle and s not in closed:
            try:
                s.send(hello[n % len(hello):n % len(hello) + 1])
            except OSError:
                closed.add(s)
    p = select.poll()  # not select(): descriptors above 1023
    by_fd = {}
    for s, _ in socks:
        if s not in closed:
            p.register(s, select.POLLIN)
            by_fd[s.fileno()] = s
    for fd, _ in p.poll(0):
        s = by_fd[fd]
        try:
            if not s.recv(4096):
                closed.add(s)
        except OSError:
            closed.add(s)
    print("closed", len(closed), flush=True)
    n += 1
    time.sleep(1)
PY
FPID=""
flood() { # TOTAL PER_ADDRESS
        python3 flood.py "$PORT" "$1" "$2" >flood.out 2>&1 &
        FPID=$!
        track_pid "$FPID"
}
flood_stop() { kill "$FPID" 2>/dev/null; wait "$FPID" 2>/dev/null; }
flood_open() { grep -q '^open ' flood.out; }
flood_closed_at_least() { [ "$(sed -n 's/^closed //p' flood.out | tail -1)" -ge "$1" ] 2>/dev/null; }
# connections the controller holds from the flood's addresses
held() { ss -Htn state established "( sport = :$PORT )" | awk '{print $4}' | grep -c '^127\.0\.0\.\([2-9]\|1[0-9]\):'; }
held_at_most() { [ "$(held)" -le "$1" ]; }
held_at_least() { [ "$(held)" -ge "$1" ]; }
sync_body='{"format":1,"node":"sat-1","boot_epoch":1,"boot_id":"0123456789abcdef0123456789abcdef","last_command_seq":0,"records":[]}'
node_sync() {
        curl -sS -o sync.out -w '%{http_code}' --max-time 20 --cacert server-ca.pem --cert sat-1.pem --key sat-1.key \
                -H 'Content-Type: application/json' --data-binary "$sync_body" "$URL/v1/nodes/sat-1/sync" 2>sync.err
}
operator_list() {
        "$OC" --url "$URL" --cacert server-ca.pem --token-file token node list --json 2>op.err
}

metrics() { curl -sS --max-time 20 --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" "$URL/metrics"; }
shed() { metrics | sed -n "s/^orbit_controller_connections_shed_total{reason=\"$1\"} //p"; }

# ---- the bound this flood used to fill: 64 connections, 32 per address -----------------------
# 200 from 8 addresses (25 each): before the guard, the flood held all 64 and the node's sync
# failed. Shedding keeps 4 of the 64 free (a sixteenth).
start_controller --max-connections 64 --max-connections-per-ip 32
flood 200 25
if wait_for 60 flood_open && wait_for 30 held_at_least 60; then
        code=$(node_sync)
        [ "$code" = 200 ] && pass "64 connections at most, 200 offered from 8 addresses: the node syncs (HTTP 200)" ||
                fail "the node's sync through a full house" "HTTP $code $(cat sync.err); $(held) held"
        n=$(shed full)
        [ "${n:-0}" -ge 136 ] && pass "the unauthenticated ones were shed to make room: $n counted (of 200, 60 kept)" ||
                fail "shed count" "'$n'; $(metrics | grep shed)"
        held_at_most 60 && pass "the flood holds at most the soft limit, 60 ($(held) held)" || fail "flood above the soft limit" "$(held) held"
else
        fail "the flood did not fill the 60 connections" "$(held) held; $(cat flood.out)"
fi
flood_stop
stop_controller

# ---- the defaults: 1024 connections, 64 per address, a flood of 17 x 64 ------------------------
# (the request deadline off: opening 1088 connections may take longer than its 60 s here)
start_controller --request-deadline 0
flood 1088 64
if wait_for 120 flood_open && wait_for 60 held_at_least 900; then
        pass "1088 idle or trickling connections offered from 17 addresses ($(held) held)"
        code=$(node_sync)
        [ "$code" = 200 ] && jq -e '.server_time > 0' sync.out >/dev/null &&
                pass "meanwhile a node syncs (HTTP 200)" || fail "node sync under the flood" "HTTP $code $(cat sync.err sync.out)"
        operator_list | jq -e '.[] | select(.id == "sat-1")' >/dev/null &&
                pass "and an operator is served" || fail "operator under the flood" "$(cat op.err)"
        held_at_most 960 && pass "the flood holds at most the soft limit, 960 of 1024 ($(held) held)" ||
                fail "the flood above the soft limit" "$(held) held"
        n=$(shed full)
        [ "${n:-0}" -ge 128 ] && pass "what did not fit was shed, not refused: $n counted" ||
                fail "shed count" "'$n'; $(metrics | grep shed)"
else
        fail "the flood did not get its connections" "$(held) held; $(head -3 flood.out); $(tail -3 controller.log)"
fi
flood_stop
stop_controller

# ---- the request deadline ----------------------------------------------------------------------
# A node's connection that authenticated is kept (a client that syncs, waits until the flood
# is gone, and syncs again on the same connection); the flood is closed however busy it keeps
# itself.
cat >keepalive.py <<'PY'
import http.client, os, ssl, sys, time
port, body = int(sys.argv[1]), open("sync.json", "rb").read()
ctx = ssl.create_default_context(cafile="server-ca.pem")
ctx.load_cert_chain("sat-1.pem", "sat-1.key")
c = http.client.HTTPSConnection("127.0.0.1", port, context=ctx, timeout=60)
def sync():
    c.request("POST", "/v1/nodes/sat-1/sync", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    r.read()
    return r.status
print("first", sync(), flush=True)
sock = c.sock
while not os.path.exists("go"):
    time.sleep(0.2)
try:
    status = sync()
    print("second", status, "same-connection" if c.sock is sock else "new-connection", flush=True)
except Exception as e:
    print("second failed:", repr(e), flush=True)
PY
printf '%s' "$sync_body" >sync.json
rm -f go
start_controller --request-deadline 5
python3 keepalive.py "$PORT" >keepalive.out 2>&1 &
track_pid $!
wait_for 60 grep -q '^first 200' keepalive.out || fail "the node's first sync on its kept connection" "$(cat keepalive.out)"
flood 200 25
wait_for 60 flood_open || fail "the deadline flood did not open" "$(cat flood.out)"
if wait_for 120 flood_closed_at_least 200; then
        pass "--request-deadline 5: all 200 flood connections closed by the controller, trickling ones too"
        n=$(shed deadline)
        [ "${n:-0}" -ge 200 ] && pass "counted as shed past the deadline ($n)" || fail "deadline shed count" "'$n'"
        held_at_most 0 && pass "none left open" || fail "flood connections left" "$(held) held"
else
        fail "the deadline did not close the flood" "$(tail -1 flood.out); $(held) held"
fi
touch go
wait_for 60 grep -q '^second' keepalive.out
grep -q '^second 200 same-connection' keepalive.out &&
        pass "the node's connection, authenticated before the deadline, outlived it: a second sync on it" ||
        fail "the node's kept connection" "$(cat keepalive.out)"
code=$(node_sync)
[ "$code" = 200 ] && pass "a node syncs within the deadline (HTTP 200)" || fail "node sync with a deadline" "HTTP $code $(cat sync.err)"
grep -q 'unauthenticated ones shed past 960, and closed 5 s after they opened' controller.log &&
        pass "the bounds are logged at the start" || fail "bounds log line" "$(grep connections: controller.log)"
flood_stop
stop_controller

# ---- a sync held on one server thread does not hold the others ----------------------------------
# The failpoint stops sat-1's sync after its parse, as a slow parse or transaction would, until
# the file goes: meanwhile sat-2 is answered on another thread.
echo sat-1 >stall
ORBIT_FAILPOINT_SYNC_STALL_FILE=$D/stall start_controller --threads 2
grep 'server thread' controller.log | tail -1 | grepq ' 2 server threads$' && pass "--threads 2: two server threads" || fail "threads log" "$(grep thread controller.log)"
curl -sS -o sync1.out -w '%{http_code}' --max-time 120 --cacert server-ca.pem --cert sat-1.pem --key sat-1.key \
        -H 'Content-Type: application/json' --data-binary "$sync_body" "$URL/v1/nodes/sat-1/sync" >sync1.code 2>&1 &
S1=$!
track_pid "$S1"
if wait_for 60 grep -q 'failpoint: the sync of sat-1 stalls' controller.log; then
        body2=${sync_body//sat-1/sat-2}
        code=$(curl -sS -o sync2.out -w '%{http_code}' --max-time 60 --cacert server-ca.pem --cert sat-2.pem \
                --key sat-2.key -H 'Content-Type: application/json' --data-binary "$body2" "$URL/v1/nodes/sat-2/sync" 2>&1)
        if [ "$code" = 200 ] && kill -0 "$S1" 2>/dev/null && [ -e stall ] &&
                ! grep -q 'failpoint: the sync of sat-1 goes on' controller.log; then
                pass "sat-2 is answered (HTTP 200) while sat-1's sync is held on the other thread"
        else
                fail "a second sync beside a held one" "HTTP $code; sat-1 still held: $(kill -0 "$S1" 2>/dev/null && echo yes || echo no)"
        fi
else
        fail "the failpoint did not hold sat-1's sync" "$(tail -3 controller.log)"
fi
rm -f stall
wait "$S1"
[ "$(cat sync1.code)" = 200 ] && pass "released, sat-1's sync is answered too (HTTP 200)" || fail "sat-1 after the release" "$(cat sync1.code)"
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
metrics | grepq '^orbit_controller_syncs_limited_total 1$' && pass "the refusal is counted in the metrics" ||
        fail "syncs_limited metric" "$(metrics 2>&1 | grep limited)"
grep -q "sync from sat-1 refused: more than 1 syncs a minute" controller.log && pass "and logged" || fail "no log line"
stop_controller
has_sanitizer_report "$D/controller.log" && fail "sanitizer report in the controller log"
finish
