#!/bin/bash
# The store's tests (tests/unit/test-store) against a real PostgreSQL (docs/storage.md):
# a cluster made for this run in a temporary directory, owned by an unprivileged user
# (nobody, when run as root), listening on a Unix socket only (in that directory, on a
# random port number), stopped and removed on exit, failure included (pg-lib.sh).
set -u
: "${top_builddir:=.}"
: "${top_srcdir:=.}"
TEST_STORE=$top_builddir/tests/unit/test-store
. "$top_srcdir/tests/integration/pg-lib.sh"

skip_all() {
        printf '1..0 # SKIP %s\n' "$*"
        exit 77
}
[ -x "$TEST_STORE" ] || skip_all "tests/unit/test-store not built"
grep -q '^#define HAVE_LIBPQ 1' "$top_builddir/config.h" || skip_all "built without PostgreSQL (libpq)"
pg_find || skip_all "no PostgreSQL server (Debian: postgresql)"

trap pg_cleanup EXIT
trap 'exit 99' INT TERM
pg_start || exit 99
ORBIT_TEST_DATABASE=$PG_URL "$TEST_STORE"
rc=$?
[ "$rc" = 0 ] || tail -n 20 "$PG_DIR/data.log"
exit "$rc"
