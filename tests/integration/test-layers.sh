#!/usr/bin/env bash
# The layering, checked on the sources: every project header is included by its module
# path ("lib/log.h"), and a module includes only the modules below it (docs/architecture.md):
#   lib <- runtime, health, update <- proto (with update/ for signatures) <- agent, controller
# tools/ take what they link. No root, no build: it reads the tree.
set -uo pipefail
top=${top_srcdir:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$top" || exit 1
passed=0 failed=0
pass() { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "not ok - $1"; printf '#   %s\n' "${@:2}"; failed=$((failed + 1)); }

declare -A allowed=(
        [lib]="lib"
        [runtime]="lib runtime"
        [health]="lib health"
        [update]="lib update"
        [proto]="lib update proto"
        [agent]="lib runtime health update proto agent"
        [controller]="lib update proto controller"
        [tools]="lib update proto"
)
modules="lib runtime health update proto agent controller"

for from in lib runtime health update proto agent controller tools; do
        [ -d "$from" ] || continue
        bad=""
        n=0
        while IFS=: read -r file inc; do
                n=$((n + 1))
                dir=${inc%%/*}
                case " ${allowed[$from]} " in
                *" $dir "*) ;;
                *) bad+="$file includes $inc; " ;;
                esac
        done < <(grep -H -o -E '^#[[:space:]]*include[[:space:]]+"[a-z]+/[^"]+"' "$from"/*.[ch] 2>/dev/null |
                sed -E 's/:#[[:space:]]*include[[:space:]]+"/:/; s/"$//')
        if [ -z "$bad" ]; then
                pass "$from/ includes only from: ${allowed[$from]} ($n includes)"
        else
                fail "$from/ reaches a module it may not" "$bad"
        fi
done

# No header by its bare name: a bare name would find a module header only through an -I
# of its directory, which is how an upward include used to hide.
bare=""
for m in $modules tools; do
        [ -d "$m" ] || continue
        for f in "$m"/*.[ch]; do
                while read -r h; do
                        for d in $modules; do
                                [ -e "$d/$h" ] && bare+="$f: \"$h\" (is $d/$h); "
                        done
                done < <(sed -n -E 's/^#[[:space:]]*include[[:space:]]+"([^"/]+)".*/\1/p' "$f")
        done
done
[ -z "$bare" ] && pass "every project header is included by its module path" || fail "headers included by bare name" "$bare"

# And the build puts no module directory on the include path.
if grep -n -E -- '-I\$\(top_srcdir\)/(lib|runtime|health|update|proto|agent|controller)\b' Makefile.am ./*/*.am tests/*/*.am 2>/dev/null; then
        fail "a module directory is on the include path (above)"
else
        pass "only the top of the tree is on the include path"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
