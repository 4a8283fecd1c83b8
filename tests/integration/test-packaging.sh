# Integration test of the packaging: make install into a temp DESTDIR, then check the
# layout, the unit (systemd-analyze verify), the tmpfiles entry and the default config.
# shellcheck shell=bash disable=SC2317
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

AGENT=$top_builddir/orbit-agent
[ -x "$AGENT" ] || bail "$AGENT is missing: build it first"

setup_testdir
note "test dir: $TESTDIR"
DEST=$TESTDIR/root

# A make of its own: nothing from the running make check (jobserver, -k, -n) leaks in.
submake() {
        env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES make -s -C "$top_builddir" --no-print-directory "$@"
}

dirs=$(submake packaging-print-dirs) || bail "make packaging-print-dirs failed"
for var in sbindir bindir sysconfdir docdir mandir systemdsystemunitdir tmpfilesdir; do
        val=$(printf '%s\n' "$dirs" | sed -n "s|^$var=||p")
        [ -n "$val" ] || bail "no $var from make packaging-print-dirs"
        printf -v "$var" '%s' "$val"
        note "$var=$val"
done

# ---- make install ---------------------------------------------------------------------
if submake install DESTDIR="$DEST" >"$TESTDIR/install.log" 2>&1; then
        pass "make install DESTDIR"
else
        FAIL_CONTEXT_LOG=$TESTDIR/install.log fail "make install DESTDIR"
        finish
fi

UNIT=$DEST$systemdsystemunitdir/orbit-agent.service
CUNIT=$DEST$systemdsystemunitdir/orbit-controller.service
TIMER=$DEST$systemdsystemunitdir/orbit-agent-retry.timer
CONFIG=$DEST$sysconfdir/orbit-agent/agent.json
TMPFILES=$DEST$tmpfilesdir/orbit-agent.conf

check "agent installed in sbindir" test -x "$DEST$sbindir/orbit-agent"
check "orbitctl installed in bindir" test -x "$DEST$bindir/orbitctl"
check "unit installed" test -f "$UNIT"
check "retry timer installed" test -f "$TIMER"
check "tmpfiles entry installed as orbit-agent.conf" test -f "$TMPFILES"
check "default config installed" test -f "$CONFIG"
check "man pages installed" test -f "$DEST$mandir/man8/orbit-agent.8" -a -f "$DEST$mandir/man1/orbitctl.1"
check "operations guide installed" test -f "$DEST$docdir/operations.md"
check "drop-in example installed" test -f "$DEST$docdir/examples/slots.conf.example"
# The ground side, when configured (not with --disable-controller).
CONTROLLER=""
[ -x "$DEST$bindir/orbit-controller" ] && CONTROLLER=1
if [ -n "$CONTROLLER" ]; then
        check "controller unit installed" test -f "$CUNIT"
        check "controller settings installed" test -f "$DEST$sysconfdir/orbit-controller/controller.env"
        check "controller guides installed" test -f "$DEST$(dirname "$docdir")/orbit-controller/operations.md"
        cexec=$(sed -e ':a' -e '/\\$/N; s/\\\n *//; ta' "$CUNIT" | sed -n 's/^ExecStart=//p')
        case "$cexec" in
        "$bindir/orbit-controller serve --listen \${LISTEN} --data-dir /var/lib/orbit-controller --cert $sysconfdir/orbit-controller/server.pem --key %d/server.key "*)
                pass "controller ExecStart runs the installed binary on $sysconfdir/orbit-controller" ;;
        *) fail "controller ExecStart runs the installed binary on $sysconfdir/orbit-controller" "got '$cexec'" ;;
        esac
        missing=()
        for line in "DynamicUser=yes" "StateDirectory=orbit-controller" "ProtectSystem=strict" \
                "ReadWritePaths=/var/lib/orbit-controller" "CapabilityBoundingSet=" "NoNewPrivileges=yes"; do
                grep -qxF "$line" "$CUNIT" || missing+=("$line")
        done
        if [ ${#missing[@]} -eq 0 ]; then
                pass "controller unit is hardened"
        else
                fail "controller unit is hardened" "missing: ${missing[*]}"
        fi
else
        note "orbit-controller not built (--disable-controller): its unit is not checked"
fi

# ---- the unit -------------------------------------------------------------------------
unit_value() { sed -n "s/^$1=//p" "$UNIT"; }

exec_start=$(unit_value ExecStart)
expected="$sbindir/orbit-agent --config $sysconfdir/orbit-agent/agent.json"
if [ "$exec_start" = "$expected" ]; then
        pass "ExecStart runs the installed agent on the installed config"
else
        fail "ExecStart runs the installed agent on the installed config" "got '$exec_start', want '$expected'"
fi
check "no unsubstituted @variables@ in the units" sh -c "! grep -n '@[a-zA-Z_]*@' '$UNIT' '$TIMER' ${CONTROLLER:+'$CUNIT'}"

want_lines=(
        "Type=notify" "NotifyAccess=main" "WatchdogSec=30s" "Restart=on-failure"
        "RestartPreventExitStatus=78" "Delegate=yes" "ProtectSystem=strict"
        "StateDirectory=orbit-agent" "StateDirectoryMode=0700" "RuntimeDirectory=orbit-agent"
        "ExecReload=/bin/kill -HUP \$MAINPID"
)
missing=()
for line in "${want_lines[@]}"; do
        grep -qxF "$line" "$UNIT" || missing+=("$line")
done
if [ ${#missing[@]} -eq 0 ]; then
        pass "unit has the lifecycle and sandbox settings"
else
        fail "unit has the lifecycle and sandbox settings" "missing: ${missing[*]}"
fi
# Settings whose seccomp filters or flags every workload would inherit (docs/operations.md).
bad=$(grep -E '^(NoNewPrivileges|MemoryDenyWriteExecute|PrivateDevices|ProtectClock|ProtectHostname|ProtectKernelTunables|ProtectControlGroups|RestrictNamespaces|SystemCallFilter)=' "$UNIT")
if [ -z "$bad" ]; then
        pass "unit sets nothing that would break workloads or slot devices"
else
        fail "unit sets nothing that would break workloads or slot devices" "$bad"
fi
grep -E '^CapabilityBoundingSet=' "$UNIT" | grepq -wE 'CAP_SYS_MODULE|CAP_SYS_TIME|CAP_SYS_PTRACE|CAP_DAC_READ_SEARCH' &&
        fail "capability bounding set leaves out module, clock, ptrace, open_by_handle" ||
        pass "capability bounding set leaves out module, clock, ptrace, open_by_handle"

# systemd-analyze verify under --root checks the installed tree, the ExecStart= binary
# included. The root also needs the targets of the default dependencies and /bin/kill
# (ExecReload=); those come from this machine, or a stub when procps is missing.
host_unitdir=""
for d in /usr/lib/systemd/system /lib/systemd/system; do
        [ -f "$d/sysinit.target" ] && host_unitdir=$d && break
done
if command -v systemd-analyze >/dev/null 2>&1 && [ -n "$host_unitdir" ]; then
        VROOT=$TESTDIR/verify-root
        cp -a "$DEST" "$VROOT"
        mkdir -p "$VROOT/usr/lib/systemd/system" "$VROOT/bin"
        for f in "$host_unitdir"/*; do
                [ -e "$VROOT/usr/lib/systemd/system/${f##*/}" ] || cp -a "$f" "$VROOT/usr/lib/systemd/system/"
        done
        if [ -x /bin/kill ]; then
                cp /bin/kill "$VROOT/bin/kill"
        else
                printf '#!/bin/sh\n' >"$VROOT/bin/kill" && chmod 755 "$VROOT/bin/kill"
        fi
        # A unit dir outside systemd's search path (make distcheck's prefix) is invisible
        # to the unit lookups of Also= and Unit=: verify copies from /etc/systemd/system.
        vunitdir=$systemdsystemunitdir
        case "$vunitdir" in
        /etc/systemd/system | /lib/systemd/system | /usr/lib/systemd/system | /usr/local/lib/systemd/system) ;;
        *)
                vunitdir=/etc/systemd/system
                mkdir -p "$VROOT$vunitdir"
                cp "$UNIT" "$TIMER" "$VROOT$vunitdir/"
                [ -n "$CONTROLLER" ] && cp "$CUNIT" "$VROOT$vunitdir/"
                ;;
        esac
        # The Documentation=man: pages must exist too, when man(1) is there to look.
        man_opt=--man=no
        command -v man >/dev/null 2>&1 && man_opt=--man=yes
        if (cd "$TESTDIR" && MANPATH=$DEST$mandir systemd-analyze verify "$man_opt" --root="$VROOT" \
                "$VROOT$vunitdir/orbit-agent.service" \
                "$VROOT$vunitdir/orbit-agent-retry.timer" \
                ${CONTROLLER:+"$VROOT$vunitdir/orbit-controller.service"}) >"$TESTDIR/verify.log" 2>&1 &&
                ! grep -q . "$TESTDIR/verify.log"; then
                pass "systemd-analyze verify${CONTROLLER:+ (agent, timer, controller)}"
        else
                FAIL_CONTEXT_LOG=$TESTDIR/verify.log fail "systemd-analyze verify" "errors or warnings"
        fi
else
        note "systemd-analyze or systemd's own units missing (Debian package systemd): unit not verified"
fi

# ---- tmpfiles -------------------------------------------------------------------------
if command -v systemd-tmpfiles >/dev/null 2>&1; then
        TMPROOT=$TESTDIR/tmpfiles-root
        mkdir -p "$TMPROOT"
        if systemd-tmpfiles --create --root="$TMPROOT" "$TMPFILES" >"$TESTDIR/tmpfiles.log" 2>&1; then
                pass "systemd-tmpfiles accepts the entry"
        else
                FAIL_CONTEXT_LOG=$TESTDIR/tmpfiles.log fail "systemd-tmpfiles accepts the entry"
        fi
        check "state dir created 0700 root" test "$(stat -c '%a %U' "$TMPROOT/var/lib/orbit-agent" 2>/dev/null)" = "700 root"
        check "runtime dir created 0755 root" test "$(stat -c '%a %U' "$TMPROOT/run/orbit-agent" 2>/dev/null)" = "755 root"
else
        note "systemd-tmpfiles not installed: tmpfiles entry not applied"
fi

# ---- default config -------------------------------------------------------------------
if "$AGENT" --check-config --config "$CONFIG" >"$TESTDIR/check.log" 2>&1; then
        pass "default config passes --check-config"
else
        FAIL_CONTEXT_LOG=$TESTDIR/check.log fail "default config passes --check-config"
fi
# The unit, the tmpfiles entry and the agent's built-in defaults name the same dirs.
check "tmpfiles names the unit's state dir" grep -q '^d /var/lib/orbit-agent 0700 ' "$TMPFILES"
check "tmpfiles names the unit's runtime dir" grep -q '^d /run/orbit-agent ' "$TMPFILES"

# ---- make uninstall -------------------------------------------------------------------
if submake uninstall DESTDIR="$DEST" >"$TESTDIR/uninstall.log" 2>&1; then
        left=$(find "$DEST" -type f | sed "s|^$DEST||")
        if [ -z "$left" ]; then
                pass "make uninstall removes every installed file"
        else
                fail "make uninstall removes every installed file" "left: $(echo $left)"
        fi
else
        FAIL_CONTEXT_LOG=$TESTDIR/uninstall.log fail "make uninstall"
fi

finish
