#!/bin/bash
# The store's tests (tests/unit/test-store) against a real PostgreSQL (docs/storage.md):
# a cluster made for this run in a temporary directory, owned by an unprivileged user
# (nobody, when run as root), listening on a Unix socket only (in that directory, on a
# random port number), stopped and removed on exit, failure included.
set -u
: "${top_builddir:=.}"
TEST_STORE=$top_builddir/tests/unit/test-store

skip_all() {
        printf '1..0 # SKIP %s\n' "$*"
        exit 77
}
[ -x "$TEST_STORE" ] || skip_all "tests/unit/test-store not built"
grep -q '^#define HAVE_LIBPQ 1' "$top_builddir/config.h" || skip_all "built without PostgreSQL (libpq)"
PGBIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -n "$PGBIN" ] && [ -x "$PGBIN/initdb" ] && [ -x "$PGBIN/pg_ctl" ] ||
        skip_all "no PostgreSQL server (Debian: postgresql)"

T=$(mktemp -d /tmp/orbit-test-store-pg.XXXXXX) || exit 99
as_owner() { "$@"; }
if [ "$(id -u)" = 0 ]; then
        chown nobody: "$T" || exit 99
        as_owner() { runuser -u nobody -- "$@"; }
fi
cleanup() {
        if [ -f "$T/data/postmaster.pid" ]; then
                as_owner "$PGBIN/pg_ctl" -D "$T/data" -m immediate -w -t 30 stop >/dev/null 2>&1
        fi
        rm -rf "$T"
}
trap cleanup EXIT
trap 'exit 99' INT TERM

as_owner "$PGBIN/initdb" -D "$T/data" -U orbit -A trust -E UTF8 --no-sync >"$T/initdb.log" 2>&1 || {
        cat "$T/initdb.log"
        exit 99
}
PORT=$((20000 + RANDOM % 40000))
as_owner "$PGBIN/pg_ctl" -D "$T/data" -l "$T/server.log" -w -t 60 \
        -o "-k $T -p $PORT -c listen_addresses='' -c fsync=off -c full_page_writes=off" start >/dev/null || {
        cat "$T/server.log"
        exit 99
}
printf '# PostgreSQL %s at %s, port %s\n' "$("$PGBIN/postgres" --version | awk '{print $3}')" "$T" "$PORT"
ORBIT_TEST_DATABASE="postgresql://orbit@/postgres?host=$T&port=$PORT" "$TEST_STORE"
rc=$?
[ "$rc" = 0 ] || tail -n 20 "$T/server.log"
exit "$rc"
