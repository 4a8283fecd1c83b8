SUMMARY = "Node agent for compute boards in orbit"
DESCRIPTION = "orbit-agent runs sandboxed workloads, updates the board A/B from \
signed bundles, guards heat and power, and syncs with a cluster controller on \
the ground over a delay-tolerant link. orbitctl is its local command-line client."
HOMEPAGE = "https://git.example.org/orbit/orbit-agent"
SECTION = "admin"

# TODO(license): orbit-agent has no license yet. CLOSED keeps the image build honest
# (nothing claims a license that does not exist); once the project picks one, set
# LICENSE to its SPDX id and LIC_FILES_CHKSUM = "file://LICENSE;md5=...".
LICENSE = "CLOSED"

# The same build dependencies as configure.ac (and debian/control):
#   systemd     libsystemd >= 246         (openembedded-core)
#   jansson     jansson >= 2.13           (meta-oe)
#   curl        libcurl >= 7.74           (openembedded-core)
#   libarchive  libarchive >= 3.4         (openembedded-core)
#   libseccomp  libseccomp >= 2.5         (openembedded-core)
#   openssl     libcrypto: SHA-256 with the CPU's SHA instructions (lib/sha256.c); libssl:
#               the TLS context of curl's OpenSSL checks certificates at trusted time
#   mbedtls     mbedTLS 2.28 LTS, headers and -lmbedx509 -lmbedcrypto
#               (meta-networking; see PREFERRED_VERSION_mbedtls in conf/layer.conf)
#   zstd        libzstd >= 1.4.0: the link's compressed bodies (openembedded-core)
# cmocka is for `make check` only: configure warns without it, the image needs none.
# The sandbox's init (${libexecdir}/orbit-agent/orbit-sandbox-init, in ${PN} through
# the default FILES) is linked statically against the C library's libc.a, which the
# recipe sysroot holds; configure stops with a message where it cannot link statically.
DEPENDS = "systemd jansson curl libarchive libseccomp mbedtls openssl zstd"

# A flight image: libcurl and libarchive with only what the agent uses. The agent reads
# bundles as plain tar (no compression filter, no xattr/ACL, no xar/zip: update/bundle.c)
# and speaks HTTPS only (CURLOPT_PROTOCOLS_STR "https": agent/link.c). Measured on the
# Debian 12 build (bench/agent-idle.sh, README "Agent footprint"): the libraries only
# libarchive pulls in (libxml2 with libicu and libstdc++, liblzma, liblz4, libbz2,
# libacl) are 1.9 MiB of the loaded agent's 14.8 MiB RSS, and those only libcurl pulls
# in (GnuTLS via librtmp, Kerberos, LDAP, libssh2, nghttp2, libidn2, libpsl, brotli)
# 3.3 MiB beside libcurl and libssl themselves. In local.conf or the distro config
# (option names of openembedded-core's libarchive and curl recipes):
#   PACKAGECONFIG:pn-libarchive = ""
#       no zlib bz2 xz lzo lz4 zstd, no libxml2/expat (xar), no nettle/openssl/mbedtls
#       (zip encryption, mtree digests), no acl xattr: tar reading is always built in
#   PACKAGECONFIG:pn-curl = "openssl ipv6 threaded-resolver"
#       HTTP(S) over the OpenSSL the agent already maps (libcrypto, lib/sha256.c); no
#       gnutls/mbedtls second backend, no krb5/ldap/ldaps/libssh2/rtmpdump/nghttp2/
#       libidn/brotli/zstd/zlib/proxy/verbose, none of dict gopher imap pop3 rtsp smb
#       smtp telnet tftp mqtt; the curl tool itself stays out of the image

# ExecReload= runs /bin/kill (Debian: procps). procps provides it through
# update-alternatives; busybox's kill would do as well.
RDEPENDS:${PN} = "procps"
RRECOMMENDS:${PN} = "orbitctl"

# Source. Set ORBIT_AGENT_GIT_URI (and SRCREV) in local.conf or the distro config:
#   ORBIT_AGENT_GIT_URI = "git://git.example.org/orbit/orbit-agent.git;protocol=ssh;user=git"
#   ORBIT_AGENT_GIT_BRANCH = "main"
#   SRCREV:pn-orbit-agent = "<40-hex commit>"        (or "${AUTOREV}" to follow the branch)
# For development on a local checkout, use externalsrc instead (no fetch at all):
#   INHERIT += "externalsrc"
#   EXTERNALSRC:pn-orbit-agent = "/path/to/orbit-agent"
#   EXTERNALSRC_BUILD:pn-orbit-agent = "${WORKDIR}/build"   (keeps the checkout clean)
# Until one of them is set, the recipe is skipped with a message saying so.
ORBIT_AGENT_GIT_URI ??= "git://git.example.org/orbit/orbit-agent.git;protocol=https"
ORBIT_AGENT_GIT_BRANCH ??= "main"
SRC_URI = "${ORBIT_AGENT_GIT_URI};branch=${ORBIT_AGENT_GIT_BRANCH}"
SRCREV ??= "0000000000000000000000000000000000000000"
PV = "0.1.0+git"
# kirkstone/scarthgap unpack git into ${WORKDIR}/git; styhead and later into ${UNPACKDIR}.
S = "${@'${UNPACKDIR}/git' if d.getVar('UNPACKDIR') else '${WORKDIR}/git'}"

inherit autotools pkgconfig systemd features_check

REQUIRED_DISTRO_FEATURES = "systemd"

# The unit and tmpfiles directories are passed explicitly: pkg-config answers for
# systemd's variables would carry the sysroot prefix in a cross build.
EXTRA_OECONF = " \
    --disable-controller \
    --with-systemdsystemunitdir=${systemd_system_unitdir} \
    --with-tmpfilesdir=${nonarch_libdir}/tmpfiles.d \
"
# The build uses -Werror. A compiler newer than the project's CI (Debian 12, gcc 12)
# may warn where gcc 12 does not; to build anyway while that is fixed upstream:
#   EXTRA_OEMAKE:append = " WARN_CFLAGS='-Wall -Wextra'"

python __anonymous () {
    if bb.data.inherits_class('externalsrc', d) and d.getVar('EXTERNALSRC'):
        return
    uri = d.getVar('ORBIT_AGENT_GIT_URI') or ''
    if 'git.example.org' in uri or set(d.getVar('SRCREV') or '0') == {'0'}:
        raise bb.parse.SkipRecipe("orbit-agent: set ORBIT_AGENT_GIT_URI and SRCREV, or use "
                                  "externalsrc (see docs/operations.md, 'Building node images')")
}

# mbedTLS 3.x passes configure (the mbedtls_sha256 fallback) but fails to compile
# lib/sha256.c: stop early with the reason instead.
do_configure:prepend () {
    ver_h=${STAGING_INCDIR}/mbedtls/version.h
    if [ -f "$ver_h" ] && ! grep -Eq '^#define[[:space:]]+MBEDTLS_VERSION_MAJOR[[:space:]]+2$' "$ver_h"; then
        bbfatal "orbit-agent needs mbedTLS 2.28 (the *_ret API): set PREFERRED_VERSION_mbedtls = \"2.28%\""
    fi
}

# Two packages, as in debian/: the daemon with its unit, timer, tmpfiles entry and
# default config; orbitctl on its own. Man pages and the guides go to ${PN}-doc.
PACKAGES =+ "orbitctl orbit-bundle"
FILES:orbitctl = "${bindir}/orbitctl"
# The ground tool; built with the rest, installed on a node image only if asked for.
FILES:orbit-bundle = "${bindir}/orbit-bundle"
FILES:${PN} += " \
    ${systemd_system_unitdir}/orbit-agent.service \
    ${systemd_system_unitdir}/orbit-agent-retry.timer \
    ${nonarch_libdir}/tmpfiles.d/orbit-agent.conf \
"
CONFFILES:${PN} = "${sysconfdir}/orbit-agent/agent.json"

# Enabled at image build time (systemctl preset/enable in the rootfs), like debhelper
# does on install. The timer is listed too: the unit's Also= names it.
SYSTEMD_PACKAGES = "${PN}"
SYSTEMD_SERVICE:${PN} = "orbit-agent.service orbit-agent-retry.timer"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"
