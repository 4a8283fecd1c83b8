#!/usr/bin/env bash
# Train the zstd dictionary of the controller link (docs/protocol.md, "Compression") on
# records the controller stored: each record, compact JSON as a node sends it, is one
# sample for `zstd --train`. The same file goes to orbit-controller --zstd-dictionary and
# to every node's link.zstd_dictionary; the two ends know it by its dictionary id (random,
# written in the file), so a new dictionary never gets mixed up with an old one.
#
#   zstd-dictionary.sh [--size BYTES] [--limit N] OUT NODE... [-- ORBIT-CONTROLLER-OPTIONS]
#
# e.g. zstd-dictionary.sh link.dict sat-1 sat-2 -- --url https://ground:8443 --token-file t
# Needs orbit-controller (or $ORBIT_CONTROLLER), jq and zstd.
set -euo pipefail

size=32768 # a record of health compresses some 4x with 16-32 KiB, hardly better with more
limit=1000
while [ $# -gt 0 ]; do
        case "$1" in
        --size) size=$2; shift 2 ;;
        --limit) limit=$2; shift 2 ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) break ;;
        esac
done
[ $# -ge 2 ] || { echo "usage: zstd-dictionary.sh [--size BYTES] [--limit N] OUT NODE... [-- OPTIONS]" >&2; exit 2; }
out=$1
shift
nodes=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
        nodes+=("$1")
        shift
done
[ $# -gt 0 ] && shift # the "--"
oc=${ORBIT_CONTROLLER:-orbit-controller}
for t in "$oc" jq zstd; do
        command -v "$t" >/dev/null 2>&1 || { echo "zstd-dictionary.sh: $t not found" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for node in "${nodes[@]}"; do
        "$oc" "$@" records "$node" --limit "$limit" --json >"$tmp/records.json" ||
                { echo "zstd-dictionary.sh: cannot read the records of $node" >&2; exit 1; }
        mkdir -p "$tmp/samples/$node"
        # one file per record, its compact JSON without the newline, as it goes in a sync
        jq -c '.[]' "$tmp/records.json" | (cd "$tmp/samples/$node" && split -l 1 -a 5 - r)
        for f in "$tmp/samples/$node"/r*; do
                [ -e "$f" ] || continue
                head -c -1 "$f" >"$f.json" && rm "$f"
        done
done
n=$(find "$tmp/samples" -type f | wc -l)
[ "$n" -ge 20 ] || { echo "zstd-dictionary.sh: $n records: too few to train on (20 at least)" >&2; exit 1; }
zstd -q --train -r "$tmp/samples" --maxdict="$size" -o "$out"
echo "zstd-dictionary.sh: $out: $(stat -c %s "$out") bytes from $n records, dictionary id $(
        od -An -tu4 -j4 -N4 "$out" | tr -d ' ')"
