# Integration test of the controller link: a real orbit-controller and a real agent over
# HTTPS with mutual TLS on loopback. Records go up exactly once and leave the outbox when
# acknowledged; signed commands come down and are answered (done, failed, rejected);
# config.set changes only safe keys; a bundle installs by id over HTTP Range, fetching only
# the chunks the active slot lacks; the controller going away and coming back loses nothing;
# a trial commits only once the controller was reached from the new slot, and an image
# with a broken link configuration rolls back by itself.
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

# ---- keys: TLS (server, node), commands, bundles --------------------------------------------
ground_pki sat-1 || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null &&
        "$OB" keygen --ca --subject "CN=release CA" --key rel-ca.key --cert rel-ca.pem >/dev/null &&
        "$OB" keygen --role release --subject "CN=release" --issuer-key rel-ca.key --issuer-cert rel-ca.pem \
                --key rel.key --cert rel.pem >/dev/null || bail "orbit-bundle keygen failed"

# ---- the controller ----------------------------------------------------------------------------
LOG=$D/controller.log
CPID=""
start_controller() { # [PORT [OPTIONS...]]
        rm -f port
        local port=${1:-0}
        [ $# -gt 0 ] && shift
        "$OC" serve --listen "127.0.0.1:$port" --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem \
                --release-token-file token --command-key cmd.key --command-cert cmd.pem \
                --poll-interval 1 --timeout 10 "$@" >>"$LOG" 2>&1 &
        CPID=$!
        track_pid "$CPID"
        wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$LOG")"
        PORT=$(cat "$D/port")
}
start_controller
URL=https://127.0.0.1:$PORT
oc() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }

# ---- the node -------------------------------------------------------------------------------
N=$D/node
mkdir -p "$N/etc/keys/commands" "$N/etc/keys/bundles" "$N/slots" "$N/sys/class/thermal/thermal_zone0"
cp cmd-ca.pem "$N/etc/keys/commands/" && cp rel-ca.pem "$N/etc/keys/bundles/"
echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
CHUNK=65536
head -c $((128 * CHUNK)) /dev/urandom >v1.img
cp v1.img v2.img
for c in 3 50 51 90 127; do
        head -c $CHUNK /dev/urandom | dd of=v2.img bs=$CHUNK seek=$c conv=notrunc status=none
done
cp v1.img "$N/slots/a"
: >"$N/slots/b"
echo "orbit.slot=A" >"$N/cmdline"
"$TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "init-state"
cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "sat-1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false},
 "health": {"poll_interval_ms": 200, "report_interval_sec": 1, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "update": {"enabled": true, "hardware": "sim-board", "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"}, "gate_sec": 1, "trial_timeout_sec": 5},
 "link": {"enabled": true, "url": "$URL", "ca": "$D/server-ca.pem", "cert": "$D/sat-1.pem",
          "key": "$D/sat-1.key", "poll_interval_sec": 1, "backoff_min_sec": 1, "backoff_max_sec": 2,
          "min_sync_interval_sec": 1}}
JSON
FAIL_CONTEXT_LOG=$N/agent.log
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
lnk() { ctl link --json | jq -r "$1"; }
APID=""
# ORBIT_FAILPOINT_INSTALL_STALL_FILE: an install waits while $D/install-stall exists
start_agent() {
        ORBIT_FAILPOINT_INSTALL_STALL_FILE=$D/install-stall \
                "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/etc/agent.json" >>"$N/agent.log" 2>&1 &
        APID=$!
        track_pid "$APID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent did not answer"
}
start_agent

check "the agent syncs with the controller" wait_for 15 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 2 ]"
check "the node appears on the ground" wait_for 5 bash -o pipefail -c "$OC --url $URL --cacert $D/server-ca.pem --token-file $D/token node list --json | jq -e '.[] | select(.id == \"sat-1\")' >/dev/null"
check "health reports arrive" wait_for 10 bash -o pipefail -c "$OC --url $URL --cacert $D/server-ca.pem --token-file $D/token records sat-1 --kind health.report --json | jq -e 'length >= 2' >/dev/null"
check "acknowledged records leave the outbox" wait_for 10 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .records_queued) -le 3 ]"
oc node show sat-1 --json | jq -e '.status.node_id == "sat-1"' >/dev/null &&
        pass "the first contact carries the full status" || fail "status with the first sync" "$(oc node show sat-1 --json | jq -c .status)"
# zstd once the controller said it takes it; the first sync of the run went plain. Answers
# are checked below, after a command: until then an answer may be too small to be worth a
# frame (one record's ack), and whether a sync carried two records is the machine's timing.
z=$(lnk .compression)
grep -q "sync from sat-1: .*body [0-9]* bytes plain" "$LOG" &&
        [ -n "$z" ] && jq -e '.controller_takes_zstd and .requests_zstd >= 1' <<<"$z" >/dev/null &&
        grep -q "sync from sat-1: .*body [0-9]* bytes zstd (dictionary 0)" "$LOG" &&
        pass "the first sync went plain, then requests in zstd: $(jq -c '{requests_zstd}' <<<"$z")" ||
        fail "requests in zstd" "$z; $(grep 'sync from sat-1' "$LOG" | head -3)"

# ---- commands ------------------------------------------------------------------------------------
cmd_state() { # SEQ -> state
        oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .state"
}
cmd_reason() { oc command list sat-1 --json | jq -r ".[] | select(.seq == $1) | .result_reason"; }
seq_of() { jq -r .seq; }
s=$(oc command send sat-1 status.send --json | seq_of)
check "status.send is done" wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = done ]"
# the answer that carried it (a signed envelope) was worth compressing: zstd both ways
z=$(lnk .compression)
jq -e '.answers_zstd >= 1' <<<"$z" >/dev/null &&
        pass "an answer with a command came in zstd: zstd both ways: $(jq -c '{requests_zstd, answers_zstd}' <<<"$z")" ||
        fail "zstd answers" "$z"
s=$(oc command send sat-1 workload.start name=camera --json | seq_of)
wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = failed ]" &&
        cmd_reason "$s" | grepq "runtime is disabled" && pass "a command the node cannot do fails, saying why" ||
        fail "workload.start on a node without runtime" "$(cmd_state "$s"): $(cmd_reason "$s")"
s=$(oc command send sat-1 config.set key=link.poll_interval_sec value:=2 --json | seq_of)
check "config.set of a safe key is done" wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = done ]"
check "the agent's config file has the new value" test "$(jq .link.poll_interval_sec "$N/etc/agent.json")" = 2
check "and the agent reloaded it" wait_for 5 grep -q "configuration reloaded" "$N/agent.log"
# The ground can forbid privileged workloads on a node (docs/workload-spec.md).
s=$(oc command send sat-1 config.set key=sandbox.allow_privileged value:=false --json | seq_of)
check "config.set sandbox.allow_privileged false is done" wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = done ]"
check "...and lands in the node's config" test "$(jq .sandbox.allow_privileged "$N/etc/agent.json")" = false
s=$(oc command send sat-1 config.set key=sandbox.allow_privileged_from_link value:=true --json | seq_of)
wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = failed ]" &&
        cmd_reason "$s" | grepq "cannot be changed remotely" && pass "the controller cannot allow itself to start privileged workloads" ||
        fail "config.set allow_privileged_from_link" "$(cmd_state "$s"): $(cmd_reason "$s")"
s=$(oc command send sat-1 config.set key=paths.sysfs_root value=/tmp --json | seq_of)
wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = failed ]" &&
        cmd_reason "$s" | grepq "cannot be changed remotely" && pass "config.set refuses a key that is not safe" ||
        fail "config.set paths" "$(cmd_state "$s"): $(cmd_reason "$s")"
check "the refused key was not written" test "$(jq -r .paths.sysfs_root "$N/etc/agent.json")" = "$N/sys"
last=$(lnk .last_command_seq)
[ "$last" = "$s" ] && pass "the last applied command seq is persisted ($last)" || fail "last_command_seq" "$last != $s"

# A command signer the node does not trust: rejected, and the seq does not move.
mv "$N/etc/keys/commands/cmd-ca.pem" "$D/cmd-ca.moved"
cp rel-ca.pem "$N/etc/keys/commands/"
s=$(oc command send sat-1 status.send --json | seq_of)
wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = rejected ]" &&
        pass "a command from an untrusted signer is rejected: $(cmd_reason "$s")" || fail "untrusted signer" "$(cmd_state "$s")"
check "the rejected command did not move the applied seq" test "$(lnk .last_command_seq)" = "$last"
rm "$N/etc/keys/commands/rel-ca.pem"
mv "$D/cmd-ca.moved" "$N/etc/keys/commands/cmd-ca.pem"

# ---- a bundle by id, over Range, only the changed chunks ----------------------------------------------
printf '{"bundle_id": "v2", "version": "2.0.0", "security_version": 2, "compatible": ["sim-board"]}\n' >t.json
"$OB" create --manifest-template t.json --image rootfs=v2.img --chunk-size $CHUNK --key rel.key \
        --cert rel.pem -o v2.obundle >/dev/null || bail "bundle"
check "bundle uploaded to the controller" oc bundle upload v2.obundle
# Configuration reloads (SIGHUP) in the middle of the install: the worker thread keeps its
# own copy of what it needs of the link's settings, the reload frees the old ones. The
# install is held (failpoint) while ten reloads happen one after the other, each waited
# for; then it goes on, over the link, with its copy (ASan would see a use after free).
: >"$D/install-stall"
reloads() { grep -c "configuration reloaded from" "$N/agent.log"; }
s=$(oc command send sat-1 update.install bundle_id=v2 --json | seq_of)
check "update.install is done (the install started)" wait_for 10 sh -c "[ \"\$($OC --url $URL --cacert $D/server-ca.pem --token-file $D/token command list sat-1 --json | jq -r '.[] | select(.seq == $s) | .state')\" = done ]"
check "the install is held mid-way (failpoint)" wait_for 30 grep -q "failpoint: install stalled while $D/install-stall exists" "$N/agent.log"
n0=$(reloads)
for i in $(seq 1 10); do
        kill -HUP "$APID"
        wait_for 10 sh -c "[ \"\$(grep -c 'configuration reloaded from' '$N/agent.log')\" -ge $((n0 + i)) ]" || break
done
n=$(($(reloads) - n0))
[ "$n" -eq 10 ] && pass "ten configuration reloads while the install was held" || fail "reloads during the install" "$n of 10"
rm -f "$D/install-stall"
check "the install goes on after the reloads" wait_for 10 grep -q "failpoint: install goes on" "$N/agent.log"
check "the install reaches ready" wait_for 30 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$N/run/control.sock\" update status --json | jq -e '.phase == \"ready\"' >/dev/null"
check "slot B holds v2" cmp -s "$N/slots/b" v2.img
grep -q "rootfs into slot B: verified; 128 chunks: 0 resumed, 123 from the active slot, 5 from the bundle (327680 bytes)" "$N/agent.log" &&
        pass "only the 5 changed chunks came over the link" || fail "delta over the link" "$(grep 'into slot' "$N/agent.log")"
check "the ground sees update.ready" wait_for 10 bash -o pipefail -c "$OC --url $URL --cacert $D/server-ca.pem --token-file $D/token records sat-1 --kind 'update.*' --json | jq -e '[.[].kind] | index(\"update.ready\") != null' >/dev/null"

# ---- zstd with peers of before zstd, and a dictionary --------------------------------------------
zc() { lnk ".compression.$1"; }
zall() { ctl link --json | jq -c .compression; }
ok_at_least() { [ "$(lnk .syncs_ok)" -ge "$1" ]; }
more_syncs() { # N: N more good syncs
        local n
        n=$(lnk .syncs_ok)
        wait_for 20 ok_at_least $((n + $1))
}
restart_controller() { # [OPTIONS...]; REQ0 ANS0: the node's counts with no controller up
        kill -TERM "$CPID"
        wait_exit "$CPID" 20
        # once a sync failed for want of a controller, none is left that had an answer
        wait_for 15 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq -r .state)\" = unreachable ]" ||
                fail "the link does not notice the controller is gone"
        REQ0=$(zc requests_zstd) ANS0=$(zc answers_zstd)
        MARK=$(wc -l <"$LOG")
        AMARK=$(wc -l <"$N/agent.log")
        start_controller "$PORT" "$@"
}
since() { tail -n +$((MARK + 1)) "$LOG" | grep "sync from sat-1"; } # the syncs since the restart
agent_since() { tail -n +$((AMARK + 1)) "$N/agent.log"; }
reload_agent() { # JQ-FILTER on agent.json
        local n
        n=$(grep -c "configuration reloaded" "$N/agent.log")
        jq "$1" "$N/etc/agent.json" >"$N/etc/agent.json.tmp" && mv "$N/etc/agent.json.tmp" "$N/etc/agent.json"
        kill -HUP "$APID"
        wait_for 10 sh -c "[ \$(grep -c 'configuration reloaded' '$N/agent.log') -gt $n ]"
}
# A controller of before zstd (simulated by --no-zstd): the node, which remembers that the
# controller took zstd, sends one compressed sync, is refused (415), and goes plain at once.
restart_controller --no-zstd
check "an old controller: syncs go on" more_syncs 3
! since | grepq "bytes zstd" && since | grepq "bytes plain" && [ "$(zc answers_zstd)" = "$ANS0" ] &&
        [ "$(zc requests_zstd)" = $((REQ0 + 1)) ] && [ "$(zc controller_takes_zstd)" = false ] &&
        agent_since | grepq "refused the zstd request.*again at once, plain" &&
        pass "an old controller: one zstd sync refused (415), plain both ways after it" ||
        fail "old controller" "$(zall); $(since | tail -3)"
# A node of before zstd (link.compress false) and a controller with it: plain both ways.
restart_controller
check "zstd again with a controller that takes it" more_syncs 2
reload_agent '.link.compress = false' || fail "reload with link.compress false"
more_syncs 2 # (a sync in flight when the reload came is still the old kind)
REQ0=$(zc requests_zstd) ANS0=$(zc answers_zstd) MARK=$(wc -l <"$LOG")
check "an old node: syncs go on" more_syncs 3
! since | grepq "bytes zstd" && [ "$(zc answers_zstd)" = "$ANS0" ] && [ "$(zc requests_zstd)" = "$REQ0" ] &&
        pass "an old node: the controller answers it plain, and takes its plain syncs" ||
        fail "old node" "$(zall); $(since | tail -3)"
# A dictionary trained on the records so far, the same file at both ends.
if command -v zstd >/dev/null 2>&1; then
        ORBIT_CONTROLLER=$OC "$top_srcdir/scripts/zstd-dictionary.sh" --size 16384 "$D/link.dict" sat-1 -- \
                --url "$URL" --cacert server-ca.pem --token-file token >"$D/train.out" 2>&1 ||
                fail "training a dictionary" "$(cat "$D/train.out")"
        note "$(cat "$D/train.out")"
        reload_agent ".link.compress = true | .link.zstd_dictionary = \"$D/link.dict\"" || fail "reload with a dictionary"
        restart_controller --zstd-dictionary "$D/link.dict"
        check "with a dictionary: syncs go on" more_syncs 3
        id=$(zc dictionary_id)
        [ "$id" != null ] && [ "$(zc controller_dictionary_id)" = "$id" ] &&
                since | grepq "bytes zstd (dictionary $id)" && [ "$(zc answers_zstd)" -gt "$ANS0" ] &&
                pass "zstd with dictionary $id both ways" ||
                fail "dictionary" "$(zall); $(since | tail -3)"
        # The controller restarted without it: the node's sync with it is refused (415),
        # then zstd without a dictionary; never a failure for records.
        restart_controller
        check "a controller without the dictionary: syncs go on" more_syncs 3
        ! since | grepq "bytes zstd (dictionary $id)" && since | grepq "bytes zstd (dictionary 0)" &&
                agent_since | grepq "refused the zstd request" &&
                pass "a controller without the node's dictionary: zstd without one" ||
                fail "controller without the dictionary" "$(zall); $(since | tail -3)"
        # A node without it, the controller with it: zstd without one.
        reload_agent 'del(.link.zstd_dictionary)' || fail "reload without the dictionary"
        restart_controller --zstd-dictionary "$D/link.dict"
        check "a node without the dictionary: syncs go on" more_syncs 3
        ! since | grepq "bytes zstd (dictionary $id)" && since | grepq "bytes zstd (dictionary 0)" &&
                pass "a node without the controller's dictionary: zstd without one" ||
                fail "node without the dictionary" "$(zall); $(since | tail -3)"
        restart_controller
        # Hostile bodies to the controller, posted as the node: 64 MiB of zeros in 2 KiB, with
        # and without the size in the frame header: cut at the 4 MiB a sync may have (413),
        # never decoded whole; a frame with a dictionary it has not, and gzip: 415.
        head -c $((64 << 20)) /dev/zero | zstd -q -1 --no-check >bomb.zst &&
                head -c $((64 << 20)) /dev/zero | zstd -q -1 --no-check --stream-size=$((64 << 20)) >said.zst &&
                printf '{}' | zstd -q --no-check -D "$D/link.dict" >dict.zst || fail "making zstd bodies"
        post() { # FILE CODING -> "STATUS BODY"
                curl -s -o post.out -w '%{http_code}' --cacert server-ca.pem --cert sat-1.pem --key sat-1.key \
                        -H "Content-Encoding: $2" -H 'Content-Type: application/json' --data-binary "@$1" \
                        "$URL/v1/nodes/sat-1/sync"
                printf ' %s' "$(jq -r .message post.out 2>/dev/null)"
        }
        for t in bomb.zst:zstd:'413 decompressed, the body is over the limit of 4194304 bytes' \
                said.zst:zstd:'413 the zstd frame holds 67108864 bytes, over the limit of 4194304' \
                dict.zst:zstd:'415 compressed with zstd dictionary [0-9]*, this end has no dictionary' \
                dict.zst:gzip:'415 content coding "gzip" is not taken here: zstd or none'; do
                f=${t%%:*} rest=${t#*:}
                got=$(post "$f" "${rest%%:*}")
                grep -qx "${rest#*:}" <<<"$got" && pass "the controller refuses $f as ${rest%%:*}: $got" ||
                        fail "controller, $f as ${rest%%:*}" "$got"
        done
        check "the controller still serves the node" more_syncs 2
else
        note "zstd not installed: no dictionary to train, the dictionary cases are not run"
fi

# ---- the controller goes away and comes back: nothing lost, nothing twice -------------------------
kill -TERM "$CPID"; wait_exit "$CPID" 20
check "the link notices the controller is gone" wait_for 10 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq -r .state)\" = unreachable ]"
queued_at_least() { [ "$(lnk .records_queued)" -ge "$1" ]; }
check "records wait in the outbox while out of contact" wait_for 20 queued_at_least 2
start_controller "$PORT"
check "back in contact" wait_for 15 sh -c "[ \"\$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq -r .state)\" = active ]"
check "the outbox drains" wait_for 15 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .records_queued) -le 3 ]"
# every record of this boot stored once, and no gap in its sequence
kill -TERM "$APID"; wait_exit "$APID" 20
oc records sat-1 --limit 1000 --json >recs.json
dups=$(jq '[.[] | "\(.key.boot_epoch)-\(.key.seq)"] | group_by(.) | map(select(length > 1)) | length' recs.json)
[ "$dups" = 0 ] && pass "no record stored twice" || fail "duplicates" "$dups"
gaps=$(jq '[.[] | select(.key.boot_epoch == 1) | .key.seq] | sort | . as $s | [range(0; length)] | map(select($s[.] != . + 1)) | length' recs.json)
n=$(jq '[.[] | select(.key.boot_epoch == 1)] | length' recs.json)
[ "$gaps" = 0 ] && [ "$n" -ge 10 ] && pass "all $n records of the boot arrived, seq 1..$n without a gap" || fail "gaps" "$gaps gaps in $n records"

# ---- the commit gate: the controller reached from the new slot -----------------------------------
# B holds v2 and is armed since update.ready. A rootfs trial on a node with a link commits
# only once a sync from the new slot went through (docs/update.md, "The commit gate").
ust() { ctl update status --json | jq -r "$1"; }
phase_is() { [ "$(ust .phase)" = "$1" ]; }
boot_tool() { "$TOOL" --kind file --path "$N/boot.json" "$@"; }
reboot_node() { # what the bootloader does at power-on; sets BOOTED
        BOOTED=$(boot_tool simulate-boot "$N/cmdline") || bail "no bootable slot"
        note "rebooted into slot $BOOTED"
}
set_config() { # JQ-FILTER on agent.json, read at the next start
        jq "$1" "$N/etc/agent.json" >"$N/etc/agent.json.tmp" && mv "$N/etc/agent.json.tmp" "$N/etc/agent.json"
}
ground_update() { # KIND [JQ-CONDITION]: the ground has an update record of this kind (and condition)
        oc records sat-1 --kind "$1" --limit 1000 --json | jq -e "[.[] | select(${2:-true})] | length >= 1" >/dev/null
}
# (a) The controller is down when B boots: the health gate holds (1 s) and the trial waits.
kill -TERM "$CPID"; wait_exit "$CPID" 20
set_config '.update.gate_sec = 1 | .update.trial_timeout_sec = 5 | .update.controller_wait_sec = 600'
reboot_node; [ "$BOOTED" = B ] && pass "gate: the bootloader picks B (v2)" || fail "gate: reboot into B" "$BOOTED"
start_agent
waiting() {
        ctl update status --json | jq -e '.phase == "trial" and .trial.health_held and .trial.waiting_for == "controller"
                and .trial.controller.required and (.trial.controller.reached | not)
                and .trial.controller.waits_for == "controller-wait-limit" and .trial.controller.waits_sec > 0' >/dev/null
}
check "gate: the health gate held, the trial waits for the controller" wait_for 20 waiting
# past the 5 s trial timeout with the health gate held: still on trial, not committed, not rolled back
past_timeout() { [ "$(ust '.trial.elapsed_sec')" -ge 6 ]; }
wait_for 20 past_timeout && waiting && pass "gate: past trial_timeout_sec, the trial still waits for the controller" ||
        fail "gate: waiting past the trial timeout" "$(ctl update status --json | jq -c '{phase, reason, trial}')"
ctl update status | grepq "^Controller:    not reached yet; waits [0-9]* s more (update.controller_wait_sec), then rolls back" &&
        pass "gate: orbitctl update status says the controller is awaited" ||
        fail "gate: orbitctl update status" "$(ctl update status)"
EPOCH=$(ctl status --json | jq .boot_epoch)
start_controller "$PORT"
check "gate: a good sync from B commits v2" wait_for 30 phase_is committed
[ "$(ust .reason)" = "the health gate held for 1 s and the controller was reached from slot B" ] &&
        pass "gate: the commit says why: $(ust .reason)" || fail "gate: commit reason" "$(ust .reason)"
check "gate: the ground has the commit" wait_for 15 ground_update update.committed ".key.boot_epoch == $EPOCH"
oc records sat-1 --kind 'update.*' --limit 1000 --json >gate.json
order=$(jq -r --argjson e "$EPOCH" '[.[] | select(.key.boot_epoch == $e)
        | select(.kind == "update.trial" or .kind == "update.gate" or .kind == "update.committed") | {seq: .key.seq, what: (if .kind == "update.gate" then .body.state else .kind end)}] | sort_by(.seq) | map(.what) | join(" ")' gate.json)
[ "$order" = "update.trial waiting-for-controller controller-reached update.committed" ] &&
        pass "gate: records of B's run in order: $order" || fail "gate: record order" "$order"
check "gate: B is good in the boot environment, A still the fallback" test "$(boot_tool state | tr '\n' ' ' | sed 's/ $//')" = "primary=B A_good=1 A_tries_left=0 B_good=1 B_tries_left=0"

# (b) v3 into A, whose link configuration is broken (the controller's URL points at a closed
# port): the health gate holds, the controller is never reached, and the trial rolls back
# by itself after update.controller_wait_sec (3 s here), with no operator and no ground.
cp v2.img v3.img
for c in 7 64; do
        head -c $CHUNK /dev/urandom | dd of=v3.img bs=$CHUNK seek=$c conv=notrunc status=none
done
printf '{"bundle_id": "v3", "version": "3.0.0", "security_version": 3, "compatible": ["sim-board"]}\n' >t3.json
"$OB" create --manifest-template t3.json --image rootfs=v3.img --chunk-size $CHUNK --key rel.key \
        --cert rel.pem -o v3.obundle >/dev/null || bail "bundle v3"
check "gate: v3 installs into A" ctl update install "$D/v3.obundle"
kill -TERM "$APID"; wait_exit "$APID" 20
GOOD_URL=$(jq -r .link.url "$N/etc/agent.json")
closed=$( (python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])') 2>/dev/null) || closed=1
set_config ".link.url = \"https://127.0.0.1:$closed\" | .update.controller_wait_sec = 3"
reboot_node; [ "$BOOTED" = A ] && pass "gate: the bootloader picks A (v3, broken link)" || fail "gate: reboot into A" "$BOOTED"
MARK=$(wc -l <"$LOG")
start_agent
check "gate: the broken image rolls back by itself" wait_for 30 phase_is rolled-back
[ "$(ust .reason)" = "the controller was not reached from slot A within 3 s (no contact pass planned in the trial window: update.controller_wait_sec)" ] &&
        pass "gate: the rollback names the reason: $(ust .reason)" || fail "gate: rollback reason" "$(ust .reason)"
[ "$(lnk .syncs_ok)" = 0 ] && [ "$(tail -n +$((MARK + 1)) "$LOG" | grep -c 'sync from sat-1')" = 0 ] &&
        pass "gate: no sync came from A" || fail "gate: syncs from A" "$(lnk .syncs_ok)"
check "gate: A is abandoned, B is primary again" test "$(boot_tool state | tr '\n' ' ' | sed 's/ $//')" = "primary=B A_good=0 A_tries_left=0 B_good=1 B_tries_left=0"
check "gate: the agent asks for the reboot back" test "$(ust .reboot_required)" = true
kill -TERM "$APID"; wait_exit "$APID" 20
set_config ".link.url = \"$GOOD_URL\""
reboot_node; [ "$BOOTED" = B ] && pass "gate: back on B" || fail "gate: back on B" "$BOOTED"
start_agent
check "gate: still rolled back on B" phase_is rolled-back
check "gate: from B, the ground learns of the rollback and its reason" wait_for 20 ground_update update.rolled-back \
        '.body.bundle_id == "v3" and (.body.reason | startswith("the controller was not reached from slot A within 3 s"))'

# (c) The same broken image, with a contact pass planned in the trial window: the deadline
# is the end of the pass (plus link.timeout_sec), not controller_wait_sec (10 minutes here).
# The board's clock is three years ahead (tests/integration/fake-rtc.so): the plan is judged
# by trusted time (here the floor the agent saved), as the link judges it.
# The pass must still be ahead when the trial starts: the bundle, the install, the reboot
# and the agent's start come first (scaled: under valgrind they take several times longer).
PLAN_END=$(($(date +%s) + 30 * ORBIT_TEST_SLOW))
code=$(curl -s -o plan.out -w '%{http_code}' --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" -X PUT \
        --data "{\"windows\":[{\"start\":$(($(date +%s) - 5)),\"end\":$PLAN_END,\"rate_bps\":250000}]}" \
        "$URL/v1/nodes/sat-1/contact-plan")
[ "$code" = 200 ] || fail "gate: contact plan set" "HTTP $code: $(cat plan.out)"
check "gate: the node has the plan" wait_for 15 grep -q "link: new contact plan: 1 windows" "$N/agent.log"
cp v2.img v4.img
head -c $CHUNK /dev/urandom | dd of=v4.img bs=$CHUNK seek=11 conv=notrunc status=none
printf '{"bundle_id": "v4", "version": "4.0.0", "security_version": 4, "compatible": ["sim-board"]}\n' >t4.json
"$OB" create --manifest-template t4.json --image rootfs=v4.img --chunk-size $CHUNK --key rel.key \
        --cert rel.pem -o v4.obundle >/dev/null || bail "bundle v4"
check "gate: v4 installs into A" ctl update install "$D/v4.obundle"
kill -TERM "$APID"; wait_exit "$APID" 20
set_config ".link.url = \"https://127.0.0.1:$closed\" | .link.timeout_sec = 2 | .update.controller_wait_sec = 600"
reboot_node; [ "$BOOTED" = A ] && pass "gate: the bootloader picks A (v4, broken link)" || fail "gate: reboot into A (v4)" "$BOOTED"
FAKE_RTC=$top_builddir/tests/integration/fake-rtc.so
[ -e "$FAKE_RTC" ] || bail "$FAKE_RTC not built (make check builds it)"
saved_wrapper=("${AGENT_WRAPPER[@]}")
AGENT_WRAPPER=(env LD_PRELOAD="$FAKE_RTC" ORBIT_FAKE_RTC=+$((1095 * 86400))
        ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0" "${AGENT_WRAPPER[@]}")
start_agent
AGENT_WRAPPER=("${saved_wrapper[@]}")
[ "$(ctl status --json | jq -r .time.rtc)" -gt $(($(date +%s) + 1000 * 86400)) ] ||
        bail "fake-rtc.so did not set the agent's clock"
pass_due() {
        ctl update status --json | jq -e --argjson plan_end "$PLAN_END" '.phase == "trial" and .trial.controller.waits_for == "contact-pass"
                and .trial.controller.waits_until == $plan_end + 2' >/dev/null
}
wait_for 20 pass_due && pass "gate: the trial waits for the controller until the planned pass is over" ||
        fail "gate: waiting for the planned pass" "$(ctl update status --json | jq -c '{phase, trial}') (pass ends at $PLAN_END)"
check "gate: the broken image rolls back by itself when the pass is over" wait_for 60 phase_is rolled-back
ust .reason | grepq -x "the controller was not reached from slot A within [0-9]* s (the contact pass planned in the trial window is over)" &&
        [ "$(date +%s)" -ge $((PLAN_END + 2)) ] &&
        pass "gate: the rollback names the reason: $(ust .reason)" || fail "gate: rollback reason (plan)" "$(ust .reason)"
kill -TERM "$APID"; wait_exit "$APID" 20
set_config ".link.url = \"$GOOD_URL\" | del(.link.timeout_sec)"
reboot_node; [ "$BOOTED" = B ] && pass "gate: back on B after v4" || fail "gate: back on B (v4)" "$BOOTED"
start_agent
check "gate: from B, the ground learns of v4's rollback" wait_for 30 ground_update update.rolled-back \
        '.body.bundle_id == "v4" and (.body.reason | endswith("(the contact pass planned in the trial window is over)"))'
kill -TERM "$APID"; wait_exit "$APID" 20

# ---- a download budget per pass, not per sync --------------------------------------------------------
# A fresh node (its state gone, slot A v1, slot B empty), link.download_budget_mib 1 and a
# contact plan of one open window: a 3 MiB delta must take three passes. Inside a pass, good
# syncs (each tells the update manager the link is up) do not give the budget back; a new
# window does. The windows start in the past so that only their start says "another pass".
rm -rf "$N/state" && cp v1.img "$N/slots/a" && : >"$N/slots/b" && rm -f "$N/boot.json" &&
        echo "orbit.slot=A" >"$N/cmdline" &&
        "$TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "reset the node"
jq '.link.download_budget_mib = 1' "$N/etc/agent.json" >"$N/etc/agent.json.tmp" && mv "$N/etc/agent.json.tmp" "$N/etc/agent.json"
cp v1.img v9.img
for c in $(seq 10 57); do # 48 chunks, 3 MiB
        head -c $CHUNK /dev/urandom | dd of=v9.img bs=$CHUNK seek=$c conv=notrunc status=none
done
printf '{"bundle_id": "v9", "version": "9.0.0", "security_version": 9, "compatible": ["sim-board"]}\n' >t.json
"$OB" create --manifest-template t.json --image rootfs=v9.img --chunk-size $CHUNK --key rel.key \
        --cert rel.pem -o v9.obundle >/dev/null && oc bundle upload v9.obundle >/dev/null || bail "bundle v9"
T0=$(( $(date +%s) - 300 ))
window() { # I: the plan's one window starts at T0 + I and is open for two hours
        printf '{"windows": [{"start": %d, "end": %d, "rate_bps": 250000}]}' $((T0 + $1)) $((T0 + 7500)) >plan.json
        curl -sf --cacert server-ca.pem -H "Authorization: Bearer $(cat token)" -X PUT \
                --data-binary @plan.json "$URL/v1/nodes/sat-1/contact-plan" >/dev/null
}
window 0 || fail "PUT the contact plan"
start_agent
pass_of() { ctl link --json | jq -r ".pass.$1"; }
ustat() { ctl update status --json | jq -r "$1"; }
paused_budget() { ustat '.paused_reason // ""' | grepq "download budget is spent"; }
s=$(oc command send sat-1 update.install bundle_id=v9 --json | seq_of)
passes=0 over="" windows=0
for i in 1 2 3 4 5 6; do
        wait_for 60 bash -o pipefail -c "paused() { \"$CTL_BIN\" --socket \"$N/run/control.sock\" update status --json | jq -e '.phase == \"ready\" or ((.paused_reason // \"\") | test(\"download budget is spent\"))' >/dev/null; }; paused" ||
                { fail "pass $i: the install neither paused for the budget nor finished" "$(ctl update status --json | jq -c '{phase, paused_reason}')"; break; }
        [ "$(ustat .phase)" = ready ] && break
        passes=$((passes + 1))
        p=$(pass_of number) used=$(pass_of download_bytes)
        [ "$used" -le $((1024 * 1024)) ] || over+=" pass $p: $used bytes"
        if [ $i = 1 ]; then
                # two good syncs later: the same pass, still paused, not a byte more
                n=$(lnk .syncs_ok)
                wait_for 20 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge $((n + 2)) ]" ||
                        fail "budget: no good syncs in the pass"
                [ "$(pass_of number)" = "$p" ] && paused_budget && [ "$(pass_of download_bytes)" = "$used" ] &&
                        pass "budget: two good syncs in the same window give no budget back ($used bytes in pass $p)" ||
                        fail "budget: a good sync restarted the budget" "pass $p -> $(pass_of number), $used -> $(pass_of download_bytes) bytes, $(ustat '.paused_reason // "not paused"')"
        fi
        windows=$((windows + 1))
        window "$windows"
        # the next sync brings the plan: a new pass, and the download goes on in it
        wait_for 30 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .pass.number) -gt $p ]" ||
                { fail "budget: a new window is no new pass" "$(ctl link --json | jq -c .pass)"; break; }
done
[ "$(ustat .phase)" = ready ] && cmp -s "$N/slots/b" v9.img &&
        pass "budget: v9 (3 MiB of new chunks) installed in $((passes + 1)) windows, at most 1 MiB each" ||
        fail "budget: the install did not finish" "$(ctl update status --json | jq -c '{phase, paused_reason}')"
[ -z "$over" ] && [ "$passes" -ge 3 ] && pass "budget: no pass downloaded over 1 MiB ($passes paused for it)" ||
        fail "budget: passes over budget or too few" "$passes pauses;$over"
kill -TERM "$APID"; wait_exit "$APID" 20

# The agent restarts while the install waits for the next pass (a power cut, a watchdog):
# the install resumes at once, before the link's first sync, and what it downloads then is
# charged to the pass as well (it had no pass at all: the rest came down at once).
rm -rf "$N/state" && cp v1.img "$N/slots/a" && : >"$N/slots/b" && rm -f "$N/boot.json" &&
        echo "orbit.slot=A" >"$N/cmdline" &&
        "$TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "reset the node"
start_agent
oc command send sat-1 update.install bundle_id=v9 >/dev/null || fail "budget: send update.install v9 again"
check "budget: the install pauses for the budget" wait_for 60 paused_budget
kill -TERM "$APID"; wait_exit "$APID" 20
start_agent
paused_or_ready() { [ "$(ustat .phase)" = ready ] || paused_budget; }
wait_for 60 paused_or_ready && [ "$(ustat .phase)" != ready ] &&
        [ "$(pass_of download_bytes)" -le $((1024 * 1024)) ] && [ "$(pass_of download_bytes)" -gt 0 ] &&
        pass "budget: a download resumed at start is charged to the pass ($(pass_of download_bytes) bytes), paused again" ||
        fail "budget: the download resumed at start had no budget" "$(ctl update status --json | jq -c '{phase, paused_reason}') $(ctl link --json | jq -c .pass)"
kill -TERM "$APID"; wait_exit "$APID" 20

# ---- a node that lost its link state (#18 item 5): a new link epoch. The command queued
# while it was away (signed for the old epoch) is signed again for the new one and runs;
# the controller counts the reset.
e1=$(oc node show sat-1 --json | jq -r .link_epoch)
r1=$(oc node show sat-1 --json | jq -r .link_resets)
rm -f "$N/state/link" "$N/state/link.prev"
[ -e "$N/state/boot" ] || bail "link epoch: the state dir is not where this test thinks"
s=$(oc command send sat-1 status.send --json | seq_of)
[ "$(oc command list sat-1 --json | jq -r ".[] | select(.seq == $s) | .state")" = queued ] ||
        fail "link epoch: the command is not queued"
start_agent
cmd_done() { [ "$(cmd_state "$s")" = "done" ]; }
check "link epoch: a node that lost its link state runs the command queued for it (signed again for its new state)" \
        wait_for 30 cmd_done
e2=$(lnk .link_epoch)
node=$(oc node show sat-1 --json | jq -c '{link_epoch, link_resets}')
[ -n "$e1" ] && [ "$e1" != null ] && [ "$e2" != "$e1" ] && [ "$(jq -r .link_epoch <<<"$node")" = "$e2" ] &&
        [ "$(jq -r .link_resets <<<"$node")" -gt "$r1" ] &&
        pass "link epoch: the controller saw the node's new link state ($e1 -> $e2) and counted it: $node" ||
        fail "link epoch" "node $e1 -> $e2, controller $node"
kill -TERM "$APID"; wait_exit "$APID" 20

has_sanitizer_report "$N/agent.log" && fail "sanitizer report in the agent log"
has_sanitizer_report "$LOG" && fail "sanitizer report in the controller log"
finish
