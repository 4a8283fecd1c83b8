# Integration test of the trust document (#18 items 1 and 2, docs/security.md): a real
# orbit-controller and a real agent whose only anchors are the trust document of its image
# (no keyring directories). The command key is rotated fleet-wide over the link (v2, signed
# by 2 of 3 roots); the leaked old key is revoked, and a controller still signing with it has
# its commands refused; a document with too few root signatures is refused (and not sent
# again); a revoked release key's bundle is refused while a new signer's installs; the
# document survives a restart.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

for t in openssl jq; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
OC=$top_builddir/orbit-controller
TOOL=$top_builddir/tests/integration/bootenv-tool
[ -x "$OC" ] || skip_all "orbit-controller not built (--disable-controller)"
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"
T=$((ORBIT_TEST_TIMEOUT * 3))

# ---- keys: TLS by openssl, the signing roles by orbit-bundle keygen --------------------------
ground_pki sat-1 || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
kg() { "$OB" keygen "$@" >/dev/null 2>>"$D/keygen.err" || bail "keygen $*: $(cat "$D/keygen.err")"; }
for i in 1 2 3; do kg --role root --subject "CN=root $i" --days 3650 --key r$i.key --cert r$i.pem; done
kg --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem
kg --role command --subject "CN=command signer 1" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem --key cmd1.key --cert cmd1.pem
kg --ca --subject "CN=command CA 2" --key cmd2-ca.key --cert cmd2-ca.pem
kg --role command --subject "CN=command signer 2" --issuer-key cmd2-ca.key --issuer-cert cmd2-ca.pem --key cmd2.key --cert cmd2.pem
kg --ca --subject "CN=release CA" --key rel-ca.key --cert rel-ca.pem
kg --role release --subject "CN=release signer 1" --issuer-key rel-ca.key --issuer-cert rel-ca.pem --key rel1.key --cert rel1.pem
kg --role release --subject "CN=release signer 2" --issuer-key rel-ca.key --issuer-cert rel-ca.pem --key rel2.key --cert rel2.pem
pass "keys: 3 roots, 2 command signers under 2 CAs, 2 release signers under one CA"

# ---- trust documents -------------------------------------------------------------------------
EXPIRES=@$(($(date +%s) + 365 * 86400))
doc() { # FILE VERSION COMMAND_CA [--revoke CERT]... then: SIGNERS after --sign
        local out=$1 v=$2 cmd=$3
        shift 3
        local args=() signers=()
        while [ $# -gt 0 ] && [ "$1" != --sign ]; do args+=("$1"); shift; done
        [ $# -gt 0 ] && shift && signers=("$@")
        "$OB" trust-create --version "$v" --expires "$EXPIRES" --threshold "${TH:-2}" --root r1.pem --root r2.pem \
                --root r3.pem --release rel-ca.pem --command "$cmd" "${args[@]}" -o "$out" >/dev/null 2>"$D/tc.err" ||
                bail "trust-create $out: $(cat "$D/tc.err")"
        for s in "${signers[@]}"; do
                "$OB" trust-sign --key "$s.key" --cert "$s.pem" "$out" >/dev/null 2>"$D/ts.err" ||
                        bail "trust-sign $out $s: $(cat "$D/ts.err")"
        done
}
doc v1.json 1 cmd-ca.pem --sign r1 r2
doc v2.json 2 cmd2-ca.pem --revoke cmd1.pem --sign r1 r3
# v3-weak lowers the threshold to 1 and has one root's signature: good alone (what a holder of
# the controller's keys could make of one leaked root key), not as an update of v2 (2 of 3)
TH=1 doc v3-weak.json 3 cmd2-ca.pem --revoke cmd1.pem --revoke rel1.pem --sign r2
doc v3.json 3 cmd2-ca.pem --revoke cmd1.pem --revoke rel1.pem --sign r2 r3
out=$("$OB" trust-verify v1.json 2>&1) && pass "trust-verify: $out" || fail "trust-verify v1" "$out"
out=$("$OB" trust-verify --in-force v1.json v2.json 2>&1) && pass "v2 verifies as an update of v1" || fail "v2 over v1" "$out"
out=$("$OB" trust-verify --in-force v2.json v3-weak.json 2>&1) && fail "v3 with one signature" "$out" ||
        { grep -q "1 good signature of the roots in force (v2), 2 needed" <<<"$out" &&
                pass "the tool refuses v3-weak over v2: one root's signature" || fail "v3-weak reason" "$out"; }
fp=$("$OB" fingerprint cmd1.pem | cut -d' ' -f1)
jq -r .signed v2.json | jq -e --arg fp "$fp" '.revoked == [$fp]' >/dev/null &&
        pass "v2 revokes the old command key by its fingerprint" || fail "v2's revoked list" "$(jq -r .signed v2.json | jq -c .revoked)"

# ---- bundles ---------------------------------------------------------------------------------
CHUNK=65536
head -c $((8 * CHUNK)) /dev/urandom >v1.img
head -c $((8 * CHUNK)) /dev/urandom >v2.img
bundle() { # OUT SECURITY_VERSION SIGNER IMAGE
        printf '{"bundle_id": "%s", "version": "1.%s.0", "security_version": %s, "compatible": ["sim-board"]}\n' \
                "${1%.obundle}" "$2" "$2" >"$D/t.json"
        "$OB" create --manifest-template "$D/t.json" --image "rootfs=$4" --chunk-size $CHUNK --key "$3.key" \
                --cert "$3.pem" -o "$1" >/dev/null 2>"$D/ob.err" || bail "bundle $1: $(cat "$D/ob.err")"
}
bundle by-rel1.obundle 2 rel1 v2.img
bundle by-rel2.obundle 2 rel2 v2.img

# ---- the controller --------------------------------------------------------------------------
CPID=""
start_controller() { # TRUST_DOCUMENT COMMAND_SIGNER
        "$OC" serve --listen "127.0.0.1:${PORT:-0}" --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem --operator-token-file token \
                --command-key "$2.key" --command-cert "$2.pem" --trust-document "$1" \
                --poll-interval 1 --timeout 10 >>"$D/controller.log" 2>&1 &
        CPID=$!
        track_pid "$CPID"
        wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$D/controller.log")"
        PORT=$(cat "$D/port")
}
stop_controller() {
        kill -TERM "$CPID" 2>/dev/null
        wait_exit "$CPID" 20 || fail "the controller stops"
        rm -f "$D/port"
}
start_controller v1.json cmd1
URL=https://127.0.0.1:$PORT
oc() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }

# ---- the node: no keyring directories, only the image's trust document -------------------------
N=$D/node
mkdir -p "$N/etc/keys" "$N/slots" "$N/sys/class/thermal/thermal_zone0"
cp v1.json "$N/etc/keys/trust.json"
echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
cp v1.img "$N/slots/a"
: >"$N/slots/b"
echo "console=ttyS0 root=/dev/vda orbit.slot=A quiet" >"$N/cmdline"
"$TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "init-state"
cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "sat-1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false},
 "health": {"poll_interval_ms": 500, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "update": {"enabled": true, "hardware": "sim-board", "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"}, "models_dir": "$N/models",
            "gate_sec": 3600, "trial_timeout_sec": 7200, "checkpoint_mib": 1},
 "link": {"enabled": true, "url": "$URL", "ca": "$D/server-ca.pem", "cert": "$D/sat-1.pem",
          "key": "$D/sat-1.key", "poll_interval_sec": 1, "backoff_min_sec": 1, "backoff_max_sec": 1,
          "min_sync_interval_sec": 1}}
JSON
FAIL_CONTEXT_LOG=$N/agent.log
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
lnk() { ctl link --json | jq -r "$1"; }
trust() { ctl status --json | jq -r ".trust$1"; }
APID=""
# ORBIT_FAILPOINT_INSTALL_STALL_FILE: an install waits while $D/stall exists
start_agent() {
        ORBIT_FAILPOINT_INSTALL_STALL_FILE=$D/stall "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/etc/agent.json" \
                >>"$N/agent.log" 2>&1 &
        APID=$!
        track_pid "$APID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent did not answer"
}
stop_agent() {
        kill -TERM "$APID"
        wait_exit "$APID" 30 && [ "$WAIT_RC" = 0 ] || fail "the agent stops cleanly" "status $WAIT_RC"
}
synced() { [ "$(lnk .syncs_ok)" -ge "$1" ]; }
cmd_state() { oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .state"; }
cmd_reason() { oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .result_reason"; }
cmd_settled() { local s; s=$(cmd_state "$1"); [ -n "$s" ] && [ "$s" != queued ] && [ "$s" != sent ]; }
send() { oc command send sat-1 status.send --json | jq -r .seq; }
records_of() { oc records sat-1 --kind "$1" --limit 100 --json; }
has_record() { [ "$(records_of "$1" | jq "[.[] | select(.body.version == $2)] | length")" -ge 1 ]; }

start_agent
[ "$(trust .version)" = 1 ] && [ "$(trust .source)" = image ] &&
        pass "the node starts with the image's trust document v1" || fail "trust at start" "$(ctl status --json | jq -c .trust)"
check "it syncs" wait_for "$T" synced 1
s=$(send)
wait_for "$T" cmd_settled "$s"
[ "$(cmd_state "$s")" = done ] && pass "a command by signer 1 runs: its CA is v1's command anchor" ||
        fail "command by signer 1 under v1" "$(cmd_state "$s"): $(cmd_reason "$s")"

# ---- rotation: v2 names command CA 2 and revokes signer 1's key ---------------------------------
stop_controller
if "$OC" serve --listen 127.0.0.1:0 --port-file "$D/bad.port" --data-dir "$D/bad" --cert server.pem \
        --key server.key --node-ca node-ca.pem --operator-token-file token --command-key cmd1.key \
        --command-cert cmd1.pem --trust-document v2.json >"$D/bad.log" 2>&1; then
        fail "a controller whose command signer v2 revokes refuses to start" "it ran"
else
        grep -q "is not one the trust document v2 names" "$D/bad.log" &&
                pass "a controller whose command signer v2 revokes refuses to start" ||
                fail "the controller's refusal" "$(tail -3 "$D/bad.log")"
fi
# a node that cannot save a document (a full or read-only disk) does not tell the controller it
# refused it: the document comes again, and is applied once the node can save it
mkdir "$N/state/trust.tmp" || bail "mkdir $N/state/trust.tmp"
start_controller v2.json cmd2
check "a v2 the node cannot save is refused, and the ground hears why" wait_for "$T" has_record trust.refused 2
reason=$(records_of trust.refused | jq -r '[.[] | select(.body.version == 2)][0].body.reason')
grep -q "cannot save" <<<"$reason" && pass "the reason: $reason" || fail "v2's refusal" "$reason"
rmdir "$N/state/trust.tmp"
ok0=$(lnk .syncs_ok)
applied() { [ "$(trust .version)" = "$1" ]; }
check "the node takes v2 over the link" wait_for "$T" applied 2
[ "$(trust .source)" = link ] && pass "and says it came over the link" || fail "v2's source" "$(trust .source)"
grep -q "trust document v2 sent" "$D/controller.log" && pass "the controller logged that it sent v2" ||
        fail "the controller's log" "$(grep -c trust "$D/controller.log")"
check "a trust.updated record reaches the ground" wait_for "$T" has_record trust.updated 2
s=$(send)
wait_for "$T" cmd_settled "$s"
[ "$(cmd_state "$s")" = done ] && pass "a command by signer 2 (v2's command CA) runs" ||
        fail "command by signer 2 under v2" "$(cmd_state "$s"): $(cmd_reason "$s")"
sent_v2=$(grep -c "trust document v2 sent" "$D/controller.log")
ok1=$(lnk .syncs_ok)
check "more syncs" wait_for "$T" synced $((ok1 + 3))
[ "$(grep -c "trust document v2 sent" "$D/controller.log")" = "$sent_v2" ] &&
        pass "once the node has v2, the controller sends it no more" ||
        fail "v2 sent again" "$(grep -c "trust document v2 sent" "$D/controller.log") times, $sent_v2 before"

# ---- the leaked key: a controller still signing with signer 1 ----------------------------------
stop_controller
start_controller v1.json cmd1
s=$(send)
wait_for "$T" cmd_settled "$s"
[ "$(cmd_state "$s")" = rejected ] && cmd_reason "$s" | grepq "revoked key" &&
        pass "a command by the revoked signer 1 is refused: $(cmd_reason "$s")" ||
        fail "the revoked key's command" "$(cmd_state "$s"): $(cmd_reason "$s")"
[ "$(trust .version)" = 2 ] && pass "an older document (v1) is not taken back" || fail "version after v1's controller" "$(trust .version)"

# ---- too few root signatures ------------------------------------------------------------------
stop_controller
start_controller v3-weak.json cmd2
refused() { has_record trust.refused 3; }
check "v3-weak (one root's signature) is refused, and the ground hears why" wait_for "$T" refused
reason=$(records_of trust.refused | jq -r '[.[] | select(.body.version == 3)][0].body.reason')
grep -q "1 good signature of the roots in force (v2), 2 needed" <<<"$reason" && pass "the reason: $reason" || fail "v3-weak's refusal" "$reason"
[ "$(trust .version)" = 2 ] && pass "v2 stays in force" || fail "version after v3-weak" "$(trust .version)"
ok1=$(lnk .syncs_ok)
check "more syncs" wait_for "$T" synced $((ok1 + 3))
n1=$(grep -c "trust document v3 sent" "$D/controller.log")
ok1=$(lnk .syncs_ok)
check "more syncs" wait_for "$T" synced $((ok1 + 3))
[ "$(grep -c "trust document v3 sent" "$D/controller.log")" = "$n1" ] &&
        pass "the controller does not send a refused document again ($n1 times in all)" ||
        fail "v3-weak sent again" "$(grep -c "trust document v3 sent" "$D/controller.log") times, $n1 before"

# ---- v3 (release signer 1 revoked) comes while a bundle signer 1 made installs -----------------
ust() { ctl update status --json | jq -r "$1"; }
touch "$D/stall"
ctl update install "$D/by-rel1.obundle" >"$D/install.out" 2>&1 &
IPID=$!
stalled() { grep -q "failpoint: install stalled while $D/stall exists" "$N/agent.log"; }
check "a bundle by release signer 1 (v2 trusts it) is being installed" wait_for "$T" stalled
stop_controller
start_controller v3.json cmd2
check "the node takes v3 (2 of 3 roots) meanwhile" wait_for "$T" applied 3
rm -f "$D/stall"
wait "$IPID"
rc=$?
[ "$rc" != 0 ] && grep -q "not armed: checked again before arming.*revoked key" "$D/install.out" &&
        pass "the install is not armed: its signer was revoked while it ran: $(head -c 300 "$D/install.out")" ||
        fail "an install whose signer was revoked meanwhile" "exit $rc: $(cat "$D/install.out")"
[ "$(ust .phase)" = failed ] && pass "the update failed" || fail "the phase" "$(ust .phase)"
"$TOOL" --kind file --path "$N/boot.json" state | grepq "B_tries_left=0" &&
        pass "slot B is not bootable: $("$TOOL" --kind file --path "$N/boot.json" state | tr '\n' ' ')" ||
        fail "slot B after the refusal" "$("$TOOL" --kind file --path "$N/boot.json" state | tr '\n' ' ')"
out=$(ctl update install "$D/by-rel1.obundle" 2>&1) && fail "a bundle by the revoked release signer 1" "$out" || {
        grep -q "revoked key" <<<"$out" && pass "a bundle by the revoked release signer 1 is refused: ${out%%$'\n'*}" ||
                fail "by-rel1's refusal" "$out"; }
out=$(ctl update install "$D/by-rel2.obundle" 2>&1) && pass "a bundle by release signer 2 (same CA) installs" ||
        fail "by-rel2" "$out"
check "slot B holds it" cmp -s "$N/slots/b" v2.img

# ---- a rollback below what the release allows needs the release's word (#18 item 6) ------------
# by-rel2 (security_version 2, no rollback_floor) is committed; the factory image in A has no
# record (taken as 0). The controller's signed command cannot take the node back; the
# operator on the node can.
stop_agent
BOOTED=$("$TOOL" --kind file --path "$N/boot.json" simulate-boot "$N/cmdline") && [ "$BOOTED" = B ] ||
        bail "the simulated boot did not pick slot B: $BOOTED"
start_agent
phase_is() { [ "$(ust .phase)" = "$1" ]; }
check "on trial in slot B" wait_for "$T" phase_is trial
ctl update mark-good >/dev/null || fail "mark-good"
[ "$(ust .phase)" = committed ] && [ "$(ust .min_security_version)" = 2 ] &&
        pass "committed, the anti-rollback floor is 2" || fail "commit" "$(ust '.phase + " " + (.min_security_version | tostring)')"
s=$(oc command send sat-1 update.rollback --json | jq -r .seq)
wait_for "$T" cmd_settled "$s"
[ "$(cmd_state "$s")" = failed ] || [ "$(cmd_state "$s")" = rejected ]
st=$?
cmd_reason "$s" | grepq "below 2, the lowest the committed release (by-rel2 1.2.0, signed) allows" && [ $st = 0 ] &&
        pass "the controller's update.rollback is refused: $(cmd_reason "$s")" ||
        fail "the controller's rollback below the release's floor" "$(cmd_state "$s"): $(cmd_reason "$s")"
[ "$(ust .phase)" = committed ] && pass "the node stays committed in slot B" || fail "after the refused rollback" "$(ust .phase)"
out=$(ctl update rollback 2>&1) && [ "$(ust .phase)" = rolled-back ] &&
        pass "the operator on the node may roll back: $(ust .reason)" || fail "the operator's rollback" "$out $(ust .phase)"

# ---- a restart keeps v3 ----------------------------------------------------------------------
stop_agent
[ -s "$N/state/trust" ] && pass "state/trust holds the document" || fail "no state/trust"
start_agent
[ "$(trust .version)" = 3 ] && [ "$(trust .source)" = link ] && pass "after a restart v3 is in force (from the link)" ||
        fail "trust after a restart" "$(ctl status --json | jq -c .trust)"
stop_agent
has_sanitizer_report "$N/agent.log" && fail "sanitizer report in the agent log"
stop_controller

# ---- radiation: a bit flipped in state/trust brings back v3, not v2 ----------------------------
# (no controller now: it would send v3 again and hide a downgrade)
cmp -s "$N/state/trust" "$N/state/trust.prev" && pass "state/trust.prev holds v3 too, not v2" ||
        fail "state/trust.prev is not a copy of state/trust"
f=$N/state/trust
off=$(($(stat -c %s "$f") - 3))
b=$(od -An -tu1 -j "$off" -N1 "$f" | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 4)))" | dd of="$f" bs=1 seek="$off" conv=notrunc status=none
cmp -s "$f" "$N/state/trust.prev" && fail "the bit flip did not change state/trust"
start_agent
[ "$(trust .version)" = 3 ] && pass "after a bit flip in state/trust, v3 is still in force" ||
        fail "trust after a bit flip in state/trust" "$(ctl status --json | jq -c .trust)"
stop_agent
has_sanitizer_report "$N/agent.log" && fail "sanitizer report in the agent log"
finish
