# Integration test: real programs under the built-in seccomp policies and policy files.
# shellcheck shell=bash disable=SC2317
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

HELPER=$top_builddir/tests/integration/seccomp-helper
[ -x "$HELPER" ] || bail "$HELPER is missing: build it first"
command -v python3 >/dev/null 2>&1 || skip_all "python3 not installed"
grep -q '^Seccomp:' /proc/self/status || skip_all "kernel without seccomp"
# Nested filters are fine, but a parent filter that denies prctl would fail us all.
"$HELPER" none -- true 2>/dev/null || skip_all "cannot run the helper at all"

setup_testdir
note "test dir: $TESTDIR"
PY=$(command -v python3)

# run NAME EXPECTED_STATUS POLICY PROG ARGS...: run under POLICY, check the exit status.
run() {
        local name=$1 want=$2 policy=$3
        shift 3
        local out=$TESTDIR/out.$PASSED.$FAILED rc
        timeout "$ORBIT_TEST_TIMEOUT" "$HELPER" "$policy" -- "$@" >"$out" 2>&1
        rc=$?
        if has_sanitizer_report "$out"; then
                fail "$name" "sanitizer report"
                sed 's/^/#   /' "$out" | head -n 30
        elif [ "$rc" -eq "$want" ]; then
                pass "$name"
        else
                fail "$name" "exit status $rc, expected $want"
                sed 's/^/#   /' "$out" | tail -n 15
        fi
}

# probe NAME POLICY CALL EXPECTED: run the helper's probe of CALL under POLICY.
probe() {
        local name=$1 policy=$2 call=$3 want=$4 got
        got=$(timeout "$ORBIT_TEST_TIMEOUT" "$HELPER" "$policy" -- "$HELPER" --probe "$call" \
                2>"$TESTDIR/probe.err")
        if [ "$got" = "$call: $want" ]; then
                pass "$name"
        else
                fail "$name" "got \"$got\", expected \"$call: $want\""
        fi
}

# ---- default: what an inference server does ------------------------------------------

run "default: /bin/true" 0 default /bin/true

run "default: sh with coreutils" 0 default sh -c '
        set -e
        d=$(mktemp -d "'"$TESTDIR"'/sh.XXXXXX")
        printf "hello\nworld\n" >"$d/f"
        cat "$d/f" | tr a-z A-Z | sort -r | grep -q WORLD
        ls -l "$d" >/dev/null
        cp "$d/f" "$d/g" && mv "$d/g" "$d/h" && chmod 600 "$d/h"
        [ "$(wc -l <"$d/h")" -eq 2 ]
        date >/dev/null; id >/dev/null; uname -a >/dev/null; sleep 0.05
        (exit 0) &
        wait
        rm -r "$d"'

cat >"$TESTDIR/echo.py" <<'EOF'
import hashlib, json, os, selectors, socket, subprocess, sys, threading, time

# A TCP echo server on loopback, served by a thread, as an inference server would.
srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(("127.0.0.1", 0))
srv.listen(4)
port = srv.getsockname()[1]

def serve():
    sel = selectors.DefaultSelector()  # epoll
    conn, _ = srv.accept()
    sel.register(conn, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select(timeout=5):
            data = key.fileobj.recv(4096)
            if not data:
                conn.close()
                return
            key.fileobj.sendall(data[::-1])

t = threading.Thread(target=serve)
t.start()
c = socket.create_connection(("127.0.0.1", port), timeout=5)
c.sendall(b"olleh")
assert c.recv(16) == b"hello"
c.close()
t.join(5)
assert not t.is_alive()

# Numeric work, a pool of threads, randomness, files, a subprocess, timers.
try:
    import numpy
    a = numpy.arange(100000, dtype=numpy.float64)
    assert abs(float(numpy.sqrt(a).sum()) - 21081692.7) < 1.0
except ImportError:
    pass
from concurrent.futures import ThreadPoolExecutor
with ThreadPoolExecutor(4) as pool:
    assert sum(pool.map(lambda x: x * x, range(100))) == 328350
assert len(os.urandom(32)) == 32
p = os.path.join(sys.argv[1], "state.json")
with open(p, "w") as f:
    json.dump({"digest": hashlib.sha256(b"x").hexdigest()}, f)
os.replace(p, p + ".done")
assert subprocess.run(["true"]).returncode == 0
time.sleep(0.01)
print("ok")
EOF
run "default: python3 TCP echo server with threads" 0 default "$PY" "$TESTDIR/echo.py" "$TESTDIR"

# ---- default: what it denies -----------------------------------------------------------

run "default: unshare -U fails" 1 default unshare -U true
for call in mount umount2 ptrace bpf unshare setns keyctl kexec_load init_module \
        perf_event_open reboot personality-aslr clone-newuser; do
        probe "default: $call is EPERM" default "$call" EPERM
done
probe "default: clone3 is ENOSYS (glibc falls back to clone)" default clone3 ENOSYS
probe "default: personality query allowed" default personality-query ok
probe "default: AF_INET sockets allowed" default socket-inet ok
probe "default: AF_NETLINK NETLINK_ROUTE allowed (getaddrinfo)" default socket-netlink-route ok
for call in socket-packet socket-vsock socket-raw socket-netlink-audit; do
        probe "default: $call is EPERM" default "$call" EPERM
done
# In a scratch directory: without the filter, root would make a real device node here.
cd "$TESTDIR" || bail "cd $TESTDIR"
probe "default: mknod of a character device is EPERM" default mknod-char EPERM
cd - >/dev/null || bail "cd back"
[ ! -e "$TESTDIR/orbit-probe-null" ] && pass "...and no node was made" || fail "mknod made a node" "$(ls -l "$TESTDIR/orbit-probe-null")"

# Without a filter the same probes fail differently: the EPERM above is the filter's.
probe "none: mount fails with EFAULT" none mount EFAULT
probe "none: ptrace fails with ESRCH" none ptrace ESRCH
probe "none: clone-newuser fails with EINVAL" none clone-newuser EINVAL
probe "none: AF_PACKET socket works for root" none socket-packet ok

if [ "$(uname -m)" = x86_64 ]; then
        run "default: x32 syscall killed (SIGSYS)" 159 default "$HELPER" --probe x32
        got=$("$HELPER" none -- "$HELPER" --probe i386 2>/dev/null)
        if [[ $got == "i386: ok" ]]; then
                run "default: i386 int 0x80 killed (SIGSYS)" 159 default "$HELPER" --probe i386
        else
                note "skipping the i386 check: no IA-32 emulation ($got)"
        fi
fi

# ---- strict: no network sockets ------------------------------------------------------

run "strict: /bin/true" 0 strict /bin/true
probe "strict: AF_INET socket is EPERM" strict socket-inet EPERM
probe "strict: AF_UNIX socket allowed" strict socket-unix ok
probe "strict: mount is EPERM" strict mount EPERM
run "strict: python3 with threads and a socketpair" 0 strict "$PY" -c '
import socket, threading
a, b = socket.socketpair()
t = threading.Thread(target=lambda: b.sendall(b"x"))
t.start(); t.join()
assert a.recv(1) == b"x"
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raise SystemExit(1)
except PermissionError:
    pass'

# ---- policy files --------------------------------------------------------------------

cat >"$TESTDIR/kill-uname.json" <<'EOF'
{
  "description": "deny-list: everything but uname",
  "default_action": "allow",
  "syscalls": [
    {"names": ["uname"], "action": "kill"}
  ]
}
EOF
run "file: kill action: uname dies of SIGSYS" 159 "$TESTDIR/kill-uname.json" uname
run "file: kill action: other calls fine" 0 "$TESTDIR/kill-uname.json" /bin/true

cat >"$TESTDIR/errno-mkdir.json" <<'EOF'
{"default_action": "allow",
 "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "errno", "errno": "EACCES"}]}
EOF
out=$("$HELPER" "$TESTDIR/errno-mkdir.json" -- mkdir "$TESTDIR/newdir" 2>&1)
if [[ $out == *"Permission denied"* ]] && [ ! -e "$TESTDIR/newdir" ]; then
        pass "file: errno action: mkdir gets EACCES"
else
        fail "file: errno action: mkdir gets EACCES" "got: $out"
fi

cat >"$TESTDIR/bad.json" <<'EOF'
{"default_action": "errno",
 "syscalls": [{"names": ["read", "wirte"], "action": "allow"}]}
EOF
out=$("$HELPER" "$TESTDIR/bad.json" -- /bin/true 2>&1)
rc=$?
want="$TESTDIR/bad.json:2:34: syscalls[0].names[1]: unknown syscall \"wirte\""
if [ "$rc" -eq 3 ] && [[ $out == *"$want"* ]]; then
        pass "file: unknown syscall named with file:line:column"
else
        fail "file: unknown syscall named with file:line:column" "rc $rc, got: $out"
fi

out=$("$HELPER" paranoid -- /bin/true 2>&1)
if [[ $out == *'unknown seccomp policy "paranoid"'* ]]; then
        pass "unknown built-in policy name is an error"
else
        fail "unknown built-in policy name is an error" "got: $out"
fi

finish
