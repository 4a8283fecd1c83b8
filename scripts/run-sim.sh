#!/usr/bin/env bash
# The main job: build orbit-agent, start a simulated node from examples/sim-node, show
# its status, and stop it cleanly. --stay keeps the node running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
stay=0
[ "${1:-}" = "--stay" ] && stay=1

scripts/deps.sh build run

build="$top/_build/plain"
if [ ! -x "$build/orbit-agent" ] || [ ! -x "$build/orbitctl" ]; then
        [ -x configure ] && [ configure -nt configure.ac ] || ./autogen.sh
        mkdir -p "$build"
        (cd "$build" && "$top/configure" -q)
fi
make -s -C "$build" -j"$(nproc 2>/dev/null || echo 2)" orbit-agent orbitctl

sim=${ORBIT_SIM_DIR:-$top/_build/sim-node}
mkdir -p "$sim/etc" "$sim/sys" "$sim/state" "$sim/run"
echo "BOOT_IMAGE=/vmlinuz root=/dev/sim orbit.slot=A" >"$sim/cmdline"
sed "s|@SIMDIR@|$sim|g" examples/sim-node/agent.json.in >"$sim/etc/agent.json"

echo "==> checking the simulated node's config"
"$build/orbit-agent" --check-config --config "$sim/etc/agent.json"

echo "==> starting orbit-agent (log: $sim/agent.log)"
"$build/orbit-agent" --config "$sim/etc/agent.json" 2>"$sim/agent.log" &
agent=$!
cleanup() {
        if kill -0 "$agent" 2>/dev/null; then
                kill -TERM "$agent"
                wait "$agent" || true
        fi
}
trap cleanup EXIT INT TERM

sock="$sim/run/control.sock"
for _ in $(seq 100); do
        [ -S "$sock" ] && "$build/orbitctl" --socket "$sock" ping >/dev/null 2>&1 && break
        kill -0 "$agent" 2>/dev/null || { cat "$sim/agent.log"; echo "orbit-agent exited" >&2; exit 1; }
        sleep 0.1
done

echo "==> orbitctl status"
"$build/orbitctl" --socket "$sock" status
echo
echo "==> orbitctl status --json"
"$build/orbitctl" --socket "$sock" status --json

if [ $stay = 1 ]; then
        echo
        echo "The node keeps running; try: $build/orbitctl --socket $sock status"
        echo "Ctrl-C stops it."
        wait "$agent"
else
        echo
        echo "==> stopping the node (SIGTERM)"
        kill -TERM "$agent"
        rc=0
        wait "$agent" || rc=$?
        trap - EXIT INT TERM
        echo "orbit-agent exited with status $rc; its log:"
        sed 's/^/    /' "$sim/agent.log"
        exit $rc
fi
