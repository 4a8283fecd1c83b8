# Building blocks of a simulated fleet: keys, a controller on loopback, and nodes that are
# each a real orbit-agent with its own config, state dir, fake sysfs, file-backed slots,
# the file bootloader and a reboot hook that restarts it into the slot the bootloader
# picks. Sourced by scripts/fleet-sim.sh and tests/integration/test-rollout.sh.
#
# The caller sets: FLEET_DIR (an empty directory of its own), FLEET_BIN (where
# orbit-agent, orbitctl, orbit-bundle, orbit-controller are) and FLEET_TOOL (bootenv-tool).
# shellcheck shell=bash

: "${FLEET_POLL_SEC:=2}"         # the controller's next_sync_sec and the agents' poll interval
: "${FLEET_GATE_SEC:=2}"         # the health gate must hold this long to commit
: "${FLEET_TRIAL_SEC:=10}"       # ... within this long, else roll back
: "${FLEET_IMAGE_KIB:=2048}"     # rootfs image size (slots are files of this size)
: "${FLEET_CHUNK:=65536}"

FLEET_CONTROLLER_PID=""
FLEET_PORT=""

fleet_log() { printf '%s\n' "$*" >&2; }

# Is the process alive (not gone, not a zombie)? Agents are not our children: no wait.
fleet_pid_alive() {
        local stat
        [ -n "${1:-}" ] || return 1
        stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
        stat=${stat##*) }
        [ "${stat%% *}" != Z ]
}

# Keys: a TLS CA with the server's certificate, a node CA, the command signer and the
# release (bundle) signer, an operator token.
fleet_keys() {
        local K=$FLEET_DIR/keys
        mkdir -p "$K" || return 1
        (
                cd "$K" || exit 1
                mkca() {
                        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                                openssl req -x509 -new -key "$1.key" -subj "$2" -days 30 -out "$1.pem" \
                                        -addext basicConstraints=critical,CA:TRUE \
                                        -addext keyUsage=critical,keyCertSign 2>/dev/null
                }
                mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
                        openssl ecparam -name prime256v1 -genkey -noout -out server.key 2>/dev/null &&
                        openssl req -new -key server.key -subj "/CN=127.0.0.1" -out server.csr 2>/dev/null &&
                        printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
                                'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' \
                                'subjectAltName=IP:127.0.0.1' >server.ext &&
                        openssl x509 -req -in server.csr -CA server-ca.pem -CAkey server-ca.key \
                                -CAcreateserial -days 10 -extfile server.ext -out server.pem 2>/dev/null &&
                        printf '%s\n' 'basicConstraints=critical,CA:FALSE' \
                                'keyUsage=critical,digitalSignature' 'extendedKeyUsage=clientAuth' >node.ext ||
                        exit 1
                head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
                "$FLEET_BIN/orbit-bundle" keygen --ca --subject "CN=command CA" --key cmd-ca.key \
                        --cert cmd-ca.pem >/dev/null &&
                        "$FLEET_BIN/orbit-bundle" keygen --role command --subject "CN=command signer" \
                                --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem --key cmd.key \
                                --cert cmd.pem >/dev/null &&
                        "$FLEET_BIN/orbit-bundle" keygen --ca --subject "CN=release CA" \
                                --key rel-ca.key --cert rel-ca.pem >/dev/null &&
                        "$FLEET_BIN/orbit-bundle" keygen --role release --subject "CN=release" --issuer-key rel-ca.key \
                                --issuer-cert rel-ca.pem --key rel.key --cert rel.pem >/dev/null &&
                        mkdir -p release-keyring && cp rel-ca.pem release-keyring/
        )
}

# Where the controller runs: FLEET_NETNS, a network namespace to run it (and the operator
# CLI) in, default none (this one); FLEET_LISTEN, its address, default 127.0.0.1.
# (The prefix is an array, not a function: the controller runs in the background, and its
# pid must be the controller's.)
fleet_in_ns() {
        FLEET_IN_NS=()
        [ -z "${FLEET_NETNS:-}" ] || FLEET_IN_NS=(ip netns exec "$FLEET_NETNS")
}

# The controller on FLEET_LISTEN (PORT, or a free one the first time).
fleet_start_controller() { # [PORT]
        local K=$FLEET_DIR/keys
        rm -f "$FLEET_DIR/port"
        fleet_in_ns
        "${FLEET_IN_NS[@]}" "$FLEET_BIN/orbit-controller" serve --listen "${FLEET_LISTEN:-127.0.0.1}:${1:-0}" \
                --port-file "$FLEET_DIR/port" --data-dir "$FLEET_DIR/controller" \
                --cert "$K/server.pem" --key "$K/server.key" --node-ca "$K/node-ca.pem" \
                --release-token-file "$K/token" --command-key "$K/cmd.key" \
                --command-cert "$K/cmd.pem" --bundle-keyring "$FLEET_DIR/keys/release-keyring" \
                --poll-interval "$FLEET_POLL_SEC" --timeout 10 --max-connections 256 \
                --pass-gap "${FLEET_PASS_GAP:-0}" ${FLEET_CONTROLLER_ARGS:-} \
                >>"$FLEET_DIR/controller.log" 2>&1 &
        FLEET_CONTROLLER_PID=$!
        local i
        for i in $(seq 200); do
                [ -s "$FLEET_DIR/port" ] && break
                fleet_pid_alive "$FLEET_CONTROLLER_PID" || break
                sleep 0.05
        done
        [ -s "$FLEET_DIR/port" ] || { tail -5 "$FLEET_DIR/controller.log" >&2; return 1; }
        FLEET_PORT=$(cat "$FLEET_DIR/port")
        FLEET_URL=https://${FLEET_LISTEN:-127.0.0.1}:$FLEET_PORT
}

fleet_stop_controller() {
        [ -n "$FLEET_CONTROLLER_PID" ] || return 0
        kill -TERM "$FLEET_CONTROLLER_PID" 2>/dev/null
        wait "$FLEET_CONTROLLER_PID" 2>/dev/null
        FLEET_CONTROLLER_PID=""
}

# The operator CLI against our controller.
fleet_oc() {
        fleet_in_ns
        "${FLEET_IN_NS[@]}" "$FLEET_BIN/orbit-controller" --url "$FLEET_URL" --cacert "$FLEET_DIR/keys/server-ca.pem" \
                --token-file "$FLEET_DIR/keys/token" "$@"
}

# Images: v1 (in every node's slot A) and v2 with a few chunks changed; a signed bundle
# of v2 with id BUNDLE_ID.
fleet_images() { # BUNDLE_ID
        local I=$FLEET_DIR/images chunks=$((FLEET_IMAGE_KIB * 1024 / FLEET_CHUNK)) c
        mkdir -p "$I" || return 1
        head -c $((FLEET_IMAGE_KIB * 1024)) /dev/urandom >"$I/v1.img"
        cp "$I/v1.img" "$I/v2.img"
        for c in 1 $((chunks / 2)) $((chunks - 1)); do
                head -c "$FLEET_CHUNK" /dev/urandom |
                        dd of="$I/v2.img" bs="$FLEET_CHUNK" seek="$c" conv=notrunc status=none
        done
        fleet_bundle "$1" "$I/v2.img"
}

# ROLLBACK_FLOOR: the lowest security_version the controller may roll a node back to from
# this release (docs/security.md, #18 item 6); 0 by default: the simulated releases carry no
# security fix, and the fleet's rollouts may take nodes back to the factory image.
fleet_bundle() { # BUNDLE_ID IMAGE [VERSION [SECURITY_VERSION [ROLLBACK_FLOOR]]]
        local I=$FLEET_DIR/images K=$FLEET_DIR/keys
        printf '{"bundle_id": "%s", "version": "%s", "security_version": %s, "rollback_floor": %s, "compatible": ["sim-board"]}\n' \
                "$1" "${3:-2.0.0}" "${4:-2}" "${5:-0}" >"$I/$1.json"
        "$FLEET_BIN/orbit-bundle" create --manifest-template "$I/$1.json" --image "rootfs=$2" \
                --chunk-size "$FLEET_CHUNK" --key "$K/rel.key" --cert "$K/rel.pem" \
                -o "$I/$1.obundle" >/dev/null
}

# One node: NAME. Its directory is $FLEET_DIR/nodes/NAME.
fleet_node_make() { # NAME
        local name=$1 N=$FLEET_DIR/nodes/$1 K=$FLEET_DIR/keys
        mkdir -p "$N/etc/keys/commands" "$N/etc/keys/bundles" "$N/slots" \
                "$N/sys/class/thermal/thermal_zone0" || return 1
        cp "$K/cmd-ca.pem" "$N/etc/keys/commands/" && cp "$K/rel-ca.pem" "$N/etc/keys/bundles/" || return 1
        echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
        echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
        cp "$FLEET_DIR/images/v1.img" "$N/slots/a" && : >"$N/slots/b" || return 1
        echo "console=ttyS0 root=/dev/vda orbit.slot=A" >"$N/cmdline"
        "$FLEET_TOOL" --kind file --path "$N/boot.json" init-state A >/dev/null || return 1
        openssl ecparam -name prime256v1 -genkey -noout -out "$N/node.key" 2>/dev/null &&
                openssl req -new -key "$N/node.key" -subj "/CN=$name" -out "$N/node.csr" 2>/dev/null &&
                openssl x509 -req -in "$N/node.csr" -CA "$K/node-ca.pem" -CAkey "$K/node-ca.key" \
                        -CAcreateserial -days 10 -extfile "$K/node.ext" -out "$N/node.pem" 2>/dev/null ||
                return 1
        # The reboot hook: what a power cycle does to this node. The agent runs it in a
        # session of its own (setsid), so it outlives the agent it stops.
        cat >"$N/reboot" <<EOF
#!/bin/sh
# Simulated reboot of $name: stop the agent, let the bootloader choose, start it again.
N=$N
exec >>"\$N/reboot.log" 2>&1 </dev/null
echo \$\$ >"\$N/reboot.pid"
pid=\$(cat "\$N/agent.pid" 2>/dev/null)
if [ -n "\$pid" ]; then
        kill -CONT "\$pid" 2>/dev/null
        kill -TERM "\$pid" 2>/dev/null
        i=0
        while [ -e "/proc/\$pid" ] && [ "\$(sed 's/.*) //; s/ .*//' "/proc/\$pid/stat" 2>/dev/null)" != Z ] && [ \$i -lt 200 ]; do
                sleep 0.05; i=\$((i + 1))
        done
        kill -KILL "\$pid" 2>/dev/null
fi
slot=\$("$FLEET_TOOL" --kind file --path "\$N/boot.json" simulate-boot "\$N/cmdline") || { echo "no bootable slot"; rm -f "\$N/reboot.pid"; exit 1; }
temp=45000
[ "\$slot" = "\$(cat "\$N/fail-slot" 2>/dev/null)" ] && temp=95000
# A node that goes dark in this slot never comes back (a silent canary).
if [ "\$slot" = "\$(cat "\$N/dark-slot" 2>/dev/null)" ]; then
        echo "\$(date +%T) rebooted into slot \$slot: dark, the agent stays down"
        rm -f "\$N/reboot.pid"
        exit 0
fi
echo "\$temp" >"\$N/sys/class/thermal/thermal_zone0/temp.new" &&
        mv "\$N/sys/class/thermal/thermal_zone0/temp.new" "\$N/sys/class/thermal/thermal_zone0/temp"
echo "\$(date +%T) rebooted into slot \$slot (thermal zone at \$temp)"
[ -e "$FLEET_DIR/stopping" ] || "$FLEET_DIR/start-agent" "\$N"
rm -f "\$N/reboot.pid"
EOF
        chmod +x "$N/reboot"
        # FLEET_RUNTIME_PREFIX: the nodes run workloads, each node in cgroups of its own
        local runtime='{"enabled": false}'
        [ -n "${FLEET_RUNTIME_PREFIX:-}" ] &&
                runtime="{\"cgroup_parent\": \"$FLEET_RUNTIME_PREFIX-$name\", \"stop_workloads_on_exit\": true, \"sandbox_init\": \"$FLEET_BIN/orbit-sandbox-init\"}"
        cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "$name", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "config_dir": "$N/etc", "log_target": "stderr", "log_level": "${FLEET_AGENT_LOG_LEVEL:-info}",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": $runtime,
 "health": {"poll_interval_ms": 1000, "report_interval_sec": ${FLEET_REPORT_SEC:-60}, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "update": {"enabled": true, "hardware": "sim-board",
            "bootloader": {"kind": "file", "path": "$N/boot.json"},
            "rootfs": {"a": "$N/slots/a", "b": "$N/slots/b"}, "boot_tries": 2,
            "gate_sec": $FLEET_GATE_SEC, "trial_timeout_sec": $FLEET_TRIAL_SEC, "checkpoint_mib": 1,
            "reboot_command": ["$N/reboot"]},
 "link": {"enabled": true, "url": "$FLEET_URL", "ca": "$K/server-ca.pem",
          "cert": "$N/node.pem", "key": "$N/node.key", "poll_interval_sec": $FLEET_POLL_SEC,
          "backoff_min_sec": 1, "backoff_max_sec": 4, "min_sync_interval_sec": 1}}
JSON
        "$FLEET_BIN/orbit-agent" --check-config --config "$N/etc/agent.json" >/dev/null 2>"$N/check.err" ||
                { cat "$N/check.err" >&2; return 1; }
}

# The starter the reboot hooks share: the agent detached (its own session, parent init),
# its pid in agent.pid.
fleet_write_starter() {
        cat >"$FLEET_DIR/start-agent" <<EOF
#!/bin/sh
# start-agent NODE_DIR: start that node's orbit-agent detached; its pid goes to agent.pid.
setsid -f sh -c 'echo \$\$ >"\$1/agent.pid"; exec "\$2" --config "\$1/etc/agent.json" >>"\$1/agent.log" 2>&1 </dev/null' \
        sh "\$1" "$FLEET_BIN/orbit-agent"
for i in \$(seq 100); do [ -s "\$1/agent.pid" ] && break; sleep 0.02; done
EOF
        chmod +x "$FLEET_DIR/start-agent"
}

fleet_node_start() { # NAME
        rm -f "$FLEET_DIR/nodes/$1/agent.pid"
        "$FLEET_DIR/start-agent" "$FLEET_DIR/nodes/$1"
}

fleet_node_pid() { cat "$FLEET_DIR/nodes/$1/agent.pid" 2>/dev/null; }

# Stop every agent (and keep reboot hooks from starting new ones), then the controller.
fleet_stop_all() {
        [ -n "${FLEET_DIR:-}" ] && [ -d "$FLEET_DIR/nodes" ] || { fleet_stop_controller; return 0; }
        : >"$FLEET_DIR/stopping"
        local f pid i
        # Reboots in flight finish first (a few seconds at most), so none starts an agent late.
        for i in $(seq 100); do
                set -- "$FLEET_DIR"/nodes/*/reboot.pid
                [ -e "$1" ] || break
                sleep 0.1
        done
        for f in "$FLEET_DIR"/nodes/*/agent.pid; do
                [ -e "$f" ] || continue
                pid=$(cat "$f")
                fleet_pid_alive "$pid" && kill -CONT "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null
        done
        for f in "$FLEET_DIR"/nodes/*/agent.pid; do
                [ -e "$f" ] || continue
                pid=$(cat "$f")
                for i in $(seq 100); do
                        fleet_pid_alive "$pid" || break
                        sleep 0.05
                done
                fleet_pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
        done
        fleet_stop_controller
}

# The cgroups of the nodes' workloads (FLEET_RUNTIME_PREFIX-<node>), after the agents stopped.
fleet_cleanup_cgroups() { # PREFIX
        local d
        [ -n "$1" ] || return 0
        for d in /sys/fs/cgroup/*/"$1"-* /sys/fs/cgroup/"$1"-*; do
                [ -d "$d" ] || continue
                find "$d" -name cgroup.procs -exec sh -c 'for p in $(cat "$1"); do kill -9 "$p"; done' _ {} \; 2>/dev/null
                find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null
        done
        return 0
}

# The rollout as JSON, and small views of it.
fleet_rollout_json() { fleet_oc rollout status "$1" --json; }
