/*
 * Benchmark: what driving rollouts costs one sync, in the store (controller/store.c), with
 * many rollouts of many members. ROLLOUTS groups of MEMBERS nodes each, one rollout per
 * group (stages 1,10,50,100, success after 3 passes), all started; then SYNCS syncs of
 * nodes picked at random (no records: a node with no news, the common case), each one
 * store_sync timed on its own, after a quarter as many untimed ones. Prints the median and
 * the 90th percentile per sync.
 *
 * The store's own cost, without TLS or HTTP (bench/controller-sync measures those): the
 * figure that grows with the fleet when a sync walks every member of every rollout.
 * Figures, not a test: the exit status is 0 unless the benchmark could not run.
 *
 * usage: rollout-drive [--rollouts R] [--members N] [--syncs S] [DIR]
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/log.h"
#include "controller/store.h"

static int fake_sign(void *userdata, const char *payload, char **ret, char **reason) {
        (void) userdata;
        (void) reason;
        return asprintf(ret, "bench signature of %zu bytes", strlen(payload)) < 0 ? -ENOMEM : 0;
}

static double now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e6 + (double) ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return x < y ? -1 : x > y;
}

static int sync_once(struct store *s, const char *node, int64_t now, double *ret_usec) {
        char text[512];
        snprintf(text, sizeof(text),
                 "{\"format\":1,\"node\":\"%s\",\"boot_epoch\":1,\"boot_id\":"
                 "\"0123456789abcdef0123456789abcdef\",\"last_command_seq\":0,\"records\":[]}",
                 node);
        struct sync_request req;
        char *msg = NULL;
        int r = sync_request_parse(text, strlen(text), node, &req, &msg);
        if (r < 0) {
                fprintf(stderr, "rollout-drive: %s\n", msg ? msg : "parse");
                free(msg);
                return r;
        }
        json_t *cmds = NULL;
        double t0 = now_usec();
        r = store_sync(s, &req, now, 32, &cmds, NULL);
        double t1 = now_usec();
        json_decref(cmds);
        sync_request_done(&req);
        if (ret_usec)
                *ret_usec = t1 - t0;
        return r;
}

/* The directory this run made for its database (no DIR given), and its files. */
static const char *made_dir;

static void remove_made_dir(void) {
        static const char *const files[] = {"controller.db", "controller.db-wal", "controller.db-shm",
                                            "controller.db-journal"};
        char path[4200];
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(path, sizeof(path), "%s/%s", made_dir, files[i]);
                (void) unlink(path);
        }
        (void) rmdir(made_dir);
}

int main(int argc, char *argv[]) {
        long rollouts = 10, members = 10000, syncs = 2000;
        const char *dir = NULL;
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--rollouts") == 0 && i + 1 < argc)
                        rollouts = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--members") == 0 && i + 1 < argc)
                        members = strtol(argv[++i], NULL, 10);
                else if (strcmp(argv[i], "--syncs") == 0 && i + 1 < argc)
                        syncs = strtol(argv[++i], NULL, 10);
                else if (argv[i][0] != '-')
                        dir = argv[i];
                else {
                        fprintf(stderr, "usage: rollout-drive [--rollouts R] [--members N] "
                                        "[--syncs S] [DIR]\n");
                        return 2;
                }
        }
        if (rollouts < 1 || members < 1 || syncs < 1)
                return 2;
        static char tmpl[] = "/tmp/rollout-drive.XXXXXX";
        char db[4200];
        if (!dir) {
                if (!(dir = mkdtemp(tmpl))) {
                        perror("rollout-drive: mkdtemp");
                        return 1;
                }
                made_dir = dir; /* ours: removed at exit, whatever the outcome */
                atexit(remove_made_dir);
        }
        snprintf(db, sizeof(db), "%s/controller.db", dir);
        log_setup("rollout-drive", LOG_TARGET_STDERR);
        log_set_max_level(LOG_WARNING);
        struct store *s = NULL;
        char *reason = NULL;
        if (store_open(db, &s, &reason) < 0) {
                fprintf(stderr, "rollout-drive: %s\n", reason ? reason : "store_open");
                return 1;
        }
        store_set_command_signer(s, fake_sign, NULL);
        double t0 = now_usec();
        char node[64], group[32];
        for (long g = 0; g < rollouts; g++)
                for (long m = 0; m < members; m++) {
                        snprintf(node, sizeof(node), "n%ld-%ld", g, m);
                        snprintf(group, sizeof(group), "g%ld", g);
                        if (store_node_group_add(s, node, group, 1000) < 0) {
                                fprintf(stderr, "rollout-drive: cannot add %s\n", node);
                                return 1;
                        }
                }
        struct store_bundle b = {.id = "bench", .version = "1.0.0", .size = 1, .sha256 = "00"};
        if (store_bundle_add(s, &b, "bench", true, 1000) < 0)
                return 1;
        for (long g = 0; g < rollouts; g++) {
                char text[256], id[32];
                snprintf(id, sizeof(id), "r%ld", g);
                snprintf(text, sizeof(text),
                         "{\"id\":\"%s\",\"bundle_id\":\"bench\",\"target\":\"g%ld\","
                         "\"stages\":\"1,10,50,100\",\"success_after\":\"3\"}",
                         id, g);
                struct rollout_options o;
                char *msg = NULL;
                if (rollout_request_parse(text, strlen(text), &o, &msg) < 0 ||
                    store_rollout_create(s, &o, 1001, NULL, &msg) < 0 ||
                    store_rollout_verb(s, id, "start", 1002, NULL, &msg) < 0) {
                        fprintf(stderr, "rollout-drive: rollout %s: %s\n", id, msg ? msg : "?");
                        return 1;
                }
        }
        double setup = (now_usec() - t0) / 1e6;
        double *t = calloc((size_t) syncs, sizeof(*t));
        if (!t)
                return 1;
        unsigned seed = 42;
        /* Warm up first (caches, the write-ahead log left by the setup), untimed. */
        for (long i = 0; i < syncs / 4 + 1; i++) {
                snprintf(node, sizeof(node), "n%ld-%ld", rand_r(&seed) % rollouts,
                         rand_r(&seed) % members);
                if (sync_once(s, node, 1500 + i, NULL) < 0)
                        return 1;
        }
        double w0 = now_usec();
        for (long i = 0; i < syncs; i++) {
                long g = rand_r(&seed) % rollouts, m = rand_r(&seed) % members;
                snprintf(node, sizeof(node), "n%ld-%ld", g, m);
                if (sync_once(s, node, 2000 + i, &t[i]) < 0) {
                        fprintf(stderr, "rollout-drive: sync of %s failed\n", node);
                        return 1;
                }
        }
        double wall = (now_usec() - w0) / 1e6;
        double tick = -1;
#if STORE_SCHEMA_VERSION >= 4
        /* The server's periodic evaluation of every rollout (time gates). */
        double k0 = now_usec();
        if (store_rollouts_tick(s, 2000 + syncs) < 0)
                return 1;
        tick = (now_usec() - k0) / 1e3;
#endif
        qsort(t, (size_t) syncs, sizeof(*t), cmp_double);
        printf("rollout-drive: %ld rollouts x %ld members (%ld nodes), setup %.1f s\n", rollouts,
               members, rollouts * members, setup);
        printf("rollout-drive: %ld syncs of random members: median %.0f us, p90 %.0f us, max %.0f us "
               "per sync; %.0f syncs/s\n",
               syncs, t[syncs / 2], t[syncs * 9 / 10], t[syncs - 1], (double) syncs / wall);
        if (tick >= 0)
                printf("rollout-drive: one evaluation of every rollout (the server's tick): %.0f ms\n",
                       tick);
        free(t);
        store_close(s);
        return 0;
}
