# Integration test: runtime/cgroup on the real kernel, v1 hierarchies and the cgroup2 mount.
# shellcheck shell=bash disable=SC2317
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root"

CHECKER=$top_builddir/tests/integration/cgroup-check
[ -x "$CHECKER" ] || bail "$CHECKER is missing: build it first"

# Where the hierarchies are; overridable for other machines.
: "${CGROUP_V1_ROOT:=/sys/fs/cgroup}"
: "${CGROUP_V2_ROOT:=}"
if [ -z "$CGROUP_V2_ROOT" ]; then
        if [ -e /sys/fs/cgroup/cgroup.controllers ]; then
                CGROUP_V2_ROOT=/sys/fs/cgroup
        elif [ -e /sys/fs/cgroup/unified/cgroup.controllers ]; then
                CGROUP_V2_ROOT=/sys/fs/cgroup/unified
        fi
fi
HAVE_V1=no
for c in cpu memory pids freezer; do
        if [ -e "$CGROUP_V1_ROOT/$c/cgroup.procs" ] ||
                compgen -G "$CGROUP_V1_ROOT/*$c*/cgroup.procs" >/dev/null; then
                HAVE_V1=yes
        else
                HAVE_V1=no
                break
        fi
done
[ "$HAVE_V1" = yes ] || [ -n "$CGROUP_V2_ROOT" ] || skip_all "no cgroup hierarchy found"

PARENT=orbit-test-$$-$RANDOM
setup_testdir

# Every directory this run may have made: <v1 root>/<hierarchy>/PARENT and <v2 root>/PARENT.
parent_dirs() {
        local d
        for d in "$CGROUP_V1_ROOT"/*/"$PARENT" ${CGROUP_V2_ROOT:+"$CGROUP_V2_ROOT/$PARENT"}; do
                [ -d "$d" ] && printf '%s\n' "$d"
        done | sort -u # the v2 mount may sit under the v1 root (hybrid)
}

# Kill whatever a failed scenario left behind and remove the groups, bounded in time.
cgroup_cleanup() {
        local rc=$? d g pid
        for d in $(parent_dirs); do
                for g in "$d"/*/; do
                        [ -d "$g" ] || continue
                        [ -e "$g/freezer.state" ] && echo THAWED >"$g/freezer.state" 2>/dev/null
                        [ -e "$g/cgroup.freeze" ] && echo 0 >"$g/cgroup.freeze" 2>/dev/null
                        [ -e "$g/cgroup.kill" ] && echo 1 >"$g/cgroup.kill" 2>/dev/null
                        while read -r pid; do
                                kill -KILL "$pid" 2>/dev/null
                        done <"$g/cgroup.procs"
                done
        done
        for d in $(parent_dirs); do
                for g in "$d"/*/; do
                        [ -d "$g" ] || continue
                        wait_for 5 rmdir "$g" 2>/dev/null ||
                                note "could not remove $g: $(cat "$g/cgroup.procs" 2>/dev/null)"
                done
                rmdir "$d" 2>/dev/null || note "could not remove $d"
        done
        cleanup
        return $rc
}
trap cgroup_cleanup EXIT

# run NAME SCENARIO ROOT: one scenario in its own process, bounded by a timeout.
run() {
        local name=$1 scenario=$2 root=$3 log
        log=$TESTDIR/$scenario-$(basename "$root").log
        timeout -k 5 $((120 * ORBIT_TEST_SLOW)) "$CHECKER" "$scenario" "$root" "$PARENT" >"$log" 2>&1
        local rc=$?
        grep '^# ' "$log"
        case $rc in
        0) pass "$name" ;;
        77) note "skipped $name"; ;;
        *)
                fail "$name" "exit status $rc"
                sed 's/^/#   /' "$log" | grep -v '^#   # ' | tail -n 20
                ;;
        esac
}

if [ "$HAVE_V1" = yes ] && [ ! -e "$CGROUP_V1_ROOT/cgroup.controllers" ]; then
        note "v1 hierarchies under $CGROUP_V1_ROOT, parent $PARENT"
        run "v1: memory over memory_max is OOM-killed" memory "$CGROUP_V1_ROOT"
        run "v1: pids_max enforced (EAGAIN)" pids "$CGROUP_V1_ROOT"
        run "v1: cpu_max 20% holds, throttle to 5% holds" cpu "$CGROUP_V1_ROOT"
        run "v1: freeze stops cpu use, thaw resumes" freeze "$CGROUP_V1_ROOT"
        run "v1: kill_all + destroy leave nothing" kill "$CGROUP_V1_ROOT"
        run "v1: kill_all of a frozen group" kill-frozen "$CGROUP_V1_ROOT"
        run "v1: restarted manager adopts a running group" adopt "$CGROUP_V1_ROOT"
        run "v1: the devices controller denies all but the sandbox's nodes" devices "$CGROUP_V1_ROOT"
else
        note "no v1 hierarchies: v1 checks skipped"
fi

if [ -n "$CGROUP_V2_ROOT" ]; then
        note "cgroup2 at $CGROUP_V2_ROOT: controllers '$(cat "$CGROUP_V2_ROOT/cgroup.controllers")'"
        if [ -e "$CGROUP_V2_ROOT/cgroup.controllers" ] &&
                grep -qw memory "$CGROUP_V2_ROOT/cgroup.controllers"; then
                # A pure v2 machine: run the limit scenarios against v2 too.
                run "v2: memory over memory_max is OOM-killed" memory "$CGROUP_V2_ROOT"
                run "v2: pids_max enforced (EAGAIN)" pids "$CGROUP_V2_ROOT"
                run "v2: cpu_max 20% holds, throttle to 5% holds" cpu "$CGROUP_V2_ROOT"
        fi
        run "v2: freeze stops cpu use, thaw resumes" core-freeze "$CGROUP_V2_ROOT"
        run "v2: cgroup.kill + destroy leave nothing" core-kill "$CGROUP_V2_ROOT"
        run "v2: cgroup.kill of a frozen group" core-kill-frozen "$CGROUP_V2_ROOT"
        run "v2: restarted manager adopts a running group" core-adopt "$CGROUP_V2_ROOT"
        run "v2: limits of missing controllers fail clearly" core-missing "$CGROUP_V2_ROOT"
        run "v2: a BPF_CGROUP_DEVICE program denies all but the sandbox's nodes" core-devices "$CGROUP_V2_ROOT"
else
        note "no cgroup2 mount: v2 checks skipped"
fi

[ $((PASSED + FAILED)) -gt 0 ] || skip_all "no scenario could run here"
finish
