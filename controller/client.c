/* Operator subcommands: one HTTPS request each (libcurl easy), human or JSON output. */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "controller/api.h"
#include "controller/client.h"
#include "controller/rollout.h"
#include "proto/usage-record.h"
#include "lib/fileio.h"
#include "lib/macro.h"

#define RESPONSE_MAX (64 * 1024 * 1024)
#define EXIT_FAILED 1
#define EXIT_USAGE 2

struct buffer {
        char *data;
        size_t len;
        bool overflow;
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *userdata) {
        struct buffer *b = userdata;
        size_t n = size * nmemb;
        if (b->len + n > RESPONSE_MAX) {
                b->overflow = true;
                return 0;
        }
        char *d = realloc(b->data, b->len + n + 1);
        if (!d)
                return 0;
        memcpy(d + b->len, ptr, n);
        b->len += n;
        d[b->len] = '\0';
        b->data = d;
        return n;
}

struct reply {
        long status;
        json_t *json; /* the parsed body, or NULL */
};

static void reply_done(struct reply *r) {
        json_decref(r->json);
}

/*
 * One request. body/body_len or upload (a file to send as the body). Prints transport
 * errors and server errors (with the server's message) and returns -EIO/-EPROTO then.
 */
static int request(const struct client_options *o, const char *method, const char *path,
                   const char *body, FILE *upload, curl_off_t upload_size, struct reply *ret) {
        memset(ret, 0, sizeof(*ret));
        if (!o->url) {
                fprintf(stderr, "orbit-controller: --url https://HOST:PORT is required "
                                "(or $ORBIT_CONTROLLER_URL)\n");
                return -EINVAL;
        }
        _cleanup_free_ char *token = NULL, *auth = NULL, *url = NULL;
        if (o->token_file) {
                size_t len;
                int r = read_file_bounded(o->token_file, API_TOKEN_MAX + 2, &token, &len);
                if (r < 0) {
                        fprintf(stderr, "orbit-controller: cannot read the token file %s: %s\n",
                                o->token_file, strerror(-r));
                        return r;
                }
                while (len > 0 && (token[len - 1] == '\n' || token[len - 1] == '\r'))
                        token[--len] = '\0';
                if (asprintf(&auth, "Authorization: Bearer %s", token) < 0)
                        return -ENOMEM;
        }
        size_t ul = strlen(o->url);
        if (asprintf(&url, "%.*s%s", (int) (ul > 0 && o->url[ul - 1] == '/' ? ul - 1 : ul), o->url,
                     path) < 0)
                return -ENOMEM;

        CURL *c = curl_easy_init();
        if (!c)
                return -ENOMEM;
        struct curl_slist *headers = NULL;
        headers = curl_slist_append(headers, upload ? "Content-Type: application/octet-stream"
                                                    : "Content-Type: application/json");
        if (auth)
                headers = curl_slist_append(headers, auth);
        struct buffer buf = {};
        char errbuf[CURL_ERROR_SIZE] = "";
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https");
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
        curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
        curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 20L);
        curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
        if (o->cacert)
                curl_easy_setopt(c, CURLOPT_CAINFO, o->cacert);
        if (o->cert)
                curl_easy_setopt(c, CURLOPT_SSLCERT, o->cert);
        if (o->key)
                curl_easy_setopt(c, CURLOPT_SSLKEY, o->key);
        if (upload) {
                curl_easy_setopt(c, CURLOPT_POST, 1L);
                curl_easy_setopt(c, CURLOPT_READDATA, upload);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, upload_size);
        } else if (body) {
                curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
                curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
        }
        CURLcode cr = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_slist_free_all(headers);
        curl_easy_cleanup(c);
        if (token)
                explicit_bzero(token, strlen(token));
        if (cr != CURLE_OK) {
                fprintf(stderr, "orbit-controller: %s %s: %s\n", method, url,
                        buf.overflow ? "answer too large" : errbuf[0] ? errbuf : curl_easy_strerror(cr));
                free(buf.data);
                return -EIO;
        }
        ret->status = status;
        ret->json = buf.data ? json_loadb(buf.data, buf.len, 0, NULL) : NULL;
        if (status < 200 || status >= 300) {
                const char *msg = json_string_value(json_object_get(ret->json, "message"));
                fprintf(stderr, "orbit-controller: %s %s: HTTP %ld: %s\n", method, path, status,
                        msg ? msg : buf.data ? buf.data : "(no message)");
                free(buf.data);
                reply_done(ret);
                ret->json = NULL;
                return -EPROTO;
        }
        if (!ret->json) {
                fprintf(stderr, "orbit-controller: %s %s: the answer is not JSON\n", method, path);
                free(buf.data);
                return -EPROTO;
        }
        free(buf.data);
        return 0;
}

static void print_json(json_t *v) {
        char *s = json_dumps(v, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) {
                printf("%s\n", s);
                free(s);
        }
}

static void format_time(json_t *v, char *buf, size_t size) {
        if (!json_is_integer(v)) {
                snprintf(buf, size, "never");
                return;
        }
        time_t t = (time_t) json_integer_value(v);
        struct tm tm;
        if (!gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%d %H:%M:%SZ", &tm) == 0)
                snprintf(buf, size, "%lld", (long long) t);
}

static const char *str(json_t *o, const char *key, const char *fallback) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : fallback;
}

static long long num(json_t *o, const char *key) {
        return (long long) json_integer_value(json_object_get(o, key));
}

/* A path segment we put in a URL: the server's id rules keep it free of escapes. */
static int check_id(const char *what, const char *id, size_t max) {
        if (api_id_is_valid(id, max))
                return 0;
        fprintf(stderr, "orbit-controller: invalid %s \"%s\" (1-%zu of A-Z a-z 0-9 . _ -)\n",
                what, id, max);
        return -EINVAL;
}

static int node_list(const struct client_options *o) {
        struct reply rep;
        if (request(o, "GET", "/v1/nodes", NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *nodes = json_object_get(rep.json, "nodes");
        if (o->json) {
                print_json(nodes);
        } else {
                printf("%-24s %-21s %6s %8s %8s  %s\n", "NODE", "LAST SYNC", "BOOT", "RECORDS",
                       "PENDING", "UPDATE");
                size_t i;
                json_t *n;
                json_array_foreach(nodes, i, n) {
                        char t[32];
                        format_time(json_object_get(n, "last_sync"), t, sizeof(t));
                        json_t *update = json_object_get(n, "update");
                        printf("%-24s %-21s %6lld %8lld %8lld  %s\n", str(n, "id", "?"), t,
                               num(n, "boot_epoch"), num(n, "records"), num(n, "commands_pending"),
                               json_is_object(update) ? str(update, "kind", "-") : "-");
                }
        }
        reply_done(&rep);
        return 0;
}

/* GET /v1/nodes/<node><suffix> into rep, the id checked first: 0, EXIT_USAGE or EXIT_FAILED. */
static int node_get(const struct client_options *o, const char *node, const char *suffix, struct reply *rep) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        snprintf(path, sizeof(path), "/v1/nodes/%s%s", node, suffix);
        return request(o, "GET", path, NULL, NULL, 0, rep) < 0 ? EXIT_FAILED : 0;
}

static int node_show(const struct client_options *o, const char *node) {
        struct reply rep;
        int r = node_get(o, node, "", &rep);
        if (r != 0)
                return r;
        json_t *n = rep.json;
        if (o->json) {
                print_json(n);
                reply_done(&rep);
                return 0;
        }
        char t[32];
        format_time(json_object_get(n, "last_sync"), t, sizeof(t));
        printf("node:              %s\n", str(n, "id", "?"));
        printf("last sync:         %s (%lld syncs)\n", t, num(n, "syncs"));
        printf("boot:              epoch %lld, id %s\n", num(n, "boot_epoch"),
               str(n, "boot_id", "-"));
        printf("commands:          last queued %lld, last applied by the node %lld, %lld pending\n",
               num(n, "last_queued_seq"), num(n, "last_command_seq"), num(n, "commands_pending"));
        printf("records:           %lld", num(n, "records"));
        const char *k;
        json_t *v;
        bool first = true;
        json_object_foreach(json_object_get(n, "records_by_kind"), k, v) {
                printf("%s%s %lld", first ? " (" : ", ", k, (long long) json_integer_value(v));
                first = false;
        }
        printf("%s\n", first ? "" : ")");
        json_t *update = json_object_get(n, "update");
        if (json_is_object(update)) {
                _cleanup_free_ char *body = json_dumps(json_object_get(update, "body"), JSON_COMPACT);
                printf("update:            %s %s\n", str(update, "kind", "?"), body ? body : "");
        } else
                printf("update:            none reported\n");
        format_time(json_object_get(n, "health_time"), t, sizeof(t));
        printf("last health:       %s\n", json_is_object(json_object_get(n, "health")) ? t : "none");
        json_t *cert = json_object_get(n, "certificate");
        if (json_is_string(json_object_get(cert, "serial"))) {
                format_time(json_object_get(cert, "not_after"), t, sizeof(t));
                printf("certificate:       serial %s, not after %s\n", str(cert, "serial", "?"), t);
        }
        if (json_is_integer(json_object_get(cert, "renew_expired_until"))) {
                format_time(json_object_get(cert, "renew_expired_until"), t, sizeof(t));
                printf("renewal allowed:   an expired certificate, until %s\n", t);
        }
        size_t nw = json_array_size(json_object_get(json_object_get(n, "contact_plan"), "windows"));
        if (nw == 0)
                printf("contact plan:      none (always open)\n");
        else
                printf("contact plan:      %zu windows\n", nw);
        reply_done(&rep);
        return 0;
}

/* KEY=VALUE is a string; KEY:=JSON is any JSON value. */
static int parse_params(int n, char **args, json_t *params) {
        for (int i = 0; i < n; i++) {
                char *a = args[i];
                char *eq = strchr(a, '=');
                if (!eq || eq == a) {
                        fprintf(stderr, "orbit-controller: expected KEY=VALUE or KEY:=JSON, got "
                                        "\"%s\"\n", a);
                        return -EINVAL;
                }
                bool raw = eq > a + 1 && eq[-1] == ':';
                _cleanup_free_ char *key = strndup(a, (size_t) (eq - a - (raw ? 1 : 0)));
                if (!key)
                        return -ENOMEM;
                json_t *v;
                if (raw) {
                        json_error_t err;
                        v = json_loads(eq + 1, JSON_DECODE_ANY, &err);
                        if (!v) {
                                fprintf(stderr, "orbit-controller: %s: invalid JSON: %s\n", key,
                                        err.text);
                                return -EINVAL;
                        }
                } else
                        v = json_string(eq + 1);
                if (!v || json_object_set_new(params, key, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

static int command_send(const struct client_options *o, const char *node, const char *action,
                        int n, char **args) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        json_auto_t *params = json_object();
        if (!params || parse_params(n, args, params) < 0)
                return EXIT_USAGE;
        json_auto_t *body = json_pack("{s:s,s:O}", "action", action, "params", params);
        if (!body)
                return EXIT_FAILED;
        if (o->expires_in > 0)
                json_object_set_new(body, "expires_in_sec", json_integer(o->expires_in));
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
        char path[256];
        snprintf(path, sizeof(path), "/v1/nodes/%s/commands", node);
        struct reply rep;
        if (!text || request(o, "POST", path, text, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else {
                char t[32];
                format_time(json_object_get(rep.json, "expires"), t, sizeof(t));
                printf("queued command %lld for %s: %s (expires %s)\n", num(rep.json, "seq"), node,
                       action, t);
        }
        reply_done(&rep);
        return 0;
}

static int command_list(const struct client_options *o, const char *node) {
        struct reply rep;
        int r = node_get(o, node, "/commands", &rep);
        if (r != 0)
                return r;
        json_t *cmds = json_object_get(rep.json, "commands");
        if (o->json)
                print_json(cmds);
        else {
                printf("%5s  %-18s %-9s %-5s  %s\n", "SEQ", "ACTION", "STATE", "ACKED", "RESULT");
                size_t i;
                json_t *c;
                json_array_foreach(cmds, i, c) {
                        _cleanup_free_ char *params = json_dumps(json_object_get(c, "params"),
                                                                 JSON_COMPACT);
                        printf("%5lld  %-18s %-9s %-5s  %s %s\n", num(c, "seq"), str(c, "action", "?"),
                               str(c, "state", "?"),
                               json_is_true(json_object_get(c, "acked")) ? "yes" : "no",
                               str(c, "result_reason", ""), params ? params : "");
                }
        }
        reply_done(&rep);
        return 0;
}

static int bundle_upload(const struct client_options *o, const char *file) {
        FILE *f = fopen(file, "rbe");
        if (!f) {
                fprintf(stderr, "orbit-controller: cannot open %s: %m\n", file);
                return EXIT_FAILED;
        }
        struct stat st;
        if (fstat(fileno(f), &st) < 0 || !S_ISREG(st.st_mode)) {
                fprintf(stderr, "orbit-controller: %s is not a regular file\n", file);
                fclose(f);
                return EXIT_FAILED;
        }
        struct reply rep;
        int r = request(o, "POST", "/v1/bundles", NULL, f, (curl_off_t) st.st_size, &rep);
        fclose(f);
        if (r < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else
                printf("uploaded %s %s: %lld bytes, sha256 %s%s\n", str(rep.json, "id", "?"),
                       str(rep.json, "version", "?"), num(rep.json, "size"),
                       str(rep.json, "sha256", "?"),
                       json_is_true(json_object_get(rep.json, "verified")) ? ", signature verified"
                                                                          : "");
        reply_done(&rep);
        return 0;
}

static int bundle_list(const struct client_options *o) {
        struct reply rep;
        if (request(o, "GET", "/v1/bundles", NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *bundles = json_object_get(rep.json, "bundles");
        if (o->json)
                print_json(bundles);
        else {
                printf("%-32s %-14s %12s  %s\n", "BUNDLE", "VERSION", "SIZE", "SHA256");
                size_t i;
                json_t *b;
                json_array_foreach(bundles, i, b)
                        printf("%-32s %-14s %12lld  %s\n", str(b, "id", "?"), str(b, "version", "?"),
                               num(b, "size"), str(b, "sha256", "?"));
        }
        reply_done(&rep);
        return 0;
}

static int health(const struct client_options *o, const char *node) {
        struct reply rep;
        int r = node_get(o, node, "", &rep);
        if (r != 0)
                return r;
        json_t *h = json_object_get(rep.json, "health");
        int ret = 0;
        if (o->json)
                print_json(h ? h : json_null());
        else if (!json_is_object(h)) {
                printf("%s has sent no health report yet\n", node);
        } else {
                char t[32];
                format_time(json_object_get(rep.json, "health_time"), t, sizeof(t));
                printf("health report of %s, received %s:\n", node, t);
                print_json(h);
        }
        reply_done(&rep);
        return ret;
}

static int records(const struct client_options *o, const char *node) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        _cleanup_free_ char *path = NULL;
        CURL *c = curl_easy_init();
        char *kind = o->kind && c ? curl_easy_escape(c, o->kind, 0) : NULL;
        int n = asprintf(&path, "/v1/nodes/%s/records%s%s%s%s", node, kind || o->limit ? "?" : "",
                         kind ? "kind=" : "", kind ? kind : "",
                         o->limit ? (kind ? "&limit=" : "limit=") : "");
        curl_free(kind);
        if (c)
                curl_easy_cleanup(c);
        if (n < 0)
                return EXIT_FAILED;
        if (o->limit) {
                char *p2;
                if (asprintf(&p2, "%s%s", path, o->limit) < 0)
                        return EXIT_FAILED;
                free(path);
                path = p2;
        }
        struct reply rep;
        if (request(o, "GET", path, NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *recs = json_object_get(rep.json, "records");
        if (o->json)
                print_json(recs);
        else {
                size_t i;
                json_t *r;
                json_array_foreach(recs, i, r) {
                        json_t *key = json_object_get(r, "key");
                        _cleanup_free_ char *body = json_dumps(json_object_get(r, "body"), JSON_COMPACT);
                        char t[32];
                        json_t *usec = json_object_get(r, "time_usec");
                        json_auto_t *sec = json_integer(json_integer_value(usec) / 1000000);
                        format_time(sec, t, sizeof(t));
                        printf("%lld/%lld %s %-8s %-20s %s\n", num(key, "boot_epoch"), num(key, "seq"),
                               t, str(r, "priority", "?"), str(r, "kind", "?"), body ? body : "");
                }
        }
        reply_done(&rep);
        return 0;
}

/* ---- node certificates (docs/security.md, "Node certificates") ----------------------------- */

/*
 * POST body to /v1/nodes/{node}/{what} and print the answer: as JSON, or as one line, the
 * node, middle, the time the answer holds in `field`, and tail.
 */
static int node_post_time(const struct client_options *o, const char *node, const char *what, const char *body,
                          const char *field, const char *middle, const char *tail) {
        char path[256];
        snprintf(path, sizeof(path), "/v1/nodes/%s/%s", node, what);
        struct reply rep;
        if (request(o, "POST", path, body, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else {
                char t[32];
                format_time(json_object_get(rep.json, field), t, sizeof(t));
                printf("%s%s%s%s\n", node, middle, t, tail);
        }
        reply_done(&rep);
        return 0;
}

/* An operator's leave for a node whose certificate expired to have it renewed. */
static int node_allow_renew(const struct client_options *o, const char *node) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        int64_t now = (int64_t) time(NULL), until;
        const char *u = o->until ? o->until : "1d";
        struct tm tm = {};
        const char *end = strchr(u, 'T') ? strptime(u, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
        if (end && !*end)
                until = (int64_t) timegm(&tm);
        else {
                struct rollout_gate g;
                if (strchr(u, 'T') || rollout_gate_parse("--until", u, true, &g, NULL) < 0 ||
                    g.kind != ROLLOUT_GATE_SECONDS || g.value <= 0) {
                        fprintf(stderr, "orbit-controller: --until: expected a duration (\"2h\", \"1d\") or a UTC "
                                        "time (\"2026-12-31T23:00:00Z\"), got \"%s\"\n", u);
                        return EXIT_USAGE;
                }
                until = now + g.value;
        }
        json_auto_t *body = json_pack("{s:I}", "until", (json_int_t) until);
        _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
        if (!text)
                return EXIT_FAILED;
        return node_post_time(o, node, "allow-renew", text, "renew_expired_until",
                              " may renew its expired certificate until ", "");
}

/* Every certificate of the node made until now refused from now on: a stolen node key. */
static int node_revoke_certs(const struct client_options *o, const char *node) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        return node_post_time(o, node, "revoke-certificates", "{}", "certs_revoked_before",
                              ": its certificates made until ", " are refused");
}

/* ---- desired states (docs/deployments.md) ------------------------------------------------ */

/* FILE: {"workloads": [...], "if_version"?: N}, or the workloads' array alone. */
static int desired_set(const struct client_options *o, const char *node, const char *file) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_bounded(file, OPERATOR_BODY_MAX, &text, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-controller: %s: %s\n", file, strerror(-r));
                return EXIT_USAGE;
        }
        json_error_t err;
        json_auto_t *v = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!v || (!json_is_array(v) && !json_is_object(v))) {
                fprintf(stderr, "orbit-controller: %s:%d:%d: %s\n", file, v ? 1 : err.line, v ? 1 : err.column,
                        v ? "expected {\"workloads\": [...]} or an array of workload entries" : err.text);
                return EXIT_USAGE;
        }
        json_auto_t *body = json_is_array(v) ? json_pack("{s:O}", "workloads", v) : json_incref(v);
        _cleanup_free_ char *out = body ? json_dumps(body, JSON_COMPACT) : NULL;
        char path[256];
        snprintf(path, sizeof(path), "/v1/nodes/%s/desired", node);
        struct reply rep;
        if (!out || request(o, "PUT", path, out, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else
                printf("desired state v%lld of %s: %lld workloads\n", num(rep.json, "version"), node,
                       num(rep.json, "workloads"));
        reply_done(&rep);
        return 0;
}

static int desired_show(const struct client_options *o, const char *node) {
        if (check_id("node id", node, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        snprintf(path, sizeof(path), "/v1/nodes/%s/desired", node);
        struct reply rep;
        if (request(o, "GET", path, NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json) {
                print_json(rep.json);
                reply_done(&rep);
                return 0;
        }
        json_t *nv = json_object_get(rep.json, "node_version"), *report = json_object_get(rep.json, "report");
        printf("%s: desired state v%lld; the node has ", node, num(rep.json, "version"));
        if (json_is_integer(nv))
                printf("v%lld", (long long) json_integer_value(nv));
        else
                printf("said nothing yet");
        if (num(rep.json, "node_refused") > 0)
                printf(", refused v%lld", num(rep.json, "node_refused"));
        printf("\n");
        size_t i;
        json_t *w;
        json_array_foreach(json_object_get(json_object_get(rep.json, "document"), "workloads"), i, w) {
                json_t *app = json_object_get(json_object_get(w, "spec"), "app");
                printf("  %-20s %s%s%s%s\n", str(w, "name", "?"), app ? str(app, "name", "") : "-", app ? " " : "",
                       app ? str(app, "version", "(following)") : "", "");
        }
        if (json_is_object(report)) {
                printf("last report: v%lld %s\n", num(report, "version"),
                       json_is_true(json_object_get(report, "reached")) ? "reached" : "not reached");
                json_array_foreach(json_object_get(report, "workloads"), i, w)
                        printf("  %-20s %-10s %s\n", str(w, "name", "?"), str(w, "state", "?"), str(w, "reason", ""));
        }
        reply_done(&rep);
        return 0;
}

/* The id, target and strategy options a rollout and a deployment share, into body. */
static void strategy_options_put(const struct client_options *o, json_t *body) {
        const struct {
                const char *key, *value;
        } opts[] = {
                {"id", o->rollout_id},
                {"target", o->target},
                {"stages", o->stages},
                {"success_after", o->success_after},
                {"stage_timeout", o->stage_timeout},
                {"max_failures", o->max_failures},
                {"min_healthy_time", o->min_healthy_time},
                {"report_deadline", o->report_deadline},
        };
        for (size_t i = 0; i < ELEMENTSOF(opts); i++)
                if (opts[i].value)
                        json_object_set_new(body, opts[i].key, json_string(opts[i].value));
        if (o->auto_revert)
                json_object_set_new(body, "auto_revert", json_true());
}

/* ---- deployments (docs/deployments.md) ----------------------------------------------------- */

static int number_option(const char *name, const char *text, json_t *into, const char *key) {
        char *end = NULL;
        long long v = text ? strtoll(text, &end, 10) : 0;
        if (!text)
                return 0;
        if (!*text || *end || v < 0) {
                fprintf(stderr, "orbit-controller: %s: expected a number >= 0, got \"%s\"\n", name, text);
                return -EINVAL;
        }
        return json_object_set_new(into, key, json_integer(v)) < 0 ? -ENOMEM : 0;
}

static void deployment_print(json_t *d) {
        printf("deployment %s: workload %s, bundle %s, %s, stage %lld of %zu", str(d, "id", "?"), str(d, "workload", "?"),
               str(d, "bundle_id", "?"), str(d, "state", "?"), num(d, "stage"),
               json_array_size(json_object_get(d, "stages")));
        if (json_is_string(json_object_get(d, "reason")))
                printf(" (%s)", str(d, "reason", ""));
        printf("\n");
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(d, "nodes"), i, m) {
                printf("  %-20s stage %lld  %-12s", str(m, "node", "?"), num(m, "stage"), str(m, "state", "?"));
                if (json_is_string(json_object_get(m, "reason")))
                        printf(" %s", str(m, "reason", ""));
                printf("\n");
        }
}

static int deployment_create(const struct client_options *o) {
        if (!o->bundle || !o->spec_file) {
                fprintf(stderr, "orbit-controller: deployment create needs --bundle ID and --spec FILE\n");
                return EXIT_USAGE;
        }
        _cleanup_free_ char *text = NULL;
        size_t len;
        int r = read_file_bounded(o->spec_file, OPERATOR_BODY_MAX, &text, &len);
        if (r < 0) {
                fprintf(stderr, "orbit-controller: %s: %s\n", o->spec_file, strerror(-r));
                return EXIT_USAGE;
        }
        json_error_t err;
        json_auto_t *spec = json_loadb(text, len, JSON_REJECT_DUPLICATES, &err);
        if (!json_is_object(spec)) {
                fprintf(stderr, "orbit-controller: %s:%d:%d: %s\n", o->spec_file, spec ? 1 : err.line,
                        spec ? 1 : err.column, spec ? "expected a workload spec (an object)" : err.text);
                return EXIT_USAGE;
        }
        json_auto_t *body = json_pack("{s:s, s:O}", "bundle_id", o->bundle, "spec", spec);
        json_t *k = json_object();
        if (!body || !k)
                return EXIT_FAILED;
        strategy_options_put(o, body);
        if (number_option("--count", o->count, body, "count") < 0 ||
            number_option("--min-free-mib", o->min_free_mib, k, "min_free_mib") < 0 ||
            number_option("--min-battery", o->min_battery, k, "min_battery_percent") < 0) {
                json_decref(k);
                return EXIT_USAGE;
        }
        if (o->max_level)
                json_object_set_new(k, "max_level", json_string(o->max_level));
        json_object_set_new(body, "constraints", k);
        _cleanup_free_ char *out = json_dumps(body, JSON_COMPACT);
        struct reply rep;
        if (!out || request(o, "POST", "/v1/deployments", out, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else
                deployment_print(rep.json);
        reply_done(&rep);
        return 0;
}

static int deployment_other(const struct client_options *o, const char *verb, const char *id) {
        if (id && check_id("deployment id", id, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        const char *method = "GET";
        if (!id)
                snprintf(path, sizeof(path), "/v1/deployments");
        else if (streq(verb, "status"))
                snprintf(path, sizeof(path), "/v1/deployments/%s", id);
        else if (streq(verb, "delete")) {
                snprintf(path, sizeof(path), "/v1/deployments/%s", id);
                method = "DELETE";
        } else {
                snprintf(path, sizeof(path), "/v1/deployments/%s/%s", id, verb);
                method = "POST";
        }
        struct reply rep;
        if (request(o, method, path, streq(method, "POST") ? "{}" : NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(id ? rep.json : json_object_get(rep.json, "deployments"));
        else if (id)
                deployment_print(rep.json);
        else {
                size_t i;
                json_t *d;
                json_array_foreach(json_object_get(rep.json, "deployments"), i, d)
                        printf("%-20s %-16s %-10s stage %lld  %lld of %lld nodes running\n", str(d, "id", "?"),
                               str(d, "workload", "?"), str(d, "state", "?"), num(d, "stage"), num(d, "running"),
                               num(d, "nodes"));
        }
        reply_done(&rep);
        return 0;
}

/* ---- groups and rollouts (docs/rollouts.md) ------------------------------------------ */

static int node_group(const struct client_options *o, const char *node, const char *group,
                      bool add) {
        if (check_id("node id", node, API_ID_MAX) < 0 || check_id("group", group, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        struct reply rep;
        int r;
        if (add) {
                json_auto_t *body = json_pack("{s:s}", "group", group);
                _cleanup_free_ char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
                snprintf(path, sizeof(path), "/v1/nodes/%s/groups", node);
                r = text ? request(o, "POST", path, text, NULL, 0, &rep) : -ENOMEM;
        } else {
                snprintf(path, sizeof(path), "/v1/nodes/%s/groups?group=%s", node, group);
                r = request(o, "DELETE", path, NULL, NULL, 0, &rep);
        }
        if (r < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else {
                printf("%s is in groups:", node);
                size_t i;
                json_t *g;
                json_array_foreach(json_object_get(rep.json, "groups"), i, g)
                        printf(" %s", json_string_value(g));
                printf("\n");
        }
        reply_done(&rep);
        return 0;
}

static int rollout_create(const struct client_options *o) {
        if (!o->bundle) {
                fprintf(stderr, "orbit-controller: rollout create needs --bundle ID\n");
                return EXIT_USAGE;
        }
        json_auto_t *body = json_pack("{s:s}", "bundle_id", o->bundle);
        if (!body)
                return EXIT_FAILED;
        strategy_options_put(o, body);
        _cleanup_free_ char *text = json_dumps(body, JSON_COMPACT);
        struct reply rep;
        if (!text || request(o, "POST", "/v1/rollouts", text, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else {
                printf("created rollout %s: bundle %s to %s, %lld nodes in stages %s%% (",
                       str(rep.json, "id", "?"), str(rep.json, "bundle_id", "?"),
                       str(rep.json, "target", "?"),
                       num(json_object_get(rep.json, "counts"), "nodes"),
                       str(rep.json, "stages_text", "?"));
                size_t i;
                json_t *st;
                json_array_foreach(json_object_get(rep.json, "stage_progress"), i, st)
                        printf("%s%lld", i ? ", " : "", num(st, "nodes"));
                printf(" nodes)\n");
        }
        reply_done(&rep);
        return 0;
}

static bool rollout_is_over(json_t *r) {
        const char *state = str(r, "state", "");
        return streq(state, "completed") || streq(state, "halted") || streq(state, "aborted");
}

static void rollout_print(json_t *r) {
        json_t *c = json_object_get(r, "counts");
        printf("rollout %s: bundle %s to %s: %s, stage %lld of %zu\n", str(r, "id", "?"),
               str(r, "bundle_id", "?"), str(r, "target", "?"), str(r, "state", "?"),
               num(r, "current_stage"), json_array_size(json_object_get(r, "stages")));
        const char *success = str(r, "success_after", "?"), *timeout = str(r, "stage_timeout", "");
        size_t sl = strlen(success), tl = strlen(timeout);
        const char *deadline = str(r, "report_deadline", "");
        size_t dl = strlen(deadline);
        printf("  stages %s%%, success after %s%s (min healthy time %llds), stage timeout %s%s, "
               "report deadline %s%s, max failures %s%s\n",
               str(r, "stages_text", "?"), success,
               sl && success[sl - 1] == 's' ? "" : " passes", num(r, "min_healthy_time"),
               tl ? timeout : "none", !tl || timeout[tl - 1] == 's' ? "" : " passes",
               dl ? deadline : "none", !dl || deadline[dl - 1] == 's' ? "" : " passes",
               str(r, "max_failures", "?"),
               json_is_true(json_object_get(r, "auto_revert")) ? ", auto-revert" : "");
        printf("  %lld nodes: %lld committed, %lld installing, %lld told, %lld pending, "
               "%lld failed, %lld rolled back, %lld overdue, %lld skipped; failures %lld of "
               "%lld told\n",
               num(c, "nodes"), num(c, "committed"), num(c, "installing"), num(c, "told"),
               num(c, "pending"), num(c, "failed"), num(c, "rolled-back"), num(c, "overdue"),
               num(c, "skipped"), num(c, "failures"), num(c, "told_so_far"));
        if (json_is_string(json_object_get(r, "reason")))
                printf("  reason: %s\n", str(r, "reason", ""));
        printf("  %5s %4s %6s %8s %5s %11s %10s %5s %7s %12s %8s  %s\n", "STAGE", "PCT", "NODES",
               "PENDING", "TOLD", "INSTALLING", "COMMITTED", "HELD", "FAILED", "ROLLED-BACK",
               "SKIPPED", "STATUS");
        size_t i;
        json_t *st;
        json_array_foreach(json_object_get(r, "stage_progress"), i, st)
                printf("  %5lld %3lld%% %6lld %8lld %5lld %11lld %10lld %5lld %7lld %12lld %8lld  %s\n",
                       num(st, "stage"), num(st, "percent"), num(st, "nodes"), num(st, "pending"),
                       num(st, "told"), num(st, "installing"), num(st, "committed"),
                       num(st, "held"), num(st, "failed"), num(st, "rolled-back"),
                       num(st, "skipped"), str(st, "status", "?"));
        printf("  events:\n");
        json_t *e;
        json_array_foreach(json_object_get(r, "events"), i, e) {
                char t[32];
                format_time(json_object_get(e, "time"), t, sizeof(t));
                printf("    %s  %-14s %s\n", t, str(e, "event", "?"), str(e, "detail", ""));
        }
}

static int rollout_status(const struct client_options *o, const char *id) {
        if (check_id("rollout id", id, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        snprintf(path, sizeof(path), "/v1/rollouts/%s", id);
        bool tty = isatty(STDOUT_FILENO);
        _cleanup_free_ char *last = NULL;
        for (;;) {
                struct reply rep;
                if (request(o, "GET", path, NULL, NULL, 0, &rep) < 0)
                        return EXIT_FAILED;
                bool over = rollout_is_over(rep.json);
                bool completed = streq(str(rep.json, "state", ""), "completed");
                /* Redraw only what changed when not on a terminal (logs stay readable). */
                json_object_del(rep.json, "stage_started");
                _cleanup_free_ char *now = json_dumps(rep.json, JSON_COMPACT | JSON_SORT_KEYS);
                bool changed = !last || !now || !streq(last, now);
                if (!o->watch || changed || tty) {
                        if (o->watch && tty)
                                printf("\033[H\033[J");
                        if (o->json)
                                print_json(rep.json);
                        else
                                rollout_print(rep.json);
                        fflush(stdout);
                }
                free(last);
                last = TAKE_PTR(now);
                reply_done(&rep);
                if (!o->watch)
                        return 0;
                if (over)
                        return completed ? 0 : 3;
                sleep(1);
        }
}

static int rollout_verb(const struct client_options *o, const char *verb, const char *id) {
        if (check_id("rollout id", id, API_ID_MAX) < 0)
                return EXIT_USAGE;
        char path[256];
        snprintf(path, sizeof(path), "/v1/rollouts/%s/%s", id, verb);
        struct reply rep;
        if (request(o, "POST", path, "{}", NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        if (o->json)
                print_json(rep.json);
        else
                printf("rollout %s: %s, stage %lld\n", id, str(rep.json, "state", "?"),
                       num(rep.json, "current_stage"));
        reply_done(&rep);
        return 0;
}

static int rollout_list(const struct client_options *o) {
        struct reply rep;
        if (request(o, "GET", "/v1/rollouts", NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *list = json_object_get(rep.json, "rollouts");
        if (o->json)
                print_json(list);
        else {
                printf("%-20s %-24s %-12s %-10s %7s %6s %9s %8s\n", "ROLLOUT", "BUNDLE", "TARGET",
                       "STATE", "STAGE", "NODES", "COMMITTED", "FAILURES");
                size_t i;
                json_t *r;
                json_array_foreach(list, i, r) {
                        json_t *c = json_object_get(r, "counts");
                        char stage[32];
                        snprintf(stage, sizeof(stage), "%lld/%zu", num(r, "current_stage"),
                                 json_array_size(json_object_get(r, "stages")));
                        printf("%-20s %-24s %-12s %-10s %7s %6lld %9lld %8lld\n", str(r, "id", "?"),
                               str(r, "bundle_id", "?"), str(r, "target", "?"),
                               str(r, "state", "?"), stage, num(c, "nodes"), num(c, "committed"),
                               num(c, "failures"));
                }
        }
        reply_done(&rep);
        return 0;
}

/* The audit log: who asked the operator API for which change (#18 item 6). */
static int audit_list(const struct client_options *o) {
        struct reply rep;
        if (request(o, "GET", "/v1/audit?limit=1000", NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *entries = json_object_get(rep.json, "audit");
        if (o->json)
                print_json(entries);
        else {
                printf("%-21s %-28s %-9s %-7s %s\n", "TIME", "WHO", "ROLE", "METHOD", "PATH");
                size_t i;
                json_t *e;
                json_array_foreach(entries, i, e) {
                        char t[32];
                        format_time(json_object_get(e, "time"), t, sizeof(t));
                        printf("%-21s %-28s %-9s %-7s %s\n", t, str(e, "who", "?"), str(e, "role", "?"),
                               str(e, "method", "?"), str(e, "path", "?"));
                }
        }
        reply_done(&rep);
        return 0;
}

/* A time for --since/--until: a UTC time ("2026-12-01T00:00:00Z") or a duration ago ("7d"). */
static int time_arg(const char *opt, const char *text, int64_t now, int64_t *ret) {
        struct tm tm = {};
        const char *end = strchr(text, 'T') ? strptime(text, "%Y-%m-%dT%H:%M:%SZ", &tm) : NULL;
        if (end && !*end) {
                *ret = (int64_t) timegm(&tm);
                return 0;
        }
        struct rollout_gate g;
        if (strchr(text, 'T') || rollout_gate_parse(opt, text, true, &g, NULL) < 0 || g.kind != ROLLOUT_GATE_SECONDS ||
            g.value <= 0 || g.value >= now) {
                fprintf(stderr, "orbit-controller: %s: expected a duration ago (\"2h\", \"7d\") or a UTC time "
                                "(\"2026-12-01T00:00:00Z\"), got \"%s\"\n", opt, text);
                return -EINVAL;
        }
        *ret = now - g.value;
        return 0;
}

/* A query parameter "&key=value" when value is set (our names need no escaping: checked). */
static int query_add(char **q, const char *key, const char *value) {
        if (!value)
                return 0;
        if (!usage_name_is_valid(value)) {
                fprintf(stderr, "orbit-controller: --%s: expected 1-%d of A-Z a-z 0-9 . _ -, got \"%s\"\n", key,
                        USAGE_NAME_MAX, value);
                return -EINVAL;
        }
        char *n;
        if (asprintf(&n, "%s&%s=%s", *q, key, value) < 0)
                return -ENOMEM;
        free(*q);
        *q = n;
        return 0;
}

static void print_amount(double v, int width) {
        if (v != 0 && v < 0.01)
                printf(" %*.3g", width, v);
        else
                printf(" %*.2f", width, v);
}

/* Metered usage summed (#19 item 5): a table, or the rows as the server gives them. */
static int usage_show(const struct client_options *o) {
        const char *by = o->usage_by ? o->usage_by : "tenant";
        if (!streq(by, "tenant") && !streq(by, "deployment") && !streq(by, "node") && !streq(by, "workload")) {
                fprintf(stderr, "orbit-controller: --by: expected tenant, deployment, node or workload\n");
                return EXIT_USAGE;
        }
        int64_t now = (int64_t) time(NULL), since = 0, until = 0;
        if ((o->since && time_arg("--since", o->since, now, &since) < 0) ||
            (o->until && time_arg("--until", o->until, now, &until) < 0))
                return EXIT_USAGE;
        _cleanup_free_ char *q = NULL;
        if (asprintf(&q, "/v1/usage?by=%s", by) < 0)
                return EXIT_FAILED;
        if (query_add(&q, "tenant", o->tenant) < 0 || query_add(&q, "deployment", o->deployment) < 0 ||
            query_add(&q, "node", o->node) < 0)
                return EXIT_USAGE;
        char since_text[32] = "", until_text[32] = "";
        if (since)
                snprintf(since_text, sizeof(since_text), "&since=%" PRId64, since);
        if (until)
                snprintf(until_text, sizeof(until_text), "&until=%" PRId64, until);
        _cleanup_free_ char *path = NULL;
        if (asprintf(&path, "%s%s%s", q, since_text, until_text) < 0)
                return EXIT_FAILED;
        struct reply rep;
        if (request(o, "GET", path, NULL, NULL, 0, &rep) < 0)
                return EXIT_FAILED;
        json_t *rows = json_object_get(rep.json, "usage");
        if (o->json) {
                print_json(rows);
                reply_done(&rep);
                return 0;
        }
        char head[16];
        snprintf(head, sizeof(head), "%s", by);
        for (char *c = head; *c; c++)
                *c = (char) (*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        printf("%-24s %12s %14s %12s %16s %9s %5s\n", head, "CPU S", "MEMORY GIB*H", "ENERGY WH", "LINK BYTES",
               "METERS", "NODES");
        double cpu = 0, mem = 0, wh = 0, link = 0;
        size_t i;
        json_t *r;
        json_array_foreach(rows, i, r) {
                /* names are checked by the controller (usage records, deployments): no escapes */
                const char *name = json_string_value(json_object_get(r, by)),
                           *claimed = json_string_value(json_object_get(r, "claimed_tenant"));
                /* usage a node claimed for a tenant the controller did not bill: a row of its own */
                char label[96];
                if (!name && claimed)
                        snprintf(label, sizeof(label), "(unverified: %s)", claimed);
                else
                        snprintf(label, sizeof(label), "%s", name ? name : "(none)");
                printf("%-24s", label);
                double c = json_number_value(json_object_get(r, "cpu_sec")),
                       m = json_number_value(json_object_get(r, "memory_gib_hours")),
                       e = json_number_value(json_object_get(r, "energy_wh")),
                       l = json_number_value(json_object_get(r, "link_bytes"));
                print_amount(c, 12);
                print_amount(m, 14);
                print_amount(e, 12);
                printf(" %16.0f %9lld %5lld\n", l, num(r, "meters"), num(r, "nodes"));
                cpu += c, mem += m, wh += e, link += l;
        }
        if (json_array_size(rows) > 1) {
                printf("%-24s", "total");
                print_amount(cpu, 12);
                print_amount(mem, 14);
                print_amount(wh, 12);
                printf(" %16.0f\n", link);
        }
        if (json_array_size(rows) == 0)
                printf("(no usage counted%s)\n", o->tenant || o->deployment || o->node || since || until
                                                           ? " for this selection"
                                                           : "");
        reply_done(&rep);
        return 0;
}

static int usage(const char *what) {
        fprintf(stderr, "orbit-controller: %s (see orbit-controller --help)\n", what);
        return EXIT_USAGE;
}

int client_main(const struct client_options *o, int n, char **a) {
        if (n < 2 && !(n == 1 && streq(a[0], "usage")))
                return usage("expected GROUP VERB: node list|show|group|ungroup|allow-renew|revoke-certs, command "
                             "send|list, bundle upload|list, desired set|show, deployment create|status|list|pause|resume|delete, health NODE, records NODE, rollout "
                             "create|start|pause|resume|abort|status|list, audit list, usage");
        const char *group = a[0], *verb = n > 1 ? a[1] : "";
        int r = EXIT_USAGE;
        curl_global_init(CURL_GLOBAL_DEFAULT);
        if (streq(group, "usage") && n == 1)
                r = usage_show(o);
        else if (streq(group, "node") && streq(verb, "list") && n == 2)
                r = node_list(o);
        else if (streq(group, "audit") && streq(verb, "list") && n == 2)
                r = audit_list(o);
        else if (streq(group, "node") && streq(verb, "show") && n == 3)
                r = node_show(o, a[2]);
        else if (streq(group, "command") && streq(verb, "send") && n >= 4)
                r = command_send(o, a[2], a[3], n - 4, a + 4);
        else if (streq(group, "command") && streq(verb, "list") && n == 3)
                r = command_list(o, a[2]);
        else if (streq(group, "bundle") && streq(verb, "upload") && n == 3)
                r = bundle_upload(o, a[2]);
        else if (streq(group, "bundle") && streq(verb, "list") && n == 2)
                r = bundle_list(o);
        else if (streq(group, "health") && n == 2)
                r = health(o, a[1]);
        else if (streq(group, "records") && n == 2)
                r = records(o, a[1]);
        else if (streq(group, "node") && streq(verb, "allow-renew") && n == 3)
                r = node_allow_renew(o, a[2]);
        else if (streq(group, "node") && streq(verb, "revoke-certs") && n == 3)
                r = node_revoke_certs(o, a[2]);
        else if (streq(group, "node") && (streq(verb, "group") || streq(verb, "ungroup")) &&
                 n == 4)
                r = node_group(o, a[2], a[3], streq(verb, "group"));
        else if (streq(group, "desired") && streq(verb, "set") && n == 4)
                r = desired_set(o, a[2], a[3]);
        else if (streq(group, "desired") && streq(verb, "show") && n == 3)
                r = desired_show(o, a[2]);
        else if (streq(group, "deployment") && streq(verb, "create") && n == 2)
                r = deployment_create(o);
        else if (streq(group, "deployment") && streq(verb, "list") && n == 2)
                r = deployment_other(o, verb, NULL);
        else if (streq(group, "deployment") &&
                 (streq(verb, "status") || streq(verb, "pause") || streq(verb, "resume") || streq(verb, "delete")) &&
                 n == 3)
                r = deployment_other(o, verb, a[2]);
        else if (streq(group, "rollout") && streq(verb, "create") && n == 2)
                r = rollout_create(o);
        else if (streq(group, "rollout") && streq(verb, "list") && n == 2)
                r = rollout_list(o);
        else if (streq(group, "rollout") && streq(verb, "status") && n == 3)
                r = rollout_status(o, a[2]);
        else if (streq(group, "rollout") &&
                 (streq(verb, "start") || streq(verb, "pause") || streq(verb, "resume") ||
                  streq(verb, "abort")) &&
                 n == 3)
                r = rollout_verb(o, verb, a[2]);
        else
                r = usage("unknown command or wrong number of arguments");
        curl_global_cleanup();
        return r;
}
