/* The node's actions: one table for the control socket and the link's signed commands. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <unistd.h>

#include "agent/actions.h"
#include "agent/agent.h"
#include "proto/command.h"
#include "lib/log.h"
#include "lib/macro.h"
#include "lib/message.h"
#include "agent/status.h"
#include "agent/usage.h"

/* ---- what the subsystems need ------------------------------------------------------- */

/* The subsystem an action needs, when it is disabled: -ENOSYS, which the control socket
 * answers "not-implemented". */
static int need(struct agent *a, enum action_need n, char **ret_message) {
        static const struct {
                const char *what, *key;
        } words[] = {
                [ACTION_NEEDS_RUNTIME] = {"the workload runtime is", "runtime.enabled"},
                [ACTION_NEEDS_UPDATE] = {"updates are", "update.enabled"},
                [ACTION_NEEDS_HEALTH] = {"health monitoring is", "health.enabled"},
                [ACTION_NEEDS_LINK] = {"the controller link is", "link.enabled"},
        };
        bool present = n == ACTION_NEEDS_NOTHING || (n == ACTION_NEEDS_RUNTIME && a->runtime) ||
                       (n == ACTION_NEEDS_UPDATE && a->update) || (n == ACTION_NEEDS_HEALTH && a->health) ||
                       (n == ACTION_NEEDS_LINK && a->link);
        if (present)
                return 0;
        return message_set(ret_message, -ENOSYS, "%s disabled on this node (%s)", words[n].what, words[n].key);
}

static uint64_t now_usec(struct agent *a) {
        uint64_t t = 0;
        (void) sd_event_now(a->event, CLOCK_MONOTONIC, &t);
        return t;
}

/* ---- node ------------------------------------------------------------------------------- */

/* Tests only: ORBIT_FAILPOINT_PING_BURN_MS makes a ping hold the loop for that much CPU time
 * (the event loop's slow-dispatch report is checked with it). noinline: the report's stack
 * names this function. */
__attribute__((noinline)) static void failpoint_ping_burn(void) {
        const char *v = getenv("ORBIT_FAILPOINT_PING_BURN_MS");
        long ms = v ? strtol(v, NULL, 10) : 0;
        if (ms <= 0 || ms > 10000)
                return;
        struct timespec t0, t;
        if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0) < 0)
                return;
        volatile uint64_t spin = 0;
        do {
                for (int i = 0; i < 100000; i++)
                        spin += (uint64_t) i;
                if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t) < 0)
                        return;
        } while ((t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L < ms);
}

/* Tests only: with ORBIT_FAILPOINT_PING_HANG_FILE=F in the agent's environment, a ping holds
 * the loop while F exists: a hung agent, for the systemd watchdog test of the virtual board
 * (docs/board.md), which expects SIGABRT from systemd and never sees this return. Two keys
 * so neither alone hangs a node: the variable comes only from a unit drop-in, and the file
 * only from whoever arms it; F gone, the ping answers. */
static void failpoint_ping_hang(void) {
        const char *f = getenv("ORBIT_FAILPOINT_PING_HANG_FILE");
        if (!f || !*f || access(f, F_OK) < 0)
                return;
        log_notice("failpoint: a ping holds the event loop while %s exists", f);
        const struct timespec step = {.tv_nsec = 100 * 1000 * 1000};
        while (access(f, F_OK) == 0)
                (void) nanosleep(&step, NULL);
        log_notice("failpoint: the ping lets the event loop go on");
}

static int act_ping(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        failpoint_ping_burn();
        failpoint_ping_hang();
        *ret = json_pack("{s:b}", "pong", 1);
        return *ret ? 0 : -ENOMEM;
}

json_t *agent_status_document(struct agent *a) {
        struct agent_status_input in = {
                .node = &a->node,
                .config = &a->config,
                .uptime_usec = now_usec(a) - a->started_usec,
                .config_reloads = a->config_reloads,
                .config_reload_failures = a->config_reload_failures,
                .last_reload_error = a->last_reload_error,
                .runtime = a->runtime ? runtime_status_json(a->runtime) : NULL,
                .health = a->health ? health_monitor_status_json(a->health) : NULL,
                .update = a->update ? update_manager_status_json(a->update) : NULL,
                .link = a->link ? link_status_json(a->link) : NULL,
                .loop = loop_stats_json(&a->loop),
        };
        json_t *doc = agent_status_build(&in);
        if (doc && a->desired)
                (void) json_object_set_new(doc, "desired", desired_status_json(a->desired));
        if (doc && a->usage)
                (void) json_object_set_new(doc, "usage", usage_status_json(a->usage));
        json_decref(in.loop);
        json_decref(in.link);
        json_decref(in.runtime);
        json_decref(in.health);
        json_decref(in.update);
        return doc;
}

static int act_status(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        *ret = agent_status_document(a);
        return *ret ? 0 : -ENOMEM;
}

static int act_health(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        *ret = health_monitor_json(a->health);
        return *ret ? 0 : -ENOMEM;
}

static int act_events(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        json_int_t n = json_integer_value(json_object_get(params, "count"));
        const char *kind = json_string_value(json_object_get(params, "kind"));
        json_t *events = event_queue_tail_json(a->events, n > 0 ? (size_t) n : 100, kind);
        *ret = json_pack("{s:o,s:I,s:I,s:o}", "events", events, "queued", (json_int_t) event_queue_count(a->events),
                         "dropped", (json_int_t) event_queue_dropped(a->events),
                         "outbox", event_queue_stats_json(a->events));
        return *ret ? 0 : -ENOMEM;
}

static int act_link(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        if (json_is_true(json_object_get(params, "sync")))
                link_sync_now(a->link);
        *ret = link_status_json(a->link);
        return *ret ? 0 : -ENOMEM;
}

static int act_status_send(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                           char **ret_message) {
        link_send_status(a->link);
        return message_set(ret_message, 0, "status sent with the next sync");
}

/* What the ground may change without a visit: timings and verbosity, never paths, keys or
 * anything that decides what runs or what is trusted. */
static const char *const settable_keys[] = {
        "log_level",
        "link.poll_interval_sec",
        "link.max_records_per_sync",
        "link.max_sync_kib",
        "link.download_budget_mib",
        "link.upload_budget_kib",
        "link.pass_max_sec",
        "link.min_sync_interval_sec",
        "link.max_recv_bytes_per_sec",
        "health.poll_interval_ms",
        "health.report_interval_sec",
        "health.min_dwell_sec",
        "update.gate_sec",
        "update.trial_timeout_sec",
        "update.controller_wait_sec", /* but not commit_without_controller: that one is trust */
        "update.boot_tries",
        /* the controller can forbid privileged specs on a node (and allow them back) */
        "sandbox.allow_privileged",
};

bool action_config_key_is_settable(const char *key) {
        for (size_t i = 0; i < ELEMENTSOF(settable_keys); i++)
                if (key && streq(key, settable_keys[i]))
                        return true;
        return false;
}

/* config.set: change the file, checked by the agent's own strict parser, then reload. */
static int act_config_set(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                          char **ret_message) {
        const char *key = json_string_value(json_object_get(params, "key"));
        if (!action_config_key_is_settable(key))
                return message_set(ret_message, -EPERM, "config key \"%s\" cannot be changed remotely", key);
        int r = config_file_set(a->config_path, key, json_object_get(params, "value"), ret_message);
        if (r < 0)
                return r;
        (void) kill(getpid(), SIGHUP); /* handled on the loop, like an operator's reload */
        return message_set(ret_message, 0, "%s set; configuration reloaded", key);
}

/* ---- workloads -------------------------------------------------------------------------- */

static int act_workload_list(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        *ret = json_pack("{s:o}", "workloads", runtime_workloads_json(a->runtime));
        return *ret ? 0 : -ENOMEM;
}

static int act_workload_show(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        const char *name = json_string_value(json_object_get(params, "name"));
        *ret = runtime_workload_json(a->runtime, name);
        if (!*ret)
                return message_set(ret_message, -ENOENT, "no workload named \"%s\"", name);
        return 0;
}

static int act_workload_logs(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        const char *name = json_string_value(json_object_get(params, "name"));
        json_int_t lines = json_integer_value(json_object_get(params, "lines"));
        json_t *logs = runtime_workload_logs_json(a->runtime, name, lines > 0 ? (size_t) lines : 50);
        if (!logs)
                return message_set(ret_message, -ENOENT, "no workload named \"%s\"", name);
        *ret = json_pack("{s:o}", "lines", logs);
        return *ret ? 0 : -ENOMEM;
}

/* The controller may not start a privileged workload unless the node allows it. */
static enum runtime_origin origin_of(enum action_source from) {
        return from == ACTION_FROM_LINK ? RUNTIME_ORIGIN_LINK : RUNTIME_ORIGIN_LOCAL;
}

static int act_workload_start(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                              char **ret_message) {
        json_t *text = json_object_get(params, "spec_text");
        const char *name = json_string_value(json_object_get(params, "name"));
        if (!text == !name)
                return message_set(ret_message, -EINVAL,
                                   "workload.start takes {\"name\": NAME} or {\"spec_text\": TEXT, \"source\": FILE}");
        if (text) {
                const char *source = json_string_value(json_object_get(params, "source"));
                return runtime_workload_submit(a->runtime, source ? source : "<control>", json_string_value(text),
                                               json_string_length(text), ret_message);
        }
        return runtime_workload_start_from(a->runtime, name, origin_of(from), ret_message);
}

static int act_workload_stop(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        return runtime_workload_stop(a->runtime, json_string_value(json_object_get(params, "name")), ret_message);
}

static int act_workload_restart(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                                char **ret_message) {
        return runtime_workload_restart_from(a->runtime, json_string_value(json_object_get(params, "name")),
                                             origin_of(from), ret_message);
}

/* The levers the thermal policy will pull, open to operators and tests too. */
static int act_runtime_class(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        struct runtime *rt = a->runtime;
        int r = 0;
        const char *prio = json_string_value(json_object_get(params, "priority"));
        enum workload_priority p = 0;
        for (int i = 0; i < _WORKLOAD_PRIORITY_MAX; i++)
                if (streq(prio, workload_priority_to_string((enum workload_priority) i)))
                        p = (enum workload_priority) i;
        json_t *v;
        if ((v = json_object_get(params, "cpu_percent")))
                r = runtime_class_throttle(rt, p, (unsigned) json_integer_value(v));
        if (r >= 0 && (v = json_object_get(params, "frozen")))
                r = runtime_class_freeze(rt, p, json_is_true(v));
        if (r >= 0 && (v = json_object_get(params, "stopped")))
                r = runtime_class_stop(rt, p, json_is_true(v));
        if (r >= 0 && (v = json_object_get(params, "admit")) && p == WORKLOAD_PRIORITY_BEST_EFFORT)
                runtime_best_effort_admission(rt, json_is_true(v));
        if (r < 0)
                /* a failure to write the class's cgroup is the node's, not the caller's */
                return message_set(ret_message, -EIO, "runtime class %s: %s", prio, strerror(-r));
        *ret = runtime_status_json(rt);
        return *ret ? 0 : -ENOMEM;
}

/* ---- updates ---------------------------------------------------------------------------- */

/* Who asks, in the reason an update keeps and reports: the ground tells an operator's
 * rollback from one its own rollout ordered (an auto-revert). */
static const char *asked_by(enum action_source from) {
        return from == ACTION_FROM_LINK ? "the controller" : "the operator";
}

static int act_update_status(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                             char **ret_message) {
        *ret = update_manager_status_json(a->update);
        return *ret ? 0 : -ENOMEM;
}

/* A bundle file on the node (control socket), or one the controller serves (link). */
static int act_update_install(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                              char **ret_message) {
        const char *path = json_string_value(json_object_get(params, "bundle"));
        const char *id = json_string_value(json_object_get(params, "bundle_id"));
        const char *url = json_string_value(json_object_get(params, "url"));
        if (!!path + !!id + !!url != 1)
                return message_set(ret_message, -EINVAL, "update.install takes %s",
                                   from == ACTION_FROM_LINK ? "exactly one of \"bundle_id\" and \"url\""
                                                            : "{\"bundle\": \"/absolute/path.obundle\"}");
        if (path)
                return update_manager_install(a->update, path, ret, ret_message);
        _cleanup_free_ char *built = NULL;
        if (id && asprintf(&built, "%s/v1/bundles/%s", a->config.link.url, id) < 0)
                return -ENOMEM;
        int r = update_manager_install_remote(a->update, id ? built : url, ret, ret_message);
        if (r >= 0)
                return message_set(ret_message, r, "install of %s started", id ? id : url);
        return r;
}

static int act_update_mark_good(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                                char **ret_message) {
        return update_manager_mark_good(a->update, asked_by(from), ret, ret_message);
}

static int act_update_mark_bad(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                               char **ret_message) {
        return update_manager_mark_bad(a->update, asked_by(from), ret, ret_message);
}

static int act_update_rollback(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                               char **ret_message) {
        return update_manager_rollback(a->update, asked_by(from), from == ACTION_FROM_LINK, ret, ret_message);
}

static int act_update_scrub(struct agent *a, enum action_source from, json_t *params, json_t **ret,
                            char **ret_message) {
        return update_manager_scrub(a->update, ret, ret_message);
}

static int act_reboot(struct agent *a, enum action_source from, json_t *params, json_t **ret, char **ret_message) {
        return update_manager_request_reboot(a->update, ret_message); /* NULL: none configured */
}

/* ---- the table -------------------------------------------------------------------------- */

#define CONTROL ACTION_FROM_CONTROL
#define LINK ACTION_FROM_LINK
#define NEEDS_NOTHING ACTION_NEEDS_NOTHING
#define NEEDS_RUNTIME ACTION_NEEDS_RUNTIME
#define NEEDS_UPDATE ACTION_NEEDS_UPDATE
#define NEEDS_HEALTH ACTION_NEEDS_HEALTH
#define NEEDS_LINK ACTION_NEEDS_LINK

static const struct action_param p_name[] = {
        {"name", ACTION_PARAM_WORKLOAD_NAME, .required = true},
        {},
};
static const struct action_param p_workload_start[] = {
        {"name", ACTION_PARAM_WORKLOAD_NAME},
        {"spec_text", ACTION_PARAM_STRING, .sources = CONTROL},
        {"source", ACTION_PARAM_STRING, .sources = CONTROL},
        {},
};
static const struct action_param p_workload_logs[] = {
        {"name", ACTION_PARAM_WORKLOAD_NAME, .required = true},
        {"lines", ACTION_PARAM_INTEGER, .min = 1, .max = 1000}, /* default 50 */
        {},
};
static const struct action_param p_runtime_class[] = {
        {"priority", ACTION_PARAM_PRIORITY, .required = true},
        {"cpu_percent", ACTION_PARAM_INTEGER, .min = 0, .max = 100},
        {"frozen", ACTION_PARAM_BOOLEAN},
        {"stopped", ACTION_PARAM_BOOLEAN},
        {"admit", ACTION_PARAM_BOOLEAN},
        {},
};
static const struct action_param p_events[] = {
        {"count", ACTION_PARAM_INTEGER, .min = 1, .max = 10000}, /* default 100 */
        {"kind", ACTION_PARAM_STRING},
        {},
};
static const struct action_param p_link[] = {
        {"sync", ACTION_PARAM_BOOLEAN},
        {},
};
static const struct action_param p_update_install[] = {
        {"bundle", ACTION_PARAM_ABSOLUTE_PATH, .sources = CONTROL},
        {"bundle_id", ACTION_PARAM_BUNDLE_ID, .sources = LINK},
        {"url", ACTION_PARAM_URL, .sources = LINK},
        {},
};
static const struct action_param p_config_set[] = {
        {"key", ACTION_PARAM_STRING, .required = true},
        {"value", ACTION_PARAM_ANY, .required = true},
        {},
};

/* The link's actions are also the controller's (proto/command.c checks their params
 * when the controller queues a command and when the agent verifies an envelope): a name
 * added here for LINK needs its entry there. */
static const struct action actions[] = {
        {"ping", CONTROL, NEEDS_NOTHING, NULL, act_ping},
        {"status", CONTROL, NEEDS_NOTHING, NULL, act_status},
        {"health", CONTROL, NEEDS_HEALTH, NULL, act_health},
        {"events", CONTROL, NEEDS_NOTHING, p_events, act_events},
        {"link", CONTROL, NEEDS_LINK, p_link, act_link},
        {"status.send", LINK, NEEDS_LINK, NULL, act_status_send},
        {"config.set", LINK, NEEDS_NOTHING, p_config_set, act_config_set},
        {"reboot", LINK, NEEDS_NOTHING, NULL, act_reboot},
        {"workload.list", CONTROL, NEEDS_RUNTIME, NULL, act_workload_list},
        {"workload.show", CONTROL, NEEDS_RUNTIME, p_name, act_workload_show},
        {"workload.logs", CONTROL, NEEDS_RUNTIME, p_workload_logs, act_workload_logs},
        {"workload.start", CONTROL | LINK, NEEDS_RUNTIME, p_workload_start, act_workload_start},
        {"workload.stop", CONTROL | LINK, NEEDS_RUNTIME, p_name, act_workload_stop},
        {"workload.restart", CONTROL | LINK, NEEDS_RUNTIME, p_name, act_workload_restart},
        {"runtime.class", CONTROL, NEEDS_RUNTIME, p_runtime_class, act_runtime_class},
        {"update.status", CONTROL, NEEDS_UPDATE, NULL, act_update_status},
        {"update.install", CONTROL | LINK, NEEDS_UPDATE, p_update_install, act_update_install},
        {"update.mark-good", CONTROL | LINK, NEEDS_UPDATE, NULL, act_update_mark_good},
        {"update.mark-bad", CONTROL, NEEDS_UPDATE, NULL, act_update_mark_bad},
        {"update.rollback", CONTROL | LINK, NEEDS_UPDATE, NULL, act_update_rollback},
        {"update.scrub", CONTROL, NEEDS_UPDATE, NULL, act_update_scrub},
        {},
};

const struct action *action_table(void) {
        return actions;
}

const struct action *action_find(const char *name) {
        for (const struct action *ac = actions; name && ac->name; ac++)
                if (streq(ac->name, name))
                        return ac;
        return NULL;
}

bool action_allowed(const struct action *ac, enum action_source from) {
        return ac && (ac->sources & from);
}

static const struct action_param *param_find(const struct action *ac, const char *key) {
        for (const struct action_param *p = ac->params; p && p->key; p++)
                if (streq(p->key, key))
                        return p;
        return NULL;
}

static bool param_for(const struct action_param *p, enum action_source from) {
        return p->sources == 0 || (p->sources & from);
}

static bool priority_is_valid(const char *s) {
        for (int i = 0; s && i < _WORKLOAD_PRIORITY_MAX; i++)
                if (streq(s, workload_priority_to_string((enum workload_priority) i)))
                        return true;
        return false;
}

_Static_assert(COMMAND_URL_MAX == 1024, "param_type_problem's message names the bound");

/* NULL when v is a valid value of p, else what it must be. */
static const char *param_type_problem(const struct action_param *p, json_t *v) {
        const char *s = json_string_value(v);
        switch (p->type) {
        case ACTION_PARAM_ANY:
                return NULL;
        case ACTION_PARAM_STRING:
                return s ? NULL : "a string";
        case ACTION_PARAM_BOOLEAN:
                return json_is_boolean(v) ? NULL : "true or false";
        case ACTION_PARAM_INTEGER:
                return json_is_integer(v) && json_integer_value(v) >= p->min && json_integer_value(v) <= p->max
                               ? NULL
                               : "an integer in range";
        case ACTION_PARAM_WORKLOAD_NAME:
                return s && workload_name_is_valid(s) ? NULL : "a workload name";
        case ACTION_PARAM_ABSOLUTE_PATH:
                return s && s[0] == '/' ? NULL : "an absolute path";
        case ACTION_PARAM_BUNDLE_ID:
                return s && command_name_is_valid(s, COMMAND_NAME_MAX) ? NULL : "a bundle id";
        case ACTION_PARAM_URL:
                return s && command_url_is_valid(s) ? NULL
                                                    : "an https:// URL of at most 1024 printable characters";
        case ACTION_PARAM_PRIORITY:
                return priority_is_valid(s) ? NULL : "critical, normal or best-effort";
        }
        return "known";
}

int action_params_check(const struct action *ac, enum action_source from, json_t *params, char **ret_message) {
        if (params && !json_is_object(params))
                return message_set(ret_message, -EINVAL, "%s: params must be an object", ac->name);
        const char *key;
        json_t *v;
        json_object_foreach(params, key, v) {
                const struct action_param *p = param_find(ac, key);
                if (!ac->params)
                        return message_set(ret_message, -EINVAL, "%s takes no parameters", ac->name);
                if (!p || !param_for(p, from))
                        return message_set(ret_message, -EINVAL, "%s: unknown parameter \"%.64s\"%s", ac->name,
                                           key, p ? " from this source" : "");
                const char *problem = param_type_problem(p, v);
                if (problem) {
                        if (p->type == ACTION_PARAM_INTEGER)
                                return message_set(ret_message, -EINVAL, "%s: \"%s\" must be an integer in %lld..%lld",
                                                   ac->name, key, p->min, p->max);
                        return message_set(ret_message, -EINVAL, "%s: \"%s\" must be %s", ac->name, key, problem);
                }
        }
        for (const struct action_param *p = ac->params; p && p->key; p++)
                if (p->required && param_for(p, from) && !json_object_get(params, p->key))
                        return message_set(ret_message, -EINVAL, "%s: missing parameter \"%s\"", ac->name, p->key);
        return 0;
}

int action_call(struct agent *a, enum action_source from, const char *name, json_t *params, json_t **ret_result,
                char **ret_message) {
        *ret_result = NULL;
        *ret_message = NULL;
        const struct action *ac = action_find(name);
        if (!action_allowed(ac, from))
                return message_set(ret_message, -EBADRQC, "unknown %s \"%.64s\"",
                                   from == ACTION_FROM_LINK ? "action" : "method", name);
        /* first what the node can do, then what was asked of it */
        int r = need(a, ac->needs, ret_message);
        if (r < 0)
                return r;
        r = action_params_check(ac, from, params, ret_message);
        if (r < 0)
                return r;
        r = ac->fn(a, from, params, ret_result, ret_message);
        if (r < 0) {
                json_decref(*ret_result);
                *ret_result = NULL;
                if (!*ret_message)
                        return message_set(ret_message, r, "%s failed: %s", name, strerror(-r));
                return r;
        }
        if (!*ret_result) {
                *ret_result = json_pack("{s:b,s:s?}", "done", 1, "message", *ret_message);
                if (!*ret_result)
                        return -ENOMEM;
        }
        return 0;
}
