/*
 * What zstd does to the link's bodies (docs/protocol.md, "Compression"): the sync request
 * of one health.report (~2.4 KB, what a node sends per report interval when nothing else
 * happens) and of a backlog of 250 records of ~4 KB (the 1 MiB issue #17 measured), plain,
 * in zstd, and in zstd with a dictionary trained (as scripts/zstd-dictionary.sh does) on
 * 400 other reports of the same kind; the bytes of the body and of the HTTP headers that
 * change, and the CPU time to compress (on the agent's loop) and decompress, on this
 * machine. The records are health reports as agent/health-monitor.c makes them, their
 * values drifting from one report to the next, the reals with the 12 digits sync_start
 * gives them. Figures, not a test.
 *
 * usage: link-zstd [DICT_SIZE [DIR [RECORDS]]]   (default 16384; DIR: the bodies and the
 * dictionary are written there for bench/link-zstd-wire.sh, which measures them on the wire,
 * and bench/link-pass.sh, which asks for RECORDS records in the backlog: default 250)
 */
#include "config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <zdict.h>

#include "proto/body-codec.h"

static uint64_t rng = 88172645463325252ULL;
static double uniform(void) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (double) (rng >> 11) / 9007199254740992.0;
}

/* A health.report record; workloads sets its size (2: ~2.4 KB, 5: ~4 KB). */
static json_t *report(unsigned seq, unsigned workloads) {
        static const struct {
                const char *name;
                double base, spread, step;
        } m[] = {
                {"zone.thermal_zone0.temp_c", 44, 4, 0.125},     {"zone.thermal_zone1.temp_c", 40, 3, 0.125},
                {"hwmon.coretemp.Package id 0.temp_c", 46, 6, 1}, {"cpu.busy_percent", 17, 30, 0},
                {"mem.available_mib", 628, 20, 0},               {"load1", 0.7, 0.8, 0.01},
                {"psi.cpu.some_avg10", 0.4, 2, 0.01},            {"psi.memory.some_avg10", 0, 0, 0.01},
                {"psi.io.some_avg10", 0.1, 1, 0.01},             {"disk./var/lib/orbit-agent.avail_mib", 1821, 1, 0},
                {"agent.rss_kib", 4990, 40, 4},                  {"agent.open_fds", 21, 2, 1},
                {"agent.loop_lag_ms", 0.1, 0.9, 0},              {"battery.voltage_v", 7.4, 0.3, 0.001},
                {"battery.current_a", 1.2, 0.8, 0.001},          {"level", 0, 0, 1},
        };
        static const char *wl[] = {"camera", "telemetry", "imager", "downlink", "adcs", "payload-ctl", "logger"};
        json_t *metrics = json_object();
        char name[128];
        for (size_t i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
                double a = m[i].base + m[i].spread * uniform(), b = a + m[i].spread * uniform();
                double mean = a + (b - a) * uniform(), last = a + (b - a) * uniform();
                if (m[i].step > 0) {
                        a = (double) (long) (a / m[i].step) * m[i].step;
                        b = (double) (long) (b / m[i].step) * m[i].step;
                        last = (double) (long) (last / m[i].step) * m[i].step;
                }
                json_object_set_new(metrics, m[i].name,
                                    json_pack("{s:f,s:f,s:f,s:f,s:i}", "min", a, "max", b, "mean", mean, "last",
                                              last, "n", 60));
        }
        for (unsigned w = 0; w < workloads && w < 7; w++) {
                static const char *what[] = {"cpu_percent", "memory_mib", "pids", "restarts"};
                for (unsigned k = 0; k < 4; k++) {
                        snprintf(name, sizeof(name), "workload.%s.%s", wl[w], what[k]);
                        double a = k >= 2 ? (double) (w + k) : 10 * (w + 1) * uniform(), b = a + (k >= 2 ? 0 : uniform() * 5);
                        json_object_set_new(metrics, name,
                                            json_pack("{s:f,s:f,s:f,s:f,s:i}", "min", a, "max", b, "mean",
                                                      a + (b - a) * uniform(), "last", b, "n", 60));
                }
        }
        json_t *body = json_pack("{s:f,s:s,s:i,s:o}", "interval_sec", 60.0 + uniform() / 100, "level", "nominal",
                                 "problems", 0, "metrics", metrics);
        return json_pack("{s:i,s:{s:s,s:i,s:s,s:i},s:s,s:s,s:I,s:I,s:o}", "format", 1, "key", "node", "sat-017",
                         "boot_epoch", 7, "boot_id", "4f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f", "seq", seq, "priority",
                         "low", "kind", "health.report", "time_usec",
                         (json_int_t) (1795615464000000LL + seq * 60000000LL), "monotonic_usec",
                         (json_int_t) (123456789LL + seq * 60000000LL), "body", body);
}

/* The sync request as sync_start writes it. */
static char *sync_text(unsigned first_seq, unsigned n, unsigned workloads) {
        json_t *records = json_array();
        for (unsigned i = 0; i < n; i++)
                json_array_append_new(records, report(first_seq + i, workloads));
        json_t *o = json_pack("{s:i,s:s,s:I,s:s,s:I,s:o}", "format", 1, "node", "sat-017", "boot_epoch",
                              (json_int_t) 7, "boot_id", "4f1c0d2e9a8b7c6d5e4f3a2b1c0d9e8f", "last_command_seq",
                              (json_int_t) 12, "records", records);
        char *text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12));
        json_decref(o);
        return text;
}

static void dump(const char *dir, const char *name, const void *data, size_t len) {
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", dir, name);
        FILE *f = fopen(path, "we");
        if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0) {
                fprintf(stderr, "link-zstd: cannot write %s\n", path);
                exit(1);
        }
}

static void dump_bodies(const char *dir, const char *name, const char *text, const struct body_dictionary *dict) {
        char file[256], *z = NULL;
        size_t zlen = 0;
        snprintf(file, sizeof(file), "%s.json", name);
        dump(dir, file, text, strlen(text));
        if (body_compress(text, strlen(text), NULL, BODY_CODEC_LEVEL, &z, &zlen) < 0)
                exit(1);
        snprintf(file, sizeof(file), "%s.zst", name);
        dump(dir, file, z, zlen);
        free(z);
        if (body_compress(text, strlen(text), dict, BODY_CODEC_LEVEL, &z, &zlen) < 0)
                exit(1);
        snprintf(file, sizeof(file), "%s.dict.zst", name);
        dump(dir, file, z, zlen);
        free(z);
}

static double cpu_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
        return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static void measure(const char *what, const char *text, const struct body_dictionary *dict) {
        size_t len = strlen(text), zlen = 0, dlen = 0, olen = 0;
        char *z = NULL, *zd = NULL, *out = NULL;
        double t0 = cpu_ms();
        int reps = len < 100000 ? 200 : 5;
        for (int i = 0; i < reps; i++) {
                free(z);
                if (body_compress(text, len, NULL, BODY_CODEC_LEVEL, &z, &zlen) < 0)
                        exit(1);
        }
        double t1 = cpu_ms();
        for (int i = 0; i < reps; i++) {
                free(zd);
                if (body_compress(text, len, dict, BODY_CODEC_LEVEL, &zd, &dlen) < 0)
                        exit(1);
        }
        double t2 = cpu_ms();
        for (int i = 0; i < reps; i++) {
                free(out);
                if (body_decompress(zd, dlen, len, dict, &out, &olen, NULL) < 0 || olen != len)
                        exit(1);
        }
        double t3 = cpu_ms();
        /* the headers zstd adds to a request: Content-Encoding, and the dictionary's id */
        size_t h = strlen("Content-Encoding: zstd\r\n"), hd = h + strlen(BODY_CODEC_DICTIONARY_HEADER ": 1544114213\r\n");
        printf("%-32s plain %8zu | zstd %7zu (%5.1f%%, +%zu header) | zstd+dict %7zu (%5.1f%%, +%zu headers)\n", what,
               len, zlen, 100.0 * (double) zlen / (double) len, h, dlen, 100.0 * (double) dlen / (double) len, hd);
        printf("%-32s compress %.3f ms, with dict %.3f ms, decompress %.3f ms (CPU, level %d)\n", "", (t1 - t0) / reps,
               (t2 - t1) / reps, (t3 - t2) / reps, BODY_CODEC_LEVEL);
        free(z);
        free(zd);
        free(out);
}

int main(int argc, char **argv) {
        size_t dict_size = argc > 1 ? (size_t) strtoul(argv[1], NULL, 10) : 16384;
        /* training samples: 400 reports of another stretch of time */
        enum { SAMPLES = 400 };
        char *samples = malloc(SAMPLES * 8192);
        size_t sizes[SAMPLES], total = 0;
        for (unsigned i = 0; i < SAMPLES; i++) {
                json_t *r = report(100000 + i, 1 + i % 5);
                char *t = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(12));
                sizes[i] = strlen(t);
                memcpy(samples + total, t, sizes[i]);
                total += sizes[i];
                free(t);
                json_decref(r);
        }
        char *dict_buf = malloc(dict_size);
        size_t n = ZDICT_trainFromBuffer(dict_buf, dict_size, samples, sizes, SAMPLES);
        struct body_dictionary *dict = NULL;
        if (ZDICT_isError(n) || body_dictionary_new(dict_buf, n, &dict, NULL) < 0) {
                fprintf(stderr, "link-zstd: training failed: %s\n", ZDICT_isError(n) ? ZDICT_getErrorName(n) : "load");
                return 1;
        }
        printf("dictionary: %zu bytes, id %u, trained on %d reports (%zu bytes)\n\n", n, body_dictionary_id(dict),
               SAMPLES, total);
        char *one = sync_text(1, 1, 2);
        unsigned records = argc > 3 ? (unsigned) strtoul(argv[3], NULL, 10) : 250;
        if (records < 1 || records > 1024) {
                fprintf(stderr, "link-zstd: RECORDS: 1..1024\n");
                return 1;
        }
        char *backlog = sync_text(1000, records, 5), what[64];
        snprintf(what, sizeof(what), "sync of %u records of ~4 KB", records);
        measure("sync of one health.report", one, dict);
        measure(what, backlog, dict);
        if (argc > 2) {
                dump(argv[2], "link.dict", dict_buf, n);
                dump_bodies(argv[2], "one", one, dict);
                dump_bodies(argv[2], "backlog", backlog, dict);
        }
        free(one);
        free(backlog);
        free(samples);
        free(dict_buf);
        body_dictionary_free(dict);
        return 0;
}
