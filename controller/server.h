/* orbit-controller serve: the HTTPS API (libmicrohttpd + GnuTLS, mutual TLS) over the store. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct server_config {
        const char *listen;        /* "ADDR:PORT", "[v6]:PORT"; port 0 picks a free one */
        const char *data_dir;      /* bundles/, and controller.db unless database is set */
        const char *database;      /* NULL, sqlite:PATH or postgresql://... (store-address.h) */
        const char *cert, *key;    /* the server's TLS certificate and key (PEM) */
        const char *node_ca;       /* issues node client certificates (CN = node id) */
        const char *node_ca_key;   /* optional: its key, to renew them (controller/node-cert.h) */
        unsigned node_cert_days;   /* the validity of the certificates it issues */
        const char *operator_ca;   /* optional: issues operator client certificates */
        const char *operator_token_file; /* optional: the operators' bearer token */
        const char *command_key, *command_cert; /* command signer, separate from TLS */
        const char *bundle_keyring; /* optional: uploads must verify against it */
        const char *trust_document; /* optional: the fleet's trust document, sent to nodes that
                                     * have an older one (#18 item 2, docs/security.md) */
        const char *port_file;      /* optional: the bound port is written there */
        unsigned poll_interval_sec; /* next_sync_sec in sync answers */
        uint64_t max_bundle_size;   /* upload bound, bytes */
        unsigned max_connections;        /* at once (the open-files limit is raised to hold them) */
        unsigned max_connections_per_ip; /* from one client address */
        unsigned max_syncs_per_minute;   /* per node, on average (0: no bound) ... */
        unsigned sync_burst;             /* ... and at once: past them, 429 (#18 item 7) */
        unsigned threads;           /* server threads (a libmicrohttpd pool); 0: the CPUs online, at most 8 */
        unsigned request_deadline_sec; /* a connection with no authorized request is closed this
                                        * long after it opened (conn-guard.h); 0: never */
        unsigned timeout_sec;       /* idle connection timeout: above the nodes' in-pass cadence
                                     * (poll_interval_sec), so a pass is one TLS connection */
        bool tls_tickets;           /* issue TLS 1.3 session tickets (docs/protocol.md: they
                                     * cost more bytes than they save with GnuTLS 3.7) */
        bool tls_session_cache;     /* resume TLS 1.2 sessions by their id from a cache in
                                     * memory (docs/protocol.md, "One connection a pass") */
        const char *tcp_congestion; /* optional: TCP_CONGESTION of the listening socket, which
                                     * the accepted connections inherit (what we send) */
        int64_t retain_records_sec; /* records older than this are deleted (critical kept); 0: never */
        int64_t max_records_per_node; /* records kept per node, oldest droppable ones go first; 0: no bound */
        int64_t usage_exact_days;     /* usage reports kept whole this many days, then one a day */
        int64_t max_usage_reports_per_node; /* usage entry reports per node, thinned oldest first; 0: no bound */
        int64_t pass_gap_sec;       /* a node's syncs closer than this are one pass */
        const char *viewer_token_file; /* optional: a bearer token that may only read */
        const char *release_token_file; /* optional: the release manager's bearer token (api.h) */
        const char *web_dir;        /* the dashboard's static files */
        bool no_zstd;               /* take and send plain sync bodies only, as before zstd */
        const char *zstd_dictionary; /* optional: the nodes' link.zstd_dictionary file */
};

/* Serve until SIGTERM or SIGINT. Returns 0 after a clean stop, negative errno on failure. */
int server_run(const struct server_config *c);
