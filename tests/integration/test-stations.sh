#!/bin/bash
# Several ground stations, one fleet, one database (#22 items 2 and 3, docs/storage.md
# "Several controllers"): a real PostgreSQL of the test's own (pg-lib.sh), two
# orbit-controllers started at once on it (one CA, one server certificate, one command
# signer: a node trusts both), and 10 real agents (scripts/fleet-lib.sh) reaching them
# through the ground network (station-switch.py: each pass a new connection, handed to the
# stations in turn, one that is down skipped). A rollout runs over both stations; the
# station that leads the periodic jobs is killed (SIGKILL) in the middle and its nodes
# finish on the other, which takes the lead. Then the database's primary is lost (stopped
# at once) and its synchronous standby promoted: the station finds the new primary by its
# address (both hosts, target_session_attrs=read-write) and the nodes go on syncing.
# Checked in the database (the promoted standby): every record of
# every boot of every node stored exactly once, each install told and answered once, the
# rollout's stages started and passed once each, in order.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/pg-lib.sh"

for t in openssl jq setsid python3; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed"
done
grep -q '^#define HAVE_LIBPQ 1' "$top_builddir/config.h" || skip_all "built without PostgreSQL (libpq)"
pg_find || skip_all "no PostgreSQL server (Debian: postgresql)"
[ -x "$PGBIN/psql" ] || skip_all "no psql"

FLEET_IMAGE_KIB=${FLEET_IMAGE_KIB:-1024}
fleet_test_setup
trap 'fleet_cleanup; pg_cleanup' EXIT
# a synchronous standby: an answered sync is on both servers (docs/operations.md)
PG_OPTS="-c synchronous_standby_names='*'"
pg_start || bail "PostgreSQL did not start"
pg_standby_start || bail "the standby did not start"
sync_standby() { [ "$(pg_sql "SELECT sync_state FROM pg_stat_replication")" = sync ]; }
check "the standby streams, synchronous" wait_for "$T" sync_standby

fleet_keys || bail "keys"
fleet_images fw-a || bail "images"

# station_start NAME: an orbit-controller on the database, its data (bundle files) in
# st-NAME/, its port in st-NAME/port, its pid in PID_NAME.
station_start() {
        local K=$FLEET_DIR/keys S=$FLEET_DIR/st-$1
        mkdir -p "$S"
        rm -f "$S/port"
        "$FLEET_BIN/orbit-controller" serve --listen 127.0.0.1:0 --port-file "$S/port" \
                --database "$PG_URL_BOTH" --data-dir "$S/data" \
                --cert "$K/server.pem" --key "$K/server.key" --node-ca "$K/node-ca.pem" \
                --release-token-file "$K/token" --command-key "$K/cmd.key" \
                --command-cert "$K/cmd.pem" --bundle-keyring "$K/release-keyring" \
                --poll-interval "$FLEET_POLL_SEC" --timeout 10 --max-connections 256 \
                --pass-gap 0 >>"$S/controller.log" 2>&1 &
        printf -v "PID_$1" %s $!
        track_pid $!
}
station_port() { cat "$FLEET_DIR/st-$1/port" 2>/dev/null; }
station_up() { [ -s "$FLEET_DIR/st-$1/port" ]; }
# oc_at NAME ARGS...: the operator's CLI against that station
oc_at() {
        local s=$1
        shift
        FLEET_URL=https://127.0.0.1:$(station_port "$s") fleet_oc "$@"
}
leads() { grepq "this controller leads the periodic jobs" "$FLEET_DIR/st-$1/controller.log"; }

# ---- 1. two stations started at once on the empty database ----------------------------------
station_start a
station_start b
check "station a is up" wait_for "$T" station_up a
check "station b is up" wait_for "$T" station_up b
[ "$(pg_sql "SELECT version FROM schema_version")" = 15 ] && pass "one schema, version 15, made by the first" ||
        fail "schema version" "$(pg_sql "SELECT * FROM schema_version" 2>&1)"
FAIL_CONTEXT_LOG=$FLEET_DIR/st-a/controller.log
one_leads() { leads a || leads b; }
check "one station leads the periodic jobs" wait_for "$T" one_leads
if leads a; then LEADER=a OTHER=b; else LEADER=b OTHER=a; fi
leads "$OTHER" && fail "both stations lead"
stands_by() { grepq "another controller on the database leads the periodic jobs" "$FLEET_DIR/st-$1/controller.log"; }
check "station $OTHER says it stands by" wait_for "$T" stands_by "$OTHER"
note "station $LEADER (port $(station_port $LEADER)) leads; $OTHER (port $(station_port $OTHER)) stands by"

python3 "$top_srcdir/tests/integration/station-switch.py" "$FLEET_DIR/switch.port" "$FLEET_DIR/switch.log" \
        "$(station_port a)" "$(station_port b)" 2>"$FLEET_DIR/switch.err" &
track_pid $!
switch_up() { [ -s "$FLEET_DIR/switch.port" ]; }
wait_for "$T" switch_up || bail "the station switch did not start: $(cat "$FLEET_DIR/switch.err")"
# what the nodes know: the ground network's one address
FLEET_URL=https://127.0.0.1:$(cat "$FLEET_DIR/switch.port")

# ---- 2. ten nodes, each pass at the other station ----------------------------------------
fleet_write_starter
NODES=()
for i in $(seq -w 1 10); do
        NODES+=("node-$i")
done
for n in "${NODES[@]}"; do
        fleet_node_make "$n" || bail "node $n"
        fleet_node_start "$n"
done
synced() { [ "$(oc_at a node list --json | jq '[.[] | select(.syncs >= 4)] | length')" = 10 ]; }
check "all 10 nodes synced 4 times" wait_for "$T" synced
conns() { grep -c "^$(station_port "$1") " "$FLEET_DIR/switch.log"; }
[ "$(conns a)" -ge 10 ] && [ "$(conns b)" -ge 10 ] &&
        pass "the nodes reached both stations: $(conns a) connections to a, $(conns b) to b" ||
        fail "both stations" "a $(conns a), b $(conns b)"
# the same nodes at both, and what a saw of each node's syncs b sees too (asked later)
oc_at a node list --json | jq -c 'map({(.id): .syncs}) | add' >fleet.a
oc_at b node list --json | jq -c 'map({(.id): .syncs}) | add' >fleet.b
jq -e --slurpfile b fleet.b 'keys == ($b[0] | keys) and (to_entries | all(.value <= $b[0][.key]))' fleet.a >/dev/null &&
        pass "both stations see one fleet ($(jq '[.[]] | add' fleet.a) syncs at a's look, $(jq '[.[]] | add' fleet.b) at b's)" ||
        fail "one fleet" "a $(cat fleet.a), b $(cat fleet.b)"

# ---- 3. a rollout over both stations; the leader killed in the middle ---------------------
# The bundle's file lives in each station's data directory: uploaded to each (the second
# upload of the same content is accepted, one row in the database).
check "bundle uploaded to station a" oc_at a bundle upload images/fw-a.obundle
check "the same bundle uploaded to station b" oc_at b bundle upload images/fw-a.obundle
[ "$(pg_sql "SELECT count(*) FROM bundles")" = 1 ] && pass "one bundle row" || fail "bundle rows"
oc_at "$OTHER" rollout create --id first --bundle fw-a --target all --stages 20,50,100 \
        --success-after 1 --max-failures 0 >create.out 2>&1 || bail "create: $(cat create.out)"
grep -q "10 nodes in stages 20,50,100% (2, 3, 5 nodes)" create.out &&
        pass "created on station $OTHER: 10 nodes in stages of 2, 3 and 5" || fail "stage sizes" "$(cat create.out)"
check "started on station $LEADER" oc_at "$LEADER" rollout start first
rj() { oc_at "$OTHER" rollout status "$1" --json; }
stage_is() { [ "$(rj "$1" | jq .current_stage)" -ge "$2" ]; }
told_in_stage2() { [ "$(rj first | jq '[.nodes[] | select(.stage == 2 and .state != "pending")] | length')" -ge 1 ]; }
check "stage 2 begins" wait_for $((T * 2)) stage_is first 2
wait_for "$T" told_in_stage2
pid_var=PID_$LEADER
kill -KILL "${!pid_var}"
wait "${!pid_var}" 2>/dev/null
rj first >killed.json
jq -e '.state == "running" and .counts.committed < 10' killed.json >/dev/null &&
        pass "station $LEADER killed (SIGKILL) mid-rollout: stage $(jq .current_stage killed.json), $(jq .counts.committed killed.json) of 10 committed" ||
        fail "killed mid-rollout" "$(jq -c '{state, current_stage, counts}' killed.json)"
check "station $OTHER takes the lead" wait_for "$T" leads "$OTHER"
state_is() { [ "$(rj "$1" | jq -r .state)" = "$2" ]; }
check "the rollout completes on station $OTHER" wait_for $((T * 4)) state_is first completed
grep -q "^refused $(station_port "$LEADER")$" "$FLEET_DIR/switch.log" &&
        pass "nodes turned to station $OTHER when $LEADER was down ($(grep -c "^refused" "$FLEET_DIR/switch.log") times)" ||
        fail "no pass found station $LEADER down"
rj first >first.json
jq -e '.counts.committed == 10' first.json >/dev/null && pass "all 10 nodes committed" ||
        fail "committed" "$(jq -c .counts first.json)"
order=$(jq -c '[.events[] | select(.event == "stage passed" or .event == "stage started") | "\(.event) \(.stage)"]' first.json)
[ "$order" = '["stage started 1","stage passed 1","stage started 2","stage passed 2","stage started 3","stage passed 3"]' ] &&
        pass "each stage started and passed once, in order" || fail "stage order" "$order"

# ---- 3b. the database's primary lost, its standby promoted ----------------------------------
oc_at "$OTHER" node list --json | jq -c 'map({(.id): .syncs}) | add' >before-failover.json
pg_as_owner "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 30 stop >/dev/null &&
        pass "the primary stopped at once (pg_ctl -m immediate)" || fail "stop the primary"
pg_as_owner "$PGBIN/pg_ctl" -D "$PG_DIR/standby" -w -t 60 promote >/dev/null &&
        pass "the standby promoted" || fail "promote the standby" "$(tail -5 "$PG_DIR/standby.log")"
PG_URL=$PG_URL2
[ "$(pg_sql "SELECT pg_is_in_recovery()")" = f ] && pass "the promoted standby writes" || fail "promoted"
synced_again() {
        oc_at "$OTHER" node list --json | jq -e --slurpfile b before-failover.json \
                'length == 10 and all(.[]; .syncs >= $b[0][.id] + 3)' >/dev/null
}
check "every node synced 3 more times through station $OTHER on the promoted standby" wait_for $((T * 2)) synced_again
[ "$(pg_sql "SELECT count(*) FROM bundles")" = 1 ] && pass "what the primary had is on the standby (the bundle row)" ||
        fail "bundle row after promotion"

# ---- 4. in the database: commands and records, each once ----------------------------------
# every node told to install once, the command answered (done) once
bad=$(pg_sql "SELECT node, count(*), string_agg(state, ',') FROM commands WHERE action = 'update.install'
              GROUP BY node HAVING count(*) <> 1 OR bool_or(state <> 'done')")
[ "$(pg_sql "SELECT count(DISTINCT node) FROM commands WHERE action = 'update.install'")" = 10 ] && [ -z "$bad" ] &&
        pass "each node told to install once, and its result in" || fail "installs" "$bad"
results=$(pg_sql "SELECT count(*) FROM records WHERE kind = 'command.result'")
[ "$results" = "$(pg_sql "SELECT count(*) FROM commands WHERE state IN ('done', 'failed')")" ] &&
        pass "one command.result record per answered command ($results)" || fail "results" "$results"

# Stop the agents: what each has not sent is in its outbox. For every boot of every node,
# the records in the database and those still in the outbox are seqs 1..N, each once.
: >"$FLEET_DIR/stopping"
fleet_stop_all
pg_sql "SELECT node, boot_epoch, boot_id, seq FROM records" >db.keys
for n in "${NODES[@]}"; do
        for f in "$FLEET_DIR/nodes/$n/state/outbox/"*.rec; do
                [ -e "$f" ] || continue
                f=${f##*/}
                f=${f%.rec}
                printf '%s|%s|%s|%s\n' "$n" "${f%%-*}" "$(cut -d- -f2 <<<"$f")" "${f##*-}"
        done
done >outbox.keys
dups=$(cut -d'|' -f1-4 db.keys | sort | uniq -d)
[ -z "$dups" ] && pass "no record stored twice ($(wc -l <db.keys) records, $(wc -l <outbox.keys) still in outboxes)" ||
        fail "records stored twice" "$dups"
# per node and boot: the union is 1..N with no gap, and a stored record is not in the outbox
holes=$(sort -u db.keys outbox.keys | awk -F'|' '{k = $1 "|" $2 "|" $3; n[k]++; if ($4 > m[k]) m[k] = $4}
        END {for (k in n) if (n[k] != m[k]) print k ": " n[k] " records, highest seq " m[k]}')
[ -z "$holes" ] && pass "every record of every boot arrived or is still in its node's outbox, none lost" ||
        fail "records lost" "$holes"
both=$(sort db.keys outbox.keys | uniq -d | wc -l)
note "$both records both stored and still in an outbox (their ack was in flight)"
[ "$(cut -d'|' -f1-3 db.keys | sort -u | wc -l)" -ge 20 ] && pass "records of every node's boots before and after its update" ||
        fail "boots" "$(cut -d'|' -f1-3 db.keys | sort -u | wc -l) boots"

for s in a b; do
        has_sanitizer_report "$FLEET_DIR/st-$s/controller.log" && fail "sanitizer report in station $s's log"
done
for n in "${NODES[@]}"; do
        has_sanitizer_report "$FLEET_DIR/nodes/$n/agent.log" && fail "sanitizer report in $n's log"
done
finish
