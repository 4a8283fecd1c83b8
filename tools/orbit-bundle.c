/* orbit-bundle: the ground tool that makes keys and builds, signs, verifies and inspects bundles.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "update/bundle.h"
#include "lib/fileio.h"
#include "lib/macro.h"
#include "update/manifest.h"
#include "lib/sha256.h"
#include "update/signature.h"
#include "update/trust.h"

#define EXIT_REFUSED 1
#define EXIT_USAGE 2

static void help(void) {
        printf("Usage: orbit-bundle COMMAND [OPTIONS]\n"
               "\n"
               "Commands:\n"
               "  keygen --key FILE --cert FILE (--ca | --role ROLE) [--subject DN]\n"
               "         [--issuer-key FILE --issuer-cert FILE] [--days N] [--not-before TIME]\n"
               "      make a P-256 key and a certificate: a self-signed CA with --ca, else a "
               "signer\n"
               "      in one ROLE: release (bundles), command (commands) or root (trust "
               "documents),\n"
               "      issued by --issuer-key/--issuer-cert, or self-signed without them\n"
               "  create --manifest-template FILE --image CLASS=FILE... --key FILE --cert FILE\n"
               "         [--chunk-size BYTES] -o BUNDLE\n"
               "      hash the images, write and sign the manifest, write the bundle\n"
               "  verify --keyring DIR [--hardware NAME] [--min-security-version N] [--now TIME] "
               "BUNDLE\n"
               "      check signature, chain, policy and every chunk; exit 0 if valid, 1 if "
               "refused\n"
               "  info [--json] BUNDLE\n"
               "      show the manifest summary (NOT verified)\n"
               "  fingerprint CERT...\n"
               "      the key fingerprint of each certificate (what a trust document revokes)\n"
               "  trust-create --version N --expires TIME --threshold K --root CERT... "
               "--release CERT...\n"
               "         --command CERT... [--revoke CERT|HEX]... [--time-floor-reset TIME] -o "
               "FILE\n"
               "      write an unsigned trust document (docs/security.md)\n"
               "  trust-sign --key FILE --cert FILE DOCUMENT\n"
               "      add a root's signature to a trust document, in place\n"
               "  trust-verify [--in-force DOCUMENT] [--now TIME] DOCUMENT\n"
               "      check a trust document as a node would: alone (its own roots), or as an\n"
               "      update of the one in force; exit 0 if accepted, 1 if refused\n"
               "\n"
               "CLASS is rootfs, model:<name> or app:<name> (an uncompressed tar of the app's\n"
               "files). TIME is @EPOCH, YYYYMMDDhhmmss or YYYY-MM-DD (UTC).\n"
               "Keys and certificates made by openssl (EC P-256, PEM) work as well.\n");
}

static int usage_error(const char *fmt, ...) _printf_(1, 2);
static int usage_error(const char *fmt, ...) {
        va_list ap;
        fprintf(stderr, "orbit-bundle: ");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'orbit-bundle --help'.\n");
        return EXIT_USAGE;
}

static int parse_time(const char *s, time_t *ret) {
        if (s[0] == '@') {
                char *end;
                errno = 0;
                long long v = strtoll(s + 1, &end, 10);
                if (errno || *end || end == s + 1 || v < 0)
                        return -EINVAL;
                *ret = (time_t)v;
                return 0;
        }
        static const char *const formats[] = {"%Y%m%d%H%M%S", "%Y-%m-%d"};
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                struct tm tm = {0};
                const char *end = strptime(s, formats[i], &tm);
                if (end && !*end) {
                        *ret = timegm(&tm);
                        return 0;
                }
        }
        return -EINVAL;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *ret) {
        char *end;
        errno = 0;
        if (!*s || *s == '-' || *s == '+')
                return -EINVAL;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end || v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* ---- keygen ------------------------------------------------------------------------ */

static int cmd_keygen(int argc, char *argv[]) {
        static const struct option options[] = {
                {"key", required_argument, NULL, 'k'},
                {"cert", required_argument, NULL, 'c'},
                {"ca", no_argument, NULL, 'A'},
                {"role", required_argument, NULL, 'r'},
                {"subject", required_argument, NULL, 's'},
                {"issuer-key", required_argument, NULL, 'K'},
                {"issuer-cert", required_argument, NULL, 'C'},
                {"days", required_argument, NULL, 'd'},
                {"not-before", required_argument, NULL, 'b'},
                {},
        };
        struct signature_keygen_options o = {.days = 0};
        const char *key = NULL, *cert = NULL;
        uint64_t days = 0;
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'k':
                        key = optarg;
                        break;
                case 'c':
                        cert = optarg;
                        break;
                case 'A':
                        o.ca = true;
                        break;
                case 'r':
                        o.role = signature_role_from_name(optarg);
                        if (o.role == SIGNATURE_ROLE_NONE)
                                return usage_error("--role takes release, command or root, not "
                                                   "'%s'",
                                                   optarg);
                        break;
                case 's':
                        o.subject = optarg;
                        break;
                case 'K':
                        o.issuer_key_path = optarg;
                        break;
                case 'C':
                        o.issuer_cert_path = optarg;
                        break;
                case 'd':
                        if (parse_u64(optarg, 36600, &days) < 0 || days == 0)
                                return usage_error("--days takes 1 to 36600, not '%s'", optarg);
                        o.days = (unsigned)days;
                        break;
                case 'b':
                        if (parse_time(optarg, &o.not_before) < 0)
                                return usage_error("--not-before takes @EPOCH, YYYYMMDDhhmmss or "
                                                   "YYYY-MM-DD, not '%s'",
                                                   optarg);
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind != argc)
                return usage_error("keygen: unexpected argument '%s'", argv[optind]);
        if (!key || !cert)
                return usage_error("keygen needs --key and --cert");
        if (!!o.issuer_key_path != !!o.issuer_cert_path)
                return usage_error("keygen: --issuer-key and --issuer-cert go together");
        if (o.ca == (o.role != SIGNATURE_ROLE_NONE))
                return usage_error("keygen needs --ca or --role (release, command or root), not "
                                   "both");
        if (!o.subject)
                o.subject = o.ca ? "CN=orbit bundle CA,O=orbit" : "CN=orbit bundle signer,O=orbit";
        if (!o.days)
                o.days = o.ca ? 3650 : 730;
        _cleanup_free_ char *reason = NULL;
        if (signature_keygen(&o, key, cert, &reason) < 0) {
                fprintf(stderr, "orbit-bundle: keygen: %s\n", reason ? reason : "failed");
                return EXIT_REFUSED;
        }
        printf("%s: P-256 key\n%s: %s%s%s certificate for \"%s\"\n", key, cert,
               o.ca ? "" : signature_role_name(o.role), o.ca ? "" : " ",
               o.ca                ? "CA"
               : o.issuer_key_path ? "signer"
                                   : "self-signed signer",
               o.subject);
        return 0;
}

/* ---- create ------------------------------------------------------------------------ */

static int cmd_create(int argc, char *argv[]) {
        static const struct option options[] = {
                {"manifest-template", required_argument, NULL, 't'},
                {"image", required_argument, NULL, 'i'},
                {"key", required_argument, NULL, 'k'},
                {"cert", required_argument, NULL, 'c'},
                {"chunk-size", required_argument, NULL, 'z'},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        const char *template_path = NULL, *key = NULL, *cert = NULL, *output = NULL;
        struct bundle_image_source images[MANIFEST_MAX_IMAGES];
        size_t n_images = 0;
        uint64_t chunk_size = MANIFEST_CHUNK_SIZE_DEFAULT;
        int c;
        while ((c = getopt_long(argc, argv, "o:", options, NULL)) >= 0) {
                switch (c) {
                case 't':
                        template_path = optarg;
                        break;
                case 'k':
                        key = optarg;
                        break;
                case 'c':
                        cert = optarg;
                        break;
                case 'o':
                        output = optarg;
                        break;
                case 'z':
                        if (parse_u64(optarg, MANIFEST_CHUNK_SIZE_MAX, &chunk_size) < 0 ||
                            chunk_size < MANIFEST_CHUNK_SIZE_MIN ||
                            chunk_size % MANIFEST_CHUNK_SIZE_MIN)
                                return usage_error("--chunk-size takes a multiple of 4096 up to 16 "
                                                   "MiB, not '%s'",
                                                   optarg);
                        break;
                case 'i': {
                        char *eq = strchr(optarg, '=');
                        if (!eq || eq == optarg || !eq[1])
                                return usage_error("--image takes CLASS=FILE, not '%s'", optarg);
                        if (n_images >= MANIFEST_MAX_IMAGES)
                                return usage_error("at most 16 images");
                        *eq = '\0';
                        if (!manifest_slot_class_is_valid(optarg))
                                return usage_error(
                                        "'%s' is not a slot class (rootfs, model:<name>, app:<name>)", optarg);
                        images[n_images++] =
                                (struct bundle_image_source){.slot_class = optarg, .path = eq + 1};
                        break;
                }
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind != argc)
                return usage_error("create: unexpected argument '%s'", argv[optind]);
        if (!template_path || !key || !cert || !output || n_images == 0)
                return usage_error(
                        "create needs --manifest-template, --image, --key, --cert and -o");

        _cleanup_free_ char *text = NULL, *message = NULL, *reason = NULL;
        size_t len;
        int r = read_file_bounded(template_path, MANIFEST_MAX_SIZE, &text, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", template_path, strerror(-r));
                return EXIT_REFUSED;
        }
        struct manifest template;
        if (manifest_parse_text(template_path, text, len, MANIFEST_PARSE_TEMPLATE, &template,
                                &message) < 0) {
                fprintf(stderr, "%s\n", message ? message : "orbit-bundle: invalid template");
                return EXIT_REFUSED;
        }
        r = bundle_create(output, &template, images, n_images, chunk_size, key, cert, &reason);
        manifest_free(&template);
        if (r < 0) {
                fprintf(stderr, "orbit-bundle: create %s: %s\n", output,
                        reason ? reason : strerror(-r));
                return EXIT_REFUSED;
        }
        printf("%s: %zu image%s, signed\n", output, n_images, n_images == 1 ? "" : "s");
        return 0;
}

/* ---- verify ------------------------------------------------------------------------ */

static int cmd_verify(int argc, char *argv[]) {
        static const struct option options[] = {
                {"keyring", required_argument, NULL, 'r'},
                {"hardware", required_argument, NULL, 'w'},
                {"min-security-version", required_argument, NULL, 'm'},
                {"now", required_argument, NULL, 'n'},
                {},
        };
        const char *keyring_dir = NULL;
        struct bundle_verify_options o = {.now = time(NULL)};
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (c) {
                case 'r':
                        keyring_dir = optarg;
                        break;
                case 'w':
                        o.hardware = optarg;
                        break;
                case 'm':
                        if (parse_u64(optarg, INT64_MAX, &o.min_security_version) < 0)
                                return usage_error("--min-security-version takes a non-negative "
                                                   "integer, not '%s'",
                                                   optarg);
                        break;
                case 'n':
                        if (parse_time(optarg, &o.now) < 0)
                                return usage_error("--now takes @EPOCH, YYYYMMDDhhmmss or "
                                                   "YYYY-MM-DD, not '%s'",
                                                   optarg);
                        break;
                default:
                        return EXIT_USAGE;
                }
        }
        if (!keyring_dir)
                return usage_error("verify needs --keyring DIR");
        if (optind + 1 != argc)
                return usage_error("verify takes one bundle");
        const char *path = argv[optind];

        _cleanup_free_ char *reason = NULL;
        _cleanup_keyring_ struct signature_keyring *kr = NULL;
        if (signature_keyring_load_dir(keyring_dir, &kr, &reason) < 0) {
                fprintf(stderr, "orbit-bundle: %s\n", reason ? reason : "cannot load the keyring");
                return EXIT_REFUSED;
        }
        o.keyring = kr;
        _cleanup_bundle_ struct bundle *b = NULL;
        if (bundle_open(path, &o, &b, &reason) < 0 || bundle_verify_payloads(b, &reason) < 0) {
                fprintf(stderr, "orbit-bundle: refused: %s\n", reason ? reason : "unknown reason");
                return EXIT_REFUSED;
        }
        const struct manifest *m = bundle_manifest(b);
        printf("%s: valid: %s %s (security version %" PRIu64 "), %zu image%s, signed by \"%s\"\n",
               path, m->bundle_id, m->version, m->security_version, m->n_images,
               m->n_images == 1 ? "" : "s", bundle_signer(b)->signer);
        return 0;
}

/* ---- info -------------------------------------------------------------------------- */

static void format_time(time_t t, char *buf, size_t size) {
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "@%lld", (long long)t);
}

static json_t *info_to_json(const struct manifest *m, const struct signature_info *s) {
        char from[64], to[64], hex[SHA256_HEX_SIZE];
        json_t *compatible = json_array(), *images = json_array();
        for (size_t i = 0; compatible && i < m->n_compatible; i++)
                json_array_append_new(compatible, json_string(m->compatible[i]));
        for (size_t i = 0; images && i < m->n_images; i++) {
                const struct manifest_image *img = &m->images[i];
                sha256_to_hex(img->sha256, hex);
                json_array_append_new(images,
                                      json_pack("{s:s, s:s, s:I, s:s, s:I, s:I}", "slot_class",
                                                img->slot_class, "file", img->file, "size",
                                                (json_int_t)img->size, "sha256", hex, "chunk_size",
                                                (json_int_t)img->chunk_size, "chunks",
                                                (json_int_t)img->n_chunks));
        }
        format_time(s->not_before, from, sizeof(from));
        format_time(s->not_after, to, sizeof(to));
        return json_pack("{s:s, s:s, s:I, s:s?, s:o?, s:o?, s:{s:s, s:s, s:s, s:s, s:I}, s:b}",
                         "bundle_id", m->bundle_id, "version", m->version, "security_version",
                         (json_int_t)m->security_version, "description", m->description,
                         "compatible", compatible, "images", images, "signer", "subject", s->signer,
                         "issuer", s->issuer, "not_before", from, "not_after", to, "certificates",
                         (json_int_t)s->n_certificates, "verified", 0);
}

static int cmd_info(int argc, char *argv[]) {
        static const struct option options[] = {
                {"json", no_argument, NULL, 'j'},
                {},
        };
        bool json = false;
        int c;
        while ((c = getopt_long(argc, argv, "j", options, NULL)) >= 0) {
                if (c != 'j')
                        return EXIT_USAGE;
                json = true;
        }
        if (optind + 1 != argc)
                return usage_error("info takes one bundle");
        const char *path = argv[optind];
        struct manifest m;
        struct signature_info s;
        _cleanup_free_ char *reason = NULL;
        if (bundle_read_unverified(path, &m, &s, &reason) < 0) {
                fprintf(stderr, "orbit-bundle: %s\n", reason ? reason : "cannot read the bundle");
                return EXIT_REFUSED;
        }
        if (json) {
                json_t *j = info_to_json(&m, &s);
                char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
                json_decref(j);
                manifest_free(&m);
                if (!text) {
                        fprintf(stderr, "orbit-bundle: out of memory\n");
                        return EXIT_REFUSED;
                }
                printf("%s\n", text);
                free(text);
                return 0;
        }
        char from[64], to[64], hex[SHA256_HEX_SIZE];
        format_time(s.not_before, from, sizeof(from));
        format_time(s.not_after, to, sizeof(to));
        printf("Bundle:           %s\n", m.bundle_id);
        printf("Version:          %s\n", m.version);
        printf("Security version: %" PRIu64 "\n", m.security_version);
        if (m.description)
                printf("Description:      %s\n", m.description);
        printf("Compatible:       ");
        for (size_t i = 0; i < m.n_compatible; i++)
                printf("%s%s", i ? ", " : "", m.compatible[i]);
        printf("\nSigner:           %s (issued by %s, valid %s to %s) -- NOT verified, use "
               "'verify'\n",
               s.signer, s.issuer, from, to);
        for (size_t i = 0; i < m.n_images; i++) {
                const struct manifest_image *img = &m.images[i];
                sha256_to_hex(img->sha256, hex);
                printf("Image %-11s %s, %" PRIu64 " bytes, %" PRIu64 " chunk%s of %" PRIu64
                       ", sha256 %s\n",
                       img->slot_class, img->file, img->size, img->n_chunks,
                       img->n_chunks == 1 ? "" : "s", img->chunk_size, hex);
        }
        manifest_free(&m);
        return 0;
}

/* ---- trust documents ------------------------------------------------------------- */

static int cmd_fingerprint(int argc, char *argv[]) {
        if (argc < 2)
                return usage_error("fingerprint takes one or more certificates");
        for (int i = 1; i < argc; i++) {
                _cleanup_free_ char *text = NULL, *why = NULL;
                size_t len;
                uint8_t key[32];
                char hex[SHA256_HEX_SIZE];
                int r = read_file_bounded(argv[i], TRUST_CERT_MAX_SIZE, &text, &len);
                if (r < 0) {
                        fprintf(stderr, "orbit-bundle: %s: %s\n", argv[i], strerror(-r));
                        return EXIT_REFUSED;
                }
                if (signature_key_fingerprint(text, len, key, &why) < 0) {
                        fprintf(stderr, "orbit-bundle: %s: %s\n", argv[i], why ? why : "?");
                        return EXIT_REFUSED;
                }
                sha256_to_hex(key, hex);
                printf("%s  %s\n", hex, argv[i]);
        }
        return 0;
}

/* A growing NULL-terminated list of heap strings. */
struct strv {
        char **v;
        size_t n;
};

static int strv_push(struct strv *l, char *s) {
        char **n = realloc(l->v, (l->n + 2) * sizeof(char *));
        if (!n) {
                free(s);
                return -ENOMEM;
        }
        l->v = n;
        l->v[l->n++] = s;
        l->v[l->n] = NULL;
        return 0;
}

static void strv_free(struct strv *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->v[i]);
        free(l->v);
}

static int push_file(struct strv *l, const char *path) {
        char *text = NULL;
        size_t len;
        int r = read_file_bounded(path, TRUST_CERT_MAX_SIZE, &text, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", path, strerror(-r));
                return r;
        }
        return strv_push(l, text);
}

static int cmd_trust_create(int argc, char *argv[]) {
        static const struct option options[] = {
                {"version", required_argument, NULL, 'v'},
                {"expires", required_argument, NULL, 'e'},
                {"threshold", required_argument, NULL, 't'},
                {"root", required_argument, NULL, 'R'},
                {"release", required_argument, NULL, 'r'},
                {"command", required_argument, NULL, 'c'},
                {"revoke", required_argument, NULL, 'x'},
                {"time-floor-reset", required_argument, NULL, 'f'},
                {"output", required_argument, NULL, 'o'},
                {},
        };
        struct strv roots = {0}, release = {0}, command = {0}, revoked = {0};
        struct trust_document_spec d = {0};
        const char *out = NULL;
        uint64_t u;
        time_t t;
        int c, r = 0;
        while (r >= 0 && (c = getopt_long(argc, argv, "o:", options, NULL)) >= 0) {
                switch (c) {
                case 'v':
                case 't':
                        if (parse_u64(optarg, c == 'v' ? INT64_MAX : TRUST_MAX_ROOTS, &u) < 0 || u == 0) {
                                r = usage_error("--%s takes a positive integer, not '%s'",
                                                c == 'v' ? "version" : "threshold", optarg);
                                goto done;
                        }
                        *(c == 'v' ? &d.version : &d.threshold) = (int64_t)u;
                        break;
                case 'e':
                case 'f':
                        if (parse_time(optarg, &t) < 0) {
                                r = usage_error("--%s takes @EPOCH, YYYYMMDDhhmmss or YYYY-MM-DD, "
                                                "not '%s'",
                                                c == 'e' ? "expires" : "time-floor-reset", optarg);
                                goto done;
                        }
                        *(c == 'e' ? &d.expires : &d.time_floor_reset) = (int64_t)t;
                        break;
                case 'R':
                        r = push_file(&roots, optarg);
                        break;
                case 'r':
                        r = push_file(&release, optarg);
                        break;
                case 'c':
                        r = push_file(&command, optarg);
                        break;
                case 'x': {
                        uint8_t key[32];
                        char *hex = malloc(SHA256_HEX_SIZE);
                        if (!hex) {
                                r = -ENOMEM;
                                break;
                        }
                        if (strlen(optarg) == 64 && sha256_from_hex(optarg, key) == 0) {
                                snprintf(hex, SHA256_HEX_SIZE, "%s", optarg);
                        } else {
                                _cleanup_free_ char *text = NULL, *why = NULL;
                                size_t len;
                                if (read_file_bounded(optarg, TRUST_CERT_MAX_SIZE, &text, &len) < 0 ||
                                    signature_key_fingerprint(text, len, key, &why) < 0) {
                                        free(hex);
                                        r = usage_error("--revoke takes a certificate or 64 hex "
                                                        "digits, not '%s'",
                                                        optarg);
                                        goto done;
                                }
                                sha256_to_hex(key, hex);
                        }
                        r = strv_push(&revoked, hex);
                        break;
                }
                case 'o':
                        out = optarg;
                        break;
                default:
                        r = EXIT_USAGE;
                        goto done;
                }
        }
        if (r < 0) {
                r = EXIT_REFUSED;
                goto done;
        }
        if (optind != argc || !out || !d.version || !d.expires || !d.threshold) {
                r = usage_error("trust-create needs --version, --expires, --threshold, the "
                                "certificates and -o FILE");
                goto done;
        }
        static const char *const none[] = {NULL};
        d.roots = roots.v ? (const char *const *)roots.v : none;
        d.release = release.v ? (const char *const *)release.v : none;
        d.command = command.v ? (const char *const *)command.v : none;
        d.revoked = revoked.v ? (const char *const *)revoked.v : none;
        _cleanup_free_ char *env = NULL, *why = NULL;
        if (trust_envelope_new(&d, &env, &why) < 0) {
                fprintf(stderr, "orbit-bundle: trust-create: %s\n", why ? why : "failed");
                r = EXIT_REFUSED;
                goto done;
        }
        if ((r = write_file_durable(out, env, strlen(env), 0644)) < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", out, strerror(-r));
                r = EXIT_REFUSED;
                goto done;
        }
        printf("%s: trust document v%" PRId64 ", %zu root%s (threshold %" PRId64
               "), unsigned\n",
               out, d.version, roots.n, roots.n == 1 ? "" : "s", d.threshold);
        r = 0;
done:
        strv_free(&roots);
        strv_free(&release);
        strv_free(&command);
        strv_free(&revoked);
        return r;
}

static int cmd_trust_sign(int argc, char *argv[]) {
        static const struct option options[] = {
                {"key", required_argument, NULL, 'k'},
                {"cert", required_argument, NULL, 'c'},
                {},
        };
        const char *key = NULL, *cert = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                if (c == 'k')
                        key = optarg;
                else if (c == 'c')
                        cert = optarg;
                else
                        return EXIT_USAGE;
        }
        if (!key || !cert || optind + 1 != argc)
                return usage_error("trust-sign needs --key, --cert and one document");
        const char *path = argv[optind];
        _cleanup_free_ char *env = NULL, *text = NULL, *sig = NULL, *next = NULL, *why = NULL;
        size_t len, text_len, sig_len;
        int r = read_file_bounded(path, TRUST_MAX_SIZE, &env, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", path, strerror(-r));
                return EXIT_REFUSED;
        }
        if (trust_envelope_signed_text(env, len, &text, &text_len, &why) < 0 ||
            signature_sign(SIGNATURE_FOR_TRUST, text, text_len, key, cert, &sig, &sig_len, &why) < 0 ||
            trust_envelope_add_signature(env, len, sig, sig_len, &next, &why) < 0) {
                fprintf(stderr, "orbit-bundle: trust-sign: %s\n", why ? why : "failed");
                return EXIT_REFUSED;
        }
        if ((r = write_file_durable(path, next, strlen(next), 0644)) < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", path, strerror(-r));
                return EXIT_REFUSED;
        }
        printf("%s: signed with %s\n", path, cert);
        return 0;
}

static int load_trust(const char *path, enum trust_check check, const struct trust *cur,
                      time_t now, struct trust **ret) {
        _cleanup_free_ char *text = NULL, *why = NULL;
        size_t len;
        int r = read_file_bounded(path, TRUST_MAX_SIZE, &text, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-bundle: %s: %s\n", path, strerror(-r));
                return r;
        }
        r = trust_parse(text, len, check, cur, now, ret, &why);
        if (r < 0)
                fprintf(stderr, "orbit-bundle: refused: %s: %s\n", path, why ? why : "?");
        return r;
}

static int cmd_trust_verify(int argc, char *argv[]) {
        static const struct option options[] = {
                {"in-force", required_argument, NULL, 'i'},
                {"now", required_argument, NULL, 'n'},
                {},
        };
        const char *in_force = NULL;
        time_t now = time(NULL);
        int c;
        while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                if (c == 'i')
                        in_force = optarg;
                else if (c == 'n') {
                        if (parse_time(optarg, &now) < 0)
                                return usage_error("--now takes @EPOCH, YYYYMMDDhhmmss or "
                                                   "YYYY-MM-DD, not '%s'",
                                                   optarg);
                } else
                        return EXIT_USAGE;
        }
        if (optind + 1 != argc)
                return usage_error("trust-verify takes one document");
        _cleanup_trust_ struct trust *cur = NULL, *t = NULL;
        if (in_force && load_trust(in_force, TRUST_CHECK_SELF, NULL, now, &cur) < 0)
                return EXIT_REFUSED;
        if (load_trust(argv[optind], cur ? TRUST_CHECK_UPDATE : TRUST_CHECK_SELF, cur, now, &t) < 0)
                return EXIT_REFUSED;
        printf("%s: valid: trust document v%" PRId64 ", %zu roots (threshold %" PRId64
               "), %zu release and %zu command anchor%s, %zu revoked key%s\n",
               argv[optind], t->version, t->n_roots, t->threshold, t->n_release, t->n_command,
               t->n_command == 1 ? "" : "s", t->n_revoked, t->n_revoked == 1 ? "" : "s");
        return 0;
}

int main(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") ||
            streq(argv[1], "help")) {
                help();
                return argc < 2 ? EXIT_USAGE : 0;
        }
        static const struct {
                const char *name;
                int (*run)(int argc, char *argv[]);
        } commands[] = {
                {"keygen", cmd_keygen},
                {"create", cmd_create},
                {"verify", cmd_verify},
                {"info", cmd_info},
                {"fingerprint", cmd_fingerprint},
                {"trust-create", cmd_trust_create},
                {"trust-sign", cmd_trust_sign},
                {"trust-verify", cmd_trust_verify},
        };
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (streq(argv[1], commands[i].name))
                        return commands[i].run(argc - 1, argv + 1);
        return usage_error("unknown command '%s'", argv[1]);
}
