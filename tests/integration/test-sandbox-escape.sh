# Integration test: a hostile tenant inside a DEFAULT workload on the real agent tries every
# escape of issue 14 (docs/security.md); each one must be held. The attacks are
# tests/integration/escape-probe, run as the workload; it prints "HELD x" or "ESCAPED x".
# No attack is skipped because the test runs as root: root is what the agent runs as.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (the agent runs as root)"
command -v jq >/dev/null 2>&1 || skip_all "jq not installed"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"

AGENT=$top_builddir/orbit-agent
CTL_BIN=$top_builddir/orbitctl
PROBE=$top_builddir/tests/integration/escape-probe
INIT=${SANDBOX_INIT:-$top_builddir/orbit-sandbox-init}
[ -x "$PROBE" ] || bail "$PROBE is missing: build it first (make check builds it)"
[ -x "$INIT" ] || bail "$INIT is missing: build it first"
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
setup_testdir
PARENT="orbit-esc-$$"
D=$TESTDIR
mkdir -p "$D/etc/workloads.d" "$D/specs" "$D/opt" "$D/sock"
# The probe and nothing else in the directory the workloads see at /opt/probe.
cp "$PROBE" "$D/opt/escape-probe"
chmod 0755 "$D" "$D/opt" "$D/opt/escape-probe"
AGENT_PID=""
AGENT_LOG=$D/agent.log
FAIL_CONTEXT_LOG=$AGENT_LOG
SECRET="ORBIT_AGENT_SECRET=s3cr3t-$$"
BINDS='"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}, {"source": "'"$D"'/opt", "target": "/opt/probe"}]'

ctl() { "$CTL_BIN" --socket "$D/run/control.sock" "$@"; }
field() { ctl workload show "$1" --json | jq -r "$2"; }
state_is() { [ "$(field "$1" .state 2>/dev/null)" = "$2" ]; }
logs() { ctl workload logs "$1" 2>/dev/null | sed 's/^.* std\(out\|err\) //'; }

cat >"$D/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "escape-test", "state_dir": "$D/state", "runtime_dir": "$D/run",
 "log_target": "stderr", "log_level": "info",
 "runtime": {"cgroup_parent": "$PARENT", "stop_workloads_on_exit": true, "sandbox_init": "$INIT"},
 "sandbox": {"allow_privileged": false}}
JSON

cleanup_cgroups() { cleanup_cgroup_tree "$PARENT"; }
trap 'cleanup_cgroups; cleanup' EXIT

env "$SECRET" "$AGENT" --config "$D/etc/agent.json" >>"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
track_pid "$AGENT_PID"
wait_for "$ORBIT_TEST_TIMEOUT" ctl ping >/dev/null 2>&1 || bail "the agent did not answer"

# spec NAME EXEC-JSON [EXTRA-TOP-LEVEL-JSON] [EXTRA-SANDBOX-JSON]: a default spec, only binds added.
spec() {
        local extra=${3:+, $3} sbx=${4:+, $4}
        printf '{"name": "%s", "exec": %s, "restart": {"policy": "no"}%s,\n "sandbox": {%s%s}}\n' \
                "$1" "$2" "$extra" "$BINDS" "$sbx" >"$D/specs/$1.json"
}

# attack NAME ARGS...: run escape-probe ARGS in a default workload until it ends; OUT holds its output.
OUT=""
attack() {
        local name=$1
        shift
        local argv
        argv=$(printf '"%s",' "/opt/probe/escape-probe" "$@")
        spec "$name" "[${argv%,}]"
        local r
        r=$(ctl workload start "$D/specs/$name.json" 2>&1) || { fail "start $name" "$r"; OUT=""; return 1; }
        wait_for 60 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show $name --json | jq -e '.state == \"stopped\" or .state == \"failed\"' >/dev/null" \
                || fail "$name ends" "state $(field "$name" .state)"
        OUT=$(logs "$name")
}

# expect_held ATTACK-LABEL: at least one HELD line for it and no ESCAPED line for it.
expect_held() {
        local label=$1 what=$2
        local esc held
        esc=$(grep "^ESCAPED $label:" <<<"$OUT")
        held=$(grep -c "^HELD $label:" <<<"$OUT")
        if [ -n "$esc" ]; then
                fail "$what" "$esc"
        elif [ "$held" -eq 0 ]; then
                fail "$what" "the attack did not run: $(head -c 600 <<<"$OUT")"
        else
                pass "$what ($held held)"
        fi
}
info() { sed -n "s/^INFO $1 //p" <<<"$OUT" | head -1; }

# ---- 1. pid 1: no agent memory, environment or descriptors; nothing to hijack ----------
attack pid1 pid1
grep -q '^DONE pid1 escaped=0' <<<"$OUT" && pass "pid1 attacks ran to the end with nothing escaped" \
        || fail "pid1 attacks" "$(grep -E '^(ESCAPED|DONE)' <<<"$OUT")"
expect_held pid1-mem-write "pid 1's memory cannot be opened for writing (no code injection)"
expect_held pid1-mem-read "pid 1's memory cannot be read (no agent heap)"
expect_held pid1-environ "pid 1's environment holds nothing of the agent's"
expect_held pid1-fds "pid 1's descriptors cannot be followed"
expect_held pid1-ptrace "pid 1 cannot be ptraced"
expect_held pid1-vm-write "process_vm_writev cannot reach pid 1"
[ "$(info 'pid1 Seccomp')" = 2 ] && pass "pid 1 runs under the seccomp filter (Seccomp: 2)" \
        || fail "pid 1 seccomp" "Seccomp: $(info 'pid1 Seccomp')"
[ "$(info 'pid1 NoNewPrivs')" = 1 ] && pass "pid 1 has no_new_privs" || fail "pid 1 no_new_privs" "$(info 'pid1 NoNewPrivs')"
[ "$(info 'pid1 CapEff')" = 0000000000000000 ] && pass "pid 1 has no effective capability" \
        || fail "pid 1 capabilities" "CapEff $(info 'pid1 CapEff')"

# ---- the workload itself: filter, ids, descriptors, environment ------------------------
attack self self
[ "$(info 'self Seccomp')" = 2 ] && [ "$(info 'self NoNewPrivs')" = 1 ] && pass "the workload has the filter and no_new_privs" \
        || fail "workload confinement" "$(grep '^INFO self' <<<"$OUT")"
[ "$(info 'self CapEff')" = 0000000000000000 ] && [ "$(info 'self CapBnd')" = 0000000000000000 ] \
        && pass "no capability, none in the bounding set" || fail "workload capabilities" "$(grep '^INFO self Cap' <<<"$OUT")"
uidmap=$(info uid_map | tr -s ' ')
read -r in_start host_start count <<<"$uidmap"
if [ "${in_start:-x}" = 0 ] && [ "${host_start:-0}" -gt 0 ] && [ "${count:-0}" -ge 1 ]; then
        pass "root inside maps to unprivileged host uid $host_start ($count ids)"
else
        fail "user namespace by default" "uid_map: $uidmap"
fi
[ "$(info umask)" = 0022 ] && pass "umask 022" || fail "umask" "$(info umask)"
nofile=$(info nofile)
[ -n "$nofile" ] && [ "${nofile%% *}" -le 65536 ] && pass "RLIMIT_NOFILE has a default ($nofile)" || fail "nofile" "$nofile"
[ "$(info extra-fds)" = 0 ] && pass "no descriptor beyond 0-2" || fail "extra descriptors" "$(info extra-fds)"
grep -q '^ESCAPED environ' <<<"$OUT" && fail "agent environment" "$(grep '^ESCAPED environ' <<<"$OUT")" \
        || pass "nothing of the agent's environment reaches the workload"
grep -q '^orbit-init' <<<"$(info pid1-cmdline)" && pass "pid 1 is the exec'd sandbox init" \
        || fail "pid 1 is the init" "cmdline: $(info pid1-cmdline)"

# With a cgroup namespace, its root is the workload's own cgroup in every hierarchy: the
# child unshares it only after the agent attached it (the attach runs while it mounts).
spec cgns '["/opt/probe/escape-probe", "self"]' '' '"namespaces": ["user", "pid", "mount", "ipc", "uts", "net", "cgroup"]'
r=$(ctl workload start "$D/specs/cgns.json" 2>&1) || fail "start cgns" "$r"
wait_for 60 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show cgns --json | jq -e '.state == \"stopped\"' >/dev/null"
OUT=$(logs cgns)
cglines=$(sed -n 's/^INFO cgroup //p' <<<"$OUT")
if [ -n "$cglines" ] && ! grep -qv ':/$' <<<"$cglines"; then
        pass "in a cgroup namespace the workload's cgroup is its root ($(wc -l <<<"$cglines") hierarchies show /)"
else
        fail "cgroup namespace root" "$(tr '\n' ' ' <<<"${cglines:-no /proc/self/cgroup lines}")"
fi

# ---- 2. a forged exit status -----------------------------------------------------------
attack forge forge
expect_held forge-status "no descriptor of pid 1 can be written"
last=$(field forge .last_exit)
grep -q "exited with code 3" <<<"$last" && pass "the agent records the real exit code 3" || fail "forged status" "last_exit: $last"

# ---- 3. the control socket from inside a workload ---------------------------------------
# The spec cannot bind the runtime dir (refused below), so reach the socket through a hard
# link in a directory the spec may bind: only the peer check stands in the way.
ln "$D/run/control.sock" "$D/sock/control.sock"
chmod 0755 "$D/sock"
spec ctl '["/opt/probe/escape-probe", "control", "/ctl/control.sock", "{\"id\": 1, \"method\": \"status\", \"params\": {}}"]' \
        '' '"rw_binds": [{"source": "'"$D"'/sock", "target": "/ctl"}]'
r=$(ctl workload start "$D/specs/ctl.json" 2>&1) || fail "start ctl" "$r"
wait_for 60 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show ctl --json | jq -e '.state == \"stopped\"' >/dev/null"
OUT=$(logs ctl)
expect_held control "a workload that reaches the control socket is refused"
grep -q 'control socket: peer pid [0-9]* (uid [0-9]*) refused' "$AGENT_LOG" && pass "the agent logs the refused peer" || fail "refusal logged"
ctl ping >/dev/null && pass "host root outside every workload is still served" || fail "host root served"

# Binds that would hand a workload the agent's own files are refused at start, naming the bind and line.
for protected in "$D/run" "$D/state" "$D/etc" / /proc /sys /dev "$D"; do
        printf '{"name": "bad",\n "exec": ["/bin/true"],\n "sandbox": {"ro_binds": ["/usr",\n   {"source": "%s", "target": "/x"}]}}\n' \
                "$protected" >"$D/specs/bad.json"
        r=$(ctl workload start "$D/specs/bad.json" 2>&1) && { fail "bind of $protected refused" "started: $r"; ctl workload stop bad >/dev/null 2>&1; continue; }
        grep -q "bad.json:4:.*$protected" <<<"$r" && pass "a bind of $protected is refused with its line" \
                || fail "bind of $protected refused with its line" "$r"
done

# ---- 4. devices --------------------------------------------------------------------------
attack devices devices
expect_held mknod "mknod is denied"
expect_held mknodat "mknodat is denied"
devopts=$(sed -n 's/^INFO mount \/dev //p' <<<"$OUT" | head -1)
for o in nosuid nodev noexec; do
        grep -qw "$o" <<<"${devopts//,/ }" && pass "/dev is $o" || fail "/dev $o" "options: $devopts"
done
rootopts=$(sed -n 's/^INFO mount \/ //p' <<<"$OUT" | head -1)
grep -qw ro <<<"${rootopts//,/ }" && pass "the root is read-only" || fail "root read-only" "$rootopts"
# Writable: what the spec asked for (/tmp here), /dev/shm, /proc itself, and the device
# nodes bound in (/dev/null... and the /proc masks, which are /dev/null too).
writable=$(sed -n 's/^INFO mount \(\S*\) \(\S*\)$/\1 \2/p' <<<"$OUT" | awk '$2 !~ /(^|,)ro(,|$)/ {print $1}' \
        | grep -vE '^(/dev/shm|/tmp|/proc|/dev/(null|zero|full|random|urandom|tty)|/proc/[a-z_-]+)$' | tr '\n' ' ')
[ -z "$writable" ] && pass "every other mount is read-only: the root, /dev and every bind below them" || fail "read-only mounts" "writable: $writable"

# A workload that keeps CAP_MKNOD still cannot make a node.
spec mknodcap '["/opt/probe/escape-probe", "devices"]' '' '"capabilities": ["CAP_MKNOD"]'
ctl workload start "$D/specs/mknodcap.json" >/dev/null 2>&1
wait_for 60 bash -o pipefail -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload show mknodcap --json | jq -e '.state == \"stopped\"' >/dev/null"
OUT=$(logs mknodcap)
expect_held mknod "mknod is denied even with CAP_MKNOD kept"

# The device cgroup: v1 devices.list of the workload's group allows only the standard nodes.
devlist=""
for f in /sys/fs/cgroup/devices/"$PARENT"/*/devices.list; do
        [ -f "$f" ] && { devlist=$(cat "$f"); break; }
done
if [ -d /sys/fs/cgroup/devices ]; then
        if [ -n "$devlist" ] && ! grep -q '^a \*:\* rwm' <<<"$devlist"; then
                pass "the device cgroup denies devices by default ($(wc -l <<<"$devlist") rules)"
        else
                fail "device cgroup" "devices.list: ${devlist:-none found}"
        fi
fi

# ---- 5. sockets, namespaces, mounts ---------------------------------------------------
attack sockets sockets
for fam in AF_VSOCK AF_PACKET AF_INET-raw; do
        grep -q "^HELD socket: $fam:" <<<"$OUT" && ! grep -q "^ESCAPED socket: $fam " <<<"$OUT" \
                && pass "socket($fam) is denied" || fail "socket $fam" "$(grep "socket: $fam" <<<"$OUT")"
done
expect_held socket "no raw or unusual socket family opens"
[ "$(info 'tcp socket')" = ok ] && [ "$(info 'unix socket')" = ok ] && pass "TCP and unix sockets still work" \
        || fail "normal sockets" "$(grep 'socket' <<<"$OUT" | grep INFO)"

attack namespaces namespaces
expect_held unshare "no new user, mount or network namespace"
expect_held mount "no mount"

attack procmask procmask
expect_held procmask "crun's /proc masks hide every path"

# ---- 6. default limits -----------------------------------------------------------------
attack forkbomb forkbomb 100000
expect_held forkbomb "a fork bomb stops at the default pids limit"
ctl ping >/dev/null && pass "the agent answered during the fork bomb" || fail "agent alive after the fork bomb"
attack balloon memory 4096
esc=$(grep '^ESCAPED memory' <<<"$OUT")
last=$(field balloon .last_exit)
touched=$(sed -n 's/^INFO memory touched \([0-9]*\) MiB/\1/p' <<<"$OUT" | tail -1)
st=$(field balloon .state)
if [ -z "$esc" ] && [ "$st" != running ] && { grep -q '^HELD memory' <<<"$OUT" || grep -q 'OOM' <<<"$last"; }; then
        pass "a memory balloon stops at the default memory limit (${touched:-0} MiB; $last)"
else
        fail "default memory limit" "state $st, touched ${touched:-0} MiB: $esc $last"
fi

# ---- 7. opt-outs and neighbours ----------------------------------------------------------
spec nopid '["/bin/true"]' '' '"namespaces": ["mount", "ipc", "uts", "net"]'
r=$(ctl workload start "$D/specs/nopid.json" 2>&1) && { fail "a spec without a pid namespace is refused" "started: $r"; ctl workload stop nopid >/dev/null 2>&1; } \
        || { grep -qi "namespaces" <<<"$r" && pass "a spec without a pid namespace is refused: $(head -1 <<<"$r")" || fail "no-pid refusal names the key" "$r"; }

spec victim '["/opt/probe/escape-probe", "sleep"]' '"env": {"VICTIM_MARKER": "victim-'$$'"}'
r=$(ctl workload start "$D/specs/victim.json" 2>&1) || note "victim: $r"
check "the victim runs" wait_for 20 state_is victim running
attack neighbour neighbour "victim-$$"
expect_held neighbour "a workload cannot see another workload's processes or environment"
vpid=$(field victim .pid)
npid_uid=$(awk '/^Uid:/ {print $2}' "/proc/$vpid/status" 2>/dev/null)
spec other '["/opt/probe/escape-probe", "sleep"]'
ctl workload start "$D/specs/other.json" >/dev/null 2>&1
check "a second workload runs" wait_for 20 state_is other running
opid=$(field other .pid)
# The workloads' own processes (children of each init) carry the mapped host uids.
vchild=$(pgrep -P "$vpid" | head -1)
ochild=$(pgrep -P "$opid" | head -1)
vu=$(awk '/^Uid:/ {print $2}' "/proc/${vchild:-0}/status" 2>/dev/null)
ou=$(awk '/^Uid:/ {print $2}' "/proc/${ochild:-0}/status" 2>/dev/null)
if [ -n "$vu" ] && [ -n "$ou" ] && [ "$vu" != "$ou" ] && [ "$vu" != 0 ] && [ "$ou" != 0 ]; then
        pass "two workloads run as different unprivileged host uids ($vu, $ou)"
else
        fail "distinct host uids" "victim $vu (init $npid_uid), other $ou"
fi
ctl workload stop victim >/dev/null 2>&1
ctl workload stop other >/dev/null 2>&1

spec priv '["/bin/true"]' '"privileged": true'
r=$(ctl workload start "$D/specs/priv.json" 2>&1) && { fail "privileged refused by default policy" "started: $r"; ctl workload stop priv >/dev/null 2>&1; } \
        || { grep -qi privileged <<<"$r" && pass "a privileged spec is refused when the node's policy forbids it" || fail "privileged refusal" "$r"; }

# ---- 8. the health probe runs under the workload's confinement ---------------------------
cat >"$D/specs/probed.json" <<JSON
{"name": "probed", "exec": ["/bin/sh", "-c", "while [ ! -s /tmp/probe-status ]; do sleep 0.1; done; cat /tmp/probe-status; sleep 3600"],
 "restart": {"policy": "no"},
 "health_probe": {"exec": ["/bin/sh", "-c", "cat /proc/self/status > /tmp/probe-status.new && mv /tmp/probe-status.new /tmp/probe-status"], "interval_sec": 1, "timeout_sec": 5, "failures": 3},
 "sandbox": {$BINDS, "tmpfs": ["/tmp"]}}
JSON
ctl workload start "$D/specs/probed.json" >/dev/null 2>&1
if wait_for 60 sh -c "\"$CTL_BIN\" --socket \"$D/run/control.sock\" workload logs probed | grep -q Seccomp:"; then
        OUT=$(logs probed)
        pst() { awk -v k="$1:" '$1 == k {print $2; exit}' <<<"$OUT"; }
        [ "$(pst Seccomp)" = 2 ] && [ "$(pst NoNewPrivs)" = 1 ] && pass "the probe runs with the filter and no_new_privs" \
                || fail "probe confinement" "Seccomp $(pst Seccomp) NoNewPrivs $(pst NoNewPrivs)"
        [ "$(pst CapEff)" = 0000000000000000 ] && pass "the probe has no capability" || fail "probe caps" "$(pst CapEff)"
        groups=$(awk '$1 == "Groups:" {$1=""; print; exit}' <<<"$OUT" | tr -d ' ')
        [ -z "$groups" ] && pass "the probe has no supplementary group" || fail "probe groups" "$groups"
else
        fail "the probe's status reached the workload" "$(logs probed | head -5)"
fi
ctl workload stop probed >/dev/null 2>&1

# ---- the agent survived all of it ------------------------------------------------------
kill -0 "$AGENT_PID" && ctl ping >/dev/null && pass "the agent is alive and answering" || fail "agent alive"
grep -q "$SECRET" "$D"/state/logs/* 2>/dev/null && fail "the secret leaked into a workload log" || pass "the agent's secret is in no workload log"
kill -TERM "$AGENT_PID"
wait_exit "$AGENT_PID" "$ORBIT_TEST_TIMEOUT" || fail "agent stops on SIGTERM"
finish
