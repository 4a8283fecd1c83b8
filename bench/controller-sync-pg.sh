#!/usr/bin/env bash
# orbit-controller on SQLite (one instance) beside PostgreSQL with one and with two instances
# (ground stations) on one database, the same simulated fleet, in one run (issue #22 item 5).
#
# A PostgreSQL cluster of its own: initdb in a temporary directory, run as nobody when
# root, a Unix socket only, a random port, Debian's defaults otherwise (fsync and
# synchronous_commit on: what a station would run), shared_buffers 256MB, max_connections
# 200. bench/controller-sync makes a fresh database on it per phase.
#
# usage: controller-sync-pg.sh BUILD_DIR [NODES...]   (default NODES: 10000)
# env: SYNCS (per node, default 4), CONCURRENCY (default 64), MODE (keepalive|reconnect|both,
# default keepalive), INSTANCES (the PostgreSQL runs, default "1 2"), SQLITE=0 (skip it),
# BENCH_DIR (temporary files; default $TMPDIR or /tmp), STATEMENTS=1 (after each PostgreSQL
# run, the statements the controllers sent, per sync: calls, server time, rows; through
# pg_stat_statements, which then costs a little of the figures), OPEN=0 (skip the open-loop
# run: two instances offered SQLite's rate, --rate, for the p99 a fleet sees at that load;
# a closed loop's p99 is its queue, CONCURRENCY over the rate), THREADS=N (each controller's
# --threads; default: one a CPU), SQLITE_THREADS=N and PG_THREADS=N (the same, for the SQLite
# station or for the PostgreSQL ones; default THREADS: each store's best on this 2-core VM was
# measured apart, docs/storage.md "Session 27"), CLIENT=curl|lean (the generator's HTTPS
# client, --client; default lean: libcurl costs two to three times its CPU a sync on the
# cores the stations share), RUNS=N (default 1: each run N times, the closed loops in
# rounds, then the open loop N times at the median of SQLite's rates; the goals read the
# medians: this machine's figures move by a third between runs)
set -euo pipefail
build=${1:?usage: controller-sync-pg.sh BUILD_DIR [NODES...]}
shift
nodes_list=${*:-10000}
bench="$build/bench/controller-sync"
[ -x "$bench" ] || { echo "controller-sync-pg: $bench: not built (make bench/controller-sync)" >&2; exit 2; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] ||
        { echo "controller-sync-pg: no PostgreSQL server (Debian: postgresql)" >&2; exit 2; }

T=$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/orbit-bench-pg.XXXXXX")
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
        chown nobody: "$T"
        as_owner() { runuser -u nobody -- "$@"; }
fi
cleanup() {
        [ -f "$T/data/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$T/data" -m fast -w -t 60 stop >/dev/null 2>&1
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
as_owner "$PGBIN/initdb" -D "$T/data" -U orbit -A trust -E UTF8 >"$T/initdb.log" 2>&1 ||
        { cat "$T/initdb.log"; exit 1; }
PORT=$((20000 + RANDOM % 40000))
as_owner "$PGBIN/pg_ctl" -D "$T/data" -l "$T/server.log" -w -t 60 \
        -o "-k $T -p $PORT -c listen_addresses='' -c shared_buffers=256MB -c max_connections=200 \
            ${STATEMENTS:+-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all}" \
        start >/dev/null ||
        { cat "$T/server.log"; exit 1; }
DB="postgresql://orbit@/postgres?host=$T&port=$PORT"
echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}') at $T (fsync on, synchronous_commit on)"

psql_q() { "$PGBIN/psql" -X -q -A -F ' | ' -d "$DB" -c "$1"; }
[ -z "${STATEMENTS:-}" ] || psql_q "CREATE EXTENSION pg_stat_statements" >/dev/null
statements() { # the statements of the run just done, by server time, per sync
        local syncs
        syncs=$(sed -n 's/.* syncs=\([0-9]*\).*/\1/p' "$T/out" | tail -n 1)
        echo "  statements per sync ($syncs syncs): calls, server ms, rows, the statement"
        psql_q "SELECT round(calls::numeric / $syncs, 2), round((total_exec_time / $syncs)::numeric, 3),
                       round(rows::numeric / $syncs, 2), left(regexp_replace(query, '\s+', ' ', 'g'), 110)
                FROM pg_stat_statements WHERE dbid <> (SELECT oid FROM pg_database WHERE datname = 'postgres')
                ORDER BY total_exec_time DESC LIMIT 30" | tail -n +2 | sed 's/^/    /'
        psql_q "SELECT 'all: ' || round(sum(calls)::numeric / $syncs, 1) || ' statements, ' ||
                       round((sum(total_exec_time) / $syncs)::numeric, 3) || ' server ms per sync'
                FROM pg_stat_statements WHERE dbid <> (SELECT oid FROM pg_database WHERE datname = 'postgres')" |
                tail -n +2 | sed 's/^/  /'
        psql_q "SELECT pg_stat_statements_reset()" >/dev/null
}

results=$T/results
: >"$results"
run() { # LABEL ARGS...
        local label=$1
        shift
        echo "==> $label"
        "$bench" --syncs "${SYNCS:-4}" --concurrency "${CONCURRENCY:-64}" --mode "${MODE:-keepalive}" \
                ${run_threads:+--controller-threads "$run_threads"} ${CLIENT:+--client "$CLIENT"} "$@" \
                ${BENCH_DIR:+"$BENCH_DIR"} | tee "$T/out" | sed -n '/^throughput/,/^goals/p' | grep -v '^RESULT\|^goals'
        grep '^RESULT' "$T/out" >>"$results"
        grep -E '^  (PASS|MISS)' "$T/out" || true
        echo
}
runs=${RUNS:-1}
sqlite_threads=${SQLITE_THREADS:-${THREADS:-}}
pg_threads=${PG_THREADS:-${THREADS:-}}
run_threads=
for ((round = 1; round <= runs; round++)); do
        for n in $nodes_list; do
                run_threads=$sqlite_threads
                [ "${SQLITE:-1}" = 0 ] || run "$n nodes: SQLite, one instance (run $round of $runs)" --nodes "$n"
                run_threads=$pg_threads
                for k in ${INSTANCES:-1 2}; do
                        run "$n nodes: PostgreSQL, $k instance(s) (run $round of $runs)" --nodes "$n" --database "$DB" \
                                --instances "$k"
                        [ -z "${STATEMENTS:-}" ] || statements
                done
        done
done

field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" <<<"$2"; }
# median FIELD PATTERN: the median of FIELD over the results whose line matches PATTERN
# (grep -E), the lower middle of an even count; empty when none.
median() {
        { grep -E -- "$2" "$results" || true; } | sed -n "s/.* $1=\([^ ]*\).*/\1/p" | sort -g |
                awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)] }'
}

# The goal's p99: two instances offered the syncs/s one instance reached on SQLite.
if [ "${OPEN:-1}" != 0 ]; then
        run_threads=$pg_threads
        for ((round = 1; round <= runs; round++)); do
                for n in $nodes_list; do
                        for mode in keepalive reconnect; do
                                rate=$(median syncs_per_s " store=sqlite instances=1 mode=$mode nodes=$n rate=0 ")
                                [ -n "$rate" ] && grep -q " store=postgresql instances=2 mode=$mode nodes=$n rate=0 " "$results" ||
                                        continue
                                run "$n nodes: PostgreSQL, 2 instances, offered $rate syncs/s (SQLite's), $mode (run $round of $runs)" \
                                        --nodes "$n" --database "$DB" --instances 2 --mode "$mode" --rate "$rate"
                        done
                done
        done
fi

echo "==> side by side (keep-alive connections unless MODE says otherwise)"
printf '  %-7s %-11s %-3s %-10s %7s %9s %8s %8s %8s %8s %8s %10s %7s\n' nodes store ins mode offered syncs/s "p99 ms" \
        "ctl ms" "db ms" "gen ms" "B/rec" "records" errors
while read -r line; do
        printf '  %-7s %-11s %-3s %-10s %7s %9s %8s %8s %8s %8s %8.0f %10s %7s\n' "$(field nodes "$line")" \
                "$(field store "$line")" "$(field instances "$line")" "$(field mode "$line")" \
                "$(field rate "$line" | sed 's/^0$/max/')" \
                "$(field syncs_per_s "$line")" "$(field p99_ms "$line")" "$(field ctl_ms "$line")" \
                "$(field db_ms "$line")" "$(field gen_ms "$line")" \
                "$(awk -v b="$(field db_bytes "$line")" -v r="$(field records "$line")" 'BEGIN { print (r > 0 ? b / r : 0) }')" \
                "$(field records "$line")/$(field records_want "$line")" "$(field errors "$line")"
done <"$results"
echo "  (offered: syncs/s offered in an open loop, max: a closed loop, as fast as the stations answer;"
echo "   ctl ms, db ms, gen ms: CPU per sync of the controllers, summed, of the PostgreSQL server and"
echo "   of the load generator;"
echo "   B/rec: the database's size after the run over the records it holds, indexes included)"

echo
if [ "$runs" -gt 1 ]; then
        echo "==> medians of $runs runs"
        printf '  %-7s %-11s %-3s %-10s %7s %9s %8s %8s %8s %8s\n' nodes store ins mode offered syncs/s "p99 ms" \
                "ctl ms" "db ms" "gen ms"
        for n in $nodes_list; do
                for mode in keepalive reconnect; do
                        for what in "sqlite 1 rate=0 " "postgresql 1 rate=0 " "postgresql 2 rate=0 " "postgresql 2 rate=[1-9]"; do
                                read -r st ins rt <<<"$what"
                                pat=" store=$st instances=$ins mode=$mode nodes=$n $rt"
                                grep -qE -- "$pat" "$results" || continue
                                off=$(median rate "$pat")
                                printf '  %-7s %-11s %-3s %-10s %7s %9s %8s %8s %8s %8s\n' "$n" "$st" "$ins" "$mode" \
                                        "$([ "$off" = 0 ] && echo max || echo "$off")" "$(median syncs_per_s "$pat")" \
                                        "$(median p99_ms "$pat")" "$(median ctl_ms "$pat")" "$(median db_ms "$pat")" \
                                        "$(median gen_ms "$pat")"
                        done
                done
        done
        echo "  (each column's median on its own: a line need not be one run)"
        echo
fi
echo "goals (issue #22 item 5)$([ "$runs" -gt 1 ] && echo ", medians of $runs runs")"
for n in $nodes_list; do
        for mode in keepalive reconnect; do
                sq=$(grep " store=sqlite instances=1 mode=$mode nodes=$n rate=0 " "$results" | tail -n 1 || true)
                pg2=$(grep " store=postgresql instances=2 mode=$mode nodes=$n rate=0 " "$results" | tail -n 1 || true)
                [ -n "$sq" ] && [ -n "$pg2" ] || continue
                a=$(median syncs_per_s " store=sqlite instances=1 mode=$mode nodes=$n rate=0 ")
                b=$(median syncs_per_s " store=postgresql instances=2 mode=$mode nodes=$n rate=0 ")
                open=" store=postgresql instances=2 mode=$mode nodes=$n rate=[1-9]"
                if grep -qE -- "$open" "$results"; then
                        p99=$(median p99_ms "$open")
                        at="offered $(median rate "$open") syncs/s"
                else
                        p99=$(median p99_ms " store=postgresql instances=2 mode=$mode nodes=$n rate=0 ")
                        at="closed loop: its queue"
                fi
                verdict=$(awk -v a="$a" -v b="$b" -v p="$p99" 'BEGIN { print (b >= a && p < 250) ? "PASS" : "MISS" }')
                echo "  $verdict $n nodes, $mode: two instances on PostgreSQL $b syncs/s vs one on SQLite $a syncs/s (want >=); p99 $p99 ms at $at (want < 250 ms)"
                # What the machine allows: every process of the run shares its CPUs, so a
                # closed loop makes at most CPUs x 1000 / (the CPU ms a sync costs in all);
                # with THREADS, the stations' threads at most threads x 1000 / their CPU ms.
                for run in "$sq" "$pg2"; do
                        awk -v cpus="$(nproc)" -v s="$(field store "$run")" -v k="$(field instances "$run")" \
                                -v c="$(field ctl_ms "$run")" -v d="$(field db_ms "$run")" -v g="$(field gen_ms "$run")" \
                                -v got="$(field syncs_per_s "$run")" \
                                -v threads="$([ "$(field store "$run")" = sqlite ] && echo "${sqlite_threads:-0}" || echo "${pg_threads:-0}")" 'BEGIN {
                                        t = c + d + g
                                        if (t <= 0)
                                                exit
                                        bound = cpus * 1000 / t
                                        why = sprintf("%d CPUs", cpus)
                                        if (threads > 0 && c > 0 && k * threads * 1000 / c < bound) {
                                                bound = k * threads * 1000 / c
                                                why = sprintf("%d station thread(s)", k * threads)
                                        }
                                        printf "    %s, %d instance(s): %.3f CPU ms a sync in all (controllers %.3f, database %.3f, generator %.3f): at most %.0f syncs/s (%s); reached %s\n", s, k, t, c, d, g, bound, why, got
                                }'
                done
        done
done
