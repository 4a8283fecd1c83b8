# Integration test of node certificate renewal over the link (#18 item 3, docs/security.md,
# "Node certificates"): a real orbit-controller with the node CA's key and real agents on
# loopback. A node near its certificate's end gets a new one over the link and syncs with
# it (the old one used until then); a node whose certificate expired is refused until an
# operator allows its renewal, then recovers; one without that leave stays refused; a CSR
# for another node is refused. Certificates are made by openssl, back-dated with
# tests/integration/fake-rtc.so (preloaded in openssl only).
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq curl; do
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
DAY=86400
SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1'
NODE_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
printf '%s\n' "$NODE_EXT" >node.ext
# openssl at another time: AGO seconds back
at() { # AGO COMMAND...
        local ago=$1
        shift
        LD_PRELOAD=$FAKE_RTC ORBIT_FAKE_RTC=-"$ago" "$@"
}
mkca server-ca "/CN=ground TLS CA" && mkcert server 127.0.0.1 server-ca "$SERVER_EXT" ||
        bail "openssl could not make the server certificate"
# the node CA: from 20 days ago for 60 days
openssl ecparam -name prime256v1 -genkey -noout -out node-ca.key 2>/dev/null &&
        at $((20 * DAY)) openssl req -x509 -new -key node-ca.key -subj "/CN=fleet node CA" -days 60 \
                -out node-ca.pem -addext basicConstraints=critical,CA:TRUE \
                -addext keyUsage=critical,keyCertSign 2>/dev/null || bail "openssl: the node CA"
nodecert() { # NODE ISSUED_DAYS_AGO DAYS
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -new -key "$1.key" -subj "/CN=$1" -out "$1.csr" 2>/dev/null &&
                at $(($2 * DAY)) openssl x509 -req -in "$1.csr" -CA node-ca.pem -CAkey node-ca.key \
                        -CAcreateserial -days "$3" -extfile node.ext -out "$1.pem" 2>/dev/null
}
# sat-1 ends in 2 days (of 10): due; sat-2 and sat-3 expired 10 days ago
nodecert sat-1 8 10 && nodecert sat-2 20 10 && nodecert sat-3 20 10 || bail "openssl: the node certificates"
serial_of() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'; }
OLD1=$(serial_of sat-1.pem)
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null || bail "orbit-bundle keygen failed"

# ---- the controller: it renews (the node CA's key), certificates of 20 days --------------------
CLOG=$D/controller.log
"$OC" serve --listen "127.0.0.1:0" --port-file "$D/port" --data-dir "$D/data" \
        --cert server.pem --key server.key --node-ca node-ca.pem --node-ca-key node-ca.key \
        --node-cert-days 20 --operator-token-file token --command-key cmd.key --command-cert cmd.pem \
        --poll-interval 1 --timeout 10 >>"$CLOG" 2>&1 &
track_pid "$!"
wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$CLOG")"
URL=https://127.0.0.1:$(cat port)
oc() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }
grep -q "node certificates are renewed over the link: 20 days" "$CLOG" &&
        pass "the controller says it renews node certificates" || fail "no renewal line in the controller log"

# ---- the nodes -----------------------------------------------------------------------------------
FAIL_CONTEXT_LOG=$CLOG
APID=""
N=""
start_node() { # NODE: an agent with NODE's certificate, renewal 30 days ahead
        N=$D/$1
        mkdir -p "$N/etc/keys/commands" "$N/sys/class/thermal/thermal_zone0"
        cp cmd-ca.pem "$N/etc/keys/commands/"
        echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
        echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
        cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "$1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys"},
 "runtime": {"enabled": false},
 "health": {"poll_interval_ms": 500, "report_interval_sec": 5, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "link": {"enabled": true, "url": "$URL", "ca": "$D/server-ca.pem", "cert": "$D/$1.pem",
          "key": "$D/$1.key", "poll_interval_sec": 1, "backoff_min_sec": 1, "backoff_max_sec": 1,
          "min_sync_interval_sec": 1, "renew_before_days": 30}}
JSON
        FAIL_CONTEXT_LOG=$N/agent.log
        "$AGENT" --config "$N/etc/agent.json" >>"$N/agent.log" 2>&1 &
        APID=$!
        track_pid "$APID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent of $1 did not answer"
}
stop_node() {
        kill -TERM "$APID"
        wait_exit "$APID" 30 && [ "$WAIT_RC" = 0 ] || fail "the agent stops cleanly" "status $WAIT_RC"
}
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
lnk() { ctl link --json | jq -r "$1"; }
synced() { [ "$(lnk .syncs_ok)" -ge "$1" ]; }
logged() { grep -q -- "$1" "$CLOG"; }
issued_to() { sed -n "s/.*certificate serial \([0-9a-f]*\) issued to $1,.*/\1/p" "$CLOG" | tail -1; }

# ---- a node near its certificate's end ----------------------------------------------------------
start_node sat-1
check "sat-1 syncs with its old certificate (serial $OLD1)" wait_for 30 logged "node sat-1 syncs with certificate serial $OLD1,"
[ "$(lnk .certificate.renewal)" = due ] && pass "the agent finds it due for renewal (by its trusted time)" ||
        fail "renewal state" "$(ctl link --json | jq -c .certificate)"
check "the controller issues sat-1 a new certificate" wait_for 30 logged "issued to sat-1,"
NEW1=$(issued_to sat-1)
grep -q "issued to sat-1, .*it asked with serial $OLD1$" "$CLOG" &&
        pass "asked for with the old certificate ($OLD1), which worked until then" ||
        fail "who asked for the new certificate" "$(grep "issued to sat-1" "$CLOG")"
check "sat-1 syncs with the new certificate (serial $NEW1)" wait_for 30 logged "node sat-1 syncs with certificate serial $NEW1,"
cert_is_new() { [ "$(lnk .certificate.serial)" = "$NEW1" ] && [ "$(lnk .certificate.renewed)" = true ] &&
        [ "$(lnk .certificate.trial)" = false ]; }
check "the agent uses it as its own (renewed, no longer on trial)" wait_for 20 cert_is_new
ctl link | grepq "^Certificate: *serial $NEW1, not after .*, valid$" && pass "orbitctl link shows it: $(ctl link | grep Certificate:)" ||
        fail "orbitctl link" "$(ctl link)"
[ "$(lnk .certificate.renewal)" = valid ] && pass "and finds it valid: no renewal due" ||
        fail "renewal state after" "$(ctl link --json | jq -c .certificate)"
[ -f "$N/state/link-cert.pem" ] && [ "$(stat -c %a "$N/state/link-cert.pem")" = 600 ] &&
        [ ! -e "$N/state/link-next.pem" ] && [ ! -e "$N/state/link-next.key" ] &&
        pass "state/link-cert.pem holds it (0600), nothing half-done left" ||
        fail "the state dir" "$(ls -l "$N/state")"
[ "$(serial_of "$N/state/link-cert.pem")" = "$NEW1" ] &&
        openssl x509 -in "$N/state/link-cert.pem" -noout -checkend $((19 * DAY)) >/dev/null &&
        openssl verify -CAfile node-ca.pem -purpose sslclient "$N/state/link-cert.pem" >/dev/null 2>&1 &&
        pass "it chains to the node CA, for TLS clients, valid 20 days" ||
        fail "the new certificate" "$(openssl x509 -in "$N/state/link-cert.pem" -noout -text | head -20)"
[ "$(serial_of sat-1.pem)" = "$OLD1" ] && pass "link.cert (the factory's) is left as it was" ||
        fail "link.cert changed"
ok0=$(lnk .syncs_ok)
check "sat-1 keeps syncing" wait_for 20 synced $((ok0 + 2))
renewed_record() { oc records sat-1 --kind link.cert_renewed --json | jq -e ".[] | select(.body.serial == \"$NEW1\" and .body.replaces == \"$OLD1\")" >/dev/null; }
check "the controller has the node's link.cert_renewed record" wait_for 20 renewed_record
[ "$(oc node show sat-1 --json | jq -r .certificate.serial)" = "$NEW1" ] &&
        pass "node show names the certificate in use" || fail "node show" "$(oc node show sat-1 --json | jq -c .certificate)"
stop_node
start_node sat-1
ok0=$(lnk .syncs_ok)
check "restarted, sat-1 syncs" wait_for 30 synced 1
[ "$(lnk .certificate.serial)" = "$NEW1" ] && [ "$(lnk .certificate.renewal)" = valid ] &&
        pass "with the renewed certificate (not link.cert's, which ends sooner)" ||
        fail "after a restart" "$(ctl link --json | jq -c .certificate)"
stop_node
[ "$(grep -c "issued to sat-1," "$CLOG")" = 1 ] && pass "one certificate was issued to sat-1" ||
        fail "certificates issued to sat-1" "$(grep "issued to sat-1" "$CLOG")"

# ---- cut short: the agent killed as its new certificate comes, files left half-way --------------
# The kill lands at a step of link-next.pem's write that the test holds (the failpoint
# ORBIT_FAILPOINT_WRITE_STALL_AT): sat-4 once the file is renamed into place (whole, never
# tried): it is tried at the next start and kept; sat-5 before the rename (only the temp
# file), with a broken link-next.pem planted where none was: it is removed, the old
# certificate used, a new one asked for. Both leave a temp file (junk here; a real cut
# leaves a private key there), which the next start removes.
cut_renewal() { # NODE STEP
        : >"$D/renew-stall"
        ORBIT_FAILPOINT_WRITE_STALL_AT="*/link-next.pem:$2" ORBIT_FAILPOINT_WRITE_STALL_FILE=$D/renew-stall start_node "$1"
        check "$1 (due) is issued a new certificate" wait_for 30 logged "issued to $1,"
        check "$1: its write of link-next.pem held $2 (failpoint)" \
                wait_for 30 grep -q "failpoint: the write of $N/state/link-next.pem held $2" "$N/agent.log"
        kill -KILL "$APID"
        wait_exit "$APID" 10
        rm -f "$D/renew-stall"
        printf 'junk\n' >"$N/state/link-next.pem.tmp"
}
renewed_in_use() { [ "$(lnk .certificate.renewed)" = true ] && [ "$(lnk .certificate.trial)" = false ] &&
        [ "$(lnk .syncs_ok)" -ge 1 ]; }
nodecert sat-4 8 10 && nodecert sat-5 8 10 || bail "openssl: sat-4's and sat-5's certificates"
cut_renewal sat-4 renamed
grepq -- '-----BEGIN EC PRIVATE KEY-----' "$N/state/link-next.pem" &&
        pass "sat-4: cut after the rename, link-next.pem holds the new pair" ||
        fail "sat-4: link-next.pem after the cut" "$(ls -l "$N/state")"
start_node sat-4
check "restarted, sat-4 ends with a renewed certificate in use and syncs" wait_for 60 renewed_in_use
check "sat-4: the certificate written before the kill was tried and kept" test "$(lnk .certificate.serial)" = "$(issued_to sat-4)"
logged "node sat-4 syncs with certificate serial $(lnk .certificate.serial)," &&
        pass "the controller sees the certificate the agent says it uses" || fail "sat-4's certificate at the controller"
check "sat-4: the temp file the cut left is removed" test ! -e "$N/state/link-next.pem.tmp"
grep -q "link-next.pem.tmp, left by a renewal cut short, removed" "$N/agent.log" &&
        pass "sat-4: the removal is logged" || fail "sat-4: the temp file's removal" "$(grep 'link:' "$N/agent.log" | tail -3)"
stop_node
cut_renewal sat-5 written
check "sat-5: cut before the rename, no link-next.pem" test ! -e "$N/state/link-next.pem"
printf -- '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n' >"$N/state/link-next.pem"
start_node sat-5
check "restarted, sat-5 ends with a renewed certificate in use and syncs" wait_for 60 renewed_in_use
grep -q "the renewed certificate not yet tried is not good" "$N/agent.log" &&
        pass "sat-5: a broken one not yet tried was removed, the old one used, a new one asked for" ||
        fail "sat-5: a broken link-next.pem" "$(grep 'link:' "$N/agent.log" | tail -5)"
check "sat-5: the temp file the cut left is removed" test ! -e "$N/state/link-next.pem.tmp"
[ "$(grep -c "issued to sat-5," "$CLOG")" = 2 ] && pass "sat-5: a second certificate issued after the cut" ||
        fail "certificates issued to sat-5" "$(grep "issued to sat-5" "$CLOG")"
logged "node sat-5 syncs with certificate serial $(lnk .certificate.serial)," &&
        pass "the controller sees sat-5's new certificate in use" || fail "sat-5's certificate at the controller"
stop_node

# ---- CSRs that are not the node's own ------------------------------------------------------------
openssl ecparam -name prime256v1 -genkey -noout -out other.key 2>/dev/null &&
        openssl req -new -key other.key -subj "/CN=sat-9" -out other.csr 2>/dev/null || bail "openssl: a CSR"
post_csr() { # NODE_IN_PATH CSR_FILE: the HTTP status, with sat-1's certificate
        jq -n --rawfile csr "$2" '{format: 1, csr: $csr}' |
                curl -s -o "$D/answer.json" -w '%{http_code}' --cacert server-ca.pem --cert "$D/sat-1/state/link-cert.pem" \
                        -H 'Content-Type: application/json' --data-binary @- "$URL/v1/nodes/$1/certificate"
}
st=$(post_csr sat-1 other.csr)
[ "$st" = 422 ] && jq -r .message answer.json | grepq 'not "CN=sat-1"' &&
        pass "a CSR for another node (CN=sat-9) from sat-1 is refused: $(jq -r .message answer.json)" ||
        fail "a CSR for another node" "HTTP $st: $(cat answer.json)"
st=$(post_csr sat-9 other.csr)
[ "$st" = 403 ] && pass "sat-1 cannot ask for sat-9's certificate: $(jq -r .message answer.json)" ||
        fail "sat-1 asking on sat-9's route" "HTTP $st: $(cat answer.json)"
! grep -q "issued to sat-9" "$CLOG" && pass "nothing was issued for sat-9" || fail "sat-9 got a certificate"

# ---- a node whose certificate expired ------------------------------------------------------------
start_node sat-2
check "sat-2's expired certificate: its syncs are refused" wait_for 30 logged 'client certificate refused: .*expired.*(CN "sat-2")'
check "its renewal too, without an operator's leave" wait_for 30 logged "certificate request from sat-2 refused: its certificate"
[ "$(lnk .certificate.renewal)" = expired ] && [ "$(lnk .syncs_ok)" = 0 ] &&
        pass "the agent knows it expired: $(lnk .certificate.renewal_error)" ||
        fail "sat-2's state" "$(ctl link --json | jq -c '{syncs_ok, last_error, certificate}')"
oc node allow-renew sat-2 --until 2h >allow.out 2>&1 && grep -q "sat-2 may renew its expired certificate until" allow.out &&
        pass "an operator allows it: $(cat allow.out)" || fail "node allow-renew" "$(cat allow.out)"
oc audit list --json | jq -e '.[] | select(.method == "POST" and (.path | startswith("/v1/nodes/sat-2/allow-renew?until=")))' >/dev/null &&
        pass "the audit log has it, with its end" || fail "audit" "$(oc audit list --json | jq -c .)"
st=$(curl -s -o answer.json -w '%{http_code}' --cacert server-ca.pem --cert sat-2.pem --key sat-2.key \
        --data-binary '{"format":1,"node":"sat-2","boot_epoch":1,"boot_id":"x","last_command_seq":0,"records":[]}' \
        "$URL/v1/nodes/sat-2/sync")
[ "$st" = 403 ] && [ "$(jq -r .error answer.json)" = certificate-expired ] &&
        pass "with the leave, its expired certificate still cannot sync: $(jq -r .message answer.json)" ||
        fail "a sync with the expired certificate and a leave" "HTTP $st: $(cat answer.json)"
check "the controller issues sat-2 a new certificate by the leave" wait_for 30 logged "issued to sat-2, .*by an operator's leave"
NEW2=$(issued_to sat-2)
check "sat-2 syncs with it (serial $NEW2)" wait_for 30 logged "node sat-2 syncs with certificate serial $NEW2,"
check "and the agent counts good syncs" wait_for 20 synced 1
[ "$(lnk .certificate.serial)" = "$NEW2" ] && [ "$(lnk .certificate.renewal)" = valid ] &&
        pass "the agent uses the new one: $(ctl link --json | jq -c .certificate)" ||
        fail "sat-2's certificate" "$(ctl link --json | jq -c .certificate)"
[ "$(oc node show sat-2 --json | jq -r .certificate.renew_expired_until)" = null ] &&
        pass "the leave ended once the new certificate was in use" ||
        fail "the leave" "$(oc node show sat-2 --json | jq -c .certificate)"
stop_node

# ---- one without the leave stays refused ----------------------------------------------------------
start_node sat-3
refusals() { [ "$(grep -c "certificate request from sat-3 refused" "$CLOG")" -ge "$1" ]; }
check "sat-3 (expired, no leave) asks and is refused, again" wait_for 30 refusals 2
[ "$(lnk .syncs_ok)" = 0 ] && ! grep -q "issued to sat-3" "$CLOG" && pass "it never synced nor got a certificate" ||
        fail "sat-3" "$(ctl link --json | jq -c '{syncs_ok, certificate}')"
stop_node

for n in sat-1 sat-2 sat-3; do
        has_sanitizer_report "$D/$n/agent.log" && fail "sanitizer report in $n's agent log"
done
has_sanitizer_report "$CLOG" && fail "sanitizer report in the controller's log"
finish
