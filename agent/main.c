/* orbit-agent: the node daemon. One sd-event loop serves the control socket and signals. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "agent.h"
#include "fileio.h"
#include "log.h"
#include "macro.h"
#include "statefile.h"
#include "status.h"

#define DEFAULT_CONFIG SYSCONFDIR "/orbit-agent/agent.json"

static void help(void) {
        printf("Usage: orbit-agent [OPTIONS]\n"
               "\n"
               "The orbit-agent node daemon: runs sandboxed workloads, installs A/B updates,\n"
               "guards thermal and power limits, and syncs with the cluster controller.\n"
               "\n"
               "  -c, --config FILE    configuration file (default " DEFAULT_CONFIG ")\n"
               "      --check-config   validate the configuration and exit (0 valid, %d invalid)\n"
               "      --version        print the version and exit\n"
               "  -h, --help           print this help and exit\n"
               "\n"
               "Signals: SIGHUP reloads the configuration (an invalid one is refused and the\n"
               "old one kept); SIGTERM and SIGINT stop the agent cleanly.\n",
               EX_CONFIG);
}

static uint64_t now_usec(sd_event *e) {
        uint64_t t = 0;
        (void) sd_event_now(e, CLOCK_MONOTONIC, &t);
        return t;
}

/* ---- control methods -------------------------------------------------------------- */

static int method_ping(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        *ret = json_pack("{s:b}", "pong", 1);
        return *ret ? 0 : -ENOMEM;
}

static int method_status(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct agent *a = userdata;
        if (json_object_size(params) > 0) {
                snprintf(msg, size, "status takes no parameters");
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        struct agent_status_input in = {
                .node = &a->node,
                .config = &a->config,
                .uptime_usec = now_usec(a->event) - a->started_usec,
                .config_reloads = a->config_reloads,
                .config_reload_failures = a->config_reload_failures,
                .last_reload_error = a->last_reload_error,
                .runtime = a->runtime ? runtime_status_json(a->runtime) : NULL,
                .health = a->health ? health_monitor_status_json(a->health) : NULL,
                .update = a->update ? update_manager_status_json(a->update) : NULL,
                .link = a->link ? link_status_json(a->link) : NULL,
                .loop = loop_stats_json(&a->loop),
        };
        *ret = agent_status_build(&in);
        json_decref(in.loop);
        json_decref(in.link);
        json_decref(in.runtime);
        json_decref(in.health);
        json_decref(in.update);
        return *ret ? 0 : -ENOMEM;
}

/* ---- workload methods: params {"name": ...} or {"spec_text": ..., "source": ...} ---- */

static struct runtime *need_runtime(struct agent *a, char *msg, size_t size) {
        if (!a->runtime)
                snprintf(msg, size, "the workload runtime is disabled on this node (runtime.enabled)");
        return a->runtime;
}

static const char *param_name(json_t *params, char *msg, size_t size) {
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!name || !workload_name_is_valid(name)) {
                snprintf(msg, size, "\"name\" must be a workload name");
                return NULL;
        }
        return name;
}

/* Turn a runtime result into a control result: done, or an error with the message. */
static int runtime_result(int r, char *message, json_t **ret, char *msg, size_t size) {
        if (r >= 0) {
                *ret = json_pack("{s:b,s:s?}", "done", 1, "message", message);
                free(message);
                return *ret ? 0 : -ENOMEM;
        }
        snprintf(msg, size, "%s", message ? message : strerror(-r));
        free(message);
        return (r == -EINVAL || r == -ENOENT || r == -EEXIST ? CONTROL_ERROR_INVALID_PARAMS : CONTROL_ERROR_INTERNAL) + 1;
}

static int method_workload_list(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        *ret = json_pack("{s:o}", "workloads", runtime_workloads_json(rt));
        return *ret ? 0 : -ENOMEM;
}

static int method_workload_show(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        const char *name = param_name(params, msg, size);
        if (!name)
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        *ret = runtime_workload_json(rt, name);
        if (!*ret) {
                snprintf(msg, size, "no workload named \"%s\"", name);
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        return 0;
}

static int method_workload_logs(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        const char *name = param_name(params, msg, size);
        if (!name)
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        json_int_t lines = json_integer_value(json_object_get(params, "lines"));
        json_t *logs = runtime_workload_logs_json(rt, name, lines > 0 && lines <= 1000 ? (size_t) lines : 50);
        if (!logs) {
                snprintf(msg, size, "no workload named \"%s\"", name);
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        *ret = json_pack("{s:o}", "lines", logs);
        return *ret ? 0 : -ENOMEM;
}

/* Methods that take a workload name and call one runtime operation. */
static int workload_name_method(void *userdata, json_t *params, json_t **ret, char *msg, size_t size,
                                int (*op)(struct runtime *rt, const char *name, char **ret_message)) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        const char *name = param_name(params, msg, size);
        if (!name)
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        char *message = NULL;
        /* op first: the order in which arguments are evaluated is unspecified */
        int r = op(rt, name, &message);
        return runtime_result(r, message, ret, msg, size);
}

static int method_workload_start(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        json_t *text = json_object_get(params, "spec_text");
        if (text) {
                char *message = NULL;
                const char *source = json_string_value(json_object_get(params, "source"));
                if (!json_is_string(text)) {
                        snprintf(msg, size, "\"spec_text\" must be a string");
                        return CONTROL_ERROR_INVALID_PARAMS + 1;
                }
                int r = runtime_workload_submit(rt, source ? source : "<control>", json_string_value(text),
                                                json_string_length(text), &message);
                return runtime_result(r, message, ret, msg, size);
        }
        return workload_name_method(userdata, params, ret, msg, size, runtime_workload_start);
}

static int method_workload_stop(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return workload_name_method(userdata, params, ret, msg, size, runtime_workload_stop);
}

static int method_workload_restart(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return workload_name_method(userdata, params, ret, msg, size, runtime_workload_restart);
}

static int method_health(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct agent *a = userdata;
        if (!a->health) {
                snprintf(msg, size, "health monitoring is disabled on this node (health.enabled)");
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        }
        *ret = health_monitor_json(a->health);
        return *ret ? 0 : -ENOMEM;
}

static int method_events(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct agent *a = userdata;
        json_int_t n = json_integer_value(json_object_get(params, "count"));
        const char *kind = json_string_value(json_object_get(params, "kind"));
        json_t *events = event_queue_tail_json(a->events, n > 0 && n <= 10000 ? (size_t) n : 100, kind);
        *ret = json_pack("{s:o,s:I,s:I,s:o}", "events", events, "queued", (json_int_t) event_queue_count(a->events),
                         "dropped", (json_int_t) event_queue_dropped(a->events),
                         "outbox", event_queue_stats_json(a->events));
        return *ret ? 0 : -ENOMEM;
}

/* The levers the thermal policy will pull, open to operators and tests too. */
static int method_runtime_class(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct runtime *rt = need_runtime(userdata, msg, size);
        if (!rt)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        const char *prio = json_string_value(json_object_get(params, "priority"));
        int p = -1;
        for (int i = 0; prio && i < _WORKLOAD_PRIORITY_MAX; i++)
                if (streq(prio, workload_priority_to_string((enum workload_priority) i)))
                        p = i;
        if (p < 0) {
                snprintf(msg, size, "\"priority\" must be critical, normal or best-effort");
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        json_t *v;
        int r = 0;
        if ((v = json_object_get(params, "cpu_percent"))) {
                if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 100) {
                        snprintf(msg, size, "\"cpu_percent\" must be 0..100");
                        return CONTROL_ERROR_INVALID_PARAMS + 1;
                }
                r = runtime_class_throttle(rt, (enum workload_priority) p, (unsigned) json_integer_value(v));
        }
        if (r >= 0 && (v = json_object_get(params, "frozen")))
                r = runtime_class_freeze(rt, (enum workload_priority) p, json_is_true(v));
        if (r >= 0 && (v = json_object_get(params, "stopped")))
                r = runtime_class_stop(rt, (enum workload_priority) p, json_is_true(v));
        if (r >= 0 && (v = json_object_get(params, "admit")) && p == WORKLOAD_PRIORITY_BEST_EFFORT)
                runtime_best_effort_admission(rt, json_is_true(v));
        if (r < 0) {
                snprintf(msg, size, "runtime class %s: %s", prio, strerror(-r));
                return CONTROL_ERROR_INTERNAL + 1;
        }
        *ret = runtime_status_json(rt);
        return *ret ? 0 : -ENOMEM;
}

/* ---- update methods ------------------------------------------------------------------ */

static struct update_manager *need_update(struct agent *a, char *msg, size_t size) {
        if (!a->update)
                snprintf(msg, size, "updates are disabled on this node (update.enabled)");
        return a->update;
}

static int update_result(int r, json_t **ret, char *msg) {
        if (r >= 0)
                return 0;
        return (r == -EINVAL || r == -ENOENT || r == -EBUSY || r == -EBADMSG || r == -EPERM ||
                                r == -ENOTSUP || r == -EKEYREJECTED || r == -EKEYEXPIRED || r == -ENOKEY
                        ? CONTROL_ERROR_INVALID_PARAMS
                        : CONTROL_ERROR_INTERNAL) + 1;
}

static int method_update_status(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct update_manager *u = need_update(userdata, msg, size);
        if (!u)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        *ret = update_manager_status_json(u);
        return *ret ? 0 : -ENOMEM;
}

static int method_update_install(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct update_manager *u = need_update(userdata, msg, size);
        if (!u)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        const char *path = json_string_value(json_object_get(params, "bundle"));
        if (!path || path[0] != '/' || json_object_size(params) != 1) {
                snprintf(msg, size, "install takes {\"bundle\": \"/absolute/path.obundle\"}");
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        return update_result(update_manager_install(u, path, ret, msg, size), ret, msg);
}

static int update_action(void *userdata, json_t *params, json_t **ret, char *msg, size_t size,
                         int (*fn)(struct update_manager *, json_t **, char *, size_t)) {
        struct update_manager *u = need_update(userdata, msg, size);
        if (!u)
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        if (json_object_size(params) > 0) {
                snprintf(msg, size, "this method takes no parameters");
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        return update_result(fn(u, ret, msg, size), ret, msg);
}

static int method_update_mark_good(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return update_action(userdata, params, ret, msg, size, update_manager_mark_good);
}

static int method_update_mark_bad(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return update_action(userdata, params, ret, msg, size, update_manager_mark_bad);
}

static int method_update_rollback(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return update_action(userdata, params, ret, msg, size, update_manager_rollback);
}

static int method_update_scrub(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        return update_action(userdata, params, ret, msg, size, update_manager_scrub);
}

static int method_link(void *userdata, json_t *params, json_t **ret, char *msg, size_t size) {
        struct agent *a = userdata;
        if (!a->link) {
                snprintf(msg, size, "the controller link is disabled on this node (link.enabled)");
                return CONTROL_ERROR_NOT_IMPLEMENTED + 1;
        }
        json_t *sync = json_object_get(params, "sync");
        if (json_object_size(params) > (sync ? 1u : 0u) || (sync && !json_is_boolean(sync))) {
                snprintf(msg, size, "link takes {\"sync\": true|false}");
                return CONTROL_ERROR_INVALID_PARAMS + 1;
        }
        if (json_is_true(sync))
                link_sync_now(a->link);
        *ret = link_status_json(a->link);
        return *ret ? 0 : -ENOMEM;
}

static const struct control_method control_methods[] = {
        {"ping", method_ping},
        {"status", method_status},
        {"workload.list", method_workload_list},
        {"workload.show", method_workload_show},
        {"workload.logs", method_workload_logs},
        {"workload.start", method_workload_start},
        {"workload.stop", method_workload_stop},
        {"workload.restart", method_workload_restart},
        {"runtime.class", method_runtime_class},
        {"health", method_health},
        {"events", method_events},
        {"update.status", method_update_status},
        {"update.install", method_update_install},
        {"update.mark-good", method_update_mark_good},
        {"update.mark-bad", method_update_mark_bad},
        {"update.scrub", method_update_scrub},
        {"update.rollback", method_update_rollback},
        {"link", method_link},
        {NULL, NULL},
};

/* ---- lifecycle -------------------------------------------------------------------- */

static void notify_status(const char *fmt, ...) _printf_(1, 2);
static void notify_status(const char *fmt, ...) {
        char buf[512];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        (void) sd_notifyf(false, "STATUS=%s", buf);
}

static void apply_logging(const struct agent_config *c) {
        log_setup("orbit-agent", c->log_target);
        log_set_max_level(c->log_level);
}

static struct runtime_policy agent_runtime_policy(const struct agent_config *c) {
        return (struct runtime_policy){
                .ids = c->sandbox.ids,
                .defaults = c->sandbox.defaults,
                .allow_privileged = c->sandbox.allow_privileged,
                .allow_privileged_from_link = c->sandbox.allow_privileged_from_link,
        };
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct agent *a = userdata;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        (void) sd_notifyf(false, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=Reloading configuration",
                          (unsigned long long) ts.tv_sec * 1000000ULL +
                                  (unsigned long long) ts.tv_nsec / 1000ULL);

        struct agent_config next;
        _cleanup_free_ char *message = NULL;
        int r = config_load_file(a->config_path, &next, &message);
        if (r < 0) {
                a->config_reload_failures++;
                snprintf(a->last_reload_error, sizeof(a->last_reload_error), "%s",
                         message ? message : strerror(-r));
                /* One log line per problem, each complete on its own in the journal. */
                char *save = NULL, *copy = strdup(a->last_reload_error);
                for (char *l = copy ? strtok_r(copy, "\n", &save) : NULL; l;
                     l = strtok_r(NULL, "\n", &save))
                        log_error("configuration reload refused, keeping the old configuration: %s", l);
                free(copy);
        } else {
                char changed[512];
                if (config_restart_keys_changed(&a->config, &next, changed, sizeof(changed)) > 0) {
                        /* Moving state or sockets under a running agent is not safe: keep them. */
                        log_warning("configuration reload: %s changed; these take effect at the "
                                    "next start, the running agent keeps the old values",
                                    changed);
                        config_keep_restart_keys(&next, &a->config);
                }
                config_free(&a->config);
                a->config = next;
                a->config_reloads++;
                a->last_reload_error[0] = '\0';
                apply_logging(&a->config);
                control_server_set_limits(a->control, &a->config.control);
                event_queue_set_limits(a->events, (size_t) a->config.outbox.max_records,
                                       (uint64_t) a->config.outbox.max_mib << 20);
                if (a->health)
                        health_monitor_reconfigure(a->health, &a->config);
                if (a->runtime) {
                        struct runtime_policy policy = agent_runtime_policy(&a->config);
                        runtime_set_policy(a->runtime, &policy);
                }
                log_notice("configuration reloaded from %s", a->config_path);
        }
        (void) sd_notify(false, "READY=1");
        notify_status("Serving: node %s, boot epoch %llu%s", a->node.node_id,
                      (unsigned long long) a->node.boot_epoch,
                      r < 0 ? " (last reload refused)" : "");
        return 0;
}

static int on_terminate(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        struct agent *a = userdata;
        (void) sd_notify(false, "STOPPING=1\nSTATUS=Stopping");
        log_info("received %s, stopping", si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
        return sd_event_exit(a->event, 0);
}

static int on_watchdog(sd_event_source *s, uint64_t usec, void *userdata) {
        struct agent *a = userdata;
        uint64_t now = now_usec(a->event);
        char why[256] = "";
        bool ok = !a->health || health_monitor_alive(a->health, now, why, sizeof(why));
        if (ok) {
                (void) sd_notify(false, "WATCHDOG=1");
                if (a->watchdog_withheld)
                        log_notice("watchdog fed again: subsystems healthy");
                a->watchdog_withheld = false;
        } else if (!a->watchdog_withheld) {
                log_error("withholding the watchdog: %s", why);
                a->watchdog_withheld = true;
        }
        (void) sd_event_source_set_time(s, now + a->watchdog_usec / 2);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON); /* time sources are one-shot */
        return 0;
}

/*
 * State files found corrupt (by any subsystem, on any thread) go to the ground as
 * state.corrupt records: one flip is a fault the agent survived, many across a fleet
 * are a trend in the radiation environment or a dying flash.
 */
#define STATE_PROBLEMS_INTERVAL_USEC (5 * 1000000ULL)

static uint64_t realtime_now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000;
}

static void report_state_problems(struct agent *a) {
        struct statefile_problem ps[8];
        size_t n, dropped = 0;
        while ((n = statefile_take_problems(ps, ELEMENTSOF(ps), &dropped)) > 0 || dropped > 0) {
                for (size_t i = 0; i < n; i++)
                        (void) event_queue_push(a->events, EVENT_HIGH, "state.corrupt",
                                                json_pack("{s:s, s:s, s:b}", "path", ps[i].path, "problem",
                                                          ps[i].problem, "restored", ps[i].restored),
                                                realtime_now_usec(), now_usec(a->event));
                if (dropped > 0)
                        (void) event_queue_push(a->events, EVENT_HIGH, "state.corrupt",
                                                json_pack("{s:I}", "more", (json_int_t) dropped),
                                                realtime_now_usec(), now_usec(a->event));
                dropped = 0;
        }
}

static int on_state_problems_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        struct agent *a = userdata;
        report_state_problems(a);
        (void) sd_event_source_set_time(s, now_usec(a->event) + STATE_PROBLEMS_INTERVAL_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ON);
        return 0;
}

static void on_runtime_event(void *userdata, int priority, const char *kind, json_t *body) {
        struct agent *a = userdata;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        (void) event_queue_push(a->events, (enum event_priority) priority, kind, body,
                                (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000,
                                now_usec(a->event));
}

/* For the link: the whole status document (status.send), and a reload after config.set. */
static json_t *link_status_document(void *userdata) {
        json_t *ret = NULL, *params = json_object();
        char msg[256];
        int r = params ? method_status(userdata, params, &ret, msg, sizeof(msg)) : -ENOMEM;
        json_decref(params);
        return r == 0 ? ret : NULL;
}

static void link_reload(void *userdata) {
        (void) kill(getpid(), SIGHUP); /* handled on the loop, like an operator's */
}

static int take_state_lock(struct agent *a) {
        char path[PATH_MAX];
        snprintf(path, sizeof(path), "%s/agent.lock", a->config.state_dir);
        a->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (a->lock_fd < 0)
                return log_error_errno(errno, "cannot open lock file %s", path);
        if (flock(a->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                if (errno == EWOULDBLOCK)
                        return log_error_errno(EBUSY,
                                               "another orbit-agent is already running with state "
                                               "dir %s (%s is locked)",
                                               a->config.state_dir, path);
                return log_error_errno(errno, "cannot lock %s", path);
        }
        return 0;
}

static int agent_start(struct agent *a) {
        int r;

        r = mkdir_parents(a->config.state_dir, 0700);
        if (r < 0)
                return log_error_errno(r, "cannot create state dir %s", a->config.state_dir);
        r = mkdir_parents(a->config.runtime_dir, 0755);
        if (r < 0)
                return log_error_errno(r, "cannot create runtime dir %s", a->config.runtime_dir);

        r = take_state_lock(a);
        if (r < 0)
                return r;

        r = node_state_start(&a->config, &a->node);
        if (r < 0)
                return r;

        r = sd_event_default(&a->event);
        if (r < 0)
                return log_error_errno(r, "cannot create event loop");

        /*
         * Events wait in the outbox for the controller link, each record on disk before it
         * counts. An outbox that cannot be opened must not stop the node: then they wait in
         * memory, and the log says so.
         */
        char outbox_dir[PATH_MAX];
        snprintf(outbox_dir, sizeof(outbox_dir), "%s/outbox", a->config.state_dir);
        struct event_queue_config oc = {
                .dir = outbox_dir,
                .max_records = (size_t) a->config.outbox.max_records,
                .max_bytes = (uint64_t) a->config.outbox.max_mib << 20,
                .node_id = a->node.node_id,
                .boot_epoch = a->node.boot_epoch,
                .boot_id = a->node.boot_id,
        };
        r = event_queue_open(&oc, &a->events);
        if (r < 0 && r != -ENOMEM) {
                log_error_errno(r, "outbox: cannot open %s; events are kept in memory only until the next start",
                                outbox_dir);
                oc.dir = NULL;
                r = event_queue_open(&oc, &a->events);
        }
        if (r < 0)
                return log_error_errno(r, "cannot create the event queue");

        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return log_error_errno(errno, "cannot block signals");
        signal(SIGPIPE, SIG_IGN);

        if ((r = sd_event_add_signal(a->event, NULL, SIGTERM, on_terminate, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGINT, on_terminate, a)) < 0 ||
            (r = sd_event_add_signal(a->event, NULL, SIGHUP, on_sighup, a)) < 0)
                return log_error_errno(r, "cannot watch signals");

        /*
         * WATCHDOG=1 from a timer on the loop itself, so a stuck loop starves the watchdog,
         * and only while the subsystems are healthy: a health monitor that stopped polling
         * withholds it and systemd restarts the agent.
         */
        uint64_t wd = 0;
        if (sd_watchdog_enabled(false, &wd) > 0 && wd > 0) {
                a->watchdog_usec = wd;
                r = sd_event_add_time_relative(a->event, &a->watchdog_timer, CLOCK_MONOTONIC, 0, 0,
                                               on_watchdog, a);
                if (r < 0)
                        return log_error_errno(r, "cannot set up the watchdog");
                log_info("watchdog enabled, interval %llu ms, fed every %llu ms while healthy",
                         (unsigned long long) wd / 1000, (unsigned long long) wd / 2000);
        }

        if (a->config.runtime.enabled) {
                char workloads_dir[PATH_MAX];
                snprintf(workloads_dir, sizeof(workloads_dir), "%s/workloads.d", a->config.config_dir);
                struct runtime_policy policy = agent_runtime_policy(&a->config);
                /* Binds never reach the agent's own files (the runtime adds runtime_dir,
                 * state_dir, /proc, /sys and /dev); the models live in the state dir. */
                const struct workload_protected_path protected_paths[] = {
                        {a->config.config_dir, "the agent's config dir"},
                        {a->config.update.keyring_dir, "the bundle keyring"},
                        {a->config.link.command_keyring_dir, "the command keyring"},
                        {a->config.link.key, "the node's TLS key"},
                        {a->config.link.cert, "the node's TLS certificate"},
                        {a->config.link.ca, "the controller's CA"},
                        {a->config.update.work_dir, "the update work dir"},
                        {a->config.runtime.log_dir, "the workload logs"},
                        {NULL, NULL},
                };
                /* link.* may be unset: end the list at the first missing one, then the rest. */
                struct workload_protected_path present[ELEMENTSOF(protected_paths)];
                size_t n_present = 0;
                for (size_t i = 0; i + 1 < ELEMENTSOF(protected_paths); i++)
                        if (protected_paths[i].path)
                                present[n_present++] = protected_paths[i];
                present[n_present] = (struct workload_protected_path){NULL, NULL};
                const char *const bind_allowed[] = {a->config.update.models_dir, NULL};
                struct runtime_config rc = {
                        .policy = &policy,
                        .protected_paths = present,
                        .bind_allowed = bind_allowed,
                        .cgroup_root = a->config.paths.cgroup_root,
                        .cgroup_parent = a->config.runtime.cgroup_parent,
                        .runtime_dir = a->config.runtime_dir,
                        .state_dir = a->config.state_dir,
                        .workloads_dir = workloads_dir,
                        .log_dir = log_get_target() == LOG_TARGET_JOURNAL ? NULL : a->config.runtime.log_dir,
                        .journal = log_get_target() == LOG_TARGET_JOURNAL,
                        .sandbox_init = a->config.runtime.sandbox_init,
                };
                r = runtime_new(a->event, &rc, &a->runtime);
                if (r < 0)
                        return log_error_errno(r, "cannot start the workload runtime");
                runtime_set_event_handler(a->runtime, on_runtime_event, a);
        }
        if (a->config.health.enabled) {
                r = health_monitor_new(a->event, &a->config, a->runtime, a->events, &a->health);
                if (r < 0)
                        return log_error_errno(r, "cannot start the health monitor");
        }
        if (a->config.update.enabled) {
                r = update_manager_new(a->event, &a->config, &a->node, a->events, a->runtime,
                                       a->health, &a->update);
                if (r < 0)
                        return log_error_errno(r, "cannot start the update manager");
        }
        if (a->config.link.enabled) {
                struct link_hooks h = {
                        .cfg = &a->config,
                        .node = &a->node,
                        .events = a->events,
                        .runtime = a->runtime,
                        .update = a->update,
                        .status = link_status_document,
                        .reload = link_reload,
                        .userdata = a,
                };
                r = link_new(a->event, &h, &a->link);
                if (r < 0)
                        return log_error_errno(r, "cannot start the controller link");
        }

        /* what start-up found (the node state, the link, the update state...) and later on */
        report_state_problems(a);
        r = sd_event_add_time_relative(a->event, &a->state_problems_timer, CLOCK_MONOTONIC,
                                       STATE_PROBLEMS_INTERVAL_USEC, 0, on_state_problems_timer, a);
        if (r < 0)
                return log_error_errno(r, "cannot set up a timer");

        char sock[PATH_MAX];
        snprintf(sock, sizeof(sock), "%s/control.sock", a->config.runtime_dir);
        r = control_server_new(a->event, sock, &a->config.control, control_methods, a, &a->control);
        if (r < 0)
                return r;
        /* Workloads run below runtime.cgroup_parent: nothing there may use the socket. */
        r = control_server_set_workload_cgroup_parent(a->control, a->config.runtime.cgroup_parent);
        if (r < 0)
                return log_error_errno(r, "cannot set up the control socket's peer policy");

        a->started_usec = now_usec(a->event);
        log_info("orbit-agent %s serving: node %s, boot epoch %llu, control socket %s",
                 PACKAGE_VERSION, a->node.node_id, (unsigned long long) a->node.boot_epoch, sock);
        (void) sd_notify(false, "READY=1");
        notify_status("Serving: node %s, boot epoch %llu", a->node.node_id,
                      (unsigned long long) a->node.boot_epoch);
        return 0;
}

static void agent_done(struct agent *a) {
        control_server_free(a->control);
        a->control = NULL;
        link_free(a->link);
        a->link = NULL;
        update_manager_free(a->update);
        a->update = NULL;
        if (a->runtime && a->config.runtime.stop_workloads_on_exit)
                runtime_kill_all(a->runtime);
        health_monitor_free(a->health);
        a->health = NULL;
        runtime_free(a->runtime);
        a->runtime = NULL;
        event_queue_free(a->events);
        a->events = NULL;
        a->watchdog_timer = sd_event_source_disable_unref(a->watchdog_timer);
        a->state_problems_timer = sd_event_source_disable_unref(a->state_problems_timer);
        a->event = sd_event_unref(a->event);
        if (a->lock_fd >= 0)
                close(a->lock_fd);
        config_free(&a->config);
        free(a->config_path);
}

int main(int argc, char *argv[]) {
        enum { ARG_CHECK_CONFIG = 0x100, ARG_VERSION };
        static const struct option options[] = {
                {"config", required_argument, NULL, 'c'},
                {"check-config", no_argument, NULL, ARG_CHECK_CONFIG},
                {"version", no_argument, NULL, ARG_VERSION},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *config_path = DEFAULT_CONFIG;
        bool check_only = false;
        int c;

        log_setup("orbit-agent", LOG_TARGET_AUTO);

        while ((c = getopt_long(argc, argv, "c:h", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case ARG_CHECK_CONFIG:
                        check_only = true;
                        break;
                case ARG_VERSION:
                        printf("orbit-agent %s\n", PACKAGE_VERSION);
                        return EXIT_SUCCESS;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                default:
                        fprintf(stderr, "Try 'orbit-agent --help'.\n");
                        return EX_USAGE;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "orbit-agent: unexpected argument '%s'. Try 'orbit-agent --help'.\n",
                        argv[optind]);
                return EX_USAGE;
        }

        struct agent a = {.lock_fd = -1};
        _cleanup_free_ char *message = NULL;
        int r = config_load_file(config_path, &a.config, &message);
        if (r < 0) {
                /* Always to stderr as well: the operator running --check-config reads it there. */
                fprintf(stderr, "%s\n", message ? message : strerror(-r));
                if (!check_only && log_get_target() == LOG_TARGET_JOURNAL && message) {
                        char *save = NULL;
                        for (char *l = strtok_r(message, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
                                log_error("invalid configuration, not starting: %s", l);
                }
                return EX_CONFIG;
        }
        if (check_only) {
                printf("%s: configuration OK\n", config_path);
                config_free(&a.config);
                return EXIT_SUCCESS;
        }

        a.config_path = strdup(config_path);
        if (!a.config_path) {
                config_free(&a.config);
                return EXIT_FAILURE;
        }
        apply_logging(&a.config);
        notify_status("Starting");

        r = agent_start(&a);
        if (r >= 0) {
                r = loop_run(a.event, &a.loop);
                if (r < 0)
                        log_error_errno(r, "event loop failed");
        }
        if (r < 0)
                (void) sd_notifyf(false, "STATUS=Failed: %s\nERRNO=%d", strerror(-r), -r);
        agent_done(&a);
        if (r >= 0)
                log_info("stopped");
        return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
