# Integration test: installs on full filesystems (root: small tmpfs mounts). (a) the file
# slot's filesystem too small until a file is removed; (b) update.work_dir filled during an
# install, the agent killed (-9) and started again, and killed during the pause; (b2) the
# work dir full while an install streams: its progress saves in place go on, no pause; (c)
# the head file of a ranged download from a real controller in a full work_dir. Each install
# in (a), (b), (c) pauses with the
# reason (status, log, one update.paused event), never fails, never touches the active
# slot, and completes once space returns, keeping the chunks it had saved. (d) with the
# same controller: a scrub repairs chunks no copy on the node holds from the bundle that
# installed the slot; a wrong chunk from the ground is refused; a bundle gone is said.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (tmpfs mounts)"
for t in jq openssl sha256sum truncate; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
OC=$top_builddir/orbit-controller
TOOL=$top_builddir/tests/integration/bootenv-tool
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"
SLOTFS=$D/slotfs
WORKFS=$D/workfs
WORKFS2=$D/workfs2
HEADFS=$D/headfs
mkdir -p "$SLOTFS" "$WORKFS" "$WORKFS2" "$HEADFS"
# Stop the agents before the mounts go, and the mounts before the test dir goes.
unmount_all() {
        local pid m
        for pid in "${STARTED_PIDS[@]}"; do
                stop_pid "$pid"
        done
        for m in "$SLOTFS" "$WORKFS" "$WORKFS2" "$HEADFS"; do
                mountpoint -q "$m" && umount "$m"
        done
        return 0
}
trap 'unmount_all; cleanup' EXIT
small_fs() { # DIR SIZE
        mount -t tmpfs -o "size=$2,mode=0755" orbit-disk-test "$1" || bail "cannot mount a tmpfs on $1"
}
# Fill DIR's filesystem to the last block, then give back KIB KiB (tmpfs counts 4 KiB pages).
fill_leaving() { # DIR KIB
        dd if=/dev/zero of="$1/filler" bs=4k 2>/dev/null
        [ "$2" -gt 0 ] && truncate -s "-${2}K" "$1/filler"
        note "$(df -k --output=avail "$1" | tail -n 1 | tr -d ' ') KiB left on $1"
}

# ---- keys, images, bundles ----------------------------------------------------------------
K=$D/keys
mkdir -p "$K"
"$OB" keygen --ca --subject "CN=test fleet CA" --key "$K/ca.key" --cert "$K/ca.pem" >/dev/null &&
        "$OB" keygen --role release --subject "CN=release" --issuer-key "$K/ca.key" --issuer-cert "$K/ca.pem" \
                --key "$K/signer.key" --cert "$K/signer.pem" >/dev/null || bail "keygen"
CHUNK=65536
SIZE=$((128 * CHUNK)) # 8 MiB
head -c $SIZE /dev/urandom >v1.img
head -c $SIZE /dev/urandom >v2.img
printf '{"bundle_id": "v2", "version": "1.2.0", "security_version": 2, "compatible": ["sim-board"]}\n' >t.json
"$OB" create --manifest-template t.json --image rootfs=v2.img --chunk-size $CHUNK --key "$K/signer.key" \
        --cert "$K/signer.pem" -o v2.obundle >/dev/null 2>ob.err || bail "bundle: $(cat ob.err)"
V1_SUM=$(sha256sum <v1.img)

# ---- a simulated node: file bootloader, slot A holds v1 ---------------------------------------
AGENT_PID=
ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
ust() { ctl update status --json | jq -r "$1"; }
phase_is() { [ "$(ust .phase)" = "$1" ]; }
paused_is() { [ "$(ust '.paused')" = "$1" ]; }
boot_state() { "$TOOL" --kind file --path "$N/boot.json" state | tr '\n' ' ' | sed 's/ $//'; }
# update.paused records of this agent run
paused_events() {
        ctl events --json --lines 1000 |
                jq --argjson e "$(ctl status --json | jq .boot_epoch)" \
                        '[.events[] | select(.key.boot_epoch == $e and .kind == "update.paused")]'
}
new_node() { # NAME SLOT_B WORK_DIR SPACE_RETRY_SEC [EXTRA_CONFIG]
        N=$D/node-$1
        mkdir -p "$N/slots" "$N/etc/keys/bundles" "$N/sys"
        cp "$K/ca.pem" "$N/etc/keys/bundles/"
        cp v1.img "$N/slots/a"
        : >"$2"
        echo "console=ttyS0 orbit.slot=A" >"$N/cmdline"
        "$TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "$1: init-state"
        cat >"$N/agent.json" <<JSON
{"config_version": 1, "node_id": "disk-$1", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "config_dir": "$N/etc", "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false}, "health": {"enabled": false},
 "update": {"enabled": true, "hardware": "sim-board",
            "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$2"}, "work_dir": "$3",
            "gate_sec": 1, "trial_timeout_sec": 4, "checkpoint_mib": 1, "space_retry_sec": $4}${5:-}}
JSON
        FAIL_CONTEXT_LOG=$N/agent.log
}
start_agent() { # STALL_AT: a percent of the install where it stops going on; STALL_FILE: while it exists (failpoints)
        ORBIT_FAILPOINT_INSTALL_STALL_PERCENT=${STALL_AT:-} ORBIT_FAILPOINT_INSTALL_STALL_FILE=${STALL_FILE:-} \
                "${AGENT_WRAPPER[@]}" "$AGENT" --config "$N/agent.json" >>"$N/agent.log" 2>&1 &
        AGENT_PID=$!
        track_pid "$AGENT_PID"
        wait_for 20 ctl ping >/dev/null 2>&1 || bail "$N: the agent did not answer"
}
status_paused() { # PHASE REASON (between two retries: a retry runs unpaused for a moment)
        ctl update status --json | jq -e --arg p "$1" --arg r "$2" \
                '.phase == $p and .paused == true and .paused_for == "space" and .paused_reason == $r' >/dev/null
}
check_paused() { # NAME PHASE REASON [ground]: status and log say why, one event says it too
        local name=$1 phase=$2 reason=$3
        wait_for 5 status_paused "$phase" "$reason" && pass "$name: status: $phase, paused: $reason" ||
                fail "$name: status" "$(ctl update status --json | jq -c '{phase, paused, paused_for, paused_reason}')"
        grep -qF "paused: $reason; retried every" "$N/agent.log" &&
                pass "$name: the agent's log names it" || fail "$name: log" "$(grep 'update' "$N/agent.log" | tail -3)"
        [ "${4:-}" = ground ] && return 0 # the link takes the event off the node: checked on the ground
        paused_events | jq -e --arg p "$phase" --arg r "$reason" \
                'length == 1 and .[0].priority == "high" and .[0].body.reason == $r and .[0].body.phase == $p' >/dev/null &&
                pass "$name: one update.paused event (high) with the reason" || fail "$name: event" "$(paused_events | jq -c .)"
}
slot_a_untouched() { # NAME
        [ "$(sha256sum <"$N/slots/a")" = "$V1_SUM" ] && pass "$1: the active slot A is untouched (sha256)" ||
                fail "$1: slot A changed"
}

# ---- (a) the slot's filesystem is too small until a file goes ------------------------------
small_fs "$SLOTFS" 12m
new_node slot "$SLOTFS/b" "$D/node-slot/state/update" 1
dd if=/dev/zero of="$SLOTFS/filler" bs=1M count=8 status=none # 4 MiB left, the image needs 8
start_agent
out=$(ctl update install "$D/v2.obundle" 2>&1)
rc=$?
REASON_A="slot $SLOTFS/b: cannot reserve $SIZE bytes: No space left on device"
[ "$rc" = 75 ] && grep -qxF "installing, paused: $REASON_A" <<<"$out" &&
        pass "(a) orbitctl update install stops at the pause (exit 75) with the reason" || fail "(a) orbitctl" "rc $rc: $out"
check_paused "(a)" installing "$REASON_A"
check "(a) retried every space_retry_sec (1 s): two resumes" wait_for "$ORBIT_TEST_TIMEOUT" sh -c "[ \$(grep -c 'resuming the install of v2' \"$N/agent.log\") -ge 2 ]"
paused_events | jq -e 'length == 1' >/dev/null && pass "(a) the retries are the same pause: still one event" ||
        fail "(a) events after retries" "$(paused_events | jq -c '[.[].body.reason]')"
slot_a_untouched "(a)"
st=$(boot_state)
[ "$st" = "primary=A A_good=1 A_tries_left=0 B_good=0 B_tries_left=0" ] &&
        pass "(a) B is not bootable, A still the good one" || fail "(a) boot state" "$st"
status_text_paused() { ctl update status | grepq -F "Paused:        $REASON_A (waiting for space, retried)"; }
wait_for 5 status_text_paused && pass "(a) orbitctl update status shows the pause" || fail "(a) status text" "$(ctl update status)"
rm -f "$SLOTFS/filler"
t0=$SECONDS
check "(a) space back: the install completes by itself" wait_for 20 phase_is ready
note "(a) ready $((SECONDS - t0)) s after the filler was removed"
check "(a) slot B holds v2 exactly" cmp -s "$SLOTFS/b" v2.img
check "(a) no longer paused" paused_is false
st=$(boot_state)
[ "$st" = "primary=B A_good=1 A_tries_left=0 B_good=0 B_tries_left=3" ] &&
        pass "(a) B armed for its trial only now" || fail "(a) boot state after" "$st"
slot_a_untouched "(a) after"
kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(a) the agent did not stop"

# ---- (b) the work dir fills up during an install ---------------------------------------------
# The progress file (two copies in one file, lib/statefile.h) is written anew when an install
# begins, or begins again, and then saved in place at every checkpoint: an install under way
# needs no new block in the work dir. A work dir that filled meanwhile stops the next
# beginning: here the agent's restart after a kill -9 at 40%, with one 4 KiB page left (a
# state file's save frees a page as it takes one; the new progress file needs two).
small_fs "$WORKFS" 256k
W=$WORKFS/update
new_node work "$D/node-work/slots/b" "$W" 1
start_agent
fill_leaving "$WORKFS" 0
out=$(ctl update install "$D/v2.obundle" 2>&1) && fail "(b) install on a full work dir refused" "$out" || {
        grep -qF "cannot save the update state in $W: No space left on device" <<<"$out" &&
                pass "(b) an install on a full work dir is refused: $out" || fail "(b) refusal" "$out"; }
check "(b) refused: the phase stays idle (no install 'in progress')" phase_is idle
rm -f "$WORKFS/filler"
kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(b) the agent did not stop"
STALL_AT=40 start_agent
ctl update install --no-wait "$D/v2.obundle" >/dev/null || fail "(b) install start"
wait_for 20 grep -q "failpoint: install stalled" "$N/agent.log" && pass "(b) the install stands at 40%" ||
        fail "(b) stall" "$(ctl update status --json | jq -c '{phase, progress}')"
fill_leaving "$WORKFS" 4
kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
note "(b) kill -9 at 40% with the work dir full; $W holds: $(cd "$W" && ls | tr '\n' ' ')"
cp "$N/agent.log" "$N/agent.log.before"
start_agent
REASON_B="image rootfs: saving the install progress to $W/progress: No space left on device"
check_paused "(b)" installing "$REASON_B"
slot_a_untouched "(b)"
kill -KILL "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null
note "(b) kill -9 while paused; $W holds: $(cd "$W" && ls | tr '\n' ' ')"
cp "$N/agent.log" "$N/agent.log.before"
start_agent
check "(b) after kill -9: back in the same pause, never failed" wait_for 10 status_paused installing "$REASON_B"
new_log=$(tail -n +"$(($(wc -l <"$N/agent.log.before") + 1))" "$N/agent.log")
grep -qE "corrupt|cannot be trusted|unreadable|malformed|restored from" <<<"$new_log" &&
        fail "(b) the state files load after kill -9" "$(grep -E 'corrupt|trusted|unreadable|malformed|restored' <<<"$new_log")" ||
        pass "(b) the state and progress files load after kill -9 (no corrupt copy, no fallback)"
saved=$(grep -oE "resuming rootfs: [0-9]+ of 128 chunks already in slot B" <<<"$new_log" | grep -oE '[0-9]+' | head -n 1)
[ -n "$saved" ] && [ "$saved" -gt 0 ] && pass "(b) the saved progress is there: $saved chunks" || fail "(b) progress after kill -9" "$new_log"
paused_events | jq -e 'length == 1' >/dev/null && pass "(b) the restarted agent reports its pause once" || fail "(b) events after restart"
slot_a_untouched "(b) after kill -9"
rm -f "$WORKFS/filler"
check "(b) space back: the install completes by itself" wait_for 20 phase_is ready
check "(b) slot B holds v2 exactly" cmp -s "$N/slots/b" v2.img
last=$(grep "rootfs into slot B: verified" "$N/agent.log" | tail -n 1)
grep -qF "128 chunks: $saved resumed, 0 from the active slot, $((128 - saved)) from the bundle" <<<"$last" &&
        pass "(b) the $saved chunks saved before the pause were kept, not rewritten from the bundle" || fail "(b) resumed" "$last"
[ -z "$(cd "$W" && ls -- *.tmp 2>/dev/null)" ] && pass "(b) no temp file left in the work dir" || fail "(b) tmp files" "$(ls "$W")"
slot_a_untouched "(b) after"
kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(b) the agent did not stop"

# ---- (b2) the work dir fills while an install streams: its progress saves need no room ------
# What (b) relies on: once the progress file was written anew (before the slot streams), each
# checkpoint overwrites a block of it in place. The work dir filled to its last page after
# the first chunk, the install goes on: every checkpoint saved (one per MiB), never paused.
small_fs "$WORKFS2" 256k
W=$WORKFS2/update
new_node work2 "$D/node-work2/slots/b" "$W" 1
: >"$D/stall-b2"
STALL_FILE=$D/stall-b2 start_agent
ctl update install --no-wait "$D/v2.obundle" >/dev/null || fail "(b2) install start"
wait_for 20 grep -q "failpoint: install stalled while" "$N/agent.log" && pass "(b2) the install stands after its first chunk" ||
        fail "(b2) stall" "$(ctl update status --json | jq -c '{phase, progress}')"
fill_leaving "$WORKFS2" 0
rm -f "$D/stall-b2"
wait_for 30 grep -qE "rootfs into slot B: (verified|stopped)" "$N/agent.log" || fail "(b2) the install pass did not end"
grep -qF "rootfs into slot B: verified; 128 chunks: 0 resumed, 0 from the active slot, 128 from the bundle" "$N/agent.log" &&
        pass "(b2) the install pass completes in the full work dir: every checkpoint saved in place" ||
        fail "(b2) install pass" "$(grep -E 'into slot|progress|paused' "$N/agent.log" | tail -5)"
grep -q "saving the install progress" "$N/agent.log" && fail "(b2) a progress save failed" "$(grep 'saving the install progress' "$N/agent.log")" ||
        pass "(b2) no progress save failed, no pause for it"
rm -f "$WORKFS2/filler"
check "(b2) the install completes" wait_for 20 phase_is ready
check "(b2) slot B holds v2 exactly" cmp -s "$N/slots/b" v2.img
kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(b2) the agent did not stop"

# ---- (c) a ranged download: its install cannot save its state in a full work dir ----------
if [ ! -x "$OC" ]; then
        note "(c) skipped: orbit-controller not built"
else
        ground_pki disk-link || bail "openssl could not make the test certificates"
        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
        "$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
                "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                        --key cmd.key --cert cmd.pem >/dev/null || bail "command keys"
        "$OC" serve --listen 127.0.0.1:0 --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem \
                --release-token-file token --command-key cmd.key --command-cert cmd.pem \
                --poll-interval 1 --timeout 10 >>"$D/controller.log" 2>&1 &
        track_pid $!
        wait_for 20 test -s "$D/port" || bail "the controller did not start: $(tail -5 "$D/controller.log")"
        URL=https://127.0.0.1:$(cat "$D/port")
        oc() { "$OC" --url "$URL" --cacert server-ca.pem --token-file token "$@"; }
        oc bundle upload v2.obundle >/dev/null || bail "bundle upload"

        small_fs "$HEADFS" 256k
        W=$HEADFS/update
        # Retried by the timer only after an hour: what resumes it here is the next sync.
        new_node link "$D/node-link/slots/b" "$W" 3600 ", \"link\": {\"enabled\": true, \"url\": \"$URL\",
 \"ca\": \"$D/server-ca.pem\", \"cert\": \"$D/disk-link.pem\", \"key\": \"$D/disk-link.key\",
 \"poll_interval_sec\": 1, \"backoff_min_sec\": 1, \"backoff_max_sec\": 2, \"min_sync_interval_sec\": 1}"
        mkdir -p "$N/etc/keys/commands" && cp cmd-ca.pem "$N/etc/keys/commands/"
        start_agent
        check "(c) the node syncs with the controller" wait_for 15 sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" link --json | jq .syncs_ok) -ge 1 ]"
        # The download's first state fits; by the time the manifest is fetched and verified,
        # the next does not (held in memory, the head needs no space).
        fill_leaving "$HEADFS" 4
        oc command send disk-link update.install bundle_id=v2 >/dev/null || fail "(c) send update.install"
        REASON_C="cannot save the update state in $W: No space left on device"
        check "(c) the download pauses" wait_for 15 paused_is true
        check_paused "(c)" fetching "$REASON_C" ground
        check "(c) each sync tries again" wait_for 10 sh -c "[ \$(grep -c 'resuming the download of' \"$N/agent.log\") -ge 2 ]"
        ground_paused() {
                oc records disk-link --kind update.paused --json |
                        jq -e --arg r "$REASON_C" 'length == 1 and .[0].priority == "high" and .[0].body.reason == $r and .[0].body.phase == "fetching"' >/dev/null
        }
        check "(c) the ground has one update.paused record (high) with the reason, after the retries" wait_for 10 ground_paused
        slot_a_untouched "(c)"
        rm -f "$HEADFS/filler"
        check "(c) space back: the next sync resumes the download; the install completes" wait_for 30 phase_is ready
        check "(c) slot B holds v2 exactly" cmp -s "$N/slots/b" v2.img
        check "(c) still one update.paused record on the ground" ground_paused
        slot_a_untouched "(c) after"
        kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(c) the agent did not stop"

        # ---- (d) a damaged chunk no copy on the node holds: repaired from the ground -----------
        # B gets v2 from the controller, then A gets v3 (its first half new), so the inactive
        # B holds chunks nothing on the node has. Damaged there, they come back from the bundle
        # that installed B, by ranges, checked against B's kept manifest.
        mkcert disk-ground disk-ground node-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth' || bail "openssl could not make the node certificate"
        cp v2.img v3.img
        head -c $((64 * CHUNK)) /dev/urandom | dd of=v3.img conv=notrunc status=none
        printf '{"bundle_id": "v3", "version": "1.3.0", "security_version": 3, "compatible": ["sim-board"]}\n' >t3.json
        "$OB" create --manifest-template t3.json --image rootfs=v3.img --chunk-size $CHUNK --key "$K/signer.key" \
                --cert "$K/signer.pem" -o v3.obundle >/dev/null 2>ob.err || bail "bundle v3: $(cat ob.err)"
        oc bundle upload v3.obundle >/dev/null || bail "bundle upload v3"
        new_node ground "$D/node-ground/slots/b" "$D/node-ground/state/update" 60 ", \"link\": {\"enabled\": true, \"url\": \"$URL\",
 \"ca\": \"$D/server-ca.pem\", \"cert\": \"$D/disk-ground.pem\", \"key\": \"$D/disk-ground.key\",
 \"poll_interval_sec\": 1, \"backoff_min_sec\": 1, \"backoff_max_sec\": 2}"
        mkdir -p "$N/etc/keys/commands" && cp cmd-ca.pem "$N/etc/keys/commands/"
        W=$N/state/update
        reboot_into() { # SLOT: what the bootloader does at power-on, then the agent again
                kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(d) the agent did not stop"
                local booted
                booted=$("$TOOL" --kind file --path "$N/boot.json" simulate-boot "$N/cmdline") || bail "(d) no bootable slot"
                [ "$booted" = "$1" ] || fail "(d) the bootloader booted $booted, not $1"
                start_agent
        }
        start_agent
        oc command send disk-ground update.install bundle_id=v2 >/dev/null || fail "(d) send update.install v2"
        check "(d) v2 from the controller into B" wait_for 30 phase_is ready
        jq -e --arg u "$URL/v1/bundles/v2" '.url == $u and .bundle_id == "v2" and (.etag | startswith("\"sha256:")) and .payload_offset > 0' \
                <(sed 1d "$W/slot-rootfs-B.source") >/dev/null &&
                pass "(d) B's record keeps where its bundle came from (url, etag, payload offset)" ||
                fail "(d) source record" "$(cat "$W/slot-rootfs-B.source")"
        reboot_into B
        check "(d) v2 committed on B" wait_for 15 phase_is committed
        oc command send disk-ground update.install bundle_id=v3 >/dev/null || fail "(d) send update.install v3"
        check "(d) v3 from the controller into A" wait_for 30 phase_is ready
        reboot_into A
        check "(d) v3 committed on A" wait_for 15 phase_is committed
        check "(d) B (v2) is the good fallback" test "$(boot_state)" = "primary=A A_good=1 A_tries_left=0 B_good=1 B_tries_left=0"
        flipbyte() { # FILE OFFSET
                local b
                b=$(od -An -tu1 -j "$2" -N 1 "$1" | tr -d ' ')
                printf "$(printf '\\%03o' $((b ^ 255)))" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
        }
        ground_scrub() { # JQ over the ground's update.scrub records of disk-ground
                oc records disk-ground --kind update.scrub --json | jq -e "$1" >/dev/null
        }

        # chunks 10 and 11 only v2 has (one range), chunk 100 the active A has too
        flipbyte "$N/slots/b" $((10 * CHUNK + 17))
        flipbyte "$N/slots/b" $((11 * CHUNK + 4000))
        flipbyte "$N/slots/b" $((100 * CHUNK + 1))
        out=$(ctl update scrub) &&
                grep -qF "rootfs slot B: repaired; 128 chunks, 3 bad, 3 repaired; trusted again, a good fallback again; repaired from the ground: 2 chunks" <<<"$out" &&
                pass "(d) scrub: 1 chunk from the active slot, 2 from the ground: $out" || fail "(d) scrub from the ground" "$out"
        check "(d) B is v2 again, byte for byte" cmp -s "$N/slots/b" v2.img
        grep -qF "slot rootfs B repaired from the ground: 2 chunks ($((2 * CHUNK)) bytes in 1 ranges of $URL/v1/bundles/v2), verified whole" "$N/agent.log" &&
                pass "(d) only the two damaged chunks were fetched, as one range" || fail "(d) ranges" "$(grep 'from the ground' "$N/agent.log")"
        check "(d) B still the good fallback, its record kept" sh -c "[ \"$(boot_state)\" = 'primary=A A_good=1 A_tries_left=0 B_good=1 B_tries_left=0' ] && [ -e '$W/slot-rootfs-B.manifest' ] && [ ! -e '$W/slot-rootfs-B.damaged' ]"
        check "(d) the ground has the scrub (high): 2 chunks repaired from the ground" wait_for 15 ground_scrub \
                '[.[] | select(.priority == "high" and .body.slots[0].repaired_from_ground == 2 and .body.slots[0].result == "repaired")] | length == 1'

        # the controller serves wrong bytes for chunk 20: refused, nothing written
        BUNDLE_FILE=$D/data/bundles/v2.obundle
        PAYLOAD=$(sed 1d "$W/slot-rootfs-B.source" | jq .payload_offset)
        flipbyte "$N/slots/b" $((20 * CHUNK + 9))
        cp "$N/slots/b" b.damaged
        flipbyte "$BUNDLE_FILE" $((PAYLOAD + 20 * CHUNK + 300))
        out=$(ctl update scrub) && fail "(d) a slot left damaged: exit 1" "$out" ||
                { grep -qF "rootfs slot B: damaged; 128 chunks, 1 bad, 0 repaired; taken out of the boot choices, its manifest kept for a repair from the ground; damaged: 1 chunks from the ground refused, they do not match the slot's manifest (first: chunk 20); 0 written" <<<"$out" &&
                        pass "(d) a wrong chunk from the ground is refused: $out" || fail "(d) tampered" "$out"; }
        check "(d) tampered: nothing written to B" cmp -s "$N/slots/b" b.damaged
        check "(d) tampered: B not bootable, its manifest set aside" sh -c "[ \"$(boot_state)\" = 'primary=A A_good=1 A_tries_left=0 B_good=0 B_tries_left=0' ] && [ ! -e '$W/slot-rootfs-B.manifest' ] && [ -e '$W/slot-rootfs-B.damaged' ]"
        check "(d) tampered: status lists B as damaged" test "$(ust .rootfs_slots.B.damaged)" = true
        check "(d) the ground has the scrub (critical) with the refused chunk" wait_for 15 ground_scrub \
                '[.[] | select(.priority == "critical" and .body.slots[0].refused_from_ground == 1 and .body.slots[0].unrepaired == 1)] | length == 1'
        flipbyte "$BUNDLE_FILE" $((PAYLOAD + 20 * CHUNK + 300)) # the controller's copy is right again
        out=$(ctl update scrub) &&
                grep -qF "rootfs slot B: repaired; 128 chunks, 1 bad, 1 repaired; trusted again, a good fallback again; repaired from the ground: 1 chunks" <<<"$out" &&
                pass "(d) the next scrub repairs it from the ground: $out" || fail "(d) repair after a refusal" "$out"
        check "(d) B is v2 again and the good fallback again" sh -c "cmp -s '$N/slots/b' v2.img && [ \"$(boot_state)\" = 'primary=A A_good=1 A_tries_left=0 B_good=1 B_tries_left=0' ]"

        # the bundle's file gone from the controller: 410, said once, tried at the next scrub
        mv "$BUNDLE_FILE" "$D/v2.obundle.away"
        log_before=$(wc -l <"$N/agent.log")
        flipbyte "$N/slots/b" $((30 * CHUNK + 9))
        out=$(ctl update scrub) && fail "(d) bundle gone: exit 1" "$out" ||
                { grep -qF "damaged: the bundle that installed slot rootfs B is gone from the controller ($URL/v1/bundles/v2); tried again at the next scrub" <<<"$out" &&
                        pass "(d) the bundle gone from the controller is said: $out" || fail "(d) gone" "$out"; }
        [ "$(tail -n +"$((log_before + 1))" "$N/agent.log" | grep -c "fetching bytes .* of $URL/v1/bundles/v2")" = 0 ] &&
                pass "(d) gone: asked once, no retries" || fail "(d) gone: retried" "$(grep 'fetching bytes' "$N/agent.log" | tail -3)"
        check "(d) gone: the next try is the next scrub (a day away)" sh -c "[ \$(\"$CTL_BIN\" --socket \"$N/run/control.sock\" update status --json | jq '.scrub.next_in_sec > 86000') = true ]"
        check "(d) the ground has the scrub (critical) saying the bundle is gone" wait_for 15 ground_scrub \
                '[.[] | select(.priority == "critical" and (.body.slots[0].ground | test("the bundle that installed slot rootfs B is gone from the controller")))] | length == 1'
        mv "$D/v2.obundle.away" "$BUNDLE_FILE"
        out=$(ctl update scrub) &&
                grep -qF "rootfs slot B: repaired; 128 chunks, 1 bad, 1 repaired; trusted again, a good fallback again; repaired from the ground: 1 chunks" <<<"$out" &&
                pass "(d) the bundle back: the next scrub repairs B from it: $out" || fail "(d) repair after gone" "$out"
        check "(d) B is v2 again" cmp -s "$N/slots/b" v2.img

        # a record from before source records: damaged, no source, as an older agent left it
        rm -f "$W/slot-rootfs-B.source" "$W/slot-rootfs-B.source.prev"
        flipbyte "$N/slots/b" $((40 * CHUNK + 9))
        # ... found while the boot environment cannot be written (a power cut between the two
        # steps leaves the same): B is still a fallback, so its record stays and the next
        # scrub finds the damage again (it was removed first: B stayed a good fallback, with
        # nothing left that would make a scrub look at it again)
        mkdir "$N/boot.json.tmp"
        out=$(ctl update scrub) && fail "(d) boot env unwritable: exit 1" "$out" ||
                { grep -qF "rootfs slot B: damaged; 128 chunks, 1 bad, 0 repaired; not taken out of the boot choices (boot environment" <<<"$out" &&
                        pass "(d) the boot environment cannot be written: said: $out" || fail "(d) boot env unwritable" "$out"; }
        rmdir "$N/boot.json.tmp"
        check "(d) boot env unwritable: B's record kept for the next scrub" test -e "$W/slot-rootfs-B.manifest"
        out=$(ctl update scrub) && fail "(d) no source: exit 1" "$out" ||
                { grep -qF "rootfs slot B: damaged; 128 chunks, 1 bad, 0 repaired; taken out of the boot choices, its record removed; damaged, no source to repair from (the slot's record does not say where its bundle came from)" <<<"$out" &&
                        pass "(d) a record without a source: said, nothing fetched: $out" || fail "(d) no source" "$out"; }
        check "(d) no source: nothing kept of B" sh -c "[ ! -e '$W/slot-rootfs-B.manifest' ] && [ ! -e '$W/slot-rootfs-B.damaged' ]"
        slot_a_is_v3() { cmp -s "$N/slots/a" v3.img; }
        check "(d) the active slot A untouched throughout" slot_a_is_v3
        kill -TERM "$AGENT_PID"; wait_exit "$AGENT_PID" 20 || fail "(d) the agent did not stop"
        has_sanitizer_report "$D/controller.log" && fail "sanitizer report in the controller log"
fi

for f in "$D"/node-*/agent.log; do
        if has_sanitizer_report "$f"; then fail "sanitizer report in $f"; fi
done
finish
