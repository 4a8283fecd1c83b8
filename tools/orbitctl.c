/* orbitctl: the local command line over the agent's control socket. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "lib/fileio.h"
#include "lib/linebuf.h"
#include "lib/macro.h"

#define DEFAULT_SOCKET "/run/orbit-agent/control.sock"
#define MAX_RESPONSE (8 * 1024 * 1024)

static const char *arg_socket = DEFAULT_SOCKET;
static int arg_timeout_ms = 10000;
static bool arg_json = false;
static int arg_lines = 50;
static const char *arg_kind = NULL; /* events --kind: a kind or a prefix ending in '.' */
static int arg_count = 0;
static bool arg_no_wait = false;

static void help(void) {
        printf("Usage: orbitctl [--socket PATH] [--timeout SEC] COMMAND [--json]\n"
               "\n"
               "Commands:\n"
               "  status                      node id, boot epoch, uptime, version, each subsystem\n"
               "  ping                        check that the agent answers\n"
               "  workload list               workloads with state, pid, restarts, last exit\n"
               "  workload show NAME          one workload in detail, with its cgroup usage\n"
               "  workload start SPEC.json    add (or replace) a workload from a spec and start it\n"
               "  workload start NAME         start a known workload\n"
               "  workload stop NAME          SIGTERM, then SIGKILL after its stop timeout\n"
               "  workload restart NAME       stop, then start\n"
               "  workload logs NAME          its recent output (--lines N, default 50)\n"
               "  health                      thermal/power level, zones, actions in force, events\n"
               "  health watch                the same, refreshed every second (--count N to stop)\n"
               "  events                      queued events and reports (--lines N, default 50;\n"
               "                              --kind K: only the kinds that begin with K)\n"
               "  update status               the update phase, slots, boot state, progress, trial\n"
               "  update install FILE.obundle verify and install a bundle; follows the progress\n"
               "                              until the install ends (--no-wait to return at once)\n"
               "  update mark-good            commit the slot on trial now\n"
               "  update mark-bad             abandon the slot on trial (or armed): roll back\n"
               "  update rollback             go back to the previous slot after a commit\n"
               "  update scrub                read the inactive slots back against their manifests,\n"
               "                              repair what changed; prints what it found (--no-wait)\n"
               "  link                        the controller link: contact, syncs, outbox, commands\n"
               "  link sync                   sync with the controller now\n"
               "\n"
               "Options:\n"
               "  -s, --socket PATH   control socket (default " DEFAULT_SOCKET ",\n"
               "                      or $ORBIT_CONTROL_SOCKET)\n"
               "  -t, --timeout SEC   give up after SEC seconds (default 10)\n"
               "  -j, --json          print the agent's answer as JSON, for scripts\n"
               "  -h, --help          this help\n");
}

static int64_t now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Send one request and wait for its response line. Returns the parsed response. */
static int call(const char *method, json_t *params, json_t **ret) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        if (strlen(arg_socket) >= sizeof(sa.sun_path)) {
                fprintf(stderr, "orbitctl: socket path %s is too long\n", arg_socket);
                return -ENAMETOOLONG;
        }
        strcpy(sa.sun_path, arg_socket);
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return negative_errno();
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int r = negative_errno();
                fprintf(stderr, "orbitctl: cannot connect to the agent at %s: %s%s\n", arg_socket,
                        strerror(-r),
                        r == -ENOENT || r == -ECONNREFUSED ? " (is orbit-agent running?)" : "");
                return r;
        }

        json_t *req = json_pack("{s:i,s:s}", "id", 1, "method", method);
        if (!req || (params && json_object_set(req, "params", params) < 0)) {
                json_decref(req);
                return -ENOMEM;
        }
        _cleanup_free_ char *text = json_dumps(req, JSON_COMPACT);
        json_decref(req);
        if (!text)
                return -ENOMEM;
        size_t n = strlen(text);
        text[n] = '\n'; /* replaces the NUL: send exactly n + 1 bytes */
        /* A peer the agent refuses gets one line and a closed socket, maybe before our
         * request is out: a broken pipe then still leaves that line to read. */
        signal(SIGPIPE, SIG_IGN);
        int r = write_all(fd, text, n + 1);
        text[n] = '\0';
        int send_error = r;
        if (r < 0 && r != -EPIPE && r != -ECONNRESET) {
                fprintf(stderr, "orbitctl: sending to %s failed: %s\n", arg_socket, strerror(-r));
                return r;
        }

        struct linebuf lb;
        linebuf_init(&lb, MAX_RESPONSE);
        int64_t deadline = now_ms() + arg_timeout_ms;
        char *line = NULL;
        for (;;) {
                r = linebuf_take_line(&lb, &line, NULL);
                if (r != 0)
                        break;
                int64_t left = deadline - now_ms();
                if (left <= 0) {
                        r = -ETIMEDOUT;
                        break;
                }
                struct pollfd pfd = {.fd = fd, .events = POLLIN};
                int p = poll(&pfd, 1, (int) left);
                if (p < 0 && errno == EINTR)
                        continue;
                if (p <= 0) {
                        r = p < 0 ? negative_errno() : -ETIMEDOUT;
                        break;
                }
                char buf[8192];
                ssize_t got = read(fd, buf, sizeof(buf));
                if (got < 0 && errno == EINTR)
                        continue;
                if (got <= 0) {
                        r = got < 0 ? negative_errno() : -ECONNRESET;
                        break;
                }
                r = linebuf_feed(&lb, buf, (size_t) got);
                if (r < 0)
                        break;
        }
        linebuf_free(&lb);
        if (r < 0 && send_error < 0) {
                fprintf(stderr, "orbitctl: sending to %s failed: %s\n", arg_socket, strerror(-send_error));
                return send_error;
        }
        if (r < 0) {
                fprintf(stderr, "orbitctl: no answer from the agent at %s: %s\n", arg_socket,
                        r == -ETIMEDOUT ? "timed out" : strerror(-r));
                return r;
        }

        json_error_t err;
        json_t *resp = json_loads(line, 0, &err);
        free(line);
        if (!resp || !json_is_object(resp)) {
                fprintf(stderr, "orbitctl: the agent sent an answer that is not JSON: %s\n",
                        resp ? "not an object" : err.text);
                json_decref(resp);
                return -EBADMSG;
        }
        *ret = resp;
        return 0;
}

/* Unwrap {"ok":..., "result"/"error"}: returns the result (borrowed) or prints the error. */
static json_t *response_result(json_t *resp) {
        if (json_is_true(json_object_get(resp, "ok")))
                return json_object_get(resp, "result");
        json_t *e = json_object_get(resp, "error");
        fprintf(stderr, "orbitctl: the agent refused: %s (%s)\n",
                json_string_value(json_object_get(e, "message")) ?: "no message",
                json_string_value(json_object_get(e, "code")) ?: "no code");
        return NULL;
}

static void format_duration(double sec, char *buf, size_t size) {
        unsigned long long s = (unsigned long long) sec;
        if (s < 60)
                snprintf(buf, size, "%.1fs", sec);
        else if (s < 3600)
                snprintf(buf, size, "%llum %llus", s / 60, s % 60);
        else if (s < 86400)
                snprintf(buf, size, "%lluh %llum", s / 3600, (s % 3600) / 60);
        else
                snprintf(buf, size, "%llud %lluh %llum", s / 86400, (s % 86400) / 3600,
                         (s % 3600) / 60);
}

static const char *str(json_t *obj, const char *key) {
        const char *s = json_string_value(json_object_get(obj, key));
        return s ? s : "?";
}

static void print_status(json_t *r) {
        char uptime[64];
        format_duration(json_number_value(json_object_get(r, "uptime_sec")), uptime, sizeof(uptime));
        json_t *node_cfg = json_object_get(r, "node_id_from_config");
        printf("Node id:        %s (%s)\n", str(r, "node_id"),
               json_is_true(node_cfg) ? "from config" : "generated, kept in state dir");
        printf("Boot epoch:     %lld%s%s\n",
               (long long) json_integer_value(json_object_get(r, "boot_epoch")),
               json_is_true(json_object_get(r, "boot_epoch_recovered")) ? " (restored from last good copy)" : "",
               json_is_true(json_object_get(r, "boot_epoch_reset")) ? " (RESET: epoch state was lost)" : "");
        printf("Boot id:        %s\n", str(r, "boot_id"));
        printf("Uptime:         %s\n", uptime);
        printf("Agent version:  %s\n", str(r, "agent_version"));
        printf("Config:         %s\n", str(r, "config_file"));
        printf("State dir:      %s\n", str(r, "state_dir"));
        json_t *reload = json_object_get(r, "config_reload");
        const char *last_error = json_string_value(json_object_get(reload, "last_error"));
        printf("Reloads:        %lld (%lld refused)%s\n",
               (long long) json_integer_value(json_object_get(reload, "count")),
               (long long) json_integer_value(json_object_get(reload, "failures")),
               last_error ? "; last one refused, old config kept" : "");
        printf("\nSubsystems:\n");
        const char *key;
        json_t *sub;
        json_object_foreach(json_object_get(r, "subsystems"), key, sub) {
                printf("  %-8s %-10s %s\n", key, str(sub, "state"), str(sub, "summary"));
        }
}

static void print_json(json_t *v) {
        char *s = json_dumps(v, JSON_INDENT(2) | JSON_SORT_KEYS | JSON_REAL_PRECISION(9));
        if (s)
                printf("%s\n", s);
        free(s);
}

/* Call a method; print the JSON result with --json, else hand it to a printer. */
static int call_and_print(const char *method, json_t *params, void (*printer)(json_t *result)) {
        json_t *resp = NULL;
        int r = call(method, params, &resp);
        json_decref(params);
        if (r < 0)
                return 1;
        json_t *result = response_result(resp);
        int ret = result ? 0 : 1;
        if (result) {
                if (arg_json || !printer)
                        print_json(result);
                else
                        printer(result);
        }
        json_decref(resp);
        return ret;
}

static void print_pong(json_t *r) {
        printf("pong\n");
}

static void print_done(json_t *r) {
        const char *m = json_string_value(json_object_get(r, "message"));
        printf("%s\n", m ? m : "done");
}

static void print_workloads(json_t *r) {
        json_t *list = json_object_get(r, "workloads");
        printf("%-24s %-9s %-11s %7s %8s  %s\n", "NAME", "STATE", "PRIORITY", "PID", "RESTARTS", "LAST EXIT / ERROR");
        size_t i;
        json_t *w;
        json_array_foreach(list, i, w) {
                const char *err = json_string_value(json_object_get(w, "last_error"));
                const char *ex = json_string_value(json_object_get(w, "last_exit"));
                printf("%-24s %-9s %-11s %7lld %8lld  %s%s\n", str(w, "name"), str(w, "state"), str(w, "priority"),
                       (long long) json_integer_value(json_object_get(w, "pid")),
                       (long long) json_integer_value(json_object_get(w, "restarts")),
                       err ? err : (ex ? ex : "-"), json_is_true(json_object_get(w, "frozen")) ? " [frozen]" : "");
        }
        if (json_array_size(list) == 0)
                printf("(no workloads)\n");
}

static void print_workload(json_t *w) {
        json_t *u = json_object_get(w, "usage");
        printf("Name:        %s\n", str(w, "name"));
        printf("State:       %s%s%s\n", str(w, "state"), json_is_true(json_object_get(w, "frozen")) ? " (frozen)" : "",
               json_is_true(json_object_get(w, "adopted")) ? " (adopted after an agent restart)" : "");
        printf("Priority:    %s\n", str(w, "priority"));
        printf("Pid:         %lld\n", (long long) json_integer_value(json_object_get(w, "pid")));
        printf("Uptime:      %.1fs\n", json_number_value(json_object_get(w, "uptime_sec")));
        printf("Starts:      %lld (%lld restarts)\n", (long long) json_integer_value(json_object_get(w, "starts")),
               (long long) json_integer_value(json_object_get(w, "restarts")));
        printf("Last exit:   %s\n", json_string_value(json_object_get(w, "last_exit")) ?: "-");
        printf("Last error:  %s\n", json_string_value(json_object_get(w, "last_error")) ?: "-");
        printf("Cgroup:      %s\n", str(w, "cgroup"));
        printf("CPU:         %.2fs\n", (double) json_integer_value(json_object_get(u, "cpu_usec")) / 1e6);
        printf("Memory:      %.1f MiB (peak %.1f MiB), %lld OOM kills\n",
               (double) json_integer_value(json_object_get(u, "memory_bytes")) / 1048576.0,
               (double) json_integer_value(json_object_get(u, "memory_peak_bytes")) / 1048576.0,
               (long long) json_integer_value(json_object_get(u, "oom_kills")));
        printf("Tasks:       %lld\n", (long long) json_integer_value(json_object_get(u, "pids")));
        printf("Spec from:   %s\n", str(w, "source"));
}

static void print_logs(json_t *r) {
        size_t i;
        json_t *l;
        json_array_foreach(json_object_get(r, "lines"), i, l) {
                time_t t = (time_t) (json_integer_value(json_object_get(l, "time")) / 1000000);
                struct tm tm;
                gmtime_r(&t, &tm);
                printf("%04d-%02d-%02dT%02d:%02d:%02dZ %s %s\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                       tm.tm_hour, tm.tm_min, tm.tm_sec, str(l, "stream"), str(l, "line"));
        }
}

static void print_event_line(json_t *e) {
        time_t t = (time_t) (json_integer_value(json_object_get(e, "time_usec")) / 1000000);
        struct tm tm;
        gmtime_r(&t, &tm);
        char *body = json_dumps(json_object_get(e, "body"), JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("  %04d-%02d-%02dT%02d:%02d:%02dZ %-8s %-22s %s\n", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
               tm.tm_hour, tm.tm_min, tm.tm_sec, str(e, "priority"), str(e, "kind"), body ? body : "");
        free(body);
}

static void print_health(json_t *h) {
        json_t *a = json_object_get(h, "actions");
        printf("Level:     %s (for %.0fs): %s\n", str(h, "level"), json_number_value(json_object_get(h, "level_since_sec")),
               str(h, "driver"));
        char actions[256] = "";
        size_t n = 0;
        int be = (int) json_integer_value(json_object_get(a, "best_effort_cpu_percent"));
        int no = (int) json_integer_value(json_object_get(a, "normal_cpu_percent"));
        if (be)
                n += (size_t) snprintf(actions + n, sizeof(actions) - n, "best-effort throttled to %d%%; ", be);
        if (json_is_true(json_object_get(a, "best_effort_admission_closed")))
                n += (size_t) snprintf(actions + n, sizeof(actions) - n, "best-effort admission closed; ");
        if (json_is_true(json_object_get(a, "best_effort_frozen")))
                n += (size_t) snprintf(actions + n, sizeof(actions) - n, "best-effort frozen; ");
        if (no)
                n += (size_t) snprintf(actions + n, sizeof(actions) - n, "normal throttled to %d%%; ", no);
        if (json_is_true(json_object_get(a, "non_critical_stopped")))
                n += (size_t) snprintf(actions + n, sizeof(actions) - n, "all but critical stopped; ");
        printf("Actions:   %s\n", n ? actions : "none");
        json_t *g = json_object_get(h, "gate");
        printf("Gate:      %s (%s)\n", json_is_true(json_object_get(g, "pass")) ? "pass" : "FAIL", str(g, "why"));
        json_t *p = json_object_get(h, "power");
        printf("Power:     %s, battery %lld%%, level %s\n",
               json_is_true(json_object_get(p, "on_battery")) ? "on battery (eclipse)" : "not on battery",
               (long long) json_integer_value(json_object_get(p, "battery_percent")), str(p, "level"));
        json_t *sun = json_object_get(h, "sunlit");
        if (json_is_false(json_object_get(sun, "may_run")))
                printf("Sunlit:    run_when sunlit work waits (%s)\n", str(sun, "waiting"));
        else if (sun)
                printf("Sunlit:    run_when sunlit work may run\n");
        printf("Zones:\n");
        size_t i;
        json_t *z;
        json_array_foreach(json_object_get(h, "zones"), i, z) {
                json_t *t = json_object_get(z, "temp_c");
                if (json_is_number(t))
                        printf("  %-16s %-20s %7.1f C  %s\n", str(z, "name"), str(z, "type"), json_number_value(t), str(z, "level"));
                else
                        printf("  %-16s %-20s %9s  %s\n", str(z, "name"), str(z, "type"), "invalid", str(z, "level"));
        }
        if (json_array_size(json_object_get(h, "zones")) == 0)
                printf("  (none)\n");
        json_t *problems = json_object_get(json_object_get(h, "readings"), "problems");
        if (json_array_size(problems) > 0) {
                printf("Problems:\n");
                json_t *pr;
                json_array_foreach(problems, i, pr)
                        printf("  %s\n", json_string_value(pr) ? json_string_value(pr) : "?");
        }
        printf("Recent events:\n");
        json_t *e;
        json_array_foreach(json_object_get(h, "events"), i, e)
                print_event_line(e);
        if (json_array_size(json_object_get(h, "events")) == 0)
                printf("  (none)\n");
}

static void print_events(json_t *r) {
        size_t i;
        json_t *e;
        json_array_foreach(json_object_get(r, "events"), i, e)
                print_event_line(e);
        printf("%lld queued, %lld dropped\n", (long long) json_integer_value(json_object_get(r, "queued")),
               (long long) json_integer_value(json_object_get(r, "dropped")));
        json_t *o = json_object_get(r, "outbox"), *d = json_object_get(o, "dropped");
        if (json_is_object(o))
                printf("outbox: %lld bytes on disk, %lld in memory only, dropped %lld low / %lld normal / "
                       "%lld high, %lld files not trusted (moved to corrupt/)\n",
                       (long long) json_integer_value(json_object_get(o, "bytes_on_disk")),
                       (long long) json_integer_value(json_object_get(o, "memory_only")),
                       (long long) json_integer_value(json_object_get(d, "low")),
                       (long long) json_integer_value(json_object_get(d, "normal")),
                       (long long) json_integer_value(json_object_get(d, "high")),
                       (long long) json_integer_value(json_object_get(o, "corrupt")));
}

static int health_command(int argc, char **argv) {
        if (argc == 0)
                return call_and_print("health", NULL, print_health);
        if (argc == 1 && streq(argv[0], "watch")) {
                /* Live: redraw every second until Ctrl-C (or --count refreshes, for scripts). */
                for (int i = 0; arg_count == 0 || i < arg_count; i++) {
                        if (!arg_json)
                                printf("\033[H\033[2J");
                        int r = call_and_print("health", NULL, print_health);
                        if (r != 0)
                                return r;
                        fflush(stdout);
                        if (arg_count == 0 || i + 1 < arg_count)
                                sleep(1);
                }
                return 0;
        }
        fprintf(stderr, "orbitctl: usage: orbitctl health [watch] [--json] [--count N]\n");
        return 2;
}

static int workload_command(int argc, char **argv) {
        if (argc < 1) {
                fprintf(stderr, "orbitctl: workload needs a subcommand: list, show, start, stop, restart, logs\n");
                return 2;
        }
        const char *sub = argv[0];
        if (streq(sub, "list") && argc == 1)
                return call_and_print("workload.list", NULL, print_workloads);
        if (argc != 2) {
                fprintf(stderr, "orbitctl: usage: orbitctl workload %s NAME%s\n", sub,
                        streq(sub, "start") ? "|SPEC.json" : "");
                return 2;
        }
        const char *arg = argv[1];
        if (streq(sub, "start") && (strchr(arg, '/') || strstr(arg, ".json"))) {
                /* A spec file: the agent parses the text itself, so errors name file:line:column. */
                char *text = NULL;
                size_t len;
                int r = read_file_bounded(arg, 256 * 1024, &text, &len);
                if (r < 0) {
                        fprintf(stderr, "orbitctl: cannot read %s: %s\n", arg, strerror(-r));
                        return 1;
                }
                char abs[PATH_MAX];
                const char *source = realpath(arg, abs) ? abs : arg;
                json_t *params = json_pack("{s:s%,s:s}", "spec_text", text, len, "source", source);
                free(text);
                if (!params) {
                        fprintf(stderr, "orbitctl: %s is not UTF-8 text\n", arg);
                        return 1;
                }
                return call_and_print("workload.start", params, print_done);
        }
        json_t *params = json_pack("{s:s}", "name", arg);
        if (streq(sub, "show"))
                return call_and_print("workload.show", params, print_workload);
        if (streq(sub, "start"))
                return call_and_print("workload.start", params, print_done);
        if (streq(sub, "stop"))
                return call_and_print("workload.stop", params, print_done);
        if (streq(sub, "restart"))
                return call_and_print("workload.restart", params, print_done);
        if (streq(sub, "logs")) {
                json_object_set_new(params, "lines", json_integer(arg_lines));
                return call_and_print("workload.logs", params, print_logs);
        }
        json_decref(params);
        fprintf(stderr, "orbitctl: unknown workload subcommand '%s'\n", sub);
        return 2;
}

/* A string member or "" (update fields are often empty on purpose). */
static const char *ustr(json_t *o, const char *key) {
        const char *s = json_string_value(json_object_get(o, key));
        return s ? s : "";
}

static void print_update(json_t *r) {
        printf("Update:        %s", ustr(r, "phase"));
        if (*ustr(r, "bundle_id"))
                printf(" (%s %s, security_version %lld)", ustr(r, "bundle_id"), ustr(r, "version"),
                       (long long) json_integer_value(json_object_get(r, "security_version")));
        printf("\n");
        if (*ustr(r, "reason"))
                printf("Reason:        %s\n", ustr(r, "reason"));
        if (json_is_true(json_object_get(r, "paused")))
                printf("Paused:        %s (waiting for %s)\n", ustr(r, "paused_reason"),
                       streq(ustr(r, "paused_for"), "space") ? "space, retried"
                                                              : "the next contact");
        printf("Booted slot:   %s\n", *ustr(r, "booted_slot") ? ustr(r, "booted_slot") : "unknown");
        printf("Anti-rollback: security_version >= %lld\n",
               (long long) json_integer_value(json_object_get(r, "min_security_version")));
        json_t *boot = json_object_get(r, "boot");
        if (boot) {
                printf("Boot (%s):   primary %s", ustr(boot, "kind"), ustr(boot, "primary"));
                for (const char *s = "A"; *s; s = (*s == 'A' ? "B" : "")) {
                        json_t *sl = json_object_get(boot, s);
                        if (sl)
                                printf("; %s %s", s, json_is_true(json_object_get(sl, "good")) ? "good"
                                       : json_integer_value(json_object_get(sl, "tries_left")) > 0 ? "on trial" : "not bootable");
                        if (sl && !json_is_true(json_object_get(sl, "good")) && json_integer_value(json_object_get(sl, "tries_left")) > 0)
                                printf(" (%lld tries left)", (long long) json_integer_value(json_object_get(sl, "tries_left")));
                }
                printf("\n");
        }
        json_t *slots = json_object_get(r, "rootfs_slots");
        for (const char *s = "A"; slots && *s; s = (*s == 'A' ? "B" : "")) {
                json_t *v = json_object_get(slots, s);
                printf("Slot %s holds:  %s%s%s\n", s, v && !json_is_null(v) ? ustr(v, "bundle_id") : "unknown",
                       v && !json_is_null(v) ? " " : "", v && !json_is_null(v) ? ustr(v, "version") : "");
        }
        size_t i;
        json_t *m;
        json_array_foreach(json_object_get(r, "models"), i, m)
                printf("Model %s:  target %s, previous %s, current %s\n", ustr(m, "name"), ustr(m, "target"),
                       *ustr(m, "previous") ? ustr(m, "previous") : "none",
                       *ustr(m, "current") ? ustr(m, "current") : "none");
        json_t *p = json_object_get(r, "progress");
        if (p)
                printf("Progress:      %.1f%% (%lld of %lld bytes; chunks %lld from the active slot, %lld from the "
                       "bundle, %lld resumed)\n",
                       json_real_value(json_object_get(p, "percent")),
                       (long long) json_integer_value(json_object_get(p, "bytes_done")),
                       (long long) json_integer_value(json_object_get(p, "bytes_total")),
                       (long long) json_integer_value(json_object_get(p, "chunks_from_active")),
                       (long long) json_integer_value(json_object_get(p, "chunks_from_bundle")),
                       (long long) json_integer_value(json_object_get(p, "chunks_resumed")));
        json_t *t = json_object_get(r, "trial");
        if (t)
                printf("Trial:         %llds of %llds; gate held %llds of %llds%s%s\n",
                       (long long) json_integer_value(json_object_get(t, "elapsed_sec")),
                       (long long) json_integer_value(json_object_get(t, "timeout_sec")),
                       (long long) json_integer_value(json_object_get(t, "gate_ok_for_sec")),
                       (long long) json_integer_value(json_object_get(t, "gate_sec")),
                       *ustr(t, "gate_failing") ? "; failing: " : "", ustr(t, "gate_failing"));
        if (t && *ustr(t, "controller_summary"))
                printf("Controller:    %s\n", ustr(t, "controller_summary"));
        if (json_is_true(json_object_get(r, "reboot_required")))
                printf("A reboot is needed to continue.\n");
}

static void print_phase(json_t *r) {
        printf("%s\n", ustr(r, "phase"));
}

static void print_started(json_t *r) {
        printf("verified %s %s (security_version %lld): %s\n", ustr(r, "bundle_id"), ustr(r, "version"),
               (long long) json_integer_value(json_object_get(r, "security_version")), ustr(r, "phase"));
}

/*
 * Poll update.status and hand each result to step, until step returns an exit code (>= 0);
 * -1 means go on, after interval_ms, or after *next_ms when step set it (nonzero). 1 when
 * the agent cannot be asked.
 */
static int follow_update_status(int (*step)(json_t *status, void *userdata), void *userdata,
                                unsigned interval_ms, unsigned *next_ms) {
        for (;;) {
                json_t *resp = NULL;
                if (call("update.status", NULL, &resp) < 0)
                        return 1;
                json_t *r = response_result(resp);
                if (next_ms)
                        *next_ms = 0;
                int ret = r ? step(r, userdata) : 1;
                json_decref(resp);
                if (ret >= 0)
                        return ret;
                usleep((next_ms && *next_ms ? *next_ms : interval_ms) * 1000);
        }
}

struct install_follow {
        bool bar;     /* stdout is a terminal: one progress bar, redrawn in place */
        bool drawn;   /* the bar is on screen: end its line before anything else */
        int last_pct; /* for the lines printed when stdout is no terminal */
        uint64_t start_usec, start_bytes;
        uint64_t total; /* bytes, as last seen */
        uint64_t seen_usec, seen_bytes; /* the poll before: the rate now */
        unsigned next_ms;               /* the next poll's wait; 0: the usual */
};

static uint64_t mono_usec(void);

/* The wait before the next poll: the usual 50 ms, shorter as the end nears (half the
 * time the bytes left take at the rate now, at least 5 ms), so the command returns soon
 * after the install does without asking the agent often over a long one. */
static unsigned install_next_poll(struct install_follow *f, uint64_t done, uint64_t total) {
        enum { USUAL_MS = 50, LEAST_MS = 5 };
        uint64_t now = mono_usec();
        unsigned ms = USUAL_MS;
        if (total > 0 && done >= total)
                ms = LEAST_MS; /* all durable: the slot is being armed */
        else if (f->seen_usec && done > f->seen_bytes && total > done) {
                double rate = (double) (done - f->seen_bytes) / (double) (now - f->seen_usec); /* bytes/us */
                double left_ms = (double) (total - done) / rate / 1000.0;
                if (left_ms / 2 < USUAL_MS)
                        ms = left_ms / 2 < LEAST_MS ? LEAST_MS : (unsigned) (left_ms / 2);
        }
        f->seen_usec = now;
        f->seen_bytes = done;
        return ms;
}

static uint64_t mono_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

/* [#########...........]  45%  230/512 MiB  310 MiB/s, on one line of the terminal. */
static void draw_bar(struct install_follow *f, const char *phase, double pct, uint64_t done) {
        enum { WIDTH = 30 };
        if (pct < 0)
                pct = 0;
        if (pct > 100)
                pct = 100;
        uint64_t now = mono_usec();
        if (f->start_usec == 0 && done > 0) { /* the rate of writing: from its first bytes */
                f->start_usec = now;
                f->start_bytes = done;
        }
        char bar[WIDTH + 1];
        int full = (int) (pct * WIDTH / 100);
        for (int i = 0; i < WIDTH; i++)
                bar[i] = i < full ? '#' : '.';
        bar[WIDTH] = '\0';
        char rate[32] = "";
        if (f->start_usec && now - f->start_usec >= 500000 && done > f->start_bytes)
                snprintf(rate, sizeof(rate), "  %.0f MiB/s",
                         (double) (done - f->start_bytes) / 1048576.0 / ((double) (now - f->start_usec) / 1e6));
        printf("\r%-10s [%s] %3d%%  %.0f/%.0f MiB%s\033[K", phase, bar, (int) pct, (double) done / 1048576.0,
               (double) f->total / 1048576.0, rate);
        fflush(stdout);
        f->drawn = true;
}

/* An install until it leaves fetching/installing; exit 0 unless it failed, 75
 * (EX_TEMPFAIL) when it paused: it goes on by itself, no need to wait here. */
static int install_step(json_t *r, void *userdata) {
        struct install_follow *f = userdata;
        const char *phase = ustr(r, "phase");
        json_t *p = json_object_get(r, "progress");
        int pct = p ? (int) json_real_value(json_object_get(p, "percent")) : -1;
        bool going = streq(phase, "fetching") || streq(phase, "installing");
        bool paused = going && json_is_true(json_object_get(r, "paused"));
        if (f->drawn && (!going || paused)) {
                if (!going && !streq(phase, "failed"))
                        draw_bar(f, "installed", 100, f->total); /* the last state: full */
                printf("\n");
                f->drawn = false;
        }
        if (!going) {
                if (arg_json)
                        print_json(r);
                else
                        printf("%s%s%s\n", phase, *ustr(r, "reason") ? ": " : "", ustr(r, "reason"));
                return streq(phase, "failed") || streq(phase, "rolled-back") ? 1 : 0;
        }
        if (paused) {
                if (arg_json)
                        print_json(r);
                else
                        printf("%s, paused: %s\n", phase, ustr(r, "paused_reason"));
                return 75;
        }
        if (p)
                f->next_ms = install_next_poll(f, (uint64_t) json_integer_value(json_object_get(p, "bytes_done")),
                                               (uint64_t) json_integer_value(json_object_get(p, "bytes_total")));
        if (arg_json)
                return -1;
        if (f->bar) {
                if (p)
                        f->total = (uint64_t) json_integer_value(json_object_get(p, "bytes_total"));
                draw_bar(f, phase, p ? json_real_value(json_object_get(p, "percent")) : 0,
                         p ? (uint64_t) json_integer_value(json_object_get(p, "bytes_done")) : 0);
        }
        else if (pct >= 0 && pct / 10 != f->last_pct / 10) {
                printf("installing: %d%%\n", pct);
                fflush(stdout);
                f->last_pct = pct;
        }
        return -1;
}

/* Every 50 ms, faster near the end (install_next_poll): the wait adds little to the
 * install it follows. */
static int follow_install(void) {
        struct install_follow f = {.bar = isatty(STDOUT_FILENO) == 1, .last_pct = -1};
        return follow_update_status(install_step, &f, 50, &f.next_ms);
}

/* One line per slot of a scrub result; exit 1 when a slot stays damaged. */
static int print_scrub_result(json_t *last) {
        int ret = 0;
        size_t i;
        json_t *sl;
        json_array_foreach(json_object_get(last, "slots"), i, sl) {
                const char *result = ustr(sl, "result");
                printf("%s slot %s: %s; %lld chunks, %lld bad, %lld repaired%s%s%s%s%s%s\n", ustr(sl, "slot_class"),
                       ustr(sl, "slot"), result, (long long) json_integer_value(json_object_get(sl, "chunks")),
                       (long long) json_integer_value(json_object_get(sl, "bad")),
                       (long long) json_integer_value(json_object_get(sl, "repaired")),
                       *ustr(sl, "error") ? "; " : "", ustr(sl, "error"), *ustr(sl, "action") ? "; " : "",
                       ustr(sl, "action"), *ustr(sl, "ground") ? "; " : "", ustr(sl, "ground"));
                if (streq(result, "damaged") || streq(result, "error"))
                        ret = 1;
        }
        return ret;
}

/* The scrub just started, until it ends; then what it found. */
static int scrub_step(json_t *r, void *userdata) {
        json_t *scrub = json_object_get(r, "scrub");
        if (json_is_true(json_object_get(scrub, "running")))
                return -1;
        if (!arg_json)
                return print_scrub_result(json_object_get(scrub, "last"));
        print_json(json_object_get(scrub, "last"));
        return 0;
}

static int follow_scrub(void) {
        return follow_update_status(scrub_step, NULL, 200, NULL);
}

static void print_link(json_t *r) {
        printf("Controller:    %s\n", ustr(r, "url"));
        printf("State:         %s\n", ustr(r, "summary"));
        printf("Outbox:        %lld records queued, %lld acknowledged\n",
               (long long) json_integer_value(json_object_get(r, "records_queued")),
               (long long) json_integer_value(json_object_get(r, "records_acked")));
        printf("Commands:      last applied %lld; %lld done, %lld failed, %lld rejected\n",
               (long long) json_integer_value(json_object_get(r, "last_command_seq")),
               (long long) json_integer_value(json_object_get(r, "commands_done")),
               (long long) json_integer_value(json_object_get(r, "commands_failed")),
               (long long) json_integer_value(json_object_get(r, "commands_rejected")));
        printf("Next sync in:  %.1f s (contact window %s)\n",
               json_real_value(json_object_get(r, "next_sync_in_sec")),
               json_is_true(json_object_get(r, "window_open")) ? "open" : "closed");
        json_t *c = json_object_get(r, "certificate");
        if (json_is_string(json_object_get(c, "serial"))) {
                time_t t = (time_t) json_integer_value(json_object_get(c, "not_after"));
                struct tm tm;
                char when[32] = "?";
                if (gmtime_r(&t, &tm))
                        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%SZ", &tm);
                printf("Certificate:   serial %s, not after %s, %s%s%s%s\n", ustr(c, "serial"), when,
                       ustr(c, "renewal"), json_is_true(json_object_get(c, "trial")) ? ", a renewed one on trial" : "",
                       *ustr(c, "renewal_error") ? "; last renewal: " : "", ustr(c, "renewal_error"));
        }
}

static int link_command(int argc, char **argv) {
        if (argc == 0)
                return call_and_print("link", NULL, print_link);
        if (argc == 1 && streq(argv[0], "sync"))
                return call_and_print("link", json_pack("{s:b}", "sync", 1), print_link);
        fprintf(stderr, "orbitctl: usage: orbitctl link [sync] [--json]\n");
        return 2;
}

static int update_command(int argc, char **argv) {
        if (argc == 1 && streq(argv[0], "status"))
                return call_and_print("update.status", NULL, print_update);
        if (argc == 2 && streq(argv[0], "install")) {
                char abs[PATH_MAX];
                if (!realpath(argv[1], abs)) {
                        fprintf(stderr, "orbitctl: %s: %s\n", argv[1], strerror(errno));
                        return 1;
                }
                int r = call_and_print("update.install", json_pack("{s:s}", "bundle", abs),
                                       print_started);
                if (r != 0 || arg_no_wait)
                        return r;
                return follow_install();
        }
        if (argc == 1 && streq(argv[0], "mark-good"))
                return call_and_print("update.mark-good", NULL, print_phase);
        if (argc == 1 && streq(argv[0], "mark-bad"))
                return call_and_print("update.mark-bad", NULL, print_phase);
        if (argc == 1 && streq(argv[0], "rollback"))
                return call_and_print("update.rollback", NULL, print_phase);
        if (argc == 1 && streq(argv[0], "scrub")) {
                json_t *resp = NULL;
                if (call("update.scrub", NULL, &resp) < 0)
                        return 1;
                json_t *res = response_result(resp);
                if (res && arg_no_wait) {
                        if (arg_json)
                                print_json(res);
                        else
                                printf("scrubbing %lld slots\n", (long long) json_integer_value(json_object_get(res, "slots")));
                }
                json_decref(resp);
                if (!res)
                        return 1;
                return arg_no_wait ? 0 : follow_scrub();
        }
        fprintf(stderr, "orbitctl: usage: orbitctl update status|install FILE.obundle|mark-good|mark-bad|rollback|scrub\n");
        return 2;
}

static int run(int argc, char **argv) {
        const char *command = argv[0];
        if (streq(command, "status") && argc == 1)
                return call_and_print("status", NULL, print_status);
        if (streq(command, "ping") && argc == 1)
                return call_and_print("ping", NULL, print_pong);
        if (streq(command, "workload"))
                return workload_command(argc - 1, argv + 1);
        if (streq(command, "health"))
                return health_command(argc - 1, argv + 1);
        if (streq(command, "update"))
                return update_command(argc - 1, argv + 1);
        if (streq(command, "link"))
                return link_command(argc - 1, argv + 1);
        if (streq(command, "events") && argc == 1)
                return call_and_print("events", json_pack("{s:i,s:s*}", "count", arg_lines, "kind", arg_kind),
                                      print_events);
        fprintf(stderr, "orbitctl: unknown command '%s'. Try 'orbitctl --help'.\n", command);
        return 2;
}

int main(int argc, char *argv[]) {
        static const struct option options[] = {
                {"socket", required_argument, NULL, 's'},
                {"timeout", required_argument, NULL, 't'},
                {"json", no_argument, NULL, 'j'},
                {"lines", required_argument, NULL, 'n'},
                {"count", required_argument, NULL, 'c'},
                {"no-wait", no_argument, NULL, 'W'},
                {"kind", required_argument, NULL, 'k'},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *env = getenv("ORBIT_CONTROL_SOCKET");
        if (env && *env)
                arg_socket = env;
        int c;
        while ((c = getopt_long(argc, argv, "s:t:jn:c:h", options, NULL)) >= 0) {
                switch (c) {
                case 's':
                        arg_socket = optarg;
                        break;
                case 't': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v <= 0 || v > 3600) {
                                fprintf(stderr, "orbitctl: --timeout takes 1 to 3600 seconds\n");
                                return 2;
                        }
                        arg_timeout_ms = (int) v * 1000;
                        break;
                }
                case 'j':
                        arg_json = true;
                        break;
                case 'W':
                        arg_no_wait = true;
                        break;
                case 'k':
                        arg_kind = optarg;
                        break;
                case 'c': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v <= 0 || v > 100000) {
                                fprintf(stderr, "orbitctl: --count takes 1 to 100000\n");
                                return 2;
                        }
                        arg_count = (int) v;
                        break;
                }
                case 'n': {
                        char *end;
                        long v = strtol(optarg, &end, 10);
                        if (*end || v <= 0 || v > 1000) {
                                fprintf(stderr, "orbitctl: --lines takes 1 to 1000\n");
                                return 2;
                        }
                        arg_lines = (int) v;
                        break;
                }
                case 'h':
                        help();
                        return 0;
                default:
                        fprintf(stderr, "Try 'orbitctl --help'.\n");
                        return 2;
                }
        }
        if (optind >= argc) {
                help();
                return 2;
        }
        return run(argc - optind, argv + optind);
}
