# shellcheck shell=bash
# Shared by scripts/board.sh and tests/packaging/test-deb.sh (sourced, not run).
#
# host_mirror SUITE: the mirror this machine's apt uses for SUITE, read from its own
# sources (deb822 files first, then sources.list), so no mirror is hard-wired anywhere.
host_mirror() {
        local suite=$1 f
        for f in /etc/apt/sources.list.d/*.sources; do
                [ -f "$f" ] || continue
                awk -v s="$suite" '
                        /^[[:space:]]*$/ { if (t ~ /deb( |$)/ && (" " su " ") ~ (" " s " ") && u != "") { print u; exit } t = su = u = ""; next }
                        /^Types:/ { t = $0; sub(/^Types:[[:space:]]*/, "", t) }
                        /^Suites:/ { su = $0; sub(/^Suites:[[:space:]]*/, "", su) }
                        /^URIs:/ { u = $2 }
                        END { if (t ~ /deb( |$)/ && (" " su " ") ~ (" " s " ") && u != "") print u }' "$f"
        done | head -1 | grep . && return 0
        cat /etc/apt/sources.list 2>/dev/null |
                awk -v s="$suite" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i + 1) == s) { print $i; exit } }'
}
