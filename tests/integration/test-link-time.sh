# Integration test of trusted time (#18 item 4, agent/trusted-time.h): a real orbit-controller
# and a real agent whose clock is wrong, made so by tests/integration/fake-rtc.so (preloaded
# in the agent's process only: its realtime clock moves, its monotonic clock does not). With its RTC at 1970 the node still syncs (the controller's
# certificate is judged at the node's time floor, not at 1970) and takes the controller's
# time; its floor survives a restart; with its RTC three years ahead it syncs and its
# commands run instead of being used up as "expired"; an expired controller certificate is
# still refused at the floor.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
FAKE_RTC=$top_builddir/tests/integration/fake-rtc.so
[ -e "$FAKE_RTC" ] || bail "$FAKE_RTC not built (make check builds it)"
AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
OC=$top_builddir/orbit-controller
[ -x "$OC" ] || skip_all "orbit-controller not built (--disable-controller)"
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# ---- keys ------------------------------------------------------------------------------------
SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1'
mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
        mkcert server 127.0.0.1 server-ca "$SERVER_EXT" &&
        mkcert sat-1 sat-1 node-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth' || bail "openssl could not make the test certificates"
# A server certificate of the same CA that expired more than a year ago: before any build of
# this agent, so before its floor.
openssl ecparam -name prime256v1 -genkey -noout -out old.key 2>/dev/null &&
        openssl req -new -key old.key -subj "/CN=127.0.0.1" -out old.csr 2>/dev/null &&
        printf '%s\n' "$SERVER_EXT" >old.ext &&
        LD_PRELOAD=$FAKE_RTC ORBIT_FAKE_RTC=-$((700 * 86400)) openssl x509 -req -in old.csr -CA server-ca.pem \
                -CAkey server-ca.key -CAcreateserial -days 10 -extfile old.ext -out old.pem 2>/dev/null ||
        bail "openssl could not make an expired certificate"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null || bail "orbit-bundle keygen failed"

# ---- the controllers: a good one, and one with the expired certificate --------------------------
start_controller() { # NAME CERT KEY
        "$OC" serve --listen "127.0.0.1:0" --port-file "$D/$1.port" --data-dir "$D/$1.data" \
                --cert "$2" --key "$3" --node-ca node-ca.pem \
                --operator-token-file token --command-key cmd.key --command-cert cmd.pem \
                --poll-interval 1 --timeout 10 >>"$D/$1.log" 2>&1 &
        track_pid "$!"
        wait_for 20 test -s "$D/$1.port" || bail "the controller $1 did not start: $(tail -5 "$D/$1.log")"
}
start_controller good server.pem server.key
start_controller old old.pem old.key
URL=https://127.0.0.1:$(cat good.port)
OLD_URL=https://127.0.0.1:$(cat old.port)
oc() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }

# ---- the node --------------------------------------------------------------------------------
N=$D/node
mkdir -p "$N/etc/keys/commands" "$N/sys/class/thermal/thermal_zone0"
cp cmd-ca.pem "$N/etc/keys/commands/"
echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
write_config() { # URL [CERT: the node's certificate and key, sat-1 by default]
        local cert=${2:-sat-1}
        cat >"$N/etc/agent.json.tmp" <<JSON
{"config_version": 1, "node_id": "sat-1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys"},
 "runtime": {"enabled": false},
 "health": {"poll_interval_ms": 500, "report_interval_sec": 5, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "link": {"enabled": true, "url": "$1", "ca": "$D/server-ca.pem", "cert": "$D/$cert.pem",
          "key": "$D/$cert.key", "poll_interval_sec": 1, "backoff_min_sec": 1, "backoff_max_sec": 1,
          "min_sync_interval_sec": 1}}
JSON
        mv "$N/etc/agent.json.tmp" "$N/etc/agent.json"
}
write_config "$URL"
FAIL_CONTEXT_LOG=$N/agent.log
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
lnk() { ctl link --json | jq -r "$1"; }
tm() { ctl status --json | jq -r ".time$1"; }
APID=""
start_agent() { # ORBIT_FAKE_RTC value: the agent's clock (@SECONDS, +SECONDS)
        # ASan must come first among the libraries, which a preload breaks: tell it not to mind.
        env LD_PRELOAD="$FAKE_RTC" ORBIT_FAKE_RTC="$1" \
                ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
                "$AGENT" --config "$N/etc/agent.json" >>"$N/agent.log" 2>&1 &
        APID=$!
        track_pid "$APID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent did not answer"
}
stop_agent() {
        kill -TERM "$APID"
        wait_exit "$APID" 30 && [ "$WAIT_RC" = 0 ] || fail "the agent stops cleanly" "status $WAIT_RC"
}
near_now() { # SECONDS: within 5 minutes of this machine's true time
        local d=$(($1 - $(date +%s)))
        [ "${d#-}" -le 300 ]
}
synced() { [ "$(lnk .syncs_ok)" -ge "$1" ]; }
seq_of() { jq -r .seq; }
cmd_state() { oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .state"; }
cmd_reason() { oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .result_reason"; }
cmd_is() { [ "$(cmd_state "$1")" = "$2" ]; }

# ---- the RTC at 1970 ---------------------------------------------------------------------------
start_agent @86400
rtc=$(tm .rtc)
[ "$rtc" -lt 86400000 ] && pass "the agent's clock is at 1970 ($rtc)" || bail "fake-rtc.so did not set the agent's clock: $rtc"
# what the agent said at start, before any sync (which may already be done); the fake clock
# started at 86400 and runs: on a loaded machine a second or more may pass before the log
floor0=$(sed -n 's/.*the clock says 86[45][0-9][0-9], which is below the floor \([0-9]*\).*/\1/p' "$N/agent.log" | head -1)
[ -n "$floor0" ] && [ "$floor0" -ge "$(date -d 2026-01-01 +%s)" ] &&
        pass "before any sync the node took its floor, the build time ($floor0), not 1970" ||
        fail "the floor at start" "$(grep "trusted time" "$N/agent.log" | head -3)"
check "with its clock at 1970 the node syncs (the controller's certificate judged at the floor)" wait_for 30 synced 1
wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" status --json | jq -r .time.source)\" = controller ]"
t=$(ctl status --json | jq -c .time)
[ "$(jq -r .source <<<"$t")" = controller ] && near_now "$(jq -r .now <<<"$t")" &&
        pass "and takes the controller's time: $t" || fail "the controller's time" "$t"
off=$(jq -r .controller_offset_sec <<<"$t")
[ "$off" -gt $((50 * 365 * 86400)) ] && pass "the offset to the board's clock is reported ($off s)" ||
        fail "offset" "$t"
grep -q "the controller's time is [0-9]* s ahead of the board's clock" "$N/agent.log" &&
        pass "the log says the board's clock is behind" || fail "no log line on the clock's offset"
s=$(oc command send sat-1 status.send --json | seq_of)
check "a command runs (its expiry judged by the controller's time, not 1970)" wait_for 30 cmd_is "$s" "done"
# the node's records carry trusted time: the last health report's is now, not 1970
last_report_usec() { oc records sat-1 --kind health.report --limit 1000 --json | jq -r 'map(.time_usec) | max // 0'; }
report_now() { near_now $(($(last_report_usec) / 1000000)); }
check "the node's records carry the trusted time, not 1970" wait_for 30 report_now
# an expired controller certificate is refused at the floor too
write_config "$OLD_URL"
f0=$(lnk .syncs_failed)
kill -HUP "$APID"
failed_more() { [ "$(lnk .syncs_failed)" -gt "$f0" ]; }
if wait_for 30 failed_more; then
        lnk .last_error | grepq -i "expired" &&
                pass "a controller certificate that expired before the floor is refused: $(lnk .last_error)" ||
                fail "expired certificate: refused, but why?" "$(lnk .last_error)"
else
        fail "a controller with an expired certificate" "no failed sync: $(ctl link --json | jq -c '{syncs_ok, syncs_failed, last_error}')"
fi
write_config "$URL"
ok0=$(lnk .syncs_ok)
kill -HUP "$APID"
check "back to the good controller" wait_for 30 synced $((ok0 + 1))
told=$(tm .now)
stop_agent

# ---- the floor survives a restart, with the controller away -----------------------------------
write_config "https://127.0.0.1:1"
start_agent @86400
t=$(ctl status --json | jq -c .time)
[ "$(jq -r .source <<<"$t")" = floor ] && [ "$(jq -r .now <<<"$t")" -ge "$told" ] &&
        pass "restarted at 1970 with no controller: the floor kept from the last contact ($t)" ||
        fail "the floor after a restart" "$t, the controller said $told"
stop_agent
sed 1d "$N/state/time" | jq -e ".floor >= $told" >/dev/null && pass "state/time holds the floor" ||
        fail "the floor in state/time" "$(cat "$N/state/time")"

# ---- the RTC three years ahead -------------------------------------------------------------------
write_config "$URL"
start_agent +$((1095 * 86400))
rtc=$(tm .rtc)
[ "$rtc" -gt $(($(date +%s) + 1000 * 86400)) ] && pass "the agent's clock is three years ahead ($rtc)" ||
        bail "fake-rtc.so did not set the agent's clock: $rtc"
# the clock the agent logged at start: at most what it says now, and not long before
said=$(sed -n 's/.*the clock says \([0-9]*\), which is too far above the floor.*/\1/p' "$N/agent.log" | tail -1)
[ -n "$said" ] && [ "$said" -le "$rtc" ] && [ "$said" -ge $((rtc - 600)) ] &&
        pass "a clock that far above the floor is not believed (the floor is taken until the controller tells the time)" ||
        fail "the clock three years ahead" "$(grep "trusted time" "$N/agent.log" | tail -2)"
ok0=$(lnk .syncs_ok)
check "three years ahead the node syncs (its certificates are not judged expired)" wait_for 30 synced $((ok0 + 1))
s=$(oc command send sat-1 status.send --json | seq_of)
if wait_for 30 sh -c "[ -n \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | select(.state != \"queued\" and .state != \"sent\") | .state')\" ]"; then
        [ "$(cmd_state "$s")" = "done" ] && pass "a command runs, not used up as expired" ||
                fail "three years ahead: the command" "$(cmd_state "$s"): $(cmd_reason "$s")"
else
        fail "three years ahead: the command got no result" "$(cmd_state "$s")"
fi
t=$(ctl status --json | jq -c .time)
[ "$(jq -r .source <<<"$t")" = controller ] && near_now "$(jq -r .now <<<"$t")" &&
        pass "and the node's time is the controller's: $t" || fail "time three years ahead" "$t"
stop_agent

# ---- a controller whose clock ran ahead, past its own certificate ------------------------------
# Its server_time would be a floor that never goes down, at which every certificate of the
# ground (its own, 10 days) is expired: the node cut off for good. The node ignores a time
# past the notAfter of the certificate that carried it. (A node certificate of 25 days, so the
# controller, 15 days ahead, still takes it.)
openssl ecparam -name prime256v1 -genkey -noout -out sat-1-long.key 2>/dev/null &&
        openssl req -new -key sat-1-long.key -subj "/CN=sat-1" -out sat-1-long.csr 2>/dev/null &&
        openssl x509 -req -in sat-1-long.csr -CA node-ca.pem -CAkey node-ca.key -CAcreateserial -days 25 \
                -extfile sat-1.ext -out sat-1-long.pem 2>/dev/null || bail "openssl: the 25-day node certificate"
AHEAD_SEC=$((15 * 86400))
env LD_PRELOAD="$FAKE_RTC" ORBIT_FAKE_RTC=+$AHEAD_SEC \
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" \
        "$OC" serve --listen "127.0.0.1:0" --port-file "$D/ahead.port" --data-dir "$D/ahead.data" \
        --cert server.pem --key server.key --node-ca node-ca.pem \
        --operator-token-file token --command-key cmd.key --command-cert cmd.pem \
        --poll-interval 1 --timeout 10 >>"$D/ahead.log" 2>&1 &
track_pid "$!"
wait_for 20 test -s "$D/ahead.port" || bail "the controller ahead did not start: $(tail -5 "$D/ahead.log")"
write_config "https://127.0.0.1:$(cat ahead.port)" sat-1-long
start_agent +0
check "the node syncs with a controller 15 days ahead" wait_for 30 synced 2
t=$(ctl status --json | jq -c .time)
[ "$(jq -r .source <<<"$t")" != controller ] && [ "$(jq -r .floor <<<"$t")" -lt $(($(date +%s) + 86400)) ] &&
        pass "its time, past its own certificate's end, is not taken, nor the floor raised to it: $t" ||
        fail "the time of a controller past its own certificate" "$t"
grep -q "after its own certificate expired ([0-9]*): its clock is wrong; ignored" "$N/agent.log" &&
        pass "the log says why" || fail "no log line on the controller's clock"
stop_agent
write_config "$URL"
start_agent +0
ok0=$(lnk .syncs_ok)
check "after it, the node still syncs with the good controller (its certificate not judged expired)" \
        wait_for 30 synced $((ok0 + 1))
stop_agent
has_sanitizer_report "$N/agent.log" && fail "sanitizer report in the agent log"
for c in good old ahead; do
        has_sanitizer_report "$D/$c.log" && fail "sanitizer report in the $c controller's log"
done
finish
