/* orbit-controller: the ground side of the controller link (serve) and its operator CLI. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controller/client.h"
#include "controller/node-cert.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "controller/rollout.h"
#include "controller/server.h"
#include "controller/store.h"
#include "controller/store-address.h"

#define EXIT_USAGE 2

static void help(void) {
        printf("orbit-controller: the ground side of the orbit-agent controller link\n"
               "\n"
               "  orbit-controller serve --listen ADDR:PORT --data-dir DIR --cert PEM --key PEM\n"
               "        --node-ca PEM [--operator-ca PEM] [--operator-token-file FILE]\n"
               "        [--database sqlite:PATH|postgresql://...]  where the state is (docs/storage.md;\n"
               "                                  default sqlite:DIR/controller.db)\n"
               "        [--node-ca-key PEM]       the node CA's key: nodes renew their certificates over\n"
               "                                  the link (docs/security.md); without it renewal is off\n"
               "        [--node-cert-days N]      the validity of the certificates it issues (90)\n"
               "        --command-key KEY --command-cert PEM [--bundle-keyring DIR]\n"
               "        [--trust-document FILE]   the fleet's trust document, sent to nodes with an older one\n"
               "        [--poll-interval SEC] [--max-bundle-size BYTES]\n"
               "        [--max-connections N]     at once (1024): idle or trickling peers cannot take them all\n"
               "        [--max-connections-per-ip N]  from one address (64; a ground station may NAT many nodes)\n"
               "        [--max-syncs-per-minute N] per node, on average (600; 0: no bound), at once up to\n"
               "        [--sync-burst N]          (60): past them a node's sync is answered 429 and Retry-After\n"
               "        [--threads N]             server threads (the CPUs online, at most 8)\n"
               "        [--request-deadline SEC]  a connection with no authorized request by then\n"
               "                                  closes (60; 0: never)\n"
               "        [--timeout SEC]           idle connections close after it (150); keep it\n"
               "                                  above the nodes' poll interval: one TLS connection a pass\n"
               "        [--tls-tickets]           TLS 1.3 session tickets (off: they cost bytes)\n"
               "        [--tls-session-cache]     resume TLS 1.2 sessions by id (nodes with link.tls_max 1.2)\n"
               "        [--tcp-congestion NAME]   e.g. bbr: what the controller sends (kernel default)\n"
               "        [--port-file FILE] [--log-level LEVEL]\n"
               "        [--retain-records DURATION|0]   default 30d; critical and update.* kept\n"
               "        [--max-records-per-node N] records kept per node (100000; 0: no bound)\n"
               "        [--usage-exact-days N] usage reports kept whole this many days (35)\n"
               "        [--max-usage-reports-per-node N] usage entry reports per node (200000; 0: no bound)\n"
               "        [--pass-gap DURATION]     syncs of a node closer than this are one pass (5m)\n"
               "        [--viewer-token-file FILE] a bearer token that may only read\n"
               "        [--release-token-file FILE] a bearer token that may also upload bundles and\n"
               "                                  start rollouts (the operator token may not)\n"
               "        [--web-dir DIR]           the dashboard's files (default " WEBDIR ")\n"
               "        [--zstd-dictionary FILE]  the nodes' link.zstd_dictionary (scripts/zstd-dictionary.sh)\n"
               "        [--no-zstd]               plain sync bodies only, as a controller before zstd\n"
               "\n"
               "  orbit-controller migrate --from sqlite:PATH --to postgresql://... [--json]\n"
               "        copy a stopped controller's SQLite store into an empty PostgreSQL database, in one\n"
               "        transaction, every table compared after the copy (docs/storage.md)\n"
               "\n"
               "  orbit-controller [--url URL] [--token-file FILE | --cert PEM --key PEM]\n"
               "        [--cacert PEM] [--json] COMMAND\n"
               "    node list                      nodes, last sync, records, pending commands\n"
               "    audit list                     who asked for which change (newest first)\n"
               "    node show NODE                 one node in detail\n"
               "    command send NODE ACTION [KEY=VALUE|KEY:=JSON...] [--expires-in SEC]\n"
               "    command list NODE\n"
               "    bundle upload FILE\n"
               "    bundle list\n"
               "    desired set NODE FILE          a new desired state: FILE holds {\"workloads\": [...]}\n"
               "    desired show NODE              the desired state, and what the node last reported\n"
               "    health NODE                    the latest health report\n"
               "    records NODE [--kind K] [--limit N]\n"
               "    node group NODE GROUP          put a node in a group (node ungroup NODE GROUP)\n"
               "    node allow-renew NODE [--until DURATION|YYYY-MM-DDTHH:MM:SSZ]\n"
               "                                   let a node whose certificate expired renew it (1d;\n"
               "                                   at most 30d): docs/security.md, \"Node certificates\"\n"
               "    node revoke-certs NODE         refuse every certificate of the node made until now\n"
               "    rollout create --bundle ID [--target GROUP|all] [--stages 1,10,50,100]\n"
               "        [--success-after N|DURATION] [--max-failures N|P%%] [--stage-timeout N|DURATION]\n"
               "        [--min-healthy-time DURATION] [--report-deadline N|DURATION] [--auto-revert]\n"
               "        [--id ID]                  N: the node's own passes; DURATION: 30s, 10m, 2h, 1d\n"
               "    rollout start|pause|resume|abort ID\n"
               "    deployment create --bundle ID --spec FILE [--id ID] [--target GROUP|all] [--count N]\n"
               "        [--min-free-mib N] [--max-level nominal|warm|hot] [--min-battery P] and the rollout's\n"
               "        strategy options (--stages, --success-after, --max-failures, --report-deadline, ...)\n"
               "    deployment status|pause|resume|delete ID, deployment list\n"
               "    rollout status ID [--watch]    stage by stage; --watch redraws every second\n"
               "    rollout list\n"
               "    usage [--by tenant|deployment|node|workload] [--tenant T] [--deployment D] [--node N]\n"
               "        [--since DURATION|TIME] [--until DURATION|TIME]\n"
               "                                   metered usage summed (CPU s, memory GiB-hours, energy Wh,\n"
               "                                   link bytes): docs/deployments.md, \"Usage metering\"\n"
               "\n"
               "  --url defaults to $ORBIT_CONTROLLER_URL, --token-file to $ORBIT_CONTROLLER_TOKEN_FILE.\n"
               "  Actions: workload.start|stop|restart name=W, update.install bundle_id=B (or url=),\n"
               "  update.mark-good, update.rollback, reboot, config.set key=K value=V, status.send.\n"
               "  The protocol is in docs/protocol.md, rollouts in docs/rollouts.md.\n");
}

static int parse_unsigned(const char *opt, const char *s, unsigned long long min,
                          unsigned long long max, unsigned long long *ret) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(s, &end, 10);
        if (s[0] < '0' || s[0] > '9' || *end || errno || v < min || v > max) {
                fprintf(stderr, "orbit-controller: %s: expected an integer from %llu to %llu, got "
                                "\"%s\"\n", opt, min, max, s);
                return -EINVAL;
        }
        *ret = v;
        return 0;
}

static int cmd_serve(int argc, char *argv[]) {
        enum {
                ARG_LISTEN = 0x100, ARG_DATA_DIR, ARG_DATABASE, ARG_CERT, ARG_KEY, ARG_NODE_CA, ARG_OPERATOR_CA,
                ARG_TOKEN_FILE, ARG_COMMAND_KEY, ARG_COMMAND_CERT, ARG_KEYRING, ARG_TRUST_DOCUMENT, ARG_POLL,
                ARG_MAX_BUNDLE, ARG_MAX_CONN, ARG_MAX_CONN_IP, ARG_MAX_SYNCS, ARG_SYNC_BURST, ARG_MAX_RECORDS, ARG_TIMEOUT, ARG_TCP_CONGESTION,
                ARG_TLS_TICKETS, ARG_TLS_SESSION_CACHE, ARG_PORT_FILE,
                ARG_LOG_LEVEL, ARG_USAGE_EXACT_DAYS, ARG_MAX_USAGE_REPORTS, ARG_RETAIN, ARG_PASS_GAP, ARG_VIEWER_TOKEN_FILE, ARG_WEB_DIR, ARG_NO_ZSTD,
                ARG_ZSTD_DICTIONARY, ARG_NODE_CA_KEY, ARG_NODE_CERT_DAYS, ARG_RELEASE_TOKEN_FILE, ARG_REQUEST_DEADLINE, ARG_THREADS,
        };
        static const struct option options[] = {
                {"listen", required_argument, NULL, ARG_LISTEN},
                {"data-dir", required_argument, NULL, ARG_DATA_DIR},
                {"database", required_argument, NULL, ARG_DATABASE},
                {"cert", required_argument, NULL, ARG_CERT},
                {"key", required_argument, NULL, ARG_KEY},
                {"node-ca", required_argument, NULL, ARG_NODE_CA},
                {"node-ca-key", required_argument, NULL, ARG_NODE_CA_KEY},
                {"node-cert-days", required_argument, NULL, ARG_NODE_CERT_DAYS},
                {"operator-ca", required_argument, NULL, ARG_OPERATOR_CA},
                {"operator-token-file", required_argument, NULL, ARG_TOKEN_FILE},
                {"command-key", required_argument, NULL, ARG_COMMAND_KEY},
                {"command-cert", required_argument, NULL, ARG_COMMAND_CERT},
                {"bundle-keyring", required_argument, NULL, ARG_KEYRING},
                {"trust-document", required_argument, NULL, ARG_TRUST_DOCUMENT},
                {"poll-interval", required_argument, NULL, ARG_POLL},
                {"max-bundle-size", required_argument, NULL, ARG_MAX_BUNDLE},
                {"max-connections", required_argument, NULL, ARG_MAX_CONN},
                {"max-connections-per-ip", required_argument, NULL, ARG_MAX_CONN_IP},
                {"max-syncs-per-minute", required_argument, NULL, ARG_MAX_SYNCS},
                {"sync-burst", required_argument, NULL, ARG_SYNC_BURST},
                {"max-records-per-node", required_argument, NULL, ARG_MAX_RECORDS},
                {"timeout", required_argument, NULL, ARG_TIMEOUT},
                {"request-deadline", required_argument, NULL, ARG_REQUEST_DEADLINE},
                {"threads", required_argument, NULL, ARG_THREADS},
                {"idle-timeout", required_argument, NULL, ARG_TIMEOUT},
                {"tcp-congestion", required_argument, NULL, ARG_TCP_CONGESTION},
                {"tls-tickets", no_argument, NULL, ARG_TLS_TICKETS},
                {"tls-session-cache", no_argument, NULL, ARG_TLS_SESSION_CACHE},
                {"port-file", required_argument, NULL, ARG_PORT_FILE},
                {"log-level", required_argument, NULL, ARG_LOG_LEVEL},
                {"retain-records", required_argument, NULL, ARG_RETAIN},
                {"usage-exact-days", required_argument, NULL, ARG_USAGE_EXACT_DAYS},
                {"max-usage-reports-per-node", required_argument, NULL, ARG_MAX_USAGE_REPORTS},
                {"pass-gap", required_argument, NULL, ARG_PASS_GAP},
                {"viewer-token-file", required_argument, NULL, ARG_VIEWER_TOKEN_FILE},
                {"release-token-file", required_argument, NULL, ARG_RELEASE_TOKEN_FILE},
                {"web-dir", required_argument, NULL, ARG_WEB_DIR},
                {"no-zstd", no_argument, NULL, ARG_NO_ZSTD},
                {"zstd-dictionary", required_argument, NULL, ARG_ZSTD_DICTIONARY},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct server_config c = {
                .poll_interval_sec = 60,
                .max_bundle_size = 4ULL * 1024 * 1024 * 1024,
                .max_connections = 1024,
                .max_connections_per_ip = 64,
                .max_syncs_per_minute = 600,
                .sync_burst = 60,
                .request_deadline_sec = 60, /* a TLS handshake and a request's headers on the
                                             * slowest link (docs/protocol.md), with margin */
                .timeout_sec = 150, /* above the agents' 60 s poll, with margin for a slow answer */
                .retain_records_sec = 30 * 86400,
                .max_records_per_node = STORE_RECORD_QUOTA_DEFAULT,
                .usage_exact_days = STORE_USAGE_EXACT_DAYS_DEFAULT,
                .max_usage_reports_per_node = STORE_USAGE_ROWS_PER_NODE_DEFAULT,
                .pass_gap_sec = 300,
                .web_dir = WEBDIR,
                .node_cert_days = NODE_CERT_DAYS_DEFAULT,
        };
        unsigned long long v;
        int opt;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_LISTEN: c.listen = optarg; break;
                case ARG_DATA_DIR: c.data_dir = optarg; break;
                case ARG_DATABASE: {
                        struct store_address a;
                        _cleanup_free_ char *why = NULL;
                        if (store_address_parse(optarg, &a, &why) < 0) {
                                fprintf(stderr, "orbit-controller: --database: %s\n", why);
                                return EXIT_USAGE;
                        }
                        c.database = optarg;
                        break;
                }
                case ARG_CERT: c.cert = optarg; break;
                case ARG_KEY: c.key = optarg; break;
                case ARG_NODE_CA: c.node_ca = optarg; break;
                case ARG_NODE_CA_KEY: c.node_ca_key = optarg; break;
                case ARG_NODE_CERT_DAYS:
                        if (parse_unsigned("--node-cert-days", optarg, 1, 3650, &v) < 0)
                                return EXIT_USAGE;
                        c.node_cert_days = (unsigned) v;
                        break;
                case ARG_OPERATOR_CA: c.operator_ca = optarg; break;
                case ARG_TOKEN_FILE: c.operator_token_file = optarg; break;
                case ARG_COMMAND_KEY: c.command_key = optarg; break;
                case ARG_COMMAND_CERT: c.command_cert = optarg; break;
                case ARG_KEYRING: c.bundle_keyring = optarg; break;
                case ARG_TRUST_DOCUMENT: c.trust_document = optarg; break;
                case ARG_PORT_FILE: c.port_file = optarg; break;
                case ARG_POLL:
                        if (parse_unsigned("--poll-interval", optarg, 1, 7 * 86400, &v) < 0)
                                return EXIT_USAGE;
                        c.poll_interval_sec = (unsigned) v;
                        break;
                case ARG_MAX_BUNDLE:
                        if (parse_unsigned("--max-bundle-size", optarg, 4096, 1ULL << 40, &v) < 0)
                                return EXIT_USAGE;
                        c.max_bundle_size = v;
                        break;
                case ARG_MAX_CONN:
                        if (parse_unsigned("--max-connections", optarg, 1, 65536, &v) < 0)
                                return EXIT_USAGE;
                        c.max_connections = (unsigned) v;
                        break;
                case ARG_MAX_CONN_IP:
                        if (parse_unsigned("--max-connections-per-ip", optarg, 1, 65536, &v) < 0)
                                return EXIT_USAGE;
                        c.max_connections_per_ip = (unsigned) v;
                        break;
                case ARG_MAX_SYNCS:
                        if (parse_unsigned("--max-syncs-per-minute", optarg, 0, 1000000, &v) < 0)
                                return EXIT_USAGE;
                        c.max_syncs_per_minute = (unsigned) v;
                        break;
                case ARG_SYNC_BURST:
                        if (parse_unsigned("--sync-burst", optarg, 1, 1000000, &v) < 0)
                                return EXIT_USAGE;
                        c.sync_burst = (unsigned) v;
                        break;
                case ARG_MAX_RECORDS:
                        if (parse_unsigned("--max-records-per-node", optarg, 0, 1ULL << 40, &v) < 0)
                                return EXIT_USAGE;
                        c.max_records_per_node = (int64_t) v;
                        break;
                case ARG_USAGE_EXACT_DAYS:
                        if (parse_unsigned("--usage-exact-days", optarg, 0, 36500, &v) < 0)
                                return EXIT_USAGE;
                        c.usage_exact_days = (int64_t) v;
                        break;
                case ARG_MAX_USAGE_REPORTS:
                        if (parse_unsigned("--max-usage-reports-per-node", optarg, 0, 1ULL << 40, &v) < 0)
                                return EXIT_USAGE;
                        c.max_usage_reports_per_node = (int64_t) v;
                        break;
                case ARG_RETAIN: {
                        struct rollout_gate g;
                        _cleanup_free_ char *m = NULL;
                        if (rollout_gate_parse("--retain-records", optarg, true, &g, &m) < 0 ||
                            (g.kind != ROLLOUT_GATE_SECONDS && g.value != 0)) {
                                fprintf(stderr, "orbit-controller: --retain-records: expected a duration "
                                        "(\"90d\", \"12h\") or 0 to keep every record, got \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        c.retain_records_sec = g.value;
                        break;
                }
                case ARG_PASS_GAP: {
                        struct rollout_gate g;
                        if (rollout_gate_parse("--pass-gap", optarg, true, &g, NULL) < 0) {
                                fprintf(stderr, "orbit-controller: --pass-gap: expected seconds "
                                        "(\"300\") or a duration (\"5m\"), got \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        c.pass_gap_sec = g.value; /* a plain number is seconds here */
                        break;
                }
                case ARG_VIEWER_TOKEN_FILE: c.viewer_token_file = optarg; break;
                case ARG_RELEASE_TOKEN_FILE: c.release_token_file = optarg; break;
                case ARG_WEB_DIR: c.web_dir = optarg; break;
                case ARG_NO_ZSTD: c.no_zstd = true; break;
                case ARG_ZSTD_DICTIONARY: c.zstd_dictionary = optarg; break;
                case ARG_TLS_TICKETS: c.tls_tickets = true; break;
                case ARG_TLS_SESSION_CACHE: c.tls_session_cache = true; break;
                case ARG_TCP_CONGESTION:
                        if (!*optarg || strlen(optarg) >= 16 ||
                            optarg[strspn(optarg, "abcdefghijklmnopqrstuvwxyz0123456789_-")]) {
                                fprintf(stderr, "orbit-controller: --tcp-congestion: expected a "
                                        "kernel congestion control name (\"bbr\"), got \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        c.tcp_congestion = optarg;
                        break;
                case ARG_THREADS:
                        if (parse_unsigned("--threads", optarg, 1, 64, &v) < 0)
                                return EXIT_USAGE;
                        c.threads = (unsigned) v;
                        break;
                case ARG_REQUEST_DEADLINE:
                        if (parse_unsigned("--request-deadline", optarg, 0, 3600, &v) < 0)
                                return EXIT_USAGE;
                        c.request_deadline_sec = (unsigned) v;
                        break;
                case ARG_TIMEOUT:
                        if (parse_unsigned("--timeout", optarg, 1, 3600, &v) < 0)
                                return EXIT_USAGE;
                        c.timeout_sec = (unsigned) v;
                        break;
                case ARG_LOG_LEVEL: {
                        int level = log_level_from_string(optarg);
                        if (level < 0) {
                                fprintf(stderr, "orbit-controller: unknown log level \"%s\"\n", optarg);
                                return EXIT_USAGE;
                        }
                        log_set_max_level(level);
                        break;
                }
                case 'h':
                        help();
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "orbit-controller: serve: unexpected argument \"%s\"\n", argv[optind]);
                return EXIT_USAGE;
        }
        const struct {
                const char *name, *value;
        } required[] = {
                {"--listen", c.listen},           {"--data-dir", c.data_dir},
                {"--cert", c.cert},               {"--key", c.key},
                {"--node-ca", c.node_ca},         {"--command-key", c.command_key},
                {"--command-cert", c.command_cert},
        };
        for (size_t i = 0; i < ELEMENTSOF(required); i++)
                if (!required[i].value) {
                        fprintf(stderr, "orbit-controller: serve: %s is required\n",
                                required[i].name);
                        return EXIT_USAGE;
                }
        log_setup("orbit-controller", LOG_TARGET_STDERR);
        return server_run(&c) < 0 ? EXIT_FAILURE : 0;
}

static void migrate_print(json_t *report) {
        size_t i;
        json_t *t;
        printf("%-22s %12s %12s  %-16s\n", "TABLE", "SQLITE", "POSTGRESQL", "DIGEST");
        json_array_foreach(json_object_get(report, "tables"), i, t)
                printf("%-22s %12" JSON_INTEGER_FORMAT " %12" JSON_INTEGER_FORMAT "  %-16s%s\n",
                       json_string_value(json_object_get(t, "table")),
                       json_integer_value(json_object_get(t, "sqlite_rows")),
                       json_integer_value(json_object_get(t, "postgresql_rows")),
                       json_string_value(json_object_get(t, "digest")),
                       json_is_true(json_object_get(t, "match")) ? "" : "  DIFFERS");
        json_int_t rows = json_integer_value(json_object_get(report, "rows"));
        printf("%-22s %12" JSON_INTEGER_FORMAT " %12" JSON_INTEGER_FORMAT "\n", "total", rows, rows);
        printf("migrated: %" JSON_INTEGER_FORMAT " rows at schema %" JSON_INTEGER_FORMAT
               ", every table read back equal; start the controller with --database and the target\n",
               rows, json_integer_value(json_object_get(report, "schema")));
}

/* orbit-controller migrate: exit 0 done, 1 failed (nothing copied), 2 usage. */
static int cmd_migrate(int argc, char *argv[]) {
        enum { ARG_FROM = 0x100, ARG_TO, ARG_JSON };
        static const struct option options[] = {
                {"from", required_argument, NULL, ARG_FROM},
                {"to", required_argument, NULL, ARG_TO},
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *from = NULL, *to = NULL;
        bool json = false;
        int opt;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_FROM: from = optarg; break;
                case ARG_TO: to = optarg; break;
                case ARG_JSON: json = true; break;
                case 'h':
                        help();
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        }
        if (!from || !to || optind < argc) {
                fprintf(stderr, "orbit-controller: migrate: usage: migrate --from sqlite:PATH --to "
                                "postgresql://... [--json]\n");
                return EXIT_USAGE;
        }
        log_setup("orbit-controller", LOG_TARGET_STDERR);
        _cleanup_free_ char *reason = NULL;
        json_t *report = NULL;
        int r = store_migrate(from, to, &report, &reason);
        if (r < 0) {
                fprintf(stderr, "orbit-controller: migrate: %s; nothing was copied\n",
                        reason ? reason : strerror(-r));
                return EXIT_FAILURE;
        }
        if (json) {
                json_dumpf(report, stdout, JSON_INDENT(2));
                putchar('\n');
        } else
                migrate_print(report);
        json_decref(report);
        return 0;
}

static int cmd_client(int argc, char *argv[]) {
        enum { ARG_URL = 0x100, ARG_TOKEN_FILE, ARG_CERT, ARG_KEY, ARG_CACERT, ARG_KIND,
               ARG_LIMIT, ARG_EXPIRES, ARG_JSON, ARG_ID, ARG_BUNDLE, ARG_TARGET, ARG_STAGES,
               ARG_SUCCESS_AFTER, ARG_STAGE_TIMEOUT, ARG_MAX_FAILURES, ARG_WATCH,
               ARG_MIN_HEALTHY, ARG_REPORT_DEADLINE, ARG_AUTO_REVERT, ARG_UNTIL, ARG_SPEC, ARG_COUNT,
               ARG_MIN_FREE, ARG_MAX_LEVEL, ARG_MIN_BATTERY, ARG_BY, ARG_TENANT, ARG_DEPLOYMENT, ARG_NODE,
               ARG_SINCE };
        static const struct option options[] = {
                {"url", required_argument, NULL, ARG_URL},
                {"token-file", required_argument, NULL, ARG_TOKEN_FILE},
                {"cert", required_argument, NULL, ARG_CERT},
                {"key", required_argument, NULL, ARG_KEY},
                {"cacert", required_argument, NULL, ARG_CACERT},
                {"kind", required_argument, NULL, ARG_KIND},
                {"limit", required_argument, NULL, ARG_LIMIT},
                {"expires-in", required_argument, NULL, ARG_EXPIRES},
                {"json", no_argument, NULL, ARG_JSON},
                {"id", required_argument, NULL, ARG_ID},
                {"bundle", required_argument, NULL, ARG_BUNDLE},
                {"target", required_argument, NULL, ARG_TARGET},
                {"stages", required_argument, NULL, ARG_STAGES},
                {"success-after", required_argument, NULL, ARG_SUCCESS_AFTER},
                {"stage-timeout", required_argument, NULL, ARG_STAGE_TIMEOUT},
                {"max-failures", required_argument, NULL, ARG_MAX_FAILURES},
                {"watch", no_argument, NULL, ARG_WATCH},
                {"min-healthy-time", required_argument, NULL, ARG_MIN_HEALTHY},
                {"report-deadline", required_argument, NULL, ARG_REPORT_DEADLINE},
                {"auto-revert", no_argument, NULL, ARG_AUTO_REVERT},
                {"until", required_argument, NULL, ARG_UNTIL},
                {"spec", required_argument, NULL, ARG_SPEC},
                {"count", required_argument, NULL, ARG_COUNT},
                {"min-free-mib", required_argument, NULL, ARG_MIN_FREE},
                {"max-level", required_argument, NULL, ARG_MAX_LEVEL},
                {"min-battery", required_argument, NULL, ARG_MIN_BATTERY},
                {"by", required_argument, NULL, ARG_BY},
                {"tenant", required_argument, NULL, ARG_TENANT},
                {"deployment", required_argument, NULL, ARG_DEPLOYMENT},
                {"node", required_argument, NULL, ARG_NODE},
                {"since", required_argument, NULL, ARG_SINCE},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        struct client_options o = {
                .url = getenv("ORBIT_CONTROLLER_URL"),
                .token_file = getenv("ORBIT_CONTROLLER_TOKEN_FILE"),
        };
        unsigned long long v;
        int opt;
        optind = 1;
        while ((opt = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (opt) {
                case ARG_URL: o.url = optarg; break;
                case ARG_TOKEN_FILE: o.token_file = optarg; break;
                case ARG_CERT: o.cert = optarg; break;
                case ARG_KEY: o.key = optarg; break;
                case ARG_CACERT: o.cacert = optarg; break;
                case ARG_KIND: o.kind = optarg; break;
                case ARG_LIMIT: o.limit = optarg; break;
                case ARG_JSON: o.json = 1; break;
                case ARG_ID: o.rollout_id = optarg; break;
                case ARG_BUNDLE: o.bundle = optarg; break;
                case ARG_TARGET: o.target = optarg; break;
                case ARG_STAGES: o.stages = optarg; break;
                case ARG_SUCCESS_AFTER: o.success_after = optarg; break;
                case ARG_STAGE_TIMEOUT: o.stage_timeout = optarg; break;
                case ARG_MAX_FAILURES: o.max_failures = optarg; break;
                case ARG_WATCH: o.watch = 1; break;
                case ARG_MIN_HEALTHY: o.min_healthy_time = optarg; break;
                case ARG_REPORT_DEADLINE: o.report_deadline = optarg; break;
                case ARG_AUTO_REVERT: o.auto_revert = 1; break;
                case ARG_UNTIL: o.until = optarg; break;
                case ARG_SPEC: o.spec_file = optarg; break;
                case ARG_COUNT: o.count = optarg; break;
                case ARG_MIN_FREE: o.min_free_mib = optarg; break;
                case ARG_MAX_LEVEL: o.max_level = optarg; break;
                case ARG_MIN_BATTERY: o.min_battery = optarg; break;
                case ARG_BY: o.usage_by = optarg; break;
                case ARG_TENANT: o.tenant = optarg; break;
                case ARG_DEPLOYMENT: o.deployment = optarg; break;
                case ARG_NODE: o.node = optarg; break;
                case ARG_SINCE: o.since = optarg; break;
                case ARG_EXPIRES:
                        if (parse_unsigned("--expires-in", optarg, 60, 30 * 86400, &v) < 0)
                                return EXIT_USAGE;
                        o.expires_in = (long) v;
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return EXIT_USAGE;
                }
        }
        if (o.cert && o.token_file && getenv("ORBIT_CONTROLLER_TOKEN_FILE") == o.token_file)
                o.token_file = NULL; /* an explicit certificate wins over the environment */
        return client_main(&o, argc - optind, argv + optind);
}

int main(int argc, char *argv[]) {
        if (argc < 2 || streq(argv[1], "--help") || streq(argv[1], "-h") || streq(argv[1], "help")) {
                help();
                return argc < 2 ? EXIT_USAGE : 0;
        }
        if (streq(argv[1], "serve"))
                return cmd_serve(argc - 1, argv + 1);
        if (streq(argv[1], "migrate"))
                return cmd_migrate(argc - 1, argv + 1);
        return cmd_client(argc, argv);
}
