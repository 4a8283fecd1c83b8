# Integration test: sandboxes for real (root), checked from inside the workload.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
RUN=$top_builddir/tests/integration/sandbox-run
[ -x "$RUN" ] || bail "$RUN is missing: build it first"

setup_testdir
SANDBOX_INIT_COMM=orbit-init
BASE_BINDS='"/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}, {"source": "/sbin", "optional": true}'
OUT=""
ERR=""
RC=0

# run NAME EXTRA_JSON SHELL_COMMAND [sandbox-run options]: run sh -c COMMAND in a sandbox.
run() {
        local name=$1 extra=$2 cmd=$3
        shift 3
        local dir=$TESTDIR/$name
        mkdir -p "$dir/root"
        python3 - "$dir/spec.json" "$name" "$cmd" "$extra" "$BASE_BINDS" <<'PY'
import json, sys
path, name, cmd, extra, binds = sys.argv[1:]
spec = {"name": name, "exec": ["/bin/sh", "-c", cmd],
        "sandbox": {"ro_binds": json.loads("[" + binds + "]"), "tmpfs": ["/tmp"]}}
for k, v in json.loads("{" + extra + "}").items():
    if k == "sandbox":
        spec["sandbox"].update(v)
    else:
        spec[k] = v
json.dump(spec, open(path, "w"), indent=1)
PY
        RC=0
        timeout 30 "$RUN" "$@" "$dir/spec.json" "$dir/root" >"$dir/out" 2>"$dir/err" || RC=$?
        OUT=$(cat "$dir/out")
        ERR=$(cat "$dir/err")
}

expect_out() { # NAME PATTERN: the workload's output matches an extended regex
        if grep -Eq -- "$2" <<<"$OUT"; then
                pass "$1"
        else
                fail "$1" "output did not match /$2/: $(head -c 600 <<<"$OUT") / stderr: $(head -c 400 <<<"$ERR")"
        fi
}

expect_err() {
        if grep -Fq -- "$2" <<<"$ERR"; then
                pass "$1"
        else
                fail "$1" "stderr lacks '$2': $(head -c 600 <<<"$ERR")"
        fi
}

# ---- pid namespace -------------------------------------------------------------------
run pids '' 'for p in /proc/[0-9]*; do echo "${p#/proc/}"; done | sort -n | tr "\n" " "; echo'
# Inside: the init (1), the shell and its pipeline, numbered from 1; the host has many more.
expect_out "the workload sees only its own pids, numbered from 1" '^1 2( [3-9])* ?$'
[ "$RC" -eq 0 ] && pass "exit status 0 reported" || fail "exit 0" "rc=$RC $ERR"

# ---- the root holds only the binds asked for -----------------------------------------
run root '' 'ls -a /; for p in /etc/passwd /home /root /var /etc /boot; do [ -e "$p" ] && echo "VISIBLE $p"; done; echo done'
expect_out "host paths outside the binds are absent" '^done$'
if grep -q VISIBLE <<<"$OUT"; then fail "no host path leaks" "$OUT"; else pass "no host path leaks (/etc, /home, /root, /var, /boot)"; fi
entries=$(grep -vE '^(\.|\.\.|bin|dev|lib|lib64|proc|sbin|tmp|usr|done)$' <<<"$OUT" | tr '\n' ' ')
[ -z "$entries" ] && pass "the root lists exactly the binds, /dev, /proc and /tmp" || fail "root entries" "unexpected: $entries"

# ---- read-only binds and root --------------------------------------------------------
run ro '' 'touch /usr/orbit-x 2>&1; touch /orbit-x 2>&1; mkdir /lib/orbit-x 2>&1; echo data > /tmp/w && cat /tmp/w'
expect_out "a read-only bind cannot be written" "/usr/orbit-x.*Read-only file system"
expect_out "the sandbox root cannot be written" "'/orbit-x'.*Read-only file system"
expect_out "a tmpfs is writable" '^data$'
[ ! -e /usr/orbit-x ] && pass "nothing reached the host /usr" || { rm -f /usr/orbit-x; fail "host /usr untouched"; }

# sandbox-run's default host ids for the user namespace: the default pool's last slice.
IDS=$((0x70000000 + 255 * 65536))
mkdir -p "$TESTDIR/shared"
run rw '"sandbox": {"rw_binds": [{"source": "'"$TESTDIR"'/shared", "target": "/data"}]}' 'echo from-inside > /data/f && cat /data/f; stat -c "inside %u:%g" /data/f'
[ "$(cat "$TESTDIR/shared/f" 2>/dev/null)" = from-inside ] && pass "a writable bind is written through to the host" || fail "rw bind" "$ERR"
# The ownership rule: an empty dir owned by host root is handed to the workload's user.
[ "$(stat -c %u:%g "$TESTDIR/shared")" = "$IDS:$IDS" ] && pass "an empty root-owned rw bind is given to the workload's host ids" || fail "rw bind owner" "$(stat -c %u:%g "$TESTDIR/shared")"
[ "$(stat -c %u:%g "$TESTDIR/shared/f")" = "$IDS:$IDS" ] && pass "its files land with the workload's own host ids" || fail "rw file owner" "$(stat -c %u:%g "$TESTDIR/shared/f")"
expect_out "...which are root inside" '^inside 0:0$'

# Host data (not empty, owned by host root): an idmapped mount through the workload's
# user namespace on this kernel and filesystem, so the tree is its own inside and what
# it writes lands with the ids it has inside.
mkdir -p "$TESTDIR/hostdata"; echo host > "$TESTDIR/hostdata/given"; chown -R 1000:1000 "$TESTDIR/hostdata"
run idmap '"user": 1000, "group": 1000, "sandbox": {"rw_binds": [{"source": "'"$TESTDIR"'/hostdata", "target": "/data"}]}' 'stat -c "given %u:%g" /data/given; id -u; echo mine > /data/made 2>&1 || echo "write refused"; grep -E "/data " /proc/self/mountinfo | grep -o idmapped'
if grep -q '^given 1000:1000$' <<<"$OUT"; then
        pass "host data in a rw bind keeps its ids inside (idmapped: host 1000 is 1000 inside)"
        expect_out "...the mount is idmapped" '^idmapped$'
        [ "$(stat -c %u:%g "$TESTDIR/hostdata/made" 2>/dev/null)" = 1000:1000 ] && pass "...files it writes there land with its inside ids (1000) on the host" || fail "idmapped owner" "$(ls -ln "$TESTDIR/hostdata") $ERR"
        [ "$(stat -c %u "$TESTDIR/hostdata")" = 1000 ] && pass "...the host dir itself is not chowned" || fail "hostdata chowned"
else
        fail "idmapped rw bind" "$OUT / $ERR"
fi

# ---- uid 0 without capabilities still cannot reach the host through /proc ----------
run procmask '' 'echo core > /proc/sys/kernel/core_pattern || echo "sysctl refused"; echo h > /proc/sysrq-trigger || echo "sysrq refused"; for f in kcore keys timer_list; do [ -e /proc/$f ] && echo "$f $(wc -c < /proc/$f)"; done; cat /proc/sys/kernel/core_pattern >/dev/null && echo "sysctl readable"'
expect_out "a root workload cannot write sysctls (/proc/sys is read-only)" '^sysctl refused$'
expect_err "...the kernel says read-only" "core_pattern: Read-only file system"
expect_out "nor the sysrq trigger" '^sysrq refused$'
for f in kcore keys timer_list; do
        [ -e /proc/$f ] || continue
        expect_out "/proc/$f is hidden (empty inside)" "^$f 0\$"
done
expect_out "sysctls stay readable" '^sysctl readable$'

# ---- /dev: nodev, noexec, read-only; no device nodes, no raw sockets ----------------
run dev '"sandbox": {"capabilities": ["CAP_MKNOD"], "seccomp": "default"}' 'grep " /dev " /proc/self/mountinfo | sed -n "s|^[^ ]* [^ ]* [^ ]* [^ ]* /dev \([^ ]*\) .*|devopts \1|p"
touch /dev/x 2>/dev/null && echo "WROTE /dev" || echo "dev read-only"
echo data > /dev/null && echo "null writable"
python3 -c "
import errno, os, socket
def sock(fam, typ, proto=0):
    try:
        socket.socket(fam, typ, proto).close(); return \"ok\"
    except OSError as e: return errno.errorcode[e.errno]
print(\"vsock\", sock(40, socket.SOCK_STREAM))
print(\"packet\", sock(17, socket.SOCK_RAW))
print(\"raw\", sock(socket.AF_INET, socket.SOCK_RAW, 1))
print(\"tcp\", sock(socket.AF_INET, socket.SOCK_STREAM))
try:
    os.mknod(\"/tmp/kmsg\", 0o600 | 0o020000, os.makedev(1, 11)); print(\"MKNOD done\")
except OSError as e: print(\"mknod\", errno.errorcode[e.errno])
os.mkfifo(\"/tmp/fifo\"); print(\"fifo ok\")
"'
expect_out "/dev is mounted nodev, noexec, nosuid and read-only" '^devopts ro,nosuid,nodev,noexec'
expect_out "nothing can be created in /dev" '^dev read-only$'
expect_out "its nodes still work (/dev/null)" '^null writable$'
expect_out "AF_VSOCK sockets are refused by the default filter" '^vsock EPERM$'
expect_out "AF_PACKET sockets are refused" '^packet EPERM$'
expect_out "raw IP sockets are refused" '^raw EPERM$'
expect_out "TCP sockets still work" '^tcp ok$'
expect_out "mknod of a device is refused even with CAP_MKNOD" '^mknod EPERM$'
expect_out "FIFOs can still be made" '^fifo ok$'

# Without a filter, CAP_MKNOD of the host (privileged: no user namespace, where the kernel
# itself refuses device nodes) makes a node in a tmpfs; nodev keeps it unusable.
run devnofilter '"privileged": true, "sandbox": {"capabilities": ["CAP_MKNOD"], "seccomp": "none"}' 'python3 -c "
import errno, os
os.mknod(\"/tmp/kmsg\", 0o600 | 0o020000, os.makedev(1, 11)); print(\"made\")
try:
    os.close(os.open(\"/tmp/kmsg\", os.O_RDONLY)); print(\"OPENED kmsg\")
except OSError as e: print(\"open\", errno.errorcode[e.errno])
"'
expect_out "a node made with CAP_MKNOD and no filter cannot be opened (nodev)" '^open EACCES$'

# ---- /proc and /sys masks (crun's list and more) -----------------------------------
run masks '"sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}, "/sys"]}' 'for p in acpi asound scsi; do [ -d /proc/$p ] && echo "dir $p $(ls -A /proc/$p | wc -l)"; done
for f in kcore keys key-users timer_list sched_debug kallsyms kpageflags kpagecount latency_stats interrupts; do [ -e /proc/$f ] && echo "file $f $(head -c 64 /proc/$f | wc -c)"; done
[ -d /sys/firmware ] && echo "sysfw $(ls -A /sys/firmware | wc -l)"; touch /proc/acpi/x 2>/dev/null && echo "WROTE acpi"; echo done'
for p in acpi asound scsi; do
        [ -d /proc/$p ] || continue
        expect_out "/proc/$p is an empty directory inside" "^dir $p 0\$"
done
for f in kcore keys key-users timer_list sched_debug kallsyms kpageflags kpagecount latency_stats interrupts; do
        [ -e /proc/$f ] || continue
        expect_out "/proc/$f reads empty inside" "^file $f 0\$"
done
[ -d /sys/firmware ] && expect_out "/sys/firmware is empty when /sys is bound" '^sysfw 0$'
if grep -q "WROTE" <<<"$OUT"; then fail "masked dirs are read-only" "$OUT"; else pass "masked directories are read-only"; fi

# ---- a mount below a read-only bind is read-only too ---------------------------------
mkdir -p "$TESTDIR/nested/sub"
if mount -t tmpfs -o size=1m orbit-test "$TESTDIR/nested/sub"; then
        run nested '"sandbox": {"ro_binds": ["/usr", "/bin", "/lib", {"source": "/lib64", "optional": true}, {"source": "'"$TESTDIR"'/nested", "target": "/data"}]}' 'echo x > /data/sub/written 2>&1; echo y > /data/top 2>&1; echo done'
        expect_err "a submount of a read-only bind cannot be written" '/data/sub/written: Read-only file system'
        [ ! -e "$TESTDIR/nested/sub/written" ] && pass "nothing was written to the host submount" || fail "nested ro" "written on host"
        umount "$TESTDIR/nested/sub"
else
        fail "mount a tmpfs for the nested test"
fi

# ---- a symlink a workload planted in its writable dir cannot steer the agent ---------
mkdir -p "$TESTDIR/rwplant" "$TESTDIR/victim"
ln -s "$TESTDIR/victim" "$TESTDIR/rwplant/link"
run planted '"sandbox": {"rw_binds": [{"source": "'"$TESTDIR"'/rwplant", "target": "/data"}], "tmpfs": ["/tmp", "/data/link/newdir"]}' 'true'
[ "$RC" -eq 3 ] && pass "a mount target through a planted symlink is refused" || fail "planted link" "rc=$RC $ERR"
expect_err "the error says why" "tmpfs /data/link/newdir: cannot create the mount point (a symlink on the way?)"
[ ! -e "$TESTDIR/victim/newdir" ] && pass "nothing was created outside the sandbox root" || fail "victim touched" "$(ls -la "$TESTDIR/victim")"

# ---- network: loopback only ----------------------------------------------------------
run net '' 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d " "; python3 -c "
import socket
s = socket.socket(); s.bind((\"127.0.0.1\", 0)); s.listen(1)
c = socket.create_connection(s.getsockname(), timeout=2); a, _ = s.accept()
c.sendall(b\"ping\"); print(\"loopback\", a.recv(4).decode())
try:
    socket.create_connection((\"10.0.0.1\", 80), timeout=1); print(\"REACHED\")
except OSError as e:
    print(\"outside:\", e.errno)
"'
expect_out "the only interface is lo" '^lo$'
if grep -vE '^(lo|loopback ping|outside: [0-9]+)$' <<<"$OUT" | grepq .; then fail "no other interface" "$OUT"; else pass "no interface but lo"; fi
expect_out "loopback is up and carries traffic" '^loopback ping$'
expect_out "no route out of the sandbox (ENETUNREACH)" '^outside: 101$'

# ---- capabilities and no_new_privs ---------------------------------------------------
run caps '' 'grep -E "^(CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs|Seccomp):" /proc/self/status'
expect_out "no capabilities left for a root workload (CapEff 0)" '^CapEff:[[:space:]]+0000000000000000$'
expect_out "bounding set empty (CapBnd 0)" '^CapBnd:[[:space:]]+0000000000000000$'
expect_out "no_new_privs set" '^NoNewPrivs:[[:space:]]+1$'

run keepcap '"user": "nobody", "sandbox": {"capabilities": ["CAP_NET_BIND_SERVICE"]}' 'id -u; grep -E "^(CapEff|CapBnd|CapAmb):" /proc/self/status; python3 -c "
import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 80)); print(\"bound 80\")"'
expect_out "runs as the requested user (nobody)" '^65534$'
expect_out "a kept capability is effective for a non-root user" '^CapEff:[[:space:]]+0000000000000400$'
expect_out "only the kept capability stays in the bounding set" '^CapBnd:[[:space:]]+0000000000000400$'
expect_out "the kept capability works (bind port 80 as nobody)" '^bound 80$'

run nocap '"user": "nobody"' 'python3 -c "
import socket; s = socket.socket()
try:
    s.bind((\"127.0.0.1\", 80)); print(\"BOUND\")
except PermissionError: print(\"denied\")"'
expect_out "without the capability, nobody cannot bind port 80" '^denied$'

# ---- seccomp, checked from inside -------------------------------------------------
run seccomp '"sandbox": {"seccomp": "default"}' 'grep -E "^(Seccomp|NoNewPrivs):" /proc/self/status; python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.unshare(0x10000000)  # CLONE_NEWUSER
print(\"unshare\", r, os.strerror(ctypes.get_errno()))
r = libc.syscall({\"x86_64\": 101, \"aarch64\": 117}[os.uname().machine], 0, 0, 0, 0)  # ptrace(PTRACE_TRACEME)
print(\"ptrace\", r, os.strerror(ctypes.get_errno()))
print(\"getpid works\", os.getpid() > 0)"'
expect_out "the seccomp filter is installed (Seccomp: 2)" '^Seccomp:[[:space:]]+2$'
expect_out "a syscall the default policy denies fails with EPERM (unshare)" '^unshare -1 Operation not permitted$'
expect_out "ptrace is denied with EPERM" '^ptrace -1 Operation not permitted$'
expect_out "allowed calls still work" '^getpid works True$'
printf '%s\n' '{"default_action": "allow", "syscalls": [{"names": ["uname"], "action": "kill"}]}' >"$TESTDIR/kill-uname.json"
run seccompkill '"sandbox": {"seccomp": "'"$TESTDIR"'/kill-uname.json"}' 'echo before; exec uname -a'
[ "$RC" -eq 159 ] && grep -q '^signal=31$' <<<"$ERR" && pass "a policy with action kill ends the workload with SIGSYS" || fail "seccomp kill" "rc=$RC $ERR"
expect_out "it ran until the killed call" '^before$'

# ---- the sandbox's init: an exec'd static binary the workload cannot reach ----------
# Without a filter (seccomp "none"), so that only the init's own defences hold.
run init '"sandbox": {"seccomp": "none"}' 'cat /proc/1/comm; grep -E "^(NoNewPrivs|Uid):" /proc/1/status
for f in mem environ cmdline; do ( : < /proc/1/$f ) 2>/dev/null && echo "READ $f" || echo "denied $f"; done
readlink /proc/1/fd/4 >/dev/null 2>&1 && echo "LISTED fd" || echo "denied fd"
for n in 3 4 5; do printf "\0\0\0\0" > /proc/1/fd/$n 2>/dev/null && echo "WROTE fd $n" || echo "denied fd $n"; done
readlink /proc/1/exe >/dev/null 2>&1 && echo "READ exe" || echo "denied exe"
python3 -c "
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
r = libc.ptrace(16, 1, 0, 0)  # PTRACE_ATTACH
print(\"ptrace attach\", r, os.strerror(ctypes.get_errno()))
try:
    os.open(\"/proc/1/mem\", os.O_RDWR); print(\"OPENED mem rw\")
except OSError as e: print(\"mem rw\", e.strerror)
"
exit 3'
expect_out "pid 1 is the exec'd init (comm $SANDBOX_INIT_COMM)" "^orbit-init\$"
expect_out "the init runs under no_new_privs" '^NoNewPrivs:[[:space:]]+1$'
expect_out "the workload cannot open the init's memory (/proc/1/mem)" '^denied mem$'
expect_out "...nor its environment (/proc/1/environ)" '^denied environ$'
expect_out "...nor see where its descriptors lead (readlink /proc/1/fd/4)" '^denied fd$'
for n in 3 4 5; do expect_out "...nor write to its descriptor $n (status channel forgery)" "^denied fd $n\$"; done
expect_out "...nor open /proc/1/mem for writing" '^mem rw Permission denied$'
expect_out "...nor ptrace it" '^ptrace attach -1 Operation not permitted$'
expect_out "...nor follow /proc/1/exe back to the host" '^denied exe$'
expect_out "its command line is readable and holds nothing of the agent" '^READ cmdline$'
if grep -Eq '^(READ (mem|environ|exe)|LISTED|WROTE|OPENED)' <<<"$OUT"; then fail "no way into the init" "$OUT"; else pass "no way into the init"; fi
[ "$RC" -eq 3 ] && grep -q '^exit=3$' <<<"$ERR" && pass "the workload's real status (exit 3) is what the agent reads" || fail "status" "rc=$RC $ERR"

run initseccomp '"sandbox": {"seccomp": "default"}' 'grep -E "^(Seccomp|NoNewPrivs):" /proc/1/status; tr "\0" " " < /proc/1/cmdline; echo; ls /proc/self/fd | tr "\n" " "; echo'
expect_out "the init has the workload's seccomp filter (Seccomp: 2 in /proc/1/status)" '^Seccomp:[[:space:]]+2$'
expect_out "...and no_new_privs" '^NoNewPrivs:[[:space:]]+1$'
expect_out "its argv is the workload's, nothing else" '^orbit-init /bin/sh -c '

# ---- inherited descriptors -----------------------------------------------------------
run fds '' 'ls /proc/self/fd | tr "\n" " "; echo; cat <&7 2>&1 || echo "fd7 closed"' --leak-fd /etc/hostname
expect_out "only stdin, stdout, stderr reach the workload" '^0 1 2 3 ?$'
expect_out "a descriptor the agent leaked without CLOEXEC is closed" 'fd7 closed|Bad file descriptor'

# ---- user namespace by default: root inside is the workload's own host id slice ------
run userns '' 'id -u; cat /proc/self/uid_map /proc/self/gid_map; grep Groups /proc/self/status; umask; ulimit -n; ulimit -Hn'
expect_out "by default the workload is root inside a user namespace" '^0$'
expect_out "...whose uid 0..65535 map to its own host slice" "^[[:space:]]*0[[:space:]]+$IDS[[:space:]]+65536\$"
[ "$(grep -cE "^[[:space:]]*0[[:space:]]+$IDS[[:space:]]+65536\$" <<<"$OUT")" = 2 ] && pass "...and its gids too" || fail "gid_map" "$OUT"
expect_out "no supplementary groups leak in" '^Groups:[[:space:]]*$'
expect_out "default umask 022" '^0022$'
[ "$(grep -c '^1024$' <<<"$OUT")" = 2 ] && pass "default RLIMIT_NOFILE 1024 (soft and hard)" || fail "nofile default" "$OUT"
run userns2 '"user": "daemon", "sandbox": {"umask": "0077"}' 'id -u; grep -E "^Uid:" /proc/self/status; umask'
expect_out "the spec's user is an id inside the namespace" "^$(id -u daemon)\$"
expect_out "spec umask applied" '^0077$'
run hostroot '"privileged": true' 'cat /proc/self/uid_map; id -u'
expect_out "a privileged spec runs with host ids (no user namespace)" '^[[:space:]]*0[[:space:]]+0[[:space:]]+4294967295$'
# The parser refuses optional namespaces without privileged, naming the key and line.
run noneed '"sandbox": {"namespaces": ["pid", "mount", "ipc", "uts", "user"]}' 'true'
[ "$RC" -eq 2 ] && pass "a spec without its network namespace is refused" || fail "mandatory ns" "rc=$RC $ERR"
expect_err "...the error names the key and what is missing" 'sandbox.namespaces: the pid, mount, ipc, uts, net and user namespaces are mandatory (missing: net)'

run inituserns '"sandbox": {"namespaces": ["user", "pid", "mount", "ipc", "uts", "net", "cgroup"]}' 'cat /proc/1/comm; cat /proc/1/mem >/dev/null 2>&1 && echo "READ mem" || echo "denied mem"; printf "\0\0\0\0" > /proc/1/fd/4 2>/dev/null && echo "WROTE status" || echo "denied status"; exit 5'
expect_out "in a user namespace: the init was exec'd after the old root was detached" '^orbit-init$'
expect_out "...its memory is out of reach" '^denied mem$'
expect_out "...and its status channel too" '^denied status$'
[ "$RC" -eq 5 ] && pass "...and the exit status (5) comes through" || fail "userns status" "rc=$RC $ERR"

# ---- uts, rlimits, env, cwd ----------------------------------------------------------
run uts '"sandbox": {"hostname": "detector"}' 'cat /proc/sys/kernel/hostname'
expect_out "own host name" '^detector$'
run limits '"sandbox": {"rlimits": {"nofile": 64, "core": 0}}, "env": {"MODEL": "yolo"}, "cwd": "/tmp"' 'ulimit -n; ulimit -c; echo "model=$MODEL"; pwd; env | wc -l'
expect_out "rlimit nofile applied" '^64$'
expect_out "rlimit core applied" '^0$'
expect_out "the environment is exactly the spec's" '^model=yolo$'
expect_out "cwd applied" '^/tmp$'

# ---- exit status and signals ---------------------------------------------------------
run exit7 '' 'exit 7'
[ "$RC" -eq 7 ] && grep -q '^exit=7$' <<<"$ERR" && pass "exit code 7 reported" || fail "exit code" "rc=$RC $ERR"
run killed '' 'kill -KILL $$'
[ "$RC" -eq 137 ] && grep -q '^signal=9$' <<<"$ERR" && pass "death by SIGKILL reported as signal 9" || fail "signal" "rc=$RC $ERR"
run orphan '' '(sleep 30 &) ; exit 0'
[ "$RC" -eq 0 ] && pass "the workload's exit ends the sandbox even with a stray child left" || fail "orphans" "rc=$RC"

# ---- clear errors --------------------------------------------------------------------
run nobin '' 'true'
sed -i 's|"/bin/sh"|"/opt/orbit/no-such-binary"|' "$TESTDIR/nobin/spec.json"
RC=0; "$RUN" "$TESTDIR/nobin/spec.json" "$TESTDIR/nobin/root" 2>"$TESTDIR/nobin/err" || RC=$?; ERR=$(cat "$TESTDIR/nobin/err")
[ "$RC" -eq 3 ] && pass "a missing binary fails the start" || fail "missing binary" "rc=$RC"
expect_err "the error names the binary and the cause" "exec /opt/orbit/no-such-binary (is it, and its directory, bound into the sandbox?): No such file or directory"

run badbind '"sandbox": {"ro_binds": ["/usr", "/bin", "/lib", "/opt/orbit-missing"]}' 'true'
[ "$RC" -eq 3 ] && pass "a missing bind source fails the start" || fail "missing bind" "rc=$RC"
expect_err "the error names the bind" "bind /opt/orbit-missing to /opt/orbit-missing: cannot use the source: No such file or directory"
# The same child failing while the cgroup attach still runs (a prestart that outlasts it):
# its own report, not "Broken pipe", and no SIGPIPE for a caller that does not ignore it.
RC=0; "$RUN" --prestart-wait-exit "$TESTDIR/badbind/spec.json" "$TESTDIR/badbind/root" 2>"$TESTDIR/badbind/err2" || RC=$?
ERR=$(cat "$TESTDIR/badbind/err2")
[ "$RC" -eq 3 ] && pass "a child that fails during the attach: the start fails (no SIGPIPE)" || fail "failure during the attach" "rc=$RC $ERR"
expect_err "...with the child's own report" "bind /opt/orbit-missing to /opt/orbit-missing: cannot use the source: No such file or directory"

run baduser '"user": "no-such-user-orbit"' 'true'
expect_err "an unknown user is a clear error" 'user "no-such-user-orbit" does not exist on this node'

# ---- nothing left behind -------------------------------------------------------------
if grep -q "$TESTDIR" /proc/self/mountinfo; then fail "no mount leaked to the host" "$(grep "$TESTDIR" /proc/self/mountinfo)"; else pass "no sandbox mount is visible on the host"; fi

finish
