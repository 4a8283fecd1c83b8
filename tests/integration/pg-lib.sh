# A PostgreSQL server of a test's own (docs/storage.md, "Tests"): a cluster made in a
# temporary directory by initdb, owned by an unprivileged user (nobody, when run as root),
# listening on a Unix socket only (in that directory, on a random port number), stopped
# and removed by pg_cleanup. Sourced by test-store-postgresql.sh and test-stations.sh.
# shellcheck shell=bash

# pg_find: PGBIN, the newest server's binaries; 1 when there are none.
pg_find() {
        PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
        [ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ]
}

pg_as_owner() { "$@"; }

# pg_logged LOG CMD...: CMD run as the cluster's owner, its output in LOG, shown on failure.
pg_logged() {
        local log=$1
        shift
        pg_as_owner "$@" >"$log" 2>&1 || {
                cat "$log" >&2
                return 1
        }
}

# pg_server DATADIR PORT [OPTIONS]: a server of DATADIR started on PORT, its socket in
# PG_DIR, its log in DATADIR.log.
pg_server() {
        pg_logged "$1.ctl.log" "$PGBIN/pg_ctl" -D "$1" -l "$1.log" -w -t 60 \
                -o "-k $PG_DIR -p $2 -c listen_addresses='' -c fsync=off -c full_page_writes=off ${3:-}" start ||
                { cat "$1.log" >&2; return 1; }
}

# pg_start: PG_DIR (a new temporary directory), the server started there, PG_URL the
# address of its database "postgres" as role orbit; 1 (the logs shown) on failure.
# PG_OPTS: more server options (-c name=value ...), given on its command line only.
pg_start() {
        PG_DIR=$(mktemp -d /tmp/orbit-test-pg.XXXXXX) || return 1
        if [ "$(id -u)" = 0 ]; then
                chown nobody: "$PG_DIR" || return 1
                pg_as_owner() { runuser -u nobody -- "$@"; }
        fi
        pg_logged "$PG_DIR/initdb.log" "$PGBIN/initdb" -D "$PG_DIR/data" -U orbit -A trust -E UTF8 --no-sync ||
                return 1
        PG_PORT=$((20000 + RANDOM % 40000))
        pg_server "$PG_DIR/data" "$PG_PORT" "${PG_OPTS:-}" || return 1
        PG_URL="postgresql://orbit@/postgres?host=$PG_DIR&port=$PG_PORT"
        printf '# PostgreSQL %s at %s, port %s\n' "$("$PGBIN/postgres" --version | awk '{print $3}')" \
                "$PG_DIR" "$PG_PORT"
}

# pg_standby_start: a streaming standby of the server of pg_start (pg_basebackup -R), in
# $PG_DIR/standby on port PG_PORT2 (the same socket directory); PG_URL2 its address,
# PG_URL_BOTH the address of both that finds the one that writes (libpq's host list and
# target_session_attrs=read-write, as a station's docs/operations.md says). Its options
# are not the primary's PG_OPTS (a synchronous_standby_names there would make the standby,
# once promoted, wait for a standby of its own).
pg_standby_start() {
        pg_logged "$PG_DIR/basebackup.log" "$PGBIN/pg_basebackup" -D "$PG_DIR/standby" -R -X stream \
                --no-sync -d "host=$PG_DIR port=$PG_PORT user=orbit" || return 1
        PG_PORT2=$((PG_PORT + 1))
        pg_server "$PG_DIR/standby" "$PG_PORT2" || return 1
        PG_URL2="postgresql://orbit@/postgres?host=$PG_DIR&port=$PG_PORT2"
        PG_URL_BOTH="postgresql://orbit@/postgres?host=$PG_DIR,$PG_DIR&port=$PG_PORT,$PG_PORT2&target_session_attrs=read-write"
}

# pg_sql SQL: its rows, unaligned, fields split by |.
pg_sql() {
        "$PGBIN/psql" -X -q -At -v ON_ERROR_STOP=1 -d "$PG_URL" -c "$1"
}

# pg_cleanup: the server stopped (immediately) and its directory removed; any time.
pg_cleanup() {
        [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ] || return 0
        local d
        for d in "$PG_DIR/data" "$PG_DIR/standby"; do
                [ -f "$d/postmaster.pid" ] && pg_as_owner "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
        done
        rm -rf "$PG_DIR"
}
