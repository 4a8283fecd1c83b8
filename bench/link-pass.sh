#!/usr/bin/env bash
# One contact pass over a bad link, with the link improvements of issue #17 on and off, side
# by side in one run (issue #17 item 8; docs/protocol.md, "Passes and their budgets").
#
# The link: tests/integration/link-emu between two network namespaces (the controller's and
# the node's, each joined to a third by a veth pair, the offloads off), 256 kbit/s each way,
# 750 ms each way (RTT 1.5 s), 10% of the frames lost each way at random (the same seed for
# "on" and "off"), a queue of 1000 frames; both namespaces' default congestion control set
# to Reno (sysctl net.ipv4.tcp_congestion_control=reno). "on" and "off" each get a link, a
# controller and an agent of their own, and run at the same time.
#
# The node: the build's orbit-agent, its outbox seeded with a backlog of 282 health.report
# records of ~3.7 KB as agent/health-monitor.c makes them (bench/link-zstd makes them: 1 MiB
# of compact JSON), written as record files (docs/outbox-format.md) before it starts. The
# pass: a contact plan of one window of --pass-sec (default 600 s), PUT to the controller
# (PUT /v1/nodes/<id>/contact-plan) just before the agent starts.
#
#   "on"  = the defaults of this tree: link.compress true with link.zstd_dictionary (the
#           dictionary bench/link-zstd trains, also the controller's --zstd-dictionary),
#           link.tcp_congestion "bbr", and the controller with --tcp-congestion bbr; and the
#           resumption this tree offers for a slow link: link.tls_max "1.2" and the
#           controller's --tls-session-cache (a session resumed by its id);
#   "off" = the old behaviour as far as the configuration allows: link.compress false
#           and a controller with --no-zstd (plain JSON both ways), link.tcp_congestion
#           "default" (Reno here) and a controller without --tcp-congestion (Reno), TLS 1.3
#           without resumption (every new connection is a full handshake), link.max_sync_kib
#           1024 (the default, as before). What "off" cannot turn off (no setting for it):
#           the batch sized by the measured goodput and the window's time left, the next
#           sync at once after a batch cut by bytes, the agent keeping its connection, the
#           minimal headers without Expect: 100-continue, sync format 2 (the controller
#           takes it whatever its zstd; docs/protocol.md, "Format 2").
#   Both: link.timeout_sec 120, backoff 5..600 s (the defaults); the controller's
#           --poll-interval 600 (so no sync of the node's own pace interferes with those
#           the bench asks for) and --timeout 30 (the old controller's idle timeout; it
#           lets the bench see a new connection within a minute).
#
# Figures, each beside the goal of issue #17 (medians when --runs > 1):
#   - records acked / queued when the pass ends (or when the outbox is empty, if sooner);
#   - goodput: the records' JSON bytes acked per second, from the agent's start (TCP and TLS
#     handshakes included) to the last ack; against one bulk upload of the same bytes (the
#     backlog as one plain sync body, POSTed by curl with mutual TLS, no Expect) over the
#     same link right after the pass, by the same congestion control as the agent's ("on":
#     the node namespace's default switched to bbr for curl, "off": Reno), timed from its
#     first body byte to the answer (its handshake left out: the best case for curl); and
#     against the raw link rate (32,000 B/s of frames). With "on" the records travel in
#     zstd, so their JSON can pass at more than the link's rate;
#   - an idle sync (no records, no status) on the kept-alive connection, a sync carrying one
#     health.report (the agent's own, its report interval set to 1 s by SIGHUP for one report),
#     and an idle sync on a new connection after the controller closed the old one (with
#     "on", a resumed TLS session): bytes on the wire.
#
# How bytes on the wire are counted: from the node's TCP socket (tcp_info via `ss -ti` in
# the node's namespace: bytes_sent - bytes_retrans up, bytes_received down), the difference
# across the sync on the same connection, or the whole of a new connection: TCP payload,
# that is TLS records (headers, tags, tickets, alerts) with HTTP inside, every byte once
# whatever the loss did. The goals are checked against these. The frames on the node's
# veth (/sys/class/net/IF/statistics: Ethernet, IP and TCP headers, ACKs, retransmissions)
# are shown beside them.
#
# A long stress test may keep this machine's CPUs busy; the bench is bound by the link,
# not the CPU, but the figures are noisy (loss is random): run it more than once.
#
#   bench/link-pass.sh [--pass-sec N] [--runs N] [--keep] [--no-bulk] [BUILD_DIR]   (root)
#
# --pass-sec: the window's length (600; less for a quick look: the backlog then may not drain
# with "off"); --runs: repetitions (medians); --keep: keep the logs; --no-bulk: no curl upload
# (quick runs: Reno takes about 5 minutes over it).
set -euo pipefail
PASS_SEC=600 RUNS=1 KEEP="" BULK=1 B=.
while [ $# -gt 0 ]; do
        case "$1" in
        --pass-sec) PASS_SEC=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --no-bulk) BULK=""; shift ;;
        -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        -*) echo "link-pass: unknown option $1" >&2; exit 2 ;;
        *) B=$1; shift ;;
        esac
done
case "$PASS_SEC$RUNS" in *[!0-9]*) echo "link-pass: --pass-sec and --runs take numbers" >&2; exit 2 ;; esac
[ "$PASS_SEC" -ge 60 ] && [ "$RUNS" -ge 1 ] && [ "$RUNS" -le 9 ] ||
        { echo "link-pass: --pass-sec at least 60, --runs 1..9" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "link-pass: needs root (network namespaces)" >&2; exit 1; }
for t in openssl jq ip ss curl python3 sysctl; do
        command -v "$t" >/dev/null 2>&1 || { echo "link-pass: $t not found" >&2; exit 1; }
done
B=$(cd "$B" && pwd)
[ -x "$B/orbit-controller" ] && [ -x "$B/orbit-agent" ] || { echo "link-pass: no orbit-controller and orbit-agent in $B" >&2; exit 1; }
make -s -C "$B" bench/link-zstd tests/integration/link-emu >/dev/null
EMU=$B/tests/integration/link-emu
grep -qw bbr /proc/sys/net/ipv4/tcp_available_congestion_control || modprobe tcp_bbr 2>/dev/null ||
        echo "link-pass: the kernel offers no bbr: \"on\" runs with its default" >&2

RATE_BPS=256000 DELAY_MS=750 LOSS_PCT=10 LIMIT=1000 RECORDS=282 NODE=sat-017
D=$(mktemp -d "${TMPDIR:-/tmp}/link-pass.XXXXXX")
PIDS=() NSS=()
cleanup() {
        local p ns
        for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
        wait 2>/dev/null || true
        for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
        if [ -n "$KEEP" ]; then echo "link-pass: kept $D"; else rm -rf "$D"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cd "$D"

# ---- keys, the backlog ------------------------------------------------------------------------------
mkca() {
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -x509 -new -key "$1.key" -subj "$2" -days 2 -out "$1.pem" \
                        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
}
mkcert() {
        openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null &&
                openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr" 2>/dev/null &&
                printf '%s\n' "$4" >"$1.ext" &&
                openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3.key" -CAcreateserial -days 1 \
                        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
}
NETS=""
for r in $(seq 1 "$RUNS"); do NETS="$NETS,IP:10.78.$((10 + r)).1,IP:10.78.$((20 + r)).1"; done
mkca server-ca "/CN=ground TLS CA" && mkca node-ca "/CN=fleet node CA" &&
        mkcert server ground server-ca "basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=${NETS#,}" &&
        mkcert node "$NODE" node-ca 'basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth' || { echo "link-pass: openssl could not make the certificates" >&2; exit 1; }
"$B/orbit-bundle" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null
"$B/orbit-bundle" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
        --key cmd.key --cert cmd.pem >/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >token
mkdir gen seed
"$B/bench/link-zstd" 16384 gen "$RECORDS" >gen/link-zstd.out
# The backlog's records as outbox files (the state-file header around each record's exact
# text), and the same records as one plain sync body for curl.
RECORD_BYTES=$(python3 - gen/backlog.json seed bulk.json <<'EOF'
import hashlib, json, sys
text = open(sys.argv[1]).read()
start = text.index('"records":[') + len('"records":[')
dec, pos, total, recs = json.JSONDecoder(), start, 0, []
while text[pos] != "]":
    obj, end = dec.raw_decode(text, pos)
    raw = text[pos:end]
    k = obj["key"]
    name = "%d-%s-%d.rec" % (k["boot_epoch"], k["boot_id"], k["seq"])
    data = raw.encode()
    with open(sys.argv[2] + "/" + name, "wb") as f:
        f.write(b"orbit-state 1 %d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode()) + data)
    recs.append(raw)
    total += len(data)
    pos = end + (1 if text[end] == "," else 0)
open(sys.argv[3], "w").write('{"format":1,"node":"%s","boot_epoch":7,"boot_id":"%s","last_command_seq":0,"records":[%s]}'
                             % (k["node"], k["boot_id"], ",".join(recs)))
print(total)
EOF
)
[ "$(find seed -name '*.rec' | wc -l)" = "$RECORDS" ] || { echo "link-pass: the backlog was not written" >&2; exit 1; }

# ---- one pass, one mode -------------------------------------------------------------------------------
# run_mode MODE RUN: its own namespaces, link, controller and agent; figures in $M/result.
run_mode() {
        local mode=$1 run=$2 k
        [ "$mode" = on ] && k=$((10 + run)) || k=$((20 + run))
        local M=$D/$mode.$run
        mkdir -p "$M/node/etc/keys/commands" "$M/node/sys/class/thermal/thermal_zone0" "$M/node/state/outbox"
        local NS_C=olp-c$k-$$ NS_N=olp-n$k-$$ NS_W=olp-w$k-$$ IF_C=lpc$k$$ IF_N=lpn$k$$
        local CIP=10.78.$k.1 NIP=10.78.$k.2
        inc() { ip netns exec "$NS_C" "$@"; }
        inn() { ip netns exec "$NS_N" "$@"; }
        res() { echo "$1=$2" >>"$M/result"; }
        ip netns add "$NS_C" && ip netns add "$NS_N" && ip netns add "$NS_W" || return 1
        ip link add "$IF_C" netns "$NS_C" type veth peer name "w$IF_C" netns "$NS_W" &&
                ip link add "$IF_N" netns "$NS_N" type veth peer name "w$IF_N" netns "$NS_W" || return 1
        inc "$EMU" offload-off "$IF_C" && inn "$EMU" offload-off "$IF_N" &&
                ip netns exec "$NS_W" "$EMU" offload-off "w$IF_C" "w$IF_N" || return 1
        ip netns exec "$NS_W" ip link set "w$IF_C" up && ip netns exec "$NS_W" ip link set "w$IF_N" up &&
                inc ip addr add "$CIP/24" dev "$IF_C" && inn ip addr add "$NIP/24" dev "$IF_N" &&
                inc ip link set "$IF_C" up && inn ip link set "$IF_N" up &&
                inc ip link set lo up && inn ip link set lo up || return 1
        inc sysctl -qw net.ipv4.tcp_congestion_control=reno && inn sysctl -qw net.ipv4.tcp_congestion_control=reno ||
                return 1
        ip netns exec "$NS_W" "$EMU" bridge "w$IF_C" "w$IF_N" "$DELAY_MS" "$LOSS_PCT" "$RATE_BPS" "$LIMIT" \
                $((1000 + run)) 2>"$M/link-emu.log" &
        local EMU_PID=$!
        echo "$EMU_PID" >"$M/emu.pid"

        local copts=(--poll-interval 600 --timeout 30)
        if [ "$mode" = on ]; then
                copts+=(--tcp-congestion bbr --tls-session-cache --zstd-dictionary "$D/gen/link.dict")
        else
                copts+=(--no-zstd)
        fi
        ip netns exec "$NS_C" "$B/orbit-controller" serve --listen "$CIP:0" --port-file "$M/port" --data-dir "$M/data" \
                --cert "$D/server.pem" --key "$D/server.key" --node-ca "$D/node-ca.pem" \
                --operator-token-file "$D/token" --command-key "$D/cmd.key" --command-cert "$D/cmd.pem" \
                "${copts[@]}" --log-level notice >"$M/controller.log" 2>&1 &
        local CPID=$!
        echo "$CPID" >"$M/controller.pid"
        for _ in $(seq 100); do [ -s "$M/port" ] && break; sleep 0.1; done
        [ -s "$M/port" ] || { echo "link-pass: $mode: the controller did not start: $(tail -3 "$M/controller.log")" >&2; return 1; }
        local PORT URL
        PORT=$(cat "$M/port")
        URL=https://$CIP:$PORT
        plan() { # the operator, in the controller's namespace: not over the link
                inc curl -sS -f -o /dev/null --cacert "$D/server-ca.pem" -H "Authorization: Bearer $(cat "$D/token")" \
                        -X PUT --data "$1" "$URL/v1/nodes/$NODE/contact-plan"
        }

        # the node
        local N=$M/node
        cp "$D/cmd-ca.pem" "$N/etc/keys/commands/"
        echo cpu-thermal >"$N/sys/class/thermal/thermal_zone0/type"
        echo 45000 >"$N/sys/class/thermal/thermal_zone0/temp"
        echo "orbit.slot=A" >"$N/cmdline"
        local link
        if [ "$mode" = on ]; then
                link='"compress": true, "zstd_dictionary": "'$D/gen/link.dict'", "tcp_congestion": "bbr", "tls_max": "1.2"'
        else
                link='"compress": false, "tcp_congestion": "default"'
        fi
        cat >"$N/etc/agent.json" <<JSON
{"config_version": 1, "node_id": "$NODE", "state_dir": "$N/state", "runtime_dir": "$N/run",
 "log_target": "stderr",
 "paths": {"sysfs_root": "$N/sys", "kernel_cmdline": "$N/cmdline"},
 "runtime": {"enabled": false}, "update": {"enabled": false},
 "health": {"poll_interval_ms": 200, "report_interval_sec": 86400, "min_dwell_sec": 0,
            "zones": [{"match": "cpu-*", "warm_c": 70, "hot_c": 80, "critical_c": 90}]},
 "link": {"enabled": true, "url": "$URL", "ca": "$D/server-ca.pem", "cert": "$D/node.pem",
          "key": "$D/node.key", "max_sync_kib": 1024, $link}}
JSON
        ctl() { "$B/orbitctl" --socket "$N/run/control.sock" "$@"; }
        lnk() { ctl link --json | jq -r "$1"; }
        local APID=""
        start_agent() {
                ip netns exec "$NS_N" "$B/orbit-agent" --config "$N/etc/agent.json" >>"$N/agent.log" 2>&1 &
                APID=$!
                echo "$APID" >"$M/agent.pid"
                for _ in $(seq 100); do ctl ping >/dev/null 2>&1 && return 0; sleep 0.1; done
                echo "link-pass: $mode: the agent did not answer: $(tail -3 "$N/agent.log")" >&2
                return 1
        }
        stop_agent() {
                kill -TERM "$APID" 2>/dev/null
                for _ in $(seq 200); do kill -0 "$APID" 2>/dev/null || break; sleep 0.1; done
                wait "$APID" 2>/dev/null || true
        }
        vstat() { inn cat "/sys/class/net/$IF_N/statistics/$1"; }
        frames() { echo $(($(vstat rx_bytes) + $(vstat tx_bytes))) $(($(vstat rx_packets) + $(vstat tx_packets))); }
        now() { date +%s.%N; }

        # ---- the pass: the backlog ----------------------------------------------------------------
        cp "$D"/seed/*.rec "$N/state/outbox/"
        local T0 T1 F0 F1 TX0 TX1
        T0=$(date +%s)
        plan "{\"windows\":[{\"start\":$T0,\"end\":$((T0 + PASS_SEC)),\"rate_bps\":$RATE_BPS}]}" || return 1
        TX0=$(vstat tx_bytes)
        F0=$(frames)
        local S0
        S0=$(now)
        start_agent || return 1
        local q=1 st=""
        while :; do
                st=$(ctl link --json 2>/dev/null) || st=""
                if [ -n "$st" ]; then
                        q=$(jq -r .records_queued <<<"$st")
                        [ "$q" = 0 ] && break
                fi
                [ "$(date +%s)" -ge $((T0 + PASS_SEC)) ] && break
                sleep 0.5
        done
        T1=$(now)
        TX1=$(vstat tx_bytes)
        F1=$(frames)
        st=$(ctl link --json)
        res acked "$(jq .records_acked <<<"$st")"
        res left "$(jq .records_queued <<<"$st")"
        res syncs_ok "$(jq .syncs_ok <<<"$st")"
        res syncs_failed "$(jq .syncs_failed <<<"$st")"
        res connections "$(jq .connections_opened <<<"$st")"
        res tcp "$(jq -r '.tcp_congestion // "?"' <<<"$st")"
        res up_body "$(jq .bytes_up <<<"$st")"
        res up_plain "$(jq .compression.bytes_up_plain <<<"$st")"
        res transfer_sec "$(python3 -c "print('%.1f' % ($T1 - $S0))")"
        res drained "$([ "$q" = 0 ] && echo yes || echo no)"
        res node_tx "$((TX1 - TX0))"
        res frames "$((${F1% *} - ${F0% *}))"
        stop_agent

        # ---- one bulk upload of the same bytes, by curl, over the same link -----------------------
        local cc=reno
        [ "$mode" = on ] && cc=bbr
        [ -n "$BULK" ] && {
        inn sysctl -qw net.ipv4.tcp_congestion_control=$cc || true
        TX0=$(vstat tx_bytes)
        local cw
        cw=$(inn curl -sS -o "$M/curl.out" -w '%{http_code} %{time_pretransfer} %{time_total} %{size_upload}' \
                --cacert "$D/server-ca.pem" --cert "$D/node.pem" --key "$D/node.key" \
                -H 'Content-Type: application/json' -H 'Expect:' --data-binary @"$D/bulk.json" \
                --max-time $((PASS_SEC * 2)) "$URL/v1/nodes/$NODE/sync" 2>>"$M/curl.err") || true
        TX1=$(vstat tx_bytes)
        inn sysctl -qw net.ipv4.tcp_congestion_control=reno || true
        res curl_cc "$cc"
        res curl_http "${cw%% *}"
        res curl_sec "$(awk '{printf "%.1f", $3 - $2}' <<<"$cw")"
        res curl_bytes "$(awk '{print $4}' <<<"$cw")"
        res curl_tx "$((TX1 - TX0))"
        }

        # ---- after the pass: idle syncs, a health report, a new connection --------------------------
        rm -f "$N/state/outbox/"*.rec
        plan '{"windows":[]}' || return 1
        start_agent || return 1
        okc() { ctl link --json | jq .syncs_ok; }
        wait_sync() { # N: wait until syncs_ok reaches N
                for _ in $(seq 1200); do [ "$(okc)" -ge "$1" ] && return 0; sleep 0.1; done
                return 1
        }
        conn() { # the established connection to the controller: "lport sent retrans received"
                inn ss -tinH state established "( dport = :$PORT )" | awk '
                        /^[0-9]+ +[0-9]+ +[0-9.]+:[0-9]+ / { n = split($3, a, ":"); lp = a[n] }
                        { for (i = 1; i <= NF; i++) { split($i, kv, ":"); if (kv[1] == "bytes_sent") s = kv[2];
                          if (kv[1] == "bytes_retrans") r = kv[2]; if (kv[1] == "bytes_received") v = kv[2] } }
                        END { if (lp != "") print lp, s + 0, r + 0, v + 0 }'
        }
        sync_now() { # one sync asked for; prints "up down frames_bytes same_connection"
                local n c0 c1 f0 f1
                n=$(okc)
                c0=$(conn)
                f0=$(frames)
                ctl link sync >/dev/null
                wait_sync $((n + 1)) || return 1
                sleep 0.2 # the last ACK
                c1=$(conn)
                f1=$(frames)
                read -r l0 s0 r0 v0 <<<"${c0:-x 0 0 0}"
                read -r l1 s1 r1 v1 <<<"${c1:-y 0 0 0}"
                if [ "$l0" = "$l1" ]; then
                        echo $(((s1 - r1) - (s0 - r0))) $((v1 - v0)) $((${f1% *} - ${f0% *})) same
                else
                        echo $((s1 - r1)) "$v1" $((${f1% *} - ${f0% *})) new
                fi
        }
        wait_sync 1 || { echo "link-pass: $mode: no sync after the pass" >&2; return 1; }
        sync_now >/dev/null # the second request learns zstd from the first answer
        for _ in 1 2 3 4 5; do sync_now >>"$M/idle" || return 1; done
        # one health.report: the report interval 1 s for one report, then back
        jq '.health.report_interval_sec = 1' "$N/etc/agent.json" >"$N/etc/a.json" && cp "$N/etc/a.json" "$N/etc/one.json"
        jq '.health.report_interval_sec = 86400' "$N/etc/agent.json" >"$N/etc/back.json"
        for _ in 1 2 3; do
                local p0
                p0=$(lnk .compression.bytes_up_plain)
                cp "$N/etc/one.json" "$N/etc/agent.json" && kill -HUP "$APID"
                for _ in $(seq 300); do [ "$(lnk .records_queued)" -ge 1 ] && break; sleep 0.05; done
                cp "$N/etc/back.json" "$N/etc/agent.json" && kill -HUP "$APID"
                sleep 1.5
                local nrec
                nrec=$(lnk .records_queued)
                echo "$(sync_now) $nrec $(($(lnk .compression.bytes_up_plain) - p0))" >>"$M/report" || return 1
        done
        # a new connection: the controller closes the idle one after its --timeout (30 s)
        for _ in $(seq 900); do [ -z "$(conn)" ] && break; sleep 0.1; done
        local r0
        r0=$(inc curl -sS --cacert "$D/server-ca.pem" -H "Authorization: Bearer $(cat "$D/token")" "$URL/metrics" |
                awk '/^orbit_controller_tls_resumed_total/ {print $2}')
        sync_now >"$M/newconn" || return 1
        stop_agent
        # the controller counts a resumed session when its connection closes (within 10 s)
        local r1=""
        for _ in $(seq 50); do
                r1=$(inc curl -sS --cacert "$D/server-ca.pem" -H "Authorization: Bearer $(cat "$D/token")" "$URL/metrics" |
                        awk '/^orbit_controller_tls_resumed_total/ {print $2}')
                [ "${r1:-0}" -gt "${r0:-0}" ] && break
                sleep 0.2
        done
        res resumed "$(( ${r1:-0} - ${r0:-0} ))"
        kill -TERM "$CPID" "$EMU_PID" 2>/dev/null
        wait "$CPID" "$EMU_PID" 2>/dev/null || true
        res ok 1
}

echo "link-pass: link-emu $RATE_BPS bit/s, ${DELAY_MS} ms each way (RTT $((2 * DELAY_MS)) ms), $LOSS_PCT% loss each way," \
        "$LIMIT frames of queue; the namespaces' default congestion control: reno"
echo "link-pass: backlog $RECORDS health.report records, $RECORD_BYTES B of JSON ($((RECORD_BYTES / RECORDS)) B each);" \
        "a pass of $PASS_SEC s; $RUNS run(s), \"on\" and \"off\" at the same time, each on its own link"
echo "link-pass: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg) (a long stress test may be running: figures are noisy)"
for r in $(seq 1 "$RUNS"); do
        for mode in on off; do
                ( run_mode "$mode" "$r" ) &
                PIDS+=($!)
                k=$([ "$mode" = on ] && echo $((10 + r)) || echo $((20 + r)))
                NSS+=("olp-c$k-$$" "olp-n$k-$$" "olp-w$k-$$")
        done
        for p in "${PIDS[@]}"; do wait "$p" || true; done
        PIDS=()
        for mode in on off; do
                [ -s "$D/$mode.$r/result" ] && grep -q '^ok=1' "$D/$mode.$r/result" ||
                        { echo "link-pass: run $r, \"$mode\" failed; logs in $D/$mode.$r (kept)" >&2; KEEP=1; }
        done
        for ns in "${NSS[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
        NSS=()
done

# ---- the figures ----------------------------------------------------------------------------------------
python3 - "$D" "$RUNS" "$RECORD_BYTES" "$RECORDS" "$RATE_BPS" "$PASS_SEC" <<'EOF'
import os, statistics, sys
d, runs, rec_bytes, records, rate_bps, pass_sec = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
raw = rate_bps / 8


def load(mode):
    out = []
    for r in range(1, runs + 1):
        m = "%s/%s.%d" % (d, mode, r)
        try:
            kv = dict(l.strip().split("=", 1) for l in open(m + "/result") if "=" in l)
        except OSError:
            continue
        if kv.get("ok") != "1":
            continue
        rows = lambda f: [l.split() for l in open(m + "/" + f)] if os.path.exists(m + "/" + f) else []
        kv["idle"], kv["report"], kv["newconn"] = rows("idle"), rows("report"), rows("newconn")
        out.append(kv)
    return out


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def figures(runs_):
    f = {}
    if not runs_:
        return f
    f["acked"] = med([int(k["acked"]) for k in runs_])
    f["left"] = med([int(k["left"]) for k in runs_])
    f["drained"] = "/".join(k["drained"] for k in runs_)
    f["transfer"] = med([float(k["transfer_sec"]) for k in runs_])
    f["syncs"] = med([int(k["syncs_ok"]) for k in runs_])
    f["failed"] = med([int(k["syncs_failed"]) for k in runs_])
    f["conns"] = med([int(k["connections"]) for k in runs_])
    f["tcp"] = runs_[0].get("tcp", "-")
    # record bytes acked: the seeded records are all the same size, near enough
    gp = []
    for k in runs_:
        acked = min(int(k["acked"]), records)
        gp.append(rec_bytes * acked / records / float(k["transfer_sec"]))
    f["goodput"] = med(gp)
    f["wire_up"] = med([int(k["node_tx"]) / float(k["transfer_sec"]) for k in runs_])
    f["frames"] = med([int(k["frames"]) for k in runs_])
    f["up_plain"] = med([int(k["up_plain"]) for k in runs_])
    f["up_body"] = med([int(k["up_body"]) for k in runs_])
    cr = [int(k["curl_bytes"]) / float(k["curl_sec"]) for k in runs_ if k.get("curl_http") == "200" and float(k["curl_sec"]) > 0]
    f["curl"] = med(cr)
    f["curl_sec"] = med([float(k["curl_sec"]) for k in runs_ if k.get("curl_http") == "200"])
    f["curl_cc"] = runs_[0].get("curl_cc", "-")
    f["curl_http"] = "/".join(k.get("curl_http", "?") for k in runs_)
    f["curl_wire"] = med([int(k["curl_tx"]) / float(k["curl_sec"]) for k in runs_ if k.get("curl_http") == "200"])
    idle = [r for k in runs_ for r in k["idle"] if r[3] == "same"]
    f["idle_up"], f["idle_down"] = med([int(r[0]) for r in idle]), med([int(r[1]) for r in idle])
    f["idle_frames"] = med([int(r[2]) for r in idle])
    f["idle_n"] = len(idle)
    rep = [r for k in runs_ for r in k["report"] if r[3] == "same" and r[4] == "1"]
    f["rep_up"], f["rep_down"] = med([int(r[0]) for r in rep]), med([int(r[1]) for r in rep])
    f["rep_frames"] = med([int(r[2]) for r in rep])
    f["rep_plain"] = med([int(r[5]) for r in rep])
    f["rep_n"] = len(rep)
    nc = [r for k in runs_ for r in k["newconn"] if r[3] == "new"]
    f["nc_up"], f["nc_down"] = med([int(r[0]) for r in nc]), med([int(r[1]) for r in nc])
    f["nc_frames"] = med([int(r[2]) for r in nc])
    f["resumed"] = sum(int(k.get("resumed", 0) or 0) for k in runs_)
    f["nc_n"] = len(nc)
    return f


on, off = figures(load("on")), figures(load("off"))


def n(x, fmt="{:,.0f}"):
    return "-" if x is None else fmt.format(x)


def pct(a, b):
    return "-" if a is None or not b else "%.0f%%" % (100.0 * a / b)


def tot(f, a, b):
    return None if f.get(a) is None else f[a] + f[b]


rows = [
    ("records acked / queued (left)", lambda f: "%s / %d (%s)" % (n(f.get("acked")), records, n(f.get("left"))), "all acked"),
    ("outbox empty before the pass ended", lambda f: f.get("drained", "-"), "yes"),
    ("transfer: agent start to last ack", lambda f: n(f.get("transfer"), "{:.1f} s"), ""),
    ("syncs ok / failed, connections", lambda f: "%s / %s, %s" % (n(f.get("syncs")), n(f.get("failed")), n(f.get("conns"))), ""),
    ("congestion control (agent)", lambda f: f.get("tcp", "-"), ""),
    ("request bodies sent (JSON of those answered)", lambda f: "%s B (%s B)" % (n(f.get("up_body")), n(f.get("up_plain"))), ""),
    ("goodput: record JSON acked per s", lambda f: n(f.get("goodput"), "{:,.0f} B/s"), ""),
    ("  curl, one bulk upload (same CC)", lambda f: "%s (%s, %s)" % (n(f.get("curl"), "{:,.0f} B/s"), f.get("curl_cc", "-"), n(f.get("curl_sec"), "{:.1f} s")), ""),
    ("  goodput / curl's", lambda f: pct(f.get("goodput"), f.get("curl")), ">= 80%"),
    ("  goodput / raw link (32,000 B/s)", lambda f: pct(f.get("goodput"), raw), ">= 50%"),
    ("  node's frames sent per s: pass / curl", lambda f: "%s / %s B/s" % (n(f.get("wire_up")), n(f.get("curl_wire"))), ""),
    ("idle sync, kept-alive: TLS up + down", lambda f: "%s B (%s + %s)" % (n(tot(f, "idle_up", "idle_down")), n(f.get("idle_up")), n(f.get("idle_down"))), "<= 300 B"),
    ("  frames (headers, ACKs)", lambda f: n(f.get("idle_frames"), "{:,.0f} B"), ""),
    ("idle sync, new connection: TLS", lambda f: "%s B (%s + %s)" % (n(tot(f, "nc_up", "nc_down")), n(f.get("nc_up")), n(f.get("nc_down"))), "<= 700 B resumed"),
    ("  TLS sessions resumed / frames", lambda f: "%s / %s" % (f.get("resumed", "-"), n(f.get("nc_frames"), "{:,.0f} B")), ""),
    ("one health.report sync, kept-alive: TLS", lambda f: "%s B (%s + %s)" % (n(tot(f, "rep_up", "rep_down")), n(f.get("rep_up")), n(f.get("rep_down"))), "<= 800 B"),
    ("  request alone; the JSON body; frames", lambda f: "%s B; %s B; %s B" % (n(f.get("rep_up")), n(f.get("rep_plain")), n(f.get("rep_frames"))), ""),
]
print()
print("%-42s %-26s %-26s %s" % ("", "on", "off", "goal"))
for name, fn, goal in rows:
    print("%-42s %-26s %-26s %s" % (name, fn(on), fn(off), goal))
print()
print("(medians of %d run(s); idle syncs %s/%s, reports %s/%s, new connections %s/%s measured on/off)" % (
    runs, on.get("idle_n", 0), off.get("idle_n", 0), on.get("rep_n", 0), off.get("rep_n", 0), on.get("nc_n", 0), off.get("nc_n", 0)))
EOF
