/*
 * Benchmark: orbit-controller under a simulated fleet, on loopback, in one run.
 *
 * It makes a PKI in-process with libcrypto (a server CA and the server's certificate, a
 * node CA and one ECDSA P-256 key and client certificate per simulated node, CN = the
 * node id, as the controller demands), a command signer (signature_keygen), starts a real
 * `orbit-controller serve` on 127.0.0.1 in a temporary data directory, and drives it over
 * HTTPS with mutual TLS, each node from its own loopback address (127.1.x.y), so the
 * controller's per-address limit sees a fleet, not one client. The load loop's client is
 * its own (--client lean, the default: epoll and OpenSSL, a third to a half of libcurl's
 * CPU a sync in a closed loop, on cores the stations it measures share) or libcurl multi
 * (--client curl); the wire phase and the operator's calls use libcurl:
 *
 *  wire        bytes per sync, with no news (no records, no commands) and with one
 *              health.report record as agent/health-monitor.c makes it: HTTP request and
 *              answer (headers and body, from libcurl's debug callback) and the TCP
 *              payload, i.e. every TLS byte, from TCP_INFO on the client's socket; on a
 *              kept-alive connection, and on a new connection per sync (the handshake with
 *              both certificates, the request, close_notify);
 *  keepalive   throughput and latency: NODES nodes sync SYNCS times each, CONCURRENCY at a
 *              time, a node's syncs back to back on one connection;
 *  reconnect   the same with a new TLS connection for every sync, round after round over
 *              the fleet: what a fleet polling every 60 s costs (the controller closes
 *              connections idle for 30 s);
 * each sync (by default) carrying one new health.report, every answer checked (200 and
 * the record acked), then the node and record counts checked through the operator API
 * and the database size taken after a clean stop. A fresh data directory per phase.
 *
 * The load generator (one thread) shares the machine with the controller (its server
 * threads: one a CPU by default, --controller-threads N for each instance); the
 * controller's own CPU time per sync is printed, which does not depend on the generator.
 * Figures, not a test: the goal is reported PASS/MISS and the exit status is 0 whatever
 * it says (nonzero only when the benchmark itself could not run).
 *
 * With --rollouts R, each load phase first registers every node (one untimed sync each),
 * puts node i in group g(i mod R) and starts one rollout per group (a bundle made with
 * the build's orbit-bundle, stages 1,10,50,100, success after 3 passes) through the
 * operator API, as bench/rollout-drive does in the store; then the timed syncs are
 * --rollout-syncs syncs of nodes spread over the fleet (S syncs per node on a kept-alive
 * connection, or one per connection), a node told to install reporting update.committed
 * in its next sync: what driving rollouts adds to a sync, measured over HTTPS.
 *
 * With --database postgresql://..., the controllers keep their store in PostgreSQL (issue
 * #22 item 5): each phase gets a fresh database of its own on that server (CREATE DATABASE
 * through psql, dropped at the end), and --instances K starts K controllers on it (one per
 * ground station), the syncs of a node going to them in turn: a keep-alive job's connection
 * to instance (job mod K), a new connection's sync to (job + round) mod K. The database
 * server's CPU time (the postmaster and its backends, found through its data_directory) is
 * printed per sync beside the controllers', and its size after the run. bench/
 * controller-sync-pg.sh runs SQLite, PostgreSQL with one and with two instances in one go.
 *
 * --rate R offers the measured phase's syncs at R per second (open loop, at most C in
 * flight), each latency counted from when its sync was due: the p99 a fleet sees at that
 * load, where the closed loop (the default) measures the most the stations take, with
 * every slot queueing (its mean latency is C over the rate, by Little's law).
 *
 * --latency-log FILE writes a line per measured sync: when it ended (seconds from the phase's
 * start), its latency in ms and its index on its connection (0: the one that made it, TLS
 * handshake included), to see whether a p99 is a queue, a stall or the new connections.
 *
 * usage: controller-sync [--nodes N] [--syncs S] [--concurrency C] [--rate R] [--records 0|1]
 *                        [--mode both|keepalive|reconnect] [--rollouts R]
 *                        [--rollout-syncs T] [--controller PATH]
 *                        [--database postgresql://...] [--instances K] [--controller-threads N]
 *                        [--latency-log FILE] [--client lean|curl] [DIR]
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <arpa/inet.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "lib/log.h"
#include "lib/macro.h"
#include "update/signature.h"
#include "bench/bench-util.h"

#define POLL_SEC 60 /* the agent's default poll: the goal is N / 60 syncs/s */
#define WIRE_SYNCS 10
#define BOOT_ID "0123456789abcdef0123456789abcdef"

extern char **environ;

#define MAX_INSTANCES 8

static char tmpdir[PATH_MAX];
static const char *controller_bin;
/* the ones running: stopped on die() and signals */
static volatile pid_t controller_pids[MAX_INSTANCES];
static const char *database;   /* --database: a PostgreSQL server's address; NULL: SQLite */
static unsigned n_instances = 1;
static bool lean_client = true;    /* --client lean (the default) or curl: the load loop's HTTPS client */
static unsigned controller_threads; /* --controller-threads: each controller's --threads (0: its default) */
static char databases[16][64]; /* the databases made on it, dropped at exit */
static unsigned n_databases;

static void stop_controller(void) {
        for (unsigned k = 0; k < MAX_INSTANCES; k++)
                if (controller_pids[k] > 0)
                        kill(controller_pids[k], SIGTERM);
}

static void *xmalloc(size_t n) {
        void *p = malloc(n ? n : 1);
        if (!p)
                die("out of memory");
        return p;
}

/* A binary of this build: beside the bench's own, in the build tree (bench/..). */
static void build_binary_path(char path[static PATH_MAX], const char *name) {
        ssize_t len = readlink("/proc/self/exe", path, PATH_MAX - 32);
        if (len <= 0)
                die("readlink /proc/self/exe: %m");
        path[len] = '\0';
        char *slash = strrchr(path, '/');
        if (!slash)
                die("odd path %s", path);
        snprintf(slash, PATH_MAX - (size_t) (slash - path), "/../%s", name);
}

static void path_in(char *buf, const char *name) {
        int n = snprintf(buf, PATH_MAX, "%s/%s", tmpdir, name);
        if (n < 0 || n >= PATH_MAX)
                die("path too long: %s/%s", tmpdir, name);
}

static void write_text(const char *path, const char *text) {
        FILE *f = fopen(path, "we");
        if (!f || fputs(text, f) < 0 || fclose(f) != 0)
                die("write %s: %m", path);
}

static void cleanup_tmpdir(void) {
        if (!tmpdir[0] || getenv("BENCH_KEEP"))
                return;
        run((char *const[]){"rm", "-rf", "--one-file-system", tmpdir, NULL});
        tmpdir[0] = '\0';
}

/* ---- the PKI, in-process (libcrypto) ----------------------------------------------------- */

enum cert_kind { CERT_CA, CERT_SERVER, CERT_CLIENT };

static EVP_PKEY *ec_key(void) {
        EVP_PKEY *k = NULL;
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL);
        if (!c || EVP_PKEY_keygen_init(c) <= 0 ||
            EVP_PKEY_CTX_set_ec_paramgen_curve_nid(c, NID_X9_62_prime256v1) <= 0 ||
            EVP_PKEY_keygen(c, &k) <= 0)
                die("EC P-256 key generation failed");
        EVP_PKEY_CTX_free(c);
        return k;
}

static void add_ext(X509 *x, X509 *issuer, int nid, const char *value) {
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
        X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
        if (!e || !X509_add_ext(x, e, -1))
                die("certificate extension %d=%s", nid, value);
        X509_EXTENSION_free(e);
}

/* A certificate for key, CN = cn, signed by issuer (self-signed when NULL). */
static X509 *make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key,
                       enum cert_kind kind, long serial) {
        X509 *x = X509_new();
        X509_NAME *name = X509_NAME_new();
        if (!x || !name || !X509_set_version(x, 2) ||
            !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
            !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1,
                                        -1, 0) ||
            !X509_set_subject_name(x, name) ||
            !X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name) ||
            !X509_gmtime_adj(X509_getm_notBefore(x), -3600) ||
            !X509_gmtime_adj(X509_getm_notAfter(x), 2 * 86400) || !X509_set_pubkey(x, key))
                die("certificate %s", cn);
        X509_NAME_free(name);
        switch (kind) {
        case CERT_CA:
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE");
                add_ext(x, issuer, NID_key_usage, "critical,keyCertSign");
                break;
        case CERT_SERVER:
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
                add_ext(x, issuer, NID_ext_key_usage, "serverAuth");
                add_ext(x, issuer, NID_subject_alt_name, "IP:127.0.0.1");
                break;
        case CERT_CLIENT:
                add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE");
                add_ext(x, issuer, NID_key_usage, "critical,digitalSignature");
                add_ext(x, issuer, NID_ext_key_usage, "clientAuth");
                break;
        }
        if (!X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()))
                die("signing the certificate %s failed", cn);
        return x;
}

static char *bio_text(BIO *b) {
        char *data;
        long n = BIO_get_mem_data(b, &data);
        char *s = xmalloc((size_t) n + 1);
        memcpy(s, data, (size_t) n);
        s[n] = '\0';
        BIO_free(b);
        return s;
}

static char *cert_pem(X509 *x) {
        BIO *b = BIO_new(BIO_s_mem());
        if (!b || !PEM_write_bio_X509(b, x))
                die("PEM_write_bio_X509");
        return bio_text(b);
}

static char *key_pem(EVP_PKEY *k) {
        BIO *b = BIO_new(BIO_s_mem());
        if (!b || !PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL))
                die("PEM_write_bio_PrivateKey");
        return bio_text(b);
}

struct node {
        char id[24];
        char src[40];  /* CURLOPT_INTERFACE: "host!127.1.x.y" */
        X509 *cert;    /* made once: see on_ssl_ctx */
        EVP_PKEY *key;
        uint64_t seq;  /* the last record seq sent */
        bool told;        /* got an update.install */
        bool commit_next; /* told to install: its next sync reports update.committed */
};

static struct node *nodes;
static unsigned n_nodes;
static char server_ca[PATH_MAX], token_path[PATH_MAX], release_token_path[PATH_MAX];
#define OPERATOR_TOKEN "bench-operator-token-0123456789abcdef"
#define RELEASE_TOKEN "bench-release-token-0123456789abcdef"  /* uploads the rollouts' bundle */
static X509 *server_ca_cert; /* server_ca's, for on_ssl_ctx */
static size_t node_cert_der_size;

static void make_pki(unsigned n) {
        char p[PATH_MAX];
        EVP_PKEY *sca_key = ec_key(), *srv_key = ec_key(), *nca_key = ec_key();
        X509 *sca = make_cert("bench ground TLS CA", sca_key, NULL, NULL, CERT_CA, 1);
        X509 *srv = make_cert("127.0.0.1", srv_key, sca, sca_key, CERT_SERVER, 2);
        X509 *nca = make_cert("bench fleet node CA", nca_key, NULL, NULL, CERT_CA, 3);
        char *s;
        path_in(server_ca, "server-ca.pem");
        write_text(server_ca, s = cert_pem(sca));
        free(s);
        path_in(p, "server.pem");
        write_text(p, s = cert_pem(srv));
        free(s);
        path_in(p, "server.key");
        write_text(p, s = key_pem(srv_key));
        free(s);
        path_in(p, "node-ca.pem");
        write_text(p, s = cert_pem(nca));
        free(s);

        nodes = calloc(n, sizeof(*nodes));
        if (!nodes)
                die("out of memory");
        for (unsigned i = 0; i < n; i++) {
                struct node *nd = &nodes[i];
                snprintf(nd->id, sizeof(nd->id), "node-%05u", i);
                /* 127.1.0.1 up: 62,500 addresses per second octet */
                snprintf(nd->src, sizeof(nd->src), "host!127.%u.%u.%u", 1 + i / 62500, i % 62500 / 250,
                         i % 250 + 1);
                EVP_PKEY *k = ec_key();
                X509 *x = make_cert(nd->id, k, nca, nca_key, CERT_CLIENT, 1000 + (long) i);
                nd->cert = x;
                nd->key = k;
                if (i == 0)
                        node_cert_der_size = (size_t) i2d_X509(x, NULL);
        }
        n_nodes = n;
        server_ca_cert = sca;
        X509_free(srv);
        X509_free(nca);
        EVP_PKEY_free(sca_key);
        EVP_PKEY_free(srv_key);
        EVP_PKEY_free(nca_key);

        /* The command signer, as orbit-bundle keygen makes it. */
        char ca_key[PATH_MAX], ca_cert[PATH_MAX], key[PATH_MAX], cert[PATH_MAX];
        path_in(ca_key, "cmd-ca.key");
        path_in(ca_cert, "cmd-ca.pem");
        path_in(key, "cmd.key");
        path_in(cert, "cmd.pem");
        const struct signature_keygen_options ca = {.subject = "CN=bench command CA", .ca = true, .days = 2};
        const struct signature_keygen_options signer = {
                .subject = "CN=bench command signer", .role = SIGNATURE_ROLE_COMMAND,
                .issuer_key_path = ca_key,
                .issuer_cert_path = ca_cert, .days = 2};
        char *reason = NULL;
        if (signature_keygen(&ca, ca_key, ca_cert, &reason) < 0 ||
            signature_keygen(&signer, key, cert, &reason) < 0)
                die("command signer: %s", reason ? reason : "?");
        /* The release signer of the rollouts' bundle (--rollouts): a command signer may not
         * sign a bundle's manifest. */
        path_in(key, "release.key");
        path_in(cert, "release.pem");
        const struct signature_keygen_options release = {
                .subject = "CN=bench release signer", .role = SIGNATURE_ROLE_RELEASE,
                .issuer_key_path = ca_key, .issuer_cert_path = ca_cert, .days = 2};
        if (signature_keygen(&release, key, cert, &reason) < 0)
                die("release signer: %s", reason ? reason : "?");

        path_in(token_path, "token");
        write_text(token_path, OPERATOR_TOKEN "\n");
        path_in(release_token_path, "release-token");
        write_text(release_token_path, RELEASE_TOKEN "\n");
}

/* /proc/PID/stat of pid (a number, as text): its parent, its user + system CPU seconds and
 * those of its children that ended and were waited for. false: gone or unreadable. */
static bool proc_stat(const char *pid, int *ret_ppid, double *ret_cpu_s, double *ret_children_s) {
        char p[64], buf[1024];
        snprintf(p, sizeof(p), "/proc/%.20s/stat", pid);
        FILE *f = fopen(p, "re");
        if (!f)
                return false;
        size_t n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *s = strrchr(buf, ')');
        int ppid = 0;
        unsigned long ut = 0, st = 0;
        long cut = 0, cst = 0;
        if (!s || sscanf(s + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %ld %ld", &ppid, &ut, &st,
                         &cut, &cst) != 5)
                return false;
        double tck = (double) sysconf(_SC_CLK_TCK);
        *ret_ppid = ppid;
        *ret_cpu_s = (double) (ut + st) / tck;
        *ret_children_s = (double) (cut + cst) / tck;
        return true;
}

/* user + system CPU seconds of a process. */
static double proc_cpu_s(pid_t pid) {
        char who[24];
        int ppid;
        double cpu = 0, children;
        snprintf(who, sizeof(who), "%d", (int) pid);
        return proc_stat(who, &ppid, &cpu, &children) ? cpu : 0;
}

/* ---- PostgreSQL (--database) -------------------------------------------------------------- */

/* The address with its database name replaced by name:
 * postgresql://user@host:port/DB?params -> postgresql://user@host:port/NAME?params. */
static void database_address(const char *name, char *buf, size_t size) {
        const char *auth = strstr(database, "://");
        if (!auth)
                die("--database %s: not a postgresql://... address", database);
        auth += 3;
        size_t auth_len = strcspn(auth, "/?");
        const char *rest = auth + auth_len;
        if (*rest == '/')
                rest += strcspn(rest, "?");
        int n = snprintf(buf, size, "%.*s/%s%s", (int) (auth + auth_len - database), database, name, rest);
        if (n < 0 || (size_t) n >= size)
                die("--database: address too long");
}

/* psql's output (tuples only, unaligned) of one statement on database name. */
static char *psql(const char *name, const char *sql) {
        char addr[1024], out[PATH_MAX];
        database_address(name, addr, sizeof(addr));
        path_in(out, "psql.out");
        pid_t pid;
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char *argv[] = {"psql", "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", addr, "-c", (char *) sql, NULL};
        int r = posix_spawnp(&pid, "psql", &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                die("cannot run psql (Debian: postgresql-client): %s", strerror(r));
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %m");
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("psql on %s failed: %s", name, sql);
        FILE *f = fopen(out, "re");
        char *text = xmalloc(4096);
        size_t n = f ? fread(text, 1, 4095, f) : 0;
        if (f)
                fclose(f);
        text[n] = '\0';
        text[strcspn(text, "\n")] = '\0';
        return text;
}

/* The name of the server's maintenance database the address names ("postgres" if none). */
static void base_database(char *buf, size_t size) {
        const char *auth = strstr(database, "://");
        const char *slash = auth ? strchr(auth + 3, '/') : NULL;
        const char *q = auth ? strchr(auth + 3, '?') : NULL;
        if (!slash || (q && slash > q) || slash[1] == '?' || !slash[1])
                snprintf(buf, size, "postgres");
        else
                snprintf(buf, size, "%.*s", (int) strcspn(slash + 1, "?"), slash + 1);
}

/* A fresh database for one phase; its address in buf. */
static void database_make(const char *phase, char *buf, size_t size) {
        if (n_databases >= ELEMENTSOF(databases))
                die("too many phases");
        char base[64], sql[160];
        base_database(base, sizeof(base));
        snprintf(databases[n_databases], sizeof(databases[0]), "orbit_bench_%d_%s", (int) getpid(), phase);
        for (char *c = databases[n_databases]; *c; c++)
                if (*c == '-')
                        *c = '_';
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", databases[n_databases]);
        free(psql(base, sql));
        database_address(databases[n_databases], buf, size);
        n_databases++;
}

static void databases_drop(void) {
        char base[64], sql[160];
        if (!database || getenv("BENCH_KEEP"))
                return;
        base_database(base, sizeof(base));
        for (unsigned i = 0; i < n_databases; i++) {
                snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", databases[i]);
                free(psql(base, sql));
        }
        n_databases = 0;
}

static uint64_t database_bytes(const char *name) {
        char *t = psql(name, "SELECT pg_database_size(current_database())");
        uint64_t v = strtoull(t, NULL, 10);
        free(t);
        return v;
}

/* The server's postmaster, from postmaster.pid in its data directory (0: not readable
 * here, e.g. another machine: no database CPU then). */
static pid_t postmaster_pid(void) {
        char base[64];
        base_database(base, sizeof(base));
        char *dir = psql(base, "SHOW data_directory");
        char p[PATH_MAX];
        snprintf(p, sizeof(p), "%s/postmaster.pid", dir);
        free(dir);
        FILE *f = fopen(p, "re");
        int pid = 0;
        if (f) {
                if (fscanf(f, "%d", &pid) != 1)
                        pid = 0;
                fclose(f);
        }
        return (pid_t) pid;
}

/* CPU seconds of the postmaster, its children that ended (cutime, cstime) and those alive. */
static double database_cpu_s(pid_t pm) {
        char who[24];
        int ppid;
        double cpu, children;
        snprintf(who, sizeof(who), "%d", (int) pm);
        if (pm <= 0 || !proc_stat(who, &ppid, &cpu, &children))
                return 0;
        double total = cpu + children;
        DIR *d = opendir("/proc");
        struct dirent *de;
        while (d && (de = readdir(d)))
                if (de->d_name[0] >= '1' && de->d_name[0] <= '9' && proc_stat(de->d_name, &ppid, &cpu, &children) &&
                    ppid == (int) pm)
                        total += cpu;
        if (d)
                closedir(d);
        return total;
}

/* ---- the controller ------------------------------------------------------------------- */

static void on_signal(int sig) {
        /* Interrupted: stop the controller, wait for it, clean up (a bench, not a daemon). */
        for (unsigned k = 0; k < MAX_INSTANCES; k++)
                if (controller_pids[k] > 0) {
                        kill(controller_pids[k], SIGTERM);
                        while (waitpid(controller_pids[k], NULL, 0) < 0 && errno == EINTR)
                                ;
                }
        exit(128 + sig);
}

struct controller {
        pid_t pid;
        unsigned index; /* in controller_pids */
        char data[PATH_MAX];
        char url[64];
        char database[1024]; /* --database: this phase's; "" for SQLite */
};

/* Instance index of a phase: data dir name, on the database db ("": SQLite in the dir). */
static void controller_start(struct controller *c, const char *name, unsigned index, const char *db,
                             unsigned max_connections) {
        char port_file[PATH_MAX], log_file[PATH_MAX], cert[PATH_MAX], key[PATH_MAX],
                nca[PATH_MAX], ckey[PATH_MAX], ccert[PATH_MAX], maxc[16], pf_name[64], lf_name[64], thr[16];
        snprintf(pf_name, sizeof(pf_name), "%s.port", name);
        snprintf(lf_name, sizeof(lf_name), "%s.log", name);
        path_in(c->data, name);
        path_in(port_file, pf_name);
        path_in(log_file, lf_name);
        path_in(cert, "server.pem");
        path_in(key, "server.key");
        path_in(nca, "node-ca.pem");
        path_in(ckey, "cmd.key");
        path_in(ccert, "cmd.pem");
        snprintf(maxc, sizeof(maxc), "%u", max_connections);
        snprintf(thr, sizeof(thr), "%u", controller_threads);
        c->index = index;
        snprintf(c->database, sizeof(c->database), "%s", db ? db : "");
        if (mkdir(c->data, 0700) < 0 && errno != EEXIST)
                die("mkdir %s: %m", c->data);
        char *argv[32] = {(char *) controller_bin, "serve", "--listen", "127.0.0.1:0", "--port-file",
                          port_file, "--data-dir", c->data, "--cert", cert, "--key", key,
                          "--node-ca", nca, "--command-key", ckey, "--command-cert", ccert,
                          "--operator-token-file", token_path, "--release-token-file", release_token_path,
                          "--max-connections", maxc, "--log-level", "warning"};
        size_t n = 26;
        if (c->database[0]) {
                argv[n++] = "--database";
                argv[n++] = c->database;
        }
        if (controller_threads) {
                argv[n++] = "--threads";
                argv[n++] = thr;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_file, O_WRONLY | O_CREAT | O_APPEND, 0600);
        posix_spawn_file_actions_adddup2(&fa, STDOUT_FILENO, STDERR_FILENO);
        int r = posix_spawn(&c->pid, controller_bin, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0)
                die("cannot run %s: %s", controller_bin, strerror(r));
        controller_pids[index] = c->pid;
        for (int i = 0; i < 1000; i++) {
                FILE *f = fopen(port_file, "re");
                unsigned port = 0;
                if (f) {
                        int ok = fscanf(f, "%u", &port);
                        fclose(f);
                        if (ok == 1 && port > 0) {
                                snprintf(c->url, sizeof(c->url), "https://127.0.0.1:%u", port);
                                return;
                        }
                }
                int status;
                if (waitpid(c->pid, &status, WNOHANG) == c->pid)
                        die("the controller exited at start (see %s)", log_file);
                usleep(10000);
        }
        die("the controller did not start in 10 s (see %s)", log_file);
}

static void controller_stop(struct controller *c) {
        kill(c->pid, SIGTERM);
        int status;
        while (waitpid(c->pid, &status, 0) < 0)
                if (errno != EINTR)
                        die("waitpid: %m");
        controller_pids[c->index] = 0;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("the controller did not stop cleanly (status 0x%x)", (unsigned) status);
}

static double self_cpu_s(void) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6 +
               (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static uint64_t file_size(const char *path) {
        struct stat st;
        return stat(path, &st) == 0 ? (uint64_t) st.st_size : 0;
}

/* ---- sync bodies --------------------------------------------------------------------- */

static unsigned long n_rollouts, rollout_syncs = 3000; /* --rollouts, --rollout-syncs */
static unsigned long installs_seen, commits_sent;

static char *report_body; /* the health.report body, JSON text */
static size_t report_body_plain, report_body_p12;

/* A health.report body as agent/health-monitor.c makes it (summary_to_json): a board with
 * two thermal zones, a disk, two workloads, 60 polls in a 60 s report interval. */
static void make_report_body(void) {
        static const struct {
                const char *name;
                double min, max, mean, last;
        } m[] = {
                {"zone.thermal_zone0.temp_c", 41.25, 47.5, 43.817, 44.125},
                {"zone.thermal_zone1.temp_c", 38.0, 41.75, 39.942, 40.5},
                {"hwmon.coretemp.Package id 0.temp_c", 43.0, 52.0, 46.883, 45.0},
                {"cpu.busy_percent", 3.125, 61.738, 17.402, 12.5},
                {"mem.available_mib", 612.367, 640.121, 628.904, 631.055},
                {"load1", 0.31, 1.42, 0.776, 0.69},
                {"psi.cpu.some_avg10", 0.0, 2.87, 0.414, 0.12},
                {"psi.memory.some_avg10", 0.0, 0.0, 0.0, 0.0},
                {"psi.io.some_avg10", 0.0, 1.05, 0.093, 0.0},
                {"disk./var/lib/orbit-agent.avail_mib", 1821.328, 1822.004, 1821.672, 1821.328},
                {"agent.rss_kib", 4976.0, 5012.0, 4991.2, 5004.0},
                {"agent.open_fds", 21.0, 23.0, 21.4, 21.0},
                {"agent.loop_lag_ms", 0.041, 0.912, 0.107, 0.062},
                {"workload.camera.cpu_percent", 11.2, 38.917, 24.551, 22.08},
                {"workload.camera.memory_mib", 88.133, 91.02, 89.71, 90.004},
                {"workload.camera.pids", 6.0, 6.0, 6.0, 6.0},
                {"workload.telemetry.cpu_percent", 0.4, 2.113, 0.951, 0.78},
                {"workload.telemetry.memory_mib", 12.504, 12.891, 12.66, 12.77},
                {"workload.telemetry.pids", 2.0, 2.0, 2.0, 2.0},
                {"level", 0.0, 0.0, 0.0, 0.0},
        };
        json_t *metrics = json_object();
        for (size_t i = 0; i < ELEMENTSOF(m); i++)
                json_object_set_new(metrics, m[i].name,
                                    json_pack("{s:f,s:f,s:f,s:f,s:i}", "min", m[i].min, "max",
                                              m[i].max, "mean", m[i].mean, "last", m[i].last, "n", 60));
        json_t *body = json_pack("{s:f,s:s,s:i,s:o}", "interval_sec", 60.004, "level", "nominal",
                                 "problems", 0, "metrics", metrics);
        if (!body)
                die("json_pack");
        char *p12 = json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12));
        report_body = json_dumps(body, JSON_COMPACT);
        if (!p12 || !report_body)
                die("json_dumps");
        report_body_plain = strlen(report_body);
        report_body_p12 = strlen(p12);
        free(p12);
        json_decref(body);
}

/* The sync request of node nd: no records, or one new health.report. */
static size_t sync_body(struct node *nd, bool record, char *buf, size_t size) {
        int n;
        if (nd->commit_next) { /* the one record: the install of the bench bundle committed */
                nd->commit_next = false;
                nd->seq++;
                commits_sent++;
                n = snprintf(buf, size,
                             "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_ID
                             "\",\"last_command_seq\":0,\"records\":[{\"format\":1,\"key\":{\"node\":"
                             "\"%s\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_ID "\",\"seq\":%" PRIu64
                             "},\"priority\":\"critical\",\"kind\":\"update.committed\",\"time_usec\":%"
                             PRIu64 ",\"monotonic_usec\":%" PRIu64 ",\"body\":{\"bundle_id\":\"bench\"}}]}",
                             nd->id, nd->id, nd->seq, (uint64_t) time(NULL) * UINT64_C(1000000) + nd->seq,
                             nd->seq * UINT64_C(60000000));
        } else if (record) {
                nd->seq++;
                n = snprintf(buf, size,
                             "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_ID
                             "\",\"last_command_seq\":0,\"records\":[{\"format\":1,\"key\":{\"node\":"
                             "\"%s\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_ID "\",\"seq\":%" PRIu64
                             "},\"priority\":\"low\",\"kind\":\"health.report\",\"time_usec\":%" PRIu64
                             ",\"monotonic_usec\":%" PRIu64 ",\"body\":%s}]}",
                             nd->id, nd->id, nd->seq, (uint64_t) time(NULL) * UINT64_C(1000000) + nd->seq,
                             nd->seq * UINT64_C(60000000), report_body);
        } else
                n = snprintf(buf, size,
                             "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":1,\"boot_id\":\"" BOOT_ID
                             "\",\"last_command_seq\":0,\"records\":[]}",
                             nd->id);
        if (n < 0 || (size_t) n >= size)
                die("sync body too long");
        return (size_t) n;
}

/* ---- one HTTPS client per slot ---------------------------------------------------------- */

struct counts {
        uint64_t req_hdr, req_body, resp_hdr, resp_body; /* HTTP, from the debug callback */
        uint64_t tcp_out, tcp_in;                        /* TCP payload: TLS records */
};

struct slot {
        CURL *easy;
        struct curl_slist *headers;
        char url[160];
        char *body;
        size_t body_size;
        char *resp;
        size_t resp_len, resp_size;
        long node;       /* -1: idle */
        unsigned round;  /* reconnect: which pass over the fleet; keepalive: syncs done */
        bool record;
        double t0;
        struct counts c;       /* wire phase */
        struct counts closed;  /* TCP counts of connections closed (closesocket callback) */
        char tls[96];
        unsigned index;        /* in the load loop's slots */
        const char *base;      /* the station's URL */
        size_t body_len;       /* of the request in body */
        bool close_after;      /* the connection's last request */
        bool lean_ok;          /* --client lean: the request just done was answered and acked */
        double lean_end;       /* when it ended */
};

static size_t on_write(char *data, size_t size, size_t nmemb, void *userdata) {
        struct slot *s = userdata;
        size_t n = size * nmemb;
        if (s->resp_len + n + 1 > s->resp_size) {
                size_t want = (s->resp_len + n + 1) * 2;
                char *p = realloc(s->resp, want);
                if (!p)
                        return 0;
                s->resp = p;
                s->resp_size = want;
        }
        memcpy(s->resp + s->resp_len, data, n);
        s->resp_len += n;
        s->resp[s->resp_len] = '\0';
        return n;
}

static int on_debug(CURL *h, curl_infotype type, char *data, size_t size, void *userdata) {
        struct slot *s = userdata;
        (void) h;
        static const char tls_text[] = "SSL connection using ";
        switch (type) {
        case CURLINFO_TEXT: /* "SSL connection using TLSv1.3 / TLS_AES_256_GCM_SHA384" */
                if (!s->tls[0] && size > sizeof(tls_text) &&
                    memcmp(data, tls_text, sizeof(tls_text) - 1) == 0) {
                        size_t len = size - (sizeof(tls_text) - 1);
                        while (len > 0 && (data[sizeof(tls_text) - 1 + len - 1] == '\n'))
                                len--;
                        snprintf(s->tls, sizeof(s->tls), "%.*s", (int) len, data + sizeof(tls_text) - 1);
                }
                break;
        case CURLINFO_HEADER_OUT: s->c.req_hdr += size; break;
        case CURLINFO_DATA_OUT: s->c.req_body += size; break;
        case CURLINFO_HEADER_IN: s->c.resp_hdr += size; break;
        case CURLINFO_DATA_IN: s->c.resp_body += size; break;
        default: break;
        }
        return 0;
}

/* TCP payload bytes so far on a socket: everything TLS sent and received. */
static bool tcp_bytes(int fd, uint64_t *out, uint64_t *in) {
        struct tcp_info ti;
        socklen_t len = sizeof(ti);
        memset(&ti, 0, sizeof(ti));
        if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0 ||
            len < offsetof(struct tcp_info, tcpi_bytes_received) + sizeof(ti.tcpi_bytes_received))
                return false;
        *out = len >= offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof(ti.tcpi_bytes_sent)
                       ? ti.tcpi_bytes_sent : ti.tcpi_bytes_acked;
        *in = ti.tcpi_bytes_received;
        return true;
}

/* Before closing a connection (after the client's close_notify): its lifetime's bytes. */
static int on_close_socket(void *userdata, curl_socket_t fd) {
        struct slot *s = userdata;
        uint64_t out, in;
        if (tcp_bytes(fd, &out, &in)) {
                s->closed.tcp_out += out;
                s->closed.tcp_in += in;
        }
        return close(fd);
}

/*
 * The TLS context curl makes for each new connection: the node's certificate and key and
 * the server CA, as the objects make_pki made. Given as PEM (CURLOPT_SSLCERT_BLOB and the
 * CA file), curl parsed all three again at every connection: OpenSSL 3's decoders were a
 * third of this generator's CPU (perf), a cost a node pays once when its agent starts,
 * not once a pass for each of 10,000 nodes, and one that took the cores from the
 * stations it measures. The handshake itself (key exchange, the node's signature, the
 * check of the server's chain) is still made for every connection.
 */
static CURLcode on_ssl_ctx(CURL *easy, void *ssl_ctx, void *userdata) {
        (void) easy;
        const struct slot *s = userdata;
        SSL_CTX *ctx = ssl_ctx;
        if (X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), server_ca_cert) != 1)
                return CURLE_SSL_CACERT_BADFILE;
        if (s->node < 0) /* an operator's request: the bearer token, no certificate */
                return CURLE_OK;
        const struct node *nd = &nodes[s->node];
        if (SSL_CTX_use_certificate(ctx, nd->cert) != 1 || SSL_CTX_use_PrivateKey(ctx, nd->key) != 1)
                return CURLE_SSL_CERTPROBLEM;
        return CURLE_OK;
}

static void slot_init(struct slot *s, bool debug) {
        memset(s, 0, sizeof(*s));
        s->node = -1;
        s->body_size = 16384;
        s->body = xmalloc(s->body_size);
        s->easy = curl_easy_init();
        /* What an agent would send: JSON, and no "Expect: 100-continue" (curl adds it to
         * bodies over 1 KiB: a round trip more per sync on a long link). */
        s->headers = curl_slist_append(NULL, "Content-Type: application/json");
        s->headers = curl_slist_append(s->headers, "Expect:");
        if (!s->easy || !s->headers)
                die("curl_easy_init");
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
        /* the server CA, the node's certificate and key: set by on_ssl_ctx, none loaded by curl */
        curl_easy_setopt(s->easy, CURLOPT_CAINFO, NULL);
        curl_easy_setopt(s->easy, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(s->easy, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
        curl_easy_setopt(s->easy, CURLOPT_SSL_CTX_DATA, s);
        curl_easy_setopt(s->easy, CURLOPT_SSL_SESSIONID_CACHE, 0L); /* a real node has one connection at a time */
        /* No DNS cache: libcurl resolves each node's source address (CURLOPT_INTERFACE) into
         * it, and walks all of it to prune at every connection; with a cache of the last
         * minute's nodes (60 s by default: thousands) that walk was 15% of the
         * generator's samples (perf). The addresses are numeric: nothing is looked up. */
        curl_easy_setopt(s->easy, CURLOPT_DNS_CACHE_TIMEOUT, 0L);
        curl_easy_setopt(s->easy, CURLOPT_WRITEFUNCTION, on_write);
        curl_easy_setopt(s->easy, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_PRIVATE, s);
        curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
        curl_easy_setopt(s->easy, CURLOPT_CLOSESOCKETDATA, s);
        curl_easy_setopt(s->easy, CURLOPT_TIMEOUT, 60L);
        curl_easy_setopt(s->easy, CURLOPT_NOSIGNAL, 1L);
        if (debug) {
                curl_easy_setopt(s->easy, CURLOPT_DEBUGFUNCTION, on_debug);
                curl_easy_setopt(s->easy, CURLOPT_DEBUGDATA, s);
                curl_easy_setopt(s->easy, CURLOPT_VERBOSE, 1L);
        }
}

static void slot_done(struct slot *s) {
        curl_easy_cleanup(s->easy);
        curl_slist_free_all(s->headers);
        free(s->body);
        free(s->resp);
}

/* Point the slot at node i (its address and URL; its certificate and key: on_ssl_ctx). */
static void slot_node(struct slot *s, const char *base_url, long i) {
        struct node *nd = &nodes[i];
        s->node = i;
        s->base = base_url;
        snprintf(s->url, sizeof(s->url), "%s/v1/nodes/%s/sync", base_url, nd->id);
        curl_easy_setopt(s->easy, CURLOPT_URL, s->url);
        curl_easy_setopt(s->easy, CURLOPT_INTERFACE, nd->src);
}

static void slot_request(struct slot *s, bool record, bool close_after) {
        bool commit = nodes[s->node].commit_next;
        size_t n = sync_body(&nodes[s->node], record, s->body, s->body_size);
        s->record = record || commit;
        s->body_len = n;
        s->close_after = close_after;
        s->resp_len = 0;
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, s->body);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE, (long) n);
        curl_easy_setopt(s->easy, CURLOPT_FORBID_REUSE, close_after ? 1L : 0L);
        s->t0 = now_s();
}

static unsigned errors_printed;

/* Is the answer a 200 with the record acked? why: the transport's failure, NULL if none. */
static bool answer_check(struct slot *s, const char *why, long code) {
        bool ok = !why && code == 200 && s->resp_len > 0 && strstr(s->resp, "\"next_sync_sec\"");
        if (ok && s->record) {
                char want[64];
                snprintf(want, sizeof(want), "\"seq\":[%" PRIu64 "]", nodes[s->node].seq);
                ok = strstr(s->resp, want) != NULL;
        }
        if (ok && n_rollouts > 0 && !nodes[s->node].told && strstr(s->resp, "update.install")) {
                nodes[s->node].told = nodes[s->node].commit_next = true;
                installs_seen++;
        }
        if (!ok && errors_printed++ < 5)
                fprintf(stderr, "controller-sync: %s: %s, HTTP %ld: %.200s\n", nodes[s->node].id,
                        why ? why : "answered", code, s->resp ? s->resp : "");
        return ok;
}

static bool slot_check(struct slot *s, CURLcode cc) {
        long code = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
        return answer_check(s, cc == CURLE_OK ? NULL : curl_easy_strerror(cc), code);
}

/* ---- wire: bytes per sync -------------------------------------------------------------- */

struct wire_result {
        struct counts per_sync;
        char tls[96];
};

static void wire_case(const char *url, long node, bool record, bool reconnect,
                      struct wire_result *res) {
        struct slot s;
        slot_init(&s, true);
        slot_node(&s, url, node);
        uint64_t out0 = 0, in0 = 0;
        if (!reconnect) { /* the handshake first, not counted */
                slot_request(&s, record, false);
                CURLcode cc = curl_easy_perform(s.easy);
                if (!slot_check(&s, cc))
                        die("wire: the first sync failed");
                curl_socket_t fd;
                if (curl_easy_getinfo(s.easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
                    !tcp_bytes(fd, &out0, &in0))
                        die("wire: no TCP_INFO on the connection");
                memset(&s.c, 0, sizeof(s.c));
        }
        for (int k = 0; k < WIRE_SYNCS; k++) {
                slot_request(&s, record, reconnect);
                CURLcode cc = curl_easy_perform(s.easy);
                if (!slot_check(&s, cc))
                        die("wire: a sync failed");
        }
        if (!reconnect) {
                curl_socket_t fd;
                uint64_t out1, in1;
                if (curl_easy_getinfo(s.easy, CURLINFO_ACTIVESOCKET, &fd) != CURLE_OK ||
                    !tcp_bytes(fd, &out1, &in1))
                        die("wire: no TCP_INFO on the connection");
                s.c.tcp_out = out1 - out0;
                s.c.tcp_in = in1 - in0;
        } else {
                s.c.tcp_out = s.closed.tcp_out;
                s.c.tcp_in = s.closed.tcp_in;
        }
        res->per_sync = (struct counts){
                .req_hdr = s.c.req_hdr / WIRE_SYNCS, .req_body = s.c.req_body / WIRE_SYNCS,
                .resp_hdr = s.c.resp_hdr / WIRE_SYNCS, .resp_body = s.c.resp_body / WIRE_SYNCS,
                .tcp_out = s.c.tcp_out / WIRE_SYNCS, .tcp_in = s.c.tcp_in / WIRE_SYNCS,
        };
        snprintf(res->tls, sizeof(res->tls), "%s", s.tls);
        slot_done(&s);
}

/* ---- throughput ------------------------------------------------------------------------ */

enum mode { MODE_KEEPALIVE, MODE_RECONNECT };

struct load_result {
        unsigned long syncs, errors;
        double wall_s, server_cpu_s, client_cpu_s, db_cpu_s; /* db: --database's server */
        double p50_ms, p90_ms, p99_ms, max_ms;
        uint64_t db_bytes;
        long nodes_seen, records_seen, records_want;
        unsigned long installs, commits; /* --rollouts: installs told, commits reported */
        double setup_s;                  /* --rollouts: registering, groups, rollouts */
};

/* The operator's view after the run: how many nodes and records the controller holds. */
static void count_nodes(const char *url, long *ret_nodes, long *ret_records) {
        struct slot s;
        slot_init(&s, false);
        char u[128];
        snprintf(u, sizeof(u), "%s/v1/nodes", url);
        struct curl_slist *h = curl_slist_append(NULL, "Authorization: Bearer " OPERATOR_TOKEN);
        curl_easy_setopt(s.easy, CURLOPT_URL, u);
        curl_easy_setopt(s.easy, CURLOPT_HTTPHEADER, h);
        CURLcode cc = curl_easy_perform(s.easy);
        long code = 0;
        curl_easy_getinfo(s.easy, CURLINFO_RESPONSE_CODE, &code);
        json_error_t e;
        json_t *j = cc == CURLE_OK && code == 200 ? json_loads(s.resp, 0, &e) : NULL;
        json_t *list = json_object_get(j, "nodes");
        if (!json_is_array(list))
                die("GET /v1/nodes: %s, HTTP %ld", curl_easy_strerror(cc), code);
        long records = 0;
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
                records += (long) json_integer_value(json_object_get(v, "records"));
        *ret_nodes = (long) json_array_size(list);
        *ret_records = records;
        json_decref(j);
        curl_slist_free_all(h);
        slot_done(&s);
}

/* Node of job k: in order, or spread over the fleet (a stride prime to the fleet size). */
static long job_node(unsigned long k, bool spread) {
        if (!spread)
                return (long) (k % n_nodes);
        unsigned long stride = 7919;
        while (n_nodes % stride == 0)
                stride += 2;
        return (long) ((k * stride) % n_nodes);
}

/* The station job k talks to: in turn per job, and for a new connection per sync also per
 * round over the fleet, so that a node's passes land on each station in turn. */
static const char *job_url(const struct controller *ctls, unsigned n_ctls, unsigned long k) {
        return ctls[(k + k / n_nodes) % n_ctls].url;
}

/*
 * Open loop (--rate R): request i is due at R per second from the start; a slot free before
 * then waits for it, first come first served. Its latency counts from when the request was
 * due, not from when a slot was free to send it (the stations' p99 at a given load, without
 * coordinated omission). 0: closed loop, each slot sends again at once.
 */
static double offered_rate, bench_rate; /* the measured phase's, and --rate's */
static FILE *latency_log;                /* --latency-log: each measured sync, when it ended and took */
static double latency_log_t0;

struct due_queue {
        struct slot **v;
        unsigned head, n, size; /* a ring of slots ready to send */
        double start;
        unsigned long issued;
};

/* One load loop: the slots, the jobs they run, the open loop's queue, and the transport. */
struct loop {
        const struct controller *ctls;
        unsigned n_ctls;
        enum mode mode;
        unsigned per_job;
        bool record, spread;
        unsigned long jobs, next_job, total, ok, errors;
        double *lat;
        struct due_queue q;
        void (*start)(struct loop *l, struct slot *s); /* send the slot's request */
        CURLM *multi;                                   /* --client curl */
        int ep;                                         /* --client lean: epoll */
        struct lean *lean;                              /* one per slot */
        struct slot **done;                             /* lean: finished, not yet counted */
        unsigned n_done;
};

static void launch(struct loop *l, struct slot *s) {
        if (offered_rate <= 0) {
                l->start(l, s);
                return;
        }
        struct due_queue *q = &l->q;
        q->v[(q->head + q->n++) % q->size] = s;
}

/* Send what is due; the milliseconds until the next is due (100 at most). */
static long release_due(struct loop *l) {
        struct due_queue *q = &l->q;
        if (offered_rate <= 0)
                return 100;
        double now = now_s();
        while (q->n > 0) {
                double due = q->start + (double) q->issued / offered_rate;
                if (due > now)
                        return (long) ((due - now) * 1000) + 1 < 100 ? (long) ((due - now) * 1000) + 1 : 100;
                struct slot *s = q->v[q->head];
                q->head = (q->head + 1) % q->size;
                q->n--;
                q->issued++;
                s->t0 = due;
                l->start(l, s);
        }
        return 100;
}

/* A sync done at end, ok (answered and acked: answer_check) or not: counted, and the slot's
 * next request sent. */
static void slot_finished(struct loop *l, struct slot *s, bool ok, double end) {
        double t = end - s->t0;
        if (ok) {
                if (l->lat)
                        l->lat[l->ok] = t;
                if (l->lat && latency_log)
                        fprintf(latency_log, "%.4f %.2f %u\n", end - latency_log_t0, 1000 * t, s->round);
                l->ok++;
        } else
                l->errors++;
        s->round++;
        if (s->round < l->per_job) {
                slot_request(s, l->record, s->round + 1 == l->per_job);
                launch(l, s);
        } else if (l->next_job < l->jobs) {
                slot_node(s, job_url(l->ctls, l->n_ctls, l->next_job), job_node(l->next_job, l->spread));
                l->next_job++;
                s->round = 0;
                slot_request(s, l->record, l->mode == MODE_RECONNECT || l->per_job == 1);
                launch(l, s);
        }
}

/* ---- --client curl: libcurl multi ------------------------------------------------------- */

static void curl_start(struct loop *l, struct slot *s) {
        curl_multi_add_handle(l->multi, s->easy);
}

static void curl_run(struct loop *l) {
        int running = 0;
        while (l->ok + l->errors < l->total) {
                long wait_ms = release_due(l);
                CURLMcode mc = curl_multi_perform(l->multi, &running);
                if (mc != CURLM_OK)
                        die("curl_multi_perform: %s", curl_multi_strerror(mc));
                CURLMsg *msg;
                int left;
                bool any = false;
                while ((msg = curl_multi_info_read(l->multi, &left))) {
                        if (msg->msg != CURLMSG_DONE)
                                continue;
                        any = true;
                        struct slot *s;
                        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
                        bool ok = slot_check(s, msg->data.result);
                        curl_multi_remove_handle(l->multi, s->easy);
                        slot_finished(l, s, ok, now_s());
                }
                if (!any && l->ok + l->errors < l->total) {
                        mc = curl_multi_poll(l->multi, NULL, 0, (int) wait_ms, NULL);
                        if (mc != CURLM_OK)
                                die("curl_multi_poll: %s", curl_multi_strerror(mc));
                }
        }
}

/* ---- --client lean: epoll and OpenSSL, no libcurl -------------------------------------
 *
 * The same requests on the same TLS (1.3, the node's certificate and key, the server's
 * chain and address checked against the server CA, no session resumed), without libcurl:
 * one SSL_CTX for the run where libcurl makes one per connection (with OpenSSL 3, its
 * providers' lookups and locks), and one epoll loop where libcurl polls every socket at
 * every turn. The generator shares the two cores with the stations it measures: what it
 * spends, they do not get (docs/storage.md, "Session 27"). A node's agent pays none of
 * this per sync: its context is made once.
 */

enum lean_state { LEAN_IDLE, LEAN_CONNECTING, LEAN_HANDSHAKE, LEAN_SENDING, LEAN_RECEIVING };

struct lean {
        struct slot *slot;
        int fd; /* -1: no connection */
        SSL *ssl;
        enum lean_state state;
        uint32_t events; /* what epoll watches for */
        bool reused;     /* the request went on a kept connection: once more on a new one if it was closed */
        char *out;       /* the request: its head, then its body */
        size_t out_size, out_len, out_off;
        char *in;
        size_t in_size, in_len, head_len; /* head_len: 0 until the head is whole */
        long code, content_length;
        bool server_closes;
        char host[32]; /* the station's address, checked in its certificate */
        double started; /* for the 60 s limit libcurl had */
};

static SSL_CTX *lean_ctx;

static void lean_ctx_make(void) {
        if (lean_ctx)
                return;
        lean_ctx = SSL_CTX_new(TLS_client_method());
        if (!lean_ctx || SSL_CTX_set_min_proto_version(lean_ctx, TLS1_2_VERSION) != 1 ||
            X509_STORE_add_cert(SSL_CTX_get_cert_store(lean_ctx), server_ca_cert) != 1)
                die("SSL_CTX_new");
        SSL_CTX_set_verify(lean_ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(lean_ctx, SSL_SESS_CACHE_OFF); /* a new handshake per connection */
        static const unsigned char alpn[] = "\x08http/1.1";
        if (SSL_CTX_set_alpn_protos(lean_ctx, alpn, sizeof(alpn) - 1) != 0)
                die("SSL_CTX_set_alpn_protos");
}

static void lean_watch(struct loop *l, struct lean *c, uint32_t events) {
        if (c->events == events)
                return;
        struct epoll_event ev = {.events = events, .data.ptr = c};
        if (epoll_ctl(l->ep, EPOLL_CTL_MOD, c->fd, &ev) < 0)
                die("epoll_ctl: %s", strerror(errno));
        c->events = events;
}

static void lean_close(struct loop *l, struct lean *c, bool notify) {
        if (c->fd < 0)
                return;
        if (c->ssl) {
                if (notify) {
                        ERR_clear_error();
                        (void) SSL_shutdown(c->ssl); /* close_notify, as libcurl sends: not waited for */
                }
                SSL_free(c->ssl);
                c->ssl = NULL;
        }
        (void) epoll_ctl(l->ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        c->state = LEAN_IDLE;
}

static void lean_done(struct loop *l, struct lean *c, const char *why) {
        struct slot *s = c->slot;
        if (why)
                lean_close(l, c, false);
        else if (s->close_after || c->server_closes)
                lean_close(l, c, true);
        else {
                /* kept: a FIN from the station (its idle timeout) closes it here, as libcurl
                 * checks a connection before it reuses one; not EPOLLIN: a late session
                 * ticket is no reason to close */
                c->state = LEAN_IDLE;
                lean_watch(l, c, EPOLLRDHUP);
        }
        s->lean_end = now_s();
        s->lean_ok = answer_check(s, why, why ? 0 : c->code);
        l->done[l->n_done++] = s;
}

/* TLS said to wait (true) or failed (false). */
static bool lean_wait(struct loop *l, struct lean *c, int r) {
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ: lean_watch(l, c, EPOLLIN); return true;
        case SSL_ERROR_WANT_WRITE: lean_watch(l, c, EPOLLOUT); return true;
        default: return false;
        }
}

static void lean_connect(struct loop *l, struct lean *c) {
        struct slot *s = c->slot;
        const struct node *nd = &nodes[s->node];
        struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
        const char *bang = strchr(nd->src, '!');
        unsigned port = 0;
        char host[32];
        if (!bang || inet_pton(AF_INET, bang + 1, &src.sin_addr) != 1 ||
            sscanf(s->base, "https://%31[^:]:%u", host, &port) != 2 || inet_pton(AF_INET, host, &dst.sin_addr) != 1)
                die("lean client: cannot read %s or %s", nd->src, s->base);
        dst.sin_port = htons((uint16_t) port);
        snprintf(c->host, sizeof(c->host), "%s", host);
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                die("socket: %s", strerror(errno));
        int one = 1;
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)); /* as libcurl sets */
        if (bind(c->fd, (struct sockaddr *) &src, sizeof(src)) < 0)
                die("bind %s: %s", bang + 1, strerror(errno));
        c->events = EPOLLOUT;
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = c};
        if (epoll_ctl(l->ep, EPOLL_CTL_ADD, c->fd, &ev) < 0)
                die("epoll_ctl: %s", strerror(errno));
        c->state = LEAN_CONNECTING;
        if (connect(c->fd, (struct sockaddr *) &dst, sizeof(dst)) < 0 && errno != EINPROGRESS)
                return lean_done(l, c, "connect failed");
}

/* The kept connection the request went on was closed before an answer: once more on a new
 * one, as libcurl does. */
static void lean_retry(struct loop *l, struct lean *c) {
        lean_close(l, c, false);
        c->reused = false;
        c->out_off = 0;
        lean_connect(l, c);
}

/* Head, body and their lengths: the request of the slot, as libcurl sent it. */
static void lean_request(struct lean *c) {
        struct slot *s = c->slot;
        const char *path = strstr(s->url, "/v1/");
        size_t need = s->body_len + 512;
        if (need > c->out_size) {
                free(c->out);
                c->out = xmalloc(need);
                c->out_size = need;
        }
        /* libcurl's head, byte for byte: a connection's last request says nothing of it
         * (CURLOPT_FORBID_REUSE closes after the answer, the client first) */
        int n = snprintf(c->out, c->out_size,
                         "POST %s HTTP/1.1\r\nHost: %s\r\nAccept: */*\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\n\r\n",
                         path, s->base + strlen("https://"), s->body_len);
        if (n < 0 || (size_t) n + s->body_len > c->out_size)
                die("lean client: request too long");
        memcpy(c->out + n, s->body, s->body_len);
        c->out_len = (size_t) n + s->body_len;
        c->out_off = 0;
        c->in_len = c->head_len = 0;
        c->code = c->content_length = -1;
        c->server_closes = false;
}

/* The head of the answer, when whole: its status, Content-Length and Connection. */
static bool lean_head(struct lean *c) {
        char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
        if (!end)
                return true; /* not yet */
        *end = '\0';
        c->head_len = (size_t) (end - c->in) + 4;
        if (sscanf(c->in, "HTTP/1.%*1d %ld", &c->code) != 1)
                return false;
        for (char *line = strstr(c->in, "\r\n"); line; line = strstr(line + 2, "\r\n")) {
                const char *h = line + 2;
                if (strncasecmp(h, "content-length:", 15) == 0)
                        c->content_length = strtol(h + 15, NULL, 10);
                else if (strncasecmp(h, "connection:", 11) == 0)
                        c->server_closes = strncasecmp(h + 11 + strspn(h + 11, " "), "close", 5) == 0;
                else if (strncasecmp(h, "transfer-encoding:", 18) == 0)
                        return false; /* the controller answers from a buffer: a length, never chunks */
        }
        if (c->content_length < 0 && c->code != 204)
                return false; /* a body to the close: never from the controller, which knows its length */
        if (c->content_length < 0)
                c->content_length = 0;
        return true;
}

/* As far as the connection goes without waiting. */
static void lean_drive(struct loop *l, struct lean *c) {
        struct slot *s = c->slot;
        int r;
        switch (c->state) {
        case LEAN_IDLE: /* a kept connection the station closed or broke: the next request
                         * makes a new one */
                lean_close(l, c, false);
                return;
        case LEAN_CONNECTING: {
                int err = 0;
                socklen_t len = sizeof(err);
                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
                        return lean_done(l, c, "connect failed");
                c->ssl = SSL_new(lean_ctx);
                if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_use_certificate(c->ssl, nodes[s->node].cert) != 1 ||
                    SSL_use_PrivateKey(c->ssl, nodes[s->node].key) != 1 ||
                    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), c->host) != 1)
                        die("SSL_new");
                SSL_set_connect_state(c->ssl);
                c->state = LEAN_HANDSHAKE;
        }
                /* fall through */
        case LEAN_HANDSHAKE:
                ERR_clear_error(); /* SSL_get_error reads the queue: only this call's errors in it */
                r = SSL_connect(c->ssl);
                if (r != 1)
                        return lean_wait(l, c, r) ? (void) 0 : lean_done(l, c, "TLS handshake failed");
                c->state = LEAN_SENDING;
                /* fall through */
        case LEAN_SENDING:
                while (c->out_off < c->out_len) {
                        ERR_clear_error();
                        r = SSL_write(c->ssl, c->out + c->out_off, (int) (c->out_len - c->out_off));
                        if (r <= 0) {
                                if (lean_wait(l, c, r))
                                        return;
                                return c->reused ? lean_retry(l, c) : lean_done(l, c, "send failed");
                        }
                        c->out_off += (size_t) r;
                }
                c->state = LEAN_RECEIVING;
                /* fall through */
        case LEAN_RECEIVING:
                for (;;) {
                        if (c->in_size - c->in_len < 4096) {
                                c->in_size = c->in_size ? c->in_size * 2 : 16384;
                                char *p = realloc(c->in, c->in_size);
                                if (!p)
                                        die("out of memory");
                                c->in = p;
                        }
                        ERR_clear_error();
                        r = SSL_read(c->ssl, c->in + c->in_len, (int) (c->in_size - c->in_len - 1));
                        if (r <= 0) {
                                if (lean_wait(l, c, r))
                                        return;
                                if (c->reused && c->in_len == 0)
                                        return lean_retry(l, c);
                                return lean_done(l, c, "connection closed before the answer");
                        }
                        c->in_len += (size_t) r;
                        if (!c->head_len && !lean_head(c))
                                return lean_done(l, c, "malformed HTTP answer");
                        if (c->head_len && c->in_len >= c->head_len + (size_t) c->content_length) {
                                size_t n = (size_t) c->content_length;
                                if (s->resp_size < n + 1) {
                                        free(s->resp);
                                        s->resp = xmalloc(n + 1);
                                        s->resp_size = n + 1;
                                }
                                memcpy(s->resp, c->in + c->head_len, n);
                                s->resp[n] = '\0';
                                s->resp_len = n;
                                return lean_done(l, c, NULL);
                        }
                }
        }
}

static void lean_start(struct loop *l, struct slot *s) {
        struct lean *c = &l->lean[s->index];
        lean_request(c);
        c->started = now_s();
        if (c->fd >= 0) {
                c->reused = true;
                c->state = LEAN_SENDING;
                lean_drive(l, c);
        } else {
                c->reused = false;
                lean_connect(l, c);
        }
}

static void lean_run(struct loop *l, unsigned concurrency) {
        struct epoll_event ev[64];
        double checked = now_s();
        while (l->ok + l->errors < l->total) {
                long wait_ms = release_due(l);
                int n = epoll_wait(l->ep, ev, ELEMENTSOF(ev), l->n_done > 0 ? 0 : (int) wait_ms);
                if (n < 0 && errno != EINTR)
                        die("epoll_wait: %s", strerror(errno));
                for (int i = 0; i < n; i++)
                        lean_drive(l, ev[i].data.ptr);
                if (now_s() - checked > 1) { /* libcurl's CURLOPT_TIMEOUT: 60 s a request */
                        checked = now_s();
                        for (unsigned k = 0; k < concurrency; k++)
                                if (l->lean[k].state != LEAN_IDLE && checked - l->lean[k].started > 60)
                                        lean_done(l, &l->lean[k], "no answer in 60 s");
                }
                unsigned n_done = l->n_done;
                l->n_done = 0;
                for (unsigned i = 0; i < n_done; i++) {
                        struct slot *s = l->done[i];
                        slot_finished(l, s, s->lean_ok, s->lean_end);
                }
        }
}

/*
 * jobs jobs, CONCURRENCY at a time: keepalive, a job is a node's syncs back to back on one
 * connection; reconnect, one sync on a new connection. Latencies into lat (may be NULL).
 */
static void sync_loop(const struct controller *ctls, unsigned n_ctls, enum mode mode, unsigned long jobs,
                      unsigned syncs, unsigned concurrency, bool record, bool spread, double *lat,
                      unsigned long *ret_ok, unsigned long *ret_errors) {
        struct loop l = {.ctls = ctls, .n_ctls = n_ctls, .mode = mode, .record = record, .spread = spread,
                         .jobs = jobs, .lat = lat, .ep = -1};
        l.per_job = mode == MODE_KEEPALIVE ? syncs : 1;
        l.total = jobs * l.per_job;
        struct slot *slots = calloc(concurrency, sizeof(*slots));
        l.q = (struct due_queue){.v = calloc(concurrency, sizeof(struct slot *)), .size = concurrency};
        if (!slots || !l.q.v)
                die("out of memory");
        for (unsigned k = 0; k < concurrency; k++) {
                slot_init(&slots[k], false);
                slots[k].index = k;
        }
        if (lean_client) {
                lean_ctx_make();
                l.start = lean_start;
                l.ep = epoll_create1(EPOLL_CLOEXEC);
                l.lean = calloc(concurrency, sizeof(*l.lean));
                l.done = calloc(concurrency, sizeof(*l.done));
                if (l.ep < 0 || !l.lean || !l.done)
                        die("epoll_create1: %s", strerror(errno));
                for (unsigned k = 0; k < concurrency; k++)
                        l.lean[k] = (struct lean){.slot = &slots[k], .fd = -1};
        } else {
                l.start = curl_start;
                if (!(l.multi = curl_multi_init()))
                        die("curl_multi_init");
                curl_multi_setopt(l.multi, CURLMOPT_MAXCONNECTS, (long) concurrency * 2);
        }
        l.q.start = now_s();
        for (unsigned k = 0; k < concurrency && l.next_job < jobs; k++, l.next_job++) {
                struct slot *s = &slots[k];
                slot_node(s, job_url(ctls, n_ctls, l.next_job), job_node(l.next_job, spread));
                s->round = 0;
                slot_request(s, record, mode == MODE_RECONNECT || l.per_job == 1);
                launch(&l, s);
        }
        if (lean_client) {
                lean_run(&l, concurrency);
                for (unsigned k = 0; k < concurrency; k++) {
                        lean_close(&l, &l.lean[k], true);
                        free(l.lean[k].out);
                        free(l.lean[k].in);
                }
                close(l.ep);
                free(l.lean);
                free(l.done);
        } else {
                curl_run(&l);
                curl_multi_cleanup(l.multi);
        }
        for (unsigned k = 0; k < concurrency; k++)
                slot_done(&slots[k]);
        free(l.q.v);
        free(slots);
        *ret_ok = l.ok;
        *ret_errors = l.errors;
}

/* One operator request with the bench's token; dies unless the answer is 2xx. */
static void operator_call(struct slot *s, const char *url, const char *path, const char *body,
                          size_t len, const char *content_type) {
        char u[512], ct[96];
        snprintf(u, sizeof(u), "%s%s", url, path);
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        /* bundles and rollouts are the release manager's (docs/security.md), the rest the operator's */
        bool release = strncmp(path, "/v1/bundles", 11) == 0 || strncmp(path, "/v1/rollouts", 12) == 0;
        struct curl_slist *h = curl_slist_append(NULL, release ? "Authorization: Bearer " RELEASE_TOKEN
                                                               : "Authorization: Bearer " OPERATOR_TOKEN);
        h = curl_slist_append(h, ct);
        h = curl_slist_append(h, "Expect:");
        s->resp_len = 0;
        curl_easy_setopt(s->easy, CURLOPT_URL, u);
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(s->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) len);
        CURLcode cc = curl_easy_perform(s->easy);
        long code = 0;
        curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_setopt(s->easy, CURLOPT_HTTPHEADER, s->headers);
        curl_slist_free_all(h);
        if (cc != CURLE_OK || code < 200 || code > 299)
                die("POST %s: %s, HTTP %ld: %.300s", path, curl_easy_strerror(cc), code,
                    s->resp ? s->resp : "");
}

/* The bench bundle (bundle_id "bench"), made once with the build's orbit-bundle. */
static char bundle_path[PATH_MAX];

static void make_bundle(void) {
        if (bundle_path[0])
                return;
        char img[PATH_MAX], tmpl[PATH_MAX], key[PATH_MAX], cert[PATH_MAX], tool[PATH_MAX];
        path_in(img, "bench.img");
        path_in(tmpl, "bench-manifest.json");
        path_in(key, "release.key");
        path_in(cert, "release.pem");
        path_in(bundle_path, "bench.obundle");
        char *zeros = calloc(1, 65536);
        if (!zeros)
                die("out of memory");
        FILE *f = fopen(img, "we");
        if (!f || fwrite(zeros, 1, 65536, f) != 65536 || fclose(f) != 0)
                die("write %s: %m", img);
        free(zeros);
        write_text(tmpl, "{\"bundle_id\": \"bench\", \"version\": \"9.0.0\", \"security_version\": 1, "
                         "\"compatible\": [\"bench-board\"]}\n");
        build_binary_path(tool, "orbit-bundle");
        char image_arg[PATH_MAX + 16];
        snprintf(image_arg, sizeof(image_arg), "rootfs=%s", img);
        run((char *const[]){tool, "create", "--manifest-template", tmpl, "--image", image_arg,
                            "--key", key, "--cert", cert, "-o", bundle_path, NULL});
}

/* Groups g0..g(R-1) over the fleet, the bench bundle, and one started rollout per group. */
static void rollouts_setup(const char *url) {
        struct slot s;
        slot_init(&s, false);
        char path[256], body[512];
        for (unsigned i = 0; i < n_nodes; i++) {
                snprintf(path, sizeof(path), "/v1/nodes/%s/groups", nodes[i].id);
                int n = snprintf(body, sizeof(body), "{\"group\":\"g%lu\"}", i % n_rollouts);
                operator_call(&s, url, path, body, (size_t) n, "application/json");
        }
        make_bundle();
        FILE *f = fopen(bundle_path, "re");
        if (!f)
                die("open %s: %m", bundle_path);
        fseek(f, 0, SEEK_END);
        long size = ftell(f);
        rewind(f);
        char *data = xmalloc((size_t) size);
        if (fread(data, 1, (size_t) size, f) != (size_t) size)
                die("read %s: %m", bundle_path);
        fclose(f);
        operator_call(&s, url, "/v1/bundles", data, (size_t) size, "application/octet-stream");
        free(data);
        for (unsigned long k = 0; k < n_rollouts; k++) {
                int n = snprintf(body, sizeof(body),
                                 "{\"id\":\"r%lu\",\"bundle_id\":\"bench\",\"target\":\"g%lu\","
                                 "\"stages\":\"1,10,50,100\",\"success_after\":\"3\"}",
                                 k, k);
                operator_call(&s, url, "/v1/rollouts", body, (size_t) n, "application/json");
                snprintf(path, sizeof(path), "/v1/rollouts/r%lu/start", k);
                operator_call(&s, url, path, "", 0, "application/json");
        }
        slot_done(&s);
}

static void load_run(enum mode mode, unsigned syncs, unsigned concurrency, bool record,
                     struct load_result *res) {
        memset(res, 0, sizeof(*res));
        for (unsigned i = 0; i < n_nodes; i++)
                nodes[i].seq = 0, nodes[i].told = nodes[i].commit_next = false;
        const char *phase = mode == MODE_KEEPALIVE ? "keepalive" : "reconnect";
        char db[1024] = "", name[64];
        if (database)
                database_make(phase, db, sizeof(db));
        struct controller ctls[MAX_INSTANCES];
        for (unsigned k = 0; k < n_instances; k++) {
                snprintf(name, sizeof(name), "data-%s-%u", phase, k);
                controller_start(&ctls[k], name, k, db, concurrency * 2 > 64 ? concurrency * 2 : 64);
        }
        unsigned long jobs = mode == MODE_KEEPALIVE ? n_nodes : (unsigned long) n_nodes * syncs;
        if (n_rollouts > 0) {
                /* every node known (one untimed sync each), then the rollouts started */
                unsigned long ok = 0, errors = 0;
                double r0 = now_s();
                sync_loop(ctls, n_instances, MODE_KEEPALIVE, n_nodes, 1, concurrency, false, false, NULL,
                          &ok, &errors);
                if (errors)
                        die("%lu syncs failed while registering the fleet", errors);
                rollouts_setup(ctls[0].url);
                res->setup_s = now_s() - r0;
                jobs = mode == MODE_KEEPALIVE ? (rollout_syncs + syncs - 1) / syncs : rollout_syncs;
                installs_seen = commits_sent = 0;
        }
        unsigned long total = mode == MODE_KEEPALIVE ? jobs * syncs : jobs;
        double *lat = calloc(total + 1, sizeof(double));
        if (!lat)
                die("out of memory");
        pid_t pm = database ? postmaster_pid() : 0;
        double cpu0 = 0, db0 = database_cpu_s(pm), self0 = self_cpu_s(), t0 = now_s();
        for (unsigned k = 0; k < n_instances; k++)
                cpu0 += proc_cpu_s(ctls[k].pid);
        offered_rate = bench_rate; /* the measured phase only: the fleet's registration runs free */
        latency_log_t0 = t0;
        sync_loop(ctls, n_instances, mode, jobs, syncs, concurrency, record, n_rollouts > 0, lat,
                  &res->syncs, &res->errors);
        offered_rate = 0;
        res->wall_s = now_s() - t0;
        for (unsigned k = 0; k < n_instances; k++)
                res->server_cpu_s += proc_cpu_s(ctls[k].pid);
        res->server_cpu_s -= cpu0;
        res->db_cpu_s = database_cpu_s(pm) - db0;
        res->client_cpu_s = self_cpu_s() - self0;
        res->installs = installs_seen;
        res->commits = commits_sent;
        /* a commit report rides instead of the health.report, or alone */
        res->records_want = record ? (long) total : (long) commits_sent;

        qsort(lat, res->syncs, sizeof(double), cmp_double);
        if (res->syncs > 0) {
                res->p50_ms = 1000 * lat[(res->syncs - 1) * 50 / 100];
                res->p90_ms = 1000 * lat[(res->syncs - 1) * 90 / 100];
                res->p99_ms = 1000 * lat[(res->syncs - 1) * 99 / 100];
                res->max_ms = 1000 * lat[res->syncs - 1];
        }
        free(lat);
        /* asked of the last station: with several, it sees what the others stored */
        count_nodes(ctls[n_instances - 1].url, &res->nodes_seen, &res->records_seen);
        for (unsigned k = 0; k < n_instances; k++)
                controller_stop(&ctls[k]);
        if (database) {
                res->db_bytes = database_bytes(databases[n_databases - 1]);
                return;
        }
        char p[PATH_MAX + 32];
        snprintf(p, sizeof(p), "%s/controller.db", ctls[0].data);
        res->db_bytes = file_size(p);
        snprintf(p, sizeof(p), "%s/controller.db-wal", ctls[0].data);
        res->db_bytes += file_size(p);
}

/* ---- output ----------------------------------------------------------------------------- */

static void wire_row(const char *what, const struct wire_result *w) {
        const struct counts *c = &w->per_sync;
        printf("  %-34s %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %6" PRIu64 " %7" PRIu64 " | %6" PRIu64
               " %6" PRIu64 " %7" PRIu64 "\n",
               what, c->req_hdr, c->req_body, c->resp_hdr, c->resp_body,
               c->req_hdr + c->req_body + c->resp_hdr + c->resp_body, c->tcp_out, c->tcp_in,
               c->tcp_out + c->tcp_in);
}

static void load_row(const char *what, const struct load_result *r, bool record) {
        double per = (double) (r->syncs + r->errors);
        printf("  %-10s %8.0f %8.2f %8.2f %8.2f %8.1f %6lu %8.3f %8.3f %8.3f  %.1f MiB",
               what, (double) r->syncs / r->wall_s, r->p50_ms, r->p90_ms, r->p99_ms, r->max_ms,
               r->errors, 1000 * r->server_cpu_s / per, 1000 * r->db_cpu_s / per,
               1000 * r->client_cpu_s / per, (double) r->db_bytes / (1024.0 * 1024.0));
        if (record && r->records_seen > 0)
                printf(" (%.0f B/record)", (double) r->db_bytes / (double) r->records_seen);
        printf("\n");
}

/* One line per phase for scripts (bench/controller-sync-pg.sh). */
static void result_line(const char *what, const struct load_result *r) {
        double per = (double) (r->syncs + r->errors);
        printf("RESULT store=%s instances=%u mode=%s nodes=%u rate=%.0f syncs=%lu errors=%lu syncs_per_s=%.1f "
               "p50_ms=%.2f p99_ms=%.2f ctl_ms=%.3f db_ms=%.3f gen_ms=%.3f db_bytes=%" PRIu64 " records=%ld "
               "records_want=%ld nodes_seen=%ld\n",
               database ? "postgresql" : "sqlite", n_instances, what, n_nodes, bench_rate, r->syncs, r->errors,
               (double) r->syncs / r->wall_s, r->p50_ms, r->p99_ms, 1000 * r->server_cpu_s / per,
               1000 * r->db_cpu_s / per, 1000 * r->client_cpu_s / per, r->db_bytes, r->records_seen,
               r->records_want, r->nodes_seen);
}

static void usage(void) {
        fprintf(stderr, "usage: controller-sync [--nodes N] [--syncs S] [--concurrency C] [--rate R] "
                        "[--records 0|1] [--mode both|keepalive|reconnect] [--rollouts R] "
                        "[--rollout-syncs T] [--controller PATH] [--database postgresql://...] "
                        "[--instances K (with --database)] [--controller-threads N] [--latency-log FILE] "
                        "[--client lean|curl] [DIR]\n");
        exit(2);
}

int main(int argc, char *argv[]) {
        bench_name = "controller-sync";
        bench_on_die = stop_controller;
        unsigned long n = 1000, syncs = 20, concurrency = 64;
        bool record = true, do_keep = true, do_reconnect = true;
        const char *base = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--nodes") == 0 && i + 1 < argc)
                        n = strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--syncs") == 0 && i + 1 < argc)
                        syncs = strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
                        concurrency = strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--latency-log") == 0 && i + 1 < argc) {
                        if (!(latency_log = fopen(argv[++i], "w")))
                                die("%s: %s", argv[i], strerror(errno));
                } else if (strcmp(argv[i], "--rate") == 0 && i + 1 < argc)
                        bench_rate = strtod(argv[++i], NULL);
                else if (strcmp(argv[i], "--records") == 0 && i + 1 < argc)
                        record = strcmp(argv[++i], "0") != 0;
                else if (strcmp(argv[i], "--rollouts") == 0 && i + 1 < argc)
                        n_rollouts = strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--rollout-syncs") == 0 && i + 1 < argc)
                        rollout_syncs = strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--controller") == 0 && i + 1 < argc)
                        controller_bin = argv[++i];
                else if (strcmp(argv[i], "--database") == 0 && i + 1 < argc)
                        database = argv[++i];
                else if (strcmp(argv[i], "--client") == 0 && i + 1 < argc) {
                        const char *c = argv[++i];
                        if (strcmp(c, "lean") != 0 && strcmp(c, "curl") != 0)
                                usage();
                        lean_client = strcmp(c, "lean") == 0;
                } else if (strcmp(argv[i], "--controller-threads") == 0 && i + 1 < argc)
                        controller_threads = (unsigned) strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--instances") == 0 && i + 1 < argc)
                        n_instances = (unsigned) strtoul(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--mode") == 0 && i + 1 < argc) {
                        const char *m = argv[++i];
                        do_keep = strcmp(m, "both") == 0 || strcmp(m, "keepalive") == 0;
                        do_reconnect = strcmp(m, "both") == 0 || strcmp(m, "reconnect") == 0;
                        if (!do_keep && !do_reconnect)
                                usage();
                } else if (argv[i][0] == '-' || base)
                        usage();
                else
                        base = argv[i];
        }
        if (n < 2 || n > 250000 || syncs < 1 || syncs > 100000 || concurrency < 1 ||
            concurrency > 1024 || bench_rate < 0 || n_rollouts > 1000 || (n_rollouts > 0 && n_rollouts > n) ||
            rollout_syncs < 1 || n_instances < 1 || n_instances > MAX_INSTANCES ||
            (n_instances > 1 && !database) || (database && strncmp(database, "postgresql://", 13) != 0))
                usage();
        if (!base)
                base = getenv("TMPDIR");
        if (!base || !*base)
                base = "/tmp";
        static char self_dir[PATH_MAX];
        if (!controller_bin) { /* beside the build tree's bench/ */
                build_binary_path(self_dir, "orbit-controller");
                controller_bin = self_dir;
        }
        if (access(controller_bin, X_OK) < 0)
                die("%s: %m (build it, or pass --controller)", controller_bin);
        log_setup("bench", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        signal(SIGPIPE, SIG_IGN);
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                (void) setrlimit(RLIMIT_NOFILE, &rl);
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
                die("curl_global_init");

        snprintf(tmpdir, sizeof(tmpdir), "%s/orbit-bench-controller-XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
                tmpdir[0] = '\0';
                die("mkdtemp in %s: %m", base);
        }
        atexit(cleanup_tmpdir);
        atexit(databases_drop); /* first: psql writes in the tmpdir */

        double t0 = now_s();
        make_pki((unsigned) n);
        double pki_s = now_s() - t0;
        make_report_body();

        printf("controller sync benchmark: %lu nodes, %s, in %s\n", n, controller_bin, tmpdir);
        printf("store: %s; %u controller instance%s%s\n", database ? "PostgreSQL (a fresh database per phase)" : "SQLite",
               n_instances, n_instances == 1 ? "" : "s", n_instances > 1 ? ", a node's syncs going to each in turn" : "");
        printf("PKI (libcrypto, in-process): %lu node keys and client certificates (ECDSA P-256, "
               "CN = node id, %zu bytes DER each), server and CAs: %.2f s\n",
               n, node_cert_der_size, pki_s);
        printf("health.report body: %zu bytes as JSON_COMPACT (jansson's 17 significant digits); "
               "%zu with JSON_REAL_PRECISION(12)\n\n",
               report_body_plain, report_body_p12);

        /* a. Bytes on the wire. */
        struct controller ctl;
        char wire_db[1024] = "";
        if (database)
                database_make("wire", wire_db, sizeof(wire_db));
        controller_start(&ctl, "data-wire", 0, wire_db, 64);
        struct wire_result w[4];
        wire_case(ctl.url, 0, false, false, &w[0]);
        wire_case(ctl.url, 1, true, false, &w[1]);
        wire_case(ctl.url, 2, false, true, &w[2]);
        wire_case(ctl.url, 3, true, true, &w[3]);
        controller_stop(&ctl);
        printf("bytes per sync (mean of %d; HTTP/1.1 from libcurl's debug callback; TCP payload = "
               "every TLS byte, TCP_INFO on the client socket)\n", WIRE_SYNCS);
        printf("TLS: %s; client certificate chain: the leaf only; no session resumption\n", w[0].tls);
        printf("  %-34s %6s %6s %6s %6s %7s | %6s %6s %7s\n", "", "reqhdr", "reqbdy", "rsphdr",
               "rspbdy", "HTTP", "TLSout", "TLSin", "TLS");
        wire_row("no news, kept-alive connection", &w[0]);
        wire_row("health.report, kept-alive", &w[1]);
        wire_row("no news, new connection", &w[2]);
        wire_row("health.report, new connection", &w[3]);
        printf("\n");

        /* b. Throughput and latency. */
        struct load_result keep = {}, rec = {};
        char threads[48] = "server threads: one a CPU (its default)";
        if (controller_threads)
                snprintf(threads, sizeof(threads), "--threads %u", controller_threads);
        printf("throughput: %lu nodes x %lu syncs, concurrency %lu, %s per sync; controller "
               "--max-connections %lu, %s; %ld CPUs\n",
               n, syncs, concurrency, record ? "one new health.report" : "no records",
               concurrency * 2 > 64 ? concurrency * 2 : 64, threads, sysconf(_SC_NPROCESSORS_ONLN));
        if (n_rollouts > 0)
                printf("rollouts: %lu, one per group of ~%lu nodes covering the fleet, started "
                       "before the timed syncs (stages 1,10,50,100, success after 3 passes); "
                       "timed: %lu syncs of nodes spread over the fleet; a node told to install "
                       "reports update.committed in its next sync\n",
                       n_rollouts, (n + n_rollouts - 1) / n_rollouts, rollout_syncs);
        fflush(stdout);
        if (do_keep)
                load_run(MODE_KEEPALIVE, (unsigned) syncs, (unsigned) concurrency, record, &keep);
        if (do_reconnect)
                load_run(MODE_RECONNECT, (unsigned) syncs, (unsigned) concurrency, record, &rec);
        printf("  %-10s %8s %8s %8s %8s %8s %6s %8s %8s %8s  %s\n", "mode", "syncs/s", "p50 ms",
               "p90 ms", "p99 ms", "max ms", "errors", "ctl ms", "db ms", "gen ms", "DB after");
        if (do_keep)
                load_row("keepalive", &keep, record);
        if (do_reconnect)
                load_row("reconnect", &rec, record);
        printf("  (ctl ms / db ms / gen ms: CPU time per sync of the controller%s / of the database "
               "server%s / of this generator)\n",
               n_instances > 1 ? "s, summed" : "", database ? "" : " (none: SQLite is in the controller)");
        if (do_keep)
                result_line("keepalive", &keep);
        if (do_reconnect)
                result_line("reconnect", &rec);
        for (size_t k = 0; n_rollouts > 0 && k < 2; k++) {
                const struct load_result *r = k ? (do_reconnect ? &rec : NULL)
                                                : (do_keep ? &keep : NULL);
                if (r)
                        printf("  %-10s setup (register, groups, bundle, rollouts) %.1f s; timed "
                               "syncs: %lu told to install, %lu commits reported\n",
                               k ? "reconnect" : "keepalive", r->setup_s, r->installs, r->commits);
        }

        printf("\ngoals\n");
        const double need = (double) n / POLL_SEC;
        const struct load_result *rs[] = {do_keep ? &keep : NULL, do_reconnect ? &rec : NULL};
        const char *names[] = {"keepalive", "reconnect"};
        for (size_t k = 0; k < 2; k++) {
                const struct load_result *r = rs[k];
                if (!r)
                        continue;
                double rate = (double) r->syncs / r->wall_s;
                bool counts_ok = r->nodes_seen == (long) n && r->records_seen == r->records_want;
                printf("  %-4s %s: every sync answered and acked, the controller holds %ld nodes "
                       "and %ld records (want %lu, %ld)\n",
                       r->errors == 0 && counts_ok ? "PASS" : "MISS", names[k], r->nodes_seen,
                       r->records_seen, n, r->records_want);
                printf("  %-4s %s: keeps up with %lu nodes polling every %d s (%.1f syncs/s): "
                       "%.0f syncs/s, %.1fx\n",
                       rate >= need ? "PASS" : "MISS", names[k], n, POLL_SEC, need, rate, rate / need);
        }
        for (unsigned i = 0; i < n_nodes; i++) {
                X509_free(nodes[i].cert);
                EVP_PKEY_free(nodes[i].key);
        }
        X509_free(server_ca_cert);
        free(nodes);
        free(report_body);
        curl_global_cleanup();
        if (latency_log && fclose(latency_log) != 0)
                die("--latency-log: %s", strerror(errno));
        return 0;
}
