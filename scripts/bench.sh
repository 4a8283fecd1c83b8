#!/usr/bin/env bash
# Benchmarks (figures, not pass/fail tests): builds what they need and prints the results.
# Run as root on an otherwise quiet machine; each compares with its baseline in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
scripts/deps.sh build bench
build="$top/_build/plain"
if [ ! -f "$build/Makefile" ]; then
        [ -x configure ] || ./autogen.sh
        mkdir -p "$build"
        (cd "$build" && "$top/configure" -q)
fi
make -s -C "$build" -j"$(nproc 2>/dev/null || echo 2)" orbit-agent orbitctl bench/sandbox-start bench/update-install bench/sha256-buffers \
        orbit-controller orbit-bundle bench/controller-sync bench/rollout-drive bench/usage-sum
echo "==> sandbox start latency (orbit-agent vs bubblewrap, interleaved)"
"$build/bench/sandbox-start" "${RUNS:-200}"
echo
echo "==> agent idle RSS and CPU: 20 workloads and 16 thermal zones vs an empty node"
BUILD="$build" DURATION="${DURATION:-60}" bench/agent-idle.sh
echo
echo "==> update install throughput (engine vs sha256sum + cp + fdatasync; fresh and 5% delta)"
"$build/bench/update-install" --size-mib "${INSTALL_MIB:-512}" ${BENCH_DIR:+"$BENCH_DIR"}
echo
echo "==> multi-buffer SHA-256: one core, one stream vs four; the check before writing with each (512 MiB)"
"$build/bench/sha256-buffers"
echo
echo "==> update install: orbit-agent vs RAUC vs cp + fdatasync (daemons and CLIs, cache dropped, medians)"
BUILD="$build" SIZES="${RAUC_SIZES:-256 512}" RUNS="${RAUC_RUNS:-3}" bench/update-vs-rauc.sh
echo
echo "==> controller sync: a simulated fleet against orbit-controller (bytes per sync, syncs/s, p99, DB size)"
for n in ${SYNC_NODES:-1000 10000}; do
        "$build/bench/controller-sync" --nodes "$n" --syncs "${SYNC_SYNCS:-20}" --concurrency "${SYNC_CONCURRENCY:-64}" \
                ${BENCH_DIR:+"$BENCH_DIR"}
        echo
done
echo "==> controller sync: SQLite (one instance) beside PostgreSQL with one and two instances on one database"
# SQLite's station at one server thread, the PostgreSQL stations at the controller's default
# (one a CPU): each store's best on a 2-core machine (docs/storage.md, "Session 27")
SQLITE_THREADS=${SQLITE_THREADS:-1} bench/controller-sync-pg.sh "$build" ${PG_SYNC_NODES:-10000}
echo
echo "==> controller sync with 10 rollouts covering 10,000 nodes (over HTTPS, what driving rollouts adds to a sync)"
"$build/bench/controller-sync" --nodes 10000 --syncs 4 --rollouts 10 --rollout-syncs "${ROLLOUT_SYNCS:-2000}" \
        --mode keepalive --concurrency 16 ${BENCH_DIR:+"$BENCH_DIR"}
echo
echo "==> rollout driving per sync in the store: 10 rollouts of 1,000 nodes (baseline) vs 10 of 10,000: O(memberships) makes them alike"
"$build/bench/rollout-drive" --rollouts 10 --members 1000 --syncs "${DRIVE_SYNCS:-1000}"
"$build/bench/rollout-drive" --rollouts 10 --members 10000 --syncs "${DRIVE_SYNCS:-1000}"
echo
echo "==> GET /v1/usage in the store over a million usage rows: schema 13's query (baseline) vs store_usage_sum"
"$build/bench/usage-sum" --runs "${USAGE_RUNS:-3}" ${BENCH_DIR:+"$BENCH_DIR"}
echo
echo "==> one contact pass over link-emu (256 kbit/s, RTT 1.5 s, 10% loss, Reno): the link improvements on and off"
bench/link-pass.sh --pass-sec "${LINK_PASS_SEC:-600}" "$build"
