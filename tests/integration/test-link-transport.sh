# Integration test of the link's transport (issue #17, items 2 and 7): a real controller and
# a real agent over HTTPS with mutual TLS on loopback. Syncs inside a pass share one TLS
# connection (the agent's connection count and the controller's stay at one); a new
# connection after the controller closed an idle one resumes the TLS session from a ticket
# and the node is still recognised by its certificate; the congestion control asked for is
# the one on the sockets (ss -ti), and a name the kernel does not offer falls back to its
# default with a log line naming what it offers.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq curl ss; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
OC=$top_builddir/orbit-controller
[ -x "$OC" ] || skip_all "orbit-controller not built (--disable-controller)"
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# Two algorithms the kernel offers, neither its default, so that each end is told apart
# from what it would use anyway; bbr for the node when there is one.
OFFERED=$(cat /proc/sys/net/ipv4/tcp_available_congestion_control 2>/dev/null)
KERNEL_CC=$(cat /proc/sys/net/ipv4/tcp_congestion_control 2>/dev/null)
NODE_CC="" CTL_CC=""
for a in bbr $OFFERED; do
        [ "$a" = "$KERNEL_CC" ] && continue
        if [ -z "$NODE_CC" ]; then NODE_CC=$a
        elif [ -z "$CTL_CC" ] && [ "$a" != "$NODE_CC" ]; then CTL_CC=$a
        fi
done
case " $OFFERED " in *" $NODE_CC "*) ;; *) NODE_CC="" ;; esac
note "kernel offers: $OFFERED (default $KERNEL_CC); node: ${NODE_CC:-none}, controller: ${CTL_CC:-none}"

ground_pki sat-1 || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null || bail "orbit-bundle keygen failed"

LOG=$D/controller.log
CPID=""
start_controller() { # PORT POLL IDLE_TIMEOUT [--tcp-congestion NAME]
        local port=$1 poll=$2 idle=$3
        shift 3
        rm -f port
        "$OC" serve --listen "127.0.0.1:$port" --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca "${NODE_CA:-node-ca.pem}" \
                --operator-token-file token --command-key cmd.key --command-cert cmd.pem \
                --poll-interval "$poll" --timeout "$idle" "$@" >>"$LOG" 2>&1 &
        CPID=$!
        track_pid "$CPID"
        wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$LOG")"
        PORT=$(cat "$D/port")
}
metric() { # NAME -> value
        curl -s --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" \
                "https://127.0.0.1:$PORT/metrics" | awk -v m="$1" '$1 == m {print $2}'
}
start_controller 0 1 30 ${CTL_CC:+--tcp-congestion "$CTL_CC"}
URL=https://127.0.0.1:$PORT

N=$D/node
mkdir -p "$N/etc/keys/commands" "$N/sys/class/thermal/thermal_zone0"
cp cmd-ca.pem "$N/etc/keys/commands/"
echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
write_config() { # TCP_CONGESTION
        cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "sat-1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys"},
 "runtime": {"enabled": false}, "update": {"enabled": false},
 "health": {"poll_interval_ms": 200, "report_interval_sec": 60, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "link": {"enabled": true, "url": "$URL", "ca": "$D/server-ca.pem", "cert": "$D/sat-1.pem",
          "key": "$D/sat-1.key", "poll_interval_sec": 1, "backoff_min_sec": 1, "backoff_max_sec": 2,
          "min_sync_interval_sec": 1, "tcp_congestion": "$1"}}
JSON
}
FAIL_CONTEXT_LOG=$N/agent.log
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
lnk() { ctl link --json | jq -r "$1"; }
APID=""
start_agent() {
        "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/etc/agent.json" >>"$N/agent.log" 2>&1 &
        APID=$!
        track_pid "$APID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent did not answer"
}
write_config "${NODE_CC:-default}"
start_agent

# ---- one connection for a pass ------------------------------------------------------------------
check "the agent syncs every second" wait_for 20 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 5 ]"
ok=$(lnk .syncs_ok) conns=$(lnk .connections_opened)
[ "$conns" = 1 ] && pass "$ok syncs over one connection (the agent's count)" ||
        fail "syncs in a pass reuse the connection" "$conns connections for $ok syncs"
# this scrape is a connection of its own
c=$(metric orbit_controller_connections_total)
[ "$c" = 2 ] && pass "the controller accepted one connection from the node (and one for /metrics)" ||
        fail "the controller's connection count" "$c"
# the node's certificate chain is verified at its first request, not again at every sync
v=$(metric orbit_controller_client_certificates_verified_total)
[ "$v" = 1 ] && pass "the node's certificate was verified once for its $ok syncs on that connection" ||
        fail "client certificate verifications on one connection" "${v:-none} for $ok syncs"

# ---- congestion control on both ends -------------------------------------------------------------
if [ -n "$NODE_CC" ]; then
        [ "$(lnk .tcp_congestion)" = "$NODE_CC" ] && pass "the agent reports $NODE_CC on its connection" ||
                fail "the agent's congestion control" "$(lnk .tcp_congestion)"
        ss -tin state established "( dport = :$PORT )" >ss-node.txt
        grep -qw "$NODE_CC" ss-node.txt && pass "ss shows $NODE_CC on the node's socket" ||
                fail "ss on the node's socket" "$(cat ss-node.txt)"
else
        note "no congestion control other than the kernel's default ($KERNEL_CC): node checks skipped"
fi
if [ -n "$CTL_CC" ]; then
        ss -tin state established "( sport = :$PORT )" >ss-ctl.txt
        grep -qw "$CTL_CC" ss-ctl.txt && pass "ss shows $CTL_CC on the controller's accepted sockets" ||
                fail "ss on the controller's socket" "$(cat ss-ctl.txt)"
        grep -q "connections use TCP congestion control $CTL_CC" "$LOG" &&
                pass "the controller says which congestion control it set" || fail "controller log" "$(tail -3 "$LOG")"
fi

# ---- TLS resumption across connections; a name the kernel lacks ------------------------------------
# The controller closes idle connections before the next sync (idle 2 s, poll 4 s): each sync
# is a new connection, as at the next pass. Tickets are off by default (they cost bytes with
# GnuTLS 3.7, docs/protocol.md); --tls-tickets turns them on. The agent is restarted with a
# congestion control the kernel does not have: it says so and carries on with the default.
kill -TERM "$APID"; wait_exit "$APID" 20
kill -TERM "$CPID"; wait_exit "$CPID" 20
start_controller "$PORT" 4 2 --tls-tickets
check "the controller warns that its idle timeout is not above the poll interval" \
        grep -q "is not above --poll-interval" "$LOG"
write_config nosuchcc
start_agent
check "a few syncs on fresh connections" wait_for 30 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 4 ]"
ok=$(lnk .syncs_ok) conns=$(lnk .connections_opened) failed=$(lnk .syncs_failed)
[ "$conns" -ge 3 ] && [ "$failed" = 0 ] && pass "$ok syncs on $conns connections, none failed" ||
        fail "syncs on fresh connections" "$ok ok, $failed failed, $conns connections; $(lnk .last_error)"
r=$(metric orbit_controller_tls_resumed_total)
[ "${r:-0}" -ge 2 ] && pass "$r of them resumed the TLS session, the node still known by its certificate" ||
        fail "TLS session resumption" "resumed: ${r:-none}"
grep -q 'tcp_congestion "nosuchcc": .*the kernel offers: ' "$N/agent.log" &&
        pass "an unknown congestion control is refused with what the kernel offers" ||
        fail "the fallback's log line" "$(grep tcp_congestion "$N/agent.log")"
[ "$(grep -c 'tcp_congestion "nosuchcc"' "$N/agent.log")" = 1 ] && pass "...once, not at every connection" ||
        fail "the fallback is said once" "$(grep -c 'tcp_congestion "nosuchcc"' "$N/agent.log")"
[ "$(lnk .tcp_congestion)" = "$KERNEL_CC" ] && pass "and the connection uses the kernel's default ($KERNEL_CC)" ||
        fail "the fallback's congestion control" "$(lnk .tcp_congestion)"

# ---- a node's certificates revoked while its connection is open -----------------------------------
# The revocation was asked of the store at the connection's first request; the syncs after it
# on that connection have their own transaction read it (one round trip fewer): the refusal
# must be the same, at the next sync.
kill -TERM "$APID"; wait_exit "$APID" 20
kill -TERM "$CPID"; wait_exit "$CPID" 20
start_controller "$PORT" 1 30
write_config default
start_agent
check "the agent syncs again, on one connection" wait_for 20 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 3 ]"
conns=$(lnk .connections_opened)
[ "$conns" = 1 ] || fail "the agent's syncs before the revocation" "$conns connections"
code=$(curl -s -o revoke.json -w '%{http_code}' --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" \
        -X POST --data '{}' "https://127.0.0.1:$PORT/v1/nodes/sat-1/revoke-certificates")
[ "$code" = 200 ] && pass "sat-1's certificates revoked by an operator" || fail "revoke sat-1" "HTTP $code $(cat revoke.json)"
revoked() { lnk .last_error | grep -q "certificate-revoked\|is revoked"; }
check "the next sync on the open connection is refused: certificate revoked" wait_for 20 revoked
[ "$(lnk .connections_opened)" = "$conns" ] && pass "...on the connection opened before the revocation" ||
        fail "the refusal's connection" "$conns connections before, $(lnk .connections_opened) after"
grep -q 'node sat-1 refused: its certificate (serial [0-9a-f]*, made .*) is revoked' "$LOG" &&
        pass "the refusal is logged with the serial" || fail "revocation log line" "$(grep -i revoked "$LOG" | tail -3)"

# ---- the node CA expires while a node's connection is open ------------------------------------
# The controller keeps its verdict on a connection's chain: only until the first expiry on
# the chain or of the CA it verified against. A node CA made (by a clock set back) to expire
# in LIFE seconds, a node certificate from it valid for days: once the CA has expired, the
# next sync on the same connection is refused, as a new connection's would be.
# (The controller's and the agent's starts and two syncs must fit in LIFE: scaled, since
# under valgrind they take several times as long.)
LIFE=$((45 * ORBIT_TEST_SLOW))
FAKE_RTC=$top_builddir/tests/integration/fake-rtc.so
kill -TERM "$APID"; wait_exit "$APID" 20
kill -TERM "$CPID"; wait_exit "$CPID" 20
openssl ecparam -name prime256v1 -genkey -noout -out short-ca.key 2>/dev/null &&
        LD_PRELOAD=$FAKE_RTC ORBIT_FAKE_RTC=-$((86400 - LIFE)) openssl req -x509 -new -key short-ca.key \
                -subj "/CN=short-lived node CA" -days 1 -out short-ca.pem -addext basicConstraints=critical,CA:TRUE \
                -addext keyUsage=critical,keyCertSign 2>/dev/null &&
        mkcert sat-1s sat-1 short-ca "$TLS_CLIENT_EXT" || bail "openssl could not make the short-lived CA"
ca_end=$(date -d "$(openssl x509 -in short-ca.pem -noout -enddate | cut -d= -f2)" +%s)
rm -rf "$D/data" # sat-1 is revoked there
NODE_CA=short-ca.pem start_controller "$PORT" 1 120
cp sat-1s.pem "$D/sat-1.pem" && cp sat-1s.key "$D/sat-1.key"
start_agent
check "the node syncs with a certificate of the short-lived CA" wait_for 20 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 2 ]"
[ "$(date +%s)" -lt "$ca_end" ] || bail "the machine took longer than the CA's $LIFE s to sync twice"
[ "$(lnk .connections_opened)" = 1 ] || fail "the node's syncs before the CA expires" "$(lnk .connections_opened) connections"
# the agent syncs every second on that connection (idle timeout 120 s): the first sync after
# the expiry is on it (the agent may open another after a refusal); with the verdict kept
# until the leaf's expiry (days), every sync there would go on being taken
ca_gone() { [ "$(date +%s)" -gt "$ca_end" ] && lnk .last_error | grep -q "403.*does not verify"; }
check "once the node CA has expired, the node's next sync is refused" wait_for $((LIFE + 60)) ca_gone

kill -TERM "$APID"; wait_exit "$APID" 20
has_sanitizer_report "$N/agent.log" && fail "sanitizer report in the agent log"
has_sanitizer_report "$LOG" && fail "sanitizer report in the controller log"
finish
