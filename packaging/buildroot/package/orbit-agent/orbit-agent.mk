################################################################################
#
# orbit-agent
#
################################################################################

ORBIT_AGENT_SITE = $(call qstrip,$(BR2_PACKAGE_ORBIT_AGENT_SITE))
ifneq ($(filter /%,$(ORBIT_AGENT_SITE)),)
# A local checkout: copied as it is, no download, no hash.
ORBIT_AGENT_SITE_METHOD = local
ORBIT_AGENT_VERSION = local
else
ORBIT_AGENT_SITE_METHOD = git
ORBIT_AGENT_VERSION = $(call qstrip,$(BR2_PACKAGE_ORBIT_AGENT_VERSION))
endif

# TODO(license): orbit-agent has no license yet. Until it has one, it is not
# redistributable and legal-info keeps its source out.
ORBIT_AGENT_LICENSE = PROPRIETARY
ORBIT_AGENT_REDISTRIBUTE = NO

# A git checkout has no configure script.
ORBIT_AGENT_AUTORECONF = YES

# The same dependencies as configure.ac: libsystemd, jansson, libcurl, libarchive,
# libseccomp, mbedTLS 2.28 (probed by header and library), OpenSSL libcrypto (fast
# SHA-256) and libssl (certificates at trusted time), zstd (the link's compressed bodies).
# cmocka is for `make check` only: the image build needs none.
# The sandbox's init (/usr/libexec/orbit-agent/orbit-sandbox-init) is linked
# statically: the toolchain's libc.a must be there (glibc and musl toolchains have it);
# configure stops with a message otherwise.
ORBIT_AGENT_DEPENDENCIES = \
	host-pkgconf \
	systemd \
	jansson \
	libcurl \
	libarchive \
	libseccomp \
	mbedtls \
	openssl \
	zstd

# A flight image: libcurl and libarchive with only what the agent uses (bundles are
# plain tar without a compression filter; the link is HTTPS only). Measured on the
# Debian 12 build (bench/agent-idle.sh): what only libarchive pulls in (libxml2 with
# libicu and libstdc++, liblzma, liblz4, libbz2, libacl) is 1.9 MiB of the loaded
# agent's 14.8 MiB RSS; what only libcurl pulls in (GnuTLS, Kerberos, LDAP, libssh2,
# nghttp2, libidn2, brotli) 3.3 MiB. Buildroot's libarchive and libcurl link every
# optional library that is in the image, so in the defconfig:
#   # BR2_PACKAGE_LIBARCHIVE_BSDTAR is not set    (and _BSDCPIO, _BSDCAT)
#   and no BR2_PACKAGE_LIBXML2, _EXPAT, _XZ, _BZIP2, _LZ4, _ZSTD, _ACL, _ATTR unless
#   something else in the image needs them (libarchive would link them)
#   BR2_PACKAGE_LIBCURL_OPENSSL=y                 (the OpenSSL the agent maps anyway)
#   # BR2_PACKAGE_LIBCURL_CURL is not set         (the tool)
#   # BR2_PACKAGE_LIBCURL_VERBOSE is not set
#   # BR2_PACKAGE_LIBCURL_PROXY_SUPPORT is not set
#   # BR2_PACKAGE_LIBCURL_COOKIES_SUPPORT is not set
#   # BR2_PACKAGE_LIBCURL_EXTRA_PROTOCOLS_FEATURES is not set  (ftp, dict, imap...)
#   and no BR2_PACKAGE_LIBSSH2, _NGHTTP2, _LIBIDN2, _BROTLI, _RTMPDUMP, _LIBKRB5,
#   _OPENLDAP for the same reason.

# Explicit directories: pkg-config answers for systemd's variables are not
# reliable in a cross build (sysroot prefix).
ORBIT_AGENT_CONF_OPTS = \
	--disable-controller \
	--with-systemdsystemunitdir=/usr/lib/systemd/system \
	--with-tmpfilesdir=/usr/lib/tmpfiles.d

# mbedTLS 3.x passes configure (the mbedtls_sha256 fallback) but fails to compile
# lib/sha256.c: stop early with the reason instead.
define ORBIT_AGENT_CHECK_MBEDTLS_2
	if ! grep -Eq '^#define[[:space:]]+MBEDTLS_VERSION_MAJOR[[:space:]]+2$$' \
		$(STAGING_DIR)/usr/include/mbedtls/version.h; then \
		echo "orbit-agent needs mbedTLS 2.28 (the *_ret API); this Buildroot has another" >&2; \
		exit 1; \
	fi
endef
ORBIT_AGENT_PRE_CONFIGURE_HOOKS += ORBIT_AGENT_CHECK_MBEDTLS_2

# make install already puts the unit, the timer and the tmpfiles entry in place.
# Buildroot enables units with `systemctl preset-all` when it assembles the root
# file system; this preset file, read before Buildroot's own, enables both.
define ORBIT_AGENT_INSTALL_INIT_SYSTEMD
	mkdir -p $(TARGET_DIR)/usr/lib/systemd/system-preset
	printf 'enable orbit-agent.service\nenable orbit-agent-retry.timer\n' \
		> $(TARGET_DIR)/usr/lib/systemd/system-preset/50-orbit-agent.preset
endef

$(eval $(autotools-package))
