#!/usr/bin/env bash
# Image-builder recipes: check packaging/yocto (bitbake layer) and packaging/buildroot
# (BR2_EXTERNAL tree) as far as a Debian machine without poky or Buildroot can.
#
#   Buildroot  Config.in parsed and evaluated by kconfiglib and by the kconfig C
#              parser (kconfig-frontends, the parser Buildroot carries) under a stub
#              of the BR2_* symbols it uses; orbit-agent.mk evaluated by GNU make in
#              a stub of Buildroot's package infrastructure, its hooks run.
#   Yocto      layer.conf and the recipe parsed line by line with bitbake's grammar
#              (the statement regexps of bb/parse/parse_py, re-stated here: bitbake is
#              not packaged in Debian 12), variables evaluated, python compiled, shell
#              functions through bash -n, the anonymous function run.
#   Both       the dependencies against configure.ac; configure run with the recipes'
#              options, make install, and every installed file mapped to a package
#              with the recipe's FILES (Yocto) / checked at Buildroot's paths.
#
# Usage: tests/packaging/test-recipes.sh [--no-build] [--keep]
#   --no-build  skip the configure/make install part (the rest takes ~2 s)
#   --keep      keep the temp dir
# Installs python3-kconfiglib and kconfig-frontends-nox with apt-get when missing (and,
# for the build part, the build dependencies through scripts/deps.sh). Exit 0 all
# passed, 1 a check failed, 77 the tools could not be had.
set -u -o pipefail

here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
# shellcheck source=tests/integration/lib.sh
. "$top_srcdir/tests/integration/lib.sh"

do_build=1
while [ $# -gt 0 ]; do
        case "$1" in
        --no-build) do_build=0 ;;
        --keep) KEEP_TESTDIR=1 ;;
        -h|--help) sed -n '2,23s/^# \{0,1\}//p' "$0"; exit 0 ;;
        *) echo "test-recipes.sh: unknown option '$1' (try --help)" >&2; exit 2 ;;
        esac
        shift
done

YOCTO=$top_srcdir/packaging/yocto
RECIPE=$YOCTO/recipes-core/orbit-agent/orbit-agent_git.bb
BR_EXT=$top_srcdir/packaging/buildroot
# Debian's interpreter: python3-kconfiglib lives in its dist-packages.
PY=/usr/bin/python3

# ---- tools ----------------------------------------------------------------------------
apt_install() {
        [ "$(id -u)" -eq 0 ] || return 1
        command -v apt-get >/dev/null 2>&1 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1 && return 0
        DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null 2>&1 || return 1
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null 2>&1
}
need=()
[ -x "$PY" ] || need+=(python3)
"$PY" -c 'import kconfiglib' 2>/dev/null || need+=(python3-kconfiglib)
command -v kconfig-conf >/dev/null 2>&1 || need+=(kconfig-frontends-nox)
command -v make >/dev/null 2>&1 || need+=(make)
if [ ${#need[@]} -gt 0 ]; then
        note "installing ${need[*]}"
        apt_install "${need[@]}" || skip_all "cannot install ${need[*]} (apt-get install ${need[*]})"
fi

setup_testdir
trap cleanup EXIT
T=$TESTDIR
started=$SECONDS

# What configure.ac requires, as "pkg-config-name" words plus "mbedtls" (probed by
# header): the recipes must carry exactly these.
configure_deps() {
        sed -n 's/^ORBIT_NEED_PKG(\[[A-Z]*\], \[\([a-z0-9_-]*\).*/\1/p' "$top_srcdir/configure.ac"
        grep -q 'mbedtls/sha256.h' "$top_srcdir/configure.ac" && echo mbedtls
}
CONF_DEPS=$(configure_deps | sort -u | tr '\n' ' ')
note "configure.ac requires: $CONF_DEPS"
[ -n "$CONF_DEPS" ] || bail "could not read the dependencies from configure.ac"

# feed NAME RC OUTPUT: turn "ok - "/"not ok - " lines into checks; a run that failed
# without saying which check (a crash) is a failure of its own.
feed() {
        local name=$1 rc=$2 out=$3 line said=0
        while IFS= read -r line; do
                case "$line" in
                "ok - "*) pass "${line#ok - }" ;;
                "not ok - "*) fail "${line#not ok - }"; said=1 ;;
                *) note "$line" ;;
                esac
        done <<<"$out"
        [ "$rc" -eq 0 ] || [ "$said" -eq 1 ] || fail "$name ran to the end" "exit $rc"
}

# ======================================================================================
# Buildroot
# ======================================================================================

# --- external tree layout ---
ext_name=$(sed -n 's/^name:[[:space:]]*//p' "$BR_EXT/external.desc")
if [[ "$ext_name" =~ ^[A-Za-z0-9_]+$ ]] &&
        grep -q "BR2_EXTERNAL_${ext_name}_PATH/package/orbit-agent/Config.in" "$BR_EXT/Config.in" &&
        grep -q "BR2_EXTERNAL_${ext_name}_PATH" "$BR_EXT/external.mk"; then
        pass "buildroot: external.desc name '$ext_name' used by Config.in and external.mk"
else
        fail "buildroot: external.desc name" "name '$ext_name' must be [A-Za-z0-9_]+ and match BR2_EXTERNAL_<name>_PATH"
fi

# --- kconfig: a stub of the Buildroot symbols the package uses ---
cat >"$T/Kconfig" <<'EOF'
mainmenu "stub of Buildroot's top-level Config.in"
config BR2_INIT_SYSTEMD
	bool "systemd init"
config BR2_USE_WCHAR
	bool "wchar"
config BR2_STATIC_LIBS
	bool "static only"
config BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17
	bool "headers >= 3.17"
config BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS
	bool "libseccomp arch"
config BR2_PACKAGE_JANSSON
	bool "jansson"
config BR2_PACKAGE_LIBCURL
	bool "libcurl"
config BR2_PACKAGE_LIBARCHIVE
	bool "libarchive"
config BR2_PACKAGE_MBEDTLS
	bool "mbedtls"
config BR2_PACKAGE_LIBSECCOMP
	bool "libseccomp"
config BR2_PACKAGE_CMOCKA
	bool "cmocka"
config BR2_PACKAGE_OPENSSL
	bool "openssl"
config BR2_PACKAGE_ZSTD
	bool "zstd"
menu "External options"
source "$BR2_EXTERNAL_ORBIT_AGENT_PATH/Config.in"
endmenu
EOF

cat >"$T/kconf.py" <<'EOF'
import os, sys, kconfiglib
kc = kconfiglib.Kconfig(sys.argv[1], warn_to_stderr=False)
failed = 0
def check(ok, what):
    global failed
    print(("ok - " if ok else "not ok - ") + "buildroot kconfiglib: " + what)
    failed += (not ok)
check(not kc.warnings, "Config.in parses without warnings" + ("" if not kc.warnings else ": " + " | ".join(kc.warnings)))
sym = kc.syms.get("BR2_PACKAGE_ORBIT_AGENT")
check(sym is not None and sym.type == kconfiglib.BOOL, "BR2_PACKAGE_ORBIT_AGENT is a bool")
if sym is None:
    sys.exit(1)
deps = ["BR2_INIT_SYSTEMD", "BR2_USE_WCHAR", "BR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17",
        "BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS"]
def reset():
    kc.unset_values()
    for n in deps:
        kc.syms[n].set_value(2)
reset()
check(sym.assignable == (0, 2), "selectable with systemd, wchar, headers 3.17, a libseccomp arch")
sym.set_value(2)
want = {"jansson": "JANSSON", "libcurl": "LIBCURL", "libarchive": "LIBARCHIVE",
        "mbedtls": "MBEDTLS", "libseccomp": "LIBSECCOMP", "cmocka": "CMOCKA", "libsystemd": None,
        "libcrypto": "OPENSSL", "libssl": "OPENSSL", "libzstd": "ZSTD"}
needed = os.environ["CONF_DEPS"].split()
for dep in needed:
    if dep not in want:
        check(False, "configure.ac needs '%s': add it to Config.in and orbit-agent.mk" % dep)
    elif want[dep]:
        check(kc.syms["BR2_PACKAGE_" + want[dep]].tri_value == 2, "selects BR2_PACKAGE_" + want[dep])
selected = {s.name for s in kc.syms.values() if s.name.startswith("BR2_PACKAGE_") and s.tri_value == 2
            and s.name not in ("BR2_PACKAGE_ORBIT_AGENT", "BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS")
            and not s.name.startswith("BR2_PACKAGE_ORBIT_AGENT_")}
extra = selected - {"BR2_PACKAGE_" + want[d] for d in needed if want.get(d)}
check(not extra, "selects nothing configure.ac does not need" + (": " + " ".join(sorted(extra)) if extra else ""))
site = kc.syms.get("BR2_PACKAGE_ORBIT_AGENT_SITE")
check(site is not None and site.type == kconfiglib.STRING and site.visibility == 2 and site.str_value,
      "BR2_PACKAGE_ORBIT_AGENT_SITE is a string with a default")
for off in deps:
    reset()
    kc.syms[off].set_value(0)
    check(sym.visibility == 0, "hidden without " + off)
    comments = [n for n in kc.node_iter() if n.item == kconfiglib.COMMENT and "orbit-agent" in n.prompt[0]
                and kconfiglib.expr_value(n.dep) == 2]
    if off != "BR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS":
        check(len(comments) == 1, "one comment says why, without " + off)
reset()
kc.syms["BR2_STATIC_LIBS"].set_value(2)
check(sym.visibility == 2, "not hidden for a static-only toolchain: cmocka is for make check only")
sys.exit(1 if failed else 0)
EOF
out=$(cd "$T" && BR2_EXTERNAL_ORBIT_AGENT_PATH=$BR_EXT CONF_DEPS=$CONF_DEPS "$PY" kconf.py Kconfig 2>&1)
feed "buildroot kconfiglib" $? "$out"

# --- the kconfig C parser (what Buildroot itself uses) ---
# kconfig 4.11 expands $VAR in a source path only through a symbol with option env;
# CONFIG_= makes it write symbols without a prefix, as Buildroot's copy does.
{ printf 'config BR2_EXTERNAL_ORBIT_AGENT_PATH\n\tstring\n\toption env="BR2_EXTERNAL_ORBIT_AGENT_PATH"\n'
  sed 1d "$T/Kconfig"; } >"$T/Kconfig.c"
sed -i '1i mainmenu "stub of Buildroot'"'"'s top-level Config.in"' "$T/Kconfig.c"
printf 'BR2_INIT_SYSTEMD=y\nBR2_USE_WCHAR=y\nBR2_TOOLCHAIN_HEADERS_AT_LEAST_3_17=y\nBR2_PACKAGE_LIBSECCOMP_ARCH_SUPPORTS=y\nBR2_PACKAGE_ORBIT_AGENT=y\n' >"$T/defconfig"
if (cd "$T" && BR2_EXTERNAL_ORBIT_AGENT_PATH=$BR_EXT KCONFIG_CONFIG=$T/.config CONFIG_='' \
        kconfig-conf --defconfig=defconfig Kconfig.c) >"$T/kconfig-conf.log" 2>&1 &&
        ! grep -qi 'warning\|error' "$T/kconfig-conf.log"; then
        missing=""
        for s in ORBIT_AGENT JANSSON LIBCURL LIBARCHIVE MBEDTLS LIBSECCOMP; do
                grep -qx "BR2_PACKAGE_$s=y" "$T/.config" || missing+=" $s"
        done
        if [ -z "$missing" ] && grep -q '^BR2_PACKAGE_ORBIT_AGENT_SITE="' "$T/.config"; then
                pass "buildroot kconfig-conf: parses, BR2_PACKAGE_ORBIT_AGENT=y selects its dependencies"
        else
                fail "buildroot kconfig-conf: selects" "missing from .config:$missing"
        fi
else
        fail "buildroot kconfig-conf: parse" "$(tr '\n' ' ' <"$T/kconfig-conf.log")"
fi

# --- orbit-agent.mk in a stub of Buildroot's package infrastructure ---
# pkgdir/pkgname as in package/pkg-utils.mk; autotools-package records what the real
# one reads. Hooks are run for real against a temp TARGET_DIR and STAGING_DIR.
mkdir -p "$T/br/target" "$T/br/staging2/usr/include/mbedtls" "$T/br/staging3/usr/include/mbedtls"
printf '#define MBEDTLS_VERSION_MAJOR  2\n#define MBEDTLS_VERSION_MINOR  28\n' >"$T/br/staging2/usr/include/mbedtls/version.h"
printf '#define MBEDTLS_VERSION_MAJOR  3\n#define MBEDTLS_VERSION_MINOR  6\n' >"$T/br/staging3/usr/include/mbedtls/version.h"
cat >"$T/br/Makefile" <<'EOF'
# Stub of Buildroot's package infrastructure: just enough to evaluate a package .mk.
SED := sed -i -e
qstrip = $(strip $(subst ",,$(1)))
pkgdir = $(dir $(lastword $(MAKEFILE_LIST)))
pkgname = $(lastword $(subst /, ,$(pkgdir)))
UPPERCASE = $(shell echo $(1) | tr 'a-z-' 'A-Z_')
KNOWN_PKGS := host-pkgconf systemd jansson libcurl libarchive libseccomp mbedtls cmocka openssl zstd
define autotools-package
PKG := $(call UPPERCASE,$(pkgname))
PKGNAME := $(pkgname)
endef
include $(BR2_EXTERNAL_ORBIT_AGENT_PATH)/external.mk
P := $(PKG)
show:
	@echo 'PKGNAME=$(PKGNAME)'
	@echo 'PKG=$(P)'
	@echo 'VERSION=$($(P)_VERSION)'
	@echo 'SITE=$($(P)_SITE)'
	@echo 'SITE_METHOD=$($(P)_SITE_METHOD)'
	@echo 'LICENSE=$($(P)_LICENSE)'
	@echo 'REDISTRIBUTE=$($(P)_REDISTRIBUTE)'
	@echo 'AUTORECONF=$($(P)_AUTORECONF)'
	@echo 'DEPENDENCIES=$(strip $($(P)_DEPENDENCIES))'
	@echo 'UNKNOWN_DEPENDENCIES=$(strip $(filter-out $(KNOWN_PKGS),$($(P)_DEPENDENCIES)))'
	@echo 'CONF_OPTS=$(strip $($(P)_CONF_OPTS))'
	@echo 'PRE_CONFIGURE_HOOKS=$(strip $($(P)_PRE_CONFIGURE_HOOKS))'
	@echo 'HAS_INIT_SYSTEMD=$(if $($(P)_INSTALL_INIT_SYSTEMD),yes,no)'
init-systemd:
	@$($(P)_INSTALL_INIT_SYSTEMD)
pre-configure:
	@$(foreach h,$($(P)_PRE_CONFIGURE_HOOKS),$($(h))$(sep))
define sep


endef
EOF
brmake() {
        make -s --no-print-directory -C "$T/br" -f Makefile BR2_EXTERNAL_ORBIT_AGENT_PATH="$BR_EXT" \
                TARGET_DIR="$T/br/target" "$@"
}
if brmake show BR2_PACKAGE_ORBIT_AGENT_SITE='"https://git.example.org/x.git"' \
        BR2_PACKAGE_ORBIT_AGENT_VERSION='"v0.1.0"' >"$T/br/show-git" 2>"$T/br/err"; then
        pass "buildroot make: orbit-agent.mk evaluates"
else
        fail "buildroot make: orbit-agent.mk evaluates" "$(cat "$T/br/err")"
fi
brval() { sed -n "s/^$1=//p" "$2"; }
g=$T/br/show-git
check "buildroot make: package name orbit-agent, variables ORBIT_AGENT_*" \
        test "$(brval PKGNAME "$g")/$(brval PKG "$g")" = "orbit-agent/ORBIT_AGENT"
check "buildroot make: git site and version from the config strings" \
        test "$(brval SITE_METHOD "$g") $(brval SITE "$g") $(brval VERSION "$g")" = "git https://git.example.org/x.git v0.1.0"
check "buildroot make: AUTORECONF = YES (a git checkout has no configure)" test "$(brval AUTORECONF "$g")" = YES
check "buildroot make: LICENSE set, not redistributable until there is one" \
        test -n "$(brval LICENSE "$g")" -a "$(brval REDISTRIBUTE "$g")" = NO
check "buildroot make: only known Buildroot packages in DEPENDENCIES" test -z "$(brval UNKNOWN_DEPENDENCIES "$g")"
br_deps=" $(brval DEPENDENCIES "$g") "
declare -A BR_NAME=([libsystemd]=systemd [jansson]=jansson [libcurl]=libcurl [libarchive]=libarchive
        [libseccomp]=libseccomp [mbedtls]=mbedtls [cmocka]=cmocka [libcrypto]=openssl [libssl]=openssl [libzstd]=zstd)
missing=""
for d in $CONF_DEPS; do
        n=${BR_NAME[$d]:-"?$d"}
        [[ "$br_deps" == *" $n "* ]] || missing+=" $n"
done
[[ "$br_deps" == *" host-pkgconf "* ]] || missing+=" host-pkgconf"
check "buildroot make: DEPENDENCIES cover configure.ac ($CONF_DEPS)" test -z "$missing"
[ -z "$missing" ] || note "missing from ORBIT_AGENT_DEPENDENCIES:$missing"
br_conf=$(brval CONF_OPTS "$g")
check "buildroot make: CONF_OPTS: no controller on a node; the unit and tmpfiles directories" \
        test "$br_conf" = "--disable-controller --with-systemdsystemunitdir=/usr/lib/systemd/system --with-tmpfilesdir=/usr/lib/tmpfiles.d"
if brmake show BR2_PACKAGE_ORBIT_AGENT_SITE='"/src/orbit-agent"' >"$T/br/show-local" 2>&1; then
        check "buildroot make: a local path means SITE_METHOD = local" \
                test "$(brval SITE_METHOD "$T/br/show-local") $(brval SITE "$T/br/show-local")" = "local /src/orbit-agent"
else
        fail "buildroot make: local site" "$(cat "$T/br/show-local")"
fi
if brmake init-systemd >"$T/br/init.log" 2>&1 &&
        printf 'enable orbit-agent.service\nenable orbit-agent-retry.timer\n' |
        cmp -s - "$T/br/target/usr/lib/systemd/system-preset/50-orbit-agent.preset"; then
        pass "buildroot make: INSTALL_INIT_SYSTEMD writes a preset enabling the service and the timer"
else
        fail "buildroot make: INSTALL_INIT_SYSTEMD" "$(cat "$T/br/init.log")"
fi
if brmake pre-configure STAGING_DIR="$T/br/staging2" >"$T/br/pre2.log" 2>&1 &&
        ! brmake pre-configure STAGING_DIR="$T/br/staging3" >"$T/br/pre3.log" 2>&1 &&
        grep -q 'mbedTLS 2.28' "$T/br/pre3.log"; then
        pass "buildroot make: the pre-configure hook accepts mbedTLS 2.x, stops on 3.x with the reason"
else
        fail "buildroot make: mbedTLS hook" "2.x: $(cat "$T/br/pre2.log") 3.x: $(cat "$T/br/pre3.log")"
fi

# ======================================================================================
# Yocto
# ======================================================================================
cat >"$T/bbcheck.py" <<'PYEOF'
# bitbake's statement grammar (bb/parse/parse_py/BBHandler.py and ConfHandler.py of
# bitbake 2.x), a small datastore and expansion: enough to read one recipe the way
# bitbake reads it and to say what it sets.
import fnmatch, os, re, subprocess, sys, json

FUNC_START = re.compile(r"(((?P<py>python(?=(\s|\()))|(?P<fr>fakeroot(?=\s)))\s*)*(?P<func>[\w\.\-\+\{\}\$:]+)?\s*\(\s*\)\s*{$")
INHERIT = re.compile(r"inherit\s+(.+)")
INHERIT_DEFER = re.compile(r"inherit_defer\s+(.+)")
EXPORT_FUNC = re.compile(r"EXPORT_FUNCTIONS\s+(.+)")
ADDTASK = re.compile(r"addtask\s+([^#\n]+)(?P<comment>#.*|.*?)")
DELTASK = re.compile(r"deltask\s+([^#\n]+)(?P<comment>#.*|.*?)")
ADDHANDLER = re.compile(r"addhandler\s+(.+)")
DEF = re.compile(r"def\s+(\w+).*:")
PY_BODY = re.compile(r"(\s+.*)|(^$)|(^#)")
PY_TAB = re.compile(r" *\t")
CONFIG = re.compile(r"""
    ^
    (?P<exp>export\s+)?
    (?P<var>[a-zA-Z0-9\-_+.${}/~:]*?)
    (\[(?P<flag>[a-zA-Z0-9\-_+.][a-zA-Z0-9\-_+.@/]*)\])?
    (?P<whitespace>\s*) (
        (?P<colon>:=) |
        (?P<lazyques>\?\?=) |
        (?P<ques>\?=) |
        (?P<append>\+=) |
        (?P<prepend>=\+) |
        (?P<predot>=\.) |
        (?P<postdot>\.=) |
        =
    ) (?P<whitespace2>\s*)
    (?!'[^']*'[^']*'$)
    (?!\"[^\"]*\"[^\"]*\"$)
    (?P<apo>['\"])
    (?P<value>.*)
    (?P=apo)
    $
    """, re.X)
INCLUDE = re.compile(r"(include|require|include_all)\s+(.+)")
EXPORT = re.compile(r"export\s+([a-zA-Z0-9\-_+.${}/~]+)$")
PY_EXPAND = re.compile(r"\$\{@((?:\{.*?\}|.)+?)\}")
UNSET = re.compile(r"unset\s+([a-zA-Z0-9\-_+.${}/~]+)(\[[^\]]+\])?$")

class ParseError(Exception):
    pass

def parse(path, conffile):
    """Statements of one file: ('set', lineno, groupdict) / ('func', lineno, name, py, body) /
    ('pydef', lineno, name, body) / ('inherit', lineno, [classes]) / ('other', lineno, text)."""
    out, residue, infunc, inpy, body = [], [], None, None, []
    lines = open(path).read().split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for lineno, raw in enumerate(lines + [None], 1):
        s = None if raw is None else raw.rstrip()
        if infunc is not None:
            if s is None:
                raise ParseError("%s:%d: function %s not closed by a '}' line" % (path, infunc[0], infunc[1]))
            if s == "}":
                out.append(("func", infunc[0], infunc[1], infunc[2], body))
                infunc, body = None, []
            else:
                body.append(s)
            continue
        if inpy is not None:
            if s is not None and PY_BODY.match(s):
                if PY_TAB.match(s):
                    raise ParseError("%s:%d: tab in python function %s" % (path, lineno, inpy[1]))
                body.append(s)
                continue
            out.append(("pydef", inpy[0], inpy[1], body))
            inpy, body = None, []
        if s is None:
            break
        if s and s[0] == "#" and residue and residue[0][0] != "#":
            raise ParseError("%s:%d: comment in the middle of a multiline expression" % (path, lineno))
        if residue and residue[0][0] == "#" and (not s or s[0] != "#"):
            raise ParseError("%s:%d: confusing multiline, partially commented expression" % (path, lineno))
        if s and s[-1] == "\\":
            residue.append(s[:-1])
            continue
        s = "".join(residue) + s
        first = lineno - len(residue)
        residue = []
        if s == "" or s[0] == "#":
            continue
        if not conffile:
            m = FUNC_START.match(s)
            if m:
                infunc = (first, m.group("func") or "__anonymous", bool(m.group("py")))
                continue
            m = DEF.match(s)
            if m:
                inpy, body = (first, m.group(1)), [s]
                continue
            m = INHERIT.match(s) or INHERIT_DEFER.match(s)
            if m:
                out.append(("inherit", first, m.group(1).split()))
                continue
            if EXPORT_FUNC.match(s) or ADDTASK.match(s) or DELTASK.match(s) or ADDHANDLER.match(s):
                out.append(("other", first, s))
                continue
        m = CONFIG.match(s)
        if m:
            g = m.groupdict()
            if g["var"] == "":
                raise ParseError("%s:%d: empty variable name: '%s'" % (path, first, s))
            if not g["whitespace"] or not g["whitespace2"]:
                raise ParseError("%s:%d: no whitespace around the assignment (bitbake warns): '%s'" % (path, first, s))
            out.append(("set", first, g))
            continue
        if INCLUDE.match(s) or EXPORT.match(s) or UNSET.match(s):
            out.append(("other", first, s))
            continue
        raise ParseError("%s:%d: unparsed line: '%s'" % (path, first, s))
    if residue:
        raise ParseError("%s: file ends inside a continued line" % path)
    return out

class SkipRecipe(Exception):
    pass

class Data:
    """Assignments with bitbake's operators; overrides in names kept as written and
    resolved for a given OVERRIDES list; flags kept apart."""
    def __init__(self):
        self.v, self.flags, self.ops = {}, {}, {}
    def set_stmt(self, g):
        var, val = g["var"], g["value"].replace('\\"', '"')
        if "${" in var:
            var = self.expand(var)
        if g["flag"]:
            self.flags.setdefault(var, {})[g["flag"]] = val
            return
        base, _, ovr = var.partition(":")
        if ovr.split(":")[-1] in ("append", "prepend", "remove"):
            self.ops.setdefault(base, []).append((ovr, val))
            return
        if g["colon"]:
            self.v[var] = self.expand(val)
        elif g["lazyques"]:
            self.v.setdefault(var, val) if var not in self.v else None
        elif g["ques"]:
            if var not in self.v:
                self.v[var] = val
        elif g["append"]:
            self.v[var] = self.v.get(var, "") + " " + val
        elif g["prepend"]:
            self.v[var] = val + " " + self.v.get(var, "")
        elif g["postdot"]:
            self.v[var] = self.v.get(var, "") + val
        elif g["predot"]:
            self.v[var] = val + self.v.get(var, "")
        else:
            self.v[var] = val
    def raw(self, name, overrides):
        val = self.v.get(name)
        for o in overrides:
            if name + ":" + o in self.v:
                val = self.v[name + ":" + o]
        if val is None and name not in self.ops:
            return None
        val = val or ""
        removes = []
        for ovr, add in self.ops.get(name, []):
            parts = ovr.split(":")
            op, conds = parts[-1], parts[:-1]
            if not all(c in overrides for c in conds):
                continue
            if op == "append":
                val += add
            elif op == "prepend":
                val = add + val
            else:
                removes.append(add)
        for r in removes:
            drop = set(self.expand(r, overrides).split())
            val = " ".join(w for w in self.expand(val, overrides).split() if w not in drop)
        return val
    def expand(self, s, overrides=(), depth=0):
        if s is None or depth > 30:
            return s
        def var(m):
            r = self.raw(m.group(1), overrides)
            return m.group(0) if r is None else self.expand(r, overrides, depth + 1)
        prev = None
        while prev != s:
            prev = s
            s = re.sub(r"\$\{([a-zA-Z0-9\-_+./~:]+?)\}", var, s)
        def py(m):
            return str(eval(m.group(1), {"d": D(self, overrides), "bb": BB, "os": os, "oe": BB}))
        return PY_EXPAND.sub(py, s)
    def get(self, name, overrides=()):
        return self.expand(self.raw(name, overrides), overrides)

class D:
    def __init__(self, data, overrides):
        self.data, self.overrides = data, overrides
    def getVar(self, name, expand=True):
        return self.data.get(name, self.overrides) if expand else self.data.raw(name, self.overrides)

class _BB:
    class parse:
        SkipRecipe = SkipRecipe
    class data:
        inherits = set()
        @staticmethod
        def inherits_class(c, d):
            return c in BB.data.inherits
    class utils:
        @staticmethod
        def contains(var, item, t, f, d):
            return t if item in (d.getVar(var) or "").split() else f
    @staticmethod
    def warn(*a):
        pass
    @staticmethod
    def fatal(msg):
        raise SystemExit(msg)
BB = _BB()

# The part of bitbake.conf the recipe's paths come from (no usrmerge).
BITBAKE_CONF = """
base_prefix = ""
prefix = "/usr"
exec_prefix = "${prefix}"
base_bindir = "${base_prefix}/bin"
base_sbindir = "${base_prefix}/sbin"
base_libdir = "${base_prefix}/lib"
nonarch_base_libdir = "${base_prefix}/lib"
bindir = "${exec_prefix}/bin"
sbindir = "${exec_prefix}/sbin"
libdir = "${exec_prefix}/lib"
libexecdir = "${prefix}/libexec"
nonarch_libdir = "${exec_prefix}/lib"
sysconfdir = "/etc"
localstatedir = "/var"
sharedstatedir = "/com"
datadir = "${prefix}/share"
includedir = "${exec_prefix}/include"
docdir = "${datadir}/doc"
mandir = "${datadir}/man"
infodir = "${datadir}/info"
systemd_unitdir = "${nonarch_base_libdir}/systemd"
systemd_system_unitdir = "${nonarch_base_libdir}/systemd/system"
SOLIBS = ".so.*"
PACKAGE_BEFORE_PN = ""
SOLIBSDEV = ".so"
FILES_SOLIBSDEV = "${base_libdir}/lib*${SOLIBSDEV} ${libdir}/lib*${SOLIBSDEV}"
WORKDIR = "/work"
STAGING_INCDIR = "/sysroot/usr/include"
PACKAGES = "${PN}-src ${PN}-dbg ${PN}-staticdev ${PN}-dev ${PN}-doc ${PN}-locale ${PACKAGE_BEFORE_PN} ${PN}"
FILES:${PN} = "${bindir}/* ${sbindir}/* ${libexecdir}/* ${libdir}/lib*${SOLIBS} ${sysconfdir} ${sharedstatedir} ${localstatedir} ${base_bindir}/* ${base_sbindir}/* ${base_libdir}/*${SOLIBS} ${base_prefix}/lib/udev ${prefix}/lib/udev ${base_libdir}/udev ${libdir}/udev ${datadir}/${BPN} ${libdir}/${BPN}/* ${datadir}/pixmaps ${datadir}/applications ${datadir}/idl ${datadir}/omf ${datadir}/sounds ${libdir}/bonobo/servers"
FILES:${PN}-dbg = "/usr/lib/debug /usr/src/debug"
FILES:${PN}-src = ""
FILES:${PN}-staticdev = "${libdir}/*.a ${base_libdir}/*.a ${libdir}/${BPN}/*.a"
FILES:${PN}-dev = "${includedir} ${FILES_SOLIBSDEV} ${libdir}/*.la ${libdir}/*.o ${libdir}/pkgconfig ${datadir}/pkgconfig ${datadir}/aclocal ${base_libdir}/*.o ${libdir}/${BPN}/*.la ${base_libdir}/*.la ${libdir}/cmake ${datadir}/cmake"
FILES:${PN}-doc = "${docdir} ${mandir} ${infodir} ${datadir}/gtk-doc ${datadir}/gnome/help"
FILES:${PN}-locale = "${datadir}/locale"
"""

def main():
    import argparse
    ap = argparse.ArgumentParser()
    ap.add_argument("layerconf")
    ap.add_argument("recipe")
    ap.add_argument("--dump", help="write the evaluated variables as JSON here")
    args = ap.parse_args()
    results = []
    def check(ok, what, why=""):
        results.append(ok)
        print(("ok - " if ok else "not ok - ") + "yocto: " + what + ("" if ok or not why else ": " + why))

    try:
        conf = parse(args.layerconf, conffile=True)
        check(True, "layer.conf parses with bitbake's conf grammar")
    except ParseError as e:
        check(False, "layer.conf parses", str(e)); conf = []
    lc = Data()
    for st in conf:
        if st[0] == "set":
            lc.set_stmt(st[2])
    lc.v["LAYERDIR"] = os.path.dirname(os.path.dirname(os.path.abspath(args.layerconf)))
    coll = (lc.get("BBFILE_COLLECTIONS") or "").split()
    check(len(coll) == 1 and all(lc.get(k + "_" + coll[0]) for k in
          ("BBFILE_PATTERN", "BBFILE_PRIORITY", "LAYERSERIES_COMPAT", "LAYERDEPENDS")),
          "layer.conf names one collection with pattern, priority, series and dependencies")
    import glob
    found = []
    for pat in (lc.get("BBFILES") or "").split():
        found += glob.glob(pat)
    check(os.path.abspath(args.recipe) in map(os.path.abspath, found), "BBFILES finds the recipe")
    deps = set((lc.get("LAYERDEPENDS_" + coll[0]) or "").split()) if coll else set()
    check({"core", "openembedded-layer", "networking-layer"} <= deps,
          "LAYERDEPENDS has core, meta-oe (jansson) and meta-networking (mbedtls)")

    base = os.path.basename(args.recipe)[:-3].split("_")
    check(len(base) <= 3 and base[0] == "orbit-agent", "file name gives PN orbit-agent")
    pn = base[0]
    try:
        stmts = parse(args.recipe, conffile=False)
        check(True, "recipe parses with bitbake's recipe grammar (%d statements)" % len(stmts))
    except ParseError as e:
        check(False, "recipe parses", str(e)); return 1

    d = Data()
    d.v["PN"], d.v["BPN"], d.v["FILE"] = pn, pn, os.path.abspath(args.recipe)
    for st in parse_text(BITBAKE_CONF):
        d.set_stmt(st[2])
    inherits, funcs, anon = [], {}, []
    for st in stmts:
        if st[0] == "set":
            d.set_stmt(st[2])
        elif st[0] == "inherit":
            inherits += st[2]
        elif st[0] == "func":
            _, lineno, name, is_py, body = st
            if name == "__anonymous":
                anon.append((lineno, body))
            else:
                funcs[name] = (lineno, is_py, body)
        elif st[0] == "pydef":
            funcs[st[2]] = (st[1], True, st[3])
    ovr = [pn]

    # Functions: python compiles, shell passes bash -n.
    for name, (lineno, is_py, body) in list(funcs.items()) + [("__anonymous", (l, True, b)) for l, b in anon]:
        text = "\n".join(body)
        if is_py:
            src = "def _f(d):\n" + "\n".join("    " + l if l.strip() else "" for l in body) if name == "__anonymous" else text
            try:
                compile(src if name != "__anonymous" else src, "%s:%d" % (args.recipe, lineno), "exec")
                check(True, "python %s compiles" % name)
            except SyntaxError as e:
                check(False, "python %s compiles" % name, str(e))
        else:
            check(name.startswith("do_") or name.startswith("pkg_"),
                  "shell function %s is a task or package script" % name)
            r = subprocess.run(["bash", "-n"], input=text, capture_output=True, text=True)
            check(r.returncode == 0, "shell %s passes bash -n" % name, r.stderr.strip())

    # Inline python in values compiles.
    bad = []
    for k, v in d.v.items():
        for expr in PY_EXPAND.findall(v or ""):
            try:
                compile(expr, k, "eval")
            except SyntaxError as e:
                bad.append("%s: %s" % (k, e))
    check(not bad, "inline ${@...} expressions compile", "; ".join(bad))

    need = {"autotools", "pkgconfig", "systemd", "features_check"}
    check(need <= set(inherits), "inherits autotools pkgconfig systemd features_check",
          "has " + " ".join(inherits))
    check("systemd" in (d.get("REQUIRED_DISTRO_FEATURES", ovr) or "").split(),
          "REQUIRED_DISTRO_FEATURES has systemd")
    check(d.get("LICENSE", ovr) == "CLOSED", "LICENSE = CLOSED until the project has one")

    names = {"libsystemd": "systemd", "jansson": "jansson", "libcurl": "curl", "libarchive": "libarchive",
             "libseccomp": "libseccomp", "mbedtls": "mbedtls", "cmocka": "cmocka",
             "libcrypto": "openssl", "libssl": "openssl", "libzstd": "zstd"}
    want = os.environ["CONF_DEPS"].split()
    unknown = [w for w in want if w not in names]
    check(not unknown, "every configure.ac dependency has a recipe name", "unknown: " + " ".join(unknown))
    depends = set((d.get("DEPENDS", ovr) or "").split())
    expect = {names[w] for w in want if w in names}
    check(depends == expect, "DEPENDS is what configure.ac needs (%s)" % " ".join(sorted(expect)),
          "DEPENDS = %s" % " ".join(sorted(depends)))

    oeconf = (d.get("EXTRA_OECONF", ovr) or "").split()
    check(oeconf == ["--disable-controller", "--with-systemdsystemunitdir=/lib/systemd/system",
                     "--with-tmpfilesdir=/usr/lib/tmpfiles.d"],
          "EXTRA_OECONF: no controller on a node; the unit and tmpfiles directories", " ".join(oeconf))
    services = (d.get("SYSTEMD_SERVICE:" + pn, ovr) or "").split()
    check(services == ["orbit-agent.service", "orbit-agent-retry.timer"],
          "SYSTEMD_SERVICE:${PN} = the service and the retry timer", " ".join(services))
    check((d.get("SYSTEMD_PACKAGES", ovr) or pn).split() == [pn], "units belong to ${PN}")
    check((d.get("CONFFILES:" + pn, ovr) or "").split() == ["/etc/orbit-agent/agent.json"],
          "CONFFILES:${PN} = /etc/orbit-agent/agent.json")
    pkgs = (d.get("PACKAGES", ovr) or "").split()
    check(pkgs[:2] == ["orbitctl", "orbit-bundle"] and pkgs[-1] == pn,
          "PACKAGES: orbitctl and orbit-bundle split off before ${PN}", " ".join(pkgs))
    check((d.get("FILES:orbit-bundle", ovr) or "").split() == ["/usr/bin/orbit-bundle"],
          "FILES:orbit-bundle = /usr/bin/orbit-bundle")
    check((d.get("FILES:orbitctl", ovr) or "").split() == ["/usr/bin/orbitctl"], "FILES:orbitctl = /usr/bin/orbitctl")

    # The anonymous function: skip until a source is set, not after.
    def run_anon(extra, inherit_ext=False):
        dd = Data(); dd.v, dd.ops = dict(d.v), {k: list(v) for k, v in d.ops.items()}
        dd.v.update(extra)
        BB.data.inherits = set(inherits) | ({"externalsrc"} if inherit_ext else set())
        for lineno, body in anon:
            src = "def _f(d):\n" + "\n".join(l if l.strip() else "" for l in body) + "\n"
            ns = {"bb": BB, "os": os}
            exec(compile(src, "anon", "exec"), ns)
            try:
                ns["_f"](D(dd, ovr))
            except SkipRecipe as e:
                return str(e)
        return None
    why = run_anon({})
    check(why is not None and "ORBIT_AGENT_GIT_URI" in why, "skipped with a reason while the source is a placeholder")
    check(run_anon({"ORBIT_AGENT_GIT_URI": "git://host/orbit-agent.git;protocol=ssh", "SRCREV": "a" * 40}) is None,
          "not skipped once ORBIT_AGENT_GIT_URI and SRCREV are set")
    check(run_anon({"EXTERNALSRC": "/src/orbit-agent"}, inherit_ext=True) is None, "not skipped with externalsrc")
    src_uri = d.get("SRC_URI", ovr)
    check(src_uri.startswith("git://") and ";branch=main" in src_uri, "SRC_URI is a git URL with a branch", src_uri)
    check(d.get("S", ovr) == "/work/git", "S = ${WORKDIR}/git without UNPACKDIR", d.get("S", ovr))
    d.v["UNPACKDIR"] = "/work/sources"
    check(d.get("S", ovr) == "/work/sources/git", "S = ${UNPACKDIR}/git with UNPACKDIR", d.get("S", ovr))
    del d.v["UNPACKDIR"]

    if args.dump:
        files = {p: (d.get("FILES:" + p, ovr) or "").split() for p in pkgs}
        json.dump({"PACKAGES": pkgs, "FILES": files, "EXTRA_OECONF": oeconf,
                   "SYSTEMD_SERVICE": services,
                   "dirs": {k: d.get(k, ovr) for k in ("prefix", "bindir", "sbindir", "sysconfdir",
                                                      "localstatedir", "datadir", "mandir", "libdir")},
                   "configure_prepend": "\n".join(funcs.get("do_configure:prepend", (0, 0, []))[2])},
                  open(args.dump, "w"), indent=1)
    return 0 if all(results) else 1

def parse_text(text):
    import tempfile
    with tempfile.NamedTemporaryFile("w", suffix=".conf", delete=False) as f:
        f.write(text)
    try:
        return parse(f.name, conffile=True)
    finally:
        os.unlink(f.name)

if __name__ == "__main__":
    sys.exit(main())
PYEOF
out=$(CONF_DEPS=$CONF_DEPS "$PY" "$T/bbcheck.py" "$YOCTO/conf/layer.conf" "$RECIPE" --dump "$T/yocto.json" 2>&1)
feed "yocto bitbake grammar checker" $? "$out"

# The grammar checker must itself refuse what bitbake refuses.
printf 'DEPENDS = "a"\nDEPENDS="b"\n' >"$T/bad1.bb"
printf 'do_install:append () {\n\ttrue\n' >"$T/bad2.bb"
printf 'FOO = "a \\\n# comment\n  b"\n' >"$T/bad3.bb"
printf 'this is not bitbake\n' >"$T/bad4.bb"
bad_ok=1
for f in bad1 bad2 bad3 bad4; do
        if "$PY" -c "import sys; sys.path.insert(0, '$T'); import bbcheck; bbcheck.parse('$T/$f.bb', False)" 2>/dev/null; then
                note "$f.bb was accepted"
                bad_ok=0
        fi
done
check "yocto: the grammar checker refuses broken recipes" test "$bad_ok" -eq 1

# The mbedTLS guard in do_configure:prepend, run as bitbake would (bbfatal exits).
"$PY" -c "import json; print(json.load(open('$T/yocto.json'))['configure_prepend'])" >"$T/prepend.sh" 2>/dev/null
guard() { # guard STAGING_INCDIR
        bash -c 'bbfatal() { echo "$*" >&2; exit 1; }; STAGING_INCDIR=$1; eval "$(sed "s/\${STAGING_INCDIR}/\$STAGING_INCDIR/g" "$2")"' \
                _ "$1" "$T/prepend.sh"
}
if guard "$T/br/staging2/usr/include" 2>/dev/null && ! guard "$T/br/staging3/usr/include" 2>"$T/guard3.log" &&
        grep -q 'PREFERRED_VERSION_mbedtls' "$T/guard3.log"; then
        pass "yocto: do_configure:prepend accepts mbedTLS 2.x, stops on 3.x naming PREFERRED_VERSION_mbedtls"
else
        fail "yocto: mbedTLS guard" "$(cat "$T/guard3.log" 2>/dev/null)"
fi

# ======================================================================================
# configure + make install with each recipe's options; the files against the packages
# ======================================================================================
if [ "$do_build" -eq 1 ]; then
        build_ok=1
        if ! (cd "$top_srcdir" && ./scripts/deps.sh build) >"$T/deps.log" 2>&1; then
                note "scripts/deps.sh build failed: build part skipped"; build_ok=0
        fi
        if [ "$build_ok" -eq 1 ]; then
                mkdir -p "$T/src"
                # The source files of the work tree (tracked, or new and not ignored), as a
                # checkout would give them: no configure, no build products.
                if ! (cd "$top_srcdir" && git ls-files -z --cached --others --exclude-standard |
                        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
                        xargs -0 cp -P --parents -t "$T/src") 2>"$T/copy.log"; then
                        fail "build: copy the source tree" "$(head -3 "$T/copy.log")"; build_ok=0
                fi
                yocto_conf=$("$PY" -c "import json; print(' '.join(json.load(open('$T/yocto.json'))['EXTRA_OECONF']))")
                if (cd "$T/src" && autoreconf -fi) >"$T/autoreconf.log" 2>&1; then
                        pass "build: autoreconf on a checkout (Yocto's autotools class, Buildroot's AUTORECONF)"
                else
                        fail "build: autoreconf" "$(tail -5 "$T/autoreconf.log")"; build_ok=0
                fi
        fi
        if [ "$build_ok" -eq 1 ]; then
                mkdir -p "$T/build"
                # Yocto: autotools.bbclass's directory options, then EXTRA_OECONF; a separate build dir.
                # shellcheck disable=SC2086
                if (cd "$T/build" && ../src/configure --prefix=/usr --exec-prefix=/usr --bindir=/usr/bin \
                        --sbindir=/usr/sbin --libexecdir=/usr/libexec --datadir=/usr/share --sysconfdir=/etc \
                        --sharedstatedir=/com --localstatedir=/var --libdir=/usr/lib --includedir=/usr/include \
                        --mandir=/usr/share/man --disable-silent-rules $yocto_conf) >"$T/configure-yocto.log" 2>&1 &&
                        ! grep -q 'unrecognized options' "$T/configure-yocto.log" &&
                        make -C "$T/build" -j"$(nproc)" >"$T/make.log" 2>&1 &&
                        make -C "$T/build" install DESTDIR="$T/image-yocto" >"$T/install-yocto.log" 2>&1; then
                        pass "build: configure with the Yocto options, make, make install"
                else
                        fail "build: Yocto configure/make/install" "see $T/*.log"; build_ok=0; KEEP_TESTDIR=1
                fi
        fi
        if [ "$build_ok" -eq 1 ]; then
                (cd "$T/image-yocto" && find . -type f -o -type l | sed 's/^\.//' | sort) >"$T/files-yocto"
                # Package split as bitbake's package.bbclass does it: each file to the first
                # package in PACKAGES whose FILES match it (a directory takes its subtree).
                "$PY" - "$T/yocto.json" "$T/files-yocto" >"$T/split.txt" <<'EOF'
import fnmatch, json, sys
y = json.load(open(sys.argv[1]))
for f in open(sys.argv[2]).read().split():
    owner = None
    for p in y["PACKAGES"]:
        if any(fnmatch.fnmatch(f, pat) or f.startswith(pat.rstrip("/") + "/") for pat in y["FILES"][p]):
            owner = p
            break
    print(owner or "UNPACKAGED", f)
EOF
                want_split="orbit-agent /etc/orbit-agent/agent.json
orbit-agent /lib/systemd/system/orbit-agent-retry.timer
orbit-agent /lib/systemd/system/orbit-agent.service
orbit-agent /usr/lib/tmpfiles.d/orbit-agent.conf
orbit-agent /usr/libexec/orbit-agent/orbit-sandbox-init
orbit-agent /usr/sbin/orbit-agent
orbit-bundle /usr/bin/orbit-bundle
orbitctl /usr/bin/orbitctl"
                got_split=$(grep -v '^orbit-agent-doc ' "$T/split.txt" | sort)
                if [ "$got_split" = "$want_split" ]; then
                        pass "yocto: every installed file lands in orbit-agent, orbitctl or orbit-bundle as in debian/ (docs in -doc)"
                else
                        fail "yocto: package split" "$(diff <(echo "$want_split") <(echo "$got_split") | tr '\n' ' ')"
                fi
                doc_n=$(grep -c '^orbit-agent-doc ' "$T/split.txt")
                check "yocto: man pages and guides in orbit-agent-doc ($doc_n files)" test "$doc_n" -ge 5
                # The units SYSTEMD_SERVICE names are where systemd.bbclass looks for them.
                missing=""
                for u in $("$PY" -c "import json; print(' '.join(json.load(open('$T/yocto.json'))['SYSTEMD_SERVICE']))"); do
                        [ -f "$T/image-yocto/lib/systemd/system/$u" ] || missing+=" $u"
                done
                check "yocto: the SYSTEMD_SERVICE units are installed in systemd_system_unitdir" test -z "$missing"

                # Buildroot: the autotools infrastructure's options, then ORBIT_AGENT_CONF_OPTS.
                # shellcheck disable=SC2086
                if (cd "$T/build" && ../src/configure --prefix=/usr --exec-prefix=/usr --sysconfdir=/etc \
                        --localstatedir=/var --program-prefix= --disable-gtk-doc --disable-gtk-doc-html \
                        --disable-doc --disable-docs --disable-documentation --with-xmlto=no --with-fop=no \
                        --disable-dependency-tracking --enable-ipv6 --disable-nls --disable-static \
                        --enable-shared $br_conf) >"$T/configure-br.log" 2>&1 &&
                        make -C "$T/build" -j"$(nproc)" >>"$T/make.log" 2>&1 &&
                        make -C "$T/build" install DESTDIR="$T/image-br" >"$T/install-br.log" 2>&1; then
                        missing=""
                        for f in usr/sbin/orbit-agent usr/libexec/orbit-agent/orbit-sandbox-init \
                                usr/bin/orbitctl etc/orbit-agent/agent.json \
                                usr/lib/systemd/system/orbit-agent.service usr/lib/systemd/system/orbit-agent-retry.timer \
                                usr/lib/tmpfiles.d/orbit-agent.conf; do
                                [ -e "$T/image-br/$f" ] || missing+=" $f"
                        done
                        check "buildroot: configure with Buildroot's options, make install puts everything at /usr/lib paths" \
                                test -z "$missing"
                        [ -z "$missing" ] || note "missing:$missing"
                        check "buildroot: the installed unit runs /usr/sbin/orbit-agent with /etc/orbit-agent/agent.json" \
                                grep -q '^ExecStart=/usr/sbin/orbit-agent --config /etc/orbit-agent/agent.json' \
                                "$T/image-br/usr/lib/systemd/system/orbit-agent.service"
                else
                        fail "buildroot: configure/make install" "see $T/configure-br.log"; KEEP_TESTDIR=1
                fi
        fi
fi

note "took $((SECONDS - started)) s"
finish
