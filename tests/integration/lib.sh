# Shared helpers for the integration tests: temp dir, cleanup, checks, bounded waits.
# shellcheck shell=bash disable=SC2034

# The build tree's sandbox init, for agent configs (runtime.sandbox_init): the installed
# one may be missing or older.
SANDBOX_INIT=${top_builddir:-.}/orbit-sandbox-init

# Seconds any single wait may take; raise it for slow (sanitizer) builds.
: "${ORBIT_TEST_TIMEOUT:=20}"
# Every bounded wait (wait_for) is this many times longer on a slow run: the agent under
# valgrind runs ~20 times slower, and a loaded machine slower still (a wait_for only bounds
# the wait for something to happen; it returns as soon as it does).
if [ -z "${ORBIT_TEST_SLOW:-}" ]; then
        ORBIT_TEST_SLOW=1
        [ -n "${ORBIT_VALGRIND:-}" ] && ORBIT_TEST_SLOW=4
fi

PASSED=0
FAILED=0
FAILED_NAMES=()
STARTED_PIDS=()
TESTDIR=""

# Print "# ..." diagnostics that the harness keeps in the log.
note() {
        printf '# %s\n' "$*"
}

# Stop the test run right away: setup went wrong and no further check makes sense.
bail() {
        printf 'Bail out! %s\n' "$*"
        printf '%d passed, %d failed\n' "$PASSED" "$((FAILED + 1))"
        exit 99
}

skip_all() {
        printf '1..0 # SKIP %s\n' "$*"
        exit 77
}

# grep -q at the end of a pipeline, reading all of its input: with pipefail, grep -q leaving
# at its first match makes a writer that still writes die of SIGPIPE and the pipeline fail.
# Seen under load: bash's printf is line-buffered, so printf '%s\n' "$two_lines" | grep -q
# LINE1 failed when grep ran between the two writes.
grepq() { grep "$@" >/dev/null; }

pass() {
        PASSED=$((PASSED + 1))
        printf 'ok - %s\n' "$1"
}

# fail NAME [REASON...]: record a failed check with a clear message.
fail() {
        local name=$1
        shift
        FAILED=$((FAILED + 1))
        FAILED_NAMES+=("$name")
        if [ $# -gt 0 ]; then
                printf 'not ok - %s: %s\n' "$name" "$*"
        else
                printf 'not ok - %s\n' "$name"
        fi
        if [ -n "${FAIL_CONTEXT_LOG:-}" ] && [ -f "$FAIL_CONTEXT_LOG" ]; then
                note "last lines of $FAIL_CONTEXT_LOG:"
                tail -n 15 "$FAIL_CONTEXT_LOG" | sed 's/^/#   /'
        fi
        return 0
}

# check NAME COMMAND...: pass when COMMAND succeeds.
check() {
        local name=$1
        shift
        if "$@"; then
                pass "$name"
        else
                fail "$name" "command failed: $*"
        fi
}

# Print the summary line and exit with the right status.
finish() {
        check_valgrind_logs
        if [ "$FAILED" -gt 0 ]; then
                note "failed checks:"
                local n
                for n in "${FAILED_NAMES[@]}"; do
                        note "  $n"
                done
        fi
        printf '%d passed, %d failed\n' "$PASSED" "$FAILED"
        [ "$FAILED" -eq 0 ] && exit 0
        exit 1
}

# wait_for TIMEOUT COMMAND...: poll COMMAND every 50 ms until it succeeds (0) or the
# timeout in seconds (times ORBIT_TEST_SLOW) elapses (1).
wait_for() {
        local timeout=$(($1 * ORBIT_TEST_SLOW))
        shift
        local deadline=$((SECONDS + timeout))
        while true; do
                if "$@"; then
                        return 0
                fi
                if [ "$SECONDS" -ge "$deadline" ]; then
                        # One last try: the deadline may have passed while we slept.
                        "$@" && return 0
                        return 1
                fi
                sleep 0.05
        done
}

# Is PID still running (not gone, not a zombie)?
pid_alive() {
        local stat
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        [ "${stat%% *}" != Z ]
}

pid_gone() {
        ! pid_alive "$1"
}

# Register a background process so cleanup stops it.
track_pid() {
        STARTED_PIDS+=("$1")
}

# wait_exit PID TIMEOUT: wait for our child PID to exit and set WAIT_RC to its status.
# Returns 1 (and kills it with SIGKILL) when it did not exit in time.
WAIT_RC=""
wait_exit() {
        local pid=$1 timeout=$2
        if ! wait_for "$timeout" pid_gone "$pid"; then
                kill -KILL "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
                WAIT_RC=$?
                return 1
        fi
        wait "$pid" 2>/dev/null
        WAIT_RC=$?
        return 0
}

# Stop one process politely, then firmly; never blocks for long.
stop_pid() {
        local pid=$1
        pid_alive "$pid" || { wait "$pid" 2>/dev/null; return 0; }
        kill -TERM "$pid" 2>/dev/null
        if ! wait_for 5 pid_gone "$pid"; then
                kill -KILL "$pid" 2>/dev/null
                wait_for 2 pid_gone "$pid"
        fi
        wait "$pid" 2>/dev/null
        return 0
}

cleanup() {
        local rc=$?
        local pid
        for pid in "${STARTED_PIDS[@]}"; do
                stop_pid "$pid"
        done
        if [ -n "$TESTDIR" ] && [ -d "$TESTDIR" ]; then
                if [ -n "${KEEP_TESTDIR:-}" ]; then
                        note "keeping $TESTDIR"
                else
                        rm -rf "$TESTDIR"
                fi
        fi
        return $rc
}

# Create the per-run temp dir and arm the cleanup trap. With ORBIT_VALGRIND=1, tests that
# start the agent as ${AGENT_WRAPPER[@]} "$AGENT" run it under valgrind memcheck, one log
# per process in the test dir; finish() fails the test on any error or definite leak.
AGENT_WRAPPER=()
setup_testdir() {
        TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/orbit-it.XXXXXXXX") || bail "mktemp failed"
        # Searchable, not listable: a workload in its user namespace is not host root and
        # must reach its sandbox root and binds below here (docs/workload-spec.md).
        chmod 711 "$TESTDIR"
        trap cleanup EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM
        if [ -n "${ORBIT_VALGRIND:-}" ]; then
                command -v valgrind >/dev/null 2>&1 || bail "ORBIT_VALGRIND set but valgrind is not installed"
                AGENT_WRAPPER=(valgrind --quiet --tool=memcheck --leak-check=full
                               --show-leak-kinds=definite --errors-for-leak-kinds=definite
                               --track-fds=no --log-file="$TESTDIR/valgrind.%p.log"
                               --vgdb=no) # an agent killed -9 left its vgdb pipes in /tmp
        fi
}

# Under ORBIT_VALGRIND: every memcheck log must be empty (--quiet prints only problems).
check_valgrind_logs() {
        [ -n "${ORBIT_VALGRIND:-}" ] || return 0
        local f bad=0
        for f in "$TESTDIR"/valgrind.*.log; do
                [ -e "$f" ] || continue
                if [ -s "$f" ]; then
                        bad=1
                        note "valgrind: $f:"
                        sed 's/^/#   /' "$f" | head -40
                fi
        done
        if [ "$bad" -eq 0 ]; then
                pass "valgrind memcheck: no errors, no definite leaks in $(ls "$TESTDIR"/valgrind.*.log 2>/dev/null | wc -l) agent runs"
        else
                fail "valgrind memcheck found errors or leaks"
        fi
}

# Does a sanitizer report appear in FILE?
# held_where BINARY LOG: the functions of the agent's slow-dispatch warnings in LOG (their
# "orbit-agent+0xOFFSET" frames resolved by addr2line), one warning per line.
held_where() {
        local line offs
        grep 'held the loop' "$2" | while IFS= read -r line; do
                mapfile -t offs < <(grep -o 'orbit-agent+0x[0-9a-f]*' <<<"$line" | sed 's/.*+//')
                [ ${#offs[@]} -gt 0 ] || { echo "(no stack)"; continue; }
                addr2line -f -e "$1" "${offs[@]}" | sed -n '1~2p' | tr '\n' ' '
                echo
        done
}

has_sanitizer_report() {
        grep -qE 'ERROR: AddressSanitizer|LeakSanitizer|runtime error:' "$1"
}

# cleanup_cgroup_tree PARENT: what a test's agents left under the cgroup PARENT (in every
# v1 hierarchy, the v2 root and the hybrid's unified tree) thawed, killed and removed.
# Frozen groups first: a frozen process does not die (v1) until its group thaws.
# Tests whose agents run workloads in real sandboxes: root, cgroups, and no valgrind (it
# cannot create the sandbox's namespaces).
require_sandboxes() {
        [ "$(id -u)" -eq 0 ] || skip_all "needs root (cgroups, namespaces)"
        [ -d /sys/fs/cgroup/cpu ] || [ -f /sys/fs/cgroup/cgroup.controllers ] || skip_all "no cgroups"
        [ -z "${ORBIT_VALGRIND:-}" ] || skip_all "valgrind cannot create the sandbox's namespaces"
}

# The tools a fleet test needs (scripts/fleet-lib.sh), or skip.
require_fleet_tools() {
        local t
        for t in openssl jq setsid tar; do
                command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
        done
}

# control_raw SOCKET REQUEST: one JSON line to an agent's control socket, its answer line on
# stdout (what orbitctl has no verb for).
control_raw() {
        python3 - "$1" "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode() + b"\n")
buf = b""
while not buf.endswith(b"\n"):
    chunk = s.recv(65536)
    if not chunk: break
    buf += chunk
print(buf.decode().strip())
PY
}

cleanup_cgroup_tree() {
        local parent=$1 d i
        [ -n "$parent" ] || return 0
        for d in /sys/fs/cgroup/*/"$parent" /sys/fs/cgroup/"$parent"; do
                [ -d "$d" ] || continue
                # thawed and killed again on each try (a process may have forked meanwhile);
                # the killed leave their groups as the kernel reaps them, slowly on a loaded
                # machine: retried until the tree is gone, bounded at 30 s
                for i in $(seq 300); do
                        find "$d" -name freezer.state -exec sh -c 'echo THAWED >"$1"' _ {} \; 2>/dev/null
                        find "$d" -name cgroup.freeze -exec sh -c 'echo 0 >"$1"' _ {} \; 2>/dev/null
                        find "$d" -name cgroup.procs -exec sh -c 'for p in $(cat "$1"); do kill -9 "$p"; done' _ {} \; 2>/dev/null
                        find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
                        [ -d "$d" ] || break
                        sleep 0.1
                done
                [ -d "$d" ] && note "cgroup $d left behind: $(find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null | tr '\n' ' ')"
        done
        return 0
}

# Test PKI with openssl, in the current directory: mkca NAME SUBJECT makes NAME.key and a
# self-signed CA NAME.pem; mkcert NAME CN CA EXT makes NAME.key and NAME.pem issued by CA
# with the extensions EXT (one per line).
mkca() { # NAME SUBJECT
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -x509 -new -key "$1.key" -subj "$2" -days 30 -out "$1.pem" \
                        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
mkcert() { # NAME CN CA EXT
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null &&
                printf '%s\n' "$4" >"$1.ext" &&
                openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 10 \
                        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}

# The ground's TLS in the current directory: server-ca and node-ca, the server's certificate
# for IP (default 127.0.0.1, also its subjectAltName) and one client certificate per NODE
# (NODE.pem and NODE.key, CN = NODE) from node-ca, as the controller demands of a node.
TLS_SERVER_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth'
TLS_CLIENT_EXT='basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth'
ground_pki() { # [--ip IP] NODE...
        local ip=127.0.0.1 n
        [ "${1:-}" = --ip ] && { ip=$2; shift 2; }
        mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
                mkcert server "$ip" server-ca "$TLS_SERVER_EXT
subjectAltName=IP:$ip" || return 1
        for n; do mkcert "$n" "$n" node-ca "$TLS_CLIENT_EXT" || return 1; done
}

# fleet_test_setup: a test dir holding a fleet (scripts/fleet-lib.sh) of the build's agents
# and controller, its cleanup stopping the fleet first (agents are not children of this
# shell), T for slow builds' waits, and the working directory in the fleet's dir. Set
# FLEET_* variables of your own before calling it.
fleet_test_setup() {
        [ -x "$top_builddir/orbit-controller" ] || skip_all "orbit-controller not built (--disable-controller)"
        unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID
        setup_testdir
        FLEET_DIR=$TESTDIR
        FLEET_BIN=$top_builddir
        FLEET_TOOL=$top_builddir/tests/integration/bootenv-tool
        FLEET_POLL_SEC=${FLEET_POLL_SEC:-1}
        FLEET_TRIAL_SEC=${FLEET_TRIAL_SEC:-8}
        # shellcheck source=scripts/fleet-lib.sh
        . "$top_srcdir/scripts/fleet-lib.sh"
        # Slow builds (sanitizers) get more time for every wait.
        T=$((ORBIT_TEST_TIMEOUT * 3))
        trap fleet_cleanup EXIT
        FAIL_CONTEXT_LOG=$FLEET_DIR/controller.log
        cd "$FLEET_DIR" || bail "cd"
}

fleet_cleanup() {
        local rc=$?
        fleet_stop_all
        cleanup
        return $rc
}
