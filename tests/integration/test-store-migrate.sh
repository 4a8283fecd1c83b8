#!/bin/bash
# orbit-controller migrate (docs/storage.md, "Moving from SQLite to PostgreSQL"): a SQLite
# store filled by the real controller (two nodes syncing over mutual TLS, curl standing in
# for the agents: records with odd text, usage reports, commands and their results, a group,
# bundles, a rollout, a deployment and its desired states, the audit log), copied into a
# PostgreSQL of this run's own (made as test-store-postgresql.sh makes it), and the
# controller started on it serving the same state: every list and status compared before
# and after, a node syncing again continues its sequence numbers (records not stored twice,
# commands not sent again, new rows past the copied identities). Refused: a source still
# open, a non-empty target; a row that does not convert, or a failure just before the
# commit, leaves the target empty.
# shellcheck shell=bash
set -u -o pipefail

: "${top_builddir:?top_builddir must be set}"
: "${top_srcdir:?top_srcdir must be set}"

# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

OC=$top_builddir/orbit-controller
OB=$top_builddir/orbit-bundle
for b in "$OC" "$OB"; do
        [ -x "$b" ] || bail "$b is missing: build it first"
done
grep -q '^#define HAVE_LIBPQ 1' "$top_builddir/config.h" || skip_all "built without PostgreSQL (libpq)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] && [ -x "$PGBIN/psql" ] ||
        skip_all "no PostgreSQL server (Debian: postgresql)"
for t in openssl curl jq tar sqlite3; do
        command -v "$t" >/dev/null 2>&1 || skip_all "$t not installed (scripts/deps.sh test)"
done

setup_testdir
D=$TESTDIR
cd "$D" || bail "cd $D"

# ---- PostgreSQL: a cluster of this run's own, a Unix socket only, on a random port ----------
PG=$D/pg
mkdir -p "$PG"
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
        chown nobody: "$PG" || bail "chown nobody $PG"
        as_owner() { runuser -u nobody -- "$@"; }
fi
pg_cleanup() {
        local rc=$?
        if [ -f "$PG/data/postmaster.pid" ]; then
                as_owner "$PGBIN/pg_ctl" -D "$PG/data" -m immediate -w -t 30 stop >/dev/null 2>&1
        fi
        cleanup
        return $rc
}
trap pg_cleanup EXIT
as_owner "$PGBIN/initdb" -D "$PG/data" -U orbit -A trust -E UTF8 --no-sync >"$PG/initdb.log" 2>&1 ||
        bail "initdb: $(tail -5 "$PG/initdb.log")"
PGPORT=$((20000 + RANDOM % 40000))
as_owner "$PGBIN/pg_ctl" -D "$PG/data" -l "$PG/server.log" -w -t 60 \
        -o "-k $PG -p $PGPORT -c listen_addresses='' -c fsync=off -c full_page_writes=off" start >/dev/null ||
        bail "PostgreSQL did not start: $(tail -5 "$PG/server.log")"
pgdb() { printf 'postgresql://orbit@/%s?host=%s&port=%s' "$1" "$PG" "$PGPORT"; }
psqlq() { # DB SQL: one value
        "$PGBIN/psql" -X -q -t -A -v ON_ERROR_STOP=1 "$(pgdb "$1")" -c "$2"
}
for db in main json failed edges; do
        psqlq postgres "CREATE DATABASE $db" >/dev/null || bail "CREATE DATABASE $db"
done
TABLES="nodes bundles node_groups commands records rollouts rollout_nodes rollout_events rollout_stage_counts
node_bundle_blocks audit node_certs desired_states deployments deployment_nodes usage_reports usage usage_latest"
pg_rows() { # DB: the rows of every store table, summed (no store made yet: 0)
        local t sql=""
        [ "$(psqlq "$1" "SELECT to_regclass('nodes') IS NULL")" = f ] || { echo 0; return; }
        for t in $TABLES; do
                sql="$sql${sql:+ + }(SELECT count(*) FROM $t)"
        done
        psqlq "$1" "SELECT $sql"
}
pass "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') on port $PGPORT, databases main, json, failed, edges"

# ---- keys, certificates, tokens, bundles ------------------------------------------------------
ground_pki node-1 node-2 || bail "openssl could not make the test certificates"
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >release-token
mkdir -p bundle-keyring
"$OB" keygen --ca --subject "CN=command CA" --key cmd-ca.key --cert cmd-ca.pem >/dev/null &&
        "$OB" keygen --role command --subject "CN=command signer" --issuer-key cmd-ca.key --issuer-cert cmd-ca.pem \
                --key cmd.key --cert cmd.pem >/dev/null &&
        "$OB" keygen --ca --subject "CN=release CA" --key rel-ca.key --cert rel-ca.pem >/dev/null &&
        "$OB" keygen --role release --subject "CN=release signer" --issuer-key rel-ca.key --issuer-cert rel-ca.pem \
                --key rel.key --cert rel.pem >/dev/null || bail "orbit-bundle keygen failed"
cp rel-ca.pem bundle-keyring/
mkdir -p app/bin && printf '#!/bin/sh\nexec sleep 1000\n' >app/bin/serve && chmod 0755 app/bin/serve
tar --format=pax --owner=0 --group=0 -cf det.tar -C app . || bail "tar"
printf '{"bundle_id": "det-1.0", "version": "1.0.0", "security_version": 1, "compatible": ["sim-board"]}\n' >det.json
head -c 100000 /dev/urandom >rootfs.ext4
printf '{"bundle_id": "fw-2.0", "version": "2.0.0", "security_version": 2, "compatible": ["sim-board"]}\n' >fw.json
"$OB" create --manifest-template det.json --image app:det=det.tar --chunk-size 65536 --key rel.key --cert rel.pem \
        -o det.obundle >/dev/null &&
        "$OB" create --manifest-template fw.json --image rootfs=rootfs.ext4 --chunk-size 65536 --key rel.key \
                --cert rel.pem -o fw.obundle >/dev/null || bail "orbit-bundle create failed"
pass "certificates, a token, signing keys, an app bundle and a firmware bundle made"

# ---- the controller ---------------------------------------------------------------------------
LOG=$D/controller.log
FAIL_CONTEXT_LOG=$LOG
PID=""
start_controller() { # [serve options]
        rm -f port
        "$OC" serve --listen 127.0.0.1:0 --port-file "$D/port" --data-dir "$D/data" \
                --cert server.pem --key server.key --node-ca node-ca.pem --release-token-file release-token \
                --command-key cmd.key --command-cert cmd.pem --bundle-keyring bundle-keyring --poll-interval 90 \
                --timeout 10 "$@" >>"$LOG" 2>&1 &
        PID=$!
        track_pid "$PID"
        wait_for "$ORBIT_TEST_TIMEOUT" test -s "$D/port" || bail "the controller did not start: $(tail -5 "$LOG")"
        URL=https://127.0.0.1:$(cat "$D/port")
}
stop_controller() {
        kill -TERM "$PID"
        wait_exit "$PID" "$ORBIT_TEST_TIMEOUT" && [ "$WAIT_RC" -eq 0 ] ||
                fail "SIGTERM stops the controller cleanly" "exit $WAIT_RC"
}

CURL=(curl -sS --max-time 20 --cacert server-ca.pem -o "$D/body" -w '%{http_code}')
as_node() { local who=$1; shift; "${CURL[@]}" --cert "$who.pem" --key "$who.key" "$@"; }
cli() { "$OC" --url "$URL" --cacert server-ca.pem --token-file release-token "$@"; }

BOOT=0123456789abcdef0123456789abcdef
METER=11111111111111111111111111111111
record() { # NODE SEQ KIND BODY
        printf '{"format":1,"key":{"node":"%s","boot_epoch":3,"boot_id":"%s","seq":%s},"priority":"normal","kind":"%s","time_usec":%s000000,"monotonic_usec":%s,"body":%s}' \
                "$1" "$BOOT" "$2" "$3" "$(date +%s)" "$2" "$4"
}
sync_node() { # NODE LAST_COMMAND_SEQ RECORDS...: one sync; HTTP code on stdout, the answer in $D/body
        local node=$1 last=$2 recs
        shift 2
        recs=$(IFS=,; echo "$*")
        printf '{"format":1,"node":"%s","boot_epoch":3,"boot_id":"%s","last_command_seq":%s,"records":[%s],"status":{"state":"running","board":"sim-board"}}' \
                "$node" "$BOOT" "$last" "$recs" >"sync-$node.json"
        as_node "$node" -X POST --data-binary @"sync-$node.json" "$URL/v1/nodes/$node/sync"
}

# orbit-controller migrate, its stderr kept for the sanitizer check at the end as well
migrate() {
        local rc
        "$OC" migrate "$@" 2>"$D/migrate.stderr"
        rc=$?
        cat "$D/migrate.stderr" >>"$D/migrate-all.stderr"
        cat "$D/migrate.stderr" >&2
        return $rc
}

# ---- a store with real content, on SQLite ----------------------------------------------------
start_controller
[ "$(sync_node node-1 0)" = 200 ] && [ "$(sync_node node-2 0)" = 200 ] || bail "first syncs: $(cat body)"
cli bundle upload det.obundle >out 2>&1 && cli bundle upload fw.obundle >out 2>&1 || bail "bundle upload: $(cat out)"
cli node group node-1 west >out 2>&1 && cli node group node-2 west >out 2>&1 || bail "node group: $(cat out)"
cli command send node-1 status.send >out 2>&1 && cli command send node-1 workload.restart name=det >out 2>&1 ||
        bail "command send: $(cat out)"
jq -n '{name: "det", exec: ["/app/bin/serve"], app: {name: "det", version: "1.0.0"}, tenant: "globex"}' >det-spec.json
cli deployment create --id det-prod --bundle det-1.0 --spec det-spec.json --target all --stages 100 >out 2>&1 ||
        bail "deployment create: $(cat out)"
cli rollout create --id fw-r1 --bundle fw-2.0 --target west --stages 50,100 >out 2>&1 &&
        cli rollout start fw-r1 >out 2>&1 || bail "rollout: $(cat out)"
# node-1: records with odd text (the NUL and the control character are JSON escapes, kept
# as they are in the record's text), usage, and the commands it was sent
ODD='{"msg":"h\u00e9 \u20ac \ud83d\udef0 \\\\ \"q\" \t tab \u0001 ctl","big":9223372036854775807,"neg":-9223372036854775808,"f":0.1}'
USAGE=$(printf '{"meter":"%s","interval":1,"start":1764930000,"end":1764930300,"duration_sec":300.0,"board_energy_j":4500.5,"entries":[{"workload":"det","deployment":"det-prod","app":"det","cpu_sec":12.25,"memory_byte_sec":3865470566400,"energy_j":3600.0,"link_bytes":1000}]}' "$METER")
R1=$(record node-1 1 log.line "$ODD")
R2=$(record node-1 2 usage.report "$USAGE")
R3=$(record node-1 3 health.report '{"temp_c":41.5,"ok":true,"none":null}')
[ "$(sync_node node-1 0 "$R1" "$R2" "$R3")" = 200 ] && [ "$(jq -c '.acked[0].seq' body)" = "[1,2,3]" ] ||
        bail "node-1's records: $(cat body)"
LAST1=$(jq '[.commands[].seq] | max' body)
[ "$LAST1" -ge 3 ] 2>/dev/null || bail "node-1 was sent no commands: $(cat body)"
R4=$(record node-1 4 command.result '{"seq":1,"status":"done","reason":""}')
[ "$(sync_node node-1 "$LAST1" "$R4")" = 200 ] && [ "$(jq '.commands | length' body)" = 0 ] ||
        bail "node-1's second sync: $(cat body)"
[ "$(sync_node node-2 0 "$(record node-2 1 log.line '{"msg":"node-2 up"}')")" = 200 ] ||
        bail "node-2's sync: $(cat body)"
LAST2=$(jq '[.commands[].seq] | max // 0' body)
cli desired show node-1 --json >/dev/null 2>&1 || bail "desired show"
pass "a store filled: 2 nodes, records, usage, commands ($LAST1 sent to node-1), a deployment, a rollout"

snapshot() { # DIR: what the operator sees, as JSON
        mkdir -p "$1"
        cli node list --json >"$1/nodes.json" &&
                cli bundle list --json >"$1/bundles.json" &&
                cli rollout list --json >"$1/rollouts.json" &&
                cli rollout status fw-r1 --json >"$1/rollout-fw-r1.json" &&
                cli deployment list --json >"$1/deployments.json" &&
                cli deployment status det-prod --json >"$1/deployment-det-prod.json" &&
                cli usage --by tenant --json >"$1/usage-tenant.json" &&
                cli usage --by node --json >"$1/usage-node.json" &&
                cli audit list --json >"$1/audit.json" || return 1
        local n
        for n in node-1 node-2; do
                cli node show "$n" --json >"$1/node-$n.json" &&
                        cli command list "$n" --json >"$1/commands-$n.json" &&
                        cli records "$n" --json >"$1/records-$n.json" &&
                        cli desired show "$n" --json >"$1/desired-$n.json" || return 1
        done
}
snapshot before 2>snapshot.err || bail "snapshot on SQLite: $(cat snapshot.err)"

# ---- refused: the source still open ----------------------------------------------------------
migrate --from "sqlite:$D/data/controller.db" --to "$(pgdb main)" >out 2>&1
rc=$?
[ "$rc" = 1 ] && grepq "is open in process $PID (a controller?): stop it first" out && [ "$(pg_rows main)" = 0 ] &&
        pass "a store the controller has open is refused, naming its process (exit 1): $(cat out)" ||
        fail "a source in use refused" "exit $rc: $(cat out)"
stop_controller
migrate --from "sqlite:$D/data/controller.db" >out 2>&1
[ $? = 2 ] && grepq 'usage: migrate --from' out && pass "migrate without --to: usage (exit 2)" ||
        fail "migrate usage" "$(cat out)"
migrate --from "$(pgdb main)" --to "$(pgdb json)" >out 2>&1
[ $? = 1 ] && grepq -- '--from: expected sqlite:PATH' out && pass "--from must be SQLite" || fail "--from kind" "$(cat out)"
migrate --from "sqlite:$D/no-such.db" --to "$(pgdb json)" >out 2>&1
[ $? = 1 ] && grepq -- "--from: $D/no-such.db: No such file or directory" out && [ ! -e "$D/no-such.db" ] &&
        pass "a --from that does not exist is refused, not made" || fail "--from missing" "$(cat out)"
# A server older than 12 (a sync sets plan_cache_mode) is refused when connecting, its version
# named: a stand-in that speaks the start of PostgreSQL's protocol and says it is 11.22.
cat >old-pg.py <<'PY'
import socket, struct
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(1)
print(srv.getsockname()[1], flush=True)
srv.settimeout(60)
c, _ = srv.accept()
c.settimeout(10)
def packet():
    n = struct.unpack("!I", c.recv(4, socket.MSG_WAITALL))[0]
    return c.recv(n - 4, socket.MSG_WAITALL)
if struct.unpack("!I", packet()[:4])[0] == 80877103:  # SSLRequest: no TLS here
    c.sendall(b"N")
    packet()                                          # the startup message
def msg(t, body):
    return t + struct.pack("!I", len(body) + 4) + body
c.sendall(msg(b"R", struct.pack("!I", 0)) + msg(b"S", b"server_version\x0011.22\x00") +
          msg(b"K", struct.pack("!II", 1, 2)) + msg(b"Z", b"I"))
try:
    c.recv(1024)  # the client's Terminate, or its close
except OSError:
    pass
PY
coproc OLDPG { exec python3 old-pg.py; }
oldpg_pid=$OLDPG_PID
read -r -t 30 OLDPG_PORT <&"${OLDPG[0]}"
migrate --from "sqlite:$D/data/controller.db" --to "postgresql://orbit@127.0.0.1:${OLDPG_PORT:-1}/x?sslmode=disable" >out 2>&1
[ $? = 1 ] && grepq "the PostgreSQL server is version 11.22: orbit-controller needs 12 or later" out &&
        pass "a PostgreSQL older than 12 is refused, its version named" || fail "old server" "$(cat out)"
kill "$oldpg_pid" 2>/dev/null
wait "$oldpg_pid" 2>/dev/null

# ---- a row that does not convert, a failure before the commit: nothing lands -----------------
for t in $TABLES; do
        printf '%s %s\n' "$t" "$(sqlite3 data/controller.db "SELECT count(*) FROM $t")"
done >sqlite-counts.txt
[ "$(awk '$2 == 0' sqlite-counts.txt | wc -l)" -le 3 ] ||
        fail "the store has content in most tables" "$(awk '$2 == 0 {print $1}' sqlite-counts.txt | xargs)"
note "SQLite rows: $(xargs <sqlite-counts.txt)"
cp data/controller.db bad.db || bail "cp"
# audit is copied late: the tables before it are in the transaction when it fails
BAD_ID=$(sqlite3 bad.db "SELECT max(id) FROM audit")
sqlite3 bad.db "UPDATE audit SET path = CAST(X'2f6e6f646573ff' AS TEXT) WHERE id = $BAD_ID" || bail "sqlite3 update"
migrate --from "sqlite:bad.db" --to "$(pgdb failed)" >out 2>&1
rc=$?
[ "$rc" = 1 ] &&
        grepq "table audit, row id=$BAD_ID, column path: text of 7 bytes with bytes that are not UTF-8 at byte 6" out &&
        grepq 'nothing was copied' out && [ "$(pg_rows failed)" = 0 ] &&
        pass "a value that is not UTF-8 fails the migration naming table, row and column; the target is empty" ||
        fail "an unconvertible row" "exit $rc, $(pg_rows failed) rows: $(cat out)"
ORBIT_MIGRATE_FAIL_BEFORE_COMMIT=1 migrate --from "sqlite:$D/data/controller.db" --to "$(pgdb failed)" >out 2>&1
rc=$?
[ "$rc" = 1 ] && grepq 'ORBIT_MIGRATE_FAIL_BEFORE_COMMIT' out && [ "$(pg_rows failed)" = 0 ] &&
        [ "$(psqlq failed "SELECT tgenabled FROM pg_trigger WHERE tgname = 'rollout_nodes_count_insert'")" = O ] &&
        pass "a failure after every table was copied: nothing lands, the triggers stay on (a failed target is taken again)" ||
        fail "a failure before the commit" "exit $rc, $(pg_rows failed) rows: $(cat out)"

# ---- values at the edges of their types ------------------------------------------------------
cp data/controller.db edges.db || bail "cp"
sqlite3 edges.db "UPDATE nodes SET usage_thinned_before = 9223372036854775807, certs_revoked_before = -9223372036854775808,
        contact_plan = CAST(X'7b2277223a22c3a9e282acf09f9bb0227d' AS BLOB) WHERE id = 'node-1';
        UPDATE usage SET cpu_sec = 1e308, memory_byte_sec = 4.9406564584124654e-324, energy_j = -1.5, link_bytes = NULL;
        UPDATE usage_reports SET board_energy_j = 0.1;
        UPDATE records SET record = '{\"stored\":\"as text, before schema 15\"}' WHERE rowid = (SELECT min(rowid) FROM records);" ||
        bail "sqlite3 update edges.db"
migrate --from "sqlite:edges.db" --to "$(pgdb edges)" >out 2>&1 || fail "migrate edges.db" "$(cat out)"
[ "$(psqlq edges "SELECT usage_thinned_before, certs_revoked_before, contact_plan FROM nodes WHERE id = 'node-1'")" = \
  "9223372036854775807|-9223372036854775808|{\"w\":\"é€🛰\"}" ] &&
        [ "$(psqlq edges "SELECT cpu_sec = 1e308, memory_byte_sec = 4.9406564584124654e-324, energy_j::text, link_bytes IS NULL FROM usage")" = "t|t|-1.5|t" ] &&
        [ "$(psqlq edges "SELECT board_energy_j = 0.1 FROM usage_reports")" = t ] &&
        [ "$(psqlq edges "SELECT convert_from(record, 'UTF8') FROM records ORDER BY rowid LIMIT 1")" = \
          '{"stored":"as text, before schema 15"}' ] &&
        [ "$(psqlq edges "SELECT upper(encode(record, 'hex')) FROM records ORDER BY rowid DESC LIMIT 1")" = \
          "$(sqlite3 edges.db "SELECT hex(record) FROM records ORDER BY rowid DESC LIMIT 1")" ] &&
        pass "int64 and double edges, NULL, UTF-8 text SQLite held as a blob, a record packed and one stored as text before schema 15, copied exactly" ||
        fail "edge values" "$(cat out; psqlq edges "SELECT usage_thinned_before, certs_revoked_before, contact_plan FROM nodes"; psqlq edges "SELECT cpu_sec, memory_byte_sec, energy_j, link_bytes FROM usage")"

# ---- the migration ---------------------------------------------------------------------------
START=$SECONDS
migrate --from "sqlite:$D/data/controller.db" --to "$(pgdb main)" >migrate.txt 2>migrate.err
rc=$?
note "migrated in $((SECONDS - START)) s:"
sed 's/^/#   /' migrate.txt
TOTAL=$(awk '{s += $2} END {print s}' sqlite-counts.txt)
[ "$rc" = 0 ] && grepq "^total  *$TOTAL  *$TOTAL\$" migrate.txt && grepq "^migrated: $TOTAL rows at schema 15" migrate.txt &&
        [ "$(grep -c DIFFERS migrate.txt)" = 0 ] && [ "$(pg_rows main)" = "$TOTAL" ] &&
        pass "migrate: $TOTAL rows, a table of counts and digests printed, every table equal" ||
        fail "migrate" "exit $rc: $(cat migrate.txt migrate.err)"
while read -r t n; do
        grepq "^$t  *$n  *$n  *[0-9a-f]\{16\}\$" migrate.txt && [ "$(psqlq main "SELECT count(*) FROM $t")" = "$n" ] ||
                fail "table $t: $n rows on both sides" "$(grep "^$t " migrate.txt)"
done <sqlite-counts.txt
migrate --json --from "sqlite:$D/data/controller.db" --to "$(pgdb json)" >migrate.json 2>migrate.err
jq -e --argjson total "$TOTAL" '.schema == 15 and .rows == $total and (.tables | length) == 18 and
        all(.tables[]; .sqlite_rows == .postgresql_rows and .match)' migrate.json >/dev/null &&
        diff <(jq -r '.tables[] | "\(.table) \(.sqlite_rows)"' migrate.json | sort) <(sort sqlite-counts.txt) >/dev/null &&
        pass "migrate --json: 18 tables, rows equal to SQLite's count(*) of each" || fail "migrate --json" "$(cat migrate.json)"
# the digests do not depend on the database a copy went into
[ "$(jq -r '.tables[] | "\(.table) \(.digest)"' migrate.json)" = "$(awk 'NR > 1 && $1 != "total" && $1 != "migrated:" {print $1, $4}' migrate.txt)" ] &&
        pass "the same digests for both copies" || fail "digests" "$(cat migrate.json)"
migrate --from "sqlite:$D/data/controller.db" --to "$(pgdb main)" >out 2>&1
rc=$?
[ "$rc" = 1 ] && grepq 'the PostgreSQL database is not empty (table nodes has rows)' out &&
        [ "$(pg_rows main)" = "$TOTAL" ] && pass "a non-empty target is refused (exit 1), left as it was: $(cat out)" ||
        fail "a non-empty target refused" "exit $rc: $(cat out)"
[ "$(psqlq main "SELECT last_value >= (SELECT max(rowid) FROM records) FROM pg_sequences WHERE sequencename LIKE 'records%'")" = t ] &&
        pass "records' rowid sequence set past the copied rows" || fail "setval on records"

# ---- the controller on PostgreSQL: the same state, sequences continued ------------------------
start_controller --database "$(pgdb main)"
snapshot after 2>snapshot.err || fail "snapshot on PostgreSQL" "$(cat snapshot.err)"
for f in before/*.json; do
        n=${f#before/}
        if diff <(jq -S . "$f") <(jq -S . "after/$n") >"diff-$n.txt"; then
                pass "the same $n on PostgreSQL"
        else
                fail "the same $n on PostgreSQL" "$(head -20 "diff-$n.txt")"
        fi
done
# node-1 again with its records already stored and one new one, having run every command
R5=$(record node-1 5 log.line '{"msg":"after the move"}')
[ "$(sync_node node-1 "$LAST1" "$R1" "$R2" "$R3" "$R4" "$R5")" = 200 ] &&
        [ "$(jq -c '[.acked[0].seq, (.commands | length)]' body)" = '[[1,2,3,4,5],0]' ] &&
        pass "node-1's records acked again, no command sent again" || fail "node-1 syncs on PostgreSQL" "$(cat body)"
cli records node-1 --json --limit 100 >recs.json 2>&1
[ "$(jq -c '[.[] | .key.seq] | sort' recs.json)" = '[1,2,3,4,5]' ] &&
        pass "records stored once: node-1 has seqs 1-5" || fail "records after the move" "$(jq -c '[.[] | .key.seq]' recs.json)"
jq -e '.[] | select(.key.seq == 1) | .body.msg == "h\u00e9 \u20ac \ud83d\udef0 \\\\ \"q\" \t tab \u0001 ctl" and
        .body.big == 9223372036854775807 and .body.neg == -9223372036854775808 and .body.f == 0.1' recs.json >/dev/null &&
        pass "the odd record's text came through byte for byte" || fail "odd record" "$(jq -c '.[] | select(.key.seq == 1)' recs.json)"
cli command send node-1 reboot >out 2>&1 && grepq "^queued command $((LAST1 + 1)) for node-1: reboot" out &&
        pass "command seqs go on after the move ($((LAST1 + 1)))" || fail "command seq after the move" "$(cat out)"
cli rollout pause fw-r1 >out 2>&1 && cli rollout resume fw-r1 >out 2>&1 || fail "rollout pause/resume" "$(cat out)"
cli audit list --json >audit.json 2>&1
[ "$(jq 'length' audit.json)" = "$(($(jq length before/audit.json) + 3))" ] &&
        [ "$(psqlq main "SELECT count(DISTINCT id) = count(*) AND max(id) = $BAD_ID + 3 FROM audit")" = t ] &&
        pass "3 new audit rows, their ids after the copied ones" ||
        fail "audit after the move" "$(psqlq main 'SELECT id, path FROM audit')"
[ "$(psqlq main "SELECT count(DISTINCT rowid) = count(*) FROM rollout_events")" = t ] &&
        [ "$(psqlq main "SELECT count(*) FROM rollout_events")" -gt "$(grep '^rollout_events ' sqlite-counts.txt | cut -d' ' -f2)" ] &&
        pass "new rollout events after the copied ones (pause, resume)" ||
        fail "rollout events after the move" "$(psqlq main 'SELECT rowid, event FROM rollout_events')"
# node-2 syncs: its rollout membership moves on, the stage counts follow (the triggers are on)
[ "$(sync_node node-2 "$LAST2")" = 200 ] || fail "node-2 syncs on PostgreSQL" "$(cat body)"
[ "$(psqlq main "SELECT count(*) FROM rollout_stage_counts c WHERE (c.pending + c.told + c.installing + c.committed
        + c.failed + c.rolled_back + c.skipped + c.overdue) <> (SELECT count(*) FROM rollout_nodes n WHERE
        n.rollout = c.rollout AND n.stage = c.stage)")" = 0 ] &&
        pass "rollout_stage_counts agree with the members after syncs on PostgreSQL" ||
        fail "stage counts" "$(psqlq main 'SELECT * FROM rollout_stage_counts')"
stop_controller
has_sanitizer_report "$D/migrate-all.stderr" &&
        fail "no sanitizer report from migrate" "$(grep -A5 -E 'Sanitizer|runtime error' migrate-all.stderr | head -20)" ||
        pass "no sanitizer report from the $(grep -c . migrate-all.stderr) lines migrate wrote to stderr"
has_sanitizer_report "$LOG" && fail "no sanitizer report" "$(grep -A5 -E 'ERROR: AddressSanitizer|runtime error' "$LOG" | head -20)" ||
        pass "no sanitizer report in the controller log"
finish
