/*
 * The controller's HTTPS server: libmicrohttpd with its internal polling thread (one
 * thread: every request, and so every store access, runs there in turn), GnuTLS for
 * mutual TLS. Requests are parsed and answered by api.c and applied by store.c.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>

#include "controller/api.h"
#include "update/bundle.h"
#include "proto/body-codec.h"
#include "proto/command.h"
#include "lib/fileio.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "controller/metrics.h"
#include "controller/range.h"
#include "controller/rollout.h"
#include "controller/server.h"
#include "controller/tls-cache.h"
#include "controller/node-rate.h"
#include "controller/conn-guard.h"
#include "controller/node-takes.h"
#include "controller/node-cert.h"
#include "lib/sha256.h"
#include "update/signature.h"
#include "update/trust.h"
#include "controller/store.h"

#define PEM_MAX (256 * 1024)
#define PEER_CHAIN_MAX 8

struct server {
        const struct server_config *config;
        char db_path[4200]; /* the default: DATA_DIR/controller.db */
        const char *database; /* what the store opens: --database, or db_path */
        /* each server thread has its own store connection (thread_store) */
        char bundles_dir[4096];
        /* the bearer tokens, by the role each gives; text NULL: none for that role */
        struct {
                char *text;
                size_t len;
        } tokens[API_ROLE_RELEASE_MANAGER + 1];
        struct metrics_counters counters;
        struct store *tick_store; /* the main thread's own connection, for the rollout tick */
        int leading;              /* tick_store leads the periodic jobs (store_lead); -1: not asked yet */
        gnutls_x509_trust_list_t node_trust, operator_trust;
        struct signature_keyring *bundle_keyring;
        struct trust *trust; /* --trust-document, checked at start */
        struct node_rate node_rate; /* syncs per node */
        pthread_mutex_t node_rate_lock;
        struct node_ca *node_ca; /* --node-ca-key: renews node certificates; NULL: off */
        pthread_mutex_t node_ca_lock; /* one issue at a time: the key, and the day's count */
        pthread_mutex_t bundle_lock;  /* an upload's check, file and row (bundle_store) */
        struct body_dictionary *dictionary; /* --zstd-dictionary */
        /* Encrypts TLS 1.3 session tickets: a node resumes its session at the next pass
         * without a certificate exchange. In memory only: a restart costs one full handshake. */
        gnutls_datum_t ticket_key;
        /* --tls-session-cache: TLS 1.2 sessions by id, for the server's thread and the
         * main one (it is freed there) */
        struct tls_cache tls_cache;
        pthread_mutex_t tls_cache_lock;
        /* what each node said it takes (docs/protocol.md, "Format 2") */
        struct node_takes_table node_takes;
        pthread_mutex_t node_takes_lock;
        /* the open connections, for shedding unauthenticated ones (conn-guard.h): the server's
         * thread adds, trusts and removes; the main thread closes those past the deadline */
        struct conn_guard conn_guard;
        pthread_mutex_t conn_guard_lock;
        bool thread_store_key_made;
        const char *failpoint_sync_stall; /* tests only: failpoint_sync_stall */
};

enum peer_kind {
        PEER_NONE,      /* no client certificate */
        PEER_UNTRUSTED, /* a certificate that does not verify */
        PEER_NODE,
        PEER_OPERATOR,
        /* a node certificate whose only fault is its expiry: the certificate route alone
         * takes it, for a node an operator gave leave to (docs/security.md) */
        PEER_NODE_EXPIRED,
};

/* What a connection's client certificate proved (peer_identify). */
struct peer_memo {
        enum peer_kind kind; /* PEER_NONE: nothing kept */
        uint8_t digest[SHA256_DIGEST_SIZE];
        char cn[API_ID_MAX + 1];
        char serial[NODE_CERT_SERIAL_MAX + 1];
        int64_t not_after, not_before;
        int64_t valid_until; /* reused before this only (peer_identify) */
        enum api_role role;
        /* its node was asked for revocations at a request on this connection and had none
         * for it: a sync after it has the store check instead, in its own transaction */
        bool not_revoked;
};

/* A connection's socket context: the guard's track, and who the peer is. */
struct conn_ctx {
        struct conn_track track; /* first: conn_guard's lists hold &track */
        struct peer_memo peer;
};

static int64_t min_i64(int64_t a, int64_t b) {
        return a < b ? a : b;
}

struct request {
        struct api_match match;
        int route_r;
        bool responded; /* an early answer was queued */
        /* in-memory bodies */
        char *body;
        size_t body_len, body_cap, body_max;
        bool too_large;
        /* bundle uploads stream to a temp file */
        int upload_fd;
        char upload_path[4200];
        uint64_t upload_len;
        struct sha256_ctx sha;
        bool sha_started; /* live until finalized or freed */
        int upload_error;
        char peer_cn[API_ID_MAX + 1];
        char peer_serial[NODE_CERT_SERIAL_MAX + 1]; /* of the client certificate, hex */
        int64_t peer_not_after, peer_not_before;
        enum peer_kind peer;
        enum api_role peer_cert_role; /* what an operator certificate's OU names */
        int64_t peer_chain_until;     /* the first expiry on the chain verified, its anchor's too */
        struct peer_memo *memo;       /* the connection's, when it holds this peer's verdict */
        bool revocation_in_sync;      /* the sync's transaction checks revocation (authorize) */
        enum api_role role;
        const char *method; /* MHD's, valid for the request's life */
        const char *url;    /* the same */
};

static pthread_key_t thread_store_key;

static int sign_payload(void *userdata, const char *payload, char **ret_signature, char **ret_reason);
static int sign_desired(void *userdata, const char *payload, char **ret_signature, char **ret_reason);

/*
 * The calling server thread's own store connection, opened at its first request and closed
 * when the thread ends (each SQLite connection belongs to one thread: docs/architecture.md);
 * NULL, logged, when it cannot be opened.
 */
static struct store *thread_store(struct server *srv) {
        struct store *st = pthread_getspecific(thread_store_key);
        if (st)
                return st;
        _cleanup_free_ char *reason = NULL;
        int r = store_open(srv->database, &st, &reason);
        if (r < 0) {
                log_error_errno(r, "a server thread cannot open the store: %s", reason ? reason : strerror(-r));
                return NULL;
        }
        /* rollouts queue signed commands at syncs, in the sync's transaction */
        store_set_command_signer(st, sign_payload, srv);
        store_set_desired_signer(st, sign_desired, srv);
        store_set_record_quota(st, srv->config->max_records_per_node);
        store_set_pass_gap(st, srv->config->pass_gap_sec);
        if (pthread_setspecific(thread_store_key, st) != 0) {
                store_close(st);
                return NULL;
        }
        return st;
}

static void thread_store_close(void *st) {
        store_close(st);
}

/* The counters are counted by every server thread and the main one: the new value. */
#define COUNT(srv, field, n) __atomic_add_fetch(&(srv)->counters.field, (uint64_t) (n), __ATOMIC_RELAXED)

static int64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static int64_t now_sec(void) {
        return (int64_t) time(NULL);
}

static void format_utc(int64_t t, char buf[static 32]) {
        struct tm tm;
        time_t tt = (time_t) t;
        if (!gmtime_r(&tt, &tm) || strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                snprintf(buf, 32, "%lld", (long long) t);
}

/* ---- responses ---------------------------------------------------------------------- */

/* A JSON text (taken) as a response, with a trailing newline. */
static struct MHD_Response *text_response(char *text, size_t *ret_len) {
        if (!text)
                return NULL;
        size_t len = strlen(text);
        /* A trailing newline makes curl output readable; JSON parsers do not mind. */
        char *with_newline = realloc(text, len + 2);
        if (!with_newline) {
                free(text);
                return NULL;
        }
        with_newline[len] = '\n';
        with_newline[len + 1] = '\0';
        struct MHD_Response *resp = MHD_create_response_from_buffer(len + 1, with_newline,
                                                                    MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(with_newline);
                return NULL;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        if (ret_len)
                *ret_len = len + 1;
        return resp;
}

static enum MHD_Result queue_text(struct MHD_Connection *conn, unsigned status, char *text) {
        struct MHD_Response *resp = text_response(text, NULL);
        if (!resp)
                return MHD_NO;
        enum MHD_Result ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* Answer with a JSON value (reference taken); *ret_len (may be NULL): its size. */
static enum MHD_Result respond_json_len(struct MHD_Connection *conn, unsigned status, json_t *v,
                                        size_t *ret_len) {
        if (!v)
                return MHD_NO;
        char *text = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(v);
        if (ret_len)
                *ret_len = text ? strlen(text) + 1 : 0;
        return queue_text(conn, status, text);
}

static enum MHD_Result respond_json(struct MHD_Connection *conn, unsigned status, json_t *v) {
        return respond_json_len(conn, status, v, NULL);
}

static const char *error_code(unsigned status) {
        switch (status) {
        case 400: return "bad-request";
        case 401: return "unauthorized";
        case 403: return "forbidden";
        case 404: return "not-found";
        case 405: return "method-not-allowed";
        case 409: return "conflict";
        case 410: return "gone";
        case 411: return "length-required";
        case 413: return "too-large";
        case 415: return "unsupported-coding";
        case 416: return "range-not-satisfiable";
        case 422: return "unprocessable";
        case 429: return "too-many-requests";
        case 503: return "unavailable";
        default: return "internal";
        }
}

/* The error body of an answer (logged when the fault is ours: 5xx). */
static char *error_body(unsigned status, const char *fmt, va_list ap) {
        _cleanup_free_ char *msg = NULL;
        if (vasprintf(&msg, fmt, ap) < 0)
                msg = NULL;
        if (status >= 500)
                log_error("answer %u: %s", status, msg ? msg : "");
        return api_error_body(error_code(status), msg ? msg : "");
}

_printf_(3, 4) static enum MHD_Result respond_error(struct MHD_Connection *conn, unsigned status,
                                                   const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *body = error_body(status, fmt, ap);
        va_end(ap);
        return queue_text(conn, status, body);
}

static enum MHD_Result respond_errno(struct MHD_Connection *conn, int r, const char *what) {
        if (r == -ENOENT)
                return respond_error(conn, 404, "%s: not found", what);
        if (r == -EBUSY)
                return respond_error(conn, 503, "%s: the store is busy, retry", what);
        return respond_error(conn, 500, "%s: %s", what, strerror(-r));
}

/* ---- peers -------------------------------------------------------------------------- */

static bool chain_verifies(gnutls_x509_trust_list_t tl, gnutls_x509_crt_t *chain, unsigned n) {
        if (!tl || n == 0)
                return false;
        unsigned status = 0;
        int r = gnutls_x509_trust_list_verify_crt(tl, chain, n, 0, &status, NULL);
        return r == 0 && status == 0;
}

/* The chain verifies against tl but for the times: a node certificate that expired. */
static bool chain_verifies_but_expiry(gnutls_x509_trust_list_t tl, gnutls_x509_crt_t *chain, unsigned n) {
        if (!tl || n == 0)
                return false;
        unsigned status = 0;
        int r = gnutls_x509_trust_list_verify_crt(tl, chain, n, GNUTLS_VERIFY_DISABLE_TIME_CHECKS, &status, NULL);
        return r == 0 && status == 0;
}

/*
 * Who is on the other end: a node or an operator by the CA that verifies its chain
 * (gnutls_certificate_verify_peers2 first, against every CA we trust; then each CA on
 * its own to tell the roles apart), and the subject CN; the leaf's serial and notAfter
 * into req. A chain of the node CA refused only because its leaf expired (before now) is
 * PEER_NODE_EXPIRED.
 */
/*
 * The role an operator certificate's subject names in its OU (api.h): API_ROLE_OPERATOR
 * when no OU names one, API_ROLE_NONE when two OUs name different roles.
 */
static enum api_role cert_role(gnutls_x509_crt_t crt) {
        enum api_role role = API_ROLE_NONE;
        for (unsigned i = 0; i < 16; i++) {
                char ou[64];
                size_t size = sizeof(ou);
                int r = gnutls_x509_crt_get_dn_by_oid(crt, GNUTLS_OID_X520_ORGANIZATIONAL_UNIT_NAME, i, 0, ou,
                                                      &size);
                if (r == GNUTLS_E_REQUESTED_DATA_NOT_AVAILABLE)
                        break;
                if (r < 0 || strlen(ou) != size)
                        continue; /* too long for a role name, or with a NUL in it */
                enum api_role named = api_role_from_string(ou);
                if (named == API_ROLE_NONE)
                        continue; /* a team's name, say */
                if (role != API_ROLE_NONE && role != named)
                        return API_ROLE_NONE;
                role = named;
        }
        return role == API_ROLE_NONE ? API_ROLE_OPERATOR : role;
}

static enum peer_kind peer_verify(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        char *cn = req->peer_cn;
        size_t cn_size = sizeof(req->peer_cn);
        cn[0] = '\0';
        req->peer_serial[0] = '\0';
        req->peer_not_after = 0;
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        if (!ci || !ci->tls_session)
                return PEER_NONE;
        gnutls_session_t session = (gnutls_session_t) ci->tls_session;
        unsigned n = 0;
        const gnutls_datum_t *certs = gnutls_certificate_get_peers(session, &n);
        if (!certs || n == 0)
                return PEER_NONE;
        if (n > PEER_CHAIN_MAX)
                return PEER_UNTRUSTED;
        COUNT(srv, certs_verified, 1);
        unsigned status = 0;
        bool verified = gnutls_certificate_verify_peers2(session, &status) >= 0 && status == 0;
        gnutls_x509_crt_t chain[PEER_CHAIN_MAX] = {};
        unsigned imported = 0;
        enum peer_kind kind = PEER_UNTRUSTED;
        for (; imported < n; imported++) {
                if (gnutls_x509_crt_init(&chain[imported]) < 0)
                        goto out;
                if (gnutls_x509_crt_import(chain[imported], &certs[imported],
                                           GNUTLS_X509_FMT_DER) < 0) {
                        imported++;
                        goto out;
                }
        }
        size_t size = cn_size;
        if (gnutls_x509_crt_get_dn_by_oid(chain[0], GNUTLS_OID_X520_COMMON_NAME, 0, 0, cn,
                                          &size) < 0 ||
            strlen(cn) != size)
                cn[0] = '\0';
        unsigned char serial[32];
        size = sizeof(serial);
        if (gnutls_x509_crt_get_serial(chain[0], serial, &size) >= 0 && size * 2 <= NODE_CERT_SERIAL_MAX) {
                /* as openssl prints it: no leading zero bytes */
                size_t skip = 0;
                while (skip + 1 < size && serial[skip] == 0)
                        skip++;
                for (size_t i = skip; i < size; i++)
                        snprintf(req->peer_serial + 2 * (i - skip), 3, "%02x", serial[i]);
        }
        req->peer_not_after = (int64_t) gnutls_x509_crt_get_expiration_time(chain[0]);
        req->peer_not_before = (int64_t) gnutls_x509_crt_get_activation_time(chain[0]);
        req->peer_cert_role = cert_role(chain[0]);
        if (!verified) {
                if ((status & GNUTLS_CERT_EXPIRED) && req->peer_not_after < now_sec() &&
                    !(status & ~(GNUTLS_CERT_INVALID | GNUTLS_CERT_EXPIRED)) &&
                    chain_verifies_but_expiry(srv->node_trust, chain, n))
                        kind = PEER_NODE_EXPIRED;
                gnutls_datum_t out = {};
                if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &out, 0) >= 0) {
                        log_info("client certificate refused: %s (CN \"%s\")", out.data, cn);
                        gnutls_free(out.data);
                }
                goto out;
        }
        gnutls_x509_trust_list_t anchors = NULL;
        if (chain_verifies(srv->node_trust, chain, n)) {
                kind = PEER_NODE;
                anchors = srv->node_trust;
        } else if (chain_verifies(srv->operator_trust, chain, n)) {
                kind = PEER_OPERATOR;
                anchors = srv->operator_trust;
        }
        if (anchors) { /* what a verification later would find expired first */
                int64_t until = INT64_MAX;
                for (unsigned i = 0; i < n; i++)
                        until = min_i64(until, (int64_t) gnutls_x509_crt_get_expiration_time(chain[i]));
                gnutls_x509_crt_t issuer = NULL; /* the list's own: not freed */
                if (gnutls_x509_trust_list_get_issuer(anchors, chain[n - 1], &issuer, 0) >= 0 && issuer)
                        until = min_i64(until, (int64_t) gnutls_x509_crt_get_expiration_time(issuer));
                req->peer_chain_until = until;
        }
out:
        for (unsigned i = 0; i < imported; i++)
                if (chain[i])
                        gnutls_x509_crt_deinit(chain[i]);
        return kind;
}


/* The longest a connection's verdict on its peer's chain is reused. */
#define PEER_MEMO_SEC 3600

/* The digest of the chain a peer presented: its certificates in order, each after its length. */
static void peer_chain_digest(const gnutls_datum_t *certs, unsigned n, uint8_t out[SHA256_DIGEST_SIZE]) {
        struct sha256_ctx c;
        sha256_init(&c);
        for (unsigned i = 0; i < n; i++) {
                uint32_t len = certs[i].size;
                sha256_update(&c, &len, sizeof(len));
                sha256_update(&c, certs[i].data, certs[i].size);
        }
        sha256_final(&c, out);
}

/*
 * Who the client is, verified once a connection: a node sends its syncs of a pass on one
 * connection, and verifying its chain (twice: gnutls's and the node CA's list) was a
 * quarter of the controller's CPU a sync when every request did it. The verdict is kept
 * only when it trusts the peer, for the same chain (renegotiation cannot slip another one
 * in), from the leaf's start to the first expiry on the chain or of its anchor, and for an
 * hour at most (time is what changes a verdict; the trust lists are loaded once).
 * Revocation is not kept here: authorize asks the store at a connection's first request,
 * and each sync after it reads it in its own transaction.
 */
static enum peer_kind peer_identify(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_ctx *ctx = ci && ci->socket_context ? ci->socket_context : NULL;
        const union MHD_ConnectionInfo *ti = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        unsigned n = 0;
        const gnutls_datum_t *certs =
                ti && ti->tls_session ? gnutls_certificate_get_peers((gnutls_session_t) ti->tls_session, &n) : NULL;
        if (!ctx || !certs || n == 0 || n > PEER_CHAIN_MAX)
                return peer_verify(srv, conn, req);
        uint8_t digest[SHA256_DIGEST_SIZE];
        peer_chain_digest(certs, n, digest);
        struct peer_memo *m = &ctx->peer;
        int64_t now = now_sec();
        if (m->kind != PEER_NONE && memcmp(m->digest, digest, sizeof(digest)) == 0 && now >= m->not_before &&
            now < m->valid_until) {
                memcpy(req->peer_cn, m->cn, sizeof(req->peer_cn));
                memcpy(req->peer_serial, m->serial, sizeof(req->peer_serial));
                req->peer_not_after = m->not_after;
                req->peer_not_before = m->not_before;
                req->peer_cert_role = m->role;
                req->memo = m;
                return m->kind;
        }
        enum peer_kind kind = peer_verify(srv, conn, req);
        m->kind = PEER_NONE;
        m->not_revoked = false;
        if (kind == PEER_NODE || kind == PEER_OPERATOR) {
                memcpy(m->digest, digest, sizeof(digest));
                memcpy(m->cn, req->peer_cn, sizeof(m->cn));
                memcpy(m->serial, req->peer_serial, sizeof(m->serial));
                m->not_after = req->peer_not_after;
                m->not_before = req->peer_not_before;
                m->valid_until = min_i64(req->peer_chain_until, now + PEER_MEMO_SEC);
                m->role = req->peer_cert_role;
                m->kind = kind;
                req->memo = m;
        }
        return kind;
}

static enum MHD_Result refuse_role(struct MHD_Connection *conn, const struct request *req, enum api_role needed,
                                   const char *what) {
        return respond_error(conn, 403, "%s needs the %s role; %s has the %s role", what,
                             api_role_to_string(needed),
                             req->peer == PEER_OPERATOR ? "this certificate" : "this token",
                             api_role_to_string(req->role));
}

/* The answer to a node whose certificate is revoked: all its node's made until before are. */
static enum MHD_Result refuse_revoked(struct MHD_Connection *conn, const struct request *req, int64_t before) {
        char made[32], when[32];
        format_utc(req->peer_not_before, made);
        format_utc(before, when);
        log_notice("node %s refused: its certificate (serial %s, made %s) is revoked (all made until %s are)",
                   req->peer_cn, req->peer_serial, made, when);
        _cleanup_free_ char *msg = NULL;
        if (asprintf(&msg, "the client certificate of node \"%s\" (serial %s) is revoked: an operator revoked "
                     "the node's certificates made until %s", req->peer_cn, req->peer_serial, when) < 0)
                msg = NULL;
        return queue_text(conn, 403, api_error_body("certificate-revoked", msg ? msg : "revoked"));
}

/*
 * A node certificate made at or before its node's revocation time (an operator's
 * `orbit-controller node revoke-certs`): true with the 403 queued, whatever the route.
 */
static bool cert_revoked(struct server *srv, struct MHD_Connection *conn, struct request *req, enum MHD_Result *ret) {
        struct store *st = thread_store(srv);
        int64_t before = 0;
        if (!st || store_node_certs_revoked_before(st, req->peer_cn, &before) < 0) {
                *ret = respond_error(conn, 503, "the controller cannot read its database: see its log");
                return true;
        }
        if (before == 0 || req->peer_not_before > before)
                return false;
        *ret = refuse_revoked(conn, req, before);
        return true;
}

/* The bearer token's role into req->role: 0, or the refusal queued (as authorize). */
static int token_role(struct server *srv, struct MHD_Connection *conn, struct request *req,
                      enum MHD_Result *ret) {
        const char *token =
                api_bearer_token(MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_AUTHORIZATION));
        if (!token) {
                *ret = respond_error(conn, 401,
                                     "operator credentials required: a bearer token or an "
                                     "operator client certificate");
                return 1;
        }
        size_t len = strnlen(token, API_TOKEN_MAX + 1);
        /* All compared, whichever matches: the time says nothing about which role it is. */
        req->role = API_ROLE_NONE;
        for (size_t i = 0; i < ELEMENTSOF(srv->tokens); i++)
                if (srv->tokens[i].text && api_secret_equal(token, len, srv->tokens[i].text, srv->tokens[i].len))
                        req->role = (enum api_role) i;
        if (req->role == API_ROLE_NONE) {
                *ret = respond_error(conn, 403, "the bearer token is not valid");
                return 1;
        }
        return 0;
}

/*
 * 0 when the request may go on, else the answer was queued (401/403) and the result is
 * what the access handler returns.
 */
static int authorize(struct server *srv, struct MHD_Connection *conn, struct request *req,
                     enum MHD_Result *ret) {
        req->peer = peer_identify(srv, conn, req);
        enum api_route route = req->match.route;

        if (req->peer == PEER_NODE || req->peer == PEER_NODE_EXPIRED) {
                /* Revocation: asked of the store here at every request but a sync on a
                 * connection whose earlier request found none, which has its own
                 * transaction read it with the node's row (store_sync_node): the same
                 * answer, one round trip fewer (though its rate limit and body come
                 * first). The first request asks here, before the connection is trusted:
                 * a revoked key cannot hold one. */
                if (route == API_ROUTE_SYNC && req->peer == PEER_NODE && req->memo && req->memo->not_revoked)
                        req->revocation_in_sync = true;
                else if (cert_revoked(srv, conn, req, ret))
                        return 1;
                else if (req->memo)
                        req->memo->not_revoked = true;
        }
        if (req->peer == PEER_NODE_EXPIRED) {
                /* the certificate route only, for this node's own id: the leave an operator
                 * gave is checked there (handle_certificate) */
                if (route == API_ROUTE_NODE_CERTIFICATE && streq(req->peer_cn, req->match.id))
                        return 0;
                char when[32];
                format_utc(req->peer_not_after, when);
                _cleanup_free_ char *msg = NULL;
                if (asprintf(&msg, "the client certificate of node \"%s\" expired at %s; it can be renewed "
                             "(POST /v1/nodes/%s/certificate) once an operator allows it: "
                             "orbit-controller node allow-renew %s", req->peer_cn, when, req->peer_cn,
                             req->peer_cn) < 0)
                        msg = NULL;
                *ret = queue_text(conn, 403, api_error_body("certificate-expired", msg ? msg : "expired"));
                return 1;
        }
        if (req->peer == PEER_UNTRUSTED) {
                *ret = respond_error(conn, 403,
                                     "the client certificate does not verify against the node "
                                     "or operator CA");
                return 1;
        }
        if (route == API_ROUTE_SYNC || route == API_ROUTE_NODE_CERTIFICATE) {
                if (req->peer == PEER_NONE) {
                        *ret = respond_error(conn, 401, "a node client certificate is required");
                        return 1;
                }
                if (req->peer != PEER_NODE) {
                        *ret = respond_error(conn, 403, route == API_ROUTE_SYNC ? "only nodes may sync"
                                                        : "only nodes may ask for a certificate");
                        return 1;
                }
                if (!streq(req->peer_cn, req->match.id)) {
                        *ret = respond_error(conn, 403,
                                             "the client certificate is for node \"%s\", not "
                                             "\"%s\"",
                                             req->peer_cn, req->match.id);
                        return 1;
                }
                return 0;
        }
        if (route == API_ROUTE_BUNDLE_DOWNLOAD && req->peer == PEER_NODE)
                return 0;
        if (route == API_ROUTE_WEB)
                return 0; /* static files: no data in them */
        /* The operator API. Nodes never reach it, whatever else they present. */
        if (req->peer == PEER_NODE) {
                *ret = respond_error(conn, 403, "node certificates cannot use the operator API");
                return 1;
        }
        if (req->peer == PEER_OPERATOR) {
                req->role = req->peer_cert_role;
                if (req->role == API_ROLE_NONE) {
                        *ret = respond_error(conn, 403,
                                             "the operator certificate of \"%s\" names two roles in its OU",
                                             req->peer_cn);
                        return 1;
                }
        } else {
                int r = token_role(srv, conn, req, ret);
                if (r != 0)
                        return r;
        }
        enum api_role needed = api_role_needed(&req->match, req->method);
        if (req->role < needed) {
                char what[600];
                snprintf(what, sizeof(what), "%s %.500s", req->method, req->url ? req->url : "?");
                *ret = refuse_role(conn, req, needed, what);
                return 1;
        }
        return 0;
}


/* ---- handlers ----------------------------------------------------------------------- */

/*
 * An answer on the sync route (docs/protocol.md, "Compression" and "Format 2"): a JSON text
 * sent in zstd when the node takes it (said in this request, or kept from the last one
 * that said) and that is smaller with the header it needs, with the dictionary when the
 * node named the same one; text NULL with 204: no body. What this controller takes
 * (Accept-Encoding, its dictionary's id, the sync formats) is said in answer to a request
 * that said what the node takes, to a node it keeps nothing of (it says it again), and in
 * every error. *ret_len: the bytes of the body sent.
 */
static enum MHD_Result sync_respond(struct server *srv, struct MHD_Connection *conn, const char *node,
                                    unsigned status, char *text, size_t *ret_len) {
        struct MHD_Response *resp = NULL;
        if (!text && status != MHD_HTTP_NO_CONTENT)
                return MHD_NO;
        const char *ae = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
        const char *dh = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, BODY_CODEC_DICTIONARY_HEADER);
        bool said = ae || MHD_lookup_connection_value(conn, MHD_HEADER_KIND, SYNC_FORMAT_HEADER);
        struct node_takes takes = {};
        bool known = said;
        if (said) {
                takes.zstd = body_codec_accepts_zstd(ae);
                if (body_dictionary_id_parse(dh, &takes.dictionary_id) < 0)
                        takes.dictionary_id = 0;
        }
        pthread_mutex_lock(&srv->node_takes_lock);
        if (said)
                (void) node_takes_set(&srv->node_takes, node, takes.zstd, takes.dictionary_id, now_sec());
        else {
                const struct node_takes *kept = node_takes_get(&srv->node_takes, node, now_sec());
                if (kept) {
                        takes = *kept;
                        known = true;
                }
        }
        pthread_mutex_unlock(&srv->node_takes_lock);
        if (text && !srv->config->no_zstd && takes.zstd) {
                const struct body_dictionary *dict =
                        srv->dictionary && takes.dictionary_id == body_dictionary_id(srv->dictionary)
                                ? srv->dictionary
                                : NULL;
                char *z = NULL, *zd = NULL;
                size_t zlen = 0, zdlen = 0, len = strlen(text);
                /* The dictionary is trained on records, what requests carry; an answer is
                 * acks and commands, which it may make larger (250 acks: 639 bytes with
                 * it, 329 without): the smaller of the two goes. */
                if (body_compress(text, len, NULL, BODY_CODEC_LEVEL, &z, &zlen) < 0)
                        z = NULL;
                if (z && dict && body_compress(text, len, dict, BODY_CODEC_LEVEL, &zd, &zdlen) >= 0) {
                        if (zdlen < zlen) {
                                free(z);
                                z = zd;
                                zlen = zdlen;
                        } else
                                free(zd);
                }
                /* in zstd only when that saves more than its Content-Encoding header costs:
                 * a small answer goes plain */
                if (z && zlen + BODY_CODEC_HEADER_COST < len) {
                        resp = MHD_create_response_from_buffer(zlen, z, MHD_RESPMEM_MUST_FREE);
                        if (!resp) {
                                free(z);
                                free(text);
                                return MHD_NO;
                        }
                        free(text);
                        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_ENCODING, "zstd");
                        if (ret_len)
                                *ret_len = zlen;
                } else
                        free(z);
        }
        if (!resp && !text) {
                if (!(resp = MHD_create_response_from_buffer(0, (void *) "", MHD_RESPMEM_PERSISTENT)))
                        return MHD_NO;
                if (ret_len)
                        *ret_len = 0;
        } else if (!resp) {
                if (!(resp = text_response(text, ret_len)))
                        return MHD_NO;
                /* The sync route's bodies are JSON, always: on an idle sync over a slow link the
                 * 32 bytes of a Content-Type are a tenth of the answer (docs/protocol.md). */
                (void) MHD_del_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
        }
        if (said || !known || status >= 300) {
                if (!srv->config->no_zstd) {
                        /* what a node may send (RFC 9110, 12.5.3: in a response, the codings
                         * preferred in requests) */
                        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_ENCODING, "zstd");
                        if (srv->dictionary) {
                                char id[16];
                                snprintf(id, sizeof(id), "%" PRIu32, body_dictionary_id(srv->dictionary));
                                (void) MHD_add_response_header(resp, BODY_CODEC_DICTIONARY_HEADER, id);
                        }
                }
                char formats[8];
                snprintf(formats, sizeof(formats), "%d", SYNC_FORMAT_COMPACT);
                (void) MHD_add_response_header(resp, SYNC_FORMAT_HEADER, formats);
        }
        enum MHD_Result ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

_printf_(5, 6) static enum MHD_Result sync_respond_error(struct server *srv, struct MHD_Connection *conn,
                                                         const char *node, unsigned status, const char *fmt, ...) {
        va_list ap;
        va_start(ap, fmt);
        char *body = error_body(status, fmt, ap);
        va_end(ap);
        return sync_respond(srv, conn, node, status, body, NULL);
}

/* The request body as JSON: a zstd one decoded, never past SYNC_BODY_MAX. 0 with *ret
 * NULL: the body is plain; else *ret (caller frees) holds the text. Errors answer. */
static int sync_body_decode(struct server *srv, struct MHD_Connection *conn, struct request *req, char **ret,
                            size_t *ret_len, enum MHD_Result *ret_answer) {
        const char *ce = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_ENCODING);
        enum body_coding coding;
        *ret = NULL;
        if (body_coding_parse(ce, &coding) < 0 || (coding == BODY_CODING_ZSTD && srv->config->no_zstd)) {
                log_info("sync from %s refused: content coding \"%.64s\"", req->match.id, ce);
                *ret_answer = sync_respond_error(srv, conn, req->match.id, 415, "content coding \"%.64s\" is not taken here%s",
                                                 ce, srv->config->no_zstd ? ": plain JSON only" : ": zstd or none");
                return -EOPNOTSUPP;
        }
        if (coding == BODY_CODING_IDENTITY)
                return 0;
        _cleanup_free_ char *why = NULL;
        int r = body_decompress(req->body ? req->body : "", req->body_len, SYNC_BODY_MAX, srv->dictionary, ret,
                                ret_len, &why);
        if (r == -ENOMEM)
                *ret_answer = MHD_NO;
        else if (r == -EFBIG)
                *ret_answer = sync_respond_error(srv, conn, req->match.id, 413, "%s", why ? why : "body too large");
        else if (r == -ENOKEY) /* the node names our old dictionary: it learns the new one from this */
                *ret_answer = sync_respond_error(srv, conn, req->match.id, 415, "%s", why ? why : "another zstd dictionary");
        else if (r < 0)
                *ret_answer = sync_respond_error(srv, conn, req->match.id, 400, "sync: %s", why ? why : "malformed zstd body");
        if (r < 0)
                log_info("sync from %s refused: %s", req->match.id, why ? why : strerror(-r));
        return r;
}

/*
 * Tests only (ORBIT_FAILPOINT_SYNC_STALL_FILE=F): while F exists and holds this node's id, its
 * sync stops after the parse, as a slow parse or transaction would hold its thread.
 */
static void failpoint_sync_stall(struct server *srv, const char *node) {
        const char *f = srv->failpoint_sync_stall;
        char who[API_ID_MAX + 2];
        if (!f)
                return;
        _cleanup_fclose_ FILE *in = fopen(f, "re");
        if (!in || !fgets(who, sizeof(who), in) || (who[strcspn(who, "\n")] = '\0', !streq(who, node)))
                return;
        log_notice("failpoint: the sync of %s stalls while %s exists", node, f);
        while (access(f, F_OK) == 0)
                usleep(20000);
        log_notice("failpoint: the sync of %s goes on", node);
}

/* 429 with Retry-After: a node syncing faster than --max-syncs-per-minute (#18 item 7). */
static enum MHD_Result sync_too_often(struct server *srv, struct MHD_Connection *conn, const char *node,
                                      int64_t retry_sec) {
        uint64_t limited = COUNT(srv, syncs_limited, 1);
        if (limited % 100 == 1) /* a node in a loop must not fill the log */
                log_warning("sync from %s refused: more than %u syncs a minute (%" PRIu64 " refused in all)", node,
                            srv->config->max_syncs_per_minute, limited);
        char *body = api_error_body(error_code(429), "too many syncs: try again later");
        struct MHD_Response *resp = text_response(body, NULL);
        if (!resp)
                return MHD_NO;
        char retry[32];
        snprintf(retry, sizeof(retry), "%" PRId64, retry_sec);
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, retry);
        enum MHD_Result ret = MHD_queue_response(conn, 429, resp);
        MHD_destroy_response(resp);
        return ret;
}

static enum MHD_Result handle_sync(struct server *srv, struct MHD_Connection *conn,
                                   struct request *req) {
        int64_t retry_sec = 0;
        pthread_mutex_lock(&srv->node_rate_lock);
        bool may = node_rate_take(&srv->node_rate, req->match.id, now_usec(), &retry_sec);
        pthread_mutex_unlock(&srv->node_rate_lock);
        if (!may)
                return sync_too_often(srv, conn, req->match.id, retry_sec);
        struct sync_request sr;
        _cleanup_free_ char *message = NULL, *decoded = NULL;
        size_t decoded_len = 0;
        enum MHD_Result answer;
        if (sync_body_decode(srv, conn, req, &decoded, &decoded_len, &answer) < 0)
                return answer;
        int r = sync_request_parse(decoded ? decoded : req->body ? req->body : "",
                                   decoded ? decoded_len : req->body_len, req->match.id, &sr, &message);
        failpoint_sync_stall(srv, req->match.id);
        if (r == -ENOMEM)
                return MHD_NO;
        if (r < 0) {
                log_info("sync from %s refused: %s", req->match.id, message ? message : "");
                return sync_respond_error(srv, conn, req->match.id, 400, "%s", message ? message : "invalid sync");
        }
        int64_t now = now_sec();
        json_t *commands = NULL;
        size_t stored = 0;
        /* the certificate in use, the node's trust and desired state: kept in the sync */
        struct store_sync_node nd = {.cert_serial = req->peer_serial[0] ? req->peer_serial : NULL,
                                     .cert_not_after = req->peer_not_after,
                                     .keep_trust = srv->trust != NULL,
                                     .check_revoked = req->revocation_in_sync,
                                     .cert_not_before = req->peer_not_before};
        r = store_sync_node(thread_store(srv), &sr, now, SYNC_COMMANDS_MAX, &nd, &commands, &stored);
        if (r < 0) {
                sync_request_done(&sr);
                if (r == -EKEYREVOKED) { /* revoked since this connection's first request */
                        if (req->memo)
                                req->memo->not_revoked = false;
                        return refuse_revoked(conn, req, nd.revoked_before);
                }
                if (r == -EBUSY)
                        return sync_respond_error(srv, conn, req->match.id, 503, "sync: the store is busy, retry");
                return respond_errno(conn, r, "sync");
        }
        if (nd.cert_new) { /* said once (and an operator's leave for its renewal, if any, ends) */
                char when[32];
                format_utc(req->peer_not_after, when);
                log_notice("node %s syncs with certificate serial %s, not after %s", sr.node, req->peer_serial, when);
        }
        /* deployments follow their members' desired.state reports */
        for (size_t i = 0; i < sr.n_records; i++)
                if (streq(sr.records[i].kind, "desired.state")) {
                        (void) store_deployments_drive(thread_store(srv), now);
                        break;
                }
        json_t *acked = sync_acked_build(&sr);
        json_t *plan = TAKE_PTR(nd.plan);
        char coding[64] = "plain";
        if (decoded)
                snprintf(coding, sizeof(coding), "zstd (dictionary %" PRIu32 "), %zu bytes plain",
                         body_frame_dictionary_id(req->body, req->body_len), decoded_len);
        log_info("sync from %s: %zu records (%zu new), %zu commands sent, last applied %" PRId64
                 "; body %zu bytes %s",
                 sr.node, sr.n_records, stored, json_array_size(commands), sr.last_command_seq, req->body_len,
                 coding);
        /* A node with an older trust document gets this one, until it has it or refused it. */
        bool send_trust = false;
        if (srv->trust) {
                char id[TRUST_ID_LEN + 1];
                trust_text_id(srv->trust->text, srv->trust->text_len, id);
                send_trust = nd.trust_version >= 0 && nd.trust_version < srv->trust->version &&
                             !streq(nd.trust_refused, id);
                if (nd.trust_newly_refused && streq(sr.trust_refused, id)) /* once, not at every sync */
                        log_warning("node %s refused trust document v%" PRId64 " (%s; its records say why)", sr.node,
                                    srv->trust->version, id);
        }
        /* A node with an older desired state gets the newest, until it has it or refused it. */
        json_t *desired = TAKE_PTR(nd.desired);
        if (nd.desired_newly_refused)
                log_warning("node %s refused desired state v%" PRId64 " (its desired.refused record says why)", sr.node,
                            nd.desired_refused);
        bool compact = sr.format == SYNC_FORMAT_COMPACT;
        char known[SYNC_TAG_LEN + 1];
        snprintf(known, sizeof(known), "%s", sr.known);
        sync_request_done(&sr);
        if (!acked) {
                json_decref(commands);
                json_decref(plan);
                json_decref(desired);
                return MHD_NO;
        }
        size_t sent = 0;
        json_t *answer_json = NULL;
        if (!compact)
                answer_json = sync_response_new(acked, commands, plan, srv->config->poll_interval_sec, now);
        else if (sync_response_compact(acked, commands, plan, srv->config->poll_interval_sec, now, known,
                                       &answer_json) >= 0 &&
                 !answer_json) {
                if (send_trust || desired)
                        answer_json = json_pack("{s:i}", "format", SYNC_FORMAT_COMPACT); /* it alone */
                else {
                        /* format 2 and nothing the node does not have: no body at all */
                        enum MHD_Result ret = sync_respond(srv, conn, req->match.id, MHD_HTTP_NO_CONTENT, NULL,
                                                          &sent);
                        COUNT(srv, sync_requests, 1);
                        COUNT(srv, sync_bytes_received, req->body_len);
                        return ret;
                }
        }
        if (answer_json && send_trust &&
            json_object_set_new(answer_json, "trust", json_stringn(srv->trust->text, srv->trust->text_len)) < 0) {
                json_decref(answer_json);
                answer_json = NULL;
        }
        if (send_trust)
                log_info("sync from %s: trust document v%" PRId64 " sent", req->match.id, srv->trust->version);
        if (answer_json && desired && json_object_set(answer_json, "desired", desired) < 0) {
                json_decref(answer_json);
                answer_json = NULL;
        }
        if (desired)
                log_info("sync from %s: desired state sent", req->match.id);
        json_decref(desired);
        char *text = answer_json ? json_dumps(answer_json, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
        json_decref(answer_json);
        enum MHD_Result ret = sync_respond(srv, conn, req->match.id, 200, text, &sent);
        COUNT(srv, sync_requests, 1);
        COUNT(srv, sync_bytes_received, req->body_len);
        COUNT(srv, sync_bytes_sent, sent);
        return ret;
}

/* ---- node certificates (controller/node-cert.h, docs/security.md) ----------------------- */

/* Certificates one node may be issued a day: a node renews every few weeks at most. */
#define NODE_CERTS_PER_DAY 10

static enum MHD_Result handle_certificate(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        const char *node = req->match.id;
        int64_t now = now_sec();
        bool expired = req->peer == PEER_NODE_EXPIRED;
        char when[32];
        int r;
        if (!srv->node_ca) {
                log_info("certificate request from %s refused: renewal is off (no --node-ca-key)", node);
                return respond_error(conn, 503, "this controller does not issue node certificates "
                                     "(it runs without --node-ca-key)");
        }
        if (expired) {
                int64_t until = 0;
                r = store_node_renew_allowed(thread_store(srv), node, now, &until);
                if (r < 0)
                        return respond_errno(conn, r, "certificate");
                format_utc(req->peer_not_after, when);
                if (r == 0) {
                        log_notice("certificate request from %s refused: its certificate (serial %s) expired at %s "
                                   "and no operator allowed its renewal (orbit-controller node allow-renew)",
                                   node, req->peer_serial, when);
                        _cleanup_free_ char *msg = NULL;
                        if (asprintf(&msg, "the client certificate of node \"%s\" expired at %s and no operator "
                                     "allowed its renewal%s: orbit-controller node allow-renew %s", node, when,
                                     until ? " (a leave ended)" : "", node) < 0)
                                msg = NULL;
                        return queue_text(conn, 403, api_error_body("certificate-expired", msg ? msg : "expired"));
                }
        }
        int64_t recent = 0;
        r = store_node_certs_since(thread_store(srv), node, now - 86400, &recent);
        if (r < 0)
                return respond_errno(conn, r, "certificate");
        if (recent >= NODE_CERTS_PER_DAY) {
                log_notice("certificate request from %s refused: %" PRId64 " issued to it in the last day", node, recent);
                return respond_error(conn, 429, "%" PRId64 " certificates were issued to node \"%s\" in the last "
                                     "day: no more until tomorrow", recent, node);
        }
        json_error_t err;
        json_auto_t *body = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &err);
        const char *csr = NULL;
        _cleanup_free_ char *message = NULL;
        if (certificate_request_parse(body, &csr, &message) < 0) {
                log_info("certificate request from %s refused: %s", node, message ? message : "");
                return respond_error(conn, 400, "%s", message ? message : "invalid certificate request");
        }
        struct node_cert_issued c;
        r = node_cert_issue(srv->node_ca, csr, node, now, srv->config->node_cert_days, &c, &message);
        if (r < 0) {
                log_notice("certificate request from %s refused: %s", node, message ? message : strerror(-r));
                return respond_error(conn, r == -EINVAL ? 422 : 500, "%s", message ? message : strerror(-r));
        }
        /* Counted again with the row, in one transaction: another controller on the
         * database may have issued one since the count above. */
        r = store_node_cert_issued(thread_store(srv), node, c.serial, c.not_after, now, expired,
                                   NODE_CERTS_PER_DAY);
        if (r == -EDQUOT) {
                node_cert_issued_done(&c);
                log_notice("certificate request from %s refused: %d issued to it in the last day", node,
                           NODE_CERTS_PER_DAY);
                return respond_error(conn, 429, "%d certificates were issued to node \"%s\" in the last "
                                     "day: no more until tomorrow", NODE_CERTS_PER_DAY, node);
        }
        if (r < 0) {
                node_cert_issued_done(&c);
                return respond_errno(conn, r, "certificate");
        }
        format_utc(c.not_after, when);
        log_notice("certificate serial %s issued to %s, not after %s%s; it asked with serial %s%s", c.serial, node,
                   when, c.capped ? " (the node CA's own end)" : "", req->peer_serial,
                   expired ? ", expired, by an operator's leave" : "");
        json_t *v = json_pack("{s:i, s:s, s:s, s:I, s:I}", "format", 1, "certificate", c.pem, "serial", c.serial,
                              "not_before", (json_int_t) c.not_before, "not_after", (json_int_t) c.not_after);
        node_cert_issued_done(&c);
        return respond_json(conn, 200, v);
}

static enum MHD_Result handle_allow_renew(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        int64_t now = now_sec(), until = 0;
        _cleanup_free_ char *message = NULL;
        if (renew_allow_parse(req->body, req->body_len, now, &until, &message) < 0)
                return respond_error(conn, 400, "%s", message ? message : "invalid request");
        int r = store_node_renew_allow(thread_store(srv), req->match.id, until, now);
        if (r < 0)
                return respond_errno(conn, r, "allow-renew");
        char when[32];
        format_utc(until, when);
        log_notice("node %s may renew an expired certificate until %s (%s)", req->match.id, when,
                   req->peer == PEER_OPERATOR ? req->peer_cn : "operator token");
        return respond_json(conn, 200, json_pack("{s:s, s:I}", "node", req->match.id, "renew_expired_until",
                                                 (json_int_t) until));
}

/* Every certificate of the node made until now is refused from now on (docs/security.md). */
static enum MHD_Result handle_revoke_certs(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        int64_t now = now_sec(), before = 0;
        int r = store_node_certs_revoke(thread_store(srv), req->match.id, now, now);
        if (r >= 0)
                r = store_node_certs_revoked_before(thread_store(srv), req->match.id, &before);
        if (r < 0)
                return respond_errno(conn, r, "revoke-certificates");
        char when[32];
        format_utc(before, when);
        log_notice("node %s: its certificates made until %s are revoked (%s)", req->match.id, when,
                   req->peer == PEER_OPERATOR ? req->peer_cn : "operator token");
        return respond_json(conn, 200, json_pack("{s:s, s:I}", "node", req->match.id, "certs_revoked_before",
                                                 (json_int_t) before));
}

static enum MHD_Result handle_metrics(struct server *srv, struct MHD_Connection *conn) {
        json_t *snap = NULL;
        int r = store_metrics_collect(thread_store(srv), now_sec(), &snap);
        if (r < 0)
                return respond_errno(conn, r, "metrics");
        json_object_set_new(snap, "poll_interval", json_integer(srv->config->poll_interval_sec));
        char *text = NULL;
#define LOAD(f) .f = __atomic_load_n(&srv->counters.f, __ATOMIC_RELAXED)
        struct metrics_counters counters = {LOAD(sync_requests), LOAD(sync_bytes_received), LOAD(sync_bytes_sent),
                                            LOAD(connections),   LOAD(tls_resumed),         LOAD(syncs_limited),
                                            LOAD(shed_full),     LOAD(shed_deadline),       LOAD(certs_verified)};
#undef LOAD
        r = metrics_render(snap, &counters, &text);
        json_decref(snap);
        if (r < 0)
                return MHD_NO;
        struct MHD_Response *resp =
                MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp) {
                free(text);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                       "text/plain; version=0.0.4; charset=utf-8");
        enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

/* The dashboard's static files, from --web-dir: by name, no subdirectories, no links. */
static enum MHD_Result handle_web(struct server *srv, struct MHD_Connection *conn,
                                  struct request *req) {
        static const struct {
                const char *suffix, *type;
        } types[] = {
                {".html", "text/html; charset=utf-8"},
                {".css", "text/css; charset=utf-8"},
                {".js", "text/javascript; charset=utf-8"},
                {".svg", "image/svg+xml"},
                {".png", "image/png"},
        };
        const char *name = req->match.id, *type = NULL;
        size_t nl = strlen(name);
        for (size_t i = 0; i < ELEMENTSOF(types); i++) {
                size_t sl = strlen(types[i].suffix);
                if (nl > sl && streq(name + nl - sl, types[i].suffix))
                        type = types[i].type;
        }
        if (!type || !srv->config->web_dir)
                return respond_error(conn, 404, "no such file: %s", name);
        char path[4400];
        snprintf(path, sizeof(path), "%s/%s", srv->config->web_dir, name);
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                if (fd >= 0)
                        (void) close(fd);
                return respond_error(conn, 404, "no such file: %s", name);
        }
        struct MHD_Response *resp = MHD_create_response_from_fd((size_t) st.st_size, fd);
        if (!resp) {
                (void) close(fd);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
        /* Nothing from elsewhere, ever: the page runs on what the controller serves. */
        (void) MHD_add_response_header(resp, "Content-Security-Policy",
                                       "default-src 'self'; img-src 'self' data:; "
                                       "frame-ancestors 'none'");
        (void) MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
        enum MHD_Result ret = MHD_queue_response(conn, 200, resp);
        MHD_destroy_response(resp);
        return ret;
}

static int sign_payload(void *userdata, const char *payload, char **ret_signature,
                        char **ret_reason) {
        struct server *srv = userdata;
        size_t len;
        return signature_sign(SIGNATURE_FOR_COMMAND, payload, strlen(payload), srv->config->command_key,
                              srv->config->command_cert, ret_signature, &len, ret_reason);
}

/* A desired state is signed by the command signer under its own purpose (#19 item 3). */
static int sign_desired(void *userdata, const char *payload, char **ret_signature, char **ret_reason) {
        struct server *srv = userdata;
        size_t len;
        return signature_sign(SIGNATURE_FOR_DESIRED, payload, strlen(payload), srv->config->command_key,
                              srv->config->command_cert, ret_signature, &len, ret_reason);
}

/* PUT /v1/nodes/{id}/desired: {"workloads": [...], "if_version"?: N} (docs/deployments.md). */
static enum MHD_Result handle_desired_put(struct server *srv, struct MHD_Connection *conn, struct request *req) {
        json_error_t err;
        json_auto_t *body = json_loadb(req->body ? req->body : "", req->body_len, JSON_REJECT_DUPLICATES, &err);
        if (!body)
                return respond_error(conn, 400, "desired:%d:%d: %s", err.line, err.column, err.text);
        json_t *workloads = json_object_get(body, "workloads"), *ifv = json_object_get(body, "if_version");
        const char *key;
        json_t *v;
        json_object_foreach(body, key, v)
                if (!streq(key, "workloads") && !streq(key, "if_version"))
                        return respond_error(conn, 400, "desired: %.64s: unknown key (workloads, if_version)", key);
        if (!json_is_array(workloads))
                return respond_error(conn, 400, "desired: workloads: expected an array of workload entries");
        if (ifv && (!json_is_integer(ifv) || json_integer_value(ifv) < 0))
                return respond_error(conn, 400, "desired: if_version: expected an integer >= 0");
        char who[API_ID_MAX + 16];
        snprintf(who, sizeof(who), req->peer == PEER_OPERATOR ? "cert:%s" : "token", req->peer_cn);
        json_t *done = NULL;
        _cleanup_free_ char *message = NULL;
        int r = store_desired_set(thread_store(srv), req->match.id, workloads, ifv ? json_integer_value(ifv) : -1,
                                  now_sec(), who, sign_desired, srv, &done, &message);
        if (r == -EINVAL)
                return respond_error(conn, 422, "desired state of %s: %s", req->match.id, message ? message : "invalid");
        if (r == -ESTALE)
                return respond_error(conn, 409, "%s", message ? message : "the desired state moved on");
        if (r < 0) {
                if (message)
                        return respond_error(conn, r == -EBUSY ? 503 : 500, "desired state of %s: %s", req->match.id,
                                             message);
                return respond_errno(conn, r, "desired state");
        }
        log_info("desired state v%" PRId64 " of %s: %zu workloads, by %s",
                 (int64_t) json_integer_value(json_object_get(done, "version")), req->match.id,
                 json_array_size(workloads), who);
        return respond_json(conn, 201, done);
}

static enum MHD_Result handle_command_post(struct server *srv, struct MHD_Connection *conn,
                                           struct request *req) {
        struct command_request cr;
        _cleanup_free_ char *message = NULL;
        int r = command_request_parse(req->body ? req->body : "", req->body_len, &cr, &message);
        if (r == -ENOMEM)
                return MHD_NO;
        if (r < 0)
                return respond_error(conn, 400, "%s", message ? message : "invalid command");
        enum api_role needed = api_role_needed_for_action(cr.action);
        if (req->role < needed) {
                enum MHD_Result ret = refuse_role(conn, req, needed, cr.action);
                command_request_done(&cr);
                return ret;
        }
        if (streq(cr.action, "update.install") && json_is_string(json_object_get(cr.params, "bundle_id"))) {
                struct store_bundle b;
                const char *id = json_string_value(json_object_get(cr.params, "bundle_id"));
                r = api_id_is_valid(id, API_BUNDLE_ID_MAX) ? store_bundle_get(thread_store(srv), id, &b)
                                                           : -EINVAL;
                if (r == -ENOENT || r == -EINVAL) {
                        enum MHD_Result ret = respond_error(
                                conn, 400, "update.install: no bundle \"%.128s\" was uploaded", id);
                        command_request_done(&cr);
                        return ret;
                }
                if (r < 0) {
                        command_request_done(&cr);
                        return respond_errno(conn, r, "bundle lookup");
                }
        }
        json_t *queued = NULL;
        free(message);
        message = NULL;
        r = store_command_queue(thread_store(srv), req->match.id, cr.action, cr.params, now_sec(),
                                cr.expires_in_sec, sign_payload, srv, &queued, &message);
        command_request_done(&cr);
        if (r == -EINVAL || r == -EOPNOTSUPP)
                return respond_error(conn, 400, "%s", message ? message : "invalid command");
        if (r < 0) {
                if (message)
                        return respond_error(conn, r == -EBUSY ? 503 : 500, "%s", message);
                return respond_errno(conn, r, "queue command");
        }
        log_info("command %" PRId64 " queued for %s: %s",
                 (int64_t) json_integer_value(json_object_get(queued, "seq")), req->match.id,
                 json_string_value(json_object_get(queued, "action")));
        return respond_json(conn, 201, queued);
}

static enum MHD_Result handle_records(struct server *srv, struct MHD_Connection *conn,
                                      struct request *req) {
        const char *kind = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "kind");
        const char *limit_text = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
        size_t limit;
        _cleanup_free_ char *message = NULL;
        int r = records_query_check(kind, limit_text, &limit, &message);
        if (r < 0)
                return respond_error(conn, 400, "%s", message ? message : "bad query");
        json_t *records;
        r = store_records_list(thread_store(srv), req->match.id, kind, limit, &records);
        if (r == -ENOENT)
                return respond_error(conn, 404, "unknown node \"%s\"", req->match.id);
        if (r < 0)
                return respond_errno(conn, r, "records");
        return respond_json(conn, 200,
                            json_pack("{s:s,s:o}", "node", req->match.id, "records", records));
}

static enum MHD_Result handle_contact_plan_put(struct server *srv, struct MHD_Connection *conn,
                                               struct request *req) {
        json_t *plan;
        _cleanup_free_ char *message = NULL;
        int r = contact_plan_parse(req->body ? req->body : "", req->body_len, &plan, &message);
        if (r == -ENOMEM)
                return MHD_NO;
        if (r < 0)
                return respond_error(conn, 400, "%s", message ? message : "invalid contact plan");
        r = store_contact_plan_set(thread_store(srv), req->match.id, plan, now_sec());
        if (r < 0) {
                json_decref(plan);
                return respond_errno(conn, r, "contact plan");
        }
        log_info("contact plan of %s: %zu windows", req->match.id,
                 json_array_size(json_object_get(plan, "windows")));
        return respond_json(conn, 200, plan);
}

static void bundle_path(struct server *srv, const char *id, char *buf, size_t size) {
        snprintf(buf, size, "%s/%s.obundle", srv->bundles_dir, id);
}

static enum MHD_Result handle_bundle_download(struct server *srv, struct MHD_Connection *conn,
                                              struct request *req) {
        struct store_bundle b;
        bool node = req->peer == PEER_NODE;
        int r = store_bundle_get(thread_store(srv), req->match.id, &b);
        /* A node is told the same for a bundle that is not there and one not sent to it: what
         * else the ground holds is not for it to learn by probing ids (the log says which). */
        if (r == -ENOENT) {
                if (node)
                        log_notice("node %s asked for bundle %s, which is not here", req->peer_cn, req->match.id);
                return node ? respond_error(conn, 404, "no bundle \"%s\" for node \"%s\"", req->match.id, req->peer_cn)
                            : respond_error(conn, 404, "no bundle \"%s\"", req->match.id);
        }
        if (r < 0)
                return respond_errno(conn, r, "bundle");
        if (node) {
                r = store_node_may_fetch_bundle(thread_store(srv), req->peer_cn, b.id);
                if (r < 0)
                        return respond_errno(conn, r, "bundle");
                if (r == 0) {
                        log_warning("node %s asked for bundle %s, which no command nor rollout sent it: refused "
                                    "(answered as if there were none)", req->peer_cn, b.id);
                        return respond_error(conn, 404, "no bundle \"%s\" for node \"%s\"", b.id, req->peer_cn);
                }
        }
        char path[4400];
        bundle_path(srv, b.id, path, sizeof(path));
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        /* Uploaded once, its file since removed from the data dir: gone for good (a node
         * repairing a slot from it stops asking until its next scrub), not a server fault. */
        if (fd < 0 && errno == ENOENT)
                return respond_error(conn, 410, "bundle \"%s\" was uploaded but its file is gone from the "
                                     "controller", b.id);
        if (fd < 0)
                return respond_error(conn, 500, "bundle %s: cannot open %s: %m", b.id, path);
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != b.size) {
                (void) close(fd);
                return respond_error(conn, 500, "bundle %s: %s changed on disk", b.id, path);
        }
        uint64_t size = (uint64_t) st.st_size;
        char etag[80];
        snprintf(etag, sizeof(etag), "\"sha256:%s\"", b.sha256);

        const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
        const char *if_range =
                MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
        struct http_range rg = {.start = 0, .length = size};
        unsigned status = 200;
        if (range && (!if_range || http_if_range_matches(if_range, etag))) {
                r = http_range_parse(range, size, &rg);
                if (r == -ERANGE) {
                        (void) close(fd);
                        char cr[64];
                        snprintf(cr, sizeof(cr), "bytes */%" PRIu64, size);
                        _cleanup_free_ char *body = NULL;
                        if (asprintf(&body, "range %.64s is outside the %" PRIu64 " bytes of %s",
                                     range, size, b.id) < 0)
                                return MHD_NO;
                        char *text = api_error_body("range-not-satisfiable", body);
                        if (!text)
                                return MHD_NO;
                        struct MHD_Response *resp = MHD_create_response_from_buffer(
                                strlen(text), text, MHD_RESPMEM_MUST_FREE);
                        if (!resp) {
                                free(text);
                                return MHD_NO;
                        }
                        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
                        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                                       "application/json");
                        enum MHD_Result ret = MHD_queue_response(conn, 416, resp);
                        MHD_destroy_response(resp);
                        return ret;
                }
                if (r == 1)
                        status = 206;
                else
                        rg = (struct http_range){.start = 0, .length = size};
        }
        struct MHD_Response *resp =
                MHD_create_response_from_fd_at_offset64(rg.length, fd, (int64_t) rg.start);
        if (!resp) {
                (void) close(fd);
                return MHD_NO;
        }
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                       "application/octet-stream");
        if (status == 206) {
                char cr[96];
                http_content_range_format(&rg, size, cr, sizeof(cr));
                (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
        }
        enum MHD_Result ret = MHD_queue_response(conn, status, resp);
        MHD_destroy_response(resp);
        return ret;
}

/*
 * An upload that verified, kept under its id: 0, or 1 with the refusal queued into *ret.
 * Under bundle_lock.
 */
static int bundle_store(struct server *srv, struct MHD_Connection *conn, struct request *req,
                        const struct store_bundle *b, const char *signer, enum MHD_Result *ret) {
        struct store_bundle old;
        int r = store_bundle_get(thread_store(srv), b->id, &old);
        if (r >= 0 && !streq(old.sha256, b->sha256)) {
                *ret = respond_error(conn, 409,
                                     "bundle %s is already uploaded with another content (sha256 "
                                     "%s); bundle ids are immutable",
                                     b->id, old.sha256);
                return 1;
        }
        if (r < 0 && r != -ENOENT) {
                *ret = respond_errno(conn, r, "bundle lookup");
                return 1;
        }
        char path[4400];
        bundle_path(srv, b->id, path, sizeof(path));
        if (rename(req->upload_path, path) < 0) {
                *ret = respond_error(conn, 500, "cannot store bundle %s: %m", b->id);
                return 1;
        }
        req->upload_path[0] = '\0';
        r = fsync_parent_dir(path);
        if (r < 0) {
                *ret = respond_error(conn, 500, "cannot store bundle %s: %s", b->id, strerror(-r));
                return 1;
        }
        r = store_bundle_add(thread_store(srv), b, signer, srv->bundle_keyring != NULL, now_sec());
        if (r < 0) {
                *ret = respond_errno(conn, r, "bundle");
                return 1;
        }
        return 0;
}

static enum MHD_Result handle_bundle_upload(struct server *srv, struct MHD_Connection *conn,
                                            struct request *req) {
        if (req->upload_error)
                return respond_error(conn, 500, "cannot store the upload: %s",
                                     strerror(-req->upload_error));
        if (req->upload_len == 0)
                return respond_error(conn, 400, "empty body: send the .obundle file");
        if (fsync(req->upload_fd) < 0 || close(req->upload_fd) < 0) {
                req->upload_fd = -1;
                return respond_error(conn, 500, "cannot store the upload: %m");
        }
        req->upload_fd = -1;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];
        sha256_final(&req->sha, digest);
        req->sha_started = false;
        sha256_to_hex(digest, hex);

        struct manifest m = {};
        struct signature_info signer = {};
        _cleanup_free_ char *reason = NULL;
        int r = bundle_read_unverified(req->upload_path, &m, &signer, &reason);
        if (r < 0)
                return respond_error(conn, 400, "not a valid bundle: %s",
                                     reason ? reason : strerror(-r));
        struct store_bundle b = {.size = (int64_t) req->upload_len};
        snprintf(b.sha256, sizeof(b.sha256), "%s", hex);
        bool id_ok = api_id_is_valid(m.bundle_id, API_BUNDLE_ID_MAX);
        snprintf(b.id, sizeof(b.id), "%s", m.bundle_id ? m.bundle_id : "");
        snprintf(b.version, sizeof(b.version), "%s", m.version ? m.version : "");
        manifest_free(&m);
        if (!id_ok)
                return respond_error(conn, 400, "the bundle id is not usable as a name");

        if (srv->bundle_keyring) {
                struct bundle_verify_options o = {.keyring = srv->bundle_keyring,
                                                  .now = (time_t) now_sec()};
                struct bundle *bundle = NULL;
                r = bundle_open(req->upload_path, &o, &bundle, &reason);
                if (r >= 0)
                        r = bundle_verify_payloads(bundle, &reason);
                bundle_close(bundle);
                if (r < 0)
                        return respond_error(conn, 422, "bundle %s does not verify: %s", b.id,
                                             reason ? reason : strerror(-r));
        }
        /* The check, the file and the row in one step: two uploads of one id on two server
         * threads must not leave the file of one beside the row of the other. */
        enum MHD_Result ret;
        pthread_mutex_lock(&srv->bundle_lock);
        r = bundle_store(srv, conn, req, &b, signer.signer, &ret);
        pthread_mutex_unlock(&srv->bundle_lock);
        if (r != 0)
                return ret;
        log_info("bundle %s %s uploaded: %" PRId64 " bytes, sha256 %s%s", b.id, b.version, b.size,
                 b.sha256, srv->bundle_keyring ? ", verified" : "");
        return respond_json(conn, 201,
                            json_pack("{s:s,s:s,s:I,s:s,s:s,s:b}", "id", b.id, "version",
                                      b.version, "size", (json_int_t) b.size, "sha256", b.sha256,
                                      "signer", signer.signer, "verified",
                                      srv->bundle_keyring != NULL));
}

/* ---- groups and rollouts (docs/rollouts.md) ---------------------------------------- */

static enum MHD_Result handle_groups(struct server *srv, struct MHD_Connection *conn,
                                     struct request *req, const char *method) {
        const char *node = req->match.id;
        char group[API_ID_MAX + 1];
        _cleanup_free_ char *message = NULL;
        int r;
        if (streq(method, "POST")) {
                r = group_request_parse(req->body ? req->body : "", req->body_len, group,
                                        sizeof(group), &message);
                if (r < 0)
                        return respond_error(conn, 400, "%s", message ? message : "bad group");
                r = store_node_group_add(thread_store(srv), node, group, now_sec());
                if (r < 0)
                        return respond_errno(conn, r, "group");
                log_info("node %s is in group %s", node, group);
        } else if (streq(method, "DELETE")) {
                const char *g = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "group");
                if (!g || !api_id_is_valid(g, API_ID_MAX))
                        return respond_error(conn, 400, "DELETE needs ?group=NAME");
                r = store_node_group_remove(thread_store(srv), node, g);
                if (r == -ENOENT)
                        return respond_error(conn, 404, "node %s is not in group %s", node, g);
                if (r < 0)
                        return respond_errno(conn, r, "group");
        }
        json_t *groups = NULL;
        r = store_node_groups(thread_store(srv), node, &groups);
        if (r < 0)
                return respond_errno(conn, r, "groups");
        return respond_json(conn, 200, json_pack("{s:s,s:o}", "node", node, "groups", groups));
}

static enum MHD_Result handle_rollout_create(struct server *srv, struct MHD_Connection *conn,
                                             struct request *req) {
        struct rollout_options o;
        _cleanup_free_ char *message = NULL;
        int r = rollout_request_parse(req->body ? req->body : "", req->body_len, &o, &message);
        if (r == -ENOMEM)
                return MHD_NO;
        if (r < 0)
                return respond_error(conn, 400, "%s", message ? message : "invalid rollout");
        json_t *v = NULL;
        free(message);
        message = NULL;
        r = store_rollout_create(thread_store(srv), &o, now_sec(), &v, &message);
        if (r == -ENOENT || r == -ENODATA)
                return respond_error(conn, r == -ENOENT ? 400 : 422, "%s", message ? message : "");
        if (r == -EEXIST)
                return respond_error(conn, 409, "%s", message ? message : "");
        if (r < 0)
                return respond_error(conn, r == -EBUSY ? 503 : 500, "%s",
                                     message ? message : strerror(-r));
        return respond_json(conn, 201, v);
}

static enum MHD_Result handle_rollout_verb(struct server *srv, struct MHD_Connection *conn,
                                           struct request *req) {
        json_t *v = NULL;
        _cleanup_free_ char *message = NULL;
        int r = store_rollout_verb(thread_store(srv), req->match.id, req->match.verb, now_sec(), &v,
                                   &message);
        if (r == -ENOENT)
                return respond_error(conn, 404, "%s", message ? message : "no such rollout");
        if (r == -EINVAL)
                return respond_error(conn, 409, "%s", message ? message : "not now");
        if (r < 0)
                return respond_error(conn, r == -EBUSY ? 503 : 500, "%s",
                                     message ? message : strerror(-r));
        log_info("rollout %s: %s", req->match.id, req->match.verb);
        return respond_json(conn, 200, v);
}

/* ---- deployments (#19 item 2, docs/deployments.md) ------------------------------------ */

static void who_asks(struct request *req, char *buf, size_t size) {
        if (req->peer == PEER_OPERATOR)
                snprintf(buf, size, "cert:%s", req->peer_cn);
        else
                snprintf(buf, size, "token");
}

static enum MHD_Result deployment_answer(struct MHD_Connection *conn, int r, const char *message, unsigned ok,
                                         json_t *v) {
        if (r >= 0)
                return respond_json(conn, ok, v);
        if (r == -ENOENT)
                return respond_error(conn, 404, "%s", message ? message : "no such deployment");
        if (r == -EINVAL)
                return respond_error(conn, 422, "%s", message ? message : "invalid deployment");
        if (r == -EEXIST)
                return respond_error(conn, 409, "%s", message ? message : "exists");
        return respond_error(conn, r == -EBUSY ? 503 : 500, "%s", message ? message : strerror(-r));
}

static enum MHD_Result handle_deployments(struct server *srv, struct MHD_Connection *conn, struct request *req,
                                          const char *method) {
        json_t *v = NULL;
        _cleanup_free_ char *message = NULL;
        int r;
        char who[API_ID_MAX + 16];
        who_asks(req, who, sizeof(who));
        switch (req->match.route) {
        case API_ROUTE_DEPLOYMENTS:
                if (streq(method, "GET")) {
                        r = store_deployments_list(thread_store(srv), &v);
                        return r < 0 ? respond_errno(conn, r, "deployments")
                                     : respond_json(conn, 200, json_pack("{s:o}", "deployments", v));
                }
                r = store_deployment_create(thread_store(srv), req->body ? req->body : "", req->body_len, now_sec(), who,
                                            &v, &message);
                if (r >= 0)
                        log_info("deployment %s created by %s", json_string_value(json_object_get(v, "id")), who);
                return deployment_answer(conn, r, message, 201, v);
        case API_ROUTE_DEPLOYMENT:
                if (streq(method, "DELETE")) {
                        r = store_deployment_verb(thread_store(srv), req->match.id, "delete", now_sec(), &v, &message);
                        if (r >= 0)
                                log_info("deployment %s deleted by %s", req->match.id, who);
                        return deployment_answer(conn, r, message, 200, v);
                }
                r = store_deployment_get(thread_store(srv), req->match.id, &v);
                return deployment_answer(conn, r, r == -ENOENT ? "no such deployment" : NULL, 200, v);
        default:
                r = store_deployment_verb(thread_store(srv), req->match.id, req->match.verb, now_sec(), &v, &message);
                if (r == -EINVAL)
                        return respond_error(conn, 409, "%s", message ? message : "not now");
                if (r >= 0)
                        log_info("deployment %s: %s by %s", req->match.id, req->match.verb, who);
                return deployment_answer(conn, r, message, 200, v);
        }
}

/* Who asked for a change through the operator API, for the audit log (#18 item 6): an
 * operator certificate names a person; the bearer token names only its role. */
static void audit(struct server *srv, struct request *req, const char *method) {
        if (req->peer == PEER_NODE || req->peer == PEER_NODE_EXPIRED || streq(method, "GET") || streq(method, "HEAD") ||
            req->match.route == API_ROUTE_WEB)
                return;
        char who[API_ID_MAX + 16];
        if (req->peer == PEER_OPERATOR)
                snprintf(who, sizeof(who), "cert:%s", req->peer_cn);
        else
                snprintf(who, sizeof(who), "token");
        /* what an operator's leave for an expired node certificate lasts is part of it */
        char path[700];
        int64_t until = 0;
        if (req->match.route == API_ROUTE_NODE_ALLOW_RENEW &&
            renew_allow_parse(req->body, req->body_len, now_sec(), &until, NULL) >= 0)
                snprintf(path, sizeof(path), "%.600s?until=%" PRId64, req->url ? req->url : "?", until);
        else
                snprintf(path, sizeof(path), "%.600s", req->url ? req->url : "?");
        int r = store_audit_add(thread_store(srv), now_sec(), who, api_role_to_string(req->role), method, path);
        if (r < 0)
                log_warning("cannot record %s %s by %s in the audit log: %s", method, req->url ? req->url : "?", who,
                            strerror(-r));
        log_info("operator %s (%s): %s %s", who, api_role_to_string(req->role), method, req->url ? req->url : "?");
}

static enum MHD_Result handle_audit(struct server *srv, struct MHD_Connection *conn) {
        const char *limit_text = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
        char *end = NULL;
        long long limit = limit_text ? strtoll(limit_text, &end, 10) : 100;
        if (limit_text && (!*limit_text || *end || limit < 1 || limit > 10000))
                return respond_error(conn, 400, "limit must be an integer from 1 to 10000");
        json_t *v = NULL;
        int r = store_audit_list(thread_store(srv), limit, &v);
        if (r < 0)
                return respond_errno(conn, r, "audit");
        return respond_json(conn, 200, json_pack("{s:o}", "audit", v));
}

/* GET /v1/usage (#19 item 5): metered usage summed by tenant, deployment, node or workload. */
static enum MHD_Result handle_usage(struct server *srv, struct MHD_Connection *conn) {
#define ARG(name) MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name)
        struct usage_query q;
        _cleanup_free_ char *message = NULL;
        int r = usage_query_parse(ARG("by"), ARG("tenant"), ARG("deployment"), ARG("node"), ARG("since"),
                                  ARG("until"), &q, &message);
#undef ARG
        if (r < 0)
                return respond_error(conn, 400, "%s", message ? message : "bad query");
        json_t *rows = NULL;
        r = store_usage_sum(thread_store(srv), &q, &rows);
        if (r < 0)
                return respond_errno(conn, r, "usage");
        return respond_json(conn, 200,
                            json_pack("{s:s, s:o, s:o, s:o, s:I, s:I, s:o}", "by", usage_by_to_string(q.by), "tenant",
                                      q.tenant[0] ? json_string(q.tenant) : json_null(), "deployment",
                                      q.deployment[0] ? json_string(q.deployment) : json_null(), "node",
                                      q.node[0] ? json_string(q.node) : json_null(), "since", (json_int_t) q.since,
                                      "until", (json_int_t) q.until, "usage", rows));
}

static enum MHD_Result dispatch(struct server *srv, struct MHD_Connection *conn,
                                struct request *req, const char *method) {
        const char *id = req->match.id;
        json_t *v = NULL;
        int r;
        audit(srv, req, method);
        switch (req->match.route) {
        case API_ROUTE_SYNC:
                return handle_sync(srv, conn, req);
        case API_ROUTE_BUNDLE_DOWNLOAD:
                return handle_bundle_download(srv, conn, req);
        case API_ROUTE_NODES:
                r = store_nodes_list(thread_store(srv), &v);
                if (r < 0)
                        return respond_errno(conn, r, "nodes");
                return respond_json(conn, 200, json_pack("{s:o}", "nodes", v));
        case API_ROUTE_NODE:
                r = store_node_show(thread_store(srv), id, &v);
                if (r == -ENOENT)
                        return respond_error(conn, 404, "unknown node \"%s\"", id);
                if (r < 0)
                        return respond_errno(conn, r, "node");
                return respond_json(conn, 200, v);
        case API_ROUTE_NODE_COMMANDS:
                if (streq(method, "POST"))
                        return handle_command_post(srv, conn, req);
                r = store_commands_list(thread_store(srv), id, &v);
                if (r == -ENOENT)
                        return respond_error(conn, 404, "unknown node \"%s\"", id);
                if (r < 0)
                        return respond_errno(conn, r, "commands");
                return respond_json(conn, 200, json_pack("{s:s,s:o}", "node", id, "commands", v));
        case API_ROUTE_NODE_RECORDS:
                return handle_records(srv, conn, req);
        case API_ROUTE_NODE_CONTACT_PLAN:
                if (streq(method, "PUT"))
                        return handle_contact_plan_put(srv, conn, req);
                r = store_contact_plan_get(thread_store(srv), id, &v);
                if (r < 0)
                        return respond_errno(conn, r, "contact plan");
                return respond_json(conn, 200, v);
        case API_ROUTE_BUNDLES:
                if (streq(method, "POST"))
                        return handle_bundle_upload(srv, conn, req);
                r = store_bundles_list(thread_store(srv), &v);
                if (r < 0)
                        return respond_errno(conn, r, "bundles");
                return respond_json(conn, 200, json_pack("{s:o}", "bundles", v));
        case API_ROUTE_NODE_GROUPS:
                return handle_groups(srv, conn, req, method);
        case API_ROUTE_NODE_DESIRED:
                if (streq(method, "PUT"))
                        return handle_desired_put(srv, conn, req);
                r = store_desired_get(thread_store(srv), id, &v);
                if (r == -ENOENT)
                        return respond_error(conn, 404, "unknown node \"%s\"", id);
                if (r < 0)
                        return respond_errno(conn, r, "desired state");
                return respond_json(conn, 200, v);
        case API_ROUTE_NODE_CERTIFICATE: {
                pthread_mutex_lock(&srv->node_ca_lock);
                enum MHD_Result ret = handle_certificate(srv, conn, req);
                pthread_mutex_unlock(&srv->node_ca_lock);
                return ret;
        }
        case API_ROUTE_NODE_ALLOW_RENEW:
                return handle_allow_renew(srv, conn, req);
        case API_ROUTE_NODE_REVOKE_CERTS:
                return handle_revoke_certs(srv, conn, req);
        case API_ROUTE_ROLLOUTS:
                if (streq(method, "POST"))
                        return handle_rollout_create(srv, conn, req);
                r = store_rollouts_list(thread_store(srv), now_sec(), &v);
                if (r < 0)
                        return respond_errno(conn, r, "rollouts");
                return respond_json(conn, 200, json_pack("{s:o}", "rollouts", v));
        case API_ROUTE_ROLLOUT:
                r = store_rollout_show(thread_store(srv), id, now_sec(), &v);
                if (r == -ENOENT)
                        return respond_error(conn, 404, "no rollout \"%s\"", id);
                if (r < 0)
                        return respond_errno(conn, r, "rollout");
                return respond_json(conn, 200, v);
        case API_ROUTE_ROLLOUT_VERB:
                return handle_rollout_verb(srv, conn, req);
        case API_ROUTE_DEPLOYMENTS:
        case API_ROUTE_DEPLOYMENT:
        case API_ROUTE_DEPLOYMENT_VERB:
                return handle_deployments(srv, conn, req, method);
        case API_ROUTE_WHOAMI:
                return respond_json(conn, 200,
                                    json_pack("{s:s,s:s,s:I,s:I}", "role",
                                              api_role_to_string(req->role), "name", req->peer_cn,
                                              "poll_interval",
                                              (json_int_t) srv->config->poll_interval_sec,
                                              "server_time", (json_int_t) now_sec()));
        case API_ROUTE_AUDIT:
                return handle_audit(srv, conn);
        case API_ROUTE_USAGE:
                return handle_usage(srv, conn);
        case API_ROUTE_METRICS:
                return handle_metrics(srv, conn);
        case API_ROUTE_WEB:
                return handle_web(srv, conn, req);
        case _API_ROUTE_MAX:
                break;
        }
        return respond_error(conn, 500, "unhandled route");
}

/* ---- the access handler ------------------------------------------------------------- */

static void request_free(struct request *req) {
        if (!req)
                return;
        if (req->upload_fd >= 0)
                (void) close(req->upload_fd);
        if (req->upload_path[0])
                (void) unlink(req->upload_path);
        if (req->sha_started)
                sha256_discard(&req->sha);
        free(req->body);
        free(req);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe) {
        request_free(*con_cls);
        *con_cls = NULL;
}

static bool is_upload(const struct request *req, const char *method) {
        return req->route_r == 0 && req->match.route == API_ROUTE_BUNDLES && streq(method, "POST");
}

static int upload_start(struct server *srv, struct request *req) {
        snprintf(req->upload_path, sizeof(req->upload_path), "%s/.upload-XXXXXX",
                 srv->bundles_dir);
        req->upload_fd = mkostemp(req->upload_path, O_CLOEXEC);
        if (req->upload_fd < 0) {
                req->upload_path[0] = '\0';
                return negative_errno();
        }
        sha256_init(&req->sha);
        req->sha_started = true;
        return 0;
}

/*
 * Shedding closes a connection by shutting its socket down, under the guard's lock: the
 * server's thread sees the end and closes it as any other, and the descriptor cannot be
 * another connection's yet, since the close notification (guard_remove) takes the lock
 * before libmicrohttpd closes the descriptor.
 */
static void guard_add(struct server *srv, struct MHD_Connection *conn, void **socket_context) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct conn_ctx *ctx = ci ? calloc(1, sizeof(*ctx)) : NULL;
        if (!ctx)
                return; /* untracked: only the idle timeout and the hard limit bound it */
        struct conn_track *t = &ctx->track;
        t->fd = ci->connect_fd;
        t->started_usec = now_usec();
        pthread_mutex_lock(&srv->conn_guard_lock);
        int victim = conn_guard_add(&srv->conn_guard, t);
        if (victim >= 0) {
                (void) shutdown(victim, SHUT_RDWR);
                COUNT(srv, shed_full, 1);
        }
        pthread_mutex_unlock(&srv->conn_guard_lock);
        *socket_context = ctx;
}

static void guard_remove(struct server *srv, void **socket_context) {
        struct conn_ctx *ctx = *socket_context;
        if (!ctx)
                return;
        pthread_mutex_lock(&srv->conn_guard_lock);
        conn_guard_remove(&srv->conn_guard, &ctx->track);
        pthread_mutex_unlock(&srv->conn_guard_lock);
        free(ctx);
        *socket_context = NULL;
}

/* A request on conn was authorized: only the idle timeout closes it from now on. */
static void guard_trust(struct server *srv, struct MHD_Connection *conn) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct conn_ctx *ctx = ci ? ci->socket_context : NULL;
        struct conn_track *t = ctx ? &ctx->track : NULL;
        if (!t || t->trusted)
                return;
        pthread_mutex_lock(&srv->conn_guard_lock);
        conn_guard_trust(&srv->conn_guard, t);
        pthread_mutex_unlock(&srv->conn_guard_lock);
}

/* From the main thread: close the connections past --request-deadline. */
static void guard_expire(struct server *srv) {
        int fds[256];
        size_t n;
        do {
                pthread_mutex_lock(&srv->conn_guard_lock);
                n = conn_guard_expired(&srv->conn_guard, now_usec(), fds, ELEMENTSOF(fds));
                for (size_t i = 0; i < n; i++)
                        (void) shutdown(fds[i], SHUT_RDWR);
                pthread_mutex_unlock(&srv->conn_guard_lock);
                COUNT(srv, shed_deadline, n);
        } while (n == ELEMENTSOF(fds));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version,
                                  const char *upload_data, size_t *upload_data_size,
                                  void **con_cls) {
        struct server *srv = cls;
        struct request *req = *con_cls;

        if (!req) {
                req = calloc(1, sizeof(*req));
                if (!req)
                        return MHD_NO;
                req->upload_fd = -1;
                req->method = method;
                req->url = url;
                *con_cls = req;
                req->route_r = api_route_match(method, url, &req->match);
                if (req->route_r == -ENOENT)
                        return respond_error(conn, 404, "no such resource: %s %.200s", method, url);
                if (req->route_r == -EOPNOTSUPP)
                        return respond_error(conn, 405, "%s is not allowed on %.200s", method, url);
                if (req->route_r < 0)
                        return respond_error(conn, 400, "invalid id in %.200s", url);
                enum MHD_Result ret;
                if (authorize(srv, conn, req, &ret))
                        return ret;
                if (req->match.route != API_ROUTE_WEB && !thread_store(srv))
                        return respond_error(conn, 503, "the controller cannot open its database: see its log");
                if (req->match.route != API_ROUTE_WEB)
                        guard_trust(srv, conn);

                bool upload = is_upload(req, method);
                req->body_max = req->match.route == API_ROUTE_SYNC ? SYNC_BODY_MAX
                                                                   : OPERATOR_BODY_MAX;
                uint64_t max = upload ? srv->config->max_bundle_size : req->body_max;
                const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                             MHD_HTTP_HEADER_CONTENT_LENGTH);
                if (cl) {
                        char *end;
                        errno = 0;
                        unsigned long long n = strtoull(cl, &end, 10);
                        if (errno == 0 && *end == '\0' && n > max)
                                return respond_error(conn, 413,
                                                     "body of %llu bytes is over the limit of %" PRIu64
                                                     " bytes",
                                                     n, max);
                }
                if (upload) {
                        int r = upload_start(srv, req);
                        if (r < 0)
                                return respond_error(conn, 500, "cannot take an upload: %s",
                                                     strerror(-r));
                }
                return MHD_YES;
        }

        if (*upload_data_size > 0) {
                size_t n = *upload_data_size;
                *upload_data_size = 0;
                if (is_upload(req, method)) {
                        if (req->too_large || req->upload_error)
                                return MHD_YES;
                        if (req->upload_len + n > srv->config->max_bundle_size) {
                                req->too_large = true;
                                return MHD_YES;
                        }
                        int r = write_all(req->upload_fd, upload_data, n);
                        if (r < 0)
                                req->upload_error = r;
                        sha256_update(&req->sha, upload_data, n);
                        req->upload_len += n;
                        return MHD_YES;
                }
                if (req->too_large)
                        return MHD_YES;
                if (req->body_len + n > req->body_max) {
                        /* Keep reading to answer 413, but nothing more is kept. */
                        req->too_large = true;
                        free(req->body);
                        req->body = NULL;
                        req->body_len = req->body_cap = 0;
                        return MHD_YES;
                }
                if (req->body_len + n + 1 > req->body_cap) {
                        size_t cap = req->body_cap ? req->body_cap : 4096;
                        while (cap < req->body_len + n + 1)
                                cap *= 2;
                        char *b = realloc(req->body, cap);
                        if (!b)
                                return MHD_NO;
                        req->body = b;
                        req->body_cap = cap;
                }
                memcpy(req->body + req->body_len, upload_data, n);
                req->body_len += n;
                req->body[req->body_len] = '\0';
                return MHD_YES;
        }

        if (req->too_large)
                return respond_error(conn, 413, "body over the limit of %" PRIu64 " bytes",
                                     is_upload(req, method) ? srv->config->max_bundle_size
                                                            : (uint64_t) req->body_max);
        return dispatch(srv, conn, req, method);
}

static void mhd_log(void *cls, const char *fmt, va_list ap) {
        char buf[1024];
        vsnprintf(buf, sizeof(buf), fmt, ap);
        size_t n = strlen(buf);
        while (n > 0 && buf[n - 1] == '\n')
                buf[--n] = '\0';
        log_info("httpd: %s", buf);
}

/* ---- setup -------------------------------------------------------------------------- */

static int read_pem(const char *what, const char *path, char **ret) {
        size_t len;
        int r = read_file_bounded(path, PEM_MAX, ret, &len);
        if (r < 0)
                return log_error_errno(r, "cannot read the %s %s", what, path);
        return 0;
}

static int trust_list_load(const char *what, const char *path, gnutls_x509_trust_list_t *ret) {
        _cleanup_free_ char *pem = NULL;
        int r = read_pem(what, path, &pem);
        if (r < 0)
                return r;
        gnutls_x509_trust_list_t tl;
        if (gnutls_x509_trust_list_init(&tl, 0) < 0)
                return -ENOMEM;
        gnutls_datum_t d = {.data = (unsigned char *) pem, .size = (unsigned) strlen(pem)};
        int n = gnutls_x509_trust_list_add_trust_mem(tl, &d, NULL, GNUTLS_X509_FMT_PEM, 0, 0);
        if (n <= 0) {
                gnutls_x509_trust_list_deinit(tl, 1);
                log_error("the %s %s holds no usable certificate%s%s", what, path,
                          n < 0 ? ": " : "", n < 0 ? gnutls_strerror(n) : "");
                return -EINVAL;
        }
        *ret = tl;
        return 0;
}

static int parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len,
                        bool *ipv6) {
        char host[256];
        const char *colon = strrchr(listen, ':');
        if (!colon || colon == listen || strlen(colon + 1) == 0)
                return -EINVAL;
        size_t hl = (size_t) (colon - listen);
        if (hl >= sizeof(host))
                return -EINVAL;
        memcpy(host, listen, hl);
        host[hl] = '\0';
        if (host[0] == '[' && hl >= 2 && host[hl - 1] == ']') {
                memmove(host, host + 1, hl - 2);
                host[hl - 2] = '\0';
        }
        struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
                                 .ai_socktype = SOCK_STREAM};
        struct addrinfo *ai = NULL;
        if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
                return -EINVAL;
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *len = ai->ai_addrlen;
        *ipv6 = ai->ai_family == AF_INET6;
        freeaddrinfo(ai);
        return 0;
}

/*
 * MHD (0.9.75) has no option for session tickets, but it sets the GnuTLS session up before
 * it notifies a new connection and handshakes only after: with --tls-tickets they are
 * enabled here, before the ClientHello is read, so a ticket offered in it can be accepted.
 * Off by default: GnuTLS 3.7 sends two tickets after every handshake, each ~680 bytes (the
 * session state, the node's certificate included), and the node sends one back in its
 * ClientHello; a resumed connection costs ~600 bytes more than a full handshake with
 * P-256 certificates, and TLS 1.3 saves no round trip by it (docs/protocol.md).
 */
/*
 * --tls-session-cache: GnuTLS keeps each TLS 1.2 session it makes here, under its id, and
 * a node that offers the id resumes it: 32 bytes in its ClientHello, no certificates, no
 * ticket (a ticket of GnuTLS 3.7 holds the node's certificate: ~700 bytes each way).
 * GnuTLS 3.7 resumes TLS 1.3 with tickets only: a node gets this by capping its
 * connections at TLS 1.2 (link.tls_max).
 */
static int tls_cache_store_cb(void *ptr, gnutls_datum_t key, gnutls_datum_t data) {
        struct server *srv = ptr;
        pthread_mutex_lock(&srv->tls_cache_lock);
        int r = tls_cache_store(&srv->tls_cache, key.data, key.size, data.data, data.size, now_sec());
        pthread_mutex_unlock(&srv->tls_cache_lock);
        return r < 0 ? -1 : 0;
}

static gnutls_datum_t tls_cache_fetch_cb(void *ptr, gnutls_datum_t key) {
        struct server *srv = ptr;
        gnutls_datum_t out = {};
        pthread_mutex_lock(&srv->tls_cache_lock);
        const struct tls_cache_entry *e = tls_cache_fetch(&srv->tls_cache, key.data, key.size, now_sec());
        if (e && (out.data = gnutls_malloc(e->data_len))) {
                memcpy(out.data, e->data, e->data_len);
                out.size = (unsigned) e->data_len;
        }
        pthread_mutex_unlock(&srv->tls_cache_lock);
        return out;
}

static int tls_cache_remove_cb(void *ptr, gnutls_datum_t key) {
        struct server *srv = ptr;
        pthread_mutex_lock(&srv->tls_cache_lock);
        int r = tls_cache_remove(&srv->tls_cache, key.data, key.size);
        pthread_mutex_unlock(&srv->tls_cache_lock);
        return r < 0 ? -1 : 0;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe) {
        struct server *srv = cls;
        (void) socket_context;
        const union MHD_ConnectionInfo *ci =
                MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
        gnutls_session_t session = ci ? (gnutls_session_t) ci->tls_session : NULL;
        if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
                COUNT(srv, connections, 1);
                guard_add(srv, conn, socket_context);
                if (session && srv->ticket_key.data &&
                    gnutls_session_ticket_enable_server(session, &srv->ticket_key) < 0)
                        log_debug("cannot enable TLS session tickets on a connection");
                if (session && srv->tls_cache.entries) {
                        gnutls_db_set_ptr(session, srv);
                        gnutls_db_set_store_function(session, tls_cache_store_cb);
                        gnutls_db_set_retrieve_function(session, tls_cache_fetch_cb);
                        gnutls_db_set_remove_function(session, tls_cache_remove_cb);
                        gnutls_db_set_cache_expiration(session, TLS_CACHE_LIFETIME_SEC);
                }
        } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
                if (session && gnutls_session_is_resumed(session))
                        COUNT(srv, tls_resumed, 1);
                guard_remove(srv, socket_context);
        }
}

/* The listening socket's congestion control, inherited by every connection it accepts. */
static int listen_set_congestion(struct MHD_Daemon *d, const char *name) {
        const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
        if (!di)
                return -EBADF;
        if (setsockopt(di->listen_fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t) strlen(name)) < 0) {
                int r = -errno;
                char offered[256] = "";
                _cleanup_fclose_ FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_congestion_control", "re");
                if (f && fgets(offered, sizeof(offered), f))
                        offered[strcspn(offered, "\n")] = '\0';
                /* ENOENT: not loaded (only CAP_NET_ADMIN makes the kernel load it); EPERM:
                 * not in net.ipv4.tcp_allowed_congestion_control (docs/protocol.md) */
                log_warning("--tcp-congestion %s: %s%s; the kernel offers: %s; keeping its default",
                            name, strerror(-r),
                            r == -ENOENT ? " (not loaded: modprobe it at boot)" :
                            r == -EPERM ? " (not in net.ipv4.tcp_allowed_congestion_control)" : "",
                            offered[0] ? offered : "unknown");
                return r;
        }
        log_info("connections use TCP congestion control %s", name);
        return 0;
}

static int bound_port(struct MHD_Daemon *d) {
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_LISTEN_FD);
        if (!info)
                return -EIO;
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(info->listen_fd, (struct sockaddr *) &ss, &len) < 0)
                return negative_errno();
        if (ss.ss_family == AF_INET6)
                return ntohs(((struct sockaddr_in6 *) &ss)->sin6_port);
        return ntohs(((struct sockaddr_in *) &ss)->sin_port);
}

static int load_token(const char *path, char **ret, size_t *ret_len) {
        _cleanup_free_ char *data = NULL;
        size_t len;
        int r = read_file_bounded(path, API_TOKEN_MAX + 2, &data, &len);
        if (r < 0)
                return log_error_errno(r, "cannot read the operator token file %s", path);
        while (len > 0 && (data[len - 1] == '\n' || data[len - 1] == '\r'))
                data[--len] = '\0';
        if (len < 16 || len > API_TOKEN_MAX || strlen(data) != len)
                return log_error_errno(EINVAL, "the operator token in %s must be 16-%d bytes on one line",
                                       path, API_TOKEN_MAX);
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) data[i] <= ' ' || (unsigned char) data[i] >= 0x7f)
                        return log_error_errno(EINVAL, "the operator token in %s must be printable "
                                                       "ASCII without spaces", path);
        *ret = TAKE_PTR(data);
        *ret_len = len;
        return 0;
}

static void server_done(struct server *srv) {
        if (srv->thread_store_key_made)
                (void) pthread_key_delete(thread_store_key); /* the threads are gone, their stores closed */
        if (srv->node_trust)
                gnutls_x509_trust_list_deinit(srv->node_trust, 1);
        if (srv->operator_trust)
                gnutls_x509_trust_list_deinit(srv->operator_trust, 1);
        signature_keyring_free(srv->bundle_keyring);
        trust_free(srv->trust);
        node_rate_done(&srv->node_rate);
        node_ca_free(srv->node_ca);
        body_dictionary_free(srv->dictionary);
        for (size_t i = 0; i < ELEMENTSOF(srv->tokens); i++) {
                if (srv->tokens[i].text)
                        explicit_bzero(srv->tokens[i].text, srv->tokens[i].len);
                free(srv->tokens[i].text);
        }
        tls_cache_done(&srv->tls_cache);
        node_takes_done(&srv->node_takes);
        if (srv->ticket_key.data) {
                explicit_bzero(srv->ticket_key.data, srv->ticket_key.size);
                gnutls_free(srv->ticket_key.data);
        }
        store_close(srv->tick_store);
}

/* ---- retention ------------------------------------------------------------------------------ */

#define ROLLOUT_TICK_SEC 5 /* time gates move within this; 10 rollouts of 10,000: ~25 ms each */
#define RETENTION_BATCH 5000
#define RETENTION_BATCHES_PER_RUN 200 /* a million records; the rest at the next run */
#define RETENTION_PAUSE_NSEC (50 * 1000 * 1000)

/* How often to look: a tenth of the retention, between 1 s and 10 min. */
static time_t retention_interval(int64_t retain_sec) {
        int64_t t = retain_sec / 10;
        return (time_t) (t < 1 ? 1 : t > 600 ? 600 : t);
}

static void retention_run(const char *database, int64_t retain_sec) {
        _cleanup_store_ struct store *s = NULL;
        _cleanup_free_ char *reason = NULL;
        if (store_open(database, &s, &reason) < 0) {
                log_warning("retention: %s", reason ? reason : "cannot open the store");
                return;
        }
        int64_t before = (int64_t) time(NULL) - retain_sec, total = 0, n;
        for (unsigned batch = 0; batch < RETENTION_BATCHES_PER_RUN; batch++) {
                if (store_records_prune(s, before, RETENTION_BATCH, &n) < 0)
                        break;
                total += n;
                if (n < RETENTION_BATCH)
                        break;
                /* Let the syncs at the database, and a stop through. */
                sigset_t pending;
                if (sigpending(&pending) == 0 &&
                    (sigismember(&pending, SIGTERM) == 1 || sigismember(&pending, SIGINT) == 1))
                        break;
                struct timespec pause = {.tv_nsec = RETENTION_PAUSE_NSEC};
                (void) nanosleep(&pause, NULL);
        }
        if (total > 0)
                log_info("retention: %" PRId64 " records received more than %" PRId64 " s ago deleted",
                         total, retain_sec);
}

/* Usage reports thinned (docs/usage.md), every USAGE_THIN_SEC: one transaction per node. */
#define USAGE_THIN_SEC 600
static void usage_thin_run(const char *database, const struct server_config *c) {
        _cleanup_store_ struct store *s = NULL;
        _cleanup_free_ char *reason = NULL;
        if (store_open(database, &s, &reason) < 0) {
                log_warning("usage thinning: %s", reason ? reason : "cannot open the store");
                return;
        }
        int64_t n = 0;
        int r = store_usage_thin(s, (int64_t) time(NULL), c->usage_exact_days, c->max_usage_reports_per_node, &n);
        if (r < 0)
                log_warning("usage thinning: %s", strerror(-r));
        if (n > 0)
                log_info("usage thinning: %" PRId64 " usage entry reports thinned to one per entry per day", n);
}

/*
 * Several controllers on one database: the periodic jobs run on the one that leads
 * (store_lead), the others stand by and take over within a tick of its connection's end.
 * Each job is right run twice as well (docs/storage.md): the lead saves the work.
 */
static bool periodic_lead(struct server *srv) {
        int r = store_lead(srv->tick_store);
        bool lead = r > 0;
        if (r < 0)
                log_warning("cannot tell whether this controller leads the periodic jobs: %s", strerror(-r));
        else if ((int) lead != srv->leading)
                log_notice("%s", lead ? "this controller leads the periodic jobs (rollout tick, deployments, "
                                        "retention, usage thinning)"
                                      : "another controller on the database leads the periodic jobs");
        if (r >= 0)
                srv->leading = (int) lead;
        return lead;
}

int server_run(const struct server_config *c) {
        struct server srv = {.config = c, .tls_cache_lock = PTHREAD_MUTEX_INITIALIZER,
                             .node_takes_lock = PTHREAD_MUTEX_INITIALIZER,
                             .conn_guard_lock = PTHREAD_MUTEX_INITIALIZER,
                             .node_rate_lock = PTHREAD_MUTEX_INITIALIZER,
                             .node_ca_lock = PTHREAD_MUTEX_INITIALIZER,
                             .bundle_lock = PTHREAD_MUTEX_INITIALIZER,
                             .leading = -1};
        _cleanup_free_ char *cert = NULL, *key = NULL, *trust = NULL, *node_pem = NULL,
                            *operator_pem = NULL, *reason = NULL;
        int r;

        if (!c->operator_token_file && !c->operator_ca)
                log_warning("neither --operator-token-file nor --operator-ca: the operator API "
                            "cannot be used");
        r = mkdir_parents(c->data_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create the data directory %s", c->data_dir);
        snprintf(srv.bundles_dir, sizeof(srv.bundles_dir), "%s/bundles", c->data_dir);
        if (mkdir(srv.bundles_dir, 0700) < 0 && errno != EEXIST)
                return log_error_errno(errno, "cannot create %s", srv.bundles_dir);

        if ((r = read_pem("server certificate", c->cert, &cert)) < 0 ||
            (r = read_pem("server key", c->key, &key)) < 0 ||
            (r = read_pem("node CA", c->node_ca, &node_pem)) < 0 ||
            (c->operator_ca && (r = read_pem("operator CA", c->operator_ca, &operator_pem)) < 0))
                goto out;
        if (asprintf(&trust, "%s\n%s", node_pem, operator_pem ? operator_pem : "") < 0) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = trust_list_load("node CA", c->node_ca, &srv.node_trust)) < 0 ||
            (c->operator_ca &&
             (r = trust_list_load("operator CA", c->operator_ca, &srv.operator_trust)) < 0))
                goto out;
        if (c->node_ca_key) {
                r = node_ca_load(c->node_ca, c->node_ca_key, &srv.node_ca, &reason);
                if (r < 0) {
                        log_error_errno(r, "%s", reason ? reason : "cannot load the node CA key");
                        goto out;
                }
                char when[32];
                format_utc(node_ca_not_after(srv.node_ca), when);
                log_info("node certificates are renewed over the link: %u days, signed by the node CA "
                         "(not after %s)", c->node_cert_days, when);
        } else
                log_info("node certificate renewal is off: no --node-ca-key");
        {
                const char *files[ELEMENTSOF(srv.tokens)] = {
                        [API_ROLE_VIEWER] = c->viewer_token_file,
                        [API_ROLE_OPERATOR] = c->operator_token_file,
                        [API_ROLE_RELEASE_MANAGER] = c->release_token_file,
                };
                for (size_t i = 0; i < ELEMENTSOF(files); i++) {
                        if (files[i] && (r = load_token(files[i], &srv.tokens[i].text, &srv.tokens[i].len)) < 0)
                                goto out;
                        for (size_t j = 0; files[i] && j < i; j++)
                                if (srv.tokens[j].text && api_secret_equal(srv.tokens[i].text, srv.tokens[i].len,
                                                                           srv.tokens[j].text, srv.tokens[j].len)) {
                                        r = log_error_errno(EINVAL, "the %s token (%s) is the %s token (%s): "
                                                            "one token, one role",
                                                            api_role_to_string((enum api_role) i), files[i],
                                                            api_role_to_string((enum api_role) j), files[j]);
                                        goto out;
                                }
                }
        }
        if (c->zstd_dictionary && !c->no_zstd) {
                _cleanup_free_ char *why = NULL;
                r = body_dictionary_load(c->zstd_dictionary, &srv.dictionary, &why);
                if (r < 0) {
                        log_error_errno(r, "%s", why ? why : "cannot load the zstd dictionary");
                        goto out;
                }
                log_info("zstd dictionary %" PRIu32 " from %s", body_dictionary_id(srv.dictionary),
                         c->zstd_dictionary);
        }
        if (c->bundle_keyring) {
                r = signature_keyring_load_dir(c->bundle_keyring, &srv.bundle_keyring, &reason);
                if (r < 0) {
                        log_error_errno(r, "bundle keyring %s: %s", c->bundle_keyring,
                                        reason ? reason : "cannot load");
                        goto out;
                }
        }
        if (c->trust_document) {
                _cleanup_free_ char *text = NULL, *why = NULL;
                size_t len;
                r = read_file_bounded(c->trust_document, TRUST_MAX_SIZE, &text, &len);
                if (r >= 0)
                        r = trust_parse(text, len, TRUST_CHECK_SELF, NULL, (time_t) now_sec(), &srv.trust, &why);
                if (r < 0) {
                        log_error_errno(r, "--trust-document %s: %s", c->trust_document,
                                        why ? why : strerror(-r));
                        goto out;
                }
                if (srv.trust->expires < now_sec())
                        log_warning("--trust-document %s: v%" PRId64 " has expired: nodes will refuse it",
                                    c->trust_document, srv.trust->version);
                log_info("trust document v%" PRId64 " from %s: sent to nodes that have an older one",
                         srv.trust->version, c->trust_document);
                if (!srv.bundle_keyring) {
                        r = trust_release_keyring(srv.trust, &srv.bundle_keyring);
                        if (r < 0) {
                                log_error_errno(r, "--trust-document %s: its release anchors do not load",
                                                c->trust_document);
                                goto out;
                        }
                }
        }
        /* The signer must work before any operator relies on it, and be one the nodes take. */
        {
                _cleanup_free_ char *sig = NULL, *why = NULL;
                size_t len;
                r = signature_sign(SIGNATURE_FOR_COMMAND, "probe", 5, c->command_key, c->command_cert, &sig, &len, &why);
                if (r < 0) {
                        log_error_errno(r, "the command signer (%s, %s) does not work: %s",
                                        c->command_key, c->command_cert, why ? why : "");
                        goto out;
                }
                _cleanup_keyring_ struct signature_keyring *kr = NULL;
                if (srv.trust && (r = trust_command_keyring(srv.trust, &kr)) >= 0)
                        r = signature_verify(SIGNATURE_FOR_COMMAND, "probe", 5, sig, len, kr, (time_t) now_sec(),
                                             NULL, &why);
                if (r < 0) {
                        log_error_errno(r, "the command signer %s is not one the trust document v%" PRId64
                                        " names: nodes would refuse its commands: %s",
                                        c->command_cert, srv.trust->version, why ? why : "");
                        goto out;
                }
        }
        snprintf(srv.db_path, sizeof(srv.db_path), "%s/controller.db", c->data_dir);
        srv.database = c->database ? c->database : srv.db_path;
        /* created or migrated here, before any server thread opens a connection of its own */
        r = store_open(srv.database, &srv.tick_store, &reason);
        if (r < 0) {
                log_error_errno(r, "%s", reason ? reason : "cannot open the store");
                goto out;
        }
        store_set_pass_gap(srv.tick_store, c->pass_gap_sec);
        store_set_desired_signer(srv.tick_store, sign_desired, &srv);

        struct sockaddr_storage ss;
        socklen_t ss_len;
        bool ipv6;
        if (parse_listen(c->listen, &ss, &ss_len, &ipv6) < 0) {
                r = log_error_errno(EINVAL, "--listen %s: expected ADDR:PORT (numeric)", c->listen);
                goto out;
        }

        /* Signals go to sigwait below, never to the server thread. */
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);
        signal(SIGPIPE, SIG_IGN);

        if (node_rate_init(&srv.node_rate, c->max_syncs_per_minute, c->sync_burst) < 0) {
                r = log_error_errno(ENOMEM, "cannot make the table of the nodes' sync rates");
                goto out;
        }
        if (node_takes_init(&srv.node_takes, NODE_TAKES_MAX) < 0) {
                r = log_error_errno(ENOMEM, "cannot make the table of what nodes take");
                goto out;
        }
        if (c->tls_session_cache && tls_cache_init(&srv.tls_cache, TLS_CACHE_ENTRIES, TLS_CACHE_LIFETIME_SEC) < 0)
                log_warning("cannot make the TLS session cache: nodes do full handshakes");
        if (c->tls_tickets && gnutls_session_ticket_key_generate(&srv.ticket_key) < 0) {
                log_warning("cannot make a TLS session ticket key: nodes do full handshakes");
                srv.ticket_key = (gnutls_datum_t) {};
        }
        if (c->timeout_sec <= c->poll_interval_sec)
                log_warning("--timeout %u s is not above --poll-interval %u s: idle connections "
                            "close between syncs, each sync costs a TCP and TLS handshake",
                            c->timeout_sec, c->poll_interval_sec);

        /* Hold --max-connections (and the store, the bundles, the logs): idle or trickling
         * peers must not be able to take every descriptor (#18 item 7). */
        unsigned max_conn = c->max_connections;
        struct rlimit nofile;
        if (getrlimit(RLIMIT_NOFILE, &nofile) == 0) {
                rlim_t want = (rlim_t) max_conn + 128;
                if (nofile.rlim_cur < want) {
                        nofile.rlim_cur = want < nofile.rlim_max ? want : nofile.rlim_max;
                        (void) setrlimit(RLIMIT_NOFILE, &nofile);
                        (void) getrlimit(RLIMIT_NOFILE, &nofile);
                }
                if (nofile.rlim_cur < want) {
                        max_conn = nofile.rlim_cur > 256 ? (unsigned) (nofile.rlim_cur - 128) : 128;
                        log_warning("--max-connections %u: the open-files limit is %llu: serving %u at once",
                                    c->max_connections, (unsigned long long) nofile.rlim_cur, max_conn);
                }
        }
        unsigned max_per_ip = c->max_connections_per_ip < max_conn ? c->max_connections_per_ip : max_conn;
        /* a sixteenth of the house kept free: a newcomer finds room while unauthenticated
         * connections are shed to make it (conn-guard.h) */
        unsigned soft_limit = max_conn - max_conn / 16;
        conn_guard_init(&srv.conn_guard, soft_limit, max_conn, (int64_t) c->request_deadline_sec * 1000000);
        if (c->request_deadline_sec)
                log_info("connections: %u at once, %u per address; unauthenticated ones shed past %u, "
                         "and closed %u s after they opened unless a request on them was authorized",
                         max_conn, max_per_ip, soft_limit, c->request_deadline_sec);
        else
                log_info("connections: %u at once, %u per address; unauthenticated ones shed past %u "
                         "(no request deadline)", max_conn, max_per_ip, soft_limit);
        int e = pthread_key_create(&thread_store_key, thread_store_close);
        if (e != 0) {
                r = log_error_errno(e, "cannot make the server threads' store key");
                goto out;
        }
        srv.thread_store_key_made = true;
        srv.failpoint_sync_stall = getenv("ORBIT_FAILPOINT_SYNC_STALL_FILE");
        if (srv.failpoint_sync_stall && !*srv.failpoint_sync_stall)
                srv.failpoint_sync_stall = NULL;
        /* A pool: a sync's parse and transaction, an upload's verification, a TLS handshake
         * hold one thread's connections, not all. libmicrohttpd divides its connection limit
         * among the threads, which need not get equal shares: each may hold them all, and the
         * guard holds the sum to --max-connections. */
        long cpus = sysconf(_SC_NPROCESSORS_ONLN);
        unsigned threads = c->threads ? c->threads : cpus < 1 ? 1 : cpus > 8 ? 8 : (unsigned) cpus;
        log_info("%u server thread%s", threads, threads == 1 ? "" : "s");

        /* No Date header: 37 bytes of every answer, which no node reads (server_time is in
         * the sync answer's body); RFC 9110 6.6.1 makes it optional. */
        unsigned flags = MHD_USE_TLS | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO |
                         MHD_USE_ERROR_LOG | MHD_USE_SUPPRESS_DATE_NO_CLOCK | (ipv6 ? MHD_USE_IPv6 : 0);
        struct MHD_Daemon *d = MHD_start_daemon(
                flags, 0, NULL, NULL, on_request, &srv, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                NULL, MHD_OPTION_SOCK_ADDR,
                (struct sockaddr *) &ss, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_HTTPS_MEM_CERT,
                cert, MHD_OPTION_HTTPS_MEM_TRUST, trust, MHD_OPTION_HTTPS_PRIORITIES,
                "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2", MHD_OPTION_CONNECTION_LIMIT,
                max_conn * threads, MHD_OPTION_PER_IP_CONNECTION_LIMIT, max_per_ip, MHD_OPTION_THREAD_POOL_SIZE,
                threads,
                MHD_OPTION_CONNECTION_TIMEOUT, c->timeout_sec, MHD_OPTION_NOTIFY_COMPLETED,
                on_completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection, &srv,
                MHD_OPTION_END);
        if (!d) {
                r = log_error_errno(EADDRNOTAVAIL,
                                    "cannot start the HTTPS server on %s (address in use, or bad "
                                    "certificate/key?)",
                                    c->listen);
                goto out;
        }
        if (c->tcp_congestion)
                (void) listen_set_congestion(d, c->tcp_congestion); /* logged; the default stays */
        int port = bound_port(d);
        log_info("orbit-controller serving on %s (port %d), data in %s, poll interval %u s",
                 c->listen, port, c->data_dir, c->poll_interval_sec);
        if (c->port_file && port > 0) {
                char text[16];
                int n = snprintf(text, sizeof(text), "%d\n", port);
                r = write_file_durable(c->port_file, text, (size_t) n, 0644);
                if (r < 0) {
                        log_error_errno(r, "cannot write %s", c->port_file);
                        MHD_stop_daemon(d);
                        goto out;
                }
        }
        int sig = 0;
        if (c->retain_records_sec > 0)
                log_info("records are kept %" PRId64 " s (critical and update.* ones for ever)", c->retain_records_sec);
        time_t next_retention = time(NULL) + retention_interval(c->retain_records_sec);
        time_t next_usage_thin = time(NULL) + 60;
        int64_t next_tick = now_usec() + ROLLOUT_TICK_SEC * 1000000LL;
        for (;;) {
                /* Between signals, on connections of their own: the rollout tick moves time
                 * gates of rollouts no member of which syncs; retention deletes in short
                 * batches, so a sync waits at most one batch for the database. Every second,
                 * connections past the request deadline are closed. */
                struct timespec wait = {.tv_sec = 1};
                sig = sigtimedwait(&mask, NULL, &wait);
                if (sig > 0)
                        break;
                if (sig < 0 && errno != EAGAIN && errno != EINTR)
                        continue;
                guard_expire(&srv);
                if (now_usec() < next_tick)
                        continue;
                next_tick = now_usec() + ROLLOUT_TICK_SEC * 1000000LL;
                if (!periodic_lead(&srv))
                        continue;
                r = store_rollouts_tick(srv.tick_store, now_sec());
                if (r < 0)
                        log_warning("rollout tick: %s", strerror(-r));
                r = store_deployments_drive(srv.tick_store, now_sec());
                if (r < 0 && r != -EBUSY)
                        log_warning("deployments: %s", strerror(-r));
                if (c->retain_records_sec > 0 && time(NULL) >= next_retention) {
                        retention_run(srv.database, c->retain_records_sec);
                        next_retention = time(NULL) + retention_interval(c->retain_records_sec);
                }
                if (time(NULL) >= next_usage_thin) {
                        usage_thin_run(srv.database, c);
                        next_usage_thin = time(NULL) + USAGE_THIN_SEC;
                }
        }
        log_info("signal %d: stopping", sig);
        MHD_stop_daemon(d);
        r = 0;
out:
        if (key)
                explicit_bzero(key, strlen(key));
        server_done(&srv);
        return r;
}
