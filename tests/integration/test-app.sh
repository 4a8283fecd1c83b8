# Integration test of app slots (#19 item 1) with the real agent and real sandboxes: a
# workload whose files come from a signed "app:<name>" bundle, installed A/B, switched with
# its users restarted, pinned to a version, held by its health probe in the trial and
# rolled back when the new version fails it; tampered and hostile app bundles refused with
# nothing switched or written outside the slot.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
require_sandboxes

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
OB=$top_builddir/orbit-bundle
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
D=$TESTDIR
K=$D/keys
N=$D/node
PARENT="orbit-it-app-$$"
mkdir -p "$K" "$N/etc/keys/bundles" "$N/etc/workloads.d" "$N/sys/class/thermal/thermal_zone0" "$N/slots" \
        "$N/data/det" "$N/data/pin" "$D/outside"
cd "$D" || bail "cd"
cleanup_cgroups() { cleanup_cgroup_tree "$PARENT"; }
trap 'cleanup; cleanup_cgroups' EXIT

# ---- keys, app trees, bundles --------------------------------------------------------
"$OB" keygen --ca --subject "CN=test fleet CA" --key "$K/ca.key" --cert "$K/ca.pem" >/dev/null &&
        "$OB" keygen --role release --subject "CN=release" --issuer-key "$K/ca.key" --issuer-cert "$K/ca.pem" \
                --key "$K/signer.key" --cert "$K/signer.pem" >/dev/null || bail "keygen"
cp "$K/ca.pem" "$N/etc/keys/bundles/"

# An app tree: bin/serve writes its version where the workload's data dir is bound, then
# waits; bin/probe passes unless the version is "bad". Modes are the tar's business: the
# agent normalizes them.
app_tar() { # OUT VERSION-WORD
        rm -rf "$D/src" && mkdir -p "$D/src/bin" "$D/src/share"
        cat >"$D/src/bin/serve" <<EOF
#!/bin/sh
echo $2 >/data/version
exec sleep 100000
EOF
        printf '#!/bin/sh\n[ "%s" != bad ]\n' "$2" >"$D/src/bin/probe"
        chmod 0700 "$D/src/bin/serve" "$D/src/bin/probe"
        head -c 300000 /dev/urandom >"$D/src/share/weights.bin"
        ln -s serve "$D/src/bin/run"
        tar --format=pax --owner=0 --group=0 -cf "$1" -C "$D/src" . || bail "tar $1"
}
bundle() { # OUT VERSION IMAGE-ARGS...
        local out=$1 v=$2
        shift 2
        printf '{"bundle_id": "%s", "version": "%s", "security_version": 1, "compatible": ["sim-board"]}\n' \
                "${out%.obundle}" "$v" >"$D/t.json"
        "$OB" create --manifest-template "$D/t.json" "$@" --chunk-size 65536 --key "$K/signer.key" \
                --cert "$K/signer.pem" -o "$out" >/dev/null 2>"$D/ob.err" || bail "bundle $out: $(cat "$D/ob.err")"
}
app_tar app-1.tar v1 && bundle app-1.obundle 1.1.0 --image app:hello=app-1.tar
app_tar app-2.tar v2 && bundle app-2.obundle 1.2.0 --image app:hello=app-2.tar
app_tar app-3.tar bad && bundle app-3.obundle 1.3.0 --image app:hello=app-3.tar
# tampered: one byte of v1's payload inverted inside the signed bundle (v1: by then no slot
# holds its chunks, so they must come from the bundle; a chunk the node has is never read)
cp app-1.obundle tampered.obundle
off=$(python3 - "$D/app-1.obundle" <<'PY'
import sys, tarfile
with tarfile.open(sys.argv[1]) as t:
    for m in t.getmembers():
        if m.name == "app-hello.tar":
            print(m.offset_data + 100000)
PY
)
[ -n "$off" ] || bail "cannot find the app payload"
b=$(od -An -tu1 -j "$off" -N1 tampered.obundle | tr -d ' ')
printf "\\$(printf '%03o' $((b ^ 0xff)))" | dd of=tampered.obundle bs=1 seek="$off" conv=notrunc status=none
# hostile, yet signed: a release key does not make a tar safe to unpack as root
python3 - "$D/hostile.tar" "$D/outside" <<'PY' || bail "hostile tar"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    d = b"#!/bin/sh\n"
    i = tarfile.TarInfo("bin/serve"); i.size = len(d); i.mode = 0o755; t.addfile(i, io.BytesIO(d))
    i = tarfile.TarInfo("escape"); i.type = tarfile.SYMTYPE; i.linkname = sys.argv[2]; t.addfile(i)
    d = b"owned\n"
    i = tarfile.TarInfo("escape/pwned"); i.size = len(d); t.addfile(i, io.BytesIO(d))
PY
bundle hostile.obundle 1.4.0 --image app:hello=hostile.tar
python3 - "$D/updir.tar" <<'PY' || bail "updir tar"
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    d = b"owned\n"
    i = tarfile.TarInfo("../../../outside-up"); i.size = len(d); t.addfile(i, io.BytesIO(d))
PY
bundle updir.obundle 1.5.0 --image app:hello=updir.tar

# ---- the node ---------------------------------------------------------------------------
echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
: >"$N/slots/a" && : >"$N/slots/b"
echo "console=ttyS0 orbit.slot=A" >"$N/cmdline"
"$top_builddir/tests/integration/bootenv-tool" --kind file --path "$N/boot.json" init-state A >/dev/null || bail "init-state"
# gate 1 s, and a trial timeout long enough for a restarted workload's first probe on a
# loaded machine: a good version commits when its probe passes, a bad one rolls back then
cat >"$N/agent.json" <<JSON
{"config_version": 1, "node_id": "sim-app", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "config_dir": "$N/etc", "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"cgroup_parent": "$PARENT", "stop_workloads_on_exit": true, "sandbox_init": "$SANDBOX_INIT"},
 "health": {"poll_interval_ms": 200, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "update": {"enabled": true, "hardware": "sim-board", "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"},
            "gate_sec": 1, "trial_timeout_sec": 40}}
JSON
FAIL_CONTEXT_LOG=$N/agent.log
spec() { # NAME VERSION-OR-EMPTY
        local v=""
        [ -n "$2" ] && v=", \"version\": \"$2\""
        cat <<JSON
{"name": "$1", "exec": ["/app/bin/run"], "app": {"name": "hello"$v},
 "health_probe": {"exec": ["/app/bin/probe"], "interval_sec": 1, "timeout_sec": 5, "failures": 100},
 "restart": {"policy": "always", "initial_delay_ms": 200, "max_delay_ms": 1000, "max_restarts": 50},
 "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}],
             "rw_binds": [{"source": "$N/data/$1", "target": "/data"}]}}
JSON
}
spec det "" >"$N/etc/workloads.d/det.json"

ctl() { "$CTL_BIN" --socket "$N/run/control.sock" "$@"; }
ust() { ctl update status --json | jq -r "$1"; }
phase_is() { [ "$(ust .phase)" = "$1" ]; }
wl() { ctl workload show "$1" --json | jq -r "$2"; }
wl_is() { [ "$(wl "$1" "$2")" = "$3" ]; }
running_pid() { ctl workload show "$1" --json | jq -r 'select(.state == "running") | .pid'; }
restarted_from() { local p; p=$(running_pid "$1"); [ -n "$p" ] && [ "$p" != "$2" ]; }
data_is() { [ "$(cat "$N/data/$1/version" 2>/dev/null)" = "$2" ]; }
"$AGENT" --config "$N/agent.json" >>"$N/agent.log" 2>&1 &
AGENT_PID=$!
track_pid "$AGENT_PID"
wait_for 20 ctl ping >/dev/null 2>&1 || bail "the agent did not answer"

# ---- nothing installed: the workload is refused with the reason ------------------------
not_installed() {
        ctl workload show det --json | jq -e '.state == "failed" and (.last_error | contains("app hello is not installed here"))' >/dev/null
}
check "not installed: the workload fails with the reason" wait_for 10 not_installed

# ---- v1: installed, unpacked, the workload runs from it --------------------------------
check "v1: an app-only bundle installs" ctl update install "$D/app-1.obundle"
check "v1: committed once the gate holds" wait_for 30 phase_is committed
check "v1: current is a" test "$(readlink "$N/state/apps/hello/current")" = a
check "v1: a holds 1.1.0" test "$(cat "$N/state/apps/hello/a/version")" = 1.1.0
check "v1: the tree is unpacked with normalized modes" test "$(stat -c %a "$N/state/apps/hello/a/root/bin/serve")" = 755
check "v1: the tree's link is kept" test "$(readlink "$N/state/apps/hello/a/root/bin/run")" = serve
check "v1: the image is kept beside it for deltas and scrubs" cmp -s "$N/state/apps/hello/a/image" app-1.tar
check "v1: the workload starts" ctl workload start det
check "v1: it runs the app's v1" wait_for 20 data_is det v1
# the apps dir is the default one, in the state dir: the runtime hands the app's tree to a
# workload in a user namespace, and the state dir stays closed to others
check "v1: the workload has a user namespace" test "$(readlink "/proc/$(running_pid det)/ns/user")" != "$(readlink /proc/self/ns/user)"
check "v1: the state dir stays 0700" test "$(stat -c %a "$N/state")" = 700
check "v1: show names the app, member A and 1.1.0" test "$(ctl workload show det --json | jq -cS .app)" = '{"member":"A","name":"hello","version":"1.1.0"}'
spec pin 1.1.0 >"$D/pin.json"
check "pinned: a workload pinned to 1.1.0 starts" ctl workload start "$D/pin.json"
check "pinned: it runs v1" wait_for 20 data_is pin v1

# a spec reaches an app's tree through "app" only: not by binding a member's path (it would
# run from a tree no version names, rewritten under it by the next install)
printf '{"name": "sneak", "exec": ["/bin/true"], "sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}, {"source": "%s", "target": "/other"}]}}\n' \
        "$N/state/apps/hello/a/root" >"$D/sneak.json"
out=$(ctl workload start "$D/sneak.json" 2>&1) && fail "a bind of an app member's tree: refused" "$out" || {
        grepq "bind of $N/state/apps/hello/a/root lies inside $N/state/apps (the app slots, bound through \"app\" only)" <<<"$out" &&
                pass "a bind of an app member's tree is refused, naming the app slots" || fail "sneak: reason" "$out"; }

# ---- v2: switched, the follower restarted, the pinned one left alone --------------------
det1=$(running_pid det)
pin1=$(running_pid pin)
check "v2: installs" ctl update install "$D/app-2.obundle"
check "v2: committed" wait_for 30 phase_is committed
check "v2: current is b" test "$(readlink "$N/state/apps/hello/current")" = b
check "v2: the follower was restarted onto v2" wait_for 20 data_is det v2
check "v2: the follower runs from member B" wl_is det '.app.member + " " + .app.version' "B 1.2.0"
check "v2: the pinned workload was not restarted" test "$(running_pid pin)" = "$pin1"
check "v2: the pinned workload still runs from member A" wl_is pin '.app.member' A
grepq "app hello switched; restarted det$" "$N/agent.log" && pass "v2: the switch names the restarted follower" ||
        fail "v2: restart log"
[ "$det1" != "$(running_pid det)" ] && pass "v2: a new process" || fail "v2: same pid"

# ---- v3 while the pinned one runs from A: refused, nothing touched ----------------------
out=$(ctl update install "$D/app-3.obundle" 2>&1) && fail "v3: refused while member A is in use" "$out" || {
        grepq "app hello: slot A holds the version workload pin runs" <<<"$out" &&
                pass "v3: refused while the pinned workload runs from member A" || fail "v3: reason" "$out"; }
check "v3: A untouched" test "$(cat "$N/state/apps/hello/a/version")" = 1.1.0
check "v3: the pinned workload still runs" test "$(running_pid pin)" = "$pin1"

# ---- v3 while a pinned one waits out a restart's delay: still refused --------------------
check "v3: the pinned workload stops" ctl workload stop pin
# pinned to A's version, its process gone, its next start (from A) due in 10 minutes: the
# install must not rewrite A under it
spec pinc 1.1.0 | jq '.exec = ["/bin/false"] | .restart.initial_delay_ms = 600000 | .restart.max_delay_ms = 600000' \
        >"$D/pinc.json" && mkdir -p "$N/data/pinc" || bail "pinc spec"
check "backoff: a pinned workload that exits at once starts" ctl workload start "$D/pinc.json"
check "backoff: it waits out its restart delay" wait_for 20 wl_is pinc .state backoff
check "backoff: it ran from member A" wl_is pinc .app.member A
out=$(ctl update install "$D/app-3.obundle" 2>&1) && fail "backoff: v3 refused" "$out" || {
        grepq "app hello: slot A holds the version workload pinc runs" <<<"$out" &&
                pass "backoff: v3 refused while the pinned workload waits to restart from A" ||
                fail "backoff: reason" "$out"; }
check "backoff: A still holds 1.1.0" test "$(cat "$N/state/apps/hello/a/version")" = 1.1.0
check "backoff: the pinned workload stops" ctl workload stop pinc

# ---- v3 whose probe fails: the trial holds it to its users, then rolls back -------------
det2=$(running_pid det)
check "v3: installs into A" ctl update install "$D/app-3.obundle"
check "v3: the follower runs the bad version" wait_for 30 data_is det bad
check "v3: rolled back when the trial times out" wait_for 60 phase_is rolled-back
check "v3: the reason names the workload and its probe" grepq "workload det of app hello fails its health probe ([0-9]* in a row: probe exited with code 1)" <<<"$(ust .reason)"
check "v3: current is b again" test "$(readlink "$N/state/apps/hello/current")" = b
check "v3: the follower is back on v2" wait_for 20 data_is det v2
check "v3: and healthy" wait_for 20 wl_is det .health healthy
[ "$(running_pid det)" != "$det2" ] && pass "v3: restarted twice (onto v3, back onto v2)" || fail "v3: pid"

# ---- v4 whose service ends "for good" (exit 0, restart on-failure): still held -------------
# a follower restarted onto v4 that exits 0 at once is not restarted and no longer "wants to
# run", yet the trial must not commit a version its user cannot run on (det, restarted
# "always", is stopped meanwhile: its crash loop would fail the gate by itself)
app_tar app-4.tar quit && sed -i 's/^exec sleep 100000$/exit 0/' "$D/src/bin/serve" &&
        tar --format=pax --owner=0 --group=0 -cf app-4.tar -C "$D/src" . &&
        bundle app-4.obundle 1.6.0 --image app:hello=app-4.tar || bail "app-4"
spec once "" | jq '.restart.policy = "on-failure"' >"$D/once.json" && mkdir -p "$N/data/once" || bail "once spec"
check "v4: the follower det stops" ctl workload stop det
check "v4: a follower restarted on-failure starts" ctl workload start "$D/once.json"
check "v4: it runs v2" wait_for 20 data_is once v2
once1=$(running_pid once)
check "v4: installs" ctl update install "$D/app-4.obundle"
check "v4: the follower ran v4 and ended" wait_for 30 data_is once quit
check "v4: rolled back when the trial times out" wait_for 60 phase_is rolled-back
check "v4: the reason names the follower that ended" grepq "workload once of app hello is stopped: exited with code 0" <<<"$(ust .reason)"
check "v4: current is b again" test "$(readlink "$N/state/apps/hello/current")" = b
check "v4: the follower is started again on v2" wait_for 20 data_is once v2
check "v4: and runs" wait_for 20 restarted_from once "$once1"
check "v4: it stops" ctl workload stop once
check "v4: det starts again" ctl workload start det
check "v4: det runs v2" wait_for 20 wl_is det '.app.member + " " + .state' "B running"

# ---- tampered and hostile bundles: refused, nothing switched -----------------------------
det3=$(running_pid det)
out=$(ctl update install "$D/tampered.obundle" 2>&1) && fail "tampered: refused" "$out" || {
        grepq "does not match its hash in the signed manifest" <<<"$out" &&
                pass "tampered: refused, naming the chunk" || fail "tampered: reason" "$out"; }
out=$(ctl update install "$D/hostile.obundle" 2>&1) && fail "hostile: refused" "$out" || {
        grepq "app hello: the image is not a tree an app can have: entry 'escape/pwned'" <<<"$out" &&
                pass "hostile: a path through the tree's own link is refused" || fail "hostile: reason" "$out"; }
check "hostile: nothing written through the link" test ! -e "$D/outside/pwned"
out=$(ctl update install "$D/updir.obundle" 2>&1) && fail "updir: refused" "$out" || {
        grepq "entry '../../../outside-up': a \"..\" component" <<<"$out" &&
                pass "updir: a name that leaves the tree is refused" || fail "updir: reason" "$out"; }
check "updir: nothing written above the slot" test ! -e "$N/state/apps/outside-up" -a ! -e "$N/outside-up" -a ! -e "$D/outside-up"
check "refusals: current is still b" test "$(readlink "$N/state/apps/hello/current")" = b
check "refusals: b still holds 1.2.0" test "$(cat "$N/state/apps/hello/b/version")" = 1.2.0
check "refusals: a holds no complete version (its install was cut)" test ! -e "$N/state/apps/hello/a/version"
check "refusals: no half tree left" test ! -e "$N/state/apps/hello/a/root.new"
check "refusals: the follower was never restarted" test "$(running_pid det)" = "$det3"
out=$(ctl workload start "$D/pin.json" 2>&1) && fail "pinned to a version no slot holds: refused" "$out" || {
        grepq "app hello 1.1.0 is not installed here (its slots hold nothing and 1.2.0)" <<<"$out" &&
                pass "pinned to a version no slot holds: refused, naming what the slots hold" ||
                fail "pinned: reason" "$out"; }

# ---- the agent stops, and its workloads with it ---------------------------------------------
kill -TERM "$AGENT_PID"
wait_exit "$AGENT_PID" 30 || fail "the agent did not stop"
check "stopped: the agent's stop stopped its workloads" test -z "$(find /sys/fs/cgroup -path "*$PARENT*" -name cgroup.procs -exec cat {} + 2>/dev/null)"

if has_sanitizer_report "$N/agent.log"; then fail "sanitizer report in the agent log"; fi
finish
