#!/usr/bin/env bash
# Packaging test: build the .debs from a scratch copy of this tree, install them with
# dpkg into a fresh Debian chroot, check the installed default config, run the agent
# and orbitctl there, then remove and purge; then the ground packages: orbit-bundle and
# orbit-controller installed, the controller provisioned as docs/operations.md says and
# started as its unit starts it, a node sync answered, then purged. Slow (it builds
# everything), so it is not part of make check. Needs root, dpkg-buildpackage,
# debhelper, debootstrap (and openssl and curl for the controller's run).
#
# Usage: tests/packaging/test-deb.sh [--nocheck] [--debs DIR] [--keep]
#   --nocheck   build with DEB_BUILD_OPTIONS=nocheck (skip make check inside the build)
#   --debs DIR  use the .debs already in DIR instead of building
#   --keep      keep the temp dir (build tree, chroot) for a look afterwards
# Environment: ORBIT_TEST_CACHE (default /var/cache/orbit-agent-test) keeps the base
# chroot tarball; ORBIT_DEB_MIRROR overrides the Debian mirror (default: the one this
# machine's apt uses); ORBIT_TEST_TIMEOUT bounds every wait (default 20 s).
# shellcheck disable=SC2317
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

nocheck=0
debs_dir=""
while [ $# -gt 0 ]; do
        case "$1" in
        --nocheck) nocheck=1 ;;
        --debs) debs_dir=$(cd "${2:?--debs needs a directory}" && pwd) || exit 2; shift ;;
        --keep) KEEP_TESTDIR=1 ;;
        -h|--help) sed -n '2,18s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "test-deb.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
        esac
        shift
done

[ "$(id -u)" -eq 0 ] || skip_all "needs root (dpkg -i, chroot, mount)"
for tool in dpkg-deb dpkg-buildpackage; do
        command -v "$tool" >/dev/null 2>&1 || skip_all "$tool missing (apt-get install dpkg-dev debhelper)"
done
[ -n "$debs_dir" ] || dpkg-query -W -f='${Status}' debhelper 2>/dev/null | grepq 'install ok installed' ||
        skip_all "debhelper missing (apt-get install debhelper)"

T=$ORBIT_TEST_TIMEOUT
CACHE=${ORBIT_TEST_CACHE:-/var/cache/orbit-agent-test}
started=$SECONDS
ROOT=""          # the chroot, or "/" when we fall back to this machine
MODE=chroot
MOUNTS=()        # what we mounted, innermost last
AGENT_PID=""

# ---- cleanup: unmount before anything is deleted --------------------------------------
mounts_under() { # list mount points at or below $1, deepest first
        awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/self/mounts | sort -r
}

unmount_root() {
        local m i
        [ "$MODE" = chroot ] && [ -n "$ROOT" ] || return 0
        for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
                umount -R "${MOUNTS[i]}" 2>/dev/null || umount -R -l "${MOUNTS[i]}" 2>/dev/null
        done
        MOUNTS=()
        for m in $(mounts_under "$ROOT"); do
                umount -l "$m" 2>/dev/null
        done
}

deb_cleanup() {
        local rc=$?
        [ -n "$AGENT_PID" ] && stop_pid "$AGENT_PID"
        [ -n "${CTLR_PID:-}" ] && stop_pid "$CTLR_PID"
        # Anything still running inside the chroot would keep mounts busy.
        local pid
        for pid in $(procs_in_root); do
                kill -KILL "$pid" 2>/dev/null
        done
        unmount_root
        # The installed agent's runtime made its (empty) cgroup subtree on the host; remove
        # it unless it was there before us (a real agent's).
        local d
        for d in /sys/fs/cgroup/*/orbit-agent /sys/fs/cgroup/orbit-agent; do
                [ -d "$d" ] && [ -z "${CGROUP_PARENT_EXISTED:-}" ] && rmdir "$d" 2>/dev/null
        done
        if [ -n "$TESTDIR" ] && [ -d "$TESTDIR" ] && [ -n "$(mounts_under "$TESTDIR")" ]; then
                # Never rm -rf across a bind mount of /dev or /sys.
                note "mounts left under $TESTDIR, not deleting it:"
                mounts_under "$TESTDIR" | sed 's/^/#   /'
                KEEP_TESTDIR=1
        fi
        if [ -n "$TESTDIR" ] && [ -d "$TESTDIR" ] && [ -z "${KEEP_TESTDIR:-}" ]; then
                rm -rf --one-file-system "$TESTDIR"
        elif [ -n "$TESTDIR" ]; then
                note "kept $TESTDIR"
        fi
        return $rc
}

# PIDs whose root directory is the chroot (not used in host mode).
procs_in_root() {
        [ "$MODE" = chroot ] && [ -n "$ROOT" ] || return 0
        local p r
        for p in /proc/[0-9]*; do
                r=$(readlink "$p/root" 2>/dev/null) || continue
                [ "$r" = "$ROOT" ] && echo "${p#/proc/}"
        done
}

CGROUP_PARENT_EXISTED=""
ls -d /sys/fs/cgroup/*/orbit-agent /sys/fs/cgroup/orbit-agent >/dev/null 2>&1 && CGROUP_PARENT_EXISTED=1
TESTDIR=$(mktemp -d "${TMPDIR:-/tmp}/orbit-deb.XXXXXXXX") || bail "mktemp failed"
trap deb_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
note "test dir: $TESTDIR"

# ---- 1. build the .debs ---------------------------------------------------------------
if [ -z "$debs_dir" ]; then
        src=$TESTDIR/src/orbit-agent
        mkdir -p "$src"
        # Tracked and new files, nothing ignored: no build products of the work tree.
        if git -C "$top_srcdir" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
                (cd "$top_srcdir" && git ls-files -co --exclude-standard -z | tar --null -T - -cf -) |
                        tar -C "$src" -xf - || bail "copying the tree failed"
        else
                bail "$top_srcdir is not a git work tree: pass --debs DIR"
        fi
        note "dpkg-buildpackage -us -uc -b in $src$([ $nocheck = 1 ] && echo ' (nocheck)')"
        build_start=$SECONDS
        if (cd "$src" && { [ $nocheck = 1 ] && export DEB_BUILD_OPTIONS="nocheck ${DEB_BUILD_OPTIONS:-}"; true; } &&
                dpkg-buildpackage -us -uc -b) >"$TESTDIR/build.log" 2>&1; then
                pass "dpkg-buildpackage -us -uc -b ($((SECONDS - build_start)) s)"
        else
                FAIL_CONTEXT_LOG=$TESTDIR/build.log fail "dpkg-buildpackage -us -uc -b"
                finish
        fi
        debs_dir=$TESTDIR/src
        if command -v lintian >/dev/null 2>&1; then
                # its temporary files in the test's dir (it left mldbm-* in /tmp)
                TMPDIR=$TESTDIR lintian --allow-root "$debs_dir"/orbit-agent_*.changes >"$TESTDIR/lintian.log" 2>&1
                errors=$(grep -c '^E: ' "$TESTDIR/lintian.log")
                warnings=$(grep -c '^W: ' "$TESTDIR/lintian.log")
                if [ "$errors" -eq 0 ]; then
                        pass "lintian: no errors ($warnings warnings)"
                else
                        FAIL_CONTEXT_LOG=$TESTDIR/lintian.log fail "lintian: no errors" "$errors errors"
                fi
                sed -n 's/^\([EW]: .*\)/#   \1/p' "$TESTDIR/lintian.log"
        else
                note "lintian not installed: packages not linted"
        fi
fi

AGENT_DEB=$(ls "$debs_dir"/orbit-agent_*.deb 2>/dev/null | tail -1)
CTL_DEB=$(ls "$debs_dir"/orbitctl_*.deb 2>/dev/null | tail -1)
BUNDLE_DEB=$(ls "$debs_dir"/orbit-bundle_*.deb 2>/dev/null | tail -1)
CTLR_DEB=$(ls "$debs_dir"/orbit-controller_*.deb 2>/dev/null | tail -1)
[ -f "$AGENT_DEB" ] && [ -f "$CTL_DEB" ] || bail "no orbit-agent_*.deb and orbitctl_*.deb in $debs_dir"
check "all four packages built (orbit-agent, orbitctl, orbit-bundle, orbit-controller)" \
        test -f "$BUNDLE_DEB" -a -f "$CTLR_DEB"
note "packages: ${AGENT_DEB##*/} ${CTL_DEB##*/} ${BUNDLE_DEB##*/} ${CTLR_DEB##*/}"

dpkg-deb -c "$AGENT_DEB" >"$TESTDIR/agent-deb.contents" 2>&1
missing=""
for f in /usr/sbin/orbit-agent /lib/systemd/system/orbit-agent.service /lib/systemd/system/orbit-agent-retry.timer \
        /usr/lib/tmpfiles.d/orbit-agent.conf /etc/orbit-agent/agent.json /usr/share/man/man8/orbit-agent.8.gz \
        /usr/share/doc/orbit-agent/operations.md; do
        grep -q " \.$f\$" "$TESTDIR/agent-deb.contents" || missing="$missing $f"
done
check "orbit-agent.deb ships the daemon, unit, timer, tmpfiles entry, config, docs" test -z "$missing"
[ -z "$missing" ] || note "missing:$missing"
check "agent.json is a conffile" sh -c "dpkg-deb -I '$AGENT_DEB' conffiles | grep -qx /etc/orbit-agent/agent.json"
if [ -f "$CTLR_DEB" ]; then
        dpkg-deb -c "$CTLR_DEB" >"$TESTDIR/controller-deb.contents" 2>&1
        missing=""
        for f in /usr/bin/orbit-controller /lib/systemd/system/orbit-controller.service \
                /etc/orbit-controller/controller.env /usr/share/man/man1/orbit-controller.1.gz \
                /usr/share/doc/orbit-controller/operations.md /usr/share/doc/orbit-controller/protocol.md; do
                grep -q " \.$f\$" "$TESTDIR/controller-deb.contents" || missing="$missing $f"
        done
        check "orbit-controller.deb ships the binary, unit, settings, man page, docs" test -z "$missing"
        [ -z "$missing" ] || note "missing:$missing"
        check "controller.env is a conffile" \
                sh -c "dpkg-deb -I '$CTLR_DEB' conffiles | grep -qx /etc/orbit-controller/controller.env"
fi

# ---- 2. a fresh Debian to install into ------------------------------------------------
# Package names the two .debs depend on (first of each alternative, no versions).
deb_depends() {
        local d
        for d in "$@"; do dpkg-deb -f "$d" Depends; done | tr ',' '\n' |
                sed -e 's/|.*//' -e 's/(.*)//' -e 's/:.*//' -e 's/[[:space:]]//g' |
                grep -v -e '^$' -e '^orbit-agent$' -e '^orbitctl$' -e '^orbit-bundle$' -e '^orbit-controller$' | sort -u
}

. "$top_srcdir/scripts/apt-mirror.sh"

suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
arch=$(dpkg --print-architecture)
deps=$(deb_depends "$AGENT_DEB" "$CTL_DEB" ${BUNDLE_DEB:+"$BUNDLE_DEB"} ${CTLR_DEB:+"$CTLR_DEB"})
note "runtime dependencies: $(echo $deps)"
deps_key=$(printf '%s\n' "$suite" "$arch" $deps | sha256sum | cut -c1-12)
tarball=$CACHE/chroot-$suite-$arch-$deps_key.tar.gz
ROOT=$TESTDIR/root

make_base() { # debootstrap + the runtime dependencies, then cache it as a tarball
        command -v debootstrap >/dev/null 2>&1 || { note "debootstrap missing (apt-get install debootstrap)"; return 1; }
        [ -n "$suite" ] || { note "no VERSION_CODENAME in /etc/os-release"; return 1; }
        local mirror=${ORBIT_DEB_MIRROR:-$(host_mirror "$suite")} stage=$TESTDIR/base
        note "debootstrap --variant=minbase $suite ${mirror:-(the default mirror of debootstrap)}"
        timeout 900 debootstrap --variant=minbase --arch="$arch" "$suite" "$stage" $mirror \
                >"$TESTDIR/debootstrap.log" 2>&1 || { tail -n 5 "$TESTDIR/debootstrap.log" | sed 's/^/#   /'; return 1; }
        note "installing the runtime dependencies into the base"
        mount -t proc proc "$stage/proc" || return 1
        timeout 600 chroot "$stage" sh -c "export DEBIAN_FRONTEND=noninteractive
                apt-get update -qq && apt-get install -y -qq --no-install-recommends $(echo $deps) && apt-get clean" \
                >"$TESTDIR/deps.log" 2>&1
        local rc=$?
        umount "$stage/proc"
        [ $rc -eq 0 ] || { tail -n 5 "$TESTDIR/deps.log" | sed 's/^/#   /'; return 1; }
        mkdir -p "$CACHE" && tar -C "$stage" --numeric-owner -czf "$tarball.tmp" . && mv -f "$tarball.tmp" "$tarball" || return 1
        rm -rf --one-file-system "$stage"
        # Older bases (other dependency sets) are of no further use.
        find "$CACHE" -maxdepth 1 -name "chroot-$suite-$arch-*.tar.gz" ! -name "${tarball##*/}" -delete
}

if [ -f "$tarball" ] || make_base; then
        mkdir -p "$ROOT"
        tar -C "$ROOT" --numeric-owner -xpzf "$tarball" || bail "unpacking $tarball failed"
        pass "fresh $suite chroot (cached in ${tarball##*/})"
        mount -t proc proc "$ROOT/proc" && MOUNTS+=("$ROOT/proc") &&
                mount --rbind /sys "$ROOT/sys" && mount --make-rslave "$ROOT/sys" && MOUNTS+=("$ROOT/sys") &&
                mount --rbind /dev "$ROOT/dev" && mount --make-rslave "$ROOT/dev" && MOUNTS+=("$ROOT/dev") &&
                mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run" && MOUNTS+=("$ROOT/run") ||
                bail "mounting /proc, /sys, /dev, /run in the chroot failed"
        IN_ROOT=(chroot "$ROOT")
else
        # No archive reachable: install on this machine, but never over a real install.
        note "FALLBACK: no chroot could be made; installing on this machine itself"
        if dpkg-query -W orbit-agent orbitctl orbit-bundle orbit-controller >/dev/null 2>&1 ||
                [ -e /var/lib/orbit-agent ] || [ -e /etc/orbit-agent ] ||
                [ -e /var/lib/orbit-controller ] || [ -e /etc/orbit-controller ]; then
                bail "orbit-agent is installed or has state on this machine: refusing the host fallback"
        fi
        MODE=host
        ROOT=/
        IN_ROOT=()
fi
# Run a command in the install root. chroot(8) execs it, so "$!" of a background
# "${IN_ROOT[@]}" cmd & is the command's own pid.
in_root() { "${IN_ROOT[@]}" "$@"; }
rootpath() { # a path inside the install root, as seen from here
        if [ "$MODE" = chroot ]; then printf '%s%s\n' "$ROOT" "$1"; else printf '%s\n' "$1"; fi
}

# ---- 3. install -----------------------------------------------------------------------
cp "$AGENT_DEB" "$CTL_DEB" "$(rootpath /tmp)/"
if in_root dpkg -i "/tmp/${AGENT_DEB##*/}" "/tmp/${CTL_DEB##*/}" >"$TESTDIR/dpkg-i.log" 2>&1; then
        pass "dpkg -i orbit-agent orbitctl"
else
        FAIL_CONTEXT_LOG=$TESTDIR/dpkg-i.log fail "dpkg -i orbit-agent orbitctl"
        finish
fi
check "binaries installed" test -x "$(rootpath /usr/sbin/orbit-agent)" -a -x "$(rootpath /usr/bin/orbitctl)"
check "unit enabled (multi-user.target.wants)" test -L "$(rootpath /etc/systemd/system/multi-user.target.wants/orbit-agent.service)"
check "retry timer enabled (timers.target.wants)" test -L "$(rootpath /etc/systemd/system/timers.target.wants/orbit-agent-retry.timer)"

if in_root orbit-agent --check-config >"$TESTDIR/check-config.log" 2>&1; then
        pass "orbit-agent --check-config accepts the installed default config"
else
        FAIL_CONTEXT_LOG=$TESTDIR/check-config.log fail "orbit-agent --check-config accepts the installed default config"
fi
printf '{ "config_version": 1, "log_levl": "info" }\n' >"$(rootpath /tmp/bad.json)"
in_root orbit-agent --check-config --config /tmp/bad.json >"$TESTDIR/bad-config.log" 2>&1
rc=$?
check "an invalid config exits 78, as the unit's RestartPreventExitStatus expects" test "$rc" -eq 78

# ---- 4. run the agent (no systemd in the chroot: start it directly) --------------------
unset NOTIFY_SOCKET WATCHDOG_USEC WATCHDOG_PID LISTEN_FDS LISTEN_PID
AGENT_LOG=$TESTDIR/agent.log
FAIL_CONTEXT_LOG=$AGENT_LOG
"${IN_ROOT[@]}" /usr/sbin/orbit-agent >"$AGENT_LOG" 2>&1 &
AGENT_PID=$!
if wait_for "$T" in_root orbitctl ping >/dev/null 2>&1; then
        pass "orbitctl ping answers"
else
        fail "orbitctl ping answers"
fi
if in_root orbitctl status >"$TESTDIR/status.txt" 2>&1; then
        pass "orbitctl status answers"
        sed 's/^/#   /' "$TESTDIR/status.txt"
else
        FAIL_CONTEXT_LOG=$TESTDIR/status.txt fail "orbitctl status answers"
fi
if command -v jq >/dev/null 2>&1; then
        status_json=$(in_root orbitctl status --json 2>/dev/null)
        node_id=$(printf '%s' "$status_json" | jq -r '[.. | objects | .node_id? | strings] | first // empty' 2>/dev/null)
        note "node id: ${node_id:-none}"
        check "status names a generated node id" test "${node_id#node-}" != "$node_id"
fi
check "state dir is 0700" test "$(stat -c %a "$(rootpath /var/lib/orbit-agent)" 2>/dev/null)" = 700
check "control socket is 0600" test "$(stat -c %a "$(rootpath /run/orbit-agent/control.sock)" 2>/dev/null)" = 600
kill -HUP "$AGENT_PID" 2>/dev/null
agent_answers() { in_root orbitctl ping >/dev/null 2>&1; }
check "agent still answers after SIGHUP" wait_for "$T" agent_answers
kill -TERM "$AGENT_PID" 2>/dev/null
if wait_exit "$AGENT_PID" "$T"; then
        check "agent stops cleanly on SIGTERM (exit 0)" test "$WAIT_RC" -eq 0
else
        fail "agent stops on SIGTERM within ${T}s"
fi
AGENT_PID=""
FAIL_CONTEXT_LOG=""

# ---- 5. a changed config survives a reinstall ------------------------------------------
sed -i 's/"log_level": "info"/"log_level": "debug"/' "$(rootpath /etc/orbit-agent/agent.json)"
if in_root dpkg -i "/tmp/${AGENT_DEB##*/}" >"$TESTDIR/dpkg-reinstall.log" 2>&1; then
        check "reinstall keeps the operator's agent.json" grep -q '"log_level": "debug"' "$(rootpath /etc/orbit-agent/agent.json)"
else
        FAIL_CONTEXT_LOG=$TESTDIR/dpkg-reinstall.log fail "reinstall with dpkg -i"
fi

# ---- 6. remove, then purge ------------------------------------------------------------
if in_root dpkg -r orbit-agent orbitctl >"$TESTDIR/dpkg-r.log" 2>&1; then
        pass "dpkg -r orbit-agent orbitctl"
else
        FAIL_CONTEXT_LOG=$TESTDIR/dpkg-r.log fail "dpkg -r orbit-agent orbitctl"
fi
if [ "$MODE" = chroot ]; then
        left=$(procs_in_root)
        check "no process left running in the chroot after dpkg -r" test -z "$left"
else
        check "no orbit-agent process left after dpkg -r" sh -c '! pgrep -x orbit-agent >/dev/null'
fi
check "dpkg -r removes the binaries" test ! -e "$(rootpath /usr/sbin/orbit-agent)" -a ! -e "$(rootpath /usr/bin/orbitctl)"
check "dpkg -r keeps the state dir" test -d "$(rootpath /var/lib/orbit-agent)"
check "dpkg -r keeps the config" test -f "$(rootpath /etc/orbit-agent/agent.json)"

if in_root dpkg -P orbit-agent orbitctl >"$TESTDIR/dpkg-P.log" 2>&1; then
        pass "dpkg -P orbit-agent orbitctl"
else
        FAIL_CONTEXT_LOG=$TESTDIR/dpkg-P.log fail "dpkg -P orbit-agent orbitctl"
fi
check "dpkg -P removes /var/lib/orbit-agent" test ! -e "$(rootpath /var/lib/orbit-agent)"
check "dpkg -P removes /etc/orbit-agent" test ! -e "$(rootpath /etc/orbit-agent)"
check "dpkg -P removes the enablement links" test ! -e "$(rootpath /etc/systemd/system/multi-user.target.wants/orbit-agent.service)" \
        -a ! -e "$(rootpath /etc/systemd/system/timers.target.wants/orbit-agent-retry.timer)"

# ---- 7. the ground packages: orbit-bundle and orbit-controller ----------------------------
CTLR_PID=""
ground() {
        cp "$BUNDLE_DEB" "$CTLR_DEB" "$(rootpath /tmp)/"
        if in_root dpkg -i "/tmp/${BUNDLE_DEB##*/}" "/tmp/${CTLR_DEB##*/}" >"$TESTDIR/dpkg-i-ground.log" 2>&1; then
                pass "dpkg -i orbit-bundle orbit-controller"
        else
                FAIL_CONTEXT_LOG=$TESTDIR/dpkg-i-ground.log fail "dpkg -i orbit-bundle orbit-controller"
                return
        fi
        quiet() { "$@" >/dev/null 2>&1; }
        check "orbit-controller --help" quiet in_root orbit-controller --help
        check "orbit-bundle --help" quiet in_root orbit-bundle --help
        check "controller unit installed" test -f "$(rootpath /lib/systemd/system/orbit-controller.service)"
        check "controller unit enabled (multi-user.target.wants)" \
                test -L "$(rootpath /etc/systemd/system/multi-user.target.wants/orbit-controller.service)"

        # Provision as docs/operations.md says, then start it as the unit does (no systemd
        # here: the same ExecStart, with the secrets read in place instead of from %d).
        if ! command -v openssl >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; then
                note "openssl or curl missing on this machine: the controller is not started"
        else
                local E P port code
                E=$(rootpath /etc/orbit-controller)
                P=$TESTDIR/pki
                mkdir -p "$P"
                (
                        cd "$P" || exit 1
                        set -e
                        mkca() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
                                 openssl req -x509 -new -key "$1.key" -subj "/CN=$1" -days 2 -out "$1.pem" \
                                         -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign; }
                        mkcert() { openssl ecparam -name prime256v1 -genkey -noout -out "$1.key"
                                   openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
                                   printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
                                           "extendedKeyUsage=$3" "${4:-}" | grep . >"$1.ext"
                                   openssl x509 -req -in "$1.csr" -CA "$5.pem" -CAkey "$5.key" -CAcreateserial \
                                           -days 2 -extfile "$1.ext" -out "$1.pem"; }
                        mkca server-ca; mkca node-ca
                        mkcert server 127.0.0.1 serverAuth subjectAltName=IP:127.0.0.1 server-ca
                        mkcert node-1 node-1 clientAuth "" node-ca
                ) >"$TESTDIR/pki.log" 2>&1 || { FAIL_CONTEXT_LOG=$TESTDIR/pki.log fail "openssl made the PKI"; return; }
                install -m 0644 "$P/server.pem" "$E/server.pem" && install -m 0600 "$P/server.key" "$E/server.key" &&
                        install -m 0644 "$P/node-ca.pem" "$E/node-ca.pem" &&
                        head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$E/operator-token" && chmod 600 "$E/operator-token" &&
                        in_root orbit-bundle keygen --ca --subject "CN=command CA" --key /tmp/cmd-ca.key --cert /tmp/cmd-ca.pem \
                                >"$TESTDIR/keygen.log" 2>&1 &&
                        in_root orbit-bundle keygen --role command --subject "CN=command signer" --issuer-key /tmp/cmd-ca.key \
                                --issuer-cert /tmp/cmd-ca.pem --key /etc/orbit-controller/command.key \
                                --cert /etc/orbit-controller/command.pem >>"$TESTDIR/keygen.log" 2>&1
                check "controller provisioned (PKI, token, command signer by orbit-bundle keygen)" test $? -eq 0
                rm -f "$(rootpath /tmp/ctl.port)"
                CTLR_LOG=$TESTDIR/controller.log
                "${IN_ROOT[@]}" /usr/bin/orbit-controller serve --listen 127.0.0.1:0 --port-file /tmp/ctl.port \
                        --data-dir /var/lib/orbit-controller --cert /etc/orbit-controller/server.pem \
                        --key /etc/orbit-controller/server.key --node-ca /etc/orbit-controller/node-ca.pem \
                        --command-cert /etc/orbit-controller/command.pem --command-key /etc/orbit-controller/command.key \
                        --operator-token-file /etc/orbit-controller/operator-token >"$CTLR_LOG" 2>&1 &
                CTLR_PID=$!
                if wait_for "$T" test -s "$(rootpath /tmp/ctl.port)"; then
                        port=$(cat "$(rootpath /tmp/ctl.port)")
                        code=$(curl -sS --max-time 10 --cacert "$P/server-ca.pem" --cert "$P/node-1.pem" --key "$P/node-1.key" \
                                -o "$TESTDIR/sync.json" -w '%{http_code}' -H 'Content-Type: application/json' \
                                --data-binary '{"format":1,"node":"node-1","boot_epoch":1,"boot_id":"0123456789abcdef0123456789abcdef","last_command_seq":0,"records":[]}' \
                                "https://127.0.0.1:$port/v1/nodes/node-1/sync" 2>>"$CTLR_LOG")
                        check "the installed controller answers a node's sync (mutual TLS): HTTP $code" test "$code" = 200
                        code=$(curl -sS --max-time 10 --cacert "$P/server-ca.pem" -o /dev/null -w '%{http_code}' \
                                -H "Authorization: Bearer $(cat "$E/operator-token")" "https://127.0.0.1:$port/v1/nodes/node-1")
                        check "the operator API knows node-1: HTTP $code" test "$code" = 200
                else
                        FAIL_CONTEXT_LOG=$CTLR_LOG fail "the installed controller starts"
                fi
                kill -TERM "$CTLR_PID" 2>/dev/null
                if wait_exit "$CTLR_PID" "$T"; then
                        check "controller stops cleanly on SIGTERM (exit 0)" test "$WAIT_RC" -eq 0
                else
                        fail "controller stops on SIGTERM within ${T}s"
                fi
                CTLR_PID=""
                check "the fleet database is in /var/lib/orbit-controller" \
                        test -f "$(rootpath /var/lib/orbit-controller/controller.db)"
        fi

        if in_root dpkg -P orbit-controller orbit-bundle >"$TESTDIR/dpkg-P-ground.log" 2>&1; then
                pass "dpkg -P orbit-controller orbit-bundle"
        else
                FAIL_CONTEXT_LOG=$TESTDIR/dpkg-P-ground.log fail "dpkg -P orbit-controller orbit-bundle"
        fi
        check "dpkg -P removes the controller, its unit and settings" \
                test ! -e "$(rootpath /usr/bin/orbit-controller)" -a ! -e "$(rootpath /usr/bin/orbit-bundle)" \
                -a ! -e "$(rootpath /lib/systemd/system/orbit-controller.service)" \
                -a ! -e "$(rootpath /etc/orbit-controller/controller.env)"
        check "dpkg -P removes the enablement link" \
                test ! -e "$(rootpath /etc/systemd/system/multi-user.target.wants/orbit-controller.service)"
        check "dpkg -P removes /var/lib/orbit-controller (the fleet database)" \
                test ! -e "$(rootpath /var/lib/orbit-controller)"
        # The operator's PKI is theirs: purge leaves it (and so the directory).
        if [ -e "$(rootpath /etc/orbit-controller/server.key)" ]; then
                check "dpkg -P leaves the operator's PKI in /etc/orbit-controller" \
                        test -f "$(rootpath /etc/orbit-controller/command.key)"
                rm -rf "$(rootpath /etc/orbit-controller)"
        fi
        if [ "$MODE" = chroot ]; then
                left=$(procs_in_root)
                check "no process left running in the chroot" test -z "$left"
        fi
}
if [ -f "$CTLR_DEB" ] && [ -f "$BUNDLE_DEB" ]; then
        ground
else
        fail "the ground packages" "no orbit-controller_*.deb or orbit-bundle_*.deb in $debs_dir"
fi

note "mode: $MODE; took $((SECONDS - started)) s"
finish
